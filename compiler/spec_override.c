/* compiler/spec_override.c - command-line overrides of a spec, KEY=VALUE with a dotted key
 * (shape.seq_len=4096): each VALUE is parsed as YAML and spliced into the file's tree at
 * KEY before validation, so it is checked exactly as if it were in the file. */
#include <stdlib.h>
#include <string.h>

#include "spec_read.h"

int spec_is_override(const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return 0;
    for (const char *p = arg; p < eq; p++)
        if (!(*p == '_' || *p == '.' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

/* Every node of the tree N comes from override K: its messages name the override. */
static void mark(yml_node *n, int k) {
    n->line = -k;
    n->col = 0;
    int slots_n = n->kind == YML_MAPPING ? 2 * n->n : n->n;
    for (int i = 0; i < slots_n; i++)
        if (n->items[i]) mark(n->items[i], k);
}

static yml_node *new_node(yml_kind kind, const char *text, size_t len, int k) {
    yml_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = -k;
    if (kind == YML_SCALAR) {
        n->text = malloc(len + 1);
        if (!n->text) {
            free(n);
            return NULL;
        }
        memcpy(n->text, text, len);
        n->text[len] = 0;
        n->len = len;
        n->plain = 1;
    }
    return n;
}

/* Append the pair KEY: VALUE to MAP (both freed when it cannot grow). */
static int add_pair(yml_node *map, yml_node *key, yml_node *value) {
    yml_node **items = key && value ? realloc(map->items, (size_t)(2 * map->n + 2) * sizeof *items)
                                    : NULL;
    if (!items) {
        yml_free(key);
        yml_free(value);
        return 0;
    }
    map->items = items;
    items[2 * map->n] = key;
    items[2 * map->n + 1] = value;
    map->n++;
    return 1;
}

/* The index of the pair whose key is NAME (LEN bytes) in MAP, -1 when none. */
static int find_key(const yml_node *map, const char *name, size_t len) {
    for (int i = 0; i < map->n; i++) {
        const yml_node *key = map->items[2 * i];
        if (key && key->kind == YML_SCALAR && key->len == len && !memcmp(key->text, name, len))
            return i;
    }
    return -1;
}

/* Splice override K (TEXT) into ROOT; errors through C. */
static void apply(spec_ctx *c, yml_node *root, const char *text, int k) {
    yml_node at = {.line = -k};
    const char *eq = strchr(text, '=');
    if (!spec_is_override(text)) {
        spec_error(c, &at, "an override is KEY=VALUE with a dotted key of the spec "
                           "(shape.seq_len=4096, training.lr=2e-5)");
        return;
    }
    for (const char *p = text;; p++) {
        if ((*p == '.' || p == eq) && (p == text || p[-1] == '.')) {
            spec_error(c, &at, "the key '%.*s' has an empty part", (int)(eq - text), text);
            return;
        }
        if (p == eq) break;
    }
    if (root->kind != YML_MAPPING) return; /* the file's own error says why */
    char name[96];
    snprintf(name, sizeof name, "override %d (%.60s)", k, text);
    yml_node *value;
    if (!eq[1]) {
        value = new_node(YML_SCALAR, "", 0, k); /* KEY= : null, as "key:" in the file */
    } else {
        int yml_errors_n = 0;
        value = yml_parse(name, eq + 1, strlen(eq + 1), c->err, &yml_errors_n);
        c->errors_n += yml_errors_n;
        if (!value) return;
        mark(value, k);
    }
    yml_node *map = root;
    for (const char *part = text;;) {
        const char *end = part;
        while (end < eq && *end != '.') end++;
        size_t len = (size_t)(end - part);
        int i = find_key(map, part, len);
        if (end == eq) { /* the last part: replace the value, or add the key */
            if (i >= 0) {
                yml_free(map->items[2 * i + 1]);
                map->items[2 * i + 1] = value;
            } else if (!add_pair(map, new_node(YML_SCALAR, part, len, k), value)) {
                spec_error(c, &at, "out of memory");
            }
            return;
        }
        yml_node *child = i >= 0 ? map->items[2 * i + 1] : NULL;
        if (child && spec_is_null(child)) { /* "training:" with nothing: an empty section */
            child->kind = YML_MAPPING;
            free(child->text);
            child->text = NULL;
            child->len = 0;
        } else if (child && child->kind != YML_MAPPING) {
            spec_error(c, &at, "%.*s is %s at %s:%d:%d, not a section with keys",
                       (int)(end - text), text, yml_kind_name(child->kind), c->path,
                       child->line, child->col);
            yml_free(value);
            return;
        } else if (!child) {
            child = new_node(YML_MAPPING, NULL, 0, k);
            if (!add_pair(map, new_node(YML_SCALAR, part, len, k), child)) {
                spec_error(c, &at, "out of memory");
                yml_free(value);
                return;
            }
        }
        map = child;
        part = end + 1;
    }
}

int spec_load_overrides(const char *path, const char *const *overrides, int n, hzc_spec *spec,
                        FILE *err) {
    int yml_errors_n = 0;
    yml_node *root = yml_load(path, err, &yml_errors_n);
    if (!root) return yml_errors_n;
    spec_ctx c = {path, err, 0, overrides};
    for (int k = 1; k <= n; k++) apply(&c, root, overrides[k - 1], k);
    int errors_n = spec_load_tree(path, root, n > 0 ? overrides : NULL, spec, err);
    yml_free(root);
    return c.errors_n + errors_n;
}
