/* tests/test_tune.c - hzc tune's search (compiler/tune.c): its pruned walk finds the same
 * best step as trying every point, the winner fits, it is never slower than the default
 * plan, more GPU memory never gives a slower best, and the walk builds about 2 L plans per
 * choice. Run from the repository root. */
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "spec.h"
#include "test.h"
#include "test_specs.h"
#include "timemodel.h"
#include "tune.h"

/* Whether a point that fits ranks before the best so far (the search's own order). */
static int better(const tune_result *r, const tune_result *best)
{
    if (!r->fits) return 0;
    if (!best->fits || r->step_s != best->step_s) return !best->fits || r->step_s < best->step_s;
    if (r->pcie_bytes != best->pcie_bytes) return r->pcie_bytes < best->pcie_bytes;
    if (r->host_bytes != best->host_bytes) return r->host_bytes < best->host_bytes;
    return r->gpu_bytes < best->gpu_bytes;
}

/* Every point of the search space, built; the best into *best (fits = 0: none fits).
 * Returns the number of points. */
static int64_t exhaustive(const hzc_spec *s, const plan_limits *lim, const tm_ceilings *c,
                          tune_result *best)
{
    int64_t n = 0, seqs = s->step_tokens / s->T;
    memset(best, 0, sizeof *best);
    for (int64_t per = 1; per <= seqs; per++) {
        if (seqs % per || seqs / per > SPEC_MAX_MICRO_BATCHES ||
            s->L * (seqs / per) > SPEC_MAX_LAYER_PASSES)
            continue;
        for (int ends = 0; ends <= 1; ends++)
            for (int slots = 2; slots <= 3; slots++)
                for (int grad = SPEC_GRAD_FP32; grad <= SPEC_GRAD_BF16 + 1; grad++)
                    for (int where = SPEC_WHERE_GPU; where <= SPEC_WHERE_HOST; where++)
                        for (int64_t r = 0; r <= s->L; r++)
                            for (int64_t k = 0; k <= s->L; k++)
                                /* post norms: every count of kept MLP outputs */
                                for (int64_t mo = 0; mo <= (spec_post_norms(s) ? s->L : 0); mo++) {
                                    int held = grad > SPEC_GRAD_BF16; /* every streamed unit */
                                    spec_plan p = {.set = 1, .resident_blocks = r,
                                                   .resident_ends = ends, .keep_blocks = k,
                                                   .keep_mlp_out_blocks = mo,
                                                   .weight_slots = slots,
                                                   .host_grad = held ? SPEC_GRAD_FP32 : grad,
                                                   .boundaries = where,
                                                   .gpu_grad_blocks = held ? s->L : 0,
                                                   .gpu_grad_ends = held};
                                    tune_result res;
                                    tune_eval(s, &p, per * s->T, lim, c, &res);
                                    n++;
                                    if (better(&res, best)) *best = res;
                                }
    }
    return n;
}

/* The GPU bytes of the smallest and the largest point (no residency and boundaries on the
 * host at the smallest micro-batch; everything resident and kept at the largest), for
 * limits that cut the search space in the middle. */
static void gpu_span(const hzc_spec *s, const tm_ceilings *c, int64_t *lo, int64_t *hi)
{
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    spec_plan small = {.set = 1, .weight_slots = 2, .host_grad = SPEC_GRAD_BF16,
                       .boundaries = SPEC_WHERE_HOST};
    spec_plan big = {.set = 1, .resident_blocks = s->L, .resident_ends = 1,
                     .keep_blocks = s->L, .weight_slots = 3, .host_grad = SPEC_GRAD_FP32,
                     .boundaries = SPEC_WHERE_GPU};
    tune_result r;
    tune_eval(s, &small, s->T, &none, c, &r);
    *lo = r.gpu_bytes;
    tune_eval(s, &big, s->step_tokens, &none, c, &r);
    *hi = r.gpu_bytes > *lo ? r.gpu_bytes : *lo;
}

