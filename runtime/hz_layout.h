/* runtime/hz_layout.h - the buffer lists inside the GPU arena's WORK, LOSSBUF and SCALARS
 * regions: the one source the planner sizes the regions from (compiler/plan.c) and both
 * backends carve them from (runtime/cuda/arena.c in bf16/fp32, runtime/cpu/backend.c in
 * fp32). Adding a buffer here resizes the plan and gives both backends the field. */
#ifndef HZ_LAYOUT_H
#define HZ_LAYOUT_H
#include "hz.h"

/* X(name, dtype, elements), in carve order. dtype is BF16 or F32; each change of dtype
 * starts at a 256-byte boundary and the list ends on one. elements is an expression of the
 * names of hz_buf_dims below. */

/* WORK: one block's recompute and backward for one micro-batch. Its first part, the
 * SAVED list, is what a kept block's forward leaves for its backward (hz_unit.keep): it
 * writes it into its own slot of the SAVED region, laid out as this prefix of WORK, and its
 * backward reads it there instead of recomputing the block. The list holds what costs a
 * GEMM or the attention to recompute; the two norm outputs and the SwiGLU product are
 * recomputed from it in one elementwise pass each (a third less memory per kept block). */
#define HZ_SAVED_BUFS(X)                                                                  \
    X(q, BF16, N * A)           /* rotated q */                                           \
    X(k, BF16, N * KV)          /* rotated k */                                           \
    X(v, BF16, N * KV)                                                                    \
    X(att, BF16, N * A)         /* attention output */                                    \
    X(xmid, BF16, N * C)        /* x + o_proj(att) */                                     \
    X(gu, BF16, N * 2 * F)      /* gate and up projections */                             \
    X(qpre, BF16, QN * N * A)   /* qk_norm: q projection before its per-head norm */      \
    X(kpre, BF16, QN * N * KV)  /* qk_norm: k projection before its per-head norm */      \
    X(ao, BF16, PN * N * C)     /* post_norms: o_proj output, before its norm */          \
    X(mo, BF16, PN * N * C)     /* post_norms: down_proj output, before its norm */       \
    X(rstd1, F32, N)            /* attn rmsnorm 1/rms per token */                        \
    X(rstd2, F32, N)            /* mlp rmsnorm 1/rms per token */                         \
    X(lse, F32, B * NH * T)     /* attention log-sum-exp (B, NH, T) */                    \
    X(rstdq, F32, QN * N * NH)  /* qk_norm: 1/rms per token and q head */                 \
    X(rstdk, F32, QN * N * NKV) /* qk_norm: 1/rms per token and k head */                 \
    X(rstd3, F32, PN * N)       /* post_norms: attention output norm 1/rms per token */   \
    X(rstd4, F32, PN * N)       /* post_norms: MLP output norm 1/rms per token */

#define HZ_SCRATCH_BUFS(X)                                                                \
    X(xn, BF16, N * C)          /* attn rmsnorm output */                                 \
    X(xn2, BF16, N * C)         /* mlp rmsnorm output */                                  \
    X(h, BF16, N * F)           /* silu(gate) * up (GeGLU: gelu_tanh(gate) * up) */       \
    X(qkv, BF16, N * QKV)       /* fused q/k/v projection; the attention backward's D */  \
    X(dh, BF16, N * F)                                                                    \
    X(dgu, BF16, N * 2 * F)                                                               \
    X(dxn2, BF16, N * C)                                                                  \
    X(dxmid, BF16, N * C)                                                                 \
    X(datt, BF16, N * A)                                                                  \
    X(dq, BF16, N * A)                                                                    \
    X(dk, BF16, N * KV)                                                                   \
    X(dv, BF16, N * KV)                                                                   \
    X(dqkv, BF16, N * QKV)                                                                \
    X(dxn, BF16, N * C)                                                                   \
    X(part, F32, PART)          /* --deterministic partial column sums */

#define HZ_WORK_BUFS(X) HZ_SAVED_BUFS(X) HZ_SCRATCH_BUFS(X)

/* MLPOUT: what a block that keeps its MLP output (hz_unit.keep_mlp_out, post norms only)
 * leaves for its backward, per micro-batch: the two buffers of the same names in WORK, moved
 * there, so that the recompute need not run the down projection again to reach them. */
