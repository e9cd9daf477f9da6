/* compiler/import.c - hzc import (see import.h). Reads a transformers config.json with
 * jansson, checks that hzc computes exactly that model (architecture, activation, biases,
 * rope scaling), applies the spec's own rules (docs/spec.md) so that what it writes always
 * loads, and writes the YAML with shape and training defaults:
 *
 *   parameters     seq_len  tokens_per_micro_batch  tokens_per_step  (as in models/)
 *   >= 1e9         2048     8192                    65536            llama3-8b, mistral-7b
 *   >= 1e8         2048     8192                    32768            qwen2.5-0.5b
 *   smaller        512      4096                    16384            test and toy models
 *
 * seq_len is capped by max_position_embeddings and, but for Gemma 3, whose local layers are
 * modelled, by a sliding window (up to the window, windowed attention is full causal
 * attention); the token counts are then rounded down to whole sequences and whole
 * micro-batches. Gemma 3's own keys are read in import_gemma.c, the values by key in
 * import_json.c. Architectures that are known but not modelled (mixture-of-experts, Gemma
 * and Gemma 2, vision-language) and options hzc does not compute (logit softcaps, rope
 * types other than llama3 and Gemma 3's linear) are refused by name. The training section
 * is the spec's defaults with lr 1e-5, 100 warmup and 10000 decay steps: continued
 * training or fine-tuning of the released weights. */
#include "import.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import_read.h"
#include "spec.h"
#include "yml.h"

static const struct {
    const char *arch, *model_type;
} families[] = {
    [FAMILY_LLAMA] = {"LlamaForCausalLM", "llama"},
    [FAMILY_QWEN2] = {"Qwen2ForCausalLM", "qwen2"},
    [FAMILY_MISTRAL] = {"MistralForCausalLM", "mistral"},
    [FAMILY_QWEN3] = {"Qwen3ForCausalLM", "qwen3"},
    [FAMILY_GEMMA3] = {"Gemma3ForCausalLM", "gemma3_text"},
};
#define FAMILY_N 5
/* A Gemma 3 multimodal checkpoint: its text model, in text_config, is what hzc trains. */
#define GEMMA3_MM_ARCH "Gemma3ForConditionalGeneration"
#define GEMMA3_MM_TYPE "gemma3"

/* Why a known architecture that hzc does not model is refused: a class-name fragment (or
 * a model_type) and the reason. */
static const struct {
    const char *fragment, *why;
} refused[] = {
    {"Moe", "a mixture-of-experts model (hzc trains dense decoders)"},
    {"Mixtral", "a mixture-of-experts model (hzc trains dense decoders)"},
    {"Gemma", "Gemma or Gemma 2, which hzc does not model (logit softcaps, other layer "
              "patterns); it trains Gemma 3 (Gemma3ForCausalLM, Gemma3ForConditionalGeneration)"},
    {"ConditionalGeneration", "a multimodal model (hzc trains text decoders)"},
    {"VL", "a vision-language model (hzc trains text decoders)"},
};

/* The reason NAME (an architecture or model_type) is refused, or NULL when unknown. */
static const char *refusal(const char *name)
{
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        if (strstr(name, refused[i].fragment)) return refused[i].why;
    char low[64];
    size_t n = strlen(name) < sizeof low - 1 ? strlen(name) : sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    low[n] = 0;
    if (strstr(low, "moe") || strstr(low, "mixtral")) return refused[0].why;
    if (strstr(low, "gemma")) return refused[2].why;
    return NULL;
}

