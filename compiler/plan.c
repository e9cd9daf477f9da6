/* compiler/plan.c - the planner. Every decision about memory and order is made here,
 * unit-tested (tests/test_plan.c), and only rendered by the templates:
 *   host store: SoA arrays w (bf16), lo (int16), m, v (in training.optimizer_state's
 *     precision, with int8's block scales), g (fp32 or bf16), each holding the units'
 *     parameters contiguously in forward order (embed, blocks, head);
 *   GPU arena: fixed regions (hz_tables.h HZ_REGION_KINDS), sized by the largest unit
 *     and the token batch, never by the number of layers (except the boundary store);
 *   step schedule: the op list with streams, slots and the events each op waits on
 *     (compiler/plan_sched.c). */
#include "plan.h"

#include "../runtime/hz_layout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int64_t align_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

void *plan_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "hzc: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- units and tensors ---- */

typedef struct builder {
    hzc_plan *plan;
    int64_t host_n;   /* next free host store element */
} builder;

/* Where a tensor ends in its unit's weight slot and gradients (aligned): the next one
 * starts there. */
static int64_t slot_end(const hz_tensor *t)
{
    return align_up(t->slot_n + t->rows * t->cols, PLAN_ALIGN_N);
}

static hz_tensor *add_tensor(builder *b, hz_unit *u, int kind, int layer, int64_t rows,
                             int64_t cols, int decay)
{
    hzc_plan *pl = b->plan;
    hz_tensor *t = &pl->tensors[pl->p.tensor_n++];
    int64_t n = rows * cols;
    t->kind = kind;
    t->layer = layer;
    t->rows = rows;
    t->cols = cols;
    t->decay = decay;
    t->store_grad = 1;
    t->res_n = -1;
    /* slot and grad offsets: packed after the unit's previous tensor */
    int64_t off = u->tensor_n > 0 ? slot_end(t - 1) : 0;
    t->slot_n = off;
    t->grad_n = off;
    t->host_n = b->host_n;
    b->host_n += align_up(n, PLAN_ALIGN_N);
    u->tensor_n++;
    u->params_n += n;
    return t;
}

static hz_unit *begin_unit(builder *b, int kind, int layer)
{
    hzc_plan *pl = b->plan;
    hz_unit *u = &pl->units[pl->p.unit_n++];
    u->kind = kind;
    u->layer = layer;
    u->first_tensor = pl->p.tensor_n;
    u->host_n = b->host_n;
    u->grad_region = kind == HZ_BLOCK ? HZ_GSLOT : HZ_GHEAD;
    return u;
}

static void end_unit(builder *b, hz_unit *u) { u->padded_n = b->host_n - u->host_n; }

/* Elements a unit occupies in a weight slot or gradient region. */
static int64_t unit_slot_n(const hzc_plan *pl, const hz_unit *u)
{
    int64_t n = 0;
    for (int i = 0; i < u->tensor_n; i++) {
        int64_t end = slot_end(&pl->tensors[u->first_tensor + i]);
        if (end > n) n = end;
    }
    return n;
}

