/* runtime/hz_tables.h - the tables shared by the compiler and the runtime, as X-macros.
 * One list generates each enum, its names and (in the runtime) its dispatch, so the
 * compiler, the generated schedule and the runtime can never disagree. */
#ifndef HZ_TABLES_H
#define HZ_TABLES_H

/* Units: the groups of tensors streamed to the GPU together. */
#define HZ_UNIT_KINDS(X)                                  \
    X(EMBED, "embed", "token embedding lookup")            \
    X(BLOCK, "block", "one decoder block")                  \
    X(HEAD, "head", "final norm, lm_head and the loss")

/* Tensors. X(ID, name, hf_suffix). Fused tensors (qkv, gate_up) hold several
 * Hugging Face tensors stacked by rows, in the order given in docs/plan.md. */
#define HZ_TENSOR_KINDS(X)                                            \
    X(WTE, "wte", "model.embed_tokens.weight")                        \
    X(ATTN_NORM, "attn_norm", "input_layernorm.weight")               \
    X(WQKV, "wqkv", "self_attn.{q,k,v}_proj.weight")                  \
    X(BQKV, "bqkv", "self_attn.{q,k,v}_proj.bias")                    \
    X(Q_NORM, "q_norm", "self_attn.q_norm.weight")                    \
    X(K_NORM, "k_norm", "self_attn.k_norm.weight")                    \
    X(WO, "wo", "self_attn.o_proj.weight")                            \
    X(ATTN_POST_NORM, "attn_post_norm", "post_attention_layernorm.weight (gemma3)") \
    X(MLP_NORM, "mlp_norm", "post_attention_layernorm.weight (gemma3: pre_feedforward_layernorm)") \
    X(WGU, "wgate_up", "mlp.{gate,up}_proj.weight")                   \
    X(WDOWN, "wdown", "mlp.down_proj.weight")                         \
    X(MLP_POST_NORM, "mlp_post_norm", "post_feedforward_layernorm.weight (gemma3)") \
    X(FINAL_NORM, "final_norm", "model.norm.weight")                  \
    X(LM_HEAD, "lm_head", "lm_head.weight")

/* GPU arena regions. X(ID, name, what) */
#define HZ_REGION_KINDS(X)                                                        \
    X(WSLOT, "weight_slots", "bf16 weights of one unit, per slot")               \
    X(GSLOT, "grad_slots", "fp32 gradient accumulator of one block, per slot")   \
    X(GHEAD, "grad_head", "fp32 gradients of the head, then of the embedding")   \
    X(GSTAGE, "grad_stage", "bf16 copy of one unit's gradients for the host")     \
    X(BOUNDARY, "boundary", "bf16 input of every block and of the head, whole step (or 2 layers' worth when they live on the host)") \
    X(DGRAD, "dgrad", "bf16 gradient of the residual stream, whole step")        \
    X(TOKENS, "tokens", "int32 inputs and targets of the step")                  \
    X(WORK, "workspace", "per-micro-batch recompute and backward buffers")        \
    X(LOSSBUF, "loss_head", "final norm, logits chunk, per-token losses")         \
    X(SCALARS, "scalars", "doubles: the step's squared gradient norm and its partial sums") \
    X(RESIDENT, "resident", "resident units: bf16 w, int16 lo, fp32 m, v, g (16 bytes a parameter)") \
    X(SAVED, "saved", "forward activations of the kept blocks, per block and micro-batch") \
    X(GHOLD, "grad_hold", "fp32 gradients of the streamed units that hold them on the GPU until their update") \
    X(MLPOUT, "mlp_out", "bf16 MLP outputs before their norm (and its 1/rms) of the blocks that keep them, per block and micro-batch")

/* Streams. */
#define HZ_STREAM_KINDS(X)                          \
    X(COMPUTE, "compute", "GPU kernels and GEMMs")   \
    X(H2D, "h2d", "host-to-device copies")           \
    X(D2H, "d2h", "device-to-host copies")           \
    X(HOST, "host", "the host optimizer threads")

/* Step ops. X(ID, name, what) */
#define HZ_OP_KINDS(X)                                                              \
    X(LOAD_W, "load_w", "copy a unit's bf16 weights host -> weight slot")           \
    X(FWD, "fwd", "forward one micro-batch through a unit, keep its output boundary") \
    X(LOSS, "loss", "head forward + backward of one micro-batch, chunked over tokens") \
    X(BWD, "bwd", "recompute a block from its boundary, backward, accumulate grads") \
    X(STORE_G, "store_g", "copy a unit's gradients -> host, add its squared norm")  \
    X(FETCH_G, "fetch_g", "copy a held unit's gradients of the step before -> host staging, for its update") \
    X(OPT, "opt", "AdamW on a unit's master (host, or the GPU for resident units)")  \
    X(STORE_B, "store_b", "copy a layer's boundary activations -> host (host boundaries)") \
    X(LOAD_B, "load_b", "copy a layer's boundary activations host -> GPU (host boundaries)")

