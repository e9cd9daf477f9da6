/* runtime/cpu/geglu.c - the GeGLU gate of Gemma's MLP, h = gelu_tanh(gate) * up, with its
 * backward. Elementwise fp32; gelu_tanh(g) = g/2 (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))),
 * torch.nn.functional.gelu(approximate="tanh"), transformers' gelu_pytorch_tanh. */
#include "ops.h"

#include <math.h>

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_C 0.044715f

static float gelu_tanh(float g) { return 0.5f * g * (1.0f + tanhf(GELU_K * (g + GELU_C * g * g * g))); }

void geglu_forward(float *h, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) h[i] = gelu_tanh(gate[i]) * up[i];
}

/* d gelu_tanh(g)/dg = (1 + t)/2 + g/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 g^2), with
 * t = tanh(sqrt(2/pi) (g + 0.044715 g^3)). */
void geglu_backward(float *dgate, float *dup, const float *dh, const float *gate,
                    const float *up, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], t = tanhf(GELU_K * (g + GELU_C * g * g * g));
        float dg = 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * g * g);
        dgate[i] = dh[i] * up[i] * dg;
        dup[i] = dh[i] * (0.5f * g * (1.0f + t));
    }
}