static void build_units(const hzc_spec *s, hzc_plan *pl)
{
    builder b = {pl, 0};
    int64_t C = s->C, A = s->NH * s->HD, KV = s->NKV * s->HD, QKV = A + 2 * KV;
    int gemma = s->family == FAMILY_GEMMA3; /* four norms a block: the two outputs' too */
    pl->units = plan_xcalloc((size_t)s->L + 2, sizeof(hz_unit));
    pl->tensors = plan_xcalloc((size_t)s->L * 12 + 4, sizeof(hz_tensor));

    hz_unit *emb = begin_unit(&b, HZ_EMBED, -1);
    hz_tensor *wte = add_tensor(&b, emb, HZ_WTE, -1, s->V, C, 1);
    end_unit(&b, emb);

    for (int l = 0; l < s->L; l++) {
        hz_unit *u = begin_unit(&b, HZ_BLOCK, l);
        add_tensor(&b, u, HZ_ATTN_NORM, l, C, 1, 0);
        add_tensor(&b, u, HZ_WQKV, l, QKV, C, 1);
        if (s->qkv_bias) add_tensor(&b, u, HZ_BQKV, l, QKV, 1, 0);
        if (s->qk_norm) {
            add_tensor(&b, u, HZ_Q_NORM, l, s->HD, 1, 0);
            add_tensor(&b, u, HZ_K_NORM, l, s->HD, 1, 0);
        }
        add_tensor(&b, u, HZ_WO, l, C, A, 1);
        if (gemma) add_tensor(&b, u, HZ_ATTN_POST_NORM, l, C, 1, 0);
        add_tensor(&b, u, HZ_MLP_NORM, l, C, 1, 0);
        add_tensor(&b, u, HZ_WGU, l, 2 * s->F, C, 1);
        add_tensor(&b, u, HZ_WDOWN, l, C, s->F, 1);
        if (gemma) add_tensor(&b, u, HZ_MLP_POST_NORM, l, C, 1, 0);
        u->window = s->sliding_window > 0 && s->sliding[l] ? s->sliding_window : 0;
        end_unit(&b, u);
    }

    hz_unit *head = begin_unit(&b, HZ_HEAD, -1);
    add_tensor(&b, head, HZ_FINAL_NORM, -1, C, 1, 0);
    if (s->tied) {
        /* The tied lm_head is the embedding's store: the head streams it and accumulates
         * its gradient, which the embedding's backward adds to and stores. */
        hz_tensor *lm = &pl->tensors[pl->p.tensor_n++];
        *lm = *wte;
        lm->kind = HZ_LM_HEAD;
        lm->slot_n = slot_end(lm - 1); /* after final_norm */
        lm->grad_n = lm->slot_n;
        lm->store_grad = 0;
        lm->res_n = -1;
        head->tensor_n++;
        wte->grad_n = lm->grad_n; /* embed backward accumulates onto the head's lm_head grad */
    } else {
        add_tensor(&b, head, HZ_LM_HEAD, -1, s->V, C, 1);
    }
    end_unit(&b, head);
    pl->p.host_store_n = b.host_n;
    for (int i = 0; i < pl->p.unit_n; i++) {
        hz_unit *u = &pl->units[i];
        pl->p.params_n += u->params_n;
        u->span_n = unit_slot_n(pl, u);
        u->res_n = u->res_g_n = u->hold_n = -1;
        u->keep_slot = u->mlp_out_slot = -1;
    }
}

/* ---- residency: which units live on the GPU, which blocks keep their activations ---- */

/* Gradient places of the resident (HELD 0) or held (1) units, head first, so a tied
 * embedding takes the head's (it accumulates onto the head's lm_head gradient, as in
 * GHEAD): res_g_n or hold_n, each unit's span aligned. Returns the elements they take; a
 * held plan's fetch_n is the most a held unit's FETCH_G copies (hz_unit_grads_n). */
static int64_t place_grads(hzc_plan *pl, int held)
{
    hz_plan *p = &pl->p;
    hz_unit *head = &pl->units[p->unit_n - 1], *emb = &pl->units[0];
    int64_t at = 0;
    for (int i = p->unit_n - 1; i >= 0; i--) {
        hz_unit *u = &pl->units[i];
        if (!(held ? u->held : u->resident)) continue;
        int64_t *off = held ? &u->hold_n : &u->res_g_n;
        if (u == emb && p->dims.tied) {
            *off = held ? head->hold_n : head->res_g_n;
            continue;
        }
        *off = at;
        at += align_up(u->span_n, PLAN_ALIGN_N);
    }
    for (int i = 0; held && i < p->unit_n; i++) {
        int64_t n = hz_unit_grads_n(pl->tensors, &pl->units[i]);
        if (pl->units[i].held && n > p->fetch_n) p->fetch_n = n;
    }
    return at;
}

