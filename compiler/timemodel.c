/* compiler/timemodel.c - the step-time model (contract in timemodel.h). Each phase is its
 * FLOPs over the GEMM or attention rate plus its bytes over the memory or PCIe rate; the
 * step overlaps them as the schedule does: the three streams and the host optimizer run
 * side by side, and with gradient clipping the forward of a step trails the optimizer of
 * the step before it (a unit streams in only after its update). */
#include "timemodel.h"

#include "../runtime/hz_layout.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void tm_defaults(tm_ceilings *c)
{
    /* One H200, 16 cores, measured 2026-12-01 (bench/NOTES.md): .peers/ceilings.py's GEMM
     * 16k x 4096 x 11008 and pinned PCIe, its device copy rate. From the llama3-3b trace
     * (32k tokens per step): hzc's AdamW (fp32 gradients, 28 bytes per parameter, 0.889 s
     * per step) and the backward GEMMs' rate, the one that makes its backward take the
     * 1.097 s measured (checked against llama3-8b's compute stream: docs/plan.md). The
     * attention rates, measured 2026-12-02 (bench/NOTES.md "2026-12-02 (night)"): the bench
     * in tests/gpu/test_kernels.c at B=4 T=2048 NH=32 NKV=8 HD=128, hzc's kernels 242.4 /
     * 202.2 TFLOP/s forward / backward, cuDNN's fused SDPA through hzc 543.0 / 398.4. The
     * sliding windows (Gemma 3's local layers, head_dim 256 in every Gemma 3 but the 27B),
     * measured 2026-12-03 (bench/NOTES.md) at Gemma-3-12B's heads, B=16 T=2048 NH=16 NKV=8
     * HD=256, window 1024: cuDNN's banded graph 559.4 / 278.8, hzc's kernels 206.2 / 67.3. A
     * trainer built with cuDNN runs it for both kinds of layer (train --attention auto); one
     * built without runs hzc's kernels everywhere. */
#ifdef HZ_TM_CUDNN
    snprintf(c->name, sizeof c->name,
             "defaults: one H200, measured 2026-12-02; attention: cuDNN's fused SDPA");
#else
    snprintf(c->name, sizeof c->name,
             "defaults: one H200, measured 2026-12-02; attention: hzc's kernels");
#endif
    c->gpu[0] = 0; /* not a file's measurement: the trainer compares no device name */
    c->gemm_tflops = 752.9;
    c->gemm_bwd_tflops = 586.8;
#ifdef HZ_TM_CUDNN
    c->att_fwd_tflops = 543.0;
    c->att_bwd_tflops = 398.4;
    c->window_att_fwd_tflops = 559.4;
    c->window_att_bwd_tflops = 278.8;
#else
    c->att_fwd_tflops = 242.4;
    c->att_bwd_tflops = 202.2;
    c->window_att_fwd_tflops = 206.2;
    c->window_att_bwd_tflops = 67.3;
#endif
    c->hbm_gbps = 4240.1;
    c->h2d_gbps = 55.3;
    c->d2h_gbps = 55.1;
    c->host_adamw_gbps = 101.2;
    /* the compact moments' loops on the same machine's 16 threads, train --probe 2026-12-02
     * (fp32's in that probe: 106.5) */
    c->host_adamw_bf16_gbps = 71.55;
    c->host_adamw_int8_gbps = 74.01;
    /* the llama3-8b trainer's resident set when ready beyond its plan, measured 2026-12-02 */
    c->process_host_bytes = 492867584;
    /* several GPUs: the assumed rates (timemodel.h), until a multi-GPU machine is measured */
    c->host_h2d_total_gbps = 0.0;
    c->nccl_busbw_gbps = 0.0;
    c->net_busbw_gbps = 0.0; /* several hosts: assumed likewise */
}

double tm_host_h2d_gbps(const tm_ceilings *c)
{
    return c->host_h2d_total_gbps > 0 ? c->host_h2d_total_gbps
                                      : TM_ASSUMED_HOST_H2D_GPUS * c->h2d_gbps;
}

double tm_nccl_gbps(const tm_ceilings *c)
{
    return c->nccl_busbw_gbps > 0 ? c->nccl_busbw_gbps : TM_ASSUMED_NCCL_BUSBW_GBPS;
}

