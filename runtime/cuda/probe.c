/* runtime/cuda/probe.c - train --probe: the machine's rates that hzc's step-time model uses
 * (compiler/timemodel.h; docs/plan.md "Step time"), measured at this plan's shapes after the
 * normal init, printed as a table and written as a ceilings file for hzc plan/build
 * --ceilings. A GPU rate is the median of PROBE_REPS batches timed with CUDA events, after
 * PROBE_WARMUP untimed calls. The GEMMs and attention run on the plan's own buffers (weight
 * slot 0, grad slot 0, the workspace, dgrad and a boundary: the arena is free before the
 * first step), filled with random bf16 first; the PCIe copies, the device copy and the host
 * AdamW use scratch allocated and freed here and named in the output. The probe runs instead
 * of training and the trainer exits after it: nothing training computes is changed. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "launch.h"
#include "../optstate.h"

#define PROBE_WARMUP 3
#define PROBE_REPS 7
#define PROBE_BATCH_MS 2.0   /* a timed batch repeats its call to last about this long */
#define PROBE_BATCH_MAX 1000
#define PROBE_STAGE_BYTES ((int64_t)64 << 20) /* pinned host buffer, at least: the fills */
#define PROBE_HBM_BYTES ((int64_t)1 << 30)    /* each buffer of the device copy, at most */
#define PROBE_ADAMW_N ((int64_t)1 << 28)      /* host AdamW parameters, at most */
#define PROBE_ADAMW_REPS 5

/* The rates, by the keys of a ceilings file (compiler/timemodel.c tm_load), in its order.
 * The window attention rates are measured only for a plan with sliding windows. */
enum {
    R_GEMM, R_GEMM_BWD, R_ATT_FWD, R_ATT_BWD, R_WATT_FWD, R_WATT_BWD, R_HBM, R_H2D, R_D2H,
    R_ADAMW, R_ADAMW_BF16, R_ADAMW_INT8, R_N
};
static const char *const rate_keys[R_N] = {
    "gemm_tflops", "gemm_bwd_tflops", "attention_fwd_tflops", "attention_bwd_tflops",
    "window_attention_fwd_tflops", "window_attention_bwd_tflops", "hbm_gbps", "h2d_gbps",
    "d2h_gbps", "host_adamw_gbps", "host_adamw_bf16_gbps", "host_adamw_int8_gbps"};
static const char *const rate_units[R_N] = {"TFLOP/s", "TFLOP/s", "TFLOP/s", "TFLOP/s",
                                            "TFLOP/s", "TFLOP/s", "GB/s",    "GB/s",
                                            "GB/s",    "GB/s",    "GB/s",    "GB/s"};

typedef struct probe_result {
    double value[R_N];   /* TFLOP/s for the first six, GB/s (1e9 bytes) for the rest */
    char what[R_N][256]; /* what was measured, for the table and the file; "" for a rate not
                          * measured (the window ones of a plan without sliding windows) */
} probe_result;

/* Whether R holds rate K: the table and the file list only those. */
static int probed(const probe_result *r, int k) { return r->what[k][0] != 0; }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof x[0], cmp_double);
    return x[n / 2];
}

/* ---- timing: one call issues its work to the stream it is timed on ---- */
typedef void (*probe_fn)(cuda_state *s, const void *arg);

/* Milliseconds one FN(S, ARG) takes on stream ST: the median of PROBE_REPS batches, each as
 * many calls as last about PROBE_BATCH_MS between two events, after PROBE_WARMUP calls. */
