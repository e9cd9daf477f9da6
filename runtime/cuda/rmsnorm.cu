/* runtime/cuda/rmsnorm.cu - RMSNorm (with the fused residual add), forward and backward.
 * inp, out, res_out, a, b, dout, dinp, dres (N, C) bf16; w (C) bf16; rstd (N) fp32;
 * dw (C) fp32, accumulated. Numerics as Hugging Face LlamaRMSNorm: rstd and x * rstd in fp32,
 * x * rstd rounded to bf16, then multiplied by w and rounded again; the *1p kernels as
 * Gemma3RMSNorm: x * rstd * (1 + w) in fp32, rounded once (its zero weights are the identity).
 * Every kernel takes a 16-byte vector path when C % 8 == 0 and a scalar path otherwise. */

/* One row per block iteration; a thread handles VEC-wide chunks tid, tid + blockDim, ... */
template <int VEC, int ONEP>
__device__ __forceinline__ void hz_rmsnorm_rows(bf16 *res_out, bf16 *out, float *rstd,
                                                const bf16 *a, const bf16 *b, const bf16 *w,
                                                int N, int C, float eps) {
    const int nchunk = C / VEC;
    for (int row = blockIdx.x; row < N; row += gridDim.x) {
        const long base = (long)row * C;
        const bf16 *x = a + base; /* the row to normalise: a, or res_out after the add */
        float ss = 0.0f;
        for (int i = threadIdx.x; i < nchunk; i += blockDim.x) {
            float v[VEC];
            hz_loadv<VEC>(v, a + base + i * VEC);
            if (b) {
                float u[VEC];
                hz_loadv<VEC>(u, b + base + i * VEC);
#pragma unroll
                for (int e = 0; e < VEC; e++) v[e] = hz_round_bf16(v[e] + u[e]);
                hz_storev<VEC>(res_out + base + i * VEC, v);
            }
#pragma unroll
            for (int e = 0; e < VEC; e++) ss += v[e] * v[e];
        }
        if (b) x = res_out + base; /* each thread re-reads only what it wrote itself */
        const float r = rsqrtf(hz_block_sum(ss) / (float)C + eps);
        if (threadIdx.x == 0) rstd[row] = r;
        for (int i = threadIdx.x; i < nchunk; i += blockDim.x) {
            float v[VEC], wv[VEC];
            hz_loadv<VEC>(v, x + i * VEC);
            hz_loadv<VEC>(wv, w + i * VEC);
#pragma unroll
            for (int e = 0; e < VEC; e++)
                v[e] = ONEP ? (1.0f + wv[e]) * (v[e] * r) : wv[e] * hz_round_bf16(v[e] * r);
            hz_storev<VEC>(out + base + i * VEC, v);
        }
    }
}

/* out = bf16(w * bf16(inp * rstd)), rstd[n] = 1/sqrt(mean(inp[n]^2) + eps).
 * Launch: block 256 (any multiple of 32 up to 1024; 128 when C <= 1024), grid min(N, 65535)
 * (rows are grid-strided), no dynamic shared memory. out may alias inp. */
extern "C" __global__ void hzk_rmsnorm_forward(bf16 *out, float *rstd, const bf16 *inp,
                                               const bf16 *w, int N, int C, float eps) {
    if ((C & 7) == 0) hz_rmsnorm_rows<8, 0>(nullptr, out, rstd, inp, nullptr, w, N, C, eps);
    else hz_rmsnorm_rows<1, 0>(nullptr, out, rstd, inp, nullptr, w, N, C, eps);
}

/* res_out = bf16(a + b) (the residual stream), then out, rstd = rmsnorm(res_out) as above.
 * Launch as hzk_rmsnorm_forward. res_out may alias a or b; out must not alias res_out. */
