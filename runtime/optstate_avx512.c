/* runtime/optstate_avx512.c - the int8-moment AdamW of whole blocks in AVX-512 (16 lanes,
 * 4 vectors a block): the bits of hz_qadamw_ref's int8 mode (optstate_adamw.c), written
 * with intrinsics because the compiler's own vectorisation of that loop extracts every
 * table index to a scalar register (3.6 ns an element on one core where this takes about
 * 1; bench/NOTES.md). Decoding gathers the code maps; encoding gathers one entry per value
 * of optstate.h's bucket table (hz_q8_buckets), as the C loop does. */
#include <stdatomic.h>
#include <string.h>

#include "optstate.h"
#include "rt.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define BLOCK HZ_OPTSTATE_BLOCK
static _Atomic int use = -1; /* -1: not yet asked; 0: off (no AVX-512, or turned off); 1: on */

int hz_qadamw_int8_avx512_on(void)
{
    if (use < 0) hz_qadamw_int8_avx512_use(1);
    return use;
}

int hz_qadamw_int8_avx512_use(int on)
{
    __builtin_cpu_init();
    int have = __builtin_cpu_supports("avx512f") != 0;
    use = on && have;
    return have;
}

#define TGT __attribute__((target("avx512f")))

/* The magnitude code of A (non-negative, at most 1) from the bucket table T: hz_q8_code of
 * optstate.h, 16 lanes at a time. */
static inline TGT __m512i encode(__m512 a, const uint32_t *t)
{
    __m512i u = _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff));
    __m512i b = _mm512_sub_epi32(_mm512_srli_epi32(u, 16),
                                 _mm512_set1_epi32((127 - HZ_Q8_EXP_LO) << 7));
    b = _mm512_max_epi32(b, _mm512_setzero_si512());
    __m512i e = _mm512_i32gather_epi32(b, (const int *)t, 4);
    __m512i r = _mm512_and_si512(e, _mm512_set1_epi32(0xff));
    __mmask16 up = _mm512_cmpge_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0xffff)),
                                           _mm512_srli_epi32(e, 8));
    return _mm512_mask_add_epi32(r, up, r, _mm512_set1_epi32(1));
}

/* +-inf to +-FLT_MAX (clamp_finite of optstate_adamw.c). */
static inline TGT __m512 finite(__m512 x)
{
    __m512i u = _mm512_castps_si512(x);
    __mmask16 inf = _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    return _mm512_castsi512_ps(_mm512_mask_sub_epi32(u, inf, u, _mm512_set1_epi32(1)));
}

