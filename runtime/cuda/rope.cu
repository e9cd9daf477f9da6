/* runtime/cuda/rope.cu - qkv bias + rotary position embedding, forward and backward.
 * qkv, dqkv (N, OUT) bf16 with OUT = (NH + 2*NKV) * HD: the output of the one fused q/k/v
 * GEMM, per token the NH q heads, then the NKV k heads, then the NKV v heads;
 * bias, dbias (OUT) bf16 / fp32 accumulated, both optional (NULL: no q/k/v bias);
 * q, dq (N, NH*HD); k, v, dk, dv (N, NKV*HD) bf16; inv_freq (HD/2) fp32 (rope_inv_freq).
 * Rotation as Hugging Face (rotate_half, not interleaved pairs): for i < HD/2 and
 * position pos = n % T, (x1, x2) = (x[i], x[i + HD/2]) -> (x1 c - x2 s, x2 c + x1 s) with
 * c, s = cos, sin(pos * inv_freq[i]) computed in fp32 and rounded to bf16 (transformers casts
 * cos/sin to the activation dtype before multiplying); products in fp32, result rounded once.
 * The biased value is rounded to bf16 before rotating, as the bf16 output of a biased linear.
 * Launch (the two head-major kernels): grid (ceil(N / 64), NH + 2*NKV), block 256, no dynamic
 * shared memory.
 * blockIdx.y is the head of the fused row; within a block thread tid handles the column pair
 * i = 2 * (tid % (HD/4)) (and its partner i + HD/2) for tokens r, r + R, ... of the block's
 * token range, r = tid / (HD/4), R = blockDim.x / (HD/4). Requires HD % 4 == 0, HD <= 1024
 * and blockDim.x <= 256 (the backward keeps R x HD <= 1024 bias sums in shared memory).
 * The token-major pair at the end (*_tokens) computes the same values with each token's
 * c, s once for all its heads; the backward without bias sums and every forward with HD %
 * 8 == 0 take it (launch.c). */

/* The block's token range: grid.x splits N into equal chunks. */
__device__ __forceinline__ void hz_rope_range(int N, int *n0, int *n1) {
    const int chunk = (N + gridDim.x - 1) / gridDim.x;
    *n0 = blockIdx.x * chunk;
    *n1 = min(N, *n0 + chunk);
}

/* c, s of columns i .. i + E - 1 at position pos (util.cu hz_rope_cs1). */
template <int E>
__device__ __forceinline__ void hz_rope_cs(float *c, float *s, int pos, const float *inv_freq, int i) {
#pragma unroll
    for (int e = 0; e < E; e++) hz_rope_cs1(&c[e], &s[e], pos, inv_freq, i + e);
}

extern "C" __global__ void hzk_qkv_bias_rope(bf16 *q, bf16 *k, bf16 *v, const bf16 *qkv,
                                             const bf16 *bias, const float *inv_freq, int N,
                                             int T, int NH, int NKV, int HD) {
    const int H4 = HD >> 2, half = HD >> 1;
    const int R = blockDim.x / H4, r = threadIdx.x / H4;
    if (r >= R) return;
    const int i = (threadIdx.x - r * H4) * 2;
    const int h = blockIdx.y, OUT = (NH + 2 * NKV) * HD;
    bf16 *dst;
    int dst_stride, rotate;
    if (h < NH) dst = q + h * HD, dst_stride = NH * HD, rotate = 1;
    else if (h < NH + NKV) dst = k + (h - NH) * HD, dst_stride = NKV * HD, rotate = 1;
    else dst = v + (h - NH - NKV) * HD, dst_stride = NKV * HD, rotate = 0;
    float b1[2] = {0.0f, 0.0f}, b2[2] = {0.0f, 0.0f};
    if (bias) {
        const float2 t1 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(bias + h * HD + i));
        const float2 t2 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(bias + h * HD + i + half));
        b1[0] = t1.x, b1[1] = t1.y, b2[0] = t2.x, b2[1] = t2.y;
    }
    int n0, n1;
    hz_rope_range(N, &n0, &n1);
    for (int n = n0 + r; n < n1; n += R) {
        const bf16 *src = qkv + (long)n * OUT + h * HD + i;
        const float2 t1 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(src));
        const float2 t2 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(src + half));
        float x1[2] = {t1.x, t1.y}, x2[2] = {t2.x, t2.y};
        if (bias) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                x1[e] = hz_round_bf16(x1[e] + b1[e]);
                x2[e] = hz_round_bf16(x2[e] + b2[e]);
            }
        }
        float y1[2] = {x1[0], x1[1]}, y2[2] = {x2[0], x2[1]};
        if (rotate) {
            float c[2], s[2];
            hz_rope_cs<2>(c, s, n % T, inv_freq, i);
#pragma unroll
            for (int e = 0; e < 2; e++) {
                y1[e] = x1[e] * c[e] - x2[e] * s[e];
                y2[e] = x2[e] * c[e] + x1[e] * s[e];
            }
        }
        bf16 *o = dst + (long)n * dst_stride + i;
        *reinterpret_cast<unsigned *>(o) = hz_pack_bf16x2(y1[0], y1[1]);
        *reinterpret_cast<unsigned *>(o + half) = hz_pack_bf16x2(y2[0], y2[1]);
    }
}

