/* runtime/cuda/backend.c - the cuda backend: the generated schedule run on each GPU. This
 * file owns the three streams with one event per op, the op functions exec.c dispatches
 * to, the step's results, eval, the report and the vtable; setup.c sets each rank up.
 * Environment: HZ_CACHE_DIR (cubin cache, default ~/.cache/hzc), HZ_CUDA_INCLUDE (headers
 * for NVRTC), HZ_SYNC=1 (synchronise and check after every op), HZ_TRACE=1
 * (per-step GPU timing per stream on stderr).
 *
 * The files of runtime/cuda:
 *   backend.c   this file: streams and events, the op functions, eval, report, vtable
 *   setup.c     each rank's GPU set up (device, memory check, kernels, arena, streams,
 *               the GEMM plans) and freed
 *   cuda.h      the state (cuda_state) and the interfaces between the files below
 *   check.h     CUDA/driver/NVRTC/cuBLASLt checks (file:line, call, library error string)
 *   kernels.h   the kernel table: name, parameter sizes, shared memory per kernel
 *   kernels.c   building and loading the module, the signature check, the launch path
 *   nvrtc.c/.h  the one NVRTC compile (options, CUDA headers) and the cubin cache
 *   launch.c/.h one typed wrapper per kernel: its grid and block
 *   gemm.c      cuBLASLt GEMMs planned once per shape; the row-major linear_* helpers
 *   gemm_pick.c each GEMM's algorithm chosen by timing cuBLASLt's candidates at init
 *   arena.c     the arena, its regions and buffers (runtime/hz_layout.h), pinned staging
 *   model.c     block, loss head, embedding: op by op as runtime/cpu/block.c
 *   resident.c  the resident units: their state's copies to and from the host, their AdamW
 *   attention_path.c  which attention runs: cuDNN's fused SDPA or hzc's kernels
 *   dlib.c/.h   a vendor library opened at run time (cuDNN, NCCL), its load done once
 *   cudnn_api.c/.h    cuDNN loaded with dlopen; the backend-descriptor helpers
 *   nccl_api.c/.h     NCCL loaded with dlopen (the several-GPU sums)
 *   ranks.c     several GPUs and hosts: NCCL's communicators, the reduce hook
 *   cudnn_attention.c/.h  the cuDNN attention graphs, forward and backward
 *   probe.c     train --probe: the step-time model's rates measured, a ceilings file
 *   profile.c   train --profile-kernels: CUDA events around every launch of one step
 *   *.cu        the kernels, one op family per file (forward and backward side by side);
 *               attention.cuh holds the attention tile constants shared with kernels.h */
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

cuda_state *hzcu_rank(hz_ctx *c, int rank)
{
    cuda_state *s = (cuda_state *)c->bk + rank;
    int dev = -1;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev != s->dev) CUDA_CHECK(cudaSetDevice(s->dev));
    return s;
}

/* ---- pinned host memory: the host store's backed runs (runtime/store_mem.c maps and
 * first-touches them in parallel; registering them with CUDA is then cheap, where
 * cudaHostAlloc would fault and zero every page on one thread); portable, as every GPU of
 * the process streams from the one store ---- */

static int cuda_host_pin(void *ptr, size_t bytes)
{
    cudaError_t e = cudaHostRegister(ptr, bytes, cudaHostRegisterPortable);
    if (e == cudaSuccess) return 0;
    int no_gpu = e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
                 e == cudaErrorStubLibrary;
    fprintf(stderr,
            "train: pinning %zu bytes (%.2f GiB) of host memory (cudaHostRegister) failed: %s\n"
            "HINT: %s\n",
            bytes, gib((int64_t)bytes), cudaGetErrorString(e),
            no_gpu ? "the cuda trainer needs an NVIDIA GPU and its driver: nvidia-smi should list "
                     "the GPU (a trainer built with --backend cpu needs none)"
                   : "the host store is pinned; check free RAM and the locked-memory limit "
                     "(ulimit -l), or plan for a smaller host (hzc build --host-mem)");
    return -1;
}

static void cuda_host_unpin(void *ptr) { CUDA_CHECK(cudaHostUnregister(ptr)); }

/* ---- the ops of the step, each issued on its stream (all asynchronous) ---- */

static char *op_slot(const cuda_state *s, const hz_op *o)
{
    return o->slot >= 0 ? hzcu_region_at(s, HZ_WSLOT, o->slot) : NULL;
}

/* The unit's gradient accumulator: a grad slot for blocks, the head region otherwise, its
 * own place in the RESIDENT region for a resident unit. */
