/*
 * conn.h: one client connection: its state, buffers, subscriptions and the
 * output queue with the slow-consumer bound.
 *
 * A connection is closed in two steps: conn_close() marks it and stops
 * reading; the broker frees it in the before-sleep step, after a last
 * attempt to write what is queued (an ERR that explains the close).  So no
 * callback ever sees a freed connection, even one that appears twice in a
 * router result.
 */
#ifndef IPCBUS_CONN_H
#define IPCBUS_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "frame.h"
#include "loop.h"
#include "outq.h"
#include "router.h"

struct broker;
struct listener;
struct conn_ops;
struct stream_io;
struct link;
struct stream_dial;

enum conn_state {
	CONN_HELLO = 0, /* waiting for HELLO */
	CONN_OPEN,      /* welcomed */
	CONN_CLOSING,   /* closed: no more input or deliveries */
};

/* c->dialing: what a connection the broker dials out (transport dial) is
 * still waiting for.  0 once established (conn_dialed). */
enum {
	CONN_DIAL_CONNECT = 1, /* the TCP connect */
	CONN_DIAL_TLS = 2,     /* the client's TLS handshake */
};

struct conn {
	struct broker *b;
	const struct conn_ops *ops;
	struct listener *listener;
	/* the transport's: a stream's socket and its watch (fd -1 when the
	 * medium has none); nothing outside the transport touches them */
	struct loop_watch watch;
	int fd;
	const struct stream_io *io; /* NULL: a plain socket */
	void *tp;                   /* the transport's own state (a TLS session, a UDP peer) */
	struct link *link;          /* a bridge link runs over this connection (bridge.c) */
	int io_want_out;            /* the io waits for room to write */
	struct stream_dial *dial;   /* tr_stream.c's connect under way (dialing), or NULL */
	uint64_t id;
	enum conn_state state;

	/* A connection the broker dialed (struct transport's dial: a bridge
	 * to a peer broker) rather than accepted: listener NULL, outbound set
	 * for its whole life (it holds no max-connections place).  While
	 * dialing (CONN_DIAL_*) it is neither read nor written: only the
	 * connect and the TLS handshake happen, bounded by the HELLO
	 * deadline.  dialed is the dialer's hook, called once by
	 * conn_dialed(); link is the dialer's own pointer (bridge.c's), NULL
	 * by default and never touched here. */
	int outbound;
	int dialing;
	void (*dialed)(struct conn *c);
	struct buf in;   /* bytes read, frames not handled yet */
	struct outq out; /* frames to write, with their length prefixes */

	/* who it is, for logs: "client 7 (name pid 123 uid 1000)" */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int has_cred;
	char addr[80];  /* a network peer: "host:port" (NET_ADDRSTRLEN, 78, fits) */
	char identity[80]; /* after HELLO: "token:NAME", "token", "cert:CN", "uid:N", "anonymous" */
	char cert_name[64]; /* a TLS client's verified certificate's common name */
	char name[64];
	char desc[256];

	/* subscriptions by sid: open addressing, power-of-two table */
	struct sub **subs;
	size_t nsubs, subs_used, subs_cap; /* live; live + tombstones; slots */

	uint64_t last_rx;   /* loop time of the last frame received */
	uint64_t lease_ms;  /* a datagram session: ends after this much silence */
	uint64_t ping_sent; /* loop time of an unanswered PING, 0 if none */
	uint64_t ping_id;

	/* slow consumer */
	uint64_t dropped;      /* messages dropped for this client, in total */
	uint64_t episode_drop; /* dropped in the current episode */
	int slow;              /* in an episode (output full) */
	int slow_logged;       /* this episode's start was logged */
	uint64_t slow_log_at;  /* loop time of the last episode logged */
	uint64_t quiet_episodes, quiet_dropped; /* since then, not logged */
	uint64_t flush_turn;   /* broker turn in which its socket was full */
	uint64_t stall_since;  /* loop time its socket was found full, with
				* output left and none written since; 0 */
	int stall_linked;      /* on broker.stalled */
	struct conn *stall_next, *stall_prev;

	uint64_t msgs_in, msgs_out;

	uint64_t closed_at; /* loop time of conn_close() */
	int shut;           /* closing: the write side is shut down */
	uint64_t shut_at;   /* loop time of that */
	int eof;            /* closing: the peer closed its side */
	int in_paused;      /* not reading: max-memory reached (broker.paused) */
	struct conn *paused_next;

	int dirty;          /* on the broker's list of connections to flush */
	int want_write;     /* watching for writability */
	struct conn *next, *prev;   /* broker's list of connections */
	struct conn *dirty_next;    /* broker's flush list */
	struct conn *close_next;    /* broker's list of connections to free */
};

/* New connection of transport ops from listener l; fd is the transport's
 * (stored in c->fd, -1 when none).  Not yet linked into the broker (see
 * broker_add_conn).  NULL when out of memory. */
struct conn *conn_new(struct broker *b, int fd, const struct conn_ops *ops,
		      struct listener *l);

/* The transport saw its medium ready: input (readable) or room to write
 * (writable).  Reads or discards (closing), writes. */
