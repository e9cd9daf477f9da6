/* compiler/build.c - hzc build's second half (build.h): the plan rendered into DIR/generated
 * and the trainer DIR/train compiled and linked against the backend's runtime library, the
 * C compiler run without a shell. */
#include "build.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emit.h"

#ifndef HZC_CUDA_DIR
#define HZC_CUDA_DIR ""
#endif

/* mkdir -p PATH. On failure returns -1 with the part at fault in FAILED (as large as
 * PATH): the directory that could not be made (errno says why), or with errno ENOTDIR an
 * existing part that is not a directory. */
static int mkdir_p(const char *path, char *failed)
{
    strcpy(failed, path);
    for (char *p = failed + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char end = *p;
        *p = '\0';
        struct stat st;
        if (mkdir(failed, 0777) != 0) {
            if (errno != EEXIST || stat(failed, &st) != 0) return -1;
            if (!S_ISDIR(st.st_mode)) {
                errno = ENOTDIR;
                return -1;
            }
        }
        if (end == '\0') return 0;
        *p = end;
    }
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A command for the C compiler as an argument vector: no shell ever sees it, so every
 * byte of a path reaches the compiler as it is. */
typedef struct {
    char *argv[48];
    int n;
} command;

static void arg(command *c, const char *a)
{
    assert(c->n + 1 < (int)(sizeof c->argv / sizeof c->argv[0]));
    c->argv[c->n++] = (char *)a;
    c->argv[c->n] = NULL;
}

/* Print ARG for the echoed command line, quoted so that sh would pass it unchanged. */
static void print_quoted(const char *a, FILE *out)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789_./=,:+@%-";
    if (*a && strspn(a, safe) == strlen(a)) {
        fputs(a, out);
        return;
    }
    fputc('\'', out);
    for (; *a; a++) {
        if (*a == '\'')
            fputs("'\\''", out);
        else
            fputc(*a, out);
    }
    fputc('\'', out);
}

