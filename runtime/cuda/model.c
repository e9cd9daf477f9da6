/* runtime/cuda/model.c - the model on the GPU: the decoder block, the loss head and the
 * embedding composed from the kernels (launch.h) and the GEMMs (gemm.c), op by op as the
 * reference runtime/cpu/block.c (bf16 activations, fp32 statistics and weight gradients;
 * with qk_norm the q/k norms and RoPE are one kernel; Gemma 3's output norms, GeGLU, scaled
 * embedding and sliding-window blocks), and the per-unit weight and gradient copies. */
#include "launch.h"

/* Tensor KIND of unit U: in its weight slot, or (SLOT NULL) in the RESIDENT region. */
static const bf16 *w_at(const cuda_state *s, const hz_unit *u, int kind, const char *slot)
{
    const hz_tensor *t = hz_unit_tensor(s->p, u, kind);
    if (!t) return NULL;
    return slot ? (const bf16 *)slot + t->slot_n : (const bf16 *)s->res[HZ_RES_W] + t->res_n;
}

static float *g_at(const hz_plan *p, const hz_unit *u, int kind, char *grads)
{
    const hz_tensor *t = hz_unit_tensor(p, u, kind);
    return t ? (float *)grads + t->grad_n : NULL;
}

block_w hzcu_block_weights(const cuda_state *s, const hz_unit *u, const char *slot)
{
    block_w w = {w_at(s, u, HZ_ATTN_NORM, slot), w_at(s, u, HZ_WQKV, slot),
                 w_at(s, u, HZ_BQKV, slot),      w_at(s, u, HZ_WO, slot),
                 w_at(s, u, HZ_MLP_NORM, slot),  w_at(s, u, HZ_WGU, slot),
                 w_at(s, u, HZ_WDOWN, slot),     w_at(s, u, HZ_Q_NORM, slot),
                 w_at(s, u, HZ_K_NORM, slot),    w_at(s, u, HZ_ATTN_POST_NORM, slot),
                 w_at(s, u, HZ_MLP_POST_NORM, slot)};
    return w;
}

/* The buffers block U uses for micro-batch M: the workspace, with the forward's activations
 * (the SAVED list) in the block's own slot of the SAVED region when it keeps them, or its MLP
 * output (the MLPOUT list) in its own slot of the MLPOUT region when it keeps that. */
