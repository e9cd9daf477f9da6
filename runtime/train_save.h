/* runtime/train_save.h - the trainer's checkpoints (train_save.c). */
#ifndef HZ_TRAIN_SAVE_H
#define HZ_TRAIN_SAVE_H
#include "data.h"
#include "rt.h"
#include "train_args.h"

/* Wait for the checkpoint being written while training goes on, if any, and say how it
 * went (a failure stops the trainer: nothing of it was saved). */
void hz_train_finish_save(hz_ctx *c, const train_args *a);
/* A checkpoint of the first STEPS steps into A->out, keeping A->keep; never of weights that
 * are not finite (the save checks every master as it writes, and writes nothing then; the
 * trainer stops). BACKGROUND: training goes on while it is written; else the updates are
 * drained and it is written now. */
void hz_train_save(hz_ctx *c, hz_data *train, const train_args *a, int64_t steps,
                   int background);

#endif
