/* runtime/data_impl.h - what the token data reader's files share (none of it is public API):
 * the reader's state, a shard's mapping, and the calls between its parts:
 *   data.c        opening: the options, the paths of a pattern, the split, closing;
 *   data_shard.c  token shards: mapping a file, llm.c .bin shards, the vocab check;
 *   data_npy.c    1-D .npy arrays: the header dict;
 *   data_jsonl.c  JSON Lines examples: each one checked and appended as (input, target) pairs;
 *   data_rows.c   rows read across shards or packed from the examples, the epoch's shuffle,
 *                 the position and seek. */
#ifndef HZ_DATA_IMPL_H
#define HZ_DATA_IMPL_H
#include <stdint.h>
#include <string.h>

#include "data.h"
#include "errf.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the data reader reads little-endian token files in place; byte-swap in data_load_token"
#endif

typedef struct shard {
    char *path;
    void *map;                 /* the whole file, read-only */
    size_t map_bytes;
    const unsigned char *tok;  /* first token, inside map */
    int width;                 /* bytes per token: 2 or 4 */
    int64_t tokens_n;
    int64_t start;             /* stream index of this shard's first token */
} shard;

struct hz_data {
    int jsonl;                 /* 1: examples of JSON Lines; 0: a token stream */
    int64_t tokens_n;          /* tokens of the part served (stream) or its pairs (jsonl) */
    int64_t epoch;             /* see hz_data_epoch */

    /* token streams: the part served is stream[base, base + tokens_n) */
    shard *shards;             /* (shards_n) in name order */
    int shards_n;
    int64_t all_n;             /* sum of the shards' tokens_n */
    int64_t base;
    int64_t pos;               /* next row's first token - base; 0 <= pos <= tokens_n */

    /* JSON Lines: example e owns pairs [ex_start[e], ex_start[e + 1]) in file order */
    int32_t *ids;              /* (tokens_n) pair inputs: input_ids */
    int32_t *tgt;              /* (tokens_n) pair targets: the next label, or -100 */
    int64_t *ex_start;         /* (examples_n + 1) */
    int64_t examples_n;
    int64_t pairs_cap, ex_cap; /* allocated entries of ids/tgt and ex_start, while parsing */
    int64_t *order;            /* (examples_n) this epoch's example order */
    uint64_t seed;
    int64_t index;             /* next pair: example order[index] ... */
    int64_t offset;            /* ... its pair at this offset */
    int64_t epoch_pos;         /* pairs served in this epoch */
};

#define set_err(err, ...) hz_errf(err, HZ_DATA_ERR_BYTES, __VA_ARGS__)

/* Token I of a shard's tokens TOK, WIDTH (2 or 4) bytes each, little-endian. */
static inline uint32_t data_load_token(const unsigned char *tok, int width, int64_t i) {
    if (width == 2) {
        uint16_t v;
        memcpy(&v, tok + 2 * i, 2);
        return v;
    }
    uint32_t v;
    memcpy(&v, tok + 4 * i, 4);
    return v;
}

/* data_shard.c */
/* Map PATH read-only into *map, *map_bytes. An empty token shard is an error (no format
 * is empty); an empty .jsonl (JSONL set) gives *map NULL and 0 bytes, for the parser to
 * report with a line number. */
int data_map_file(const char *path, int jsonl, void **map_out, size_t *map_bytes, char *err);
/* Set s->tokens_n from the file's claim after checking the bytes that follow hold exactly
 * that many tokens of s->width bytes from DATA_OFF on. */
int data_check_bytes(shard *s, size_t data_off, int64_t claimed_n, char *err);
/* Map and parse one shard (s->path); check its tokens against VOCAB unless vocab is 0 (the
 * shard was checked already by this process). */
int data_open_shard(shard *s, int64_t vocab, char *err);
/* Tokens [FROM, FROM + N) of S read: their pages given back to the kernel (still cached;
 * read again from the cache if needed), so the trainer's RSS does not keep the data set. */
void data_release(const shard *s, int64_t from, int64_t n);

/* data_npy.c: a mapped .npy file (magic already seen): its header, then data_check_bytes. */
int data_parse_npy(shard *s, char *err);

/* data_jsonl.c: append the examples of the JSON Lines text BYTES[0..n) named NAME. */
int data_jsonl_parse(hz_data *d, const char *name, const char *bytes, size_t n, int64_t vocab,
                     char *err);

/* data_rows.c: start epoch E of D's examples (its shuffled order, position 0). */
void data_jsonl_start_epoch(hz_data *d, int64_t e);

#endif
