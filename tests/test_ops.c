/* tests/test_ops.c - the cpu backend's reference ops (runtime/cpu/ops.h).
 * Every op gets a central finite-difference check of all its inputs and weights under a
 * scalar loss L = sum(out * R) with random R, and value checks against direct formulas
 * written here in double (explicit RoPE, llama3 inv_freq, tanh-GELU, ...); attention has its
 * own file, tests/test_attention.c. */
#include "op_checks.h"
#include "ops.h"
#include "rt.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- matmul ----------------------------------------------------------------------- */

typedef struct mm_ctx {
    float *inp, *w, *bias, *out, *R;
    int64_t N, IN, OUT;
} mm_ctx;

static double mm_loss(void *p) {
    mm_ctx *c = p;
    matmul_forward(c->out, c->inp, c->w, c->bias, c->N, c->IN, c->OUT);
    return dot_r(c->out, c->R, c->N * c->OUT);
}

static void naive_matmul(double *out, const float *inp, const float *w, const float *bias,
                         int64_t N, int64_t IN, int64_t OUT) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OUT; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int64_t i = 0; i < IN; i++) s += (double)inp[n * IN + i] * w[o * IN + i];
            out[n * OUT + o] = s;
        }
}

/* forward vs double at shapes off every tile size; bias and no bias */
static void test_matmul_forward_values(int64_t N, int64_t IN, int64_t OUT, int with_bias) {
    float *inp = rand_buf(N * IN, 1.0f), *w = rand_buf(OUT * IN, 0.5f);
    float *bias = with_bias ? rand_buf(OUT, 1.0f) : NULL, *out = rand_buf(N * OUT, 9.0f);
    double *want = dbuf(N * OUT);
    matmul_forward(out, inp, w, bias, N, IN, OUT);
    naive_matmul(want, inp, w, bias, N, IN, OUT);
    char name[96];
    snprintf(name, sizeof name, "matmul out N%lld IN%lld OUT%lld%s", (long long)N, (long long)IN,
             (long long)OUT, with_bias ? " +b" : "");
    check_tensor(name, out, want, N * OUT, 1e-5 * sqrt((double)IN), 1e-5);
    free(inp), free(w), free(bias), free(out), free(want);
}

/* backward vs double, K = N above the k block (256), ragged rows and columns */
static void test_matmul_backward_values(void) {
    int64_t N = 300, IN = 35, OUT = 21;
    float *inp = rand_buf(N * IN, 1.0f), *w = rand_buf(OUT * IN, 1.0f);
    float *dout = rand_buf(N * OUT, 1.0f);
    float *dinp = rand_buf(N * IN, 100.0f); /* garbage: must be overwritten */
    float *dw0 = rand_buf(OUT * IN, 1.0f), *dw = copy_buf(dw0, OUT * IN);
    float *db0 = rand_buf(OUT, 1.0f), *db = copy_buf(db0, OUT);
    double *want_dinp = dbuf(N * IN), *want_dw = dbuf(OUT * IN), *want_db = dbuf(OUT);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OUT; o++) {
            double d = dout[n * OUT + o];
            for (int64_t i = 0; i < IN; i++) {
                want_dinp[n * IN + i] += d * w[o * IN + i];
                want_dw[o * IN + i] += d * inp[n * IN + i];
            }
            want_db[o] += d;
        }
    for (int64_t i = 0; i < OUT * IN; i++) want_dw[i] += dw0[i];
    for (int64_t o = 0; o < OUT; o++) want_db[o] += db0[o];
    matmul_backward(dinp, dw, db, dout, inp, w, N, IN, OUT);
    check_tensor("matmul dinp N300 IN35 OUT21", dinp, want_dinp, N * IN, 1e-4, 1e-5);
    check_tensor("matmul dw (+= on random) N300", dw, want_dw, OUT * IN, 2e-4, 1e-5);
    check_tensor("matmul dbias (+= on random) N300", db, want_db, OUT, 2e-4, 1e-5);
    /* NULL dinp and dbias: only dw moves, by the same amount again */
    for (int64_t i = 0; i < OUT * IN; i++) want_dw[i] += want_dw[i] - dw0[i];
    matmul_backward(NULL, dw, NULL, dout, inp, w, N, IN, OUT);
    check_tensor("matmul dw, dinp=dbias=NULL", dw, want_dw, OUT * IN, 4e-4, 1e-5);
    free(inp), free(w), free(dout), free(dinp), free(dw0), free(dw), free(db0), free(db);
    free(want_dinp), free(want_dw), free(want_db);
}

