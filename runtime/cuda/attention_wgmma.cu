/* runtime/cuda/attention_wgmma.cu - causal grouped-query attention forward on Hopper's
 * warpgroup products (util.cu's wgmma primitives, sm_90a), head_dim 128: the same inputs,
 * outputs and numerics as hzk_attention_forward (attention.cu: q, out (B, T, NH, HD) bf16,
 * k, v (B, T, NKV, HD) bf16, lse (B, NH, T) fp32 in natural log; probabilities rounded to
 * bf16 before P V; softmax statistics and accumulators fp32), without sliding windows.
 * A block of two warpgroups takes 128 query rows of one head, 64 per warpgroup, and walks the
 * key tiles of 128 at or before them: S = Q K^T with both operands in shared memory, the
 * online softmax in registers, O += P V with P from registers and V read transposed. K and V
 * tiles are double-buffered by cp.async (all 256 threads), the next tile's copy running
 * under the current tile's products. Tiles are stored with the 128-byte swizzle in blocks of
 * 64 columns (util.cu's wgmma notes). The trainer does not run it yet: it is checked against
 * the cpu reference and timed in tests/gpu/ktest_attention.c until it beats what the
 * trainer runs (docs/design-changes.md 42). Not FlashAttention-3 yet: no producer warps,
 * no overlap of one warpgroup's softmax with the other's products. */

/* ROWS x 128 tile of rows row0.. of a (T, stride) bf16 matrix into the swizzled tile at S:
 * 16-byte chunk ch of row r to block ch / 8 (ROWS x 128 bytes each), chunk ch % 8 of the
 * block's row r at hz_att_off<8>. Rows >= T are zero-filled. All threads of the block; the
 * caller commits. */
template <int ROWS>
__device__ __forceinline__ void hz_wg_load(unsigned s, const bf16 *g, long stride, int row0, int T) {
    static_assert(ROWS * 16 % HZ_ATT_WG_THREADS == 0, "whole rounds of 16-byte chunks");
#pragma unroll
    for (int it = 0; it < ROWS * 16 / HZ_ATT_WG_THREADS; it++) {
        int i = (int)threadIdx.x + it * HZ_ATT_WG_THREADS, r = i / 16, ch = i % 16;
        bool ok = row0 + r < T;
        const bf16 *src = ok ? g + (long)(row0 + r) * stride + ch * 8 : g;
        hz_cp_async16(s + (unsigned)((ch / 8) * ROWS * 128) + hz_att_off<8>(r, ch % 8), src, ok);
    }
}

