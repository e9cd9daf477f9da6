/* runtime/cpu/ranks.h - the cpu backend's ranks meeting to sum their gradients (several GPUs
 * of one host, run as ranks of one process: runtime/rt.h "Ranks"). Each rank's thread
 * calls in for the same sums in the same order; a sum's bits do not depend on timing. */
#ifndef HZ_CPU_RANKS_H
#define HZ_CPU_RANKS_H
#include <pthread.h>
#include <stdint.h>

typedef struct cpu_ranks {
    int n;                  /* ranks */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;            /* ranks at the current meeting */
    uint64_t round;         /* meetings completed */
} cpu_ranks;

void cpu_ranks_init(cpu_ranks *g, int n);
void cpu_ranks_destroy(cpu_ranks *g);
/* Block until all g->n ranks have called it (once each) for this meeting. */
void cpu_ranks_meet(cpu_ranks *g);
/* RANK's part of the sum of N elements over the ranks: for the RANK-th of g->n equal runs
 * of [0, N), element e becomes ((g[0][e] + g[1][e]) + g[2][e]) + ... in fp32, written to
 * g[0] (ALL 0) or to every g[r] (ALL 1). G holds g->n pointers, one a rank. Each element is
 * read and written by one rank alone, so the ranks run their parts at once; call it between
 * two meetings (before: every rank's gradients are complete; after: every sum is written). */
void cpu_ranks_sum(const cpu_ranks *g, int rank, float *const *grads, int64_t n, int all);

#endif
