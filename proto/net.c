/*
 * net.c: socket set-up for the network transports (net.h says what and
 * why).  Nothing here knows about frames or connections: it makes, tunes
 * and names sockets, for the broker's listeners and the library's
 * transports alike.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

static void net_text(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b);
}

/* "host:port" as a user wrote it, for messages. */
static void net_hostport(char *out, size_t n, const char *host, uint16_t port)
{
	if (!host || !*host)
		snprintf(out, n, "*:%u", (unsigned)port);
	else if (strchr(host, ':'))
		snprintf(out, n, "[%s]:%u", host, (unsigned)port);
	else
		snprintf(out, n, "%s:%u", host, (unsigned)port);
}

static int net_gai_errno(int e)
{
	switch (e) {
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY:
#endif
		return -ENXIO;
	case EAI_AGAIN:
		return -ETIMEDOUT;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_FAMILY:
		return -EAFNOSUPPORT;
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	default:
		return -EINVAL;
	}
}

int net_resolve(const char *host, uint16_t port, int socktype, int passive,
		struct addrinfo **res, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = socktype, .ai_family = AF_UNSPEC};
	char svc[8], where[300];
	int e;

	*res = NULL;
	if (host && !*host)
		host = NULL;
	snprintf(svc, sizeof svc, "%u", (unsigned)port);
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	/* a literal first: that never blocks, nor asks a name server */
	hints.ai_flags |= AI_NUMERICHOST;
	e = getaddrinfo(host, svc, &hints, res);
	if (e == EAI_NONAME && host) {
		/* AI_ADDRCONFIG: no ::1 answer for a name on a host without
		 * IPv6 (it would only be refused) */
		hints.ai_flags &= ~AI_NUMERICHOST;
		hints.ai_flags |= AI_ADDRCONFIG;
		e = getaddrinfo(host, svc, &hints, res);
		if (e == EAI_NONAME
#ifdef EAI_ADDRFAMILY
		    || e == EAI_ADDRFAMILY
#endif
		) {
			/* AI_ADDRCONFIG ignores loopback: "localhost" on a
			 * host with only lo must still resolve */
			hints.ai_flags &= ~AI_ADDRCONFIG;
			e = getaddrinfo(host, svc, &hints, res);
		}
	}
	if (e == 0 && !*res)
		e = EAI_NONAME;
	if (e != 0) {
		int rc = net_gai_errno(e);
		*res = NULL;
		net_hostport(where, sizeof where, host, port);
		net_text(err, errlen, "%s: %s", where,
			 e == EAI_SYSTEM ? strerror(-rc) : gai_strerror(e));
		return rc;
	}
	return 0;
}

int net_keepalive(int fd, int idle_s, int intvl_s, int cnt)
{
	int on = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl_s, sizeof intvl_s) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0)
		return -errno;
	return 0;
}

int net_tcp_setup(int fd)
{
	int on = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0)
		return -errno;
	return net_keepalive(fd, NET_KEEPIDLE_S, NET_KEEPINTVL_S, NET_KEEPCNT);
}

static int net_is_tcp(const struct addrinfo *ai)
{
	return ai->ai_socktype == SOCK_STREAM &&
	       (ai->ai_family == AF_INET || ai->ai_family == AF_INET6);
}

int net_connect(const struct addrinfo *ai, int *fd)
{
	int s, rc;

	*fd = -1;
	s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (s < 0)
		return -errno;
	if (net_is_tcp(ai) && (rc = net_tcp_setup(s)) < 0)
		goto fail;
	if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0) {
		*fd = s;
		return 0;
	}
	rc = errno == EINPROGRESS || errno == EINTR ? -EAGAIN : -errno;
	if (rc == -EAGAIN) {
		*fd = s;
		return rc;
	}
fail:
	close(s);
	return rc;
}

