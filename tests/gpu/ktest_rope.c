/* tests/gpu/ktest_rope.c - rope.cu and qknorm.cu: the fused qkv split + bias + RoPE and
 * Qwen3's per-head q/k norm + RoPE, forward, backward and deterministic partials, against
 * runtime/cpu/rope.c and rmsnorm.c. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

/* ---- rope.cu ----------------------------------------------------------------------------- */

void test_rope(int B, int T, int NH, int NKV, int HD, int with_bias, int llama3) {
    char tag[96];
    snprintf(tag, sizeof tag, "T=%d NH=%d NKV=%d HD=%d%s%s", T, NH, NKV, HD, with_bias ? " bias" : "",
             llama3 ? " llama3" : "");
    const int N = B * T, OUT = (NH + 2 * NKV) * HD, CQ = NH * HD, CK = NKV * HD;
    hz_rope rope = {llama3 ? 500000.0f : 10000.0f, llama3, 8.0f, 1.0f, 4.0f, 8192, 0.0f};
    float *inv_freq = hmalloc((size_t)HD / 2);
    hz_rope_inv_freq(inv_freq, HD, &rope);
    float *qkv = rand_bf((size_t)N * OUT, -2, 2), *bias = rand_bf((size_t)OUT, -1, 1);
    float *q = hmalloc((size_t)N * CQ), *k = hmalloc((size_t)N * CK), *v = hmalloc((size_t)N * CK);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OUT; j++) {
            float x = qkv[(size_t)n * OUT + j];
            if (with_bias) x = round_bf(x + bias[j]);
            if (j < CQ) q[(size_t)n * CQ + j] = x;
            else if (j < CQ + CK) k[(size_t)n * CK + j - CQ] = x;
            else v[(size_t)n * CK + j - CQ - CK] = x;
        }
    rope_forward(q, inv_freq, N, T, NH, HD);
    rope_forward(k, inv_freq, N, T, NKV, HD);
    CUdeviceptr dqkv = up_bf(qkv, (size_t)N * OUT), dbias = with_bias ? up_bf(bias, (size_t)OUT) : 0,
                dinv = up_f32(inv_freq, (size_t)HD / 2);
    CUdeviceptr dq = dalloc((size_t)N * CQ * 2), dk = dalloc((size_t)N * CK * 2), dv = dalloc((size_t)N * CK * 2);
    void *a1[] = {&dq, &dk, &dv, &dqkv, &dbias, &dinv, (void *)&N, (void *)&T, &NH, &NKV, &HD};
    launch("hzk_qkv_bias_rope", (unsigned)((N + 63) / 64), (unsigned)(NH + 2 * NKV), 256, 0, a1);
    check_dev(1, dq, q, (size_t)N * CQ, 2e-2 * rms(q, (size_t)N * CQ), 1e-2, NULL, 0.0,
              "rope fwd q (%s)", tag);
    check_dev(1, dk, k, (size_t)N * CK, 2e-2 * rms(k, (size_t)N * CK), 1e-2, NULL, 0.0,
              "rope fwd k (%s)", tag);
    check_dev(1, dv, v, (size_t)N * CK, 0.0, 0.0, NULL, 0.0,
              "rope fwd v (%s)", tag);
    /* the token-major kernel (HD % 8 == 0: every head dim here but 32's groups of 4 lanes
     * are tested too), poisoned outputs */
    const unsigned tok_grid = (unsigned)((N + 256 / (HD / 8) - 1) / (256 / (HD / 8)));
    poison(dq, (size_t)N * CQ * 2), poison(dk, (size_t)N * CK * 2), poison(dv, (size_t)N * CK * 2);
    launch("hzk_qkv_bias_rope_tokens", tok_grid, 1, 256, 0, a1);
    check_dev(1, dq, q, (size_t)N * CQ, 2e-2 * rms(q, (size_t)N * CQ), 1e-2, NULL, 0.0,
              "rope fwd by token q (%s)", tag);
    check_dev(1, dk, k, (size_t)N * CK, 2e-2 * rms(k, (size_t)N * CK), 1e-2, NULL, 0.0,
              "rope fwd by token k (%s)", tag);
    check_dev(1, dv, v, (size_t)N * CK, 0.0, 0.0, NULL, 0.0, "rope fwd by token v (%s)", tag);

    /* backward: rotate random gradients back, reassemble the fused row, sum dbias */
    float *gq = rand_bf((size_t)N * CQ, -1, 1), *gk = rand_bf((size_t)N * CK, -1, 1), *gv = rand_bf((size_t)N * CK, -1, 1);
    CUdeviceptr dgq = up_bf(gq, (size_t)N * CQ), dgk = up_bf(gk, (size_t)N * CK), dgv = up_bf(gv, (size_t)N * CK);
    rope_backward(gq, inv_freq, N, T, NH, HD);
    rope_backward(gk, inv_freq, N, T, NKV, HD);
    float *want = hmalloc((size_t)N * OUT), *db0 = hmalloc((size_t)OUT);
    for (int j = 0; j < OUT; j++) db0[j] = frand();
    float *db_ref = copy_of(db0, (size_t)OUT);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OUT; j++) {
            float x = j < CQ ? gq[(size_t)n * CQ + j]
                    : j < CQ + CK ? gk[(size_t)n * CK + j - CQ] : gv[(size_t)n * CK + j - CQ - CK];
            want[(size_t)n * OUT + j] = x;
            db_ref[j] += x;
        }
    CUdeviceptr ddqkv = dalloc((size_t)N * OUT * 2), ddb = with_bias ? up_f32(db0, (size_t)OUT) : 0;
    void *a2[] = {&ddqkv, &ddb, &dgq, &dgk, &dgv, &dinv, (void *)&N, (void *)&T, &NH, &NKV, &HD};
    launch("hzk_qkv_rope_backward", (unsigned)((N + 63) / 64), (unsigned)(NH + 2 * NKV), 256, 0, a2);
    check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
              "rope bwd dqkv (%s)", tag);
    if (!with_bias) { /* the token-major backward, which sums no bias */
        poison(ddqkv, (size_t)N * OUT * 2);
        void *at[] = {&ddqkv, &dgq, &dgk, &dgv, &dinv, (void *)&N, (void *)&T, &NH, &NKV, &HD};
        launch("hzk_qkv_rope_tokens_backward", tok_grid, 1, 256, 0, at);
        check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL,
                  0.0, "rope bwd by token dqkv (%s)", tag);
    }
    if (with_bias) {
        check_dev(0, ddb, db_ref, (size_t)OUT, 1e-2 * sqrt((double)N) * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
                  "rope bwd dbias (%s)", tag);
        /* the deterministic path: per-block partials, then colsum in order */
        const int G = (N + 63) / 64;
        CUdeviceptr dpart = dalloc((size_t)G * OUT * 4);
        float *runs[2];
        for (int r = 0; r < 2; r++) {
            CU_CHECK(cuMemcpyHtoD(ddb, db0, (size_t)OUT * 4));
            poison(dpart, (size_t)G * OUT * 4), poison(ddqkv, (size_t)N * OUT * 2);
            void *a3[] = {&ddqkv, &dpart, &dgq, &dgk, &dgv, &dinv, (void *)&N, (void *)&T, &NH, &NKV, &HD};
            launch("hzk_qkv_rope_backward_part", (unsigned)G, (unsigned)(NH + 2 * NKV), 256, 0, a3);
            void *a4[] = {&ddb, &dpart, (void *)&G, (void *)&OUT};
            launch("hzk_colsum_f32", (unsigned)(OUT + 255) / 256, 1, 256, 0, a4);
            runs[r] = down_f32(ddb, (size_t)OUT);
        }
        check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
                  "rope bwd part dqkv (%s)", tag);
        check_reruns(runs, db_ref, (size_t)OUT, 1e-2 * sqrt((double)N) * rms(want, (size_t)N * OUT), 1e-2,
                     NULL, 0.0, "rope bwd part dbias (%s)", tag);
        cuMemFree(dpart);
        cuMemFree(ddb), cuMemFree(dbias);
    }
    free(inv_freq), free(qkv), free(bias), free(q), free(k), free(v), free(gq), free(gk), free(gv);
    free(want), free(db0), free(db_ref);
    cuMemFree(dqkv), cuMemFree(dinv), cuMemFree(dq), cuMemFree(dk), cuMemFree(dv);
    cuMemFree(dgq), cuMemFree(dgk), cuMemFree(dgv), cuMemFree(ddqkv);
}

