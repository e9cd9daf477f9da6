/* tests/test_spec.c - the YAML front end: every shipped model loads with the published
 * values, and every bad input in tests/bad/ is reported at the right FILE:LINE:COL with
 * the right phrase. Run from the repository root. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec.h"
#include "../runtime/hz.h"
#include "yml.h"
#include "test.h"

/* Load PATH into *spec, capturing the error text in a malloc'ed *text. */
static int load(const char *path, hzc_spec *spec, char **text) {
    size_t size = 0;
    FILE *err = open_memstream(text, &size);
    if (!err) {
        perror("open_memstream");
        exit(2);
    }
    int errors_n = spec_load(path, spec, err);
    fclose(err);
    return errors_n;
}

/* Number of lines of TEXT that contain " error: " or start with "PATH: error:". */
static int count_errors(const char *text) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, "error: ")) != NULL; p++) n++;
    return n;
}

/* Whether TEXT has a line that starts with PREFIX and also contains PHRASE. */
static int has_line(const char *text, const char *prefix, const char *phrase) {
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            const char *hit = strstr(line, phrase);
            if (hit && hit + strlen(phrase) <= line + len) return 1;
        }
        line += len + (end ? 1 : 0);
    }
    return 0;
}

/* Load a bad fixture; check the error count (want_n > 0: exactly; 0: at least one),
 * that each reported error is one printed line, and return the captured text. */
static char *expect_errors(const char *path, int want_n) {
    hzc_spec spec;
    char *text = NULL;
    int n = load(path, &spec, &text);
    if (want_n > 0)
        CHECK(n == want_n, "%s: %d errors reported, want %d", path, n, want_n);
    else
        CHECK(n > 0, "%s: %d errors reported, want > 0", path, n);
    CHECK(count_errors(text) == n, "%s: %d error lines printed for %d errors", path,
          count_errors(text), n);
    return text;
}

/* Check that TEXT has the line "FILE:LINE:COL: error: ..." containing PHRASE. */
static void expect_line(const char *text, const char *prefix, const char *phrase) {
    int ok = has_line(text, prefix, phrase);
    CHECK(ok, "line '%s' contains \"%s\"", prefix, phrase);
    if (!ok) printf("        got:\n%s", text);
}

/* One bad fixture with exactly one expected error. */
static void expect_one(const char *path, const char *prefix, const char *phrase) {
    char *text = expect_errors(path, 1);
    expect_line(text, prefix, phrase);
    free(text);
}

typedef struct {
    const char *path, *name;
    spec_family family;
    int64_t V, C, L, NH, NKV, HD, F;
    double norm_eps, rope_theta;
    int rope_llama3;
    double rope_factor;
    int tied, qkv_bias;
    int64_t T, step_tokens, micro_tokens;
    int64_t params_n; /* from the Hugging Face checkpoints */
    int qk_norm;
} model_want;

static const model_want models[] = {
    {"models/tiny.yaml", "tiny", FAMILY_LLAMA, 256, 128, 4, 4, 2, 32, 384, 1e-5, 1e4, 0, 0, 1, 0,
     128, 2048, 1024, 820352, 0},
    {"models/llama3-1b.yaml", "llama3-1b", FAMILY_LLAMA, 128256, 2048, 16, 32, 8, 64, 8192, 1e-5,
     5e5, 1, 32, 1, 0, 2048, 32768, 8192, 1235814400, 0},
    {"models/llama3-3b.yaml", "llama3-3b", FAMILY_LLAMA, 128256, 3072, 28, 24, 8, 128, 8192, 1e-5,
     5e5, 1, 32, 1, 0, 2048, 32768, 8192, 3212749824, 0},
    {"models/llama3-8b.yaml", "llama3-8b", FAMILY_LLAMA, 128256, 4096, 32, 32, 8, 128, 14336, 1e-5,
     5e5, 1, 8, 0, 0, 2048, 65536, 8192, 8030261248, 0},
    {"models/qwen2.5-0.5b.yaml", "qwen2.5-0.5b", FAMILY_QWEN2, 151936, 896, 24, 14, 2, 64, 4864,
     1e-6, 1e6, 0, 0, 1, 1, 2048, 32768, 8192, 494032768, 0},
    {"models/qwen2.5-7b.yaml", "qwen2.5-7b", FAMILY_QWEN2, 152064, 3584, 28, 28, 4, 128, 18944,
     1e-6, 1e6, 0, 0, 0, 1, 2048, 65536, 8192, 7615616512, 0},
    {"models/mistral-7b.yaml", "mistral-7b", FAMILY_MISTRAL, 32000, 4096, 32, 32, 8, 128, 14336,
     1e-5, 1e4, 0, 0, 0, 0, 2048, 65536, 8192, 7241732096, 0},
    {"models/qwen2.5-14b.yaml", "qwen2.5-14b", FAMILY_QWEN2, 152064, 5120, 48, 40, 8, 128, 13824,
     1e-5, 1e6, 0, 0, 0, 1, 2048, 65536, 8192, 14770033664, 0},
    {"models/llama3.1-70b.yaml", "llama3.1-70b", FAMILY_LLAMA, 128256, 8192, 80, 64, 8, 128,
     28672, 1e-5, 5e5, 1, 8, 0, 0, 2048, 65536, 8192, 70553706496, 0},
    {"models/qwen3-0.6b.yaml", "qwen3-0.6b", FAMILY_QWEN3, 151936, 1024, 28, 16, 8, 128, 3072,
     1e-6, 1e6, 0, 0, 1, 0, 2048, 32768, 8192, 596049920, 1},
    {"models/qwen3-8b.yaml", "qwen3-8b", FAMILY_QWEN3, 151936, 4096, 36, 32, 8, 128, 12288,
     1e-6, 1e6, 0, 0, 0, 0, 2048, 65536, 8192, 8190735360, 1},
    {"models/qwen3-14b.yaml", "qwen3-14b", FAMILY_QWEN3, 151936, 5120, 40, 40, 8, 128, 17408,
     1e-6, 1e6, 0, 0, 0, 0, 2048, 65536, 8192, 14768307200, 1},
    /* Gemma 3: the text models (published totals less the vision tower and projector) */
    {"models/gemma3-1b.yaml", "gemma3-1b", FAMILY_GEMMA3, 262144, 1152, 26, 4, 1, 256, 6912,
     1e-6, 1e6, 0, 0, 1, 0, 2048, 65536, 8192, 999885952, 1},
    {"models/gemma3-4b.yaml", "gemma3-4b", FAMILY_GEMMA3, 262208, 2560, 34, 8, 4, 256, 10240,
     1e-6, 1e6, 0, 0, 1, 0, 2048, 65536, 8192, 3880263168, 1},
    {"models/gemma3-12b.yaml", "gemma3-12b", FAMILY_GEMMA3, 262208, 3840, 48, 16, 8, 256, 15360,
     1e-6, 1e6, 0, 0, 1, 0, 2048, 65536, 8192, 11766034176, 1},
    {"models/gemma3-27b.yaml", "gemma3-27b", FAMILY_GEMMA3, 262208, 5376, 62, 32, 16, 128, 21504,
     1e-6, 1e6, 0, 0, 1, 0, 2048, 65536, 8192, 27009346304, 1},
};

