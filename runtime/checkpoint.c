/* runtime/checkpoint.c - checkpoints that transformers loads directly, plus the state that
 * makes a resume exact, verified whole on resume.
 *
 * OUT/step-00000100/ holds config.json and model.safetensors (bf16 working weights, sharded
 * with an index above 5 GB, as save_pretrained does) and resume.bin, written last:
 *   header (little-endian, 88 bytes): "HZRESUME", u32 version 3, u32 header bytes (88),
 *     i64 host_store_n, i64 params_n, i64 step (steps done), i64 data position,
 *     u64 data seed, u32 files_n, u32 state mode (0 fp32, 1 bf16, 2 int8), u32 state block
 *     (int8: elements per absmax, 64; else 0), u32 0, u64 state seed (the bf16 rounding's),
 *     u64 checksum
 *   manifest: files_n x {char name[64], i64 bytes, u64 digest}: every other file of the
 *     directory, sorted by name
 *   payload (ckpt_state.h): lo (int16 x n), m, v (x n each: fp32, bf16 bits, or int8 codes),
 *     int8 only: the m then v absmax (fp32 x ceil(n / 64)), in the host store's order.
 * The checksum is the digest of the header (checksum field 0), the manifest and the
 * payload, so every byte of the checkpoint is covered: a resume checks each file against
 * the manifest, the checkpoint's config.json against the plan's, and the checksum.
 * With the bf16 w from model.safetensors, lo restores the fp32 master bit for bit. The
 * trainer draws no random numbers while training (the data order comes from the data seed
 * and position), so these fields are the whole state.
 * A save writes step-N.tmp/ (every file fsync'd), renames it to step-N and fsyncs OUT:
 * a crash at any point leaves every earlier checkpoint whole. Removing (a stale .tmp, a
 * checkpoint replaced or pruned) never follows a symlink. */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_state.h"
#include "digest.h"
#include "errf.h"
#include "hfmap.h"
#include "rt.h"
#include "safetensors.h"

#define set_err(err, ...) hz_errf(err, HZ_HF_ERR_BYTES, __VA_ARGS__)

#define RESUME_MAGIC "HZRESUME"
#define RESUME_VERSION 3u
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
    uint64_t checksum;           /* digest of header (this field 0), manifest and payload */
} resume_header;

typedef struct manifest_entry {
    char name[MANIFEST_NAME_BYTES]; /* a file of the checkpoint directory, NUL-padded */
    int64_t bytes;
    uint64_t digest;
} manifest_entry;

_Static_assert(sizeof(resume_header) == RESUME_HEADER_BYTES, "resume.bin header layout");
_Static_assert(sizeof(manifest_entry) == MANIFEST_NAME_BYTES + 16, "manifest entry layout");

/* The checksum of resume.bin: its header with the checksum field 0, the manifest, then the
 * payload, which the caller adds. */
static void checksum_start(hz_digest *d, const resume_header *h, const manifest_entry *man)
{
    resume_header h0 = *h;
    h0.checksum = 0;
    hz_digest_init(d);
    hz_digest_update(d, &h0, sizeof h0);
    hz_digest_update(d, man, (size_t)h->files_n * sizeof *man);
}

static void checksum_store(hz_digest *d, const hz_store *s) { hz_ckpt_state_write(s, d, -1); }

/* ---- writing resume.bin ---- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const manifest_entry *)a)->name, ((const manifest_entry *)b)->name);
}

/* The manifest of DIR: every regular file but resume.bin (and *.tmp), sorted by name, with
 * its size and digest (malloc'd, *n entries); NULL + message on error. */
static manifest_entry *make_manifest(const char *dir, uint32_t *n, char *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        set_err(err, "%.900s: cannot open the directory: %s", dir, strerror(errno));
        return NULL;
    }
    manifest_entry *man = calloc(MANIFEST_MAX_FILES, sizeof *man);
    struct dirent *e;
    struct stat st;
    *n = 0;
    while (man && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (!strcmp(e->d_name, "resume.bin") || (len > 4 && !strcmp(e->d_name + len - 4, ".tmp")) ||
            fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (len >= MANIFEST_NAME_BYTES || *n == MANIFEST_MAX_FILES) {
            set_err(err, "%.900s/%.200s: more files or longer names than resume.bin's manifest "
                         "holds (internal error)", dir, e->d_name);
            goto fail;
        }
        manifest_entry *m = &man[(*n)++];
        memcpy(m->name, e->d_name, len);
        if (hz_file_digest(fd, m->name, &m->bytes, &m->digest) != 0) {
            set_err(err, "%.900s/%s: cannot read back: %s", dir, m->name, strerror(errno));
            goto fail;
        }
    }
    if (!man) {
        set_err(err, "%.900s: out of memory", dir);
        goto fail;
    }
    closedir(d);
    qsort(man, *n, sizeof *man, by_name);
    return man;
fail:
    free(man);
    closedir(d);
    return NULL;
}

