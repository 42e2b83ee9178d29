/*
 * tr_sysv.c: sysv://KEY, the protocol over SysV message queues
 * (docs/protocol.md, SysV; docs/design.md, SysV queues).
 *
 * connect() finds the broker's queue at KEY and creates this connection's
 * two queues (IPC_PRIVATE, mode 0600: nobody else may read or write them;
 * handed to the broker's uid when the broker runs as another user who is not
 * root): the send queue, which the broker reads, and the reply queue, which
 * we read.  It puts the proof, an empty message of a random type, in the
 * send queue; hello() names the queues and the proof in HELLO, and the
 * first write() sends that HELLO to the broker's queue.  Everything after
 * goes to the send queue as a byte stream of varint-delimited frames in
 * messages of at most msgmax bytes (several frames in one, or a frame in
 * several), and comes back the same way in the reply queue.
 *
 * Nothing of a queue can be polled, so the connection has one helper
 * thread, with every signal blocked (the program's signal handling is not
 * touched).  It waits in msgrcv on the reply queue and keeps what came in a
 * bounded buffer (TR_SYSV_IN bytes; past that it waits, the queue fills and
 * the broker holds our messages, as a socket's buffer would), and wakes the
 * program's descriptor through an eventfd (t->fd).  A write that finds the
 * send queue full hands that one message to the thread, which waits in
 * msgsnd until the broker made room (woken from its msgrcv by an empty
 * SYSV_MT_WAKE message of our own) and then signals the eventfd: write()
 * says -EAGAIN meanwhile, want_write being readability of the eventfd.
 *
 * The broker ends the reply stream with SYSV_MT_EOF (read() returns 0); if
 * it dies instead, tick() finds its pid gone (the reader of our send
 * queue, msg_lrpid) and the connection is dropped.  close() removes both
 * queues (which also wakes the thread), so nothing is left behind; a
 * program that exits without ipcbus_close() leaves them to the broker,
 * which removes a dead client's queues.  A child of the process (fork) that
 * closes its copy of the connection leaves the parent's queues alone.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "sysv.h"
#include "tr.h"

/* What the helper thread holds of the reply stream. */
#define TR_SYSV_IN (256 << 10)
/* What our queues are raised to where that is permitted, unless the URL's
 * ?qbytes= says otherwise (0: as they are made, msgmnb). */
#define TR_SYSV_QBYTES (256 << 10)
#define TR_SYSV_STACK (128 << 10)
#define TR_SYSV_TICK_MS 1000

struct tr_sysv {
	const struct url *u;
	pid_t owner;              /* the process that connected */
	int shq, rx, tx;          /* the broker's queue, ours */
	size_t msgmax, chunk;     /* a message's most; what we send in one */
	Ipcbus__Sysv hello;       /* what HELLO carries */
	int hello_sent;
	pid_t broker;             /* who reads our send queue (msg_lrpid), 0 */
	unsigned long long broker_start;
	struct sysv_msg *obuf;    /* a message being sent (the program's thread) */
	char errtext[512];

	pthread_t th;
	int th_started;
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	uint8_t *in;              /* the reply stream read, not taken yet */
	size_t in_off, in_len;
	int eof, err;             /* the stream ended (SYSV_MT_EOF, queue removed); failed */
	int waiting;              /* the thread waits for room or work */
	int stop;
	int signalled;            /* efd holds a count */
	struct sysv_msg *send;    /* one message for the thread to send */
	size_t send_len;
	int send_q, send_busy, send_err, send_shared;
};

/* With mu held: wake the program's descriptor (once until it is reset). */
static void tr_sysv_signal(struct tr_sysv *s)
{
	uint64_t one = 1;
	if (!s->signalled && write(s->efd, &one, sizeof one) == (ssize_t)sizeof one)
		s->signalled = 1;
}

/* With mu held: the program has seen what the descriptor said. */
static void tr_sysv_reset(struct tr_sysv *s)
{
	uint64_t v;
	if (s->signalled && read(s->efd, &v, sizeof v) >= 0)
		s->signalled = 0;
}

