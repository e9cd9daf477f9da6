/* runtime/cuda/launch.c - one typed wrapper per kernel of the table (kernels.h): each
 * turns a model-level call into the launch shape stated above the kernel in its .cu file
 * (grid, block, shared memory) and, under --deterministic, into the ordered variant. */
#include "launch.h"
#include "../optstate.h"

/* The kernel profile's costs (runtime/kprof.h): bytes read + written, in the kernels' own
 * element sizes (bf16 2, fp32 4, token ids 4); a row's later kernels add no call. */
static hz_kcost mem(int row, double bytes) { return hz_kc(row, 0.0, bytes); }

static hz_kcost more(int row, double bytes)
{
    hz_kcost c = {row, 0, 0.0, bytes};
    return c;
}

/* Blocks for a grid-strided kernel of BLOCK threads over ITEMS work items, capped so that a
 * huge tensor does not get millions of blocks (the loops stride over the rest). */
static int64_t grid_for(const cuda_state *s, int64_t items, int block)
{
    int64_t g = (items + block - 1) / block, cap = (int64_t)s->sm_count * 32;
    return g < 1 ? 1 : g > cap ? cap : g;
}

void hzcu_f32_to_bf16(cuda_state *s, cudaStream_t st, bf16 *out, const float *in, long n)
{
    void *args[] = {&out, &in, &n};
    hzcu_launch(s, K_F32_TO_BF16, st, grid_for(s, n, 256), 1, 256, 0, args,
                mem(HZ_KR_CAST, 6.0 * (double)n));
}

void hzcu_add_bf16(cuda_state *s, cudaStream_t st, bf16 *out, const bf16 *a, const bf16 *b, long n)
{
    void *args[] = {&out, &a, &b, &n};
    hzcu_launch(s, K_ADD_BF16, st, grid_for(s, n, 256), 1, 256, 0, args,
                mem(HZ_KR_RESIDUAL, 6.0 * (double)n));
}

/* In the deterministic mode HZ_SUMSQ_PARTS blocks store their sums after the scalars and one
 * thread adds them in order: the same bits on every run and every GPU. */
void hzcu_sumsq_f32(cuda_state *s, cudaStream_t st, double *acc, const float *x, long n)
{
    double *part = s->det ? s->scalars + HZ_SC_SUMSQ_PARTS : NULL;
    void *args[] = {&acc, &part, &x, &n};
    hzcu_launch(s, K_SUMSQ_F32, st, s->det ? HZ_SUMSQ_PARTS : 2 * (int64_t)s->sm_count, 1, 256, 0,
                args, mem(HZ_KR_GRAD_NORM, 4.0 * (double)n));
    if (!s->det) return;
    int G = HZ_SUMSQ_PARTS;
    void *sum[] = {&acc, &part, &G};
    hzcu_launch(s, K_SUM_F64, st, 1, 1, 1, 0, sum, more(HZ_KR_GRAD_NORM, 8.0 * (G + 1)));
}

/* dst (C) += the rows of part (G, C), in order; the second kernel of ROW's work. */
void hzcu_colsum_f32(cuda_state *s, cudaStream_t st, int row, float *dst, const float *part, int G,
                     int C)
{
    void *args[] = {&dst, &part, &G, &C};
    hzcu_launch(s, K_COLSUM_F32, st, (C + 255) / 256, 1, 256, 0, args,
                more(row, 4.0 * (double)C * (G + 2)));
}

/* 4 elements a thread where the pointers allow it (adamw.cu), so a quarter of n threads. */
void hzcu_adamw(cuda_state *s, cudaStream_t st, uint16_t *w, int16_t *lo, float *m, float *v,
                const float *g, long n, const hz_adam_coef *k)
{
    hz_adam_coef c = *k;
    void *args[] = {&w, &lo, &m, &v, &g, &n, &c.decay, &c.step, &c.rbc2, &c.beta1, &c.beta2,
                    &c.eps, &c.gscale};
    hzcu_launch(s, K_ADAMW, st, grid_for(s, (n + 3) / 4, 256), 1, 256, 0, args,
                mem(HZ_KR_ADAMW, 28.0 * (double)n));
}