/* Blocks 0..R-1 (and with ENDS the embedding and the head, together, as a tied head reads
 * the embedding's weights) become resident; blocks L-K..L-1 keep their activations, and of
 * the others (with post norms) blocks 0..MO-1 their MLP outputs; the
 * streamed blocks among 0..G-1 (and with GENDS the streamed ends, together) hold their
 * gradients on the GPU. Resident w, lo, m, v follow the host order of the resident units;
 * resident and held gradients take each unit's slot span. */
static void plan_residency(hzc_plan *pl, int64_t R, int ends, int64_t K, int64_t MO, int64_t G,
                           int gends)
{
    hz_plan *p = &pl->p;
    int64_t L = p->dims.L, res = 0;
    p->keep_n = 0;
    p->mlp_out_n = 0;
    p->fetch_n = 0;
    for (int i = 0; i < p->unit_n; i++) {
        hz_unit *u = &pl->units[i];
        u->resident = u->kind == HZ_BLOCK ? u->layer < R : ends;
        u->held = !u->resident && (u->kind == HZ_BLOCK ? u->layer < G : gends);
        u->keep = u->kind == HZ_BLOCK && u->layer >= L - K;
        u->keep_slot = u->keep ? p->keep_n++ : -1;
        u->keep_mlp_out = u->kind == HZ_BLOCK && !u->keep && u->layer < MO && p->dims.post_norms;
        u->mlp_out_slot = u->keep_mlp_out ? p->mlp_out_n++ : -1;
        u->res_n = u->res_g_n = u->hold_n = -1;
        if (!u->resident) continue;
        u->res_n = res;
        res += u->padded_n;
    }
    hz_unit *emb = &pl->units[0];
    int64_t res_g = place_grads(pl, 0);
    p->hold_n = place_grads(pl, 1);
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &pl->units[i];
        for (int k = 0; k < u->tensor_n; k++) {
            hz_tensor *t = &pl->tensors[u->first_tensor + k];
            /* a tensor outside its unit's own range is the tied lm_head: the embedding's */
            const hz_unit *o = t->host_n >= u->host_n && t->host_n < u->host_n + u->padded_n
                                   ? u
                                   : emb;
            t->res_n = u->resident ? o->res_n + (t->host_n - o->host_n) : -1;
        }
    }
    p->resident_n = res;
    p->resident_g_n = res_g;
}

/* ---- the GPU arena ---- */

static void set_region(hzc_plan *pl, int kind, int count, int64_t slot_bytes)
{
    hz_region *r = &pl->regions[kind];
    r->kind = kind;
    r->count = count;
    r->slot_bytes = align_up(slot_bytes, PLAN_ALIGN_BYTES);
    r->bytes = r->slot_bytes * count;
}

