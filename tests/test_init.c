/* tests/test_init.c - the random init (runtime/init.c): the float log and sine/cosine against
 * double libm, the normals against their definition in rt.h computed in double, the
 * distribution of 1e6 of them, the same store for every thread count and chunking, and the
 * rules (norm weights 1, biases 0, a tied head, padding untouched). */
#include <stdlib.h>
#include <string.h>

#include "init_math.h"
#include "plan.h"
#include "rt.h"
#include "test.h"
#include "test_specs.h"

#define SAMPLES 1000000


static double ulp_of(double x)
{
    int e;
    frexp(x, &e);
    return ldexp(1.0, e - 24);
}

/* hz_init_logf on every 5th float of [2^-32, 1]: error in ulps of the result (absolute error
 * where |ln x| < 2^-10, beside 1). */
static void check_log(void)
{
    double worst_ulp = 0, worst_abs = 0, at_ulp = 0, at_abs = 0;
    uint32_t lo = 0x2f800000u, hi = 0x3f800000u; /* 2^-32 .. 1 */
    for (uint32_t b = lo; b <= hi; b += 5) {
        float x = hz_float_inl(b);
        double want = log((double)x), got = hz_init_logf(x), d = fabs(got - want);
        if (fabs(want) < 0x1p-10) {
            if (d > worst_abs) worst_abs = d, at_abs = x;
        } else if (d / ulp_of(want) > worst_ulp) {
            worst_ulp = d / ulp_of(want), at_ulp = x;
        }
    }
    float one = hz_init_logf(1.0f);
    CHECK(worst_ulp <= 3.0, "ln on [2^-32, 1] (every 5th float): max error %.3f ulp at %.9g "
                            "(bound 3)", worst_ulp, at_ulp);
    CHECK(worst_abs <= 1e-7, "ln beside 1 (|ln x| < 2^-10): max abs error %.3g at %.9g "
                             "(bound 1e-7)", worst_abs, at_abs);
    CHECK(one == 0.0f, "ln(1) = %g exactly 0", one);
}

/* hz_init_sincos_turn on all 2^24 angles: max abs error and ulp error (where |v| > 2^-10). */
static void check_sincos(void)
{
    double worst_abs = 0, worst_ulp = 0, nsq = 0;
    int32_t at = 0;
    for (int32_t a = 0; a < (1 << 24); a++) {
        float c, s;
        hz_init_sincos_turn(a, &c, &s);
        double th = 6.283185307179586 * a / 16777216.0, wc = cos(th), ws = sin(th);
        double d = fmax(fabs(c - wc), fabs(s - ws));
        if (d > worst_abs) worst_abs = d, at = a;
        if (fabs(wc) > 0x1p-10) worst_ulp = fmax(worst_ulp, fabs(c - wc) / ulp_of(wc));
        if (fabs(ws) > 0x1p-10) worst_ulp = fmax(worst_ulp, fabs(s - ws) / ulp_of(ws));
        nsq = fmax(nsq, fabs((double)c * c + (double)s * s - 1.0));
    }
    CHECK(worst_abs <= 1.2e-7, "sin/cos of all 2^24 turn fractions: max abs error %.3g at a = %d "
                               "(bound 1.2e-7)", worst_abs, (int)at);
    CHECK(worst_ulp <= 2.5, "sin/cos where |value| > 2^-10: max error %.3f ulp (bound 2.5)",
          worst_ulp);
    CHECK(nsq <= 3e-7, "|cos^2 + sin^2 - 1| <= %.3g (bound 3e-7)", nsq);
}

