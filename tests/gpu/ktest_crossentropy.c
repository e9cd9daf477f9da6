/* tests/gpu/ktest_crossentropy.c - crossentropy.cu: the fused loss and dlogits (also in
 * place) against runtime/cpu/crossentropy.c. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

/* ---- crossentropy.cu --------------------------------------------------------------------- */

void test_crossentropy(int N, int V) {
    const size_t nv = (size_t)N * V;
    float *logits = rand_bf(nv, -4, 4);
    int32_t *tgt = malloc((size_t)N * 4);
    int trained = 0;
    for (int i = 0; i < N; i++) {
        tgt[i] = i % 7 == 3 ? -100 : irand(V);
        trained += tgt[i] != -100;
    }
    float dscale = 1.0f / (float)trained;
    float *dl_ref = hmalloc(nv), *loss_ref = hmalloc((size_t)N);
    crossentropy_forward_backward(dl_ref, loss_ref, logits, tgt, N, V, dscale);
    CUdeviceptr dlog = up_bf(logits, nv), dtgt = up_i32(tgt, (size_t)N), ddl = dalloc(nv * 2), dloss = dalloc((size_t)N * 4);
    for (int inplace = 0; inplace < 2; inplace++) {
        CUdeviceptr dst = inplace ? dlog : ddl;
        void *a1[] = {&dst, &dloss, &dlog, &dtgt, &N, &V, &dscale};
        launch("hzk_crossentropy_forward_backward", (unsigned)N, 1, V >= 4096 ? 1024 : 128, 0, a1);
        check_dev(0, dloss, loss_ref, (size_t)N, 1e-4, 1e-5, NULL, 0.0,
                  "crossentropy losses (V=%d%s)", V, inplace ? ", in place" : "");
        check_dev(1, dst, dl_ref, nv, 1e-3 * rms(dl_ref, nv), 1e-2, NULL, 0.0,
                  "crossentropy dlogits (V=%d%s)", V, inplace ? ", in place" : "");
        poison(dloss, (size_t)N * 4);
    }
    free(logits), free(tgt), free(dl_ref), free(loss_ref);
    cuMemFree(dlog), cuMemFree(dtgt), cuMemFree(ddl), cuMemFree(dloss);
}