extern "C" __global__ void hzk_residual_rmsnorm_forward(bf16 *res_out, bf16 *out, float *rstd,
                                                        const bf16 *a, const bf16 *b,
                                                        const bf16 *w, int N, int C, float eps) {
    if ((C & 7) == 0) hz_rmsnorm_rows<8, 0>(res_out, out, rstd, a, b, w, N, C, eps);
    else hz_rmsnorm_rows<1, 0>(res_out, out, rstd, a, b, w, N, C, eps);
}

/* dw: the block's column sums are added with atomics (part == 0) or stored to row blockIdx.x
 * of a (gridDim.x, C) array of partial sums (part == 1). */
template <int VEC, int ONEP>
__device__ __forceinline__ void hz_rmsnorm_backward_rows(bf16 *dinp, float *dw, int part,
                                                         const bf16 *dout, const bf16 *inp,
                                                         const bf16 *w, const float *rstd,
                                                         const bf16 *dres, int N, int C) {
    extern __shared__ __align__(16) unsigned char hz_dyn_smem[];
    float *dw_part = reinterpret_cast<float *>(hz_dyn_smem); /* (C), column c owned by one thread */
    const int nchunk = C / VEC;
    for (int i = threadIdx.x; i < nchunk; i += blockDim.x)
#pragma unroll
        for (int e = 0; e < VEC; e++) dw_part[i * VEC + e] = 0.0f;
    for (int row = blockIdx.x; row < N; row += gridDim.x) {
        const long base = (long)row * C;
        const float r = rstd[row];
        /* dot = sum_j dout_j w_j x_j; the gradient is r * (g - xhat * r * dot / C). */
        float dot = 0.0f;
        for (int i = threadIdx.x; i < nchunk; i += blockDim.x) {
            float g[VEC], x[VEC], wv[VEC];
            hz_loadv<VEC>(g, dout + base + i * VEC);
            hz_loadv<VEC>(x, inp + base + i * VEC);
            hz_loadv<VEC>(wv, w + i * VEC);
#pragma unroll
            for (int e = 0; e < VEC; e++) dot += g[e] * (ONEP ? 1.0f + wv[e] : wv[e]) * x[e];
        }
        const float m = hz_block_sum(dot) * r / (float)C; /* mean(g * xhat) */
        for (int i = threadIdx.x; i < nchunk; i += blockDim.x) {
            float g[VEC], x[VEC], wv[VEC], d[VEC];
            hz_loadv<VEC>(g, dout + base + i * VEC);
            hz_loadv<VEC>(x, inp + base + i * VEC);
            hz_loadv<VEC>(wv, w + i * VEC);
            if (dres) hz_loadv<VEC>(d, dres + base + i * VEC);
            else {
#pragma unroll
                for (int e = 0; e < VEC; e++) d[e] = 0.0f;
            }
#pragma unroll
            for (int e = 0; e < VEC; e++) {
                const float xhat = x[e] * r;
                dw_part[i * VEC + e] += g[e] * xhat;
                d[e] += r * (g[e] * (ONEP ? 1.0f + wv[e] : wv[e]) - xhat * m);
            }
            hz_storev<VEC>(dinp + base + i * VEC, d);
        }
    }
    float *dst = dw + (part ? (long)blockIdx.x * C : 0);
    for (int i = threadIdx.x; i < nchunk; i += blockDim.x)
#pragma unroll
        for (int e = 0; e < VEC; e++) {
            if (part) dst[i * VEC + e] = dw_part[i * VEC + e];
            else atomicAdd(dst + i * VEC + e, dw_part[i * VEC + e]);
        }
}

/* dinp = rmsnorm'(dout) (+ dres when dres != NULL); dw += sum over rows of dout * inp * rstd.
 * Each block takes rows blockIdx.x, += gridDim.x, keeps its share of dw in shared memory (each
 * column owned by one thread, so no shared atomics) and adds it to dw with one fp32 atomicAdd
 * per column at the end: dw is not bit-deterministic across runs.
 * Launch: block 256 (multiple of 32, <= 1024), grid min(N, 8 * number of SMs), dynamic shared
 * memory C * 4 bytes (above 48 KiB, i.e. C > 12288, raise the kernel's
 * CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES first). dinp may alias dout or dres. */
