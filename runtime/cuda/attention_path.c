/* runtime/cuda/attention_path.c - which attention a trainer runs: cuDNN's fused SDPA
 * (runtime/cuda/cudnn_attention.c), one graph for the full-attention layers and one for the
 * sliding-window layers (Gemma 3's local ones), when train --attention and --deterministic
 * allow it and cuDNN accepts the shape, else hzc's own flash kernels (attention.cu); and on
 * an sm_90 GPU at head_dim 128, each pass of the full-attention layers by hzc's Hopper
 * kernels (attention_wgmma.cu, attention_wgmma_bwd.cu) where init times them faster. All
 * write the same out, lse and gradients, so a pass may use any of them. */
#include <stdint.h>
#include <stdio.h>

#include "cuda.h"
#include "cudnn_attention.h"
#include "launch.h"
#include "tmap.h"

/* How many layers of each kind: [0] full causal attention, [1] the plan's sliding window. */
static void layer_kinds(const hz_plan *p, int64_t n[2])
{
    n[1] = p->dims.window > 0 ? p->dims.window_n : 0;
    n[0] = p->dims.L - n[1];
}

/* cuDNN's graphs for one kind of layer (WINDOW 0: full causal). Prints what runs it. */
static void choose_kind(cuda_state *s, int mode, int kind, int window)
{
    const char *what = kind ? "sliding-window layers" : "full-attention layers";
    char why[1024] = "";
    struct hzcu_dnn_att *d = &s->dnn[kind];
    d->a = hzcu_sdpa_create(s->B, s->T, s->NH, s->NKV, s->HD, s->att_scale, window, 1, why,
                            sizeof why);
    if (!d->a) {
        /* auto settles for hzc's kernels quietly (one line, the reason); asking for cuDNN by
         * name and not getting it is a warning */
        printf("cuda backend: attention, %s: hzc's kernels (cuDNN not used: %s)\n", what, why);
        if (mode == HZ_ATTENTION_CUDNN)
            fprintf(stderr, "train: warning: cuDNN attention unavailable for the %s, using hzc's "
                            "kernels: %s\n", what, why);
        return;
    }
    d->fwd = 1;
    d->bwd = hzcu_sdpa_has_backward(d->a);
    int64_t ws = hzcu_sdpa_workspace_bytes(d->a);
    if (ws > s->sdpa_ws_bytes) s->sdpa_ws_bytes = ws;
    printf("cuda backend: attention, %s: %s, fused SDPA forward%s%s; its workspace %lld bytes\n",
           what, hzcu_sdpa_describe(d->a), d->bwd ? " and backward" : "",
           d->bwd ? "" : " (backward: hzc's kernels)", (long long)ws);
    if (!d->bwd && mode == HZ_ATTENTION_CUDNN)
        fprintf(stderr, "train: warning: cuDNN attention backward unavailable for the %s, using "
                        "hzc's kernels for it: %s\n", what, hzcu_sdpa_backward_why(d->a));
    else if (!d->bwd)
        printf("cuda backend: attention backward, %s: hzc's kernels (%s)\n", what,
               hzcu_sdpa_backward_why(d->a));
}

void hzcu_attention_choose(cuda_state *s, int mode)
{
    if (mode == HZ_ATTENTION_HZC) {
        printf("cuda backend: attention: hzc's kernels (--attention hzc)\n");
        return;
    }
    if (s->det) {
        /* cuDNN's flash backward sums dq with atomics: not the same bits from run to run */
        printf("cuda backend: attention: hzc's kernels (--deterministic keeps their bit-exact "
               "backward)\n");
        if (mode == HZ_ATTENTION_CUDNN)
            fprintf(stderr, "train: warning: --attention cudnn with --deterministic: using hzc's "
                            "attention kernels, whose backward is bit-deterministic\n");
        return;
    }
    int64_t n[2];
    layer_kinds(s->p, n);
    if (n[0] > 0) choose_kind(s, mode, 0, 0);
    if (n[1] > 0) choose_kind(s, mode, 1, (int)s->p->dims.window);
    if (s->sdpa_ws_bytes > 0)
        printf("cuda backend: cuDNN workspace %lld bytes (the larger graph's, shared)\n",
               (long long)s->sdpa_ws_bytes);
}

