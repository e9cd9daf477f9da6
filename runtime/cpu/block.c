/* runtime/cpu/block.c - the decoder block and the loss head from the cpu ops (fp32).
 * Forward: x -> rmsnorm -> q,k,v (+bias) [-> per-head rmsnorm of q and k: Qwen3's and
 *          Gemma 3's q_norm, k_norm, each head a row of HD] -> rope -> attention (causal,
 *          or over a sliding window) -> o_proj [-> rmsnorm: Gemma 3] -> + x = xmid
 *          xmid -> rmsnorm -> gate, up -> silu(gate)*up (Gemma: gelu_tanh) -> down
 *          [-> rmsnorm] -> + xmid = out.
 * Gemma 3's norms multiply by (1 + w) (dims.norm_offset).
 * Backward recomputes all of that from the block's input (a kept block: only the norms and
 * the gated product, from the SAVED list), then runs it in reverse. */
#include "block.h"

#include <string.h>

#include "ops.h"

/* The list's bytes with every element 4 bytes wide, in floats. */
int64_t cpu_work_floats(const hz_dims *d) { return hz_work_layout(d, 4, NULL) / 4; }

/* Point W's buffers into MEM as the WORK list lays them out: the SAVED list's only, or all. */
static void take_bufs(cpu_work *w, float *mem, const hz_dims *d, int all)
{
    int64_t off[HZ_WORK_BUF_N];
    hz_work_layout(d, 4, off);
#define TAKE(name, dtype, n) w->name = mem + off[HZ_WORK_##name] / 4;
    HZ_SAVED_BUFS(TAKE)
    if (all) {
        HZ_SCRATCH_BUFS(TAKE)
    }
#undef TAKE
}

void cpu_work_bind(cpu_work *w, float *mem, const hz_dims *d) { take_bufs(w, mem, d, 1); }

int64_t cpu_saved_floats(const hz_dims *d) { return hz_saved_layout(d, 4) / 4; }

void cpu_work_saved(cpu_work *w, float *mem, const hz_dims *d) { take_bufs(w, mem, d, 0); }

/* The costs of the profile's rows (runtime/kprof.h), in fp32 elements of 4 bytes. */
static hz_kcost gemm_cost(int role, int pass, int64_t N, int64_t IN, int64_t OUT)
{
    return hz_kc(hz_krow_gemm(role, pass), 2.0 * (double)N * (double)IN * (double)OUT, 0.0);
}

static hz_kcost mem_cost(int row, int64_t floats) { return hz_kc(row, 0.0, 4.0 * (double)floats); }

/* y = x w^T + b, then the time since the last mark to ROLE's forward row */
static void linear(hz_kclock *kc, int role, float *out, const float *inp, const float *w,
                   const float *bias, int64_t N, int64_t IN, int64_t OUT)
{
    matmul_forward(out, inp, w, bias, N, IN, OUT);
    hz_kclock_mark(kc, gemm_cost(role, HZ_GEMM_FWD, N, IN, OUT));
}

/* matmul_backward, each half marked to ROLE's dx and dw rows */
static void linear_backward(hz_kclock *kc, int role, float *dinp, float *dw, float *dbias,
                            const float *dout, const float *inp, const float *w, int64_t N,
                            int64_t IN, int64_t OUT)
{
    matmul_backward_x(dinp, dout, w, N, IN, OUT);
    hz_kclock_mark(kc, gemm_cost(role, HZ_GEMM_DX, N, IN, OUT));
    matmul_backward_w(dw, dbias, dout, inp, N, IN, OUT);
    hz_kclock_mark(kc, gemm_cost(role, HZ_GEMM_DW, N, IN, OUT));
}

static void residual(hz_kclock *kc, float *out, const float *a, const float *b, int64_t n)
{
    residual_forward(out, a, b, n);
    hz_kclock_mark(kc, mem_cost(HZ_KR_RESIDUAL, 3 * n));
}

/* rmsnorm forward (ROW) and backward of N rows of C, the weight as OFF + w (Gemma: 1) */
static void norm(hz_kclock *kc, int row, float *out, float *rstd, const float *inp,
                 const float *w, int64_t N, int64_t C, float eps, float off)
{
    rmsnorm_offset_forward(out, rstd, inp, w, N, C, eps, off);
    hz_kclock_mark(kc, mem_cost(row, 2 * N * C + C + N));
}

static void norm_backward(hz_kclock *kc, int row, float *dinp, float *dw, const float *dout,
                          const float *inp, const float *w, const float *rstd, int64_t N,
                          int64_t C, float off)
{
    rmsnorm_offset_backward(dinp, dw, dout, inp, w, rstd, N, C, off);
    hz_kclock_mark(kc, mem_cost(row, 3 * N * C + 3 * C + N));
}

