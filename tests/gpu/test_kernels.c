/* tests/gpu/test_kernels.c - every kernel of the cuda backend against the cpu reference ops.
 * Usage: test_kernels [-D NAME=VALUE]... [SRCDIR]   (run from the repository root; SRCDIR
 * defaults to runtime/cuda; -D adds a prelude #define, e.g. -D HZ_ATT_FWD_MINB=3).
 * Compiles the .cu files of SRCDIR (util.cu first, then alphabetical) with NVRTC for this GPU,
 * loads the cubin with the driver API, and for each kernel: fresh random inputs, outputs
 * poisoned with NaN bytes, the same bf16-rounded inputs through runtime/cpu (fp32), and a
 * comparison printing tensor, max abs diff and tolerance (AdamW: bit for bit against the
 * host's own loop, hz_adamw_range of runtime/adamw.c). Ends with attention timings
 * (set HZ_TEST_NO_BENCH=1 to skip them) and the line "N passed, N failed".
 * HZ_TEST_SEED=n changes the random inputs. Gemma 3's cases are in gemma_kernels.h, included
 * below; its head_dim 256 attention needs -D HZ_HD=256. */
#define _DEFAULT_SOURCE
#include <cuda.h>
#include <dirent.h>
#include <math.h>
#include <nvrtc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/attention.cuh"
#include "cuda/check.h" /* CU_CHECK: the cuda backend's checks */
#include "kernel_sources.h"
#include "ops.h"
#include "optstate.h"
#include "rt.h"
#include "test.h"

/* ---- host helpers: bf16, random numbers, buffers ------------------------------------- */

/* bf16 as __float2bfloat16 (round to nearest even) and back: runtime/store.c */
#define f2bf hz_bf16_from_f32
#define bf2f hz_f32_from_bf16
static float round_bf(float f) { return bf2f(f2bf(f)); }
#define frand test_frand

static int irand(int n) { return (int)((frand() * 0.5f + 0.5f) * (float)n) % n; }

static float *hmalloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) { fprintf(stderr, "error: out of host memory\n"); exit(1); }
    return p;
}
/* n random values lo + (hi - lo) * u, rounded to bf16 (what a bf16 tensor would hold). */
static float *rand_bf(size_t n, float lo, float hi) {
    float *p = hmalloc(n);
    for (size_t i = 0; i < n; i++) p[i] = round_bf(lo + (hi - lo) * (frand() * 0.5f + 0.5f));
    return p;
}
static float *copy_of(const float *x, size_t n) {
    float *p = hmalloc(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

static CUdeviceptr dalloc(size_t bytes) {
    CUdeviceptr p;
    CU_CHECK(cuMemAlloc(&p, bytes ? bytes : 16));
    CU_CHECK(cuMemsetD8(p, 0xFF, bytes ? bytes : 16)); /* NaN in bf16 and fp32 */
    return p;
}
static void poison(CUdeviceptr p, size_t bytes) { CU_CHECK(cuMemsetD8(p, 0xFF, bytes)); }
static CUdeviceptr up_bf(const float *x, size_t n) {
    uint16_t *h = malloc((n ? n : 1) * 2);
    for (size_t i = 0; i < n; i++) h[i] = f2bf(x[i]);
    CUdeviceptr p = dalloc(n * 2);
    CU_CHECK(cuMemcpyHtoD(p, h, n * 2));
    free(h);
    return p;
}
static CUdeviceptr up_f32(const float *x, size_t n) {
    CUdeviceptr p = dalloc(n * 4);
    CU_CHECK(cuMemcpyHtoD(p, x, n * 4));
    return p;
}
static CUdeviceptr up_i32(const int32_t *x, size_t n) {
    CUdeviceptr p = dalloc(n * 4);
    CU_CHECK(cuMemcpyHtoD(p, x, n * 4));
    return p;
}
static float *down_bf(CUdeviceptr p, size_t n) {
    uint16_t *h = malloc((n ? n : 1) * 2);
    CU_CHECK(cuMemcpyDtoH(h, p, n * 2));
    float *f = hmalloc(n);
    for (size_t i = 0; i < n; i++) f[i] = bf2f(h[i]);
    free(h);
    return f;
}
static float *down_f32(CUdeviceptr p, size_t n) {
    float *f = hmalloc(n);
    CU_CHECK(cuMemcpyDtoH(f, p, n * 4));
    return f;
}

static double rms(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0.0;
}

/* Every value must satisfy |got - want| <= atol + rtol |want| + bscale * bound[i] (bound may
 * be NULL; NaN never passes). Prints the tensor, the max abs diff, and the worst element
 * relative to its tolerance (as the fraction of the tolerance it uses). */
static void compare_ex(const char *name, const float *got, const float *want, size_t n, double atol,
                       double rtol, const float *bound, double bscale) {
    double maxd = 0.0, worst_r = -1.0, worst_tol = 0.0;
    size_t worst = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double tol = atol + rtol * fabs((double)want[i]) + (bound ? bscale * bound[i] : 0.0);
        if (!(d <= tol)) bad++; /* NaN and Inf fail */
        if (isnan(d) || d > maxd) maxd = isnan(d) ? INFINITY : d;
        double r = isnan(d) ? INFINITY : (tol > 0 ? d / tol : (d > 0 ? INFINITY : 0.0));
        if (r > worst_r) worst_r = r, worst = i, worst_tol = tol;
    }
    if (n == 0) { CHECK(1, "%-34s (empty)", name); return; }
    CHECK(bad == 0, "%-34s max|diff| %.3g; worst [%zu] got %.6g want %.6g tol %.3g (%.2f of it); %zu/%zu out",
          name, maxd, worst, (double)got[worst], (double)want[worst], worst_tol, worst_r, bad, n);
}
static void compare(const char *name, const float *got, const float *want, size_t n, double atol, double rtol) {
    compare_ex(name, got, want, n, atol, rtol, NULL, 0.0);
}

/* Download N values of device buffer P (bf16 when BF, else fp32) and compare them with
 * WANT as compare_ex does (BOUND may be NULL); the check is named by FMT and what follows. */
#ifdef __GNUC__
__attribute__((format(printf, 9, 10)))
#endif
static void check_dev(int bf, CUdeviceptr p, const float *want, size_t n, double atol, double rtol,
                      const float *bound, double bscale, const char *fmt, ...) {
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    float *got = bf ? down_bf(p, n) : down_f32(p, n);
    compare_ex(name, got, want, n, atol, rtol, bound, bscale);
    free(got);
}

/* The deterministic kernels: two runs from the same inputs must agree bit for bit. */
static void same_bits(const char *name, const float *a, const float *b, size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0 && bad++ == 0) first = i;
    CHECK(bad == 0, "%-34s bit-identical on rerun (%zu/%zu differ, first [%zu])", name, bad, n, first);
}

/* ---- NVRTC and the driver API ----------------------------------------------------------- */

static CUmodule mod;
static char prelude[4096] = "/* prelude (tests/gpu/test_kernels.c) */\n";

static void compile_and_load(const char *dir, int cc_major, int cc_minor) {
    int nfiles = 0, warned = 0;
    char *src = kernel_sources_read(dir, prelude, &nfiles);
    char arch[32];
    snprintf(arch, sizeof arch, "sm_%d%d", cc_major, cc_minor);
    size_t n = 0;
    char *cubin = kernel_compile(src, arch, 0, "/tmp/hz_test_kernels_dump.cu", &n, &warned);
    if (!cubin) exit(1);
    CHECK(!warned, "NVRTC compiled %d files from %s for %s with no warning", nfiles, dir, arch);
    CU_CHECK(cuModuleLoadData(&mod, cubin));
    free(cubin);
    free(src);
}

static CUfunction kernel(const char *name) {
    CUfunction f;
    CUresult r = cuModuleGetFunction(&f, mod, name);
    if (r != CUDA_SUCCESS) {
        const char *s = NULL;
        cuGetErrorString(r, &s);
        fprintf(stderr, "error: kernel %s not found in the module: %s\n", name, s ? s : "?");
        exit(1);
    }
    return f;
}

