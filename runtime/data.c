/* runtime/data.c - the token data reader: shard discovery, format parsing, the vocab check,
 * and rows read across shards. Each shard file is mmap'ed read-only and its tokens are read
 * in place (uint16 or uint32, little-endian) through per-shard offsets into one stream, so
 * opening a large data set costs address space rather than memory; the one full pass at
 * open (the vocab check) pages every token in once, and the kernel may drop them again. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "data.h"
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "runtime/data.c reads little-endian token files in place; byte-swap in load_token"
#endif

#define LLMC_HEADER_N 256                  /* int32 words in an llm.c shard header */
#define LLMC_HEADER_BYTES (LLMC_HEADER_N * 4)
#define LLMC_MAGIC_U16 20240520            /* with version 1: uint16 tokens */
#define LLMC_VERSION_U16 1
#define LLMC_MAGIC_U32 20240801            /* with version 7: uint32 tokens */
#define LLMC_VERSION_U32 7
#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_BYTES 6

typedef struct shard {
    char *path;
    void *map;                 /* the whole file, read-only */
    size_t map_bytes;
    const unsigned char *tok;  /* first token, inside map */
    int width;                 /* bytes per token: 2 or 4 */
    int64_t tokens_n;
    int64_t start;             /* stream index of this shard's first token */
} shard;

struct hz_data {
    shard *shards;             /* (shards_n) in name order */
    int shards_n;
    int64_t tokens_n;          /* sum of the shards' tokens_n */
    int64_t pos;               /* next row's first token; 0 <= pos <= tokens_n */
};

#ifdef __GNUC__
__attribute__((format(printf, 2, 3)))
#endif
static void set_err(char *err, const char *fmt, ...) {
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, HZ_DATA_ERR_BYTES, fmt, ap);
    va_end(ap);
}

static uint32_t load_token(const unsigned char *tok, int width, int64_t i) {
    if (width == 2) {
        uint16_t v;
        memcpy(&v, tok + 2 * i, 2);
        return v;
    }
    uint32_t v;
    memcpy(&v, tok + 4 * i, 4);
    return v;
}

/* ---- files ---- */

/* Map PATH read-only into s->map. An empty file is an error here: no format is empty. */
static int map_file(shard *s, const char *path, char *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT)
            set_err(err, "%s: no such file", path);
        else
            set_err(err, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_err(err, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, "%s: not a regular file (a token shard is a .bin or .npy file)", path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        set_err(err, "%s: empty file (expected an llm.c .bin shard or a .npy array)", path);
        close(fd);
        return -1;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);   /* the mapping keeps the file */
    if (map == MAP_FAILED) {
        set_err(err, "%s: mmap failed: %s", path, strerror(errno));
        return -1;
    }
    s->map = map;
    s->map_bytes = (size_t)st.st_size;
    return 0;
}

/* Set s->tokens_n from the file's claim after checking the bytes that follow hold exactly
 * that many tokens of s->width bytes from DATA_OFF on. */
static int check_data_bytes(shard *s, size_t data_off, int64_t claimed_n, char *err) {
    size_t data_bytes = s->map_bytes - data_off;
    int64_t held_n = (int64_t)(data_bytes / (size_t)s->width);
    if (claimed_n > held_n) {
        set_err(err, "%s: truncated: header says %lld tokens but file holds %lld",
                s->path, (long long)claimed_n, (long long)held_n);
        return -1;
    }
    if ((size_t)claimed_n * (size_t)s->width != data_bytes) {
        set_err(err, "%s: trailing bytes: header says %lld tokens (%zu bytes) but %zu bytes "
                "follow the header", s->path, (long long)claimed_n,
                (size_t)claimed_n * (size_t)s->width, data_bytes);
        return -1;
    }
    s->tok = (const unsigned char *)s->map + data_off;
    s->tokens_n = claimed_n;
    return 0;
}

