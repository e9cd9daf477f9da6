/* tests/gpu/ktest_attention.c - attention.cu: the flash forward and the three backward
 * kernels against runtime/cpu/attention.c, within the error bounds of their bf16 roundings;
 * cuDNN's fused attention (runtime/cuda/cudnn_attention.c) against the same reference and
 * mixed with hzc's kernels (its lse drives hzc's backward and the reverse); and timings of
 * both at training shapes. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/attention.cuh"
#include "cuda/cudnn_attention.h"
#include "cuda/tmap.h"

#include "ktest.h"

/* ---- attention.cu ------------------------------------------------------------------------ */

/* the launch shapes of runtime/cuda/kernels.h, from the kernels' own constants */
static unsigned att_fwd_smem(int HD) { return (unsigned)HZ_ATT_FWD_SMEM(HD); }
static unsigned att_bwd_smem(int HD) { return (unsigned)HZ_ATT_BWD_SMEM(HD); }

static unsigned att_dq_smem(int HD) { return (unsigned)HZ_ATT_DQ_SMEM(HD); }

/* The three backward kernels in order: D, then dk/dv, then dq. */
static void att_backward(CUdeviceptr ddq, CUdeviceptr ddk, CUdeviceptr ddv, CUdeviceptr dD,
                         CUdeviceptr ddout, CUdeviceptr dq, CUdeviceptr dk, CUdeviceptr dv,
                         CUdeviceptr dout, CUdeviceptr dlse, int B, int T, int NH, int NKV, int HD,
                         float scale, int window, int sync) {
    void (*go)(const char *, unsigned, unsigned, unsigned, unsigned, void **) = sync ? launch : launch_async;
    void *a1[] = {&dD, &ddout, &dout, &B, &T, &NH, &HD};
    go("hzk_attention_backward_preprocess", blocks_for((long)B * T * NH, 8), 1, 256, 0, a1);
    void *a2[] = {&ddk, &ddv, &ddout, &dq, &dk, &dv, &dlse, &dD, &B, &T, &NH, &NKV, &HD, &scale, &window};
    go("hzk_attention_backward", (unsigned)(B * NKV), (unsigned)((T + 63) / 64), 128, att_bwd_smem(HD), a2);
    void *a3[] = {&ddq, &ddout, &dq, &dk, &dv, &dlse, &dD, &B, &T, &NH, &NKV, &HD, &scale, &window};
    go("hzk_attention_backward_dq", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_dq_smem(HD), a3);
}

/* The same by attention_wgmma_bwd.cu's kernels after the preprocess (head_dim 128, causal),
 * as runtime/cuda launches them: a block an item, or (PERSISTENT) at most a block an SM.
 * PARTS: 1 the preprocess, 2 the dK/dV kernel, 4 the dQ kernel (7: the backward). */
static void att_backward_wgmma(CUdeviceptr ddq, CUdeviceptr ddk, CUdeviceptr ddv, CUdeviceptr dD,
                               CUdeviceptr ddout, CUdeviceptr dq, CUdeviceptr dk, CUdeviceptr dv,
                               CUdeviceptr dout, CUdeviceptr dlse, int B, int T, int NH, int NKV,
                               float scale, int persistent, int sync, int parts) {
    void (*go)(const char *, unsigned, unsigned, unsigned, unsigned, void **) = sync ? launch : launch_async;
    int HD = HZ_ATT_WG_HD, window = 0;
    void *a1[] = {&dD, &ddout, &dout, &B, &T, &NH, &HD};
    if (parts & 1) go("hzk_attention_backward_preprocess", blocks_for((long)B * T * NH, 8), 1, 256, 0, a1);
    CUtensorMap tq, tk, tv, tdo, tl, td;
    CU_CHECK(hzcu_tmap_heads(&tq, dq, B, T, NH, HD, 64));
    CU_CHECK(hzcu_tmap_heads(&tk, dk, B, T, NKV, HD, 64));
    CU_CHECK(hzcu_tmap_heads(&tv, dv, B, T, NKV, HD, 64));
    CU_CHECK(hzcu_tmap_heads(&tdo, ddout, B, T, NH, HD, 64));
    CU_CHECK(hzcu_tmap_rows(&tl, dlse, B * NH, T, 64));
    CU_CHECK(hzcu_tmap_rows(&td, dD, B * NH, T, 64));
    const unsigned sms = (unsigned)ktest_sms(), nt = (unsigned)((T + 127) / 128);
    unsigned g = nt * (unsigned)(B * NKV);
    void *a2[] = {&ddk, &ddv, &tq, &tk, &tv, &tdo, &tl, &td, &B, &T, &NH, &NKV, &HD, &scale, &window};
    if (parts & 2) go("hzk_attention_backward_kv_wgmma", persistent && g > sms ? sms : g, 1, HZ_ATT_WB_THREADS, HZ_ATT_WB_KV_SMEM, a2);
    g = nt * (unsigned)(B * NH);
    void *a3[] = {&ddq, &dlse, &dD, &tq, &tk, &tv, &tdo, &B, &T, &NH, &NKV, &HD, &scale, &window};
    if (parts & 4) go("hzk_attention_backward_q_wgmma", persistent && g > sms ? sms : g, 1, HZ_ATT_WB_THREADS, HZ_ATT_WB_Q_SMEM, a3);
}

