/* runtime/train_raw.h - the trainer's raw master files (train_raw.c). */
#ifndef HZ_TRAIN_RAW_H
#define HZ_TRAIN_RAW_H
#include "rt.h"

/* --init-raw: exactly host_store_n fp32 masters in store order into the store; exits with a
 * message when the file cannot be read or has another count. */
void hz_train_load_raw(hz_store *s, const char *path);
/* --save-raw: the store's fp32 masters in store order; exits with a message on failure. */
void hz_train_save_raw(const hz_store *s, const char *path);

#endif
