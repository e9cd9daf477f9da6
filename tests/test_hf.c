/* tests/test_hf.c - Hugging Face interchange:
 *   1. safetensors: writer -> reader round trips (BF16, F16, F32, row ranges), every bad
 *      file refused with a message naming the file, sharded checkpoints and their index;
 *   2. hfmap: a planned model saved with hz_hf_save loads back bit-exactly with hz_hf_load
 *      (untied + qkv bias, tied, llama3 rope, Qwen3 q/k norms, Gemma 3; single file and
 *      shards); missing, unexpected and mis-shaped tensors listed; fp32 checkpoints land
 *      exactly in the split master;
 *   3. import: transformers config.json fixtures (v4 and v5 rope layouts, Qwen2, Mistral,
 *      Llama 3 8B) to specs that spec_load accepts, and the unsupported ones refused. */
#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hfmap.h"
#include "import.h"
#include "plan.h"
#include "rt.h"
#include "safetensors.h"
#include "spec.h"
#include "test.h"
#include "test_specs.h"

static int has(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

/* MSG on one line for a CHECK message: newlines as " / ", the last one dropped. */
static const char *flat(const char *msg)
{
    static char buf[4][2048];
    static int k;
    char *b = buf[k++ & 3];
    size_t o = 0;
    for (const char *p = msg ? msg : ""; *p && o + 4 < sizeof buf[0]; p++) {
        if (*p != '\n') b[o++] = *p;
        else if (p[1]) o += (size_t)snprintf(b + o, 4, " / ");
    }
    b[o] = 0;
    return b;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc((size_t)n + 1);
    if (fread(t, 1, (size_t)n, f) != (size_t)n) abort();
    t[n] = 0;
    fclose(f);
    return t;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- 1. safetensors ---- */

static void fill_copy2(void *arg, int64_t b, int64_t n, void *out) { memcpy(out, (uint16_t *)arg + b, (size_t)n * 2); }
static void fill_copy4(void *arg, int64_t b, int64_t n, void *out) { memcpy(out, (float *)arg + b, (size_t)n * 4); }

static void st_round_trip(void)
{
    char err[HZ_ST_ERR_BYTES];
    uint16_t a[15];
    float b[4] = {1.5f, -2.25f, 3.0e-7f, 123456.789f};
    uint16_t h[6] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000}; /* 1 -2 65504 2^-24 inf -0 */
    float hwant[6] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, INFINITY, -0.0f};
    for (int i = 0; i < 15; i++) a[i] = hz_bf16_from_f32((float)i * 0.37f - 2.0f);
    hz_st_wtensor w[3] = {
        {"a", HZ_ST_BF16, 2, {3, 5}, fill_copy2, a},
        {"b.weight", HZ_ST_F32, 1, {4}, fill_copy4, b},
        {"h", HZ_ST_F16, 2, {2, 3}, fill_copy2, h},
    };
    const char *path = test_tmp("rt.safetensors");
    CHECK(hz_st_write(path, w, 3, err) == 0, "write %s (%s)", path, err);
    CHECK(!exists(test_tmp("rt.safetensors.tmp")), "no temporary file left behind");
    char *raw = read_text(path);
    uint64_t hlen;
    memcpy(&hlen, raw, 8);
    CHECK(hlen % 8 == 0 && has(raw + 8, "\"__metadata__\":{\"format\":\"pt\"}"),
          "header length %llu is a multiple of 8 and carries format pt", (unsigned long long)hlen);
    free(raw);

    hz_st_file *f = hz_st_open(path, err);
    CHECK(f != NULL, "reopen %s (%s)", path, f ? "" : err);
    if (!f) return;
    CHECK(hz_st_tensor_n(f) == 3, "3 tensors, got %d", hz_st_tensor_n(f));
    const hz_st_tensor *ta = hz_st_find(f, "a"), *tb = hz_st_find(f, "b.weight"), *th = hz_st_find(f, "h");
    CHECK(ta && tb && th && !hz_st_find(f, "c"), "lookup by name (and a missing name)");
    if (!ta || !tb || !th) return;
    CHECK(ta->dtype == HZ_ST_BF16 && ta->ndim == 2 && ta->shape[0] == 3 && ta->shape[1] == 5 &&
              hz_st_rows(ta) == 3 && hz_st_row_elems(ta) == 5,
          "a: BF16 [3, 5]");
    float out[15];
    int same = hz_st_read_f32(ta, 0, 3, out) == 0;
    for (int i = 0; i < 15; i++) same &= out[i] == hz_f32_from_bf16(a[i]);
    CHECK(same, "a: bf16 -> fp32 exact over all 15 elements");
    same = hz_st_read_f32(ta, 1, 2, out) == 0;
    for (int i = 0; i < 10; i++) same &= out[i] == hz_f32_from_bf16(a[5 + i]);
    CHECK(same, "a: rows [1, 3) exact");
    CHECK(hz_st_read_f32(ta, 2, 2, out) == -1 && hz_st_read_f32(ta, -1, 1, out) == -1,
          "a: rows [2, 4) and [-1, 0) refused");
    same = hz_st_read_f32(tb, 0, 4, out) == 0;
    for (int i = 0; i < 4; i++) same &= out[i] == b[i];
    CHECK(same, "b.weight: F32 [4] exact");
    same = hz_st_read_f32(th, 0, 2, out) == 0;
    for (int i = 0; i < 6; i++) same &= memcmp(&out[i], &hwant[i], 4) == 0;
    CHECK(same, "h: F16 1, -2, 65504, 2^-24, inf, -0 exact");
    hz_st_close(f);

    /* from memory, as the fuzz target reads */
    raw = read_text(path);
    struct stat st;
    stat(path, &st);
    f = hz_st_open_memory(raw, (size_t)st.st_size, "mem", err);
    CHECK(f && hz_st_tensor_n(f) == 3, "the same bytes from memory");
    hz_st_close(f);
    free(raw);
}