static double median_ms(cuda_state *s, cudaStream_t st, probe_fn fn, const void *arg)
{
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    for (int i = 0; i < PROBE_WARMUP; i++) fn(s, arg);
    float one = 0.0f;
    CUDA_CHECK(cudaEventRecord(e0, st));
    fn(s, arg);
    CUDA_CHECK(cudaEventRecord(e1, st));
    CUDA_CHECK(cudaEventSynchronize(e1));
    CUDA_CHECK(cudaEventElapsedTime(&one, e0, e1));
    int batch = one > 0 ? (int)ceil(PROBE_BATCH_MS / one) : PROBE_BATCH_MAX;
    batch = batch < 1 ? 1 : batch > PROBE_BATCH_MAX ? PROBE_BATCH_MAX : batch;
    double ms[PROBE_REPS];
    for (int r = 0; r < PROBE_REPS; r++) {
        float t = 0.0f;
        CUDA_CHECK(cudaEventRecord(e0, st));
        for (int i = 0; i < batch; i++) fn(s, arg);
        CUDA_CHECK(cudaEventRecord(e1, st));
        CUDA_CHECK(cudaEventSynchronize(e1));
        CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        ms[r] = (double)t / batch;
    }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    return median(ms, PROBE_REPS);
}

/* ---- the block's GEMMs, as runtime/cuda/model.c issues them ---- */
enum { LIN_FWD, LIN_DX, LIN_DW };
typedef struct gemm_call {
    const char *what;  /* model.c's name for it */
    int role;          /* enum hz_gemm_role (runtime/kprof.h) */
    int kind;
    void *out;         /* y (LIN_FWD), dx (LIN_DX), the fp32 dw (LIN_DW) */
    const bf16 *a, *b; /* LIN_FWD: x, w; LIN_DX: dy, w; LIN_DW: dy, x */
    int64_t IN, OUT;   /* of the linear layer w (OUT, IN); N = micro_tokens */
    const bf16 *c;     /* LIN_FWD: the residual its epilogue adds, or NULL */
} gemm_call;

static void gemm_issue(cuda_state *s, const void *arg)
{
    const gemm_call *g = arg;
    if (g->kind == LIN_FWD && g->c)
        hzcu_linear_forward_add(s, g->role, g->what, g->out, g->a, g->b, g->c, s->N, g->IN, g->OUT);
    else if (g->kind == LIN_FWD)
        hzcu_linear_forward(s, g->role, g->what, g->out, g->a, g->b, s->N, g->IN, g->OUT);
    else if (g->kind == LIN_DX)
        hzcu_linear_backward_x(s, g->role, g->what, g->out, g->a, g->b, s->N, g->IN, g->OUT);
    else
        hzcu_linear_backward_w(s, g->role, g->what, g->out, g->a, g->b, s->N, g->IN, g->OUT);
}

static const hz_unit *first_block(const hz_plan *p)
{
    for (int i = 0; i < p->unit_n; i++)
        if (p->units[i].kind == HZ_BLOCK) return &p->units[i];
    hzcu_die("the plan has no decoder block to measure (internal error)");
}

/* The GEMMs of the first block for micro-batch 0 into OUT: the forward's four, or with
 * BACKWARD the backward's dx and dW. The operands are the ones block_forward and
 * block_backward use (weight slot 0 and grad slot 0, or the block's resident weights and
 * gradients, the workspace, dgrad, the next boundary), so each GEMM is one init planned.
 * Returns the count. */
