/* tests/gpu/ktest_gemma.c - Gemma 3's kernels against the cpu reference: the (1 + w)
 * RMSNorms (rmsnorm.cu *1p: plain, with the residual add, backward and its deterministic
 * form), the per-head (1 + w) q/k norms fused with RoPE (qknorm.cu *1p), the embedding's
 * bf16 scale (util.cu), and the sliding-window and head_dim 256 attention cases (through
 * ktest_attention.c's test_attention_w); GeGLU is in ktest_glu.c. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

/* x * rstd * (1 + w) in fp32, rounded once: the cpu op rounded to bf16 is the device's
 * result up to that one rounding (and the fp32 order of the row sum). */
static void test_rmsnorm1p(int N, int C) {
    const float eps = 1e-6f;
    const size_t nc = (size_t)N * C;
    float *a = rand_bf(nc, -2, 2), *b = rand_bf(nc, -2, 2), *w = rand_bf((size_t)C, -0.5f, 0.5f);
    float *out_ref = hmalloc(nc), *rstd_ref = hmalloc((size_t)N);
    rmsnorm_offset_forward(out_ref, rstd_ref, a, w, N, C, eps, 1.0f);
    CUdeviceptr da = up_bf(a, nc), db = up_bf(b, nc), dw = up_bf(w, (size_t)C);
    CUdeviceptr dout = dalloc(nc * 2), drstd = dalloc((size_t)N * 4), dres = dalloc(nc * 2);
    const unsigned blk = C >= 2048 ? 256 : 128;
    float epsv = eps;
    void *a1[] = {&dout, &drstd, &da, &dw, &N, &C, &epsv};
    launch("hzk_rmsnorm1p_forward", (unsigned)N, 1, blk, 0, a1);
    check_dev(1, dout, out_ref, nc, 1e-5, 8e-3, NULL, 0.0, "rmsnorm (1 + w) fwd out (C=%d)", C);
    check_dev(0, drstd, rstd_ref, (size_t)N, 0.0, 1e-5, NULL, 0.0, "rmsnorm (1 + w) fwd rstd (C=%d)", C);

    float *res = hmalloc(nc);
    residual_forward(res, a, b, (int64_t)nc);
    for (size_t i = 0; i < nc; i++) res[i] = round_bf(res[i]);
    rmsnorm_offset_forward(out_ref, rstd_ref, res, w, N, C, eps, 1.0f);
    poison(dout, nc * 2), poison(drstd, (size_t)N * 4);
    void *a2[] = {&dres, &dout, &drstd, &da, &db, &dw, &N, &C, &epsv};
    launch("hzk_residual_rmsnorm1p_forward", (unsigned)(N / 3 + 1), 1, blk, 0, a2);
    check_dev(1, dres, res, nc, 0.0, 0.0, NULL, 0.0, "residual_rmsnorm (1 + w) fwd res (C=%d)", C);
    check_dev(1, dout, out_ref, nc, 1e-5, 8e-3, NULL, 0.0, "residual_rmsnorm (1 + w) fwd out (C=%d)", C);

    float *g = rand_bf(nc, -1, 1), *gres = rand_bf(nc, -1, 1), *dw0 = hmalloc((size_t)C);
    for (int i = 0; i < C; i++) dw0[i] = frand();
    float *dinp_ref = hmalloc(nc), *dw_ref = copy_of(dw0, (size_t)C);
    rmsnorm_offset_backward(dinp_ref, dw_ref, g, res, w, rstd_ref, N, C, 1.0f);
    CUdeviceptr dg = up_bf(g, nc), dgres = up_bf(gres, nc), dres_in = up_bf(res, nc),
                drs = up_f32(rstd_ref, (size_t)N), ddw = up_f32(dw0, (size_t)C), ddinp = dalloc(nc * 2);
    void *a3[] = {&ddinp, &ddw, &dg, &dres_in, &dw, &drs, &dgres, &N, &C};
    launch("hzk_rmsnorm1p_backward", 37, 1, blk, (unsigned)C * 4, a3);
    float *want = copy_of(dinp_ref, nc);
    for (size_t i = 0; i < nc; i++) want[i] += gres[i];
    check_dev(1, ddinp, want, nc, 1e-3 * rms(want, nc), 1e-2, NULL, 0.0,
              "rmsnorm (1 + w) bwd dinp + dres (C=%d)", C);
    check_dev(0, ddw, dw_ref, (size_t)C, 1e-4 * rms(dw_ref, (size_t)C), 1e-4, NULL, 0.0,
              "rmsnorm (1 + w) bwd dw (+=, C=%d)", C);
    const int G = 37;
    CUdeviceptr dpart = dalloc((size_t)G * C * 4), dr0 = 0;
    float *runs[2];
    for (int r = 0; r < 2; r++) {
        CU_CHECK(cuMemcpyHtoD(ddw, dw0, (size_t)C * 4));
        poison(dpart, (size_t)G * C * 4), poison(ddinp, nc * 2);
        void *a4[] = {&ddinp, &dpart, &dg, &dres_in, &dw, &drs, &dr0, &N, &C};
        launch("hzk_rmsnorm1p_backward_part", (unsigned)G, 1, blk, (unsigned)C * 4, a4);
        void *a5[] = {&ddw, &dpart, (void *)&G, &C};
        launch("hzk_colsum_f32", (unsigned)(C + 255) / 256, 1, 256, 0, a5);
        runs[r] = down_f32(ddw, (size_t)C);
    }
    check_dev(1, ddinp, dinp_ref, nc, 1e-3 * rms(dinp_ref, nc), 1e-2, NULL, 0.0,
              "rmsnorm (1 + w) bwd part dinp (C=%d)", C);
    check_reruns(runs, dw_ref, (size_t)C, 1e-4 * rms(dw_ref, (size_t)C), 1e-4, NULL, 0.0,
                 "rmsnorm (1 + w) bwd part dw (C=%d)", C);
    free(want);
    free(a), free(b), free(w), free(out_ref), free(rstd_ref), free(res), free(g), free(gres), free(dw0);
    free(dinp_ref), free(dw_ref);
    cuMemFree(da), cuMemFree(db), cuMemFree(dw), cuMemFree(dout), cuMemFree(drstd), cuMemFree(dres);
    cuMemFree(dg), cuMemFree(dgres), cuMemFree(dres_in), cuMemFree(drs), cuMemFree(ddw), cuMemFree(ddinp);
    cuMemFree(dpart);
}