/* A file of a raw header (its length written first) and DATA_N bytes of data. */
static const char *raw_file(const char *name, const char *header, size_t data_n)
{
    const char *path = test_tmp("%s.safetensors", name);
    size_t hn = strlen(header);
    unsigned char *buf = calloc(1, 8 + hn + data_n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(buf + 8, header, hn);
    test_write(path, buf, 8 + hn + data_n);
    free(buf);
    return path;
}

static void expect_bad(const char *what, const char *path, const char *phrase)
{
    char err[HZ_ST_ERR_BYTES] = "";
    hz_st_file *f = hz_st_open(path, err);
    CHECK(!f && has(err, path) && has(err, phrase), "%s: refused naming the file, '%s': %s", what,
          phrase, err);
    hz_st_close(f);
}

static void st_bad_files(void)
{
    const char *p = test_tmp("short.safetensors");
    test_write(p, "\x05\0\0\0", 4);
    expect_bad("4-byte file", p, "too short");
    p = test_tmp("absurd.safetensors");
    test_write(p, "\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10);
    expect_bad("absurd header length", p, "absurd");
    p = test_tmp("past.safetensors");
    test_write(p, "\xe8\x03\0\0\0\0\0\0{}", 10);
    expect_bad("header length past the end", p, "runs past the end");
    /* bad headers: what, file name, header JSON, data bytes, the phrase the error holds */
    static const struct {
        const char *what, *name, *header;
        size_t data_n;
        const char *phrase;
    } bad[] = {
        {"header not JSON", "notjson",
         "{\"a\": [1, 2",
         0, "not valid JSON"},
        {"header a JSON array", "array",
         "[1, 2]",
         0, "not a JSON object"},
        {"duplicate tensor name", "dup",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, "not valid JSON"},
        {"truncated data", "truncdata",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
         12, "outside the data area"},
        {"offsets outside the file", "outside",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[100,104]}}",
         8, "outside the data area"},
        {"overlapping offsets", "overlap",
         "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "overlap"},
        {"a hole between tensors", "hole",
         "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, "no holes"},
        {"trailing bytes", "trailing",
         "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         8, "belong to no tensor"},
        {"dtype I64", "i64",
         "{\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
         8, "tensor 'ids': dtype I64 is not supported"},
        {"unknown dtype", "q4",
         "{\"q\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,8]}}",
         8, "not a safetensors dtype"},
        {"shape/size mismatch", "size",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
         8, "shape [3] in F32 needs 12"},
        {"negative dimension", "neg",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}",
         0, "shape[0] is not a non-negative integer"},
        {"huge shape", "huge",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
         0, "too large"},
        {"offsets not two integers", "offs",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
         4, "data_offsets is not an array"},
        {"no dtype", "nodtype",
         "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
         4, "lacks 'dtype'"},
        {"metadata not strings", "meta",
         "{\"__metadata__\":{\"format\":1}}",
         0, "__metadata__"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_bad(bad[i].what, raw_file(bad[i].name, bad[i].header, bad[i].data_n), bad[i].phrase);
    expect_bad("missing file", test_tmp("nonexistent.safetensors"), "cannot open");

    /* accepted: empty tensors, metadata, padding spaces, zero tensors */
    char err[HZ_ST_ERR_BYTES];
    hz_st_file *f = hz_st_open(raw_file("ok", "{\"__metadata__\":{\"format\":\"pt\"},"
                                              "\"e\":{\"dtype\":\"BF16\",\"shape\":[0,4],\"data_offsets\":[0,0]},"
                                              "\"x\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}   ", 2),
                               err);
    CHECK(f && hz_st_tensor_n(f) == 2 && hz_st_find(f, "x")->numel == 1,
          "empty and 0-d tensors, metadata and trailing spaces accepted (%s)", f ? "" : err);
    hz_st_close(f);
}

static void st_index(void)
{
    char err[HZ_ST_ERR_BYTES];
    float v[6][32];
    char names[6][16];
    hz_st_wtensor w[6];
    for (int t = 0; t < 6; t++) {
        for (int i = 0; i < 32; i++) v[t][i] = (float)(t * 100 + i);
        snprintf(names[t], sizeof names[t], "t%d", t);
        w[t] = (hz_st_wtensor){names[t], HZ_ST_F32, 2, {4, 8}, fill_copy4, v[t]};
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp("ckpt"));
    mkdir(dir, 0777);
    /* 128 bytes each; at most 300 per shard -> 2 per shard, 3 shards */
    int shards = hz_st_write_checkpoint(dir, w, 6, 300, err);
    CHECK(shards == 3, "6 tensors of 128 bytes, shards of <= 300 bytes: %d shards (%s)", shards,
          shards < 0 ? err : "");
    CHECK(exists(test_tmp("ckpt/model-00001-of-00003.safetensors")) &&
              exists(test_tmp("ckpt/model-00003-of-00003.safetensors")) &&
              exists(test_tmp("ckpt/model.safetensors.index.json")) && !exists(test_tmp("ckpt/model.safetensors")),
          "shard names as transformers writes them, and the index");
    char *idx = read_text(test_tmp("ckpt/model.safetensors.index.json"));
    json_t *j = idx ? json_loads(idx, 0, NULL) : NULL;
    json_t *ts = json_object_get(json_object_get(j, "metadata"), "total_size");
    CHECK(json_integer_value(ts) == 6 * 128 &&
              !strcmp(json_string_value(json_object_get(json_object_get(j, "weight_map"), "t5")),
                      "model-00003-of-00003.safetensors"),
          "index: total_size 768, t5 in shard 3");
    json_decref(j);
    hz_st_index *ix = hz_st_index_open(dir, err);
    CHECK(ix && hz_st_index_tensor_n(ix) == 6, "open the sharded checkpoint (%s)", ix ? "" : err);
    if (ix) {
        float out[32];
        const hz_st_tensor *t = hz_st_index_find(ix, "t4");
        CHECK(t && hz_st_read_f32(t, 3, 1, out) == 0 && out[0] == 424 && out[7] == 431,
              "t4 row 3 read across shards: %g %g", t ? out[0] : -1, t ? out[7] : -1);
        CHECK(!hz_st_index_find(ix, "t6"), "t6 not found");
    }
    hz_st_index_close(ix);

    /* a weight map naming a shard that is not in its file */
    char *bad = read_text(test_tmp("ckpt/model.safetensors.index.json"));
    char *pos = strstr(bad, "\"t0\": \"model-00001");
    if (pos) pos[strlen("\"t0\": \"model-0000")] = '2';
    test_write(test_tmp("ckpt2.json"), bad, strlen(bad));
    free(bad);
    mkdir(test_tmp("ckpt2"), 0777);
    for (int s = 1; s <= 3; s++) {
        char *x = read_text(test_tmp("ckpt/model-0000%d-of-00003.safetensors", s));
        struct stat st;
        stat(test_tmp("ckpt/model-0000%d-of-00003.safetensors", s), &st);
        test_write(test_tmp("ckpt2/model-0000%d-of-00003.safetensors", s), x, (size_t)st.st_size);
        free(x);
    }
    rename(test_tmp("ckpt2.json"), test_tmp("ckpt2/model.safetensors.index.json"));
    ix = hz_st_index_open(test_tmp("ckpt2"), err);
    CHECK(!ix && has(err, "model.safetensors.index.json") && has(err, "puts 't0' in model-00002"),
          "a weight map that puts t0 in the wrong shard: %s", err);
    hz_st_index_close(ix);

    /* a missing shard */
    unlink(test_tmp("ckpt2/model-00003-of-00003.safetensors"));
    ix = hz_st_index_open(test_tmp("ckpt2"), err);
    CHECK(!ix && has(err, "model.safetensors.index.json") &&
              has(err, "shard 'model-00003-of-00003.safetensors'") && has(err, "missing"),
          "a missing shard: %s", err);
    hz_st_index_close(ix);

    /* rewriting as one file removes the shards and the index */
    shards = hz_st_write_checkpoint(dir, w, 6, 0, err);
    CHECK(shards == 1 && exists(test_tmp("ckpt/model.safetensors")) &&
              !exists(test_tmp("ckpt/model.safetensors.index.json")) &&
              !exists(test_tmp("ckpt/model-00001-of-00003.safetensors")),
          "rewritten as model.safetensors: the old shards and index are gone (%d, %s)", shards,
          shards < 0 ? err : "");
    ix = hz_st_index_open(dir, err);
    CHECK(ix && hz_st_index_tensor_n(ix) == 6, "open the single-file checkpoint");
    hz_st_index_close(ix);
    ix = hz_st_index_open(test_tmp("ckpt/model.safetensors"), err);
    CHECK(ix && hz_st_index_tensor_n(ix) == 6, "open the file itself as a checkpoint");
    hz_st_index_close(ix);
    mkdir(test_tmp("empty"), 0777);
    ix = hz_st_index_open(test_tmp("empty"), err);
    CHECK(!ix && has(err, "no model.safetensors"), "an empty directory: %s", err);
    free(idx);
}

/* ---- 2. hfmap ---- */


/* Random masters in every tensor (padding stays 0), most not representable in bf16. */
static void randomize(hz_store *s, const hz_plan *p, uint64_t seed)
{
    for (int t = 0; t < p->tensor_n; t++)
        for (int64_t i = 0; i < p->tensors[t].rows * p->tensors[t].cols; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            float x = (float)((double)(seed >> 40) / 8388608.0 - 1.0) * 0.05f;
            int64_t k = p->tensors[t].host_n + i;
            hz_master_split(x, &s->w[k], &s->lo[k]);
        }
}

/* Write a checkpoint of S in the plan's HF names, altered: SKIP left out, EXTRA added (a
 * small F32 tensor), TRANSPOSE given its shape reversed, every tensor in DTYPE (F32: the
 * master; BF16: w). */
typedef struct ck_arg {
    const hz_store *s;
    int64_t off;
} ck_arg;

static void fill_master(void *arg, int64_t b, int64_t n, void *out)
{
    const ck_arg *a = arg;
    for (int64_t i = 0; i < n; i++) ((float *)out)[i] = hz_store_master(a->s, a->off + b + i);
}

static void fill_w(void *arg, int64_t b, int64_t n, void *out)
{
    const ck_arg *a = arg;
    memcpy(out, a->s->w + a->off + b, (size_t)n * 2);
}

static void fill_zero(void *arg, int64_t b, int64_t n, void *out) { memset(out, 0, (size_t)n * 4); }

static int write_custom(const char *dir, const hz_plan *p, const hz_store *s, const char *skip,
                        const char *extra, const char *transpose, int dtype, char *err)
{
    hz_hf_part parts[256];
    ck_arg args[256];
    hz_st_wtensor w[260];
    int n = 0;
    for (int i = 0; i < p->tensor_n; i++) {
        int k = hz_hf_parts(p, &p->tensors[i], parts + n);
        for (int j = 0; j < k; j++, n++) {
            args[n] = (ck_arg){s, p->tensors[i].host_n + parts[n].row0 * parts[n].cols};
            w[n] = (hz_st_wtensor){parts[n].name, dtype, parts[n].ndim, {parts[n].rows, parts[n].cols},
                                   dtype == HZ_ST_F32 ? fill_master : fill_w, &args[n]};
            if (transpose && !strcmp(parts[n].name, transpose)) {
                w[n].shape[0] = parts[n].cols;
                w[n].shape[1] = parts[n].rows;
            }
        }
    }
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!skip || strcmp(w[i].name, skip)) w[m++] = w[i];
    if (extra) w[m++] = (hz_st_wtensor){extra, HZ_ST_F32, 1, {3}, fill_zero, NULL};
    mkdir(dir, 0777);
    return hz_st_write_checkpoint(dir, w, m, 0, err) < 0 ? -1 : 0;
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name), k = strlen(suffix);
        n += len >= k && !strcmp(e->d_name + len - k, suffix);
    }
    if (d) closedir(d);
    return n;
}

static void hf_save_load(int variant)
{
    char err[HZ_HF_ERR_BYTES];
    hzc_spec spec = make_spec(variant);
    hzc_plan pl;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    if (plan_build(&spec, &none, &pl, stderr) != 0) {
        CHECK(0, "variant %d plans", variant);
        return;
    }
    const hz_plan *p = &pl.p;
    hz_store a, b;
    hz_store_alloc(&a, p, NULL, NULL);
    hz_store_alloc(&b, p, NULL, NULL);
    hz_store_init(&a, p, 99, NULL);
    char *config = hz_hf_config_json(p, spec_family_name(spec.family));
    CHECK(config != NULL, "variant %d: config.json text", variant);
    const char *dir = test_tmp("save%d", variant);
    /* variant 2 in shards of at most 1 KiB: one per tensor or two */
    int64_t shard = variant == 2 ? 1024 : 0;
    int rc = hz_hf_save(&a, p, dir, config, shard, err);
    CHECK(rc == 0, "variant %d: hz_hf_save to %s (%s)", variant, dir, rc ? err : "");
    int shards = count_files(dir, ".safetensors");
    CHECK(variant == 2 ? shards > 2 && exists(test_tmp("save2/model.safetensors.index.json"))
                       : shards == 1 && exists(test_tmp("save%d/model.safetensors", variant)),
          "variant %d: %d safetensors file(s)", variant, shards);
    rc = hz_hf_load(&b, p, dir, variant + 1, err);
    CHECK(rc == 0, "variant %d: hz_hf_load from %s with %d threads (%s)", variant, dir,
          variant + 1, rc ? err : "");
    int64_t wdiff = 0, lodiff = 0;
    for (int64_t i = 0; i < p->host_store_n; i++) {
        wdiff += a.w[i] != b.w[i];
        lodiff += b.lo[i] != 0;
    }
    CHECK(wdiff == 0 && lodiff == 0,
          "variant %d: working weights equal bit for bit over %lld elements (%lld differ), the "
          "loaded masters are the bf16 values (%lld lo != 0)",
          variant, (long long)p->host_store_n, (long long)wdiff, (long long)lodiff);

    /* the checkpoint's own names: tied has no lm_head, bias only with qkv_bias */
    char errst[HZ_ST_ERR_BYTES];
    hz_st_index *ix = hz_st_index_open(dir, errst);
    if (ix) {
        const hz_st_tensor *qn = hz_st_index_find(ix, "model.layers.1.self_attn.q_norm.weight");
        CHECK((qn != NULL) == spec.qk_norm && (!qn || (qn->ndim == 1 && qn->shape[0] == spec.HD)),
              "variant %d: self_attn.q_norm.weight %s", variant, spec.qk_norm ? "[head_dim]" : "absent");
        CHECK((hz_st_index_find(ix, "lm_head.weight") != NULL) == !spec.tied &&
                  (hz_st_index_find(ix, "model.layers.1.self_attn.k_proj.bias") != NULL) == spec.qkv_bias,
              "variant %d: lm_head.weight %s, k_proj.bias %s", variant, spec.tied ? "absent" : "present",
              spec.qkv_bias ? "present" : "absent");
        const hz_st_tensor *k = hz_st_index_find(ix, "model.layers.1.self_attn.k_proj.weight");
        CHECK(k && k->dtype == HZ_ST_BF16 && k->shape[0] == spec.NKV * spec.HD && k->shape[1] == spec.C,
              "variant %d: k_proj.weight BF16 [%lld, %lld]", variant, (long long)(spec.NKV * spec.HD),
              (long long)spec.C);
        /* k_proj holds rows [NH*HD, (NH+NKV)*HD) of wqkv */
        const hz_tensor *wqkv = NULL;
        for (int i = 0; i < p->tensor_n; i++)
            if (p->tensors[i].kind == HZ_WQKV && p->tensors[i].layer == 1) wqkv = &p->tensors[i];
        float row[64];
        int ok = k && wqkv && hz_st_read_f32(k, 1, 1, row) == 0;
        for (int64_t c = 0; ok && c < spec.C; c++)
            ok = row[c] == hz_f32_from_bf16(a.w[wqkv->host_n + (spec.NH * spec.HD + 1) * spec.C + c]);
        CHECK(ok, "variant %d: k_proj row 1 is wqkv row NH*HD + 1", variant);
    }
    hz_st_index_close(ix);

    json_t *cfg = json_load_file(test_tmp("save%d/config.json", variant), 0, NULL);
    const char *arch = json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0));
    CHECK(cfg && json_integer_value(json_object_get(cfg, "num_key_value_heads")) == spec.NKV &&
              json_is_true(json_object_get(cfg, "tie_word_embeddings")) == spec.tied &&
              !strcmp(arch ? arch : "", variant == 0   ? "Qwen2ForCausalLM"
                                        : variant == 3 ? "Qwen3ForCausalLM"
                                        : variant == 4 ? "Gemma3ForCausalLM"
                                                       : "LlamaForCausalLM") &&
              json_is_object(json_object_get(cfg, "rope_scaling")) ==
                  (spec.rope_llama3 || spec.rope_linear),
          "variant %d: config.json parses: %s, kv heads, tie, rope_scaling", variant, arch ? arch : "?");
    if (variant == 2) {
        json_t *rs = json_object_get(cfg, "rope_scaling");
        CHECK(!strcmp(json_string_value(json_object_get(rs, "rope_type")), "llama3") &&
                  json_real_value(json_object_get(rs, "factor")) == 8.0 &&
                  json_integer_value(json_object_get(rs, "original_max_position_embeddings")) == 4 &&
                  json_real_value(json_object_get(cfg, "rope_theta")) == 500000.0 &&
                  json_real_value(json_object_get(cfg, "rms_norm_eps")) == 1e-5,
              "variant 2: rope_scaling llama3 factor 8, original 4; rope_theta 500000.0; eps 1e-05");
    }
    if (variant == 4)
        CHECK(json_is_integer(json_object_get(cfg, "query_pre_attn_scalar")) &&
                  json_integer_value(json_object_get(cfg, "query_pre_attn_scalar")) ==
                      (json_int_t)spec.query_pre_attn_scalar,
              "variant 4: query_pre_attn_scalar written as the integer %g (transformers 5 wants an int)",
              spec.query_pre_attn_scalar);
    json_decref(cfg);

    /* import reads the config back to the same architecture */
    FILE *e = tmpfile();
    rc = import_hf_config(dir, test_tmp("reimport%d.yaml", variant), e);
    hzc_spec back;
    int errs = rc ? 1 : spec_load(test_tmp("reimport%d.yaml", variant), &back, e);
    fclose(e);
    CHECK(rc == 0 && errs == 0 && back.V == spec.V && back.C == spec.C && back.L == spec.L &&
              back.NH == spec.NH && back.NKV == spec.NKV && back.HD == spec.HD && back.F == spec.F &&
              back.tied == spec.tied && back.qkv_bias == spec.qkv_bias && back.qk_norm == spec.qk_norm &&
              back.rope_llama3 == spec.rope_llama3 && (float)back.norm_eps == (float)spec.norm_eps &&
              back.rope_theta == spec.rope_theta && back.rope_factor == spec.rope_factor &&
              back.rope_original_max_pos == spec.rope_original_max_pos &&
              back.family == spec.family && back.rope_linear == spec.rope_linear &&
              back.sliding_window == spec.sliding_window &&
              !memcmp(back.sliding, spec.sliding, (size_t)spec.L) &&
              back.query_pre_attn_scalar == spec.query_pre_attn_scalar &&
              back.rope_local_theta == spec.rope_local_theta,
          "variant %d: hzc import of the saved config.json gives the same architecture", variant);
    free(config);
    hz_store_free(&a);
    hz_store_free(&b);
    plan_free(&pl);
}

