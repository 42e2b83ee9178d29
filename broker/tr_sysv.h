/*
 * tr_sysv.h: what the three files of the broker's sysv:// transport share:
 * tr_sysv.c (the connections' conn_ops, the tick, the listener),
 * sysv_hello.c (a HELLO checked, its connection set up) and sysv_thread.c
 * (the threads that block in msgrcv and msgsnd, and their hand-off to the
 * loop).  The rest of the broker knows only transport_sysv (transport.h).
 *
 * Locks: a connection's mu guards what its reader and writer share with
 * the loop; the listener's mu its HELLOs, rmu its ready list.  rmu is taken
 * with no other lock held, and mu never while rmu is held.
 */
#ifndef IPCBUS_TR_SYSV_H
#define IPCBUS_TR_SYSV_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "loop.h"
#include "sysv.h"
#include "transport.h"

struct conn;

/* Bytes a connection's reader holds for the loop (at least two messages). */
#define SYSV_IN_MIN (32 << 10)
/* HELLOs the receiver holds for the loop. */
#define SYSV_HELLO_PENDING 64
/* How often clients' processes are checked, and unfinished frames. */
#define SYSV_TICK_MS 1000
/* The threads' stacks (they hold little; AddressSanitizer wants room). */
#define SYSV_STACK (256 << 10)
/* The most a closed connection leaves to its writer (its last words). */
#define SYSV_TAIL_MAX (64 << 10)
/* Closed connections whose clients live and have their queues still (they
 * remove them once they read the end, within a tick): past this many, the
 * oldest's queues are removed by the broker. */
#define SYSV_TAILS_MAX 1024
/* What a client's queues are raised to where that is permitted, unless
 * the URL's ?qbytes= says otherwise. */
#define SYSV_QBYTES_WANT (256 << 10)
/* The signal that interrupts a thread's msgrcv or msgsnd. */
#define SYSV_SIG (SIGRTMIN + 2)

enum { SYSV_EV_IN = 1, SYSV_EV_OUT = 2 };

struct sysv_listener;

/* A message for the writer. */
struct sysv_out {
	struct sysv_out *next;
	size_t len;
	struct sysv_msg m; /* mtext follows */
};

struct sysv_conn {
	struct sysv_listener *sl;
	struct conn *c;          /* NULL for a tail (the connection is gone) */
	int tx, rx;              /* the client's send queue (read), reply queue (written) */
	uid_t uid;
	pid_t pid;
	unsigned long long start; /* the client's start time, or 0 */
	size_t chunk;            /* mtext bytes per message to rx */
	struct sysv_msg *obuf;   /* one message being sent (loop) */
	uint64_t partial_since;  /* loop time a frame in c->in began, or 0 */
	int dead;                /* the client process is gone */
	int eof_sent;
	int gone;                /* the client removed its queues */
	struct sysv_conn *next, *prev; /* the listener's connections, or tails */

	pthread_t rd, wr;
	int rd_started, wr_started;
	/* under mu, shared with the threads */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *in;             /* bytes read, not taken by the loop yet */
	size_t in_len, in_cap;
	int rd_waiting;          /* the reader waits for room */
	int rd_eof;              /* the send queue was removed */
	int rd_err;              /* errno of another failure, or EPROTO */
	long rd_mtype;           /* a message of this type came (EPROTO) */
	struct sysv_out *wq, **wq_tail; /* for the writer */
	int wr_err;              /* its msgsnd failed */
	int rd_stop, wr_stop;    /* the threads: end now */
	/* under sl->rmu */
	int ready, ev;
	struct sysv_conn *ready_next, *loop_next;
};

/* A HELLO received. */
struct sysv_hello_msg {
	struct sysv_hello_msg *next;
	size_t len;
	uint8_t bytes[];
};

struct sysv_listener {
	struct listener l;
	int qid;                 /* the broker's queue, -1 after unlisten */
	struct sysv_limits lim;
	unsigned long qbytes;    /* what a client's queues are raised to (0: left
				  * as they are): ?qbytes=, as far as permitted */
	struct loop_async async;
	int async_ok;
	struct loop_timer tick;
	struct sysv_conn *conns; /* loop: every connection of this listener */
	struct sysv_conn *tails; /* loop: closed connections whose client lives
				  * (their last words left to the writer, the
				  * queues to the client), the newest first */
	size_t ntails;
	uint64_t refused, refused_quiet, refused_at; /* HELLOs refused, for the log */

	pthread_t th;
	int th_started;
	pthread_mutex_t mu;      /* the HELLOs, stop */
	pthread_cond_t cv;
	struct sysv_hello_msg *hellos, **hellos_tail;
	size_t nhellos;
	int th_stop, th_gone;    /* the queue was removed under the receiver */
	int th_err;
	pthread_mutex_t rmu;     /* the ready list */
	struct sysv_conn *ready;
	int hello_ev;
};

/* ---- tr_sysv.c ---- */

extern const struct conn_ops sysv_conn_ops;

/* Free sc: its threads stopped, off the ready list; its queues removed
 * when nobody is left to read them (the client dead, gone, or not told the
 * end). */
void sysv_conn_free(struct sysv_conn *sc);

/* Link sc at the head of a list of the listener's (conns, tails), unlink. */
void sysv_link(struct sysv_conn **head, struct sysv_conn *sc);
void sysv_unlink(struct sysv_conn **head, struct sysv_conn *sc);

/* Arm the listener's tick while it has connections or tails. */
void sysv_arm_tick(struct sysv_listener *sl);

/* ---- sysv_hello.c ---- */

/* One message from the broker's queue: a HELLO checked (docs/protocol.md,
 * SysV) and, when it passes, its connection made (linked, its reader
 * started) and its HELLO handled.  A refusal is logged and counted. */
void sysv_hello(struct sysv_listener *sl, const uint8_t *p, size_t n);

/* ---- sysv_thread.c ---- */

/* The handler of SYSV_SIG, once per process (it only interrupts). */
void sysv_thread_install(void);

/* Start fn(arg) with every signal blocked (fn unblocks SYSV_SIG).  0 or
 * -errno. */
int sysv_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* Join t, which saw its stop flag set: SYSV_SIG until it has ended. */
void sysv_thread_join(pthread_t t);

/* From a thread: sc has news for the loop (SYSV_EV_*); the listener's
 * wake-up is sent when the ready list was empty. */
void sysv_thread_notify(struct sysv_conn *sc, int ev);

/* Take sc off the ready list (its threads have ended). */
void sysv_thread_unready(struct sysv_conn *sc);

/* The threads: a connection's reader (arg: the sysv_conn), the
 * listener's receiver of HELLOs (arg: the sysv_listener). */
void *sysv_thread_reader(void *arg);
void *sysv_thread_receiver(void *arg);

/* Hand one message to sc's writer (started when first needed), which sends
 * it waiting for room, in order after what it has.  0, or -errno. */
int sysv_thread_hand(struct sysv_conn *sc, long mtype, const void *p, size_t n);

/* Stop sc's reader (rd) and writer (wr), as asked, and join them. */
void sysv_thread_stop(struct sysv_conn *sc, int rd, int wr);

#endif
