/* runtime/optstate_adamw.c - AdamW on the split fp32 master with compact moments
 * (optstate.h): the element-by-element reference, the vectorised loops of each mode (AVX-512,
 * AVX2 or plain x86-64, picked at run time) and their split over the thread pool. */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "optstate.h"
#include "rt.h"

#define BLOCK HZ_OPTSTATE_BLOCK

/* One element's AdamW in hz_adamw_range's order (no fused multiply-adds: -std=c11):
 * the scaled gradient G, old moments MO and VO and master P0 give the new moments and master. */
static inline __attribute__((always_inline)) float
adam_one(float g, float mo, float vo, float p0, const hz_adam_coef *k, float *mi, float *vi)
{
    *mi = k->beta1 * mo + (1.0f - k->beta1) * g;
    *vi = k->beta2 * vo + (1.0f - k->beta2) * g * g;
    float p = p0 * k->decay;
    p -= k->step * *mi / (sqrtf(*vi * k->rbc2) + k->eps);
    return p;
}

/* A moment stored in int8 mode: one that overflowed to +-inf is kept as +-FLT_MAX, so an
 * absmax is finite and no code reads back as NaN (0 * inf). */
static inline float clamp_finite(float x)
{
    uint32_t u = hz_bits_inl(x);
    uint32_t inf = 0u - (uint32_t)((u & 0x7fffffffu) == 0x7f800000u);
    return hz_float_inl((u & ~inf) | ((u - 1u) & inf)); /* +-inf - 1 ulp = +-FLT_MAX */
}

static inline int is_finite(float g) { return (hz_bits_inl(g) & 0x7f800000u) != 0x7f800000u; }

/* KEEP ? OLD : NEW for KEEP = 0 or ~0, on the bits: a float select written as a ternary keeps
 * the new value's arithmetic conditional (it may trap) and the loop unvectorised. */
static inline float keep_f(uint32_t keep, float old, float nw)
{
    return hz_float_inl((hz_bits_inl(old) & keep) | (hz_bits_inl(nw) & ~keep));
}

/* ---- the reference ---- */

static float grad_at(const void *grad, int grad_bf16, int64_t i)
{
    return grad_bf16 ? hz_bf16_f32_inl(((const uint16_t *)grad)[i]) : ((const float *)grad)[i];
}

/* fp32 and bf16 modes, one element at a time. */
static int64_t ref_elementwise(hz_qstate *q, uint16_t *w, int16_t *lo, const void *grad,
                               int grad_bf16, int64_t first, int64_t n, const hz_adam_coef *k,
                               int64_t t)
{
    int64_t bad = 0;
    for (int64_t i = first; i < first + n; i++) {
        float g = grad_at(grad, grad_bf16, i) * k->gscale;
        if (!is_finite(g)) {
            bad++;
            continue;
        }
        float mo, vo, mi, vi;
        if (q->mode == HZ_OPTSTATE_FP32) {
            mo = ((float *)q->m)[i];
            vo = ((float *)q->v)[i];
        } else {
            mo = hz_bf16_f32_inl(((uint16_t *)q->m)[i]);
            vo = hz_bf16_f32_inl(((uint16_t *)q->v)[i]);
        }
        float p = adam_one(g, mo, vo, hz_join_inl(w[i], lo[i]), k, &mi, &vi);
        if (q->mode == HZ_OPTSTATE_FP32) {
            ((float *)q->m)[i] = mi;
            ((float *)q->v)[i] = vi;
        } else {
            uint32_t h = hz_optstate_hash(q->seed, t, i);
            ((uint16_t *)q->m)[i] = hz_bf16_sr_ref(mi, h & 0xffffu);
            ((uint16_t *)q->v)[i] = hz_bf16_sr_ref(vi, h >> 16);
        }
        hz_split_inl(p, &w[i], &lo[i]);
    }
    return bad;
}