extern "C" __global__ void hzk_rmsnorm_backward(bf16 *dinp, float *dw, const bf16 *dout,
                                                const bf16 *inp, const bf16 *w, const float *rstd,
                                                const bf16 *dres, int N, int C) {
    if ((C & 7) == 0) hz_rmsnorm_backward_rows<8, 0>(dinp, dw, 0, dout, inp, w, rstd, dres, N, C);
    else hz_rmsnorm_backward_rows<1, 0>(dinp, dw, 0, dout, inp, w, rstd, dres, N, C);
}

/* As hzk_rmsnorm_backward, but each block stores its column sums of dout * inp * rstd to
 * dw_part[blockIdx.x, :] ((gridDim.x, C) fp32, overwritten) instead of adding them to dw;
 * hzk_colsum_f32 then adds the rows in order: the deterministic path. Launch as
 * hzk_rmsnorm_backward. */
extern "C" __global__ void hzk_rmsnorm_backward_part(bf16 *dinp, float *dw_part, const bf16 *dout,
                                                     const bf16 *inp, const bf16 *w,
                                                     const float *rstd, const bf16 *dres, int N,
                                                     int C) {
    if ((C & 7) == 0)
        hz_rmsnorm_backward_rows<8, 0>(dinp, dw_part, 1, dout, inp, w, rstd, dres, N, C);
    else
        hz_rmsnorm_backward_rows<1, 0>(dinp, dw_part, 1, dout, inp, w, rstd, dres, N, C);
}

/* ---- Gemma 3: out = bf16((1 + w) * (inp * rstd)); the same launches, aliasing and dw ---- */
extern "C" __global__ void hzk_rmsnorm1p_forward(bf16 *out, float *rstd, const bf16 *inp,
                                                 const bf16 *w, int N, int C, float eps) {
    if ((C & 7) == 0) hz_rmsnorm_rows<8, 1>(nullptr, out, rstd, inp, nullptr, w, N, C, eps);
    else hz_rmsnorm_rows<1, 1>(nullptr, out, rstd, inp, nullptr, w, N, C, eps);
}

extern "C" __global__ void hzk_residual_rmsnorm1p_forward(bf16 *res_out, bf16 *out, float *rstd,
                                                          const bf16 *a, const bf16 *b,
                                                          const bf16 *w, int N, int C, float eps) {
    if ((C & 7) == 0) hz_rmsnorm_rows<8, 1>(res_out, out, rstd, a, b, w, N, C, eps);
    else hz_rmsnorm_rows<1, 1>(res_out, out, rstd, a, b, w, N, C, eps);
}

extern "C" __global__ void hzk_rmsnorm1p_backward(bf16 *dinp, float *dw, const bf16 *dout,
                                                  const bf16 *inp, const bf16 *w, const float *rstd,
                                                  const bf16 *dres, int N, int C) {
    if ((C & 7) == 0) hz_rmsnorm_backward_rows<8, 1>(dinp, dw, 0, dout, inp, w, rstd, dres, N, C);
    else hz_rmsnorm_backward_rows<1, 1>(dinp, dw, 0, dout, inp, w, rstd, dres, N, C);
}

extern "C" __global__ void hzk_rmsnorm1p_backward_part(bf16 *dinp, float *dw_part, const bf16 *dout,
                                                       const bf16 *inp, const bf16 *w,
                                                       const float *rstd, const bf16 *dres, int N,
                                                       int C) {
    if ((C & 7) == 0)
        hz_rmsnorm_backward_rows<8, 1>(dinp, dw_part, 1, dout, inp, w, rstd, dres, N, C);
    else
        hz_rmsnorm_backward_rows<1, 1>(dinp, dw_part, 1, dout, inp, w, rstd, dres, N, C);
}
