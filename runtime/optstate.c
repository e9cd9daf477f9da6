/* runtime/optstate.c - the compact optimizer-state codecs: mode names and sizes, the int8
 * dynamic code maps and the blockwise reference quantiser, the stochastic-rounding hash and
 * bf16 rounding, and the state's memory. The AdamW loops that use them are optstate_adamw.c. */
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "optstate.h"
#include "rt.h"


const char *hz_optstate_name(int mode)
{
    return mode >= 0 && mode < HZ_OPTSTATE_MODE_N ? hz_optstate_names[mode] : NULL;
}

int hz_optstate_parse(const char *name)
{
    for (int k = 0; k < HZ_OPTSTATE_MODE_N; k++)
        if (strcmp(name, hz_optstate_names[k]) == 0) return k;
    return -1;
}

int64_t hz_optstate_bytes(int mode, int64_t n)
{
    switch (mode) {
    case HZ_OPTSTATE_FP32: return 8 * n;
    case HZ_OPTSTATE_BF16: return 4 * n;
    case HZ_OPTSTATE_INT8: return 2 * n + 8 * ((n + HZ_OPTSTATE_BLOCK - 1) / HZ_OPTSTATE_BLOCK);
    default: return -1;
    }
}

double hz_optstate_bytes_per_param(int mode)
{
    switch (mode) {
    case HZ_OPTSTATE_FP32: return 8.0;
    case HZ_OPTSTATE_BF16: return 4.0;
    case HZ_OPTSTATE_INT8: return 2.0 + 8.0 / HZ_OPTSTATE_BLOCK;
    default: return 0.0;
    }
}

/* ---- the code maps ---- */

/* Magnitude of code r of a BITS-bit map (optstate.h): one fp32 division of exact integers. */
static float map_magnitude(int r, int bits)
{
    if (r == 0) return 0.0f;
    int h = 0;
    while ((r >> (h + 1)) != 0) h++;
    int z = bits - 1 - h, q = r - (1 << h);
    float den = (float)(1 << h) * 10.0f;
    for (int k = 0; k < z; k++) den *= 10.0f; /* 10^(z+1) 2^h = 5^(z+1) 2^(z+1+h): exact */
    return (float)((1 << h) + 9 * (q + 1)) / den;
}

/* The smallest fp32 at or above the exact midpoint of A and B (their double sum is exact). */
static float midpoint_up(float a, float b)
{
    double m = ((double)a + (double)b) * 0.5;
    float f = (float)m;
    return (double)f < m ? nextafterf(f, INFINITY) : f;
}

void hz_qmap_build(hz_qmap *q)
{
    float smag[128], umag[256];
    for (int r = 0; r < 128; r++) smag[r] = map_magnitude(r, 7);
    for (int r = 0; r < 256; r++) umag[r] = map_magnitude(r, 8);
    for (int j = 0; j < 128; j++) {
        q->sval[128 + j] = smag[j];
        q->sval[128 - j] = -smag[j];
    }
    q->sval[0] = -smag[127];
    memcpy(q->uval, umag, sizeof umag);
    q->smid[0] = 0.0f;
    q->umid[0] = 0.0f;
    for (int j = 1; j < 128; j++) q->smid[j] = midpoint_up(smag[j - 1], smag[j]);
    for (int r = 1; r < 256; r++) q->umid[r] = midpoint_up(umag[r - 1], umag[r]);
}

static hz_qmap the_map;
static pthread_once_t the_map_once = PTHREAD_ONCE_INIT;
static void build_the_map(void) { hz_qmap_build(&the_map); }

const hz_qmap *hz_qmap_get(void)
{
    pthread_once(&the_map_once, build_the_map);
    return &the_map;
}

/* ---- the fast encoders' bucket table (optstate.h) ---- */

static uint32_t spack[HZ_Q8_BUCKETS], upack[HZ_Q8_BUCKETS];
static pthread_once_t the_buckets_once = PTHREAD_ONCE_INIT;

static void pack(uint32_t *out, const float *mid, int top)
{
    const uint32_t first = (uint32_t)(127 - HZ_Q8_EXP_LO) << 23;
    assert(hz_bits_inl(mid[1]) > first); /* no midpoint in or below bucket 0 */
    int r = 0;
    for (int b = 0; b < HZ_Q8_BUCKETS; b++) {
        uint32_t lo = first + ((uint32_t)b << 16);
        while (r < top && hz_bits_inl(mid[r + 1]) <= lo) r++; /* mids at or below lo */
        uint32_t thr = 0x10000u;
        if (r < top && (hz_bits_inl(mid[r + 1]) >> 16) == (lo >> 16)) {
            thr = hz_bits_inl(mid[r + 1]) & 0xffffu;
            assert(r + 1 == top || (hz_bits_inl(mid[r + 2]) >> 16) != (lo >> 16)); /* one */
        }
        out[b] = (uint32_t)r | thr << 8;
    }
}

