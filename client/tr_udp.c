/*
 * tr_udp.c: udp://host:port, one frame per datagram (TR_DGRAM).
 *
 * The socket is connect()ed to the broker's address, so that only the
 * broker's datagrams arrive and the kernel reports an ICMP "port
 * unreachable" (nobody listens there: the broker stopped, or never ran) as
 * ECONNREFUSED on the next recv or send; read() and write() return it and
 * the session drops the connection and reconnects with backoff.  A connect
 * of a UDP socket sends nothing and completes at once, so connect() never
 * returns -EAGAIN.  The name is resolved at every attempt (a moved broker
 * is found again); a name with several addresses is tried one address per
 * attempt, in turn: the next attempt takes the next address when nothing
 * at all came back from this one.
 *
 * Framing: write() sends each varint-delimited frame of the output buffer
 * as one datagram without its prefix; read() returns one datagram as one
 * delimited frame, its prefix written in front of it, so the session parses
 * every transport's input alike.  A datagram the kernel refuses as too big
 * (EMSGSIZE: the session checks the broker's limits first, so this should
 * not happen) is dropped and counted (dropped()); a full socket (EAGAIN,
 * ENOBUFS) keeps the frame queued for the next write.  An empty datagram,
 * or one larger than the room offered, is dropped and counted too.
 *
 * What UDP needs beyond framing (the cookie handshake, HELLO and SUB
 * retransmission, the lease) is the session's: client/dgram.c.
 *
 * Test-only: $IPCBUS_TEST_UDP_DROP=N (N > 0) makes this transport pretend
 * to send every Nth outgoing datagram and drop it instead, counted from
 * the first datagram of the ipcbus connection, so that tests can lose a
 * HELLO or a SUB on the loopback, which loses nothing.  These drops are
 * not counted in dropped(): they stand for the network's losses, which
 * nobody reports.  Read once, at the first connect.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "net.h"
#include "tr.h"

/* Bytes of the varint prefix read() leaves room for: 3 hold any length up
 * to 2^21 - 1, more than any datagram. */
#define TR_UDP_PREFIX 3
/* The socket's receive buffer asked for (the kernel caps it at
 * net.core.rmem_max): room for bursts of messages between two reads. */
#define TR_UDP_RCVBUF (1 << 20)
/* Datagrams one read() may skip (dropped ones) before it says -EAGAIN. */
#define TR_UDP_SKIP_MAX 64

_Static_assert(TR_DGRAM_ROOM >= 65535 + TR_UDP_PREFIX, "room for any datagram");

/* priv: what outlives one connection */
struct tr_udp {
	unsigned idx;        /* the address of the name to use next */
	int heard;           /* a datagram arrived on this socket */
	uint64_t dropped;    /* too big to send, empty or too big to read */
	uint64_t drop_every; /* $IPCBUS_TEST_UDP_DROP; 0: off */
	uint64_t sent;       /* datagrams written (for drop_every) */
};

static struct tr_udp *tr_udp_priv(struct tr *t)
{
	struct tr_udp *p = t->priv;

	if (p)
		return p;
	p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	const char *e = getenv("IPCBUS_TEST_UDP_DROP");
	if (e && *e) {
		char *end;
		unsigned long long n = strtoull(e, &end, 10);
		if (*end == 0)
			p->drop_every = n;
	}
	t->priv = p;
	return p;
}

