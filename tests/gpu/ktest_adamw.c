/* tests/gpu/ktest_adamw.c - adamw.cu and adamw_q.cu: the device AdamW bit for bit against
 * the host's (hz_adamw_range of runtime/adamw.c; hz_qadamw_ref for bf16 and int8 moments). */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optstate.h"

#include "ktest.h"

/* ---- adamw.cu ---------------------------------------------------------------------------- */

/* What each element of an AdamW test holds, kept over its steps: masters near bf16 ties
 * (the low half 0x7fff, 0x8000 or 0x8001), zeros, denormals and large magnitudes; moments
 * and gradients typical, zero, denormal or large (g^2 may overflow: v = inf, still no NaN).
 * The _STILL kinds have m = g = +-0, so the master meets only the decay, a zero update (of
 * either sign) and the split. */
#define ADAM_KINDS(X)                                                                     \
    X(TYPICAL) X(TIE) X(TIE_STILL) X(ZERO_STILL) X(DENORMAL) X(DENORMAL_STILL)            \
    X(TINY_MOMENTS) X(LARGE) X(LARGE_GRAD) X(ZERO_GRAD)
#define ADAM_KIND_ENUM(k) AK_##k,
#define ADAM_KIND_NAME(k) #k,
enum { ADAM_KINDS(ADAM_KIND_ENUM) AK_N };
static const char *const adam_kind_names[AK_N] = {ADAM_KINDS(ADAM_KIND_NAME)};

static float u01(void) { return frand() * 0.5f + 0.5f; }
static float signed_zero(void) { return irand(2) ? -0.0f : 0.0f; }
static float denormal(int sign) {
    uint32_t mant = 1u + (uint32_t)(u01() * (float)0x7ffffe);
    return hz_float_inl((sign && irand(2) ? 0x80000000u : 0u) | mant);
}
static float magnitude(float lo_exp10, float hi_exp10) { /* +-10^[lo, hi) */
    float x = powf(10.0f, lo_exp10 + (hi_exp10 - lo_exp10) * u01());
    return irand(2) ? -x : x;
}

static float adam_master_of(int kind) {
    switch (kind) {
    case AK_TIE:
    case AK_TIE_STILL: {
        uint32_t hi = hz_bits_inl(4.0f * frand()) & 0xffff0000u;
        return hz_float_inl(hi | (0x7fffu + (uint32_t)irand(3)));
    }
    case AK_ZERO_STILL: return signed_zero();
    case AK_DENORMAL:
    case AK_DENORMAL_STILL: return denormal(1);
    case AK_LARGE: return magnitude(30.0f, 38.5f);
    default: return 0.05f * frand();
    }
}
static float adam_grad_of(int kind) {
    switch (kind) {
    case AK_TIE_STILL:
    case AK_ZERO_STILL:
    case AK_DENORMAL_STILL:
    case AK_ZERO_GRAD: return signed_zero();
    case AK_TINY_MOMENTS: return denormal(1);
    case AK_LARGE_GRAD: return magnitude(15.0f, 30.0f);
    default: return 1e-2f * frand();
    }
}
static void adam_moments_of(int kind, float *m, float *v) {
    switch (kind) {
    case AK_TIE_STILL:
    case AK_ZERO_STILL:
    case AK_DENORMAL_STILL: *m = signed_zero(), *v = 1e-4f * u01(); return;
    case AK_TINY_MOMENTS: *m = denormal(1), *v = denormal(0); return;
    case AK_LARGE_GRAD: *m = magnitude(10.0f, 25.0f), *v = powf(10.0f, 20.0f + 10.0f * u01()); return;
    default: *m = 1e-2f * frand(), *v = 1e-4f * u01() * u01(); return;
    }
}

/* hzk_adamw on N elements placed OFF elements into their buffers (OFF % 4 != 0 keeps the
 * kernel off its 4-wide path) with GRID blocks of 256 (0: the wrapper's grid), against the
 * host's hz_adamw_range on the same inputs: steps t = 1, 2 and 10 in a row, each with fresh
 * gradients, and after each step w, lo, m and v must be the host's bit for bit. The
 * OFF elements before the range and 4 after it must keep their poison. */
