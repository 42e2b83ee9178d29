/*
 * tr_stream.c: the code every byte-stream transport shares (unix, tcp):
 * accepting, reading into the connection's input buffer and splitting
 * frames, writing its output, and dialing out over TCP (proto/net.c's
 * dial, then the io's handshake: tr_tls.c).  The transports themselves only
 * add their addressing (tr_unix.c).
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
#include "net.h"
#include "proto.h"
#include "transport.h"

/* Per connection and turn: so one fire hose cannot starve the others. */
#define STREAM_READ_BUDGET (256 << 10)
#define STREAM_READ_CHUNK (64 << 10)
/* Accepts per turn, and the pause after EMFILE. */
#define STREAM_ACCEPT_BATCH 64
#define STREAM_EMFILE_PAUSE_MS 100

/* The bytes themselves: a plain socket, or the connection's io (TLS).
 * > 0, 0 at EOF, -EAGAIN, -errno. */
static ssize_t stream_recv(struct conn *c, void *p, size_t n)
{
	if (c->io)
		return c->io->recv(c, p, n);
	for (;;) {
		ssize_t k = read(c->fd, p, n);
		if (k >= 0)
			return k;
		if (errno != EINTR)
			return -errno;
	}
}

static ssize_t stream_sendv(struct conn *c, const struct iovec *iov, int n)
{
	if (c->io)
		return c->io->sendv(c, iov, n);
	struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
	for (;;) {
		ssize_t k = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (k >= 0)
			return k;
		if (errno != EINTR)
			return -errno;
	}
}

/* Split and handle every complete frame in c->in (transport.h). */
int stream_frames(struct conn *c)
{
	size_t max = conn_frame_max(c);

	const uint8_t *p = buf_rptr(&c->in);
	if (c->state == CONN_HELLO && buf_len(&c->in) >= 2 && p[0] == 0x16 && p[1] == 0x03) {
		/* no frame starts so (field 0), every TLS handshake does */
		conn_error(c, 0, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
			   "this port speaks the plain protocol, not TLS: connect with %s://, not tls://",
			   c->listener ? c->listener->tr->scheme : "tcp");
		return -1;
	}
	while (c->state != CONN_CLOSING && buf_len(&c->in) > 0) {
		const uint8_t *body;
		size_t len, need;
		long n = frame_split(buf_rptr(&c->in), buf_len(&c->in), max, &body, &len, &need);
		if (n == PROTO_EFRAME) {
			uint64_t announced = 0;
			frame_varint_get(buf_rptr(&c->in), buf_len(&c->in), &announced);
			conn_error(c, 0, IPCBUS__ERR_CODE__E_FRAME_TOO_BIG, 2,
				   "frame of %llu bytes is over the frame limit (%zu: max-payload + max-header-bytes + 1 KiB)",
				   (unsigned long long)announced, max);
			return -1;
		}
		if (n < 0) {
			conn_error(c, 0, IPCBUS__ERR_CODE__E_PROTOCOL, 2, "malformed frame length");
			return -1;
		}
		if (n == 0) {
			/* make room for the whole frame now that its length is
			 * known and checked (max-memory may pause reading) */
			if (need) {
				int rc = conn_in_reserve(c, need - buf_len(&c->in));
				if (rc == -ENOBUFS)
					return -1;
				if (rc < 0) {
					conn_close(c, "out of memory for input");
					return -1;
				}
			}
			return 0;
		}
		conn_frame(c, body, len);
		buf_consume(&c->in, (size_t)n);
	}
	return 0;
}

/* A closing connection: read and throw away what the peer still sends,
 * within the same budget, until its EOF (see broker_reap). */
static void stream_discard(struct conn *c)
{
	uint8_t sink[16 << 10];
	size_t total = 0;

	while (total < STREAM_READ_BUDGET) {
		ssize_t n = stream_recv(c, sink, sizeof sink);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			c->eof = 1;
			return;
		}
		total += (size_t)n;
	}
}

