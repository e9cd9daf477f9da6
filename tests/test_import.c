/* tests/test_import.c - hzc import of the newer families: Qwen3 config.json files in the
 * layouts transformers 4 and 5 save (head_dim apart from hidden / heads, tied and untied,
 * rope_parameters), the spec they give and its exact parameter count, and the configs that
 * are refused by name (mixture-of-experts, Gemma, softcaps, Qwen3's attention_bias). */
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "spec.h"
#include "test.h"

/* Qwen/Qwen3-0.6B's config.json as transformers 4.51 wrote it. */
static const char *qwen3_06b =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"head_dim\": 128, \"hidden_act\": \"silu\","
    " \"hidden_size\": 1024, \"initializer_range\": 0.02, \"intermediate_size\": 3072,"
    " \"max_position_embeddings\": 40960, \"max_window_layers\": 28, \"model_type\": \"qwen3\","
    " \"num_attention_heads\": 16, \"num_hidden_layers\": 28, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-06, \"rope_scaling\": null, \"rope_theta\": 1000000, \"sliding_window\": null,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.51.0\","
    " \"use_cache\": true, \"use_sliding_window\": false, \"vocab_size\": 151936}";

/* A Qwen3-8B shape as transformers 5 saves it: rope_parameters, layer_types, dtype. */
static const char *qwen3_8b_v5 =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, \"dtype\": \"bfloat16\","
    " \"head_dim\": 128, \"hidden_act\": \"silu\", \"hidden_size\": 4096, \"intermediate_size\": 12288,"
    " \"layer_types\": [\"full_attention\", \"full_attention\", \"full_attention\", \"full_attention\"],"
    " \"max_position_embeddings\": 40960, \"model_type\": \"qwen3\", \"num_attention_heads\": 32,"
    " \"num_hidden_layers\": 36, \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-06,"
    " \"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"},"
    " \"tie_word_embeddings\": false, \"use_sliding_window\": false, \"vocab_size\": 151936}";

