/*
 * transport.h: the interface every transport implements.
 *
 * A transport has two small tables.  struct transport opens and closes a
 * listener for its URL scheme.  struct conn_ops moves bytes for one
 * connection: read_ready() takes what arrived and hands each complete frame
 * to conn_frame(); flush() writes the connection's queued output (c->out, a
 * stream of length-delimited frames).  So every transport shares the
 * protocol, the limits and the router, whatever the medium:
 *
 *   - stream transports (unix, tcp, fifo) share tr_stream.c: read into
 *     c->in, split frames, write c->out; tr_unix.c only adds addressing;
 *     tcp and tls also dial out (bridges to peer brokers): the connect,
 *     a TLS client handshake, then the same stream;
 *   - datagram transports (udp) turn one datagram into one conn_frame() and
 *     send one frame per datagram in flush();
 *   - SysV queues and shared-memory rings cannot be polled: a thread per
 *     endpoint blocks in msgrcv/semop and hands frames to the loop through a
 *     struct loop_async; read_ready() then drains what the thread queued
 *     (tr_sysv.c: a reader per client queue, and a writer that waits in
 *     msgsnd when a client's queue is full, instead of EPOLLOUT).
 */
#ifndef IPCBUS_TRANSPORT_H
#define IPCBUS_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "loop.h"
#include "url.h"

struct broker;
struct conn;
struct listener;

struct conn_ops {
	/* The connection's descriptor is readable: read at most the broker's
	 * per-turn budget and call conn_frame() for each complete frame (it
	 * stops early once the connection is closing).  On EOF or a read
	 * error, call conn_close().  Once the connection is closing, read and
	 * discard (within the same budget) and set c->eof at EOF or error. */
	void (*read_ready)(struct conn *c);
	/* Write queued output (c->out), calling conn_sent() for what went
	 * out.  Returns 0 when all was written, 1 when some is left (the
	 * caller watches for writability), or -errno (the caller closes the
	 * connection). */
	int (*flush)(struct conn *c);
	/* Closing, with everything written: end the output (a stream's
	 * write side is shut down so the peer reads EOF after the ERR).
	 * NULL when the medium has no such thing. */
	void (*shutdown)(struct conn *c);
	/* Wait for input (in) and for room to write (out), whatever that
	 * means for the medium: a socket changes its epoll events; a medium
	 * with nothing to poll (a full SysV queue) arms a retry of its own.
	 * Called on every change; the connection layer never touches a
	 * descriptor. */
	void (*watch)(struct conn *c, int in, int out);
	/* Release the transport's resources (stop watching, close). */
	void (*close)(struct conn *c);
};

struct transport {
	const char *scheme;
	int network;  /* tcp, tls, udp: clients present tokens (auth.c) */
	int datagram; /* udp: sessions, HELLO repeated, SUB acknowledged */
	/* Open a listener for u and watch it.  0, or -errno / IPCBUS_E* with
	 * a reason in err.  The listener is linked into the broker. */
	int (*listen)(struct broker *b, const struct url *u, struct listener **out, char *err,
		      size_t errlen);
	/* Stop listening and remove what listen created (a socket file).
	 * The listener's memory stays until fini: connections still name it. */
	void (*unlisten)(struct listener *l);
	/* Free what the listener holds besides itself, once every connection
	 * is gone (NULL: nothing). */
	void (*fini)(struct listener *l);
	/* A new connection came in: learn who is at the other end, for logs
	 * and ACLs (the credentials of a Unix socket: c->has_cred, pid, uid,
	 * gid; the address of a network peer: c->addr), and set up what the
	 * medium needs (TCP options, a TLS session in c->io).  0, or -errno
	 * and the connection is refused.  NULL: nothing to do. */
	int (*adopt)(struct conn *c);
	/* Dial u (a peer broker, for a bridge) without blocking: a new connection
	 * (listener NULL, c->dialing = 1, state CONN_HELLO) linked into the broker
	 * (broker_add_conn) and watched.  Once it is established (TCP connected; for
	 * TLS the client handshake done, the peer's certificate verified against
	 * ?ca=FILE or the system's store and the URL's host; ?cert=&key= give a client
	 * certificate) the transport calls conn_dialed(c); on failure it calls
	 * conn_close(c, why) with a why that names the cause ("connect 127.0.0.1:4222:
	 * Connection refused", "TLS: certificate verify failed ...").  0 and *out, or
	 * -errno / IPCBUS_E* with a reason in err (a name that does not resolve...).
	 * NULL: the transport cannot dial (unix, udp).
	 *
	 * Neither conn_dialed() nor conn_close() is ever called from inside
	 * dial(): a failure found at once (a local port that refuses) is told
	 * from the loop, so the caller sets c->dialed and c->link after dial()
	 * returns.  c->outbound is set (no max-connections place); c->addr is
	 * the URL's "host:port", then the address connected to.  Until
	 * conn_dialed() nothing is read or written but the connect and the
	 * handshake: frames queued meanwhile wait.  The broker's HELLO deadline
	 * (CONN_HELLO_MS, or ping-interval) bounds the dial.  A name is
	 * resolved here and that blocks (a numeric host never does; net.h).
	 * The TLS context is the dial's own, made from the URL's files at each
	 * call (a reconnect reads files replaced meanwhile) and freed with the
	 * connection; the IPCBUS_TLS_* variables are the library's, not read
	 * here. */
	int (*dial)(struct broker *b, const struct url *u, struct conn **out, char *err,
		    size_t errlen);
};

