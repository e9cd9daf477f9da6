/* runtime/cuda/attention.cu - causal grouped-query flash attention, forward and backward.
 * q, out, dout, dq (B, T, NH, HD) bf16 = (N, NH*HD); k, v, dk, dv (B, T, NKV, HD) bf16;
 * lse, D (B, NH, T) fp32. Query head h reads kv head
 * h / (NH / NKV); scores are scaled by `scale` (HD^-0.5, or Gemma 3's
 * query_pre_attn_scalar^-0.5) and masked causally, and with `window` > 0 to the keys
 * t - window < s <= t (key tiles wholly before a tile's window are skipped).
 * Algorithm: FlashAttention-2 on mma.sync m16n8k16 (bf16 in, fp32 accumulate) with ldmatrix
 * from XOR-swizzled shared tiles and cp.async loads; the T x T matrix is never stored.
 * HD = 32, 64 and 128 are compiled in; any other multiple of 16 is added by defining HZ_HD
 * in the prelude, as the generated kernels.cu does with the model's (Gemma 3's 256, whose
 * accumulators exceed the register file and spill: correct, not tuned). The compiled-in set
 * is a switch at the top of each kernel; an HD not in it traps, so the planner must reject
 * it. T may be any value >= 1: partial tiles are zero-filled and masked. Numerics:
 * probabilities are rounded to bf16 before P V (as every flash kernel does); lse, softmax
 * statistics and all accumulators are fp32. */

/* HZ_ATT_BM, HZ_ATT_BN, HZ_ATT_THREADS and the shared-memory sizes: attention.cuh, which the
 * kernel sources place before this file and the launch code includes. */
/* Blocks per SM the register allocation must allow (__launch_bounds__); tuning knobs that a
 * prelude may override. At 2 the compiler may use up to 255 registers (HD = 128 needs about
 * 225 forward, all 255 backward); 3 caps them at 168 (forward HD = 128 fits without spills). */
#ifndef HZ_ATT_FWD_MINB
#define HZ_ATT_FWD_MINB 2
#endif
#ifndef HZ_ATT_BWD_MINB
#define HZ_ATT_BWD_MINB 2
#endif

/* Byte offset of 16-byte chunk ch of row r in a tile of NC chunks per row. When NC is a power
 * of two the chunks are XOR-swizzled, so that the 8 rows one ldmatrix reads at one logical
 * chunk hit 8 distinct bank groups (conflict-free); other NC are stored plainly (correct, with
 * bank conflicts). The swizzle depends on r & 7 only, so for the rows an ldmatrix reads (8
 * consecutive rows starting at a multiple of 8) it is a function of the lane. */
template <int NC> __device__ __forceinline__ unsigned hz_att_off(int r, int ch) {
    int p = ch;
    if constexpr ((NC & (NC - 1)) == 0) {
        if constexpr (NC >= 8) p = ch ^ (r & 7);
        else if constexpr (NC == 4) p = ch ^ ((r >> 1) & 3);
        else if constexpr (NC == 2) p = ch ^ ((r >> 2) & 1);
    }
    return (unsigned)((r * NC + p) * 16);
}

/* hz_att_off(r, ch + 2 * pair) from off = hz_att_off(r, ch), ch in {0, 1}: with the swizzle
 * the column pair enters by XOR (it touches only the chunk bits), without it by addition.
 * Addresses are formed as tile + hz_att_col(lane offset, pair) + 16-row steps, so that a few
 * per-lane offsets serve every ldmatrix of a loop. */
template <int NC> __device__ __forceinline__ unsigned hz_att_col(unsigned off, int pair) {
    if constexpr ((NC & (NC - 1)) == 0) return off ^ (unsigned)(pair * 32);
    else return off + (unsigned)(pair * 32);
}

/* ROWS x HD tile of rows row0.. of a (T, stride) bf16 matrix into shared memory at s, by all
 * threads of the block with cp.async (the caller commits); rows >= T are zero-filled.
 * Thread tid copies chunk tid % NC of rows tid / NC + i * (threads / NC). */