static int has(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

/* Import TEXT; the errors go to *MSG (malloc'd), the spec (when written) to *S. Returns the
 * errors of import and spec_load together. */
static int import_text(const char *name, const char *text, hzc_spec *s, char **msg)
{
    size_t n = 0;
    FILE *e = open_memstream(msg, &n);
    int errs = 0;
    char *yaml = import_config_yaml(text, strlen(text), name, name, e, &errs);
    if (yaml) {
        const char *path = test_tmp("%s.yaml", name);
        test_write(path, yaml, strlen(yaml));
        errs += spec_load(path, s, e);
        free(yaml);
    } else if (!errs) {
        errs = 1;
    }
    fclose(e);
    for (char *p = *msg; p && *p; p++)
        if (*p == '\n') *p = ' ';
    return errs;
}

static void good(void)
{
    hzc_spec s;
    char *msg = NULL;
    int errs = import_text("qwen3-0.6b", qwen3_06b, &s, &msg);
    CHECK(errs == 0 && s.family == FAMILY_QWEN3 && s.qk_norm && !s.qkv_bias && s.tied &&
              s.HD == 128 && s.NH == 16 && s.NKV == 8 && s.C == 1024 && s.rope_theta == 1e6 &&
              s.norm_eps == 1e-6 && !s.rope_llama3,
          "Qwen3-0.6B (transformers 4): qwen3, q/k norms, no biases, tied, head_dim 128 with "
          "hidden 1024 and 16 heads, theta 1e6 (%s)", msg);
    CHECK(errs == 0 && spec_param_count(&s) == 596049920LL, "Qwen3-0.6B: %lld parameters, want 596049920",
          (long long)spec_param_count(&s));
    free(msg);

    msg = NULL;
    errs = import_text("qwen3-8b", qwen3_8b_v5, &s, &msg);
    CHECK(errs == 0 && s.family == FAMILY_QWEN3 && s.qk_norm && !s.tied && s.rope_theta == 1e6 &&
              spec_param_count(&s) == 8190735360LL && s.T == 2048 && s.step_tokens == 65536,
          "Qwen3-8B (transformers 5: rope_parameters, layer_types): untied, theta 1e6 from inside, "
          "%lld parameters, want 8190735360 (%s)", (long long)spec_param_count(&s), msg);
    free(msg);
}

/* TEXT is refused, the message saying PHRASE. */
static void bad(const char *name, const char *text, const char *phrase)
{
    hzc_spec s;
    char *msg = NULL;
    int errs = import_text(name, text, &s, &msg);
    CHECK(errs > 0 && has(msg, phrase), "%s: refused saying '%s': %s", name, phrase, msg);
    free(msg);
}

static void refused(void)
{
    char buf[2048];
    bad("qwen3-moe", "{\"architectures\": [\"Qwen3MoeForCausalLM\"], \"model_type\": \"qwen3_moe\"}",
        "\"Qwen3MoeForCausalLM\" is a mixture-of-experts model");
    bad("mixtral", "{\"model_type\": \"mixtral\"}", "\"mixtral\" is a mixture-of-experts model");
    bad("gemma2", "{\"architectures\": [\"Gemma2ForCausalLM\"]}", "\"Gemma2ForCausalLM\" is Gemma");
    bad("llava", "{\"architectures\": [\"LlavaForConditionalGeneration\"]}", "is a multimodal model");
    snprintf(buf, sizeof buf, "%s", qwen3_06b);
    memcpy(strstr(buf, "\"attention_bias\": false"), "\"attention_bias\": true ", 23);
    bad("qwen3-bias", buf, "attention_bias: true is not supported: transformers' Qwen3 then gives "
                           "o_proj a bias too");
    snprintf(buf, sizeof buf, "%.*s, \"final_logit_softcapping\": 30.0}", (int)strlen(qwen3_06b) - 1,
             qwen3_06b);
    bad("softcap", buf, "final_logit_softcapping: 30.0 is not supported");
    snprintf(buf, sizeof buf, "%.*s, \"num_experts\": 128}", (int)strlen(qwen3_06b) - 1, qwen3_06b);
    bad("experts", buf, "num_experts: 128 experts is a mixture-of-experts model");
    snprintf(buf, sizeof buf, "%s", qwen3_8b_v5);
    memcpy(strstr(buf, "\"default\""), "\"yarn\"   ", 9);
    bad("qwen3-yarn", buf, "rope type \"yarn\" is not supported");
    const char *last = strstr(qwen3_8b_v5, "\"full_attention\"]");
    snprintf(buf, sizeof buf, "%.*s\"chunked_attention\"%s", (int)(last - qwen3_8b_v5), qwen3_8b_v5,
             last + strlen("\"full_attention\""));
    bad("layer-types", buf, "layer_types[3]: attention type \"chunked_attention\" is not supported");
}

/* tests/hf_configs/NAME.json (malloc'd, NUL-terminated), or NULL. */
static char *fixture(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "tests/hf_configs/%s.json", name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = calloc(1, 1 << 16);
    size_t n = text ? fread(text, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (text) text[n] = 0;
    return text;
}

/* Gemma 3: the published 1B config (transformers 4), the 4B multimodal one (its text_config
 * lists only what differs from Gemma3TextConfig), a 12B in transformers 5's layout
 * (rope_parameters per layer type, layer_types) and a small one whose layer_types follow no
 * pattern. Counts: the published totals less the vision tower and projector. */
static void gemma3(void)
{
    hzc_spec s;
    char *msg = NULL, *text = fixture("gemma3-1b");
    int errs = text ? import_text("gemma3-1b", text, &s, &msg) : 1;
    CHECK(errs == 0 && s.family == FAMILY_GEMMA3 && s.qk_norm && s.tied && s.V == 262144 &&
              s.HD == 256 && s.NH == 4 && s.NKV == 1 && s.sliding_window == 512 &&
              s.window_pattern == 6 && s.sliding[0] && !s.sliding[5] && s.sliding[6] &&
              s.query_pre_attn_scalar == 256 && s.rope_theta == 1e6 && s.rope_local_theta == 1e4 &&
              !s.rope_linear && s.norm_eps == 1e-6 && spec_param_count(&s) == 999885952LL,
          "Gemma 3 1B (transformers 4): window 512, every 6th layer global, bases 1e6 and 1e4, "
          "%lld parameters, want 999885952 (%s)", (long long)spec_param_count(&s), msg ? msg : "");
    free(msg);
    free(text);

    msg = NULL;
    text = fixture("gemma3-4b-multimodal");
    errs = text ? import_text("gemma3-4b", text, &s, &msg) : 1;
    CHECK(errs == 0 && s.family == FAMILY_GEMMA3 && s.V == 262208 && s.C == 2560 && s.L == 34 &&
              s.NH == 8 && s.NKV == 4 && s.HD == 256 && s.F == 10240 && s.rope_linear &&
              s.rope_factor == 8 && s.sliding_window == 1024 && s.tied &&
              spec_param_count(&s) == 3880263168LL,
          "Gemma 3 4B (Gemma3ForConditionalGeneration): text_config with Gemma3TextConfig's "
          "defaults, linear rope x8, %lld parameters, want 3880263168 (%s)",
          (long long)spec_param_count(&s), msg ? msg : "");
    free(msg);
    free(text);

    msg = NULL;
    text = fixture("gemma3-12b-v5");
    errs = text ? import_text("gemma3-12b", text, &s, &msg) : 1;
    CHECK(errs == 0 && s.family == FAMILY_GEMMA3 && s.rope_linear && s.rope_factor == 8 &&
              s.rope_theta == 1e6 && s.rope_local_theta == 1e4 && s.window_pattern == 6 &&
              !s.sliding[47] && s.sliding[46] && spec_param_count(&s) == 11766034176LL,
          "Gemma 3 12B (transformers 5: rope_parameters per layer type, layer_types): pattern 6, "
          "linear x8 on full_attention, %lld parameters, want 11766034176 (%s)",
          (long long)spec_param_count(&s), msg ? msg : "");
    free(msg);

    char buf[8192];
    snprintf(buf, sizeof buf, "%s", text ? text : "");
    char *at = strstr(buf, "\"attn_logit_softcapping\": null");
    if (at) memcpy(at, "\"attn_logit_softcapping\": 50.0", 30);
    bad("gemma3-softcap", buf, "attn_logit_softcapping: 50.0 is not supported");
    snprintf(buf, sizeof buf, "%s", text ? text : "");
    if ((at = strstr(buf, "\"linear\""))) memcpy(at, "\"yarn\"  ", 8);
    bad("gemma3-yarn", buf, "rope_parameters.full_attention: rope type \"yarn\" is not supported");
    snprintf(buf, sizeof buf, "%s", text ? text : "");
    if ((at = strstr(buf, "\"gelu_pytorch_tanh\""))) memcpy(at, "\"gelu\"             ", 19);
    bad("gemma3-gelu", buf, "hidden_activation: \"gelu\" is not supported");
    snprintf(buf, sizeof buf, "%s", text ? text : "");
    if ((at = strstr(buf, "\"use_bidirectional_attention\": false")))
        memcpy(at, "\"use_bidirectional_attention\": true ", 36);
    bad("gemma3-bidi", buf, "use_bidirectional_attention: true is not supported");
    snprintf(buf, sizeof buf, "%s", text ? text : "");
    if ((at = strstr(buf, "\"num_hidden_layers\": 48"))) memcpy(at, "\"num_hidden_layers\": 47", 23);
    bad("gemma3-layers", buf, "layer_types: expected a list of 47 attention types");
    free(text);

    msg = NULL;
    text = fixture("gemma3-tiny-v5");
    errs = text ? import_text("gemma3-tiny", text, &s, &msg) : 1;
    CHECK(errs == 0 && s.L == 4 && s.sliding[0] && !s.sliding[1] && !s.sliding[2] && s.sliding[3] &&
              s.query_pre_attn_scalar == 24 && s.HD == 32,
          "Gemma 3 with layer_types that follow no pattern: written as layer_types (%s)",
          msg ? msg : "");
    free(msg);
    free(text);
    bad("gemma3-mm-no-text", "{\"architectures\": [\"Gemma3ForConditionalGeneration\"]}",
        "missing required key 'text_config'");
}

int main(void)
{
    if (test_tmp_open("import") != 0) return 1;
    good();
    refused();
    gemma3();
    test_tmp_close();
    TEST_END();
}
