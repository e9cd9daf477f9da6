/* runtime/cuda/cuda.h - the cuda backend's state and the interfaces between its files.
 * Internal to runtime/cuda; the map of the files is at the top of backend.c. */
#ifndef HZ_CUDA_H
#define HZ_CUDA_H
#include "../hz_layout.h"
#include "../rt.h"
#include "check.h"
#include "kernels.h"

typedef uint16_t bf16; /* device bf16 element; the host never does arithmetic on it */

/* The WORK and LOSSBUF buffers (runtime/hz_layout.h), one pointer each. */
#define HZCU_PTR_BF16 bf16 *
#define HZCU_PTR_F32 float *
#define HZCU_BUF_FIELD(name, dtype, n) HZCU_PTR_##dtype name;
typedef struct work_bufs {
    HZ_WORK_BUFS(HZCU_BUF_FIELD)
} work_bufs;
typedef struct loss_bufs {
    HZ_LOSS_BUFS(HZCU_BUF_FIELD)
} loss_bufs;

/* A block's weights (bf16, in a weight slot) and gradients (fp32, in a grad slot); bqkv,
 * q_norm and k_norm are NULL where the model has none. */
/* attn_post_norm, mlp_post_norm: Gemma 3's output norms (NULL otherwise). */
typedef struct block_w {
    const bf16 *attn_norm, *wqkv, *bqkv, *wo, *mlp_norm, *wgu, *wdown, *q_norm, *k_norm;
    const bf16 *attn_post_norm, *mlp_post_norm;
} block_w;
typedef struct block_g {
    float *attn_norm, *wqkv, *bqkv, *wo, *mlp_norm, *wgu, *wdown, *q_norm, *k_norm;
    float *attn_post_norm, *mlp_post_norm;
} block_g;

#define GEMM_CANDIDATES 8 /* the heuristic's answers kept per GEMM, for gemm_pick.c */

/* One planned cuBLASLt GEMM: the key (shape, layout, output type, pointer alignments), the
 * descriptors and the algorithm it runs (gemm.c), the heuristic's candidates and the first
 * call's operands, on which gemm_pick.c times them at init. */
typedef struct gemm_plan {
    int transa, transb, out_f32;
    int64_t m, n, k, lda, ldb, ldd;
    uint32_t align_a, align_b, align_d;
    uint32_t align_c; /* a C operand apart from D (D = A B + C): its alignment; 0 without */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    int cand_n, picked; /* picked: the candidate it runs (0: the heuristic's first) */
    float alone_ms;     /* one call of it timed alone at init (0: not timed); under
                         * --profile-kernels again after the profiled step (gemm_pick.c) */
    cublasLtMatmulAlgo_t cand[GEMM_CANDIDATES];
    size_t cand_ws[GEMM_CANDIDATES];
    const void *a, *b, *c; /* the first call's operands (arena or resident addresses); c
                            * NULL: C is D */
    void *d;
    float beta;
    const char *what;
} gemm_plan;

#define GEMM_MAX 128
#define LT_WORKSPACE_BYTES (32u << 20) /* cuBLASLt workspace: outside the plan's arena */

/* One rank's state (runtime/rt.h "Ranks"): a GPU and everything on it. hz_ctx.bk points at
 * an array of rank_n of them, rank 0's first; a rank's hooks reach theirs by hzcu_rank. */