/* one element a thread (adamw_q.cu) */
void hzcu_adamw_bf16state(cuda_state *s, cudaStream_t st, uint16_t *w, int16_t *lo, uint16_t *m,
                          uint16_t *v, const void *g, int grad_bf16, long first, long n,
                          uint64_t *bad, const hz_adam_coef *k, uint64_t seed, long t)
{
    hz_adam_coef c = *k;
    void *args[] = {&w, &lo, &m, &v, &g, &grad_bf16, &first, &n, &bad, &c.decay, &c.step,
                    &c.rbc2, &c.beta1, &c.beta2, &c.eps, &c.gscale, &seed, &t};
    hzcu_launch(s, K_ADAMW_BF16S, st, grid_for(s, n, 256), 1, 256, 0, args,
                mem(HZ_KR_ADAMW, (16.0 + (grad_bf16 ? 2 : 4)) * (double)n));
}

/* one warp per block of HZ_OPTSTATE_BLOCK elements (adamw_q.cu) */
void hzcu_adamw_int8state(cuda_state *s, cudaStream_t st, uint16_t *w, int16_t *lo, int8_t *mc,
                          uint8_t *vc, float *mabs, float *vabs, const void *g, int grad_bf16,
                          long first, long n, uint64_t *bad, const hz_adam_coef *k)
{
    hz_adam_coef c = *k;
    void *args[] = {&w, &lo, &mc, &vc, &mabs, &vabs, &g, &grad_bf16, &first, &n, &bad, &c.decay,
                    &c.step, &c.rbc2, &c.beta1, &c.beta2, &c.eps, &c.gscale};
    int64_t blocks = (n + HZ_OPTSTATE_BLOCK - 1) / HZ_OPTSTATE_BLOCK;
    hzcu_launch(s, K_ADAMW_INT8S, st, grid_for(s, blocks * 32, 256), 1, 256, 0, args,
                mem(HZ_KR_ADAMW, (12.0 + (grad_bf16 ? 2 : 4)) * (double)n + 16.0 * (double)blocks));
}

void hzcu_embedding_forward(cuda_state *s, cudaStream_t st, bf16 *out, const int32_t *tok,
                            const bf16 *wte, int N, int C)
{
    void *args[] = {&out, &tok, &wte, &N, &C};
    int64_t items = (int64_t)N * C / (C % 8 == 0 ? 8 : 1);
    hzcu_launch(s, K_EMBED_FWD, st, grid_for(s, items, 256), 1, 256, 0, args,
                mem(HZ_KR_EMBED_FWD, 4.0 * (double)N * C + 4.0 * N));
}

void hzcu_scale_bf16(cuda_state *s, cudaStream_t st, int row, bf16 *x, float scale, long n)
{
    void *args[] = {&x, &scale, &n};
    hzcu_launch(s, K_SCALE_BF16, st, grid_for(s, n, 256), 1, 256, 0, args,
                mem(row, 4.0 * (double)n));
}

void hzcu_embedding_backward(cuda_state *s, cudaStream_t st, float *dwte, const bf16 *dout,
                             const int32_t *tok, int N, int C)
{
    if (s->det) {
        int threads = C % 2 == 0 ? C / 2 : C, V = s->V;
        void *ord[] = {&dwte, &dout, &tok, &N, &C, &V};
        hzcu_launch(s, K_EMBED_BWD_ORD, st, (threads + 127) / 128, V < 32 ? V : 32, 128, 0, ord,
                    mem(HZ_KR_EMBED_BWD, 10.0 * (double)N * C + 4.0 * N));
        return;
    }
    void *args[] = {&dwte, &dout, &tok, &N, &C};
    int64_t items = (int64_t)N * C / (C % 2 == 0 ? 2 : 1);
    hzcu_launch(s, K_EMBED_BWD, st, grid_for(s, items, 256), 1, 256, 0, args,
                mem(HZ_KR_EMBED_BWD, 10.0 * (double)N * C + 4.0 * N));
}