static void hf_errors(void)
{
    char err[HZ_HF_ERR_BYTES], sterr[HZ_ST_ERR_BYTES];
    hzc_spec spec = make_spec(0), tied_spec = make_spec(1);
    hzc_plan pl, tl;
    plan_limits none = {0, 0, PLAN_BOUNDARIES_AUTO};
    if (plan_build(&spec, &none, &pl, stderr) || plan_build(&tied_spec, &none, &tl, stderr)) {
        CHECK(0, "plans");
        return;
    }
    const hz_plan *p = &pl.p, *t = &tl.p;
    hz_store a, b, ta, tb;
    hz_store_alloc(&a, p, NULL, NULL);
    hz_store_alloc(&b, p, NULL, NULL);
    hz_store_alloc(&ta, t, NULL, NULL);
    hz_store_alloc(&tb, t, NULL, NULL);
    randomize(&a, p, 5);
    randomize(&ta, t, 6);

    /* fp32 checkpoints: the masters land exactly, lo included */
    write_custom(test_tmp("f32"), p, &a, NULL, NULL, NULL, HZ_ST_F32, sterr);
    int rc = hz_hf_load(&b, p, test_tmp("f32"), 3, err);
    int64_t diff = 0;
    for (int64_t i = 0; i < p->host_store_n; i++) diff += a.w[i] != b.w[i] || a.lo[i] != b.lo[i];
    CHECK(rc == 0 && diff == 0, "F32 checkpoint: split masters (w and lo) equal exactly (%lld differ)%s%s",
          (long long)diff, rc ? ": " : "", rc ? err : "");

    /* missing, unexpected and mis-shaped tensors, all in one message; store untouched */
    memset(b.w, 0, (size_t)b.n * 2);
    write_custom(test_tmp("bad1"), p, &a, "model.layers.1.mlp.up_proj.weight", "model.layers.0.mlp.extra.weight",
                 "model.layers.0.mlp.down_proj.weight", HZ_ST_BF16, sterr);
    rc = hz_hf_load(&b, p, test_tmp("bad1"), 2, err);
    int64_t touched = 0;
    for (int64_t i = 0; i < b.n; i++) touched += b.w[i] != 0;
    CHECK(rc == -1 && has(err, test_tmp("bad1")) && has(err, "1 missing tensor: model.layers.1.mlp.up_proj.weight") &&
              has(err, "1 unexpected tensor: model.layers.0.mlp.extra.weight") &&
              has(err, "model.layers.0.mlp.down_proj.weight is [24, 16], the model has [16, 24]") &&
              touched == 0,
          "missing, unexpected and mis-shaped listed, store untouched (%lld set): %s", (long long)touched, err);

    /* a checkpoint of another model: lists cut at 10 names */
    write_custom(test_tmp("bad2"), t, &ta, NULL, NULL, NULL, HZ_ST_BF16, sterr); /* tied, no biases */
    rc = hz_hf_load(&b, p, test_tmp("bad2"), 1, err);
    CHECK(rc == -1 && has(err, "7 missing tensors:") && has(err, "lm_head.weight") &&
              has(err, "self_attn.q_proj.bias"),
          "an untied, biased model from a tied, bias-free checkpoint: 6 biases and lm_head missing: %s", err);
    hz_st_wtensor many[40];
    char names[40][32];
    float z[1] = {0};
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "junk.%02d", i);
        many[i] = (hz_st_wtensor){names[i], HZ_ST_F32, 1, {1}, fill_copy4, z};
    }
    mkdir(test_tmp("junk"), 0777);
    hz_st_write_checkpoint(test_tmp("junk"), many, 40, 0, sterr);
    rc = hz_hf_load(&b, p, test_tmp("junk"), 1, err);
    CHECK(rc == -1 && has(err, "40 unexpected tensors: junk.00,") && has(err, "junk.09 and 30 more") &&
              has(err, "missing tensors:") && has(err, "more;"),
          "40 unknown tensors: 10 listed and '30 more': %s", err);

    /* tied: a present lm_head.weight and rotary inv_freq buffers are ignored */
    write_custom(test_tmp("tied"), p, &a, NULL, "model.layers.0.self_attn.rotary_emb.inv_freq", NULL, HZ_ST_BF16, sterr);
    rc = hz_hf_load(&b, p, test_tmp("tied"), 1, err);
    CHECK(rc == 0, "rotary_emb.inv_freq ignored (%s)", rc ? err : "");
    /* tied: a checkpoint that still carries lm_head.weight (written from an untied plan) */
    {
        hzc_spec s2 = make_spec(1);
        s2.tied = 0;
        hzc_plan u2;
        if (plan_build(&s2, &none, &u2, stderr) != 0) {
            CHECK(0, "the untied variant plans");
            return;
        }
        hz_store us;
        hz_store_alloc(&us, &u2.p, NULL, NULL);
        randomize(&us, &u2.p, 8);
        write_custom(test_tmp("tiedlm"), &u2.p, &us, NULL, NULL, NULL, HZ_ST_BF16, sterr);
        rc = hz_hf_load(&tb, t, test_tmp("tiedlm"), 2, err);
        CHECK(rc == 0, "tied plan: a checkpoint's lm_head.weight is ignored (%s)", rc ? err : "");
        const hz_tensor *wte_t = &t->tensors[0], *wte_u = &u2.p.tensors[0];
        int same = 1;
        for (int64_t i = 0; i < wte_t->rows * wte_t->cols; i++)
            same &= tb.w[wte_t->host_n + i] == us.w[wte_u->host_n + i];
        CHECK(same, "tied plan: wte is model.embed_tokens.weight");
        hz_store_free(&us);
        plan_free(&u2);
    }
    rc = hz_hf_load(&b, p, test_tmp("nothere"), 1, err);
    CHECK(rc == -1 && has(err, "nothere") && has(err, "cannot open"), "a missing directory: %s", err);

    CHECK(hz_hf_config_json(p, "gpt2") == NULL, "config.json: an unknown family gives NULL");
    char *c = hz_hf_config_json(p, "llama");
    CHECK(c && has(c, "\"Qwen2ForCausalLM\"") && has(c, "\"use_sliding_window\": false"),
          "config.json: a llama with q/k/v biases is written as Qwen2 (Llama's attention_bias "
          "would add an o_proj bias)");
    free(c);
    c = hz_hf_config_json(t, "mistral");
    CHECK(c && has(c, "\"MistralForCausalLM\"") && has(c, "\"sliding_window\": null") &&
              has(c, "\"tie_word_embeddings\": true"),
          "config.json: mistral, sliding_window null, tied");
    free(c);
    hz_store_free(&a);
    hz_store_free(&b);
    hz_store_free(&ta);
    hz_store_free(&tb);
    plan_free(&pl);
    plan_free(&tl);
}