template <int HD, int ROWS>
__device__ __forceinline__ void hz_att_load(unsigned s, const bf16 *g, long stride, int row0, int T) {
    constexpr int NC = HD / 8;
    if constexpr (HZ_ATT_THREADS % NC == 0) {
        constexpr int RSTEP = HZ_ATT_THREADS / NC;
        const int r0 = threadIdx.x / NC, ch = threadIdx.x % NC;
        const bf16 *src = g + (long)(row0 + r0) * stride + ch * 8;
        const long step = RSTEP * stride;
#pragma unroll
        for (int i = 0; i < ROWS / RSTEP; i++) {
            const bool ok = row0 + r0 + i * RSTEP < T;
            hz_cp_async16(s + hz_att_off<NC>(r0 + i * RSTEP, ch), ok ? src + i * step : g, ok);
        }
    } else {
        for (int c = threadIdx.x; c < ROWS * NC; c += HZ_ATT_THREADS) {
            const int r = c / NC, ch = c % NC;
            const bool ok = row0 + r < T;
            hz_cp_async16(s + hz_att_off<NC>(r, ch), ok ? g + (long)(row0 + r) * stride + ch * 8 : g, ok);
        }
    }
}

/* c (16 x HD, HD / 8 n-tiles of m16n8) += A B for A 16 x 64 as bf16 A fragments in
 * registers and B the 64 x HD row-major tile at sB in shared memory (read with .trans at
 * lane offset offC): P V in the forward, dS K in the q-tile backward. */
template <int NC>
__device__ __forceinline__ void hz_att_mma_tile(float (*c)[4], const unsigned (*a)[4], unsigned sB,
                                                unsigned offC) {
    constexpr unsigned ROW16 = 16 * NC * 16;
#pragma unroll
    for (int dp = 0; dp < NC / 2; dp++) {
        const unsigned b = sB + hz_att_col<NC>(offC, dp);
#pragma unroll
        for (int kk = 0; kk < HZ_ATT_BN / 16; kk++) {
            unsigned bf[4];
            hz_ldmatrix_x4_trans(bf, b + kk * ROW16);
            hz_mma_bf16_16816(c[2 * dp], a[kk], bf);
            hz_mma_bf16_16816(c[2 * dp + 1], a[kk], bf + 2);
        }
    }
}

/* ---- forward -----------------------------------------------------------------------
 * Lane offsets for the three ldmatrix patterns, each then moved by hz_att_col (column pair)
 * and by 16-row steps:
 *   A (rows 16w + lane%16, chunk lane/16): a 16-row A operand, row-major storage;
 *   B (rows lane%8 + 8*(lane/16), chunk (lane/8)%2): two n8 B operands from [n][k] storage;
 *   C (rows lane%8 + 8*((lane/8)%2), chunk lane/16): two n8 B operands from [k][n] storage,
 *     with .trans (also an A operand from [k][m] storage with rows and chunks swapped). */

/* One block: 64 query rows of one (batch, head); warp w owns rows 16w..16w+15 with Q in
 * registers, S (16 x 64) and O (16 x HD) accumulators in registers. Shared memory: Q, K, V
 * tiles, single-buffered: the V load overlaps QK^T and softmax, the next K load overlaps PV. */