int net_connect_finish(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof err;
	int n;

	do
		n = poll(&p, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EAGAIN;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	if (err)
		return err == EAGAIN ? -ECONNREFUSED : -err;
	return 0;
}

/* Start the next address of d, until one is connecting or connected. */
static int net_dial_next(struct net_dial *d)
{
	while (d->next) {
		const struct addrinfo *ai = d->next;
		d->next = ai->ai_next;
		net_addr_str(ai->ai_addr, ai->ai_addrlen, d->peer, sizeof d->peer);
		int rc = net_connect(ai, &d->fd);
		if (rc == 0 || rc == -EAGAIN)
			return rc;
		d->last_err = rc;
	}
	return d->last_err ? d->last_err : -ENXIO;
}

static void net_dial_text(struct net_dial *d, char *err, size_t errlen, int rc)
{
	net_text(err, errlen, "%s: %s", d->peer[0] ? d->peer : "(no address)", strerror(-rc));
}

int net_dial_begin(struct net_dial *d, struct addrinfo *list, char *err, size_t errlen)
{
	int rc;

	memset(d, 0, sizeof *d);
	d->fd = -1;
	d->list = d->next = list;
	rc = net_dial_next(d);
	if (rc < 0 && rc != -EAGAIN) {
		net_dial_text(d, err, errlen, rc);
		net_dial_fini(d);
	}
	return rc;
}

int net_dial_start(struct net_dial *d, const char *host, uint16_t port, int socktype,
		   char *err, size_t errlen)
{
	struct addrinfo *list;
	int rc;

	memset(d, 0, sizeof *d);
	d->fd = -1;
	rc = net_resolve(host, port, socktype, 0, &list, err, errlen);
	if (rc < 0)
		return rc;
	return net_dial_begin(d, list, err, errlen);
}

int net_dial_step(struct net_dial *d, char *err, size_t errlen)
{
	if (d->fd < 0)
		return d->last_err ? d->last_err : -ENXIO;
	int rc = net_connect_finish(d->fd);
	if (rc == 0 || rc == -EAGAIN)
		return rc;
	/* this address failed: on to the next */
	close(d->fd);
	d->fd = -1;
	d->last_err = rc;
	rc = net_dial_next(d);
	if (rc < 0 && rc != -EAGAIN)
		net_dial_text(d, err, errlen, rc);
	return rc;
}

int net_dial_take(struct net_dial *d)
{
	int fd = d->fd;

	d->fd = -1;
	if (d->list)
		freeaddrinfo(d->list);
	d->list = d->next = NULL;
	return fd;
}

void net_dial_fini(struct net_dial *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	if (d->list)
		freeaddrinfo(d->list);
	d->list = d->next = NULL;
}

int net_listen(const struct addrinfo *ai, int backlog, int *fd, char *err, size_t errlen)
{
	char where[NET_ADDRSTRLEN];
	int s, rc, on = 1;

	*fd = -1;
	net_addr_str(ai->ai_addr, ai->ai_addrlen, where, sizeof where);
	s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (s < 0) {
		rc = -errno;
		goto fail;
	}
	if (ai->ai_socktype == SOCK_STREAM &&
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) {
		rc = -errno;
		goto fail;
	}
	if (ai->ai_family == AF_INET6 &&
	    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0) {
		rc = -errno;
		goto fail;
	}
	if (net_is_tcp(ai) && (rc = net_tcp_setup(s)) < 0)
		goto fail;
	if (bind(s, ai->ai_addr, ai->ai_addrlen) < 0) {
		rc = -errno;
		goto fail;
	}
	if (ai->ai_socktype == SOCK_STREAM && listen(s, backlog > 0 ? backlog : SOMAXCONN) < 0) {
		rc = -errno;
		goto fail;
	}
	*fd = s;
	return 0;
fail:
	net_text(err, errlen, "%s: %s", where, strerror(-rc));
	if (s >= 0)
		close(s);
	return rc;
}

int net_listen_host(const char *host, uint16_t port, int socktype, int backlog, int *fd,
		    char *err, size_t errlen)
{
	struct addrinfo *res;
	int rc = net_resolve(host, port, socktype, 1, &res, err, errlen);

	*fd = -1;
	if (rc < 0)
		return rc;
	rc = net_listen(res, backlog, fd, err, errlen);
	freeaddrinfo(res);
	return rc;
}

int net_accept(int lfd, int *fd, char *peer, size_t peerlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int s;

	*fd = -1;
	do
		s = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	while (s < 0 && errno == EINTR);
	if (s < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
		/* Linux passes some options on from the listener, not all
		 * systems do: set them on every accepted socket */
		int rc = net_tcp_setup(s);
		if (rc < 0) {
			close(s);
			return rc;
		}
	}
	if (peer && peerlen && net_addr_str((struct sockaddr *)&ss, len, peer, peerlen) < 0)
		snprintf(peer, peerlen, "?");
	*fd = s;
	return 0;
}

int net_addr_str(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];

	if (!n)
		return -EINVAL;
	out[0] = 0;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		if (!inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a))
			return -errno;
		snprintf(out, n, "%s:%u", a, (unsigned)ntohs(s4->sin_port));
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		char ifn[IF_NAMESIZE];
		if (!inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a))
			return -errno;
		if (s6->sin6_scope_id) {
			size_t k = strlen(a);
			if (if_indextoname(s6->sin6_scope_id, ifn))
				snprintf(a + k, sizeof a - k, "%%%s", ifn);
			else
				snprintf(a + k, sizeof a - k, "%%%u", (unsigned)s6->sin6_scope_id);
		}
		snprintf(out, n, "[%s]:%u", a, (unsigned)ntohs(s6->sin6_port));
		return 0;
	}
	return -EINVAL;
}

int net_local_str(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return net_addr_str((struct sockaddr *)&ss, len, out, n);
}

int net_peer_str(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return net_addr_str((struct sockaddr *)&ss, len, out, n);
}

int net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}
