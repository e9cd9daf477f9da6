/* runtime/cpu/ops.h - the cpu backend's op families, forward and backward, in fp32.
 * These are the reference every CUDA kernel is tested against. Layout conventions:
 *   activations are row-major (N, C) with N = B*T tokens, token n at position n % T;
 *   a linear weight is (OUT, IN) as in PyTorch, y = x W^T + b;
 *   q is (N, NH*HD) = (B, T, NH, HD); k and v are (N, NKV*HD); lse is (B, NH, T).
 * Gradient contract: gradients of weights and biases ACCUMULATE (+=), so micro-batches
 * add up; gradients of inputs are OVERWRITTEN (=) unless the name says _acc. */
#ifndef HZ_CPU_OPS_H
#define HZ_CPU_OPS_H
#include <stddef.h>
#include <stdint.h>

/* embedding: out[n,:] = wte[tok[n],:]; backward scatter-adds dout rows into dwte. */
void embedding_forward(float *out, const int32_t *tok, const float *wte, int64_t N, int64_t C);
void embedding_backward(float *dwte, const float *dout, const int32_t *tok, int64_t N, int64_t C);
/* The same times SCALE: out = wte[tok] * scale, dwte += dout * scale. */
void embedding_scaled_forward(float *out, const int32_t *tok, const float *wte, int64_t N,
                              int64_t C, float scale);
void embedding_scaled_backward(float *dwte, const float *dout, const int32_t *tok, int64_t N,
                               int64_t C, float scale);

/* rmsnorm: out = (x * rstd) * w with rstd = 1/sqrt(mean(x^2) + eps), rstd (N) saved. */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int64_t N,
                     int64_t C, float eps);
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                      const float *w, const float *rstd, int64_t N, int64_t C);
/* The same with the weight taken as (OFFSET + w): OFFSET 1 is Gemma 3's x * (1 + w), whose
 * zero weights are the identity; OFFSET 0 is the two above. */
void rmsnorm_offset_forward(float *out, float *rstd, const float *inp, const float *w, int64_t N,
                            int64_t C, float eps, float offset);
void rmsnorm_offset_backward(float *dinp, float *dw, const float *dout, const float *inp,
                             const float *w, const float *rstd, int64_t N, int64_t C,
                             float offset);

/* matmul: out (N, OUT) = inp (N, IN) @ w^T + bias (bias may be NULL).
 * backward: dinp = dout @ w (dinp may be NULL to skip), dw += dout^T @ inp,
 * dbias += column sums of dout (dbias may be NULL). Multithreaded over rows. */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                    int64_t N, int64_t IN, int64_t OUT);
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, int64_t N, int64_t IN, int64_t OUT);
/* Its two halves, in the order it runs them (the same bits): dinp; then dw and dbias. */
void matmul_backward_x(float *dinp, const float *dout, const float *w, int64_t N, int64_t IN,
                       int64_t OUT);
void matmul_backward_w(float *dw, float *dbias, const float *dout, const float *inp,
                       int64_t N, int64_t IN, int64_t OUT);

/* rope: rotate each head of x (N, H*HD) in place, half-rotation as Hugging Face:
 * for i < HD/2, angle = pos * inv_freq[i], (x1, x2) = (x[i], x[i+HD/2]) ->
 * (x1 cos - x2 sin, x2 cos + x1 sin). backward applies the inverse rotation to dx in place. */
void rope_forward(float *x, const float *inv_freq, int64_t N, int64_t T, int64_t H, int64_t HD);
void rope_backward(float *dx, const float *inv_freq, int64_t N, int64_t T, int64_t H, int64_t HD);

/* causal grouped-query attention, scale HD^-0.5; query head h reads kv head h/(NH/NKV).
 * out (N, NH*HD), lse (B, NH, T) = log-sum-exp of the scaled scores of each query row.
 * backward: dq, dk, dv overwritten, using out and lse (no T x T matrix kept). */
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD);
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *out, const float *lse,
                        int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD);
/* The same with the scores scaled by SCALE and, with WINDOW > 0, sliding-window (local)
 * attention as transformers' Gemma 3 local layers: query t sees keys s with
 * t - WINDOW < s <= t (WINDOW 0: every s <= t). The two above are these with scale
 * HD^-0.5 and window 0. */
void attention_forward_window(float *out, float *lse, const float *q, const float *k,
                              const float *v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                              int64_t HD, float scale, int64_t window);
void attention_backward_window(float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *out,
                               const float *lse, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                               int64_t HD, float scale, int64_t window);

/* swiglu: h = silu(gate) * up, elementwise over n values. */
void swiglu_forward(float *h, const float *gate, const float *up, int64_t n);
void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate,
                     const float *up, int64_t n);

/* geglu: h = gelu_tanh(gate) * up, elementwise over n values (Gemma's MLP). */
void geglu_forward(float *h, const float *gate, const float *up, int64_t n);
void geglu_backward(float *dgate, float *dup, const float *dh, const float *gate,
                    const float *up, int64_t n);

/* residual: out = a + b (out may alias a). */
void residual_forward(float *out, const float *a, const float *b, int64_t n);

/* softmax cross-entropy over logits (N, V) with targets (N); target -100 is ignored.
 * losses[n] = -log softmax(logits[n])[target[n]] (0 when ignored);
 * dlogits[n,:] = (softmax - onehot) * dscale (0 rows when ignored); dlogits may alias logits.
 * Returns the sum of losses of the trained rows. */
double crossentropy_forward_backward(float *dlogits, float *losses, const float *logits,
                                     const int32_t *targets, int64_t N, int64_t V, float dscale);

/* How the ops' OpenMP threads wait between parallel regions, for the trainer's report, into
 * BUF (CAP bytes): GOMP_SPINCOUNT=1000 unless the user set it or OMP_WAIT_POLICY
 * (omp_wait.c). */
void cpu_omp_wait(char *buf, size_t cap);

#endif
