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
#include "router.h"

struct broker;
struct listener;
struct conn_ops;

enum conn_state {
	CONN_HELLO = 0, /* waiting for HELLO */
	CONN_OPEN,      /* welcomed */
	CONN_CLOSING,   /* closed: no more input or deliveries */
};

struct conn {
	struct broker *b;
	const struct conn_ops *ops;
	struct listener *listener;
	struct loop_watch watch;
	int fd;
	uint64_t id;
	enum conn_state state;
	struct buf in, out;

	/* who it is, for logs: "client 7 (name pid 123 uid 1000)" */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int has_cred;
	char name[64];
	char desc[160];

	/* subscriptions by sid: open addressing, power-of-two table */
	struct sub **subs;
	size_t nsubs, subs_used, subs_cap; /* live; live + tombstones; slots */

	uint64_t last_rx;   /* loop time of the last frame received */
	uint64_t ping_sent; /* loop time of an unanswered PING, 0 if none */
	uint64_t ping_id;

	/* slow consumer */
	uint64_t dropped;      /* messages dropped for this client, in total */
	uint64_t episode_drop; /* dropped in the current episode */
	int slow;              /* in an episode (output full) */

	uint64_t msgs_in, msgs_out;

	size_t out_next;    /* from out's read position to the next frame start */
	uint64_t closed_at; /* loop time of conn_close() */

	int dirty;          /* on the broker's list of connections to flush */
	int want_write;     /* watching for writability */
	struct conn *next, *prev;   /* broker's list of connections */
	struct conn *dirty_next;    /* broker's flush list */
	struct conn *close_next;    /* broker's list of connections to free */
};

/* New connection on fd (taken: closed on failure too).  NULL on failure. */
struct conn *conn_new(struct broker *b, int fd, const struct conn_ops *ops,
		      struct listener *l);

/* Free the connection: remove its subscriptions, close the transport.
 * Called by the broker only (before-sleep). */
void conn_free(struct conn *c);

/* Set c->desc from what is known of the peer (after HELLO: its name). */
void conn_describe(struct conn *c);

/* Handle one frame body (a complete frame, without its length prefix). */
void conn_frame(struct conn *c, const uint8_t *body, size_t len);

/* Queue an ERR for the frame `id`.  fatal: 0 recoverable, 1 closing (the
 * client may reconnect), 2 fatal; for 1 and 2 the connection is closed after
 * the ERR is written.  The text is printf-formatted. */
void conn_error(struct conn *c, uint64_t id, int code, int fatal, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Close: stop reading and delivering; the broker writes what is queued
 * (an ERR saying why) for at most CONN_LINGER_MS, then frees the
 * connection in its before-sleep step.  why is logged. */
#define CONN_LINGER_MS 1000
/* A connection must send HELLO this soon after it is accepted (or within
 * ping-interval, when that is shorter). */
#define CONN_HELLO_MS 10000
void conn_close(struct conn *c, const char *why);

/* Queue a control frame (never dropped: control frames are small and may
 * exceed max-pending by a little).  0 or a negative code. */
int conn_send(struct conn *c, const struct frame *f);

/* Deliver one MSG: the shared body (frame_msg_encode) with this
 * subscription's sid in front.  Applies the slow-consumer bound. */
void conn_deliver(struct conn *c, uint64_t sid, const uint8_t *body, size_t len);

/* Write queued output now (the before-sleep step and EPOLLOUT call it). */
void conn_flush(struct conn *c);

/* Called by transports after they consumed output bytes. */
void conn_sent(struct conn *c, size_t n);

/* Drop the queued output that has not started going out (a frame already
 * partly written is kept whole), e.g. to tell a slow consumer why it is
 * disconnected without making it read megabytes first. */
void conn_drop_queued(struct conn *c);

/* The frame limit of this connection: max-payload + max-header-bytes + 1 KiB. */
size_t conn_frame_max(const struct conn *c);

/* Subscriptions (handle.c uses these). */
struct sub *conn_sub_find(struct conn *c, uint64_t sid);
int conn_sub_add(struct conn *c, struct sub *s);
void conn_sub_del(struct conn *c, struct sub *s);

/* The frame handlers (handle.c), dispatched from conn_frame(). */
void handle_frame(struct conn *c, const struct frame *f);

#endif
