/* runtime/ckpt_read.c - loading a checkpoint (format: ckpt_files.c) into the host store:
 * the head of resume.bin and the small files are checked first, then every large file is
 * read once, in parallel, straight into the store, each chunk digested by the thread that
 * read it; the digests are compared with the manifest and the checksum at the end, so a
 * damaged checkpoint is refused after one read, naming the file and the reason. A payload
 * in another optimizer-state precision is converted after it verifies, through ckpt_state.c
 * (a second, sequential read of resume.bin). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_format.h"
#include "ckpt_state.h"
#include "optstate.h"
#include "safetensors.h"

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

/* resume.bin's header and manifest from FD into *H and *MAN (malloc'd): magic and version,
 * step and data position in range, the step that of a step-N name, manifest names plain
 * file names. 0, or -1 with the reason in BAD. */
static int read_head(int fd, const char *dir, resume_header *h, manifest_entry **man, char *bad,
                     size_t cap)
{
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    int64_t named;
    *man = NULL;
    if (hz_pio_pread_all(fd, h, sizeof *h, 0) != 0)
        snprintf(bad, cap, "truncated (shorter than its header)");
    else if (memcmp(h->magic, RESUME_MAGIC, 8) != 0)
        snprintf(bad, cap, "not an hzc resume state (bad magic)");
    else if (h->version != RESUME_VERSION || h->header_bytes != RESUME_HEADER_BYTES)
        snprintf(bad, cap, "resume format version %u; this trainer reads version %u (whose "
                 "checksum covers every file of the checkpoint, digested in chunks, and whose "
                 "optimizer state keeps its precision): resume with the hzc that wrote it",
                 h->version, RESUME_VERSION);
    else if (h->state_mode >= HZ_OPTSTATE_MODE_N ||
             (h->state_mode == HZ_OPTSTATE_INT8 && h->state_block != HZ_OPTSTATE_BLOCK) ||
             (h->state_mode != HZ_OPTSTATE_INT8 && h->state_block != 0))
        snprintf(bad, cap, "optimizer state mode %u with blocks of %u elements, which this "
                 "trainer cannot convert (it reads fp32, bf16 and int8 with blocks of %d): "
                 "resume with the hzc that wrote it", h->state_mode, h->state_block,
                 HZ_OPTSTATE_BLOCK);
    else if (h->step < 0 || h->step > STEP_MAX)
        snprintf(bad, cap, "step %lld is out of range (0 to 2^40): the header is damaged",
                 (long long)h->step);
    else if (h->data_pos < 0 || h->data_pos > DATA_POS_MAX)
        snprintf(bad, cap, "data position %lld is out of range: the header is damaged",
                 (long long)h->data_pos);
    else if (h->host_store_n <= 0 || h->host_store_n > (1ll << 40) || h->files_n == 0 ||
             h->files_n > MANIFEST_MAX_FILES)
        snprintf(bad, cap, "damaged header (store size %lld, %u files)",
                 (long long)h->host_store_n, h->files_n);
    else if (hz_ckpt_is_step_dir(base, &named) && named != h->step)
        snprintf(bad, cap, "holds step %lld, but its directory %s says step %lld: renamed "
                 "or copied over", (long long)h->step, base, (long long)named);
    else if (!(*man = calloc(h->files_n, sizeof **man)))
        snprintf(bad, cap, "out of memory for its manifest");
    else if (hz_pio_pread_all(fd, *man, h->files_n * sizeof **man, sizeof *h) != 0)
        snprintf(bad, cap, "truncated (shorter than its manifest)");
    else
        for (uint32_t i = 0; i < h->files_n && !bad[0]; i++) {
            const char *name = (*man)[i].name;
            if (!memchr(name, 0, MANIFEST_NAME_BYTES) || !name[0] || strchr(name, '/') ||
                !strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, "resume.bin") ||
                (*man)[i].bytes < 0)
                snprintf(bad, cap, "corrupt manifest (entry %u)", i);
        }
    if (!bad[0]) return 0;
    free(*man);
    *man = NULL;
    return -1;
}

/* Every file of the manifest in DIR with its size, and no .json or .safetensors file (what
 * a loader reads) outside it. 0, or -1 + message naming the file. */