/* Error bounds of the bf16 roundings the flash kernels make on purpose: P (in P V and P^T dO)
 * and dS (in dS K and dS^T Q) go to bf16, relative error <= 2^-9 each, so per element
 *   |err out| <= 2^-9 sum_k P|v|,  |err dv| <= 2^-9 sum_q P|dO|,
 *   |err dq| <= 2^-9 scale sum_k |dS||k|,  |err dk| <= 2^-9 scale sum_q |dS||q|
 * (plus the rounding of the result). In rows with few keys these terms are large and cancel,
 * so a tolerance from the tensor's rms alone would be wrong there. Computed in double from
 * the reference's lse and out; bk, bv summed over the query heads of each kv head. WINDOW > 0:
 * over the keys of the sliding window only. */
static void att_bounds(float *bo, float *bq, float *bk, float *bv, const float *q, const float *k,
                       const float *v, const float *g, const float *out, const float *lse, int B, int T,
                       int NH, int NKV, int HD, float scale, int window) {
    const int G = NH / NKV;
    double *ak = calloc((size_t)B * T * NKV * HD, sizeof(double)), *av = calloc((size_t)B * T * NKV * HD, sizeof(double));
    double *ao = malloc((size_t)HD * sizeof(double)), *aq = malloc((size_t)HD * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const size_t qo = (((size_t)b * T + t) * NH + h) * HD;
                double D = 0.0;
                for (int d = 0; d < HD; d++) D += (double)g[qo + d] * out[qo + d], ao[d] = aq[d] = 0.0;
                const double L = lse[((size_t)b * NH + h) * T + t];
                for (int s = window > 0 && t >= window ? t - window + 1 : 0; s <= t; s++) {
                    const size_t ko = (((size_t)b * T + s) * NKV + h / G) * HD;
                    double sc = 0.0, dp = 0.0;
                    for (int d = 0; d < HD; d++) sc += (double)q[qo + d] * k[ko + d], dp += (double)g[qo + d] * v[ko + d];
                    const double p = exp(sc * scale - L), ds = fabs(p * (dp - D));
                    for (int d = 0; d < HD; d++) {
                        ao[d] += p * fabs(v[ko + d]);
                        aq[d] += ds * fabs(k[ko + d]) * scale;
                        av[ko + d] += p * fabs(g[qo + d]);
                        ak[ko + d] += ds * fabs(q[qo + d]) * scale;
                    }
                }
                for (int d = 0; d < HD; d++) bo[qo + d] = (float)ao[d], bq[qo + d] = (float)aq[d];
            }
    for (size_t i = 0; i < (size_t)B * T * NKV * HD; i++) bk[i] = (float)ak[i], bv[i] = (float)av[i];
    free(ak), free(av), free(ao), free(aq);
}

/* "B=.. T=.. NH=.. NKV=.. HD=.. KIND" and, WINDOW > 0, " WINDOW": a case's name in the log. */
static void shape_tag(char *tag, size_t n, int B, int T, int NH, int NKV, int HD, const char *kind,
                      int window) {
    int len = snprintf(tag, n, "B=%d T=%d NH=%d NKV=%d HD=%d%s%s", B, T, NH, NKV, HD, *kind ? " " : "", kind);
    if (window && len > 0 && (size_t)len < n) snprintf(tag + len, n - (size_t)len, " %d", window);
}

/* attention_wgmma.cu's forward, a block an item or persistent (at most a block an SM) */
static const struct {
    const char *tag;
    int persistent;
} hopper_fwd[] = {{"wgmma tma", 0}, {"wgmma tma persistent", 1}};
enum { N_HOPPER_FWD = sizeof hopper_fwd / sizeof hopper_fwd[0] };

/* hopper_fwd[i], launched as runtime/cuda would (SYNC: and waited for); ARGS as
 * hzk_attention_forward's, whose q, k and v give the kernel their maps in their place */
static void launch_forward_wgmma(int i, void **args, int B, int T, int NH, int sync) {
    unsigned g = (unsigned)((T + HZ_ATT_WG_BM - 1) / HZ_ATT_WG_BM * B * NH);
    if (hopper_fwd[i].persistent && g > (unsigned)ktest_sms()) g = (unsigned)ktest_sms();
    CUtensorMap tq, tk, tv;
    void *ta[12];
    const int NKV = *(int *)args[8], HD = *(int *)args[9];
    CU_CHECK(hzcu_tmap_heads(&tq, *(CUdeviceptr *)args[2], B, T, NH, HD, 64));
    CU_CHECK(hzcu_tmap_heads(&tk, *(CUdeviceptr *)args[3], B, T, NKV, HD, HZ_ATT_WG_BN));
    CU_CHECK(hzcu_tmap_heads(&tv, *(CUdeviceptr *)args[4], B, T, NKV, HD, HZ_ATT_WG_BN));
    memcpy(ta, args, sizeof ta);
    ta[2] = &tq, ta[3] = &tk, ta[4] = &tv;
    (sync ? launch : launch_async)("hzk_attention_forward_tma", g, 1, HZ_ATT_WS_THREADS, HZ_ATT_WS_SMEM, ta);
}

