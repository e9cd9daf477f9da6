/* runtime/hfconfig.c - the config.json transformers reads for a plan's model (hfmap.h):
 * LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM, Qwen3ForCausalLM or
 * Gemma3ForCausalLM, keys sorted and indented as save_pretrained writes them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfmap.h"

/* The shortest decimal that reads back as the float X, as a JSON number with a '.' or 'e'
 * (so Python reads a float): 1e-05, 500000.0, 0.02. */
static void fmt_float(char *buf, size_t n, float x)
{
    if (x == floorf(x) && fabsf(x) < 1e15f) {
        snprintf(buf, n, "%.1f", (double)x);
        return;
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    if (!strpbrk(buf, ".e")) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, ".0");
    }
}

/* Gemma 3's sliding_window_pattern N of a plan whose blocks follow it (block i global when
 * (i + 1) % N == 0, transformers 4's rule; 1 with no windowed block), or 0 when none fits. */
static int64_t window_pattern(const hz_plan *p)
{
    const hz_dims *d = &p->dims;
    for (int64_t n = 1; n <= d->L; n++) {
        int fits = 1;
        for (int i = 0; i < p->unit_n && fits; i++) {
            const hz_unit *u = &p->units[i];
            if (u->kind == HZ_BLOCK) fits = (u->window > 0) == ((u->layer + 1) % n != 0);
        }
        if (fits) return n;
    }
    return 0;
}

/* Gemma3ForCausalLM (model_type gemma3_text). query_pre_attn_scalar is the one whose ^-0.5
 * is the plan's score scale (an integer in every published config). Both layouts of the
 * layer pattern are written: layer_types for transformers 4.53 and later, and
 * sliding_window_pattern, which earlier ones read, when the blocks follow one. */
