/* compiler/main.c - the hzc driver: check, plan and build commands.
 * hzc finds its templates, kernel sources and runtime libraries relative to its own
 * executable (ROOT/build/hzc -> ROOT), or under $HZC_ROOT when that is set. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emit.h"
#include "import.h"
#include "plan.h"
#include "spec.h"
#include "timemodel.h"

#ifndef HZC_CUDA_DIR
#define HZC_CUDA_DIR ""
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hzc COMMAND [options]\n"
            "Compile a decoder language model description (YAML) into a dedicated trainer.\n\n"
            "commands:\n"
            "  hzc check SPEC                   validate a model description\n"
            "  hzc plan SPEC [--gpu-mem SIZE] [--host-mem SIZE] [--boundaries auto|gpu|host]\n"
            "               [--ceilings FILE] [--json]\n"
            "                                   print the memory plan, the step schedule and\n"
            "                                   the predicted step time\n"
            "  hzc build SPEC -o DIR [--backend cpu|cuda] [--gpu-mem SIZE] [--host-mem SIZE]\n"
            "               [--boundaries auto|gpu|host] [--ceilings FILE]\n"
            "                                   write DIR/generated/{schedule.c,kernels.cu,"
            "plan.json}\n"
            "                                   and link the trainer DIR/train\n"
            "  hzc import HF_DIR -o SPEC.yaml   write a model description from a Hugging Face\n"
            "                                   checkpoint's config.json (Llama, Qwen2, Mistral)\n"
            "  hzc --help | --version\n\n"
            "SIZE: bytes, or a number with K/M/G/T (binary: 80G = 80 GiB), KiB/MiB/GiB/TiB,\n"
            "or KB/MB/GB/TB (decimal). --boundaries: where the layers' input activations live\n"
            "(auto: on the GPU unless --gpu-mem needs them on the host). The default backend\n"
            "is cuda when hzc was built with the CUDA toolkit, else cpu. See docs/ for the\n"
            "model description and the plan. --ceilings: the machine's rates for the step-time\n"
            "model (JSON; default: one H200 as measured, see docs/plan.md).\n");
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

typedef struct options {
    const char *command, *spec, *out_dir, *backend, *ceilings;
    plan_limits lim;
    int json;
} options;

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

static int mkdir_p(const char *path)
{
    char *buf = strdup(path);
    int rc = buf ? 0 : -1;
    for (char *p = buf ? buf + 1 : NULL; rc == 0 && *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) rc = -1;
        *p = '/';
    }
    if (rc == 0 && mkdir(buf, 0777) != 0 && errno != EEXIST) rc = -1;
    free(buf);
    return rc;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Run a shell command, echoing it; returns its exit status. */
static int run(const char *cmd)
{
    fprintf(stderr, "  %s\n", cmd);
    int rc = system(cmd);
    return rc == 0 ? 0 : 1;
}

