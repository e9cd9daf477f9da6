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
/* Digest and size of the file NAME in DIRFD; 0, or -1 with errno. */
int hz_file_digest(int dirfd, const char *name, int64_t *bytes, uint64_t *out);

#endif
