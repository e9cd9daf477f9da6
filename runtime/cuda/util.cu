/* runtime/cuda/util.cu - shared device helpers and the small elementwise kernels.
 * Device code only. The trainer (and tests/gpu/test_kernels.c) concatenates the .cu files of
 * runtime/cuda, this file first and then the others in alphabetical order, after a prelude of
 * #define lines, and compiles the result with NVRTC:
 *     --std=c++17 -arch=sm_XY -default-device -I<cuda include dir>
 * deliberately WITHOUT --use_fast_math: the kernels must match the cpu reference to bf16
 * rounding, so fast approximations are used only where written out (hz_exp2 in attention).
 * Conventions of every file: kernels are extern "C" __global__ and named hzk_*; sizes come in
 * as kernel arguments (int for dimensions, long for element counts that may pass 2^31);
 * activations are bf16, statistics fp32, weight gradients fp32 and ACCUMULATED (+=).
 * Each kernel states its launch shape (grid, block, dynamic shared memory) above it. */
#ifndef HZ_CUDA_UTIL_CU
#define HZ_CUDA_UTIL_CU
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

#define HZ_INF __int_as_float(0x7f800000) /* NVRTC has no math.h INFINITY */

/* ---- bf16 packing ------------------------------------------------------------------- */

/* Two floats rounded to bf16 and packed into one 32-bit word, lo in the low half. */
__device__ __forceinline__ unsigned hz_pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned *>(&v);
}

/* 8 bf16 (one 16-byte vector) <-> 8 floats. p must be 16-byte aligned. hz_unpack8 takes
 * a vector already loaded (hz_ld16), so that loads can be issued ahead of their use. */
__device__ __forceinline__ uint4 hz_ld16(const bf16 *p) { return *reinterpret_cast<const uint4 *>(p); }
__device__ __forceinline__ void hz_unpack8(float *f, uint4 u) {
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
__device__ __forceinline__ void hz_load8(float *f, const bf16 *p) { hz_unpack8(f, hz_ld16(p)); }
__device__ __forceinline__ void hz_store8(bf16 *p, const float *f) {
    uint4 u;
    u.x = hz_pack_bf16x2(f[0], f[1]);
    u.y = hz_pack_bf16x2(f[2], f[3]);
    u.z = hz_pack_bf16x2(f[4], f[5]);
    u.w = hz_pack_bf16x2(f[6], f[7]);
    *reinterpret_cast<uint4 *>(p) = u;
}

/* 4 bf16 (8 bytes, 8-byte aligned) <-> 4 floats; the raw 8 bytes moved as they are. */
__device__ __forceinline__ void hz_ld4(float *f, const bf16 *p) {
    const uint2 u = *reinterpret_cast<const uint2 *>(p);
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&u.x));
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&u.y));
    f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
}
__device__ __forceinline__ void hz_st4(bf16 *p, const float *f) {
    uint2 u;
    u.x = hz_pack_bf16x2(f[0], f[1]);
    u.y = hz_pack_bf16x2(f[2], f[3]);
    *reinterpret_cast<uint2 *>(p) = u;
}
__device__ __forceinline__ void hz_mv4(bf16 *dst, const bf16 *src) {
    *reinterpret_cast<uint2 *>(dst) = *reinterpret_cast<const uint2 *>(src);
}

/* VEC consecutive bf16 <-> floats, VEC = 8 (one aligned 16-byte access) or 1. */
template <int VEC> __device__ __forceinline__ void hz_loadv(float *f, const bf16 *p) {
    if constexpr (VEC == 8) hz_load8(f, p);
    else f[0] = __bfloat162float(p[0]);
}
template <int VEC> __device__ __forceinline__ void hz_storev(bf16 *p, const float *f) {
    if constexpr (VEC == 8) hz_store8(p, f);
    else p[0] = __float2bfloat16(f[0]);
}

/* Round a float to bf16 and back: the value a bf16 tensor would hold. */
__device__ __forceinline__ float hz_round_bf16(float x) {
    return __bfloat162float(__float2bfloat16(x));
}

