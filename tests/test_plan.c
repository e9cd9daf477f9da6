/* tests/test_plan.c - the planner's invariants on every shipped model: regions do not
 * overlap and are aligned, totals are the sum of their parts, the host store is 12 bytes
 * per parameter plus gradients and documented extras, GPU bytes do not grow with the
 * number of layers (beyond the boundary store), and the schedule's waits are sound. */
#include <stdlib.h>
#include <string.h>

#include "hz_layout.h"
#include "plan.h"
#include "spec.h"
#include "test.h"
#include "timemodel.h"

static const char *const models[] = {"models/tiny.yaml", "models/llama3-1b.yaml",
                                     "models/llama3-3b.yaml", "models/llama3-8b.yaml",
                                     "models/qwen2.5-0.5b.yaml", "models/qwen2.5-7b.yaml",
                                     "models/mistral-7b.yaml", "models/qwen3-0.6b.yaml",
                                     "models/qwen3-8b.yaml", "models/qwen3-14b.yaml",
                                     "models/gemma3-1b.yaml", "models/gemma3-4b.yaml",
                                     "models/gemma3-12b.yaml", "models/gemma3-27b.yaml"};

/* The buffer lists of runtime/hz_layout.h: every buffer lies inside its region, after the
 * previous one, aligned for its element type; the workspace has the size of the list the
 * block code uses, counted here by hand: the saved forward activations (bf16: q k v att
 * xmid gu, with qk_norm qpre kpre, with post norms ao mo; fp32: two rstd, lse, with qk_norm
 * rstdq rstdk, with post norms two more rstd), then the scratch (bf16: the recomputed xn xn2
 * h, qkv and the gradients; fp32: the deterministic partials). */
static int64_t al256(int64_t b) { return (b + 255) / 256 * 256; }
static int64_t pages(int64_t b) { return (b + 4095) / 4096 * 4096; }

static void check_layout(const char *name, const hz_plan *p)
{
    const hz_dims *d = &p->dims;
    int64_t N = d->micro_tokens, C = d->C, F = d->F, A = d->NH * d->HD, KV = d->NKV * d->HD;
    int64_t QKV = A + 2 * KV;
    int64_t QN = d->qk_norm ? 1 : 0, PN = d->post_norms ? 1 : 0;
    int64_t saved_bf = N * (A + 2 * KV + A + C + 2 * F) + QN * N * (A + KV) + PN * 2 * N * C;
    int64_t saved_f32 = 2 * N + d->B * d->NH * d->T + QN * N * (d->NH + d->NKV) + PN * 2 * N;
    int64_t scratch_bf = N * (C + C + F + QKV + F + 2 * F + C + C + A + A + 2 * KV + QKV + C);
    int64_t part = HZ_PART_ROWS * (C > QKV ? C : QKV);
    int64_t saved = al256(2 * saved_bf) + al256(4 * saved_f32);
    int64_t want = saved + al256(2 * scratch_bf) + al256(4 * part);
    CHECK(hz_saved_layout(d, 2) == saved, "%s: saved activations %lld bytes = the hand count %lld",
          name, (long long)hz_saved_layout(d, 2), (long long)saved);
    CHECK(p->work_bytes == want && p->regions[HZ_WORK].bytes == want,
          "%s: workspace %lld bytes = the hand count %lld", name, (long long)p->work_bytes,
          (long long)want);
    int64_t off[HZ_WORK_BUF_N], loss_off[HZ_LOSS_BUF_N];
    hz_work_layout(d, 2, off);
    int64_t loss = hz_loss_layout(d, 2, loss_off);
    int ordered = 1;
    /* non-decreasing: the qk_norm buffers take no room without it */
    for (int i = 1; i < HZ_WORK_BUF_N; i++) ordered &= off[i] >= off[i - 1] && off[i] % 2 == 0;
    ordered &= off[HZ_WORK_rstd1] % 256 == 0 && off[HZ_WORK_part] < p->work_bytes;
    for (int i = 1; i < HZ_LOSS_BUF_N; i++) ordered &= loss_off[i] > loss_off[i - 1];
    CHECK(ordered && loss == p->regions[HZ_LOSSBUF].bytes,
          "%s: buffers ordered and inside their regions (loss head %lld bytes)", name,
          (long long)loss);
    CHECK(p->regions[HZ_SCALARS].bytes >= 8 * HZ_SCALAR_N && HZ_SC_SUMSQ_PARTS == 1 &&
              HZ_SC_NONFINITE == 1 + HZ_SUMSQ_PARTS && HZ_SCALAR_N == 2 + HZ_SUMSQ_PARTS,
          "%s: scalars hold %d doubles", name, HZ_SCALAR_N);
}

