/* compiler/tune.h - hzc tune: search the plan: section's choices and the micro-batch size
 * for the fastest predicted step that fits a machine's GPU and host memory
 * (docs/plan.md "hzc tune"). The planner decides what each choice costs; tune only asks. */
#ifndef HZC_TUNE_H
#define HZC_TUNE_H
#include <stdio.h>

#include "plan.h"
#include "spec.h"
#include "timemodel.h"

/* With post norms (spec_post_norms), the counts of keep_mlp_outputs searched: L * q / Q for
 * q = 0..Q, Q = TUNE_MLP_OUT_STEPS. */
#define TUNE_MLP_OUT_STEPS 4

/* One point of the search, and what the planner and the time model made of it. */
typedef struct tune_result {
    spec_plan plan;              /* the plan: section tried (set = 0: the spec's default);
                                  * its keep_mlp_outputs as planned (a count past the blocks
                                  * that recompute plans the same) */
    int64_t micro_tokens;        /* shape.tokens_per_micro_batch tried */
    int optimizer_state;         /* training.optimizer_state tried (enum hz_optstate_mode) */
    int fits;                    /* plan_build accepted it within both limits */
    int64_t gpu_bytes, host_bytes; /* as planned */
    int64_t pcie_bytes;          /* a step's copies both ways (hz_plan_pcie_bytes) */
    int weight_slots, host_grad_bf16, boundary_on_host; /* as planned (auto resolved) */
    double step_s;               /* predicted step */
    double tflops;               /* model TFLOP/s at step_s */
    char critical[224];          /* tm_critical_text */
} tune_result;

/* The search's outcome. BEST (the caller's array of BEST_CAP) is filled fastest first (tie:
 * fewer PCIe bytes, then less GPU memory, then the order found) with up to BEST_CAP plans that fit. */
typedef struct tune_search {
    tune_result *best;
    int best_cap, best_n;
    tune_result smallest;        /* when nothing fits: the plan that overflows the least */
    int states[HZ_OPTSTATE_MODE_N], states_n; /* the precisions searched, in order: the spec's,
                                  * or fp32, bf16 and int8 where it names none (BEST then holds
                                  * the most exact one's plans that fit) */
    int state_fits[HZ_OPTSTATE_MODE_N];
    tune_result state_best[HZ_OPTSTATE_MODE_N]; /* each one's fastest plan, or where none fits
                                  * its least-overflowing one */
    int64_t built_n;             /* plans built */
    int micro_n;                 /* micro-batch sizes tried */
    int64_t gpus;                /* the GPUs of one host the plans split the step over (the
                                  * spec's plan.gpus, else 1), written into every plan tried */
    int64_t hosts;               /* likewise the hosts (plan.hosts, else 1) */
    int micro_skipped_n;         /* micro-batch sizes not tried: their micro-batches per step
                                  * are not a multiple of gpus x hosts */
    double seconds;              /* wall time */
} tune_search;

/* Plan SPEC as it is, with PLAN in place of its plan: section and MICRO_TOKENS as its
 * micro-batch (a multiple of seq_len dividing tokens_per_step), into *R. */
void tune_eval(const hzc_spec *spec, const spec_plan *plan, int64_t micro_tokens,
               const plan_limits *lim, const tm_ceilings *ceil, tune_result *r);

/* Search every resident_ends, weight_slots (2, 3), host_gradients (fp32, bf16), boundaries
 * (gpu, host) and micro-batch size (those whose micro-batches divide over the GPUs); for each, keep_activations 0..L with the largest
 * resident_blocks whose GPU memory fits (the GPU bytes grow with both, so a walk down a
 * staircase finds them). LIM's boundaries must be auto. Fills *S; returns best_n. */
int tune_search_run(const hzc_spec *spec, const plan_limits *lim, const tm_ceilings *ceil,
                    tune_search *s);

/* hzc tune: search, print the best TOP_N and the default plan as a table to OUT, and with
 * OUT_PATH (else NULL) write the spec with the winner's plan: section there. 0, or 1 after
 * saying why on ERR (nothing fits; the file cannot be written). */
int tune_run(const hzc_spec *spec, const plan_limits *lim, const tm_ceilings *ceil, int top_n,
             const char *out_path, FILE *out, FILE *err);

#endif