static void test_matmul_fd(void) {
    mm_ctx c = {.N = 6, .IN = 19, .OUT = 9};
    c.inp = rand_buf(c.N * c.IN, 1.0f), c.w = rand_buf(c.OUT * c.IN, 1.0f);
    c.bias = rand_buf(c.OUT, 1.0f), c.out = rand_buf(c.N * c.OUT, 1.0f);
    c.R = rand_buf(c.N * c.OUT, 1.0f);
    float *dinp = rand_buf(c.N * c.IN, 100.0f);
    float *dw0 = rand_buf(c.OUT * c.IN, 1.0f), *dw = copy_buf(dw0, c.OUT * c.IN);
    float *db0 = rand_buf(c.OUT, 1.0f), *db = copy_buf(db0, c.OUT);
    matmul_backward(dinp, dw, db, c.R, c.inp, c.w, c.N, c.IN, c.OUT);
    float *ddw = delta(dw, dw0, c.OUT * c.IN), *ddb = delta(db, db0, c.OUT);
    fd_check("matmul dinp", c.inp, c.N * c.IN, dinp, mm_loss, &c, 1e-2f, 2e-4, 1e-3);
    fd_check("matmul dw", c.w, c.OUT * c.IN, ddw, mm_loss, &c, 1e-2f, 2e-4, 1e-3);
    fd_check("matmul dbias", c.bias, c.OUT, ddb, mm_loss, &c, 1e-2f, 2e-4, 1e-3);
    free(c.inp), free(c.w), free(c.bias), free(c.out), free(c.R);
    free(dinp), free(dw0), free(dw), free(db0), free(db), free(ddw), free(ddb);
}

/* ---- embedding -------------------------------------------------------------------- */

typedef struct emb_ctx {
    float *wte, *out, *R;
    const int32_t *tok;
    int64_t N, C;
    float scale; /* 0: the plain lookup */
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    if (c->scale != 0.0f) embedding_scaled_forward(c->out, c->tok, c->wte, c->N, c->C, c->scale);
    else embedding_forward(c->out, c->tok, c->wte, c->N, c->C);
    return dot_r(c->out, c->R, c->N * c->C);
}

/* Gemma 3's scaled lookup: out = wte[tok] * scale, dwte += dout * scale; scale 1 is the plain
 * lookup bit for bit. */
static void test_embedding_scaled(void) {
    static const int32_t tok[7] = {3, 0, 5, 3, 2, 3, 0};
    int64_t V = 6, C = 5, N = 7;
    emb_ctx c = {.tok = tok, .N = N, .C = C, .scale = 34.0f};
    c.wte = rand_buf(V * C, 1.0f), c.out = rand_buf(N * C, 1.0f), c.R = rand_buf(N * C, 1.0f);
    float *plain = rand_buf(N * C, 1.0f);
    embedding_scaled_forward(c.out, tok, c.wte, N, C, 1.0f);
    embedding_forward(plain, tok, c.wte, N, C);
    CHECK(!memcmp(c.out, plain, (size_t)(N * C) * sizeof(float)),
          "scaled embedding with scale 1 = the plain lookup (bitwise)");
    embedding_scaled_forward(c.out, tok, c.wte, N, C, c.scale);
    int same = 1;
    for (int64_t i = 0; i < N * C; i++) same &= c.out[i] == c.wte[tok[i / C] * C + i % C] * 34.0f;
    CHECK(same, "scaled embedding rows are 34 x the wte rows of their tokens");
    float *dwte0 = rand_buf(V * C, 1.0f), *dwte = copy_buf(dwte0, V * C);
    embedding_scaled_backward(dwte, c.R, tok, N, C, c.scale);
    float *d = delta(dwte, dwte0, V * C);
    fd_check("scaled embedding dwte (+=, repeated tokens)", c.wte, V * C, d, emb_loss, &c, 1e-2f,
             2e-3, 1e-3);
    free(c.wte), free(c.out), free(c.R), free(plain), free(dwte0), free(dwte), free(d);
}

