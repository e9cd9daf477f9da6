/* compiler/spec.c - read and validate a model description (docs/spec.md) into hzc_spec.
 * Each mapping is checked against a table of its keys (field_def); values are converted
 * and range-checked as they are met, then each section checks its cross-field rules.
 * Every user error is reported with the mark of the node at fault, and checking goes on.
 * The architecture section has its own file, spec_arch.c, and the plan: section
 * spec_plan.c, on the parts in spec_read.h. */
#include "spec.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/hz.h"
#include "spec_read.h"
#include "yml.h"

/* ---- field tables --------------------------------------------------------------------- */

enum { TOP_NAME, TOP_ARCH, TOP_SHAPE, TOP_TRAINING, TOP_PLAN, TOP_N };
static const field_def top_fields[TOP_N] = {
    [TOP_NAME] = FIELD_OTHER("name", 0),
    [TOP_ARCH] = FIELD_OTHER("architecture", 1),
    [TOP_SHAPE] = FIELD_OTHER("shape", 1),
    [TOP_TRAINING] = FIELD_OTHER("training", 0),
    [TOP_PLAN] = FIELD_OTHER("plan", 0),
};

enum { S_SEQ_LEN, S_STEP, S_MICRO, S_N };
static const field_def shape_fields[S_N] = {
    [S_SEQ_LEN] = FIELD("seq_len", FT_INT, R_SIZE, 1, T),
    [S_STEP] = FIELD("tokens_per_step", FT_INT, R_SIZE, 1, step_tokens),
    [S_MICRO] = FIELD("tokens_per_micro_batch", FT_INT, R_SIZE, 0, micro_tokens),
};

enum {
    T_LR, T_BETA1, T_BETA2, T_EPS, T_WEIGHT_DECAY, T_GRAD_CLIP, T_WARMUP, T_DECAY,
    T_MIN_LR_RATIO, T_SEED, T_OPTSTATE, T_N
};
static const field_def training_fields[T_N] = {
    [T_LR] = FIELD("lr", FT_NUM, R_POS, 0, lr),
    [T_BETA1] = FIELD("beta1", FT_NUM, R_UNIT_OPEN, 0, beta1),
    [T_BETA2] = FIELD("beta2", FT_NUM, R_UNIT_OPEN, 0, beta2),
    [T_EPS] = FIELD("eps", FT_NUM, R_POS, 0, adam_eps),
    [T_WEIGHT_DECAY] = FIELD("weight_decay", FT_NUM, R_NONNEG, 0, weight_decay),
    [T_GRAD_CLIP] = FIELD("grad_clip", FT_NUM, R_NONNEG, 0, grad_clip),
    [T_WARMUP] = FIELD("warmup_steps", FT_INT, R_NONNEG, 0, warmup_steps),
    [T_DECAY] = FIELD("decay_steps", FT_INT, R_NONNEG, 0, decay_steps),
    [T_MIN_LR_RATIO] = FIELD("min_lr_ratio", FT_NUM, R_UNIT, 0, min_lr_ratio),
    [T_SEED] = FIELD("seed", FT_INT, R_NONNEG, 0, seed),
    [T_OPTSTATE] = FIELD_OTHER("optimizer_state", 0),
};


static const struct {
    const char *name;
    const field_def *defs;
    int defs_n;
} sections[] = {
    [SEC_TOP] = {"the top level", top_fields, TOP_N},
    [SEC_ARCH] = {"architecture", spec_arch_fields, SPEC_ARCH_N},
    [SEC_ROPE] = {"architecture.rope_scaling", spec_rope_fields, SPEC_ROPE_N},
    [SEC_SHAPE] = {"shape", shape_fields, S_N},
    [SEC_TRAINING] = {"training", training_fields, T_N},
    [SEC_PLAN] = {"plan", spec_plan_fields, PK_N},
};

/* ---- scalars --------------------------------------------------------------------------- */

int spec_is_null(const yml_node *node) {
    return node->kind == YML_SCALAR && node->plain &&
           (node->len == 0 || strcmp(node->text, "~") == 0 || strcmp(node->text, "null") == 0);
}

/* Parse a plain scalar of decimal digits with an optional sign. Quoted scalars are
 * strings; so are 3.5 and 1e3 here ("expected an integer"). */
