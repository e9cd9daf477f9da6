/* runtime/cuda/ranks.c - several GPUs of one process (runtime/rt.h "Ranks"; docs/plan.md
 * "Several GPUs of one host"): one NCCL communicator over the process's GPUs, rank r on
 * GPU r, and the sum of each unit's gradients over them before its STORE_G. Each rank's
 * thread issues its own collectives, in the op list's order, on its d2h stream, so the
 * sum follows that rank's backward of the unit and precedes its copy to the host; only
 * rank 0 copies a streamed unit's sum (backend.c op_store_g). NCCL's order of summing is
 * fixed by its algorithm for the size and the GPUs' topology, not by timing: reruns give the
 * same bits. With several hosts (runtime/hosts.h) GPU 0 of each host, holding its host's
 * sum, all-reduces it with the other hosts' GPUs 0 over a second communicator, whose id
 * host 0 passes over the hosts' link; a resident unit's total then goes to the host's
 * other GPUs by broadcast. NVLink multicast (NVLS) is left off unless the environment sets
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
    int n = c->rank_n, hosts = c->hosts.n > 1 ? c->hosts.n : 1;
    char why[700];
    if (hznccl_load(why, sizeof why) != 0) {
        fprintf(stderr, "train: error: the plan splits each step over %d GPUs%s, whose gradients "
                        "NCCL sums, and NCCL could not be loaded: %s\n"
                        "HINT: install NCCL 2 (NVIDIA's libnccl2 package, or pip's "
                        "nvidia-nccl-cu12) or name the library with HZ_NCCL_LIB=PATH\n",
                n * hosts, hosts > 1 ? " of several hosts" : "", why);
        return -1;
    }
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    if (n > 1) {
        ncclComm_t *comm = calloc((size_t)n, sizeof *comm);
        int *devs = calloc((size_t)n, sizeof *devs);
        if (!comm || !devs) hzcu_die("out of host memory");
        for (int r = 0; r < n; r++) devs[r] = all[r].dev;
        ncclResult_t rc = hznccl.ncclCommInitAll(comm, n, devs);
        for (int r = 0; rc == ncclSuccess && r < n; r++) all[r].comm = comm[r];
        free(comm);
        free(devs);
        if (rc != ncclSuccess) {
            fprintf(stderr, "train: error: NCCL (%s) could not make a communicator of the %d "
                            "GPUs: %s (NCCL_DEBUG=INFO says more)\n",
                    hznccl.path, n, hznccl.ncclGetErrorString(rc));
            return -1;
        }
    }
    if (hosts > 1) { /* the hosts' GPUs 0, host 0's id passed over the hosts' link */
        ncclUniqueId id;
        hzcu_rank(c, 0);
        if (c->hosts.rank == 0) NCCL_CHECK(hznccl.ncclGetUniqueId(&id));
        hz_hosts_bcast(&c->hosts, &id, sizeof id);
        ncclComm_t cross;
        ncclResult_t rc = hznccl.ncclCommInitRank(&cross, hosts, id, c->hosts.rank);
        if (rc != ncclSuccess) {
            fprintf(stderr, "train: error: NCCL (%s) could not make a communicator of the %d "
                            "hosts' GPUs 0: %s (NCCL_DEBUG=INFO says more; NCCL_SOCKET_IFNAME "
                            "names the network interface it should use)\n",
                    hznccl.path, hosts, hznccl.ncclGetErrorString(rc));
            return -1;
        }
        all[0].cross = cross;
    }
    /* rank 0's timing of its sums, three events a STORE_G op */
    const hz_plan *p = all[0].p;
    hzcu_rank(c, 0);
    if (!(all[0].sum_ev = calloc(3 * (size_t)p->op_n, sizeof(cudaEvent_t))))
        hzcu_die("out of host memory");
    for (int i = 0; i < p->op_n; i++)
        if (p->ops[i].kind == HZ_STORE_G)
            for (int k = 0; k < 3; k++) CUDA_CHECK(cudaEventCreate(&all[0].sum_ev[3 * i + k]));
    printf("cuda backend: %d rank%s, one a GPU%s; NCCL %d.%d.%d (%s) sums their gradients\n", n,
           n == 1 ? "" : "s", hosts > 1 ? ", and GPU 0 with the other hosts' GPUs 0" : "",
           hznccl.version / 10000, hznccl.version / 100 % 100, hznccl.version % 100,
           hznccl.path);
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

/* The profile's bus bytes of a collective over N of BYTES, as NCCL's tests count them:
 * 2 (N - 1) / N of them for an all-reduce, (N - 1) / N for a reduce or a broadcast. */
static double bus_bytes(size_t bytes, int n, int all)
{
    return (double)bytes * (n - 1) / n * (all ? 2 : 1);
}

