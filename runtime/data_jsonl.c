/* runtime/data_jsonl.c - JSON Lines of pre-tokenized examples, parsed with jansson at open:
 * each line's object checked (input_ids, labels, their ids against the vocabulary) and
 * appended to two int32 arrays of (input, target) pairs, with the example's start; a bad
 * line is reported as FILE:LINE. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_impl.h"

/* Room for EXTRA more pairs and one more example; 0, or -1 with a message. */
static int jsonl_reserve(hz_data *d, int64_t extra, const char *name, char *err) {
    if (d->tokens_n + extra > d->pairs_cap) {
        int64_t cap = d->pairs_cap ? d->pairs_cap : 4096;
        while (cap < d->tokens_n + extra) cap *= 2;
        int32_t *ids = realloc(d->ids, (size_t)cap * sizeof *ids);
        if (ids) d->ids = ids;
        int32_t *tgt = ids ? realloc(d->tgt, (size_t)cap * sizeof *tgt) : NULL;
        if (!ids || !tgt) {
            set_err(err, "%s: out of memory holding %lld tokens", name, (long long)cap);
            return -1;
        }
        d->tgt = tgt;
        d->pairs_cap = cap;
    }
    if (d->examples_n + 2 > d->ex_cap) {
        int64_t cap = d->ex_cap ? 2 * d->ex_cap : 1024;
        int64_t *ex = realloc(d->ex_start, (size_t)cap * sizeof *ex);
        if (!ex) {
            set_err(err, "%s: out of memory holding %lld examples", name, (long long)cap);
            return -1;
        }
        d->ex_start = ex;
        d->ex_cap = cap;
    }
    return 0;
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Check one example (the object ROOT of NAME:LINE) and append its pairs. */
static int jsonl_example(hz_data *d, const json_t *root, int64_t vocab, const char *name,
                         long long line, char *err) {
    if (!json_is_object(root)) {
        set_err(err, "%s:%lld: not a JSON object but %s (each line must be {\"input_ids\": "
                "[...], \"labels\": [...]})", name, line, json_kind(root));
        return -1;
    }
    const json_t *ids = json_object_get(root, "input_ids");
    if (!ids) {
        set_err(err, "%s:%lld: missing \"input_ids\" (each line must be {\"input_ids\": [...], "
                "\"labels\": [...]}; tools/prepare_sft.py writes it)", name, line);
        return -1;
    }
    if (!json_is_array(ids)) {
        set_err(err, "%s:%lld: \"input_ids\" is %s, not an array of token ids", name, line,
                json_kind(ids));
        return -1;
    }
    size_t n = json_array_size(ids);
    if (n < 2) {
        set_err(err, "%s:%lld: example has %zu token%s; an example needs at least 2 (an input "
                "and the token it predicts)", name, line, n, n == 1 ? "" : "s");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v)) {
            set_err(err, "%s:%lld: input_ids[%zu] is %s, not an integer token id", name, line,
                    i, json_kind(v));
            return -1;
        }
        json_int_t x = json_integer_value(v);
        if (x < 0 || x >= vocab) {
            set_err(err, "%s:%lld: input_ids[%zu] = %lld is out of range [0, vocab %lld) (data "
                    "tokenized for another vocabulary?)", name, line, i, (long long)x,
                    (long long)vocab);
            return -1;
        }
    }
    const json_t *labels = json_object_get(root, "labels");
    if (labels && json_is_null(labels)) labels = NULL;
    if (labels && !json_is_array(labels)) {
        set_err(err, "%s:%lld: \"labels\" is %s, not an array of token ids or -100", name,
                line, json_kind(labels));
        return -1;
    }
    if (labels && json_array_size(labels) != n) {
        set_err(err, "%s:%lld: labels has %zu entries but input_ids has %zu (labels align one "
                "to one with input_ids)", name, line, json_array_size(labels), n);
        return -1;
    }
    for (size_t i = 0; labels && i < n; i++) {
        const json_t *v = json_array_get(labels, i);
        if (!json_is_integer(v)) {
            set_err(err, "%s:%lld: labels[%zu] is %s, not an integer token id or -100", name,
                    line, i, json_kind(v));
            return -1;
        }
        json_int_t x = json_integer_value(v);
        if ((x < 0 || x >= vocab) && x != HZ_DATA_IGNORE) {
            set_err(err, "%s:%lld: labels[%zu] = %lld is neither a token id in [0, vocab %lld) "
                    "nor -100 (not trained)", name, line, i, (long long)x, (long long)vocab);
            return -1;
        }
    }
    if (jsonl_reserve(d, (int64_t)n, name, err) != 0) return -1;
    const json_t *lab = labels ? labels : ids;
    int32_t *in = d->ids + d->tokens_n, *tg = d->tgt + d->tokens_n;
    for (size_t i = 0; i < n; i++) {
        in[i] = (int32_t)json_integer_value(json_array_get(ids, i));
        tg[i] = i + 1 < n ? (int32_t)json_integer_value(json_array_get(lab, i + 1))
                          : HZ_DATA_IGNORE;
    }
    d->ex_start[d->examples_n++] = d->tokens_n;
    d->tokens_n += (int64_t)n;
    d->ex_start[d->examples_n] = d->tokens_n;
    return 0;
}

/* Append the examples of the JSON Lines text BYTES[0..n) named NAME. */
int data_jsonl_parse(hz_data *d, const char *name, const char *bytes, size_t n, int64_t vocab,
                     char *err) {
    if (n == 0) {
        set_err(err, "%s:1: empty file: no examples (expected JSON Lines, one {\"input_ids\": "
                "[...], \"labels\": [...]} object per line)", name);
        return -1;
    }
    int64_t examples_before = d->examples_n;
    long long line = 0;
    const char *p = bytes, *end = bytes + n;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *s = p, *e = nl ? nl : end;
        p = nl ? nl + 1 : end;
        if (line == 1 && e - s >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;  /* BOM */
        const char *q = s;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q == e) continue;   /* a blank line */
        json_error_t je;
        json_t *root = json_loadb(s, (size_t)(e - s), JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                                  &je);
        if (!root) {
            set_err(err, "%s:%lld: not JSON: %s (column %d)", name, line, je.text, je.column);
            return -1;
        }
        int rc = jsonl_example(d, root, vocab, name, line, err);
        json_decref(root);
        if (rc != 0) return -1;
    }
    if (d->examples_n == examples_before) {
        set_err(err, "%s:%lld: no examples: every line is blank", name, line);
        return -1;
    }
    return 0;
}
