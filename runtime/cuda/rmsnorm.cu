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

/* The backward by row groups, for C % 8 == 0: a group of TPR = round_up(C / 8, 32) threads
 * takes a row, one 8-column chunk a thread, so dout, inp and dres are read once, and the
 * group's next dout and inp rows are loading while this row's dot product is summed; the block's
 * R = blockDim.x / TPR groups take R rows at a time, grid-strided. w (as 1 + w for ONEP) and
 * the thread's share of dw stay in registers; the groups' dw rows meet in shared memory and
 * are added in group order at the end, to dw with atomics (part == 0) or as row blockIdx.x of
 * the partial sums (part == 1). */
template <int ONEP>
__device__ __forceinline__ void hz_rmsnorm_backward_groups(bf16 *dinp, float *dw, int part,
                                                           const bf16 *dout, const bf16 *inp,
                                                           const bf16 *w, const float *rstd,
                                                           const bf16 *dres, int N, int C,
                                                           int tpr) {
    extern __shared__ __align__(16) unsigned char hz_dyn_smem[];
    float *dw_rows = reinterpret_cast<float *>(hz_dyn_smem); /* (R, C): each group's dw */
    __shared__ float red[2][32]; /* the warps' sums, two buffers: one barrier a row */
    const int R = blockDim.x / tpr, grp = threadIdx.x / tpr, t = threadIdx.x - grp * tpr;
    const int warp = threadIdx.x >> 5, w0 = grp * (tpr >> 5), nw = tpr >> 5;
    const int own = t < (C >> 3);
    const long col = (long)t * 8;
    const uint4 z = make_uint4(0u, 0u, 0u, 0u); /* eight bf16 zeros */
    /* the vectors stay packed (4 registers for 8 values) and are widened a pair at a time */
    const uint4 wq = own ? hz_ld16(w + col) : z;
    const __nv_bfloat162 *wp = reinterpret_cast<const __nv_bfloat162 *>(&wq);
    float acc[8];
#pragma unroll
    for (int e = 0; e < 8; e++) acc[e] = 0.0f;
    const int stride = gridDim.x * R; /* rows; N + stride fits an int for any N here */
    int row = blockIdx.x * R + grp;
    uint4 g = z, x = z;
    float r = 0.0f;
    if (own && row < N)
        g = hz_ld16(dout + (long)row * C + col), x = hz_ld16(inp + (long)row * C + col), r = rstd[row];
    int buf = 0;
    for (int first = blockIdx.x * R; first < N; first += stride, row += stride, buf ^= 1) {
        const int next = row + stride;
        const long at = (long)row * C + col, at_next = at + (long)stride * C;
        uint4 gn = z, xn = z;
        float rn = 0.0f;
        if (own && next < N)
            gn = hz_ld16(dout + at_next), xn = hz_ld16(inp + at_next), rn = rstd[next];
        /* dres is needed only after the sum: its load is issued now and waited for there */
        const uint4 d = own && row < N && dres ? hz_ld16(dres + at) : z;
        const __nv_bfloat162 *gp = reinterpret_cast<const __nv_bfloat162 *>(&g);
        const __nv_bfloat162 *xp = reinterpret_cast<const __nv_bfloat162 *>(&x);
        /* dot = sum_j dout_j w_j x_j; the gradient is r * (g - xhat * r * dot / C). */
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 gf = __bfloat1622float2(gp[i]), xf = __bfloat1622float2(xp[i]);
            float2 wf = __bfloat1622float2(wp[i]);
            if (ONEP) wf.x += 1.0f, wf.y += 1.0f;
            dot += gf.x * wf.x * xf.x;
            dot += gf.y * wf.y * xf.y;
        }
        dot = hz_warp_sum(dot);
        if ((threadIdx.x & 31) == 0) red[buf][warp] = dot;
        __syncthreads();
        float tot = 0.0f;
        for (int k = 0; k < nw; k++) tot += red[buf][w0 + k];
        const float m = tot * r / (float)C; /* mean(g * xhat) */
        if (own && row < N) {
            const __nv_bfloat162 *dp = reinterpret_cast<const __nv_bfloat162 *>(&d);
            uint4 o;
            unsigned *op = reinterpret_cast<unsigned *>(&o);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const float2 gf = __bfloat1622float2(gp[i]), xf = __bfloat1622float2(xp[i]);
                float2 wf = __bfloat1622float2(wp[i]), df = __bfloat1622float2(dp[i]);
                if (ONEP) wf.x += 1.0f, wf.y += 1.0f;
                const float xh0 = xf.x * r, xh1 = xf.y * r;
                acc[2 * i] += gf.x * xh0;
                acc[2 * i + 1] += gf.y * xh1;
                df.x += r * (gf.x * wf.x - xh0 * m);
                df.y += r * (gf.y * wf.y - xh1 * m);
                op[i] = hz_pack_bf16x2(df.x, df.y);
            }
            *reinterpret_cast<uint4 *>(dinp + at) = o;
        }
        g = gn, x = xn, r = rn;
    }
    float *dst = dw + (part ? (long)blockIdx.x * C : 0);
    if (own)