static void test_embedding(void) {
    static const int32_t tok[7] = {3, 0, 5, 3, 2, 3, 0}; /* repeats: the scatter must add */
    int64_t V = 6, C = 5, N = 7;
    emb_ctx c = {.tok = tok, .N = N, .C = C};
    c.wte = rand_buf(V * C, 1.0f), c.out = rand_buf(N * C, 1.0f), c.R = rand_buf(N * C, 1.0f);
    embedding_forward(c.out, tok, c.wte, N, C);
    int same = 1;
    for (int64_t n = 0; n < N; n++)
        same &= !memcmp(c.out + n * C, c.wte + tok[n] * C, (size_t)C * sizeof(float));
    CHECK(same, "embedding out rows are the wte rows of their tokens (bitwise)");
    float *dwte0 = rand_buf(V * C, 1.0f), *dwte = copy_buf(dwte0, V * C);
    embedding_backward(dwte, c.R, tok, N, C);
    float *d = delta(dwte, dwte0, V * C);
    fd_check("embedding dwte (+=, repeated tokens)", c.wte, V * C, d, emb_loss, &c, 1e-2f, 2e-4,
             1e-3);
    free(c.wte), free(c.out), free(c.R), free(dwte0), free(dwte), free(d);
}

/* ---- rmsnorm ---------------------------------------------------------------------- */

typedef struct rms_ctx {
    float *inp, *w, *out, *rstd, *R;
    int64_t N, C;
    float eps, offset; /* offset 1: Gemma 3's x * (1 + w) */
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    if (c->offset != 0.0f)
        rmsnorm_offset_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, c->eps, c->offset);
    else
        rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, c->eps);
    return dot_r(c->out, c->R, c->N * c->C);
}

/* Gemma3RMSNorm: out = (x * rstd) * (1 + w); zero weights are the identity norm; offset 0 is
 * LlamaRMSNorm bit for bit. */
static void test_rmsnorm_offset(void) {
    int64_t N = 4, C = 33;
    float eps = 1e-6f;
    float *inp = rand_buf(N * C, 2.0f), *w = rand_buf(C, 0.5f), *out = rand_buf(N * C, 1.0f);
    float *ref = rand_buf(N * C, 1.0f), *rstd = rand_buf(N, 1.0f), *zero = calloc((size_t)C, 4);
    double *want = dbuf(N * C), *unit = dbuf(N * C);
    for (int64_t n = 0; n < N; n++) {
        double ss = 0.0;
        for (int64_t i = 0; i < C; i++) ss += (double)inp[n * C + i] * inp[n * C + i];
        double r = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t i = 0; i < C; i++) {
            want[n * C + i] = (1.0 + w[i]) * inp[n * C + i] * r;
            unit[n * C + i] = inp[n * C + i] * r;
        }
    }
    rmsnorm_offset_forward(out, rstd, inp, w, N, C, eps, 1.0f);
    check_tensor("rmsnorm (1 + w) out vs formula", out, want, N * C, 1e-6, 1e-6);
    rmsnorm_offset_forward(out, rstd, inp, zero, N, C, eps, 1.0f);
    check_tensor("rmsnorm (1 + w) with w = 0 is x * rstd", out, unit, N * C, 1e-6, 1e-6);
    rmsnorm_offset_forward(out, rstd, inp, w, N, C, eps, 0.0f);
    rmsnorm_forward(ref, rstd, inp, w, N, C, eps);
    CHECK(!memcmp(out, ref, (size_t)(N * C) * sizeof(float)),
          "rmsnorm offset 0 = rmsnorm_forward (bitwise)");
    free(inp), free(w), free(out), free(ref), free(rstd), free(zero), free(want), free(unit);

    rms_ctx c = {.N = 3, .C = 8, .eps = 1e-6f, .offset = 1.0f};
    c.inp = rand_buf(c.N * c.C, 1.0f), c.w = rand_buf(c.C, 0.5f);
    c.out = rand_buf(c.N * c.C, 1.0f), c.rstd = rand_buf(c.N, 1.0f);
    c.R = rand_buf(c.N * c.C, 1.0f);
    rms_loss(&c);
    float *dinp = rand_buf(c.N * c.C, 100.0f);
    float *dw0 = rand_buf(c.C, 1.0f), *dw = copy_buf(dw0, c.C);
    rmsnorm_offset_backward(dinp, dw, c.R, c.inp, c.w, c.rstd, c.N, c.C, 1.0f);
    float *ddw = delta(dw, dw0, c.C);
    fd_check("rmsnorm (1 + w) dinp", c.inp, c.N * c.C, dinp, rms_loss, &c, 1e-3f, 5e-4, 2e-3);
    fd_check("rmsnorm (1 + w) dw (+=)", c.w, c.C, ddw, rms_loss, &c, 1e-3f, 5e-4, 2e-3);
    free(c.inp), free(c.w), free(c.out), free(c.rstd), free(c.R), free(dinp), free(dw0), free(dw);
    free(ddw);
}

