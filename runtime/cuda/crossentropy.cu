/* runtime/cuda/crossentropy.cu - softmax cross-entropy, forward and backward fused.
 * logits, dlogits (N, V) bf16; targets (N) int32; losses (N) fp32. All math in fp32. */

template <int VEC>
__device__ __forceinline__ void hz_crossentropy_row(bf16 *dlogits, float *losses, const bf16 *logits,
                                                    const int *targets, int N, int V, float dscale) {
    const int nchunk = V / VEC;
    for (int row = blockIdx.x; row < N; row += gridDim.x) {
        const long base = (long)row * V;
        const int tgt = targets[row];
        if (tgt < 0 || tgt >= V) { /* -100: ignored token (the loader rejects other values) */
            const float zero[VEC] = {};
            for (int i = threadIdx.x; i < nchunk; i += blockDim.x) hz_storev<VEC>(dlogits + base + i * VEC, zero);
            if (threadIdx.x == 0) losses[row] = 0.0f;
            continue;
        }
        /* read before any thread writes the row: dlogits may alias logits */
        const float xt = threadIdx.x == 0 ? __bfloat162float(logits[base + tgt]) : 0.0f;
        /* pass 1: per-thread running max and sum of exp relative to it */
        float m = -HZ_INF, s = 0.0f;
        for (int i = threadIdx.x; i < nchunk; i += blockDim.x) {
            float x[VEC];
            hz_loadv<VEC>(x, logits + base + i * VEC);
            float cm = x[0];
#pragma unroll
            for (int e = 1; e < VEC; e++) cm = fmaxf(cm, x[e]);
            if (cm > m) s *= expf(m - cm), m = cm;
#pragma unroll
            for (int e = 0; e < VEC; e++) s += expf(x[e] - m);
        }
        const float M = hz_block_max(m);
        const float S = hz_block_sum(m == -HZ_INF ? 0.0f : s * expf(m - M));
        const float inv = 1.0f / S;
        if (threadIdx.x == 0) losses[row] = logf(S) + M - xt;
        /* pass 2: dlogits = (softmax - onehot) * dscale */
        for (int i = threadIdx.x; i < nchunk; i += blockDim.x) {
            float x[VEC];
            hz_loadv<VEC>(x, logits + base + i * VEC);
#pragma unroll
            for (int e = 0; e < VEC; e++) {
                const float p = expf(x[e] - M) * inv;
                x[e] = (p - (i * VEC + e == tgt ? 1.0f : 0.0f)) * dscale;
            }
            hz_storev<VEC>(dlogits + base + i * VEC, x);
        }
    }
}

/* losses[n] = -log softmax(logits[n])[targets[n]], 0 where targets[n] == -100;
 * dlogits[n, :] = (softmax(logits[n]) - onehot(targets[n])) * dscale, a zero row where ignored.
 * dlogits may alias logits (each element is read, then written, by the same thread).
 * Launch: grid min(N, 65535) (rows are grid-strided), block 1024 (any multiple of 32; fewer
 * for small V), no dynamic shared memory. The 8-wide vector path needs V % 8 == 0. */
extern "C" __global__ void hzk_crossentropy_forward_backward(bf16 *dlogits, float *losses,
                                                             const bf16 *logits, const int *targets,
                                                             int N, int V, float dscale) {
    if ((V & 7) == 0) hz_crossentropy_row<8>(dlogits, losses, logits, targets, N, V, dscale);
    else hz_crossentropy_row<1>(dlogits, losses, logits, targets, N, V, dscale);
}
