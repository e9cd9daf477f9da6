/* tests/test_jsonl.c - instruction-tuning examples (runtime/data_jsonl.c, data_rows.c):
 * JSON Lines of pre-tokenized {"input_ids", "labels"} examples packed into rows, the
 * per-epoch shuffle, the validation split, exact resume, and one clear message per kind of
 * bad input.
 * Fixtures are written at test time into a mkdtemp directory. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "data.h"
#include "test.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IGN HZ_DATA_IGNORE
#define MAX_T 64

static void write_text(const char *path, const char *text) { test_write(path, text, strlen(text)); }

static hz_data_opts opts(int64_t vocab, int64_t min_tokens, uint64_t seed, double val_fraction,
                         int split) {
    hz_data_opts o = {.vocab = vocab, .min_tokens = min_tokens, .seed = seed,
                      .val_fraction = val_fraction, .split = split};
    return o;
}

/* Read one row of T and compare it with WANT_IN / WANT_TG. */
static void check_row(const char *what, hz_data *d, int64_t T, const int32_t *want_in,
                      const int32_t *want_tg) {
    int32_t in[MAX_T], tg[MAX_T];
    hz_data_next_row(d, in, tg, T);
    CHECK(arrays_equal(in, want_in, T), "%s: inputs [%s] want [%s]", what, fmt_row(in, T),
          fmt_row(want_in, T));
    CHECK(arrays_equal(tg, want_tg, T), "%s: targets [%s] want [%s]", what, fmt_row(tg, T),
          fmt_row(want_tg, T));
}

/* One example of 7 tokens, T = 4: rows cross the example's end into the next epoch. */
static void test_pack_one(void) {
    write_text(test_tmp("one.jsonl"),
               "{\"input_ids\": [11, 12, 13, 14, 15, 16, 17], "
               "\"labels\": [-100, -100, 13, 14, -100, 16, 17]}\n");
    char err[HZ_DATA_ERR_BYTES];
    hz_data_opts o = opts(100, 1, 0, 0, HZ_DATA_ALL);
    hz_data *d = hz_data_open_opts(test_tmp("one.jsonl"), &o, err);
    CHECK(d != NULL, "one example opens: %s", d ? "ok" : err);
    if (!d) return;
    CHECK(hz_data_tokens(d) == 7 && hz_data_examples(d) == 1, "tokens %lld want 7, examples %lld "
          "want 1", (long long)hz_data_tokens(d), (long long)hz_data_examples(d));
    /* pairs: (11,-100) (12,13) (13,14) (14,-100) (15,16) (16,17) (17,-100) */
    check_row("one: row 0", d, 4, (int32_t[]){11, 12, 13, 14}, (int32_t[]){IGN, 13, 14, IGN});
    CHECK(hz_data_position(d) == 4 && hz_data_epoch(d) == 0, "one: position %lld want 4, epoch "
          "%lld want 0", (long long)hz_data_position(d), (long long)hz_data_epoch(d));
    check_row("one: row 1 ends the example (-100) and starts epoch 1", d, 4,
              (int32_t[]){15, 16, 17, 11}, (int32_t[]){16, 17, IGN, IGN});
    CHECK(hz_data_position(d) == 8 && hz_data_epoch(d) == 1, "one: position %lld want 8, epoch "
          "%lld want 1", (long long)hz_data_position(d), (long long)hz_data_epoch(d));
    check_row("one: row 2 continues the example", d, 4, (int32_t[]){12, 13, 14, 15},
              (int32_t[]){13, 14, IGN, 16});
    hz_data_close(d);
}

/* Two examples, T = 4 (7 pairs in all): the row cut falls inside the second example. The
 * shuffle picks the order; the first input names it, and the rows must follow it exactly. */
