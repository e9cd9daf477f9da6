/* runtime/cpu/backend.c - the cpu backend: the generated schedule run with the fp32
 * reference ops. The GPU arena is mirrored in host memory with fp32 elements (weight
 * slots hold the streamed bf16 weights widened to fp32); ops run synchronously in issue
 * order, which the schedule guarantees is a valid order of its events. With several ranks
 * each has its own mirror, sized for its share of the step, and they sum their gradients
 * on the host in rank order (ranks.c). */
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "state.h"

static float *falloc(cpu_state *s, int64_t n)
{
    s->arena_bytes += n * 4;
    return calloc((size_t)(n ? n : 1), sizeof(float));
}

/* Rank state S's mirror of the arena, for its share of the step. */
static int rank_init(const hz_plan *p, cpu_state *s)
{
    const hz_dims *d = &p->dims;
    s->tokens = hz_gpu_step_tokens(d);
    s->n_micro = hz_gpu_n_micro(d);
    const hz_region *r = p->regions;
    s->wslot_n = r[HZ_WSLOT].slot_bytes / 2;
    s->gslot_n = r[HZ_GSLOT].slot_bytes / 4;
    s->ghead_n = r[HZ_GHEAD].slot_bytes / 4;
    s->wslot = calloc((size_t)r[HZ_WSLOT].count + 1, sizeof(float *));
    s->gslot = calloc((size_t)r[HZ_GSLOT].count + 1, sizeof(float *));
    if (!s->wslot || !s->gslot) return -1;
    for (int i = 0; i < r[HZ_WSLOT].count; i++)
        if (!(s->wslot[i] = falloc(s, s->wslot_n))) return -1;
    for (int i = 0; i < r[HZ_GSLOT].count; i++)
        if (!(s->gslot[i] = falloc(s, s->gslot_n))) return -1;
    s->ghead = falloc(s, s->ghead_n);
    s->boundary = falloc(s, r[HZ_BOUNDARY].count * s->tokens * d->C);
    if (p->boundary_on_host && !(s->host_boundary = falloc(s, d->L * s->tokens * d->C)))
        return -1;
    s->dgrad = falloc(s, s->tokens * d->C);
    s->work_mem = falloc(s, cpu_work_floats(d));
    s->head_mem = falloc(s, cpu_head_floats(d));
    s->inv_freq = falloc(s, d->HD / 2);
    s->inv_freq_local = falloc(s, d->HD / 2);
    s->inputs = calloc((size_t)s->tokens, sizeof(int32_t));
    s->targets = calloc((size_t)s->tokens, sizeof(int32_t));
    if (!s->inputs || !s->targets) return -1;
    s->op_t0 = calloc((size_t)p->op_n, sizeof(float));
    s->op_t1 = calloc((size_t)p->op_n, sizeof(float));
    if (!s->op_t0 || !s->op_t1) return -1;
    if (!s->ghead || !s->boundary || !s->dgrad || !s->work_mem || !s->head_mem || !s->inv_freq ||
        !s->inv_freq_local)
        return -1;
    cpu_work_bind(&s->work, s->work_mem, d);
    int64_t span = 0;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        if (!u->resident) continue;
        if (u->span_n > span) span = u->span_n;
        int64_t *g = u->kind == HZ_BLOCK ? &s->res_gblock_n : &s->res_ghead_n;
        if (u->span_n > *g) *g = u->span_n;
    }
    if (p->resident_n > 0) {
        int64_t off[HZ_RES_ARRAYS];
        int64_t bytes = hz_resident_layout(p->resident_n, p->resident_g_n, p->optimizer_state, off);
        if (!(s->res_mem = calloc((size_t)bytes, 1))) return -1;
        s->arena_bytes += bytes;
        for (int i = 0; i < HZ_RES_ARRAYS; i++) s->res[i] = s->res_mem + off[i];
        s->res_w = (uint16_t *)s->res[HZ_RES_W];
        s->res_lo = (int16_t *)s->res[HZ_RES_LO];
        s->res_g = (float *)s->res[HZ_RES_G];
    }
    if (p->resident_n > 0 && (!(s->res_slot = falloc(s, span)) ||
                              !(s->res_gblock = falloc(s, s->res_gblock_n)) ||
                              !(s->res_ghead = falloc(s, s->res_ghead_n)) ||
                              !(s->res_pool = hz_pool_new(1))))
        return -1;
    if (p->hold_n > 0 && !(s->hold = falloc(s, p->hold_n))) return -1;
    s->saved_n = cpu_saved_floats(d);
    if (p->keep_n > 0 && !(s->saved = falloc(s, p->keep_n * s->n_micro * s->saved_n)))
        return -1;
    s->mlp_out_n = hz_mlpout_layout(d, 4, s->mlp_out_off) / 4;
    for (int i = 0; i < HZ_MLPOUT_BUF_N; i++) s->mlp_out_off[i] /= 4;
    if (p->mlp_out_n > 0 && !(s->mlp_out = falloc(s, p->mlp_out_n * s->n_micro * s->mlp_out_n)))
        return -1;
    hz_rope_inv_freq_dims(s->inv_freq, d);
    hz_rope_inv_freq_local(s->inv_freq_local, d);
    return 0;
}

