/*
 * tr_sysv.c: sysv://KEY, the protocol over SysV message queues
 * (docs/protocol.md, SysV; docs/design.md, SysV queues).
 *
 * The broker creates its queue at KEY, owner-only unless ?mode= says more,
 * and marks it with a message of its own (SYSV_MT_MARK: "ipcbusd PID
 * START") so that a broker that crashed is recognised by the next one: a
 * queue at KEY whose mark names a dead process is removed and made again; a
 * live one, or a queue without a mark (not a broker's), is an error.  That
 * queue carries only HELLOs.  A client creates two queues of its own
 * (IPC_PRIVATE, owner-only), puts one empty message of a random type (the
 * proof) in its send queue and sends a HELLO naming both queues and the
 * proof.  The broker accepts the HELLO only if both queues are the same
 * user's, owner-only, not already in use, and the proof is in the send
 * queue -- so whoever sent it may write there, and a HELLO naming someone
 * else's queues takes nothing and opens nothing.  The sender of the proof
 * (msg_lspid) is the connection's pid; the queues' creator its uid.
 *
 * Nothing of a queue can be polled, so threads block in msgrcv and msgsnd
 * and hand what they did to the loop through the listener's loop_async:
 *   - one receiver of HELLOs per listener;
 *   - one reader per connection, blocked in msgrcv on the client's send
 *     queue; it holds at most SYSV_IN_MAX bytes for the loop and waits for
 *     the loop to take them (then the queue fills and the client waits:
 *     back-pressure, as on a socket);
 *   - one writer per connection, started the first time the client's reply
 *     queue is full: flush() sends with IPC_NOWAIT from the loop and, when
 *     the queue is full, hands that one message to the writer, which waits
 *     in msgsnd until the client made room and tells the loop; meanwhile
 *     the connection's output waits in c->out, bounded by max-pending like
 *     any other (a client that does not read is a slow consumer).
 * The loop never blocks on a queue.  Threads have every signal blocked but
 * SYSV_SIG, with which the loop interrupts a thread's msgrcv or msgsnd to
 * stop it.  A thread's work is counted and linked on the listener's ready
 * list under its mutex; one wake-up serves every connection that has news.
 *
 * A client that dies is noticed by a tick (kill(pid, 0) and its start
 * time, every SYSV_TICK_MS) or by its queue being removed under the reader:
 * the connection closes, its subscriptions go, and its queues are removed.
 * When the broker closes a live client's connection, it ends the reply
 * stream with SYSV_MT_EOF and leaves the queues to the client, which
 * removes them; output the client has not read yet (the ERR that says why)
 * is left to the writer for as long as the client lives (a "tail").  A
 * frame begun must be finished within the HELLO deadline (CONN_HELLO_MS, or
 * ping-interval when shorter); its size is bounded by the frame limit.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "conn.h"
#include "frame.h"
#include "proto.h"
#include "sysv.h"
#include "transport.h"

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
/* What a client's queues are raised to where that is permitted. */
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
	time_t tx_ctime, rx_ctime; /* as created: a queue id reused is not ours */
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
struct sysv_hello {
	struct sysv_hello *next;
	size_t len;
	uint8_t bytes[];
};

struct sysv_listener {
	struct listener l;
	int qid;                 /* the broker's queue, -1 after unlisten */
	struct sysv_limits lim;
	size_t qbytes;           /* what a client's queue holds, as found */
	int qbytes_logged;
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
	struct sysv_hello *hellos, **hellos_tail;
	size_t nhellos;
	int th_stop, th_gone;    /* the queue was removed under the receiver */
	int th_err;
	pthread_mutex_t rmu;     /* the ready list */
	struct sysv_conn *ready;
	int hello_ev;
};

/* ---- threads ---- */

static void sysv_sig_handler(int sig)
{
	(void)sig; /* only to interrupt msgrcv/msgsnd (never restarted) */
}

static int sysv_signals_ready;

static void sysv_install_signal(void)
{
	if (sysv_signals_ready)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sysv_sig_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SYSV_SIG, &sa, NULL);
	sysv_signals_ready = 1;
}

/* Start fn with every signal blocked but SYSV_SIG.  0 or -errno. */
static int sysv_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	pthread_attr_t a;

	sigfillset(&all);
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, SYSV_STACK);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(t, &a, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	return -rc;
}

static void sysv_thread_signals(void)
{
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, SYSV_SIG);
	pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

/* Stop a thread that saw its stop flag set: interrupt whatever it waits in
 * until it has ended (a signal that came just before it entered msgrcv is
 * lost, so it is sent again). */
static void sysv_thread_join(pthread_t t)
{
	for (;;) {
		pthread_kill(t, SYSV_SIG);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 2 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(t, NULL, &ts) == 0)
			return;
	}
}

/* A thread has news for the loop about sc (SYSV_EV_*). */
static void sysv_notify(struct sysv_conn *sc, int ev)
{
	struct sysv_listener *sl = sc->sl;
	int wake = 0;

	pthread_mutex_lock(&sl->rmu);
	sc->ev |= ev;
	if (!sc->ready) {
		sc->ready = 1;
		sc->ready_next = sl->ready;
		wake = !sl->ready && !sl->hello_ev;
		sl->ready = sc;
	}
	pthread_mutex_unlock(&sl->rmu);
	if (wake)
		loop_async_send(&sl->async);
}

/* Off the ready list (before sc is freed; its threads have ended). */
static void sysv_unready(struct sysv_conn *sc)
{
	struct sysv_listener *sl = sc->sl;

	pthread_mutex_lock(&sl->rmu);
	if (sc->ready) {
		for (struct sysv_conn **pp = &sl->ready; *pp; pp = &(*pp)->ready_next) {
			if (*pp == sc) {
				*pp = sc->ready_next;
				break;
			}
		}
		sc->ready = 0;
	}
	pthread_mutex_unlock(&sl->rmu);
}

