/* runtime/cuda/gemm.c - the GEMMs, with cuBLASLt: bf16 A and B, fp32 compute, bf16 or fp32
 * D. Each distinct GEMM (shape, layout, output type, pointer alignments) is planned once:
 * its descriptors and the heuristic's candidate algorithms are kept (it runs the first until
 * gemm_pick.c has timed them), and init plans all of them by walking the step without
 * issuing (cuda_state.dry). Column-major inside; the row-major
 * helpers (linear_*) say which operand is which. */
#include "cuda.h"

/* Largest power of two (at most 256) dividing the address: the alignment cuBLASLt sees. */
static uint32_t ptr_align(const void *ptr)
{
    uintptr_t a = (uintptr_t)ptr;
    uint32_t al = 1;
    while (al < 256 && (a & al) == 0) al <<= 1;
    return al;
}

static gemm_plan *gemm_find(cuda_state *s, int ta, int tb, int64_t m, int64_t n, int64_t k,
                            int64_t lda, int64_t ldb, int64_t ldd, int out_f32, uint32_t aa,
                            uint32_t ab, uint32_t ac, uint32_t ad)
{
    for (int i = 0; i < s->gemm_n; i++) {
        gemm_plan *g = &s->gemm[i];
        if (g->transa == ta && g->transb == tb && g->m == m && g->n == n && g->k == k &&
            g->lda == lda && g->ldb == ldb && g->ldd == ldd && g->out_f32 == out_f32 &&
            g->align_a == aa && g->align_b == ab && g->align_c == ac && g->align_d == ad)
            return g;
    }
    return NULL;
}

/* Describe a new GEMM and ask cuBLASLt's heuristic for its algorithm (once per key; AC: the
 * alignment of a C apart from D, 0 for C = D). */
static gemm_plan *gemm_new(cuda_state *s, const char *what, int ta, int tb, int64_t m, int64_t n,
                           int64_t k, int64_t lda, int64_t ldb, int64_t ldd, int out_f32,
                           uint32_t aa, uint32_t ab, uint32_t ac, uint32_t ad)
{
    if (s->gemm_n == GEMM_MAX) hzcu_die("more than %d distinct GEMMs (internal error)", GEMM_MAX);
    gemm_plan *g = &s->gemm[s->gemm_n];
    *g = (gemm_plan){.transa = ta, .transb = tb, .out_f32 = out_f32, .m = m, .n = n, .k = k,
                     .lda = lda, .ldb = ldb, .ldd = ldd, .align_a = aa, .align_b = ab,
                     .align_c = ac, .align_d = ad, .what = what};
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cudaDataType_t dt = out_f32 ? CUDA_R_32F : CUDA_R_16BF;
    LT_CHECK(cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_CHECK(
        cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT_CHECK(
        cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    /* stored shapes: A is (m, k) or, transposed, (k, m); B is (k, n) or (n, k) */
    LT_CHECK(cublasLtMatrixLayoutCreate(&g->la, CUDA_R_16BF, (uint64_t)(ta ? k : m),
                                        (uint64_t)(ta ? m : k), lda));
    LT_CHECK(cublasLtMatrixLayoutCreate(&g->lb, CUDA_R_16BF, (uint64_t)(tb ? n : k),
                                        (uint64_t)(tb ? k : n), ldb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&g->ld, dt, (uint64_t)m, (uint64_t)n, ldd));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = LT_WORKSPACE_BYTES;
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &ws, sizeof ws));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                  &aa, sizeof aa));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                  &ab, sizeof ab));
    uint32_t align_c = ac ? ac : ad;
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                  &align_c, sizeof align_c));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                  &ad, sizeof ad));
    cublasLtMatmulHeuristicResult_t res[GEMM_CANDIDATES];
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(s->lt, g->desc, g->la, g->lb, g->ld, g->ld,
                                                       pref, GEMM_CANDIDATES, res, &found);
    LT_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (st != CUBLAS_STATUS_SUCCESS || found == 0)
        hzcu_die(
            "cuBLASLt has no algorithm for the GEMM %s (m %lld n %lld k %lld, op %c%c, %s out, "
            "alignments %u/%u/%u bytes): %s",
            what, (long long)m, (long long)n, (long long)k, ta ? 'T' : 'N', tb ? 'T' : 'N',
            out_f32 ? "fp32" : "bf16", aa, ab, ad, cublasLtGetStatusString(st));
    for (int i = 0; i < found; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
        g->cand[g->cand_n] = res[i].algo;
        g->cand_ws[g->cand_n++] = res[i].workspaceSize;
    }
    if (g->cand_n == 0)
        hzcu_die("cuBLASLt's heuristic gave no usable algorithm for the GEMM %s (m %lld n %lld "
                 "k %lld)", what, (long long)m, (long long)n, (long long)k);
    s->gemm_n++;
    return g;
}

cublasStatus_t hzcu_gemm_issue(cuda_state *s, const gemm_plan *g, int cand, const void *A,
                               const void *B, const void *C, void *D, float beta)
{
    const float alpha = 1.0f;
    return cublasLtMatmul(s->lt, g->desc, &alpha, A, g->la, B, g->lb, &beta, C ? C : D, g->ld, D,
                          g->ld, &g->cand[cand], s->ws, g->cand_ws[cand], s->stream[HZ_COMPUTE]);
}