/* The phases of a step the planner predicts and the trainer measures. X(ID, name, what) */
#define HZ_PHASES(X)                                                          \
    X(PH_FWD, "forward", "compute stream: embedding and blocks, forward")     \
    X(PH_LOSS, "loss head", "compute stream: final norm, lm_head, loss")      \
    X(PH_BWD, "backward", "compute stream: recompute and backward of blocks") \
    X(PH_H2D, "PCIe h2d", "weights (and boundaries) to the GPU")              \
    X(PH_D2H, "PCIe d2h", "gradients (and boundaries) to the host")           \
    X(PH_OPT, "host optimizer", "AdamW of the streamed units on the host")           \
    X(PH_GPU_OPT, "GPU optimizer", "AdamW of the resident units on the GPU")

/* The phases only a plan for several GPUs or several hosts has (docs/plan.md "Several
 * GPUs of one host", "Several hosts"), after those of HZ_PHASES: a plan for one GPU of one
 * host, and the trainer, which runs one GPU, have the first HZ_PHASE_N phases alone.
 * X(ID, name, what) */
#define HZ_GPUS_PHASES(X)                                                                     \
    X(PH_NCCL, "NCCL reduce",                                                                 \
      "each unit's gradients summed across the GPUs (ncclReduce, ncclAllReduce)")             \
    X(PH_NET, "network all-reduce",                                                           \
      "each unit's sum of one host all-reduced across the hosts (between their GPUs 0)")

/* Backends and what they can do, asked by the compiler (hzc build) and the trainer instead
 * of a backend's name. X(ID, name, pinned host store, PCIe, several ranks in one process (a
 * plan for several GPUs of one host, runtime/rt.h "Ranks"), head_dims the attention kernels
 * are built and tested for ({0}: any even head_dim)). The cuda list is the set
 * runtime/cuda/attention.cu compiles in (256 through the model's HZ_HD, Gemma 3's) and
 * tests/gpu/ktest_attention.c tests. */
#define HZ_BACKENDS(X)                        \
    X(BACKEND_CPU, "cpu", 0, 0, 1, {0})        \
    X(BACKEND_CUDA, "cuda", 1, 1, 1, {32, 64, 128, 256})

/* Optimizer-state precisions (runtime/optstate.h): X(ID, name, bytes of one moment). The spec's
 * training.optimizer_state, the plan's optimizer_state and a checkpoint's state mode. */
#define HZ_OPTSTATE_MODES(X)      \
    X(HZ_OPTSTATE_FP32, "fp32", 4) \
    X(HZ_OPTSTATE_BF16, "bf16", 2) \
    X(HZ_OPTSTATE_INT8, "int8", 1)

/* Elements per int8 block (one fp32 absmax for m and one for v each). 64 is the planner's
 * tensor alignment in the host store (tests/test_optstate.c checks it divides it), so every
 * tensor starts on a block boundary; the absmax costs 2 * 4 / 64 = 0.125 bytes a parameter. */
#define HZ_OPTSTATE_BLOCK 64

#define HZ_ENUM_ENTRY(id, ...) HZ_##id,
enum hz_unit_kind { HZ_UNIT_KINDS(HZ_ENUM_ENTRY) HZ_UNIT_KIND_N };
enum hz_tensor_kind { HZ_TENSOR_KINDS(HZ_ENUM_ENTRY) HZ_TENSOR_KIND_N };
enum hz_region_kind { HZ_REGION_KINDS(HZ_ENUM_ENTRY) HZ_REGION_KIND_N };
enum hz_stream_kind { HZ_STREAM_KINDS(HZ_ENUM_ENTRY) HZ_STREAM_KIND_N };
enum hz_op_kind { HZ_OP_KINDS(HZ_ENUM_ENTRY) HZ_OP_KIND_N };
enum hz_backend_kind { HZ_BACKENDS(HZ_ENUM_ENTRY) HZ_BACKEND_N };
enum hz_phase_kind { HZ_PHASES(HZ_ENUM_ENTRY) HZ_GPUS_PHASES(HZ_ENUM_ENTRY) HZ_PHASE_ALL_N };
#define HZ_COUNT_ENTRY(id, ...) +1
/* HZ_PHASE_N: the phases of one GPU's step (HZ_PHASES); HZ_PHASE_ALL_N: with several GPUs' */
enum { HZ_PHASE_N = HZ_PHASE_ALL_N - (0 HZ_GPUS_PHASES(HZ_COUNT_ENTRY)) };
#define HZ_OPTSTATE_ENUM(id, ...) id,
enum hz_optstate_mode { HZ_OPTSTATE_MODES(HZ_OPTSTATE_ENUM) HZ_OPTSTATE_MODE_N };
#undef HZ_OPTSTATE_ENUM

#endif
