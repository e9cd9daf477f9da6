/* tests/test_optstate.c - compact optimizer state (runtime/optstate.h): names, sizes, maps,
 * block round trips, stochastic rounding, non-finite gradients, fast == reference bit for bit,
 * chunk and thread independence, and 200 AdamW steps on a quadratic against fp32 moments. */
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "optstate.h"
#include "plan.h"
#include "rt.h"
#include "test.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* +-10^[lo, hi): magnitudes over several decades */
static float spread(float lo_exp10, float hi_exp10)
{
    float e = lo_exp10 + (hi_exp10 - lo_exp10) * (test_frand() * 0.5f + 0.5f);
    return (test_frand() < 0 ? -1.0f : 1.0f) * powf(10.0f, e);
}

/* ---- names and sizes ---- */
static void test_modes(void)
{
    int ok = 1;
    for (int k = 0; k < HZ_OPTSTATE_MODE_N; k++) ok &= hz_optstate_parse(hz_optstate_name(k)) == k;
    CHECK(ok && strcmp(hz_optstate_name(HZ_OPTSTATE_INT8), "int8") == 0 &&
              hz_optstate_parse("fp16") == -1 && hz_optstate_name(HZ_OPTSTATE_MODE_N) == NULL,
          "modes print and parse from one list: %s %s %s; \"fp16\" -> %d",
          hz_optstate_name(0), hz_optstate_name(1), hz_optstate_name(2), hz_optstate_parse("fp16"));
    const int64_t n = 1000003, blocks = (n + HZ_OPTSTATE_BLOCK - 1) / HZ_OPTSTATE_BLOCK;
    CHECK(hz_optstate_bytes(HZ_OPTSTATE_FP32, n) == 8 * n &&
              hz_optstate_bytes(HZ_OPTSTATE_BF16, n) == 4 * n &&
              hz_optstate_bytes(HZ_OPTSTATE_INT8, n) == 2 * n + 8 * blocks &&
              hz_optstate_bytes(7, n) == -1,
          "state bytes of %lld params: fp32 %lld, bf16 %lld, int8 %lld", (long long)n,
          (long long)hz_optstate_bytes(0, n), (long long)hz_optstate_bytes(1, n),
          (long long)hz_optstate_bytes(2, n));
    double all[3];
    for (int k = 0; k < 3; k++) all[k] = 4.0 + hz_optstate_bytes_per_param(k);
    CHECK(all[0] == 12.0 && all[1] == 8.0 && all[2] > 6.0 && all[2] < 6.2,
          "host bytes a parameter with w and lo: %.4g %.4g %.4g (12, 8, ~6)", all[0], all[1],
          all[2]);
    CHECK(PLAN_ALIGN_N % HZ_OPTSTATE_BLOCK == 0,
          "the planner's tensor alignment (%d) is a multiple of the int8 block (%d)", PLAN_ALIGN_N,
          HZ_OPTSTATE_BLOCK);
}

/* ---- the maps ---- */
static void test_maps(void)
{
    const hz_qmap *q = hz_qmap_get();
    hz_qmap again;
    hz_qmap_build(&again);
    CHECK(memcmp(q, &again, sizeof again) == 0, "the maps build to the same bits twice");
    int inc = 1, sym = 1, mids = 1;
    for (int c = 2; c < 256; c++) inc &= q->sval[c] > q->sval[c - 1];
    for (int r = 1; r < 256; r++) inc &= q->uval[r] > q->uval[r - 1];
    for (int j = 0; j <= 127; j++) sym &= q->sval[128 + j] == -q->sval[128 - j];
    for (int j = 1; j < 128; j++) {
        float a = q->sval[128 + j - 1], b = q->sval[128 + j], m = q->smid[j];
        double exact = ((double)a + b) / 2;
        mids &= m > a && m <= b && m >= exact && nextafterf(m, 0) < exact;
    }
    for (int r = 1; r < 256; r++) {
        float a = q->uval[r - 1], b = q->uval[r], m = q->umid[r];
        double exact = ((double)a + b) / 2;
        mids &= m > a && m <= b && m >= exact && nextafterf(m, 0) < exact;
    }
    CHECK(inc, "sval[1..255] and uval[0..255] strictly ascending");
    CHECK(sym && q->sval[0] == -1.0f && q->sval[1] == -1.0f, "signed map symmetric about code 0, "
          "the spare -128 reads as -1");
    CHECK(mids, "every midpoint is the least fp32 at or above the exact midpoint");
    CHECK(q->sval[128] == 0 && q->sval[255] == 1.0f && q->uval[0] == 0 && q->uval[255] == 1.0f &&
              q->sval[129] == 1e-6f && q->uval[1] == 1e-7f,
          "ends: signed 0 .. 1 with smallest %.3g; unsigned 0 .. 1 with smallest %.3g",
          q->sval[129], q->uval[1]);
    /* the decades: signed codes 64..127 in (0.1, 1], 32..63 in (0.01, 0.1]; unsigned 128..255
     * and 64..127 */
    CHECK(q->sval[128 + 63] == 0.1f && q->sval[128 + 64] > 0.1f && q->sval[128 + 31] == 0.01f &&
              q->uval[127] == 0.1f && q->uval[128] > 0.1f && q->uval[63] == 0.01f,
          "decade tops: sval[+63] = %.9g, sval[+31] = %.9g, uval[127] = %.9g, uval[63] = %.9g",
          q->sval[191], q->sval[159], q->uval[127], q->uval[63]);
}