/* rows are grid-strided: one block per row up to 65535 */
static int64_t grid_rows(int N) { return N < 65535 ? N : 65535; }

/* The model's norms: Gemma 3's multiply by (1 + w) (the *1p kernels), the others' by w. */
static int onep(const cuda_state *s) { return s->p->dims.norm_offset != 0.0f; }

void hzcu_rmsnorm_forward(cuda_state *s, cudaStream_t st, bf16 *out, float *rstd, const bf16 *inp,
                          const bf16 *w, int N, int C, float eps)
{
    void *args[] = {&out, &rstd, &inp, &w, &N, &C, &eps};
    hzcu_launch(s, onep(s) ? K_RMSNORM1P_FWD : K_RMSNORM_FWD, st, grid_rows(N), 1,
                C <= 1024 ? 128 : 256, 0, args,
                mem(HZ_KR_RMSNORM_FWD, 4.0 * (double)N * C + 2.0 * C + 4.0 * N));
}

void hzcu_residual_rmsnorm_forward(cuda_state *s, cudaStream_t st, bf16 *res_out, bf16 *out,
                                   float *rstd, const bf16 *a, const bf16 *b, const bf16 *w, int N,
                                   int C, float eps)
{
    void *args[] = {&res_out, &out, &rstd, &a, &b, &w, &N, &C, &eps};
    hzcu_launch(s, onep(s) ? K_RES_RMSNORM1P_FWD : K_RES_RMSNORM_FWD, st, grid_rows(N), 1,
                C <= 1024 ? 128 : 256, 0, args,
                mem(HZ_KR_RES_RMSNORM_FWD, 8.0 * (double)N * C + 2.0 * C + 4.0 * N));
}

void hzcu_rmsnorm_backward(cuda_state *s, cudaStream_t st, bf16 *dinp, float *dw, const bf16 *dout,
                           const bf16 *inp, const bf16 *w, const float *rstd, const bf16 *dres,
                           int N, int C)
{
    /* row groups of TPR threads, R of them a block, one block an SM (rmsnorm.cu); a row a
     * block where C does not split into 8-column chunks of at most 1024 threads */
    int tpr = (C / 8 + 31) / 32 * 32, grouped = C % 8 == 0 && tpr <= 1024;
    int R = grouped ? 1024 / tpr : 1, block = grouped ? R * tpr : 256;
    int64_t grid = grouped ? s->sm_count : (int64_t)8 * s->sm_count;
    int64_t smem = grouped ? (int64_t)R * C * 4 : hzcu_smem(s, K_RMSNORM_BWD);
    if (grid > (N + R - 1) / R) grid = (N + R - 1) / R;
    if (s->det && grid > HZ_PART_ROWS) grid = HZ_PART_ROWS;
    float *acc = s->det ? s->w.part : dw; /* deterministic: block partials, then in order */
    void *args[] = {&dinp, &acc, &dout, &inp, &w, &rstd, &dres, &N, &C};
    /* dout, inp (and dres) read, dinp written; the block sums of dw read and written */
    double bytes = (dres ? 8.0 : 6.0) * (double)N * C + 2.0 * C + 4.0 * N + 8.0 * (double)grid * C;
    int k = onep(s) ? (s->det ? K_RMSNORM1P_BWD_PART : K_RMSNORM1P_BWD)
                    : (s->det ? K_RMSNORM_BWD_PART : K_RMSNORM_BWD);
    hzcu_launch(s, k, st, grid, 1, block, smem, args, mem(HZ_KR_RMSNORM_BWD, bytes));
    if (s->det) hzcu_colsum_f32(s, st, HZ_KR_RMSNORM_BWD, dw, acc, (int)grid, C);
}

/* rope.cu: token-major (a token's angles once for all its heads) where HD % 8 == 0 and a
 * token's HD/8 lanes fit the block of 256, else head-major; the token-major grid */
