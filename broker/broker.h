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
struct conn_ops;

struct broker_stats {
	uint64_t conns_total;  /* accepted since start */
	uint64_t msgs_in;      /* PUB frames routed */
	uint64_t msgs_out;     /* MSG frames queued to subscribers */
	uint64_t bytes_in, bytes_out;
	uint64_t dropped;      /* MSGs dropped for slow consumers */
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
	struct listener *listeners;
	struct conn *conns;        /* all connections */
	struct conn *dirty;        /* to flush in before-sleep */
	struct conn *closing;      /* to free in before-sleep */
	size_t nconns;
	uint64_t next_conn_id;
	uint64_t pending;          /* output bytes queued over all connections */
	struct broker_stats stats;
	struct buf scratch;        /* one MSG body, encoded once per PUB */
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

/* A new stream connection on fd (taken) from listener l. */
void broker_accept(struct broker *b, int fd, const struct conn_ops *ops, struct listener *l);

/* Put c on the flush list (its output is written in before-sleep). */
void broker_mark_dirty(struct broker *b, struct conn *c);

/* Put c on the free list. */
void broker_mark_closing(struct broker *b, struct conn *c);

#endif