/* The family from "architectures" (or "model_type" when there is none); -1 if unsupported. */
static int read_family(imp *c, json_t *root, const char **arch_out)
{
    char buf[48];
    json_t *archs = imp_get(root, "architectures");
    const char *mt = imp_str(c, root, "", "model_type");
    int fam = -1;
    *arch_out = NULL;
    const char *a0 = json_string_value(json_array_get(archs, 0));
    if ((a0 && !strcmp(a0, GEMMA3_MM_ARCH)) || (!archs && mt && !strcmp(mt, GEMMA3_MM_TYPE))) {
        *arch_out = GEMMA3_MM_ARCH;
        if (mt && strcmp(mt, GEMMA3_MM_TYPE))
            imp_error(c, "model_type: %s does not match the architecture %s (model_type '%s')",
                      imp_shown(imp_get(root, "model_type"), buf), GEMMA3_MM_ARCH, GEMMA3_MM_TYPE);
        return FAMILY_GEMMA3;
    }
    if (archs) {
        if (!json_is_array(archs) || json_array_size(archs) == 0 ||
            !json_is_string(json_array_get(archs, 0))) {
            imp_error(c, "architectures: expected a list of class names, got %s", imp_shown(archs, buf));
            return -1;
        }
        const char *a = json_string_value(json_array_get(archs, 0));
        for (int f = 0; f < FAMILY_N; f++)
            if (!strcmp(a, families[f].arch)) fam = f;
        if (fam < 0) {
            const char *why = refusal(a);
            if (why)
                imp_error(c, "architectures: %s is %s", imp_shown(json_array_get(archs, 0), buf), why);
            else
                imp_error(c, "architectures: unsupported architecture %s (hzc supports "
                             "LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM, "
                             "Qwen3ForCausalLM, Gemma3ForCausalLM and the text model of "
                             "Gemma3ForConditionalGeneration)",
                          imp_shown(json_array_get(archs, 0), buf));
            return -1;
        }
        *arch_out = families[fam].arch;
        if (mt && strcmp(mt, families[fam].model_type))
            imp_error(c, "model_type: %s does not match the architecture %s (model_type '%s')",
                      imp_shown(imp_get(root, "model_type"), buf), a, families[fam].model_type);
        return fam;
    }
    if (!mt) {
        imp_error(c, "missing required key 'architectures' (or 'model_type')");
        return -1;
    }
    for (int f = 0; f < FAMILY_N; f++)
        if (!strcmp(mt, families[f].model_type)) fam = f;
    if (fam < 0 && refusal(mt))
        imp_error(c, "model_type: %s is %s", imp_shown(imp_get(root, "model_type"), buf), refusal(mt));
    else if (fam < 0)
        imp_error(c, "model_type: unsupported model type %s (hzc supports llama, qwen2, "
                     "mistral, qwen3, gemma3_text and gemma3)",
                  imp_shown(imp_get(root, "model_type"), buf));
    else
        *arch_out = families[fam].arch;
    return fam;
}

/* Rope scaling from KEY (transformers 4 "rope_scaling", or transformers 5 "rope_parameters",
 * which also holds rope_theta). Returns 0 when ok. */
static int read_rope(imp *c, json_t *rope, const char *key, hzc_spec *s)
{
    char where[40], buf[48];
    snprintf(where, sizeof where, "%s.", key);
    if (!json_is_object(rope)) {
        imp_error(c, "%s: expected a mapping, got %s", key, imp_shown(rope, buf));
        return -1;
    }
    const char *type = imp_str(c, rope, where, "rope_type");
    if (!type) type = imp_str(c, rope, where, "type");
    if (!type || !strcmp(type, "default")) return 0;
    if (strcmp(type, "llama3")) {
        imp_error(c, "%s: rope type %s is not supported (hzc models plain RoPE and llama3 "
                     "scaling; not yarn, linear, dynamic, longrope, ...)",
                  key, imp_shown(imp_get(rope, imp_get(rope, "rope_type") ? "rope_type" : "type"), buf));
        return -1;
    }
    s->rope_llama3 = 1;
    int ok = imp_pos(c, rope, where, "factor", 1, &s->rope_factor);
    ok &= imp_pos(c, rope, where, "low_freq_factor", 1, &s->rope_low_freq_factor);
    ok &= imp_pos(c, rope, where, "high_freq_factor", 1, &s->rope_high_freq_factor);
    ok &= imp_size(c, rope, where, "original_max_position_embeddings", 1, &s->rope_original_max_pos);
    if (ok && s->rope_high_freq_factor <= s->rope_low_freq_factor) {
        imp_error(c, "%shigh_freq_factor (%g) must be greater than low_freq_factor (%g)", where,
                  s->rope_high_freq_factor, s->rope_low_freq_factor);
        ok = 0;
    }
    return ok ? 0 : -1;
}