/* Gemma 3's q/k norms ((1 + w), eps 1e-6) and RoPE with THETA (the local 1e4 or the global
 * 1e6 base, LINEAR its scaling), against rmsnorm_offset + rope of the cpu. */
static void test_qk_norm1p(int B, int T, int NH, int NKV, int HD, float theta, float linear) {
    char tag[96];
    snprintf(tag, sizeof tag, "T=%d NH=%d NKV=%d HD=%d theta %g%s", T, NH, NKV, HD, (double)theta,
             linear > 0 ? " linear" : "");
    const int N = B * T, OUT = (NH + 2 * NKV) * HD, CQ = NH * HD, CK = NKV * HD;
    const float eps = 1e-6f;
    hz_rope rope = {.theta = theta, .linear = linear};
    float *inv_freq = hmalloc((size_t)HD / 2);
    hz_rope_inv_freq(inv_freq, HD, &rope);
    float *qkv = rand_bf((size_t)N * OUT, -3, 3);
    float *wq = rand_bf((size_t)HD, -0.5f, 0.5f), *wk = rand_bf((size_t)HD, -0.5f, 0.5f);
    float *qpre = hmalloc((size_t)N * CQ), *kpre = hmalloc((size_t)N * CK), *v = hmalloc((size_t)N * CK);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OUT; j++) {
            float x = qkv[(size_t)n * OUT + j];
            if (j < CQ) qpre[(size_t)n * CQ + j] = x;
            else if (j < CQ + CK) kpre[(size_t)n * CK + j - CQ] = x;
            else v[(size_t)n * CK + j - CQ - CK] = x;
        }
    float *q = hmalloc((size_t)N * CQ), *k = hmalloc((size_t)N * CK);
    float *rq = hmalloc((size_t)N * NH), *rk = hmalloc((size_t)N * NKV);
    rmsnorm_offset_forward(q, rq, qpre, wq, (int64_t)N * NH, HD, eps, 1.0f);
    rmsnorm_offset_forward(k, rk, kpre, wk, (int64_t)N * NKV, HD, eps, 1.0f);
    rope_forward(q, inv_freq, N, T, NH, HD);
    rope_forward(k, inv_freq, N, T, NKV, HD);
    CUdeviceptr dqkv = up_bf(qkv, (size_t)N * OUT), dinv = up_f32(inv_freq, (size_t)HD / 2);
    CUdeviceptr dwq = up_bf(wq, (size_t)HD), dwk = up_bf(wk, (size_t)HD);
    CUdeviceptr dq = dalloc((size_t)N * CQ * 2), dk = dalloc((size_t)N * CK * 2), dv = dalloc((size_t)N * CK * 2);
    CUdeviceptr dqp = dalloc((size_t)N * CQ * 2), dkp = dalloc((size_t)N * CK * 2);
    CUdeviceptr drq = dalloc((size_t)N * NH * 4), drk = dalloc((size_t)N * NKV * 4);
    float epsv = eps;
    void *a1[] = {&dq, &dk, &dv, &dqp, &dkp, &drq, &drk, &dqkv, &dwq, &dwk, &dinv,
                  (void *)&N, (void *)&T, &NH, &NKV, &HD, &epsv};
    const unsigned rows_grid = (unsigned)(((long)N * (NH + 2 * NKV) + 7) / 8);
    launch("hzk_qk_norm1p_rope", rows_grid < 65535 ? rows_grid : 65535, 1, 256, 0, a1);
    check_dev(1, dq, q, (size_t)N * CQ, 2e-2 * rms(q, (size_t)N * CQ), 1e-2, NULL, 0.0,
              "qk-norm (1 + w) fwd q (%s)", tag);
    check_dev(1, dk, k, (size_t)N * CK, 2e-2 * rms(k, (size_t)N * CK), 1e-2, NULL, 0.0,
              "qk-norm (1 + w) fwd k (%s)", tag);
    check_dev(1, dv, v, (size_t)N * CK, 0.0, 0.0, NULL, 0.0, "qk-norm (1 + w) fwd v copied (%s)", tag);
    check_dev(0, drq, rq, (size_t)N * NH, 0.0, 1e-5, NULL, 0.0, "qk-norm (1 + w) fwd rstdq (%s)", tag);

    float *gq = rand_bf((size_t)N * CQ, -1, 1), *gk = rand_bf((size_t)N * CK, -1, 1), *gv = rand_bf((size_t)N * CK, -1, 1);
    CUdeviceptr dgq = up_bf(gq, (size_t)N * CQ), dgk = up_bf(gk, (size_t)N * CK), dgv = up_bf(gv, (size_t)N * CK);
    rope_backward(gq, inv_freq, N, T, NH, HD);
    rope_backward(gk, inv_freq, N, T, NKV, HD);
    float *xq = hmalloc((size_t)N * CQ), *xk = hmalloc((size_t)N * CK);
    float *gwq0 = rand_bf((size_t)HD, -1, 1), *gwk0 = rand_bf((size_t)HD, -1, 1);
    float *gwq = copy_of(gwq0, (size_t)HD), *gwk = copy_of(gwk0, (size_t)HD);
    rmsnorm_offset_backward(xq, gwq, gq, qpre, wq, rq, (int64_t)N * NH, HD, 1.0f);
    rmsnorm_offset_backward(xk, gwk, gk, kpre, wk, rk, (int64_t)N * NKV, HD, 1.0f);
    float *want = hmalloc((size_t)N * OUT);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OUT; j++)
            want[(size_t)n * OUT + j] = j < CQ ? xq[(size_t)n * CQ + j]
                                      : j < CQ + CK ? xk[(size_t)n * CK + j - CQ] : gv[(size_t)n * CK + j - CQ - CK];
    /* the kernel rotates with cos and sin rounded to bf16 (as transformers), the reference
     * with fp32 ones: each row's term is off by up to 2^-8 of itself, a random walk over the
     * N * H rows; 4e-3 a row's square root is about five of its standard deviations */
    double dw_tol_q = 4e-3 * sqrt((double)N * NH), dw_tol_k = 4e-3 * sqrt((double)N * NKV);
    CUdeviceptr ddqkv = dalloc((size_t)N * OUT * 2), dgwq = up_f32(gwq0, (size_t)HD), dgwk = up_f32(gwk0, (size_t)HD);
    void *a2[] = {&ddqkv, &dgwq, &dgwk, &dgq, &dgk, &dgv, &dqp, &dkp, &drq, &drk, &dwq, &dwk, &dinv,
                  (void *)&N, (void *)&T, &NH, &NKV, &HD};
    const unsigned G = rows_grid < 132 * 8 ? rows_grid : 132 * 8;
    launch("hzk_qk_norm1p_rope_backward", G, 1, 256, 0, a2);
    check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
              "qk-norm (1 + w) bwd dqkv (%s)", tag);
    check_dev(0, dgwq, gwq, (size_t)HD, dw_tol_q, 1e-2, NULL, 0.0, "qk-norm (1 + w) bwd dq_norm (+=) (%s)", tag);
    check_dev(0, dgwk, gwk, (size_t)HD, dw_tol_k, 1e-2, NULL, 0.0, "qk-norm (1 + w) bwd dk_norm (+=) (%s)", tag);
    const int GP = (int)(G < 256 ? G : 256);
    CUdeviceptr dpart = dalloc((size_t)2 * GP * HD * 4);
    CU_CHECK(cuMemcpyHtoD(dgwq, gwq0, (size_t)HD * 4));
    poison(ddqkv, (size_t)N * OUT * 2);
    void *a3[] = {&ddqkv, &dpart, &dgwk, &dgq, &dgk, &dgv, &dqp, &dkp, &drq, &drk, &dwq, &dwk, &dinv,
                  (void *)&N, (void *)&T, &NH, &NKV, &HD};
    launch("hzk_qk_norm1p_rope_backward_part", (unsigned)GP, 1, 256, 0, a3);
    void *a4[] = {&dgwq, &dpart, (void *)&GP, (void *)&HD};
    launch("hzk_colsum_f32", (unsigned)(HD + 255) / 256, 1, 256, 0, a4);
    check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
              "qk-norm (1 + w) bwd part dqkv (%s)", tag);
    check_dev(0, dgwq, gwq, (size_t)HD, dw_tol_q, 1e-2, NULL, 0.0, "qk-norm (1 + w) bwd part dq_norm (%s)", tag);
    free(inv_freq), free(qkv), free(wq), free(wk), free(qpre), free(kpre), free(v), free(q), free(k);
    free(rq), free(rk), free(gq), free(gk), free(gv), free(xq), free(xk), free(gwq0), free(gwk0);
    free(gwq), free(gwk), free(want);
    cuMemFree(dqkv), cuMemFree(dinv), cuMemFree(dwq), cuMemFree(dwk), cuMemFree(dq), cuMemFree(dk);
    cuMemFree(dv), cuMemFree(dqp), cuMemFree(dkp), cuMemFree(drq), cuMemFree(drk), cuMemFree(dgq);
    cuMemFree(dgk), cuMemFree(dgv), cuMemFree(ddqkv), cuMemFree(dgwq), cuMemFree(dgwk), cuMemFree(dpart);
}

