/* runtime/ckpt_format.h - the layout of resume.bin and the segment lists that describe a
 * checkpoint's files to the parallel engine, shared by ckpt_files.c (the format, writing)
 * and ckpt_read.c (reading, verification). The format is described in ckpt_files.c. */
#ifndef HZ_CKPT_FORMAT_H
#define HZ_CKPT_FORMAT_H
#include <stdatomic.h>

#include "ckpt.h"
#include "errf.h"

#define set_err(err, ...) hz_errf(err, HZ_HF_ERR_BYTES, __VA_ARGS__)

#define RESUME_MAGIC "HZRESUME"
#define RESUME_VERSION 4u
#define RESUME_HEADER_BYTES 88u
#define MANIFEST_NAME_BYTES 64
#define MANIFEST_MAX_FILES 4096
#define STEP_MAX (1ll << 40)     /* more steps than any run takes: a header beyond is damaged */
#define DATA_POS_MAX (1ll << 62)

typedef struct resume_header {
    char magic[8];
    uint32_t version, header_bytes;
    int64_t host_store_n, params_n, step, data_pos;
    uint64_t data_seed;
    uint32_t files_n;
    uint32_t state_mode;         /* enum hz_optstate_mode of the payload's moments */
    uint32_t state_block;        /* int8: elements per absmax block; else 0 */
    uint32_t reserved;
    uint64_t state_seed;         /* the bf16 stochastic rounding's seed */
    uint64_t checksum;           /* of the head (this field 0) and the payload */
} resume_header;

typedef struct manifest_entry {
    char name[MANIFEST_NAME_BYTES]; /* a file of the checkpoint directory, NUL-padded */
    int64_t bytes;
    uint64_t digest;
} manifest_entry;

_Static_assert(sizeof(resume_header) == RESUME_HEADER_BYTES, "resume.bin header layout");
_Static_assert(sizeof(manifest_entry) == MANIFEST_NAME_BYTES + 16, "manifest entry layout");


static inline int64_t hz_ck_round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

/* Bytes of resume.bin's head with FILES_N manifest entries. */
static inline int64_t hz_ck_head_bytes(uint32_t files_n)
{
    return hz_ck_round_up(RESUME_HEADER_BYTES + (int64_t)files_n * (int64_t)sizeof(manifest_entry),
                          HZ_PIO_ALIGN);
}

/* A file of the checkpoint: sorted, disjoint segments of its region. */
typedef struct seg {
    int64_t off, bytes;          /* within the file's region */
    const unsigned char *mem;    /* bytes in memory, or NULL: elements of a store array */
    int array, elem_bytes;
    int64_t first;               /* the first store element */
    int finite;                  /* lo: the masters are checked finite as it is written */
    int per;                     /* store elements per ELEM_BYTES (a scale: its block); 0: 1 */
    int64_t last;                /* with PER: the end store element (a partial last block) */
} seg;

typedef struct ck_file {
    char name[MANIFEST_NAME_BYTES];
    char path[4200];
    seg *segs;
    int seg_n, seg_cap;
    unsigned char *owned;        /* memory segments' bytes to free */
    hz_store *s;
    atomic_int *nonfinite;
} ck_file;

/* Append a segment (in order); 0 or -1 (out of memory). */
int hz_ck_add_seg(ck_file *f, seg sg);
/* The region's bytes: the end of the last segment. */
int64_t hz_ck_file_bytes(const ck_file *f);
/* resume.bin's payload segments for a store of N elements in optimizer-state MODE, laid out
 * as ckpt_state.h says (CHECK_FINITE: on lo). */
int hz_ck_add_state_segs(ck_file *f, int64_t n, int mode, int check_finite);
/* The engine's callbacks over a ck_file (ARG): bytes of the segments into BUF, and back. */
int hz_ck_fill(void *arg, int64_t off, int64_t n, void *buf, char *msg);
int hz_ck_consume(void *arg, int64_t off, int64_t n, const void *buf, char *msg);
/* The checksum of resume.bin: its head of HEAD_BYTES (the checksum field taken as 0) and
 * the chunked digest of its payload. */
uint64_t hz_ck_checksum(const unsigned char *head, int64_t head_bytes, uint64_t payload);
void hz_ck_free_files(ck_file *f, int n);

#endif
