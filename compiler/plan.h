/* compiler/plan.h - the planner: from a validated spec to the host store layout, the
 * GPU arena and the step schedule (runtime/hz.h's hz_plan), all sizes fixed here. */
#ifndef HZC_PLAN_H
#define HZC_PLAN_H
#include <stdio.h>

#include "../runtime/hz.h"
#include "spec.h"

#define PLAN_ALIGN_N 64        /* tensor offsets in elements: 128-byte aligned in bf16 */
#define PLAN_ALIGN_BYTES 256   /* arena region offsets */
#define PLAN_CHUNK_BYTES (256ll << 20) /* loss-head logits chunk at most this many bytes, */
/* unless that leaves fewer tokens than this: each chunk's lm_head gradient GEMM (V x C, K =
 * the chunk's tokens) reads and writes the fp32 V x C accumulator, 8 V C bytes for 2 V C K
 * FLOPs, so below about 4 x (GEMM rate / HBM rate) tokens (~600 on an H200) it waits on the
 * accumulator's traffic, not the tensor cores: Gemma 3's 262208-entry vocabulary took 256 */
#define PLAN_CHUNK_MIN_TOKENS 1024
/* With several GPUs, NCCL's own buffers on each GPU: outside the arena and not checked
 * against --gpu-mem, like cuBLASLt's workspace; an allowance to leave, not a plan. ASSUMED
 * until measured: NCCL sizes them by its channels and protocols (NCCL_BUFFSIZE, 4 MiB by
 * default, per channel and peer), reported at 544 to 688 MB per GPU over NVLink for one
 * communicator (A100s, NVIDIA/nccl issue 964); an H200's links take more channels. */
#define PLAN_NCCL_ALLOWANCE_BYTES (1ll << 30)

enum plan_boundaries { PLAN_BOUNDARIES_AUTO, PLAN_BOUNDARIES_GPU, PLAN_BOUNDARIES_HOST };

typedef struct plan_limits {
    int64_t gpu_bytes;         /* 0 = no limit */
    int64_t host_bytes;        /* 0 = no limit */
    int boundaries;            /* enum plan_boundaries: AUTO moves them to the host only
                                * when the GPU limit needs it */
} plan_limits;

/* A plan owned by the compiler: hz_plan plus the arrays it points to. */
typedef struct hzc_plan {
    hz_plan p;
    hz_unit *units;
    hz_tensor *tensors;
    hz_region regions[HZ_REGION_KIND_N];
    hz_op *ops;
    int n_wslots, n_gslots;
    int64_t host_extra_bytes;  /* pinned token and loss staging, host boundaries */
} hzc_plan;

/* Build the plan. On a plan that does not fit the limits, writes why, by how much and
 * which knob to turn to err and returns non-zero (the plan is still filled in). */
int plan_build(const hzc_spec *spec, const plan_limits *lim, hzc_plan *plan, FILE *err);
void plan_free(hzc_plan *plan);

/* calloc that says "out of memory" and exits when it fails (the planner's allocations). */
void *plan_xcalloc(size_t n, size_t size);

/* The op list of one step for a plan whose units, residency and slot counts are set
 * (compiler/plan_sched.c); CLIP: the updates wait for the global gradient norm. */
void plan_schedule(hzc_plan *plan, int clip);

/* Print the plan for people (compiler/plan_print.c). */
void plan_print(const hzc_plan *plan, FILE *out);
/* Print what a plan for several GPUs of one host adds (compiler/plan_print.c): per GPU its
 * micro-batches, arena and NCCL's allowance, the shared host bytes, the predicted step with
 * its critical path and its speed-up over ONE, the same spec planned for one GPU within the
 * same limits (ONE_FITS: whether it fits them), and the rates C assumes for several GPUs. */
struct tm_ceilings;
void plan_print_gpus(const hzc_plan *plan, const hzc_plan *one, int one_fits,
                     const struct tm_ceilings *c, FILE *out);
/* Print the host bytes per parameter of SPEC in each optimizer-state precision and, with a
 * host limit in LIM, the most layers of SPEC's layer that plan within LIM in each
 * (compiler/plan_fit.c). */
void plan_print_fit(const hzc_spec *spec, const plan_limits *lim, FILE *out);
/* For a model with post norms whose plan has blocks that recompute their down projection:
 * what plan.keep_mlp_outputs: L would take and predict against PL (predicted with C), one
 * line for hzc plan's step-time section. */
struct tm_ceilings;
void plan_print_mlp_out(const hzc_spec *spec, const plan_limits *lim,
                        const struct tm_ceilings *c, const hzc_plan *pl, FILE *out);

#endif