/* One case: the forward's out and lse, then the backward's dq, dk, dv against the cpu
 * reference within att_bounds, each run twice to the same bits. WGMMA > 0: hopper_fwd[WGMMA - 1]
 * instead of hzk_attention_forward (causal, HD 128), and the Hopper backward
 * (attention_wgmma_bwd.cu) a block an item or persistent as that forward. WINDOW > 0:
 * sliding-window attention with SCALE_W (Gemma 3's local layers, against
 * attention_forward_window); 0: causal with HD^-0.5 as the cpu reference (SCALE_W unused). */
static void att_case(int B, int T, int NH, int NKV, int HD, float scale_w, int window, int wgmma) {
    char tag[96];
    shape_tag(tag, sizeof tag, B, T, NH, NKV, HD, wgmma ? hopper_fwd[wgmma - 1].tag : window ? "windowed" : "", window);
    const size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD, nl = (size_t)B * NH * T;
    const float scale = window ? scale_w : (float)(1.0 / sqrt((double)HD)); /* as the cpu reference */
    float *q = rand_bf(nq, -1.5f, 1.5f), *k = rand_bf(nk, -1.5f, 1.5f), *v = rand_bf(nk, -1.5f, 1.5f);
    float *out_ref = hmalloc(nq), *lse_ref = hmalloc(nl), *bo = hmalloc(nq);
    if (window) attention_forward_window(out_ref, lse_ref, q, k, v, B, T, NH, NKV, HD, scale, window);
    else attention_forward(out_ref, lse_ref, q, k, v, B, T, NH, NKV, HD);
    float *g = rand_bf(nq, -1, 1); /* dout, for the backward */
    float *bq = hmalloc(nq), *bk = hmalloc(nk), *bv = hmalloc(nk);
    att_bounds(bo, bq, bk, bv, q, k, v, g, out_ref, lse_ref, B, T, NH, NKV, HD, scale, window);
    CUdeviceptr dq = up_bf(q, nq), dk = up_bf(k, nk), dv = up_bf(v, nk);
    CUdeviceptr dout = dalloc(nq * 2), dlse = dalloc(nl * 4);
    float sc = scale;
    int win = window;
    void *a1[] = {&dout, &dlse, &dq, &dk, &dv, &B, &T, &NH, &NKV, &HD, &sc, &win};
    if (wgmma)
        launch_forward_wgmma(wgmma - 1, a1, B, T, NH, 1);
    else
        launch("hzk_attention_forward", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_fwd_smem(HD), a1);
    check_dev(1, dout, out_ref, nq, 1e-6, 4e-3, bo, 6e-3,
              "attention fwd out (%s)", tag);
    check_dev(0, dlse, lse_ref, nl, 1e-4, 1e-4, NULL, 0.0,
              "attention fwd lse (%s)", tag);
    if (wgmma && T % 4 != 0) { /* lse's and D's maps need 16-byte rows */
        printf("skip    attention bwd (%s): the Hopper backward takes T a multiple of 4\n", tag);
        free(q), free(k), free(v), free(out_ref), free(lse_ref), free(g), free(bo), free(bq), free(bk), free(bv);
        cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dout), cuMemFree(dlse);
        return;
    }

    /* backward from the reference out (rounded to bf16, as the device would hold it) and lse */
    for (size_t i = 0; i < nq; i++) out_ref[i] = round_bf(out_ref[i]);
    float *dq_ref = hmalloc(nq), *dk_ref = hmalloc(nk), *dv_ref = hmalloc(nk);
    if (window)
        attention_backward_window(dq_ref, dk_ref, dv_ref, g, q, k, v, out_ref, lse_ref, B, T, NH,
                                  NKV, HD, scale, window);
    else
        attention_backward(dq_ref, dk_ref, dv_ref, g, q, k, v, out_ref, lse_ref, B, T, NH, NKV, HD);
    CUdeviceptr dg = up_bf(g, nq), dO = up_bf(out_ref, nq), dL = up_f32(lse_ref, nl);
    CUdeviceptr ddq = dalloc(nq * 2), ddk = dalloc(nk * 2), ddv = dalloc(nk * 2), dD = dalloc(nl * 4);
    /* twice, outputs poisoned before each run: the backward has no atomics, so the runs must
     * agree bit for bit */
    float *runs_dq[2], *runs_dk[2], *runs_dv[2];
    for (int r = 0; r < 2; r++) {
        poison(ddq, nq * 2), poison(ddk, nk * 2), poison(ddv, nk * 2), poison(dD, nl * 4);
        if (wgmma) /* the Hopper backward, a block an item or persistent as the forward */
            att_backward_wgmma(ddq, ddk, ddv, dD, dg, dq, dk, dv, dO, dL, B, T, NH, NKV, scale,
                               hopper_fwd[wgmma - 1].persistent, 1, 7);
        else
            att_backward(ddq, ddk, ddv, dD, dg, dq, dk, dv, dO, dL, B, T, NH, NKV, HD, scale, window, 1);
        runs_dq[r] = down_bf(ddq, nq), runs_dk[r] = down_bf(ddk, nk), runs_dv[r] = down_bf(ddv, nk);
    }
    check_reruns(runs_dq, dq_ref, nq, 1e-6, 4e-3, bq, 6e-3, "attention bwd dq (%s)", tag);
    check_reruns(runs_dk, dk_ref, nk, 1e-6, 4e-3, bk, 6e-3, "attention bwd dk (%s)", tag);
    check_reruns(runs_dv, dv_ref, nk, 1e-6, 4e-3, bv, 6e-3, "attention bwd dv (%s)", tag);
    free(q), free(k), free(v), free(out_ref), free(lse_ref), free(g), free(dq_ref), free(dk_ref), free(dv_ref);
    free(bo), free(bq), free(bk), free(bv);
    cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dout), cuMemFree(dlse), cuMemFree(dg), cuMemFree(dO);
    cuMemFree(dL), cuMemFree(ddq), cuMemFree(ddk), cuMemFree(ddv), cuMemFree(dD);
}