static int rope_by_token(const cuda_state *s) { return s->HD % 8 == 0 && s->HD <= 8 * 256; }
static int64_t rope_token_grid(const cuda_state *s)
{
    int64_t per = 256 / (s->HD / 8);
    return (s->N + per - 1) / per;
}

void hzcu_qkv_bias_rope(cuda_state *s, cudaStream_t st, bf16 *q, bf16 *k, bf16 *v, const bf16 *qkv,
                        const bf16 *bias, const float *inv_freq)
{
    int N = s->N, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    void *args[] = {&q, &k, &v, &qkv, &bias, &inv_freq, &N, &T, &NH, &NKV, &HD};
    hz_kcost cost = mem(HZ_KR_ROPE_FWD, 4.0 * (double)N * s->QKV + (bias ? 2.0 * s->QKV : 0.0));
    if (rope_by_token(s))
        hzcu_launch(s, K_QKV_ROPE_TOK, st, rope_token_grid(s), 1, 256, 0, args, cost);
    else
        hzcu_launch(s, K_QKV_ROPE, st, (N + 63) / 64, NH + 2 * NKV, 256, 0, args, cost);
}

void hzcu_qkv_rope_backward(cuda_state *s, cudaStream_t st, bf16 *dqkv, float *dbias,
                            const bf16 *dq, const bf16 *dk, const bf16 *dv, const float *inv_freq)
{
    int N = s->N, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD, OUT = (int)s->QKV;
    if (!dbias && rope_by_token(s)) {
        void *targs[] = {&dqkv, &dq, &dk, &dv, &inv_freq, &N, &T, &NH, &NKV, &HD};
        hzcu_launch(s, K_QKV_ROPE_TOK_BWD, st, rope_token_grid(s), 1, 256, 0, targs,
                    mem(HZ_KR_ROPE_BWD, 4.0 * (double)N * OUT));
        return;
    }
    int64_t grid = (N + 63) / 64;
    int det = s->det && dbias; /* deterministic: block partials, then in order */
    if (det && grid > HZ_PART_ROWS) grid = HZ_PART_ROWS;
    float *acc = det ? s->w.part : dbias;
    void *args[] = {&dqkv, &acc, &dq, &dk, &dv, &inv_freq, &N, &T, &NH, &NKV, &HD};
    hzcu_launch(s, det ? K_QKV_ROPE_BWD_PART : K_QKV_ROPE_BWD, st, grid, NH + 2 * NKV, 256, 0,
                args, mem(HZ_KR_ROPE_BWD, 4.0 * (double)N * OUT));
    if (det) hzcu_colsum_f32(s, st, HZ_KR_ROPE_BWD, dbias, acc, (int)grid, OUT);
}

/* (token, head) rows, a group of HD/8 lanes each (qknorm.cu), so 8 * 32 / (HD/8) rows a
 * block at a time, grid-strided; the forward takes one block per such set of rows up to
 * 65535 blocks, the backward (which sums dw per block) at most 8 per SM. */
void hzcu_qk_norm_rope(cuda_state *s, cudaStream_t st, bf16 *q, bf16 *k, bf16 *v, bf16 *qpre,
                       bf16 *kpre, float *rstdq, float *rstdk, const bf16 *qkv, const bf16 *wq,
                       const bf16 *wk, const float *inv_freq)
{
    int N = s->N, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    float eps = s->p->dims.eps;
    int64_t per_block = 8 * (32 / (HD / 8));
    int64_t grid = ((int64_t)N * (NH + 2 * NKV) + per_block - 1) / per_block;
    if (grid > 65535) grid = 65535;
    void *args[] = {&q, &k, &v, &qpre, &kpre, &rstdq, &rstdk, &qkv, &wq, &wk, &inv_freq,
                    &N, &T, &NH, &NKV, &HD, &eps};
    /* qkv read, q k v written, the pre-norm q k and their 1/rms written */
    double bytes = 4.0 * (double)N * s->QKV + 2.0 * (double)N * (NH + NKV) * HD +
                   4.0 * (double)N * (NH + NKV);
    hzcu_launch(s, onep(s) ? K_QKN1P_ROPE : K_QKN_ROPE, st, grid, 1, 256, 0, args,
                mem(HZ_KR_ROPE_FWD, bytes));
}

