/* compiler/spec_arch.c - the architecture section of a model description (docs/spec.md
 * "architecture"): its keys, the family defaults, the cross-field rules, Gemma 3's layer
 * pattern, and the parameter count. The generic parts (tables, scalars, messages) are
 * spec.c's, through spec_read.h. */
#include <math.h>
#include <string.h>

#include "spec_read.h"

const field_def spec_arch_fields[SPEC_ARCH_N] = {
    [A_FAMILY] = FIELD_OTHER("family", 1),
    [A_VOCAB] = FIELD("vocab_size", FT_INT, R_SIZE, 1, V),
    [A_HIDDEN] = FIELD("hidden_size", FT_INT, R_SIZE, 1, C),
    [A_LAYERS] = FIELD("num_layers", FT_INT, R_LAYERS, 1, L),
    [A_HEADS] = FIELD("num_heads", FT_INT, R_SIZE, 1, NH),
    [A_KV_HEADS] = FIELD("num_kv_heads", FT_INT, R_SIZE, 0, NKV),
    [A_HEAD_DIM] = FIELD("head_dim", FT_INT, R_SIZE, 0, HD),
    [A_FFN] = FIELD("ffn_size", FT_INT, R_SIZE, 1, F),
    [A_NORM_EPS] = FIELD("norm_eps", FT_NUM, R_POS, 0, norm_eps),
    [A_ROPE_THETA] = FIELD("rope_theta", FT_NUM, R_POS, 0, rope_theta),
    [A_ROPE_SCALING] = FIELD_OTHER("rope_scaling", 0),
    [A_TIED] = FIELD("tie_embeddings", FT_BOOL, R_ANY, 0, tied),
    [A_QKV_BIAS] = FIELD("qkv_bias", FT_BOOL, R_ANY, 0, qkv_bias),
    [A_QK_NORM] = FIELD("qk_norm", FT_BOOL, R_ANY, 0, qk_norm),
    [A_ROPE_LOCAL] = FIELD("rope_local_theta", FT_NUM, R_POS, 0, rope_local_theta),
    [A_QPAS] = FIELD("query_pre_attn_scalar", FT_NUM, R_POS, 0, query_pre_attn_scalar),
    [A_WINDOW] = FIELD("sliding_window", FT_INT, R_SIZE, 0, sliding_window),
    [A_PATTERN] = FIELD("sliding_window_pattern", FT_INT, R_LAYERS, 0, window_pattern),
    [A_LAYER_TYPES] = FIELD_OTHER("layer_types", 0),
};

/* llama3's keys are all required; linear scaling takes only the factor. */
const field_def spec_rope_fields[SPEC_ROPE_N] = {
    [RS_TYPE] = FIELD_OTHER("type", 1),
    [RS_FACTOR] = FIELD("factor", FT_NUM, R_POS, 1, rope_factor),
    [RS_LOW] = FIELD("low_freq_factor", FT_NUM, R_POS, 0, rope_low_freq_factor),
    [RS_HIGH] = FIELD("high_freq_factor", FT_NUM, R_POS, 0, rope_high_freq_factor),
    [RS_ORIG] = FIELD("original_max_position", FT_INT, R_SIZE, 0, rope_original_max_pos),
};

static const char *const family_names[SPEC_FAMILY_N] = {
    [FAMILY_LLAMA] = "llama", [FAMILY_QWEN2] = "qwen2", [FAMILY_MISTRAL] = "mistral",
    [FAMILY_QWEN3] = "qwen3", [FAMILY_GEMMA3] = "gemma3"};
enum { ROPE_LLAMA3, ROPE_LINEAR };
static const char *const rope_type_names[] = {"llama3", "linear"};
static const char *const layer_type_names[] = {"full_attention", "sliding_attention"};

const char *spec_family_name(spec_family family) {
    if ((unsigned)family < SPEC_FAMILY_N) return family_names[family];
    return "?";
}

