/* runtime/safetensors.c - reading, validating and writing .safetensors files and sharded
 * files (see safetensors.h; sharded checkpoints: st_index.c, writing: st_write.c). The reader trusts nothing in a file: every length and
 * offset is checked before use, so a hostile file gives a message, never a bad access. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "errf.h"

#define HZ_ST_NAME_ENTRY(id, name, bytes) name,
#define HZ_ST_BYTES_ENTRY(id, name, bytes) bytes,
const char *const hz_st_dtype_names[] = {HZ_ST_DTYPES(HZ_ST_NAME_ENTRY)};
const int hz_st_dtype_bytes[] = {HZ_ST_DTYPES(HZ_ST_BYTES_ENTRY)};

/* dtypes of the format that hzc does not read: named in the message, not "unknown" */
static const char *const other_dtypes[] = {"F64", "I64", "I32", "I16", "I8", "U64", "U32",
                                           "U16", "U8", "BOOL", "F8_E4M3", "F8_E5M2",
                                           "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

struct hz_st_file {
    char *path;
    unsigned char *map;     /* the whole file (or the caller's buffer) */
    size_t size;
    int mapped;             /* munmap on close */
    int tensor_n;
    hz_st_tensor *tensors;  /* header order */
    hz_st_tensor **by_name; /* sorted by name */
};

#define set_err(err, ...) hz_errf(err, HZ_ST_ERR_BYTES, __VA_ARGS__)

const char *hz_st_shown(const char *name, char buf[96])
{
    size_t n = strlen(name), k = n > 80 ? 77 : n, o = 0;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)name[i];
        buf[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (k < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* ---- conversion ---- */

void hz_st_shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

float hz_st_f32_from_f16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    float f;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24 is exact in fp32 */
        f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31)
        u = sign | 0x7f800000u | (mant << 13);
    else
        u = sign | ((exp + 112) << 23) | (mant << 13);
    memcpy(&f, &u, 4);
    return f;
}

int64_t hz_st_rows(const hz_st_tensor *t) { return t->ndim == 0 ? 1 : t->shape[0]; }

int64_t hz_st_row_elems(const hz_st_tensor *t)
{
    int64_t n = 1;
    for (int i = 1; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int hz_st_read_elems_f32(const hz_st_tensor *t, int64_t begin, int64_t n, float *out)
{
    if (begin < 0 || n < 0 || begin > t->numel || n > t->numel - begin) return -1;
    const unsigned char *src = t->data + begin * hz_st_dtype_bytes[t->dtype];
    switch (t->dtype) {
    case HZ_ST_F32: memcpy(out, src, (size_t)n * 4); break;
    case HZ_ST_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t b;
            memcpy(&b, src + 2 * i, 2);
            uint32_t u = (uint32_t)b << 16;
            memcpy(&out[i], &u, 4);
        }
        break;
    case HZ_ST_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = hz_st_f32_from_f16(h);
        }
        break;
    default: return -1;
    }
    return 0;
}

int hz_st_read_f32(const hz_st_tensor *t, int64_t row0, int64_t rows_n, float *out)
{
    int64_t rows = hz_st_rows(t), per = hz_st_row_elems(t);
    if (row0 < 0 || rows_n < 0 || row0 > rows || rows_n > rows - row0) return -1;
    return hz_st_read_elems_f32(t, row0 * per, rows_n * per, out);
}

/* ---- the reader ---- */

int hz_st_cmp_name(const void *a, const void *b)
{
    return strcmp((*(const hz_st_tensor *const *)a)->name, (*(const hz_st_tensor *const *)b)->name);
}

typedef struct span {
    int64_t begin, end;
    int tensor;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->tensor - y->tensor;
}

static int parse_dtype(const char *s)
{
    for (int i = 0; i < HZ_ST_DTYPE_N; i++)
        if (!strcmp(s, hz_st_dtype_names[i])) return i;
    return -1;
}

/* Fill one tensor from its header entry; returns 0 or -1 with a message. */
static int parse_entry(hz_st_file *f, hz_st_tensor *t, const char *key, json_t *v,
                       int64_t data_bytes, int64_t *begin, int64_t *end, char *err)
{
    char nb[96], db[96];
    const char *nm = hz_st_shown(key, nb);
    if (!json_is_object(v)) {
        set_err(err, "%s: tensor '%s': header entry is not a JSON object", f->path, nm);
        return -1;
    }
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!dt || !sh || !off) {
        set_err(err, "%s: tensor '%s': header entry lacks '%s'", f->path, nm,
                !dt ? "dtype" : !sh ? "shape" : "data_offsets");
        return -1;
    }
    if (!json_is_string(dt)) {
        set_err(err, "%s: tensor '%s': dtype is not a string", f->path, nm);
        return -1;
    }
    t->dtype = parse_dtype(json_string_value(dt));
    if (t->dtype < 0) {
        const char *d = json_string_value(dt);
        int known = 0;
        for (size_t i = 0; i < sizeof other_dtypes / sizeof *other_dtypes; i++)
            known |= !strcmp(d, other_dtypes[i]);
        set_err(err, "%s: tensor '%s': dtype %s%s is not supported (hzc reads BF16, F16 and F32)",
                f->path, nm, hz_st_shown(d, db), known ? "" : " (not a safetensors dtype)");
        return -1;
    }
    if (!json_is_array(sh)) {
        set_err(err, "%s: tensor '%s': shape is not an array", f->path, nm);
        return -1;
    }
    if (json_array_size(sh) > HZ_ST_MAX_DIMS) {
        set_err(err, "%s: tensor '%s': shape has %zu dimensions (at most %d)", f->path, nm,
                json_array_size(sh), HZ_ST_MAX_DIMS);
        return -1;
    }
    int64_t dsize = hz_st_dtype_bytes[t->dtype], numel = 1;
    t->ndim = (int)json_array_size(sh);
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(sh, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0) {
            set_err(err, "%s: tensor '%s': shape[%d] is not a non-negative integer", f->path, nm, i);
            return -1;
        }
        t->shape[i] = json_integer_value(d);
        if (t->shape[i] > 0 && numel > INT64_MAX / dsize / t->shape[i]) {
            set_err(err, "%s: tensor '%s': shape is too large", f->path, nm);
            return -1;
        }
        numel *= t->shape[i];
    }
    t->numel = numel;
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1))) {
        set_err(err, "%s: tensor '%s': data_offsets is not an array [begin, end] of integers",
                f->path, nm);
        return -1;
    }
    *begin = json_integer_value(json_array_get(off, 0));
    *end = json_integer_value(json_array_get(off, 1));
    if (*begin < 0 || *end < *begin || *end > data_bytes) {
        set_err(err, "%s: tensor '%s': data_offsets [%lld, %lld] are outside the data area "
                     "[0, %lld] (truncated file?)",
                f->path, nm, (long long)*begin, (long long)*end, (long long)data_bytes);
        return -1;
    }
    if (*end - *begin != numel * dsize) {
        char shape_s[200];
        hz_st_shape_str(shape_s, sizeof shape_s, t->ndim, t->shape);
        set_err(err, "%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes, but shape %s "
                     "in %s needs %lld",
                f->path, nm, (long long)*begin, (long long)*end, (long long)(*end - *begin),
                shape_s, hz_st_dtype_names[t->dtype], (long long)(numel * dsize));
        return -1;
    }
    return 0;
}