/* Round trips of one block of N values X: each decoded value is the nearest code's (ties up;
 * unsigned: at least code 1 for x > 0), finite, and 0 for 0; returns the largest |error| /
 * absmax, past the denormal quantum: the decoded code * absmax rounds to a multiple of 2^-149. */
static double round_trip(const float *x, int n, int is_signed, int *bad)
{
    const hz_qmap *q = hz_qmap_get();
    uint8_t codes[HZ_OPTSTATE_BLOCK];
    float back[HZ_OPTSTATE_BLOCK], amax;
    hz_q8_quantize_block_ref(x, n, is_signed, codes, &amax);
    hz_q8_dequantize_block_ref(codes, n, is_signed, amax, back);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const float *val = is_signed ? q->sval : q->uval;
        int c = is_signed ? (codes[i] + 128) & 255 : codes[i];
        double a = amax > 0 ? (double)x[i] / amax : 0;
        double d = fabs(a - val[c]);
        /* nearest: no neighbour nearer (a itself carries one rounding of |x| / absmax) */
        double slack = 2e-7 * fabs(a);
        int floor_rule = !is_signed && c == 1; /* a positive v is never coded 0 */
        if (c > (is_signed ? 1 : 0) && !floor_rule && fabs(a - val[c - 1]) + slack < d) (*bad)++;
        if (c < 255 && fabs(a - val[c + 1]) + slack < d) (*bad)++;
        if (!isfinite(back[i]) || (x[i] == 0 && back[i] != 0)) (*bad)++;
        if (amax > 0) {
            double e = (fabs((double)back[i] - x[i]) - 0x1p-150) / amax;
            if (e > worst) worst = e;
        }
    }
    return worst;
}

