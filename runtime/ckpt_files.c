/* runtime/ckpt_files.c - a checkpoint's files, written and read by the parallel engine
 * (pario.h) straight from and into the host store, and verified on the way.
 * OUT/step-00000100/ holds config.json, model.safetensors (bf16 working weights; shards and
 * an index above 5 GB, as save_pretrained does) and resume.bin:
 *   head (a multiple of 4096 bytes, zero-padded):
 *     header (little-endian, 88 bytes): "HZRESUME", u32 version 4, u32 header bytes (88),
 *       i64 host_store_n, i64 params_n, i64 step (steps done), i64 data position,
 *       u64 data seed, u32 files_n, u32 state mode (0 fp32, 1 bf16, 2 int8), u32 state
 *       block (int8: elements per absmax, 64; else 0), u32 0, u64 state seed (the bf16
 *       rounding's), u64 checksum
 *     manifest: files_n x {char name[64], i64 bytes, u64 digest}: every other file of the
 *       directory, sorted by name, with its chunked digest (digest.h)
 *   payload (ckpt_state.h): lo (int16 x n), m, v (x n each: fp32, bf16 bits, or int8
 *     codes), int8 only: the m then v absmax (fp32 x ceil(n / 64)), over the whole store in
 *     element order, each array starting at a multiple of 8 bytes.
 * checksum = the digest of (the head's digest with the checksum field 0, the payload's
 * chunked digest): every byte of the checkpoint is covered, and each chunk's digest is
 * taken by the thread that moves it. With the bf16 w from model.safetensors, lo restores
 * the fp32 master bit for bit. A file is a list of segments (bytes in memory, or elements
 * of a store array), so the engine moves byte ranges and knows nothing of the format. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_format.h"

#include "ckpt_state.h"
#include "optstate.h"
#include "safetensors.h"

int hz_ck_add_seg(ck_file *f, seg sg)
{
    if (f->seg_n == f->seg_cap) {
        int cap = f->seg_cap ? 2 * f->seg_cap : 16;
        seg *more = realloc(f->segs, (size_t)cap * sizeof *more);
        if (!more) return -1;
        f->segs = more;
        f->seg_cap = cap;
    }
    f->segs[f->seg_n++] = sg;
    return 0;
}

/* The first segment that ends after OFF (segments are sorted and disjoint). */
static int seg_at(const ck_file *f, int64_t off)
{
    int lo = 0, hi = f->seg_n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (f->segs[mid].off + f->segs[mid].bytes <= off) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The masters of store elements [first, first + n), whose lo is LO: all finite? Streamed
 * elements are read in place; a resident unit's w is fetched from its home in one copy (a
 * copy per small block would wait on the device each time). -1: out of memory. */
static int masters_finite(const hz_store *s, int64_t first, int64_t n, const int16_t *lo)
{
    const uint16_t *w = s->w + first;
    uint16_t *copy = NULL;
    if (!hz_store_backed(s, first, n)) {
        if (!(copy = malloc((size_t)n * 2))) return -1;
        hz_store_get(s, HZ_ARR_W, first, n, copy);
        w = copy;
    }
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        int16_t l;
        memcpy(&l, lo + i, 2);
        ok = isfinite(hz_join_inl(w[i], l));
    }
    free(copy);
    return ok;
}

/* The store elements that bytes [AT, STOP) of segment SG hold: [*e, *e + *k). */
static void seg_elems(const seg *sg, int64_t at, int64_t stop, int64_t *e, int64_t *k)
{
    int64_t per = sg->per ? sg->per : 1;
    int64_t end = sg->first + (stop - sg->off) / sg->elem_bytes * per;
    *e = sg->first + (at - sg->off) / sg->elem_bytes * per;
    if (sg->per && end > sg->last) end = sg->last;
    *k = end - *e;
}

