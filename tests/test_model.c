/* tests/test_model.c - the whole model on the cpu backend:
 *   1. a finite-difference gradient check of a whole tiny model (every tensor kind);
 *   2. the streamed, recomputed, micro-batched schedule (planner + executor) equal to a
 *      plain forward + backward of the same model over the whole step at once;
 *   3. the AdamW update applied to the split master equal to torch.optim.AdamW's formula;
 *   4. a short training run whose loss falls.
 * Each runs for untied+bias, tied, llama3-rope-scaled, Qwen3 (q/k norm) and Gemma 3 (four
 * (1 + w) norms, GeGLU, scaled embedding, a sliding-window layer) variants. */
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "ops.h"
#include "plan.h"
#include "rt.h"
#include "test.h"
#include "test_specs.h"

static uint64_t rng_state = 1234567;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / 8388608.0 - 1.0);
}


/* The plain model: fp32 weights in the host store's layout, the whole step at once. */
typedef struct plain {
    const hz_plan *p;
    hz_dims d;       /* dims with one micro-batch = the whole step */
    float *inv_freq, *inv_freq_local, *work, *head, *xs, *dx;
} plain;

static void plain_init(plain *m, const hz_plan *p)
{
    m->p = p;
    m->d = p->dims;
    m->d.micro_tokens = m->d.step_tokens;
    m->d.B = m->d.step_tokens / m->d.T;
    m->d.n_micro = 1;
    m->d.chunk_tokens = m->d.step_tokens;
    m->inv_freq = calloc((size_t)m->d.HD / 2, sizeof(float));
    hz_rope_inv_freq_dims(m->inv_freq, &m->d);
    m->inv_freq_local = calloc((size_t)m->d.HD / 2, sizeof(float));
    hz_rope_inv_freq_local(m->inv_freq_local, &m->d);
    m->work = calloc((size_t)cpu_work_floats(&m->d), sizeof(float));
    m->head = calloc((size_t)cpu_head_floats(&m->d), sizeof(float));
    m->xs = calloc((size_t)((m->d.L + 1) * m->d.step_tokens * m->d.C), sizeof(float));
    m->dx = calloc((size_t)(m->d.step_tokens * m->d.C), sizeof(float));
}

static void plain_free(plain *m)
{
    free(m->inv_freq);
    free(m->inv_freq_local);
    free(m->work);
    free(m->head);
    free(m->xs);
    free(m->dx);
}

static float *tensor_ptr(const hz_plan *p, float *base, int kind, int layer)
{
    for (int i = 0; i < p->tensor_n; i++)
        if (p->tensors[i].kind == kind && p->tensors[i].layer == layer)
            return base + p->tensors[i].host_n;
    return NULL;
}

static cpu_block_params block_at(const hz_plan *p, float *base, int l)
{
    cpu_block_params b = {tensor_ptr(p, base, HZ_ATTN_NORM, l), tensor_ptr(p, base, HZ_WQKV, l),
                          tensor_ptr(p, base, HZ_BQKV, l),      tensor_ptr(p, base, HZ_WO, l),
                          tensor_ptr(p, base, HZ_MLP_NORM, l),  tensor_ptr(p, base, HZ_WGU, l),
                          tensor_ptr(p, base, HZ_WDOWN, l),     tensor_ptr(p, base, HZ_Q_NORM, l),
                          tensor_ptr(p, base, HZ_K_NORM, l),
                          tensor_ptr(p, base, HZ_ATTN_POST_NORM, l),
                          tensor_ptr(p, base, HZ_MLP_POST_NORM, l)};
    return b;
}

