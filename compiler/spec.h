/* compiler/spec.h - the model description (YAML) as hzc understands it.
 * spec_load parses and validates a file, reporting every user error as
 * FILE:LINE:COL: error: message, and returns the number of errors. */
#ifndef HZC_SPEC_H
#define HZC_SPEC_H
#include <stdint.h>
#include <stdio.h>

typedef enum {
    FAMILY_LLAMA, FAMILY_QWEN2, FAMILY_MISTRAL, FAMILY_QWEN3, FAMILY_GEMMA3
} spec_family;
#define SPEC_FAMILY_N 5

/* Where a key was written (for messages about its value after parsing); line 0: not written. */
typedef struct spec_pos {
    int line, col;
} spec_pos;

enum spec_grad { SPEC_GRAD_AUTO, SPEC_GRAD_FP32, SPEC_GRAD_BF16 };
enum spec_where { SPEC_WHERE_AUTO, SPEC_WHERE_GPU, SPEC_WHERE_HOST }; /* = plan_boundaries */

/* The plan: section (docs/spec.md "plan"; hzc tune writes it): the planner's choices.
 * A spec without it keeps the defaults below, today's plan. */
typedef struct spec_plan {
    int set;                  /* the spec has a plan: section */
    int64_t resident_blocks;  /* plan.resident_blocks: the first N blocks keep their weights,
                               * fp32 master and Adam moments on the GPU, updated there
                               * (default 0) */
    int resident_ends;        /* plan.resident_ends: the embedding and the head too (false) */
    int64_t keep_blocks;      /* plan.keep_activations: the last N blocks keep their forward
                               * activations for the backward instead of recomputing them (0) */
    int64_t keep_mlp_out_blocks; /* plan.keep_mlp_outputs (post norms, Gemma 3): the first N
                               * blocks that do not keep their activations keep their MLP
                               * output (before its norm) for the backward, whose recompute
                               * then skips the down projection (0) */
    int weight_slots;         /* plan.weight_slots: 2 or 3; 0 = the planner's choice */
    int host_grad;            /* plan.host_gradients: auto | fp32 | bf16 (enum spec_grad) */
    int boundaries;           /* plan.boundaries: auto | gpu | host (enum spec_where) */
    int64_t gpu_grad_blocks;  /* plan.gpu_gradient_blocks: the first N blocks hold their fp32
                               * gradients on the GPU until the update (resident blocks always
                               * do), not on the host (default 0) */
    int gpu_grad_ends;        /* plan.gpu_gradient_ends: the embedding and the head too (false) */
    int64_t gpus;             /* plan.gpus: GPUs of one host the step is split over, each
                               * running n_micro / gpus micro-batches (0: not written, one
                               * GPU); hzc's --gpus sets it with pos_gpus at line 0 (the
                               * gpu_bytes limit is then each GPU's) */
    int64_t hosts;            /* plan.hosts: hosts the step is split over, each with its own
                               * host store of the same weights and plan.gpus GPUs, each GPU
                               * running n_micro / (hosts x gpus) micro-batches (0: not
                               * written, one host); hzc's --hosts sets it with pos_hosts at
                               * line 0 */
    spec_pos pos_resident_blocks, pos_resident_ends, pos_keep_blocks, pos_weight_slots,
        pos_host_grad, pos_boundaries, pos_gpu_grad_blocks, pos_gpu_grad_ends, pos_gpus,
        pos_hosts, pos_keep_mlp_out;
} spec_plan;

typedef struct hzc_spec {
    char name[64];          /* name: (defaults to the file's base name without .yaml) */
    spec_family family;     /* architecture.family: llama | qwen2 | mistral | qwen3 | gemma3 */
    /* architecture */
    int64_t V;              /* vocab_size */
    int64_t C;              /* hidden_size */
    int64_t L;              /* num_layers */
    int64_t NH;             /* num_heads */
    int64_t NKV;            /* num_kv_heads (default num_heads) */
    int64_t HD;             /* head_dim (default hidden_size / num_heads) */
    int64_t F;              /* ffn_size */
    double norm_eps;        /* norm_eps (default 1e-5) */
    double rope_theta;      /* rope_theta (default 10000) */
    int rope_llama3;        /* rope_scaling.type == llama3 */
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor; /* rope_scaling.* */
    int64_t rope_original_max_pos;  /* rope_scaling.original_max_position */
    int tied;               /* tie_embeddings (default false) */
    int qkv_bias;           /* qkv_bias (default: true for qwen2, else false) */
    int qk_norm;            /* qk_norm: per-head RMSNorm of q and k (default: true for qwen3
                             * and gemma3) */
    /* gemma3 only */
    int rope_linear;        /* rope_scaling.type == linear (factor in rope_factor) */
    double rope_local_theta;        /* rope_local_theta: RoPE base of sliding layers (10000) */
    double query_pre_attn_scalar;   /* query_pre_attn_scalar: scores scaled by its ^-0.5
                                     * (default head_dim) */
    int64_t sliding_window;         /* sliding_window: the local layers' window (0 = none) */
    int64_t window_pattern;         /* sliding_window_pattern: every Nth layer is global (6) */
    unsigned char sliding[1024];    /* per layer: 1 = sliding-window attention (from
                                     * layer_types or the pattern; all 0 without a window) */
    /* shape */
    int64_t T;              /* shape.seq_len */
    int64_t step_tokens;    /* shape.tokens_per_step (a multiple of micro_tokens) */
    int64_t micro_tokens;   /* shape.tokens_per_micro_batch (a multiple of seq_len) */
    /* training defaults (the trainer's flags override them) */
    double lr, beta1, beta2, adam_eps, weight_decay, grad_clip; /* grad_clip 0 = off */
    int64_t warmup_steps, decay_steps; /* cosine decay over decay_steps after warmup; 0 = constant */
    double min_lr_ratio;    /* final lr = lr * min_lr_ratio */
    int64_t seed;
    int optimizer_state;    /* training.optimizer_state: enum hz_optstate_mode (default fp32) */
    int optimizer_state_set; /* the spec names it (hzc tune then keeps it; else tune chooses) */
    spec_plan plan;         /* plan: (all defaults when absent) */
    char path[4096];        /* the file it came from, for FILE:LINE:COL messages */
} hzc_spec;

