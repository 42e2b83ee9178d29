/*
 * dgram.c: the session rules of a datagram transport (udp://), on top of
 * conn.c's session (docs/protocol.md, "UDP").
 *
 * A datagram can be lost, and UDP says nothing about it, so whatever the
 * session waits for is sent again until its answer comes:
 *   - HELLO: the broker answers a stranger only with ERR E_COOKIE carrying
 *     a cookie (the address must show that it receives there), so HELLO
 *     goes again with the cookie, and that E_COOKIE is a step of
 *     connecting, not a closing error.  A HELLO without answer goes again
 *     after DGRAM_RTO_MS, the interval doubling up to DGRAM_RTO_MAX_MS,
 *     until the connect timeout (conn.c's hello_deadline).  Every HELLO is
 *     padded (Hello.padding) to the size the broker wants from strangers,
 *     since a stale cookie makes a stranger of us again.  A WELCOME that
 *     comes twice (two HELLOs answered) is taken once.
 *   - SUB, UNSUB (the broker acknowledges them with PONG of their id over
 *     datagrams, a repeat too) and a flush's PING: kept in c->acks until
 *     the PONG or an ERR with their id arrives, resent with the same id on
 *     the same backoff; one unanswered for connect_timeout_ms drops the
 *     connection (IPCBUS_ETIMEOUT) and the reconnect restores everything.
 *     At most DGRAM_WINDOW SUBs and UNSUBs are unanswered at once, the rest
 *     wait in order (a resubscription of thousands would otherwise flood
 *     the broker's socket and lose most of itself), except urgent ones:
 *     the request inbox, whose SUB must go before the request it is for.
 *     ipcbus_flush() waits for the answers of the SUBs and UNSUBs made
 *     before it, besides its own PONG: after a flush the subscriptions are
 *     in place.  An UNSUB forgets its subscription's SUB, so a resend cannot
 *     subscribe it again.
 *   - The lease: the broker ends a session that sent nothing for
 *     Welcome.lease_ms and never pings a datagram client itself, so the
 *     client PINGs (without id: nothing waits for it) when it has sent
 *     nothing for a third of the lease, or heard nothing for a third of it
 *     since its last keepalive PING (a publisher that only sends still
 *     learns that the broker is there).  A broker silent for a whole lease
 *     is gone (its host, or a firewall that drops the ICMP that would have
 *     said so): the connection is dropped and reconnects.
 *     A program that did not dispatch for a lease (so sent nothing) knows
 *     that the broker forgot it: a publish then drops the connection first
 *     (dgram_check_silence), so the message waits for the new session
 *     instead of going to a dead one.
 *   - E_NO_SESSION: the broker has no session for our address (the lease
 *     ran out while we were silent, or the broker restarted): the
 *     connection is dropped like any lost one and reconnects (HELLO, the
 *     cookie, the subscriptions again); requests in flight fail with
 *     IPCBUS_EDISCONNECTED.
 * ipcbus_timeout() includes every one of these timers.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define DGRAM_RTO_MS 200        /* first resend of a HELLO or frame */
#define DGRAM_RTO_MAX_MS 1000   /* resend intervals double up to this */
#define DGRAM_WINDOW 64         /* SUBs and UNSUBs unanswered at once */
#define DGRAM_HELLO_PADDING 64  /* the broker answers strangers' HELLOs of
				 * at least 64 bytes: padding alone is enough */
#define DGRAM_LEASE_DEFAULT 30000

static int dgram_next_rto(int rto)
{
	return rto >= DGRAM_RTO_MAX_MS / 2 ? DGRAM_RTO_MAX_MS : rto * 2;
}

static const char *dgram_type_name(int type)
{
	switch (type) {
	case IPCBUS__FRAME_TYPE__SUB: return "SUB";
	case IPCBUS__FRAME_TYPE__UNSUB: return "UNSUB";
	default: return "PING";
	}
}

/* --- HELLO --- */

void dgram_open(struct ipcbus *c)
{
	c->cookie_len = 0;
	c->hello_rto = DGRAM_RTO_MS;
	c->hello_at = 0;
}

void dgram_hello(struct ipcbus *c, Ipcbus__Hello *h)
{
	static uint8_t padding[DGRAM_HELLO_PADDING];

	if (c->cookie_len) {
		h->has_cookie = 1;
		h->cookie.data = c->cookie;
		h->cookie.len = c->cookie_len;
	}
	h->has_padding = 1;
	h->padding.data = padding;
	h->padding.len = sizeof padding;
	c->hello_at = conn_now() + c->hello_rto;
	c->hello_rto = dgram_next_rto(c->hello_rto);
}

void dgram_welcome(struct ipcbus *c, uint32_t lease_ms)
{
	int64_t now = conn_now();

	c->lease_ms = lease_ms ? lease_ms
		      : c->ping_interval_ms ? c->ping_interval_ms
					    : DGRAM_LEASE_DEFAULT;
	c->last_tx = c->last_rx = c->last_ka = now;
}

