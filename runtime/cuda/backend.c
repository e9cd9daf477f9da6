/* runtime/cuda/backend.c - the cuda backend: the generated schedule run on one GPU.
 * Owns the pinned host allocations, the one arena cudaMalloc carved by the plan's regions,
 * the NVRTC build (with an on-disk cubin cache) of generated/kernels.cu, the cuBLASLt GEMMs,
 * the three streams with one event per op, and the decoder block, the loss head and the
 * embedding composed from the kernels in runtime/cuda (*.cu). The composition mirrors
 * runtime/cpu/block.c op by op (bf16 activations, fp32 statistics and weight gradients).
 * Environment: HZ_CACHE_DIR (cubin cache, default ~/.cache/hzc), HZ_CUDA_INCLUDE (headers
 * for NVRTC), HZ_SYNC=1 (synchronise and check after every op), HZ_TRACE=1 (per-step GPU
 * timing per stream on stderr). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cuda.h>
#include <cuda_runtime.h>
#include <nvrtc.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes" /* cublasLtLoggerForceDisable() */
#include <cublasLt.h>
#pragma GCC diagnostic pop

#include "../cpu/ops.h"
#include "../rt.h"

/* ======================================================================================
 * Error checks: every CUDA, driver, NVRTC and cuBLASLt call goes through one of these.
 * They print file:line, the call and the library's own error string, then stop the
 * trainer with a hint on what to do.
 * ====================================================================================== */

#define CUDA_CHECK(call) check_cuda((call), #call, __FILE__, __LINE__)
#define CU_CHECK(call) check_cu((call), #call, __FILE__, __LINE__)
#define NVRTC_CHECK(call) check_nvrtc((call), #call, __FILE__, __LINE__)
#define LT_CHECK(call) check_lt((call), #call, __FILE__, __LINE__)

static const char *const cuda_hint =
    "HINT: check that the GPU is visible and has free memory (nvidia-smi) and that the driver\n"
    "      supports this CUDA toolkit; a kernel fault is reported by a later call: rerun with\n"
    "      HZ_SYNC=1 to stop at the op that failed\n";

static void check_cuda(cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess) return;
    fflush(stdout);
    fprintf(stderr, "train: %s:%d: CUDA error: %s failed: %s (%s)\n%s", file, line, call,
            cudaGetErrorString(e), cudaGetErrorName(e), cuda_hint);
    exit(1);
}

static void check_cu(CUresult r, const char *call, const char *file, int line)
{
    if (r == CUDA_SUCCESS) return;
    fflush(stdout);
    const char *msg = NULL, *name = NULL;
    cuGetErrorString(r, &msg);
    cuGetErrorName(r, &name);
    fprintf(stderr, "train: %s:%d: CUDA driver error: %s failed: %s (%s)\n%s", file, line, call,
            msg ? msg : "unknown error", name ? name : "?", cuda_hint);
    exit(1);
}

static void check_nvrtc(nvrtcResult r, const char *call, const char *file, int line)
{
    if (r == NVRTC_SUCCESS) return;
    fflush(stdout);
    fprintf(stderr, "train: %s:%d: NVRTC error: %s failed: %s\n"
                    "HINT: the trainer's NVRTC library is unusable; check the CUDA toolkit "
                    "install (libnvrtc) matches the one hzc was built with\n",
            file, line, call, nvrtcGetErrorString(r));
    exit(1);
}

static void check_lt(cublasStatus_t st, const char *call, const char *file, int line)
{
    if (st == CUBLAS_STATUS_SUCCESS) return;
    fflush(stdout);
    fprintf(stderr, "train: %s:%d: cuBLASLt error: %s failed: %s\n%s", file, line, call,
            cublasLtGetStatusString(st), cuda_hint);
    exit(1);
}

/* A trainer error that is not a library call: message, then exit. */
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout); /* what the trainer printed so far comes first */
    fprintf(stderr, "train: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* ======================================================================================
 * State
 * ====================================================================================== */

typedef uint16_t bf16; /* device bf16 element; the host never does arithmetic on it */

/* The kernels this backend launches: X(id, name, parameter sizes) where p = pointer (8
 * bytes), l = long (8), i = int (4), f = float (4). init checks every kernel of the module
 * against this list (cuFuncGetParamInfo), so a signature change in the kernel sources is
 * caught at start instead of corrupting a launch. */
#define HZ_CUDA_KERNELS(X)                                                \
    X(K_F32_TO_BF16, "hzk_f32_to_bf16", "ppl")                            \
    X(K_ADD_BF16, "hzk_add_bf16", "pppl")                                 \
    X(K_SUMSQ_F32, "hzk_sumsq_f32", "pppl")                               \
    X(K_EMBED_FWD, "hzk_embedding_forward", "pppii")                      \
    X(K_EMBED_BWD, "hzk_embedding_backward", "pppii")                     \
    X(K_RMSNORM_FWD, "hzk_rmsnorm_forward", "ppppiif")                    \
    X(K_RES_RMSNORM_FWD, "hzk_residual_rmsnorm_forward", "ppppppiif")     \
    X(K_RMSNORM_BWD, "hzk_rmsnorm_backward", "pppppppii")                 \
    X(K_QKV_ROPE, "hzk_qkv_bias_rope", "ppppppiiiii")                     \
    X(K_QKV_ROPE_BWD, "hzk_qkv_rope_backward", "ppppppiiiii")             \
    X(K_SWIGLU_FWD, "hzk_swiglu_forward", "ppli")                         \
    X(K_SWIGLU_BWD, "hzk_swiglu_backward", "pppli")                       \
    X(K_XENT, "hzk_crossentropy_forward_backward", "ppppiif")             \
    X(K_ATT_FWD, "hzk_attention_forward", "pppppiiiiif")                  \
    X(K_ATT_BWD_PRE, "hzk_attention_backward_preprocess", "pppiiii")      \
    X(K_ATT_BWD, "hzk_attention_backward", "ppppppppiiiiif")              \
    X(K_ATT_BWD_DQ, "hzk_attention_backward_dq", "pppppppiiiiif")         \
    /* the deterministic path (train --deterministic) */                  \
    X(K_EMBED_BWD_ORD, "hzk_embedding_backward_ordered", "pppiii")        \
    X(K_RMSNORM_BWD_PART, "hzk_rmsnorm_backward_part", "pppppppii")       \
    X(K_QKV_ROPE_BWD_PART, "hzk_qkv_rope_backward_part", "ppppppiiiii")   \
    X(K_COLSUM_F32, "hzk_colsum_f32", "ppii")                             \
    X(K_SUM_F64, "hzk_sum_f64", "ppi")

#define HZ_KERNEL_ENUM(id, name, params) id,
enum { HZ_CUDA_KERNELS(HZ_KERNEL_ENUM) K_N };
#define HZ_KERNEL_INFO(id, name, params) {name, params},
static const struct {
    const char *name, *params;
} kernel_info[K_N] = {HZ_CUDA_KERNELS(HZ_KERNEL_INFO)};

/* The per-micro-batch workspace (WORK region): exactly compiler/plan.c work_bytes(), the
 * bf16 buffers in its order, then (256-byte aligned) the fp32 ones. */
typedef struct work_bufs {
    bf16 *xn, *qkv, *q, *k, *v, *att, *xmid, *xn2, *gu, *h;       /* forward (recomputed) */
    bf16 *dh, *dgu, *dxn2, *dxmid, *datt, *dq, *dk, *dv, *dqkv, *dxn; /* backward */
    float *rstd1, *rstd2, *lse, *part; /* part: (HZ_PART_ROWS, max(C, QKV)) */
} work_bufs;

/* The loss head's buffers (LOSSBUF region): compiler/plan.c loss_bytes(). */
typedef struct loss_bufs {
    bf16 *xn, *dxn, *logits; /* xn, dxn (N, C); logits (chunk_tokens, V), then dlogits */
    float *rstd, *losses;    /* (N) each */
} loss_bufs;

/* A block's weights (bf16, in a weight slot) and gradients (fp32, in a grad slot). */
typedef struct block_w {
    const bf16 *attn_norm, *wqkv, *bqkv, *wo, *mlp_norm, *wgu, *wdown;
} block_w;
typedef struct block_g {
    float *attn_norm, *wqkv, *bqkv, *wo, *mlp_norm, *wgu, *wdown;
} block_g;

/* One planned cuBLASLt GEMM: the key (shape, layout, output type, pointer alignments) and
 * the descriptors and algorithm chosen for it at init. */
typedef struct gemm_plan {
    int transa, transb, out_f32;
    int64_t m, n, k, lda, ldb, ldd;
    uint32_t align_a, align_b, align_d;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
    size_t ws_bytes;
} gemm_plan;

#define GEMM_MAX 128
#define LT_WORKSPACE_BYTES (32u << 20) /* cuBLASLt workspace: outside the plan's arena */
#define SC_SUMSQ 1                     /* SCALARS[1]: the step's squared gradient norm */
#define SC_PARTS 16                    /* SCALARS[16..]: its per-block partials (--deterministic) */

typedef struct cuda_state {
    const hz_plan *p;
    /* the device */
    int dev, sm_count, cc_major, cc_minor, smem_optin;
    char gpu_name[256];
    /* kernels */
    CUmodule mod;
    CUfunction fn[K_N];
    size_t cubin_bytes;
    /* streams and events: stream[] indexed by enum hz_stream_kind (HOST unused) */
    cudaStream_t stream[HZ_STREAM_KIND_N];
    cudaEvent_t *ev, tok_ev;
    int sync, trace;
    int det; /* --deterministic: no float atomics whose order varies (docs/training.md) */
    cudaEvent_t *tr0, *tr1, tr_start; /* around every op: profile, trace */
    int64_t h2d_step_bytes;
    /* memory: the arena and what lives outside it */
    char *arena;
    int64_t arena_measured, extra_measured;
    void *ws;
    float *inv_freq;
    work_bufs w;
    loss_bufs l;
    bf16 *dgrad;
    int32_t *tok_in, *tok_tgt;
    double *scalars;
    /* pinned host staging: tokens in, per-token losses out, scalars out */
    int32_t *h_tok;  /* inputs then targets, (2, step_tokens) */
    float *h_loss;   /* (step_tokens) per-token losses of the step (or of an eval) */
    bf16 *h_boundary; /* (L, step_tokens, C) when the plan keeps boundaries on the host */
    double *h_scalars;
    bf16 *h_logits;   /* (chunk_tokens, V): a logits chunk for --dump-logits, made on demand */
    int64_t pinned_bytes;
    /* model shape as kernel arguments */
    int N, C, F, NH, NKV, HD, T, B, V, K;
    int64_t A, KV, QKV;
    float att_scale;
    /* cuBLASLt */
    cublasLtHandle_t lt;
    gemm_plan gemm[GEMM_MAX];
    int gemm_n, gemm_late;
    int dry; /* 1 while init walks the schedule to plan the GEMMs: nothing is issued */
} cuda_state;

/* ======================================================================================
 * Small helpers
 * ====================================================================================== */


static int env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static double gib(int64_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

static int64_t align_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

/* Largest power of two (at most 256) dividing the address: the alignment cuBLASLt sees. */
static uint32_t ptr_align(const void *ptr)
{
    uintptr_t a = (uintptr_t)ptr;
    uint32_t al = 1;
    while (al < 256 && (a & al) == 0) al <<= 1;
    return al;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Read a whole file (NUL-terminated); NULL with errno set on failure. */
static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[len] = 0;
    *n = (size_t)len;
    return buf;
}

/* ======================================================================================
 * Pinned host memory (the store arrays are allocated through these)
 * ====================================================================================== */

static void *cuda_host_alloc(size_t bytes)
{
    void *ptr = NULL;
    cudaError_t e = cudaHostAlloc(&ptr, bytes ? bytes : 1, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        fprintf(stderr, "train: cudaHostAlloc of %zu bytes (%.2f GiB) of pinned host memory "
                        "failed: %s\n"
                        "HINT: the host store is pinned; check free RAM and the locked-memory "
                        "limit (ulimit -l), or plan for a smaller host (hzc build --host-mem)\n",
                bytes, gib((int64_t)bytes), cudaGetErrorString(e));
        return NULL;
    }
    return ptr;
}

static void cuda_host_free(void *ptr)
{
    if (ptr) CUDA_CHECK(cudaFreeHost(ptr));
}

/* ======================================================================================
 * NVRTC: generated/kernels.cu -> cubin for this GPU, cached on disk
 * ====================================================================================== */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
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
        snprintf(probe, sizeof probe, "%.4000s/cuda_bf16.h", cand[i]);
        if (file_exists(probe)) {
            snprintf(out, n, "%.4000s", cand[i]);
            return 0;
        }
    }
    return -1;
}

