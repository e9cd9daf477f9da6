/* tests/gpu/ktest_embedding.c - embedding.cu: the lookup, the scatter-add backward and its
 * ordered (deterministic) form against runtime/cpu/embedding.c. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

/* ---- embedding.cu ------------------------------------------------------------------------ */

void test_embedding(int N, int C, int V) {
    float *wte = rand_bf((size_t)V * C, -1, 1);
    int32_t *tok = malloc((size_t)N * 4);
    for (int i = 0; i < N; i++) tok[i] = irand(V);
    float *out_ref = hmalloc((size_t)N * C);
    embedding_forward(out_ref, tok, wte, N, C);
    CUdeviceptr dwte = up_bf(wte, (size_t)V * C), dtok = up_i32(tok, (size_t)N), dout = dalloc((size_t)N * C * 2);
    void *a1[] = {&dout, &dtok, &dwte, &N, &C};
    launch("hzk_embedding_forward", blocks_for((long)N * C / 8 + 1, 256), 1, 256, 0, a1);
    check_dev(1, dout, out_ref, (size_t)N * C, 0.0, 0.0, NULL, 0.0,
              "embedding fwd out (C=%d)", C);

    float *g = rand_bf((size_t)N * C, -1, 1), *dw0 = hmalloc((size_t)V * C);
    for (long i = 0; i < (long)V * C; i++) dw0[i] = frand();
    float *dw_ref = copy_of(dw0, (size_t)V * C);
    embedding_backward(dw_ref, g, tok, N, C);
    CUdeviceptr dg = up_bf(g, (size_t)N * C), ddw = up_f32(dw0, (size_t)V * C);
    void *a2[] = {&ddw, &dg, &dtok, &N, &C};
    launch("hzk_embedding_backward", blocks_for((long)N * C / 2 + 1, 256), 1, 256, 0, a2);
    check_dev(0, ddw, dw_ref, (size_t)V * C, 1e-5, 1e-5, NULL, 0.0,
              "embedding bwd dwte (C=%d)", C);
    float *runs[2];
    for (int r = 0; r < 2; r++) { /* the ordered (deterministic) kernel */
        CU_CHECK(cuMemcpyHtoD(ddw, dw0, (size_t)V * C * 4));
        const int threads = C % 2 == 0 ? C / 2 : C;
        void *a3[] = {&ddw, &dg, &dtok, &N, &C, &V};
        launch("hzk_embedding_backward_ordered", (unsigned)(threads + 127) / 128, V < 32 ? V : 32, 128, 0, a3);
        runs[r] = down_f32(ddw, (size_t)V * C);
    }
    check_reruns(runs, dw_ref, (size_t)V * C, 1e-5, 1e-5, NULL, 0.0, "embedding bwd ordered dwte (C=%d)", C);
    free(wte), free(tok), free(out_ref), free(g), free(dw0), free(dw_ref);
    cuMemFree(dwte), cuMemFree(dtok), cuMemFree(dout), cuMemFree(dg), cuMemFree(ddw);
}
