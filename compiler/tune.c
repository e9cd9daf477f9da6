/* compiler/tune.c - hzc tune (contract in tune.h). Every point tried is one plan_build and
 * one tm_predict; the search is pruned by the one fact it relies on: with every other
 * choice fixed (keep_mlp_outputs among them: a few counts for models with post norms), the
 * planned GPU bytes grow with resident_blocks and with keep_activations.
 * So for each keep count only the largest resident count that fits is a candidate, and
 * that count falls as keep rises: a walk down the staircase builds about 2 L plans. */
#include "tune.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Bytes over the limits (0 = fits both). */
static double overflow_bytes(const tune_result *r, const plan_limits *lim)
{
    double over = 0;
    if (lim->gpu_bytes && r->gpu_bytes > lim->gpu_bytes)
        over += (double)(r->gpu_bytes - lim->gpu_bytes);
    if (lim->host_bytes && r->host_bytes > lim->host_bytes)
        over += (double)(r->host_bytes - lim->host_bytes);
    return over;
}

/* Build and predict one point; plan_build's reasons for a plan that does not fit go to
 * QUIET. */
static void eval_quiet(const hzc_spec *spec, const spec_plan *plan, int64_t micro_tokens,
                       const plan_limits *lim, const tm_ceilings *ceil, tune_result *r,
                       FILE *quiet)
{
    hzc_spec s = *spec;
    s.plan = *plan;
    s.micro_tokens = micro_tokens;
    hzc_plan pl;
    int bad = plan_build(&s, lim, &pl, quiet);
    tm_predict(&pl.p, ceil);
    memset(r, 0, sizeof *r);
    r->plan = *plan;
    r->micro_tokens = micro_tokens;
    r->optimizer_state = s.optimizer_state;
    r->fits = !bad;
    r->gpu_bytes = pl.p.gpu_bytes;
    r->host_bytes = pl.p.host_bytes;
    int64_t h2d = 0, d2h = 0;
    hz_plan_pcie_bytes(&pl.p, &h2d, &d2h);
    r->pcie_bytes = h2d + d2h;
    r->weight_slots = pl.n_wslots;
    r->host_grad_bf16 = pl.p.host_grad_bf16;
    r->boundary_on_host = pl.p.boundary_on_host;
    r->step_s = pl.p.pred.step_s;
    /* the blocks that keep their MLP outputs, as planned: N names the first N of the blocks
     * that do not keep their activations, so a count past them plans the same */
    r->plan.keep_mlp_out_blocks = pl.p.mlp_out_n;
    r->tflops = hz_flops_per_token(&pl.p.dims) * (double)pl.p.dims.step_tokens / r->step_s * 1e-12;
    tm_critical_text(&pl.p, r->critical, sizeof r->critical);
    plan_free(&pl);
}

void tune_eval(const hzc_spec *spec, const spec_plan *plan, int64_t micro_tokens,
               const plan_limits *lim, const tm_ceilings *ceil, tune_result *r)
{
    FILE *quiet = fopen("/dev/null", "w");
    eval_quiet(spec, plan, micro_tokens, lim, ceil, r, quiet ? quiet : stderr);
    if (quiet) fclose(quiet);
}

/* Whether A ranks before B: faster; as fast, with fewer PCIe bytes (copies the model counts
 * as hidden still take host memory bandwidth and leave less slack); then less host memory,
 * then less GPU memory. */
static int ranks_before(const tune_result *a, const tune_result *b)
{
    if (a->step_s != b->step_s) return a->step_s < b->step_s;
    if (a->pcie_bytes != b->pcie_bytes) return a->pcie_bytes < b->pcie_bytes;
    if (a->host_bytes != b->host_bytes) return a->host_bytes < b->host_bytes;
    return a->gpu_bytes < b->gpu_bytes;
}

/* Whether A and B are the same plan (two counts of keep_mlp_outputs may plan alike). */
static int same_plan(const tune_result *a, const tune_result *b)
{
    const spec_plan *p = &a->plan, *q = &b->plan;
    return a->optimizer_state == b->optimizer_state && a->micro_tokens == b->micro_tokens &&
           p->resident_blocks == q->resident_blocks && p->resident_ends == q->resident_ends &&
           p->keep_blocks == q->keep_blocks && p->keep_mlp_out_blocks == q->keep_mlp_out_blocks &&
           p->weight_slots == q->weight_slots && p->host_grad == q->host_grad &&
           p->boundaries == q->boundaries && p->gpu_grad_blocks == q->gpu_grad_blocks &&
           p->gpu_grad_ends == q->gpu_grad_ends;
}