static void test_adamw_case(long n, int off, unsigned grid, const hz_optim *o, int decay, float gscale) {
    const size_t nn = (size_t)n, all = nn + (size_t)off + 4;
    uint16_t *w = malloc(nn * 2), *w0 = malloc(nn * 2), *gw = malloc(all * 2);
    int16_t *lo = malloc(nn * 2), *lo0 = malloc(nn * 2), *glo = malloc(all * 2);
    float *m = hmalloc(nn), *v = hmalloc(nn), *g = hmalloc(nn), *m0 = hmalloc(nn), *v0 = hmalloc(nn);
    float *gm = hmalloc(all), *gv = hmalloc(all);
    unsigned char *kind = malloc(nn);
    for (size_t i = 0; i < nn; i++) {
        kind[i] = (unsigned char)irand(AK_N);
        hz_split_inl(adam_master_of(kind[i]), &w[i], &lo[i]);
        adam_moments_of(kind[i], &m[i], &v[i]);
    }
    CUdeviceptr bw = dalloc(all * 2), blo = dalloc(all * 2), bm = dalloc(all * 4), bv = dalloc(all * 4),
                bg = dalloc(all * 4);
    CUdeviceptr dw = bw + (size_t)off * 2, dlo = blo + (size_t)off * 2, dm = bm + (size_t)off * 4,
                dv = bv + (size_t)off * 4, dg = bg + (size_t)off * 4;
    CU_CHECK(cuMemcpyHtoD(dw, w, nn * 2));
    CU_CHECK(cuMemcpyHtoD(dlo, lo, nn * 2));
    CU_CHECK(cuMemcpyHtoD(dm, m, nn * 4));
    CU_CHECK(cuMemcpyHtoD(dv, v, nn * 4));
    const unsigned blocks = grid ? grid : blocks_for((n + 3) / 4, 256);

    static const int steps[] = {1, 2, 10};
    char fail[512] = "";
    size_t bad = 0, nan_n = 0, guard_bad = 0;
    for (int s = 0; s < 3 && bad == 0; s++) {
        const int t = steps[s];
        for (size_t i = 0; i < nn; i++) g[i] = adam_grad_of(kind[i]);
        memcpy(w0, w, nn * 2), memcpy(lo0, lo, nn * 2), memcpy(m0, m, nn * 4), memcpy(v0, v, nn * 4);
        hz_adam_coef k = hz_adam_coef_of(o, o->lr, decay, gscale, t);
        CU_CHECK(cuMemcpyHtoD(dg, g, nn * 4));
        void *args[] = {&dw, &dlo, &dm, &dv, &dg, &n, &k.decay, &k.step, &k.rbc2, &k.beta1,
                        &k.beta2, &k.eps, &k.gscale};
        launch("hzk_adamw", blocks, 1, 256, 0, args);
        hz_adamw_range(w, lo, m, v, g, n, &k);
        CU_CHECK(cuMemcpyDtoH(gw, bw, all * 2));
        CU_CHECK(cuMemcpyDtoH(glo, blo, all * 2));
        CU_CHECK(cuMemcpyDtoH(gm, bm, all * 4));
        CU_CHECK(cuMemcpyDtoH(gv, bv, all * 4));
        for (size_t i = 0; i < nn; i++) {
            nan_n += isnan(hz_join_inl(w[i], lo[i])) || isnan(m[i]) || isnan(v[i]);
            const size_t at = (size_t)off + i;
            const char *which = memcmp(&gw[at], &w[i], 2) ? "w" : memcmp(&glo[at], &lo[i], 2) ? "lo"
                              : memcmp(&gm[at], &m[i], 4) ? "m" : memcmp(&gv[at], &v[i], 4) ? "v" : NULL;
            if (!which || bad++ > 0) continue;
            snprintf(fail, sizeof fail,
                     "; first at t=%d [%zu] (%s) %s: from w %04x lo %d m %.9g v %.9g g %.9g, "
                     "got w %04x lo %d m %.9g v %.9g, want w %04x lo %d m %.9g v %.9g",
                     t, i, adam_kind_names[kind[i]], which, w0[i], lo0[i], (double)m0[i],
                     (double)v0[i], (double)g[i], gw[at], glo[at], (double)gm[at], (double)gv[at],
                     w[i], lo[i], (double)m[i], (double)v[i]);
        }
    }
    /* the poison (0xFF bytes) around the range */
    for (size_t i = 0; i < all; i++)
        if (i < (size_t)off || i >= (size_t)off + nn)
            guard_bad += gw[i] != 0xffffu || glo[i] != -1 || hz_bits_inl(gm[i]) != 0xffffffffu ||
                         hz_bits_inl(gv[i]) != 0xffffffffu;
    CHECK(bad == 0 && nan_n == 0 && guard_bad == 0,
          "adamw n=%ld off %d grid %u (lr %g wd %g%s, gscale %g): w lo m v bit-identical to "
          "hz_adamw_range after t = 1, 2, 10 (%zu differ%s); %zu NaN; %zu guard elements written",
          n, off, blocks, (double)o->lr, (double)o->weight_decay, decay ? "" : " off", (double)gscale,
          bad, fail, nan_n, guard_bad);
    free(w), free(w0), free(gw), free(lo), free(lo0), free(glo), free(m), free(v), free(g), free(m0), free(v0);
    free(gm), free(gv), free(kind);
    cuMemFree(bw), cuMemFree(blo), cuMemFree(bm), cuMemFree(bv), cuMemFree(bg);
}

