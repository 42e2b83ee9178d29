/*
 * hash.h: keyed hashing for tables whose keys a peer chooses (the router's
 * tokens, a connection's subscription ids).  With an unkeyed hash a client
 * can pick keys that all land in one bucket and stall the broker's loop;
 * with a random key per process it cannot know which keys collide.
 * SipHash-1-3 (Aumasson and Bernstein), written from the paper.
 */
#ifndef IPCBUS_HASH_H
#define IPCBUS_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hash_key {
	uint64_t k0, k1;
};

/* A fresh random key (getrandom; the clock and pid if that fails). */
void hash_key_random(struct hash_key *k);

/* SipHash-1-3 of p[0..n) under k. */
uint64_t hash_bytes(const struct hash_key *k, const void *p, size_t n);

/* SipHash-1-3 of the 8 bytes of v (little-endian) under k. */
uint64_t hash_u64(const struct hash_key *k, uint64_t v);

#endif
