/* tests/gpu/ktest_attention.c - attention.cu: the flash forward and the three backward
 * kernels against runtime/cpu/attention.c, within the error bounds of their bf16 roundings;
 * and timings at training shapes. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/attention.cuh"

#include "ktest.h"

/* ---- attention.cu ------------------------------------------------------------------------ */

/* the launch shapes of runtime/cuda/kernels.h, from the kernels' own constants */
static unsigned att_fwd_smem(int HD) { return (unsigned)HZ_ATT_FWD_SMEM(HD); }
static unsigned att_bwd_smem(int HD) { return (unsigned)HZ_ATT_BWD_SMEM(HD); }

static unsigned att_dq_smem(int HD) { return (unsigned)HZ_ATT_DQ_SMEM(HD); }

/* The three backward kernels in order: D, then dk/dv, then dq. */
static void att_backward(CUdeviceptr ddq, CUdeviceptr ddk, CUdeviceptr ddv, CUdeviceptr dD,
                         CUdeviceptr ddout, CUdeviceptr dq, CUdeviceptr dk, CUdeviceptr dv,
                         CUdeviceptr dout, CUdeviceptr dlse, int B, int T, int NH, int NKV, int HD,
                         float scale, int window, int sync) {
    void (*go)(const char *, unsigned, unsigned, unsigned, unsigned, void **) = sync ? launch : launch_async;
    void *a1[] = {&dD, &ddout, &dout, &B, &T, &NH, &HD};
    go("hzk_attention_backward_preprocess", blocks_for((long)B * T * NH, 8), 1, 256, 0, a1);
    void *a2[] = {&ddk, &ddv, &ddout, &dq, &dk, &dv, &dlse, &dD, &B, &T, &NH, &NKV, &HD, &scale, &window};
    go("hzk_attention_backward", (unsigned)(B * NKV), (unsigned)((T + 63) / 64), 128, att_bwd_smem(HD), a2);
    void *a3[] = {&ddq, &ddout, &dq, &dk, &dv, &dlse, &dD, &B, &T, &NH, &NKV, &HD, &scale, &window};
    go("hzk_attention_backward_dq", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_dq_smem(HD), a3);
}

/* Error bounds of the bf16 roundings the flash kernels make on purpose: P (in P V and P^T dO)
 * and dS (in dS K and dS^T Q) go to bf16, relative error <= 2^-9 each, so per element
 *   |err out| <= 2^-9 sum_k P|v|,  |err dv| <= 2^-9 sum_q P|dO|,
 *   |err dq| <= 2^-9 scale sum_k |dS||k|,  |err dk| <= 2^-9 scale sum_q |dS||q|
 * (plus the rounding of the result). In rows with few keys these terms are large and cancel,
 * so a tolerance from the tensor's rms alone would be wrong there. Computed in double from
 * the reference's lse and out; bk, bv summed over the query heads of each kv head. WINDOW > 0:
 * over the keys of the sliding window only. */
static void att_bounds(float *bo, float *bq, float *bk, float *bv, const float *q, const float *k,
                       const float *v, const float *g, const float *out, const float *lse, int B, int T,
                       int NH, int NKV, int HD, float scale, int window) {
    const int G = NH / NKV;
    double *ak = calloc((size_t)B * T * NKV * HD, sizeof(double)), *av = calloc((size_t)B * T * NKV * HD, sizeof(double));
    double *ao = malloc((size_t)HD * sizeof(double)), *aq = malloc((size_t)HD * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const size_t qo = (((size_t)b * T + t) * NH + h) * HD;
                double D = 0.0;
                for (int d = 0; d < HD; d++) D += (double)g[qo + d] * out[qo + d], ao[d] = aq[d] = 0.0;
                const double L = lse[((size_t)b * NH + h) * T + t];
                for (int s = window > 0 && t >= window ? t - window + 1 : 0; s <= t; s++) {
                    const size_t ko = (((size_t)b * T + s) * NKV + h / G) * HD;
                    double sc = 0.0, dp = 0.0;
                    for (int d = 0; d < HD; d++) sc += (double)q[qo + d] * k[ko + d], dp += (double)g[qo + d] * v[ko + d];
                    const double p = exp(sc * scale - L), ds = fabs(p * (dp - D));
                    for (int d = 0; d < HD; d++) {
                        ao[d] += p * fabs(v[ko + d]);
                        aq[d] += ds * fabs(k[ko + d]) * scale;
                        av[ko + d] += p * fabs(g[qo + d]);
                        ak[ko + d] += ds * fabs(q[qo + d]) * scale;
                    }
                }
                for (int d = 0; d < HD; d++) bo[qo + d] = (float)ao[d], bq[qo + d] = (float)aq[d];
            }
    for (size_t i = 0; i < (size_t)B * T * NKV * HD; i++) bk[i] = (float)ak[i], bv[i] = (float)av[i];
    free(ak), free(av), free(ao), free(aq);
}