/* The MLP's gate: SwiGLU, or Gemma's GeGLU (one profile row for both). */
static void mlp_gate_forward(hz_kclock *kc, const hz_dims *d, float *h, const float *gate,
                             const float *up, int64_t n)
{
    if (d->geglu) geglu_forward(h, gate, up, n);
    else swiglu_forward(h, gate, up, n);
    hz_kclock_mark(kc, mem_cost(HZ_KR_SWIGLU_FWD, 3 * n));
}

/* cpu_block_forward; with out == NULL and MLP_OUT_KEPT (s's mo and rstd4 hold the forward's)
 * the recompute stops at the gated product */
static void block_forward(const hz_dims *d, const float *inv_freq, int64_t window,
                          const cpu_block_params *w, const float *inp, float *out, cpu_work *s,
                          int mlp_out_kept, hz_kclock *kc)
{
    int64_t N = d->micro_tokens, C = d->C, F = d->F, A = d->NH * d->HD, KV = d->NKV * d->HD;
    const float *wq = w->wqkv, *wk = wq + A * C, *wv = wk + KV * C;
    const float *bq = w->bqkv, *bk = bq ? bq + A : NULL, *bv = bq ? bk + KV : NULL;
    const float off = d->norm_offset;
    norm(kc, HZ_KR_RMSNORM_FWD, s->xn, s->rstd1, inp, w->attn_norm, N, C, d->eps, off);
    /* with q/k norms the projections land in qpre, kpre, which their backward reads */
    linear(kc, HZ_GEMM_QKV, w->q_norm ? s->qpre : s->q, s->xn, wq, bq, N, C, A);
    linear(kc, HZ_GEMM_QKV, w->q_norm ? s->kpre : s->k, s->xn, wk, bk, N, C, KV);
    linear(kc, HZ_GEMM_QKV, s->v, s->xn, wv, bv, N, C, KV);
    /* the q/k norms and the rotation: the cuda backend's one rope kernel */
    if (w->q_norm) {
        norm(kc, HZ_KR_ROPE_FWD, s->q, s->rstdq, s->qpre, w->q_norm, N * d->NH, d->HD, d->eps, off);
        norm(kc, HZ_KR_ROPE_FWD, s->k, s->rstdk, s->kpre, w->k_norm, N * d->NKV, d->HD, d->eps, off);
    }
    rope_forward(s->q, inv_freq, N, d->T, d->NH, d->HD);
    rope_forward(s->k, inv_freq, N, d->T, d->NKV, d->HD);
    hz_kclock_mark(kc, mem_cost(HZ_KR_ROPE_FWD, 2 * N * (A + KV)));
    attention_forward_window(s->att, s->lse, s->q, s->k, s->v, d->B, d->T, d->NH, d->NKV, d->HD,
                             d->attn_scale, window);
    hz_kclock_mark(kc, hz_kc(HZ_KR_ATT_FWD, 2.0 * (double)N * (double)d->T * (double)A, 0.0));
    if (d->post_norms) { /* xmid = x + norm(o_proj(att)) */
        linear(kc, HZ_GEMM_ATTN_OUT, s->ao, s->att, w->wo, NULL, N, A, C);
        norm(kc, HZ_KR_RMSNORM_FWD, s->xmid, s->rstd3, s->ao, w->attn_post_norm, N, C, d->eps, off);
    } else {
        linear(kc, HZ_GEMM_ATTN_OUT, s->xmid, s->att, w->wo, NULL, N, A, C);
    }
    residual(kc, s->xmid, s->xmid, inp, N * C);
    norm(kc, HZ_KR_RMSNORM_FWD, s->xn2, s->rstd2, s->xmid, w->mlp_norm, N, C, d->eps, off);
    float *gate = s->gu, *up = s->gu + N * F;
    linear(kc, HZ_GEMM_GATE_UP, gate, s->xn2, w->wgu, NULL, N, C, F);
    linear(kc, HZ_GEMM_GATE_UP, up, s->xn2, w->wgu + F * C, NULL, N, C, F);
    mlp_gate_forward(kc, d, s->h, gate, up, N * F);
    if (!out && mlp_out_kept) return;
    if (d->post_norms) { /* out = xmid + norm(down(h)); the backward reads mo and rstd4 */
        linear(kc, HZ_GEMM_DOWN, s->mo, s->h, w->wdown, NULL, N, F, C);
        float *y = out ? out : s->dxmid; /* dxmid is scratch until the backward writes it */
        norm(kc, HZ_KR_RMSNORM_FWD, y, s->rstd4, s->mo, w->mlp_post_norm, N, C, d->eps, off);
        if (out) residual(kc, out, out, s->xmid, N * C);
        return;
    }
    if (!out) return;
    linear(kc, HZ_GEMM_DOWN, out, s->h, w->wdown, NULL, N, F, C);
    residual(kc, out, out, s->xmid, N * C);
}

