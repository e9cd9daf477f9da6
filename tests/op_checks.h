/* tests/op_checks.h - what the cpu op tests share (tests/test_ops.c, tests/test_attention.c):
 * random and double buffers, the elementwise comparison that prints the max difference, and
 * the central finite-difference check of a gradient under a scalar loss. */
#ifndef HZ_OP_CHECKS_H
#define HZ_OP_CHECKS_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define frand test_frand

static inline float *rand_buf(int64_t n, float scale) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "op_checks: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

static inline float *copy_buf(const float *src, int64_t n) {
    float *p = rand_buf(n, 1.0f);
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

static inline double *dbuf(int64_t n) {
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    if (!p) {
        fprintf(stderr, "op_checks: out of memory\n");
        exit(1);
    }
    return p;
}

static inline double dot_r(const float *out, const float *R, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

/* got vs want elementwise: ok when every |got - want| <= atol + rtol*|want|. */
static inline void check_tensor(const char *name, const float *got, const double *want, int64_t n,
                         double atol, double rtol) {
    double max_diff = 0.0, max_want = 0.0;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i]))) bad++;
        if (d > max_diff || isnan(d)) max_diff = d;
        if (fabs(want[i]) > max_want) max_want = fabs(want[i]);
    }
    CHECK(!bad, "%-34s max abs diff %.3g  tol %.3g + %.3g*|want| (max|want| %.3g, %d bad of %lld)",
          name, max_diff, atol, rtol, max_want, bad, (long long)n);
}

/* Central differences of loss(ctx) w.r.t. each x[i] against the analytic grad[i]. */
typedef double (*loss_fn)(void *ctx);

static inline void fd_check(const char *name, float *x, int64_t n, const float *grad, loss_fn loss,
                     void *ctx, float eps, double atol, double rtol) {
    double *num = dbuf(n);
    for (int64_t i = 0; i < n; i++) {
        float keep = x[i], xp = keep + eps, xm = keep - eps;
        x[i] = xp;
        double lp = loss(ctx);
        x[i] = xm;
        double lm = loss(ctx);
        x[i] = keep;
        num[i] = (lp - lm) / ((double)xp - (double)xm);
    }
    char label[96];
    snprintf(label, sizeof label, "fd %s", name);
    check_tensor(label, grad, num, n, atol, rtol);
    free(num);
}

/* got - base: what an accumulating (+=) gradient added. */
static inline float *delta(const float *got, const float *base, int64_t n) {
    float *d = rand_buf(n, 1.0f);
    for (int64_t i = 0; i < n; i++) d[i] = got[i] - base[i];
    return d;
}

#endif