#define HZ_MLPOUT_BUFS(X)                                                                 \
    X(mo, BF16, N * C)          /* down_proj output, before its norm */                   \
    X(rstd4, F32, N)            /* its norm's 1/rms per token */

/* How a block's backward rebuilds what it reads: the whole forward from the block's input
 * (RECOMPUTE), only the norms and the gated product from the SAVED list (KEPT), or the
 * forward up to the gated product with the MLP output from MLPOUT (MLP_OUT). */
enum hz_recompute { HZ_RECOMPUTE, HZ_RECOMPUTE_KEPT, HZ_RECOMPUTE_MLP_OUT };

static inline int hz_unit_recompute(const hz_unit *u)
{
    return u->keep ? HZ_RECOMPUTE_KEPT : u->keep_mlp_out ? HZ_RECOMPUTE_MLP_OUT : HZ_RECOMPUTE;
}

/* LOSSBUF: the loss head of one micro-batch, chunked over K tokens. */
#define HZ_LOSS_BUFS(X)                                                                   \
    X(xn, BF16, N * C)          /* final rmsnorm output */                                \
    X(dxn, BF16, N * C)                                                                   \
    X(logits, BF16, K * V)      /* one chunk's logits, then its dlogits */                \
    X(rstd, F32, N)                                                                       \
    X(losses, F32, N)           /* per-token losses */

/* SCALARS, in doubles: X(ID, doubles, what). A step zeroes the slots before NONFINITE; that
 * one counts over the run. */
#define HZ_SCALAR_SLOTS(X)                                                                \
    X(SUMSQ, 1, "the step's squared gradient norm")                                       \
    X(SUMSQ_PARTS, HZ_SUMSQ_PARTS, "its per-block partials (--deterministic)")            \
    X(NONFINITE, 1, "uint64: non-finite gradients the compact states kept out (all steps)")

/* The shape names the element expressions use. */
typedef struct hz_buf_dims {
    int64_t N, C, F, A, KV, QKV, B, NH, NKV, T, K, V, PART;
    int64_t QN; /* 1 with qk_norm, else 0: its buffers take no room */
    int64_t PN; /* 1 with post_norms (Gemma 3), else 0 */
} hz_buf_dims;

static inline hz_buf_dims hz_buf_dims_of(const hz_dims *d)
{
    hz_buf_dims b;
    b.N = d->micro_tokens;
    b.C = d->C;
    b.F = d->F;
    b.A = d->NH * d->HD;
    b.KV = d->NKV * d->HD;
    b.QKV = b.A + 2 * b.KV;
    b.B = d->B;
    b.NH = d->NH;
    b.NKV = d->NKV;
    b.QN = d->qk_norm ? 1 : 0;
    b.PN = d->post_norms ? 1 : 0;
    b.T = d->T;
    b.K = d->chunk_tokens;
    b.V = d->V;
    b.PART = (int64_t)HZ_PART_ROWS * (b.C > b.QKV ? b.C : b.QKV);
    return b;
}

#define HZ_BUF_ENUM(name, dtype, n) HZ_WORK_##name,
enum { HZ_WORK_BUFS(HZ_BUF_ENUM) HZ_WORK_BUF_N };
#undef HZ_BUF_ENUM
#define HZ_BUF_ENUM(name, dtype, n) +1
enum { HZ_SAVED_BUF_N = 0 HZ_SAVED_BUFS(HZ_BUF_ENUM) };
enum { HZ_MLPOUT_BUF_N = 0 HZ_MLPOUT_BUFS(HZ_BUF_ENUM) };
#undef HZ_BUF_ENUM
#define HZ_BUF_ENUM(name, dtype, n) HZ_LOSS_##name,
enum { HZ_LOSS_BUFS(HZ_BUF_ENUM) HZ_LOSS_BUF_N };
#undef HZ_BUF_ENUM
#define HZ_SCALAR_ENUM(id, n, what) HZ_SC_##id, HZ_SC_##id##_END = HZ_SC_##id + (n) - 1,
enum { HZ_SCALAR_SLOTS(HZ_SCALAR_ENUM) HZ_SCALAR_N };
#undef HZ_SCALAR_ENUM

#define HZ_LAYOUT_ALIGN 256
enum { HZ_BUF_BF16, HZ_BUF_F32 };