/* The body of the two kernels below; the block's bias sums go to dbias with atomics
 * (part == 0) or to row blockIdx.x of a partial-sum array (part == 1). */
__device__ __forceinline__ void hz_qkv_rope_backward(bf16 *dqkv, float *dbias, int part,
                                                     const bf16 *dq, const bf16 *dk,
                                                     const bf16 *dv, const float *inv_freq,
                                                     int N, int T, int NH, int NKV, int HD) {
    __shared__ float sbias[1024]; /* (R, HD): row group r's sums, added in order of r */
    const int H4 = HD >> 2, half = HD >> 1;
    const int R = blockDim.x / H4, r = threadIdx.x / H4;
    const int i = (threadIdx.x - r * H4) * 2;
    const int h = blockIdx.y, OUT = (NH + 2 * NKV) * HD;
    const bf16 *src;
    int src_stride, rotate;
    if (h < NH) src = dq + h * HD, src_stride = NH * HD, rotate = 1;
    else if (h < NH + NKV) src = dk + (h - NH) * HD, src_stride = NKV * HD, rotate = 1;
    else src = dv + (h - NH - NKV) * HD, src_stride = NKV * HD, rotate = 0;
    float acc1[2] = {0.0f, 0.0f}, acc2[2] = {0.0f, 0.0f};
    int n0, n1;
    hz_rope_range(N, &n0, &n1);
    if (r < R) {
        for (int n = n0 + r; n < n1; n += R) {
            const bf16 *s_ = src + (long)n * src_stride + i;
            const float2 t1 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(s_));
            const float2 t2 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(s_ + half));
            const float y1[2] = {t1.x, t1.y}, y2[2] = {t2.x, t2.y};
            float x1[2] = {y1[0], y1[1]}, x2[2] = {y2[0], y2[1]};
            if (rotate) {
                float c[2], s[2];
                hz_rope_cs<2>(c, s, n % T, inv_freq, i);
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    x1[e] = y1[e] * c[e] + y2[e] * s[e];
                    x2[e] = y2[e] * c[e] - y1[e] * s[e];
                }
            }
            bf16 *o = dqkv + (long)n * OUT + h * HD + i;
            *reinterpret_cast<unsigned *>(o) = hz_pack_bf16x2(x1[0], x1[1]);
            *reinterpret_cast<unsigned *>(o + half) = hz_pack_bf16x2(x2[0], x2[1]);
#pragma unroll
            for (int e = 0; e < 2; e++) acc1[e] += x1[e], acc2[e] += x2[e];
        }
    }
    if (dbias) {
        if (r < R) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                sbias[r * HD + i + e] = acc1[e];
                sbias[r * HD + i + half + e] = acc2[e];
            }
        }
        __syncthreads();
        float *dst = dbias + (part ? (long)blockIdx.x * OUT : 0) + h * HD;
        for (int j = threadIdx.x; j < HD; j += blockDim.x) {
            float sum = 0.0f;
            for (int q = 0; q < R; q++) sum += sbias[q * HD + j];
            if (part) dst[j] = sum;
            else atomicAdd(dst + j, sum);
        }
    }
}

/* dqkv = the fused gradient: q and k heads rotated back (the transpose of the rotation,
 * dx1 = dy1 c + dy2 s, dx2 = dy2 c - dy1 s, same bf16 c, s), v heads copied;
 * dbias += column sums of dqkv taken in fp32 before rounding (when dbias != NULL): each
 * block sums its rows in a fixed order, then adds its sums with one global atomicAdd per
 * column (not bit-deterministic across blocks). Launch as hzk_qkv_bias_rope. */
extern "C" __global__ void hzk_qkv_rope_backward(bf16 *dqkv, float *dbias, const bf16 *dq,
                                                 const bf16 *dk, const bf16 *dv,
                                                 const float *inv_freq, int N, int T, int NH,
                                                 int NKV, int HD) {
    hz_qkv_rope_backward(dqkv, dbias, 0, dq, dk, dv, inv_freq, N, T, NH, NKV, HD);
}

/* As hzk_qkv_rope_backward, but each block stores its column sums to
 * dbias_part[blockIdx.x, h * HD ..] ((gridDim.x, (NH + 2 NKV) HD) fp32, overwritten) instead
 * of adding them; hzk_colsum_f32 then adds the rows in order: the deterministic path. */
extern "C" __global__ void hzk_qkv_rope_backward_part(bf16 *dqkv, float *dbias_part, const bf16 *dq,
                                                      const bf16 *dk, const bf16 *dv,
                                                      const float *inv_freq, int N, int T, int NH,
                                                      int NKV, int HD) {
    hz_qkv_rope_backward(dqkv, dbias_part, 1, dq, dk, dv, inv_freq, N, T, NH, NKV, HD);
}

