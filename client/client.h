/*
 * client.h: the private header of libipcbus, shared by its files.
 *
 *   conn.c   the session: connecting, HELLO and the token, writing frames
 *            through the transport, reconnect with backoff, the options;
 *            conn_in.c reads and handles the broker's frames (the frame
 *            switch, the input buffer); conn_wait.c drives the session:
 *            dispatch, blocking waits, timeouts, flush
 *   tr.h     the transports' ops table; tr.c finds one by URL kind;
 *            tr_stream.c (shared by) tr_unix.c, tr_tcp.c, tr_tls.c; tr_udp.c;
 *            tr_sysv.c
 *   dgram.c  what a datagram transport (udp) needs of the session: the
 *            cookie handshake and HELLO resent, SUB/UNSUB/flush PINGs
 *            resent until answered, the lease kept by PINGs
 *   pub.c    publishing (one encoder for publish, respond and requests)
 *   sub.c    the subscription table, delivery of MSG, the ipcbus_next queue
 *   req.c    the reply inbox, the table and deadline heap of requests
 *   msg.c    message copies, headers, error names, the version
 *   idmap.c  a small hash table from 64-bit ids to pointers
 *   defpath.c  whether a default socket path is the user's own
 *
 * A connection is used from one thread at a time.  Callbacks may call any
 * function of the library on their own connection except ipcbus_close():
 * blocking calls inside a callback dispatch further frames (see the input
 * buffer notes in conn_in.c).
 */
#ifndef IPCBUS_CLIENT_H
#define IPCBUS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "frame.h"
#include "idmap.h"
#include "ipcbus.h"
#include "tr.h"
#include "url.h"

enum conn_state {
	CONN_WAIT = 1, /* no connection: the next attempt is at reconnect_at */
	CONN_OPENING,  /* the transport is connecting (TCP connect, a handshake) */
	CONN_HELLO,    /* HELLO sent, waiting for WELCOME */
	CONN_READY,    /* welcomed: frames flow */
	CONN_CLOSED,   /* for good: closed_err says why */
};

struct sub {
	uint64_t sid;
	uint64_t frame_id; /* id of the last SUB frame sent, to match an ERR */
	ipcbus_msg_cb cb;  /* NULL: queued for ipcbus_next() */
	void *arg;
	int inbox;         /* the request inbox: replies go to req.c */
	char *queue;       /* NULL when none; points into the same block */
	size_t plen, qlen;
	char pattern[];
};

struct req {
	uint64_t id;      /* the PUB frame's id and the last token of reply_to */
	int64_t deadline; /* monotonic ms; -1 when none */
	size_t hidx;      /* index in the deadline heap, or SIZE_MAX */
	ipcbus_reply_cb cb;
	void *arg;
};

/* dgram.c: a frame sent over a datagram transport that must arrive (SUB,
 * UNSUB, a flush's PING), sent again until the broker answers its id with
 * PONG (or ERR).  It sits in c->acks by id, and in one of two lists: sent
 * (first > 0) or waiting for room in the window (first 0). */
struct dgram_ack {
	uint64_t id, sid;
	int type;          /* IPCBUS__FRAME_TYPE__SUB, UNSUB, PING; 0: cancelled
			    * while waiting (then in no table, freed when reached) */
	int64_t first, at; /* monotonic ms: first sent (0: not yet), next resend */
	int rto;           /* the interval before the next resend */
	struct dgram_ack *next, **prev; /* prev: sent list only */
};

/* The block of an ipcbus_msg_dup() copy; the queue links through next. */
struct msgblk {
	struct msgblk *next;
	size_t size;
	ipcbus_msg m;
};

struct ipcbus {
	char url[1024];
	struct url u;
	int defpath;      /* a default address, checked before each connect:
			   * 0 no (the caller's URL), 1 the user's, 2 the system's */
	ipcbus_opts opts; /* defaults applied; name points to a copy, token is NULL */
	char *name;
	char *token;      /* what HELLO carries, NULL for none (and on local
			   * transports); re-read from token_file at each attempt */
	char *token_file; /* $IPCBUS_TOKEN_FILE when that is the source, else NULL */