/* Fill S's architecture from ROOT. WINDOW: a sliding window to respect (0 = none). */
static void read_architecture(imp *c, json_t *root, hzc_spec *s, int64_t *max_pos,
                              int64_t *window, notes *nt)
{
    char buf[48];
    int ok = imp_size(c, root, "", "vocab_size", 1, &s->V);
    ok &= imp_size(c, root, "", "hidden_size", 1, &s->C);
    ok &= imp_size(c, root, "", "num_hidden_layers", 1, &s->L);
    ok &= imp_size(c, root, "", "num_attention_heads", 1, &s->NH);
    ok &= imp_size(c, root, "", "intermediate_size", 1, &s->F);
    s->NKV = s->NH;
    if (imp_get(root, "num_key_value_heads"))
        ok &= imp_size(c, root, "", "num_key_value_heads", 0, &s->NKV);
    if (imp_get(root, "head_dim")) {
        ok &= imp_size(c, root, "", "head_dim", 0, &s->HD);
    } else if (ok) {
        if (s->C % s->NH) {
            imp_error(c, "hidden_size (%lld) is not a multiple of num_attention_heads (%lld) "
                         "and head_dim is not given", (long long)s->C, (long long)s->NH);
            ok = 0;
        }
        s->HD = s->C / s->NH;
    }
    if (ok && s->NH % s->NKV) {
        imp_error(c, "num_attention_heads (%lld) must be a multiple of num_key_value_heads (%lld)",
                  (long long)s->NH, (long long)s->NKV);
        ok = 0;
    }
    if (ok && s->HD % 2) {
        imp_error(c, "head_dim (%lld) must be even: RoPE rotates the two halves of each head",
                  (long long)s->HD);
        ok = 0;
    }
    s->norm_eps = 1e-6; /* LlamaConfig, Qwen2Config and MistralConfig all default to 1e-6 */
    imp_pos(c, root, "", "rms_norm_eps", 0, &s->norm_eps);
    s->tied = imp_bool(c, root, "tie_word_embeddings", 0);

    const char *act = imp_str(c, root, "", "hidden_act");
    if (act && strcmp(act, "silu"))
        imp_error(c, "hidden_act: %s is not supported (hzc's MLP is SwiGLU with silu)",
                  imp_shown(imp_get(root, "hidden_act"), buf));
    if (s->family == FAMILY_QWEN2) {
        s->qkv_bias = 1; /* Qwen2's q, k and v projections always have biases, o_proj none */
    } else if (s->family == FAMILY_LLAMA || s->family == FAMILY_QWEN3) {
        if (imp_bool(c, root, "attention_bias", 0))
            imp_error(c, "attention_bias: true is not supported: transformers' %s then gives "
                         "o_proj a bias too, which hzc does not model (Qwen2 has q/k/v biases only)",
                      s->family == FAMILY_LLAMA ? "Llama" : "Qwen3");
        if (s->family == FAMILY_LLAMA && imp_bool(c, root, "mlp_bias", 0))
            imp_error(c, "mlp_bias: true is not supported (hzc's MLP has no biases)");
    }
    s->qk_norm = s->family == FAMILY_QWEN3; /* Qwen3Attention always has q_norm and k_norm */
    /* options of other families that would change the computation if set */
    static const char *const softcaps[] = {"attn_logit_softcapping", "final_logit_softcapping"};
    for (int i = 0; i < 2; i++)
        if (imp_get(root, softcaps[i]))
            imp_error(c, "%s: %s is not supported (hzc does not cap logits)", softcaps[i],
                      imp_shown(imp_get(root, softcaps[i]), buf));
    json_t *experts = imp_get(root, "num_experts");
    if (!experts) experts = imp_get(root, "num_local_experts");
    if (experts && !(json_is_integer(experts) && json_integer_value(experts) <= 1))
        imp_error(c, "%s: %s experts is a mixture-of-experts model (hzc trains dense decoders)",
                  imp_get(root, "num_experts") ? "num_experts" : "num_local_experts",
                  imp_shown(experts, buf));

    /* rope: transformers 5 "rope_parameters" (holding rope_theta), else 4's keys */
    s->rope_theta = 10000.0;
    json_t *rp = imp_get(root, "rope_parameters");
    if (rp) {
        read_rope(c, rp, "rope_parameters", s);
        if (!json_is_object(rp) || !imp_get(rp, "rope_theta"))
            imp_pos(c, root, "", "rope_theta", 0, &s->rope_theta);
        else
            imp_pos(c, rp, "rope_parameters.", "rope_theta", 0, &s->rope_theta);
    } else {
        imp_pos(c, root, "", "rope_theta", 0, &s->rope_theta);
        json_t *rs = imp_get(root, "rope_scaling");
        if (rs) read_rope(c, rs, "rope_scaling", s);
    }

    *max_pos = 0;
    imp_size(c, root, "", "max_position_embeddings", 0, max_pos);
    *window = 0;
    int windowed = s->family == FAMILY_MISTRAL ||
                   ((s->family == FAMILY_QWEN2 || s->family == FAMILY_QWEN3) &&
                    imp_bool(c, root, "use_sliding_window", 0));
    /* transformers 5 lists each layer's attention; a sliding one bounds seq_len the same way */
    json_t *types = imp_get(root, "layer_types");
    for (size_t i = 0; json_is_array(types) && i < json_array_size(types); i++) {
        const char *t = json_string_value(json_array_get(types, i));
        if (t && !strcmp(t, "sliding_attention")) windowed = 1;
        else if (!t || strcmp(t, "full_attention"))
            imp_error(c, "layer_types[%zu]: attention type %s is not supported", i,
                      imp_shown(json_array_get(types, i), buf));
    }
    if (windowed && imp_size(c, root, "", "sliding_window", 0, window))
        imp_note(nt, "# Its sliding window (%lld tokens) is not modelled: at seq_len <= %lld, windowed\n"
                 "# attention is the same as full causal attention.\n",
             (long long)*window, (long long)*window);
}