static void test_rmsnorm(void) {
    /* values: direct formula in double */
    int64_t N = 5, C = 33;
    float eps = 1e-5f;
    float *inp = rand_buf(N * C, 2.0f), *w = rand_buf(C, 1.0f), *out = rand_buf(N * C, 1.0f);
    float *rstd = rand_buf(N, 1.0f);
    double *want = dbuf(N * C), *want_rstd = dbuf(N);
    for (int64_t n = 0; n < N; n++) {
        double ss = 0.0;
        for (int64_t i = 0; i < C; i++) ss += (double)inp[n * C + i] * inp[n * C + i];
        want_rstd[n] = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t i = 0; i < C; i++) want[n * C + i] = w[i] * inp[n * C + i] * want_rstd[n];
    }
    rmsnorm_forward(out, rstd, inp, w, N, C, eps);
    check_tensor("rmsnorm out vs formula", out, want, N * C, 1e-6, 1e-6);
    check_tensor("rmsnorm rstd vs formula", rstd, want_rstd, N, 0.0, 1e-6);
    free(inp), free(w), free(out), free(rstd), free(want), free(want_rstd);

    rms_ctx c = {.N = 3, .C = 8, .eps = 1e-5f};
    c.inp = rand_buf(c.N * c.C, 1.0f), c.w = rand_buf(c.C, 1.0f);
    c.out = rand_buf(c.N * c.C, 1.0f), c.rstd = rand_buf(c.N, 1.0f);
    c.R = rand_buf(c.N * c.C, 1.0f);
    rms_loss(&c); /* fills rstd */
    float *dinp = rand_buf(c.N * c.C, 100.0f);
    float *dw0 = rand_buf(c.C, 1.0f), *dw = copy_buf(dw0, c.C);
    rmsnorm_backward(dinp, dw, c.R, c.inp, c.w, c.rstd, c.N, c.C);
    float *ddw = delta(dw, dw0, c.C);
    fd_check("rmsnorm dinp", c.inp, c.N * c.C, dinp, rms_loss, &c, 1e-3f, 5e-4, 2e-3);
    fd_check("rmsnorm dw (+=)", c.w, c.C, ddw, rms_loss, &c, 1e-3f, 5e-4, 2e-3);
    free(c.inp), free(c.w), free(c.out), free(c.rstd), free(c.R), free(dinp), free(dw0), free(dw);
    free(ddw);
}

/* ---- rope ------------------------------------------------------------------------- */