static void test_blocks(void)
{
    /* the largest gap is the top decade's: 0.9 / 64 signed, 0.9 / 128 unsigned */
    const double sbound = 0.9 / 64 / 2 * (1 + 1e-6), ubound = 0.9 / 128 / 2 * (1 + 1e-6);
    float x[HZ_OPTSTATE_BLOCK];
    double sworst = 0, uworst = 0;
    int bad = 0;
    for (int trial = 0; trial < 3000; trial++) {
        int n = trial % 7 == 0 ? 1 + trial % HZ_OPTSTATE_BLOCK : HZ_OPTSTATE_BLOCK;
        int kind = trial % 3;
        for (int i = 0; i < n; i++)
            x[i] = kind == 0 ? test_frand() : kind == 1 ? spread(-9, 1) : spread(-40, -37);
        double e = round_trip(x, n, 1, &bad);
        sworst = e > sworst ? e : sworst;
        for (int i = 0; i < n; i++) x[i] = fabsf(x[i]) * (kind == 1 ? fabsf(x[i]) : 1.0f);
        e = round_trip(x, n, 0, &bad);
        uworst = e > uworst ? e : uworst;
    }
    CHECK(bad == 0, "3000 random blocks (uniform, 10 decades, denormals): every code the nearest, "
          "no NaN, zeros stay zero (%d wrong)", bad);
    CHECK(sworst <= sbound && sworst > 0.9 * sbound, "signed round trip error / absmax %.5g <= half the top gap %.5g",
          sworst, sbound);
    CHECK(uworst <= ubound && uworst > 0.9 * ubound, "unsigned round trip error / absmax %.5g <= half the top gap %.5g",
          uworst, ubound);

    /* edges */
    uint8_t codes[HZ_OPTSTATE_BLOCK];
    float back[HZ_OPTSTATE_BLOCK], amax;
    for (int s = 0; s < 2; s++) {
        memset(x, 0, sizeof x);
        x[5] = -0.0f;
        hz_q8_quantize_block_ref(x, HZ_OPTSTATE_BLOCK, s, codes, &amax);
        hz_q8_dequantize_block_ref(codes, HZ_OPTSTATE_BLOCK, s, amax, back);
        int zero = amax == 0;
        for (int i = 0; i < HZ_OPTSTATE_BLOCK; i++) zero &= codes[i] == 0 && back[i] == 0;
        CHECK(zero, "%s all-zero block (one -0): absmax 0, codes 0, zeros back",
              s ? "signed" : "unsigned");
        x[17] = s ? -3.25e-3f : 3.25e-3f;
        hz_q8_quantize_block_ref(x, HZ_OPTSTATE_BLOCK, s, codes, &amax);
        hz_q8_dequantize_block_ref(codes, HZ_OPTSTATE_BLOCK, s, amax, back);
        int one = back[17] == x[17];
        for (int i = 0; i < HZ_OPTSTATE_BLOCK; i++) one &= i == 17 || back[i] == 0;
        CHECK(one, "%s block with one nonzero %.6g: it comes back exactly (%.9g), the rest 0",
              s ? "signed" : "unsigned", x[17], back[17]);
        const float edge[] = {FLT_MAX, 1.0f, FLT_MIN, 1e-45f, hz_float_inl(0x007fffff), 0.5f};
        for (int i = 0; i < 6; i++) x[i] = s && i % 2 ? -edge[i] : edge[i];
        hz_q8_quantize_block_ref(x, 6, s, codes, &amax);
        hz_q8_dequantize_block_ref(codes, 6, s, amax, back);
        int fin = back[0] == x[0];
        for (int i = 0; i < 6; i++) fin &= isfinite(back[i]);
        CHECK(fin, "%s block of FLT_MAX, 1, FLT_MIN, denormals: the absmax exact, all finite",
              s ? "signed" : "unsigned");
        for (int i = 0; i < 8; i++) x[i] = hz_float_inl(1u + 37u * (uint32_t)i) * (s && i % 3 ? -1 : 1);
        int dbad = 0;
        double e = round_trip(x, 8, s, &dbad);
        CHECK(dbad == 0 && e <= (s ? sbound : ubound),
              "%s block of denormals only: nearest codes, error / absmax %.3g", s ? "signed" : "unsigned", e);
    }
    x[0] = 1.0f;
    x[1] = 1e-30f; /* far below 1e-7 of the absmax */
    hz_q8_quantize_block_ref(x, 2, 0, codes, &amax);
    CHECK(codes[1] == 1, "unsigned: a positive value below the smallest code takes code 1 (%d), "
          "never 0", codes[1]);
}

/* ---- bf16 stochastic rounding ---- */
static void test_sr(void)
{
    int bad = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = next_u32() * 2654435761u, r = next_u32() & 0xffff;
        if ((u & 0x7f800000u) == 0x7f800000u) continue;
        float x = hz_float_inl(u);
        uint16_t a = hz_bf16_sr_ref(x, r), b = hz_bf16_sr_inl(x, r);
        uint16_t down = (uint16_t)(u >> 16);
        bad += a != b || (a != down && a != (uint16_t)(down + 1)) ||
               ((u & 0xffff) == 0 && a != down) || !isfinite(hz_bf16_f32_inl(a));
    }
    CHECK(bad == 0, "2e6 random floats: SR gives one of the two neighbours, exact bf16 stay, "
          "inline = reference (%d wrong)", bad);
    CHECK(hz_bf16_sr_ref(FLT_MAX, 0xffff) == 0x7f7f && hz_bf16_sr_ref(-FLT_MAX, 0xffff) == 0xff7f,
          "FLT_MAX never rounds to inf: 0x%04x", hz_bf16_sr_ref(FLT_MAX, 0xffff));
    CHECK(hz_bf16_sr_ref(-0.0f, 0xffff) == 0x8000 && hz_bf16_sr_ref(0.0f, 0xffff) == 0,
          "+-0 stay +-0");
    CHECK(hz_bf16_sr_ref(hz_float_inl(0x3f800001), 0xffff) == 0x3f81 &&
              hz_bf16_sr_ref(hz_float_inl(0x3f800001), 0xfffe) == 0x3f80,
          "1 + 1 ulp rounds up only with the largest random bits");
    /* unbiased: x = 1 + 0.3 bf16 ulp over t, and over i */
    const float x = 1.0f + 0.3f * 0.0078125f;
    const int draws = 200000;
    for (int over_t = 0; over_t < 2; over_t++) {
        double sum = 0;
        for (int d = 0; d < draws; d++) {
            uint32_t h = over_t ? hz_optstate_hash(42, d + 1, 12345) : hz_optstate_hash(42, 7, d);
            sum += hz_bf16_f32_inl(hz_bf16_sr_ref(x, over_t ? h >> 16 : h & 0xffff));
        }
        double sigma = 0.0078125 * sqrt(0.3 * 0.7 / draws);
        CHECK_CLOSE(over_t ? "SR mean of v's bits over 2e5 steps t" :
                             "SR mean of m's bits over 2e5 elements i",
                    sum / draws, x, 4 * sigma, 0);
    }
    /* the hash: reproducible, split in key and mix, distinct per step and seed */
    int64_t big = ((int64_t)3 << 32) + 77;
    CHECK(hz_optstate_hash(9, 5, big) == hz_sr_mix((uint32_t)big, hz_sr_key(9, 5, 3)) &&
              hz_optstate_hash(9, 5, big) == hz_optstate_hash(9, 5, big) &&
              hz_optstate_hash(9, 5, big) != hz_optstate_hash(9, 6, big) &&
              hz_optstate_hash(9, 5, big) != hz_optstate_hash(10, 5, big) &&
              hz_optstate_hash(9, 5, big) != hz_optstate_hash(9, 5, 77),
          "hash(seed, t, i) = mix(i_lo, key(seed, t, i_hi)); differs with t, seed and i_hi");
    int ones[32] = {0};
    for (int i = 0; i < 65536; i++) {
        uint32_t h = hz_optstate_hash(1, 1, i);
        for (int b = 0; b < 32; b++) ones[b] += (h >> b) & 1;
    }
    int worst = 0;
    for (int b = 0; b < 32; b++) worst = abs(ones[b] - 32768) > worst ? abs(ones[b] - 32768) : worst;
    CHECK(worst < 4 * 128, "hash bits over 65536 consecutive i: each set %d +- <%d times (4 sigma)",
          32768, 4 * 128);
}