/* The reader: the client's send queue into sc->in. */
static void *sysv_reader(void *arg)
{
	struct sysv_conn *sc = arg;
	size_t cap = (size_t)sc->sl->lim.msgmax;
	struct sysv_msg *m = malloc(sizeof *m + cap);

	sysv_thread_signals();
	if (!m) {
		pthread_mutex_lock(&sc->mu);
		sc->rd_err = ENOMEM;
		pthread_mutex_unlock(&sc->mu);
		sysv_notify(sc, SYSV_EV_IN);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&sc->mu);
		while (!sc->rd_stop && sc->in_len + cap > sc->in_cap) {
			sc->rd_waiting = 1;
			pthread_cond_wait(&sc->cv, &sc->mu);
		}
		sc->rd_waiting = 0;
		int stop = sc->rd_stop;
		pthread_mutex_unlock(&sc->mu);
		if (stop)
			break;
		ssize_t n = msgrcv(sc->tx, m, cap, 0, 0);
		if (n < 0 && errno == EINTR)
			continue;
		int err = n < 0 ? errno : m->mtype != SYSV_MT_DATA ? EPROTO : 0;
		pthread_mutex_lock(&sc->mu);
		if (err == EIDRM || err == EINVAL) {
			sc->rd_eof = 1;
		} else if (err) {
			/* E2BIG: a message over msgmax as it was when the
			 * connection began; it stays in the queue, whole */
			sc->rd_err = err;
			sc->rd_mtype = n >= 0 ? m->mtype : 0;
		} else {
			memcpy(sc->in + sc->in_len, m->mtext, (size_t)n);
			sc->in_len += (size_t)n;
		}
		pthread_mutex_unlock(&sc->mu);
		sysv_notify(sc, SYSV_EV_IN);
		if (err)
			break;
	}
	free(m);
	return NULL;
}

/* The writer: what flush() could not send at once, in order, waiting for
 * room; it ends with its work when sc is a tail. */
static void *sysv_writer(void *arg)
{
	struct sysv_conn *sc = arg;

	sysv_thread_signals();
	pthread_mutex_lock(&sc->mu);
	for (;;) {
		while (!sc->wr_stop && !sc->wq && sc->c)
			pthread_cond_wait(&sc->cv, &sc->mu);
		if (sc->wr_stop || !sc->wq)
			break;
		struct sysv_out *o = sc->wq;
		pthread_mutex_unlock(&sc->mu);
		int rc = msgsnd(sc->rx, &o->m, o->len, 0);
		int err = rc < 0 ? errno : 0;
		pthread_mutex_lock(&sc->mu);
		if (err == EINTR)
			continue;
		if (err) {
			sc->wr_err = err;
			while (sc->wq) {
				o = sc->wq;
				sc->wq = o->next;
				free(o);
			}
		} else {
			sc->wq = o->next;
			free(o);
		}
		if (!sc->wq)
			sc->wq_tail = &sc->wq;
		int tell = !sc->wq || err;
		pthread_mutex_unlock(&sc->mu);
		if (tell)
			sysv_notify(sc, SYSV_EV_OUT);
		pthread_mutex_lock(&sc->mu);
		if (err)
			break;
	}
	pthread_mutex_unlock(&sc->mu);
	return NULL;
}

/* Hand one message to the writer (started when first needed).  0, or
 * -errno (out of memory, no thread). */
static int sysv_hand(struct sysv_conn *sc, long mtype, const void *p, size_t n)
{
	struct sysv_out *o = malloc(sizeof *o + n);
	if (!o)
		return -ENOMEM;
	o->next = NULL;
	o->len = n;
	o->m.mtype = mtype;
	if (n)
		memcpy(o->m.mtext, p, n);
	if (!sc->wr_started) {
		int rc = sysv_thread_start(&sc->wr, sysv_writer, sc);
		if (rc < 0) {
			free(o);
			return rc;
		}
		sc->wr_started = 1;
	}
	pthread_mutex_lock(&sc->mu);
	*sc->wq_tail = o;
	sc->wq_tail = &o->next;
	pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
	return 0;
}

/* Stop the reader (rd) and the writer (wr), as asked. */
static void sysv_stop_threads(struct sysv_conn *sc, int rd, int wr)
{
	pthread_mutex_lock(&sc->mu);
	sc->rd_stop |= rd;
	sc->wr_stop |= wr;
	pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
	if (rd && sc->rd_started) {
		sysv_thread_join(sc->rd);
		sc->rd_started = 0;
	}
	if (wr && sc->wr_started) {
		sysv_thread_join(sc->wr);
		sc->wr_started = 0;
	}
}

/* ---- a connection's queues ---- */

/* Remove queue id if it is still the one the client created. */
static void sysv_rmid(int id, uid_t cuid, time_t ctime)
{
	struct msqid_ds ds;
	if (id >= 0 && msgctl(id, IPC_STAT, &ds) == 0 && ds.msg_perm.cuid == cuid &&
	    ds.msg_ctime == ctime)
		msgctl(id, IPC_RMID, NULL);
}

static void sysv_conn_free(struct sysv_conn *sc)
{
	struct sysv_listener *sl = sc->sl;

	sysv_stop_threads(sc, 1, 1);
	sysv_unready(sc);
	if (sc->dead || sc->gone || !sc->eof_sent || sc->wq) {
		/* nobody to read them, or the end not told: the queues go */
		sysv_rmid(sc->tx, sc->uid, sc->tx_ctime);
		sysv_rmid(sc->rx, sc->uid, sc->rx_ctime);
	}
	while (sc->wq) {
		struct sysv_out *o = sc->wq;
		sc->wq = o->next;
		free(o);
	}
	if (sc->in) {
		sl->l.b->memory -= sc->in_cap;
		free(sc->in);
	}
	free(sc->obuf);
	pthread_cond_destroy(&sc->cv);
	pthread_mutex_destroy(&sc->mu);
	free(sc);
}