static void check_plan(const char *name, const hzc_plan *pl)
{
    const hz_plan *p = &pl->p;
    /* arena: contiguous, aligned, non-overlapping, sums to gpu_bytes */
    int64_t end = 0, sum = 0;
    int aligned = 1, contiguous = 1;
    for (int k = 0; k < HZ_REGION_KIND_N; k++) {
        const hz_region *r = &p->regions[k];
        aligned &= r->offset_bytes % PLAN_ALIGN_BYTES == 0 && r->slot_bytes % PLAN_ALIGN_BYTES == 0;
        contiguous &= r->offset_bytes == end && r->bytes == r->slot_bytes * r->count;
        end = r->offset_bytes + r->bytes;
        sum += r->bytes;
    }
    CHECK(aligned, "%s: every region and slot is %d-byte aligned", name, PLAN_ALIGN_BYTES);
    /* the loss chunk divides the micro-batch; it is the largest such power-of-two share
     * whose logits take at most PLAN_CHUNK_BYTES, but never under PLAN_CHUNK_MIN_TOKENS
     * (a large vocabulary's lm_head gradient GEMM would wait on its fp32 accumulator) */
    const hz_dims *d = &p->dims;
    int64_t kc = d->chunk_tokens, mt = d->micro_tokens, want = mt;
    while (want * d->V * 2 > PLAN_CHUNK_BYTES && want % 2 == 0 && want > PLAN_CHUNK_MIN_TOKENS)
        want /= 2;
    CHECK(kc == want && mt % kc == 0 && (kc >= PLAN_CHUNK_MIN_TOKENS || kc == mt ||
                                        kc * d->V * 2 <= PLAN_CHUNK_BYTES),
          "%s: loss chunk %lld tokens of a %lld-token micro-batch, V %lld (%.0f MiB of logits)",
          name, (long long)kc, (long long)mt, (long long)d->V, kc * d->V * 2 / 1048576.0);
    if (d->V > 200000 && mt >= PLAN_CHUNK_MIN_TOKENS)
        CHECK(kc == PLAN_CHUNK_MIN_TOKENS, "%s: a %lld-entry vocabulary keeps %d-token chunks, "
              "not the %lld that 256 MiB of logits would allow", name, (long long)d->V,
              PLAN_CHUNK_MIN_TOKENS, (long long)(PLAN_CHUNK_BYTES / (d->V * 2)));
    check_layout(name, p);
    CHECK(contiguous, "%s: regions follow each other without overlap", name);
    CHECK(sum == p->gpu_bytes, "%s: gpu_bytes %lld = sum of regions %lld", name,
          (long long)p->gpu_bytes, (long long)sum);

    /* host store: units tile [0, host_store_n); tensors inside their unit, aligned */
    int64_t next = 0, params = 0;
    int tiled = 1, inside = 1, slot_ok = 1;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        tiled &= u->host_n == next;
        next = u->host_n + u->padded_n;
        params += u->params_n;
        int64_t slot_end = 0;
        for (int k = 0; k < u->tensor_n; k++) {
            const hz_tensor *t = &p->tensors[u->first_tensor + k];
            int owned = t->host_n >= u->host_n && t->host_n < u->host_n + u->padded_n;
            if (owned) inside &= t->host_n + t->rows * t->cols <= u->host_n + u->padded_n;
            else inside &= p->dims.tied && t->kind == HZ_LM_HEAD && !t->store_grad;
            slot_ok &= t->slot_n % PLAN_ALIGN_N == 0 && t->slot_n >= slot_end &&
                       2 * (t->slot_n + t->rows * t->cols) <= p->regions[HZ_WSLOT].slot_bytes;
            slot_end = t->slot_n + t->rows * t->cols;
        }
    }
    CHECK(tiled && next == p->host_store_n, "%s: units tile the host store (%lld elements)", name,
          (long long)p->host_store_n);
    CHECK(inside, "%s: tensors lie inside their unit's host range (tied lm_head excepted)", name);
    CHECK(slot_ok, "%s: tensors are aligned, ordered and fit a weight slot", name);
    CHECK(params == p->params_n, "%s: params %lld = sum over units", name, (long long)params);
    int64_t per = 12 + (p->host_grad_bf16 ? 2 : 4);
    int64_t bnd = p->boundary_on_host ? 2 * p->dims.L * p->dims.step_tokens * p->dims.C : 0;
    int64_t n = p->host_store_n, gb = p->host_grad_bf16 ? 2 : 4;
    int64_t arrays = 2 * pages(2 * n) + 2 * pages(4 * n) + pages(gb * n); /* all backed */
    int64_t sc = p->regions[HZ_SCALARS].bytes; /* the step's scalars, pinned */
    CHECK(p->host_bytes == arrays + p->dims.step_tokens * 12 + bnd + sc && arrays >= per * n &&
              arrays < per * n + 5 * 4096,
          "%s: host bytes = the five arrays (%lld per element, each rounded up to pages) + 12 "
          "per step token + %lld of host boundaries + the %lld bytes of the step's scalars",
          name, (long long)per, (long long)bnd, (long long)sc);
    CHECK(p->host_store_n - p->params_n < (int64_t)p->tensor_n * PLAN_ALIGN_N,
          "%s: padding %lld elements < %d per tensor", name,
          (long long)(p->host_store_n - p->params_n), PLAN_ALIGN_N);

    /* schedule: waits point backwards; a slot is reloaded only after its last reader */
    int back = 1, slot_safe = 1, loads = 0;
    int *last_reader = calloc((size_t)pl->n_wslots, sizeof(int));
    for (int s = 0; s < pl->n_wslots; s++) last_reader[s] = -1;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        for (int w = 0; w < HZ_OP_WAITS; w++) back &= o->wait[w] < i;
        if (o->kind == HZ_LOAD_W) {
            loads++;
            int waits = last_reader[o->slot] < 0;
            for (int w = 0; w < HZ_OP_WAITS; w++) waits |= o->wait[w] == last_reader[o->slot];
            slot_safe &= waits;
        } else if (o->slot >= 0 && (o->kind == HZ_FWD || o->kind == HZ_LOSS || o->kind == HZ_BWD)) {
            last_reader[o->slot] = i;
        }
    }
    free(last_reader);
    /* updates: with clipping after the last store_g (the global norm), in forward order;
     * without, each after its own unit's store_g, in the order the gradients arrive */
    int last_store = -1, opt_ok = 1, opt_n = 0, prev_unit = -1;
    for (int i = 0; i < p->op_n; i++)
        if (p->ops[i].kind == HZ_STORE_G) last_store = i;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (o->kind != HZ_OPT) continue;
        opt_n++;
        const hz_op *w = o->wait[0] >= 0 ? &p->ops[o->wait[0]] : NULL;
        if (p->train.grad_clip > 0)
            opt_ok &= o->wait[0] == last_store && o->unit == prev_unit + 1;
        else
            opt_ok &= w && w->kind == HZ_STORE_G && w->unit == o->unit &&
                      (prev_unit < 0 ? o->unit == p->unit_n - 1 : o->unit == prev_unit - 1);
        prev_unit = o->unit;
    }
    CHECK(opt_ok && opt_n == p->unit_n, "%s: %d updates, %s", name, opt_n,
          p->train.grad_clip > 0 ? "after the global norm, in forward order"
                                 : "each after its own gradients, in backward order");
    CHECK(back, "%s: every op waits only on earlier ops (%d ops)", name, p->op_n);
    CHECK(slot_safe, "%s: every reload of a weight slot waits for its last reader (%d loads)",
          name, loads);
    CHECK(loads == 2 * (int)p->dims.L + 2, "%s: weights cross PCIe once per pass: %d loads",
          name, loads);

    /* host boundaries: boundary j < L goes out once and comes back once (but the last
     * block's, still resident); a buffer is rewritten only after its readers on other
     * streams; every block's backward waits for its boundary's load */
    if (!p->boundary_on_host) return;
    int stores = 0, bloads = 0, ordered = 1;
    int last_use[2][HZ_STREAM_KIND_N];
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < HZ_STREAM_KIND_N; k++) last_use[b][k] = -1;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        const hz_unit *u = &p->units[o->unit];
        int reads = -1, writes = -1;
        if (o->kind == HZ_STORE_B) stores++, reads = o->bnd % 2;
        if (o->kind == HZ_LOAD_B) bloads++, writes = o->bnd % 2;
        if (o->kind == HZ_FWD) writes = (u->layer + 1) % 2, reads = u->kind == HZ_BLOCK ? u->layer % 2 : -1;
        if (o->kind == HZ_LOSS) reads = (int)(p->dims.L % 2);
        if (o->kind == HZ_BWD && u->kind == HZ_BLOCK) reads = u->layer % 2;
        if (writes >= 0)
            for (int k = 0; k < HZ_STREAM_KIND_N; k++) {
                if (k == o->stream || last_use[writes][k] < 0) continue;
                int waited = 0;
                for (int w = 0; w < HZ_OP_WAITS; w++) waited |= o->wait[w] == last_use[writes][k];
                ordered &= waited;
            }
        if (reads >= 0) last_use[reads][o->stream] = i;
        if (writes >= 0) last_use[writes][o->stream] = i;
    }
    CHECK(stores == p->dims.L && bloads == p->dims.L - 1,
          "%s: host boundaries: %d store_b (want L = %lld), %d load_b (want L - 1)", name, stores,
          (long long)p->dims.L, bloads);
    CHECK(ordered, "%s: host boundaries: every write of a GPU buffer waits for its readers on "
                   "other streams", name);
}

/* Backend capabilities: one table, asked by name. */
static void check_caps(void)
{
    const hz_caps *cuda = hz_caps_find("cuda"), *cpu = hz_caps_find("cpu");
    char list[64];
    CHECK(cuda && cpu && !hz_caps_find("metal"), "backends found by name, unknown ones not");
    if (!cuda || !cpu) return;
    int ok128 = hz_caps_head_dim_ok(cuda, 128, list, sizeof list);
    CHECK(ok128 && !hz_caps_head_dim_ok(cuda, 96, NULL, 0) && strcmp(list, "32, 64, 128, 256") == 0,
          "cuda runs head_dim 128 and Gemma 3's 256, not 96; lists \"%s\"", list);
    CHECK(hz_caps_head_dim_ok(cpu, 96, NULL, 0) && !hz_caps_head_dim_ok(cpu, 7, NULL, 0),
          "cpu runs any even head_dim");
    CHECK(cuda->pinned_host && cuda->pcie && !cpu->pinned_host && !cpu->pcie,
          "pinned host memory and PCIe: cuda yes, cpu no");
}

/* llama3-3b's spec and the default ceilings; 0, or -1 after a failed check. */
static int load_3b(hzc_spec *s, tm_ceilings *c)
{
    tm_defaults(c);
    if (spec_load("models/llama3-3b.yaml", s, stderr) == 0) return 0;
    CHECK(0, "llama3-3b loads");
    return -1;
}

/* The step-time model: every phase positive, more tokens take longer, the critical path is
 * the phase that sets the step; ceilings files are read, checked and refused when bad. */
