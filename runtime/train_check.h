/* runtime/train_check.h - the trainer's refusals before any work (train_check.c). */
#ifndef HZ_TRAIN_CHECK_H
#define HZ_TRAIN_CHECK_H
#include "hz.h"
#include "train_args.h"

/* Exit with a message unless the plan runs on one GPU, every output path in A can be
 * written (--out's directory is created) and the host has the plan's memory available. */
void hz_train_check(const hz_plan *p, const train_args *a);

#endif
