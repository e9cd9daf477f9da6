/* runtime/cpu/crossentropy.c - fused softmax cross-entropy forward and backward over
 * logits (N, V). Max-subtracted and summed in double, so huge logits neither overflow
 * nor lose the small probabilities; rows whose target is -100 are ignored (loss 0). */
#include "ops.h"

#include <assert.h>
#include <math.h>

#define CE_IGNORE (-100) /* Hugging Face's ignore_index */

/* dlogits may alias logits: rows are independent, the max and the target logit are read
 * before the row is written, and the exp pass reads x[v] just before it writes dx[v]. */
double crossentropy_forward_backward(float *dlogits, float *losses, const float *logits,
                                     const int32_t *targets, int64_t N, int64_t V, float dscale) {
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t n = 0; n < N; n++) {
        const float *x = logits + n * V;
        float *dx = dlogits + n * V;
        int32_t t = targets[n];
        if (t == CE_IGNORE) {
            losses[n] = 0.0f;
            for (int64_t v = 0; v < V; v++) dx[v] = 0.0f;
            continue;
        }
        assert(t >= 0 && t < V); /* the data loader validates targets: this is our bug */
        float mx = -INFINITY;
        for (int64_t v = 0; v < V; v++) mx = x[v] > mx ? x[v] : mx;
        float xt = x[t];
        double sum = 0.0;
        for (int64_t v = 0; v < V; v++) { /* dx holds exp(x - max) until normalised */
            float e = expf(x[v] - mx);
            dx[v] = e;
            sum += e;
        }
        double loss = log(sum) + (double)mx - (double)xt;
        losses[n] = (float)loss;
        total += loss;
        float k = (float)(1.0 / sum) * dscale;
        double pt = dx[t] / sum;
        for (int64_t v = 0; v < V; v++) dx[v] *= k;
        dx[t] = (float)((pt - 1.0) * dscale);
    }
    return total;
}
