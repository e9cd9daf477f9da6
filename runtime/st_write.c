/* runtime/st_write.c - writing .safetensors files and transformers-style sharded checkpoints
 * (see safetensors.h): the header of a file, the shard split, the index, and the atomic
 * sequential writer; runtime/ckpt_files.c lays the same headers out for its parallel writes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errf.h"
#include "safetensors.h"

#define set_err(err, ...) hz_errf(err, HZ_ST_ERR_BYTES, __VA_ARGS__)

/* ---- writing ---- */

int hz_st_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int hz_st_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* fsync the directory holding PATH, so that a rename into it is durable. */
static void sync_parent(const char *path)
{
    char dir[PATH_MAX + 256];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    hz_st_fsync_dir(dir);
}

int hz_st_write_atomic(const char *path, hz_st_emit_fn emit, void *arg, char *err)
{
    char tmp[PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        set_err(err, "%s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        set_err(err, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    if (emit(fd, arg) != 0 || fsync(fd) != 0) {
        set_err(err, "%s: write failed: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        set_err(err, "%s: cannot finish writing (close or rename from %s): %s", path, tmp,
                strerror(errno));
        unlink(tmp);
        return -1;
    }
    sync_parent(path);
    return 0;
}

static int64_t wtensor_numel(const hz_st_wtensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int64_t hz_st_wtensor_bytes(const hz_st_wtensor *t)
{
    return wtensor_numel(t) * hz_st_dtype_bytes[t->dtype];
}
#define wtensor_bytes hz_st_wtensor_bytes

typedef struct st_job {
    const hz_st_wtensor *tensors;
    int n;
    char *header;      /* JSON, padded with spaces */
    size_t header_len; /* a multiple of 8 */
} st_job;

#define WRITE_CHUNK_BYTES (8 << 20)

static int emit_file(int fd, void *arg)
{
    st_job *j = arg;
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)j->header_len >> (8 * i));
    if (hz_st_write_all(fd, len, 8) || hz_st_write_all(fd, j->header, j->header_len)) return -1;
    unsigned char *buf = malloc(WRITE_CHUNK_BYTES);
    if (!buf) return -1;
    for (int i = 0; i < j->n; i++) {
        const hz_st_wtensor *t = &j->tensors[i];
        int64_t dsize = hz_st_dtype_bytes[t->dtype], numel = wtensor_numel(t),
                per = WRITE_CHUNK_BYTES / dsize;
        for (int64_t b = 0; b < numel; b += per) {
            int64_t k = numel - b < per ? numel - b : per;
            t->fill(t->arg, b, k, buf);
            if (hz_st_write_all(fd, buf, (size_t)(k * dsize))) {
                free(buf);
                return -1;
            }
        }
    }
    free(buf);
    return 0;
}

/* Check the tensors and build the padded header; returns 0 or -1 with a message. */
static int build_header(const char *path, st_job *j, char *err)
{
    char nb[96];
    json_t *root = json_object(), *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    int64_t off = 0;
    for (int i = 0; i < j->n; i++) {
        const hz_st_wtensor *t = &j->tensors[i];
        if (!t->name || t->dtype < 0 || t->dtype >= HZ_ST_DTYPE_N || t->ndim < 0 ||
            t->ndim > HZ_ST_MAX_DIMS || !t->fill || !strcmp(t->name, "__metadata__")) {
            set_err(err, "%s: tensor %d ('%s'): bad name, dtype, rank or no fill function", path,
                    i, t->name ? hz_st_shown(t->name, nb) : "");
            json_decref(root);
            return -1;
        }
        if (json_object_get(root, t->name)) {
            set_err(err, "%s: tensor '%s' is given twice", path, hz_st_shown(t->name, nb));
            json_decref(root);
            return -1;
        }
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        int64_t bytes = wtensor_bytes(t);
        json_t *e = json_object();
        json_object_set_new(e, "dtype", json_string(hz_st_dtype_names[t->dtype]));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)(off + bytes)));
        if (json_object_set_new(root, t->name, e) != 0) {
            set_err(err, "%s: tensor '%s': name is not valid UTF-8", path, hz_st_shown(t->name, nb));
            json_decref(root);
            return -1;
        }
        off += bytes;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text) {
        set_err(err, "%s: out of memory", path);
        return -1;
    }
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    j->header = malloc(padded + 1);
    if (!j->header) {
        free(text);
        set_err(err, "%s: out of memory", path);
        return -1;
    }
    memcpy(j->header, text, n);
    free(text);
    memset(j->header + n, ' ', padded - n);
    j->header[padded] = 0;
    j->header_len = padded;
    return 0;
}

int hz_st_write(const char *path, const hz_st_wtensor *tensors, int n, char *err)
{
    st_job j = {tensors, n, NULL, 0};
    if (build_header(path, &j, err) != 0) return -1;
    int rc = hz_st_write_atomic(path, emit_file, &j, err);
    free(j.header);
    return rc;
}

