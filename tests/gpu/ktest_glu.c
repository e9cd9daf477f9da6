/* tests/gpu/ktest_glu.c - swiglu.cu and geglu.cu: the gated MLP activations, forward and
 * backward, against runtime/cpu/swiglu.c and geglu.c. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

/* One gated activation h = act(gate) * up: its cpu forward and backward, and the name OP of
 * its kernels (hzk_OP_forward, hzk_OP_backward) and checks. */
typedef struct glu_op {
    const char *op;
    void (*forward)(float *h, const float *gate, const float *up, int64_t n);
    void (*backward)(float *dgate, float *dup, const float *dh, const float *gate,
                     const float *up, int64_t n);
} glu_op;

/* The kernels read and write the fused (N, 2F) row [gate | up] and its gradient. */
static void test_glu(const glu_op *g_op, long N, int F) {
    char kname[64];
    const size_t nf = (size_t)N * F;
    float *gu = rand_bf(nf * 2, -4, 4), *gate = hmalloc(nf), *up = hmalloc(nf);
    for (long n = 0; n < N; n++)
        for (int j = 0; j < F; j++) {
            gate[n * F + j] = gu[n * 2 * F + j];
            up[n * F + j] = gu[n * 2 * F + F + j];
        }
    float *h_ref = hmalloc(nf);
    g_op->forward(h_ref, gate, up, (int64_t)nf);
    CUdeviceptr dgu = up_bf(gu, nf * 2), dh = dalloc(nf * 2);
    void *a1[] = {&dh, &dgu, &N, &F};
    snprintf(kname, sizeof kname, "hzk_%s_forward", g_op->op);
    launch(kname, blocks_for((long)nf / 8 + 1, 256), 1, 256, 0, a1);
    check_dev(1, dh, h_ref, nf, 1e-3 * rms(h_ref, nf), 1e-2, NULL, 0.0,
              "%s fwd h (F=%d)", g_op->op, F);

    float *g = rand_bf(nf, -1, 1), *dgate = hmalloc(nf), *dup = hmalloc(nf), *want = hmalloc(nf * 2);
    g_op->backward(dgate, dup, g, gate, up, (int64_t)nf);
    for (long n = 0; n < N; n++)
        for (int j = 0; j < F; j++) {
            want[n * 2 * F + j] = dgate[n * F + j];
            want[n * 2 * F + F + j] = dup[n * F + j];
        }
    CUdeviceptr dg = up_bf(g, nf), ddgu = dalloc(nf * 4);
    void *a2[] = {&ddgu, &dg, &dgu, &N, &F};
    snprintf(kname, sizeof kname, "hzk_%s_backward", g_op->op);
    launch(kname, blocks_for((long)nf / 8 + 1, 256), 1, 256, 0, a2);
    check_dev(1, ddgu, want, nf * 2, 1e-3 * rms(want, nf * 2), 1e-2, NULL, 0.0,
              "%s bwd dgu (F=%d)", g_op->op, F);
    free(gu), free(gate), free(up), free(h_ref), free(g), free(dgate), free(dup), free(want);
    cuMemFree(dgu), cuMemFree(dh), cuMemFree(dg), cuMemFree(ddgu);
}

void test_swiglu(long N, int F) {
    static const glu_op swiglu = {"swiglu", swiglu_forward, swiglu_backward};
    test_glu(&swiglu, N, F);
}

/* Gemma's GeGLU */
void test_geglu(long N, int F) {
    static const glu_op geglu = {"geglu", geglu_forward, geglu_backward};
    test_glu(&geglu, N, F);
}
