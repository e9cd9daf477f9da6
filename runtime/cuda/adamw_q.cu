/* runtime/cuda/adamw_q.cu - AdamW with compact moments (runtime/optstate.h): bf16 moments with
 * stochastic rounding and int8 blockwise moments, bit for bit as the host's hz_qadamw_ref
 * (runtime/optstate_adamw.c). Uses hz_adamw_join, hz_adamw_split and hz_adamw_k of adamw.cu. */

/* hz_sr_mix64, hz_sr_key and hz_sr_mix of runtime/optstate.h: the counter-based hash. */
__device__ __forceinline__ unsigned long long hzq_mix64(unsigned long long x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}
__device__ __forceinline__ unsigned long long hzq_key(unsigned long long seed, long t, unsigned hi) {
    unsigned long long x = hzq_mix64(seed ^ 0x6a09e667f3bcc909ull);
    x = hzq_mix64(x + (unsigned long long)t * 0x9e3779b97f4a7c15ull);
    return hzq_mix64(x + hi);
}
__device__ __forceinline__ unsigned hzq_mix(unsigned i_lo, unsigned long long key) {
    unsigned x = i_lo ^ (unsigned)key;
    x *= 0x9e3779b1u;
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= (unsigned)(key >> 32);
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return x;
}

/* hz_bf16_sr_inl: add the random bits R16 and truncate; a finite x never becomes inf. */
__device__ __forceinline__ unsigned short hzq_bf16_sr(float x, unsigned r16) {
    const unsigned u = __float_as_uint(x), r = (u + r16) >> 16;
    const bool to_inf = (r & 0x7f80u) == 0x7f80u && (u & 0x7f800000u) != 0x7f800000u;
    return (unsigned short)(to_inf ? u >> 16 : r);
}

__device__ __forceinline__ bool hzq_finite(float g) {
    return (__float_as_uint(g) & 0x7f800000u) != 0x7f800000u;
}

/* An int8-mode moment that overflowed to +-inf is kept as +-FLT_MAX (clamp_finite). */
__device__ __forceinline__ float hzq_clamp(float x) {
    const unsigned u = __float_as_uint(x);
    return (u & 0x7fffffffu) == 0x7f800000u ? __uint_as_float(u - 1u) : x;
}

__device__ __forceinline__ float hzq_grad(const void *g, int grad_bf16, long i) {
    return grad_bf16 ? __uint_as_float((unsigned)((const unsigned short *)g)[i] << 16)
                     : ((const float *)g)[i];
}

/* hz_adamw_range's element: new moments MI, VI and the new master from the scaled gradient G,
 * the old moments MO, VO and the master P0. */
__device__ __forceinline__ float hzq_adam(float g, float mo, float vo, float p0,
                                          const hz_adamw_k &k, float &mi, float &vi) {
    mi = __fadd_rn(__fmul_rn(k.beta1, mo), __fmul_rn(k.omb1, g));
    vi = __fadd_rn(__fmul_rn(k.beta2, vo), __fmul_rn(__fmul_rn(k.omb2, g), g));
    const float den = __fadd_rn(__fsqrt_rn(__fmul_rn(vi, k.rbc2)), k.eps);
    return __fsub_rn(__fmul_rn(p0, k.decay), __fdiv_rn(__fmul_rn(k.step, mi), den));
}

/* bf16 moments: elements [first, first + n) of w, lo (the master), m, v (bf16 bits) and g
 * (fp32, or bf16 when grad_bf16), all indexed alike; an element with a non-finite scaled
 * gradient keeps its values and is counted into *bad. The random bits of element i at step t:
 * hash(seed, t, i), low half for m, high half for v. Launch: block 256, any grid (grid-strided;
 * the wrapper's: min(ceil(n / 256), 32 * SMs)). */
