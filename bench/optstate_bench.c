/* bench/optstate_bench.c - how fast the host AdamW updates a range in each optimizer-state
 * precision (runtime/optstate_adamw.c, the loop the trainer's host optimizer runs), in ns per
 * element per thread and in elements per second over the pool, with bf16 gradients as a
 * tuned plan's host gradients are; the pages touched before the clock starts, the best of
 * REPS updates. Not a test.
 *   build/bench/optstate_bench [ELEMENTS (default 67108864) [THREADS (1) [REPS (3)]]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optstate.h"
#include "rt.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 67108864;
    int threads = argc > 2 ? atoi(argv[2]) : 1, reps = argc > 3 ? atoi(argv[3]) : 3;
    if (n < HZ_OPTSTATE_BLOCK || threads < 1 || reps < 1) {
        fprintf(stderr, "usage: %s [ELEMENTS >= %d [THREADS [REPS]]]\n", argv[0], HZ_OPTSTATE_BLOCK);
        return 2;
    }
    n -= n % HZ_OPTSTATE_BLOCK;
    uint16_t *w = malloc((size_t)n * 2), *g = malloc((size_t)n * 2);
    int16_t *lo = malloc((size_t)n * 2);
    hz_pool *pool = hz_pool_new(threads);
    if (!w || !g || !lo || !pool) {
        fprintf(stderr, "optstate_bench: out of memory for %lld elements\n", (long long)n);
        return 1;
    }
    uint64_t x = 88172645463325252ull;
    for (int64_t i = 0; i < n; i++) { /* weights ~ 0.02, gradients ~ 1e-3, both signs */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        float wf = (float)((int64_t)(x % 2001) - 1000) * 2e-5f, gf = (float)((int64_t)((x >> 20) % 2001) - 1000) * 1e-6f;
        uint32_t wb, gb;
        memcpy(&wb, &wf, 4);
        memcpy(&gb, &gf, 4);
        w[i] = (uint16_t)(wb >> 16), g[i] = (uint16_t)(gb >> 16), lo[i] = 0;
    }
    printf("optstate_bench: %lld elements, %d thread(s), bf16 gradients, best of %d\n",
           (long long)n, threads, reps);
    for (int mode = HZ_OPTSTATE_FP32; mode <= HZ_OPTSTATE_INT8; mode++) {
        hz_qstate q;
        if (hz_qstate_alloc(&q, mode, n, 7) != 0) return 1;
        double best = 1e30;
        for (int r = 0; r < reps + 1; r++) { /* the first run faults the state's pages in */
            hz_adam_coef k = {.decay = 1.0f - 1e-5f, .step = 1e-4f / (1.0f - 0.9f), .rbc2 = 1.0f / (1.0f - 0.95f),
                              .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .gscale = 1.0f};
            double t0 = now_s();
            int64_t bad = hz_qadamw_pool(&q, w, lo, g, 1, 0, n, &k, r + 1, pool);
            double dt = now_s() - t0;
            if (bad) fprintf(stderr, "optstate_bench: %lld non-finite gradients\n", (long long)bad);
            if (r > 0 && dt < best) best = dt;
        }
        printf("  %-5s %8.3f s  %6.2f ns/element/thread  %8.1f M elements/s\n", hz_optstate_name(mode),
               best, best * 1e9 * threads / (double)n, (double)n / best / 1e6);
        hz_qstate_free(&q);
    }
    hz_pool_free(pool);
    free(w), free(g), free(lo);
    return 0;
}
