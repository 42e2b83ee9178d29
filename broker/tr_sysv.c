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
 *     queue; it holds at most 4 messages (SYSV_IN_MIN at least) for the loop and waits for
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
 *
 * The transport is three files: this one (the connections' conn_ops, the
 * tick, the listener), sysv_hello.c (a HELLO checked and its connection
 * set up) and sysv_thread.c (the threads and their hand-off to the loop);
 * tr_sysv.h is what they share.
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
#include "tr_sysv.h"
#include "transport.h"

/* ---- a connection's queues ---- */

/* Remove queue id if it is still the client's.  (An id names one queue
 * until it is removed; the same id comes back only after its slot was
 * used some 65536 times, so a queue of the same user at the same id is
 * not looked for; msg_ctime would not tell either: IPC_SET changes it.) */
static void sysv_rmid(int id, uid_t cuid)
{
	struct msqid_ds ds;
	if (id >= 0 && msgctl(id, IPC_STAT, &ds) == 0 && ds.msg_perm.cuid == cuid)
		msgctl(id, IPC_RMID, NULL);
}

void sysv_conn_free(struct sysv_conn *sc)
{
	struct sysv_listener *sl = sc->sl;

	sysv_thread_stop(sc, 1, 1);
	sysv_thread_unready(sc);
	if (sc->dead || sc->gone || !sc->eof_sent || sc->wq) {
		/* nobody to read them, or the end not told: the queues go */
		sysv_rmid(sc->tx, sc->uid);
		sysv_rmid(sc->rx, sc->uid);
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

void sysv_link(struct sysv_conn **head, struct sysv_conn *sc)
{
	sc->prev = NULL;
	sc->next = *head;
	if (*head)
		(*head)->prev = sc;
	*head = sc;
}

void sysv_unlink(struct sysv_conn **head, struct sysv_conn *sc)
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

void sysv_arm_tick(struct sysv_listener *sl)
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
	pthread_mutex_unlock(&sc->mu);
	if (n) {
		/* the room first, without the lock (it may flush others) */
		int rc = conn_in_reserve(c, n);
		if (rc < 0) {
			if (rc != -ENOBUFS) /* -ENOBUFS: paused until memory frees */
				conn_close(c, "out of memory for input");
			return;
		}
		/* the reader may have added some meanwhile: they stay */
		pthread_mutex_lock(&sc->mu);
		memcpy(buf_wptr(&c->in), sc->in, n);
		memmove(sc->in, sc->in + n, sc->in_len - n);
		sc->in_len -= n;
		if (sc->rd_waiting)
			pthread_cond_broadcast(&sc->cv);
		pthread_mutex_unlock(&sc->mu);
		buf_commit(&c->in, n);
	}
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
		int rc = sysv_thread_hand(sc, SYSV_MT_DATA, sc->obuf->mtext, n);
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
	if ((busy || errno == EAGAIN) && sysv_thread_hand(sc, SYSV_MT_EOF, NULL, 0) == 0)
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
		sysv_thread_notify(sc, SYSV_EV_IN);
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
	sysv_thread_stop(sc, 1, 0); /* the reader is not needed any more */
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

const struct conn_ops sysv_conn_ops = {
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
			if (msgctl(sc->tx, IPC_STAT, &ds) == 0 && ds.msg_perm.cuid == sc->uid)
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
	struct sysv_hello_msg *hl = sl->hellos;
	sl->hellos = NULL;
	sl->hellos_tail = &sl->hellos;
	sl->nhellos = 0;
	int gone = sl->th_gone, err = sl->th_err, stopping = sl->th_stop;
	sl->th_err = 0;
	pthread_cond_broadcast(&sl->cv);
	pthread_mutex_unlock(&sl->mu);
	while (hl) {
		struct sysv_hello_msg *next = hl->next;
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

/* What a client's queues are raised to: ?qbytes= (SYSV_QBYTES_WANT by
 * default; 0 leaves them at msgmnb).  Above msgmnb that takes
 * CAP_SYS_RESOURCE, which containers often drop: the broker's own queue
 * (HELLOs only) is raised first to find out, so a refusal costs one
 * syscall at start, not two at every HELLO.  what says the choice for the
 * log. */
static void sysv_qbytes_choose(struct sysv_listener *sl, char *what, size_t n)
{
	const struct url *u = &sl->l.url;
	unsigned long want = u->has_qbytes ? u->qbytes : SYSV_QBYTES_WANT, got = 0;
	int refused = 0;

	sl->qbytes = 0;
	if (want == 0) {
		snprintf(what, n, "left at msgmnb (%ld bytes: qbytes=0)", sl->lim.msgmnb);
		return;
	}
	if (want <= (unsigned long)sl->lim.msgmnb) {
		snprintf(what, n, "hold msgmnb (%ld bytes; qbytes=%lu is not more)", sl->lim.msgmnb,
			 want);
		return;
	}
	int rc = sysv_raise_qbytes(sl->qid, want, sl->lim.msgmnb, &got, &refused);
	if (rc == 0 && !refused) {
		sl->qbytes = want;
		snprintf(what, n, "raised to %lu bytes", want);
	} else if (refused) {
		snprintf(what, n,
			 "hold msgmnb (%ld bytes): raising them to %lu takes CAP_SYS_RESOURCE, which "
			 "this broker lacks",
			 sl->lim.msgmnb, want);
	} else {
		snprintf(what, n, "hold msgmnb (%ld bytes): msg_qbytes: %s", sl->lim.msgmnb,
			 strerror(-rc));
	}
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
	sysv_thread_install();
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
	if ((rc = sysv_thread_start(&sl->th, sysv_thread_receiver, sl)) < 0) {
		snprintf(err, errlen, "sysv://%s: cannot start its thread: %s", u->keyspec,
			 strerror(-rc));
		goto fail;
	}
	sl->th_started = 1;
	l->fd = sl->async.watch.fd; /* what the broker knows of it: open */
	char chose[160];
	sysv_qbytes_choose(sl, chose, sizeof chose);
	log_info(&b->log,
		 "sysv://%s: queue %d (mode %04o); msgmax %ld, msgmnb %ld, msgmni %ld; clients' queues %s",
		 u->keyspec, sl->qid, mode, sl->lim.msgmax, sl->lim.msgmnb, sl->lim.msgmni, chose);
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
		struct sysv_hello_msg *h = sl->hellos;
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