extern "C" __global__ void __launch_bounds__(HZ_ATT_WG_THREADS, 1)
hzk_attention_forward_wgmma(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                            int B, int T, int NH, int NKV, int HD, float scale, int window) {
    (void)B;
    if (HD != HZ_ATT_WG_HD || window != 0) __trap();
#ifdef HZ_WGMMA
    constexpr unsigned QB = HZ_ATT_WG_BM * HZ_ATT_WG_HD * 2, KVB = HZ_ATT_WG_BN * HZ_ATT_WG_HD * 2;
    extern __shared__ unsigned char hz_wg_smem[];
    unsigned base = hz_smem_u32(hz_wg_smem);
    base += (1024u - (base & 1023u)) & 1023u;
    const unsigned sQ = base, sKV = base + QB; /* buffer j: K at sKV + 2 KVB j, V after it */
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

    hz_wg_load<64>(sQ, qg, qs, q0, T);
    hz_wg_load<64>(sQ + QB / 2, qg, qs, q0 + 64, T);
    hz_wg_load<HZ_ATT_WG_BN>(sKV, kg, ks, 0, T);
    hz_wg_load<HZ_ATT_WG_BN>(sKV + KVB, vg, ks, 0, T);
    hz_cp_async_commit();

    float o[64], m[2] = {-HZ_INF, -HZ_INF}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.0f;
    const float sl2 = scale * 1.4426950408889634f; /* scores in log2 units */
    const int nkt = qt + 1;                        /* BN == BM: key tiles 0..qt */
    for (int j = 0; j < nkt; j++) {
        const unsigned sK = sKV + (unsigned)(j & 1) * 2 * KVB, sV = sK + KVB;
        if (j + 1 < nkt) {
            const unsigned nK = sKV + (unsigned)((j + 1) & 1) * 2 * KVB;
            hz_wg_load<HZ_ATT_WG_BN>(nK, kg, ks, (j + 1) * HZ_ATT_WG_BN, T);
            hz_wg_load<HZ_ATT_WG_BN>(nK + KVB, vg, ks, (j + 1) * HZ_ATT_WG_BN, T);
            hz_cp_async_commit();
            hz_cp_async_wait<1>();
        } else {
            hz_cp_async_wait<0>();
        }
        hz_fence_proxy_async();
        __syncthreads();

        float s[64];
        hz_wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 8; kk++) {
            const unsigned off = (unsigned)(kk / 4) * (QB / 4) + (unsigned)(kk % 4) * 32;
            hz_wgmma_ss_n128(s, hz_wgmma_desc(sQw + off, 16, 1024),
                             hz_wgmma_desc(sK + (unsigned)(kk / 4) * (KVB / 2) + (unsigned)(kk % 4) * 32, 16, 1024),
                             kk > 0);
        }
        hz_wgmma_commit();
        hz_wgmma_wait<0>();

        const int k0 = j * HZ_ATT_WG_BN;
        const bool edge = j == qt || k0 + HZ_ATT_WG_BN > T;
#pragma unroll
        for (int i = 0; i < 64; i++) {
            float x = s[i] * sl2;
            if (edge) {
                const int col = k0 + 8 * (i / 4) + 2 * t + (i & 1), row = row0 + 8 * ((i / 2) & 1);
                if (col > row || col >= T) x = -HZ_INF;
            }
            s[i] = x;
        }
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            float mx = -HZ_INF;
#pragma unroll
            for (int i = 0; i < 16; i++) mx = fmaxf(mx, fmaxf(s[4 * i + 2 * rr], s[4 * i + 2 * rr + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float mn = fmaxf(m[rr], mx), mb = mn == -HZ_INF ? 0.0f : mn;
            const float alpha = hz_exp2(m[rr] - mb);
            m[rr] = mn;
            float sum = 0.0f;
#pragma unroll
            for (int i = 0; i < 16; i++) {
                const float p0 = hz_exp2(s[4 * i + 2 * rr] - mb), p1 = hz_exp2(s[4 * i + 2 * rr + 1] - mb);
                s[4 * i + 2 * rr] = p0, s[4 * i + 2 * rr + 1] = p1;
                sum += p0 + p1;
                o[4 * i + 2 * rr] *= alpha, o[4 * i + 2 * rr + 1] *= alpha;
            }
            l[rr] = l[rr] * alpha + sum;
        }
        /* P as A fragments: k16 block ks is S's n8 blocks 2 ks and 2 ks + 1 */
        unsigned pa[8][4];
#pragma unroll
        for (int ks2 = 0; ks2 < 8; ks2++) {
            pa[ks2][0] = hz_pack_bf16x2(s[8 * ks2 + 0], s[8 * ks2 + 1]);
            pa[ks2][1] = hz_pack_bf16x2(s[8 * ks2 + 2], s[8 * ks2 + 3]);
            pa[ks2][2] = hz_pack_bf16x2(s[8 * ks2 + 4], s[8 * ks2 + 5]);
            pa[ks2][3] = hz_pack_bf16x2(s[8 * ks2 + 6], s[8 * ks2 + 7]);
        }
        hz_wgmma_fence();
#pragma unroll
        for (int ks2 = 0; ks2 < 8; ks2++)
            hz_wgmma_rs_tb_n128(o, pa[ks2], hz_wgmma_desc(sV + (unsigned)ks2 * 2048, KVB / 2, 1024), 1);
        hz_wgmma_commit();
        hz_wgmma_wait<0>();
        __syncthreads(); /* buffer j & 1 is the next iteration's copy target but one */
    }

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
#else
    __trap(); /* compiled without sm_90a's features */
#endif
}
