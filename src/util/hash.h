/*
 * 64-bit content hashes (xxh3) for `_atomsync_hash` and fingerprints.
 */
#ifndef AS_UTIL_HASH_H
#define AS_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t as_hash64(const void *p, size_t n);
/* 128-bit xxh3 with a seed, into out[16]: identifies a record's exact
 * bytes (collisions are out of reach where 64 bits are not). */
void as_hash128(const void *p, size_t n, uint64_t seed, unsigned char out[16]);

typedef struct as_hasher {
	void *state; /* XXH3_state_t */
} as_hasher;

int as_hasher_init(as_hasher *h);
void as_hasher_update(as_hasher *h, const void *p, size_t n);
uint64_t as_hasher_digest(const as_hasher *h);
void as_hasher_free(as_hasher *h);

#endif
