/* runtime/cpu/ranks.c - the cpu backend's ranks meeting to sum their gradients (ranks.h):
 * a barrier reused for every meeting, and each rank's share of a sum in rank order. */
#include "ranks.h"

void cpu_ranks_init(cpu_ranks *g, int n)
{
    g->n = n;
    g->arrived = 0;
    g->round = 0;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

void cpu_ranks_destroy(cpu_ranks *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

void cpu_ranks_meet(cpu_ranks *g)
{
    pthread_mutex_lock(&g->mu);
    uint64_t round = g->round;
    if (++g->arrived == g->n) { /* the last to arrive opens the next meeting */
        g->arrived = 0;
        g->round++;
        pthread_cond_broadcast(&g->cv);
    } else {
        while (g->round == round) pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

void cpu_ranks_sum(const cpu_ranks *g, int rank, float *const *grads, int64_t n, int all)
{
    int64_t per = (n + g->n - 1) / g->n, lo = per * rank, hi = lo + per < n ? lo + per : n;
    for (int64_t e = lo; e < hi; e++) {
        float sum = grads[0][e];
        for (int r = 1; r < g->n; r++) sum += grads[r][e];
        grads[0][e] = sum;
        for (int r = 1; all && r < g->n; r++) grads[r][e] = sum;
    }
}