static void test_models(void) {
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        const model_want *w = &models[i];
        hzc_spec s;
        char *text = NULL;
        int n = load(w->path, &s, &text);
        CHECK(n == 0, "%s: %d errors%s%s", w->path, n, n ? ":\n" : "", n ? text : "");
        free(text);
        CHECK(strcmp(s.name, w->name) == 0, "%s: name '%s' want '%s'", w->path, s.name, w->name);
        CHECK(s.family == w->family, "%s: family %s want %s", w->path, spec_family_name(s.family),
              spec_family_name(w->family));
        CHECK(s.V == w->V && s.C == w->C && s.L == w->L && s.F == w->F,
              "%s: V C L F = %lld %lld %lld %lld want %lld %lld %lld %lld", w->path,
              (long long)s.V, (long long)s.C, (long long)s.L, (long long)s.F, (long long)w->V,
              (long long)w->C, (long long)w->L, (long long)w->F);
        CHECK(s.NH == w->NH && s.NKV == w->NKV && s.HD == w->HD,
              "%s: NH NKV HD = %lld %lld %lld want %lld %lld %lld", w->path, (long long)s.NH,
              (long long)s.NKV, (long long)s.HD, (long long)w->NH, (long long)w->NKV,
              (long long)w->HD);
        CHECK_CLOSE("norm_eps", s.norm_eps, w->norm_eps, 0, 1e-12);
        CHECK_CLOSE("rope_theta", s.rope_theta, w->rope_theta, 0, 1e-12);
        CHECK(s.rope_llama3 == w->rope_llama3, "%s: rope_llama3 %d want %d", w->path,
              s.rope_llama3, w->rope_llama3);
        if (w->rope_llama3) {
            CHECK_CLOSE("rope_scaling.factor", s.rope_factor, w->rope_factor, 0, 0);
            CHECK(s.rope_low_freq_factor == 1 && s.rope_high_freq_factor == 4 &&
                      s.rope_original_max_pos == 8192,
                  "%s: rope low/high/original = %g %g %lld want 1 4 8192", w->path,
                  s.rope_low_freq_factor, s.rope_high_freq_factor,
                  (long long)s.rope_original_max_pos);
        }
        CHECK(s.tied == w->tied && s.qkv_bias == w->qkv_bias && s.qk_norm == w->qk_norm,
              "%s: tied %d qkv_bias %d qk_norm %d want %d %d %d", w->path, s.tied, s.qkv_bias,
              s.qk_norm, w->tied, w->qkv_bias, w->qk_norm);
        CHECK(s.T == w->T && s.step_tokens == w->step_tokens && s.micro_tokens == w->micro_tokens,
              "%s: seq_len, tokens per step, per micro-batch = %lld %lld %lld want %lld %lld %lld",
              w->path, (long long)s.T, (long long)s.step_tokens, (long long)s.micro_tokens,
              (long long)w->T, (long long)w->step_tokens, (long long)w->micro_tokens);
        CHECK(spec_param_count(&s) == w->params_n, "%s: %lld parameters want %lld", w->path,
              (long long)spec_param_count(&s), (long long)w->params_n);
    }

    /* the demo's training section, with numbers written as 2e-3 and 1e-8 */
    hzc_spec s;
    char *text = NULL;
    load("models/tiny.yaml", &s, &text);
    free(text);
    CHECK_CLOSE("tiny lr (3e-3)", s.lr, 3e-3, 0, 1e-15);
    CHECK_CLOSE("tiny eps (1e-8)", s.adam_eps, 1e-8, 0, 1e-15);
    CHECK_CLOSE("tiny weight_decay", s.weight_decay, 0.0, 0, 0);
    CHECK_CLOSE("tiny grad_clip", s.grad_clip, 1.0, 0, 0);
    CHECK(s.warmup_steps == 10 && s.decay_steps == 200, "tiny warmup %lld decay %lld want 10 200",
          (long long)s.warmup_steps, (long long)s.decay_steps);
}

/* Write TEXT to NAME in the scratch directory; returns the path. */
static const char *write_file(const char *name, const char *text) {
    const char *path = test_tmp("%s", name);
    test_write(path, text, strlen(text));
    return path;
}