static int cpu_init(hz_ctx *c)
{
    cpu_backend *b = calloc(1, sizeof(*b));
    if (!b) return -1;
    c->bk = b;
    if (!(b->rank = calloc((size_t)c->rank_n, sizeof(cpu_state)))) return -1;
    b->rank_n = c->rank_n;
    cpu_ranks_init(&b->meet, c->rank_n);
    for (int r = 0; r < c->rank_n; r++) {
        if (rank_init(c->plan, &b->rank[r]) != 0) return -1;
        if (!(b->rank[r].peer = calloc((size_t)c->rank_n, sizeof(float *)))) return -1;
    }
    return 0;
}

/* Copies the rank's tokens, as the cuda backend stages them to the device. */
static void stage_tokens(cpu_state *s, const int32_t *inputs, const int32_t *targets)
{
    memcpy(s->inputs, inputs, (size_t)s->tokens * sizeof(int32_t));
    memcpy(s->targets, targets, (size_t)s->tokens * sizeof(int32_t));
}

static void cpu_begin_step(hz_ctx *c, int rank, const int32_t *inputs, const int32_t *targets,
                           float dscale)
{
    cpu_state *s = rank_state(c, rank);
    stage_tokens(s, inputs, targets);
    s->dscale = dscale;
    s->loss_sum = 0.0;
    s->sumsq = 0.0;
    s->step_t0 = hz_now_s();
}

/* Boundary j (the input of block j), token TOK of the rank's share: its slot, or buffer
 * j % 2 with host boundaries. */
static float *boundary_at(const hz_plan *p, const cpu_state *s, int64_t j, int64_t tok)
{
    return s->boundary + (hz_boundary_buf(p, j) * s->tokens + tok) * p->dims.C;
}

/* Pointers to a unit's tensors inside BASE (a weight slot or a gradient region). */
static float *tensor_at(const hz_plan *p, const hz_unit *u, int kind, float *base, int grad)
{
    const hz_tensor *t = hz_unit_tensor(p, u, kind);
    return t ? base + (grad ? t->grad_n : t->slot_n) : NULL;
}

static cpu_block_params block_params(const hz_plan *p, const hz_unit *u, float *base, int grad)
{
    cpu_block_params b = {
        tensor_at(p, u, HZ_ATTN_NORM, base, grad), tensor_at(p, u, HZ_WQKV, base, grad),
        tensor_at(p, u, HZ_BQKV, base, grad),      tensor_at(p, u, HZ_WO, base, grad),
        tensor_at(p, u, HZ_MLP_NORM, base, grad),  tensor_at(p, u, HZ_WGU, base, grad),
        tensor_at(p, u, HZ_WDOWN, base, grad),     tensor_at(p, u, HZ_Q_NORM, base, grad),
        tensor_at(p, u, HZ_K_NORM, base, grad),    tensor_at(p, u, HZ_ATTN_POST_NORM, base, grad),
        tensor_at(p, u, HZ_MLP_POST_NORM, base, grad)};
    return b;
}

