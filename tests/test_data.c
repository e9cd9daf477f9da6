/* tests/test_data.c - the token data reader (runtime/data*.c) and text2tokens.
 * Fixtures are written at test time into a mkdtemp directory by the small writers below:
 * llm.c shards (uint16 v1, uint32 v7), hand-made .npy files, and one broken file per error
 * the reader must name. Build with tools/text2tokens.c and -DTEXT2TOKENS_NO_MAIN. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "data.h"
#include "test.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int text_to_shards(const char *in, const char *train, const char *val, double val_frac,
                   char *err);

static void put_u32le(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Token bytes of tok[0..n) at WIDTH bytes each, little-endian, into a malloc'ed buffer. */
static unsigned char *token_bytes(const uint32_t *tok, int64_t n, int width) {
    unsigned char *b = malloc((size_t)(n * width) + 1);
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < width; k++) b[i * width + k] = (unsigned char)(tok[i] >> (8 * k));
    return b;
}

static void write_file(const char *path, const void *a, size_t a_n, const void *b, size_t b_n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (fwrite(a, 1, a_n, f) != a_n || (b_n && fwrite(b, 1, b_n, f) != b_n)) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

/* llm.c shard: header claims HEADER_N tokens; the file holds tok[0..n) at WIDTH bytes. */
static void write_llmc(const char *path, int32_t magic, int32_t version, int32_t header_n,
                       const uint32_t *tok, int64_t n, int width) {
    unsigned char header[1024] = {0};
    put_u32le(header, (uint32_t)magic);
    put_u32le(header + 4, (uint32_t)version);
    put_u32le(header + 8, (uint32_t)header_n);
    unsigned char *b = token_bytes(tok, n, width);
    write_file(path, header, sizeof header, b, (size_t)(n * width));
    free(b);
}

/* .npy file of format MAJOR.0 with the dict DICT (padded as numpy pads it, to a multiple
 * of 64 with spaces and a newline), then tok[0..n) at WIDTH bytes. */
static void write_npy(const char *path, int major, const char *dict, const uint32_t *tok,
                      int64_t n, int width) {
    unsigned char pre[1024];
    size_t pre_n = major == 1 ? 10 : 12;
    size_t dict_n = strlen(dict);
    size_t hdr_n = dict_n + 1;
    while ((pre_n + hdr_n) % 64) hdr_n++;
    memcpy(pre, "\x93NUMPY", 6);
    pre[6] = (unsigned char)major;
    pre[7] = 0;
    if (major == 1) {
        pre[8] = (unsigned char)hdr_n;
        pre[9] = (unsigned char)(hdr_n >> 8);
    } else {
        put_u32le(pre + 8, (uint32_t)hdr_n);
    }
    memcpy(pre + pre_n, dict, dict_n);
    memset(pre + pre_n + dict_n, ' ', hdr_n - dict_n - 1);
    pre[pre_n + hdr_n - 1] = '\n';
    unsigned char *b = token_bytes(tok, n, width);
    write_file(path, pre, pre_n + hdr_n, b, (size_t)(n * width));
    free(b);
}

/* Read one row of T tokens and compare with tok[start..start+T] of the stream. */
static void check_row(const char *what, hz_data *d, int64_t T, const uint32_t *stream,
                      int64_t start) {
    int32_t in[16], tg[16], want_in[16], want_tg[16];
    for (int64_t t = 0; t < T; t++) {
        want_in[t] = (int32_t)stream[start + t];
        want_tg[t] = (int32_t)stream[start + t + 1];
    }
    hz_data_next_row(d, in, tg, T);
    CHECK(arrays_equal(in, want_in, T), "%s: inputs from %lld: got [%s] want [%s]", what,
          (long long)start, fmt_row(in, T), fmt_row(want_in, T));
    CHECK(arrays_equal(tg, want_tg, T), "%s: targets from %lld: got [%s] want [%s]", what,
          (long long)start + 1, fmt_row(tg, T), fmt_row(want_tg, T));
}

/* hz_data_open(PATTERN) must fail with a message naming NAME and containing PHRASE. */
static void check_open_fails(const char *what, const char *pattern, int64_t vocab,
                             int64_t min_tokens, const char *name, const char *phrase) {
    char err[HZ_DATA_ERR_BYTES] = "";
    hz_data *d = hz_data_open(pattern, vocab, min_tokens, err);
    CHECK(d == NULL, "%s: open returns NULL", what);
    hz_data_close(d);
    CHECK(strstr(err, name) && strstr(err, phrase), "%s: message names '%s' and says '%s': %s",
          what, name, phrase, err);
}

static void test_u16_shard(void) {
    uint32_t tok[10];
    for (int i = 0; i < 10; i++) tok[i] = (uint32_t)(i * 37 + 5) % 256;
    write_llmc(test_tmp("u16.bin"), 20240520, 1, 10, tok, 10, 2);
    char err[HZ_DATA_ERR_BYTES];
    hz_data *d = hz_data_open(test_tmp("u16.bin"), 256, 9, err);
    CHECK(d != NULL, "uint16 v1 shard opens: %s", d ? "ok" : err);
    if (!d) return;
    CHECK(hz_data_tokens(d) == 10, "uint16 shard: tokens %lld want 10", (long long)hz_data_tokens(d));
    check_row("uint16 row 0", d, 4, tok, 0);
    CHECK(hz_data_position(d) == 4, "position after one row: %lld want 4",
          (long long)hz_data_position(d));
    check_row("uint16 row 1", d, 4, tok, 4);
    hz_data_opts so = {.vocab = 256, .min_tokens = 5, .val_fraction = 0.4};
    check_open_split(test_tmp("u16.bin"), so, 3, 2);
    CHECK(hz_data_position(d) == 8, "position after two rows: %lld want 8",
          (long long)hz_data_position(d));
    /* 2 tokens left < T+1 = 5: the next row starts a new epoch at 0 */
    check_row("uint16 wrap-around", d, 4, tok, 0);
    CHECK(hz_data_position(d) == 4, "position after wrap: %lld want 4",
          (long long)hz_data_position(d));
    /* exactly T+1 left: no wrap */
    hz_data_seek(d, 5);
    CHECK(hz_data_position(d) == 5, "seek(5): position %lld", (long long)hz_data_position(d));
    check_row("uint16 row at 5 (T+1 left, no wrap)", d, 4, tok, 5);
    hz_data_seek(d, 7);
    check_row("uint16 row after seek(7)", d, 2, tok, 7);
    hz_data_seek(d, 10);
    CHECK(hz_data_position(d) == 10, "seek(tokens) kept: position %lld",
          (long long)hz_data_position(d));
    check_row("uint16 row after seek(end) wraps", d, 3, tok, 0);
    hz_data_seek(d, 11);
    CHECK(hz_data_position(d) == 0, "seek past the end restarts at 0: position %lld",
          (long long)hz_data_position(d));
    hz_data_seek(d, -3);
    CHECK(hz_data_position(d) == 0, "seek(-3) restarts at 0: position %lld",
          (long long)hz_data_position(d));
    hz_data_close(d);
}

static void test_u32_shard(void) {
    uint32_t tok[8];
    for (int i = 0; i < 8; i++) tok[i] = 100000u + (uint32_t)i * 12345u;
    write_llmc(test_tmp("u32.bin"), 20240801, 7, 8, tok, 8, 4);
    char err[HZ_DATA_ERR_BYTES];
    hz_data *d = hz_data_open(test_tmp("u32.bin"), 200000, 8, err);
    CHECK(d != NULL, "uint32 v7 shard opens: %s", d ? "ok" : err);
    if (!d) return;
    CHECK(hz_data_tokens(d) == 8, "uint32 shard: tokens %lld want 8", (long long)hz_data_tokens(d));
    check_row("uint32 row 0", d, 7, tok, 0);
    hz_data_close(d);
}

/* Resident bytes of the mapping of PATH in /proc/self/smaps, -1 if it is not mapped. */
static long long mapped_rss(const char *path) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[4096];
    long long rss = -1;
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line), pn = strlen(path);
        if (strchr(line, '-') && n > pn + 1 && strncmp(line + n - 1 - pn, path, pn) == 0 &&
            line[n - 1] == '\n') {
            in = 1;
            if (rss < 0) rss = 0;
        } else if (strncmp(line, "Rss:", 4) == 0 && in) {
            rss += atoll(line + 4) * 1024;
            in = 0;
        }
    }
    fclose(f);
    return rss;
}

