/* runtime/hz.h - the public runtime API (libhzrt) and the plan that a generated
 * schedule.c hands to it. Generated code includes only this header. All sizes are
 * fixed when hzc runs; the runtime allocates exactly what the plan says. */
#ifndef HZ_H
#define HZ_H
#include <stddef.h>
#include <stdint.h>

#include "hz_tables.h"

#define HZ_VERSION "0.1.0"

/* Model dimensions and step shape. B = sequences per micro-batch. */
typedef struct hz_dims {
    int64_t V, C, L, NH, NKV, HD, F; /* vocab, hidden, layers, heads, kv heads, head dim, ffn */
    int64_t T, B, n_micro;           /* seq len, rows per micro-batch, micro-batches per step */
    int64_t micro_tokens, step_tokens, chunk_tokens; /* chunk: loss-head tokens per logits chunk */
    float eps;                       /* RMSNorm epsilon */
    float rope_theta;
    int rope_llama3;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    int tied, qkv_bias;
    int qk_norm;                     /* per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3) */
    /* Gemma 3 (all neutral for the other families): */
    float norm_offset;               /* every RMSNorm multiplies by (norm_offset + w): 1 for
                                      * Gemma 3's x * (1 + w), else 0 */
    int post_norms;                  /* the attention and MLP outputs are RMS-normalised
                                      * (attn_post_norm, mlp_post_norm) before their
                                      * residual adds */
    int geglu;                       /* the MLP gate is gelu_tanh (GeGLU), else silu (SwiGLU) */
    float embed_scale;               /* the embedding lookup is multiplied by it: Gemma 3's
                                      * sqrt(hidden) rounded to bf16; 1 otherwise */
    float attn_scale;                /* attention score scale: HD^-0.5, or Gemma 3's
                                      * query_pre_attn_scalar^-0.5 */
    float rope_local_theta;          /* RoPE base of the sliding-window blocks (hz_unit.window) */
    float rope_linear;               /* linear RoPE scaling of the full-attention blocks (inv_freq
                                      * divided by it); 0 = none */
    int64_t window;                  /* the sliding window of the windowed blocks; 0 = none */
    int64_t window_n;                /* how many blocks have it (hz_unit.window) */
    int64_t gpus;                    /* GPUs of one host the step is split over (data
                                      * parallel): each runs the schedule on n_micro / gpus
                                      * micro-batches; 1 (or 0) = one GPU. T, B, n_micro and
                                      * step_tokens are the whole step's */
    int64_t hosts;                   /* hosts the step is split over, each with its own host
                                      * store and `gpus` GPUs: each GPU runs n_micro /
                                      * (hosts x gpus) micro-batches; 1 (or 0) = one host */
} hz_dims;

/* Training defaults from the spec (the trainer's flags override them). */
typedef struct hz_train_defaults {
    float lr, beta1, beta2, eps, weight_decay, grad_clip, min_lr_ratio;
    int64_t warmup_steps, decay_steps, seed;
} hz_train_defaults;

/* One tensor of a unit. Offsets count elements. host_n: index of its first element
 * in the host store arrays; slot_n: offset inside a weight slot; grad_n: offset inside
 * the unit's gradient region; store_grad: this unit copies the gradient to the host. */
typedef struct hz_tensor {
    int kind;                /* enum hz_tensor_kind */
    int layer;               /* block index, -1 for embed/head tensors */
    int64_t rows, cols;      /* cols = 1 for vectors */
    int64_t host_n, slot_n, grad_n;
    int store_grad;
    int decay;               /* weight decay applies (matrices yes, norms and biases no) */
    int64_t res_n;           /* resident units: its first element in the RESIDENT region's
                              * w, lo, m, v arrays (a tied lm_head: the embedding's); else -1 */
} hz_tensor;

/* One unit: tensors [first_tensor, first_tensor + tensor_n). Its own parameters are
 * host store elements [host_n, host_n + padded_n) (a tied head owns only its norm). */
typedef struct hz_unit {
    int kind;                /* enum hz_unit_kind */
    int layer;               /* block index, -1 otherwise */
    int first_tensor, tensor_n;
    int64_t host_n, padded_n, params_n;
    int grad_region;         /* HZ_GSLOT or HZ_GHEAD (streamed units) */
    int64_t span_n;          /* elements it takes in a weight slot or gradient region */
    int resident;            /* weights, fp32 master and Adam moments live on the GPU (the
                              * RESIDENT region) and are updated there: no load_w, no
                              * gradient copy; its opt op runs on the compute stream */
    int64_t res_n;           /* resident: its first element in the RESIDENT w, lo, m, v */
    int64_t res_g_n;         /* resident: its gradients' first element in RESIDENT g (a tied
                              * embedding shares the head's) */
    int keep;                /* a block whose forward activations stay on the GPU for its
                              * backward (SAVED region) instead of being recomputed */
    int keep_slot;           /* keep: its index among the kept blocks */
    int held;                /* a streamed unit whose fp32 gradients stay on the GPU (the
                              * GHOLD region) until its update: its backward accumulates
                              * there, its STORE_G only adds their squared norm, and the next
                              * step's FETCH_G copies them to a host staging slot just before
                              * the host optimizer updates it (no host gradient pages) */
    int64_t hold_n;          /* held: its gradients' first element in GHOLD (a tied embedding
                              * shares the head's) */
    int64_t window;          /* a block with sliding-window attention: query t sees keys
                              * t - window < s <= t, and RoPE uses dims.rope_local_theta;
                              * 0: full causal attention with the global RoPE */
    int keep_mlp_out;        /* post norms only: a recomputed block whose forward leaves its
                              * MLP output (the down projection's, before its norm) and that
                              * norm's 1/rms in the MLPOUT region for its backward, whose
                              * recompute then stops before the down projection */
    int mlp_out_slot;        /* keep_mlp_out: its index among those blocks, else -1 */
} hz_unit;

