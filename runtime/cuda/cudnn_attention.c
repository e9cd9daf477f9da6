/* runtime/cuda/cudnn_attention.c - the forward and backward attention graphs of cuDNN's fused
 * flash attention, in the form its SDPA engines recognise (the operation pattern that
 * cudnn-frontend's composite SDPA nodes lower to): the graph of operations is spelled out
 * (matmuls, scale, causal mask, softmax with its statistics), and cuDNN matches it to one
 * fused kernel. Layouts: cudnn_attention.h; strides describe hzc's (B, T, heads, HD)
 * buffers as (B, heads, T, HD) tensors without a copy. */
#include "cudnn_attention.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HZ_HAVE_CUDNN
#include <cuda.h>

#include "cudnn_api.h"

/* The device and by-value tensors of both graphs (virtual ones are numbered from
 * HZDNN_VIRTUAL_UID0). */
enum {
    U_Q = 1, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEG_INF, U_ONE, /* forward (and backward) */
    U_DO, U_DQ, U_DK, U_DV, U_SOFTMAX_SUM, U_DQ_ACCUM,          /* backward */
    U_WINDOW                                                     /* sliding-window graphs */
};

struct hzcu_sdpa {
    int B, T, NH, NKV, HD, window; /* window: 0, or the keys a query sees (itself included) */
    float scale, neg_inf, one, window_f; /* the by-value scalars: host memory read at execution */
    cudnnHandle_t handle;
    hzdnn_graph fwd, bwd;
    int has_bwd;
    int64_t dq_accum_off; /* the backward's fp32 dq accumulator, in the workspace */
    void *ws;
    char bwd_why[720], describe[700];
};

/* 1 when the graphs carry the sliding window's bound (and its scalar in the variant pack). */
static int banded(const hzcu_sdpa *a) { return a->window > 0 && a->window < a->T; }

/* ---- tensor shapes: hzc's buffers seen as (B, heads, T, HD) ---- */

/* q, out, dout, dq: (B, T, NH, HD) */
static void qlike(const hzcu_sdpa *a, int64_t d[4], int64_t s[4])
{
    const int64_t B = a->B, T = a->T, H = a->NH, D = a->HD;
    d[0] = B, d[1] = H, d[2] = T, d[3] = D;
    s[0] = T * H * D, s[1] = D, s[2] = H * D, s[3] = 1;
}

/* k, v, dk, dv: (B, T, NKV, HD); TRANSPOSED: as (B, NKV, HD, T), the B operand of Q K^T */
static void kvlike(const hzcu_sdpa *a, int transposed, int64_t d[4], int64_t s[4])
{
    const int64_t B = a->B, T = a->T, H = a->NKV, D = a->HD;
    d[0] = B, d[1] = H, d[2] = transposed ? D : T, d[3] = transposed ? T : D;
    s[0] = T * H * D, s[1] = D, s[2] = transposed ? 1 : H * D, s[3] = transposed ? H * D : 1;
}

/* lse, D: (B, NH, T) as (B, NH, T, 1) */
static void rowlike(const hzcu_sdpa *a, int64_t d[4], int64_t s[4])
{
    d[0] = a->B, d[1] = a->NH, d[2] = a->T, d[3] = 1;
    s[0] = (int64_t)a->NH * a->T, s[1] = a->T, s[2] = 1, s[3] = 1;
}

static cudnnBackendDescriptor_t dev(hzdnn_graph *g, int64_t uid, cudnnDataType_t dt,
                                    const int64_t d[4], const int64_t s[4])
{
    return hzdnn_tensor(g, uid, dt, d, s, HZDNN_F_DEVICE);
}

/* Y = X with the scores outside one bound set to -inf: the causal bound (WINDOW NULL), row
 * index >= column index keeps; or the sliding window's (WINDOW its by-value scalar W), column
 * + W > row keeps. Each bound has its own index tensors, in the order and types that
 * cudnn-frontend's SDPA gives its causal and left-bound masks: the pattern cuDNN's fused
 * engines recognise. */