template <int HD>
__device__ __forceinline__ void hz_att_fwd(bf16 *out, float *lse, const bf16 *q, const bf16 *k,
                                           const bf16 *v, int T, int NH, int NKV, float scale,
                                           int window) {
    constexpr int BM = HZ_ATT_BM, BN = HZ_ATT_BN, NC = HD / 8, KS = HD / 16, NT = HD / 8;
    constexpr unsigned ROW16 = 16 * NC * 16; /* bytes of 16 tile rows */
    extern __shared__ __align__(16) unsigned char hz_dyn_smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int b = blockIdx.x / NH, h = blockIdx.x - b * NH, hk = h / (NH / NKV);
    const int qb = gridDim.y - 1 - blockIdx.y, q0 = qb * BM; /* longest rows first */
    const long qs = (long)NH * HD, ks = (long)NKV * HD;
    const bf16 *qg = q + (long)b * T * qs + h * HD;
    const bf16 *kg = k + (long)b * T * ks + hk * HD;
    const bf16 *vg = v + (long)b * T * ks + hk * HD;
    const unsigned sQ = hz_smem_u32(hz_dyn_smem), sK = sQ + BM * HD * 2, sV = sK + BN * HD * 2;
    const unsigned offA = hz_att_off<NC>(warp * 16 + (lane & 15), lane >> 4);
    const unsigned offB = hz_att_off<NC>((lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);
    const unsigned offC = hz_att_off<NC>((lane & 7) + (((lane >> 3) & 1) << 3), lane >> 4);

    /* with a window, the first key tile any of these rows sees */
    const int j0 = window > 0 && q0 - window + 1 > 0 ? (q0 - window + 1) / BN : 0;
    hz_att_load<HD, BM>(sQ, qg, qs, q0, T);
    hz_att_load<HD, BN>(sK, kg, ks, j0 * BN, T);
    hz_cp_async_commit();
    hz_cp_async_wait_all();
    __syncthreads();
    unsigned qf[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; kk++) hz_ldmatrix_x4(qf[kk], sQ + hz_att_col<NC>(offA, kk));

    float o[NT][4] = {};
    float m[2] = {-HZ_INF, -HZ_INF}, l[2] = {0.0f, 0.0f}; /* rows g and g + 8, log2 domain */
    const float sl2 = scale * 1.4426950408889634f;
    const int row0 = q0 + warp * 16 + g;
    for (int j = j0; j <= qb; j++) {
        hz_att_load<HD, BN>(sV, vg, ks, j * BN, T);
        hz_cp_async_commit();

        float s[BN / 8][4] = {};
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            const unsigned ak = sK + hz_att_col<NC>(offB, kk);
#pragma unroll
            for (int np = 0; np < BN / 16; np++) {
                unsigned bf[4];
                hz_ldmatrix_x4(bf, ak + np * ROW16);
                hz_mma_bf16_16816(s[2 * np], qf[kk], bf);
                hz_mma_bf16_16816(s[2 * np + 1], qf[kk], bf + 2);
            }
        }
        /* scale to the log2 domain, mask the diagonal tile (and keys before the window),
         * online softmax */
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[nt][e] * sl2;
                const int key = j * BN + nt * 8 + 2 * t + (e & 1), row = row0 + (e >> 1) * 8;
                if ((j == qb && key > row) || (window > 0 && key <= row - window)) x = -HZ_INF;
                s[nt][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        }
        /* causal: every row has a live key in every tile; with a window a row may have none
         * in its first tiles, whose max is then -inf: taken as 0 so that P = 0, not NaN */
        float alpha[2], mz[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            mz[r] = mx[r] == -HZ_INF ? 0.0f : mx[r];
            alpha[r] = hz_exp2(m[r] - mz[r]);
            m[r] = mx[r];
            l[r] *= alpha[r];
        }
        unsigned pf[BN / 16][4]; /* P as bf16 A fragments */
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            float p[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                p[e] = hz_exp2(s[nt][e] - mz[e >> 1]);
                l[e >> 1] += p[e];
            }
            pf[nt >> 1][(nt & 1) * 2] = hz_pack_bf16x2(p[0], p[1]);
            pf[nt >> 1][(nt & 1) * 2 + 1] = hz_pack_bf16x2(p[2], p[3]);
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            o[nt][0] *= alpha[0], o[nt][1] *= alpha[0];
            o[nt][2] *= alpha[1], o[nt][3] *= alpha[1];
        }

        hz_cp_async_wait_all(); /* V landed; all warps are done with K */
        __syncthreads();
        if (j < qb) {
            hz_att_load<HD, BN>(sK, kg, ks, (j + 1) * BN, T);
            hz_cp_async_commit();
        }
        hz_att_mma_tile<NC>(o, pf, sV, offC);
        hz_cp_async_wait_all(); /* next K landed; all warps are done with V */
        __syncthreads();
    }

    /* normalise; lse in natural log; O staged through this warp's own Q rows (read only by
     * this warp) so that the global stores are whole 16-byte chunks */
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = 1.0f / l[r];
        const int row = row0 + r * 8;
        if (t == 0 && row < T) lse[((long)b * NH + h) * T + row] = (m[r] + log2f(l[r])) * 0.6931471805599453f;
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        *reinterpret_cast<unsigned *>(hz_dyn_smem + hz_att_off<NC>(warp * 16 + g, nt) + t * 4) =
            hz_pack_bf16x2(o[nt][0] * inv[0], o[nt][1] * inv[0]);
        *reinterpret_cast<unsigned *>(hz_dyn_smem + hz_att_off<NC>(warp * 16 + g + 8, nt) + t * 4) =
            hz_pack_bf16x2(o[nt][2] * inv[1], o[nt][3] * inv[1]);
    }
    __syncwarp();
    bf16 *og = out + (long)b * T * qs + h * HD;
