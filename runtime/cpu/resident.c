/* runtime/cpu/resident.c - the cpu backend's resident units (hz_unit.resident): their w, lo,
 * m, v and gradients in each rank's RESIDENT arrays, updated there with the host's formula
 * (the OPT op), and their home for every path that reads or writes the whole store. */
#include <string.h>

#include "../optstate.h"
#include "state.h"

/* A resident unit's update, in its RESIDENT arrays: fp32 moments through a store view over
 * each tensor; compact ones through a state whose arrays are shifted to be indexed by store
 * index (hz_shift_ptr), so the bf16 rounding hashes the same index as a streamed unit's. */
void cpu_op_opt(hz_ctx *c, int rank, const hz_op *o)
{
    cpu_state *s = rank_state(c, rank);
    const hz_plan *p = c->plan;
    const hz_unit *u = &p->units[o->unit];
    const int mode = p->optimizer_state;
    const int64_t mb = hz_moment_bytes(mode);
    int64_t bad = 0;
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *x = &p->tensors[u->first_tensor + k];
        if (x->host_n < u->host_n || x->host_n >= u->host_n + u->padded_n) continue; /* tied */
        int64_t n = x->rows * x->cols;
        float *g = s->res_g + u->res_g_n + x->grad_n;
        hz_adam_coef coef = hz_adam_coef_of(&c->optim, c->opt_lr, x->decay, c->opt_gscale,
                                            c->opt_t);
        /* bytes read and written: w, lo and the moments both ways, the gradients read */
        hz_kcost cost = copy_cost(HZ_KR_ADAMW, n, 2 * (4 + 2 * (int)mb) + 4);
        if (mode == HZ_OPTSTATE_FP32) {
            hz_store view = {.n = n, .w = s->res_w + x->res_n, .lo = s->res_lo + x->res_n,
                             .m = (float *)s->res[HZ_RES_M] + x->res_n,
                             .v = (float *)s->res[HZ_RES_V] + x->res_n, .g = g, .grad_bf16 = 0};
            hz_adamw_store_range(&view, 0, n, &coef, s->res_pool);
            hz_kclock_mark(s->kc, cost);
            continue;
        }
        const int64_t d = x->res_n - x->host_n; /* resident index - store index */
        hz_qstate q = {mode, p->host_store_n, c->store.state_seed,
                       hz_shift_ptr(s->res[HZ_RES_M], d * mb),
                       hz_shift_ptr(s->res[HZ_RES_V], d * mb),
                       hz_shift_ptr(s->res[HZ_RES_MS], d / HZ_OPTSTATE_BLOCK * 4),
                       hz_shift_ptr(s->res[HZ_RES_VS], d / HZ_OPTSTATE_BLOCK * 4)};
        if (mode != HZ_OPTSTATE_INT8) q.m_absmax = q.v_absmax = NULL;
        bad += hz_qadamw_pool(&q, hz_shift_ptr(s->res_w, d * 2), hz_shift_ptr(s->res_lo, d * 2),
                              hz_shift_ptr(g, -x->host_n * 4), 0, x->host_n, n, &coef, c->opt_t,
                              s->res_pool);
        hz_kclock_mark(s->kc, cost);
    }
    if (rank > 0) return; /* every rank's copy kept the same elements out: counted once */
    pthread_mutex_lock(&c->mu);
    c->nonfinite_n += bad;
    pthread_mutex_unlock(&c->mu);
}

/* The home of the resident units' state: the RESIDENT arrays above, memcpy'd (HZ_ARR_* of
 * the state arrays and HZ_RES_* name the same arrays by the same index); every rank's copy
 * is written, rank 0's read. */
void cpu_home_copy(void *ctx, int a, int64_t first, int64_t n, void *buf, int to_home)
{
    hz_ctx *c = ctx;
    const cpu_backend *b = c->bk;
    const hz_plan *p = c->plan;
    const int64_t bb = hz_arr_block_bytes(p->optimizer_state, 4, a);
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        int64_t lo = first > u->host_n ? first : u->host_n;
        int64_t hi = first + n < u->host_n + u->padded_n ? first + n : u->host_n + u->padded_n;
        if (lo >= hi) continue;
        int64_t at = hz_arr_offset(bb, u->res_n + lo - u->host_n);
        char *h = (char *)buf + hz_arr_offset(bb, lo) - hz_arr_offset(bb, first);
        size_t bytes = (size_t)(hz_arr_offset(bb, hi) - hz_arr_offset(bb, lo));
        if (!to_home) {
            memcpy(h, b->rank[0].res[a] + at, bytes);
            continue;
        }
        for (int r = 0; r < b->rank_n; r++) memcpy(b->rank[r].res[a] + at, h, bytes);
    }
}