/* The cubin cache directory: $HZ_CACHE_DIR, else ~/.cache/hzc; "" when neither is usable. */
static void cache_dir(char *out, size_t n)
{
    const char *env = getenv("HZ_CACHE_DIR"), *home = getenv("HOME");
    if (env && *env) snprintf(out, n, "%s", env);
    else if (home && *home) snprintf(out, n, "%s/.cache/hzc", home);
    else out[0] = 0;
}

/* Load generated/kernels.cu compiled for this GPU: from the cache when the key (source,
 * options, NVRTC version) matches, else compiled by NVRTC and stored in the cache. */
static void *build_kernels(cuda_state *s, size_t *cubin_n)
{
    char dir[PATH_MAX], src_path[PATH_MAX + 32], inc[PATH_MAX], inc_opt[PATH_MAX + 8];
    exe_dir(dir, sizeof dir);
    snprintf(src_path, sizeof src_path, "%s/generated/kernels.cu", dir);
    size_t src_n = 0;
    char *src = read_file(src_path, &src_n);
    if (!src)
        die("cannot read the kernels %s: %s; hzc build writes them next to the trainer: "
            "rebuild with hzc build, keeping DIR/train and DIR/generated together",
            src_path, strerror(errno));
    if (find_cuda_include(inc, sizeof inc) != 0)
        die("cannot find cuda_bf16.h for NVRTC: set CUDA_HOME to the CUDA toolkit (the "
            "directory holding include/cuda_bf16.h) or HZ_CUDA_INCLUDE to its include directory");
    char arch[64];
    snprintf(arch, sizeof arch, "--gpu-architecture=sm_%d%d", s->cc_major, s->cc_minor);
    snprintf(inc_opt, sizeof inc_opt, "-I%s", inc);
    const char *opts[] = {"--std=c++17", arch, "-default-device", inc_opt};
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    int vmaj = 0, vmin = 0;
    NVRTC_CHECK(nvrtcVersion(&vmaj, &vmin));

    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, src, src_n);
    for (int i = 0; i < nopts; i++) h = fnv1a(h, opts[i], strlen(opts[i]) + 1);
    h = fnv1a(h, &vmaj, sizeof vmaj);
    h = fnv1a(h, &vmin, sizeof vmin);
    char cdir[PATH_MAX], cpath[PATH_MAX + 64];
    cache_dir(cdir, sizeof cdir);
    cpath[0] = 0;
    if (cdir[0])
        snprintf(cpath, sizeof cpath, "%s/kernels-sm_%d%d-%016llx.cubin", cdir, s->cc_major,
                 s->cc_minor, (unsigned long long)h);

    void *cubin = cpath[0] ? read_file(cpath, cubin_n) : NULL;
    if (cubin) {
        printf("cuda backend: kernels for sm_%d%d: cache hit (%s)\n", s->cc_major, s->cc_minor,
               cpath);
        free(src);
        return cubin;
    }

    double t0 = hz_now_s();
    nvrtcProgram prog;
    NVRTC_CHECK(nvrtcCreateProgram(&prog, src, src_path, 0, NULL, NULL));
    nvrtcResult rc = nvrtcCompileProgram(prog, nopts, opts);
    size_t log_n = 0;
    NVRTC_CHECK(nvrtcGetProgramLogSize(prog, &log_n));
    char *log = malloc(log_n + 1);
    if (!log) die("out of host memory");
    NVRTC_CHECK(nvrtcGetProgramLog(prog, log));
    log[log_n] = 0;
    if (rc != NVRTC_SUCCESS) {
        fprintf(stderr, "%s\n", log);
        die("NVRTC could not compile %s for sm_%d%d (%s); the log is above. Options: %s %s %s %s",
            src_path, s->cc_major, s->cc_minor, nvrtcGetErrorString(rc), opts[0], opts[1],
            opts[2], opts[3]);
    }
    if (log_n > 1 && strstr(log, "warning")) fprintf(stderr, "%s\n", log);
    free(log);
    NVRTC_CHECK(nvrtcGetCUBINSize(prog, cubin_n));
    cubin = malloc(*cubin_n);
    if (!cubin) die("out of host memory");
    NVRTC_CHECK(nvrtcGetCUBIN(prog, cubin));
    NVRTC_CHECK(nvrtcDestroyProgram(&prog));
    free(src);
    printf("cuda backend: kernels compiled for sm_%d%d by NVRTC %d.%d in %.2f s\n", s->cc_major,
           s->cc_minor, vmaj, vmin, hz_now_s() - t0);

    /* store: write a private file, then rename it into place (atomic for other trainers) */
    if (!cpath[0]) {
        fprintf(stderr, "train: warning: no cubin cache (set HZ_CACHE_DIR or HOME)\n");
        return cubin;
    }
    char tmp[PATH_MAX + 96];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", cpath, (long)getpid());
    FILE *f = hz_mkdir_p(cdir) == 0 ? fopen(tmp, "wb") : NULL;
    int ok = f && fwrite(cubin, 1, *cubin_n, f) == *cubin_n;
    if (f) ok = (fclose(f) == 0) && ok;
    if (ok) ok = rename(tmp, cpath) == 0;
    if (!ok) {
        fprintf(stderr, "train: warning: cannot write the cubin cache %s: %s\n", cpath,
                strerror(errno));
        unlink(tmp);
    }
    return cubin;
}

/* Load the module, look every kernel up and check its parameter sizes against
 * kernel_info; raise the dynamic shared memory limit where a kernel needs more than 48 KiB. */
static void load_kernels(cuda_state *s)
{
    void *cubin = build_kernels(s, &s->cubin_bytes);
    CU_CHECK(cuModuleLoadData(&s->mod, cubin));
    free(cubin);
    for (int k = 0; k < K_N; k++) {
        CUresult r = cuModuleGetFunction(&s->fn[k], s->mod, kernel_info[k].name);
        if (r == CUDA_ERROR_NOT_FOUND)
            die("kernel %s is not in generated/kernels.cu: the trainer's runtime and its "
                "kernels come from different hzc checkouts; rebuild both with one hzc",
                kernel_info[k].name);
        CU_CHECK(r);
        const char *sig = kernel_info[k].params;
        size_t np = strlen(sig), off = 0, size = 0;
        /* Only the expected parameters are probed: asking past the last one is an API error
         * (which compute-sanitizer reports), and the driver has no parameter count. */
        for (size_t i = 0; i < np; i++) {
            r = cuFuncGetParamInfo(s->fn[k], i, &off, &size);
            size_t want = sig[i] == 'p' || sig[i] == 'l' ? 8 : 4;
            int bad = r != CUDA_SUCCESS || size != want;
            if (bad)
                die("kernel %s: parameter %zu %s (this backend passes %zu parameters of sizes "
                    "'%s', p/l = 8 bytes, i/f = 4): runtime/cuda/backend.c and the kernel "
                    "sources disagree; fix the launch wrapper",
                    kernel_info[k].name, i,
                    r != CUDA_SUCCESS ? "is missing" : "has another size",
                    np, sig);
        }
    }
}