static void check_timemodel(void)
{
    hzc_spec s;
    tm_ceilings c;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    if (load_3b(&s, &c) != 0) return;
    hzc_plan a, b;
    plan_build(&s, &none, &a, stderr);
    tm_predict(&a.p, &c);
    const hz_predict *r = &a.p.pred;
    int positive = r->step_s > 0, resident = 0;
    for (int u = 0; u < a.p.unit_n; u++) resident |= a.p.units[u].resident;
    /* the GPU optimizer has work only where a unit is resident */
    for (int k = 0; k < HZ_PHASE_N; k++)
        positive &= k == HZ_PH_GPU_OPT && !resident ? r->phase_s[k] == 0 : r->phase_s[k] > 0;
    double compute = r->phase_s[HZ_PH_FWD] + r->phase_s[HZ_PH_LOSS] + r->phase_s[HZ_PH_BWD];
    CHECK(positive && r->step_s >= compute && r->step_s >= r->phase_s[HZ_PH_OPT],
          "llama3-3b: every phase > 0 (the GPU optimizer: %s); step %.3f s >= "
          "compute %.3f s and optimizer %.3f s",
          resident ? "units resident" : "0, no unit resident", r->step_s, compute, r->phase_s[HZ_PH_OPT]);
    CHECK(r->critical == HZ_PH_OPT, "llama3-3b: the host optimizer is the critical path (%s)",
          hz_phase_names[r->critical]);
    /* one GPU: each unit's gradients made ready (the norm's squares, 4 bytes a parameter, and
     * a streamed unit's cast for bf16 host gradients, 6 more) in its last backward (the
     * head's in the loss head); the ops' seconds add up to the compute phases */
    {
        double ready[2] = {0, 0}, ops[HZ_PHASE_N] = {0};
        for (int u = 0; u < a.p.unit_n; u++) {
            const hz_unit *x = &a.p.units[u];
            double grads = 0;
            for (int k = 0; k < x->tensor_n; k++) {
                const hz_tensor *t = &a.p.tensors[x->first_tensor + k];
                if (t->store_grad) grads += (double)(t->rows * t->cols);
            }
            double cast = a.p.host_grad_bf16 && !x->resident && !x->held ? 6.0 : 0.0;
            ready[x->kind == HZ_HEAD] += grads * (4.0 + cast) / (c.hbm_gbps * 1e9);
        }
        for (int i = 0; i < a.p.op_n; i++) {
            int k = a.p.ops[i].kind;
            int ph = k == HZ_FWD ? HZ_PH_FWD : k == HZ_LOSS ? HZ_PH_LOSS : k == HZ_BWD ? HZ_PH_BWD : -1;
            if (ph >= 0) ops[ph] += tm_op_seconds(&a.p, &c, i);
        }
        CHECK_CLOSE("llama3-3b: the gradients made ready in the backward, by hand",
                    tm_grads_ready_seconds(&a.p, &c, 0), ready[0], 0, 1e-12);
        CHECK_CLOSE("llama3-3b: the head's in the loss head, by hand",
                    tm_grads_ready_seconds(&a.p, &c, 1), ready[1], 0, 1e-12);
        CHECK(ready[0] > 0 && ready[1] > 0 &&
                  fabs(ops[HZ_PH_FWD] - r->phase_s[HZ_PH_FWD]) <= 1e-9 * r->phase_s[HZ_PH_FWD] &&
                  fabs(ops[HZ_PH_LOSS] - r->phase_s[HZ_PH_LOSS]) <= 1e-9 * r->phase_s[HZ_PH_LOSS] &&
                  fabs(ops[HZ_PH_BWD] - r->phase_s[HZ_PH_BWD]) <= 1e-9 * r->phase_s[HZ_PH_BWD],
              "llama3-3b: the ops' seconds add up to the phases (forward %.4f / %.4f s, loss "
              "%.4f / %.4f s, backward %.4f / %.4f s, %.4f s of it the gradients made ready)",
              ops[HZ_PH_FWD], r->phase_s[HZ_PH_FWD], ops[HZ_PH_LOSS], r->phase_s[HZ_PH_LOSS],
              ops[HZ_PH_BWD], r->phase_s[HZ_PH_BWD], ready[0]);
    }
    /* a 20 times faster host AdamW moves the critical path to the compute stream */
    tm_ceilings fast = c;
    fast.host_adamw_gbps *= 20;
    hz_plan q = a.p;
    tm_predict(&q, &fast);
    CHECK(q.pred.critical == HZ_PH_BWD && q.pred.step_s < r->step_s,
          "a fast host optimizer leaves the backward critical (%s, %.3f s < %.3f s)",
          hz_phase_names[q.pred.critical], q.pred.step_s, r->step_s);
    /* compact moments: the host optimizer at its own measured rate over its own bytes, or,
     * where the ceilings have none, at the fp32 loop's time per parameter */
    {
        hz_plan i8 = a.p, f32 = a.p;
        i8.optimizer_state = HZ_OPTSTATE_INT8;
        tm_ceilings none8 = c, own8 = c;
        none8.host_adamw_int8_gbps = 0;
        own8.host_adamw_int8_gbps = 50.0;
        tm_predict(&f32, &c);
        double f = f32.pred.phase_s[HZ_PH_OPT];
        tm_predict(&i8, &none8);
        double same = i8.pred.phase_s[HZ_PH_OPT];
        tm_predict(&i8, &own8);
        double own = i8.pred.phase_s[HZ_PH_OPT], params = 0;
        for (int u = 0; u < a.p.unit_n; u++)
            if (!a.p.units[u].resident) params += (double)a.p.units[u].padded_n;
        double want = params * (12.25 + (a.p.host_grad_bf16 ? 2.0 : 4.0)) / 50e9;
        CHECK(fabs(same - f) <= 1e-9 * f && fabs(own - want) <= 1e-9 * want,
              "int8 moments: host optimizer %.4f s with no int8 rate (fp32's %.4f s), %.4f s at "
              "50 GB/s of 12.25 + gradient bytes a parameter (want %.4f s)", same, f, own, want);
    }
    /* a slow bus makes PCIe the critical path */
    tm_ceilings slow = c;
    slow.h2d_gbps = slow.d2h_gbps = 0.5;
    tm_predict(&q, &slow);
    CHECK(q.pred.critical == HZ_PH_H2D || q.pred.critical == HZ_PH_D2H,
          "a 0.5 GB/s bus makes PCIe critical (%s)", hz_phase_names[q.pred.critical]);
    /* twice the tokens per step: each compute phase takes longer, the optimizer does not */
    s.step_tokens *= 2;
    plan_build(&s, &none, &b, stderr);
    tm_predict(&b.p, &c);
    CHECK(b.p.pred.phase_s[HZ_PH_FWD] > 1.9 * r->phase_s[HZ_PH_FWD] &&
              b.p.pred.phase_s[HZ_PH_BWD] > 1.9 * r->phase_s[HZ_PH_BWD] &&
              b.p.pred.phase_s[HZ_PH_OPT] == r->phase_s[HZ_PH_OPT] &&
              b.p.pred.step_s > r->step_s,
          "twice the tokens: forward %.3f -> %.3f s, backward %.3f -> %.3f s, optimizer the same",
          r->phase_s[HZ_PH_FWD], b.p.pred.phase_s[HZ_PH_FWD], r->phase_s[HZ_PH_BWD],
          b.p.pred.phase_s[HZ_PH_BWD]);
    plan_free(&a);
    plan_free(&b);

    /* ceilings files */
    char note[256], err[512];
    if (test_tmp_open("plan") != 0) return;
    const char *path = test_tmp("ceilings.json");
    static const char good[] = "{\"gpu\": \"H100\", \"gemm_tflops\": 700, \"h2d_gbps\": 50}";
    test_write(path, good, strlen(good));
    tm_ceilings got;
    int rc = tm_load(&got, path, note, sizeof note, err, sizeof err);
    CHECK(rc == 0 && got.gemm_tflops == 700 && got.h2d_gbps == 50 &&
              got.d2h_gbps == c.d2h_gbps && strstr(note, "d2h_gbps") && strstr(got.name, "H100"),
          "a ceilings file sets its rates, the missing ones are named (%s)", note);
    /* a file as train --probe writes it (runtime/cuda/probe.c): every rate, the device, and
     * keys for people that tm_load passes over */
    static const char probed[] =
        "{\n  \"gpu\": \"NVIDIA H200\",\n  \"gemm_tflops\": 731.25,\n"
        "  \"gemm_bwd_tflops\": 612.5,\n  \"attention_fwd_tflops\": 250.0,\n"
        "  \"attention_bwd_tflops\": 170.5,\n  \"hbm_gbps\": 4100.0,\n  \"h2d_gbps\": 54.0,\n"
        "  \"d2h_gbps\": 53.5,\n  \"host_adamw_gbps\": 98.75,\n"
        "  \"host_adamw_bf16_gbps\": 70.25,\n  \"host_adamw_int8_gbps\": 60.5,\n"
        "  \"gpu_mem_bytes\": 150754820096,\n  \"process_host_bytes\": 460517376,\n  \"cc\": \"sm_90\",\n  \"host_threads\": 16,\n"
        "  \"measured\": \"2026-12-01T10:00:00Z\",\n  \"plan\": \"tiny\",\n"
        "  \"measured_by\": {\"gemm_tflops\": \"the forward GEMMs of one block\"}\n}";
    test_write(path, probed, strlen(probed));
    rc = tm_load(&got, path, note, sizeof note, err, sizeof err);
    CHECK(rc == 0 && note[0] == 0 && got.gemm_tflops == 731.25 &&
              got.gemm_bwd_tflops == 612.5 &&
              got.att_fwd_tflops == 250.0 && got.att_bwd_tflops == 170.5 &&
              got.window_att_fwd_tflops == 0 && got.window_att_bwd_tflops == 0 &&
              got.hbm_gbps == 4100.0 && got.h2d_gbps == 54.0 && got.d2h_gbps == 53.5 &&
              got.host_adamw_gbps == 98.75 && got.host_adamw_bf16_gbps == 70.25 &&
              got.host_adamw_int8_gbps == 60.5 && got.process_host_bytes == 460517376 &&
              strcmp(got.gpu, "NVIDIA H200") == 0 &&
              strstr(got.name, "NVIDIA H200"),
          "a file in --probe's format sets every rate (none missing: '%s'; tiny's plan has no "
          "window rates) and the device '%s'",
          note, got.gpu);
    tm_defaults(&got);
    CHECK(got.gpu[0] == 0, "the defaults name no device for the trainer to compare");
    static const char *const bad[] = {"{\"gemm_tflops\": -3}", "{\"gemm_tflops\": \"fast\"}",
                                      "[1, 2]", "{\"gemm_tflops\": 700,",
                                      "{\"gpu_mem_bytes\": 0}", "{\"gpu_mem_bytes\": \"lots\"}",
                                      "{\"gpu_mem_bytes\": -1}", "{\"gpu\": 42}",
                                      "{\"hbm_gbps\": null}", "{\"h2d_gbps\": true}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_write(path, bad[i], strlen(bad[i]));
        err[0] = 0;
        rc = tm_load(&got, path, note, sizeof note, err, sizeof err);
        CHECK(rc != 0 && strstr(err, "error"), "ceilings %s refused: %s", bad[i], err);
    }
    test_tmp_close();
}