/* The buffers of each pass's first call, recorded in init's dry walk (the choice is timed
 * and cuDNN's graphs run once on them, hzcu_attention_warm) */
static void record_f1(cuda_state *s, struct hzcu_dnn_att *d, bf16 *out, float *lse, const bf16 *q,
                      const bf16 *k, const bf16 *v)
{
    if (!s->dry || d->f1_set) return;
    d->f1.out = out, d->f1.lse = lse, d->f1.q = q, d->f1.k = k, d->f1.v = v;
    d->f1_set = 1;
}
static void record_b1(cuda_state *s, struct hzcu_dnn_att *d, bf16 *dq, bf16 *dk, bf16 *dv,
                      const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                      const bf16 *out, const float *lse, float *D)
{
    if (!s->dry || d->b1_set) return;
    d->b1.dq = dq, d->b1.dk = dk, d->b1.dv = dv, d->b1.dout = dout, d->b1.q = q;
    d->b1.k = k, d->b1.v = v, d->b1.out = out, d->b1.lse = lse, d->b1.D = D;
    d->b1_set = 1;
}

/* A failed execution (a plan that finalised but will not run): said once, that kind of
 * layer's cuDNN dropped. */
static int give_up(struct hzcu_dnn_att *d, const char *why)
{
    fprintf(stderr, "train: warning: %s; attention falls back to hzc's kernels\n", why);
    d->fwd = d->bwd = 0;
    return 0;
}

int hzcu_dnn_attention_forward(cuda_state *s, cudaStream_t st, int window, bf16 *out, float *lse,
                               const bf16 *q, const bf16 *k, const bf16 *v, double flops)
{
    struct hzcu_dnn_att *d = &s->dnn[window > 0];
    if (!d->fwd || d->hopper) return 0;
    char why[1024];
    record_f1(s, d, out, lse, q, k, v);
    if (!s->dry && hzcu_sdpa_forward(d->a, st, out, lse, q, k, v, why, sizeof why) != 0)
        return give_up(d, why);
    if (s->prof_on) hzcu_prof_mark(s, st, hz_kc(HZ_KR_ATT_FWD, flops, 0.0));
    return 1;
}

int hzcu_dnn_attention_backward(cuda_state *s, cudaStream_t st, int window, bf16 *dq, bf16 *dk,
                                bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                                const bf16 *v, const bf16 *out, const float *lse, float *D,
                                double flops)
{
    struct hzcu_dnn_att *d = &s->dnn[window > 0];
    if (!d->bwd || d->hopper_bwd) return 0;
    char why[1024];
    record_b1(s, d, dq, dk, dv, dout, q, k, v, out, lse, D);
    if (!s->dry &&
        hzcu_sdpa_backward(d->a, st, dq, dk, dv, dout, q, k, v, out, lse, D, why, sizeof why) != 0)
        return give_up(d, why);
    if (s->prof_on) hzcu_prof_mark(s, st, hz_kc(HZ_KR_ATT_BWD, flops, 0.0));
    return 1;
}

/* hzc's Hopper kernels fit the full-attention layers: an sm_90 GPU, head_dim 128; the
 * backward's lse and D maps take rows of a multiple of 16 bytes */
static int hopper_fits(const cuda_state *s, int bwd)
{
    return s->wgmma && s->HD == HZ_ATT_WG_HD && (!bwd || s->T % 4 == 0);
}

/* The grid of a Hopper kernel over ITEMS: a block an item, or (CHOICE 2) persistent blocks */
static int64_t hopper_grid(const cuda_state *s, int choice, int64_t items)
{
    return choice == 2 && items > s->sm_count ? s->sm_count : items;
}