typedef struct walker {
    hzc_spec spec;               /* the spec whose plan and micro-batch the search varies */
    const plan_limits *lim;
    const tm_ceilings *ceil;
    FILE *quiet;
    tune_search *s;
    double smallest_over;
} walker;

/* Try the walker's spec with resident_blocks R and keep_activations K: a plan that fits
 * enters the ranking, one that does not may become the smallest. Returns whether its GPU
 * bytes fit (the staircase's test; the host bytes decide only whether it is a candidate). */
static int try_point(walker *w, int64_t r, int64_t k)
{
    tune_search *s = w->s;
    spec_plan plan = w->spec.plan;
    plan.resident_blocks = r;
    plan.keep_blocks = k;
    tune_result res;
    eval_quiet(&w->spec, &plan, w->spec.micro_tokens, w->lim, w->ceil, &res, w->quiet);
    s->built_n++;
    int seen = 0;
    for (int i = 0; i < s->best_n && res.fits; i++) seen |= same_plan(&res, &s->best[i]);
    if (res.fits && !seen) {
        int at = s->best_n;
        while (at > 0 && ranks_before(&res, &s->best[at - 1])) at--;
        if (at < s->best_cap) {
            int last = s->best_n < s->best_cap ? s->best_n : s->best_cap - 1;
            memmove(&s->best[at + 1], &s->best[at], (size_t)(last - at) * sizeof res);
            s->best[at] = res;
            if (s->best_n < s->best_cap) s->best_n++;
        }
    } else {
        double over = overflow_bytes(&res, w->lim);
        if (w->smallest_over < 0 || over < w->smallest_over) {
            w->smallest_over = over;
            s->smallest = res;
        }
    }
    return !w->lim->gpu_bytes || res.gpu_bytes <= w->lim->gpu_bytes;
}

/* The staircase for the walker's other choices: the largest resident count r0 with no
 * kept activations by bisection, then for each keep count the largest r (at most the
 * previous one) that fits. */
static void walk(walker *w)
{
    int64_t L = w->spec.L;
    if (!try_point(w, 0, 0)) return; /* nothing of this kind fits */
    int64_t lo = 0, hi = L + 1;      /* lo fits; hi does not (L + 1 is never tried) */
    if (try_point(w, L, 0))
        lo = L;
    else
        hi = L;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (try_point(w, mid, 0))
            lo = mid;
        else
            hi = mid;
    }
    int64_t r = lo;
    for (int64_t k = 1; k <= L; k++) {
        while (r >= 0 && !try_point(w, r, k)) r--;
        if (r < 0) return; /* more kept activations fit no better */
    }
}

/* One precision's search: every choice at every micro-batch size whose micro-batches divide
 * over the GPUs. */
static void search_state(walker *w, const hzc_spec *spec, tune_search *s)
{
    int64_t seqs = spec->step_tokens / spec->T;
    s->micro_skipped_n = 0;
    for (int64_t per = 1; per <= seqs; per++) {
        int64_t micro = per * spec->T, n_micro = seqs / per;
        if (seqs % per != 0 || n_micro > SPEC_MAX_MICRO_BATCHES ||
            spec->L * n_micro > SPEC_MAX_LAYER_PASSES)
            continue;
        if (n_micro % (s->gpus * s->hosts) != 0) {
            s->micro_skipped_n++;
            continue;
        }
        s->micro_n++;
        w->spec.micro_tokens = micro;
        for (int ends = 0; ends <= 1; ends++)
            for (int slots = 2; slots <= 3; slots++)
                /* gradients on the host in fp32 or bf16, or every streamed unit's held on
                     * the GPU (resident units hold theirs anyway: the GPU bytes still grow
                     * with resident_blocks) */
                for (int grad = SPEC_GRAD_FP32; grad <= SPEC_GRAD_BF16 + 1; grad++)
                    for (int where = SPEC_WHERE_GPU; where <= SPEC_WHERE_HOST; where++) {
                        int held = grad > SPEC_GRAD_BF16;
                        /* with post norms, none, a quarter, ..., all blocks keep their MLP
                         * outputs (2 bytes a token and hidden unit each, for the down
                         * projection's recompute); other models have none to keep */
                        int quarters = spec_post_norms(spec) ? TUNE_MLP_OUT_STEPS : 0;
                        for (int q = 0; q <= quarters; q++) {
                            w->spec.plan = (spec_plan){
                                .set = 1, .resident_ends = ends, .weight_slots = slots,
                                .host_grad = held ? SPEC_GRAD_FP32 : grad, .boundaries = where,
                                .gpu_grad_blocks = held ? spec->L : 0, .gpu_grad_ends = held,
                                .keep_mlp_out_blocks = quarters ? spec->L * q / quarters : 0,
                                .gpus = s->gpus > 1 ? s->gpus : 0,
                                .hosts = s->hosts > 1 ? s->hosts : 0};
                            walk(w);
                        }
                    }
    }
}

