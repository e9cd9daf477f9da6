/* compiler/plan_print.c - the plan for people (hzc plan): the model and step, the host store
 * per array, the GPU arena map, the residency table (unit x class) and the schedule in brief.
 * Every number comes from the plan compiler/plan.c built. */
#include "plan.h"

#include "../runtime/hz_layout.h"
#include "timemodel.h"

#include <string.h>

static void print_bytes(FILE *out, const char *what, int64_t bytes)
{
    fprintf(out, "  %-34s %16lld bytes  %10.3f GiB\n", what, (long long)bytes,
            (double)bytes / (1024.0 * 1024.0 * 1024.0));
}

/* Where each class of a unit lives, as one row per run of units placed alike. */
static void residency_row(const hzc_plan *pl, const hz_unit *u, const char **col)
{
    const hz_plan *p = &pl->p;
    static const char *host_g[2] = {"host fp32", "host bf16"};
    col[0] = u->resident ? "gpu" : "streamed";
    col[1] = u->resident ? "gpu" : "host";
    col[2] = u->resident || u->held ? "gpu fp32" : host_g[p->host_grad_bf16];
    col[3] = u->kind != HZ_BLOCK ? "-"
             : u->keep           ? "kept"
             : u->keep_mlp_out   ? "mlp_out kept"
                                 : "recomputed";
    col[4] = u->kind == HZ_EMBED ? "-" : p->boundary_on_host && u->kind == HZ_BLOCK &&
                                              u->layer < p->dims.L - 1
                                             ? "host"
                                             : "gpu";
}

static void print_residency(const hzc_plan *pl, FILE *out)
{
    const hz_plan *p = &pl->p;
    fprintf(out, "residency (unit x class)\n");
    fprintf(out, "  %-16s %-10s %-16s %-10s %-13s %s\n", "units", "weights",
            "master, m, v", "gradients", "activations", "input boundary");
    for (int i = 0; i < p->unit_n;) {
        const char *a[5], *b[5];
        residency_row(pl, &pl->units[i], a);
        int j = i + 1;
        for (; j < p->unit_n && pl->units[j].kind == pl->units[i].kind; j++) {
            residency_row(pl, &pl->units[j], b);
            int same = 1;
            for (int k = 0; k < 5; k++) same &= strcmp(a[k], b[k]) == 0;
            if (!same) break;
        }
        char name[48];
        const hz_unit *u = &pl->units[i];
        if (u->kind != HZ_BLOCK)
            snprintf(name, sizeof name, "%s", hz_unit_names[u->kind]);
        else if (j - i == 1)
            snprintf(name, sizeof name, "block %d", u->layer);
        else
            snprintf(name, sizeof name, "blocks %d-%d", u->layer, pl->units[j - 1].layer);
        fprintf(out, "  %-16s %-10s %-16s %-10s %-13s %s\n", name, a[0], a[1], a[2], a[3], a[4]);
        i = j;
    }
    if (p->resident_n > 0) {
        char what[64];
        /* w, lo, m, v, the fp32 gradient and int8's scales of a parameter */
        double per = 8.0 + 2.0 * (double)hz_moment_bytes(p->optimizer_state) +
                     (p->optimizer_state == HZ_OPTSTATE_INT8 ? 8.0 / HZ_OPTSTATE_BLOCK : 0.0);
        snprintf(what, sizeof what, "resident on the GPU (%g B/param)", per);
        print_bytes(out, what, pl->regions[HZ_RESIDENT].bytes);
    }
    if (p->keep_n > 0)
        print_bytes(out, "kept activations", pl->regions[HZ_SAVED].bytes);
    if (p->hold_n > 0)
        print_bytes(out, "streamed units' gradients on the GPU", pl->regions[HZ_GHOLD].bytes);
    if (p->mlp_out_n > 0)
        print_bytes(out, "kept MLP outputs", pl->regions[HZ_MLPOUT].bytes);
    fprintf(out, "\n");
}