static cudnnBackendDescriptor_t bound(hzdnn_graph *g, cudnnBackendDescriptor_t x,
                                      const int64_t sdim[4], cudnnBackendDescriptor_t neg_inf,
                                      cudnnBackendDescriptor_t window)
{
    cudnnBackendDescriptor_t row = hzdnn_virtual(g, CUDNN_DATA_INT32, sdim);
    cudnnBackendDescriptor_t col = hzdnn_virtual(g, CUDNN_DATA_INT32, sdim);
    cudnnBackendDescriptor_t keep = hzdnn_virtual(g, CUDNN_DATA_BOOLEAN, sdim);
    cudnnBackendDescriptor_t y = hzdnn_virtual(g, CUDNN_DATA_FLOAT, sdim);
    hzdnn_gen_index(g, x, 2, row);
    hzdnn_gen_index(g, x, 3, col);
    if (window) {
        cudnnBackendDescriptor_t colw = hzdnn_virtual(g, CUDNN_DATA_FLOAT, sdim);
        hzdnn_pointwise_axis(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, 3, col, window, NULL, colw);
        hzdnn_pointwise(g, CUDNN_POINTWISE_CMP_GT, CUDNN_DATA_BOOLEAN, colw, row, NULL, keep);
    } else {
        hzdnn_pointwise(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL, keep);
    }
    hzdnn_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, x, neg_inf, keep, y);
    return y;
}

/* The causal mask, and with a sliding window W < T the window's bound after it (hzc's
 * window: query t sees keys t - W + 1 .. t). */
static cudnnBackendDescriptor_t causal_mask(const hzcu_sdpa *a, hzdnn_graph *g,
                                            cudnnBackendDescriptor_t x, const int64_t sdim[4],
                                            cudnnBackendDescriptor_t neg_inf)
{
    cudnnBackendDescriptor_t y = bound(g, x, sdim, neg_inf, NULL);
    if (!banded(a)) return y;
    return bound(g, y, sdim, neg_inf, hzdnn_scalar(g, U_WINDOW));
}

/* Y = X OP B in fp32, Y a new virtual tensor of DIM. */
static cudnnBackendDescriptor_t pw2(hzdnn_graph *g, cudnnPointwiseMode_t op,
                                    cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                                    const int64_t dim[4])
{
    cudnnBackendDescriptor_t y = hzdnn_virtual(g, CUDNN_DATA_FLOAT, dim);
    hzdnn_pointwise(g, op, CUDNN_DATA_FLOAT, x, b, NULL, y);
    return y;
}

/* out = softmax(scale q k^T, causal) v, stats = max + log(sum exp) per row (natural log). */
static void build_forward(hzcu_sdpa *a, hzdnn_graph *g)
{
    int64_t qd[4], qs[4], ktd[4], kts[4], vd[4], vs[4], rd[4], rs[4];
    qlike(a, qd, qs);
    kvlike(a, 1, ktd, kts);
    kvlike(a, 0, vd, vs);
    rowlike(a, rd, rs);
    const int64_t sd[4] = {a->B, a->NH, a->T, a->T};
    cudnnBackendDescriptor_t Q = dev(g, U_Q, CUDNN_DATA_BFLOAT16, qd, qs);
    cudnnBackendDescriptor_t KT = dev(g, U_K, CUDNN_DATA_BFLOAT16, ktd, kts);
    cudnnBackendDescriptor_t V = dev(g, U_V, CUDNN_DATA_BFLOAT16, vd, vs);
    cudnnBackendDescriptor_t O = dev(g, U_O, CUDNN_DATA_BFLOAT16, qd, qs);
    cudnnBackendDescriptor_t stats = dev(g, U_STATS, CUDNN_DATA_FLOAT, rd, rs);
    cudnnBackendDescriptor_t scale = hzdnn_scalar(g, U_SCALE);
    cudnnBackendDescriptor_t neg_inf = hzdnn_scalar(g, U_NEG_INF);

    cudnnBackendDescriptor_t S = hzdnn_virtual(g, CUDNN_DATA_FLOAT, sd);
    hzdnn_matmul(g, Q, KT, S);
    cudnnBackendDescriptor_t Ss = pw2(g, CUDNN_POINTWISE_MUL, S, scale, sd);
    cudnnBackendDescriptor_t Sm = causal_mask(a, g, Ss, sd, neg_inf);
    /* softmax, with its statistics */
    cudnnBackendDescriptor_t M = hzdnn_virtual(g, CUDNN_DATA_FLOAT, rd);
    hzdnn_reduction(g, CUDNN_REDUCE_TENSOR_MAX, Sm, M);
    cudnnBackendDescriptor_t Z = pw2(g, CUDNN_POINTWISE_SUB, Sm, M, sd);
    cudnnBackendDescriptor_t E = hzdnn_virtual(g, CUDNN_DATA_FLOAT, sd);
    hzdnn_pointwise(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, Z, NULL, NULL, E);
    cudnnBackendDescriptor_t L = hzdnn_virtual(g, CUDNN_DATA_FLOAT, rd);
    hzdnn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, E, L);
    cudnnBackendDescriptor_t logL = hzdnn_virtual(g, CUDNN_DATA_FLOAT, rd);
    hzdnn_pointwise(g, CUDNN_POINTWISE_LOG, CUDNN_DATA_FLOAT, L, NULL, NULL, logL);
    hzdnn_pointwise(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, M, logL, NULL, stats);
    /* P in the inputs' type: the engine rounds it to bf16 before P V */
    cudnnBackendDescriptor_t P = hzdnn_virtual(g, CUDNN_DATA_BFLOAT16, sd);
    hzdnn_pointwise(g, CUDNN_POINTWISE_DIV, CUDNN_DATA_FLOAT, E, L, NULL, P);
    hzdnn_matmul(g, P, V, O);
}