#pragma unroll
    for (int c = lane; c < 16 * NC; c += 32) {
        const int r = c / NC, ch = c % NC, row = q0 + warp * 16 + r;
        if (row < T)
            *reinterpret_cast<uint4 *>(og + (long)row * qs + ch * 8) =
                *reinterpret_cast<const uint4 *>(hz_dyn_smem + hz_att_off<NC>(warp * 16 + r, ch));
    }
}

/* out = softmax(scale * q k^T, causal) v; lse = log-sum-exp of each row's scaled scores.
 * window > 0: query t sees keys t - window < s <= t only (Gemma 3's local layers).
 * Launch: grid (B * NH, ceil(T / 64)), block 128, dynamic shared memory HZ_ATT_FWD_SMEM(HD)
 * bytes (48 KiB at HD = 128). blockIdx.y counts query tiles from the last (longest) one. */
extern "C" __global__ void __launch_bounds__(HZ_ATT_THREADS, HZ_ATT_FWD_MINB)
hzk_attention_forward(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int B,
                      int T, int NH, int NKV, int HD, float scale, int window) {
    (void)B;
    switch (HD) {
    case 128: hz_att_fwd<128>(out, lse, q, k, v, T, NH, NKV, scale, window); break;
    case 64: hz_att_fwd<64>(out, lse, q, k, v, T, NH, NKV, scale, window); break;
    case 32: hz_att_fwd<32>(out, lse, q, k, v, T, NH, NKV, scale, window); break;
#if defined(HZ_HD) && HZ_HD != 128 && HZ_HD != 64 && HZ_HD != 32
    case HZ_HD: hz_att_fwd<HZ_HD>(out, lse, q, k, v, T, NH, NKV, scale, window); break;
#endif
    default: __trap();
    }
}

/* ---- backward ----------------------------------------------------------------------
 * Three kernels: hzk_attention_backward_preprocess (D = rowsum(dout * out)), then, in either
 * order, hzk_attention_backward (dK, dV: one block per 64-key tile of one kv head, looping
 * over the query heads of its group and the query tiles at or after it, so GQA sums need no
 * atomics) and hzk_attention_backward_dq (dQ: one block per 64-query tile of one head,
 * looping over the key tiles at or before it). No output is summed with atomics, so the
 * backward is bit-deterministic. Computing dQ apart redoes S and dP (3 of the backward's 5
 * matrix products again), which measured faster than adding dS K into an fp32 buffer with
 * atomics from every key tile at HD = 128 and 4% slower at HD = 64 (bench/NOTES.md). */

/* D[b, h, t] = sum_d dout[b, t, h, d] * out[b, t, h, d].
 * Launch: block 256, grid ceil(B * T * NH / 8) (one warp per (token, head) row; any grid is
 * correct). */
extern "C" __global__ void hzk_attention_backward_preprocess(float *D, const bf16 *dout,
                                                             const bf16 *out, int B, int T,
                                                             int NH, int HD) {
    const int lane = threadIdx.x & 31;
    const long rows = (long)B * T * NH;
    const long wstride = ((long)gridDim.x * blockDim.x) >> 5;
    for (long rw = (blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5; rw < rows; rw += wstride) {
        const long n = rw / NH;
        const int h = (int)(rw - n * NH);
        const long bt = n / T, tt = n - bt * T;
        float s = 0.0f;
        for (int d = lane * 2; d < HD; d += 64) {
            const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(dout + rw * HD + d));
            const float2 o = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(out + rw * HD + d));
            s += a.x * o.x + a.y * o.y;
        }
        s = hz_warp_sum(s);
        if (lane == 0) D[(bt * NH + h) * T + tt] = s;
    }
}

/* The paired products of both backward kernels, over the head dimension (NC 16-byte chunks):
 * c1 += A1 B1^T and c2 += A2 B2^T, A 16 rows at a1, a2 (+ offA: this warp's rows), B N rows
 * at b1, b2 (+ offB), all row-major tiles in shared memory; c (N / 8) n-tiles of m16n8. The
 * kv kernel forms S^T = K Q^T and dP^T = V dO^T with it, the q kernel S = Q K^T and
 * dP = dO V^T. */