void hzcu_qk_norm_rope_backward(cuda_state *s, cudaStream_t st, bf16 *dqkv, float *dwq, float *dwk,
                                const bf16 *dq, const bf16 *dk, const bf16 *dv, const bf16 *qpre,
                                const bf16 *kpre, const float *rstdq, const float *rstdk,
                                const bf16 *wq, const bf16 *wk, const float *inv_freq)
{
    int N = s->N, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    int64_t grid = ((int64_t)N * (NH + 2 * NKV) + 7) / 8;
    if (grid > (int64_t)8 * s->sm_count) grid = (int64_t)8 * s->sm_count;
    if (s->det && grid > HZ_PART_ROWS) grid = HZ_PART_ROWS;
    /* deterministic: the q rows then the k rows of block partials (2 grid HD <= the part
     * buffer's HZ_PART_ROWS QKV, QKV >= 3 HD), then added in order */
    float *acc = s->det ? s->w.part : dwq;
    void *args[] = {&dqkv, &acc, &dwk, &dq, &dk, &dv, &qpre, &kpre, &rstdq, &rstdk, &wq, &wk,
                    &inv_freq, &N, &T, &NH, &NKV, &HD};
    double bytes = 4.0 * (double)N * s->QKV + 2.0 * (double)N * (NH + NKV) * HD +
                   4.0 * (double)N * (NH + NKV);
    int k = onep(s) ? (s->det ? K_QKN1P_ROPE_BWD_PART : K_QKN1P_ROPE_BWD)
                    : (s->det ? K_QKN_ROPE_BWD_PART : K_QKN_ROPE_BWD);
    hzcu_launch(s, k, st, grid, 1, 256, 0, args, mem(HZ_KR_ROPE_BWD, bytes));
    if (s->det) {
        hzcu_colsum_f32(s, st, HZ_KR_ROPE_BWD, dwq, acc, (int)grid, HD);
        hzcu_colsum_f32(s, st, HZ_KR_ROPE_BWD, dwk, acc + grid * HD, (int)grid, HD);
    }
}

/* The gated MLP's activation over the fused (N, 2F) row [gate | up]: SwiGLU, or GeGLU where
 * the plan says (Gemma 3; runtime/cuda/geglu.cu); one profile row for both. */
void hzcu_glu_forward(cuda_state *s, cudaStream_t st, bf16 *h, const bf16 *gu)
{
    long N = s->N;
    int F = s->F;
    void *args[] = {&h, &gu, &N, &F};
    int64_t items = (int64_t)N * F / (F % 8 == 0 ? 8 : 1);
    hzcu_launch(s, s->p->dims.geglu ? K_GEGLU_FWD : K_SWIGLU_FWD, st, grid_for(s, items, 256), 1,
                256, 0, args, mem(HZ_KR_SWIGLU_FWD, 6.0 * (double)N * F));
}

void hzcu_glu_backward(cuda_state *s, cudaStream_t st, bf16 *dgu, const bf16 *dh, const bf16 *gu)
{
    long N = s->N;
    int F = s->F;
    void *args[] = {&dgu, &dh, &gu, &N, &F};
    int64_t items = (int64_t)N * F / (F % 8 == 0 ? 8 : 1);
    hzcu_launch(s, s->p->dims.geglu ? K_GEGLU_BWD : K_SWIGLU_BWD, st, grid_for(s, items, 256), 1,
                256, 0, args, mem(HZ_KR_SWIGLU_BWD, 10.0 * (double)N * F));
}

void hzcu_crossentropy(cuda_state *s, cudaStream_t st, bf16 *dlogits, float *losses,
                       const bf16 *logits, const int32_t *targets, int N, int V, float dscale)
{
    void *args[] = {&dlogits, &losses, &logits, &targets, &N, &V, &dscale};
    int chunks = V % 8 == 0 ? V / 8 : V, block = (chunks + 31) / 32 * 32;
    if (block > 1024) block = 1024;
    hzcu_launch(s, K_XENT, st, grid_rows(N), 1, block, 0, args,
                mem(HZ_KR_XENT, 4.0 * (double)N * V + 8.0 * N));
}

