/* runtime/kernel_order.h - the cuda backend's kernel sources (runtime/cuda/X.cuh and X.cu)
 * and their order in the one NVRTC program: the .cuh files first (plain macros that the
 * host launch code includes too, e.g. attention.cuh), then util.cu (it defines what the
 * others use), then the other .cu files by name. The one rule for hzc, which concatenates them into generated/kernels.cu
 * (compiler/emit.c), and the tests, which compile runtime/cuda directly (tests/
 * kernel_sources.h), so both build the same program. */
#ifndef HZ_KERNEL_ORDER_H
#define HZ_KERNEL_ORDER_H
#include <string.h>

static inline int hz_name_ends(const char *name, const char *ext)
{
    size_t n = strlen(name), e = strlen(ext);
    return n > e && strcmp(name + n - e, ext) == 0;
}

/* Whether a file name in runtime/cuda is a kernel source. */
static inline int hz_kernel_source_name(const char *name)
{
    return hz_name_ends(name, ".cu") || hz_name_ends(name, ".cuh");
}

/* qsort comparison of two file names (elements of type char *) in that order. */
static inline int hz_kernel_source_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int hx = hz_name_ends(x, ".cuh"), hy = hz_name_ends(y, ".cuh");
    if (hx != hy) return hy - hx;
    int ux = strcmp(x, "util.cu") == 0, uy = strcmp(y, "util.cu") == 0;
    if (ux != uy) return uy - ux;
    return strcmp(x, y);
}

#endif
