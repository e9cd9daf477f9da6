/* tests/test_ckio.c - the parallel file engine and what streams through it:
 *   1. runtime/pario.c: files of several chunks (unaligned tails, a region after a head)
 *      written and read back on 1 and 5 threads, with and without O_DIRECT: the bytes, the
 *      chunk digests, the order a schedule gives, BEFORE/AFTER once per chunk, a failing
 *      fill named, a truncated file refused; ranges read at any offset;
 *   2. --init from a sharded Hugging Face checkpoint (runtime/hfmap.c): many shards of
 *      BF16, F16 and F32 tensors at unaligned offsets, tensors of several read jobs, read on 1
 *      and 4 threads, land in the store bit for bit as the element-by-element conversion
 *      of the reader (hz_st_read_elems_f32, then the split) gives;
 *   3. a checkpoint in shards through the engine (runtime/ckpt_files.c): the shards and the
 *      index byte for byte those of the sequential writer (hz_hf_save), and read back
 *      (runtime/ckpt_read.c) into w, lo, m and v bit for bit; one changed byte refused. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "hfmap.h"
#include "pario.h"
#include "plan.h"
#include "rt.h"
#include "safetensors.h"
#include "spec.h"
#include "test.h"
#include "test_specs.h"

/* ---- 1. the engine ---- */

static unsigned char pattern(int file, int64_t off)
{
    uint64_t x = ((uint64_t)file << 40) ^ (uint64_t)off;
    x *= 0x9e3779b97f4a7c15ull;
    return (unsigned char)(x >> 56);
}

typedef struct pat_file {
    int index;
    int fail_at;           /* a chunk whose fill fails (-1: none) */
    int64_t bad;           /* read: bytes that differ from the pattern */
} pat_file;

static int pat_fill(void *arg, int64_t off, int64_t n, void *buf, char *msg)
{
    pat_file *f = arg;
    if (f->fail_at >= 0 && off / HZ_PIO_CHUNK == f->fail_at) {
        snprintf(msg, HZ_PIO_ERR_BYTES, "chunk %d refused on purpose", f->fail_at);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) ((unsigned char *)buf)[i] = pattern(f->index, off + i);
    return 0;
}

static int pat_consume(void *arg, int64_t off, int64_t n, const void *buf, char *msg)
{
    (void)msg;
    pat_file *f = arg;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += ((const unsigned char *)buf)[i] != pattern(f->index, off + i);
    __atomic_fetch_add(&f->bad, bad, __ATOMIC_RELAXED);
    return 0;
}

typedef struct sched_log {
    pthread_mutex_t mu;
    int64_t before_n, after_n, order_ok, last_rank;
} sched_log;

/* chunks from the last to the first */
static int64_t rev_order(void *arg, int file, int64_t off, int64_t n)
{
    (void)arg;
    (void)n;
    return -((int64_t)file * 1000 + off / HZ_PIO_CHUNK);
}

static void on_before(void *arg, int file, int64_t off, int64_t n)
{
    sched_log *l = arg;
    pthread_mutex_lock(&l->mu);
    int64_t r = rev_order(NULL, file, off, n);
    l->order_ok &= r >= l->last_rank;
    l->last_rank = r;
    l->before_n++;
    pthread_mutex_unlock(&l->mu);
}

static void on_after(void *arg, int file, int64_t off, int64_t n)
{
    (void)file;
    (void)off;
    (void)n;
    sched_log *l = arg;
    pthread_mutex_lock(&l->mu);
    l->after_n++;
    pthread_mutex_unlock(&l->mu);
}

/* The bytes of PATH from BASE on, against the pattern of FILE: how many differ (-1: cannot read). */
static int64_t check_file(const char *path, int file, int64_t base, int64_t bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    struct stat st;
    int64_t bad = fstat(fileno(f), &st) != 0 || st.st_size != base + bytes ? 1 : 0;
    fseek(f, (long)base, SEEK_SET);
    for (int64_t i = 0; i < bytes; i++) bad += fgetc(f) != pattern(file, i);
    fclose(f);
    return bad;
}