/* inv_freq in double with the formulas of transformers' rope_utils. */
static void inv_freq_double(double *inv, int HD, const hz_rope *r) {
    for (int i = 0; i < HD / 2; i++) inv[i] = 1.0 / pow((double)r->theta, 2.0 * i / HD);
    if (!r->llama3) return;
    double low_wl = r->original_max_pos / (double)r->low_freq_factor;
    double high_wl = r->original_max_pos / (double)r->high_freq_factor;
    for (int i = 0; i < HD / 2; i++) {
        double wl = 2.0 * 3.14159265358979323846 / inv[i];
        if (wl > low_wl) {
            inv[i] /= r->factor;
        } else if (wl >= high_wl) {
            double s = (r->original_max_pos / wl - r->low_freq_factor) /
                       ((double)r->high_freq_factor - r->low_freq_factor);
            inv[i] = (1.0 - s) * inv[i] / r->factor + s * inv[i];
        }
    }
}

static void test_rope_inv_freq(void) {
    hz_rope def = {.theta = 10000.0f};
    float inv[64];
    double want[64];
    hz_rope_inv_freq(inv, 64, &def);
    inv_freq_double(want, 64, &def);
    check_tensor("rope inv_freq default theta 1e4 HD64", inv, want, 32, 0.0, 4e-7);

    /* Llama 3.1 8B: theta 5e5, factor 8, low 1, high 4, original 8192, HD 128 */
    hz_rope l3 = {.theta = 500000.0f, .llama3 = 1, .factor = 8.0f, .low_freq_factor = 1.0f,
                  .high_freq_factor = 4.0f, .original_max_pos = 8192};
    float inv3[64], inv3_plain[64];
    double want3[64];
    hz_rope_inv_freq(inv3, 128, &l3);
    inv_freq_double(want3, 128, &l3);
    check_tensor("rope inv_freq llama3 (Llama 3.1) HD128", inv3, want3, 64, 0.0, 1e-6);
    hz_rope plain = {.theta = 500000.0f};
    hz_rope_inv_freq(inv3_plain, 128, &plain);
    int high = 0, mid = 0, low = 0;
    for (int i = 0; i < 64; i++) {
        double wl = 2.0 * 3.14159265358979323846 / inv3_plain[i];
        if (wl < 8192.0 / 4.0) high += inv3[i] == inv3_plain[i];
        else if (wl > 8192.0) low += inv3[i] == inv3_plain[i] / 8.0f;
        else mid += inv3[i] < inv3_plain[i] && inv3[i] > inv3_plain[i] / 8.0f;
    }
    CHECK(high + mid + low == 64 && high > 0 && mid > 0 && low > 0,
          "rope llama3 bands: %d kept, %d smoothed strictly between, %d divided by factor",
          high, mid, low);
    CHECK_CLOSE("rope llama3 inv_freq[0] (kept)", inv3[0], 1.0, 0.0, 0.0);
    CHECK_CLOSE("rope llama3 inv_freq[63] (/8)", inv3[63], pow(500000.0, -126.0 / 128) / 8, 0.0,
                1e-6);

    /* Llama 3.2: factor 32, original 8192, HD 64 */
    hz_rope l32 = l3;
    l32.factor = 32.0f;
    hz_rope_inv_freq(inv, 64, &l32);
    inv_freq_double(want, 64, &l32);
    check_tensor("rope inv_freq llama3 (Llama 3.2) HD64", inv, want, 32, 0.0, 1e-6);

    /* Gemma 3: linear scaling (x8) of the global table, each inv_freq divided in float; the
     * local table of the dims is the plain one of rope_local_theta */
    float g[128], g_plain[128];
    hz_rope lin = {.theta = 1000000.0f, .linear = 8.0f}, unscaled = {.theta = 1000000.0f};
    hz_rope_inv_freq(g, 256, &lin);
    hz_rope_inv_freq(g_plain, 256, &unscaled);
    int divided = 1;
    for (int i = 0; i < 128; i++) divided &= g[i] == g_plain[i] / 8.0f;
    CHECK(divided, "rope linear x8 (Gemma 3 global layers, HD 256): every inv_freq / 8 in float");
    hz_dims d = {.HD = 256, .rope_theta = 1000000.0f, .rope_linear = 8.0f,
                 .rope_local_theta = 10000.0f};
    hz_rope local = {.theta = 10000.0f};
    hz_rope_inv_freq_local(g, &d);
    hz_rope_inv_freq(g_plain, 256, &local);
    CHECK(!memcmp(g, g_plain, sizeof g), "rope local table: base rope_local_theta, unscaled");
    hz_rope_inv_freq_dims(g, &d);
    hz_rope_inv_freq(g_plain, 256, &lin);
    CHECK(!memcmp(g, g_plain, sizeof g), "rope global table of the dims: linear scaling applied");
}

