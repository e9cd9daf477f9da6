/* runtime/kprof.h - the per-kernel profile of one step (train --profile-kernels): the rows
 * (kernel kinds) both backends attribute their work to, the costs a launch declares, the
 * accumulated rows of the profiled step, and the host-clock marks of the cpu backend.
 * kprof.c owns the table and its text; the cuda backend's events are runtime/cuda/profile.c.
 *
 * A backend marks the start of every device op of the profiled step on the op's stream,
 * then marks the end of every kernel, GEMM or copy it issues there; each piece of work gets
 * the time from the mark before it to its own, so the rows of a stream add up to the time
 * its ops ran (launch gaps inside an op count to the kernel after them). */
#ifndef HZ_KPROF_H
#define HZ_KPROF_H
#include <stdio.h>

#include "hz.h"

/* The GEMM roles, each with three rows: fwd (y = x w^T), dx (dx = dy w), dw (dw += dy^T x). */
#define HZ_GEMM_ROLES(X)        \
    X(HZ_GEMM_QKV, "qkv")       \
    X(HZ_GEMM_ATTN_OUT, "attn-out") \
    X(HZ_GEMM_GATE_UP, "gate/up") \
    X(HZ_GEMM_DOWN, "down")     \
    X(HZ_GEMM_LM_HEAD, "lm-head")

#define HZ_GEMM_ROLE_ENUM(id, name) id,
enum hz_gemm_role { HZ_GEMM_ROLES(HZ_GEMM_ROLE_ENUM) HZ_GEMM_ROLE_N };
#undef HZ_GEMM_ROLE_ENUM
enum hz_gemm_pass { HZ_GEMM_FWD, HZ_GEMM_DX, HZ_GEMM_DW };

/* What a row's rate is measured against (the plan's ceilings, hz_predict). */
enum hz_kclass {
    HZ_KC_FLOPS, /* TFLOP/s against gemm_tflops: GEMMs and attention */
    HZ_KC_HBM,   /* GB/s (bytes read + written) against hbm_gbps */
    HZ_KC_H2D,   /* GB/s against h2d_gbps */
    HZ_KC_D2H,   /* GB/s against d2h_gbps */
    HZ_KC_NCCL,  /* bus GB/s (the bytes each GPU sends and receives) against nccl_busbw_gbps */
    HZ_KC_NONE   /* no rate: host bookkeeping inside an op (cpu backend) */
};

/* The other rows: X(id, name, class). A row may gather several kernels (the attention
 * backward's three; a deterministic sum's second pass): the call counts once. */
#define HZ_KROWS(X)                                          \
    X(HZ_KR_ATT_FWD, "attention fwd", HZ_KC_FLOPS)           \
    X(HZ_KR_ATT_BWD, "attention bwd", HZ_KC_FLOPS)           \
    X(HZ_KR_RMSNORM_FWD, "rmsnorm fwd", HZ_KC_HBM)           \
    X(HZ_KR_RES_RMSNORM_FWD, "residual+rmsnorm fwd", HZ_KC_HBM) \
    X(HZ_KR_RMSNORM_BWD, "rmsnorm bwd", HZ_KC_HBM)           \
    X(HZ_KR_ROPE_FWD, "rope fwd", HZ_KC_HBM)                 \
    X(HZ_KR_ROPE_BWD, "rope bwd", HZ_KC_HBM)                 \
    X(HZ_KR_SWIGLU_FWD, "swiglu fwd", HZ_KC_HBM)             \
    X(HZ_KR_SWIGLU_BWD, "swiglu bwd", HZ_KC_HBM)             \
    X(HZ_KR_XENT, "crossentropy", HZ_KC_HBM)                 \
    X(HZ_KR_EMBED_FWD, "embedding fwd", HZ_KC_HBM)           \
    X(HZ_KR_EMBED_BWD, "embedding bwd", HZ_KC_HBM)           \
    X(HZ_KR_RESIDUAL, "residual add", HZ_KC_HBM)             \
    X(HZ_KR_ADAMW, "adamw", HZ_KC_HBM)                       \
    X(HZ_KR_GRAD_NORM, "grad norm", HZ_KC_HBM)               \
    X(HZ_KR_CAST, "cast f32->bf16", HZ_KC_HBM)               \
    X(HZ_KR_MEMSET, "memset", HZ_KC_HBM)                     \
    X(HZ_KR_COPY_D2D, "copy d2d", HZ_KC_HBM)                 \
    X(HZ_KR_COPY_H2D, "copy h2d", HZ_KC_H2D)                 \
    X(HZ_KR_COPY_D2H, "copy d2h", HZ_KC_D2H)                 \
    X(HZ_KR_NCCL, "nccl sum", HZ_KC_NCCL)                    \
    X(HZ_KR_HOST, "host work", HZ_KC_NONE)

