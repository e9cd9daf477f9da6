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

/* The MLP's gate: SwiGLU, or Gemma's GeGLU. */
static void mlp_gate_forward(const hz_dims *d, float *h, const float *gate, const float *up,
                             int64_t n)
{
    if (d->geglu) geglu_forward(h, gate, up, n);
    else swiglu_forward(h, gate, up, n);
}

void cpu_block_forward(const hz_dims *d, const float *inv_freq, int64_t window,
                       const cpu_block_params *w, const float *inp, float *out, cpu_work *s)
{
    int64_t N = d->micro_tokens, C = d->C, F = d->F, A = d->NH * d->HD, KV = d->NKV * d->HD;
    const float *wq = w->wqkv, *wk = wq + A * C, *wv = wk + KV * C;
    const float *bq = w->bqkv, *bk = bq ? bq + A : NULL, *bv = bq ? bk + KV : NULL;
    const float off = d->norm_offset;
    rmsnorm_offset_forward(s->xn, s->rstd1, inp, w->attn_norm, N, C, d->eps, off);
    /* with q/k norms the projections land in qpre, kpre, which their backward reads */
    matmul_forward(w->q_norm ? s->qpre : s->q, s->xn, wq, bq, N, C, A);
    matmul_forward(w->q_norm ? s->kpre : s->k, s->xn, wk, bk, N, C, KV);
    matmul_forward(s->v, s->xn, wv, bv, N, C, KV);
    if (w->q_norm) {
        rmsnorm_offset_forward(s->q, s->rstdq, s->qpre, w->q_norm, N * d->NH, d->HD, d->eps, off);
        rmsnorm_offset_forward(s->k, s->rstdk, s->kpre, w->k_norm, N * d->NKV, d->HD, d->eps, off);
    }
    rope_forward(s->q, inv_freq, N, d->T, d->NH, d->HD);
    rope_forward(s->k, inv_freq, N, d->T, d->NKV, d->HD);
    attention_forward_window(s->att, s->lse, s->q, s->k, s->v, d->B, d->T, d->NH, d->NKV, d->HD,
                             d->attn_scale, window);
    if (d->post_norms) { /* xmid = x + norm(o_proj(att)) */
        matmul_forward(s->ao, s->att, w->wo, NULL, N, A, C);
        rmsnorm_offset_forward(s->xmid, s->rstd3, s->ao, w->attn_post_norm, N, C, d->eps, off);
    } else {
        matmul_forward(s->xmid, s->att, w->wo, NULL, N, A, C);
    }
    residual_forward(s->xmid, s->xmid, inp, N * C);
    rmsnorm_offset_forward(s->xn2, s->rstd2, s->xmid, w->mlp_norm, N, C, d->eps, off);
    float *gate = s->gu, *up = s->gu + N * F;
    matmul_forward(gate, s->xn2, w->wgu, NULL, N, C, F);
    matmul_forward(up, s->xn2, w->wgu + F * C, NULL, N, C, F);
    mlp_gate_forward(d, s->h, gate, up, N * F);
    if (d->post_norms) { /* out = xmid + norm(down(h)); the backward reads mo and rstd4 */
        matmul_forward(s->mo, s->h, w->wdown, NULL, N, F, C);
        float *y = out ? out : s->dxmid; /* dxmid is scratch until the backward writes it */
        rmsnorm_offset_forward(y, s->rstd4, s->mo, w->mlp_post_norm, N, C, d->eps, off);
        if (out) residual_forward(out, out, s->xmid, N * C);
        return;
    }
    if (!out) return;
    matmul_forward(out, s->h, w->wdown, NULL, N, F, C);
    residual_forward(out, out, s->xmid, N * C);
}

