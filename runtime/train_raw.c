/* runtime/train_raw.c - the trainer's whole-state passes outside a checkpoint: the raw fp32
 * masters of --init-raw and --save-raw, and the check that every master is finite before a
 * save. Each walks the host store window by window (hz_store_pass), so resident units'
 * state is read from and written to the backend. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "rt.h"
#include "train_args.h"
#include "train_raw.h"

/* Raw fp32 masters in the host store's order: the exchange format of the parity tests
 * until safetensors import exists. Read and written window by window (hz_store_pass). */
typedef struct raw_io {
    FILE *f;
    int64_t done;        /* elements read */
} raw_io;

static int raw_read_window(void *arg, int64_t first, int64_t n, void *const *ptr)
{
    (void)first;
    raw_io *io = arg;
    uint16_t *w = ptr[HZ_ARR_W];
    int16_t *lo = ptr[HZ_ARR_LO];
    float buf[4096];
    for (int64_t i = 0; i < n;) {
        size_t want = (size_t)(n - i < 4096 ? n - i : 4096);
        size_t got = fread(buf, 4, want, io->f);
        for (size_t k = 0; k < got; k++) hz_master_split(buf[k], &w[i + (int64_t)k], &lo[i + (int64_t)k]);
        io->done += (int64_t)got;
        i += (int64_t)got;
        if (got < want) return 1;
    }
    return 0;
}

void hz_train_load_raw(hz_store *s, const char *path)
{
    raw_io io = {fopen(path, "rb"), 0};
    if (!io.f) hz_train_die("cannot open --init-raw file", path);
    hz_store_pass(s, HZ_ARR_BIT(HZ_ARR_W) | HZ_ARR_BIT(HZ_ARR_LO), 1, raw_read_window, &io);
    int extra = fgetc(io.f) != EOF;
    fclose(io.f);
    if (io.done != s->n || extra) {
        fprintf(stderr, "train: error: %s: expected exactly %lld fp32 values (host_store_n), "
                        "found %s\n", path, (long long)s->n, extra ? "more" : "fewer");
        exit(1);
    }
}

static int raw_write_window(void *arg, int64_t first, int64_t n, void *const *ptr)
{
    (void)first;
    raw_io *io = arg;
    const uint16_t *w = ptr[HZ_ARR_W];
    const int16_t *lo = ptr[HZ_ARR_LO];
    float buf[4096];
    for (int64_t i = 0; i < n; i += 4096) {
        int64_t k, m = n - i < 4096 ? n - i : 4096;
        for (k = 0; k < m; k++) buf[k] = hz_master_join(w[i + k], lo[i + k]);
        if (fwrite(buf, 4, (size_t)m, io->f) != (size_t)m) return 1;
    }
    return 0;
}

void hz_train_save_raw(const hz_store *s, const char *path)
{
    raw_io io = {fopen(path, "wb"), 0};
    if (!io.f) hz_train_die("cannot create --save-raw file", path);
    if (hz_store_pass(s, HZ_ARR_BIT(HZ_ARR_W) | HZ_ARR_BIT(HZ_ARR_LO), 0, raw_write_window, &io))
        hz_train_die("writing --save-raw failed", path);
    if (fclose(io.f) != 0) hz_train_die("writing --save-raw failed", path);
}

typedef struct finite_job {
    const uint16_t *w;
    const int16_t *lo;
    atomic_int bad;
} finite_job;

static void finite_chunk(void *arg, int64_t b, int64_t e)
{
    finite_job *j = arg;
    for (int64_t i = b; i < e && !atomic_load_explicit(&j->bad, memory_order_relaxed); i++)
        if (!isfinite(hz_master_join(j->w[i], j->lo[i]))) atomic_store(&j->bad, 1);
}

typedef struct finite_pass {
    hz_pool *pool;
    int bad;
} finite_pass;

static int finite_window(void *arg, int64_t first, int64_t n, void *const *ptr)
{
    (void)first;
    finite_pass *fp = arg;
    finite_job j = {ptr[HZ_ARR_W], ptr[HZ_ARR_LO], 0};
    hz_pool_run(fp->pool, finite_chunk, &j, n);
    fp->bad = atomic_load(&j.bad);
    return fp->bad;
}

int hz_train_masters_finite(hz_ctx *c)
{
    finite_pass fp = {c->pool, 0};
    hz_store_pass(&c->store, HZ_ARR_BIT(HZ_ARR_W) | HZ_ARR_BIT(HZ_ARR_LO), 0, finite_window, &fp);
    return !fp.bad;
}
