/*
 * conn_wait.c: driving the connection: the work of a dispatch (a reconnect
 * when due, the transport's connect steps, the handshake deadline, reading,
 * the transport's tick, timers, writing), blocking waits on the epoll set
 * (conn_run), and the public calls built on them: ipcbus_timeout(),
 * ipcbus_dispatch(), ipcbus_wait(), ipcbus_flush().
 *
 * The broker's reason comes first: when a write fails because the broker
 * closed (EPIPE, ECONNRESET), what it sent before closing -- an ERR saying
 * it is full, or that we were idle or too slow -- is read before the write
 * error is reported, so the program sees the broker's code and text rather
 * than "Broken pipe".
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/epoll.h>

#include "client.h"

#define CONN_FRAME_MS 10000             /* a frame begun, silent this long: see conn_tick */

/* --- driving --- */

/* The transport's periodic check (tr_ops.tick) while a connection is up. */
static void conn_tick(struct ipcbus *c)
{
	char err[sizeof c->last_error];

	c->tick_at = 0;
	if (c->state != CONN_HELLO && c->state != CONN_READY)
		return;
	/* A medium that needs a tick reports no stall of its own (a SysV
	 * queue has no end and no timeout): a frame the broker began and
	 * left unfinished would hold its bytes and the connection for ever.
	 * Nothing more of it for as long as the broker gives a client to
	 * finish one (its HELLO deadline: 10 s, or the ping-interval when
	 * shorter) ends the connection. */
	int64_t limit = CONN_FRAME_MS;
	if (c->ping_interval_ms && c->ping_interval_ms < limit)
		limit = c->ping_interval_ms;
	if (c->in_need && buf_len(&c->in) && conn_now() - c->last_rx > limit) {
		snprintf(err, sizeof err, "the broker left a frame unfinished (%zu of %zu bytes) for %lld ms",
			 buf_len(&c->in), c->in_need, (long long)limit);
		conn_drop(c, IPCBUS_EPROTO, err, 0);
		return;
	}
	err[0] = 0;
	int rc = c->tr.ops->tick(&c->tr, err, sizeof err);
	if (rc < 0) {
		conn_drop(c, rc, err[0] ? err : NULL, 0);
		return;
	}
	c->tick_at = conn_now() + c->tr.ops->tick_ms;
}

/* A write failed (pending_err): drop the connection.  When the broker
 * closed it (EPIPE, ECONNRESET), it usually said why first -- a full broker
 * refuses a new connection with ERR E_MAX_CONNECTIONS before it even reads
 * the HELLO, a slow or idle client gets its ERR before the close -- so read
 * what is left in the socket first: an ERR there drops the connection with
 * the broker's code and text.  The peer is gone, so this ends (EOF). */
static void conn_write_failed(struct ipcbus *c)
{
	int err = c->pending_err;

	if ((err == -EPIPE || err == -ECONNRESET) &&
	    (c->state == CONN_HELLO || c->state == CONN_READY)) {
		do
			conn_read(c);
		while (c->pending_err && c->tr.fd >= 0 && c->in_more);
	}
	if (c->pending_err) /* conn_drop() clears it */
		conn_drop(c, c->pending_err, conn_tr_errtext(c), 0);
}

/* The work of a dispatch; may_read 0 skips the read when nothing says the
 * socket has data (saves a recv() that would say EAGAIN). */
static int conn_work(struct ipcbus *c, int may_read)
{
	uint64_t before = c->delivered;

	if (c->state == CONN_CLOSED)
		return c->closed_err;
	if (c->pending_err)
		conn_write_failed(c);
	if (c->state == CONN_WAIT && conn_now() >= c->reconnect_at) {
		if (conn_open(c) < 0)
			conn_schedule(c);
	}
	if (c->state == CONN_OPENING)
		conn_check_open(c);
	if ((c->state == CONN_OPENING || c->state == CONN_HELLO) &&
	    conn_now() >= c->hello_deadline)
		conn_drop(c, IPCBUS_ETIMEOUT,
			  c->state == CONN_OPENING
				  ? "the connection to the broker was not set up in time "
				    "(TCP connect or TLS handshake)"
				  : "no WELCOME from the broker in time",
			  0);
	if (may_read && (c->state == CONN_HELLO || c->state == CONN_READY))
		conn_read(c);
	if (c->tick_at && conn_now() >= c->tick_at)
		conn_tick(c);
	if (c->dgram)
		dgram_tick(c);
	req_expire(c);
	sub_deliver_held(c);
	if (buf_len(&c->out))
		conn_write(c);
	if (c->pending_err)
		conn_write_failed(c);
	if (c->dgram)
		dgram_report(c);
	if (c->state == CONN_CLOSED && c->delivered == before)
		return c->closed_err;
	uint64_t n = c->delivered - before;
	return n > INT_MAX ? INT_MAX : (int)n;
}