/* ---- a test problem: master, gradients and state ---- */
typedef struct problem {
    int64_t n;
    uint16_t *w;
    int16_t *lo;
    float *gf;
    uint16_t *gb;
    hz_qstate q;
} problem;

static void problem_new(problem *p, int mode, int64_t n, uint64_t seed)
{
    p->n = n;
    p->w = malloc((size_t)n * 2 + 2);
    p->lo = malloc((size_t)n * 2 + 2);
    p->gf = malloc((size_t)n * 4 + 4);
    p->gb = malloc((size_t)n * 2 + 2);
    if (hz_qstate_alloc(&p->q, mode, n, seed) != 0) exit(2);
    for (int64_t i = 0; i < n; i++) hz_split_inl(test_frand() * 0.1f, &p->w[i], &p->lo[i]);
}

static void problem_free(problem *p)
{
    free(p->w);
    free(p->lo);
    free(p->gf);
    free(p->gb);
    hz_qstate_free(&p->q);
}

static size_t state_elem_bytes(int mode) { return mode == 0 ? 4 : mode == 1 ? 2 : 1; }

static void problem_copy(problem *dst, const problem *src)
{
    problem_new(dst, src->q.mode, src->n, src->q.seed);
    size_t n = (size_t)src->n, eb = state_elem_bytes(src->q.mode);
    memcpy(dst->w, src->w, n * 2);
    memcpy(dst->lo, src->lo, n * 2);
    memcpy(dst->gf, src->gf, n * 4);
    memcpy(dst->gb, src->gb, n * 2);
    memcpy(dst->q.m, src->q.m, n * eb);
    memcpy(dst->q.v, src->q.v, n * eb);
    if (src->q.mode == HZ_OPTSTATE_INT8) {
        size_t nb = (n + HZ_OPTSTATE_BLOCK - 1) / HZ_OPTSTATE_BLOCK;
        memcpy(dst->q.m_absmax, src->q.m_absmax, nb * 4);
        memcpy(dst->q.v_absmax, src->q.v_absmax, nb * 4);
    }
}

/* Which arrays differ: a bit mask w 1, lo 2, m 4, v 8, absmax 16. */
static int problem_diff(const problem *a, const problem *b)
{
    size_t n = (size_t)a->n, eb = state_elem_bytes(a->q.mode);
    int d = (memcmp(a->w, b->w, n * 2) != 0) | (memcmp(a->lo, b->lo, n * 2) != 0) << 1 |
            (memcmp(a->q.m, b->q.m, n * eb) != 0) << 2 | (memcmp(a->q.v, b->q.v, n * eb) != 0) << 3;
    if (a->q.mode == HZ_OPTSTATE_INT8) {
        size_t nb = (n + HZ_OPTSTATE_BLOCK - 1) / HZ_OPTSTATE_BLOCK;
        d |= (memcmp(a->q.m_absmax, b->q.m_absmax, nb * 4) != 0 ||
              memcmp(a->q.v_absmax, b->q.v_absmax, nb * 4) != 0) << 4;
    }
    return d;
}