int dgram_on_err(struct ipcbus *c, int code, const Ipcbus__Error *e)
{
	if (code == IPCBUS__ERR_CODE__E_COOKIE) {
		/* a step of connecting; late or repeated ones change nothing */
		if (c->state != CONN_HELLO || !e->has_cookie || e->cookie.len == 0 ||
		    e->cookie.len > sizeof c->cookie)
			return 1;
		if (c->cookie_len == e->cookie.len &&
		    memcmp(c->cookie, e->cookie.data, e->cookie.len) == 0)
			return 1; /* sent with it already: the resend timer goes on */
		memcpy(c->cookie, e->cookie.data, e->cookie.len);
		c->cookie_len = e->cookie.len;
		c->hello_rto = DGRAM_RTO_MS;
		conn_hello(c);
		return 1;
	}
	if (code == IPCBUS__ERR_CODE__E_NO_SESSION) {
		/* before WELCOME it answers something of an older socket */
		if (c->state == CONN_READY)
			conn_drop(c, IPCBUS_EDISCONNECTED,
				  "the broker has no session for this client (its lease ran out, "
				  "or the broker restarted)",
				  0);
		return 1;
	}
	return 0;
}

void dgram_check_silence(struct ipcbus *c)
{
	if (c->state == CONN_READY && conn_now() - c->last_tx >= c->lease_ms)
		conn_drop(c, IPCBUS_EDISCONNECTED,
			  "silent for longer than the lease: the broker has forgotten this session",
			  0);
}

/* --- frames that must arrive --- */

/* Append a's frame to out.  0, -ENOENT (its subscription is gone), or
 * -ENOMEM. */
static int dgram_emit(struct ipcbus *c, struct dgram_ack *a)
{
	struct frame f = {.type = a->type, .has_id = 1, .id = a->id};

	if (a->type == IPCBUS__FRAME_TYPE__SUB) {
		struct sub *s = idmap_get(&c->subs, a->sid);
		if (!s)
			return -ENOENT;
		return sub_frame(c, s, a->id);
	}
	if (a->type == IPCBUS__FRAME_TYPE__UNSUB) {
		f.has_sid = 1;
		f.sid = a->sid;
	}
	return frame_append(&c->out, &f, NULL, 0);
}

static int dgram_counted(const struct dgram_ack *a)
{
	return a->type == IPCBUS__FRAME_TYPE__SUB || a->type == IPCBUS__FRAME_TYPE__UNSUB;
}

/* Send a for the first time and put it on the sent list. */
static int dgram_start(struct ipcbus *c, struct dgram_ack *a, int64_t now)
{
	int rc = dgram_emit(c, a);
	if (rc < 0)
		return rc;
	a->first = now > 0 ? now : 1;
	a->rto = DGRAM_RTO_MS;
	a->at = now + a->rto;
	a->next = c->ack_sent;
	if (a->next)
		a->next->prev = &a->next;
	a->prev = &c->ack_sent;
	c->ack_sent = a;
	if (dgram_counted(a))
		c->ack_inflight++;
	return 0;
}

/* Answered or given up: out of every table, freed (or, while it waits,
 * marked to be freed when the FIFO reaches it). */
static void dgram_done(struct ipcbus *c, struct dgram_ack *a)
{
	idmap_del(&c->acks, a->id);
	if (!a->first) {
		a->type = 0;
		return;
	}
	*a->prev = a->next;
	if (a->next)
		a->next->prev = a->prev;
	if (dgram_counted(a))
		c->ack_inflight--;
	free(a);
}

/* Send what waits while the window has room. */
static void dgram_fill(struct ipcbus *c)
{
	int64_t now = 0;

	while (c->ack_wait && c->ack_inflight < DGRAM_WINDOW) {
		struct dgram_ack *a = c->ack_wait;
		/* off the FIFO first: next links the sent list from now on */
		c->ack_wait = a->next;
		if (!c->ack_wait)
			c->ack_wait_tail = &c->ack_wait;
		a->next = NULL;
		if (!a->type) {
			free(a); /* cancelled while it waited */
			continue;
		}
		if (!now)
			now = conn_now();
		int rc = dgram_start(c, a, now);
		if (rc == -ENOMEM) {
			/* later: first again */
			a->next = c->ack_wait;
			if (!c->ack_wait)
				c->ack_wait_tail = &a->next;
			c->ack_wait = a;
			return;
		}
		if (rc < 0) {
			idmap_del(&c->acks, a->id); /* its subscription is gone */
			free(a);
		}
	}
}

int dgram_send(struct ipcbus *c, int type, uint64_t id, uint64_t sid, int urgent)
{
	struct dgram_ack *a = calloc(1, sizeof *a);
	int rc;

	if (!a)
		return -ENOMEM;
	a->id = id;
	a->sid = sid;
	a->type = type;
	if (!c->ack_wait_tail)
		c->ack_wait_tail = &c->ack_wait;
	rc = idmap_put(&c->acks, id, a);
	if (rc < 0) {
		free(a);
		return rc;
	}
	if (urgent || !dgram_counted(a) || (!c->ack_wait && c->ack_inflight < DGRAM_WINDOW)) {
		rc = dgram_start(c, a, conn_now());
		if (rc < 0) {
			idmap_del(&c->acks, id);
			free(a);
		}
		return rc == -ENOENT ? 0 : rc;
	}
	*c->ack_wait_tail = a;
	c->ack_wait_tail = &a->next;
	return 0;
}

