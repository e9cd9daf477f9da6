/* compiler/import_gemma.c - Gemma 3's text model in hzc import (import_read.h): the keys of
 * transformers' Gemma3TextConfig, its defaults where a config omits a key (a
 * Gemma3ForConditionalGeneration's text_config lists only what differs), the layer pattern
 * in either layout (transformers 4 sliding_window_pattern, 5 layer_types) and both rope
 * layouts (4: rope_theta, rope_local_base_freq, rope_scaling; 5: rope_parameters per layer
 * type). What hzc does not compute is refused by name: logit softcaps, attention biases,
 * bidirectional attention, another activation, rope types other than default and linear. */
#include <stddef.h>
#include <string.h>

#include "import_read.h"

/* One rope layout's entry: its base into *THETA and, for the global layers (GLOBAL), linear
 * scaling into S. KEY names it in messages. Returns 0 when hzc computes it. */
static int read_rope(imp *c, json_t *rope, const char *key, int global, double *theta,
                     hzc_spec *s)
{
    char where[96], buf[48];
    snprintf(where, sizeof where, "%s%s.", c->where, key);
    if (!json_is_object(rope)) {
        imp_error(c, "%s%s: expected a mapping, got %s", c->where, key, imp_shown(rope, buf));
        return -1;
    }
    if (theta && imp_get(rope, "rope_theta")) imp_pos(c, rope, where, "rope_theta", 0, theta);
    const char *type = imp_str(c, rope, where, "rope_type");
    if (!type) type = imp_str(c, rope, where, "type");
    if (!type || !strcmp(type, "default")) return 0;
    if (strcmp(type, "linear") || !global) {
        imp_error(c, "%s%s: rope type %s is not supported (hzc models Gemma 3's default RoPE and "
                     "linear scaling of its global layers)",
                  c->where, key,
                  imp_shown(imp_get(rope, imp_get(rope, "rope_type") ? "rope_type" : "type"), buf));
        return -1;
    }
    s->rope_linear = 1;
    return imp_pos(c, rope, where, "factor", 1, &s->rope_factor) ? 0 : -1;
}

/* The per-layer pattern into s->sliding: layer_types, else sliding_window_pattern. */
static void read_layers(imp *c, json_t *cfg, hzc_spec *s)
{
    char buf[48];
    const char *w = c->where;
    json_t *types = imp_get(cfg, "layer_types");
    if (types) {
        if (!json_is_array(types) || (int64_t)json_array_size(types) != s->L) {
            imp_error(c, "%slayer_types: expected a list of %lld attention types (one per "
                         "layer), got %s", w, (long long)s->L, imp_shown(types, buf));
            return;
        }
        for (size_t i = 0; i < json_array_size(types); i++) {
            const char *t = json_string_value(json_array_get(types, i));
            if (t && !strcmp(t, "sliding_attention")) s->sliding[i] = 1;
            else if (!t || strcmp(t, "full_attention"))
                imp_error(c, "%slayer_types[%zu]: attention type %s is not supported", w, i,
                          imp_shown(json_array_get(types, i), buf));
        }
        return;
    }
    int64_t pattern = 6; /* Gemma3TextConfig: every 6th layer global */
    imp_size(c, cfg, w, "sliding_window_pattern", 0, &pattern);
    s->window_pattern = pattern;
    for (int64_t i = 0; i < s->L; i++) s->sliding[i] = (i + 1) % pattern != 0;
}