/* Fresh gradients: spread over decades, some exact zeros; both dtypes hold the same values. */
static void fresh_grads(problem *p)
{
    for (int64_t i = 0; i < p->n; i++) {
        float g = i % 11 == 3 ? 0.0f : spread(-6, 0);
        p->gb[i] = hz_f32_bf16_inl(g);
        p->gf[i] = hz_bf16_f32_inl(p->gb[i]);
    }
}

static hz_adam_coef coef_at(int64_t t, float gscale)
{
    hz_optim o = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 0.1f, 0, 0};
    return hz_adam_coef_of(&o, 1e-2f, 1, gscale, t);
}

/* ---- fast path against the reference ---- */
static void test_fast_vs_ref(void)
{
    const int64_t sizes[] = {1, 63, 64, 65, 1000, 4097};
    for (int mode = 0; mode < HZ_OPTSTATE_MODE_N; mode++)
        for (int gbf = 0; gbf < 2; gbf++) {
            int diffs = 0, cases = 0;
            int64_t bad = 0;
            for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
                const int64_t offs[] = {0, mode == HZ_OPTSTATE_INT8 ? 128 : 3};
                for (int o = 0; o < 2; o++) {
                    int64_t first = offs[o], n = sizes[z];
                    problem a, b;
                    problem_new(&a, mode, first + n + 5, 77);
                    problem_copy(&b, &a);
                    for (int64_t t = 1; t <= 4; t++) {
                        fresh_grads(&a);
                        memcpy(b.gf, a.gf, (size_t)a.n * 4);
                        memcpy(b.gb, a.gb, (size_t)a.n * 2);
                        hz_adam_coef k = coef_at(t, t == 3 ? 0.5f : 1.0f);
                        const void *ga = gbf ? (const void *)a.gb : a.gf;
                        const void *gb = gbf ? (const void *)b.gb : b.gf;
                        bad += hz_qadamw_ref(&a.q, a.w, a.lo, ga, gbf, first, n, &k, t);
                        bad += hz_qadamw_range(&b.q, b.w, b.lo, gb, gbf, first, n, &k, t);
                        int d = problem_diff(&a, &b);
                        diffs += d != 0;
                        if (d) printf("  differ: n %lld first %lld t %lld mask %d\n", (long long)n,
                                      (long long)first, (long long)t, d);
                        cases++;
                    }
                    problem_free(&a);
                    problem_free(&b);
                }
            }
            CHECK(diffs == 0 && bad == 0,
                  "%s moments, %s gradients: fast == reference bit for bit in %d cases "
                  "(n 1..4097, offsets, t 1..4): %d differ, %lld non-finite",
                  hz_optstate_name(mode), gbf ? "bf16" : "fp32", cases, diffs, (long long)bad);
        }

    /* fp32 mode with finite gradients is hz_adamw_range */
    problem a;
    problem_new(&a, HZ_OPTSTATE_FP32, 4099, 0);
    uint16_t *w = malloc(4099 * 2);
    int16_t *lo = malloc(4099 * 2);
    float *m = calloc(4099, 4), *v = calloc(4099, 4);
    memcpy(w, a.w, 4099 * 2);
    memcpy(lo, a.lo, 4099 * 2);
    for (int64_t t = 1; t <= 3; t++) {
        fresh_grads(&a);
        hz_adam_coef k = coef_at(t, 1.0f);
        hz_qadamw_range(&a.q, a.w, a.lo, a.gf, 0, 0, 4099, &k, t);
        hz_adamw_range(w, lo, m, v, a.gf, 4099, &k);
    }
    CHECK(memcmp(w, a.w, 4099 * 2) == 0 && memcmp(lo, a.lo, 4099 * 2) == 0 &&
              memcmp(m, a.q.m, 4099 * 4) == 0 && memcmp(v, a.q.v, 4099 * 4) == 0,
          "fp32 mode = hz_adamw_range bit for bit over 3 steps of 4099 elements");
    free(w), free(lo), free(m), free(v);
    problem_free(&a);
}

/* bf16 across a 2^32 element boundary (where the hash key changes): sparse mappings, only
 * the pages around the boundary are touched. */
