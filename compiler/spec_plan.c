/* compiler/spec_plan.c - the plan: section of a model description (docs/spec.md "plan"):
 * reading it into spec_plan, writing it as YAML, and rewriting a spec file with another
 * one (hzc tune -o) while every other line stays byte for byte as it was. */
#include "spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/hz.h"
#include "spec_read.h"
#include "yml.h"

const field_def spec_plan_fields[PK_N] = {
    [PK_RESIDENT_BLOCKS] = FIELD("resident_blocks", FT_INT, R_BLOCKS, 0, plan.resident_blocks),
    [PK_RESIDENT_ENDS] = FIELD("resident_ends", FT_BOOL, R_ANY, 0, plan.resident_ends),
    [PK_KEEP] = FIELD("keep_activations", FT_INT, R_BLOCKS, 0, plan.keep_blocks),
    [PK_WEIGHT_SLOTS] = FIELD_OTHER("weight_slots", 0),
    [PK_HOST_GRAD] = FIELD_OTHER("host_gradients", 0),
    [PK_BOUNDARIES] = FIELD_OTHER("boundaries", 0),
    [PK_GPU_GRAD_BLOCKS] = FIELD("gpu_gradient_blocks", FT_INT, R_BLOCKS, 0, plan.gpu_grad_blocks),
    [PK_GPU_GRAD_ENDS] = FIELD("gpu_gradient_ends", FT_BOOL, R_ANY, 0, plan.gpu_grad_ends),
    [PK_GPUS] = FIELD("gpus", FT_INT, R_GPUS, 0, plan.gpus),
    [PK_HOSTS] = FIELD("hosts", FT_INT, R_HOSTS, 0, plan.hosts),
    [PK_KEEP_MLP_OUT] = FIELD("keep_mlp_outputs", FT_INT, R_BLOCKS, 0, plan.keep_mlp_out_blocks),
};

static const char *const grad_names[] = {
    [SPEC_GRAD_AUTO] = "auto", [SPEC_GRAD_FP32] = "fp32", [SPEC_GRAD_BF16] = "bf16"};
static const char *const where_names[] = {
    [SPEC_WHERE_AUTO] = "auto", [SPEC_WHERE_GPU] = "gpu", [SPEC_WHERE_HOST] = "host"};

/* ---- reading --------------------------------------------------------------------------- */

void spec_load_plan(spec_ctx *c, const field_val *at, hzc_spec *spec) {
    char buf[48];
    field_val v[PK_N];
    spec_plan *p = &spec->plan;
    p->set = 1;
    if (!spec_load_section(c, SEC_PLAN, at->key, at->value, spec, v)) return;
    spec_pos *pos[PK_N] = {
        [PK_RESIDENT_BLOCKS] = &p->pos_resident_blocks, [PK_RESIDENT_ENDS] = &p->pos_resident_ends,
        [PK_KEEP] = &p->pos_keep_blocks, [PK_WEIGHT_SLOTS] = &p->pos_weight_slots,
        [PK_HOST_GRAD] = &p->pos_host_grad, [PK_BOUNDARIES] = &p->pos_boundaries,
        [PK_GPU_GRAD_BLOCKS] = &p->pos_gpu_grad_blocks, [PK_GPU_GRAD_ENDS] = &p->pos_gpu_grad_ends,
        [PK_GPUS] = &p->pos_gpus, [PK_HOSTS] = &p->pos_hosts,
        [PK_KEEP_MLP_OUT] = &p->pos_keep_mlp_out};
    for (int k = 0; k < PK_N; k++)
        if (v[k].value) *pos[k] = (spec_pos){v[k].value->line, v[k].value->col};

    const yml_node *ws = v[PK_WEIGHT_SLOTS].value;
    if (ws) {
        int plain = ws->kind == YML_SCALAR && ws->plain;
        if (plain && strcmp(ws->text, "auto") == 0)
            p->weight_slots = 0;
        else if (plain && (strcmp(ws->text, "2") == 0 || strcmp(ws->text, "3") == 0))
            p->weight_slots = ws->text[0] - '0';
        else
            spec_error(c, ws, "weight_slots: must be 2 or 3 (or auto: the planner's choice), "
                              "got %s%s", spec_describe(ws, buf),
                       ws->kind == YML_SCALAR && !ws->plain ? " (quoted, so a string)" : "");
    }
    if (v[PK_HOST_GRAD].value) {
        int g = spec_parse_choice(c, "host_gradients", v[PK_HOST_GRAD].value, grad_names, 3,
                                  "unknown precision");
        if (g >= 0) p->host_grad = g;
    }
    if (v[PK_BOUNDARIES].value) {
        int w = spec_parse_choice(c, "boundaries", v[PK_BOUNDARIES].value, where_names, 3,
                                  "unknown place");
        if (w >= 0) p->boundaries = w;
    }
}