typedef struct resume_job {
    const hz_store *s;
    resume_header h;
    const manifest_entry *man;
} resume_job;

static int emit_resume(int fd, void *arg)
{
    const resume_job *j = arg;
    const hz_store *s = j->s;
    return hz_st_write_all(fd, &j->h, sizeof j->h) ||
                   hz_st_write_all(fd, j->man, (size_t)j->h.files_n * sizeof *j->man) ||
                   hz_ckpt_state_write(s, NULL, fd)
               ? -1
               : 0;
}

/* Write DIR/resume.bin, last: its manifest covers every other file of DIR. */
static int write_resume(const hz_store *s, const hz_plan *p, const char *dir,
                        const hz_resume *r, char *err)
{
    resume_job j;
    memset(&j, 0, sizeof j);
    j.s = s;
    memcpy(j.h.magic, RESUME_MAGIC, 8);
    j.h.version = RESUME_VERSION;
    j.h.header_bytes = RESUME_HEADER_BYTES;
    j.h.host_store_n = s->n;
    j.h.params_n = p->params_n;
    j.h.step = r->step;
    j.h.data_pos = r->data_pos;
    j.h.data_seed = r->data_seed;
    j.h.state_mode = (uint32_t)s->state_mode;
    j.h.state_block = s->state_mode == HZ_OPTSTATE_INT8 ? HZ_OPTSTATE_BLOCK : 0;
    j.h.state_seed = s->state_seed;
    manifest_entry *man = make_manifest(dir, &j.h.files_n, err);
    if (!man) return -1;
    j.man = man;
    hz_digest d;
    checksum_start(&d, &j.h, man);
    checksum_store(&d, s);
    j.h.checksum = hz_digest_final(&d);
    char path[4300];
    snprintf(path, sizeof path, "%s/resume.bin", dir);
    int rc = hz_st_write_atomic(path, emit_resume, &j, err);
    free(man);
    return rc;
}

/* Remove NAME inside the directory DIRFD, never following a symlink: a link (or a file) is
 * unlinked itself, a directory is opened with O_NOFOLLOW and emptied through its own fd,
 * so a symlink anywhere inside --out cannot lead the removal outside it. 0 or -1. */
static int rm_tree_at(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        rm_tree_at(fd, e->d_name);
    }
    closedir(d);
    return unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
}

/* NAME is step-N with N all digits: *step = N. */
static int is_step_dir(const char *name, int64_t *step)
{
    char *end;
    if (strncmp(name, "step-", 5) != 0 || name[5] < '0' || name[5] > '9') return 0;
    errno = 0;
    long long s = strtoll(name + 5, &end, 10);
    if (*end || errno) return 0;
    *step = s;
    return 1;
}

typedef struct step_entry {
    int64_t step;
    char name[64];      /* step-N as found (step-4 and step-00000004 are both step 4) */
} step_entry;

static int by_step_desc(const void *a, const void *b)
{
    const step_entry *x = a, *y = b;
    return x->step < y->step ? 1 : x->step > y->step ? -1 : strcmp(x->name, y->name);
}

/* D's step-N entries, highest step first (malloc'd, *n of them; NULL when none). */
static step_entry *list_steps(DIR *d, int *n)
{
    step_entry *v = NULL;
    int64_t s;
    int cap = 0;
    struct dirent *e;
    *n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (!is_step_dir(e->d_name, &s) || len >= sizeof v->name) continue;
        if (*n == cap) {
            step_entry *more = realloc(v, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *v);
            if (!more) break;
            v = more;
        }
        v[*n].step = s;
        memcpy(v[*n].name, e->d_name, len + 1);
        (*n)++;
    }
    if (v) qsort(v, (size_t)*n, sizeof *v, by_step_desc);
    return v;
}

/* Remove stale step-N.tmp entries and, with KEEP > 0, all but KEEP step-N checkpoints: the
 * one just written (step JUST) always stays, with the KEEP - 1 highest other steps. */
