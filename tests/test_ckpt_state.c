/* tests/test_ckpt_state.c - resume.bin's state payload (runtime/ckpt_state.c) on bare stores of
 * every optimizer-state precision: written and read back in the same one byte for byte with
 * the reader's digest equal to the writer's; read into each other precision, the moments
 * are the per-element reference's conversion (exact decode, round-to-nearest bf16, the
 * blockwise int8 quantiser) and lo is unchanged; a truncated payload and a non-finite moment
 * are refused with their messages. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_state.h"
#include "hfmap.h"
#include "optstate.h"
#include "test.h"

#define N 200003 /* over three conversion chunks, and a partial last block */

static const hz_plan *bare_plan(int mode)
{
    static hz_plan p[HZ_OPTSTATE_MODE_N];
    memset(&p[mode], 0, sizeof p[mode]);
    p[mode].host_store_n = N;
    p[mode].optimizer_state = mode;
    return &p[mode];
}

/* The moments the test stores: m in [-1e-2, 1e-2), v in [0, 1e-4), a zero block, one
 * denormal. */
static void reference_moments(float *m, float *v)
{
    for (int64_t i = 0; i < N; i++) {
        m[i] = 1e-2f * test_frand();
        v[i] = 1e-4f * fabsf(test_frand());
    }
    for (int64_t i = 640; i < 704; i++) m[i] = v[i] = 0.0f;
    m[1000] = 1e-40f;
}

/* The store S (mode, zeroed) holding the moments M, V encoded per element as the reference
 * does, and lo[i] = i * 7 (mod 2^16). */
static void fill(hz_store *s, const float *m, const float *v)
{
    for (int64_t i = 0; i < N; i++) s->lo[i] = (int16_t)(i * 7);
    for (int64_t i = 0; i < N && s->state_mode != HZ_OPTSTATE_INT8; i++) {
        if (s->state_mode == HZ_OPTSTATE_FP32) {
            ((float *)s->m)[i] = m[i];
            ((float *)s->v)[i] = v[i];
        } else {
            ((uint16_t *)s->m)[i] = hz_bf16_from_f32(m[i]);
            ((uint16_t *)s->v)[i] = hz_bf16_from_f32(v[i]);
        }
    }
    for (int64_t b = 0; s->state_mode == HZ_OPTSTATE_INT8 && b * 64 < N; b++) {
        int len = N - b * 64 < 64 ? (int)(N - b * 64) : 64;
        hz_q8_quantize_block_ref(m + b * 64, len, 1, (uint8_t *)s->m + b * 64, &s->ms[b]);
        hz_q8_quantize_block_ref(v + b * 64, len, 0, (uint8_t *)s->v + b * 64, &s->vs[b]);
    }
}

/* The store's moments decoded to fp32, per element. */
static void decode(const hz_store *s, float *m, float *v)
{
    for (int64_t i = 0; i < N && s->state_mode != HZ_OPTSTATE_INT8; i++) {
        m[i] = s->state_mode == HZ_OPTSTATE_FP32 ? ((float *)s->m)[i]
                                                : hz_f32_from_bf16(((uint16_t *)s->m)[i]);
        v[i] = s->state_mode == HZ_OPTSTATE_FP32 ? ((float *)s->v)[i]
                                                : hz_f32_from_bf16(((uint16_t *)s->v)[i]);
    }
    for (int64_t b = 0; s->state_mode == HZ_OPTSTATE_INT8 && b * 64 < N; b++) {
        int len = N - b * 64 < 64 ? (int)(N - b * 64) : 64;
        hz_q8_dequantize_block_ref((uint8_t *)s->m + b * 64, len, 1, s->ms[b], m + b * 64);
        hz_q8_dequantize_block_ref((uint8_t *)s->v + b * 64, len, 0, s->vs[b], v + b * 64);
    }
}

static size_t state_bytes(const hz_store *s, int a)
{
    return (size_t)hz_arr_offset(hz_arr_block_bytes(s->state_mode, 0, a), N);
}

