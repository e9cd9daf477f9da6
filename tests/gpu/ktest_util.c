/* tests/gpu/ktest_util.c - util.cu: conversions, add, sums of squares (atomic and in
 * order), colsum, fills and scale against host loops. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

/* ---- util.cu ----------------------------------------------------------------------------- */

void test_util(void) {
    const long n = 10007;
    float *x = hmalloc((size_t)n);
    for (long i = 0; i < n; i++) x[i] = 3.0f * frand();
    float *want = hmalloc((size_t)n);

    CUdeviceptr dx = up_f32(x, (size_t)n), dbf = dalloc((size_t)n * 2), df = dalloc((size_t)n * 4);
    void *a1[] = {&dbf, &dx, (void *)&n};
    launch("hzk_f32_to_bf16", blocks_for(n, 256), 1, 256, 0, a1);
    for (long i = 0; i < n; i++) want[i] = round_bf(x[i]);
    check_dev(1, dbf, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "f32_to_bf16");

    void *a2[] = {&df, &dbf, (void *)&n};
    launch("hzk_bf16_to_f32", blocks_for(n, 256), 1, 256, 0, a2);
    check_dev(0, df, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "bf16_to_f32");

    float *a = rand_bf((size_t)n, -2, 2), *b = rand_bf((size_t)n, -2, 2);
    CUdeviceptr da = up_bf(a, (size_t)n), db = up_bf(b, (size_t)n), dout = dalloc((size_t)n * 2);
    void *a3[] = {&dout, &da, &db, (void *)&n};
    launch("hzk_add_bf16", blocks_for(n, 256) / 4 + 1, 1, 256, 0, a3); /* grid-stride */
    for (long i = 0; i < n; i++) want[i] = round_bf(a[i] + b[i]);
    check_dev(1, dout, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "add_bf16");

    double acc0 = 1.5, acc = 0.0, ss = 1.5;
    for (long i = 0; i < n; i++) ss += (double)x[i] * x[i];
    CUdeviceptr dacc = dalloc(8);
    CU_CHECK(cuMemcpyHtoD(dacc, &acc0, 8));
    CUdeviceptr none = 0, dparts = dalloc(256 * 8);
    void *a4[] = {&dacc, &none, &dx, (void *)&n};
    launch("hzk_sumsq_f32", 7, 1, 256, 0, a4);
    CU_CHECK(cuMemcpyDtoH(&acc, dacc, 8));
    CHECK_CLOSE("sumsq_f32 (1.5 + sum x^2)", acc, ss, 0.0, 1e-12);
    double det[2];
    for (int r = 0; r < 2; r++) { /* the deterministic path: 256 block sums, added in order */
        CU_CHECK(cuMemcpyHtoD(dacc, &acc0, 8));
        CU_CHECK(cuMemsetD8(dparts, 0xFF, 256 * 8));
        void *a9[] = {&dacc, &dparts, &dx, (void *)&n};
        launch("hzk_sumsq_f32", 256, 1, 256, 0, a9);
        int G = 256;
        void *a10[] = {&dacc, &dparts, &G};
        launch("hzk_sum_f64", 1, 1, 1, 0, a10);
        CU_CHECK(cuMemcpyDtoH(&det[r], dacc, 8));
    }
    CHECK_CLOSE("sumsq_f32 block partials + sum_f64", det[0], ss, 0.0, 1e-12);
    CHECK(memcmp(&det[0], &det[1], 8) == 0, "sumsq_f32 block partials bit-identical on rerun");
    cuMemFree(dparts);

    /* colsum: dst += rows of part in order */
    const int G = 37, CC = 300;
    float *part = rand_bf((size_t)G * CC, -1, 1), *dst0 = rand_bf((size_t)CC, -1, 1);
    float *dst_ref = copy_of(dst0, (size_t)CC);
    for (int c = 0; c < CC; c++)
        for (int gg = 0; gg < G; gg++) dst_ref[c] += part[(size_t)gg * CC + c];
    CUdeviceptr dpart = up_f32(part, (size_t)G * CC), ddst = up_f32(dst0, (size_t)CC);
    void *a8[] = {&ddst, &dpart, (void *)&G, (void *)&CC};
    launch("hzk_colsum_f32", (CC + 255) / 256, 1, 256, 0, a8);
    float *cs = down_f32(ddst, (size_t)CC);
    compare("colsum_f32", cs, dst_ref, (size_t)CC, 0.0, 1e-6);
    free(cs), free(part), free(dst0), free(dst_ref);
    cuMemFree(dpart), cuMemFree(ddst);

    float v = 0.25f;
    void *a5[] = {&df, &v, (void *)&n};
    launch("hzk_fill_f32", 3, 1, 256, 0, a5);
    for (long i = 0; i < n; i++) want[i] = 0.25f;
    check_dev(0, df, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "fill_f32");
    float vb = -3.5f;
    void *a6[] = {&dbf, &vb, (void *)&n};
    launch("hzk_fill_bf16", 3, 1, 256, 0, a6);
    for (long i = 0; i < n; i++) want[i] = -3.5f;
    check_dev(1, dbf, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "fill_bf16");

    float s = 0.37f;
    void *a7[] = {&dx, &s, (void *)&n};
    launch("hzk_scale_f32", blocks_for(n, 256), 1, 256, 0, a7);
    for (long i = 0; i < n; i++) want[i] = x[i] * s;
    check_dev(0, dx, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "scale_f32");

    free(x), free(want), free(a), free(b);
    cuMemFree(dx), cuMemFree(dbf), cuMemFree(df), cuMemFree(da), cuMemFree(db), cuMemFree(dout), cuMemFree(dacc);
}
