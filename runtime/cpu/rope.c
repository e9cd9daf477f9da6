/* runtime/cpu/rope.c - rotary position embedding as Hugging Face transformers: the half
 * rotation of each head (x[i] pairs with x[i + HD/2], not interleaved pairs) with its inverse
 * for the backward pass. The inv_freq table both backends use is runtime/rope_table.c. */
#include "ops.h"

#include <assert.h>
#include <math.h>

/* Rotate every head of every token by angle pos * inv_freq[i]; sign = -1 rotates back.
 * The angle is a float product and cos/sin are float, as transformers computes
 * freqs = inv_freq @ position_ids and emb.cos() in float32. */
static void rope_rotate(float *x, const float *inv_freq, int64_t N, int64_t T, int64_t H,
                        int64_t HD, float sign) {
    assert(HD % 2 == 0 && T > 0);
    int64_t half = HD / 2;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float pos = (float)(n % T);
        float *row = x + n * H * HD;
        for (int64_t i = 0; i < half; i++) {
            float angle = pos * inv_freq[i];
            float c = cosf(angle), s = sign * sinf(angle);
            for (int64_t h = 0; h < H; h++) {
                float *xh = row + h * HD;
                float x1 = xh[i], x2 = xh[i + half];
                xh[i] = x1 * c - x2 * s;
                xh[i + half] = x2 * c + x1 * s;
            }
        }
    }
}

void rope_forward(float *x, const float *inv_freq, int64_t N, int64_t T, int64_t H, int64_t HD) {
    rope_rotate(x, inv_freq, N, T, H, HD, 1.0f);
}

/* The rotation is orthogonal, so its transpose (the rotation by -angle) maps dy to dx. */
void rope_backward(float *dx, const float *inv_freq, int64_t N, int64_t T, int64_t H, int64_t HD) {
    rope_rotate(dx, inv_freq, N, T, H, HD, -1.0f);
}