void cpu_block_backward(const hz_dims *d, const float *inv_freq, int64_t window,
                        const cpu_block_params *w, cpu_block_params *g, const float *inp,
                        float *dx, cpu_work *s, int recompute)
{
    int64_t N = d->micro_tokens, C = d->C, F = d->F, A = d->NH * d->HD, KV = d->NKV * d->HD;
    const float *gate = s->gu, *up = s->gu + N * F;
    const float off = d->norm_offset;
    /* recompute; the block's output itself is not needed, only its internals. A kept block
     * has the SAVED list and recomputes only the norm outputs and the gated product. */
    if (recompute) {
        cpu_block_forward(d, inv_freq, window, w, inp, NULL, s);
    } else {
        rmsnorm_offset_forward(s->xn, s->rstd1, inp, w->attn_norm, N, C, d->eps, off);
        rmsnorm_offset_forward(s->xn2, s->rstd2, s->xmid, w->mlp_norm, N, C, d->eps, off);
        mlp_gate_forward(d, s->h, gate, up, N * F);
    }
    float *dgate = s->dgu, *dup = s->dgu + N * F;
    const float *wq = w->wqkv, *wk = wq + A * C, *wv = wk + KV * C;
    float *dwq = g->wqkv, *dwk = dwq + A * C, *dwv = dwk + KV * C;
    float *dbq = g->bqkv, *dbk = dbq ? dbq + A : NULL, *dbv = dbq ? dbk + KV : NULL;
    /* MLP: out = xmid + down(gate(gate) * up), with post norms out = xmid + norm(down(...));
     * dxn is free until the attention backward: it holds the down output's gradient */
    const float *dmo = dx;
    if (d->post_norms) {
        rmsnorm_offset_backward(s->dxn, g->mlp_post_norm, dx, s->mo, w->mlp_post_norm, s->rstd4,
                                N, C, off);
        dmo = s->dxn;
    }
    matmul_backward(s->dh, g->wdown, NULL, dmo, s->h, w->wdown, N, F, C);
    if (d->geglu) geglu_backward(dgate, dup, s->dh, gate, up, N * F);
    else swiglu_backward(dgate, dup, s->dh, gate, up, N * F);
    matmul_backward(s->dxn2, g->wgu, NULL, dgate, s->xn2, w->wgu, N, C, F);
    /* dxn holds the up branch's share now */
    matmul_backward(s->dxn, g->wgu + F * C, NULL, dup, s->xn2, w->wgu + F * C, N, C, F);
    residual_forward(s->dxn2, s->dxn2, s->dxn, N * C);
    rmsnorm_offset_backward(s->dxmid, g->mlp_norm, s->dxn2, s->xmid, w->mlp_norm, s->rstd2, N, C,
                            off);
    residual_forward(s->dxmid, s->dxmid, dx, N * C);
    /* attention: xmid = x + o_proj(attention(rope(q), rope(k), v)) [post norms: norm(o_proj)];
     * dxn2 is free again and holds the o_proj output's gradient */
    const float *dao = s->dxmid;
    if (d->post_norms) {
        rmsnorm_offset_backward(s->dxn2, g->attn_post_norm, s->dxmid, s->ao, w->attn_post_norm,
                                s->rstd3, N, C, off);
        dao = s->dxn2;
    }
    matmul_backward(s->datt, g->wo, NULL, dao, s->att, w->wo, N, A, C);
    attention_backward_window(s->dq, s->dk, s->dv, s->datt, s->q, s->k, s->v, s->att, s->lse, d->B,
                              d->T, d->NH, d->NKV, d->HD, d->attn_scale, window);
    rope_backward(s->dq, inv_freq, N, d->T, d->NH, d->HD);
    rope_backward(s->dk, inv_freq, N, d->T, d->NKV, d->HD);
    float *dq = s->dq;
    if (w->q_norm) {
        /* datt (N, A) is free after the attention backward; A >= KV as NH >= NKV */
        rmsnorm_offset_backward(s->datt, g->k_norm, s->dk, s->kpre, w->k_norm, s->rstdk,
                                N * d->NKV, d->HD, off);
        memcpy(s->dk, s->datt, (size_t)(N * KV) * sizeof(float));
        rmsnorm_offset_backward(s->datt, g->q_norm, s->dq, s->qpre, w->q_norm, s->rstdq,
                                N * d->NH, d->HD, off);
        dq = s->datt;
    }
    /* dxn2 is free again (its last reader was the o_proj backward): the k and v shares */
    matmul_backward(s->dxn, dwq, dbq, dq, s->xn, wq, N, C, A);
    matmul_backward(s->dxn2, dwk, dbk, s->dk, s->xn, wk, N, C, KV);
    residual_forward(s->dxn, s->dxn, s->dxn2, N * C);
    matmul_backward(s->dxn2, dwv, dbv, s->dv, s->xn, wv, N, C, KV);
    residual_forward(s->dxn, s->dxn, s->dxn2, N * C);
    rmsnorm_offset_backward(dx, g->attn_norm, s->dxn, inp, w->attn_norm, s->rstd1, N, C, off);
    residual_forward(dx, dx, s->dxmid, N * C);
}

/* The LOSSBUF list of runtime/hz_layout.h in fp32. */
int64_t cpu_head_floats(const hz_dims *d) { return hz_loss_layout(d, 4, NULL) / 4; }

double cpu_head_loss(const hz_dims *d, const float *norm_w, const float *lm, const float *x,
                     const int32_t *targets, float dscale, float *dx, float *dnorm, float *dlm,
                     float *scratch, int backward, float *logits_out)
{
    int64_t N = d->micro_tokens, C = d->C, V = d->V, K = d->chunk_tokens;
    int64_t off[HZ_LOSS_BUF_N];
    hz_loss_layout(d, 4, off);
    float *xn = scratch + off[HZ_LOSS_xn] / 4, *dxn = scratch + off[HZ_LOSS_dxn] / 4;
    float *logits = scratch + off[HZ_LOSS_logits] / 4, *rstd = scratch + off[HZ_LOSS_rstd] / 4;
    float *losses = scratch + off[HZ_LOSS_losses] / 4;
    rmsnorm_offset_forward(xn, rstd, x, norm_w, N, C, d->eps, d->norm_offset);
    double sum = 0.0;
    for (int64_t c0 = 0; c0 < N; c0 += K) {
        matmul_forward(logits, xn + c0 * C, lm, NULL, K, C, V);
        if (logits_out) memcpy(logits_out + c0 * V, logits, (size_t)(K * V) * sizeof(float));
        sum += crossentropy_forward_backward(logits, losses + c0, logits, targets + c0, K, V,
                                             dscale);
        if (backward) matmul_backward(dxn + c0 * C, dlm, NULL, logits, xn + c0 * C, lm, K, C, V);
    }
    if (backward) rmsnorm_offset_backward(dx, dnorm, dxn, x, norm_w, rstd, N, C, d->norm_offset);
    return sum;
}