/* Defaults of every optional key, the name from the file name, exponent-form numbers. */
static void test_defaults(void) {
    const char *path = write_file("minimal.yaml",
                                  "architecture:\n"
                                  "  family: qwen2\n"
                                  "  vocab_size: 1000\n"
                                  "  hidden_size: 64\n"
                                  "  num_layers: 2\n"
                                  "  num_heads: 4\n"
                                  "  ffn_size: 128\n"
                                  "  norm_eps: 2e-5\n"
                                  "shape:\n"
                                  "  seq_len: 16\n"
                                  "  tokens_per_step: 64\n"
                                  "training:\n"
                                  "  lr: 3e-4\n");
    hzc_spec s;
    char *text = NULL;
    int n = load(path, &s, &text);
    CHECK(n == 0, "minimal.yaml: %d errors %s", n, text);
    free(text);
    CHECK(strcmp(s.name, "minimal") == 0, "default name '%s' want 'minimal'", s.name);
    CHECK(s.NKV == 4 && s.HD == 16, "default NKV %lld HD %lld want 4 16", (long long)s.NKV,
          (long long)s.HD);
    CHECK(s.qkv_bias == 1 && s.tied == 0, "qwen2 defaults: qkv_bias %d tied %d want 1 0",
          s.qkv_bias, s.tied);
    CHECK(s.micro_tokens == 64, "default tokens_per_micro_batch %lld want 64",
          (long long)s.micro_tokens);
    CHECK_CLOSE("norm_eps 2e-5 is a number", s.norm_eps, 2e-5, 0, 1e-15);
    CHECK_CLOSE("lr 3e-4 is a number", s.lr, 3e-4, 0, 1e-15);
    CHECK_CLOSE("default rope_theta", s.rope_theta, 10000, 0, 0);
    CHECK(s.rope_llama3 == 0, "no rope_scaling: rope_llama3 %d", s.rope_llama3);
    CHECK_CLOSE("default beta1", s.beta1, 0.9, 0, 0);
    CHECK_CLOSE("default beta2", s.beta2, 0.95, 0, 0);
    CHECK_CLOSE("default eps", s.adam_eps, 1e-8, 0, 0);
    CHECK_CLOSE("default weight_decay", s.weight_decay, 0.1, 0, 0);
    CHECK_CLOSE("default grad_clip", s.grad_clip, 1.0, 0, 0);
    CHECK_CLOSE("default min_lr_ratio", s.min_lr_ratio, 0.1, 0, 0);
    CHECK(s.warmup_steps == 0 && s.decay_steps == 0 && s.seed == 1337,
          "default warmup %lld decay %lld seed %lld want 0 0 1337", (long long)s.warmup_steps,
          (long long)s.decay_steps, (long long)s.seed);
    unlink(path);
}

/* More than 50 errors: 50 printed, then a note with the rest; all counted. */
static void test_error_cap(void) {
    char body[4096] = "architecture:\n";
    for (int i = 0; i < 60; i++) snprintf(body + strlen(body), 64, "  zz_unknown_%02d: 1\n", i);
    const char *path = write_file("many.yaml", body);
    hzc_spec s;
    char *text = NULL;
    int n = load(path, &s, &text);
    /* 60 unknown keys + 6 missing architecture keys + missing shape */
    CHECK(n == 67, "many.yaml: %d errors counted, want 67", n);
    CHECK(count_errors(text) == 50, "many.yaml: %d error lines printed, want 50",
          count_errors(text));
    CHECK(strstr(text, "note: 17 more errors not shown") != NULL,
          "many.yaml: the note says how many were not shown");
    free(text);
    unlink(path);
}

