/* tests/test_store.c - bf16 rounding, the split fp32 master (w, lo), the AdamW step
 * against a scalar torch.optim.AdamW formula, the lr schedule, the thread pool and the host
 * store's measured bytes over arrays larger than one measurement chunk. */
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rt.h"
#include "test.h"

static uint64_t rng = 88172645463325252ull;
static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void sum_task(void *arg, int64_t b, int64_t e)
{
    int64_t *out = arg;
    for (int64_t i = b; i < e; i++) out[i] = i * 3;
}

/* A store of one streamed unit of N parameters (as train --probe makes one for its AdamW):
 * written, it measures all it backs; with 70 MiB of its m array given back to the kernel
 * (across the measurement's 64 MiB chunks: the arrays of 20M parameters span several), 70
 * MiB less. */
static void test_measured_bytes(void)
{
    const int64_t n = 20 << 20, gone = 70 << 20;
    hz_plan q;
    hz_unit one;
    hz_plan_one_unit(&q, &one, NULL, n);
    hz_store st;
    CHECK(hz_store_alloc(&st, &q, NULL, NULL) == 0, "a store of %lld parameters", (long long)n);
    memset(st.w, 1, (size_t)n * 2);
    memset(st.lo, 1, (size_t)n * 2);
    memset(st.m, 1, (size_t)n * 4);
    memset(st.v, 1, (size_t)n * 4);
    memset(st.g, 1, (size_t)n * 4);
    int64_t all = hz_store_measured_bytes(&st);
    CHECK(all == st.bytes, "written: measured %lld bytes, backed %lld", (long long)all,
          (long long)st.bytes);
    CHECK(((uintptr_t)st.m & 4095) == 0 && madvise(st.m, (size_t)gone, MADV_DONTNEED) == 0,
          "70 MiB of m given back");
    int64_t less = hz_store_measured_bytes(&st);
    CHECK(less == st.bytes - gone, "then measured %lld bytes, want %lld", (long long)less,
          (long long)(st.bytes - gone));
    hz_store_free(&st);
}

int main(void)
{
    test_measured_bytes();
    /* bf16 rounding: exact values, round to nearest even on ties, NaN stays NaN */
    CHECK(hz_bf16_from_f32(1.0f) == 0x3f80, "bf16(1.0) = 0x%04x", hz_bf16_from_f32(1.0f));
    CHECK(hz_bf16_from_f32(hz_float_inl(0x3f808000)) == 0x3f80, "tie rounds down to even");
    CHECK(hz_bf16_from_f32(hz_float_inl(0x3f818000)) == 0x3f82, "tie rounds up to even");
    CHECK(hz_bf16_from_f32(hz_float_inl(0x3f808001)) == 0x3f81, "above tie rounds up");
    CHECK(isnan(hz_f32_from_bf16(hz_bf16_from_f32(NAN))), "NaN stays NaN");

    /* the split master: exact round trip on random bit patterns and edge values */
    int64_t bad = 0, not_nearest = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = next_u32();
        if ((u & 0x7f800000u) == 0x7f800000u) continue; /* inf/NaN: not masters */
        float x = hz_float_inl(u), y;
        uint16_t w;
        int16_t lo;
        hz_master_split(x, &w, &lo);
        y = hz_master_join(w, lo);
        bad += hz_bits_inl(y) != u;
        float wf = hz_f32_from_bf16(w);
        not_nearest += fabsf(wf - x) > fabsf(hz_f32_from_bf16((uint16_t)(w + 1)) - x) &&
                       fabsf(wf - x) > fabsf(hz_f32_from_bf16((uint16_t)(w - 1)) - x);
    }
    CHECK(bad == 0, "split/join round trip of 2e6 random floats: %lld mismatches", (long long)bad);
    CHECK(not_nearest == 0, "w is a nearest bf16 of the master: %lld not", (long long)not_nearest);
    const float edges[] = {0.0f, -0.0f, 1.0f, -1.0f, FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX,
                           hz_float_inl(1), hz_float_inl(0x80000001), hz_float_inl(0x3f808000),
                           hz_float_inl(0x3f818000), hz_float_inl(0xbf808000), hz_float_inl(0x7f7f8000),
                           hz_float_inl(0x0000ffff), hz_float_inl(0x00008000)};
    int edge_bad = 0;
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        uint16_t w;
        int16_t lo;
        hz_master_split(edges[i], &w, &lo);
        edge_bad += hz_bits_inl(hz_master_join(w, lo)) != hz_bits_inl(edges[i]);
    }
    CHECK(edge_bad == 0, "split/join of %zu edge values (zeros, denormals, max, ties): %d wrong",
          sizeof edges / sizeof edges[0], edge_bad);

    /* updates far below one bf16 step accumulate in the master exactly as in fp32 */
    float ref = 1.0f;
    uint16_t w;
    int16_t lo;
    hz_master_split(1.0f, &w, &lo);
    for (int i = 0; i < 5000; i++) {
        ref -= 1e-5f;
        float m = hz_master_join(w, lo) - 1e-5f;
        hz_master_split(m, &w, &lo);
    }
    CHECK(hz_bits_inl(hz_master_join(w, lo)) == hz_bits_inl(ref),
          "5000 updates of -1e-5 (bf16 ulp at 1 is 7.8e-3): master %.9g fp32 %.9g",
          hz_master_join(w, lo), ref);
    CHECK(hz_f32_from_bf16(w) < 1.0f, "the working weight moved: w = %.6g", hz_f32_from_bf16(w));
    float plain_bf16 = 1.0f;
    for (int i = 0; i < 5000; i++)
        plain_bf16 = hz_f32_from_bf16(hz_bf16_from_f32(plain_bf16 - 1e-5f));
    CHECK(plain_bf16 == 1.0f, "a bf16-only master would not move: %.6g", plain_bf16);

    /* lr schedule */
    hz_optim o = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 0.1f, 10, 100};
    CHECK_CLOSE("lr at step 0 (warmup 1/10)", hz_lr_at(&o, 0), 1e-4, 1e-9, 1e-6);
    CHECK_CLOSE("lr at end of warmup", hz_lr_at(&o, 9), 1e-3, 1e-9, 1e-6);
    CHECK_CLOSE("lr half way through cosine", hz_lr_at(&o, 60), 0.55e-3, 1e-9, 1e-5);
    CHECK_CLOSE("lr after decay", hz_lr_at(&o, 500), 1e-4, 1e-9, 1e-5);

    /* thread pool covers [0, n) exactly once */
    hz_pool *pool = hz_pool_new(3);
    int64_t *out = calloc(1001, sizeof(int64_t));
    hz_pool_run(pool, sum_task, out, 1001);
    int64_t wrong = 0;
    for (int i = 0; i < 1001; i++) wrong += out[i] != i * 3;
    CHECK(wrong == 0, "pool of %d threads filled 1001 items, %lld wrong", hz_pool_threads(pool),
          (long long)wrong);
    free(out);
    hz_pool_free(pool);
    TEST_END();
}