int tune_search_run(const hzc_spec *spec, const plan_limits *lim, const tm_ceilings *ceil,
                    tune_search *s)
{
    double t0 = now_s();
    walker w = {*spec, lim, ceil, fopen("/dev/null", "w"), s, -1.0};
    if (!w.quiet) w.quiet = stderr;
    s->best_n = 0;
    s->built_n = 0;
    s->micro_n = 0;
    s->states_n = 0;
    s->gpus = spec->plan.gpus > 1 ? spec->plan.gpus : 1;
    s->hosts = spec->plan.hosts > 1 ? spec->plan.hosts : 1;
    memset(&s->smallest, 0, sizeof s->smallest);
    /* the spec's precision; where it names none, each of them: the most exact one with a
     * plan that fits is taken, the others' fastest plans are shown beside it */
    int first = spec->optimizer_state_set ? spec->optimizer_state : HZ_OPTSTATE_FP32;
    int last = spec->optimizer_state_set ? spec->optimizer_state : HZ_OPTSTATE_MODE_N - 1;
    tune_result *kept = malloc((size_t)s->best_cap * sizeof *kept), least;
    int kept_n = 0, chosen = -1;
    double least_over = -1.0;
    for (int m = first; m <= last; m++) {
        w.spec.optimizer_state = m;
        w.smallest_over = -1.0;
        s->best_n = 0;
        s->micro_n = 0; /* the same sizes for each precision */
        search_state(&w, spec, s);
        int i = s->states_n++;
        s->states[i] = m;
        s->state_fits[i] = s->best_n > 0;
        s->state_best[i] = s->best_n > 0 ? s->best[0] : s->smallest;
        if (s->best_n > 0 && chosen < 0) {
            chosen = m;
            kept_n = s->best_n;
            if (!kept) break; /* no room to keep them: the others' plans are not searched */
            memcpy(kept, s->best, (size_t)kept_n * sizeof *kept);
        }
        if (s->best_n == 0 && (least_over < 0 || w.smallest_over < least_over)) {
            least_over = w.smallest_over;
            least = s->smallest;
        }
    }
    s->best_n = kept_n;
    if (kept_n && kept) memcpy(s->best, kept, (size_t)kept_n * sizeof *kept);
    if (least_over >= 0) s->smallest = least;
    free(kept);
    if (w.quiet != stderr) fclose(w.quiet);
    s->seconds = now_s() - t0;
    return s->best_n;
}

/* ---- the report ---- */

static void print_header(FILE *out)
{
    fprintf(out, "%-7s %-5s %-4s %8s %4s %7s %5s %5s %6s %7s %8s %8s %8s %8s  %s\n", "rank",
            "state", "ends", "resident", "keep", "mlp_out", "slots", "grads", "bounds", "micro",
            "step_s", "TFLOP/s", "GPU_GiB", "host_GiB", "critical path");
}

/* The choices of R as the search made them; where the plan: section says auto (the
 * default row), what the planner chose. */
static int slots_of(const tune_result *r)
{
    return r->plan.weight_slots ? r->plan.weight_slots : r->weight_slots;
}

static const char *grads_of(const tune_result *r)
{
    if (r->plan.gpu_grad_blocks > r->plan.resident_blocks || r->plan.gpu_grad_ends) return "gpu";
    int bf16 = r->plan.host_grad ? r->plan.host_grad == SPEC_GRAD_BF16 : r->host_grad_bf16;
    return bf16 ? "bf16" : "fp32";
}

static const char *bounds_of(const tune_result *r)
{
    int host = r->plan.boundaries ? r->plan.boundaries == SPEC_WHERE_HOST : r->boundary_on_host;
    return host ? "host" : "gpu";
}

static void print_row(FILE *out, const char *rank, const tune_result *r)
{
    fprintf(out, "%-7s %-5s %-4s %8lld %4lld %7lld %5d %5s %6s %7lld %8.4g %8.1f %8.2f %8.2f  %s\n",
            rank, hz_optstate_names[r->optimizer_state], r->plan.resident_ends ? "yes" : "no", (long long)r->plan.resident_blocks,
            (long long)r->plan.keep_blocks, (long long)r->plan.keep_mlp_out_blocks, slots_of(r), grads_of(r), bounds_of(r),
            (long long)r->micro_tokens, r->step_s, r->tflops, (double)r->gpu_bytes / GIB,
            (double)r->host_bytes / GIB, r->fits ? r->critical : "does not fit the limits");
}

