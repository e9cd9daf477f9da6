/* tests/test_gpus.c - the plan and the step-time model for several GPUs of one host (data
 * parallel; docs/plan.md "Several GPUs of one host"): with N GPUs each runs n_micro / N
 * micro-batches, so the compute phases divide by N; each copies in every streamed unit's
 * weights, so h2d grows to the host's shared bound; GPU 0 alone sends the gradients home,
 * so d2h does not grow; the NCCL phase is the ring formula; the host bytes are one GPU's;
 * the arena is one GPU's with the step-sized regions holding its share; a count of GPUs
 * that does not divide the micro-batches is refused, naming the shapes that would work.
 * Run from the repository root. */
#include <stdlib.h>
#include <string.h>

#include "hz_layout.h"
#include "plan.h"
#include "spec.h"
#include "test.h"
#include "timemodel.h"

/* Plan S for GPUS GPUs (no memory limits) and predict it with C; 0, or -1 after a failed
 * check. */
static int plan_on(const hzc_spec *s, int64_t gpus, const tm_ceilings *c, hzc_plan *pl)
{
    plan_limits lim = {0, 0, PLAN_BOUNDARIES_AUTO};
    hzc_spec on = *s;
    on.plan.gpus = gpus;
    int bad = plan_build(&on, &lim, pl, stderr);
    tm_predict(&pl->p, c);
    CHECK(!bad, "%s on %lld GPUs plans", s->name, (long long)gpus);
    return bad ? -1 : 0;
}

static int close_to(double got, double want) { return fabs(got - want) <= 1e-12 * fabs(want); }

/* The NCCL phase by hand: (N - 1) / N of every streamed unit's stored fp32 gradients, twice
 * that for a resident unit, at the bus bandwidth. */
static double nccl_by_hand(const hz_plan *p, double n, double gbps)
{
    double bytes = 0;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        for (int k = 0; k < u->tensor_n; k++) {
            const hz_tensor *t = &p->tensors[u->first_tensor + k];
            if (t->store_grad)
                bytes += (u->resident ? 2.0 : 1.0) * (n - 1) / n * 4.0 * (double)(t->rows * t->cols);
        }
    }
    return bytes / (gbps * 1e9);
}

static int64_t ops_of(const hz_plan *p, int kind)
{
    int64_t n = 0;
    for (int i = 0; i < p->op_n; i++) n += p->ops[i].kind == kind;
    return n;
}