static int parse_int(spec_ctx *c, const char *key, const yml_node *node, int64_t *out) {
    char buf[48];
    const char *s = node->kind == YML_SCALAR ? node->text : "";
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    int digits = node->kind == YML_SCALAR && node->plain && s[i] != '\0';
    for (; digits && s[i]; i++) digits = s[i] >= '0' && s[i] <= '9';
    if (!digits || i != node->len) {
        spec_error(c, node, "%s: expected an integer, got %s%s", key, spec_describe(node, buf),
                   node->kind == YML_SCALAR && !node->plain ? " (quoted, so a string)" : "");
        return 0;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) {
        spec_error(c, node, "%s: integer %s is out of range", key, spec_describe(node, buf));
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}

/* Parse a plain scalar as a decimal number (integer, fraction or exponent form: 1e-5 is
 * a number here, unlike in YAML 1.1). inf, nan and hex floats are refused. */
static int parse_num(spec_ctx *c, const char *key, const yml_node *node, double *out) {
    char buf[48];
    int ok = node->kind == YML_SCALAR && node->plain && node->len > 0 &&
             strspn(node->text, "0123456789+-.eE") == node->len;
    char *end = NULL;
    double v = ok ? strtod(node->text, &end) : 0.0;
    if (!ok || end != node->text + node->len) {
        spec_error(c, node, "%s: expected a number, got %s%s", key, spec_describe(node, buf),
                   node->kind == YML_SCALAR && !node->plain ? " (quoted, so a string)" : "");
        return 0;
    }
    if (!isfinite(v) || (v != 0.0 && fabs(v) < 1e-300)) {
        spec_error(c, node, "%s: number %s is out of range", key, spec_describe(node, buf));
        return 0;
    }
    *out = v;
    return 1;
}

/* Lower-case copy of a short scalar for keyword comparison ("" when it does not fit). */
static void lower(const yml_node *node, char *buf, size_t size) {
    buf[0] = '\0';
    if (node->kind != YML_SCALAR || node->len >= size) return;
    for (size_t i = 0; i <= node->len; i++) {
        char ch = node->text[i];
        buf[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
}

/* true/false/yes/no, in any case. */
static int parse_bool(spec_ctx *c, const char *key, const yml_node *node, int *out) {
    char word[8], buf[48];
    lower(node, word, sizeof word);
    int plain = node->kind == YML_SCALAR && node->plain;
    if (plain && (strcmp(word, "true") == 0 || strcmp(word, "yes") == 0)) {
        *out = 1;
        return 1;
    }
    if (plain && (strcmp(word, "false") == 0 || strcmp(word, "no") == 0)) {
        *out = 0;
        return 1;
    }
    spec_error(c, node, "%s: expected true or false, got %s", key, spec_describe(node, buf));
    return 0;
}

/* Levenshtein distance between A and B (both at most 63 bytes; longer gives 99). */
static int edit_distance(const char *a, const char *b) {
    size_t an = strlen(a), bn = strlen(b);
    if (an > 63 || bn > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= bn; j++) row[j] = (int)j;
    for (size_t i = 1; i <= an; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= bn; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[bn];
}

/* The index of the closest of NAMES to WORD within edit distance 3 (and closer than the
 * candidate's own length, so that "x" does not suggest "lr"), or -1. */
static int closest(const char *word, const char *const *names, int names_n) {
    int best = -1, best_d = 4;
    for (int i = 0; i < names_n; i++) {
        int d = edit_distance(word, names[i]);
        if (d < best_d && d < (int)strlen(names[i])) {
            best = i;
            best_d = d;
        }
    }
    return best;
}

int spec_parse_choice(spec_ctx *c, const char *key, const yml_node *node,
                        const char *const *names, int names_n, const char *what) {
    char buf[48];
    if (node->kind != YML_SCALAR) {
        spec_error(c, node, "%s: expected a name, got %s", key, spec_describe(node, buf));
        return -1;
    }
    for (int i = 0; i < names_n; i++)
        if (strcmp(node->text, names[i]) == 0) return i;
    char list[96] = "";
    for (int i = 0; i < names_n; i++) {
        strcat(list, i == 0 ? "" : i + 1 == names_n ? " or " : ", ");
        strcat(list, names[i]);
    }
    int near = closest(node->text, names, names_n);
    if (near >= 0)
        spec_error(c, node, "%s: %s %s; did you mean '%s'? (supported: %s)", key, what,
                   spec_describe(node, buf), names[near], list);
    else
        spec_error(c, node, "%s: %s %s (supported: %s)", key, what, spec_describe(node, buf), list);
    return -1;
}

/* ---- mappings -------------------------------------------------------------------------- */

/* Convert and range-check one FT_INT/FT_NUM/FT_BOOL value into SPEC. */
static int load_field(spec_ctx *c, const field_def *def, const yml_node *node, hzc_spec *spec) {
    char buf[48];
    void *dst = (char *)spec + def->off;
    int64_t iv = 0;
    double v = 0.0;
    switch (def->type) {
    case FT_BOOL: return parse_bool(c, def->key, node, (int *)dst);
    case FT_INT:
        if (!parse_int(c, def->key, node, &iv)) return 0;
        *(int64_t *)dst = iv;
        v = (double)iv;
        break;
    case FT_NUM:
        if (!parse_num(c, def->key, node, &v)) return 0;
        *(double *)dst = v;
        break;
    case FT_OTHER: return 1;
    }
    const char *got = spec_describe(node, buf);
    switch (def->range) {
    case R_ANY: return 1;
    case R_SIZE:
    case R_LAYERS: {
        long long max = def->range == R_LAYERS ? SPEC_MAX_LAYERS : SPEC_MAX_SIZE;
        if (iv <= 0) {
            spec_error(c, node, "%s: must be positive, got %s", def->key, got);
            return 0;
        }
        if (iv > max) {
            spec_error(c, node, "%s: must be at most %lld, got %s", def->key, max, got);
            return 0;
        }
        return 1;
    }
    case R_NONNEG:
        if (v < 0) spec_error(c, node, "%s: must be >= 0, got %s", def->key, got);
        return v >= 0;
    case R_POS:
        if (v <= 0) spec_error(c, node, "%s: must be > 0, got %s", def->key, got);
        return v > 0;
    case R_UNIT_OPEN:
        if (v < 0 || v >= 1) spec_error(c, node, "%s: must be in [0, 1), got %s", def->key, got);
        return v >= 0 && v < 1;
    case R_UNIT:
        if (v < 0 || v > 1) spec_error(c, node, "%s: must be in [0, 1], got %s", def->key, got);
        return v >= 0 && v <= 1;
    case R_GPUS:
        if (iv < 1 || iv > SPEC_MAX_GPUS)
            spec_error(c, node, "%s: must be a number of GPUs of one host, 1 to %lld (each runs "
                       "at least one micro-batch), got %s", def->key, (long long)SPEC_MAX_GPUS, got);
        return iv >= 1 && iv <= SPEC_MAX_GPUS;
    case R_HOSTS:
        if (iv < 1 || iv > SPEC_MAX_HOSTS)
            spec_error(c, node, "%s: must be a number of hosts, 1 to %lld (each GPU runs at "
                       "least one micro-batch), got %s", def->key, (long long)SPEC_MAX_HOSTS, got);
        return iv >= 1 && iv <= SPEC_MAX_HOSTS;
    case R_BLOCKS: {
        int64_t L = spec->L >= 1 && spec->L <= SPEC_MAX_LAYERS ? spec->L : -1;
        if (L >= 0 && (iv < 0 || iv > L))
            spec_error(c, node, "%s: must be in 0..%lld (architecture.num_layers), got %s",
                       def->key, (long long)L, got);
        else if (iv < 0)
            spec_error(c, node, "%s: must be >= 0 (a number of blocks), got %s", def->key, got);
        return iv >= 0 && (L < 0 || iv <= L);
    }
    }
    return 1;
}

/* Report an unknown KEY in section SECTION: point to the section it belongs in, or
 * suggest the nearest valid key of this section. Returns the index of the suggested
 * field, or -1: a suggested required key is not reported missing as well. */
static int unknown_key(spec_ctx *c, int section, const yml_node *key) {
    char buf[48];
    const char *where = sections[section].name;
    const char *in = section == SEC_TOP ? "at" : "in";
    for (size_t s = 0; s < sizeof sections / sizeof *sections; s++) {
        if ((int)s == section) continue;
        for (int i = 0; i < sections[s].defs_n; i++) {
            if (strcmp(sections[s].defs[i].key, key->text) == 0) {
                spec_error(c, key, "unknown key %s %s %s; it belongs in %s",
                           spec_describe(key, buf), in, where, sections[s].name);
                return -1;
            }
        }
    }
    const char *names[SPEC_MAX_FIELDS];
    int names_n = sections[section].defs_n;
    assert(names_n <= SPEC_MAX_FIELDS);
    for (int i = 0; i < names_n; i++) names[i] = sections[section].defs[i].key;
    int near = closest(key->text, names, names_n);
    if (near < 0) {
        spec_error(c, key, "unknown key %s %s %s", spec_describe(key, buf), in, where);
        return -1;
    }
    spec_error(c, key, "unknown key %s %s %s; did you mean '%s'?", spec_describe(key, buf), in,
               where, names[near]);
    return near;
}

int spec_load_section(spec_ctx *c, int section, const yml_node *key_node, const yml_node *map,
                        hzc_spec *spec, field_val *vals) {
    char buf[48];
    const field_def *defs = sections[section].defs;
    int defs_n = sections[section].defs_n;
    const char *name = sections[section].name;
    const char *leaf = strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
    memset(vals, 0, (size_t)defs_n * sizeof *vals);
    if (map->kind != YML_MAPPING && !spec_is_null(map)) {
        if (section == SEC_TOP)
            spec_error(c, map, "expected a mapping with keys architecture, shape, training and "
                               "plan at the top level, got %s", spec_describe(map, buf));
        else
            spec_error(c, map, "%s: expected a mapping, got %s", leaf, spec_describe(map, buf));
        return 0;
    }
    int pairs_n = map->kind == YML_MAPPING ? map->n : 0;
    int suggested[SPEC_MAX_FIELDS] = {0};
    for (int p = 0; p < pairs_n; p++) {
        const yml_node *key = map->items[2 * p], *value = map->items[2 * p + 1];
        if (key->kind != YML_SCALAR) {
            spec_error(c, key, "expected a key name, got %s", yml_kind_name(key->kind));
            continue;
        }
        int f = 0;
        while (f < defs_n && strcmp(defs[f].key, key->text) != 0) f++;
        if (f == defs_n) {
            int near = unknown_key(c, section, key);
            if (near >= 0) suggested[near] = 1;
            continue;
        }
        if (vals[f].key) {
            spec_error(c, key, "duplicate key %s (first given at %d:%d)", spec_describe(key, buf),
                       vals[f].key->line, vals[f].key->col);
            continue;
        }
        vals[f].key = key;
        vals[f].value = value;
        vals[f].ok = load_field(c, &defs[f], value, spec);
    }
    const yml_node *at = key_node ? key_node : map;
    for (int f = 0; f < defs_n; f++) {
        if (defs[f].required && !vals[f].key && !suggested[f]) {
            if (section == SEC_TOP)
                spec_error(c, at, "missing required section '%s'", defs[f].key);
            else
                spec_error(c, at, "%s: missing required key '%s'", leaf, defs[f].key);
        }
    }
    return 1;
}

/* ---- sections (the architecture's are in spec_arch.c) ------------------------------ */

/* Load the shape section; *step_at is set to tokens_per_step's value node (NULL when
 * absent), where the layers-times-micro-batches bound is reported. */
static void load_shape(spec_ctx *c, const field_val *at, hzc_spec *spec,
                       const yml_node **step_at) {
    field_val v[S_N];
    if (!spec_load_section(c, SEC_SHAPE, at->key, at->value, spec, v)) return;
    *step_at = v[S_STEP].value;
    /* tokens_per_micro_batch defaults to tokens_per_step (no gradient accumulation) */
    int micro_given = v[S_MICRO].value != NULL;
    int micro_ok = micro_given ? v[S_MICRO].ok : v[S_STEP].ok;
    if (!micro_given) spec->micro_tokens = spec->step_tokens;
    if (micro_given && micro_ok && v[S_STEP].ok && spec->step_tokens % spec->micro_tokens != 0)
        spec_error(c, v[S_STEP].value,
                   "tokens_per_step (%lld) must be a multiple of tokens_per_micro_batch (%lld)",
                   (long long)spec->step_tokens, (long long)spec->micro_tokens);
    else if (micro_given && micro_ok && v[S_STEP].ok &&
             spec->step_tokens / spec->micro_tokens > SPEC_MAX_MICRO_BATCHES)
        spec_error(c, v[S_STEP].value,
                   "tokens_per_step (%lld) is %lld micro-batches of %lld tokens; at most %lld "
                   "(raise tokens_per_micro_batch)",
                   (long long)spec->step_tokens, (long long)(spec->step_tokens / spec->micro_tokens),
                   (long long)spec->micro_tokens, SPEC_MAX_MICRO_BATCHES);
    if (micro_ok && v[S_SEQ_LEN].ok && spec->micro_tokens % spec->T != 0)
        spec_error(c, micro_given ? v[S_MICRO].value : v[S_STEP].value,
                   "%s (%lld) must be a multiple of seq_len (%lld): a micro-batch holds whole "
                   "sequences",
                   micro_given ? "tokens_per_micro_batch" : "tokens_per_step",
                   (long long)spec->micro_tokens, (long long)spec->T);
}

static void load_name(spec_ctx *c, const yml_node *node, hzc_spec *spec) {
    char buf[48];
    if (node->kind != YML_SCALAR || node->len == 0) {
        spec_error(c, node, "name: expected a name, got %s", spec_describe(node, buf));
        return;
    }
    if (node->len >= sizeof spec->name) {
        spec_error(c, node, "name: at most %d characters, got %zu", (int)sizeof spec->name - 1,
                   node->len);
        return;
    }
    /* the name ends up in file names and generated identifiers' comments */
    if (strspn(node->text, SPEC_NAME_CHARS) != node->len) {
        spec_error(c, node, "name: %s may hold only letters, digits, '.', '_' and '-'",
                   spec_describe(node, buf));
        return;
    }
    memcpy(spec->name, node->text, node->len + 1);
}

void spec_name_from_path(const char *path, char name[64]) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".yaml") == 0)
        n -= 5;
    else if (n > 4 && strcmp(base + n - 4, ".yml") == 0)
        n -= 4;
    if (n > 63) n = 63;
    memcpy(name, base, n);
    name[n] = '\0';
}

/* Defaults of every optional field; the name is PATH's base name less .yaml or .yml. */
static void spec_defaults(hzc_spec *spec, const char *path) {
    memset(spec, 0, sizeof *spec);
    spec_name_from_path(path, spec->name);
    snprintf(spec->path, sizeof spec->path, "%s", path);
    spec->norm_eps = 1e-5;
    spec->rope_theta = 10000.0;
    spec->rope_local_theta = 10000.0;
    spec->lr = 3e-4;
    spec->beta1 = 0.9;
    spec->beta2 = 0.95;
    spec->adam_eps = 1e-8;
    spec->weight_decay = 0.1;
    spec->grad_clip = 1.0;
    spec->min_lr_ratio = 0.1;
    spec->seed = 1337;
}

int spec_load(const char *path, hzc_spec *spec, FILE *err) {
    return spec_load_overrides(path, NULL, 0, spec, err);
}

int spec_load_tree(const char *path, yml_node *root, const char *const *overrides,
                   hzc_spec *spec, FILE *err) {
    spec_ctx c = {path, err, 0, overrides};
    spec_defaults(spec, path);

    field_val top[TOP_N];
    const yml_node *step_at = NULL;
    if (spec_load_section(&c, SEC_TOP, NULL, root, spec, top)) {
        if (top[TOP_NAME].value) load_name(&c, top[TOP_NAME].value, spec);
        if (top[TOP_ARCH].value) spec_load_architecture(&c, &top[TOP_ARCH], spec);
        if (top[TOP_SHAPE].value) load_shape(&c, &top[TOP_SHAPE], spec, &step_at);
        if (top[TOP_TRAINING].value) {
            field_val v[T_N];
            if (spec_load_section(&c, SEC_TRAINING, top[TOP_TRAINING].key,
                                  top[TOP_TRAINING].value, spec, v) &&
                v[T_OPTSTATE].value) {
                int m = spec_parse_choice(&c, "optimizer_state", v[T_OPTSTATE].value,
                                          hz_optstate_names, HZ_OPTSTATE_MODE_N,
                                          "unknown optimizer-state precision");
                if (m >= 0) spec->optimizer_state = m, spec->optimizer_state_set = 1;
            }
        }
        if (top[TOP_PLAN].value) spec_load_plan(&c, &top[TOP_PLAN], spec);
    }
    double params = c.errors_n == 0 ? spec_param_count_fp(spec) : 0.0;
    if (params > SPEC_MAX_PARAMS)
        spec_error(&c, top[TOP_ARCH].key, "architecture: %.3g parameters is more than hzc "
                   "supports (2^50)", params);
    int64_t micro_n = c.errors_n == 0 ? spec->step_tokens / spec->micro_tokens : 0;
    if (c.errors_n == 0 && spec->L * micro_n > SPEC_MAX_LAYER_PASSES)
        spec_error(&c, step_at, "tokens_per_step: %lld layers times %lld micro-batches is %lld "
                   "layer passes a step; the schedule holds at most %lld (raise "
                   "tokens_per_micro_batch)",
                   (long long)spec->L, (long long)micro_n, (long long)(spec->L * micro_n),
                   SPEC_MAX_LAYER_PASSES);
    if (c.errors_n > SPEC_MAX_ERRORS)
        fprintf(err, "%s: note: %d more errors not shown\n", path, c.errors_n - SPEC_MAX_ERRORS);
    return c.errors_n;
}
