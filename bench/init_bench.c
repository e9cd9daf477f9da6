/* bench/init_bench.c - how fast the random init (runtime/init.c) fills a host store, in ns
 * per element, on this machine's CPU: one matrix of ELEMENTS elements (and a norm), the store
 * pages touched before the clock starts, the best of REPS runs. Not a test.
 *   build/bench/init_bench [ELEMENTS (default 200000000) [THREADS (default 1) [REPS (3)]]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}


int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 200000000;
    int threads = argc > 2 ? atoi(argv[2]) : 1, reps = argc > 3 ? atoi(argv[3]) : 3;
    if (n < 4096 || threads < 1 || reps < 1) {
        fprintf(stderr, "usage: %s [ELEMENTS >= 4096 [THREADS [REPS]]]\n", argv[0]);
        return 2;
    }
    hz_tensor t[2] = {{.kind = HZ_FINAL_NORM, .rows = 4096, .cols = 1, .host_n = 0},
                      {.kind = HZ_WQKV, .rows = n - 4096, .cols = 1, .host_n = 4096}};
    hz_plan p;
    memset(&p, 0, sizeof p);
    p.tensors = t;
    p.tensor_n = 2;
    p.host_store_n = n;
    hz_store s;
    if (hz_store_alloc(&s, &p, NULL, NULL) != 0) {
        fprintf(stderr, "init_bench: cannot allocate a store of %lld elements\n", (long long)n);
        return 1;
    }
    memset(s.w, 1, (size_t)n * 2); /* fault the pages in: the trainer's store is pinned */
    memset(s.lo, 1, (size_t)n * 2);
    hz_pool *pool = hz_pool_new(threads);
    if (!pool) return 1;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        hz_store_init(&s, &p, 1234, pool);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    printf("init_bench: %lld elements, %d thread(s): best of %d %.3f s, %.2f ns/element, "
           "%.1f M elements/s\n", (long long)n, threads, reps, best, best * 1e9 / (double)n,
           (double)n / best / 1e6);
    hz_pool_free(pool);
    hz_store_free(&s);
    return 0;
}