static int block_gemms(cuda_state *s, int backward, gemm_call *out)
{
    const hz_unit *u = first_block(s->p);
    block_w w = hzcu_block_weights(s, u, u->resident ? NULL : hzcu_region_at(s, HZ_WSLOT, 0));
    block_g g = hzcu_block_grads(s->p, u, hzcu_unit_grads(s, u, 0));
    work_bufs *b = &s->w;
    int64_t C = s->C, F = s->F, A = s->A, QKV = s->QKV;
    bf16 *dout = s->dgrad; /* micro-batch 0's rows */
    const gemm_call fwd[] = {
        {"qkv = xn wqkv^T", HZ_GEMM_QKV, LIN_FWD, b->qkv, b->xn, w.wqkv, C, QKV, NULL},
        {"xmid = att wo^T", HZ_GEMM_ATTN_OUT, LIN_FWD, b->xmid, b->att, w.wo, A, C, NULL},
        {"gate_up = xn2 wgate_up^T", HZ_GEMM_GATE_UP, LIN_FWD, b->gu, b->xn2, w.wgu, C, 2 * F, NULL},
        {"out = h wdown^T + xmid", HZ_GEMM_DOWN, LIN_FWD, hzcu_boundary_at(s, u->layer + 1, 0), b->h,
         w.wdown, F, C, s->p->dims.post_norms ? NULL : b->xmid},
    };
    const gemm_call bwd[] = {
        {"dh = dout wdown", HZ_GEMM_DOWN, LIN_DX, b->dh, dout, w.wdown, F, C, NULL},
        {"dwdown += dout^T h", HZ_GEMM_DOWN, LIN_DW, g.wdown, dout, b->h, F, C, NULL},
        {"dxn2 = dgate_up wgate_up", HZ_GEMM_GATE_UP, LIN_DX, b->dxn2, b->dgu, w.wgu, C, 2 * F, NULL},
        {"dwgate_up += dgate_up^T xn2", HZ_GEMM_GATE_UP, LIN_DW, g.wgu, b->dgu, b->xn2, C, 2 * F, NULL},
        {"datt = dxmid wo", HZ_GEMM_ATTN_OUT, LIN_DX, b->datt, b->dxmid, w.wo, A, C, NULL},
        {"dwo += dxmid^T att", HZ_GEMM_ATTN_OUT, LIN_DW, g.wo, b->dxmid, b->att, A, C, NULL},
        {"dxn = dqkv wqkv", HZ_GEMM_QKV, LIN_DX, b->dxn, b->dqkv, w.wqkv, C, QKV, NULL},
        {"dwqkv += dqkv^T xn", HZ_GEMM_QKV, LIN_DW, g.wqkv, b->dqkv, b->xn, C, QKV, NULL},
    };
    if (!backward) {
        memcpy(out, fwd, sizeof fwd);
        return (int)(sizeof fwd / sizeof fwd[0]);
    }
    memcpy(out, bwd, sizeof bwd);
    return (int)(sizeof bwd / sizeof bwd[0]);
}

/* Each GEMM timed, a line each on LOG; the FLOP-weighted rate (total FLOPs over the sum of
 * the medians) in TFLOP/s. */
static double time_gemms(cuda_state *s, const gemm_call *g, int n, FILE *log)
{
    double flops = 0.0, ms = 0.0;
    for (int i = 0; i < n; i++) {
        double f = 2.0 * s->N * (double)g[i].IN * (double)g[i].OUT;
        double t = median_ms(s, s->stream[HZ_COMPUTE], gemm_issue, &g[i]);
        fprintf(log, "probe:   %-28s N %d IN %lld OUT %lld: %9.4f ms, %7.1f TFLOP/s\n", g[i].what,
                s->N, (long long)g[i].IN, (long long)g[i].OUT, t, f / t * 1e-9);
        fflush(log);
        flops += f;
        ms += t;
    }
    return flops / ms * 1e-9;
}

/* ---- attention, copies ---- */
/* ARG: the window (an int; 0 = full causal), as block_forward passes it */
static void att_fwd_issue(cuda_state *s, const void *arg)
{
    work_bufs *b = &s->w;
    hzcu_attention_forward(s, s->stream[HZ_COMPUTE], b->att, b->lse, b->q, b->k, b->v,
                           *(const int *)arg);
}

/* D borrows the qkv buffer, as in block_backward */
static void att_bwd_issue(cuda_state *s, const void *arg)
{
    work_bufs *b = &s->w;
    hzcu_attention_backward(s, s->stream[HZ_COMPUTE], b->dq, b->dk, b->dv, b->datt, b->q, b->k,
                            b->v, b->att, b->lse, (float *)b->qkv, *(const int *)arg);
}

/* Attention at WINDOW (0: full causal) on the path a layer with it runs, into R's keys FWD and
 * BWD. FLOPs as timemodel.c counts them: 4 N keys A a forward, keys the mean a query scores,
 * T/2 causal (2 N T A) and W - W^2/2T for a window W < T; the backward 2.5 times that. The
 * backward reads the forward's output and lse. */