static void build_arena(hzc_plan *pl)
{
    const hz_dims *d = &pl->p.dims;
    /* one GPU's arena: the step-sized regions hold its own share of the step */
    int64_t tokens = hz_gpu_step_tokens(d), n_micro = hz_gpu_n_micro(d);
    /* the slots serve the streamed units only */
    int64_t max_unit = 0, max_block = 0, head_grad = 0, host_grad = 0;
    for (int i = 0; i < pl->p.unit_n; i++) {
        const hz_unit *u = &pl->units[i];
        if (u->resident) continue;
        int64_t n = u->span_n;
        if (n > max_unit) max_unit = n;
        if (u->held) continue; /* its gradients have their own place */
        if (u->kind == HZ_BLOCK && n > max_block) max_block = n;
        if (u->kind != HZ_BLOCK && n > head_grad) head_grad = n;
        if (n > host_grad) host_grad = n;
    }
    set_region(pl, HZ_WSLOT, max_unit ? pl->n_wslots : 0, 2 * max_unit);
    set_region(pl, HZ_GSLOT, max_block ? pl->n_gslots : 0, 4 * max_block);
    set_region(pl, HZ_GHEAD, head_grad ? 1 : 0, 4 * head_grad);
    set_region(pl, HZ_GSTAGE, pl->p.host_grad_bf16 && host_grad ? 1 : 0, 2 * host_grad);
    set_region(pl, HZ_BOUNDARY, pl->p.boundary_on_host ? 2 : (int)d->L + 1,
               2 * tokens * d->C);
    set_region(pl, HZ_DGRAD, 1, 2 * tokens * d->C);
    set_region(pl, HZ_TOKENS, 1, 2 * 4 * tokens);
    /* the buffer lists of runtime/hz_layout.h, bf16 elements of 2 bytes */
    pl->p.work_bytes = hz_work_layout(d, 2, NULL);
    set_region(pl, HZ_WORK, 1, pl->p.work_bytes);
    set_region(pl, HZ_LOSSBUF, 1, hz_loss_layout(d, 2, NULL));
    set_region(pl, HZ_SCALARS, 1, 8 * HZ_SCALAR_N);
    set_region(pl, HZ_RESIDENT, 1,
               hz_resident_layout(pl->p.resident_n, pl->p.resident_g_n, pl->p.optimizer_state,
                                  NULL));
    pl->p.saved_bytes = hz_saved_layout(d, 2);
    set_region(pl, HZ_SAVED, pl->p.keep_n * (int)n_micro, pl->p.saved_bytes);
    set_region(pl, HZ_GHOLD, pl->p.hold_n ? 1 : 0, 4 * pl->p.hold_n);
    pl->p.mlp_out_bytes = hz_mlpout_layout(d, 2, NULL);
    set_region(pl, HZ_MLPOUT, pl->p.mlp_out_n * (int)n_micro, pl->p.mlp_out_bytes);
    int64_t off = 0;
    for (int k = 0; k < HZ_REGION_KIND_N; k++) {
        pl->regions[k].offset_bytes = off;
        off += pl->regions[k].bytes;
    }
    pl->p.gpu_bytes = off;
}

static void plan_host(hzc_plan *pl, int grad_bf16)
{
    pl->p.host_grad_bf16 = grad_bf16;
    /* only the streamed units' pages of the arrays are backed (runtime/hz_layout.h) */
    hz_plan q = pl->p;
    q.units = pl->units;
    pl->p.host_store_bytes = hz_store_backed_bytes(&q, grad_bf16 ? 2 : 4);
    /* pinned staging: the host's share of the step's tokens (inputs, targets) and per-token
     * losses (the whole step's on one host); with host boundaries, boundaries 0..L-1 of it
     * in bf16. With several GPUs each uses its own share of them, and GPU 0 alone fetches
     * the held units' gradients (after their reduce), so nothing here is per GPU but the
     * scalars below */
    const hz_dims *d = &pl->p.dims;
    int64_t host_tokens = d->step_tokens / hz_hosts(d);
    pl->host_extra_bytes = host_tokens * (4 + 4 + 4);
    if (pl->p.boundary_on_host) pl->host_extra_bytes += d->L * host_tokens * d->C * 2;
    /* each GPU's step scalars (the loss and norm sums, the non-finite count) come back
     * through pinned memory of the SCALARS region's size */
    pl->host_extra_bytes += hz_gpus(d) * align_up(8 * HZ_SCALAR_N, PLAN_ALIGN_BYTES);
    /* held units: the two fp32 staging slots their gradients reach the host optimizer in */
    pl->host_extra_bytes += 2 * hz_stage_slot_bytes(&pl->p);
    pl->p.host_bytes = pl->p.host_store_bytes + pl->host_extra_bytes;
}

static void fmt_gib(char *buf, size_t n, int64_t bytes)
{
    snprintf(buf, n, "%.2f GiB", (double)bytes / (1024.0 * 1024.0 * 1024.0));
}

/* Where a plan: choice was written: FILE:LINE:COL, or the spec's name (an override). */
static void choice_at(FILE *err, const hzc_spec *s, const spec_pos *at)
{
    if (at->line > 0)
        fprintf(err, "%s:%d:%d: ", s->path, at->line, at->col);
    else
        fprintf(err, "%s: ", s->name);
}

