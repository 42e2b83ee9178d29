/*
 * interest.h: what this broker as a whole is subscribed to, as bridges
 * announce it: one entry per (pattern, queue group), counting the local
 * subscriptions (clients, raw bridges) and the bridge links that
 * announced it.
 *
 * A link is told of an entry when someone other than that link itself
 * wants it (split horizon over the spanning tree of links, bridge.c), so
 * an entry is exact: a broker never announces a pattern nobody has.
 * Links are numbered by slot (0..INTEREST_LINKS-1), bits in `from` and
 * `announced`.
 */
#ifndef IPCBUS_INTEREST_H
#define IPCBUS_INTEREST_H

#include <stddef.h>
#include <stdint.h>

#define INTEREST_LINKS 64

struct interest_entry {
	uint64_t id;         /* the sid it is announced with (never 0) */
	char *pattern;       /* NUL-terminated */
	size_t plen;
	char *queue;         /* NULL: no queue group */
	size_t qlen;
	size_t local;        /* subscriptions of this broker's own */
	uint64_t from;       /* links that announced it */
	uint64_t announced;  /* links it is announced to */
	unsigned pinned;     /* held by a caller: interest_gc leaves it */
	uint32_t hash;
	struct interest_entry *hnext;       /* hash chain */
	struct interest_entry *next, *prev; /* every entry, oldest first */
};

struct interest;

struct interest *interest_new(void);
void interest_free(struct interest *t);

/* The entry for (pattern, queue), made when missing (nothing counted
 * yet).  NULL when out of memory. */
struct interest_entry *interest_get(struct interest *t, const char *pattern, size_t plen,
				    const char *queue, size_t qlen);

/* Free e if nothing counts it, no link was told of it and nobody pinned
 * it (a caller that tells links of e pins it: a link closed on the way
 * forgets what it was told, and that must not free e under the caller). */
void interest_gc(struct interest *t, struct interest_entry *e);

/* Every entry, oldest first: interest_first(), then e->next. */
struct interest_entry *interest_first(const struct interest *t);
size_t interest_count(const struct interest *t);

/* 1 when someone but link `slot` wants e (slot -1: anyone). */
static inline int interest_wanted(const struct interest_entry *e, int slot)
{
	uint64_t others = slot < 0 ? e->from : e->from & ~(UINT64_C(1) << slot);
	return e->local > 0 || others != 0;
}

#endif