int dgram_on_pong(struct ipcbus *c, uint64_t id)
{
	struct dgram_ack *a = idmap_get(&c->acks, id);

	if (!a)
		return 0;
	int acked = dgram_counted(a);
	dgram_done(c, a);
	dgram_fill(c);
	return acked;
}

void dgram_on_answer(struct ipcbus *c, uint64_t id)
{
	struct dgram_ack *a = idmap_get(&c->acks, id);

	if (a) {
		dgram_done(c, a);
		dgram_fill(c);
	}
}

void dgram_forget_sid(struct ipcbus *c, uint64_t sid)
{
	for (struct dgram_ack *a = c->ack_sent, *next; a; a = next) {
		next = a->next;
		if (a->type == IPCBUS__FRAME_TYPE__SUB && a->sid == sid)
			dgram_done(c, a);
	}
	for (struct dgram_ack *a = c->ack_wait; a; a = a->next)
		if (a->type == IPCBUS__FRAME_TYPE__SUB && a->sid == sid)
			dgram_done(c, a);
	dgram_fill(c);
}

int dgram_pending_before(const struct ipcbus *c, uint64_t id)
{
	for (const struct dgram_ack *a = c->ack_sent; a; a = a->next)
		if (dgram_counted(a) && a->id < id)
			return 1;
	/* the FIFO is in id order */
	for (const struct dgram_ack *a = c->ack_wait; a; a = a->next)
		if (a->type)
			return a->id < id;
	return 0;
}

void dgram_reset(struct ipcbus *c)
{
	while (c->ack_sent)
		dgram_done(c, c->ack_sent);
	while (c->ack_wait) {
		struct dgram_ack *a = c->ack_wait;
		c->ack_wait = a->next;
		free(a);
	}
	c->ack_wait_tail = &c->ack_wait;
	idmap_fini(&c->acks);
	c->ack_inflight = 0;
}

/* --- timers --- */

/* When the keepalive PING is due. */
static int64_t dgram_ka_at(const struct ipcbus *c)
{
	int64_t third = c->lease_ms / 3 ? c->lease_ms / 3 : 1;
	int64_t heard = c->last_rx > c->last_ka ? c->last_rx : c->last_ka;
	return (c->last_tx < heard ? c->last_tx : heard) + third;
}

void dgram_tick(struct ipcbus *c)
{
	int64_t now = conn_now();
	char text[160];

	if (c->state == CONN_HELLO) {
		if (now >= c->hello_at)
			conn_hello(c);
		return;
	}
	if (c->state != CONN_READY)
		return;
	if (now - c->last_rx >= c->lease_ms) {
		snprintf(text, sizeof text,
			 "nothing from the broker for %u ms (the lease), PINGs unanswered",
			 (unsigned)c->lease_ms);
		conn_drop(c, IPCBUS_EDISCONNECTED, text, 0);
		return;
	}
	for (struct dgram_ack *a = c->ack_sent, *next; a; a = next) {
		next = a->next;
		if (now < a->at)
			continue;
		if (now - a->first >= c->opts.connect_timeout_ms) {
			snprintf(text, sizeof text, "the broker did not acknowledge a %s in %d ms",
				 dgram_type_name(a->type), c->opts.connect_timeout_ms);
			conn_drop(c, IPCBUS_ETIMEOUT, text, 0);
			return;
		}
		int rc = dgram_emit(c, a);
		if (rc == -ENOENT) {
			dgram_done(c, a);
			continue;
		}
		if (rc < 0)
			break; /* out of memory: at the next tick */
		a->rto = dgram_next_rto(a->rto);
		a->at = now + a->rto;
	}
	dgram_fill(c);
	if (now >= dgram_ka_at(c)) {
		struct frame f = {.type = IPCBUS__FRAME_TYPE__PING};
		if (frame_append(&c->out, &f, NULL, 0) == 0)
			c->last_ka = now;
	}
}

int64_t dgram_deadline(const struct ipcbus *c)
{
	if (c->state == CONN_HELLO)
		return c->hello_at;
	if (c->state != CONN_READY)
		return -1;
	int64_t t = c->last_rx + c->lease_ms, ka = dgram_ka_at(c);
	if (ka < t)
		t = ka;
	for (const struct dgram_ack *a = c->ack_sent; a; a = a->next)
		if (a->at < t)
			t = a->at;
	return t;
}

void dgram_report(struct ipcbus *c)
{
	if (!c->tr.ops->dropped)
		return;
	uint64_t n = c->tr.ops->dropped(&c->tr);
	if (n == c->tr_dropped)
		return;
	char text[160];
	snprintf(text, sizeof text,
		 "%llu datagram(s) dropped by the transport: too big for a datagram (%llu so far)",
		 (unsigned long long)(n - c->tr_dropped), (unsigned long long)n);
	c->tr_dropped = n;
	conn_event(c, IPCBUS_EV_ERROR, IPCBUS_ETOOBIG, text);
}