void cpu_block_forward(const hz_dims *d, const float *inv_freq, int64_t window,
                       const cpu_block_params *w, const float *inp, float *out, cpu_work *s,
                       hz_kclock *kc)
{
    block_forward(d, inv_freq, window, w, inp, out, s, 0, kc);
}

void cpu_block_backward(const hz_dims *d, const float *inv_freq, int64_t window,
                        const cpu_block_params *w, cpu_block_params *g, const float *inp,
                        float *dx, cpu_work *s, int rec, hz_kclock *kc)
{
    int64_t N = d->micro_tokens, C = d->C, F = d->F, A = d->NH * d->HD, KV = d->NKV * d->HD;
    const float *gate = s->gu, *up = s->gu + N * F;
    const float off = d->norm_offset;
    /* recompute; the block's output itself is not needed, only its internals. A kept block
     * has the SAVED list and recomputes only the norm outputs and the gated product; one
     * keeping its MLP output has the MLPOUT list and stops before the down projection. */
    if (rec != HZ_RECOMPUTE_KEPT) {
        block_forward(d, inv_freq, window, w, inp, NULL, s, rec == HZ_RECOMPUTE_MLP_OUT, kc);
    } else {
        norm(kc, HZ_KR_RMSNORM_FWD, s->xn, s->rstd1, inp, w->attn_norm, N, C, d->eps, off);
        norm(kc, HZ_KR_RMSNORM_FWD, s->xn2, s->rstd2, s->xmid, w->mlp_norm, N, C, d->eps, off);
        mlp_gate_forward(kc, d, s->h, gate, up, N * F);
    }
    float *dgate = s->dgu, *dup = s->dgu + N * F;
    const float *wq = w->wqkv, *wk = wq + A * C, *wv = wk + KV * C;
    float *dwq = g->wqkv, *dwk = dwq + A * C, *dwv = dwk + KV * C;
    float *dbq = g->bqkv, *dbk = dbq ? dbq + A : NULL, *dbv = dbq ? dbk + KV : NULL;
    /* MLP: out = xmid + down(gate(gate) * up), with post norms out = xmid + norm(down(...));
     * dxn is free until the attention backward: it holds the down output's gradient */
    const float *dmo = dx;
    if (d->post_norms) {
        norm_backward(kc, HZ_KR_RMSNORM_BWD, s->dxn, g->mlp_post_norm, dx, s->mo,
                      w->mlp_post_norm, s->rstd4, N, C, off);
        dmo = s->dxn;
    }
    linear_backward(kc, HZ_GEMM_DOWN, s->dh, g->wdown, NULL, dmo, s->h, w->wdown, N, F, C);
    if (d->geglu) geglu_backward(dgate, dup, s->dh, gate, up, N * F);
    else swiglu_backward(dgate, dup, s->dh, gate, up, N * F);
    hz_kclock_mark(kc, mem_cost(HZ_KR_SWIGLU_BWD, 5 * N * F));
    linear_backward(kc, HZ_GEMM_GATE_UP, s->dxn2, g->wgu, NULL, dgate, s->xn2, w->wgu, N, C, F);
    /* dxn holds the up branch's share now */
    linear_backward(kc, HZ_GEMM_GATE_UP, s->dxn, g->wgu + F * C, NULL, dup, s->xn2,
                    w->wgu + F * C, N, C, F);
    residual(kc, s->dxn2, s->dxn2, s->dxn, N * C);
    norm_backward(kc, HZ_KR_RMSNORM_BWD, s->dxmid, g->mlp_norm, s->dxn2, s->xmid, w->mlp_norm,
                  s->rstd2, N, C, off);
    residual(kc, s->dxmid, s->dxmid, dx, N * C);
    /* attention: xmid = x + o_proj(attention(rope(q), rope(k), v)) [post norms: norm(o_proj)];
     * dxn2 is free again and holds the o_proj output's gradient */
    const float *dao = s->dxmid;
    if (d->post_norms) {
        norm_backward(kc, HZ_KR_RMSNORM_BWD, s->dxn2, g->attn_post_norm, s->dxmid, s->ao,
                      w->attn_post_norm, s->rstd3, N, C, off);
        dao = s->dxn2;
    }
    linear_backward(kc, HZ_GEMM_ATTN_OUT, s->datt, g->wo, NULL, dao, s->att, w->wo, N, A, C);
    attention_backward_window(s->dq, s->dk, s->dv, s->datt, s->q, s->k, s->v, s->att, s->lse, d->B,
                              d->T, d->NH, d->NKV, d->HD, d->attn_scale, window);
    hz_kclock_mark(kc, hz_kc(HZ_KR_ATT_BWD, 5.0 * (double)N * (double)d->T * (double)A, 0.0));
    rope_backward(s->dq, inv_freq, N, d->T, d->NH, d->HD);
    rope_backward(s->dk, inv_freq, N, d->T, d->NKV, d->HD);
    hz_kclock_mark(kc, mem_cost(HZ_KR_ROPE_BWD, 2 * N * (A + KV)));
    float *dq = s->dq;
    if (w->q_norm) {
        /* datt (N, A) is free after the attention backward; A >= KV as NH >= NKV */
        norm_backward(kc, HZ_KR_ROPE_BWD, s->datt, g->k_norm, s->dk, s->kpre, w->k_norm,
                      s->rstdk, N * d->NKV, d->HD, off);
        memcpy(s->dk, s->datt, (size_t)(N * KV) * sizeof(float));
        norm_backward(kc, HZ_KR_ROPE_BWD, s->datt, g->q_norm, s->dq, s->qpre, w->q_norm,
                      s->rstdq, N * d->NH, d->HD, off);
        dq = s->datt;
    }
    /* dxn2 is free again (its last reader was the o_proj backward): the k and v shares */
    linear_backward(kc, HZ_GEMM_QKV, s->dxn, dwq, dbq, dq, s->xn, wq, N, C, A);
    linear_backward(kc, HZ_GEMM_QKV, s->dxn2, dwk, dbk, s->dk, s->xn, wk, N, C, KV);
    residual(kc, s->dxn, s->dxn, s->dxn2, N * C);
    linear_backward(kc, HZ_GEMM_QKV, s->dxn2, dwv, dbv, s->dv, s->xn, wv, N, C, KV);
    residual(kc, s->dxn, s->dxn, s->dxn2, N * C);
    norm_backward(kc, HZ_KR_RMSNORM_BWD, dx, g->attn_norm, s->dxn, inp, w->attn_norm, s->rstd1,
                  N, C, off);
    residual(kc, dx, dx, s->dxmid, N * C);
}