/* One plan: choice's share of a GPU overflow, at the place it was written. */
static void over_choice(FILE *err, const hzc_spec *s, const spec_pos *at, const char *key,
                        int64_t value, int64_t bytes, int64_t over)
{
    if (value <= 0) return;
    char b[32], o[32], each[32];
    fmt_gib(b, sizeof b, bytes);
    fmt_gib(o, sizeof o, over);
    fmt_gib(each, sizeof each, bytes / value);
    choice_at(err, s, at);
    fprintf(err, "note: %s: %lld takes %s (%s each); the plan is %s over: lower it by %lld\n",
            key, (long long)value, b, each, o,
            (long long)((over + bytes / value - 1) / (bytes / value)));
}

/* The step split over N GPUs (of one host, or all the hosts') needs a multiple of N
 * micro-batches: say so, where the GPUs (or with several hosts, the hosts) were given, with
 * the tokens_per_step (and, where one exists, tokens_per_micro_batch) that would give one. */
static void gpus_error(FILE *err, const hzc_spec *s, int64_t n)
{
    int64_t micro = s->micro_tokens, n_micro = s->step_tokens / micro, each = n * micro;
    int hosts = s->plan.hosts > 1;
    const spec_pos *at = hosts ? &s->plan.pos_hosts : &s->plan.pos_gpus;
    const char *key = hosts ? "hosts" : "gpus";
    long long given = hosts ? (long long)s->plan.hosts : (long long)n;
    if (at->line == 0) /* hzc's --gpus or --hosts */
        fprintf(err, "%s: error: --%s %lld", s->name, key, given);
    else if (at->line > 0)
        fprintf(err, "%s:%d:%d: error: plan.%s: %lld", s->path, at->line, at->col, key, given);
    else /* an override's */
        fprintf(err, "%s: error: plan.%s: %lld", s->name, key, given);
    if (hosts)
        fprintf(err, " (of %lld GPU%s each)", (long long)(n / s->plan.hosts),
                n / s->plan.hosts == 1 ? "" : "s");
    int64_t below = s->step_tokens / each * each, above = below + each;
    fprintf(err, " splits the step's %lld micro-batches over %lld GPUs, which needs a multiple "
                 "of %lld: set shape.tokens_per_step to ",
            (long long)n_micro, (long long)n, (long long)n);
    if (below > 0) fprintf(err, "%lld or ", (long long)below);
    fprintf(err, "%lld (a multiple of %lld x %lld tokens)", (long long)above, (long long)n,
            (long long)micro);
    /* a micro-batch of whole sequences that makes a multiple of N: the largest below the
     * spec's, else the smallest above it */
    int64_t seqs = s->step_tokens / s->T, best = 0;
    for (int64_t per = 1; seqs % n == 0 && per <= seqs / n; per++)
        if ((seqs / n) % per == 0 && (best == 0 || per * s->T <= micro)) best = per * s->T;
    if (best > 0)
        fprintf(err, ", or shape.tokens_per_micro_batch to %lld (%lld micro-batches, %lld a GPU)",
                (long long)best, (long long)(s->step_tokens / best),
                (long long)(s->step_tokens / best / n));
    fprintf(err, "\n");
}

