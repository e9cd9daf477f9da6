/* runtime/store.c - bf16 conversion, the split fp32 master (w, lo) and the host store.
 * Invariant: for every element, bits(master) = (w << 16) + lo exactly (mod 2^32), with w
 * the round-to-nearest-even bf16 of master (ties nudged by one ulp so lo fits int16). */
#include <stdlib.h>
#include <string.h>

#include "rt.h"

uint16_t hz_bf16_from_f32(float f)
{
    uint32_t u = hz_bits_inl(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    return hz_f32_bf16_inl(f);
}

float hz_f32_from_bf16(uint16_t b) { return hz_bf16_f32_inl(b); }

void hz_master_split(float master, uint16_t *w, int16_t *lo) { hz_split_inl(master, w, lo); }

float hz_master_join(uint16_t w, int16_t lo) { return hz_join_inl(w, lo); }

typedef struct store_array {
    hz_host_alloc_fn alloc;
    size_t bytes;
    void *ptr;
} store_array;

static void *alloc_array(void *arg)
{
    store_array *a = arg;
    a->ptr = a->alloc(a->bytes);
    return NULL;
}

/* The five arrays at once, one thread each: pinning tens of GiB is the start-up's longest
 * wait, and the allocator (zeroed memory, hz_host_alloc_fn) spends it per page. */
int hz_store_alloc(hz_store *s, const hz_plan *p, hz_host_alloc_fn alloc)
{
    memset(s, 0, sizeof(*s));
    s->n = p->host_store_n;
    s->grad_bf16 = p->host_grad_bf16;
    size_t n = (size_t)s->n;
    size_t gsize = s->grad_bf16 ? 2 : 4;
    store_array a[5] = {{alloc, n * 2, NULL}, {alloc, n * 2, NULL}, {alloc, n * 4, NULL},
                        {alloc, n * 4, NULL}, {alloc, n * gsize, NULL}};
    pthread_t tid[5];
    int started[5] = {0};
    for (int i = 0; i < 5; i++) started[i] = pthread_create(&tid[i], NULL, alloc_array, &a[i]) == 0;
    for (int i = 0; i < 5; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            alloc_array(&a[i]);
    }
    s->w = a[0].ptr;
    s->lo = a[1].ptr;
    s->m = a[2].ptr;
    s->v = a[3].ptr;
    s->g = a[4].ptr;
    if (!s->w || !s->lo || !s->m || !s->v || !s->g) return -1;
    s->bytes = (int64_t)(n * (2 + 2 + 4 + 4 + gsize));
    return 0;
}

void hz_store_free(hz_store *s, hz_host_free_fn release)
{
    release(s->w);
    release(s->lo);
    release(s->m);
    release(s->v);
    release(s->g);
    memset(s, 0, sizeof(*s));
}

float hz_store_master(const hz_store *s, int64_t i) { return hz_master_join(s->w[i], s->lo[i]); }

float hz_store_grad(const hz_store *s, int64_t i)
{
    return s->grad_bf16 ? hz_f32_from_bf16(((const uint16_t *)s->g)[i]) : ((const float *)s->g)[i];
}