static void load_unit(const hz_ctx *c, const cpu_state *s, const hz_unit *u, float *slot)
{
    const hz_plan *p = c->plan;
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *t = &p->tensors[u->first_tensor + k];
        const uint16_t *src = u->resident ? s->res_w + t->res_n : c->store.w + t->host_n;
        float *dst = slot + t->slot_n;
        for (int64_t e = 0; e < t->rows * t->cols; e++) dst[e] = hz_bf16_f32_inl(src[e]);
        hz_kclock_mark(s->kc, copy_cost(HZ_KR_COPY_H2D, t->rows * t->cols, 2));
    }
}

/* The buffers block U uses for micro-batch M: the workspace, with the forward's activations
 * in the block's own part of the saved region when it keeps them, or its MLP output (mo,
 * rstd4) in its own part of the mlp_out region when it keeps that. */
static cpu_work unit_work(const cpu_state *s, const hz_plan *p, const hz_unit *u, int m)
{
    cpu_work ws = s->work;
    if (u->keep)
        cpu_work_saved(&ws, s->saved + (u->keep_slot * s->n_micro + m) * s->saved_n,
                       &p->dims);
    if (u->keep_mlp_out) {
        float *base = s->mlp_out + (u->mlp_out_slot * s->n_micro + m) * s->mlp_out_n;
        int i = 0;
#define CPU_TAKE_MLPOUT(name, dtype, n) ws.name = base + s->mlp_out_off[i++];
        HZ_MLPOUT_BUFS(CPU_TAKE_MLPOUT)
#undef CPU_TAKE_MLPOUT
    }
    return ws;
}

/* Forward of the embedding or a block for micro-batch m into the next boundary. */
static void forward_unit(const hz_ctx *c, cpu_state *s, const hz_unit *u, int m, float *slot)
{
    const hz_plan *p = c->plan;
    const hz_dims *d = &p->dims;
    int64_t N = d->micro_tokens, C = d->C, mtok = (int64_t)m * N;
    float *out = boundary_at(p, s, u->layer + 1, mtok);
    if (u->kind == HZ_EMBED) {
        embedding_scaled_forward(out, s->inputs + mtok, tensor_at(p, u, HZ_WTE, slot, 0), N, C,
                                 d->embed_scale);
        hz_kclock_mark(s->kc, hz_kc(HZ_KR_EMBED_FWD, 0.0, 8.0 * (double)(N * C) + 4.0 * N));
    } else {
        cpu_block_params w = block_params(p, u, slot, 0);
        cpu_work ws = unit_work(s, p, u, m);
        cpu_block_forward(d, u->window ? s->inv_freq_local : s->inv_freq, u->window, &w,
                          boundary_at(p, s, u->layer, mtok), out, &ws, s->kc);
    }
}

/* Ops run synchronously, so the host clock around each is its place on the timeline. */
static void cpu_op_begin(hz_ctx *c, int rank, int i)
{
    cpu_state *s = rank_state(c, rank);
    double t = hz_now_s();
    s->op_t0[i] = (float)((t - s->step_t0) * 1e3);
    if (s->kclock.kp) { /* the profiled step: its rows start at the op's own start */
        s->kc = &s->kclock;
        hz_kclock_start(s->kc, c->plan->ops[i].stream, t);
    }
}

static void cpu_op_end(hz_ctx *c, int rank, int i)
{
    cpu_state *s = rank_state(c, rank);
    double t = hz_now_s();
    s->op_t1[i] = (float)((t - s->step_t0) * 1e3);
    if (s->kc) hz_kclock_end(s->kc, t);
    s->kc = NULL;
}

/* --profile-kernels: the ops run on rank 0's thread one after another, so the host clock
 * between the marks of one op is the time of each piece of its work. */
static void cpu_kprof_begin(hz_ctx *c, hz_kprof *kp)
{
    cpu_state *s = rank_state(c, 0);
    s->kclock.kp = kp;
}

static void cpu_kprof_end(hz_ctx *c)
{
    cpu_state *s = rank_state(c, 0);
    s->kclock.kp = NULL;
    s->kc = NULL;
}