/* Allow a kernel SMEM bytes of dynamic shared memory (above the default 48 KiB). */
static void kernel_smem(cuda_state *s, int k, int64_t smem)
{
    if (smem > s->smem_optin)
        die("kernel %s needs %lld bytes of shared memory per block but %s allows %d; this "
            "model shape (head_dim %d, hidden %d) does not fit this GPU's kernels",
            kernel_info[k].name, (long long)smem, s->gpu_name, s->smem_optin, s->HD, s->C);
    if (smem > 48 * 1024)
        CU_CHECK(cuFuncSetAttribute(s->fn[k], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                    (int)smem));
}

/* ======================================================================================
 * Kernel launches: one typed wrapper per kernel; each encodes the launch shape stated
 * above the kernel in its .cu file.
 * ====================================================================================== */

static void launch(cuda_state *s, int k, cudaStream_t st, int64_t gx, int64_t gy, int bx,
                   int64_t smem, void **args)
{
    if (s->dry) return;
    if (gx < 1) gx = 1;
    CUresult r = cuLaunchKernel(s->fn[k], (unsigned)gx, (unsigned)gy, 1, (unsigned)bx, 1, 1,
                                (unsigned)smem, (CUstream)st, args, NULL);
    if (r != CUDA_SUCCESS) {
        const char *msg = NULL;
        cuGetErrorString(r, &msg);
        die("launching %s (grid %lld x %lld, block %d, %lld bytes of shared memory) failed: %s; "
            "rerun with HZ_SYNC=1 if an earlier kernel faulted",
            kernel_info[k].name, (long long)gx, (long long)gy, bx, (long long)smem,
            msg ? msg : "unknown error");
    }
}

/* Blocks for a grid-strided kernel of BLOCK threads over ITEMS work items, capped so that a
 * huge tensor does not get millions of blocks (the loops stride over the rest). */
static int64_t grid_for(const cuda_state *s, int64_t items, int block)
{
    int64_t g = (items + block - 1) / block, cap = (int64_t)s->sm_count * 32;
    return g < 1 ? 1 : g > cap ? cap : g;
}

static void k_f32_to_bf16(cuda_state *s, cudaStream_t st, bf16 *out, const float *in, long n)
{
    void *args[] = {&out, &in, &n};
    launch(s, K_F32_TO_BF16, st, grid_for(s, n, 256), 1, 256, 0, args);
}

static void k_add_bf16(cuda_state *s, cudaStream_t st, bf16 *out, const bf16 *a, const bf16 *b,
                       long n)
{
    void *args[] = {&out, &a, &b, &n};
    launch(s, K_ADD_BF16, st, grid_for(s, n, 256), 1, 256, 0, args);
}

/* In the deterministic mode HZ_SUMSQ_PARTS blocks store their sums after the scalars and one
 * thread adds them in order: the same bits on every run and every GPU. */
static void k_sumsq_f32(cuda_state *s, cudaStream_t st, double *acc, const float *x, long n)
{
    double *part = s->det ? s->scalars + SC_PARTS : NULL;
    void *args[] = {&acc, &part, &x, &n};
    launch(s, K_SUMSQ_F32, st, s->det ? HZ_SUMSQ_PARTS : 2 * (int64_t)s->sm_count, 1, 256, 0,
           args);
    if (!s->det) return;
    int G = HZ_SUMSQ_PARTS;
    void *sum[] = {&acc, &part, &G};
    launch(s, K_SUM_F64, st, 1, 1, 1, 0, sum);
}

/* dst (C) += the rows of part (G, C), in order. */
static void k_colsum_f32(cuda_state *s, cudaStream_t st, float *dst, const float *part, int G, int C)
{
    void *args[] = {&dst, &part, &G, &C};
    launch(s, K_COLSUM_F32, st, (C + 255) / 256, 1, 256, 0, args);
}

static void k_embedding_forward(cuda_state *s, cudaStream_t st, bf16 *out, const int32_t *tok,
                                const bf16 *wte, int N, int C)
{
    void *args[] = {&out, &tok, &wte, &N, &C};
    int64_t items = (int64_t)N * C / (C % 8 == 0 ? 8 : 1);
    launch(s, K_EMBED_FWD, st, grid_for(s, items, 256), 1, 256, 0, args);
}

static void k_embedding_backward(cuda_state *s, cudaStream_t st, float *dwte, const bf16 *dout,
                                 const int32_t *tok, int N, int C)
{
    if (s->det) {
        int threads = C % 2 == 0 ? C / 2 : C, V = s->V;
        void *ord[] = {&dwte, &dout, &tok, &N, &C, &V};
        launch(s, K_EMBED_BWD_ORD, st, (threads + 127) / 128, V < 32 ? V : 32, 128, 0, ord);
        return;
    }
    void *args[] = {&dwte, &dout, &tok, &N, &C};
    int64_t items = (int64_t)N * C / (C % 2 == 0 ? 2 : 1);
    launch(s, K_EMBED_BWD, st, grid_for(s, items, 256), 1, 256, 0, args);
}

/* rows are grid-strided: one block per row up to 65535 */
static int64_t grid_rows(int N) { return N < 65535 ? N : 65535; }

static void k_rmsnorm_forward(cuda_state *s, cudaStream_t st, bf16 *out, float *rstd,
                              const bf16 *inp, const bf16 *w, int N, int C, float eps)
{
    void *args[] = {&out, &rstd, &inp, &w, &N, &C, &eps};
    launch(s, K_RMSNORM_FWD, st, grid_rows(N), 1, C <= 1024 ? 128 : 256, 0, args);
}

static void k_residual_rmsnorm_forward(cuda_state *s, cudaStream_t st, bf16 *res_out, bf16 *out,
                                       float *rstd, const bf16 *a, const bf16 *b, const bf16 *w,
                                       int N, int C, float eps)
{
    void *args[] = {&res_out, &out, &rstd, &a, &b, &w, &N, &C, &eps};
    launch(s, K_RES_RMSNORM_FWD, st, grid_rows(N), 1, C <= 1024 ? 128 : 256, 0, args);
}

static void k_rmsnorm_backward(cuda_state *s, cudaStream_t st, bf16 *dinp, float *dw,
                               const bf16 *dout, const bf16 *inp, const bf16 *w,
                               const float *rstd, const bf16 *dres, int N, int C)
{
    int64_t grid = (int64_t)8 * s->sm_count;
    if (grid > N) grid = N;
    if (s->det && grid > HZ_PART_ROWS) grid = HZ_PART_ROWS;
    float *acc = s->det ? s->w.part : dw; /* deterministic: block partials, then in order */
    void *args[] = {&dinp, &acc, &dout, &inp, &w, &rstd, &dres, &N, &C};
    launch(s, s->det ? K_RMSNORM_BWD_PART : K_RMSNORM_BWD, st, grid, 1, 256, (int64_t)C * 4,
           args);
    if (s->det) k_colsum_f32(s, st, dw, acc, (int)grid, C);
}

static void k_qkv_bias_rope(cuda_state *s, cudaStream_t st, bf16 *q, bf16 *k, bf16 *v,
                            const bf16 *qkv, const bf16 *bias, const float *inv_freq)
{
    int N = s->N, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    void *args[] = {&q, &k, &v, &qkv, &bias, &inv_freq, &N, &T, &NH, &NKV, &HD};
    launch(s, K_QKV_ROPE, st, (N + 63) / 64, NH + 2 * NKV, 256, 0, args);
}

static void k_qkv_rope_backward(cuda_state *s, cudaStream_t st, bf16 *dqkv, float *dbias,
                                const bf16 *dq, const bf16 *dk, const bf16 *dv,
                                const float *inv_freq)
{
    int N = s->N, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD, OUT = (int)s->QKV;
    int64_t grid = (N + 63) / 64;
    int det = s->det && dbias; /* deterministic: block partials, then in order */
    if (det && grid > HZ_PART_ROWS) grid = HZ_PART_ROWS;
    float *acc = det ? s->w.part : dbias;
    void *args[] = {&dqkv, &acc, &dq, &dk, &dv, &inv_freq, &N, &T, &NH, &NKV, &HD};
    launch(s, det ? K_QKV_ROPE_BWD_PART : K_QKV_ROPE_BWD, st, grid, NH + 2 * NKV, 256, 0, args);
    if (det) k_colsum_f32(s, st, dbias, acc, (int)grid, OUT);
}

static void k_swiglu_forward(cuda_state *s, cudaStream_t st, bf16 *h, const bf16 *gu)
{
    long N = s->N;
    int F = s->F;
    void *args[] = {&h, &gu, &N, &F};
    int64_t items = (int64_t)N * F / (F % 8 == 0 ? 8 : 1);
    launch(s, K_SWIGLU_FWD, st, grid_for(s, items, 256), 1, 256, 0, args);
}

static void k_swiglu_backward(cuda_state *s, cudaStream_t st, bf16 *dgu, const bf16 *dh,
                              const bf16 *gu)
{
    long N = s->N;
    int F = s->F;
    void *args[] = {&dgu, &dh, &gu, &N, &F};
    int64_t items = (int64_t)N * F / (F % 8 == 0 ? 8 : 1);
    launch(s, K_SWIGLU_BWD, st, grid_for(s, items, 256), 1, 256, 0, args);
}

static void k_crossentropy(cuda_state *s, cudaStream_t st, bf16 *dlogits, float *losses,
                           const bf16 *logits, const int32_t *targets, int N, int V, float dscale)
{
    void *args[] = {&dlogits, &losses, &logits, &targets, &N, &V, &dscale};
    int chunks = V % 8 == 0 ? V / 8 : V, block = (chunks + 31) / 32 * 32;
    if (block > 1024) block = 1024;
    launch(s, K_XENT, st, grid_rows(N), 1, block, 0, args);
}

