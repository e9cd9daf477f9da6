/* runtime/cpu/matmul.c - the linear layer y = x W^T + b, forward and backward, in fp32.
 * This is the reference trainer's hot loop, so it is register-tiled in plain C: the
 * fixed-size inner loops are what gcc/clang vectorise at -O2, no intrinsics needed; one
 * broadcast kernel (cloned per ISA) serves the forward (on w^T, packed) and the backward. */
#include <stdlib.h>

#include "ops.h"

/* Forward tile: MM_TR rows of inp times MM_TC rows of w, as MM_TR*MM_TC dot products over
 * IN, each kept in MM_L partial sums (the SIMD lanes; summed at the end, so float
 * addition is reassociated only within a fixed, deterministic order). */
#define MM_TR 4
#define MM_TC 4
#define MM_L 8
#define MM_IN_CHUNK 512               /* inputs per sweep: a tile's rows of inp and w fit L1 */
#define MM_W_BLOCK_BYTES (128 * 1024) /* of w per sweep (rows x chunk): about half an L2 */

/* Backward tile: MM_BR rows of C times MM_BJ contiguous columns, updated by broadcast
 * multiply-adds over k (no reduction, so it vectorises along the columns); k is walked in
 * blocks of MM_BK so the panels of A and B a tile reads stay in L1/L2. */
#define MM_BR 8
#define MM_BJ 32
#define MM_BK 256
#define MM_BIAS_COLS 64
/* The broadcast kernel for each ISA the machine may have: its 8 x 32 accumulators are 16
 * AVX-512 registers (AVX2 and SSE2 spill some). At -O2: -O3 measured several times slower
 * here (gcc 12), and without -ffp-contract no FMA, so every clone rounds as the C reads. */
