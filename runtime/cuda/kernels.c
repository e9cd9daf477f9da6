/* runtime/cuda/kernels.c - the kernel module: generated/kernels.cu built for this GPU
 * (nvrtc.c), every kernel of the table (kernels.h) looked up and its parameters checked,
 * shared-memory limits raised, and the one launch path of every kernel. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "cuda.h"
#include "nvrtc.h"

#define HZ_KERNEL_NAME(id, name, params, smem) name,
#define HZ_KERNEL_PARAMS(id, name, params, smem) params,
const char *const hzcu_kernel_names[K_N] = {HZ_CUDA_KERNELS(HZ_KERNEL_NAME)};
const char *const hzcu_kernel_params[K_N] = {HZ_CUDA_KERNELS(HZ_KERNEL_PARAMS)};

int64_t hzcu_smem(const cuda_state *s, int k)
{
    const int HD = s->HD, C = s->C;
    (void)HD, (void)C;
#define HZ_KERNEL_SMEM(id, name, params, smem) \
    case id:                                   \
        return (smem);
    switch (k) {
        HZ_CUDA_KERNELS(HZ_KERNEL_SMEM)
    default:
        return 0;
    }
#undef HZ_KERNEL_SMEM
}

/* The directory of the running trainer (so its generated/ sits beside it). */
static void exe_dir(char *dir, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", dir, n - 1);
    if (len <= 0) {
        snprintf(dir, n, ".");
        return;
    }
    dir[len] = 0;
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
}

/* generated/kernels.cu compiled for this GPU (from the cubin cache when it holds it). */
static void *build_kernels(cuda_state *s, size_t *cubin_n)
{
    char dir[PATH_MAX], src_path[PATH_MAX + 32], arch[32], cache[PATH_MAX + 96];
    exe_dir(dir, sizeof dir);
    snprintf(src_path, sizeof src_path, "%s/generated/kernels.cu", dir);
    size_t src_n = 0;
    char *src = hz_read_file(src_path, &src_n);
    if (!src)
        hzcu_die("cannot read the kernels %s: %s; hzc build writes them next to the trainer: "
                 "rebuild with hzc build, keeping DIR/train and DIR/generated together",
                 src_path, strerror(errno));
    /* on an sm_90 GPU its arch-specific features (the Hopper attention's wgmma and TMA) */
    snprintf(arch, sizeof arch, "sm_%d%d%s", s->cc_major, s->cc_minor, s->wgmma ? "a" : "");
    double t0 = hz_now_s();
    int hit = 0;
    void *cubin = hzcu_nvrtc_cached(src, src_n, src_path, arch, cubin_n, &hit, cache, sizeof cache);
    free(src);
    s->kernels_compiled = !hit;
    if (hit)
        printf("cuda backend: kernels for %s: cache hit (%s)\n", arch, cache);
    else
        printf("cuda backend: kernels compiled for %s by NVRTC in %.2f s\n", arch, hz_now_s() - t0);
    return cubin;
}

void hzcu_load_kernels(cuda_state *s)
{
    void *cubin = build_kernels(s, &s->cubin_bytes);
    CU_CHECK(cuModuleLoadData(&s->mod, cubin));
    free(cubin);
    for (int k = 0; k < K_N; k++) {
        const char *name = hzcu_kernel_names[k], *sig = hzcu_kernel_params[k];
        CUresult r = cuModuleGetFunction(&s->fn[k], s->mod, name);
        if (r == CUDA_ERROR_NOT_FOUND)
            hzcu_die("kernel %s is not in generated/kernels.cu: the trainer's runtime and its "
                     "kernels come from different hzc checkouts; rebuild both with one hzc",
                     name);
        CU_CHECK(r);
        size_t np = strlen(sig), off = 0, size = 0;
        /* Only the expected parameters are probed: asking past the last one is an API error
         * (which compute-sanitizer reports), and the driver has no parameter count. */
        for (size_t i = 0; i < np; i++) {
            r = cuFuncGetParamInfo(s->fn[k], i, &off, &size);
            size_t want = sig[i] == 'm' ? 128 : sig[i] == 'p' || sig[i] == 'l' ? 8 : 4;
            if (r != CUDA_SUCCESS || size != want)
                hzcu_die("kernel %s: parameter %zu %s (this backend passes %zu parameters of "
                         "sizes '%s', p/l = 8 bytes, i/f = 4, m = 128): runtime/cuda/kernels.h and the "
                         "kernel sources disagree; fix the table and the launch wrapper",
                         name, i, r != CUDA_SUCCESS ? "is missing" : "has another size", np, sig);
        }
        /* the Hopper kernels: in the module, never launched but on an sm_90 GPU */
        if ((k == K_ATT_FWD_TMA || k == K_ATT_BWD_KV_WG || k == K_ATT_BWD_Q_WG) && !s->wgmma) continue;
        int64_t smem = hzcu_smem(s, k);
        if (smem > s->smem_optin)
            hzcu_die("kernel %s needs %lld bytes of shared memory per block but %s allows %d; "
                     "this model shape (head_dim %d, hidden %d) does not fit this GPU's "
                     "kernels",
                     name, (long long)smem, s->gpu_name, s->smem_optin, s->HD, s->C);
        if (smem > 48 * 1024)
            CU_CHECK(cuFuncSetAttribute(s->fn[k], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                        (int)smem));
    }
}

void hzcu_launch(cuda_state *s, int k, cudaStream_t st, int64_t gx, int64_t gy, int bx,
                 int64_t smem, void **args, hz_kcost cost)
{
    if (s->dry) {
        if (s->prof_on) hzcu_prof_mark(s, st, cost); /* counted */
        return;
    }
    if (gx < 1) gx = 1;
    CUresult r = cuLaunchKernel(s->fn[k], (unsigned)gx, (unsigned)gy, 1, (unsigned)bx, 1, 1,
                                (unsigned)smem, (CUstream)st, args, NULL);
    if (r != CUDA_SUCCESS) {
        const char *msg = NULL;
        cuGetErrorString(r, &msg);
        hzcu_die("launching %s (grid %lld x %lld, block %d, %lld bytes of shared memory) "
                 "failed: %s; rerun with HZ_SYNC=1 if an earlier kernel faulted",
                 hzcu_kernel_names[k], (long long)gx, (long long)gy, bx, (long long)smem,
                 msg ? msg : "unknown error");
    }
    if (s->prof_on) hzcu_prof_mark(s, st, cost);
}