/* Mean loss over trained tokens; with G, gradients (of the mean) accumulate into G. */
static double plain_loss(plain *m, float *W, float *G, const int32_t *in, const int32_t *tg)
{
    const hz_plan *p = m->p;
    const hz_dims *d = &m->d;
    int64_t N = d->step_tokens, C = d->C, trained = 0;
    for (int64_t i = 0; i < N; i++) trained += tg[i] != -100;
    cpu_work ws;
    cpu_work_bind(&ws, m->work, d);
    embedding_scaled_forward(m->xs, in, tensor_ptr(p, W, HZ_WTE, -1), N, C, d->embed_scale);
    for (int l = 0; l < d->L; l++) {
        cpu_block_params w = block_at(p, W, l);
        int64_t win = p->units[1 + l].window;
        cpu_block_forward(d, win ? m->inv_freq_local : m->inv_freq, win, &w, m->xs + l * N * C,
                          m->xs + (l + 1) * N * C, &ws, NULL);
    }
    float *lm = d->tied ? tensor_ptr(p, W, HZ_WTE, -1) : tensor_ptr(p, W, HZ_LM_HEAD, -1);
    float *dlm = G ? (d->tied ? tensor_ptr(p, G, HZ_WTE, -1) : tensor_ptr(p, G, HZ_LM_HEAD, -1))
                   : NULL;
    double sum = cpu_head_loss(d, tensor_ptr(p, W, HZ_FINAL_NORM, -1), lm, m->xs + d->L * N * C,
                               tg, 1.0f / (float)trained, m->dx,
                               G ? tensor_ptr(p, G, HZ_FINAL_NORM, -1) : NULL, dlm, m->head,
                               G != NULL, NULL, NULL);
    if (G) {
        for (int l = (int)d->L - 1; l >= 0; l--) {
            cpu_block_params w = block_at(p, W, l), g = block_at(p, G, l);
            int64_t win = p->units[1 + l].window;
            cpu_block_backward(d, win ? m->inv_freq_local : m->inv_freq, win, &w, &g,
                               m->xs + l * N * C, m->dx, &ws, HZ_RECOMPUTE, NULL);
        }
        embedding_scaled_backward(tensor_ptr(p, G, HZ_WTE, -1), m->dx, in, N, C, d->embed_scale);
    }
    return sum / (double)trained;
}

static void random_tokens(const hz_plan *p, int32_t *in, int32_t *tg)
{
    for (int64_t i = 0; i < p->dims.step_tokens; i++) {
        in[i] = (int32_t)((frand() + 1.0f) * 0.5f * (float)p->dims.V) % (int32_t)p->dims.V;
        tg[i] = i % 7 == 3 ? -100 : (int32_t)((frand() + 1.0f) * 0.5f * (float)p->dims.V) % (int32_t)p->dims.V;
    }
}

/* 1. whole-model finite differences, weights large enough to be far from linear */
static void gradcheck(const hz_plan *p, int variant)
{
    plain m;
    plain_init(&m, p);
    int64_t n = p->host_store_n;
    float *W = calloc((size_t)n, sizeof(float)), *G = calloc((size_t)n, sizeof(float));
    for (int t = 0; t < p->tensor_n; t++) {
        const hz_tensor *x = &p->tensors[t];
        int norm = x->kind == HZ_ATTN_NORM || x->kind == HZ_MLP_NORM || x->kind == HZ_FINAL_NORM ||
                   x->kind == HZ_Q_NORM || x->kind == HZ_K_NORM || x->kind == HZ_ATTN_POST_NORM ||
                   x->kind == HZ_MLP_POST_NORM;
        /* a norm's effective weight near 1: w itself, or (1 + w) with Gemma's offset */
        float base = norm ? 1.0f - p->dims.norm_offset : 0.0f;
        for (int64_t e = 0; e < x->rows * x->cols; e++) W[x->host_n + e] = base + 0.3f * frand();
    }
    int32_t in[64], tg[64];
    random_tokens(p, in, tg);
    plain_loss(&m, W, G, in, tg);
    for (int t = 0; t < p->tensor_n; t++) {
        const hz_tensor *x = &p->tensors[t];
        if (x->kind == HZ_LM_HEAD && p->dims.tied) continue;
        double worst = 0, worst_tol = 0;
        int ok = 1;
        for (int k = 0; k < 4; k++) {
            int64_t e = x->host_n + (int64_t)((frand() + 1.0f) * 0.5f * (float)(x->rows * x->cols));
            if (e >= x->host_n + x->rows * x->cols) e = x->host_n;
            float keep = W[e];
            const float h = 1e-2f;
            W[e] = keep + h;
            double lp = plain_loss(&m, W, NULL, in, tg);
            W[e] = keep - h;
            double lm = plain_loss(&m, W, NULL, in, tg);
            W[e] = keep;
            double num = (lp - lm) / (2.0 * h), diff = fabs(num - G[e]);
            double tol = 3e-4 + 3e-2 * fabs(num);
            if (diff > worst) worst = diff, worst_tol = tol;
            ok &= diff <= tol;
        }
        CHECK(ok, "variant %d: d loss / d %s.%d: finite differences vs backward, max diff %.2e "
                  "(tol %.2e)",
              variant, hz_tensor_names[x->kind], x->layer, worst, worst_tol);
    }
    free(W);
    free(G);
    plain_free(&m);
}