static void probe_attention(cuda_state *s, int window, int fwd, int bwd, probe_result *r,
                            FILE *log)
{
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    double T = (double)s->T, W = (double)window;
    double keys = window > 0 && W < T ? W - W * W / (2.0 * T) : T / 2.0;
    double att = 4.0 * s->N * keys * (double)s->A;
    double fwd_ms = median_ms(s, cs, att_fwd_issue, &window);
    double bwd_ms = median_ms(s, cs, att_bwd_issue, &window);
    r->value[fwd] = att / fwd_ms * 1e-9;
    r->value[bwd] = 2.5 * att / bwd_ms * 1e-9;
    /* named after the timing: a cuDNN plan that fails to run falls back to hzc's kernels */
    const char *path = hzcu_attention_name(s, window);
    const char *flops = window > 0 ? "4 N (W - W^2/2T) A" : "2 N T A";
    char scope[64] = "full causal";
    if (window > 0) snprintf(scope, sizeof scope, "sliding window %d", window);
    snprintf(r->what[fwd], sizeof r->what[fwd],
             "attention forward, %s (%s), B %d T %d NH %d NKV %d HD %d: FLOPs %s over time",
             scope, path, s->B, s->T, s->NH, s->NKV, s->HD, flops);
    snprintf(r->what[bwd], sizeof r->what[bwd],
             "its backward (%s): 2.5 x the forward's FLOPs over time", path);
    fprintf(log, "probe: attention, %s (%s), B %d T %d NH %d NKV %d HD %d: forward %.4f ms, "
                 "%.1f TFLOP/s; backward %.4f ms, %.1f TFLOP/s\n",
            scope, path, s->B, s->T, s->NH, s->NKV, s->HD, fwd_ms, r->value[fwd], bwd_ms,
            r->value[bwd]);
    fflush(log);
}

typedef struct copy_call {
    void *dst;
    const void *src;
    int64_t bytes;
    enum cudaMemcpyKind kind;
    cudaStream_t st;
} copy_call;

static void copy_issue(cuda_state *s, const void *arg)
{
    const copy_call *k = arg;
    hzcu_copy(s, k->st, k->dst, k->src, k->bytes, k->kind);
}

/* GB/s of one copy of K (BYTES_MOVED counted per copy). */
static double time_copy(cuda_state *s, const copy_call *k, double bytes_moved)
{
    return bytes_moved / (median_ms(s, k->st, copy_issue, k) * 1e-3) * 1e-9;
}

/* Random bf16 in [-1, 1) (xorshift64), so that no GEMM or kernel runs on the zeros of fresh
 * memory (which draw less power and flatter the rates); every fp32 view of them is finite. */
static void fill_random(bf16 *h, int64_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        h[i] = hz_f32_bf16_inl((float)((double)(x >> 11) * 0x1p-52 - 1.0));
    }
}

/* BYTES of device memory at DST: copies of the host buffer H (H_BYTES) on ST. */
static void fill_device(cuda_state *s, cudaStream_t st, char *dst, int64_t bytes, const void *h,
                        int64_t h_bytes)
{
    for (int64_t at = 0; at < bytes; at += h_bytes)
        hzcu_copy(s, st, dst + at, h, bytes - at < h_bytes ? bytes - at : h_bytes,
                  cudaMemcpyHostToDevice);
}

/* The bytes load_w copies for the largest unit (its bf16 weights); *WHICH: that unit. */
static int64_t largest_unit_bytes(const hz_plan *p, int streamed, int *which)
{
    int64_t best = 0;
    *which = 0;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        if (streamed && u->resident) continue;
        int64_t bytes = 0;
        for (int k = 0; k < u->tensor_n; k++) {
            const hz_tensor *t = &p->tensors[u->first_tensor + k];
            bytes += t->rows * t->cols * 2;
        }
        if (bytes > best) best = bytes, *which = i;
    }
    return best;
}

