/* compiler/plan_fit.c - what each optimizer-state precision buys (hzc plan): the spec's host
 * bytes per parameter in fp32, bf16 and int8, and, given the host memory, the largest model
 * of the spec's family that plans within it in each. The family of a spec is its layer (the
 * same hidden size, heads, ffn, vocabulary, embeddings and step) with any number of layers:
 * depth is what hzc's host store grows with, and every number here is a plan hzc builds.
 * For a model with post norms, also what keeping the MLP outputs buys. */
#include "plan.h"

#include <string.h>

#include "timemodel.h"

/* The spec in MODE with L layers: 0 when it plans within LIM (no error), else 1; the plan's
 * peak host bytes and parameter count go to *HOST and *PARAMS. */
static int plan_in(const hzc_spec *s, int mode, int64_t L, const plan_limits *lim,
                   int64_t *host, int64_t *params, FILE *quiet)
{
    hzc_spec t = *s;
    t.optimizer_state = mode;
    t.L = L;
    t.plan.resident_blocks = t.plan.resident_blocks < L ? t.plan.resident_blocks : L;
    t.plan.keep_blocks = t.plan.keep_blocks < L ? t.plan.keep_blocks : L;
    hzc_plan pl;
    int bad = plan_build(&t, lim, &pl, quiet);
    *host = pl.p.host_bytes;
    *params = pl.p.params_n;
    plan_free(&pl);
    return bad;
}

/* The most layers (at most PLAN_FIT_MAX_L) that plan within LIM in MODE, 0 when not even one;
 * the plan's parameters and host bytes. Host bytes grow with the layers, so a bisection. */
#define PLAN_FIT_MAX_L 4096
static int64_t most_layers(const hzc_spec *s, int mode, const plan_limits *lim, int64_t *params,
                           int64_t *host, FILE *quiet)
{
    int64_t lo = 0, hi = PLAN_FIT_MAX_L, h, n;
    if (plan_in(s, mode, 1, lim, &h, &n, quiet)) return 0;
    lo = 1;
    if (!plan_in(s, mode, hi, lim, &h, &n, quiet)) lo = hi;
    while (hi - lo > 1) { /* lo plans, hi does not */
        int64_t mid = lo + (hi - lo) / 2;
        if (plan_in(s, mode, mid, lim, &h, &n, quiet)) hi = mid;
        else lo = mid;
    }
    plan_in(s, mode, lo, lim, host, params, quiet);
    return lo;
}

void plan_print_fit(const hzc_spec *s, const plan_limits *lim, FILE *out)
{
    FILE *quiet = fopen("/dev/null", "w");
    if (!quiet) return;
    char size[32] = "";
    if (lim->host_bytes)
        snprintf(size, sizeof size, "%.1f GiB", (double)lim->host_bytes / 1073741824.0);
    fprintf(out, "optimizer state (training.optimizer_state; this plan: %s)\n",
            hz_optstate_names[s->optimizer_state]);
    fprintf(out, "  %-6s %14s %14s", "state", "host B/param", "host GiB");
    if (lim->host_bytes)
        fprintf(out, "   largest of the family in %s (%lld-layer spec, same layer)", size,
                (long long)s->L);
    fprintf(out, "\n");
    for (int mode = 0; mode < HZ_OPTSTATE_MODE_N; mode++) {
        int64_t host, params;
        plan_in(s, mode, s->L, lim, &host, &params, quiet);
        fprintf(out, "  %-6s %14.3f %14.2f", hz_optstate_names[mode],
                (double)host / (double)params, (double)host / 1073741824.0);
        if (lim->host_bytes) {
            int64_t fit_params = 0, fit_host = 0;
            int64_t L = most_layers(s, mode, lim, &fit_params, &fit_host, quiet);
            if (L == 0)
                fprintf(out, "   none: one layer does not fit");
            else
                fprintf(out, "   %4lld layers, %8.2fB params, %.2f GiB%s", (long long)L,
                        (double)fit_params * 1e-9, (double)fit_host / 1073741824.0,
                        L == PLAN_FIT_MAX_L ? " (the search's limit)" : "");
        }
        fprintf(out, "\n");
    }
    fprintf(out, "\n");
    fclose(quiet);
}

void plan_print_mlp_out(const hzc_spec *s, const plan_limits *lim, const tm_ceilings *c,
                        const hzc_plan *pl, FILE *out)
{
    if (!spec_post_norms(s)) return;
    int64_t recomputing = 0;
    for (int i = 0; i < pl->p.unit_n; i++) {
        const hz_unit *u = &pl->units[i];
        recomputing += u->kind == HZ_BLOCK && !u->keep && !u->keep_mlp_out;
    }
    if (recomputing == 0) return;
    FILE *quiet = fopen("/dev/null", "w");
    hzc_spec t = *s;
    t.plan.set = 1;
    t.plan.keep_mlp_out_blocks = s->L;
    hzc_plan all;
    int bad = plan_build(&t, lim, &all, quiet ? quiet : stderr);
    tm_predict(&all.p, c);
    fprintf(out, "  with plan.keep_mlp_outputs: %lld the %lld blocks that recompute their down "
                 "projection would keep its output: %.2f GiB more GPU memory (%.2f GiB "
                 "planned%s), a predicted step of %.3f s instead of %.3f s%s\n",
            (long long)s->L, (long long)recomputing,
            (double)(all.p.gpu_bytes - pl->p.gpu_bytes) / 1073741824.0,
            (double)all.p.gpu_bytes / 1073741824.0,
            all.p.boundary_on_host && !pl->p.boundary_on_host
                ? ", with the boundaries moved to the host to fit"
                : "",
            all.p.pred.step_s, pl->p.pred.step_s, bad ? "; it does not fit these limits" : "");
    plan_free(&all);
    if (quiet) fclose(quiet);
}
