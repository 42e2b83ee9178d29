/*
 * fuzz_broker.c: a libFuzzer target for the broker's handling of what
 * clients send: a real struct broker (broker_init() with no listeners, its
 * own loop, router and before-sleep step) and up to FUZZ_SLOTS connections
 * over a fake transport, so that broker/conn.c, handle.c and router.c see
 * every frame sequence the fuzzer can make: HELLO, SUB/UNSUB with patterns
 * and queue groups, PUB fanned out to the other connections, PING, frames
 * out of order, bad frames, slow consumers, clients that go away.
 *
 * The fake transport.  Each connection is adopted as a stream transport does (conn_new, loop_add, broker_add_conn) on
 * an eventfd (never a socket), which the broker watches as it would a
 * socket.  Its conn_ops:
 *   read_ready  copies the bytes the fuzz input "sent" on that connection
 *               into c->in, a chunk at a time and at most FUZZ_READ_BUDGET a
 *               turn, and splits frames as tr_stream.c does; the eventfd
 *               stays readable while bytes are left, as a socket would;
 *   flush       "writes" c->out, all of it or a few bytes a call, or nothing
 *               (a stalled client), and parses what was written as the
 *               client would;
 *   close       closes the eventfd.
 * The loop itself runs: a struct loop_async (the driver) wakes it once a
 * turn, runs the input's records up to the next TURN record, and stops the
 * loop when the records are done.  Nothing blocks: a turn always has the
 * driver's wake-up, and the broker's timers (keepalive, linger) are a
 * second or more away, far beyond a run.
 *
 * Input.  The first byte picks the configuration: bit 0 slow-consumer
 * disconnect (else drop); bit 1 small limits (max-payload 256,
 * max-header-bytes 64, max-subscriptions 8, and max-pending 2048 and
 * max-memory 8192, below what ipcbus.conf accepts, so that slow consumers
 * are reachable with small inputs); bit 2 max-connections 3 (the fourth
 * connection is refused).  Then records: an op byte, whose low two bits
 * name the connection (slot) and whose upper six bits, modulo FUZZ_NOPS, the
 * action (enum fuzz_op); FEED, DGRAM and ROUTE take a length byte and that
 * many bytes, WMAX, RCHUNK and SIGNAL one byte.  Every slot is connected at
 * the start.  tests/fuzz/gen_corpus.py writes seeds in this format.
 *
 * Besides "no crash, no sanitizer report, no leak" it checks:
 *  - what the broker writes to a connection is a stream of well-formed
 *    frames a client may receive (WELCOME first and once, MSG only after it
 *    and with a sid and a valid channel, PONG, PING, ERR), nothing
 *    follows an ERR that closes the connection, and the broker's record of
 *    where its next whole frame starts (what conn_drop_queued() keeps)
 *    matches the frame the client has begun;
 *  - at every turn, the broker's count of pending output is the sum of the
 *    connections' output, its count of connections is its list's length,
 *    and the router holds exactly the connections' subscriptions;
 *  - router_match() and router_has_interest() for the channel and reply
 *    channel of every PUB (before the broker routes it), and for the channel
 *    of a ROUTE record, agree with chan_match() over every subscription of
 *    every connection: each matching subscription outside a queue group
 *    once, one member of each queue group with a match, nothing else;
 *  - after broker_fini() nothing is pending and every connection's
 *    transport was closed.
 * Built only with ./configure --enable-fuzzer (CC=clang).
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "chan.h"
#include "conn.h"
#include "frame.h"
#include "ipcbus.h"
#include "router.h"
#include "transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c)                                                                   \
	do {                                                                            \
		if (!(c)) {                                                             \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,     \
				__LINE__, #c);                                          \
			abort();                                                        \
		}                                                                       \
	} while (0)

#define FUZZ_SLOTS 4
/* Bytes read_ready() takes from one connection in one turn: small, so that
 * connections interleave within an input. */
#define FUZZ_READ_BUDGET 512
/* Router checks per input, at most (each walks every subscription). */
#define FUZZ_ROUTE_CHECKS 256
/* Turns after the last record, at most, for what is still unread or
 * unwritten. */
#define FUZZ_EXTRA_TURNS 64