void import_gemma3(imp *c, json_t *cfg, hzc_spec *s, int64_t *max_pos)
{
    char buf[48];
    const char *w = c->where;
    /* Gemma3TextConfig's defaults (the 2B-ish shape it documents) */
    s->V = 262208, s->C = 2304, s->F = 9216, s->L = 26, s->NH = 8, s->NKV = 4, s->HD = 256;
    s->norm_eps = 1e-6, s->rope_theta = 1e6, s->rope_local_theta = 1e4;
    s->query_pre_attn_scalar = 256, s->sliding_window = 4096;
    *max_pos = 131072;
    /* the sizes a config may leave at the defaults above */
    static const struct {
        const char *key;
        size_t off;
    } sizes[] = {{"vocab_size", offsetof(hzc_spec, V)},
                 {"hidden_size", offsetof(hzc_spec, C)},
                 {"intermediate_size", offsetof(hzc_spec, F)},
                 {"num_hidden_layers", offsetof(hzc_spec, L)},
                 {"num_attention_heads", offsetof(hzc_spec, NH)},
                 {"num_key_value_heads", offsetof(hzc_spec, NKV)},
                 {"head_dim", offsetof(hzc_spec, HD)}};
    int ok = 1;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (imp_get(cfg, sizes[i].key))
            ok &= imp_size(c, cfg, w, sizes[i].key, 0, (int64_t *)((char *)s + sizes[i].off));
    imp_size(c, cfg, w, "max_position_embeddings", 0, max_pos);
    imp_size(c, cfg, w, "sliding_window", 0, &s->sliding_window);
    imp_pos(c, cfg, w, "rms_norm_eps", 0, &s->norm_eps);
    imp_pos(c, cfg, w, "query_pre_attn_scalar", 0, &s->query_pre_attn_scalar);
    s->tied = imp_bool(c, cfg, "tie_word_embeddings", 1);
    s->qk_norm = 1; /* Gemma3Attention always has q_norm and k_norm */
    if (ok && s->NH % s->NKV) {
        imp_error(c, "%snum_attention_heads (%lld) must be a multiple of num_key_value_heads "
                     "(%lld)", w, (long long)s->NH, (long long)s->NKV);
        ok = 0;
    }
    if (ok && s->HD % 2)
        imp_error(c, "%shead_dim (%lld) must be even: RoPE rotates the two halves of each head",
                  w, (long long)s->HD);
    if (ok && s->L > SPEC_MAX_LAYERS) {
        imp_error(c, "%snum_hidden_layers: %lld layers; hzc takes at most %lld", w,
                  (long long)s->L, SPEC_MAX_LAYERS);
        ok = 0;
    }

    const char *act = imp_str(c, cfg, w, "hidden_activation");
    if (act && strcmp(act, "gelu_pytorch_tanh"))
        imp_error(c, "%shidden_activation: %s is not supported (hzc's Gemma 3 MLP is GeGLU with "
                     "gelu_pytorch_tanh)", w, imp_shown(imp_get(cfg, "hidden_activation"), buf));
    if (imp_bool(c, cfg, "attention_bias", 0))
        imp_error(c, "%sattention_bias: true is not supported (hzc's Gemma 3 projections have no "
                     "biases)", w);
    if (imp_bool(c, cfg, "use_bidirectional_attention", 0))
        imp_error(c, "%suse_bidirectional_attention: true is not supported (hzc trains causal "
                     "decoders)", w);
    static const char *const softcaps[] = {"attn_logit_softcapping", "final_logit_softcapping"};
    for (int i = 0; i < 2; i++)
        if (imp_get(cfg, softcaps[i]))
            imp_error(c, "%s%s: %s is not supported (hzc does not cap logits; Gemma 3 has null)",
                      w, softcaps[i], imp_shown(imp_get(cfg, softcaps[i]), buf));

    /* rope: transformers 5 "rope_parameters" per layer type, else 4's keys */
    json_t *rp = imp_get(cfg, "rope_parameters");
    json_t *full = json_is_object(rp) ? imp_get(rp, "full_attention") : NULL;
    json_t *local = json_is_object(rp) ? imp_get(rp, "sliding_attention") : NULL;
    if (full || local) {
        if (full) read_rope(c, full, "rope_parameters.full_attention", 1, &s->rope_theta, s);
        if (local)
            read_rope(c, local, "rope_parameters.sliding_attention", 0, &s->rope_local_theta, s);
    } else {
        imp_pos(c, cfg, w, "rope_theta", 0, &s->rope_theta);
        imp_pos(c, cfg, w, "rope_local_base_freq", 0, &s->rope_local_theta);
        if (rp) read_rope(c, rp, "rope_parameters", 1, &s->rope_theta, s);
        else if (imp_get(cfg, "rope_scaling"))
            read_rope(c, imp_get(cfg, "rope_scaling"), "rope_scaling", 1, NULL, s);
    }
    if (ok) read_layers(c, cfg, s);
}

void import_gemma3_yaml(FILE *o, const hzc_spec *s)
{
    char num[64];
    imp_fmt_num(num, sizeof num, s->rope_local_theta);
    fprintf(o, "  rope_local_theta: %s\n", num);
    imp_fmt_num(num, sizeof num, s->query_pre_attn_scalar);
    fprintf(o, "  query_pre_attn_scalar: %s\n", num);
    if (s->rope_linear) {
        imp_fmt_num(num, sizeof num, s->rope_factor);
        fprintf(o, "  rope_scaling:\n    type: linear\n    factor: %s\n", num);
    }
    fprintf(o, "  sliding_window: %lld\n", (long long)s->sliding_window);
    /* the pattern when the layers follow one (layer i global when (i + 1) % N == 0) */
    for (int64_t n = 1; n <= s->L; n++) {
        int fits = 1;
        for (int64_t i = 0; i < s->L && fits; i++) fits = s->sliding[i] == ((i + 1) % n != 0);
        if (fits) {
            fprintf(o, "  sliding_window_pattern: %lld\n", (long long)n);
            return;
        }
    }
    fprintf(o, "  layer_types: [");
    for (int64_t i = 0; i < s->L; i++)
        fprintf(o, "%s%s", i ? ", " : "", s->sliding[i] ? "sliding_attention" : "full_attention");
    fprintf(o, "]\n");
}
