/* compiler/main.c - the hzc driver: check, plan, tune, build and import commands.
 * hzc finds its templates, kernel sources and runtime libraries relative to its own
 * executable (ROOT/build/hzc -> ROOT), or under $HZC_ROOT when that is set. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "emit.h"
#include "import.h"
#include "plan.h"
#include "plan_svg.h"
#include "report.h"
#include "spec.h"
#include "timemodel.h"
#include "tune.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hzc COMMAND [options]\n"
            "Compile a decoder language model description (YAML) into a dedicated trainer.\n\n"
            "commands:\n"
            "  hzc check SPEC                   validate a model description\n"
            "  hzc plan SPEC [--gpu-mem SIZE] [--host-mem SIZE] [--boundaries auto|gpu|host]\n"
            "               [--ceilings FILE] [--gpus N] [--hosts H] [--net-gbps X]\n"
            "               [--json] [--svg FILE]\n"
            "                                   print the memory plan, the step schedule and\n"
            "                                   the predicted step time; --svg also draws it\n"
            "  hzc tune SPEC --gpu-mem SIZE --host-mem SIZE [--ceilings FILE] [--gpus N]\n"
            "               [--hosts H] [--net-gbps X] [-o TUNED.yaml] [--top N]\n"
            "                                   search the plan: choices for the fastest\n"
            "                                   predicted step that fits; print the best N\n"
            "                                   (default 5) beside the default plan, and with\n"
            "                                   -o write the spec with the winner's plan:\n"
            "                                   section\n"
            "  hzc build SPEC -o DIR [--backend cpu|cuda] [--gpu-mem SIZE] [--host-mem SIZE]\n"
            "               [--boundaries auto|gpu|host] [--ceilings FILE] [--gpus N]\n"
            "               [--hosts H] [--net-gbps X]\n"
            "                                   write DIR/generated/{schedule.c,kernels.cu,"
            "plan.json}\n"
            "                                   and link the trainer DIR/train\n"
            "  hzc check|plan|tune|build SPEC ... KEY=VALUE ...\n"
            "                                   override the spec's values, each checked as\n"
            "                                   if it were in the file (shape.seq_len=4096\n"
            "                                   training.lr=2e-5)\n"
            "  hzc report RUN [-o report.html] [--plan FILE] [--trace FILE]\n"
            "                                   one HTML page of a run (train --metrics FILE,\n"
            "                                   or its --out DIR): loss, lr, throughput,\n"
            "                                   memory planned and measured, a traced step\n"
            "  hzc import HF_DIR -o SPEC.yaml   write a model description from a Hugging Face\n"
            "                                   checkpoint's config.json (Llama, Mistral, Qwen2,\n"
            "                                   Qwen3, Gemma 3)\n"
            "  hzc --help | --version\n\n"
            "SIZE: bytes, or a number with K/M/G/T (binary: 80G = 80 GiB), KiB/MiB/GiB/TiB,\n"
            "or KB/MB/GB/TB (decimal). --boundaries: where the layers' input activations live\n"
            "(auto: on the GPU unless --gpu-mem needs them on the host); given, it overrides\n"
            "the spec's plan.boundaries. The default backend is cuda when hzc was built with\n"
            "the CUDA toolkit, else cpu. See docs/ for the model description and the plan.\n"
            "--ceilings: the machine's rates for the step-time model (JSON; default: one\n"
            "H200 as measured, see docs/plan.md). --gpus N: plan and predict the step split\n"
            "over N GPUs of one host (data parallel; --gpu-mem is each GPU's); it overrides\n"
            "the spec's plan.gpus. The trainer runs the N as ranks of one process, a GPU\n"
            "each. --hosts H: split over H such hosts, each with its own host store\n"
            "(plan.hosts), one trainer a host started with RANK, WORLD_SIZE, MASTER_ADDR and\n"
            "MASTER_PORT; --net-gbps X: the all-reduce's bus bandwidth between them in GB/s\n"
            "(default: assumed, see docs/plan.md \"Several hosts\").\n");
}

/* Parse SIZE; returns -1 on a malformed value. */
static int64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || x < 0) return -1;
    static const struct { const char *suffix; double mul; } units[] = {
        {"", 1},       {"B", 1},     {"K", 0x1p10},    {"KiB", 0x1p10}, {"KB", 1e3},
        {"M", 0x1p20}, {"MiB", 0x1p20}, {"MB", 1e6},   {"G", 0x1p30},   {"GiB", 0x1p30},
        {"GB", 1e9},   {"T", 0x1p40},   {"TiB", 0x1p40}, {"TB", 1e12},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].suffix) == 0) return (int64_t)(x * units[i].mul);
    return -1;
}

