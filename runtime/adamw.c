/* runtime/adamw.c - AdamW on the split fp32 master, as torch.optim.AdamW (decoupled
 * weight decay p -= lr*wd*p, bias-corrected moments, eps outside the square root).
 * The inner loop is compiled for AVX-512, AVX2 and plain x86-64 and picked at run time. */
#include <math.h>

#include "optstate.h"
#include "rt.h"

float hz_lr_at(const hz_optim *o, int64_t step)
{
    if (o->warmup_steps > 0 && step < o->warmup_steps)
        return o->lr * (float)(step + 1) / (float)o->warmup_steps;
    if (o->decay_steps <= 0) return o->lr;
    double t = (double)(step - o->warmup_steps) / (double)o->decay_steps;
    if (t > 1.0) t = 1.0;
    double min_lr = o->lr * o->min_lr_ratio;
    return (float)(min_lr + 0.5 * (o->lr - min_lr) * (1.0 + cos(3.141592653589793 * t)));
}

hz_adam_coef hz_adam_coef_of(const hz_optim *o, float lr, int decay, float gscale, int64_t t)
{
    float wd = decay ? o->weight_decay : 0.0f;
    float bc1 = 1.0f - powf(o->beta1, (float)t), bc2 = 1.0f - powf(o->beta2, (float)t);
    hz_adam_coef k = {1.0f - lr * wd, lr / bc1, 1.0f / bc2, o->beta1, o->beta2, o->eps, gscale};
    return k;
}

typedef struct adam_job {
    hz_store *s;
    int64_t base;
    const float *grads; /* element base's gradient, or NULL: the store's */
    hz_adam_coef k;
} adam_job;

/* One element range: the master is joined from (w, lo), updated in fp32 and split.
 * Written branch-free per element so the compiler vectorises it; one loop per gradient
 * dtype. */
#define ADAM_LOOP(GRAD_EXPR)                                                                \
    for (int64_t i = begin; i < end; i++) {                                                 \
        float g = (GRAD_EXPR) * gscale;                                                     \
        float mi = b1 * m[i] + (1.0f - b1) * g;                                             \
        float vi = b2 * v[i] + (1.0f - b2) * g * g;                                         \
        m[i] = mi;                                                                          \
        v[i] = vi;                                                                          \
        float p = hz_join_inl(w[i], lo[i]) * decay;                                         \
        p -= step * mi / (sqrtf(vi * rbc2) + eps);                                          \
        hz_split_inl(p, &w[i], &lo[i]);                                                     \
    }

#define ADAM_COEFS(k)                                                                       \
    const float decay = (k)->decay, step = (k)->step, rbc2 = (k)->rbc2;                     \
    const float b1 = (k)->beta1, b2 = (k)->beta2, eps = (k)->eps, gscale = (k)->gscale

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define ADAM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ADAM_CLONES
#endif

/* fp32 gradients, exported (rt.h) so the GPU kernel is tested against this very loop. */
ADAM_CLONES
void hz_adamw_range(uint16_t *restrict w, int16_t *restrict lo, float *restrict m,
                    float *restrict v, const float *restrict grad, int64_t n,
                    const hz_adam_coef *k)
{
    ADAM_COEFS(k);
    const int64_t begin = 0, end = n;
    ADAM_LOOP(grad[i])
}

ADAM_CLONES
static void adam_range(void *varg, int64_t begin, int64_t end)
{
    const adam_job *j = varg;
    hz_store *s = j->s;
    const int64_t at = j->base;
    if (j->grads || !s->grad_bf16) {
        const float *g = j->grads ? j->grads : (const float *)s->g + at;
        hz_adamw_range(s->w + at + begin, s->lo + at + begin, (float *)s->m + at + begin,
                       (float *)s->v + at + begin, g + begin, end - begin, &j->k);
        return;
    }
    uint16_t *restrict w = s->w + at;
    int16_t *restrict lo = s->lo + at;
    float *restrict m = (float *)s->m + at, *restrict v = (float *)s->v + at;
    const uint16_t *restrict gb = (const uint16_t *)s->g + at;
    ADAM_COEFS(&j->k);
    ADAM_LOOP(hz_bf16_f32_inl(gb[i]))
}

void hz_adamw_store_range(hz_store *s, int64_t first, int64_t n, const hz_adam_coef *k,
                          hz_pool *pool)
{
    adam_job j = {s, first, NULL, *k};
    hz_pool_run(pool, adam_range, &j, n);
}

/* The store's moments as a state of the whole store (element i at index i). */
static hz_qstate store_qstate(const hz_store *s)
{
    hz_qstate q = {s->state_mode, s->n, s->state_seed, s->m, s->v, s->ms, s->vs};
    return q;
}

/* A held unit's gradients of tensor X as the compact update indexes them, by store index: it
 * reads only [host_n, host_n + n), which is the staging slot's [grad_n, grad_n + n). */
static const void *indexed_like_store(const float *grads, const hz_tensor *x)
{
    return (const void *)((uintptr_t)(grads + x->grad_n) - (uintptr_t)x->host_n * sizeof(float));
}

int64_t hz_adamw_unit_grads(hz_store *s, const hz_plan *p, int unit, const float *grads,
                            const hz_optim *o, float lr, float gscale, int64_t t, hz_pool *pool)
{
    const hz_unit *u = &p->units[unit];
    hz_qstate q = store_qstate(s);
    int64_t bad = 0;
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *x = &p->tensors[u->first_tensor + k];
        if (x->host_n < u->host_n || x->host_n >= u->host_n + u->padded_n) continue; /* tied */
        hz_adam_coef c = hz_adam_coef_of(o, lr, x->decay, gscale, t);
        if (s->state_mode == HZ_OPTSTATE_FP32) {
            adam_job j = {s, x->host_n, grads ? grads + x->grad_n : NULL, c};
            hz_pool_run(pool, adam_range, &j, x->rows * x->cols);
        } else if (grads) {
            bad += hz_qadamw_pool(&q, s->w, s->lo, indexed_like_store(grads, x), 0, x->host_n,
                                  x->rows * x->cols, &c, t, pool);
        } else {
            bad += hz_qadamw_pool(&q, s->w, s->lo, s->g, s->grad_bf16, x->host_n,
                                  x->rows * x->cols, &c, t, pool);
        }
    }
    return bad;
}

int64_t hz_adamw_unit(hz_store *s, const hz_plan *p, int unit, const hz_optim *o, float lr,
                      float gscale, int64_t t, hz_pool *pool)
{
    return hz_adamw_unit_grads(s, p, unit, NULL, o, lr, gscale, t, pool);
}