/* C = A B into OUT (the kv heads' tensor): directly where NH = NKV, else per query head
 * into a virtual (B, NH, T, HD) and summed over the heads of each group (the reduction
 * the engine recognises as grouped-query attention). */
static void matmul_to_kv(hzcu_sdpa *a, hzdnn_graph *g, cudnnBackendDescriptor_t A,
                         cudnnBackendDescriptor_t Bm, cudnnBackendDescriptor_t out)
{
    if (a->NH == a->NKV) {
        hzdnn_matmul(g, A, Bm, out);
        return;
    }
    const int64_t fd[4] = {a->B, a->NH, a->T, a->HD};
    cudnnBackendDescriptor_t full = hzdnn_virtual(g, CUDNN_DATA_BFLOAT16, fd);
    hzdnn_matmul(g, A, Bm, full);
    hzdnn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, full, out);
}

/* The flash backward: D = rowsum(dO O); P = exp(scale Q K^T - stats) (causal);
 * dV = P^T dO; dS = P (dO V^T - D) scale; dK = dS^T Q; dQ = dS K (fp32, then bf16). */
static void build_backward(hzcu_sdpa *a, hzdnn_graph *g)
{
    int64_t qd[4], qs[4], ktd[4], kts[4], kd[4], ks[4], rd[4], rs[4];
    qlike(a, qd, qs);
    kvlike(a, 1, ktd, kts);
    kvlike(a, 0, kd, ks);
    rowlike(a, rd, rs);
    const int64_t B = a->B, T = a->T, H = a->NH, HD = a->HD;
    const int64_t sd[4] = {B, H, T, T};
    const int64_t td[4] = {B, H, T, T}, ts[4] = {H * T * T, T * T, 1, T}; /* S^T, no copy */
    const int64_t accs[4] = {H * T * HD, T * HD, HD, 1};
    cudnnBackendDescriptor_t Q = dev(g, U_Q, CUDNN_DATA_BFLOAT16, qd, qs);
    cudnnBackendDescriptor_t KT = dev(g, U_K, CUDNN_DATA_BFLOAT16, ktd, kts);
    cudnnBackendDescriptor_t VT = dev(g, U_V, CUDNN_DATA_BFLOAT16, ktd, kts);
    cudnnBackendDescriptor_t O = dev(g, U_O, CUDNN_DATA_BFLOAT16, qd, qs);
    cudnnBackendDescriptor_t dO = dev(g, U_DO, CUDNN_DATA_BFLOAT16, qd, qs);
    cudnnBackendDescriptor_t stats = dev(g, U_STATS, CUDNN_DATA_FLOAT, rd, rs);
    cudnnBackendDescriptor_t dQ = dev(g, U_DQ, CUDNN_DATA_BFLOAT16, qd, qs);
    cudnnBackendDescriptor_t dK = dev(g, U_DK, CUDNN_DATA_BFLOAT16, kd, ks);
    cudnnBackendDescriptor_t dV = dev(g, U_DV, CUDNN_DATA_BFLOAT16, kd, ks);
    cudnnBackendDescriptor_t Dsum = dev(g, U_SOFTMAX_SUM, CUDNN_DATA_FLOAT, rd, rs);
    cudnnBackendDescriptor_t dQacc = dev(g, U_DQ_ACCUM, CUDNN_DATA_FLOAT, qd, accs);
    cudnnBackendDescriptor_t scale = hzdnn_scalar(g, U_SCALE);
    cudnnBackendDescriptor_t neg_inf = hzdnn_scalar(g, U_NEG_INF);
    cudnnBackendDescriptor_t one = hzdnn_scalar(g, U_ONE);

    /* D = rowsum(dO * O) (times 1: where dropout would scale it) */
    cudnnBackendDescriptor_t dOO = pw2(g, CUDNN_POINTWISE_MUL, dO, O, qd);
    cudnnBackendDescriptor_t rsum = hzdnn_virtual(g, CUDNN_DATA_FLOAT, rd);
    hzdnn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, dOO, rsum);
    hzdnn_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, rsum, one, NULL, Dsum);
    /* P from the forward's statistics */
    cudnnBackendDescriptor_t S = hzdnn_virtual(g, CUDNN_DATA_FLOAT, sd);
    hzdnn_matmul(g, Q, KT, S);
    cudnnBackendDescriptor_t Ss = pw2(g, CUDNN_POINTWISE_MUL, S, scale, sd);
    cudnnBackendDescriptor_t Sl = pw2(g, CUDNN_POINTWISE_SUB, Ss, stats, sd);
    cudnnBackendDescriptor_t Sm = causal_mask(a, g, Sl, sd, neg_inf);
    cudnnBackendDescriptor_t P = hzdnn_virtual(g, CUDNN_DATA_FLOAT, sd);
    hzdnn_pointwise(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, Sm, NULL, NULL, P);
    /* dV = P^T dO */
    cudnnBackendDescriptor_t PT = hzdnn_tensor(g, 0, CUDNN_DATA_BFLOAT16, td, ts, HZDNN_F_VIRTUAL);
    hzdnn_reshape(g, P, PT);
    matmul_to_kv(a, g, PT, dO, dV);
    /* dS = P (dO V^T - D) scale */
    cudnnBackendDescriptor_t dP = hzdnn_virtual(g, CUDNN_DATA_FLOAT, sd);
    hzdnn_matmul(g, dO, VT, dP);
    cudnnBackendDescriptor_t dPD = pw2(g, CUDNN_POINTWISE_SUB, dP, Dsum, sd);
    cudnnBackendDescriptor_t dSu = pw2(g, CUDNN_POINTWISE_MUL, dPD, P, sd);
    cudnnBackendDescriptor_t dS = pw2(g, CUDNN_POINTWISE_MUL, dSu, scale, sd);
    /* dK = dS^T Q */
    cudnnBackendDescriptor_t dST = hzdnn_tensor(g, 0, CUDNN_DATA_BFLOAT16, td, ts, HZDNN_F_VIRTUAL);
    hzdnn_reshape(g, dS, dST);
    matmul_to_kv(a, g, dST, Q, dK);
    /* dQ = dS K, accumulated in fp32, then to bf16 */
    int64_t kr_d[4] = {ktd[0], ktd[1], ktd[3], ktd[2]}, kr_s[4] = {kts[0], kts[1], kts[3], kts[2]};
    cudnnBackendDescriptor_t K = hzdnn_tensor(g, 0, CUDNN_DATA_BFLOAT16, kr_d, kr_s, HZDNN_F_VIRTUAL);
    hzdnn_reshape(g, KT, K);
    hzdnn_matmul(g, dS, K, dQacc);
    hzdnn_pointwise(g, CUDNN_POINTWISE_IDENTITY, CUDNN_DATA_FLOAT, dQacc, NULL, NULL, dQ);
}