typedef struct rope_ctx {
    float *x, *tmp, *R;
    const float *inv;
    int64_t N, T, H, HD;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    memcpy(c->tmp, c->x, (size_t)(c->N * c->H * c->HD) * sizeof(float));
    rope_forward(c->tmp, c->inv, c->N, c->T, c->H, c->HD);
    return dot_r(c->tmp, c->R, c->N * c->H * c->HD);
}

static void test_rope(void) {
    /* explicit formula at every position of two sequences (positions restart at n = T) */
    int64_t B = 2, T = 37, H = 3, HD = 16, N = B * T, n_el = N * H * HD;
    hz_rope r = {.theta = 10000.0f};
    float inv[8];
    hz_rope_inv_freq(inv, (int)HD, &r);
    float *x = rand_buf(n_el, 1.0f), *y = copy_buf(x, n_el);
    double *want = dbuf(n_el);
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < HD / 2; i++) {
                double a = (double)(n % T) * inv[i];
                int64_t j = (n * H + h) * HD + i;
                double x1 = x[j], x2 = x[j + HD / 2];
                want[j] = x1 * cos(a) - x2 * sin(a);
                want[j + HD / 2] = x2 * cos(a) + x1 * sin(a);
            }
    rope_forward(y, inv, N, T, H, HD);
    check_tensor("rope forward vs formula, pos 0..36", y, want, n_el, 2e-6, 1e-5);
    int pos0 = 1;
    for (int64_t n = 0; n < N; n += T)
        pos0 &= !memcmp(y + n * H * HD, x + n * H * HD, (size_t)(H * HD) * sizeof(float));
    CHECK(pos0, "rope leaves position 0 of each sequence unchanged (bitwise)");
    rope_backward(y, inv, N, T, H, HD);
    for (int64_t i = 0; i < n_el; i++) want[i] = x[i];
    check_tensor("rope backward(forward(x)) == x", y, want, n_el, 1e-6, 1e-6);
    free(x), free(y), free(want);

    /* llama3 frequencies at large positions too */
    hz_rope l3 = {.theta = 500000.0f, .llama3 = 1, .factor = 32.0f, .low_freq_factor = 1.0f,
                  .high_freq_factor = 4.0f, .original_max_pos = 8192};
    float inv3[4];
    hz_rope_inv_freq(inv3, 8, &l3);
    rope_ctx c = {.inv = inv3, .T = 3, .H = 2, .HD = 8};
    c.N = 2 * c.T;
    int64_t m = c.N * c.H * c.HD;
    c.x = rand_buf(m, 1.0f), c.tmp = rand_buf(m, 1.0f), c.R = rand_buf(m, 1.0f);
    float *dx = copy_buf(c.R, m);
    rope_backward(dx, inv3, c.N, c.T, c.H, c.HD);
    fd_check("rope dx (llama3 freqs)", c.x, m, dx, rope_loss, &c, 1e-2f, 2e-4, 1e-3);
    free(c.x), free(c.tmp), free(c.R), free(dx);
}

/* ---- swiglu, geglu and residual ---------------------------------------------------- */

typedef struct swiglu_ctx {
    float *gate, *up, *h, *R;
    int64_t n;
} swiglu_ctx;