/* ---- attention (runtime/cuda/attention.cu): FlashAttention-2 forward, and the backward
 * as preprocess (D = rowsum(dout * out)), the kv-tile kernel (dk, dv) and the q-tile kernel
 * (dq). ---- */

#define ATT_TILE 64 /* HZ_ATT_BM = HZ_ATT_BN */
#define ATT_THREADS 128

static int64_t att_forward_smem(int HD) { return 3 * ATT_TILE * (int64_t)HD * 2; }
/* As the launch comment of hzk_attention_backward: K, V, two buffers each of Q and dO
 * (6 tiles of 64 x HD bf16), and lse/D for two query tiles (fp32). */
static int64_t att_backward_smem(int HD)
{
    return 6 * ATT_TILE * (int64_t)HD * 2 + 4 * ATT_TILE * 4;
}
/* hzk_attention_backward_dq: Q, dO, K, V tiles of 64 x HD bf16 */
static int64_t att_dq_smem(int HD) { return 4 * ATT_TILE * (int64_t)HD * 2; }

static void k_attention_forward(cuda_state *s, cudaStream_t st, bf16 *out, float *lse,
                                const bf16 *q, const bf16 *k, const bf16 *v)
{
    int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    float scale = s->att_scale;
    void *args[] = {&out, &lse, &q, &k, &v, &B, &T, &NH, &NKV, &HD, &scale};
    launch(s, K_ATT_FWD, st, (int64_t)B * NH, (T + ATT_TILE - 1) / ATT_TILE, ATT_THREADS,
           att_forward_smem(HD), args);
}

/* dq, dk, dv (overwritten) from dout and the forward's q, k, v, out, lse; D (B, NH, T) fp32
 * is scratch. Bit-deterministic: dq and dk/dv come from separate kernels, neither with
 * atomics. */
static void k_attention_backward(cuda_state *s, cudaStream_t st, bf16 *dq, bf16 *dk,
                                 bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                                 const bf16 *v, const bf16 *out, const float *lse, float *D)
{
    int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    float scale = s->att_scale;
    int64_t tiles = (T + ATT_TILE - 1) / ATT_TILE;
    void *pre[] = {&D, &dout, &out, &B, &T, &NH, &HD};
    launch(s, K_ATT_BWD_PRE, st, grid_for(s, (int64_t)B * T * NH * 32, 256), 1, 256, 0, pre);
    void *bwd[] = {&dk, &dv, &dout, &q, &k, &v, &lse, &D, &B, &T, &NH, &NKV, &HD, &scale};
    launch(s, K_ATT_BWD, st, (int64_t)B * NKV, tiles, ATT_THREADS, att_backward_smem(HD), bwd);
    void *bdq[] = {&dq, &dout, &q, &k, &v, &lse, &D, &B, &T, &NH, &NKV, &HD, &scale};
    launch(s, K_ATT_BWD_DQ, st, (int64_t)B * NH, tiles, ATT_THREADS, att_dq_smem(HD), bdq);
}

/* ======================================================================================
 * GEMMs with cuBLASLt: bf16 A and B, fp32 compute, bf16 or fp32 D. Column-major inside;
 * the row-major helpers below (linear_*) say which operand is which.
 * ====================================================================================== */

static gemm_plan *gemm_find(cuda_state *s, int ta, int tb, int64_t m, int64_t n, int64_t k,
                            int64_t lda, int64_t ldb, int64_t ldd, int out_f32, uint32_t aa,
                            uint32_t ab, uint32_t ad)
{
    for (int i = 0; i < s->gemm_n; i++) {
        gemm_plan *g = &s->gemm[i];
        if (g->transa == ta && g->transb == tb && g->m == m && g->n == n && g->k == k &&
            g->lda == lda && g->ldb == ldb && g->ldd == ldd && g->out_f32 == out_f32 &&
            g->align_a == aa && g->align_b == ab && g->align_d == ad)
            return g;
    }
    return NULL;
}

/* Describe a new GEMM and ask cuBLASLt's heuristic for its algorithm (once per key). */
static gemm_plan *gemm_new(cuda_state *s, const char *what, int ta, int tb, int64_t m,
                           int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldd,
                           int out_f32, uint32_t aa, uint32_t ab, uint32_t ad)
{
    if (s->gemm_n == GEMM_MAX) die("more than %d distinct GEMMs (internal error)", GEMM_MAX);
    gemm_plan *g = &s->gemm[s->gemm_n];
    *g = (gemm_plan){ta, tb, out_f32, m, n, k, lda, ldb, ldd, aa, ab, ad, 0, 0, 0, 0, {{0}}, 0};
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cudaDataType_t dt = out_f32 ? CUDA_R_32F : CUDA_R_16BF;
    LT_CHECK(cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_CHECK(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa,
                                            sizeof opa));
    LT_CHECK(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb,
                                            sizeof opb));
    /* stored shapes: A is (m, k) or, transposed, (k, m); B is (k, n) or (n, k) */
    LT_CHECK(cublasLtMatrixLayoutCreate(&g->la, CUDA_R_16BF, (uint64_t)(ta ? k : m),
                                        (uint64_t)(ta ? m : k), lda));
    LT_CHECK(cublasLtMatrixLayoutCreate(&g->lb, CUDA_R_16BF, (uint64_t)(tb ? n : k),
                                        (uint64_t)(tb ? k : n), ldb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&g->ld, dt, (uint64_t)m, (uint64_t)n, ldd));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = LT_WORKSPACE_BYTES;
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &ws, sizeof ws));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                  &aa, sizeof aa));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                  &ab, sizeof ab));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                  &ad, sizeof ad));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                  &ad, sizeof ad));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(s->lt, g->desc, g->la, g->lb, g->ld, g->ld,
                                                       pref, 1, &res, &found);
    LT_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (st != CUBLAS_STATUS_SUCCESS || found == 0)
        die("cuBLASLt has no algorithm for the GEMM %s (m %lld n %lld k %lld, op %c%c, %s out, "
            "alignments %u/%u/%u bytes): %s",
            what, (long long)m, (long long)n, (long long)k, ta ? 'T' : 'N', tb ? 'T' : 'N',
            out_f32 ? "fp32" : "bf16", aa, ab, ad, cublasLtGetStatusString(st));
    g->algo = res.algo;
    g->ws_bytes = res.workspaceSize;
    s->gemm_n++;
    return g;
}

/* D (m, n) = A' B' (+ D when beta = 1), column-major, A' = op(A) (m, k), B' = op(B) (k, n).
 * WHAT names the product for messages. Pointers must be 16-byte aligned. */
static void gemm(cuda_state *s, const char *what, int ta, int tb, int64_t m, int64_t n,
                 int64_t k, const bf16 *A, int64_t lda, const bf16 *B, int64_t ldb, void *D,
                 int64_t ldd, int out_f32, float beta)
{
    uint32_t aa = ptr_align(A), ab = ptr_align(B), ad = ptr_align(D);
    if (aa < 16 || ab < 16 || ad < 16)
        die("GEMM %s (m %lld n %lld k %lld): operands must be 16-byte aligned, got alignments "
            "A %u, B %u, D %u bytes (internal error: the plan's offsets should keep them aligned)",
            what, (long long)m, (long long)n, (long long)k, aa, ab, ad);
    gemm_plan *g = gemm_find(s, ta, tb, m, n, k, lda, ldb, ldd, out_f32, aa, ab, ad);
    if (!g) {
        if (!s->dry && !s->gemm_late++)
            fprintf(stderr, "train: warning: GEMM %s (m %lld n %lld k %lld) was not planned at "
                            "init; planning it now\n",
                    what, (long long)m, (long long)n, (long long)k);
        g = gemm_new(s, what, ta, tb, m, n, k, lda, ldb, ldd, out_f32, aa, ab, ad);
    }
    if (s->dry) return;
    const float alpha = 1.0f;
    cublasStatus_t st = cublasLtMatmul(s->lt, g->desc, &alpha, A, g->la, B, g->lb, &beta, D, g->ld,
                                       D, g->ld, &g->algo, s->ws, g->ws_bytes,
                                       s->stream[HZ_COMPUTE]);
    if (st != CUBLAS_STATUS_SUCCESS)
        die("cuBLASLt GEMM %s (m %lld n %lld k %lld, op %c%c, %s out, beta %g) failed: %s",
            what, (long long)m, (long long)n, (long long)k, ta ? 'T' : 'N', tb ? 'T' : 'N',
            out_f32 ? "fp32" : "bf16", (double)beta, cublasLtGetStatusString(st));
}

/* Row-major linear layers as in runtime/cpu/ops.h, w (OUT, IN):
 *   y (N, OUT) = x (N, IN) @ w^T          -> column-major y^T = op_T(w) x^T
 *   dx (N, IN) = dy (N, OUT) @ w          -> dx^T = w^T dy^T, w read as (IN, OUT) col-major
 *   dw (OUT, IN) += dy^T @ x  (fp32)      -> dw^T (IN, OUT) = x^T dy, dy read transposed */
static void linear_forward(cuda_state *s, const char *what, bf16 *y, const bf16 *x,
                           const bf16 *w, int64_t N, int64_t IN, int64_t OUT)
{
    gemm(s, what, 1, 0, OUT, N, IN, w, IN, x, IN, y, OUT, 0, 0.0f);
}

static void linear_backward_x(cuda_state *s, const char *what, bf16 *dx, const bf16 *dy,
                              const bf16 *w, int64_t N, int64_t IN, int64_t OUT)
{
    gemm(s, what, 0, 0, IN, N, OUT, w, IN, dy, OUT, dx, IN, 0, 0.0f);
}