/* S on 1 GPU against N GPUs, with the rates C. */
static void check_split(const hzc_spec *s, int64_t n, const tm_ceilings *c)
{
    hzc_plan one, many;
    if (plan_on(s, 1, c, &one) != 0 || plan_on(s, n, c, &many) != 0) return;
    const hz_plan *a = &one.p, *b = &many.p;
    const double *pa = a->pred.phase_s, *pb = b->pred.phase_s;
    const char *name = s->name;
    CHECK(hz_gpus(&b->dims) == n && hz_gpu_n_micro(&b->dims) == a->dims.n_micro / n &&
              b->dims.n_micro == a->dims.n_micro && b->dims.step_tokens == a->dims.step_tokens,
          "%s, %lld GPUs: %lld micro-batches each of the step's %lld", name, (long long)n,
          (long long)hz_gpu_n_micro(&b->dims), (long long)b->dims.n_micro);
    /* compute: each GPU's share; the gradients' norm and casts, which one GPU runs on its
     * compute stream, are GPU 0's d2h stream's work with several */
    double ready_head = tm_grads_ready_seconds(a, c, 1), ready = tm_grads_ready_seconds(a, c, 0);
    CHECK(close_to(pb[HZ_PH_FWD], pa[HZ_PH_FWD] / (double)n) &&
              close_to(pb[HZ_PH_LOSS], (pa[HZ_PH_LOSS] - ready_head) / (double)n) &&
              close_to(pb[HZ_PH_BWD], (pa[HZ_PH_BWD] - ready) / (double)n),
          "%s, %lld GPUs: forward %.4f -> %.4f s, loss head %.4f -> %.4f s, backward %.4f -> "
          "%.4f s: 1/%lld each", name, (long long)n, pa[HZ_PH_FWD], pb[HZ_PH_FWD],
          pa[HZ_PH_LOSS], pb[HZ_PH_LOSS], pa[HZ_PH_BWD], pb[HZ_PH_BWD], (long long)n);
    CHECK(pb[HZ_PH_OPT] == pa[HZ_PH_OPT] && pb[HZ_PH_GPU_OPT] == pa[HZ_PH_GPU_OPT],
          "%s, %lld GPUs: host optimizer %.4f s and GPU optimizer %.4f s as one GPU's (run once; "
          "each GPU updates its own resident copy)", name, (long long)n, pb[HZ_PH_OPT],
          pb[HZ_PH_GPU_OPT]);
    /* h2d: GPU 0's bytes (all the weights, its share of tokens and boundaries), at its link or
     * its share of the host's total, whichever is less */
    int64_t h2d_a, d2h_a, h2d_b, d2h_b;
    hz_plan_pcie_bytes(a, &h2d_a, &d2h_a);
    hz_plan_pcie_bytes(b, &h2d_b, &d2h_b);
    double host = tm_host_h2d_gbps(c) * 1e9, own = c->h2d_gbps * 1e9, bh = (double)h2d_b;
    double want = bh / own > (double)n * bh / host ? bh / own : (double)n * bh / host;
    /* the bytes that follow the tokens: ids (8), and boundaries (2 C) per load_b, losses (4)
     * and boundaries per store_b; every GPU moves its share of them */
    int64_t tokens = a->dims.step_tokens, others = tokens - tokens / n, C = a->dims.C;
    int64_t h2d_tok = 8 + 2 * C * ops_of(a, HZ_LOAD_B), d2h_tok = 4 + 2 * C * ops_of(a, HZ_STORE_B);
    CHECK(h2d_b == h2d_a - h2d_tok * others && close_to(pb[HZ_PH_H2D], want),
          "%s, %lld GPUs: h2d %.4f s = max(%lld B / %.1f GB/s, %lld x %lld B / %.1f GB/s) = %.4f s "
          "(one GPU: %.4f s); every streamed weight to each GPU", name, (long long)n,
          pb[HZ_PH_H2D], (long long)h2d_b, own * 1e-9, (long long)n, (long long)h2d_b,
          host * 1e-9, want, pa[HZ_PH_H2D]);
    /* d2h: the gradients once, from GPU 0; only its own share of the per-token losses */
    CHECK(d2h_b == d2h_a - d2h_tok * others &&
              close_to(pb[HZ_PH_D2H], (double)d2h_b / (c->d2h_gbps * 1e9) + ready + ready_head),
          "%s, %lld GPUs: d2h %lld bytes = one GPU's %lld less the other GPUs' shares of the "
          "losses and boundaries (%.4f s, "
          "one GPU %.4f s)", name, (long long)n, (long long)d2h_b, (long long)d2h_a,
          pb[HZ_PH_D2H], pa[HZ_PH_D2H]);
    double nccl = nccl_by_hand(b, (double)n, tm_nccl_gbps(c));
    CHECK(pa[HZ_PH_NCCL] == 0 && nccl > 0 && close_to(pb[HZ_PH_NCCL], nccl) &&
              hz_plan_phase_n(a) == HZ_PHASE_N && hz_plan_phase_n(b) == HZ_PH_NCCL + 1,
          "%s, %lld GPUs: NCCL reduce %.5f s = (N-1)/N (x2 resident) x fp32 gradients / %.0f "
          "GB/s = %.5f s; none with one GPU, whose prediction has %d phases", name,
          (long long)n, pb[HZ_PH_NCCL], tm_nccl_gbps(c), nccl, HZ_PHASE_N);
    CHECK(b->pred.step_s <= a->pred.step_s && b->pred.step_s >= pb[HZ_PH_NCCL] &&
              b->pred.step_s >= pb[HZ_PH_H2D],
          "%s, %lld GPUs: step %.4f s <= one GPU's %.4f s, and at least each stream's", name,
          (long long)n, b->pred.step_s, a->pred.step_s);
    /* memory: the host store is shared; the arena is one GPU's, its step-sized regions
     * holding its share */
    int64_t sc = b->regions[HZ_SCALARS].bytes; /* each GPU's pinned step scalars */
    CHECK(b->host_bytes == a->host_bytes + (n - 1) * sc &&
              many.host_extra_bytes == one.host_extra_bytes + (n - 1) * sc,
          "%s, %lld GPUs: host bytes %lld = one GPU's + %lld x the %lld bytes of a GPU's step "
          "scalars (one store, the tokens' staging shared)", name, (long long)n,
          (long long)b->host_bytes, (long long)(n - 1), (long long)sc);
    static const int same[] = {HZ_WSLOT, HZ_GSLOT, HZ_GHEAD, HZ_GSTAGE, HZ_WORK, HZ_LOSSBUF,
                               HZ_SCALARS, HZ_RESIDENT, HZ_GHOLD};
    int equal = 1;
    for (size_t k = 0; k < sizeof same / sizeof *same; k++)
        equal &= b->regions[same[k]].bytes == a->regions[same[k]].bytes;
    static const int shared[] = {HZ_BOUNDARY, HZ_DGRAD, HZ_TOKENS};
    int share = 1;
    for (size_t k = 0; k < sizeof shared / sizeof *shared; k++)
        share &= b->regions[shared[k]].slot_bytes * n == a->regions[shared[k]].slot_bytes;
    CHECK(equal && share && b->gpu_bytes <= a->gpu_bytes,
          "%s, %lld GPUs: arena %lld bytes (one GPU %lld): slots, workspace and loss head the "
          "same, boundaries, dgrad and tokens 1/%lld", name, (long long)n,
          (long long)b->gpu_bytes, (long long)a->gpu_bytes, (long long)n);
    CHECK(ops_of(b, HZ_FWD) * n == ops_of(a, HZ_FWD) && ops_of(b, HZ_BWD) * n == ops_of(a, HZ_BWD) &&
              ops_of(b, HZ_LOAD_W) == ops_of(a, HZ_LOAD_W) && ops_of(b, HZ_OPT) == ops_of(a, HZ_OPT),
          "%s, %lld GPUs: each GPU's schedule: %lld fwd and %lld bwd ops (1/%lld), the same "
          "%lld load_w and %lld opt", name, (long long)n, (long long)ops_of(b, HZ_FWD),
          (long long)ops_of(b, HZ_BWD), (long long)n, (long long)ops_of(b, HZ_LOAD_W),
          (long long)ops_of(b, HZ_OPT));
    plan_free(&one);
    plan_free(&many);

    /* the same tokens per GPU: the step N times larger on N GPUs plans one GPU's arena */
    hzc_spec big = *s;
    big.step_tokens *= n;
    if (plan_on(s, 1, c, &one) != 0 || plan_on(&big, n, c, &many) != 0) return;
    CHECK(many.p.gpu_bytes == one.p.gpu_bytes &&
              close_to(many.p.pred.phase_s[HZ_PH_BWD],
                       one.p.pred.phase_s[HZ_PH_BWD] - tm_grads_ready_seconds(&one.p, c, 0)),
          "%s: %lld tokens a step on %lld GPUs: arena %lld bytes and backward %.4f s, as %lld "
          "tokens on one", name, (long long)big.step_tokens, (long long)n,
          (long long)many.p.gpu_bytes, many.p.pred.phase_s[HZ_PH_BWD], (long long)s->step_tokens);
    plan_free(&one);
    plan_free(&many);
}

