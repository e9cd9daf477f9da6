/* runtime/init.c - the random init of the host store: matrices N(0, 0.02), norm weights 1
 * (0 for Gemma 3's (1 + w) norms), biases 0, written as split masters (w, lo). Every value
 * is a function of the seed and the element's store index alone, so the store does not
 * depend on the thread count or on how the index space is cut into chunks. The normal
 * generator (its definition is at hz_init_normal in rt.h) runs 32 lanes at once, compiled
 * for AVX-512, AVX2 and plain x86-64. */
#include <stdlib.h>

#include "init_math.h"
#include "rt.h"

#define GAMMA 0x9e3779b97f4a7c15ull /* splitmix64's Weyl increment */
#define LANES 32                    /* pairs per group: a group is 2 * LANES elements */
#define GROUP (2 * LANES)
#define BLOCK_GROUPS 32             /* groups generated at once into a stack buffer */

/* splitmix64's output function */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t key_of(uint64_t seed) { return mix64(seed + GAMMA); }

/* Box-Muller on one pair's 64 random bits: *c = r cos(theta), *s = r sin(theta). */
static inline void pair_normals(uint64_t h, float *c, float *s)
{
    float u1 = ((float)(int32_t)(h >> 33) + 0.5f) * 0x1p-31f; /* (0, 1] */
    float r = __builtin_sqrtf(-2.0f * hz_init_logf(u1));
    float cs, sn;
    hz_init_sincos_turn((int32_t)((uint32_t)h >> 8), &cs, &sn);
    *c = r * cs;
    *s = r * sn;
}

float hz_init_normal(uint64_t seed, int64_t i)
{
    int64_t g = i / GROUP, j = i % GROUP;
    uint64_t k = (uint64_t)g * LANES + (uint64_t)(j % LANES);
    float c, s;
    pair_normals(mix64(key_of(seed) + (k + 1) * GAMMA), &c, &s);
    return j < LANES ? c : s;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define INIT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define INIT_CLONES
#endif

/* N(0, 0.02) split masters for store elements [lo_i, hi_i), which lie in at most
 * BLOCK_GROUPS groups, into W and LO that hold element BASE first. Branch-free lane loops;
 * a partial group at either end is generated whole and only its part in range is written. */
INIT_CLONES
static void normal_block(uint16_t *restrict w, int16_t *restrict lo, int64_t base, uint64_t key,
                         int64_t lo_i, int64_t hi_i)
{
    float buf[BLOCK_GROUPS * GROUP];
    int64_t g0 = lo_i / GROUP, groups = (hi_i - 1) / GROUP - g0 + 1;
    for (int64_t g = 0; g < groups; g++) {
        uint64_t state = key + (uint64_t)(g0 + g) * LANES * GAMMA;
        float *out = buf + g * GROUP;
        for (int j = 0; j < LANES; j++)
            pair_normals(mix64(state + (uint64_t)(j + 1) * GAMMA), &out[j], &out[LANES + j]);
    }
    const int64_t at = g0 * GROUP;
    for (int64_t i = lo_i; i < hi_i; i++)
        hz_split_inl(0.02f * buf[i - at], &w[i - base], &lo[i - base]);
}

static void const_range(uint16_t *w, int16_t *lo, int64_t base, float x, int64_t b, int64_t e)
{
    uint16_t cw;
    int16_t clo;
    hz_master_split(x, &cw, &clo);
    for (int64_t i = b; i < e; i++) {
        w[i - base] = cw;
        lo[i - base] = clo;
    }
}

enum { INIT_NORMAL, INIT_ONE, INIT_ZERO };

/* A norm is the identity at start: weight 1, or 0 where it multiplies by (1 + w) (Gemma 3,
 * whose transformers init zeroes them). */
static int rule_of(int kind, const hz_dims *d)
{
    if (kind == HZ_ATTN_NORM || kind == HZ_MLP_NORM || kind == HZ_FINAL_NORM || kind == HZ_Q_NORM ||
        kind == HZ_K_NORM || kind == HZ_ATTN_POST_NORM || kind == HZ_MLP_POST_NORM)
        return d->norm_offset != 0.0f ? INIT_ZERO : INIT_ONE;
    if (kind == HZ_BQKV) return INIT_ZERO;
    return INIT_NORMAL;
}

/* Elements [BEGIN, END) into W and LO, which hold element BASE first. */
static void init_range_at(uint16_t *w, int16_t *lo, int64_t base, const hz_plan *p,
                          uint64_t seed, int64_t begin, int64_t end)
{
    uint64_t key = key_of(seed);
    for (int t = 0; t < p->tensor_n; t++) {
        const hz_tensor *x = &p->tensors[t];
        if (x->kind == HZ_LM_HEAD && p->dims.tied) continue; /* the embedding's store */
        int64_t b = x->host_n > begin ? x->host_n : begin;
        int64_t e = x->host_n + x->rows * x->cols < end ? x->host_n + x->rows * x->cols : end;
        if (b >= e) continue;
        int rule = rule_of(x->kind, &p->dims);
        if (rule != INIT_NORMAL) {
            const_range(w, lo, base, rule == INIT_ONE ? 1.0f : 0.0f, b, e);
            continue;
        }
        /* blocks aligned on BLOCK_GROUPS groups of the store's index space */
        const int64_t block = (int64_t)BLOCK_GROUPS * GROUP;
        for (int64_t at = b; at < e;) {
            int64_t next = (at / block + 1) * block;
            if (next > e) next = e;
            normal_block(w, lo, base, key, at, next);
            at = next;
        }
    }
}

void hz_store_init_range(hz_store *s, const hz_plan *p, uint64_t seed, int64_t begin,
                         int64_t end)
{
    init_range_at(s->w, s->lo, 0, p, seed, begin, end);
}

typedef struct init_job {
    uint16_t *w;
    int16_t *lo;
    int64_t first;       /* the window's first element: w[0], lo[0] */
    const hz_plan *p;
    uint64_t seed;
} init_job;

static void init_task(void *arg, int64_t begin, int64_t end)
{
    const init_job *j = arg;
    init_range_at(j->w, j->lo, j->first, j->p, j->seed, j->first + begin, j->first + end);
}

typedef struct init_pass {
    const hz_plan *p;
    uint64_t seed;
    hz_pool *pool;
} init_pass;

static int init_window(void *arg, int64_t first, int64_t n, void *const *ptr)
{
    const init_pass *ip = arg;
    init_job j = {ptr[HZ_ARR_W], ptr[HZ_ARR_LO], first, ip->p, ip->seed};
    if (ip->pool)
        hz_pool_run(ip->pool, init_task, &j, n);
    else
        init_task(&j, 0, n);
    return 0;
}

/* The whole store as one index space, window by window (a streamed run is one window), one
 * contiguous chunk per thread: the cost per element is the same in every matrix, so equal
 * chunks take equal time. */
void hz_store_init(hz_store *s, const hz_plan *p, uint64_t seed, hz_pool *pool)
{
    init_pass ip = {p, seed, pool};
    hz_store_pass(s, HZ_ARR_BIT(HZ_ARR_W) | HZ_ARR_BIT(HZ_ARR_LO), 1, init_window, &ip);
}