/* Launch a kernel (1-D block) and wait for it; args as cuLaunchKernel takes them. */
static void launch_async(const char *name, unsigned gx, unsigned gy, unsigned bx, unsigned smem, void **args) {
    CUfunction f = kernel(name);
    if (smem > 48 * 1024)
        CU_CHECK(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)smem));
    CUresult r = cuLaunchKernel(f, gx, gy, 1, bx, 1, 1, smem, NULL, args, NULL);
    if (r != CUDA_SUCCESS) {
        const char *s = NULL;
        cuGetErrorString(r, &s);
        fprintf(stderr, "%s:%d: launch of %s (grid %u x %u, block %u, smem %u) failed: %s\n",
                __FILE__, __LINE__, name, gx, gy, bx, smem, s ? s : "?");
        exit(1);
    }
}
static void launch(const char *name, unsigned gx, unsigned gy, unsigned bx, unsigned smem, void **args) {
    launch_async(name, gx, gy, bx, smem, args);
    CUresult r = cuCtxSynchronize();
    if (r != CUDA_SUCCESS) {
        const char *s = NULL;
        cuGetErrorString(r, &s);
        fprintf(stderr, "%s:%d: kernel %s failed: %s\n", __FILE__, __LINE__, name, s ? s : "?");
        exit(1);
    }
}
static unsigned blocks_for(long n, int per_block) {
    long g = (n + per_block - 1) / per_block;
    return (unsigned)(g < 1 ? 1 : g > 65535 ? 65535 : g);
}

/* ---- util.cu ----------------------------------------------------------------------------- */