/* The helper thread's send: to our send queue, waiting for room (the queue
 * removed at close ends the wait); to the broker's queue (a HELLO when it
 * is full of others'), retried every few ms, for the broker's queue is not
 * ours to remove.  0 or errno. */
static int tr_sysv_do_send(struct tr_sysv *s, int q, size_t len, int shared)
{
	int delay_ms = 1;

	for (;;) {
		if (msgsnd(q, s->send, len, shared ? IPC_NOWAIT : 0) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (!shared || errno != EAGAIN)
			return errno;
		pthread_mutex_lock(&s->mu);
		int stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			return ECANCELED;
		struct timespec ts = {0, delay_ms * 1000000L};
		nanosleep(&ts, NULL);
		if (delay_ms < 64)
			delay_ms *= 2;
	}
}

static void *tr_sysv_thread(void *arg)
{
	struct tr_sysv *s = arg;
	struct sysv_msg *m = malloc(sizeof *m + s->msgmax);

	pthread_mutex_lock(&s->mu);
	if (!m) {
		s->err = ENOMEM;
		tr_sysv_signal(s);
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	for (;;) {
		while (!s->stop && !s->send_busy && s->in_len + s->msgmax > TR_SYSV_IN) {
			s->waiting = 1;
			pthread_cond_wait(&s->cv, &s->mu);
		}
		s->waiting = 0;
		if (s->stop)
			break;
		if (s->send_busy) {
			int q = s->send_q, shared = s->send_shared;
			size_t len = s->send_len;
			pthread_mutex_unlock(&s->mu);
			int err = tr_sysv_do_send(s, q, len, shared);
			pthread_mutex_lock(&s->mu);
			s->send_busy = 0;
			s->send_err = err;
			tr_sysv_signal(s);
			continue;
		}
		pthread_mutex_unlock(&s->mu);
		ssize_t n = msgrcv(s->rx, m, s->msgmax, 0, 0);
		int err = n < 0 ? errno : 0;
		pthread_mutex_lock(&s->mu);
		if (err == EINTR)
			continue;
		if (err) {
			/* removed: by us at close, or by the broker, which
			 * took us for dead; either way the end */
			if (err == EIDRM || err == EINVAL)
				s->eof = 1;
			else
				s->err = err;
			tr_sysv_signal(s);
			break;
		}
		if (m->mtype == SYSV_MT_WAKE)
			continue; /* our own: look for a send */
		if (m->mtype == SYSV_MT_EOF) {
			s->eof = 1;
			tr_sysv_signal(s);
			break;
		}
		if (m->mtype != SYSV_MT_DATA) {
			s->err = EPROTO;
			tr_sysv_signal(s);
			break;
		}
		if (s->in_off + s->in_len + (size_t)n > TR_SYSV_IN) {
			memmove(s->in, s->in + s->in_off, s->in_len);
			s->in_off = 0;
		}
		memcpy(s->in + s->in_off + s->in_len, m->mtext, (size_t)n);
		s->in_len += (size_t)n;
		tr_sysv_signal(s);
	}
	/* a send asked for after the end is answered too */
	while (!s->stop) {
		if (s->send_busy) {
			s->send_busy = 0;
			s->send_err = EPIPE;
			tr_sysv_signal(s);
		}
		s->waiting = 1;
		pthread_cond_wait(&s->cv, &s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	free(m);
	return NULL;
}

/* The memory of s, and t's pointers to it. */
static void tr_sysv_release(struct tr *t, struct tr_sysv *s)
{
	if (s->efd >= 0)
		close(s->efd);
	free(s->in);
	free(s->send);
	free(s->obuf);
	free(s);
	t->priv = NULL;
	t->fd = -1;
}

static void tr_sysv_free(struct tr *t)
{
	struct tr_sysv *s = t->priv;

	if (!s)
		return;
	if (getpid() != s->owner) {
		/* a child of the process that connected (fork): the thread
		 * and the queues are the parent's; only our copies go */
		tr_sysv_release(t, s);
		return;
	}
	if (s->th_started) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	/* our queues go; that also ends the thread's msgrcv or msgsnd */
	if (s->rx >= 0)
		msgctl(s->rx, IPC_RMID, NULL);
	if (s->tx >= 0)
		msgctl(s->tx, IPC_RMID, NULL);
	if (s->th_started) {
		pthread_join(s->th, NULL);
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
	}
	tr_sysv_release(t, s);
}

/* A new queue of ours: owner-only, raised where permitted, given to the
 * broker's uid when that is another user but root.  The id, or -errno. */
static int tr_sysv_queue(uid_t broker_uid, unsigned long qbytes)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	struct msqid_ds ds;

	if (id < 0)
		return -errno;
	if (msgctl(id, IPC_STAT, &ds) == 0) {
		struct msqid_ds want = ds;
		if (ds.msg_qbytes < qbytes) {
			want.msg_qbytes = qbytes;
			if (msgctl(id, IPC_SET, &want) < 0)
				want.msg_qbytes = ds.msg_qbytes; /* no CAP_SYS_RESOURCE: as it is */
		}
		if (broker_uid != geteuid() && broker_uid != 0) {
			want.msg_perm.uid = broker_uid;
			if (msgctl(id, IPC_SET, &want) < 0) {
				int e = errno;
				msgctl(id, IPC_RMID, NULL);
				return -e;
			}
		}
	}
	return id;
}

static int tr_sysv_connect(struct tr *t, const struct url *u, char *err, size_t errlen)
{
	struct tr_sysv *s;
	struct sysv_limits lim;
	struct msqid_ds ds;
	uid_t owner;
	int rc;

	tr_sysv_free(t); /* nothing is left from the last connection */
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->u = u;
	s->owner = getpid();
	s->rx = s->tx = s->efd = -1;
	t->priv = s;
	sysv_limits_read(&lim);
	s->msgmax = (size_t)lim.msgmax;
	s->shq = msgget((key_t)u->key, 0);
	if (s->shq < 0) {
		rc = errno == ENOENT ? -ECONNREFUSED : -errno;
		snprintf(err, errlen, "sysv://%s: %s", u->keyspec,
			 errno == ENOENT ? "no broker's queue there"
					 : strerror(errno));
		goto fail;
	}
	/* the broker's uid and pid; we may write to its queue and not read it */
	struct sysv_msq pq = {.uid = geteuid()};
	if (msgctl(s->shq, IPC_STAT, &ds) == 0) {
		pq.uid = ds.msg_perm.uid;
		pq.lrpid = ds.msg_lrpid;
	} else {
		sysv_proc_msq(s->shq, &pq);
	}
	owner = pq.uid;
	if (pq.lrpid > 0) {
		/* only the broker reads its queue (the first time at once) */
		s->broker = pq.lrpid;
		s->broker_start = sysv_pid_start(s->broker);
		if (!sysv_pid_alive(s->broker, 0)) {
			rc = -ECONNREFUSED;
			snprintf(err, errlen,
				 "sysv://%s: the queue there is left from a broker that is gone (pid %d)",
				 u->keyspec, (int)s->broker);
			goto fail;
		}
	}
	unsigned long qbytes = u->has_qbytes ? u->qbytes : TR_SYSV_QBYTES;
	rc = tr_sysv_queue(owner, qbytes);
	if (rc >= 0) {
		s->rx = rc;
		rc = tr_sysv_queue(owner, qbytes);
		if (rc >= 0)
			s->tx = rc;
	}
	if (rc < 0) {
		if (rc == -ENOSPC)
			snprintf(err, errlen,
				 "sysv://%s: no SysV message queue id left for this connection's queues "
				 "(kernel.msgmni is %ld)",
				 u->keyspec, lim.msgmni);
		else
			snprintf(err, errlen, "sysv://%s: cannot create this connection's queues: %s",
				 u->keyspec, strerror(-rc));
		goto fail;
	}
	s->chunk = s->msgmax;
	if (msgctl(s->tx, IPC_STAT, &ds) == 0 && ds.msg_qbytes && ds.msg_qbytes < s->chunk)
		s->chunk = ds.msg_qbytes;
	uint64_t proof = 0;
	while (proof == 0) {
		if (getrandom(&proof, sizeof proof, 0) != (ssize_t)sizeof proof)
			proof = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20) ^ (uint64_t)s->tx;
		proof &= (uint64_t)LONG_MAX;
	}
	struct sysv_msg pm = {.mtype = (long)proof};
	if (msgsnd(s->tx, &pm, 0, IPC_NOWAIT) < 0) {
		rc = -errno;
		snprintf(err, errlen, "sysv://%s: cannot write to our own queue: %s", u->keyspec,
			 strerror(errno));
		goto fail;
	}
	Ipcbus__Sysv init = IPCBUS__SYSV__INIT;
	s->hello = init;
	s->hello.reply_queue = s->rx;
	s->hello.send_queue = s->tx;
	s->hello.proof = proof;

	s->in = malloc(TR_SYSV_IN);
	s->send = malloc(sizeof *s->send + s->msgmax);
	s->obuf = malloc(sizeof *s->obuf + s->msgmax);
	if (!s->in || !s->send || !s->obuf) {
		rc = -ENOMEM;
		goto fail;
	}
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->efd < 0) {
		rc = -errno;
		goto fail;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	/* the thread is born with every signal blocked, and keeps them so */
	sigset_t all, old;
	pthread_attr_t a;
	sigfillset(&all);
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, TR_SYSV_STACK);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&s->th, &a, tr_sysv_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (rc < 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		snprintf(err, errlen, "sysv://%s: cannot start the connection's thread: %s",
			 u->keyspec, strerror(-rc));
		goto fail;
	}
	s->th_started = 1;
	t->fd = s->efd;
	t->want_read = EPOLLIN;
	t->want_write = EPOLLIN;
	return 0;
fail:
	tr_sysv_free(t);
	return rc;
}

static int tr_sysv_connected(struct tr *t, char *err, size_t errlen)
{
	return 0;
}

static void tr_sysv_hello(struct tr *t, Ipcbus__Hello *h)
{
	struct tr_sysv *s = t->priv;
	if (s)
		h->sysv = &s->hello;
}

static ssize_t tr_sysv_read(struct tr *t, void *p, size_t n)
{
	struct tr_sysv *s = t->priv;
	ssize_t rc;

	pthread_mutex_lock(&s->mu);
	if (s->in_len) {
		size_t k = s->in_len < n ? s->in_len : n;
		memcpy(p, s->in + s->in_off, k);
		s->in_off += k;
		s->in_len -= k;
		if (!s->in_len)
			s->in_off = 0;
		if (s->waiting)
			pthread_cond_broadcast(&s->cv);
		rc = (ssize_t)k;
	} else if (s->err) {
		snprintf(s->errtext, sizeof s->errtext, "sysv://%s: reading the reply queue: %s",
			 s->u->keyspec,
			 s->err == EPROTO ? "a message of a type the broker does not send"
					  : strerror(s->err));
		rc = -s->err;
	} else if (s->eof) {
		rc = 0;
	} else {
		tr_sysv_reset(s);
		rc = -EAGAIN;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static size_t tr_sysv_pending(const struct tr *t)
{
	struct tr_sysv *s = t->priv;
	size_t n;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	n = s->in_len ? s->in_len : (s->eof || s->err) ? 1 : 0;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* Hand a message to the thread, woken from its msgrcv.  -EAGAIN. */
static int tr_sysv_hand(struct tr_sysv *s, int q, const uint8_t *p, size_t n, long mtype,
			int shared)
{
	struct sysv_msg wake = {.mtype = SYSV_MT_WAKE};

	pthread_mutex_lock(&s->mu);
	s->send->mtype = mtype;
	memcpy(s->send->mtext, p, n);
	s->send_len = n;
	s->send_q = q;
	s->send_shared = shared;
	s->send_busy = 1;
	tr_sysv_reset(s); /* what it signals next: the send done (or input) */
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* a full reply queue needs no wake-up: its msgrcv does not wait */
	msgsnd(s->rx, &wake, 0, IPC_NOWAIT);
	return -EAGAIN;
}

static int tr_sysv_errno(struct tr_sysv *s, int err)
{
	/* a queue removed: the broker's end of the connection */
	return err == EIDRM || err == EINVAL ? -EPIPE : -err;
}

static int tr_sysv_write(struct tr *t, struct buf *out)
{
	struct tr_sysv *s = t->priv;

	pthread_mutex_lock(&s->mu);
	int busy = s->send_busy, err = s->send_err;
	s->send_err = 0;
	if (busy)
		tr_sysv_reset(s); /* poll waits for the thread's signal, not spins */
	pthread_mutex_unlock(&s->mu);
	if (err) {
		snprintf(s->errtext, sizeof s->errtext, "sysv://%s: %s", s->u->keyspec,
			 strerror(err));
		return tr_sysv_errno(s, err);
	}
	if (busy)
		return -EAGAIN;
	if (!s->hello_sent) {
		/* the HELLO, alone in out, to the broker's queue */
		size_t n = buf_len(out);
		if (n > SYSV_HELLO_MAX || n > s->msgmax)
			return -EMSGSIZE;
		s->hello_sent = 1;
		s->obuf->mtype = SYSV_MT_HELLO;
		memcpy(s->obuf->mtext, buf_rptr(out), n);
		buf_consume(out, n);
		if (msgsnd(s->shq, s->obuf, n, IPC_NOWAIT) == 0)
			return 0;
		if (errno == EAGAIN)
			return tr_sysv_hand(s, s->shq, s->obuf->mtext, n, SYSV_MT_HELLO, 1);
		err = errno;
		snprintf(s->errtext, sizeof s->errtext, "sysv://%s: the broker's queue: %s",
			 s->u->keyspec,
			 err == EACCES ? "permission denied (its mode does not let us write)"
				       : strerror(err));
		return err == EIDRM || err == EINVAL ? -ECONNREFUSED : -err;
	}
	while (buf_len(out)) {
		size_t n = buf_len(out) < s->chunk ? buf_len(out) : s->chunk;
		s->obuf->mtype = SYSV_MT_DATA;
		memcpy(s->obuf->mtext, buf_rptr(out), n);
		if (msgsnd(s->tx, s->obuf, n, IPC_NOWAIT) == 0) {
			buf_consume(out, n);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			buf_consume(out, n);
			return tr_sysv_hand(s, s->tx, s->obuf->mtext, n, SYSV_MT_DATA, 0);
		}
		return tr_sysv_errno(s, errno);
	}
	return 0;
}

static const char *tr_sysv_errtext(const struct tr *t)
{
	const struct tr_sysv *s = t->priv;
	return s && s->errtext[0] ? s->errtext : NULL;
}

/* The broker is alive: who reads its queue (msg_lrpid, at connect) or our
 * send queue (once it took the proof) still runs, and its queue is still
 * there (a broker that comes back makes a new one). */
static int tr_sysv_tick(struct tr *t, char *err, size_t errlen)
{
	struct tr_sysv *s = t->priv;
	struct msqid_ds ds;

	if (!s)
		return 0;
	if (!s->broker && msgctl(s->tx, IPC_STAT, &ds) == 0 && ds.msg_lrpid > 0) {
		s->broker = ds.msg_lrpid;
		s->broker_start = sysv_pid_start(s->broker);
	}
	if (s->broker && !sysv_pid_alive(s->broker, s->broker_start)) {
		snprintf(err, errlen, "sysv://%s: the broker (pid %d) is gone", s->u->keyspec,
			 (int)s->broker);
		return -ECONNRESET;
	}
	if (msgctl(s->shq, IPC_STAT, &ds) < 0 && (errno == EIDRM || errno == EINVAL)) {
		snprintf(err, errlen, "sysv://%s: the broker's queue is gone", s->u->keyspec);
		return -ECONNRESET;
	}
	return 0;
}

static void tr_sysv_close(struct tr *t)
{
	tr_sysv_free(t);
}

const struct tr_ops tr_sysv_ops = {
	.kind = URL_SYSV,
	.flags = 0,
	.connect = tr_sysv_connect,
	.connected = tr_sysv_connected,
	.read = tr_sysv_read,
	.write = tr_sysv_write,
	.pending = tr_sysv_pending,
	.errtext = tr_sysv_errtext,
	.close = tr_sysv_close,
	.fini = tr_sysv_free,
	.hello = tr_sysv_hello,
	.tick = tr_sysv_tick,
	.tick_ms = TR_SYSV_TICK_MS,
};
