/* tests/gpu/ktest.h - what the files of tests/gpu/test_kernels share: host buffers of
 * bf16-rounded random values, device buffers poisoned with NaN bytes, the comparisons that
 * print tensor, max abs diff and tolerance, and the kernels of the one NVRTC module
 * (ktest.c). Each ktest_FAMILY.c tests one op family's kernels against runtime/cpu. */
#ifndef HZ_KTEST_H
#define HZ_KTEST_H
#define TEST_SHARED
#include <cuda.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda/check.h" /* CU_CHECK: the cuda backend's checks */
#include "ops.h"
#include "rt.h"
#include "test.h"

/* ---- host helpers: bf16, random numbers, buffers (ktest.c) ---- */

/* bf16 as __float2bfloat16 (round to nearest even) and back: runtime/store.c */
#define f2bf hz_bf16_from_f32
#define bf2f hz_f32_from_bf16
#define frand test_frand
float round_bf(float f);
int irand(int n);                 /* uniform in [0, n) */
float *hmalloc(size_t n);         /* n floats; out of memory stops the program */
/* n random values lo + (hi - lo) * u, rounded to bf16 (what a bf16 tensor would hold). */
float *rand_bf(size_t n, float lo, float hi);
float *copy_of(const float *x, size_t n);

/* device buffers: dalloc fills with 0xFF bytes (NaN in bf16 and fp32), as poison does */
CUdeviceptr dalloc(size_t bytes);
void poison(CUdeviceptr p, size_t bytes);
CUdeviceptr up_bf(const float *x, size_t n);
CUdeviceptr up_f32(const float *x, size_t n);
CUdeviceptr up_i32(const int32_t *x, size_t n);
float *down_bf(CUdeviceptr p, size_t n);
float *down_f32(CUdeviceptr p, size_t n);

double rms(const float *x, size_t n);

/* Every value must satisfy |got - want| <= atol + rtol |want| + bscale * bound[i] (bound may
 * be NULL; NaN never passes). Prints the tensor, the max abs diff, and the worst element
 * relative to its tolerance (as the fraction of the tolerance it uses). */
void compare_ex(const char *name, const float *got, const float *want, size_t n, double atol,
                double rtol, const float *bound, double bscale);
void compare(const char *name, const float *got, const float *want, size_t n, double atol,
             double rtol);
/* Download N values of device buffer P (bf16 when BF, else fp32) and compare them with
 * WANT as compare_ex does (BOUND may be NULL); the check is named by FMT and what follows. */
#ifdef __GNUC__
__attribute__((format(printf, 9, 10)))
#endif
void check_dev(int bf, CUdeviceptr p, const float *want, size_t n, double atol, double rtol,
               const float *bound, double bscale, const char *fmt, ...);
/* The deterministic kernels: two runs from the same inputs must agree bit for bit. */
void same_bits(const char *name, const float *a, const float *b, size_t n);
/* A deterministic kernel's two runs from the same inputs, RUNS[0] and RUNS[1] (N values
 * each, freed here): the first against WANT as compare_ex, then the second bit for bit
 * against the first; both checks named by FMT and what follows. */
#ifdef __GNUC__
__attribute__((format(printf, 8, 9)))
#endif
void check_reruns(float *runs[2], const float *want, size_t n, double atol, double rtol,
                  const float *bound, double bscale, const char *fmt, ...);

/* ---- NVRTC and the driver API (ktest.c) ---- */

/* Add "#define NAME VALUE" to the prelude of the sources, for a -D NAME=VALUE option. */
void ktest_define(const char *name_value);
/* The prelude so far (the -D defines), e.g. to skip cases a define does not enable. */
const char *ktest_prelude(void);
/* Compile the .cu files of DIR with NVRTC for sm_MAJORMINOR and load the module. */
void compile_and_load(const char *dir, int cc_major, int cc_minor);
void unload_module(void);
/* 1 when the module was compiled for sm_90a (an sm_90 GPU): util.cu's wgmma primitives run */
int ktest_wgmma(void);
int ktest_sms(void); /* the current device's multiprocessors */
CUfunction kernel(const char *name);
/* Launch a kernel (1-D block); args as cuLaunchKernel takes them. launch waits for it. */
void launch_async(const char *name, unsigned gx, unsigned gy, unsigned bx, unsigned smem,
                  void **args);
void launch(const char *name, unsigned gx, unsigned gy, unsigned bx, unsigned smem, void **args);
unsigned blocks_for(long n, int per_block);

/* ---- the op families, in the order main runs them ---- */
void test_util(void);                                             /* ktest_util.c */
void test_adamw(void);                                            /* ktest_adamw.c */
void test_adamw_q(void);
void test_embedding(int N, int C, int V);                         /* ktest_embedding.c */
void test_rmsnorm(int N, int C);                                  /* ktest_rmsnorm.c */
void test_rmsnorm_backward_groups(int N, int C, int onep);
void bench_rmsnorm_backward(int N, int C);
void bench_rope(int N, int T, int NH, int NKV, int HD);
void test_rope(int B, int T, int NH, int NKV, int HD, int with_bias, int llama3); /* ktest_rope.c */
void test_qk_norm(int B, int T, int NH, int NKV, int HD);
void test_swiglu(long N, int F);                                  /* ktest_glu.c */
void test_geglu(long N, int F);
void test_crossentropy(int N, int V);                             /* ktest_crossentropy.c */
void test_attention(int B, int T, int NH, int NKV, int HD);       /* ktest_attention.c */
/* WINDOW > 0: sliding-window attention scaled by SCALE_W; 0: test_attention */
void test_attention_w(int B, int T, int NH, int NKV, int HD, float scale_w, int window);
/* cuDNN's fused attention (causal, SCALE; over WINDOW keys, 0: all) against the cpu reference
 * and mixed with hzc's kernels; one "skip" line when cuDNN is not available */
void test_attention_cudnn_w(int B, int T, int NH, int NKV, int HD, float scale, int window);
void test_attention_cudnn(int B, int T, int NH, int NKV, int HD, float scale);
/* hzc's attention kernels and cuDNN's (when available): fwd and bwd TFLOP/s (WINDOW: 0 causal) */
void bench_attention_w(int B, int T, int NH, int NKV, int HD, int window);
void bench_attention(int B, int T, int NH, int NKV, int HD);
void test_gemma(void);                                            /* ktest_gemma.c */
/* attention_wgmma.cu's forward (head_dim 128, causal) against the cpu reference; a skip line
 * where the GPU is not sm_90 */
void test_attention_wgmma(int B, int T, int NH, int NKV);       /* ktest_attention.c */
/* util.cu's wgmma primitives in attention's shapes (tests/gpu/wgmma_check.cu); a skip line
 * where the GPU is not sm_90 */
void test_wgmma(void);                                            /* ktest_wgmma.c */

#endif