	enum conn_state state;
	int closed_err;   /* what a closed connection returns */
	int ever_ready;   /* welcomed once: reconnect from now on */
	struct tr tr;     /* the transport; tr.fd -1 when no connection */
	int tr_open;      /* tr.ops->connect() succeeded: close() is due */
	int epfd;         /* ipcbus_fd(): holds tr.fd while there is one */
	int ep_fd;        /* the descriptor in epfd, -1 */
	uint32_t ep_events; /* what ep_fd is watched for */
	int wr_blocked;   /* the last write left output: wait for tr.want_write */
	int pending_err;  /* a write failed: dropped by the next dispatch */
	uint64_t epoch;   /* bumped at every disconnect */

	struct buf in;    /* bytes read; frames are handled in place */
	struct buf out;   /* encoded frames for the socket */
	struct buf pend;  /* publishes made while not connected */
	size_t in_need;   /* bytes the partial frame at the front will take (at
			   * least: its length prefix may not be whole); 0: none */
	int in_more;      /* the last read filled its chunk: more may wait */
	size_t frame_max;
	size_t write_mark; /* publish writes once out holds this much */
	int in_depth;     /* conn_process() calls running (callbacks nest) */
	int in_pinned;    /* a running conn_process() reads in.data */
	uint64_t in_gen;  /* bumped when in.data is replaced */
	void **retired;   /* replaced in.data blocks, freed at depth 0 */
	size_t nretired, retired_cap;

	int64_t reconnect_at;   /* CONN_WAIT */
	int64_t hello_deadline; /* CONN_OPENING, CONN_HELLO */
	int64_t tick_at;        /* the transport's tick (tr_ops.tick), 0: none */
	int backoff_ms;
	uint64_t rng;

	uint64_t max_payload, max_header_bytes; /* from WELCOME; 0: unknown */
	uint32_t max_subscriptions, ping_interval_ms;

	/* a datagram transport (TR_DGRAM, dgram.c); all 0 otherwise */
	int dgram;
	uint8_t cookie[64];  /* the broker's (ERR E_COOKIE), echoed in HELLO */
	size_t cookie_len;   /* 0: none yet for this socket */
	int64_t hello_at;    /* CONN_HELLO: when the HELLO goes again */
	int hello_rto;
	uint32_t lease_ms;   /* WELCOME's lease (or a default) */
	int64_t last_tx, last_rx, last_ka; /* datagram out, in, keepalive PING */
	struct idmap acks;   /* frame id -> struct dgram_ack */
	struct dgram_ack *ack_sent;               /* resent when due */
	struct dgram_ack *ack_wait, **ack_wait_tail; /* FIFO: window full */
	size_t ack_inflight; /* SUB and UNSUB sent and not answered */
	uint64_t tr_dropped; /* tr.ops->dropped() when last reported */

	uint64_t next_id;   /* frame ids */
	uint64_t pong_last; /* highest PONG id received */
	int first_err;      /* first broker error since the last flush */
	char last_error[512];
	uint64_t delivered; /* messages, replies and request results so far */

	struct idmap subs;  /* sid -> struct sub */
	uint64_t next_sid;
	struct msgblk *qhead, **qtail; /* for ipcbus_next() */
	/* messages that arrived while a callback ran a blocking call: held
	 * (copied) and delivered in order once the callback returned, so
	 * callbacks never nest more than one level deep */
	struct msgblk *dhead, **dtail;
	size_t dbytes;
	int cb_depth;       /* message or reply callbacks running */
	size_t qbytes;
	uint64_t qdropped;
	int qfull_reported;

	char inbox[40];     /* "_INBOX.<22 random [A-Za-z0-9]>" */
	size_t inbox_len;
	uint64_t inbox_sid; /* 0 until the first request */
	struct idmap reqs;  /* id -> struct req */
	struct req **heap;  /* requests with a deadline, earliest first */
	size_t nheap, heap_cap;
};

