/*
 * sha256: the SHA-256 digest (FIPS 180-4), for provenance records (an
 * exported model names the file it came from by its digest). Streaming:
 * init, update with any number of byte runs, final.
 */
#ifndef DP_SHA256_H
#define DP_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct dp_sha256 {
    uint32_t h[8];
    uint64_t n_bytes;       /* message length so far */
    uint8_t block[64];      /* pending bytes */
    size_t n_block;
};

void dp_sha256_init(struct dp_sha256 *s);
void dp_sha256_update(struct dp_sha256 *s, const void *data, size_t n);
/* The 32-byte digest; the state is spent. */
void dp_sha256_final(struct dp_sha256 *s, uint8_t out[32]);
/* Digest of a buffer as 64 lowercase hex digits and a NUL. */
void dp_sha256_hex(const void *data, size_t n, char out[65]);

#endif
