/* runtime/st_index.c - a checkpoint directory as one set of tensors: model.safetensors, or
 * the shards model.safetensors.index.json names, each opened and checked by the reader
 * (safetensors.c); every tensor found by name across the shards (see safetensors.h). */
#include <errno.h>
#include <limits.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "errf.h"
#include "safetensors.h"

#define set_err(err, ...) hz_errf(err, HZ_ST_ERR_BYTES, __VA_ARGS__)

struct hz_st_index {
    char *path;
    int file_n;
    hz_st_file **files;
    int tensor_n;
    const hz_st_tensor **by_name;
};

/* ---- the checkpoint index ---- */

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void hz_st_index_close(hz_st_index *ix)
{
    if (!ix) return;
    for (int i = 0; i < ix->file_n; i++) hz_st_close(ix->files[i]);
    free(ix->files);
    free(ix->by_name);
    free(ix->path);
    free(ix);
}

/* Collect every tensor of every file, sorted by name; a name twice is an error. */
static int index_tensors(hz_st_index *ix, char *err)
{
    char nb[96];
    int n = 0;
    for (int i = 0; i < ix->file_n; i++) n += hz_st_tensor_n(ix->files[i]);
    ix->by_name = malloc((n > 0 ? (size_t)n : 1) * sizeof *ix->by_name);
    if (!ix->by_name) {
        set_err(err, "%s: out of memory", ix->path);
        return -1;
    }
    for (int i = 0; i < ix->file_n; i++)
        for (int k = 0; k < hz_st_tensor_n(ix->files[i]); k++)
            ix->by_name[ix->tensor_n++] = hz_st_tensor_at(ix->files[i], k);
    qsort(ix->by_name, (size_t)n, sizeof *ix->by_name, hz_st_cmp_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(ix->by_name[i - 1]->name, ix->by_name[i]->name)) {
            set_err(err, "%s: tensor '%s' is in two shards, %s and %s", ix->path,
                    hz_st_shown(ix->by_name[i]->name, nb), ix->by_name[i - 1]->file, ix->by_name[i]->file);
            return -1;
        }
    return 0;
}

static int open_sharded(hz_st_index *ix, const char *dir, char *err)
{
    char nb[96], sb[96], path[PATH_MAX + 256];
    json_error_t jerr;
    json_t *root = json_load_file(ix->path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_err(err, "%s: not valid JSON: %s (line %d)", ix->path, jerr.text, jerr.line);
        return -1;
    }
    int rc = -1;
    json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map)) {
        set_err(err, "%s: no \"weight_map\" object", ix->path);
        goto done;
    }
    const char **shards = calloc(json_object_size(map) + 1, sizeof *shards);
    ix->files = calloc(json_object_size(map) + 1, sizeof *ix->files);
    if (!shards || !ix->files) {
        free(shards);
        set_err(err, "%s: out of memory", ix->path);
        goto done;
    }
    const char *key;
    json_t *v;
    /* open each shard the map names, once, in order of first mention */
    json_object_foreach(map, key, v) {
        const char *shard = json_string_value(v);
        if (!shard || !*shard || strchr(shard, '/') || !strcmp(shard, ".") || !strcmp(shard, "..")) {
            set_err(err, "%s: weight_map['%s'] is not a shard file name in this directory",
                    ix->path, hz_st_shown(key, nb));
            goto fail;
        }
        int seen = 0;
        for (int i = 0; i < ix->file_n && !seen; i++) seen = !strcmp(shards[i], shard);
        if (seen) continue;
        snprintf(path, sizeof path, "%s/%s", dir, shard);
        if (!is_file(path)) {
            set_err(err, "%s: shard '%s' (holding '%s') is missing: %s: %s", ix->path,
                    hz_st_shown(shard, sb), hz_st_shown(key, nb), path, strerror(errno ? errno : ENOENT));
            goto fail;
        }
        hz_st_file *f = hz_st_open(path, err);
        if (!f) goto fail;
        shards[ix->file_n] = shard;
        ix->files[ix->file_n++] = f;
    }
    json_object_foreach(map, key, v) {
        const char *shard = json_string_value(v);
        for (int i = 0; i < ix->file_n; i++)
            if (!strcmp(shards[i], shard) && !hz_st_find(ix->files[i], key)) {
                set_err(err, "%s: weight_map puts '%s' in %s, which does not hold it", ix->path,
                        hz_st_shown(key, nb), hz_st_shown(shard, sb));
                goto fail;
            }
    }
    rc = index_tensors(ix, err);
fail:
    free(shards);
done:
    json_decref(root);
    return rc;
}

hz_st_index *hz_st_index_open(const char *path, char *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        set_err(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    hz_st_index *ix = calloc(1, sizeof *ix);
    char p[PATH_MAX + 64];
    if (!ix) {
        set_err(err, "%s: out of memory", path);
        return NULL;
    }
    int single = 1;
    if (S_ISDIR(st.st_mode)) {
        snprintf(p, sizeof p, "%s/model.safetensors", path);
        if (!is_file(p)) {
            snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
            single = 0;
            if (!is_file(p)) {
                snprintf(p, sizeof p, "%s/pytorch_model.bin", path);
                int bin = is_file(p);
                snprintf(p, sizeof p, "%s/pytorch_model.bin.index.json", path);
                bin |= is_file(p);
                set_err(err, "%s: no model.safetensors or model.safetensors.index.json here%s",
                        path, bin ? "; only PyTorch .bin weights, which hzc does not read: "
                                    "convert them to safetensors first"
                                  : " (a Hugging Face checkpoint directory is expected)");
                free(ix);
                return NULL;
            }
        }
    } else {
        snprintf(p, sizeof p, "%s", path);
    }
    if (!(ix->path = strdup(p))) {
        set_err(err, "%s: out of memory", p);
        free(ix);
        return NULL;
    }
    if (single) {
        ix->files = calloc(1, sizeof *ix->files);
        if (!ix->files) {
            set_err(err, "%s: out of memory", p);
            hz_st_index_close(ix);
            return NULL;
        }
        if (!(ix->files[0] = hz_st_open(p, err)) || (ix->file_n = 1, index_tensors(ix, err) != 0)) {
            hz_st_index_close(ix);
            return NULL;
        }
        return ix;
    }
    if (open_sharded(ix, path, err) != 0) {
        hz_st_index_close(ix);
        return NULL;
    }
    return ix;
}

int hz_st_index_tensor_n(const hz_st_index *ix) { return ix->tensor_n; }
const hz_st_tensor *hz_st_index_tensor_at(const hz_st_index *ix, int i) { return ix->by_name[i]; }
const char *hz_st_index_path(const hz_st_index *ix) { return ix->path; }

const hz_st_tensor *hz_st_index_find(const hz_st_index *ix, const char *name)
{
    return hz_st_find_sorted(ix->by_name, ix->tensor_n, name);
}
