/* tests/nvrtc_compile.c - compile the cuda backend's kernels with NVRTC, no GPU needed.
 * Usage: nvrtc_compile [-v] [-D NAME=VALUE]... [SRCDIR|KERNELS.cu [ARCH]]
 *   A file (a trainer's generated/kernels.cu) is compiled as it is.
 *   SRCDIR defaults to runtime/cuda, ARCH to sm_90; -v passes -v to ptxas (registers, spills);
 *   -D adds a prelude line #define NAME VALUE.
 * Concatenates SRCDIR/util.cu and then the other SRCDIR/ *.cu in alphabetical order (as the
 * trainer does), compiles to a CUBIN with the trainer's options, prints the NVRTC log, and
 * exits 0 only when the compile succeeded with no warning in the log. On failure the source
 * is dumped to a file named in the message. Build:
 *   cc -std=c11 -I/usr/local/cuda/include tests/nvrtc_compile.c -L/usr/local/cuda/lib64 -lnvrtc */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NVRTC_CHECK(call)                                                                   \
    do {                                                                                    \
        nvrtcResult r_ = (call);                                                            \
        if (r_ != NVRTC_SUCCESS) {                                                          \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,            \
                    nvrtcGetErrorString(r_));                                               \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

static int cmp_names(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int ux = strcmp(x, "util.cu") == 0, uy = strcmp(y, "util.cu") == 0;
    if (ux != uy) return uy - ux; /* util.cu first */
    return strcmp(x, y);
}

/* Append the file to the growing buffer *src (length *len), with a #line directive so that
 * NVRTC messages name the original file. */
static void append_file(char **src, size_t *len, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot open %s (HINT: run from the repository root or pass SRCDIR)\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char head[4200];
    int hn = snprintf(head, sizeof head, "#line 1 \"%s\"\n", path);
    *src = realloc(*src, *len + (size_t)hn + (size_t)n + 2);
    if (!*src) { fprintf(stderr, "error: out of memory\n"); exit(1); }
    memcpy(*src + *len, head, (size_t)hn);
    *len += (size_t)hn;
    if (fread(*src + *len, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "error: cannot read %s\n", path); exit(1); }
    *len += (size_t)n;
    (*src)[(*len)++] = '\n';
    (*src)[*len] = 0;
    fclose(f);
}

int main(int argc, char **argv) {
    const char *dir = "runtime/cuda", *arch = "sm_90";
    int verbose = 0, npos = 0;
    char *src = NULL;
    size_t len = 0;
    src = malloc(1);
    src[0] = 0;
    char prelude[4096] = "/* prelude (tests/nvrtc_compile.c) */\n";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) verbose = 1;
        else if (strcmp(argv[i], "-D") == 0 && i + 1 < argc) {
            char def[512];
            snprintf(def, sizeof def, "%s", argv[++i]);
            char *eq = strchr(def, '=');
            if (eq) *eq = ' ';
            size_t pl = strlen(prelude);
            snprintf(prelude + pl, sizeof prelude - pl, "#define %s\n", def);
        } else if (npos == 0) dir = argv[i], npos++;
        else if (npos == 1) arch = argv[i], npos++;
        else { fprintf(stderr, "usage: %s [-v] [-D NAME=VALUE]... [SRCDIR [ARCH]]\n", argv[0]); return 2; }
    }
    len = strlen(prelude);
    src = realloc(src, len + 1);
    memcpy(src, prelude, len + 1);

    char *names[256];
    int nn = 0;
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISREG(st.st_mode)) {
        /* a generated kernels.cu: already one translation unit with its own prelude */
        char *slash = strrchr(dir, '/');
        char parent[4096];
        snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash - dir) : 1, slash ? dir : ".");
        free(src);
        src = malloc(1);
        src[0] = 0;
        len = 0;
        append_file(&src, &len, parent, slash ? slash + 1 : dir);
        nn = 1;
        names[0] = strdup(dir);
        goto compile;
    }
    DIR *d = opendir(dir);
    if (!d) { fprintf(stderr, "error: cannot open directory %s (HINT: run from the repository root)\n", dir); return 1; }
    struct dirent *e;
    while ((e = readdir(d)) && nn < 256) {
        size_t l = strlen(e->d_name);
        if (l > 3 && strcmp(e->d_name + l - 3, ".cu") == 0) names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    if (nn == 0) { fprintf(stderr, "error: no .cu files in %s\n", dir); return 1; }
    qsort(names, (size_t)nn, sizeof names[0], cmp_names);
    for (int i = 0; i < nn; i++) append_file(&src, &len, dir, names[i]);

compile:;

    const char *cuda_home = getenv("CUDA_HOME");
    char inc[4200], archopt[64];
    snprintf(inc, sizeof inc, "-I%s/include", cuda_home ? cuda_home : "/usr/local/cuda");
    snprintf(archopt, sizeof archopt, "-arch=%s", arch);
    const char *opts[] = {"--std=c++17", archopt, "-default-device", inc, "--ptxas-options=-v"};
    int nopts = verbose ? 5 : 4;

    nvrtcProgram prog;
    NVRTC_CHECK(nvrtcCreateProgram(&prog, src, "hz_kernels.cu", 0, NULL, NULL));
    nvrtcResult rc = nvrtcCompileProgram(prog, nopts, opts);
    size_t logn = 0;
    NVRTC_CHECK(nvrtcGetProgramLogSize(prog, &logn));
    char *log = malloc(logn + 1);
    NVRTC_CHECK(nvrtcGetProgramLog(prog, log));
    log[logn] = 0;
    if (logn > 1) fprintf(stderr, "%s\n", log);
    int warned = strstr(log, "warning") != NULL;
    if (rc != NVRTC_SUCCESS || warned) {
        const char *dump = "/tmp/hz_kernels_dump.cu";
        FILE *f = fopen(dump, "wb");
        if (f) fwrite(src, 1, len, f), fclose(f);
        fprintf(stderr, "%s: %s (%s); source dumped to %s\n", argv[0],
                rc != NVRTC_SUCCESS ? "compile FAILED" : "compiled with warnings",
                nvrtcGetErrorString(rc), dump);
        return 1;
    }
    size_t cubin_n = 0;
    NVRTC_CHECK(nvrtcGetCUBINSize(prog, &cubin_n));
    char *cubin = malloc(cubin_n);
    NVRTC_CHECK(nvrtcGetCUBIN(prog, cubin));
    const char *out = getenv("HZ_CUBIN_OUT");
    if (out) {
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(cubin, 1, cubin_n, f) != cubin_n) { fprintf(stderr, "error: cannot write %s\n", out); return 1; }
        fclose(f);
    }
    printf("nvrtc_compile: %d files from %s compiled for %s: %zu bytes of cubin\n", nn, dir, arch, cubin_n);
    NVRTC_CHECK(nvrtcDestroyProgram(&prog));
    for (int i = 0; i < nn; i++) free(names[i]);
    free(cubin);
    free(log);
    free(src);
    return 0;
}