/* ---- writing --------------------------------------------------------------------------- */

/* NAMES[I] of a three-name list; auto (names[0]) for a value out of the list. */
static const char *choice_name(const char *const *names, int i) {
    return i >= 0 && i < 3 ? names[i] : names[0];
}

static void plan_line(FILE *out, const char *key, const char *value, const char *comment) {
    char kv[64];
    snprintf(kv, sizeof kv, "%s: %s", key, value);
    fprintf(out, "  %-24s # %s\n", kv, comment);
}

void spec_plan_write(FILE *out, const spec_plan *p) {
    char n[32];
    fprintf(out, "plan:\n");
    snprintf(n, sizeof n, "%lld", (long long)p->resident_blocks);
    plan_line(out, "resident_blocks", n,
              "the first N blocks keep weights, fp32 master and Adam moments on the GPU");
    plan_line(out, "resident_ends", p->resident_ends ? "true" : "false",
              "the embedding and the head stay on the GPU too");
    snprintf(n, sizeof n, "%lld", (long long)p->keep_blocks);
    plan_line(out, "keep_activations", n,
              "the last N blocks keep their forward activations for the backward");
    if (p->keep_mlp_out_blocks > 0) { /* absent: none (a model without post norms has none) */
        snprintf(n, sizeof n, "%lld", (long long)p->keep_mlp_out_blocks);
        plan_line(out, "keep_mlp_outputs", n,
                  "the first N other blocks keep their MLP output: no down_proj recompute");
    }
    snprintf(n, sizeof n, "%d", p->weight_slots);
    plan_line(out, "weight_slots", p->weight_slots ? n : "auto",
              "GPU slots the streamed blocks take turns in: 2, 3 or auto");
    snprintf(n, sizeof n, "%lld", (long long)p->gpu_grad_blocks);
    plan_line(out, "gpu_gradient_blocks", n,
              "the first N blocks hold their gradients on the GPU until the update");
    plan_line(out, "gpu_gradient_ends", p->gpu_grad_ends ? "true" : "false",
              "the embedding and the head too");
    plan_line(out, "host_gradients", choice_name(grad_names, p->host_grad),
              "precision of the gradients held on the host: auto, fp32 or bf16");
    plan_line(out, "boundaries", choice_name(where_names, p->boundaries),
              "where each layer's input waits for the backward: auto, gpu or host");
    if (p->gpus > 1) { /* absent: one GPU */
        snprintf(n, sizeof n, "%lld", (long long)p->gpus);
        plan_line(out, "gpus", n, "GPUs of one host sharing the step, data parallel");
    }
    if (p->hosts > 1) { /* absent: one host */
        snprintf(n, sizeof n, "%lld", (long long)p->hosts);
        plan_line(out, "hosts", n, "hosts sharing the step, each with its own host store");
    }
}

/* ---- rewriting a spec file ------------------------------------------------------------- */

/* Byte offset of the start of 1-based LINE of TEXT (LEN when it has fewer lines). */
static size_t line_start(const char *text, size_t len, int line) {
    size_t i = 0;
    for (int l = 1; l < line && i < len; i++)
        if (text[i] == '\n') l++;
    return i;
}

/* Offset just past the line that starts at I (its newline included). */
static size_t line_end(const char *text, size_t len, size_t i) {
    const char *nl = memchr(text + i, '\n', len - i);
    return nl ? (size_t)(nl - text) + 1 : len;
}

/* Byte offset of NODE's first character: its line's start plus col - 1 UTF-8 characters. */
static size_t node_offset(const char *text, size_t len, const yml_node *node) {
    size_t i = line_start(text, len, node->line);
    for (int col = 1; col < node->col && i < len; col++)
        for (i++; i < len && ((unsigned char)text[i] & 0xC0) == 0x80; i++) continue;
    return i;
}

