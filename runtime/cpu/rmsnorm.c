/* runtime/cpu/rmsnorm.c - RMSNorm forward and backward in fp32, as Hugging Face's
 * LlamaRMSNorm: out = w * (x * rsqrt(mean(x^2) + eps)), or with a weight offset
 * Gemma3RMSNorm: out = (1 + w) * (x * rsqrt(...)); offset 0 is the Llama form bit for bit.
 * Row sums are accumulated in double so the reference is at least as accurate as torch's
 * pairwise float reduction. */
#include "ops.h"

#include <math.h>

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int64_t N,
                     int64_t C, float eps) {
    rmsnorm_offset_forward(out, rstd, inp, w, N, C, eps, 0.0f);
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                      const float *w, const float *rstd, int64_t N, int64_t C) {
    rmsnorm_offset_backward(dinp, dw, dout, inp, w, rstd, N, C, 0.0f);
}

void rmsnorm_offset_forward(float *out, float *rstd, const float *inp, const float *w, int64_t N,
                            int64_t C, float eps, float offset) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *o = out + n * C;
        double ss = 0.0;
        for (int64_t c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = 1.0f / sqrtf((float)(ss / (double)C) + eps);
        for (int64_t c = 0; c < C; c++) o[c] = (offset + w[c]) * (x[c] * r);
        rstd[n] = r;
    }
}

/* With r = rstd[n] and g = (offset + w) * dout:
 *   dx = r * g - x * r^3 * mean(g * x),   dw += dout * x * r (summed over rows). */
void rmsnorm_offset_backward(float *dinp, float *dw, const float *dout, const float *inp,
                             const float *w, const float *rstd, int64_t N, int64_t C,
                             float offset) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *d = dout + n * C;
        float *dx = dinp + n * C;
        float r = rstd[n];
        double gx = 0.0;
        for (int64_t c = 0; c < C; c++) gx += (double)((offset + w[c]) * d[c]) * x[c];
        float k = (float)(gx / (double)C) * r * r * r;
        for (int64_t c = 0; c < C; c++) dx[c] = r * ((offset + w[c]) * d[c]) - x[c] * k;
    }
    /* dw is shared by all rows: serial over rows, vectorised over columns. */
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *d = dout + n * C;
        float r = rstd[n];
        for (int64_t c = 0; c < C; c++) dw[c] += d[c] * (x[c] * r);
    }
}
