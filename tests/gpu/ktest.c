/* tests/gpu/ktest.c - the helpers of tests/gpu/ktest.h: host and device buffers, the
 * comparisons, and the one module of every kernel of SRCDIR, compiled with NVRTC as the
 * trainer compiles them (tests/kernel_sources.h). */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_sources.h"
#include "ktest.h"

/* ---- host helpers: bf16, random numbers, buffers ------------------------------------- */

float round_bf(float f) { return bf2f(f2bf(f)); }

int irand(int n) { return (int)((frand() * 0.5f + 0.5f) * (float)n) % n; }

float *hmalloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) { fprintf(stderr, "error: out of host memory\n"); exit(1); }
    return p;
}
/* n random values lo + (hi - lo) * u, rounded to bf16 (what a bf16 tensor would hold). */
float *rand_bf(size_t n, float lo, float hi) {
    float *p = hmalloc(n);
    for (size_t i = 0; i < n; i++) p[i] = round_bf(lo + (hi - lo) * (frand() * 0.5f + 0.5f));
    return p;
}
float *copy_of(const float *x, size_t n) {
    float *p = hmalloc(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

CUdeviceptr dalloc(size_t bytes) {
    CUdeviceptr p;
    CU_CHECK(cuMemAlloc(&p, bytes ? bytes : 16));
    CU_CHECK(cuMemsetD8(p, 0xFF, bytes ? bytes : 16)); /* NaN in bf16 and fp32 */
    return p;
}
void poison(CUdeviceptr p, size_t bytes) { CU_CHECK(cuMemsetD8(p, 0xFF, bytes)); }
CUdeviceptr up_bf(const float *x, size_t n) {
    uint16_t *h = malloc((n ? n : 1) * 2);
    for (size_t i = 0; i < n; i++) h[i] = f2bf(x[i]);
    CUdeviceptr p = dalloc(n * 2);
    CU_CHECK(cuMemcpyHtoD(p, h, n * 2));
    free(h);
    return p;
}
CUdeviceptr up_f32(const float *x, size_t n) {
    CUdeviceptr p = dalloc(n * 4);
    CU_CHECK(cuMemcpyHtoD(p, x, n * 4));
    return p;
}
CUdeviceptr up_i32(const int32_t *x, size_t n) {
    CUdeviceptr p = dalloc(n * 4);
    CU_CHECK(cuMemcpyHtoD(p, x, n * 4));
    return p;
}
float *down_bf(CUdeviceptr p, size_t n) {
    uint16_t *h = malloc((n ? n : 1) * 2);
    CU_CHECK(cuMemcpyDtoH(h, p, n * 2));
    float *f = hmalloc(n);
    for (size_t i = 0; i < n; i++) f[i] = bf2f(h[i]);
    free(h);
    return f;
}
float *down_f32(CUdeviceptr p, size_t n) {
    float *f = hmalloc(n);
    CU_CHECK(cuMemcpyDtoH(f, p, n * 4));
    return f;
}

double rms(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0.0;
}

/* Every value must satisfy |got - want| <= atol + rtol |want| + bscale * bound[i] (bound may
 * be NULL; NaN never passes). Prints the tensor, the max abs diff, and the worst element
 * relative to its tolerance (as the fraction of the tolerance it uses). */
void compare_ex(const char *name, const float *got, const float *want, size_t n, double atol,
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
void compare(const char *name, const float *got, const float *want, size_t n, double atol, double rtol) {
    compare_ex(name, got, want, n, atol, rtol, NULL, 0.0);
}

/* Download N values of device buffer P (bf16 when BF, else fp32) and compare them with
 * WANT as compare_ex does (BOUND may be NULL); the check is named by FMT and what follows. */
void check_dev(int bf, CUdeviceptr p, const float *want, size_t n, double atol, double rtol,
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
void same_bits(const char *name, const float *a, const float *b, size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0 && bad++ == 0) first = i;
    CHECK(bad == 0, "%-34s bit-identical on rerun (%zu/%zu differ, first [%zu])", name, bad, n, first);
}

void check_reruns(float *runs[2], const float *want, size_t n, double atol, double rtol,
                  const float *bound, double bscale, const char *fmt, ...) {
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    compare_ex(name, runs[0], want, n, atol, rtol, bound, bscale);
    same_bits(name, runs[0], runs[1], n);
    free(runs[0]), free(runs[1]);
}

/* ---- NVRTC and the driver API ----------------------------------------------------------- */

static CUmodule mod;
static char prelude[4096] = "/* prelude (tests/gpu/test_kernels.c) */\n";

const char *ktest_prelude(void) { return prelude; }

void ktest_define(const char *name_value) {
    kernel_prelude_define(prelude, sizeof prelude, name_value);
}

static int wgmma_on;
int ktest_wgmma(void) { return wgmma_on; }

int ktest_sms(void) {
    CUdevice d;
    int n = 0;
    CU_CHECK(cuCtxGetDevice(&d));
    CU_CHECK(cuDeviceGetAttribute(&n, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d));
    return n;
}

void compile_and_load(const char *dir, int cc_major, int cc_minor) {
    int nfiles = 0, warned = 0;
    char *src = kernel_sources_read(dir, prelude, &nfiles);
    /* the wgmma primitives' checks after the backend's sources; on sm_90 the module is
     * compiled for sm_90a, whose arch-specific features they need */
    size_t len = strlen(src);
    kernel_source_append(&src, &len, "tests/gpu/wgmma_check.cu");
    nfiles++;
    wgmma_on = cc_major == 9 && cc_minor == 0;
    char arch[32];
    snprintf(arch, sizeof arch, "sm_%d%d%s", cc_major, cc_minor, wgmma_on ? "a" : "");
    size_t n = 0;
    char *cubin = kernel_compile(src, arch, 0, "/tmp/hz_test_kernels_dump.cu", &n, &warned);
    if (!cubin) exit(1);
    CHECK(!warned, "NVRTC compiled %d files from %s for %s with no warning", nfiles, dir, arch);
    CU_CHECK(cuModuleLoadData(&mod, cubin));
    free(cubin);
    free(src);
}

void unload_module(void) { CU_CHECK(cuModuleUnload(mod)); }

CUfunction kernel(const char *name) {
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
void launch_async(const char *name, unsigned gx, unsigned gy, unsigned bx, unsigned smem, void **args) {
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
void launch(const char *name, unsigned gx, unsigned gy, unsigned bx, unsigned smem, void **args) {
    launch_async(name, gx, gy, bx, smem, args);
    CUresult r = cuCtxSynchronize();
    if (r != CUDA_SUCCESS) {
        const char *s = NULL;
        cuGetErrorString(r, &s);
        fprintf(stderr, "%s:%d: kernel %s failed: %s\n", __FILE__, __LINE__, name, s ? s : "?");
        exit(1);
    }
}
unsigned blocks_for(long n, int per_block) {
    long g = (n + per_block - 1) / per_block;
    return (unsigned)(g < 1 ? 1 : g > 65535 ? 65535 : g);
}