/* The last line any node of the tree at NODE stands on. */
static int last_line(const yml_node *node) {
    int line = node->line;
    int slots_n = node->kind == YML_MAPPING    ? 2 * node->n
                  : node->kind == YML_SEQUENCE ? node->n
                                               : 0;
    for (int i = 0; i < slots_n; i++) {
        int l = last_line(node->items[i]);
        if (l > line) line = l;
    }
    return line;
}

/* The value of top-level key NAME in ROOT, its key in *key; NULL when absent. */
static const yml_node *top_value(const yml_node *root, const char *name, const yml_node **key) {
    for (int i = 0; i < root->n; i++) {
        const yml_node *k = root->items[2 * i];
        if (k->kind == YML_SCALAR && strcmp(k->text, name) == 0) {
            *key = k;
            return root->items[2 * i + 1];
        }
    }
    return NULL;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; }

/* A block mapping begins at its first key; a flow one at its '{'. */
static int is_block_mapping(const char *text, size_t len, const yml_node *node) {
    return node->kind == YML_MAPPING && text[node_offset(text, len, node)] != '{';
}

/* One change to the text: bytes [start, end) give way to the plan section, to a key's value
 * (inline), to the key's line (with INDENT spaces before it) or to a new section holding it. */
enum { EDIT_PLAN, EDIT_VALUE, EDIT_LINE, EDIT_SECTION };
typedef struct {
    size_t start, end;
    int kind;
    int indent;
    const char *section, *key; /* EDIT_VALUE, EDIT_LINE, EDIT_SECTION: what is set */
    char value[32];
} spec_edit;

/* The edit that sets SECTION.KEY to VALUE: its value replaced, or the key added as the
 * section's last line, or (no such section) the section added at the end. 0, or 1 after
 * saying why. */
static int edit_key(const char *path, const char *text, size_t len, const yml_node *root,
                    const char *section, const char *key_name, const char *value_text,
                    spec_edit *e, FILE *err) {
    const yml_node *key = NULL, *sec = top_value(root, section, &key);
    e->section = section;
    e->key = key_name;
    snprintf(e->value, sizeof e->value, "%s", value_text);
    if (!sec) {
        e->kind = EDIT_SECTION;
        e->start = e->end = len;
        return 0;
    }
    if (!is_block_mapping(text, len, sec)) {
        fprintf(err, "%s:%d:%d: error: hzc sets %s only in a block-style %s: section (one key "
                     "per line)\n", path, sec->line, sec->col, key_name, section);
        return 1;
    }
    const yml_node *value = NULL;
    for (int i = 0; i < sec->n && !value; i++)
        if (sec->items[2 * i]->kind == YML_SCALAR && strcmp(sec->items[2 * i]->text, key_name) == 0)
            value = sec->items[2 * i + 1];
    if (value) {
        e->kind = EDIT_VALUE;
        e->start = node_offset(text, len, value);
        e->end = e->start + (value->kind == YML_SCALAR ? value->len : 0);
        if (value->kind != YML_SCALAR || !value->plain || e->end > len ||
            memcmp(text + e->start, value->text, value->len) != 0) {
            fprintf(err, "%s:%d:%d: error: %s: hzc replaces only a plain value on one line\n", path,
                    value->line, value->col, key_name);
            return 1;
        }
    } else {
        e->kind = EDIT_LINE;
        e->start = e->end = line_start(text, len, last_line(sec) + 1);
        e->indent = sec->n > 0 ? sec->items[0]->col - 1 : 2;
    }
    return 0;
}

/* Find the edits (at most three: micro-batch, optimizer state, plan); 0, or the number of
 * errors reported. */
