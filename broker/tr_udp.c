/*
 * tr_udp.c: one frame per datagram, no length prefix.
 *
 * One socket serves every client.  A client is a session keyed by its
 * source address; the session is a struct conn like any other, so limits,
 * routing and errors are the connection layer's.  The listener reads the
 * datagrams and hands each to its session (conn_frame); a session writes
 * its queued frames one per datagram (outq_frame), and when the socket is
 * full the listener waits for room on behalf of all sessions.
 *
 * Rules of its own (docs/protocol.md, "UDP"):
 *   - nothing is sent to an address before it has shown that it receives
 *     there: a HELLO without a valid cookie is answered, if it is at least
 *     UDP_HELLO_MIN bytes, with ERR E_COOKIE carrying a cookie (a MAC of the
 *     address and the time, so the broker keeps no state), never bigger than
 *     the HELLO; the HELLO that echoes it opens the session;
 *   - a client's frame (PUB, SUB, UNSUB, PING, PONG) from an address
 *     without a session gets the small closing ERR E_NO_SESSION (the
 *     library says HELLO again and resubscribes), rate-limited, at most 16
 *     bytes bigger than what came; a broker's frames (ERR, WELCOME, MSG)
 *     and what does not decode get nothing, so that no answer is answered;
 *   - any datagram renews the session's lease; a session silent for
 *     lease_ms (WELCOME) ends with its subscriptions, without a word;
 *   - HELLO may be repeated and is answered again; SUB is acknowledged.
 * The number of sessions is bounded by max-connections.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "conn.h"
#include "frame.h"
#include "hash.h"
#include "net.h"
#include "transport.h"

/* The largest UDP payload (IPv4; IPv6 allows 20 bytes more). */
#define UDP_DGRAM_MAX 65507
/* What a session may send in one frame: headers up to 8 KiB, the rest
 * payload, 1 KiB for the frame's own fields. */
#define UDP_HEADER_MAX (8 << 10)
#define UDP_PAYLOAD_MAX (UDP_DGRAM_MAX - UDP_HEADER_MAX - 1024)
/* A HELLO without a cookie must be at least this big to be answered. */
#define UDP_HELLO_MIN 64
/* Datagrams read per turn, so one sender cannot starve the others. */
#define UDP_READ_BUDGET 256
/* The cookie: a MAC of the address and this many seconds' window. */
#define UDP_COOKIE_S 30
#define UDP_COOKIE_LEN 8
/* E_NO_SESSION answers at most this many a second, all addresses
 * together: a forged source can get one small datagram sent, not a flood. */
#define UDP_NOSESSION_RATE 200

struct udp_sess {
	struct sockaddr_storage addr;
	socklen_t alen;
	struct conn *c;
	struct udp_sess *hnext;           /* in the listener's table */
	struct udp_sess *onext, **oprev;  /* waiting for room to write */
};

struct udp_listener {
	struct listener l;
	struct udp_sess **tab;
	size_t cap, n;
	struct hash_key tab_key, cookie_key;
	struct udp_sess *want_out;
	uint64_t nosess_sec, nosess_sent;
	uint64_t dropped; /* datagrams that opened nothing (counted, logged) */
	uint8_t buf[UDP_DGRAM_MAX + 1];
};

static size_t udp_slot(const struct udp_listener *ul, const struct sockaddr_storage *a,
		       socklen_t alen)
{
	return (size_t)hash_bytes(&ul->tab_key, a, alen) & (ul->cap - 1);
}

static struct udp_sess *udp_find(struct udp_listener *ul, const struct sockaddr_storage *a,
				 socklen_t alen)
{
	if (!ul->cap)
		return NULL;
	for (struct udp_sess *s = ul->tab[udp_slot(ul, a, alen)]; s; s = s->hnext)
		if (s->alen == alen && memcmp(&s->addr, a, alen) == 0)
			return s;
	return NULL;
}

static int udp_insert(struct udp_listener *ul, struct udp_sess *s)
{
	if ((ul->n + 1) * 2 > ul->cap) {
		size_t cap = ul->cap ? ul->cap * 2 : 64;
		struct udp_sess **t = calloc(cap, sizeof *t);
		if (!t)
			return -ENOMEM;
		struct udp_sess **old = ul->tab;
		size_t ocap = ul->cap;
		ul->tab = t;
		ul->cap = cap;
		for (size_t i = 0; i < ocap; i++) {
			for (struct udp_sess *x = old[i], *next; x; x = next) {
				next = x->hnext;
				size_t k = udp_slot(ul, &x->addr, x->alen);
				x->hnext = t[k];
				t[k] = x;
			}
		}
		free(old);
	}
	size_t k = udp_slot(ul, &s->addr, s->alen);
	s->hnext = ul->tab[k];
	ul->tab[k] = s;
	ul->n++;
	return 0;
}

