/* runtime/data.c - opening the token data reader: the options, a pattern's files (a path
 * or a glob, sorted by name), token streams of shards (data_shard.c, data_npy.c) or JSON
 * Lines examples (data_jsonl.c), the training or validation split and its size check, and
 * closing. What an open reader serves is data_rows.c's. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "data_impl.h"

static int cmp_path(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The pattern's paths, sorted by name, as one malloc'ed array of strdup'ed strings. */
static char **list_paths(const char *pattern, int *paths_n, char *err) {
    char **paths;
    if (!strpbrk(pattern, "*?[")) {
        paths = malloc(sizeof *paths);
        if (!paths || !(paths[0] = strdup(pattern))) {
            free(paths);
            set_err(err, "%s: out of memory", pattern);
            return NULL;
        }
        *paths_n = 1;
        return paths;
    }
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        set_err(err, "%s: glob matched nothing (check the directory and the pattern)", pattern);
        globfree(&g);
        return NULL;
    }
    if (rc != 0) {
        set_err(err, "%s: glob failed (%s)", pattern,
                rc == GLOB_NOSPACE ? "out of memory" : "read error");
        globfree(&g);
        return NULL;
    }
    paths = calloc(g.gl_pathc, sizeof *paths);
    for (size_t i = 0; paths && i < g.gl_pathc; i++) {
        if (!(paths[i] = strdup(g.gl_pathv[i]))) {
            for (size_t j = 0; j < i; j++) free(paths[j]);
            free(paths);
            paths = NULL;
        }
    }
    if (!paths) {
        set_err(err, "%s: out of memory", pattern);
        globfree(&g);
        return NULL;
    }
    *paths_n = (int)g.gl_pathc;
    globfree(&g);
    /* glob sorts by the locale's collation; the stream order must not depend on it */
    qsort(paths, (size_t)*paths_n, sizeof *paths, cmp_path);
    return paths;
}

/* The [lo, hi) range of N items (examples or tokens) that O's split keeps. */
static void split_range(const hz_data_opts *o, int64_t n, int64_t *lo, int64_t *hi) {
    int64_t val_n = o->split == HZ_DATA_ALL ? 0 : (int64_t)((double)n * o->val_fraction);
    *lo = o->split == HZ_DATA_VAL ? n - val_n : 0;
    *hi = o->split == HZ_DATA_TRAIN ? n - val_n : n;
}

static const char *split_name(int split) {
    return split == HZ_DATA_TRAIN ? "training" : "validation";
}

/* The message for a split that kept nothing of N UNITS (examples or tokens). */
static void set_empty_split_err(char *err, const char *pattern, const hz_data_opts *o,
                                int64_t n, const char *units) {
    set_err(err, "%s: the %s part is empty: val_fraction %g of %lld %s (rounded down) leaves "
            "it nothing; %s", pattern, split_name(o->split), o->val_fraction, (long long)n,
            units, o->split == HZ_DATA_VAL ? "raise the validation fraction or add data"
                                           : "lower the validation fraction");
}

/* Keep O's split of the parsed examples, count their trained targets against min_tokens
 * and start epoch 0. */
static int jsonl_finish(hz_data *d, const char *pattern, const hz_data_opts *o, char *err) {
    int64_t lo, hi;
    split_range(o, d->examples_n, &lo, &hi);
    if (lo == hi) {
        set_empty_split_err(err, pattern, o, d->examples_n, "examples");
        return -1;
    }
    int64_t p0 = d->ex_start[lo], p1 = d->ex_start[hi];
    memmove(d->ids, d->ids + p0, (size_t)(p1 - p0) * sizeof *d->ids);
    memmove(d->tgt, d->tgt + p0, (size_t)(p1 - p0) * sizeof *d->tgt);
    for (int64_t e = lo; e <= hi; e++) d->ex_start[e - lo] = d->ex_start[e] - p0;
    d->examples_n = hi - lo;
    d->tokens_n = p1 - p0;
    int64_t trained_n = 0;
    for (int64_t i = 0; i < d->tokens_n; i++) trained_n += d->tgt[i] != HZ_DATA_IGNORE;
    if (trained_n < o->min_tokens) {
        char part[64] = "";
        if (o->split != HZ_DATA_ALL)
            snprintf(part, sizeof part, " (the %s part)", split_name(o->split));
        set_err(err, "%s: %lld examples%s hold %lld trained tokens (targets not -100) but one "
                "step needs %lld (add examples, or lower the batch size or sequence length)",
                pattern, (long long)d->examples_n, part, (long long)trained_n,
                (long long)o->min_tokens);
        return -1;
    }
    if (!(d->order = malloc((size_t)d->examples_n * sizeof *d->order))) {
        set_err(err, "%s: out of memory", pattern);
        return -1;
    }
    d->seed = o->seed;
    data_jsonl_start_epoch(d, 0);
    return 0;
}