static char *gemma3_config(const hz_plan *p)
{
    const hz_dims *d = &p->dims;
    char *text = NULL, eps[32], theta[32], local[32], qpas[32], factor[32];
    size_t size = 0;
    FILE *o = open_memstream(&text, &size);
    if (!o) return NULL;
    double q = 1.0 / ((double)d->attn_scale * d->attn_scale), qr = floor(q + 0.5);
    /* an integer is written as one: transformers 5 validates the field as an int */
    if ((float)pow(qr, -0.5) == d->attn_scale) snprintf(qpas, sizeof qpas, "%lld", (long long)qr);
    else fmt_float(qpas, sizeof qpas, (float)q);
    fmt_float(eps, sizeof eps, d->eps);
    fmt_float(theta, sizeof theta, d->rope_theta);
    fmt_float(local, sizeof local, d->rope_local_theta);
    fprintf(o, "{\n  \"architectures\": [\n    \"Gemma3ForCausalLM\"\n  ],\n");
    fprintf(o, "  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n");
    fprintf(o, "  \"attn_logit_softcapping\": null,\n  \"final_logit_softcapping\": null,\n");
    fprintf(o, "  \"head_dim\": %lld,\n", (long long)d->HD);
    fprintf(o, "  \"hidden_activation\": \"gelu_pytorch_tanh\",\n");
    fprintf(o, "  \"hidden_size\": %lld,\n", (long long)d->C);
    fprintf(o, "  \"initializer_range\": 0.02,\n");
    fprintf(o, "  \"intermediate_size\": %lld,\n", (long long)d->F);
    fprintf(o, "  \"layer_types\": [");
    for (int i = 0, k = 0; i < p->unit_n; i++)
        if (p->units[i].kind == HZ_BLOCK)
            fprintf(o, "%s\n    \"%s\"", k++ ? "," : "",
                    p->units[i].window > 0 ? "sliding_attention" : "full_attention");
    fprintf(o, "\n  ],\n");
    fprintf(o, "  \"max_position_embeddings\": %lld,\n", (long long)d->T);
    fprintf(o, "  \"model_type\": \"gemma3_text\",\n");
    fprintf(o, "  \"num_attention_heads\": %lld,\n", (long long)d->NH);
    fprintf(o, "  \"num_hidden_layers\": %lld,\n", (long long)d->L);
    fprintf(o, "  \"num_key_value_heads\": %lld,\n", (long long)d->NKV);
    fprintf(o, "  \"query_pre_attn_scalar\": %s,\n", qpas);
    fprintf(o, "  \"rms_norm_eps\": %s,\n", eps);
    fprintf(o, "  \"rope_local_base_freq\": %s,\n", local);
    if (d->rope_linear > 0.0f) {
        fmt_float(factor, sizeof factor, d->rope_linear);
        fprintf(o, "  \"rope_scaling\": {\n    \"factor\": %s,\n"
                   "    \"rope_type\": \"linear\"\n  },\n", factor);
    } else {
        fprintf(o, "  \"rope_scaling\": null,\n");
    }
    fprintf(o, "  \"rope_theta\": %s,\n", theta);
    /* with no windowed block the window is never used; the sequence length is a valid one */
    fprintf(o, "  \"sliding_window\": %lld,\n", (long long)(d->window > 0 ? d->window : d->T));
    int64_t pattern = window_pattern(p);
    if (pattern > 0) fprintf(o, "  \"sliding_window_pattern\": %lld,\n", (long long)pattern);
    fprintf(o, "  \"tie_word_embeddings\": %s,\n", d->tied ? "true" : "false");
    fprintf(o, "  \"torch_dtype\": \"bfloat16\",\n");
    fprintf(o, "  \"use_cache\": true,\n");
    fprintf(o, "  \"vocab_size\": %lld\n}\n", (long long)d->V);
    if (fclose(o) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

char *hz_hf_config_json(const hz_plan *p, const char *family)
{
    const hz_dims *d = &p->dims;
    if (family && !strcmp(family, "gemma3")) return gemma3_config(p);
    if (!family || (strcmp(family, "llama") && strcmp(family, "qwen2") &&
                    strcmp(family, "mistral") && strcmp(family, "qwen3")))
        return NULL;
    /* transformers' Llama attention_bias also gives o_proj a bias, and Mistral has none:
     * q/k/v biases alone are Qwen2, and Qwen2 without them computes what Llama does. Per-head
     * q/k norms are Qwen3's (whose attention_bias would also bias o_proj): a model with them
     * and q/k/v biases has no transformers class, and none is written. */
    if (d->qk_norm) {
        if (d->qkv_bias) return NULL;
        family = "qwen3";
    } else if (d->qkv_bias) {
        family = "qwen2";
    } else if (!strcmp(family, "qwen2") || !strcmp(family, "qwen3")) {
        family = "llama";
    }
    int llama = !strcmp(family, "llama"), qwen2 = !strcmp(family, "qwen2");
    int qwen3 = !strcmp(family, "qwen3");
    const char *arch = llama   ? "LlamaForCausalLM"
                       : qwen2 ? "Qwen2ForCausalLM"
                       : qwen3 ? "Qwen3ForCausalLM"
                               : "MistralForCausalLM";

    char *text = NULL, eps[32], theta[32], f[3][32];
    size_t size = 0;
    FILE *o = open_memstream(&text, &size);
    if (!o) return NULL;
    int64_t max_pos = d->T;
    if (d->rope_llama3 && (double)d->rope_original_max_pos * d->rope_factor > (double)max_pos)
        max_pos = (int64_t)((double)d->rope_original_max_pos * d->rope_factor);
    fmt_float(eps, sizeof eps, d->eps);
    fmt_float(theta, sizeof theta, d->rope_theta);
    /* keys sorted, two-space indent: the layout of transformers' save_pretrained */
    fprintf(o, "{\n  \"architectures\": [\n    \"%s\"\n  ],\n", arch);
    if (llama || qwen3) fprintf(o, "  \"attention_bias\": false,\n");
    fprintf(o, "  \"attention_dropout\": 0.0,\n");
    fprintf(o, "  \"head_dim\": %lld,\n", (long long)d->HD);
    fprintf(o, "  \"hidden_act\": \"silu\",\n");
    fprintf(o, "  \"hidden_size\": %lld,\n", (long long)d->C);
    fprintf(o, "  \"initializer_range\": 0.02,\n");
    fprintf(o, "  \"intermediate_size\": %lld,\n", (long long)d->F);
    fprintf(o, "  \"max_position_embeddings\": %lld,\n", (long long)max_pos);
    if (llama) fprintf(o, "  \"mlp_bias\": false,\n");
    fprintf(o, "  \"model_type\": \"%s\",\n", family);
    fprintf(o, "  \"num_attention_heads\": %lld,\n", (long long)d->NH);
    fprintf(o, "  \"num_hidden_layers\": %lld,\n", (long long)d->L);
    fprintf(o, "  \"num_key_value_heads\": %lld,\n", (long long)d->NKV);
    fprintf(o, "  \"rms_norm_eps\": %s,\n", eps);
    if (d->rope_llama3) {
        fmt_float(f[0], sizeof f[0], d->rope_factor);
        fmt_float(f[1], sizeof f[1], d->rope_high_freq_factor);
        fmt_float(f[2], sizeof f[2], d->rope_low_freq_factor);
        fprintf(o, "  \"rope_scaling\": {\n    \"factor\": %s,\n    \"high_freq_factor\": %s,\n"
                   "    \"low_freq_factor\": %s,\n    \"original_max_position_embeddings\": %d,\n"
                   "    \"rope_type\": \"llama3\"\n  },\n",
                f[0], f[1], f[2], d->rope_original_max_pos);
    } else {
        fprintf(o, "  \"rope_scaling\": null,\n");
    }
    fprintf(o, "  \"rope_theta\": %s,\n", theta);
    if (!llama) fprintf(o, "  \"sliding_window\": null,\n");
    fprintf(o, "  \"tie_word_embeddings\": %s,\n", d->tied ? "true" : "false");
    fprintf(o, "  \"torch_dtype\": \"bfloat16\",\n");
    fprintf(o, "  \"use_cache\": true,\n");
    if (qwen2 || qwen3) fprintf(o, "  \"use_sliding_window\": false,\n");
    fprintf(o, "  \"vocab_size\": %lld\n}\n", (long long)d->V);
    if (fclose(o) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