/* One region of the GPU arena. */
typedef struct hz_region {
    int kind;                /* enum hz_region_kind */
    int64_t offset_bytes, bytes;
    int count;               /* slots in the region (1 for plain regions) */
    int64_t slot_bytes;      /* bytes per slot */
} hz_region;

/* Rows of partial column sums the workspace holds for the deterministic gradient sums of the
 * cuda backend (RMSNorm dw, q/k/v dbias): HZ_PART_ROWS x max(C, q/k/v width) fp32. */
#define HZ_PART_ROWS 256
/* Blocks, and per-block partial sums in the scalars region, of the deterministic squared
 * gradient norm. */
#define HZ_SUMSQ_PARTS 256

/* One op of a step. event: its own index; wait[]: indices of earlier ops (-1 = none)
 * that must finish first, beyond the in-order execution of its own stream. */
#define HZ_OP_WAITS 3
typedef struct hz_op {
    int kind;                /* enum hz_op_kind */
    int stream;              /* enum hz_stream_kind */
    int unit;                /* index into units */
    int micro;               /* micro-batch, -1 if none */
    int slot;                /* weight slot (LOAD_W, FWD, LOSS, BWD), -1 if none */
    int gslot;               /* grad slot (BWD, STORE_G of blocks) or host staging slot
                              * (FETCH_G), -1 if none */
    int bnd;                 /* STORE_B, LOAD_B: boundary index (input of block bnd), else -1 */
    int wait[HZ_OP_WAITS];
} hz_op;

/* The whole plan. host_store_n counts elements per host array (w, lo, m, v, g).
 * Boundary j (0..L) is the input of block j (L: of the head): with boundaries on the GPU
 * it is slot j of the BOUNDARY region, on the host it is buffer j % 2 of that region and
 * (for j < L) row j of a host array of (L, step_tokens, C) bf16 after its STORE_B. */
/* The planner's predicted step (compiler/timemodel.c; docs/plan.md "Step time"). */
typedef struct hz_predict {
    double phase_s[HZ_PHASE_ALL_N]; /* seconds each phase takes, indexed by enum
                                 * hz_phase_kind (the several-GPU phases: 0 with one GPU) */
    double step_s;              /* the step, phases overlapped as the schedule allows */
    int critical;               /* the phase that sets the step (enum hz_phase_kind) */
    const char *ceilings;       /* what the rates came from */
    const char *ceilings_gpu;   /* the device a ceilings file was measured on ("" for the
                                 * defaults or a file that names none): the trainer notes a
                                 * different device */
    int64_t process_host_bytes; /* the trainer process's own host memory beyond the plan
                                 * (code, libraries, device context), from the ceilings: the
                                 * cuda trainer's host peak is host_bytes plus this */
    /* the card's ceilings the prediction used, the roofline of train --profile-kernels */
    double gemm_tflops;         /* bf16 GEMM (the compute-bound kernels' ceiling) */
    double hbm_gbps;            /* device memory, bytes read + written */
    double h2d_gbps, d2h_gbps;  /* pinned PCIe copies */
    /* with several GPUs: the rates the prediction assumed for what they share */
    double host_h2d_gbps;       /* the host's h2d bandwidth for all GPUs together */
    double nccl_busbw_gbps;     /* NCCL's bus bandwidth between the GPUs */
    double net_busbw_gbps;      /* with several hosts: the network's bus bandwidth for the
                                 * all-reduce between them */
} hz_predict;