/* ROOT: $HZC_ROOT, else the directory above the one holding this executable. */
static void find_root(char *root, size_t n)
{
    const char *env = getenv("HZC_ROOT");
    if (env && *env) {
        snprintf(root, n, "%.4000s", env);
        return;
    }
    ssize_t len = readlink("/proc/self/exe", root, n - 1);
    if (len <= 0) {
        snprintf(root, n, ".");
        return;
    }
    root[len] = 0;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(root, '/');
        if (slash) *slash = 0;
    }
}

#define OVERRIDES_MAX 64

typedef struct options {
    const char *command, *spec, *out_dir, *backend, *ceilings, *svg;
    plan_limits lim;
    int json;
    int boundaries_given;
    int top_n;     /* tune --top: 0 when not given */
    int64_t gpus;  /* --gpus: 0 when not given */
    int64_t hosts; /* --hosts: 0 when not given */
    double net_gbps; /* --net-gbps: 0 when not given */
    const char *overrides[OVERRIDES_MAX]; /* KEY=VALUE after the spec, in order */
    int override_n;
} options;

#define TUNE_TOP_MAX 1000

static int parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof(*o));
    o->command = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--gpu-mem") || !strcmp(a, "--host-mem")) {
            int64_t bytes = v ? parse_size(v) : -1;
            if (bytes <= 0) {
                fprintf(stderr, "hzc: error: %s expects a size like 80G, 128GiB or 85899345920, "
                                "got '%s'\n", a, v ? v : "");
                return -1;
            }
            *(a[2] == 'g' ? &o->lim.gpu_bytes : &o->lim.host_bytes) = bytes;
            i++;
        } else if (!strcmp(a, "--boundaries")) {
            static const char *const names[] = {"auto", "gpu", "host"};
            int k = 0;
            while (k < 3 && !(v && !strcmp(v, names[k]))) k++;
            if (k == 3) {
                fprintf(stderr, "hzc: error: --boundaries expects auto, gpu or host, got '%s'\n",
                        v ? v : "");
                return -1;
            }
            o->lim.boundaries = k;
            o->boundaries_given = 1;
            i++;
        } else if (!strcmp(a, "--top")) {
            char *end = NULL;
            long n = v ? strtol(v, &end, 10) : 0;
            if (!v || end == v || *end || n < 1 || n > TUNE_TOP_MAX) {
                fprintf(stderr, "hzc: error: --top expects a number of plans from 1 to %d, "
                                "got '%s'\n", TUNE_TOP_MAX, v ? v : "");
                return -1;
            }
            o->top_n = (int)n;
            i++;
        } else if (!strcmp(a, "--gpus") || !strcmp(a, "--hosts")) {
            int hosts = a[2] == 'h';
            long long most = hosts ? SPEC_MAX_HOSTS : SPEC_MAX_GPUS;
            char *end = NULL;
            errno = 0;
            long long n = v ? strtoll(v, &end, 10) : 0;
            if (!v || end == v || *end || errno || n < 1 || n > most) {
                fprintf(stderr, "hzc: error: %s expects a number of %s, 1 to %lld, got '%s'\n", a,
                        hosts ? "hosts" : "GPUs of one host", most, v ? v : "");
                return -1;
            }
            *(hosts ? &o->hosts : &o->gpus) = n;
            i++;
        } else if (!strcmp(a, "--net-gbps")) {
            char *end = NULL;
            errno = 0;
            double g = v ? strtod(v, &end) : 0.0;
            if (!v || end == v || *end || errno || !(g > 0.0) || g > 1e6) {
                fprintf(stderr, "hzc: error: --net-gbps expects the network's all-reduce bus "
                                "bandwidth between hosts in GB/s (e.g. 45), got '%s'\n",
                        v ? v : "");
                return -1;
            }
            o->net_gbps = g;
            i++;
        } else if (!strcmp(a, "--svg")) {
            if (!v) {
                fprintf(stderr, "hzc: error: --svg needs a file (the plan as a picture)\n");
                return -1;
            }
            o->svg = v;
            i++;
        } else if (!strcmp(a, "--ceilings")) {
            if (!v) {
                fprintf(stderr, "hzc: error: --ceilings needs a file (JSON rates; docs/plan.md)\n");
                return -1;
            }
            o->ceilings = v;
            i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--backend")) {
            if (!v) {
                fprintf(stderr, "hzc: error: %s needs a value\n", a);
                return -1;
            }
            *(a[1] == 'o' ? &o->out_dir : &o->backend) = v;
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "hzc: error: unknown option '%s' (see hzc --help)\n", a);
            return -1;
        } else if (!o->spec) {
            o->spec = a;
        } else if (spec_is_override(a)) {
            if (o->override_n == OVERRIDES_MAX) {
                fprintf(stderr, "hzc: error: more than %d overrides\n", OVERRIDES_MAX);
                return -1;
            }
            o->overrides[o->override_n++] = a;
        } else {
            fprintf(stderr, "hzc: error: unexpected argument '%s'\n", a);
            return -1;
        }
    }
    if (!o->spec) {
        fprintf(stderr, "hzc: error: %s needs a model description (SPEC.yaml)\n", o->command);
        return -1;
    }
    return 0;
}

