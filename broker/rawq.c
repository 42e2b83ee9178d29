/*
 * rawq.c: raw bridges to SysV message queues (see rawq.h, docs/design.md
 * "Raw bridges").
 *
 * sysv-in.  A queue cannot be polled, so each sysv-in line has a thread,
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
 *
 * sysv-out.  A subscription whose deliver op msgsnd()s with IPC_NOWAIT.
 * When the queue is full the message waits in a backlog (bounded in
 * bytes); a full queue has nothing to poll, so a timer retries, from
 * RAWQ_RETRY_MIN_MS doubling to RAWQ_RETRY_MAX_MS while nothing goes, and
 * a message that waited longer than the line's wait is dropped.  While the
 * backlog is not empty new messages join its end (order is kept), and a
 * delivery tries the backlog at most once per loop turn.
 *
 * A queue that vanishes (ipcrm, or IPC_RMID by a program) is made again at
 * the same key, by the receiver at once (retrying every second when that
 * fails) and by a sender at its next message (at most once a second).
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
#include "frame.h"
#include "rawq.h"
#include "route.h"
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
static const char *const rawq_drop_name[RAWQ_NDROP] = {"oversize", "full", "gone", "error"};

/* A message in a batch or a backlog: this header, then len bytes, padded
 * to 8. */
struct rawq_rec {
	uint64_t at; /* backlog: when it came (loop ms) */
	uint64_t len;
};

static size_t rawq_rec_size(size_t len)
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

/* ---- the log ---- */

static const char *rawq_dir(const struct rawq *r)
{
	return r->cfg->out ? "sysv-out" : "sysv-in";
}

static void rawq_log_drops(struct rawq *r)
{
	struct broker *b = r->b;
	char text[512];
	size_t k = 0;
	uint64_t total = 0;

	for (int i = 0; i < RAWQ_NDROP; i++) {
		uint64_t n = r->unlogged[i];
		if (!n)
			continue;
		total += n;
		const char *why = "";
		switch (i) {
		case RAWQ_OVERSIZE:
			why = r->cfg->out ? "larger than the queue takes" : "over max-payload";
			break;
		case RAWQ_FULL: why = "the queue stayed full"; break;
		case RAWQ_GONE: why = "the queue is gone"; break;
		default: why = "errors"; break;
		}
		int w = snprintf(text + k, sizeof text - k, "%s%llu %s (%s)", k ? ", " : "",
				 (unsigned long long)n, rawq_drop_name[i], why);
		if (w > 0 && (size_t)w < sizeof text - k)
			k += (size_t)w;
		r->unlogged[i] = 0;
	}
	if (!total)
		return;
	log_warn(&b->log, "%s: dropped %llu message(s): %s", r->name, (unsigned long long)total,
		 text);
	r->logged_at = loop_now(b->loop);
	r->logged_once = 1;
}

static void rawq_log_timer(void *arg)
{
	rawq_log_drops(arg);
}

/* Count n drops for a reason; logged at once after a quiet RAWQ_LOG_MS,
 * else by a timer at the end of it (so the end of a burst is logged). */
static void rawq_drop(struct rawq *r, int reason, uint64_t n)
{
	struct broker *b = r->b;
	if (!n)
		return;
	r->drops[reason] += n;
	r->unlogged[reason] += n;
	if (r->logt.armed)
		return;
	uint64_t now = loop_now(b->loop);
	if (!r->logged_once || now - r->logged_at >= RAWQ_LOG_MS)
		rawq_log_drops(r);
	else
		loop_timer_set(b->loop, &r->logt, r->logged_at + RAWQ_LOG_MS - now, rawq_log_timer, r);
}

/* ---- queues ---- */

/* The queue at key: made (IPC_EXCL, *created = 1) or found (checked for
 * the access the bridge needs: 0400 to read, 0200 to write).  The id, or
 * -errno. */