static void test_pack_two(void) {
    write_text(test_tmp("two.jsonl"),
               "{\"input_ids\": [1, 2, 3, 4], \"labels\": [-100, -100, 3, 4]}\n"
               "\n"
               "{\"input_ids\": [5, 6, 7], \"extra\": \"ignored\"}\n");
    char err[HZ_DATA_ERR_BYTES];
    hz_data *d = hz_data_open(test_tmp("two.jsonl"), 100, 1, err);
    CHECK(d != NULL, "two examples (a blank line, an extra key) open: %s", d ? "ok" : err);
    if (!d) return;
    CHECK(hz_data_tokens(d) == 7 && hz_data_examples(d) == 2, "tokens %lld want 7, examples %lld "
          "want 2", (long long)hz_data_tokens(d), (long long)hz_data_examples(d));
    int32_t in[4], tg[4];
    hz_data_next_row(d, in, tg, 4);
    /* example A pairs (1,-100) (2,3) (3,4) (4,-100); B (no labels: the ids) (5,6) (6,7) (7,-100) */
    static const int32_t a_in[] = {1, 2, 3, 4}, a_tg[] = {IGN, 3, 4, IGN};
    static const int32_t ab_in[] = {5, 6, 7, 1, 2, 3, 4}, ab_tg[] = {6, 7, IGN, IGN, 3, 4, IGN};
    if (in[0] == 1) {
        CHECK(arrays_equal(in, a_in, 4) && arrays_equal(tg, a_tg, 4),
              "order A,B: row 0 inputs [%s] targets [%s] want [1 2 3 4] [-100 3 4 -100]",
              fmt_row(in, 4), fmt_row(tg, 4));
        /* row 1: B whole, then the next epoch's first example begins */
        hz_data_next_row(d, in, tg, 4);
        CHECK(arrays_equal(in, ab_in, 3) && arrays_equal(tg, ab_tg, 3),
              "order A,B: row 1 begins with B whole, default labels: inputs [%s] targets [%s]",
              fmt_row(in, 4), fmt_row(tg, 4));
    } else {
        CHECK(arrays_equal(in, ab_in, 4) && arrays_equal(tg, ab_tg, 4),
              "order B,A: row 0 inputs [%s] targets [%s] want [5 6 7 1] [6 7 -100 -100]",
              fmt_row(in, 4), fmt_row(tg, 4));
        hz_data_next_row(d, in, tg, 4);
        CHECK(arrays_equal(in, ab_in + 4, 3) && arrays_equal(tg, ab_tg + 4, 3),
              "order B,A: row 1 continues A (spans two rows): inputs [%s] targets [%s] want "
              "[2 3 4 .] [3 4 -100 .]", fmt_row(in, 4), fmt_row(tg, 4));
        CHECK(hz_data_epoch(d) == 1, "order B,A: epoch after 8 pairs %lld want 1",
              (long long)hz_data_epoch(d));
    }
    hz_data_close(d);
}

/* N examples [k, k+1] with labels [k, k+1] for k = 1..n: each is two pairs (k, k+1) and
 * (k+1, -100), so with T = 2 a row is one example and inputs[0] names it. Returns the file. */
static const char *write_pairs_file(const char *name, int n) {
    char *text = malloc((size_t)n * 64 + 1);
    size_t k = 0;
    for (int i = 1; i <= n; i++)
        k += (size_t)sprintf(text + k, "{\"input_ids\": [%d, %d]}\n", i, i + 1);
    const char *path = test_tmp(name);
    write_text(path, text);
    free(text);
    return path;
}

/* The order of one epoch (n rows of T = 2) into ORDER; 1 if every row was one example
 * (k, k+1) with targets (k+1, -100), k in [lo, lo + n), and each k came once. */
static int read_epoch(hz_data *d, int n, int lo, int32_t *order) {
    int ok = 1;
    char *seen = calloc((size_t)(lo + n), 1);
    for (int r = 0; r < n; r++) {
        int32_t in[2], tg[2];
        hz_data_next_row(d, in, tg, 2);
        order[r] = in[0];
        if (in[0] < lo || in[0] >= lo + n || seen[in[0]] || in[1] != in[0] + 1 ||
            tg[0] != in[0] + 1 || tg[1] != IGN)
            ok = 0;
        else
            seen[in[0]] = 1;
    }
    free(seen);
    return ok;
}