static int build(const options *o, const hzc_plan *pl, const char *root)
{
    char tdir[2 * PATH_MAX], kdir[2 * PATH_MAX], gen[2 * PATH_MAX], path[3 * PATH_MAX];
    snprintf(tdir, sizeof tdir, "%s/templates", root);
    snprintf(kdir, sizeof kdir, "%s/runtime/cuda", root);
    snprintf(gen, sizeof gen, "%s/generated", o->out_dir);
    char cudalib[2 * PATH_MAX];
    snprintf(cudalib, sizeof cudalib, "%s/build/libhzrt_cuda.a", root);
    const char *backend = o->backend ? o->backend : (file_exists(cudalib) ? "cuda" : "cpu");
    const hz_caps *caps = hz_caps_find(backend);
    if (!caps) {
        fprintf(stderr, "hzc: error: unknown backend '%s' (cpu or cuda)\n", backend);
        return 1;
    }
    char hds[64];
    if (!hz_caps_head_dim_ok(caps, pl->p.dims.HD, hds, sizeof hds)) {
        fprintf(stderr, "hzc: error: the %s backend's attention kernels support head_dim %s; "
                        "%s has %lld (use --backend cpu)\n",
                backend, hds, o->spec, (long long)pl->p.dims.HD);
        return 1;
    }
    if (mkdir_p(gen) != 0) {
        fprintf(stderr, "hzc: error: cannot create %s: %s\n", gen, strerror(errno));
        return 1;
    }
    static const char *const outputs[][2] = {
        {"schedule.c.tmpl", "schedule.c"}, {"kernels.cu.tmpl", "kernels.cu"},
        {"plan.json.tmpl", "plan.json"}};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", gen, outputs[i][1]);
        if (emit_render(tdir, i == 1 ? kdir : NULL, outputs[i][0], o->spec, pl, path) != 0)
            return 1;
        fprintf(stderr, "hzc: wrote %s\n", path);
    }
    char lib[2 * PATH_MAX];
    snprintf(lib, sizeof lib, "%s/build/libhzrt_%s.a", root, backend);
    if (!file_exists(lib)) {
        fprintf(stderr, "hzc: error: %s is missing: %s\n", lib,
                !strcmp(backend, "cuda") ? "this hzc was built without the CUDA toolkit "
                                           "(./configure --with-cuda=DIR), or use --backend cpu"
                                         : "run make first");
        return 1;
    }
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    char cmd[16 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "%s -std=c11 -O2 -I'%s/runtime' -c '%s/schedule.c' -o '%s/schedule.o'",
             cc, root, gen, gen);
    if (run(cmd) != 0) return 1;
    if (!strcmp(backend, "cuda")) {
        const char *cuda = getenv("CUDA_HOME") && *getenv("CUDA_HOME") ? getenv("CUDA_HOME")
                                                                         : HZC_CUDA_DIR;
        snprintf(cmd, sizeof cmd,
                 "%s -o '%s/train' '%s/schedule.o' '%s' -L'%s/lib64' -L'%s/lib64/stubs' "
                 "-Wl,-rpath,'%s/lib64' -lcublasLt -lcudart -lnvrtc -lcuda -fopenmp -lpthread -lm",
                 cc, o->out_dir, gen, lib, cuda, cuda, cuda);
    } else {
        snprintf(cmd, sizeof cmd, "%s -o '%s/train' '%s/schedule.o' '%s' -fopenmp -lpthread -lm",
                 cc, o->out_dir, gen, lib);
    }
    if (run(cmd) != 0) {
        fprintf(stderr, "hzc: error: linking %s/train failed\n", o->out_dir);
        return 1;
    }
    fprintf(stderr, "hzc: built %s/train (%s backend)\n", o->out_dir, backend);
    return 0;
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
    if (strcmp(cmd, "check") && strcmp(cmd, "plan") && strcmp(cmd, "build")) {
        fprintf(stderr, "hzc: error: unknown command '%s' (check, plan, build or import; see "
                        "hzc --help)\n",
                cmd);
        return 1;
    }
    options o;
    if (parse_options(argc, argv, &o) != 0) return 1;
    if (!strcmp(cmd, "build") && !o.out_dir) {
        fprintf(stderr, "hzc: error: build needs -o DIR\n");
        return 1;
    }
    hzc_spec spec;
    int errors = spec_load(o.spec, &spec, stderr);
    if (errors) {
        fprintf(stderr, "%s: %d error%s\n", o.spec, errors, errors == 1 ? "" : "s");
        return 1;
    }
    if (!strcmp(cmd, "check")) {
        printf("%s: ok (%s, %lld parameters)\n", o.spec, spec.name,
               (long long)spec_param_count(&spec));
        return 0;
    }
    tm_ceilings ceil;
    if (o.ceilings) {
        char note[256], err[1024];
        if (tm_load(&ceil, o.ceilings, note, sizeof note, err, sizeof err) != 0) {
            fprintf(stderr, "hzc: %s\n", err);
            return 1;
        }
        if (note[0])
            fprintf(stderr, "hzc: note: %s has no %s; the H200 defaults stand in for them\n",
                    o.ceilings, note);
    } else {
        tm_defaults(&ceil);
    }
    hzc_plan pl;
    int bad = plan_build(&spec, &o.lim, &pl, stderr);
    tm_predict(&pl.p, &ceil);
    pl.p.pred.ceilings = ceil.name;
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
            tm_print(&pl.p, stdout);
        }
    } else if (!bad) {
        rc = build(&o, &pl, root);
    }
    plan_free(&pl);
    return rc;
}