/* With one GPU (--gpus 1 or the spec's plan.gpus: 1) the plan and its prediction are the
 * ones without it, to the bit. */
static void check_one(const hzc_spec *s, const tm_ceilings *c)
{
    hzc_plan a, b;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    hzc_spec one = *s;
    one.plan.gpus = 1;
    plan_build(s, &none, &a, stderr);
    plan_build(&one, &none, &b, stderr);
    tm_predict(&a.p, c);
    tm_predict(&b.p, c);
    CHECK(memcmp(&a.p.pred, &b.p.pred, sizeof a.p.pred) == 0 && a.p.gpu_bytes == b.p.gpu_bytes &&
              a.p.host_bytes == b.p.host_bytes && a.p.op_n == b.p.op_n && hz_gpus(&a.p.dims) == 1,
          "%s: plan.gpus 1 plans and predicts exactly as no plan.gpus (step %.6f s)", s->name,
          a.p.pred.step_s);
    plan_free(&a);
    plan_free(&b);
}

/* The host's shared bandwidth: with a host slower than N links, h2d grows with N, and the
 * critical path names it; a slow NCCL bus makes the reduce critical, named. */
static void check_bounds(const hzc_spec *s, const tm_ceilings *c)
{
    tm_ceilings tight = *c;
    tight.host_h2d_total_gbps = 80.0;
    hzc_plan one, two, four;
    if (plan_on(s, 1, &tight, &one) || plan_on(s, 2, &tight, &two) || plan_on(s, 4, &tight, &four))
        return;
    const double *p1 = one.p.pred.phase_s, *p2 = two.p.pred.phase_s, *p4 = four.p.pred.phase_s;
    CHECK(p4[HZ_PH_H2D] > p2[HZ_PH_H2D] && p2[HZ_PH_H2D] > p1[HZ_PH_H2D],
          "%s on a host of 80 GB/s in all: h2d %.3f s (1 GPU), %.3f s (2), %.3f s (4): the GPUs "
          "share the host", s->name, p1[HZ_PH_H2D], p2[HZ_PH_H2D], p4[HZ_PH_H2D]);
    tm_ceilings slow = tight;
    slow.host_h2d_total_gbps = 5.0;
    tm_predict(&four.p, &slow);
    char text[256];
    tm_critical_text(&four.p, text, sizeof text);
    CHECK(four.p.pred.critical == HZ_PH_H2D && strstr(text, "(4 GPUs share the host's 5.0 GB/s)"),
          "%s on 4 GPUs and a 5 GB/s host: h2d critical: %s", s->name, text);
    slow = *c;
    slow.nccl_busbw_gbps = 0.5;
    tm_predict(&four.p, &slow);
    tm_critical_text(&four.p, text, sizeof text);
    /* the sums share the d2h stream with its copies: the step is their sum */
    CHECK(four.p.pred.critical == HZ_PH_NCCL &&
              close_to(four.p.pred.step_s,
                       four.p.pred.phase_s[HZ_PH_NCCL] + four.p.pred.phase_s[HZ_PH_D2H]) &&
              strstr(text, "NCCL reduce: ") && strstr(text, "across 4 GPUs at 0.5 GB/s"),
          "%s on 4 GPUs and a 0.5 GB/s NCCL bus: the reduce sets the step: %s", s->name, text);
    plan_free(&one);
    plan_free(&two);
    plan_free(&four);
}

