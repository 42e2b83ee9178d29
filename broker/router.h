/*
 * router.h: subscriptions, pattern matching and queue groups.
 *
 * The router indexes subscriptions by pattern (a trie of tokens with `*` and
 * `>` edges) and answers, for a channel, which subscriptions a message goes
 * to: every matching subscription outside a queue group, and exactly one
 * member of each queue group (grouped by queue name across all matching
 * patterns, as NATS does), chosen in turn.  It does not own subscriptions:
 * the connection that made one embeds its struct sub and removes it before
 * freeing it.  Pure data structure: no I/O, tested without sockets.
 */
#ifndef IPCBUS_ROUTER_H
#define IPCBUS_ROUTER_H

#include <stddef.h>
#include <stdint.h>

struct router;
struct router_node;
struct sub;
struct message;

/* What a subscription delivers to: a client connection, a bridge link
 * (and later a raw bridge).  The router never looks behind it; the
 * broker's publish path (route.c) calls deliver for each match.  deliver
 * returns 1 when the message went to (or was dropped and counted for) the
 * subscriber, 0 when this subscription does not take it at all (a link
 * whose patterns do not carry the channel, one that is going away): only
 * the former count as responders. */
struct sub_ops {
	int (*deliver)(struct sub *s, struct message *m);
	/* NULL, or 0 when s does not take the channel (valid, not
	 * NUL-terminated) although its pattern matches it: a link whose
	 * line does not carry it.  The router asks it of remote
	 * subscriptions only, so that a queue group picks a member that can
	 * be reached. */
	int (*takes)(const struct sub *s, const char *channel, size_t len);
};

struct sub {
	const struct sub_ops *ops;
	void *owner;       /* the connection or link (opaque to the router) */
	int remote;        /* interest learned from a peer broker (its link's
			    * slot + 1; 0: local): a queue group takes a
			    * local member when it has one */
	uint64_t sid;      /* the client's subscription id */
	char *pattern;     /* NUL-terminated, valid (chan_valid_pattern) */
	size_t pattern_len;
	char *queue;       /* NUL-terminated queue group name, or NULL */
	/* router-private */
	struct router_node *node;
	struct sub *next, *prev; /* in the node's list */
	size_t qidx;             /* in its queue group's member array */
	void *entry;             /* route.c's: its interest entry */
};

/* New empty router; NULL when out of memory. */
struct router *router_new(void);

/* Free the index (not the subscriptions).  NULL does nothing. */
void router_free(struct router *r);

/* Index s (borrowed until router_remove).  0 or -ENOMEM. */
int router_add(struct router *r, struct sub *s);

/* Remove s from the index; it must have been added. */
void router_remove(struct router *r, struct sub *s);

/* The subscriptions a message on channel (a valid name, not NUL-terminated)
 * goes to: every match outside queue groups, and one member of each group,
 * in turn among its local members when it has any, else among its remote
 * ones.  *out points to an array owned by the router, valid until the next
 * router call.  Returns the count (0 when nobody listens), or -ENOMEM. */
long router_match(struct router *r, const char *channel, size_t len, struct sub ***out);

/* The same, without the subscriptions whose owner is exclude (where the
 * message came from: it never goes back there), and without the remote
 * ones that do not take the channel (sub_ops.takes). */
long router_match_from(struct router *r, const char *channel, size_t len, const void *exclude,
		       struct sub ***out);

/* 1 when at least one subscription matches channel (request/reply's "no
 * responders" question; bridges will answer it too), else 0. */
int router_has_interest(struct router *r, const char *channel, size_t len);

/* Number of subscriptions indexed. */
size_t router_count(const struct router *r);

#endif
