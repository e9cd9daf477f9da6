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
 * Launch (all three): block 256 (8 warps), grid (G) with rows grid-strided: warp w of block b
 * takes the (token, head) rows b * 8 + w, += G * 8, of N * (NH + 2*NKV); lane j holds the
 * column pairs (i, i + HD/2) for i = j, j + 32, ... < HD/2. Requires HD even and HD <= 256. */

#define HZ_QKN_WARPS 8
#define HZ_QKN_PAIRS 4 /* column pairs a lane holds: HD/2 <= 32 * 4 */

__device__ __forceinline__ float hz_qkn_ld(const bf16 *p) { return __bfloat162float(*p); }

/* c, s of position POS at frequency index I, rounded to bf16 as rope.cu's. */
__device__ __forceinline__ void hz_qkn_cs(float *c, float *s, int pos, const float *inv_freq, int i) {
    float sn, cs;
    sincosf((float)pos * inv_freq[i], &sn, &cs);
    *c = hz_round_bf16(cs);
    *s = hz_round_bf16(sn);
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
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, half = HD >> 1;
    const int OUT = (NH + 2 * NKV) * HD;
    const long rows = (long)N * (NH + 2 * NKV);
    for (long R = (long)blockIdx.x * HZ_QKN_WARPS + warp; R < rows; R += (long)gridDim.x * HZ_QKN_WARPS) {
        int n, h, kind, hh;
        hz_qkn_row(R, NH, NKV, &n, &h, &kind, &hh);
        const bf16 *src = qkv + (long)n * OUT + h * HD;
        if (kind == 2) {
            bf16 *dst = v + ((long)n * NKV + hh) * HD;
            for (int j = lane; j < HD; j += 32) dst[j] = src[j];
            continue;
        }
        const int H = kind == 0 ? NH : NKV;
        bf16 *pre = (kind == 0 ? qpre : kpre) + ((long)n * H + hh) * HD;
        bf16 *dst = (kind == 0 ? q : k) + ((long)n * H + hh) * HD;
        const bf16 *w = kind == 0 ? wq : wk;
        float x1[HZ_QKN_PAIRS], x2[HZ_QKN_PAIRS], ss = 0.0f;
#pragma unroll
        for (int t = 0; t < HZ_QKN_PAIRS; t++) {
            const int i = lane + 32 * t;
            x1[t] = x2[t] = 0.0f;
            if (i < half) {
                x1[t] = hz_qkn_ld(src + i);
                x2[t] = hz_qkn_ld(src + i + half);
                pre[i] = src[i];
                pre[i + half] = src[i + half];
            }
            ss += x1[t] * x1[t] + x2[t] * x2[t];
        }
        const float r = rsqrtf(hz_warp_sum(ss) / (float)HD + eps);
        if (lane == 0) (kind == 0 ? rstdq : rstdk)[(long)n * H + hh] = r;
#pragma unroll
        for (int t = 0; t < HZ_QKN_PAIRS; t++) {
            const int i = lane + 32 * t;
            if (i >= half) continue;
            const float w1 = hz_qkn_ld(w + i), w2 = hz_qkn_ld(w + i + half);
            const float y1 = ONEP ? hz_round_bf16((1.0f + w1) * (x1[t] * r))
                                  : hz_round_bf16(w1 * hz_round_bf16(x1[t] * r));
            const float y2 = ONEP ? hz_round_bf16((1.0f + w2) * (x2[t] * r))
                                  : hz_round_bf16(w2 * hz_round_bf16(x2[t] * r));
            float c, s;
            hz_qkn_cs(&c, &s, n % T, inv_freq, i);
            dst[i] = __float2bfloat16(y1 * c - y2 * s);
            dst[i + half] = __float2bfloat16(y2 * c + y1 * s);
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
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, half = HD >> 1;
    const int OUT = (NH + 2 * NKV) * HD;
    const long rows = (long)N * (NH + 2 * NKV);
    /* dw sums of this lane's columns (i, i + HD/2): q heads' and k heads' */
    float aq1[HZ_QKN_PAIRS], aq2[HZ_QKN_PAIRS], ak1[HZ_QKN_PAIRS], ak2[HZ_QKN_PAIRS];
#pragma unroll
    for (int t = 0; t < HZ_QKN_PAIRS; t++) aq1[t] = aq2[t] = ak1[t] = ak2[t] = 0.0f;
    for (long R = (long)blockIdx.x * HZ_QKN_WARPS + warp; R < rows; R += (long)gridDim.x * HZ_QKN_WARPS) {
        int n, h, kind, hh;
        hz_qkn_row(R, NH, NKV, &n, &h, &kind, &hh);
        bf16 *out = dqkv + (long)n * OUT + h * HD;
        if (kind == 2) {
            const bf16 *src = dv + ((long)n * NKV + hh) * HD;
            for (int j = lane; j < HD; j += 32) out[j] = src[j];
            continue;
        }
        const int H = kind == 0 ? NH : NKV;
        const long base = ((long)n * H + hh) * HD;
        const bf16 *dy = (kind == 0 ? dq : dk) + base, *x = (kind == 0 ? qpre : kpre) + base;
        const bf16 *w = kind == 0 ? wq : wk;
        const float r = (kind == 0 ? rstdq : rstdk)[(long)n * H + hh];
        /* g: the gradient of the normed head, the rotation undone (its transpose) */
        float g1[HZ_QKN_PAIRS], g2[HZ_QKN_PAIRS], dot = 0.0f;
#pragma unroll
        for (int t = 0; t < HZ_QKN_PAIRS; t++) {
            const int i = lane + 32 * t;
            g1[t] = g2[t] = 0.0f;
            if (i >= half) continue;
            float c, s;
            hz_qkn_cs(&c, &s, n % T, inv_freq, i);
            const float d1 = hz_qkn_ld(dy + i), d2 = hz_qkn_ld(dy + i + half);
            g1[t] = d1 * c + d2 * s;
            g2[t] = d2 * c - d1 * s;
            dot += g1[t] * (hz_qkn_ld(w + i) + (float)onep) * hz_qkn_ld(x + i) +
                   g2[t] * (hz_qkn_ld(w + i + half) + (float)onep) * hz_qkn_ld(x + i + half);
        }
        const float m = hz_warp_sum(dot) * r / (float)HD; /* mean(g * w * xhat) */
#pragma unroll
        for (int t = 0; t < HZ_QKN_PAIRS; t++) {
            const int i = lane + 32 * t;
            if (i >= half) continue;
            const float xh1 = hz_qkn_ld(x + i) * r, xh2 = hz_qkn_ld(x + i + half) * r;
            if (kind == 0) aq1[t] += g1[t] * xh1, aq2[t] += g2[t] * xh2;
            else ak1[t] += g1[t] * xh1, ak2[t] += g2[t] * xh2;
            out[i] = __float2bfloat16(r * (g1[t] * (hz_qkn_ld(w + i) + (float)onep) - xh1 * m));
            out[i + half] =
                __float2bfloat16(r * (g2[t] * (hz_qkn_ld(w + i + half) + (float)onep) - xh2 * m));
        }
    }
#pragma unroll
    for (int t = 0; t < HZ_QKN_PAIRS; t++) {
        const int i = lane + 32 * t;
        if (i >= half) continue;
        sdw[warp][0][i] = aq1[t];
        sdw[warp][0][i + half] = aq2[t];
        sdw[warp][1][i] = ak1[t];
        sdw[warp][1][i + half] = ak2[t];
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