enum fuzz_op {
	FUZZ_FEED,    /* len, bytes: the client sends bytes on the stream */
	FUZZ_DGRAM,   /* len, bytes: one frame as a datagram (conn_frame) */
	FUZZ_TURN,    /* end this turn: the loop flushes, reaps, reads */
	FUZZ_EOF,     /* the client closes its end (after what it sent) */
	FUZZ_STALL,   /* toggle: the client stops / starts reading */
	FUZZ_WMAX,    /* byte: flush writes at most that many bytes a call (0: all) */
	FUZZ_RCHUNK,  /* byte: read_ready copies byte + 1 bytes at a time */
	FUZZ_CONNECT, /* a new connection in a free slot */
	FUZZ_KILL,    /* the transport fails (a read error): conn_close() */
	FUZZ_SIGNAL,  /* byte: SIGTERM (even) or SIGHUP (odd) to the broker */
	FUZZ_ROUTE,   /* len, channel: compare the router with chan_match() */
	FUZZ_NOPS
};

struct fuzz_bytes {
	uint8_t *p;
	size_t len, off, cap;
};

struct fuzz_slot {
	struct conn *c; /* NULL when free */
	int fd;         /* the eventfd the broker watches */
	int readable;   /* the eventfd is signalled */
	struct fuzz_bytes in;   /* sent by the client, not read by the broker yet */
	struct fuzz_bytes seen; /* written by the broker, not parsed yet */
	int eof;
	int stall;
	size_t wmax, rchunk;
	int welcomed; /* a WELCOME was written */
	int link;     /* it said WELCOME bridge: a bridge link (the fuzzer's HELLO had `bridge`) */
	int ended;    /* an ERR that closes was written */
	int frames;   /* frames written */
};

struct fuzz {
	struct broker b;
	struct fuzz_slot s[FUZZ_SLOTS];
	struct loop_async drive;
	const uint8_t *p, *end; /* records not run yet */
	int extra;              /* turns left after the records */
	int signalled;          /* signals were blocked and raised */
	int route_checks;       /* fuzz_check_route() calls made */
};

static struct fuzz *fuzz_cur; /* the run in progress: conn_ops get only the conn */
static FILE *fuzz_log;
static int fuzz_verbose; /* FUZZ_BROKER_LOG=1 */

static void fuzz_check_frame(struct fuzz *z, const uint8_t *body, size_t len);

/* ---- byte buffers ---- */

static void fuzz_bytes_add(struct fuzz_bytes *q, const uint8_t *p, size_t n)
{
	if (q->off == q->len)
		q->off = q->len = 0;
	if (q->len + n > q->cap) {
		size_t cap = q->cap ? q->cap : 256;
		while (cap < q->len + n)
			cap *= 2;
		q->p = realloc(q->p, cap);
		FUZZ_CHECK(q->p);
		q->cap = cap;
	}
	if (n)
		memcpy(q->p + q->len, p, n);
	q->len += n;
}

static void fuzz_bytes_free(struct fuzz_bytes *q)
{
	free(q->p);
	memset(q, 0, sizeof *q);
}

/* ---- the fake transport ---- */

static struct fuzz_slot *fuzz_slot_of(struct conn *c)
{
	for (int i = 0; i < FUZZ_SLOTS; i++)
		if (fuzz_cur->s[i].c == c)
			return &fuzz_cur->s[i];
	FUZZ_CHECK(!"a connection the fuzzer did not make");
	return NULL;
}

static void fuzz_set_readable(struct fuzz_slot *s, int on)
{
	uint64_t v = 1;
	if (on == s->readable || s->fd < 0)
		return;
	if (on)
		FUZZ_CHECK(write(s->fd, &v, sizeof v) == (ssize_t)sizeof v);
	else
		FUZZ_CHECK(read(s->fd, &v, sizeof v) == (ssize_t)sizeof v);
	s->readable = on;
}

/* Split and handle every complete frame in c->in (as tr_stream.c does). */
static int fuzz_frames(struct conn *c)
{
	size_t max = conn_frame_max(c);

	while (c->state != CONN_CLOSING && buf_len(&c->in) > 0) {
		const uint8_t *body;
		size_t len, need;
		long n = frame_split(buf_rptr(&c->in), buf_len(&c->in), max, &body, &len, &need);
		if (n == IPCBUS_EFRAME) {
			conn_error(c, 0, IPCBUS__ERR_CODE__E_FRAME_TOO_BIG, 2,
				   "frame over the frame limit (%zu)", max);
			return -1;
		}
		if (n < 0) {
			conn_error(c, 0, IPCBUS__ERR_CODE__E_PROTOCOL, 2, "malformed frame length");
			return -1;
		}
		if (n == 0) {
			if (need && buf_reserve(&c->in, need - buf_len(&c->in)) < 0) {
				conn_close(c, "out of memory for input");
				return -1;
			}
			return 0;
		}
		fuzz_check_frame(fuzz_cur, body, len);
		conn_frame(c, body, len);
		buf_consume(&c->in, (size_t)n);
	}
	return 0;
}