/* Element count and dtype of every buffer of a list, from the shape names in scope. */
#define HZ_BUF_COUNT(name, dtype, n) (n),
#define HZ_BUF_DTYPE(name, dtype, n) HZ_BUF_##dtype,
#define HZ_BUF_NAME(name, dtype, n) #name,
#define HZ_BUF_DIMS_IN_SCOPE(b)                                                            \
    const int64_t N = (b).N, C = (b).C, F = (b).F, A = (b).A, KV = (b).KV, QKV = (b).QKV,  \
                  B = (b).B, NH = (b).NH, NKV = (b).NKV, T = (b).T, K = (b).K, V = (b).V,   \
                  PART = (b).PART, QN = (b).QN, PN = (b).PN;                               \
    (void)N, (void)C, (void)F, (void)A, (void)KV, (void)QKV, (void)B, (void)NH, (void)NKV, \
        (void)T, (void)K, (void)V, (void)PART, (void)QN, (void)PN

/* Offsets of the N_BUF buffers with COUNT elements of DTYPE each when a bf16 element takes
 * BF16_BYTES and an fp32 one 4 (the cpu backend mirrors bf16 in fp32: BF16_BYTES = 4).
 * Fills OFF (may be NULL) and returns the list's bytes. */
static inline int64_t hz_buf_offsets(int n_buf, const int64_t *count, const int *dtype,
                                     int64_t bf16_bytes, int64_t *off)
{
    int64_t at = 0;
    for (int i = 0; i < n_buf; i++) {
        if (i > 0 && dtype[i] != dtype[i - 1])
            at = (at + HZ_LAYOUT_ALIGN - 1) / HZ_LAYOUT_ALIGN * HZ_LAYOUT_ALIGN;
        if (off) off[i] = at;
        at += count[i] * (dtype[i] == HZ_BUF_BF16 ? bf16_bytes : 4);
    }
    return (at + HZ_LAYOUT_ALIGN - 1) / HZ_LAYOUT_ALIGN * HZ_LAYOUT_ALIGN;
}

/* Bytes and offsets of the WORK and LOSSBUF lists for a plan's dims. */
static inline int64_t hz_work_layout(const hz_dims *d, int64_t bf16_bytes, int64_t *off)
{
    HZ_BUF_DIMS_IN_SCOPE(hz_buf_dims_of(d));
    const int64_t count[] = {HZ_WORK_BUFS(HZ_BUF_COUNT)};
    const int dtype[] = {HZ_WORK_BUFS(HZ_BUF_DTYPE)};
    return hz_buf_offsets(HZ_WORK_BUF_N, count, dtype, bf16_bytes, off);
}

/* Bytes of the SAVED list (the WORK prefix a kept block keeps per micro-batch); its offsets
 * are the WORK list's own. */
static inline int64_t hz_saved_layout(const hz_dims *d, int64_t bf16_bytes)
{
    HZ_BUF_DIMS_IN_SCOPE(hz_buf_dims_of(d));
    const int64_t count[] = {HZ_SAVED_BUFS(HZ_BUF_COUNT)};
    const int dtype[] = {HZ_SAVED_BUFS(HZ_BUF_DTYPE)};
    return hz_buf_offsets(HZ_SAVED_BUF_N, count, dtype, bf16_bytes, NULL);
}

/* Bytes and offsets (in the order of HZ_MLPOUT_BUFS; OFF may be NULL) of one MLPOUT slot. */
static inline int64_t hz_mlpout_layout(const hz_dims *d, int64_t bf16_bytes, int64_t *off)
{
    HZ_BUF_DIMS_IN_SCOPE(hz_buf_dims_of(d));
    const int64_t count[] = {HZ_MLPOUT_BUFS(HZ_BUF_COUNT)};
    const int dtype[] = {HZ_MLPOUT_BUFS(HZ_BUF_DTYPE)};
    return hz_buf_offsets(HZ_MLPOUT_BUF_N, count, dtype, bf16_bytes, off);
}

/* ---- the host store's memory (runtime/store_mem.c), counted by the planner ----
 * Each host array is mapped whole over host_store_n elements; only the pages that hold a
 * streamed unit's elements are backed. The arrays: w (bf16), lo (int16), m and v (one moment
 * each in the plan's optimizer_state: fp32 4 bytes, bf16 2, int8 1), g (fp32 or bf16), and in
 * int8 mode ms and vs, the fp32 absmax of each HZ_OPTSTATE_BLOCK elements of m and of v (an
 * element's scale is at index / HZ_OPTSTATE_BLOCK). A resident unit's state (hz_unit
 * .resident) lives with the backend, and the I/O paths move it through a bounce buffer of up
 * to HZ_STORE_BOUNCE_N elements of w, lo, m, v, ms and vs (hz_store_bounce_n). Sizes below are
 * in bytes per HZ_OPTSTATE_BLOCK elements, so the scales (4 bytes a block) count like the
 * rest; every unit starts and ends on a block (the planner aligns tensors to 64). */
