/* runtime/cuda/embedding.cu - token embedding lookup, forward and backward.
 * wte (V, C) bf16; tok (N) int32, each in [0, V) (the data loader checks this);
 * out (N, C) bf16; dwte (V, C) fp32, accumulated. */

/* out[n, :] = wte[tok[n], :].
 * Launch: block 256, grid ceil(N * C / 8 / 256) (one 16-byte vector per thread when C % 8 == 0,
 * else one element per thread: grid ceil(N * C / 256)); any grid is correct (grid-stride). */
extern "C" __global__ void hzk_embedding_forward(bf16 *out, const int *tok, const bf16 *wte,
                                                 int N, int C) {
    const long stride = (long)gridDim.x * blockDim.x;
    if ((C & 7) == 0) {
        const int CV = C >> 3;
        const long nvec = (long)N * CV;
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < nvec; i += stride) {
            const long n = i / CV, c = (i - n * CV) << 3;
            *reinterpret_cast<uint4 *>(out + n * C + c) =
                *reinterpret_cast<const uint4 *>(wte + (long)tok[n] * C + c);
        }
    } else {
        const long total = (long)N * C;
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += stride) {
            const long n = i / C, c = i - n * C;
            out[i] = wte[(long)tok[n] * C + c];
        }
    }
}

/* dwte[tok[n], :] += dout[n, :] in fp32.
 * Rows of repeated tokens meet in fp32 atomicAdd, so the order of the additions (and the
 * last bits of dwte) varies from run to run: this kernel is not bit-deterministic.
 * Launch: block 256, grid ceil(N * C / 2 / 256) when C is even, else ceil(N * C / 256)
 * (any grid is correct). */
extern "C" __global__ void hzk_embedding_backward(float *dwte, const bf16 *dout, const int *tok,
                                                  int N, int C) {
    const long stride = (long)gridDim.x * blockDim.x;
    if ((C & 1) == 0) {
        const int CV = C >> 1;
        const long nvec = (long)N * CV;
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < nvec; i += stride) {
            const long n = i / CV, c = (i - n * CV) << 1;
            const float2 g = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(dout + n * C + c));
            hz_atomic_add2(dwte + (long)tok[n] * C + c, g.x, g.y);
        }
    } else {
        const long total = (long)N * C;
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += stride) {
            const long n = i / C, c = i - n * C;
            atomicAdd(dwte + (long)tok[n] * C + c, __bfloat162float(dout[i]));
        }
    }
}

/* dwte[tok[n], :] += dout[n, :] in fp32, bit-deterministic: the thread of column pair
 * (2c, 2c + 1) (one column when C is odd) and vocabulary range blockIdx.y (of gridDim.y equal
 * ranges of [0, V)) scans the tokens in order n = 0, 1, ... and adds those in its range, so
 * every dwte element has one thread and repeated tokens meet in a fixed order. The ranges
 * shorten the chain of dependent read-modify-writes per thread (the --deterministic path).
 * Launch: block 128, grid (ceil(ceil(C / 2) / 128), R) when C is even (ceil(C / 128) columns
 * of blocks when odd), R vocabulary ranges (32). */
extern "C" __global__ void hzk_embedding_backward_ordered(float *dwte, const bf16 *dout,
                                                          const int *tok, int N, int C, int V) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const int v0 = (int)((long)V * blockIdx.y / gridDim.y), v1 = (int)((long)V * (blockIdx.y + 1) / gridDim.y);
    if ((C & 1) == 0) {
        if (2 * c >= C) return;
        for (int n = 0; n < N; n++) {
            const int t = tok[n];
            if (t < v0 || t >= v1) continue;
            const float2 g = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(dout + (long)n * C + 2 * c));
            float2 *d = reinterpret_cast<float2 *>(dwte + (long)t * C + 2 * c);
            float2 a = *d;
            a.x += g.x, a.y += g.y;
            *d = a;
        }
    } else {
        if (c >= C) return;
        for (int n = 0; n < N; n++) {
            const int t = tok[n];
            if (t >= v0 && t < v1) dwte[(long)t * C + c] += __bfloat162float(dout[(long)n * C + c]);
        }
    }
}
