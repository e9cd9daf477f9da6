/* runtime/data.h - the trainer's token data reader.
 * Opens one file or a glob of shards (llm.c .bin shards or 1-D .npy arrays), checks every
 * token against the vocabulary once at open, and serves (inputs, targets) rows from the
 * shards read in name order as one stream that wraps around at the end (a new epoch). */
#ifndef HZ_DATA_H
#define HZ_DATA_H
#include <stdint.h>

#define HZ_DATA_ERR_BYTES 512   /* size of the err buffer hz_data_open writes */

typedef struct hz_data hz_data;   /* opaque */

/* Open PATTERN: a file path, or a glob (any of * ? [) whose matches are read sorted by
 * name (strcmp order). Formats, told apart by content:
 *   llm.c shards: 256 int32 header (header[0]=magic, [1]=version, [2]=token count), then
 *     the tokens: magic 20240520 version 1 -> uint16, magic 20240801 version 7 -> uint32;
 *   .npy (format 1.0, 2.0 or 3.0): 'descr' '<u2' or '<u4', 'fortran_order' False, 'shape' (n,).
 * Every token is checked < vocab; the data must hold at least min_tokens tokens in all
 * (one optimizer step's worth + 1). On error returns NULL and writes one message into err
 * (HZ_DATA_ERR_BYTES, may be NULL) that names the file and what is wrong. */
hz_data *hz_data_open(const char *pattern, int64_t vocab, int64_t min_tokens, char *err);

/* Total tokens across shards. */
int64_t hz_data_tokens(const hz_data *d);

/* Fill one sequence row: inputs[t] = tok[pos+t], targets[t] = tok[pos+t+1] for t < T,
 * reading across shard boundaries as one stream; the position then advances by T. When
 * fewer than T+1 tokens remain from pos, the row starts at 0 instead (a new epoch).
 * Needs T + 1 <= hz_data_tokens(d), which min_tokens at open is there to guarantee. */
void hz_data_next_row(hz_data *d, int32_t *inputs, int32_t *targets, int64_t T);

/* The stream position (the next row's first token), saved in a checkpoint for resume. */
int64_t hz_data_position(const hz_data *d);

/* Resume at POSITION. One outside [0, hz_data_tokens] (the data changed since the
 * checkpoint) restarts at 0. */
void hz_data_seek(hz_data *d, int64_t position);

/* Unmap and free everything; NULL is allowed. */
void hz_data_close(hz_data *d);

#endif
