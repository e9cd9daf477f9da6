/* runtime/metrics.h - the trainer's metrics log (metrics.c): JSON Lines, one object per
 * step, per evaluation and per sample, a run header and a summary, each line flushed as it
 * is written so that a crash loses nothing already logged (docs/training.md "Metrics"). */
#ifndef HZ_METRICS_H
#define HZ_METRICS_H
#include "rt.h"

typedef struct hz_metrics hz_metrics;

/* The log: FILE (--metrics, truncated; NULL none) and OUT_DIR/metrics.jsonl (--out with
 * --metrics, appended, so a resumed run continues the history; NULL none). NULL when neither is
 * given; a file that cannot be opened stops the trainer with a message. */
hz_metrics *hz_metrics_open(const char *file, const char *out_dir);
/* {"type": "run", ...}: what ran and where its plan and trace are (the trainer's own
 * DIR/generated/plan.json, which hzc report reads; TRACE: --trace, opened already, or NULL). */
void hz_metrics_run(hz_metrics *m, const hz_plan *p, const char *trace,
                    int64_t first_step, int64_t steps);
/* {"type": "step", ...} for 0-based STEP. */
void hz_metrics_step(hz_metrics *m, int64_t step, double loss, double norm, double lr,
                     double seconds, int64_t step_tokens, double flops_per_token,
                     int64_t trained_tokens);
/* {"type": "eval", "step": N, "val_loss": X} after N steps. */
void hz_metrics_eval(hz_metrics *m, int64_t steps, double val_loss);
/* {"type": "sample", "step": N, "tokens": [...], "text": ...} (TEXT NULL: no text). */
void hz_metrics_sample(hz_metrics *m, int64_t steps, const int32_t *tokens, int64_t n,
                       const char *text);
/* {"type": "summary", ...}: the throughput of the steps after the first and the memory
 * lines, planned beside measured (LINES, as the summary prints them). */
void hz_metrics_summary(hz_metrics *m, int64_t steps, double final_loss, double tok_s,
                        double tflops, const hz_mem_line *lines, int line_n);
/* {"type": "kernels", ...}: train --profile-kernels' rows of one step, as printed
 * (docs/training.md "Kernel profile"). */
void hz_metrics_kernels(hz_metrics *m, const hz_kprof *kp, const hz_plan *p);
void hz_metrics_close(hz_metrics *m);

#endif