/* A plan's pinned staging that scales with the step's tokens: the ids and losses (12 bytes a
 * token) and, with host boundaries, L boundaries of C bf16 values a token. */
static int64_t host_staging(const hz_plan *p)
{
    int64_t t = p->dims.step_tokens;
    return t * 12 + (p->boundary_on_host ? p->dims.L * t * p->dims.C * 2 : 0);
}

/* Several hosts: S on H hosts of G GPUs each against one host of G. Each GPU runs n_micro /
 * (H G) micro-batches; each host's store is one host's, its token and boundary staging 1/H
 * of one host's; the network phase is 2 (H - 1) / H of
 * every unit's fp32 gradient bytes at the network's rate (the stated one where C has it);
 * the NCCL phase stays the G GPUs' of one host; a slow enough network sets the step. */
static void check_hosts(const hzc_spec *s, int64_t h, int64_t g, const tm_ceilings *c)
{
    hzc_spec on = *s;
    on.plan.hosts = h;
    hzc_plan one, many;
    if (plan_on(s, g, c, &one) != 0 || plan_on(&on, g, c, &many) != 0) return;
    const hz_plan *a = &one.p, *b = &many.p;
    const double *pa = a->pred.phase_s, *pb = b->pred.phase_s;
    double bytes = 0.0;
    for (int i = 0; i < b->unit_n; i++) {
        const hz_unit *u = &b->units[i];
        for (int k = 0; k < u->tensor_n; k++) {
            const hz_tensor *t = &b->tensors[u->first_tensor + k];
            if (t->store_grad) bytes += 4.0 * (double)(t->rows * t->cols);
        }
    }
    double want = 2.0 * (double)(h - 1) / (double)h * bytes / (tm_net_gbps(c) * 1e9);
    /* one GPU on one host runs the gradients' norm and casts in its backward (timemodel.c) */
    double ready_one = g == 1 ? tm_grads_ready_seconds(a, c, 0) : 0.0;
    CHECK(hz_gpu_n_micro(&b->dims) * h * g == b->dims.n_micro && close_to(pb[HZ_PH_NET], want) &&
              pa[HZ_PH_NET] == 0 && close_to(pb[HZ_PH_NCCL], pa[HZ_PH_NCCL]) &&
              close_to(pb[HZ_PH_BWD], (pa[HZ_PH_BWD] - ready_one) / (double)h) &&
              b->host_bytes == a->host_bytes - host_staging(a) + host_staging(a) / h &&
              hz_plan_phase_n(b) == HZ_PHASE_ALL_N,
          "%s on %lld hosts of %lld GPU%s: %lld micro-batches a GPU, network %.4g s (by hand "
          "%.4g at %g GB/s), NCCL %.4g s as one host's, backward 1/%lld, each host's bytes %lld: "
          "one host's store and 1/H of its token (and boundary) staging", s->name, (long long)h, (long long)g, g > 1 ? "s" : "",
          (long long)hz_gpu_n_micro(&b->dims), pb[HZ_PH_NET], want, tm_net_gbps(c),
          pb[HZ_PH_NCCL], (long long)h, (long long)b->host_bytes);
    CHECK(b->pred.step_s >= pb[HZ_PH_NET] && b->pred.step_s <= a->pred.step_s,
          "%s on %lld hosts: step %.4g s, at least the network's and at most one host's %.4g",
          s->name, (long long)h, b->pred.step_s, a->pred.step_s);
    /* a network slow enough to set the step, stated */
    tm_ceilings slow = *c;
    slow.net_busbw_gbps = 0.01;
    tm_predict(&many.p, &slow);
    char text[256];
    tm_critical_text(&many.p, text, sizeof text);
    char phrase[64];
    snprintf(phrase, sizeof phrase, "across %lld hosts at 0.01 GB/s", (long long)h);
    CHECK(many.p.pred.critical == HZ_PH_NET &&
              close_to(many.p.pred.step_s, many.p.pred.phase_s[HZ_PH_NET] +
                                               many.p.pred.phase_s[HZ_PH_NCCL] +
                                               many.p.pred.phase_s[HZ_PH_D2H]) &&
              close_to(many.p.pred.phase_s[HZ_PH_NET], want * tm_net_gbps(c) / 0.01) &&
              strstr(text, phrase),
          "%s on %lld hosts at a stated 0.01 GB/s: the network sets the step: %s", s->name,
          (long long)h, text);
    plan_free(&one);
    plan_free(&many);
}