/* ---- 3. import ---- */

static const char *llama3_8b =
    "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"attention_bias\": false,\n"
    "  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 128000,\n  \"eos_token_id\": 128001,\n"
    "  \"hidden_act\": \"silu\",\n  \"hidden_size\": 4096,\n  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 14336,\n  \"max_position_embeddings\": 131072,\n"
    "  \"mlp_bias\": false,\n  \"model_type\": \"llama\",\n  \"num_attention_heads\": 32,\n"
    "  \"num_hidden_layers\": 32,\n  \"num_key_value_heads\": 8,\n  \"pretraining_tp\": 1,\n"
    "  \"rms_norm_eps\": 1e-05,\n  \"rope_scaling\": {\n    \"factor\": 8.0,\n"
    "    \"low_freq_factor\": 1.0,\n    \"high_freq_factor\": 4.0,\n"
    "    \"original_max_position_embeddings\": 8192,\n    \"rope_type\": \"llama3\"\n  },\n"
    "  \"rope_theta\": 500000.0,\n  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"bfloat16\",\n  \"transformers_version\": \"4.43.0.dev0\",\n"
    "  \"use_cache\": true,\n  \"vocab_size\": 128256\n}\n";

/* Llama 3.2 1B in transformers 5's layout: rope_parameters holds rope_theta. */
static const char *llama32_1b_v5 =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 2048,"
    " \"intermediate_size\": 8192, \"num_attention_heads\": 32, \"num_hidden_layers\": 16,"
    " \"num_key_value_heads\": 8, \"head_dim\": 64, \"max_position_embeddings\": 131072,"
    " \"rms_norm_eps\": 1e-05, \"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0,"
    " \"factor\": 32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
    " \"original_max_position_embeddings\": 8192}, \"tie_word_embeddings\": true,"
    " \"dtype\": \"bfloat16\", \"vocab_size\": 128256}";