double tm_net_gbps(const tm_ceilings *c)
{
    return c->net_busbw_gbps > 0 ? c->net_busbw_gbps : TM_ASSUMED_NET_BUSBW_GBPS;
}

int tm_load(tm_ceilings *c, const char *path, char *note, size_t note_n, char *err,
            size_t err_n)
{
    /* an optional key is one a complete file may lack: train --probe writes the window
     * rates only for a plan with sliding windows; absent, they are 0 (the full rates) */
    static const struct {
        const char *key;
        size_t off;
        int optional;
    } keys[] = {
        {"gemm_tflops", offsetof(tm_ceilings, gemm_tflops), 0},
        {"gemm_bwd_tflops", offsetof(tm_ceilings, gemm_bwd_tflops), 0},
        {"attention_fwd_tflops", offsetof(tm_ceilings, att_fwd_tflops), 0},
        {"attention_bwd_tflops", offsetof(tm_ceilings, att_bwd_tflops), 0},
        {"window_attention_fwd_tflops", offsetof(tm_ceilings, window_att_fwd_tflops), 1},
        {"window_attention_bwd_tflops", offsetof(tm_ceilings, window_att_bwd_tflops), 1},
        {"hbm_gbps", offsetof(tm_ceilings, hbm_gbps), 0},
        {"h2d_gbps", offsetof(tm_ceilings, h2d_gbps), 0},
        {"d2h_gbps", offsetof(tm_ceilings, d2h_gbps), 0},
        {"host_adamw_gbps", offsetof(tm_ceilings, host_adamw_gbps), 0},
        {"host_adamw_bf16_gbps", offsetof(tm_ceilings, host_adamw_bf16_gbps), 0},
        {"host_adamw_int8_gbps", offsetof(tm_ceilings, host_adamw_int8_gbps), 0},
        {"process_host_bytes", offsetof(tm_ceilings, process_host_bytes), 0},
        /* several GPUs: absent, 0, the assumed rates (named by hzc plan --gpus) */
        {"host_h2d_total_gbps", offsetof(tm_ceilings, host_h2d_total_gbps), 1},
        {"nccl_busbw_gbps", offsetof(tm_ceilings, nccl_busbw_gbps), 1},
        {"net_busbw_gbps", offsetof(tm_ceilings, net_busbw_gbps), 1},
    };
    tm_defaults(c);
    note[0] = 0;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, err_n, "%s:%d:%d: error: not a ceilings file: %s", path, je.line,
                 je.column, je.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, err_n, "%s: error: a ceilings file is a JSON object of rates", path);
        json_decref(root);
        return -1;
    }
    size_t len = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(root, keys[i].key);
        double *dst = (double *)((char *)c + keys[i].off);
        if (!v && keys[i].optional) {
            *dst = 0.0;
            continue;
        }
        if (!v) {
            if (len < note_n)
                len += (size_t)snprintf(note + len, note_n - len, "%s%s", len ? ", " : "",
                                        keys[i].key);
            continue;
        }
        if (!json_is_number(v) || !(json_number_value(v) > 0)) {
            snprintf(err, err_n, "%s: error: \"%s\" must be a positive number (a rate)", path,
                     keys[i].key);
            json_decref(root);
            return -1;
        }
        *dst = json_number_value(v);
    }
    json_t *gpu = json_object_get(root, "gpu"), *mem = json_object_get(root, "gpu_mem_bytes");
    if (gpu && !json_is_string(gpu)) {
        snprintf(err, err_n, "%s: error: \"gpu\" must be a string (the device's name)", path);
        json_decref(root);
        return -1;
    }
    if (mem && (!json_is_number(mem) || !(json_number_value(mem) > 0))) {
        snprintf(err, err_n, "%s: error: \"gpu_mem_bytes\" must be a positive number (the "
                             "device's memory in bytes)", path);
        json_decref(root);
        return -1;
    }
    const char *name = gpu ? json_string_value(gpu) : "";
    snprintf(c->gpu, sizeof c->gpu, "%s", name);
    snprintf(c->name, sizeof c->name, "%s%s%s", path, *name ? ", " : "", name);
    json_decref(root);
    return 0;
}