static void engine(int threads, int direct)
{
    const int64_t sizes[3] = {1, 2 * (int64_t)HZ_PIO_CHUNK + 4097, (int64_t)HZ_PIO_CHUNK};
    const int64_t bases[3] = {0, 0, 8192};
    char path[3][256], err[HZ_PIO_ERR_BYTES];
    hz_pio_file f[3];
    pat_file pf[3];
    uint64_t dg[3][4], rdg[3][4];
    int64_t chunks = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(path[i], sizeof path[i], "%s/engine%d_%d_%d", test_tmp_dir(), i, threads, direct);
        pf[i] = (pat_file){i, -1, 0};
        f[i] = (hz_pio_file){path[i], bases[i], sizes[i], pat_fill, NULL, &pf[i], dg[i], 0};
        chunks += hz_pio_chunks(sizes[i]);
    }
    sched_log log = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 1, INT64_MIN};
    hz_pio_sched sc = {rev_order, on_before, on_after, &log};
    int rc = hz_pio_write(f, 3, threads, direct, &sc, err);
    CHECK(rc == 0, "%d threads, O_DIRECT %s: 3 files of 1, 2 chunks + 4097 and 1 chunk after an "
                   "8 KiB head written (%s)", threads, direct ? "asked" : "off", rc ? err : "ok");
    for (int i = 0; i < 3; i++) {
        int64_t bad = check_file(path[i], i, bases[i], sizes[i]);
        int digests_ok = 1;
        unsigned char *chunk = malloc(HZ_PIO_CHUNK);
        for (int64_t k = 0; chunk && k < hz_pio_chunks(sizes[i]); k++) {
            int64_t n = sizes[i] - k * HZ_PIO_CHUNK < HZ_PIO_CHUNK ? sizes[i] - k * HZ_PIO_CHUNK : HZ_PIO_CHUNK;
            for (int64_t j = 0; j < n; j++) chunk[j] = pattern(i, k * HZ_PIO_CHUNK + j);
            digests_ok &= dg[i][k] == hz_digest_bytes(chunk, (size_t)n);
        }
        free(chunk);
        CHECK(bad == 0 && digests_ok, "%d threads: file %d: %lld bytes as filled (%lld differ), "
              "size base + bytes, chunk digests those of its bytes (O_DIRECT used: %d)",
              threads, i, (long long)sizes[i], (long long)bad, f[i].direct);
    }
    CHECK(log.before_n == chunks && log.after_n == chunks && (threads > 1 || log.order_ok),
          "%d threads: BEFORE and AFTER once per chunk (%lld, %lld of %lld)%s", threads,
          (long long)log.before_n, (long long)log.after_n, (long long)chunks,
          threads == 1 ? ", taken in the schedule's order" : "");
    for (int i = 0; i < 3; i++) {
        f[i].consume = pat_consume;
        f[i].digests = rdg[i];
    }
    rc = hz_pio_read(f, 3, threads, direct, err);
    int same = rc == 0;
    for (int i = 0; i < 3; i++) {
        same &= pf[i].bad == 0;
        for (int64_t k = 0; k < hz_pio_chunks(sizes[i]); k++) same &= rdg[i][k] == dg[i][k];
    }
    CHECK(same, "%d threads: read back, every byte and every chunk digest as written (%s)", threads,
          rc ? err : "ok");

    /* a fill that fails: the run stops, names the file, still ends each chunk it began */
    pf[1].fail_at = 1;
    f[1].fill = pat_fill;
    log.before_n = log.after_n = 0;
    rc = hz_pio_write(f, 3, threads, direct, &sc, err);
    CHECK(rc == -1 && strstr(err, path[1]) && strstr(err, "chunk 1 refused on purpose") &&
              log.before_n == log.after_n,
          "%d threads: a failing fill stops the write: %s (%lld begun, %lld ended)", threads, err,
          (long long)log.before_n, (long long)log.after_n);
    /* a file shorter than its region */
    if (truncate(path[2], 8192 + 100) == 0) {
        rc = hz_pio_read(&f[2], 1, threads, direct, err);
        CHECK(rc == -1 && strstr(err, "truncated"), "%d threads: a truncated file: %s", threads, err);
    }
    /* ranges at odd offsets, through O_DIRECT's aligned blocks or not */
    hz_pio_src src;
    pf[1].fail_at = -1;
    rc = hz_pio_write(&f[1], 1, threads, direct, NULL, err);
    int ranges_ok = rc == 0 && hz_pio_src_open(&src, path[1], direct) == 0;
    void *buf = aligned_alloc(HZ_PIO_ALIGN, hz_pio_range_buf_bytes(3 * 1000 * 1000));
    const int64_t at[4] = {0, 1, 4095, 2 * (int64_t)HZ_PIO_CHUNK + 4097 - 3000000};
    for (int k = 0; ranges_ok && buf && k < 4; k++) {
        const unsigned char *b = hz_pio_read_range(&src, at[k], 3000000, buf);
        for (int64_t j = 0; b && j < 3000000; j++) ranges_ok &= b[j] == pattern(1, at[k] + j);
        ranges_ok &= b != NULL;
    }
    ranges_ok &= buf && hz_pio_read_range(&src, 2 * (int64_t)HZ_PIO_CHUNK, 5000, buf) == NULL;
    free(buf);
    if (src.fd >= 0) hz_pio_src_close(&src);
    CHECK(ranges_ok, "%d threads: ranges of 3 MB at offsets 0, 1, 4095 and the file's end read "
                     "exactly; one past the end refused", threads);
    for (int i = 0; i < 3; i++) unlink(path[i]);
}

