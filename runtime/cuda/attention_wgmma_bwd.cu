/* runtime/cuda/attention_wgmma_bwd.cu - causal grouped-query attention backward on Hopper's
 * warpgroup products (sm_90a), head_dim 128: the same inputs, outputs and numerics as
 * hzk_attention_backward and hzk_attention_backward_dq (attention.cu): dq (B, T, NH, HD),
 * dk, dv (B, T, NKV, HD) bf16, written whole, from dout, q, k, v, lse and D =
 * rowsum(dout * out) (hzk_attention_backward_preprocess); P recomputed from lse, rounded to
 * bf16 before P^T dO, dS to bf16 before its products; accumulators fp32. No sums by atomics:
 * dK and dV come from one kernel, dQ from another (each redoes S and dP), each output
 * element summed in one fixed order, so the backward is bit-deterministic.
 *
 * Both kernels have attention_wgmma.cu's roles: warpgroup 0's first thread drives the TMA
 * (the tiles' tensor maps, runtime/cuda/tmap.c), filling the block's own tiles once per item
 * and a ring of HZ_ATT_WB_STAGES buffers per step, each arrival counted on an mbarrier and
 * each buffer released by both consumers before it is filled again; warpgroups 1 and 2 are
 * the consumers, 64 rows each. Tiles are stored with the 128-byte swizzle in blocks of 64
 * columns, every 64-row tile of a block its own [column block][row] piece, so one tile serves
 * both as a K-major operand (S = Q K^T's) and an MN-major one (dK += dS^T Q's).
 *
 * hzk_attention_backward_kv_wgmma (dK, dV): an item is 128 keys of one kv head (consumer c
 * its 64 keys from 64 c); it walks every query head of the group and each one's query tiles
 * of 64 at or after the keys, computing S^T = K Q^T and dP^T = V dO^T (keys as the rows, so
 * P^T and dS^T are A operands in registers as they come out), dV += P^T dO, dK += dS^T Q.
 * Consumer 1's keys are all after the first tile's queries: it skips that tile.
 * hzk_attention_backward_q_wgmma (dQ): an item is 128 query rows of one head (consumer c its
 * 64 from 64 c); it walks the key tiles of 64 at or before them: S = Q K^T, dP = dO V^T,
 * dQ += dS K. Consumer 0's queries are all before the last tile's keys: it skips that tile.
 * Items are taken as the forward's (hz_ws_item: one block an item, or persistent blocks),
 * the most work first. */

#ifdef HZ_WGMMA
/* A block's shared memory: its own tiles (K then V, or Q then dO: 128 rows each, consumer
 * c's 64 at + 16384 c), the ring (STAGE bytes a stage), the mbarriers */
struct hz_wb_smem {
    unsigned own, ring, ofull, oempty, full, empty;
};
template <unsigned STAGE> __device__ __forceinline__ hz_wb_smem hz_wb_carve(void) {
    unsigned base = hz_smem_u32(hz_wg_smem);
    base += (1024u - (base & 1023u)) & 1023u;
    hz_wb_smem m;
    m.own = base, m.ring = base + 2 * 128 * 128 * 2;
    m.ofull = m.ring + HZ_ATT_WB_STAGES * STAGE, m.oempty = m.ofull + 8;
    m.full = m.oempty + 8, m.empty = m.full + 8 * HZ_ATT_WB_STAGES;
    if (threadIdx.x == 0) { /* arrivals: the TMA thread's (with its bytes), or both consumers' */
        hz_mbar_init(m.ofull, 1), hz_mbar_init(m.oempty, 256);
        for (int i = 0; i < HZ_ATT_WB_STAGES; i++) hz_mbar_init(m.full + 8 * i, 1), hz_mbar_init(m.empty + 8 * i, 256);
    }
    __syncthreads();
    return m;
}
/* One 64-row tile of a (B, T, heads, 128) map: both column blocks at DST, on BAR */
__device__ __forceinline__ void hz_wb_tile(unsigned dst, const void *map, int head, int row, int b, unsigned bar) {
    hz_tma_load_4d(dst, map, 0, head, row, b, bar);
    hz_tma_load_4d(dst + 8192, map, 64, head, row, b, bar);
}
/* The producer's fill of item N's own tiles: after the last item's release, the 128 rows
 * from ROW of one head of map A, then of map B (K then V, or Q then dO), each consumer's 64
 * in its own piece */
