/* runtime/kernel_order.h - the order of the cuda backend's kernel sources (runtime/cuda/
 * *.cu) in the one NVRTC program: util.cu first (it defines what the others use), then the
 * others by name. The one rule for hzc, which concatenates them into generated/kernels.cu
 * (compiler/emit.c), and the tests, which compile runtime/cuda directly (tests/
 * kernel_sources.h), so both build the same program. */
#ifndef HZ_KERNEL_ORDER_H
#define HZ_KERNEL_ORDER_H
#include <string.h>

/* qsort comparison of two file names (elements of type char *) in that order. */
static inline int hz_kernel_source_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int ux = strcmp(x, "util.cu") == 0, uy = strcmp(y, "util.cu") == 0;
    if (ux != uy) return uy - ux;
    return strcmp(x, y);
}

#endif