/* 2 + 3: one streamed step vs the plain model, then the AdamW update */
static void streamed_vs_plain(const hz_plan *p, int variant)
{
    hz_ctx c;
    memset(&c, 0, sizeof c);
    c.optim = (hz_optim){p->train.lr, p->train.beta1, p->train.beta2, p->train.eps,
                         p->train.weight_decay, p->train.grad_clip, p->train.min_lr_ratio,
                         p->train.warmup_steps, p->train.decay_steps};
    if (hz_exec_init(&c, p, 2) != 0) {
        CHECK(0, "exec init");
        return;
    }
    hz_store_init(&c.store, p, 99, c.pool);
    int64_t n = p->host_store_n;
    float *W = calloc((size_t)n, sizeof(float)), *G = calloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) W[i] = hz_f32_from_bf16(c.store.w[i]);
    float *master0 = calloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) master0[i] = hz_store_master(&c.store, i);
    int32_t *inputs = calloc((size_t)p->dims.step_tokens, sizeof(int32_t));
    int32_t *targets = calloc((size_t)p->dims.step_tokens, sizeof(int32_t));
    random_tokens(p, inputs, targets);
    plain m;
    plain_init(&m, p);
    double want = plain_loss(&m, W, G, inputs, targets);
    double norm;
    double got = hz_exec_step(&c, inputs, targets, &norm);
    free(inputs);
    free(targets);
    CHECK_CLOSE("streamed loss vs plain loss", got, want, 1e-6, 1e-5);
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)G[i] * G[i];
    CHECK_CLOSE("streamed grad norm vs plain", norm, sqrt(ss), 1e-7, 1e-4);
    for (int t = 0; t < p->tensor_n; t++) {
        const hz_tensor *x = &p->tensors[t];
        if (x->kind == HZ_LM_HEAD && p->dims.tied) continue;
        double maxdiff = 0, maxg = 0;
        for (int64_t e = 0; e < x->rows * x->cols; e++) {
            double g = hz_store_grad(&c.store, x->host_n + e), w = G[x->host_n + e];
            maxdiff = fmax(maxdiff, fabs(g - w));
            maxg = fmax(maxg, fabs(w));
        }
        CHECK(maxdiff <= 1e-5 * maxg + 1e-9,
              "variant %d: streamed grad %s.%d vs plain: max diff %.2e (max |g| %.2e)", variant,
              hz_tensor_names[x->kind], x->layer, maxdiff, maxg);
    }
    /* AdamW, step 1: m = (1-b1) g', v = (1-b2) g'^2, p = p0 (1 - lr wd) - lr/bc1 m/(sqrt(v/bc2)+eps) */
    hz_exec_drain(&c);
    const hz_optim *o = &c.optim;
    double lr = hz_lr_at(o, 0);
    double gs = o->grad_clip > 0 && norm > o->grad_clip ? o->grad_clip / (norm + 1e-6) : 1.0;
    double worst = 0;
    for (int t = 0; t < p->tensor_n; t++) {
        const hz_tensor *x = &p->tensors[t];
        if (x->kind == HZ_LM_HEAD && p->dims.tied) continue;
        for (int64_t e = 0; e < x->rows * x->cols; e++) {
            int64_t i = x->host_n + e;
            double g = hz_store_grad(&c.store, i) * gs, mm = (1 - o->beta1) * g,
                   vv = (1 - o->beta2) * g * g;
            double want_p = master0[i] * (1 - lr * (x->decay ? o->weight_decay : 0)) -
                            lr / (1 - o->beta1) * mm / (sqrt(vv / (1 - o->beta2)) + o->eps);
            double d = fabs(hz_store_master(&c.store, i) - want_p) / (fabs(want_p) + 1e-3);
            worst = fmax(worst, d);
        }
    }
    CHECK(worst < 1e-5, "variant %d: AdamW step on the split master vs formula: max rel diff %.2e",
          variant, worst);
    hz_exec_free(&c);
    plain_free(&m);
    free(W);
    free(G);
    free(master0);
}