static const char *qwen25_05b =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0, \"bos_token_id\": 151643,"
    " \"eos_token_id\": 151643, \"hidden_act\": \"silu\", \"hidden_size\": 896, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 4864, \"max_position_embeddings\": 32768, \"max_window_layers\": 24,"
    " \"model_type\": \"qwen2\", \"num_attention_heads\": 14, \"num_hidden_layers\": 24,"
    " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0,"
    " \"sliding_window\": 32768, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"use_cache\": true, \"use_sliding_window\": false, \"vocab_size\": 151936}";

static const char *mistral_7b =
    "{\"architectures\": [\"MistralForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2,"
    " \"hidden_act\": \"silu\", \"hidden_size\": 4096, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 14336, \"max_position_embeddings\": 32768, \"model_type\": \"mistral\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"sliding_window\": 4096,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"vocab_size\": 32000}";

static const char *toy =
    "{\"model_type\": \"llama\", \"hidden_size\": 128, \"intermediate_size\": 384,"
    " \"num_attention_heads\": 4, \"num_hidden_layers\": 4, \"num_key_value_heads\": 2,"
    " \"max_position_embeddings\": 300, \"vocab_size\": 256}";

/* Import TEXT as NAME/config.json into NAME.yaml; returns the error text (malloc'd, ""
 * when none) and loads the spec into *s when it was written. */