/* The LOSSBUF list of runtime/hz_layout.h in fp32. */
int64_t cpu_head_floats(const hz_dims *d) { return hz_loss_layout(d, 4, NULL) / 4; }

double cpu_head_loss(const hz_dims *d, const float *norm_w, const float *lm, const float *x,
                     const int32_t *targets, float dscale, float *dx, float *dnorm, float *dlm,
                     float *scratch, int backward, float *logits_out, hz_kclock *kc)
{
    int64_t N = d->micro_tokens, C = d->C, V = d->V, K = d->chunk_tokens;
    int64_t off[HZ_LOSS_BUF_N];
    hz_loss_layout(d, 4, off);
    float *xn = scratch + off[HZ_LOSS_xn] / 4, *dxn = scratch + off[HZ_LOSS_dxn] / 4;
    float *logits = scratch + off[HZ_LOSS_logits] / 4, *rstd = scratch + off[HZ_LOSS_rstd] / 4;
    float *losses = scratch + off[HZ_LOSS_losses] / 4;
    norm(kc, HZ_KR_RMSNORM_FWD, xn, rstd, x, norm_w, N, C, d->eps, d->norm_offset);
    double sum = 0.0;
    for (int64_t c0 = 0; c0 < N; c0 += K) {
        linear(kc, HZ_GEMM_LM_HEAD, logits, xn + c0 * C, lm, NULL, K, C, V);
        if (logits_out) memcpy(logits_out + c0 * V, logits, (size_t)(K * V) * sizeof(float));
        sum += crossentropy_forward_backward(logits, losses + c0, logits, targets + c0, K, V,
                                             dscale);
        hz_kclock_mark(kc, mem_cost(HZ_KR_XENT, 2 * K * V + 2 * K));
        if (backward)
            linear_backward(kc, HZ_GEMM_LM_HEAD, dxn + c0 * C, dlm, NULL, logits, xn + c0 * C,
                            lm, K, C, V);
    }
    if (backward)
        norm_backward(kc, HZ_KR_RMSNORM_BWD, dx, dnorm, dxn, x, norm_w, rstd, N, C, d->norm_offset);
    return sum;
}