static int find_edits(const char *path, const char *text, size_t len, const yml_node *root,
                      int64_t micro_tokens, int optimizer_state, spec_edit *edits, int *edits_n,
                      FILE *err) {
    *edits_n = 0;
    if (!is_block_mapping(text, len, root)) {
        fprintf(err, "%s:%d:%d: error: hzc rewrites the plan: section only in a spec whose top "
                     "level is a block mapping (one key per line)\n", path, root->line, root->col);
        return 1;
    }
    const yml_node *key = NULL;
    if (micro_tokens > 0 && top_value(root, "shape", &key) != NULL) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)micro_tokens);
        if (edit_key(path, text, len, root, "shape", "tokens_per_micro_batch", v,
                     &edits[(*edits_n)++], err))
            return 1;
    }
    if (optimizer_state >= 0 &&
        edit_key(path, text, len, root, "training", "optimizer_state",
                 hz_optstate_names[optimizer_state], &edits[(*edits_n)++], err))
        return 1;
    const yml_node *plan = top_value(root, "plan", &key);
    spec_edit *e = &edits[(*edits_n)++];
    e->kind = EDIT_PLAN;
    if (!plan) {
        e->start = e->end = len;
        return 0;
    }
    if (key->col != 1) {
        fprintf(err, "%s:%d:%d: error: hzc rewrites a plan: section only when its key starts "
                     "the line\n", path, key->line, key->col);
        return 1;
    }
    e->start = line_start(text, len, key->line);
    e->end = line_end(text, len, e->start);
    for (size_t i = e->end; i < len;) {
        size_t next = line_end(text, len, i);
        if (!is_space(text[i]) && text[i] != '\n') break; /* column 1: the next section */
        size_t j = i;
        while (j < next && is_space(text[j])) j++;
        if (j < next && text[j] != '\n') e->end = next; /* not blank: still the section */
        i = next;
    }
    return 0;
}

/* Writing the new file: tracks the last byte, so that a line-sized insertion after a last
 * line without a newline starts on a line of its own. */
typedef struct {
    FILE *f;
    int last;
} spec_out;

static void out_bytes(spec_out *o, const char *s, size_t n) {
    if (n == 0) return;
    fwrite(s, 1, n, o->f);
    o->last = (unsigned char)s[n - 1];
}

static void out_line_break(spec_out *o) {
    if (o->last && o->last != '\n') out_bytes(o, "\n", 1);
}

int spec_write_tuned(const char *in_path, const spec_plan *p, int64_t micro_tokens,
                     int optimizer_state, const char *out_path, FILE *err) {
    int errors_n = 0;
    char *text = NULL;
    size_t len = 0;
    yml_node *root = yml_load_text(in_path, err, &errors_n, &text, &len);
    if (!root) return errors_n ? errors_n : 1;
    spec_edit edits[3];
    int edits_n = 0;
    errors_n = find_edits(in_path, text, len, root, micro_tokens, optimizer_state, edits,
                          &edits_n, err);
    yml_free(root);
    if (errors_n) {
        free(text);
        return errors_n;
    }
    for (int i = 1; i < edits_n; i++) /* by position; at the same one (the end) as found */
        for (int j = i; j > 0 && edits[j].start < edits[j - 1].start; j--) {
            spec_edit t = edits[j];
            edits[j] = edits[j - 1];
            edits[j - 1] = t;
        }
    spec_out o = {fopen(out_path, "w"), 0};
    if (!o.f) {
        fprintf(err, "%s: error: cannot write: %s\n", out_path, strerror(errno));
        free(text);
        return 1;
    }
    errno = 0;
    size_t at = 0;
    for (int i = 0; i < edits_n; i++) {
        const spec_edit *e = &edits[i];
        out_bytes(&o, text + at, e->start - at);
        char line[160];
        switch (e->kind) {
        case EDIT_VALUE:
            out_bytes(&o, e->value, strlen(e->value));
            break;
        case EDIT_LINE:
            out_line_break(&o);
            snprintf(line, sizeof line, "%*s%s: %s\n", e->indent, "", e->key, e->value);
            out_bytes(&o, line, strlen(line));
            break;
        case EDIT_SECTION:
            out_line_break(&o);
            snprintf(line, sizeof line, "%s:\n  %s: %s\n", e->section, e->key, e->value);
            out_bytes(&o, line, strlen(line));
            break;
        case EDIT_PLAN:
            out_line_break(&o);
            spec_plan_write(o.f, p);
            o.last = '\n';
            break;
        }
        at = e->end;
    }
    out_bytes(&o, text + at, len - at);
    free(text);
    int bad = ferror(o.f);
    if (fclose(o.f) != 0 || bad) {
        fprintf(err, "%s: error: cannot write: %s\n", out_path, strerror(errno ? errno : EIO));
        return 1;
    }
    return 0;
}

int spec_write_with_plan(const char *in_path, const spec_plan *p, const char *out_path,
                         FILE *err) {
    return spec_write_tuned(in_path, p, 0, -1, out_path, err);
}