/* conn.c, conn_in.c: the input buffer's sizes */
#define CONN_READ_CHUNK (256 * 1024)
#define CONN_KEEP (1024 * 1024)         /* buffer memory kept when idle */
/* a partial frame, or a nested read's unhandled bytes, plus one read */
#define CONN_IN_MAX(frame_max) ((frame_max) + 2 * CONN_READ_CHUNK + FRAME_VARINT_MAX)

/* conn.c */
int64_t conn_now(void);
/* The connection is lost: err and text say why (text NULL: the code's
 * name); a fatal drop never reconnects.  Requests fail, a reconnect is
 * scheduled (or the connection is closed for good). */
void conn_drop(struct ipcbus *c, int err, const char *text, int fatal);
/* Send HELLO (state CONN_HELLO). */
void conn_hello(struct ipcbus *c);
void conn_random(void *p, size_t n);
void conn_event(struct ipcbus *c, int event, int err, const char *text);
/* Write out without blocking; a failure is kept in pending_err. */
void conn_write(struct ipcbus *c);
/* Block until out is below the high mark (a publisher outrunning the socket). */
void conn_drain(struct ipcbus *c);
/* Copy n bytes of text (cut to fit) into last_error. */
void conn_set_text(struct ipcbus *c, const void *p, size_t n);
/* Keep the epoll set in step with what the transport wants (force: the
 * descriptor may be a new one with the same number).  0 or -errno. */
int conn_watch(struct ipcbus *c, int force);
/* The transport's text for its last read or write failure, or NULL. */
const char *conn_tr_errtext(const struct ipcbus *c);
/* 1 when the transport holds bytes its descriptor does not announce. */
int conn_tr_pending(const struct ipcbus *c);
/* CONN_WAIT: start a connection attempt.  0, or a negative code with the
 * state unchanged (then conn_schedule()). */
int conn_open(struct ipcbus *c);
/* The next attempt after the backoff (state CONN_WAIT). */
void conn_schedule(struct ipcbus *c);
/* CONN_OPENING: one more step of the transport's connect. */
void conn_check_open(struct ipcbus *c);

/* conn_in.c */
/* Read what the transport has (a few rounds) and handle every complete
 * frame; a failure drops the connection. */
void conn_read(struct ipcbus *c);
/* Replace in.data by a fresh block (keep: with the unhandled bytes); the
 * old one is freed once no frame loop runs.  0 or -ENOMEM. */
int conn_in_retire(struct ipcbus *c, int keep);

/* conn_wait.c */
/* Non-blocking work; the count delivered or closed_err (ipcbus_dispatch). */
int conn_dispatch(struct ipcbus *c);
/* Dispatch until done(c, arg) or timeout_ms (-1: none).  0 when done,
 * IPCBUS_ETIMEOUT, -EINTR, or closed_err. */
int conn_run(struct ipcbus *c, int timeout_ms, int (*done)(struct ipcbus *, void *),
	     void *arg);

/* pub.c: encode a PUB into out (connected) or pend.  id 0: none.  now: write
 * at once.  0, IPCBUS_ECHANNEL, IPCBUS_EPERM, IPCBUS_ETOOBIG, IPCBUS_EBUFFER,
 * IPCBUS_ECLOSED, -EINVAL, -ENOMEM. */
int pub_send(struct ipcbus *c, const char *chan, size_t clen, const char *reply, size_t rlen,
	     const ipcbus_header *hdr, size_t nh, const void *data, size_t len, uint64_t id,
	     int now);

/* sub.c */
int sub_add(struct ipcbus *c, const char *pat, size_t plen, const char *queue,
	    ipcbus_msg_cb cb, void *arg, int inbox, uint64_t *sid);