void test_attention_w(int B, int T, int NH, int NKV, int HD, float scale_w, int window) {
    att_case(B, T, NH, NKV, HD, scale_w, window, 0);
}

void test_attention(int B, int T, int NH, int NKV, int HD) {
    test_attention_w(B, T, NH, NKV, HD, 0.0f, 0);
}

void test_attention_wgmma(int B, int T, int NH, int NKV) {
    if (!ktest_wgmma()) {
        printf("skip    attention fwd (B=%d T=%d NH=%d NKV=%d HD=%d wgmma): the GPU is not sm_90\n", B, T,
               NH, NKV, HZ_ATT_WG_HD);
        return;
    }
    for (int i = 0; i < N_HOPPER_FWD; i++) att_case(B, T, NH, NKV, HZ_ATT_WG_HD, 0.0f, 0, 1 + i);
    /* the trainer picks the TMA forward and the Hopper backward a block an item or persistent
     * by timing, --deterministic too: both must write the same bits */
    const int HD = HZ_ATT_WG_HD;
    const size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD, nl = (size_t)B * NH * T;
    float *q = rand_bf(nq, -1.5f, 1.5f), *k = rand_bf(nk, -1.5f, 1.5f), *v = rand_bf(nk, -1.5f, 1.5f);
    CUdeviceptr dq = up_bf(q, nq), dk = up_bf(k, nk), dv = up_bf(v, nk);
    CUdeviceptr dout = dalloc(nq * 2), dlse = dalloc(nl * 4);
    float sc = (float)(1.0 / sqrt((double)HD)), *o[2], *l[2];
    int hd = HD, win = 0;
    void *a1[] = {&dout, &dlse, &dq, &dk, &dv, &B, &T, &NH, &NKV, &hd, &sc, &win};
    for (int r = 0; r < 2; r++) {
        poison(dout, nq * 2), poison(dlse, nl * 4);
        launch_forward_wgmma(N_HOPPER_FWD - 2 + r, a1, B, T, NH, 1);
        o[r] = down_bf(dout, nq), l[r] = down_f32(dlse, nl);
    }
    char tag[96], name[160];
    shape_tag(tag, sizeof tag, B, T, NH, NKV, HD, "wgmma tma", 0);
    snprintf(name, sizeof name, "attention fwd out (%s), a block an item = persistent", tag);
    same_bits(name, o[0], o[1], nq);
    snprintf(name, sizeof name, "attention fwd lse (%s), a block an item = persistent", tag);
    same_bits(name, l[0], l[1], nl);
    /* the backward's too, from that forward */
    if (T % 4 != 0) {
        free(q), free(k), free(v), free(o[0]), free(o[1]), free(l[0]), free(l[1]);
        cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dout), cuMemFree(dlse);
        return;
    }
    float *gr = rand_bf(nq, -1, 1), *bw[2][3];
    CUdeviceptr dg = up_bf(gr, nq), ddq = dalloc(nq * 2), ddk = dalloc(nk * 2), ddv = dalloc(nk * 2), dD = dalloc(nl * 4);
    for (int r = 0; r < 2; r++) {
        poison(ddq, nq * 2), poison(ddk, nk * 2), poison(ddv, nk * 2);
        att_backward_wgmma(ddq, ddk, ddv, dD, dg, dq, dk, dv, dout, dlse, B, T, NH, NKV, sc, r, 1, 7);
        bw[r][0] = down_bf(ddq, nq), bw[r][1] = down_bf(ddk, nk), bw[r][2] = down_bf(ddv, nk);
    }
    const char *what[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "attention bwd %s (%s), a block an item = persistent", what[i], tag);
        same_bits(name, bw[0][i], bw[1][i], i ? nk : nq);
        free(bw[0][i]), free(bw[1][i]);
    }
    free(gr), cuMemFree(dg), cuMemFree(ddq), cuMemFree(ddk), cuMemFree(ddv), cuMemFree(dD);
    free(q), free(k), free(v), free(o[0]), free(o[1]), free(l[0]), free(l[1]);
    cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dout), cuMemFree(dlse);
}


#define DPTR(p) ((void *)(uintptr_t)(p))

