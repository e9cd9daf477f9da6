/* runtime/cuda/adamw.cu - AdamW on the split fp32 master, bit for bit as the host loop of
 * runtime/adamw.c (hz_adamw_range): the same join of (w, lo), the per-element formula of
 * hz_adam_coef (runtime/rt.h) and the same split. Every fp32 operation is an explicit
 * round-to-nearest intrinsic, so that NVRTC contracts nothing into a fused multiply-add
 * (the host, built -std=c11, contracts nothing either); without --ftz, denormals are kept
 * as the host keeps them. */

/* The fp32 master of (w, lo) and back: hz_join_inl and hz_split_inl of runtime/rt.h. */
__device__ __forceinline__ float hz_adamw_join(unsigned short w, short lo) {
    return __uint_as_float(((unsigned)w << 16) + (unsigned)(int)lo);
}
__device__ __forceinline__ void hz_adamw_split(float master, unsigned short &w, short &lo) {
    const unsigned u = __float_as_uint(master);
    const unsigned hi = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const int diff = (int)(u - (hi << 16));
    const unsigned up = diff > 32767; /* a tie rounded down: take the bf16 above */
    w = (unsigned short)(hi + up);
    lo = (short)(diff - (int)(up << 16));
}

/* The coefficients of hz_adam_coef (runtime/rt.h), with 1 - beta1 and 1 - beta2 formed
 * once (the host forms them per element: the same values). */
struct hz_adamw_k {
    float decay, step, rbc2, beta1, beta2, eps, gscale, omb1, omb2;
};

/* One element: g = grad gscale; m = beta1 m + (1 - beta1) g; v = beta2 v + ((1 - beta2) g) g;
 * p = join(w, lo) decay - (step m) / (sqrt(v rbc2) + eps); (w, lo) = split(p). */
__device__ __forceinline__ void hz_adamw_one(unsigned short &w, short &lo, float &m, float &v,
                                             float grad, const hz_adamw_k &k) {
    const float g = __fmul_rn(grad, k.gscale);
    const float mi = __fadd_rn(__fmul_rn(k.beta1, m), __fmul_rn(k.omb1, g));
    const float vi = __fadd_rn(__fmul_rn(k.beta2, v), __fmul_rn(__fmul_rn(k.omb2, g), g));
    m = mi;
    v = vi;
    const float den = __fadd_rn(__fsqrt_rn(__fmul_rn(vi, k.rbc2)), k.eps);
    const float p = __fsub_rn(__fmul_rn(hz_adamw_join(w, lo), k.decay),
                              __fdiv_rn(__fmul_rn(k.step, mi), den));
    hz_adamw_split(p, w, lo);
}

/* One AdamW step of n elements, in place: w, lo (n) the master's bf16 and low halves, m, v (n)
 * the moments; g (n) the fp32 gradients; the scalars are those of hz_adam_coef. When w and lo
 * are 8-byte aligned and m, v and g 16-byte aligned, a thread moves 4 consecutive elements per
 * access and the last n % 4 go one by one; otherwise every element goes one by one. Either way
 * each element gets the same operations, so the bits do not depend on alignment or grid.
 * Launch: block 256, grid min(ceil(n / 4 / 256), 32 * number of SMs) or any other grid:
 * the loops are grid-strided, so every grid is correct. */
extern "C" __global__ void hzk_adamw(unsigned short *w, short *lo, float *m, float *v,
                                     const float *g, long n, float decay, float step, float rbc2,
                                     float beta1, float beta2, float eps, float gscale) {
    const hz_adamw_k k = {decay, step, rbc2, beta1, beta2, eps, gscale,
                          __fsub_rn(1.0f, beta1), __fsub_rn(1.0f, beta2)};
    const long first = blockIdx.x * (long)blockDim.x + threadIdx.x;
    const long stride = (long)gridDim.x * blockDim.x;
    const bool vec = (((size_t)w | (size_t)lo) & 7) == 0 &&
                     (((size_t)m | (size_t)v | (size_t)g) & 15) == 0;
    long done = 0;
    if (vec) {
        const long n4 = n / 4;
        for (long i = first; i < n4; i += stride) {
            ushort4 w4 = reinterpret_cast<const ushort4 *>(w)[i];
            short4 lo4 = reinterpret_cast<const short4 *>(lo)[i];
            float4 m4 = reinterpret_cast<const float4 *>(m)[i];
            float4 v4 = reinterpret_cast<const float4 *>(v)[i];
            const float4 g4 = reinterpret_cast<const float4 *>(g)[i];
            hz_adamw_one(w4.x, lo4.x, m4.x, v4.x, g4.x, k);
            hz_adamw_one(w4.y, lo4.y, m4.y, v4.y, g4.y, k);
            hz_adamw_one(w4.z, lo4.z, m4.z, v4.z, g4.z, k);
            hz_adamw_one(w4.w, lo4.w, m4.w, v4.w, g4.w, k);
            reinterpret_cast<ushort4 *>(w)[i] = w4;
            reinterpret_cast<short4 *>(lo)[i] = lo4;
            reinterpret_cast<float4 *>(m)[i] = m4;
            reinterpret_cast<float4 *>(v)[i] = v4;
        }
        done = n4 * 4;
    }
    for (long i = done + first; i < n; i += stride) hz_adamw_one(w[i], lo[i], m[i], v[i], g[i], k);
}
