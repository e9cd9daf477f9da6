/* runtime/ckpt_state.c - the state payload of resume.bin: lo, m, v (and int8's block scales)
 * of the whole store in its optimizer-state precision, moved window by window through
 * hz_store_pass (a checkpoint's save and same-precision resume move the same bytes through
 * the parallel engine, ckpt_files.c); on a resume into another precision the moments are converted. */
#define _DEFAULT_SOURCE
#include "ckpt_state.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errf.h"
#include "hfmap.h"
#include "optstate.h"
#include "safetensors.h"

#define set_err(err, ...) hz_errf(err, HZ_HF_ERR_BYTES, __VA_ARGS__)

const int hz_ckpt_state_arrays[HZ_CKPT_STATE_ARRAYS] = {HZ_ARR_LO, HZ_ARR_M, HZ_ARR_V,
                                                        HZ_ARR_MS, HZ_ARR_VS};
#define payload_array hz_ckpt_state_arrays

static int64_t round8(int64_t x) { return (x + 7) / 8 * 8; }

int64_t hz_ckpt_state_at(int mode, int64_t n, int k, int64_t *bytes)
{
    int64_t off = 0;
    for (int j = 0; j <= k; j++) {
        int64_t b = hz_arr_offset(hz_arr_block_bytes(mode, 0, payload_array[j]), n);
        if (j == k) {
            *bytes = b;
            return b ? round8(off) : off;
        }
        if (b) off = round8(off) + b;
    }
    return off;
}

int64_t hz_ckpt_state_bytes(int mode, int64_t n)
{
    int64_t b;
    int64_t at = hz_ckpt_state_at(mode, n, HZ_CKPT_STATE_ARRAYS - 1, &b);
    return at + b;
}

typedef struct state_io {
    int a;           /* the array */
    int64_t bb;      /* its bytes per block */
    hz_digest *d;    /* digest the bytes, and */
    int fd;          /* write them, or */
    FILE *f;         /* read them */
} state_io;

static int state_window(void *arg, int64_t first, int64_t n, void *const *ptr)
{
    const state_io *io = arg;
    void *at = ptr[io->a];
    size_t bytes = (size_t)(hz_arr_offset(io->bb, first + n) - hz_arr_offset(io->bb, first));
    if (io->f && fread(at, 1, bytes, io->f) != bytes) return -1;
    if (io->d) hz_digest_update(io->d, at, bytes);
    if (io->fd >= 0) return hz_st_write_all(io->fd, at, bytes) ? -1 : 0;
    return 0;
}

/* The zero bytes before an array that starts at a multiple of 8: PAD (< 8) of them
 * digested, written or read. */
static int pass_pad(hz_digest *d, int fd, FILE *f, int64_t pad)
{
    unsigned char z[8] = {0};
    if (pad == 0) return 0;
    if (f && fread(z, 1, (size_t)pad, f) != (size_t)pad) return -1;
    if (d) hz_digest_update(d, z, (size_t)pad);
    if (fd >= 0) return hz_st_write_all(fd, z, (size_t)pad) ? -1 : 0;
    return 0;
}

/* The arrays of the payload, each in turn at its offset: digested, written or read. */
static int pass_arrays(const hz_store *s, hz_digest *d, int fd, FILE *f)
{
    int64_t off = 0;
    for (int k = 0; k < HZ_CKPT_STATE_ARRAYS; k++) {
        state_io io = {payload_array[k], hz_arr_block_bytes(s->state_mode, 0, payload_array[k]),
                       d, fd, f};
        if (io.bb == 0) continue;
        int64_t bytes, at = hz_ckpt_state_at(s->state_mode, s->n, k, &bytes);
        if (pass_pad(d, fd, f, at - off) != 0) return -1;
        if (hz_store_pass(s, HZ_ARR_BIT(io.a), f != NULL, state_window, &io)) return -1;
        off = at + bytes;
    }
    return 0;
}

int hz_ckpt_state_write(const hz_store *s, hz_digest *d, int fd)
{
    return pass_arrays(s, d, fd, NULL);
}

/* ---- conversion ---- */

/* N moments of a block-aligned run in MODE (codes M, V; int8 scales MS, VS of its blocks)
 * decoded to fp32 FM, FV. */