#define HZ_STORE_PAGE 4096
#define HZ_STORE_BOUNCE_N ((int64_t)1 << 22)

enum { HZ_ARR_W, HZ_ARR_LO, HZ_ARR_M, HZ_ARR_V, HZ_ARR_G, HZ_ARR_MS, HZ_ARR_VS, HZ_ARR_N };
#define HZ_ARR_BIT(a) (1u << (a))
/* The arrays of the state a unit keeps (all but g): what the home and the bounce hold. */
#define HZ_ARR_STATE (HZ_ARR_BIT(HZ_ARR_W) | HZ_ARR_BIT(HZ_ARR_LO) | HZ_ARR_BIT(HZ_ARR_M) | \
                      HZ_ARR_BIT(HZ_ARR_V) | HZ_ARR_BIT(HZ_ARR_MS) | HZ_ARR_BIT(HZ_ARR_VS))

/* Bytes of one moment in optimizer-state MODE (enum hz_optstate_mode); 0 for a bad mode. */
static inline int64_t hz_moment_bytes(int mode)
{
#define HZ_MOMENT_BYTES(id, name, bytes) bytes,
    static const int64_t b[HZ_OPTSTATE_MODE_N] = {HZ_OPTSTATE_MODES(HZ_MOMENT_BYTES)};
#undef HZ_MOMENT_BYTES
    return mode >= 0 && mode < HZ_OPTSTATE_MODE_N ? b[mode] : 0;
}

/* Bytes per HZ_OPTSTATE_BLOCK elements of array A of a store in optimizer-state MODE with
 * gradients GRAD_BYTES wide; 0 for an array the mode does not have. */
static inline int64_t hz_arr_block_bytes(int mode, int64_t grad_bytes, int a)
{
    const int64_t n = HZ_OPTSTATE_BLOCK;
    switch (a) {
    case HZ_ARR_W: case HZ_ARR_LO: return 2 * n;
    case HZ_ARR_M: case HZ_ARR_V: return hz_moment_bytes(mode) * n;
    case HZ_ARR_G: return grad_bytes * n;
    case HZ_ARR_MS: case HZ_ARR_VS: return mode == HZ_OPTSTATE_INT8 ? 4 : 0;
    default: return 0;
    }
}

/* Bytes of elements [0, I) of an array of BLOCK_BYTES per block: exact for a multiple of
 * the block; a partial last block takes its elements' bytes, or a whole scale. */
static inline int64_t hz_arr_offset(int64_t block_bytes, int64_t i)
{
    int64_t part = i % HZ_OPTSTATE_BLOCK;
    return i / HZ_OPTSTATE_BLOCK * block_bytes +
           (part == 0 ? 0 : block_bytes >= HZ_OPTSTATE_BLOCK ? part * block_bytes /
                                                               HZ_OPTSTATE_BLOCK
                                                             : block_bytes);
}

/* The backed runs of an array of BLOCK_BYTES per block: byte ranges [first, end) of the
 * streamed units' elements (of the gradient array, GRADS: of the units that hold their
 * gradients on the host, i.e. not held either), rounded out to pages and merged. Fills the
 * first MAX of them (FIRST, END may be NULL), adds every run's bytes to *BYTES (may be NULL)
 * and returns the run count. Units are in store order; a plan without units is one run. */
