/*
 * rawq_int.h: what the raw SysV queue bridges' files share (rawq.h is the
 * broker's view of them).
 *
 * rawq.c: the lines' set-up, stop, status, the drop log and opening a
 * queue, for both directions.  rawq_in.c: sysv-in, the receiver thread and
 * the loop's side of it.  rawq_out.c: sysv-out, the subscription that
 * msgsnd()s and its backlog.
 */
#ifndef IPCBUS_RAWQ_INT_H
#define IPCBUS_RAWQ_INT_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "rawq.h"
#include "router.h"
#include "sysv.h"

/* What a receiver may hold before the loop takes it (at least one largest
 * message and its record header). */
#define RAWQ_HOLD (256u << 10)
/* The largest receive buffer a receiver grows to when msgmax was raised
 * while the broker runs (a message larger than the buffer: E2BIG). */
#define RAWQ_RX_MAX (64u << 20)
#define RAWQ_RETRY_MIN_MS 1
#define RAWQ_RETRY_MAX_MS 16
/* At most one line of drops per bridge in this time. */
#define RAWQ_LOG_MS 10000
/* The signal that ends a receiver's msgrcv at stop: sent to that thread
 * alone, blocked in every other thread. */
#define RAWQ_WAKE (SIGRTMIN + 4)
/* A receiver that cannot read or make its queue tries again after this. */
#define RAWQ_BACKOFF_MS 1000

enum rawq_drop { RAWQ_OVERSIZE, RAWQ_FULL, RAWQ_GONE, RAWQ_ERROR, RAWQ_NDROP };

/* A message in a batch or a backlog: this header, then len bytes, padded
 * to 8. */
struct rawq_rec {
	uint64_t at; /* backlog: when it came (loop ms) */
	uint64_t len;
};

static inline size_t rawq_rec_size(size_t len)
{
	return sizeof(struct rawq_rec) + ((len + 7) & ~(size_t)7);
}

struct rawq {
	struct broker *b;
	const struct conf_sysv *cfg; /* in b->cfg */
	char name[400];              /* for the log */
	int msqid;                   /* the loop's view (in: as the thread last said) */
	int created;                 /* by this broker */
	int owned;                   /* removed at stop under `remove` */
	unsigned long qbytes;
	uint64_t msgs, bytes, drops[RAWQ_NDROP];
	/* the drop log: counts not logged yet, when the last line went */
	uint64_t unlogged[RAWQ_NDROP];
	uint64_t logged_at;
	int logged_once;
	struct loop_timer logt;
	uint64_t remade;             /* the queue vanished and was made again */
	uint64_t errors;             /* sysv-in: msgrcv errors (retried) */
	uint64_t err_logged;         /* when the last one was logged (0: never) */

	/* sysv-out */
	struct sub sub;
	int subscribed;
	size_t maxmsg;               /* min(msgmax, msg_qbytes) at start */
	long *sbuf;                  /* mtype, then maxmsg bytes of mtext */
	struct buf backlog;          /* rawq_rec records */
	size_t nbacklog;
	struct loop_timer retry;
	unsigned retry_ms;
	uint64_t flush_turn;
	uint64_t reopen_at;          /* the last attempt to make the queue again */

	/* sysv-in: shared with the receiver thread under mu */
	pthread_t thread;
	int started;
	int async_on;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct loop_async async;
	struct buf fill;             /* the thread appends here */
	int stop;
	int t_msqid;                 /* the queue the thread reads */
	int t_created;
	uint64_t t_remade;
	uint64_t t_oversize;         /* over max-payload, dropped by the thread */
	uint64_t t_errors;
	uint64_t t_nomem;            /* taken, but no memory to hand them over */
	int t_err;                   /* the last error (errno) not logged yet, 0 */
	int t_dead;                  /* the thread gave up (it says why in t_err) */
	uint64_t t_lost;             /* taken at the stop and not put back */
	/* the loop's */
	struct buf take;
	/* the thread's own */
	long *rx;                    /* mtype, then rxcap bytes */
	size_t rxcap;
};

struct rawq_set {
	struct sysv_limits lim;
	struct rawq *q;
	size_t n;
};

/* ---- rawq.c ---- */

/* Count n drops for a reason (logged, at most one line every RAWQ_LOG_MS). */
void rawq_drop(struct rawq *r, int reason, uint64_t n);
/* The queue at key: made (IPC_EXCL, *created = 1) or found (checked for
 * the access the bridge needs: 0400 to read, 0200 to write).  The id, or
 * -errno. */
int rawq_open(long key, unsigned mode, int need, int *created);
/* Why rawq_open() failed with rc, for the log, in out. */
const char *rawq_open_why(const struct rawq *r, int rc, char *out, size_t n);

/* ---- rawq_in.c ---- */

/* Start r's receiver thread (r->msqid open): 0 or a negative code (what
 * was made is undone by rawq_fini). */
int rawq_in_start(struct rawq *r);
/* Stop the thread and publish what it had taken. */
void rawq_in_stop(struct rawq *r);

/* ---- rawq_out.c ---- */

/* Subscribe r (r->msqid open, r->qbytes read): 0 or a negative code. */
int rawq_out_start(struct rawq *r);
/* Unsubscribe r and try its backlog once more: what does not go now is
 * dropped and counted.  Nothing for a sysv-in line. */
void rawq_out_stop(struct rawq *r);

#endif