/* Validate the header of f->map and build f->tensors. */
static int parse_file(hz_st_file *f, char *err)
{
    char nb[96], nb2[96];
    if (f->size < 8) {
        set_err(err, "%s: file is %zu bytes, too short for a safetensors file (8-byte header "
                     "length, then a JSON header)", f->path, f->size);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->map[i];
    if (hlen > (uint64_t)HZ_ST_MAX_HEADER_BYTES) {
        set_err(err, "%s: header length %llu is absurd (limit 100 MiB): not a safetensors file, "
                     "or corrupt", f->path, (unsigned long long)hlen);
        return -1;
    }
    if (hlen > f->size - 8) {
        set_err(err, "%s: header length %llu runs past the end of the file (%zu bytes): "
                     "truncated?", f->path, (unsigned long long)hlen, f->size);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_err(err, "%s: header is not valid JSON: %s (at byte %d of the header)", f->path,
                jerr.text, jerr.position);
        return -1;
    }
    int rc = -1;
    span *spans = NULL;
    if (!json_is_object(root)) {
        set_err(err, "%s: header is not a JSON object", f->path);
        goto done;
    }
    int64_t data_bytes = (int64_t)(f->size - 8 - hlen);
    const unsigned char *data = f->map + 8 + hlen;
    size_t cap = json_object_size(root);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    spans = calloc(cap ? cap : 1, sizeof *spans);
    if (!f->tensors || !spans) {
        set_err(err, "%s: out of memory reading the header", f->path);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            const char *mk;
            json_t *mv;
            int ok = json_is_object(v);
            if (ok) json_object_foreach(v, mk, mv) ok &= json_is_string(mv);
            if (!ok) {
                set_err(err, "%s: __metadata__ is not an object of strings", f->path);
                goto done;
            }
            continue;
        }
        hz_st_tensor *t = &f->tensors[f->tensor_n];
        int64_t b, e;
        if (parse_entry(f, t, key, v, data_bytes, &b, &e, err) != 0) goto done;
        if (!(t->name = xstrdup(key))) {
            set_err(err, "%s: out of memory reading the header", f->path);
            goto done;
        }
        t->data = data + b;
        t->offset = 8 + (int64_t)hlen + b;
        t->file = f->path;
        spans[f->tensor_n] = (span){b, e, f->tensor_n};
        f->tensor_n++;
    }
    /* The tensors must tile the data area: sorted by offset, each begins where the last ended. */
    qsort(spans, (size_t)f->tensor_n, sizeof *spans, cmp_span);
    int64_t pos = 0;
    for (int i = 0; i < f->tensor_n; i++) {
        if (spans[i].begin < pos) {
            set_err(err, "%s: tensors '%s' and '%s' overlap (data_offsets [%lld, %lld] and "
                         "[%lld, %lld])", f->path, hz_st_shown(f->tensors[spans[i - 1].tensor].name, nb),
                    hz_st_shown(f->tensors[spans[i].tensor].name, nb2), (long long)spans[i - 1].begin,
                    (long long)spans[i - 1].end, (long long)spans[i].begin, (long long)spans[i].end);
            goto done;
        }
        if (spans[i].begin > pos) {
            set_err(err, "%s: bytes [%lld, %lld) of the data area belong to no tensor (before '%s'); "
                         "the format allows no holes", f->path, (long long)pos,
                    (long long)spans[i].begin, hz_st_shown(f->tensors[spans[i].tensor].name, nb));
            goto done;
        }
        pos = spans[i].end;
    }
    if (pos != data_bytes) {
        set_err(err, "%s: the last %lld bytes of the file belong to no tensor", f->path,
                (long long)(data_bytes - pos));
        goto done;
    }
    f->by_name = malloc((f->tensor_n > 0 ? (size_t)f->tensor_n : 1) * sizeof *f->by_name);
    if (!f->by_name) {
        set_err(err, "%s: out of memory reading the header", f->path);
        goto done;
    }
    for (int i = 0; i < f->tensor_n; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, (size_t)f->tensor_n, sizeof *f->by_name, hz_st_cmp_name);
    rc = 0;
done:
    free(spans);
    json_decref(root);
    return rc;
}