TGT int64_t hz_qadamw_int8_avx512(int8_t *mc, uint8_t *vc, float *mabs, float *vabs,
                                  uint16_t *w, int16_t *lo, const float *gf, const uint16_t *gb,
                                  int64_t blocks, const hz_adam_coef *k, const hz_qmap *map)
{
    const __m512 beta1 = _mm512_set1_ps(k->beta1), beta2 = _mm512_set1_ps(k->beta2);
    const __m512 c1 = _mm512_set1_ps(1.0f - k->beta1), c2 = _mm512_set1_ps(1.0f - k->beta2);
    const __m512 decay = _mm512_set1_ps(k->decay), step = _mm512_set1_ps(k->step);
    const __m512 rbc2 = _mm512_set1_ps(k->rbc2), eps = _mm512_set1_ps(k->eps);
    const __m512 gscale = _mm512_set1_ps(k->gscale);
    const __m512i expo = _mm512_set1_epi32(0x7f800000), abs = _mm512_set1_epi32(0x7fffffff);
    const uint32_t *sbuck = hz_q8_buckets(1), *ubuck = hz_q8_buckets(0);
    int64_t bad = 0;
    for (int64_t blk = 0; blk < blocks; blk++) {
        const int64_t b0 = blk * BLOCK;
        const __m512 am = _mm512_set1_ps(mabs[blk]), av = _mm512_set1_ps(vabs[blk]);
        __m512 mt[4], vt[4];
        __m512i wt[4], lt[4], mmax = _mm512_setzero_si512(), vmax = _mm512_setzero_si512();
        int blk_bad = 0;
        for (int j = 0; j < 4; j++) {
            const int64_t i = b0 + 16 * j;
            __m512i ms = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(mc + i)));
            __m512i vs = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(vc + i)));
            ms = _mm512_and_si512(_mm512_add_epi32(ms, _mm512_set1_epi32(128)), _mm512_set1_epi32(255));
            __m512 mo = _mm512_mul_ps(_mm512_i32gather_ps(ms, map->sval, 4), am);
            __m512 vo = _mm512_mul_ps(_mm512_i32gather_ps(vs, map->uval, 4), av);
            __m512 g = gf ? _mm512_loadu_ps(gf + i)
                          : _mm512_castsi512_ps(_mm512_slli_epi32(
                                _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(gb + i))), 16));
            g = _mm512_mul_ps(g, gscale);
            blk_bad += __builtin_popcount(_mm512_cmpeq_epi32_mask(
                _mm512_and_si512(_mm512_castps_si512(g), expo), expo));
            __m512i wi = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i)));
            __m512i li = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(lo + i)));
            __m512 p = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_slli_epi32(wi, 16), li));
            /* adam_one's order, no fused multiply-adds */
            __m512 mi = _mm512_add_ps(_mm512_mul_ps(beta1, mo), _mm512_mul_ps(c1, g));
            __m512 vi = _mm512_add_ps(_mm512_mul_ps(beta2, vo), _mm512_mul_ps(_mm512_mul_ps(c2, g), g));
            p = _mm512_mul_ps(p, decay);
            __m512 den = _mm512_add_ps(_mm512_sqrt_ps(_mm512_mul_ps(vi, rbc2)), eps);
            p = _mm512_sub_ps(p, _mm512_div_ps(_mm512_mul_ps(step, mi), den));
            mt[j] = finite(mi);
            vt[j] = finite(vi);
            mmax = _mm512_max_epu32(mmax, _mm512_and_si512(_mm512_castps_si512(mt[j]), abs));
            vmax = _mm512_max_epu32(vmax, _mm512_and_si512(_mm512_castps_si512(vt[j]), abs));
            /* hz_split_inl */
            __m512i u = _mm512_castps_si512(p);
            __m512i hi = _mm512_srli_epi32(
                _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)),
                                 _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))), 16);
            __m512i diff = _mm512_sub_epi32(u, _mm512_slli_epi32(hi, 16));
            __mmask16 up = _mm512_cmpgt_epi32_mask(diff, _mm512_set1_epi32(32767));
            wt[j] = _mm512_mask_add_epi32(hi, up, hi, _mm512_set1_epi32(1));
            lt[j] = _mm512_mask_sub_epi32(diff, up, diff, _mm512_set1_epi32(65536));
        }
        bad += blk_bad;
        if (blk_bad) continue; /* the block keeps its master, codes and absmaxes */
        const float amn = hz_float_inl((uint32_t)_mm512_reduce_max_epu32(mmax));
        const float avn = hz_float_inl((uint32_t)_mm512_reduce_max_epu32(vmax));
        mabs[blk] = amn;
        vabs[blk] = avn;
        const __m512 dm = _mm512_set1_ps(amn > 0.0f ? amn : 1.0f), dv = _mm512_set1_ps(avn > 0.0f ? avn : 1.0f);
        for (int j = 0; j < 4; j++) {
            const int64_t i = b0 + 16 * j;
            __m512i mu = _mm512_castps_si512(mt[j]);
            __m512 ma = _mm512_castsi512_ps(_mm512_and_si512(mu, abs));
            __m512i rm = encode(_mm512_div_ps(ma, dm), sbuck);
            __m512i rv = encode(_mm512_div_ps(vt[j], dv), ubuck);
            __mmask16 neg = _mm512_cmp_ps_mask(mt[j], _mm512_setzero_ps(), _CMP_LT_OQ);
            rm = _mm512_mask_sub_epi32(rm, neg, _mm512_setzero_si512(), rm);
            __mmask16 tiny = _mm512_cmpeq_epi32_mask(rv, _mm512_setzero_si512()) &
                             _mm512_cmp_ps_mask(vt[j], _mm512_setzero_ps(), _CMP_GT_OQ);
            rv = _mm512_mask_mov_epi32(rv, tiny, _mm512_set1_epi32(1));
            _mm_storeu_si128((__m128i *)(mc + i), _mm512_cvtepi32_epi8(rm));
            _mm_storeu_si128((__m128i *)(vc + i), _mm512_cvtepi32_epi8(rv));
            _mm256_storeu_si256((__m256i *)(w + i), _mm512_cvtepi32_epi16(wt[j]));
            _mm256_storeu_si256((__m256i *)(lo + i), _mm512_cvtepi32_epi16(lt[j]));
        }
    }
    return bad;
}

#else

int hz_qadamw_int8_avx512_on(void) { return 0; }
int hz_qadamw_int8_avx512_use(int on) { (void)on; return 0; }

int64_t hz_qadamw_int8_avx512(int8_t *mc, uint8_t *vc, float *mabs, float *vabs, uint16_t *w,
                              int16_t *lo, const float *gf, const uint16_t *gb, int64_t blocks,
                              const hz_adam_coef *k, const hz_qmap *map)
{
    (void)mc, (void)vc, (void)mabs, (void)vabs, (void)w, (void)lo, (void)gf, (void)gb;
    (void)blocks, (void)k, (void)map;
    return 0;
}

#endif