static work_bufs unit_work(const cuda_state *s, const hz_unit *u, int m)
{
    work_bufs b = s->w;
    int n_micro = (int)hz_gpu_n_micro(&s->p->dims);
    if (u->keep) {
        char *base = hzcu_region_at(s, HZ_SAVED, u->keep_slot * n_micro + m);
#define HZCU_TAKE_SAVED(name, dtype, n)                                                        \
    b.name = (HZCU_PTR_##dtype)(base + s->work_off[HZ_WORK_##name]);
        HZ_SAVED_BUFS(HZCU_TAKE_SAVED)
#undef HZCU_TAKE_SAVED
    } else if (u->keep_mlp_out) {
        char *base = hzcu_region_at(s, HZ_MLPOUT, u->mlp_out_slot * n_micro + m);
        int i = 0;
#define HZCU_TAKE_MLPOUT(name, dtype, n) b.name = (HZCU_PTR_##dtype)(base + s->mlp_out_off[i++]);
        HZ_MLPOUT_BUFS(HZCU_TAKE_MLPOUT)
#undef HZCU_TAKE_MLPOUT
    }
    return b;
}

block_g hzcu_block_grads(const hz_plan *p, const hz_unit *u, char *grads)
{
    block_g g = {g_at(p, u, HZ_ATTN_NORM, grads), g_at(p, u, HZ_WQKV, grads),
                 g_at(p, u, HZ_BQKV, grads),      g_at(p, u, HZ_WO, grads),
                 g_at(p, u, HZ_MLP_NORM, grads),  g_at(p, u, HZ_WGU, grads),
                 g_at(p, u, HZ_WDOWN, grads),     g_at(p, u, HZ_Q_NORM, grads),
                 g_at(p, u, HZ_K_NORM, grads),    g_at(p, u, HZ_ATTN_POST_NORM, grads),
                 g_at(p, u, HZ_MLP_POST_NORM, grads)};
    return g;
}

/* The block's attention settings: its window (0 = full causal) and its RoPE table. */
typedef struct block_att {
    int window;
    const float *inv_freq;
} block_att;

static block_att att_of(const cuda_state *s, const hz_unit *u)
{
    block_att a = {(int)u->window, u->window > 0 ? s->inv_freq_local : s->inv_freq};
    return a;
}

/* The MLP's gate product h from gate_up: SwiGLU, or Gemma's GeGLU. */
static void gate_forward(cuda_state *s, cudaStream_t st, const work_bufs *b)
{
    hzcu_glu_forward(s, st, b->h, b->gu);
}

/* out = block(inp) for one micro-batch, (N, C) bf16 each, its activations in B. With
 * out == NULL only the internals the backward needs are recomputed (the last residual add
 * is skipped, and without post norms, or with MLP_OUT_KEPT (B's mo and rstd4 hold the
 * forward's), the down projection and its norm). Without post norms the down projection
 * adds the residual in its epilogue (out = h wdown^T + xmid). With post norms (Gemma 3):
 * xmid = inp + norm(o_proj(att)) and out = xmid + norm(down(h)); the norms' outputs pass
 * through dxn, which is free until the backward, and the recompute keeps rstd4 (the MLP
 * output norm's) from a norm into dxmid, free likewise. */
static void block_forward(cuda_state *s, const block_w *w, const block_att *at,
                          const work_bufs *b, const bf16 *inp, bf16 *out, int mlp_out_kept)
{
    cudaStream_t st = s->stream[HZ_COMPUTE];
    const float eps = s->p->dims.eps;
    const int post = s->p->dims.post_norms;
    hzcu_rmsnorm_forward(s, st, b->xn, b->rstd1, inp, w->attn_norm, s->N, s->C, eps);
    hzcu_linear_forward(s, HZ_GEMM_QKV, "qkv = xn wqkv^T", b->qkv, b->xn, w->wqkv, s->N, s->C, s->QKV);
    if (w->q_norm)
        hzcu_qk_norm_rope(s, st, b->q, b->k, b->v, b->qpre, b->kpre, b->rstdq, b->rstdk, b->qkv,
                          w->q_norm, w->k_norm, at->inv_freq);
    else
        hzcu_qkv_bias_rope(s, st, b->q, b->k, b->v, b->qkv, w->bqkv, at->inv_freq);
    hzcu_attention_forward(s, st, b->att, b->lse, b->q, b->k, b->v, at->window);
    if (post) {
        hzcu_linear_forward(s, HZ_GEMM_ATTN_OUT, "ao = att wo^T", b->ao, b->att, w->wo, s->N, s->A, s->C);
        hzcu_rmsnorm_forward(s, st, b->dxn, b->rstd3, b->ao, w->attn_post_norm, s->N, s->C, eps);
        hzcu_residual_rmsnorm_forward(s, st, b->xmid, b->xn2, b->rstd2, inp, b->dxn, w->mlp_norm,
                                      s->N, s->C, eps);
    } else {
        hzcu_linear_forward(s, HZ_GEMM_ATTN_OUT, "xmid = att wo^T", b->xmid, b->att, w->wo, s->N, s->A, s->C);
        hzcu_residual_rmsnorm_forward(s, st, b->xmid, b->xn2, b->rstd2, b->xmid, inp, w->mlp_norm,
                                      s->N, s->C, eps);
    }
    hzcu_linear_forward(s, HZ_GEMM_GATE_UP, "gate_up = xn2 wgate_up^T", b->gu, b->xn2, w->wgu, s->N, s->C,
                        2 * (int64_t)s->F);
    gate_forward(s, st, b);
    if (!out && mlp_out_kept) return;
    if (post) {
        hzcu_linear_forward(s, HZ_GEMM_DOWN, "mo = h wdown^T", b->mo, b->h, w->wdown, s->N, s->F, s->C);
        bf16 *y = out ? b->dxn : b->dxmid;
        hzcu_rmsnorm_forward(s, st, y, b->rstd4, b->mo, w->mlp_post_norm, s->N, s->C, eps);
        if (out) hzcu_add_bf16(s, st, out, b->dxn, b->xmid, (long)s->N * s->C);
        return;
    }
    if (!out) return;
    hzcu_linear_forward_add(s, HZ_GEMM_DOWN, "out = h wdown^T + xmid", out, b->h, w->wdown, b->xmid,
                            s->N, s->F, s->C);
}

/* A kept block's backward: the SAVED list is in B; the rest of what the backward reads (the
 * two norm outputs and the gated product) is recomputed from it, with the forward's own
 * kernels on the same inputs, so the bits are the forward's (the norms rewrite rstd1 and
 * rstd2 with the values they hold). */
static void block_recompute_cheap(cuda_state *s, const block_w *w, const work_bufs *b,
                                  const bf16 *inp)
{
    cudaStream_t st = s->stream[HZ_COMPUTE];
    const float eps = s->p->dims.eps;
    hzcu_rmsnorm_forward(s, st, b->xn, b->rstd1, inp, w->attn_norm, s->N, s->C, eps);
    hzcu_rmsnorm_forward(s, st, b->xn2, b->rstd2, b->xmid, w->mlp_norm, s->N, s->C, eps);
    gate_forward(s, st, b);
}

/* Rebuild what the backward reads as REC says (enum hz_recompute: the block from inp, only
 * its cheap part when B holds its forward's SAVED list, or all but the down projection when
 * B holds its MLPOUT list), then backward: dx (N, C) holds dout on entry and dinp on exit;
 * weight gradients accumulate (fp32) into g. */
static void block_backward(cuda_state *s, const block_w *w, const block_g *g,
                           const block_att *at, const work_bufs *b, const bf16 *inp, bf16 *dx,
                           int rec)
{
    cudaStream_t st = s->stream[HZ_COMPUTE];
    int64_t N = s->N, C = s->C, F = s->F, A = s->A, QKV = s->QKV;
    const int post = s->p->dims.post_norms;
    if (rec == HZ_RECOMPUTE_KEPT)
        block_recompute_cheap(s, w, b, inp);
    else
        block_forward(s, w, at, b, inp, NULL, rec == HZ_RECOMPUTE_MLP_OUT);
    /* MLP: out = xmid + down(gate(gate) * up) [post norms: + norm(down(...))]; dxn holds the
     * down output's gradient, free until the attention backward */
    const bf16 *dmo = dx;
    if (post) {
        hzcu_rmsnorm_backward(s, st, b->dxn, g->mlp_post_norm, dx, b->mo, w->mlp_post_norm,
                              b->rstd4, NULL, s->N, s->C);
        dmo = b->dxn;
    }
    hzcu_linear_backward_x(s, HZ_GEMM_DOWN, "dh = dout wdown", b->dh, dmo, w->wdown, N, F, C);
    hzcu_linear_backward_w(s, HZ_GEMM_DOWN, "dwdown += dout^T h", g->wdown, dmo, b->h, N, F, C);
    hzcu_glu_backward(s, st, b->dgu, b->dh, b->gu);
    hzcu_linear_backward_x(s, HZ_GEMM_GATE_UP, "dxn2 = dgate_up wgate_up", b->dxn2, b->dgu, w->wgu, N, C, 2 * F);
    hzcu_linear_backward_w(s, HZ_GEMM_GATE_UP, "dwgate_up += dgate_up^T xn2", g->wgu, b->dgu, b->xn2, N, C, 2 * F);
    hzcu_rmsnorm_backward(s, st, b->dxmid, g->mlp_norm, b->dxn2, b->xmid, w->mlp_norm, b->rstd2, dx,
                          s->N, s->C);
    /* attention: xmid = x + o_proj(attention(rope(q), rope(k), v)) [post norms: norm(o_proj)];
     * D of the attention backward lives in the qkv buffer, free once rope has read it; dxn2
     * holds the o_proj output's gradient */
    const bf16 *dao = b->dxmid;
    if (post) {
        hzcu_rmsnorm_backward(s, st, b->dxn2, g->attn_post_norm, b->dxmid, b->ao,
                              w->attn_post_norm, b->rstd3, NULL, s->N, s->C);
        dao = b->dxn2;
    }
    hzcu_linear_backward_x(s, HZ_GEMM_ATTN_OUT, "datt = dxmid wo", b->datt, dao, w->wo, N, A, C);
    hzcu_linear_backward_w(s, HZ_GEMM_ATTN_OUT, "dwo += dxmid^T att", g->wo, dao, b->att, N, A, C);
    hzcu_attention_backward(s, st, b->dq, b->dk, b->dv, b->datt, b->q, b->k, b->v, b->att, b->lse,
                            (float *)b->qkv, at->window);
    if (w->q_norm)
        hzcu_qk_norm_rope_backward(s, st, b->dqkv, g->q_norm, g->k_norm, b->dq, b->dk, b->dv,
                                   b->qpre, b->kpre, b->rstdq, b->rstdk, w->q_norm, w->k_norm,
                                   at->inv_freq);
    else
        hzcu_qkv_rope_backward(s, st, b->dqkv, g->bqkv, b->dq, b->dk, b->dv, at->inv_freq);
    hzcu_linear_backward_x(s, HZ_GEMM_QKV, "dxn = dqkv wqkv", b->dxn, b->dqkv, w->wqkv, N, C, QKV);
    hzcu_linear_backward_w(s, HZ_GEMM_QKV, "dwqkv += dqkv^T xn", g->wqkv, b->dqkv, b->xn, N, C, QKV);
    hzcu_rmsnorm_backward(s, st, dx, g->attn_norm, b->dxn, inp, w->attn_norm, b->rstd1, b->dxmid,
                          s->N, s->C);
}

/* Final norm, then per chunk of K tokens the logits, the fused cross-entropy and (BACKWARD)
 * the dx chunk and dlm +=; then the norm's backward into the micro-batch's dgrad rows. The
 * per-token losses go to the pinned h_loss on the compute stream. */
void hzcu_head_loss(cuda_state *s, const hz_unit *u, int m, const char *slot, char *grads,
                    float dscale, int backward, float *host_logits)
{
    const hz_plan *p = s->p;
    cudaStream_t st = s->stream[HZ_COMPUTE];
    loss_bufs *l = &s->l;
    const bf16 *norm_w = w_at(s, u, HZ_FINAL_NORM, slot), *lm = w_at(s, u, HZ_LM_HEAD, slot);
    int64_t N = s->N, C = s->C, V = s->V, K = s->K, mtok = (int64_t)m * N;
    const bf16 *x = hzcu_boundary_at(s, p->dims.L, mtok);
    bf16 *dx = s->dgrad + mtok * C;
    if (backward && m == 0)
        hzcu_memset(s, st, grads,
                    u->resident || u->held ? u->span_n * 4 : p->regions[HZ_GHEAD].bytes);
    hzcu_rmsnorm_forward(s, st, l->xn, l->rstd, x, norm_w, s->N, s->C, p->dims.eps);
    for (int64_t c0 = 0; c0 < N; c0 += K) {
        hzcu_linear_forward(s, HZ_GEMM_LM_HEAD, "logits = xn lm_head^T", l->logits, l->xn + c0 * C, lm, K, C, V);
        if (host_logits) {
            hzcu_copy(s, st, s->h_logits, l->logits, K * V * 2, cudaMemcpyDeviceToHost);
            if (!s->dry) CUDA_CHECK(cudaStreamSynchronize(st));
            float *o = host_logits + (mtok + c0) * V;
            for (int64_t i = 0; i < K * V; i++) o[i] = hz_bf16_f32_inl(s->h_logits[i]);
        }
        hzcu_crossentropy(s, st, l->logits, l->losses + c0, l->logits, s->tok_tgt + mtok + c0, s->K,
                          s->V, dscale);
        if (!backward) continue;
        hzcu_linear_backward_x(s, HZ_GEMM_LM_HEAD, "dxn = dlogits lm_head", l->dxn + c0 * C, l->logits, lm, K, C, V);
        hzcu_linear_backward_w(s, HZ_GEMM_LM_HEAD, "dlm_head += dlogits^T xn", g_at(p, u, HZ_LM_HEAD, grads),
                               l->logits, l->xn + c0 * C, K, C, V);
    }
    hzcu_copy(s, st, s->h_loss + mtok, l->losses, N * 4, cudaMemcpyDeviceToHost);
    if (backward)
        hzcu_rmsnorm_backward(s, st, dx, g_at(p, u, HZ_FINAL_NORM, grads), l->dxn, x, norm_w,
                              l->rstd, NULL, s->N, s->C);
}

void hzcu_forward_unit(cuda_state *s, const hz_unit *u, int m, const char *slot)
{
    int64_t mtok = (int64_t)m * s->N;
    bf16 *out = hzcu_boundary_at(s, u->layer + 1, mtok);
    if (u->kind == HZ_EMBED) {
        hzcu_embedding_forward(s, s->stream[HZ_COMPUTE], out, s->tok_in + mtok,
                               w_at(s, u, HZ_WTE, slot), s->N, s->C);
        float scale = s->p->dims.embed_scale;
        if (scale != 1.0f)
            hzcu_scale_bf16(s, s->stream[HZ_COMPUTE], HZ_KR_EMBED_FWD, out, scale, (long)s->N * s->C);
    } else {
        block_w w = hzcu_block_weights(s, u, slot);
        block_att at = att_of(s, u);
        work_bufs b = unit_work(s, u, m);
        block_forward(s, &w, &at, &b, hzcu_boundary_at(s, u->layer, mtok), out, 0);
    }
}

void hzcu_load_unit(cuda_state *s, const uint16_t *host_w, const hz_unit *u, char *slot,
                    cudaStream_t st)
{
    const hz_plan *p = s->p;
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *t = &p->tensors[u->first_tensor + k];
        hzcu_copy(s, st, (bf16 *)slot + t->slot_n, host_w + t->host_n, t->rows * t->cols * 2,
                  cudaMemcpyHostToDevice);
    }
}

