/* tests/test_hf_gemma.c - Gemma 3's Hugging Face names: a saved checkpoint has the four norms
 * of each layer under transformers' Gemma3ForCausalLM names, and --init (hz_hf_load) also
 * reads the text model of a Gemma3ForConditionalGeneration checkpoint, under either prefix
 * (language_model.model., as published; model.language_model., transformers 4.52 and
 * later), skipping its vision tower and projector; a Llama plan reads none of those names. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hfmap.h"
#include "plan.h"
#include "rt.h"
#include "safetensors.h"
#include "test.h"
#include "test_specs.h"

typedef struct src {
    const hz_store *s;
    int64_t off;
} src;

static void fill_w(void *arg, int64_t b, int64_t n, void *out)
{
    const src *a = arg;
    memcpy(out, a->s->w + a->off + b, (size_t)n * 2);
}

static void fill_zero(void *arg, int64_t b, int64_t n, void *out)
{
    (void)arg, (void)b;
    memset(out, 0, (size_t)n * 2);
}

/* S's tensors into DIR under PREFIX + the text model's name less "model." (PREFIX
 * "language_model.model." or "model.language_model."), lm_head.weight as LM_NAME, and one
 * vision tensor. */
static int write_multimodal(const char *dir, const hz_plan *p, const hz_store *s,
                            const char *prefix, char *err)
{
    hz_hf_part parts[64];
    src args[64];
    hz_st_wtensor w[66];
    static char names[64][HZ_HF_NAME_BYTES + 32];
    int n = 0;
    for (int i = 0; i < p->tensor_n; i++) {
        int k = hz_hf_parts(p, &p->tensors[i], parts + n);
        for (int j = 0; j < k; j++, n++) {
            const char *name = parts[n].name;
            snprintf(names[n], sizeof names[n], "%s%s", prefix,
                     !strncmp(name, "model.", 6) ? name + 6 : name);
            args[n] = (src){s, p->tensors[i].host_n + parts[n].row0 * parts[n].cols};
            w[n] = (hz_st_wtensor){names[n], HZ_ST_BF16, parts[n].ndim,
                                   {parts[n].rows, parts[n].cols}, fill_w, &args[n]};
        }
    }
    int old = prefix[0] == 'l'; /* the published layout: the vision tower at the top level */
    w[n++] = (hz_st_wtensor){old ? "vision_tower.vision_model.post_layernorm.weight"
                                 : "model.vision_tower.vision_model.post_layernorm.weight",
                             HZ_ST_BF16, 1, {4}, fill_zero, NULL};
    w[n++] = (hz_st_wtensor){old ? "multi_modal_projector.mm_input_projection_weight"
                                 : "model.multi_modal_projector.mm_input_projection_weight",
                             HZ_ST_BF16, 2, {4, 4}, fill_zero, NULL};
    mkdir(dir, 0777);
    return hz_st_write_checkpoint(dir, w, n, 0, err) < 0 ? -1 : 0;
}

/* Elements of the plan's tensors whose working weights differ between A and B. */
static int64_t differ(const hz_plan *p, const hz_store *a, const hz_store *b)
{
    int64_t n = 0;
    for (int t = 0; t < p->tensor_n; t++) {
        const hz_tensor *x = &p->tensors[t];
        for (int64_t i = x->host_n; i < x->host_n + x->rows * x->cols; i++) n += a->w[i] != b->w[i];
    }
    return n;
}

int main(void)
{
    if (test_tmp_open("hf_gemma") != 0) return 1;
    char err[HZ_HF_ERR_BYTES], sterr[HZ_ST_ERR_BYTES];
    hzc_spec spec = make_spec(4);
    hzc_plan pl;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    if (plan_build(&spec, &none, &pl, stderr) != 0) {
        CHECK(0, "the Gemma 3 variant plans");
        TEST_END();
    }
    const hz_plan *p = &pl.p;
    hz_store a, b;
    hz_store_alloc(&a, p, NULL, NULL);
    hz_store_alloc(&b, p, NULL, NULL);
    hz_store_init(&a, p, 99, NULL);
    /* nonzero norms, so that a norm loaded into the wrong place shows */
    for (int64_t i = 0; i < p->host_store_n; i++) a.w[i] = (uint16_t)(a.w[i] ^ (uint16_t)(i * 7));

    const char *dir = test_tmp("causal");
    int rc = hz_hf_save(&a, p, dir, NULL, 0, err);
    CHECK(rc == 0, "hz_hf_save (%s)", rc ? err : "");
    hz_st_index *ix = hz_st_index_open(dir, sterr);
    static const char *const norms[] = {
        "model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
        "model.layers.1.pre_feedforward_layernorm.weight",
        "model.layers.1.post_feedforward_layernorm.weight", "model.layers.1.self_attn.q_norm.weight",
        "model.layers.1.self_attn.k_norm.weight", "model.norm.weight"};
    int found = 0;
    for (int i = 0; ix && i < 7; i++) found += hz_st_index_find(ix, norms[i]) != NULL;
    CHECK(found == 7 && ix && hz_st_index_tensor_n(ix) == 2 * 13 + 2 &&
              !hz_st_index_find(ix, "lm_head.weight"),
          "Gemma3ForCausalLM names: %d of the 7 norms of a layer and the model, %d tensors "
          "(want 28: 13 a layer, embedding, final norm; tied: no lm_head)",
          found, ix ? hz_st_index_tensor_n(ix) : -1);
    hz_st_index_close(ix);

    static const char *const prefixes[] = {"language_model.model.", "model.language_model."};
    for (int k = 0; k < 2; k++) {
        const char *mm = test_tmp("multimodal%d", k);
        rc = write_multimodal(mm, p, &a, prefixes[k], sterr);
        CHECK(rc == 0, "write a multimodal checkpoint under %s", prefixes[k]);
        memset(b.w, 0, (size_t)p->host_store_n * 2);
        rc = hz_hf_load(&b, p, mm, 2, err);
        int64_t bad = differ(p, &a, &b);
        CHECK(rc == 0 && bad == 0,
              "--init from a Gemma3ForConditionalGeneration checkpoint under %s: the text model "
              "bit for bit (%lld elements differ), vision tower skipped (%s)",
              prefixes[k], (long long)bad, rc ? err : "");
    }

    /* a Llama-like model does not skip a vision tensor */
    hzc_spec lspec = make_spec(1);
    hzc_plan lpl;
    if (plan_build(&lspec, &none, &lpl, stderr) == 0) {
        hz_store c;
        hz_store_alloc(&c, &lpl.p, NULL, NULL);
        hz_store_init(&c, &lpl.p, 1, NULL);
        const char *mm = test_tmp("llama-mm");
        write_multimodal(mm, &lpl.p, &c, "language_model.model.", sterr);
        rc = hz_hf_load(&c, &lpl.p, mm, 1, err);
        CHECK(rc != 0 && strstr(err, "unexpected") && strstr(err, "language_model.model."),
              "a Llama plan reads no multimodal names: %s", rc ? err : "(loaded)");
        hz_store_free(&c);
        plan_free(&lpl);
    }
    hz_store_free(&a);
    hz_store_free(&b);
    plan_free(&pl);
    test_tmp_close();
    TEST_END();
}
