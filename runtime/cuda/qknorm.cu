/* runtime/cuda/qknorm.cu - Qwen3's (and, as *1p, Gemma 3's) per-head RMSNorm of q and k
 * fused with RoPE, forward and backward: the qk_norm models' replacement for rope.cu's pair
 * (no q/k/v bias there).
 * qkv, dqkv (N, OUT) bf16, OUT = (NH + 2*NKV) * HD, per token the NH q heads, the NKV k
 * heads, the NKV v heads (the fused GEMM's output, as rope.cu); q, dq, qpre (N, NH*HD) and
 * k, v, dk, dv, kpre (N, NKV*HD) bf16; rstdq (N, NH), rstdk (N, NKV) fp32; wq, wk (HD) bf16
 * (q_norm, k_norm); dwq, dwk (HD) fp32, accumulated; inv_freq (HD/2) fp32.
 * Numerics as transformers' Qwen3Attention: the norm as LlamaRMSNorm over each head's HD
 * values (rstd and x * rstd in fp32, x * rstd rounded to bf16, times w, rounded again), then
 * the rotation of rope.cu (bf16 cos and sin, products in fp32, the result rounded once).
 * Launch (all three): block 256 (8 warps), grid (G) with rows grid-strided: a row of the
 * N * (NH + 2*NKV) (token, head) rows is taken by a group of LPR = HD/8 lanes, lane t of the
 * group holding the 4 columns 4t..4t+3 of each half (column i pairs with i + HD/2 under the
 * rotation) as 8-byte vectors; warp w of block b takes the rows (b * 8 + w) * 32/LPR + g,
 * += G * 8 * 32/LPR, g its group. HD is one of the cuda backend's head dims (32, 64, 128,
 * 256: LPR a power of two that divides the warp). */

#define HZ_QKN_WARPS 8

/* This lane's place in the launch (see the top of the file): its group's LPR lanes, the
 * group (GRP) within the warp, its first column C0 of each half, and the warp's rows: FIRST,
 * then += STEP, of ROWS. */
typedef struct hz_qkn_lanes {
    int lpr, grp, c0;
    long rows, first, step;
} hz_qkn_lanes;
__device__ __forceinline__ hz_qkn_lanes hz_qkn_lanes_of(int N, int NH, int NKV, int HD) {
    hz_qkn_lanes L;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, rpw = 32 / (HD >> 3);
    L.lpr = HD >> 3;
    L.grp = lane / L.lpr;
    L.c0 = 4 * (lane - L.grp * L.lpr);
    L.rows = (long)N * (NH + 2 * NKV);
    L.first = ((long)blockIdx.x * HZ_QKN_WARPS + warp) * rpw;
    L.step = (long)gridDim.x * HZ_QKN_WARPS * rpw;
    return L;
}

/* Sum over a row's LPR lanes (a power of two dividing 32; the groups are aligned to it). Every
 * lane of the warp calls it. */
