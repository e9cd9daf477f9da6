/* runtime/cuda/setup.c - each rank's GPU set up as the plan asks (hz_backend.init): the
 * model's shape as kernel arguments, the device, the attention path, the memory check
 * before anything large is allocated, the kernels, the arena, the streams and one event
 * per op, the GEMM plans made by walking the step and eval without issuing; then, with
 * several ranks or hosts, NCCL's communicators (ranks.c); and all of it freed
 * (hz_backend.destroy). Environment: HZ_SYNC=1, HZ_TRACE=1 (backend.c). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

static int env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* The model's shape as kernel arguments; stop on a shape the kernels cannot run. */
static void set_shape(cuda_state *s, const hz_dims *d)
{
    int64_t lim = INT_MAX;
    if (d->micro_tokens > lim || d->V > lim || d->C > lim || d->F > lim || d->T > lim ||
        d->micro_tokens * (d->NH + 2 * d->NKV) * d->HD > ((int64_t)1 << 40))
        hzcu_die("the model shape exceeds the kernels' 32-bit dimensions");
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
    s->att_scale = d->attn_scale; /* HD^-0.5, or Gemma 3's query_pre_attn_scalar^-0.5 */
    char hds[64];
    if (!hz_caps_head_dim_ok(hz_backend_impl.caps, d->HD, hds, sizeof hds))
        hzcu_die("head_dim %lld: the cuda backend's attention kernels run head_dim %s; rebuild "
                 "the trainer with hzc build, which checks this",
                 (long long)d->HD, hds);
    if (d->micro_tokens % d->chunk_tokens != 0)
        hzcu_die("the loss chunk (%lld tokens) must divide the micro-batch (%lld tokens)",
                 (long long)d->chunk_tokens, (long long)d->micro_tokens);
    /* the attention backward's D (B, NH, T) fp32 borrows the qkv buffer */
    if (d->B * d->NH * d->T * 4 > d->micro_tokens * s->QKV * 2)
        hzcu_die("internal error: the attention backward's D does not fit the qkv buffer");
}

/* Rank R's GPU (device R) and everything on it, as one GPU's trainer sets it up. */
static int init_rank(hz_ctx *c, int r)
{
    const hz_plan *p = c->plan;
    const hz_dims *d = &p->dims;
    cuda_state *s = (cuda_state *)c->bk + r;
    s->p = p;
    s->rank = r;
    s->rank_n = c->rank_n;
    s->dev = r;
    CUDA_CHECK(cudaSetDevice(s->dev));
    s->sync = env_flag("HZ_SYNC");
    s->trace = env_flag("HZ_TRACE");
    s->det = c->deterministic;
    set_shape(s, d);

    /* the device */
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, s->dev));
    snprintf(s->gpu_name, sizeof s->gpu_name, "%s", prop.name);
    CUDA_CHECK(cudaDeviceGetAttribute(&s->cc_major, cudaDevAttrComputeCapabilityMajor, s->dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&s->cc_minor, cudaDevAttrComputeCapabilityMinor, s->dev));
    s->wgmma = s->cc_major == 9 && s->cc_minor == 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&s->sm_count, cudaDevAttrMultiProcessorCount, s->dev));
    CUDA_CHECK(
        cudaDeviceGetAttribute(&s->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, s->dev));
    printf("cuda backend: GPU %d: %s (sm_%d%d, %d SMs, %.1f GiB)\n", s->dev, s->gpu_name,
           s->cc_major, s->cc_minor, s->sm_count, gib((int64_t)prop.totalGlobalMem));

    /* the attention path: cuDNN's graphs decide its workspace, which the check counts */
    hzcu_attention_choose(s, c->attention);

    /* memory check before anything large is allocated */
    size_t free0 = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free0, &total));
    int64_t need = hzcu_gpu_peak_planned(s) + 64 * 1024;
    printf("cuda backend: GPU memory: planned arena %lld bytes (%.3f GiB) + %u MiB cuBLASLt "
           "workspace + %lld bytes cuDNN's workspace; available %lld bytes (%.3f GiB) of "
           "%.3f GiB\n",
           (long long)p->gpu_bytes, gib(p->gpu_bytes), LT_WORKSPACE_BYTES >> 20,
           (long long)s->sdpa_ws_bytes, (long long)free0, gib((int64_t)free0),
           gib((int64_t)total));
    if (r == 0)
        printf("cuda backend: host memory: planned %lld bytes (%.3f GiB, store %.3f GiB pinned); "
               "available now %.3f GiB\n",
               (long long)p->host_bytes, gib(p->host_bytes), gib(c->store.bytes),
               gib(hz_proc_bytes("/proc/meminfo", "MemAvailable:")));
    if (need > (int64_t)free0) {
        int64_t fit = (int64_t)free0 - (need - p->gpu_bytes); /* arena bytes that would fit */
        fflush(stdout);
        fprintf(stderr,
                "train: error: the plan needs %.3f GiB of GPU memory (arena %.3f GiB + cuBLASLt "
                "and cuDNN workspaces) but only %.3f GiB are free on %s: ",
                gib(need), gib(p->gpu_bytes), gib((int64_t)free0), s->gpu_name);
        if (fit >= (64 << 20))
            fprintf(stderr, "rebuild the trainer for this GPU with hzc build --gpu-mem %lldM, or ",
                    (long long)(fit >> 20));
        fprintf(stderr, "free the GPU (nvidia-smi lists the processes holding it)\n");
        return -1;
    }

    hzcu_load_kernels(s); /* NVRTC or the cache */
    hzcu_arena_alloc(s);  /* the arena, measured; what lives outside it; pinned staging */

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
        CUDA_CHECK(
            cudaEventCreateWithFlags(&s->ev[i], cudaEventDisableTiming | cudaEventBlockingSync));
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
    CUDA_CHECK(cudaEventCreateWithFlags(&s->gstage_free, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreate(&s->tr_start));

    /* cuBLASLt: plan every GEMM of the step and of eval by walking them without issuing */
    LT_CHECK(cublasLtCreate(&s->lt));
    double t0 = hz_now_s();
    if (c->kprof && r == 0) hzcu_prof_init(s); /* the walk counts the marks of a step */
    s->dry = 1;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (o->stream == HZ_HOST) continue;
        if (o->kind == HZ_STORE_G && (c->rank_n > 1 || c->hosts.n > 1))
            hzcu_reduce(c, r, o); /* as exec.c issues it */
        hz_backend_impl.ops[o->kind](c, r, o);
    }
    hzcu_eval_issue(s, c, NULL);
    s->dry = 0;
    if (s->prof) hzcu_prof_events(s);
    printf("cuda backend: %d GEMM shapes planned with cuBLASLt in %.2f s; arena %lld bytes "
           "allocated (measured %lld)%s%s\n",
           s->gemm_n, hz_now_s() - t0, (long long)p->gpu_bytes, (long long)s->arena_measured,
           s->sync ? "; HZ_SYNC: synchronising after every op" : "",
           s->trace ? "; HZ_TRACE: timing every op" : "");
    hzcu_gemm_pick(s);
    hzcu_attention_warm(s);
    if (s->det)
        printf("cuda backend: deterministic kernels (--deterministic): ordered sums instead of "
               "float atomics\n");
    return 0;
}

