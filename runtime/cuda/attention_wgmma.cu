/* runtime/cuda/attention_wgmma.cu - causal grouped-query attention forward on Hopper's
 * warpgroup products (util.cu's wgmma primitives, sm_90a), head_dim 128: the same inputs,
 * outputs and numerics as hzk_attention_forward (attention.cu: q, out (B, T, NH, HD) bf16,
 * k, v (B, T, NKV, HD) bf16, lse (B, NH, T) fp32 in natural log; probabilities rounded to
 * bf16 before P V; softmax statistics and accumulators fp32), without sliding windows.
 * A block of two warpgroups takes 128 query rows of one head, 64 per warpgroup, and walks the
 * key tiles of 128 at or before them, the longest rows' blocks first. Per key tile j, each
 * warpgroup issues S(j+1) = Q K(j+1)^T (both operands in shared memory) and O += P(j) V(j)
 * (P from registers, V read transposed) and, while the two run, its online softmax of
 * S(j+1); O is rescaled once P(j) V(j) is done (FlashAttention-3's overlap within a
 * warpgroup). K and V tiles sit in a ring of HZ_ATT_WG_STAGES buffers filled by cp.async
 * (all 256 threads), tile j+2's copy running under tile j's products. Tiles are stored with
 * the 128-byte swizzle in blocks of 64 columns (util.cu's wgmma notes). The trainer does not
 * run it yet: it is checked against the cpu reference and timed in
 * tests/gpu/ktest_attention.c until it beats what the trainer runs (docs/design-changes.md
 * 42). Not all of FlashAttention-3 yet: no producer warps or TMA, and the two warpgroups'
 * softmaxes are not scheduled against each other's products. */

/* the dynamic shared memory of every kernel here (1024-aligned inside by its kernel) */
extern __shared__ unsigned char hz_wg_smem[];

/* ROWS x 128 tile of rows row0.. of a (T, stride) bf16 matrix into the swizzled tile at S:
 * 16-byte chunk ch of row r to block ch / 8 (ROWS x 128 bytes each), chunk ch % 8 of the
 * block's row r at hz_att_off<8>. Rows >= T are zero-filled. NTHR threads (this one is tid
 * of them), each one chunk column of every (NTHR / 16)th row, so its swizzle is the same in
 * every round and one address serves them all; the caller commits. */
template <int ROWS, int NTHR = HZ_ATT_WG_THREADS, int UNROLL = ROWS / (NTHR / 16)>
__device__ __forceinline__ void hz_wg_load(unsigned s, const bf16 *g, long stride, int row0, int T,
                                           int tid = (int)threadIdx.x) {
    constexpr int RPR = NTHR / 16; /* rows a round */
    static_assert(ROWS % RPR == 0 && RPR % 8 == 0, "whole rounds, each keeping the swizzle");
    const int r = tid / 16, ch = tid % 16;
    unsigned dst = s + (unsigned)((ch / 8) * ROWS * 128) + hz_att_off<8>(r, ch % 8);
    const bf16 *src = g + (long)(row0 + r) * stride + ch * 8;
#pragma unroll UNROLL
    for (int row = row0 + r; row < row0 + ROWS; row += RPR) {
        hz_cp_async16(dst, row < T ? src : g, row < T);
        dst += RPR * 128, src += RPR * stride;
    }
}

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

