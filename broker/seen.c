/*
 * seen.c: duplicate detection for forwarded messages (see seen.h).  A
 * chained hash table of origins with an LRU list.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "seen.h"

#define SEEN_BUCKETS 2048 /* a power of two, twice SEEN_ORIGINS */
#define SEEN_WORDS (SEEN_WINDOW / 64)

struct seen_origin {
	uint8_t id[SEEN_ID_MAX];
	size_t len;
	uint32_t hash;
	uint64_t max;              /* the highest seq seen */
	uint64_t bits[SEEN_WORDS]; /* bit (max - seq) % SEEN_WINDOW: seq seen */
	struct seen_origin *hnext;
	struct seen_origin *newer, *older;
};

struct seen {
	struct hash_key key;
	struct seen_origin *tab[SEEN_BUCKETS];
	struct seen_origin *newest, *oldest;
	size_t n;
};

struct seen *seen_new(void)
{
	struct seen *s = calloc(1, sizeof *s);
	if (s)
		hash_key_random(&s->key);
	return s;
}

void seen_free(struct seen *s)
{
	if (!s)
		return;
	for (struct seen_origin *o = s->newest, *next; o; o = next) {
		next = o->older;
		free(o);
	}
	free(s);
}

size_t seen_count(const struct seen *s)
{
	return s->n;
}

static void seen_unlink(struct seen *s, struct seen_origin *o)
{
	if (o->newer)
		o->newer->older = o->older;
	else
		s->newest = o->older;
	if (o->older)
		o->older->newer = o->newer;
	else
		s->oldest = o->newer;
	o->newer = o->older = NULL;
}

static void seen_push(struct seen *s, struct seen_origin *o)
{
	o->older = s->newest;
	o->newer = NULL;
	if (s->newest)
		s->newest->newer = o;
	else
		s->oldest = o;
	s->newest = o;
}

static void seen_forget(struct seen *s, struct seen_origin *o)
{
	struct seen_origin **pp = &s->tab[o->hash & (SEEN_BUCKETS - 1)];
	while (*pp != o)
		pp = &(*pp)->hnext;
	*pp = o->hnext;
	seen_unlink(s, o);
	s->n--;
	free(o);
}

static int seen_bit(const struct seen_origin *o, uint64_t seq)
{
	uint64_t k = seq % SEEN_WINDOW;
	return (int)(o->bits[k / 64] >> (k % 64) & 1);
}

static void seen_set(struct seen_origin *o, uint64_t seq, int on)
{
	uint64_t k = seq % SEEN_WINDOW;
	if (on)
		o->bits[k / 64] |= UINT64_C(1) << (k % 64);
	else
		o->bits[k / 64] &= ~(UINT64_C(1) << (k % 64));
}

int seen_check(struct seen *s, const uint8_t *origin, size_t len, uint64_t seq)
{
	if (len == 0 || len > SEEN_ID_MAX || seq == 0)
		return 0;
	uint32_t h = (uint32_t)hash_bytes(&s->key, origin, len);
	struct seen_origin *o = s->tab[h & (SEEN_BUCKETS - 1)];
	while (o && !(o->hash == h && o->len == len && memcmp(o->id, origin, len) == 0))
		o = o->hnext;
	if (!o) {
		if (s->n >= SEEN_ORIGINS)
			seen_forget(s, s->oldest);
		o = calloc(1, sizeof *o);
		if (!o)
			return -ENOMEM;
		memcpy(o->id, origin, len);
		o->len = len;
		o->hash = h;
		o->hnext = s->tab[h & (SEEN_BUCKETS - 1)];
		s->tab[h & (SEEN_BUCKETS - 1)] = o;
		s->n++;
		o->max = seq;
		seen_set(o, seq, 1);
		seen_push(s, o);
		return 1;
	}
	seen_unlink(s, o);
	seen_push(s, o);
	if (seq > o->max) {
		/* slide: clear the bits of the numbers skipped */
		uint64_t gap = seq - o->max;
		if (gap >= SEEN_WINDOW)
			memset(o->bits, 0, sizeof o->bits);
		else
			for (uint64_t q = o->max + 1; q < seq; q++)
				seen_set(o, q, 0);
		o->max = seq;
		seen_set(o, seq, 1);
		return 1;
	}
	if (o->max - seq >= SEEN_WINDOW || seen_bit(o, seq))
		return 0;
	seen_set(o, seq, 1);
	return 1;
}