static void decode(int mode, const char *m, const char *v, const float *ms, const float *vs,
                   int64_t n, float *fm, float *fv)
{
    for (int64_t i = 0; i < n; i++) {
        if (mode == HZ_OPTSTATE_FP32) {
            memcpy(&fm[i], m + 4 * i, 4);
            memcpy(&fv[i], v + 4 * i, 4);
        } else if (mode == HZ_OPTSTATE_BF16) {
            uint16_t a, b;
            memcpy(&a, m + 2 * i, 2);
            memcpy(&b, v + 2 * i, 2);
            fm[i] = hz_f32_from_bf16(a);
            fv[i] = hz_f32_from_bf16(b);
        }
    }
    if (mode != HZ_OPTSTATE_INT8) return;
    for (int64_t b = 0; b * HZ_OPTSTATE_BLOCK < n; b++) {
        int64_t at = b * HZ_OPTSTATE_BLOCK;
        int64_t len = n - at < HZ_OPTSTATE_BLOCK ? n - at : HZ_OPTSTATE_BLOCK;
        hz_q8_dequantize_block_ref((const uint8_t *)m + at, (int)len, 1, ms[b], fm + at);
        hz_q8_dequantize_block_ref((const uint8_t *)v + at, (int)len, 0, vs[b], fv + at);
    }
}

/* The same encoded in MODE; -1 when a moment is not finite (no precision holds it). */
static int encode(int mode, const float *fm, const float *fv, int64_t n, char *m, char *v,
                  float *ms, float *vs)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(fm[i]) || !isfinite(fv[i])) return -1;
    for (int64_t i = 0; i < n && mode != HZ_OPTSTATE_INT8; i++) {
        if (mode == HZ_OPTSTATE_FP32) {
            memcpy(m + 4 * i, &fm[i], 4);
            memcpy(v + 4 * i, &fv[i], 4);
        } else {
            uint16_t a = hz_bf16_from_f32(fm[i]), b = hz_bf16_from_f32(fv[i]);
            memcpy(m + 2 * i, &a, 2);
            memcpy(v + 2 * i, &b, 2);
        }
    }
    if (mode != HZ_OPTSTATE_INT8) return 0;
    for (int64_t b = 0; b * HZ_OPTSTATE_BLOCK < n; b++) {
        int64_t at = b * HZ_OPTSTATE_BLOCK;
        int64_t len = n - at < HZ_OPTSTATE_BLOCK ? n - at : HZ_OPTSTATE_BLOCK;
        hz_q8_quantize_block_ref(fm + at, (int)len, 1, (uint8_t *)m + at, &ms[b]);
        hz_q8_quantize_block_ref(fv + at, (int)len, 0, (uint8_t *)v + at, &vs[b]);
    }
    return 0;
}

/* Elements converted at a time (a multiple of the block). */
#define CONVERT_N ((int64_t)1 << 16)

typedef struct convert_io {
    int fd;
    int from, to;            /* the file's mode, the store's */
    int64_t at[4];           /* the file offsets of its m, v, ms, vs */
    char *buf;               /* the file's bytes of one chunk: m, v, ms, vs */
    float *fm, *fv;          /* (CONVERT_N) the chunk's moments in fp32 */
    int bad;                 /* 1: a moment was not finite; -1: a read failed */
} convert_io;