int hzcu_hopper_attention_forward(cuda_state *s, cudaStream_t st, int window, bf16 *out,
                                  float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                                  double flops)
{
    struct hzcu_dnn_att *d = &s->dnn[0];
    if (window > 0 || !hopper_fits(s, 0)) return 0;
    record_f1(s, d, out, lse, q, k, v);
    if (!d->hopper) return 0;
    int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    float scale = s->att_scale;
    CUtensorMap tq, tk, tv;
    CU_CHECK(hzcu_tmap_heads(&tq, (CUdeviceptr)(uintptr_t)q, B, T, NH, HD, HZ_ATT_WG_BM / 2));
    CU_CHECK(hzcu_tmap_heads(&tk, (CUdeviceptr)(uintptr_t)k, B, T, NKV, HD, HZ_ATT_WG_BN));
    CU_CHECK(hzcu_tmap_heads(&tv, (CUdeviceptr)(uintptr_t)v, B, T, NKV, HD, HZ_ATT_WG_BN));
    void *args[] = {&out, &lse, &tq, &tk, &tv, &B, &T, &NH, &NKV, &HD, &scale, &window};
    const int64_t items = (int64_t)(T + HZ_ATT_WG_BM - 1) / HZ_ATT_WG_BM * B * NH;
    hzcu_launch(s, K_ATT_FWD_TMA, st, hopper_grid(s, d->hopper, items), 1, HZ_ATT_WS_THREADS,
                hzcu_smem(s, K_ATT_FWD_TMA), args, hz_kc(HZ_KR_ATT_FWD, flops, 0.0));
    return 1;
}

int hzcu_hopper_attention_backward(cuda_state *s, cudaStream_t st, int window, bf16 *dq, bf16 *dk,
                                   bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                                   const bf16 *v, const bf16 *out, const float *lse, float *D)
{
    struct hzcu_dnn_att *d = &s->dnn[0];
    if (window > 0 || !hopper_fits(s, 1)) return 0;
    record_b1(s, d, dq, dk, dv, dout, q, k, v, out, lse, D);
    if (!d->hopper_bwd) return 0;
    int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    float scale = s->att_scale;
    CUtensorMap tq, tk, tv, tdo, tl, td;
    CU_CHECK(hzcu_tmap_heads(&tq, (CUdeviceptr)(uintptr_t)q, B, T, NH, HD, 64));
    CU_CHECK(hzcu_tmap_heads(&tk, (CUdeviceptr)(uintptr_t)k, B, T, NKV, HD, 64));
    CU_CHECK(hzcu_tmap_heads(&tv, (CUdeviceptr)(uintptr_t)v, B, T, NKV, HD, 64));
    CU_CHECK(hzcu_tmap_heads(&tdo, (CUdeviceptr)(uintptr_t)dout, B, T, NH, HD, 64));
    CU_CHECK(hzcu_tmap_rows(&tl, (CUdeviceptr)(uintptr_t)lse, B * NH, T, 64));
    CU_CHECK(hzcu_tmap_rows(&td, (CUdeviceptr)(uintptr_t)D, B * NH, T, 64));
    const hz_kcost more = {HZ_KR_ATT_BWD, 0, 0.0, 0.0}; /* the pass counted with the preprocess */
    const int64_t tiles = (T + 127) / 128;
    void *kv[] = {&dk, &dv, &tq, &tk, &tv, &tdo, &tl, &td, &B, &T, &NH, &NKV, &HD, &scale, &window};
    hzcu_launch(s, K_ATT_BWD_KV_WG, st, hopper_grid(s, d->hopper_bwd, tiles * B * NKV), 1,
                HZ_ATT_WB_THREADS, hzcu_smem(s, K_ATT_BWD_KV_WG), kv, more);
    void *qa[] = {&dq, &lse, &D, &tq, &tk, &tv, &tdo, &B, &T, &NH, &NKV, &HD, &scale, &window};
    hzcu_launch(s, K_ATT_BWD_Q_WG, st, hopper_grid(s, d->hopper_bwd, tiles * B * NH), 1,
                HZ_ATT_WB_THREADS, hzcu_smem(s, K_ATT_BWD_Q_WG), qa, more);
    return 1;
}

/* One pass's first call, as the step makes it (BWD: the backward) */
static void first_call(cuda_state *s, cudaStream_t st, int bwd)
{
    struct hzcu_dnn_att *d = &s->dnn[0];
    if (!bwd) {
        hzcu_attention_forward(s, st, d->f1.out, d->f1.lse, d->f1.q, d->f1.k, d->f1.v, 0);
        return;
    }
    hzcu_attention_backward(s, st, d->b1.dq, d->b1.dk, d->b1.dv, d->b1.dout, d->b1.q, d->b1.k,
                            d->b1.v, d->b1.out, d->b1.lse, d->b1.D, 0);
}

/* The full-attention layers' pass (BWD: the backward): the fastest of what was chosen before
 * (cuDNN's or hzc's FlashAttention-2, not under --deterministic) and hzc's Hopper kernels a
 * block an item or persistent, each timed over 3 calls after one on the step's first call's
 * buffers. The outputs written are ones the step writes before it reads them. */