static void fuzz_read_ready(struct conn *c)
{
	struct fuzz_slot *s = fuzz_slot_of(c);
	size_t total = 0;

	if (c->state == CONN_CLOSING) {
		/* the broker discards what a closing peer still sends */
		s->in.off = s->in.len;
		if (s->eof)
			c->eof = 1;
		fuzz_set_readable(s, 0);
		return;
	}
	while (c->state != CONN_CLOSING && !c->in_paused && s->in.off < s->in.len &&
	       total < FUZZ_READ_BUDGET) {
		if (buf_room(&c->in) < 4096) {
			int rc = conn_in_reserve(c, 64 << 10);
			if (rc == -ENOBUFS)
				return; /* max-memory: paused, retried by the broker */
			if (rc < 0 && buf_room(&c->in) == 0) {
				conn_close(c, "input buffer full");
				return;
			}
		}
		size_t n = s->in.len - s->in.off;
		if (n > s->rchunk)
			n = s->rchunk;
		if (n > buf_room(&c->in))
			n = buf_room(&c->in);
		memcpy(buf_wptr(&c->in), s->in.p + s->in.off, n);
		buf_commit(&c->in, n);
		s->in.off += n;
		total += n;
		if (fuzz_frames(c) < 0)
			break;
	}
	if (s->in.off == s->in.len) {
		if (s->eof && c->state != CONN_CLOSING)
			conn_close(c, "closed by the client");
		fuzz_set_readable(s, 0);
	}
	if (buf_len(&c->in) == 0)
		buf_shrink(&c->in, 1 << 20);
}

/* What a client may receive, frame by frame. */
static void fuzz_client_frame(struct fuzz_slot *s, const uint8_t *body, size_t len)
{
	struct frame f;

	FUZZ_CHECK(frame_decode(body, len, &f) == 0);
	if (fuzz_verbose)
		fprintf(stderr, "fuzz_broker: slot %d received %s (id %llu, sid %llu, %zu bytes)\n",
			(int)(s - fuzz_cur->s), frame_type_name(f.type), (unsigned long long)f.id,
			(unsigned long long)f.sid, len);
	FUZZ_CHECK(!s->ended); /* nothing after the ERR that closed it */
	switch (f.type) {
	case IPCBUS__FRAME_TYPE__WELCOME: {
		FUZZ_CHECK(!s->welcomed && s->frames == 0);
		Ipcbus__Welcome *w = frame_unpack_welcome(&f);
		FUZZ_CHECK(w && w->version == IPCBUS_PROTOCOL_VERSION);
		FUZZ_CHECK(w->max_payload == fuzz_cur->b.cfg.max_payload);
		s->link = w->has_bridge && w->bridge;
		ipcbus__welcome__free_unpacked(w, NULL);
		s->welcomed = 1;
		break;
	}
	case IPCBUS__FRAME_TYPE__BRIDGE: {
		/* the spanning tree, to a bridge link only */
		FUZZ_CHECK(s->welcomed && s->link);
		Ipcbus__Bridge *m = frame_unpack_bridge(&f);
		FUZZ_CHECK(m && m->has_root && m->root.len > 0 && m->dist < 32);
		ipcbus__bridge__free_unpacked(m, NULL);
		break;
	}
	case IPCBUS__FRAME_TYPE__SUB:
	case IPCBUS__FRAME_TYPE__UNSUB:
		/* interest, to a bridge link only */
		FUZZ_CHECK(s->welcomed && s->link && f.has_sid && f.sid);
		FUZZ_CHECK(f.type == IPCBUS__FRAME_TYPE__UNSUB ||
			   chan_valid_pattern((const char *)f.channel.p, f.channel.len) == 0);
		break;
	case IPCBUS__FRAME_TYPE__MSG:
		if (s->link) {
			/* a forwarded message: no sid, an origin and a number */
			FUZZ_CHECK(s->welcomed && !f.has_sid && f.origin.len > 0 && f.seq > 0 &&
				   f.hops < 32 && f.channel.set);
			FUZZ_CHECK(chan_valid_name((const char *)f.channel.p, f.channel.len) == 0);
			FUZZ_CHECK(!chan_is_system((const char *)f.channel.p, f.channel.len));
			break;
		}
		FUZZ_CHECK(s->welcomed && f.has_sid && f.channel.set);
		FUZZ_CHECK(chan_valid_name((const char *)f.channel.p, f.channel.len) == 0);
		/* clients may not publish on $SYS, and the broker itself does not
		 * (yet: relax this when it does) */
		FUZZ_CHECK(!chan_is_system((const char *)f.channel.p, f.channel.len));
		FUZZ_CHECK(f.payload.len <= fuzz_cur->b.cfg.max_payload);
		break;
	case IPCBUS__FRAME_TYPE__PING:
	case IPCBUS__FRAME_TYPE__PONG:
		FUZZ_CHECK(s->welcomed);
		break;
	case IPCBUS__FRAME_TYPE__ERR: {
		Ipcbus__Error *e = frame_unpack_error(&f);
		FUZZ_CHECK(e && e->code != IPCBUS__ERR_CODE__E_NONE && e->has_text);
		if ((e->has_fatal && e->fatal) || (e->has_closing && e->closing))
			s->ended = 1;
		ipcbus__error__free_unpacked(e, NULL);
		break;
	}
	default:
		FUZZ_CHECK(!"a frame type the broker never sends");
	}
	s->frames++;
}

