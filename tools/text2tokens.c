/* tools/text2tokens.c - turn a text file into byte-level (vocab 256) llm.c token shards.
 *   text2tokens IN.txt OUT_TRAIN.bin OUT_VAL.bin VAL_FRACTION
 * Every byte is one token; the first (1 - VAL_FRACTION) of the bytes go to the training
 * shard and the rest to the validation shard, each an llm.c uint16 shard (magic 20240520,
 * version 1) that runtime/data.c reads. Build with -DTEXT2TOKENS_NO_MAIN to link
 * text_to_shards into a test. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_N 256    /* int32 words */
#define ERR_BYTES 512         /* size of the err buffer text_to_shards writes */

int text_to_shards(const char *in, const char *train, const char *val, double val_frac,
                   char *err);

static void put_u32le(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Write BYTES[0..n) as one shard of n uint16 tokens. */
static int write_shard(const char *path, const unsigned char *bytes, size_t n, char *err) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, ERR_BYTES, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    unsigned char header[SHARD_HEADER_N * 4] = {0};
    put_u32le(header + 0, SHARD_MAGIC);
    put_u32le(header + 4, SHARD_VERSION);
    put_u32le(header + 8, (uint32_t)n);
    int ok = fwrite(header, 1, sizeof header, f) == sizeof header;
    unsigned char buf[8192];   /* 4096 tokens, little-endian uint16 */
    for (size_t i = 0; ok && i < n; i += sizeof buf / 2) {
        size_t k = n - i < sizeof buf / 2 ? n - i : sizeof buf / 2;
        for (size_t j = 0; j < k; j++) {
            buf[2 * j] = bytes[i + j];
            buf[2 * j + 1] = 0;
        }
        ok = fwrite(buf, 2, k, f) == k;
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        snprintf(err, ERR_BYTES, "%s: write failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Convert IN into the TRAIN and VAL shards, the last val_frac of the bytes (rounded down)
 * going to VAL. 0 on success; else -1 with one message in err (ERR_BYTES). */
int text_to_shards(const char *in, const char *train, const char *val, double val_frac,
                   char *err) {
    if (!(val_frac >= 0.0 && val_frac < 1.0)) {
        snprintf(err, ERR_BYTES, "VAL_FRACTION %g out of range: need 0 <= VAL_FRACTION < 1",
                 val_frac);
        return -1;
    }
    FILE *f = fopen(in, "rb");
    if (!f) {
        snprintf(err, ERR_BYTES, "%s: cannot open: %s", in, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *text = malloc(cap);
    for (;;) {
        if (!text) {
            snprintf(err, ERR_BYTES, "%s: out of memory", in);
            fclose(f);
            return -1;
        }
        n += fread(text + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *grown = realloc(text, cap * 2);
        if (!grown) free(text);
        text = grown;
        cap *= 2;
    }
    int read_failed = ferror(f);
    fclose(f);
    if (read_failed) {
        snprintf(err, ERR_BYTES, "%s: read error", in);
        free(text);
        return -1;
    }
    if (n > INT32_MAX) {
        snprintf(err, ERR_BYTES, "%s: %zu bytes is more than one shard holds (%d tokens); "
                 "split the file", in, n, INT32_MAX);
        free(text);
        return -1;
    }
    size_t val_n = (size_t)((double)n * val_frac);
    size_t train_n = n - val_n;
    if (train_n == 0) {
        snprintf(err, ERR_BYTES, "%s: empty file: no text to make tokens of", in);
        free(text);
        return -1;
    }
    int rc = write_shard(train, text, train_n, err);
    if (rc == 0) rc = write_shard(val, text + train_n, val_n, err);
    free(text);
    return rc;
}

#ifndef TEXT2TOKENS_NO_MAIN
int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s IN.txt OUT_TRAIN.bin OUT_VAL.bin VAL_FRACTION\n"
                "  byte-level (vocab 256) llm.c uint16 shards; the last VAL_FRACTION of the "
                "bytes (e.g. 0.1) go to OUT_VAL.bin\n", argv[0]);
        return 2;
    }
    char *end;
    double val_frac = strtod(argv[4], &end);
    if (end == argv[4] || *end != 0) {
        fprintf(stderr, "text2tokens: error: VAL_FRACTION '%s' is not a number (e.g. 0.1)\n",
                argv[4]);
        return 2;
    }
    char err[ERR_BYTES];
    if (text_to_shards(argv[1], argv[2], argv[3], val_frac, err) != 0) {
        fprintf(stderr, "text2tokens: error: %s\n", err);
        return 1;
    }
    printf("text2tokens: %s -> %s, %s (byte-level, vocab 256, val fraction %g)\n", argv[1],
           argv[2], argv[3], val_frac);
    return 0;
}
#endif