static double swiglu_loss(void *p) {
    swiglu_ctx *c = p;
    swiglu_forward(c->h, c->gate, c->up, c->n);
    return dot_r(c->h, c->R, c->n);
}

static void test_swiglu(void) {
    swiglu_ctx c = {.n = 24};
    c.gate = rand_buf(c.n, 5.0f), c.up = rand_buf(c.n, 2.0f);
    c.h = rand_buf(c.n, 1.0f), c.R = rand_buf(c.n, 1.0f);
    c.gate[0] = -100.0f, c.gate[1] = 100.0f; /* saturated tails: no NaN, silu -> 0 and g */
    double *want = dbuf(c.n);
    for (int64_t i = 0; i < c.n; i++)
        want[i] = c.gate[i] / (1.0 + exp(-(double)c.gate[i])) * c.up[i];
    swiglu_forward(c.h, c.gate, c.up, c.n);
    check_tensor("swiglu h vs formula (incl. g = +-100)", c.h, want, c.n, 1e-6, 1e-6);
    float *dgate = rand_buf(c.n, 100.0f), *dup = rand_buf(c.n, 100.0f);
    swiglu_backward(dgate, dup, c.R, c.gate, c.up, c.n);
    fd_check("swiglu dgate", c.gate, c.n, dgate, swiglu_loss, &c, 1e-2f, 3e-4, 2e-3);
    fd_check("swiglu dup", c.up, c.n, dup, swiglu_loss, &c, 1e-2f, 3e-4, 2e-3);
    free(c.gate), free(c.up), free(c.h), free(c.R), free(want), free(dgate), free(dup);

    int64_t n = 13;
    float *a = rand_buf(n, 1.0f), *b = rand_buf(n, 1.0f), *out = rand_buf(n, 1.0f);
    double *w = dbuf(n);
    for (int64_t i = 0; i < n; i++) w[i] = (double)(a[i] + b[i]);
    residual_forward(out, a, b, n);
    check_tensor("residual out = a + b", out, w, n, 0.0, 0.0);
    residual_forward(a, a, b, n);
    check_tensor("residual in place (out aliases a)", a, w, n, 0.0, 0.0);
    free(a), free(b), free(out), free(w);
}

static double geglu_loss(void *p) {
    swiglu_ctx *c = p;
    geglu_forward(c->h, c->gate, c->up, c->n);
    return dot_r(c->h, c->R, c->n);
}

/* Gemma's GeGLU: values against tanh-GELU written out in double (saturated tails too), and
 * finite differences of both inputs. */
static void test_geglu(void) {
    swiglu_ctx c = {.n = 24};
    c.gate = rand_buf(c.n, 4.0f), c.up = rand_buf(c.n, 2.0f);
    c.h = rand_buf(c.n, 1.0f), c.R = rand_buf(c.n, 1.0f);
    c.gate[0] = -30.0f, c.gate[1] = 30.0f; /* tanh saturates: gelu -> -0 and g */
    double *want = dbuf(c.n);
    for (int64_t i = 0; i < c.n; i++) {
        double g = c.gate[i];
        want[i] = 0.5 * g * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (g + 0.044715 * g * g * g))) * c.up[i];
    }
    geglu_forward(c.h, c.gate, c.up, c.n);
    check_tensor("geglu h vs tanh-gelu formula (incl. g = +-30)", c.h, want, c.n, 1e-6, 1e-5);
    float *dgate = rand_buf(c.n, 100.0f), *dup = rand_buf(c.n, 100.0f);
    geglu_backward(dgate, dup, c.R, c.gate, c.up, c.n);
    fd_check("geglu dgate", c.gate, c.n, dgate, geglu_loss, &c, 1e-2f, 3e-4, 2e-3);
    fd_check("geglu dup", c.up, c.n, dup, geglu_loss, &c, 1e-2f, 3e-4, 2e-3);
    free(c.gate), free(c.up), free(c.h), free(c.R), free(want), free(dgate), free(dup);
}