static void test_bad_inputs(void) {
    char *t;

    expect_one("tests/bad/malformed.yaml", "tests/bad/malformed.yaml:4:2: error: ",
               "did not find expected key");
    expect_one("tests/bad/tab_indent.yaml", "tests/bad/tab_indent.yaml:2:1: error: ",
               "indent with spaces, not tabs");
    expect_one("tests/bad/empty.yaml", "tests/bad/empty.yaml:1:1: error: ",
               "empty model description");
    expect_one("tests/bad/does-not-exist.yaml", "tests/bad/does-not-exist.yaml: error: ",
               "cannot open: No such file or directory");
    expect_one("tests/bad/two_documents.yaml", "tests/bad/two_documents.yaml:3:1: error: ",
               "a second YAML document");
    expect_one("tests/bad/alias.yaml", "tests/bad/alias.yaml:7:13: error: ",
               "aliases (*h) are not supported");
    expect_one("tests/bad/top_sequence.yaml", "tests/bad/top_sequence.yaml:1:1: error: ",
               "expected a mapping");

    expect_one("tests/bad/unknown_key.yaml", "tests/bad/unknown_key.yaml:4:3: error: ",
               "unknown key 'hiden_size' in architecture; did you mean 'hidden_size'?");
    expect_one("tests/bad/wrong_section.yaml", "tests/bad/wrong_section.yaml:8:3: error: ",
               "unknown key 'seq_len' in architecture; it belongs in shape");
    expect_one("tests/bad/duplicate.yaml", "tests/bad/duplicate.yaml:8:3: error: ",
               "duplicate key 'hidden_size' (first given at 4:3)");

    t = expect_errors("tests/bad/missing.yaml", 2);
    expect_line(t, "tests/bad/missing.yaml:2:1: error: ", "missing required section 'shape'");
    expect_line(t, "tests/bad/missing.yaml:2:1: error: ",
                "architecture: missing required key 'ffn_size'");
    free(t);

    t = expect_errors("tests/bad/wrong_type.yaml", 5);
    expect_line(t, "tests/bad/wrong_type.yaml:3:15: error: ", "expected an integer, got 'abc'");
    expect_line(t, "tests/bad/wrong_type.yaml:5:15: error: ", "expected an integer, got '3.5'");
    expect_line(t, "tests/bad/wrong_type.yaml:6:14: error: ", "(quoted, so a string)");
    expect_line(t, "tests/bad/wrong_type.yaml:8:19: error: ", "expected true or false");
    expect_line(t, "tests/bad/wrong_type.yaml:9:13: error: ", "expected a number, got a sequence");
    free(t);

    t = expect_errors("tests/bad/nonpositive.yaml", 2);
    expect_line(t, "tests/bad/nonpositive.yaml:5:15: error: ", "num_layers: must be positive");
    expect_line(t, "tests/bad/nonpositive.yaml:7:13: error: ", "ffn_size: must be positive");
    free(t);

    expect_one("tests/bad/hidden_heads.yaml", "tests/bad/hidden_heads.yaml:4:16: error: ",
               "set head_dim");
    expect_one("tests/bad/heads_kv.yaml", "tests/bad/heads_kv.yaml:7:17: error: ",
               "num_heads (4) must be a multiple of num_kv_heads (3)");
    expect_one("tests/bad/head_dim_odd.yaml", "tests/bad/head_dim_odd.yaml:7:13: error: ",
               "head_dim (33) must be even");
    expect_one("tests/bad/step_micro.yaml", "tests/bad/step_micro.yaml:10:20: error: ",
               "tokens_per_step (3000) must be a multiple of tokens_per_micro_batch (1024)");
    expect_one("tests/bad/micro_seq.yaml", "tests/bad/micro_seq.yaml:11:27: error: ",
               "tokens_per_micro_batch (1024) must be a multiple of seq_len (100)");
    expect_one("tests/bad/family.yaml", "tests/bad/family.yaml:2:11: error: ",
               "unknown family 'lama'; did you mean 'llama'?");
    expect_one("tests/bad/optimizer_state.yaml", "tests/bad/optimizer_state.yaml:13:20: error: ",
               "optimizer_state: unknown optimizer-state precision 'int4'; did you mean 'int8'? "
               "(supported: fp32, bf16 or int8)");
    expect_one("tests/bad/rope_type.yaml", "tests/bad/rope_type.yaml:9:11: error: ",
               "unsupported rope_scaling type 'yarn'");
    /* qwen3 defaults: q/k norms on, biases off; both on is refused where it was written */
    expect_one("tests/bad/qk_norm_bias.yaml", "tests/bad/qk_norm_bias.yaml:10:13: error: ",
               "qk_norm and qkv_bias together are no transformers model");
    expect_one("tests/bad/qk_norm_type.yaml", "tests/bad/qk_norm_type.yaml:9:12: error: ",
               "qk_norm: expected true or false, got 'per_head'");

    /* gemma3: its keys only there, the layer pattern checked entry by entry, its fixed parts */
    t = expect_errors("tests/bad/gemma3_other_family.yaml", 2);
    expect_line(t, "tests/bad/gemma3_other_family.yaml:8:3: error: ",
                "sliding_window: only for family gemma3");
    expect_line(t, "tests/bad/gemma3_other_family.yaml:9:3: error: ",
                "query_pre_attn_scalar: only for family gemma3");
    free(t);
    expect_one("tests/bad/gemma3_layer_types.yaml", "tests/bad/gemma3_layer_types.yaml:9:52: error: ",
               "layer_types: unknown attention type 'local_attention' (supported: full_attention "
               "or sliding_attention)");
    expect_one("tests/bad/gemma3_layer_count.yaml", "tests/bad/gemma3_layer_count.yaml:9:16: error: ",
               "layer_types: 2 entries for 4 layers (num_layers)");
    expect_one("tests/bad/gemma3_no_window.yaml", "tests/bad/gemma3_no_window.yaml:8:3: error: ",
               "sliding_window_pattern: needs sliding_window");
    expect_one("tests/bad/gemma3_both_patterns.yaml",
               "tests/bad/gemma3_both_patterns.yaml:10:3: error: ",
               "layer_types and sliding_window_pattern together");
    t = expect_errors("tests/bad/gemma3_flags.yaml", 3);
    expect_line(t, "tests/bad/gemma3_flags.yaml:8:12: error: ", "qk_norm: gemma3 always has q/k norms");
    expect_line(t, "tests/bad/gemma3_flags.yaml:9:13: error: ", "qkv_bias: gemma3 has no q/k/v biases");
    expect_line(t, "tests/bad/gemma3_flags.yaml:13:5: error: ",
                "low_freq_factor: not a key of linear rope scaling");
    free(t);
    t = expect_errors("tests/bad/gemma3_llama3_rope.yaml", 2);
    expect_line(t, "tests/bad/gemma3_llama3_rope.yaml:8:19: error: ", "sliding_window: must be positive");
    expect_line(t, "tests/bad/gemma3_llama3_rope.yaml:10:11: error: ",
                "type: gemma3 takes linear rope scaling, not llama3");
    free(t);

    t = expect_errors("tests/bad/rope_factors.yaml", 2);
    expect_line(t, "tests/bad/rope_factors.yaml:8:3: error: ",
                "rope_scaling: missing required key 'original_max_position'");
    expect_line(t, "tests/bad/rope_factors.yaml:12:23: error: ",
                "must be greater than low_freq_factor");
    free(t);

    t = expect_errors("tests/bad/training_range.yaml", 5);
    expect_line(t, "tests/bad/training_range.yaml:12:7: error: ", "lr: must be > 0");
    expect_line(t, "tests/bad/training_range.yaml:13:10: error: ", "beta1: must be in [0, 1)");
    expect_line(t, "tests/bad/training_range.yaml:14:10: error: ", "beta2: must be in [0, 1)");
    expect_line(t, "tests/bad/training_range.yaml:15:8: error: ", "eps: must be > 0");
    expect_line(t, "tests/bad/training_range.yaml:16:14: error: ", "grad_clip: must be >= 0");
    free(t);

    t = expect_errors("tests/bad/bad_numbers.yaml", 8);
    expect_line(t, "tests/bad/bad_numbers.yaml:1:7: error: ", "name: 'my model' may hold only");
    expect_line(t, "tests/bad/bad_numbers.yaml:9:13: error: ",
                "norm_eps: expected a number, got '1e-5' (quoted");
    expect_line(t, "tests/bad/bad_numbers.yaml:10:15: error: ", "expected a number, got '.inf'");
    expect_line(t, "tests/bad/bad_numbers.yaml:13:20: error: ", "must be at most 2147483647");
    expect_line(t, "tests/bad/bad_numbers.yaml:15:7: error: ", "'1e999' is out of range");
    expect_line(t, "tests/bad/bad_numbers.yaml:16:10: error: ", "expected a number, got '0x1p-1'");
    expect_line(t, "tests/bad/bad_numbers.yaml:17:17: error: ", "min_lr_ratio: must be in [0, 1]");
    expect_line(t, "tests/bad/bad_numbers.yaml:18:17: error: ", "warmup_steps: must be >= 0");
    free(t);

    /* the sizes that bound the schedule: layers, micro-batches, and their product */
    expect_one("tests/bad/layers.yaml", "tests/bad/layers.yaml:5:15: error: ",
               "num_layers: must be at most 1024, got '1000000'");
    expect_one("tests/bad/micro_count.yaml", "tests/bad/micro_count.yaml:10:20: error: ",
               "tokens_per_step (32768) is 2048 micro-batches of 16 tokens; at most 1024");
    expect_one("tests/bad/layer_passes.yaml", "tests/bad/layer_passes.yaml:10:20: error: ",
               "1024 layers times 128 micro-batches is 131072 layer passes a step; the schedule "
               "holds at most 65536");

    /* the plan: section: every value, key and shape wrong in its own way */
    t = expect_errors("tests/bad/plan_values.yaml", 7);
    expect_line(t, "tests/bad/plan_values.yaml:12:20: error: ",
                "resident_blocks: must be in 0..4 (architecture.num_layers), got '5'");
    expect_line(t, "tests/bad/plan_values.yaml:13:18: error: ",
                "resident_ends: expected true or false, got 'maybe'");
    expect_line(t, "tests/bad/plan_values.yaml:14:21: error: ",
                "keep_activations: must be in 0..4 (architecture.num_layers), got '-1'");
    expect_line(t, "tests/bad/plan_values.yaml:15:17: error: ",
                "weight_slots: must be 2 or 3 (or auto: the planner's choice), got '4'");
    expect_line(t, "tests/bad/plan_values.yaml:16:19: error: ",
                "host_gradients: unknown precision 'fp16'; did you mean 'fp32'? (supported: "
                "auto, fp32 or bf16)");
    expect_line(t, "tests/bad/plan_values.yaml:17:15: error: ",
                "boundaries: unknown place 'cpu'; did you mean 'gpu'? (supported: auto, gpu or "
                "host)");
    expect_line(t, "tests/bad/plan_values.yaml:18:21: error: ",
                "keep_mlp_outputs: must be in 0..4 (architecture.num_layers), got '9'");
    free(t);
    t = expect_errors("tests/bad/plan_keys.yaml", 5);
    expect_line(t, "tests/bad/plan_keys.yaml:12:3: error: ",
                "unknown key 'boundaries' in training; it belongs in plan");
    expect_line(t, "tests/bad/plan_keys.yaml:14:3: error: ",
                "unknown key 'resident_block' in plan; did you mean 'resident_blocks'?");
    expect_line(t, "tests/bad/plan_keys.yaml:15:3: error: ",
                "unknown key 'seq_len' in plan; it belongs in shape");
    expect_line(t, "tests/bad/plan_keys.yaml:16:21: error: ",
                "keep_activations: expected an integer, got '2.5'");
    expect_line(t, "tests/bad/plan_keys.yaml:17:17: error: ",
                "weight_slots: must be 2 or 3 (or auto: the planner's choice), got '3' (quoted, "
                "so a string)");
    free(t);
    expect_one("tests/bad/plan_mapping.yaml", "tests/bad/plan_mapping.yaml:11:7: error: ",
               "plan: expected a mapping, got '3'");

    /* three independent errors in one file: all three reported, in file order */
    t = expect_errors("tests/bad/three_errors.yaml", 3);
    expect_line(t, "tests/bad/three_errors.yaml:5:3: error: ",
                "unknown key 'num_layer' in architecture; did you mean 'num_layers'?");
    expect_line(t, "tests/bad/three_errors.yaml:7:13: error: ", "expected an integer, got 'big'");
    expect_line(t, "tests/bad/three_errors.yaml:10:20: error: ", "tokens_per_step: must be positive");
    free(t);
}

