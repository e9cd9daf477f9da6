/* compiler/timemodel.h - the planner's step-time model: each phase of a step (forward,
 * loss head, backward with its recompute, PCIe each way, the host optimizer) from the
 * plan's FLOPs and bytes and the machine's rates, and the step with the overlaps the
 * schedule allows. docs/plan.md "Step time" states the model. */
#ifndef HZC_TIMEMODEL_H
#define HZC_TIMEMODEL_H
#include <stdio.h>

#include "../runtime/hz.h"

/* The machine's rates. */
typedef struct tm_ceilings {
    char name[128];          /* where they come from, for the report */
    char gpu[128];           /* the device they were measured on (the file's "gpu"; "" for
                              * the defaults or a file without one) */
    double gemm_tflops;      /* bf16 GEMM, fp32 accumulate, large shapes (forward GEMMs) */
    double gemm_bwd_tflops;  /* the backward's dx and dW GEMMs (transposed operands, dW
                              * accumulated in fp32) */
    double att_fwd_tflops;   /* the full causal layers' attention forward (FLOPs: 2 T HD per
                              * token and head), cuDNN's fused SDPA where the trainer runs it */
    double att_bwd_tflops;   /* its backward, counted as 2.5 x the forward's FLOPs */
    double window_att_fwd_tflops, window_att_bwd_tflops; /* the same for the sliding-window
                              * blocks (hz_unit.window > 0), which run hzc's kernels; 0: the
                              * full layers' rates */
    double hbm_gbps;         /* device memory, read + write, for the elementwise kernels */
    double h2d_gbps, d2h_gbps; /* pinned PCIe copies */
    double host_adamw_gbps;  /* host memory traffic of hzc's AdamW over all its threads */
    double host_adamw_bf16_gbps, host_adamw_int8_gbps; /* the same with bf16 and int8 moments
                              * (their own bytes); 0: the fp32 loop's time per parameter */
    double process_host_bytes; /* host memory the trainer process holds beyond the plan once
                                * ready: code, libraries, the device context ("process_host_
                                * bytes"; the trainer prints it when ready) */
    /* Several GPUs of one host (plan.gpus > 1), optional in a file; 0: the assumed rates
     * below, which nothing has measured yet (tm_host_h2d_gbps, tm_nccl_gbps) */
    double host_h2d_total_gbps; /* the host's h2d copies to all its GPUs at once: its memory
                                 * and PCIe switches are shared ("host_h2d_total_gbps") */
    double nccl_busbw_gbps;     /* NCCL's bus bandwidth between the GPUs, as nccl-tests
                                 * reports it ("nccl_busbw_gbps") */
    /* Several hosts (plan.hosts > 1), optional in a file or stated with hzc's --net-gbps;
     * 0: the assumed rate below (tm_net_gbps) */
    double net_busbw_gbps;      /* the all-reduce's bus bandwidth between the hosts' GPUs 0,
                                 * as nccl-tests reports it ("net_busbw_gbps") */
} tm_ceilings;

/* ASSUMED, not measured (no multi-GPU machine has been probed yet): the host feeds all its
 * GPUs at 4 times the rate of one GPU's pinned h2d copies, and NCCL's reduce and all-reduce
 * run at a bus bandwidth of 300 GB/s, NVLink between H200s. A ceilings file's
 * host_h2d_total_gbps and nccl_busbw_gbps replace them. */
#define TM_ASSUMED_HOST_H2D_GPUS 4.0
#define TM_ASSUMED_NCCL_BUSBW_GBPS 300.0
/* ASSUMED, not measured (no cluster has been probed): between hosts the all-reduce runs at a
 * bus bandwidth of 45 GB/s, about what one 400 Gb/s NIC a host gives. A ceilings file's
 * net_busbw_gbps, or hzc's --net-gbps, replaces it. */
#define TM_ASSUMED_NET_BUSBW_GBPS 45.0
/* The rates C gives for them, in GB/s: the file's, else the assumed ones above. */
double tm_host_h2d_gbps(const tm_ceilings *c);
double tm_nccl_gbps(const tm_ceilings *c);
double tm_net_gbps(const tm_ceilings *c);
/* The seconds of NCCL's sums of P's gradients in one step at C's bus bandwidth: (N - 1) / N
 * of each streamed unit's fp32 gradient bytes (ncclReduce to GPU 0), 2 (N - 1) / N of each
 * resident unit's (ncclAllReduce); 0 with one GPU. */
double tm_nccl_seconds(const hz_plan *p, const tm_ceilings *c);
/* Seconds of the step's gradients made ready for the host (their norm's squares, and bf16
 * casts for the host), the head's (HEAD 1) or the other units' (0): in the loss head and the
 * backward with one GPU, in the d2h stream's work with several. */
double tm_grads_ready_seconds(const hz_plan *p, const tm_ceilings *c, int head);
/* The seconds of the all-reduce of P's gradients between its H hosts in one step at C's
 * network bus bandwidth: 2 (H - 1) / H of every unit's fp32 gradient bytes (each host's sum,
 * from its GPU 0; every host updates its own store with the same total); 0 with one host. */
double tm_net_seconds(const hz_plan *p, const tm_ceilings *c);

/* The defaults: one H200 (141 GB) measured on 2026-12-01 and 2026-12-02 (bench/NOTES.md);
 * the full layers' attention is cuDNN's where hzc was built with it (HZ_TM_CUDNN), else
 * hzc's kernels. */
void tm_defaults(tm_ceilings *c);

/* Read a ceilings file (JSON, as train --probe writes it: the rates by the keys of
 * docs/plan.md, e.g. "gemm_tflops"; missing ones keep the defaults and are named in NOTE,
 * but for the optional window attention rates, which default to the file's full ones;
 * optional "gpu", a string, and "gpu_mem_bytes", a positive number; other keys are for
 * people). 0, or -1 with a message in ERR. */
int tm_load(tm_ceilings *c, const char *path, char *note, size_t note_n, char *err,
            size_t err_n);

/* Predict the step of plan P (p->pred is filled in). */
void tm_predict(hz_plan *p, const tm_ceilings *c);

/* The predicted seconds of op I of P: the term of tm_predict's phases that op runs (its
 * micro-batch's share; PCIe ops their own bytes; updates their unit's). */
double tm_op_seconds(const hz_plan *p, const tm_ceilings *c, int i);
/* One step's ops placed in time (T0, T1: op_n seconds each): each stream runs its ops in
 * order, each op after its waits. With clipping the previous step's updates open the step
 * on their stream, and a unit's weights load (a resident unit computes) after its update,
 * as tm_predict assumes; without, the updates trail the gradients. Returns the span, -1
 * when out of memory. */
double tm_timeline(const hz_plan *p, const tm_ceilings *c, double *t0, double *t1);

/* "host optimizer: 0.73 s of the step's 2.12 s run while the forward waits for it" */
void tm_critical_text(const hz_plan *p, char *buf, size_t n);

/* "(9141 tokens/s, 426.3 model TFLOP/s)" of P's predicted step (the whole step's tokens;
 * with several GPUs also the model TFLOP/s a GPU). */
void tm_rates_text(const hz_plan *p, char *buf, size_t n);

/* The prediction for people, as hzc plan prints it. */
void tm_print(const hz_plan *p, FILE *out);

#endif
