/* runtime/cuda/nvrtc.h - the one NVRTC path: kernel sources -> cubin with the trainer's
 * options, and the trainer's on-disk cubin cache. Used by the cuda backend (generated/
 * kernels.cu at start) and by the tests (tests/kernel_sources.h), so both compile alike. */
#ifndef HZ_CUDA_NVRTC_H
#define HZ_CUDA_NVRTC_H
#include <stddef.h>

/* Compile SRC (NAME in NVRTC messages; the #line directives inside name the real files) for
 * ARCH ("sm_90") with the trainer's options plus EXTRA_N more (e.g. "--ptxas-options=-v").
 * Returns the cubin (malloc'd, *cubin_n bytes), or NULL when NVRTC rejects the source. A
 * non-empty log goes to stderr, and *warned says whether it warns. Exits when the CUDA
 * include directory cannot be found or NVRTC itself fails. */
void *hzcu_nvrtc_compile(const char *src, const char *name, const char *arch,
                         const char *const *extra, int extra_n, size_t *cubin_n, int *warned);

/* The trainer's kernels: the cubin of SRC for ARCH from the cache ($HZ_CACHE_DIR, else
 * ~/.cache/hzc) when its key (source, options, NVRTC version) matches, else compiled (exit
 * on a compile error, the log printed) and stored. *hit: from the cache; PATH receives the
 * cache file ("" when there is no cache directory). */
void *hzcu_nvrtc_cached(const char *src, size_t src_n, const char *name, const char *arch,
                        size_t *cubin_n, int *hit, char *path, size_t path_n);

#endif