/* The step-time model's rates: --ceilings FILE, else the defaults. 0, or 1 after saying why. */
static int load_ceilings(const options *o, tm_ceilings *ceil)
{
    if (!o->ceilings) {
        tm_defaults(ceil);
        return 0;
    }
    char note[256], err[1024];
    if (tm_load(ceil, o->ceilings, note, sizeof note, err, sizeof err) != 0) {
        fprintf(stderr, "hzc: %s\n", err);
        return 1;
    }
    if (note[0])
        fprintf(stderr, "hzc: note: %s has no %s; the H200 defaults stand in for them\n",
                o->ceilings, note);
    return 0;
}

/* hzc plan's section for several GPUs: PL beside SPEC planned for one GPU within LIM. */
static void print_gpus(const hzc_spec *spec, const plan_limits *lim, const hzc_plan *pl,
                       const tm_ceilings *ceil)
{
    hzc_spec one_spec = *spec;
    one_spec.plan.gpus = 1;
    one_spec.plan.hosts = 1;
    FILE *quiet = fopen("/dev/null", "w");
    hzc_plan one;
    int one_bad = plan_build(&one_spec, lim, &one, quiet ? quiet : stderr);
    if (quiet) fclose(quiet);
    tm_predict(&one.p, ceil);
    plan_print_gpus(pl, &one, !one_bad, ceil, stdout);
    plan_free(&one);
}