static void test_util(void) {
    const long n = 10007;
    float *x = hmalloc((size_t)n);
    for (long i = 0; i < n; i++) x[i] = 3.0f * frand();
    float *want = hmalloc((size_t)n);

    CUdeviceptr dx = up_f32(x, (size_t)n), dbf = dalloc((size_t)n * 2), df = dalloc((size_t)n * 4);
    void *a1[] = {&dbf, &dx, (void *)&n};
    launch("hzk_f32_to_bf16", blocks_for(n, 256), 1, 256, 0, a1);
    for (long i = 0; i < n; i++) want[i] = round_bf(x[i]);
    check_dev(1, dbf, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "f32_to_bf16");

    void *a2[] = {&df, &dbf, (void *)&n};
    launch("hzk_bf16_to_f32", blocks_for(n, 256), 1, 256, 0, a2);
    check_dev(0, df, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "bf16_to_f32");

    float *a = rand_bf((size_t)n, -2, 2), *b = rand_bf((size_t)n, -2, 2);
    CUdeviceptr da = up_bf(a, (size_t)n), db = up_bf(b, (size_t)n), dout = dalloc((size_t)n * 2);
    void *a3[] = {&dout, &da, &db, (void *)&n};
    launch("hzk_add_bf16", blocks_for(n, 256) / 4 + 1, 1, 256, 0, a3); /* grid-stride */
    for (long i = 0; i < n; i++) want[i] = round_bf(a[i] + b[i]);
    check_dev(1, dout, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "add_bf16");

    double acc0 = 1.5, acc = 0.0, ss = 1.5;
    for (long i = 0; i < n; i++) ss += (double)x[i] * x[i];
    CUdeviceptr dacc = dalloc(8);
    CU_CHECK(cuMemcpyHtoD(dacc, &acc0, 8));
    CUdeviceptr none = 0, dparts = dalloc(256 * 8);
    void *a4[] = {&dacc, &none, &dx, (void *)&n};
    launch("hzk_sumsq_f32", 7, 1, 256, 0, a4);
    CU_CHECK(cuMemcpyDtoH(&acc, dacc, 8));
    CHECK_CLOSE("sumsq_f32 (1.5 + sum x^2)", acc, ss, 0.0, 1e-12);
    double det[2];
    for (int r = 0; r < 2; r++) { /* the deterministic path: 256 block sums, added in order */
        CU_CHECK(cuMemcpyHtoD(dacc, &acc0, 8));
        CU_CHECK(cuMemsetD8(dparts, 0xFF, 256 * 8));
        void *a9[] = {&dacc, &dparts, &dx, (void *)&n};
        launch("hzk_sumsq_f32", 256, 1, 256, 0, a9);
        int G = 256;
        void *a10[] = {&dacc, &dparts, &G};
        launch("hzk_sum_f64", 1, 1, 1, 0, a10);
        CU_CHECK(cuMemcpyDtoH(&det[r], dacc, 8));
    }
    CHECK_CLOSE("sumsq_f32 block partials + sum_f64", det[0], ss, 0.0, 1e-12);
    CHECK(memcmp(&det[0], &det[1], 8) == 0, "sumsq_f32 block partials bit-identical on rerun");
    cuMemFree(dparts);

    /* colsum: dst += rows of part in order */
    const int G = 37, CC = 300;
    float *part = rand_bf((size_t)G * CC, -1, 1), *dst0 = rand_bf((size_t)CC, -1, 1);
    float *dst_ref = copy_of(dst0, (size_t)CC);
    for (int c = 0; c < CC; c++)
        for (int gg = 0; gg < G; gg++) dst_ref[c] += part[(size_t)gg * CC + c];
    CUdeviceptr dpart = up_f32(part, (size_t)G * CC), ddst = up_f32(dst0, (size_t)CC);
    void *a8[] = {&ddst, &dpart, (void *)&G, (void *)&CC};
    launch("hzk_colsum_f32", (CC + 255) / 256, 1, 256, 0, a8);
    float *cs = down_f32(ddst, (size_t)CC);
    compare("colsum_f32", cs, dst_ref, (size_t)CC, 0.0, 1e-6);
    free(cs), free(part), free(dst0), free(dst_ref);
    cuMemFree(dpart), cuMemFree(ddst);

    float v = 0.25f;
    void *a5[] = {&df, &v, (void *)&n};
    launch("hzk_fill_f32", 3, 1, 256, 0, a5);
    for (long i = 0; i < n; i++) want[i] = 0.25f;
    check_dev(0, df, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "fill_f32");
    float vb = -3.5f;
    void *a6[] = {&dbf, &vb, (void *)&n};
    launch("hzk_fill_bf16", 3, 1, 256, 0, a6);
    for (long i = 0; i < n; i++) want[i] = -3.5f;
    check_dev(1, dbf, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "fill_bf16");

    float s = 0.37f;
    void *a7[] = {&dx, &s, (void *)&n};
    launch("hzk_scale_f32", blocks_for(n, 256), 1, 256, 0, a7);
    for (long i = 0; i < n; i++) want[i] = x[i] * s;
    check_dev(0, dx, want, (size_t)n, 0.0, 0.0, NULL, 0.0, "scale_f32");

    free(x), free(want), free(a), free(b);
    cuMemFree(dx), cuMemFree(dbf), cuMemFree(df), cuMemFree(da), cuMemFree(db), cuMemFree(dout), cuMemFree(dacc);
}

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
static void test_adamw(void) {
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

static void test_adamw_q(void) {
    const long sizes[] = {1, 63, 64, 65, 4097, 100003};
    for (int mode = HZ_OPTSTATE_BF16; mode <= HZ_OPTSTATE_INT8; mode++)
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
            for (int gbf = 0; gbf < 2; gbf++)
                test_adamw_q_case(mode, sizes[z], z % 2 ? (mode == HZ_OPTSTATE_INT8 ? 128 : 3) : 0,
                                  gbf, 0);
    test_adamw_q_case(HZ_OPTSTATE_BF16, 300007, 5, 0, 3); /* small grids stride */
    test_adamw_q_case(HZ_OPTSTATE_INT8, 300007, 64, 1, 2);
}

/* ---- embedding.cu ------------------------------------------------------------------------ */

static void test_embedding(int N, int C, int V) {
    char name[128];
    float *wte = rand_bf((size_t)V * C, -1, 1);
    int32_t *tok = malloc((size_t)N * 4);
    for (int i = 0; i < N; i++) tok[i] = irand(V);
    float *out_ref = hmalloc((size_t)N * C);
    embedding_forward(out_ref, tok, wte, N, C);
    CUdeviceptr dwte = up_bf(wte, (size_t)V * C), dtok = up_i32(tok, (size_t)N), dout = dalloc((size_t)N * C * 2);
    void *a1[] = {&dout, &dtok, &dwte, &N, &C};
    launch("hzk_embedding_forward", blocks_for((long)N * C / 8 + 1, 256), 1, 256, 0, a1);
    check_dev(1, dout, out_ref, (size_t)N * C, 0.0, 0.0, NULL, 0.0,
              "embedding fwd out (C=%d)", C);

    float *g = rand_bf((size_t)N * C, -1, 1), *dw0 = hmalloc((size_t)V * C);
    for (long i = 0; i < (long)V * C; i++) dw0[i] = frand();
    float *dw_ref = copy_of(dw0, (size_t)V * C);
    embedding_backward(dw_ref, g, tok, N, C);
    CUdeviceptr dg = up_bf(g, (size_t)N * C), ddw = up_f32(dw0, (size_t)V * C);
    void *a2[] = {&ddw, &dg, &dtok, &N, &C};
    launch("hzk_embedding_backward", blocks_for((long)N * C / 2 + 1, 256), 1, 256, 0, a2);
    check_dev(0, ddw, dw_ref, (size_t)V * C, 1e-5, 1e-5, NULL, 0.0,
              "embedding bwd dwte (C=%d)", C);
    float *runs[2];
    for (int r = 0; r < 2; r++) { /* the ordered (deterministic) kernel */
        CU_CHECK(cuMemcpyHtoD(ddw, dw0, (size_t)V * C * 4));
        const int threads = C % 2 == 0 ? C / 2 : C;
        void *a3[] = {&ddw, &dg, &dtok, &N, &C, &V};
        launch("hzk_embedding_backward_ordered", (unsigned)(threads + 127) / 128, V < 32 ? V : 32, 128, 0, a3);
        runs[r] = down_f32(ddw, (size_t)V * C);
    }
    snprintf(name, sizeof name, "embedding bwd ordered dwte (C=%d)", C);
    compare(name, runs[0], dw_ref, (size_t)V * C, 1e-5, 1e-5);
    same_bits(name, runs[0], runs[1], (size_t)V * C);
    free(runs[0]), free(runs[1]);
    free(wte), free(tok), free(out_ref), free(g), free(dw0), free(dw_ref);
    cuMemFree(dwte), cuMemFree(dtok), cuMemFree(dout), cuMemFree(dg), cuMemFree(ddw);
}

/* ---- rmsnorm.cu -------------------------------------------------------------------------- */

static void test_rmsnorm(int N, int C) {
    char name[128];
    const float eps = 1e-5f;
    const size_t nc = (size_t)N * C;
    float *a = rand_bf(nc, -2, 2), *b = rand_bf(nc, -2, 2), *w = rand_bf((size_t)C, 0.5f, 1.5f);
    float *out_ref = hmalloc(nc), *rstd_ref = hmalloc((size_t)N);
    rmsnorm_forward(out_ref, rstd_ref, a, w, N, C, eps);
    CUdeviceptr da = up_bf(a, nc), db = up_bf(b, nc), dw = up_bf(w, (size_t)C);
    CUdeviceptr dout = dalloc(nc * 2), drstd = dalloc((size_t)N * 4), dres = dalloc(nc * 2);
    const unsigned blk = C >= 2048 ? 256 : 128;
    float epsv = eps;
    void *a1[] = {&dout, &drstd, &da, &dw, &N, &C, &epsv};
    launch("hzk_rmsnorm_forward", (unsigned)N, 1, blk, 0, a1);
    check_dev(1, dout, out_ref, nc, 1e-5, 1e-2, NULL, 0.0,
              "rmsnorm fwd out (C=%d)", C);
    check_dev(0, drstd, rstd_ref, (size_t)N, 0.0, 1e-5, NULL, 0.0,
              "rmsnorm fwd rstd (C=%d)", C);

    /* residual: res = bf16(a + b), then the norm of the rounded res */
    float *res = hmalloc(nc);
    residual_forward(res, a, b, (int64_t)nc);
    for (size_t i = 0; i < nc; i++) res[i] = round_bf(res[i]);
    rmsnorm_forward(out_ref, rstd_ref, res, w, N, C, eps);
    poison(dout, nc * 2), poison(drstd, (size_t)N * 4);
    void *a2[] = {&dres, &dout, &drstd, &da, &db, &dw, &N, &C, &epsv};
    launch("hzk_residual_rmsnorm_forward", (unsigned)(N / 3 + 1), 1, blk, 0, a2);
    check_dev(1, dres, res, nc, 0.0, 0.0, NULL, 0.0,
              "residual_rmsnorm fwd res (C=%d)", C);
    check_dev(1, dout, out_ref, nc, 1e-5, 1e-2, NULL, 0.0,
              "residual_rmsnorm fwd out (C=%d)", C);
    check_dev(0, drstd, rstd_ref, (size_t)N, 0.0, 1e-5, NULL, 0.0,
              "residual_rmsnorm fwd rstd (C=%d)", C);

    /* backward of the norm of res, with and without the residual gradient */
    float *g = rand_bf(nc, -1, 1), *gres = rand_bf(nc, -1, 1), *dw0 = hmalloc((size_t)C);
    for (int i = 0; i < C; i++) dw0[i] = frand();
    float *dinp_ref = hmalloc(nc), *dw_ref = copy_of(dw0, (size_t)C);
    rmsnorm_backward(dinp_ref, dw_ref, g, res, w, rstd_ref, N, C);
    CUdeviceptr dg = up_bf(g, nc), dgres = up_bf(gres, nc), dres_in = up_bf(res, nc),
                drs = up_f32(rstd_ref, (size_t)N), ddw = up_f32(dw0, (size_t)C), ddinp = dalloc(nc * 2);
    for (int pass = 0; pass < 2; pass++) {
        CUdeviceptr dr = pass ? dgres : 0;
        void *a3[] = {&ddinp, &ddw, &dg, &dres_in, &dw, &drs, &dr, &N, &C};
        launch("hzk_rmsnorm_backward", 37, 1, blk, (unsigned)C * 4, a3);
        float *want = copy_of(dinp_ref, nc);
        if (pass)
            for (size_t i = 0; i < nc; i++) want[i] += gres[i];
        check_dev(1, ddinp, want, nc, 1e-3 * rms(want, nc), 1e-2, NULL, 0.0,
                  "rmsnorm bwd dinp%s (C=%d)", pass ? " + dres" : "", C);
        free(want);
        poison(ddinp, nc * 2);
    }
    /* dw was accumulated twice */
    for (int i = 0; i < C; i++) dw_ref[i] += dw_ref[i] - dw0[i];
    check_dev(0, ddw, dw_ref, (size_t)C, 1e-4 * rms(dw_ref, (size_t)C), 1e-4, NULL, 0.0,
              "rmsnorm bwd dw (2 x accumulated, C=%d)", C);
    /* the deterministic path: block partials, then colsum in order; once from dw0 */
    for (int i = 0; i < C; i++) dw_ref[i] = dw0[i] + (dw_ref[i] - dw0[i]) * 0.5f;
    const int G = 37;
    CUdeviceptr dpart = dalloc((size_t)G * C * 4), dr0 = 0;
    float *runs[2];
    for (int r = 0; r < 2; r++) {
        CU_CHECK(cuMemcpyHtoD(ddw, dw0, (size_t)C * 4));
        poison(dpart, (size_t)G * C * 4), poison(ddinp, nc * 2);
        void *a4[] = {&ddinp, &dpart, &dg, &dres_in, &dw, &drs, &dr0, &N, &C};
        launch("hzk_rmsnorm_backward_part", (unsigned)G, 1, blk, (unsigned)C * 4, a4);
        void *a5[] = {&ddw, &dpart, (void *)&G, &C};
        launch("hzk_colsum_f32", (unsigned)(C + 255) / 256, 1, 256, 0, a5);
        runs[r] = down_f32(ddw, (size_t)C);
    }
    check_dev(1, ddinp, dinp_ref, nc, 1e-3 * rms(dinp_ref, nc), 1e-2, NULL, 0.0,
              "rmsnorm bwd part dinp (C=%d)", C);
    snprintf(name, sizeof name, "rmsnorm bwd part dw (C=%d)", C);
    compare(name, runs[0], dw_ref, (size_t)C, 1e-4 * rms(dw_ref, (size_t)C), 1e-4);
    same_bits(name, runs[0], runs[1], (size_t)C);
    free(runs[0]), free(runs[1]);
    cuMemFree(dpart);
    free(a), free(b), free(w), free(out_ref), free(rstd_ref), free(res), free(g), free(gres), free(dw0);
    free(dinp_ref), free(dw_ref);
    cuMemFree(da), cuMemFree(db), cuMemFree(dw), cuMemFree(dout), cuMemFree(drstd), cuMemFree(dres);
    cuMemFree(dg), cuMemFree(dgres), cuMemFree(dres_in), cuMemFree(drs), cuMemFree(ddw), cuMemFree(ddinp);
}

/* ---- rope.cu ----------------------------------------------------------------------------- */

static void test_rope(int B, int T, int NH, int NKV, int HD, int with_bias, int llama3) {
    char tag[96], name[160];
    snprintf(tag, sizeof tag, "T=%d NH=%d NKV=%d HD=%d%s%s", T, NH, NKV, HD, with_bias ? " bias" : "",
             llama3 ? " llama3" : "");
    const int N = B * T, OUT = (NH + 2 * NKV) * HD, CQ = NH * HD, CK = NKV * HD;
    hz_rope rope = {llama3 ? 500000.0f : 10000.0f, llama3, 8.0f, 1.0f, 4.0f, 8192, 0.0f};
    float *inv_freq = hmalloc((size_t)HD / 2);
    hz_rope_inv_freq(inv_freq, HD, &rope);
    float *qkv = rand_bf((size_t)N * OUT, -2, 2), *bias = rand_bf((size_t)OUT, -1, 1);
    float *q = hmalloc((size_t)N * CQ), *k = hmalloc((size_t)N * CK), *v = hmalloc((size_t)N * CK);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OUT; j++) {
            float x = qkv[(size_t)n * OUT + j];
            if (with_bias) x = round_bf(x + bias[j]);
            if (j < CQ) q[(size_t)n * CQ + j] = x;
            else if (j < CQ + CK) k[(size_t)n * CK + j - CQ] = x;
            else v[(size_t)n * CK + j - CQ - CK] = x;
        }
    rope_forward(q, inv_freq, N, T, NH, HD);
    rope_forward(k, inv_freq, N, T, NKV, HD);
    CUdeviceptr dqkv = up_bf(qkv, (size_t)N * OUT), dbias = with_bias ? up_bf(bias, (size_t)OUT) : 0,
                dinv = up_f32(inv_freq, (size_t)HD / 2);
    CUdeviceptr dq = dalloc((size_t)N * CQ * 2), dk = dalloc((size_t)N * CK * 2), dv = dalloc((size_t)N * CK * 2);
    void *a1[] = {&dq, &dk, &dv, &dqkv, &dbias, &dinv, (void *)&N, (void *)&T, &NH, &NKV, &HD};
    launch("hzk_qkv_bias_rope", (unsigned)((N + 63) / 64), (unsigned)(NH + 2 * NKV), 256, 0, a1);
    check_dev(1, dq, q, (size_t)N * CQ, 2e-2 * rms(q, (size_t)N * CQ), 1e-2, NULL, 0.0,
              "rope fwd q (%s)", tag);
    check_dev(1, dk, k, (size_t)N * CK, 2e-2 * rms(k, (size_t)N * CK), 1e-2, NULL, 0.0,
              "rope fwd k (%s)", tag);
    check_dev(1, dv, v, (size_t)N * CK, 0.0, 0.0, NULL, 0.0,
              "rope fwd v (%s)", tag);

    /* backward: rotate random gradients back, reassemble the fused row, sum dbias */
    float *gq = rand_bf((size_t)N * CQ, -1, 1), *gk = rand_bf((size_t)N * CK, -1, 1), *gv = rand_bf((size_t)N * CK, -1, 1);
    CUdeviceptr dgq = up_bf(gq, (size_t)N * CQ), dgk = up_bf(gk, (size_t)N * CK), dgv = up_bf(gv, (size_t)N * CK);
    rope_backward(gq, inv_freq, N, T, NH, HD);
    rope_backward(gk, inv_freq, N, T, NKV, HD);
    float *want = hmalloc((size_t)N * OUT), *db0 = hmalloc((size_t)OUT);
    for (int j = 0; j < OUT; j++) db0[j] = frand();
    float *db_ref = copy_of(db0, (size_t)OUT);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OUT; j++) {
            float x = j < CQ ? gq[(size_t)n * CQ + j]
                    : j < CQ + CK ? gk[(size_t)n * CK + j - CQ] : gv[(size_t)n * CK + j - CQ - CK];
            want[(size_t)n * OUT + j] = x;
            db_ref[j] += x;
        }
    CUdeviceptr ddqkv = dalloc((size_t)N * OUT * 2), ddb = with_bias ? up_f32(db0, (size_t)OUT) : 0;
    void *a2[] = {&ddqkv, &ddb, &dgq, &dgk, &dgv, &dinv, (void *)&N, (void *)&T, &NH, &NKV, &HD};
    launch("hzk_qkv_rope_backward", (unsigned)((N + 63) / 64), (unsigned)(NH + 2 * NKV), 256, 0, a2);
    check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
              "rope bwd dqkv (%s)", tag);
    if (with_bias) {
        check_dev(0, ddb, db_ref, (size_t)OUT, 1e-2 * sqrt((double)N) * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
                  "rope bwd dbias (%s)", tag);
        /* the deterministic path: per-block partials, then colsum in order */
        const int G = (N + 63) / 64;
        CUdeviceptr dpart = dalloc((size_t)G * OUT * 4);
        float *runs[2];
        for (int r = 0; r < 2; r++) {
            CU_CHECK(cuMemcpyHtoD(ddb, db0, (size_t)OUT * 4));
            poison(dpart, (size_t)G * OUT * 4), poison(ddqkv, (size_t)N * OUT * 2);
            void *a3[] = {&ddqkv, &dpart, &dgq, &dgk, &dgv, &dinv, (void *)&N, (void *)&T, &NH, &NKV, &HD};
            launch("hzk_qkv_rope_backward_part", (unsigned)G, (unsigned)(NH + 2 * NKV), 256, 0, a3);
            void *a4[] = {&ddb, &dpart, (void *)&G, (void *)&OUT};
            launch("hzk_colsum_f32", (unsigned)(OUT + 255) / 256, 1, 256, 0, a4);
            runs[r] = down_f32(ddb, (size_t)OUT);
        }
        check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
                  "rope bwd part dqkv (%s)", tag);
        snprintf(name, sizeof name, "rope bwd part dbias (%s)", tag);
        compare(name, runs[0], db_ref, (size_t)OUT, 1e-2 * sqrt((double)N) * rms(want, (size_t)N * OUT), 1e-2);
        same_bits(name, runs[0], runs[1], (size_t)OUT);
        free(runs[0]), free(runs[1]);
        cuMemFree(dpart);
        cuMemFree(ddb), cuMemFree(dbias);
    }
    free(inv_freq), free(qkv), free(bias), free(q), free(k), free(v), free(gq), free(gk), free(gv);
    free(want), free(db0), free(db_ref);
    cuMemFree(dqkv), cuMemFree(dinv), cuMemFree(dq), cuMemFree(dk), cuMemFree(dv);
    cuMemFree(dgq), cuMemFree(dgk), cuMemFree(dgv), cuMemFree(ddqkv);
}

