/*
 * tr.h: the transports of libipcbus.  The session (conn*.c: HELLO, frames,
 * reconnect, waits) is written once; each transport is one small file that
 * fills in a struct tr_ops, found by its URL kind through tr_find():
 *
 *   tr_stream.c  read, write and close of a connected byte-stream socket,
 *                shared by the stream transports
 *   tr_unix.c    unix:///path            AF_UNIX, connects at once
 *   tr_tcp.c     tcp://host:port         proto/net.c's dial: every address in
 *                                        turn, non-blocking, TCP_NODELAY
 *   tr_tls.c     tls://host:port         tr_tcp.c's dial, then a non-blocking
 *                                        TLS handshake (proto/tls.c)
 *   tr_udp.c     udp://host:port         a connected UDP socket, one frame per
 *                                        datagram (TR_DGRAM); the session rules
 *                                        of datagrams are dgram.c's
 *   tr_sysv.c    sysv://KEY              two private SysV queues and a helper
 *                                        thread that blocks in msgrcv/msgsnd
 *                                        and wakes an eventfd (t->fd)
 *
 * The session keeps one epoll set (ipcbus_fd()) and puts the transport's
 * t->fd in it, watched for what the transport asks: want_read while frames
 * may come, want_write while a write is left over, both while connecting.
 * A transport never touches the epoll set, never blocks, and never calls
 * back into the session: every op returns, and "not now" is -EAGAIN with
 * want_read/want_write saying which readiness of t->fd to wait for.  A TLS
 * transport maps SSL_ERROR_WANT_READ/WANT_WRITE onto them, so a read may
 * wait for writability and a write for readability; its handshake is more
 * calls of connected().  A transport with no descriptor of its own (SysV
 * queues) gives an eventfd that its helper thread signals.
 *
 * Errors are -errno or an IPCBUS_E* code; ops that take err/errlen put a
 * text there for the program ("127.0.0.1:4222: Connection refused"), left
 * empty when the code says it all.  One connection is used from one thread
 * at a time; so is its transport.
 */
#ifndef IPCBUS_CLIENT_TR_H
#define IPCBUS_CLIENT_TR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "ipcbus.pb-c.h"
#include "url.h"

enum {
	/* The peer may be on another host: HELLO carries the token (never
	 * over a local transport: there the socket's permissions decide). */
	TR_REMOTE = 1 << 0,
	/* One frame per datagram, without the varint prefix (UDP): write()
	 * sends whole frames only, read() returns one datagram as one
	 * delimited frame (see read). */
	TR_DGRAM = 1 << 1,
};

/* The room a TR_DGRAM read() needs for any datagram: the largest UDP
 * payload and its varint prefix.  The session always offers this much. */
#define TR_DGRAM_ROOM (65535 + 3)

/* One connection's transport, embedded in struct ipcbus.  The session reads
 * fd, want_read and want_write; the transport writes them. */
struct tr {
	const struct tr_ops *ops;
	/* The descriptor the session watches; -1 when there is none.  It may
	 * change while connecting (a dial that tries the next address closes
	 * the old socket itself); from connected() returning 0 until close()
	 * it stays the same. */
	int fd;
	/* epoll events (EPOLLIN, EPOLLOUT) to wait for before the next read,
	 * and before retrying a write that returned -EAGAIN; while connecting,
	 * both together say what connected() waits for.  A connection that
	 * becomes ready sets them to EPOLLIN and EPOLLOUT unless it knows
	 * better. */
	uint32_t want_read, want_write;
	/* The transport's own state (a dial in progress, a TLS session and
	 * context), created by connect() when NULL; it outlives close() so
	 * that a reconnect can reuse it, and is freed by fini(). */
	void *priv;
};

struct tr_ops {
	enum url_kind kind;
	unsigned flags; /* TR_REMOTE, TR_DGRAM */

	/* Start a connection to u: called for every attempt (the first and
	 * each reconnect), with no connection open.  Returns 0 when t->fd is
	 * connected and ready for frames, -EAGAIN when it is under way (t->fd
	 * set, want_read/want_write say what to wait for: then connected()),
	 * or a negative code with err and nothing left open.  u is borrowed
	 * and stays valid as long as the connection (the transport may keep
	 * the pointer in priv).  Name lookups may block (net.h). */
	int (*connect)(struct tr *t, const struct url *u, char *err, size_t errlen);

	/* Go on with a connection under way.  May be called at any time,
	 * whether t->fd is ready or not, and never blocks: 0 ready for frames,
	 * -EAGAIN not yet (want_* updated; t->fd may be a new descriptor), or
	 * a negative code with err (the session then calls close()).  A
	 * transport whose connect() never returns -EAGAIN returns 0. */
	int (*connected)(struct tr *t, char *err, size_t errlen);