/* The tune command's own rules on the options, before the spec is read. */
static int tune_options_ok(const options *o)
{
    if (!o->lim.gpu_bytes || !o->lim.host_bytes) {
        fprintf(stderr, "hzc: error: tune needs --gpu-mem SIZE and --host-mem SIZE: the "
                        "memory of the machine to fit (e.g. --gpu-mem 80G --host-mem 512G)\n");
        return 0;
    }
    if (o->boundaries_given) {
        fprintf(stderr, "hzc: error: --boundaries is for plan and build; tune tries both and "
                        "writes its choice as plan.boundaries\n");
        return 0;
    }
    if (o->json || o->backend) {
        fprintf(stderr, "hzc: error: %s is not a tune option (see hzc --help)\n",
                o->json ? "--json" : "--backend");
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("hzc %s\n", HZ_VERSION);
        return 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "import")) {
        if (argc != 5 || strcmp(argv[3], "-o") != 0) {
            fprintf(stderr, "hzc: error: usage: hzc import HF_DIR -o SPEC.yaml\n");
            return 1;
        }
        int errors = import_hf_config(argv[2], argv[4], stderr);
        if (errors) {
            fprintf(stderr, "%s: %d error%s\n", argv[2], errors, errors == 1 ? "" : "s");
            return 1;
        }
        fprintf(stderr, "hzc: wrote %s\n", argv[4]);
        return 0;
    }
    if (!strcmp(cmd, "report")) return report_command(argc - 2, argv + 2);
    if (strcmp(cmd, "check") && strcmp(cmd, "plan") && strcmp(cmd, "build") &&
        strcmp(cmd, "tune")) {
        fprintf(stderr, "hzc: error: unknown command '%s' (check, plan, tune, build, report or import; "
                        "see hzc --help)\n",
                cmd);
        return 1;
    }
    int tune = !strcmp(cmd, "tune");
    options o;
    if (parse_options(argc, argv, &o) != 0) return 1;
    if (!strcmp(cmd, "build") && !o.out_dir) {
        fprintf(stderr, "hzc: error: build needs -o DIR\n");
        return 1;
    }
    if (strcmp(cmd, "build") && !tune && o.out_dir) { /* accepted and ignored, it would mislead */
        fprintf(stderr, "hzc: error: -o is for build and tune; %s writes no files%s\n", cmd,
                !strcmp(cmd, "plan") ? " (hzc plan SPEC --json > FILE saves the plan)" : "");
        return 1;
    }
    if (o.svg && strcmp(cmd, "plan") != 0) {
        fprintf(stderr, "hzc: error: --svg is for plan\n");
        return 1;
    }
    if (!tune && o.top_n) {
        fprintf(stderr, "hzc: error: --top is for tune\n");
        return 1;
    }
    if (tune && !tune_options_ok(&o)) return 1;
    hzc_spec spec;
    if (tune && o.out_dir && o.override_n) {
        fprintf(stderr, "hzc: error: tune -o writes the spec file's own text with a plan: "
                        "section, which would leave out %s: put the overrides in the file\n",
                o.overrides[0]);
        return 1;
    }
    int errors = spec_load_overrides(o.spec, o.overrides, o.override_n, &spec, stderr);
    if (errors) {
        fprintf(stderr, "%s: %d error%s\n", o.spec, errors, errors == 1 ? "" : "s");
        return 1;
    }
    if (o.gpus) { /* --gpus overrides plan.gpus; line 0 marks where it came from */
        spec.plan.gpus = o.gpus;
        spec.plan.pos_gpus = (spec_pos){0, 0};
    }
    if (o.hosts) { /* likewise --hosts */
        spec.plan.hosts = o.hosts;
        spec.plan.pos_hosts = (spec_pos){0, 0};
    }
    if (!strcmp(cmd, "check")) {
        printf("%s: ok (%s, %lld parameters)\n", o.spec, spec.name,
               (long long)spec_param_count(&spec));
        return 0;
    }
    tm_ceilings ceil;
    if (load_ceilings(&o, &ceil) != 0) return 1;
    if (o.net_gbps > 0) ceil.net_busbw_gbps = o.net_gbps; /* stated: over the file's */
    if (tune) return tune_run(&spec, &o.lim, &ceil, o.top_n ? o.top_n : 5, o.out_dir, stdout,
                              stderr);
    hzc_plan pl;
    int bad = plan_build(&spec, &o.lim, &pl, stderr);
    tm_predict(&pl.p, &ceil);
    pl.p.pred.ceilings = ceil.name;
    pl.p.pred.ceilings_gpu = ceil.gpu;
    int rc = bad;
    char root[PATH_MAX];
    find_root(root, sizeof root);
    if (!bad && !strcmp(cmd, "plan")) {
        if (o.json) {
            char tdir[PATH_MAX + 16];
            snprintf(tdir, sizeof tdir, "%s/templates", root);
            rc = emit_render(tdir, NULL, "plan.json.tmpl", o.spec, &pl, "-") != 0;
        } else {
            plan_print(&pl, stdout);
            plan_print_fit(&spec, &o.lim, stdout);
            tm_print(&pl.p, stdout);
            plan_print_mlp_out(&spec, &o.lim, &ceil, &pl, stdout);
            if (hz_gpus(&pl.p.dims) > 1 || hz_hosts(&pl.p.dims) > 1)
                print_gpus(&spec, &o.lim, &pl, &ceil);
        }
        if (o.svg && rc == 0) rc = plan_svg(&pl, &ceil, o.svg, stderr);
    } else if (!bad) {
        rc = build_trainer(o.spec, o.out_dir, o.backend, &pl, root);
    }
    plan_free(&pl);
    return rc;
}