static void linear_backward_w(cuda_state *s, const char *what, float *dw, const bf16 *dy,
                              const bf16 *x, int64_t N, int64_t IN, int64_t OUT)
{
    gemm(s, what, 0, 1, IN, OUT, N, x, IN, dy, OUT, dw, IN, 1, 1.0f);
}

/* ======================================================================================
 * Device memory: the arena's regions, and the issue helpers (no-ops while planning)
 * ====================================================================================== */

static char *region_at(const cuda_state *s, int kind, int i)
{
    const hz_region *r = &s->p->regions[kind];
    return s->arena + r->offset_bytes + (int64_t)i * r->slot_bytes;
}

/* Boundary activation l (the input of block l; L: the head's input), token row TOK: its
 * slot, or buffer l % 2 when the plan keeps the boundaries on the host. */
static bf16 *boundary_at(const cuda_state *s, int64_t l, int64_t tok)
{
    return (bf16 *)region_at(s, HZ_BOUNDARY, (int)hz_boundary_buf(s->p, l)) + tok * s->C;
}

static void d_memset(cuda_state *s, cudaStream_t st, void *ptr, int64_t bytes)
{
    if (!s->dry) CUDA_CHECK(cudaMemsetAsync(ptr, 0, (size_t)bytes, st));
}

static void d_copy(cuda_state *s, cudaStream_t st, void *dst, const void *src, int64_t bytes,
                   enum cudaMemcpyKind kind)
{
    if (!s->dry) CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)bytes, kind, st));
}

/* Carve WORK and LOSSBUF exactly as compiler/plan.c work_bytes() and loss_bytes() size them;
 * a mismatch means the trainer's schedule and this runtime come from different plans. */
static void carve_buffers(cuda_state *s)
{
    const hz_plan *p = s->p;
    int64_t N = s->N, C = s->C, F = s->F, A = s->A, KV = s->KV, QKV = s->QKV;
    char *base = region_at(s, HZ_WORK, 0), *at = base;
#define TAKE(ptr, type, n) (ptr = (type *)at, at += (n) * (int64_t)sizeof(type))
    work_bufs *w = &s->w;
    TAKE(w->xn, bf16, N * C);
    TAKE(w->qkv, bf16, N * QKV);
    TAKE(w->q, bf16, N * A);
    TAKE(w->k, bf16, N * KV);
    TAKE(w->v, bf16, N * KV);
    TAKE(w->att, bf16, N * A);
    TAKE(w->xmid, bf16, N * C);
    TAKE(w->xn2, bf16, N * C);
    TAKE(w->gu, bf16, N * 2 * F);
    TAKE(w->h, bf16, N * F);
    TAKE(w->dh, bf16, N * F);
    TAKE(w->dgu, bf16, N * 2 * F);
    TAKE(w->dxn2, bf16, N * C);
    TAKE(w->dxmid, bf16, N * C);
    TAKE(w->datt, bf16, N * A);
    TAKE(w->dq, bf16, N * A);
    TAKE(w->dk, bf16, N * KV);
    TAKE(w->dv, bf16, N * KV);
    TAKE(w->dqkv, bf16, N * QKV);
    TAKE(w->dxn, bf16, N * C);
    at = base + align_up(at - base, 256);
    TAKE(w->rstd1, float, N);
    TAKE(w->rstd2, float, N);
    TAKE(w->lse, float, (int64_t)s->B * s->NH * s->T);
    TAKE(w->part, float, (int64_t)HZ_PART_ROWS * (C > QKV ? C : QKV));
    int64_t work = align_up(at - base, 256);
    if (work != p->work_bytes || work > p->regions[HZ_WORK].bytes)
        die("the plan's workspace is %lld bytes but this backend's buffer list needs %lld: the "
            "trainer was generated by another hzc than its runtime; rebuild it with this hzc",
            (long long)p->work_bytes, (long long)work);

    base = at = region_at(s, HZ_LOSSBUF, 0);
    loss_bufs *l = &s->l;
    TAKE(l->xn, bf16, N * C);
    TAKE(l->dxn, bf16, N * C);
    TAKE(l->logits, bf16, (int64_t)s->K * s->V);
    at = base + align_up(at - base, 256);
    TAKE(l->rstd, float, N);
    TAKE(l->losses, float, N);
#undef TAKE
    int64_t loss = align_up(at - base, 256);
    if (loss != p->regions[HZ_LOSSBUF].bytes)
        die("the plan's loss head buffer is %lld bytes but this backend needs %lld: rebuild the "
            "trainer with this hzc",
            (long long)p->regions[HZ_LOSSBUF].bytes, (long long)loss);

    s->dgrad = (bf16 *)region_at(s, HZ_DGRAD, 0);
    s->tok_in = (int32_t *)region_at(s, HZ_TOKENS, 0);
    s->tok_tgt = s->tok_in + p->dims.step_tokens;
    s->scalars = (double *)region_at(s, HZ_SCALARS, 0);
    if (p->regions[HZ_SCALARS].bytes < (SC_PARTS + HZ_SUMSQ_PARTS) * 8)
        die("the plan's scalars region is too small (rebuild the trainer with this hzc)");
}

/* ======================================================================================
 * The model on the GPU: block, loss head, embedding (runtime/cpu/block.c, op by op)
 * ====================================================================================== */

static const bf16 *w_at(const hz_plan *p, const hz_unit *u, int kind, const char *slot)
{
    const hz_tensor *t = hz_unit_tensor(p, u, kind);
    return t ? (const bf16 *)slot + t->slot_n : NULL;
}

static float *g_at(const hz_plan *p, const hz_unit *u, int kind, char *grads)
{
    const hz_tensor *t = hz_unit_tensor(p, u, kind);
    return t ? (float *)grads + t->grad_n : NULL;
}

static block_w block_weights(const hz_plan *p, const hz_unit *u, const char *slot)
{
    block_w w = {w_at(p, u, HZ_ATTN_NORM, slot), w_at(p, u, HZ_WQKV, slot),
                 w_at(p, u, HZ_BQKV, slot),      w_at(p, u, HZ_WO, slot),
                 w_at(p, u, HZ_MLP_NORM, slot),  w_at(p, u, HZ_WGU, slot),
                 w_at(p, u, HZ_WDOWN, slot)};
    return w;
}

static block_g block_grads(const hz_plan *p, const hz_unit *u, char *grads)
{
    block_g g = {g_at(p, u, HZ_ATTN_NORM, grads), g_at(p, u, HZ_WQKV, grads),
                 g_at(p, u, HZ_BQKV, grads),      g_at(p, u, HZ_WO, grads),
                 g_at(p, u, HZ_MLP_NORM, grads),  g_at(p, u, HZ_WGU, grads),
                 g_at(p, u, HZ_WDOWN, grads)};
    return g;
}

/* out = block(inp) for one micro-batch, (N, C) bf16 each. With out == NULL only the
 * internals the backward needs are recomputed (the down projection and the last residual
 * add are skipped). */
static void block_forward(cuda_state *s, const block_w *w, const bf16 *inp, bf16 *out)
{
    cudaStream_t st = s->stream[HZ_COMPUTE];
    work_bufs *b = &s->w;
    const float eps = s->p->dims.eps;
    k_rmsnorm_forward(s, st, b->xn, b->rstd1, inp, w->attn_norm, s->N, s->C, eps);
    linear_forward(s, "qkv = xn wqkv^T", b->qkv, b->xn, w->wqkv, s->N, s->C, s->QKV);
    k_qkv_bias_rope(s, st, b->q, b->k, b->v, b->qkv, w->bqkv, s->inv_freq);
    k_attention_forward(s, st, b->att, b->lse, b->q, b->k, b->v);
    linear_forward(s, "xmid = att wo^T", b->xmid, b->att, w->wo, s->N, s->A, s->C);
    k_residual_rmsnorm_forward(s, st, b->xmid, b->xn2, b->rstd2, b->xmid, inp, w->mlp_norm, s->N,
                               s->C, eps);
    linear_forward(s, "gate_up = xn2 wgate_up^T", b->gu, b->xn2, w->wgu, s->N, s->C,
                   2 * (int64_t)s->F);
    k_swiglu_forward(s, st, b->h, b->gu);
    if (!out) return;
    linear_forward(s, "out = h wdown^T", out, b->h, w->wdown, s->N, s->F, s->C);
    k_add_bf16(s, st, out, out, b->xmid, (long)s->N * s->C);
}

/* Recompute the block from inp, then backward: dx (N, C) holds dout on entry and dinp on
 * exit; weight gradients accumulate (fp32) into g. */
static void block_backward(cuda_state *s, const block_w *w, const block_g *g, const bf16 *inp,
                           bf16 *dx)
{
    cudaStream_t st = s->stream[HZ_COMPUTE];
    work_bufs *b = &s->w;
    int64_t N = s->N, C = s->C, F = s->F, A = s->A, QKV = s->QKV;
    block_forward(s, w, inp, NULL);
    /* MLP: out = xmid + down(silu(gate) * up) */
    linear_backward_x(s, "dh = dout wdown", b->dh, dx, w->wdown, N, F, C);
    linear_backward_w(s, "dwdown += dout^T h", g->wdown, dx, b->h, N, F, C);
    k_swiglu_backward(s, st, b->dgu, b->dh, b->gu);
    linear_backward_x(s, "dxn2 = dgate_up wgate_up", b->dxn2, b->dgu, w->wgu, N, C, 2 * F);
    linear_backward_w(s, "dwgate_up += dgate_up^T xn2", g->wgu, b->dgu, b->xn2, N, C, 2 * F);
    k_rmsnorm_backward(s, st, b->dxmid, g->mlp_norm, b->dxn2, b->xmid, w->mlp_norm, b->rstd2, dx,
                       s->N, s->C);
    /* attention: xmid = x + o_proj(attention(rope(q), rope(k), v)); D of the attention
     * backward lives in the qkv buffer, free once rope has read it */
    linear_backward_x(s, "datt = dxmid wo", b->datt, b->dxmid, w->wo, N, A, C);
    linear_backward_w(s, "dwo += dxmid^T att", g->wo, b->dxmid, b->att, N, A, C);
    k_attention_backward(s, st, b->dq, b->dk, b->dv, b->datt, b->q, b->k, b->v, b->att,
                         b->lse, (float *)b->qkv);
    k_qkv_rope_backward(s, st, b->dqkv, g->bqkv, b->dq, b->dk, b->dv, s->inv_freq);
    linear_backward_x(s, "dxn = dqkv wqkv", b->dxn, b->dqkv, w->wqkv, N, C, QKV);
    linear_backward_w(s, "dwqkv += dqkv^T xn", g->wqkv, b->dqkv, b->xn, N, C, QKV);
    k_rmsnorm_backward(s, st, dx, g->attn_norm, b->dxn, inp, w->attn_norm, b->rstd1, b->dxmid,
                       s->N, s->C);
}

