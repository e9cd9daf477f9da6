/* runtime/checkpoint.c - checkpoints as directories: a save writes OUT/step-N.tmp/ (the
 * files: ckpt_files.c), whose every file is fsync'd, renames it to step-N and fsyncs OUT,
 * so a crash at any point leaves every earlier checkpoint whole and no step-N that looks
 * complete but is not; --keep prunes; a resume takes a checkpoint, or the newest one of a
 * --out directory that verifies, and compares its config.json with the plan's. Removing (a
 * stale .tmp, a checkpoint replaced or pruned) never follows a symlink. */
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

#include "ckpt.h"
#include "errf.h"
#include "safetensors.h"

#define set_err(err, ...) hz_errf(err, HZ_HF_ERR_BYTES, __VA_ARGS__)

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

int hz_ckpt_is_step_dir(const char *name, int64_t *step)
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
        if (!hz_ckpt_is_step_dir(e->d_name, &s) || len >= sizeof v->name) continue;
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

int hz_ckpt_begin(hz_ckpt_job *sv, const hz_store *s, const hz_plan *p, const char *out_dir,
                  const hz_resume *r, char *err)
{
    memset(sv, 0, sizeof *sv);
    sv->out_fd = -1;
    sv->step = r->step;
    snprintf(sv->out, sizeof sv->out, "%s", out_dir);
    snprintf(sv->name, sizeof sv->name, "step-%08lld", (long long)r->step);
    snprintf(sv->tmp_name, sizeof sv->tmp_name, "%s.tmp", sv->name);
    snprintf(sv->tmp, sizeof sv->tmp, "%s/%s", out_dir, sv->tmp_name);
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        set_err(err, "%.900s: cannot create: %s", out_dir, strerror(errno));
        return -1;
    }
    if ((sv->out_fd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        set_err(err, "%.900s: cannot open the directory: %s", out_dir, strerror(errno));
        return -1;
    }
    char *config = hz_hf_config_json(p, p->family);
    if (!config) {
        set_err(err, "no config.json for model family '%s'", p->family);
        return -1;
    }
    rm_tree_at(sv->out_fd, sv->tmp_name);
    if (mkdirat(sv->out_fd, sv->tmp_name, 0777) != 0) {
        set_err(err, "%.900s: cannot create: %s", sv->tmp, strerror(errno));
        free(config);
        return -1;
    }
    sv->w = hz_ckpt_writer_new(s, p, sv->tmp, config, r, 0, err);
    free(config);
    return sv->w ? 0 : -1;
}

int hz_ckpt_commit(hz_ckpt_job *sv, int keep, char *err)
{
    if (hz_st_fsync_dir(sv->tmp) != 0) {
        set_err(err, "%.900s: fsync failed: %s", sv->tmp, strerror(errno));
        return -1;
    }
    rm_tree_at(sv->out_fd, sv->name); /* a checkpoint of the same step from an earlier run */
    if (renameat(sv->out_fd, sv->tmp_name, sv->out_fd, sv->name) != 0 || fsync(sv->out_fd) != 0) {
        set_err(err, "%.900s: cannot rename to %.900s/%s: %s", sv->tmp, sv->out, sv->name,
                strerror(errno));
        return -1;
    }
    prune(sv->out_fd, sv->step, keep);
    return 0;
}

void hz_ckpt_end(hz_ckpt_job *sv, int failed)
{
    if (failed && sv->out_fd >= 0) rm_tree_at(sv->out_fd, sv->tmp_name);
    if (sv->out_fd >= 0) close(sv->out_fd);
    hz_ckpt_writer_free(sv->w);
    sv->w = NULL;
    sv->out_fd = -1;
}

int hz_ckpt_save(const hz_store *s, const hz_plan *p, const char *out_dir, const hz_resume *r,
                 int keep, int64_t *bytes, char *err)
{
    hz_ckpt_job sv;
    int rc = hz_ckpt_begin(&sv, s, p, out_dir, r, err);
    if (rc == 0 && bytes) *bytes = hz_ckpt_writer_bytes(sv.w);
    if (rc == 0) rc = hz_ckpt_writer_run(sv.w, HZ_CKPT_IO_THREADS, NULL, err);
    if (rc == 0) rc = hz_ckpt_commit(&sv, keep, err);
    hz_ckpt_end(&sv, rc != 0);
    return rc;
}

/* ---- resuming ---- */

/* The checkpoint's config.json against the plan's, key by key in the plan's order; the
 * first difference named. 0, or -1 + message. */
int hz_ckpt_config_check(const hz_plan *p, const char *dir, char *err)
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

int hz_ckpt_resume(hz_store *s, const hz_plan *p, const char *path, int threads, hz_resume *r,
                   char *dir, size_t n, char *err)
{
    char probe[4200], first_err[HZ_HF_ERR_BYTES];
    int damaged;
    snprintf(probe, sizeof probe, "%s/resume.bin", path);
    if (access(probe, F_OK) == 0) {
        snprintf(dir, n, "%s", path);
        return hz_ckpt_read(s, p, dir, threads, r, &damaged, err);
    }
    DIR *d = opendir(path);
    if (!d) return -2;
    int steps_n;
    step_entry *v = list_steps(d, &steps_n);
    closedir(d);
    if (!v) return -2;
    /* newest first; one that fails verification is named and the next older one tried;
     * when none verifies, the newest one's error is the message */
    int rc = -1;
    for (int i = 0; i < steps_n; i++) {
        snprintf(dir, n, "%s/%s", path, v[i].name);
        if ((rc = hz_ckpt_read(s, p, dir, threads, r, &damaged, err)) == 0 || !damaged) break;
        fprintf(stderr, "train: warning: --resume: skipping %s: %s\n", dir, err);
        if (i == 0) snprintf(first_err, sizeof first_err, "%s", err);
        if (i == steps_n - 1) snprintf(err, HZ_HF_ERR_BYTES, "%s", first_err);
    }
    free(v);
    return rc;
}
