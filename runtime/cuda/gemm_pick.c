/* runtime/cuda/gemm_pick.c - each GEMM's algorithm chosen by measuring, not only by the
 * heuristic's first answer: after init has planned every GEMM of the step and of eval
 * (gemm.c keeps up to GEMM_CANDIDATES of cuBLASLt's answers and each GEMM's first operands),
 * every candidate is timed on those operands and the fastest is kept when it beats the first
 * by more than the timing's noise. Under --profile-kernels the one each GEMM runs is timed
 * again for the profile's "alone" column right after the profiled step: a card at its power
 * limit through a step runs below the clock a few calls on an idle card reach (on an H200,
 * about 1450 against 1900 MHz), and the same GEMMs timed while it still holds the step's
 * clock compare the step's work with itself, not with the card's boost. The operands are the
 * arena's and the resident weights': the calls only write outputs that a step writes before
 * it reads them (activations, and weight gradients, which each backward clears at its first
 * micro-batch). --deterministic keeps (and times) the first for every GEMM, so that a rerun
 * and a resume run the same algorithms. */
#include "cuda.h"

#define PICK_REPS 5       /* timed calls per candidate, after one untimed */
#define PICK_MARGIN 0.97f /* a candidate replaces the first below 97% of its time */
#define ALONE_REPS 20

/* Milliseconds per call of candidate C of G, or -1 when cuBLASLt refuses it. */
static float time_candidate(cuda_state *s, gemm_plan *g, int c, int reps, cudaEvent_t e0,
                            cudaEvent_t e1)
{
    cudaStream_t st = s->stream[HZ_COMPUTE];
    if (hzcu_gemm_issue(s, g, c, g->a, g->b, g->d, g->beta) != CUBLAS_STATUS_SUCCESS)
        return -1.0f;
    CUDA_CHECK(cudaEventRecord(e0, st));
    for (int r = 0; r < reps; r++)
        if (hzcu_gemm_issue(s, g, c, g->a, g->b, g->d, g->beta) != CUBLAS_STATUS_SUCCESS)
            return -1.0f;
    CUDA_CHECK(cudaEventRecord(e1, st));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    return ms / (float)reps;
}

void hzcu_gemm_time_alone(cuda_state *s)
{
    double t0 = hz_now_s();
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    int n = 0;
    for (int i = 0; i < s->gemm_n; i++) {
        gemm_plan *g = &s->gemm[i];
        if (!g->a || g->alone_ms <= 0.0f) continue; /* not timed at init */
        float ms = time_candidate(s, g, g->picked, ALONE_REPS, e0, e1);
        if (ms > 0.0f) g->alone_ms = ms, n++;
    }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    printf("cuda backend: GEMM times alone for the kernel profile: %d shapes, %d calls each, "
           "after the profiled step, in %.2f s\n", n, ALONE_REPS, hz_now_s() - t0);
}

void hzcu_gemm_pick(cuda_state *s)
{
    double t0 = hz_now_s();
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    int timed = 0, changed = 0;
    double first_ms = 0.0, picked_ms = 0.0;
    for (int i = 0; i < s->gemm_n; i++) {
        gemm_plan *g = &s->gemm[i];
        if (!g->a) continue;
        /* --deterministic: only the first, for the kernel profile's "alone" column */
        int tries = s->det ? 1 : g->cand_n;
        float t[GEMM_CANDIDATES] = {0};
        int best = 0;
        for (int c = 0; c < tries; c++) {
            t[c] = time_candidate(s, g, c, PICK_REPS, e0, e1);
            if (t[c] > 0.0f && (t[best] <= 0.0f || t[c] < t[best])) best = c;
        }
        if (t[0] <= 0.0f) continue; /* the first ran at init's walk; cuBLASLt refused it now */
        timed++;
        if (best != 0 && t[best] < PICK_MARGIN * t[0]) {
            g->picked = best;
            changed++;
            printf("cuda backend: GEMM %s (m %lld n %lld k %lld): cuBLASLt's answer %d of %d, "
                   "%.3f ms a call against the first's %.3f\n",
                   g->what, (long long)g->m, (long long)g->n, (long long)g->k, best + 1,
                   g->cand_n, (double)t[best], (double)t[0]);
        }
        g->alone_ms = t[g->picked];
        first_ms += t[0];
        picked_ms += t[g->picked];
    }
    double pick_s = hz_now_s() - t0;
    if (s->det)
        printf("cuda backend: GEMM algorithms: cuBLASLt's first answer for each of %d shapes "
               "(--deterministic runs the same algorithms in every run), timed in %.2f s\n",
               timed, pick_s);
    else
        printf("cuda backend: GEMM algorithms timed for %d shapes in %.2f s: %d run another than "
               "cuBLASLt's first; one call of each timed shape %.3f ms (the first answers: "
               "%.3f ms)\n",
               timed, pick_s, changed, picked_ms, first_ms);
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
}