static void check_spec(const char *name, const hzc_spec *s, const tm_ceilings *c)
{
    int64_t lo, hi;
    gpu_span(s, c, &lo, &hi);
    double prev_step = 0;
    for (int i = 0; i < 4; i++) {
        /* four GPU sizes from the smallest plan's to the largest's; host: ample */
        plan_limits lim = {lo + (hi - lo) / 3 * i, (int64_t)1 << 50, PLAN_BOUNDARIES_AUTO};
        if (i == 3) lim.gpu_bytes = hi;
        tune_result best[8];
        tune_search srch = {.best = best, .best_cap = 8};
        tune_search_run(s, &lim, c, &srch);
        tune_result all;
        int64_t points = exhaustive(s, &lim, c, &all);
        double kib = (double)lim.gpu_bytes / 1024;
        CHECK(srch.best_n > 0 && all.fits, "%s at %.1f KiB of GPU: %d plans fit (%lld built of "
              "%lld points)", name, kib, srch.best_n, (long long)srch.built_n, (long long)points);
        if (srch.best_n == 0 || !all.fits) continue;
        const tune_result *w = &best[0];
        CHECK(w->step_s == all.step_s && w->gpu_bytes == all.gpu_bytes,
              "%s at %.1f KiB: the walk's best %.6g s (%lld resident, %lld kept) is every "
              "point's best %.6g s (%lld resident, %lld kept)", name, kib, w->step_s,
              (long long)w->plan.resident_blocks, (long long)w->plan.keep_blocks, all.step_s,
              (long long)all.plan.resident_blocks, (long long)all.plan.keep_blocks);
        CHECK(w->fits && w->gpu_bytes <= lim.gpu_bytes && w->host_bytes <= lim.host_bytes,
              "%s at %.1f KiB: the winner fits: %lld GPU bytes <= %lld", name, kib,
              (long long)w->gpu_bytes, (long long)lim.gpu_bytes);
        int sorted = 1;
        for (int j = 1; j < srch.best_n; j++)
            sorted &= best[j - 1].step_s < best[j].step_s ||
                      (best[j - 1].step_s == best[j].step_s &&
                       (best[j - 1].pcie_bytes < best[j].pcie_bytes ||
                        (best[j - 1].pcie_bytes == best[j].pcie_bytes &&
                         (best[j - 1].host_bytes < best[j].host_bytes ||
                          (best[j - 1].host_bytes == best[j].host_bytes &&
                           best[j - 1].gpu_bytes <= best[j].gpu_bytes)))));
        CHECK(sorted,
              "%s at %.1f KiB: the %d best ranked by step, then PCIe, host and GPU bytes", name, kib,
              srch.best_n);
        tune_result def;
        spec_plan none = {0};
        tune_eval(s, &none, s->micro_tokens, &lim, c, &def);
        CHECK(!def.fits || w->step_s <= def.step_s,
              "%s at %.1f KiB: the winner's %.6g s <= the default plan's %.6g s%s", name, kib,
              w->step_s, def.step_s, def.fits ? "" : " (the default does not fit)");
        if (i > 0)
            CHECK(w->step_s <= prev_step,
                  "%s at %.1f KiB: more GPU memory, best step %.6g s <= %.6g s before", name,
                  kib, w->step_s, prev_step);
        prev_step = w->step_s;
        /* the walk: per choice (24, and with post norms each of 5 counts of kept MLP
         * outputs) one bisection over the resident count, then one step down the staircase
         * per kept count or per resident count given up */
        int64_t log2L = 0, counts = spec_post_norms(s) ? TUNE_MLP_OUT_STEPS + 1 : 1;
        while (((int64_t)1 << log2L) <= s->L) log2L++;
        int64_t bound =
            24 * counts * (int64_t)srch.micro_n * srch.states_n * (2 * s->L + log2L + 2);
        CHECK(srch.built_n <= bound, "%s at %.1f KiB: %lld plans built <= %lld (24 x %lld x %d "
              "micro-batch sizes x %d precisions x (2 L + log2 L + 2))", name, kib,
              (long long)srch.built_n, (long long)bound, (long long)counts, srch.micro_n,
              srch.states_n);
    }
}