/* int8 mode, one block at a time through the reference quantiser. */
static int64_t ref_int8(hz_qstate *q, uint16_t *w, int16_t *lo, const void *grad, int grad_bf16,
                        int64_t first, int64_t n, const hz_adam_coef *k)
{
    int64_t bad = 0;
    uint8_t *mc = q->m, *vc = q->v;
    for (int64_t b0 = first; b0 < first + n; b0 += BLOCK) {
        int nb = (int)(first + n - b0 < BLOCK ? first + n - b0 : BLOCK), blk_bad = 0;
        int64_t blk = b0 / BLOCK;
        float mo[BLOCK], vo[BLOCK], mt[BLOCK], vt[BLOCK], pt[BLOCK];
        hz_q8_dequantize_block_ref(mc + b0, nb, 1, q->m_absmax[blk], mo);
        hz_q8_dequantize_block_ref(vc + b0, nb, 0, q->v_absmax[blk], vo);
        for (int j = 0; j < nb; j++) {
            float g = grad_at(grad, grad_bf16, b0 + j) * k->gscale;
            if (!is_finite(g)) {
                blk_bad++;
                continue;
            }
            pt[j] = adam_one(g, mo[j], vo[j], hz_join_inl(w[b0 + j], lo[b0 + j]), k, &mt[j],
                             &vt[j]);
            mt[j] = clamp_finite(mt[j]);
            vt[j] = clamp_finite(vt[j]);
        }
        bad += blk_bad;
        if (blk_bad) continue; /* the block keeps its master, codes and absmaxes */
        hz_q8_quantize_block_ref(mt, nb, 1, mc + b0, &q->m_absmax[blk]);
        hz_q8_quantize_block_ref(vt, nb, 0, vc + b0, &q->v_absmax[blk]);
        for (int j = 0; j < nb; j++) hz_split_inl(pt[j], &w[b0 + j], &lo[b0 + j]);
    }
    return bad;
}

int64_t hz_qadamw_ref(hz_qstate *q, uint16_t *w, int16_t *lo, const void *grad, int grad_bf16,
                      int64_t first, int64_t n, const hz_adam_coef *k, int64_t t)
{
    assert(first >= 0 && n >= 0 && first + n <= q->n);
    if (q->mode != HZ_OPTSTATE_INT8)
        return ref_elementwise(q, w, lo, grad, grad_bf16, first, n, k, t);
    assert(first % BLOCK == 0);
    return ref_int8(q, w, lo, grad, grad_bf16, first, n, k);
}

/* ---- the fast paths: branch-free loops the compiler vectorises ---- */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define Q_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define Q_CLONES
#endif

/* fp32 moments: an element with a non-finite gradient keeps every value (selects). */
#define FP32_LOOP(GRAD_EXPR)                                                                 \
    for (int64_t i = 0; i < n; i++) {                                                        \
        float g = (GRAD_EXPR) * k->gscale, mi, vi;                                           \
        uint32_t keep = 0u - (uint32_t)!is_finite(g);                                        \
        float p = adam_one(g, m[i], v[i], hz_join_inl(w[i], lo[i]), k, &mi, &vi);            \
        uint16_t wn;                                                                         \
        int16_t ln;                                                                          \
        hz_split_inl(p, &wn, &ln);                                                           \
        bad += keep & 1u;                                                                    \
        m[i] = keep_f(keep, m[i], mi);                                                       \
        v[i] = keep_f(keep, v[i], vi);                                                       \
        w[i] = (uint16_t)((w[i] & keep) | (wn & ~keep));                                     \
        lo[i] = (int16_t)(((uint16_t)lo[i] & keep) | ((uint16_t)ln & ~keep));                \
    }

Q_CLONES
static int64_t fast_fp32(float *restrict m, float *restrict v, uint16_t *restrict w,
                         int16_t *restrict lo, const float *restrict gf,
                         const uint16_t *restrict gb, int64_t n, const hz_adam_coef *k)
{
    const hz_adam_coef c = *k; /* a local copy: no store can alias it */
    k = &c;
    int64_t bad = 0;
    if (gf) {
        FP32_LOOP(gf[i])
    } else {
        FP32_LOOP(hz_bf16_f32_inl(gb[i]))
    }
    return bad;
}