static int rawq_open(long key, unsigned mode, int need, int *created)
{
	for (int tries = 0; tries < 3; tries++) {
		int id = msgget((key_t)key, IPC_CREAT | IPC_EXCL | (int)mode);
		if (id >= 0) {
			*created = 1;
			return id;
		}
		if (errno != EEXIST)
			return -errno;
		id = msgget((key_t)key, need);
		if (id >= 0) {
			*created = 0;
			return id;
		}
		if (errno != ENOENT)
			return -errno;
		/* removed between the two calls: again */
	}
	return -EAGAIN;
}

static const char *rawq_open_why(const struct rawq *r, int rc, char *out, size_t n)
{
	const struct rawq_set *set = r->b->rawq;
	if (rc == -ENOSPC)
		snprintf(out, n, "no queue ids left: the system holds msgmni (%ld) queues (see ipcs -q)",
			 set->lim.msgmni);
	else if (rc == -EACCES)
		snprintf(out, n, "the queue at this key exists and does not let the broker %s it",
			 r->cfg->out ? "write to" : "read from");
	else
		snprintf(out, n, "%s", strerror(-rc));
	return out;
}

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

static int rawq_in_start(struct rawq *r)
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

/* Stop the thread and publish what it had taken. */
static void rawq_in_stop(struct rawq *r)
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

/* ---- sysv-out ---- */

/* Make the queue again after it vanished (at most once a second). */
static int rawq_reopen(struct rawq *r)
{
	struct broker *b = r->b;
	uint64_t now = loop_now(b->loop);
	char why[200];
	int created;

	if (r->reopen_at && now - r->reopen_at < RAWQ_BACKOFF_MS)
		return -1;
	r->reopen_at = now;
	int id = rawq_open(r->cfg->key, r->cfg->mode, 0200, &created);
	if (id < 0) {
		if (!r->logged_once || now - r->logged_at >= RAWQ_LOG_MS)
			log_warn(&b->log, "%s: the queue vanished and cannot be made again: %s", r->name,
				 rawq_open_why(r, id, why, sizeof why));
		return -1;
	}
	r->remade++;
	log_warn(&b->log, "%s: the queue vanished (msqid %d); made again as msqid %d", r->name,
		 r->msqid, id);
	r->msqid = id;
	r->created |= created;
	r->reopen_at = 0;
	unsigned long q;
	if (sysv_qbytes(id, &q) == 0)
		r->qbytes = q;
	return 0;
}

/* msgsnd p[0..n) with IPC_NOWAIT: 0 sent, -EAGAIN the queue is full, or
 * another negative code once the message was dropped and counted. */
static int rawq_send(struct rawq *r, const uint8_t *p, size_t n)
{
	r->sbuf[0] = r->cfg->mtype;
	memcpy(r->sbuf + 1, p, n);
	for (int tries = 0; tries < 3; tries++) {
		if (msgsnd(r->msqid, r->sbuf, n, IPC_NOWAIT) == 0) {
			r->msgs++;
			r->bytes += n;
			return 0;
		}
		int e = errno;
		if (e == EAGAIN)
			return -EAGAIN;
		if (e == EINTR)
			continue;
		if (e == EIDRM || e == EINVAL) {
			unsigned long q;
			int gone = sysv_qbytes(r->msqid, &q) < 0;
			if (!gone) {
				/* the queue is there: msgmax was lowered */
				rawq_drop(r, RAWQ_OVERSIZE, 1);
				return -EMSGSIZE;
			}
			if (rawq_reopen(r) == 0)
				continue;
			rawq_drop(r, RAWQ_GONE, 1);
			return -EIDRM;
		}
		rawq_drop(r, RAWQ_ERROR, 1);
		return -e;
	}
	rawq_drop(r, RAWQ_ERROR, 1);
	return -EINTR;
}

static void rawq_retry_timer(void *arg);

/* Arm the retry for the backlog's head: after retry_ms, or sooner when its
 * wait ends then. */
static void rawq_arm(struct rawq *r)
{
	struct broker *b = r->b;
	struct rawq_rec rec;
	uint64_t now = loop_now(b->loop);

	memcpy(&rec, buf_rptr(&r->backlog), sizeof rec);
	uint64_t end = rec.at + r->cfg->wait_ms;
	uint64_t due = end > now ? end - now : 0;
	uint64_t ms = r->retry_ms < due ? r->retry_ms : due;
	loop_timer_set(b->loop, &r->retry, ms, rawq_retry_timer, r);
}

