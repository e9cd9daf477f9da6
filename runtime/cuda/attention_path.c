/* runtime/cuda/attention_path.c - which attention a trainer runs: cuDNN's fused SDPA
 * (runtime/cuda/cudnn_attention.c) for the full-attention layers when train --attention and
 * --deterministic allow it and cuDNN accepts the shape, else hzc's own flash kernels
 * (attention.cu). The two write the same out and lse, so a pass may use either. */
#include <stdio.h>

#include "cuda.h"
#include "cudnn_attention.h"

/* A layer with full causal attention: cuDNN is only given those (sliding windows: hzc). */
static int has_full_attention(const hz_plan *p)
{
    return p->dims.window == 0 || p->dims.window_n < p->dims.L;
}

void hzcu_attention_choose(cuda_state *s, int mode)
{
    char why[1024] = "";
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
    if (!has_full_attention(s->p)) {
        printf("cuda backend: attention: hzc's kernels (every layer has a sliding window)\n");
        return;
    }
    s->sdpa = hzcu_sdpa_create(s->B, s->T, s->NH, s->NKV, s->HD, s->att_scale, 1, why, sizeof why);
    if (!s->sdpa) {
        /* auto settles for hzc's kernels quietly (one line, the reason); asking for cuDNN by
         * name and not getting it is a warning */
        printf("cuda backend: attention: hzc's kernels (cuDNN not used: %s)\n", why);
        if (mode == HZ_ATTENTION_CUDNN)
            fprintf(stderr, "train: warning: cuDNN attention unavailable, using hzc's kernels: "
                            "%s\n", why);
        return;
    }
    s->att_fwd_dnn = 1;
    s->att_bwd_dnn = hzcu_sdpa_has_backward(s->sdpa);
    s->sdpa_ws_bytes = hzcu_sdpa_workspace_bytes(s->sdpa);
    printf("cuda backend: attention: %s, fused SDPA forward%s%s; cuDNN workspace %lld bytes%s\n",
           hzcu_sdpa_describe(s->sdpa), s->att_bwd_dnn ? " and backward" : "",
           s->att_bwd_dnn ? "" : " (backward: hzc's kernels)", (long long)s->sdpa_ws_bytes,
           s->p->dims.window > 0 ? "; sliding-window layers: hzc's kernels" : "");
    if (!s->att_bwd_dnn && mode == HZ_ATTENTION_CUDNN)
        fprintf(stderr, "train: warning: cuDNN attention backward unavailable, using hzc's "
                        "kernels for it: %s\n",
                hzcu_sdpa_backward_why(s->sdpa));
    else if (!s->att_bwd_dnn)
        printf("cuda backend: attention backward: hzc's kernels (%s)\n",
               hzcu_sdpa_backward_why(s->sdpa));
}

/* A failed execution (a plan that finalised but will not run): said once, cuDNN dropped. */
static int give_up(cuda_state *s, const char *why)
{
    fprintf(stderr, "train: warning: %s; attention falls back to hzc's kernels\n", why);
    s->att_fwd_dnn = s->att_bwd_dnn = 0;
    return 0;
}

int hzcu_dnn_attention_forward(cuda_state *s, cudaStream_t st, bf16 *out, float *lse,
                               const bf16 *q, const bf16 *k, const bf16 *v, double flops)
{
    if (!s->att_fwd_dnn) return 0;
    char why[1024];
    if (!s->dry && hzcu_sdpa_forward(s->sdpa, st, out, lse, q, k, v, why, sizeof why) != 0)
        return give_up(s, why);
    if (s->prof_on) hzcu_prof_mark(s, st, hz_kc(HZ_KR_ATT_FWD, flops, 0.0));
    return 1;
}

int hzcu_dnn_attention_backward(cuda_state *s, cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv,
                                const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                                const bf16 *out, const float *lse, float *D, double flops)
{
    if (!s->att_bwd_dnn) return 0;
    char why[1024];
    if (!s->dry &&
        hzcu_sdpa_backward(s->sdpa, st, dq, dk, dv, dout, q, k, v, out, lse, D, why, sizeof why) != 0)
        return give_up(s, why);
    if (s->prof_on) hzcu_prof_mark(s, st, hz_kc(HZ_KR_ATT_BWD, flops, 0.0));
    return 1;
}

const char *hzcu_attention_name(const cuda_state *s, int window)
{
    if (window > 0 || !s->att_fwd_dnn) return "hzc's kernels";
    return s->att_bwd_dnn ? "cuDNN fused SDPA" : "cuDNN fused SDPA forward, hzc's backward";
}

void hzcu_attention_free(cuda_state *s)
{
    hzcu_sdpa_destroy(s->sdpa);
    s->sdpa = NULL;
}