/* ---- the plan: section ---- */

/* A valid spec of 6 layers without a plan: section (11 lines). */
static const char plan_base[] = "# six layers\n"
                                "architecture:\n"
                                "  family: llama\n"
                                "  vocab_size: 256\n"
                                "  hidden_size: 64\n"
                                "  num_layers: 6\n"
                                "  num_heads: 4\n"
                                "  ffn_size: 128\n"
                                "shape:\n"
                                "  seq_len: 16\n"
                                "  tokens_per_step: 128\n";

/* Whether two plans hold the same choices (positions aside). */
static int same_choices(const spec_plan *a, const spec_plan *b) {
    return a->set == b->set && a->resident_blocks == b->resident_blocks &&
           a->resident_ends == b->resident_ends && a->keep_blocks == b->keep_blocks &&
           a->weight_slots == b->weight_slots && a->host_grad == b->host_grad &&
           a->boundaries == b->boundaries && a->keep_mlp_out_blocks == b->keep_mlp_out_blocks;
}

static const char *plan_text(const spec_plan *p) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "set %d resident_blocks %lld resident_ends %d keep %lld slots %d "
             "host_grad %d boundaries %d mlp_out %lld", p->set, (long long)p->resident_blocks,
             p->resident_ends, (long long)p->keep_blocks, p->weight_slots, p->host_grad,
             p->boundaries, (long long)p->keep_mlp_out_blocks);
    return buf;
}

/* Load BASE + TAIL from a scratch file; returns the number of errors, the text in *text. */
static int load_with(const char *tail, hzc_spec *s, char **text) {
    char body[2048];
    snprintf(body, sizeof body, "%s%s", plan_base, tail);
    return load(write_file("plan.yaml", body), s, text);
}