/* WINDOW > 0: sliding-window attention with SCALE_W (Gemma 3's local layers, against
 * attention_forward_window); 0: causal with HD^-0.5 as the cpu reference (SCALE_W unused). */
void test_attention_w(int B, int T, int NH, int NKV, int HD, float scale_w, int window) {
    char tag[96];
    snprintf(tag, sizeof tag, "B=%d T=%d NH=%d NKV=%d HD=%d%s", B, T, NH, NKV, HD,
             window ? " windowed" : "");
    if (window) {
        size_t n = strlen(tag);
        snprintf(tag + n, sizeof tag - n, " %d", window);
    }
    const size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD, nl = (size_t)B * NH * T;
    const float scale = window ? scale_w : (float)(1.0 / sqrt((double)HD)); /* as the cpu reference */
    float *q = rand_bf(nq, -1.5f, 1.5f), *k = rand_bf(nk, -1.5f, 1.5f), *v = rand_bf(nk, -1.5f, 1.5f);
    float *out_ref = hmalloc(nq), *lse_ref = hmalloc(nl), *bo = hmalloc(nq);
    if (window) attention_forward_window(out_ref, lse_ref, q, k, v, B, T, NH, NKV, HD, scale, window);
    else attention_forward(out_ref, lse_ref, q, k, v, B, T, NH, NKV, HD);
    float *g = rand_bf(nq, -1, 1); /* dout, for the backward */
    float *bq = hmalloc(nq), *bk = hmalloc(nk), *bv = hmalloc(nk);
    att_bounds(bo, bq, bk, bv, q, k, v, g, out_ref, lse_ref, B, T, NH, NKV, HD, scale, window);
    CUdeviceptr dq = up_bf(q, nq), dk = up_bf(k, nk), dv = up_bf(v, nk);
    CUdeviceptr dout = dalloc(nq * 2), dlse = dalloc(nl * 4);
    float sc = scale;
    int win = window;
    void *a1[] = {&dout, &dlse, &dq, &dk, &dv, &B, &T, &NH, &NKV, &HD, &sc, &win};
    launch("hzk_attention_forward", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_fwd_smem(HD), a1);
    check_dev(1, dout, out_ref, nq, 1e-6, 4e-3, bo, 6e-3,
              "attention fwd out (%s)", tag);
    check_dev(0, dlse, lse_ref, nl, 1e-4, 1e-4, NULL, 0.0,
              "attention fwd lse (%s)", tag);

    /* backward from the reference out (rounded to bf16, as the device would hold it) and lse */
    for (size_t i = 0; i < nq; i++) out_ref[i] = round_bf(out_ref[i]);
    float *dq_ref = hmalloc(nq), *dk_ref = hmalloc(nk), *dv_ref = hmalloc(nk);
    if (window)
        attention_backward_window(dq_ref, dk_ref, dv_ref, g, q, k, v, out_ref, lse_ref, B, T, NH,
                                  NKV, HD, scale, window);
    else
        attention_backward(dq_ref, dk_ref, dv_ref, g, q, k, v, out_ref, lse_ref, B, T, NH, NKV, HD);
    CUdeviceptr dg = up_bf(g, nq), dO = up_bf(out_ref, nq), dL = up_f32(lse_ref, nl);
    CUdeviceptr ddq = dalloc(nq * 2), ddk = dalloc(nk * 2), ddv = dalloc(nk * 2), dD = dalloc(nl * 4);
    /* twice, outputs poisoned before each run: the backward has no atomics, so the runs must
     * agree bit for bit */
    float *runs_dq[2], *runs_dk[2], *runs_dv[2];
    for (int r = 0; r < 2; r++) {
        poison(ddq, nq * 2), poison(ddk, nk * 2), poison(ddv, nk * 2), poison(dD, nl * 4);
        att_backward(ddq, ddk, ddv, dD, dg, dq, dk, dv, dO, dL, B, T, NH, NKV, HD, scale, window, 1);
        runs_dq[r] = down_bf(ddq, nq), runs_dk[r] = down_bf(ddk, nk), runs_dv[r] = down_bf(ddv, nk);
    }
    check_reruns(runs_dq, dq_ref, nq, 1e-6, 4e-3, bq, 6e-3, "attention bwd dq (%s)", tag);
    check_reruns(runs_dk, dk_ref, nk, 1e-6, 4e-3, bk, 6e-3, "attention bwd dk (%s)", tag);
    check_reruns(runs_dv, dv_ref, nk, 1e-6, 4e-3, bv, 6e-3, "attention bwd dv (%s)", tag);
    free(q), free(k), free(v), free(out_ref), free(lse_ref), free(g), free(dq_ref), free(dk_ref), free(dv_ref);
    free(bo), free(bq), free(bk), free(bv);
    cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dout), cuMemFree(dlse), cuMemFree(dg), cuMemFree(dO);
    cuMemFree(dL), cuMemFree(ddq), cuMemFree(ddk), cuMemFree(ddv), cuMemFree(dD);
}

