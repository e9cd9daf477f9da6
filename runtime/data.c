/* runtime/data.c - the token data reader: shard discovery, format parsing, the vocab check,
 * and rows read across shards. Each shard file is mmap'ed read-only and its tokens are read
 * in place (uint16 or uint32, little-endian) through per-shard offsets into one stream, so
 * opening a large data set costs address space rather than memory; the one full pass at
 * open (the vocab check) pages every token in once, and the kernel may drop them again.
 * JSON Lines examples (.jsonl) are parsed with jansson at open into two int32 arrays of
 * (input, target) pairs, shuffled per epoch by (seed, epoch) alone and packed into rows. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "data.h"
#include "errf.h"
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
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
    int jsonl;                 /* 1: examples of JSON Lines; 0: a token stream */
    int64_t tokens_n;          /* tokens of the part served (stream) or its pairs (jsonl) */
    int64_t epoch;             /* see hz_data_epoch */

    /* token streams: the part served is stream[base, base + tokens_n) */
    shard *shards;             /* (shards_n) in name order */
    int shards_n;
    int64_t all_n;             /* sum of the shards' tokens_n */
    int64_t base;
    int64_t pos;               /* next row's first token - base; 0 <= pos <= tokens_n */

    /* JSON Lines: example e owns pairs [ex_start[e], ex_start[e + 1]) in file order */
    int32_t *ids;              /* (tokens_n) pair inputs: input_ids */
    int32_t *tgt;              /* (tokens_n) pair targets: the next label, or -100 */
    int64_t *ex_start;         /* (examples_n + 1) */
    int64_t examples_n;
    int64_t pairs_cap, ex_cap; /* allocated entries of ids/tgt and ex_start, while parsing */
    int64_t *order;            /* (examples_n) this epoch's example order */
    uint64_t seed;
    int64_t index;             /* next pair: example order[index] ... */
    int64_t offset;            /* ... its pair at this offset */
    int64_t epoch_pos;         /* pairs served in this epoch */
};

#define set_err(err, ...) hz_errf(err, HZ_DATA_ERR_BYTES, __VA_ARGS__)

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

/* Map PATH read-only into *map, *map_bytes. An empty token shard is an error (no format
 * is empty); an empty .jsonl (JSONL set) gives *map NULL and 0 bytes, for the parser to
 * report with a line number. */