static void test_plan_section(void) {
    hzc_spec s;
    char *text = NULL;
    int n = load_with("", &s, &text);
    spec_plan none = {0};
    CHECK(n == 0 && same_choices(&s.plan, &none) && s.plan.pos_boundaries.line == 0,
          "no plan: section: every choice at its default (%s) %s", plan_text(&s.plan), text);
    free(text);

    n = load_with("plan:\n"
                  "  resident_blocks: 6\n"
                  "  resident_ends: yes\n"
                  "  keep_activations: 2\n"
                  "  weight_slots: 2\n"
                  "  host_gradients: bf16\n"
                  "  boundaries: host\n", &s, &text);
    spec_plan want = {.set = 1, .resident_blocks = 6, .resident_ends = 1, .keep_blocks = 2,
                      .weight_slots = 2, .host_grad = SPEC_GRAD_BF16,
                      .boundaries = SPEC_WHERE_HOST};
    CHECK(n == 0 && same_choices(&s.plan, &want), "every plan key: %s %s", plan_text(&s.plan),
          text);
    free(text);
    const spec_plan *p = &s.plan;
    CHECK(p->pos_resident_blocks.line == 13 && p->pos_resident_blocks.col == 20 &&
              p->pos_resident_ends.line == 14 && p->pos_resident_ends.col == 18 &&
              p->pos_keep_blocks.line == 15 && p->pos_keep_blocks.col == 21 &&
              p->pos_weight_slots.line == 16 && p->pos_weight_slots.col == 17 &&
              p->pos_host_grad.line == 17 && p->pos_host_grad.col == 19 &&
              p->pos_boundaries.line == 18 && p->pos_boundaries.col == 15,
          "plan positions at the values: %d:%d %d:%d %d:%d %d:%d %d:%d %d:%d",
          p->pos_resident_blocks.line, p->pos_resident_blocks.col, p->pos_resident_ends.line,
          p->pos_resident_ends.col, p->pos_keep_blocks.line, p->pos_keep_blocks.col,
          p->pos_weight_slots.line, p->pos_weight_slots.col, p->pos_host_grad.line,
          p->pos_host_grad.col, p->pos_boundaries.line, p->pos_boundaries.col);

    n = load_with("plan:\n", &s, &text);
    none.set = 1;
    CHECK(n == 0 && same_choices(&s.plan, &none), "an empty plan: section is set, with the "
          "defaults: %s %s", plan_text(&s.plan), text);
    free(text);

    n = load_with("plan: {weight_slots: auto, host_gradients: auto, boundaries: gpu, "
                  "keep_activations: 0}\n", &s, &text);
    want = (spec_plan){.set = 1, .boundaries = SPEC_WHERE_GPU};
    CHECK(n == 0 && same_choices(&s.plan, &want) && s.plan.pos_weight_slots.line == 12 &&
              s.plan.pos_resident_blocks.line == 0,
          "flow style, weight_slots auto = 0: %s %s", plan_text(&s.plan), text);
    free(text);

    /* num_layers itself wrong: a block count is then checked only for its sign */
    write_file("plan.yaml", "architecture:\n  family: llama\n  vocab_size: 256\n"
                            "  hidden_size: 64\n  num_layers: 0\n  num_heads: 4\n"
                            "  ffn_size: 128\nshape:\n  seq_len: 16\n  tokens_per_step: 128\n"
                            "plan:\n  resident_blocks: 3\n  keep_activations: -2\n");
    n = load(test_tmp("plan.yaml"), &s, &text);
    CHECK(n == 2 && strstr(text, "num_layers: must be positive") &&
              strstr(text, "plan.yaml:13:21: error: keep_activations: must be >= 0"),
          "num_layers 0: the plan's counts only checked for sign: %d errors %s", n, text);
    free(text);
}

/* The whole of PATH (a scratch file) as a malloc'd string. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    size_t len = 0;
    char *text = f ? yml_slurp(f, 1 << 20, &len) : NULL;
    if (f) fclose(f);
    if (!text) {
        printf("NOT OK  cannot read %s\n", path);
        exit(2);
    }
    return text;
}

/* spec_plan_write's text for P. */
static char *plan_yaml(const spec_plan *p) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) exit(2);
    spec_plan_write(f, p);
    fclose(f);
    return text;
}

/* plan.gpus: a positive count of GPUs of one host, checked where it is written; written
 * back by spec_plan_write when above one (absent: one GPU) and read back the same. */