/* "resident_ends true, resident_blocks 3, ..." for messages. */
static void choice_text(const tune_result *r, char *buf, size_t n)
{
    snprintf(buf, n, "optimizer_state %s, resident_ends %s, resident_blocks %lld, "
                     "keep_activations %lld, weight_slots %d, gradients %s, boundaries %s, "
                     "tokens_per_micro_batch %lld",
             hz_optstate_names[r->optimizer_state], r->plan.resident_ends ? "true" : "false", (long long)r->plan.resident_blocks,
             (long long)r->plan.keep_blocks, slots_of(r), grads_of(r), bounds_of(r),
             (long long)r->micro_tokens);
    size_t len = strlen(buf);
    if (r->plan.keep_mlp_out_blocks > 0 && len < n)
        snprintf(buf + len, n - len, ", keep_mlp_outputs %lld",
                 (long long)r->plan.keep_mlp_out_blocks);
    len = strlen(buf);
    if (r->plan.gpus > 1 && len < n)
        snprintf(buf + len, n - len, ", gpus %lld", (long long)r->plan.gpus);
    len = strlen(buf);
    if (r->plan.hosts > 1 && len < n)
        snprintf(buf + len, n - len, ", hosts %lld", (long long)r->plan.hosts);
}

/* Which optimizer-state precision the search took, and why; each other one's fastest plan. */
static void print_states(const hzc_spec *spec, const tune_search *s, const plan_limits *lim,
                         FILE *out)
{
    if (spec->optimizer_state_set) {
        fprintf(out, "optimizer state: %s, as the spec's training.optimizer_state says\n\n",
                hz_optstate_names[spec->optimizer_state]);
        return;
    }
    int chosen = -1;
    for (int i = 0; i < s->states_n && chosen < 0; i++)
        if (s->state_fits[i]) chosen = s->states[i];
    fprintf(out, "optimizer state: the spec names none; tune takes the most exact precision with "
                 "a plan that fits%s%s\n", chosen >= 0 ? ": " : " (none does)",
            chosen >= 0 ? hz_optstate_names[chosen] : "");
    for (int i = 0; i < s->states_n; i++) {
        const tune_result *r = &s->state_best[i];
        if (s->state_fits[i])
            fprintf(out, "  %s: fastest plan %.4g s a step, %.1f model TFLOP/s, %.2f GiB host%s\n",
                    hz_optstate_names[s->states[i]], r->step_s, r->tflops,
                    (double)r->host_bytes / GIB,
                    s->states[i] == chosen ? " (taken)"
                    : s->states[i] > chosen ? " (set training.optimizer_state to take it)" : "");
        else
            fprintf(out, "  %s: no plan fits; the nearest needs %.2f GiB of host and %.2f GiB of "
                         "GPU memory (limits %.2f and %.2f)\n", hz_optstate_names[s->states[i]],
                    (double)r->host_bytes / GIB, (double)r->gpu_bytes / GIB,
                    (double)lim->host_bytes / GIB, (double)lim->gpu_bytes / GIB);
    }
    fprintf(out, "\n");
}