__device__ __forceinline__ void hz_wb_fill_own(const hz_wb_smem &m, int n, const void *ta, const void *tb, int head,
                                               int row, int b) {
    if (n > 0) hz_mbar_wait(m.oempty, (unsigned)(n - 1) & 1u);
    hz_mbar_expect_tx(m.ofull, 2 * 128 * 128 * 2);
    for (int c = 0; c < 2; c++) {
        hz_wb_tile(m.own + 16384u * c, ta, head, row + 64 * c, b, m.ofull);
        hz_wb_tile(m.own + 32768u + 16384u * c, tb, head, row + 64 * c, b, m.ofull);
    }
}
/* The producer takes ring fill RING's stage (STAGE bytes each) once both consumers released
 * its last fill, expecting BYTES on its mbarrier, which *BAR gets; the stage's address */
template <unsigned STAGE>
__device__ __forceinline__ unsigned hz_wb_take(const hz_wb_smem &m, int ring, unsigned bytes, unsigned *bar) {
    constexpr int ST = HZ_ATT_WB_STAGES;
    *bar = m.full + 8 * (ring % ST);
    if (ring >= ST) hz_mbar_wait(m.empty + 8 * (ring % ST), (unsigned)(ring / ST - 1) & 1u);
    hz_mbar_expect_tx(*bar, bytes);
    return m.ring + (unsigned)(ring % ST) * STAGE;
}
/* Two floats of shared memory at ADDR (8-byte aligned) */
__device__ __forceinline__ float2 hz_lds_f32x2(unsigned addr) {
    float2 v;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n" : "=f"(v.x), "=f"(v.y) : "r"(addr));
    return v;
}
/* acc (64 x N) = A B^T for 64-row tiles A and B (K-major, head_dim 128 deep), N = 64; issued
 * and committed */
__device__ __forceinline__ void hz_wb_ss(float *acc, unsigned sA, unsigned sB) {
#pragma unroll
    for (int kk = 0; kk < 8; kk++)
        hz_wgmma_ss_n64(acc, hz_wgmma_desc(sA + (unsigned)(kk / 4) * 8192 + (unsigned)(kk % 4) * 32, 16, 1024),
                        hz_wgmma_desc(sB + (unsigned)(kk / 4) * 8192 + (unsigned)(kk % 4) * 32, 16, 1024), kk > 0);
    hz_wgmma_commit();
}
/* acc (64 x 128) += A B: A (64 x 64) as fragments, B a 64-row tile read transposed (MN-major);
 * fenced, issued and committed */
__device__ __forceinline__ void hz_wb_rs(float *acc, unsigned (*a)[4], unsigned sB) {
    hz_wgmma_fence();
#pragma unroll
    for (int kb = 0; kb < 4; kb++) hz_wgmma_rs_tb_n128(acc, a[kb], hz_wgmma_desc(sB + (unsigned)kb * 2048, 8192, 1024), 1);
    hz_wgmma_commit();
}
/* A consumer's 64 rows of acc (64 x 128) times MUL as bf16 rows row0, row0 + 8 of DST (rows
 * RSTRIDE elements apart), rows >= T left out */
__device__ __forceinline__ void hz_wb_store(bf16 *dst, const float *acc, float mul, long rstride, int row0, int T,
                                            int t) {
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int row = row0 + 8 * rr;
        if (row >= T) continue;
        bf16 *p = dst + (long)row * rstride;
#pragma unroll
        for (int i = 0; i < 16; i++)
            *reinterpret_cast<unsigned *>(p + 8 * i + 2 * t) =
                hz_pack_bf16x2(acc[4 * i + 2 * rr] * mul, acc[4 * i + 2 * rr + 1] * mul);
    }
}
#endif

/* dK, dV. TQ, TDO: q's and dout's maps, TK, TV: k's and v's (boxes of 64 rows); TLSE, TD:
 * lse's and D's (B NH, T) maps (boxes of 64). */