/* Send what waits, in order; drop what waited too long; arm the retry. */
static void rawq_flush(struct rawq *r)
{
	struct broker *b = r->b;
	uint64_t now = loop_now(b->loop);
	int progress = 0;

	while (buf_len(&r->backlog)) {
		struct rawq_rec rec;
		uint8_t *p = buf_rptr(&r->backlog);
		memcpy(&rec, p, sizeof rec);
		if (now - rec.at >= r->cfg->wait_ms)
			rawq_drop(r, RAWQ_FULL, 1);
		else if (rawq_send(r, p + sizeof rec, (size_t)rec.len) == -EAGAIN)
			break;
		else
			progress = 1;
		buf_consume(&r->backlog, rawq_rec_size((size_t)rec.len));
		r->nbacklog--;
	}
	if (!buf_len(&r->backlog)) {
		loop_timer_cancel(b->loop, &r->retry);
		r->retry_ms = RAWQ_RETRY_MIN_MS;
		buf_shrink(&r->backlog, 64 << 10);
		return;
	}
	if (progress)
		r->retry_ms = RAWQ_RETRY_MIN_MS;
	else if (r->retry.armed)
		return; /* a delivery tried between two retries */
	rawq_arm(r);
}

static void rawq_retry_timer(void *arg)
{
	struct rawq *r = arg;
	if (r->retry_ms < RAWQ_RETRY_MAX_MS)
		r->retry_ms *= 2;
	rawq_flush(r);
}

/* Keep p[0..n) for later: 0, or -1 when the backlog is full. */
static int rawq_backlog_add(struct rawq *r, const uint8_t *p, size_t n)
{
	size_t need = rawq_rec_size(n);
	if (buf_reserve(&r->backlog, need) < 0)
		return -1;
	uint8_t *w = buf_wptr(&r->backlog);
	struct rawq_rec rec = {loop_now(r->b->loop), n};
	memcpy(w, &rec, sizeof rec);
	memcpy(w + sizeof rec, p, n);
	buf_commit(&r->backlog, need);
	r->nbacklog++;
	return 0;
}

static int rawq_deliver(struct sub *s, struct message *m)
{
	struct rawq *r = s->owner;
	struct broker *b = r->b;
	const uint8_t *p = m->f->payload.p;
	size_t n = m->f->payload.len;

	if (n > r->maxmsg) {
		rawq_drop(r, RAWQ_OVERSIZE, 1);
		return 1; /* ours, counted as dropped */
	}
	if (buf_len(&r->backlog) && r->flush_turn != b->turn) {
		r->flush_turn = b->turn; /* one try per turn while it waits */
		rawq_flush(r);
	}
	if (!buf_len(&r->backlog) && rawq_send(r, p, n) != -EAGAIN)
		return 1;
	if (r->cfg->wait_ms == 0 || rawq_backlog_add(r, p, n) < 0) {
		rawq_drop(r, RAWQ_FULL, 1);
		return 1;
	}
	if (!r->retry.armed)
		rawq_arm(r);
	return 1;
}

static const struct sub_ops rawq_sub_ops = {rawq_deliver, NULL};

static int rawq_out_start(struct rawq *r)
{
	struct broker *b = r->b;
	const struct rawq_set *set = b->rawq;

	r->maxmsg = (size_t)set->lim.msgmax;
	if (r->qbytes < r->maxmsg)
		r->maxmsg = (size_t)r->qbytes; /* a larger one never fits */
	r->sbuf = malloc(sizeof(long) + (size_t)set->lim.msgmax);
	if (!r->sbuf)
		return -ENOMEM;
	buf_init(&r->backlog, (size_t)r->cfg->backlog);
	r->retry_ms = RAWQ_RETRY_MIN_MS;
	r->sub.ops = &rawq_sub_ops;
	r->sub.owner = r;
	r->sub.pattern = r->cfg->channel; /* the configuration's, not freed here */
	r->sub.pattern_len = strlen(r->cfg->channel);
	int rc = route_sub_add(b, &r->sub);
	if (rc < 0)
		return rc;
	r->subscribed = 1;
	return 0;
}