extern "C" __global__ void hzk_adamw_bf16state(unsigned short *w, short *lo, unsigned short *m,
                                               unsigned short *v, const void *g, int grad_bf16,
                                               long first, long n, unsigned long long *bad,
                                               float decay, float step, float rbc2, float beta1,
                                               float beta2, float eps, float gscale,
                                               unsigned long long seed, long t) {
    const hz_adamw_k k = {decay, step, rbc2, beta1, beta2, eps, gscale,
                          __fsub_rn(1.0f, beta1), __fsub_rn(1.0f, beta2)};
    const long stride = (long)gridDim.x * blockDim.x;
    unsigned key_hi = 0;
    unsigned long long key = hzq_key(seed, t, 0);
    unsigned long long skipped = 0;
    for (long j = blockIdx.x * (long)blockDim.x + threadIdx.x; j < n; j += stride) {
        const long i = first + j;
        const float gs = __fmul_rn(hzq_grad(g, grad_bf16, i), k.gscale);
        if (!hzq_finite(gs)) {
            skipped++;
            continue;
        }
        const unsigned hi = (unsigned)((unsigned long long)i >> 32);
        if (hi != key_hi) key_hi = hi, key = hzq_key(seed, t, hi);
        float mi, vi;
        const float p = hzq_adam(gs, __uint_as_float((unsigned)m[i] << 16),
                                 __uint_as_float((unsigned)v[i] << 16),
                                 hz_adamw_join(w[i], lo[i]), k, mi, vi);
        const unsigned h = hzq_mix((unsigned)i, key);
        m[i] = hzq_bf16_sr(mi, h & 0xffffu);
        v[i] = hzq_bf16_sr(vi, h >> 16);
        hz_adamw_split(p, w[i], lo[i]);
    }
    if (skipped) atomicAdd(bad, skipped);
}

/* The int8 maps of runtime/optstate.h built the same way: magnitude r of a BITS-bit code is one
 * fp32 division of exact integers, a midpoint the double sum rounded up to fp32. */
__device__ float hzq_magnitude(int r, int bits) {
    if (r == 0) return 0.0f;
    const int h = 31 - __clz(r), z = bits - 1 - h, q = r - (1 << h);
    float den = __fmul_rn((float)(1 << h), 10.0f);
    for (int s = 0; s < z; s++) den = __fmul_rn(den, 10.0f);
    return __fdiv_rn((float)((1 << h) + 9 * (q + 1)), den);
}
__device__ float hzq_midpoint(float a, float b) {
    return __double2float_ru(__dmul_rn(__dadd_rn((double)a, (double)b), 0.5));
}

/* HZ_OPTSTATE_BLOCK of runtime/optstate.h: the host and these kernels must use one block size;
 * tests/gpu/ktest_adamw.c compares them bit for bit, so a change on one side alone fails it. */
#define HZQ_BLOCK 64

/* int8 moments: elements [first, first + n) (first a multiple of 64) of w, lo, the codes mc
 * (int8, signed map) and vc (uint8, unsigned map) and g as above; mabs, vabs hold one absmax per
 * 64-element block, block b at [first / 64 + b]. One warp per block, two elements a lane: decode,
 * update, the block's absmax by a warp max of the |x| bit patterns, encode (nearest code by a
 * binary search of the midpoints; a positive v never codes 0). A block with a non-finite scaled
 * gradient keeps its master, codes and absmaxes; its count goes into *bad. The maps are built
 * in shared memory by each block. Launch: block 256 (8 warps), any grid (grid-strided over the
 * 64-element blocks; the wrapper's: min(ceil(blocks / 8), 32 * SMs)). */