extern "C" __global__ void __launch_bounds__(HZ_ATT_WG_THREADS, 1)
hzk_attention_forward_wgmma(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                            int B, int T, int NH, int NKV, int HD, float scale, int window) {
    (void)B;
    if (HD != HZ_ATT_WG_HD || window != 0) __trap();
#ifdef HZ_WGMMA
    constexpr unsigned QB = HZ_ATT_WG_BM * HZ_ATT_WG_HD * 2, KVB = HZ_ATT_WG_BN * HZ_ATT_WG_HD * 2;
    unsigned base = hz_smem_u32(hz_wg_smem);
    base += (1024u - (base & 1023u)) & 1023u;
    const unsigned sQ = base, sKV = base + QB; /* stage i: K at sKV + 2 KVB i, V after it */
    const int nqt = (T + HZ_ATT_WG_BM - 1) / HZ_ATT_WG_BM;
    const int qt = nqt - 1 - (int)blockIdx.x; /* the longest rows first */
    const int h = (int)blockIdx.y % NH, b = (int)blockIdx.y / NH, hk = h / (NH / NKV);
    const int q0 = qt * HZ_ATT_WG_BM;
    const long qs = (long)NH * HZ_ATT_WG_HD, ks = (long)NKV * HZ_ATT_WG_HD;
    const bf16 *qg = q + (long)b * T * qs + (long)h * HZ_ATT_WG_HD;
    const bf16 *kg = k + (long)b * T * ks + (long)hk * HZ_ATT_WG_HD;
    const bf16 *vg = v + (long)b * T * ks + (long)hk * HZ_ATT_WG_HD;
    const int wg = (int)threadIdx.x / 128, w = ((int)threadIdx.x % 128) / 32;
    const int g = ((int)threadIdx.x % 32) / 4, t = (int)threadIdx.x % 4;
    const int row0 = q0 + 64 * wg + 16 * w + g; /* this thread's rows: row0 and row0 + 8 */
    const unsigned sQw = sQ + (unsigned)wg * (QB / 2);
    const int nkt = qt + 1; /* BN == BM: key tiles 0..qt */
    auto stage = [&](int j) { return sKV + (unsigned)(j % HZ_ATT_WG_STAGES) * 2 * KVB; };
    auto load_kv = [&](int j) {
        hz_wg_load<HZ_ATT_WG_BN>(stage(j), kg, ks, j * HZ_ATT_WG_BN, T);
        hz_wg_load<HZ_ATT_WG_BN>(stage(j) + KVB, vg, ks, j * HZ_ATT_WG_BN, T);
        hz_cp_async_commit();
    };
    auto edge = [&](int j) { return j == qt || (j + 1) * HZ_ATT_WG_BN > T; };

    hz_wg_load<64>(sQ, qg, qs, q0, T);
    hz_wg_load<64>(sQ + QB / 2, qg, qs, q0 + 64, T);
    load_kv(0);
    if (nkt > 1) {
        load_kv(1);
        hz_cp_async_wait<1>();
    } else {
        hz_cp_async_wait<0>();
    }
    hz_fence_proxy_async();
    __syncthreads();

    const float sl2 = scale * 1.4426950408889634f; /* scores in log2 units */
    float o[64], s[64], m[2] = {-HZ_INF, -HZ_INF}, l[2] = {0.0f, 0.0f}, alpha[2];
    unsigned pa[8][4];
#pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.0f;
    hz_wgmma_fence();
    hz_wg_qk(s, sQw, stage(0));
    hz_wgmma_wait<0>();
    hz_wgmma_hold<64>(s);
    hz_wg_softmax(s, m, l, alpha, sl2, 0, edge(0), row0, t, T);
    hz_wg_pack_p(pa, s);

    /* O += P(j) V(j) from stage j, issued */
    auto pv = [&](int j) {
        hz_wgmma_fence();
#pragma unroll
        for (int kb = 0; kb < 8; kb++)
            hz_wgmma_rs_tb_n128(o, pa[kb], hz_wgmma_desc(stage(j) + KVB + (unsigned)kb * 2048, KVB / 2, 1024), 1);
        hz_wgmma_commit();
    };
    for (int j = 0; j + 1 < nkt; j++) {
        hz_cp_async_wait<0>(); /* tile j+1, the one copy in flight */
        hz_fence_proxy_async();
        __syncthreads(); /* tile j+1 is in; both warpgroups are done with tile j-1's stage */
        hz_wgmma_fence();
        hz_wg_qk(s, sQw, stage(j + 1));
        pv(j);
        if (j + 2 < nkt) load_kv(j + 2); /* into tile j-1's stage */
        hz_wgmma_wait<1>(); /* S(j+1) done; P(j) V(j) may still run */
        hz_wgmma_hold<64>(s);
        hz_wg_softmax(s, m, l, alpha, sl2, j + 1, edge(j + 1), row0, t, T);
        hz_wgmma_wait<0>();
        hz_wgmma_hold<64>(o);
        hz_wgmma_hold<32>(&pa[0][0]);
#pragma unroll
        for (int i = 0; i < 64; i++) o[i] *= alpha[(i / 2) & 1];
        hz_wg_pack_p(pa, s);
    }
    pv(nkt - 1);
    hz_wgmma_wait<0>();
    hz_wgmma_hold<64>(o);

    hz_wg_store(out, lse, o, m, l, b, h, T, NH, row0, t);
#else
    __trap(); /* compiled without sm_90a's features */
#endif
}