/* Rows: the GEMM roles' three each (row 3 role + pass), then HZ_KROWS. */
#define HZ_KR_GEMM_ENUM(id, name) id##_FWD_ROW, id##_DX_ROW, id##_DW_ROW,
#define HZ_KR_ENUM(id, name, cls) id,
enum hz_krow { HZ_GEMM_ROLES(HZ_KR_GEMM_ENUM) HZ_KROWS(HZ_KR_ENUM) HZ_KROW_N };
#undef HZ_KR_GEMM_ENUM
#undef HZ_KR_ENUM

static inline int hz_krow_gemm(int role, int pass) { return 3 * role + pass; }

extern const char *const hz_krow_names[HZ_KROW_N];
extern const int hz_krow_class[HZ_KROW_N];

/* What one launch does: its row, whether it counts as a call (0 for a row's later kernels),
 * FLOPs (GEMMs: 2 m n k; attention as the plan counts it: causal half, backward 2.5 x) and
 * bytes read + written (memory-bound kernels and copies). */
typedef struct hz_kcost {
    int row, calls;
    double flops, bytes;
} hz_kcost;

static inline hz_kcost hz_kc(int row, double flops, double bytes)
{
    hz_kcost c = {row, 1, flops, bytes};
    return c;
}

/* One row of one stream: summed over the profiled step. */
typedef struct hz_kstat {
    int64_t calls, alone_calls; /* alone_calls: the calls with an alone time (a GEMM's timed
                                 * by itself after the step: hz_backend.kprof_alone) */
    double ms, flops, bytes, alone_ms;
} hz_kstat;

/* The profile of one step. busy_ms: each stream's op time from the step profile's own op
 * events (hz_profile), the independent figure the rows' total is compared with. */
typedef struct hz_kprof {
    int64_t step;                                 /* 0-based */
    hz_kstat row[HZ_STREAM_KIND_N][HZ_KROW_N];
    double busy_ms[HZ_STREAM_KIND_N];
    int64_t marks_lost;                           /* marks beyond the backend's pool (0) */
    /* the device's mean SM clock (MHz) and power (W) during [0] the step and [1] its GEMMs
     * timed alone, and its power limit (W); 0 where not measured */
    double clock_mhz[2], power_w[2], power_limit_w;
} hz_kprof;

/* Add one piece of work of MS milliseconds with cost K on STREAM. */
void hz_kprof_add(hz_kprof *kp, int stream, const hz_kcost *k, double ms);

/* The table for people (docs/training.md "Kernel profile"): one block per device stream that
 * ran work, one row per kind with calls, total ms, mean us, TFLOP/s or GB/s, the fraction of
 * the plan's ceiling and the share of the stream's time, and a total line. */
void hz_kprof_print(const hz_kprof *kp, const hz_plan *p, const char *backend, FILE *out);
/* A row's rate (TFLOP/s or GB/s by its class; 0 without time) and its fraction of the
 * plan's ceiling for that class (0 where none). */
double hz_kprof_rate(const hz_kstat *r, int row);
double hz_kprof_roofline(const hz_kstat *r, int row, const hz_plan *p);
/* The row's speed in the step against the same work timed alone (alone ms / ms: 1 = as
 * fast), or 0 unless every call of the row has an alone time. */
double hz_kprof_vs_alone(const hz_kstat *r);

/* ---- host-clock marks (the cpu backend, whose ops run one after another) ---- */
typedef struct hz_kclock {
    hz_kprof *kp;   /* the step's rows */
    int stream;     /* the op's stream */
    double last_s;  /* host clock of the previous mark */
} hz_kclock;

/* The start of an op on STREAM at host time T_S. */
void hz_kclock_start(hz_kclock *kc, int stream, double t_s);
/* The end of one piece of work: the time since the previous mark goes to K. A NULL KC (not
 * profiling) does nothing. */
void hz_kclock_mark(hz_kclock *kc, hz_kcost k);
/* The end of the op at T_S: what is left since the last mark is host work. */
void hz_kclock_end(hz_kclock *kc, double t_s);

#endif