void hz_st_close(hz_st_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->tensor_n; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    if (f->mapped && f->map) munmap(f->map, f->size);
    free(f->path);
    free(f);
}

static hz_st_file *new_file(const char *name, char *err)
{
    hz_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = xstrdup(name))) {
        free(f);
        set_err(err, "%s: out of memory", name);
        return NULL;
    }
    return f;
}

hz_st_file *hz_st_open_memory(const void *buf, size_t size, const char *name, char *err)
{
    hz_st_file *f = new_file(name, err);
    if (!f) return NULL;
    f->map = (unsigned char *)buf;
    f->size = size;
    if (parse_file(f, err) != 0) {
        hz_st_close(f);
        return NULL;
    }
    return f;
}

hz_st_file *hz_st_open(const char *path, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    hz_st_file *f = new_file(path, err);
    if (!f) {
        close(fd);
        return NULL;
    }
    f->size = (size_t)st.st_size;
    if (f->size >= 8) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            set_err(err, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            hz_st_close(f);
            return NULL;
        }
        f->map = m;
        f->mapped = 1;
    }
    close(fd);
    if (parse_file(f, err) != 0) {
        hz_st_close(f);
        return NULL;
    }
    return f;
}

int hz_st_tensor_n(const hz_st_file *f) { return f->tensor_n; }
const hz_st_tensor *hz_st_tensor_at(const hz_st_file *f, int i) { return &f->tensors[i]; }

const hz_st_tensor *hz_st_find_sorted(const hz_st_tensor *const *v, int n, const char *name)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(v[mid]->name, name);
        if (c == 0) return v[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const hz_st_tensor *hz_st_find(const hz_st_file *f, const char *name)
{
    return hz_st_find_sorted((const hz_st_tensor *const *)f->by_name, f->tensor_n, name);
}
