/* runtime/hfmap.c - Hugging Face checkpoints <-> the host store (see hfmap.h). Fused plan
 * tensors stack HF tensors by rows (docs/plan.md): wqkv = q, k, v; bqkv = their biases;
 * wgate_up = gate, up. Loading checks the whole name/shape set before touching the store,
 * then reads (pread of large ranges, O_DIRECT where it is taken) and converts on THREADS
 * workers in chunks of 2M elements, straight into the store (bf16, most checkpoints, by
 * copying). */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hfmap.h"
#include "errf.h"
#include "pario.h"
#include "safetensors.h"

#define LIST_MAX 10                 /* names listed per kind of mismatch */
#define CHUNK_ELEMS (1 << 21)       /* elements read and converted per job */

#define set_err(err, ...) hz_errf(err, HZ_HF_ERR_BYTES, __VA_ARGS__)

static void put(hz_hf_part *x, int64_t row0, int64_t rows, int64_t cols, int ndim,
                const char *fmt, int layer, const char *what)
{
    char prefix[32] = "";
    if (layer >= 0) snprintf(prefix, sizeof prefix, "model.layers.%d.", layer);
    snprintf(x->name, sizeof x->name, fmt, prefix, what);
    x->row0 = row0;
    x->rows = rows;
    x->cols = cols;
    x->ndim = ndim;
}