__device__ __forceinline__ float hz_qkn_group_sum(float v, int lpr) {
    for (int o = lpr >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Row R of the fused layout: its token N_, head h of the fused row, whether a q (0), k (1)
 * or v (2) head, and its head index within its kind. */
__device__ __forceinline__ void hz_qkn_row(long R, int NH, int NKV, int *n_, int *h, int *kind,
                                           int *hh) {
    const int H3 = NH + 2 * NKV;
    *n_ = (int)(R / H3);
    *h = (int)(R - (long)*n_ * H3);
    *kind = *h < NH ? 0 : *h < NH + NKV ? 1 : 2;
    *hh = *kind == 0 ? *h : *kind == 1 ? *h - NH : *h - NH - NKV;
}

/* q, k = rope(w * norm(head)) from qkv, v copied; qpre, kpre = the heads as they came;
 * rstdq, rstdk = 1/sqrt(mean(head^2) + eps). ONEP: Gemma 3's (1 + w) * (x * rstd) in fp32,
 * rounded once, in place of Qwen3's two roundings. */
template <int ONEP>
__device__ __forceinline__ void hz_qk_norm_rope_fwd(bf16 *q, bf16 *k, bf16 *v, bf16 *qpre,
                                                    bf16 *kpre, float *rstdq, float *rstdk,
                                                    const bf16 *qkv, const bf16 *wq,
                                                    const bf16 *wk, const float *inv_freq, int N,
                                                    int T, int NH, int NKV, int HD, float eps) {
    const hz_qkn_lanes L = hz_qkn_lanes_of(N, NH, NKV, HD);
    const int half = HD >> 1, lpr = L.lpr, grp = L.grp, c0 = L.c0;
    const int OUT = (NH + 2 * NKV) * HD;
    const long rows = L.rows, step = L.step;
    /* R0 is the warp's: all its lanes go round together (the group sum's shuffles) */
    for (long R0 = L.first; R0 < rows; R0 += step) {
        const long R = R0 + grp;
        int n = 0, h = 0, kind = 2, hh = 0;
        if (R < rows) hz_qkn_row(R, NH, NKV, &n, &h, &kind, &hh);
        const bf16 *src = qkv + (long)n * OUT + h * HD;
        const int normed = R < rows && kind != 2;
        float x1[4] = {0.0f, 0.0f, 0.0f, 0.0f}, x2[4] = {0.0f, 0.0f, 0.0f, 0.0f}, ss = 0.0f;
        if (normed) {
            hz_ld4(x1, src + c0);
            hz_ld4(x2, src + half + c0);
#pragma unroll
            for (int e = 0; e < 4; e++) ss += x1[e] * x1[e] + x2[e] * x2[e];
        }
        ss = hz_qkn_group_sum(ss, lpr);
        if (R < rows && kind == 2) {
            bf16 *dst = v + ((long)n * NKV + hh) * HD;
            hz_mv4(dst + c0, src + c0);
            hz_mv4(dst + half + c0, src + half + c0);
        } else if (normed) {
            const int H = kind == 0 ? NH : NKV;
            bf16 *pre = (kind == 0 ? qpre : kpre) + ((long)n * H + hh) * HD;
            bf16 *dst = (kind == 0 ? q : k) + ((long)n * H + hh) * HD;
            const bf16 *w = kind == 0 ? wq : wk;
            const float r = rsqrtf(ss / (float)HD + eps);
            if (c0 == 0) (kind == 0 ? rstdq : rstdk)[(long)n * H + hh] = r;
            hz_mv4(pre + c0, src + c0);
            hz_mv4(pre + half + c0, src + half + c0);
            float w1[4], w2[4], o1[4], o2[4];
            hz_ld4(w1, w + c0);
            hz_ld4(w2, w + half + c0);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float y1 = ONEP ? hz_round_bf16((1.0f + w1[e]) * (x1[e] * r))
                                      : hz_round_bf16(w1[e] * hz_round_bf16(x1[e] * r));
                const float y2 = ONEP ? hz_round_bf16((1.0f + w2[e]) * (x2[e] * r))
                                      : hz_round_bf16(w2[e] * hz_round_bf16(x2[e] * r));
                float c, sn;
                hz_rope_cs1(&c, &sn, n % T, inv_freq, c0 + e);
                o1[e] = y1 * c - y2 * sn;
                o2[e] = y2 * c + y1 * sn;
            }
            hz_st4(dst + c0, o1);
            hz_st4(dst + half + c0, o2);
        }
    }
}

extern "C" __global__ void hzk_qk_norm_rope(bf16 *q, bf16 *k, bf16 *v, bf16 *qpre, bf16 *kpre,
                                            float *rstdq, float *rstdk, const bf16 *qkv,
                                            const bf16 *wq, const bf16 *wk, const float *inv_freq,
                                            int N, int T, int NH, int NKV, int HD, float eps) {
    hz_qk_norm_rope_fwd<0>(q, k, v, qpre, kpre, rstdq, rstdk, qkv, wq, wk, inv_freq, N, T, NH,
                           NKV, HD, eps);
}

/* Gemma 3's: the norm multiplies by (1 + w). */
extern "C" __global__ void hzk_qk_norm1p_rope(bf16 *q, bf16 *k, bf16 *v, bf16 *qpre, bf16 *kpre,
                                              float *rstdq, float *rstdk, const bf16 *qkv,
                                              const bf16 *wq, const bf16 *wk,
                                              const float *inv_freq, int N, int T, int NH,
                                              int NKV, int HD, float eps) {
    hz_qk_norm_rope_fwd<1>(q, k, v, qpre, kpre, rstdq, rstdk, qkv, wq, wk, inv_freq, N, T, NH,
                           NKV, HD, eps);
}

/* The body of the backward kernels: dwq, dwk get the block's sums with atomics
 * (part == 0), or (part == 1) dwq is a partial-sum array whose row blockIdx.x receives the
 * q sums and row gridDim.x + blockIdx.x the k sums ((2 * gridDim.x, HD) fp32). onep: the
 * norm's weight is (1 + w) (Gemma 3). */
__device__ __forceinline__ void hz_qk_norm_rope_backward(
    bf16 *dqkv, float *dwq, float *dwk, int part, int onep, const bf16 *dq, const bf16 *dk,
    const bf16 *dv,
    const bf16 *qpre, const bf16 *kpre, const float *rstdq, const float *rstdk, const bf16 *wq,
    const bf16 *wk, const float *inv_freq, int N, int T, int NH, int NKV, int HD) {
    __shared__ float sdw[HZ_QKN_WARPS][2][256]; /* each warp's dw sums, added in warp order */
    const hz_qkn_lanes L = hz_qkn_lanes_of(N, NH, NKV, HD);
    const int warp = threadIdx.x >> 5, half = HD >> 1, lpr = L.lpr, grp = L.grp, c0 = L.c0;
    const int OUT = (NH + 2 * NKV) * HD;
    const long rows = L.rows, step = L.step;
    /* dw sums of this lane's columns c0..c0+3 (0..3) and half + c0.. (4..7): q heads' and k's */
    float aq[8], ak[8];
#pragma unroll
    for (int e = 0; e < 8; e++) aq[e] = ak[e] = 0.0f;
    for (long R0 = L.first; R0 < rows; R0 += step) {
        const long R = R0 + grp;
        int n = 0, h = 0, kind = 2, hh = 0;
        if (R < rows) hz_qkn_row(R, NH, NKV, &n, &h, &kind, &hh);
        bf16 *out = dqkv + (long)n * OUT + h * HD;
        const int normed = R < rows && kind != 2;
        const int H = kind == 0 ? NH : NKV;
        /* g: the gradient of the normed head, the rotation undone (its transpose) */
        float g1[4], g2[4], x1[4], x2[4], w1[4], w2[4], r = 0.0f, dot = 0.0f;
#pragma unroll
        for (int e = 0; e < 4; e++) g1[e] = g2[e] = x1[e] = x2[e] = w1[e] = w2[e] = 0.0f;
        if (normed) {
            const long base = ((long)n * H + hh) * HD;
            const bf16 *dy = (kind == 0 ? dq : dk) + base, *x = (kind == 0 ? qpre : kpre) + base;
            const bf16 *w = kind == 0 ? wq : wk;
            float d1[4], d2[4];
            hz_ld4(d1, dy + c0);
            hz_ld4(d2, dy + half + c0);
            hz_ld4(x1, x + c0);
            hz_ld4(x2, x + half + c0);
            hz_ld4(w1, w + c0);
            hz_ld4(w2, w + half + c0);
            r = (kind == 0 ? rstdq : rstdk)[(long)n * H + hh];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float c, sn;
                hz_rope_cs1(&c, &sn, n % T, inv_freq, c0 + e);
                g1[e] = d1[e] * c + d2[e] * sn;
                g2[e] = d2[e] * c - d1[e] * sn;
                w1[e] += (float)onep, w2[e] += (float)onep;
                dot += g1[e] * w1[e] * x1[e] + g2[e] * w2[e] * x2[e];
            }
        }
        dot = hz_qkn_group_sum(dot, lpr);
        if (R < rows && kind == 2) {
            const bf16 *src = dv + ((long)n * NKV + hh) * HD;
            hz_mv4(out + c0, src + c0);
            hz_mv4(out + half + c0, src + half + c0);
        } else if (normed) {
            const float m = dot * r / (float)HD; /* mean(g * w * xhat) */
            float o1[4], o2[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float xh1 = x1[e] * r, xh2 = x2[e] * r;
                if (kind == 0) aq[e] += g1[e] * xh1, aq[4 + e] += g2[e] * xh2;
                else ak[e] += g1[e] * xh1, ak[4 + e] += g2[e] * xh2;
                o1[e] = r * (g1[e] * w1[e] - xh1 * m);
                o2[e] = r * (g2[e] * w2[e] - xh2 * m);
            }
            hz_st4(out + c0, o1);
            hz_st4(out + half + c0, o2);
        }
    }
    /* the warp's groups hold the same columns: their sums added across the groups (over the
     * lane bits above the group's, a fixed order), then group 0's lanes keep the warp's */
    for (int o = lpr; o < 32; o <<= 1)
#pragma unroll
        for (int e = 0; e < 8; e++) {
            aq[e] += __shfl_xor_sync(0xffffffffu, aq[e], o);
            ak[e] += __shfl_xor_sync(0xffffffffu, ak[e], o);
        }
    if (grp == 0)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            sdw[warp][0][c0 + e] = aq[e];
            sdw[warp][0][half + c0 + e] = aq[4 + e];
            sdw[warp][1][c0 + e] = ak[e];
            sdw[warp][1][half + c0 + e] = ak[4 + e];
        }
    __syncthreads();
    for (int j = threadIdx.x; j < 2 * HD; j += blockDim.x) {
        const int kd = j / HD, c = j - kd * HD;
        float sum = 0.0f;
        for (int wi = 0; wi < HZ_QKN_WARPS; wi++) sum += sdw[wi][kd][c];
        if (part) dwq[((long)kd * gridDim.x + blockIdx.x) * HD + c] = sum;
        else atomicAdd((kd == 0 ? dwq : dwk) + c, sum);
    }
}