hzcu_sdpa *hzcu_sdpa_create(int B, int T, int NH, int NKV, int HD, float scale, int window,
                            int want_bwd, char *why, size_t why_n)
{
    if (hzdnn_load(why, why_n) != 0) return NULL;
    if (hzdnn.version == 91000 || hzdnn.version == 91001) {
        /* cudnn-frontend refuses bf16 SDPA, forward and backward, on these two releases */
        snprintf(why, why_n, "cuDNN %zu.%zu.%zu has known bugs in its bf16 flash attention "
                 "(9.10.2 or newer fixes them)", hzdnn.version / 10000, hzdnn.version / 100 % 100,
                 hzdnn.version % 100);
        return NULL;
    }
    hzcu_sdpa *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(why, why_n, "out of host memory");
        return NULL;
    }
    /* the masked scores' value: -inf, but the lowest finite float before cuDNN 9.10, whose
     * engines want that (cudnn-frontend's get_negative_inf_value) */
    *a = (hzcu_sdpa){.B = B, .T = T, .NH = NH, .NKV = NKV, .HD = HD, .window = window,
                     .scale = scale, .neg_inf = hzdnn.version < 91000 ? -FLT_MAX : -INFINITY,
                     .one = 1.0f, .window_f = (float)window};
    cudnnStatus_t st = hzdnn.cudnnCreate(&a->handle);
    if (st != CUDNN_STATUS_SUCCESS) {
        char text[480];
        hzdnn_status_text(st, text, sizeof text);
        snprintf(why, why_n, "cudnnCreate: %s", text);
        free(a);
        return NULL;
    }
    hzdnn_graph_init(&a->fwd);
    hzdnn_graph_init(&a->bwd);
    build_forward(a, &a->fwd);
    if (a->fwd.failed || hzdnn_finalize(&a->fwd, a->handle) != 0) {
        snprintf(why, why_n, "cuDNN refused the forward attention graph (%s)", a->fwd.err);
        hzcu_sdpa_destroy(a);
        return NULL;
    }
    snprintf(a->describe, sizeof a->describe, "cuDNN %zu.%zu.%zu from %s", hzdnn.version / 10000,
             hzdnn.version / 100 % 100, hzdnn.version % 100, hzdnn.path);
    if (!want_bwd) {
        snprintf(a->bwd_why, sizeof a->bwd_why, "not asked for");
    } else if (T % 128 != 0 && hzdnn.version <= 91500) {
        /* cudnn-frontend adds a padding mask for this case before 9.15; hzc does not */
        snprintf(a->bwd_why, sizeof a->bwd_why,
                 "T = %d is not a multiple of 128, which cuDNN before 9.15.1 needs", T);
    } else {
        build_backward(a, &a->bwd);
        if (a->bwd.failed || hzdnn_finalize(&a->bwd, a->handle) != 0)
            snprintf(a->bwd_why, sizeof a->bwd_why,
                     "cuDNN refused the backward attention graph (%s)", a->bwd.err);
        else
            a->has_bwd = 1;
    }
    a->dq_accum_off = (a->bwd.workspace_bytes + 255) / 256 * 256;
    return a;
}

