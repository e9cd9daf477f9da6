/* runtime/cuda/profile.c - train --profile-kernels on the GPU: one CUDA event recorded at
 * the start of every op of the profiled step (after its waits) and one after every kernel,
 * GEMM and copy issued inside it, each on its own stream; after the step each piece of work
 * gets the time from the mark before it on its stream (runtime/kprof.h). The events are
 * created once at init, as many as init's dry walk of the schedule counts marks; no other
 * step records any. The step's GEMMs are timed alone after it (hzcu_prof_alone), and the SM
 * clock and power are sampled through both (nvml.h). */
#include <stdio.h>
#include <stdlib.h>

#include "cuda.h"
#include "nvml.h"

typedef struct prof_mark {
    int stream;     /* enum hz_stream_kind */
    int start;      /* 1: an op's start (no work of its own) */
    int gemm;       /* its index in s->gemm, or -1 */
    int counted;    /* its time went to a row */
    hz_kcost cost;
} prof_mark;

struct hzcu_prof {
    cudaEvent_t *ev;     /* the pool: mark i records ev[i] */
    prof_mark *mark;
    int64_t ev_n, mark_n;
    int64_t counted;     /* marks init's dry walk made */
    hz_kprof *kp;        /* the profiled step's rows */
};

void hzcu_prof_init(cuda_state *s)
{
    s->prof = calloc(1, sizeof *s->prof);
    if (!s->prof) hzcu_die("out of host memory for the kernel profile");
    s->prof_on = 1; /* the dry walk that follows only counts */
    char bus[32], why[1024];
    CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, s->dev));
    if (!(s->clocks = hzcu_clocks_open(bus, why, sizeof why)))
        printf("cuda backend: the kernel profile without the SM clock and power: %s\n", why);
}

void hzcu_prof_events(cuda_state *s)
{
    struct hzcu_prof *pr = s->prof;
    s->prof_on = 0;
    /* the walk issued every op's work once (and eval's): with one start per op, a bound on
     * what a step marks */
    pr->ev_n = pr->counted + s->p->op_n;
    pr->ev = calloc((size_t)pr->ev_n, sizeof *pr->ev);
    pr->mark = calloc((size_t)pr->ev_n, sizeof *pr->mark);
    if (!pr->ev || !pr->mark) hzcu_die("out of host memory for the kernel profile's events");
    for (int64_t i = 0; i < pr->ev_n; i++) CUDA_CHECK(cudaEventCreate(&pr->ev[i]));
}

void hzcu_prof_begin(cuda_state *s, hz_kprof *kp)
{
    s->prof->kp = kp;
    s->prof->mark_n = 0;
    s->prof_on = 1;
    hzcu_clocks_start(s->clocks);
}

static void add_mark(cuda_state *s, int stream, int start, int gemm, hz_kcost cost)
{
    struct hzcu_prof *pr = s->prof;
    if (pr->mark_n == pr->ev_n) {
        pr->kp->marks_lost++;
        return;
    }
    CUDA_CHECK(cudaEventRecord(pr->ev[pr->mark_n], s->stream[stream]));
    pr->mark[pr->mark_n++] = (prof_mark){stream, start, gemm, 0, cost};
}

void hzcu_prof_op(cuda_state *s, int stream)
{
    hz_kcost none = {HZ_KR_HOST, 0, 0.0, 0.0};
    add_mark(s, stream, 1, -1, none);
}

void hzcu_prof_mark(cuda_state *s, cudaStream_t st, hz_kcost cost)
{
    if (s->dry) {
        s->prof->counted++;
        return;
    }
    int stream = HZ_COMPUTE;
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (k != HZ_HOST && s->stream[k] == st) stream = k;
    add_mark(s, stream, 0, -1, cost);
}

void hzcu_prof_mark_gemm(cuda_state *s, hz_kcost cost, int gemm)
{
    if (s->dry) {
        s->prof->counted++;
        return;
    }
    add_mark(s, HZ_COMPUTE, 0, gemm, cost);
}

void hzcu_prof_end(cuda_state *s)
{
    struct hzcu_prof *pr = s->prof;
    s->prof_on = 0;
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        if (k != HZ_HOST) CUDA_CHECK(cudaStreamSynchronize(s->stream[k]));
    hzcu_clocks_stop(s->clocks, &pr->kp->clock_mhz[0], &pr->kp->power_w[0]);
    pr->kp->power_limit_w = hzcu_clocks_power_limit(s->clocks);
    int64_t last[HZ_STREAM_KIND_N];
    for (int k = 0; k < HZ_STREAM_KIND_N; k++) last[k] = -1;
    for (int64_t i = 0; i < pr->mark_n; i++) {
        const prof_mark *m = &pr->mark[i];
        if (!m->start) {
            if (last[m->stream] < 0) { /* work outside an op: not part of the step's ops */
                pr->kp->marks_lost++;
                continue;
            }
            float ms = 0.0f;
            CUDA_CHECK(cudaEventElapsedTime(&ms, pr->ev[last[m->stream]], pr->ev[i]));
            hz_kprof_add(pr->kp, m->stream, &m->cost, ms);
            pr->mark[i].counted = 1;
        }
        last[m->stream] = i;
    }
    pr->kp = NULL;
}

void hzcu_prof_alone(cuda_state *s, hz_kprof *kp)
{
    struct hzcu_prof *pr = s->prof;
    hzcu_clocks_start(s->clocks);
    hzcu_gemm_time_alone(s);
    hzcu_clocks_stop(s->clocks, &kp->clock_mhz[1], &kp->power_w[1]);
    /* the rows' alone times: their GEMM marks' (the rows start at none: exec.c clears them) */
    for (int64_t i = 0; i < pr->mark_n; i++) {
        const prof_mark *m = &pr->mark[i];
        float ms = m->gemm >= 0 ? s->gemm[m->gemm].alone_ms : 0.0f;
        if (!m->counted || ms <= 0.0f) continue;
        hz_kstat *r = &kp->row[m->stream][m->cost.row];
        r->alone_ms += ms;
        r->alone_calls += m->cost.calls;
    }
}

void hzcu_prof_free(cuda_state *s)
{
    struct hzcu_prof *pr = s->prof;
    if (!pr) return;
    for (int64_t i = 0; pr->ev && i < pr->ev_n; i++)
        if (pr->ev[i]) CUDA_CHECK(cudaEventDestroy(pr->ev[i]));
    free(pr->ev);
    free(pr->mark);
    free(pr);
    s->prof = NULL;
    hzcu_clocks_close(s->clocks);
    s->clocks = NULL;
}