void hzcu_backward_unit(cuda_state *s, const hz_unit *u, int m, const char *slot, char *grads)
{
    const hz_plan *p = s->p;
    const hz_dims *d = &p->dims;
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    int64_t mtok = (int64_t)m * s->N;
    bf16 *dx = s->dgrad + mtok * s->C;
    if (u->kind == HZ_EMBED) {
        float *dwte = g_at(p, u, HZ_WTE, grads);
        if (m == 0 && !d->tied) hzcu_memset(s, cs, dwte, d->V * d->C * 4);
        /* Gemma 3: the gradient through the scale, in place (nothing reads dx after) */
        if (d->embed_scale != 1.0f)
            hzcu_scale_bf16(s, cs, HZ_KR_EMBED_BWD, dx, d->embed_scale, (long)s->N * s->C);
        hzcu_embedding_backward(s, cs, dwte, dx, s->tok_in + mtok, s->N, s->C);
        return;
    }
    if (m == 0)
        hzcu_memset(s, cs, grads,
                    u->resident || u->held ? u->span_n * 4 : p->regions[HZ_GSLOT].slot_bytes);
    block_w w = hzcu_block_weights(s, u, slot);
    block_g g = hzcu_block_grads(p, u, grads);
    block_att at = att_of(s, u);
    work_bufs b = unit_work(s, u, m);
    block_backward(s, &w, &g, &at, &b, hzcu_boundary_at(s, u->layer, mtok), dx,
                   hz_unit_recompute(u));
}