#pragma unroll
        for (int e = 0; e < 8; e++) dw_rows[grp * C + col + e] = acc[e];
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float sum = 0.0f;
        for (int q = 0; q < R; q++) sum += dw_rows[q * C + c];
        if (part) dst[c] = sum;
        else atomicAdd(dst + c, sum);
    }
}

/* TPR for C (a multiple of the warp), and whether the launch takes the row-group path: its
 * block a multiple of TPR and its shared memory room for the groups' dw rows. */
__device__ __forceinline__ int hz_rmsnorm_tpr(int C) { return ((C >> 3) + 31) & ~31; }
__device__ __forceinline__ int hz_rmsnorm_grouped(int C) {
    const int tpr = hz_rmsnorm_tpr(C);
    return (C & 7) == 0 && tpr <= (int)blockDim.x && blockDim.x % tpr == 0 &&
           hz_dynamic_smem_bytes() >= (blockDim.x / tpr) * (unsigned)C * 4u;
}

/* The four backward kernels' body: the row-group path where the launch is shaped for it,
 * else a block a row (16-byte vectors when C % 8 == 0). */
template <int ONEP>
__device__ __forceinline__ void hz_rmsnorm_backward_any(bf16 *dinp, float *dw, int part,
                                                        const bf16 *dout, const bf16 *inp,
                                                        const bf16 *w, const float *rstd,
                                                        const bf16 *dres, int N, int C) {
    if (hz_rmsnorm_grouped(C))
        hz_rmsnorm_backward_groups<ONEP>(dinp, dw, part, dout, inp, w, rstd, dres, N, C,
                                         hz_rmsnorm_tpr(C));
    else if ((C & 7) == 0)
        hz_rmsnorm_backward_rows<8, ONEP>(dinp, dw, part, dout, inp, w, rstd, dres, N, C);
    else
        hz_rmsnorm_backward_rows<1, ONEP>(dinp, dw, part, dout, inp, w, rstd, dres, N, C);
}

/* dinp = rmsnorm'(dout) (+ dres when dres != NULL); dw += sum over rows of dout * inp * rstd.
 * Each block keeps its share of dw (in registers and shared memory, each column owned by one
 * thread, so no shared atomics) and adds it to dw with one fp32 atomicAdd per column at the
 * end: dw is not bit-deterministic across runs. dinp may alias dout or dres.
 * Launch, the row-group path (C % 8 == 0 and TPR = round_up(C / 8, 32) <= 1024): block
 * R * TPR with R = 1024 / TPR, grid min(number of SMs, ceil(N / R)) (one block fills an SM's
 * registers), dynamic shared memory R * C * 4 bytes (at most 32 KiB).
 * Any other launch (block a multiple of 32, <= 1024, e.g. 256, or less shared memory than
 * the groups need) takes a row at a time: grid min(N, 8 * number of SMs), dynamic shared
 * memory C * 4 bytes (above 48 KiB, i.e. C > 12288, raise the kernel's
 * CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES first). */
extern "C" __global__ void __launch_bounds__(1024, 1)
    hzk_rmsnorm_backward(bf16 *dinp, float *dw, const bf16 *dout, const bf16 *inp, const bf16 *w,
                         const float *rstd, const bf16 *dres, int N, int C) {
    hz_rmsnorm_backward_any<0>(dinp, dw, 0, dout, inp, w, rstd, dres, N, C);
}

/* As hzk_rmsnorm_backward, but each block stores its column sums of dout * inp * rstd to
 * dw_part[blockIdx.x, :] ((gridDim.x, C) fp32, overwritten) instead of adding them to dw;
 * hzk_colsum_f32 then adds the rows in order: the deterministic path. Launch as
 * hzk_rmsnorm_backward. */
extern "C" __global__ void __launch_bounds__(1024, 1)
    hzk_rmsnorm_backward_part(bf16 *dinp, float *dw_part, const bf16 *dout, const bf16 *inp,
                              const bf16 *w, const float *rstd, const bf16 *dres, int N, int C) {
    hz_rmsnorm_backward_any<0>(dinp, dw_part, 1, dout, inp, w, rstd, dres, N, C);
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

extern "C" __global__ void __launch_bounds__(1024, 1)
    hzk_rmsnorm1p_backward(bf16 *dinp, float *dw, const bf16 *dout, const bf16 *inp, const bf16 *w,
                           const float *rstd, const bf16 *dres, int N, int C) {
    hz_rmsnorm_backward_any<1>(dinp, dw, 0, dout, inp, w, rstd, dres, N, C);
}

extern "C" __global__ void __launch_bounds__(1024, 1)
    hzk_rmsnorm1p_backward_part(bf16 *dinp, float *dw_part, const bf16 *dout, const bf16 *inp,
                                const bf16 *w, const float *rstd, const bf16 *dres, int N, int C) {
    hz_rmsnorm_backward_any<1>(dinp, dw_part, 1, dout, inp, w, rstd, dres, N, C);
}
