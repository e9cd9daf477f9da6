/* tests/gpu/ktest_rmsnorm.c - rmsnorm.cu: the norm, the fused residual + norm, the backward
 * with and without the residual gradient, and its deterministic partials against
 * runtime/cpu/rmsnorm.c. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

/* ---- rmsnorm.cu -------------------------------------------------------------------------- */

void test_rmsnorm(int N, int C) {
    const float eps = 1e-5f;
    const size_t nc = (size_t)N * C;
    float *a = rand_bf(nc, -2, 2), *b = rand_bf(nc, -2, 2), *w = rand_bf((size_t)C, 0.5f, 1.5f);
    float *out_ref = hmalloc(nc), *rstd_ref = hmalloc((size_t)N);
    rmsnorm_forward(out_ref, rstd_ref, a, w, N, C, eps);
    CUdeviceptr da = up_bf(a, nc), db = up_bf(b, nc), dw = up_bf(w, (size_t)C);
    CUdeviceptr dout = dalloc(nc * 2), drstd = dalloc((size_t)N * 4), dres = dalloc(nc * 2);
    const unsigned blk = C >= 2048 ? 256 : 128;
    float epsv = eps;
    void *a1[] = {&dout, &drstd, &da, &dw, &N, &C, &epsv};
    launch("hzk_rmsnorm_forward", (unsigned)N, 1, blk, 0, a1);
    check_dev(1, dout, out_ref, nc, 1e-5, 1e-2, NULL, 0.0,
              "rmsnorm fwd out (C=%d)", C);
    check_dev(0, drstd, rstd_ref, (size_t)N, 0.0, 1e-5, NULL, 0.0,
              "rmsnorm fwd rstd (C=%d)", C);

    /* residual: res = bf16(a + b), then the norm of the rounded res */
    float *res = hmalloc(nc);
    residual_forward(res, a, b, (int64_t)nc);
    for (size_t i = 0; i < nc; i++) res[i] = round_bf(res[i]);
    rmsnorm_forward(out_ref, rstd_ref, res, w, N, C, eps);
    poison(dout, nc * 2), poison(drstd, (size_t)N * 4);
    void *a2[] = {&dres, &dout, &drstd, &da, &db, &dw, &N, &C, &epsv};
    launch("hzk_residual_rmsnorm_forward", (unsigned)(N / 3 + 1), 1, blk, 0, a2);
    check_dev(1, dres, res, nc, 0.0, 0.0, NULL, 0.0,
              "residual_rmsnorm fwd res (C=%d)", C);
    check_dev(1, dout, out_ref, nc, 1e-5, 1e-2, NULL, 0.0,
              "residual_rmsnorm fwd out (C=%d)", C);
    check_dev(0, drstd, rstd_ref, (size_t)N, 0.0, 1e-5, NULL, 0.0,
              "residual_rmsnorm fwd rstd (C=%d)", C);

    /* backward of the norm of res, with and without the residual gradient */
    float *g = rand_bf(nc, -1, 1), *gres = rand_bf(nc, -1, 1), *dw0 = hmalloc((size_t)C);
    for (int i = 0; i < C; i++) dw0[i] = frand();
    float *dinp_ref = hmalloc(nc), *dw_ref = copy_of(dw0, (size_t)C);
    rmsnorm_backward(dinp_ref, dw_ref, g, res, w, rstd_ref, N, C);
    CUdeviceptr dg = up_bf(g, nc), dgres = up_bf(gres, nc), dres_in = up_bf(res, nc),
                drs = up_f32(rstd_ref, (size_t)N), ddw = up_f32(dw0, (size_t)C), ddinp = dalloc(nc * 2);
    for (int pass = 0; pass < 2; pass++) {
        CUdeviceptr dr = pass ? dgres : 0;
        void *a3[] = {&ddinp, &ddw, &dg, &dres_in, &dw, &drs, &dr, &N, &C};
        launch("hzk_rmsnorm_backward", 37, 1, blk, (unsigned)C * 4, a3);
        float *want = copy_of(dinp_ref, nc);
        if (pass)
            for (size_t i = 0; i < nc; i++) want[i] += gres[i];
        check_dev(1, ddinp, want, nc, 1e-3 * rms(want, nc), 1e-2, NULL, 0.0,
                  "rmsnorm bwd dinp%s (C=%d)", pass ? " + dres" : "", C);
        free(want);
        poison(ddinp, nc * 2);
    }
    /* dw was accumulated twice */
    for (int i = 0; i < C; i++) dw_ref[i] += dw_ref[i] - dw0[i];
    check_dev(0, ddw, dw_ref, (size_t)C, 1e-4 * rms(dw_ref, (size_t)C), 1e-4, NULL, 0.0,
              "rmsnorm bwd dw (2 x accumulated, C=%d)", C);
    /* the deterministic path: block partials, then colsum in order; once from dw0 */
    for (int i = 0; i < C; i++) dw_ref[i] = dw0[i] + (dw_ref[i] - dw0[i]) * 0.5f;
    const int G = 37;
    CUdeviceptr dpart = dalloc((size_t)G * C * 4), dr0 = 0;
    float *runs[2];
    for (int r = 0; r < 2; r++) {
        CU_CHECK(cuMemcpyHtoD(ddw, dw0, (size_t)C * 4));
        poison(dpart, (size_t)G * C * 4), poison(ddinp, nc * 2);
        void *a4[] = {&ddinp, &dpart, &dg, &dres_in, &dw, &drs, &dr0, &N, &C};
        launch("hzk_rmsnorm_backward_part", (unsigned)G, 1, blk, (unsigned)C * 4, a4);
        void *a5[] = {&ddw, &dpart, (void *)&G, &C};
        launch("hzk_colsum_f32", (unsigned)(C + 255) / 256, 1, 256, 0, a5);
        runs[r] = down_f32(ddw, (size_t)C);
    }
    check_dev(1, ddinp, dinp_ref, nc, 1e-3 * rms(dinp_ref, nc), 1e-2, NULL, 0.0,
              "rmsnorm bwd part dinp (C=%d)", C);
    check_reruns(runs, dw_ref, (size_t)C, 1e-4 * rms(dw_ref, (size_t)C), 1e-4, NULL, 0.0,
                 "rmsnorm bwd part dw (C=%d)", C);
    cuMemFree(dpart);
    free(a), free(b), free(w), free(out_ref), free(rstd_ref), free(res), free(g), free(gres), free(dw0);
    free(dinp_ref), free(dw_ref);
    cuMemFree(da), cuMemFree(db), cuMemFree(dw), cuMemFree(dout), cuMemFree(drstd), cuMemFree(dres);
    cuMemFree(dg), cuMemFree(dgres), cuMemFree(dres_in), cuMemFree(drs), cuMemFree(ddw), cuMemFree(ddinp);
}