/* bf16 moments: the random bits of element I0 + i come from KEY (its 2^32 segment's). */
#define BF16_LOOP(GRAD_EXPR)                                                                 \
    for (int64_t i = 0; i < n; i++) {                                                        \
        float g = (GRAD_EXPR) * k->gscale, mi, vi;                                           \
        uint32_t keep = 0u - (uint32_t)!is_finite(g);                                        \
        float p = adam_one(g, hz_bf16_f32_inl(m[i]), hz_bf16_f32_inl(v[i]),                  \
                           hz_join_inl(w[i], lo[i]), k, &mi, &vi);                           \
        uint32_t h = hz_sr_mix(i0 + (uint32_t)i, key);                                       \
        uint16_t mb = hz_bf16_sr_inl(mi, h & 0xffffu), vb = hz_bf16_sr_inl(vi, h >> 16);     \
        uint16_t wn;                                                                         \
        int16_t ln;                                                                          \
        hz_split_inl(p, &wn, &ln);                                                           \
        bad += keep & 1u;                                                                    \
        m[i] = (uint16_t)((m[i] & keep) | (mb & ~keep));                                     \
        v[i] = (uint16_t)((v[i] & keep) | (vb & ~keep));                                     \
        w[i] = (uint16_t)((w[i] & keep) | (wn & ~keep));                                     \
        lo[i] = (int16_t)(((uint16_t)lo[i] & keep) | ((uint16_t)ln & ~keep));                \
    }

Q_CLONES
static int64_t fast_bf16(uint16_t *restrict m, uint16_t *restrict v, uint16_t *restrict w,
                         int16_t *restrict lo, const float *restrict gf,
                         const uint16_t *restrict gb, int64_t n, const hz_adam_coef *k,
                         uint32_t i0, uint64_t key)
{
    const hz_adam_coef c = *k; /* a local copy: no store can alias it */
    k = &c;
    int64_t bad = 0;
    if (gf) {
        BF16_LOOP(gf[i])
    } else {
        BF16_LOOP(hz_bf16_f32_inl(gb[i]))
    }
    return bad;
}

/* One block's decode and update into the scratch mt, vt, wt, lt, with the largest |m|, |v|
 * bit patterns and the count of non-finite gradients. */
#define INT8_DECODE_UPDATE(GRAD_EXPR)                                                        \
    for (int j = 0; j < nb; j++) {                                                           \
        const int64_t i = b0 + j;                                                            \
        float g = (GRAD_EXPR) * k->gscale, mi, vi;                                           \
        float mo = map->sval[(uint8_t)mc[i] ^ 0x80u] * am, vo = map->uval[vc[i]] * av;       \
        float p = adam_one(g, mo, vo, hz_join_inl(w[i], lo[i]), k, &mi, &vi);                \
        blk_bad += !is_finite(g);                                                            \
        mi = clamp_finite(mi);                                                               \
        vi = clamp_finite(vi);                                                               \
        mt[j] = mi;                                                                          \
        vt[j] = vi;                                                                          \
        hz_split_inl(p, &wt[j], &lt[j]);                                                     \
        uint32_t mu = hz_bits_inl(mi) & 0x7fffffffu, vu = hz_bits_inl(vi) & 0x7fffffffu;     \
        mmax = mu > mmax ? mu : mmax;                                                        \
        vmax = vu > vmax ? vu : vmax;                                                        \
    }

/* int8 moments, a block at a time: decode, update into scratch, absmax as the largest |x|
 * bit pattern (non-negative floats order as integers, and an integer max vectorises), encode.
 * FIRST % BLOCK == 0; the block index of element i is i / BLOCK. */
Q_CLONES
static int64_t fast_int8(int8_t *restrict mc, uint8_t *restrict vc, float *restrict mabs,
                         float *restrict vabs, uint16_t *restrict w, int16_t *restrict lo,
                         const float *restrict gf, const uint16_t *restrict gb, int64_t n,
                         const hz_adam_coef *k, const hz_qmap *map)
{
    const hz_adam_coef c = *k; /* a local copy: no store can alias it */
    k = &c;
    const uint32_t *sbuck = hz_q8_buckets(1), *ubuck = hz_q8_buckets(0);
    int64_t bad = 0;
    for (int64_t b0 = 0; b0 < n; b0 += BLOCK) {
        const int nb = (int)(n - b0 < BLOCK ? n - b0 : BLOCK);
        const int64_t blk = b0 / BLOCK;
        const float am = mabs[blk], av = vabs[blk];
        float mt[BLOCK], vt[BLOCK];
        uint16_t wt[BLOCK];
        int16_t lt[BLOCK];
        uint32_t mmax = 0, vmax = 0;
        int blk_bad = 0;
        if (gf) {
            INT8_DECODE_UPDATE(gf[i])
        } else {
            INT8_DECODE_UPDATE(hz_bf16_f32_inl(gb[i]))
        }
        bad += blk_bad;
        if (blk_bad) continue; /* the block keeps its master, codes and absmaxes */
        const float amn = hz_float_inl(mmax), avn = hz_float_inl(vmax);
        const float dm = amn > 0.0f ? amn : 1.0f, dv = avn > 0.0f ? avn : 1.0f; /* 0 / 1 = 0 */
        mabs[blk] = amn;
        vabs[blk] = avn;
        for (int j = 0; j < nb; j++) {
            int rm = hz_q8_code(hz_bits_inl(fabsf(mt[j]) / dm), sbuck);
            int rv = hz_q8_code(hz_bits_inl(vt[j] / dv), ubuck);
            rv |= (rv == 0) & (vt[j] > 0.0f);
            mc[b0 + j] = (int8_t)(mt[j] < 0.0f ? -rm : rm);
            vc[b0 + j] = (uint8_t)rv;
            w[b0 + j] = wt[j];
            lo[b0 + j] = lt[j];
        }
    }
    return bad;
}