/* Digits with thousands separators, for the header. */
static void fmt_count(char *buf, size_t n, int64_t x)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)x);
    size_t len = strlen(raw), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
}

static void choose_shape(hzc_spec *s, double params, int64_t max_pos, int64_t window)
{
    int64_t T = 512, micro = 4096, step = 16384;
    if (params >= 1e9) T = 2048, micro = 8192, step = 65536;
    else if (params >= 1e8) T = 2048, micro = 8192, step = 32768;
    if (max_pos > 0 && max_pos < T) T = max_pos;
    if (window > 0 && window < T) T = window;
    micro = micro / T > 0 ? micro / T * T : T;
    step = step / micro > 0 ? step / micro * micro : micro;
    s->T = T;
    s->micro_tokens = micro;
    s->step_tokens = step;
}

char *import_config_yaml(const char *text, size_t len, const char *src, const char *name,
                         FILE *err, int *errors_n)
{
    imp c = {src, err, 0, ""};
    hzc_spec s;
    memset(&s, 0, sizeof s);
    char *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        imp_error(&c, "not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        goto done;
    }
    if (!json_is_object(root)) {
        imp_error(&c, "expected a JSON object (a transformers config.json)");
        goto done;
    }
    const char *arch;
    int fam = read_family(&c, root, &arch);
    if (fam < 0) goto done;
    s.family = (spec_family)fam;
    int64_t max_pos, window = 0;
    notes nt = {{0}, 0};
    if (fam != FAMILY_GEMMA3) {
        read_architecture(&c, root, &s, &max_pos, &window, &nt);
    } else if (!strcmp(arch, GEMMA3_MM_ARCH)) {
        json_t *tc = imp_get(root, "text_config");
        if (!json_is_object(tc)) {
            char buf[48];
            if (tc) imp_error(&c, "text_config: expected a mapping, got %s", imp_shown(tc, buf));
            else imp_error(&c, "missing required key 'text_config' (the text model of %s)", arch);
            goto done;
        }
        c.where = "text_config.";
        import_gemma3(&c, tc, &s, &max_pos);
        c.where = "";
        imp_note(&nt, "# The text model of a Gemma 3 multimodal checkpoint; --init reads its language_model\n"
                      "# tensors and skips the vision tower.\n");
    } else {
        import_gemma3(&c, root, &s, &max_pos);
    }
    if (c.errors_n) goto done;
    double params = spec_param_count_fp(&s);
    if (params >= SPEC_MAX_PARAMS) {
        imp_error(&c, "the model has %.3g parameters; hzc handles fewer than 2^50", params);
        goto done;
    }
    choose_shape(&s, params, max_pos, window);

    size_t size = 0;
    FILE *o = open_memstream(&out, &size);
    if (!o) {
        imp_error(&c, "out of memory");
        goto done;
    }
    char num[64], count[40], clean[256];
    snprintf(clean, sizeof clean, "%s", src);
    for (char *p = clean; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    fmt_count(count, sizeof count, spec_param_count(&s));
    fprintf(o, "# Imported by hzc import from %s (%s): %s parameters.\n", clean, arch, count);
    if (nt.len) fputs(nt.text, o);
    fprintf(o, "# shape: defaults for a model of this size; hzc plan SPEC --gpu-mem SIZE tells "
               "whether\n# they fit, and which knob to turn if not.\n");
    char nm[64];
    snprintf(nm, sizeof nm, "%s", name && *name ? name : "imported");
    for (char *p = nm; *p; p++)
        if (!strchr(SPEC_NAME_CHARS, *p)) *p = '_';
    fprintf(o, "name: %s\narchitecture:\n", nm);
    fprintf(o, "  family: %s\n", spec_family_name(s.family));
    fprintf(o, "  vocab_size: %lld\n", (long long)s.V);
    fprintf(o, "  hidden_size: %lld\n", (long long)s.C);
    fprintf(o, "  num_layers: %lld\n", (long long)s.L);
    fprintf(o, "  num_heads: %lld\n", (long long)s.NH);
    fprintf(o, "  num_kv_heads: %lld\n", (long long)s.NKV);
    fprintf(o, "  head_dim: %lld\n", (long long)s.HD);
    fprintf(o, "  ffn_size: %lld\n", (long long)s.F);
    imp_fmt_num(num, sizeof num, s.norm_eps);
    fprintf(o, "  norm_eps: %s\n", num);
    imp_fmt_num(num, sizeof num, s.rope_theta);
    fprintf(o, "  rope_theta: %s\n", num);
    if (s.rope_llama3) {
        fprintf(o, "  rope_scaling:\n    type: llama3\n");
        imp_fmt_num(num, sizeof num, s.rope_factor);
        fprintf(o, "    factor: %s\n", num);
        imp_fmt_num(num, sizeof num, s.rope_low_freq_factor);
        fprintf(o, "    low_freq_factor: %s\n", num);
        imp_fmt_num(num, sizeof num, s.rope_high_freq_factor);
        fprintf(o, "    high_freq_factor: %s\n", num);
        fprintf(o, "    original_max_position: %lld\n", (long long)s.rope_original_max_pos);
    }
    fprintf(o, "  tie_embeddings: %s\n", s.tied ? "true" : "false");
    fprintf(o, "  qkv_bias: %s\n", s.qkv_bias ? "true" : "false");
    if (s.qk_norm) fprintf(o, "  qk_norm: true\n");
    if (s.family == FAMILY_GEMMA3) import_gemma3_yaml(o, &s);
    fprintf(o, "shape:\n  seq_len: %lld\n  tokens_per_step: %lld\n  tokens_per_micro_batch: %lld\n",
            (long long)s.T, (long long)s.step_tokens, (long long)s.micro_tokens);
    fprintf(o, "training:\n"
               "  lr: 1e-5                 # continued training of the released weights; "
               "~3e-4 from scratch\n"
               "  beta1: 0.9\n  beta2: 0.95\n  eps: 1e-8\n  weight_decay: 0.1\n"
               "  grad_clip: 1.0\n  warmup_steps: 100\n  decay_steps: 10000\n"
               "  min_lr_ratio: 0.1\n  seed: 1337\n");
    if (fclose(o) != 0) {
        free(out);
        out = NULL;
        imp_error(&c, "out of memory");
    }
done:
    json_decref(root);
    if (c.errors_n > IMPORT_MAX_ERRORS)
        fprintf(err, "%s: %d more errors not shown\n", src, c.errors_n - IMPORT_MAX_ERRORS);
    if (errors_n) *errors_n = c.errors_n;
    if (c.errors_n) {
        free(out);
        out = NULL;
    }
    return out;
}

/* Read all of PATH (malloc'd, NUL-terminated); NULL with errno set on failure. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = yml_slurp(f, 64u << 20, len); /* a config.json is a few KiB */
    int e = errno;
    fclose(f);
    errno = e;
    return text;
}