/* dqkv = the fused gradient: q and k heads through the rotation's transpose and the norm's
 * backward (dx = r * (g w - xhat * mean(g w xhat)), xhat = x r, in fp32 from the bf16 x, and
 * rounded once), v heads copied; dwq, dwk += sums over rows of g * xhat: each block sums its
 * rows in a fixed order and adds with one atomicAdd per column (not bit-deterministic
 * across blocks). */
extern "C" __global__ void hzk_qk_norm_rope_backward(bf16 *dqkv, float *dwq, float *dwk, const bf16 *dq,
                                                     const bf16 *dk, const bf16 *dv, const bf16 *qpre,
                                                     const bf16 *kpre, const float *rstdq,
                                                     const float *rstdk, const bf16 *wq, const bf16 *wk,
                                                     const float *inv_freq, int N, int T, int NH,
                                                     int NKV, int HD) {
    hz_qk_norm_rope_backward(dqkv, dwq, dwk, 0, 0, dq, dk, dv, qpre, kpre, rstdq, rstdk, wq, wk,
                             inv_freq, N, T, NH, NKV, HD);
}

/* As hzk_qk_norm_rope_backward, but the block's sums go to rows of dw_part ((2 * gridDim.x,
 * HD) fp32, overwritten: the q rows, then the k rows; dwk unused) for hzk_colsum_f32 to add
 * in order: the deterministic path. */
