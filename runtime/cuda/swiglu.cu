/* runtime/cuda/swiglu.cu - the SwiGLU activation, forward and backward.
 * gu, dgu (N, 2F) bf16: the fused [gate | up] GEMM output, per row F gate values then F up
 * values; h, dh (N, F) bf16. Numerics as transformers: a = bf16(silu(gate)) in fp32, then
 * h = bf16(a * up). Backward: dup = bf16(dh * a), dgate = bf16(dh * up * silu'(gate)) in fp32.
 * Launch (both): block 256, grid ceil(N * F / 8 / 256) when F % 8 == 0, else
 * ceil(N * F / 256); any grid is correct (grid-stride loop over 8-wide chunks or elements). */

__device__ __forceinline__ float hz_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <int VEC>
__device__ __forceinline__ void hz_swiglu_fwd(bf16 *h, const bf16 *gu, long N, int F) {
    const long nchunk = N * (F / VEC);
    for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < nchunk; c += (long)gridDim.x * blockDim.x) {
        const long n = c / (F / VEC), j = (c - n * (F / VEC)) * VEC;
        const bf16 *gp = gu + n * 2 * F + j, *up = gp + F;
        float g[VEC], u[VEC], o[VEC];
        if constexpr (VEC == 8) hz_load8(g, gp), hz_load8(u, up);
        else g[0] = __bfloat162float(gp[0]), u[0] = __bfloat162float(up[0]);
#pragma unroll
        for (int e = 0; e < VEC; e++) o[e] = hz_round_bf16(g[e] * hz_sigmoid(g[e])) * u[e];
        if constexpr (VEC == 8) hz_store8(h + n * F + j, o);
        else h[n * F + j] = __float2bfloat16(o[0]);
    }
}

template <int VEC>
__device__ __forceinline__ void hz_swiglu_bwd(bf16 *dgu, const bf16 *dh, const bf16 *gu, long N, int F) {
    const long nchunk = N * (F / VEC);
    for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < nchunk; c += (long)gridDim.x * blockDim.x) {
        const long n = c / (F / VEC), j = (c - n * (F / VEC)) * VEC;
        const bf16 *gp = gu + n * 2 * F + j, *up = gp + F;
        float g[VEC], u[VEC], d[VEC], dg[VEC], du[VEC];
        if constexpr (VEC == 8) hz_load8(g, gp), hz_load8(u, up), hz_load8(d, dh + n * F + j);
        else g[0] = __bfloat162float(gp[0]), u[0] = __bfloat162float(up[0]),
             d[0] = __bfloat162float(dh[n * F + j]);
#pragma unroll
        for (int e = 0; e < VEC; e++) {
            const float sg = hz_sigmoid(g[e]);
            du[e] = d[e] * hz_round_bf16(g[e] * sg);
            dg[e] = d[e] * u[e] * sg * (1.0f + g[e] * (1.0f - sg));
        }
        bf16 *dgp = dgu + n * 2 * F + j;
        if constexpr (VEC == 8) hz_store8(dgp, dg), hz_store8(dgp + F, du);
        else dgp[0] = __float2bfloat16(dg[0]), dgp[F] = __float2bfloat16(du[0]);
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