static inline int hz_store_runs(const hz_plan *p, int64_t block_bytes, int grads, int64_t *first,
                                int64_t *end, int max, int64_t *bytes)
{
    if (p->unit_n == 0) { /* a bare store (tests, benchmarks): one run, all of it */
        int64_t b = (hz_arr_offset(block_bytes, p->host_store_n) + HZ_STORE_PAGE - 1) /
                    HZ_STORE_PAGE * HZ_STORE_PAGE;
        if (max > 0 && first) first[0] = 0;
        if (max > 0 && end) end[0] = b;
        if (bytes) *bytes += b;
        return b > 0;
    }
    int n = 0;
    int64_t run_a = 0, run_b = -1;
    for (int i = 0; i <= p->unit_n; i++) {
        const hz_unit *u = i < p->unit_n ? &p->units[i] : NULL;
        if (u && (u->resident || (grads && u->held) || u->padded_n == 0)) continue;
        int64_t a = u ? hz_arr_offset(block_bytes, u->host_n) / HZ_STORE_PAGE * HZ_STORE_PAGE : 0;
        int64_t b = u ? (hz_arr_offset(block_bytes, u->host_n + u->padded_n) + HZ_STORE_PAGE -
                         1) / HZ_STORE_PAGE * HZ_STORE_PAGE
                      : 0;
        if (u && run_b >= 0 && a <= run_b) { /* joins the open run */
            if (b > run_b) run_b = b;
            continue;
        }
        if (run_b >= 0) { /* close the open run */
            if (n < max && first) first[n] = run_a;
            if (n < max && end) end[n] = run_b;
            if (bytes) *bytes += run_b - run_a;
            n++;
        }
        run_a = a;
        run_b = u ? b : -1;
    }
    return n;
}

/* Elements of a unit's gradients from the start of its gradient region up to the end of the
 * last tensor it owns (a tied head's lm_head is the embedding's; a tied embedding's
 * gradient lies after the head's final norm): what a held unit's FETCH_G copies, laid out
 * by each tensor's grad_n. */
static inline int64_t hz_unit_grads_n(const hz_tensor *tensors, const hz_unit *u)
{
    int64_t n = 0;
    for (int i = 0; i < u->tensor_n; i++) {
        const hz_tensor *t = &tensors[u->first_tensor + i];
        if (t->host_n < u->host_n || t->host_n >= u->host_n + u->padded_n) continue;
        if (t->grad_n + t->rows * t->cols > n) n = t->grad_n + t->rows * t->cols;
    }
    return n;
}

/* Bytes of one of the two host staging slots of the held units' gradients (fetch_n fp32,
 * whole pages; 0 when nothing is held): the executor's allocation, counted by the planner. */
static inline int64_t hz_stage_slot_bytes(const hz_plan *p)
{
    return (p->fetch_n * 4 + HZ_STORE_PAGE - 1) / HZ_STORE_PAGE * HZ_STORE_PAGE;
}

/* Elements of the bounce buffer: HZ_STORE_BOUNCE_N, or all the resident elements if fewer
 * (a multiple of the block either way). */
static inline int64_t hz_store_bounce_n(const hz_plan *p)
{
    return p->resident_n < HZ_STORE_BOUNCE_N ? p->resident_n : HZ_STORE_BOUNCE_N;
}

/* Bytes of the bounce buffer: the state arrays (HZ_ARR_STATE) of its elements, one after
 * another in array order; AT[a] (may be NULL) receives each one's offset. */
static inline int64_t hz_store_bounce_bytes(const hz_plan *p, int64_t *at)
{
    int64_t n = hz_store_bounce_n(p), bytes = 0;
    for (int a = 0; a < HZ_ARR_N; a++) {
        if (at) at[a] = bytes;
        if (HZ_ARR_STATE & HZ_ARR_BIT(a))
            bytes += hz_arr_offset(hz_arr_block_bytes(p->optimizer_state, 0, a), n);
    }
    return bytes;
}

/* Bytes the store backs: the arrays' runs (gradients GRAD_BYTES wide), and the bounce buffer
 * where some unit is resident. The planner's host_store_bytes. */
static inline int64_t hz_store_backed_bytes(const hz_plan *p, int64_t grad_bytes)
{
    int64_t bytes = 0;
    for (int a = 0; a < HZ_ARR_N; a++) {
        int64_t bb = hz_arr_block_bytes(p->optimizer_state, grad_bytes, a);
        if (bb > 0) hz_store_runs(p, bb, a == HZ_ARR_G, NULL, NULL, 0, &bytes);
    }
    return bytes + hz_store_bounce_bytes(p, NULL);
}

/* The RESIDENT region: arrays w (bf16), lo (int16), m, v (in optimizer-state MODE) of n
 * elements, g (fp32) of g_n, and in int8 mode ms, vs (fp32, one per block of n), in this
 * order, each 256-byte aligned. Fills OFF[HZ_RES_ARRAYS] (bytes) and returns the region's
 * bytes. */
