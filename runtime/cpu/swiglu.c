/* runtime/cpu/swiglu.c - the SwiGLU gate h = silu(gate) * up with its backward, and the
 * residual add. Elementwise fp32; silu(g) = g * sigmoid(g) as torch.nn.functional.silu. */
#include "ops.h"

#include <math.h>

static float sigmoidf(float g) { return 1.0f / (1.0f + expf(-g)); }

/* silu written g / (1 + exp(-g)) as torch's CPU kernel; exp overflow gives -0, not NaN. */
void swiglu_forward(float *h, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) h[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* d silu(g)/dg = s * (1 + g * (1 - s)) with s = sigmoid(g). */
void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate,
                     const float *up, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoidf(g);
        dgate[i] = dh[i] * up[i] * (s * (1.0f + g * (1.0f - s)));
        dup[i] = dh[i] * (g * s);
    }
}

/* out may alias a (and b): each element is read before it is written. */
void residual_forward(float *out, const float *a, const float *b, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
