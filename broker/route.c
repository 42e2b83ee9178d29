/*
 * route.c: publishing and subscribing (see route.h).
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "bridge.h"
#include "broker.h"
#include "chan.h"
#include "interest.h"
#include "route.h"
#include "router.h"

enum route_check route_check(const struct frame *f, uint64_t max_payload,
			     uint64_t max_header_bytes, struct frame_bytes *key)
{
	const char *ch = (const char *)f->channel.p, *rt = (const char *)f->reply_to.p;

	if (!f->channel.set || chan_valid_name(ch, f->channel.len) < 0)
		return ROUTE_BAD_CHANNEL;
	if (chan_is_system(ch, f->channel.len))
		return ROUTE_SYSTEM_CHANNEL;
	if (f->reply_to.len && chan_valid_name(rt, f->reply_to.len) < 0)
		return ROUTE_BAD_REPLY;
	if (f->reply_to.len && chan_is_system(rt, f->reply_to.len))
		return ROUTE_SYSTEM_REPLY;
	if (f->payload.len > max_payload)
		return ROUTE_PAYLOAD_TOO_BIG;
	if (f->header_bytes > max_header_bytes)
		return ROUTE_HEADERS_TOO_BIG;
	if (f->nheaders_incomplete)
		return ROUTE_HEADER_INCOMPLETE;
	struct frame_header h;
	size_t pos = 0;
	while (frame_header_next(f, &pos, &h)) {
		int rc = frame_header_key_check(h.key, h.key_len);
		if (rc == FRAME_KEY_OK)
			continue;
		if (key)
			*key = (struct frame_bytes){h.key, h.key_len, 1};
		return rc == FRAME_KEY_RESERVED ? ROUTE_HEADER_KEY_RESERVED : ROUTE_HEADER_KEY_BAD;
	}
	return ROUTE_OK;
}

const uint8_t *route_body(struct broker *b, struct message *m, size_t *len)
{
	if (!m->body) {
		size_t n = frame_msg_size(m->f);
		if (buf_reserve(&b->scratch, n) < 0) {
			log_error(&b->log, "out of memory encoding a message of %zu bytes", n);
			return NULL;
		}
		uint8_t *p = buf_wptr(&b->scratch);
		m->len = frame_msg_encode(m->f, p);
		m->body = p;
	}
	*len = m->len;
	return m->body;
}

void route_after(struct message *m, struct route_after *a)
{
	if (a->stamp == m->stamp)
		return;
	a->stamp = m->stamp;
	a->next = m->after;
	m->after = a;
}

int route_serves_group(const struct message *m, const char *queue)
{
	if (!m->forwarded)
		return 1;
	size_t qlen = strlen(queue), pos = 0;
	struct frame_bytes g;
	while (frame_group_next(m->f, &pos, &g))
		if (g.len == qlen && memcmp(g.p, queue, qlen) == 0)
			return 1;
	return 0;
}

long route_publish(struct broker *b, struct message *m)
{
	struct sub **subs;

	m->stamp = ++b->route_stamp;
	m->body = NULL;
	m->len = 0;
	m->delivered = 0;
	m->after = NULL;
	long n = router_match_from(b->router, (const char *)m->f->channel.p, m->f->channel.len,
				   m->from, &subs);
	if (n < 0)
		return n;
	/* a subscriber closed on the way (a link whose socket failed while
	 * memory was made) keeps its subscriptions until the loops are
	 * over: subs[] points at them */
	b->routing++;
	for (long i = 0; i < n; i++) {
		struct sub *s = subs[i];
		/* a forwarded message serves only the groups it names: the
		 * publishing broker chose where each group is served */
		if (s->queue && m->forwarded && !route_serves_group(m, s->queue))
			continue;
		m->delivered += (size_t)s->ops->deliver(s, m);
	}
	for (struct route_after *a = m->after, *next; a; a = next) {
		next = a->next;
		a->fn(a, m);
	}
	if (--b->routing == 0)
		bridge_routed(b);
	return (long)m->delivered;
}

/* The count of s in its entry: a link's bit, or one more local one. */
static void route_count(struct interest_entry *e, const struct sub *s, int add)
{
	if (s->remote) {
		uint64_t bit = UINT64_C(1) << (s->remote - 1);
		if (add)
			e->from |= bit;
		else
			e->from &= ~bit;
	} else if (add) {
		e->local++;
	} else {
		e->local--;
	}
}

int route_sub_add(struct broker *b, struct sub *s)
{
	size_t qlen = s->queue ? strlen(s->queue) : 0;
	struct interest_entry *e =
		interest_get(b->interest, s->pattern, s->pattern_len, s->queue, qlen);
	if (!e)
		return -ENOMEM;
	if (router_add(b->router, s) < 0) {
		interest_gc(b->interest, e);
		return -ENOMEM;
	}
	s->entry = e;
	route_count(e, s, 1);
	bridge_interest(b, e);
	return 0;
}

void route_sub_remove(struct broker *b, struct sub *s)
{
	struct interest_entry *e = s->entry;

	router_remove(b->router, s);
	s->entry = NULL;
	route_count(e, s, 0);
	bridge_interest(b, e);
	interest_gc(b->interest, e);
}
