/* runtime/checkpoint.c - checkpoints that transformers loads directly, plus the state that
 * makes a resume exact.
 *
 * OUT/step-00000100/ holds config.json and model.safetensors (bf16 working weights, sharded
 * with an index above 5 GB, as save_pretrained does) and resume.bin:
 *   header (little-endian): "HZRESUME", u32 version 1, u32 header bytes (64),
 *     i64 host_store_n, i64 params_n, i64 step (steps done), i64 data position,
 *     u64 data seed, u64 FNV-1a 64 checksum of the payload
 *   payload: lo (int16 x n), m (fp32 x n), v (fp32 x n) in the host store's order.
 * With the bf16 w from model.safetensors, lo restores the fp32 master bit for bit. The
 * trainer draws no random numbers while training (the data order comes from the data seed
 * and position), so these fields are the whole state.
 * A save writes step-N.tmp/ (every file fsync'd), renames it to step-N and fsyncs OUT:
 * a crash at any point leaves every earlier checkpoint whole. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errf.h"
#include "hfmap.h"
#include "rt.h"
#include "safetensors.h"

#define set_err(err, ...) hz_errf(err, HZ_HF_ERR_BYTES, __VA_ARGS__)

#define RESUME_MAGIC "HZRESUME"
#define RESUME_VERSION 1u
#define RESUME_HEADER_BYTES 64u

typedef struct resume_header {
    char magic[8];
    uint32_t version, header_bytes;
    int64_t host_store_n, params_n, step, data_pos;
    uint64_t data_seed, checksum;
} resume_header;

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t payload_checksum(const hz_store *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, s->lo, (size_t)s->n * 2);
    h = fnv1a(h, s->m, (size_t)s->n * 4);
    return fnv1a(h, s->v, (size_t)s->n * 4);
}

typedef struct resume_job {
    const hz_store *s;
    resume_header h;
} resume_job;

static int emit_resume(int fd, void *arg)
{
    const resume_job *j = arg;
    const hz_store *s = j->s;
    return hz_st_write_all(fd, &j->h, sizeof j->h) || hz_st_write_all(fd, s->lo, (size_t)s->n * 2) ||
                   hz_st_write_all(fd, s->m, (size_t)s->n * 4) ||
                   hz_st_write_all(fd, s->v, (size_t)s->n * 4)
               ? -1
               : 0;
}

static int write_resume(const hz_store *s, const hz_plan *p, const char *path,
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
    j.h.checksum = payload_checksum(s);
    return hz_st_write_atomic(path, emit_resume, &j, err);
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
    int64_t x = ((const step_entry *)a)->step, y = ((const step_entry *)b)->step;
    return x < y ? 1 : x > y ? -1 : strcmp(((const step_entry *)a)->name, ((const step_entry *)b)->name);
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
        if (!is_step_dir(e->d_name, &s) || strlen(e->d_name) >= sizeof v->name) continue;
        if (*n == cap) {
            step_entry *more = realloc(v, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *v);
            if (!more) break;
            v = more;
        }
        v[*n].step = s;
        snprintf(v[*n].name, sizeof v->name, "%s", e->d_name);
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
    char name[64], tmp_name[80], dir[4200], tmp[4200], path[4300];
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
    snprintf(path, sizeof path, "%s/resume.bin", tmp);
    if (write_resume(s, p, path, r, err) != 0) goto done;
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

int hz_ckpt_resolve(const char *path, char *dir, size_t n)
{
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/resume.bin", path);
    if (access(probe, R_OK) == 0) {
        snprintf(dir, n, "%s", path);
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) return -1;
    int64_t best = -1, s;
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_step_dir(e->d_name, &s) && s > best) best = s;
    closedir(d);
    if (best < 0) return -1;
    snprintf(dir, n, "%s/step-%08lld", path, (long long)best);
    return 0;
}

int hz_ckpt_load(hz_store *s, const hz_plan *p, const char *dir, int threads, hz_resume *r,
                 char *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/resume.bin", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, "%.900s: cannot open: %s (a checkpoint directory written by "
                 "--out holds it)", path, strerror(errno));
        return -1;
    }
    resume_header h;
    const char *bad = NULL;
    if (fread(&h, sizeof h, 1, f) != 1) bad = "shorter than its header";
    else if (memcmp(h.magic, RESUME_MAGIC, 8) != 0) bad = "not an hzc resume state (bad magic)";
    else if (h.version != RESUME_VERSION || h.header_bytes != RESUME_HEADER_BYTES)
        bad = "written by another hzc version";
    else if (h.host_store_n != s->n || h.params_n != p->params_n)
        bad = "written for another model or plan (host store size differs)";
    if (!bad && hz_hf_load(s, p, dir, threads, err) != 0) {
        fclose(f);
        return -1;
    }
    if (!bad && (fread(s->lo, 2, (size_t)s->n, f) != (size_t)s->n ||
                 fread(s->m, 4, (size_t)s->n, f) != (size_t)s->n ||
                 fread(s->v, 4, (size_t)s->n, f) != (size_t)s->n || fgetc(f) != EOF))
        bad = "truncated or with trailing bytes";
    if (!bad && payload_checksum(s) != h.checksum) bad = "corrupt (checksum mismatch)";
    fclose(f);
    if (bad) {
        set_err(err, "%.900s: %s", path, bad);
        return -1;
    }
    r->step = h.step;
    r->data_pos = h.data_pos;
    r->data_seed = h.data_seed;
    return 0;
}
