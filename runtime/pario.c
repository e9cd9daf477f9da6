/* runtime/pario.c - the parallel file engine (contract in pario.h): a run cuts every file's
 * region into chunks, sorts them by the caller's rank, and lets THREADS workers take them in
 * that order, each with its own aligned buffer: fill, digest, pwrite (write) or pread,
 * digest, consume (read). O_DIRECT carries the aligned chunks where the filesystem accepts
 * it (tmpfs refuses it at open, some filesystems at the first pwrite: both fall back to
 * buffered I/O); a file's unaligned last chunk always goes through a buffered descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errf.h"
#include "pario.h"

#define DEFAULT_THREADS 8
#define MAX_THREADS 64

typedef struct pio_job {
    int file;
    int64_t off, n, rank;
} pio_job;

typedef struct pio_run {
    hz_pio_file *f;
    int nf, writing;
    int *fd, *fd_direct;         /* per file: buffered descriptor, O_DIRECT one (or -1) */
    atomic_int *direct_ok;       /* per file: O_DIRECT still accepted */
    const hz_pio_sched *sched;
    pio_job *jobs;
    int64_t job_n, next;         /* next job to take, under mu */
    int failed;                  /* under mu: stop taking jobs */
    char err[HZ_PIO_ERR_BYTES];  /* the first failure's message, under mu */
    pthread_mutex_t mu;
} pio_run;

int64_t hz_pio_chunks(int64_t bytes) { return (bytes + HZ_PIO_CHUNK - 1) / HZ_PIO_CHUNK; }

int hz_pio_pread_all(int fd, void *buf, size_t n, int64_t off)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        p += r;
        off += r;
        n -= (size_t)r;
    }
    return 0;
}

int hz_pio_pwrite_all(int fd, const void *buf, size_t n, int64_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        off += w;
        n -= (size_t)w;
    }
    return 0;
}

static void fail(pio_run *r, const char *fmt, const char *path, const char *what)
{
    pthread_mutex_lock(&r->mu);
    if (!r->failed) {
        r->failed = 1;
        hz_errf(r->err, sizeof r->err, fmt, path, what);
    }
    pthread_mutex_unlock(&r->mu);
}

/* An O_DIRECT read of N bytes at OFF (N rounded up to the alignment; the file may end
 * inside the last block). 0, or -1 with errno (EINVAL: O_DIRECT refused). */
