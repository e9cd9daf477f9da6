/* tests/gpu/test_nccl.c - NCCL as the several-GPU step will use it (runtime/cuda/nccl_api.h),
 * on every GPU this machine has (one makes a communicator of one rank): loaded at run time,
 * a communicator over the GPUs, a unit-sized fp32 buffer on each all-reduced (a resident
 * unit's gradients) and reduced to GPU 0 (a streamed unit's), every rank's call issued from
 * this one thread inside one group; the sums of integer-valued floats are exact in any
 * order, so they are compared bit for bit. Ends with "N passed, N failed"; without nccl.h at
 * build time it says so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda/nccl_api.h"
#include "test.h"

#ifdef HZ_HAVE_NCCL
#define RANKS_MAX 16

/* Rank r's value at element i: small integers, so that any order of summing is exact. */
static float value(int r, size_t i) { return (float)((r + 1) * (int)(i % 97) - 40); }

static int cuda_ok(cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return 1;
    CHECK(0, "%s: %s", what, cudaGetErrorString(e));
    return 0;
}

static int nccl_ok(ncclResult_t r, const char *what)
{
    if (r == ncclSuccess) return 1;
    CHECK(0, "%s: %s", what, hznccl.ncclGetErrorString(r));
    return 0;
}

/* N ranks, COUNT floats each: the all-reduce on every rank, then the reduce to rank 0 (whose
 * result only rank 0 receives; the others' buffers are left as they were). */
static void check_sums(ncclComm_t *comm, int n, size_t count)
{
    float *d[RANKS_MAX], *h = malloc(count * sizeof(float)), *want = malloc(count * sizeof(float));
    cudaStream_t st[RANKS_MAX];
    if (!h || !want) return;
    for (size_t i = 0; i < count; i++) {
        want[i] = 0.0f;
        for (int r = 0; r < n; r++) want[i] += value(r, i);
    }
    for (int pass = 0; pass < 2; pass++) { /* 0: all-reduce, 1: reduce to rank 0 */
        for (int r = 0; r < n; r++) {
            for (size_t i = 0; i < count; i++) h[i] = value(r, i);
            if (!cuda_ok(cudaSetDevice(r), "cudaSetDevice") ||
                !cuda_ok(cudaMalloc((void **)&d[r], count * sizeof(float)), "cudaMalloc") ||
                !cuda_ok(cudaStreamCreate(&st[r]), "cudaStreamCreate") ||
                !cuda_ok(cudaMemcpy(d[r], h, count * sizeof(float), cudaMemcpyHostToDevice),
                         "copy in"))
                return;
        }
        if (!nccl_ok(hznccl.ncclGroupStart(), "ncclGroupStart")) return;
        for (int r = 0; r < n; r++) {
            cudaSetDevice(r);
            ncclResult_t rc = pass == 0 ? hznccl.ncclAllReduce(d[r], d[r], count, ncclFloat32, ncclSum,
                                                               comm[r], st[r])
                                        : hznccl.ncclReduce(d[r], d[r], count, ncclFloat32, ncclSum, 0,
                                                            comm[r], st[r]);
            if (!nccl_ok(rc, pass == 0 ? "ncclAllReduce" : "ncclReduce")) return;
        }
        if (!nccl_ok(hznccl.ncclGroupEnd(), "ncclGroupEnd")) return;
        for (int r = 0; r < n; r++) {
            cudaSetDevice(r);
            if (!cuda_ok(cudaStreamSynchronize(st[r]), "the sum") ||
                !cuda_ok(cudaMemcpy(h, d[r], count * sizeof(float), cudaMemcpyDeviceToHost),
                         "copy out"))
                return;
            size_t bad = 0;
            for (size_t i = 0; i < count; i++) {
                float w = pass == 0 || r == 0 ? want[i] : value(r, i);
                bad += memcmp(&h[i], &w, sizeof w) != 0;
            }
            CHECK(bad == 0, "%s of %zu floats over %d rank%s: rank %d holds %s (%zu elements "
                  "differ)", pass == 0 ? "ncclAllReduce" : "ncclReduce to rank 0", count, n,
                  n == 1 ? "" : "s", r, pass == 0 || r == 0 ? "the exact sum" : "its own",
                  bad);
            cudaFree(d[r]);
            cudaStreamDestroy(st[r]);
        }
    }
    free(h);
    free(want);
}
#endif

int main(void)
{
#ifdef HZ_HAVE_NCCL
    char why[1024] = "";
    if (hznccl_load(why, sizeof why) != 0) {
        CHECK(0, "NCCL loads: %s", why);
        TEST_END();
    }
    printf("note    NCCL %d from %s\n", hznccl.version, hznccl.path);
    int n = 0;
    if (!cuda_ok(cudaGetDeviceCount(&n), "cudaGetDeviceCount")) TEST_END();
    if (n > RANKS_MAX) n = RANKS_MAX;
    ncclComm_t comm[RANKS_MAX];
    int devs[RANKS_MAX];
    for (int r = 0; r < n; r++) devs[r] = r;
    if (!nccl_ok(hznccl.ncclCommInitAll(comm, n, devs), "ncclCommInitAll")) TEST_END();
    CHECK(1, "a communicator of %d GPU%s (ncclCommInitAll)", n, n == 1 ? "" : "s");
    /* a small unit, and one of a 7B block's size (218M parameters: 0.87 GB of fp32) */
    check_sums(comm, n, 1000);
    check_sums(comm, n, (size_t)218 << 20);
    for (int r = 0; r < n; r++) hznccl.ncclCommDestroy(comm[r]);
#else
    printf("skip    NCCL: this build found no nccl.h (configure)\n");
#endif
    TEST_END();
}
