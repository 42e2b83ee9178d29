/*
 * idmap.c: the id -> pointer hash table (see idmap.h).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "idmap.h"

/* Fibonacci hashing: ids are mostly sequential, the multiply spreads them. */
static size_t idmap_home(const struct idmap *m, uint64_t key)
{
	return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (m->cap - 1);
}

void idmap_init(struct idmap *m)
{
	m->slots = NULL;
	m->cap = m->n = 0;
}

void idmap_fini(struct idmap *m)
{
	free(m->slots);
	idmap_init(m);
}

void *idmap_get(const struct idmap *m, uint64_t key)
{
	if (m->n == 0 || key == 0)
		return NULL;
	for (size_t i = idmap_home(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].key == key)
			return m->slots[i].val;
		if (m->slots[i].key == 0)
			return NULL;
	}
}

static void idmap_insert(struct idmap *m, uint64_t key, void *val)
{
	size_t i = idmap_home(m, key);
	while (m->slots[i].key != 0 && m->slots[i].key != key)
		i = (i + 1) & (m->cap - 1);
	if (m->slots[i].key == 0)
		m->n++;
	m->slots[i].key = key;
	m->slots[i].val = val;
}

static int idmap_grow(struct idmap *m)
{
	struct idmap old = *m;
	size_t cap = old.cap ? old.cap * 2 : 16;

	if (cap > SIZE_MAX / sizeof *m->slots)
		return -ENOMEM;
	m->slots = calloc(cap, sizeof *m->slots);
	if (!m->slots) {
		*m = old;
		return -ENOMEM;
	}
	m->cap = cap;
	m->n = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].key)
			idmap_insert(m, old.slots[i].key, old.slots[i].val);
	free(old.slots);
	return 0;
}

int idmap_put(struct idmap *m, uint64_t key, void *val)
{
	/* keep the load at most 1/2: probes stay short */
	if ((m->n + 1) * 2 > m->cap) {
		int rc = idmap_grow(m);
		if (rc < 0)
			return rc;
	}
	idmap_insert(m, key, val);
	return 0;
}

void *idmap_del(struct idmap *m, uint64_t key)
{
	size_t mask = m->cap - 1, i;

	if (m->n == 0 || key == 0)
		return NULL;
	for (i = idmap_home(m, key); m->slots[i].key != key; i = (i + 1) & mask)
		if (m->slots[i].key == 0)
			return NULL;
	void *val = m->slots[i].val;
	/* backward shift: move each following entry of the run into the hole
	 * unless its home lies cyclically in (hole, entry] */
	for (size_t j = (i + 1) & mask; m->slots[j].key != 0; j = (j + 1) & mask) {
		size_t h = idmap_home(m, m->slots[j].key);
		int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
		if (stays)
			continue;
		m->slots[i] = m->slots[j];
		i = j;
	}
	m->slots[i].key = 0;
	m->slots[i].val = NULL;
	m->n--;
	return val;
}

void *idmap_next(const struct idmap *m, size_t *pos, uint64_t *key)
{
	for (; *pos < m->cap; (*pos)++) {
		if (m->slots[*pos].key) {
			if (key)
				*key = m->slots[*pos].key;
			return m->slots[(*pos)++].val;
		}
	}
	return NULL;
}
