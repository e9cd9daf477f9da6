/* runtime/cuda/ranks.c - several GPUs of one process (runtime/rt.h "Ranks"; docs/plan.md
 * "Several GPUs of one host"): one NCCL communicator over the process's GPUs, rank r on
 * GPU r, and the sum of each unit's gradients over them before its STORE_G. Each rank's
 * thread issues its own collectives, in the op list's order, on its d2h stream, so the
 * sum follows that rank's backward of the unit and precedes its copy to the host; only
 * rank 0 copies a streamed unit's sum (backend.c op_store_g). NCCL's order of summing is
 * fixed by its algorithm for the size and the GPUs' topology, not by timing: reruns give the
 * same bits. NVLink multicast (NVLS) is left off unless the environment sets
 * NCCL_NVLS_ENABLE. */
#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "nccl_api.h"

#ifdef HZ_HAVE_NCCL
#define NCCL_CHECK(call)                                                                  \
    do {                                                                                  \
        ncclResult_t nccl_r_ = (call);                                                    \
        if (nccl_r_ != ncclSuccess)                                                       \
            hzcu_die("%s:%d: %s: NCCL: %s", __FILE__, __LINE__, #call,                    \
                     hznccl.ncclGetErrorString(nccl_r_));                                 \
    } while (0)

int hzcu_ranks_init(hz_ctx *c)
{
    cuda_state *all = c->bk;
    int n = c->rank_n;
    char why[700];
    if (hznccl_load(why, sizeof why) != 0) {
        fprintf(stderr, "train: error: the plan splits each step over %d GPUs, whose gradients "
                        "NCCL sums, and NCCL could not be loaded: %s\n"
                        "HINT: install NCCL 2 (NVIDIA's libnccl2 package, or pip's "
                        "nvidia-nccl-cu12) or name the library with HZ_NCCL_LIB=PATH\n",
                n, why);
        return -1;
    }
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    ncclComm_t *comm = calloc((size_t)n, sizeof *comm);
    int *devs = calloc((size_t)n, sizeof *devs);
    if (!comm || !devs) hzcu_die("out of host memory");
    for (int r = 0; r < n; r++) devs[r] = all[r].dev;
    ncclResult_t rc = hznccl.ncclCommInitAll(comm, n, devs);
    if (rc != ncclSuccess) {
        fprintf(stderr, "train: error: NCCL (%s) could not make a communicator of the %d GPUs: "
                        "%s (NCCL_DEBUG=INFO says more)\n",
                hznccl.path, n, hznccl.ncclGetErrorString(rc));
        free(comm);
        free(devs);
        return -1;
    }
    for (int r = 0; r < n; r++) all[r].comm = comm[r];
    printf("cuda backend: %d ranks, one a GPU; NCCL %d.%d.%d (%s) sums their gradients\n", n,
           hznccl.version / 10000, hznccl.version / 100 % 100, hznccl.version % 100,
           hznccl.path);
    free(comm);
    free(devs);
    return 0;
}

/* The floats of the unit's gradient buffer that its tensors' STORE_G reads: one span from
 * the first such tensor's to the end of the last (each tensor's at its grad_n). */
static void grad_span(const hz_plan *p, const hz_unit *u, int64_t *lo, int64_t *hi)
{
    *lo = INT64_MAX;
    *hi = 0;
    for (int k = 0; k < u->tensor_n; k++) {
        const hz_tensor *t = &p->tensors[u->first_tensor + k];
        if (!t->store_grad) continue;
        if (t->grad_n < *lo) *lo = t->grad_n;
        if (t->grad_n + t->rows * t->cols > *hi) *hi = t->grad_n + t->rows * t->cols;
    }
    if (*hi == 0) *lo = 0;
}

void hzcu_reduce(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    const hz_plan *p = s->p;
    const hz_unit *u = &p->units[o->unit];
    int64_t lo, hi;
    grad_span(p, u, &lo, &hi);
    if (hi <= lo) return;
    size_t n = (size_t)(hi - lo);
    cudaStream_t st = s->stream[o->stream];
    if (!s->dry) {
        float *g = (float *)hzcu_unit_grads(s, u, o->gslot) + lo;
        if (u->resident) /* every rank updates its own copy: each needs the sum */
            NCCL_CHECK(hznccl.ncclAllReduce(g, g, n, ncclFloat32, ncclSum, s->comm, st));
        else
            NCCL_CHECK(hznccl.ncclReduce(g, g, n, ncclFloat32, ncclSum, 0, s->comm, st));
    }
    /* the profile's bus bytes, as NCCL's tests count them: 2 (N-1)/N of the buffer for an
     * all-reduce, (N-1)/N for a reduce */
    double bus = (double)n * 4 * (s->rank_n - 1) / s->rank_n * (u->resident ? 2 : 1);
    if (s->prof_on) hzcu_prof_mark(s, st, hz_kc(HZ_KR_NCCL, 0.0, bus));
}

void hzcu_ranks_free(hz_ctx *c)
{
    cuda_state *all = c->bk;
    for (int r = 0; r < c->rank_n; r++)
        if (all[r].comm) {
            hzcu_rank(c, r);
            hznccl.ncclCommDestroy(all[r].comm);
            all[r].comm = NULL;
        }
}
#else
int hzcu_ranks_init(hz_ctx *c)
{
    fprintf(stderr, "train: error: the plan splits each step over %d GPUs, and this trainer "
                    "was built without NCCL (configure found no nccl.h), which sums their "
                    "gradients: install NCCL's header (libnccl-dev) and run ./configure and "
                    "hzc build again, or build without --gpus\n",
            c->rank_n);
    return -1;
}

void hzcu_reduce(hz_ctx *c, int rank, const hz_op *o)
{
    (void)c, (void)rank, (void)o;
    hzcu_die("internal error: a reduce without NCCL");
}

void hzcu_ranks_free(hz_ctx *c) { (void)c; }
#endif