/* ---- the device copy (HBM) ---- */
static void probe_hbm(cuda_state *s, probe_result *r, FILE *log)
{
    size_t free_b = 0, total_b = 0;
    int l2 = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, s->dev));
    int64_t bytes = PROBE_HBM_BYTES;
    if ((int64_t)free_b / 3 < bytes) bytes = (int64_t)free_b / 3 / (1 << 20) * (1 << 20);
    if (bytes < (1 << 20))
        hzcu_die("--probe: %.1f MiB of GPU memory are free beside the arena, too little for the "
                 "device copy; free the GPU (nvidia-smi lists the processes holding it)",
                 (double)free_b / (1 << 20));
    char *src = NULL, *dst = NULL;
    CUDA_CHECK(cudaMalloc((void **)&src, (size_t)bytes));
    CUDA_CHECK(cudaMalloc((void **)&dst, (size_t)bytes));
    fprintf(log, "probe: device memory: allocated 2 x %lld bytes of device memory for a copy\n",
            (long long)bytes);
    if (bytes < 8 * (int64_t)l2)
        fprintf(log, "probe: warning: the copy's %lld bytes are under 8 x the %d bytes of L2: "
                     "the rate may be the cache's\n", (long long)bytes, l2);
    copy_call k = {dst, src, bytes, cudaMemcpyDeviceToDevice, s->stream[HZ_COMPUTE]};
    r->value[R_HBM] = time_copy(s, &k, 2.0 * (double)bytes);
    CUDA_CHECK(cudaFree(src));
    CUDA_CHECK(cudaFree(dst));
    snprintf(r->what[R_HBM], sizeof r->what[R_HBM],
             "a device-to-device copy (cudaMemcpyAsync) of %lld bytes: bytes read + written "
             "over time", (long long)bytes);
    fprintf(log, "probe:   %.1f GB/s (freed)\n", r->value[R_HBM]);
    fflush(log);
}

/* ---- the host AdamW ---- */
static void fill_grads(void *arg, int64_t begin, int64_t end)
{
    hz_store *st = arg;
    for (int64_t i = begin; i < end; i++) {
        float g = (float)(i % 17 - 8) * 1e-3f; /* no zero gradients */
        if (st->grad_bf16) ((uint16_t *)st->g)[i] = hz_f32_bf16_inl(g);
        else ((float *)st->g)[i] = g;
    }
}

/* hz_adamw_unit's loop (hz_adamw_store_range) over the trainer's pool on a store of its own,
 * allocated as the host store is, with the plan's gradient dtype: PROBE_ADAMW_N parameters,
 * or what half the available RAM holds. GB/s of (24 + gradient bytes) per parameter, as
 * timemodel.c counts. 0, or -1 when the memory cannot be had. */