static int map_file(const char *path, int jsonl, void **map_out, size_t *map_bytes,
                    char *err) {
    /* O_NONBLOCK: opening a FIFO would wait for a writer; it is refused below instead */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
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
        set_err(err, jsonl ? "%s: not a regular file (expected a JSON Lines file)"
                           : "%s: not a regular file (a token shard is a .bin or .npy file)",
                path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0 && jsonl) {
        close(fd);
        *map_out = NULL;
        *map_bytes = 0;
        return 0;
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
    *map_out = map;
    *map_bytes = (size_t)st.st_size;
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

/* Map and parse one shard; check its tokens against VOCAB unless vocab is 0 (the shard
 * was checked already by this process). */
static int open_shard(shard *s, int64_t vocab, char *err) {
    if (map_file(s->path, 0, &s->map, &s->map_bytes, err) != 0) return -1;
    int rc;
    if (s->map_bytes >= NPY_MAGIC_BYTES && memcmp(s->map, NPY_MAGIC, NPY_MAGIC_BYTES) == 0)
        rc = parse_npy(s, err);
    else
        rc = parse_llmc(s, err);
    if (rc != 0) return -1;
    return vocab ? check_vocab(s, vocab, err) : 0;
}

/* ---- JSON Lines examples ---- */

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
static int jsonl_parse(hz_data *d, const char *name, const char *bytes, size_t n,
                       int64_t vocab, char *err) {
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

/* splitmix64 (Steele, Lea, Flood 2014): the shuffle's generator. */
static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Start epoch E: its order is a Fisher-Yates shuffle of the identity drawn from a
 * generator seeded by (seed, E) alone, so a seek rebuilds any epoch's order directly.
 * (The modulo's bias is below examples_n / 2^64.) */
static void jsonl_start_epoch(hz_data *d, int64_t e) {
    d->epoch = e;
    d->index = d->offset = d->epoch_pos = 0;
    uint64_t state = d->seed ^ (0x6A09E667F3BCC909ull * ((uint64_t)e + 1));
    state = splitmix64(&state);
    for (int64_t i = 0; i < d->examples_n; i++) d->order[i] = i;
    for (int64_t i = d->examples_n - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(&state) % (uint64_t)(i + 1));
        int64_t t = d->order[i];
        d->order[i] = d->order[j];
        d->order[j] = t;
    }
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
    jsonl_start_epoch(d, 0);
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
        rc = map_file(paths[i], 1, &map, &map_bytes, err);
        if (rc != 0) break;
        rc = jsonl_parse(d, paths[i], map, map_bytes, vocab, err);
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
        if (open_shard(s, vocab, err) != 0) return -1;
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
    return opened(d, jsonl_parse(d, name, bytes, bytes_n, o->vocab, err) != 0 ||
                         jsonl_finish(d, name, o, err) != 0);
}

int64_t hz_data_tokens(const hz_data *d) { return d->tokens_n; }

int64_t hz_data_examples(const hz_data *d) { return d->examples_n; /* 0 for streams */ }

int64_t hz_data_epoch(const hz_data *d) { return d->epoch; }

int64_t hz_data_position(const hz_data *d) {
    return d->jsonl ? d->epoch * d->tokens_n + d->epoch_pos : d->pos;
}

void hz_data_seek(hz_data *d, int64_t position) {
    if (!d->jsonl) {
        d->pos = position >= 0 && position <= d->tokens_n ? position : 0;
        return;
    }
    if (position < 0) position = 0;
    jsonl_start_epoch(d, position / d->tokens_n);
    int64_t p = position % d->tokens_n;
    d->epoch_pos = p;
    for (;;) {   /* p < tokens_n: some example of this epoch holds pair p */
        int64_t e = d->order[d->index], len = d->ex_start[e + 1] - d->ex_start[e];
        if (p < len) break;
        p -= len;
        d->index++;
    }
    d->offset = p;
}

/* out[i] = tok[from + i] for i < n, FROM a stream index; needs from + n <= all_n. */
static void read_tokens(const hz_data *d, int64_t from, int64_t n, int32_t *out) {
    assert(from >= 0 && n >= 0 && from + n <= d->all_n);
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

/* Pairs of the examples in this epoch's order, packed; crosses examples and epochs. */
static void jsonl_next_row(hz_data *d, int32_t *inputs, int32_t *targets, int64_t T) {
    for (int64_t t = 0; t < T;) {
        int64_t e = d->order[d->index];
        int64_t start = d->ex_start[e], len = d->ex_start[e + 1] - start;
        int64_t take = len - d->offset < T - t ? len - d->offset : T - t;
        memcpy(inputs + t, d->ids + start + d->offset, (size_t)take * sizeof *inputs);
        memcpy(targets + t, d->tgt + start + d->offset, (size_t)take * sizeof *targets);
        t += take;
        d->offset += take;
        d->epoch_pos += take;
        if (d->offset == len) {
            d->offset = 0;
            if (++d->index == d->examples_n) jsonl_start_epoch(d, d->epoch + 1);
        }
    }
}

void hz_data_next_row(hz_data *d, int32_t *inputs, int32_t *targets, int64_t T) {
    if (d->jsonl) {
        assert(T >= 1 && d->tokens_n >= 1);
        jsonl_next_row(d, inputs, targets, T);
        return;
    }
    assert(T >= 1 && T + 1 <= d->tokens_n);
    if (d->tokens_n - d->pos < T + 1) {   /* new epoch */
        d->pos = 0;
        d->epoch++;
    }
    read_tokens(d, d->base + d->pos, T, inputs);
    for (int64_t t = 0; t + 1 < T; t++) targets[t] = inputs[t + 1];
    read_tokens(d, d->base + d->pos + T, 1, &targets[T - 1]);
    d->pos += T;
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