/* 4: learn a fixed cyclic sequence; the loss must fall far below ln(V) */
static void learns(const hz_plan *p, int variant)
{
    hz_ctx c;
    memset(&c, 0, sizeof c);
    c.optim = (hz_optim){3e-2f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, 1.0f, 0, 0};
    if (hz_exec_init(&c, p, 2) != 0) return;
    hz_store_init(&c.store, p, 5, c.pool);
    double first = 0, last = 0, norm;
    int32_t *inputs = calloc((size_t)p->dims.step_tokens, sizeof(int32_t));
    int32_t *targets = calloc((size_t)p->dims.step_tokens, sizeof(int32_t));
    for (int step = 0; step < 40; step++) {
        for (int64_t i = 0; i < p->dims.step_tokens; i++) {
            inputs[i] = (int32_t)((i * 5 + step) % 11);
            targets[i] = (int32_t)((i * 5 + step + 5) % 11);
        }
        last = hz_exec_step(&c, inputs, targets, &norm);
        if (step == 0) first = last;
    }
    free(inputs);
    free(targets);
    CHECK(first > 3.0 && last < 0.5, "variant %d: 40 steps on a cyclic sequence: loss %.3f -> %.3f",
          variant, first, last);
    hz_exec_free(&c);
}

int main(void)
{
    for (int variant = 0; variant < TEST_SPEC_VARIANTS; variant++) {
        hzc_spec s = make_spec(variant);
        hzc_plan pl;
        plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
        if (plan_build(&s, &none, &pl, stderr) != 0) {
            CHECK(0, "variant %d plans", variant);
            continue;
        }
        gradcheck(&pl.p, variant);
        streamed_vs_plain(&pl.p, variant);
        learns(&pl.p, variant);
        plan_free(&pl);
        /* the same step with the boundaries held on the host (store_b / load_b), and
         * three layers so that a buffer is reused */
        s.L = 3;
        plan_limits host = {0, 0, PLAN_BOUNDARIES_HOST};
        if (plan_build(&s, &host, &pl, stderr) != 0 || !pl.p.boundary_on_host) {
            CHECK(0, "variant %d plans with host boundaries", variant);
            continue;
        }
        printf("-- variant %d, boundaries on the host, 3 layers\n", variant);
        streamed_vs_plain(&pl.p, variant);
        plan_free(&pl);
        /* without clipping: updates in backward order, each after its own gradients */
        s.grad_clip = 0;
        if (plan_build(&s, &none, &pl, stderr) != 0) {
            CHECK(0, "variant %d plans without clipping", variant);
            continue;
        }
        printf("-- variant %d, no gradient clipping\n", variant);
        streamed_vs_plain(&pl.p, variant);
        learns(&pl.p, variant);
        plan_free(&pl);
    }
    TEST_END();
}