/* Three optimizers (with decay, without it and with clipping's gscale, a large lr), sizes
 * from 1 up, odd and even, each at an aligned and an unaligned offset; two small grids. */
void test_adamw(void) {
    const hz_optim opts[3] = {
        {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f},
        {.lr = 3e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-6f, .weight_decay = 0.1f},
        {.lr = 0.25f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.01f},
    };
    const int decays[3] = {1, 0, 1};
    const float gscales[3] = {1.0f, 0.37f, 0.8f};
    const long sizes[] = {1, 3, 4, 1027, 65539};
    for (int c = 0; c < 3; c++)
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
            for (int off = 0; off < 2; off++)
                test_adamw_case(sizes[z], off, 0, &opts[c], decays[c], gscales[c]);
    test_adamw_case(1000003, 4, 5, &opts[0], 1, 0.5f); /* a small grid strides over 4-wide chunks */
    test_adamw_case(100003, 3, 2, &opts[1], 1, 1.0f);  /* and over single elements */
}

/* ---- adamw_q.cu -------------------------------------------------------------------------- */

/* hzk_adamw_bf16state / hzk_adamw_int8state on elements [first, first + n) of arrays of
 * first + n + 64 elements, GRID blocks of 256 (0: the wrappers' grid), against the host's
 * hz_qadamw_ref on the same inputs: steps t = 1, 2 and 10 with fresh gradients (fp32 or bf16,
 * spread over decades, some zero; at t = 10 a NaN and an inf), and after each step every byte of
 * the master, the moments and (int8) the absmaxes must be the host's, and the non-finite count
 * the host's count. */
