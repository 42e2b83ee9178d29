/*
 * tr_tcp.c: the TCP stream transport: addressing only (a listening socket
 * for host:port, IPv4 or IPv6, and the options of an accepted socket);
 * everything else is tr_stream.c, dialing out too (stream_dial: a dialed
 * socket gets the same options from net_connect).  tr_tls.c listens the
 * same way.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "broker.h"
#include "conn.h"
#include "net.h"
#include "transport.h"

/* A host that only this machine can reach. */
static int tcp_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

int tcp_listen_on(struct broker *b, const struct url *u, struct listener *l, char *err,
		  size_t errlen)
{
	int rc;

	l->fd = -1;
	l->b = b;
	l->url = *u;
	if ((rc = net_listen_host(u->host, u->port, SOCK_STREAM, 0, &l->fd, err, errlen)) < 0)
		return rc;
	if ((rc = loop_add(b->loop, &l->watch, l->fd, EPOLLIN, stream_accept, l)) < 0) {
		snprintf(err, errlen, "watch %s:%u: %s", u->host, (unsigned)u->port, strerror(-rc));
		close(l->fd);
		l->fd = -1;
		return rc;
	}
	/* other hosts can reach it: say so when nothing checks who comes */
	if (!tcp_loopback(u->host) && b->cfg.ntokens == 0 &&
	    !(l->tr == &transport_tls && b->cfg.tls_ca))
		log_warn(&b->log,
			 "%s://%s:%u accepts clients from other hosts without a token%s: anyone who can reach it can publish and subscribe",
			 l->tr->scheme, u->host, (unsigned)u->port,
			 l->tr == &transport_tls ? " or client certificates" : "");
	return 0;
}

static int tcp_listen(struct broker *b, const struct url *u, struct listener **out, char *err,
		      size_t errlen)
{
	struct listener *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->tr = &transport_tcp;
	int rc = tcp_listen_on(b, u, l, err, errlen);
	if (rc < 0) {
		free(l);
		return rc;
	}
	*out = l;
	return 0;
}

void tcp_unlisten(struct listener *l)
{
	loop_timer_cancel(l->b->loop, &l->retry);
	loop_del(l->b->loop, &l->watch);
	close(l->fd);
}

int tcp_adopt(struct conn *c)
{
	if (net_peer_str(c->fd, c->addr, sizeof c->addr) < 0)
		snprintf(c->addr, sizeof c->addr, "unknown address");
	return net_tcp_setup(c->fd);
}

const struct transport transport_tcp = {
	.scheme = "tcp",
	.network = 1,
	.listen = tcp_listen,
	.unlisten = tcp_unlisten,
	.adopt = tcp_adopt,
	.dial = stream_dial,
};