/* Units whose updates run on the host (at least 1). */
/* One block's work for one micro-batch: FLOPs of its GEMMs and attention, bytes of its
 * elementwise kernels (2 a bf16 element read or written). A windowed block's queries score
 * W - W^2 / 2T keys on average, against T / 2 for causal attention (W = T gives the same);
 * Gemma 3's two output norms add a read and a write of the stream each way and their
 * backward three, and its recompute runs through the down projection, whose output the MLP
 * norm's backward reads. GeGLU moves what SwiGLU does. */
typedef struct block_cost {
    double gemm_fwd, gemm_rec, att_fwd, ew_fwd, ew_rec, ew_bwd, ew_kept, dw_acc;
    double gemm_down, ew_mlp_post; /* what a block keeping its MLP output skips of gemm_rec
                                    * and ew_rec: the down projection and its norm */
} block_cost;

static block_cost block_cost_of(const hz_dims *d, int64_t window)
{
    double N = (double)d->micro_tokens, C = (double)d->C, F = (double)d->F, T = (double)d->T;
    double A = (double)(d->NH * d->HD), QKV = A + 2.0 * (double)(d->NKV * d->HD);
    double W = (double)window, keys = window > 0 && W < T ? W - W * W / (2.0 * T) : T / 2.0;
    double post = d->post_norms ? 1.0 : 0.0;
    block_cost b;
    double block_params = C * QKV + A * C + 3.0 * C * F;
    b.gemm_fwd = 2.0 * N * block_params;
    b.gemm_rec = b.gemm_fwd - (1.0 - post) * 2.0 * N * F * C; /* the recompute stops before down */
    b.att_fwd = 4.0 * N * keys * A;
    /* without post norms the down projection's epilogue reads the residual (one C, against
     * an add's three); the recompute stops before it */
    b.ew_fwd = 2.0 * N * (7.0 * C + 2.0 * QKV + 3.0 * F + post * 6.0 * C);
    b.ew_rec = b.ew_fwd - 2.0 * N * (1.0 + post) * C;
    b.ew_bwd = 2.0 * N * (5.0 * F + 8.0 * C + 2.0 * QKV + 2.0 * A + post * 6.0 * C);
    b.ew_kept = 2.0 * N * (4.0 * C + 3.0 * F); /* a kept block's two norms and gated product */
    b.dw_acc = 8.0 * block_params; /* fp32 gradients read and written by the dW GEMMs */
    b.gemm_down = post * 2.0 * N * F * C;
    b.ew_mlp_post = post * 2.0 * N * 2.0 * C;
    return b;
}

/* The attention rates, in FLOP/s, of a block with WINDOW (0: full causal): a sliding-window
 * block runs hzc's kernels where the full layers may run cuDNN's, so it takes the window
 * rates where the ceilings have them (> 0), else the full layers'. */
typedef struct att_rate {
    double fwd, bwd;
} att_rate;

static att_rate att_rate_of(const tm_ceilings *c, int64_t window)
{
    double fwd = c->att_fwd_tflops, bwd = c->att_bwd_tflops;
    if (window > 0 && c->window_att_fwd_tflops > 0) fwd = c->window_att_fwd_tflops;
    if (window > 0 && c->window_att_bwd_tflops > 0) bwd = c->window_att_bwd_tflops;
    att_rate r = {fwd * 1e12, bwd * 1e12};
    return r;
}

/* Seconds of one block's forward for one micro-batch (B its cost, WINDOW its window). */
static double block_fwd_s(const block_cost *b, const tm_ceilings *c, int64_t window)
{
    return b->gemm_fwd / (c->gemm_tflops * 1e12) + b->att_fwd / att_rate_of(c, window).fwd +
           b->ew_fwd / (c->hbm_gbps * 1e9);
}

/* Seconds of its backward: dx and dW, the attention backward, the elementwise kernels, and
 * the recompute as REC says (enum hz_recompute: a kept block's elementwise part only; one
 * keeping its MLP output, all but the down projection and its norm). */