#define MM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* Dot product with the same lanes as the tiles, for the ragged edges. */
static float mm_dot(const float *a, const float *b, int64_t n) {
    float acc[MM_L] = {0};
    int64_t nv = n - n % MM_L;
    for (int64_t i = 0; i < nv; i += MM_L)
        for (int l = 0; l < MM_L; l++) acc[l] += a[i + l] * b[i + l];
    float s = 0.0f;
    for (int l = 0; l < MM_L; l++) s += acc[l];
    for (int64_t i = nv; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One full MM_TR x MM_TC tile of out, over inputs [i0, i1): the first chunk (i0 = 0)
 * stores its sums plus the bias, later chunks add theirs. */
static void mm_forward_tile(float *out, const float *inp, const float *w, const float *bias,
                            int64_t n0, int64_t o0, int64_t i0, int64_t i1, int64_t IN,
                            int64_t OUT) {
    float acc[MM_TR][MM_TC][MM_L] = {{{0}}};
    const float *a = inp + n0 * IN, *b = w + o0 * IN;
    int64_t iv = i1 - (i1 - i0) % MM_L;
    for (int64_t i = i0; i < iv; i += MM_L)
        for (int r = 0; r < MM_TR; r++)
            for (int c = 0; c < MM_TC; c++)
                for (int l = 0; l < MM_L; l++)
                    acc[r][c][l] += a[r * IN + i + l] * b[c * IN + i + l];
    for (int r = 0; r < MM_TR; r++)
        for (int c = 0; c < MM_TC; c++) {
            float s = 0.0f;
            for (int l = 0; l < MM_L; l++) s += acc[r][c][l];
            for (int64_t i = iv; i < i1; i++) s += a[r * IN + i] * b[c * IN + i];
            float *o = out + (n0 + r) * OUT + o0 + c;
            *o = i0 == 0 ? s + (bias ? bias[o0 + c] : 0.0f) : *o + s;
        }
}

/* Threads own row tiles of out. All threads sweep w in the same blocks (a range of its
 * rows, a chunk of IN), so a block of w is read from L2 by every row tile of a thread and
 * a tile's rows of inp and w stay in L1. The static schedule is identical for every
 * block, so a thread always owns the same rows and the chunks of a row add up in order. */
static void matmul_forward_dots(float *out, const float *inp, const float *w, const float *bias,
                               int64_t N, int64_t IN, int64_t OUT) {
    /* equal chunks of at most MM_IN_CHUNK, whole lanes */
    int64_t chunks = (IN + MM_IN_CHUNK - 1) / MM_IN_CHUNK;
    int64_t chunk = chunks > 1 ? (IN + chunks - 1) / chunks : (IN > 0 ? IN : 1);
    chunk = chunks > 1 ? (chunk + MM_L - 1) / MM_L * MM_L : chunk;
    int64_t ob = MM_W_BLOCK_BYTES / (chunk * (int64_t)sizeof(float));
    ob = ob < MM_TC ? MM_TC : ob - ob % MM_TC;
    int64_t row_tiles = (N + MM_TR - 1) / MM_TR;
    if (IN == 0) /* no chunk below would write out */
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OUT; o++) out[n * OUT + o] = bias ? bias[o] : 0.0f;
#pragma omp parallel
    for (int64_t o_lo = 0; o_lo < OUT; o_lo += ob) {
        int64_t o_hi = o_lo + ob < OUT ? o_lo + ob : OUT;
        for (int64_t i0 = 0; i0 < IN; i0 += chunk) {
            int64_t i1 = i0 + chunk < IN ? i0 + chunk : IN;
#pragma omp for schedule(static) nowait
            for (int64_t rt = 0; rt < row_tiles; rt++) {
                int64_t n0 = rt * MM_TR;
                int64_t o0 = o_lo;
                if (n0 + MM_TR <= N)
                    for (; o0 + MM_TC <= o_hi; o0 += MM_TC)
                        mm_forward_tile(out, inp, w, bias, n0, o0, i0, i1, IN, OUT);
                /* ragged edges: the last rows, the last columns of the block */
                for (int64_t n = n0; n < n0 + MM_TR && n < N; n++)
                    for (int64_t o = o0; o < o_hi; o++) {
                        float s = mm_dot(inp + n * IN + i0, w + o * IN + i0, i1 - i0);
                        float *y = out + n * OUT + o;
                        *y = i0 == 0 ? s + (bias ? bias[o] : 0.0f) : *y + s;
                    }
            }
        }
    }
}

/* C (M, NC) (+)= A @ B for k in [k0, k1), with A addressed by strides (A[m*sam + k*sak])
 * so one kernel serves both dout @ w and dout^T @ inp; B is (K, NC) row-major.
 * Rows [m0, m0 + MM_BR) of C; load_c = 0 starts from zero instead of C (overwrite). */
MM_CLONES static void mm_nn_rows(float *C, const float *A, int64_t sam, int64_t sak, const float *B,
                       int64_t m0, int64_t M, int64_t k0, int64_t k1, int64_t NC, int load_c) {
    int64_t j0 = 0;
    if (m0 + MM_BR <= M) {
        for (; j0 + MM_BJ <= NC; j0 += MM_BJ) {
            float acc[MM_BR][MM_BJ];
            for (int r = 0; r < MM_BR; r++)
                for (int j = 0; j < MM_BJ; j++)
                    acc[r][j] = load_c ? C[(m0 + r) * NC + j0 + j] : 0.0f;
            for (int64_t k = k0; k < k1; k++) {
                const float *b = B + k * NC + j0;
                for (int r = 0; r < MM_BR; r++) {
                    float a = A[(m0 + r) * sam + k * sak];
                    for (int j = 0; j < MM_BJ; j++) acc[r][j] += a * b[j];
                }
            }
            for (int r = 0; r < MM_BR; r++)
                for (int j = 0; j < MM_BJ; j++) C[(m0 + r) * NC + j0 + j] = acc[r][j];
        }
    }
    /* ragged edges: the last rows of C, or the last columns of these rows */
    for (int64_t m = m0; m < m0 + MM_BR && m < M; m++) {
        float *c = C + m * NC;
        if (!load_c)
            for (int64_t j = j0; j < NC; j++) c[j] = 0.0f;
        for (int64_t k = k0; k < k1; k++) {
            float a = A[m * sam + k * sak];
            const float *b = B + k * NC;
            for (int64_t j = j0; j < NC; j++) c[j] += a * b[j];
        }
    }
}

/* C (M, NC) = A @ B (accumulate = 0) or C += A @ B (accumulate = 1), K the inner size. */
static void mm_nn(float *C, const float *A, int64_t sam, int64_t sak, const float *B,
                  int64_t M, int64_t K, int64_t NC, int accumulate) {
    int64_t row_tiles = (M + MM_BR - 1) / MM_BR;
#pragma omp parallel for schedule(static)
    for (int64_t rt = 0; rt < row_tiles; rt++) {
        if (K == 0 && !accumulate) /* no k block below would clear C */
            mm_nn_rows(C, A, sam, sak, B, rt * MM_BR, M, 0, 0, NC, 0);
        for (int64_t k0 = 0; k0 < K; k0 += MM_BK) {
            int64_t k1 = k0 + MM_BK < K ? k0 + MM_BK : K;
            mm_nn_rows(C, A, sam, sak, B, rt * MM_BR, M, k0, k1, NC, accumulate || k0 > 0);
        }
    }
}

/* out = inp @ w^T + bias as out = inp @ wt with wt (IN, OUT) = w^T packed once per call
 * (IN x OUT floats, against N x IN x OUT multiply-adds), so the forward runs the
 * broadcast kernel of the backward: no horizontal sums, every lane along the columns.
 * Without the memory for wt it falls back on the dot-product tiles. */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                    int64_t N, int64_t IN, int64_t OUT) {
    float *wt = N >= 4 * MM_BR ? malloc((size_t)(IN * OUT + 1) * sizeof *wt) : NULL;
    if (!wt) {
        matmul_forward_dots(out, inp, w, bias, N, IN, OUT);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < IN; i++)
        for (int64_t o = 0; o < OUT; o++) wt[i * OUT + o] = w[o * IN + i];
    mm_nn(out, inp, IN, 1, wt, N, IN, OUT, 0);
    free(wt);
    if (bias)
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OUT; o++) out[n * OUT + o] += bias[o];
}