static int probe_adamw(hz_ctx *c, probe_result *r, FILE *log)
{
    const hz_plan *p = c->plan;
    int64_t grad_bytes = p->host_grad_bf16 ? 2 : 4, per = 12 + grad_bytes, n = PROBE_ADAMW_N;
    int64_t avail = hz_proc_bytes("/proc/meminfo", "MemAvailable:");
    if (avail > 0 && avail / 2 / per < n) n = avail / 2 / per / 64 * 64;
    if (n < (1 << 20)) n = 1 << 20;
    hz_plan q; /* one streamed unit of n, the plan's gradient dtype; the loop timed: fp32 */
    hz_unit one;
    hz_plan_one_unit(&q, &one, p, n);
    hz_store st;
    if (hz_store_alloc(&st, &q, c->be->host_pin, c->be->host_unpin) != 0) {
        hz_store_free(&st);
        fprintf(stderr, "train: error: --probe: cannot allocate %lld bytes of host memory for the "
                        "AdamW measurement (see above); free memory and run it again\n",
                (long long)(n * per));
        return -1;
    }
    int threads = hz_pool_threads(c->pool);
    fprintf(log, "probe: host AdamW: allocated %lld bytes of %s host memory, a store of %lld "
                 "parameters with %s gradients; %d threads\n",
            (long long)st.bytes, c->be->caps->pinned_host ? "pinned" : "plain", (long long)n,
            p->host_grad_bf16 ? "bf16" : "fp32", threads);
    fflush(log);
    hz_pool_run(c->pool, fill_grads, &st, n);
    hz_adam_coef k = hz_adam_coef_of(&c->optim, c->optim.lr, 1, 1.0f, 1);
    hz_adamw_store_range(&st, 0, n, &k, c->pool); /* warm-up: the pages are touched */
    double t[PROBE_ADAMW_REPS];
    for (int i = 0; i < PROBE_ADAMW_REPS; i++) {
        double t0 = hz_now_s();
        hz_adamw_store_range(&st, 0, n, &k, c->pool);
        t[i] = hz_now_s() - t0;
    }
    /* the compact moments' loop (hz_qadamw_pool) on the same master and gradients */
    for (int mode = HZ_OPTSTATE_BF16; mode <= HZ_OPTSTATE_INT8; mode++) {
        int key = mode == HZ_OPTSTATE_BF16 ? R_ADAMW_BF16 : R_ADAMW_INT8;
        hz_qstate qs;
        if (hz_qstate_alloc(&qs, mode, n, 1) != 0) {
            hz_store_free(&st);
            fprintf(stderr, "train: error: --probe: cannot allocate the %s moments of %lld "
                            "parameters for the AdamW measurement; free memory and run it "
                            "again\n", hz_optstate_name(mode), (long long)n);
            return -1;
        }
        hz_qadamw_pool(&qs, st.w, st.lo, st.g, st.grad_bf16, 0, n, &k, 1, c->pool); /* warm-up */
        double tq[PROBE_ADAMW_REPS];
        for (int i = 0; i < PROBE_ADAMW_REPS; i++) {
            double t0 = hz_now_s();
            hz_qadamw_pool(&qs, st.w, st.lo, st.g, st.grad_bf16, 0, n, &k, 2 + i, c->pool);
            tq[i] = hz_now_s() - t0;
        }
        hz_qstate_free(&qs);
        double sq = median(tq, PROBE_ADAMW_REPS), per_q = 2.0 * (4.0 + hz_optstate_bytes_per_param(mode));
        r->value[key] = (double)n * (per_q + (double)grad_bytes) / sq * 1e-9;
        snprintf(r->what[key], sizeof r->what[key],
                 "the %s-moment AdamW (hz_qadamw_pool) over %d threads on the same parameters: "
                 "(%.4g + %lld) bytes per parameter over time (median of %d passes)",
                 hz_optstate_name(mode), threads, per_q, (long long)grad_bytes, PROBE_ADAMW_REPS);
        fprintf(log, "probe:   %s moments: %.3f s a pass, %.1f GB/s\n", hz_optstate_name(mode), sq,
                r->value[key]);
    }
    hz_store_free(&st);
    double s = median(t, PROBE_ADAMW_REPS);
    r->value[R_ADAMW] = (double)n * (double)(24 + grad_bytes) / s * 1e-9;
    snprintf(r->what[R_ADAMW], sizeof r->what[R_ADAMW],
             "hz_adamw_unit's loop over %d threads on %lld parameters, %s gradients: (24 + %lld) "
             "bytes per parameter over time (median of %d passes)",
             threads, (long long)n, p->host_grad_bf16 ? "bf16" : "fp32", (long long)grad_bytes,
             PROBE_ADAMW_REPS);
    fprintf(log, "probe:   %.3f s a pass, %.1f GB/s (freed)\n", s, r->value[R_ADAMW]);
    fflush(log);
    return 0;
}

/* ---- the report and the file ---- */
static int write_ceilings(const char *path, hz_ctx *c, const probe_result *r, int64_t mem_bytes,
                          int64_t process)
{
    const cuda_state *s = c->bk;
    char cc[32], date[32];
    snprintf(cc, sizeof cc, "sm_%d%d", s->cc_major, s->cc_minor);
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &utc);
    json_t *root = json_object(), *by = json_object();
    int bad = !root || !by;
    bad |= json_object_set_new(root, "gpu", json_string(s->gpu_name));
    for (int k = 0; k < R_N; k++) {
        if (!probed(r, k)) continue;
        bad |= json_object_set_new(root, rate_keys[k], json_real(r->value[k]));
        bad |= json_object_set_new(by, rate_keys[k], json_string(r->what[k]));
    }
    bad |= json_object_set_new(root, "gpu_mem_bytes", json_integer((json_int_t)mem_bytes));
    if (process > 0)
        bad |= json_object_set_new(root, "process_host_bytes", json_integer((json_int_t)process));
    bad |= json_object_set_new(root, "cc", json_string(cc));
    bad |= json_object_set_new(root, "host_threads", json_integer(hz_pool_threads(c->pool)));
    bad |= json_object_set_new(root, "measured", json_string(date));
    bad |= json_object_set_new(root, "plan", json_string(c->plan->spec_name));
    bad |= json_object_set_new(root, "measured_by", by);
    if (!bad) bad = json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0;
    json_decref(root);
    return bad ? -1 : 0;
}