static double block_bwd_s(const block_cost *b, const tm_ceilings *c, int64_t window, int rec)
{
    double G = c->gemm_tflops * 1e12, GB = c->gemm_bwd_tflops * 1e12, H = c->hbm_gbps * 1e9;
    att_rate a = att_rate_of(c, window);
    double skip = rec == HZ_RECOMPUTE_MLP_OUT ? 1.0 : 0.0;
    double recompute = rec == HZ_RECOMPUTE_KEPT
                           ? b->ew_kept / H
                           : (b->gemm_rec - skip * b->gemm_down) / G + b->att_fwd / a.fwd +
                                 (b->ew_rec - skip * b->ew_mlp_post) / H;
    return 2.0 * b->gemm_fwd / GB + 2.5 * b->att_fwd / a.bwd + (b->ew_bwd + b->dw_acc) / H +
           recompute;
}

static double units_of(const hz_plan *p)
{
    int n = 0;
    for (int i = 0; i < p->unit_n; i++) n += !p->units[i].resident;
    return n > 0 ? n : 1;
}

/* The master and moments an AdamW update reads and writes per parameter: w, lo, m, v (and
 * int8's block scales): 24 bytes with fp32 moments, 16 with bf16, 12.25 with int8. */
static double host_state_bytes(const hz_plan *p)
{
    return 2.0 * (4.0 + (double)hz_arr_block_bytes(p->optimizer_state, 0, HZ_ARR_M) / 32.0 +
                  (double)hz_arr_block_bytes(p->optimizer_state, 0, HZ_ARR_MS) / 32.0);
}

/* The host AdamW's rate (bytes of that traffic, plus the gradient's, per second) in the
 * plan's moment precision: its own measured key, or where a ceilings file has none (0), the
 * fp32 loop's time per parameter (bf16 and int8 moves fewer bytes but computes more). */
static double host_adamw_rate(const hz_plan *p, const tm_ceilings *c)
{
    double g = p->host_grad_bf16 ? 2.0 : 4.0;
    double own = p->optimizer_state == HZ_OPTSTATE_BF16   ? c->host_adamw_bf16_gbps
                 : p->optimizer_state == HZ_OPTSTATE_INT8 ? c->host_adamw_int8_gbps
                                                          : c->host_adamw_gbps;
    if (own > 0) return own * 1e9;
    return c->host_adamw_gbps * 1e9 * (host_state_bytes(p) + g) / (24.0 + g);
}

/* The h2d rate one GPU's copies get, in bytes per second: its own link's, or with several
 * GPUs its share of the host's total where that is less (they all copy at once). */
static double h2d_rate(const hz_plan *p, const tm_ceilings *c)
{
    double gpus = (double)hz_gpus(&p->dims), own = c->h2d_gbps;
    if (gpus > 1 && tm_host_h2d_gbps(c) / gpus < own) own = tm_host_h2d_gbps(c) / gpus;
    return own * 1e9;
}

/* The gradients unit U stores (a tied head's lm_head is the embedding's). */
static double unit_grads(const hz_plan *p, const hz_unit *u)
{
    double grads = 0.0;
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *t = &p->tensors[u->first_tensor + k];
        if (t->store_grad) grads += (double)(t->rows * t->cols);
    }
    return grads;
}

/* Seconds of unit U's gradients made ready for the host at the end of its last micro-batch
 * (runtime/cuda/model.c hzcu_grads_ready): their squares summed for the norm (4 bytes a
 * parameter read) and, for a streamed unit whose host takes bf16 gradients, their cast (4
 * read, 2 written). With one GPU they run on the compute stream, and are counted in the
 * backward (the head's in the loss head); with several GPUs or hosts on GPU 0's d2h stream,
 * after the unit's sum over them, and counted with its copies. */
static int one_gpu(const hz_dims *d) { return hz_gpus(d) * hz_hosts(d) == 1; }

static double grads_ready_s(const hz_plan *p, const hz_unit *u, double hbm)
{
    double cast = p->host_grad_bf16 && !u->resident && !u->held ? 6.0 : 0.0;
    return unit_grads(p, u) * (4.0 + cast) / hbm;
}