static char *op_grads(const cuda_state *s, const hz_op *o)
{
    return hzcu_unit_grads(s, &s->p->units[o->unit], o->gslot);
}

static void op_load_w(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    hzcu_load_unit(s, c->store.w, &s->p->units[o->unit], op_slot(s, o), s->stream[HZ_H2D]);
}

static void op_fwd(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    hzcu_forward_unit(s, &s->p->units[o->unit], o->micro, op_slot(s, o));
}

/* One GPU on one host: a unit's gradients are final after its last micro-batch, and their
 * norm and cast (hzcu_grads_ready) run there, at the end of that op on the compute stream,
 * with the whole card; on the d2h stream beside the next unit's GEMMs they would hold SMs
 * that the GEMMs' tiles wait for (bench/NOTES.md, 2026-12-03 fourth session). With several
 * GPUs or hosts the sum's input comes from the d2h stream's reduction, so they run there. */
static int ready_on_compute(const hz_ctx *c) { return c->rank_n == 1 && c->hosts.n <= 1; }

static void grads_ready_after(hz_ctx *c, cuda_state *s, const hz_op *o)
{
    if (ready_on_compute(c) && o->micro == hz_gpu_n_micro(&s->p->dims) - 1)
        hzcu_grads_ready(s, &s->p->units[o->unit], op_grads(s, o), s->stream[HZ_COMPUTE]);
}

static void op_loss(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    hzcu_head_loss(s, &s->p->units[o->unit], o->micro, op_slot(s, o), op_grads(s, o), s->dscale, 1,
                   NULL);
    grads_ready_after(c, s, o);
}

static void op_bwd(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    hzcu_backward_unit(s, &s->p->units[o->unit], o->micro, op_slot(s, o), op_grads(s, o));
    grads_ready_after(c, s, o);
}

/* With several ranks the unit's sum is rank 0's (a resident unit's: every rank's, each
 * updating its copy), which alone counts the norm and copies a streamed unit's sum. */
static void op_store_g(hz_ctx *c, int rank, const hz_op *o)
{
    if (rank > 0) return;
    cuda_state *s = hzcu_rank(c, rank);
    hzcu_store_grads(s, c->store.g, &s->p->units[o->unit], op_grads(s, o), s->stream[HZ_D2H],
                     ready_on_compute(c));
}

/* A held unit's gradients of the step before, from GHOLD to the host staging slot its update
 * reads (exec.c issues it only while that update is to come). */
static void op_fetch_g(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    const hz_unit *u = &s->p->units[o->unit];
    hzcu_copy(s, s->stream[HZ_D2H], c->gstage[o->gslot], hzcu_unit_grads(s, u, -1),
              hz_unit_grads_n(s->p->tensors, u) * 4, cudaMemcpyDeviceToHost);
}

/* A resident unit's AdamW on the GPU, with the update exec.c set (runtime/cuda/resident.c). */
static void op_opt(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    hzcu_adamw_resident(s, &s->p->units[o->unit], &c->optim, c->opt_lr, c->opt_gscale, c->opt_t,
                        c->store.state_seed);
}

/* This GPU's share of the step's boundary o->bnd (the whole step's with one GPU), one
 * contiguous copy each way. */
static void op_store_b(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    int64_t n = hz_gpu_step_tokens(&s->p->dims) * s->C;
    hzcu_copy(s, s->stream[HZ_D2H], s->h_boundary + o->bnd * n, hzcu_boundary_at(s, o->bnd, 0),
              n * 2, cudaMemcpyDeviceToHost);
}

static void op_load_b(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    int64_t n = hz_gpu_step_tokens(&s->p->dims) * s->C;
    hzcu_copy(s, s->stream[HZ_H2D], hzcu_boundary_at(s, o->bnd, 0), s->h_boundary + o->bnd * n,
              n * 2, cudaMemcpyHostToDevice);
}

/* The step's input and target ids through the pinned staging to the device, on stream st. */
static void stage_tokens(cuda_state *s, const int32_t *inputs, const int32_t *targets,
                         cudaStream_t st)
{
    int64_t T = hz_gpu_step_tokens(&s->p->dims);
    memcpy(s->h_tok, inputs, (size_t)T * 4);
    memcpy(s->h_tok + T, targets, (size_t)T * 4);
    CUDA_CHECK(cudaMemcpyAsync(s->tok_in, s->h_tok, (size_t)T * 8, cudaMemcpyHostToDevice, st));
}

