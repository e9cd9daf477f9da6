/* runtime/cuda/nvrtc.c - kernel sources to cubin with NVRTC: the compile options, the search
 * for the CUDA headers NVRTC needs, and the cubin cache keyed by source, options and NVRTC
 * version. Contract: nvrtc.h. */
#include "nvrtc.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../rt.h"
#include "check.h"

/* The CUDA include directory for NVRTC (cuda_bf16.h): $HZ_CUDA_INCLUDE, $CUDA_HOME/include,
 * the toolkit that the loaded libnvrtc belongs to, /usr/local/cuda/include. */
static int find_cuda_include(char *out, size_t n)
{
    char cand[4][PATH_MAX];
    int nc = 0;
    const char *env = getenv("HZ_CUDA_INCLUDE");
    if (env && *env) snprintf(cand[nc++], PATH_MAX, "%.4000s", env);
    env = getenv("CUDA_HOME");
    if (env && *env) snprintf(cand[nc++], PATH_MAX, "%.4000s/include", env);
    Dl_info info;
    nvrtcResult (*fn)(int *, int *) = nvrtcVersion;
    void *addr;
    memcpy(&addr, &fn, sizeof addr); /* ISO C has no function-to-object pointer cast */
    char real[PATH_MAX];
    if (dladdr(addr, &info) && info.dli_fname && realpath(info.dli_fname, real)) {
        for (int up = 0; up < 2; up++) { /* .../lib64/libnvrtc.so.13 -> ... */
            char *slash = strrchr(real, '/');
            if (slash) *slash = 0;
        }
        snprintf(cand[nc++], PATH_MAX, "%.4000s/include", real);
    }
    snprintf(cand[nc++], PATH_MAX, "/usr/local/cuda/include");
    for (int i = 0; i < nc; i++) {
        char probe[PATH_MAX + 32];
        struct stat st;
        snprintf(probe, sizeof probe, "%.4000s/cuda_bf16.h", cand[i]);
        if (stat(probe, &st) == 0) {
            snprintf(out, n, "%.4000s", cand[i]);
            return 0;
        }
    }
    return -1;
}

/* The trainer's options for ARCH into OPTS (at least 4 entries); ARCH_OPT and INC_OPT hold
 * the strings. Returns the count. */
static int base_options(const char *arch, const char **opts, char *arch_opt, size_t arch_n,
                        char *inc_opt, size_t inc_n)
{
    char inc[PATH_MAX];
    if (find_cuda_include(inc, sizeof inc) != 0)
        hzcu_die("cannot find cuda_bf16.h for NVRTC: set CUDA_HOME to the CUDA toolkit (the "
                 "directory holding include/cuda_bf16.h) or HZ_CUDA_INCLUDE to its include "
                 "directory");
    snprintf(arch_opt, arch_n, "--gpu-architecture=%s", arch);
    snprintf(inc_opt, inc_n, "-I%s", inc);
    opts[0] = "--std=c++17";
    opts[1] = arch_opt;
    opts[2] = "-default-device";
    opts[3] = inc_opt;
    return 4;
}

void *hzcu_nvrtc_compile(const char *src, const char *name, const char *arch,
                         const char *const *extra, int extra_n, size_t *cubin_n, int *warned)
{
    const char *opts[16];
    char arch_opt[64], inc_opt[PATH_MAX + 8];
    int n = base_options(arch, opts, arch_opt, sizeof arch_opt, inc_opt, sizeof inc_opt);
    for (int i = 0; i < extra_n && n < 16; i++) opts[n++] = extra[i];
    nvrtcProgram prog;
    NVRTC_CHECK(nvrtcCreateProgram(&prog, src, name, 0, NULL, NULL));
    nvrtcResult rc = nvrtcCompileProgram(prog, n, opts);
    size_t log_n = 0;
    NVRTC_CHECK(nvrtcGetProgramLogSize(prog, &log_n));
    char *log = malloc(log_n + 1);
    if (!log) hzcu_die("out of host memory");
    NVRTC_CHECK(nvrtcGetProgramLog(prog, log));
    log[log_n] = 0;
    *warned = strstr(log, "warning") != NULL;
    if (log_n > 1) fprintf(stderr, "%s\n", log);
    free(log);
    void *cubin = NULL;
    if (rc == NVRTC_SUCCESS) {
        NVRTC_CHECK(nvrtcGetCUBINSize(prog, cubin_n));
        cubin = malloc(*cubin_n);
        if (!cubin) hzcu_die("out of host memory");
        NVRTC_CHECK(nvrtcGetCUBIN(prog, cubin));
    } else {
        fprintf(stderr, "NVRTC could not compile %s for %s (%s); the log is above. Options:", name,
                arch, nvrtcGetErrorString(rc));
        for (int i = 0; i < n; i++) fprintf(stderr, " %s", opts[i]);
        fprintf(stderr, "\n");
    }
    NVRTC_CHECK(nvrtcDestroyProgram(&prog));
    return cubin;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void *hzcu_nvrtc_cached(const char *src, size_t src_n, const char *name, const char *arch,
                        size_t *cubin_n, int *hit, char *path, size_t path_n)
{
    const char *opts[4];
    char arch_opt[64], inc_opt[PATH_MAX + 8];
    int nopts = base_options(arch, opts, arch_opt, sizeof arch_opt, inc_opt, sizeof inc_opt);
    int vmaj = 0, vmin = 0;
    NVRTC_CHECK(nvrtcVersion(&vmaj, &vmin));
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, src, src_n);
    for (int i = 0; i < nopts; i++) h = fnv1a(h, opts[i], strlen(opts[i]) + 1);
    h = fnv1a(h, &vmaj, sizeof vmaj);
    h = fnv1a(h, &vmin, sizeof vmin);

    const char *env = getenv("HZ_CACHE_DIR"), *home = getenv("HOME");
    char dir[PATH_MAX];
    if (env && *env)
        snprintf(dir, sizeof dir, "%s", env);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.cache/hzc", home);
    else
        dir[0] = 0;
    path[0] = 0;
    if (dir[0])
        snprintf(path, path_n, "%s/kernels-%s-%016llx.cubin", dir, arch, (unsigned long long)h);
    void *cubin = path[0] ? hz_read_file(path, cubin_n) : NULL;
    *hit = cubin != NULL;
    if (cubin) return cubin;

    int warned = 0;
    cubin = hzcu_nvrtc_compile(src, name, arch, NULL, 0, cubin_n, &warned);
    if (!cubin) hzcu_die("the kernels %s do not compile; see the NVRTC log above", name);
    if (!path[0]) {
        fprintf(stderr, "train: warning: no cubin cache (set HZ_CACHE_DIR or HOME)\n");
        return cubin;
    }
    /* store: write a private file, then rename it into place (atomic for other trainers) */
    char tmp[PATH_MAX + 96];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = hz_mkdir_p(dir) == 0 ? fopen(tmp, "wb") : NULL;
    int ok = f && fwrite(cubin, 1, *cubin_n, f) == *cubin_n;
    if (f) ok = (fclose(f) == 0) && ok;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "train: warning: cannot write the cubin cache %s: %s\n", path,
                strerror(errno));
        unlink(tmp);
    }
    return cubin;
}