/* ---- qknorm.cu --------------------------------------------------------------------------- */

/* The fused per-head q/k norm + RoPE against the cpu ops it replaces: rmsnorm over rows of HD
 * (runtime/cpu/rmsnorm.c) then rope (runtime/cpu/rope.c), and back. */
static void test_qk_norm(int B, int T, int NH, int NKV, int HD) {
    char tag[96], name[160];
    snprintf(tag, sizeof tag, "T=%d NH=%d NKV=%d HD=%d", T, NH, NKV, HD);
    const int N = B * T, OUT = (NH + 2 * NKV) * HD, CQ = NH * HD, CK = NKV * HD;
    const float eps = 1e-6f;
    hz_rope rope = {1000000.0f, 0, 1.0f, 1.0f, 4.0f, 8192, 0.0f};
    float *inv_freq = hmalloc((size_t)HD / 2);
    hz_rope_inv_freq(inv_freq, HD, &rope);
    float *qkv = rand_bf((size_t)N * OUT, -3, 3);
    float *wq = rand_bf((size_t)HD, 0.5f, 1.5f), *wk = rand_bf((size_t)HD, 0.5f, 1.5f);
    float *qpre = hmalloc((size_t)N * CQ), *kpre = hmalloc((size_t)N * CK), *v = hmalloc((size_t)N * CK);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OUT; j++) {
            float x = qkv[(size_t)n * OUT + j];
            if (j < CQ) qpre[(size_t)n * CQ + j] = x;
            else if (j < CQ + CK) kpre[(size_t)n * CK + j - CQ] = x;
            else v[(size_t)n * CK + j - CQ - CK] = x;
        }
    float *q = hmalloc((size_t)N * CQ), *k = hmalloc((size_t)N * CK);
    float *rq = hmalloc((size_t)N * NH), *rk = hmalloc((size_t)N * NKV);
    rmsnorm_forward(q, rq, qpre, wq, (int64_t)N * NH, HD, eps);
    rmsnorm_forward(k, rk, kpre, wk, (int64_t)N * NKV, HD, eps);
    rope_forward(q, inv_freq, N, T, NH, HD);
    rope_forward(k, inv_freq, N, T, NKV, HD);
    CUdeviceptr dqkv = up_bf(qkv, (size_t)N * OUT), dinv = up_f32(inv_freq, (size_t)HD / 2);
    CUdeviceptr dwq = up_bf(wq, (size_t)HD), dwk = up_bf(wk, (size_t)HD);
    CUdeviceptr dq = dalloc((size_t)N * CQ * 2), dk = dalloc((size_t)N * CK * 2), dv = dalloc((size_t)N * CK * 2);
    CUdeviceptr dqp = dalloc((size_t)N * CQ * 2), dkp = dalloc((size_t)N * CK * 2);
    CUdeviceptr drq = dalloc((size_t)N * NH * 4), drk = dalloc((size_t)N * NKV * 4);
    poison(dq, (size_t)N * CQ * 2), poison(dk, (size_t)N * CK * 2), poison(dv, (size_t)N * CK * 2);
    poison(dqp, (size_t)N * CQ * 2), poison(dkp, (size_t)N * CK * 2);
    float epsv = eps;
    void *a1[] = {&dq, &dk, &dv, &dqp, &dkp, &drq, &drk, &dqkv, &dwq, &dwk, &dinv,
                  (void *)&N, (void *)&T, &NH, &NKV, &HD, &epsv};
    const unsigned rows_grid = (unsigned)(((long)N * (NH + 2 * NKV) + 7) / 8);
    launch("hzk_qk_norm_rope", rows_grid < 65535 ? rows_grid : 65535, 1, 256, 0, a1);
    check_dev(1, dq, q, (size_t)N * CQ, 2e-2 * rms(q, (size_t)N * CQ), 1e-2, NULL, 0.0, "qk-norm fwd q (%s)", tag);
    check_dev(1, dk, k, (size_t)N * CK, 2e-2 * rms(k, (size_t)N * CK), 1e-2, NULL, 0.0, "qk-norm fwd k (%s)", tag);
    check_dev(1, dv, v, (size_t)N * CK, 0.0, 0.0, NULL, 0.0, "qk-norm fwd v copied (%s)", tag);
    check_dev(1, dqp, qpre, (size_t)N * CQ, 0.0, 0.0, NULL, 0.0, "qk-norm fwd qpre = q proj (%s)", tag);
    check_dev(1, dkp, kpre, (size_t)N * CK, 0.0, 0.0, NULL, 0.0, "qk-norm fwd kpre = k proj (%s)", tag);
    check_dev(0, drq, rq, (size_t)N * NH, 0.0, 1e-5, NULL, 0.0, "qk-norm fwd rstdq (%s)", tag);
    check_dev(0, drk, rk, (size_t)N * NKV, 0.0, 1e-5, NULL, 0.0, "qk-norm fwd rstdk (%s)", tag);

    /* backward: random gradients of the rotated q, k and of v */
    float *gq = rand_bf((size_t)N * CQ, -1, 1), *gk = rand_bf((size_t)N * CK, -1, 1), *gv = rand_bf((size_t)N * CK, -1, 1);
    CUdeviceptr dgq = up_bf(gq, (size_t)N * CQ), dgk = up_bf(gk, (size_t)N * CK), dgv = up_bf(gv, (size_t)N * CK);
    rope_backward(gq, inv_freq, N, T, NH, HD);
    rope_backward(gk, inv_freq, N, T, NKV, HD);
    float *xq = hmalloc((size_t)N * CQ), *xk = hmalloc((size_t)N * CK);
    float *gwq0 = rand_bf((size_t)HD, -1, 1), *gwk0 = rand_bf((size_t)HD, -1, 1);
    float *gwq = copy_of(gwq0, (size_t)HD), *gwk = copy_of(gwk0, (size_t)HD);
    rmsnorm_backward(xq, gwq, gq, qpre, wq, rq, (int64_t)N * NH, HD);
    rmsnorm_backward(xk, gwk, gk, kpre, wk, rk, (int64_t)N * NKV, HD);
    float *want = hmalloc((size_t)N * OUT);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OUT; j++)
            want[(size_t)n * OUT + j] = j < CQ ? xq[(size_t)n * CQ + j]
                                      : j < CQ + CK ? xk[(size_t)n * CK + j - CQ] : gv[(size_t)n * CK + j - CQ - CK];
    /* dw sums N * H rows of g * xhat: the tolerance grows with the square root of their count */
    double dw_tol_q = 2e-3 * sqrt((double)N * NH), dw_tol_k = 2e-3 * sqrt((double)N * NKV);
    CUdeviceptr ddqkv = dalloc((size_t)N * OUT * 2), dgwq = up_f32(gwq0, (size_t)HD), dgwk = up_f32(gwk0, (size_t)HD);
    void *a2[] = {&ddqkv, &dgwq, &dgwk, &dgq, &dgk, &dgv, &dqp, &dkp, &drq, &drk, &dwq, &dwk, &dinv,
                  (void *)&N, (void *)&T, &NH, &NKV, &HD};
    const unsigned G = rows_grid < 132 * 8 ? rows_grid : 132 * 8; /* 8 per SM of an H200, as launch.c */
    launch("hzk_qk_norm_rope_backward", G, 1, 256, 0, a2);
    check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
              "qk-norm bwd dqkv (%s)", tag);
    check_dev(0, dgwq, gwq, (size_t)HD, dw_tol_q, 1e-2, NULL, 0.0, "qk-norm bwd dq_norm (+=) (%s)", tag);
    check_dev(0, dgwk, gwk, (size_t)HD, dw_tol_k, 1e-2, NULL, 0.0, "qk-norm bwd dk_norm (+=) (%s)", tag);
    /* the deterministic path: q then k block partials, colsum in order, twice */
    const int GP = (int)(G < 256 ? G : 256);
    CUdeviceptr dpart = dalloc((size_t)2 * GP * HD * 4);
    float *runs[2][2];
    for (int r = 0; r < 2; r++) {
        CU_CHECK(cuMemcpyHtoD(dgwq, gwq0, (size_t)HD * 4));
        CU_CHECK(cuMemcpyHtoD(dgwk, gwk0, (size_t)HD * 4));
        poison(dpart, (size_t)2 * GP * HD * 4), poison(ddqkv, (size_t)N * OUT * 2);
        void *a3[] = {&ddqkv, &dpart, &dgwk, &dgq, &dgk, &dgv, &dqp, &dkp, &drq, &drk, &dwq, &dwk, &dinv,
                      (void *)&N, (void *)&T, &NH, &NKV, &HD};
        launch("hzk_qk_norm_rope_backward_part", (unsigned)GP, 1, 256, 0, a3);
        CUdeviceptr kpart = dpart + (size_t)GP * HD * 4;
        void *a4[] = {&dgwq, &dpart, (void *)&GP, (void *)&HD};
        launch("hzk_colsum_f32", (unsigned)(HD + 255) / 256, 1, 256, 0, a4);
        void *a5[] = {&dgwk, &kpart, (void *)&GP, (void *)&HD};
        launch("hzk_colsum_f32", (unsigned)(HD + 255) / 256, 1, 256, 0, a5);
        runs[r][0] = down_f32(dgwq, (size_t)HD);
        runs[r][1] = down_f32(dgwk, (size_t)HD);
    }
    check_dev(1, ddqkv, want, (size_t)N * OUT, 2e-2 * rms(want, (size_t)N * OUT), 1e-2, NULL, 0.0,
              "qk-norm bwd part dqkv (%s)", tag);
    snprintf(name, sizeof name, "qk-norm bwd part dq_norm (%s)", tag);
    compare(name, runs[0][0], gwq, (size_t)HD, dw_tol_q, 1e-2);
    same_bits(name, runs[0][0], runs[1][0], (size_t)HD);
    snprintf(name, sizeof name, "qk-norm bwd part dk_norm (%s)", tag);
    compare(name, runs[0][1], gwk, (size_t)HD, dw_tol_k, 1e-2);
    same_bits(name, runs[0][1], runs[1][1], (size_t)HD);
    for (int r = 0; r < 2; r++) free(runs[r][0]), free(runs[r][1]);
    free(inv_freq), free(qkv), free(wq), free(wk), free(qpre), free(kpre), free(v), free(q), free(k);
    free(rq), free(rk), free(gq), free(gk), free(gv), free(xq), free(xk), free(gwq0), free(gwk0);
    free(gwq), free(gwk), free(want);
    cuMemFree(dqkv), cuMemFree(dinv), cuMemFree(dwq), cuMemFree(dwk), cuMemFree(dq), cuMemFree(dk);
    cuMemFree(dv), cuMemFree(dqp), cuMemFree(dkp), cuMemFree(drq), cuMemFree(drk), cuMemFree(dgq);
    cuMemFree(dgk), cuMemFree(dgv), cuMemFree(ddqkv), cuMemFree(dgwq), cuMemFree(dgwk), cuMemFree(dpart);
}