int conn_dispatch(struct ipcbus *c)
{
	return conn_work(c, 1);
}

int conn_run(struct ipcbus *c, int timeout_ms, int (*done)(struct ipcbus *, void *), void *arg)
{
	int64_t deadline = timeout_ms < 0 ? -1 : conn_now() + timeout_ms;
	/* read first only when the last read left more behind; otherwise the
	 * (level-triggered) epoll_wait below says when there is something */
	int may_read = c->in_more || conn_tr_pending(c);

	for (;;) {
		int n = conn_work(c, may_read);
		if (n < 0)
			return n;
		if (done(c, arg))
			return 0;
		int t = ipcbus_timeout(c);
		if (deadline >= 0) {
			int64_t left = deadline - conn_now();
			if (left <= 0)
				return IPCBUS_ETIMEOUT;
			if (t < 0 || t > left)
				t = (int)left;
		}
		struct epoll_event ev;
		int k = epoll_wait(c->epfd, &ev, 1, t);
		if (k < 0 && errno == EINTR)
			return -EINTR;
		may_read = k != 0 || conn_tr_pending(c);
	}
}

/* --- the public calls that wait --- */

int ipcbus_timeout(const ipcbus *c)
{
	int64_t t = -1;

	if (!c)
		return -1;
	/* closed, or something to do now: come back at once */
	if (c->state == CONN_CLOSED || c->pending_err)
		return 0;
	if (c->state == CONN_READY && buf_len(&c->out) && !c->wr_blocked)
		return 0;
	if ((c->state == CONN_HELLO || c->state == CONN_READY) && conn_tr_pending(c))
		return 0;
	if (c->state == CONN_WAIT)
		t = c->reconnect_at;
	else if (c->state == CONN_OPENING || c->state == CONN_HELLO)
		t = c->hello_deadline;
	if (c->tick_at && (c->state == CONN_HELLO || c->state == CONN_READY) &&
	    (t < 0 || c->tick_at < t))
		t = c->tick_at;
	if (c->dgram) {
		/* resends, keepalive, the broker's silence */
		int64_t g = dgram_deadline(c);
		if (g >= 0 && (t < 0 || g < t))
			t = g;
	}
	int64_t d = req_next_deadline(c);
	if (d >= 0 && (t < 0 || d < t))
		t = d;
	if (t < 0)
		return -1;
	t -= conn_now();
	return t <= 0 ? 0 : t > INT_MAX ? INT_MAX : (int)t;
}

int ipcbus_dispatch(ipcbus *c)
{
	return c ? conn_dispatch(c) : -EINVAL;
}

static int conn_got_some(struct ipcbus *c, void *arg)
{
	return c->delivered != *(uint64_t *)arg;
}

int ipcbus_wait(ipcbus *c, int timeout_ms)
{
	if (!c)
		return -EINVAL;
	uint64_t before = c->delivered;
	int rc = conn_run(c, timeout_ms, conn_got_some, &before);
	if (rc < 0)
		return rc;
	uint64_t n = c->delivered - before;
	return n > INT_MAX ? INT_MAX : (int)n;
}

struct conn_flush {
	uint64_t id, epoch;
};

static int conn_flush_done(struct ipcbus *c, void *arg)
{
	struct conn_flush *w = arg;
	/* over datagrams, also the answers to the SUBs and UNSUBs before it:
	 * the PONG alone says nothing of frames that may have been lost */
	return c->epoch != w->epoch ||
	       (c->pong_last >= w->id && !(c->dgram && dgram_pending_before(c, w->id)));
}

int ipcbus_flush(ipcbus *c, int timeout_ms)
{
	if (!c)
		return -EINVAL;
	if (c->state == CONN_CLOSED)
		return c->closed_err;
	if (c->state != CONN_READY)
		return IPCBUS_EDISCONNECTED;
	struct conn_flush w = {.id = c->next_id++, .epoch = c->epoch};
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = w.id};
	/* over datagrams the PING is resent until its PONG comes */
	int rc = c->dgram ? dgram_send(c, IPCBUS__FRAME_TYPE__PING, w.id, 0, 1)
			  : frame_append(&c->out, &f, NULL, 0);
	if (rc < 0)
		return rc;
	conn_write(c);
	rc = conn_run(c, timeout_ms, conn_flush_done, &w);
	if (rc < 0)
		return rc;
	if (c->epoch != w.epoch)
		return IPCBUS_EDISCONNECTED;
	rc = c->first_err;
	c->first_err = 0;
	return rc;
}