/* What plan_build says to a count of GPUs that does not divide the micro-batches, given as
 * hzc's --gpus gives it (pos_gpus at line 0). */
static void check_refused(const hzc_spec *s, int64_t n, const char *phrase, const tm_ceilings *c)
{
    char *msg = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&msg, &len);
    plan_limits lim = {0, 0, PLAN_BOUNDARIES_AUTO};
    hzc_spec on = *s;
    on.plan.gpus = n;
    on.plan.pos_gpus = (spec_pos){0, 0};
    hzc_plan pl;
    int bad = plan_build(&on, &lim, &pl, err);
    tm_predict(&pl.p, c);
    fclose(err);
    CHECK(bad && strstr(msg, phrase), "%s on %lld GPUs refused: %s", s->name, (long long)n, msg);
    plan_free(&pl);
    free(msg);
}

/* Resident units' gradients are all-reduced (every GPU updates its copy): twice a streamed
 * unit's bytes. */
static void check_resident(const hzc_spec *s, const tm_ceilings *c)
{
    hzc_spec r = *s;
    r.plan = (spec_plan){.set = 1, .resident_blocks = s->L / 2, .resident_ends = 1};
    hzc_plan a, b;
    if (plan_on(s, 4, c, &a) != 0 || plan_on(&r, 4, c, &b) != 0) return;
    double want = nccl_by_hand(&b.p, 4, tm_nccl_gbps(c));
    CHECK(close_to(b.p.pred.phase_s[HZ_PH_NCCL], want) &&
              b.p.pred.phase_s[HZ_PH_NCCL] > a.p.pred.phase_s[HZ_PH_NCCL],
          "%s, half the blocks and the ends resident on 4 GPUs: NCCL %.4g s (all-reduce of the "
          "resident units' gradients) > %.4g s with every unit streamed", s->name,
          b.p.pred.phase_s[HZ_PH_NCCL], a.p.pred.phase_s[HZ_PH_NCCL]);
    plan_free(&a);
    plan_free(&b);
}