/* The loss head of micro-batch m (tokens mtok..): final norm, then per chunk of K tokens
 * the logits, the fused cross-entropy and (BACKWARD) the dx chunk and dlm += ; then the norm's
 * backward into DX. The per-token losses go to host_losses (pinned) on the compute stream;
 * host_logits (an eval with --dump-logits), when not NULL, receives the logits in fp32. */
static void head_loss(cuda_state *s, const hz_unit *u, const char *slot, char *grads, int64_t mtok,
                      float dscale, bf16 *dx, int backward, float *host_losses,
                      float *host_logits)
{
    const hz_plan *p = s->p;
    cudaStream_t st = s->stream[HZ_COMPUTE];
    loss_bufs *l = &s->l;
    const bf16 *norm_w = w_at(p, u, HZ_FINAL_NORM, slot), *lm = w_at(p, u, HZ_LM_HEAD, slot);
    const bf16 *x = boundary_at(s, p->dims.L, mtok);
    int64_t N = s->N, C = s->C, V = s->V, K = s->K;
    k_rmsnorm_forward(s, st, l->xn, l->rstd, x, norm_w, s->N, s->C, p->dims.eps);
    for (int64_t c0 = 0; c0 < N; c0 += K) {
        linear_forward(s, "logits = xn lm_head^T", l->logits, l->xn + c0 * C, lm, K, C, V);
        if (host_logits) {
            d_copy(s, st, s->h_logits, l->logits, K * V * 2, cudaMemcpyDeviceToHost);
            CUDA_CHECK(cudaStreamSynchronize(st));
            float *o = host_logits + (mtok + c0) * V;
            for (int64_t i = 0; i < K * V; i++) o[i] = hz_bf16_f32_inl(s->h_logits[i]);
        }
        k_crossentropy(s, st, l->logits, l->losses + c0, l->logits, s->tok_tgt + mtok + c0, s->K,
                       s->V, dscale);
        if (!backward) continue;
        linear_backward_x(s, "dxn = dlogits lm_head", l->dxn + c0 * C, l->logits, lm, K, C, V);
        linear_backward_w(s, "dlm_head += dlogits^T xn", g_at(p, u, HZ_LM_HEAD, grads), l->logits,
                          l->xn + c0 * C, K, C, V);
    }
    d_copy(s, st, host_losses, l->losses, N * 4, cudaMemcpyDeviceToHost);
    if (backward)
        k_rmsnorm_backward(s, st, dx, g_at(p, u, HZ_FINAL_NORM, grads), l->dxn, x, norm_w, l->rstd,
                           NULL, s->N, s->C);
}

/* Forward of the embedding or a block for micro-batch m into the next boundary. */
static void forward_unit(cuda_state *s, const hz_unit *u, int m, const char *slot)
{
    const hz_plan *p = s->p;
    int64_t mtok = (int64_t)m * s->N;
    bf16 *out = boundary_at(s, u->layer + 1, mtok);
    if (u->kind == HZ_EMBED) {
        k_embedding_forward(s, s->stream[HZ_COMPUTE], out, s->tok_in + mtok,
                            w_at(p, u, HZ_WTE, slot), s->N, s->C);
    } else {
        block_w w = block_weights(p, u, slot);
        block_forward(s, &w, boundary_at(s, u->layer, mtok), out);
    }
}

/* Copy a unit's bf16 weights from the host store into a weight slot. */
static void load_unit(cuda_state *s, hz_ctx *c, const hz_unit *u, char *slot, cudaStream_t st)
{
    const hz_plan *p = s->p;
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *t = &p->tensors[u->first_tensor + k];
        d_copy(s, st, (bf16 *)slot + t->slot_n, c->store.w + t->host_n, t->rows * t->cols * 2,
               cudaMemcpyHostToDevice);
    }
}

/* ======================================================================================
 * The step: ops on their streams, ordered by events
 * ====================================================================================== */

/* Issue op i's work on its stream (everything here is asynchronous). */
static void issue_op(cuda_state *s, hz_ctx *c, int i)
{
    const hz_plan *p = s->p;
    const hz_dims *d = &p->dims;
    const hz_op *o = &p->ops[i];
    const hz_unit *u = &p->units[o->unit];
    int64_t mtok = (int64_t)o->micro * s->N;
    char *slot = o->slot >= 0 ? region_at(s, HZ_WSLOT, o->slot) : NULL;
    char *grads = u->grad_region == HZ_GSLOT
                      ? (o->gslot >= 0 ? region_at(s, HZ_GSLOT, o->gslot) : NULL)
                      : region_at(s, HZ_GHEAD, 0);
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    switch (o->kind) {
    case HZ_LOAD_W:
        load_unit(s, c, u, slot, s->stream[HZ_H2D]);
        break;
    case HZ_FWD:
        forward_unit(s, u, o->micro, slot);
        break;
    case HZ_LOSS:
        if (o->micro == 0) d_memset(s, cs, grads, p->regions[HZ_GHEAD].bytes);
        head_loss(s, u, slot, grads, mtok, c->dscale, s->dgrad + mtok * s->C, 1,
                  s->h_loss + mtok, NULL);
        break;
    case HZ_BWD:
        if (u->kind == HZ_EMBED) {
            float *dwte = g_at(p, u, HZ_WTE, grads);
            if (o->micro == 0 && !d->tied) d_memset(s, cs, dwte, d->V * d->C * 4);
            k_embedding_backward(s, cs, dwte, s->dgrad + mtok * s->C, s->tok_in + mtok, s->N,
                                 s->C);
        } else {
            if (o->micro == 0) d_memset(s, cs, grads, p->regions[HZ_GSLOT].slot_bytes);
            block_w w = block_weights(p, u, slot);
            block_g g = block_grads(p, u, grads);
            block_backward(s, &w, &g, boundary_at(s, u->layer, mtok), s->dgrad + mtok * s->C);
        }
        break;
    case HZ_STORE_G: {
        cudaStream_t ds = s->stream[HZ_D2H];
        bf16 *stage = (bf16 *)region_at(s, HZ_GSTAGE, 0);
        for (int k = 0; k < u->tensor_n; k++) {
            const hz_tensor *t = &p->tensors[u->first_tensor + k];
            if (!t->store_grad) continue;
            const float *src = (const float *)grads + t->grad_n;
            long n = (long)(t->rows * t->cols);
            k_sumsq_f32(s, ds, s->scalars + SC_SUMSQ, src, n);
            if (p->host_grad_bf16) {
                k_f32_to_bf16(s, ds, stage + t->grad_n, src, n);
                d_copy(s, ds, (uint16_t *)c->store.g + t->host_n, stage + t->grad_n, n * 2,
                       cudaMemcpyDeviceToHost);
            } else {
                d_copy(s, ds, (float *)c->store.g + t->host_n, src, n * 4,
                       cudaMemcpyDeviceToHost);
            }
        }
        break;
    }
    case HZ_STORE_B: /* the whole step's boundary o->bnd, one contiguous copy each way */
        d_copy(s, s->stream[HZ_D2H], s->h_boundary + o->bnd * d->step_tokens * s->C,
               boundary_at(s, o->bnd, 0), d->step_tokens * s->C * 2, cudaMemcpyDeviceToHost);
        break;
    case HZ_LOAD_B:
        d_copy(s, s->stream[HZ_H2D], boundary_at(s, o->bnd, 0),
               s->h_boundary + o->bnd * d->step_tokens * s->C, d->step_tokens * s->C * 2,
               cudaMemcpyHostToDevice);
        break;
    default:
        break;
    }
}

/* The step's input and target ids through the pinned staging to the device, on stream st. */
static void stage_tokens(cuda_state *s, hz_ctx *c, cudaStream_t st)
{
    int64_t T = s->p->dims.step_tokens;
    memcpy(s->h_tok, c->inputs, (size_t)T * 4);
    memcpy(s->h_tok + T, c->targets, (size_t)T * 4);
    CUDA_CHECK(cudaMemcpyAsync(s->tok_in, s->h_tok, (size_t)T * 8, cudaMemcpyHostToDevice, st));
}

static void cuda_begin_step(hz_ctx *c)
{
    cuda_state *s = c->bk;
    const hz_plan *p = s->p;
    /* the previous step (and any eval) is complete: the staging is free */
    cudaStream_t h2d = s->stream[HZ_H2D], cs = s->stream[HZ_COMPUTE];
    stage_tokens(s, c, h2d);
    CUDA_CHECK(cudaEventRecord(s->tok_ev, h2d));
    CUDA_CHECK(cudaStreamWaitEvent(cs, s->tok_ev, 0));
    CUDA_CHECK(cudaMemsetAsync(s->scalars, 0, (size_t)p->regions[HZ_SCALARS].bytes, cs));
    CUDA_CHECK(cudaEventRecord(s->tr_start, h2d));
}