void sub_restore(struct ipcbus *c);
void sub_on_msg(struct ipcbus *c, const struct frame *f);
void sub_on_err(struct ipcbus *c, uint64_t frame_id, int code);
void sub_fini(struct ipcbus *c);
/* Deliver the held messages (when no callback runs). */
void sub_deliver_held(struct ipcbus *c);

/* sub.c: append s's SUB frame with frame id id to out.  0 or -ENOMEM. */
int sub_frame(struct ipcbus *c, const struct sub *s, uint64_t id);

/* dgram.c: the session rules of a datagram transport (c->dgram). */
/* A new attempt (a new socket, so a new source address): no cookie. */
void dgram_open(struct ipcbus *c);
/* Fill in what a datagram HELLO carries (the cookie, Hello.padding up to
 * the size the broker wants from strangers), and time its resend.  The
 * padding h points to is static. */
void dgram_hello(struct ipcbus *c, Ipcbus__Hello *h);
/* WELCOME: the lease (0: none announced), the keepalive from now. */
void dgram_welcome(struct ipcbus *c, uint32_t lease_ms);
/* Before a publish: a connection that sent nothing for a whole lease has
 * no session on the broker any more; drop it, so that the message waits
 * for the reconnect (c->pend) rather than being lost. */
void dgram_check_silence(struct ipcbus *c);
/* An ERR of the datagram session rules: E_COOKIE (HELLO again with it) and
 * E_NO_SESSION (the broker forgot us: reconnect).  1 when it was one of
 * them (handled), 0 for any other code. */
int dgram_on_err(struct ipcbus *c, int code, const Ipcbus__Error *e);
/* A PONG with id: 1 when it acknowledged a SUB or UNSUB (no barrier), 0
 * otherwise (a flush PING's answer stops its resends too). */
int dgram_on_pong(struct ipcbus *c, uint64_t id);
/* An ERR with id: the frame was answered, stop resending it. */
void dgram_on_answer(struct ipcbus *c, uint64_t id);
/* Send a frame that must arrive: SUB (of the subscription sid, looked up
 * at each send), UNSUB of sid, or PING, with frame id id; resent until
 * answered.  SUB and UNSUB wait while DGRAM_WINDOW of them are unanswered
 * unless urgent (the request inbox, PING).  0 or -ENOMEM. */
int dgram_send(struct ipcbus *c, int type, uint64_t id, uint64_t sid, int urgent);
/* The subscription sid is gone: its SUB is not to be sent again. */
void dgram_forget_sid(struct ipcbus *c, uint64_t sid);
/* 1 while a SUB or UNSUB with a frame id below id is unanswered. */
int dgram_pending_before(const struct ipcbus *c, uint64_t id);
/* Timers: HELLO resent, frames resent (or the connection dropped when one
 * stays unanswered for connect_timeout_ms), keepalive PING, and the
 * connection dropped when the broker was silent for a whole lease. */
void dgram_tick(struct ipcbus *c);
/* The next of those timers (monotonic ms), or -1. */
int64_t dgram_deadline(const struct ipcbus *c);
/* Datagrams the transport dropped since the last call: IPCBUS_EV_ERROR. */
void dgram_report(struct ipcbus *c);
/* The connection is gone: forget every frame waiting for its answer
 * (the SUBs are sent again from the table after the next WELCOME). */
void dgram_reset(struct ipcbus *c);

/* req.c */
void req_on_reply(struct ipcbus *c, const ipcbus_msg *m);
void req_on_err(struct ipcbus *c, uint64_t id, int err);
void req_expire(struct ipcbus *c);
int64_t req_next_deadline(const struct ipcbus *c);
/* Call every pending request's callback with err and forget them all. */
void req_fail_all(struct ipcbus *c, int err);
void req_fini(struct ipcbus *c);

/* msg.c */
/* Fill m from a decoded MSG; h has room for f->nheaders. */
void msg_view(const struct frame *f, ipcbus_msg *m, ipcbus_header *h);
/* Copy m into one block (NULL when out of memory). */
struct msgblk *msg_copy(const ipcbus_msg *m);

#endif