static int check_opts(const char *name, const hz_data_opts *o, char *err) {
    if (o->vocab < 1 || o->vocab > INT32_MAX) {
        set_err(err, "%s: vocab %lld out of range [1, %d]", name, (long long)o->vocab,
                INT32_MAX);
        return -1;
    }
    if (o->split < HZ_DATA_ALL || o->split > HZ_DATA_VAL) {
        set_err(err, "%s: split %d is not 0 (all), 1 (train) or 2 (validation)", name,
                o->split);
        return -1;
    }
    if (!(o->val_fraction >= 0.0 && o->val_fraction < 1.0)) {
        set_err(err, "%s: validation fraction %g out of range [0, 1)", name, o->val_fraction);
        return -1;
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Parse every path of PATTERN as JSON Lines into D (all of it; finish_part splits). */
static int load_jsonl(hz_data *d, const char *pattern, int64_t vocab, char *err) {
    int paths_n = 0;
    char **paths = list_paths(pattern, &paths_n, err);
    if (!paths) return -1;
    int rc = 0;
    for (int i = 0; i < paths_n && rc == 0; i++) {
        void *map;
        size_t map_bytes;
        rc = data_map_file(paths[i], 1, &map, &map_bytes, err);
        if (rc != 0) break;
        rc = data_jsonl_parse(d, paths[i], map, map_bytes, vocab, err);
        if (map) munmap(map, map_bytes);
    }
    for (int i = 0; i < paths_n; i++) free(paths[i]);
    free(paths);
    return rc;
}

/* Open PATTERN's shards into D as one stream (vocab 0: tokens already checked). */
static int load_stream(hz_data *d, const char *pattern, int64_t vocab, char *err) {
    int paths_n = 0;
    char **paths = list_paths(pattern, &paths_n, err);
    if (!paths) return -1;
    if (!(d->shards = calloc((size_t)paths_n, sizeof *d->shards))) {
        set_err(err, "%s: out of memory", pattern);
        for (int i = 0; i < paths_n; i++) free(paths[i]);
        free(paths);
        return -1;
    }
    d->shards_n = paths_n;
    for (int i = 0; i < paths_n; i++) d->shards[i].path = paths[i];   /* shards own them */
    free(paths);
    for (int i = 0; i < d->shards_n; i++) {
        shard *s = &d->shards[i];
        if (data_open_shard(s, vocab, err) != 0) return -1;
        s->start = d->all_n;
        d->all_n += s->tokens_n;
    }
    return 0;
}

/* Keep O's split of the stream's tokens. */
static int stream_finish(hz_data *d, const char *pattern, const hz_data_opts *o, char *err) {
    int64_t lo, hi;
    split_range(o, d->all_n, &lo, &hi);
    if (lo == hi && o->split != HZ_DATA_ALL) {
        set_empty_split_err(err, pattern, o, d->all_n, "tokens");
        return -1;
    }
    d->base = lo;
    d->tokens_n = hi - lo;
    if (d->tokens_n < o->min_tokens) {
        char part[64] = "";
        if (o->split != HZ_DATA_ALL)
            snprintf(part, sizeof part, " in its %s part", split_name(o->split));
        set_err(err, "%s: data holds %lld tokens%s but one step needs %lld (add data, or lower "
                "the batch size or sequence length)", pattern, (long long)d->tokens_n, part,
                (long long)o->min_tokens);
        return -1;
    }
    return 0;
}

static hz_data *data_new(const char *name, const hz_data_opts *o, int jsonl, char *err) {
    if (err) err[0] = 0;
    if (check_opts(name, o, err) != 0) return NULL;
    hz_data *d = calloc(1, sizeof *d);
    if (!d) set_err(err, "%s: out of memory", name);
    else d->jsonl = jsonl;
    return d;
}

static int load(hz_data *d, const char *pattern, int64_t vocab, char *err) {
    return d->jsonl ? load_jsonl(d, pattern, vocab, err) : load_stream(d, pattern, vocab, err);
}

static int finish(hz_data *d, const char *pattern, const hz_data_opts *o, char *err) {
    return d->jsonl ? jsonl_finish(d, pattern, o, err) : stream_finish(d, pattern, o, err);
}

/* D, or NULL after closing it when RC says it failed. */
static hz_data *opened(hz_data *d, int rc) {
    if (rc == 0) return d;
    hz_data_close(d);
    return NULL;
}

hz_data *hz_data_open_opts(const char *pattern, const hz_data_opts *o, char *err) {
    hz_data *d = data_new(pattern, o, ends_with(pattern, ".jsonl"), err);
    if (!d) return NULL;
    return opened(d, load(d, pattern, o->vocab, err) != 0 || finish(d, pattern, o, err) != 0);
}

hz_data *hz_data_open(const char *pattern, int64_t vocab, int64_t min_tokens, char *err) {
    hz_data_opts o = {.vocab = vocab, .min_tokens = min_tokens, .seed = 0,
                      .val_fraction = 0.0, .split = HZ_DATA_ALL};
    return hz_data_open_opts(pattern, &o, err);
}

/* A copy of T's parsed examples (all of them, before any split) into V. */
static int jsonl_copy(hz_data *v, const hz_data *t, const char *name, char *err) {
    v->ids = malloc((size_t)(t->tokens_n ? t->tokens_n : 1) * sizeof *v->ids);
    v->tgt = malloc((size_t)(t->tokens_n ? t->tokens_n : 1) * sizeof *v->tgt);
    v->ex_start = malloc((size_t)(t->examples_n + 1) * sizeof *v->ex_start);
    if (!v->ids || !v->tgt || !v->ex_start) {
        set_err(err, "%s: out of memory", name);
        return -1;
    }
    memcpy(v->ids, t->ids, (size_t)t->tokens_n * sizeof *v->ids);
    memcpy(v->tgt, t->tgt, (size_t)t->tokens_n * sizeof *v->tgt);
    memcpy(v->ex_start, t->ex_start, (size_t)(t->examples_n + 1) * sizeof *v->ex_start);
    v->tokens_n = v->pairs_cap = t->tokens_n;
    v->examples_n = t->examples_n;
    v->ex_cap = t->examples_n + 1;
    return 0;
}

int hz_data_open_split(const char *pattern, const hz_data_opts *o, int64_t val_min_tokens,
                       hz_data **train, hz_data **val, char *err) {
    *train = *val = NULL;
    hz_data_opts ot = *o, ov = *o;
    ot.split = HZ_DATA_TRAIN;
    ov.split = HZ_DATA_VAL;
    ov.min_tokens = val_min_tokens;
    int jsonl = ends_with(pattern, ".jsonl");
    hz_data *t = data_new(pattern, &ot, jsonl, err), *v = t ? data_new(pattern, &ov, jsonl, err) : NULL;
    if (!t || !v) {
        hz_data_close(t);
        return -1;
    }
    /* parse and check once; the validation part copies the examples, or maps the shards
     * again without checking their tokens twice */
    int rc = load(t, pattern, o->vocab, err);
    if (rc == 0) rc = jsonl ? jsonl_copy(v, t, pattern, err) : load(v, pattern, 0, err);
    if (rc == 0) rc = finish(t, pattern, &ot, err);
    if (rc == 0) rc = finish(v, pattern, &ov, err);
    if (rc != 0) {
        hz_data_close(t);
        hz_data_close(v);
        return -1;
    }
    *train = t;
    *val = v;
    return 0;
}

hz_data *hz_data_open_jsonl_memory(const char *name, const void *bytes, size_t bytes_n,
                                   const hz_data_opts *o, char *err) {
    hz_data *d = data_new(name, o, 1, err);
    if (!d) return NULL;
    return opened(d, data_jsonl_parse(d, name, bytes, bytes_n, o->vocab, err) != 0 ||
                         jsonl_finish(d, name, o, err) != 0);
}

void hz_data_close(hz_data *d) {
    if (!d) return;
    for (int i = 0; i < d->shards_n; i++) {
        if (d->shards[i].map) munmap(d->shards[i].map, d->shards[i].map_bytes);
        free(d->shards[i].path);
    }
    free(d->shards);
    free(d->ids);
    free(d->tgt);
    free(d->ex_start);
    free(d->order);
    free(d);
}