void hzcu_grads_ready(cuda_state *s, const hz_unit *u, const char *grads, cudaStream_t st)
{
    const hz_plan *p = s->p;
    bf16 *stage = (bf16 *)hzcu_region_at(s, HZ_GSTAGE, 0);
    /* a resident unit updates on the GPU, a held one is fetched by FETCH_G: neither is cast */
    int cast = p->host_grad_bf16 && !u->resident && !u->held;
    if (cast) CUDA_CHECK(cudaStreamWaitEvent(st, s->gstage_free, 0));
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *t = &p->tensors[u->first_tensor + k];
        if (!t->store_grad) continue;
        const float *src = (const float *)grads + t->grad_n;
        long n = (long)(t->rows * t->cols);
        hzcu_sumsq_f32(s, st, s->scalars + HZ_SC_SUMSQ, src, n);
        if (cast) hzcu_f32_to_bf16(s, st, stage + t->grad_n, src, n);
    }
}

void hzcu_store_grads(cuda_state *s, void *host_g, const hz_unit *u, const char *grads,
                      cudaStream_t st, int ready)
{
    const hz_plan *p = s->p;
    bf16 *stage = (bf16 *)hzcu_region_at(s, HZ_GSTAGE, 0);
    if (!ready) hzcu_grads_ready(s, u, grads, st);
    if (u->resident || u->held) return;
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *t = &p->tensors[u->first_tensor + k];
        if (!t->store_grad) continue;
        const float *src = (const float *)grads + t->grad_n;
        long n = (long)(t->rows * t->cols);
        if (p->host_grad_bf16)
            hzcu_copy(s, st, (uint16_t *)host_g + t->host_n, stage + t->grad_n, n * 2,
                      cudaMemcpyDeviceToHost);
        else
            hzcu_copy(s, st, (float *)host_g + t->host_n, src, n * 4, cudaMemcpyDeviceToHost);
    }
    if (p->host_grad_bf16) CUDA_CHECK(cudaEventRecord(s->gstage_free, st));
}

char *hzcu_unit_grads(const cuda_state *s, const hz_unit *u, int gslot)
{
    if (u->resident) return s->res[HZ_RES_G] + u->res_g_n * 4;
    if (u->held) return hzcu_region_at(s, HZ_GHOLD, 0) + u->hold_n * 4;
    if (u->grad_region != HZ_GSLOT) return hzcu_region_at(s, HZ_GHEAD, 0);
    return gslot >= 0 ? hzcu_region_at(s, HZ_GSLOT, gslot) : NULL;
}
