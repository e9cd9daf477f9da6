/* tests/kernel_sources.h - the cuda backend's kernel sources, read and compiled with NVRTC
 * as the trainer does (in the order of runtime/kernel_order.h, as hzc writes them into
 * generated/kernels.cu, after a prelude of #defines), for tests/nvrtc_compile.c and
 * tests/gpu/test_kernels.c. */
#ifndef HZ_KERNEL_SOURCES_H
#define HZ_KERNEL_SOURCES_H
#include <dirent.h>
#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../runtime/cuda/nvrtc.h"
#include "../runtime/kernel_order.h"

/* Append "#define NAME VALUE" to PRELUDE (of SIZE bytes) for a -D NAME=VALUE option. */
static void kernel_prelude_define(char *prelude, size_t size, const char *name_value)
{
    char def[512];
    snprintf(def, sizeof def, "%s", name_value);
    char *eq = strchr(def, '=');
    if (eq) *eq = ' ';
    size_t len = strlen(prelude);
    snprintf(prelude + len, size - len, "#define %s\n", def);
}

/* Append file PATH to the growing *src (length *len) after a #line naming it. */
static void kernel_source_append(char **src, size_t *len, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot open %s (HINT: run from the repository root)\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char head[4200];
    int hn = snprintf(head, sizeof head, "#line 1 \"%s\"\n", path);
    *src = realloc(*src, *len + (size_t)hn + (size_t)n + 2);
    if (!*src) {
        fprintf(stderr, "error: out of memory\n");
        exit(1);
    }
    memcpy(*src + *len, head, (size_t)hn);
    *len += (size_t)hn;
    if (fread(*src + *len, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "error: cannot read %s\n", path);
        exit(1);
    }
    *len += (size_t)n;
    (*src)[(*len)++] = '\n';
    (*src)[*len] = 0;
    fclose(f);
}

/* PATH is a directory of kernel sources (PRELUDE, then its .cu files in the trainer's
 * order) or one file (a generated kernels.cu, compiled as it is). Returns the source text
 * (malloc'd) and sets *nfiles. */
static char *kernel_sources_read(const char *path, const char *prelude, int *nfiles)
{
    struct stat st;
    char *src = NULL;
    size_t len = 0;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        kernel_source_append(&src, &len, path);
        *nfiles = 1;
        return src;
    }
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "error: cannot open %s (HINT: run from the repository root)\n", path);
        exit(1);
    }
    char **names = NULL;
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!hz_kernel_source_name(e->d_name)) continue;
        names = realloc(names, (size_t)(nn + 1) * sizeof names[0]);
        if (!names || !(names[nn++] = strdup(e->d_name))) {
            fprintf(stderr, "error: out of memory\n");
            exit(1);
        }
    }
    closedir(d);
    if (nn == 0) {
        fprintf(stderr, "error: no kernel sources (.cu files) in %s\n", path);
        exit(1);
    }
    qsort(names, (size_t)nn, sizeof names[0], hz_kernel_source_cmp);
    len = strlen(prelude);
    src = malloc(len + 1);
    memcpy(src, prelude, len + 1);
    for (int i = 0; i < nn; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        kernel_source_append(&src, &len, file);
        free(names[i]);
    }
    free(names);
    *nfiles = nn;
    return src;
}

/* Compile SRC for ARCH ("sm_90") through the trainer's own path (runtime/cuda/nvrtc.c: the
 * same options and CUDA headers; -v adds ptxas' register report). On failure or a warning
 * dumps the source to DUMP. Returns the cubin (malloc'd, *cubin_n bytes), NULL on failure;
 * sets *warned when the log warns. */
static char *kernel_compile(const char *src, const char *arch, int verbose, const char *dump,
                            size_t *cubin_n, int *warned)
{
    const char *ptxas_v[] = {"--ptxas-options=-v"};
    char *cubin = hzcu_nvrtc_compile(src, "hz_kernels.cu", arch, ptxas_v, verbose ? 1 : 0,
                                     cubin_n, warned);
    if (!cubin || *warned) {
        FILE *f = fopen(dump, "wb");
        if (f) fputs(src, f), fclose(f);
        fprintf(stderr, "error: NVRTC %s; source dumped to %s\n",
                !cubin ? "compile failed" : "compiled with warnings", dump);
    }
    return cubin;
}

#endif