static char *import_fixture(const char *name, const char *text, hzc_spec *s, int *rc)
{
    const char *dir = test_tmp("%s", name);
    mkdir(dir, 0777);
    test_write(test_tmp("%s/config.json", name), text, strlen(text));
    char *msg = NULL;
    size_t n = 0;
    FILE *e = open_memstream(&msg, &n);
    *rc = import_hf_config(dir, test_tmp("%s.yaml", name), e);
    if (*rc == 0 && spec_load(test_tmp("%s.yaml", name), s, e) != 0) *rc = -1;
    fclose(e);
    return msg;
}

static void import_good(void)
{
    hzc_spec s;
    int rc;
    char *msg = import_fixture("llama3-8b", llama3_8b, &s, &rc);
    CHECK(rc == 0, "llama3-8b config.json imports and loads (%s)", flat(msg));
    if (rc == 0) {
        CHECK(spec_param_count(&s) == 8030261248LL, "llama3-8b: %lld parameters, want 8030261248",
              (long long)spec_param_count(&s));
        CHECK(!strcmp(s.name, "llama3-8b") && s.family == FAMILY_LLAMA && s.HD == 128 && s.NKV == 8 &&
                  !s.tied && !s.qkv_bias && s.norm_eps == 1e-5 && s.rope_theta == 500000 &&
                  s.rope_llama3 && s.rope_factor == 8 && s.rope_low_freq_factor == 1 &&
                  s.rope_high_freq_factor == 4 && s.rope_original_max_pos == 8192,
              "llama3-8b: name, family, head_dim 128, 8 kv heads, untied, eps 1e-5, theta 500000, llama3 rope");
        CHECK(s.T == 2048 && s.micro_tokens == 8192 && s.step_tokens == 65536 && s.lr == 1e-5,
              "llama3-8b: shape 2048 / 8192 / 65536 as models/llama3-8b.yaml, lr 1e-5");
        char *y = read_text(test_tmp("llama3-8b.yaml"));
        CHECK(has(y, "# Imported by hzc import from") && has(y, "llama3-8b/config.json") &&
                  has(y, "8,030,261,248 parameters") && has(y, "norm_eps: 1e-5") && !exists(test_tmp("llama3-8b.yaml.tmp")),
              "llama3-8b.yaml: header names the source and the count; 1e-5 written as such");
        free(y);
    }
    free(msg);

    msg = import_fixture("llama32-v5", llama32_1b_v5, &s, &rc);
    CHECK(rc == 0 && s.tied && s.rope_llama3 && s.rope_factor == 32 && s.rope_theta == 500000 && s.HD == 64,
          "transformers 5 rope_parameters: llama3 factor 32, theta 500000 from inside, tied (%s)", flat(msg));
    CHECK(rc == 0 && spec_param_count(&s) == 1235814400LL, "llama 3.2 1B: %lld parameters, want 1235814400",
          (long long)spec_param_count(&s));
    free(msg);

    msg = import_fixture("qwen25", qwen25_05b, &s, &rc);
    CHECK(rc == 0 && s.family == FAMILY_QWEN2 && s.qkv_bias && s.tied && s.HD == 64 &&
              s.norm_eps == 1e-6 && s.rope_theta == 1e6 && !s.rope_llama3 &&
              spec_param_count(&s) == 494032768LL && s.step_tokens == 32768 && s.T == 2048,
          "qwen2.5-0.5b: q/k/v bias, tied, head_dim 64, 494,032,768 parameters, 32768 tokens a step (%s)", flat(msg));
    free(msg);

    msg = import_fixture("mistral", mistral_7b, &s, &rc);
    char *y = read_text(test_tmp("mistral.yaml"));
    CHECK(rc == 0 && s.family == FAMILY_MISTRAL && !s.qkv_bias && spec_param_count(&s) == 7241732096LL &&
              has(y, "sliding window (4096 tokens) is not modelled"),
          "mistral-7b: 7,241,732,096 parameters, the sliding window noted in a comment (%s)", flat(msg));
    free(y);
    free(msg);

    msg = import_fixture("toy", toy, &s, &rc);
    CHECK(rc == 0 && s.T == 300 && s.micro_tokens == 3900 && s.step_tokens == 15600 && s.HD == 32 &&
              s.norm_eps == 1e-6 && s.rope_theta == 10000,
          "a toy model (model_type only, max_position 300): seq 300, micro 3900, step 15600, "
          "HF defaults eps 1e-6 theta 10000 (%s)", flat(msg));
    free(msg);
}