static int read_at(int fd, void *buf, size_t n, off_t off)
{
    char *b = buf;
    while (n > 0) {
        ssize_t r = pread(fd, b, n, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        b += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

static int convert_window(void *arg, int64_t first, int64_t n, void *const *ptr)
{
    convert_io *io = arg;
    static const int arr[4] = {HZ_ARR_M, HZ_ARR_V, HZ_ARR_MS, HZ_ARR_VS};
    for (int64_t c0 = first; c0 < first + n; c0 += CONVERT_N) {
        int64_t cn = first + n - c0 < CONVERT_N ? first + n - c0 : CONVERT_N;
        char *src[4];
        char *b = io->buf;
        for (int k = 0; k < 4; k++) { /* the file's bytes of the chunk */
            int64_t fb = hz_arr_block_bytes(io->from, 0, arr[k]);
            int64_t o = hz_arr_offset(fb, c0), bytes = hz_arr_offset(fb, c0 + cn) - o;
            src[k] = b;
            if (bytes > 0 && read_at(io->fd, b, (size_t)bytes, (off_t)(io->at[k] + o)) != 0) {
                io->bad = -1;
                return -1;
            }
            b += (bytes + 7) / 8 * 8; /* the scales after the codes stay aligned */
        }
        decode(io->from, src[0], src[1], (const float *)src[2], (const float *)src[3], cn, io->fm,
               io->fv);
        char *dst[4];
        for (int k = 0; k < 4; k++) {
            int64_t sb = hz_arr_block_bytes(io->to, 0, arr[k]);
            dst[k] = sb ? (char *)ptr[arr[k]] + hz_arr_offset(sb, c0) - hz_arr_offset(sb, first)
                        : NULL;
        }
        if (encode(io->to, io->fm, io->fv, cn, dst[0], dst[1], (float *)dst[2],
                   (float *)dst[3]) != 0) {
            io->bad = 1;
            return -1;
        }
    }
    return 0;
}

/* The rest of F (BYTES of it) into D; 0, or -1 when it is shorter. */
static int digest_rest(FILE *f, int64_t bytes, hz_digest *d)
{
    char *buf = malloc(1 << 20);
    if (!buf) return -1;
    int rc = 0;
    while (bytes > 0 && rc == 0) {
        size_t want = bytes < (1 << 20) ? (size_t)bytes : (size_t)1 << 20;
        if (fread(buf, 1, want, f) != want) rc = -1;
        else hz_digest_update(d, buf, want);
        bytes -= (int64_t)want;
    }
    free(buf);
    return rc;
}

int hz_ckpt_state_read(hz_store *s, FILE *f, int file_mode, hz_digest *d, char *err)
{
    if (file_mode == s->state_mode) {
        if (pass_arrays(s, d, -1, f) != 0) {
            set_err(err, "truncated");
            return -1;
        }
        return 0;
    }
    state_io lo = {HZ_ARR_LO, hz_arr_block_bytes(file_mode, 0, HZ_ARR_LO), d, -1, f};
    if (hz_store_pass(s, HZ_ARR_BIT(HZ_ARR_LO), 1, state_window, &lo)) {
        set_err(err, "truncated");
        return -1;
    }
    convert_io io = {fileno(f), file_mode, s->state_mode, {0}, NULL, NULL, NULL, 0};
    long pos = ftell(f);
    int64_t base = pos - hz_arr_offset(hz_arr_block_bytes(file_mode, 0, HZ_ARR_LO), s->n);
    int64_t at = base + hz_ckpt_state_bytes(file_mode, s->n);
    for (int k = 0; k < 4; k++) { /* m, v, ms, vs */
        int64_t bytes;
        io.at[k] = base + hz_ckpt_state_at(file_mode, s->n, k + 1, &bytes);
    }
    if (pos < 0 || digest_rest(f, at - pos, d) != 0) {
        set_err(err, "truncated");
        return -1;
    }
    io.buf = malloc((size_t)(CONVERT_N * 8 + CONVERT_N / HZ_OPTSTATE_BLOCK * 8 + 4 * 8));
    io.fm = malloc((size_t)CONVERT_N * 4);
    io.fv = malloc((size_t)CONVERT_N * 4);
    int rc = 0;
    unsigned moments = HZ_ARR_BIT(HZ_ARR_M) | HZ_ARR_BIT(HZ_ARR_V) | HZ_ARR_BIT(HZ_ARR_MS) |
                       HZ_ARR_BIT(HZ_ARR_VS);
    if (!io.buf || !io.fm || !io.fv) {
        set_err(err, "out of memory for converting the optimizer state");
        rc = -1;
    } else if (hz_store_pass(s, moments, 1, convert_window, &io) != 0) {
        if (io.bad > 0)
            set_err(err, "its %s optimizer state holds a moment that is not finite: it cannot "
                         "be converted to %s; resume it with optimizer_state: %s",
                    hz_optstate_names[file_mode], hz_optstate_names[s->state_mode],
                    hz_optstate_names[file_mode]);
        else
            set_err(err, "truncated");
        rc = -1;
    }
    free(io.buf);
    free(io.fm);
    free(io.fv);
    return rc;
}
