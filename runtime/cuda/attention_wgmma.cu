/* runtime/cuda/attention_wgmma.cu - causal grouped-query attention forward on Hopper's
 * warpgroup products (util.cu's wgmma primitives, sm_90a), head_dim 128: the same outputs
 * and numerics as hzk_attention_forward (attention.cu: out (B, T, NH, HD) bf16, lse
 * (B, NH, T) fp32 in natural log; probabilities rounded to bf16 before P V; softmax
 * statistics and accumulators fp32) from q (B, T, NH, HD) and k, v (B, T, NKV, HD) as TMA
 * tensor maps (runtime/cuda/tmap.c), without sliding windows; FlashAttention-3's recipe
 * (Shah et al., 2024). An item is 128 query rows of one head, 64 for each of two consumer
 * warpgroups, against the key tiles of 128 at or before them. Per key tile j, a consumer
 * issues S(j+1) = Q K(j+1)^T (both operands in shared memory) and O += P(j) V(j) (P from
 * registers, V read transposed) and, while the two run, its online softmax of S(j+1); O is
 * rescaled once P(j) V(j) is done. The producer warpgroup's first thread fills Q and a ring
 * of HZ_ATT_WG_STAGES K/V buffers by the TMA. Tiles are stored with the 128-byte swizzle in
 * blocks of 64 columns (util.cu's wgmma notes). The trainer runs it where init times it
 * faster than the alternatives (attention_path.c). */

/* the dynamic shared memory of every kernel here (1024-aligned inside by its kernel) */
extern __shared__ unsigned char hz_wg_smem[];

#ifdef HZ_WGMMA
/* s (this thread's share of a 64 x 128 tile of raw scores Q K^T for key tile kt) becomes the
 * tile's probabilities exp2(s scale log2 e - m) against the running row maxima m (log2
 * units), updated; l, the running sums, are rescaled and added to; alpha gets each row's
 * rescale of what was summed before. Keys after the row (causal) or at or past T count as
 * -inf. Rows row0 and row0 + 8; t = lane % 4. */
__device__ __forceinline__ void hz_wg_softmax(float *s, float *m, float *l, float *alpha, float sl2, int kt,
                                              bool edge, int row0, int t, int T) {
    if (edge) {
        const int k0 = kt * HZ_ATT_WG_BN;
#pragma unroll
        for (int i = 0; i < 64; i++) {
            const int col = k0 + 8 * (i / 4) + 2 * t + (i & 1), row = row0 + 8 * ((i / 2) & 1);
            if (col > row || col >= T) s[i] = -HZ_INF;
        }
    }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        float mx = -HZ_INF;
#pragma unroll
        for (int i = 0; i < 16; i++) mx = fmaxf(mx, fmaxf(s[4 * i + 2 * rr], s[4 * i + 2 * rr + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m[rr], mx * sl2), mb = mn == -HZ_INF ? 0.0f : mn;
        alpha[rr] = hz_exp2(m[rr] - mb);
        m[rr] = mn;
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            const float p0 = hz_exp2(fmaf(s[4 * i + 2 * rr], sl2, -mb));
            const float p1 = hz_exp2(fmaf(s[4 * i + 2 * rr + 1], sl2, -mb));
            s[4 * i + 2 * rr] = p0, s[4 * i + 2 * rr + 1] = p1;
            sum += p0 + p1;
        }
        l[rr] = l[rr] * alpha[rr] + sum;
    }
}

/* P (fp32 probabilities in the accumulator layout, KB k16 blocks: 64 x 16 KB) as the A
 * fragments of P V: k16 block kb is the scores' n8 blocks 2 kb and 2 kb + 1. */
template <int KB = 8> __device__ __forceinline__ void hz_wg_pack_p(unsigned (*pa)[4], const float *s) {
#pragma unroll
    for (int kb = 0; kb < KB; kb++)
#pragma unroll
        for (int r = 0; r < 4; r++) pa[kb][r] = hz_pack_bf16x2(s[8 * kb + 2 * r], s[8 * kb + 2 * r + 1]);
}