extern "C" __global__ void __launch_bounds__(HZ_ATT_WB_THREADS, 1)
hzk_attention_backward_kv_wgmma(bf16 *dk, bf16 *dv, const __grid_constant__ hz_tmap tq,
                                const __grid_constant__ hz_tmap tk, const __grid_constant__ hz_tmap tv,
                                const __grid_constant__ hz_tmap tdo, const __grid_constant__ hz_tmap tlse,
                                const __grid_constant__ hz_tmap tD, int B, int T, int NH, int NKV, int HD,
                                float scale, int window) {
    if (HD != HZ_ATT_WG_HD || window != 0) __trap();
#ifdef HZ_WGMMA
    constexpr int ST = HZ_ATT_WB_STAGES;
    constexpr unsigned SS = HZ_ATT_WB_STAGE_KV;
    const hz_wb_smem m = hz_wb_carve<SS>();
    const int G = NH / NKV, nq = (T + 63) / 64, nkt = (T + 127) / 128, items = nkt * B * NKV;
    if (threadIdx.x < 128) {
        hz_setmaxnreg_dec<HZ_ATT_WB_PRODUCER_REGS>();
        if (threadIdx.x != 0) return;
        int ring = 0, n = 0; /* ring fills and items so far: the phases */
        for (int r = 0; r * (int)gridDim.x < items; r++) {
            const int it = hz_ws_item(r, items);
            if (it < 0) continue;
            const int kt = it / (B * NKV), b = it % (B * NKV) / NKV, hk = it % NKV;
            hz_wb_fill_own(m, n, &tk, &tv, hk, kt * 128, b);
            for (int h = hk * G; h < hk * G + G; h++)
                for (int qt = 2 * kt; qt < nq; qt++, ring++) {
                    unsigned bar;
                    const unsigned st = hz_wb_take<SS>(m, ring, 2 * 64 * 128 * 2 + 2 * 64 * 4, &bar);
                    hz_wb_tile(st, &tq, h, 64 * qt, b, bar);
                    hz_wb_tile(st + 16384, &tdo, h, 64 * qt, b, bar);
                    hz_tma_load_2d(st + 32768, &tlse, 64 * qt, b * NH + h, bar);
                    hz_tma_load_2d(st + 32768 + 256, &tD, 64 * qt, b * NH + h, bar);
                }
            n++;
        }
        return;
    }
    hz_setmaxnreg_inc<HZ_ATT_WB_CONSUMER_REGS>();
    const int c = (int)threadIdx.x / 128 - 1, w = ((int)threadIdx.x % 128) / 32;
    const int g = ((int)threadIdx.x % 32) / 4, t = (int)threadIdx.x % 4;
    const float sl2 = scale * 1.4426950408889634f, l2e = 1.4426950408889634f;
    const long ks = (long)NKV * HZ_ATT_WG_HD;
    const unsigned sK = m.own + 16384u * c, sV = m.own + 32768u + 16384u * c;
    int ring = 0, n = 0;
    for (int r = 0; r * (int)gridDim.x < items; r++) {
        const int it = hz_ws_item(r, items);
        if (it < 0) continue;
        const int kt = it / (B * NKV), b = it % (B * NKV) / NKV, hk = it % NKV;
        const int k0 = kt * 128 + 64 * c, krow = k0 + 16 * w + g; /* this thread's keys: krow, krow + 8 */
        float dka[64], dva[64];
#pragma unroll
        for (int i = 0; i < 64; i++) dka[i] = 0.0f, dva[i] = 0.0f;
        hz_mbar_wait(m.ofull, (unsigned)n & 1u);
        for (int h = hk * G; h < hk * G + G; h++)
            for (int qt = 2 * kt; qt < nq; qt++, ring++) {
                const unsigned sQ = m.ring + (unsigned)(ring % ST) * SS, sdO = sQ + 16384, sL = sQ + 32768;
                hz_mbar_wait(m.full + 8 * (ring % ST), (unsigned)(ring / ST) & 1u);
                if (c == 1 && qt == 2 * kt) { /* its keys all after these queries */
                    hz_mbar_arrive(m.empty + 8 * (ring % ST));
                    continue;
                }
                float s[32], dp[32];
                unsigned pa[4][4], da[4][4];
                hz_wgmma_fence();
                hz_wb_ss(s, sK, sQ);   /* S^T = K Q^T */
                hz_wb_ss(dp, sV, sdO); /* dP^T = V dO^T */
                hz_wgmma_wait<0>();
                hz_wgmma_hold<32>(s);
                hz_wgmma_hold<32>(dp);
                const int q0 = 64 * qt;
                const bool edge = q0 < k0 + 63 || q0 + 64 > T; /* a key after a query, or queries past T */
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    const float2 L = hz_lds_f32x2(sL + (unsigned)(8 * i + 2 * t) * 4);
                    const float2 D = hz_lds_f32x2(sL + 256 + (unsigned)(8 * i + 2 * t) * 4);
#pragma unroll
                    for (int rr = 0; rr < 2; rr++)
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            const int x = 4 * i + 2 * rr + e, col = q0 + 8 * i + 2 * t + e;
                            float p = hz_exp2(fmaf(s[x], sl2, -(e ? L.y : L.x) * l2e));
                            if (edge && (krow + 8 * rr > col || col >= T)) p = 0.0f;
                            s[x] = p;
                            dp[x] = p * (dp[x] - (e ? D.y : D.x));
                        }
                }
                hz_wg_pack_p<4>(pa, s);
                hz_wg_pack_p<4>(da, dp);
                hz_wgmma_fence();
#pragma unroll
                for (int kb = 0; kb < 4; kb++) /* dV += P^T dO, dK += dS^T Q */
                    hz_wgmma_rs_tb_n128(dva, pa[kb], hz_wgmma_desc(sdO + (unsigned)kb * 2048, 8192, 1024), 1);
#pragma unroll
                for (int kb = 0; kb < 4; kb++)
                    hz_wgmma_rs_tb_n128(dka, da[kb], hz_wgmma_desc(sQ + (unsigned)kb * 2048, 8192, 1024), 1);
                hz_wgmma_commit();
                hz_wgmma_wait<0>();
                hz_wgmma_hold<64>(dva);
                hz_wgmma_hold<64>(dka);
                hz_wgmma_hold<16>(&pa[0][0]);
                hz_wgmma_hold<16>(&da[0][0]);
                hz_mbar_arrive(m.empty + 8 * (ring % ST));
            }
        hz_mbar_arrive(m.oempty); /* K and V read for the last time */
        const long base = (long)b * T * ks + (long)hk * HZ_ATT_WG_HD;
        hz_wb_store(dk + base, dka, scale, ks, krow, T, t);
        hz_wb_store(dv + base, dva, 1.0f, ks, krow, T, t);
        n++;
    }