/* The backward's row-group launch (rmsnorm.cu: block R * TPR, TPR = round_up(C / 8, 32), R =
 * 1024 / TPR, shared memory R * C * 4) on a grid of 3 blocks, so that each block's groups
 * stride over several rows and some rows of the last pass are missing: dinp with dres in
 * place (dinp aliasing dres, as the block's last norm runs it), dw accumulated, and the
 * deterministic partials twice. ONEP: the (1 + w) kernels of Gemma 3. */
void test_rmsnorm_backward_groups(int N, int C, int onep) {
    const size_t nc = (size_t)N * C;
    const char *k = onep ? "hzk_rmsnorm1p_backward" : "hzk_rmsnorm_backward";
    const char *kp = onep ? "hzk_rmsnorm1p_backward_part" : "hzk_rmsnorm_backward_part";
    const int tpr = (C / 8 + 31) / 32 * 32, R = 1024 / tpr, G = 3;
    const unsigned blk = (unsigned)(R * tpr), smem = (unsigned)(R * C * 4);
    float *x = rand_bf(nc, -2, 2), *w = rand_bf((size_t)C, onep ? -0.5f : 0.5f, onep ? 0.5f : 1.5f);
    float *g = rand_bf(nc, -1, 1), *gres = rand_bf(nc, -1, 1), *rstd = hmalloc((size_t)N);
    float *dw0 = hmalloc((size_t)C), *dinp_ref = hmalloc(nc);
    for (int n = 0; n < N; n++) rstd[n] = 0.5f + 0.5f * (frand() * 0.5f + 0.5f);
    for (int i = 0; i < C; i++) dw0[i] = frand();
    float *dw_ref = copy_of(dw0, (size_t)C);
    rmsnorm_offset_backward(dinp_ref, dw_ref, g, x, w, rstd, N, C, onep ? 1.0f : 0.0f);
    float *want = copy_of(dinp_ref, nc);
    for (size_t i = 0; i < nc; i++) want[i] += gres[i];
    CUdeviceptr dg = up_bf(g, nc), dx = up_bf(x, nc), dwt = up_bf(w, (size_t)C),
                drs = up_f32(rstd, (size_t)N), ddw = up_f32(dw0, (size_t)C), dd = up_bf(gres, nc),
                ddinp = dalloc(nc * 2), dr0 = 0;
    void *a1[] = {&dd, &ddw, &dg, &dx, &dwt, &drs, &dd, &N, &C};
    launch(k, G, 1, blk, smem, a1);
    check_dev(1, dd, want, nc, 1e-3 * rms(want, nc), 1e-2, NULL, 0.0,
              "rmsnorm%s bwd, row groups of %d x %d: dinp + dres in place (N=%d, C=%d)",
              onep ? " (1 + w)" : "", R, tpr, N, C);
    check_dev(0, ddw, dw_ref, (size_t)C, 1e-4 * rms(dw_ref, (size_t)C), 1e-4, NULL, 0.0,
              "rmsnorm%s bwd, row groups: dw (+=, C=%d)", onep ? " (1 + w)" : "", C);
    CUdeviceptr dpart = dalloc((size_t)G * C * 4);
    float *runs[2];
    for (int r = 0; r < 2; r++) {
        CU_CHECK(cuMemcpyHtoD(ddw, dw0, (size_t)C * 4));
        poison(dpart, (size_t)G * C * 4), poison(ddinp, nc * 2);
        void *a2[] = {&ddinp, &dpart, &dg, &dx, &dwt, &drs, &dr0, &N, &C};
        launch(kp, G, 1, blk, smem, a2);
        void *a3[] = {&ddw, &dpart, (void *)&G, &C};
        launch("hzk_colsum_f32", (unsigned)(C + 255) / 256, 1, 256, 0, a3);
        runs[r] = down_f32(ddw, (size_t)C);
    }
    check_dev(1, ddinp, dinp_ref, nc, 1e-3 * rms(dinp_ref, nc), 1e-2, NULL, 0.0,
              "rmsnorm%s bwd part, row groups: dinp (C=%d)", onep ? " (1 + w)" : "", C);
    check_reruns(runs, dw_ref, (size_t)C, 1e-4 * rms(dw_ref, (size_t)C), 1e-4, NULL, 0.0,
                 "rmsnorm%s bwd part, row groups: dw (C=%d)", onep ? " (1 + w)" : "", C);
    free(x), free(w), free(g), free(gres), free(rstd), free(dw0), free(dinp_ref), free(dw_ref);
    free(want);
    cuMemFree(dg), cuMemFree(dx), cuMemFree(dwt), cuMemFree(drs), cuMemFree(ddw), cuMemFree(dd);
    cuMemFree(ddinp), cuMemFree(dpart);
}