extern "C" __global__ void __launch_bounds__(256)
hzk_adamw_int8state(unsigned short *w, short *lo, signed char *mc, unsigned char *vc, float *mabs,
                    float *vabs, const void *g, int grad_bf16, long first, long n,
                    unsigned long long *bad, float decay, float step, float rbc2, float beta1,
                    float beta2, float eps, float gscale) {
    __shared__ float sval[256], uval[256], smid[128], umid[256];
    const int tid = threadIdx.x;
    for (int c = tid; c < 256; c += blockDim.x) {
        sval[c] = c >= 128 ? hzq_magnitude(c - 128, 7) : -hzq_magnitude(c ? 128 - c : 127, 7);
        uval[c] = hzq_magnitude(c, 8);
        umid[c] = c ? hzq_midpoint(hzq_magnitude(c - 1, 8), hzq_magnitude(c, 8)) : 0.0f;
        if (c < 128) smid[c] = c ? hzq_midpoint(hzq_magnitude(c - 1, 7), hzq_magnitude(c, 7)) : 0.0f;
    }
    __syncthreads();
    const hz_adamw_k k = {decay, step, rbc2, beta1, beta2, eps, gscale,
                          __fsub_rn(1.0f, beta1), __fsub_rn(1.0f, beta2)};
    const int lane = tid & 31, warps = blockDim.x >> 5;
    const long blocks = (n + HZQ_BLOCK - 1) / HZQ_BLOCK;
    for (long b = blockIdx.x * (long)warps + (tid >> 5); b < blocks; b += (long)gridDim.x * warps) {
        const long blk = first / HZQ_BLOCK + b;
        const float am = mabs[blk], av = vabs[blk];
        float mt[2], vt[2];
        unsigned short wn[2];
        short ln[2];
        unsigned mmax = 0, vmax = 0, nonfinite = 0;
        for (int e = 0; e < 2; e++) {
            const long j = b * HZQ_BLOCK + lane + 32 * e, i = first + j;
            mt[e] = vt[e] = 0.0f;
            if (j >= n) continue;
            const float gs = __fmul_rn(hzq_grad(g, grad_bf16, i), k.gscale);
            const float mo = __fmul_rn(sval[(unsigned char)mc[i] ^ 0x80u], am);
            const float vo = __fmul_rn(uval[vc[i]], av);
            float mi, vi;
            const float p = hzq_adam(gs, mo, vo, hz_adamw_join(w[i], lo[i]), k, mi, vi);
            nonfinite += !hzq_finite(gs);
            mt[e] = hzq_clamp(mi);
            vt[e] = hzq_clamp(vi);
            hz_adamw_split(p, wn[e], ln[e]);
            mmax = max(mmax, __float_as_uint(mt[e]) & 0x7fffffffu);
            vmax = max(vmax, __float_as_uint(vt[e]) & 0x7fffffffu);
        }
        for (int s = 16; s > 0; s >>= 1) {
            mmax = max(mmax, __shfl_xor_sync(0xffffffffu, mmax, s));
            vmax = max(vmax, __shfl_xor_sync(0xffffffffu, vmax, s));
            nonfinite += __shfl_xor_sync(0xffffffffu, nonfinite, s);
        }
        if (nonfinite) {
            if (lane == 0) atomicAdd(bad, (unsigned long long)nonfinite);
            continue; /* the block keeps its master, codes and absmaxes */
        }
        const float amn = __uint_as_float(mmax), avn = __uint_as_float(vmax);
        const float dm = amn > 0.0f ? amn : 1.0f, dv = avn > 0.0f ? avn : 1.0f;
        if (lane == 0) mabs[blk] = amn, vabs[blk] = avn;
        for (int e = 0; e < 2; e++) {
            const long j = b * HZQ_BLOCK + lane + 32 * e, i = first + j;
            if (j >= n) continue;
            const float a = __fdiv_rn(fabsf(mt[e]), dm), c = __fdiv_rn(vt[e], dv);
            int rm = 0, rv = 0;
            for (int s = 64; s > 0; s >>= 1) rm += a >= smid[rm + s] ? s : 0;
            for (int s = 128; s > 0; s >>= 1) rv += c >= umid[rv + s] ? s : 0;
            if (rv == 0 && vt[e] > 0.0f) rv = 1;
            mc[i] = (signed char)(mt[e] < 0.0f ? -rm : rm);
            vc[i] = (unsigned char)rv;
            w[i] = wn[e];
            lo[i] = ln[e];
        }
    }
}
