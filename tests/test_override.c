/* tests/test_override.c - KEY=VALUE overrides of a spec (compiler/spec_override.c): each
 * value reaches the spec as if it were in the file, added keys and sections, the order of
 * several, and every error naming its override. */
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "test.h"

/* spec_load_overrides of PATH, the error text in a malloc'ed *text. */
static int load(const char *path, const char *const *ov, int n, hzc_spec *s, char **text) {
    size_t size = 0;
    FILE *err = open_memstream(text, &size);
    if (!err) exit(2);
    int errors_n = spec_load_overrides(path, ov, n, s, err);
    fclose(err);
    return errors_n;
}

static void test_values(void) {
    hzc_spec s, base;
    char *text = NULL;
    CHECK(load("models/tiny.yaml", NULL, 0, &base, &text) == 0, "tiny: %s", text);
    free(text);
    const char *ov[] = {"shape.seq_len=64", "training.lr=2e-5", "architecture.tie_embeddings=false",
                        "name=tiny2", "training.lr=1e-4", "training.seed=7"};
    int n = load("models/tiny.yaml", ov, 6, &s, &text);
    CHECK(n == 0, "six overrides: %d errors: %s", n, text);
    free(text);
    CHECK(s.T == 64 && base.T == 128, "shape.seq_len: T %lld (file %lld) want 64",
          (long long)s.T, (long long)base.T);
    CHECK(s.lr == 1e-4, "training.lr given twice: the later wins: lr %g want 1e-4", s.lr);
    CHECK(s.tied == 0 && base.tied == 1, "tie_embeddings=false: tied %d", s.tied);
    CHECK(strcmp(s.name, "tiny2") == 0, "name=tiny2: '%s'", s.name);
    CHECK(s.seed == 7 && s.C == base.C && s.step_tokens == base.step_tokens,
          "seed %lld; untouched keys as in the file (C %lld, step %lld)", (long long)s.seed,
          (long long)s.C, (long long)s.step_tokens);
    /* a key the file does not have, in a section it does not have */
    const char *add[] = {"architecture.rope_scaling={type: llama3, factor: 8, low_freq_factor: 1, "
                         "high_freq_factor: 4, original_max_position: 8192}",
                         "plan.weight_slots=2"};
    n = load("models/tiny.yaml", add, 2, &s, &text);
    CHECK(n == 0 && s.rope_llama3 == 1 && s.rope_factor == 8 && s.plan.set,
          "added rope_scaling and plan: %d errors, llama3 %d factor %g: %s", n, s.rope_llama3,
          s.rope_factor, text);
    free(text);
}

/* OV alone gives one error whose line starts with PREFIX and contains PHRASE. */
static void expect_error(const char *const *ov, int n, const char *prefix, const char *phrase) {
    hzc_spec s;
    char *text = NULL;
    int got = load("models/tiny.yaml", ov, n, &s, &text);
    int ok = got == 1 && strncmp(text, prefix, strlen(prefix)) == 0 && strstr(text, phrase);
    CHECK(ok, "%s: %d errors, want 1 starting '%s' with '%s': %s", ov[n - 1], got, prefix,
          phrase, text);
    free(text);
}

static void test_errors(void) {
    const char *a[] = {"shape.seq_len=64", "training.lr=abc"};
    expect_error(a, 2, "override 2 (training.lr=abc): error: ", "expected a number");
    const char *b[] = {"shape.bogus=3"};
    expect_error(b, 1, "override 1 (shape.bogus=3): error: ", "unknown key 'bogus'");
    const char *c[] = {"training.lr.x=1"};
    expect_error(c, 1, "override 1 (training.lr.x=1): error: ", "models/tiny.yaml:20:7");
    const char *d[] = {"shape..seq_len=1"};
    expect_error(d, 1, "override 1 (shape..seq_len=1): error: ", "empty part");
    const char *e[] = {"shape.seq_len=[1"};
    expect_error(e, 1, "override 1 (shape.seq_len=[1):", "error:");
    const char *f[] = {"shape.seq_len=0"};
    expect_error(f, 1, "override 1 (shape.seq_len=0): error: ", "seq_len");
    const char *g[] = {"shape.seq_len="};
    expect_error(g, 1, "override 1 (shape.seq_len=): error: ", "seq_len");
    const char *h[] = {"plan.keep_activations=99"};
    expect_error(h, 1, "override 1 (plan.keep_activations=99): error: ", "keep_activations");
    CHECK(spec_is_override("shape.seq_len=4096") && spec_is_override("name=x") &&
              !spec_is_override("--gpu-mem=8G") && !spec_is_override("models/x.yaml") &&
              !spec_is_override("=3"),
          "spec_is_override tells overrides from flags and paths");
}

int main(void) {
    test_values();
    test_errors();
    TEST_END();
}