int main(void)
{
    tm_ceilings c;
    tm_defaults(&c);
    CHECK(tm_host_h2d_gbps(&c) == TM_ASSUMED_HOST_H2D_GPUS * c.h2d_gbps &&
              tm_nccl_gbps(&c) == TM_ASSUMED_NCCL_BUSBW_GBPS,
          "the defaults assume the host's h2d %.1f GB/s (4 x %.1f) and NCCL 300 GB/s",
          tm_host_h2d_gbps(&c), c.h2d_gbps);
    hzc_spec l8, tiny;
    if (spec_load("models/llama3-8b.yaml", &l8, stderr) != 0 ||
        spec_load("models/tiny.yaml", &tiny, stderr) != 0) {
        CHECK(0, "llama3-8b and tiny load");
        TEST_END();
    }
    tiny.step_tokens = 4096; /* four micro-batches of 1024 tokens */
    check_one(&l8, &c);
    check_one(&tiny, &c);
    for (int64_t n = 2; n <= 4; n *= 2) {
        check_split(&l8, n, &c);
        check_split(&tiny, n, &c);
    }
    tm_ceilings tight = c;
    tight.host_h2d_total_gbps = 80.0;
    check_split(&l8, 4, &tight);
    check_bounds(&l8, &c);
    check_resident(&l8, &c);
    check_resident(&tiny, &c);
    /* boundaries on the host: each GPU stores its own share, into the one host array */
    hzc_spec hb = l8;
    hb.plan = (spec_plan){.set = 1, .boundaries = SPEC_WHERE_HOST};
    check_split(&hb, 2, &c);
    check_refused(&l8, 3, "llama3-8b: error: --gpus 3 splits the step's 8 micro-batches over 3 "
                          "GPUs, which needs a multiple of 3: set shape.tokens_per_step to 49152 "
                          "or 73728 (a multiple of 3 x 8192 tokens)\n", &c);
    check_refused(&l8, 16, "or shape.tokens_per_micro_batch to 4096 (16 micro-batches, 1 a GPU)",
                  &c);
    hzc_spec t3 = tiny;
    t3.step_tokens = 3072;
    check_refused(&t3, 2, "set shape.tokens_per_step to 2048 or 4096 (a multiple of 2 x 1024 "
                          "tokens), or shape.tokens_per_micro_batch to 768 (4 micro-batches, 2 "
                          "a GPU)", &c);
    check_hosts(&l8, 2, 1, &c);
    check_hosts(&l8, 2, 2, &c);
    check_hosts(&l8, 4, 2, &c);
    check_hosts(&tiny, 2, 2, &c);
    hzc_spec hb2 = l8; /* host boundaries: each host stages only its share of them */
    hb2.plan = (spec_plan){.set = 1, .boundaries = SPEC_WHERE_HOST};
    check_hosts(&hb2, 2, 2, &c);
    CHECK(tm_net_gbps(&c) == TM_ASSUMED_NET_BUSBW_GBPS, "the defaults assume the network's "
          "all-reduce between hosts at %g GB/s", tm_net_gbps(&c));
    {
        hzc_spec h3 = l8;
        h3.plan.hosts = 3;
        h3.plan.pos_hosts = (spec_pos){0, 0};
        check_refused(&h3, 1, "llama3-8b: error: --hosts 3 (of 1 GPU each) splits the step's 8 "
                              "micro-batches over 3 GPUs, which needs a multiple of 3", &c);
        h3.plan.hosts = 2;
        check_refused(&h3, 3, "llama3-8b: error: --hosts 2 (of 3 GPUs each) splits the step's 8 "
                              "micro-batches over 6 GPUs", &c);
    }
    TEST_END();
}