static int cpu_op_times(hz_ctx *c, int rank, float *t0, float *t1)
{
    cpu_state *s = rank_state(c, rank);
    memcpy(t0, s->op_t0, (size_t)c->plan->op_n * sizeof(float));
    memcpy(t1, s->op_t1, (size_t)c->plan->op_n * sizeof(float));
    return 1;
}

/* ---- the ops of the step ---- */

/* The unit's weights: its weight slot, or for a resident unit the store widened now. */
static float *op_slot(const hz_ctx *c, cpu_state *s, const hz_op *o)
{
    if (o->slot >= 0) return s->wslot[o->slot];
    load_unit(c, s, &c->plan->units[o->unit], s->res_slot);
    return s->res_slot;
}

/* The unit's gradient accumulator: a grad slot for blocks, the head region otherwise (a
 * resident unit's: their own; a held unit's: its place in GHOLD), and how many floats it
 * holds. */
static float *op_grads(const cpu_state *s, const hz_plan *p, const hz_op *o, int64_t *n)
{
    const hz_unit *u = &p->units[o->unit];
    if (u->held) {
        if (n) *n = u->span_n;
        return s->hold + u->hold_n;
    }
    int block = u->grad_region == HZ_GSLOT;
    if (n) *n = u->resident ? (block ? s->res_gblock_n : s->res_ghead_n)
                            : (block ? s->gslot_n : s->ghead_n);
    if (u->resident) return block ? s->res_gblock : s->res_ghead;
    if (!block) return s->ghead;
    return o->gslot >= 0 ? s->gslot[o->gslot] : NULL;
}

static void op_load_w(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_state *s = rank_state(c, rank);
    load_unit(c, s, &c->plan->units[o->unit], op_slot(c, s, o));
}

static void op_fwd(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_state *s = rank_state(c, rank);
    forward_unit(c, s, &c->plan->units[o->unit], o->micro, op_slot(c, s, o));
}

static void op_loss(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_state *s = rank_state(c, rank);
    const hz_plan *p = c->plan;
    const hz_dims *d = &p->dims;
    const hz_unit *u = &p->units[o->unit];
    float *slot = op_slot(c, s, o);
    int64_t mtok = (int64_t)o->micro * d->micro_tokens, grads_n;
    float *grads = op_grads(s, p, o, &grads_n);
    if (o->micro == 0) {
        memset(grads, 0, (size_t)grads_n * sizeof(float));
        hz_kclock_mark(s->kc, copy_cost(HZ_KR_MEMSET, grads_n, 4));
    }
    s->loss_sum += cpu_head_loss(
        d, tensor_at(p, u, HZ_FINAL_NORM, slot, 0), tensor_at(p, u, HZ_LM_HEAD, slot, 0),
        boundary_at(p, s, d->L, mtok), s->targets + mtok, s->dscale, s->dgrad + mtok * d->C,
        tensor_at(p, u, HZ_FINAL_NORM, grads, 1), tensor_at(p, u, HZ_LM_HEAD, grads, 1),
        s->head_mem, 1, NULL, s->kc);
}

static void op_bwd(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_state *s = rank_state(c, rank);
    const hz_plan *p = c->plan;
    const hz_dims *d = &p->dims;
    const hz_unit *u = &p->units[o->unit];
    int64_t N = d->micro_tokens, C = d->C, mtok = (int64_t)o->micro * N, grads_n;
    float *grads = op_grads(s, p, o, &grads_n);
    if (u->kind == HZ_EMBED) {
        float *dwte = tensor_at(p, u, HZ_WTE, grads, 1);
        if (o->micro == 0 && !d->tied) {
            memset(dwte, 0, (size_t)(d->V * C) * sizeof(float));
            hz_kclock_mark(s->kc, copy_cost(HZ_KR_MEMSET, d->V * C, 4));
        }
        embedding_scaled_backward(dwte, s->dgrad + mtok * C, s->inputs + mtok, N, C,
                                  d->embed_scale);
        hz_kclock_mark(s->kc, hz_kc(HZ_KR_EMBED_BWD, 0.0, 12.0 * (double)(N * C) + 4.0 * N));
        return;
    }
    if (o->micro == 0) {
        memset(grads, 0, (size_t)grads_n * sizeof(float));
        hz_kclock_mark(s->kc, copy_cost(HZ_KR_MEMSET, grads_n, 4));
    }
    float *slot = op_slot(c, s, o);
    cpu_block_params w = block_params(p, u, slot, 0), g = block_params(p, u, grads, 1);
    cpu_work ws = unit_work(s, p, u, o->micro);
    cpu_block_backward(d, u->window ? s->inv_freq_local : s->inv_freq, u->window, &w, &g,
                       boundary_at(p, s, u->layer, mtok), s->dgrad + mtok * C, &ws,
                       hz_unit_recompute(u), s->kc);
}