/* D (m, n) = A' B' (+ C when beta = 1; C NULL: D itself), column-major, A' = op(A) (m, k),
 * B' = op(B) (k, n), C laid out as D. WHAT names the product for messages, ROW its row of
 * the kernel profile (runtime/kprof.h). Pointers must be 16-byte aligned. */
static void gemm(cuda_state *s, int row, const char *what, int ta, int tb, int64_t m, int64_t n,
                 int64_t k, const bf16 *A, int64_t lda, const bf16 *B, int64_t ldb, const void *C,
                 void *D, int64_t ldd, int out_f32, float beta)
{
    if (C == D) C = NULL;
    uint32_t aa = ptr_align(A), ab = ptr_align(B), ac = C ? ptr_align(C) : 0, ad = ptr_align(D);
    if (aa < 16 || ab < 16 || ad < 16 || (C && ac < 16))
        hzcu_die(
            "GEMM %s (m %lld n %lld k %lld): operands must be 16-byte aligned, got alignments "
            "A %u, B %u, C %u, D %u bytes (internal error: the plan's offsets should keep them "
            "aligned)", what, (long long)m, (long long)n, (long long)k, aa, ab, ac, ad);
    gemm_plan *g = gemm_find(s, ta, tb, m, n, k, lda, ldb, ldd, out_f32, aa, ab, ac, ad);
    if (!g) {
        if (!s->dry && !s->gemm_late++)
            fprintf(stderr,
                    "train: warning: GEMM %s (m %lld n %lld k %lld) was not planned at "
                    "init; planning it now\n",
                    what, (long long)m, (long long)n, (long long)k);
        g = gemm_new(s, what, ta, tb, m, n, k, lda, ldb, ldd, out_f32, aa, ab, ac, ad);
        g->a = A, g->b = B, g->c = C, g->d = D, g->beta = beta;
    }
    hz_kcost cost = hz_kc(row, 2.0 * (double)m * (double)n * (double)k, 0.0);
    int gi = (int)(g - s->gemm);
    if (s->dry) {
        if (s->prof_on) hzcu_prof_mark_gemm(s, cost, gi);
        return;
    }
    cublasStatus_t st = hzcu_gemm_issue(s, g, g->picked, A, B, C, D, beta);
    if (st != CUBLAS_STATUS_SUCCESS)
        hzcu_die("cuBLASLt GEMM %s (m %lld n %lld k %lld, op %c%c, %s out, beta %g) failed: %s",
                 what, (long long)m, (long long)n, (long long)k, ta ? 'T' : 'N', tb ? 'T' : 'N',
                 out_f32 ? "fp32" : "bf16", (double)beta, cublasLtGetStatusString(st));
    if (s->prof_on) hzcu_prof_mark_gemm(s, cost, gi);
}

/* Row-major linear layers as in runtime/cpu/ops.h, w (OUT, IN):
 *   y (N, OUT) = x (N, IN) @ w^T          -> column-major y^T = op_T(w) x^T
 *   dx (N, IN) = dy (N, OUT) @ w          -> dx^T = w^T dy^T, w read as (IN, OUT) col-major
 *   dw (OUT, IN) += dy^T @ x  (fp32)      -> dw^T (IN, OUT) = x^T dy, dy read transposed */
void hzcu_linear_forward(cuda_state *s, int role, const char *what, bf16 *y, const bf16 *x,
                         const bf16 *w, int64_t N, int64_t IN, int64_t OUT)
{
    gemm(s, hz_krow_gemm(role, HZ_GEMM_FWD), what, 1, 0, OUT, N, IN, w, IN, x, IN, NULL, y, OUT, 0,
         0.0f);
}

void hzcu_linear_forward_add(cuda_state *s, int role, const char *what, bf16 *y, const bf16 *x,
                             const bf16 *w, const bf16 *r, int64_t N, int64_t IN, int64_t OUT)
{
    gemm(s, hz_krow_gemm(role, HZ_GEMM_FWD), what, 1, 0, OUT, N, IN, w, IN, x, IN, r, y, OUT, 0,
         1.0f);
}

void hzcu_linear_backward_x(cuda_state *s, int role, const char *what, bf16 *dx, const bf16 *dy,
                            const bf16 *w, int64_t N, int64_t IN, int64_t OUT)
{
    gemm(s, hz_krow_gemm(role, HZ_GEMM_DX), what, 0, 0, IN, N, OUT, w, IN, dy, OUT, NULL, dx, IN, 0,
         0.0f);
}

void hzcu_linear_backward_w(cuda_state *s, int role, const char *what, float *dw, const bf16 *dy,
                            const bf16 *x, int64_t N, int64_t IN, int64_t OUT)
{
    gemm(s, hz_krow_gemm(role, HZ_GEMM_DW), what, 0, 1, IN, OUT, N, x, IN, dy, OUT, NULL, dw, IN, 1,
         1.0f);
}

void hzcu_gemm_destroy(cuda_state *s)
{
    for (int i = 0; i < s->gemm_n; i++) {
        gemm_plan *g = &s->gemm[i];
        LT_CHECK(cublasLtMatrixLayoutDestroy(g->la));
        LT_CHECK(cublasLtMatrixLayoutDestroy(g->lb));
        LT_CHECK(cublasLtMatrixLayoutDestroy(g->ld));
        LT_CHECK(cublasLtMatmulDescDestroy(g->desc));
    }
    s->gemm_n = 0;
    if (s->lt) LT_CHECK(cublasLtDestroy(s->lt));
    s->lt = NULL;
}