/* ---- 2. --init from many shards ---- */

typedef struct src_arg {
    const hz_store *s;
    int64_t at;
} src_arg;

static void fill_bf16(void *arg, int64_t b, int64_t n, void *out)
{
    const src_arg *a = arg;
    memcpy(out, a->s->w + a->at + b, (size_t)n * 2);
}

static void fill_f32(void *arg, int64_t b, int64_t n, void *out)
{
    const src_arg *a = arg;
    for (int64_t i = 0; i < n; i++) ((float *)out)[i] = hz_store_master(a->s, a->at + b + i);
}

/* the master's top bits as an fp16 (sign, 5-bit exponent rebased, 10 bits of mantissa):
 * any fp16 will do, the reference reads back what was written */
static void fill_f16(void *arg, int64_t b, int64_t n, void *out)
{
    const src_arg *a = arg;
    for (int64_t i = 0; i < n; i++) {
        float x = hz_store_master(a->s, a->at + b + i);
        uint32_t u;
        memcpy(&u, &x, 4);
        int e = (int)((u >> 23) & 0xff) - 127 + 15;
        uint16_t h = (uint16_t)((u >> 16) & 0x8000u);
        if (e > 0 && e < 31) h |= (uint16_t)(e << 10 | ((u >> 13) & 0x3ffu));
        ((uint16_t *)out)[i] = h;
    }
}