int main(void)
{
    if (test_tmp_open("ckpt_state") != 0) return 2;
    float *m = malloc(N * 4), *v = malloc(N * 4), *m2 = malloc(N * 4), *v2 = malloc(N * 4);
    if (!m || !v || !m2 || !v2) return 2;
    reference_moments(m, v);
    for (int from = 0; from < HZ_OPTSTATE_MODE_N; from++) {
        hz_store src;
        if (hz_store_alloc(&src, bare_plan(from), NULL, NULL) != 0) return 2;
        fill(&src, m, v);
        const char *path = test_tmp("state-%d", from);
        FILE *f = fopen(path, "wb");
        hz_digest dw;
        hz_digest_init(&dw);
        int wrc = f ? hz_ckpt_state_write(&src, &dw, fileno(f)) : -1;
        if (f) fclose(f);
        uint64_t want_digest = hz_digest_final(&dw);
        f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        CHECK(wrc == 0 && size == hz_ckpt_state_bytes(from, N),
              "%s payload of %d elements: %ld bytes written, hz_ckpt_state_bytes %lld",
              hz_optstate_names[from], N, size, (long long)hz_ckpt_state_bytes(from, N));
        float *want_m = m2, *want_v = v2;
        decode(&src, want_m, want_v); /* what the file holds, in fp32 */
        for (int to = 0; to < HZ_OPTSTATE_MODE_N; to++) {
            hz_store dst;
            if (hz_store_alloc(&dst, bare_plan(to), NULL, NULL) != 0) return 2;
            char err[HZ_HF_ERR_BYTES] = "";
            hz_digest dr;
            hz_digest_init(&dr);
            f = fopen(path, "rb");
            int rc = hz_ckpt_state_read(&dst, f, from, &dr, err);
            int at_end = fgetc(f) == EOF;
            fclose(f);
            int lo_ok = memcmp(dst.lo, src.lo, N * 2) == 0, same = 1;
            if (to == from) {
                same = memcmp(dst.m, src.m, state_bytes(&src, HZ_ARR_M)) == 0 &&
                       memcmp(dst.v, src.v, state_bytes(&src, HZ_ARR_V)) == 0 &&
                       (to != HZ_OPTSTATE_INT8 ||
                        (memcmp(dst.ms, src.ms, state_bytes(&src, HZ_ARR_MS)) == 0 &&
                         memcmp(dst.vs, src.vs, state_bytes(&src, HZ_ARR_VS)) == 0));
            } else { /* the reference conversion: encode the decoded values */
                hz_store ref;
                if (hz_store_alloc(&ref, bare_plan(to), NULL, NULL) != 0) return 2;
                fill(&ref, want_m, want_v);
                same = memcmp(dst.m, ref.m, state_bytes(&ref, HZ_ARR_M)) == 0 &&
                       memcmp(dst.v, ref.v, state_bytes(&ref, HZ_ARR_V)) == 0 &&
                       (to != HZ_OPTSTATE_INT8 ||
                        (memcmp(dst.ms, ref.ms, state_bytes(&ref, HZ_ARR_MS)) == 0 &&
                         memcmp(dst.vs, ref.vs, state_bytes(&ref, HZ_ARR_VS)) == 0));
                hz_store_free(&ref);
            }
            CHECK(rc == 0 && at_end && lo_ok && same && hz_digest_final(&dr) == want_digest,
                  "%s -> %s: read %s (%s), lo %s, moments %s the reference conversion, digest "
                  "of the bytes read %s the writer's", hz_optstate_names[from],
                  hz_optstate_names[to], rc == 0 ? "ok" : "failed", err, lo_ok ? "equal" : "DIFFER",
                  same ? "equal to" : "DIFFER from", rc == 0 ? "equal to" : "?");
            hz_store_free(&dst);
        }
        /* a payload cut short is refused, into the same and into another mode */
        for (int to = from; to <= from + 1; to++) {
            hz_store dst;
            if (hz_store_alloc(&dst, bare_plan(to % HZ_OPTSTATE_MODE_N), NULL, NULL) != 0) return 2;
            char err[HZ_HF_ERR_BYTES] = "";
            hz_digest dr;
            hz_digest_init(&dr);
            f = fopen(path, "rb");
            FILE *cut = fopen(test_tmp("cut"), "wb");
            char *buf = malloc((size_t)size);
            size_t got = fread(buf, 1, (size_t)size - 5, f);
            fwrite(buf, 1, got, cut);
            fclose(cut);
            fclose(f);
            free(buf);
            f = fopen(test_tmp("cut"), "rb");
            int rc = hz_ckpt_state_read(&dst, f, from, &dr, err);
            fclose(f);
            CHECK(rc != 0 && strstr(err, "truncated"), "%s payload 5 bytes short, read as %s: "
                  "refused (%s)", hz_optstate_names[from],
                  hz_optstate_names[to % HZ_OPTSTATE_MODE_N], err);
            hz_store_free(&dst);
        }
        hz_store_free(&src);
    }

    /* an fp32 moment that is not finite cannot be converted */
    hz_store src, dst;
    if (hz_store_alloc(&src, bare_plan(HZ_OPTSTATE_FP32), NULL, NULL) != 0 ||
        hz_store_alloc(&dst, bare_plan(HZ_OPTSTATE_INT8), NULL, NULL) != 0)
        return 2;
    fill(&src, m, v);
    ((float *)src.v)[77777] = INFINITY;
    FILE *f = fopen(test_tmp("inf"), "wb");
    hz_ckpt_state_write(&src, NULL, fileno(f));
    fclose(f);
    f = fopen(test_tmp("inf"), "rb");
    char err[HZ_HF_ERR_BYTES] = "";
    hz_digest d;
    hz_digest_init(&d);
    int rc = hz_ckpt_state_read(&dst, f, HZ_OPTSTATE_FP32, &d, err);
    fclose(f);
    CHECK(rc != 0 && strstr(err, "not finite") && strstr(err, "optimizer_state: fp32"),
          "an inf fp32 moment read into int8: refused (%s)", err);
    hz_store_free(&src);
    hz_store_free(&dst);
    free(m);
    free(v);
    free(m2);
    free(v2);
    test_tmp_close();
    TEST_END();
}
