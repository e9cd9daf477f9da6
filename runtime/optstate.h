/* runtime/optstate.h - compact AdamW moments: the modes (fp32, bf16 with stochastic
 * rounding, int8 blockwise with dynamic code maps), their sizes, the code maps, the per-element
 * reference quantisers and the update of a range of the split fp32 master (optstate.c). */
#ifndef HZ_OPTSTATE_H
#define HZ_OPTSTATE_H
#include <stdint.h>

#include "hz_tables.h" /* the modes (HZ_OPTSTATE_MODES) and HZ_OPTSTATE_BLOCK */

/* "fp32", "bf16", "int8"; NULL for a mode out of range. */
const char *hz_optstate_name(int mode);
/* The mode named NAME, or -1. */
int hz_optstate_parse(const char *name);
/* Bytes of the moments (and int8 absmaxes) of N parameters: fp32 8 n, bf16 4 n, int8
 * 2 n + 8 ceil(n / HZ_OPTSTATE_BLOCK). -1 for a bad mode. */
int64_t hz_optstate_bytes(int mode, int64_t n);
/* The same per parameter for large n: 8, 4, 2 + 8 / HZ_OPTSTATE_BLOCK (0 for a bad mode).
 * The host store adds 4 (w and lo): 12, 8 and ~6 bytes a parameter in all. */
double hz_optstate_bytes_per_param(int mode);

/* ---- the int8 code maps ----
 * A magnitude code r of B bits (B = 7 for m, 8 for v): r = 0 is 0; otherwise h is the index
 * of r's highest set bit, z = B - 1 - h its leading zero bits and q = r - 2^h the h bits
 * below it, and the magnitude is 10^-z (0.1 + 0.9 (q + 1) / 2^h): decade z holds 2^h
 * linearly spaced values in (0.1, 1] 10^-z, the top code is exactly 1, the smallest nonzero
 * 10^-(B-1). Each entry is the fp32 division of two integers exact in fp32
 * ((2^h + 9 (q + 1)) / (10^(z+1) 2^h)), so the GPU builds the same bits.
 * m (signed): the byte is an int8 c in [-127, 127], value sign(c) smag[|c|]; -128 is never
 * written and reads as -1. v (unsigned): the byte is r, value umag[r].
 * Tables sorted ascending: sval[c + 128] (sval[0] = sval[1] = -1, sval[128] = 0,
 * sval[128 + j] = -sval[128 - j]) and uval[r]. smid[j] (j = 1..127) and umid[r] (r = 1..255)
 * are the smallest fp32 at or above the exact midpoint of magnitudes j - 1 and j, so
 * "a >= mid[j]" is "a is at least as near code j as code j - 1" exactly. */
typedef struct hz_qmap {
    float sval[256], uval[256];   /* decoded values, ascending */
    float smid[128], umid[256];   /* [0] unused */
} hz_qmap;

/* The fast encoders' table (both fast paths of optstate_adamw.c and optstate_avx512.c): the
 * magnitude code of a in [0, 1] from its fp32 bits. A bucket is the floats that share
 * exponent and top 7 mantissa bits (at most 2^-7 relative wide, narrower than any gap between
 * two codes, so at most one midpoint lies inside); buckets start at 2^-HZ_Q8_EXP_LO, below
 * the smallest midpoint of either map (smaller a share bucket 0). Entry b = code | thr << 8:
 * the code of the bucket's smallest float, and the low 16 bits a float of the bucket needs to
 * reach the next midpoint (0x10000: none lies in the bucket). hz_q8_code is the encode. */
#define HZ_Q8_EXP_LO 27
#define HZ_Q8_BUCKETS ((HZ_Q8_EXP_LO << 7) + 1) /* up to a = 1 */
const uint32_t *hz_q8_buckets(int is_signed);   /* built once on first use */
static inline int hz_q8_code(uint32_t a_bits, const uint32_t *t)
{
    a_bits &= 0x7fffffffu; /* |a|: a -0 is 0 */
    int32_t b = (int32_t)(a_bits >> 16) - (int32_t)((127 - HZ_Q8_EXP_LO) << 7);
    uint32_t e = t[b < 0 ? 0 : b];
    return (int)(e & 0xffu) + ((a_bits & 0xffffu) >= (e >> 8));
}

/* Build the maps (deterministic; the same bits on every IEEE machine). */
void hz_qmap_build(hz_qmap *q);
/* The maps, built once on first use. */
const hz_qmap *hz_qmap_get(void);

/* Quantisation of one block of N <= HZ_OPTSTATE_BLOCK values X, the reference: absmax =
 * max |x|; each x is scaled a = |x| / absmax (fp32 division, so a <= 1) and takes the
 * nearest magnitude code, ties to the larger magnitude; the sign is x's (signed) and an
 * unsigned x > 0 never takes code 0 (a nonzero v that read back as 0 would divide m by eps
 * alone). absmax 0: every code 0. Values are finite (the update never passes others). */
void hz_q8_quantize_block_ref(const float *x, int n, int is_signed, uint8_t *codes,
                              float *absmax);
/* x[i] = map value of codes[i] * absmax (one fp32 multiply). */
void hz_q8_dequantize_block_ref(const uint8_t *codes, int n, int is_signed, float absmax,
                                float *x);

/* ---- bf16 stochastic rounding ----
 * A moment of element i at step t is rounded with 16 random bits from a counter-based hash of
 * (seed, t, i): the low 16 bits of hz_optstate_hash for m, the high 16 for v. There is no
 * generator state: the bits depend on nothing else (not threads, chunks or call order), so a
 * run is reproducible and a resume at step t only needs the seed. */
uint32_t hz_optstate_hash(uint64_t seed, int64_t t, int64_t i);