static void fuzz_client_read(struct fuzz_slot *s, const uint8_t *p, size_t n)
{
	fuzz_bytes_add(&s->seen, p, n);
	while (s->seen.off < s->seen.len) {
		const uint8_t *body;
		size_t len, need;
		long k = frame_split(s->seen.p + s->seen.off, s->seen.len - s->seen.off, SIZE_MAX,
				     &body, &len, &need);
		FUZZ_CHECK(k >= 0);
		if (k == 0)
			break;
		fuzz_client_frame(s, body, len);
		s->seen.off += (size_t)k;
	}
}

/* The rest of the frame that has begun to go out: what the output queue
 * keeps when it drops the unsent frames (outq_drop_unsent). */
static size_t fuzz_out_rest(const struct conn *c)
{
	return c->out.len - outq_unsent(&c->out);
}

/* The broker's idea of where the next whole frame starts in its output is
 * what the client still needs of the frame it has begun; a drained output
 * ends on a frame boundary. */
static void fuzz_check_boundary(const struct fuzz_slot *s, const struct conn *c)
{
	size_t have = s->seen.len - s->seen.off;
	uint64_t len;

	if (have == 0) {
		FUZZ_CHECK(fuzz_out_rest(c) == 0);
		return;
	}
	int k = frame_varint_get(s->seen.p + s->seen.off, have, &len);
	FUZZ_CHECK(k >= 0);
	if (k == 0)
		FUZZ_CHECK(fuzz_out_rest(c) > 0);
	else
		FUZZ_CHECK(fuzz_out_rest(c) == (size_t)k + len - have);
	FUZZ_CHECK(fuzz_out_rest(c) <= c->out.len);
}

static int fuzz_flush(struct conn *c)
{
	struct fuzz_slot *s = fuzz_slot_of(c);
	size_t n = c->out.len;
	struct iovec iov[64];

	if (n == 0)
		return 0;
	if (s->stall)
		return 1;
	if (s->wmax && n > s->wmax)
		n = s->wmax;
	/* read what "went out" before the queue frees it */
	int k = outq_iov(&c->out, iov, 64);
	size_t done = 0;
	for (int i = 0; i < k && done < n; i++) {
		size_t take = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
		fuzz_client_read(s, iov[i].iov_base, take);
		done += take;
	}
	conn_sent(c, done);
	fuzz_check_boundary(s, c);
	return c->out.len ? 1 : 0;
}

static void fuzz_watch(struct conn *c, int in, int out)
{
	loop_mod(c->b->loop, &c->watch, (in ? EPOLLIN : 0) | (out ? EPOLLOUT : 0));
}