static void stream_read_ready(struct conn *c)
{
	size_t total = 0;

	if (c->state == CONN_CLOSING) {
		stream_discard(c);
		return;
	}
	while (c->state != CONN_CLOSING && !c->in_paused && total < STREAM_READ_BUDGET) {
		if (buf_room(&c->in) < 4096) {
			int rc = conn_in_reserve(c, STREAM_READ_CHUNK);
			if (rc == -ENOBUFS)
				break; /* paused until memory is free */
			/* at its bound the buffer holds one frame in
			 * progress, which fits by construction */
			if (rc < 0 && buf_room(&c->in) == 0) {
				conn_close(c, "input buffer full");
				return;
			}
		}
		ssize_t n = stream_recv(c, buf_wptr(&c->in), buf_room(&c->in));
		if (n < 0) {
			if (n != -EAGAIN)
				conn_close(c, strerror((int)-n));
			break;
		}
		if (n == 0) {
			c->eof = 1; /* nothing to drain: freed at once */
			conn_close(c, c->outbound ? "closed by the peer" : "closed by the client");
			break;
		}
		buf_commit(&c->in, (size_t)n);
		total += (size_t)n;
		if (stream_frames(c) < 0)
			break;
		if ((size_t)n < STREAM_READ_CHUNK / 2 && !(c->io && c->io->pending(c)))
			break; /* drained, most likely: epoll says when there is more */
	}
	/* nothing half-read: hold no memory between reads (counted in
	 * max-memory; malloc per read, not per frame) */
	if (buf_len(&c->in) == 0)
		buf_shrink(&c->in, 0);
}

/* Write the queued chunks, several per system call. */
static int stream_flush(struct conn *c)
{
	struct iovec iov[64];

	while (c->out.len > 0) {
		int k = outq_iov(&c->out, iov, 64);
		ssize_t n = stream_sendv(c, iov, k);
		if (n < 0)
			return n == -EAGAIN ? 1 : (int)n;
		conn_sent(c, (size_t)n);
	}
	return 0;
}

static void stream_shutdown(struct conn *c)
{
	if (c->io)
		c->io->shutdown(c);
	shutdown(c->fd, SHUT_WR);
}

static void stream_watch(struct conn *c, int in, int out)
{
	if (c->fd < 0)
		return; /* a dial with no socket (refused at once, or all failed) */
	if (c->dialing) {
		/* what the connect or the handshake waits for, and nothing
		 * else; closing: nothing (freed in before-sleep) */
		uint32_t ev = 0;
		if (c->state != CONN_CLOSING)
			ev = c->dialing == CONN_DIAL_CONNECT || c->io_want_out ? EPOLLOUT : EPOLLIN;
		loop_mod(c->b->loop, &c->watch, ev);
		return;
	}
	/* the io may need to write to go on reading (a TLS handshake) */
	out = out || c->io_want_out;
	loop_mod(c->b->loop, &c->watch, (in ? EPOLLIN : 0) | (out ? EPOLLOUT : 0));
}

static void stream_dial_free(struct conn *c);

static void stream_close(struct conn *c)
{
	if (c->io)
		c->io->fini(c);
	c->io = NULL;
	stream_dial_free(c);
	if (c->fd < 0)
		return;
	loop_del(c->b->loop, &c->watch);
	close(c->fd);
	c->fd = -1;
}

const struct conn_ops stream_conn_ops = {
	.read_ready = stream_read_ready,
	.flush = stream_flush,
	.shutdown = stream_shutdown,
	.watch = stream_watch,
	.close = stream_close,
};

static void stream_dial_step(struct conn *c);

