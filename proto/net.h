/*
 * net.h: socket set-up for the network transports, written once for the
 * broker and the library: resolving host:port, non-blocking connects that
 * try every address of a name in turn, listening, accepting, the TCP
 * options both sides set, and addresses as text.
 *
 * Conventions:
 *   - every descriptor made here is SOCK_NONBLOCK | SOCK_CLOEXEC;
 *   - every call returns 0 (or a count) or -errno; a resolver failure is
 *     mapped to an errno (see net_resolve) and never to -EAGAIN, which the
 *     connect calls reserve for "in progress, wait for the descriptor";
 *   - calls that take err/errlen also write a text for the caller there
 *     ("host:port: reason"), NUL-terminated and cut to errlen; err may be
 *     NULL (errlen 0);
 *   - hosts are as proto/url.c gives them: a name, an IPv4 literal, or an
 *     IPv6 literal without its brackets ("::1", "fe80::1%eth0").
 *
 * Decisions:
 *   - IPv6 listening sockets are IPV6_V6ONLY, whatever the system's
 *     net.ipv6.bindv6only says: `[::]` means every IPv6 address and
 *     `0.0.0.0` every IPv4 one, so both can be listened on at once (two
 *     listen lines, as nginx does), and a peer address is never an
 *     IPv4-mapped ::ffff:a.b.c.d.
 *   - SO_REUSEADDR on stream listeners only (a restarted broker binds at
 *     once despite TIME_WAIT).  On Linux SO_REUSEADDR lets two UDP sockets
 *     share a port, so a datagram listener never sets it: a second broker
 *     on the same UDP port fails with EADDRINUSE.
 *   - Keepalive: idle 30 s, then 3 probes 10 s apart, so a peer whose host
 *     vanished (no FIN, no RST) is found dead in about a minute even when
 *     no side has anything to send.  TCP_NODELAY: frames are written whole
 *     and at once, so Nagle only adds latency.
 *   - Name lookups (getaddrinfo) block; a numeric host never does (it is
 *     tried with AI_NUMERICHOST first).  The library resolves at every
 *     connection attempt, so a broker that moved is found again.
 */
#ifndef IPCBUS_NET_H
#define IPCBUS_NET_H

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NET_KEEPIDLE_S 30 /* idle seconds before the first keepalive probe */
#define NET_KEEPINTVL_S 10 /* seconds between probes */
#define NET_KEEPCNT 3      /* unanswered probes before the connection dies */
#define NET_BACKLOG 0      /* net_listen(): 0 takes SOMAXCONN (the kernel caps it) */

/* "host:port" or "[v6]:port": enough for any numeric address with a scope. */
#define NET_ADDRSTRLEN (INET6_ADDRSTRLEN + 32)

/* Resolve host:port for socktype (SOCK_STREAM, SOCK_DGRAM).  passive: for
 * listening (a NULL or empty host then means every address: "::" and
 * "0.0.0.0").  Returns 0 and *res (the caller frees it with freeaddrinfo),
 * or a negative code: -ENXIO for a name that does not exist or has no
 * address, -ETIMEDOUT for a temporary resolver failure (EAI_AGAIN),
 * -ENOMEM, -EAFNOSUPPORT, -errno of EAI_SYSTEM, -EINVAL otherwise; err
 * says which. */
int net_resolve(const char *host, uint16_t port, int socktype, int passive,
		struct addrinfo **res, char *err, size_t errlen);

/* A socket for ai with its connect() started.  Returns 0 and *fd connected
 * (a local address may complete at once), -EAGAIN and *fd connecting (wait
 * until it is writable, then net_connect_finish), or -errno and no
 * descriptor.  Stream sockets get net_tcp_setup() first. */
int net_connect(const struct addrinfo *ai, int *fd);

/* Has the connect() on fd completed?  Does not block (polls with timeout
 * 0).  0 connected, -EAGAIN not yet, or the connect's -errno (SO_ERROR). */
int net_connect_finish(int fd);

/* A connect to every address of a name in turn: the first that connects
 * wins, the error of the last one is reported.  Used by the library's TCP
 * and UDP transports and by the broker's dial-outs (bridges). */
struct net_dial {
	struct addrinfo *list; /* owned: from net_resolve */
	struct addrinfo *next; /* the next address to try */
	int fd;                /* the socket of the attempt; -1 */
	int last_err;          /* of the previous address; 0 */
	char peer[NET_ADDRSTRLEN]; /* the address of the attempt, as text */
};

/* Resolve host:port and start connecting to its first address.  0 and
 * d->fd connected, -EAGAIN connecting (wait for d->fd to be writable, then
 * net_dial_step), or a negative code (err says why; nothing to free).
 * d->fd may change from one call to the next. */
int net_dial_start(struct net_dial *d, const char *host, uint16_t port, int socktype,
		   char *err, size_t errlen);

/* The same for a list resolved already, which d takes (net_dial_take or
 * net_dial_fini frees it; on failure it is freed before the return). */
int net_dial_begin(struct net_dial *d, struct addrinfo *list, char *err, size_t errlen);

/* Continue: 0 connected (d->fd), -EAGAIN still connecting (d->fd is
 * possibly a new socket, for the next address), or the negative code of the
 * last address when none connected (err says which). */
int net_dial_step(struct net_dial *d, char *err, size_t errlen);

/* The connected socket, taken by the caller (d->fd is -1 after); the
 * addresses are freed.  -1 when there is none. */
int net_dial_take(struct net_dial *d);

/* Free what d holds (closing a socket not taken).  A zeroed or finished d
 * is fine. */
void net_dial_fini(struct net_dial *d);

/* A listening socket for ai: SO_REUSEADDR (streams), IPV6_V6ONLY (IPv6),
 * bind, listen(backlog; <= 0: SOMAXCONN) for streams.  0 and *fd, or -errno
 * (err names the address). */
int net_listen(const struct addrinfo *ai, int backlog, int *fd, char *err, size_t errlen);

/* Resolve and listen on the first address of host:port (a name with several
 * addresses: call net_resolve and net_listen for each).  0 and *fd, or a
 * negative code with err. */
int net_listen_host(const char *host, uint16_t port, int socktype, int backlog, int *fd,
		    char *err, size_t errlen);

/* accept4() with SOCK_NONBLOCK | SOCK_CLOEXEC; peer (may be NULL) gets the
 * peer's address as text.  TCP sockets get net_tcp_setup().  0 and *fd, or
 * -errno (-EAGAIN: nothing waiting). */
int net_accept(int lfd, int *fd, char *peer, size_t peerlen);

/* TCP_NODELAY and keepalive with the NET_KEEP* values.  0 or -errno. */
int net_tcp_setup(int fd);

/* SO_KEEPALIVE with the given idle/interval seconds and probe count. */
int net_keepalive(int fd, int idle_s, int intvl_s, int cnt);

/* An address as "1.2.3.4:5" or "[::1]:5" (scope included).  0 or -EINVAL. */
int net_addr_str(const struct sockaddr *sa, socklen_t len, char *out, size_t n);

/* The local (bound) or peer address of fd as text.  0 or -errno. */
int net_local_str(int fd, char *out, size_t n);
int net_peer_str(int fd, char *out, size_t n);

/* The local port of a bound socket (an ephemeral one, in tests), or -errno. */
int net_local_port(int fd);

#endif