double tm_grads_ready_seconds(const hz_plan *p, const tm_ceilings *c, int head)
{
    double t = 0.0;
    for (int i = 0; i < p->unit_n; i++)
        if ((p->units[i].kind == HZ_HEAD) == (head != 0))
            t += grads_ready_s(p, &p->units[i], c->hbm_gbps * 1e9);
    return t;
}

double tm_nccl_seconds(const hz_plan *p, const tm_ceilings *c)
{
    double n = (double)hz_gpus(&p->dims), bytes = 0.0;
    if (n <= 1) return 0.0;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        bytes += (u->resident ? 2.0 : 1.0) * (n - 1.0) / n * 4.0 * unit_grads(p, u);
    }
    return bytes / (tm_nccl_gbps(c) * 1e9);
}

double tm_net_seconds(const hz_plan *p, const tm_ceilings *c)
{
    double h = (double)hz_hosts(&p->dims), bytes = 0.0;
    if (h <= 1) return 0.0;
    for (int i = 0; i < p->unit_n; i++)
        bytes += 2.0 * (h - 1.0) / h * 4.0 * unit_grads(p, &p->units[i]);
    return bytes / (tm_net_gbps(c) * 1e9);
}

void tm_predict(hz_plan *p, const tm_ceilings *c)
{
    const hz_dims *d = &p->dims;
    double N = (double)d->micro_tokens, C = (double)d->C, V = (double)d->V;
    /* one GPU's share of the step: its compute runs beside the others' */
    double M = (double)hz_gpu_n_micro(d), K = (double)d->chunk_tokens;
    double G = c->gemm_tflops * 1e12, H = c->hbm_gbps * 1e9;
    double emb = 4.0 * N * C;
    double *ph = p->pred.phase_s;
    ph[HZ_PH_FWD] = M * emb / H;
    ph[HZ_PH_BWD] = M * 2.0 * emb / H;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        if (u->kind != HZ_BLOCK) continue;
        block_cost b = block_cost_of(d, u->window);
        ph[HZ_PH_FWD] += M * block_fwd_s(&b, c, u->window);
        ph[HZ_PH_BWD] += M * block_bwd_s(&b, c, u->window, hz_unit_recompute(u));
    }
    /* lm_head forward, dx and dW per chunk; the loss reads logits and writes dlogits;
     * dlm_head (fp32) is read and written once per chunk */
    ph[HZ_PH_LOSS] = M * (6.0 * N * V * C / G + (4.0 * N * V + 32.0 * N * C) / H +
                          N / K * 8.0 * V * C / H);
    double ready = tm_grads_ready_seconds(p, c, 0), ready_head = tm_grads_ready_seconds(p, c, 1);
    double ready_d2h = one_gpu(d) ? 0.0 : ready + ready_head;
    if (one_gpu(d)) ph[HZ_PH_BWD] += ready, ph[HZ_PH_LOSS] += ready_head;
    int64_t h2d = 0, d2h = 0;
    hz_plan_pcie_bytes(p, &h2d, &d2h);
    /* GPU 0's copies: every GPU's h2d are alike, and only GPU 0 sends gradients home */
    ph[HZ_PH_H2D] = (double)h2d / h2d_rate(p, c);
    ph[HZ_PH_D2H] = (double)d2h / (c->d2h_gbps * 1e9) + ready_d2h;
    /* each unit's sum runs on its own stream after the unit's last backward, as its d2h */
    ph[HZ_PH_NCCL] = tm_nccl_seconds(p, c);
    /* and with several hosts, each unit's host sum crosses the network after it */
    ph[HZ_PH_NET] = tm_net_seconds(p, c);
    /* host AdamW: w, lo, m, v (and int8's block scales) read and written plus the gradient,
     * per streamed parameter (fp32 moments: 24 + the gradient; a held unit's gradient is fp32,
     * from its staging slot); the GPU's: the same plus the
     * fp32 gradient per resident parameter (fp32: 28). The rate is the fp32 loop's (probe). */
    double state = host_state_bytes(p);
    double per_param = state + (p->host_grad_bf16 ? 2.0 : 4.0);
    double host_rate = host_adamw_rate(p, c);
    ph[HZ_PH_OPT] = ph[HZ_PH_GPU_OPT] = 0.0;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        if (u->resident)
            ph[HZ_PH_GPU_OPT] += (double)u->padded_n * (state + 4.0) / H;
        else
            ph[HZ_PH_OPT] += (double)u->padded_n * (u->held ? state + 4.0 : per_param) / host_rate;
    }

    double compute = ph[HZ_PH_FWD] + ph[HZ_PH_LOSS] + ph[HZ_PH_BWD] + ph[HZ_PH_GPU_OPT];
    double step = compute;
    int crit = ph[HZ_PH_BWD] >= ph[HZ_PH_FWD] ? HZ_PH_BWD : HZ_PH_FWD;
    if (p->train.grad_clip > 0 || p->fetch_n > 0) {
        /* the updates of step s start when its norm is known, at the end of step s (with held
         * units, in forward order too): the GPU's on the compute stream before the next
         * forward, the host's in forward order beside it, a held unit's once its gradients
         * have crossed to the host (the fetches queue on the d2h stream from the step's end);
         * a streamed unit's forward (the head's: the loss) starts after its update */
        double t = ph[HZ_PH_GPU_OPT], h = 0.0, fetched = 0.0, d2h_rate = c->d2h_gbps * 1e9;
        for (int i = 0; i < p->unit_n; i++) {
            const hz_unit *u = &p->units[i];
            block_cost b = block_cost_of(d, u->window);
            double f = u->kind == HZ_HEAD    ? ph[HZ_PH_LOSS]
                       : u->kind == HZ_EMBED ? M * emb / H
                                             : M * block_fwd_s(&b, c, u->window);
            if (u->held) {
                fetched += 4.0 * (double)hz_unit_grads_n(p->tensors, u) / d2h_rate;
                if (fetched > h) h = fetched;
            }
            if (!u->resident) {
                h += (double)u->padded_n * (u->held ? state + 4.0 : per_param) / host_rate;
                if (h > t) t = h;
            }
            t += f;
        }
        double gated = t + ph[HZ_PH_BWD];
        if (gated > compute) step = gated;
        if (gated - compute > 0.05 * gated) crit = HZ_PH_OPT; /* it, not compute, sets the step */
    } else if (ph[HZ_PH_OPT] + ph[HZ_PH_OPT] / units_of(p) > compute) {
        step = ph[HZ_PH_OPT] + ph[HZ_PH_OPT] / units_of(p); /* updates trail the gradients */
        crit = HZ_PH_OPT;
    }
    /* the streams beside the compute: the step is at least each one's work. The sums over
     * the GPUs and the hosts run on the d2h stream ahead of each unit's copy
     * (runtime/cuda/ranks.c), so that stream's work is the three together; the largest of
     * them is named when it sets the step */
    if (ph[HZ_PH_H2D] > step) {
        step = ph[HZ_PH_H2D];
        crit = HZ_PH_H2D;
    }
    double d2h_stream = ph[HZ_PH_D2H] + ph[HZ_PH_NCCL] + ph[HZ_PH_NET];
    if (d2h_stream > step) {
        step = d2h_stream;
        crit = HZ_PH_D2H;
        if (ph[HZ_PH_NCCL] > ph[crit]) crit = HZ_PH_NCCL;
        if (ph[HZ_PH_NET] > ph[crit]) crit = HZ_PH_NET;
    }
    p->pred.step_s = step;
    p->pred.critical = crit;
    p->pred.process_host_bytes = (int64_t)c->process_host_bytes;
    p->pred.gemm_tflops = c->gemm_tflops;
    p->pred.hbm_gbps = c->hbm_gbps;
    p->pred.h2d_gbps = c->h2d_gbps;
    p->pred.d2h_gbps = c->d2h_gbps;
    p->pred.host_h2d_gbps = tm_host_h2d_gbps(c);
    p->pred.nccl_busbw_gbps = tm_nccl_gbps(c);
    p->pred.net_busbw_gbps = tm_net_gbps(c);
}