/* Every rank's GPU, then (several) the communicator of them. */
int hzcu_init(hz_ctx *c)
{
    int n = c->rank_n, have = 0;
    cudaError_t e = cudaGetDeviceCount(&have);
    if (n > 1 && (e != cudaSuccess || have < n)) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        fprintf(stderr, "train: error: this trainer's plan splits each step over %d GPUs, and "
                        "CUDA shows this process %d%s%s%s%s: run it where %d are visible, or "
                        "build it again with hzc build --gpus %d\n",
                n, e == cudaSuccess ? have : 0, e == cudaSuccess ? "" : " (",
                e == cudaSuccess ? "" : cudaGetErrorString(e), e == cudaSuccess ? "" : ")",
                vis ? " (CUDA_VISIBLE_DEVICES is set)" : "", n,
                e == cudaSuccess && have > 0 ? have : 1);
        return -1;
    }
    if (!(c->bk = calloc((size_t)n, sizeof(cuda_state)))) return -1;
    for (int r = 0; r < n; r++)
        if (init_rank(c, r) != 0) return -1;
    if ((n > 1 || c->hosts.n > 1) && hzcu_ranks_init(c) != 0) return -1;
    hzcu_rank(c, 0);
    return 0;
}

/* One rank's GPU state freed (what init_rank made of it). */
static void destroy_rank(hz_ctx *c, int r)
{
    cuda_state *s = hzcu_rank(c, r);
    const hz_plan *p = s->p;
    if (!p) return; /* its init did not start */
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (s->stream[k]) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
    hzcu_gemm_destroy(s);
    hzcu_attention_free(s);
    hzcu_prof_free(s);
    for (int i = 0; i < p->op_n; i++) {
        if (s->ev && s->ev[i]) CUDA_CHECK(cudaEventDestroy(s->ev[i]));
        if (s->tr0 && s->tr0[i]) CUDA_CHECK(cudaEventDestroy(s->tr0[i]));
        if (s->tr1 && s->tr1[i]) CUDA_CHECK(cudaEventDestroy(s->tr1[i]));
    }
    if (s->tok_ev) CUDA_CHECK(cudaEventDestroy(s->tok_ev));
    if (s->gstage_free) CUDA_CHECK(cudaEventDestroy(s->gstage_free));
    if (s->tr_start) CUDA_CHECK(cudaEventDestroy(s->tr_start));
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (s->stream[k]) CUDA_CHECK(cudaStreamDestroy(s->stream[k]));
    if (s->mod) CU_CHECK(cuModuleUnload(s->mod));
    hzcu_arena_free(s);
    free(s->ev);
    free(s->tr0);
    free(s->tr1);
}

void hzcu_destroy(hz_ctx *c)
{
    if (!c->bk) return;
    hzcu_ranks_free(c);
    for (int r = 0; r < c->rank_n; r++) destroy_rank(c, r);
    free(c->bk);
    c->bk = NULL;
}

