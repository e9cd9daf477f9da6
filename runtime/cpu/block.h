/* runtime/cpu/block.h - one decoder block and the loss head composed from the cpu ops,
 * in fp32: the reference model. Used by the cpu backend and by the tests' plain
 * (non-streamed) forward and backward. */
#ifndef HZ_CPU_BLOCK_H
#define HZ_CPU_BLOCK_H
#include "../hz_layout.h"
#include "../kprof.h"

/* A block's weights or gradients, (OUT, IN) matrices as in hz_tensor. wqkv stacks q, k,
 * v rows; wgu stacks gate then up rows; bqkv may be NULL (no bias); q_norm, k_norm (HD)
 * may be NULL (no per-head q/k norm; both or neither); attn_post_norm, mlp_post_norm (C)
 * are NULL unless dims.post_norms (Gemma 3). */
typedef struct cpu_block_params {
    float *attn_norm, *wqkv, *bqkv, *wo, *mlp_norm, *wgu, *wdown, *q_norm, *k_norm;
    float *attn_post_norm, *mlp_post_norm;
} cpu_block_params;

/* Workspace for one micro-batch of N = B*T tokens (cpu_work_floats of them): the WORK
 * buffer list of runtime/hz_layout.h, every buffer in fp32. gu holds gate (N, F) then up
 * (N, F); dgu likewise. */
#define CPU_WORK_FIELD(name, dtype, n) float *name;
typedef struct cpu_work {
    HZ_WORK_BUFS(CPU_WORK_FIELD)
} cpu_work;
#undef CPU_WORK_FIELD

int64_t cpu_work_floats(const hz_dims *d);
void cpu_work_bind(cpu_work *w, float *mem, const hz_dims *d);

/* out = block(inp); inp and out are (N, C) with N = d->micro_tokens. INV_FREQ is the
 * block's RoPE table and WINDOW its attention window (hz_unit.window; 0 = full causal).
 * With out == NULL only the internals the backward needs are computed (no last residual,
 * and without post norms no down projection).
 * KC: the profiled step's clock, each op marked to its row (runtime/kprof.h); NULL: none. */
void cpu_block_forward(const hz_dims *d, const float *inv_freq, int64_t window,
                       const cpu_block_params *w, const float *inp, float *out, cpu_work *ws,
                       hz_kclock *kc);
/* Rebuild what the backward reads as REC says (enum hz_recompute: HZ_RECOMPUTE from inp;
 * KEPT: ws holds its forward's SAVED list; MLP_OUT: ws's mo and rstd4 hold its forward's),
 * then backward: dx holds dout on entry and dinp on exit; gradients accumulate into g. */
void cpu_block_backward(const hz_dims *d, const float *inv_freq, int64_t window,
                        const cpu_block_params *w, cpu_block_params *g, const float *inp,
                        float *dx, cpu_work *ws, int rec, hz_kclock *kc);
/* The SAVED list's floats, and WS with its SAVED buffers moved into MEM (a kept block's). */
int64_t cpu_saved_floats(const hz_dims *d);
void cpu_work_saved(cpu_work *ws, float *mem, const hz_dims *d);

/* The loss head of one micro-batch: final norm, lm_head (V, C) chunked over tokens,
 * cross-entropy with dscale, backward into dx (N, C) and the gradients dnorm, dlm
 * (accumulated). scratch: cpu_head_floats. logits_out: NULL, or (N, V) that receives the
 * logits. Returns the sum of the trained losses. */
int64_t cpu_head_floats(const hz_dims *d);
double cpu_head_loss(const hz_dims *d, const float *norm_w, const float *lm, const float *x,
                     const int32_t *targets, float dscale, float *dx, float *dnorm, float *dlm,
                     float *scratch, int backward, float *logits_out, hz_kclock *kc);

#endif
