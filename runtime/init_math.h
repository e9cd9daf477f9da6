/* runtime/init_math.h - the float natural log and sine/cosine of the random init (init.c),
 * written branch-free and libm-free so that the init's loop vectorises. Only IEEE float
 * +, -, *, / and int/float conversions, no fused multiply-adds (-std=c11 keeps contraction
 * off): every ISA the loop is compiled for gives the same bits. tests/test_init.c measures
 * the errors below against double-precision libm. */
#ifndef HZ_INIT_MATH_H
#define HZ_INIT_MATH_H
#include <stdint.h>

/* ln(x) for a normal float 0 < x < 2 (the init passes (0, 1]); within 3 ulp of ln(x)
 * (2.51 measured) and 1e-7 absolute beside x = 1. x = 2^e m with m in [2/3, 4/3):
 * ln x = e ln2 + 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 1/5, atanh by its series to s^9
 * (next term < 1e-8 of s); ln2 in two parts so e ln2 carries no rounding. */
static inline float hz_init_logf(float x)
{
    uint32_t bits;
    __builtin_memcpy(&bits, &x, 4);
    /* bits + (1.0 - 2/3 in float bits) carries into the exponent field exactly when m >= 4/3 */
    int32_t e = (int32_t)((bits + 0x00555555u) >> 23) - 127;
    uint32_t mbits = bits - ((uint32_t)e << 23);
    float m;
    __builtin_memcpy(&m, &mbits, 4);
    float f = m - 1.0f, s = f / (2.0f + f), s2 = s * s;
    float series = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
    float fe = (float)e;
    return fe * 0.693145751953125f + (2.0f * s * series + fe * 1.428606820309417232e-6f);
}

/* cos and sin of 2 pi a / 2^24 for 0 <= a < 2^24 (a 24-bit fraction of a turn), each within
 * 2.5 ulp (2.25 measured) and 1.2e-7 absolute. The quadrant comes from a's integer bits exactly;
 * the rest, |phi| <= pi/4, goes to Taylor polynomials to phi^9 (sin) and phi^10 (cos),
 * whose truncation errors are below 2e-9. */
static inline void hz_init_sincos_turn(int32_t a, float *c, float *s)
{
    int32_t q = (a + (1 << 21)) >> 22; /* nearest quarter turn, 0..4 */
    float phi = (float)(a - q * (1 << 22)) * 3.7450702e-7f; /* 2 pi / 2^24 */
    float p2 = phi * phi;
    float sp = phi + phi * p2 * (-1.0f / 6 + p2 * (1.0f / 120 + p2 * (-1.0f / 5040 +
                                                                     p2 * (1.0f / 362880))));
    float cp = 1.0f + p2 * (-0.5f + p2 * (1.0f / 24 + p2 * (-1.0f / 720 + p2 * (1.0f / 40320 +
                                                                              p2 * (-1.0f / 3628800)))));
    uint32_t swap = (uint32_t)q & 1u;
    float c0 = swap ? sp : cp, s0 = swap ? cp : sp;
    /* the cosine is negative in quadrants 1 and 2, the sine in 2 and 3 */
    uint32_t cneg = (((uint32_t)q + 1u) >> 1 & 1u) << 31, sneg = ((uint32_t)q >> 1 & 1u) << 31;
    uint32_t cb, sb;
    __builtin_memcpy(&cb, &c0, 4);
    __builtin_memcpy(&sb, &s0, 4);
    cb ^= cneg;
    sb ^= sneg;
    __builtin_memcpy(c, &cb, 4);
    __builtin_memcpy(s, &sb, 4);
}
#endif
