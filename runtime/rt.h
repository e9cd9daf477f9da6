/* runtime/rt.h - libhzrt's internal interfaces: the host store, the optimizer, the
 * backends and the executor that walks the generated schedule. Not for generated code. */
#ifndef HZ_RT_H
#define HZ_RT_H
#include <pthread.h>
#include <stdio.h>

#include "hz.h"
#include "hosts.h"
#include "hz_layout.h"
#include "kprof.h"

/* ---- inline bf16 and split-master arithmetic for the hot loops (store.c has the
 * public, documented versions; these are the same bits) ---- */
static inline uint32_t hz_bits_inl(float f)
{
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    return u;
}

static inline float hz_float_inl(uint32_t u)
{
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}

static inline float hz_bf16_f32_inl(uint16_t b) { return hz_float_inl((uint32_t)b << 16); }

/* Round to nearest even (NaN is never a master: see hz_bf16_from_f32 for NaN care). */
static inline uint16_t hz_f32_bf16_inl(float f)
{
    uint32_t u = hz_bits_inl(f);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float hz_join_inl(uint16_t w, int16_t lo)
{
    return hz_float_inl(((uint32_t)w << 16) + (uint32_t)(int32_t)lo);
}

static inline void hz_split_inl(float master, uint16_t *w, int16_t *lo)
{
    uint32_t u = hz_bits_inl(master);
    uint32_t hi = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    int32_t diff = (int32_t)(u - (hi << 16));
    uint32_t up = diff > 32767; /* a tie rounded down: take the bf16 above */
    *w = (uint16_t)(hi + up);
    *lo = (int16_t)(diff - (int32_t)(up << 16));
}

/* P moved by BYTES, as an integer: an array base shifted so that index i of the shifted
 * array is index i - BYTES / size of P's (the resident arrays indexed by store index, so the
 * bf16 rounding hashes an element's store index wherever it lives). Indexed only inside
 * P's object. */
static inline void *hz_shift_ptr(const void *p, int64_t bytes)
{
    return (void *)((uintptr_t)p + (uintptr_t)bytes);
}

/* ---- plan lookups both backends make ---- */

/* The tensor of KIND in unit U, or NULL. */
static inline const hz_tensor *hz_unit_tensor(const hz_plan *p, const hz_unit *u, int kind)
{
    for (int k = 0; k < u->tensor_n; k++)
        if (p->tensors[u->first_tensor + k].kind == kind) return &p->tensors[u->first_tensor + k];
    return NULL;
}

/* The buffer that holds boundary J (the input of block J; L: the head's): its own, or one of
 * two used alternately when the plan keeps the boundaries on the host. */
static inline int64_t hz_boundary_buf(const hz_plan *p, int64_t j)
{
    return p->boundary_on_host ? j % 2 : j;
}

/* ---- RoPE (rope_table.c): the settings and the inverse-frequency table ---- */
typedef struct hz_rope { /* Hugging Face "default", "llama3" and "linear" rope types */
    float theta;             /* base, e.g. 500000 */
    int llama3;              /* 1: apply llama3 frequency scaling */
    float factor;            /* llama3: scaling factor (e.g. 32) */
    float low_freq_factor;   /* llama3: e.g. 1 */
    float high_freq_factor;  /* llama3: e.g. 4 */
    int original_max_pos;    /* llama3: original_max_position_embeddings, e.g. 8192 */
    float linear;            /* linear: every inv_freq divided by it (e.g. 8); 0 = none */
} hz_rope;

/* inv_freq[i] = theta^(-2i/HD) for i < HD/2, then llama3- or linear-scaled if asked; as
 * transformers. */
void hz_rope_inv_freq(float *inv_freq, int HD, const hz_rope *rope);
/* The same for a plan's dims (head_dim and rope settings): the table both backends use for
 * full-attention blocks. */
void hz_rope_inv_freq_dims(float *inv_freq, const hz_dims *d);
/* The table of sliding-window blocks (hz_unit.window > 0): base d->rope_local_theta, no
 * scaling (transformers' Gemma 3 local rotary embedding). */
void hz_rope_inv_freq_local(float *inv_freq, const hz_dims *d);

/* ---- the host store (store.c, store_mem.c): SoA arrays of host_store_n elements each ----
 * Element i of every array belongs to the unit whose [host_n, host_n + padded_n) holds it
 * (the arrays and their element sizes: runtime/hz_layout.h HZ_ARR_*; ms and vs hold one
 * scale per HZ_OPTSTATE_BLOCK elements, element i's at i / HZ_OPTSTATE_BLOCK). A streamed
 * unit's elements live in the arrays; a resident unit's live with the backend (its home), and
 * their pages of the arrays are never touched: read and write them with hz_store_get /
 * hz_store_put / hz_store_pass, which go through the home's copy function. Hot paths (the
 * host optimizer, weight and gradient copies) index the arrays directly and only for
 * streamed units. */

/* Copy elements [first, first + n) of state array A (in HZ_ARR_STATE; first and n multiples
 * of HZ_OPTSTATE_BLOCK for MS and VS), all of resident units, between their home and BUF:
 * into BUF (TO_HOME 0) or from it. Device work issued so far is finished first. Called from
 * several threads at once. */
typedef void (*hz_home_copy_fn)(void *ctx, int a, int64_t first, int64_t n, void *buf,
                                int to_home);

/* Pinning of the backed runs (NULL: not pinned): 0, or -1 after saying why. */
typedef int (*hz_host_pin_fn)(void *ptr, size_t bytes);
typedef void (*hz_host_unpin_fn)(void *ptr);

typedef struct hz_store {
    int64_t n;          /* elements per array */
    uint16_t *w;        /* bf16 working weights */
    int16_t *lo;        /* low halves of the fp32 master */
    void *m, *v;        /* Adam moments in state_mode: float, bf16 bits, or int8 / uint8
                         * codes (runtime/optstate.h) */
    float *ms, *vs;     /* int8: the absmax of each block of m and v; else NULL */
    void *g;            /* gradients: float, or uint16_t bf16 when grad_bf16 */
    int grad_bf16;
    int state_mode;     /* enum hz_optstate_mode: the plan's optimizer_state */
    uint64_t state_seed;/* bf16: the stochastic rounding's seed (the run's --seed, or the
                         * checkpoint's on a resume) */
    int64_t bytes;      /* bytes backed (the runs and the bounce buffer): hz_store_backed_bytes */
    const hz_plan *plan;
    size_t map_bytes[HZ_ARR_N];  /* each array's mapping (0: the mode has no such array) */
    int pinned;
    int pinned_runs[HZ_ARR_N]; /* each array's runs pinned, from its first (all, unless one
                                * failed): the ones hz_store_free unpins */
    hz_host_unpin_fn unpin;
    char *bounce;       /* bounce_n elements of the state arrays (hz_store_bounce_bytes);
                         * NULL when nothing is resident */
    int64_t bounce_n;   /* hz_store_bounce_n */
    hz_home_copy_fn home;
    void *home_ctx;
} hz_store;

/* Q: the plan of a store of one streamed unit ONE of N parameters with fp32 moments and no
 * resident units, otherwise P's (its gradient dtype; P NULL: a zeroed plan, fp32
 * gradients): a store outside any model, as train --probe times its host AdamW on. */
void hz_plan_one_unit(hz_plan *q, hz_unit *one, const hz_plan *p, int64_t n);
/* Map and back the store for plan P (zeroed), pinning the backed runs with PIN (may be
 * NULL); returns 0 or -1 after saying why. */
int hz_store_alloc(hz_store *s, const hz_plan *p, hz_host_pin_fn pin, hz_host_unpin_fn unpin);
void hz_store_free(hz_store *s);
/* Bytes of the store's mappings now in RAM (mincore), the bounce buffer included. */
int64_t hz_store_measured_bytes(const hz_store *s);
/* Elements [first, first + n) of array A (HZ_ARR_STATE; G only where streamed) into DST /
 * from SRC, wherever they live (MS, VS: their scales, first and n multiples of the block).
 * Thread-safe for disjoint ranges. */
void hz_store_get(const hz_store *s, int a, int64_t first, int64_t n, void *dst);
void hz_store_put(const hz_store *s, int a, int64_t first, int64_t n, const void *src);
/* 1 when elements [first, first + n) all live in the arrays. */
int hz_store_backed(const hz_store *s, int64_t first, int64_t n);
/* Visit every element once, in order, window by window: FN(ARG, FIRST, N, PTR) with PTR[a]
 * pointing at element FIRST of array a for each a in the mask ARRAYS (HZ_ARR_BIT of the
 * state arrays; MS, VS: at the scale of FIRST's block; FIRST and N are multiples of the
 * block but for a store's last partial one): the arrays themselves, or the bounce buffer,
 * filled from the home before FN and (WRITE) sent back after it. FN returns 0, or nonzero to
 * stop the pass, which returns it. One pass at a time (the bounce buffer is shared). */
typedef int (*hz_window_fn)(void *arg, int64_t first, int64_t n, void *const *ptr);
int hz_store_pass(const hz_store *s, unsigned arrays, int write, hz_window_fn fn, void *arg);

/* The master of a streamed unit's element I (the arrays are read directly). */
float hz_store_master(const hz_store *s, int64_t i);
float hz_store_grad(const hz_store *s, int64_t i);

/* ---- the thread pool (pool.c) ---- */
typedef void (*hz_task_fn)(void *arg, int64_t begin, int64_t end);
typedef struct hz_pool hz_pool;
hz_pool *hz_pool_new(int threads);
/* Run fn over [0, n) split in contiguous chunks on all threads; returns when done. */
void hz_pool_run(hz_pool *pool, hz_task_fn fn, void *arg, int64_t n);
int hz_pool_threads(const hz_pool *pool);
void hz_pool_free(hz_pool *pool);

/* ---- the random init (init.c) ---- */
/* Initialise weights as transformers does for these models: matrices N(0, 0.02), norm
 * weights 1, biases 0 (a tied lm_head is the embedding's store), split into (w, lo). The
 * matrix element at store index I gets the float 0.02f * hz_init_normal(SEED, I): the store
 * is the same for every thread count and on every ISA, and for every placement (a resident
 * unit's elements go to the backend window by window, hz_store_pass). Runs on POOL's threads
 * (NULL: this thread); store elements outside the tensors are left as they are. */
void hz_store_init(hz_store *s, const hz_plan *p, uint64_t seed, hz_pool *pool);
/* The same for the store elements [BEGIN, END) alone, all of streamed units. */
void hz_store_init_range(hz_store *s, const hz_plan *p, uint64_t seed, int64_t begin,
                         int64_t end);
/* The standard normal of store index I, as the init computes it. key = the first splitmix64
 * output from state SEED; pair k's 64 bits h = output k + 1 of splitmix64 from state key;
 * in float, u1 = (h[63:33] + 1/2) 2^-31 in (0, 1] and u2 = h[31:8] 2^-24 in [0, 1); then
 * z0 = r cos(2 pi u2), z1 = r sin(2 pi u2), r = sqrt(-2 ln u1) (Box-Muller, init_math.h).
 * Indices go in groups of 64: index 64g + j (j < 32) is z0 of pair 32g + j, index
 * 64g + 32 + j its z1. |z| <= 6.67. */
float hz_init_normal(uint64_t seed, int64_t i);

/* ---- AdamW (adamw.c) ---- */
typedef struct hz_optim {
    float lr, beta1, beta2, eps, weight_decay, grad_clip, min_lr_ratio;
    int64_t warmup_steps, decay_steps;
} hz_optim;

/* Learning rate at 0-based STEP: linear warmup, then cosine to lr*min_lr_ratio. */
float hz_lr_at(const hz_optim *o, int64_t step);
/* The coefficients of one tensor's AdamW update, computed once on the host in this order
 * for both the host loop (adamw.c) and the GPU kernel (runtime/cuda/adamw.cu), so both
 * update with the same bits. Per element, in fp32 without fused multiply-adds:
 *   g = grad * gscale; m = beta1 m + (1 - beta1) g; v = beta2 v + ((1 - beta2) g) g;
 *   p = join(w, lo) * decay; p = p - (step m) / (sqrt(v rbc2) + eps); (w, lo) = split(p). */
typedef struct hz_adam_coef {
    float decay;  /* 1 - lr * weight_decay (1 where the tensor has no decay) */
    float step;   /* lr / (1 - beta1^t) */
    float rbc2;   /* 1 / (1 - beta2^t) */
    float beta1, beta2, eps, gscale;
} hz_adam_coef;
hz_adam_coef hz_adam_coef_of(const hz_optim *o, float lr, int decay, float gscale, int64_t t);
/* The host update of N elements with fp32 gradients GRAD (the arrays do not overlap): the
 * loop hz_adamw_unit runs for such a store, and the reference of the GPU kernel's bits. */
void hz_adamw_range(uint16_t *w, int16_t *lo, float *m, float *v, const float *grad, int64_t n,
                    const hz_adam_coef *k);

/* AdamW on every tensor a unit owns, with gradients scaled by GSCALE (clipping);
 * t = 1-based step for the bias correction; the moments in the store's state_mode (fp32:
 * hz_adamw_store_range; bf16, int8: hz_qadamw_pool of runtime/optstate.h). Returns the count
 * of non-finite scaled gradients the compact modes kept out of the state (fp32: 0, not
 * counted: the fp32 update is today's loop, bit for bit). */
int64_t hz_adamw_unit(hz_store *s, const hz_plan *p, int unit, const hz_optim *o, float lr,
                   float gscale, int64_t t, hz_pool *pool);
/* The same with the unit's fp32 gradients in GRADS, laid out by each tensor's grad_n (a held
 * unit's staging slot) instead of the store's gradient array (GRADS NULL: hz_adamw_unit). */
int64_t hz_adamw_unit_grads(hz_store *s, const hz_plan *p, int unit, const float *grads,
                            const hz_optim *o, float lr, float gscale, int64_t t, hz_pool *pool);
/* AdamW with the coefficients K on store elements [first, first + n), split over POOL, fp32
 * moments: what hz_adamw_unit runs on each tensor in fp32 mode (train --probe times it). */
void hz_adamw_store_range(hz_store *s, int64_t first, int64_t n, const hz_adam_coef *k,
                          hz_pool *pool);

/* ---- backends ----
 * A backend provides the arena, one function per device op kind (exec.c dispatches the
 * plan's ops through ops[], indexed by enum hz_op_kind; the host ops, OPT, run in exec.c)
 * and the step's bookkeeping around them. Device work may be asynchronous: an op is done
 * when wait_op returns.
 * Ranks: a plan for several GPUs of one host (hz_gpus > 1) runs as that many ranks in one
 * process (docs/plan.md "Several GPUs of one host"). Rank r has its own device state (its
 * arena) and runs the schedule on micro-batches r M .. r M + M - 1 of each step (M =
 * hz_gpu_n_micro); the ranks share the host store and the host optimizer. The hooks that
 * take RANK act on that rank's state only, and exec.c calls them for rank r from one
 * thread at a time (rank r's thread); the others act on the whole backend. With one rank,
 * RANK is always 0. */
typedef struct hz_ctx hz_ctx;
/* train --attention: AUTO takes cuDNN's fused attention where it loads and accepts the
 * model's shape (cuda backend, not --deterministic), CUDNN asks for it (a warning when it
 * cannot be had), HZC (the default until cuDNN's path is measured on the GPU,
 * docs/design-changes.md 26) keeps hzc's own kernels. The cpu backend ignores it. */
enum hz_attention_mode { HZ_ATTENTION_AUTO, HZ_ATTENTION_CUDNN, HZ_ATTENTION_HZC };
typedef void (*hz_op_fn)(hz_ctx *ctx, int rank, const hz_op *o);
/* One line of memory planned beside measured (the summary prints it, --metrics records it). */
typedef struct hz_mem_line {
    const char *what;
    int64_t planned, measured;
} hz_mem_line;
#define HZ_MEM_LINES_MAX 8
typedef struct hz_backend {
    const char *name;
    const hz_caps *caps;          /* what it can do (hz_tables.h HZ_BACKENDS) */
    hz_host_pin_fn host_pin;      /* the host store's backed runs pinned (NULL: not pinned) */
    hz_host_unpin_fn host_unpin;
    int (*init)(hz_ctx *ctx);     /* allocate the arena of each of ctx->rank_n ranks; 0 or -1 */
    /* Before the step's first op: the rank's share of its input and target ids
     * (hz_gpu_step_tokens each, copied) and the loss scale, 1 / trained tokens of the whole
     * step. */
    void (*begin_step)(hz_ctx *ctx, int rank, const int32_t *inputs, const int32_t *targets,
                       float dscale);
    void (*op_begin)(hz_ctx *ctx, int rank, int op); /* order op after its waits, mark its start */
    hz_op_fn ops[HZ_OP_KIND_N];               /* issue the op's work (NULL for host ops) */
    void (*op_end)(hz_ctx *ctx, int rank, int op);   /* mark its end: later waits see it */
    void (*wait_op)(hz_ctx *ctx, int rank, int op);  /* block the caller until op is done */
    /* With several ranks, called by every rank just before its STORE_G op O (all ranks
     * reach the same ops in the same order): the weight gradients that O copies, summed over
     * the ranks in rank order (0, 1, ..., so the bits do not depend on timing): into rank 0
     * alone for a streamed unit, whose STORE_G alone copies them to the host (the others'
     * copy nothing); into every rank for a resident unit, whose update each rank then applies
     * to its own copy with the same bits. Returns once the rank may reuse its gradient
     * buffer. NULL: the backend runs one rank. */
    void (*reduce)(hz_ctx *ctx, int rank, const hz_op *o);
    /* After step_result: rank 0's time in the last step's gradient sums, over the ranks
     * (MS[0]) and over the hosts (MS[1]), inside its STORE_G ops; NULL: not timed. */
    void (*sum_times)(hz_ctx *ctx, double ms[2]);
    /* After the last op of the step is done: the rank's loss sum (of its share of the
     * tokens) and squared grad norm (rank 0: of the summed gradients; others: 0). */
    void (*step_result)(hz_ctx *ctx, int rank, double *loss_sum, double *grad_sumsq);
    /* After step_result: start and end (ms from the step's start) of every device op of
     * the rank's step; 0 where the backend has no stream timeline. */
    int (*op_times)(hz_ctx *ctx, int rank, float *t0_ms, float *t1_ms);
    /* Forward-only loss sum of the rank's share of one step's tokens; LOGITS (NULL, or
     * (hz_gpu_step_tokens, V) fp32) receives their logits (--dump-logits). */
    double (*eval)(hz_ctx *ctx, int rank, const int32_t *inputs, const int32_t *targets,
                   float *logits);
    void (*report)(hz_ctx *ctx, FILE *out);   /* measured device memory beside planned */
    /* The same as lines (at most HZ_MEM_LINES_MAX into OUT); returns how many. */
    int (*memory)(hz_ctx *ctx, hz_mem_line *out);
    /* The home of the resident units' state arrays (hz_home_copy_fn; CTX is the hz_ctx):
     * written to every rank's copy, read from rank 0's. */
    hz_home_copy_fn home_copy;
    /* After init: the name of the device it runs on; NULL where it runs on none (cpu). */
    const char *(*device)(hz_ctx *ctx);
    /* train --probe, after init and instead of any step: measure the rates of hzc's
     * step-time model (compiler/timemodel.h) at this plan's shapes, progress and a table on
     * LOG, and write them to OUT_PATH as a ceilings file for hzc plan/build --ceilings.
     * 0, or -1 after saying why. NULL where there is no device to measure (cpu). */
    int (*probe)(hz_ctx *ctx, const char *out_path, FILE *log);
    /* train --profile-kernels (runtime/kprof.h): before the profiled step's first op, from
     * then until kprof_end every op's work on rank 0 is timed piece by piece into KP's rows;
     * kprof_end comes after the step's last op (its device updates too) is done. Work
     * outside the profiled step is not timed. */
    void (*kprof_begin)(hz_ctx *ctx, hz_kprof *kp);
    void (*kprof_end)(hz_ctx *ctx);
    /* After the profiled step, before its table: time the step's GEMMs alone (each row's
     * "alone" column) with the card as the step left it, at the clocks it held. NULL where
     * the rows have no alone times (cpu). */
    void (*kprof_alone)(hz_ctx *ctx, hz_kprof *kp);
    void (*destroy)(hz_ctx *ctx);
} hz_backend;

extern const hz_backend hz_backend_impl; /* the backend this libhzrt was built with */

typedef struct hz_profile hz_profile;
typedef struct hz_trace hz_trace;

/* Everything one trainer run holds. */
struct hz_ctx {
    const hz_plan *plan;
    const hz_backend *be;
    hz_store store;
    hz_pool *pool;
    int64_t step;                /* 0-based step being run */
    void *bk;                    /* the backend's own state (of all its ranks) */
    int rank_n;                  /* ranks in this process: hz_gpus of the plan */
    hz_hostlink hosts;           /* the run's hosts (hosts.h); n 1: this one alone. Rank r
                                  * of host h runs the step's share h rank_n + r */
    int last_d2h_op;             /* the step's last own op on the D2H stream (-1: none) */
    int last_device_update;      /* the last resident unit's update op (-1: none) */
    hz_pool *rank_pool;          /* rank_n threads, one a rank (the caller's is rank 0's);
                                  * NULL with one rank, which runs on the caller alone */
    /* optimizer thread: OPT ops run here while the next step's forward is issued */
    hz_optim optim;
    pthread_t opt_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t opt_queued_step;     /* step whose OPT ops may run (-1 none) */
    int64_t *unit_done_step;     /* per unit: last step whose update is applied */
    double grad_norm;            /* of the step being optimized, before clipping */
    int64_t nonfinite_n;         /* non-finite scaled gradients the compact optimizer states
                                  * kept out of the moments so far (host and device updates;
                                  * under mu) */
    int opt_quit;
    int opt_started;             /* the optimizer thread exists */
    int64_t opt_done_before;     /* steps whose updates were applied before it started, - 1 */
    double step_end_s;           /* host clock when the last step's device work ended */
    double *opt_t0_s, *opt_t1_s; /* (2, units): host clock around the update of unit u in
                                  * step s at [(s % 2) * units + u] */
    float *op_t0_ms, *op_t1_ms;  /* (ops): the last step's device op times (op_times) */
    struct hz_trace *trace;      /* --trace, or NULL */
    struct hz_profile *profile;  /* the last step's profile (NULL: not profiled) */
    int profiled;                /* profile holds the last step */
    int deterministic;           /* --deterministic: bit-identical reruns (set before init) */
    int attention;               /* --attention: enum hz_attention_mode (set before init) */
    int64_t kprof_step;          /* --profile-kernels: the 0-based step to profile kernel by
                                  * kernel, -1 none (set before init: the cuda backend
                                  * creates its events there) */
    hz_kprof *kprof;             /* its rows (NULL: none) */
    int kprofiled;               /* kprof holds the last step (the caller clears it) */
    /* a checkpoint written while training goes on (ckpt_async.c): the update of step
     * save_step (0-based; -1: none) of unit u waits while save_pending[u] > 0 (chunks
     * holding its state not yet written) */
    int64_t save_step;
    int *save_pending;           /* (units), under mu */
    struct hz_ckpt_async *saving; /* the save in flight, or NULL */
    /* the update a device opt op applies (exec.c sets them before issuing it) */
    float opt_lr, opt_gscale;
    int64_t opt_t;               /* 1-based step for the bias correction */
    /* held units (hz_unit.held): their FETCH_G copies the gradients of step s into staging
     * slot o->gslot when step s + 1 (or a drain) issues it; the update of step s reads them */
    float *gstage[2];            /* (fetch_n) fp32 each, pinned where the store is */
    int *fetch_op;               /* per unit: its FETCH_G op, -1 if not held */
    int64_t *fetched_step;       /* per unit: the step whose gradients its FETCH_G copied */
    int stage_unit[2];           /* per slot: the unit whose gradients it holds (-1: none), */
    int64_t stage_step[2];       /* of this step: the slot is free once that update is done */
};

/* ---- checkpoints (checkpoint.c); err buffers are HZ_HF_ERR_BYTES (hfmap.h) ---- */
typedef struct hz_resume {
    int64_t step;        /* optimizer steps done */
    int64_t data_pos;    /* the training data's position (hz_data_position) */
    uint64_t data_seed;  /* the data order's seed */
    int state_mode;      /* hz_ckpt_load: the checkpoint's optimizer-state precision (the
                          * store's own after the load, converted where they differ) */
} hz_resume;

/* Save OUT_DIR/step-<step>/ (config.json, model.safetensors, resume.bin with a digest of
 * every file) atomically, with parallel large I/O, and keep KEEP checkpoints (<= 0: all): the
 * one just written and the KEEP - 1 highest other steps. Removal never follows symlinks. The
 * store must hold no pending update. *BYTES (NULL: not wanted): what it wrote. 0; -2 when a master is not finite (nothing saved); -1
 * with a message. (ckpt_async.c saves while training goes on.) */
int hz_ckpt_save(const hz_store *s, const hz_plan *p, const char *out_dir, const hz_resume *r,
                 int keep, int64_t *bytes, char *err);
/* Load a checkpoint's weights and optimizer state into S, exactly, verifying it as it is
 * read (every file against resume.bin's manifest, its config.json against the plan's with
 * the first differing key named, step and data position in range, the checksum). PATH is a
 * checkpoint, or a --out directory whose newest step-N that verifies is taken (each newer one
 * that does not is named on stderr with the reason; when none does, the newest one's error
 * is the message). The moments of a checkpoint in another precision are converted to the
 * store's (runtime/ckpt_state.h); the store takes the checkpoint's rounding seed. DIR (N
 * bytes) receives the checkpoint taken. 0; -1 with a message; -2:
 * no checkpoint there. */
int hz_ckpt_resume(hz_store *s, const hz_plan *p, const char *path, int threads, hz_resume *r,
                   char *dir, size_t n, char *err);

/* ---- saving while training goes on (ckpt_async.c) ---- */
typedef struct hz_ckpt_async hz_ckpt_async;
/* Start a checkpoint of the first R->step (= C->step) steps into OUT_DIR on a thread of
 * its own, keeping KEEP (hz_ckpt_save); step R->step - 1's updates may still be queued. It
 * writes each unit's state once that update is applied, and holds the unit's next update
 * until then. One at a time (wait for the last first). 0, or -1 with a message. */
int hz_ckpt_async_start(hz_ctx *c, const char *out_dir, const hz_resume *r, int keep, char *err);
/* 1 when the save in flight has finished (hz_ckpt_async_wait returns at once). */
int hz_ckpt_async_done(const hz_ctx *c);
/* Wait for the save in flight: its step, seconds and bytes; 0 saved, 1 none in flight, -2 a
 * master was not finite (nothing saved), -1 with a message (nothing saved). */
int hz_ckpt_async_wait(hz_ctx *c, int64_t *step, double *seconds, int64_t *bytes, char *err);

/* Host monotonic clock in seconds. */
double hz_now_s(void);
/* ---- files (files.c) ---- */
/* mkdir -p PATH; 0, or -1 with errno (ENOTDIR when PATH exists but is no directory). */
int hz_mkdir_p(const char *path);
/* The whole file PATH, NUL-terminated (malloc'd, *n bytes before the NUL); NULL with errno set. */
void *hz_read_file(const char *path, size_t *n);
/* "bwd block 3 micro 1": op i of the plan, for messages and the trace (trace.c). */
void hz_op_label(const hz_plan *p, int i, char *buf, size_t n);

/* ---- the step profile and the Chrome trace (trace.c) ---- */
struct hz_profile {
    double span_ms;              /* first device op start to last device op end */
    double busy_ms[HZ_STREAM_KIND_N]; /* time each device stream ran ops */
    double phase_ms[HZ_PHASE_ALL_N]; /* the predicted phases, measured (the host optimizer:
                                      * the previous step's updates; 0 for the first step;
                                      * the sums over GPUs and hosts where the backend
                                      * times them) */
};
/* Open a Chrome trace (chrome://tracing, Perfetto) at PATH of steps first..last (1-based,
 * inclusive); NULL on failure. */
hz_trace *hz_trace_open(const char *path, const hz_plan *p, int64_t first, int64_t last);
/* Called by the executor after step c->step's device work (its updates may be running):
 * the step's profile, and (with a trace) its device ops and the previous step's host
 * updates as trace events. Returns 0 when the backend has no timeline. */
int hz_profile_step(hz_ctx *c, hz_trace *t, hz_profile *out);
/* Write the last step's host updates (after hz_exec_drain) and close the file. */
void hz_trace_close(hz_trace *t, hz_ctx *c);

/* The executor (exec.c). */
int hz_exec_init(hz_ctx *ctx, const hz_plan *plan, int threads);
/* Targets of one step (step_tokens) that are trained (not HZ_DATA_IGNORE). */
int64_t hz_exec_trained(const hz_plan *p, const int32_t *targets);
/* Run one optimizer step on INPUTS/TARGETS (step_tokens each; rank r's share starts at
 * r hz_gpu_step_tokens); returns the mean loss and sets the gradient norm (before
 * clipping). */
double hz_exec_step(hz_ctx *ctx, const int32_t *inputs, const int32_t *targets,
                    double *grad_norm);
/* Forward-only loss sum of one step's worth of tokens over every rank's share (summed in
 * rank order); LOGITS (NULL, or (step_tokens, V) fp32) receives the logits. */
double hz_exec_eval(hz_ctx *ctx, const int32_t *inputs, const int32_t *targets, float *logits);
/* Before the first step of a resumed run: STEP steps are already done and applied. */
void hz_exec_resume_at(hz_ctx *ctx, int64_t step);
/* 1 when a step's update waits for its gradient norm (clipping in the plan or the run),
 * so a step with a non-finite loss or norm is skipped whole; 0 when the updates are
 * queued before the norm is known and overlap the backward. */
int hz_exec_update_waits_norm(const hz_ctx *ctx);
/* Wait for every queued optimizer update to be applied. */
void hz_exec_drain(hz_ctx *ctx);
void hz_exec_free(hz_ctx *ctx);

/* Bytes the process has allocated at its peak (VmHWM), 0 if unknown. */
int64_t hz_peak_rss_bytes(void);
/* The "KEY: N kB" line of a /proc file in bytes, 0 if unknown. */
int64_t hz_proc_bytes(const char *file, const char *key);
/* Every page of the trainer's own executable read once, at start: its code is resident from
 * then on in the trainer and in its probe alike, instead of paged in as each path first runs
 * (the probe runs other code than the step), so the process bytes the probe measures are the
 * trainer's. Nothing happens where /proc cannot say (a few hundred KB of code: no error). */
void hz_touch_own_code(void);

#endif