static int check_sizes(const char *dir, const resume_header *h, const manifest_entry *man,
                       char *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        set_err(err, "%.900s: cannot open the directory: %s", dir, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    int rc = 0;
    for (uint32_t i = 0; i < h->files_n && rc == 0; i++) {
        struct stat st;
        if (fstatat(fd, man[i].name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            set_err(err, "%.900s/%s: cannot read: %s (resume.bin's manifest lists it)", dir,
                    man[i].name, errno ? strerror(errno) : "not a regular file");
            rc = -1;
        } else if (st.st_size != man[i].bytes) {
            set_err(err, "%.900s/%s: %lld bytes, resume.bin's manifest says %lld: the file was "
                         "truncated or replaced after the checkpoint was written", dir,
                    man[i].name, (long long)st.st_size, (long long)man[i].bytes);
            rc = -1;
        }
    }
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!ends_with(e->d_name, ".json") && !ends_with(e->d_name, ".safetensors")) continue;
        int listed = 0;
        for (uint32_t i = 0; i < h->files_n && !listed; i++) listed = !strcmp(man[i].name, e->d_name);
        if (!listed) {
            set_err(err, "%.900s/%.200s: not in resume.bin's manifest: added after the checkpoint "
                         "was written (remove it)", dir, e->d_name);
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

static void digest_mismatch(const char *dir, const char *name, char *err)
{
    set_err(err, "%.900s/%s: contents differ from resume.bin's manifest (digest): the file is "
                 "corrupt or was replaced after the checkpoint was written", dir, name);
}

/* Read the files F[0..n) (digest only where they have no segments) and compare each with
 * its manifest entry MAN_OF[i]. 0, or -1 + message. */
static int read_and_compare(ck_file *f, const manifest_entry **man_of, int n, int threads,
                            const char *dir, char *err)
{
    hz_pio_file *io = calloc((size_t)n + 1, sizeof *io);
    uint64_t **dg = calloc((size_t)n + 1, sizeof *dg);
    int rc = -1;
    if (!io || !dg) goto oom;
    for (int i = 0; i < n; i++) {
        int64_t bytes = man_of[i]->bytes;
        if (!(dg[i] = calloc((size_t)hz_pio_chunks(bytes) + 1, sizeof(uint64_t)))) goto oom;
        io[i] = (hz_pio_file){f[i].path, 0, bytes, NULL, f[i].seg_n ? hz_ck_consume : NULL, &f[i],
                              dg[i], 0};
    }
    char perr[HZ_PIO_ERR_BYTES];
    if (hz_pio_read(io, n, threads, 1, perr) != 0) {
        set_err(err, "%s", perr);
        goto done;
    }
    rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        if (hz_digest_chunked(io[i].bytes, dg[i], hz_pio_chunks(io[i].bytes)) != man_of[i]->digest) {
            digest_mismatch(dir, man_of[i]->name, err);
            rc = -1;
        }
    goto done;
oom:
    set_err(err, "%.900s: out of memory", dir);
done:
    for (int i = 0; dg && i < n; i++) free(dg[i]);
    free(dg);
    free(io);
    return rc;
}

/* The plan's bf16 weights in the checkpoint's safetensors files: one segment per tensor in
 * the ck_file of its shard (F[i] is manifest entry i). 0, or -1 + message. */
static int weight_segments(const hz_plan *p, const char *dir, ck_file *f, const resume_header *h,
                           char *err)
{
    char sterr[HZ_ST_ERR_BYTES];
    hz_st_index *ix = hz_st_index_open(dir, sterr);
    if (!ix) {
        set_err(err, "%s", sterr);
        return -1;
    }
    int rc = 0, parts_n = 0;
    for (int i = 0; i < p->tensor_n && rc == 0; i++) {
        hz_hf_part parts[HZ_HF_MAX_PARTS];
        int k = hz_hf_parts(p, &p->tensors[i], parts);
        for (int j = 0; j < k && rc == 0; j++, parts_n++) {
            const hz_st_tensor *t = hz_st_index_find(ix, parts[j].name);
            int shard = -1;
            for (uint32_t m = 0; t && m < h->files_n && shard < 0; m++)
                if (!strcmp(f[m].path, t->file)) shard = (int)m;
            if (!t || t->dtype != HZ_ST_BF16 || t->ndim != parts[j].ndim ||
                t->shape[0] != parts[j].rows || (t->ndim == 2 && t->shape[1] != parts[j].cols) ||
                t->offset % 2 || shard < 0) {
                set_err(err, "%.900s: tensor %s is missing, or not bf16 of this plan's shape at an "
                             "even offset: not a checkpoint this trainer wrote", dir, parts[j].name);
                rc = -1;
                break;
            }
            seg sg = {t->offset, t->numel * 2, NULL, HZ_ARR_W, 2,
                      p->tensors[i].host_n + parts[j].row0 * parts[j].cols, 0, 0, 0};
            if (hz_ck_add_seg(&f[shard], sg) != 0) {
                set_err(err, "%.900s: out of memory", dir);
                rc = -1;
            }
        }
    }
    if (rc == 0 && hz_st_index_tensor_n(ix) != parts_n) {
        set_err(err, "%.900s: %d tensors, this plan has %d: not a checkpoint this trainer wrote",
                dir, hz_st_index_tensor_n(ix), parts_n);
        rc = -1;
    }
    hz_st_index_close(ix);
    return rc;
}

/* The verified payload of resume.bin at PATH (after its head of HB bytes), written in
 * FILE_MODE, converted into the store's precision (ckpt_state.h). 0, or -1 + message. */
static int convert_state(hz_store *s, const char *path, int64_t hb, int file_mode,
                         const char *dir, char *err)
{
    FILE *f = fopen(path, "rb");
    char why[HZ_HF_ERR_BYTES] = "";
    hz_digest d;
    hz_digest_init(&d);
    int rc = f && fseek(f, (long)hb, SEEK_SET) == 0 &&
                     hz_ckpt_state_read(s, f, file_mode, &d, why) == 0 && fgetc(f) == EOF
                 ? 0
                 : -1;
    if (rc)
        set_err(err, "%.900s/resume.bin: %s", dir,
                why[0] ? why : f ? "trailing bytes" : strerror(errno));
    if (f) fclose(f);
    return rc;
}

static int by_off(const void *a, const void *b)
{
    const seg *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int hz_ckpt_read(hz_store *s, const hz_plan *p, const char *dir, int threads, hz_resume *r,
                 int *damaged, char *err)
{
    char path[4200], bad[600] = "";
    resume_header h;
    manifest_entry *man = NULL;
    ck_file *f = NULL;
    const manifest_entry **man_of = NULL;
    int rc = -1;
    *damaged = 1;
    snprintf(path, sizeof path, "%s/resume.bin", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, "%.900s: cannot open: %s (a checkpoint directory written by --out holds it)",
                path, strerror(errno));
        return -1;
    }
    int64_t hb = 0, payload = 0;
    unsigned char *head = NULL;
    struct stat st;
    if (read_head(fd, dir, &h, &man, bad, sizeof bad) == 0) {
        hb = hz_ck_head_bytes(h.files_n);
        payload = hz_ckpt_state_bytes((int)h.state_mode, h.host_store_n);
        if (!(head = malloc((size_t)hb)) || hz_pio_pread_all(fd, head, (size_t)hb, 0) != 0 ||
            fstat(fd, &st) != 0 || st.st_size != hb + payload)
            snprintf(bad, sizeof bad, "truncated or with trailing bytes");
    }
    close(fd);
    if (bad[0]) {
        set_err(err, "%.900s: %s", path, bad);
        goto done;
    }
    if (check_sizes(dir, &h, man, err) != 0) goto done;
    /* one ck_file per manifest entry, then resume.bin's payload */
    f = calloc((size_t)h.files_n + 1, sizeof *f);
    man_of = calloc((size_t)h.files_n + 1, sizeof *man_of);
    if (!f || !man_of) {
        set_err(err, "%.900s: out of memory", dir);
        goto done;
    }
    for (uint32_t i = 0; i <= h.files_n; i++) {
        snprintf(f[i].path, sizeof f[i].path, "%s/%s", dir, i < h.files_n ? man[i].name : "resume.bin");
        f[i].s = s;
        man_of[i] = &man[i < h.files_n ? i : 0];
    }
    /* the small files first: config.json must be the one the manifest holds before it is
     * compared with the plan */
    int small_n = 0;
    ck_file *small = calloc((size_t)h.files_n, sizeof *small);
    const manifest_entry **small_man = calloc((size_t)h.files_n, sizeof *small_man);
    for (uint32_t i = 0; small && small_man && i < h.files_n; i++)
        if (!ends_with(man[i].name, ".safetensors")) {
            small[small_n] = f[i];
            small_man[small_n++] = &man[i];
        }
    int small_rc = small && small_man ? read_and_compare(small, small_man, small_n, 1, dir, err) : -1;
    free(small);
    free(small_man);
    if (small_rc != 0) goto done;
    *damaged = 0;
    if (hz_ckpt_config_check(p, dir, err) != 0) goto done;
    if (h.host_store_n != s->n || h.params_n != p->params_n) {
        set_err(err, "%.900s/resume.bin: written for another model or plan (host store of %lld, "
                     "this plan's %lld)", dir, (long long)h.host_store_n, (long long)s->n);
        goto done;
    }
    *damaged = 1;
    if (weight_segments(p, dir, f, &h, err) != 0) {
        /* a damaged header reads as a bad file: the digests say which file changed */
        read_and_compare(f, man_of, (int)h.files_n, threads, dir, err);
        goto done;
    }
    for (uint32_t i = 0; i < h.files_n; i++)
        if (f[i].seg_n > 1) qsort(f[i].segs, (size_t)f[i].seg_n, sizeof(seg), by_off);
    /* the large files and resume.bin's payload (its region starts after the head; its
     * checksum, not the manifest, covers it) in one parallel read; a payload in another
     * precision is only digested here, and converted once it has verified */
    int convert = (int)h.state_mode != s->state_mode;
    hz_pio_file *all = calloc((size_t)h.files_n + 1, sizeof *all);
    uint64_t **dg = calloc((size_t)h.files_n + 1, sizeof *dg);
    const manifest_entry **big = calloc((size_t)h.files_n + 1, sizeof *big);
    int n = 0, ok = all && dg && big &&
                    (convert || hz_ck_add_state_segs(&f[h.files_n], s->n, s->state_mode, 0) == 0);
    for (uint32_t i = 0; ok && i <= h.files_n; i++) {
        if (i < h.files_n && !ends_with(man[i].name, ".safetensors")) continue;
        int64_t base = i < h.files_n ? 0 : hb, bytes = i < h.files_n ? man[i].bytes : payload;
        ok = (dg[n] = calloc((size_t)hz_pio_chunks(bytes) + 1, sizeof(uint64_t))) != NULL;
        all[n] = (hz_pio_file){f[i].path, base, bytes, NULL, hz_ck_consume, &f[i], dg[n], 0};
        big[n++] = &man[i < h.files_n ? i : 0];
    }
    char perr[HZ_PIO_ERR_BYTES];
    if (!ok) set_err(err, "%.900s: out of memory", dir);
    else if (hz_pio_read(all, n, threads, 1, perr) != 0) set_err(err, "%s", perr);
    else {
        rc = 0;
        for (int i = 0; i < n - 1 && rc == 0; i++)
            if (hz_digest_chunked(big[i]->bytes, dg[i], hz_pio_chunks(big[i]->bytes)) != big[i]->digest) {
                digest_mismatch(dir, big[i]->name, err);
                rc = -1;
            }
        if (rc == 0 && hz_ck_checksum(head, hb, hz_digest_chunked(payload, dg[n - 1],
                                                                  hz_pio_chunks(payload))) != h.checksum) {
            set_err(err, "%.900s/resume.bin: corrupt (checksum mismatch over its header and "
                         "state)", dir);
            rc = -1;
        }
    }
    for (int i = 0; dg && i < n; i++) free(dg[i]);
    free(dg);
    free(all);
    free(big);
    if (rc == 0 && convert &&
        convert_state(s, f[h.files_n].path, hb, (int)h.state_mode, dir, err) != 0) {
        *damaged = 0; /* whole, but its moments cannot be converted */
        rc = -1;
    }
    if (rc == 0) {
        *damaged = 0;
        s->state_seed = h.state_seed;
        r->state_mode = (int)h.state_mode;
        r->step = h.step;
        r->data_pos = h.data_pos;
        r->data_seed = h.data_seed;
    }
done:
    if (f) hz_ck_free_files(f, (int)h.files_n + 1);
    free(man_of);
    free(man);
    free(head);
    return rc;
}