	/* Read into p, at most n bytes (n > 0).  Returns the count (> 0), 0
	 * at the end of the stream (the broker closed), -EAGAIN when nothing
	 * is there (wait for want_read), or -errno.  EINTR is retried inside.  A TR_DGRAM transport returns one
	 * datagram as one varint-delimited frame (it writes the prefix before
	 * the body), so that the session parses every transport's input the
	 * same way; it drops, and counts, a datagram that does not fit (the
	 * session offers TR_DGRAM_ROOM: see conn_read()), and an empty one,
	 * so that 0 keeps meaning the end.  An error the medium reports for
	 * the peer (a connected UDP socket's ECONNREFUSED: an ICMP "port
	 * unreachable", nobody listens there) is returned as it is: the
	 * session then drops the connection and reconnects. */
	ssize_t (*read)(struct tr *t, void *p, size_t n);

	/* Write from the front of out and buf_consume() what was written.
	 * out holds whole varint-delimited frames and is not empty.  Returns
	 * 0 when out is empty, -EAGAIN when some is left (wait for
	 * want_write), or -errno (-EPIPE, -ECONNRESET when the broker closed:
	 * the session then reads what it said first).  Writes use MSG_NOSIGNAL
	 * (or the transport's equivalent): never SIGPIPE.  A stream transport
	 * may write any prefix; a TR_DGRAM transport sends each frame as one
	 * datagram without its prefix and consumes a frame only once it is
	 * sent (or dropped: a frame the medium refuses as too big, EMSGSIZE,
	 * is consumed and counted, see dropped(), and the next one goes).  Between an -EAGAIN and the next call the session only appends
	 * to out: the bytes at its front are the same (SSL_write's retry rule),
	 * but their address may have moved (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
	int (*write)(struct tr *t, struct buf *out);

	/* Optional (NULL: 0).  Bytes a read() would return at once although
	 * t->fd may not be readable (TLS records decrypted ahead).  While it
	 * is not 0 the session reads again without waiting in epoll_wait, and
	 * ipcbus_timeout() is 0. */
	size_t (*pending)(const struct tr *t);

	/* Optional (NULL: none).  A text for the last failure of read() or
	 * write(), when the code does not say it all (a TLS alert from the
	 * broker: "it requires a client certificate"), else NULL.  Valid
	 * until the next op. */
	const char *(*errtext)(const struct tr *t);

	/* End the connection or the attempt, in whatever state it is (also
	 * right after a failed connected()): close t->fd and set it to -1.
	 * What outlives connections stays in priv.  The session has already
	 * removed t->fd from its epoll set.  Never fails. */
	void (*close)(struct tr *t);

	/* Optional.  Free priv at ipcbus_close(), after close(). */
	void (*fini)(struct tr *t);

	/* Optional (NULL: nothing).  Put what this transport's HELLO carries
	 * into h (sysv: its queues and the proof, Hello.sysv), pointing to
	 * storage of the transport's own, valid until close().  Called once
	 * per connection, before the HELLO is encoded and written. */
	void (*hello)(struct tr *t, Ipcbus__Hello *h);

	/* Optional (NULL: none).  A check every tick_ms while a connection
	 * is open (HELLO sent or welcomed), for a medium with no end of its
	 * own to report: a SysV broker that died leaves its queues silent.
	 * 0, or a negative code with err: the session drops the connection
	 * (and reconnects, as after any loss). */
	int (*tick)(struct tr *t, char *err, size_t errlen);
	int tick_ms;

	/* Optional (NULL: 0).  Frames dropped so far, over every connection
	 * of this struct tr: datagrams too big to send or to receive (or, in
	 * a test, dropped on purpose).  The session reports each new count
	 * as an IPCBUS_EV_ERROR. */
	uint64_t (*dropped)(const struct tr *t);
};

/* The transport of a URL kind, or NULL when this library has none. */
const struct tr_ops *tr_find(enum url_kind kind);

/* The schemes tr_find() knows, for messages: "unix://, tcp://, tls://, udp://". */
const char *tr_schemes(void);

/* tr_stream.c: ops for a connected byte-stream socket in t->fd. */
ssize_t tr_stream_read(struct tr *t, void *p, size_t n);
int tr_stream_write(struct tr *t, struct buf *out);
void tr_stream_close(struct tr *t);
/* A connection that is ready for frames: want_read EPOLLIN, want_write
 * EPOLLOUT. */
void tr_stream_ready(struct tr *t);

extern const struct tr_ops tr_unix_ops, tr_tcp_ops, tr_tls_ops, tr_udp_ops, tr_sysv_ops;

#endif
