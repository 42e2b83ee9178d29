/*
 * bridge_int.h: what bridge.c and bridge_line.c share, inside the bridge
 * module (bridge.h is the broker's view of it).
 *
 * bridge.c: the spanning tree, interest over links and forwarding: what
 * crosses a link once it is up.  bridge_line.c: how links come and go:
 * the `bridge` lines, dialing with backoff, the HELLO/WELCOME handshake on
 * either side, the duplicate-link rule, a link's slot, its end and the
 * redial after it.
 */
#ifndef IPCBUS_BRIDGE_INT_H
#define IPCBUS_BRIDGE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "bridge.h"
#include "interest.h"
#include "loop.h"
#include "route.h"
#include "seen.h"
#include "url.h"

struct broker;
struct conn;
struct frame;

/* Queue groups one copy of a message may name (the rest are dropped and
 * counted: they would not fit the frame's slack). */
#define LINK_GROUPS 16

struct bridge_line {
	struct broker *b;
	struct url url;
	char shown[300];           /* the URL without its token, for logs */
	char **patterns;           /* NULL: the default */
	size_t npatterns;
	uint8_t peer[SEEN_ID_MAX]; /* the peer's id, once learned */
	size_t peer_len;
	struct link *link;         /* our dialed link, from dialing to its end */
	unsigned backoff;          /* ms, the next retry's base */
	struct loop_timer timer;
	uint64_t fails, fails_logged; /* for the log: failures in a row */
};

enum link_state { LINK_WELCOME, LINK_UP, LINK_DOWN };

struct link {
	struct broker *b;
	struct conn *c;
	struct bridge_line *line;  /* whose patterns apply (NULL: the default) */
	int dialed;                /* by this broker, for line */
	enum link_state state;
	int slot;                  /* in the interest table's bits; -1 */
	uint8_t peer[SEEN_ID_MAX];
	size_t peer_len;
	char name[SEEN_ID_MAX + 1]; /* the peer's id, printable */
	/* the peer's view of the tree, as it last told */
	int told;
	uint8_t proot[SEEN_ID_MAX];
	size_t proot_len;
	uint32_t pdist;
	int pparent;               /* this broker is the peer's parent */
	int active;                /* interest and messages cross it */
	int duplicate;             /* closed: another link to the peer stays */
	int closed_queued;         /* closed while routing (bridge_routed) */
	char closed_why[128];
	struct link *closed_next;
	uint64_t pmax_payload, pmax_header_bytes;
	/* the message being routed */
	struct route_after after;
	struct frame_bytes groups[LINK_GROUPS];
	size_t ngroups;
	/* for the log and the status */
	uint64_t msgs_in, msgs_out, bytes_in, bytes_out, dropped, refused;
	uint64_t over_interest;    /* SUBs past the link's interest bound */
	uint64_t up_at;
};

struct bridge {
	struct bridge_line *lines;
	size_t nlines;
	struct link *slots[INTEREST_LINKS];
	/* this broker's place in the tree */
	uint8_t root[SEEN_ID_MAX];
	size_t root_len;
	uint32_t dist;
	struct link *parent;
	uint64_t seq;              /* our messages' numbers */
	struct link *closed;       /* closed while routing, to take down */
	struct seen *seen;
	uint64_t dups, forged, dropped;
};

/* ---- bridge.c ---- */

/* This broker's server id (not NUL-terminated: *len bytes). */
const uint8_t *bridge_self(const struct broker *b, size_t *len);
/* Compare two ids as byte strings (a shorter prefix first). */
int bridge_idcmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* 1 when p[0..n) is a server id: 1-64 visible ASCII bytes. */
int bridge_id_ok(const uint8_t *p, size_t n);

/* A new link on c (c->link set), in no state yet; NULL when out of
 * memory.  Freed by bridge_conn_gone(). */
struct link *link_new(struct broker *b, struct conn *c);
/* Tell l's peer our place in the tree (reset: forget what we told). */
void link_send_bridge(struct link *l, int reset);
/* Make l active (interest and messages cross it) or standby. */
void bridge_set_active(struct link *l, int active);
/* Choose root, distance and parent again, tell the links, set each
 * active or not. */
void bridge_tree(struct broker *b);

/* ---- bridge_line.c ---- */

/* Set up the configuration's bridge lines and arm their first dial; 0 or
 * a negative code after logging why (bridge_line_fini undoes it). */
int bridge_line_init(struct broker *b);
void bridge_line_fini(struct broker *b);
/* A frame on l, dialed by us, before the peer's WELCOME. */
void bridge_line_answer(struct link *l, const struct frame *f);
/* The USR1 status of the lines that are down. */
void bridge_line_status(struct broker *b);

#endif