void tm_critical_text(const hz_plan *p, char *buf, size_t n)
{
    const hz_predict *r = &p->pred;
    const double *ph = r->phase_s;
    switch (r->critical) {
    case HZ_PH_OPT:
        snprintf(buf, n,
                 "host optimizer: %.2f s of updates; the next step's forward waits for them "
                 "(%.2f s of the %.2f s step are not compute)",
                 ph[HZ_PH_OPT],
                 r->step_s - (ph[HZ_PH_FWD] + ph[HZ_PH_LOSS] + ph[HZ_PH_BWD] + ph[HZ_PH_GPU_OPT]),
                 r->step_s);
        break;
    case HZ_PH_H2D:
    case HZ_PH_D2H: {
        char shared[96] = "";
        int64_t gpus = hz_gpus(&p->dims);
        if (r->critical == HZ_PH_H2D && gpus > 1 && r->host_h2d_gbps < (double)gpus * r->h2d_gbps)
            snprintf(shared, sizeof shared, " (%lld GPUs share the host's %.1f GB/s)",
                     (long long)gpus, r->host_h2d_gbps);
        snprintf(buf, n, "%s: %.2f s of copies%s, more than the %.2f s of compute",
                 hz_phase_names[r->critical], ph[r->critical], shared,
                 ph[HZ_PH_FWD] + ph[HZ_PH_LOSS] + ph[HZ_PH_BWD]);
        break;
    }
    case HZ_PH_NCCL:
    case HZ_PH_NET: { /* the sums between one host's GPUs, or between the hosts */
        int net = r->critical == HZ_PH_NET;
        snprintf(buf, n, "%s: %.2f s of gradient sums across %lld %s at %g GB/s, on the d2h "
                         "stream with its %.2f s of copies, more than the %.2f s of compute",
                 hz_phase_names[r->critical], ph[r->critical],
                 (long long)(net ? hz_hosts(&p->dims) : hz_gpus(&p->dims)), net ? "hosts" : "GPUs",
                 net ? r->net_busbw_gbps : r->nccl_busbw_gbps,
                 r->step_s - ph[r->critical], ph[HZ_PH_FWD] + ph[HZ_PH_LOSS] + ph[HZ_PH_BWD]);
        break;
    }
    default:
        snprintf(buf, n, "compute stream: %.2f s, of which %s %.2f s",
                 ph[HZ_PH_FWD] + ph[HZ_PH_LOSS] + ph[HZ_PH_BWD] + ph[HZ_PH_GPU_OPT],
                 hz_phase_names[r->critical], ph[r->critical]);
    }
}