/* The family's blocks normalise their attention and MLP outputs (Gemma 3's sandwich norms). */
static inline int spec_post_norms(const hzc_spec *s) { return s->family == FAMILY_GEMMA3; }

/* Parse and validate PATH into *spec. Errors go to err as "PATH:LINE:COL: error: ...";
 * all errors are reported (capped at 50). Returns the number of errors (0 = success). */
int spec_load(const char *path, hzc_spec *spec, FILE *err);
/* spec_load with OVERRIDES[0..N) ("shape.seq_len=4096", N >= 0) spliced into the file's
 * tree first, each checked exactly as if it were in the file: its errors read
 * "override K (KEY=VALUE): error: ..." (K 1-based). A malformed override is an error too. */
int spec_load_overrides(const char *path, const char *const *overrides, int n, hzc_spec *spec,
                        FILE *err);
/* Whether ARG has the form of an override (a dotted key of [a-z0-9_], then '='). */
int spec_is_override(const char *arg);

/* Number of parameters of a spec that spec_load accepted: embedding V*C, a separate
 * lm_head V*C unless tied, the final norm C, and per layer two norms (four for gemma3),
 * q/k/v/o, the gated MLP, the q/k/v biases when qkv_bias and the q/k norms (2 HD) when
 * qk_norm. spec_load guarantees it is below 2^50. */
int64_t spec_param_count(const hzc_spec *spec);
/* The same count in floating point, safe from overflow for any sizes up to SPEC_MAX_SIZE. */
double spec_param_count_fp(const hzc_spec *spec);

#define SPEC_MAX_SIZE 2147483647LL     /* every size fits an int32 */
/* The schedule holds a few ops per layer per micro-batch, and schedule.c some 350 bytes
 * for each: these bound the generated code (and hzc's memory) before anything is planned.
 * The largest published decoders have 126 layers. */
#define SPEC_MAX_LAYERS 1024LL          /* architecture.num_layers */
#define SPEC_MAX_MICRO_BATCHES 1024LL   /* shape.tokens_per_step / tokens_per_micro_batch */
#define SPEC_MAX_LAYER_PASSES 65536LL   /* num_layers * micro-batches per step */
/* plan.gpus and --gpus: each GPU runs at least one micro-batch of the step */
#define SPEC_MAX_GPUS SPEC_MAX_MICRO_BATCHES
/* plan.hosts and --hosts: likewise (hosts x gpus GPUs each run at least one micro-batch) */
#define SPEC_MAX_HOSTS SPEC_MAX_MICRO_BATCHES
#define SPEC_MAX_PARAMS 1125899906842624.0 /* 2^50: byte counts of 12 bytes/param fit int64 */
/* The characters a spec name may hold (it ends up in file names and comments). */
#define SPEC_NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

/* Write P as a plan: section (YAML: the line "plan:", then every key, each with a one-line
 * comment) that spec_load reads back as P. */
void spec_plan_write(FILE *out, const spec_plan *p);

/* Copy the spec file IN_PATH to OUT_PATH (it may be the same file) with its plan: section
 * replaced by P, or P appended when it has none; every other line is kept byte for byte.
 * The section runs from its "plan:" line to the next line that starts in column 1 (a key,
 * a comment, "---"), less the blank lines before that one. A file whose top level is not a
 * block mapping with plan at column 1 is refused. Errors go to ERR as "PATH:...: error:";
 * returns their number (0 = written). */
int spec_write_with_plan(const char *in_path, const spec_plan *p, const char *out_path,
                         FILE *err);
/* The same, also setting shape.tokens_per_micro_batch to MICRO_TOKENS when it is not 0 and
 * training.optimizer_state to OPTIMIZER_STATE when it is not -1: a key's value on its line is
 * replaced, or the key added as its section's last line (the section must then be a block
 * mapping), or a training: section holding it added at the end. */
int spec_write_tuned(const char *in_path, const spec_plan *p, int64_t micro_tokens,
                     int optimizer_state, const char *out_path, FILE *err);

/* NAME (64 bytes) = PATH's base name less .yaml or .yml, cut to 63 characters. */
void spec_name_from_path(const char *path, char name[64]);

/* "llama", "qwen2", "mistral", "qwen3" or "gemma3", as written in architecture.family. */
const char *spec_family_name(spec_family family);

#endif