/* The gradients the unit's STORE_G copies, summed over the ranks (hz_backend.reduce): each
 * tensor's elements split among the ranks, every element summed in rank order; with several
 * hosts rank 0's sums are then summed over the hosts (hosts.h, in host order) and a resident
 * unit's total copied to the other ranks. */
static void cpu_reduce(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_backend *b = c->bk;
    const hz_plan *p = c->plan;
    const hz_unit *u = &p->units[o->unit];
    float **at = b->rank[rank].peer;
    int hosts = c->hosts.n > 1;
    cpu_ranks_meet(&b->meet); /* every rank's backward of the unit is done */
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *t = &p->tensors[u->first_tensor + k];
        if (!t->store_grad) continue;
        for (int r = 0; r < b->rank_n; r++) at[r] = op_grads(&b->rank[r], p, o, NULL) + t->grad_n;
        cpu_ranks_sum(&b->meet, rank, at, t->rows * t->cols, u->resident && !hosts);
    }
    if (hosts) {
        cpu_ranks_meet(&b->meet); /* rank 0 holds the host's sums */
        float *g0 = op_grads(&b->rank[0], p, o, NULL), *own = op_grads(&b->rank[rank], p, o, NULL);
        for (int k = 0; k < u->tensor_n; k++) {
            const hz_tensor *t = &p->tensors[u->first_tensor + k];
            if (!t->store_grad) continue;
            if (rank == 0) hz_hosts_sum_f32(&c->hosts, g0 + t->grad_n, t->rows * t->cols);
        }
        cpu_ranks_meet(&b->meet); /* rank 0 holds the run's sums */
        for (int k = 0; rank > 0 && u->resident && k < u->tensor_n; k++) {
            const hz_tensor *t = &p->tensors[u->first_tensor + k];
            if (t->store_grad)
                memcpy(own + t->grad_n, g0 + t->grad_n, (size_t)(t->rows * t->cols) * 4);
        }
    }
    cpu_ranks_meet(&b->meet); /* every sum is written */
}

/* The unit's gradients to where its update reads them, and their squared norm: every rank's
 * resident copy is updated, but rank 0 alone holds (and copies to the host) a streamed
 * unit's sum, and rank 0 alone counts the norm. */
static void op_store_g(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_state *s = rank_state(c, rank);
    const hz_plan *p = c->plan;
    const hz_unit *u = &p->units[o->unit];
    if (rank > 0 && !u->resident) return;
    const float *grads = op_grads(s, p, o, NULL);
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *t = &p->tensors[u->first_tensor + k];
        if (!t->store_grad) continue;
        const float *src = grads + t->grad_n;
        int64_t n = t->rows * t->cols;
        if (rank == 0) {
            double ss = 0.0;
            for (int64_t e = 0; e < n; e++) ss += (double)src[e] * src[e];
            s->sumsq += ss;
            hz_kclock_mark(s->kc, copy_cost(HZ_KR_GRAD_NORM, n, 4));
        }
        if (u->held) {
            continue; /* they wait in GHOLD for the next step's FETCH_G */
        } else if (u->resident) {
            memcpy(s->res_g + u->res_g_n + t->grad_n, src, (size_t)n * sizeof(float));
            hz_kclock_mark(s->kc, copy_cost(HZ_KR_COPY_D2D, n, 8));
        } else if (c->store.grad_bf16) {
            uint16_t *g = (uint16_t *)c->store.g + t->host_n;
            for (int64_t e = 0; e < n; e++) g[e] = hz_bf16_from_f32(src[e]);
            hz_kclock_mark(s->kc, copy_cost(HZ_KR_COPY_D2H, n, 2));
        } else {
            memcpy((float *)c->store.g + t->host_n, src, (size_t)n * sizeof(float));
            hz_kclock_mark(s->kc, copy_cost(HZ_KR_COPY_D2H, n, 4));
        }
    }
}

