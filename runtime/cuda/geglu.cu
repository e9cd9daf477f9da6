/* runtime/cuda/geglu.cu - the GeGLU activation of Gemma's MLP (gelu with the tanh
 * approximation), forward and backward; the layout and launch of swiglu.cu.
 * gu, dgu (N, 2F) bf16: the fused [gate | up] GEMM output, per row F gate values then F up
 * values; h, dh (N, F) bf16. Numerics as transformers' gelu_pytorch_tanh on bf16: a =
 * bf16(gelu_tanh(gate)) computed in fp32, then h = bf16(a * up). Backward: dup = bf16(dh * a),
 * dgate = bf16(dh * up * gelu_tanh'(gate)) in fp32.
 * Launch (both): block 256, grid ceil(N * F / 8 / 256) when F % 8 == 0, else
 * ceil(N * F / 256); any grid is correct (grid-stride loop over 8-wide chunks or elements). */

#define HZ_GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define HZ_GELU_C 0.044715f

/* tanh(sqrt(2/pi) (g + 0.044715 g^3)) */
__device__ __forceinline__ float hz_gelu_t(float g) { return tanhf(HZ_GELU_K * (g + HZ_GELU_C * g * g * g)); }

template <int VEC>
__device__ __forceinline__ void hz_geglu_fwd(bf16 *h, const bf16 *gu, long N, int F) {
    const int FV = F / VEC;
    const long nchunk = N * FV;
    for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < nchunk; c += (long)gridDim.x * blockDim.x) {
        const long n = c / FV, j = (c - n * FV) * VEC;
        const bf16 *gp = gu + n * 2 * F + j;
        float g[VEC], u[VEC], o[VEC];
        hz_loadv<VEC>(g, gp);
        hz_loadv<VEC>(u, gp + F);
#pragma unroll
        for (int e = 0; e < VEC; e++) o[e] = hz_round_bf16(0.5f * g[e] * (1.0f + hz_gelu_t(g[e]))) * u[e];
        hz_storev<VEC>(h + n * F + j, o);
    }
}

template <int VEC>
__device__ __forceinline__ void hz_geglu_bwd(bf16 *dgu, const bf16 *dh, const bf16 *gu, long N, int F) {
    const int FV = F / VEC;
    const long nchunk = N * FV;
    for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < nchunk; c += (long)gridDim.x * blockDim.x) {
        const long n = c / FV, j = (c - n * FV) * VEC;
        const bf16 *gp = gu + n * 2 * F + j;
        float g[VEC], u[VEC], d[VEC], dg[VEC], du[VEC];
        hz_loadv<VEC>(g, gp);
        hz_loadv<VEC>(u, gp + F);
        hz_loadv<VEC>(d, dh + n * F + j);
#pragma unroll
        for (int e = 0; e < VEC; e++) {
            const float t = hz_gelu_t(g[e]);
            const float slope = 0.5f * (1.0f + t) +
                                0.5f * g[e] * (1.0f - t * t) * HZ_GELU_K * (1.0f + 3.0f * HZ_GELU_C * g[e] * g[e]);
            du[e] = d[e] * hz_round_bf16(0.5f * g[e] * (1.0f + t));
            dg[e] = d[e] * u[e] * slope;
        }
        hz_storev<VEC>(dgu + n * 2 * F + j, dg);
        hz_storev<VEC>(dgu + n * 2 * F + j + F, du);
    }
}

/* h = bf16(bf16(gelu_tanh(gate)) * up). */
extern "C" __global__ void hzk_geglu_forward(bf16 *h, const bf16 *gu, long N, int F) {
    if ((F & 7) == 0) hz_geglu_fwd<8>(h, gu, N, F);
    else hz_geglu_fwd<1>(h, gu, N, F);
}

/* dgu = [dgate | dup]; dgu may alias gu (each chunk is read before it is written, by the
 * same thread). */
extern "C" __global__ void hzk_geglu_backward(bf16 *dgu, const bf16 *dh, const bf16 *gu, long N, int F) {
    if ((F & 7) == 0) hz_geglu_bwd<8>(dgu, dh, gu, N, F);
    else hz_geglu_bwd<1>(dgu, dh, gu, N, F);
}
