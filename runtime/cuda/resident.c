/* runtime/cuda/resident.c - the resident units (hz_unit.resident): their weights, fp32 master
 * low halves and Adam moments (in the plan's optimizer state, with the int8 scales) live in
 * the RESIDENT region (runtime/hz_layout.h hz_resident_layout) and are updated there by
 * hzk_adamw (adamw.cu) or hzk_adamw_bf16state / hzk_adamw_int8state (adamw_q.cu), with the
 * coefficients the host update uses (runtime/rt.h hz_adam_coef), so the master is the same
 * bits wherever it lives. They have no copy in the host store: checkpoints, init and export
 * reach them through hzcu_home_copy. With several ranks every GPU holds them and applies the
 * same update to its copy from the same summed gradients (ranks.c). */
#include "launch.h"

/* A unit's elements [host_n, host_n + padded_n) of the host store are its elements from
 * res_n on in the RESIDENT arrays; the range may span several resident units. The state
 * arrays of the store and of the region share their indices (hz_layout.h). Pageable copies:
 * this is the checkpoint, init and export path, not the step's. */
void hzcu_home_copy(void *ctx, int a, int64_t first, int64_t n, void *buf, int to_home)
{
    hz_ctx *c = ctx;
    /* every rank holds the resident units: written into each, read from rank 0's */
    for (int r = 0; r < (to_home ? c->rank_n : 1); r++) {
        cuda_state *s = hzcu_rank(c, r);
        const hz_plan *p = s->p;
        const int64_t bb = hz_arr_block_bytes(p->optimizer_state, 4, a);
        for (int k = 0; k < HZ_STREAM_KIND_N; k++)
            if (k != HZ_HOST) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
        char *b = buf;
        for (int i = 0; i < p->unit_n; i++) {
            const hz_unit *u = &p->units[i];
            int64_t lo = first > u->host_n ? first : u->host_n;
            int64_t hi = first + n < u->host_n + u->padded_n ? first + n : u->host_n + u->padded_n;
            if (lo >= hi) continue;
            if (!u->resident) hzcu_die("home_copy of a streamed unit's elements (internal error)");
            char *d = s->res[a] + hz_arr_offset(bb, u->res_n + lo - u->host_n);
            char *h = b + hz_arr_offset(bb, lo) - hz_arr_offset(bb, first);
            size_t bytes = (size_t)(hz_arr_offset(bb, hi) - hz_arr_offset(bb, lo));
            if (to_home)
                CUDA_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
            else
                CUDA_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
        }
    }
}

/* Every tensor the unit owns (a tied head's lm_head is the embedding's, updated there). The
 * compact kernels index their arrays by store index (the bf16 rounding hashes it, as the
 * host's does): the RESIDENT arrays go in shifted by res_n - host_n (hz_shift_ptr). */
void hzcu_adamw_resident(cuda_state *s, const hz_unit *u, const hz_optim *o, float lr,
                         float gscale, int64_t t, uint64_t seed)
{
    const hz_plan *p = s->p;
    const int mode = p->optimizer_state;
    const int64_t mb = hz_moment_bytes(mode);
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    const float *g = (const float *)s->res[HZ_RES_G] + u->res_g_n;
    uint64_t *bad = (uint64_t *)(s->scalars + HZ_SC_NONFINITE);
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *x = &p->tensors[u->first_tensor + k];
        if (x->host_n < u->host_n || x->host_n >= u->host_n + u->padded_n) continue; /* tied */
        hz_adam_coef coef = hz_adam_coef_of(o, lr, x->decay, gscale, t);
        const long n = (long)(x->rows * x->cols);
        if (mode == HZ_OPTSTATE_FP32) {
            hzcu_adamw(s, cs, (uint16_t *)s->res[HZ_RES_W] + x->res_n,
                       (int16_t *)s->res[HZ_RES_LO] + x->res_n,
                       (float *)s->res[HZ_RES_M] + x->res_n, (float *)s->res[HZ_RES_V] + x->res_n,
                       g + x->grad_n, n, &coef);
            continue;
        }
        const int64_t d = x->res_n - x->host_n; /* resident index - store index */
        uint16_t *w = hz_shift_ptr(s->res[HZ_RES_W], d * 2);
        int16_t *lo = hz_shift_ptr(s->res[HZ_RES_LO], d * 2);
        const void *gx = hz_shift_ptr(g + x->grad_n, -x->host_n * 4);
        void *m = hz_shift_ptr(s->res[HZ_RES_M], d * mb);
        void *v = hz_shift_ptr(s->res[HZ_RES_V], d * mb);
        if (mode == HZ_OPTSTATE_BF16)
            hzcu_adamw_bf16state(s, cs, w, lo, m, v, gx, 0, (long)x->host_n, n, bad, &coef, seed,
                                 (long)t);
        else
            hzcu_adamw_int8state(s, cs, w, lo, m, v,
                                 hz_shift_ptr(s->res[HZ_RES_MS], d / HZ_OPTSTATE_BLOCK * 4),
                                 hz_shift_ptr(s->res[HZ_RES_VS], d / HZ_OPTSTATE_BLOCK * 4), gx,
                                 0, (long)x->host_n, n, bad, &coef);
    }
}

void hzcu_count_nonfinite(hz_ctx *c)
{
    cuda_state *s = hzcu_rank(c, 0); /* every rank's updates count the same elements */
    uint64_t now;
    CUDA_CHECK(cudaStreamSynchronize(s->stream[HZ_COMPUTE]));
    CUDA_CHECK(cudaMemcpy(&now, s->scalars + HZ_SC_NONFINITE, 8, cudaMemcpyDeviceToHost));
    if (now == s->nonfinite_seen) return;
    pthread_mutex_lock(&c->mu);
    c->nonfinite_n += (int64_t)(now - s->nonfinite_seen);
    pthread_mutex_unlock(&c->mu);
    s->nonfinite_seen = now;
}