/* The optimizer-state precision: a spec that names one is searched in it alone; one that
 * names none takes the most exact precision whose exhaustive search finds a plan that fits
 * (fp32, then bf16, then int8), with that precision's best plan, over host limits from
 * roomy to too small for all. */
static void check_states(const char *name, const hzc_spec *s0, const tm_ceilings *c)
{
    int64_t lo, hi;
    gpu_span(s0, c, &lo, &hi);
    hzc_spec s = *s0;
    s.optimizer_state_set = 0;
    /* each precision's least host bytes over every point, at the GPU limit between the ends */
    plan_limits roomy = {lo + (hi - lo) / 2, (int64_t)1 << 50, PLAN_BOUNDARIES_AUTO};
    int64_t least[HZ_OPTSTATE_MODE_N];
    for (int m = 0; m < HZ_OPTSTATE_MODE_N; m++) {
        hzc_spec sm = s;
        sm.optimizer_state = m;
        int64_t best = 0;
        for (int64_t r = 0; r <= s.L; r++) {
            spec_plan p = {.set = 1, .resident_blocks = r, .resident_ends = 1, .weight_slots = 2,
                           .host_grad = SPEC_GRAD_BF16, .boundaries = SPEC_WHERE_GPU};
            tune_result res;
            tune_eval(&sm, &p, sm.micro_tokens, &roomy, c, &res);
            if (res.gpu_bytes <= roomy.gpu_bytes && (!best || res.host_bytes < best))
                best = res.host_bytes;
        }
        least[m] = best;
    }
    int64_t hosts[] = {(int64_t)1 << 50, least[0], least[0] - 1, least[1] - 1, least[2] - 1, 4096};
    int good = 1, cases = 0, seen[HZ_OPTSTATE_MODE_N + 1] = {0};
    for (size_t h = 0; h < sizeof hosts / sizeof hosts[0]; h++) {
        plan_limits lim = roomy;
        lim.host_bytes = hosts[h];
        tune_result best[4];
        tune_search srch = {.best = best, .best_cap = 4};
        tune_search_run(&s, &lim, c, &srch);
        int want = -1;
        tune_result all = {0};
        for (int m = 0; m < HZ_OPTSTATE_MODE_N && want < 0; m++) {
            hzc_spec sm = s;
            sm.optimizer_state = m;
            exhaustive(&sm, &lim, c, &all);
            if (all.fits) want = m;
        }
        int ok = srch.states_n == HZ_OPTSTATE_MODE_N &&
                 (want < 0 ? srch.best_n == 0
                           : srch.best_n > 0 && best[0].optimizer_state == want &&
                                 best[0].step_s == all.step_s && srch.state_fits[want] &&
                                 srch.state_best[want].step_s == all.step_s);
        for (int m = 0; m < want && ok; m++) ok = !srch.state_fits[m];
        if (!ok)
            printf("  host %lld: chose %s (%d fit), want %s\n", (long long)hosts[h],
                   srch.best_n ? hz_optstate_names[best[0].optimizer_state] : "none", srch.best_n,
                   want < 0 ? "none" : hz_optstate_names[want]);
        good &= ok;
        seen[want + 1] = 1;
        cases++;
    }
    CHECK(good && seen[1] && seen[2] && seen[3] && seen[0],
          "%s, no training.optimizer_state: in %d host limits tune takes the most exact "
          "precision that fits (fp32, bf16, int8 and none each seen), with its best plan",
          name, cases);
    /* named: that precision alone, even where a more exact one would fit */
    hzc_spec named = s;
    named.optimizer_state_set = 1;
    named.optimizer_state = HZ_OPTSTATE_INT8;
    tune_result best[2];
    tune_search srch = {.best = best, .best_cap = 2};
    tune_search_run(&named, &roomy, c, &srch);
    CHECK(srch.states_n == 1 && srch.states[0] == HZ_OPTSTATE_INT8 && srch.best_n > 0 &&
              best[0].optimizer_state == HZ_OPTSTATE_INT8,
          "%s with optimizer_state int8: searched in int8 alone (%d precision)", name,
          srch.states_n);
}