void plan_print(const hzc_plan *pl, FILE *out)
{
    const hz_dims *d = &pl->p.dims;
    const hz_plan *p = &pl->p;
    fprintf(out, "plan for %s\n", p->spec_name);
    fprintf(out, "  model: V=%lld C=%lld L=%lld NH=%lld NKV=%lld HD=%lld F=%lld %s%s\n",
            (long long)d->V, (long long)d->C, (long long)d->L, (long long)d->NH,
            (long long)d->NKV, (long long)d->HD, (long long)d->F, d->tied ? "tied" : "untied",
            d->qkv_bias ? " qkv-bias" : "");
    if (d->post_norms)
        fprintf(out, "  gemma3: four (1 + w) norms a block, GeGLU, embedding x %g, score scale %g, "
                     "window %lld on %lld of %lld blocks\n",
                (double)d->embed_scale, (double)d->attn_scale, (long long)d->window,
                (long long)d->window_n, (long long)d->L);
    fprintf(out, "  parameters: %lld\n", (long long)p->params_n);
    fprintf(out, "  step: %lld tokens = %lld micro-batches x %lld rows x %lld positions; "
                 "loss chunk %lld tokens\n",
            (long long)d->step_tokens, (long long)d->n_micro, (long long)d->B, (long long)d->T,
            (long long)d->chunk_tokens);
    if (hz_hosts(d) > 1)
        fprintf(out, "  split over %lld hosts of %lld GPU%s each (data parallel): %lld "
                     "micro-batches a GPU\n",
                (long long)hz_hosts(d), (long long)hz_gpus(d), hz_gpus(d) > 1 ? "s" : "",
                (long long)hz_gpu_n_micro(d));
    else if (hz_gpus(d) > 1)
        fprintf(out, "  split over %lld GPUs of one host (data parallel): %lld micro-batches "
                     "each\n",
                (long long)hz_gpus(d), (long long)hz_gpu_n_micro(d));
    fprintf(out, "  model FLOPs per token: %.4g\n\n", hz_flops_per_token(d));

    fprintf(out, "host store (layer-contiguous, %lld elements per array incl. %lld padding)\n",
            (long long)p->host_store_n, (long long)(p->host_store_n - p->params_n));
    int64_t n = p->host_store_n;
    const int mode = p->optimizer_state;
    static const char *const m_what[HZ_OPTSTATE_MODE_N] = {"m     fp32 Adam first moment",
                                                           "m     bf16 Adam first moment",
                                                           "m     int8 Adam first moment"};
    static const char *const v_what[HZ_OPTSTATE_MODE_N] = {
        "v     fp32 Adam second moment", "v     bf16 Adam second moment",
        "v     uint8 Adam second moment"};
    print_bytes(out, "w     bf16 working weights", 2 * n);
    print_bytes(out, "lo    int16 master low parts", 2 * n);
    print_bytes(out, m_what[mode], hz_arr_offset(hz_arr_block_bytes(mode, 0, HZ_ARR_M), n));
    print_bytes(out, v_what[mode], hz_arr_offset(hz_arr_block_bytes(mode, 0, HZ_ARR_V), n));
    if (mode == HZ_OPTSTATE_INT8) {
        print_bytes(out, "ms    fp32 m absmax per 64", hz_arr_offset(4, n));
        print_bytes(out, "vs    fp32 v absmax per 64", hz_arr_offset(4, n));
    }
    print_bytes(out, p->host_grad_bf16 ? "g     bf16 gradients" : "g     fp32 gradients",
                (p->host_grad_bf16 ? 2 : 4) * n);
    print_bytes(out, p->boundary_on_host ? "extras (token/loss staging, boundaries)"
                     : p->fetch_n ? "extras (token/loss, gradient staging)"
                                  : "extras (token and loss staging)",
                pl->host_extra_bytes);
    print_bytes(out, "backed (streamed units, bounce)", p->host_store_bytes);
    print_bytes(out, "planned peak host", p->host_bytes);
    if (p->pred.process_host_bytes > 0)
        print_bytes(out, "with the cuda trainer's own (ceilings)",
                    p->host_bytes + p->pred.process_host_bytes);
    fprintf(out, "  bytes per parameter: %.3f\n\n", (double)p->host_bytes / (double)p->params_n);

    fprintf(out, hz_gpus(d) > 1 ? "GPU arena (one cudaMalloc on each GPU)\n"
                                : "GPU arena (one cudaMalloc)\n");
    fprintf(out, "  %-13s %16s %16s %6s  %s\n", "region", "offset", "bytes", "slots", "holds");
    for (int k = 0; k < HZ_REGION_KIND_N; k++) {
        const hz_region *r = &pl->regions[k];
        fprintf(out, "  %-13s %16lld %16lld %6d  %s\n", hz_region_names[k],
                (long long)r->offset_bytes, (long long)r->bytes, r->count,
                hz_region_what[k]);
    }
    print_bytes(out, "planned peak GPU", p->gpu_bytes);
    fprintf(out, "\n");

    print_residency(pl, out);

    int counts[HZ_OP_KIND_N] = {0};
    for (int i = 0; i < p->op_n; i++) counts[p->ops[i].kind]++;
    fprintf(out, "schedule: %d ops per step (", p->op_n);
    for (int k = 0; k < HZ_OP_KIND_N; k++)
        fprintf(out, "%s%d %s", k ? ", " : "", counts[k], hz_op_names[k]);
    fprintf(out, ")\n");
    fprintf(out, "  forward: load each unit into one of %d weight slots while the previous "
                 "computes; %lld micro-batches per unit%s\n",
            pl->n_wslots, (long long)hz_gpu_n_micro(d), hz_gpus(d) > 1 ? " on each GPU" : "");
    fprintf(out, "  loss head: final norm + lm_head + cross-entropy fused, %lld tokens per "
                 "logits chunk\n",
            (long long)d->chunk_tokens);
    if (p->boundary_on_host)
        fprintf(out, "  boundaries on the host: each layer's input goes to pinned host memory "
                     "after its forward (store_b) and comes back before its backward (load_b); "
                     "the GPU holds two layers' worth\n");
    fprintf(out, "  backward: reload, recompute from the boundary, backward; %d gradient slots "
                 "alternate so one stores to the host while the next fills\n",
            pl->n_gslots);
    fprintf(out, "  optimizer: AdamW on the host per streamed unit, %s\n",
            p->train.grad_clip > 0 ? "after the global gradient norm is known"
                                   : "as soon as the unit's gradients arrive");
    if (hz_gpus(d) > 1)
        fprintf(out, "  %lld GPUs: each runs this schedule on its %lld micro-batches, streaming "
                     "from the one host store; each unit's gradients are summed across them "
                     "after its last backward (NCCL: reduced to GPU 0, which alone stores them, "
                     "for streamed units; all-reduced for resident ones)\n",
                (long long)hz_gpus(d), (long long)hz_gpu_n_micro(d));
    if (hz_hosts(d) > 1)
        fprintf(out, "  %lld hosts: each holds its own host store of the same weights and "
                     "runs its share of the micro-batches; each unit's sum of one host is "
                     "all-reduced across the hosts (between their GPUs 0) before it goes to "
                     "that host's store, and every host applies the same update\n",
                (long long)hz_hosts(d));
    if (p->resident_n > 0)
        fprintf(out, "  resident units: no load_w and no gradient copy; AdamW on the GPU (the "
                     "same update, %s moments) once the step's norm is known\n",
                hz_optstate_names[p->optimizer_state]);
    if (p->keep_n > 0)
        fprintf(out, "  kept blocks (%d): the forward leaves its activations in the saved "
                     "region and the backward skips the recompute\n",
                p->keep_n);
    if (p->mlp_out_n > 0)
        fprintf(out, "  blocks keeping their MLP output (%d): the forward leaves the down "
                     "projection's output and its norm's 1/rms in the mlp_out region; the "
                     "backward's recompute stops before the down projection\n",
                p->mlp_out_n);
    if (p->hold_n > 0)
        fprintf(out, "  held gradients: streamed units with gpu gradients keep them in "
                     "grad_hold until the update; the next step copies each to one of two "
                     "host staging slots (fetch_g) just before the host updates it\n");
}

