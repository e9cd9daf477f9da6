/* tests/test.h - the tiny test harness every test program uses.
 * Each CHECK prints what it compared; main() ends with TEST_END(), which prints
 * "N passed, N failed" for this program; tests/run.sh sums the programs' lines. */
#ifndef HZ_TEST_H
#define HZ_TEST_H
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A program of several files (tests/gpu/test_kernels) defines TEST_SHARED before including
 * this header in each, and writes TEST_STATE_DEFINE in one of them: the counts and the
 * generator below are then one for the whole program, as in a one-file test. */
#define TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#ifdef TEST_SHARED
extern int test_passed_n, test_failed_n;
extern uint64_t test_rng;
#define TEST_STATE_DEFINE                                                      \
    int test_passed_n, test_failed_n;                                          \
    uint64_t test_rng = TEST_RNG_SEED
#else
static int test_passed_n, test_failed_n;
static uint64_t test_rng = TEST_RNG_SEED;
#endif

/* CHECK(cond, fmt, ...): one named assertion; the message says what was compared. */
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            test_passed_n++;                                                   \
            printf("ok      ");                                                \
        } else {                                                               \
            test_failed_n++;                                                   \
            printf("NOT OK  %s:%d  ", __FILE__, __LINE__);                     \
        }                                                                      \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
    } while (0)

/* CHECK_CLOSE: |got - want| <= atol + rtol*|want|, printing both and the diff. */
#define CHECK_CLOSE(name, got, want, atol, rtol)                               \
    do {                                                                       \
        double g_ = (got), w_ = (want);                                        \
        double d_ = fabs(g_ - w_);                                             \
        CHECK(d_ <= (atol) + (rtol) * fabs(w_) && !isnan(g_),                  \
              "%s: got %.8g want %.8g diff %.3g tol %.3g", name, g_, w_, d_,   \
              (double)(atol) + (rtol) * fabs(w_));                             \
    } while (0)

/* Uniform in [-1, 1): xorshift64* from a fixed seed, so every run draws the same inputs. */
static inline float test_frand(void)
{
    test_rng ^= test_rng >> 12;
    test_rng ^= test_rng << 25;
    test_rng ^= test_rng >> 27;
    uint64_t r = test_rng * 0x2545F4914F6CDD1Dull;
    return (float)((double)(r >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* Rows of token ids: equality, and a printable form (rotating static buffers, so up to
 * four can stand in one message). */
static inline int arrays_equal(const int32_t *got, const int32_t *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i]) return 0;
    return 1;
}

static inline const char *fmt_row(const int32_t *a, int64_t n)
{
    static char bufs[4][512];
    static int next;
    char *p = bufs[next++ % 4];
    size_t k = 0;
    p[0] = 0;
    for (int64_t i = 0; i < n && k < sizeof bufs[0]; i++)
        k += (size_t)snprintf(p + k, sizeof bufs[0] - k, "%s%d", i ? " " : "", a[i]);
    return p;
}

/* A scratch directory for fixture files: test_tmp_open("data") makes
 * /tmp/hz_test_data.XXXXXX; test_tmp(fmt, ...) is a path inside it (eight rotating
 * buffers, so several may be live in one call); test_tmp_close() removes it. */
static inline char *test_tmp_dir(void)
{
    static char dir[64];
    return dir;
}

static inline int test_tmp_open(const char *name)
{
    snprintf(test_tmp_dir(), 64, "/tmp/hz_test_%s.XXXXXX", name);
    if (mkdtemp(test_tmp_dir())) return 0;
    perror("mkdtemp");
    return -1;
}

static inline const char *test_tmp(const char *fmt, ...)
{
    static char bufs[8][512];
    static int next;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    char *p = bufs[next++ % 8];
    snprintf(p, sizeof bufs[0], "%s/%s", test_tmp_dir(), name);
    return p;
}

/* Write N bytes of BUF to PATH; a test that cannot stops (exit 2). */
static inline void test_write(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static inline void test_tmp_close(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmp_dir());
    if (system(cmd) != 0) printf("note: could not remove %s\n", test_tmp_dir());
}

#define TEST_END()                                                             \
    do {                                                                       \
        printf("%d passed, %d failed\n", test_passed_n, test_failed_n);        \
        return test_failed_n ? 1 : 0;                                          \
    } while (0)

#ifdef HZ_DATA_H
/* hz_data_open_split(PATH) against two hz_data_open_opts calls (O with HZ_DATA_TRAIN, and
 * with HZ_DATA_VAL and val_min tokens): the same sizes and the same first two rows of T
 * (T <= 16) pairs in each part. */
static inline void check_open_split(const char *path, hz_data_opts o, int64_t val_min, int64_t T)
{
    char err[HZ_DATA_ERR_BYTES];
    hz_data *t, *v;
    int rc = hz_data_open_split(path, &o, val_min, &t, &v, err);
    CHECK(rc == 0, "%s: both parts from one read: %s", path, rc == 0 ? "ok" : err);
    if (rc != 0) return;
    hz_data *sep[2];
    o.split = HZ_DATA_TRAIN;
    sep[0] = hz_data_open_opts(path, &o, err);
    o.split = HZ_DATA_VAL;
    o.min_tokens = val_min;
    sep[1] = hz_data_open_opts(path, &o, err);
    for (int k = 0; k < 2; k++) {
        hz_data *one = k ? v : t;
        int same = sep[k] && hz_data_tokens(one) == hz_data_tokens(sep[k]) &&
                   hz_data_examples(one) == hz_data_examples(sep[k]);
        for (int r = 0; r < 2 && same; r++) {
            int32_t a[2][16], b[2][16];
            hz_data_next_row(one, a[0], a[1], T);
            hz_data_next_row(sep[k], b[0], b[1], T);
            same = arrays_equal(a[0], b[0], T) && arrays_equal(a[1], b[1], T);
        }
        CHECK(same, "%s: the %s part of one read serves as its own open (%lld tokens)", path,
              k ? "validation" : "training", (long long)hz_data_tokens(one));
        hz_data_close(sep[k]);
    }
    hz_data_close(t);
    hz_data_close(v);
}
#endif

#endif
