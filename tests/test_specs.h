/* tests/test_specs.h - the small models the whole-model tests share: variant 0 is a
 * Qwen2-like model (untied, q/k/v biases), 1 a tied Llama, 2 a Llama with llama3 rope
 * scaling (small original_max_position, so all three frequency bands occur), 3 a tied
 * Qwen3-like model (per-head q/k norms, no biases, head_dim * num_heads != hidden_size), 4 a
 * Gemma 3-like model ((1 + w) norms, four a block, GeGLU, embedding scale, query_pre_attn_scalar
 * other than head_dim, layer 0 sliding with a window shorter than seq_len and its own RoPE
 * base, layer 1 global with linear rope scaling). */
#ifndef HZ_TEST_SPECS_H
#define HZ_TEST_SPECS_H
#define TEST_SPEC_VARIANTS 5
#include <stdio.h>
#include <string.h>

#include "spec.h"

static inline hzc_spec make_spec(int variant)
{
    hzc_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "hf%d", variant);
    s.family = variant == 0   ? FAMILY_QWEN2
               : variant == 3 ? FAMILY_QWEN3
               : variant == 4 ? FAMILY_GEMMA3
                              : FAMILY_LLAMA;
    s.V = 32;
    s.C = 16;
    s.L = 2;
    s.NH = 4;
    s.NKV = 2;
    s.HD = 4;
    s.F = 24;
    s.norm_eps = 1e-5;
    s.rope_theta = 10000;
    s.rope_local_theta = 10000;
    s.T = 8;
    s.micro_tokens = 16;
    s.step_tokens = 32;
    s.lr = 1e-2;
    s.beta1 = 0.9;
    s.beta2 = 0.95;
    s.adam_eps = 1e-8;
    s.weight_decay = 0.1;
    s.grad_clip = 1.0;
    s.min_lr_ratio = 0.1;
    s.seed = 7;
    s.qkv_bias = variant == 0;
    s.tied = variant == 1 || variant == 3 || variant == 4;
    if (variant == 3) {
        s.qk_norm = 1;
        s.HD = 8; /* 4 heads of 8: q is 32 wide, twice the residual stream */
        s.rope_theta = 1000000;
    }
    if (variant == 4) {
        s.qk_norm = 1;
        s.HD = 8;
        s.norm_eps = 1e-6;
        s.rope_theta = 1000000;
        s.rope_local_theta = 100;
        s.rope_linear = 1;
        s.rope_factor = 4;
        s.query_pre_attn_scalar = 6;
        s.sliding_window = 3;
        s.window_pattern = 2;
        s.sliding[0] = 1; /* (i + 1) % 2 != 0: layer 0 local, layer 1 global */
        s.sliding[2] = 1;
    }
    if (variant == 2) {
        s.rope_llama3 = 1;
        s.rope_factor = 8;
        s.rope_low_freq_factor = 1;
        s.rope_high_freq_factor = 4;
        s.rope_original_max_pos = 4;
        s.rope_theta = 500000;
        s.HD = 8;
        s.NH = 2;
        s.NKV = 1;
    }
    return s;
}

#endif