static int tr_udp_connect(struct tr *t, const struct url *u, char *err, size_t errlen)
{
	struct tr_udp *p = tr_udp_priv(t);
	struct addrinfo *list, *ai;
	char peer[NET_ADDRSTRLEN] = "";
	unsigned n = 0;
	int fd = -1, rc;

	if (!p)
		return -ENOMEM;
	rc = net_resolve(u->host, u->port, SOCK_DGRAM, 0, &list, err, errlen);
	if (rc < 0)
		return rc;
	for (ai = list; ai; ai = ai->ai_next)
		n++;
	/* from the address due, the first whose socket connects (a UDP
	 * connect fails only locally: no route, no such address family) */
	for (unsigned tried = 0; tried < n; tried++, p->idx++) {
		ai = list;
		for (unsigned i = 0; i < p->idx % n; i++)
			ai = ai->ai_next;
		if (net_addr_str(ai->ai_addr, ai->ai_addrlen, peer, sizeof peer) < 0)
			snprintf(peer, sizeof peer, "%.*s", (int)sizeof peer - 1, u->host);
		rc = net_connect(ai, &fd);
		if (rc == -EAGAIN) {
			/* not for UDP, whose connect only sets the peer address */
			close(fd);
			rc = -EIO;
		}
		if (rc == 0)
			break;
	}
	freeaddrinfo(list);
	if (rc < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", peer, strerror(-rc));
		return rc;
	}
	int rcv = TR_UDP_RCVBUF;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv); /* a wish */
	p->heard = 0;
	t->fd = fd;
	t->want_read = EPOLLIN;
	t->want_write = EPOLLOUT;
	return 0;
}

static int tr_udp_connected(struct tr *t, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return t->fd >= 0 ? 0 : -ENOTCONN;
}

static ssize_t tr_udp_read(struct tr *t, void *buf, size_t n)
{
	struct tr_udp *p = t->priv;
	uint8_t *d = buf;

	if (n <= TR_UDP_PREFIX)
		return -ENOBUFS;
	for (int skipped = 0; skipped < TR_UDP_SKIP_MAX;) {
		/* MSG_TRUNC: the datagram's real length, to tell one cut short */
		ssize_t k = recv(t->fd, d + TR_UDP_PREFIX, n - TR_UDP_PREFIX, MSG_DONTWAIT | MSG_TRUNC);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		p->heard = 1;
		if (k == 0 || (size_t)k > n - TR_UDP_PREFIX) {
			p->dropped++;
			skipped++;
			continue;
		}
		size_t pl = frame_varint_len((uint64_t)k);
		if (pl < TR_UDP_PREFIX)
			memmove(d + pl, d + TR_UDP_PREFIX, (size_t)k);
		frame_varint_put(d, (uint64_t)k);
		return (ssize_t)(pl + (size_t)k);
	}
	return -EAGAIN; /* the rest at the next read */
}

static int tr_udp_write(struct tr *t, struct buf *out)
{
	struct tr_udp *p = t->priv;

	while (buf_len(out) > 0) {
		const uint8_t *body;
		size_t blen, need;
		long k = frame_split(buf_rptr(out), buf_len(out), SIZE_MAX, &body, &blen, &need);
		if (k <= 0)
			return -EPROTO; /* not whole frames: the session's mistake */
		if (p->drop_every && ++p->sent % p->drop_every == 0) {
			buf_consume(out, (size_t)k); /* lost "on the way" */
			continue;
		}
		ssize_t s = send(t->fd, body, blen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (s < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EWOULDBLOCK || errno == ENOBUFS)
				return -EAGAIN;
			if (errno != EMSGSIZE)
				return -errno;
			p->dropped++; /* this frame cannot go; the next may */
		}
		buf_consume(out, (size_t)k);
	}
	return 0;
}

static void tr_udp_close(struct tr *t)
{
	struct tr_udp *p = t->priv;

	if (p && t->fd >= 0 && !p->heard)
		p->idx++; /* nothing from that address: the next one next time */
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

static void tr_udp_fini(struct tr *t)
{
	free(t->priv);
	t->priv = NULL;
}

static uint64_t tr_udp_dropped(const struct tr *t)
{
	const struct tr_udp *p = t->priv;
	return p ? p->dropped : 0;
}

const struct tr_ops tr_udp_ops = {
	.kind = URL_UDP,
	.flags = TR_REMOTE | TR_DGRAM,
	.connect = tr_udp_connect,
	.connected = tr_udp_connected,
	.read = tr_udp_read,
	.write = tr_udp_write,
	.close = tr_udp_close,
	.fini = tr_udp_fini,
	.dropped = tr_udp_dropped,
};
