/* runtime/train_raw.c - the trainer's raw fp32 master files, --init-raw and --save-raw, moved
 * by the parallel file engine; resident units' state is reached through the backend. (A
 * checkpoint checks that every master is finite as it writes: ckpt_files.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "pario.h"
#include "rt.h"
#include "train_args.h"
#include "train_raw.h"

/* Raw fp32 masters in the host store's order: the exchange format of the parity tests.
 * Moved by the parallel file engine (pario.h): each 8 MiB chunk is a run of whole floats,
 * joined from (or split into) w and lo a block at a time, wherever the elements live. */
#define RAW_BLOCK 4096

static int raw_fill(void *arg, int64_t off, int64_t n, void *buf, char *msg)
{
    (void)msg;
    const hz_store *s = arg;
    uint16_t w[RAW_BLOCK];
    int16_t lo[RAW_BLOCK];
    float *out = buf;
    for (int64_t i = 0; i < n / 4; i += RAW_BLOCK) {
        int64_t k = n / 4 - i < RAW_BLOCK ? n / 4 - i : RAW_BLOCK, at = off / 4 + i;
        hz_store_get(s, HZ_ARR_W, at, k, w);
        hz_store_get(s, HZ_ARR_LO, at, k, lo);
        for (int64_t j = 0; j < k; j++) out[i + j] = hz_master_join(w[j], lo[j]);
    }
    return 0;
}

static int raw_consume(void *arg, int64_t off, int64_t n, const void *buf, char *msg)
{
    (void)msg;
    const hz_store *s = arg;
    uint16_t w[RAW_BLOCK];
    int16_t lo[RAW_BLOCK];
    const float *in = buf;
    for (int64_t i = 0; i < n / 4; i += RAW_BLOCK) {
        int64_t k = n / 4 - i < RAW_BLOCK ? n / 4 - i : RAW_BLOCK, at = off / 4 + i;
        for (int64_t j = 0; j < k; j++) hz_master_split(in[i + j], &w[j], &lo[j]);
        hz_store_put(s, HZ_ARR_W, at, k, w);
        hz_store_put(s, HZ_ARR_LO, at, k, lo);
    }
    return 0;
}

void hz_train_load_raw(hz_store *s, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) hz_train_die("cannot open --init-raw file", path);
    if (st.st_size != s->n * 4) {
        fprintf(stderr, "train: error: %s: expected exactly %lld fp32 values (host_store_n), "
                        "found %s\n", path, (long long)s->n, st.st_size > s->n * 4 ? "more" : "fewer");
        exit(1);
    }
    hz_pio_file f = {path, 0, s->n * 4, NULL, raw_consume, s, NULL, 0};
    char err[HZ_PIO_ERR_BYTES];
    if (hz_pio_read(&f, 1, 0, 1, err) != 0) {
        fprintf(stderr, "train: error: --init-raw: %s\n", err);
        exit(1);
    }
}

void hz_train_save_raw(const hz_store *s, const char *path)
{
    hz_pio_file f = {path, 0, s->n * 4, raw_fill, NULL, (void *)s, NULL, 0};
    char err[HZ_PIO_ERR_BYTES];
    if (hz_pio_write(&f, 1, 0, 1, NULL, err) != 0) {
        fprintf(stderr, "train: error: --save-raw: %s; pick a writable path with room\n", err);
        exit(1);
    }
}