/* ---- attention (runtime/cuda/attention.cu): FlashAttention-2 forward, and the backward
 * as preprocess (D = rowsum(dout * out)), the kv-tile kernel (dk, dv) and the q-tile kernel
 * (dq). ---- */

void hzcu_attention_forward(cuda_state *s, cudaStream_t st, bf16 *out, float *lse, const bf16 *q,
                            const bf16 *k, const bf16 *v, int window)
{
    int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    float scale = s->att_scale;
    void *args[] = {&out, &lse, &q, &k, &v, &B, &T, &NH, &NKV, &HD, &scale, &window};
    /* the plan's FLOPs: 2 N T A, the causal half of the two products (a window: its keys) */
    double keys = window > 0 && window < T ? (double)window : (double)T;
    double flops = 2.0 * (double)B * T * keys * NH * HD;
    /* hzc's Hopper kernel, or cuDNN's fused one, where chosen for this kind of layer
     * (attention_path.c) */
    if (hzcu_hopper_attention_forward(s, st, window, out, lse, q, k, v, flops)) return;
    if (hzcu_dnn_attention_forward(s, st, window, out, lse, q, k, v, flops)) return;
    hzcu_launch(s, K_ATT_FWD, st, (int64_t)B * NH, (T + HZ_ATT_BM - 1) / HZ_ATT_BM, HZ_ATT_THREADS,
                hzcu_smem(s, K_ATT_FWD), args, hz_kc(HZ_KR_ATT_FWD, flops, 0.0));
}

/* dq, dk, dv (overwritten) from dout and the forward's q, k, v, out, lse; D (B, NH, T) fp32
 * is scratch. hzc's kernels are bit-deterministic: dq and dk/dv come from separate kernels,
 * neither with atomics (cuDNN's backward, taken only without --deterministic, is not). */
void hzcu_attention_backward(cuda_state *s, cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv,
                             const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                             const bf16 *out, const float *lse, float *D, int window)
{
    int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    float scale = s->att_scale;
    int64_t tiles = (T + HZ_ATT_BM - 1) / HZ_ATT_BM;
    void *pre[] = {&D, &dout, &out, &B, &T, &NH, &HD};
    /* one row, one call: 2.5 x the forward's FLOPs, as the plan counts the backward */
    double keys = window > 0 && window < T ? (double)window : (double)T;
    double flops = 5.0 * (double)B * T * keys * NH * HD;
    if (hzcu_dnn_attention_backward(s, st, window, dq, dk, dv, dout, q, k, v, out, lse, D, flops))
        return;
    hzcu_launch(s, K_ATT_BWD_PRE, st, grid_for(s, (int64_t)B * T * NH * 32, 256), 1, 256, 0, pre,
                hz_kc(HZ_KR_ATT_BWD, flops, 0.0));
    /* hzc's Hopper kernels where chosen (attention_path.c), deterministic as these */
    if (hzcu_hopper_attention_backward(s, st, window, dq, dk, dv, dout, q, k, v, out, lse, D))
        return;
    void *bwd[] = {&dk, &dv, &dout, &q, &k, &v, &lse, &D, &B, &T, &NH, &NKV, &HD, &scale, &window};
    hzcu_launch(s, K_ATT_BWD, st, (int64_t)B * NKV, tiles, HZ_ATT_THREADS, hzcu_smem(s, K_ATT_BWD),
                bwd, more(HZ_KR_ATT_BWD, 0.0));
    void *bdq[] = {&dq, &dout, &q, &k, &v, &lse, &D, &B, &T, &NH, &NKV, &HD, &scale, &window};
    hzcu_launch(s, K_ATT_BWD_DQ, st, (int64_t)B * NH, tiles, HZ_ATT_THREADS,
                hzcu_smem(s, K_ATT_BWD_DQ), bdq, more(HZ_KR_ATT_BWD, 0.0));
}