static void udp_remove(struct udp_listener *ul, struct udp_sess *s)
{
	for (struct udp_sess **pp = &ul->tab[udp_slot(ul, &s->addr, s->alen)]; *pp;
	     pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			ul->n--;
			return;
		}
	}
}

/* The listener waits for room to write while some session does. */
static void udp_listener_watch(struct udp_listener *ul)
{
	loop_mod(ul->l.b->loop, &ul->l.watch, EPOLLIN | (ul->want_out ? EPOLLOUT : 0));
}

static void udp_want_out(struct udp_sess *s, int out)
{
	struct udp_listener *ul = (struct udp_listener *)s->c->listener;
	if (out && !s->oprev) {
		s->onext = ul->want_out;
		if (ul->want_out)
			ul->want_out->oprev = &s->onext;
		s->oprev = &ul->want_out;
		ul->want_out = s;
	} else if (!out && s->oprev) {
		*s->oprev = s->onext;
		if (s->onext)
			s->onext->oprev = s->oprev;
		s->onext = NULL;
		s->oprev = NULL;
	} else {
		return;
	}
	udp_listener_watch(ul);
}

/* ---- a session's conn_ops ---- */

static void udp_read_ready(struct conn *c)
{
	(void)c; /* datagrams arrive at the listener */
}

/* One frame per datagram, without its length prefix.  A frame the medium
 * cannot carry is dropped and counted for this session. */
static int udp_flush(struct conn *c)
{
	struct udp_sess *s = c->tp;
	const uint8_t *p;
	size_t len;

	while ((p = outq_frame(&c->out, &len))) {
		uint64_t body = 0;
		int k = frame_varint_get(p, len, &body);
		ssize_t n = sendto(c->listener->fd, p + k, (size_t)body, MSG_DONTWAIT | MSG_NOSIGNAL,
				   (const struct sockaddr *)&s->addr, s->alen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == ENOBUFS))
			return 1;
		if (n < 0) {
			/* EMSGSIZE, an unreachable address: this frame is
			 * lost, as UDP loses frames; the next may go */
			c->dropped++;
			c->b->stats.dropped++;
		}
		conn_sent(c, len);
	}
	return 0;
}

static void udp_watch(struct conn *c, int in, int out)
{
	(void)in; /* one socket for all: input is never paused per session */
	udp_want_out(c->tp, out);
}

static void udp_close(struct conn *c)
{
	struct udp_sess *s = c->tp;
	if (!s)
		return;
	udp_want_out(s, 0);
	udp_remove((struct udp_listener *)c->listener, s);
	free(s);
	c->tp = NULL;
}

static const struct conn_ops udp_conn_ops = {
	.read_ready = udp_read_ready,
	.flush = udp_flush,
	.shutdown = NULL, /* nothing to end: a session just stops */
	.watch = udp_watch,
	.close = udp_close,
};

/* ---- strangers: cookies and E_NO_SESSION ---- */

static void udp_cookie(const struct udp_listener *ul, const struct sockaddr_storage *a,
		       socklen_t alen, uint64_t window, uint8_t out[UDP_COOKIE_LEN])
{
	uint8_t msg[sizeof(struct sockaddr_storage) + 8];
	memcpy(msg, &window, 8);
	memcpy(msg + 8, a, alen);
	uint64_t mac = hash_bytes(&ul->cookie_key, msg, 8 + alen);
	memcpy(out, &mac, UDP_COOKIE_LEN);
}

static int udp_cookie_ok(const struct udp_listener *ul, const struct sockaddr_storage *a,
			 socklen_t alen, const uint8_t *cookie, size_t len)
{
	uint64_t now = loop_clock_ms() / 1000 / UDP_COOKIE_S;
	uint8_t want[UDP_COOKIE_LEN];
	if (len != UDP_COOKIE_LEN)
		return 0;
	/* this window and the one before, if any: in the first 30 s of
	 * CLOCK_MONOTONIC (a broker started at boot) now - 1 would wrap */
	for (uint64_t w = now ? now - 1 : 0; w <= now; w++) {
		udp_cookie(ul, a, alen, w, want);
		if (memcmp(want, cookie, UDP_COOKIE_LEN) == 0)
			return 1;
	}
	return 0;
}