/* cuDNN's graphs for a shape with its workspace, or NULL after one visible skip line. */
static hzcu_sdpa *sdpa_for(int B, int T, int NH, int NKV, int HD, float scale, int window,
                           CUdeviceptr *ws, const char *tag) {
    char why[1024];
    hzcu_sdpa *a = hzcu_sdpa_create(B, T, NH, NKV, HD, scale, window, 1, why, sizeof why);
    if (!a) {
        printf("skip    cuDNN attention (%s): %s\n", tag, why);
        return NULL;
    }
    int64_t n = hzcu_sdpa_workspace_bytes(a);
    *ws = dalloc(n > 0 ? (size_t)n : 16);
    hzcu_sdpa_set_workspace(a, DPTR(*ws));
    return a;
}

/* The device gradients of one backward against the reference's, with hzc's tolerances. */
typedef struct att_grads {
    CUdeviceptr dq, dk, dv, dD;                     /* device outputs (and D, scratch) */
    const float *dq_ref, *dk_ref, *dv_ref, *bq, *bk, *bv;
    size_t nq, nk, nl;
} att_grads;

static void check_grads(const att_grads *t, const char *what, const char *tag) {
    check_dev(1, t->dq, t->dq_ref, t->nq, 1e-6, 4e-3, t->bq, 6e-3, "%s dq (%s)", what, tag);
    check_dev(1, t->dk, t->dk_ref, t->nk, 1e-6, 4e-3, t->bk, 6e-3, "%s dk (%s)", what, tag);
    check_dev(1, t->dv, t->dv_ref, t->nk, 1e-6, 4e-3, t->bv, 6e-3, "%s dv (%s)", what, tag);
}

/* cuDNN's backward into poisoned outputs from OUT and LSE, then checked. */
static void cudnn_backward_checked(hzcu_sdpa *a, const att_grads *t, CUdeviceptr dg,
                                   CUdeviceptr dq, CUdeviceptr dk, CUdeviceptr dv,
                                   CUdeviceptr out, CUdeviceptr lse, const char *what,
                                   const char *tag) {
    char why[1024];
    poison(t->dq, t->nq * 2), poison(t->dk, t->nk * 2), poison(t->dv, t->nk * 2),
        poison(t->dD, t->nl * 4);
    if (hzcu_sdpa_backward(a, NULL, DPTR(t->dq), DPTR(t->dk), DPTR(t->dv), DPTR(dg), DPTR(dq),
                           DPTR(dk), DPTR(dv), DPTR(out), DPTR(lse), DPTR(t->dD), why, sizeof why))
        printf("FAIL    %s (%s): %s\n", what, tag, why), test_failed_n++;
    CU_CHECK(cuCtxSynchronize());
    check_grads(t, what, tag);
}

/* cuDNN's forward and backward against the cpu reference with hzc's tolerances (causal with
 * SCALE, over WINDOW keys, 0: all, the reference's window = T), then each mixed with hzc's
 * kernels: cuDNN's out and lse into hzc's backward, hzc's into cuDNN's backward, so the lse
 * conventions and the windows agree. */