static void hopper_choose(cuda_state *s, int bwd)
{
    struct hzcu_dnn_att *d = &s->dnn[0];
    if (!hopper_fits(s, bwd) || !(bwd ? d->b1_set : d->f1_set)) return;
    int *choice = bwd ? &d->hopper_bwd : &d->hopper;
    cudaStream_t st = s->stream[HZ_COMPUTE];
    const char *what[3] = {(bwd ? d->bwd : d->fwd) ? "cuDNN's" : "hzc's FlashAttention-2",
                           "hzc's Hopper kernel, a block an item", "hzc's Hopper kernel, persistent"};
    float ms[3] = {0};
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    const int c0 = s->det ? 1 : 0;
    int best = c0;
    for (int c = c0; c < 3; c++) {
        *choice = c;
        for (int r = 0; r <= 3; r++) {
            if (r == 1) CUDA_CHECK(cudaEventRecord(e0, st));
            first_call(s, st, bwd);
        }
        CUDA_CHECK(cudaEventRecord(e1, st));
        CUDA_CHECK(cudaEventSynchronize(e1));
        CUDA_CHECK(cudaEventElapsedTime(&ms[c], e0, e1));
        ms[c] /= 3;
        if (ms[c] < ms[best]) best = c;
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    *choice = best;
    printf("cuda backend: attention %s, full-attention layers: %s (timed at init: ",
           bwd ? "backward" : "forward", what[best]);
    for (int c = c0; c < 3; c++) printf("%s%s %.3f ms", c > c0 ? "; " : "", what[c], ms[c]);
    printf("%s)\n", s->det ? "; --deterministic leaves out the others, whose bits differ" : "");
}

void hzcu_attention_warm(cuda_state *s)
{
    hopper_choose(s, 0);
    hopper_choose(s, 1);
    double t0 = hz_now_s();
    cudaStream_t st = s->stream[HZ_COMPUTE];
    int n = 0;
    for (int i = 0; i < 2; i++) { /* the passes' own calls: after the walk, they issue */
        struct hzcu_dnn_att *d = &s->dnn[i];
        if (d->fwd && d->f1_set)
            n += hzcu_dnn_attention_forward(s, st, i, d->f1.out, d->f1.lse, d->f1.q, d->f1.k,
                                            d->f1.v, 0.0);
        if (d->bwd && d->b1_set)
            n += hzcu_dnn_attention_backward(s, st, i, d->b1.dq, d->b1.dk, d->b1.dv, d->b1.dout,
                                             d->b1.q, d->b1.k, d->b1.v, d->b1.out, d->b1.lse,
                                             d->b1.D, 0.0);
    }
    if (n == 0) return;
    CUDA_CHECK(cudaStreamSynchronize(st));
    printf("cuda backend: cuDNN's %d attention graph%s run once at init (their kernels load at a "
           "first run) in %.2f s\n", n, n == 1 ? "" : "s", hz_now_s() - t0);
}

const char *hzcu_attention_name(const cuda_state *s, int window)
{
    const struct hzcu_dnn_att *d = &s->dnn[window > 0];
    /* each pass: 0 hzc's FlashAttention-2, 1 cuDNN, 2 hzc's Hopper */
    const int f = d->hopper ? 2 : d->fwd, b = d->hopper_bwd ? 2 : d->bwd;
    static const char *const same[3] = {"hzc's kernels", "cuDNN fused SDPA", "hzc's Hopper kernels"};
    static const char *const mixed[3][3] = {
        {"", "forward hzc's FlashAttention-2, backward cuDNN", "forward hzc's FlashAttention-2, backward hzc's Hopper"},
        {"cuDNN fused SDPA forward, hzc's backward", "", "forward cuDNN, backward hzc's Hopper"},
        {"forward hzc's Hopper, backward hzc's FlashAttention-2", "forward hzc's Hopper, backward cuDNN", ""}};
    return f == b ? same[f] : mixed[f][b];
}

void hzcu_attention_free(cuda_state *s)
{
    for (int i = 0; i < 2; i++) {
        hzcu_sdpa_destroy(s->dnn[i].a);
        s->dnn[i] = (struct hzcu_dnn_att){0};
    }
}
