/*
 * rawq_in.c: sysv-in, a raw bridge from a SysV message queue to a channel
 * (see rawq.h, rawq_int.h, docs/design.md "Raw bridges").
 *
 * A queue cannot be polled, so each sysv-in line has a thread,
 * every signal blocked, that blocks in msgrcv() with a buffer of msgmax
 * (never MSG_NOERROR: a message is received whole or not at all) and
 * appends what it takes to a batch under a mutex.  The batch is bounded in
 * bytes (RAWQ_HOLD, or one largest message): when it is full the thread
 * waits for the loop, and what a flood sends meanwhile stays in the
 * kernel's queue, whose own bound (msg_qbytes) then stops the sender.  The
 * loop swaps the batch for an empty one when the thread wakes it (a
 * struct loop_async) and publishes each message.  The thread never logs:
 * it leaves what happened (the queue vanished and was made again, an
 * error) in the shared state, and the loop logs it.  Stopping: the flag is
 * set, then the thread is sent RAWQ_WAKE, the one signal it does not block
 * (its handler does nothing; msgrcv is never restarted after a handler, so
 * it returns EINTR), again every few milliseconds until the thread has
 * ended, since one sent just before the thread enters msgrcv is lost.  A
 * message taken as the stop came is put back in the queue.  (Not
 * pthread_cancel: a forced unwind leaves AddressSanitizer's stack poisoning
 * behind, and the thread's own stack is no place for surprises.)
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <time.h>

#include "broker.h"
#include "frame.h"
#include "rawq_int.h"
#include "route.h"

/* ---- sysv-in: the receiver thread ---- */

/* Wait on cv for at most ms, or until stop (mu held). */
static void rawq_nap(struct rawq *r, unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!r->stop)
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
			break;
}

/* A message taken just as the broker stops goes back to the queue. */
static void rawq_put_back(struct rawq *r, int qid, size_t n)
{
	if (msgsnd(qid, r->rx, n, IPC_NOWAIT) < 0)
		r->t_lost++;
}

/* The received message (n bytes at r->rx + 1) into the batch (mu held):
 * waits while the batch is full. */
static void rawq_hand(struct rawq *r, int qid, size_t n)
{
	struct broker *b = r->b;
	if (n > b->cfg.max_payload) {
		r->t_oversize++;
		loop_async_send(&r->async);
		return;
	}
	size_t need = rawq_rec_size(n);
	for (;;) {
		if (r->stop) {
			rawq_put_back(r, qid, n);
			return;
		}
		int rc = buf_reserve(&r->fill, need);
		if (rc == 0)
			break;
		if (rc == -ENOMEM) {
			r->t_nomem++; /* taken and lost: a drop */
			loop_async_send(&r->async);
			return;
		}
		/* the loop has not taken the batch yet: it will wake us */
		pthread_cond_wait(&r->cv, &r->mu);
	}
	int was_empty = buf_len(&r->fill) == 0;
	uint8_t *p = buf_wptr(&r->fill);
	struct rawq_rec rec = {0, n};
	memcpy(p, &rec, sizeof rec);
	memcpy(p + sizeof rec, r->rx + 1, n);
	buf_commit(&r->fill, need);
	if (was_empty)
		loop_async_send(&r->async);
}

/* E2BIG: msgmax was raised while the broker runs.  Grow the buffer
 * (doubling, up to RAWQ_RX_MAX) so the message is received whole: 0,
 * -E2BIG when it is at RAWQ_RX_MAX already, -ENOMEM (mu held). */
static int rawq_grow(struct rawq *r)
{
	if (r->rxcap >= RAWQ_RX_MAX)
		return -E2BIG;
	size_t cap = r->rxcap * 2 > RAWQ_RX_MAX ? RAWQ_RX_MAX : r->rxcap * 2;
	long *rx = malloc(sizeof(long) + cap);
	if (!rx)
		return -ENOMEM;
	free(r->rx);
	r->rx = rx;
	r->rxcap = cap;
	/* the batch holds at least one such message */
	if (r->fill.max < rawq_rec_size(cap))
		r->fill.max = rawq_rec_size(cap);
	return 0;
}

static void *rawq_thread(void *arg)
{
	struct rawq *r = arg;

	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		int qid = r->t_msqid;
		pthread_mutex_unlock(&r->mu);
		/* RAWQ_WAKE ends the wait with EINTR */
		ssize_t n = msgrcv(qid, r->rx, r->rxcap, r->cfg->mtype, 0);
		int e = errno;
		pthread_mutex_lock(&r->mu);
		if (n >= 0) {
			rawq_hand(r, qid, (size_t)n);
			continue;
		}
		switch (e) {
		case EINTR:
			continue;
		case E2BIG: {
			int rc = rawq_grow(r);
			if (rc == 0)
				continue;
			if (rc == -ENOMEM) {
				e = ENOMEM;
				break; /* try again later */
			}
			r->t_err = E2BIG;
			r->t_dead = 1;
			loop_async_send(&r->async);
			goto out;
		}
		case EIDRM:
		case EINVAL: {
			/* the queue was removed: make it again */
			int created, id = rawq_open(r->cfg->key, r->cfg->mode, 0400, &created);
			if (id == qid) {
				e = EINVAL; /* it is there: another cause, wait */
				break;
			}
			if (id >= 0) {
				r->t_msqid = id;
				r->t_created |= created;
				r->t_remade++;
				loop_async_send(&r->async);
				continue;
			}
			e = -id;
			break;
		}
		default:
			break;
		}
		/* EACCES (its mode was changed), ENOMEM, no queue ids left: try
		 * again in a while, never in a busy loop */
		r->t_errors++;
		r->t_err = e;
		loop_async_send(&r->async);
		rawq_nap(r, RAWQ_BACKOFF_MS);
	}