int hzcu_sdpa_has_backward(const hzcu_sdpa *a) { return a && a->has_bwd; }

const char *hzcu_sdpa_backward_why(const hzcu_sdpa *a)
{
    return a ? a->bwd_why : "cuDNN is not loaded";
}

const char *hzcu_sdpa_describe(const hzcu_sdpa *a) { return a ? a->describe : "none"; }

int64_t hzcu_sdpa_workspace_bytes(const hzcu_sdpa *a)
{
    if (!a) return 0;
    int64_t bwd = a->has_bwd ? a->dq_accum_off + (int64_t)a->B * a->NH * a->T * a->HD * 4 : 0;
    return a->fwd.workspace_bytes > bwd ? a->fwd.workspace_bytes : bwd;
}

void hzcu_sdpa_set_workspace(hzcu_sdpa *a, void *ws) { a->ws = ws; }

static int run(hzcu_sdpa *a, const hzdnn_graph *g, struct CUstream_st *st, int n,
               const int64_t *uids, void *const *ptrs, const char *what, char *why, size_t why_n)
{
    cudnnStatus_t s = hzdnn.cudnnSetStream(a->handle, st);
    if (s == CUDNN_STATUS_SUCCESS) s = hzdnn_execute(g, a->handle, n, uids, ptrs, a->ws);
    if (s == CUDNN_STATUS_SUCCESS) return 0;
    char text[480];
    hzdnn_status_text(s, text, sizeof text);
    snprintf(why, why_n, "cuDNN attention %s: %s", what, text);
    return -1;
}