void test_attention_cudnn_w(int B, int T, int NH, int NKV, int HD, float scale, int window) {
    char tag[112], why[1024], kind[32];
    snprintf(kind, sizeof kind, "scale %.4g%s", (double)scale, window ? " window" : "");
    shape_tag(tag, sizeof tag, B, T, NH, NKV, HD, kind, window);
    const int rw = window ? window : T; /* the reference's window */
    CUdeviceptr ws = 0;
    hzcu_sdpa *a = sdpa_for(B, T, NH, NKV, HD, scale, window, &ws, tag);
    if (!a) return;
    const size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD, nl = (size_t)B * NH * T;
    float *q = rand_bf(nq, -1.5f, 1.5f), *k = rand_bf(nk, -1.5f, 1.5f), *v = rand_bf(nk, -1.5f, 1.5f);
    float *g = rand_bf(nq, -1, 1);
    float *out_ref = hmalloc(nq), *lse_ref = hmalloc(nl), *bo = hmalloc(nq);
    float *bq = hmalloc(nq), *bk = hmalloc(nk), *bv = hmalloc(nk);
    attention_forward_window(out_ref, lse_ref, q, k, v, B, T, NH, NKV, HD, scale, rw);
    att_bounds(bo, bq, bk, bv, q, k, v, g, out_ref, lse_ref, B, T, NH, NKV, HD, scale, window);
    CUdeviceptr dq = up_bf(q, nq), dk = up_bf(k, nk), dv = up_bf(v, nk), dg = up_bf(g, nq);
    CUdeviceptr dout = dalloc(nq * 2), dlse = dalloc(nl * 4);
    if (hzcu_sdpa_forward(a, NULL, DPTR(dout), DPTR(dlse), DPTR(dq), DPTR(dk), DPTR(dv), why, sizeof why))
        printf("FAIL    cuDNN attention fwd (%s): %s\n", tag, why), test_failed_n++;
    CU_CHECK(cuCtxSynchronize());
    check_dev(1, dout, out_ref, nq, 1e-6, 4e-3, bo, 6e-3, "cuDNN attention fwd out (%s)", tag);
    check_dev(0, dlse, lse_ref, nl, 1e-4, 1e-4, NULL, 0.0, "cuDNN attention fwd lse (%s)", tag);

    /* The mixed runs' references take the device's out (its bf16 bits, which differ from the
     * reference's within the tolerance above) with the reference's lse: the device backward
     * reads the other path's lse, so a different lse convention fails them. */
    float *dq_ref = hmalloc(nq), *dk_ref = hmalloc(nk), *dv_ref = hmalloc(nk);
    float *out_dev = down_bf(dout, nq);
    attention_backward_window(dq_ref, dk_ref, dv_ref, g, q, k, v, out_dev, lse_ref, B, T, NH, NKV,
                              HD, scale, rw);
    CUdeviceptr ddq = dalloc(nq * 2), ddk = dalloc(nk * 2), ddv = dalloc(nk * 2), dD = dalloc(nl * 4);
    const att_grads t = {ddq, ddk, ddv, dD, dq_ref, dk_ref, dv_ref, bq, bk, bv, nq, nk, nl};
    /* mixed: cuDNN's out and lse (just computed) into hzc's backward */
    att_backward(ddq, ddk, ddv, dD, dg, dq, dk, dv, dout, dlse, B, T, NH, NKV, HD, scale, window, 1);
    check_grads(&t, "cuDNN fwd + hzc bwd", tag);
    free(out_dev);
    /* cuDNN's own backward: from the reference's out (rounded to bf16) and lse */
    for (size_t i = 0; i < nq; i++) out_ref[i] = round_bf(out_ref[i]);
    attention_backward_window(dq_ref, dk_ref, dv_ref, g, q, k, v, out_ref, lse_ref, B, T, NH, NKV,
                              HD, scale, rw);
    if (!hzcu_sdpa_has_backward(a)) {
        printf("skip    cuDNN attention bwd (%s): %s\n", tag, hzcu_sdpa_backward_why(a));
    } else {
        CUdeviceptr dO = up_bf(out_ref, nq), dL = up_f32(lse_ref, nl);
        cudnn_backward_checked(a, &t, dg, dq, dk, dv, dO, dL, "cuDNN attention bwd", tag);
        /* mixed the other way: hzc's forward into cuDNN's backward */
        float sc = scale;
        int win = window;
        void *a1[] = {&dout, &dlse, &dq, &dk, &dv, &B, &T, &NH, &NKV, &HD, &sc, &win};
        poison(dout, nq * 2), poison(dlse, nl * 4);
        launch("hzk_attention_forward", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_fwd_smem(HD), a1);
        float *hout = down_bf(dout, nq);
        attention_backward_window(dq_ref, dk_ref, dv_ref, g, q, k, v, hout, lse_ref, B, T, NH, NKV,
                                  HD, scale, rw);
        free(hout);
        cudnn_backward_checked(a, &t, dg, dq, dk, dv, dout, dlse, "hzc fwd + cuDNN bwd", tag);
        cuMemFree(dO), cuMemFree(dL);
    }
    hzcu_sdpa_destroy(a);
    free(q), free(k), free(v), free(g), free(out_ref), free(lse_ref), free(bo), free(bq), free(bk), free(bv);
    free(dq_ref), free(dk_ref), free(dv_ref);
    cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dg), cuMemFree(dout), cuMemFree(dlse);
    cuMemFree(ddq), cuMemFree(ddk), cuMemFree(ddv), cuMemFree(dD), cuMemFree(ws);
}

void test_attention_cudnn(int B, int T, int NH, int NKV, int HD, float scale) {
    test_attention_cudnn_w(B, T, NH, NKV, HD, scale, 0);
}

/* Milliseconds per call of cuDNN's forward and backward at a shape (10 calls after one). */
static int bench_cudnn(int B, int T, int NH, int NKV, int HD, int window, CUdeviceptr dq, CUdeviceptr dk,
                       CUdeviceptr dv, CUdeviceptr dg, CUdeviceptr dout, CUdeviceptr dlse,
                       CUdeviceptr ddq, CUdeviceptr ddk, CUdeviceptr ddv, CUdeviceptr dD,
                       float *ms_f, float *ms_b) {
    char tag[64], why[1024];
    snprintf(tag, sizeof tag, "bench B=%d T=%d NH=%d NKV=%d HD=%d window %d", B, T, NH, NKV, HD, window);
    CUdeviceptr ws = 0;
    hzcu_sdpa *a = sdpa_for(B, T, NH, NKV, HD, (float)(1.0 / sqrt((double)HD)), window, &ws, tag);
    if (!a) return -1;
    CUevent e0, e1, e2, e3; /* forward e0..e1, backward e2..e3, each after a warm-up call */
    CU_CHECK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e1, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e2, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e3, CU_EVENT_DEFAULT));
    const int reps = 10;
    int bad = 0, bwd = hzcu_sdpa_has_backward(a);
    for (int r = 0; r <= reps && !bad; r++) {
        if (r == 1) CU_CHECK(cuEventRecord(e0, NULL));
        bad = hzcu_sdpa_forward(a, NULL, DPTR(dout), DPTR(dlse), DPTR(dq), DPTR(dk), DPTR(dv), why, sizeof why);
    }
    CU_CHECK(cuEventRecord(e1, NULL));
    CU_CHECK(cuEventRecord(e2, NULL));
    for (int r = 0; r <= reps && bwd && !bad; r++) {
        if (r == 1) CU_CHECK(cuEventRecord(e2, NULL));
        bad = hzcu_sdpa_backward(a, NULL, DPTR(ddq), DPTR(ddk), DPTR(ddv), DPTR(dg), DPTR(dq), DPTR(dk),
                                 DPTR(dv), DPTR(dout), DPTR(dlse), DPTR(dD), why, sizeof why);
    }
    CU_CHECK(cuEventRecord(e3, NULL));
    CU_CHECK(cuEventSynchronize(e3));
    CU_CHECK(cuEventElapsedTime(ms_f, e0, e1));
    CU_CHECK(cuEventElapsedTime(ms_b, e2, e3));
    *ms_f /= reps, *ms_b = bwd ? *ms_b / reps : 0.0f;
    if (bad) printf("bench   cuDNN attention (%s): %s\n", tag, why);
    cuEventDestroy(e0), cuEventDestroy(e1), cuEventDestroy(e2), cuEventDestroy(e3);
    hzcu_sdpa_destroy(a);
    cuMemFree(ws);
    return bad ? -1 : 0;
}