typedef struct cuda_state {
    const hz_plan *p;
    /* the device: rank r runs on the r-th GPU CUDA shows this process (CUDA_VISIBLE_DEVICES) */
    int dev, sm_count, cc_major, cc_minor, smem_optin;
    int wgmma; /* an sm_90 GPU: the kernels are built for sm_90a, the Hopper attention can run */
    int rank, rank_n;
    struct ncclComm *comm;  /* ncclComm_t of this rank (ranks.c), NULL with one rank */
    struct ncclComm *cross; /* rank 0 with several hosts: the hosts' GPUs 0 (ranks.c) */
    cudaEvent_t *sum_ev;    /* rank 0, several ranks or hosts: three a STORE_G op around its
                             * sums (start, over the ranks, over the hosts), ranks.c */
    char gpu_name[256];
    /* kernels (kernels.c) */
    CUmodule mod;
    CUfunction fn[K_N];
    size_t cubin_bytes;
    int kernels_compiled;  /* this process compiled them (NVRTC), not read them from the cache:
                            * it holds NVRTC's pages too, which a cached start does not */
    /* streams and events: stream[] indexed by enum hz_stream_kind (HOST unused) */
    cudaStream_t stream[HZ_STREAM_KIND_N];
    cudaEvent_t *ev, tok_ev;
    cudaEvent_t gstage_free; /* the last STORE_G's copies out of the bf16 gradient staging */
    int sync, trace;
    int det; /* --deterministic: no float atomics whose order varies (docs/training.md) */
    cudaEvent_t *tr0, *tr1, tr_start; /* around every op: profile, trace */
    int64_t h2d_step_bytes;
    /* memory: the arena and what lives outside it (arena.c) */
    char *arena;
    int64_t arena_measured, extra_measured;
    void *ws;
    float *inv_freq;       /* RoPE table of the full-attention blocks */
    float *inv_freq_local; /* and of the sliding-window ones (Gemma 3's local base) */
    work_bufs w;
    int64_t work_off[HZ_WORK_BUF_N]; /* the WORK list's offsets: a kept block's SAVED slot
                                      * is laid out as its prefix */
    int64_t mlp_out_off[HZ_MLPOUT_BUF_N]; /* the MLPOUT list's offsets in its slot */
    char *res[HZ_RES_ARRAYS];        /* the RESIDENT region's w, lo, m, v, g, ms, vs
                                      * (hz_resident_layout) */
    uint64_t nonfinite_seen;         /* the SCALARS NONFINITE count already added to the
                                      * context's nonfinite_n */
    loss_bufs l;
    bf16 *dgrad;
    int32_t *tok_in, *tok_tgt;
    double *scalars;
    /* pinned host staging: tokens in, per-token losses out, scalars out */
    int32_t *h_tok;   /* inputs then targets, (2, step_tokens) */
    float *h_loss;    /* (step_tokens) per-token losses of the step (or of an eval) */
    bf16 *h_boundary; /* (L, step_tokens, C) when the plan keeps boundaries on the host */
    double *h_scalars;
    bf16 *h_logits; /* (chunk_tokens, V): a logits chunk for --dump-logits, made on demand */
    int64_t pinned_bytes;
    /* model shape as kernel arguments */
    int N, C, F, NH, NKV, HD, T, B, V, K;
    int64_t A, KV, QKV;
    float att_scale;
    /* cuBLASLt (gemm.c) */
    cublasLtHandle_t lt;
    gemm_plan gemm[GEMM_MAX];
    int gemm_n, gemm_late;
    float dscale; /* the step's loss scale, 1 / trained tokens */
    int dry;      /* 1 while init walks the schedule to plan the GEMMs: nothing is issued */
    /* --profile-kernels (profile.c): PROF exists when asked for; PROF_ON while the profiled
     * step's ops are issued (and while init counts the marks a step makes) */
    struct hzcu_prof *prof;
    int prof_on;
    struct hzcu_clocks *clocks; /* the SM clock and power sampler (nvml.h); NULL: none */
    /* attention by cuDNN's fused SDPA (attention_path.c): for the full-attention layers
     * (dnn[0]) and the sliding-window ones (dnn[1], the plan's window), the graphs and which
     * passes use them; one cuDNN workspace for both (their calls share the compute stream),
     * allocated once beside cuBLASLt's, outside the plan's arena */
    struct hzcu_dnn_att {
        struct hzcu_sdpa *a;
        int fwd, bwd;
        /* the full-attention layers' forward and backward by hzc's Hopper kernels instead
         * (0: not; 1: a block an item; 2: persistent blocks), each chosen by timing at init */
        int hopper, hopper_bwd;
        /* the first call's buffers of each pass, from init's dry walk: the graphs run once
         * on them at init (hzcu_attention_warm) */
        struct { bf16 *out; float *lse; const bf16 *q, *k, *v; } f1;
        struct {
            bf16 *dq, *dk, *dv;
            const bf16 *dout, *q, *k, *v, *out;
            const float *lse;
            float *D;
        } b1;
        int f1_set, b1_set;
    } dnn[2];
    void *sdpa_ws;
    int64_t sdpa_ws_bytes;
} cuda_state;

