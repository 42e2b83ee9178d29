/*
 * bridge.h: links between brokers (docs/design.md, Bridges).
 *
 * A link is a connection (struct conn, any stream transport) that a peer
 * broker dialed (HELLO with `bridge`) or that this broker dialed for a
 * `bridge` line.  Over it go the spanning tree (BRIDGE frames), interest
 * (SUB/UNSUB of the interest table's entries) and forwarded messages (MSG
 * with origin, seq, hops and queue groups).  A link's subscriptions are
 * router subscriptions of their own kind (struct sub with remote set), so
 * the router and route_publish() do not care which kind they deliver to.
 */
#ifndef IPCBUS_BRIDGE_H
#define IPCBUS_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

struct broker;
struct conn;
struct frame;
struct interest_entry;

/* At most this many links crossed by a message, and the tree's diameter. */
#define BRIDGE_MAX_HOPS 32
/* Redialing a bridge line: from this, doubling, up to the max (jittered). */
#define BRIDGE_BACKOFF_MIN_MS 100
#define BRIDGE_BACKOFF_MAX_MS 5000

/* Set up the bridge lines of the configuration and start dialing.  0 or a
 * negative code after logging why. */
int bridge_init(struct broker *b);
void bridge_fini(struct broker *b);

/* The counts of e changed (route.c): announce or withdraw it on each
 * link where that changes what the peer should know. */
void bridge_interest(struct broker *b, struct interest_entry *e);

/* A HELLO with `bridge` (the peer's server id): may c be a link?  0 (c is
 * a link once welcomed: bridge_welcomed), or -1 with the ERR's code and
 * text for the peer in *code, why. */
int bridge_hello(struct conn *c, const uint8_t *peer, size_t len, int *code, char *why,
		 size_t n);

/* The WELCOME for a link accepted with bridge_hello() is queued. */
void bridge_welcomed(struct conn *c);

/* A frame on a link's connection (c->link set). */
void bridge_frame(struct conn *c, const struct frame *f);

/* c, a link's connection, is closing / being freed. */
void bridge_conn_closed(struct conn *c, const char *why);
void bridge_conn_gone(struct conn *c);

/* route_publish() is done: take down the links that closed during it. */
void bridge_routed(struct broker *b);

/* The USR1 status: one line per link. */
void bridge_status(struct broker *b);

#endif
