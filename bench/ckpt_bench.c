/* bench/ckpt_bench.c - the disk's own rates beside the checkpoint engine's (runtime/pario.c),
 * in one run on one file size: a file of BYTES written and read back in DIR (1) as dd does
 * it, one 8 MiB block after another (buffered + fsync, and O_DIRECT), (2) by the engine on
 * THREADS threads with O_DIRECT (buffered where refused). Reads use O_DIRECT (they would
 * measure the page cache otherwise; where refused, as on tmpfs, that is said). The last line
 * sums it up for bench/ckpt_bench.sh. Not a test.
 *   build/bench/ckpt_bench DIR BYTES [THREADS (default 8)] */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pario.h"

#define BLOCK (8 << 20)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fill_block(unsigned char *b, int64_t off, int64_t n)
{
    uint64_t x = (uint64_t)off * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(b + i, &x, 8);
    }
}

/* dd: one block after another; 0 or -1. */
static int seq_write(const char *path, int64_t bytes, int direct, unsigned char *buf)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
    if (fd < 0) return -1;
    for (int64_t off = 0; off < bytes; off += BLOCK) {
        int64_t n = bytes - off < BLOCK ? bytes - off : BLOCK;
        fill_block(buf, off, n);
        if (hz_pio_pwrite_all(fd, buf, (size_t)n, off) != 0) {
            close(fd);
            return -1;
        }
    }
    int rc = fsync(fd);
    return close(fd) || rc ? -1 : 0;
}

static int seq_read(const char *path, int64_t bytes, int direct, unsigned char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (fd < 0) return -1;
    int64_t got = 0;
    for (;;) {
        ssize_t k = read(fd, buf, BLOCK);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += k;
    }
    close(fd);
    return got == bytes ? 0 : -1;
}

static int eng_fill(void *arg, int64_t off, int64_t n, void *buf, char *msg)
{
    (void)arg;
    (void)msg;
    fill_block(buf, off, n);
    return 0;
}

static void report(const char *what, int64_t bytes, double s, int ok)
{
    if (ok) printf("  %-44s %8.2f s  %7.3f GB/s\n", what, s, bytes * 1e-9 / s);
    else printf("  %-44s failed: %s\n", what, strerror(errno));
}

int main(int argc, char **argv)
{
    if (argc < 3 || atoll(argv[2]) <= 0) {
        fprintf(stderr, "usage: %s DIR BYTES [THREADS]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int64_t bytes = atoll(argv[2]) / 4096 * 4096;
    int threads = argc > 3 ? atoi(argv[3]) : 8;
    char path[4096], err[HZ_PIO_ERR_BYTES];
    snprintf(path, sizeof path, "%s/ckpt_bench.bin", dir);
    unsigned char *buf = aligned_alloc(HZ_PIO_ALIGN, BLOCK);
    if (!buf) return 1;
    printf("ckpt_bench: %s, %.2f GB, engine on %d threads\n", path, bytes * 1e-9, threads);
    double t0 = now_s();
    int ok = seq_write(path, bytes, 0, buf) == 0;
    double dd_wb = now_s() - t0;
    report("dd write, buffered, then fsync", bytes, dd_wb, ok);
    t0 = now_s();
    int direct = seq_write(path, bytes, 1, buf) == 0;
    double dd_wd = now_s() - t0;
    report("dd write, O_DIRECT", bytes, dd_wd, direct);
    t0 = now_s();
    int rd = seq_read(path, bytes, direct, buf) == 0;
    double dd_r = now_s() - t0;
    report(direct ? "dd read, O_DIRECT" : "dd read (no O_DIRECT here: page cache)", bytes, dd_r, rd);
    hz_pio_file f = {path, 0, bytes, eng_fill, NULL, NULL, NULL, 0};
    t0 = now_s();
    int ew = hz_pio_write(&f, 1, threads, 1, NULL, err) == 0;
    double e_w = now_s() - t0;
    if (!ew) fprintf(stderr, "ckpt_bench: %s\n", err);
    report(f.direct ? "engine write, O_DIRECT" : "engine write, buffered + fsync", bytes, e_w, ew);
    t0 = now_s();
    int er = hz_pio_read(&f, 1, threads, 1, err) == 0;
    double e_r = now_s() - t0;
    if (!er) fprintf(stderr, "ckpt_bench: %s\n", err);
    report(f.direct ? "engine read, O_DIRECT" : "engine read (no O_DIRECT here)", bytes, e_r, er);
    unlink(path);
    free(buf);
    /* the disk's rate: the faster of dd's two ways to write */
    double best_w = direct && dd_wd < dd_wb ? dd_wd : dd_wb;
    printf("summary: bytes %lld disk_write_GBps %.3f disk_read_GBps %.3f engine_write_GBps %.3f "
           "engine_read_GBps %.3f direct %d\n",
           (long long)bytes, bytes * 1e-9 / best_w, bytes * 1e-9 / dd_r, bytes * 1e-9 / e_w,
           bytes * 1e-9 / e_r, direct);
    return ok && rd && ew && er ? 0 : 1;
}
