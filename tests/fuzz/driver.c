/* tests/fuzz/driver.c - a plain-C stand-in for libFuzzer's main(), for the test suite and
 * for compilers without -fsanitize=fuzzer. Link it with one target (compiled with
 * -DHZ_FUZZ_DRIVER and, best, -fsanitize=address,undefined):
 *
 *   driver [-n MUTATIONS] [-s SEED] [-d DICT] CORPUS...
 *
 * runs every file of the CORPUS directories (or files) through LLVMFuzzerTestOneInput, then
 * MUTATIONS inputs (default 2000) made from them by a deterministic xorshift generator:
 * bit flips, random and boundary bytes, inserts, deletes, duplicated ranges, truncation,
 * splices of two seeds, little-endian lengths at the front, and tokens of a libFuzzer-format
 * dictionary. A bug aborts (sanitizer or target); otherwise it prints one CHECK line and
 * "1 passed, 0 failed" for tests/run.sh. */
#ifndef HZ_FUZZ_DRIVER
#error "compile the fuzz driver with -DHZ_FUZZ_DRIVER (or use libFuzzer: see tests/fuzz/README.md)"
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DRIVER_MAX_INPUT (1 << 20)

typedef struct blob {
    uint8_t *p;
    size_t n;
} blob;

typedef struct blobs {
    blob *v;
    int n, cap;
} blobs;

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

static void push(blobs *b, const uint8_t *p, size_t n)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->v = realloc(b->v, (size_t)b->cap * sizeof *b->v);
        if (!b->v) abort();
    }
    uint8_t *c = malloc(n ? n : 1);
    if (!c) abort();
    memcpy(c, p, n);
    b->v[b->n++] = (blob){c, n};
}

static void add_file(blobs *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return;
    static uint8_t buf[DRIVER_MAX_INPUT];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    push(b, buf, n);
}

static void add_path(blobs *b, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "driver: cannot open %s\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        add_file(b, path);
        return;
    }
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort); /* sorted: the run is reproducible */
    for (int i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode)) add_file(b, p);
        free(names[i]);
    }
    free(names);
}

/* libFuzzer dictionary lines: optional name=, then "token" with \\, \" and \xNN escapes. */
static void load_dict(blobs *d, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "driver: cannot open dictionary %s\n", path);
        exit(2);
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *q = strchr(line, '"');
        if (!q || line[strspn(line, " \t")] == '#') continue;
        uint8_t tok[512];
        size_t n = 0;
        for (char *c = q + 1; *c && *c != '"' && n < sizeof tok; c++) {
            if (*c == '\\' && c[1] == 'x' && c[2] && c[3]) {
                char hex[3] = {c[2], c[3], 0};
                tok[n++] = (uint8_t)strtol(hex, NULL, 16);
                c += 3;
            } else if (*c == '\\' && c[1]) {
                tok[n++] = (uint8_t)*++c;
            } else {
                tok[n++] = (uint8_t)*c;
            }
        }
        if (n) push(d, tok, n);
    }
    fclose(f);
}