extern "C" __global__ void hzk_qk_norm_rope_backward_part(bf16 *dqkv, float *dw_part, float *dwk,
                                                          const bf16 *dq, const bf16 *dk,
                                                          const bf16 *dv, const bf16 *qpre,
                                                          const bf16 *kpre, const float *rstdq,
                                                          const float *rstdk, const bf16 *wq,
                                                          const bf16 *wk, const float *inv_freq, int N,
                                                          int T, int NH, int NKV, int HD) {
    hz_qk_norm_rope_backward(dqkv, dw_part, dwk, 1, 0, dq, dk, dv, qpre, kpre, rstdq, rstdk, wq,
                             wk, inv_freq, N, T, NH, NKV, HD);
}

/* Gemma 3's backward and its deterministic form, as the two above with (1 + w). */
extern "C" __global__ void hzk_qk_norm1p_rope_backward(bf16 *dqkv, float *dwq, float *dwk,
                                                       const bf16 *dq, const bf16 *dk,
                                                       const bf16 *dv, const bf16 *qpre,
                                                       const bf16 *kpre, const float *rstdq,
                                                       const float *rstdk, const bf16 *wq,
                                                       const bf16 *wk, const float *inv_freq,
                                                       int N, int T, int NH, int NKV, int HD) {
    hz_qk_norm_rope_backward(dqkv, dwq, dwk, 0, 1, dq, dk, dv, qpre, kpre, rstdq, rstdk, wq, wk,
                             inv_freq, N, T, NH, NKV, HD);
}

extern "C" __global__ void hzk_qk_norm1p_rope_backward_part(
    bf16 *dqkv, float *dw_part, float *dwk, const bf16 *dq, const bf16 *dk, const bf16 *dv,
    const bf16 *qpre, const bf16 *kpre, const float *rstdq, const float *rstdk, const bf16 *wq,
    const bf16 *wk, const float *inv_freq, int N, int T, int NH, int NKV, int HD) {
    hz_qk_norm_rope_backward(dqkv, dw_part, dwk, 1, 1, dq, dk, dv, qpre, kpre, rstdq, rstdk, wq,
                             wk, inv_freq, N, T, NH, NKV, HD);
}
