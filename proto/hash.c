/*
 * hash.c: SipHash-1-3 (see hash.h).
 */
#include <config.h>

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"

#define HASH_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define HASH_ROUND(v0, v1, v2, v3)           \
	do {                                 \
		v0 += v1;                    \
		v1 = HASH_ROTL(v1, 13);      \
		v1 ^= v0;                    \
		v0 = HASH_ROTL(v0, 32);      \
		v2 += v3;                    \
		v3 = HASH_ROTL(v3, 16);      \
		v3 ^= v2;                    \
		v0 += v3;                    \
		v3 = HASH_ROTL(v3, 21);      \
		v3 ^= v0;                    \
		v2 += v1;                    \
		v1 = HASH_ROTL(v1, 17);      \
		v1 ^= v2;                    \
		v2 = HASH_ROTL(v2, 32);      \
	} while (0)

void hash_key_random(struct hash_key *k)
{
	if (getrandom(k, sizeof *k, 0) == (ssize_t)sizeof *k)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	k->k0 = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	k->k1 = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4fULL ^ (uint64_t)(uintptr_t)k;
}

static uint64_t hash_le64(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint64_t hash_bytes(const struct hash_key *k, const void *data, size_t n)
{
	const uint8_t *p = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k->k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k->k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k->k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k->k1;
	uint64_t b = (uint64_t)n << 56;
	size_t full = n & ~(size_t)7;

	for (size_t i = 0; i < full; i += 8) {
		uint64_t m = hash_le64(p + i, 8);
		v3 ^= m;
		HASH_ROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	b |= hash_le64(p + full, n - full);
	v3 ^= b;
	HASH_ROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	HASH_ROUND(v0, v1, v2, v3);
	HASH_ROUND(v0, v1, v2, v3);
	HASH_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t hash_u64(const struct hash_key *k, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return hash_bytes(k, b, sizeof b);
}