/* One mutation of BUF (length *n, capacity DRIVER_MAX_INPUT) in place. */
static void mutate(uint8_t *buf, size_t *n, const blobs *seeds, const blobs *dict)
{
    static const uint8_t boundary[] = {0, 1, 0x7f, 0x80, 0xff, '0', '9', '-', '"', '{', '}', '[', ']', ',', ':'};
    size_t len = *n;
    switch (next() % 10) {
    case 0: /* flip a bit */
        if (len) buf[below(len)] ^= (uint8_t)(1u << (next() % 8));
        break;
    case 1: /* a random byte */
        if (len) buf[below(len)] = (uint8_t)next();
        break;
    case 2: /* a boundary or JSON syntax byte */
        if (len) buf[below(len)] = boundary[below(sizeof boundary)];
        break;
    case 3: { /* insert a few random bytes */
        size_t at = below(len + 1), k = 1 + below(4);
        if (len + k > DRIVER_MAX_INPUT) break;
        memmove(buf + at + k, buf + at, len - at);
        for (size_t i = 0; i < k; i++) buf[at + i] = (uint8_t)next();
        len += k;
        break;
    }
    case 4: { /* delete a range */
        if (!len) break;
        size_t at = below(len), k = 1 + below(len - at < 16 ? len - at : 16);
        memmove(buf + at, buf + at + k, len - at - k);
        len -= k;
        break;
    }
    case 5: { /* duplicate a range */
        if (!len) break;
        size_t at = below(len), k = 1 + below(len - at < 64 ? len - at : 64), to = below(len + 1);
        if (len + k > DRIVER_MAX_INPUT) break;
        uint8_t tmp[64];
        memcpy(tmp, buf + at, k);
        memmove(buf + to + k, buf + to, len - to);
        memcpy(buf + to, tmp, k);
        len += k;
        break;
    }
    case 6: /* truncate */
        len = below(len + 1);
        break;
    case 7: { /* splice: the head of this input, the tail of another seed */
        const blob *o = &seeds->v[below((size_t)seeds->n)];
        size_t cut = below(len + 1), from = below(o->n + 1);
        if (cut + (o->n - from) > DRIVER_MAX_INPUT) break;
        memcpy(buf + cut, o->p + from, o->n - from);
        len = cut + (o->n - from);
        break;
    }
    case 8: { /* a little-endian length at the front (the safetensors header size) */
        static const uint64_t vals[] = {0, 1, 2, 7, 8, 0x7fffffffull, 0xffffffffull, 100ull << 20,
                                        (100ull << 20) + 1, ~0ull, 1ull << 63};
        uint64_t v = next() % 3 ? vals[below(sizeof vals / sizeof *vals)] : (uint64_t)below(len + 64);
        for (int i = 0; i < 8 && (size_t)i < len; i++) buf[i] = (uint8_t)(v >> (8 * i));
        break;
    }
    default: { /* insert or overwrite with a dictionary token */
        if (!dict->n) break;
        const blob *t = &dict->v[below((size_t)dict->n)];
        size_t at = below(len + 1);
        if (next() & 1) {
            if (len + t->n > DRIVER_MAX_INPUT) break;
            memmove(buf + at + t->n, buf + at, len - at);
            len += t->n;
        } else if (at + t->n > len) {
            break;
        }
        memcpy(buf + at, t->p, t->n);
        break;
    }
    }
    *n = len;
}

int main(int argc, char **argv)
{
    long mutations = 2000;
    blobs seeds = {0}, dict = {0};
    const char *name = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) mutations = atol(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) rng = strtoull(argv[++i], NULL, 10) | 1;
        else if (!strcmp(argv[i], "-d") && i + 1 < argc) load_dict(&dict, argv[++i]);
        else add_path(&seeds, argv[i]);
    }
    if (!seeds.n) push(&seeds, (const uint8_t *)"", 0);
    for (int i = 0; i < seeds.n; i++) LLVMFuzzerTestOneInput(seeds.v[i].p, seeds.v[i].n);
    uint8_t *buf = malloc(DRIVER_MAX_INPUT);
    if (!buf) abort();
    for (long m = 0; m < mutations; m++) {
        const blob *s = &seeds.v[below((size_t)seeds.n)];
        size_t n = s->n;
        memcpy(buf, s->p, n);
        for (int k = 1 + (int)below(4); k > 0; k--) mutate(buf, &n, &seeds, &dict);
        /* a copy of exactly n bytes, so ASan sees any read past the input's end */
        uint8_t *exact = malloc(n ? n : 1);
        if (!exact) abort();
        memcpy(exact, buf, n);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
    }
    free(buf);
    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
    CHECK(1, "%s: %d seeds and %ld mutations, no crash, leak or undefined behaviour", base, seeds.n,
          mutations);
    for (int i = 0; i < seeds.n; i++) free(seeds.v[i].p);
    for (int i = 0; i < dict.n; i++) free(dict.v[i].p);
    free(seeds.v);
    free(dict.v);
    TEST_END();
}
