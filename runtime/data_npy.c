/* runtime/data_npy.c - 1-D .npy token arrays (format 1.0, 2.0 or 3.0): the preamble, the
 * header dict and its dtype, order and shape, then the bytes that follow (data_shard.c). */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "data_impl.h"

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
int data_parse_npy(shard *s, char *err) {
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
    return data_check_bytes(s, hdr_off + hdr_len, h.shape[0], err);
}