#else
    __trap(); /* compiled without sm_90a's features */
#endif
}

/* dQ. LSE, D: (B, NH, T) fp32; TQ, TDO, TK, TV: the maps (boxes of 64 rows). */
extern "C" __global__ void __launch_bounds__(HZ_ATT_WB_THREADS, 1)
hzk_attention_backward_q_wgmma(bf16 *dq, const float *lse, const float *D, const __grid_constant__ hz_tmap tq,
                               const __grid_constant__ hz_tmap tk, const __grid_constant__ hz_tmap tv,
                               const __grid_constant__ hz_tmap tdo, int B, int T, int NH, int NKV, int HD,
                               float scale, int window) {
    if (HD != HZ_ATT_WG_HD || window != 0) __trap();
#ifdef HZ_WGMMA
    constexpr int ST = HZ_ATT_WB_STAGES;
    constexpr unsigned SS = HZ_ATT_WB_STAGE_Q;
    const hz_wb_smem m = hz_wb_carve<SS>();
    const int G = NH / NKV, nqt = (T + 127) / 128, nk = (T + 63) / 64, items = nqt * B * NH;
    if (threadIdx.x < 128) {
        hz_setmaxnreg_dec<HZ_ATT_WB_PRODUCER_REGS>();
        if (threadIdx.x != 0) return;
        int ring = 0, n = 0;
        for (int r = 0; r * (int)gridDim.x < items; r++) {
            const int it = hz_ws_item(r, items);
            if (it < 0) continue;
            const hz_ws_at a = hz_ws_decode(it, nqt, B, NH);
            hz_wb_fill_own(m, n, &tq, &tdo, a.h, a.qt * 128, a.b);
            const int nj = min(2 * a.qt + 2, nk);
            for (int j = 0; j < nj; j++, ring++) {
                unsigned bar;
                const unsigned st = hz_wb_take<SS>(m, ring, 2 * 64 * 128 * 2, &bar);
                hz_wb_tile(st, &tk, a.h / G, 64 * j, a.b, bar);
                hz_wb_tile(st + 16384, &tv, a.h / G, 64 * j, a.b, bar);
            }
            n++;
        }
        return;
    }
    hz_setmaxnreg_inc<HZ_ATT_WB_CONSUMER_REGS>();
    const int c = (int)threadIdx.x / 128 - 1, w = ((int)threadIdx.x % 128) / 32;
    const int g = ((int)threadIdx.x % 32) / 4, t = (int)threadIdx.x % 4;
    const float sl2 = scale * 1.4426950408889634f;
    const long qs = (long)NH * HZ_ATT_WG_HD;
    const unsigned sQ = m.own + 16384u * c, sdO = m.own + 32768u + 16384u * c;
    int ring = 0, n = 0;
    for (int r = 0; r * (int)gridDim.x < items; r++) {
        const int it = hz_ws_item(r, items);
        if (it < 0) continue;
        const hz_ws_at a = hz_ws_decode(it, nqt, B, NH);
        const int q0 = a.qt * 128 + 64 * c, row0 = q0 + 16 * w + g; /* rows row0, row0 + 8 */
        float l2[2], Dr[2], dqa[64];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const int row = row0 + 8 * rr;
            const long at = ((long)a.b * NH + a.h) * T + row;
            l2[rr] = row < T ? lse[at] * 1.4426950408889634f : 0.0f;
            Dr[rr] = row < T ? D[at] : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < 64; i++) dqa[i] = 0.0f;
        hz_mbar_wait(m.ofull, (unsigned)n & 1u);
        const int nj = min(2 * a.qt + 2, nk);
        for (int j = 0; j < nj; j++, ring++) {
            const unsigned sK = m.ring + (unsigned)(ring % ST) * SS, sV = sK + 16384;
            hz_mbar_wait(m.full + 8 * (ring % ST), (unsigned)(ring / ST) & 1u);
            if (c == 0 && j == 2 * a.qt + 1) { /* its queries all before these keys */
                hz_mbar_arrive(m.empty + 8 * (ring % ST));
                continue;
            }
            float s[32], dp[32];
            unsigned da[4][4];
            hz_wgmma_fence();
            hz_wb_ss(s, sQ, sK);   /* S = Q K^T */
            hz_wb_ss(dp, sdO, sV); /* dP = dO V^T */
            hz_wgmma_wait<1>();
            hz_wgmma_hold<32>(s);
            const int k0 = 64 * j;
            const bool edge = k0 + 63 > q0 || k0 + 64 > T;
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int rr = 0; rr < 2; rr++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int x = 4 * i + 2 * rr + e, col = k0 + 8 * i + 2 * t + e;
                        float p = hz_exp2(fmaf(s[x], sl2, -l2[rr]));
                        if (edge && (col > row0 + 8 * rr || col >= T)) p = 0.0f;
                        s[x] = p;
                    }
            hz_wgmma_wait<0>();
            hz_wgmma_hold<32>(dp);
#pragma unroll
            for (int x = 0; x < 32; x++) dp[x] = s[x] * (dp[x] - Dr[(x / 2) & 1]);
            hz_wg_pack_p<4>(da, dp);
            hz_wb_rs(dqa, da, sK); /* dQ += dS K */
            hz_wgmma_wait<0>();
            hz_wgmma_hold<64>(dqa);
            hz_wgmma_hold<16>(&da[0][0]);
            hz_mbar_arrive(m.empty + 8 * (ring % ST));
        }
        hz_mbar_arrive(m.oempty); /* Q and dO read for the last time */
        hz_wb_store(dq + (long)a.b * T * qs + (long)a.h * HZ_ATT_WG_HD, dqa, scale, qs, row0, T, t);
        n++;
    }
#else
    __trap(); /* compiled without sm_90a's features */
#endif
}