static void test_shuffle(void) {
    enum { N = 20 };
    const char *path = write_pairs_file("shuf.jsonl", N);
    char err[HZ_DATA_ERR_BYTES];
    hz_data_opts o7 = opts(100, 1, 7, 0, HZ_DATA_ALL), o8 = opts(100, 1, 8, 0, HZ_DATA_ALL);
    hz_data *a = hz_data_open_opts(path, &o7, err), *b = hz_data_open_opts(path, &o7, err);
    hz_data *c = hz_data_open_opts(path, &o8, err);
    CHECK(a && b && c, "shuffle fixture opens three times: %s", a && b && c ? "ok" : err);
    if (a && b && c) {
        int32_t a0[N], a1[N], b0[N], b1[N], c0[N], ident[N];
        for (int i = 0; i < N; i++) ident[i] = i + 1;
        int ok = read_epoch(a, N, 1, a0) & read_epoch(a, N, 1, a1) & read_epoch(b, N, 1, b0) &
                 read_epoch(b, N, 1, b1) & read_epoch(c, N, 1, c0);
        CHECK(ok, "every epoch serves each example once, whole (seed 7 epoch 0: %s)",
              fmt_row(a0, N));
        CHECK(arrays_equal(a0, b0, N) && arrays_equal(a1, b1, N),
              "seed 7 twice: the same order in epochs 0 and 1");
        CHECK(!arrays_equal(a0, a1, N), "seed 7: epoch 1's order differs from epoch 0's");
        CHECK(!arrays_equal(a0, c0, N), "seed 8's epoch 0 differs from seed 7's");
        CHECK(!arrays_equal(a0, ident, N), "seed 7's epoch 0 is not the file order");
        CHECK(hz_data_epoch(a) == 2 && hz_data_position(a) == 2 * 2 * N,
              "after two epochs: epoch %lld want 2, position %lld want %d",
              (long long)hz_data_epoch(a), (long long)hz_data_position(a), 4 * N);
    }
    hz_data_close(a);
    hz_data_close(b);
    hz_data_close(c);
}

static void test_split(void) {
    enum { N = 10 };
    const char *path = write_pairs_file("split.jsonl", N);
    char err[HZ_DATA_ERR_BYTES];
    hz_data_opts ot = opts(100, 1, 3, 0.3, HZ_DATA_TRAIN), ov = opts(100, 1, 3, 0.3, HZ_DATA_VAL);
    hz_data *t = hz_data_open_opts(path, &ot, err);
    CHECK(t != NULL, "train split (val_fraction 0.3) opens: %s", t ? "ok" : err);
    hz_data *v = hz_data_open_opts(path, &ov, err);
    CHECK(v != NULL, "validation split opens: %s", v ? "ok" : err);
    if (t && v) {
        CHECK(hz_data_examples(t) == 7 && hz_data_examples(v) == 3 && hz_data_tokens(t) == 14 &&
              hz_data_tokens(v) == 6, "split of 10: train %lld examples (%lld tokens) want 7 "
              "(14), validation %lld (%lld) want 3 (6)", (long long)hz_data_examples(t),
              (long long)hz_data_tokens(t), (long long)hz_data_examples(v),
              (long long)hz_data_tokens(v));
        /* read_epoch checks each part serves its own range once: 1..7 and 8..10 */
        int32_t to[7], vo[3];
        int ok = read_epoch(t, 7, 1, to) & read_epoch(v, 3, 8, vo);
        int in_train[N + 2] = {0}, disjoint = 1;
        for (int i = 0; i < 7; i++) in_train[to[i] >= 0 && to[i] <= N ? to[i] : N + 1] = 1;
        for (int i = 0; i < 3; i++) disjoint &= vo[i] >= 0 && vo[i] <= N && !in_train[vo[i]];
        CHECK(ok && disjoint, "train serves examples 1..7 and validation 8..10 (the last, by "
              "file order), disjoint: train [%s] validation [%s]",
              fmt_row(to, 7), fmt_row(vo, 3));
    }
    hz_data_close(t);
    hz_data_close(v);
    check_open_split(path, opts(100, 1, 3, 0.3, HZ_DATA_ALL), 1, 3);
    hz_data_opts o = opts(100, 1, 3, 0.05, HZ_DATA_VAL);
    hz_data *e = hz_data_open_opts(path, &o, err);
    CHECK(!e && strstr(err, "split.jsonl") && strstr(err, "validation part is empty"),
          "val_fraction 0.05 of 10 examples: %s", err);
    hz_data_close(e);
    o = opts(100, 1, 3, 1.0, HZ_DATA_TRAIN);
    e = hz_data_open_opts(path, &o, err);
    CHECK(!e && strstr(err, "out of range"), "val_fraction 1.0 refused: %s", err);
    hz_data_close(e);
}

