/* tests/test_attention.c - the cpu reference attention (runtime/cpu/attention.c): forward
 * and backward against a naive T x T attention in double, causal and over sliding windows
 * (Gemma 3's local layers) with another score scale, and finite differences of q, k, v. */
#include "op_checks.h"
#include "ops.h"
#include "test.h"

/* ---- attention -------------------------------------------------------------------- */

typedef struct att_ctx {
    float *q, *k, *v, *out, *lse, *R;
    int64_t B, T, NH, NKV, HD;
    float scale;    /* 0: HD^-0.5 through attention_forward */
    int64_t window; /* with scale: attention_forward_window's */
} att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    if (c->scale > 0)
        attention_forward_window(c->out, c->lse, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV,
                                 c->HD, c->scale, c->window);
    else
        attention_forward(c->out, c->lse, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV, c->HD);
    return dot_r(c->out, c->R, c->B * c->T * c->NH * c->HD);
}

/* Naive attention with the full T x T probability matrix, in double, forward and backward;
 * scores scaled by SCALE, query t seeing keys s in [first, t] with first = t - WINDOW + 1
 * (0 when WINDOW is 0 or t < WINDOW). */
static void naive_attention(double *out, double *lse, double *dq, double *dk, double *dv,
                            const float *dout, const float *q, const float *k, const float *v,
                            int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD,
                            double scale, int64_t window) {
    int64_t C = NH * HD, CKV = NKV * HD, group = NH / NKV;
    double *P = dbuf(T * T), *dS = dbuf(T * T);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++) {
            const float *qb = q + b * T * C + h * HD, *dob = dout + b * T * C + h * HD;
            int64_t kvo = b * T * CKV + (h / group) * HD;
            for (int64_t t = 0; t < T; t++) {
                const int64_t first = window > 0 && t >= window ? t - window + 1 : 0;
                double mx = -INFINITY, sum = 0.0;
                for (int64_t s = first; s <= t; s++) {
                    double a = 0.0;
                    for (int64_t d = 0; d < HD; d++)
                        a += (double)qb[t * C + d] * k[kvo + s * CKV + d];
                    P[t * T + s] = a * scale;
                    mx = fmax(mx, a * scale);
                }
                for (int64_t s = first; s <= t; s++) sum += exp(P[t * T + s] - mx);
                for (int64_t s = first; s <= t; s++) P[t * T + s] = exp(P[t * T + s] - mx) / sum;
                lse[(b * NH + h) * T + t] = mx + log(sum);
                for (int64_t d = 0; d < HD; d++) {
                    double o = 0.0;
                    for (int64_t s = first; s <= t; s++) o += P[t * T + s] * v[kvo + s * CKV + d];
                    out[(b * T + t) * C + h * HD + d] = o;
                }
                /* dS = P * (dP - rowsum(P * dP)) */
                double D = 0.0;
                for (int64_t s = first; s <= t; s++) {
                    double dp = 0.0;
                    for (int64_t d = 0; d < HD; d++)
                        dp += (double)dob[t * C + d] * v[kvo + s * CKV + d];
                    dS[t * T + s] = dp;
                    D += P[t * T + s] * dp;
                }
                for (int64_t s = first; s <= t; s++) dS[t * T + s] = P[t * T + s] * (dS[t * T + s] - D);
                for (int64_t s = first; s <= t; s++)
                    for (int64_t d = 0; d < HD; d++) {
                        double ds = scale * dS[t * T + s];
                        dq[(b * T + t) * C + h * HD + d] += ds * k[kvo + s * CKV + d];
                        dk[kvo + s * CKV + d] += ds * qb[t * C + d];
                        dv[kvo + s * CKV + d] += P[t * T + s] * dob[t * C + d];
                    }
            }
        }
    free(P), free(dS);
}

/* T above the online softmax's key block (64), GQA, B = 2: forward and backward vs naive;
 * WINDOW > 0: the sliding-window variant with Gemma 3's scale query_pre_attn_scalar^-0.5
 * (here 1/sqrt(2 HD)), windows below, at and above the key block. */
