/*
 * idmap.h: a hash table from non-zero 64-bit ids to pointers.
 *
 * Subscriptions (by sid) and requests in flight (by frame id) are looked up
 * once per received message, so this is open addressing with linear probing
 * over one array: one multiply and usually one cache line per lookup.
 * Deletion shifts the following entries back, so there are no tombstones
 * and a long-lived connection's table does not degrade.
 */
#ifndef IPCBUS_IDMAP_H
#define IPCBUS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_slot {
	uint64_t key; /* 0: empty */
	void *val;
};

struct idmap {
	struct idmap_slot *slots;
	size_t cap; /* a power of two, or 0 */
	size_t n;
};

/* Empty table; allocates nothing. */
void idmap_init(struct idmap *m);

/* Free the table (not the values); empty and usable again. */
void idmap_fini(struct idmap *m);

/* The value of key, or NULL. */
void *idmap_get(const struct idmap *m, uint64_t key);

/* Set key (non-zero) to val (non-NULL), replacing any value.  0 or -ENOMEM
 * (then nothing changed). */
int idmap_put(struct idmap *m, uint64_t key, void *val);

/* Remove key; returns its value, or NULL when absent. */
void *idmap_del(struct idmap *m, uint64_t key);

/* Iterate: *pos starts at 0; returns the next value (and *key when not
 * NULL), or NULL at the end.  The table must not change meanwhile. */
void *idmap_next(const struct idmap *m, size_t *pos, uint64_t *key);

static inline size_t idmap_count(const struct idmap *m) { return m->n; }

#endif