static void udp_send_raw(struct udp_listener *ul, const struct sockaddr_storage *a,
			 socklen_t alen, const struct buf *frame)
{
	uint64_t body = 0;
	int k = frame_varint_get(buf_rptr(frame), buf_len(frame), &body);
	if (k > 0 && sendto(ul->l.fd, buf_rptr(frame) + k, (size_t)body,
			    MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)a, alen) < 0) {
		/* a lost answer is answered again when the client retries */
	}
}

/* Frames only a client sends.  A stranger's other frames (ERR, WELCOME,
 * MSG: what a broker sends) get no E_NO_SESSION: two brokers, or a broker
 * and itself under a forged source address, would answer each other until
 * the rate limit stopped them, and the limit would be spent for everyone. */
static int udp_client_frame(int type)
{
	return type == IPCBUS__FRAME_TYPE__PUB || type == IPCBUS__FRAME_TYPE__SUB ||
	       type == IPCBUS__FRAME_TYPE__UNSUB || type == IPCBUS__FRAME_TYPE__PING ||
	       type == IPCBUS__FRAME_TYPE__PONG;
}

static void udp_no_session(struct udp_listener *ul, const struct sockaddr_storage *a,
			   socklen_t alen, const struct frame *f, size_t len)
{
	uint64_t sec = loop_now(ul->l.b->loop) / 1000;
	if (sec != ul->nosess_sec) {
		ul->nosess_sec = sec;
		ul->nosess_sent = 0;
	}
	if (ul->nosess_sent >= UDP_NOSESSION_RATE)
		return;
	struct buf out;
	buf_init(&out, 256);
	if (frame_append_error(&out, f->has_id ? f->id : 0, IPCBUS__ERR_CODE__E_NO_SESSION, 1, NULL) ==
		    0 &&
	    buf_len(&out) <= len + 16) {
		udp_send_raw(ul, a, alen, &out);
		ul->nosess_sent++;
	}
	buf_fini(&out);
}

/* A HELLO from an address without a session: a cookie first, then the
 * session. */
static void udp_hello(struct udp_listener *ul, const struct sockaddr_storage *a, socklen_t alen,
		      const struct frame *f, const uint8_t *dgram, size_t len)
{
	struct broker *b = ul->l.b;
	Ipcbus__Hello *h = frame_unpack_hello(f);
	int ok = h && h->has_cookie && udp_cookie_ok(ul, a, alen, h->cookie.data, h->cookie.len);
	if (h)
		ipcbus__hello__free_unpacked(h, NULL);
	if (!ok) {
		if (len < UDP_HELLO_MIN) {
			ul->dropped++;
			return; /* an answer would be bigger than the question */
		}
		uint8_t cookie[UDP_COOKIE_LEN];
		struct buf out;
		udp_cookie(ul, a, alen, loop_clock_ms() / 1000 / UDP_COOKIE_S, cookie);
		buf_init(&out, 256);
		if (frame_append_cookie(&out, f->has_id ? f->id : 0, cookie, sizeof cookie) == 0)
			udp_send_raw(ul, a, alen, &out);
		buf_fini(&out);
		return;
	}
	/* the address receives: a session for it */
	char why[160];
	if (!broker_admit(b, why, sizeof why)) {
		struct buf out;
		buf_init(&out, 256);
		if (frame_append_error(&out, f->has_id ? f->id : 0,
				       IPCBUS__ERR_CODE__E_MAX_CONNECTIONS, 1, why) == 0)
			udp_send_raw(ul, a, alen, &out);
		buf_fini(&out);
		broker_refused(b, why);
		return;
	}
	struct udp_sess *s = calloc(1, sizeof *s);
	struct conn *c = s ? conn_new(b, -1, &udp_conn_ops, &ul->l) : NULL;
	if (s) {
		memcpy(&s->addr, a, alen);
		s->alen = alen;
	}
	if (!c || udp_insert(ul, s) < 0) {
		if (c)
			conn_free(c); /* its tp is not set yet */
		free(s);
		log_error(&b->log, "out of memory for a UDP session");
		return;
	}
	s->c = c;
	c->tp = s;
	c->lease_ms = b->cfg.ping_interval ? b->cfg.ping_interval : 30000;
	if (net_addr_str((const struct sockaddr *)a, alen, c->addr, sizeof c->addr) < 0)
		snprintf(c->addr, sizeof c->addr, "unknown address");
	conn_describe(c);
	broker_add_conn(b, c);
	conn_frame(c, dgram, len);
}