static void init_shards(void)
{
    hzc_spec spec = make_spec(0);
    spec.V = 140000; /* embedding and lm_head of 2.24M elements: two read jobs each */
    hzc_plan pl;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    if (plan_build(&spec, &none, &pl, stderr) != 0) {
        CHECK(0, "the model plans");
        return;
    }
    const hz_plan *p = &pl.p;
    hz_store a, b[2];
    hz_store_alloc(&a, p, NULL, NULL);
    hz_store_init(&a, p, 5, NULL);
    hz_hf_part parts[256];
    src_arg args[256];
    hz_st_wtensor w[256];
    int n = 0;
    for (int i = 0; i < p->tensor_n; i++) {
        int k = hz_hf_parts(p, &p->tensors[i], parts + n);
        for (int j = 0; j < k; j++, n++) {
            int dtype = n % 3 == 0 ? HZ_ST_BF16 : n % 3 == 1 ? HZ_ST_F16 : HZ_ST_F32;
            args[n] = (src_arg){&a, p->tensors[i].host_n + parts[n].row0 * parts[n].cols};
            w[n] = (hz_st_wtensor){parts[n].name, dtype, parts[n].ndim, {parts[n].rows, parts[n].cols},
                                   dtype == HZ_ST_BF16 ? fill_bf16 : dtype == HZ_ST_F16 ? fill_f16 : fill_f32,
                                   &args[n]};
        }
    }
    char sterr[HZ_ST_ERR_BYTES], err[HZ_HF_ERR_BYTES], dir[256];
    snprintf(dir, sizeof dir, "%s/shards", test_tmp_dir());
    mkdir(dir, 0777);
    int shards = hz_st_write_checkpoint(dir, w, n, 3000, sterr); /* small tensors share shards */
    CHECK(shards > 4, "a checkpoint of %d tensors (BF16, F16, F32 in turn) in %d shards (%s)", n,
          shards, shards < 0 ? sterr : "ok");
    /* the reference: each element read alone and split */
    hz_st_index *ix = hz_st_index_open(dir, sterr);
    uint16_t *rw = calloc((size_t)p->host_store_n, 2);
    int16_t *rlo = calloc((size_t)p->host_store_n, 2);
    int odd = 0;
    for (int i = 0; ix && rw && rlo && i < n; i++) {
        const hz_st_tensor *t = hz_st_index_find(ix, w[i].name);
        odd += t && t->offset % HZ_PIO_ALIGN != 0;
        for (int64_t e = 0; t && e < t->numel; e++) {
            float x;
            hz_st_read_elems_f32(t, e, 1, &x);
            hz_master_split(x, &rw[args[i].at + e], &rlo[args[i].at + e]);
        }
    }
    hz_st_index_close(ix);
    CHECK(odd > n / 2, "%d of %d tensors start at offsets O_DIRECT cannot read at (not multiples of %d)",
          odd, n, HZ_PIO_ALIGN);
    const int threads[2] = {1, 4};
    for (int k = 0; k < 2; k++) {
        hz_store_alloc(&b[k], p, NULL, NULL);
        hz_hf_load_times lt;
        int rc = hz_hf_load_timed(&b[k], p, dir, threads[k], &lt, err);
        int64_t diff = 0;
        for (int i = 0; rc == 0 && i < n; i++)
            for (int64_t e = 0; e < w[i].shape[0] * (w[i].ndim == 2 ? w[i].shape[1] : 1); e++) {
                int64_t x = args[i].at + e;
                diff += b[k].w[x] != rw[x] || b[k].lo[x] != rlo[x];
            }
        CHECK(rc == 0 && diff == 0 && lt.files == shards && lt.threads == threads[k],
              "--init on %d threads from %d shards: %.1f MB read, every split master as the "
              "element-by-element conversion (%lld differ)%s%s",
              threads[k], lt.files, lt.bytes * 1e-6, (long long)diff, rc ? ": " : "", rc ? err : "");
    }
    CHECK(!memcmp(b[0].w, b[1].w, (size_t)p->host_store_n * 2) &&
              !memcmp(b[0].lo, b[1].lo, (size_t)p->host_store_n * 2),
          "1 and 4 threads give the same store");
    free(rw);
    free(rlo);
    hz_store_free(&a);
    hz_store_free(&b[0]);
    hz_store_free(&b[1]);
    plan_free(&pl);
}