/* How a stream transport moves bytes when it is not a plain socket (TLS):
 * tr_stream.c calls these instead of read/sendmsg/shutdown. */
struct stream_io {
	/* Up to n bytes: > 0, 0 at EOF, -EAGAIN, or -errno (a text for the
	 * log in c->desc's log line is the transport's to write). */
	ssize_t (*recv)(struct conn *c, void *p, size_t n);
	/* Bytes taken from iov, -EAGAIN, or -errno. */
	ssize_t (*sendv)(struct conn *c, const struct iovec *iov, int n);
	/* 1 when bytes are buffered inside (read them before waiting). */
	int (*pending)(struct conn *c);
	/* The end of output (before the socket's own shutdown). */
	void (*shutdown)(struct conn *c);
	/* Free the session (before the socket is closed). */
	void (*fini)(struct conn *c);
	/* A dialed connection's socket is connected: advance the client's
	 * handshake.  1 done, 0 not yet (c->io_want_out says whether it waits
	 * for room to write, else for input; the io calls conn_watch() when
	 * that changes), or a negative code with a text for conn_close() in
	 * err.  NULL: nothing to do (never called for accepted connections). */
	int (*handshake)(struct conn *c, char *err, size_t errlen);
};

/* A listener: what every transport's listener has.  A transport with
 * state of its own embeds this as the first member of a struct of its own
 * (tr_unix.c's socket file), allocated by its listen() and freed with
 * free() by the broker. */
struct listener {
	const struct transport *tr;
	struct broker *b;
	struct url url;
	struct loop_watch watch;
	struct loop_timer retry; /* accept paused after EMFILE */
	uint64_t paused_logged;  /* when that was last logged */
	int fd;
	size_t frame_max;        /* the medium's frame limit (a datagram), or 0 */
	uint64_t max_payload;    /* and the limits WELCOME announces, or 0 */
	uint64_t max_header_bytes;
	struct listener *next;
};

/* The transports, by scheme: NULL when the scheme has none (yet). */
const struct transport *transport_find(enum url_kind kind);

extern const struct transport transport_unix;
extern const struct transport transport_tcp;
extern const struct transport transport_tls;
extern const struct transport transport_udp;
extern const struct transport transport_sysv;

/* tr_tcp.c, for tr_tls.c: a TCP listener for u (l->tr set by the caller),
 * and the set-up of an accepted TCP connection. */
int tcp_listen_on(struct broker *b, const struct url *u, struct listener *l, char *err,
		  size_t errlen);
void tcp_unlisten(struct listener *l);
int tcp_adopt(struct conn *c);

/* Stream code shared by unix and tcp (tr_stream.c). */
extern const struct conn_ops stream_conn_ops;
/* Split and handle every complete frame in c->in, as a byte stream
 * carries them (also what SysV messages carry, tr_sysv.c): a frame over
 * the frame limit or a malformed prefix is a fatal ERR; for a partial
 * frame whose length is known, room for all of it is reserved (max-memory
 * may pause reading).  0, or -1 when c was closed or paused. */
int stream_frames(struct conn *c);
/* Accept what is pending on l (a listening stream socket) and hand each
 * socket to broker_accept(); pauses the listener on EMFILE/ENFILE. */
void stream_accept(void *arg, uint32_t events);
/* Dial u's host:port over TCP (net_dial: every address in turn): the dial
 * op's contract above, for a plain stream.  A transport with a session of
 * its own (tr_tls.c) sets c->io and c->tp on the connection as soon as
 * this returns; c->io->handshake then runs once TCP is connected. */
int stream_dial(struct broker *b, const struct url *u, struct conn **out, char *err,
		size_t errlen);

#endif
