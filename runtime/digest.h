/* runtime/digest.h - the checkpoints' 64-bit digest of bytes and files (digest.c). */
#ifndef HZ_DIGEST_H
#define HZ_DIGEST_H
#include <stddef.h>
#include <stdint.h>

/* A 64-bit digest against accidental change, not against an adversary: four lanes each
 * take one 8-byte word per 32-byte block through xor, an odd multiply and a rotation, all
 * bijective, so changing any one block always changes the result; it runs at memory speed
 * where a byte-wise FNV-1a would take a minute per 60 GB of optimizer state. */
typedef struct hz_digest {
    uint64_t lane[4], bytes;
    unsigned char tail[32];
    size_t tail_n;
} hz_digest;

void hz_digest_init(hz_digest *d);
void hz_digest_update(hz_digest *d, const void *data, size_t n);
uint64_t hz_digest_final(hz_digest *d);

/* The chunked digest of a file, the one checkpoints record: the file is cut into chunks of
 * HZ_DIGEST_CHUNK bytes from its start (the last shorter), each chunk digested alone (so
 * several threads digest a file as they write or read it), and the result is the digest of
 * the byte count (u64 little-endian) followed by the N chunk digests (u64 each). */
#define HZ_DIGEST_CHUNK (8 << 20)
uint64_t hz_digest_chunked(int64_t bytes, const uint64_t *chunk_digest, int64_t n);
/* The digest of N bytes at once. */
uint64_t hz_digest_bytes(const void *data, size_t n);

#endif