/* The pages a shard's vocab check and its rows read are given back (data_release): the
 * file's mapping holds no resident memory after the open and after rows are read, and the
 * rows read after a release are the file's tokens. 4 MiB of uint32 tokens, 64 rows of 2049. */
static void test_released_pages(void) {
    enum { N = 1 << 20, T = 2048, ROWS = 64 };
    uint32_t *tok = malloc(sizeof(uint32_t) * N);
    for (int i = 0; i < N; i++) tok[i] = (uint32_t)(i * 2654435761u % 50000u);
    const char *path = test_tmp("big.bin");
    write_llmc(path, 20240801, 7, N, tok, N, 4);
    char err[HZ_DATA_ERR_BYTES];
    hz_data *d = hz_data_open(path, 50000, T + 1, err);
    CHECK(d != NULL, "4 MiB shard opens: %s", d ? "ok" : err);
    if (!d) {
        free(tok);
        return;
    }
    long long after_open = mapped_rss(path);
    CHECK(after_open == 0, "after the open's vocab check the shard's mapping holds %lld resident "
          "bytes, want 0", after_open);
    static int32_t in[T], tg[T];
    int64_t bad = 0;
    for (int r = 0; r < ROWS; r++) {
        hz_data_next_row(d, in, tg, T);
        for (int t = 0; t < T; t++) {
            int64_t at = (int64_t)r * T + t; /* rows follow one another in a plain stream */
            bad += in[t] != (int32_t)tok[at] || tg[t] != (int32_t)tok[at + 1];
        }
    }
    CHECK(bad == 0, "64 rows read after releases: %lld tokens differ from the file's", (long long)bad);
    long long after_rows = mapped_rss(path);
    CHECK(after_rows == 0, "after 64 rows the shard's mapping holds %lld resident bytes, want 0",
          after_rows);
    hz_data_close(d);
    free(tok);
}