void tm_print(const hz_plan *p, FILE *out)
{
    const hz_predict *r = &p->pred;
    char crit[256];
    tm_critical_text(p, crit, sizeof crit);
    fprintf(out, "\npredicted step time (%s)\n", r->ceilings ? r->ceilings : "?");
    for (int k = 0; k < hz_plan_phase_n(p); k++)
        fprintf(out, "  %-34s %10.3f s\n", hz_phase_names[k], r->phase_s[k]);
    char rates[128];
    tm_rates_text(p, rates, sizeof rates);
    fprintf(out, "  %-34s %10.3f s  %s\n", "step", r->step_s, rates);
    fprintf(out, "  critical path: %s\n", crit);
}

void tm_rates_text(const hz_plan *p, char *buf, size_t n)
{
    double step = p->pred.step_s, tokens = (double)p->dims.step_tokens;
    double tflops = hz_flops_per_token(&p->dims) * tokens / step * 1e-12;
    int64_t gpus = hz_gpus(&p->dims) * hz_hosts(&p->dims);
    int len = snprintf(buf, n, "(%.0f tokens/s, %.1f model TFLOP/s", tokens / step, tflops);
    if (gpus > 1 && len > 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, ", %.1f a GPU", tflops / (double)gpus);
    if (len > 0 && (size_t)len < n) snprintf(buf + len, n - (size_t)len, ")");
}

/* ---- the predicted timeline of one step, op by op ---- */