template <int NC, int N>
__device__ __forceinline__ void hz_att_mma_pair(float (*c1)[4], float (*c2)[4], unsigned a1,
                                                unsigned a2, unsigned b1, unsigned b2,
                                                unsigned offA, unsigned offB) {
    constexpr unsigned ROW16 = 16 * NC * 16;
#pragma unroll
    for (int kk = 0; kk < NC / 2; kk++) {
        unsigned x1[4], x2[4];
        hz_ldmatrix_x4(x1, a1 + hz_att_col<NC>(offA, kk));
        hz_ldmatrix_x4(x2, a2 + hz_att_col<NC>(offA, kk));
        const unsigned y1 = b1 + hz_att_col<NC>(offB, kk), y2 = b2 + hz_att_col<NC>(offB, kk);
#pragma unroll
        for (int np = 0; np < N / 16; np++) {
            unsigned bf[4];
            hz_ldmatrix_x4(bf, y1 + np * ROW16);
            hz_mma_bf16_16816(c1[2 * np], x1, bf);
            hz_mma_bf16_16816(c1[2 * np + 1], x1, bf + 2);
            hz_ldmatrix_x4(bf, y2 + np * ROW16);
            hz_mma_bf16_16816(c2[2 * np], x2, bf);
            hz_mma_bf16_16816(c2[2 * np + 1], x2, bf + 2);
        }
    }
}

/* One block: 64 keys of one (batch, kv head); warp w owns keys 16w..16w+15 and their dK, dV
 * (16 x HD each) in registers. Per query tile (of each query head of the group), in sub-tiles
 * of QW queries (16 when HD > 64, else 32) to bound the registers:
 *   S^T = K_w Q^T, P^T = exp(scale S^T - lse), dP^T = V_w dO^T, dV_w += P^T dO,
 *   dS^T = P^T (dP^T - D), dK_w += dS^T Q.
 * Q, dO, lse and D are double-buffered: the next tile's loads run during the whole iteration. */