int hz_ck_fill(void *arg, int64_t off, int64_t n, void *buf, char *msg)
{
    ck_file *f = arg;
    unsigned char *b = buf;
    int64_t at = off, end = off + n;
    for (int i = seg_at(f, off); i < f->seg_n && at < end; i++) {
        const seg *sg = &f->segs[i];
        if (sg->off >= end) break;
        if (sg->off > at) { /* padding between segments */
            memset(b + (at - off), 0, (size_t)(sg->off - at));
            at = sg->off;
        }
        int64_t stop = sg->off + sg->bytes < end ? sg->off + sg->bytes : end;
        if (sg->mem) {
            memcpy(b + (at - off), sg->mem + (at - sg->off), (size_t)(stop - at));
        } else {
            int64_t e, k;
            seg_elems(sg, at, stop, &e, &k);
            hz_store_get(f->s, sg->array, e, k, b + (at - off));
            int fin = sg->finite ? masters_finite(f->s, e, k, (const int16_t *)(b + (at - off))) : 1;
            if (fin < 0) {
                snprintf(msg, HZ_PIO_ERR_BYTES, "out of memory checking the masters");
                return -1;
            }
            if (!fin) {
                atomic_store(f->nonfinite, 1);
                snprintf(msg, HZ_PIO_ERR_BYTES, "some weights are not finite (inf or NaN)");
                return -1;
            }
        }
        at = stop;
    }
    if (at < end) memset(b + (at - off), 0, (size_t)(end - at));
    return 0;
}

int hz_ck_consume(void *arg, int64_t off, int64_t n, const void *buf, char *msg)
{
    (void)msg;
    ck_file *f = arg;
    const unsigned char *b = buf;
    int64_t end = off + n;
    for (int i = seg_at(f, off); i < f->seg_n; i++) {
        const seg *sg = &f->segs[i];
        if (sg->off >= end) break;
        if (sg->mem) continue;
        int64_t at = sg->off > off ? sg->off : off;
        int64_t stop = sg->off + sg->bytes < end ? sg->off + sg->bytes : end;
        int64_t e, k;
        seg_elems(sg, at, stop, &e, &k);
        hz_store_put(f->s, sg->array, e, k, b + (at - off));
    }
    return 0;
}

int64_t hz_ck_file_bytes(const ck_file *f)
{
    return f->seg_n ? f->segs[f->seg_n - 1].off + f->segs[f->seg_n - 1].bytes : 0;
}

/* resume.bin's payload (ckpt_state.h): the state arrays of MODE, each at a multiple of 8
 * bytes; a scale array's element is the fp32 of a block. */
int hz_ck_add_state_segs(ck_file *f, int64_t n, int mode, int check_finite)
{
    for (int k = 0; k < HZ_CKPT_STATE_ARRAYS; k++) {
        int a = hz_ckpt_state_arrays[k];
        int64_t bytes, off = hz_ckpt_state_at(mode, n, k, &bytes);
        if (bytes == 0) continue;
        int scale = a == HZ_ARR_MS || a == HZ_ARR_VS;
        seg sg = {off, bytes, NULL, a, scale ? 4 : (int)(hz_arr_block_bytes(mode, 0, a) / HZ_OPTSTATE_BLOCK),
                  0, check_finite && a == HZ_ARR_LO, scale ? HZ_OPTSTATE_BLOCK : 0, n};
        if (hz_ck_add_seg(f, sg) != 0) return -1;
    }
    return 0;
}

void hz_ck_free_files(ck_file *f, int n)
{
    for (int i = 0; f && i < n; i++) {
        free(f[i].segs);
        free(f[i].owned);
    }
    free(f);
}

/* ---- the head of resume.bin ---- */

uint64_t hz_ck_checksum(const unsigned char *head, int64_t head_bytes, uint64_t payload)
{
    resume_header h;
    memcpy(&h, head, sizeof h);
    h.checksum = 0;
    hz_digest d;
    hz_digest_init(&d);
    hz_digest_update(&d, &h, sizeof h);
    hz_digest_update(&d, head + sizeof h, (size_t)(head_bytes - (int64_t)sizeof h));
    uint64_t two[2] = {hz_digest_final(&d), payload};
    return hz_digest_bytes(two, sizeof two);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const manifest_entry *)a)->name, ((const manifest_entry *)b)->name);
}

