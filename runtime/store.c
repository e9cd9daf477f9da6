/* runtime/store.c - bf16 conversion, the split fp32 master (w, lo) and the host store.
 * Invariant: for every element, bits(master) = (w << 16) + lo exactly (mod 2^32), with w
 * the round-to-nearest-even bf16 of master (ties nudged by one ulp so lo fits int16). */
#include <stdlib.h>
#include <string.h>

#include "rt.h"

uint16_t hz_bf16_from_f32(float f)
{
    uint32_t u = hz_bits_inl(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    return hz_f32_bf16_inl(f);
}

float hz_f32_from_bf16(uint16_t b) { return hz_bf16_f32_inl(b); }

void hz_master_split(float master, uint16_t *w, int16_t *lo) { hz_split_inl(master, w, lo); }

float hz_master_join(uint16_t w, int16_t lo) { return hz_join_inl(w, lo); }

float hz_store_master(const hz_store *s, int64_t i) { return hz_master_join(s->w[i], s->lo[i]); }

float hz_store_grad(const hz_store *s, int64_t i)
{
    return s->grad_bf16 ? hz_f32_from_bf16(((const uint16_t *)s->g)[i]) : ((const float *)s->g)[i];
}

void hz_plan_one_unit(hz_plan *q, hz_unit *one, const hz_plan *p, int64_t n)
{
    if (p) *q = *p;
    else memset(q, 0, sizeof *q);
    memset(one, 0, sizeof *one);
    one->padded_n = n;
    q->host_store_n = n;
    q->units = one;
    q->unit_n = 1;
    q->resident_n = 0;
    q->optimizer_state = HZ_OPTSTATE_FP32;
}