void plan_print_gpus(const hzc_plan *pl, const hzc_plan *one, int one_fits,
                     const tm_ceilings *c, FILE *out)
{
    const hz_plan *p = &pl->p;
    const hz_dims *d = &p->dims;
    char line[160], crit[256];
    int64_t hosts = hz_hosts(d), all = hz_gpus(d) * hosts;
    if (hosts > 1)
        fprintf(out, "\nseveral hosts (data parallel; docs/plan.md \"Several hosts\")\n");
    else
        fprintf(out, "\nseveral GPUs of one host (data parallel; docs/plan.md \"Several GPUs of "
                     "one host\")\n");
    if (hosts > 1)
        fprintf(out, "  %-34s %lld, of %lld GPU%s each, each GPU running %lld of the step's %lld "
                     "micro-batches\n", "hosts", (long long)hosts, (long long)hz_gpus(d),
                hz_gpus(d) > 1 ? "s" : "", (long long)hz_gpu_n_micro(d), (long long)d->n_micro);
    else
        fprintf(out, "  %-34s %lld, each running %lld of the step's %lld micro-batches\n", "GPUs",
                (long long)hz_gpus(d), (long long)hz_gpu_n_micro(d), (long long)d->n_micro);
    print_bytes(out, "arena on each GPU (--gpu-mem)", p->gpu_bytes);
    print_bytes(out, "NCCL's buffers on each (assumed)", PLAN_NCCL_ALLOWANCE_BYTES);
    fprintf(out, "  %-34s (outside the arena and --gpu-mem's check, as cuBLASLt's workspace)\n",
            "");
    print_bytes(out, hosts > 1 ? "planned peak of each host" : "planned peak host (one store)",
                p->host_bytes);
    /* beyond one GPU's plan: each further GPU's pinned step scalars */
    int64_t more = (hz_gpus(d) - 1) * p->regions[HZ_SCALARS].bytes;
    if (one->p.host_bytes + more == p->host_bytes)
        fprintf(out, "  %-34s (one GPU's plan and %lld bytes of the other GPUs' step scalars; "
                     "%s)\n", "", (long long)more,
                hosts > 1 ? "each host's GPUs share its store" : "the GPUs share the host store");
    else /* several hosts stage a share of the step's tokens each; boundaries may differ */
        fprintf(out, "  %-34s (one GPU's plan: %lld bytes%s%s)\n", "",
                (long long)one->p.host_bytes,
                hosts > 1 ? ", staging the whole step's tokens" : "",
                one->p.boundary_on_host != p->boundary_on_host ? ", its boundaries placed otherwise"
                                                               : "");
    tm_rates_text(p, line, sizeof line);
    fprintf(out, "  %-34s %.3f s  %s\n", "step", p->pred.step_s, line);
    tm_rates_text(&one->p, line, sizeof line);
    fprintf(out, "  %-34s %.3f s  %s%s\n", "one GPU, the same spec", one->p.pred.step_s, line,
            one_fits ? "" : ", a plan that does not fit the limits");
    fprintf(out, "  %-34s %.2fx with %lld GPUs\n", "speed-up", one->p.pred.step_s / p->pred.step_s,
            (long long)all);
    tm_critical_text(p, crit, sizeof crit);
    fprintf(out, "  critical path: %s\n", crit);
    /* the two rates nothing has measured yet, where the ceilings have none */
    if (c->host_h2d_total_gbps <= 0 && hz_gpus(d) > 1)
        fprintf(out, "  assumed until measured on a multi-GPU machine: the host's h2d to all "
                     "GPUs together %.1f GB/s (%g x one GPU's %.1f)\n",
                tm_host_h2d_gbps(c), TM_ASSUMED_HOST_H2D_GPUS, c->h2d_gbps);
    if (c->nccl_busbw_gbps <= 0 && hz_gpus(d) > 1)
        fprintf(out, "  assumed until measured on a multi-GPU machine: NCCL's bus bandwidth "
                     "%g GB/s (NVLink)\n", tm_nccl_gbps(c));
    if (hosts > 1)
        fprintf(out, "  %s: the network's all-reduce bus bandwidth between the hosts %g GB/s%s\n",
                c->net_busbw_gbps > 0 ? "stated" : "assumed until stated (--net-gbps)",
                tm_net_gbps(c), c->net_busbw_gbps > 0 ? "" : " (one 400 Gb/s NIC a host)");
}