/* Run C->argv (found on $PATH), echoing it; returns 0 when it exits with status 0. */
static int run(const command *c)
{
    fputs("  ", stderr);
    for (int i = 0; i < c->n; i++) {
        if (i > 0) fputc(' ', stderr);
        print_quoted(c->argv[i], stderr);
    }
    fputc('\n', stderr);
    fflush(stderr);
    pid_t pid;
    int rc = posix_spawnp(&pid, c->argv[0], NULL, NULL, c->argv, environ);
    if (rc != 0) {
        fprintf(stderr, "hzc: error: cannot run %s: %s (set CC to a C compiler)\n", c->argv[0],
                strerror(rc));
        return 1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* The compiler: $CC split at blanks (CC="ccache gcc" works, as in make), else cc. BUF
 * (size N) holds the words. */
static void add_cc(command *c, char *buf, size_t n)
{
    const char *cc = getenv("CC");
    snprintf(buf, n, "%s", cc && strspn(cc, " \t") != strlen(cc) ? cc : "cc");
    for (char *w = strtok(buf, " \t"); w; w = strtok(NULL, " \t")) arg(c, w);
}

int build_trainer(const char *spec_path, const char *out_dir, const char *backend_name,
                  const hzc_plan *pl, const char *root)
{
    if (strlen(out_dir) > PATH_MAX - 64) {
        fprintf(stderr, "hzc: error: -o %.60s...: the path is too long\n", out_dir);
        return 1;
    }
    char tdir[2 * PATH_MAX], kdir[2 * PATH_MAX], gen[2 * PATH_MAX], path[3 * PATH_MAX];
    snprintf(tdir, sizeof tdir, "%s/templates", root);
    snprintf(kdir, sizeof kdir, "%s/runtime/cuda", root);
    snprintf(gen, sizeof gen, "%s/generated", out_dir);
    char cudalib[2 * PATH_MAX];
    snprintf(cudalib, sizeof cudalib, "%s/build/libhzrt_cuda.a", root);
    const char *backend = backend_name ? backend_name : (file_exists(cudalib) ? "cuda" : "cpu");
    const hz_caps *caps = hz_caps_find(backend);
    if (!caps) {
        fprintf(stderr, "hzc: error: unknown backend '%s' (cpu or cuda)\n", backend);
        return 1;
    }
    char hds[64];
    if (!hz_caps_head_dim_ok(caps, pl->p.dims.HD, hds, sizeof hds)) {
        fprintf(stderr, "hzc: error: the %s backend's attention kernels support head_dim %s; "
                        "%s has %lld (use --backend cpu)\n",
                backend, hds, spec_path, (long long)pl->p.dims.HD);
        return 1;
    }
    char failed[sizeof gen];
    if (mkdir_p(gen, failed) != 0) {
        if (errno == ENOTDIR)
            fprintf(stderr, "hzc: error: cannot create directory %s: %s is not a directory\n",
                    gen, failed);
        else
            fprintf(stderr, "hzc: error: cannot create directory %s: %s\n", failed,
                    strerror(errno));
        return 1;
    }
    static const char *const outputs[][2] = {
        {"schedule.c.tmpl", "schedule.c"}, {"kernels.cu.tmpl", "kernels.cu"},
        {"plan.json.tmpl", "plan.json"}};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", gen, outputs[i][1]);
        if (emit_render(tdir, i == 1 ? kdir : NULL, outputs[i][0], spec_path, pl, path) != 0)
            return 1;
        fprintf(stderr, "hzc: wrote %s\n", path);
    }
    char lib[2 * PATH_MAX];
    snprintf(lib, sizeof lib, "%s/build/libhzrt_%s.a", root, backend);
    if (!file_exists(lib)) {
        fprintf(stderr, "hzc: error: %s is missing: %s\n", lib,
                !strcmp(backend, "cuda") ? "this hzc was built without the CUDA toolkit "
                                           "(./configure --with-cuda=DIR), or use --backend cpu"
                                         : "run make first");
        return 1;
    }
    char ccbuf[PATH_MAX], ldbuf[PATH_MAX], inc[2 * PATH_MAX], src[3 * PATH_MAX], obj[3 * PATH_MAX];
    char train[2 * PATH_MAX];
    snprintf(inc, sizeof inc, "-I%s/runtime", root);
    snprintf(src, sizeof src, "%s/schedule.c", gen);
    snprintf(obj, sizeof obj, "%s/schedule.o", gen);
    snprintf(train, sizeof train, "%s/train", out_dir);
    command cc = {{NULL}, 0};
    add_cc(&cc, ccbuf, sizeof ccbuf);
    static const char *const compile[] = {"-std=c11", "-O2"};
    for (size_t i = 0; i < sizeof compile / sizeof *compile; i++) arg(&cc, compile[i]);
    arg(&cc, inc);
    arg(&cc, "-c");
    arg(&cc, src);
    arg(&cc, "-o");
    arg(&cc, obj);
    if (run(&cc) != 0) return 1;

    command ld = {{NULL}, 0};
    add_cc(&ld, ldbuf, sizeof ldbuf);
    arg(&ld, "-o");
    arg(&ld, train);
    arg(&ld, obj);
    arg(&ld, lib);
    char libdir[2 * PATH_MAX], stubs[2 * PATH_MAX], rpath[2 * PATH_MAX];
    if (!strcmp(backend, "cuda")) {
        const char *cuda = getenv("CUDA_HOME") && *getenv("CUDA_HOME") ? getenv("CUDA_HOME")
                                                                         : HZC_CUDA_DIR;
        snprintf(libdir, sizeof libdir, "-L%s/lib64", cuda);
        snprintf(stubs, sizeof stubs, "-L%s/lib64/stubs", cuda);
        snprintf(rpath, sizeof rpath, "%s/lib64", cuda);
        arg(&ld, libdir);
        arg(&ld, stubs);
        /* -Xlinker, not -Wl,: a comma in the path stays part of it */
        /* -ldl: cuDNN and NCCL are dlopened at run time (runtime/cuda/dlib.c), never linked */
        static const char *const cudalibs[] = {"-lcublasLt", "-lcudart", "-lnvrtc", "-lcuda", "-ldl"};
        arg(&ld, "-Xlinker");
        arg(&ld, "-rpath");
        arg(&ld, "-Xlinker");
        arg(&ld, rpath);
        for (size_t i = 0; i < sizeof cudalibs / sizeof *cudalibs; i++) arg(&ld, cudalibs[i]);
    }
    static const char *const common[] = {"-fopenmp", "-lpthread", "-lm"};
    for (size_t i = 0; i < sizeof common / sizeof *common; i++) arg(&ld, common[i]);
    if (run(&ld) != 0) {
        fprintf(stderr, "hzc: error: linking %s failed\n", train);
        return 1;
    }
    fprintf(stderr, "hzc: built %s (%s backend)\n", train, backend);
    int64_t hosts = hz_hosts(&pl->p.dims);
    if (hosts > 1) /* docs/plan.md "Launching" */
        fprintf(stderr, "hzc: %lld hosts: start it on each, as torchrun does: RANK=0..%lld "
                        "WORLD_SIZE=%lld MASTER_ADDR=<host 0's address> MASTER_PORT=<a free port "
                        "there> %s --data ... (docs/plan.md \"Launching\")\n",
                (long long)hosts, (long long)hosts - 1, (long long)hosts, train);
    return 0;
}