/* The hash in two parts, for loops over many i: a key per (seed, t, i >> 32), mixed 64-bit
 * once, then per element 32-bit multiplies and shifts of the low 32 bits of i (a bijection of
 * them for a fixed key). hz_optstate_hash(seed, t, i) =
 * hz_sr_mix((uint32_t)i, hz_sr_key(seed, t, (uint32_t)(i >> 32))). */
static inline uint64_t hz_sr_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static inline uint64_t hz_sr_key(uint64_t seed, int64_t t, uint32_t i_hi)
{
    uint64_t x = hz_sr_mix64(seed ^ 0x6a09e667f3bcc909ull);
    x = hz_sr_mix64(x + (uint64_t)t * 0x9e3779b97f4a7c15ull);
    return hz_sr_mix64(x + i_hi);
}

static inline uint32_t hz_sr_mix(uint32_t i_lo, uint64_t key)
{
    uint32_t x = i_lo ^ (uint32_t)key;
    x *= 0x9e3779b1u;
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= (uint32_t)(key >> 32);
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return x;
}

/* hz_bf16_sr_ref's bits, for the hot loops (branch-free). */
static inline uint16_t hz_bf16_sr_inl(float x, uint32_t r16)
{
    uint32_t u;
    __builtin_memcpy(&u, &x, 4);
    uint32_t r = (u + r16) >> 16;
    uint32_t to_inf = ((r & 0x7f80u) == 0x7f80u) & ((u & 0x7f800000u) != 0x7f800000u);
    return (uint16_t)(to_inf ? u >> 16 : r);
}
/* X rounded to bf16 with random bits R16 (< 65536): the fp32 bits plus R16, truncated, so X
 * rounds away from zero with probability (its 16 low bits) / 65536: unbiased. A finite X that
 * would round to infinity is truncated instead. */
uint16_t hz_bf16_sr_ref(float x, uint32_t r16);

/* ---- the moments of n elements in one mode ---- */
typedef struct hz_qstate {
    int mode;            /* enum hz_optstate_mode */
    int64_t n;           /* elements */
    uint64_t seed;       /* bf16: the stochastic rounding's seed */
    void *m, *v;         /* (n): float (fp32), uint16_t bf16 bits (bf16), codes (int8:
                          * int8_t for m, uint8_t for v) */
    float *m_absmax, *v_absmax; /* int8: (ceil(n / HZ_OPTSTATE_BLOCK)); else NULL */
} hz_qstate;

/* Zeroed state of N elements in MODE (zero bytes are zero moments in every mode); 0, or -1
 * (a bad mode or no memory). */
int hz_qstate_alloc(hz_qstate *q, int mode, int64_t n, uint64_t seed);
void hz_qstate_free(hz_qstate *q);

/* ---- AdamW on a range with compact moments ----
 * Elements [first, first + n) of the master (w, lo), the gradients GRAD (float, or uint16_t
 * bf16 when GRAD_BF16) and the state Q, all indexed alike; K from hz_adam_coef_of, T the
 * same 1-based step. Per element the formula and operation order of hz_adamw_range
 * (runtime/rt.h): the old moments are decoded to fp32, the new fp32 moments give the master's
 * update, then they are encoded (bf16: stochastic rounding; int8: per block). fp32 mode with
 * finite gradients gives hz_adamw_range's bits.
 * int8: FIRST is a multiple of HZ_OPTSTATE_BLOCK; the last block may be partial (its absmax
 * is over the range's elements; the rest of that block is padding that no range updates).
 * Non-finite gradients (after the scale gscale): the count is returned and none reaches the
 * state. fp32 and bf16: such an element keeps its master and moments. int8: the block holding
 * it keeps its master, codes and absmaxes as they were, whole. */
struct hz_adam_coef;
/* The reference: element by element with the functions above. */
int64_t hz_qadamw_ref(hz_qstate *q, uint16_t *w, int16_t *lo, const void *grad, int grad_bf16,
                      int64_t first, int64_t n, const struct hz_adam_coef *k, int64_t t);
/* The fast path: the same bits, vectorised (AVX-512, AVX2 or plain x86-64 at run time). */
int64_t hz_qadamw_range(hz_qstate *q, uint16_t *w, int16_t *lo, const void *grad,
                        int grad_bf16, int64_t first, int64_t n, const struct hz_adam_coef *k,
                        int64_t t);
/* hz_qadamw_range split over POOL in whole blocks: the same bits at every thread count. */
struct hz_pool;
int64_t hz_qadamw_pool(hz_qstate *q, uint16_t *w, int16_t *lo, const void *grad, int grad_bf16,
                       int64_t first, int64_t n, const struct hz_adam_coef *k, int64_t t,
                       struct hz_pool *pool);

/* The int8 loop of BLOCKS whole blocks in AVX-512 (runtime/optstate_avx512.c), the same bits
 * as hz_qadamw_ref; hz_qadamw_range takes it where the CPU has AVX-512F. MC, VC, W, LO, GF or
 * GB start at the first block's element, MABS and VABS at its absmaxes. */
int64_t hz_qadamw_int8_avx512(int8_t *mc, uint8_t *vc, float *mabs, float *vabs, uint16_t *w,
                              int16_t *lo, const float *gf, const uint16_t *gb, int64_t blocks,
                              const struct hz_adam_coef *k, const hz_qmap *map);
/* Whether hz_qadamw_range takes it now; hz_qadamw_int8_avx512_use(0) turns it off (the tests
 * run both paths), (1) on where the CPU has AVX-512F; it returns whether the CPU has it. */
int hz_qadamw_int8_avx512_on(void);
int hz_qadamw_int8_avx512_use(int on);

#endif