out:
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* ---- sysv-in: the loop's side ---- */

static void rawq_publish(struct rawq *r, const uint8_t *p, size_t n)
{
	struct broker *b = r->b;
	const char *ch = r->cfg->channel;
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB,
			  .channel = {(const uint8_t *)ch, strlen(ch), 1},
			  .payload = {p, n, 1}};
	struct message m = {.f = &f, .from = r};

	r->msgs++;
	r->bytes += n;
	b->stats.msgs_in++;
	if (route_publish(b, &m) < 0)
		rawq_drop(r, RAWQ_ERROR, 1);
}

/* The thread woke the loop: take its batch, log what it left, publish. */
static void rawq_in_ready(void *arg)
{
	struct rawq *r = arg;
	struct broker *b = r->b;
	uint64_t oversize, errors, remade, nomem;
	int err, dead, msqid;

	pthread_mutex_lock(&r->mu);
	struct buf t = r->fill;
	r->fill = r->take;
	r->fill.max = t.max;
	r->take = t;
	oversize = r->t_oversize;
	errors = r->t_errors;
	remade = r->t_remade;
	nomem = r->t_nomem;
	r->t_oversize = r->t_errors = r->t_remade = r->t_nomem = 0;
	err = r->t_err;
	r->t_err = 0;
	dead = r->t_dead;
	msqid = r->t_msqid;
	r->created |= r->t_created;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);

	if (remade) {
		r->remade += remade;
		log_warn(&b->log, "%s: the queue vanished (msqid %d); made again as msqid %d",
			 r->name, r->msqid, msqid);
	}
	r->msqid = msqid;
	r->errors += errors;
	uint64_t now = loop_now(b->loop);
	if (dead && err) {
		log_error(&b->log, "%s: a message larger than %u bytes is at the head of the queue: it cannot be received whole; this bridge stopped",
			  r->name, RAWQ_RX_MAX);
	} else if (err && (!r->err_logged || now - r->err_logged >= RAWQ_LOG_MS)) {
		/* the thread retries every RAWQ_BACKOFF_MS: one line in ten */
		r->err_logged = now;
		log_warn(&b->log, "%s: msgrcv: %s (%llu error(s) so far; retrying every %d ms)",
			 r->name,
			 err == ENOSPC ? "the queue vanished and no queue ids are left to make it again"
				       : strerror(err),
			 (unsigned long long)r->errors, RAWQ_BACKOFF_MS);
	}
	rawq_drop(r, RAWQ_OVERSIZE, oversize);
	rawq_drop(r, RAWQ_ERROR, nomem);

	size_t left = buf_len(&r->take);
	if (!left)
		return;
	uint8_t *p = buf_rptr(&r->take);
	while (left >= sizeof(struct rawq_rec)) {
		struct rawq_rec rec;
		memcpy(&rec, p, sizeof rec);
		rawq_publish(r, p + sizeof rec, (size_t)rec.len);
		size_t k = rawq_rec_size((size_t)rec.len);
		p += k;
		left -= k;
	}
	buf_consume(&r->take, buf_len(&r->take));
	buf_shrink(&r->take, 64 << 10);
}

int rawq_in_start(struct rawq *r)
{
	struct broker *b = r->b;
	const struct rawq_set *set = b->rawq;
	sigset_t all, old;
	pthread_attr_t attr;
	int rc;

	r->rxcap = (size_t)set->lim.msgmax;
	r->rx = malloc(sizeof(long) + r->rxcap);
	if (!r->rx)
		return -ENOMEM;
	size_t hold = rawq_rec_size(r->rxcap);
	if (hold < RAWQ_HOLD)
		hold = RAWQ_HOLD;
	buf_init(&r->fill, hold);
	buf_init(&r->take, hold);
	r->t_msqid = r->msqid;
	if ((rc = pthread_mutex_init(&r->mu, NULL)) != 0)
		return -rc;
	if ((rc = pthread_cond_init(&r->cv, NULL)) != 0) {
		pthread_mutex_destroy(&r->mu);
		return -rc;
	}
	r->started = -1; /* mu and cv exist */
	if ((rc = loop_async_init(b->loop, &r->async, rawq_in_ready, r)) < 0)
		return rc;
	r->async_on = 1;
	/* the thread takes no signal (they go to the loop's signalfd) but
	 * RAWQ_WAKE, which only rawq_in_stop sends it */
	sigfillset(&all);
	sigdelset(&all, RAWQ_WAKE);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	rc = pthread_create(&r->thread, &attr, rawq_thread, r);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	r->started = 1;
	return 0;
}

void rawq_in_stop(struct rawq *r)
{
	if (r->started != 1)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (;;) {
		struct timespec ts;
		pthread_kill(r->thread, RAWQ_WAKE);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 2000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(r->thread, NULL, &ts) == 0)
			break;
	}
	r->started = -1;
	rawq_in_ready(r);
	if (r->t_lost)
		log_warn(&r->b->log, "%s: %llu message(s) taken as the broker stopped could not be put back",
			 r->name, (unsigned long long)r->t_lost);
}