/* s = Q K^T for the warpgroup's 64 rows (Q at sQw) and the 128 keys at sK; issued, not waited */
__device__ __forceinline__ void hz_wg_qk(float *s, unsigned sQw, unsigned sK) {
    constexpr unsigned QB = HZ_ATT_WG_BM * HZ_ATT_WG_HD * 2, KVB = HZ_ATT_WG_BN * HZ_ATT_WG_HD * 2;
#pragma unroll
    for (int kk = 0; kk < 8; kk++)
        hz_wgmma_ss_n128(s, hz_wgmma_desc(sQw + (unsigned)(kk / 4) * (QB / 4) + (unsigned)(kk % 4) * 32, 16, 1024),
                         hz_wgmma_desc(sK + (unsigned)(kk / 4) * (KVB / 2) + (unsigned)(kk % 4) * 32, 16, 1024),
                         kk > 0);
    hz_wgmma_commit();
}
/* The warpgroup's rows of out (o / l, bf16) and lse (natural log), rows >= T left out */
__device__ __forceinline__ void hz_wg_store(bf16 *out, float *lse, const float *o, const float *m, const float *l,
                                            int b, int h, int T, int NH, int row0, int t) {
    const long qs = (long)NH * HZ_ATT_WG_HD;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        float lt = l[rr];
        lt += __shfl_xor_sync(0xffffffffu, lt, 1);
        lt += __shfl_xor_sync(0xffffffffu, lt, 2);
        const int row = row0 + 8 * rr;
        if (row >= T) continue;
        const float inv = 1.0f / lt;
        bf16 *orow = out + ((long)b * T + row) * qs + (long)h * HZ_ATT_WG_HD;
#pragma unroll
        for (int i = 0; i < 16; i++)
            *reinterpret_cast<unsigned *>(orow + 8 * i + 2 * t) =
                hz_pack_bf16x2(o[4 * i + 2 * rr] * inv, o[4 * i + 2 * rr + 1] * inv);
        if (t == 0) lse[((long)b * NH + h) * T + row] = (m[rr] + log2f(lt)) * 0.6931471805599453f;
    }
}
#endif

/* ---- the warp-specialised forward ---------------------------------------------------------
 * FlashAttention-3's roles: warpgroup 0 is the producer, filling Q and the ring of K/V tiles
 * (each arrival counted by an mbarrier) and waiting for a buffer's release before filling it
 * again; warpgroups 1 and 2 are the consumers, each its own 64 query rows, taking turns
 * issuing their products (two named barriers), so one's softmax runs under the other's
 * products as well as under its own P V. (A producer of 128 threads by cp.async measured
 * 0.3-14% slower than the one TMA thread, and two warpgroups in lockstep without a producer
 * 24-37% slower: bench/NOTES.md, 2026-12-04; docs/design-changes.md 43.)
 * Blocks may be persistent: block x takes the (query tile, head) items of rounds r = 0, 1, ...
 * of gridDim.x items each, x-th of its round, counted from the round's end in odd rounds, in
 * the list that puts the longest rows first (item i: query tile nqt - 1 - i / (B NH), batch
 * and head i % (B NH)); so the producer fills the next item's Q and first K/V tiles under
 * the consumers' end of the last. Any grid is correct; one block an item is not persistent.
 * Registers: the producer gives back to HZ_ATT_WS_PRODUCER_REGS, the consumers take
 * HZ_ATT_WS_CONSUMER_REGS. Shared: Q, the ring, then the mbarriers: Q's arrival and
 * release, and each stage's arrival (full) and release (empty). */
#ifdef HZ_WGMMA
struct hz_ws_smem {
    unsigned sQ, sKV, qfull, qempty, full, empty; /* stage i: K at sKV + 2 KVB i, V after it */
};
__device__ __forceinline__ hz_ws_smem hz_ws_carve(void) {
    unsigned base = hz_smem_u32(hz_wg_smem);
    base += (1024u - (base & 1023u)) & 1023u;
    hz_ws_smem m;
    m.sQ = base, m.sKV = base + HZ_ATT_WG_BM * HZ_ATT_WG_HD * 2;
    m.qfull = m.sKV + 2 * HZ_ATT_WG_BN * HZ_ATT_WG_HD * 2 * HZ_ATT_WG_STAGES, m.qempty = m.qfull + 8;
    m.full = m.qempty + 8, m.empty = m.full + 8 * HZ_ATT_WG_STAGES;
    return m;
}
/* Block x's item of round r, or -1 when the round has none for it */
__device__ __forceinline__ int hz_ws_item(int r, int items) {
    const int G = (int)gridDim.x, x = (int)blockIdx.x, it = r * G + ((r & 1) ? G - 1 - x : x);
    return it < items ? it : -1;
}
/* Item it's query tile, batch, head */
struct hz_ws_at {
    int qt, b, h;
};
__device__ __forceinline__ hz_ws_at hz_ws_decode(int it, int nqt, int B, int NH) {
    hz_ws_at a;
    a.qt = nqt - 1 - it / (B * NH), a.b = it % (B * NH) / NH, a.h = it % (B * NH) % NH;
    return a;
}
/* The mbarriers' counts: the TMA thread's arrival (with its bytes) and both consumers' threads */
__device__ __forceinline__ void hz_ws_init(const hz_ws_smem &m) {
    if (threadIdx.x == 0) {
        hz_mbar_init(m.qfull, 1), hz_mbar_init(m.qempty, 256);
        for (int i = 0; i < HZ_ATT_WG_STAGES; i++)
            hz_mbar_init(m.full + 8 * i, 1), hz_mbar_init(m.empty + 8 * i, 256);
    }
    __syncthreads();
}