/* ---- the warp-specialised forwards -------------------------------------------------------
 * FlashAttention-3's roles: warpgroup 0 is the producer, filling Q and the ring of K/V tiles
 * (each arrival counted by an mbarrier) and waiting for a buffer's release before filling it
 * again; warpgroups 1 and 2 are the consumers, each its own 64 query rows as above, released
 * from the block's lockstep: they take turns issuing their products (two named barriers),
 * so one's softmax runs under the other's products as well as under its own P V. Two
 * producers: 128 threads of cp.async (hzk_attention_forward_ws, the same arguments as
 * hzk_attention_forward) or one thread driving the TMA (hzk_attention_forward_tma, q, k, v
 * as tensor maps, runtime/cuda/tmap.c).
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
/* The mbarriers' counts: the producer's arrivals (FILLERS each) and both consumers' threads */
__device__ __forceinline__ void hz_ws_init(const hz_ws_smem &m, unsigned fillers) {
    if (threadIdx.x == 0) {
        hz_mbar_init(m.qfull, fillers), hz_mbar_init(m.qempty, 256);
        for (int i = 0; i < HZ_ATT_WG_STAGES; i++)
            hz_mbar_init(m.full + 8 * i, fillers), hz_mbar_init(m.empty + 8 * i, 256);
    }
    __syncthreads();
}

/* A consumer warpgroup (C 0 or 1) of either forward: every item of this block, its 64 rows */
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
    /* tile j's K and V are in (the consumer's view of them made the products', for cp.async) */
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

/* The cp.async producer: all 128 threads of warpgroup 0 */
extern "C" __global__ void __launch_bounds__(HZ_ATT_WS_THREADS, 1)
hzk_attention_forward_ws(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                         int B, int T, int NH, int NKV, int HD, float scale, int window) {
    if (HD != HZ_ATT_WG_HD || window != 0) __trap();
#ifdef HZ_WGMMA
    constexpr unsigned QB = HZ_ATT_WG_BM * HZ_ATT_WG_HD * 2, KVB = HZ_ATT_WG_BN * HZ_ATT_WG_HD * 2;
    constexpr int ST = HZ_ATT_WG_STAGES;
    const hz_ws_smem m = hz_ws_carve();
    hz_ws_init(m, 128);
    if (threadIdx.x >= 128) {
        hz_setmaxnreg_inc<HZ_ATT_WS_CONSUMER_REGS>();
        hz_ws_consume(m, out, lse, B, T, NH, scale, (int)threadIdx.x / 128 - 1);
        return;
    }
    hz_setmaxnreg_dec<HZ_ATT_WS_PRODUCER_REGS>();
    const int tid = (int)threadIdx.x, nqt = (T + HZ_ATT_WG_BM - 1) / HZ_ATT_WG_BM, items = nqt * B * NH;
    const long qs = (long)NH * HZ_ATT_WG_HD, ks = (long)NKV * HZ_ATT_WG_HD;
    int kv = 0, n = 0; /* K/V tiles and items so far: the ring's and Q's phases */
    for (int r = 0; r * (int)gridDim.x < items; r++) {
        const int it = hz_ws_item(r, items);
        if (it < 0) continue;
        const hz_ws_at a = hz_ws_decode(it, nqt, B, NH);
        const int hk = a.h / (NH / NKV);
        const bf16 *kg = k + (long)a.b * T * ks + (long)hk * HZ_ATT_WG_HD;
        const bf16 *vg = v + (long)a.b * T * ks + (long)hk * HZ_ATT_WG_HD;
        for (int j = 0; j <= a.qt; j++, kv++) {
            const unsigned st = m.sKV + (unsigned)(kv % ST) * 2 * KVB;
            if (kv >= ST) hz_mbar_wait(m.empty + 8 * (kv % ST), (unsigned)(kv / ST - 1) & 1u);
            hz_wg_load<HZ_ATT_WG_BN, 128, 1>(st, kg, ks, j * HZ_ATT_WG_BN, T, tid);
            hz_wg_load<HZ_ATT_WG_BN, 128, 1>(st + KVB, vg, ks, j * HZ_ATT_WG_BN, T, tid);
            hz_cp_async_mbar_arrive(m.full + 8 * (kv % ST));
            if (j == 0) { /* Q after the first K/V tile, once the last item's is released */
                const bf16 *qg = q + (long)a.b * T * qs + (long)a.h * HZ_ATT_WG_HD;
                if (n > 0) hz_mbar_wait(m.qempty, (unsigned)(n - 1) & 1u);
                hz_wg_load<64, 128, 1>(m.sQ, qg, qs, a.qt * HZ_ATT_WG_BM, T, tid); /* a tile per consumer */
                hz_wg_load<64, 128, 1>(m.sQ + QB / 2, qg, qs, a.qt * HZ_ATT_WG_BM + 64, T, tid);
                hz_cp_async_mbar_arrive(m.qfull);
            }
        }
        n++;
    }
    hz_cp_async_wait<0>(); /* nothing of this thread's still in flight when it leaves */
#else
    __trap(); /* compiled without sm_90a's features */
#endif
}

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
    hz_ws_init(m, 1);
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
