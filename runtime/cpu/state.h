/* runtime/cpu/state.h - the cpu backend's state, shared by its files: one rank's fp32 mirror
 * of the arena (cpu_state) and the backend's (cpu_backend: every rank's and where they meet);
 * backend.c runs the schedule on it, resident.c owns the resident units' arrays. */
#ifndef HZ_CPU_STATE_H
#define HZ_CPU_STATE_H
#include "../hz_layout.h"
#include "../rt.h"
#include "block.h"
#include "ranks.h"

/* One rank's mirror of the arena. */
typedef struct cpu_state {
    int64_t tokens, n_micro; /* its share of the step: hz_gpu_step_tokens, hz_gpu_n_micro */
    float **wslot, **gslot, *ghead;
    int64_t wslot_n, gslot_n, ghead_n;
    float *boundary, *dgrad, *work_mem, *head_mem, *inv_freq;
    float *inv_freq_local;   /* the RoPE table of sliding-window blocks (hz_unit.window) */
    float *host_boundary;    /* boundaries 0..L-1 when the plan keeps them on the host */
    /* resident units: their w, lo, m, v (in the plan's optimizer state), fp32 gradients and
     * int8 scales live in res[] (the RESIDENT region as the GPU holds it, hz_resident_layout,
     * in res_mem); their weights are widened into res_slot for each op, their gradients
     * gather in res_gblock (blocks) or res_ghead */
    char *res_mem, *res[HZ_RES_ARRAYS];
    uint16_t *res_w;
    int16_t *res_lo;
    float *res_g;
    float *res_slot, *res_gblock, *res_ghead;
    int64_t res_gblock_n, res_ghead_n;
    hz_pool *res_pool;       /* one thread for their updates, which run beside the host
                              * optimizer thread's pool */
    float *hold;             /* the GHOLD region: held units' gradients (hz_unit.held) */
    float *saved;            /* the SAVED region: kept blocks' activations, fp32 */
    float *mlp_out;          /* the MLPOUT region: the MLP outputs of the blocks keeping them */
    int64_t mlp_out_off[HZ_MLPOUT_BUF_N]; /* floats from an MLPOUT slot's start to each buffer */
    int64_t mlp_out_n;       /* floats per such block and micro-batch */
    float **peer;            /* (ranks): cpu_reduce's pointers at each rank's gradients */
    int64_t saved_n;         /* floats per kept block and micro-batch */
    cpu_work work;
    int32_t *inputs, *targets; /* (tokens) each: its share of the step's, as begin_step gave */
    float dscale;              /* the step's loss scale, 1 / trained tokens */
    double loss_sum, sumsq;
    int64_t arena_bytes;
    double step_t0;          /* host clock at begin_step */
    float *op_t0, *op_t1;    /* per op: ms from step_t0 (the ops run one after another) */
    /* --profile-kernels: the profiled step's clock (kclock.kp set), and KC pointing at it
     * while one of its ops runs (NULL otherwise: nothing is timed) */
    hz_kclock kclock, *kc;
} cpu_state;

/* The backend's state: a mirror a rank, and their meeting place for the gradient sums. */
typedef struct cpu_backend {
    int rank_n;
    cpu_state *rank;         /* (rank_n) */
    cpu_ranks meet;
} cpu_backend;

static inline cpu_state *rank_state(const hz_ctx *c, int rank)
{
    return &((cpu_backend *)c->bk)->rank[rank];
}

/* A copy or conversion of N elements of B bytes each way, as the profile counts it. */
static inline hz_kcost copy_cost(int row, int64_t n, int bytes)
{
    return hz_kc(row, 0.0, (double)n * bytes);
}

/* resident.c: a resident unit's update on RANK's copy (the OPT op), and the home of the
 * resident units' state arrays (hz_backend.home_copy). */
void cpu_op_opt(hz_ctx *c, int rank, const hz_op *o);
void cpu_home_copy(void *ctx, int a, int64_t first, int64_t n, void *buf, int to_home);

#endif
