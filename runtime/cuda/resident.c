/* runtime/cuda/resident.c - the resident units (hz_unit.resident): their weights, fp32 master
 * low halves and Adam moments live in the RESIDENT region (runtime/hz_layout.h
 * hz_resident_layout) and are updated there by hzk_adamw (adamw.cu), with the coefficients
 * the host update uses (runtime/rt.h hz_adam_coef), so the master is the same bits wherever it
 * lives. They have no copy in the host store: checkpoints, init and export reach them through
 * hzcu_home_copy. */
#include "launch.h"

/* A unit's elements [host_n, host_n + padded_n) of the host store are its elements from
 * res_n on in the RESIDENT arrays; the range may span several resident units. Pageable
 * copies: this is the checkpoint, init and export path, not the step's. */
void hzcu_home_copy(void *ctx, int a, int64_t first, int64_t n, void *buf, int to_home)
{
    hz_ctx *c = ctx;
    cuda_state *s = c->bk;
    const hz_plan *p = s->p;
    static const int64_t size[4] = {2, 2, 4, 4};
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (k != HZ_HOST) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
    char *b = buf;
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        int64_t lo = first > u->host_n ? first : u->host_n;
        int64_t hi = first + n < u->host_n + u->padded_n ? first + n : u->host_n + u->padded_n;
        if (lo >= hi) continue;
        if (!u->resident) hzcu_die("home_copy of a streamed unit's elements (internal error)");
        char *d = s->res[a] + (u->res_n + lo - u->host_n) * size[a];
        char *h = b + (lo - first) * size[a];
        size_t bytes = (size_t)((hi - lo) * size[a]);
        if (to_home)
            CUDA_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
        else
            CUDA_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
    }
}

/* Every tensor the unit owns (a tied head's lm_head is the embedding's, updated there). */
void hzcu_adamw_resident(cuda_state *s, const hz_unit *u, const hz_optim *o, float lr,
                         float gscale, int64_t t)
{
    const hz_plan *p = s->p;
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    const float *g = (const float *)s->res[HZ_RES_G] + u->res_g_n;
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *x = &p->tensors[u->first_tensor + k];
        if (x->host_n < u->host_n || x->host_n >= u->host_n + u->padded_n) continue; /* tied */
        hz_adam_coef coef = hz_adam_coef_of(o, lr, x->decay, gscale, t);
        hzcu_adamw(s, cs, (uint16_t *)s->res[HZ_RES_W] + x->res_n,
                   (int16_t *)s->res[HZ_RES_LO] + x->res_n, (float *)s->res[HZ_RES_M] + x->res_n,
                   (float *)s->res[HZ_RES_V] + x->res_n, g + x->grad_n, (long)(x->rows * x->cols),
                   &coef);
    }
}