static void sysv_link(struct sysv_conn **head, struct sysv_conn *sc)
{
	sc->prev = NULL;
	sc->next = *head;
	if (*head)
		(*head)->prev = sc;
	*head = sc;
}

static void sysv_unlink(struct sysv_conn **head, struct sysv_conn *sc)
{
	if (sc->prev)
		sc->prev->next = sc->next;
	else if (*head == sc)
		*head = sc->next;
	if (sc->next)
		sc->next->prev = sc->prev;
	sc->next = sc->prev = NULL;
}

static void sysv_tick(void *arg);

/* How long a frame may take to arrive whole: the HELLO deadline. */
static uint64_t sysv_frame_ms(const struct broker *b)
{
	uint64_t iv = b->cfg.ping_interval;
	return iv && iv < CONN_HELLO_MS ? iv : CONN_HELLO_MS;
}

static void sysv_arm_tick(struct sysv_listener *sl)
{
	/* often enough that an unfinished frame ends at 1.5 times its time */
	uint64_t ms = sysv_frame_ms(sl->l.b) / 2;
	if (ms > SYSV_TICK_MS)
		ms = SYSV_TICK_MS;
	if (!sl->tick.armed && (sl->conns || sl->tails))
		loop_timer_set(sl->l.b->loop, &sl->tick, ms ? ms : 1, sysv_tick, sl);
}

/* ---- conn_ops ---- */

static int sysv_errno_code(int err)
{
	/* the queue is gone: the client closed or died */
	return err == EIDRM || err == EINVAL ? -EPIPE : -err;
}

static void sysv_read_ready(struct conn *c)
{
	struct sysv_conn *sc = c->tp;
	int eof, err;
	long mtype;
	size_t n;

	pthread_mutex_lock(&sc->mu);
	n = sc->in_len;
	eof = sc->rd_eof;
	err = sc->rd_err;
	mtype = sc->rd_mtype;
	if (c->state == CONN_CLOSING) {
		/* read and thrown away, until the client removes its queue */
		sc->in_len = 0;
		if (sc->rd_waiting)
			pthread_cond_broadcast(&sc->cv);
		pthread_mutex_unlock(&sc->mu);
		if (eof || err) {
			sc->gone = eof;
			c->eof = 1;
		}
		return;
	}
	if (n) {
		int rc = conn_in_reserve(c, n);
		if (rc < 0) {
			pthread_mutex_unlock(&sc->mu);
			if (rc != -ENOBUFS) /* -ENOBUFS: paused until memory frees */
				conn_close(c, "out of memory for input");
			return;
		}
		memcpy(buf_wptr(&c->in), sc->in, n);
		buf_commit(&c->in, n);
		sc->in_len = 0;
		if (sc->rd_waiting)
			pthread_cond_broadcast(&sc->cv);
	}
	pthread_mutex_unlock(&sc->mu);
	if (n) {
		size_t had = buf_len(&c->in);
		if (stream_frames(c) < 0)
			return;
		size_t left = buf_len(&c->in);
		if (!left)
			sc->partial_since = 0;
		else if (left < had || !sc->partial_since)
			sc->partial_since = loop_now(c->b->loop); /* a frame ended: the next began */
		if (!left)
			buf_shrink(&c->in, 0);
	}
	if (c->state == CONN_CLOSING)
		return;
	if (eof) {
		sc->gone = 1;
		c->eof = 1;
		conn_close(c, "closed by the client");
	} else if (err == EPROTO) {
		conn_error(c, 0, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
			   "a message of type %ld in the send queue (frames go in type %ld)", mtype,
			   SYSV_MT_DATA);
	} else if (err == E2BIG) {
		conn_error(c, 0, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
			   "a message over msgmax (%ld bytes) in the send queue",
			   sc->sl->lim.msgmax);
	} else if (err) {
		char why[128];
		snprintf(why, sizeof why, "reading the send queue: %s", strerror(err));
		conn_close(c, why);
	}
}

/* Copy up to max bytes from the front of c->out into p. */
static size_t sysv_gather(struct conn *c, uint8_t *p, size_t max)
{
	struct iovec iov[16];
	int k = outq_iov(&c->out, iov, 16);
	size_t n = 0;

	for (int i = 0; i < k && n < max; i++) {
		size_t take = iov[i].iov_len < max - n ? iov[i].iov_len : max - n;
		memcpy(p + n, iov[i].iov_base, take);
		n += take;
	}
	return n;
}

/* Write c->out from the loop with IPC_NOWAIT; when the reply queue is full,
 * that message goes to the writer, which waits for room and says when (1:
 * the connection waits).  A closing connection's last words all go to the
 * writer (up to SYSV_TAIL_MAX; beyond that they are dropped), so that they
 * outlive the connection for a client that reads them late (a tail). */