static void stream_event(void *arg, uint32_t events)
{
	struct conn *c = arg;
	if (c->dialing) {
		if (c->state != CONN_CLOSING)
			stream_dial_step(c);
		return;
	}
	int readable = (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
	int writable = (events & EPOLLOUT) != 0;
	/* room to write is what the io waited for to read on */
	if (writable && c->io_want_out)
		readable = 1;
	conn_ready(c, readable, writable);
}

/* Over max-connections: tell the peer why, best effort and without
 * blocking, and close. */
static void stream_refuse(struct broker *b, int fd, const char *why)
{
	struct buf out;

	buf_init(&out, 4096);
	if (frame_append_error(&out, 0, IPCBUS__ERR_CODE__E_MAX_CONNECTIONS, 1, why) == 0 &&
	    send(fd, buf_rptr(&out), buf_len(&out), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the peer learns from the close alone */
	}
	buf_fini(&out);
	close(fd);
	broker_refused(b, why);
}

/* A socket accepted on l becomes a connection. */
static void stream_adopt(struct listener *l, int fd)
{
	struct broker *b = l->b;
	char why[160];
	int rc;

	if (!broker_admit(b, why, sizeof why)) {
		stream_refuse(b, fd, why);
		return;
	}
	struct conn *c = conn_new(b, fd, &stream_conn_ops, l);
	if (!c) {
		close(fd);
		log_error(&b->log, "out of memory accepting a connection");
		return;
	}
	if (loop_add(b->loop, &c->watch, fd, EPOLLIN, stream_event, c) < 0) {
		log_error(&b->log, "cannot watch a new connection: %s", strerror(errno));
		close(fd);
		c->fd = -1;
		conn_free(c);
		return;
	}
	if (l->tr->adopt && (rc = l->tr->adopt(c)) < 0) {
		log_warn(&b->log, "cannot set up a connection on %s://%s: %s", l->tr->scheme,
			 l->url.path[0] ? l->url.path : l->url.host, strerror(-rc));
		conn_free(c);
		return;
	}
	conn_describe(c);
	broker_add_conn(b, c);
}

static void stream_accept_resume(void *arg)
{
	struct listener *l = arg;
	loop_mod(l->b->loop, &l->watch, EPOLLIN);
}

void stream_accept(void *arg, uint32_t events)
{
	struct listener *l = arg;
	(void)events;

	for (int i = 0; i < STREAM_ACCEPT_BATCH; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* pause the listener instead of spinning on a
				 * pending connection we cannot take; say so once
				 * in a while, not every pause */
				uint64_t now = loop_now(l->b->loop);
				if (!l->paused_logged || now - l->paused_logged >= 10000) {
					log_warn(&l->b->log,
						 "accept on %s://%s: %s; not accepting for %d ms at a time until descriptors are free",
						 l->tr->scheme, l->url.path[0] ? l->url.path : l->url.host,
						 strerror(errno), STREAM_EMFILE_PAUSE_MS);
					l->paused_logged = now;
				}
				loop_mod(l->b->loop, &l->watch, 0);
				loop_timer_set(l->b->loop, &l->retry, STREAM_EMFILE_PAUSE_MS,
					       stream_accept_resume, l);
			} else if (errno != EAGAIN) {
				log_warn(&l->b->log, "accept: %s", strerror(errno));
			}
			return;
		}
		stream_adopt(l, fd);
	}
}

/* ---- dialing out ----
 *
 * A dialed connection is a stream connection whose socket is still
 * connecting: c->dial holds proto/net.c's dial (each address of the name in
 * turn), c->fd is its current socket, watched for writability, and every
 * event steps it (stream_event) instead of reading or writing.  Once TCP is
 * connected the io's handshake runs (TLS), then conn_dialed(). */

struct stream_dial {
	struct net_dial d;
	struct loop_timer later; /* a failure found inside stream_dial(), told from the loop */
	char why[320];
};

static void stream_dial_free(struct conn *c)
{
	struct stream_dial *dl = c->dial;

	if (!dl)
		return;
	loop_timer_cancel(c->b->loop, &dl->later);
	if (dl->d.fd == c->fd)
		dl->d.fd = -1; /* the connection's socket: stream_close closes it */
	net_dial_fini(&dl->d);
	free(dl);
	c->dial = NULL;
}