/* ---- cross-entropy ---------------------------------------------------------------- */

typedef struct ce_ctx {
    float *logits, *scratch, *losses;
    const int32_t *targets;
    int64_t N, V;
    float dscale;
} ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *c = p;
    return c->dscale * crossentropy_forward_backward(c->scratch, c->losses, c->logits,
                                                     c->targets, c->N, c->V, c->dscale);
}

static void test_crossentropy(void) {
    static const int32_t targets[6] = {4, -100, 0, 10, -100, 7};
    int64_t N = 6, V = 11;
    ce_ctx c = {.targets = targets, .N = N, .V = V, .dscale = 1.0f / 4}; /* 4 trained rows */
    c.logits = rand_buf(N * V, 3.0f), c.scratch = rand_buf(N * V, 1.0f);
    c.losses = rand_buf(N, 1.0f);
    float *dlogits = rand_buf(N * V, 1.0f);
    double total = crossentropy_forward_backward(dlogits, c.losses, c.logits, targets, N, V,
                                                 c.dscale);
    double *want = dbuf(N), want_total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        if (targets[n] == -100) continue;
        double s = 0.0;
        for (int64_t v = 0; v < V; v++) s += exp((double)c.logits[n * V + v]);
        want[n] = log(s) - c.logits[n * V + targets[n]];
        want_total += want[n];
    }
    check_tensor("crossentropy losses (0 where ignored)", c.losses, want, N, 1e-6, 1e-6);
    CHECK_CLOSE("crossentropy returned sum of trained losses", total, want_total, 1e-5, 1e-6);
    int zero = c.losses[1] == 0.0f && c.losses[4] == 0.0f;
    for (int64_t v = 0; v < V; v++)
        zero &= dlogits[1 * V + v] == 0.0f && dlogits[4 * V + v] == 0.0f;
    CHECK(zero, "crossentropy ignored rows (-100): loss 0 and dlogits rows exactly 0");
    double row_sum = 0.0;
    for (int64_t v = 0; v < V; v++) row_sum += dlogits[2 * V + v];
    CHECK_CLOSE("crossentropy dlogits row sums to 0", row_sum, 0.0, 1e-6, 0.0);

    /* dlogits aliasing logits gives the same result */
    float *alias = copy_buf(c.logits, N * V), *losses2 = rand_buf(N, 1.0f);
    crossentropy_forward_backward(alias, losses2, alias, targets, N, V, c.dscale);
    CHECK(!memcmp(alias, dlogits, (size_t)(N * V) * sizeof(float)),
          "crossentropy in place (dlogits aliases logits) matches bitwise");

    /* max-subtracted: logits shifted by +1000 give the same losses, no overflow */
    float *shift = copy_buf(c.logits, N * V);
    for (int64_t i = 0; i < N * V; i++) shift[i] += 1000.0f;
    crossentropy_forward_backward(shift, losses2, shift, targets, N, V, c.dscale);
    check_tensor("crossentropy losses at logits + 1000", losses2, want, N, 1e-3, 1e-3);

    fd_check("crossentropy dlogits (mean over trained)", c.logits, N * V, dlogits, ce_loss, &c,
             1e-2f, 1e-4, 2e-3);
    free(c.logits), free(c.scratch), free(c.losses), free(dlogits), free(want), free(alias);
    free(losses2), free(shift);
}

int main(void) {
    test_matmul_forward_values(67, 45, 37, 1);
    test_matmul_forward_values(1024, 128, 384, 1); /* the demo's q/k/v shape, packed path */
    test_matmul_forward_values(3, 8, 5, 0);
    test_matmul_forward_values(9, 1100, 70, 1); /* several blocks of w rows, ragged last */
    test_matmul_backward_values();
    test_matmul_fd();
    test_embedding();
    test_embedding_scaled();
    test_rmsnorm();
    test_rmsnorm_offset();
    test_rope_inv_freq();
    test_rope();
    test_swiglu();
    test_geglu();
    test_crossentropy();
    TEST_END();
}