/* ---- attention.cu ------------------------------------------------------------------------ */

/* the launch shapes of runtime/cuda/kernels.h, from the kernels' own constants */
static unsigned att_fwd_smem(int HD) { return (unsigned)HZ_ATT_FWD_SMEM(HD); }
static unsigned att_bwd_smem(int HD) { return (unsigned)HZ_ATT_BWD_SMEM(HD); }

static unsigned att_dq_smem(int HD) { return (unsigned)HZ_ATT_DQ_SMEM(HD); }

/* The three backward kernels in order: D, then dk/dv, then dq. */
static void att_backward(CUdeviceptr ddq, CUdeviceptr ddk, CUdeviceptr ddv, CUdeviceptr dD,
                         CUdeviceptr ddout, CUdeviceptr dq, CUdeviceptr dk, CUdeviceptr dv,
                         CUdeviceptr dout, CUdeviceptr dlse, int B, int T, int NH, int NKV, int HD,
                         float scale, int window, int sync) {
    void (*go)(const char *, unsigned, unsigned, unsigned, unsigned, void **) = sync ? launch : launch_async;
    void *a1[] = {&dD, &ddout, &dout, &B, &T, &NH, &HD};
    go("hzk_attention_backward_preprocess", blocks_for((long)B * T * NH, 8), 1, 256, 0, a1);
    void *a2[] = {&ddk, &ddv, &ddout, &dq, &dk, &dv, &dlse, &dD, &B, &T, &NH, &NKV, &HD, &scale, &window};
    go("hzk_attention_backward", (unsigned)(B * NKV), (unsigned)((T + 63) / 64), 128, att_bwd_smem(HD), a2);
    void *a3[] = {&ddq, &ddout, &dq, &dk, &dv, &dlse, &dD, &B, &T, &NH, &NKV, &HD, &scale, &window};
    go("hzk_attention_backward_dq", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_dq_smem(HD), a3);
}

