/* runtime/cpu/attention.c - causal grouped-query attention, forward and backward, fp32,
 * optionally over a sliding window of keys (Gemma 3's local layers) and with a given score
 * scale. FlashAttention-2 math without the T x T matrix: the forward keeps an online
 * softmax per query row and saves its log-sum-exp; the backward recomputes P = exp(S - lse). */
#include "ops.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define ATT_BLOCK 64 /* keys scored per step of the online softmax */

static float att_dot(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y += a * x */
static void att_axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* HD^-0.5 rounded once, as transformers' python-float `scaling` becomes float32. */
static float att_scale(int64_t HD) { return (float)(1.0 / sqrt((double)HD)); }

/* The first key query t sees: t - window + 1 (0 without a window). */
static int64_t att_first(int64_t t, int64_t window) {
    return window > 0 && t >= window ? t - window + 1 : 0;
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD) {
    attention_forward_window(out, lse, q, k, v, B, T, NH, NKV, HD, att_scale(HD), 0);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *out, const float *lse,
                        int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD) {
    attention_backward_window(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HD,
                              att_scale(HD), 0);
}

/* Each (b, h, t) query row is independent: scores against its keys are taken in blocks,
 * the running max m and sum l rescale the output row, which serves as the accumulator. */
void attention_forward_window(float *out, float *lse, const float *q, const float *k,
                              const float *v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                              int64_t HD, float scale, int64_t window) {
    assert(NKV > 0 && NH % NKV == 0 && window >= 0);
    int64_t C = NH * HD, CKV = NKV * HD, group = NH / NKV;
#pragma omp parallel for collapse(3) schedule(dynamic, 16)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t t = 0; t < T; t++) {
                const float *qr = q + (b * T + t) * C + h * HD;
                const float *kb = k + b * T * CKV + (h / group) * HD;
                const float *vb = v + b * T * CKV + (h / group) * HD;
                float *o = out + (b * T + t) * C + h * HD;
                float m = -INFINITY, l = 0.0f;
                for (int64_t d = 0; d < HD; d++) o[d] = 0.0f;
                for (int64_t s0 = att_first(t, window); s0 <= t; s0 += ATT_BLOCK) {
                    int64_t s1 = s0 + ATT_BLOCK <= t + 1 ? s0 + ATT_BLOCK : t + 1;
                    float sc[ATT_BLOCK], bm = -INFINITY;
                    for (int64_t s = s0; s < s1; s++) {
                        sc[s - s0] = att_dot(qr, kb + s * CKV, HD) * scale;
                        bm = sc[s - s0] > bm ? sc[s - s0] : bm;
                    }
                    float m_new = bm > m ? bm : m;
                    float corr = expf(m - m_new); /* 0 on the first block (m = -inf) */
                    l *= corr;
                    for (int64_t d = 0; d < HD; d++) o[d] *= corr;
                    for (int64_t s = s0; s < s1; s++) {
                        float p = expf(sc[s - s0] - m_new);
                        l += p;
                        att_axpy(o, p, vb + s * CKV, HD);
                    }
                    m = m_new;
                }
                float inv_l = 1.0f / l;
                for (int64_t d = 0; d < HD; d++) o[d] *= inv_l;
                lse[(b * NH + h) * T + t] = m + logf(l);
            }
}

/* With P = exp(S - lse), D_t = rowsum(dO_t * O_t), dP = dO V^T, dS = P * (dP - D):
 *   dq = scale * dS K,  dk = scale * dS^T Q,  dv = P^T dO   (dk, dv summed over the group).
 * Two passes, each with threads owning what they write: dq by query rows, then dk and dv
 * by key rows (recomputing S and dP: about 1.4x the flops of one pass, no atomics). */
void attention_backward_window(float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *out,
                               const float *lse, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                               int64_t HD, float scale, int64_t window) {
    assert(NKV > 0 && NH % NKV == 0 && window >= 0);
    int64_t C = NH * HD, CKV = NKV * HD, group = NH / NKV;
    size_t D_bytes = (size_t)(B * NH * T) * sizeof(float);
    float *D = malloc(D_bytes ? D_bytes : 1); /* (B, NH, T), laid out as lse */
    if (!D) {
        fprintf(stderr, "attention_backward: out of host memory (%zu bytes for D)\n", D_bytes);
        exit(1);
    }
#pragma omp parallel for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t t = 0; t < T; t++) {
                int64_t row = (b * T + t) * C + h * HD;
                D[(b * NH + h) * T + t] = att_dot(dout + row, out + row, HD);
            }

#pragma omp parallel for collapse(3) schedule(dynamic, 16)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t t = 0; t < T; t++) {
                int64_t row = (b * T + t) * C + h * HD;
                const float *kb = k + b * T * CKV + (h / group) * HD;
                const float *vb = v + b * T * CKV + (h / group) * HD;
                float lse_t = lse[(b * NH + h) * T + t], D_t = D[(b * NH + h) * T + t];
                float *dqr = dq + row;
                for (int64_t d = 0; d < HD; d++) dqr[d] = 0.0f;
                for (int64_t s = att_first(t, window); s <= t; s++) {
                    float p = expf(att_dot(q + row, kb + s * CKV, HD) * scale - lse_t);
                    float dp = att_dot(dout + row, vb + s * CKV, HD);
                    att_axpy(dqr, p * (dp - D_t) * scale, kb + s * CKV, HD);
                }
            }

#pragma omp parallel for collapse(3) schedule(dynamic, 16)
    for (int64_t b = 0; b < B; b++)
        for (int64_t kvh = 0; kvh < NKV; kvh++)
            for (int64_t s = 0; s < T; s++) {
                int64_t krow = (b * T + s) * CKV + kvh * HD;
                float *dkr = dk + krow, *dvr = dv + krow;
                for (int64_t d = 0; d < HD; d++) dkr[d] = dvr[d] = 0.0f;
                for (int64_t h = kvh * group; h < (kvh + 1) * group; h++)
                    for (int64_t t = s; t < T && (window == 0 || t < s + window); t++) {
                        int64_t row = (b * T + t) * C + h * HD;
                        float lse_t = lse[(b * NH + h) * T + t], D_t = D[(b * NH + h) * T + t];
                        float p = expf(att_dot(q + row, k + krow, HD) * scale - lse_t);
                        float dp = att_dot(dout + row, v + krow, HD);
                        att_axpy(dvr, p, dout + row, HD);
                        att_axpy(dkr, p * (dp - D_t) * scale, q + row, HD);
                    }
            }
    free(D);
}
