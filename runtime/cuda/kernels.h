/* runtime/cuda/kernels.h - the kernels the cuda backend launches, as one table: name in
 * generated/kernels.cu, parameter sizes (checked against the loaded cubin at start, so a
 * signature change in a kernel source is caught before it corrupts a launch) and dynamic
 * shared memory (from the kernels' own constants, attention.cuh). The grid of each kernel
 * is its typed wrapper's (launch.c), beside the launch comment of the kernel's .cu file. */
#ifndef HZ_CUDA_KERNELS_H
#define HZ_CUDA_KERNELS_H
#include "attention.cuh"

/* X(id, name, parameter sizes, shared-memory bytes): p = pointer (8 bytes), l = long (8),
 * i = int (4), f = float (4), m = a TMA tensor map (128); shared memory is an expression of
 * the model's HD and C. */
#define HZ_CUDA_KERNELS(X)                                                                 \
    X(K_F32_TO_BF16, "hzk_f32_to_bf16", "ppl", 0)                                          \
    X(K_ADD_BF16, "hzk_add_bf16", "pppl", 0)                                               \
    X(K_SUMSQ_F32, "hzk_sumsq_f32", "pppl", 0)                                             \
    X(K_ADAMW, "hzk_adamw", "ppppplfffffff", 0)                                            \
    X(K_ADAMW_BF16S, "hzk_adamw_bf16state", "pppppillpfffffffll", 0)                       \
    X(K_ADAMW_INT8S, "hzk_adamw_int8state", "pppppppillpfffffff", 0)                       \
    X(K_EMBED_FWD, "hzk_embedding_forward", "pppii", 0)                                    \
    X(K_EMBED_BWD, "hzk_embedding_backward", "pppii", 0)                                   \
    X(K_RMSNORM_FWD, "hzk_rmsnorm_forward", "ppppiif", 0)                                  \
    X(K_RES_RMSNORM_FWD, "hzk_residual_rmsnorm_forward", "ppppppiif", 0)                   \
    X(K_RMSNORM_BWD, "hzk_rmsnorm_backward", "pppppppii", (int64_t)C * 4) /* a dw row */   \
    X(K_QKV_ROPE, "hzk_qkv_bias_rope", "ppppppiiiii", 0)                                   \
    X(K_QKV_ROPE_BWD, "hzk_qkv_rope_backward", "ppppppiiiii", 0)                           \
    X(K_QKV_ROPE_TOK, "hzk_qkv_bias_rope_tokens", "ppppppiiiii", 0)                        \
    X(K_QKV_ROPE_TOK_BWD, "hzk_qkv_rope_tokens_backward", "pppppiiiii", 0)                 \
    X(K_QKN_ROPE, "hzk_qk_norm_rope", "pppppppppppiiiiif", 0)                              \
    X(K_QKN_ROPE_BWD, "hzk_qk_norm_rope_backward", "pppppppppppppiiiii", 0)                \
    X(K_SWIGLU_FWD, "hzk_swiglu_forward", "ppli", 0)                                       \
    X(K_SWIGLU_BWD, "hzk_swiglu_backward", "pppli", 0)                                     \
    /* Gemma 3: (1 + w) norms, GeGLU, the embedding's bf16 scale */                          \
    X(K_RMSNORM1P_FWD, "hzk_rmsnorm1p_forward", "ppppiif", 0)                              \
    X(K_RES_RMSNORM1P_FWD, "hzk_residual_rmsnorm1p_forward", "ppppppiif", 0)               \
    X(K_RMSNORM1P_BWD, "hzk_rmsnorm1p_backward", "pppppppii", (int64_t)C * 4)              \
    X(K_QKN1P_ROPE, "hzk_qk_norm1p_rope", "pppppppppppiiiiif", 0)                          \
    X(K_QKN1P_ROPE_BWD, "hzk_qk_norm1p_rope_backward", "pppppppppppppiiiii", 0)            \
    X(K_GEGLU_FWD, "hzk_geglu_forward", "ppli", 0)                                         \
    X(K_GEGLU_BWD, "hzk_geglu_backward", "pppli", 0)                                       \
    X(K_SCALE_BF16, "hzk_scale_bf16", "pfl", 0)                                            \
    X(K_XENT, "hzk_crossentropy_forward_backward", "ppppiif", 0)                           \
    X(K_ATT_FWD, "hzk_attention_forward", "pppppiiiiifi", HZ_ATT_FWD_SMEM((int64_t)HD))    \
    /* the Hopper forward (attention_wgmma.cu; sm_90 only, head_dim 128) */                 \
    X(K_ATT_FWD_TMA, "hzk_attention_forward_tma", "ppmmmiiiiifi", HZ_ATT_WS_SMEM)          \
    X(K_ATT_BWD_PRE, "hzk_attention_backward_preprocess", "pppiiii", 0)                    \
    /* the Hopper backward (attention_wgmma_bwd.cu; sm_90 only, head_dim 128) */            \
    X(K_ATT_BWD_KV_WG, "hzk_attention_backward_kv_wgmma", "ppmmmmmmiiiiifi", HZ_ATT_WB_KV_SMEM) \
    X(K_ATT_BWD_Q_WG, "hzk_attention_backward_q_wgmma", "pppmmmmiiiiifi", HZ_ATT_WB_Q_SMEM)  \
    X(K_ATT_BWD, "hzk_attention_backward", "ppppppppiiiiifi", HZ_ATT_BWD_SMEM((int64_t)HD)) \
    X(K_ATT_BWD_DQ, "hzk_attention_backward_dq", "pppppppiiiiifi",                         \
      HZ_ATT_DQ_SMEM((int64_t)HD))                                                         \
    /* the deterministic path (train --deterministic) */                                   \
    X(K_EMBED_BWD_ORD, "hzk_embedding_backward_ordered", "pppiii", 0)                      \
    X(K_RMSNORM_BWD_PART, "hzk_rmsnorm_backward_part", "pppppppii", (int64_t)C * 4)        \
    X(K_QKV_ROPE_BWD_PART, "hzk_qkv_rope_backward_part", "ppppppiiiii", 0)                 \
    X(K_QKN_ROPE_BWD_PART, "hzk_qk_norm_rope_backward_part", "pppppppppppppiiiii", 0)      \
    X(K_RMSNORM1P_BWD_PART, "hzk_rmsnorm1p_backward_part", "pppppppii", (int64_t)C * 4)    \
    X(K_QKN1P_ROPE_BWD_PART, "hzk_qk_norm1p_rope_backward_part", "pppppppppppppiiiii", 0)  \
    X(K_COLSUM_F32, "hzk_colsum_f32", "ppii", 0)                                           \
    X(K_SUM_F64, "hzk_sum_f64", "ppi", 0)

#define HZ_KERNEL_ENUM(id, name, params, smem) id,
enum { HZ_CUDA_KERNELS(HZ_KERNEL_ENUM) K_N };
#undef HZ_KERNEL_ENUM

/* The name and parameter sizes of kernel K (kernels.c). */
extern const char *const hzcu_kernel_names[K_N];
extern const char *const hzcu_kernel_params[K_N];

#endif