static void fuzz_event(void *arg, uint32_t events)
{
	conn_ready(arg, (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0, (events & EPOLLOUT) != 0);
}

static void fuzz_close(struct conn *c)
{
	struct fuzz_slot *s = fuzz_slot_of(c);

	FUZZ_CHECK(c->fd == s->fd && s->fd >= 0);
	loop_del(c->b->loop, &c->watch);
	close(s->fd);
	c->fd = -1;
	s->fd = -1;
	s->c = NULL;
	s->readable = 0;
	fuzz_bytes_free(&s->in);
	fuzz_bytes_free(&s->seen);
}

static const struct conn_ops fuzz_ops = {
	.read_ready = fuzz_read_ready,
	.flush = fuzz_flush,
	.shutdown = NULL, /* freed once written: no drain (its timers are out of reach) */
	.watch = fuzz_watch,
	.close = fuzz_close,
};

static void fuzz_connect(struct fuzz *z, struct fuzz_slot *s)
{
	struct broker *b = &z->b;
	size_t before = b->nconns;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	FUZZ_CHECK(fd >= 0);
	memset(s, 0, sizeof *s);
	s->fd = fd;
	s->rchunk = 4096;
	char why[160];
	if (!broker_admit(b, why, sizeof why)) {
		close(fd);
		broker_refused(b, why);
		s->fd = -1;
		FUZZ_CHECK(b->nconns - b->nclosing >= b->cfg.max_connections);
		return;
	}
	/* what a stream transport does with an accepted socket */
	struct conn *c = conn_new(b, fd, &fuzz_ops, NULL);
	FUZZ_CHECK(c != NULL);
	FUZZ_CHECK(loop_add(b->loop, &c->watch, fd, EPOLLIN, fuzz_event, c) == 0);
	conn_describe(c);
	broker_add_conn(b, c);
	FUZZ_CHECK(b->nconns == before + 1);
	s->c = c;
}

/* ---- checks ---- */

static void fuzz_check_counts(struct fuzz *z)
{
	struct broker *b = &z->b;
	uint64_t pending = 0;
	size_t n = 0, subs = 0;

	for (struct conn *c = b->conns; c; c = c->next) {
		FUZZ_CHECK(fuzz_out_rest(c) <= c->out.len);
		FUZZ_CHECK(!c->next || c->next->prev == c);
		pending += c->out.len;
		subs += c->nsubs;
		n++;
	}
	FUZZ_CHECK(pending == b->pending);
	FUZZ_CHECK(n == b->nconns);
	FUZZ_CHECK(subs == router_count(b->router));
	for (int i = 0; i < FUZZ_SLOTS; i++) {
		struct conn *c = b->conns;
		while (c && c != z->s[i].c)
			c = c->next;
		FUZZ_CHECK(c == z->s[i].c);
	}
}

static int fuzz_live_sub(const struct conn *c, const struct sub *s)
{
	return s && s != (const struct sub *)(const void *)c;
}

/* router_match() and router_has_interest() against chan_match() over every
 * subscription: each matching subscription outside a queue group once, one
 * member of each queue group with a match, nothing else.  Bounded per input
 * (FUZZ_ROUTE_CHECKS), as it walks every subscription. */
static void fuzz_check_route(struct fuzz *z, const uint8_t *p, size_t len, int show)
{
	struct broker *b = &z->b;
	const char *ch = (const char *)p;
	struct sub **res;

	if (chan_valid_name(ch, len) < 0 || z->route_checks >= FUZZ_ROUTE_CHECKS)
		return;
	z->route_checks++;
	long k = router_match(b->router, ch, len, &res);
	FUZZ_CHECK(k >= 0);
	if (show && fuzz_verbose)
		fprintf(stderr, "fuzz_broker: ROUTE %.*s: %ld subscriptions of %zu\n", (int)len, ch,
			k, router_count(b->router));
	struct sub **got = malloc(((size_t)k + 1) * sizeof *got);
	FUZZ_CHECK(got);
	if (k)
		memcpy(got, res, (size_t)k * sizeof *got);
	/* each result: a live subscription of a connection, matching, once;
	 * at most one per queue group */
	for (long j = 0; j < k; j++) {
		struct sub *s = got[j];
		struct conn *c = s->owner;
		struct conn *d = b->conns;
		while (d && d != c)
			d = d->next;
		FUZZ_CHECK(d == c && conn_sub_find(c, s->sid) == s);
		FUZZ_CHECK(chan_match(s->pattern, s->pattern_len, ch, len));
		for (long i = 0; i < j; i++) {
			FUZZ_CHECK(got[i] != s);
			FUZZ_CHECK(!s->queue || !got[i]->queue || strcmp(s->queue, got[i]->queue) != 0);
		}
	}
	/* each matching subscription: in the results, or (in a queue group)
	 * a member of its group is */
	int any = 0;
	for (struct conn *c = b->conns; c; c = c->next) {
		for (size_t i = 0; i < c->subs_cap; i++) {
			struct sub *s = c->subs[i];
			if (!fuzz_live_sub(c, s))
				continue;
			FUZZ_CHECK(s->owner == c);
			if (!chan_match(s->pattern, s->pattern_len, ch, len))
				continue;
			any = 1;
			long j = 0;
			while (j < k && (s->queue ? !got[j]->queue || strcmp(got[j]->queue, s->queue)
					  : got[j] != s))
				j++;
			FUZZ_CHECK(j < k);
		}
	}
	FUZZ_CHECK(router_has_interest(b->router, ch, len) == any);
	free(got);
}

/* The router check for the channels of every PUB a connection sends (before
 * the broker handles it). */
static void fuzz_check_frame(struct fuzz *z, const uint8_t *body, size_t len)
{
	struct frame f;

	if (frame_decode(body, len, &f) < 0 || f.type != IPCBUS__FRAME_TYPE__PUB)
		return;
	if (f.channel.set)
		fuzz_check_route(z, f.channel.p, f.channel.len, 0);
	if (f.reply_to.set)
		fuzz_check_route(z, f.reply_to.p, f.reply_to.len, 0);
}

/* ---- the driver ---- */

/* The next length-prefixed field of the input. */
static const uint8_t *fuzz_take(struct fuzz *z, size_t *n)
{
	const uint8_t *p;
	size_t want = z->p < z->end ? *z->p++ : 0;

	if (want > (size_t)(z->end - z->p))
		want = (size_t)(z->end - z->p);
	p = z->p;
	z->p += want;
	*n = want;
	return p;
}

static int fuzz_byte(struct fuzz *z)
{
	return z->p < z->end ? *z->p++ : 0;
}

static void fuzz_signal(struct fuzz *z, int sig)
{
	sigset_t set;

	/* blocked, so that it waits for the broker's signalfd, as in ipcbusd */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	FUZZ_CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	z->signalled = 1;
	raise(sig);
}

/* 1 while some connection has bytes or an EOF the broker has not read, or
 * output it has not written to a client that reads. */
static int fuzz_busy(const struct fuzz *z)
{
	for (int i = 0; i < FUZZ_SLOTS; i++) {
		const struct fuzz_slot *s = &z->s[i];
		if (!s->c)
			continue;
		if (s->readable && s->c->state != CONN_CLOSING && !z->b.stopping)
			return 1;
		if (s->c->out.len && !s->stall)
			return 1;
	}
	return 0;
}

static void fuzz_drive(void *arg)
{
	struct fuzz *z = arg;
	struct broker *b = &z->b;

	fuzz_check_counts(z);
	while (z->p < z->end) {
		uint8_t op = *z->p++;
		struct fuzz_slot *s = &z->s[op & 3];
		const uint8_t *p;
		size_t n;

		switch ((op >> 2) % FUZZ_NOPS) {
		case FUZZ_FEED:
			p = fuzz_take(z, &n);
			if (s->c && !s->eof) {
				fuzz_bytes_add(&s->in, p, n);
				fuzz_set_readable(s, 1);
			}
			break;
		case FUZZ_DGRAM:
			p = fuzz_take(z, &n);
			if (s->c && !b->stopping) {
				fuzz_check_frame(z, p, n);
				conn_frame(s->c, p, n);
			}
			break;
		case FUZZ_TURN:
			loop_async_send(&z->drive);
			return;
		case FUZZ_EOF:
			if (s->c) {
				s->eof = 1;
				fuzz_set_readable(s, 1);
			}
			break;
		case FUZZ_STALL:
			s->stall = !s->stall;
			break;
		case FUZZ_WMAX:
			s->wmax = (size_t)fuzz_byte(z);
			break;
		case FUZZ_RCHUNK:
			s->rchunk = (size_t)fuzz_byte(z) + 1;
			break;
		case FUZZ_CONNECT:
			if (!s->c && !b->stopping)
				fuzz_connect(z, s);
			break;
		case FUZZ_KILL:
			if (s->c)
				conn_close(s->c, "fuzz: the transport failed");
			break;
		case FUZZ_SIGNAL:
			fuzz_signal(z, fuzz_byte(z) & 1 ? SIGHUP : SIGTERM);
			break;
		case FUZZ_ROUTE:
			p = fuzz_take(z, &n);
			fuzz_check_route(z, p, n, 1);
			break;
		}
	}
	if (fuzz_busy(z) && z->extra-- > 0) {
		loop_async_send(&z->drive);
		return;
	}
	/* done: the loop ends after this turn's before-sleep step */
	loop_stop(b->loop);
}

/* Take back the signals raised and not read by the broker, then unblock. */
static void fuzz_unsignal(const sigset_t *old)
{
	sigset_t set;
	struct timespec zero = {0, 0};

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	while (sigtimedwait(&set, NULL, &zero) > 0) {
	}
	FUZZ_CHECK(sigprocmask(SIG_SETMASK, old, NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf cfg;
	sigset_t old;

	if (size < 1)
		return 0;
	if (!fuzz_log) {
		/* FUZZ_BROKER_LOG=1: the broker's log on stderr, to see what an
		 * input does */
		const char *show = getenv("FUZZ_BROKER_LOG");
		fuzz_verbose = show && *show == '1';
		fuzz_log = fuzz_verbose ? stderr : fopen("/dev/null", "we");
		FUZZ_CHECK(fuzz_log);
	}
	struct fuzz *z = calloc(1, sizeof *z);
	FUZZ_CHECK(z);
	fuzz_cur = z;

	conf_init(&cfg);
	cfg.drain_timeout = 0; /* a stop never waits */
	cfg.ping_interval = 0;
	if (data[0] & 1)
		cfg.slow_consumer = SLOW_DISCONNECT;
	if (data[0] & 2) {
		cfg.max_payload = 256;
		cfg.max_header_bytes = 64;
		cfg.max_subscriptions = 8;
		cfg.max_pending = 2048;
		cfg.max_memory = 8192;
	}
	if (data[0] & 4)
		cfg.max_connections = 3;

	/* every message formatted and written, to /dev/null */
	log_init(&z->b.log);
	z->b.log.file = fuzz_log;
	z->b.log.level = LOG_LVL_DEBUG;
	FUZZ_CHECK(sigprocmask(SIG_SETMASK, NULL, &old) == 0);
	FUZZ_CHECK(broker_init(&z->b, &cfg) == 0);
	/* broker_init blocked TERM, INT and HUP for its signalfd: unblocked,
	 * they reach libFuzzer again (FUZZ_SIGNAL blocks them for its own) */
	FUZZ_CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);

	FUZZ_CHECK(loop_async_init(z->b.loop, &z->drive, fuzz_drive, z) == 0);
	for (int i = 0; i < FUZZ_SLOTS; i++)
		fuzz_connect(z, &z->s[i]);
	z->p = data + 1;
	z->end = data + size;
	z->extra = FUZZ_EXTRA_TURNS;
	loop_async_send(&z->drive);
	FUZZ_CHECK(broker_run(&z->b) == 0);
	fuzz_check_counts(z);
	if (fuzz_verbose)
		fprintf(stderr,
			"fuzz_broker: %llu PUB routed, %llu MSG queued, %llu dropped, %llu errors, "
			"%d turns left\n",
			(unsigned long long)z->b.stats.msgs_in, (unsigned long long)z->b.stats.msgs_out,
			(unsigned long long)z->b.stats.dropped, (unsigned long long)z->b.stats.errors,
			z->extra);

	loop_async_fini(z->b.loop, &z->drive);
	broker_fini(&z->b);
	FUZZ_CHECK(z->b.pending == 0);
	for (int i = 0; i < FUZZ_SLOTS; i++)
		FUZZ_CHECK(!z->s[i].c && z->s[i].fd < 0);
	if (z->signalled)
		fuzz_unsignal(&old);
	for (int i = 0; i < FUZZ_SLOTS; i++) {
		fuzz_bytes_free(&z->s[i].in);
		fuzz_bytes_free(&z->s[i].seen);
	}
	fuzz_cur = NULL;
	free(z);
	return 0;
}