/* Error bounds of the bf16 roundings the flash kernels make on purpose: P (in P V and P^T dO)
 * and dS (in dS K and dS^T Q) go to bf16, relative error <= 2^-9 each, so per element
 *   |err out| <= 2^-9 sum_k P|v|,  |err dv| <= 2^-9 sum_q P|dO|,
 *   |err dq| <= 2^-9 scale sum_k |dS||k|,  |err dk| <= 2^-9 scale sum_q |dS||q|
 * (plus the rounding of the result). In rows with few keys these terms are large and cancel,
 * so a tolerance from the tensor's rms alone would be wrong there. Computed in double from
 * the reference's lse and out; bk, bv summed over the query heads of each kv head. WINDOW > 0:
 * over the keys of the sliding window only. */
static void att_bounds(float *bo, float *bq, float *bk, float *bv, const float *q, const float *k,
                       const float *v, const float *g, const float *out, const float *lse, int B, int T,
                       int NH, int NKV, int HD, float scale, int window) {
    const int G = NH / NKV;
    double *ak = calloc((size_t)B * T * NKV * HD, sizeof(double)), *av = calloc((size_t)B * T * NKV * HD, sizeof(double));
    double *ao = malloc((size_t)HD * sizeof(double)), *aq = malloc((size_t)HD * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const size_t qo = (((size_t)b * T + t) * NH + h) * HD;
                double D = 0.0;
                for (int d = 0; d < HD; d++) D += (double)g[qo + d] * out[qo + d], ao[d] = aq[d] = 0.0;
                const double L = lse[((size_t)b * NH + h) * T + t];
                for (int s = window > 0 && t >= window ? t - window + 1 : 0; s <= t; s++) {
                    const size_t ko = (((size_t)b * T + s) * NKV + h / G) * HD;
                    double sc = 0.0, dp = 0.0;
                    for (int d = 0; d < HD; d++) sc += (double)q[qo + d] * k[ko + d], dp += (double)g[qo + d] * v[ko + d];
                    const double p = exp(sc * scale - L), ds = fabs(p * (dp - D));
                    for (int d = 0; d < HD; d++) {
                        ao[d] += p * fabs(v[ko + d]);
                        aq[d] += ds * fabs(k[ko + d]) * scale;
                        av[ko + d] += p * fabs(g[qo + d]);
                        ak[ko + d] += ds * fabs(q[qo + d]) * scale;
                    }
                }
                for (int d = 0; d < HD; d++) bo[qo + d] = (float)ao[d], bq[qo + d] = (float)aq[d];
            }
    for (size_t i = 0; i < (size_t)B * T * NKV * HD; i++) bk[i] = (float)ak[i], bv[i] = (float)av[i];
    free(ak), free(av), free(ao), free(aq);
}

/* WINDOW > 0: sliding-window attention with SCALE (Gemma 3's local layers, against
 * attention_forward_window); 0: causal with HD^-0.5 as the cpu reference (SCALE unused). */
