/* runtime/data.h - the trainer's token data reader.
 * Two kinds of data, told apart by the path:
 *   token streams: one file or a glob of shards (llm.c .bin shards or 1-D .npy arrays),
 *     read in name order as one stream that wraps around at the end (a new epoch);
 *   instruction-tuning examples: a path (or glob) ending in .jsonl, JSON Lines of
 *     pre-tokenized examples, shuffled every epoch and packed into rows.
 * Every token is checked against the vocabulary once at open. */
#ifndef HZ_DATA_H
#define HZ_DATA_H
#include <stddef.h>
#include <stdint.h>

#define HZ_DATA_ERR_BYTES 512   /* size of the err buffer hz_data_open writes */
#define HZ_DATA_IGNORE (-100)   /* a target that is not trained (the loss skips it) */

typedef struct hz_data hz_data;   /* opaque */

/* Which part of the data an hz_data serves. */
enum hz_data_split {
    HZ_DATA_ALL = 0,           /* everything */
    HZ_DATA_TRAIN = 1,         /* all but the last val_fraction */
    HZ_DATA_VAL = 2,           /* the last val_fraction */
};

typedef struct hz_data_opts {
    int64_t vocab;             /* every token id must be < vocab */
    int64_t min_tokens;        /* the part served must hold at least this many tokens
                                  (token streams) or trained targets (.jsonl) */
    uint64_t seed;             /* .jsonl: the shuffle seed; token streams ignore it */
    double val_fraction;       /* in [0, 1): the last fraction, rounded down, of the
                                  examples (.jsonl, by file order, before shuffling) or of
                                  the tokens (streams) forms the validation part */
    int split;                 /* enum hz_data_split; HZ_DATA_ALL ignores val_fraction */
} hz_data_opts;

/* Open PATTERN: a file path, or a glob (any of * ? [) whose matches are read sorted by
 * name (strcmp order).
 *
 * Token streams, told apart by content:
 *   llm.c shards: 256 int32 header (header[0]=magic, [1]=version, [2]=token count), then
 *     the tokens: magic 20240520 version 1 -> uint16, magic 20240801 version 7 -> uint32;
 *   .npy (format 1.0, 2.0 or 3.0): 'descr' '<u2' or '<u4', 'fortran_order' False, 'shape' (n,).
 *
 * JSON Lines (PATTERN ends in ".jsonl"): one example per line,
 *   {"input_ids": [int, ...], "labels": [int, ...]}
 * (other keys are ignored; blank lines are skipped but counted in line numbers). "labels"
 * is optional (absent or null: a copy of input_ids), has input_ids' length, and holds
 * token ids or -100 (not trained). As in Hugging Face, labels align with input_ids and
 * labels[i+1] is what the model predicts from input_ids[..i], so labels[0] is never
 * used. An example of n >= 2 tokens becomes n (input, target) pairs:
 *   (input_ids[i], labels[i+1]) for i < n-1, then (input_ids[n-1], -100),
 * so no loss crosses into the next example. hz_data_tokens counts these pairs.
 *
 * On error returns NULL and writes one message into err (HZ_DATA_ERR_BYTES, may be NULL)
 * that names the file (FILE:LINE for a bad line of a .jsonl) and what is wrong. */
hz_data *hz_data_open_opts(const char *pattern, const hz_data_opts *o, char *err);

/* Both parts of PATTERN (O's split is ignored): *train as HZ_DATA_TRAIN, *val as
 * HZ_DATA_VAL needing val_min_tokens. The data is read and checked once. 0, or -1 with a
 * message (that of the training part first, as two hz_data_open_opts calls would give). */
int hz_data_open_split(const char *pattern, const hz_data_opts *o, int64_t val_min_tokens,
                       hz_data **train, hz_data **val, char *err);

/* hz_data_open_opts with seed 0 and no split. */
hz_data *hz_data_open(const char *pattern, int64_t vocab, int64_t min_tokens, char *err);

/* JSON Lines held in memory (BYTES[0..bytes_n), need not end in a NUL), named NAME in
 * messages; otherwise as hz_data_open_opts on a .jsonl file. For tests and fuzzing. */
hz_data *hz_data_open_jsonl_memory(const char *name, const void *bytes, size_t bytes_n,
                                   const hz_data_opts *o, char *err);

/* Tokens of the part served: stream tokens, or (input, target) pairs of the examples. */
int64_t hz_data_tokens(const hz_data *d);

/* Examples of the part served (.jsonl); 0 for token streams. */
int64_t hz_data_examples(const hz_data *d);

/* Fill one sequence row of T (input, target) pairs.
 * Token streams: inputs[t] = tok[pos+t], targets[t] = tok[pos+t+1] for t < T, read across
 *   shard boundaries as one stream; the position then advances by T. When fewer than T+1
 *   tokens remain from pos, the row starts at 0 instead (a new epoch). Needs
 *   T + 1 <= hz_data_tokens(d), which min_tokens at open is there to guarantee.
 * .jsonl: the pairs of the examples, in this epoch's shuffled order, packed back to back.
 *   A row may end inside an example: the next row's first pair then continues it (its
 *   target is that example's next label, never a token of another example). After the
 *   last example of an epoch the next epoch's first example follows in the same row. */
void hz_data_next_row(hz_data *d, int32_t *inputs, int32_t *targets, int64_t T);

/* The position of the next row, saved in a checkpoint for resume.
 * Token streams: the next row's first token in the stream, in [0, hz_data_tokens].
 * .jsonl: the pairs served since epoch 0 began, epoch * hz_data_tokens(d) + the pairs
 *   served in this epoch; that one number fixes the epoch (so its shuffled order), the
 *   example's index in that order and the offset inside the example. */
int64_t hz_data_position(const hz_data *d);

/* Resume at POSITION, exactly where the reader that returned it stood, given the same
 * files and open options. Token streams: one outside [0, hz_data_tokens] (the data changed
 * since the checkpoint) restarts at 0. .jsonl: a negative one restarts at 0. */
void hz_data_seek(hz_data *d, int64_t position);

/* The epoch of the next row's first pair (.jsonl; 0 at open, restored by hz_data_seek).
 * Token streams: wrap-arounds since open (their position does not record it). */
int64_t hz_data_epoch(const hz_data *d);

/* Unmap and free everything; NULL is allowed. */
void hz_data_close(hz_data *d);

#endif
