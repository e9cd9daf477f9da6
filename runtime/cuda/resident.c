/* runtime/cuda/resident.c - the resident units (hz_unit.resident): their weights, fp32 master
 * low halves and Adam moments live in the RESIDENT region (runtime/hz_layout.h
 * hz_resident_layout) and are updated there by hzk_adamw (adamw.cu), with the coefficients
 * the host update uses (runtime/rt.h hz_adam_coef), so the master is the same bits wherever it
 * lives. The host store keeps a copy for checkpoints, brought up to date by store_sync. */
#include "launch.h"

/* Each unit's own elements: [host_n, host_n + padded_n) of the host store, from res_n on. */
void hzcu_store_sync(hz_ctx *c, int to_device)
{
    cuda_state *s = c->bk;
    const hz_plan *p = s->p;
    if (p->resident_n == 0) return;
    cudaStream_t cs = s->stream[HZ_COMPUTE];
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (k != HZ_HOST) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
    char *host[4] = {(char *)c->store.w, (char *)c->store.lo, (char *)c->store.m,
                     (char *)c->store.v};
    const int64_t size[4] = {2, 2, 4, 4};
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        if (!u->resident) continue;
        for (int a = 0; a < 4; a++) {
            char *h = host[a] + u->host_n * size[a], *d = s->res[a] + u->res_n * size[a];
            int64_t bytes = u->padded_n * size[a];
            if (to_device)
                CUDA_CHECK(cudaMemcpyAsync(d, h, (size_t)bytes, cudaMemcpyHostToDevice, cs));
            else
                CUDA_CHECK(cudaMemcpyAsync(h, d, (size_t)bytes, cudaMemcpyDeviceToHost, cs));
        }
    }
    CUDA_CHECK(cudaStreamSynchronize(cs));
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