int hzcu_sdpa_forward(hzcu_sdpa *a, struct CUstream_st *st, void *out, float *lse,
                      const void *q, const void *k, const void *v, char *why, size_t why_n)
{
    const int64_t uids[] = {U_Q, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEG_INF, U_WINDOW};
    void *const ptrs[] = {(void *)q, (void *)k,  (void *)v,    out,
                          lse,       &a->scale, &a->neg_inf, &a->window_f};
    return run(a, &a->fwd, st, 7 + banded(a), uids, ptrs, "forward", why, why_n);
}

int hzcu_sdpa_backward(hzcu_sdpa *a, struct CUstream_st *st, void *dq, void *dk, void *dv,
                       const void *dout, const void *q, const void *k, const void *v,
                       const void *out, const float *lse, float *D, char *why, size_t why_n)
{
    if (!a->has_bwd) {
        snprintf(why, why_n, "cuDNN attention backward: %s", a->bwd_why);
        return -1;
    }
    void *acc = (char *)a->ws + a->dq_accum_off;
    if (hzdnn.version < 90600) {
        /* before cuDNN 9.6.0 the backward adds into its dq accumulator without clearing it
         * first (cudnn-frontend zeroes it there; from 9.6.0 the engine does) */
        size_t n = (size_t)a->B * a->NH * a->T * a->HD;
        CUresult r = cuMemsetD32Async((CUdeviceptr)(uintptr_t)acc, 0, n, st);
        if (r != CUDA_SUCCESS) {
            const char *e = NULL;
            cuGetErrorString(r, &e);
            snprintf(why, why_n, "cuDNN attention backward: clearing its dq accumulator: %s",
                     e ? e : "unknown CUDA error");
            return -1;
        }
    }
    const int64_t uids[] = {U_Q,  U_K,  U_V,  U_O,           U_DO,       U_STATS, U_DQ,  U_DK,
                            U_DV, U_SOFTMAX_SUM, U_DQ_ACCUM, U_SCALE, U_NEG_INF, U_ONE, U_WINDOW};
    void *const ptrs[] = {(void *)q,  (void *)k, (void *)v,   (void *)out, (void *)dout,
                          (void *)lse, dq,       dk,          dv,          D,
                          acc,        &a->scale, &a->neg_inf, &a->one,     &a->window_f};
    return run(a, &a->bwd, st, 14 + banded(a), uids, ptrs, "backward", why, why_n);
}

void hzcu_sdpa_destroy(hzcu_sdpa *a)
{
    if (!a) return;
    hzdnn_graph_free(&a->fwd);
    hzdnn_graph_free(&a->bwd);
    if (a->handle) hzdnn.cudnnDestroy(a->handle);
    free(a);
}

#else /* built without cuDNN's headers: the trainer keeps hzc's kernels */

static const char no_cudnn[] = "this build has no cuDNN (configure found no cudnn_backend.h)";

hzcu_sdpa *hzcu_sdpa_create(int B, int T, int NH, int NKV, int HD, float scale, int window,
                            int want_bwd, char *why, size_t why_n)
{
    snprintf(why, why_n, "%s", no_cudnn);
    return NULL;
}

int hzcu_sdpa_has_backward(const hzcu_sdpa *a) { return 0; }
const char *hzcu_sdpa_backward_why(const hzcu_sdpa *a) { return no_cudnn; }
const char *hzcu_sdpa_describe(const hzcu_sdpa *a) { return "none"; }
int64_t hzcu_sdpa_workspace_bytes(const hzcu_sdpa *a) { return 0; }
void hzcu_sdpa_set_workspace(hzcu_sdpa *a, void *ws) {}

int hzcu_sdpa_forward(hzcu_sdpa *a, struct CUstream_st *st, void *out, float *lse,
                      const void *q, const void *k, const void *v, char *why, size_t why_n)
{
    snprintf(why, why_n, "%s", no_cudnn);
    return -1;
}

int hzcu_sdpa_backward(hzcu_sdpa *a, struct CUstream_st *st, void *dq, void *dk, void *dv,
                       const void *dout, const void *q, const void *k, const void *v,
                       const void *out, const float *lse, float *D, char *why, size_t why_n)
{
    snprintf(why, why_n, "%s", no_cudnn);
    return -1;
}

void hzcu_sdpa_destroy(hzcu_sdpa *a) {}
#endif
