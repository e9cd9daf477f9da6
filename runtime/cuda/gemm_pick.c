/* runtime/cuda/gemm_pick.c - each GEMM's algorithm chosen by measuring, not only by the
 * heuristic's first answer: after init has planned every GEMM of the step and of eval
 * (gemm.c keeps up to GEMM_CANDIDATES of cuBLASLt's answers and each GEMM's first operands),
 * every candidate is timed on those operands and the fastest is kept when it beats the first
 * by more than the timing's noise. Under --profile-kernels the one each GEMM runs is timed
 * again for the profile's "alone" column right after the profiled step: a card at its power
 * limit through a step runs below the clock a few calls on an idle card reach (on an H200,
 * about 1450 against 1900 MHz), and the same GEMMs timed while it still holds the step's
 * clock compare the step's work with itself, not with the card's boost. Each timed call
 * starts with the L2 overwritten (l2_flush), as a GEMM of the step starts: the kernels
 * between two calls of one shape leave little of its operands there, while back-to-back calls
 * find a weight of up to the L2's size (50 MB on an H200) where the call before left it. The
 * operands are the arena's and the resident weights': the calls, and the flush, only write
 * outputs that a step writes before it reads them (activations, and weight gradients, which
 * each backward clears at its first micro-batch). --deterministic keeps (and times) the first
 * for every GEMM, so that a rerun and a resume run the same algorithms. */
#include "cuda.h"

#define PICK_REPS 5       /* timed calls per candidate, after one untimed */
#define PICK_MARGIN 0.97f /* a candidate replaces the first below 97% of its time */
#define ALONE_REPS 20
#define FLUSH_L2S 2 /* the flush writes twice the L2's bytes */
_Static_assert(PICK_REPS <= ALONE_REPS, "the timer has ALONE_REPS pairs of events");

/* What each timed call is preceded by: a write of FLUSH_L2S x the L2's bytes into the output
 * of the GEMM whose output is largest (written by that GEMM before any read, so dead between
 * steps; capped at the output's own bytes), and the events around the calls. */
typedef struct {
    void *buf;
    size_t bytes;
    cudaEvent_t ev[ALONE_REPS][2];
} timer;

static void timer_open(cuda_state *s, timer *t)
{
    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, s->dev));
    t->buf = NULL, t->bytes = 0;
    for (int i = 0; i < s->gemm_n; i++) {
        const gemm_plan *g = &s->gemm[i];
        size_t bytes = (size_t)g->m * (size_t)g->n * (g->out_f32 ? 4u : 2u);
        if (g->d && bytes > t->bytes) t->buf = g->d, t->bytes = bytes;
    }
    if (t->bytes > (size_t)FLUSH_L2S * (size_t)l2) t->bytes = (size_t)FLUSH_L2S * (size_t)l2;
    for (int r = 0; r < ALONE_REPS; r++)
        for (int j = 0; j < 2; j++) CUDA_CHECK(cudaEventCreate(&t->ev[r][j]));
}

static void timer_close(timer *t)
{
    for (int r = 0; r < ALONE_REPS; r++)
        for (int j = 0; j < 2; j++) CUDA_CHECK(cudaEventDestroy(t->ev[r][j]));
}

/* Milliseconds per call of candidate C of G (the mean of REPS calls, each after the flush and
 * timed by its own events), or -1 when cuBLASLt refuses it. */
static float time_candidate(cuda_state *s, gemm_plan *g, int c, int reps, timer *t)
{
    cudaStream_t st = s->stream[HZ_COMPUTE];
    if (hzcu_gemm_issue(s, g, c, g->a, g->b, g->c, g->d, g->beta) != CUBLAS_STATUS_SUCCESS)
        return -1.0f;
    for (int r = 0; r < reps; r++) {
        if (t->bytes) CUDA_CHECK(cudaMemsetAsync(t->buf, 0, t->bytes, st));
        CUDA_CHECK(cudaEventRecord(t->ev[r][0], st));
        if (hzcu_gemm_issue(s, g, c, g->a, g->b, g->c, g->d, g->beta) != CUBLAS_STATUS_SUCCESS)
            return -1.0f;
        CUDA_CHECK(cudaEventRecord(t->ev[r][1], st));
    }
    CUDA_CHECK(cudaEventSynchronize(t->ev[reps - 1][1]));
    float sum = 0.0f;
    for (int r = 0; r < reps; r++) {
        float ms = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, t->ev[r][0], t->ev[r][1]));
        sum += ms;
    }
    return sum / (float)reps;
}

void hzcu_gemm_time_alone(cuda_state *s)
{
    double t0 = hz_now_s();
    timer t;
    timer_open(s, &t);
    int n = 0;
    for (int i = 0; i < s->gemm_n; i++) {
        gemm_plan *g = &s->gemm[i];
        if (!g->a || g->alone_ms <= 0.0f) continue; /* not timed at init */
        float ms = time_candidate(s, g, g->picked, ALONE_REPS, &t);
        if (ms > 0.0f) g->alone_ms = ms, n++;
    }
    timer_close(&t);
    printf("cuda backend: GEMM times alone for the kernel profile: %d shapes, %d calls each "
           "after %zu bytes written over the L2, after the profiled step, in %.2f s\n", n,
           ALONE_REPS, t.bytes, hz_now_s() - t0);
}

void hzcu_gemm_pick(cuda_state *s)
{
    double t0 = hz_now_s();
    timer tm;
    timer_open(s, &tm);
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
            t[c] = time_candidate(s, g, c, PICK_REPS, &tm);
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
    timer_close(&tm);
}