int tune_run(const hzc_spec *spec, const plan_limits *lim, const tm_ceilings *ceil, int top_n,
             const char *out_path, FILE *out, FILE *err)
{
    tune_search s = {0};
    s.best_cap = top_n;
    s.best = calloc((size_t)top_n, sizeof *s.best);
    if (!s.best) {
        fprintf(err, "hzc: out of memory\n");
        return 1;
    }
    tune_search_run(spec, lim, ceil, &s);
    tune_result def;
    spec_plan none = {.gpus = s.gpus > 1 ? s.gpus : 0, /* the spec's plan on as many GPUs */
                      .hosts = s.hosts > 1 ? s.hosts : 0};
    tune_eval(spec, &none, spec->micro_tokens, lim, ceil, &def);
    int64_t all = s.gpus * s.hosts;

    if (s.hosts > 1)
        fprintf(out, "hzc tune: %s on %lld hosts of %lld GPU%s of %.2f GiB each and %.2f GiB "
                     "of host memory each (%s)\n", spec->name, (long long)s.hosts,
                (long long)s.gpus, s.gpus > 1 ? "s" : "", (double)lim->gpu_bytes / GIB,
                (double)lim->host_bytes / GIB, ceil->name);
    else if (s.gpus > 1)
        fprintf(out, "hzc tune: %s on %lld GPUs of %.2f GiB each and %.2f GiB of host memory "
                     "(%s)\n", spec->name, (long long)s.gpus, (double)lim->gpu_bytes / GIB,
                (double)lim->host_bytes / GIB, ceil->name);
    else
        fprintf(out, "hzc tune: %s on %.2f GiB of GPU and %.2f GiB of host memory (%s)\n",
                spec->name, (double)lim->gpu_bytes / GIB, (double)lim->host_bytes / GIB,
                ceil->name);
    char skipped[160] = "";
    if (all > 1)
        snprintf(skipped, sizeof skipped, "; %d micro-batch size%s skipped: %s micro-batches "
                                          "per step not a multiple of the %lld GPUs",
                 s.micro_skipped_n, s.micro_skipped_n == 1 ? "" : "s",
                 s.micro_skipped_n == 1 ? "its" : "their", (long long)all);
    char mlp_out[80] = "";
    if (spec_post_norms(spec))
        snprintf(mlp_out, sizeof mlp_out, " (x %d counts of keep_mlp_outputs: 0, L/%d, .., L)",
                 TUNE_MLP_OUT_STEPS + 1, TUNE_MLP_OUT_STEPS);
    fprintf(out, "searched %lld plans in %.3f s: %d micro-batch sizes x 24 choices of "
                 "resident_ends, weight_slots, gradients (host fp32, host bf16 or on the GPU) "
                 "and boundaries%s, each with keep_activations 0..%lld and the most "
                 "resident_blocks that fit, in %d optimizer-state precision%s%s\n",
            (long long)s.built_n, s.seconds, s.micro_n, mlp_out, (long long)spec->L, s.states_n,
            s.states_n == 1 ? "" : "s", skipped);
    if (s.micro_n == 0) {
        fprintf(err, "hzc: error: %s: no micro-batch of whole sequences splits the step's %lld "
                     "tokens into a multiple of %lld micro-batches: set shape.tokens_per_step "
                     "to a multiple of %lld x %lld (seq_len) tokens\n",
                spec->name, (long long)spec->step_tokens, (long long)all, (long long)all,
                (long long)spec->T);
        free(s.best);
        return 1;
    }
    print_states(spec, &s, lim, out);
    char why[512];
    if (s.best_n == 0) {
        const tune_result *m = &s.smallest;
        choice_text(m, why, sizeof why);
        fprintf(err,
                "hzc: error: %s: no plan fits --gpu-mem %.2f GiB and --host-mem %.2f GiB; the "
                "one that overflows the least (%s) needs %.2f GiB of GPU memory (%.2f over) and "
                "%.2f GiB of host memory (%.2f over)\n",
                spec->name, (double)lim->gpu_bytes / GIB, (double)lim->host_bytes / GIB, why,
                (double)m->gpu_bytes / GIB,
                m->gpu_bytes > lim->gpu_bytes ? (double)(m->gpu_bytes - lim->gpu_bytes) / GIB : 0.0,
                (double)m->host_bytes / GIB,
                m->host_bytes > lim->host_bytes ? (double)(m->host_bytes - lim->host_bytes) / GIB
                                                : 0.0);
        free(s.best);
        return 1;
    }
    print_header(out);
    for (int i = 0; i < s.best_n; i++) {
        char rank[16];
        snprintf(rank, sizeof rank, "%d", i + 1);
        print_row(out, rank, &s.best[i]);
    }
    print_row(out, "default", &def);
    const tune_result *win = &s.best[0];
    if (def.fits)
        fprintf(out, "\nrank 1 predicts %.3f s a step, %.2fx the default plan's %.3f s\n",
                win->step_s, def.step_s / win->step_s, def.step_s);
    else
        fprintf(out, "\nrank 1 predicts %.3f s a step; the default plan (no plan: section) "
                     "does not fit these limits\n", win->step_s);
    int rc = 0;
    if (out_path) {
        int64_t micro = win->micro_tokens != spec->micro_tokens ? win->micro_tokens : 0;
        int state = win->optimizer_state != spec->optimizer_state ? win->optimizer_state : -1;
        rc = spec_write_tuned(spec->path, &win->plan, micro, state, out_path, err) != 0;
        if (!rc) {
            choice_text(win, why, sizeof why);
            fprintf(err, "hzc: wrote %s with rank 1's plan: section (%s)\n", out_path, why);
        }
    }
    free(s.best);
    return rc;
}
