/*
 * conn_sub.c: a client connection's subscriptions, by the sid the client
 * chose (a keyed open-addressing table: the client picks the keys), and
 * how the router delivers to one (conn_sub_ops).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "broker.h"
#include "conn.h"
#include "hash.h"
#include "route.h"

static int conn_sub_deliver(struct sub *s, struct message *m)
{
	struct conn *c = s->owner;
	size_t len;
	const uint8_t *body = route_body(c->b, m, &len);
	if (body)
		conn_deliver(c, s->sid, body, len);
	return 1;
}

const struct sub_ops conn_sub_ops = {conn_sub_deliver, NULL};

void conn_sub_free(struct sub *s)
{
	free(s->pattern);
	free(s->queue);
	free(s);
}

void conn_sub_clear(struct conn *c)
{
	for (size_t i = 0; i < c->subs_cap; i++) {
		struct sub *s = c->subs[i];
		if (s && s != (struct sub *)c) {
			route_sub_remove(c->b, s);
			conn_sub_free(s);
			c->subs[i] = NULL;
		}
	}
	c->nsubs = c->subs_used = 0;
}

/* sid map: open addressing, linear probing, tombstones = (struct sub *)c */

/* Keyed: clients choose their sids, and with a known hash they could make
 * every probe walk one long cluster. */
static size_t conn_sid_hash(const struct conn *c, uint64_t sid)
{
	return (size_t)hash_u64(&c->b->hash_key, sid);
}

struct sub *conn_sub_find(struct conn *c, uint64_t sid)
{
	if (!c->subs_cap)
		return NULL;
	size_t mask = c->subs_cap - 1;
	for (size_t i = conn_sid_hash(c, sid) & mask;; i = (i + 1) & mask) {
		struct sub *s = c->subs[i];
		if (!s)
			return NULL;
		if (s != (struct sub *)c && s->sid == sid)
			return s;
	}
}

/* Rehash into a table at most half full of live entries (drops tombstones). */
static int conn_sub_rehash(struct conn *c)
{
	size_t cap = 8;
	while (cap < (c->nsubs + 1) * 4)
		cap *= 2;
	struct sub **t = calloc(cap, sizeof *t);
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < c->subs_cap; i++) {
		struct sub *s = c->subs[i];
		if (!s || s == (struct sub *)c)
			continue;
		size_t j = conn_sid_hash(c, s->sid) & (cap - 1);
		while (t[j])
			j = (j + 1) & (cap - 1);
		t[j] = s;
	}
	free(c->subs);
	c->subs = t;
	c->subs_cap = cap;
	c->subs_used = c->nsubs;
	return 0;
}

int conn_sub_add(struct conn *c, struct sub *s)
{
	/* live entries and tombstones together stay under half the table, so
	 * every probe sequence meets an empty slot */
	if ((c->subs_used + 1) * 2 > c->subs_cap) {
		int rc = conn_sub_rehash(c);
		if (rc < 0)
			return rc;
	}
	size_t mask = c->subs_cap - 1;
	size_t i = conn_sid_hash(c, s->sid) & mask;
	while (c->subs[i] && c->subs[i] != (struct sub *)c)
		i = (i + 1) & mask;
	if (!c->subs[i])
		c->subs_used++;
	c->subs[i] = s;
	c->nsubs++;
	return 0;
}

void conn_sub_del(struct conn *c, struct sub *s)
{
	size_t mask = c->subs_cap - 1;
	for (size_t i = conn_sid_hash(c, s->sid) & mask; c->subs[i]; i = (i + 1) & mask) {
		if (c->subs[i] == s) {
			c->subs[i] = (struct sub *)c; /* tombstone */
			c->nsubs--;
			return;
		}
	}
}