/* Nothing fits: no best, and the smallest overflow is the least of all the points'. */
static void check_no_fit(const hzc_spec *s, const tm_ceilings *c)
{
    plan_limits lim = {1024, 1024, PLAN_BOUNDARIES_AUTO};
    tune_result best[2];
    tune_search srch = {.best = best, .best_cap = 2};
    int n = tune_search_run(s, &lim, c, &srch);
    const tune_result *m = &srch.smallest;
    CHECK(n == 0 && !m->fits && m->gpu_bytes > 0,
          "1 KiB of GPU and host memory: nothing fits; the least overflow needs %lld GPU and "
          "%lld host bytes", (long long)m->gpu_bytes, (long long)m->host_bytes);
}

/* Several GPUs (the spec's plan.gpus, which --gpus sets): the micro-batch sizes whose
 * micro-batches do not divide over them are skipped and counted, every plan tried carries
 * the count (so -o writes it), and the split step is predicted faster than one GPU's. */
static void check_gpus(const hzc_spec *s, const tm_ceilings *c)
{
    plan_limits roomy = {80ll << 30, 1ll << 40, PLAN_BOUNDARIES_AUTO};
    hzc_spec spec_two = *s;
    spec_two.plan.gpus = 2;
    tune_result b1[1], b2[1];
    tune_search one = {.best = b1, .best_cap = 1}, two = {.best = b2, .best_cap = 1};
    tune_search_run(s, &roomy, c, &one);
    tune_search_run(&spec_two, &roomy, c, &two);
    int64_t seqs = s->step_tokens / s->T, odd = 0; /* sizes with an odd micro-batch count */
    for (int64_t per = 1; per <= seqs; per++) odd += seqs % per == 0 && (seqs / per) % 2 == 1;
    CHECK(one.gpus == 1 && one.micro_skipped_n == 0 && two.gpus == 2 &&
              two.micro_skipped_n == odd && two.micro_n + two.micro_skipped_n == one.micro_n,
          "%s on 2 GPUs: %d micro-batch sizes tried, %d skipped (an odd count of micro-batches; "
          "%lld by hand), of one GPU's %d", s->name, two.micro_n, two.micro_skipped_n,
          (long long)odd, one.micro_n);
    CHECK(one.best_n && two.best_n && b2[0].plan.gpus == 2 && b1[0].plan.gpus == 0 &&
              (s->step_tokens / b2[0].micro_tokens) % 2 == 0 && b2[0].step_s < b1[0].step_s,
          "%s: the best on 2 GPUs carries gpus 2, %lld micro-batches, %.6f s < one GPU's %.6f s",
          s->name, (long long)(s->step_tokens / b2[0].micro_tokens), b2[0].step_s, b1[0].step_s);
}

int main(void)
{
    tm_ceilings c;
    tm_defaults(&c);
    hzc_spec tiny;
    int errors_n = spec_load("models/tiny.yaml", &tiny, stdout);
    CHECK(errors_n == 0, "models/tiny.yaml loads");
    if (errors_n == 0) check_spec("tiny", &tiny, &c);
    if (errors_n == 0) check_states("tiny", &tiny, &c);
    if (errors_n == 0) check_gpus(&tiny, &c);
    hzc_spec six = make_spec(0);
    six.L = 6;
    check_spec("six-layer qwen2", &six, &c);
    check_no_fit(&six, &c);
    /* Gemma 3's post norms: the walk's five counts of kept MLP outputs (0, L/4, .., L: with
     * four layers, every count) against all of them */
    hzc_spec gem = make_spec(4);
    gem.L = 4;
    check_spec("four-layer gemma3", &gem, &c);
    TEST_END();
}
