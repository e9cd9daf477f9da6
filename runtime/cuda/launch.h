/* runtime/cuda/launch.h - the typed kernel wrappers of launch.c: one per kernel family,
 * with the model's shape taken from the backend state where the kernel needs it. Shapes and
 * layouts are those of the kernels' .cu files (runtime/cuda/X.cu). */
#ifndef HZ_CUDA_LAUNCH_H
#define HZ_CUDA_LAUNCH_H
#include "cuda.h"

void hzcu_f32_to_bf16(cuda_state *s, cudaStream_t st, bf16 *out, const float *in, long n);
void hzcu_add_bf16(cuda_state *s, cudaStream_t st, bf16 *out, const bf16 *a, const bf16 *b, long n);
void hzcu_sumsq_f32(cuda_state *s, cudaStream_t st, double *acc, const float *x, long n);
/* dst (C) += the rows of part (G, C) in order: the second kernel of profile row ROW's work */
void hzcu_colsum_f32(cuda_state *s, cudaStream_t st, int row, float *dst, const float *part, int G,
                     int C);
/* One AdamW step of n master elements in place, fp32 gradients g; k from hz_adam_coef_of.
 * Gives the bits of the host's hz_adamw_range (runtime/cuda/adamw.cu). */
void hzcu_adamw(cuda_state *s, cudaStream_t st, uint16_t *w, int16_t *lo, float *m, float *v,
                const float *g, long n, const hz_adam_coef *k);
/* The same with compact moments (runtime/optstate.h) on elements [first, first + n) of arrays
 * indexed alike; g is float, or bf16 when grad_bf16; the count of non-finite scaled gradients
 * is added to the device counter *bad. Bits of the host's hz_qadamw_ref (runtime/cuda/
 * adamw_q.cu). bf16: m, v bf16 bits, seed and t of the stochastic rounding. int8: first a
 * multiple of HZ_OPTSTATE_BLOCK, codes mc (int8) and vc (uint8), absmaxes mabs, vabs. */
void hzcu_adamw_bf16state(cuda_state *s, cudaStream_t st, uint16_t *w, int16_t *lo, uint16_t *m,
                          uint16_t *v, const void *g, int grad_bf16, long first, long n,
                          uint64_t *bad, const hz_adam_coef *k, uint64_t seed, long t);
void hzcu_adamw_int8state(cuda_state *s, cudaStream_t st, uint16_t *w, int16_t *lo, int8_t *mc,
                          uint8_t *vc, float *mabs, float *vabs, const void *g, int grad_bf16,
                          long first, long n, uint64_t *bad, const hz_adam_coef *k);
void hzcu_embedding_forward(cuda_state *s, cudaStream_t st, bf16 *out, const int32_t *tok,
                            const bf16 *wte, int N, int C);
void hzcu_embedding_backward(cuda_state *s, cudaStream_t st, float *dwte, const bf16 *dout,
                             const int32_t *tok, int N, int C);
/* x = bf16(x * scale) over n elements: Gemma 3's embedding scale and its gradient, profiled
 * under ROW (runtime/kprof.h). */
void hzcu_scale_bf16(cuda_state *s, cudaStream_t st, int row, bf16 *x, float scale, long n);
/* The norm wrappers launch the model's kind: Gemma 3's (1 + w) kernels when
 * dims.norm_offset is set (rmsnorm.cu, qknorm.cu *1p), else the w ones. */
void hzcu_rmsnorm_forward(cuda_state *s, cudaStream_t st, bf16 *out, float *rstd, const bf16 *inp,
                          const bf16 *w, int N, int C, float eps);
void hzcu_residual_rmsnorm_forward(cuda_state *s, cudaStream_t st, bf16 *res_out, bf16 *out,
                                   float *rstd, const bf16 *a, const bf16 *b, const bf16 *w, int N,
                                   int C, float eps);
void hzcu_rmsnorm_backward(cuda_state *s, cudaStream_t st, bf16 *dinp, float *dw, const bf16 *dout,
                           const bf16 *inp, const bf16 *w, const float *rstd, const bf16 *dres,
                           int N, int C);
void hzcu_qkv_bias_rope(cuda_state *s, cudaStream_t st, bf16 *q, bf16 *k, bf16 *v, const bf16 *qkv,
                        const bf16 *bias, const float *inv_freq);
void hzcu_qkv_rope_backward(cuda_state *s, cudaStream_t st, bf16 *dqkv, float *dbias,
                            const bf16 *dq, const bf16 *dk, const bf16 *dv, const float *inv_freq);
/* qk_norm models (runtime/cuda/qknorm.cu): the per-head q/k norms and RoPE in one pass, and
 * its backward into the fused dqkv with dwq, dwk (fp32, HD each) accumulated. */
void hzcu_qk_norm_rope(cuda_state *s, cudaStream_t st, bf16 *q, bf16 *k, bf16 *v, bf16 *qpre,
                       bf16 *kpre, float *rstdq, float *rstdk, const bf16 *qkv, const bf16 *wq,
                       const bf16 *wk, const float *inv_freq);
void hzcu_qk_norm_rope_backward(cuda_state *s, cudaStream_t st, bf16 *dqkv, float *dwq, float *dwk,
                                const bf16 *dq, const bf16 *dk, const bf16 *dv, const bf16 *qpre,
                                const bf16 *kpre, const float *rstdq, const float *rstdk,
                                const bf16 *wq, const bf16 *wk, const float *inv_freq);
/* The MLP's gate over [gate | up]: SwiGLU (swiglu.cu), or GeGLU (geglu.cu) where the plan's
 * dims.geglu says (Gemma 3). */
void hzcu_glu_forward(cuda_state *s, cudaStream_t st, bf16 *h, const bf16 *gu);
void hzcu_glu_backward(cuda_state *s, cudaStream_t st, bf16 *dgu, const bf16 *dh,
                       const bf16 *gu);
void hzcu_crossentropy(cuda_state *s, cudaStream_t st, bf16 *dlogits, float *losses,
                       const bf16 *logits, const int32_t *targets, int N, int V, float dscale);
/* WINDOW: the block's sliding window (hz_unit.window; 0 = full causal). */
void hzcu_attention_forward(cuda_state *s, cudaStream_t st, bf16 *out, float *lse, const bf16 *q,
                            const bf16 *k, const bf16 *v, int window);
void hzcu_attention_backward(cuda_state *s, cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv,
                             const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                             const bf16 *out, const float *lse, float *D, int window);

#endif