double tm_op_seconds(const hz_plan *p, const tm_ceilings *c, int i)
{
    const hz_dims *d = &p->dims;
    const hz_op *o = &p->ops[i];
    const hz_unit *u = &p->units[o->unit];
    /* the terms of tm_predict, for one block (or unit) and one micro-batch */
    double N = (double)d->micro_tokens, C = (double)d->C, V = (double)d->V;
    double K = (double)d->chunk_tokens, H = c->hbm_gbps * 1e9;
    int64_t window = u->kind == HZ_BLOCK ? u->window : 0;
    block_cost b = block_cost_of(d, window);
    double emb = 4.0 * N * C;
    double G = c->gemm_tflops * 1e12;
    int64_t bytes = 0;
    /* the unit's last micro-batch also makes its gradients ready (several GPUs: its STORE_G) */
    int one = one_gpu(d);
    double ready = one && o->micro == hz_gpu_n_micro(d) - 1 ? grads_ready_s(p, u, H) : 0.0;
    switch (o->kind) {
    case HZ_FWD:
        return u->kind == HZ_EMBED ? emb / H : block_fwd_s(&b, c, window);
    case HZ_LOSS:
        return 6.0 * N * V * C / G + (4.0 * N * V + 32.0 * N * C) / H + N / K * 8.0 * V * C / H +
               ready;
    case HZ_BWD:
        if (u->kind == HZ_EMBED) return 2.0 * emb / H + ready;
        return block_bwd_s(&b, c, window, hz_unit_recompute(u)) + ready;
    case HZ_LOAD_W:
    case HZ_STORE_G:
        for (int k = 0; k < u->tensor_n; k++) {
            const hz_tensor *x = &p->tensors[u->first_tensor + k];
            if (o->kind == HZ_LOAD_W) bytes += 2 * x->rows * x->cols;
            else if (x->store_grad && !u->resident)
                bytes += (p->host_grad_bf16 ? 2 : 4) * x->rows * x->cols;
        }
        if (o->kind == HZ_LOAD_W) return (double)bytes / h2d_rate(p, c);
        return (double)bytes / (c->d2h_gbps * 1e9) + (one ? 0.0 : grads_ready_s(p, u, H));
    case HZ_LOAD_B:
        return 2.0 * (double)hz_gpu_step_tokens(d) * C / h2d_rate(p, c);
    case HZ_STORE_B:
        return 2.0 * (double)hz_gpu_step_tokens(d) * C / (c->d2h_gbps * 1e9);
    case HZ_OPT:
        if (u->resident) return (double)u->padded_n * (host_state_bytes(p) + 4.0) / H;
        return (double)u->padded_n *
               (host_state_bytes(p) + (u->held ? 4.0 : p->host_grad_bf16 ? 2.0 : 4.0)) /
               host_adamw_rate(p, c);
    default:
        return 0.0;
    }
}

double tm_timeline(const hz_plan *p, const tm_ceilings *c, double *t0, double *t1)
{
    double stream_end[HZ_STREAM_KIND_N] = {0};
    double *upd_end = calloc((size_t)p->unit_n, sizeof *upd_end);
    if (!upd_end) return -1.0;
    int gated = p->train.grad_clip > 0;
    /* with clipping, the previous step's updates open the step, in forward order */
    for (int i = 0; gated && i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (o->kind != HZ_OPT) continue;
        t0[i] = stream_end[o->stream];
        t1[i] = upd_end[o->unit] = t0[i] + tm_op_seconds(p, c, i);
        stream_end[o->stream] = t1[i];
    }
    double span = 0.0;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (gated && o->kind == HZ_OPT) continue;
        double s = stream_end[o->stream];
        for (int w = 0; w < HZ_OP_WAITS; w++)
            if (o->wait[w] >= 0 && t1[o->wait[w]] > s) s = t1[o->wait[w]];
        /* a unit streams in once its update is applied; a resident one computes after it */
        if (gated && (o->kind == HZ_LOAD_W || o->kind == HZ_FWD || o->kind == HZ_LOSS) &&
            upd_end[o->unit] > s)
            s = upd_end[o->unit];
        t0[i] = s;
        t1[i] = s + tm_op_seconds(p, c, i);
        stream_end[o->stream] = t1[i];
        if (t1[i] > span) span = t1[i];
    }
    for (int i = 0; i < p->op_n; i++)
        if (t1[i] > span) span = t1[i];
    free(upd_end);
    return span;
}