/* The backward's two launch shapes timed at a model's size (not a test): a row a block
 * (block 256, grid min(N, 8 x SMs)) and the row groups (the trainer's launch), with dres,
 * atomics into dw, 20 calls each after a warm-up; GB/s by the bytes each reads and writes. */
void bench_rmsnorm_backward(int N, int C) {
    const size_t nc = (size_t)N * C;
    CUdevice dev;
    int sms = 0;
    CU_CHECK(cuCtxGetDevice(&dev));
    CU_CHECK(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
    float *x = rand_bf(nc, -2, 2), *w = rand_bf((size_t)C, 0.5f, 1.5f), *rs = hmalloc((size_t)N);
    for (int n = 0; n < N; n++) rs[n] = 1.0f;
    CUdeviceptr dg = up_bf(x, nc), dx = up_bf(x, nc), dwt = up_bf(w, (size_t)C),
                drs = up_f32(rs, (size_t)N), ddw = dalloc((size_t)C * 4), dd = up_bf(x, nc),
                ddinp = dalloc(nc * 2);
    const int tpr = (C / 8 + 31) / 32 * 32, R = 1024 / tpr;
    const unsigned grid[2] = {(unsigned)(N < 8 * sms ? N : 8 * sms), (unsigned)sms};
    const unsigned blk[2] = {256, (unsigned)(R * tpr)}, smem[2] = {(unsigned)C * 4, (unsigned)(R * C * 4)};
    const char *name[2] = {"a row a block", "row groups"};
    CUevent e0, e1;
    CU_CHECK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e1, CU_EVENT_DEFAULT));
    for (int v = 0; v < 2; v++) {
        void *a[] = {&ddinp, &ddw, &dg, &dx, &dwt, &drs, &dd, &N, &C};
        launch("hzk_rmsnorm_backward", grid[v], 1, blk[v], smem[v], a);
        CU_CHECK(cuEventRecord(e0, NULL));
        for (int r = 0; r < 20; r++) launch_async("hzk_rmsnorm_backward", grid[v], 1, blk[v], smem[v], a);
        CU_CHECK(cuEventRecord(e1, NULL));
        CU_CHECK(cuEventSynchronize(e1));
        float ms = 0.0f;
        CU_CHECK(cuEventElapsedTime(&ms, e0, e1));
        const double bytes = 8.0 * (double)nc + 4.0 * N + 2.0 * C + 8.0 * grid[v] * C;
        printf("bench   rmsnorm bwd N=%d C=%d, %s (grid %u, block %u): %.3f ms, %.0f GB/s\n", N, C,
               name[v], grid[v], blk[v], ms / 20, bytes / (ms / 20 * 1e-3) / 1e9);
    }
    cuEventDestroy(e0), cuEventDestroy(e1);
    free(x), free(w), free(rs);
    cuMemFree(dg), cuMemFree(dx), cuMemFree(dwt), cuMemFree(drs), cuMemFree(ddw), cuMemFree(dd);
    cuMemFree(ddinp);
}