static int read_direct(int fd, char *buf, int64_t n, int64_t off)
{
    int64_t want = (n + HZ_PIO_ALIGN - 1) / HZ_PIO_ALIGN * HZ_PIO_ALIGN, got = 0;
    while (got < n) {
        ssize_t k = pread(fd, buf + got, (size_t)(want - got), (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        got += k;
        if (got < n && got % HZ_PIO_ALIGN) { /* a short read mid-file: finish it buffered */
            errno = EINVAL;
            return -1;
        }
    }
    return 0;
}

/* Move job J's bytes between BUF and the disk; 0 or -1 with errno. */
static int move_chunk(pio_run *r, const pio_job *j, char *buf)
{
    int64_t at = r->f[j->file].base + j->off;
    int aligned = j->n % HZ_PIO_ALIGN == 0 || !r->writing;
    if (aligned && r->fd_direct[j->file] >= 0 && atomic_load(&r->direct_ok[j->file])) {
        int rc = r->writing ? hz_pio_pwrite_all(r->fd_direct[j->file], buf, (size_t)j->n, at)
                            : read_direct(r->fd_direct[j->file], buf, j->n, at);
        if (rc == 0) return 0;
        if (errno != EINVAL) return -1;
        atomic_store(&r->direct_ok[j->file], 0); /* refused after all: buffered from now on */
    }
    if (!r->writing) return hz_pio_pread_all(r->fd[j->file], buf, (size_t)j->n, at);
    if (hz_pio_pwrite_all(r->fd[j->file], buf, (size_t)j->n, at) != 0) return -1;
#ifdef SYNC_FILE_RANGE_WRITE
    /* start the write-back now, so dirty pages do not pile up in the page cache */
    sync_file_range(r->fd[j->file], at, j->n, SYNC_FILE_RANGE_WRITE);
#endif
    return 0;
}

static void *worker(void *arg)
{
    pio_run *r = arg;
    char *buf = aligned_alloc(HZ_PIO_ALIGN, HZ_PIO_CHUNK);
    char msg[HZ_PIO_ERR_BYTES];
    const hz_pio_sched *sc = r->sched;
    if (!buf) fail(r, "%s: out of memory for an I/O buffer%s", r->f[0].path, "");
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int64_t k = r->failed || r->next >= r->job_n ? -1 : r->next++;
        pthread_mutex_unlock(&r->mu);
        if (k < 0) break;
        const pio_job *j = &r->jobs[k];
        hz_pio_file *f = &r->f[j->file];
        msg[0] = 0;
        if (r->writing) {
            if (sc && sc->before) sc->before(sc->arg, j->file, j->off, j->n);
            int rc = f->fill(f->arg, j->off, j->n, buf, msg);
            if (rc == 0 && f->digests) f->digests[j->off / HZ_PIO_CHUNK] = hz_digest_bytes(buf, (size_t)j->n);
            if (rc != 0) fail(r, "%s: %s", f->path, msg[0] ? msg : "cannot produce its bytes");
            else if (move_chunk(r, j, buf) != 0) fail(r, "%s: write failed: %s", f->path, strerror(errno));
            if (sc && sc->after) sc->after(sc->arg, j->file, j->off, j->n);
            continue;
        }
        if (move_chunk(r, j, buf) != 0) {
            fail(r, errno == EIO ? "%s: truncated (%s)" : "%s: read failed: %s", f->path,
                 errno == EIO ? "shorter than it should be" : strerror(errno));
            continue;
        }
        if (f->digests) f->digests[j->off / HZ_PIO_CHUNK] = hz_digest_bytes(buf, (size_t)j->n);
        if (f->consume && f->consume(f->arg, j->off, j->n, buf, msg) != 0)
            fail(r, "%s: %s", f->path, msg[0] ? msg : "cannot take its bytes");
    }
    free(buf);
    return NULL;
}

static int by_rank(const void *a, const void *b)
{
    const pio_job *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int open_files(pio_run *r, int use_direct)
{
    for (int i = 0; i < r->nf; i++) {
        hz_pio_file *f = &r->f[i];
        int flags = r->writing ? O_WRONLY | O_CREAT | (f->base == 0 ? O_TRUNC : 0) : O_RDONLY;
        r->fd[i] = open(f->path, flags | O_CLOEXEC, 0644);
        if (r->fd[i] < 0) {
            fail(r, r->writing ? "%s: cannot create: %s" : "%s: cannot open: %s", f->path,
                 strerror(errno));
            return -1;
        }
        if (r->writing && ftruncate(r->fd[i], (off_t)(f->base + f->bytes)) != 0) {
            fail(r, "%s: cannot size the file: %s", f->path, strerror(errno));
            return -1;
        }
        r->fd_direct[i] = -1;
#ifdef O_DIRECT
        if (use_direct && f->base % HZ_PIO_ALIGN == 0)
            r->fd_direct[i] = open(f->path, (r->writing ? O_WRONLY : O_RDONLY) | O_DIRECT | O_CLOEXEC);
#endif
        atomic_init(&r->direct_ok[i], r->fd_direct[i] >= 0);
    }
    return 0;
}

static int run(hz_pio_file *f, int n, int threads, int use_direct, int writing,
               const hz_pio_sched *sched, char *err)
{
    pio_run r;
    memset(&r, 0, sizeof r);
    r.f = f;
    r.nf = n;
    r.writing = writing;
    r.sched = sched;
    pthread_mutex_init(&r.mu, NULL);
    r.fd = malloc(sizeof(int) * (size_t)(n + 1));
    r.fd_direct = malloc(sizeof(int) * (size_t)(n + 1));
    r.direct_ok = malloc(sizeof(atomic_int) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) r.job_n += hz_pio_chunks(f[i].bytes);
    r.jobs = malloc(sizeof(pio_job) * (size_t)(r.job_n + 1));
    int opened = 0;
    if (!r.fd || !r.fd_direct || !r.direct_ok || !r.jobs) {
        hz_errf(r.err, sizeof r.err, "%s: out of memory", n ? f[0].path : "?");
        r.failed = 1;
        goto done;
    }
    for (; opened < n; opened++) r.fd[opened] = r.fd_direct[opened] = -1;
    if (open_files(&r, use_direct) != 0) goto done;
    int64_t k = 0;
    for (int i = 0; i < n; i++)
        for (int64_t off = 0; off < f[i].bytes; off += HZ_PIO_CHUNK) {
            int64_t len = f[i].bytes - off < HZ_PIO_CHUNK ? f[i].bytes - off : HZ_PIO_CHUNK;
            int64_t rank = sched && sched->order ? sched->order(sched->arg, i, off, len) : 0;
            r.jobs[k++] = (pio_job){i, off, len, rank};
        }
    qsort(r.jobs, (size_t)r.job_n, sizeof *r.jobs, by_rank);
    if (threads <= 0) threads = DEFAULT_THREADS;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > r.job_n) threads = (int)(r.job_n > 0 ? r.job_n : 1);
    pthread_t tid[MAX_THREADS];
    int started = 0;
    for (; started < threads - 1; started++)
        if (pthread_create(&tid[started], NULL, worker, &r) != 0) break;
    worker(&r); /* this thread works too (alone if none could start) */
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    for (int i = 0; i < n && writing && !r.failed; i++)
        if (fsync(r.fd[i]) != 0) fail(&r, "%s: fsync failed: %s", f[i].path, strerror(errno));
done:
    for (int i = 0; i < opened; i++) {
        if (r.fd[i] >= 0 && close(r.fd[i]) != 0 && writing)
            fail(&r, "%s: close failed: %s", f[i].path, strerror(errno));
        if (r.fd_direct[i] >= 0) close(r.fd_direct[i]);
        f[i].direct = r.fd_direct[i] >= 0 && atomic_load(&r.direct_ok[i]);
    }
    if (r.failed) hz_errf(err, HZ_PIO_ERR_BYTES, "%s", r.err);
    free(r.fd);
    free(r.fd_direct);
    free(r.direct_ok);
    free(r.jobs);
    pthread_mutex_destroy(&r.mu);
    return r.failed ? -1 : 0;
}

int hz_pio_write(hz_pio_file *f, int n, int threads, int use_direct, const hz_pio_sched *sched,
                 char *err)
{
    return run(f, n, threads, use_direct, 1, sched, err);
}

int hz_pio_read(hz_pio_file *f, int n, int threads, int use_direct, char *err)
{
    return run(f, n, threads, use_direct, 0, NULL, err);
}

int hz_pio_src_open(hz_pio_src *src, const char *path, int use_direct)
{
    src->fd_direct = -1;
    if ((src->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return -1;
#ifdef O_DIRECT
    if (use_direct) src->fd_direct = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
#endif
    return 0;
}

void hz_pio_src_close(hz_pio_src *src)
{
    if (src->fd >= 0) close(src->fd);
    if (src->fd_direct >= 0) close(src->fd_direct);
    src->fd = src->fd_direct = -1;
}

size_t hz_pio_range_buf_bytes(int64_t n)
{
    return (size_t)((n + 3 * HZ_PIO_ALIGN - 1) / HZ_PIO_ALIGN * HZ_PIO_ALIGN); /* aligned_alloc wants a multiple */
}

const void *hz_pio_read_range(hz_pio_src *src, int64_t off, int64_t n, void *buf)
{
    char *b = buf;
    if (src->fd_direct >= 0) {
        int64_t start = off / HZ_PIO_ALIGN * HZ_PIO_ALIGN;
        if (read_direct(src->fd_direct, b, off + n - start, start) == 0) return b + (off - start);
        if (errno != EINVAL) return NULL; /* EINVAL: O_DIRECT refused here; read buffered */
    }
    return hz_pio_pread_all(src->fd, b, (size_t)n, off) == 0 ? b : NULL;
}