static void build_buckets(void)
{
    const hz_qmap *q = hz_qmap_get();
    pack(spack, q->smid, 127);
    pack(upack, q->umid, 255);
}

const uint32_t *hz_q8_buckets(int is_signed)
{
    pthread_once(&the_buckets_once, build_buckets);
    return is_signed ? spack : upack;
}

/* ---- the reference quantiser ---- */

/* The magnitude code of A in [0, 1]: how many midpoints MID[1..top] lie at or below A. */
static int encode_magnitude_ref(float a, const float *mid, int top)
{
    int r = 0;
    for (int j = 1; j <= top; j++) r += a >= mid[j];
    return r;
}

void hz_q8_quantize_block_ref(const float *x, int n, int is_signed, uint8_t *codes,
                              float *absmax)
{
    const hz_qmap *map = hz_qmap_get();
    float amax = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]);
    *absmax = amax;
    for (int i = 0; i < n; i++) {
        float a = amax > 0.0f ? fabsf(x[i]) / amax : 0.0f;
        if (is_signed) {
            int r = encode_magnitude_ref(a, map->smid, 127);
            codes[i] = (uint8_t)(x[i] < 0.0f ? 256 - r : r); /* the int8 -r */
        } else {
            int r = encode_magnitude_ref(a, map->umid, 255);
            if (r == 0 && x[i] > 0.0f) r = 1;
            codes[i] = (uint8_t)r;
        }
    }
}

void hz_q8_dequantize_block_ref(const uint8_t *codes, int n, int is_signed, float absmax,
                                float *x)
{
    const hz_qmap *map = hz_qmap_get();
    for (int i = 0; i < n; i++)
        x[i] = (is_signed ? map->sval[(codes[i] + 128) & 255] : map->uval[codes[i]]) * absmax;
}

/* ---- stochastic rounding ---- */

uint32_t hz_optstate_hash(uint64_t seed, int64_t t, int64_t i)
{
    return hz_sr_mix((uint32_t)i, hz_sr_key(seed, t, (uint32_t)((uint64_t)i >> 32)));
}

uint16_t hz_bf16_sr_ref(float x, uint32_t r16)
{
    uint32_t u = hz_bits_inl(x);
    uint32_t r = (u + r16) >> 16;
    int finite = (u & 0x7f800000u) != 0x7f800000u;
    if (finite && (r & 0x7f80u) == 0x7f80u) return (uint16_t)(u >> 16); /* would be inf */
    return (uint16_t)r;
}

/* ---- memory ---- */

/* N bytes of zeroed memory aligned for the vector loops, or NULL. */
static void *zalloc(int64_t n)
{
    size_t bytes = ((size_t)(n > 0 ? n : 1) + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

int hz_qstate_alloc(hz_qstate *q, int mode, int64_t n, uint64_t seed)
{
    memset(q, 0, sizeof *q);
    int64_t elem_bytes = mode == HZ_OPTSTATE_FP32 ? 4 : mode == HZ_OPTSTATE_BF16 ? 2 : 1;
    if (mode < 0 || mode >= HZ_OPTSTATE_MODE_N || n < 0) return -1;
    q->mode = mode;
    q->n = n;
    q->seed = seed;
    q->m = zalloc(n * elem_bytes);
    q->v = zalloc(n * elem_bytes);
    int ok = q->m && q->v;
    if (mode == HZ_OPTSTATE_INT8) {
        int64_t blocks = (n + HZ_OPTSTATE_BLOCK - 1) / HZ_OPTSTATE_BLOCK;
        q->m_absmax = zalloc(blocks * 4);
        q->v_absmax = zalloc(blocks * 4);
        ok = ok && q->m_absmax && q->v_absmax;
    }
    if (!ok) hz_qstate_free(q);
    return ok ? 0 : -1;
}

void hz_qstate_free(hz_qstate *q)
{
    free(q->m);
    free(q->v);
    free(q->m_absmax);
    free(q->v_absmax);
    q->m = q->v = NULL;
    q->m_absmax = q->v_absmax = NULL;
}