/* llm.c shard: 256 int32 header, then header[2] tokens. */
static int parse_llmc(shard *s, char *err) {
    if (s->map_bytes < LLMC_HEADER_BYTES) {
        set_err(err, "%s: truncated: file holds %zu bytes, less than the %d-byte llm.c header",
                s->path, s->map_bytes, LLMC_HEADER_BYTES);
        return -1;
    }
    int32_t header[3];
    memcpy(header, s->map, sizeof header);
    int32_t magic = header[0], version = header[1], count = header[2];
    int want_version;
    if (magic == LLMC_MAGIC_U16) {
        want_version = LLMC_VERSION_U16;
        s->width = 2;
    } else if (magic == LLMC_MAGIC_U32) {
        want_version = LLMC_VERSION_U32;
        s->width = 4;
    } else {
        set_err(err, "%s: bad magic 0x%08x (%d): not an llm.c shard (magic %d or %d) "
                "nor a .npy file", s->path, (unsigned)magic, magic, LLMC_MAGIC_U16,
                LLMC_MAGIC_U32);
        return -1;
    }
    if (version != want_version) {
        set_err(err, "%s: unsupported version %d for llm.c magic %d (this reader knows "
                "version %d)", s->path, version, magic, want_version);
        return -1;
    }
    if (count < 0) {
        set_err(err, "%s: bad header: token count %d is negative", s->path, count);
        return -1;
    }
    return check_data_bytes(s, LLMC_HEADER_BYTES, count, err);
}

/* ---- .npy header: a Python dict literal such as
 *   {'descr': '<u2', 'fortran_order': False, 'shape': (1000,), }
 * parsed by a small recursive reader that knows strings, True/False, tuples of ints and
 * (skipped) lists, which is all numpy writes. ---- */

#define NPY_MAX_DIMS 32

typedef struct npy_header {
    char descr[32];            /* '' when the descr is not a plain string (structured) */
    int have_descr;
    int fortran_order;         /* -1 until seen */
    int ndim;                  /* -1 until seen */
    int64_t shape[NPY_MAX_DIMS];
} npy_header;

typedef struct npy_cursor {
    const char *p, *begin, *end;
} npy_cursor;

static void npy_skip_ws(npy_cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int npy_accept(npy_cursor *c, char ch) {
    npy_skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string into buf (truncated to cap-1); no escapes, as numpy never needs them. */
static int npy_string(npy_cursor *c, char *buf, size_t cap) {
    npy_skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (n + 1 < cap) buf[n++] = *c->p;
        c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    buf[n] = 0;
    return 0;
}

/* A non-negative integer, with the 'L' suffix Python 2 wrote. */
static int npy_int(npy_cursor *c, int64_t *out) {
    npy_skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return -1;
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*c->p++ - '0');
    }
    if (c->p < c->end && *c->p == 'L') c->p++;
    *out = v;
    return 0;
}