static void cuda_run_op(hz_ctx *c, int i)
{
    cuda_state *s = c->bk;
    const hz_op *o = &s->p->ops[i];
    cudaStream_t st = s->stream[o->stream];
    for (int w = 0; w < HZ_OP_WAITS; w++)
        if (o->wait[w] >= 0) CUDA_CHECK(cudaStreamWaitEvent(st, s->ev[o->wait[w]], 0));
    CUDA_CHECK(cudaEventRecord(s->tr0[i], st));
    issue_op(s, c, i);
    CUDA_CHECK(cudaEventRecord(s->tr1[i], st));
    CUDA_CHECK(cudaEventRecord(s->ev[i], st));
    if (s->sync) {
        cudaError_t e = cudaDeviceSynchronize();
        if (e == cudaSuccess) e = cudaGetLastError();
        if (e != cudaSuccess) {
            char buf[128];
            hz_op_label(s->p, i, buf, sizeof buf);
            die("op %d: %s failed on the GPU: %s (%s)", i, buf, cudaGetErrorString(e),
                cudaGetErrorName(e));
        }
    }
}

static void cuda_wait_op(hz_ctx *c, int op)
{
    cuda_state *s = c->bk;
    CUDA_CHECK(cudaEventSynchronize(s->ev[op]));
}

/* HZ_TRACE: per-stream busy time of the step, by op kind, on stderr. */
static void print_trace(cuda_state *s, int64_t step)
{
    const hz_plan *p = s->p;
    double busy[HZ_STREAM_KIND_N] = {0}, kind_ms[HZ_OP_KIND_N] = {0}, span = 0.0;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (o->stream == HZ_HOST) continue;
        float t0 = 0.0f, t1 = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&t0, s->tr_start, s->tr0[i]));
        CUDA_CHECK(cudaEventElapsedTime(&t1, s->tr_start, s->tr1[i]));
        busy[o->stream] += t1 - t0;
        kind_ms[o->kind] += t1 - t0;
        if (t1 > span) span = t1;
    }
    double h2d_gbs = busy[HZ_H2D] > 0 ? (double)s->h2d_step_bytes / (busy[HZ_H2D] * 1e6) : 0.0;
    fprintf(stderr, "trace step %lld: span %.2f ms | compute %.2f ms (fwd %.2f, loss %.2f, bwd "
                    "%.2f) | h2d %.2f ms (%.1f GB/s) | d2h %.2f ms\n",
            (long long)step + 1, span, busy[HZ_COMPUTE], kind_ms[HZ_FWD], kind_ms[HZ_LOSS],
            kind_ms[HZ_BWD], busy[HZ_H2D], h2d_gbs, busy[HZ_D2H]);
}

/* Start and end of every device op of the finished step, in ms from the step's start. */
static int cuda_op_times(hz_ctx *c, float *t0, float *t1)
{
    cuda_state *s = c->bk;
    const hz_plan *p = s->p;
    for (int i = 0; i < p->op_n; i++) {
        t0[i] = t1[i] = 0.0f;
        if (p->ops[i].stream == HZ_HOST) continue;
        CUDA_CHECK(cudaEventElapsedTime(&t0[i], s->tr_start, s->tr0[i]));
        CUDA_CHECK(cudaEventElapsedTime(&t1[i], s->tr_start, s->tr1[i]));
    }
    return 1;
}

static void cuda_step_result(hz_ctx *c, double *loss_sum, double *grad_sumsq)
{
    cuda_state *s = c->bk;
    const hz_plan *p = s->p;
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (k != HZ_HOST) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
    CUDA_CHECK(cudaMemcpyAsync(s->h_scalars, s->scalars, (size_t)p->regions[HZ_SCALARS].bytes,
                               cudaMemcpyDeviceToHost, s->stream[HZ_D2H]));
    CUDA_CHECK(cudaStreamSynchronize(s->stream[HZ_D2H]));
    /* the loss sum in token order on the host: deterministic, and the planned pinned
     * per-token loss staging holds it (no device float-sum kernel is needed) */
    double sum = 0.0;
    for (int64_t i = 0; i < p->dims.step_tokens; i++) sum += s->h_loss[i];
    *loss_sum = sum;
    *grad_sumsq = s->h_scalars[SC_SUMSQ];
    if (s->trace) print_trace(s, c->step);
}

/* ======================================================================================
 * Eval, report, init, destroy
 * ====================================================================================== */

/* Forward only, every unit through weight slot 0 in forward order, then the head's loss;
 * everything on the compute stream. */
static void eval_issue(cuda_state *s, hz_ctx *c, float *host_logits)
{
    const hz_plan *p = s->p;
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    char *slot = region_at(s, HZ_WSLOT, 0);
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        load_unit(s, c, u, slot, cs);
        for (int m = 0; m < p->dims.n_micro; m++) {
            int64_t mtok = (int64_t)m * s->N;
            if (u->kind != HZ_HEAD) forward_unit(s, u, m, slot);
            else head_loss(s, u, slot, NULL, mtok, 0.0f, NULL, 0, s->h_loss + mtok, host_logits);
        }
    }
}

static double cuda_eval(hz_ctx *c)
{
    cuda_state *s = c->bk;
    const hz_plan *p = s->p;
    int64_t T = p->dims.step_tokens;
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (k != HZ_HOST) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
    stage_tokens(s, c, cs);
    if (c->logits_out && !s->h_logits) /* outside the plan: asked for, after training */
        CUDA_CHECK(cudaHostAlloc((void **)&s->h_logits, (size_t)(s->K * (int64_t)s->V * 2),
                                 cudaHostAllocDefault));
    eval_issue(s, c, c->logits_out);
    CUDA_CHECK(cudaStreamSynchronize(cs));
    double sum = 0.0;
    for (int64_t i = 0; i < T; i++) sum += s->h_loss[i];
    return sum;
}

static void print_bytes_line(FILE *out, const char *what, int64_t planned, int64_t measured)
{
    fprintf(out, "  %-22s planned %14lld (%8.3f GiB)  measured %14lld (%8.3f GiB)\n", what,
            (long long)planned, gib(planned), (long long)measured, gib(measured));
}

static void cuda_report(hz_ctx *c, FILE *out)
{
    cuda_state *s = c->bk;
    const hz_plan *p = s->p;
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    print_bytes_line(out, "GPU arena", p->gpu_bytes, s->arena_measured);
    print_bytes_line(out, "GPU peak (this backend)", p->gpu_bytes + LT_WORKSPACE_BYTES,
                     s->arena_measured + s->extra_measured);
    fprintf(out, "  outside the plan: cuBLASLt workspace %u MiB, rope table %lld bytes, kernels "
                 "%zu bytes of cubin; %d GEMM shapes planned%s\n",
            LT_WORKSPACE_BYTES >> 20, (long long)(s->HD / 2 * 4), s->cubin_bytes, s->gemm_n,
            s->gemm_late ? " (some late: see the warning above)" : "");
    fprintf(out, "  pinned host staging    planned %14lld  allocated %14lld\n",
            (long long)(p->host_bytes - p->host_store_bytes), (long long)s->pinned_bytes);
    fprintf(out, "  GPU %s: %.2f GiB in use by all processes now, %.2f GiB total\n", s->gpu_name,
            gib((int64_t)(total_b - free_b)), gib((int64_t)total_b));
}

/* The model's shape as kernel arguments; stop on a shape the kernels cannot run. */
static void set_shape(cuda_state *s, const hz_dims *d)
{
    int64_t lim = INT_MAX;
    if (d->micro_tokens > lim || d->V > lim || d->C > lim || d->F > lim || d->T > lim ||
        d->micro_tokens * (d->NH + 2 * d->NKV) * d->HD > ((int64_t)1 << 40))
        die("the model shape exceeds the kernels' 32-bit dimensions");
    s->N = (int)d->micro_tokens;
    s->C = (int)d->C;
    s->F = (int)d->F;
    s->NH = (int)d->NH;
    s->NKV = (int)d->NKV;
    s->HD = (int)d->HD;
    s->T = (int)d->T;
    s->B = (int)d->B;
    s->V = (int)d->V;
    s->K = (int)d->chunk_tokens;
    s->A = d->NH * d->HD;
    s->KV = d->NKV * d->HD;
    s->QKV = s->A + 2 * s->KV;
    s->att_scale = (float)(1.0 / sqrt((double)d->HD));
    if (d->HD % 16 != 0 || d->HD > 1024)
        die("head_dim %lld: the attention kernels need a multiple of 16 (and rope at most 1024)",
            (long long)d->HD);
    if (d->micro_tokens % d->chunk_tokens != 0)
        die("the loss chunk (%lld tokens) must divide the micro-batch (%lld tokens)",
            (long long)d->chunk_tokens, (long long)d->micro_tokens);
    /* the attention backward's D (B, NH, T) fp32 borrows the qkv buffer */
    if (d->B * d->NH * d->T * 4 > d->micro_tokens * s->QKV * 2)
        die("internal error: the attention backward's D does not fit the qkv buffer");
}