template <int HD>
__device__ __forceinline__ void hz_att_bwd(bf16 *dk, bf16 *dv, const bf16 *dout,
                                           const bf16 *q, const bf16 *k, const bf16 *v,
                                           const float *lse, const float *D, int T, int NH,
                                           int NKV, float scale, int window) {
    constexpr int BM = HZ_ATT_BM, BN = HZ_ATT_BN, NC = HD / 8, NT = HD / 8;
    constexpr int QW = HD > 64 ? 16 : 32; /* queries per sub-tile: bounds the registers */
    constexpr unsigned ROW16 = 16 * NC * 16;
    extern __shared__ __align__(16) unsigned char hz_dyn_smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int b = blockIdx.x / NKV, hk = blockIdx.x - b * NKV, G = NH / NKV;
    const int kb = blockIdx.y, k0 = kb * BN; /* tile 0 has the most work and starts first */
    /* the query tiles at or after this key tile; with a window, only those whose rows
     * reach back to one of its keys */
    const int nq_all = (T + BM - 1) / BM - kb, q_last = (k0 + BN - 1 + window - 1) / BM;
    const int nq = window > 0 && q_last - kb + 1 < nq_all ? q_last - kb + 1 : nq_all;
    const int niter = G * nq;
    const long qs = (long)NH * HD, ks = (long)NKV * HD;
    /* shared memory: K, V (BN x HD); two buffers of Q, dO (BM x HD each); two buffers of
     * lse * log2 e and D (BM each) */
    constexpr unsigned QBUF = 2 * BM * HD * 2; /* bytes of one Q + dO buffer */
    const unsigned sK = hz_smem_u32(hz_dyn_smem), sV = sK + BN * HD * 2, sQ0 = sV + BN * HD * 2;
    float *sL0 = reinterpret_cast<float *>(hz_dyn_smem + 2 * BN * HD * 2 + 2 * QBUF);
    const unsigned offA = hz_att_off<NC>(warp * 16 + (lane & 15), lane >> 4);
    const unsigned offB = hz_att_off<NC>((lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);
    const unsigned offC = hz_att_off<NC>((lane & 7) + (((lane >> 3) & 1) << 3), lane >> 4);

    /* start the loads of the query-side tiles of iteration it into buffer buf */
    auto load_query_side = [&](int it, int buf) {
        const int h = hk * G + it / nq, qrow0 = (kb + it % nq) * BM;
        const long off = (long)b * T * qs + h * HD;
        hz_att_load<HD, BM>(sQ0 + buf * QBUF, q + off, qs, qrow0, T);
        hz_att_load<HD, BM>(sQ0 + buf * QBUF + BM * HD * 2, dout + off, qs, qrow0, T);
        hz_cp_async_commit();
        float *sL = sL0 + buf * 2 * BM, *sD = sL + BM;
        for (int i = threadIdx.x; i < BM; i += HZ_ATT_THREADS) {
            const int row = qrow0 + i;
            const long li = ((long)b * NH + h) * T + row;
            sL[i] = row < T ? lse[li] * 1.4426950408889634f : HZ_INF; /* P = 0 past T */
            sD[i] = row < T ? D[li] : 0.0f;
        }
    };
    hz_att_load<HD, BN>(sK, k + (long)b * T * ks + hk * HD, ks, k0, T);
    hz_att_load<HD, BN>(sV, v + (long)b * T * ks + hk * HD, ks, k0, T);
    load_query_side(0, 0);
    hz_cp_async_wait_all();
    __syncthreads();

    float dka[NT][4] = {}, dva[NT][4] = {};
    const float sl2 = scale * 1.4426950408889634f;
    const int key0 = k0 + warp * 16 + g; /* this thread's keys: key0, key0 + 8 */
    for (int it = 0; it < niter; it++) {
        const int qi = kb + it % nq, q0 = qi * BM, buf = it & 1;
        const unsigned sQ = sQ0 + buf * QBUF, sdO = sQ + BM * HD * 2;
        const float *sL = sL0 + buf * 2 * BM, *sD = sL + BM;
        /* the other buffer was last read in iteration it - 1, which ended with a barrier */
        if (it + 1 < niter) load_query_side(it + 1, buf ^ 1);
#pragma unroll
        for (int hq = 0; hq < BM / QW; hq++) { /* queries QW hq .. QW hq + QW - 1 of the tile */
            /* S^T = K_w Q^T and dP^T = V_w dO^T (16 keys x QW queries) */
            float st[QW / 8][4] = {}, dpt[QW / 8][4] = {};
            const unsigned sub = hq * (QW / 16) * ROW16;
            hz_att_mma_pair<NC, QW>(st, dpt, sK, sV, sQ + sub, sdO + sub, offA, offB);
            /* P^T and dS^T = P^T (dP^T - D), packed as bf16 A fragments */
            unsigned pf[QW / 16][4], sf[QW / 16][4];
#pragma unroll
            for (int nt = 0; nt < QW / 8; nt++) {
                float p[4], ds[4];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int qc = hq * QW + nt * 8 + 2 * t + (e & 1);
                    p[e] = hz_exp2(st[nt][e] * sl2 - sL[qc]);
                    const int key = key0 + (e >> 1) * 8, row = q0 + qc;
                    if ((qi == kb && key > row) || (window > 0 && key <= row - window)) p[e] = 0.0f;
                    ds[e] = p[e] * (dpt[nt][e] - sD[qc]);
                }
                pf[nt >> 1][(nt & 1) * 2] = hz_pack_bf16x2(p[0], p[1]);
                pf[nt >> 1][(nt & 1) * 2 + 1] = hz_pack_bf16x2(p[2], p[3]);
                sf[nt >> 1][(nt & 1) * 2] = hz_pack_bf16x2(ds[0], ds[1]);
                sf[nt >> 1][(nt & 1) * 2 + 1] = hz_pack_bf16x2(ds[2], ds[3]);
            }
            /* dV_w += P^T dO and dK_w += dS^T Q over these QW queries */
#pragma unroll
            for (int dp = 0; dp < HD / 16; dp++) {
                const unsigned bo = sdO + hz_att_col<NC>(offC, dp) + hq * (QW / 16) * ROW16;
                const unsigned bq = sQ + hz_att_col<NC>(offC, dp) + hq * (QW / 16) * ROW16;
#pragma unroll
                for (int kq = 0; kq < QW / 16; kq++) {
                    unsigned bf[4];
                    hz_ldmatrix_x4_trans(bf, bo + kq * ROW16);
                    hz_mma_bf16_16816(dva[2 * dp], pf[kq], bf);
                    hz_mma_bf16_16816(dva[2 * dp + 1], pf[kq], bf + 2);
                    hz_ldmatrix_x4_trans(bf, bq + kq * ROW16);
                    hz_mma_bf16_16816(dka[2 * dp], sf[kq], bf);
                    hz_mma_bf16_16816(dka[2 * dp + 1], sf[kq], bf + 2);
                }
            }
        }
        hz_cp_async_wait_all(); /* next query-side tiles landed; every warp is done with buf */
        __syncthreads();
    }

    bf16 *dkg = dk + (long)b * T * ks + hk * HD, *dvg = dv + (long)b * T * ks + hk * HD;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int d = nt * 8 + 2 * t;
        if (key0 < T) {
            *reinterpret_cast<unsigned *>(dkg + (long)key0 * ks + d) = hz_pack_bf16x2(dka[nt][0] * scale, dka[nt][1] * scale);
            *reinterpret_cast<unsigned *>(dvg + (long)key0 * ks + d) = hz_pack_bf16x2(dva[nt][0], dva[nt][1]);
        }
        if (key0 + 8 < T) {
            *reinterpret_cast<unsigned *>(dkg + (long)(key0 + 8) * ks + d) = hz_pack_bf16x2(dka[nt][2] * scale, dka[nt][3] * scale);
            *reinterpret_cast<unsigned *>(dvg + (long)(key0 + 8) * ks + d) = hz_pack_bf16x2(dva[nt][2], dva[nt][3]);
        }
    }
}

