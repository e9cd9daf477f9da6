/* runtime/ckpt_state.h - the state payload of a checkpoint's resume.bin (ckpt_state.c): the
 * master's low halves and the Adam moments in their precision, written, digested, read back,
 * and converted when the checkpoint's precision is not the plan's. */
#ifndef HZ_CKPT_STATE_H
#define HZ_CKPT_STATE_H
#include <stdio.h>

#include "digest.h"
#include "rt.h"

/* The payload of a store in optimizer-state MODE, over its N elements in store order, each
 * array whole before the next and starting at a multiple of 8 bytes (zeros between): lo
 * (int16), m, v (fp32, bf16 bits, or int8 codes: m signed, v unsigned), and in int8 mode
 * ms, vs (the fp32 absmax of each HZ_OPTSTATE_BLOCK elements). Its bytes (no padding after
 * the last array). */
int64_t hz_ckpt_state_bytes(int mode, int64_t n);

/* The payload's arrays in file order (HZ_ARR_*), and the offset of the K-th with its
 * *BYTES (0: the mode has no such array). */
#define HZ_CKPT_STATE_ARRAYS 5
extern const int hz_ckpt_state_arrays[HZ_CKPT_STATE_ARRAYS];
int64_t hz_ckpt_state_at(int mode, int64_t n, int k, int64_t *bytes);

/* The store's payload (in its own mode) into the digest D (may be NULL) and, with FD >= 0,
 * written to FD. 0, or -1 on a write error. */
int hz_ckpt_state_write(const hz_store *s, hz_digest *d, int fd);

/* Read a payload written in FILE_MODE from F (positioned at it) into the store, adding its
 * bytes to D in file order. The same mode: read as it is. Another: lo as it is, the moments
 * decoded to fp32 and encoded in the store's mode (bf16: rounded to nearest; int8: the
 * blockwise quantiser of runtime/optstate.h). F is left at the payload's end. 0, or -1
 * with a message in ERR (HZ_HF_ERR_BYTES): truncated, or a moment that is not finite and
 * cannot be converted. */
int hz_ckpt_state_read(hz_store *s, FILE *f, int file_mode, hz_digest *d, char *err);

#endif