static void test_attention_values(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD,
                                  int64_t window) {
    int64_t nq = B * T * NH * HD, nkv = B * T * NKV * HD;
    float *q = rand_buf(nq, 2.0f), *k = rand_buf(nkv, 2.0f), *v = rand_buf(nkv, 1.0f);
    float *dout = rand_buf(nq, 1.0f), *out = rand_buf(nq, 1.0f), *lse = rand_buf(B * NH * T, 1.0f);
    float *dq = rand_buf(nq, 100.0f), *dk = rand_buf(nkv, 100.0f), *dv = rand_buf(nkv, 100.0f);
    double *w_out = dbuf(nq), *w_lse = dbuf(B * NH * T);
    double *w_dq = dbuf(nq), *w_dk = dbuf(nkv), *w_dv = dbuf(nkv);
    float scale = window ? (float)(1.0 / sqrt(2.0 * (double)HD)) : (float)(1.0 / sqrt((double)HD));
    naive_attention(w_out, w_lse, w_dq, w_dk, w_dv, dout, q, k, v, B, T, NH, NKV, HD, scale, window);
    if (window) {
        attention_forward_window(out, lse, q, k, v, B, T, NH, NKV, HD, scale, window);
        attention_backward_window(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HD, scale, window);
    } else {
        attention_forward(out, lse, q, k, v, B, T, NH, NKV, HD);
        attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, HD);
    }
    char name[112];
    const char *what[5] = {"out", "lse", "dq", "dk", "dv"};
    const float *got[5] = {out, lse, dq, dk, dv};
    const double *want[5] = {w_out, w_lse, w_dq, w_dk, w_dv};
    int64_t n[5] = {nq, B * NH * T, nq, nkv, nkv};
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "attention %s vs naive B%lld T%lld NH%lld NKV%lld window %lld",
                 what[i], (long long)B, (long long)T, (long long)NH, (long long)NKV, (long long)window);
        check_tensor(name, got[i], want[i], n[i], 2e-5, 1e-4);
    }
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
    free(w_out), free(w_lse), free(w_dq), free(w_dk), free(w_dv);
}

static void test_attention_fd(int64_t window) {
    att_ctx c = {.B = 2, .T = 5, .NH = 4, .NKV = 2, .HD = 4, .window = window};
    if (window) c.scale = 0.35f;
    int64_t nq = c.B * c.T * c.NH * c.HD, nkv = c.B * c.T * c.NKV * c.HD;
    c.q = rand_buf(nq, 1.0f), c.k = rand_buf(nkv, 1.0f), c.v = rand_buf(nkv, 1.0f);
    c.out = rand_buf(nq, 1.0f), c.lse = rand_buf(c.B * c.NH * c.T, 1.0f), c.R = rand_buf(nq, 1.0f);
    att_loss(&c);
    float *dq = rand_buf(nq, 100.0f), *dk = rand_buf(nkv, 100.0f), *dv = rand_buf(nkv, 100.0f);
    if (window)
        attention_backward_window(dq, dk, dv, c.R, c.q, c.k, c.v, c.out, c.lse, c.B, c.T, c.NH,
                                  c.NKV, c.HD, c.scale, c.window);
    else
        attention_backward(dq, dk, dv, c.R, c.q, c.k, c.v, c.out, c.lse, c.B, c.T, c.NH, c.NKV, c.HD);
    char name[3][64];
    for (int i = 0; i < 3; i++)
        snprintf(name[i], sizeof name[i], "attention d%c (window %lld)", "qkv"[i], (long long)window);
    fd_check(name[0], c.q, nq, dq, att_loss, &c, 1e-2f, 2e-4, 2e-3);
    fd_check(name[1], c.k, nkv, dk, att_loss, &c, 1e-2f, 2e-4, 2e-3);
    fd_check(name[2], c.v, nkv, dv, att_loss, &c, 1e-2f, 2e-4, 2e-3);
    free(c.q), free(c.k), free(c.v), free(c.out), free(c.lse), free(c.R), free(dq), free(dk);
    free(dv);
}

int main(void) {
    test_attention_values(2, 7, 4, 2, 8, 0);
    test_attention_values(2, 150, 4, 2, 16, 0);
    test_attention_values(1, 70, 3, 1, 5, 0); /* MQA, odd HD */
    test_attention_values(2, 150, 4, 2, 16, 3);  /* sliding windows: short, */
    test_attention_values(2, 150, 4, 2, 16, 64); /* the key block's, */
    test_attention_values(1, 150, 2, 1, 8, 97);  /* ragged across blocks, */
    test_attention_values(1, 40, 2, 2, 8, 40);   /* = T: full causal */
    test_attention_values(1, 80, 4, 1, 256, 33); /* Gemma 3 1B's head_dim and MQA */
    test_attention_fd(0);
    test_attention_fd(2);
    TEST_END();
}