void conn_ready(struct conn *c, int readable, int writable);

/* Free the connection: remove its subscriptions, close the transport.
 * Called by the broker only (before-sleep). */
void conn_free(struct conn *c);

/* Set c->desc from what is known of the peer (after HELLO: its name). */
void conn_describe(struct conn *c);

/* The transport established a dialed connection (TCP connected, TLS
 * handshake done): clears c->dialing, calls c->dialed if set (it usually
 * queues a HELLO), then watches for what c needs and gets what was queued
 * written.  Called once per connection, by the transport. */
void conn_dialed(struct conn *c);

/* Handle one frame body (a complete frame, without its length prefix). */
void conn_frame(struct conn *c, const uint8_t *body, size_t len);

/* Queue an ERR for the frame `id`.  fatal: 0 recoverable, 1 closing (the
 * client may reconnect), 2 fatal; for 1 and 2 the connection is closed after
 * the ERR is written.  The text is printf-formatted. */
void conn_error(struct conn *c, uint64_t id, int code, int fatal, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Close: stop handling input and delivering.  The broker writes what is
 * queued (the ERR saying why) for at most CONN_LINGER_MS, shuts the write
 * side down, and reads and discards what the peer still sends for at most
 * CONN_DRAIN_MS more (closing a socket with unread input would reset it and
 * lose the ERR), then frees the connection in its before-sleep step.  why
 * is logged. */
#define CONN_LINGER_MS 1000
#define CONN_DRAIN_MS 1000
/* A connection must send HELLO this soon after it is accepted (or within
 * ping-interval, when that is shorter); a dialed one must be established
 * as soon after the dial.  A connection closed while still dialing has no
 * peer to tell: it is freed at once (no ERR, no linger). */
#define CONN_HELLO_MS 10000
void conn_close(struct conn *c, const char *why);

/* Queue a control frame (never dropped: control frames are small and may
 * exceed max-pending by a little).  0 or a negative code. */
int conn_send(struct conn *c, const struct frame *f);

/* Queue the frame encoded in the broker's control scratch (b->ctl, a
 * length-prefixed frame: frame_append_*), and empty it.  0 or a negative
 * code. */
int conn_push_ctl(struct conn *c);

/* Queue the WELCOME for the HELLO `id`.  0 or a negative code. */
int conn_send_welcome(struct conn *c, uint64_t id, const Ipcbus__Welcome *w);

/* Deliver one MSG: the shared body (frame_msg_encode) with this
 * subscription's sid in front.  Applies the slow-consumer bound (after one
 * early attempt per turn to write what is queued, so that a reader that
 * keeps up is not judged by one read batch) and max-memory (the biggest
 * backlog pays first). */
void conn_deliver(struct conn *c, uint64_t sid, const uint8_t *body, size_t len);

/* The same for any frame: prefix (k bytes: its length prefix and what
 * this receiver's copy has of its own) followed by a shared body. */
void conn_deliver_frame(struct conn *c, const uint8_t *prefix, size_t k, const uint8_t *body,
			size_t len);

/* Write queued output now (the before-sleep step and EPOLLOUT call it). */
void conn_flush(struct conn *c);

/* Called by transports after they wrote n bytes of c->out. */
void conn_sent(struct conn *c, size_t n);

/* Make room for n more input bytes in c->in (a frame's length is known and
 * checked, or a read chunk).  Growing past CONN_IN_FREE counts against
 * max-memory: when it cannot be had, reading c pauses until memory is free
 * again.  0, -ENOBUFS (paused: stop reading), -ENOMEM. */
#define CONN_IN_FREE (64 << 10)
int conn_in_reserve(struct conn *c, size_t n);

/* Watch for what c needs now (input, output), after a state change. */
void conn_watch(struct conn *c);

/* Give back the buffers of an idle connection (the keepalive tick). */
void conn_trim(struct conn *c);

/* The frame limit of this connection: max-payload + max-header-bytes + 1 KiB,
 * or less where the medium carries less (a datagram). */
size_t conn_frame_max(const struct conn *c);

/* A bridge link's frames may be this much bigger (bridge.c keeps a
 * forwarded message's own fields under it). */
#define CONN_LINK_SLACK (8 << 10)

/* max-payload and max-header-bytes for this connection (WELCOME). */
uint64_t conn_max_payload(const struct conn *c);
uint64_t conn_max_header_bytes(const struct conn *c);

/* Subscriptions (handle.c uses these). */
struct sub *conn_sub_find(struct conn *c, uint64_t sid);
int conn_sub_add(struct conn *c, struct sub *s);
void conn_sub_del(struct conn *c, struct sub *s);
/* Remove (route_sub_remove) and free every subscription of c. */
void conn_sub_clear(struct conn *c);
void conn_sub_free(struct sub *s);
/* A client's subscriptions deliver through this (route.c calls it). */
extern const struct sub_ops conn_sub_ops;

/* The frame handlers (handle.c), dispatched from conn_frame(). */
void handle_frame(struct conn *c, const struct frame *f);

#endif