/* ---- writing ---- */

struct hz_ckpt_writer {
    const hz_store *s;
    const hz_plan *p;
    hz_resume r;
    int n;                 /* files; resume.bin is the last */
    ck_file *f;
    hz_pio_file *io;
    uint64_t **digests;
    atomic_int nonfinite;
    char dir[4096];
};

typedef struct w_src {
    const hz_store *s;
    int64_t at;
} w_src;

static void fill_w(void *arg, int64_t begin, int64_t n, void *out)
{
    const w_src *f = arg;
    hz_store_get(f->s, HZ_ARR_W, f->at + begin, n, out);
}

/* The plan's tensors as transformers names them: bf16 working weights, each the store
 * range from SRC[i].at (malloc'd, *n of them; names in PARTS). */
static hz_st_wtensor *weight_tensors(const hz_store *s, const hz_plan *p, hz_hf_part **parts,
                                     w_src **src, int *n)
{
    *n = 0;
    *parts = calloc((size_t)p->tensor_n * HZ_HF_MAX_PARTS + 1, sizeof **parts);
    *src = calloc((size_t)p->tensor_n * HZ_HF_MAX_PARTS + 1, sizeof **src);
    hz_st_wtensor *t = calloc((size_t)p->tensor_n * HZ_HF_MAX_PARTS + 1, sizeof *t);
    if (!*parts || !*src || !t) {
        free(t);
        return NULL;
    }
    for (int i = 0; i < p->tensor_n; i++) {
        int k = hz_hf_parts(p, &p->tensors[i], *parts + *n);
        for (int j = 0; j < k; j++, (*n)++) {
            const hz_hf_part *x = &(*parts)[*n];
            (*src)[*n] = (w_src){s, p->tensors[i].host_n + x->row0 * x->cols};
            t[*n] = (hz_st_wtensor){x->name, HZ_ST_BF16, x->ndim, {x->rows, x->cols}, fill_w,
                                    &(*src)[*n]};
        }
    }
    return t;
}

/* A safetensors file of tensors [a, b): its header in memory, then each tensor's elements. */
static int add_st_file(ck_file *f, const hz_st_wtensor *t, const w_src *src, int a, int b,
                       char *err)
{
    char sterr[HZ_ST_ERR_BYTES];
    int64_t hb;
    if (!(f->owned = hz_st_header(f->path, t + a, b - a, &hb, sterr))) {
        set_err(err, "%s", sterr);
        return -1;
    }
    if (hz_ck_add_seg(f, (seg){0, hb, f->owned, 0, 0, 0, 0, 0, 0}) != 0) return -1;
    for (int i = a; i < b; i++) {
        int64_t bytes = hz_st_wtensor_bytes(&t[i]);
        if (hz_ck_add_seg(f, (seg){hz_ck_file_bytes(f), bytes, NULL, HZ_ARR_W, 2, src[i].at, 0, 0, 0}) != 0) return -1;
    }
    return 0;
}

static int add_text_file(ck_file *f, char *text)
{
    f->owned = (unsigned char *)text;
    return text ? hz_ck_add_seg(f, (seg){0, (int64_t)strlen(text), f->owned, 0, 0, 0, 0, 0, 0}) : -1;
}