/* A consumer warpgroup (C 0 or 1): every item of this block, its 64 rows */
__device__ __forceinline__ void hz_ws_consume(const hz_ws_smem &m, bf16 *out, float *lse, int B, int T, int NH,
                                              float scale, int c) {
    constexpr unsigned QB = HZ_ATT_WG_BM * HZ_ATT_WG_HD * 2, KVB = HZ_ATT_WG_BN * HZ_ATT_WG_HD * 2;
    constexpr int ST = HZ_ATT_WG_STAGES;
    const int w = ((int)threadIdx.x % 128) / 32, g = ((int)threadIdx.x % 32) / 4, t = (int)threadIdx.x % 4;
    const int nqt = (T + HZ_ATT_WG_BM - 1) / HZ_ATT_WG_BM, items = nqt * B * NH;
    const unsigned sQw = m.sQ + (unsigned)c * (QB / 2);
    const float sl2 = scale * 1.4426950408889634f; /* scores in log2 units */
    int kv0 = 0, n = 0; /* as the producer's: the item's first K/V tile in the ring, items so far */
    auto stage = [&](int j) { return m.sKV + (unsigned)((kv0 + j) % ST) * 2 * KVB; };
    /* tile j's K and V are in */
    auto arrived = [&](int j) {
        hz_mbar_wait(m.full + 8 * ((kv0 + j) % ST), (unsigned)((kv0 + j) / ST) & 1u);
        hz_fence_proxy_async();
    };
    auto release = [&](int j) { hz_mbar_arrive(m.empty + 8 * ((kv0 + j) % ST)); };
    /* the consumers' turns: this one waits for its own, and after issuing gives the other its */
    auto my_turn = [&]() {
        if (c == 0) hz_bar_sync<1, 256>();
        else hz_bar_sync<2, 256>();
    };
    auto your_turn = [&]() {
        if (c == 0) hz_bar_arrive<2, 256>();
        else hz_bar_arrive<1, 256>();
    };
    auto pv = [&](int j, float *o, unsigned (*pa)[4]) {
        hz_wgmma_fence();
#pragma unroll
        for (int kb = 0; kb < 8; kb++)
            hz_wgmma_rs_tb_n128(o, pa[kb], hz_wgmma_desc(stage(j) + KVB + (unsigned)kb * 2048, KVB / 2, 1024), 1);
        hz_wgmma_commit();
    };
    if (c == 1) your_turn(); /* consumer 0 goes first */
    for (int r = 0; r * (int)gridDim.x < items; r++) {
        const int it = hz_ws_item(r, items);
        if (it < 0) continue;
        const hz_ws_at a = hz_ws_decode(it, nqt, B, NH);
        const int qt = a.qt, nkt = qt + 1;
        const int row0 = qt * HZ_ATT_WG_BM + 64 * c + 16 * w + g; /* this thread's rows: row0, row0 + 8 */
        auto edge = [&](int j) { return j == qt || (j + 1) * HZ_ATT_WG_BN > T; };
        float o[64], s[64], mx[2] = {-HZ_INF, -HZ_INF}, l[2] = {0.0f, 0.0f}, alpha[2];
        unsigned pa[8][4];
#pragma unroll
        for (int i = 0; i < 64; i++) o[i] = 0.0f;
        arrived(0);
        hz_mbar_wait(m.qfull, (unsigned)n & 1u);
        my_turn();
        hz_wgmma_fence();
        hz_wg_qk(s, sQw, stage(0));
        your_turn();
        hz_wgmma_wait<0>();
        hz_wgmma_hold<64>(s);
        if (nkt == 1) hz_mbar_arrive(m.qempty); /* the item's last Q K^T is done */
        hz_wg_softmax(s, mx, l, alpha, sl2, 0, edge(0), row0, t, T);
        hz_wg_pack_p(pa, s);
        for (int j = 0; j + 1 < nkt; j++) {
            arrived(j + 1);
            my_turn();
            hz_wgmma_fence();
            hz_wg_qk(s, sQw, stage(j + 1));
            pv(j, o, pa);
            your_turn();
            hz_wgmma_wait<1>(); /* S(j+1) done; P(j) V(j) may still run */
            hz_wgmma_hold<64>(s);
            if (j + 2 == nkt) hz_mbar_arrive(m.qempty);
            hz_wg_softmax(s, mx, l, alpha, sl2, j + 1, edge(j + 1), row0, t, T);
            hz_wgmma_wait<0>();
            hz_wgmma_hold<64>(o);
            hz_wgmma_hold<32>(&pa[0][0]);
            release(j);
#pragma unroll
            for (int i = 0; i < 64; i++) o[i] *= alpha[(i / 2) & 1];
            hz_wg_pack_p(pa, s);
        }
        my_turn();
        pv(nkt - 1, o, pa);
        your_turn();
        hz_wgmma_wait<0>();
        hz_wgmma_hold<64>(o);
        release(nkt - 1);
        hz_wg_store(out, lse, o, mx, l, a.b, a.h, T, NH, row0, t);
        kv0 += nkt, n++;
    }
}
#endif