static void load_rope_scaling(spec_ctx *c, const field_val *at, hzc_spec *spec, int family_ok) {
    field_val v[SPEC_ROPE_N];
    if (spec_is_null(at->value)) return; /* "rope_scaling:" with nothing = no scaling */
    if (!spec_load_section(c, SEC_ROPE, at->key, at->value, spec, v)) return;
    int t = -1;
    if (v[RS_TYPE].value)
        t = spec_parse_choice(c, "type", v[RS_TYPE].value, rope_type_names, 2,
                              "unsupported rope_scaling type");
    int gemma = spec->family == FAMILY_GEMMA3;
    if (t == ROPE_LINEAR) {
        if (family_ok && !gemma)
            spec_error(c, v[RS_TYPE].value, "type: linear rope scaling is supported for family "
                       "gemma3 only (its full-attention layers); %s uses llama3",
                       spec_family_name(spec->family));
        spec->rope_linear = 1;
        for (int k = RS_LOW; k <= RS_ORIG; k++)
            if (v[k].key)
                spec_error(c, v[k].key, "%s: not a key of linear rope scaling (it has only "
                           "factor)", spec_rope_fields[k].key);
        return;
    }
    if (t != ROPE_LLAMA3) return;
    if (family_ok && gemma)
        spec_error(c, v[RS_TYPE].value, "type: gemma3 takes linear rope scaling, not llama3");
    spec->rope_llama3 = 1;
    for (int k = RS_LOW; k <= RS_ORIG; k++)
        if (!v[k].key)
            spec_error(c, at->key, "rope_scaling: missing required key '%s' (of llama3 scaling)",
                       spec_rope_fields[k].key);
    /* llama3 scaling blends between the two wavelength bounds: high must exceed low */
    if (v[RS_LOW].ok && v[RS_HIGH].ok && spec->rope_high_freq_factor <= spec->rope_low_freq_factor)
        spec_error(c, v[RS_HIGH].value,
                   "high_freq_factor (%g) must be greater than low_freq_factor (%g)",
                   spec->rope_high_freq_factor, spec->rope_low_freq_factor);
}

/* layer_types: one of full_attention / sliding_attention per layer, into spec->sliding. */
static int load_layer_types(spec_ctx *c, const field_val *v, hzc_spec *spec, int layers_ok) {
    char buf[48];
    const yml_node *seq = v[A_LAYER_TYPES].value;
    if (seq->kind != YML_SEQUENCE) {
        spec_error(c, seq, "layer_types: expected a list of full_attention and "
                   "sliding_attention, one per layer, got %s", spec_describe(seq, buf));
        return 0;
    }
    if (layers_ok && seq->n != spec->L) {
        spec_error(c, seq, "layer_types: %d entries for %lld layers (num_layers); give one per "
                   "layer", seq->n, (long long)spec->L);
        return 0;
    }
    int ok = 1;
    for (int i = 0; i < seq->n; i++) {
        int t = spec_parse_choice(c, "layer_types", seq->items[i], layer_type_names, 2,
                                  "unknown attention type");
        if (t < 0) ok = 0;
        else if (i < SPEC_MAX_LAYERS) spec->sliding[i] = (unsigned char)t;
    }
    return ok;
}

/* Gemma 3's keys: refused for the other families, defaulted and cross-checked for gemma3. */
static void load_gemma(spec_ctx *c, const field_val *v, hzc_spec *spec, int family_ok) {
    static const int only[] = {A_ROPE_LOCAL, A_QPAS, A_WINDOW, A_PATTERN, A_LAYER_TYPES};
    if (!family_ok) return;
    if (spec->family != FAMILY_GEMMA3) {
        for (size_t i = 0; i < sizeof only / sizeof *only; i++)
            if (v[only[i]].key)
                spec_error(c, v[only[i]].key, "%s: only for family gemma3 (%s computes full "
                           "causal attention with one RoPE base)", spec_arch_fields[only[i]].key,
                           spec_family_name(spec->family));
        return;
    }
    if (v[A_QK_NORM].value && v[A_QK_NORM].ok && !spec->qk_norm)
        spec_error(c, v[A_QK_NORM].value, "qk_norm: gemma3 always has q/k norms; remove the key "
                   "or set it true");
    if (v[A_QKV_BIAS].value && v[A_QKV_BIAS].ok && spec->qkv_bias)
        spec_error(c, v[A_QKV_BIAS].value, "qkv_bias: gemma3 has no q/k/v biases; remove the key "
                   "or set it false");
    if (!v[A_QPAS].value) spec->query_pre_attn_scalar = (double)spec->HD;
    int layers_ok = v[A_LAYERS].ok;
    if (v[A_PATTERN].value && v[A_LAYER_TYPES].value) {
        spec_error(c, v[A_LAYER_TYPES].key, "layer_types and sliding_window_pattern together: "
                   "give one of them");
        return;
    }
    int typed = v[A_LAYER_TYPES].value && load_layer_types(c, v, spec, layers_ok);
    if (!v[A_WINDOW].value) {
        const field_val *at = v[A_PATTERN].value ? &v[A_PATTERN] : &v[A_LAYER_TYPES];
        if (at->key)
            spec_error(c, at->key, "%s: needs sliding_window (the local layers' window)",
                       at == &v[A_PATTERN] ? "sliding_window_pattern" : "layer_types");
        memset(spec->sliding, 0, sizeof spec->sliding);
        return;
    }
    if (typed || !layers_ok || !v[A_WINDOW].ok) return;
    if (!v[A_PATTERN].value) spec->window_pattern = 6;
    if (v[A_PATTERN].value && !v[A_PATTERN].ok) return;
    /* transformers: layer i is global when (i + 1) % pattern == 0 */
    for (int64_t i = 0; i < spec->L; i++) spec->sliding[i] = (i + 1) % spec->window_pattern != 0;
}