int hz_hf_parts(const hz_plan *p, const hz_tensor *t, hz_hf_part parts[HZ_HF_MAX_PARTS])
{
    const hz_dims *d = &p->dims;
    int64_t A = d->NH * d->HD, KV = d->NKV * d->HD, C = d->C;
    int l = t->layer;
    switch (t->kind) {
    case HZ_WTE: put(&parts[0], 0, d->V, C, 2, "%s%s", -1, "model.embed_tokens.weight"); return 1;
    case HZ_ATTN_NORM: put(&parts[0], 0, C, 1, 1, "%s%s", l, "input_layernorm.weight"); return 1;
    case HZ_WQKV:
    case HZ_BQKV: {
        int bias = t->kind == HZ_BQKV;
        const char *fmt = bias ? "%sself_attn.%s_proj.bias" : "%sself_attn.%s_proj.weight";
        int64_t cols = bias ? 1 : C;
        put(&parts[0], 0, A, cols, 2 - bias, fmt, l, "q");
        put(&parts[1], A, KV, cols, 2 - bias, fmt, l, "k");
        put(&parts[2], A + KV, KV, cols, 2 - bias, fmt, l, "v");
        return 3;
    }
    case HZ_Q_NORM: put(&parts[0], 0, d->HD, 1, 1, "%s%s", l, "self_attn.q_norm.weight"); return 1;
    case HZ_K_NORM: put(&parts[0], 0, d->HD, 1, 1, "%s%s", l, "self_attn.k_norm.weight"); return 1;
    case HZ_WO: put(&parts[0], 0, C, A, 2, "%s%s", l, "self_attn.o_proj.weight"); return 1;
    case HZ_ATTN_POST_NORM:
        put(&parts[0], 0, C, 1, 1, "%s%s", l, "post_attention_layernorm.weight");
        return 1;
    case HZ_MLP_NORM: /* Gemma 3 calls the pre-MLP norm pre_feedforward_layernorm */
        put(&parts[0], 0, C, 1, 1, "%s%s", l,
            d->post_norms ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight");
        return 1;
    case HZ_MLP_POST_NORM:
        put(&parts[0], 0, C, 1, 1, "%s%s", l, "post_feedforward_layernorm.weight");
        return 1;
    case HZ_WGU:
        put(&parts[0], 0, d->F, C, 2, "%smlp.%s_proj.weight", l, "gate");
        put(&parts[1], d->F, d->F, C, 2, "%smlp.%s_proj.weight", l, "up");
        return 2;
    case HZ_WDOWN: put(&parts[0], 0, C, d->F, 2, "%s%s", l, "mlp.down_proj.weight"); return 1;
    case HZ_FINAL_NORM: put(&parts[0], 0, C, 1, 1, "%s%s", -1, "model.norm.weight"); return 1;
    case HZ_LM_HEAD:
        if (d->tied) return 0;
        put(&parts[0], 0, d->V, C, 2, "%s%s", -1, "lm_head.weight");
        return 1;
    default: return 0;
    }
}

/* Every HF tensor of the plan, with the plan tensor holding it. */
typedef struct need {
    hz_hf_part part;
    const hz_tensor *t;
    const hz_st_tensor *src;
} need;

static need *plan_needs(const hz_plan *p, int *n)
{
    need *v = calloc((size_t)p->tensor_n * HZ_HF_MAX_PARTS + 1, sizeof *v);
    *n = 0;
    if (!v) return NULL;
    for (int i = 0; i < p->tensor_n; i++) {
        hz_hf_part parts[HZ_HF_MAX_PARTS];
        int k = hz_hf_parts(p, &p->tensors[i], parts);
        for (int j = 0; j < k; j++) v[(*n)++] = (need){parts[j], &p->tensors[i], NULL};
    }
    return v;
}

/* ---- mismatch report ---- */

typedef struct report {
    char *buf;
    size_t len;
} report;

static void add(report *r, const char *fmt, ...)
{
    if (r->len >= HZ_HF_ERR_BYTES - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(r->buf + r->len, HZ_HF_ERR_BYTES - r->len, fmt, ap);
    va_end(ap);
    if (w > 0) r->len += (size_t)w;
    if (r->len > HZ_HF_ERR_BYTES - 1) r->len = HZ_HF_ERR_BYTES - 1;
}

/* A Gemma 3 multimodal checkpoint (Gemma3ForConditionalGeneration) holds the text model's
 * tensors under language_model.model. (as the published checkpoints are saved) or
 * model.language_model. (transformers 4.52 and later), beside its vision tower and
 * projector, which the text model does not use. */
static const char *const vision_prefixes[] = {"vision_tower.", "multi_modal_projector.",
                                              "model.vision_tower.",
                                              "model.multi_modal_projector."};

/* NAME as the text model's own name ("model.layers.0..." or "lm_head.weight") in OUT (at
 * least HZ_HF_NAME_BYTES): the multimodal prefixes removed. Returns OUT, or NAME as it is. */
static const char *text_name(const char *name, char *out)
{
    static const char *const from[] = {"language_model.model.", "model.language_model.",
                                       "language_model.lm_head."};
    static const char *const to[] = {"model.", "model.", "lm_head."};
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(from[i]);
        if (strncmp(name, from[i], k) != 0) continue;
        size_t a = strlen(to[i]), b = strlen(name + k);
        if (a + b >= HZ_HF_NAME_BYTES) return name;
        memcpy(out, to[i], a);
        memcpy(out + a, name + k, b + 1);
        return out;
    }
    return name;
}

/* The checkpoint's tensor for the plan's NAME: under its own name, or (a post_norms model,
 * Gemma 3) under a multimodal checkpoint's prefixes. */
static const hz_st_tensor *find_part(const hz_plan *p, const hz_st_index *ix, const char *name)
{
    const hz_st_tensor *t = hz_st_index_find(ix, name);
    if (t || !p->dims.post_norms || strncmp(name, "model.", 6) != 0) return t;
    char alt[HZ_HF_NAME_BYTES + 32];
    snprintf(alt, sizeof alt, "language_model.%s", name);
    if ((t = hz_st_index_find(ix, alt))) return t;
    snprintf(alt, sizeof alt, "model.language_model.%s", name + 6);
    return hz_st_index_find(ix, alt);
}

static int ignored(const hz_plan *p, const char *name)
{
    size_t n = strlen(name), k = strlen("rotary_emb.inv_freq");
    if (n >= k && !strcmp(name + n - k, "rotary_emb.inv_freq")) return 1;
    if (p->dims.post_norms)
        for (size_t i = 0; i < sizeof vision_prefixes / sizeof *vision_prefixes; i++)
            if (!strncmp(name, vision_prefixes[i], strlen(vision_prefixes[i]))) return 1;
    char buf[HZ_HF_NAME_BYTES];
    return p->dims.tied && !strcmp(p->dims.post_norms ? text_name(name, buf) : name,
                                   "lm_head.weight");
}

static int cmp_need_name(const void *a, const void *b)
{
    return strcmp(((const need *)a)->part.name, ((const need *)b)->part.name);
}

/* NAME is in the checkpoint but not among the plan's tensors (SORTED by name), and not one
 * of the tensors a loader skips. */
static int unexpected(const hz_plan *p, const char *name, const need *sorted, int n)
{
    need key;
    char buf[HZ_HF_NAME_BYTES];
    if (ignored(p, name)) return 0;
    if (p->dims.post_norms) name = text_name(name, buf);
    if (strlen(name) >= sizeof key.part.name) return 1;
    snprintf(key.part.name, sizeof key.part.name, "%s", name);
    return !bsearch(&key, sorted, (size_t)n, sizeof *sorted, cmp_need_name);
}

/* Match the checkpoint's tensors against the plan's; fills v[].src. Returns 0, or -1 with
 * the lists of missing, unexpected and mis-shaped tensors in err. */
static int match(const hz_plan *p, const hz_st_index *ix, need *v, int n, const char *dir, char *err)
{
    int missing_n = 0, shape_n = 0, extra_n = 0;
    for (int i = 0; i < n; i++) {
        const hz_st_tensor *t = find_part(p, ix, v[i].part.name);
        int64_t want[2] = {v[i].part.rows, v[i].part.cols};
        if (!t) missing_n++;
        else if (t->ndim != v[i].part.ndim || t->shape[0] != want[0] ||
                 (t->ndim == 2 && t->shape[1] != want[1]))
            shape_n++;
        else v[i].src = t;
    }
    need *sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (!sorted) {
        set_err(err, "%s: out of memory", dir);
        return -1;
    }
    memcpy(sorted, v, (size_t)n * sizeof *v);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_need_name);
    int total = hz_st_index_tensor_n(ix);
    for (int i = 0; i < total; i++)
        extra_n += unexpected(p, hz_st_index_tensor_at(ix, i)->name, sorted, n);
    if (!missing_n && !shape_n && !extra_n) {
        free(sorted);
        return 0;
    }
    report r = {err, 0};
    err[0] = 0;
    add(&r, "%s does not match the model %s (%lld parameters):", hz_st_index_path(ix),
        p->spec_name ? p->spec_name : "", (long long)p->params_n);
    if (missing_n) {
        add(&r, " %d missing tensor%s:", missing_n, missing_n == 1 ? "" : "s");
        for (int i = 0, k = 0; i < n && k < LIST_MAX; i++)
            if (!find_part(p, ix, v[i].part.name)) add(&r, "%s %s", k++ ? "," : "", v[i].part.name);
        if (missing_n > LIST_MAX) add(&r, " and %d more", missing_n - LIST_MAX);
        add(&r, ";");
    }
    if (extra_n) {
        add(&r, " %d unexpected tensor%s:", extra_n, extra_n == 1 ? "" : "s");
        for (int i = 0, k = 0; i < total && k < LIST_MAX; i++) {
            const char *name = hz_st_index_tensor_at(ix, i)->name;
            if (!unexpected(p, name, sorted, n)) continue;
            char shown[64];
            snprintf(shown, sizeof shown, "%s", name);
            for (char *c = shown; *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?';
            add(&r, "%s %s", k++ ? "," : "", shown);
        }
        if (extra_n > LIST_MAX) add(&r, " and %d more", extra_n - LIST_MAX);
        add(&r, ";");
    }
    if (shape_n) {
        add(&r, " %d with another shape:", shape_n);
        for (int i = 0, k = 0; i < n && k < LIST_MAX; i++) {
            const hz_st_tensor *t = find_part(p, ix, v[i].part.name);
            if (!t || v[i].src) continue;
            char got[128], want[64];
            int64_t w[2] = {v[i].part.rows, v[i].part.cols};
            hz_st_shape_str(got, sizeof got, t->ndim, t->shape);
            hz_st_shape_str(want, sizeof want, v[i].part.ndim, w);
            add(&r, "%s %s is %s, the model has %s", k++ ? "," : "", v[i].part.name, got, want);
        }
        if (shape_n > LIST_MAX) add(&r, " and %d more", shape_n - LIST_MAX);
        add(&r, ";");
    }
    add(&r, " is the spec the one this checkpoint's config.json describes? (hzc import makes it)");
    free(sorted);
    return -1;
}

/* ---- reading and conversion on worker threads ---- */

typedef struct job {
    const need *nd;
    int src;              /* the file holding it: loader.srcs[src] */
    int64_t begin, n;     /* elements of the HF tensor, in its flat order */
} job;

typedef struct loader {
    hz_store *s;
    const job *jobs;
    int job_n;
    hz_pio_src *srcs;
    int next;             /* next job to take, under mu */
    int failed;           /* a worker had no memory for its buffers */
    int dropped;          /* a worker had no memory for a job it had taken */
    int read_errno;       /* a read failed (its errno; the file: read_file) */
    const char *read_file;
    atomic_llong bytes;   /* read so far */
    pthread_mutex_t mu;
} loader;

/* N elements of dtype DTYPE at FROM (any alignment) as split masters into W and LO (BUF: n
 * floats of scratch). A bf16 value is its own master (w = its bits, lo = 0, what
 * hz_master_split gives): copied, as checkpoints mostly are bf16; fp32 is split in one
 * pass; fp16 is widened exactly, then split. */
static void convert(const unsigned char *from, int dtype, int64_t n, uint16_t *restrict w,
                    int16_t *restrict lo, float *restrict buf)
{
    if (dtype == HZ_ST_BF16) {
        memcpy(w, from, (size_t)n * 2);
        memset(lo, 0, (size_t)n * 2);
        return;
    }
    if (dtype == HZ_ST_F32) {
        for (int64_t i = 0; i < n; i++) {
            float x;
            memcpy(&x, from + 4 * i, 4);
            hz_split_inl(x, &w[i], &lo[i]);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, from + 2 * i, 2);
        buf[i] = hz_st_f32_from_f16(h);
    }
    for (int64_t i = 0; i < n; i++) hz_split_inl(buf[i], &w[i], &lo[i]);
}

static void *load_worker(void *arg)
{
    loader *ld = arg;
    float *buf = malloc((size_t)CHUNK_ELEMS * sizeof *buf);
    void *raw = aligned_alloc(HZ_PIO_ALIGN, hz_pio_range_buf_bytes((int64_t)CHUNK_ELEMS * 4));
    uint16_t *split = NULL; /* w then lo of a chunk bound for a resident unit */
    for (;;) {
        pthread_mutex_lock(&ld->mu);
        int ok = buf && raw && !ld->read_errno;
        int j = ok ? ld->next++ : ld->job_n;
        ld->failed |= !buf || !raw;
        pthread_mutex_unlock(&ld->mu);
        if (j >= ld->job_n) break;
        const job *jb = &ld->jobs[j];
        const hz_st_tensor *t = jb->nd->src;
        int64_t size = hz_st_dtype_bytes[t->dtype], bytes = jb->n * size;
        const unsigned char *from = hz_pio_read_range(&ld->srcs[jb->src], t->offset + jb->begin * size,
                                                      bytes, raw);
        if (!from) {
            pthread_mutex_lock(&ld->mu);
            if (!ld->read_errno) {
                ld->read_errno = errno ? errno : EIO;
                ld->read_file = t->file;
            }
            pthread_mutex_unlock(&ld->mu);
            break;
        }
        atomic_fetch_add(&ld->bytes, bytes);
        int64_t dst = jb->nd->t->host_n + jb->nd->part.row0 * jb->nd->part.cols + jb->begin;
        if (hz_store_backed(ld->s, dst, jb->n)) {
            convert(from, t->dtype, jb->n, ld->s->w + dst, ld->s->lo + dst, buf);
            continue;
        }
        /* a resident unit's: converted here, then sent to where it lives */
        if (!split && !(split = malloc((size_t)CHUNK_ELEMS * 4))) {
            pthread_mutex_lock(&ld->mu);
            ld->dropped = 1;
            pthread_mutex_unlock(&ld->mu);
            break;
        }
        uint16_t *w = split;
        int16_t *lo = (int16_t *)(split + CHUNK_ELEMS);
        convert(from, t->dtype, jb->n, w, lo, buf);
        hz_store_put(ld->s, HZ_ARR_W, dst, jb->n, w);
        hz_store_put(ld->s, HZ_ARR_LO, dst, jb->n, lo);
    }
    free(buf);
    free(raw);
    free(split);
    return NULL;
}

/* the safetensors layer writes its messages straight into our err buffers */
_Static_assert(HZ_HF_ERR_BYTES >= HZ_ST_ERR_BYTES, "hfmap err buffers hold safetensors messages");

int hz_hf_load(hz_store *s, const hz_plan *p, const char *dir, int threads, char *err)
{
    return hz_hf_load_timed(s, p, dir, threads, NULL, err);
}

int hz_hf_load_timed(hz_store *s, const hz_plan *p, const char *dir, int threads,
                     hz_hf_load_times *times, char *err)
{
    double t0 = hz_now_s();
    hz_st_index *ix = hz_st_index_open(dir, err);
    if (!ix) return -1;
    int n, src_n = 0;
    need *v = plan_needs(p, &n);
    job *jobs = NULL;
    hz_pio_src *srcs = NULL;
    int rc = -1;
    if (!v) {
        set_err(err, "%s: out of memory", dir);
        goto done;
    }
    if (match(p, ix, v, n, dir, err) != 0) goto done;
    /* every file the plan's tensors come from, opened once for all the workers */
    srcs = calloc((size_t)n + 1, sizeof *srcs);
    const char **src_file = calloc((size_t)n + 1, sizeof *src_file);
    int job_n = 0;
    for (int i = 0; i < n; i++) job_n += (int)((v[i].part.rows * v[i].part.cols + CHUNK_ELEMS - 1) / CHUNK_ELEMS);
    jobs = malloc((size_t)(job_n ? job_n : 1) * sizeof *jobs);
    if (!jobs || !srcs || !src_file) {
        free(src_file);
        set_err(err, "%s: out of memory", dir);
        goto done;
    }
    job_n = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < src_n && strcmp(src_file[k], v[i].src->file)) k++;
        if (k == src_n) {
            if (hz_pio_src_open(&srcs[k], v[i].src->file, 1) != 0) {
                set_err(err, "%s: cannot open: %s", v[i].src->file, strerror(errno));
                free(src_file);
                goto done;
            }
            src_file[src_n++] = v[i].src->file;
        }
        int64_t numel = v[i].part.rows * v[i].part.cols;
        for (int64_t b = 0; b < numel; b += CHUNK_ELEMS)
            jobs[job_n++] = (job){&v[i], k, b, numel - b < CHUNK_ELEMS ? numel - b : CHUNK_ELEMS};
    }
    free(src_file);
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads > job_n) threads = job_n;
    if (threads < 1) threads = 1;
    double t1 = hz_now_s();
    loader ld = {s, jobs, job_n, srcs, 0, 0, 0, 0, NULL, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t *tid = malloc((size_t)threads * sizeof *tid);
    int started = 0;
    if (tid)
        for (; started < threads - 1; started++)
            if (pthread_create(&tid[started], NULL, load_worker, &ld) != 0) break;
    load_worker(&ld); /* the calling thread works too (alone if no thread could start) */
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    free(tid);
    pthread_mutex_destroy(&ld.mu);
    if (ld.read_errno) {
        set_err(err, "%s: cannot read: %s", ld.read_file,
                ld.read_errno == EIO ? "shorter than its header says" : strerror(ld.read_errno));
        goto done;
    }
    if ((ld.failed && ld.next < ld.job_n) || ld.dropped) {
        set_err(err, "%s: out of memory converting the weights", dir);
        goto done;
    }
    if (times) {
        times->open_s = t1 - t0;
        times->read_s = hz_now_s() - t1;
        times->bytes = (int64_t)atomic_load(&ld.bytes);
        times->files = src_n;
        times->threads = started + 1;
    }
    rc = 0;
done:
    for (int i = 0; srcs && i < src_n; i++) hz_pio_src_close(&srcs[i]);
    free(srcs);
    free(jobs);
    free(v);
    hz_st_index_close(ix);
    return rc;
}