static void stream_dial_later(void *arg)
{
	struct conn *c = arg;
	conn_close(c, c->dial->why);
}

/* The connect (c->dial) or the handshake made progress, or failed. */
static void stream_dial_step(struct conn *c)
{
	struct stream_dial *dl = c->dial;
	char why[400];
	int rc;

	if (dl) {
		why[0] = 0;
		rc = net_dial_step(&dl->d, why, sizeof why);
		if (dl->d.fd != c->fd) {
			/* that address failed: the next one has a socket of
			 * its own (the old one is closed already) */
			loop_del(c->b->loop, &c->watch);
			c->fd = dl->d.fd;
			int r = c->fd < 0 ? 0
					  : loop_add(c->b->loop, &c->watch, c->fd, EPOLLOUT,
						     stream_event, c);
			if (r < 0) {
				snprintf(why, sizeof why, "connect %s: cannot watch the socket: %s",
					 c->addr, strerror(-r));
				conn_close(c, why);
				return;
			}
		}
		if (rc == -EAGAIN)
			return;
		if (rc < 0) {
			char text[sizeof why + 16];
			snprintf(text, sizeof text, "connect %s", why[0] ? why : strerror(-rc));
			conn_close(c, text);
			return;
		}
		snprintf(c->addr, sizeof c->addr, "%s", dl->d.peer);
		c->fd = net_dial_take(&dl->d);
		stream_dial_free(c);
		conn_describe(c);
		if (c->io && c->io->handshake) {
			c->dialing = CONN_DIAL_TLS;
			conn_watch(c);
		}
	}
	if (c->io && c->io->handshake) {
		why[0] = 0;
		rc = c->io->handshake(c, why, sizeof why);
		if (rc == 0)
			return;
		if (rc < 0) {
			conn_close(c, why[0] ? why : strerror(-rc));
			return;
		}
	}
	c->io_want_out = 0;
	conn_dialed(c);
}

int stream_dial(struct broker *b, const struct url *u, struct conn **out, char *err,
		size_t errlen)
{
	struct addrinfo *list;
	int rc = net_resolve(u->host, u->port, SOCK_STREAM, 0, &list, err, errlen);
	if (rc < 0)
		return rc;
	struct stream_dial *dl = calloc(1, sizeof *dl);
	struct conn *c = dl ? conn_new(b, -1, &stream_conn_ops, NULL) : NULL;
	if (!c) {
		free(dl);
		freeaddrinfo(list);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->dial = dl;
	c->outbound = 1;
	c->dialing = CONN_DIAL_CONNECT;
	snprintf(c->addr, sizeof c->addr, strchr(u->host, ':') ? "[%s]:%u" : "%s:%u", u->host,
		 (unsigned)u->port);
	conn_describe(c);
	char why[sizeof dl->why - 16];
	rc = net_dial_begin(&dl->d, list, why, sizeof why); /* takes list */
	if (rc == 0 || rc == -EAGAIN) {
		/* connecting (or connected at once): the socket says so by
		 * being writable, in the loop */
		c->fd = dl->d.fd;
		rc = loop_add(b->loop, &c->watch, c->fd, EPOLLOUT, stream_event, c);
		if (rc < 0) {
			snprintf(err, errlen, "%s: cannot watch the socket: %s", c->addr, strerror(-rc));
			c->fd = -1; /* not watched: closed by the dial's fini */
			conn_free(c);
			return rc;
		}
	} else {
		/* refused at once (a local port): told from the loop like any
		 * other failure, after the caller has set its hooks */
		snprintf(dl->why, sizeof dl->why, "connect %s", why);
		loop_timer_set(b->loop, &dl->later, 0, stream_dial_later, c);
	}
	broker_add_conn(b, c);
	*out = c;
	return 0;
}