hz_ckpt_writer *hz_ckpt_writer_new(const hz_store *s, const hz_plan *p, const char *dir,
                                   const char *config, const hz_resume *r,
                                   int64_t max_shard_bytes, char *err)
{
    hz_ckpt_writer *w = calloc(1, sizeof *w);
    hz_hf_part *parts = NULL;
    w_src *src = NULL;
    int tn = 0, *first = NULL;
    hz_st_wtensor *t = w ? weight_tensors(s, p, &parts, &src, &tn) : NULL;
    if (!t || !(first = malloc(sizeof(int) * (size_t)(tn + 2)))) goto oom;
    w->s = s;
    w->p = p;
    w->r = *r;
    atomic_init(&w->nonfinite, 0);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    int64_t total = 0;
    for (int i = 0; i < tn; i++) total += hz_st_wtensor_bytes(&t[i]);
    if (max_shard_bytes <= 0) max_shard_bytes = HZ_ST_DEFAULT_SHARD_BYTES;
    int shards = total <= max_shard_bytes ? 1 : hz_st_shards(t, tn, max_shard_bytes, first);
    if (shards == 1) {
        first[0] = 0;
        first[1] = tn;
    }
    if (shards < 0) {
        set_err(err, "%s: too many shards (internal error)", dir);
        goto fail;
    }
    w->n = shards + (shards > 1) + 2; /* shards, index, config.json, resume.bin */
    if (!(w->f = calloc((size_t)w->n, sizeof *w->f)) || !(w->io = calloc((size_t)w->n, sizeof *w->io)))
        goto oom;
    for (int i = 0; i < w->n; i++) {
        w->f[i].s = (hz_store *)s; /* written from, never to */
        w->f[i].nonfinite = &w->nonfinite;
    }
    int k = 0;
    for (; k < shards; k++) {
        ck_file *f = &w->f[k];
        if (shards == 1) snprintf(f->name, sizeof f->name, "model.safetensors");
        else hz_st_shard_name(f->name, sizeof f->name, k, shards);
        snprintf(f->path, sizeof f->path, "%s/%s", dir, f->name);
        if (add_st_file(f, t, src, first[k], first[k + 1], err) != 0) goto fail;
    }
    if (shards > 1) {
        snprintf(w->f[k].name, sizeof w->f[k].name, "model.safetensors.index.json");
        if (add_text_file(&w->f[k++], hz_st_index_text(t, first, shards)) != 0) goto oom;
    }
    snprintf(w->f[k].name, sizeof w->f[k].name, "config.json");
    size_t clen = strlen(config) + 1;
    char *cfg = malloc(clen);
    if (cfg) memcpy(cfg, config, clen);
    if (add_text_file(&w->f[k++], cfg) != 0) goto oom;
    snprintf(w->f[k].name, sizeof w->f[k].name, "resume.bin");
    if (hz_ck_add_state_segs(&w->f[k], s->n, s->state_mode, 1) != 0) goto oom;
    if (!(w->digests = calloc((size_t)w->n, sizeof *w->digests))) goto oom;
    for (int i = 0; i < w->n; i++) {
        ck_file *f = &w->f[i];
        if (i < w->n - 1) snprintf(f->path, sizeof f->path, "%s/%s", dir, f->name);
        else snprintf(f->path, sizeof f->path, "%s/resume.bin", dir);
        int64_t bytes = hz_ck_file_bytes(f);
        if (!(w->digests[i] = calloc((size_t)hz_pio_chunks(bytes) + 1, sizeof(uint64_t)))) goto oom;
        w->io[i] = (hz_pio_file){f->path, i == w->n - 1 ? hz_ck_head_bytes((uint32_t)(w->n - 1)) : 0,
                                 bytes, hz_ck_fill, NULL, f, w->digests[i], 0};
    }
    free(t);
    free(parts);
    free(src);
    free(first);
    return w;
oom:
    set_err(err, "%s: out of memory for the checkpoint's layout", dir);
fail:
    free(t);
    free(parts);
    free(src);
    free(first);
    hz_ckpt_writer_free(w);
    return NULL;
}

void hz_ckpt_writer_free(hz_ckpt_writer *w)
{
    if (!w) return;
    for (int i = 0; w->digests && i < w->n; i++) free(w->digests[i]);
    free(w->digests);
    free(w->io);
    hz_ck_free_files(w->f, w->n);
    free(w);
}

int hz_ckpt_writer_files(const hz_ckpt_writer *w) { return w->n; }

int64_t hz_ckpt_writer_file_bytes(const hz_ckpt_writer *w, int file) { return w->io[file].bytes; }