unsigned char *hz_st_header(const char *path, const hz_st_wtensor *tensors, int n,
                            int64_t *bytes, char *err)
{
    st_job j = {tensors, n, NULL, 0};
    if (build_header(path, &j, err) != 0) return NULL;
    unsigned char *out = malloc(8 + j.header_len);
    if (!out) {
        free(j.header);
        set_err(err, "%s: out of memory", path);
        return NULL;
    }
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)j.header_len >> (8 * i));
    memcpy(out + 8, j.header, j.header_len);
    free(j.header);
    *bytes = 8 + (int64_t)j.header_len;
    return out;
}

static int emit_text(int fd, void *arg) { return hz_st_write_all(fd, arg, strlen(arg)); }

int hz_st_write_text(const char *path, const char *text, char *err)
{
    return hz_st_write_atomic(path, emit_text, (void *)text, err);
}

/* model-NNNNN-of-MMMMM.safetensors: returns MMMMM, else 0. */
static int shard_total(const char *name)
{
    if (strlen(name) != 32 || strncmp(name, "model-", 6) || strncmp(name + 11, "-of-", 4) ||
        strcmp(name + 20, ".safetensors"))
        return 0;
    for (int i = 0; i < 5; i++)
        if (name[6 + i] < '0' || name[6 + i] > '9' || name[15 + i] < '0' || name[15 + i] > '9')
            return 0;
    return atoi(name + 15);
}

/* Remove files of an earlier checkpoint that the one just written (SHARDS files; 1 = the
 * single model.safetensors) does not use. */
static void remove_stale(const char *dir, int shards)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir,
             shards == 1 ? "model.safetensors.index.json" : "model.safetensors");
    unlink(p);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int total = shard_total(e->d_name);
        if (total && (shards == 1 || total != shards)) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    hz_st_fsync_dir(dir);
}

int hz_st_write_checkpoint(const char *dir, const hz_st_wtensor *tensors, int n,
                           int64_t max_shard_bytes, char *err)
{
    char path[PATH_MAX + 64];
    if (max_shard_bytes <= 0) max_shard_bytes = HZ_ST_DEFAULT_SHARD_BYTES;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (tensors[i].dtype < 0 || tensors[i].dtype >= HZ_ST_DTYPE_N) {
            set_err(err, "%s: tensor %d has a bad dtype", dir, i);
            return -1;
        }
        total += wtensor_bytes(&tensors[i]);
    }
    if (total <= max_shard_bytes) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (hz_st_write(path, tensors, n, err) != 0) return -1;
        remove_stale(dir, 1);
        return 1;
    }
    int *first = malloc((size_t)(n + 2) * sizeof *first);
    if (!first) {
        set_err(err, "%s: out of memory", dir);
        return -1;
    }
    int shards = hz_st_shards(tensors, n, max_shard_bytes, first);
    if (shards < 0) {
        set_err(err, "%s: more than 99999 shards; raise the shard size", dir);
        free(first);
        return -1;
    }
    int rc = 0;
    for (int s = 0; s < shards && rc == 0; s++) {
        char name[64];
        hz_st_shard_name(name, sizeof name, s, shards);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = hz_st_write(path, tensors + first[s], first[s + 1] - first[s], err);
    }
    char *text = rc == 0 ? hz_st_index_text(tensors, first, shards) : NULL;
    free(first);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (!text) {
            set_err(err, "%s: out of memory", path);
            return -1;
        }
        rc = hz_st_write_text(path, text, err);
        free(text);
        if (rc == 0) remove_stale(dir, shards);
    }
    return rc == 0 ? shards : -1;
}

void hz_st_shard_name(char *buf, size_t n, int shard, int shards)
{
    snprintf(buf, n, "model-%05d-of-%05d.safetensors", shard + 1, shards);
}

int hz_st_shards(const hz_st_wtensor *tensors, int n, int64_t max_shard_bytes, int *first)
{
    if (max_shard_bytes <= 0) max_shard_bytes = HZ_ST_DEFAULT_SHARD_BYTES;
    int shards = 0;
    int64_t cur = 0;
    for (int i = 0; i < n; i++) {
        int64_t b = wtensor_bytes(&tensors[i]);
        if (i == 0 || (cur > 0 && cur + b > max_shard_bytes)) {
            first[shards++] = i;
            cur = 0;
        }
        cur += b;
    }
    first[shards] = n;
    return shards > 99999 ? -1 : shards;
}

char *hz_st_index_text(const hz_st_wtensor *tensors, const int *first, int shards)
{
    json_t *map = json_object();
    int64_t total = 0;
    for (int s = 0; s < shards; s++) {
        char name[64];
        hz_st_shard_name(name, sizeof name, s, shards);
        for (int i = first[s]; i < first[s + 1]; i++) {
            json_object_set_new(map, tensors[i].name, json_string(name));
            total += wtensor_bytes(&tensors[i]);
        }
    }
    json_t *root = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total,
                             "weight_map", map);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!text) return NULL;
    size_t len = strlen(text);
    char *nl = realloc(text, len + 2);
    if (!nl) {
        free(text);
        return NULL;
    }
    memcpy(nl + len, "\n", 2);
    return nl;
}