/* ---- 3. a sharded checkpoint through the engine ---- */

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = hz_read_file(a, &na), *y = hz_read_file(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void sharded_checkpoint(void)
{
    hzc_spec spec = make_spec(1);
    hzc_plan pl;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    if (plan_build(&spec, &none, &pl, stderr) != 0) {
        CHECK(0, "the model plans");
        return;
    }
    const hz_plan *p = &pl.p;
    hz_store a, b;
    hz_store_alloc(&a, p, NULL, NULL);
    hz_store_alloc(&b, p, NULL, NULL);
    for (int64_t i = 0; i < p->host_store_n; i++) { /* lo, m, v: padding too; w: tensors */
        hz_master_split(0.05f * test_frand(), &a.w[i], &a.lo[i]);
        ((float *)a.m)[i] = test_frand();
        ((float *)a.v)[i] = 1e-3f * (1.0f + test_frand());
    }
    for (int u = 0; u < p->unit_n; u++) { /* w's padding master is 0, as after any init */
        const hz_unit *un = &p->units[u];
        memset(a.w + un->host_n, 0, (size_t)un->padded_n * 2);
        memset(a.lo + un->host_n, 0, (size_t)un->padded_n * 2);
    }
    for (int t = 0; t < p->tensor_n; t++)
        for (int64_t i = 0; i < p->tensors[t].rows * p->tensors[t].cols; i++)
            hz_master_split(0.05f * test_frand(), &a.w[p->tensors[t].host_n + i], &a.lo[p->tensors[t].host_n + i]);
    char err[HZ_HF_ERR_BYTES], dir[256], seq[256], path[600], path2[600];
    snprintf(dir, sizeof dir, "%s/ck", test_tmp_dir());
    snprintf(seq, sizeof seq, "%s/seq", test_tmp_dir());
    mkdir(dir, 0777);
    char *config = hz_hf_config_json(p, "llama");
    hz_resume r = {7, 1234, 99, HZ_OPTSTATE_FP32}, back = {0, 0, 0, 0};
    hz_ckpt_writer *w = hz_ckpt_writer_new(&a, p, dir, config, &r, 2000, err);
    int rc = w ? hz_ckpt_writer_run(w, 3, NULL, err) : -1;
    int files = w ? hz_ckpt_writer_files(w) : 0;
    hz_ckpt_writer_free(w);
    CHECK(rc == 0 && files > 5, "a checkpoint in shards of 2000 bytes written through the engine: "
                                "%d files (%s)", files, rc ? err : "ok");
    rc = hz_hf_save(&a, p, seq, config, 2000, err);
    int shards = 0, same = rc == 0;
    for (int k = 1; same && k < 100; k++) {
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, k, files - 3);
        snprintf(path2, sizeof path2, "%s/model-%05d-of-%05d.safetensors", seq, k, files - 3);
        if (access(path2, F_OK) != 0) break;
        same &= same_file(path, path2);
        shards++;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    snprintf(path2, sizeof path2, "%s/model.safetensors.index.json", seq);
    same &= shards == files - 3 && same_file(path, path2);
    CHECK(same, "its %d shards and index are byte for byte the sequential writer's", shards);
    rc = hz_ckpt_read(&b, p, dir, 4, &back, &(int){0}, err);
    CHECK(rc == 0 && !memcmp(a.w, b.w, (size_t)p->host_store_n * 2) &&
              !memcmp(a.lo, b.lo, (size_t)p->host_store_n * 2) &&
              !memcmp(a.m, b.m, (size_t)p->host_store_n * 4) &&
              !memcmp(a.v, b.v, (size_t)p->host_store_n * 4) && back.step == 7 &&
              back.data_pos == 1234 && back.data_seed == 99,
          "read back on 4 threads: w, lo, m, v bit for bit, step, data position and seed (%s)",
          rc ? err : "ok");
    /* one byte changed in the last shard: refused, the shard named */
    snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, shards, shards);
    FILE *f = fopen(path, "r+b");
    int damaged = 0;
    if (f) {
        fseek(f, -3, SEEK_END);
        int ch = fgetc(f);
        fseek(f, -3, SEEK_END);
        fputc(ch ^ 1, f);
        fclose(f);
    }
    rc = hz_ckpt_read(&b, p, dir, 4, &back, &damaged, err);
    CHECK(rc == -1 && damaged && strstr(err, path) && strstr(err, "manifest"),
          "one flipped byte of the last shard: %s", err);
    free(config);
    hz_store_free(&a);
    hz_store_free(&b);
    plan_free(&pl);
}

int main(void)
{
    if (test_tmp_open("ckio") != 0) return 1;
    engine(1, 1);
    engine(5, 1);
    engine(5, 0);
    init_shards();
    sharded_checkpoint();
    test_tmp_close();
    printf("%d passed, %d failed\n", test_passed_n, test_failed_n);
    return test_failed_n != 0;
}