static void cuda_begin_step(hz_ctx *c, int rank, const int32_t *inputs, const int32_t *targets,
                            float dscale)
{
    cuda_state *s = hzcu_rank(c, rank);
    /* the previous step (and any eval) is complete: the staging is free */
    cudaStream_t h2d = s->stream[HZ_H2D], cs = s->stream[HZ_COMPUTE];
    s->dscale = dscale;
    stage_tokens(s, inputs, targets, h2d);
    CUDA_CHECK(cudaEventRecord(s->tok_ev, h2d));
    CUDA_CHECK(cudaStreamWaitEvent(cs, s->tok_ev, 0));
    /* the step's scalars; the run's non-finite count (after them) stays */
    CUDA_CHECK(cudaMemsetAsync(s->scalars, 0, (size_t)HZ_SC_NONFINITE * 8, cs));
    CUDA_CHECK(cudaEventRecord(s->tr_start, h2d));
}

static void cuda_op_begin(hz_ctx *c, int rank, int i)
{
    cuda_state *s = hzcu_rank(c, rank);
    const hz_op *o = &s->p->ops[i];
    cudaStream_t st = s->stream[o->stream];
    for (int w = 0; w < HZ_OP_WAITS; w++)
        if (o->wait[w] >= 0) CUDA_CHECK(cudaStreamWaitEvent(st, s->ev[o->wait[w]], 0));
    CUDA_CHECK(cudaEventRecord(s->tr0[i], st));
    if (s->prof_on) hzcu_prof_op(s, o->stream);
}

static void cuda_op_end(hz_ctx *c, int rank, int i)
{
    cuda_state *s = hzcu_rank(c, rank);
    cudaStream_t st = s->stream[s->p->ops[i].stream];
    CUDA_CHECK(cudaEventRecord(s->tr1[i], st));
    CUDA_CHECK(cudaEventRecord(s->ev[i], st));
    if (s->sync) {
        cudaError_t e = cudaDeviceSynchronize();
        if (e == cudaSuccess) e = cudaGetLastError();
        if (e != cudaSuccess) {
            char buf[128];
            hz_op_label(s->p, i, buf, sizeof buf);
            hzcu_die("op %d: %s failed on the GPU: %s (%s)", i, buf, cudaGetErrorString(e),
                     cudaGetErrorName(e));
        }
    }
}

/* the profile is rank 0's (runtime/rt.h) */
static void cuda_kprof_begin(hz_ctx *c, hz_kprof *kp) { hzcu_prof_begin(hzcu_rank(c, 0), kp); }

static void cuda_kprof_end(hz_ctx *c) { hzcu_prof_end(hzcu_rank(c, 0)); }

static void cuda_kprof_alone(hz_ctx *c, hz_kprof *kp) { hzcu_prof_alone(hzcu_rank(c, 0), kp); }

static void cuda_wait_op(hz_ctx *c, int rank, int op)
{
    cuda_state *s = hzcu_rank(c, rank);
    CUDA_CHECK(cudaEventSynchronize(s->ev[op]));
}

/* HZ_TRACE: per-stream busy time of the step, by op kind, on stderr. */
static void print_trace(cuda_state *s, int64_t step)
{
    const hz_plan *p = s->p;
    double busy[HZ_STREAM_KIND_N] = {0}, kind_ms[HZ_OP_KIND_N] = {0}, span = 0.0;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (o->stream == HZ_HOST || o->kind == HZ_OPT) continue; /* updates: issued later */
        float t0 = 0.0f, t1 = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&t0, s->tr_start, s->tr0[i]));
        CUDA_CHECK(cudaEventElapsedTime(&t1, s->tr_start, s->tr1[i]));
        busy[o->stream] += t1 - t0;
        kind_ms[o->kind] += t1 - t0;
        if (t1 > span) span = t1;
    }
    double h2d_gbs = busy[HZ_H2D] > 0 ? (double)s->h2d_step_bytes / (busy[HZ_H2D] * 1e6) : 0.0;
    fprintf(stderr,
            "trace step %lld: span %.2f ms | compute %.2f ms (fwd %.2f, loss %.2f, bwd "
            "%.2f) | h2d %.2f ms (%.1f GB/s) | d2h %.2f ms\n",
            (long long)step + 1, span, busy[HZ_COMPUTE], kind_ms[HZ_FWD], kind_ms[HZ_LOSS],
            kind_ms[HZ_BWD], busy[HZ_H2D], h2d_gbs, busy[HZ_D2H]);
}