/* x = bf16(x * s): the embedding times bf16(sqrt(1152)) = 34, and at another size's 50.5;
 * the product of two bf16 values, rounded once (what transformers computes). */
static void test_scale_bf16(long n, float s) {
    float *x = rand_bf((size_t)n, -1, 1), *want = hmalloc((size_t)n);
    for (long i = 0; i < n; i++) want[i] = round_bf(x[i] * s);
    CUdeviceptr dx = up_bf(x, (size_t)n);
    void *a[] = {&dx, &s, &n};
    launch("hzk_scale_bf16", blocks_for(n, 256) / 2 + 1, 1, 256, 0, a); /* grid-stride */
    check_dev(1, dx, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "scale_bf16 x %g (n=%ld, bit for bit)",
              (double)s, n);
    free(x), free(want);
    cuMemFree(dx);
}

/* Every Gemma 3 case; the head_dim 256 ones need the kernels built with -D HZ_HD=256 (as a
 * Gemma 3 trainer's kernels.cu defines it): without, they are skipped with a note. */
void test_gemma(void) {
    test_rmsnorm1p(400, 1152); /* Gemma 3 1B's hidden size */
    test_rmsnorm1p(300, 100);
    test_qk_norm1p(2, 200, 8, 4, 128, 10000.0f, 0.0f);
    test_qk_norm1p(2, 128, 8, 2, 64, 1000000.0f, 8.0f);
    test_qk_norm1p(1, 150, 4, 1, 256, 1000000.0f, 0.0f); /* Gemma 3 1B's heads */
    test_scale_bf16(100003, 34.0f);
    test_scale_bf16(4096, 50.5f);
    /* sliding windows shorter than, equal to and across the 64-key tiles; Gemma 3's scale */
    test_attention_w(2, 200, 8, 2, 64, 0.125f, 37);
    test_attention_w(2, 300, 8, 4, 128, 0.0625f, 64);
    test_attention_w(1, 257, 4, 1, 32, 0.2f, 100);
    test_attention_w(1, 129, 2, 1, 128, 0.05f, 1);
    test_attention_w(1, 100, 2, 2, 64, 0.125f, 512); /* window > T: causal */
    /* cuDNN's fused attention with the window's bound (the local layers' graph) */
    test_attention_cudnn_w(2, 200, 8, 2, 64, 0.125f, 37);
    test_attention_cudnn_w(2, 256, 8, 4, 128, 0.0625f, 64);
    test_attention_cudnn_w(1, 300, 4, 1, 128, 0.05f, 100);
    test_attention_cudnn_w(1, 1024, 4, 2, 128, 0.0625f, 256);
    if (strstr(ktest_prelude(), "#define HZ_HD 256")) {
        test_attention_w(1, 300, 4, 1, 256, 0.0625f, 0);   /* Gemma 3 1B: global layer */
        test_attention_w(2, 300, 4, 1, 256, 0.0625f, 128); /* and a local one */
        test_attention(1, 200, 4, 2, 256);
        test_attention_cudnn_w(2, 256, 4, 1, 256, 0.0625f, 0); /* the same by cuDNN */
        test_attention_cudnn_w(2, 256, 4, 1, 256, 0.0625f, 128);
        test_attention_cudnn_w(1, 300, 8, 4, 256, 0.0625f, 100);
        if (!getenv("HZ_TEST_NO_BENCH")) { /* Gemma-3-12B's heads, 32k tokens a micro-batch */
            bench_attention_w(16, 2048, 16, 8, 256, 0);
            bench_attention_w(16, 2048, 16, 8, 256, 1024);
        }
    } else {
        printf("note    head_dim 256 attention skipped: run with -D HZ_HD=256\n");
    }
}