static int sysv_flush(struct conn *c)
{
	struct sysv_conn *sc = c->tp;
	int closing = c->state == CONN_CLOSING;
	size_t tail = 0;

	pthread_mutex_lock(&sc->mu);
	int busy = sc->wq != NULL, err = sc->wr_err;
	pthread_mutex_unlock(&sc->mu);
	if (err)
		return sysv_errno_code(err);
	if (busy && !closing)
		return 1; /* the writer waits for room: it says when */
	while (c->out.len > 0) {
		size_t n = sysv_gather(c, sc->obuf->mtext, sc->chunk);
		sc->obuf->mtype = SYSV_MT_DATA;
		if (!busy) {
			if (msgsnd(sc->rx, sc->obuf, n, IPC_NOWAIT) == 0) {
				conn_sent(c, n);
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return sysv_errno_code(errno);
		}
		if (closing && tail + n > SYSV_TAIL_MAX) {
			conn_sent(c, c->out.len); /* more than last words: dropped */
			break;
		}
		int rc = sysv_hand(sc, SYSV_MT_DATA, sc->obuf->mtext, n);
		if (rc < 0)
			return rc;
		conn_sent(c, n);
		if (!closing)
			return 1;
		busy = 1;
		tail += n;
	}
	return 0;
}

/* The end of the reply stream: nothing follows. */
static void sysv_send_eof(struct sysv_conn *sc)
{
	struct sysv_msg m = {.mtype = SYSV_MT_EOF};

	if (sc->eof_sent)
		return;
	pthread_mutex_lock(&sc->mu);
	int busy = sc->wq != NULL, err = sc->wr_err;
	pthread_mutex_unlock(&sc->mu);
	if (err)
		return;
	if (!busy && msgsnd(sc->rx, &m, 0, IPC_NOWAIT) == 0) {
		sc->eof_sent = 1;
		return;
	}
	if ((busy || errno == EAGAIN) && sysv_hand(sc, SYSV_MT_EOF, NULL, 0) == 0)
		sc->eof_sent = 1;
}

static void sysv_shutdown(struct conn *c)
{
	sysv_send_eof(c->tp);
}

static void sysv_watch(struct conn *c, int in, int out)
{
	struct sysv_conn *sc = c->tp;
	(void)out; /* the writer tells when it is done */

	if (!in)
		return;
	/* what the reader holds gets no new wake-up of its own: ask for one */
	pthread_mutex_lock(&sc->mu);
	int has = sc->in_len || sc->rd_eof || sc->rd_err;
	pthread_mutex_unlock(&sc->mu);
	if (has)
		sysv_notify(sc, SYSV_EV_IN);
}

/* The connection is gone.  A client that lives gets the end of the stream
 * (after what it has not read yet, which the writer keeps for it) and keeps
 * its queues: it removes them once it read the end.  Until then the broker
 * watches it as a tail (sysv_tick), so that a client that dies meanwhile
 * leaves nothing behind. */
static void sysv_close(struct conn *c)
{
	struct sysv_conn *sc = c->tp;
	struct sysv_listener *sl;

	if (!sc)
		return;
	sl = sc->sl;
	c->tp = NULL;
	sysv_unlink(&sl->conns, sc);
	if (!sc->dead && !sysv_pid_alive(sc->pid, sc->start))
		sc->dead = 1;
	if (sc->dead || sc->gone) {
		sysv_conn_free(sc);
		return;
	}
	sysv_send_eof(sc);
	sysv_stop_threads(sc, 1, 0); /* the reader is not needed any more */
	pthread_mutex_lock(&sc->mu);
	sc->c = NULL; /* the writer ends with its work */
	pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
	if (sc->in) {
		sl->l.b->memory -= sc->in_cap;
		free(sc->in);
		sc->in = NULL;
	}
	sysv_link(&sl->tails, sc);
	sl->ntails++;
	while (sl->ntails > SYSV_TAILS_MAX) {
		struct sysv_conn *old = sl->tails;
		while (old->next)
			old = old->next;
		sysv_unlink(&sl->tails, old);
		sl->ntails--;
		old->dead = 1; /* it had its end: its queues go */
		sysv_conn_free(old);
	}
	sysv_arm_tick(sl);
}

static const struct conn_ops sysv_conn_ops = {
	.read_ready = sysv_read_ready,
	.flush = sysv_flush,
	.shutdown = sysv_shutdown,
	.watch = sysv_watch,
	.close = sysv_close,
};

/* ---- the tick: dead clients, unfinished frames, tails ---- */

static void sysv_tick(void *arg)
{
	struct sysv_listener *sl = arg;
	struct broker *b = sl->l.b;
	uint64_t now = loop_now(b->loop);
	uint64_t limit = sysv_frame_ms(b);

	for (struct sysv_conn *sc = sl->conns; sc; sc = sc->next) {
		struct conn *c = sc->c;
		if (c->state == CONN_CLOSING && sc->dead)
			continue;
		if (!sysv_pid_alive(sc->pid, sc->start)) {
			char why[96];
			sc->dead = 1;
			c->eof = 1; /* nobody to linger for */
			snprintf(why, sizeof why, "the client process %d is gone", (int)sc->pid);
			log_info(&b->log, "%s: %s", c->desc, why);
			conn_close(c, why);
			continue;
		}
		if (c->state != CONN_CLOSING && sc->partial_since &&
		    now - sc->partial_since >= limit) {
			uint64_t want = 0;
			frame_varint_get(buf_rptr(&c->in), buf_len(&c->in), &want);
			conn_error(c, 0, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
				   "a frame of %llu bytes was not finished within %llu ms (%zu bytes came)",
				   (unsigned long long)want, (unsigned long long)limit,
				   buf_len(&c->in));
		}
	}
	for (struct sysv_conn *sc = sl->tails, *next; sc; sc = next) {
		struct msqid_ds ds;
		next = sc->next;
		if (sysv_pid_alive(sc->pid, sc->start)) {
			/* it read the end and removed its queues: done */
			if (msgctl(sc->tx, IPC_STAT, &ds) == 0 && ds.msg_ctime == sc->tx_ctime)
				continue;
			sc->gone = 1;
		} else {
			sc->dead = 1; /* its queues go with it */
		}
		sysv_unlink(&sl->tails, sc);
		sl->ntails--;
		sysv_conn_free(sc);
	}
	sysv_arm_tick(sl);
}

/* ---- HELLOs ---- */

/* A HELLO refused: logged at most once a second with a count. */
static void sysv_refuse(struct sysv_listener *sl, const char *why)
{
	struct broker *b = sl->l.b;
	uint64_t now = loop_now(b->loop);

	sl->refused++;
	log_debug(&b->log, "sysv://%s: a HELLO refused: %s", sl->l.url.keyspec, why);
	if (sl->refused_at && now - sl->refused_at < 1000) {
		sl->refused_quiet++;
		return;
	}
	if (sl->refused_quiet)
		log_warn(&b->log, "sysv://%s: a HELLO refused: %s (and %llu more since the last report)",
			 sl->l.url.keyspec, why, (unsigned long long)sl->refused_quiet);
	else
		log_warn(&b->log, "sysv://%s: a HELLO refused: %s", sl->l.url.keyspec, why);
	sl->refused_at = now;
	sl->refused_quiet = 0;
}

/* A client's queue as it must be: a queue that is not the broker's,
 * owner-only, owned by its creator or the broker.  0, or -1 and why. */
static int sysv_check_queue(struct sysv_listener *sl, int id, struct msqid_ds *ds, char *why,
			    size_t n)
{
	if (id < 0 || id == sl->qid) {
		snprintf(why, n, "queue %d is not a client's", id);
		return -1;
	}
	if (msgctl(id, IPC_STAT, ds) < 0) {
		snprintf(why, n, "queue %d: %s", id, strerror(errno));
		return -1;
	}
	if (ds->msg_perm.mode & 0077) {
		snprintf(why, n,
			 "queue %d has mode %04o: others could read or write it (owner-only, 0600)", id,
			 (unsigned)(ds->msg_perm.mode & 0777));
		return -1;
	}
	if (ds->msg_perm.uid != ds->msg_perm.cuid && ds->msg_perm.uid != geteuid()) {
		snprintf(why, n, "queue %d is also owned by uid %u", id, (unsigned)ds->msg_perm.uid);
		return -1;
	}
	return 0;
}

static int sysv_in_use(const struct sysv_listener *sl, int id)
{
	for (const struct sysv_conn *sc = sl->conns; sc; sc = sc->next)
		if (sc->tx == id || sc->rx == id)
			return 1;
	for (const struct sysv_conn *sc = sl->tails; sc; sc = sc->next)
		if (sc->tx == id || sc->rx == id)
			return 1;
	return 0;
}

/* Raise a client's queue where permitted (CAP_SYS_RESOURCE above msgmnb);
 * what it holds then is logged once per listener. */
static size_t sysv_qbytes(struct sysv_listener *sl, int id, struct msqid_ds *ds)
{
	struct broker *b = sl->l.b;

	if (ds->msg_qbytes < SYSV_QBYTES_WANT) {
		struct msqid_ds want = *ds;
		want.msg_qbytes = SYSV_QBYTES_WANT;
		if (msgctl(id, IPC_SET, &want) == 0)
			ds->msg_qbytes = SYSV_QBYTES_WANT;
		else if (!sl->qbytes_logged)
			log_info(&b->log,
				 "sysv://%s: a client's queue holds %lu bytes (msg_qbytes cannot be raised to %d: %s)",
				 sl->l.url.keyspec, (unsigned long)ds->msg_qbytes, SYSV_QBYTES_WANT,
				 strerror(errno));
		sl->qbytes_logged = 1;
	}
	return ds->msg_qbytes;
}

/* Tell a client, in its verified reply queue, that it cannot come in. */
static void sysv_turn_away(int rx, uint64_t id, int code, const char *why)
{
	struct buf out;
	buf_init(&out, 4096);
	if (frame_append_error(&out, id, code, 1, why) == 0 && buf_len(&out) <= 4096) {
		struct {
			long mtype;
			uint8_t text[4096];
		} m = {.mtype = SYSV_MT_DATA};
		memcpy(m.text, buf_rptr(&out), buf_len(&out));
		msgsnd(rx, &m, buf_len(&out), IPC_NOWAIT);
		m.mtype = SYSV_MT_EOF;
		msgsnd(rx, &m, 0, IPC_NOWAIT);
	}
	buf_fini(&out);
}

static void sysv_hello(struct sysv_listener *sl, const uint8_t *p, size_t n)
{
	struct broker *b = sl->l.b;
	const uint8_t *body;
	size_t blen, need;
	struct frame f;
	char why[200];
	struct msqid_ds dtx, drx;
	Ipcbus__Hello *h = NULL;
	struct sysv_conn *sc = NULL;

	long k = frame_split(p, n, SYSV_HELLO_MAX, &body, &blen, &need);
	if (k <= 0 || (size_t)k != n) {
		sysv_refuse(sl, "not one whole frame");
		return;
	}
	if (frame_decode(body, blen, &f) < 0 || f.type != IPCBUS__FRAME_TYPE__HELLO) {
		sysv_refuse(sl, "not a HELLO frame");
		return;
	}
	h = frame_unpack_hello(&f);
	if (!h || !h->sysv) {
		sysv_refuse(sl, "a HELLO without its queues (Hello.sysv)");
		goto out;
	}
	int tx = h->sysv->send_queue, rx = h->sysv->reply_queue;
	uint64_t proof = h->sysv->proof;
	if (tx == rx || proof == 0 || proof > (uint64_t)LONG_MAX) {
		sysv_refuse(sl, "bad Hello.sysv (the two queues the same, or a proof out of range)");
		goto out;
	}
	if (sysv_check_queue(sl, tx, &dtx, why, sizeof why) < 0 ||
	    sysv_check_queue(sl, rx, &drx, why, sizeof why) < 0) {
		sysv_refuse(sl, why);
		goto out;
	}
	if (dtx.msg_perm.cuid != drx.msg_perm.cuid) {
		snprintf(why, sizeof why, "queues %d and %d were created by different users (%u, %u)",
			 tx, rx, (unsigned)dtx.msg_perm.cuid, (unsigned)drx.msg_perm.cuid);
		sysv_refuse(sl, why);
		goto out;
	}
	if (sysv_in_use(sl, tx) || sysv_in_use(sl, rx)) {
		snprintf(why, sizeof why, "queue %d or %d is another connection's", tx, rx);
		sysv_refuse(sl, why);
		goto out;
	}
	/* the proof: whoever sent this HELLO may write to tx */
	struct {
		long mtype;
		uint8_t text[16];
	} pm;
	if (msgrcv(tx, &pm, sizeof pm.text, (long)proof, IPC_NOWAIT) < 0) {
		snprintf(why, sizeof why, "no proof in queue %d (%s): a HELLO in another's name?", tx,
			 errno == ENOMSG ? "no such message" : strerror(errno));
		sysv_refuse(sl, why);
		goto out;
	}
	pid_t pid = dtx.msg_lspid;
	unsigned long long start = sysv_pid_start(pid);
	if (!sysv_pid_alive(pid, 0)) {
		/* its queues have nobody left to remove them */
		msgctl(tx, IPC_RMID, NULL);
		msgctl(rx, IPC_RMID, NULL);
		snprintf(why, sizeof why, "the client (pid %d) is gone already", (int)pid);
		sysv_refuse(sl, why);
		goto out;
	}
	if (!broker_admit(b, why, sizeof why)) {
		sysv_turn_away(rx, f.has_id ? f.id : 0, IPCBUS__ERR_CODE__E_MAX_CONNECTIONS, why);
		broker_refused(b, why);
		goto out;
	}

	sc = calloc(1, sizeof *sc);
	size_t in_cap = 4 * (size_t)sl->lim.msgmax;
	if (in_cap < SYSV_IN_MIN)
		in_cap = SYSV_IN_MIN;
	size_t chunk = (size_t)sl->lim.msgmax;
	size_t qb = sysv_qbytes(sl, rx, &drx);
	sysv_qbytes(sl, tx, &dtx);
	if (qb && qb < chunk)
		chunk = qb;
	if (!sc || !(sc->in = malloc(in_cap)) || !(sc->obuf = malloc(sizeof *sc->obuf + chunk))) {
		if (sc) {
			free(sc->in);
			free(sc);
		}
		sc = NULL;
		log_error(&b->log, "sysv://%s: out of memory for a connection", sl->l.url.keyspec);
		goto out;
	}
	sc->sl = sl;
	sc->tx = tx;
	sc->rx = rx;
	sc->tx_ctime = dtx.msg_ctime;
	sc->rx_ctime = drx.msg_ctime;
	sc->uid = dtx.msg_perm.cuid;
	sc->pid = pid;
	sc->start = start;
	sc->chunk = chunk;
	sc->in_cap = in_cap;
	sc->wq_tail = &sc->wq;
	pthread_mutex_init(&sc->mu, NULL);
	pthread_cond_init(&sc->cv, NULL);
	b->memory += in_cap;

	struct conn *c = conn_new(b, -1, &sysv_conn_ops, &sl->l);
	int rc = c ? sysv_thread_start(&sc->rd, sysv_reader, sc) : -ENOMEM;
	if (rc < 0) {
		log_error(&b->log, "sysv://%s: cannot take a connection: %s", sl->l.url.keyspec,
			  c ? "no thread for it" : "out of memory");
		if (c)
			conn_free(c); /* its tp is not set yet */
		sysv_turn_away(rx, f.has_id ? f.id : 0, IPCBUS__ERR_CODE__E_MAX_CONNECTIONS,
			       "the broker cannot take more SysV connections now");
		sc->eof_sent = 1; /* the client removes its queues */
		sysv_conn_free(sc);
		goto out;
	}
	sc->rd_started = 1;
	sc->c = c;
	c->tp = sc;
	c->has_cred = 1;
	c->pid = pid;
	c->uid = dtx.msg_perm.cuid;
	c->gid = dtx.msg_perm.cgid;
	sysv_link(&sl->conns, sc);
	conn_describe(c);
	broker_add_conn(b, c);
	sysv_arm_tick(sl);
	if (h->has_pid && (pid_t)h->pid != pid)
		log_debug(&b->log, "%s: its HELLO says pid %u (another pid namespace?)", c->desc,
			  h->pid);
	conn_frame(c, body, blen);
out:
	if (h)
		ipcbus__hello__free_unpacked(h, NULL);
}

/* ---- the listener's thread and wake-up ---- */

static void *sysv_receiver(void *arg)
{
	struct sysv_listener *sl = arg;
	size_t cap = SYSV_HELLO_MAX + 1;
	struct sysv_msg *m = malloc(sizeof *m + cap);

	sysv_thread_signals();
	for (;;) {
		pthread_mutex_lock(&sl->mu);
		while (!sl->th_stop && sl->nhellos >= SYSV_HELLO_PENDING)
			pthread_cond_wait(&sl->cv, &sl->mu);
		int stop = sl->th_stop;
		pthread_mutex_unlock(&sl->mu);
		if (stop || !m)
			break;
		/* a message over the limit is taken (cut) and refused, not
		 * left at the head of the queue for ever */
		ssize_t n = msgrcv(sl->qid, m, cap, SYSV_MT_HELLO, MSG_NOERROR);
		if (n < 0 && errno == EINTR)
			continue;
		struct sysv_hello *hm = n >= 0 ? malloc(sizeof *hm + (size_t)n) : NULL;
		pthread_mutex_lock(&sl->mu);
		if (n < 0) {
			sl->th_gone = errno == EIDRM || errno == EINVAL;
			sl->th_err = errno;
		} else if (hm) {
			hm->next = NULL;
			hm->len = (size_t)n;
			memcpy(hm->bytes, m->mtext, (size_t)n);
			*sl->hellos_tail = hm;
			sl->hellos_tail = &hm->next;
			sl->nhellos++;
		}
		pthread_mutex_unlock(&sl->mu);
		pthread_mutex_lock(&sl->rmu);
		int wake = !sl->ready && !sl->hello_ev;
		sl->hello_ev = 1;
		pthread_mutex_unlock(&sl->rmu);
		if (wake)
			loop_async_send(&sl->async);
		if (n < 0)
			break;
	}
	free(m);
	return NULL;
}

static void sysv_async(void *arg)
{
	struct sysv_listener *sl = arg;
	struct broker *b = sl->l.b;

	pthread_mutex_lock(&sl->rmu);
	struct sysv_conn *list = NULL;
	for (struct sysv_conn *sc = sl->ready; sc; sc = sc->ready_next) {
		sc->loop_next = list;
		list = sc;
		sc->ready = 0;
	}
	sl->ready = NULL;
	int hellos = sl->hello_ev;
	sl->hello_ev = 0;
	pthread_mutex_unlock(&sl->rmu);

	for (struct sysv_conn *sc = list; sc; sc = sc->loop_next) {
		pthread_mutex_lock(&sl->rmu);
		int ev = sc->ev;
		sc->ev = 0;
		pthread_mutex_unlock(&sl->rmu);
		if (sc->c)
			conn_ready(sc->c, ev & SYSV_EV_IN, ev & SYSV_EV_OUT);
	}
	if (!hellos)
		return;
	pthread_mutex_lock(&sl->mu);
	struct sysv_hello *hl = sl->hellos;
	sl->hellos = NULL;
	sl->hellos_tail = &sl->hellos;
	sl->nhellos = 0;
	int gone = sl->th_gone, err = sl->th_err, stopping = sl->th_stop;
	sl->th_err = 0;
	pthread_cond_broadcast(&sl->cv);
	pthread_mutex_unlock(&sl->mu);
	while (hl) {
		struct sysv_hello *next = hl->next;
		if (sl->qid >= 0 && !b->stopping)
			sysv_hello(sl, hl->bytes, hl->len);
		free(hl);
		hl = next;
	}
	if (err && !stopping)
		log_error(&b->log, "sysv://%s: %s; no new connections come in here",
			  sl->l.url.keyspec,
			  gone ? "the broker's queue was removed by someone else" : strerror(err));
}

/* ---- the listener ---- */

/* A queue at the key already: the mark of a broker that is gone (its
 * queue is removed: 0), or an error with why. */
static int sysv_reclaim(struct sysv_listener *sl, char *err, size_t errlen)
{
	const char *k = sl->l.url.keyspec;
	int id = msgget((key_t)sl->l.url.key, 0);
	struct msqid_ds ds;
	struct {
		long mtype;
		uint8_t text[64];
	} m;
	pid_t pid;
	unsigned long long start;

	if (id < 0)
		return 0; /* gone meanwhile */
	if (msgctl(id, IPC_STAT, &ds) < 0) {
		snprintf(err, errlen, "sysv://%s: a queue is there (id %d) that we may not look at: %s",
			 k, id, strerror(errno));
		return -EEXIST;
	}
	if (ds.msg_perm.cuid != geteuid()) {
		snprintf(err, errlen,
			 "sysv://%s: a queue is there (id %d) created by uid %u, not by us: choose another key",
			 k, id, (unsigned)ds.msg_perm.cuid);
		return -EEXIST;
	}
	ssize_t n = msgrcv(id, &m, sizeof m.text, SYSV_MT_MARK, IPC_NOWAIT | MSG_NOERROR);
	if (n < 0 || sysv_mark_parse(m.text, (size_t)n, &pid, &start) < 0) {
		if (n >= 0)
			msgsnd(id, &m, (size_t)n, IPC_NOWAIT); /* not ours to take */
		snprintf(err, errlen,
			 "sysv://%s: a queue is there (id %d) that is not a broker's (no mark): remove it "
			 "(ipcrm -q %d) or choose another key",
			 k, id, id);
		return -EEXIST;
	}
	if (sysv_pid_alive(pid, start)) {
		msgsnd(id, &m, (size_t)n, IPC_NOWAIT);
		snprintf(err, errlen, "sysv://%s: in use by ipcbusd pid %d", k, (int)pid);
		return -EADDRINUSE;
	}
	/* a crashed broker's: not trusted (what is in it, its mode), made anew */
	msgctl(id, IPC_RMID, NULL);
	log_warn(&sl->l.b->log,
		 "sysv://%s: removed the queue of a broker that is gone (pid %d, %lu messages left in it)",
		 k, (int)pid, (unsigned long)(ds.msg_qnum ? ds.msg_qnum - 1 : 0));
	return 0;
}

static int sysv_listen(struct broker *b, const struct url *u, struct listener **out, char *err,
		       size_t errlen)
{
	struct sysv_listener *sl = calloc(1, sizeof *sl);
	char mark[64];
	int rc;

	if (!sl)
		return -ENOMEM;
	struct listener *l = &sl->l;
	l->tr = &transport_sysv;
	l->b = b;
	l->url = *u;
	l->fd = -1;
	sl->qid = -1;
	sl->hellos_tail = &sl->hellos;
	pthread_mutex_init(&sl->mu, NULL);
	pthread_mutex_init(&sl->rmu, NULL);
	pthread_cond_init(&sl->cv, NULL);
	sysv_limits_read(&sl->lim);
	sysv_install_signal();
	unsigned mode = u->has_mode ? u->mode : 0600;
	for (int attempt = 0; attempt < 3 && sl->qid < 0; attempt++) {
		sl->qid = msgget((key_t)u->key, IPC_CREAT | IPC_EXCL | (int)mode);
		if (sl->qid >= 0)
			break;
		if (errno == ENOSPC) {
			snprintf(err, errlen,
				 "sysv://%s: no SysV queue id left (kernel.msgmni is %ld)", u->keyspec,
				 sl->lim.msgmni);
			rc = -ENOSPC;
			goto fail;
		}
		if (errno != EEXIST) {
			rc = -errno;
			snprintf(err, errlen, "sysv://%s: msgget: %s", u->keyspec, strerror(errno));
			goto fail;
		}
		if ((rc = sysv_reclaim(sl, err, errlen)) < 0)
			goto fail;
	}
	if (sl->qid < 0) {
		rc = -EEXIST;
		snprintf(err, errlen, "sysv://%s: the key stays taken", u->keyspec);
		goto fail;
	}
	int k = sysv_mark_format(mark, sizeof mark, getpid(), sysv_pid_start(getpid()));
	struct {
		long mtype;
		char text[64];
	} m = {.mtype = SYSV_MT_MARK};
	memcpy(m.text, mark, (size_t)k);
	if (msgsnd(sl->qid, &m, (size_t)k, IPC_NOWAIT) < 0) {
		rc = -errno;
		snprintf(err, errlen, "sysv://%s: cannot mark the queue: %s", u->keyspec,
			 strerror(errno));
		goto fail;
	}
	/* read once by us: msg_lrpid is our pid before any client came */
	m.mtype = SYSV_MT_SELF;
	if (msgsnd(sl->qid, &m, 0, IPC_NOWAIT) == 0)
		msgrcv(sl->qid, &m, sizeof m.text, SYSV_MT_SELF, IPC_NOWAIT);
	if ((rc = loop_async_init(b->loop, &sl->async, sysv_async, sl)) < 0) {
		snprintf(err, errlen, "sysv://%s: eventfd: %s", u->keyspec, strerror(-rc));
		goto fail;
	}
	sl->async_ok = 1;
	if ((rc = sysv_thread_start(&sl->th, sysv_receiver, sl)) < 0) {
		snprintf(err, errlen, "sysv://%s: cannot start its thread: %s", u->keyspec,
			 strerror(-rc));
		goto fail;
	}
	sl->th_started = 1;
	l->fd = sl->async.watch.fd; /* what the broker knows of it: open */
	struct msqid_ds ds;
	if (msgctl(sl->qid, IPC_STAT, &ds) < 0)
		ds.msg_qbytes = 0;
	log_info(&b->log,
		 "sysv://%s: queue %d (mode %04o); msgmax %ld, msgmnb %ld, msgmni %ld; it holds %lu bytes",
		 u->keyspec, sl->qid, mode, sl->lim.msgmax, sl->lim.msgmnb, sl->lim.msgmni,
		 (unsigned long)ds.msg_qbytes);
	if (mode & 0044)
		log_warn(&b->log,
			 "sysv://%s: mode %04o lets others read the broker's queue: they could take "
			 "others' HELLOs (nothing else goes through it); 0620 lets a group write only",
			 u->keyspec, mode);
	*out = l;
	return 0;
fail:
	if (sl->async_ok)
		loop_async_fini(b->loop, &sl->async);
	if (sl->qid >= 0)
		msgctl(sl->qid, IPC_RMID, NULL);
	pthread_cond_destroy(&sl->cv);
	pthread_mutex_destroy(&sl->mu);
	pthread_mutex_destroy(&sl->rmu);
	free(sl);
	return rc;
}

static void sysv_unlisten(struct listener *l)
{
	struct sysv_listener *sl = (struct sysv_listener *)l;

	pthread_mutex_lock(&sl->mu);
	sl->th_stop = 1;
	pthread_cond_broadcast(&sl->cv);
	pthread_mutex_unlock(&sl->mu);
	if (sl->qid >= 0)
		msgctl(sl->qid, IPC_RMID, NULL); /* wakes the receiver, too */
	sl->qid = -1;
	if (sl->th_started)
		sysv_thread_join(sl->th);
	sl->th_started = 0;
	if (sl->refused)
		log_info(&l->b->log, "sysv://%s: %llu HELLOs refused", l->url.keyspec,
			 (unsigned long long)sl->refused);
	/* the wake-up stays: connections still drain through it (fini) */
}

static void sysv_fini(struct listener *l)
{
	struct sysv_listener *sl = (struct sysv_listener *)l;

	/* the broker goes: a client that has its end keeps its queues (it
	 * reads what is left and removes them); the others' queues go */
	while (sl->tails) {
		struct sysv_conn *sc = sl->tails;
		sysv_unlink(&sl->tails, sc);
		sl->ntails--;
		if (!sysv_pid_alive(sc->pid, sc->start))
			sc->dead = 1;
		sysv_conn_free(sc);
	}
	loop_timer_cancel(l->b->loop, &sl->tick);
	if (sl->async_ok)
		loop_async_fini(l->b->loop, &sl->async);
	sl->async_ok = 0;
	while (sl->hellos) {
		struct sysv_hello *h = sl->hellos;
		sl->hellos = h->next;
		free(h);
	}
	pthread_cond_destroy(&sl->cv);
	pthread_mutex_destroy(&sl->mu);
	pthread_mutex_destroy(&sl->rmu);
}

const struct transport transport_sysv = {
	.scheme = "sysv",
	.network = 0,
	.datagram = 0,
	.listen = sysv_listen,
	.unlisten = sysv_unlisten,
	.fini = sysv_fini,
};