void spec_load_architecture(spec_ctx *c, const field_val *at, hzc_spec *spec) {
    field_val v[SPEC_ARCH_N];
    if (!spec_load_section(c, SEC_ARCH, at->key, at->value, spec, v)) return;
    int family_ok = 0;
    if (v[A_FAMILY].value) {
        int f = spec_parse_choice(c, "family", v[A_FAMILY].value, family_names, SPEC_FAMILY_N,
                                  "unknown family");
        if (f >= 0) {
            spec->family = (spec_family)f;
            family_ok = 1;
        }
    }
    int gemma = family_ok && spec->family == FAMILY_GEMMA3;
    if (v[A_ROPE_SCALING].value) load_rope_scaling(c, &v[A_ROPE_SCALING], spec, family_ok);
    if (!v[A_QKV_BIAS].value && family_ok) spec->qkv_bias = spec->family == FAMILY_QWEN2;
    if (!v[A_QK_NORM].value && family_ok)
        spec->qk_norm = spec->family == FAMILY_QWEN3 || gemma;
    if (!v[A_TIED].value && gemma) spec->tied = 1; /* every Gemma 3 ties its embeddings */
    if (!gemma && spec->qk_norm && spec->qkv_bias && (v[A_QK_NORM].value || v[A_QKV_BIAS].value))
        spec_error(c, v[A_QK_NORM].value ? v[A_QK_NORM].value : v[A_QKV_BIAS].value,
                   "qk_norm and qkv_bias together are no transformers model (Qwen3 has the norms "
                   "and no biases, Qwen2 the biases and no norms); set one of them false");

    /* num_kv_heads defaults to num_heads (plain multi-head attention) */
    int nkv_ok = v[A_KV_HEADS].value ? v[A_KV_HEADS].ok : v[A_HEADS].ok;
    if (!v[A_KV_HEADS].value) spec->NKV = spec->NH;
    if (nkv_ok && v[A_HEADS].ok && spec->NH % spec->NKV != 0)
        spec_error(c, v[A_KV_HEADS].value,
                   "num_heads (%lld) must be a multiple of num_kv_heads (%lld): each kv head "
                   "serves a whole group of query heads",
                   (long long)spec->NH, (long long)spec->NKV);

    /* head_dim defaults to hidden_size / num_heads, which must then divide exactly */
    if (v[A_HEAD_DIM].value) {
        if (v[A_HEAD_DIM].ok && spec->HD % 2 != 0)
            spec_error(c, v[A_HEAD_DIM].value,
                       "head_dim (%lld) must be even: RoPE rotates the two halves of each head",
                       (long long)spec->HD);
    } else if (v[A_HIDDEN].ok && v[A_HEADS].ok) {
        if (spec->C % spec->NH != 0) {
            spec_error(c, v[A_HIDDEN].value,
                       "hidden_size (%lld) is not num_heads (%lld) * head_dim; set head_dim "
                       "explicitly, or make hidden_size a multiple of num_heads",
                       (long long)spec->C, (long long)spec->NH);
        } else {
            spec->HD = spec->C / spec->NH;
            if (spec->HD % 2 != 0)
                spec_error(c, v[A_HIDDEN].value,
                           "head_dim = hidden_size / num_heads = %lld must be even: RoPE rotates "
                           "the two halves of each head; set head_dim explicitly",
                           (long long)spec->HD);
        }
    }
    load_gemma(c, v, spec, family_ok);
}

/* Norm vectors of hidden size per layer: two, or Gemma 3's four. */
static int64_t layer_norms_n(const hzc_spec *s) { return s->family == FAMILY_GEMMA3 ? 4 : 2; }

int64_t spec_param_count(const hzc_spec *s) {
    int64_t attn = s->C * s->NH * s->HD + 2 * s->C * s->NKV * s->HD + s->NH * s->HD * s->C;
    int64_t bias = s->qkv_bias ? s->NH * s->HD + 2 * s->NKV * s->HD : 0;
    int64_t layer = layer_norms_n(s) * s->C + attn + 3 * s->C * s->F + bias +
                    (s->qk_norm ? 2 * s->HD : 0);
    return s->V * s->C + (s->tied ? 0 : s->V * s->C) + s->C + s->L * layer;
}

double spec_param_count_fp(const hzc_spec *s) {
    double C = (double)s->C, NH = (double)s->NH, NKV = (double)s->NKV, HD = (double)s->HD;
    double layer = (double)layer_norms_n(s) * C + 2 * C * NH * HD + 2 * C * NKV * HD +
                   3 * C * (double)s->F + (s->qkv_bias ? NH * HD + 2 * NKV * HD : 0) +
                   (s->qk_norm ? 2 * HD : 0);
    return (double)s->V * C * (s->tied ? 1 : 2) + C + (double)s->L * layer;
}
