/* runtime/cpu/rope.c - rotary position embedding as Hugging Face transformers: inv_freq
 * (default and llama3 rope types), and the half rotation of each head (x[i] pairs with
 * x[i + HD/2], not interleaved pairs) with its inverse for the backward pass. */
#include "ops.h"

#include "../hz.h"

#include <assert.h>
#include <math.h>

#define ROPE_PI 3.14159265358979323846 /* math.pi; M_PI is not ISO C */

/* Mirrors transformers' float32 computation step by step:
 *   default: inv = 1.0 / (base ** (arange(0, HD, 2).float() / HD))   all float32 tensors;
 *   llama3 (_compute_llama3_parameters): wavelen = 2*pi / inv, then the three bands.
 * The exponent and every tensor op are float; the power is taken in double and rounded to
 * float, i.e. a correctly rounded powf (torch's vectorised pow may differ by 1 ulp).
 * Python scalars (2*pi, original_max_pos, the factors) enter torch ops as float32, and
 * `scalar / tensor` is reciprocal(tensor) * scalar there, so it is written that way. */
void rope_inv_freq(float *inv_freq, int HD, const hz_rope *rope) {
    assert(HD > 0 && HD % 2 == 0);
    for (int i = 0; i < HD / 2; i++) {
        float e = (float)(2 * i) / (float)HD;
        float p = (float)pow((double)rope->theta, (double)e);
        inv_freq[i] = 1.0f / p;
    }
    if (!rope->llama3) return;
    float factor = rope->factor, lo = rope->low_freq_factor, hi = rope->high_freq_factor;
    double old_len = (double)rope->original_max_pos;
    float low_freq_wavelen = (float)(old_len / lo);  /* python float, compared as float32 */
    float high_freq_wavelen = (float)(old_len / hi);
    float two_pi = (float)(2.0 * ROPE_PI);
    for (int i = 0; i < HD / 2; i++) {
        float inv = inv_freq[i];
        float wavelen = (1.0f / inv) * two_pi;
        if (wavelen > low_freq_wavelen) {
            inv_freq[i] = inv / factor;
        } else if (!(wavelen < high_freq_wavelen)) {
            float smooth = ((1.0f / wavelen) * (float)old_len - lo) / (float)((double)hi - lo);
            inv_freq[i] = (1.0f - smooth) * inv / factor + smooth * inv;
        }
    }
}

void rope_inv_freq_dims(float *inv_freq, const hz_dims *d) {
    hz_rope rope = {d->rope_theta, d->rope_llama3, d->rope_factor, d->rope_low_freq_factor,
                    d->rope_high_freq_factor, d->rope_original_max_pos};
    rope_inv_freq(inv_freq, (int)d->HD, &rope);
}

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