int64_t hz_ckpt_writer_bytes(const hz_ckpt_writer *w)
{
    int64_t b = 0;
    for (int i = 0; i < w->n; i++) b += w->io[i].base + w->io[i].bytes;
    return b;
}

/* The unit holding store element I (units tile the store in order). */
static int unit_of(const hz_plan *p, int64_t i)
{
    int lo = 0, hi = p->unit_n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (p->units[mid].host_n <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

int hz_ckpt_writer_units(const hz_ckpt_writer *w, int file, int64_t off, int64_t n, int *first,
                         int *last)
{
    const ck_file *f = &w->f[file];
    int any = 0;
    for (int i = seg_at(f, off); i < f->seg_n; i++) {
        const seg *sg = &f->segs[i];
        if (sg->off >= off + n) break;
        if (sg->mem) continue;
        int64_t at = sg->off > off ? sg->off : off;
        int64_t stop = sg->off + sg->bytes < off + n ? sg->off + sg->bytes : off + n;
        int64_t e, k;
        seg_elems(sg, at, stop, &e, &k);
        int a = unit_of(w->p, e), b = unit_of(w->p, e + k - 1);
        *first = any && *first < a ? *first : a;
        *last = any && *last > b ? *last : b;
        any = 1;
    }
    return any;
}

int hz_ckpt_writer_run(hz_ckpt_writer *w, int threads, const hz_pio_sched *sched, char *err)
{
    char perr[HZ_PIO_ERR_BYTES];
    if (hz_pio_write(w->io, w->n, threads, 1, sched, perr) != 0) {
        if (atomic_load(&w->nonfinite)) return HZ_CKPT_NONFINITE;
        set_err(err, "%s", perr);
        return -1;
    }
    /* the head: header, manifest of the other files, checksum over it all */
    uint32_t files_n = (uint32_t)(w->n - 1);
    int64_t hb = hz_ck_head_bytes(files_n);
    unsigned char *head = calloc(1, (size_t)hb);
    if (!head) {
        set_err(err, "%s: out of memory", w->dir);
        return -1;
    }
    resume_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, RESUME_MAGIC, 8);
    h.version = RESUME_VERSION;
    h.header_bytes = RESUME_HEADER_BYTES;
    h.host_store_n = w->s->n;
    h.params_n = w->p->params_n;
    h.step = w->r.step;
    h.data_pos = w->r.data_pos;
    h.data_seed = w->r.data_seed;
    h.files_n = files_n;
    h.state_mode = (uint32_t)w->s->state_mode;
    h.state_block = w->s->state_mode == HZ_OPTSTATE_INT8 ? HZ_OPTSTATE_BLOCK : 0;
    h.state_seed = w->s->state_seed;
    manifest_entry *man = (manifest_entry *)(head + sizeof h);
    for (uint32_t i = 0; i < files_n; i++) {
        memcpy(man[i].name, w->f[i].name, sizeof man[i].name);
        man[i].bytes = w->io[i].bytes;
        man[i].digest = hz_digest_chunked(w->io[i].bytes, w->digests[i], hz_pio_chunks(w->io[i].bytes));
    }
    qsort(man, files_n, sizeof *man, by_name);
    memcpy(head, &h, sizeof h);
    const hz_pio_file *rb = &w->io[w->n - 1];
    h.checksum = hz_ck_checksum(head, hb, hz_digest_chunked(rb->bytes, rb->digests, hz_pio_chunks(rb->bytes)));
    memcpy(head, &h, sizeof h);
    int fd = open(rb->path, O_WRONLY | O_CLOEXEC);
    int rc = fd >= 0 && hz_pio_pwrite_all(fd, head, (size_t)hb, 0) == 0 && fsync(fd) == 0 ? 0 : -1;
    if (rc) set_err(err, "%s: cannot write its header: %s", rb->path, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        set_err(err, "%s: close failed: %s", rb->path, strerror(errno));
        rc = -1;
    }
    free(head);
    return rc;
}