int import_hf_config(const char *hf_dir, const char *out_yaml, FILE *err)
{
    char path[4096], tmp[4096], name[64];
    struct stat st;
    if (stat(hf_dir, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(path, sizeof path, "%s/config.json", hf_dir);
    else
        snprintf(path, sizeof path, "%s", hf_dir);
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text) {
        fprintf(err, "%s: error: cannot read: %s\n", path, strerror(errno));
        return 1;
    }
    spec_name_from_path(out_yaml, name);
    int errors_n = 0;
    char *yaml = import_config_yaml(text, len, path, name, err, &errors_n);
    free(text);
    if (!yaml) return errors_n ? errors_n : 1;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", out_yaml) >= (int)sizeof tmp) {
        fprintf(err, "%s: error: path too long\n", out_yaml);
        free(yaml);
        return 1;
    }
    FILE *f = fopen(tmp, "w");
    int bad = !f || fputs(yaml, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (f && fclose(f) != 0) bad = 1;
    free(yaml);
    if (bad) {
        fprintf(err, "%s: error: cannot write: %s\n", tmp, strerror(errno));
        unlink(tmp);
        return 1;
    }
    /* What import writes must load; a failure here is hzc's bug, shown with spec's words. */
    hzc_spec spec;
    char *msgs = NULL;
    size_t msgs_n = 0;
    FILE *m = open_memstream(&msgs, &msgs_n);
    int spec_errors = m ? spec_load(tmp, &spec, m) : 1;
    if (m) fclose(m);
    if (spec_errors) {
        fprintf(err, "%s: error: the spec written for it does not validate (a bug in hzc "
                     "import):\n%s", path, msgs ? msgs : "");
        free(msgs);
        unlink(tmp);
        return 1;
    }
    free(msgs);
    if (rename(tmp, out_yaml) != 0) {
        fprintf(err, "%s: error: cannot rename %s to it: %s\n", out_yaml, tmp, strerror(errno));
        unlink(tmp);
        return 1;
    }
    return 0;
}
