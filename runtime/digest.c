/* runtime/digest.c - the 64-bit digest the checkpoints use (contract in digest.h). */
#include "digest.h"

#include <string.h>

#define DIGEST_PRIME 0x100000001b3ull

void hz_digest_init(hz_digest *d)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < 4; i++)
        d->lane[i] = 0xcbf29ce484222325ull + (uint64_t)i * 0x9e3779b97f4a7c15ull;
}

static void digest_block(hz_digest *d, const unsigned char *b)
{
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, b + 8 * i, 8);
        uint64_t h = (d->lane[i] ^ w) * DIGEST_PRIME;
        d->lane[i] = h << 31 | h >> 33;
    }
}

void hz_digest_update(hz_digest *d, const void *data, size_t n)
{
    const unsigned char *p = data;
    d->bytes += n;
    if (d->tail_n) {
        size_t k = 32 - d->tail_n < n ? 32 - d->tail_n : n;
        memcpy(d->tail + d->tail_n, p, k);
        d->tail_n += k;
        p += k;
        n -= k;
        if (d->tail_n < 32) return;
        digest_block(d, d->tail);
        d->tail_n = 0;
    }
    for (; n >= 32; p += 32, n -= 32) digest_block(d, p);
    memcpy(d->tail, p, n);
    d->tail_n = n;
}

static uint64_t mix64(uint64_t x)
{
    x = (x ^ x >> 30) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ x >> 27) * 0x94d049bb133111ebull;
    return x ^ x >> 31;
}

uint64_t hz_digest_final(hz_digest *d)
{
    if (d->tail_n) {
        memset(d->tail + d->tail_n, 0, 32 - d->tail_n);
        digest_block(d, d->tail);
    }
    uint64_t h = mix64(d->bytes);
    for (int i = 0; i < 4; i++) h = (h ^ mix64(d->lane[i])) * DIGEST_PRIME;
    return mix64(h);
}

uint64_t hz_digest_bytes(const void *data, size_t n)
{
    hz_digest d;
    hz_digest_init(&d);
    hz_digest_update(&d, data, n);
    return hz_digest_final(&d);
}

uint64_t hz_digest_chunked(int64_t bytes, const uint64_t *chunk_digest, int64_t n)
{
    hz_digest d;
    unsigned char le[8];
    hz_digest_init(&d);
    for (int b = 0; b < 8; b++) le[b] = (unsigned char)((uint64_t)bytes >> (8 * b));
    hz_digest_update(&d, le, 8);
    for (int64_t k = 0; k < n; k++) {
        for (int b = 0; b < 8; b++) le[b] = (unsigned char)(chunk_digest[k] >> (8 * b));
        hz_digest_update(&d, le, 8);
    }
    return hz_digest_final(&d);
}