static void test_bf16_far(void)
{
    const int64_t n = ((int64_t)1 << 32) + 4096, first = ((int64_t)1 << 32) - 1000, len = 2000;
    hz_qstate q[2];
    uint16_t *w[2], *lo[2];
    float *g = mmap(NULL, (size_t)n * 4, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    int ok = g != MAP_FAILED;
    for (int c = 0; c < 2 && ok; c++) {
        void *p[4];
        for (int a = 0; a < 4; a++) {
            p[a] = mmap(NULL, (size_t)n * 2, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            ok &= p[a] != MAP_FAILED;
        }
        q[c] = (hz_qstate){HZ_OPTSTATE_BF16, n, 5, p[2], p[3], NULL, NULL};
        w[c] = p[0];
        lo[c] = (uint16_t *)p[1];
    }
    if (!ok) {
        CHECK(1, "bf16 across element 2^32: skipped, no sparse mapping of %lld elements",
              (long long)n);
        return;
    }
    for (int64_t i = first; i < first + len; i++) {
        g[i] = spread(-4, 0);
        w[0][i] = w[1][i] = hz_f32_bf16_inl(test_frand());
    }
    int64_t bad = 0;
    for (int64_t t = 1; t <= 3; t++) {
        hz_adam_coef k = coef_at(t, 1.0f);
        bad += hz_qadamw_ref(&q[0], w[0], (int16_t *)lo[0], g, 0, first, len, &k, t);
        bad += hz_qadamw_range(&q[1], w[1], (int16_t *)lo[1], g, 0, first, len, &k, t);
    }
    int same = memcmp(w[0] + first, w[1] + first, len * 2) == 0 &&
               memcmp(lo[0] + first, lo[1] + first, len * 2) == 0 &&
               memcmp((uint16_t *)q[0].m + first, (uint16_t *)q[1].m + first, len * 2) == 0 &&
               memcmp((uint16_t *)q[0].v + first, (uint16_t *)q[1].v + first, len * 2) == 0;
    CHECK(same && bad == 0, "bf16 moments over elements 2^32 - 1000 .. 2^32 + 1000: fast == "
          "reference bit for bit (the hash key changes at 2^32)");
    munmap(g, (size_t)n * 4);
    for (int c = 0; c < 2; c++) {
        munmap(w[c], (size_t)n * 2);
        munmap(lo[c], (size_t)n * 2);
        munmap(q[c].m, (size_t)n * 2);
        munmap(q[c].v, (size_t)n * 2);
    }
}

/* ---- non-finite gradients ---- */
static void test_nonfinite(void)
{
    const int64_t n = 300; /* 5 blocks, the last partial */
    const int64_t at[] = {7, 70, 71, 299};
    const float vals[] = {NAN, INFINITY, -INFINITY, NAN};
    for (int mode = 0; mode < HZ_OPTSTATE_MODE_N; mode++)
        for (int gbf = 0; gbf < 2; gbf++) {
            problem a, before;
            problem_new(&a, mode, n, 3);
            fresh_grads(&a);
            hz_adam_coef k = coef_at(1, 1.0f);
            hz_qadamw_range(&a.q, a.w, a.lo, gbf ? (void *)a.gb : a.gf, gbf, 0, n, &k, 1);
            problem_copy(&before, &a);
            fresh_grads(&a);
            for (int j = 0; j < 4; j++) {
                a.gf[at[j]] = vals[j];
                a.gb[at[j]] = hz_bf16_from_f32(vals[j]);
            }
            a.gf[150] = 1e30f; /* finite, but not after the scale */
            a.gb[150] = hz_f32_bf16_inl(1e30f);
            k = coef_at(2, 1e10f);
            for (int64_t i = 0; i < n; i++) { /* keep the rest finite after the scale */
                if (i == 150) continue;
                a.gf[i] *= 1e-10f;
                a.gb[i] = hz_f32_bf16_inl(hz_bf16_f32_inl(a.gb[i]) * 1e-10f);
            }
            problem r;
            problem_copy(&r, &a);
            int64_t got = hz_qadamw_range(&a.q, a.w, a.lo, gbf ? (void *)a.gb : a.gf, gbf, 0, n,
                                          &k, 2);
            int64_t got_ref = hz_qadamw_ref(&r.q, r.w, r.lo, gbf ? (void *)r.gb : r.gf, gbf, 0, n,
                                            &k, 2);
            /* which elements kept their values */
            int wrong = 0, nan_n = 0;
            size_t eb = state_elem_bytes(mode);
            for (int64_t i = 0; i < n; i++) {
                int hit = i == 7 || i == 70 || i == 71 || i == 299 || i == 150;
                int64_t blk = i / HZ_OPTSTATE_BLOCK;
                int blk_hit = blk == 0 || blk == 1 || blk == 2 || blk == 4;
                int keep = mode == HZ_OPTSTATE_INT8 ? blk_hit : hit;
                int same = a.w[i] == before.w[i] && a.lo[i] == before.lo[i] &&
                           memcmp((char *)a.q.m + i * eb, (char *)before.q.m + i * eb, eb) == 0 &&
                           memcmp((char *)a.q.v + i * eb, (char *)before.q.v + i * eb, eb) == 0;
                wrong += keep ? !same : a.w[i] == before.w[i] && a.lo[i] == before.lo[i];
                nan_n += isnan(hz_join_inl(a.w[i], a.lo[i]));
                if (mode == HZ_OPTSTATE_FP32)
                    nan_n += !isfinite(((float *)a.q.m)[i]) || !isfinite(((float *)a.q.v)[i]);
                if (mode == HZ_OPTSTATE_BF16)
                    nan_n += !isfinite(hz_bf16_f32_inl(((uint16_t *)a.q.m)[i])) ||
                             !isfinite(hz_bf16_f32_inl(((uint16_t *)a.q.v)[i]));
            }
            if (mode == HZ_OPTSTATE_INT8)
                for (int b = 0; b < 5; b++) {
                    int blk_hit = b != 3;
                    int same = a.q.m_absmax[b] == before.q.m_absmax[b] &&
                               a.q.v_absmax[b] == before.q.v_absmax[b];
                    wrong += blk_hit ? !same : same;
                    nan_n += !isfinite(a.q.m_absmax[b]) || !isfinite(a.q.v_absmax[b]);
                }
            CHECK(got == 5 && got_ref == 5 && wrong == 0 && nan_n == 0 && problem_diff(&a, &r) == 0,
                  "%s moments, %s gradients: NaN, +-inf and an overflow after the scale: %lld "
                  "counted (5; reference %lld), %s untouched, the rest updated (%d wrong), %d "
                  "non-finite in the state, fast == reference",
                  hz_optstate_name(mode), gbf ? "bf16" : "fp32", (long long)got,
                  (long long)got_ref, mode == HZ_OPTSTATE_INT8 ? "their blocks" : "those elements",
                  wrong, nan_n);
            problem_free(&a);
            problem_free(&before);
            problem_free(&r);
        }
}

/* ---- chunks and threads ---- */
static void test_chunks(void)
{
    const int64_t n = 64 * 37 + 21;
    for (int mode = 0; mode < HZ_OPTSTATE_MODE_N; mode++) {
        problem one, cut, pooled[3];
        problem_new(&one, mode, n, 11);
        problem_copy(&cut, &one);
        for (int p = 0; p < 3; p++) problem_copy(&pooled[p], &one);
        const int threads[3] = {1, 3, 8};
        hz_pool *pool[3];
        for (int p = 0; p < 3; p++) pool[p] = hz_pool_new(threads[p]);
        for (int64_t t = 1; t <= 3; t++) {
            fresh_grads(&one);
            hz_adam_coef k = coef_at(t, 1.0f);
            hz_qadamw_range(&one.q, one.w, one.lo, one.gf, 0, 0, n, &k, t);
            /* cut: pieces of 5 * 64 + (odd) elements, or whole blocks for int8 */
            int64_t piece = mode == HZ_OPTSTATE_INT8 ? 5 * 64 : 5 * 64 + 13;
            memcpy(cut.gf, one.gf, (size_t)n * 4);
            for (int64_t at = 0; at < n; at += piece)
                hz_qadamw_range(&cut.q, cut.w, cut.lo, cut.gf, 0, at, at + piece < n ? piece : n - at,
                                &k, t);
            for (int p = 0; p < 3; p++) {
                memcpy(pooled[p].gf, one.gf, (size_t)n * 4);
                hz_qadamw_pool(&pooled[p].q, pooled[p].w, pooled[p].lo, pooled[p].gf, 0, 0, n, &k,
                               t, pool[p]);
            }
        }
        int d = problem_diff(&one, &cut);
        for (int p = 0; p < 3; p++) d |= problem_diff(&one, &pooled[p]);
        CHECK(d == 0, "%s moments: one call, calls on pieces and pools of 1, 3, 8 threads give "
              "the same bits over 3 steps (diff mask %d)", hz_optstate_name(mode), d);
        for (int p = 0; p < 3; p++) {
            hz_pool_free(pool[p]);
            problem_free(&pooled[p]);
        }
        problem_free(&one);
        problem_free(&cut);
    }
}

/* ---- 200 steps on a quadratic ---- */
/* f(p) = sum h_i (p_i - c_i)^2 / 2 with curvatures h over four decades and noisy gradients;
 * every mode starts from the same master and sees the same gradient noise. */
static void test_quadratic(void)
{
    const int64_t n = 4096;
    const int steps = 200;
    float *h = malloc(n * 4), *c = malloc(n * 4), *noise = malloc(n * 4 * steps);
    for (int64_t i = 0; i < n; i++) {
        h[i] = powf(10.0f, -2.0f + 4.0f * (float)i / (float)n);
        c[i] = test_frand();
    }
    for (int64_t i = 0; i < n * steps; i++) noise[i] = 0.05f * test_frand();
    problem p[HZ_OPTSTATE_MODE_N];
    double loss[HZ_OPTSTATE_MODE_N], loss0 = 0;
    hz_optim o = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, 0.1f, 0, 0};
    for (int mode = 0; mode < HZ_OPTSTATE_MODE_N; mode++) {
        problem_new(&p[mode], mode, n, 1234);
        for (int64_t i = 0; i < n; i++) hz_split_inl(0.0f, &p[mode].w[i], &p[mode].lo[i]);
        for (int s = 0; s < steps; s++) {
            for (int64_t i = 0; i < n; i++)
                p[mode].gf[i] = h[i] * (hz_join_inl(p[mode].w[i], p[mode].lo[i]) - c[i]) +
                                noise[s * n + i];
            hz_adam_coef k = hz_adam_coef_of(&o, o.lr, 0, 1.0f, s + 1);
            hz_qadamw_range(&p[mode].q, p[mode].w, p[mode].lo, p[mode].gf, 0, 0, n, &k, s + 1);
        }
        loss[mode] = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = hz_join_inl(p[mode].w[i], p[mode].lo[i]) - c[i];
            loss[mode] += 0.5 * h[i] * d * d;
            if (mode == 0) loss0 += 0.5 * h[i] * (double)c[i] * c[i];
        }
    }
    /* Each step moves a parameter by at most about lr = 0.01, so 200 steps span up to 2. A
     * relative error e in the update direction m / sqrt(v) moves a parameter by at most
     * 200 lr e = 2 e: bf16 rounding (e ~ 2^-8, unbiased, so it mostly cancels) stays far below
     * 0.02; int8 (e up to ~7% for values near a decade's bottom, nearest rounding) below 0.1.
     * The loss follows: within 2% (bf16) and 10% (int8) of fp32's. */
    const double ptol[3] = {0, 0.02, 0.1}, ltol[3] = {0, 0.02, 0.10};
    printf("  quadratic: loss %.6g at the start, after %d steps fp32 %.6g bf16 %.6g int8 %.6g\n",
           loss0, steps, loss[0], loss[1], loss[2]);
    CHECK(loss[0] < 0.1 * loss0, "fp32 moments: 200 steps cut the loss %.4g -> %.4g (< 10%%)",
          loss0, loss[0]);
    for (int mode = 1; mode < HZ_OPTSTATE_MODE_N; mode++) {
        double dmax = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)hz_join_inl(p[mode].w[i], p[mode].lo[i]) -
                            hz_join_inl(p[0].w[i], p[0].lo[i]));
            dmax = d > dmax ? d : dmax;
        }
        CHECK(dmax <= ptol[mode], "%s moments track fp32 over %d steps: max |p - p_fp32| %.4g "
              "tol %.3g", hz_optstate_name(mode), steps, dmax, ptol[mode]);
        CHECK_CLOSE(mode == 1 ? "bf16 moments: final loss against fp32's"
                              : "int8 moments: final loss against fp32's",
                    loss[mode], loss[0], 0, ltol[mode]);
    }
    for (int mode = 0; mode < HZ_OPTSTATE_MODE_N; mode++) problem_free(&p[mode]);
    free(h), free(c), free(noise);
}

int main(void)
{
    test_modes();
    test_maps();
    test_blocks();
    test_sr();
    /* the fast paths twice where the CPU has AVX-512F: the int8 blocks in its intrinsics
     * (runtime/optstate_avx512.c), then in the compiler-vectorised loop */
    int have = hz_qadamw_int8_avx512_use(1);
    for (int pass = 0; pass < 1 + have; pass++) {
        hz_qadamw_int8_avx512_use(pass == 0);
        printf("# fast paths, int8 blocks in %s\n",
               hz_qadamw_int8_avx512_on() ? "AVX-512 intrinsics" : "the vectorised C loop");
        test_fast_vs_ref();
        test_nonfinite();
        test_chunks();
    }
    if (!have) printf("# no AVX-512F on this CPU: its int8 path is not tested here\n");
    hz_qadamw_int8_avx512_use(1);
    test_bf16_far();
    test_quadratic();
    TEST_END();
}
