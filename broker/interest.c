/*
 * interest.c: the interest table (see interest.h): a chained hash table
 * keyed (SipHash, random key: clients choose the patterns) by pattern and
 * queue group, with a list of every entry for announcing it all to a link
 * that comes up.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "interest.h"

struct interest {
	struct hash_key key;
	struct interest_entry **tab;
	size_t n, cap;
	struct interest_entry *head, *tail;
	uint64_t next_id;
};

struct interest *interest_new(void)
{
	struct interest *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	hash_key_random(&t->key);
	t->next_id = 1;
	return t;
}

static void interest_entry_free(struct interest_entry *e)
{
	free(e->pattern);
	free(e->queue);
	free(e);
}

void interest_free(struct interest *t)
{
	if (!t)
		return;
	for (struct interest_entry *e = t->head, *next; e; e = next) {
		next = e->next;
		interest_entry_free(e);
	}
	free(t->tab);
	free(t);
}

static uint32_t interest_hash(const struct interest *t, const char *p, size_t plen,
			      const char *q, size_t qlen)
{
	/* the pattern, a byte no pattern holds, the queue */
	uint64_t h = hash_bytes(&t->key, p, plen);
	if (q)
		h ^= hash_bytes(&t->key, q, qlen) * 0x9e3779b97f4a7c15ULL + 1;
	return (uint32_t)(h ^ h >> 32);
}

static int interest_grow(struct interest *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct interest_entry **tab = calloc(cap, sizeof *tab);
	if (!tab)
		return -1;
	for (struct interest_entry *e = t->head; e; e = e->next) {
		e->hnext = tab[e->hash & (cap - 1)];
		tab[e->hash & (cap - 1)] = e;
	}
	free(t->tab);
	t->tab = tab;
	t->cap = cap;
	return 0;
}

struct interest_entry *interest_get(struct interest *t, const char *pattern, size_t plen,
				    const char *queue, size_t qlen)
{
	if (queue && !qlen)
		queue = NULL;
	uint32_t h = interest_hash(t, pattern, plen, queue, qlen);
	if (t->cap) {
		for (struct interest_entry *e = t->tab[h & (t->cap - 1)]; e; e = e->hnext)
			if (e->hash == h && e->plen == plen && memcmp(e->pattern, pattern, plen) == 0 &&
			    (queue ? e->queue && e->qlen == qlen && memcmp(e->queue, queue, qlen) == 0
				   : !e->queue))
				return e;
	}
	if (t->n + 1 > t->cap / 2 && interest_grow(t) < 0)
		return NULL;
	struct interest_entry *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	e->pattern = malloc(plen + 1);
	e->queue = queue ? malloc(qlen + 1) : NULL;
	if (!e->pattern || (queue && !e->queue)) {
		interest_entry_free(e);
		return NULL;
	}
	memcpy(e->pattern, pattern, plen);
	e->pattern[plen] = 0;
	e->plen = plen;
	if (queue) {
		memcpy(e->queue, queue, qlen);
		e->queue[qlen] = 0;
		e->qlen = qlen;
	}
	e->id = t->next_id++;
	e->hash = h;
	e->hnext = t->tab[h & (t->cap - 1)];
	t->tab[h & (t->cap - 1)] = e;
	e->prev = t->tail;
	if (t->tail)
		t->tail->next = e;
	else
		t->head = e;
	t->tail = e;
	t->n++;
	return e;
}

void interest_gc(struct interest *t, struct interest_entry *e)
{
	if (e->local || e->from || e->announced || e->pinned)
		return;
	struct interest_entry **pp = &t->tab[e->hash & (t->cap - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	t->n--;
	interest_entry_free(e);
}

struct interest_entry *interest_first(const struct interest *t)
{
	return t->head;
}

size_t interest_count(const struct interest *t)
{
	return t->n;
}