/* A token stream split by tokens: the last fraction, rounded down. */
static void test_stream_split(void) {
    unsigned char b[1024 + 20] = {0};
    const uint32_t header[3] = {20240520, 1, 10};   /* llm.c: magic, version 1 (uint16), count */
    for (int w = 0; w < 3; w++)
        for (int k = 0; k < 4; k++) b[4 * w + k] = (unsigned char)(header[w] >> (8 * k));
    for (int i = 0; i < 10; i++) b[1024 + 2 * i] = (unsigned char)(50 + i);
    test_write(test_tmp("s.bin"), b, sizeof b);
    char err[HZ_DATA_ERR_BYTES];
    hz_data_opts ot = opts(256, 3, 0, 0.3, HZ_DATA_TRAIN), ov = opts(256, 3, 0, 0.3, HZ_DATA_VAL);
    hz_data *t = hz_data_open_opts(test_tmp("s.bin"), &ot, err);
    hz_data *v = hz_data_open_opts(test_tmp("s.bin"), &ov, err);
    CHECK(t && v, "stream split opens: %s", t && v ? "ok" : err);
    if (t && v) {
        CHECK(hz_data_tokens(t) == 7 && hz_data_tokens(v) == 3 && hz_data_examples(t) == 0,
              "stream split of 10: train %lld want 7, validation %lld want 3",
              (long long)hz_data_tokens(t), (long long)hz_data_tokens(v));
        check_row("stream train row 0", t, 6, (int32_t[]){50, 51, 52, 53, 54, 55},
                  (int32_t[]){51, 52, 53, 54, 55, 56});
        check_row("stream train row wraps inside the train part", t, 2, (int32_t[]){50, 51},
                  (int32_t[]){51, 52});
        CHECK(hz_data_epoch(t) == 1, "stream epoch after a wrap %lld want 1",
              (long long)hz_data_epoch(t));
        check_row("stream validation row 0", v, 2, (int32_t[]){57, 58}, (int32_t[]){58, 59});
    }
    hz_data_close(t);
    hz_data_close(v);
}

/* Resume: a reader seeked to another's position serves the same rows from there on. */
static void test_seek(void) {
    write_text(test_tmp("seek.jsonl"),
               "{\"input_ids\": [1, 2, 3, 4, 5]}\n"
               "{\"input_ids\": [6, 7, 8, 9, 10, 11, 12], \"labels\": [6, -100, -100, 9, 10, 11, 12]}\n"
               "{\"input_ids\": [13, 14, 15, 16]}\n"
               "{\"input_ids\": [17, 18, 19, 20, 21, 22]}\n");   /* 22 pairs */
    char err[HZ_DATA_ERR_BYTES];
    hz_data_opts o = opts(100, 1, 12345, 0, HZ_DATA_ALL);
    enum { T = 3 };
    /* stop after 1 row (pos 3: inside the first example, as every example has >= 4 pairs),
     * 6 rows (18), 13 (39: epoch 1), 20 (60: epoch 2) */
    static const int stops[] = {1, 6, 13, 20};
    for (int s = 0; s < 4; s++) {
        hz_data *a = hz_data_open_opts(test_tmp("seek.jsonl"), &o, err);
        hz_data *b = hz_data_open_opts(test_tmp("seek.jsonl"), &o, err);
        if (!a || !b) {
            CHECK(0, "seek fixture opens: %s", err);
            hz_data_close(a);
            hz_data_close(b);
            return;
        }
        int32_t ai[T], at[T], bi[T], bt[T];
        for (int r = 0; r < stops[s]; r++) hz_data_next_row(a, ai, at, T);
        int64_t pos = hz_data_position(a);
        hz_data_next_row(b, bi, bt, T);   /* b elsewhere first: the seek must reset it */
        hz_data_seek(b, pos);
        int64_t epoch = hz_data_epoch(b);
        CHECK(hz_data_position(b) == pos && hz_data_epoch(b) == hz_data_epoch(a),
              "seek(%lld) after %d rows: position %lld, epoch %lld want %lld", (long long)pos,
              stops[s], (long long)hz_data_position(b), (long long)hz_data_epoch(b),
              (long long)hz_data_epoch(a));
        int same = 1, r;
        for (r = 0; r < 30 && same; r++) {
            hz_data_next_row(a, ai, at, T);
            hz_data_next_row(b, bi, bt, T);
            same = arrays_equal(ai, bi, T) && arrays_equal(at, bt, T);
        }
        CHECK(same, "after seek(%lld) (%d rows of %d in, epoch %lld) 30 rows equal an "
              "uninterrupted reader's%s%s%s%s", (long long)pos, stops[s], T,
              (long long)epoch, same ? "" : ": first difference at row ",
              same ? "" : fmt_row((const int32_t[]){r}, 1), same ? "" : ": inputs ",
              same ? "" : fmt_row(ai, T));
        hz_data_close(a);
        hz_data_close(b);
    }
    hz_data *d = hz_data_open_opts(test_tmp("seek.jsonl"), &o, err);
    if (d) {
        hz_data_seek(d, -5);
        CHECK(hz_data_position(d) == 0 && hz_data_epoch(d) == 0, "seek(-5) restarts at 0: "
              "position %lld", (long long)hz_data_position(d));
        hz_data_close(d);
    }
}