/* Timings of the attention kernels at a training shape (not checks; printed for the log). */
void test_attention(int B, int T, int NH, int NKV, int HD) {
    test_attention_w(B, T, NH, NKV, HD, 0.0f, 0);
}

void bench_attention(int B, int T, int NH, int NKV, int HD) {
    const size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD, nl = (size_t)B * NH * T;
    float *h = rand_bf(nq, -1.5f, 1.5f);
    CUdeviceptr dq = up_bf(h, nq), dk = up_bf(h, nk), dv = up_bf(h + nk, nk), dg = up_bf(h, nq);
    CUdeviceptr dout = dalloc(nq * 2), dlse = dalloc(nl * 4), ddq = dalloc(nq * 2), ddk = dalloc(nk * 2),
                ddv = dalloc(nk * 2), dD = dalloc(nl * 4);
    float scale = (float)(1.0 / sqrt((double)HD));
    int window = 0;
    void *a1[] = {&dout, &dlse, &dq, &dk, &dv, &B, &T, &NH, &NKV, &HD, &scale, &window};
    CUevent e0, e1, e2;
    CU_CHECK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e1, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e2, CU_EVENT_DEFAULT));
    const int reps = 10;
    for (int r = 0; r <= reps; r++) { /* the first round warms up */
        if (r == 1) CU_CHECK(cuEventRecord(e0, NULL));
        launch_async("hzk_attention_forward", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_fwd_smem(HD), a1);
    }
    CU_CHECK(cuEventRecord(e1, NULL));
    for (int r = 0; r < reps; r++)
        att_backward(ddq, ddk, ddv, dD, dg, dq, dk, dv, dout, dlse, B, T, NH, NKV, HD, scale, 0, 0);
    CU_CHECK(cuEventRecord(e2, NULL));
    CU_CHECK(cuEventSynchronize(e2));
    float ms_f = 0, ms_b = 0;
    CU_CHECK(cuEventElapsedTime(&ms_f, e0, e1));
    CU_CHECK(cuEventElapsedTime(&ms_b, e1, e2));
    ms_f /= reps, ms_b /= reps;
    double flops_f = 4.0 * B * NH * (double)T * T * HD / 2.0; /* causal: half of QK^T and PV */
    int regs[3] = {0}, local[3] = {0};
    const char *names[3] = {"hzk_attention_forward", "hzk_attention_backward", "hzk_attention_backward_dq"};
    for (int i = 0; i < 3; i++) {
        CU_CHECK(cuFuncGetAttribute(&regs[i], CU_FUNC_ATTRIBUTE_NUM_REGS, kernel(names[i])));
        CU_CHECK(cuFuncGetAttribute(&local[i], CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, kernel(names[i])));
    }
    printf("bench   attention B=%d T=%d NH=%d NKV=%d HD=%d causal: fwd %.3f ms %.1f TFLOP/s (%d regs, %d B local); "
           "bwd %.3f ms %.1f TFLOP/s by the 2.5x-forward count (kv %d regs, %d B local; dq %d regs, %d B local)\n",
           B, T, NH, NKV, HD, ms_f, flops_f / ms_f * 1e-9, regs[0], local[0], ms_b, 2.5 * flops_f / ms_b * 1e-9,
           regs[1], local[1], regs[2], local[2]);
    free(h);
    cuEventDestroy(e0), cuEventDestroy(e1), cuEventDestroy(e2);
    cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dg), cuMemFree(dout), cuMemFree(dlse);
    cuMemFree(ddq), cuMemFree(ddk), cuMemFree(ddv), cuMemFree(dD);
}
