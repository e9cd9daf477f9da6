/* runtime/pario.h - the parallel file engine of checkpoints and --init: files moved in large
 * aligned chunks by several threads at distinct offsets (pwrite / pread), with O_DIRECT
 * where the filesystem takes it, and the digest of every chunk taken on the way. */
#ifndef HZ_PARIO_H
#define HZ_PARIO_H
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define HZ_PIO_CHUNK HZ_DIGEST_CHUNK /* bytes one job moves: the chunk of the chunked digest */
#define HZ_PIO_ALIGN 4096            /* O_DIRECT's offset, length and buffer alignment */
#define HZ_PIO_ERR_BYTES 1024

/* One file's region [base, base + bytes): written from FILL or read into CONSUME, chunk k
 * being bytes [base + k HZ_PIO_CHUNK, ...) (the last one shorter). base is a multiple of
 * HZ_PIO_ALIGN. FILL and CONSUME get offsets from the region's start, run on several threads
 * at once for distinct chunks, and return 0, or nonzero to stop the run (their message, if
 * any, in MSG, HZ_PIO_ERR_BYTES). */
typedef int (*hz_pio_fill_fn)(void *arg, int64_t off, int64_t n, void *buf, char *msg);
typedef int (*hz_pio_consume_fn)(void *arg, int64_t off, int64_t n, const void *buf, char *msg);

typedef struct hz_pio_file {
    const char *path;
    int64_t base, bytes;
    hz_pio_fill_fn fill;         /* writing */
    hz_pio_consume_fn consume;   /* reading (NULL: digest only) */
    void *arg;
    uint64_t *digests;           /* hz_pio_chunks(bytes) chunk digests out, or NULL */
    int direct;                  /* out: 1 when O_DIRECT carried its aligned chunks */
} hz_pio_file;

/* Scheduling of a write's chunks (all optional): ORDER gives a chunk's rank (lower is
 * taken first; equal ranks in file order); BEFORE runs before its FILL (it may block until
 * the bytes are ready to be read) and AFTER once the chunk is on its way to the disk (or
 * dropped by a failed run: every BEFORE'd chunk gets its AFTER; chunks never taken get
 * none). FILE is the index in the array given. */
typedef struct hz_pio_sched {
    int64_t (*order)(void *arg, int file, int64_t off, int64_t n);
    void (*before)(void *arg, int file, int64_t off, int64_t n);
    void (*after)(void *arg, int file, int64_t off, int64_t n);
    void *arg;
} hz_pio_sched;

/* Chunks of a region of BYTES bytes. */
int64_t hz_pio_chunks(int64_t bytes);

/* Write the N files' regions on THREADS threads (<= 0: 8): each file created (or opened
 * without truncation when its base > 0, so a head written later stays), sized to
 * base + bytes, filled, fsync'd and closed. USE_DIRECT 0 never asks for O_DIRECT. Returns 0,
 * or -1 with a message naming the file in ERR (HZ_PIO_ERR_BYTES). */
int hz_pio_write(hz_pio_file *f, int n, int threads, int use_direct, const hz_pio_sched *sched,
                 char *err);
/* Read the N files' regions on THREADS threads; a file shorter than base + bytes is an error
 * ("truncated"). */
int hz_pio_read(hz_pio_file *f, int n, int threads, int use_direct, char *err);

/* A file opened for hz_pio_read_range: a buffered descriptor and, where the filesystem
 * takes it, an O_DIRECT one. 0, or -1 with errno. */
typedef struct hz_pio_src {
    int fd, fd_direct;
} hz_pio_src;
int hz_pio_src_open(hz_pio_src *src, const char *path, int use_direct);
void hz_pio_src_close(hz_pio_src *src);
/* Bytes of a range buffer for reads of up to N bytes (the aligned margins included; a
 * multiple of HZ_PIO_ALIGN, as aligned_alloc wants). */
size_t hz_pio_range_buf_bytes(int64_t n);
/* Read bytes [off, off + n) of SRC into BUF (HZ_PIO_ALIGN-aligned, of
 * hz_pio_range_buf_bytes(n)): through O_DIRECT in whole aligned blocks where it is open,
 * else buffered. Returns where the bytes start in BUF, or NULL with errno (EIO: the file
 * ends first). Several threads may read one SRC at once. */
const void *hz_pio_read_range(hz_pio_src *src, int64_t off, int64_t n, void *buf);

/* pread exactly N bytes at OFF of FD into BUF (any alignment, no O_DIRECT); 0 or -1 with
 * errno (EIO for a file that ends first). pwrite likewise. */
int hz_pio_pread_all(int fd, void *buf, size_t n, int64_t off);
int hz_pio_pwrite_all(int fd, const void *buf, size_t n, int64_t off);

#endif