int plan_build(const hzc_spec *s, const plan_limits *lim, hzc_plan *pl, FILE *err)
{
    memset(pl, 0, sizeof(*pl));
    hz_dims *d = &pl->p.dims;
    *d = (hz_dims){.V = s->V, .C = s->C, .L = s->L, .NH = s->NH, .NKV = s->NKV, .HD = s->HD,
                   .F = s->F, .T = s->T, .micro_tokens = s->micro_tokens,
                   .step_tokens = s->step_tokens, .eps = (float)s->norm_eps,
                   .rope_theta = (float)s->rope_theta, .rope_llama3 = s->rope_llama3,
                   .rope_factor = (float)s->rope_factor,
                   .rope_low_freq_factor = (float)s->rope_low_freq_factor,
                   .rope_high_freq_factor = (float)s->rope_high_freq_factor,
                   .rope_original_max_pos = (int)s->rope_original_max_pos, .tied = s->tied,
                   .qkv_bias = s->qkv_bias, .qk_norm = s->qk_norm,
                   .embed_scale = 1.0f, .attn_scale = (float)(1.0 / sqrt((double)s->HD)),
                   .rope_local_theta = (float)s->rope_local_theta};
    if (s->family == FAMILY_GEMMA3) {
        /* transformers: (1 + w) norms, sandwich norms, gelu_pytorch_tanh, the bf16
         * normalizer, scaling = query_pre_attn_scalar ** -0.5 as a python float */
        d->norm_offset = 1.0f;
        d->post_norms = 1;
        d->geglu = 1;
        d->embed_scale = hz_gemma_embed_scale(s->C);
        d->attn_scale = (float)pow(s->query_pre_attn_scalar, -0.5);
        d->rope_linear = s->rope_linear ? (float)s->rope_factor : 0.0f;
        d->window = s->sliding_window;
        for (int64_t l = 0; l < s->L; l++) d->window_n += s->sliding_window > 0 && s->sliding[l];
    }
    d->B = s->micro_tokens / s->T;
    d->n_micro = s->step_tokens / s->micro_tokens;
    d->gpus = s->plan.gpus > 1 ? s->plan.gpus : 1;
    d->hosts = s->plan.hosts > 1 ? s->plan.hosts : 1;
    d->chunk_tokens = s->micro_tokens;
    while (d->chunk_tokens * d->V * 2 > PLAN_CHUNK_BYTES && d->chunk_tokens % 2 == 0 &&
           d->chunk_tokens > PLAN_CHUNK_MIN_TOKENS)
        d->chunk_tokens /= 2;
    pl->p.train = (hz_train_defaults){(float)s->lr, (float)s->beta1, (float)s->beta2,
                                      (float)s->adam_eps, (float)s->weight_decay,
                                      (float)s->grad_clip, (float)s->min_lr_ratio,
                                      s->warmup_steps, s->decay_steps, s->seed};
    pl->p.spec_name = s->name;
    pl->p.family = spec_family_name(s->family);
    pl->p.optimizer_state = s->optimizer_state;
    build_units(s, pl);

    /* The plan: section's choices (spec.h spec_plan; all 0/auto without one). */
    const spec_plan *c = &s->plan;
    plan_residency(pl, c->resident_blocks, c->resident_ends, c->keep_blocks,
                   c->keep_mlp_out_blocks, c->gpu_grad_blocks, c->gpu_grad_ends);
    int boundaries = lim->boundaries != PLAN_BOUNDARIES_AUTO ? lim->boundaries : c->boundaries;

    /* Host gradients: fp32 when the whole plan fits in 85% of the host budget (the rest
     * is the OS, the page cache and the data), else bf16 (14 bytes per parameter), unless
     * plan.host_gradients says. GPU: three weight slots, then two (which still overlap one
     * copy with one compute), unless plan.weight_slots says; then, unless the boundaries
     * were pinned, the boundaries move to the host (which changes the host plan, so both
     * are planned again). */
    pl->p.boundary_on_host = boundaries == PLAN_BOUNDARIES_HOST;
    pl->n_gslots = 2;
    for (;;) {
        plan_host(pl, c->host_grad == SPEC_GRAD_BF16);
        if (c->host_grad == SPEC_GRAD_AUTO && lim->host_bytes &&
            pl->p.host_bytes > lim->host_bytes / 100 * 85)
            plan_host(pl, 1);
        pl->n_wslots = c->weight_slots ? c->weight_slots : 3;
        build_arena(pl);
        if (!c->weight_slots && lim->gpu_bytes && pl->p.gpu_bytes > lim->gpu_bytes) {
            pl->n_wslots = 2;
            build_arena(pl);
        }
        if (lim->gpu_bytes && pl->p.gpu_bytes > lim->gpu_bytes &&
            boundaries == PLAN_BOUNDARIES_AUTO && !pl->p.boundary_on_host) {
            pl->p.boundary_on_host = 1;
            continue;
        }
        break;
    }
    plan_schedule(pl, s->grad_clip > 0);
    pl->p.units = pl->units;
    pl->p.tensors = pl->tensors;
    pl->p.regions = pl->regions;
    pl->p.ops = pl->ops;

    int bad = 0;
    char need[32], have[32], over[32];
    if (c->keep_mlp_out_blocks > 0 && !d->post_norms) {
        choice_at(err, s, &c->pos_keep_mlp_out);
        fprintf(err, "error: plan.keep_mlp_outputs: %lld, but %s has no norm after its MLP: its "
                     "recompute stops before the down projection already; remove the key\n",
                (long long)c->keep_mlp_out_blocks, spec_family_name(s->family));
        bad = 1;
    }
    if (d->n_micro % (d->gpus * d->hosts) != 0) {
        gpus_error(err, s, d->gpus * d->hosts);
        bad = 1;
    }
    if (lim->gpu_bytes && pl->p.gpu_bytes > lim->gpu_bytes) {
        fmt_gib(need, sizeof need, pl->p.gpu_bytes);
        fmt_gib(have, sizeof have, lim->gpu_bytes);
        fmt_gib(over, sizeof over, pl->p.gpu_bytes - lim->gpu_bytes);
        const hz_region *big = &pl->regions[HZ_BOUNDARY];
        const char *knob = "shape.tokens_per_step (the boundary activations of the whole step)";
        if (pl->regions[HZ_WORK].bytes + pl->regions[HZ_LOSSBUF].bytes > big->bytes)
            knob = "shape.tokens_per_micro_batch (the per-micro-batch workspace)";
        else if (boundaries == PLAN_BOUNDARIES_GPU)
            knob = "shape.tokens_per_step, or let the boundaries go to the host "
                   "(--boundaries auto)";
        int64_t res = pl->regions[HZ_RESIDENT].bytes, saved = pl->regions[HZ_SAVED].bytes;
        int64_t mo = pl->regions[HZ_MLPOUT].bytes;
        if (res + saved + mo > pl->p.gpu_bytes - lim->gpu_bytes) {
            /* the plan: section's choices overflow: name them, where they were written */
            fprintf(err,
                    "%s: error: the plan needs %s of GPU memory but --gpu-mem is %s (%s over)\n",
                    s->name, need, have, over);
            over_choice(err, s, &c->pos_resident_blocks, "plan.resident_blocks",
                        c->resident_blocks, res, pl->p.gpu_bytes - lim->gpu_bytes);
            over_choice(err, s, &c->pos_keep_blocks, "plan.keep_activations", c->keep_blocks,
                        saved, pl->p.gpu_bytes - lim->gpu_bytes);
            over_choice(err, s, &c->pos_keep_mlp_out, "plan.keep_mlp_outputs", pl->p.mlp_out_n,
                        mo, pl->p.gpu_bytes - lim->gpu_bytes);
        } else {
            fprintf(err,
                    "%s: error: the plan needs %s of GPU memory but --gpu-mem is %s (%s over); "
                    "lower %s\n",
                    s->name, need, have, over, knob);
        }
        bad = 1;
    }
    if (lim->host_bytes && pl->p.host_bytes > lim->host_bytes) {
        fmt_gib(need, sizeof need, pl->p.host_bytes);
        fmt_gib(have, sizeof have, lim->host_bytes);
        fmt_gib(over, sizeof over, pl->p.host_bytes - lim->host_bytes);
        fprintf(err,
                "%s: error: the plan needs %s of host memory but --host-mem is %s (%s over); "
                "the host store holds %.2f bytes per parameter with %s optimizer state: %suse a "
                "machine with more RAM or a smaller model\n",
                s->name, need, have, over, (double)pl->p.host_bytes / (double)pl->p.params_n,
                hz_optstate_names[pl->p.optimizer_state],
                pl->p.optimizer_state != HZ_OPTSTATE_INT8
                    ? "set training.optimizer_state: int8 (6.125 bytes per parameter before "
                      "gradients), or "
                    : "");
        bad = 1;
    }
    return bad;
}

void plan_free(hzc_plan *pl)
{
    free(pl->units);
    free(pl->tensors);
    free(pl->ops);
    memset(pl, 0, sizeof(*pl));
}