/* The attention rates by layer on Gemma 3 1B (22 of 26 blocks windowed): the full causal
 * blocks at attention_*, the sliding-window ones at window_attention_* where the ceilings have
 * them, else at the full rates; a complete file may lack the window keys; the defaults are
 * cuDNN's in a build with cuDNN (its banded graph for the windows), else hzc's kernels'. */
static void check_window_rates(void)
{
    tm_ceilings def;
    tm_defaults(&def);
    /* cuDNN's (its banded graph for the windows) in a build with cuDNN, else hzc's kernels' */
#ifdef HZ_TM_CUDNN
    const double dfull[2] = {543.0, 398.4}, dwin[2] = {559.4, 278.8};
    const char *dpath = "attention: cuDNN's fused SDPA";
#else
    const double dfull[2] = {242.4, 202.2}, dwin[2] = {206.2, 67.3};
    const char *dpath = "attention: hzc's kernels";
#endif
    CHECK(def.att_fwd_tflops == dfull[0] && def.att_bwd_tflops == dfull[1] &&
              strstr(def.name, dpath),
          "defaults: full attention %.1f / %.1f TFLOP/s (%s)", def.att_fwd_tflops,
          def.att_bwd_tflops, def.name);
    CHECK(def.window_att_fwd_tflops == dwin[0] && def.window_att_bwd_tflops == dwin[1],
          "defaults: window attention %.1f / %.1f TFLOP/s (%s)", def.window_att_fwd_tflops,
          def.window_att_bwd_tflops, dpath);

    hzc_spec g;
    hzc_plan gp;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    if (spec_load("models/gemma3-1b.yaml", &g, stderr) != 0 ||
        plan_build(&g, &none, &gp, stderr) != 0) {
        CHECK(0, "gemma3-1b plans");
        return;
    }
    if (test_tmp_open("plan") != 0) {
        plan_free(&gp);
        return;
    }
    const char *path = test_tmp("ceilings.json");
    char note[256], err[512];
#define RATES                                                                                     \
    "\"gemm_tflops\": 700, \"gemm_bwd_tflops\": 600, \"attention_fwd_tflops\": 500, "             \
    "\"attention_bwd_tflops\": 400, \"hbm_gbps\": 4000, \"h2d_gbps\": 50, \"d2h_gbps\": 50, "     \
    "\"host_adamw_gbps\": 100, \"host_adamw_bf16_gbps\": 80, \"host_adamw_int8_gbps\": 70, "      \
    "\"process_host_bytes\": 460517376"
    static const char full_text[] = "{" RATES "}";
    static const char window_text[] =
        "{" RATES ", \"window_attention_fwd_tflops\": 250, \"window_attention_bwd_tflops\": 200}";
#undef RATES
    tm_ceilings full, win;
    test_write(path, full_text, strlen(full_text));
    int rc = tm_load(&full, path, note, sizeof note, err, sizeof err);
    CHECK(rc == 0 && note[0] == 0 && full.window_att_fwd_tflops == 0 &&
              full.window_att_bwd_tflops == 0,
          "a file without the window keys is complete (missing: '%s'); its window rates %.1f / "
          "%.1f (0: the full ones)", note, full.window_att_fwd_tflops, full.window_att_bwd_tflops);
    test_write(path, window_text, strlen(window_text));
    rc = tm_load(&win, path, note, sizeof note, err, sizeof err);
    CHECK(rc == 0 && note[0] == 0 && win.window_att_fwd_tflops == 250 &&
              win.window_att_bwd_tflops == 200 && win.att_fwd_tflops == 500,
          "a file with the window keys sets them: %.1f / %.1f TFLOP/s (missing: '%s')",
          win.window_att_fwd_tflops, win.window_att_bwd_tflops, note);

    /* op by op: only the windowed blocks' forward and backward change, by their attention
     * FLOPs (4 N (W - W^2/2T) A, the backward's 2.5 times that) over the two rates */
    const hz_dims *d = &gp.p.dims;
    double W = (double)d->window, T = (double)d->T;
    double att = 4.0 * (double)d->micro_tokens * (W - W * W / (2.0 * T)) * (double)(d->NH * d->HD);
    double dfwd = att / 250e12 - att / 500e12;
    double dbwd = dfwd + 2.5 * att / 200e12 - 2.5 * att / 400e12;
    int changed = 0, wrong = 0;
    double got_fwd = 0, got_bwd = 0;
    for (int i = 0; i < gp.p.op_n; i++) {
        const hz_op *o = &gp.p.ops[i];
        const hz_unit *u = &gp.p.units[o->unit];
        double a = tm_op_seconds(&gp.p, &full, i), b = tm_op_seconds(&gp.p, &win, i);
        int windowed =
            u->kind == HZ_BLOCK && u->window > 0 && (o->kind == HZ_FWD || o->kind == HZ_BWD);
        changed += a != b;
        wrong += windowed ? !(b > a) : a != b;
        if (windowed && o->kind == HZ_FWD) got_fwd = b - a;
        if (windowed && o->kind == HZ_BWD) got_bwd = b - a;
    }
    CHECK(changed > 0 && wrong == 0,
          "gemma3-1b: the window keys change the windowed blocks' forward and backward only "
          "(%d ops changed, %d wrongly)", changed, wrong);
    CHECK_CLOSE("gemma3-1b windowed block forward: seconds added at 250 against 500 TFLOP/s",
                got_fwd, dfwd, 0, 1e-9);
    CHECK_CLOSE("gemma3-1b windowed block backward: seconds added at 200 against 400 TFLOP/s",
                got_bwd, dbwd, 0, 1e-9);
    hz_plan a = gp.p, b = gp.p;
    tm_predict(&a, &full);
    tm_predict(&b, &win);
    double M = (double)d->n_micro, blocks = (double)d->window_n;
    CHECK_CLOSE("gemma3-1b forward phase: the windowed blocks' added seconds",
                b.pred.phase_s[HZ_PH_FWD] - a.pred.phase_s[HZ_PH_FWD], M * blocks * dfwd, 0, 1e-9);
    CHECK(b.pred.phase_s[HZ_PH_LOSS] == a.pred.phase_s[HZ_PH_LOSS] &&
              b.pred.phase_s[HZ_PH_OPT] == a.pred.phase_s[HZ_PH_OPT] &&
              b.pred.step_s > a.pred.step_s,
          "gemma3-1b: loss head and optimizer unchanged, step %.4f s -> %.4f s",
          a.pred.step_s, b.pred.step_s);

    /* without the window keys the windowed blocks run at the file's full rates */
    tm_ceilings same = full;
    same.window_att_fwd_tflops = full.att_fwd_tflops;
    same.window_att_bwd_tflops = full.att_bwd_tflops;
    hz_plan c = gp.p;
    tm_predict(&c, &same);
    int equal = c.pred.step_s == a.pred.step_s;
    for (int k = 0; k < HZ_PHASE_N; k++) equal &= c.pred.phase_s[k] == a.pred.phase_s[k];
    CHECK(equal, "gemma3-1b: a file without window keys predicts the windowed blocks at its "
                 "full rates (step %.4f s both ways)", a.pred.step_s);

    static const struct {
        const char *text, *key;
    } bad[] = {{"{\"window_attention_fwd_tflops\": 0}", "window_attention_fwd_tflops"},
               {"{\"window_attention_bwd_tflops\": -5}", "window_attention_bwd_tflops"},
               {"{\"window_attention_fwd_tflops\": \"fast\"}", "window_attention_fwd_tflops"},
               {"{\"window_attention_bwd_tflops\": null}", "window_attention_bwd_tflops"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[96];
        snprintf(want, sizeof want, "\"%s\" must be a positive number", bad[i].key);
        test_write(path, bad[i].text, strlen(bad[i].text));
        err[0] = 0;
        rc = tm_load(&win, path, note, sizeof note, err, sizeof err);
        CHECK(rc != 0 && strstr(err, want), "ceilings %s refused: %s", bad[i].text, err);
    }
    test_tmp_close();
    plan_free(&gp);
}

/* Residency tiers: resident units leave the streams and the host optimizer, keep their state
 * in the RESIDENT region at 16 bytes a parameter, update on the compute stream; kept blocks
 * take their SAVED slots; memory grows and predicted time falls with each choice. */
static void check_residency(void)
{
    hzc_spec s;
    tm_ceilings c;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    if (load_3b(&s, &c) != 0) return;
    hzc_plan base, all, half, keep;
    plan_build(&s, &none, &base, stderr);
    tm_predict(&base.p, &c);
    s.plan.resident_blocks = s.L;
    s.plan.resident_ends = 1;
    CHECK(plan_build(&s, &none, &all, stderr) == 0, "llama3-3b: everything resident plans");
    tm_predict(&all.p, &c);
    int64_t h2d = 0, d2h = 0;
    hz_plan_pcie_bytes(&all.p, &h2d, &d2h);
    int loads = 0, host_opt = 0, dev_opt = 0;
    for (int i = 0; i < all.p.op_n; i++) {
        const hz_op *o = &all.ops[i];
        loads += o->kind == HZ_LOAD_W;
        host_opt += o->kind == HZ_OPT && o->stream == HZ_HOST;
        dev_opt += o->kind == HZ_OPT && o->stream == HZ_COMPUTE;
    }
    CHECK(loads == 0 && host_opt == 0 && dev_opt == all.p.unit_n && h2d == 8 * s.step_tokens &&
              d2h == 4 * s.step_tokens,
          "all resident: no load_w, %d updates on the GPU, PCIe only tokens and losses", dev_opt);
    CHECK(all.regions[HZ_RESIDENT].bytes >= 16 * all.p.host_store_n &&
              all.regions[HZ_RESIDENT].bytes < 16 * all.p.host_store_n + 5 * 512 +
                                                    4 * all.units[all.p.unit_n - 1].span_n &&
              all.regions[HZ_WSLOT].bytes == 0 && all.regions[HZ_GSLOT].bytes == 0,
          "all resident: %lld resident bytes (16 per element plus the tied head's gradient), "
          "no slots",
          (long long)all.regions[HZ_RESIDENT].bytes);
    CHECK(all.p.host_store_bytes == hz_store_bounce_n(&all.p) * 12 &&
              hz_store_bounce_n(&all.p) == HZ_STORE_BOUNCE_N,
          "all resident: the host store backs only its bounce buffer (%lld bytes)",
          (long long)all.p.host_store_bytes);
    int tied_ok = all.units[0].res_g_n == all.units[all.p.unit_n - 1].res_g_n;
    const hz_tensor *lm = &all.tensors[all.units[all.p.unit_n - 1].first_tensor + 1];
    tied_ok &= lm->kind == HZ_LM_HEAD && lm->res_n == all.tensors[0].res_n;
    CHECK(tied_ok, "tied: the head reads the embedding's resident weights and shares its "
                   "gradients");
    CHECK(all.p.pred.phase_s[HZ_PH_OPT] == 0 && all.p.pred.phase_s[HZ_PH_GPU_OPT] > 0 &&
              all.p.pred.step_s < base.p.pred.step_s && all.p.pred.critical != HZ_PH_OPT,
          "all resident: predicted %.3f s < %.3f s streamed, no host optimizer",
          all.p.pred.step_s, base.p.pred.step_s);

    s.plan.resident_blocks = s.L / 2;
    s.plan.resident_ends = 0;
    plan_build(&s, &none, &half, stderr);
    tm_predict(&half.p, &c);
    int ok = 1, res_next = 0;
    for (int i = 0; i < half.p.unit_n; i++) {
        const hz_unit *u = &half.units[i];
        int want = u->kind == HZ_BLOCK && u->layer < s.L / 2;
        ok &= u->resident == want;
        if (u->resident) {
            ok &= u->res_n == res_next;
            res_next += (int)u->padded_n;
        }
    }
    for (int i = 0; i < half.p.op_n; i++) {
        const hz_op *o = &half.ops[i];
        const hz_unit *u = &half.units[o->unit];
        if (u->resident) ok &= o->kind != HZ_LOAD_W && o->slot < 0 && o->gslot < 0;
        if (o->kind == HZ_OPT) ok &= (o->stream == HZ_COMPUTE) == u->resident;
    }
    CHECK(ok && half.p.resident_n == res_next,
          "half resident: blocks 0-%lld resident, in host order, without slots; their updates "
          "on the GPU",
          (long long)s.L / 2 - 1);
    CHECK(half.p.gpu_bytes > base.p.gpu_bytes && half.p.gpu_bytes < all.p.gpu_bytes &&
              half.p.pred.step_s < base.p.pred.step_s,
          "half resident: GPU %.1f < %.1f < %.1f GiB; predicted %.3f s < %.3f s",
          base.p.gpu_bytes / 1073741824.0, half.p.gpu_bytes / 1073741824.0,
          all.p.gpu_bytes / 1073741824.0, half.p.pred.step_s, base.p.pred.step_s);

    /* the host store backs the streamed units only: the embedding, blocks L/2.. and the head */
    int64_t streamed = 0;
    for (int i = 0; i < half.p.unit_n; i++)
        if (!half.units[i].resident) streamed += half.units[i].padded_n;
    int64_t hper = 12 + (half.p.host_grad_bf16 ? 2 : 4);
    CHECK(half.p.host_store_bytes >= hper * streamed + HZ_STORE_BOUNCE_N * 12 &&
              half.p.host_store_bytes <= hper * streamed + HZ_STORE_BOUNCE_N * 12 + 5 * 2 * 4096 &&
              half.p.host_store_bytes < base.p.host_store_bytes,
          "half resident: host store %lld bytes = %lld per streamed element (%lld of %lld) + "
          "the bounce buffer, up to a page per run end; the default plan's %lld",
          (long long)half.p.host_store_bytes, (long long)hper, (long long)streamed,
          (long long)half.p.host_store_n, (long long)base.p.host_store_bytes);

    s.plan.resident_blocks = 0;
    s.plan.keep_blocks = 4;
    plan_build(&s, &none, &keep, stderr);
    tm_predict(&keep.p, &c);
    int kept = 0, slots_ok = 1;
    for (int i = 0; i < keep.p.unit_n; i++) {
        const hz_unit *u = &keep.units[i];
        if (!u->keep) continue;
        slots_ok &= u->kind == HZ_BLOCK && u->layer >= s.L - 4 && u->keep_slot == kept;
        kept++;
    }
    CHECK(kept == 4 && keep.p.keep_n == 4 && slots_ok &&
              keep.regions[HZ_SAVED].count == 4 * (int)keep.p.dims.n_micro &&
              keep.regions[HZ_SAVED].slot_bytes == hz_saved_layout(&keep.p.dims, 2) &&
              keep.p.gpu_bytes == base.p.gpu_bytes + keep.regions[HZ_SAVED].bytes,
          "keep 4: the last 4 blocks keep %lld bytes each per micro-batch; GPU grows by exactly "
          "the saved region",
          (long long)keep.regions[HZ_SAVED].slot_bytes);
    CHECK(keep.p.pred.phase_s[HZ_PH_BWD] < base.p.pred.phase_s[HZ_PH_BWD],
          "keep 4: predicted backward %.3f s < %.3f s (no recompute for them)",
          keep.p.pred.phase_s[HZ_PH_BWD], base.p.pred.phase_s[HZ_PH_BWD]);

    /* every streamed unit holds its gradients on the GPU: no host gradient pages, two staging
     * slots instead; each fetch two held units ahead of its weights, each update after it */
    hzc_plan held;
    s.plan.keep_blocks = 0;
    s.plan.gpu_grad_blocks = s.L;
    s.plan.gpu_grad_ends = 1;
    CHECK(plan_build(&s, &none, &held, stderr) == 0, "llama3-3b: every unit's gradients held plans");
    tm_predict(&held.p, &c);
    int64_t g_runs = 0, span = 0, hold_ok = 1;
    hz_store_runs(&base.p, hz_arr_block_bytes(base.p.optimizer_state, base.p.host_grad_bf16 ? 2 : 4, HZ_ARR_G), 1,
                  NULL, NULL, 0, &g_runs);
    for (int i = 0; i < held.p.unit_n; i++) {
        const hz_unit *u = &held.units[i];
        int64_t n = hz_unit_grads_n(held.tensors, u);
        if (n > span) span = n;
        hold_ok &= u->held && u->hold_n >= 0 && u->hold_n + u->span_n <= held.p.hold_n;
    }
    hold_ok &= held.units[0].hold_n == held.units[held.p.unit_n - 1].hold_n; /* tied */
    CHECK(hold_ok && held.p.fetch_n == span &&
              held.regions[HZ_GHOLD].bytes >= 4 * held.p.hold_n &&
              held.regions[HZ_GHOLD].bytes >= 4 * held.p.params_n &&
              held.regions[HZ_GSLOT].bytes == 0 && held.regions[HZ_GHEAD].bytes == 0 &&
              held.regions[HZ_GSTAGE].bytes == 0,
          "held: every unit in grad_hold (%lld bytes), no gradient slots; staging slots of "
          "%lld elements",
          (long long)held.regions[HZ_GHOLD].bytes, (long long)held.p.fetch_n);
    CHECK(held.p.host_store_bytes == base.p.host_store_bytes - g_runs &&
              held.p.host_bytes - held.p.host_store_bytes ==
                  base.p.host_bytes - base.p.host_store_bytes + 2 * hz_stage_slot_bytes(&held.p),
          "held: host store %lld = the default's %lld less its %lld gradient bytes; two fp32 "
          "staging slots in the extras",
          (long long)held.p.host_store_bytes, (long long)base.p.host_store_bytes,
          (long long)g_runs);
    int fetches = 0, order_ok = 1, k_held = 0, last_load[64] = {0};
    for (int i = 0; i < held.p.op_n; i++) {
        const hz_op *o = &held.ops[i];
        if (o->kind == HZ_LOAD_W && k_held < held.p.unit_n && k_held < 64) last_load[k_held++] = i;
        if (o->kind == HZ_FETCH_G) {
            order_ok &= o->stream == HZ_D2H && o->gslot == fetches % 2 &&
                        o->unit == fetches && /* every unit held: the k-th fetch is unit k */
                        (fetches < 2 ? i < 2 : i == last_load[fetches - 2] + 1);
            fetches++;
        }
        if (o->kind == HZ_OPT) {
            int waits_fetch = 0;
            for (int w = 0; w < HZ_OP_WAITS; w++)
                waits_fetch |= o->wait[w] >= 0 && held.ops[o->wait[w]].kind == HZ_FETCH_G &&
                               held.ops[o->wait[w]].unit == o->unit;
            order_ok &= waits_fetch && o->stream == HZ_HOST;
        }
    }
    int64_t hh2d = 0, hd2h = 0, bh2d = 0, bd2h = 0;
    hz_plan_pcie_bytes(&held.p, &hh2d, &hd2h);
    hz_plan_pcie_bytes(&base.p, &bh2d, &bd2h);
    CHECK(fetches == held.p.unit_n && order_ok && hh2d == bh2d &&
              hd2h >= bd2h && hd2h < bd2h + bd2h / 100,
          "held: %d fetch_g, slot k %% 2, each right after the load_w of the held unit two "
          "before; every update waits for its fetch; d2h %lld bytes (the default's %lld)",
          fetches, (long long)hd2h, (long long)bd2h);
    s.plan.gpu_grad_blocks = 0;
    s.plan.gpu_grad_ends = 0;
    plan_free(&held);

    /* a plan: section that does not fit names its choices, at the place they were written */
    s.plan.keep_blocks = s.L;
    s.plan.resident_blocks = s.L;
    s.plan.pos_keep_blocks = (spec_pos){7, 3};
    plan_limits lim = {80ll << 30, 0, PLAN_BOUNDARIES_AUTO};
    char *msg = NULL;
    size_t msg_n = 0;
    FILE *err = open_memstream(&msg, &msg_n);
    hzc_plan over;
    int rc = plan_build(&s, &lim, &over, err);
    fclose(err);
    char where[4200];
    snprintf(where, sizeof where, "%s:7:3: note: plan.keep_activations", s.path);
    CHECK(rc != 0 && strstr(msg, where) && strstr(msg, "plan.resident_blocks") &&
              strstr(msg, "lower it by"),
          "an overflowing plan: section names its choices: %s", msg);
    free(msg);
    plan_free(&over);
    plan_free(&base);
    plan_free(&all);
    plan_free(&half);
    plan_free(&keep);
}

static int64_t page_up(int64_t b)
{
    return (b + HZ_STORE_PAGE - 1) / HZ_STORE_PAGE * HZ_STORE_PAGE;
}

/* The host store and the RESIDENT region in each optimizer-state precision, counted by hand;
 * hzc plan's family table; the large shapes on their hosts. */
static void check_optstate(void)
{
    static const double per_want[HZ_OPTSTATE_MODE_N] = {16.0, 12.0, 10.125};
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    int fit_layers[HZ_OPTSTATE_MODE_N] = {0};
    for (int mode = 0; mode < HZ_OPTSTATE_MODE_N; mode++) {
        hzc_spec s;
        spec_load("models/llama3-8b.yaml", &s, stderr);
        s.optimizer_state = mode;
        hzc_plan pl;
        plan_build(&s, &none, &pl, stderr);
        int64_t n = pl.p.host_store_n, mb = mode == 0 ? 4 : mode == 1 ? 2 : 1;
        int64_t want = 2 * page_up(2 * n) + 2 * page_up(mb * n) + page_up(4 * n) +
                       (mode == HZ_OPTSTATE_INT8 ? 2 * page_up((n + 63) / 64 * 4) : 0);
        double per = (double)pl.p.host_bytes / (double)pl.p.params_n;
        CHECK(pl.p.optimizer_state == mode && pl.p.host_store_bytes == want &&
                  fabs(per - per_want[mode]) < 1e-3,
              "llama3-8b, %s state: host store %lld bytes = the hand count %lld, %.4f bytes per "
              "parameter (want %.3f with fp32 gradients)", hz_optstate_names[mode],
              (long long)pl.p.host_store_bytes, (long long)want, per, per_want[mode]);
        plan_free(&pl);

        spec_load("models/tiny.yaml", &s, stderr);
        s.optimizer_state = mode;
        s.plan.resident_blocks = s.L;
        s.plan.resident_ends = 1;
        plan_build(&s, &none, &pl, stderr);
        int64_t r = pl.p.resident_n, g = pl.p.resident_g_n, sc = (r + 63) / 64 * 4;
        int64_t res = 2 * al256(2 * r) + 2 * al256(mb * r) + al256(4 * g) +
                      2 * al256(mode == 2 ? sc : 0);
        int64_t bounce = hz_store_bounce_n(&pl.p) * (4 + 2 * mb) + (mode == 2 ? 2 * sc : 0);
        CHECK(pl.regions[HZ_RESIDENT].bytes == res && pl.p.host_store_bytes == bounce,
              "tiny all resident, %s state: RESIDENT %lld bytes = %lld by hand; the host store "
              "backs its bounce buffer alone, %lld = %lld", hz_optstate_names[mode],
              (long long)pl.regions[HZ_RESIDENT].bytes, (long long)res,
              (long long)pl.p.host_store_bytes, (long long)bounce);
        plan_free(&pl);
    }
    hzc_spec s;
    spec_load("models/llama3-8b.yaml", &s, stderr);
    plan_limits host125 = {0, 125ll << 30, PLAN_BOUNDARIES_AUTO};
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    plan_print_fit(&s, &host125, out);
    fclose(out);
    for (int mode = 0; mode < HZ_OPTSTATE_MODE_N; mode++) {
        char key[16];
        snprintf(key, sizeof key, "\n  %s ", hz_optstate_names[mode]);
        const char *at = strstr(text, key);
        double per = 0, gib = 0;
        if (at) sscanf(at + strlen(key), "%lf %lf %d", &per, &gib, &fit_layers[mode]);
    }
    CHECK(fit_layers[0] >= s.L && fit_layers[1] > fit_layers[0] && fit_layers[2] > fit_layers[1],
          "hzc plan llama3-8b --host-mem 125G: the family's largest fits %d, %d, %d layers "
          "(fp32, bf16, int8)", fit_layers[0], fit_layers[1], fit_layers[2]);
    free(text);

    hzc_spec q, l70;
    spec_load("models/qwen2.5-14b.yaml", &q, stderr);
    spec_load("models/llama3.1-70b.yaml", &l70, stderr);
    plan_limits tb1 = {0, 1000000000000ll, PLAN_BOUNDARIES_AUTO};
    hzc_plan a, b, c;
    char *msg = NULL;
    out = open_memstream(&msg, &len);
    int rq = plan_build(&q, &host125, &a, stderr), r70 = plan_build(&l70, &tb1, &c, stderr);
    q.optimizer_state = HZ_OPTSTATE_FP32;
    int rf = plan_build(&q, &host125, &b, out);
    fclose(out);
    CHECK(rq == 0 && a.p.params_n == 14770033664ll && rf != 0 &&
              strstr(msg, "optimizer_state: int8"),
          "qwen2.5-14b (%lld params) plans within 125 GiB with int8 state (%.2f GiB); fp32 "
          "state is refused: %s", (long long)a.p.params_n, a.p.host_bytes / 1073741824.0, msg);
    CHECK(r70 == 0 && c.p.params_n == 70553706496ll,
          "llama3.1-70b (%lld params) plans within 1 TB with int8 state (%.1f GB)",
          (long long)c.p.params_n, c.p.host_bytes * 1e-9);
    free(msg);
    plan_free(&a);
    plan_free(&b);
    plan_free(&c);
}

/* plan.keep_mlp_outputs (post norms): the first N blocks that do not keep their activations
 * keep their MLP output and its 1/rms, N x micro-batches slots of the MLPOUT list; the GPU
 * grows by exactly that region; the backward is predicted shorter by the down projection's
 * recompute and its norm, at the ceilings' rates; a model without post norms refuses it */
static void check_mlp_out(void)
{
    hzc_spec s;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    if (spec_load("models/gemma3-12b.yaml", &s, stderr) != 0) {
        CHECK(0, "gemma3-12b loads");
        return;
    }
    tm_ceilings c;
    tm_defaults(&c);
    hzc_plan base, mo;
    plan_build(&s, &none, &base, stderr);
    tm_predict(&base.p, &c);
    s.plan.keep_blocks = 4;
    s.plan.keep_mlp_out_blocks = 46; /* blocks 0..45; 44 and 45 keep everything already */
    CHECK(plan_build(&s, &none, &mo, stderr) == 0, "gemma3-12b: keep_mlp_outputs 46 with "
                                                   "keep_activations 4 plans");
    tm_predict(&mo.p, &c);
    int n = 0, ok = 1;
    for (int i = 0; i < mo.p.unit_n; i++) {
        const hz_unit *u = &mo.units[i];
        int want = u->kind == HZ_BLOCK && u->layer < 44;
        ok &= u->keep_mlp_out == want && u->mlp_out_slot == (want ? n : -1) &&
              !(u->keep && u->keep_mlp_out);
        n += want;
    }
    const hz_dims *d = &mo.p.dims;
    int64_t slot = (2 * d->micro_tokens * d->C + 255) / 256 * 256 + 4 * d->micro_tokens;
    slot = (slot + 255) / 256 * 256;
    CHECK(ok && n == 44 && mo.p.mlp_out_n == 44 && mo.p.mlp_out_bytes == slot &&
              mo.regions[HZ_MLPOUT].count == 44 * (int)d->n_micro &&
              mo.regions[HZ_MLPOUT].slot_bytes == slot &&
              mo.p.gpu_bytes == base.p.gpu_bytes + mo.regions[HZ_SAVED].bytes +
                                    mo.regions[HZ_MLPOUT].bytes,
          "keep_mlp_outputs 46 + keep 4: blocks 0-43 keep %lld bytes each per micro-batch (bf16 "
          "N x C, fp32 N), in slot order; the GPU grows by the two regions exactly",
          (long long)slot);
    /* against keep_activations 4 alone, the predicted backward loses 44 blocks' down
     * projection (2 N F C FLOPs) and its norm (4 N C bytes) per micro-batch */
    hzc_plan keep;
    s.plan.keep_mlp_out_blocks = 0;
    plan_build(&s, &none, &keep, stderr);
    tm_predict(&keep.p, &c);
    double N = (double)d->micro_tokens, C = (double)d->C, F = (double)d->F;
    double want = 44.0 * (double)d->n_micro *
                  (2.0 * N * F * C / (c.gemm_tflops * 1e12) + 4.0 * N * C / (c.hbm_gbps * 1e9));
    CHECK_CLOSE("keep_mlp_outputs: the predicted backward's seconds saved",
                keep.p.pred.phase_s[HZ_PH_BWD] - mo.p.pred.phase_s[HZ_PH_BWD], want, 0, 1e-9);
    CHECK(mo.p.pred.phase_s[HZ_PH_FWD] == keep.p.pred.phase_s[HZ_PH_FWD],
          "keep_mlp_outputs: the forward's prediction unchanged (%.4f s)",
          mo.p.pred.phase_s[HZ_PH_FWD]);
    plan_free(&base);
    plan_free(&mo);
    plan_free(&keep);

    hzc_spec l;
    if (spec_load("models/llama3-8b.yaml", &l, stderr) != 0) return;
    l.plan.keep_mlp_out_blocks = 2;
    hzc_plan lp;
    FILE *err = tmpfile();
    int bad = plan_build(&l, &none, &lp, err ? err : stderr);
    char msg[512] = "";
    if (err) {
        rewind(err);
        size_t got = fread(msg, 1, sizeof msg - 1, err);
        msg[got] = 0;
        fclose(err);
    }
    CHECK(bad && strstr(msg, "plan.keep_mlp_outputs: 2, but llama has no norm after its MLP"),
          "llama3-8b refuses keep_mlp_outputs by name: %s", msg);
    plan_free(&lp);
}

int main(void)
{
    check_caps();
    check_optstate();
    check_residency();
    check_timemodel();
    check_window_rates();
    check_mlp_out();
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        hzc_spec s;
        if (spec_load(models[i], &s, stderr) != 0) {
            CHECK(0, "%s loads", models[i]);
            continue;
        }
        hzc_plan pl;
        CHECK(plan_build(&s, &none, &pl, stderr) == 0, "%s: plans with no limits", models[i]);
        CHECK(pl.p.params_n == spec_param_count(&s), "%s: planner params %lld = spec %lld",
              models[i], (long long)pl.p.params_n, (long long)spec_param_count(&s));
        check_plan(models[i], &pl);
        plan_free(&pl);

        /* GPU bytes do not grow with layers, but for the boundary store */
        hzc_spec s2 = s;
        s2.L = s.L * 2;
        hzc_plan a, b;
        plan_build(&s, &none, &a, stderr);
        plan_build(&s2, &none, &b, stderr);
        int64_t ga = a.p.gpu_bytes - a.regions[HZ_BOUNDARY].bytes;
        int64_t gb = b.p.gpu_bytes - b.regions[HZ_BOUNDARY].bytes;
        CHECK(ga == gb && b.regions[HZ_BOUNDARY].bytes / (2 * s.L + 1) ==
                              a.regions[HZ_BOUNDARY].bytes / (s.L + 1),
              "%s: GPU bytes without the boundary store %lld at L=%lld and %lld at L=%lld",
              models[i], (long long)ga, (long long)s.L, (long long)gb, (long long)s2.L);
        plan_free(&a);
        plan_free(&b);
    }

    /* host boundaries: GPU bytes do not grow with layers at all; auto chooses them only
     * when the GPU limit needs it */
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        hzc_spec s1, s2;
        if (spec_load(models[i], &s1, stderr) != 0) continue;
        s2 = s1;
        s2.L = s1.L * 2;
        plan_limits host = {0, 0, PLAN_BOUNDARIES_HOST};
        hzc_plan a, b;
        plan_build(&s1, &host, &a, stderr);
        plan_build(&s2, &host, &b, stderr);
        char name[96];
        snprintf(name, sizeof name, "%s (host boundaries)", models[i]);
        check_plan(name, &a);
        CHECK(a.p.boundary_on_host && a.p.gpu_bytes == b.p.gpu_bytes,
              "%s: GPU bytes %lld at L=%lld and %lld at L=%lld", name, (long long)a.p.gpu_bytes,
              (long long)s1.L, (long long)b.p.gpu_bytes, (long long)s2.L);
        plan_free(&a);
        plan_free(&b);
    }
    {
        hzc_spec s8;
        spec_load("models/llama3-8b.yaml", &s8, stderr);
        plan_limits tight = {20ll << 30, 128ll << 30, PLAN_BOUNDARIES_AUTO};
        plan_limits gpu_only = {20ll << 30, 128ll << 30, PLAN_BOUNDARIES_GPU};
        hzc_plan a, b;
        int ra = plan_build(&s8, &tight, &a, stderr);
        char *msg = NULL;
        size_t len = 0;
        FILE *err = open_memstream(&msg, &len);
        int rb = plan_build(&s8, &gpu_only, &b, err);
        fclose(err);
        CHECK(ra == 0 && a.p.boundary_on_host && a.p.gpu_bytes <= (20ll << 30),
              "llama3-8b in 20 GiB of GPU: auto moves the boundaries to the host (%.2f GiB GPU)",
              a.p.gpu_bytes / 1073741824.0);
        CHECK(rb != 0 && strstr(msg, "--boundaries auto"),
              "llama3-8b in 20 GiB with --boundaries gpu is refused: %s", msg);
        free(msg);
        plan_free(&a);
        plan_free(&b);
    }

    /* without clipping */
    {
        hzc_spec s0;
        spec_load("models/tiny.yaml", &s0, stderr);
        s0.grad_clip = 0;
        hzc_plan a;
        plan_build(&s0, &none, &a, stderr);
        check_plan("tiny without clipping", &a);
        plan_free(&a);
    }

    /* the acceptance numbers for llama3-8b */
    hzc_spec s;
    spec_load("models/llama3-8b.yaml", &s, stderr);
    plan_limits lim = {80ll << 30, 128ll << 30, PLAN_BOUNDARIES_AUTO};
    hzc_plan pl;
    CHECK(plan_build(&s, &lim, &pl, stderr) == 0, "llama3-8b fits 80G GPU / 128G host");
    CHECK(pl.p.params_n == 8030261248ll, "llama3-8b params %lld", (long long)pl.p.params_n);
    double per = (double)pl.p.host_bytes / (double)pl.p.params_n;
    CHECK(per >= 12 && per <= 14.5, "llama3-8b host bytes per parameter %.4f in [12, 14.5]", per);
    CHECK(pl.p.host_grad_bf16, "llama3-8b at 128G holds gradients as bf16");
    CHECK(pl.p.gpu_bytes <= (80ll << 30), "llama3-8b GPU bytes %.2f GiB <= 80",
          pl.p.gpu_bytes / 1073741824.0);
    plan_free(&pl);

    /* the published shapes' parameter counts, from their config.json arithmetic: per layer
     * q, k, v, o, the MLP, two norms and (Qwen3) the q/k norms of head_dim each */
    static const struct {
        const char *path;
        long long params;
    } counts[] = {{"models/qwen3-0.6b.yaml", 596049920ll},
                  {"models/qwen3-8b.yaml", 8190735360ll},
                  {"models/qwen3-14b.yaml", 14768307200ll},
                  /* Gemma 3: four norms a layer; the published totals less the vision tower */
                  {"models/gemma3-1b.yaml", 999885952ll},
                  {"models/gemma3-4b.yaml", 3880263168ll},
                  {"models/gemma3-12b.yaml", 11766034176ll},
                  {"models/gemma3-27b.yaml", 27009346304ll}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        hzc_spec q;
        hzc_plan qp;
        int ok = spec_load(counts[i].path, &q, stderr) == 0 && plan_build(&q, &none, &qp, stderr) == 0;
        CHECK(ok && qp.p.params_n == counts[i].params, "%s: %lld parameters, want %lld", counts[i].path,
              ok ? (long long)qp.p.params_n : -1ll, counts[i].params);
        if (ok) plan_free(&qp);
    }

    /* Gemma 3 1B: every 6th block global, the rest windowed; the plan's Gemma numerics */
    {
        hzc_spec g;
        hzc_plan gp;
        int ok = spec_load("models/gemma3-1b.yaml", &g, stderr) == 0 &&
                 plan_build(&g, &none, &gp, stderr) == 0;
        int pattern = ok;
        for (int i = 0; ok && i < gp.p.unit_n; i++) {
            const hz_unit *u = &gp.p.units[i];
            if (u->kind == HZ_BLOCK) pattern &= u->window == ((u->layer + 1) % 6 ? 512 : 0);
            else pattern &= u->window == 0;
        }
        const hz_dims *gd = ok ? &gp.p.dims : NULL;
        CHECK(pattern && gd->window == 512 && gd->window_n == 22 && gd->embed_scale == 34.0f &&
                  gd->attn_scale == 0.0625f && gd->norm_offset == 1.0f && gd->post_norms &&
                  gd->geglu && gd->rope_local_theta == 10000.0f && gd->rope_linear == 0.0f,
              "gemma3-1b: window 512 on blocks with (l + 1) %% 6 != 0 (22 of 26), embedding x "
              "bf16(sqrt(1152)) = 34, scale 256^-0.5, (1 + w) norms, GeGLU, local base 1e4");
        /* model FLOPs: the windowed blocks count their 512 keys, not seq_len's 2048 */
        double A = 4.0 * 256, full = 6.0 * 26 * 2048 * A, windowed = 6.0 * (4 * 2048 + 22 * 512) * A;
        if (ok) {
            /* the time model: at one attention rate for both kinds (the defaults' window
             * rates are another kernel's), a windowed block's forward and backward take less
             * than a global one's, by its fewer keys alone */
            tm_ceilings tc;
            tm_defaults(&tc);
            tc.window_att_fwd_tflops = tc.att_fwd_tflops;
            tc.window_att_bwd_tflops = tc.att_bwd_tflops;
            double fwd[2] = {0, 0}, bwd[2] = {0, 0};
            for (int i = 0; i < gp.p.op_n; i++) {
                const hz_op *o = &gp.p.ops[i];
                const hz_unit *u = &gp.p.units[o->unit];
                if (u->kind != HZ_BLOCK || o->micro != 0) continue;
                if (o->kind == HZ_FWD) fwd[u->window > 0] = tm_op_seconds(&gp.p, &tc, i);
                if (o->kind == HZ_BWD) bwd[u->window > 0] = tm_op_seconds(&gp.p, &tc, i);
            }
            CHECK(fwd[1] > 0 && fwd[1] < fwd[0] && bwd[1] > 0 && bwd[1] < bwd[0],
                  "gemma3-1b time model: a windowed block's forward %.3g s < a global one's %.3g s, "
                  "backward %.3g s < %.3g s", fwd[1], fwd[0], bwd[1], bwd[0]);
            hz_dims nowin = *gd;
            nowin.window_n = 0;
            double diff = hz_flops_per_token(&nowin) - hz_flops_per_token(gd);
            CHECK_CLOSE("gemma3-1b attention FLOPs saved by the window", diff, full - windowed,
                        0, 1e-9);
            plan_free(&gp);
        }
    }

    /* a plan that does not fit says by how much and which knob to turn */
    char *msg = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&msg, &len);
    plan_limits small = {8ll << 30, 0, PLAN_BOUNDARIES_GPU};
    int rc = plan_build(&s, &small, &pl, err);
    fclose(err);
    CHECK(rc != 0 && strstr(msg, "GiB over") && strstr(msg, "lower shape.tokens_per_step"),
          "8 GiB GPU refused: %s", msg);
    free(msg);
    plan_free(&pl);
    TEST_END();
}
