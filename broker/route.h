/*
 * route.h: the one way a message is published and the one way a
 * subscription is added or removed, whoever does it.
 *
 * A message comes from a client's PUB (handle.c), from a bridge link (a
 * peer broker forwarded it), later from a raw bridge or the broker itself.
 * route_publish() matches it against the router and hands it to each
 * matching subscription's delivery op (struct sub_ops): a client
 * connection, a bridge link, later a raw bridge.  A subscriber that wants
 * to see the whole message set before it acts (a link sends one copy of
 * a message, whatever number of its subscriptions matched) queues a
 * struct route_after on the message.
 *
 * route_sub_add()/route_sub_remove() index a subscription and keep the
 * interest table (interest.c) that bridges announce: they are told when a
 * (pattern, queue group) gains its first subscriber or loses its last.
 */
#ifndef IPCBUS_ROUTE_H
#define IPCBUS_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct broker;
struct sub;
struct message;

/* Called once per message, after every delivery op ran. */
struct route_after {
	void (*fn)(struct route_after *a, struct message *m);
	struct route_after *next;
	uint64_t stamp; /* the message it is queued on (message.stamp) */
};

struct message {
	/* channel, reply_to, payload, headers (a view: PUB or a forwarded MSG) */
	const struct frame *f;
	/* who it came from: never delivered back to it (a connection, a
	 * link); NULL: the broker itself */
	const void *from;
	/* a forwarded message: the publishing broker (origin.set), its
	 * number there, the links it crossed; the groups to serve are f's */
	struct frame_bytes origin;
	uint64_t seq, hops;
	int forwarded;
	/* set by route_publish */
	uint64_t stamp;                /* unique per routed message */
	const uint8_t *body;           /* the MSG body (route_body) */
	size_t len;
	size_t delivered;              /* delivery ops that took it */
	struct route_after *after;
};

/* What route_check() found wrong with a message to publish, in the order
 * it checks (docs/protocol.md, Errors): the first that fails. */
enum route_check {
	ROUTE_OK = 0,
	ROUTE_BAD_CHANNEL,       /* missing or invalid channel name */
	ROUTE_SYSTEM_CHANNEL,    /* a $ channel: the broker's own */
	ROUTE_BAD_REPLY,         /* an invalid reply_to */
	ROUTE_SYSTEM_REPLY,      /* a $ reply_to: nobody could answer there */
	ROUTE_PAYLOAD_TOO_BIG,   /* over max_payload */
	ROUTE_HEADERS_TOO_BIG,   /* over max_header_bytes */
	ROUTE_HEADER_INCOMPLETE, /* a header without a key or a value */
	ROUTE_HEADER_KEY_BAD,    /* an invalid key (*key is it) */
	ROUTE_HEADER_KEY_RESERVED, /* an ipcbus- key nobody but the broker sends */
};

/* Check what a message to publish carries, whoever sent it: a client's
 * PUB (handle.c answers with an ERR) and a peer broker's forwarded MSG
 * (bridge.c drops it) pass the same rules.  The fields of the frame type
 * are the caller's to check.  An empty reply_to is no reply_to.  On a bad
 * header key, *key (when not NULL) is set to it, a view into f. */
enum route_check route_check(const struct frame *f, uint64_t max_payload,
			     uint64_t max_header_bytes, struct frame_bytes *key);

/* Route m to every matching subscription.  The number of subscriptions
 * that took it (their deliver op returned 1), or -ENOMEM. */
long route_publish(struct broker *b, struct message *m);

/* The shared MSG body of m (channel, reply_to, headers, payload; no sid),
 * encoded at the first call for m.  NULL when out of memory. */
const uint8_t *route_body(struct broker *b, struct message *m, size_t *len);

/* Queue a on m (once per message). */
void route_after(struct message *m, struct route_after *a);

/* 1 when a forwarded message names queue group `queue` (it may be served
 * here); always 1 for a message published here. */
int route_serves_group(const struct message *m, const char *queue);

/* Index s (its pattern, queue and owner set) and count it in the interest
 * table.  0 or -ENOMEM (s is then not indexed). */
int route_sub_add(struct broker *b, struct sub *s);

/* Remove s from the index and the interest table (not freed). */
void route_sub_remove(struct broker *b, struct sub *s);

#endif
