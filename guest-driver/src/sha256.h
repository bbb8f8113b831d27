/* sha256: FIPS 180-4 SHA-256, for comparing a transferred file with the host's FILE_HASH. */
#ifndef VG_SHA256_H
#define VG_SHA256_H
#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32u

struct sha256 {
    uint32_t state[8];
    uint64_t total_bytes;
    uint8_t block[64];
    uint32_t block_used;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t bytes);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_BYTES]);

/* SHA-256 of the whole file behind fd, read with pread from offset 0. Returns 0 or -errno. */
int sha256_fd(int fd, uint8_t out[SHA256_BYTES]);

/* 64 lowercase hex digits and a NUL. */
void sha256_hex(const uint8_t digest[SHA256_BYTES], char out[2 * SHA256_BYTES + 1]);

#endif