static void test_attention_w(int B, int T, int NH, int NKV, int HD, float scale_w, int window) {
    char tag[96], name[160];
    snprintf(tag, sizeof tag, "B=%d T=%d NH=%d NKV=%d HD=%d%s", B, T, NH, NKV, HD,
             window ? " windowed" : "");
    if (window) {
        size_t n = strlen(tag);
        snprintf(tag + n, sizeof tag - n, " %d", window);
    }
    const size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD, nl = (size_t)B * NH * T;
    const float scale = window ? scale_w : (float)(1.0 / sqrt((double)HD)); /* as the cpu reference */
    float *q = rand_bf(nq, -1.5f, 1.5f), *k = rand_bf(nk, -1.5f, 1.5f), *v = rand_bf(nk, -1.5f, 1.5f);
    float *out_ref = hmalloc(nq), *lse_ref = hmalloc(nl), *bo = hmalloc(nq);
    if (window) attention_forward_window(out_ref, lse_ref, q, k, v, B, T, NH, NKV, HD, scale, window);
    else attention_forward(out_ref, lse_ref, q, k, v, B, T, NH, NKV, HD);
    float *g = rand_bf(nq, -1, 1); /* dout, for the backward */
    float *bq = hmalloc(nq), *bk = hmalloc(nk), *bv = hmalloc(nk);
    att_bounds(bo, bq, bk, bv, q, k, v, g, out_ref, lse_ref, B, T, NH, NKV, HD, scale, window);
    CUdeviceptr dq = up_bf(q, nq), dk = up_bf(k, nk), dv = up_bf(v, nk);
    CUdeviceptr dout = dalloc(nq * 2), dlse = dalloc(nl * 4);
    float sc = scale;
    int win = window;
    void *a1[] = {&dout, &dlse, &dq, &dk, &dv, &B, &T, &NH, &NKV, &HD, &sc, &win};
    launch("hzk_attention_forward", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_fwd_smem(HD), a1);
    check_dev(1, dout, out_ref, nq, 1e-6, 4e-3, bo, 6e-3,
              "attention fwd out (%s)", tag);
    check_dev(0, dlse, lse_ref, nl, 1e-4, 1e-4, NULL, 0.0,
              "attention fwd lse (%s)", tag);

    /* backward from the reference out (rounded to bf16, as the device would hold it) and lse */
    for (size_t i = 0; i < nq; i++) out_ref[i] = round_bf(out_ref[i]);
    float *dq_ref = hmalloc(nq), *dk_ref = hmalloc(nk), *dv_ref = hmalloc(nk);
    if (window)
        attention_backward_window(dq_ref, dk_ref, dv_ref, g, q, k, v, out_ref, lse_ref, B, T, NH,
                                  NKV, HD, scale, window);
    else
        attention_backward(dq_ref, dk_ref, dv_ref, g, q, k, v, out_ref, lse_ref, B, T, NH, NKV, HD);
    CUdeviceptr dg = up_bf(g, nq), dO = up_bf(out_ref, nq), dL = up_f32(lse_ref, nl);
    CUdeviceptr ddq = dalloc(nq * 2), ddk = dalloc(nk * 2), ddv = dalloc(nk * 2), dD = dalloc(nl * 4);
    /* twice, outputs poisoned before each run: the backward has no atomics, so the runs must
     * agree bit for bit */
    float *runs[2][3];
    for (int r = 0; r < 2; r++) {
        poison(ddq, nq * 2), poison(ddk, nk * 2), poison(ddv, nk * 2), poison(dD, nl * 4);
        att_backward(ddq, ddk, ddv, dD, dg, dq, dk, dv, dO, dL, B, T, NH, NKV, HD, scale, window, 1);
        runs[r][0] = down_bf(ddq, nq), runs[r][1] = down_bf(ddk, nk), runs[r][2] = down_bf(ddv, nk);
    }
    snprintf(name, sizeof name, "attention bwd dq (%s)", tag);
    compare_ex(name, runs[0][0], dq_ref, nq, 1e-6, 4e-3, bq, 6e-3);
    same_bits(name, runs[0][0], runs[1][0], nq);
    snprintf(name, sizeof name, "attention bwd dk (%s)", tag);
    compare_ex(name, runs[0][1], dk_ref, nk, 1e-6, 4e-3, bk, 6e-3);
    same_bits(name, runs[0][1], runs[1][1], nk);
    snprintf(name, sizeof name, "attention bwd dv (%s)", tag);
    compare_ex(name, runs[0][2], dv_ref, nk, 1e-6, 4e-3, bv, 6e-3);
    same_bits(name, runs[0][2], runs[1][2], nk);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 3; i++) free(runs[r][i]);
    free(q), free(k), free(v), free(out_ref), free(lse_ref), free(g), free(dq_ref), free(dk_ref), free(dv_ref);
    free(bo), free(bq), free(bk), free(bv);
    cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dout), cuMemFree(dlse), cuMemFree(dg), cuMemFree(dO);
    cuMemFree(dL), cuMemFree(ddq), cuMemFree(ddk), cuMemFree(ddv), cuMemFree(dD);
}

static void test_attention(int B, int T, int NH, int NKV, int HD) {
    test_attention_w(B, T, NH, NKV, HD, 0.0f, 0);
}

/* Timings of the attention kernels at a training shape (not checks; printed for the log). */
static void bench_attention(int B, int T, int NH, int NKV, int HD) {
    const size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD, nl = (size_t)B * NH * T;
    float *h = rand_bf(nq, -1.5f, 1.5f);
    CUdeviceptr dq = up_bf(h, nq), dk = up_bf(h, nk), dv = up_bf(h + nk, nk), dg = up_bf(h, nq);
    CUdeviceptr dout = dalloc(nq * 2), dlse = dalloc(nl * 4), ddq = dalloc(nq * 2), ddk = dalloc(nk * 2),
                ddv = dalloc(nk * 2), dD = dalloc(nl * 4);
    float scale = (float)(1.0 / sqrt((double)HD));
    int window = 0;
    void *a1[] = {&dout, &dlse, &dq, &dk, &dv, &B, &T, &NH, &NKV, &HD, &scale, &window};
    CUevent e0, e1, e2;
    CU_CHECK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e1, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e2, CU_EVENT_DEFAULT));
    const int reps = 10;
    for (int r = 0; r <= reps; r++) { /* the first round warms up */
        if (r == 1) CU_CHECK(cuEventRecord(e0, NULL));
        launch_async("hzk_attention_forward", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_fwd_smem(HD), a1);
    }
    CU_CHECK(cuEventRecord(e1, NULL));
    for (int r = 0; r < reps; r++)
        att_backward(ddq, ddk, ddv, dD, dg, dq, dk, dv, dout, dlse, B, T, NH, NKV, HD, scale, 0, 0);
    CU_CHECK(cuEventRecord(e2, NULL));
    CU_CHECK(cuEventSynchronize(e2));
    float ms_f = 0, ms_b = 0;
    CU_CHECK(cuEventElapsedTime(&ms_f, e0, e1));
    CU_CHECK(cuEventElapsedTime(&ms_b, e1, e2));
    ms_f /= reps, ms_b /= reps;
    double flops_f = 4.0 * B * NH * (double)T * T * HD / 2.0; /* causal: half of QK^T and PV */
    int regs[3] = {0}, local[3] = {0};
    const char *names[3] = {"hzk_attention_forward", "hzk_attention_backward", "hzk_attention_backward_dq"};
    for (int i = 0; i < 3; i++) {
        CU_CHECK(cuFuncGetAttribute(&regs[i], CU_FUNC_ATTRIBUTE_NUM_REGS, kernel(names[i])));
        CU_CHECK(cuFuncGetAttribute(&local[i], CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, kernel(names[i])));
    }
    printf("bench   attention B=%d T=%d NH=%d NKV=%d HD=%d causal: fwd %.3f ms %.1f TFLOP/s (%d regs, %d B local); "
           "bwd %.3f ms %.1f TFLOP/s by the 2.5x-forward count (kv %d regs, %d B local; dq %d regs, %d B local)\n",
           B, T, NH, NKV, HD, ms_f, flops_f / ms_f * 1e-9, regs[0], local[0], ms_b, 2.5 * flops_f / ms_b * 1e-9,
           regs[1], local[1], regs[2], local[2]);
    free(h);
    cuEventDestroy(e0), cuEventDestroy(e1), cuEventDestroy(e2);
    cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dg), cuMemFree(dout), cuMemFree(dlse);
    cuMemFree(ddq), cuMemFree(ddk), cuMemFree(ddv), cuMemFree(dD);
}

/* ---- swiglu.cu --------------------------------------------------------------------------- */

