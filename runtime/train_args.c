/* runtime/train_args.c - the trainer's command line: the usage text, the flags' parsing and
 * their checks (ranges, combinations, data that cannot fit the plan). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "train_args.h"

static void usage(FILE *out, const char *argv0)
{
    fprintf(out,
            "usage: %s --data PATH [options]\n"
            "       %s --probe [-o FILE] [--threads N]\n"
            "Train %s (hzc %s, %s backend) on token data, or measure this machine for hzc's\n"
            "step-time model.\n\n"
            "  --data PATH          training tokens: llm.c shards (.bin, uint16 or uint32), a\n"
            "                       quoted glob of shards, a 1-D .npy of uint16/uint32, or\n"
            "                       .jsonl of {\"input_ids\": [...], \"labels\": [...]} examples\n"
            "                       (label -100: not trained; tools/prepare_sft.py makes them),\n"
            "                       packed into rows, shuffled every epoch\n"
            "  --val-data PATH      validation data (same formats)\n"
            "  --val-fraction X     hold out the last fraction X of --data for validation\n"
            "  --data-seed N        shuffle seed of .jsonl data (default: --seed)\n"
            "  --steps N            optimizer steps in all (default 100); a resumed run\n"
            "                       continues up to N\n"
            "  --init HF_DIR        start from a Hugging Face checkpoint (model.safetensors or\n"
            "                       shards with model.safetensors.index.json)\n"
            "  --out DIR            write checkpoints there: DIR/step-N/ holds config.json and\n"
            "                       model.safetensors (transformers loads them) and resume.bin\n"
            "  --save-every N       a checkpoint every N steps (default: only at the end)\n"
            "  --keep K             keep the K newest checkpoints (default: all)\n"
            "  --sync-save          stop training while a --save-every checkpoint is written\n"
            "                       (default: training goes on; the same bytes either way)\n"
            "  --resume PATH        continue exactly from a checkpoint (or the newest in a\n"
            "                       --out directory)\n"
            "  --lr X --beta1 X --beta2 X --eps X --weight-decay X --grad-clip X (0 = off)\n"
            "  --warmup N --decay-steps N --min-lr-ratio X\n"
            "                       override the spec's training values; ranges: --lr 0-%g,\n"
            "                       --beta1/--beta2 0 to below 1, --eps 0-%g, --weight-decay\n"
            "                       0-%g, --grad-clip 0-%g, --min-lr-ratio 0-1\n"
            "  --max-bad-steps N    a step whose loss or gradient norm is not finite is\n"
            "                       skipped (no update); stop after N of them in a row\n"
            "                       (default 3; docs/training.md \"Divergence\")\n"
            "  --seed N             weight init seed (default: the spec's)\n"
            "  --log-every N        print a step line every N steps (default 1)\n"
            "  --eval-every N       validation loss every N steps (default 0 = at the end only)\n"
            "  --eval-batches N     validation steps' worth of tokens per evaluation (default 1)\n"
            "  --threads N          host threads for the optimizer, 1 to %d (default: all cores)\n"
            "  --deterministic      bit-identical results from run to run, and across --resume\n"
            "                       (cuda: ordered sums replace float atomics; the cpu\n"
            "                       backend always is)\n"
            "  --attention auto|cudnn|hzc\n"
            "                       attention of the full-attention layers (cuda): cuDNN's\n"
            "                       fused SDPA, loaded at start, or hzc's kernels (default:\n"
            "                       auto: cuDNN when it loads and accepts the model's\n"
            "                       shape, else hzc's); --deterministic and sliding-window\n"
            "                       layers always use hzc's\n"
            "  --init-raw FILE      initial fp32 master weights, host_store_n floats in the\n"
            "                       host store's order (plan.json \"tensors\": host_offset)\n"
            "  --save-raw FILE      write the fp32 master weights there after training\n"
            "  --dump-logits FILE   at the end, the logits of the first validation step as a\n"
            "                       float32 .npy of (tokens per step, vocab), for comparing\n"
            "                       with another implementation\n"
            "  --trace FILE         write a Chrome trace (chrome://tracing, Perfetto) of every\n"
            "                       step: one track per stream and one for the optimizer\n",
            argv0, argv0, hzg_plan.spec_name, HZ_VERSION, hz_backend_impl.name, MAX_LR, MAX_EPS,
            MAX_WEIGHT_DECAY, MAX_GRAD_CLIP, MAX_THREADS);
    fprintf(out,
            "  --metrics FILE       JSON Lines: one object per step, evaluation and sample, a\n"
            "                       run header and a summary, each flushed as written (with\n"
            "                       --out DIR also appended to DIR/metrics.jsonl); hzc report\n"
            "                       turns it into a page of plots\n"
            "  --sample-every N     every N steps and at the end, generate --sample-tokens K\n"
            "                       (default 64) after --sample-prompt TEXT (a byte-level\n"
            "                       model's text, else token ids: 1,2,3) from the current\n"
            "                       weights; --sample-temperature T (default 1; 0: greedy),\n"
            "                       --sample-top-k K (default 0: all tokens)\n"
            "  --trace-steps A-B    trace only steps A to B (A, A-: from A on; default all)\n"
            "  --profile-kernels [STEP]\n"
            "                       time every kernel, GEMM and copy of one step (default: the\n"
            "                       run's second) and print a table by kind: calls, time,\n"
            "                       TFLOP/s or GB/s, the fraction of the plan's ceilings, the\n"
            "                       share of each stream; with --metrics also a \"kernels\" record\n"
            "  --probe              measure this machine's rates at this plan's shapes (GEMMs,\n"
            "                       attention, device memory, PCIe each way, the host AdamW)\n"
            "                       and write them as a ceilings file for hzc plan/build\n"
            "                       --ceilings; trains nothing, needs no --data (cuda backend)\n"
            "  -o FILE              where --probe writes (default ceilings.json)\n"
            "  --help, --version\n"
            "SIGINT, SIGTERM or SIGHUP: finish the step, save a checkpoint under --out, exit\n"
            "128 + the signal's number; a second one: exit at once\n"
            "A trainer built for several hosts (hzc build --hosts H) runs one a host, with\n"
            "RANK (0 to H - 1), WORLD_SIZE (H), MASTER_ADDR (host 0's address) and MASTER_PORT\n"
            "set as torchrun sets them; HZ_HOSTS_TIMEOUT: seconds to wait for the others\n"
            "(default 300); host 0 alone writes checkpoints\n");
}

void hz_train_die(const char *msg, const char *arg)
{
    fprintf(stderr, "train: error: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    exit(1);
}

static int64_t parse_int(const char *flag, const char *v, int64_t min)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v || x < min) {
        fprintf(stderr, "train: error: %s expects an integer >= %lld, got '%s'\n", flag,
                (long long)min, v);
        exit(1);
    }
    return x;
}

/* An integer in [min, max]. */
static int64_t parse_int_in(const char *flag, const char *v, int64_t min, int64_t max)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v || x < min || x > max) {
        fprintf(stderr, "train: error: %s expects an integer from %lld to %lld, got '%s'\n",
                flag, (long long)min, (long long)max, v);
        exit(1);
    }
    return x;
}