static void test_plan_gpus(void) {
    hzc_spec s;
    char *text = NULL;
    int n = load_with("plan:\n  gpus: 4\n", &s, &text);
    CHECK(n == 0 && s.plan.gpus == 4 && s.plan.pos_gpus.line == 13 && s.plan.pos_gpus.col == 9,
          "plan.gpus: 4 read, at 13:9 (%lld at %d:%d) %s", (long long)s.plan.gpus,
          s.plan.pos_gpus.line, s.plan.pos_gpus.col, text);
    free(text);
    n = load_with("", &s, &text);
    CHECK(n == 0 && s.plan.gpus == 0, "no plan.gpus: 0, one GPU (%lld)", (long long)s.plan.gpus);
    free(text);
    static const struct {
        const char *value, *phrase;
    } bad[] = {
        {"0", "gpus: must be a number of GPUs of one host, 1 to 1024 (each runs at least one "
              "micro-batch), got '0'"},
        {"-1", "gpus: must be a number of GPUs of one host, 1 to 1024 (each runs at least one "
               "micro-batch), got '-1'"},
        {"1025", "gpus: must be a number of GPUs of one host, 1 to 1024"},
        {"two", "gpus: expected an integer, got 'two'"},
        {"2.5", "gpus: expected an integer, got '2.5'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char tail[64];
        snprintf(tail, sizeof tail, "plan:\n  gpus: %s\n", bad[i].value);
        n = load_with(tail, &s, &text);
        CHECK(n == 1 && strstr(text, "plan.yaml:13:9: error: ") && strstr(text, bad[i].phrase),
              "plan.gpus: %s refused at 13:9 with \"%s\": %s", bad[i].value, bad[i].phrase, text);
        free(text);
    }
    /* spec_plan_write: the key only for several GPUs; either way it reads back */
    for (int64_t g = 1; g <= 4; g *= 4) {
        spec_plan p = {.set = 1, .weight_slots = 2, .gpus = g};
        char *yaml = plan_yaml(&p), body[2048];
        snprintf(body, sizeof body, "%s%s", plan_base, yaml);
        n = load(write_file("gpus.yaml", body), &s, &text);
        int has = strstr(yaml, "  gpus: 4 ") != NULL;
        CHECK(n == 0 && (s.plan.gpus > 1 ? s.plan.gpus : 1) == g && has == (g > 1),
              "spec_plan_write with %lld GPU%s: %s key, reads back %lld %s", (long long)g,
              g > 1 ? "s" : "", has ? "a gpus:" : "no gpus:", (long long)s.plan.gpus, text);
        free(text);
        free(yaml);
    }
}

/* plan.hosts likewise: a positive count of hosts, where it is written; written back when
 * above one and read back the same. */
static void test_plan_hosts(void) {
    hzc_spec s;
    char *text = NULL;
    int n = load_with("plan:\n  hosts: 2\n", &s, &text);
    CHECK(n == 0 && s.plan.hosts == 2 && s.plan.pos_hosts.line == 13 && s.plan.pos_hosts.col == 10,
          "plan.hosts: 2 read, at 13:10 (%lld at %d:%d) %s", (long long)s.plan.hosts,
          s.plan.pos_hosts.line, s.plan.pos_hosts.col, text);
    free(text);
    static const char *const bad[] = {"0", "-2", "1025"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char tail[64];
        snprintf(tail, sizeof tail, "plan:\n  hosts: %s\n", bad[i]);
        n = load_with(tail, &s, &text);
        CHECK(n == 1 && strstr(text, "plan.yaml:13:10: error: hosts: must be a number of hosts, "
                                     "1 to 1024 (each GPU runs at least one micro-batch)"),
              "plan.hosts: %s refused at 13:10: %s", bad[i], text);
        free(text);
    }
    for (int64_t h = 1; h <= 3; h += 2) {
        spec_plan p = {.set = 1, .weight_slots = 2, .gpus = 2, .hosts = h};
        char *yaml = plan_yaml(&p), body[2048];
        snprintf(body, sizeof body, "%s%s", plan_base, yaml);
        n = load(write_file("hosts.yaml", body), &s, &text);
        int has = strstr(yaml, "  hosts: 3 ") != NULL;
        CHECK(n == 0 && (s.plan.hosts > 1 ? s.plan.hosts : 1) == h && s.plan.gpus == 2 &&
                  has == (h > 1),
              "spec_plan_write with %lld host%s: %s key, reads back %lld %s", (long long)h,
              h > 1 ? "s" : "", has ? "a hosts:" : "no hosts:", (long long)s.plan.hosts, text);
        free(text);
        free(yaml);
    }
}

/* Write IN to a scratch file, put P (and MICRO, when > 0) into it with spec_write_tuned (to
 * the same file when IN_PLACE), and check the output is exactly BEFORE + P's section + AFTER
 * (BEFORE may hold %s once, for P's section, when it is not at the end), that it loads with
 * P's choices and that every other field is what IN gave. */
static void expect_rewrite(const char *what, const char *in, const spec_plan *p, int64_t micro,
                           const char *before, const char *after, int in_place) {
    const char *in_path = write_file("rw-in.yaml", in);
    const char *out_path = in_place ? in_path : test_tmp("rw-out.yaml");
    hzc_spec s0, s1;
    char *text = NULL;
    int n0 = load(in_path, &s0, &text);
    free(text);
    char *err = NULL;
    size_t err_size = 0;
    FILE *ef = open_memstream(&err, &err_size);
    int rc = spec_write_tuned(in_path, p, micro, -1, out_path, ef);
    fclose(ef);
    CHECK(n0 == 0 && rc == 0, "%s: the spec loads and is rewritten: %s", what, err);
    free(err);
    if (rc != 0) return;
    char *got = slurp(out_path), *section = plan_yaml(p);
    size_t want_n = strlen(before) + strlen(section) + strlen(after) + 1;
    char *want = malloc(want_n);
    snprintf(want, want_n, "%s%s%s", before, section, after);
    CHECK(strcmp(got, want) == 0, "%s: every line but the plan's kept byte for byte", what);
    if (strcmp(got, want) != 0) printf("        got:\n%s        want:\n%s", got, want);
    int n1 = load(out_path, &s1, &text);
    spec_plan pw = *p;
    pw.set = 1;
    CHECK(n1 == 0 && same_choices(&s1.plan, &pw), "%s: loads back with the same plan: %s (%s)",
          what, plan_text(&s1.plan), text);
    free(text);
    if (micro > 0) {
        CHECK(s1.micro_tokens == micro, "%s: tokens_per_micro_batch %lld want %lld", what,
              (long long)s1.micro_tokens, (long long)micro);
        s1.micro_tokens = s0.micro_tokens;
    }
    /* the rest of the spec: every field as before */
    memset(&s0.plan, 0, sizeof s0.plan);
    memset(&s1.plan, 0, sizeof s1.plan);
    memset(s0.path, 0, sizeof s0.path);
    memset(s1.path, 0, sizeof s1.path);
    if (!in_place) { /* the name comes from the file's */
        memset(s0.name, 0, sizeof s0.name);
        memset(s1.name, 0, sizeof s1.name);
    }
    CHECK(memcmp(&s0, &s1, sizeof s0) == 0, "%s: every other field of the spec unchanged", what);
    free(got);
    free(section);
    free(want);
}

/* hzc tune's optimizer state (spec_write_tuned's OPTIMIZER_STATE): a training: section
 * added at the end where there is none, the key added as the section's last line, or its
 * value replaced; the plan section after it either way, and the spec loads with it. */
static void test_state_write(void) {
    const spec_plan p = {.set = 1, .resident_blocks = 2, .weight_slots = 2};
    char *section = plan_yaml(&p), in[2048], want[4096];
    const struct {
        const char *what, *training, *written;
    } cases[] = {
        {"no training: section", "", "training:\n  optimizer_state: int8\n"},
        {"training: without the key", "training:\n  lr: 1e-3\n",
         "training:\n  lr: 1e-3\n  optimizer_state: int8\n"},
        {"training: with the key", "training:\n  optimizer_state: fp32  # exact\n  lr: 1e-3\n",
         "training:\n  optimizer_state: int8  # exact\n  lr: 1e-3\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(in, sizeof in, "%s%s", plan_base, cases[i].training);
        const char *in_path = write_file("st-in.yaml", in), *out_path = test_tmp("st-out.yaml");
        int rc = spec_write_tuned(in_path, &p, 0, HZ_OPTSTATE_INT8, out_path, stdout);
        char *got = slurp(out_path), *text = NULL;
        snprintf(want, sizeof want, "%s%s%s", plan_base, cases[i].written, section);
        hzc_spec s1;
        int n1 = load(out_path, &s1, &text);
        CHECK(rc == 0 && strcmp(got, want) == 0 && n1 == 0 &&
                  s1.optimizer_state == HZ_OPTSTATE_INT8 && s1.optimizer_state_set &&
                  s1.plan.resident_blocks == 2,
              "tuned optimizer state, %s: written as training.optimizer_state: int8, loads back", cases[i].what);
        if (strcmp(got, want) != 0) printf("        got:\n%s        want:\n%s", got, want);
        free(got);
        free(text);
    }
    free(section);
}

static void test_plan_write(void) {
    const spec_plan plans[] = {
        {.set = 1},
        {.set = 1, .resident_blocks = 6, .resident_ends = 1, .keep_blocks = 6,
         .weight_slots = 3, .host_grad = SPEC_GRAD_FP32, .boundaries = SPEC_WHERE_GPU},
        {.set = 1, .resident_blocks = 2, .keep_blocks = 1, .weight_slots = 2,
         .host_grad = SPEC_GRAD_BF16, .boundaries = SPEC_WHERE_HOST},
        {.set = 1, .keep_blocks = 1, .keep_mlp_out_blocks = 3, .weight_slots = 2},
    };
    char in[2048], before[4096];
    for (size_t i = 0; i < sizeof plans / sizeof *plans; i++) {
        const spec_plan *p = &plans[i];
        /* appended to a spec without one */
        expect_rewrite("appended", plan_base, p, 0, plan_base, "", 0);
        /* replaced in the middle: its comments and indented lines go, the blank line and the
         * column-1 comment after it stay */
        snprintf(in, sizeof in, "%splan:   # old\n  resident_blocks: 1\n  # inside\n"
                 "  boundaries: gpu\n\n# the training defaults\ntraining:\n  lr: 1e-3\n",
                 plan_base);
        expect_rewrite("replaced", in, p, 0, plan_base,
                       "\n# the training defaults\ntraining:\n  lr: 1e-3\n", 0);
        /* the last line, with no newline at the end */
        snprintf(in, sizeof in, "%splan:\n  keep_activations: 1", plan_base);
        expect_rewrite("last, no newline", in, p, 0, plan_base, "", 0);
    }
    const spec_plan *p = &plans[1];
    /* a spec that does not end in a newline gets one before the section */
    snprintf(in, sizeof in, "%s  # the end", plan_base);
    snprintf(before, sizeof before, "%s\n", in);
    expect_rewrite("appended after a last line with no newline", in, p, 0, before, "", 0);
    /* written over its own input */
    expect_rewrite("in place", plan_base, p, 0, plan_base, "", 1);
    /* spec_write_with_plan is spec_write_tuned with the micro-batch as it is */
    write_file("rw-in.yaml", plan_base);
    int rc = spec_write_with_plan(test_tmp("rw-in.yaml"), p, test_tmp("rw-out.yaml"), stdout);
    char *got = slurp(test_tmp("rw-out.yaml")), *section = plan_yaml(p);
    CHECK(rc == 0 && strncmp(got, plan_base, strlen(plan_base)) == 0 &&
              strcmp(got + strlen(plan_base), section) == 0,
          "spec_write_with_plan appends the section: %d", rc);
    free(got);
    free(section);

    /* tokens_per_micro_batch: the value replaced in its line, or the key added to shape */
    snprintf(in, sizeof in, "%s  tokens_per_micro_batch: 32   # two\ntraining:\n  lr: 1e-3\n",
             plan_base);
    snprintf(before, sizeof before, "%s  tokens_per_micro_batch: 64   # two\ntraining:\n"
             "  lr: 1e-3\n", plan_base);
    expect_rewrite("micro-batch value replaced", in, p, 64, before, "", 0);
    snprintf(in, sizeof in, "%straining:\n  lr: 1e-3\n", plan_base);
    snprintf(before, sizeof before, "%s  tokens_per_micro_batch: 32\ntraining:\n  lr: 1e-3\n",
             plan_base);
    expect_rewrite("micro-batch key added", in, p, 32, before, "", 0);

    /* what cannot be rewritten line by line is refused */
    const char *flow = write_file("rw-flow.yaml",
                                  "{architecture: {family: llama, vocab_size: 256, hidden_size: "
                                  "64, num_layers: 6, num_heads: 4, ffn_size: 128}, shape: "
                                  "{seq_len: 16, tokens_per_step: 128}}\n");
    char *err = NULL;
    size_t err_size = 0;
    FILE *ef = open_memstream(&err, &err_size);
    rc = spec_write_with_plan(flow, p, test_tmp("rw-out.yaml"), ef);
    fclose(ef);
    CHECK(rc == 1 && strstr(err, "rw-flow.yaml:1:1: error: hzc rewrites the plan: section only "
                                 "in a spec whose top level is a block mapping"),
          "a flow-style spec is refused: %s", err);
    free(err);
    err = NULL;
    ef = open_memstream(&err, &err_size);
    rc = spec_write_with_plan(test_tmp("nope.yaml"), p, test_tmp("rw-out.yaml"), ef);
    fclose(ef);
    CHECK(rc == 1 && strstr(err, "nope.yaml: error: cannot open"), "a missing spec: %s", err);
    free(err);
}

/* The spec file's own limits: exactly 1 MiB is read, one byte more is refused unread, and
 * a directory is named as one (not "Input/output error"). */
static void test_file_limits(void) {
    const char *head = "architecture:\n  family: llama\n  vocab_size: 256\n  hidden_size: 64\n"
                       "  num_layers: 2\n  num_heads: 4\n  ffn_size: 128\n"
                       "shape:\n  seq_len: 16\n  tokens_per_step: 64\n#";
    size_t n = YML_MAX_FILE_BYTES + 1;
    char *text = malloc(n + 1);
    if (!text) exit(2);
    memset(text, '#', n);
    memcpy(text, head, strlen(head));
    text[n - 1] = '\n';
    const char *path = test_tmp("mib.yaml");
    test_write(path, text, n - 1);
    hzc_spec s;
    char *out = NULL;
    int errors_n = load(path, &s, &out);
    CHECK(errors_n == 0, "a spec of exactly %d bytes loads: %d errors %s", YML_MAX_FILE_BYTES,
          errors_n, out);
    free(out);
    test_write(path, text, n);
    errors_n = load(path, &s, &out);
    CHECK(errors_n == 1 && strstr(out, "mib.yaml: error: 1048577 bytes; a model description is "
                                       "at most 1 MiB"),
          "a spec of %d + 1 bytes: %d errors, says: %s", YML_MAX_FILE_BYTES, errors_n, out);
    free(out);
    free(text);
    errors_n = load("tests/bad", &s, &out);
    CHECK(errors_n == 1 && strstr(out, "tests/bad: error: is a directory"),
          "a directory as the spec: %d errors, says: %s", errors_n, out);
    free(out);
}

int main(void) {
    if (test_tmp_open("spec") != 0) return 2;
    test_models();
    test_defaults();
    test_error_cap();
    test_bad_inputs();
    test_plan_section();
    test_plan_gpus();
    test_plan_hosts();
    test_plan_write();
    test_state_write();
    test_file_limits();
    test_tmp_close();
    TEST_END();
}
