/* runtime/names.c - what the compiler and the runtime share: the names of the tables
 * (hz_tables.h) for messages and traces, and the FLOP accounting of DESIGN.md. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hz.h"
#include "hz_layout.h"

#define HZ_NAME_ENTRY(id, name, ...) name,
#define HZ_WHAT_ENTRY(id, name, what) what,
const char *const hz_unit_names[] = {HZ_UNIT_KINDS(HZ_NAME_ENTRY)};
const char *const hz_tensor_names[] = {HZ_TENSOR_KINDS(HZ_NAME_ENTRY)};
const char *const hz_region_names[] = {HZ_REGION_KINDS(HZ_NAME_ENTRY)};
const char *const hz_stream_names[] = {HZ_STREAM_KINDS(HZ_NAME_ENTRY)};
const char *const hz_op_names[] = {HZ_OP_KINDS(HZ_NAME_ENTRY)};
const char *const hz_region_what[] = {HZ_REGION_KINDS(HZ_WHAT_ENTRY)};
const char *const hz_phase_names[] = {HZ_PHASES(HZ_NAME_ENTRY) HZ_GPUS_PHASES(HZ_NAME_ENTRY)};
#define HZ_OPTSTATE_NAME_ENTRY(id, name, bytes) name,
const char *const hz_optstate_names[] = {HZ_OPTSTATE_MODES(HZ_OPTSTATE_NAME_ENTRY)};

double hz_flops_per_token(const hz_dims *d)
{
    int64_t A = d->NH * d->HD, KV = d->NKV * d->HD;
    double block = (double)d->C * (A + 2 * KV) + (double)A * d->C + 3.0 * d->C * d->F;
    double n_matmul = d->L * block + (double)d->V * d->C;
    double local_T = d->window > 0 && d->window < d->T ? (double)d->window : (double)d->T;
    double keys = (double)(d->L - d->window_n) * d->T + (double)d->window_n * local_T;
    return 6.0 * n_matmul + 6.0 * keys * A;
}

float hz_gemma_embed_scale(int64_t C)
{
    float f = (float)sqrt((double)C);
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even; sqrt of a size is finite */
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

#define HZ_CAPS_ENTRY(id, name, pinned, pcie, ranks, ...) {name, pinned, pcie, ranks, __VA_ARGS__},
const hz_caps hz_backend_caps[HZ_BACKEND_N] = {HZ_BACKENDS(HZ_CAPS_ENTRY)};

const hz_caps *hz_caps_find(const char *name)
{
    for (int i = 0; i < HZ_BACKEND_N; i++)
        if (strcmp(hz_backend_caps[i].name, name) == 0) return &hz_backend_caps[i];
    return NULL;
}

int hz_caps_head_dim_ok(const hz_caps *c, int64_t HD, char *list, size_t list_n)
{
    int ok = 0;
    size_t len = 0;
    if (list && list_n) list[0] = 0;
    if (c->head_dims[0] == 0) {
        if (list) snprintf(list, list_n, "any even value");
        return HD > 0 && HD % 2 == 0;
    }
    for (int i = 0; i < HZ_CAPS_HEAD_DIMS && c->head_dims[i]; i++) {
        ok |= c->head_dims[i] == HD;
        if (list && len < list_n)
            len += (size_t)snprintf(list + len, list_n - len, "%s%d", i ? ", " : "",
                                    c->head_dims[i]);
    }
    return ok;
}

int64_t hz_gpus(const hz_dims *d) { return d->gpus > 1 ? d->gpus : 1; }

int64_t hz_hosts(const hz_dims *d) { return d->hosts > 1 ? d->hosts : 1; }

int64_t hz_gpu_n_micro(const hz_dims *d) { return d->n_micro / (hz_gpus(d) * hz_hosts(d)); }

int64_t hz_gpu_step_tokens(const hz_dims *d) { return d->step_tokens / (hz_gpus(d) * hz_hosts(d)); }

int hz_plan_phase_n(const hz_plan *p)
{
    return hz_hosts(&p->dims) > 1 ? HZ_PHASE_ALL_N /* the network's last */
           : hz_gpus(&p->dims) > 1 ? HZ_PH_NCCL + 1
                                   : HZ_PHASE_N;
}

void hz_plan_pcie_bytes(const hz_plan *p, int64_t *h2d, int64_t *d2h)
{
    int64_t tokens = hz_gpu_step_tokens(&p->dims); /* this GPU's share of the step */
    *h2d = 8 * tokens; /* input and target ids */
    *d2h = 4 * tokens; /* per-token losses */
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        const hz_unit *u = &p->units[o->unit];
        for (int k = 0; k < u->tensor_n; k++) {
            const hz_tensor *x = &p->tensors[u->first_tensor + k];
            if (o->kind == HZ_LOAD_W) *h2d += 2 * x->rows * x->cols;
            if (o->kind == HZ_STORE_G && x->store_grad && !u->resident && !u->held)
                *d2h += (p->host_grad_bf16 ? 2 : 4) * x->rows * x->cols;
        }
        if (o->kind == HZ_FETCH_G) *d2h += 4 * hz_unit_grads_n(p->tensors, u);
        /* host boundaries: a whole layer each way */
        if (o->kind == HZ_LOAD_B) *h2d += 2 * tokens * p->dims.C;
        if (o->kind == HZ_STORE_B) *d2h += 2 * tokens * p->dims.C;
    }
}