/* dk, dv (overwritten) from dout, q, k, v, lse and D.
 * Launch: grid (B * NKV, ceil(T / 64)), block 128, dynamic shared memory
 * HZ_ATT_BWD_SMEM(HD) bytes (97 KiB at HD = 128, 49 KiB at 64: raise the kernel's
 * CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES first). blockIdx.y is the key tile (tile 0,
 * with the most query tiles after it, first). Needs D from hzk_attention_backward_preprocess. */
extern "C" __global__ void __launch_bounds__(HZ_ATT_THREADS, HZ_ATT_BWD_MINB)
hzk_attention_backward(bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                       const bf16 *v, const float *lse, const float *D, int B, int T, int NH,
                       int NKV, int HD, float scale, int window) {
    (void)B;
    switch (HD) {
    case 128: hz_att_bwd<128>(dk, dv, dout, q, k, v, lse, D, T, NH, NKV, scale, window); break;
    case 64: hz_att_bwd<64>(dk, dv, dout, q, k, v, lse, D, T, NH, NKV, scale, window); break;
    case 32: hz_att_bwd<32>(dk, dv, dout, q, k, v, lse, D, T, NH, NKV, scale, window); break;
#if defined(HZ_HD) && HZ_HD != 128 && HZ_HD != 64 && HZ_HD != 32
    case HZ_HD: hz_att_bwd<HZ_HD>(dk, dv, dout, q, k, v, lse, D, T, NH, NKV, scale, window); break;
#endif
    default: __trap();
    }
}

/* One block: 64 query rows of one (batch, head), looping over the key tiles at or before them
 * in order. Warp w owns rows 16w..16w+15: S = Q K^T and dP = dO V^T (16 x 64 each),
 * P = exp(scale S - lse), dS = P (dP - D), dQ_w += dS K in registers. Q, dO, K and V live in
 * shared memory; dS is rounded to bf16 as in the kv-tile kernel. */