/* The head-major and the token-major kernels at one shape, forward and backward (no bias),
 * 20 calls each: bytes read and written per second. */
void bench_rope(int N, int T, int NH, int NKV, int HD) {
    const int OUT = (NH + 2 * NKV) * HD, CQ = NH * HD, CK = NKV * HD;
    hz_rope rope = {500000.0f, 1, 8.0f, 1.0f, 4.0f, 8192, 0.0f};
    float *inv_freq = hmalloc((size_t)HD / 2), *x = rand_bf((size_t)N * OUT, -2, 2);
    hz_rope_inv_freq(inv_freq, HD, &rope);
    CUdeviceptr dqkv = up_bf(x, (size_t)N * OUT), dinv = up_f32(inv_freq, (size_t)HD / 2), nb = 0;
    CUdeviceptr dq = up_bf(x, (size_t)N * CQ), dk = up_bf(x, (size_t)N * CK), dv = up_bf(x, (size_t)N * CK);
    void *a[] = {&dq, &dk, &dv, &dqkv, &nb, &dinv, &N, &T, &NH, &NKV, &HD};
    void *b[] = {&dqkv, &nb, &dq, &dk, &dv, &dinv, &N, &T, &NH, &NKV, &HD};
    void *bt[] = {&dqkv, &dq, &dk, &dv, &dinv, &N, &T, &NH, &NKV, &HD};
    const unsigned head_grid[2] = {(unsigned)((N + 63) / 64), (unsigned)(NH + 2 * NKV)};
    const unsigned tok_grid = (unsigned)((N + 256 / (HD / 8) - 1) / (256 / (HD / 8)));
    const struct {
        const char *name, *what;
        unsigned gx, gy;
        void **args;
    } runs[] = {{"hzk_qkv_bias_rope", "fwd, head-major", head_grid[0], head_grid[1], a},
                {"hzk_qkv_bias_rope_tokens", "fwd, token-major", tok_grid, 1, a},
                {"hzk_qkv_rope_backward", "bwd, head-major", head_grid[0], head_grid[1], b},
                {"hzk_qkv_rope_tokens_backward", "bwd, token-major", tok_grid, 1, bt}};
    CUevent e0, e1;
    CU_CHECK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e1, CU_EVENT_DEFAULT));
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        launch(runs[r].name, runs[r].gx, runs[r].gy, 256, 0, runs[r].args);
        CU_CHECK(cuEventRecord(e0, NULL));
        for (int i = 0; i < 20; i++)
            launch_async(runs[r].name, runs[r].gx, runs[r].gy, 256, 0, runs[r].args);
        CU_CHECK(cuEventRecord(e1, NULL));
        CU_CHECK(cuEventSynchronize(e1));
        float ms = 0.0f;
        CU_CHECK(cuEventElapsedTime(&ms, e0, e1));
        printf("bench   rope N=%d NH=%d NKV=%d HD=%d %s (grid %u x %u, block 256): %.3f ms, %.0f GB/s\n",
               N, NH, NKV, HD, runs[r].what, runs[r].gx, runs[r].gy, ms / 20,
               4.0 * (double)N * OUT / (ms / 20 * 1e-3) / 1e9);
    }
    cuEventDestroy(e0), cuEventDestroy(e1);
    free(inv_freq), free(x);
    cuMemFree(dqkv), cuMemFree(dinv), cuMemFree(dq), cuMemFree(dk), cuMemFree(dv);
}