static void import_bad(const char *name, const char *text, const char *phrase)
{
    hzc_spec s;
    int rc;
    char *msg = import_fixture(name, text, &s, &rc);
    const char *cfg = test_tmp("%s/config.json", name);
    char want[600];
    snprintf(want, sizeof want, "%s: error: ", cfg);
    CHECK(rc != 0 && has(msg, want) && has(msg, phrase) && !exists(test_tmp("%s.yaml", name)) &&
              !exists(test_tmp("%s.yaml.tmp", name)),
          "%s: refused naming %s, saying '%s'; nothing written: %s", name, cfg, phrase, flat(msg));
    free(msg);
}

static void import_errors(void)
{
    import_bad("gpt2", "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\"}",
               "unsupported architecture \"GPT2LMHeadModel\"");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", llama3_8b);
    char *t = strstr(buf, "\"llama3\"");
    memcpy(t, "\"yarn\"  ", 8);
    import_bad("yarn", buf, "rope type \"yarn\" is not supported");
    import_bad("linear", "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                         " \"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"vocab_size\": 100,"
                         " \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}",
               "rope_scaling: rope type \"linear\"");
    import_bad("nokey", "{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                        " \"num_hidden_layers\": 2, \"vocab_size\": 100}",
               "missing required key 'intermediate_size'");
    import_bad("ropekey", "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                          " \"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"vocab_size\": 100,"
                          " \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                          " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}}",
               "missing required key 'rope_scaling.original_max_position_embeddings'");
    import_bad("attnbias", "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                           " \"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"vocab_size\": 100,"
                           " \"attention_bias\": true}",
               "attention_bias: true is not supported");
    import_bad("gelu", "{\"model_type\": \"mistral\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                       " \"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"vocab_size\": 100,"
                       " \"hidden_act\": \"gelu\"}",
               "hidden_act: \"gelu\" is not supported");
    import_bad("kvheads", "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                          " \"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"num_hidden_layers\": 2,"
                          " \"vocab_size\": 100}",
               "multiple of num_key_value_heads (3)");
    import_bad("badint", "{\"model_type\": \"llama\", \"hidden_size\": 64.5, \"intermediate_size\": 128,"
                         " \"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"vocab_size\": 0}",
               "vocab_size: expected an integer from 1 to 2147483647, got 0");
    import_bad("mismatch", "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"qwen2\","
                           " \"hidden_size\": 64, \"intermediate_size\": 128, \"num_attention_heads\": 4,"
                           " \"num_hidden_layers\": 2, \"vocab_size\": 100}",
               "does not match the architecture LlamaForCausalLM");
    import_bad("notjson", "{\"model_type\": \"llama\",", "not valid JSON");
    import_bad("notype", "{\"hidden_size\": 64}", "missing required key 'architectures'");

    /* every error at once */
    hzc_spec s;
    int rc;
    char *msg = import_fixture("many", "{\"model_type\": \"llama\", \"hidden_act\": \"relu\","
                                       " \"rope_scaling\": {\"rope_type\": \"dynamic\"}}", &s, &rc);
    int lines = 0;
    for (const char *p = msg; (p = strchr(p, '\n')); p++) lines++;
    CHECK(rc >= 7 && lines == rc, "5 missing keys, hidden_act and rope type: %d errors, %d lines", rc, lines);
    free(msg);

    /* a directory without config.json */
    mkdir(test_tmp("noconfig"), 0777);
    char *m2 = NULL;
    size_t n = 0;
    FILE *e = open_memstream(&m2, &n);
    rc = import_hf_config(test_tmp("noconfig"), test_tmp("noconfig.yaml"), e);
    fclose(e);
    CHECK(rc != 0 && has(m2, "noconfig/config.json: error: cannot read"), "no config.json: %s", flat(m2));
    free(m2);
}

int main(void)
{
    if (test_tmp_open("hf") != 0) return 1;
    st_round_trip();
    st_bad_files();
    st_index();
    for (int v = 0; v < TEST_SPEC_VARIANTS; v++) hf_save_load(v);
    hf_errors();
    import_good();
    import_errors();
    test_tmp_close();
    TEST_END();
}
