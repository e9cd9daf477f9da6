/* runtime/cuda/check.h - the checks every CUDA runtime, driver, NVRTC and cuBLASLt call of the
 * cuda backend (and of tests/gpu) goes through: on failure they print file:line, the call text
 * and the library's own error string, with a hint, and stop the program. Static inline, so a
 * program that links only NVRTC (tests/nvrtc_compile.c) pulls in no other CUDA library. */
#ifndef HZ_CUDA_CHECK_H
#define HZ_CUDA_CHECK_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda.h>
#include <cuda_runtime.h>
#include <nvrtc.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes" /* cublasLtLoggerForceDisable() */
#include <cublasLt.h>
#pragma GCC diagnostic pop

#define CUDA_CHECK(call) hzcu_check_cuda((call), #call, __FILE__, __LINE__)
#define CU_CHECK(call) hzcu_check_cu((call), #call, __FILE__, __LINE__)
#define NVRTC_CHECK(call) hzcu_check_nvrtc((call), #call, __FILE__, __LINE__)
#define LT_CHECK(call) hzcu_check_lt((call), #call, __FILE__, __LINE__)

#define HZCU_HINT                                                                             \
    "HINT: check that the GPU is visible and has free memory (nvidia-smi) and that the driver\n" \
    "      supports this CUDA toolkit; a kernel fault is reported by a later call: rerun with\n"  \
    "      HZ_SYNC=1 to stop at the op that failed\n"

/* An error that is not a library call: "train: error: MESSAGE", then exit(1). */
#ifdef __GNUC__
__attribute__((format(printf, 1, 2), noreturn))
#endif
static inline void hzcu_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout); /* what the program printed so far comes first */
    fprintf(stderr, "train: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static inline void hzcu_check_cuda(cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess) return;
    fflush(stdout);
    fprintf(stderr, "train: %s:%d: CUDA error: %s failed: %s (%s)\n%s", file, line, call,
            cudaGetErrorString(e), cudaGetErrorName(e), HZCU_HINT);
    exit(1);
}

static inline void hzcu_check_cu(CUresult r, const char *call, const char *file, int line)
{
    if (r == CUDA_SUCCESS) return;
    fflush(stdout);
    const char *msg = NULL, *name = NULL;
    cuGetErrorString(r, &msg);
    cuGetErrorName(r, &name);
    fprintf(stderr, "train: %s:%d: CUDA driver error: %s failed: %s (%s)\n%s", file, line, call,
            msg ? msg : "unknown error", name ? name : "?", HZCU_HINT);
    exit(1);
}

static inline void hzcu_check_nvrtc(nvrtcResult r, const char *call, const char *file, int line)
{
    if (r == NVRTC_SUCCESS) return;
    fflush(stdout);
    fprintf(stderr, "train: %s:%d: NVRTC error: %s failed: %s\n"
                    "HINT: the NVRTC library is unusable; check that the CUDA toolkit install "
                    "(libnvrtc) matches the one hzc was built with\n",
            file, line, call, nvrtcGetErrorString(r));
    exit(1);
}

static inline void hzcu_check_lt(cublasStatus_t st, const char *call, const char *file, int line)
{
    if (st == CUBLAS_STATUS_SUCCESS) return;
    fflush(stdout);
    fprintf(stderr, "train: %s:%d: cuBLASLt error: %s failed: %s\n%s", file, line, call,
            cublasLtGetStatusString(st), HZCU_HINT);
    exit(1);
}

#endif