/* The definition in rt.h, in double from the same bits. */
static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double normal_def(uint64_t seed, int64_t i)
{
    const uint64_t gamma = 0x9e3779b97f4a7c15ull;
    uint64_t key = mix(seed + gamma);
    int64_t g = i / 64, j = i % 64;
    uint64_t k = (uint64_t)g * 32 + (uint64_t)(j % 32), h = mix(key + (k + 1) * gamma);
    float u1 = ((float)(int32_t)(h >> 33) + 0.5f) * 0x1p-31f;
    double u2 = (double)((uint32_t)h >> 8) / 16777216.0;
    double r = sqrt(-2.0 * log((double)u1)), th = 6.283185307179586 * u2;
    return j < 32 ? r * cos(th) : r * sin(th);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 1e6 normals of seed 42 from index 3e9 (past 2^31, as a large model's are): the definition,
 * moments, the tail, the CDF, correlations. Bounds are about 5 standard errors of each
 * statistic at n = 1e6 (the KS bound is the 0.1% critical value, 1.95 / sqrt(n)). */
static void check_distribution(void)
{
    const int64_t first = 3000000000ll;
    float *z = malloc(SAMPLES * sizeof(float));
    double worst = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, tail = 0, c01 = 0, lag = 0, seeds = 0;
    float zmax = 0;
    for (int64_t i = 0; i < SAMPLES; i++) {
        z[i] = hz_init_normal(42, first + i);
        double ref = normal_def(42, first + i), x = z[i];
        worst = fmax(worst, fabs(x - ref) / fmax(1.0, fabs(ref)));
        s1 += x, s2 += x * x, s3 += x * x * x, s4 += x * x * x * x;
        tail += fabs(x) > 3.0;
        zmax = fmaxf(zmax, fabsf(z[i]));
        if (i > 0) lag += x * z[i - 1];
        seeds += x * hz_init_normal(43, first + i);
    }
    /* each pair's two halves: index 64g + j and 64g + 32 + j */
    for (int64_t g = 0; g < SAMPLES / 64; g++)
        for (int j = 0; j < 32; j++) c01 += (double)z[g * 64 + j] * z[g * 64 + 32 + j];
    double n = SAMPLES, mean = s1 / n, var = s2 / n - mean * mean;
    CHECK(worst <= 1e-6, "1e6 normals vs the definition in double: max error %.3g "
                         "(relative beyond |z| = 1; bound 1e-6)", worst);
    CHECK(fabs(mean) <= 5e-3, "mean %.5f (bound |mean| <= 5e-3)", mean);
    CHECK(fabs(var - 1) <= 7e-3, "variance %.5f (bound |var - 1| <= 7e-3)", var);
    CHECK(fabs(s3 / n) <= 0.02, "third moment %.5f (bound 0.02)", s3 / n);
    CHECK(fabs(s4 / n - 3) <= 0.05, "fourth moment %.5f (3 +- 0.05)", s4 / n);
    CHECK(fabs(tail / n - 0.0026998) <= 2.6e-4, "fraction beyond 3 sigma %.6f (0.0026998 +- 2.6e-4)",
          tail / n);
    CHECK(zmax <= 6.67f && zmax > 4.0f, "max |z| %.4f (the generator's bound 6.67; 1e6 normals "
                                        "reach beyond 4)", zmax);
    CHECK(fabs(c01 / (n / 2)) <= 7e-3, "correlation of the pairs' cos and sin halves %.5f "
                                       "(bound 7e-3)", c01 / (n / 2));
    CHECK(fabs(lag / n) <= 5e-3, "correlation of neighbouring indices %.5f (bound 5e-3)", lag / n);
    CHECK(fabs(seeds / n) <= 5e-3, "correlation of seeds 42 and 43 at the same index %.5f "
                                   "(bound 5e-3)", seeds / n);
    qsort(z, SAMPLES, sizeof(float), cmp_float);
    double ks = 0, at = 0;
    for (int64_t i = 0; i < SAMPLES; i++) {
        double cdf = 0.5 * erfc(-z[i] / sqrt(2.0));
        double d = fmax(fabs(cdf - (double)i / n), fabs((double)(i + 1) / n - cdf));
        if (d > ks) ks = d, at = z[i];
    }
    CHECK(ks <= 1.95e-3, "Kolmogorov-Smirnov max |F_n - Phi| %.3g at z = %.3f (bound "
                         "1.95/sqrt(n) = 1.95e-3)", ks, at);
    free(z);
}

/* A hand-made plan: tensors at odd offsets with gaps (padding), a norm, a bias, two
 * matrices crossing many generator blocks, and a tied head on the embedding's elements. */
static hz_tensor fake_tensors[] = {
    {.kind = HZ_WTE, .rows = 101, .cols = 33, .host_n = 5},
    {.kind = HZ_ATTN_NORM, .rows = 33, .cols = 1, .host_n = 3340},
    {.kind = HZ_BQKV, .rows = 71, .cols = 1, .host_n = 3373},
    {.kind = HZ_WQKV, .rows = 70, .cols = 1001, .host_n = 3457},
    {.kind = HZ_FINAL_NORM, .rows = 33, .cols = 1, .host_n = 73600},
    {.kind = HZ_LM_HEAD, .rows = 101, .cols = 33, .host_n = 5},
};

static void fill(hz_store *s, uint16_t w, int16_t lo)
{
    for (int64_t i = 0; i < s->n; i++) s->w[i] = w, s->lo[i] = lo;
}

static int64_t store_diff(const hz_store *a, const hz_store *b)
{
    int64_t d = 0;
    for (int64_t i = 0; i < a->n; i++) d += a->w[i] != b->w[i] || a->lo[i] != b->lo[i];
    return d;
}

/* Every way of running the init gives the store the serial run gives. */
static void check_determinism(const hz_plan *p, const char *name)
{
    hz_store ref, s;
    if (hz_store_alloc(&ref, p, NULL, NULL) != 0 || hz_store_alloc(&s, p, NULL, NULL) != 0) {
        CHECK(0, "%s: store of %lld elements", name, (long long)p->host_store_n);
        return;
    }
    hz_store_init(&ref, p, 7, NULL);
    for (int threads = 1; threads <= 4; threads++) {
        hz_pool *pool = hz_pool_new(threads);
        memset(s.w, 0, (size_t)s.n * 2);
        memset(s.lo, 0, (size_t)s.n * 2);
        hz_store_init(&s, p, 7, pool);
        hz_pool_free(pool);
        int64_t d = store_diff(&s, &ref);
        CHECK(d == 0, "%s: %d-thread pool vs this thread alone: %lld of %lld elements differ",
              name, threads, (long long)d, (long long)s.n);
    }
    const int64_t chunks[] = {1, 31, 63, 64, 65, 2047, 2049, 10007};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        memset(s.w, 0, (size_t)s.n * 2);
        memset(s.lo, 0, (size_t)s.n * 2);
        for (int64_t b = 0; b < s.n; b += chunks[c])
            hz_store_init_range(&s, p, 7, b, b + chunks[c] < s.n ? b + chunks[c] : s.n);
        int64_t d = store_diff(&s, &ref);
        CHECK(d == 0, "%s: in chunks of %lld elements: %lld differ", name, (long long)chunks[c],
              (long long)d);
    }
    hz_store_init(&s, p, 8, NULL);
    int64_t d = store_diff(&s, &ref);
    CHECK(d > ref.n / 2, "%s: seed 8 vs seed 7: %lld of %lld elements differ", name,
          (long long)d, (long long)ref.n);
    hz_store_free(&ref);
    hz_store_free(&s);
}

/* Norm weights 1, biases 0, matrices 0.02 hz_init_normal (the vector loops against the
 * scalar definition), a tied head the embedding's, padding untouched. */
static void check_rules(const hz_plan *p, const char *name)
{
    hz_store s;
    if (hz_store_alloc(&s, p, NULL, NULL) != 0) {
        CHECK(0, "%s: store", name);
        return;
    }
    fill(&s, 0x7fc1, 0x1234); /* a NaN pattern no tensor element gets */
    hz_pool *pool = hz_pool_new(2);
    hz_store_init(&s, p, 11, pool);
    hz_pool_free(pool);
    unsigned char *owned = calloc((size_t)s.n, 1);
    int64_t ones = 0, ones_bad = 0, zeros = 0, zeros_bad = 0, mat = 0, mat_bad = 0;
    double ss = 0;
    int tied_head = 0;
    for (int t = 0; t < p->tensor_n; t++) {
        const hz_tensor *x = &p->tensors[t];
        int64_t n = x->rows * x->cols;
        if (x->kind == HZ_LM_HEAD && p->dims.tied) {
            tied_head = x->host_n == p->tensors[0].host_n;
            continue;
        }
        for (int64_t e = 0; e < n; e++) {
            int64_t i = x->host_n + e;
            float m = hz_store_master(&s, i);
            owned[i] = 1;
            if (x->kind == HZ_ATTN_NORM || x->kind == HZ_MLP_NORM || x->kind == HZ_FINAL_NORM) {
                ones++;
                ones_bad += m != 1.0f;
            } else if (x->kind == HZ_BQKV) {
                zeros++;
                zeros_bad += hz_bits_inl(m) != 0;
            } else {
                mat++;
                mat_bad += hz_bits_inl(m) != hz_bits_inl(0.02f * hz_init_normal(11, i));
                ss += (double)m * m;
            }
        }
    }
    int64_t pad = 0, pad_bad = 0;
    for (int64_t i = 0; i < s.n; i++)
        if (!owned[i]) pad++, pad_bad += s.w[i] != 0x7fc1 || s.lo[i] != 0x1234;
    CHECK(ones > 0 && ones_bad == 0, "%s: norm weights 1: %lld of %lld not", name,
          (long long)ones_bad, (long long)ones);
    CHECK(zeros_bad == 0, "%s: biases 0: %lld of %lld not", name, (long long)zeros_bad,
          (long long)zeros);
    CHECK(mat > 0 && mat_bad == 0, "%s: matrices: %lld of %lld masters are not "
                                   "0.02f * hz_init_normal(seed, index)", name,
          (long long)mat_bad, (long long)mat);
    CHECK(mat < 1000 || fabs(sqrt(ss / (double)mat) - 0.02) < 0.002,
          "%s: matrices' rms %.5f (0.02; checked from 1000 elements)", name,
          sqrt(ss / (double)mat));
    CHECK(pad_bad == 0, "%s: %lld padding elements left as they were, %lld written", name,
          (long long)pad, (long long)pad_bad);
    if (p->dims.tied)
        CHECK(tied_head, "%s: the tied lm_head's elements are the embedding's", name);
    free(owned);
    hz_store_free(&s);
}

int main(void)
{
    check_log();
    check_sincos();
    check_distribution();

    hz_plan fake;
    memset(&fake, 0, sizeof fake);
    fake.tensors = fake_tensors;
    fake.tensor_n = (int)(sizeof fake_tensors / sizeof fake_tensors[0]);
    fake.dims.tied = 1;
    fake.host_store_n = 73700;
    check_determinism(&fake, "hand-made plan");
    check_rules(&fake, "hand-made plan");
    for (int v = 0; v < 2; v++) {
        hzc_spec spec = make_spec(v);
        hzc_plan pl;
        plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
        if (plan_build(&spec, &none, &pl, stderr) != 0) {
            CHECK(0, "variant %d plans", v);
            continue;
        }
        const char *name = v == 0 ? "qwen2-like (biases)" : "tied llama";
        check_determinism(&pl.p, name);
        check_rules(&pl.p, name);
        plan_free(&pl);
    }
    TEST_END();
}