void hzcu_reduce(hz_ctx *c, int rank, const hz_op *o)
{
    cuda_state *s = hzcu_rank(c, rank);
    const hz_plan *p = s->p;
    const hz_unit *u = &p->units[o->unit];
    int64_t lo, hi;
    grad_span(p, u, &lo, &hi);
    int hosts = c->hosts.n > 1 ? c->hosts.n : 1;
    cudaStream_t st = s->stream[o->stream];
    cudaEvent_t *ev = s->sum_ev && !s->dry ? s->sum_ev + 3 * (o - p->ops) : NULL;
    if (ev) CUDA_CHECK(cudaEventRecord(ev[0], st));
    if (hi <= lo) { /* nothing to sum; hzcu_sum_times reads the events all the same */
        for (int k = 1; ev && k < 3; k++) CUDA_CHECK(cudaEventRecord(ev[k], st));
        return;
    }
    size_t n = (size_t)(hi - lo);
    float *g = s->dry ? NULL : (float *)hzcu_unit_grads(s, u, o->gslot) + lo;
    /* within the host: every rank needs the sum of a resident unit; with several hosts only
     * rank 0 first, which then sums over the hosts and gives the total back */
    if (s->rank_n > 1) {
        int all = u->resident && hosts == 1;
        if (!s->dry && all)
            NCCL_CHECK(hznccl.ncclAllReduce(g, g, n, ncclFloat32, ncclSum, s->comm, st));
        else if (!s->dry)
            NCCL_CHECK(hznccl.ncclReduce(g, g, n, ncclFloat32, ncclSum, 0, s->comm, st));
        if (s->prof_on) hzcu_prof_mark(s, st, hz_kc(HZ_KR_NCCL, 0.0, bus_bytes(n * 4, s->rank_n, all)));
    }
    if (ev) CUDA_CHECK(cudaEventRecord(ev[1], st));
    if (hosts > 1 && rank == 0) {
        if (!s->dry) NCCL_CHECK(hznccl.ncclAllReduce(g, g, n, ncclFloat32, ncclSum, s->cross, st));
        if (s->prof_on) hzcu_prof_mark(s, st, hz_kc(HZ_KR_NCCL, 0.0, bus_bytes(n * 4, hosts, 1)));
    }
    if (hosts > 1 && s->rank_n > 1 && u->resident) {
        if (!s->dry) NCCL_CHECK(hznccl.ncclBroadcast(g, g, n, ncclFloat32, 0, s->comm, st));
        if (s->prof_on) hzcu_prof_mark(s, st, hz_kc(HZ_KR_NCCL, 0.0, bus_bytes(n * 4, s->rank_n, 0)));
    }
    if (ev) CUDA_CHECK(cudaEventRecord(ev[2], st)); /* the hosts' share: with the broadcast */
}

void hzcu_sum_times(hz_ctx *c, double ms[2])
{
    cuda_state *s = hzcu_rank(c, 0);
    const hz_plan *p = s->p;
    ms[0] = ms[1] = 0.0;
    if (!s->sum_ev) return;
    for (int i = 0; i < p->op_n; i++) {
        if (p->ops[i].kind != HZ_STORE_G) continue;
        float a = 0.0f, b = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&a, s->sum_ev[3 * i], s->sum_ev[3 * i + 1]));
        CUDA_CHECK(cudaEventElapsedTime(&b, s->sum_ev[3 * i + 1], s->sum_ev[3 * i + 2]));
        ms[0] += a;
        ms[1] += b;
    }
}

void hzcu_ranks_free(hz_ctx *c)
{
    cuda_state *all = c->bk;
    if (all[0].sum_ev) {
        hzcu_rank(c, 0);
        for (int i = 0; i < all[0].p->op_n; i++)
            for (int k = 0; k < 3; k++)
                if (all[0].sum_ev[3 * i + k]) CUDA_CHECK(cudaEventDestroy(all[0].sum_ev[3 * i + k]));
        free(all[0].sum_ev);
        all[0].sum_ev = NULL;
    }
    for (int r = 0; r < c->rank_n; r++) {
        if (all[r].comm || all[r].cross) hzcu_rank(c, r);
        if (all[r].comm) hznccl.ncclCommDestroy(all[r].comm);
        if (all[r].cross) hznccl.ncclCommDestroy(all[r].cross);
        all[r].comm = all[r].cross = NULL;
    }
}
#else
void hzcu_sum_times(hz_ctx *c, double ms[2])
{
    (void)c;
    ms[0] = ms[1] = 0.0;
}

int hzcu_ranks_init(hz_ctx *c)
{
    fprintf(stderr, "train: error: the plan splits each step over %d GPUs of %d host(s), and "
                    "this trainer was built without NCCL (configure found no nccl.h), which "
                    "sums their gradients: install NCCL's header (libnccl-dev) and run "
                    "./configure and hzc build again, or build without --gpus and --hosts\n",
            c->rank_n, c->hosts.n > 1 ? c->hosts.n : 1);
    return -1;
}

void hzcu_reduce(hz_ctx *c, int rank, const hz_op *o)
{
    (void)c, (void)rank, (void)o;
    hzcu_die("internal error: a reduce without NCCL");
}

void hzcu_ranks_free(hz_ctx *c) { (void)c; }
#endif