/* ---- the listener ---- */

static void udp_readable(struct udp_listener *ul)
{
	for (int i = 0; i < UDP_READ_BUDGET; i++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof from;
		ssize_t n = recvfrom(ul->l.fd, ul->buf, sizeof ul->buf, MSG_TRUNC,
				     (struct sockaddr *)&from, &flen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_warn(&ul->l.b->log, "udp://%s:%u: %s", ul->l.url.host,
					 (unsigned)ul->l.url.port, strerror(errno));
			return;
		}
		if ((size_t)n > UDP_DGRAM_MAX) {
			ul->dropped++; /* cannot be a frame of ours */
			continue;
		}
		struct udp_sess *s = udp_find(ul, &from, flen);
		if (s) {
			if (s->c->state != CONN_CLOSING)
				conn_frame(s->c, ul->buf, (size_t)n);
			continue;
		}
		struct frame f;
		if (frame_decode(ul->buf, (size_t)n, &f) < 0) {
			ul->dropped++; /* from nobody we know: not worth an answer */
			continue;
		}
		if (f.type == IPCBUS__FRAME_TYPE__HELLO)
			udp_hello(ul, &from, flen, &f, ul->buf, (size_t)n);
		else if (udp_client_frame(f.type))
			udp_no_session(ul, &from, flen, &f, (size_t)n);
		else
			ul->dropped++; /* an answer: answering it could loop */
	}
}

static void udp_event(void *arg, uint32_t events)
{
	struct udp_listener *ul = arg;

	if (events & EPOLLOUT) {
		/* room again: each waiting session writes what it can */
		struct udp_sess *s = ul->want_out;
		while (s) {
			struct udp_sess *next = s->onext;
			conn_ready(s->c, 0, 1);
			s = next;
		}
	}
	if (events & EPOLLIN)
		udp_readable(ul);
}

static int udp_listen(struct broker *b, const struct url *u, struct listener **out, char *err,
		      size_t errlen)
{
	struct udp_listener *ul = calloc(1, sizeof *ul);
	if (!ul)
		return -ENOMEM;
	struct listener *l = &ul->l;
	l->tr = &transport_udp;
	l->b = b;
	l->url = *u;
	l->fd = -1;
	l->frame_max = UDP_DGRAM_MAX;
	l->max_payload = UDP_PAYLOAD_MAX;
	l->max_header_bytes = UDP_HEADER_MAX;
	hash_key_random(&ul->tab_key);
	hash_key_random(&ul->cookie_key);
	int rc = net_listen_host(u->host, u->port, SOCK_DGRAM, 0, &l->fd, err, errlen);
	if (rc == 0 && (rc = loop_add(b->loop, &l->watch, l->fd, EPOLLIN, udp_event, ul)) < 0) {
		snprintf(err, errlen, "watch udp://%s:%u: %s", u->host, (unsigned)u->port,
			 strerror(-rc));
		close(l->fd);
	}
	if (rc < 0) {
		free(ul);
		return rc;
	}
	if (b->cfg.ntokens == 0)
		log_warn(&b->log,
			 "udp://%s:%u has no token: anyone who can send to it can publish and subscribe",
			 u->host, (unsigned)u->port);
	*out = l;
	return 0;
}

static void udp_unlisten(struct listener *l)
{
	struct udp_listener *ul = (struct udp_listener *)l;
	loop_del(l->b->loop, &l->watch);
	close(l->fd);
	/* the sessions go with their connections (udp_close); the table goes
	 * when the last one did, or here at the broker's end */
	if (ul->dropped)
		log_info(&l->b->log, "udp://%s:%u: %llu datagrams from unknown or invalid senders dropped",
			 l->url.host, (unsigned)l->url.port, (unsigned long long)ul->dropped);
}

static void udp_fini(struct listener *l)
{
	struct udp_listener *ul = (struct udp_listener *)l;
	free(ul->tab);
	ul->tab = NULL;
	ul->cap = ul->n = 0;
}

const struct transport transport_udp = {
	.scheme = "udp",
	.network = 1,
	.datagram = 1,
	.listen = udp_listen,
	.unlisten = udp_unlisten,
	.fini = udp_fini,
};