static void test_adamw_q_case(int mode, long n, long first, int grad_bf16, unsigned grid) {
    const size_t all = (size_t)(first + n + 64), eb = mode == HZ_OPTSTATE_BF16 ? 2 : 1;
    const size_t nb = (all + HZ_OPTSTATE_BLOCK - 1) / HZ_OPTSTATE_BLOCK;
    hz_qstate q;
    if (hz_qstate_alloc(&q, mode, (int64_t)all, 0x5eed) != 0) exit(2);
    uint16_t *w = malloc(all * 2), *gw = malloc(all * 2), *gb = malloc(all * 2);
    int16_t *lo = malloc(all * 2), *glo = malloc(all * 2);
    float *gf = hmalloc(all), *gabs = hmalloc(2 * nb);
    unsigned char *gm = malloc(all * eb), *gv = malloc(all * eb);
    for (size_t i = 0; i < all; i++) hz_split_inl(frand() * 0.1f, &w[i], &lo[i]);
    CUdeviceptr dw = dalloc(all * 2), dlo = dalloc(all * 2), dm = dalloc(all * eb),
                dv = dalloc(all * eb), dg = dalloc(all * 4), dbad = dalloc(8),
                dma = dalloc(nb * 4), dva = dalloc(nb * 4);
    CU_CHECK(cuMemcpyHtoD(dw, w, all * 2));
    CU_CHECK(cuMemcpyHtoD(dlo, lo, all * 2));
    CU_CHECK(cuMemcpyHtoD(dm, q.m, all * eb));
    CU_CHECK(cuMemcpyHtoD(dv, q.v, all * eb));
    CU_CHECK(cuMemsetD8(dbad, 0, 8));
    if (mode == HZ_OPTSTATE_INT8) {
        CU_CHECK(cuMemcpyHtoD(dma, q.m_absmax, nb * 4));
        CU_CHECK(cuMemcpyHtoD(dva, q.v_absmax, nb * 4));
    }
    const hz_optim o = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    static const int steps[] = {1, 2, 10};
    int64_t host_bad = 0;
    unsigned long long dev_bad = 0;
    const char *differ = NULL;
    int differ_t = 0;
    unsigned blocks = 0;
    for (int s = 0; s < 3 && !differ; s++) {
        const long t = steps[s];
        for (size_t i = 0; i < all; i++) {
            float x = i % 13 == 5 ? 0.0f : (frand() < 0 ? -1.0f : 1.0f) * powf(10.0f, -6.0f * u01());
            gb[i] = f2bf(x);
            gf[i] = grad_bf16 ? 0.0f : x;
        }
        if (t == 10 && n > 40) {
            gb[first + 3] = f2bf(NAN), gf[first + 3] = NAN;
            gb[first + 40] = f2bf(INFINITY), gf[first + 40] = INFINITY;
        }
        const void *hg = grad_bf16 ? (const void *)gb : gf;
        CU_CHECK(cuMemcpyHtoD(dg, hg, all * (grad_bf16 ? 2 : 4)));
        hz_adam_coef k = hz_adam_coef_of(&o, o.lr, 1, 1.0f, t);
        int gbf = grad_bf16;
        long fst = first, nn = n;
        if (mode == HZ_OPTSTATE_BF16) {
            unsigned long long seed = q.seed;
            long tt = t;
            void *args[] = {&dw, &dlo, &dm, &dv, &dg, &gbf, &fst, &nn, &dbad, &k.decay, &k.step,
                            &k.rbc2, &k.beta1, &k.beta2, &k.eps, &k.gscale, &seed, &tt};
            blocks = grid ? grid : blocks_for(n, 256);
            launch("hzk_adamw_bf16state", blocks, 1, 256, 0, args);
        } else {
            void *args[] = {&dw, &dlo, &dm, &dv, &dma, &dva, &dg, &gbf, &fst, &nn, &dbad,
                            &k.decay, &k.step, &k.rbc2, &k.beta1, &k.beta2, &k.eps, &k.gscale};
            blocks = grid ? grid : blocks_for((n + HZ_OPTSTATE_BLOCK - 1) / HZ_OPTSTATE_BLOCK * 32, 256);
            launch("hzk_adamw_int8state", blocks, 1, 256, 0, args);
        }
        host_bad += hz_qadamw_ref(&q, w, lo, hg, grad_bf16, first, n, &k, t);
        CU_CHECK(cuMemcpyDtoH(gw, dw, all * 2));
        CU_CHECK(cuMemcpyDtoH(glo, dlo, all * 2));
        CU_CHECK(cuMemcpyDtoH(gm, dm, all * eb));
        CU_CHECK(cuMemcpyDtoH(gv, dv, all * eb));
        CU_CHECK(cuMemcpyDtoH(&dev_bad, dbad, 8));
        differ = memcmp(gw, w, all * 2) ? "w" : memcmp(glo, lo, all * 2) ? "lo"
               : memcmp(gm, q.m, all * eb) ? "m" : memcmp(gv, q.v, all * eb) ? "v" : NULL;
        if (!differ && mode == HZ_OPTSTATE_INT8) {
            CU_CHECK(cuMemcpyDtoH(gabs, dma, nb * 4));
            CU_CHECK(cuMemcpyDtoH(gabs + nb, dva, nb * 4));
            differ = memcmp(gabs, q.m_absmax, nb * 4) || memcmp(gabs + nb, q.v_absmax, nb * 4)
                         ? "absmax" : NULL;
        }
        differ_t = (int)t;
    }
    CHECK(!differ && (int64_t)dev_bad == host_bad,
          "adamw %s moments n=%ld first %ld %s grads grid %u: master, moments%s bit-identical to "
          "hz_qadamw_ref after t = 1, 2, 10 (%s%s%d); non-finite %llu, host %lld",
          hz_optstate_name(mode), n, first, grad_bf16 ? "bf16" : "fp32", blocks,
          mode == HZ_OPTSTATE_INT8 ? ", absmaxes" : "", differ ? differ : "none differ",
          differ ? " differs at t=" : ", last t=", differ_t, dev_bad, (long long)host_bad);
    hz_qstate_free(&q);
    free(w), free(gw), free(gb), free(lo), free(glo), free(gf), free(gabs), free(gm), free(gv);
    cuMemFree(dw), cuMemFree(dlo), cuMemFree(dm), cuMemFree(dv), cuMemFree(dg), cuMemFree(dbad);
    cuMemFree(dma), cuMemFree(dva);
}

void test_adamw_q(void) {
    const long sizes[] = {1, 63, 64, 65, 4097, 100003};
    for (int mode = HZ_OPTSTATE_BF16; mode <= HZ_OPTSTATE_INT8; mode++)
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
            for (int gbf = 0; gbf < 2; gbf++)
                test_adamw_q_case(mode, sizes[z], z % 2 ? (mode == HZ_OPTSTATE_INT8 ? 128 : 3) : 0,
                                  gbf, 0);
    test_adamw_q_case(HZ_OPTSTATE_BF16, 300007, 5, 0, 3); /* small grids stride */
    test_adamw_q_case(HZ_OPTSTATE_INT8, 300007, 64, 1, 2);
}
