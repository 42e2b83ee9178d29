/*
 * rawq_out.c: sysv-out, a raw bridge from the channels a pattern matches
 * to a SysV message queue (see rawq.h, rawq_int.h, docs/design.md "Raw
 * bridges").
 *
 * A subscription whose deliver op msgsnd()s with IPC_NOWAIT.
 * When the queue is full the message waits in a backlog (bounded in
 * bytes); a full queue has nothing to poll, so a timer retries, from
 * RAWQ_RETRY_MIN_MS doubling to RAWQ_RETRY_MAX_MS while nothing goes, and
 * a message that waited longer than the line's wait is dropped.  While the
 * backlog is not empty new messages join its end (order is kept), and a
 * delivery tries the backlog at most once per loop turn.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>

#include "broker.h"
#include "rawq_int.h"
#include "route.h"
#include "router.h"
#include "sysv.h"

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

int rawq_out_start(struct rawq *r)
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

void rawq_out_stop(struct rawq *r)
{
	struct broker *b = r->b;

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
}