/* ---- set-up ---- */

static int rawq_setup(struct rawq *r)
{
	struct broker *b = r->b;
	const struct conf_sysv *c = r->cfg;
	const struct rawq_set *set = b->rawq;
	char why[200], qb[160] = "";
	int rc;

	int id = rawq_open(c->key, c->mode, c->out ? 0200 : 0400, &r->created);
	if (id < 0) {
		log_error(&b->log, "%s: cannot open the queue at key 0x%lx: %s", r->name, c->key,
			  rawq_open_why(r, id, why, sizeof why));
		return id;
	}
	r->msqid = id;
	struct msqid_ds ds;
	if (msgctl(id, IPC_STAT, &ds) < 0) {
		rc = -errno;
		log_error(&b->log, "%s: msqid %d: IPC_STAT: %s", r->name, id, strerror(-rc));
		return rc;
	}
	r->qbytes = (unsigned long)ds.msg_qbytes;
	/* a queue the broker made, or its user's (left by a broker that was
	 * killed): removed at stop under `remove`; another user's never */
	r->owned = r->created || ds.msg_perm.cuid == geteuid();
	if (c->qbytes && r->qbytes < c->qbytes) {
		unsigned long got;
		int refused;
		rc = sysv_raise_qbytes(id, (unsigned long)c->qbytes, set->lim.msgmnb, &got, &refused);
		if (rc < 0)
			snprintf(qb, sizeof qb, " (raising it to %llu failed: %s)",
				 (unsigned long long)c->qbytes, strerror(-rc));
		else if (refused)
			snprintf(qb, sizeof qb, " (qbytes=%llu refused: above msgmnb %ld that takes CAP_SYS_RESOURCE)",
				 (unsigned long long)c->qbytes, set->lim.msgmnb);
		else
			snprintf(qb, sizeof qb, " (raised)");
		if (rc == 0)
			r->qbytes = got;
	}
	log_info(&b->log, "%s: msqid %d (%s, mode %04o, %s), msg_qbytes %lu%s", r->name, id,
		 r->created ? "created" : "found", (unsigned)(ds.msg_perm.mode & 0777),
		 c->remove ? (r->owned ? "removed at stop" : "remove: not ours, left at stop")
			   : "kept at stop",
		 r->qbytes, qb);
	rc = c->out ? rawq_out_start(r) : rawq_in_start(r);
	if (rc < 0)
		log_error(&b->log, "%s: %s", r->name, strerror(-rc));
	return rc;
}

static void rawq_wake(int sig)
{
	(void)sig;
}