static void test_swiglu(long N, int F) {
    const size_t nf = (size_t)N * F;
    float *gu = rand_bf(nf * 2, -4, 4), *gate = hmalloc(nf), *up = hmalloc(nf);
    for (long n = 0; n < N; n++)
        for (int j = 0; j < F; j++) {
            gate[n * F + j] = gu[n * 2 * F + j];
            up[n * F + j] = gu[n * 2 * F + F + j];
        }
    float *h_ref = hmalloc(nf);
    swiglu_forward(h_ref, gate, up, (int64_t)nf);
    CUdeviceptr dgu = up_bf(gu, nf * 2), dh = dalloc(nf * 2);
    void *a1[] = {&dh, &dgu, &N, &F};
    launch("hzk_swiglu_forward", blocks_for((long)nf / 8 + 1, 256), 1, 256, 0, a1);
    check_dev(1, dh, h_ref, nf, 1e-3 * rms(h_ref, nf), 1e-2, NULL, 0.0,
              "swiglu fwd h (F=%d)", F);

    float *g = rand_bf(nf, -1, 1), *dgate = hmalloc(nf), *dup = hmalloc(nf), *want = hmalloc(nf * 2);
    swiglu_backward(dgate, dup, g, gate, up, (int64_t)nf);
    for (long n = 0; n < N; n++)
        for (int j = 0; j < F; j++) {
            want[n * 2 * F + j] = dgate[n * F + j];
            want[n * 2 * F + F + j] = dup[n * F + j];
        }
    CUdeviceptr dg = up_bf(g, nf), ddgu = dalloc(nf * 4);
    void *a2[] = {&ddgu, &dg, &dgu, &N, &F};
    launch("hzk_swiglu_backward", blocks_for((long)nf / 8 + 1, 256), 1, 256, 0, a2);
    check_dev(1, ddgu, want, nf * 2, 1e-3 * rms(want, nf * 2), 1e-2, NULL, 0.0,
              "swiglu bwd dgu (F=%d)", F);
    free(gu), free(gate), free(up), free(h_ref), free(g), free(dgate), free(dup), free(want);
    cuMemFree(dgu), cuMemFree(dh), cuMemFree(dg), cuMemFree(ddgu);
}

/* Gemma's GeGLU (geglu.cu) against runtime/cpu/geglu.c, as swiglu's. */
static void test_geglu(long N, int F) {
    const size_t nf = (size_t)N * F;
    float *gu = rand_bf(nf * 2, -4, 4), *gate = hmalloc(nf), *up = hmalloc(nf);
    for (long n = 0; n < N; n++)
        for (int j = 0; j < F; j++) {
            gate[n * F + j] = gu[n * 2 * F + j];
            up[n * F + j] = gu[n * 2 * F + F + j];
        }
    float *h_ref = hmalloc(nf);
    geglu_forward(h_ref, gate, up, (int64_t)nf);
    CUdeviceptr dgu = up_bf(gu, nf * 2), dh = dalloc(nf * 2);
    void *a1[] = {&dh, &dgu, &N, &F};
    launch("hzk_geglu_forward", blocks_for((long)nf / 8 + 1, 256), 1, 256, 0, a1);
    check_dev(1, dh, h_ref, nf, 1e-3 * rms(h_ref, nf), 1e-2, NULL, 0.0,
              "geglu fwd h (F=%d)", F);

    float *g = rand_bf(nf, -1, 1), *dgate = hmalloc(nf), *dup = hmalloc(nf), *want = hmalloc(nf * 2);
    geglu_backward(dgate, dup, g, gate, up, (int64_t)nf);
    for (long n = 0; n < N; n++)
        for (int j = 0; j < F; j++) {
            want[n * 2 * F + j] = dgate[n * F + j];
            want[n * 2 * F + F + j] = dup[n * F + j];
        }
    CUdeviceptr dg = up_bf(g, nf), ddgu = dalloc(nf * 4);
    void *a2[] = {&ddgu, &dg, &dgu, &N, &F};
    launch("hzk_geglu_backward", blocks_for((long)nf / 8 + 1, 256), 1, 256, 0, a2);
    check_dev(1, ddgu, want, nf * 2, 1e-3 * rms(want, nf * 2), 1e-2, NULL, 0.0,
              "geglu bwd dgu (F=%d)", F);
    free(gu), free(gate), free(up), free(h_ref), free(g), free(dgate), free(dup), free(want);
    cuMemFree(dgu), cuMemFree(dh), cuMemFree(dg), cuMemFree(ddgu);
}

/* ---- crossentropy.cu --------------------------------------------------------------------- */

static void test_crossentropy(int N, int V) {
    const size_t nv = (size_t)N * V;
    float *logits = rand_bf(nv, -4, 4);
    int32_t *tgt = malloc((size_t)N * 4);
    int trained = 0;
    for (int i = 0; i < N; i++) {
        tgt[i] = i % 7 == 3 ? -100 : irand(V);
        trained += tgt[i] != -100;
    }
    float dscale = 1.0f / (float)trained;
    float *dl_ref = hmalloc(nv), *loss_ref = hmalloc((size_t)N);
    crossentropy_forward_backward(dl_ref, loss_ref, logits, tgt, N, V, dscale);
    CUdeviceptr dlog = up_bf(logits, nv), dtgt = up_i32(tgt, (size_t)N), ddl = dalloc(nv * 2), dloss = dalloc((size_t)N * 4);
    for (int inplace = 0; inplace < 2; inplace++) {
        CUdeviceptr dst = inplace ? dlog : ddl;
        void *a1[] = {&dst, &dloss, &dlog, &dtgt, &N, &V, &dscale};
        launch("hzk_crossentropy_forward_backward", (unsigned)N, 1, V >= 4096 ? 1024 : 128, 0, a1);
        check_dev(0, dloss, loss_ref, (size_t)N, 1e-4, 1e-5, NULL, 0.0,
                  "crossentropy losses (V=%d%s)", V, inplace ? ", in place" : "");
        check_dev(1, dst, dl_ref, nv, 1e-3 * rms(dl_ref, nv), 1e-2, NULL, 0.0,
                  "crossentropy dlogits (V=%d%s)", V, inplace ? ", in place" : "");
        poison(dloss, (size_t)N * 4);
    }
    free(logits), free(tgt), free(dl_ref), free(loss_ref);
    cuMemFree(dlog), cuMemFree(dtgt), cuMemFree(ddl), cuMemFree(dloss);
}

#include "gemma_kernels.h" /* Gemma 3's cases, on the helpers above */

int main(int argc, char **argv) {
    const char *dir = "runtime/cuda";
    if (getenv("HZ_TEST_SEED")) test_rng ^= strtoull(getenv("HZ_TEST_SEED"), NULL, 0) * 0x9e3779b97f4a7c15ull;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-D") == 0 && i + 1 < argc) {
            kernel_prelude_define(prelude, sizeof prelude, argv[++i]);
        } else dir = argv[i];
    }
    CU_CHECK(cuInit(0));
    CUdevice dev;
    CUcontext ctx;
    CU_CHECK(cuDeviceGet(&dev, 0));
    CU_CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CU_CHECK(cuCtxSetCurrent(ctx));
    int major = 0, minor = 0;
    char devname[256] = "?";
    CU_CHECK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
    CU_CHECK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
    CU_CHECK(cuDeviceGetName(devname, sizeof devname, dev));
    printf("device: %s (sm_%d%d)\n", devname, major, minor);
    compile_and_load(dir, major, minor);

    test_util();
    test_adamw();
    test_adamw_q();
    test_embedding(400, 256, 300);
    test_embedding(400, 77, 50);
    test_rmsnorm(400, 256);
    test_rmsnorm(300, 100);
    test_rope(2, 200, 8, 2, 64, 0, 0);
    test_rope(2, 128, 8, 2, 128, 1, 1);
    test_rope(2, 200, 8, 2, 32, 1, 0);
    test_rope(1, 4096, 2, 1, 64, 1, 1);
    test_qk_norm(2, 200, 16, 8, 128); /* Qwen3-0.6B's heads */
    test_qk_norm(2, 128, 8, 2, 64);
    test_qk_norm(1, 300, 4, 1, 32);
    test_qk_norm(1, 100, 4, 2, 256);
    test_swiglu(400, 512);
    test_swiglu(300, 100);
    test_geglu(400, 512);
    test_geglu(300, 100);
    test_crossentropy(300, 1000);
    test_crossentropy(100, 1003);
    test_attention(2, 128, 8, 2, 64);
    test_attention(2, 200, 8, 2, 128);
    test_attention(2, 200, 8, 2, 32);
    test_attention(1, 77, 4, 4, 64);
    test_attention(1, 1, 2, 1, 128);
    test_attention(1, 300, 6, 1, 128);
    test_attention(1, 1024, 4, 1, 128);
    test_gemma();
    if (!getenv("HZ_TEST_NO_BENCH")) {
        bench_attention(4, 2048, 32, 8, 128);
        bench_attention(8, 2048, 16, 2, 64);
    }
    CU_CHECK(cuModuleUnload(mod));
    CU_CHECK(cuDevicePrimaryCtxRelease(dev));
    TEST_END();
}