static void prune(int out_fd, int64_t just, int keep)
{
    int fd = dup(out_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".tmp") && !strncmp(e->d_name, "step-", 5))
            rm_tree_at(out_fd, e->d_name);
    }
    rewinddir(d);
    int n;
    step_entry *v = keep > 0 ? list_steps(d, &n) : NULL;
    closedir(d);
    char just_name[64];
    snprintf(just_name, sizeof just_name, "step-%08lld", (long long)just);
    for (int i = 0, kept = 1; v && i < n; i++) {
        if (!strcmp(v[i].name, just_name)) continue;
        if (kept < keep) kept++;
        else rm_tree_at(out_fd, v[i].name);
    }
    free(v);
}

int hz_ckpt_save(const hz_store *s, const hz_plan *p, const char *out_dir, const hz_resume *r,
                 int keep, char *err)
{
    char name[64], tmp_name[80], dir[4200], tmp[4200];
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        set_err(err, "%.900s: cannot create: %s", out_dir, strerror(errno));
        return -1;
    }
    int out_fd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (out_fd < 0) {
        set_err(err, "%.900s: cannot open the directory: %s", out_dir, strerror(errno));
        return -1;
    }
    snprintf(name, sizeof name, "step-%08lld", (long long)r->step);
    snprintf(tmp_name, sizeof tmp_name, "%s.tmp", name);
    snprintf(dir, sizeof dir, "%s/%s", out_dir, name);
    snprintf(tmp, sizeof tmp, "%s/%s", out_dir, tmp_name);
    int rc = -1;
    char *config = NULL;
    rm_tree_at(out_fd, tmp_name);
    if (mkdirat(out_fd, tmp_name, 0777) != 0) {
        set_err(err, "%.900s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    if (!(config = hz_hf_config_json(p, p->family))) {
        set_err(err, "no config.json for model family '%s'", p->family);
        goto done;
    }
    if (hz_hf_save(s, p, tmp, config, 0, err) != 0) goto done;
    if (write_resume(s, p, tmp, r, err) != 0) goto done;
    if (hz_st_fsync_dir(tmp) != 0) {
        set_err(err, "%.900s: fsync failed: %s", tmp, strerror(errno));
        goto done;
    }
    rm_tree_at(out_fd, name); /* a checkpoint of the same step from an earlier run */
    if (renameat(out_fd, tmp_name, out_fd, name) != 0 || fsync(out_fd) != 0) {
        set_err(err, "%.900s: cannot rename to %.900s: %s", tmp, dir, strerror(errno));
        goto done;
    }
    prune(out_fd, r->step, keep);
    rc = 0;
done:
    free(config);
    close(out_fd);
    return rc;
}

/* ---- reading and verifying ---- */

/* Open DIR/resume.bin and read its header and manifest into *H and *MAN (malloc'd): magic
 * and version, step and data position in range, the step that of a step-N name, manifest
 * names plain file names. Returns the file positioned at the payload, or NULL + message. */
static FILE *open_resume(const char *dir, resume_header *h, manifest_entry **man, char *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/resume.bin", dir);
    *man = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, "%.900s: cannot open: %s (a checkpoint directory written by --out holds it)",
                path, strerror(errno));
        return NULL;
    }
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    int64_t named;
    char bad[600] = "";
    if (fread(h, sizeof *h, 1, f) != 1)
        snprintf(bad, sizeof bad, "truncated (shorter than its header)");
    else if (memcmp(h->magic, RESUME_MAGIC, 8) != 0)
        snprintf(bad, sizeof bad, "not an hzc resume state (bad magic)");
    else if (h->version != RESUME_VERSION || h->header_bytes != RESUME_HEADER_BYTES)
        snprintf(bad, sizeof bad, "resume format version %u; this trainer reads version %u (whose "
                 "checksum covers every file of the checkpoint): resume with the hzc that wrote it",
                 h->version, RESUME_VERSION);
    else if (h->step < 0 || h->step > STEP_MAX)
        snprintf(bad, sizeof bad, "step %lld is out of range (0 to 2^40): the header is damaged",
                 (long long)h->step);
    else if (h->data_pos < 0 || h->data_pos > DATA_POS_MAX)
        snprintf(bad, sizeof bad, "data position %lld is out of range: the header is damaged",
                 (long long)h->data_pos);
    else if (h->host_store_n <= 0 || h->files_n == 0 || h->files_n > MANIFEST_MAX_FILES)
        snprintf(bad, sizeof bad, "damaged header (store size %lld, %u files)",
                 (long long)h->host_store_n, h->files_n);
    else if (is_step_dir(base, &named) && named != h->step)
        snprintf(bad, sizeof bad, "holds step %lld, but its directory %s says step %lld: renamed "
                 "or copied over", (long long)h->step, base, (long long)named);
    else if (!(*man = calloc(h->files_n, sizeof **man)))
        snprintf(bad, sizeof bad, "out of memory for its manifest");
    else if (fread(*man, sizeof **man, h->files_n, f) != h->files_n)
        snprintf(bad, sizeof bad, "truncated (shorter than its manifest)");
    else
        for (uint32_t i = 0; i < h->files_n && !bad[0]; i++) {
            const char *name = (*man)[i].name;
            if (!memchr(name, 0, MANIFEST_NAME_BYTES) || !name[0] || strchr(name, '/') ||
                !strcmp(name, ".") || !strcmp(name, "..") || (*man)[i].bytes < 0)
                snprintf(bad, sizeof bad, "corrupt manifest (entry %u)", i);
        }
    if (bad[0]) {
        set_err(err, "%.900s: %s", path, bad);
        free(*man);
        *man = NULL;
        fclose(f);
        return NULL;
    }
    return f;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

