/* runtime/store.c - bf16 conversion, the split fp32 master (w, lo) and the host store.
 * Invariant: for every element, bits(master) = (w << 16) + lo exactly (mod 2^32), with w
 * the round-to-nearest-even bf16 of master (ties nudged by one ulp so lo fits int16). */
#include <math.h>
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

/* splitmix64 keyed by (seed, element index): the init does not depend on thread count */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static float normal_at(uint64_t seed, int64_t i)
{
    uint64_t a = mix64(seed ^ mix64((uint64_t)i * 2)), b = mix64(seed ^ mix64((uint64_t)i * 2 + 1));
    double u1 = ((a >> 11) + 1.0) / 9007199254740993.0, u2 = (b >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

typedef struct init_job {
    const hz_plan *p;
    uint64_t seed;
} init_job;

/* The tensors overlapping elements [first, first + n), each element from its own index. */
static int init_window(void *arg, int64_t first, int64_t n, void *const *ptr)
{
    const init_job *j = arg;
    const hz_plan *p = j->p;
    uint16_t *w = ptr[HZ_ARR_W];
    int16_t *lo = ptr[HZ_ARR_LO];
    for (int t = 0; t < p->tensor_n; t++) {
        const hz_tensor *x = &p->tensors[t];
        if (x->kind == HZ_LM_HEAD && p->dims.tied) continue; /* the embedding's store */
        int64_t a = x->host_n > first ? x->host_n : first;
        int64_t b = x->host_n + x->rows * x->cols;
        if (b > first + n) b = first + n;
        if (a >= b) continue;
        int is_norm = x->kind == HZ_ATTN_NORM || x->kind == HZ_MLP_NORM || x->kind == HZ_FINAL_NORM;
        int is_bias = x->kind == HZ_BQKV;
        uint64_t seed = j->seed;
#pragma omp parallel for schedule(static)
        for (int64_t i = a; i < b; i++) {
            float v = is_norm ? 1.0f : is_bias ? 0.0f : 0.02f * normal_at(seed, i);
            hz_master_split(v, &w[i - first], &lo[i - first]);
        }
    }
    return 0;
}

void hz_store_init(hz_store *s, const hz_plan *p, uint64_t seed)
{
    init_job j = {p, seed};
    hz_store_pass(s, HZ_ARR_BIT(HZ_ARR_W) | HZ_ARR_BIT(HZ_ARR_LO), 1, init_window, &j);
}