/* A held unit's gradients of the step before, to the staging slot its update reads (rank
 * 0's, which hold their sum: exec.c issues it there alone). */
static void op_fetch_g(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_state *s = rank_state(c, rank);
    const hz_unit *u = &c->plan->units[o->unit];
    memcpy(c->gstage[o->gslot], s->hold + u->hold_n,
           (size_t)hz_unit_grads_n(c->plan->tensors, u) * sizeof(float));
    hz_kclock_mark(s->kc, copy_cost(HZ_KR_COPY_D2H, hz_unit_grads_n(c->plan->tensors, u), 4));
}

/* The rank's boundary o->bnd of its whole share of the step, one copy each way. */
static void op_store_b(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_state *s = rank_state(c, rank);
    int64_t n = s->tokens * c->plan->dims.C;
    memcpy(s->host_boundary + o->bnd * n, boundary_at(c->plan, s, o->bnd, 0),
           (size_t)n * sizeof(float));
    hz_kclock_mark(s->kc, copy_cost(HZ_KR_COPY_D2H, n, 4));
}

static void op_load_b(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_state *s = rank_state(c, rank);
    int64_t n = s->tokens * c->plan->dims.C;
    memcpy(boundary_at(c->plan, s, o->bnd, 0), s->host_boundary + o->bnd * n,
           (size_t)n * sizeof(float));
    hz_kclock_mark(s->kc, copy_cost(HZ_KR_COPY_H2D, n, 4));
}

static void cpu_wait_op(hz_ctx *c, int rank, int op)
{
    (void)c;
    (void)op; /* ops ran synchronously when issued */
}

static void cpu_step_result(hz_ctx *c, int rank, double *loss_sum, double *sumsq)
{
    cpu_state *s = rank_state(c, rank);
    *loss_sum = s->loss_sum;
    *sumsq = s->sumsq;
}

/* Forward only, on the rank's share of the tokens: every unit in forward order through
 * weight slot 0, then the head loss. */
static double cpu_eval(hz_ctx *c, int rank, const int32_t *inputs, const int32_t *targets,
                       float *logits)
{
    cpu_state *s = rank_state(c, rank);
    stage_tokens(s, inputs, targets);
    const hz_plan *p = c->plan;
    const hz_dims *d = &p->dims;
    int64_t N = d->micro_tokens;
    double sum = 0.0;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        float *slot = u->resident ? s->res_slot : s->wslot[0];
        load_unit(c, s, u, slot);
        for (int m = 0; m < s->n_micro; m++) {
            if (u->kind != HZ_HEAD) {
                forward_unit(c, s, u, m, slot);
                continue;
            }
            const float *x = boundary_at(p, s, d->L, (int64_t)m * N);
            sum += cpu_head_loss(d, tensor_at(p, u, HZ_FINAL_NORM, slot, 0),
                                 tensor_at(p, u, HZ_LM_HEAD, slot, 0), x,
                                 s->targets + (int64_t)m * N, 0.0f, NULL, NULL, NULL,
                                 s->head_mem, 0, logits ? logits + (int64_t)m * N * d->V : NULL,
                                 NULL);
        }
    }
    return sum;
}

/* The arena mirrors of all ranks, in bytes (each rank's is the same). */
static int64_t arena_bytes(const cpu_backend *b)
{
    int64_t sum = 0;
    for (int r = 0; r < b->rank_n; r++) sum += b->rank[r].arena_bytes;
    return sum;
}