/* Timings of the attention kernels, hzc's and cuDNN's, at a training shape, over WINDOW keys
 * (0: causal over all; not checks, printed for the log). FLOPs as hzc's time model counts
 * them (compiler/timemodel.c): each query scores T / 2 keys causal, W - W^2 / 2T with a
 * window W < T; backward 2.5x forward. */
void bench_attention_w(int B, int T, int NH, int NKV, int HD, int window) {
    const size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD, nl = (size_t)B * NH * T;
    float *h = rand_bf(nq, -1.5f, 1.5f);
    CUdeviceptr dq = up_bf(h, nq), dk = up_bf(h, nk), dv = up_bf(h + nk, nk), dg = up_bf(h, nq);
    CUdeviceptr dout = dalloc(nq * 2), dlse = dalloc(nl * 4), ddq = dalloc(nq * 2), ddk = dalloc(nk * 2),
                ddv = dalloc(nk * 2), dD = dalloc(nl * 4);
    float scale = (float)(1.0 / sqrt((double)HD));
    void *a1[] = {&dout, &dlse, &dq, &dk, &dv, &B, &T, &NH, &NKV, &HD, &scale, &window};
    CUevent e0, e1, e2;
    CU_CHECK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e1, CU_EVENT_DEFAULT));
    CU_CHECK(cuEventCreate(&e2, CU_EVENT_DEFAULT));
    const int reps = 10;
    for (int r = 0; r <= reps; r++) { /* the first round warms up */
        if (r == 1) CU_CHECK(cuEventRecord(e0, NULL));
        launch_async("hzk_attention_forward", (unsigned)(B * NH), (unsigned)((T + 63) / 64), 128, att_fwd_smem(HD), a1);
    }
    CU_CHECK(cuEventRecord(e1, NULL));
    for (int r = 0; r < reps; r++)
        att_backward(ddq, ddk, ddv, dD, dg, dq, dk, dv, dout, dlse, B, T, NH, NKV, HD, scale, window, 0);
    CU_CHECK(cuEventRecord(e2, NULL));
    CU_CHECK(cuEventSynchronize(e2));
    float ms_f = 0, ms_b = 0;
    CU_CHECK(cuEventElapsedTime(&ms_f, e0, e1));
    CU_CHECK(cuEventElapsedTime(&ms_b, e1, e2));
    ms_f /= reps, ms_b /= reps;
    const double W = window, keys = window > 0 && window < T ? W - W * W / (2.0 * T) : T / 2.0;
    const double flops_f = 4.0 * B * NH * (double)T * keys * HD; /* QK^T and PV over those keys */
    char shape[96];
    shape_tag(shape, sizeof shape, B, T, NH, NKV, HD, window ? "window" : "causal", window);
    int regs[3] = {0}, local[3] = {0};
    const char *names[3] = {"hzk_attention_forward", "hzk_attention_backward", "hzk_attention_backward_dq"};
    for (int i = 0; i < 3; i++) {
        CU_CHECK(cuFuncGetAttribute(&regs[i], CU_FUNC_ATTRIBUTE_NUM_REGS, kernel(names[i])));
        CU_CHECK(cuFuncGetAttribute(&local[i], CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, kernel(names[i])));
    }
    printf("bench   attention %s: fwd %.3f ms %.1f TFLOP/s (%d regs, %d B local); "
           "bwd %.3f ms %.1f TFLOP/s by the 2.5x-forward count (kv %d regs, %d B local; dq %d regs, %d B local)\n",
           shape, ms_f, flops_f / ms_f * 1e-9, regs[0], local[0], ms_b, 2.5 * flops_f / ms_b * 1e-9,
           regs[1], local[1], regs[2], local[2]);
    for (int i = 0; ktest_wgmma() && HD == HZ_ATT_WG_HD && window == 0 && i < N_HOPPER_FWD; i++) {
        float ms_w = 0;
        for (int r = 0; r <= reps; r++) {
            if (r == 1) CU_CHECK(cuEventRecord(e0, NULL));
            launch_forward_wgmma(i, a1, B, T, NH, 0);
        }
        CU_CHECK(cuEventRecord(e1, NULL));
        CU_CHECK(cuEventSynchronize(e1));
        CU_CHECK(cuEventElapsedTime(&ms_w, e0, e1));
        ms_w /= reps;
        int wr = 0;
        CU_CHECK(cuFuncGetAttribute(&wr, CU_FUNC_ATTRIBUTE_NUM_REGS, kernel("hzk_attention_forward_tma")));
        printf("bench   attention %s: %s fwd %.3f ms %.1f TFLOP/s (%d regs)\n", shape, hopper_fwd[i].tag, ms_w,
               flops_f / ms_w * 1e-9, wr);
    }
    for (int pers = 0; ktest_wgmma() && HD == HZ_ATT_WG_HD && window == 0 && pers < 2; pers++) {
        float ms_w = 0, ms_p[2] = {0};
        for (int r = 0; r <= reps; r++) {
            if (r == 1) CU_CHECK(cuEventRecord(e0, NULL));
            att_backward_wgmma(ddq, ddk, ddv, dD, dg, dq, dk, dv, dout, dlse, B, T, NH, NKV, scale, pers, 0, 7);
        }
        CU_CHECK(cuEventRecord(e1, NULL));
        CU_CHECK(cuEventSynchronize(e1));
        CU_CHECK(cuEventElapsedTime(&ms_w, e0, e1));
        ms_w /= reps;
        for (int part = 0; part < 2; part++) { /* each kernel alone: dK/dV, dQ */
            CU_CHECK(cuEventRecord(e0, NULL));
            for (int r = 0; r < reps; r++)
                att_backward_wgmma(ddq, ddk, ddv, dD, dg, dq, dk, dv, dout, dlse, B, T, NH, NKV, scale, pers, 0,
                                   2 << part);
            CU_CHECK(cuEventRecord(e1, NULL));
            CU_CHECK(cuEventSynchronize(e1));
            CU_CHECK(cuEventElapsedTime(&ms_p[part], e0, e1));
            ms_p[part] /= reps;
        }
        int kr = 0, kl = 0, qr = 0, ql = 0;
        CU_CHECK(cuFuncGetAttribute(&kr, CU_FUNC_ATTRIBUTE_NUM_REGS, kernel("hzk_attention_backward_kv_wgmma")));
        CU_CHECK(cuFuncGetAttribute(&kl, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, kernel("hzk_attention_backward_kv_wgmma")));
        CU_CHECK(cuFuncGetAttribute(&qr, CU_FUNC_ATTRIBUTE_NUM_REGS, kernel("hzk_attention_backward_q_wgmma")));
        CU_CHECK(cuFuncGetAttribute(&ql, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, kernel("hzk_attention_backward_q_wgmma")));
        /* the dK/dV kernel makes 4 of the 2 x 2.5 forward products, the dQ kernel 3 */
        printf("bench   attention %s: wgmma bwd%s %.3f ms %.1f TFLOP/s by the 2.5x-forward count (kv %.3f ms, %.1f "
               "TFLOP/s of its 4 products, %d regs, %d B local; q %.3f ms, %.1f TFLOP/s of its 3, %d regs, %d B local)\n",
               shape, pers ? " persistent" : "", ms_w, 2.5 * flops_f / ms_w * 1e-9, ms_p[0],
               2.0 * flops_f / ms_p[0] * 1e-9, kr, kl, ms_p[1], 1.5 * flops_f / ms_p[1] * 1e-9, qr, ql);
    }
    float dn_f = 0, dn_b = 0;
    if (bench_cudnn(B, T, NH, NKV, HD, window, dq, dk, dv, dg, dout, dlse, ddq, ddk, ddv, dD, &dn_f,
                    &dn_b) == 0) {
        printf("bench   attention %s: cuDNN fwd %.3f ms %.1f TFLOP/s; ", shape, dn_f, flops_f / dn_f * 1e-9);
        if (dn_b > 0) printf("cuDNN bwd %.3f ms %.1f TFLOP/s\n", dn_b, 2.5 * flops_f / dn_b * 1e-9);
        else printf("cuDNN bwd: not available\n");
        printf("bench   attention %s: TFLOP/s fwd hzc %.1f cuDNN %.1f; bwd hzc %.1f cuDNN %.1f\n", shape,
               flops_f / ms_f * 1e-9, flops_f / dn_f * 1e-9, 2.5 * flops_f / ms_b * 1e-9,
               dn_b > 0 ? 2.5 * flops_f / dn_b * 1e-9 : 0.0);
    }
    free(h);
    cuEventDestroy(e0), cuEventDestroy(e1), cuEventDestroy(e2);
    cuMemFree(dq), cuMemFree(dk), cuMemFree(dv), cuMemFree(dg), cuMemFree(dout), cuMemFree(dlse);
    cuMemFree(ddq), cuMemFree(ddk), cuMemFree(ddv), cuMemFree(dD);
}

void bench_attention(int B, int T, int NH, int NKV, int HD) { bench_attention_w(B, T, NH, NKV, HD, 0); }