/* ---- token-major: a token's angles once, for all its heads ---- */

/* The RoPE angles depend on the position and the column, not the head: in the head-major
 * kernels above every (token, head) computes its own, 4 sincosf for each 4 elements it
 * moves (the heads of llama3-8b repeat them 40 times a token). Here a group of L8 = HD/8
 * lanes takes one token: lane t holds columns 4t..4t+3 of each half and their c, s, and
 * walks the token's NH + NKV rotated heads, then its NKV v heads, with 8-byte vectors.
 * Launch: block 256, grid ceil(N / (256 / L8)); group r of block b takes token b * (256 /
 * L8) + r. Requires HD % 8 == 0. */
/* This lane's token N and first column I of each half (the launch above), and their c, s;
 * 0 for a lane beyond the block's groups or the last token. */
__device__ __forceinline__ int hz_rope_token_lane(int N, int T, int HD, const float *inv_freq,
                                                  int *n, int *i, float *c, float *s) {
    const int L8 = HD >> 3, per = blockDim.x / L8, r = threadIdx.x / L8;
    *n = blockIdx.x * per + r;
    if (r >= per || *n >= N) return 0;
    *i = (threadIdx.x - r * L8) * 4;
    hz_rope_cs<4>(c, s, *n % T, inv_freq, *i);
    return 1;
}

extern "C" __global__ void hzk_qkv_bias_rope_tokens(bf16 *q, bf16 *k, bf16 *v, const bf16 *qkv,
                                                    const bf16 *bias, const float *inv_freq,
                                                    int N, int T, int NH, int NKV, int HD) {
    const int half = HD >> 1, OUT = (NH + 2 * NKV) * HD;
    int n, i;
    float c[4], s[4];
    if (!hz_rope_token_lane(N, T, HD, inv_freq, &n, &i, c, s)) return;
    const bf16 *src = qkv + (long)n * OUT + i;
    bf16 *qn = q + (long)n * NH * HD + i, *kn = k + (long)n * NKV * HD + i;
    bf16 *vn = v + (long)n * NKV * HD + i;
#pragma unroll 4
    for (int h = 0; h < NH + 2 * NKV; h++) {
        const bf16 *x = src + h * HD;
        float x1[4], x2[4];
        hz_ld4(x1, x);
        hz_ld4(x2, x + half);
        if (bias) {
            float b1[4], b2[4];
            hz_ld4(b1, bias + h * HD + i);
            hz_ld4(b2, bias + h * HD + i + half);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                x1[e] = hz_round_bf16(x1[e] + b1[e]);
                x2[e] = hz_round_bf16(x2[e] + b2[e]);
            }
        }
        bf16 *o;
        if (h < NH + NKV) {
            o = h < NH ? qn + h * HD : kn + (h - NH) * HD;
            float y1[4], y2[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                y1[e] = x1[e] * c[e] - x2[e] * s[e];
                y2[e] = x2[e] * c[e] + x1[e] * s[e];
            }
            hz_st4(o, y1);
            hz_st4(o + half, y2);
        } else {
            o = vn + (h - NH - NKV) * HD;
            hz_st4(o, x1);
            hz_st4(o + half, x2);
        }
    }
}

/* dqkv from dq, dk, dv: q and k heads rotated back as hzk_qkv_rope_backward, v heads
 * copied; no bias sums (a model with q/k/v bias takes the head-major kernels). Launch as
 * hzk_qkv_bias_rope_tokens. */
extern "C" __global__ void hzk_qkv_rope_tokens_backward(bf16 *dqkv, const bf16 *dq, const bf16 *dk,
                                                        const bf16 *dv, const float *inv_freq,
                                                        int N, int T, int NH, int NKV, int HD) {
    const int half = HD >> 1, OUT = (NH + 2 * NKV) * HD;
    int n, i;
    float c[4], s[4];
    if (!hz_rope_token_lane(N, T, HD, inv_freq, &n, &i, c, s)) return;
    bf16 *dst = dqkv + (long)n * OUT + i;
    const bf16 *qn = dq + (long)n * NH * HD + i, *kn = dk + (long)n * NKV * HD + i;
    const bf16 *vn = dv + (long)n * NKV * HD + i;
#pragma unroll 4
    for (int h = 0; h < NH + NKV; h++) {
        const bf16 *y = h < NH ? qn + h * HD : kn + (h - NH) * HD;
        float y1[4], y2[4], x1[4], x2[4];
        hz_ld4(y1, y);
        hz_ld4(y2, y + half);
#pragma unroll
        for (int e = 0; e < 4; e++) {
            x1[e] = y1[e] * c[e] + y2[e] * s[e];
            x2[e] = y2[e] * c[e] - y1[e] * s[e];
        }
        hz_st4(dst + h * HD, x1);
        hz_st4(dst + h * HD + half, x2);
    }
    for (int h = 0; h < NKV; h++) {
        hz_mv4(dst + (NH + NKV + h) * HD, vn + h * HD);
        hz_mv4(dst + (NH + NKV + h) * HD + half, vn + h * HD + half);
    }
}