typedef struct hz_plan {
    const char *spec_name;
    const char *family;      /* llama | qwen2 | mistral | qwen3 | gemma3: for the exported
                              * config.json */
    hz_dims dims;
    hz_train_defaults train;
    int64_t params_n;        /* true parameter count (no padding) */
    int64_t host_store_n;    /* elements per host array, padding included */
    int host_grad_bf16;      /* host gradients held as bf16 (else fp32) */
    int optimizer_state;     /* enum hz_optstate_mode: the precision of the Adam moments in
                              * the host store and the RESIDENT region (runtime/optstate.h) */
    int boundary_on_host;    /* boundaries live in pinned host memory; the GPU holds two
                              * layers' worth: boundary j in buffer j % 2 */
    int64_t host_store_bytes;/* planned bytes of the host store arrays */
    int64_t host_bytes;      /* planned peak host bytes (store + extras) */
    int64_t gpu_bytes;       /* planned GPU arena bytes */
    int64_t work_bytes;      /* WORK region bytes per micro-batch */
    int64_t resident_n;      /* elements of each RESIDENT w, lo, m, v array */
    int64_t resident_g_n;    /* elements of the RESIDENT g array (fp32) */
    int64_t saved_bytes;     /* SAVED bytes per kept block and micro-batch (the WORK list's
                              * HZ_SAVED_BUFS prefix) */
    int keep_n;              /* blocks that keep their activations */
    int mlp_out_n;           /* blocks that keep their MLP output (hz_unit.keep_mlp_out) */
    int64_t mlp_out_bytes;   /* MLPOUT bytes per such block and micro-batch */
    int64_t hold_n;          /* elements of the GHOLD region (fp32) */
    int64_t fetch_n;         /* elements of each of the two host staging slots FETCH_G fills:
                              * the largest held unit's span (0: nothing held) */
    hz_predict pred;         /* the predicted step time */
    int unit_n, tensor_n, region_n, op_n;
    const hz_unit *units;
    const hz_tensor *tensors;
    const hz_region *regions;  /* indexed by enum hz_region_kind */
    const hz_op *ops;
} hz_plan;

/* Names generated from the tables. */
extern const char *const hz_unit_names[];
extern const char *const hz_tensor_names[];
extern const char *const hz_region_names[];
extern const char *const hz_stream_names[];
extern const char *const hz_op_names[];
extern const char *const hz_region_what[];
extern const char *const hz_phase_names[];
extern const char *const hz_optstate_names[]; /* "fp32", "bf16", "int8" (HZ_OPTSTATE_MODES) */

/* What a backend can do (hz_tables.h HZ_BACKENDS; names.c). */
#define HZ_CAPS_HEAD_DIMS 8
typedef struct hz_caps {
    const char *name;
    int pinned_host;               /* the host store is page-locked (pinned) memory */
    int pcie;                      /* weights, gradients and boundaries cross a bus */
    int ranks;                     /* runs a plan for several GPUs of one host, a rank each,
                                    * in one process */
    int head_dims[HZ_CAPS_HEAD_DIMS]; /* supported head_dim values; {0}: any even one */
} hz_caps;
extern const hz_caps hz_backend_caps[HZ_BACKEND_N];
/* The backend called NAME, or NULL. */
const hz_caps *hz_caps_find(const char *name);
/* Whether the backend's kernels run head_dim HD; LIST (may be NULL) receives "32, 64, 128". */
int hz_caps_head_dim_ok(const hz_caps *c, int64_t HD, char *list, size_t list_n);

/* ---- bf16 and the split fp32 master (store.c) ----
 * The master weight is fp32 held as (w bf16, lo int16): fp32 bits = (w << 16) + lo,
 * with w = round-to-nearest-even(master), so lo = bits(master) - (w << 16) fits int16. */
uint16_t hz_bf16_from_f32(float f);          /* round to nearest even */
float hz_f32_from_bf16(uint16_t b);
void hz_master_split(float master, uint16_t *w, int16_t *lo);
float hz_master_join(uint16_t w, int16_t lo);

/* Model FLOPs per token (DESIGN.md): 6 * matmul parameters (lm_head yes, lookup no)
 * + 6 * L * T * NH * HD for attention, where a sliding-window block counts min(window, T)
 * for T: the keys it can score. Recomputation is not counted. */
double hz_flops_per_token(const hz_dims *d);

/* Gemma 3's embedding scale for hidden size C: sqrt(C) in float32, rounded to bf16, as
 * transformers casts its normalizer to the model's dtype (sqrt(1152) = 33.94 -> 34). */
float hz_gemma_embed_scale(int64_t C);
/* Bytes one step moves each way between the host and one GPU (weights, boundaries, tokens,
 * gradients, losses): a property of the plan (names.c). With several GPUs, those of GPU 0,
 * the one that copies the gradients to the host: each GPU copies in every streamed unit's
 * weights and its own share of the tokens and boundaries. */
void hz_plan_pcie_bytes(const hz_plan *p, int64_t *h2d, int64_t *d2h);

/* The GPUs of one host of D's step and its hosts (each at least 1), and what each GPU runs
 * of it: micro-batches and tokens (the whole step's with one GPU of one host). */
int64_t hz_gpus(const hz_dims *d);
int64_t hz_hosts(const hz_dims *d);
int64_t hz_gpu_n_micro(const hz_dims *d);
int64_t hz_gpu_step_tokens(const hz_dims *d);
/* The phases P's prediction has: HZ_PHASE_N with one GPU of one host, up to the NCCL phase
 * with several GPUs of one host, HZ_PHASE_ALL_N (the network's too) with several hosts. */
int hz_plan_phase_n(const hz_plan *p);

/* The generated schedule provides the plan. */
extern const hz_plan hzg_plan;

#endif