/* A number in [min, max] (max below FLT_MAX: every value is finite as a float). */
static float parse_float(const char *flag, const char *v, double min, double max)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !(x >= min && x <= max)) {
        fprintf(stderr, "train: error: %s expects a number from %g to %g, got '%s'\n", flag,
                min, max, v);
        exit(1);
    }
    return (float)x;
}

/* A-B, A or A- (1-based steps, A <= B) */
static void parse_steps(const char *flag, const char *v, int64_t *first, int64_t *last)
{
    char *end;
    errno = 0;
    long long a = strtoll(v, &end, 10), b = a;
    int ok = !errno && end != v;
    if (ok && *end == '-') {
        const char *w = end + 1;
        if (!*w) b = INT64_MAX, end = (char *)w; /* A-: from A on */
        else b = strtoll(w, &end, 10), ok = !errno && end != w;
    }
    if (!ok || *end || a < 1 || b < a) {
        fprintf(stderr, "train: error: %s expects steps A-B, A or A- with 1 <= A <= B, got '%s'\n",
                flag, v);
        exit(1);
    }
    *first = a;
    *last = b;
}

train_args hz_train_parse_args(int argc, char **argv)
{
    const hz_train_defaults *t = &hzg_plan.train;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (int)cores;
    train_args a = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 100, 1, 0, 1, t->seed, 0, 0,
                    -1, 0, 0, 3, 0.0, threads, 0, 0,
                    {t->lr, t->beta1, t->beta2, t->eps, t->weight_decay, t->grad_clip,
                     t->min_lr_ratio, t->warmup_steps, t->decay_steps},
                    0, NULL, NULL, NULL, -1, 0, 64, 0, NULL, 1.0, HZ_ATTENTION_AUTO};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout, argv[0]);
            exit(0);
        }
        if (!strcmp(f, "--version")) {
            printf("hzc %s trainer for %s (%s backend)\n", HZ_VERSION, hzg_plan.spec_name,
                   hz_backend_impl.name);
            exit(0);
        }
        if (!strcmp(f, "--deterministic")) {
            a.deterministic = 1;
            if (!a.train_flag) a.train_flag = f;
            continue;
        }
        if (!strcmp(f, "--sync-save")) {
            a.sync_save = 1;
            if (!a.train_flag) a.train_flag = f;
            continue;
        }
        if (!strcmp(f, "--probe")) {
            a.probe = 1;
            continue;
        }
        if (!strcmp(f, "--profile-kernels")) { /* an optional STEP: the next word if a number */
            a.profile_kernels = 0;
            if (!a.train_flag) a.train_flag = f;
            if (i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9')
                a.profile_kernels = parse_int(f, argv[++i], 1);
            continue;
        }
        if (!strcmp(f, "--gpus") || !strcmp(f, "--hosts") || !strcmp(f, "--nproc-per-node")) {
            /* torchrun's habit: the count is the plan's, fixed when the trainer was built */
            fprintf(stderr, "train: error: %s: this trainer's GPUs and hosts are its plan's (%lld "
                            "GPU%s a host, %lld host%s): build one for another count with hzc "
                            "build --gpus N / --hosts H; several hosts start one trainer each with "
                            "RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (see --help)\n",
                    f, (long long)hz_gpus(&hzg_plan.dims), hz_gpus(&hzg_plan.dims) == 1 ? "" : "s",
                    (long long)hz_hosts(&hzg_plan.dims), hz_hosts(&hzg_plan.dims) == 1 ? "" : "s");
            exit(1);
        }
        if (i + 1 >= argc || (strncmp(f, "--", 2) != 0 && strcmp(f, "-o") != 0)) {
            fprintf(stderr, "train: error: unknown or incomplete option '%s' (see --help)\n", f);
            exit(1);
        }
        const char *v = argv[++i];
        if (!strcmp(f, "-o")) {
            a.probe_out = v;
            continue;
        }
        /* --threads and --attention serve --probe as well as training */
        if (strcmp(f, "--threads") != 0 && strcmp(f, "--attention") != 0 && !a.train_flag)
            a.train_flag = f;
        if (!strcmp(f, "--data")) a.data = v;
        else if (!strcmp(f, "--val-data")) a.val_data = v;
        else if (!strcmp(f, "--init-raw")) a.init_raw = v;
        else if (!strcmp(f, "--save-raw")) a.save_raw = v;
        else if (!strcmp(f, "--trace")) a.trace = v;
        else if (!strcmp(f, "--metrics")) a.metrics = v;
        else if (!strcmp(f, "--sample-every")) a.sample_every = parse_int(f, v, 1);
        else if (!strcmp(f, "--sample-prompt")) a.sample_prompt = v;
        else if (!strcmp(f, "--sample-tokens")) a.sample_tokens = parse_int_in(f, v, 1, 1000000);
        else if (!strcmp(f, "--sample-temperature"))
            a.sample_temperature = parse_float(f, v, 0, 100);
        else if (!strcmp(f, "--sample-top-k"))
            a.sample_top_k = parse_int_in(f, v, 0, hzg_plan.dims.V);
        else if (!strcmp(f, "--trace-steps")) parse_steps(f, v, &a.trace_first, &a.trace_last);
        else if (!strcmp(f, "--dump-logits")) a.logits = v;
        else if (!strcmp(f, "--init")) a.init_hf = v;
        else if (!strcmp(f, "--out")) a.out = v;
        else if (!strcmp(f, "--resume")) a.resume = v;
        else if (!strcmp(f, "--save-every")) a.save_every = parse_int(f, v, 0);
        else if (!strcmp(f, "--keep")) a.keep = parse_int(f, v, 0);
        else if (!strcmp(f, "--data-seed")) a.data_seed = parse_int(f, v, 0);
        else if (!strcmp(f, "--val-fraction")) a.val_fraction = parse_float(f, v, 0, 1);
        else if (!strcmp(f, "--steps")) a.steps = parse_int(f, v, 0);
        else if (!strcmp(f, "--log-every")) a.log_every = parse_int(f, v, 1);
        else if (!strcmp(f, "--eval-every")) a.eval_every = parse_int(f, v, 0);
        else if (!strcmp(f, "--eval-batches")) a.eval_batches = parse_int(f, v, 1);
        else if (!strcmp(f, "--seed")) a.seed = parse_int(f, v, 0);
        else if (!strcmp(f, "--attention")) {
            if (!strcmp(v, "auto")) a.attention = HZ_ATTENTION_AUTO;
            else if (!strcmp(v, "cudnn")) a.attention = HZ_ATTENTION_CUDNN;
            else if (!strcmp(v, "hzc")) a.attention = HZ_ATTENTION_HZC;
            else {
                fprintf(stderr, "train: error: --attention %s: expected auto, cudnn or hzc\n", v);
                exit(1);
            }
        } else if (!strcmp(f, "--threads")) a.threads = (int)parse_int_in(f, v, 1, MAX_THREADS);
        else if (!strcmp(f, "--max-bad-steps")) a.max_bad_steps = parse_int(f, v, 1);
        else if (!strcmp(f, "--lr")) a.optim.lr = parse_float(f, v, 0, MAX_LR);
        else if (!strcmp(f, "--beta1")) a.optim.beta1 = parse_float(f, v, 0, 1);
        else if (!strcmp(f, "--beta2")) a.optim.beta2 = parse_float(f, v, 0, 1);
        else if (!strcmp(f, "--eps")) a.optim.eps = parse_float(f, v, 0, MAX_EPS);
        else if (!strcmp(f, "--weight-decay"))
            a.optim.weight_decay = parse_float(f, v, 0, MAX_WEIGHT_DECAY);
        else if (!strcmp(f, "--grad-clip")) a.optim.grad_clip = parse_float(f, v, 0, MAX_GRAD_CLIP);
        else if (!strcmp(f, "--warmup")) a.optim.warmup_steps = parse_int(f, v, 0);
        else if (!strcmp(f, "--decay-steps")) a.optim.decay_steps = parse_int(f, v, 0);
        else if (!strcmp(f, "--min-lr-ratio")) a.optim.min_lr_ratio = parse_float(f, v, 0, 1);
        else {
            fprintf(stderr, "train: error: unknown option '%s' (see --help)\n", f);
            exit(1);
        }
    }
    if (a.probe_out && !a.probe)
        hz_train_die("-o FILE is where --probe writes; checkpoints go to --out DIR", NULL);
    if (a.probe) {
        if (a.train_flag) {
            fprintf(stderr, "train: error: --probe measures the machine and trains nothing; "
                            "%s is for training: leave it out\n", a.train_flag);
            exit(1);
        }
        if (!hz_backend_impl.probe) {
            fprintf(stderr, "train: error: --probe measures a GPU; this trainer was built with "
                            "--backend %s\n", hz_backend_impl.name);
            exit(2);
        }
        if (!a.probe_out) a.probe_out = "ceilings.json";
        return a;
    }
    if (a.optim.beta1 >= 1 || a.optim.beta2 >= 1)
        hz_train_die("--beta1 and --beta2 must be below 1", NULL);
    if (!a.data) hz_train_die("no training data: pass --data PATH (see --help)", NULL);
    if (a.save_every && !a.out) hz_train_die("--save-every needs --out DIR", NULL);
    if (a.val_fraction >= 1) hz_train_die("--val-fraction must be below 1", NULL);
    if (a.val_fraction > 0 && a.val_data)
        hz_train_die("--val-fraction and --val-data: pass one", NULL);
    if (a.data_seed < 0) a.data_seed = a.seed;
    if (a.trace_first && !a.trace) hz_train_die("--trace-steps needs --trace FILE", NULL);
    if (a.profile_kernels > a.steps) {
        fprintf(stderr, "train: error: --profile-kernels %lld: the run ends at --steps %lld; "
                        "profile a step up to it\n",
                (long long)a.profile_kernels, (long long)a.steps);
        exit(1);
    }
    if (a.init_hf && a.resume)
        hz_train_die("--init and --resume both set the weights: pass one", NULL);
    if (a.logits && !a.val_data && a.val_fraction <= 0)
        hz_train_die("--dump-logits writes the logits of validation tokens: pass --val-data or "
            "--val-fraction", NULL);
    if (a.sample_every && !a.sample_prompt)
        hz_train_die("--sample-every needs --sample-prompt TEXT (or token ids)", NULL);
    if (a.sample_prompt && !a.sample_every)
        hz_train_die("--sample-prompt is for --sample-every N", NULL);
    if (a.logits || a.sample_every) {
        const hz_dims *d = &hzg_plan.dims;
        double gib = (double)d->step_tokens * (double)d->V * 4.0 / 1073741824.0;
        if (gib > 4.0) {
            fprintf(stderr, "train: error: %s would hold %.1f GiB of logits (%lld tokens x %lld "
                            "vocabulary x 4 bytes, a whole step's); it is meant for small "
                            "models\n",
                    a.logits ? "--dump-logits" : "--sample-every", gib,
                    (long long)d->step_tokens, (long long)d->V);
            exit(1);
        }
    }
    return a;
}