/* ---- saving ---- */

typedef struct fill_src {
    const hz_store *s;
    int64_t at;           /* the part's first element in the store */
} fill_src;

static void fill_bf16(void *arg, int64_t begin, int64_t n, void *out)
{
    const fill_src *f = arg;
    hz_store_get(f->s, HZ_ARR_W, f->at + begin, n, out);
}

int hz_hf_save(const hz_store *s, const hz_plan *p, const char *dir, const char *config_json_text,
               int64_t max_shard_bytes, char *err)
{
    if (hz_mkdir_p(dir) != 0) {
        set_err(err, "%s: cannot create the directory: %s", dir, strerror(errno));
        return -1;
    }
    int n;
    need *v = plan_needs(p, &n);
    hz_st_wtensor *w = calloc((size_t)(n ? n : 1), sizeof *w);
    fill_src *src = calloc((size_t)(n ? n : 1), sizeof *src);
    if (!v || !w || !src) {
        free(v);
        free(w);
        free(src);
        set_err(err, "%s: out of memory", dir);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        hz_st_wtensor *t = &w[i];
        t->name = v[i].part.name;
        t->dtype = HZ_ST_BF16;
        t->ndim = v[i].part.ndim;
        t->shape[0] = v[i].part.rows;
        t->shape[1] = v[i].part.cols;
        t->fill = fill_bf16;
        src[i] = (fill_src){s, v[i].t->host_n + v[i].part.row0 * v[i].part.cols};
        t->arg = &src[i];
    }
    int rc = hz_st_write_checkpoint(dir, w, n, max_shard_bytes, err) < 0 ? -1 : 0;
    free(w);
    free(src);
    free(v);
    if (rc == 0 && config_json_text) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (hz_st_write_text(path, config_json_text, err) != 0) rc = -1;
    }
    return rc;
}
