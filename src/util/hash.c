/*
 * xxh3 through libxxhash.
 */
#include "util/hash.h"

#include <string.h>
#include <xxhash.h>

uint64_t as_hash64(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
}

void as_hash128(const void *p, size_t n, uint64_t seed, unsigned char out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_withSeed(p, n, seed));
	memcpy(out, c.digest, 16);
}

int as_hasher_init(as_hasher *h)
{
	h->state = XXH3_createState();
	if (!h->state)
		return -1;
	XXH3_64bits_reset(h->state);
	return 0;
}

void as_hasher_update(as_hasher *h, const void *p, size_t n)
{
	XXH3_64bits_update(h->state, p, n);
}

uint64_t as_hasher_digest(const as_hasher *h)
{
	return XXH3_64bits_digest(h->state);
}

void as_hasher_free(as_hasher *h)
{
	if (h && h->state)
		XXH3_freeState(h->state);
	if (h)
		h->state = NULL;
}
