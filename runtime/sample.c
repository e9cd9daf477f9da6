/* runtime/sample.c - train --sample-every: text generated from the current weights. Each
 * new token takes one forward of a whole step (the backend's eval, as --dump-logits uses
 * it) with the context in row 0 and every target ignored; the logits at the context's last
 * position give the next token, greedily (temperature 0) or by temperature and top-k. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "metrics.h"
#include "sample.h"

struct hz_sampler {
    int32_t *ctx;            /* prompt, then the generated tokens */
    int64_t prompt_n, tokens_n;
    double temperature;
    int64_t top_k;
    uint64_t seed;
    int32_t *inputs, *targets; /* (step_tokens) */
    float *logits;             /* (step_tokens, V) */
    double *prob;              /* (V) */
};

int hz_sample_parse_prompt(const char *text, int64_t V, int32_t **out, int64_t *n, char *err,
                           size_t err_n)
{
    int ids = V != 256 || strncmp(text, "ids:", 4) == 0;
    if (strncmp(text, "ids:", 4) == 0) text += 4;
    size_t len = strlen(text);
    int32_t *t = malloc((len + 1) * sizeof *t);
    int64_t k = 0;
    if (!t) {
        snprintf(err, err_n, "out of memory");
        return -1;
    }
    if (!ids) { /* a byte-level model: the prompt's bytes are its tokens */
        for (size_t i = 0; i < len; i++) t[k++] = (unsigned char)text[i];
    } else {
        for (const char *p = text; *p;) {
            if (*p == ',' || *p == ' ') {
                p++;
                continue;
            }
            char *end;
            long long v = strtoll(p, &end, 10);
            if (end == p || v < 0 || v >= V || (*end && *end != ',' && *end != ' ')) {
                snprintf(err, err_n, "--sample-prompt: '%.40s' is not a token id below the "
                         "vocabulary's %lld (this model takes ids, comma- or space-separated)",
                         p, (long long)V);
                free(t);
                return -1;
            }
            t[k++] = (int32_t)v;
            p = end;
        }
    }
    if (k == 0) {
        snprintf(err, err_n, "--sample-prompt is empty: give at least one token");
        free(t);
        return -1;
    }
    *out = t;
    *n = k;
    return 0;
}

hz_sampler *hz_sample_new(const hz_plan *p, const int32_t *prompt, int64_t prompt_n,
                          int64_t tokens_n, double temperature, int64_t top_k, uint64_t seed)
{
    const hz_dims *d = &p->dims;
    hz_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ctx = malloc((size_t)(prompt_n + tokens_n) * sizeof *s->ctx);
    s->inputs = calloc((size_t)d->step_tokens, sizeof *s->inputs);
    s->targets = malloc((size_t)d->step_tokens * sizeof *s->targets);
    s->logits = malloc((size_t)(d->step_tokens * d->V) * sizeof *s->logits);
    s->prob = malloc((size_t)d->V * sizeof *s->prob);
    if (!s->ctx || !s->inputs || !s->targets || !s->logits || !s->prob) {
        hz_sample_free(s);
        return NULL;
    }
    memcpy(s->ctx, prompt, (size_t)prompt_n * sizeof *prompt);
    for (int64_t i = 0; i < d->step_tokens; i++) s->targets[i] = HZ_DATA_IGNORE;
    s->prompt_n = prompt_n;
    s->tokens_n = tokens_n;
    s->temperature = temperature;
    s->top_k = top_k;
    s->seed = seed;
    return s;
}

void hz_sample_free(hz_sampler *s)
{
    if (!s) return;
    free(s->ctx);
    free(s->inputs);
    free(s->targets);
    free(s->logits);
    free(s->prob);
    free(s);
}

/* splitmix64: a uniform double in [0, 1) from the state X */
static double uniform(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1p-53;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The next token from the V logits ROW. */
static int32_t pick(hz_sampler *s, const float *row, int64_t V, uint64_t *rng)
{
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (row[v] > row[best]) best = v;
    if (s->temperature <= 0) return (int32_t)best;
    double cut = -INFINITY;
    if (s->top_k > 0 && s->top_k < V) { /* the k-th largest logit: the smallest kept */
        for (int64_t v = 0; v < V; v++) s->prob[v] = row[v];
        qsort(s->prob, (size_t)V, sizeof *s->prob, cmp_desc);
        cut = s->prob[s->top_k - 1];
    }
    double sum = 0.0;
    for (int64_t v = 0; v < V; v++) {
        s->prob[v] = row[v] >= cut ? exp(((double)row[v] - row[best]) / s->temperature) : 0.0;
        sum += s->prob[v];
    }
    double u = uniform(rng) * sum;
    for (int64_t v = 0; v < V; v++) {
        u -= s->prob[v];
        if (u < 0) return (int32_t)v;
    }
    return (int32_t)best; /* rounding left u >= 0: the likeliest */
}

int64_t hz_sample_run(hz_sampler *s, hz_ctx *c, int64_t steps, const int32_t **tokens)
{
    const hz_dims *d = &c->plan->dims;
    hz_exec_drain(c); /* the weights of every step so far */
    uint64_t rng = s->seed * 0x9e3779b97f4a7c15ull + (uint64_t)steps;
    int64_t n = s->prompt_n;
    for (int64_t g = 0; g < s->tokens_n; g++) {
        int64_t w = n < d->T ? n : d->T; /* the last T tokens of the context */
        memcpy(s->inputs, s->ctx + n - w, (size_t)w * sizeof *s->inputs);
        memset(s->inputs + w, 0, (size_t)(d->T - w) * sizeof *s->inputs);
        hz_exec_eval(c, s->inputs, s->targets, s->logits);
        s->ctx[n++] = pick(s, s->logits + (w - 1) * d->V, d->V, &rng);
    }
    *tokens = s->ctx + s->prompt_n;
    return s->tokens_n;
}

void hz_sample_print(hz_sampler *s, hz_ctx *c, int64_t steps, hz_metrics *m, FILE *out)
{
    const int32_t *t;
    int64_t n = hz_sample_run(s, c, steps, &t);
    int text = c->plan->dims.V == 256;
    fprintf(out, "sample after step %lld (%lld tokens%s):\n", (long long)steps, (long long)n,
            text ? " of text after the prompt" : ", ids");
    char *buf = text ? malloc((size_t)(s->prompt_n + n) + 1) : NULL;
    if (buf) {
        /* the prompt and the sample as text; control bytes but newline and tab as '?' */
        int64_t k = 0;
        for (int64_t i = 0; i < s->prompt_n + n; i++) {
            int ch = s->ctx[i];
            buf[k++] = ch == '\n' || ch == '\t' || ch >= 0x20 ? (char)ch : '?';
        }
        buf[k] = 0;
        fputs("  | ", out);
        for (const char *p = buf; *p; p++) {
            fputc(*p, out);
            if (*p == '\n' && p[1]) fputs("  | ", out);
        }
        fputc('\n', out);
        hz_metrics_sample(m, steps, t, n, buf + s->prompt_n);
    } else {
        fputs("  ", out);
        for (int64_t i = 0; i < n; i++) fprintf(out, "%s%d", i ? " " : "", t[i]);
        fputc('\n', out);
        hz_metrics_sample(m, steps, t, n, NULL);
    }
    free(buf);
    fflush(out);
}