/* Every file of the manifest in DIR with its size and digest, and no .json or .safetensors
 * file (what a loader reads) outside it. 0, or -1 + message naming the file. */
static int check_files(const char *dir, const resume_header *h, const manifest_entry *man,
                       char *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, "%.900s: cannot open the directory: %s", dir, strerror(errno));
        return -1;
    }
    int rc = -1;
    for (uint32_t i = 0; i < h->files_n; i++) {
        int64_t bytes;
        uint64_t dg;
        if (hz_file_digest(fd, man[i].name, &bytes, &dg) != 0) {
            set_err(err, "%.900s/%s: cannot read: %s (resume.bin's manifest lists it)", dir,
                    man[i].name, strerror(errno));
            goto done;
        }
        if (bytes != man[i].bytes) {
            set_err(err, "%.900s/%s: %lld bytes, resume.bin's manifest says %lld: the file was "
                         "truncated or replaced after the checkpoint was written", dir,
                    man[i].name, (long long)bytes, (long long)man[i].bytes);
            goto done;
        }
        if (dg != man[i].digest) {
            set_err(err, "%.900s/%s: contents differ from resume.bin's manifest (digest): the "
                         "file is corrupt or was replaced after the checkpoint was written", dir,
                    man[i].name);
            goto done;
        }
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        set_err(err, "%.900s: cannot list: %s", dir, strerror(errno));
        goto done;
    }
    fd = -1;
    struct dirent *e;
    rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!ends_with(e->d_name, ".json") && !ends_with(e->d_name, ".safetensors")) continue;
        int listed = 0;
        for (uint32_t i = 0; i < h->files_n && !listed; i++)
            listed = !strcmp(man[i].name, e->d_name);
        if (!listed) {
            set_err(err, "%.900s/%.200s: not in resume.bin's manifest: added after the checkpoint "
                         "was written (remove it)", dir, e->d_name);
            rc = -1;
        }
    }
    closedir(d);
done:
    if (fd >= 0) close(fd);
    return rc;
}

/* Verify the checkpoint at DIR without loading it: header, manifest, files, and the
 * checksum over resume.bin's payload. 0, or -1 + message. */
static int verify(const char *dir, char *err)
{
    resume_header h;
    manifest_entry *man;
    FILE *f = open_resume(dir, &h, &man, err);
    if (!f) return -1;
    int rc = check_files(dir, &h, man, err);
    if (rc == 0) {
        hz_digest d;
        checksum_start(&d, &h, man);
        unsigned char buf[1 << 16];
        size_t k;
        uint64_t total = 0;
        while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
            hz_digest_update(&d, buf, k);
            total += k;
        }
        if (total != (uint64_t)h.host_store_n * 10) {
            set_err(err, "%.900s/resume.bin: truncated or with trailing bytes", dir);
            rc = -1;
        } else if (hz_digest_final(&d) != h.checksum) {
            set_err(err, "%.900s/resume.bin: corrupt (checksum mismatch over its header and "
                         "state)", dir);
            rc = -1;
        }
    }
    free(man);
    fclose(f);
    return rc;
}

int hz_ckpt_resolve(const char *path, char *dir, size_t n)
{
    char probe[4200], err[HZ_HF_ERR_BYTES];
    snprintf(probe, sizeof probe, "%s/resume.bin", path);
    if (access(probe, F_OK) == 0) {
        snprintf(dir, n, "%s", path);
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) return -1;
    int steps_n;
    step_entry *v = list_steps(d, &steps_n);
    closedir(d);
    if (!v) return -1;
    int pick = 0;   /* none verifies: the newest, whose load says why */
    for (int i = 0; i < steps_n; i++) {
        snprintf(dir, n, "%s/%s", path, v[i].name);
        if (verify(dir, err) == 0) {
            pick = i;
            break;
        }
        fprintf(stderr, "train: warning: --resume: skipping %s: %s\n", dir, err);
    }
    snprintf(dir, n, "%s/%s", path, v[pick].name);
    free(v);
    return 0;
}