static inline double gib(int64_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

/* Rank RANK's state, its GPU made the calling thread's current device (backend.c). */
cuda_state *hzcu_rank(hz_ctx *c, int rank);
/* backend.c: eval's forward of every unit (on the compute stream; while s->dry only walked,
 * which plans its GEMMs); the GPU bytes a rank asks for (the arena and the workspaces
 * outside it: cuBLASLt's, cuDNN's). */
void hzcu_eval_issue(cuda_state *s, hz_ctx *c, float *host_logits);
int64_t hzcu_gpu_peak_planned(const cuda_state *s);

/* ---- setup.c: hz_backend.init and .destroy: every rank's GPU state, then the ranks'
 * communicators ---- */
int hzcu_init(hz_ctx *c);
void hzcu_destroy(hz_ctx *c);

/* ---- ranks.c: several GPUs of one process (runtime/rt.h "Ranks"): NCCL's communicator
 * of them and the sum of a unit's gradients over them (hz_backend.reduce) ---- */
/* After every rank's state is set up, with several ranks or hosts: load NCCL and make the
 * communicators; 0, or -1 having said why. */
int hzcu_ranks_init(hz_ctx *c);
/* hz_backend.reduce: the unit's gradients summed over the ranks (and the hosts), on the
 * rank's d2h stream after the unit's backward (the STORE_G op's waits): into rank 0 for a
 * streamed unit, into every rank for a resident one. */
void hzcu_reduce(hz_ctx *c, int rank, const hz_op *o);
/* hz_backend.sum_times: rank 0's last step in the sums over the ranks and the hosts. */
void hzcu_sum_times(hz_ctx *c, double ms[2]);
void hzcu_ranks_free(hz_ctx *c);

/* ---- kernels.c: the module, its signature check, launches ---- */
/* Build (NVRTC or the cache) and load generated/kernels.cu, check every kernel of the
 * table against it and raise the shared-memory limit of those that need it. */
void hzcu_load_kernels(cuda_state *s);
/* Launch kernel K on ST (a no-op while planning); gx < 1 launches one block. COST: what it
 * does, for the kernel profile (runtime/kprof.h). */
void hzcu_launch(cuda_state *s, int k, cudaStream_t st, int64_t gx, int64_t gy, int bx,
                 int64_t smem, void **args, hz_kcost cost);
/* Bytes of dynamic shared memory kernel K takes for this model (its table entry). */
int64_t hzcu_smem(const cuda_state *s, int k);

/* ---- gemm.c: cuBLASLt, row-major linear layers as in runtime/cpu/ops.h, w (OUT, IN); ROLE
 * (enum hz_gemm_role) names the layer for the kernel profile, WHAT the product for messages */
/* y (N, OUT) = x (N, IN) @ w^T */
void hzcu_linear_forward(cuda_state *s, int role, const char *what, bf16 *y, const bf16 *x,
                         const bf16 *w, int64_t N, int64_t IN, int64_t OUT);
/* y (N, OUT) = x (N, IN) @ w^T + r (N, OUT): the residual added in the GEMM's epilogue, in
 * fp32 before y's one rounding to bf16 (r may be y) */
void hzcu_linear_forward_add(cuda_state *s, int role, const char *what, bf16 *y, const bf16 *x,
                             const bf16 *w, const bf16 *r, int64_t N, int64_t IN, int64_t OUT);
/* dx (N, IN) = dy (N, OUT) @ w */
void hzcu_linear_backward_x(cuda_state *s, int role, const char *what, bf16 *dx, const bf16 *dy,
                            const bf16 *w, int64_t N, int64_t IN, int64_t OUT);
/* dw (OUT, IN) += dy^T @ x, fp32 */
void hzcu_linear_backward_w(cuda_state *s, int role, const char *what, float *dw, const bf16 *dy,
                            const bf16 *x, int64_t N, int64_t IN, int64_t OUT);
void hzcu_gemm_destroy(cuda_state *s);
/* One call of planned GEMM G with its candidate algorithm CAND on the compute stream:
 * D = A B + beta C, C NULL for D itself. */
cublasStatus_t hzcu_gemm_issue(cuda_state *s, const gemm_plan *g, int cand, const void *A,
                               const void *B, const void *C, void *D, float beta);

/* ---- gemm_pick.c: each planned GEMM's algorithm chosen by timing the heuristic's
 * candidates on its own operands at init (not under --deterministic); prints a summary ---- */
void hzcu_gemm_pick(cuda_state *s);
/* --profile-kernels, after the profiled step: each timed GEMM's algorithm again, alone, on
 * the card as the step left it; sets alone_ms. */
void hzcu_gemm_time_alone(cuda_state *s);

/* ---- arena.c: the plan's regions, the buffers inside them, the issue helpers ---- */
char *hzcu_region_at(const cuda_state *s, int kind, int i);
/* Boundary activation l (the input of block l; L: the head's input), token row TOK. */
bf16 *hzcu_boundary_at(const cuda_state *s, int64_t l, int64_t tok);
/* Allocate the arena and what lives outside it, carve WORK, LOSSBUF and SCALARS by
 * runtime/hz_layout.h (checked against the plan), allocate the pinned staging. */
void hzcu_arena_alloc(cuda_state *s);
void hzcu_arena_free(cuda_state *s);
void hzcu_memset(cuda_state *s, cudaStream_t st, void *ptr, int64_t bytes);
void hzcu_copy(cuda_state *s, cudaStream_t st, void *dst, const void *src, int64_t bytes,
               enum cudaMemcpyKind kind);

/* ---- model.c: the model on the GPU, op by op as runtime/cpu/block.c ---- */
/* A block unit's weights (in weight slot SLOT, or the RESIDENT region when SLOT is NULL) and
 * its gradients in GRADS (NULL where the unit has no such tensor). */
block_w hzcu_block_weights(const cuda_state *s, const hz_unit *u, const char *slot);
block_g hzcu_block_grads(const hz_plan *p, const hz_unit *u, char *grads);
/* Forward of the embedding or a block for micro-batch m into the next boundary. SLOT: the
 * weight slot holding the unit, NULL for a resident unit (its weights in the RESIDENT
 * region). */
void hzcu_forward_unit(cuda_state *s, const hz_unit *u, int m, const char *slot);
/* Recompute and backward of the embedding or a block for micro-batch m; gradients
 * accumulate in GRADS (zeroed at micro-batch 0). */
void hzcu_backward_unit(cuda_state *s, const hz_unit *u, int m, const char *slot, char *grads);
/* The loss head of micro-batch m: per-token losses to the pinned h_loss, with BACKWARD the
 * gradients into grads (zeroed at micro-batch 0) and dgrad; host_logits, when not NULL,
 * receives the logits, (step_tokens, V) fp32. */
void hzcu_head_loss(cuda_state *s, const hz_unit *u, int m, const char *slot, char *grads,
                    float dscale, int backward, float *host_logits);
/* Copy a unit's bf16 weights from the host store W into a weight slot on ST. */
void hzcu_load_unit(cuda_state *s, const uint16_t *host_w, const hz_unit *u, char *slot,
                    cudaStream_t st);
/* A unit's finished gradients made ready for the host on ST: their squares added to the
 * step's norm and, where the host takes bf16 gradients of a streamed unit, their cast into
 * the staging (once the unit before has been copied out of it). */
void hzcu_grads_ready(cuda_state *s, const hz_unit *u, const char *grads, cudaStream_t st);
/* Copy a unit's gradients to the host store G on ST (a resident or held unit's stay), after
 * hzcu_grads_ready on ST unless READY says it ran already (on another stream, ordered before). */
void hzcu_store_grads(cuda_state *s, void *host_g, const hz_unit *u, const char *grads,
                      cudaStream_t st, int ready);
/* The gradients of unit U: its grad slot GSLOT (blocks), the head region, or (resident) its
 * place in the RESIDENT region. */
char *hzcu_unit_grads(const cuda_state *s, const hz_unit *u, int gslot);
/* ---- resident.c: the units that live on the GPU ---- */
/* hz_backend.home_copy: the resident units' state arrays to the GPU or back to the host. */
void hzcu_home_copy(void *ctx, int a, int64_t first, int64_t n, void *buf, int to_home);
/* AdamW of a resident unit on the GPU (compute stream) in the plan's optimizer state, the
 * host update's formula and bits (runtime/rt.h hz_adam_coef, runtime/optstate.h); the
 * bf16 rounding's seed is SEED. */
void hzcu_adamw_resident(cuda_state *s, const hz_unit *u, const hz_optim *o, float lr,
                         float gscale, int64_t t, uint64_t seed);
/* After the device is idle (step_result, report): the device's count of non-finite gradients
 * kept out of the compact states since the last call, added to the context's nonfinite_n. */
void hzcu_count_nonfinite(hz_ctx *c);

/* ---- profile.c: train --profile-kernels (runtime/kprof.h) with CUDA events ---- */
/* At init, before the schedule's dry walk (which counts the marks of a step), when the run
 * profiles a step; hzcu_prof_events after the walk creates the events, once. */
void hzcu_prof_init(cuda_state *s);
void hzcu_prof_events(cuda_state *s);
/* The profiled step: its rows go to KP from begin until end, which waits for every stream
 * and reads the events. */
void hzcu_prof_begin(cuda_state *s, hz_kprof *kp);
void hzcu_prof_end(cuda_state *s);
/* An op starts on stream kind STREAM (after its waits). */
void hzcu_prof_op(cuda_state *s, int stream);
/* After a kernel, GEMM or copy issued on ST: it gets the time since the last mark on ST. While
 * init walks the schedule without issuing (dry), the mark is only counted. */
void hzcu_prof_mark(cuda_state *s, cudaStream_t st, hz_kcost cost);
/* The same for GEMM number GEMM of s->gemm on the compute stream: its alone time is the
 * GEMM's when the profile's table is made. */
void hzcu_prof_mark_gemm(cuda_state *s, hz_kcost cost, int gemm);
/* After the profiled step (hz_backend.kprof_alone): its GEMMs timed alone, then KP's alone
 * times from them, with the SM clock of the step and of the alone times. */
void hzcu_prof_alone(cuda_state *s, hz_kprof *kp);
void hzcu_prof_free(cuda_state *s);

/* ---- attention_path.c: which attention runs (train --attention, runtime/rt.h) ---- */
/* At init, before the memory check: cuDNN's graphs for this shape when MODE allows and the
 * run is not --deterministic; prints the choice, and on stderr why cuDNN is not used where it
 * was wanted. Sets sdpa_ws_bytes (allocated by hzcu_arena_alloc). */
void hzcu_attention_choose(cuda_state *s, int mode);
/* Attention of a layer (WINDOW 0: full, else the plan's sliding window) by cuDNN, profiled
 * under the same rows and FLOPs as hzc's kernels: 1 when cuDNN ran it (or, while planning,
 * would), 0 when the caller must launch hzc's kernels (cuDNN not chosen for that kind of
 * layer, or failed: then said once, and not tried again). */
int hzcu_dnn_attention_forward(cuda_state *s, cudaStream_t st, int window, bf16 *out, float *lse,
                               const bf16 *q, const bf16 *k, const bf16 *v, double flops);
int hzcu_dnn_attention_backward(cuda_state *s, cudaStream_t st, int window, bf16 *dq, bf16 *dk,
                                bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                                const bf16 *v, const bf16 *out, const float *lse, float *D,
                                double flops);
/* The full-attention layers' forward (WINDOW 0) by hzc's Hopper kernel (attention_wgmma.cu)
 * where init chose it: 1 when it ran (or, while planning, would), else 0. */
int hzcu_hopper_attention_forward(cuda_state *s, cudaStream_t st, int window, bf16 *out,
                                  float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                                  double flops);
/* The full-attention layers' backward (WINDOW 0) by hzc's Hopper kernels after the
 * preprocess's D (whose launch counts the pass's FLOPs in the kernel profile), where init
 * chose them: 1 when they ran (or, while planning, would). */
int hzcu_hopper_attention_backward(cuda_state *s, cudaStream_t st, int window, bf16 *dq, bf16 *dk,
                                   bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                                   const bf16 *v, const bf16 *out, const float *lse, float *D);
/* Which kernels run the full-attention layers' attention (WINDOW 0) or the sliding-window
 * ones', forward and backward: "cuDNN fused SDPA", "hzc's kernels", "hzc's Hopper kernels",
 * or "forward X, backward Y" of "cuDNN", "hzc's FlashAttention-2" and "hzc's Hopper". */
const char *hzcu_attention_name(const cuda_state *s, int window);
/* At init, after the dry walk: where hzc's Hopper kernels can run the full-attention layers
 * (an sm_90 GPU, head_dim 128; the backward T a multiple of 4), they (a block an item, and
 * persistent) and what was chosen before (cuDNN's, or hzc's FlashAttention-2; not under
 * --deterministic, whose bits must not depend on a timing) are timed on the step's first
 * call of each pass and the fastest kept. Then each cuDNN graph run once on the
 * buffers of its first call in the step. cuDNN loads an engine's kernels into the context at its first run (about 1.5 MB
 * of the driver's host memory for the 1b); run here, that is part of the process before its
 * first step, where the probe measures it, not a growth during step 1. The outputs written
 * are ones the step writes before it reads them, as gemm_pick.c's. */
void hzcu_attention_warm(cuda_state *s);
void hzcu_attention_free(cuda_state *s);

/* ---- probe.c: train --probe (hz_backend.probe) ---- */
int hzcu_probe(hz_ctx *c, const char *out_path, FILE *log);

#endif
