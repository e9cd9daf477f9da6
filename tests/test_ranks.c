/* tests/test_ranks.c - the cpu backend's gradient sums over ranks (runtime/cpu/ranks.c): N
 * threads meeting for many sums in a row, each sum's bits those of the sequential sum in rank
 * order, written to rank 0 alone (a streamed unit's reduce) or to every rank (a resident
 * unit's all-reduce). */
#include <pthread.h>
#include <string.h>

#include "ranks.h"
#include "test.h"

#define MAX_RANKS 4
#define ROUNDS 50
/* lengths below, at and above the rank count, and one a run of each rank's cannot divide */
static const int64_t lengths[] = {1, 3, 4, 7, 1000, 4099};
#define LENGTHS_N ((int)(sizeof lengths / sizeof lengths[0]))

typedef struct job {
    cpu_ranks *g;            /* the meetings: the ranks and the main thread */
    const cpu_ranks *split;  /* the ranks alone: how a sum is split among them */
    int rank;
    float **grads; /* (ranks): the arrays of the sum in progress */
    int all;
} job;

static void *rank_main(void *arg)
{
    job *j = arg;
    for (int round = 0; round < ROUNDS; round++)
        for (int l = 0; l < LENGTHS_N; l++) {
            cpu_ranks_meet(j->g); /* the main thread has filled the arrays */
            cpu_ranks_meet(j->g);
            cpu_ranks_sum(j->split, j->rank, j->grads, lengths[l], j->all);
            cpu_ranks_meet(j->g); /* the sums are written */
            cpu_ranks_meet(j->g); /* the main thread has checked them */
        }
    return NULL;
}

/* Fill rank r's array, a mix of magnitudes so that the order of the sum shows in its bits. */
static void fill(float *const *grads, int n_ranks, int64_t n, int round)
{
    for (int r = 0; r < n_ranks; r++)
        for (int64_t e = 0; e < n; e++) {
            uint64_t h = (uint64_t)(round * 7919 + r * 104729) + (uint64_t)e * 2654435761u;
            float mag = (h >> 3) % 3 == 0 ? 1e4f : (h >> 3) % 3 == 1 ? 1.0f : 1e-4f;
            grads[r][e] = mag * ((float)(h % 1000) / 997.0f - 0.5f);
        }
}

/* N ranks (threads) meet for ROUNDS x LENGTHS_N sums; the main thread takes part in every
 * meeting as one more party, so it fills before and checks after each sum. */
static void run(int n_ranks, int all)
{
    cpu_ranks g, split;
    cpu_ranks_init(&g, n_ranks + 1);
    cpu_ranks_init(&split, n_ranks);
    float *grads[MAX_RANKS], *want = malloc(4099 * sizeof(float));
    for (int r = 0; r < n_ranks; r++) grads[r] = malloc(4099 * sizeof(float));
    pthread_t tid[MAX_RANKS];
    job jobs[MAX_RANKS];
    for (int r = 0; r < n_ranks; r++) {
        jobs[r] = (job){&g, &split, r, grads, all};
        pthread_create(&tid[r], NULL, rank_main, &jobs[r]);
    }
    int64_t bad_sum = 0, bad_copy = 0;
    for (int round = 0; round < ROUNDS; round++)
        for (int l = 0; l < LENGTHS_N; l++) {
            int64_t n = lengths[l];
            fill(grads, n_ranks, n, round);
            for (int64_t e = 0; e < n; e++) {
                float s = grads[0][e];
                for (int r = 1; r < n_ranks; r++) s += grads[r][e];
                want[e] = s;
            }
            cpu_ranks_meet(&g); /* filled */
            cpu_ranks_meet(&g); /* the ranks start their parts */
            cpu_ranks_meet(&g); /* every part is written */
            for (int64_t e = 0; e < n; e++) {
                bad_sum += memcmp(&grads[0][e], &want[e], 4) != 0;
                for (int r = 1; all && r < n_ranks; r++)
                    bad_copy += memcmp(&grads[r][e], &want[e], 4) != 0;
            }
            cpu_ranks_meet(&g);
        }
    for (int r = 0; r < n_ranks; r++) pthread_join(tid[r], NULL);
    CHECK(bad_sum == 0, "%d ranks, %s: %d sums of 1 to 4099 elements, rank 0's bits those of "
                        "the sum in rank order (%lld differ)",
          n_ranks, all ? "all-reduce" : "reduce", ROUNDS * LENGTHS_N, (long long)bad_sum);
    if (all)
        CHECK(bad_copy == 0, "%d ranks, all-reduce: every rank holds rank 0's sum (%lld differ)",
              n_ranks, (long long)bad_copy);
    for (int r = 0; r < n_ranks; r++) free(grads[r]);
    free(want);
    cpu_ranks_destroy(&g);
    cpu_ranks_destroy(&split);
}

int main(void)
{
    for (int n = 1; n <= MAX_RANKS; n++) {
        run(n, 0);
        run(n, 1);
    }
    TEST_END();
}