enum { HZ_RES_W, HZ_RES_LO, HZ_RES_M, HZ_RES_V, HZ_RES_G, HZ_RES_MS, HZ_RES_VS, HZ_RES_ARRAYS };
/* The RESIDENT arrays in the host store's array order: a state array's HZ_ARR_* indexes it. */
_Static_assert((int)HZ_RES_M == (int)HZ_ARR_M && (int)HZ_RES_VS == (int)HZ_ARR_VS &&
                   (int)HZ_RES_ARRAYS == (int)HZ_ARR_N,
               "resident and store array order");
static inline int64_t hz_resident_layout(int64_t n, int64_t g_n, int mode, int64_t *off)
{
    const int64_t mb = hz_moment_bytes(mode);
    const int64_t sb = mode == HZ_OPTSTATE_INT8 ? 4 * ((n + HZ_OPTSTATE_BLOCK - 1) /
                                                       HZ_OPTSTATE_BLOCK) : 0;
    const int64_t bytes[HZ_RES_ARRAYS] = {2 * n, 2 * n, mb * n, mb * n, 4 * g_n, sb, sb};
    int64_t at = 0;
    for (int i = 0; i < HZ_RES_ARRAYS; i++) {
        if (off) off[i] = at;
        at += (bytes[i] + HZ_LAYOUT_ALIGN - 1) / HZ_LAYOUT_ALIGN * HZ_LAYOUT_ALIGN;
    }
    return n + g_n > 0 ? at : 0;
}

static inline int64_t hz_loss_layout(const hz_dims *d, int64_t bf16_bytes, int64_t *off)
{
    HZ_BUF_DIMS_IN_SCOPE(hz_buf_dims_of(d));
    const int64_t count[] = {HZ_LOSS_BUFS(HZ_BUF_COUNT)};
    const int dtype[] = {HZ_LOSS_BUFS(HZ_BUF_DTYPE)};
    return hz_buf_offsets(HZ_LOSS_BUF_N, count, dtype, bf16_bytes, off);
}

/* The cpu backend's fp32 mirror of one rank's arena (docs/design-changes.md 4), in bytes:
 * each region as the GPU holds it but with bf16 widened to fp32, for the rank's share of
 * the step (hz_gpu_step_tokens, hz_gpu_n_micro); the resident units' RESIDENT arrays as
 * they are, beside an fp32 slot for the widened weights of the largest and a gradient
 * accumulator for the largest block and the largest embedding or head; the two RoPE
 * tables. A trainer of N ranks holds N of them. */
static inline int64_t hz_cpu_mirror_bytes(const hz_plan *p)
{
    const hz_dims *d = &p->dims;
    const hz_region *r = p->regions;
    const int64_t tokens = hz_gpu_step_tokens(d), n_micro = hz_gpu_n_micro(d);
    int64_t floats = r[HZ_WSLOT].count * (r[HZ_WSLOT].slot_bytes / 2) +
                     r[HZ_GSLOT].count * (r[HZ_GSLOT].slot_bytes / 4) +
                     r[HZ_GHEAD].slot_bytes / 4 + r[HZ_BOUNDARY].count * tokens * d->C +
                     (p->boundary_on_host ? d->L * tokens * d->C : 0) + tokens * d->C +
                     hz_work_layout(d, 4, NULL) / 4 + hz_loss_layout(d, 4, NULL) / 4 +
                     2 * (d->HD / 2);
    int64_t span = 0, block = 0, ends = 0, bytes = 0;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        if (!u->resident) continue;
        if (u->span_n > span) span = u->span_n;
        int64_t *g = u->kind == HZ_BLOCK ? &block : &ends;
        if (u->span_n > *g) *g = u->span_n;
    }
    if (p->resident_n > 0) {
        bytes += hz_resident_layout(p->resident_n, p->resident_g_n, p->optimizer_state, NULL);
        floats += span + block + ends;
    }
    if (p->hold_n > 0) floats += p->hold_n;
    if (p->keep_n > 0) floats += p->keep_n * n_micro * (hz_saved_layout(d, 4) / 4);
    if (p->mlp_out_n > 0) floats += p->mlp_out_n * n_micro * (hz_mlpout_layout(d, 4, NULL) / 4);
    return bytes + 4 * floats;
}

#endif
