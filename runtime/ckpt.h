/* runtime/ckpt.h - the checkpoint's parts and how they meet: checkpoint.c (the directories:
 * step-N.tmp, rename, --keep, which checkpoint a resume takes, config.json against the plan),
 * ckpt_files.c (the files: layout, parallel writing and reading, verification) and
 * ckpt_async.c (a save that runs while training goes on). Not for generated code. */
#ifndef HZ_CKPT_H
#define HZ_CKPT_H
#include "hfmap.h"
#include "pario.h"
#include "rt.h"

#define HZ_CKPT_NONFINITE (-2) /* a save found a master that is not finite */
#define HZ_CKPT_IO_THREADS 8   /* the I/O threads of a save or a resume */

/* ---- writing (ckpt_files.c) ---- */
typedef struct hz_ckpt_writer hz_ckpt_writer;
/* The files of a checkpoint of S after R->step steps, to be written into the directory DIR
 * (existing, empty): model.safetensors, or shards of at most MAX_SHARD_BYTES (<= 0: 5 GB, as
 * save_pretrained) and their index, config.json (CONFIG), and resume.bin. Nothing is read
 * from S yet. NULL with a message in ERR (HZ_HF_ERR_BYTES). */
hz_ckpt_writer *hz_ckpt_writer_new(const hz_store *s, const hz_plan *p, const char *dir,
                                   const char *config, const hz_resume *r,
                                   int64_t max_shard_bytes, char *err);
/* The units of the store whose state bytes [off, off + n) of file FILE (the writer's order)
 * hold, as the range [*first, *last]; 0 when they hold none (headers, config, index). */
int hz_ckpt_writer_units(const hz_ckpt_writer *w, int file, int64_t off, int64_t n, int *first,
                         int *last);
int64_t hz_ckpt_writer_bytes(const hz_ckpt_writer *w); /* all files together */
/* The files, and the bytes of file I's region (what the engine moves in chunks). */
int hz_ckpt_writer_files(const hz_ckpt_writer *w);
int64_t hz_ckpt_writer_file_bytes(const hz_ckpt_writer *w, int file);
/* Write every file on THREADS threads in the order SCHED gives (NULL: file order), each
 * fsync'd, resume.bin's manifest and checksum last. 0; HZ_CKPT_NONFINITE when a master of
 * the store is not finite (the files are incomplete); -1 with a message. */
int hz_ckpt_writer_run(hz_ckpt_writer *w, int threads, const hz_pio_sched *sched, char *err);
void hz_ckpt_writer_free(hz_ckpt_writer *w);

/* ---- reading (ckpt_files.c) ---- */
/* Load the checkpoint at DIR into S, reading each file once in parallel and verifying as
 * it goes: resume.bin's header, the files against its manifest (names, sizes, digests), the
 * checksum; config.json against the plan (hz_ckpt_config_check) before anything is read.
 * 0, or -1 with a message; *DAMAGED is 1 when the checkpoint failed verification (another
 * one may be tried), 0 when it is whole but not this plan's or cannot be read. */
int hz_ckpt_read(hz_store *s, const hz_plan *p, const char *dir, int threads, hz_resume *r,
                 int *damaged, char *err);

/* ---- checkpoint.c ---- */
/* One save's directories: OUT/step-N.tmp/ written, then renamed to OUT/step-N. */
typedef struct hz_ckpt_job {
    char out[4096], name[64], tmp_name[80], tmp[4200];
    int out_fd;
    int64_t step;
    hz_ckpt_writer *w;
} hz_ckpt_job;
/* OUT_DIR made (if need be), a stale step-N.tmp removed and made again, the writer laid out
 * (SV->w). 0, or -1 with a message; hz_ckpt_end in either case. */
int hz_ckpt_begin(hz_ckpt_job *sv, const hz_store *s, const hz_plan *p, const char *out_dir,
                  const hz_resume *r, char *err);
/* After the writer's run: fsync step-N.tmp, rename it to step-N (replacing an earlier run's
 * of the same step), fsync OUT, keep KEEP (hz_ckpt_save). 0, or -1 with a message. */
int hz_ckpt_commit(hz_ckpt_job *sv, int keep, char *err);
/* Close and free; FAILED: step-N.tmp is removed (never renamed). */
void hz_ckpt_end(hz_ckpt_job *sv, int failed);
/* DIR's config.json against the one this plan writes, key by key; 0, or -1 naming the first
 * difference. */
int hz_ckpt_config_check(const hz_plan *p, const char *dir, char *err);
/* NAME is step-N (N all digits): *step = N. */
int hz_ckpt_is_step_dir(const char *name, int64_t *step);

#endif