/* ---- qknorm.cu --------------------------------------------------------------------------- */

/* The fused per-head q/k norm + RoPE against the cpu ops it replaces: rmsnorm over rows of HD
 * (runtime/cpu/rmsnorm.c) then rope (runtime/cpu/rope.c), and back. */
void test_qk_norm(int B, int T, int NH, int NKV, int HD) {
    char tag[96];
    snprintf(tag, sizeof tag, "T=%d NH=%d NKV=%d HD=%d", T, NH, NKV, HD);
    const int N = B * T, OUT = (NH + 2 * NKV) * HD, CQ = NH * HD, CK = NKV * HD;
    const float eps = 1e-6f;
    hz_rope rope = {1000000.0f, 0, 1.0f, 1.0f, 4.0f, 8192, 0.0f};
    float *inv_freq = hmalloc((size_t)HD / 2);
    hz_rope_inv_freq(inv_freq, HD, &rope);
    float *qkv = rand_bf((size_t)N * OUT, -3, 3);
    float *wq = rand_bf((size_t)HD, 0.5f, 1.5f), *wk = rand_bf((size_t)HD, 0.5f, 1.5f);
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
    rmsnorm_forward(q, rq, qpre, wq, (int64_t)N * NH, HD, eps);
    rmsnorm_forward(k, rk, kpre, wk, (int64_t)N * NKV, HD, eps);
    rope_forward(q, inv_freq, N, T, NH, HD);
    rope_forward(k, inv_freq, N, T, NKV, HD);
    CUdeviceptr dqkv = up_bf(qkv, (size_t)N * OUT), dinv = up_f32(inv_freq, (size_t)HD / 2);
    CUdeviceptr dwq = up_bf(wq, (size_t)HD), dwk = up_bf(wk, (size_t)HD);
    CUdeviceptr dq = dalloc((size_t)N * CQ * 2), dk = dalloc((size_t)N * CK * 2), dv = dalloc((size_t)N * CK * 2);
    CUdeviceptr dqp = dalloc((size_t)N * CQ * 2), dkp = dalloc((size_t)N * CK * 2);
    CUdeviceptr drq = dalloc((size_t)N * NH * 4), drk = dalloc((size_t)N * NKV * 4);
    poison(dq, (size_t)N * CQ * 2), poison(dk, (size_t)N * CK * 2), poison(dv, (size_t)N * CK * 2);
    poison(dqp, (size_t)N * CQ * 2), poison(dkp, (size_t)N * CK * 2);
    float epsv = eps;
    void *a1[] = {&dq, &dk, &dv, &dqp, &dkp, &drq, &drk, &dqkv, &dwq, &dwk, &dinv,
                  (void *)&N, (void *)&T, &NH, &NKV, &HD, &epsv};
    const unsigned rows_grid = (unsigned)(((long)N * (NH + 2 * NKV) + 7) / 8);
    launch("hzk_qk_norm_rope", rows_grid < 65535 ? rows_grid : 65535, 1, 256, 0, a1);
    check_dev(1, dq, q, (size_t)N * CQ, 2e-2 * rms(q, (size_t)N * CQ), 1e-2, NULL, 0.0, "qk-norm fwd q (%s)", tag);
    check_dev(1, dk, k, (size_t)N * CK, 2e-2 * rms(k, (size_t)N * CK), 1e-2, NULL, 0.0, "qk-norm fwd k (%s)", tag);
    check_dev(1, dv, v, (size_t)N * CK, 0.0, 0.0, NULL, 0.0, "qk-norm fwd v copied (%s)", tag);
    check_dev(1, dqp, qpre, (size_t)N * CQ, 0.0, 0.0, NULL, 0.0, "qk-norm fwd qpre = q proj (%s)", tag);
    check_dev(1, dkp, kpre, (size_t)N * CK, 0.0, 0.0, NULL, 0.0, "qk-norm fwd kpre = k proj (%s)", tag);
    check_dev(0, drq, rq, (size_t)N * NH, 0.0, 1e-5, NULL, 0.0, "qk-norm fwd rstdq (%s)", tag);
    check_dev(0, drk, rk, (size_t)N * NKV, 0.0, 1e-5, NULL, 0.0, "qk-norm fwd rstdk (%s)", tag);

    /* backward: random gradients of the rotated q, k and of v */
    float *gq = rand_bf((size_t)N * CQ, -1, 1), *gk = rand_bf((size_t)N * CK, -1, 1), *gv = rand_bf((size_t)N * CK, -1, 1);
    CUdeviceptr dgq = up_bf(gq, (size_t)N * CQ), dgk = up_bf(gk, (size_t)N * CK), dgv = up_bf(gv, (size_t)N * CK);
    rope_backward(gq, inv_freq, N, T, NH, HD);
    rope_backward(gk, inv_freq, N, T, NKV, HD);
    float *xq = hmalloc((size_t)N * CQ), *xk = hmalloc((size_t)N * CK);
    float *gwq0 = rand_bf((size_t)HD, -1, 1), *gwk0 = rand_bf((size_t)HD, -1, 1);
    float *gwq = copy_of(gwq0, (size_t)HD), *gwk = copy_of(gwk0, (size_t)HD);
    rmsnorm_backward(xq, gwq, gq, qpre, wq, rq, (int64_t)N * NH, HD);
    rmsnorm_backward(xk, gwk, gk, kpre, wk, rk, (int64_t)N * NKV, HD);
    float *want = hmalloc((size_t)N * OUT);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OUT; j++)
            want[(size_t)n * OUT + j] = j < CQ ? xq[(size_t)n * CQ + j]
                                      : j < CQ + CK ? xk[(size_t)n * CK + j - CQ] : gv[(size_t)n * CK + j - CQ - CK];
    /* dw sums N * H rows of g * xhat: the tolerance grows with the square root of their count;
     * the kernel rotates with cos and sin rounded to bf16 (as transformers), the reference
     * with fp32 ones: each row's term is off by up to 2^-8 of itself, a random walk over the
     * N * H rows; 4e-3 a row's square root is about five of its standard deviations */
    double dw_tol_q = 4e-3 * sqrt((double)N * NH), dw_tol_k = 4e-3 * sqrt((double)N * NKV);
    CUdeviceptr ddqkv = dalloc((size_t)N * OUT * 2), dgwq = up_f32(gwq0, (size_t)HD), dgwk = up_f32(gwk0, (size_t)HD);
    void *a2[] = {&ddqkv, &dgwq, &dgwk, &dgq, &dgk, &dgv, &dqp, &dkp, &drq, &drk, &dwq, &dwk, &dinv,
                  (void *)&N, (void *)&T, &NH, &NKV, &HD};
    const unsigned G = rows_grid < 132 * 8 ? rows_grid : 132 * 8; /* 8 per SM of an H200, as launch.c */
    launch("hzk_qk_norm_rope_backward", G, 1, 256, 0, a2);
    check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
              "qk-norm bwd dqkv (%s)", tag);
    check_dev(0, dgwq, gwq, (size_t)HD, dw_tol_q, 1e-2, NULL, 0.0, "qk-norm bwd dq_norm (+=) (%s)", tag);
    check_dev(0, dgwk, gwk, (size_t)HD, dw_tol_k, 1e-2, NULL, 0.0, "qk-norm bwd dk_norm (+=) (%s)", tag);
    /* the deterministic path: q then k block partials, colsum in order, twice */
    const int GP = (int)(G < 256 ? G : 256);
    CUdeviceptr dpart = dalloc((size_t)2 * GP * HD * 4);
    float *runs_q[2], *runs_k[2];
    for (int r = 0; r < 2; r++) {
        CU_CHECK(cuMemcpyHtoD(dgwq, gwq0, (size_t)HD * 4));
        CU_CHECK(cuMemcpyHtoD(dgwk, gwk0, (size_t)HD * 4));
        poison(dpart, (size_t)2 * GP * HD * 4), poison(ddqkv, (size_t)N * OUT * 2);
        void *a3[] = {&ddqkv, &dpart, &dgwk, &dgq, &dgk, &dgv, &dqp, &dkp, &drq, &drk, &dwq, &dwk, &dinv,
                      (void *)&N, (void *)&T, &NH, &NKV, &HD};
        launch("hzk_qk_norm_rope_backward_part", (unsigned)GP, 1, 256, 0, a3);
        CUdeviceptr kpart = dpart + (size_t)GP * HD * 4;
        void *a4[] = {&dgwq, &dpart, (void *)&GP, (void *)&HD};
        launch("hzk_colsum_f32", (unsigned)(HD + 255) / 256, 1, 256, 0, a4);
        void *a5[] = {&dgwk, &kpart, (void *)&GP, (void *)&HD};
        launch("hzk_colsum_f32", (unsigned)(HD + 255) / 256, 1, 256, 0, a5);
        runs_q[r] = down_f32(dgwq, (size_t)HD);
        runs_k[r] = down_f32(dgwk, (size_t)HD);
    }
    check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
              "qk-norm bwd part dqkv (%s)", tag);
    check_reruns(runs_q, gwq, (size_t)HD, dw_tol_q, 1e-2, NULL, 0.0, "qk-norm bwd part dq_norm (%s)", tag);
    check_reruns(runs_k, gwk, (size_t)HD, dw_tol_k, 1e-2, NULL, 0.0, "qk-norm bwd part dk_norm (%s)", tag);
    free(inv_freq), free(qkv), free(wq), free(wk), free(qpre), free(kpre), free(v), free(q), free(k);
    free(rq), free(rk), free(gq), free(gk), free(gv), free(xq), free(xk), free(gwq0), free(gwk0);
    free(gwq), free(gwk), free(want);
    cuMemFree(dqkv), cuMemFree(dinv), cuMemFree(dwq), cuMemFree(dwk), cuMemFree(dq), cuMemFree(dk);
    cuMemFree(dv), cuMemFree(dqp), cuMemFree(dkp), cuMemFree(drq), cuMemFree(drk), cuMemFree(dgq);
    cuMemFree(dgk), cuMemFree(dgv), cuMemFree(ddqkv), cuMemFree(dgwq), cuMemFree(dgwk), cuMemFree(dpart);
}