/* RoPE's c, s of position POS at frequency index I: fp32 sincos rounded to bf16, as
 * transformers casts cos and sin to the activation dtype (rope.cu, qknorm.cu). */
__device__ __forceinline__ void hz_rope_cs1(float *c, float *s, int pos, const float *inv_freq, int i) {
    float sn, cs;
    sincosf((float)pos * inv_freq[i], &sn, &cs);
    *c = hz_round_bf16(cs);
    *s = hz_round_bf16(sn);
}

/* ---- reductions --------------------------------------------------------------------- */

__device__ __forceinline__ float hz_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float hz_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block; every thread gets the result. blockDim.x must be a multiple of 32
 * (at most 1024). Contains __syncthreads, so every thread of the block must call it; it may
 * be called repeatedly (the scratch is protected by a leading barrier). */
__device__ __forceinline__ float hz_block_sum(float v) {
    __shared__ float hz_red_scratch[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
    v = hz_warp_sum(v);
    __syncthreads();
    if (lane == 0) hz_red_scratch[warp] = v;
    __syncthreads();
    v = lane < nwarp ? hz_red_scratch[lane] : 0.0f;
    return hz_warp_sum(v);
}
__device__ __forceinline__ float hz_block_max(float v) {
    __shared__ float hz_red_scratch_max[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
    v = hz_warp_max(v);
    __syncthreads();
    if (lane == 0) hz_red_scratch_max[warp] = v;
    __syncthreads();
    v = lane < nwarp ? hz_red_scratch_max[lane] : -HZ_INF;
    return hz_warp_max(v);
}

/* ---- tensor-core and async-copy primitives (inline PTX) -----------------------------
 * All inline PTX of the backend lives between these markers, so that a host emulation of
 * the kernels can replace exactly this block. Shared-memory addresses are 32-bit (.shared
 * window), as ldmatrix and cp.async take them. */
/* HZ_PTX_BEGIN */
__device__ __forceinline__ unsigned hz_smem_u32(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

/* The dynamic shared memory this launch was given, in bytes. */
__device__ __forceinline__ unsigned hz_dynamic_smem_bytes(void) {
    unsigned n;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(n));
    return n;
}

/* d += a * b for one m16n8k16 tile: a 16x16 bf16 (row), b 16x8 bf16 (col), d 16x8 fp32.
 * Fragments (g = lane/4, t = lane%4): a[0] (g, 2t..2t+1), a[1] (g+8, 2t..), a[2] (g, 2t+8..),
 * a[3] (g+8, 2t+8..); b[0] (k = 2t..2t+1, n = g), b[1] (k = 2t+8.., n = g);
 * d[0..1] (g, 2t..2t+1), d[2..3] (g+8, 2t..2t+1). */
__device__ __forceinline__ void hz_mma_bf16_16816(float *d, const unsigned *a, const unsigned *b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* Four 8x8 bf16 matrices from shared memory; lanes 8i..8i+7 give the row addresses of
 * matrix i, and r[i] receives (row lane/4, columns 2(lane%4)..+1) of matrix i.
 * The _trans form delivers the transposed matrices. */
__device__ __forceinline__ void hz_ldmatrix_x4(unsigned *r, unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void hz_ldmatrix_x4_trans(unsigned *r, unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* 16-byte global -> shared copy that bypasses registers; when !valid the 16 bytes are
 * zero-filled and nothing is read (src must still be a mapped address). */
__device__ __forceinline__ void hz_cp_async16(unsigned dst, const void *src, bool valid) {
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void hz_cp_async_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::);
}
/* Wait until at most N of this thread's committed groups are still in flight. */
template <int N> __device__ __forceinline__ void hz_cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
/* Wait until all committed groups have landed (in this thread; a barrier publishes them). */
__device__ __forceinline__ void hz_cp_async_wait_all(void) {
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

/* 2^x with the hardware approximation (rel. error ~2^-22; -inf -> 0). */
__device__ __forceinline__ float hz_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* dst[0..1] += (a, b) in global memory, as one vector atomic where the chip has it. */
__device__ __forceinline__ void hz_atomic_add2(float *dst, float a, float b) {
#if __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float2 *>(dst), make_float2(a, b));
#else
    atomicAdd(dst, a);
    atomicAdd(dst + 1, b);
#endif
}
/* Hopper's warpgroup matrix products (wgmma), sm_90a only: without the arch-specific
 * features (any other target, or sm_90 without "a") they trap, and nothing calls them there.
 * A warpgroup is 4 consecutive warps (128 threads, the first a multiple of 128); it computes
 * D (64 x N) fp32 += A (64 x 16) B (16 x N), bf16 in. Fragments (w = warp in the group,
 * g = lane/4, t = lane%4): d[4i + 0..1] is (row 16w + g, columns 8i + 2t..+1), d[4i + 2..3]
 * row 16w + g + 8; A from registers is mma.sync's m16n8k16 A fragment of rows 16w..16w+15.
 * Shared operands are named by a descriptor (hz_wgmma_desc) of a tile stored with the 128-byte
 * swizzle: rows of 128 bytes (64 bf16), 16-byte chunk c of row r at chunk c ^ (r % 8), the
 * tile 1024-byte aligned (hz_att_off<8> gives the same placement). K-major (the product's
 * k along the 128-byte row, as Q and K are stored): SBO = 1024 (8 rows), LBO unused, the k16
 * step inside a row +32 bytes. MN-major (k along rows, as V is stored, hz_wgmma_rs_tb): SBO =
 * 1024 (8 rows of k), LBO = the bytes between the tile's 64-column blocks of N, the k16 step
 * +2048 bytes. The caller fences (hz_wgmma_fence) before the first product and after writing
 * accumulators or shared operands (hz_fence_proxy_async), then commits and waits. */
/* HZ_SM90A(code): the code where sm_90a's features are compiled in, else a trap */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define HZ_WGMMA 1
#define HZ_SM90A(...) __VA_ARGS__
#else
#define HZ_SM90A(...) __trap()
#endif
__device__ __forceinline__ unsigned long long hz_wgmma_desc(unsigned addr, unsigned lbo, unsigned sbo) {
    return (unsigned long long)((addr & 0x3FFFFu) >> 4) |
           ((unsigned long long)((lbo >> 4) & 0x3FFFu) << 16) |
           ((unsigned long long)((sbo >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}
/* Shared memory written by plain stores, made visible to the products' (async proxy) reads;
 * after the barrier that orders the stores. */
__device__ __forceinline__ void hz_fence_proxy_async(void) {
    HZ_SM90A(asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"));
}
__device__ __forceinline__ void hz_wgmma_fence(void) {
    HZ_SM90A(asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"));
}
__device__ __forceinline__ void hz_wgmma_commit(void) {
    HZ_SM90A(asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"));
}
/* Wait until at most N committed groups of this warpgroup are still running. */
template <int N> __device__ __forceinline__ void hz_wgmma_wait(void) {
    HZ_SM90A(asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"));
}
/* Ties N registers to this point of the program: the compiler sees the products' operands as
 * read and written when they are issued, so after the wait that ends an asynchronous product
 * its accumulators are held (not read before it) and its register operands too (not reused
 * before it). */
template <int N> __device__ __forceinline__ void hz_wgmma_hold(float *d) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
template <int N> __device__ __forceinline__ void hz_wgmma_hold(unsigned *d) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+r"(d[i])::"memory");
}
/* The 64 accumulators of an m64n128 product: their place holders in the instruction, and
 * the operands that bind them to d[0..63] */
#define HZ_WG_D64 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define HZ_WG_D64_OUT(d) \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
/* d (64 x 128) = (ACC ? d : 0) + A B^T: A (64 x 16) and B (128 x 16) K-major in shared memory. */
__device__ __forceinline__ void hz_wgmma_ss_n128(float *d, unsigned long long da, unsigned long long db, int acc) {
    HZ_SM90A(asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
                 "{" HZ_WG_D64 "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : HZ_WG_D64_OUT(d)
                 : "l"(da), "l"(db), "r"(acc)));
}
/* d (64 x 128) = (ACC ? d : 0) + A B: A (64 x 16) from registers, B (16 x 128) MN-major in
 * shared memory (transposed on the way in). */
__device__ __forceinline__ void hz_wgmma_rs_tb_n128(float *d, const unsigned *a, unsigned long long db, int acc) {
    HZ_SM90A(asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
                 "{" HZ_WG_D64 "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : HZ_WG_D64_OUT(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc)));
}
/* The 32 accumulators of an m64n64 product, as HZ_WG_D64's */
#define HZ_WG_D32 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define HZ_WG_D32_OUT(d) \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
/* d (64 x 64) = (ACC ? d : 0) + A B^T: A (64 x 16) and B (64 x 16) K-major in shared memory. */
__device__ __forceinline__ void hz_wgmma_ss_n64(float *d, unsigned long long da, unsigned long long db, int acc) {
    HZ_SM90A(asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
                 "{" HZ_WG_D32 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : HZ_WG_D32_OUT(d)
                 : "l"(da), "l"(db), "r"(acc)));
}
/* Shared-memory barriers (mbarrier) between the roles of a block, sm_90: init with the count
 * of arrivals that completes a phase; wait until the phase of the given parity (0 first, then
 * 1, 0, ...) has completed; arrive (one of the count); and the arrival of this thread's
 * cp.asyncs so far, counted when they land (noinc: it is one of the init count). */
__device__ __forceinline__ void hz_mbar_init(unsigned bar, unsigned count) {
    HZ_SM90A(asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory"));
}
__device__ __forceinline__ void hz_mbar_wait(unsigned bar, unsigned parity) {
    HZ_SM90A(asm volatile("{\n.reg .pred p;\nHZ_MBAR_WAIT:\n"
                          "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
                          "@!p bra HZ_MBAR_WAIT;\n}\n" ::"r"(bar), "r"(parity) : "memory"));
}
__device__ __forceinline__ void hz_mbar_arrive(unsigned bar) {
    HZ_SM90A(asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory"));
}
__device__ __forceinline__ void hz_cp_async_mbar_arrive(unsigned bar) {
    HZ_SM90A(asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory"));
}
/* The tensor memory accelerator (TMA), sm_90a: arrive on an mbarrier expecting BYTES more to
 * land by asynchronous copies; and the copy of one box of a 4-D tensor map (a
 * __grid_constant__ kernel parameter, named by its address) at coordinates c0..c3 into
 * shared memory at DST, its bytes counted on the mbarrier BAR when they land. */
__device__ __forceinline__ void hz_mbar_expect_tx(unsigned bar, unsigned bytes) {
    HZ_SM90A(asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                          : "memory"));
}
__device__ __forceinline__ void hz_tma_load_4d(unsigned dst, const void *map, int c0, int c1, int c2, int c3,
                                               unsigned bar) {
    HZ_SM90A(asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes"
                          " [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(dst),
                          "l"((unsigned long long)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
                          : "memory"));
}
/* The same for a 2-D tensor map */
__device__ __forceinline__ void hz_tma_load_2d(unsigned dst, const void *map, int c0, int c1, unsigned bar) {
    HZ_SM90A(asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                          " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
                          "l"((unsigned long long)map), "r"(c0), "r"(c1), "r"(bar)
                          : "memory"));
}
/* Named barriers (ID 1..15; 0 is __syncthreads') over N threads (both constants): wait for N arrivals, or
 * arrive without waiting. */
template <int ID, int N> __device__ __forceinline__ void hz_bar_sync(void) {
    asm volatile("bar.sync %0, %1;\n" ::"n"(ID), "n"(N) : "memory");
}
template <int ID, int N> __device__ __forceinline__ void hz_bar_arrive(void) {
    asm volatile("bar.arrive %0, %1;\n" ::"n"(ID), "n"(N) : "memory");
}
/* A warpgroup gives registers back to the block's pool, or takes them (sm_90a; N a multiple
 * of 8 in 24..256; every warp of the group, none in between). */
template <int N> __device__ __forceinline__ void hz_setmaxnreg_dec(void) {
    HZ_SM90A(asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)));
}
template <int N> __device__ __forceinline__ void hz_setmaxnreg_inc(void) {
    HZ_SM90A(asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)));
}
/* HZ_PTX_END */

/* ---- elementwise kernels -------------------------------------------------------------
 * Launch (all of them): block 256, grid min(ceil(n / 256), 8 * number of SMs) or any other
 * grid: the loops are grid-strided, so every grid is correct. */

/* out[i] = bf16(in[i]), round to nearest even. */
extern "C" __global__ void hzk_f32_to_bf16(bf16 *out, const float *in, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16(in[i]);
}

/* out[i] = float(in[i]) (exact). */
extern "C" __global__ void hzk_bf16_to_f32(float *out, const bf16 *in, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        out[i] = __bfloat162float(in[i]);
}

/* out = bf16(a + b) computed in fp32 (the residual add); out may alias a or b. */
extern "C" __global__ void hzk_add_bf16(bf16 *out, const bf16 *a, const bf16 *b, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

/* *acc += sum(x[i]^2), for the global gradient norm. Each thread sums in double, the block
 * reduces, and one atomicAdd per block lands in *acc (so the result depends on the order of
 * the blocks only at double rounding). With part != NULL each block stores its sum to
 * part[blockIdx.x] instead and hzk_sum_f64 adds them in order: bit-deterministic for a
 * fixed grid. The caller zeroes *acc once before the first call.
 * Launch: block 256 (a multiple of 32), any grid (e.g. 2 * number of SMs). */
extern "C" __global__ void hzk_sumsq_f32(double *acc, double *part, const float *x, long n) {
    __shared__ double wpart[32];
    double s = 0.0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        double v = x[i];
        s += v * v;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) wpart[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += wpart[w];
        if (part) part[blockIdx.x] = t;
        else atomicAdd(acc, t);
    }
}

/* *acc += part[0] + part[1] + ... + part[n - 1], in that order. Launch: one thread. */
extern "C" __global__ void hzk_sum_f64(double *acc, const double *part, int n) {
    double s = *acc;
    for (int i = 0; i < n; i++) s += part[i];
    *acc = s;
}

/* dst[c] += sum over g = 0, 1, ..., G - 1 in that order of part[g, c], for part (G, C) fp32:
 * the fixed-order second half of the deterministic column sums (RMSNorm dw, q/k/v dbias).
 * Launch: block 256, grid ceil(C / 256) (every column needs its thread). */
extern "C" __global__ void hzk_colsum_f32(float *dst, const float *part, int G, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = dst[c];
    for (int g = 0; g < G; g++) s += part[(long)g * C + c];
    dst[c] = s;
}

/* x[i] = value (poisoning buffers in tests and debug builds, zeroing accumulators). */
extern "C" __global__ void hzk_fill_f32(float *x, float value, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        x[i] = value;
}
extern "C" __global__ void hzk_fill_bf16(bf16 *x, float value, long n) {
    const bf16 v = __float2bfloat16(value);
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        x[i] = v;
}

/* x[i] *= s (gradient clipping, micro-batch averaging). */
extern "C" __global__ void hzk_scale_f32(float *x, float s, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        x[i] *= s;
}

/* x[i] = bf16(x[i] * s), s a bf16 value: Gemma 3's embedding times its bf16 normalizer, and
 * the gradient through it (transformers multiplies two bf16 tensors). Launch: block 256, any
 * grid (grid-stride). */
extern "C" __global__ void hzk_scale_bf16(bf16 *x, float s, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        x[i] = __float2bfloat16(__bfloat162float(x[i]) * s);
}

#endif
