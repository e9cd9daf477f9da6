/* runtime/cpu/block.c - the decoder block and the loss head from the cpu ops (fp32).
 * Forward: x -> rmsnorm -> q,k,v (+bias) -> rope -> attention -> o_proj -> + x = xmid
 *          xmid -> rmsnorm -> gate, up -> silu(gate)*up -> down -> + xmid = out.
 * Backward recomputes all of that from the block's input, then runs it in reverse. */
#include "block.h"

#include <string.h>

#include "ops.h"

int64_t cpu_work_floats(const hz_dims *d)
{
    int64_t N = d->micro_tokens, C = d->C, F = d->F, A = d->NH * d->HD, KV = d->NKV * d->HD;
    return N * (C + 1 + A + 2 * KV + A + C + C + 1 + 3 * F) + d->B * d->NH * d->T /* forward */
           + N * (3 * F + C + C + C + A + A + 2 * KV + C);                  /* backward */
}

void cpu_work_bind(cpu_work *w, float *mem, const hz_dims *d)
{
    int64_t N = d->micro_tokens, C = d->C, F = d->F, A = d->NH * d->HD, KV = d->NKV * d->HD;
#define TAKE(field, n) (w->field = mem, mem += (n))
    TAKE(xn, N * C);
    TAKE(rstd1, N);
    TAKE(q, N * A);
    TAKE(k, N * KV);
    TAKE(v, N * KV);
    TAKE(att, N * A);
    TAKE(lse, d->B * d->NH * d->T);
    TAKE(xmid, N * C);
    TAKE(xn2, N * C);
    TAKE(rstd2, N);
    TAKE(gate, N * F);
    TAKE(up, N * F);
    TAKE(h, N * F);
    TAKE(dh, N * F);
    TAKE(dgate, N * F);
    TAKE(dup, N * F);
    TAKE(dxn2, N * C);
    TAKE(dtmp, N * C);
    TAKE(dxmid, N * C);
    TAKE(datt, N * A);
    TAKE(dq, N * A);
    TAKE(dk, N * KV);
    TAKE(dv, N * KV);
    TAKE(dxn, N * C);
#undef TAKE
}

void cpu_block_forward(const hz_dims *d, const float *inv_freq, const cpu_block_params *w,
                       const float *inp, float *out, cpu_work *s)
{
    int64_t N = d->micro_tokens, C = d->C, F = d->F, A = d->NH * d->HD, KV = d->NKV * d->HD;
    const float *wq = w->wqkv, *wk = wq + A * C, *wv = wk + KV * C;
    const float *bq = w->bqkv, *bk = bq ? bq + A : NULL, *bv = bq ? bk + KV : NULL;
    rmsnorm_forward(s->xn, s->rstd1, inp, w->attn_norm, N, C, d->eps);
    matmul_forward(s->q, s->xn, wq, bq, N, C, A);
    matmul_forward(s->k, s->xn, wk, bk, N, C, KV);
    matmul_forward(s->v, s->xn, wv, bv, N, C, KV);
    rope_forward(s->q, inv_freq, N, d->T, d->NH, d->HD);
    rope_forward(s->k, inv_freq, N, d->T, d->NKV, d->HD);
    attention_forward(s->att, s->lse, s->q, s->k, s->v, d->B, d->T, d->NH, d->NKV, d->HD);
    matmul_forward(s->xmid, s->att, w->wo, NULL, N, A, C);
    residual_forward(s->xmid, s->xmid, inp, N * C);
    rmsnorm_forward(s->xn2, s->rstd2, s->xmid, w->mlp_norm, N, C, d->eps);
    matmul_forward(s->gate, s->xn2, w->wgu, NULL, N, C, F);
    matmul_forward(s->up, s->xn2, w->wgu + F * C, NULL, N, C, F);
    swiglu_forward(s->h, s->gate, s->up, N * F);
    matmul_forward(out, s->h, w->wdown, NULL, N, F, C);
    residual_forward(out, out, s->xmid, N * C);
}