int64_t hz_qadamw_range(hz_qstate *q, uint16_t *w, int16_t *lo, const void *grad,
                        int grad_bf16, int64_t first, int64_t n, const hz_adam_coef *k,
                        int64_t t)
{
    assert(first >= 0 && n >= 0 && first + n <= q->n);
    const float *gf = grad_bf16 ? NULL : (const float *)grad + first;
    const uint16_t *gb = grad_bf16 ? (const uint16_t *)grad + first : NULL;
    w += first;
    lo += first;
    switch (q->mode) {
    case HZ_OPTSTATE_FP32:
        return fast_fp32((float *)q->m + first, (float *)q->v + first, w, lo, gf, gb, n, k);
    case HZ_OPTSTATE_BF16: {
        int64_t bad = 0;
        for (int64_t s = 0; s < n;) { /* one key per 2^32 elements */
            uint64_t i = (uint64_t)(first + s);
            int64_t seg = (int64_t)((((i >> 32) + 1) << 32) - i), len = n - s < seg ? n - s : seg;
            uint64_t key = hz_sr_key(q->seed, t, (uint32_t)(i >> 32));
            bad += fast_bf16((uint16_t *)q->m + first + s, (uint16_t *)q->v + first + s, w + s,
                             lo + s, gf ? gf + s : NULL, gb ? gb + s : NULL, len, k,
                             (uint32_t)i, key);
            s += len;
        }
        return bad;
    }
    default: {
        assert(first % BLOCK == 0);
        int8_t *mc = (int8_t *)q->m + first;
        uint8_t *vc = (uint8_t *)q->v + first;
        float *ma = q->m_absmax + first / BLOCK, *va = q->v_absmax + first / BLOCK;
        int64_t whole = hz_qadamw_int8_avx512_on() ? n / BLOCK : 0, done = whole * BLOCK, bad = 0;
        if (whole)
            bad = hz_qadamw_int8_avx512(mc, vc, ma, va, w, lo, gf, gb, whole, k, hz_qmap_get());
        if (done < n)
            bad += fast_int8(mc + done, vc + done, ma + whole, va + whole, w + done, lo + done,
                             gf ? gf + done : NULL, gb ? gb + done : NULL, n - done, k,
                             hz_qmap_get());
        return bad;
    }
    }
}

/* ---- over the pool ---- */

typedef struct qadam_job {
    hz_qstate *q;
    uint16_t *w;
    int16_t *lo;
    const void *grad;
    int grad_bf16;
    int64_t first, n;
    const hz_adam_coef *k;
    int64_t t;
    _Atomic int64_t bad;
} qadam_job;

/* Blocks [b, e) of the job's range. */
static void qadam_blocks(void *arg, int64_t b, int64_t e)
{
    qadam_job *j = arg;
    int64_t at = j->first + b * BLOCK, end = j->first + e * BLOCK;
    if (end > j->first + j->n) end = j->first + j->n;
    int64_t bad = hz_qadamw_range(j->q, j->w, j->lo, j->grad, j->grad_bf16, at, end - at, j->k,
                                  j->t);
    atomic_fetch_add(&j->bad, bad);
}

int64_t hz_qadamw_pool(hz_qstate *q, uint16_t *w, int16_t *lo, const void *grad, int grad_bf16,
                       int64_t first, int64_t n, const hz_adam_coef *k, int64_t t,
                       hz_pool *pool)
{
    qadam_job j = {q, w, lo, grad, grad_bf16, first, n, k, t, 0};
    hz_pool_run(pool, qadam_blocks, &j, (n + BLOCK - 1) / BLOCK);
    return atomic_load(&j.bad);
}