int rawq_init(struct broker *b)
{
	const struct conf *cfg = &b->cfg;
	if (!cfg->nsysv)
		return 0;
	struct rawq_set *set = calloc(1, sizeof *set);
	if (!set || !(set->q = calloc(cfg->nsysv, sizeof *set->q))) {
		free(set);
		log_error(&b->log, "out of memory");
		return -ENOMEM;
	}
	b->rawq = set;
	/* the receivers' wake-up: a handler that does nothing (so the
	 * signal interrupts msgrcv), blocked here in the loop's thread */
	struct sigaction sa = {.sa_handler = rawq_wake};
	sigfillset(&sa.sa_mask);
	sigset_t wake;
	sigemptyset(&wake);
	sigaddset(&wake, RAWQ_WAKE);
	if (sigaction(RAWQ_WAKE, &sa, NULL) < 0 || pthread_sigmask(SIG_BLOCK, &wake, NULL) != 0) {
		log_error(&b->log, "raw bridges: signal %d: %s", RAWQ_WAKE, strerror(errno));
		return -errno;
	}
	sysv_limits_read(&set->lim);
	log_info(&b->log, "SysV limits%s: msgmax %ld, msgmnb %ld, msgmni %ld",
		 set->lim.guessed ? " (some unreadable in /proc/sys/kernel: Linux defaults)" : "",
		 set->lim.msgmax, set->lim.msgmnb, set->lim.msgmni);
	for (size_t i = 0; i < cfg->nsysv; i++) {
		const struct conf_sysv *c = &cfg->sysv[i];
		struct rawq *r = &set->q[set->n++];
		r->b = b;
		r->cfg = c;
		r->msqid = -1;
		if (c->out)
			snprintf(r->name, sizeof r->name, "sysv-out %s -> %s mtype %ld", c->channel,
				 c->key_text, c->mtype);
		else
			snprintf(r->name, sizeof r->name, "sysv-in %s mtype %ld -> %s", c->key_text,
				 c->mtype, c->channel);
		int rc = rawq_setup(r);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void rawq_stop(struct broker *b)
{
	struct rawq_set *set = b->rawq;
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		if (!set->q[i].cfg->out)
			rawq_in_stop(&set->q[i]);
}

void rawq_fini(struct broker *b)
{
	struct rawq_set *set = b->rawq;
	if (!set)
		return;
	rawq_stop(b);
	for (size_t i = 0; i < set->n; i++) {
		struct rawq *r = &set->q[i];
		if (r->subscribed) {
			route_sub_remove(b, &r->sub);
			r->subscribed = 0;
		}
		if (r->nbacklog) {
			/* one last try: what does not go now is lost */
			loop_timer_cancel(b->loop, &r->retry);
			r->retry_ms = RAWQ_RETRY_MIN_MS;
			rawq_flush(r);
			loop_timer_cancel(b->loop, &r->retry);
			rawq_drop(r, RAWQ_FULL, r->nbacklog);
		}
		loop_timer_cancel(b->loop, &r->logt);
		rawq_log_drops(r);
	}
	/* the queues go once nobody uses them */
	for (size_t i = 0; i < set->n; i++) {
		struct rawq *r = &set->q[i];
		if (r->cfg->remove && (r->owned || r->created) && r->msqid >= 0) {
			if (msgctl(r->msqid, IPC_RMID, NULL) == 0)
				log_info(&b->log, "%s: msqid %d removed", r->name, r->msqid);
			else if (errno != EINVAL && errno != EIDRM)
				log_warn(&b->log, "%s: cannot remove msqid %d: %s", r->name, r->msqid,
					 strerror(errno));
		}
		if (r->async_on)
			loop_async_fini(b->loop, &r->async);
		if (r->started) {
			pthread_cond_destroy(&r->cv);
			pthread_mutex_destroy(&r->mu);
		}
		buf_fini(&r->fill);
		buf_fini(&r->take);
		buf_fini(&r->backlog);
		free(r->rx);
		free(r->sbuf);
	}
	free(set->q);
	free(set);
	b->rawq = NULL;
}

void rawq_status(struct broker *b)
{
	struct rawq_set *set = b->rawq;
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		struct rawq *r = &set->q[i];
		const struct conf_sysv *c = r->cfg;
		struct msqid_ds ds;
		char queue[160], backlog[96] = "";
		if (r->msqid >= 0 && msgctl(r->msqid, IPC_STAT, &ds) == 0)
			snprintf(queue, sizeof queue, "queue %lu message(s), %lu byte(s) of %lu",
				 (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes,
				 (unsigned long)ds.msg_qbytes);
		else
			snprintf(queue, sizeof queue, "queue gone");
		if (c->out)
			snprintf(backlog, sizeof backlog, ", backlog %zu message(s) %zu byte(s)",
				 r->nbacklog, buf_len(&r->backlog));
		log_info(&b->log,
			 "status: %s key 0x%lx msqid %d mtype %ld %s %s (%s): messages %llu, bytes %llu, dropped oversize %llu full %llu gone %llu error %llu%s; %s",
			 rawq_dir(r), c->key, r->msqid, c->mtype, c->out ? "pattern" : "channel",
			 c->channel, c->key_text, (unsigned long long)r->msgs,
			 (unsigned long long)r->bytes, (unsigned long long)r->drops[RAWQ_OVERSIZE],
			 (unsigned long long)r->drops[RAWQ_FULL], (unsigned long long)r->drops[RAWQ_GONE],
			 (unsigned long long)r->drops[RAWQ_ERROR], backlog, queue);
	}
}