/* g_a.bin (5 tokens, uint16), g_ab.bin (empty), g_b.npy (6 tokens, <u4): one stream of 11.
 * Written out of order: the reader sorts by name. */
static void test_glob_stream(void) {
    uint32_t stream[11];
    for (int i = 0; i < 11; i++) stream[i] = (uint32_t)(200 + i);
    write_npy(test_tmp("g_b.npy"), 1, "{'descr': '<u4', 'fortran_order': False, 'shape': (6,), }",
              stream + 5, 6, 4);
    write_llmc(test_tmp("g_ab.bin"), 20240520, 1, 0, stream, 0, 2);
    write_llmc(test_tmp("g_a.bin"), 20240520, 1, 5, stream, 5, 2);
    char pattern[128], err[HZ_DATA_ERR_BYTES];
    snprintf(pattern, sizeof pattern, "%s", test_tmp("g_*"));
    hz_data *d = hz_data_open(pattern, 256, 11, err);
    CHECK(d != NULL, "glob of 3 shards opens: %s", d ? "ok" : err);
    if (!d) return;
    CHECK(hz_data_tokens(d) == 11, "glob: tokens %lld want 11", (long long)hz_data_tokens(d));
    check_row("glob row 0 (inside shard a, target from b)", d, 4, stream, 0);
    check_row("glob row 1 (across the boundary)", d, 4, stream, 4);
    check_row("glob row 2 wraps (3 left)", d, 4, stream, 0);
    hz_data_seek(d, 5);
    check_row("glob row at 5 (start of b, after the empty shard)", d, 5, stream, 5);
    hz_data_seek(d, 1);
    check_row("glob row spanning all shards", d, 9, stream, 1);
    hz_data_close(d);
}

