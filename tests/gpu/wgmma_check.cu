/* tests/gpu/wgmma_check.cu - one warpgroup's products through util.cu's wgmma primitives,
 * in the shapes an attention kernel uses them (tests/gpu/ktest_wgmma.c checks them against
 * a cpu product). Appended to the test module after runtime/cuda's sources, compiled for
 * sm_90a; not part of any trainer. One block of 128 threads each; operands are row-major
 * bf16 in global memory and are placed in shared memory by plain stores at hz_att_off<8>'s
 * swizzled positions (the 128-byte swizzle), in blocks of 64 columns. */

/* Rows x 64-column block CB of a (ROWS, COLS) row-major matrix into the swizzled tile at S. */
__device__ void hzt_tile_store(unsigned char *s, const bf16 *g, int rows, int cols, int cb) {
    for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
        int r = i / 8, ch = i % 8;
        *reinterpret_cast<uint4 *>(s + hz_att_off<8>(r, ch)) =
            *reinterpret_cast<const uint4 *>(g + (long)r * cols + cb * 64 + ch * 8);
    }
}

/* The accumulators of a 64 x 128 product into d (64, 128) row-major. */
__device__ void hzt_acc_store(float *d, const float *acc) {
    int w = threadIdx.x / 32, g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
    #pragma unroll
    for (int i = 0; i < 16; i++) {
        int r = 16 * w + g, c = 8 * i + 2 * t;
        d[r * 128 + c] = acc[4 * i], d[r * 128 + c + 1] = acc[4 * i + 1];
        d[(r + 8) * 128 + c] = acc[4 * i + 2], d[(r + 8) * 128 + c + 1] = acc[4 * i + 3];
    }
}

/* 1024-byte aligned start of the dynamic shared memory (the launch gives 1024 bytes more). */
__device__ unsigned char *hzt_smem_1k(void) {
    extern __shared__ unsigned char hzt_smem[];
    unsigned a = hz_smem_u32(hzt_smem);
    return hzt_smem + ((1024u - (a & 1023u)) & 1023u);
}

/* d (64, 128) = a (64, 128) b^T, b (128, 128): S = Q K^T of a 64-query tile against 128
 * keys at head_dim 128, both operands K-major from shared memory, 8 k16 steps over the two
 * 64-column blocks of each. Shared: 2 x 8 KB of a, 2 x 16 KB of b, + 1024. */
extern "C" __global__ void __launch_bounds__(128) hzt_wgmma_ss(float *d, const bf16 *a, const bf16 *b) {
    unsigned char *s = hzt_smem_1k(), *sa = s, *sb = s + 2 * 8192;
    for (int cb = 0; cb < 2; cb++) {
        hzt_tile_store(sa + cb * 8192, a, 64, 128, cb);
        hzt_tile_store(sb + cb * 16384, b, 128, 128, cb);
    }
    __syncthreads();
    hz_fence_proxy_async();
    float acc[64];
    #pragma unroll
    for (int i = 0; i < 64; i++) acc[i] = 0.0f;
    hz_wgmma_fence();
    #pragma unroll
    for (int kk = 0; kk < 8; kk++) {
        unsigned oa = hz_smem_u32(sa) + (kk / 4) * 8192 + (kk % 4) * 32;
        unsigned ob = hz_smem_u32(sb) + (kk / 4) * 16384 + (kk % 4) * 32;
        hz_wgmma_ss_n128(acc, hz_wgmma_desc(oa, 16, 1024), hz_wgmma_desc(ob, 16, 1024), kk > 0);
    }
    hz_wgmma_commit();
    hz_wgmma_wait<0>();
    hzt_acc_store(d, acc);
}

/* d (64, 128) = p (64, 64) v, v (64, 128): O = P V of a 64-query tile over 64 keys at
 * head_dim 128, p from registers (mma.sync's A fragments), v MN-major from shared memory in
 * two 64-column blocks of 8 KB (LBO and SBO as given: 8192 and 1024 for this layout), 4 k16
 * steps of 16 keys. Shared: 16 KB + 1024. */
extern "C" __global__ void __launch_bounds__(128) hzt_wgmma_rs(float *d, const bf16 *p, const bf16 *v,
                                                               unsigned lbo, unsigned sbo) {
    unsigned char *sv = hzt_smem_1k();
    for (int cb = 0; cb < 2; cb++) hzt_tile_store(sv + cb * 8192, v, 64, 128, cb);
    __syncthreads();
    hz_fence_proxy_async();
    int w = threadIdx.x / 32, g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
    const unsigned *pw = reinterpret_cast<const unsigned *>(p); /* bf16 pairs: (64, 32) */
    float acc[64];
    #pragma unroll
    for (int i = 0; i < 64; i++) acc[i] = 0.0f;
    unsigned af[4][4];
    #pragma unroll
    for (int ks = 0; ks < 4; ks++) {
        int r = 16 * w + g, c = (16 * ks + 2 * t) / 2;
        af[ks][0] = pw[r * 32 + c], af[ks][1] = pw[(r + 8) * 32 + c];
        af[ks][2] = pw[r * 32 + c + 4], af[ks][3] = pw[(r + 8) * 32 + c + 4];
    }
    hz_wgmma_fence();
    #pragma unroll
    for (int ks = 0; ks < 4; ks++)
        hz_wgmma_rs_tb_n128(acc, af[ks], hz_wgmma_desc(hz_smem_u32(sv) + ks * 2048, lbo, sbo), ks > 0);
    hz_wgmma_commit();
    hz_wgmma_wait<0>();
    hzt_acc_store(d, acc);
}
