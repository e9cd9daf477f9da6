/* runtime/cuda/swiglu.cu - the SwiGLU activation, forward and backward.
 * gu, dgu (N, 2F) bf16: the fused [gate | up] GEMM output, per row F gate values then F up
 * values; h, dh (N, F) bf16. Numerics as transformers: a = bf16(silu(gate)) in fp32, then
 * h = bf16(a * up). Backward: dup = bf16(dh * a), dgate = bf16(dh * up * silu'(gate)) in fp32.
 * Launch (both): block 256, grid ceil(N * F / 8 / 256) when F % 8 == 0, else
 * ceil(N * F / 256); any grid is correct (grid-stride loop over 8-wide chunks or elements). */

__device__ __forceinline__ float hz_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <int VEC>
__device__ __forceinline__ void hz_swiglu_fwd(bf16 *h, const bf16 *gu, long N, int F) {
    const int FV = F / VEC;
    const long nchunk = N * FV;
    for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < nchunk; c += (long)gridDim.x * blockDim.x) {
        const long n = c / FV, j = (c - n * FV) * VEC;
        const bf16 *gp = gu + n * 2 * F + j;
        float g[VEC], u[VEC], o[VEC];
        hz_loadv<VEC>(g, gp);
        hz_loadv<VEC>(u, gp + F);
#pragma unroll
        for (int e = 0; e < VEC; e++) o[e] = hz_round_bf16(g[e] * hz_sigmoid(g[e])) * u[e];
        hz_storev<VEC>(h + n * F + j, o);
    }
}

template <int VEC>
__device__ __forceinline__ void hz_swiglu_bwd(bf16 *dgu, const bf16 *dh, const bf16 *gu, long N, int F) {
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
            const float sg = hz_sigmoid(g[e]);
            du[e] = d[e] * hz_round_bf16(g[e] * sg);
            dg[e] = d[e] * u[e] * sg * (1.0f + g[e] * (1.0f - sg));
        }
        hz_storev<VEC>(dgu + n * 2 * F + j, dg);
        hz_storev<VEC>(dgu + n * 2 * F + j + F, du);
    }
}

/* h = bf16(bf16(silu(gate)) * up). */
extern "C" __global__ void hzk_swiglu_forward(bf16 *h, const bf16 *gu, long N, int F) {
    if ((F & 7) == 0) hz_swiglu_fwd<8>(h, gu, N, F);
    else hz_swiglu_fwd<1>(h, gu, N, F);
}

/* dgu = [dgate | dup]; dgu may alias gu (each chunk is read before it is written, by the
 * same thread). */
extern "C" __global__ void hzk_swiglu_backward(bf16 *dgu, const bf16 *dh, const bf16 *gu, long N, int F) {
    if ((F & 7) == 0) hz_swiglu_bwd<8>(dgu, dh, gu, N, F);
    else hz_swiglu_bwd<1>(dgu, dh, gu, N, F);
}
