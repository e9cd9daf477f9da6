/* runtime/rope_table.c - the RoPE inverse-frequency table as Hugging Face transformers
 * computes it (default, llama3 and linear rope types; Gemma 3's local table): host math
 * both backends need, computed once at start and read by the rope ops of either backend.
 * Contract in rt.h. */
#include <assert.h>
#include <math.h>

#include "rt.h"

#define ROPE_PI 3.14159265358979323846 /* math.pi; M_PI is not ISO C */

/* Mirrors transformers' float32 computation step by step:
 *   default: inv = 1.0 / (base ** (arange(0, HD, 2).float() / HD))   all float32 tensors;
 *   llama3 (_compute_llama3_parameters): wavelen = 2*pi / inv, then the three bands.
 * The exponent and every tensor op are float; the power is taken in double and rounded to
 * float, i.e. a correctly rounded powf (torch's vectorised pow may differ by 1 ulp).
 * Python scalars (2*pi, original_max_pos, the factors) enter torch ops as float32, and
 * `scalar / tensor` is reciprocal(tensor) * scalar there, so it is written that way. */
void hz_rope_inv_freq(float *inv_freq, int HD, const hz_rope *rope)
{
    assert(HD > 0 && HD % 2 == 0);
    for (int i = 0; i < HD / 2; i++) {
        float e = (float)(2 * i) / (float)HD;
        float p = (float)pow((double)rope->theta, (double)e);
        inv_freq[i] = 1.0f / p;
    }
    if (rope->linear > 0.0f) /* _compute_linear_scaling_rope_parameters: inv_freq /= factor */
        for (int i = 0; i < HD / 2; i++) inv_freq[i] /= rope->linear;
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

void hz_rope_inv_freq_dims(float *inv_freq, const hz_dims *d)
{
    hz_rope rope = {d->rope_theta, d->rope_llama3, d->rope_factor, d->rope_low_freq_factor,
                    d->rope_high_freq_factor, d->rope_original_max_pos, d->rope_linear};
    hz_rope_inv_freq(inv_freq, (int)d->HD, &rope);
}

void hz_rope_inv_freq_local(float *inv_freq, const hz_dims *d)
{
    hz_rope rope = {.theta = d->rope_local_theta};
    hz_rope_inv_freq(inv_freq, (int)d->HD, &rope);
}
