/* tests/nvrtc_compile.c - compile the cuda backend's kernels with NVRTC, no GPU needed.
 * Usage: nvrtc_compile [-v] [-D NAME=VALUE]... [SRCDIR|KERNELS.cu [ARCH]]
 *   A file (a trainer's generated/kernels.cu) is compiled as it is; its #line directives
 *   make NVRTC's messages name templates/kernels.cu.tmpl and runtime/cuda/NAME.cu.
 *   SRCDIR defaults to runtime/cuda, ARCH to sm_90; -v passes -v to ptxas (registers, spills);
 *   -D adds a prelude line #define NAME VALUE.
 * Concatenates the SRCDIR/ *.cu in the kernel source order (runtime/kernel_order.h: util.cu
 * first, then by name, as hzc writes them into kernels.cu), each after a #line naming it,
 * compiles to a CUBIN with the trainer's options, prints the NVRTC log, and
 * exits 0 only when the compile succeeded with no warning in the log. On failure the source
 * is dumped to a file named in the message. Build:
 *   cc -std=c11 -I/usr/local/cuda/include tests/nvrtc_compile.c -L/usr/local/cuda/lib64 -lnvrtc */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_sources.h"

int main(int argc, char **argv) {
    const char *dir = "runtime/cuda", *arch = "sm_90";
    int verbose = 0, npos = 0;
    char prelude[4096] = "/* prelude (tests/nvrtc_compile.c) */\n";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) verbose = 1;
        else if (strcmp(argv[i], "-D") == 0 && i + 1 < argc) {
            kernel_prelude_define(prelude, sizeof prelude, argv[++i]);
        } else if (npos == 0) dir = argv[i], npos++;
        else if (npos == 1) arch = argv[i], npos++;
        else { fprintf(stderr, "usage: %s [-v] [-D NAME=VALUE]... [SRCDIR [ARCH]]\n", argv[0]); return 2; }
    }
    int nn = 0, warned = 0;
    size_t cubin_n = 0;
    char *src = kernel_sources_read(dir, prelude, &nn);
    char *cubin = kernel_compile(src, arch, verbose, "/tmp/hz_kernels_dump.cu", &cubin_n, &warned);
    if (!cubin || warned) return 1;
    const char *out = getenv("HZ_CUBIN_OUT");
    if (out) {
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(cubin, 1, cubin_n, f) != cubin_n) { fprintf(stderr, "error: cannot write %s\n", out); return 1; }
        fclose(f);
    }
    printf("nvrtc_compile: %d files from %s compiled for %s: %zu bytes of cubin\n", nn, dir, arch, cubin_n);
    free(cubin);
    free(src);
    return 0;
}
