/* runtime/data_shard.c - token shards: a file mapped read-only, an llm.c .bin shard's header
 * (a .npy array's is data_npy.c's), the bytes the header claims, and every token checked
 * against the vocabulary once at open. Each shard's tokens (uint16 or uint32, little-endian)
 * are then read in place, so opening a large data set costs address space rather than
 * memory. The pages read (by the vocab check, and by each step's rows) are given back to the
 * kernel as soon as they are read (data_release): they stay in the page cache, but not in
 * the trainer's resident memory, which would otherwise grow by the data set's size beside
 * the plan. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_impl.h"

#define LLMC_HEADER_N 256                  /* int32 words in an llm.c shard header */
#define LLMC_HEADER_BYTES (LLMC_HEADER_N * 4)
#define LLMC_MAGIC_U16 20240520            /* with version 1: uint16 tokens */
#define LLMC_VERSION_U16 1
#define LLMC_MAGIC_U32 20240801            /* with version 7: uint32 tokens */
#define LLMC_VERSION_U32 7
#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_BYTES 6

int data_map_file(const char *path, int jsonl, void **map_out, size_t *map_bytes, char *err) {
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

int data_check_bytes(shard *s, size_t data_off, int64_t claimed_n, char *err) {
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
    return data_check_bytes(s, LLMC_HEADER_BYTES, count, err);
}

/* A fault maps more than its page: the cached pages around it (fault-around) and, where the
 * page cache holds the file in large folios, the whole folio, up to 2 MiB and aligned to its
 * size in the file. So the release covers the 2 MiB-aligned stretches of the file that the
 * read touched, within the mapping; pages of neighbouring rows released with them are read
 * again from the cache if needed. */
#define RELEASE_ALIGN ((size_t)2 << 20)

void data_release(const shard *s, int64_t from, int64_t n) {
    static long page;
    if (!page) page = sysconf(_SC_PAGESIZE);
    size_t end = s->map_bytes + (size_t)page - 1 - (s->map_bytes + (size_t)page - 1) % (size_t)page;
    size_t a = (size_t)(s->tok - (const unsigned char *)s->map) + (size_t)(from * s->width);
    size_t b = a + (size_t)(n * s->width);
    a -= a % RELEASE_ALIGN;
    b += RELEASE_ALIGN - 1 - (b + RELEASE_ALIGN - 1) % RELEASE_ALIGN;
    if (b > end) b = end;
    if (n > 0 && b > a) /* advice: nothing to check */
        (void)madvise((char *)s->map + a, b - a, MADV_DONTNEED);
}

/* Every token < vocab. Blocks of max-reductions keep the common path a tight loop the
 * compiler vectorizes; only a failing block is searched for the first bad position. Every
 * RELEASE_BLOCKS blocks the pages read are released. */
#define RELEASE_BLOCKS 16
static int check_vocab(const shard *s, int64_t vocab, char *err) {
    enum { BLOCK = 4096 };
    int64_t released = 0; /* tokens before it are given back */
    for (int64_t i0 = 0; i0 < s->tokens_n; i0 += BLOCK) {
        if (i0 - released == BLOCK * RELEASE_BLOCKS) {
            data_release(s, released, i0 - released);
            released = i0;
        }
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
            uint32_t v = data_load_token(s->tok, s->width, i);
            if ((int64_t)v >= vocab) {
                set_err(err, "%s: token id %u at position %lld >= vocab %lld (data tokenized "
                        "for another vocabulary?)", s->path, v, (long long)i, (long long)vocab);
                return -1;
            }
        }
    }
    data_release(s, released, s->tokens_n - released);
    return 0;
}

int data_open_shard(shard *s, int64_t vocab, char *err) {
    if (data_map_file(s->path, 0, &s->map, &s->map_bytes, err) != 0) return -1;
    int rc;
    if (s->map_bytes >= NPY_MAGIC_BYTES && memcmp(s->map, NPY_MAGIC, NPY_MAGIC_BYTES) == 0)
        rc = data_parse_npy(s, err);
    else
        rc = parse_llmc(s, err);
    if (rc != 0) return -1;
    return vocab ? check_vocab(s, vocab, err) : 0;
}