static void test_npy(void) {
    uint32_t tok[12];
    for (int i = 0; i < 12; i++) tok[i] = (uint32_t)(60000 + i * 400);
    write_npy(test_tmp("u2.npy"), 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (12,), }",
              tok, 12, 2);
    char err[HZ_DATA_ERR_BYTES];
    hz_data *d = hz_data_open(test_tmp("u2.npy"), 65536, 12, err);
    CHECK(d != NULL, "npy 1.0 <u2 opens: %s", d ? "ok" : err);
    if (d) {
        CHECK(hz_data_tokens(d) == 12, "npy <u2: tokens %lld want 12", (long long)hz_data_tokens(d));
        check_row("npy <u2 row 0", d, 11, tok, 0);
        hz_data_close(d);
    }
    for (int i = 0; i < 12; i++) tok[i] = (uint32_t)(70000 + i * 9);
    /* format 2.0, double quotes and no trailing comma: still a dict numpy could write */
    write_npy(test_tmp("u4.npy"), 2, "{\"descr\": \"<u4\", \"fortran_order\": False, \"shape\": (12,)}",
              tok, 12, 4);
    d = hz_data_open(test_tmp("u4.npy"), 128256, 12, err);
    CHECK(d != NULL, "npy 2.0 <u4 opens: %s", d ? "ok" : err);
    if (d) {
        check_row("npy <u4 row 0", d, 6, tok, 0);
        check_row("npy <u4 row 1", d, 5, tok, 6);
        hz_data_close(d);
    }
}

static void test_errors(void) {
    uint32_t tok[6000];
    for (int i = 0; i < 6000; i++) tok[i] = (uint32_t)(i % 200);
    char pattern[128];

    write_llmc(test_tmp("trunc.bin"), 20240520, 1, 100, tok, 10, 2);
    check_open_fails("truncated shard", test_tmp("trunc.bin"), 256, 1, "trunc.bin",
                     "truncated: header says 100 tokens but file holds 10");
    write_file(test_tmp("tiny.bin"), "abc", 3, NULL, 0);
    check_open_fails("file shorter than a header", test_tmp("tiny.bin"), 256, 1, "tiny.bin",
                     "truncated");
    write_llmc(test_tmp("magic.bin"), 12345, 1, 10, tok, 10, 2);
    check_open_fails("bad magic", test_tmp("magic.bin"), 256, 1, "magic.bin", "bad magic 0x00003039");
    write_llmc(test_tmp("version.bin"), 20240520, 2, 10, tok, 10, 2);
    check_open_fails("unsupported version", test_tmp("version.bin"), 256, 1, "version.bin",
                     "unsupported version 2");
    write_llmc(test_tmp("trail.bin"), 20240520, 1, 8, tok, 10, 2);
    check_open_fails("trailing bytes", test_tmp("trail.bin"), 256, 1, "trail.bin", "trailing bytes");

    tok[3] = 300;
    write_llmc(test_tmp("vocab.bin"), 20240520, 1, 10, tok, 10, 2);
    check_open_fails("token >= vocab", test_tmp("vocab.bin"), 256, 1, "vocab.bin",
                     "token id 300 at position 3 >= vocab 256");
    tok[3] = 3;
    tok[5000] = 256;   /* in the second vocab-check block */
    write_llmc(test_tmp("vocab_far.bin"), 20240801, 7, 6000, tok, 6000, 4);
    check_open_fails("token >= vocab in a later block", test_tmp("vocab_far.bin"), 256, 1,
                     "vocab_far.bin", "token id 256 at position 5000 >= vocab 256");
    tok[5000] = 0;

    write_llmc(test_tmp("short.bin"), 20240520, 1, 10, tok, 10, 2);
    check_open_fails("too few tokens for a step", test_tmp("short.bin"), 256, 11, "short.bin",
                     "data holds 10 tokens but one step needs 11");
    snprintf(pattern, sizeof pattern, "%s", test_tmp("nothing_*.bin"));
    check_open_fails("glob matching nothing", pattern, 256, 1, "nothing_*.bin",
                     "glob matched nothing");
    check_open_fails("missing file", test_tmp("missing.bin"), 256, 1, "missing.bin", "no such file");

    write_npy(test_tmp("f4.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
              tok, 4, 4);
    check_open_fails("npy <f4", test_tmp("f4.npy"), 256, 1, "f4.npy",
                     "npy dtype '<f4' not supported");
    write_npy(test_tmp("fortran.npy"), 1,
              "{'descr': '<u2', 'fortran_order': True, 'shape': (4,), }", tok, 4, 2);
    check_open_fails("npy fortran order", test_tmp("fortran.npy"), 256, 1, "fortran.npy",
                     "fortran_order True not supported");
    write_npy(test_tmp("2d.npy"), 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3), }",
              tok, 6, 2);
    check_open_fails("npy 2-D", test_tmp("2d.npy"), 256, 1, "2d.npy", "shape (2, 3) is not 1-D");
    write_npy(test_tmp("ntrunc.npy"), 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (9,), }",
              tok, 4, 2);
    check_open_fails("npy truncated", test_tmp("ntrunc.npy"), 256, 1, "ntrunc.npy",
                     "truncated: header says 9 tokens but file holds 4");
    write_npy(test_tmp("garbled.npy"), 1, "{'descr': '<u2', 'fortran_order': Maybe}", tok, 4, 2);
    check_open_fails("npy bad header", test_tmp("garbled.npy"), 256, 1, "garbled.npy",
                     "bad npy header");

    /* a bad shard inside a glob is named, not the pattern */
    write_llmc(test_tmp("mix_a.bin"), 20240520, 1, 10, tok, 10, 2);
    write_llmc(test_tmp("mix_b.bin"), 20240520, 9, 10, tok, 10, 2);
    snprintf(pattern, sizeof pattern, "%s", test_tmp("mix_*.bin"));
    check_open_fails("bad shard in a glob", pattern, 256, 1, "mix_b.bin", "unsupported version 9");
}