static int cuda_init(hz_ctx *c)
{
    const hz_plan *p = c->plan;
    const hz_dims *d = &p->dims;
    cuda_state *s = calloc(1, sizeof(*s));
    if (!s) return -1;
    c->bk = s;
    s->p = p;
    s->sync = env_flag("HZ_SYNC");
    s->trace = env_flag("HZ_TRACE");
    s->det = c->deterministic;
    set_shape(s, d);

    /* the device */
    CUDA_CHECK(cudaGetDevice(&s->dev));
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, s->dev));
    snprintf(s->gpu_name, sizeof s->gpu_name, "%s", prop.name);
    CUDA_CHECK(cudaDeviceGetAttribute(&s->cc_major, cudaDevAttrComputeCapabilityMajor, s->dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&s->cc_minor, cudaDevAttrComputeCapabilityMinor, s->dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&s->sm_count, cudaDevAttrMultiProcessorCount, s->dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&s->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                      s->dev));
    printf("cuda backend: GPU %d: %s (sm_%d%d, %d SMs, %.1f GiB)\n", s->dev, s->gpu_name,
           s->cc_major, s->cc_minor, s->sm_count, gib((int64_t)prop.totalGlobalMem));

    /* memory check before anything large is allocated */
    size_t free0 = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free0, &total));
    int64_t need = p->gpu_bytes + LT_WORKSPACE_BYTES + 64 * 1024;
    printf("cuda backend: GPU memory: planned arena %lld bytes (%.3f GiB) + %u MiB cuBLASLt "
           "workspace; available %lld bytes (%.3f GiB) of %.3f GiB\n",
           (long long)p->gpu_bytes, gib(p->gpu_bytes), LT_WORKSPACE_BYTES >> 20,
           (long long)free0, gib((int64_t)free0), gib((int64_t)total));
    printf("cuda backend: host memory: planned %lld bytes (%.3f GiB, store %.3f GiB pinned); "
           "available now %.3f GiB\n",
           (long long)p->host_bytes, gib(p->host_bytes), gib(c->store.bytes),
           gib(hz_proc_bytes("/proc/meminfo", "MemAvailable:")));
    if (need > (int64_t)free0) {
        int64_t fit = (int64_t)free0 - (need - p->gpu_bytes); /* arena bytes that would fit */
        fflush(stdout);
        fprintf(stderr,
                "train: error: the plan needs %.3f GiB of GPU memory (arena %.3f GiB + cuBLASLt "
                "workspace) but only %.3f GiB are free on %s: ",
                gib(need), gib(p->gpu_bytes), gib((int64_t)free0), s->gpu_name);
        if (fit >= (64 << 20))
            fprintf(stderr, "rebuild the trainer for this GPU with hzc build --gpu-mem %lldM, or ",
                    (long long)(fit >> 20));
        fprintf(stderr, "free the GPU (nvidia-smi lists the processes holding it)\n");
        return -1;
    }

    /* kernels (NVRTC or the cache) */
    load_kernels(s);
    kernel_smem(s, K_ATT_FWD, att_forward_smem(s->HD));
    kernel_smem(s, K_ATT_BWD, att_backward_smem(s->HD));
    kernel_smem(s, K_RMSNORM_BWD, (int64_t)s->C * 4);
    kernel_smem(s, K_RMSNORM_BWD_PART, (int64_t)s->C * 4);
    kernel_smem(s, K_ATT_BWD_DQ, att_dq_smem(s->HD));

    /* the arena: one cudaMalloc, measured; then what lives outside it */
    size_t free1 = 0, free2 = 0, free3 = 0;
    CUDA_CHECK(cudaMemGetInfo(&free1, &total));
    CUDA_CHECK(cudaMalloc((void **)&s->arena, (size_t)p->gpu_bytes));
    CUDA_CHECK(cudaMemGetInfo(&free2, &total));
    s->arena_measured = (int64_t)free1 - (int64_t)free2;
    CUDA_CHECK(cudaMalloc(&s->ws, LT_WORKSPACE_BYTES));
    CUDA_CHECK(cudaMalloc((void **)&s->inv_freq, (size_t)(s->HD / 2) * 4));
    CUDA_CHECK(cudaMemGetInfo(&free3, &total));
    s->extra_measured = (int64_t)free2 - (int64_t)free3;
    float *table = malloc((size_t)(s->HD / 2) * 4);
    if (!table) return -1;
    rope_inv_freq_dims(table, d); /* exactly as the cpu reference (runtime/cpu/rope.c) */
    CUDA_CHECK(cudaMemcpy(s->inv_freq, table, (size_t)(s->HD / 2) * 4, cudaMemcpyHostToDevice));
    free(table);
    carve_buffers(s);

    /* pinned staging: the step's tokens, its per-token losses, the scalars */
    int64_t T = d->step_tokens, sc_bytes = p->regions[HZ_SCALARS].bytes;
    s->pinned_bytes = T * 12 + sc_bytes;
    CUDA_CHECK(cudaHostAlloc((void **)&s->h_tok, (size_t)T * 8, cudaHostAllocDefault));
    CUDA_CHECK(cudaHostAlloc((void **)&s->h_loss, (size_t)T * 4, cudaHostAllocDefault));
    CUDA_CHECK(cudaHostAlloc((void **)&s->h_scalars, (size_t)sc_bytes, cudaHostAllocDefault));
    if (p->boundary_on_host) {
        int64_t bytes = d->L * T * d->C * 2;
        CUDA_CHECK(cudaHostAlloc((void **)&s->h_boundary, (size_t)bytes, cudaHostAllocDefault));
        s->pinned_bytes += bytes;
    }

    /* streams and events */
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (k != HZ_HOST)
            CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream[k], cudaStreamNonBlocking));
    s->ev = calloc((size_t)p->op_n, sizeof(cudaEvent_t));
    s->tr0 = calloc((size_t)p->op_n, sizeof(cudaEvent_t));
    s->tr1 = calloc((size_t)p->op_n, sizeof(cudaEvent_t));
    if (!s->ev || !s->tr0 || !s->tr1) return -1;
    for (int i = 0; i < p->op_n; i++) {
        /* blocking sync: the host threads that wait on ops (the optimizer, the step's end)
         * sleep instead of spinning a core away from the AdamW pool */
        CUDA_CHECK(cudaEventCreateWithFlags(&s->ev[i],
                                            cudaEventDisableTiming | cudaEventBlockingSync));
        /* timing events around every op: the step profile and --trace (cheap: two
         * event records per op) */
        CUDA_CHECK(cudaEventCreate(&s->tr0[i]));
        CUDA_CHECK(cudaEventCreate(&s->tr1[i]));
        const hz_op *o = &p->ops[i];
        if (o->kind == HZ_LOAD_W) {
            const hz_unit *u = &p->units[o->unit];
            for (int k = 0; k < u->tensor_n; k++) {
                const hz_tensor *t = &p->tensors[u->first_tensor + k];
                s->h2d_step_bytes += t->rows * t->cols * 2;
            }
        }
    }
    CUDA_CHECK(cudaEventCreateWithFlags(&s->tok_ev, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreate(&s->tr_start));

    /* cuBLASLt: plan every GEMM of the step and of eval by walking them without issuing */
    LT_CHECK(cublasLtCreate(&s->lt));
    double t0 = hz_now_s();
    s->dry = 1;
    for (int i = 0; i < p->op_n; i++)
        if (p->ops[i].stream != HZ_HOST) issue_op(s, c, i);
    eval_issue(s, c, NULL);
    s->dry = 0;
    printf("cuda backend: %d GEMM shapes planned with cuBLASLt in %.2f s; arena %lld bytes "
           "allocated (measured %lld)%s%s\n",
           s->gemm_n, hz_now_s() - t0, (long long)p->gpu_bytes, (long long)s->arena_measured,
           s->sync ? "; HZ_SYNC: synchronising after every op" : "",
           s->trace ? "; HZ_TRACE: timing every op" : "");
    if (s->det)
        printf("cuda backend: deterministic kernels (--deterministic): ordered sums instead of "
               "float atomics\n");
    return 0;
}

static void cuda_destroy(hz_ctx *c)
{
    cuda_state *s = c->bk;
    if (!s) return;
    const hz_plan *p = s->p;
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (s->stream[k]) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
    for (int i = 0; i < s->gemm_n; i++) {
        gemm_plan *g = &s->gemm[i];
        LT_CHECK(cublasLtMatrixLayoutDestroy(g->la));
        LT_CHECK(cublasLtMatrixLayoutDestroy(g->lb));
        LT_CHECK(cublasLtMatrixLayoutDestroy(g->ld));
        LT_CHECK(cublasLtMatmulDescDestroy(g->desc));
    }
    if (s->lt) LT_CHECK(cublasLtDestroy(s->lt));
    for (int i = 0; i < p->op_n; i++) {
        if (s->ev && s->ev[i]) CUDA_CHECK(cudaEventDestroy(s->ev[i]));
        if (s->tr0 && s->tr0[i]) CUDA_CHECK(cudaEventDestroy(s->tr0[i]));
        if (s->tr1 && s->tr1[i]) CUDA_CHECK(cudaEventDestroy(s->tr1[i]));
    }
    if (s->tok_ev) CUDA_CHECK(cudaEventDestroy(s->tok_ev));
    if (s->tr_start) CUDA_CHECK(cudaEventDestroy(s->tr_start));
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (s->stream[k]) CUDA_CHECK(cudaStreamDestroy(s->stream[k]));
    if (s->mod) CU_CHECK(cuModuleUnload(s->mod));
    if (s->arena) CUDA_CHECK(cudaFree(s->arena));
    if (s->ws) CUDA_CHECK(cudaFree(s->ws));
    if (s->inv_freq) CUDA_CHECK(cudaFree(s->inv_freq));
    if (s->h_tok) CUDA_CHECK(cudaFreeHost(s->h_tok));
    if (s->h_loss) CUDA_CHECK(cudaFreeHost(s->h_loss));
    if (s->h_scalars) CUDA_CHECK(cudaFreeHost(s->h_scalars));
    if (s->h_boundary) CUDA_CHECK(cudaFreeHost(s->h_boundary));
    if (s->h_logits) CUDA_CHECK(cudaFreeHost(s->h_logits));
    free(s->ev);
    free(s->tr0);
    free(s->tr1);
    free(s);
    c->bk = NULL;
}

const hz_backend hz_backend_impl = {
    .name = "cuda",
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .init = cuda_init,
    .begin_step = cuda_begin_step,
    .run_op = cuda_run_op,
    .op_times = cuda_op_times,
    .wait_op = cuda_wait_op,
    .step_result = cuda_step_result,
    .eval = cuda_eval,
    .report = cuda_report,
    .destroy = cuda_destroy,
};
