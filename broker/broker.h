/*
 * broker.h: struct broker owns the loop, the listeners, the connections and
 * the router; broker_run() is the daemon's main loop.
 */
#ifndef IPCBUS_BROKER_H
#define IPCBUS_BROKER_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "hash.h"
#include "conf.h"
#include "log.h"
#include "loop.h"

struct conn;
struct listener;
struct router;
struct interest;
struct bridge;
struct rawq_set;
struct conn_ops;

struct broker_stats {
	uint64_t conns_total;  /* accepted since start */
	uint64_t msgs_in;      /* PUB frames routed */
	uint64_t msgs_out;     /* MSG frames queued to subscribers */
	uint64_t bytes_in, bytes_out;
	uint64_t dropped;      /* MSGs dropped for slow consumers */
	uint64_t evictions;    /* backlogs dropped to keep max-memory */
	uint64_t slow_consumers; /* slow-consumer episodes */
	uint64_t no_responders;
	uint64_t errors;       /* ERR frames sent */
	uint64_t refused;      /* connections refused over max-connections */
};

struct broker {
	struct conf cfg;
	struct log log;
	struct loop *loop;
	struct router *router;
	struct interest *interest; /* what bridges announce (interest.c) */
	struct bridge *bridge;     /* links to peer brokers (bridge.c) */
	struct rawq_set *rawq;     /* raw bridges to SysV queues (rawq.c) */
	uint64_t route_stamp;      /* messages routed (route.c) */
	int routing;               /* inside route_publish(): subscriptions
				    * must not be freed (bridge.c defers) */
	struct listener *listeners;
	struct conn *conns;        /* all connections */
	struct conn *dirty;        /* to flush in before-sleep */
	struct conn *closing;      /* to free in before-sleep */
	size_t nconns;
	size_t nclosing;           /* of which closing (on b->closing) */
	size_t noutbound;          /* of which dialed out (c->outbound) and not
				    * closing: they hold no max-connections place */
	uint64_t next_conn_id;
	uint64_t pending;          /* output bytes queued over all connections */
	size_t memory;             /* bytes held for clients: input and output
				    * buffers as allocated (max-memory) */
	size_t memory_peak;        /* the most it was (the USR1 status line) */
	struct conn *stalled, *stalled_tail; /* connections whose socket is
				    * full, the longest stalled first: who
				    * pays past max-memory (conn.c) */
	struct conn *paused;       /* not reading until memory is free */
	struct loop_timer resume;  /* retries the paused ones */
	uint64_t turn;             /* loop turns, for once-a-turn work */
	struct broker_stats stats;
	struct buf scratch;        /* one MSG body, encoded once per PUB */
	struct buf ctl;            /* one control frame (ERR, WELCOME) being queued */
	struct hash_key hash_key;  /* for tables keyed by what clients choose */
	char server_id[24];
	struct loop_watch sigwatch;
	int sigfd;
	struct loop_timer keepalive;
	struct loop_timer drain;
	struct loop_timer linger; /* wakes broker_reap() for lingering closes */
	int stopping;
	uint64_t refused, refused_logged; /* over max-connections, not yet logged; when last logged */
	struct loop_timer refuse_log; /* armed only while a refused count waits to be logged */
	dev_t pid_dev;             /* the pidfile we wrote (broker_fini removes only that) */
	ino_t pid_ino;
	int pid_written;
	uint64_t auth_refused, auth_logged; /* bad tokens, for the log */
	struct loop_timer auth_timer;      /* logs auth_refused a second later */
	int ready_fd;              /* -d: write a byte when ready, then close */
	int detach_log;            /* -d without a log directive: syslog once ready */
	unsigned long nofile_soft; /* RLIMIT_NOFILE at start (restored in children) */
};

/* Set up the broker from a loaded configuration (taken: freed by
 * broker_fini).  Binds every listener, writes the pidfile, logs "ready".
 * 0, or a negative code after logging why. */
int broker_init(struct broker *b, struct conf *cfg);

/* Run until TERM/INT and the drain; 0 or a negative code. */
int broker_run(struct broker *b);

/* Close everything, unlink the sockets and the pidfile. */
void broker_fini(struct broker *b);

/* May one more connection come in?  1, or 0 with the reason in why (the
 * transport tells the peer, then calls broker_refused).  Counted are the
 * clients that came in: not the closing ones, nor those the broker dialed
 * (bridges), which are bounded by the configuration itself. */
int broker_admit(struct broker *b, char *why, size_t n);
void broker_refused(struct broker *b, const char *why);

/* Link a new connection (conn_new, watched by its transport) into the
 * broker: counted, kept alive, freed by the broker from now on.  A dialed
 * one has c->outbound set before. */
void broker_add_conn(struct broker *b, struct conn *c);

/* Put c on the flush list (its output is written in before-sleep). */
void broker_mark_dirty(struct broker *b, struct conn *c);

/* Take a connection off the flush list (NULL when empty). */
struct conn *broker_pop_dirty(struct broker *b);

/* Put c on the free list. */
void broker_mark_closing(struct broker *b, struct conn *c);

#endif
