/* runtime/train_save.c - the trainer's checkpoints: written now (the updates drained) or
 * while training goes on (ckpt_async.c), and what the trainer prints of them. */
#include <stdio.h>
#include <stdlib.h>

#include "data.h"
#include "hfmap.h"
#include "rt.h"
#include "train_save.h"

static void die_nonfinite(int64_t steps)
{
    fprintf(stderr, "train: error: after step %lld some weights are not finite (inf or NaN): no "
                    "checkpoint written; lower --lr or --weight-decay, or set --grad-clip, and "
                    "restart from an earlier checkpoint\n",
            (long long)steps);
    exit(1);
}

static void print_saved(const train_args *a, int64_t steps, double sec, int64_t bytes,
                        const char *how)
{
    printf("checkpoint: %s/step-%08lld (%.1f s, %.2f GB at %.2f GB/s%s)\n", a->out,
           (long long)steps, sec, bytes * 1e-9, sec > 0 ? bytes * 1e-9 / sec : 0.0, how);
}

/* Wait for the checkpoint being written while training goes on, if any, and say how it went
 * (a failure stops the trainer: nothing of it was saved). */
void hz_train_finish_save(hz_ctx *c, const train_args *a)
{
    int64_t steps, bytes;
    double sec;
    char err[HZ_HF_ERR_BYTES];
    int rc = hz_ckpt_async_wait(c, &steps, &sec, &bytes, err);
    if (rc == 1) return;
    if (rc == -2) die_nonfinite(steps);
    if (rc != 0) {
        fprintf(stderr, "train: error: saving a checkpoint: %s\n", err);
        exit(1);
    }
    print_saved(a, steps, sec, bytes, ", written while training");
}

/* A checkpoint of the first STEPS steps; never of weights that are not finite (the save
 * checks every master as it writes, and writes nothing then). BACKGROUND: training goes on
 * while it is written (hz_ckpt_async_start); else the updates are drained and it is written
 * now. */
void hz_train_save(hz_ctx *c, hz_data *train, const train_args *a, int64_t steps,
                            int background)
{
    hz_train_finish_save(c, a); /* one at a time */
    hz_resume r = {steps, hz_data_position(train), (uint64_t)a->data_seed, c->store.state_mode};
    char err[HZ_HF_ERR_BYTES];
    if (background) {
        if (hz_ckpt_async_start(c, a->out, &r, (int)a->keep, err) != 0) {
            fprintf(stderr, "train: error: saving a checkpoint: %s\n", err);
            exit(1);
        }
        return;
    }
    hz_exec_drain(c);
    double t0 = hz_now_s();
    int64_t bytes = 0;
    int rc = hz_ckpt_save(&c->store, c->plan, a->out, &r, (int)a->keep, &bytes, err);
    if (rc == -2) die_nonfinite(steps);
    if (rc != 0) {
        fprintf(stderr, "train: error: saving a checkpoint: %s\n", err);
        exit(1);
    }
    double sec = hz_now_s() - t0;
    print_saved(a, steps, sec, bytes, "");
}
