/* tests/gpu/ktest_wgmma.c - util.cu's wgmma primitives (descriptors of 128-byte swizzled
 * tiles, products from shared memory and from registers) in the two shapes of an attention
 * tile at head_dim 128, through tests/gpu/wgmma_check.cu's kernels, against runtime/cpu's
 * matmul of the same bf16 values (forward: a b^T; backward_x: p v). A layout error moves whole rows or columns, far beyond fp32
 * rounding, so the tolerance is tight. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ktest.h"

/* Largest |got - want| over the tolerance check_dev would apply (> 1: it would fail). */
static double worst_of(CUdeviceptr d, const float *want, size_t n, double atol, double rtol) {
    float *got = down_f32(d, n);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]) / (atol + rtol * fabs((double)want[i]));
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
    free(got);
    return worst;
}

void test_wgmma(void) {
    if (!ktest_wgmma()) {
        printf("skip    wgmma primitives: the GPU is not sm_90 (the module was not compiled for sm_90a)\n");
        return;
    }
    /* S = Q K^T: 64 queries x 128 keys, head_dim 128, both operands from shared memory */
    float *a = rand_bf(64 * 128, -1, 1), *b = rand_bf(128 * 128, -1, 1), *want = hmalloc(64 * 128);
    matmul_forward(want, a, b, NULL, 64, 128, 128); /* (64, 128) = a (64, 128) b^T */
    CUdeviceptr da = up_bf(a, 64 * 128), db = up_bf(b, 128 * 128), dd = dalloc(64 * 128 * 4);
    void *a1[] = {&dd, &da, &db};
    launch("hzt_wgmma_ss", 1, 1, 128, 2 * 8192 + 2 * 16384 + 1024, a1);
    double atol = 1e-4 * rms(want, 64 * 128), rtol = 1e-4;
    check_dev(0, dd, want, 64 * 128, atol, rtol, NULL, 0.0,
              "wgmma m64n128k16, A and B K-major in shared memory (S = Q K^T, 64 x 128 keys, HD 128)");

    /* O = P V: 64 queries x 64 keys, head_dim 128, P from registers, V MN-major */
    float *p = rand_bf(64 * 64, 0, 1), *v = rand_bf(64 * 128, -1, 1), *want2 = hmalloc(64 * 128);
    matmul_backward_x(want2, p, v, 64, 128, 64); /* (64, 128) = p (64, 64) v (64, 128) */
    CUdeviceptr dp = up_bf(p, 64 * 64), dv = up_bf(v, 64 * 128);
    poison(dd, 64 * 128 * 4);
    unsigned lbo = 8192, sbo = 1024;
    void *a2[] = {&dd, &dp, &dv, &lbo, &sbo};
    launch("hzt_wgmma_rs", 1, 1, 128, 16384 + 1024, a2);
    atol = 1e-4 * rms(want2, 64 * 128);
    double worst = worst_of(dd, want2, 64 * 128, atol, rtol);
    check_dev(0, dd, want2, 64 * 128, atol, rtol, NULL, 0.0,
              "wgmma m64n128k16, A from registers, B MN-major in shared memory (O = P V, 64 keys, "
              "HD 128; LBO %u, SBO %u)", lbo, sbo);
    if (worst > 1.0) { /* which of the descriptor's two offsets is which, for the next reader */
        lbo = 1024, sbo = 8192;
        poison(dd, 64 * 128 * 4);
        launch("hzt_wgmma_rs", 1, 1, 128, 16384 + 1024, a2);
        double w2 = worst_of(dd, want2, 64 * 128, atol, rtol);
        printf("note    the same product with LBO %u and SBO %u: %s (worst %.3g of the tolerance)\n",
               lbo, sbo, w2 <= 1.0 ? "right" : "wrong too", w2);
    }
    free(a), free(b), free(want), free(p), free(v), free(want2);
    cuMemFree(da), cuMemFree(db), cuMemFree(dd), cuMemFree(dp), cuMemFree(dv);
}