template <int HD>
__device__ __forceinline__ void hz_att_bwd_dq(bf16 *dq, const bf16 *dout, const bf16 *q,
                                              const bf16 *k, const bf16 *v, const float *lse,
                                              const float *D, int T, int NH, int NKV,
                                              float scale, int window) {
    constexpr int BM = HZ_ATT_BM, BN = HZ_ATT_BN, NC = HD / 8, NT = HD / 8;
    extern __shared__ __align__(16) unsigned char hz_dyn_smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int b = blockIdx.x / NH, h = blockIdx.x - b * NH, hk = h / (NH / NKV);
    const int qb = gridDim.y - 1 - blockIdx.y, q0 = qb * BM; /* longest rows first */
    const long qs = (long)NH * HD, ks = (long)NKV * HD;
    const long qoff = (long)b * T * qs + h * HD, koff = (long)b * T * ks + hk * HD;
    const unsigned sQ = hz_smem_u32(hz_dyn_smem), sdO = sQ + BM * HD * 2, sK = sdO + BM * HD * 2,
                   sV = sK + BN * HD * 2;
    const unsigned offA = hz_att_off<NC>(warp * 16 + (lane & 15), lane >> 4);
    const unsigned offB = hz_att_off<NC>((lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);
    const unsigned offC = hz_att_off<NC>((lane & 7) + (((lane >> 3) & 1) << 3), lane >> 4);

    hz_att_load<HD, BM>(sQ, q + qoff, qs, q0, T);
    hz_att_load<HD, BM>(sdO, dout + qoff, qs, q0, T);
    hz_cp_async_commit();
    const int row0 = q0 + warp * 16 + g; /* this thread's rows: row0, row0 + 8 */
    float l2[2], dd[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = row0 + r * 8;
        const long li = ((long)b * NH + h) * T + row;
        l2[r] = row < T ? lse[li] * 1.4426950408889634f : HZ_INF; /* P = 0 past T */
        dd[r] = row < T ? D[li] : 0.0f;
    }
    float acc[NT][4] = {};
    const float sl2 = scale * 1.4426950408889634f;
    const int j0 = window > 0 && q0 - window + 1 > 0 ? (q0 - window + 1) / BN : 0;
    for (int j = j0; j <= qb; j++) {
        hz_att_load<HD, BN>(sK, k + koff, ks, j * BN, T);
        hz_att_load<HD, BN>(sV, v + koff, ks, j * BN, T);
        hz_cp_async_commit();
        hz_cp_async_wait_all();
        __syncthreads();
        float st[BN / 8][4] = {}, dpt[BN / 8][4] = {};
        hz_att_mma_pair<NC, BN>(st, dpt, sQ, sdO, sK, sV, offA, offB);
        unsigned sf[BN / 16][4]; /* dS as bf16 A fragments */
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            float ds[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = hz_exp2(st[nt][e] * sl2 - l2[e >> 1]);
                const int key = j * BN + nt * 8 + 2 * t + (e & 1), row = row0 + (e >> 1) * 8;
                if ((j == qb && key > row) || (window > 0 && key <= row - window)) p = 0.0f;
                ds[e] = p * (dpt[nt][e] - dd[e >> 1]);
            }
            sf[nt >> 1][(nt & 1) * 2] = hz_pack_bf16x2(ds[0], ds[1]);
            sf[nt >> 1][(nt & 1) * 2 + 1] = hz_pack_bf16x2(ds[2], ds[3]);
        }
        hz_att_mma_tile<NC>(acc, sf, sK, offC);
        __syncthreads(); /* every warp is done with K and V before the next tile lands */
    }
    bf16 *dqg = dq + qoff;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int d = nt * 8 + 2 * t;
        if (row0 < T)
            *reinterpret_cast<unsigned *>(dqg + (long)row0 * qs + d) = hz_pack_bf16x2(acc[nt][0] * scale, acc[nt][1] * scale);
        if (row0 + 8 < T)
            *reinterpret_cast<unsigned *>(dqg + (long)(row0 + 8) * qs + d) = hz_pack_bf16x2(acc[nt][2] * scale, acc[nt][3] * scale);
    }
}

/* dq (overwritten) from dout, q, k, v, lse and D (from hzk_attention_backward_preprocess).
 * Launch: grid (B * NH, ceil(T / 64)), block 128, dynamic shared memory
 * HZ_ATT_DQ_SMEM(HD) bytes (64 KiB at HD = 128: raise the kernel's
 * CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES first). */
extern "C" __global__ void __launch_bounds__(HZ_ATT_THREADS, HZ_ATT_BWD_MINB)
hzk_attention_backward_dq(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k,
                          const bf16 *v, const float *lse, const float *D, int B, int T,
                          int NH, int NKV, int HD, float scale, int window) {
    (void)B;
    switch (HD) {
    case 128: hz_att_bwd_dq<128>(dq, dout, q, k, v, lse, D, T, NH, NKV, scale, window); break;
    case 64: hz_att_bwd_dq<64>(dq, dout, q, k, v, lse, D, T, NH, NKV, scale, window); break;
    case 32: hz_att_bwd_dq<32>(dq, dout, q, k, v, lse, D, T, NH, NKV, scale, window); break;
#if defined(HZ_HD) && HZ_HD != 128 && HZ_HD != 64 && HZ_HD != 32
    case HZ_HD: hz_att_bwd_dq<HZ_HD>(dq, dout, q, k, v, lse, D, T, NH, NKV, scale, window); break;
#endif
    default: __trap();
    }
}