static int npy_word(npy_cursor *c, const char *word) {
    npy_skip_ws(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, word, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* Skip a bracketed value (a structured dtype's list of fields), quotes respected. */
static int npy_skip_bracketed(npy_cursor *c) {
    int depth = 0;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (ch == '\'' || ch == '"') {
            while (c->p < c->end && *c->p != ch) c->p++;
            if (c->p >= c->end) return -1;
            c->p++;
        } else if (ch == '[' || ch == '(') {
            depth++;
        } else if (ch == ']' || ch == ')') {
            if (--depth == 0) return 0;
        }
    }
    return -1;
}

static int npy_parse_dict(npy_cursor *c, npy_header *h) {
    if (!npy_accept(c, '{')) return -1;
    for (;;) {
        if (npy_accept(c, '}')) return 0;
        char key[32];
        if (npy_string(c, key, sizeof key) != 0 || !npy_accept(c, ':')) return -1;
        npy_skip_ws(c);
        if (strcmp(key, "descr") == 0) {
            h->have_descr = 1;
            if (c->p < c->end && *c->p == '[') {
                h->descr[0] = 0;
                if (npy_skip_bracketed(c) != 0) return -1;
            } else if (npy_string(c, h->descr, sizeof h->descr) != 0) {
                return -1;
            }
        } else if (strcmp(key, "fortran_order") == 0) {
            if (npy_word(c, "True")) h->fortran_order = 1;
            else if (npy_word(c, "False")) h->fortran_order = 0;
            else return -1;
        } else if (strcmp(key, "shape") == 0) {
            if (!npy_accept(c, '(')) return -1;
            h->ndim = 0;
            while (!npy_accept(c, ')')) {
                if (h->ndim == NPY_MAX_DIMS) return -1;
                if (npy_int(c, &h->shape[h->ndim++]) != 0) return -1;
                if (!npy_accept(c, ',')) {
                    if (!npy_accept(c, ')')) return -1;
                    break;
                }
            }
        } else {
            return -1;   /* numpy writes only the three keys above */
        }
        if (!npy_accept(c, ',')) {
            if (!npy_accept(c, '}')) return -1;
            return 0;
        }
    }
}

/* .npy file: magic, version, header length, dict header, then the array's bytes. */
static int parse_npy(shard *s, char *err) {
    const unsigned char *b = s->map;
    if (s->map_bytes < 10) {
        set_err(err, "%s: truncated: npy file holds %zu bytes, less than its preamble",
                s->path, s->map_bytes);
        return -1;
    }
    int major = b[6], minor = b[7];
    size_t hdr_off, hdr_len;
    if (major == 1) {
        hdr_off = 10;
        hdr_len = (size_t)b[8] | (size_t)b[9] << 8;
    } else if (major == 2 || major == 3) {
        if (s->map_bytes < 12) {
            set_err(err, "%s: truncated: npy file holds %zu bytes, less than its preamble",
                    s->path, s->map_bytes);
            return -1;
        }
        hdr_off = 12;
        hdr_len = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    } else {
        set_err(err, "%s: unsupported npy version %d.%d (this reader knows 1.0, 2.0, 3.0)",
                s->path, major, minor);
        return -1;
    }
    if (hdr_len > s->map_bytes - hdr_off) {
        set_err(err, "%s: truncated: npy header says %zu header bytes but file holds %zu",
                s->path, hdr_len, s->map_bytes - hdr_off);
        return -1;
    }
    npy_header h = {.have_descr = 0, .fortran_order = -1, .ndim = -1};
    npy_cursor c = {(const char *)b + hdr_off, (const char *)b + hdr_off,
                    (const char *)b + hdr_off + hdr_len};
    if (npy_parse_dict(&c, &h) != 0 || !h.have_descr || h.fortran_order < 0 || h.ndim < 0) {
        set_err(err, "%s: bad npy header (near byte %td of the header dict): expected "
                "{'descr': ..., 'fortran_order': ..., 'shape': (...)}", s->path, c.p - c.begin);
        return -1;
    }
    if (strcmp(h.descr, "<u2") == 0) {
        s->width = 2;
    } else if (strcmp(h.descr, "<u4") == 0) {
        s->width = 4;
    } else {
        char shown[40];
        snprintf(shown, sizeof shown, h.descr[0] ? "'%s'" : "(structured)", h.descr);
        set_err(err, "%s: npy dtype %s not supported (need '<u2' or '<u4', e.g. "
                "arr.astype(np.uint16))", s->path, shown);
        return -1;
    }
    if (h.fortran_order) {
        set_err(err, "%s: npy fortran_order True not supported (need a C-order 1-D array)",
                s->path);
        return -1;
    }
    if (h.ndim != 1) {
        char dims[128];
        size_t n = 0;
        dims[0] = 0;
        for (int i = 0; i < h.ndim && n < sizeof dims; i++)
            n += (size_t)snprintf(dims + n, sizeof dims - n, "%s%lld", i ? ", " : "",
                                  (long long)h.shape[i]);
        set_err(err, "%s: npy shape (%s) is not 1-D (need shape (n,), e.g. arr.reshape(-1))",
                s->path, dims);
        return -1;
    }
    return check_data_bytes(s, hdr_off + hdr_len, h.shape[0], err);
}

/* Every token < vocab. Blocks of max-reductions keep the common path a tight loop the
 * compiler vectorizes; only a failing block is searched for the first bad position. */
static int check_vocab(const shard *s, int64_t vocab, char *err) {
    enum { BLOCK = 4096 };
    for (int64_t i0 = 0; i0 < s->tokens_n; i0 += BLOCK) {
        int64_t i1 = i0 + BLOCK < s->tokens_n ? i0 + BLOCK : s->tokens_n;
        uint32_t max = 0;
        if (s->width == 2) {
            for (int64_t i = i0; i < i1; i++) {
                uint16_t v;
                memcpy(&v, s->tok + 2 * i, 2);
                max = v > max ? v : max;
            }
        } else {
            for (int64_t i = i0; i < i1; i++) {
                uint32_t v;
                memcpy(&v, s->tok + 4 * i, 4);
                max = v > max ? v : max;
            }
        }
        if ((int64_t)max < vocab) continue;
        for (int64_t i = i0; i < i1; i++) {
            uint32_t v = load_token(s->tok, s->width, i);
            if ((int64_t)v >= vocab) {
                set_err(err, "%s: token id %u at position %lld >= vocab %lld (data tokenized "
                        "for another vocabulary?)", s->path, v, (long long)i, (long long)vocab);
                return -1;
            }
        }
    }
    return 0;
}

static int open_shard(shard *s, int64_t vocab, char *err) {
    if (map_file(s, s->path, err) != 0) return -1;
    int rc;
    if (s->map_bytes >= NPY_MAGIC_BYTES && memcmp(s->map, NPY_MAGIC, NPY_MAGIC_BYTES) == 0)
        rc = parse_npy(s, err);
    else
        rc = parse_llmc(s, err);
    if (rc != 0) return -1;
    return check_vocab(s, vocab, err);
}

/* ---- the public API ---- */

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

hz_data *hz_data_open(const char *pattern, int64_t vocab, int64_t min_tokens, char *err) {
    if (err) err[0] = 0;
    if (vocab < 1 || vocab > INT32_MAX) {
        set_err(err, "%s: vocab %lld out of range [1, %d]", pattern, (long long)vocab,
                INT32_MAX);
        return NULL;
    }
    int paths_n = 0;
    char **paths = list_paths(pattern, &paths_n, err);
    if (!paths) return NULL;
    hz_data *d = calloc(1, sizeof *d);
    shard *shards = calloc((size_t)paths_n, sizeof *shards);
    if (!d || !shards) {
        set_err(err, "%s: out of memory", pattern);
        for (int i = 0; i < paths_n; i++) free(paths[i]);
        free(paths);
        free(shards);
        free(d);
        return NULL;
    }
    d->shards = shards;
    d->shards_n = paths_n;
    for (int i = 0; i < paths_n; i++) d->shards[i].path = paths[i];   /* shards own them */
    free(paths);
    for (int i = 0; i < d->shards_n; i++) {
        shard *s = &d->shards[i];
        if (open_shard(s, vocab, err) != 0) {
            hz_data_close(d);
            return NULL;
        }
        s->start = d->tokens_n;
        d->tokens_n += s->tokens_n;
    }
    if (d->tokens_n < min_tokens) {
        set_err(err, "%s: data holds %lld tokens but one step needs %lld (add data, or lower "
                "the batch size or sequence length)", pattern, (long long)d->tokens_n,
                (long long)min_tokens);
        hz_data_close(d);
        return NULL;
    }
    return d;
}

int64_t hz_data_tokens(const hz_data *d) { return d->tokens_n; }

int64_t hz_data_position(const hz_data *d) { return d->pos; }

void hz_data_seek(hz_data *d, int64_t position) {
    d->pos = position >= 0 && position <= d->tokens_n ? position : 0;
}

/* out[i] = tok[from + i] for i < n; needs from + n <= tokens_n. */
static void read_tokens(const hz_data *d, int64_t from, int64_t n, int32_t *out) {
    assert(from >= 0 && n >= 0 && from + n <= d->tokens_n);
    if (n == 0) return;
    /* the last shard starting at or before FROM; empty shards share a start with the next
     * one, and this picks the later, non-empty one */
    int lo = 0, hi = d->shards_n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (d->shards[mid].start <= from) lo = mid;
        else hi = mid - 1;
    }
    int64_t done = 0;
    for (int si = lo; done < n; si++) {
        assert(si < d->shards_n);
        const shard *s = &d->shards[si];
        int64_t off = from + done - s->start;
        int64_t take = s->tokens_n - off < n - done ? s->tokens_n - off : n - done;
        for (int64_t i = 0; i < take; i++)
            out[done + i] = (int32_t)load_token(s->tok, s->width, off + i);
        done += take;
    }
}

void hz_data_next_row(hz_data *d, int32_t *inputs, int32_t *targets, int64_t T) {
    assert(T >= 1 && T + 1 <= d->tokens_n);
    if (d->tokens_n - d->pos < T + 1) d->pos = 0;   /* new epoch */
    read_tokens(d, d->pos, T, inputs);
    for (int64_t t = 0; t + 1 < T; t++) targets[t] = inputs[t + 1];
    read_tokens(d, d->pos + T, 1, &targets[T - 1]);
    d->pos += T;
}

void hz_data_close(hz_data *d) {
    if (!d) return;
    for (int i = 0; i < d->shards_n; i++) {
        if (d->shards[i].map) munmap(d->shards[i].map, d->shards[i].map_bytes);
        free(d->shards[i].path);
    }
    free(d->shards);
    free(d);
}