/* Start and end of every device op of the finished step, in ms from the step's start. */
static int cuda_op_times(hz_ctx *c, int rank, float *t0, float *t1)
{
    cuda_state *s = hzcu_rank(c, rank);
    const hz_plan *p = s->p;
    for (int i = 0; i < p->op_n; i++) {
        t0[i] = t1[i] = 0.0f;
        if (p->ops[i].stream == HZ_HOST) continue;
        CUDA_CHECK(cudaEventElapsedTime(&t0[i], s->tr_start, s->tr0[i]));
        CUDA_CHECK(cudaEventElapsedTime(&t1[i], s->tr_start, s->tr1[i]));
    }
    return 1;
}

static void cuda_step_result(hz_ctx *c, int rank, double *loss_sum, double *grad_sumsq)
{
    cuda_state *s = hzcu_rank(c, rank);
    const hz_plan *p = s->p;
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (k != HZ_HOST) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
    CUDA_CHECK(cudaMemcpyAsync(s->h_scalars, s->scalars, (size_t)p->regions[HZ_SCALARS].bytes,
                               cudaMemcpyDeviceToHost, s->stream[HZ_D2H]));
    CUDA_CHECK(cudaStreamSynchronize(s->stream[HZ_D2H]));
    /* the loss sum in token order on the host: deterministic, and the planned pinned
     * per-token loss staging holds it (no device float-sum kernel is needed) */
    double sum = 0.0;
    for (int64_t i = 0; i < hz_gpu_step_tokens(&p->dims); i++) sum += s->h_loss[i];
    *loss_sum = sum;
    *grad_sumsq = s->h_scalars[HZ_SC_SUMSQ]; /* 0 on ranks > 0 (op_store_g) */
    if (rank == 0) hzcu_count_nonfinite(c);
    if (s->trace) print_trace(s, c->step);
}

/* ---- eval ---- */

/* Forward only, every streamed unit through weight slot 0 in forward order (resident ones
 * where they live), then the head's loss; everything on the compute stream. */
void hzcu_eval_issue(cuda_state *s, hz_ctx *c, float *host_logits)
{
    const hz_plan *p = s->p;
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        char *slot = u->resident ? NULL : hzcu_region_at(s, HZ_WSLOT, 0);
        if (slot) hzcu_load_unit(s, c->store.w, u, slot, cs);
        for (int m = 0; m < hz_gpu_n_micro(&p->dims); m++) {
            if (u->kind != HZ_HEAD)
                hzcu_forward_unit(s, u, m, slot);
            else
                hzcu_head_loss(s, u, m, slot, NULL, 0.0f, 0, host_logits);
        }
    }
}

static double cuda_eval(hz_ctx *c, int rank, const int32_t *inputs, const int32_t *targets,
                        float *logits)
{
    cuda_state *s = hzcu_rank(c, rank);
    const hz_plan *p = s->p;
    int64_t T = hz_gpu_step_tokens(&p->dims);
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (k != HZ_HOST) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
    stage_tokens(s, inputs, targets, cs);
    if (logits && !s->h_logits) /* outside the plan: asked for, after training */
        CUDA_CHECK(cudaHostAlloc((void **)&s->h_logits, (size_t)(s->K * (int64_t)s->V * 2),
                                 cudaHostAllocDefault));
    hzcu_eval_issue(s, c, logits);
    CUDA_CHECK(cudaStreamSynchronize(cs));
    double sum = 0.0;
    for (int64_t i = 0; i < T; i++) sum += s->h_loss[i];
    return sum;
}

/* ---- report ---- */

static void print_bytes_line(FILE *out, const char *what, int64_t planned, int64_t measured)
{
    fprintf(out, "  %-22s planned %14lld (%8.3f GiB)  measured %14lld (%8.3f GiB)\n", what,
            (long long)planned, gib(planned), (long long)measured, gib(measured));
}

/* The GPU bytes the run asks for: the plan's arena and the two workspaces outside it
 * (cuBLASLt's, and cuDNN's where attention_path.c chose it). */
int64_t hzcu_gpu_peak_planned(const cuda_state *s)
{
    return s->p->gpu_bytes + LT_WORKSPACE_BYTES + s->sdpa_ws_bytes;
}

