/*
 * tr_tcp.c: tcp://host:port.  The connect is proto/net.c's dial: the name
 * is resolved at every attempt (a moved broker is found again; a numeric
 * host never waits for a name server), then each address is tried in turn
 * without blocking, the first to connect wins.  Sockets get TCP_NODELAY and
 * keepalive (net.h says which timers).  Once connected it is a byte stream
 * like any other (tr_stream.c).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "net.h"
#include "tr.h"

/* priv: the dial of the attempt under way */
static int tr_tcp_connect(struct tr *t, const struct url *u, char *err, size_t errlen)
{
	struct net_dial *d = t->priv;
	int rc;

	if (!d) {
		d = calloc(1, sizeof *d);
		if (!d)
			return -ENOMEM;
		d->fd = -1;
		t->priv = d;
	}
	rc = net_dial_start(d, u->host, u->port, SOCK_STREAM, err, errlen);
	if (rc == 0) {
		t->fd = net_dial_take(d);
		tr_stream_ready(t);
		return 0;
	}
	if (rc == -EAGAIN) {
		t->fd = d->fd;
		t->want_read = 0;
		t->want_write = EPOLLOUT; /* a connect completes as writable */
	}
	return rc;
}

static int tr_tcp_connected(struct tr *t, char *err, size_t errlen)
{
	struct net_dial *d = t->priv;

	if (!d || d->fd < 0)
		return t->fd >= 0 ? 0 : -ENOTCONN;
	int rc = net_dial_step(d, err, errlen);
	t->fd = d->fd;
	if (rc == 0) {
		t->fd = net_dial_take(d);
		tr_stream_ready(t);
	}
	return rc;
}

static void tr_tcp_close(struct tr *t)
{
	struct net_dial *d = t->priv;

	if (d && d->fd == t->fd)
		d->fd = -1; /* the same socket: closed once, below */
	if (d)
		net_dial_fini(d);
	tr_stream_close(t);
}

static void tr_tcp_fini(struct tr *t)
{
	free(t->priv);
	t->priv = NULL;
}

const struct tr_ops tr_tcp_ops = {
	.kind = URL_TCP,
	.flags = TR_REMOTE,
	.connect = tr_tcp_connect,
	.connected = tr_tcp_connected,
	.read = tr_stream_read,
	.write = tr_stream_write,
	.close = tr_tcp_close,
	.fini = tr_tcp_fini,
};