/* dinp (N, IN) = dout (N, OUT) @ w (OUT, IN);  dw (OUT, IN) += dout^T @ inp (N, IN);
 * dbias (OUT) += column sums of dout. Each thread owns whole rows of what it writes. */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, int64_t N, int64_t IN, int64_t OUT) {
    if (dinp) matmul_backward_x(dinp, dout, w, N, IN, OUT);
    matmul_backward_w(dw, dbias, dout, inp, N, IN, OUT);
}

void matmul_backward_x(float *dinp, const float *dout, const float *w, int64_t N, int64_t IN,
                       int64_t OUT) {
    mm_nn(dinp, dout, OUT, 1, w, N, OUT, IN, 0);
}

void matmul_backward_w(float *dw, float *dbias, const float *dout, const float *inp,
                       int64_t N, int64_t IN, int64_t OUT) {
    mm_nn(dw, dout, 1, OUT, inp, OUT, N, IN, 1);
    if (dbias) {
        /* a block of columns per thread, walked row by row (contiguous reads of dout) */
#pragma omp parallel for schedule(static)
        for (int64_t o0 = 0; o0 < OUT; o0 += MM_BIAS_COLS) {
            int64_t cols = OUT - o0 < MM_BIAS_COLS ? OUT - o0 : MM_BIAS_COLS;
            float acc[MM_BIAS_COLS] = {0};
            for (int64_t n = 0; n < N; n++)
                for (int64_t j = 0; j < cols; j++) acc[j] += dout[n * OUT + o0 + j];
            for (int64_t j = 0; j < cols; j++) dbias[o0 + j] += acc[j];
        }
    }
}