/* A CUtensorMap (128 bytes, 64-byte aligned) as a kernel parameter */
struct __align__(64) hz_tmap {
    unsigned long long w[16];
};

/* The TMA producer: one thread of warpgroup 0. TQ: q's map with boxes of 64 rows, TK and TV:
 * k's and v's with boxes of 128 (tmap.c); B, T, ... as hzk_attention_forward's. */
extern "C" __global__ void __launch_bounds__(HZ_ATT_WS_THREADS, 1)
hzk_attention_forward_tma(bf16 *out, float *lse, const __grid_constant__ hz_tmap tq,
                          const __grid_constant__ hz_tmap tk, const __grid_constant__ hz_tmap tv,
                          int B, int T, int NH, int NKV, int HD, float scale, int window) {
    if (HD != HZ_ATT_WG_HD || window != 0) __trap();
#ifdef HZ_WGMMA
    constexpr unsigned QB = HZ_ATT_WG_BM * HZ_ATT_WG_HD * 2, KVB = HZ_ATT_WG_BN * HZ_ATT_WG_HD * 2;
    constexpr int ST = HZ_ATT_WG_STAGES;
    const hz_ws_smem m = hz_ws_carve();
    hz_ws_init(m);
    if (threadIdx.x >= 128) {
        hz_setmaxnreg_inc<HZ_ATT_WS_CONSUMER_REGS>();
        hz_ws_consume(m, out, lse, B, T, NH, scale, (int)threadIdx.x / 128 - 1);
        return;
    }
    hz_setmaxnreg_dec<HZ_ATT_WS_PRODUCER_REGS>();
    if (threadIdx.x != 0) return;
    const int nqt = (T + HZ_ATT_WG_BM - 1) / HZ_ATT_WG_BM, items = nqt * B * NH;
    int kv = 0, n = 0; /* K/V tiles and items so far: the ring's and Q's phases */
    for (int r = 0; r * (int)gridDim.x < items; r++) {
        const int it = hz_ws_item(r, items);
        if (it < 0) continue;
        const hz_ws_at a = hz_ws_decode(it, nqt, B, NH);
        const int hk = a.h / (NH / NKV);
        for (int j = 0; j <= a.qt; j++, kv++) {
            const unsigned st = m.sKV + (unsigned)(kv % ST) * 2 * KVB, bar = m.full + 8 * (kv % ST);
            if (kv >= ST) hz_mbar_wait(m.empty + 8 * (kv % ST), (unsigned)(kv / ST - 1) & 1u);
            hz_mbar_expect_tx(bar, 2 * KVB);
            for (int cb = 0; cb < 2; cb++) { /* each 64-column block of K, then of V */
                hz_tma_load_4d(st + (unsigned)cb * (KVB / 2), &tk, 64 * cb, hk, j * HZ_ATT_WG_BN, a.b, bar);
                hz_tma_load_4d(st + KVB + (unsigned)cb * (KVB / 2), &tv, 64 * cb, hk, j * HZ_ATT_WG_BN, a.b, bar);
            }
            if (j == 0) { /* Q after the first K/V tile, once the last item's is released */
                if (n > 0) hz_mbar_wait(m.qempty, (unsigned)(n - 1) & 1u);
                hz_mbar_expect_tx(m.qfull, QB);
                for (int half = 0; half < 2; half++) /* a tile of 64 rows per consumer */
                    for (int cb = 0; cb < 2; cb++)
                        hz_tma_load_4d(m.sQ + (unsigned)half * (QB / 2) + (unsigned)cb * (QB / 4), &tq, 64 * cb, a.h,
                                       a.qt * HZ_ATT_WG_BM + 64 * half, a.b, m.qfull);
            }
        }
        n++;
    }
#else
    __trap(); /* compiled without sm_90a's features */
#endif
}