int hzcu_probe(hz_ctx *c, const char *out_path, FILE *log)
{
    cuda_state *s = c->bk;
    const hz_plan *p = s->p;
    cudaStream_t h2d = s->stream[HZ_H2D], d2h = s->stream[HZ_D2H];
    probe_result r;
    memset(&r, 0, sizeof r);
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    fprintf(log, "probe: measuring %s (sm_%d%d) and this host at the shapes of %s: %d tokens per "
                 "micro-batch\n", s->gpu_name, s->cc_major, s->cc_minor, p->spec_name, s->N);
    /* ready, as the trainer is before its first step: what it holds beyond its plan */
    int64_t process = hz_proc_bytes("/proc/self/status", "VmRSS:") - p->host_bytes;
    fprintf(log, "probe: the process holds %lld bytes beyond its plan's host memory "
                 "(libraries, device context)\n", (long long)process);
    if (s->kernels_compiled)
        fprintf(log, "probe: note: this run compiled its kernels (NVRTC), whose memory a "
                     "trainer starting from the cubin cache may not hold: a second probe "
                     "measures the process's own bytes as such a trainer starts\n");

    /* the copies' device end: weight slot 0 and the largest unit streamed through it, or in a
     * plan that streams nothing the resident weights and the largest unit (the probe trains
     * nothing, so what it writes over them is its own) */
    int streams = p->regions[HZ_WSLOT].count > 0, unit;
    int64_t unit_bytes = largest_unit_bytes(p, streams, &unit);
    char *slot = streams ? hzcu_region_at(s, HZ_WSLOT, 0) : s->res[HZ_RES_W];
    int64_t slot_bytes = streams ? p->regions[HZ_WSLOT].slot_bytes : p->resident_n * 2;
    const char *dst = streams ? "weight slot 0" : "the resident weights";
    if (slot_bytes < unit_bytes)
        hzcu_die("--probe: %s cannot hold the largest unit (internal error)", dst);
    /* pinned host memory: the PCIe copies, and the random bytes the arena is filled with */
    int64_t h_bytes = unit_bytes > PROBE_STAGE_BYTES ? unit_bytes : PROBE_STAGE_BYTES;
    bf16 *h = NULL;
    CUDA_CHECK(cudaHostAlloc((void **)&h, (size_t)h_bytes, cudaHostAllocDefault));
    fill_random(h, h_bytes / 2);
    const hz_unit *u = &p->units[unit];
    char label[64];
    if (u->layer >= 0) snprintf(label, sizeof label, "%s %d", hz_unit_names[u->kind], u->layer);
    else snprintf(label, sizeof label, "%s", hz_unit_names[u->kind]);
    fprintf(log, "probe: PCIe: allocated %lld bytes of pinned host memory; copies of %lld bytes "
                 "(the largest unit, %s) to and from %s\n",
            (long long)h_bytes, (long long)unit_bytes, label, dst);
    copy_call up = {slot, h, unit_bytes, cudaMemcpyHostToDevice, h2d};
    copy_call down = {h, slot, unit_bytes, cudaMemcpyDeviceToHost, d2h};
    r.value[R_H2D] = time_copy(s, &up, (double)unit_bytes);
    r.value[R_D2H] = time_copy(s, &down, (double)unit_bytes);
    snprintf(r.what[R_H2D], sizeof r.what[R_H2D],
             "pinned host -> %s, one copy of %lld bytes (the largest unit, %s) on the h2d "
             "stream", dst, (long long)unit_bytes, label);
    snprintf(r.what[R_D2H], sizeof r.what[R_D2H],
             "%s -> pinned host, the same %lld bytes on the d2h stream", dst,
             (long long)unit_bytes);
    fprintf(log, "probe:   h2d %.1f GB/s, d2h %.1f GB/s\n", r.value[R_H2D], r.value[R_D2H]);
    fflush(log);

    /* the block's operands: random bf16 in its weights (slot 0 or the resident ones), the
     * workspace and dgrad (the d2h copies brought back the bytes the h2d ones took); zero
     * fp32 accumulators in its gradients */
    const hz_unit *b0 = first_block(p);
    fill_device(s, h2d, slot, slot_bytes, h, h_bytes);
    fill_device(s, h2d, hzcu_region_at(s, HZ_WORK, 0), p->regions[HZ_WORK].bytes, h, h_bytes);
    fill_device(s, h2d, (char *)s->dgrad, p->regions[HZ_DGRAD].bytes, h, h_bytes);
    hzcu_memset(s, h2d, hzcu_unit_grads(s, b0, 0),
                b0->resident || b0->held ? b0->span_n * 4 : p->regions[HZ_GSLOT].slot_bytes);
    CUDA_CHECK(cudaStreamSynchronize(h2d));

    gemm_call g[8];
    int n = block_gemms(s, 0, g);
    fprintf(log, "probe: forward GEMMs of block 0 (cuBLASLt, bf16 in, fp32 accumulate):\n");
    r.value[R_GEMM] = time_gemms(s, g, n, log);
    snprintf(r.what[R_GEMM], sizeof r.what[R_GEMM],
             "the forward GEMMs of one block at %d tokens (qkv, o_proj, gate_up, down): total "
             "FLOPs over total time", s->N);
    n = block_gemms(s, 1, g);
    fprintf(log, "probe: backward GEMMs of block 0 (dW accumulated in fp32):\n");
    r.value[R_GEMM_BWD] = time_gemms(s, g, n, log);
    snprintf(r.what[R_GEMM_BWD], sizeof r.what[R_GEMM_BWD],
             "the backward dx and dW GEMMs of the same block (8): total FLOPs over total time");

    /* the full causal layers' attention, and the sliding-window blocks' where the plan has
     * them (their own kernels: cuDNN runs only the full layers) */
    probe_attention(s, 0, R_ATT_FWD, R_ATT_BWD, &r, log);
    if (p->dims.window > 0)
        probe_attention(s, (int)p->dims.window, R_WATT_FWD, R_WATT_BWD, &r, log);
    CUDA_CHECK(cudaFreeHost(h));
    fprintf(log, "probe: freed the %lld bytes of pinned host memory\n", (long long)h_bytes);

    probe_hbm(s, &r, log);
    if (probe_adamw(c, &r, log) != 0) return -1;

    fprintf(log, "\nprobe: the rates of hzc's step-time model on %s (docs/plan.md \"Step time\")\n",
            s->gpu_name);
    fprintf(log, "  %-27s %10s %-8s %s\n", "key", "rate", "unit", "measured");
    for (int k = 0; k < R_N; k++) {
        if (!probed(&r, k)) continue;
        fprintf(log, "  %-27s %10.4g %-8s %s\n", rate_keys[k], r.value[k], rate_units[k],
                r.what[k]);
        if (!(r.value[k] > 0) || !isfinite(r.value[k])) {
            fflush(log);
            fprintf(stderr, "train: error: --probe: %s came out as %g, which a ceilings file "
                            "cannot hold; run the probe again on an idle machine\n",
                    rate_keys[k], r.value[k]);
            return -1;
        }
    }
    if (write_ceilings(out_path, c, &r, (int64_t)total_b, process) != 0) {
        fflush(log);
        fprintf(stderr, "train: error: -o %s: cannot write the ceilings file; pick a writable "
                        "path\n", out_path);
        return -1;
    }
    fprintf(log, "ceilings: %s (hzc plan SPEC --ceilings %s, or hzc build ... --ceilings %s, "
                 "predicts with these rates)\n", out_path, out_path, out_path);
    fflush(log);
    return 0;
}