/* The checkpoint's config.json against the plan's, key by key in the plan's order; the
 * first difference named. 0, or -1 + message. */
static int compare_config(const hz_plan *p, const char *dir, char *err)
{
    char *want_text = hz_hf_config_json(p, p->family), path[4200];
    if (!want_text) return 0; /* a family without a config.json: hz_ckpt_save refuses it */
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *want = json_loads(want_text, 0, &je), *have = json_load_file(path, 0, &je), *v;
    free(want_text);
    const char *key, *diff = NULL;
    int rc = -1;
    assert(want);
    if (!have || !json_is_object(have)) {
        set_err(err, "%.900s: not a JSON object (%s)", path, have ? "another JSON value" : je.text);
        goto done;
    }
    json_object_foreach(want, key, v) {
        json_t *hv = json_object_get(have, key);
        if (!hv || !json_equal(v, hv)) {
            diff = key;
            break;
        }
    }
    if (diff) {
        size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9);
        json_t *hv = json_object_get(have, diff);
        char *a = hv ? json_dumps(hv, flags) : NULL;
        char *b = json_dumps(json_object_get(want, diff), flags);
        set_err(err, "%.900s: \"%s\" is %.200s, this spec's plan has %.200s: the checkpoint was "
                     "written for another spec (resume it with that spec's trainer)",
                path, diff, hv ? (a ? a : "?") : "missing", b ? b : "?");
        free(a);
        free(b);
        goto done;
    }
    json_object_foreach(have, key, v) {
        if (!json_object_get(want, key)) {
            set_err(err, "%.900s: has \"%.200s\", which this spec's plan does not: the checkpoint "
                         "was written for another spec", path, key);
            goto done;
        }
    }
    rc = 0;
done:
    json_decref(want);
    json_decref(have);
    return rc;
}

int hz_ckpt_load(hz_store *s, const hz_plan *p, const char *dir, int threads, hz_resume *r,
                 char *err)
{
    resume_header h;
    manifest_entry *man;
    FILE *f = open_resume(dir, &h, &man, err);
    if (!f) return -1;
    int rc = -1;
    if (check_files(dir, &h, man, err) != 0 || compare_config(p, dir, err) != 0) goto done;
    if (h.host_store_n != s->n || h.params_n != p->params_n) {
        set_err(err, "%.900s/resume.bin: written for another model or plan (host store of %lld, "
                     "this plan's %lld)", dir, (long long)h.host_store_n, (long long)s->n);
        goto done;
    }
    if (h.state_mode >= HZ_OPTSTATE_MODE_N ||
        (h.state_mode == HZ_OPTSTATE_INT8 && h.state_block != HZ_OPTSTATE_BLOCK) ||
        (h.state_mode != HZ_OPTSTATE_INT8 && h.state_block != 0)) {
        set_err(err, "%.900s/resume.bin: optimizer state mode %u with blocks of %u elements, "
                     "which this trainer cannot convert (it reads fp32, bf16 and int8 with "
                     "blocks of %d): resume with the hzc that wrote it",
                dir, h.state_mode, h.state_block, HZ_OPTSTATE_BLOCK);
        goto done;
    }
    if (hz_hf_load(s, p, dir, threads, err) != 0) goto done;
    hz_digest d;
    checksum_start(&d, &h, man);
    char why[HZ_HF_ERR_BYTES] = "";
    if (hz_ckpt_state_read(s, f, (int)h.state_mode, &d, why) != 0 || fgetc(f) != EOF) {
        set_err(err, "%.900s/resume.bin: %s", dir, why[0] ? why : "trailing bytes");
        goto done;
    }
    if (hz_digest_final(&d) != h.checksum) {
        set_err(err, "%.900s/resume.bin: corrupt (checksum mismatch over its header and "
                     "state)", dir);
        goto done;
    }
    r->step = h.step;
    r->data_pos = h.data_pos;
    r->data_seed = h.data_seed;
    r->state_mode = (int)h.state_mode;
    s->state_seed = h.state_seed;
    rc = 0;
done:
    free(man);
    fclose(f);
    return rc;
}