static void test_text2tokens(void) {
    const char *text = "It is a truth universally acknowledged.\n";   /* 40 bytes */
    uint32_t stream[64];
    int64_t n = (int64_t)strlen(text);
    for (int64_t i = 0; i < n; i++) stream[i] = (unsigned char)text[i];
    write_file(test_tmp("in.txt"), text, (size_t)n, NULL, 0);
    char err[512] = "";
    int rc = text_to_shards(test_tmp("in.txt"), test_tmp("t_train.bin"), test_tmp("t_val.bin"),
                            0.25, err);
    CHECK(rc == 0, "text_to_shards(40 bytes, 0.25): %s", rc == 0 ? "ok" : err);
    if (rc != 0) return;
    char derr[HZ_DATA_ERR_BYTES];
    hz_data *d = hz_data_open(test_tmp("t_train.bin"), 256, 2, derr);
    CHECK(d != NULL, "text2tokens train shard opens: %s", d ? "ok" : derr);
    if (d) {
        CHECK(hz_data_tokens(d) == 30, "train shard: tokens %lld want 30",
              (long long)hz_data_tokens(d));
        check_row("train shard row 0 (bytes)", d, 10, stream, 0);
        hz_data_close(d);
    }
    d = hz_data_open(test_tmp("t_val.bin"), 256, 2, derr);
    CHECK(d != NULL, "text2tokens val shard opens: %s", d ? "ok" : derr);
    if (d) {
        CHECK(hz_data_tokens(d) == 10, "val shard: tokens %lld want 10", (long long)hz_data_tokens(d));
        check_row("val shard row 0 (the last 10 bytes)", d, 9, stream, 30);
        hz_data_close(d);
    }
    rc = text_to_shards(test_tmp("no_such.txt"), test_tmp("x_train.bin"), test_tmp("x_val.bin"),
                        0.1, err);
    CHECK(rc != 0 && strstr(err, "no_such.txt") && strstr(err, "cannot open"),
          "text_to_shards(missing input) fails: %s", err);
    rc = text_to_shards(test_tmp("in.txt"), test_tmp("x_train.bin"), test_tmp("x_val.bin"), 1.0, err);
    CHECK(rc != 0 && strstr(err, "out of range"), "text_to_shards(val 1.0) fails: %s", err);
    write_file(test_tmp("empty.txt"), "", 0, NULL, 0);
    rc = text_to_shards(test_tmp("empty.txt"), test_tmp("x_train.bin"), test_tmp("x_val.bin"), 0.1, err);
    CHECK(rc != 0 && strstr(err, "empty.txt") && strstr(err, "empty"),
          "text_to_shards(empty input) fails: %s", err);
}

int main(void) {
    if (test_tmp_open("data") != 0) return 2;
    test_u16_shard();
    test_u32_shard();
    test_glob_stream();
    test_npy();
    test_released_pages();
    test_errors();
    test_text2tokens();
    test_tmp_close();
    TEST_END();
}