/* NAME holding TEXT must fail to open with a message naming NAME:LINE and PHRASE. */
static void check_bad(const char *what, const char *name, const char *text, int64_t min_tokens,
                      const char *line, const char *phrase) {
    write_text(test_tmp(name), text);
    char err[HZ_DATA_ERR_BYTES] = "", want[128];
    snprintf(want, sizeof want, "%s%s", name, line);
    hz_data_opts o = opts(256, min_tokens, 0, 0, HZ_DATA_ALL);
    hz_data *d = hz_data_open_opts(test_tmp(name), &o, err);
    CHECK(d == NULL && strstr(err, want) && strstr(err, phrase),
          "%s: refused naming '%s' and saying '%s': %s", what, want, phrase, err);
    hz_data_close(d);
}

static void test_errors(void) {
    const char *good = "{\"input_ids\": [1, 2, 3]}\n";
    char text[512];
    snprintf(text, sizeof text, "%s{\"input_ids\": [1, 2\n", good);
    check_bad("not JSON", "b_json.jsonl", text, 1, ":2:", "not JSON");
    snprintf(text, sizeof text, "%s\n\n[1, 2, 3]\n", good);
    check_bad("not an object (after blank lines)", "b_obj.jsonl", text, 1, ":4:",
              "not a JSON object but an array");
    check_bad("missing input_ids", "b_miss.jsonl", "{\"labels\": [1, 2]}\n", 1, ":1:",
              "missing \"input_ids\"");
    check_bad("input_ids not an array", "b_arr.jsonl", "{\"input_ids\": \"1 2\"}\n", 1, ":1:",
              "\"input_ids\" is a string, not an array");
    snprintf(text, sizeof text, "%s%s{\"input_ids\": [1, \"x\", 3]}\n", good, good);
    check_bad("string id", "b_str.jsonl", text, 1, ":3:", "input_ids[1] is a string, not an integer");
    check_bad("real id", "b_real.jsonl", "{\"input_ids\": [1, 2.5]}\n", 1, ":1:",
              "input_ids[1] is a real number, not an integer");
    check_bad("id >= vocab", "b_vocab.jsonl", "{\"input_ids\": [1, 256, 3]}\n", 1, ":1:",
              "input_ids[1] = 256 is out of range [0, vocab 256)");
    check_bad("negative id", "b_neg.jsonl", "{\"input_ids\": [-1, 2]}\n", 1, ":1:",
              "input_ids[0] = -1 is out of range");
    check_bad("-100 in input_ids", "b_neg100.jsonl", "{\"input_ids\": [1, -100]}\n", 1, ":1:",
              "input_ids[1] = -100 is out of range");
    check_bad("negative label other than -100", "b_lneg.jsonl",
              "{\"input_ids\": [1, 2], \"labels\": [1, -1]}\n", 1, ":1:",
              "labels[1] = -1 is neither a token id in [0, vocab 256) nor -100");
    check_bad("label >= vocab", "b_lvocab.jsonl",
              "{\"input_ids\": [1, 2], \"labels\": [-100, 999]}\n", 1, ":1:", "labels[1] = 999");
    check_bad("non-integer label", "b_lstr.jsonl",
              "{\"input_ids\": [1, 2], \"labels\": [-100, null]}\n", 1, ":1:",
              "labels[1] is null, not an integer");
    check_bad("labels length mismatch", "b_len.jsonl",
              "{\"input_ids\": [1, 2, 3], \"labels\": [1, 2]}\n", 1, ":1:",
              "labels has 2 entries but input_ids has 3");
    check_bad("empty file", "b_empty.jsonl", "", 1, ":1:", "empty file");
    check_bad("only blank lines", "b_blank.jsonl", "\n  \n", 1, ":2:", "no examples");
    check_bad("one-token example", "b_one.jsonl", "{\"input_ids\": [1, 2]}\n{\"input_ids\": [7]}\n",
              1, ":2:", "example has 1 token; an example needs at least 2");
    check_bad("empty example", "b_zero.jsonl", "{\"input_ids\": []}\n", 1, ":1:",
              "example has 0 tokens");
    check_bad("duplicate key", "b_dup.jsonl", "{\"input_ids\": [1, 2], \"input_ids\": [3, 4]}\n",
              1, ":1:", "duplicate");
    /* 2 examples, 5 pairs, 2 of them trained: (2, 3) and (4, 5) */
    check_bad("too few trained tokens for a step", "b_few.jsonl",
              "{\"input_ids\": [1, 2, 3], \"labels\": [1, -100, 3]}\n{\"input_ids\": [4, 5]}\n", 3,
              "", "2 examples hold 2 trained tokens (targets not -100) but one step needs 3");

    /* a glob: the bad file is named, not the pattern */
    write_text(test_tmp("g_a.jsonl"), good);
    write_text(test_tmp("g_b.jsonl"), "{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 2], \"labels\": 3}\n");
    char pattern[128], err[HZ_DATA_ERR_BYTES] = "";
    snprintf(pattern, sizeof pattern, "%s", test_tmp("g_*.jsonl"));
    hz_data *d = hz_data_open(pattern, 256, 1, err);
    CHECK(!d && strstr(err, "g_b.jsonl:2:") && strstr(err, "\"labels\" is an integer, not an array"),
          "bad file in a glob is named: %s", err);
    hz_data_close(d);
    snprintf(pattern, sizeof pattern, "%s", test_tmp("none_*.jsonl"));
    d = hz_data_open(pattern, 256, 1, err);
    CHECK(!d && strstr(err, "glob matched nothing"), "glob of .jsonl matching nothing: %s", err);
    hz_data_close(d);
    d = hz_data_open(test_tmp("missing.jsonl"), 256, 1, err);
    CHECK(!d && strstr(err, "missing.jsonl: no such file"), "missing .jsonl: %s", err);
    hz_data_close(d);

    /* in memory: the same checks, named by the given name */
    const char bytes[] = "{\"input_ids\": [1, 2]}\n{\"input_ids\": 5}";
    hz_data_opts o = opts(256, 1, 0, 0, HZ_DATA_ALL);
    d = hz_data_open_jsonl_memory("mem.jsonl", bytes, sizeof bytes - 1, &o, err);
    CHECK(!d && strstr(err, "mem.jsonl:2:") && strstr(err, "is an integer, not an array"),
          "in-memory JSON Lines (no final newline) checked: %s", err);
    hz_data_close(d);
    d = hz_data_open_jsonl_memory("mem.jsonl", bytes, 22, &o, err);
    CHECK(d && hz_data_tokens(d) == 2, "in-memory first line alone opens: %s", d ? "ok" : err);
    hz_data_close(d);
}

int main(void) {
    if (test_tmp_open("jsonl") != 0) return 2;
    test_pack_one();
    test_pack_two();
    test_shuffle();
    test_split();
    test_stream_split();
    test_seek();
    test_errors();
    test_tmp_close();
    TEST_END();
}