void cpu_block_backward(const hz_dims *d, const float *inv_freq, const cpu_block_params *w,
                        cpu_block_params *g, const float *inp, float *dx, cpu_work *s)
{
    int64_t N = d->micro_tokens, C = d->C, F = d->F, A = d->NH * d->HD, KV = d->NKV * d->HD;
    /* recompute; the block's output itself is not needed, only its internals */
    cpu_block_forward(d, inv_freq, w, inp, s->dtmp, s);
    const float *wq = w->wqkv, *wk = wq + A * C, *wv = wk + KV * C;
    float *dwq = g->wqkv, *dwk = dwq + A * C, *dwv = dwk + KV * C;
    float *dbq = g->bqkv, *dbk = dbq ? dbq + A : NULL, *dbv = dbq ? dbk + KV : NULL;
    /* MLP: out = xmid + down(silu(gate) * up) */
    matmul_backward(s->dh, g->wdown, NULL, dx, s->h, w->wdown, N, F, C);
    swiglu_backward(s->dgate, s->dup, s->dh, s->gate, s->up, N * F);
    matmul_backward(s->dxn2, g->wgu, NULL, s->dgate, s->xn2, w->wgu, N, C, F);
    matmul_backward(s->dtmp, g->wgu + F * C, NULL, s->dup, s->xn2, w->wgu + F * C, N, C, F);
    residual_forward(s->dxn2, s->dxn2, s->dtmp, N * C);
    rmsnorm_backward(s->dxmid, g->mlp_norm, s->dxn2, s->xmid, w->mlp_norm, s->rstd2, N, C);
    residual_forward(s->dxmid, s->dxmid, dx, N * C);
    /* attention: xmid = x + o_proj(attention(rope(q), rope(k), v)) */
    matmul_backward(s->datt, g->wo, NULL, s->dxmid, s->att, w->wo, N, A, C);
    attention_backward(s->dq, s->dk, s->dv, s->datt, s->q, s->k, s->v, s->att, s->lse, d->B,
                       d->T, d->NH, d->NKV, d->HD);
    rope_backward(s->dq, inv_freq, N, d->T, d->NH, d->HD);
    rope_backward(s->dk, inv_freq, N, d->T, d->NKV, d->HD);
    matmul_backward(s->dxn, dwq, dbq, s->dq, s->xn, wq, N, C, A);
    matmul_backward(s->dtmp, dwk, dbk, s->dk, s->xn, wk, N, C, KV);
    residual_forward(s->dxn, s->dxn, s->dtmp, N * C);
    matmul_backward(s->dtmp, dwv, dbv, s->dv, s->xn, wv, N, C, KV);
    residual_forward(s->dxn, s->dxn, s->dtmp, N * C);
    rmsnorm_backward(dx, g->attn_norm, s->dxn, inp, w->attn_norm, s->rstd1, N, C);
    residual_forward(dx, dx, s->dxmid, N * C);
}

int64_t cpu_head_floats(const hz_dims *d)
{
    int64_t N = d->micro_tokens;
    return 2 * N * d->C + N + d->chunk_tokens * d->V + N;
}

double cpu_head_loss(const hz_dims *d, const float *norm_w, const float *lm, const float *x,
                     const int32_t *targets, float dscale, float *dx, float *dnorm, float *dlm,
                     float *scratch, int backward, float *logits_out)
{
    int64_t N = d->micro_tokens, C = d->C, V = d->V, K = d->chunk_tokens;
    float *xn = scratch, *dxn = xn + N * C, *rstd = dxn + N * C, *logits = rstd + N;
    float *losses = logits + K * V;
    rmsnorm_forward(xn, rstd, x, norm_w, N, C, d->eps);
    double sum = 0.0;
    for (int64_t c0 = 0; c0 < N; c0 += K) {
        matmul_forward(logits, xn + c0 * C, lm, NULL, K, C, V);
        if (logits_out) memcpy(logits_out + c0 * V, logits, (size_t)(K * V) * sizeof(float));
        sum += crossentropy_forward_backward(logits, losses + c0, logits, targets + c0, K, V,
                                             dscale);
        if (backward) matmul_backward(dxn + c0 * C, dlm, NULL, logits, xn + c0 * C, lm, K, C, V);
    }
    if (backward) rmsnorm_backward(dx, dnorm, dxn, x, norm_w, rstd, N, C);
    return sum;
}
