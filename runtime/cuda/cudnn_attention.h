/* runtime/cuda/cudnn_attention.h - causal grouped-query attention by cuDNN's fused flash
 * attention (scaled dot-product attention, SDPA), forward and backward, on hzc's own buffers
 * and in the conventions of runtime/cuda/attention.cu, so either path may run either pass:
 *   q, out, dout, dq (B, T, NH, HD) bf16; k, v, dk, dv (B, T, NKV, HD) bf16;
 *   lse (B, NH, T) fp32, natural-log log-sum-exp of each row's scaled scores;
 *   D (B, NH, T) fp32 scratch of the backward (rowsum(dout * out), as hzc's preprocess).
 * The graphs are built once per shape (B, T, NH, NKV, HD, the scale and window are fixed for
 * a trainer); a call only passes pointers. Without cuDNN's headers at build time (configure)
 * every call answers "not available", and the trainer keeps hzc's kernels. */
#ifndef HZ_CUDA_CUDNN_ATTENTION_H
#define HZ_CUDA_CUDNN_ATTENTION_H
#include <stddef.h>
#include <stdint.h>

struct CUstream_st; /* cudaStream_t and CUstream alike */
typedef struct hzcu_sdpa hzcu_sdpa;

/* Load cuDNN and build the forward graph and (WANT_BWD) the backward graph for this shape:
 * causal attention with scores scaled by SCALE, over the whole prefix (WINDOW 0) or over a
 * sliding window of WINDOW keys (query t sees t - WINDOW + 1 .. t, as attention.cu). NULL with the reason in WHY when cuDNN
 * is not there or refuses the forward graph; a refused backward leaves has_backward 0 with
 * its reason kept for hzcu_sdpa_backward_why. */
hzcu_sdpa *hzcu_sdpa_create(int B, int T, int NH, int NKV, int HD, float scale, int window,
                            int want_bwd, char *why, size_t why_n);
int hzcu_sdpa_has_backward(const hzcu_sdpa *a);
const char *hzcu_sdpa_backward_why(const hzcu_sdpa *a);
/* "cuDNN 9.x.y from PATH", for the start-up line. */
const char *hzcu_sdpa_describe(const hzcu_sdpa *a);
/* Device bytes either pass needs beside its tensors: the larger plan's workspace, and for
 * the backward its fp32 dq accumulator (B, NH, T, HD). The caller allocates them once
 * (cuDNN's workspace, outside the plan's arena) and hands them over. */
int64_t hzcu_sdpa_workspace_bytes(const hzcu_sdpa *a);
void hzcu_sdpa_set_workspace(hzcu_sdpa *a, void *ws);
/* out, lse from q, k, v on stream ST. 0, or -1 with cuDNN's error in WHY. */
int hzcu_sdpa_forward(hzcu_sdpa *a, struct CUstream_st *st, void *out, float *lse,
                      const void *q, const void *k, const void *v, char *why, size_t why_n);
/* dq, dk, dv (overwritten; dk, dv summed over the query heads of each kv head) from dout
 * and the forward's q, k, v, out, lse; D is scratch. 0, or -1 with the reason in WHY. */
int hzcu_sdpa_backward(hzcu_sdpa *a, struct CUstream_st *st, void *dq, void *dk, void *dv,
                       const void *dout, const void *q, const void *k, const void *v,
                       const void *out, const float *lse, float *D, char *why, size_t why_n);
void hzcu_sdpa_destroy(hzcu_sdpa *a);

#endif
