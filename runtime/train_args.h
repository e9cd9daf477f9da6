/* runtime/train_args.h - the trainer's command line (train_args.c): every flag, its range
 * and the defaults the plan gives (hzg_plan.train). */
#ifndef HZ_TRAIN_ARGS_H
#define HZ_TRAIN_ARGS_H
#include "rt.h"

/* The flags' sane ranges (docs/training.md lists them): far beyond any useful value, far
 * below float overflow. */
#define MAX_THREADS 1024
#define MAX_LR 10.0
#define MAX_EPS 1.0
#define MAX_WEIGHT_DECAY 10.0
#define MAX_GRAD_CLIP 1e6

typedef struct train_args {
    const char *data, *val_data, *init_raw, *save_raw, *trace, *init_hf, *out, *resume, *logits;
    int64_t steps, log_every, eval_every, eval_batches, seed, save_every, keep, data_seed;
    int64_t trace_first, trace_last; /* --trace-steps, 1-based, inclusive */
    int64_t max_bad_steps;           /* stop after this many non-finite steps in a row */
    double val_fraction;
    int threads, deterministic;
    int sync_save;                   /* --sync-save: training stops while a checkpoint is written */
    hz_optim optim;
    int probe;                       /* --probe: measure the machine, write probe_out */
    const char *probe_out;           /* -o FILE */
    const char *train_flag;          /* the first flag given that only training reads */
    const char *metrics;             /* --metrics FILE.jsonl */
    int64_t profile_kernels;         /* --profile-kernels [STEP]: -1 off, 0 the run's second
                                      * step (its first when it has one), else the 1-based step */
    /* --sample-every N, --sample-prompt, --sample-tokens, --sample-temperature, --sample-top-k */
    int64_t sample_every, sample_tokens, sample_top_k;
    const char *sample_prompt;
    double sample_temperature;
    int attention; /* --attention: enum hz_attention_mode (runtime/rt.h), default AUTO (0) */
} train_args;

/* The flags of argv, checked (a bad one stops the trainer with what to do; --help prints
 * the usage and exits 0). */
train_args hz_train_parse_args(int argc, char **argv);
/* "train: error: MSG: ARG" and exit 1. */
void hz_train_die(const char *msg, const char *arg);

#endif