static void cpu_report(hz_ctx *c, FILE *out)
{
    const cpu_backend *b = c->bk;
    const int64_t planned = hz_cpu_mirror_bytes(c->plan);
    if (b->rank_n > 1)
        fprintf(out, "cpu backend: arena mirrored in fp32 host memory: %lld bytes, %d ranks of "
                     "%lld (planned %lld each; the GPU plan is %lld bytes on each GPU in "
                     "bf16/fp32)\n",
                (long long)arena_bytes(b), b->rank_n, (long long)b->rank[0].arena_bytes,
                (long long)planned, (long long)c->plan->gpu_bytes);
    else
        fprintf(out, "cpu backend: arena mirrored in fp32 host memory: %lld bytes (planned "
                     "%lld; the GPU plan is %lld bytes in bf16/fp32)\n",
                (long long)arena_bytes(b), (long long)planned, (long long)c->plan->gpu_bytes);
    char wait[96];
    cpu_omp_wait(wait, sizeof wait);
    fprintf(out, "cpu backend: OpenMP threads wait by %s (OMP_WAIT_POLICY or GOMP_SPINCOUNT "
                 "in the environment decide instead)\n", wait);
}

/* The mirrors of all ranks, planned (hz_cpu_mirror_bytes, one a rank) beside allocated. */
static int cpu_memory(hz_ctx *c, hz_mem_line *out)
{
    const cpu_backend *b = c->bk;
    out[0] = (hz_mem_line){"arena (fp32 host mirror)", b->rank_n * hz_cpu_mirror_bytes(c->plan),
                           arena_bytes(b)};
    return 1;
}

static void rank_free(const hz_plan *p, cpu_state *s)
{
    const hz_region *r = p->regions;
    for (int i = 0; s->wslot && i < r[HZ_WSLOT].count; i++) free(s->wslot[i]);
    for (int i = 0; s->gslot && i < r[HZ_GSLOT].count; i++) free(s->gslot[i]);
    free(s->wslot);
    free(s->gslot);
    free(s->ghead);
    free(s->res_mem);
    free(s->hold);
    free(s->res_slot);
    free(s->res_gblock);
    free(s->res_ghead);
    free(s->saved);
    if (s->res_pool) hz_pool_free(s->res_pool);
    free(s->boundary);
    free(s->host_boundary);
    free(s->dgrad);
    free(s->work_mem);
    free(s->head_mem);
    free(s->inv_freq);
    free(s->inv_freq_local);
    free(s->inputs);
    free(s->targets);
    free(s->op_t0);
    free(s->op_t1);
    free(s->peer);
}

static void cpu_destroy(hz_ctx *c)
{
    cpu_backend *b = c->bk;
    if (!b) return;
    for (int r = 0; b->rank && r < b->rank_n; r++) rank_free(c->plan, &b->rank[r]);
    if (b->rank) cpu_ranks_destroy(&b->meet);
    free(b->rank);
    free(b);
    c->bk = NULL;
}

const hz_backend hz_backend_impl = {
    .name = "cpu",
    .caps = &hz_backend_caps[HZ_BACKEND_CPU],
    .host_pin = NULL, /* host memory is all there is */
    .host_unpin = NULL,
    .init = cpu_init,
    .begin_step = cpu_begin_step,
    .op_begin = cpu_op_begin,
    .ops = {[HZ_LOAD_W] = op_load_w, [HZ_FWD] = op_fwd, [HZ_LOSS] = op_loss, [HZ_BWD] = op_bwd,
            [HZ_STORE_G] = op_store_g, [HZ_FETCH_G] = op_fetch_g, [HZ_OPT] = cpu_op_opt, [HZ_STORE_B] = op_store_b,
            [HZ_LOAD_B] = op_load_b},
    .op_end = cpu_op_end,
    .wait_op = cpu_wait_op,
    .reduce = cpu_reduce,
    .step_result = cpu_step_result,
    .op_times = cpu_op_times,
    .eval = cpu_eval,
    .report = cpu_report,
    .memory = cpu_memory,
    .home_copy = cpu_home_copy,
    .device = NULL, /* no device to name or to --probe */
    .probe = NULL,
    .kprof_begin = cpu_kprof_begin,
    .kprof_end = cpu_kprof_end,
    .destroy = cpu_destroy,
};