/* Each rank's GPU arena and peak (the same plan on each); the pinned staging of them all. */
static void cuda_report(hz_ctx *c, FILE *out)
{
    cuda_state *all = c->bk, *s = hzcu_rank(c, 0);
    const hz_plan *p = s->p;
    hzcu_count_nonfinite(c); /* the last step's device updates */
    int64_t pinned = 0;
    for (int r = 0; r < c->rank_n; r++) {
        cuda_state *q = &all[r];
        char what[64];
        snprintf(what, sizeof what, c->rank_n > 1 ? "GPU %d arena" : "GPU arena", q->dev);
        print_bytes_line(out, what, p->gpu_bytes, q->arena_measured);
        snprintf(what, sizeof what, c->rank_n > 1 ? "GPU %d peak" : "GPU peak (this backend)",
                 q->dev);
        print_bytes_line(out, what, hzcu_gpu_peak_planned(q), q->arena_measured + q->extra_measured);
        pinned += q->pinned_bytes;
    }
    fprintf(out,
            "  outside the plan%s: cuBLASLt workspace %u MiB, cuDNN's workspace %lld bytes, rope "
            "table %lld bytes, kernels %zu bytes of cubin; %d GEMM shapes planned%s\n",
            c->rank_n > 1 ? " (each GPU)" : "", LT_WORKSPACE_BYTES >> 20,
            (long long)s->sdpa_ws_bytes, (long long)(s->HD / 2 * 4), s->cubin_bytes, s->gemm_n,
            s->gemm_late ? " (some late: see the warning above)" : "");
    if (p->dims.window > 0 && p->dims.window_n > 0)
        fprintf(out, "  attention: %s; sliding-window layers: %s\n", hzcu_attention_name(s, 0),
                hzcu_attention_name(s, p->dims.window));
    else
        fprintf(out, "  attention: %s\n", hzcu_attention_name(s, 0));
    fprintf(out, "  pinned host staging    planned %14lld  allocated %14lld%s\n",
            (long long)(p->host_bytes - p->host_store_bytes - 2 * hz_stage_slot_bytes(p)),
            (long long)pinned, c->rank_n > 1 ? " (all the GPUs' shares)" : "");
    for (int r = 0; r < c->rank_n; r++) {
        size_t free_b = 0, total_b = 0;
        cuda_state *q = hzcu_rank(c, r);
        CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        fprintf(out, "  GPU %d %s: %.2f GiB in use by all processes now, %.2f GiB total\n", q->dev,
                q->gpu_name, gib((int64_t)(total_b - free_b)), gib((int64_t)total_b));
    }
}

/* For --metrics: rank 0's GPU (each rank's is the same plan), the staging of them all. */
static int cuda_memory(hz_ctx *c, hz_mem_line *out)
{
    cuda_state *all = c->bk, *s = &all[0];
    const hz_plan *p = s->p;
    int64_t pinned = 0;
    for (int r = 0; r < c->rank_n; r++) pinned += all[r].pinned_bytes;
    out[0] = (hz_mem_line){"GPU arena", p->gpu_bytes, s->arena_measured};
    out[1] = (hz_mem_line){"GPU peak (this backend)", hzcu_gpu_peak_planned(s),
                           s->arena_measured + s->extra_measured};
    out[2] = (hz_mem_line){"pinned host staging",
                           p->host_bytes - p->host_store_bytes - 2 * hz_stage_slot_bytes(p), pinned};
    return 3;
}

static const char *cuda_device(hz_ctx *c) { return ((cuda_state *)c->bk)->gpu_name; }

const hz_backend hz_backend_impl = {
    .name = "cuda",
    .caps = &hz_backend_caps[HZ_BACKEND_CUDA],
    .host_pin = cuda_host_pin,
    .host_unpin = cuda_host_unpin,
    .init = hzcu_init,
    .begin_step = cuda_begin_step,
    .op_begin = cuda_op_begin,
    .ops = {[HZ_LOAD_W] = op_load_w,
            [HZ_FWD] = op_fwd,
            [HZ_LOSS] = op_loss,
            [HZ_BWD] = op_bwd,
            [HZ_STORE_G] = op_store_g,
            [HZ_FETCH_G] = op_fetch_g,
            [HZ_OPT] = op_opt,
            [HZ_STORE_B] = op_store_b,
            [HZ_LOAD_B] = op_load_b},
    .op_end = cuda_op_end,
    .wait_op = cuda_wait_op,
    .reduce = hzcu_reduce,
    .sum_times = hzcu_sum_times,
    .step_result = cuda_step_result,
    .op_times = cuda_op_times,
    .eval = cuda_eval,
    .report = cuda_report,
    .memory = cuda_memory,
    .home_copy = hzcu_home_copy,
    .device = cuda_device,
    .probe = hzcu_probe,
    .kprof_begin = cuda_kprof_begin,
    .kprof_end = cuda_kprof_end,
    .kprof_alone = cuda_kprof_alone,
    .destroy = hzcu_destroy,
};
