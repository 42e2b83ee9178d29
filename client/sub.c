/*
 * sub.c: subscriptions and the delivery of MSG frames.
 *
 * Subscriptions live in a table by sid for the connection's lifetime, not
 * the socket's: on reconnect sub_restore() sends them all again with the
 * same sids, so messages keep reaching the same callbacks.  Sids are never
 * reused, so a MSG still on its way for a removed subscription is dropped
 * rather than given to a newer one.
 *
 * A MSG is delivered as a view into the read buffer (no copy, no malloc
 * with up to SUB_STACK_HEADERS headers); only subscriptions without a
 * callback copy it, into the queue that ipcbus_next() empties, bounded by
 * opts.max_queued bytes (past it messages are dropped and counted).
 *
 * A callback may make a blocking call (a request), which reads on.  The
 * messages that call reads for callback subscriptions are not delivered
 * from inside it: they are copied and held, and delivered in order once the
 * callback returned.  Otherwise a steady flow of messages whose callbacks
 * make requests would nest callbacks without end and exhaust the stack.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "client.h"

#define SUB_STACK_HEADERS 16

int sub_frame(struct ipcbus *c, const struct sub *s, uint64_t id)
{
	struct frame f = {.type = IPCBUS__FRAME_TYPE__SUB, .has_id = 1, .id = id,
			  .has_sid = 1, .sid = s->sid};
	f.channel = (struct frame_bytes){(const uint8_t *)s->pattern, s->plen, 1};
	if (s->queue)
		f.queue = (struct frame_bytes){(const uint8_t *)s->queue, s->qlen, 1};
	return frame_append(&c->out, &f, NULL, 0);
}

/* Send the SUB of s: into out, or over a datagram transport through
 * dgram.c, which resends it until acknowledged (the request inbox first:
 * a request's reply needs it). */
static int sub_send(struct ipcbus *c, struct sub *s)
{
	s->frame_id = c->next_id++;
	if (c->dgram)
		return dgram_send(c, IPCBUS__FRAME_TYPE__SUB, s->frame_id, s->sid, s->inbox);
	return sub_frame(c, s, s->frame_id);
}

/* A queue group: 1-255 of [A-Za-z0-9_.-], as the broker wants it. */
static int sub_queue_valid(const char *q, size_t len)
{
	if (!q)
		return 1;
	if (len == 0 || len > CHAN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)q[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '-' || ch == '.'))
			return 0;
	}
	return 1;
}

int sub_add(struct ipcbus *c, const char *pat, size_t plen, const char *queue,
	    ipcbus_msg_cb cb, void *arg, int inbox, uint64_t *sid)
{
	size_t qlen = queue ? strlen(queue) : 0;
	int rc;

	if (chan_valid_pattern(pat, plen) < 0 || !sub_queue_valid(queue, qlen))
		return IPCBUS_ECHANNEL;
	struct sub *s = malloc(sizeof *s + plen + 1 + qlen + 1);
	if (!s)
		return -ENOMEM;
	s->sid = ++c->next_sid;
	s->frame_id = 0;
	s->cb = cb;
	s->arg = arg;
	s->inbox = inbox;
	s->plen = plen;
	memcpy(s->pattern, pat, plen);
	s->pattern[plen] = 0;
	s->qlen = qlen;
	s->queue = NULL;
	if (qlen) {
		s->queue = s->pattern + plen + 1;
		memcpy(s->queue, queue, qlen + 1);
	}
	rc = idmap_put(&c->subs, s->sid, s);
	if (rc < 0)
		goto fail;
	/* not connected: sub_restore() sends it with the others */
	if (c->state == CONN_READY) {
		rc = sub_send(c, s);
		if (rc < 0) {
			idmap_del(&c->subs, s->sid);
			goto fail;
		}
		conn_write(c);
	}
	if (sid)
		*sid = s->sid;
	return 0;
fail:
	free(s);
	return rc;
}

int ipcbus_subscribe(ipcbus *c, const char *pattern, const char *queue, ipcbus_msg_cb cb,
		     void *arg, uint64_t *sid)
{
	if (!c || !pattern)
		return -EINVAL;
	if (c->state == CONN_CLOSED)
		return IPCBUS_ECLOSED;
	if (queue && !*queue)
		queue = NULL;
	return sub_add(c, pattern, strlen(pattern), queue, cb, arg, 0, sid);
}

int ipcbus_unsubscribe(ipcbus *c, uint64_t sid)
{
	if (!c)
		return -EINVAL;
	struct sub *s = idmap_del(&c->subs, sid);
	if (!s)
		return IPCBUS_ENOSUB;
	if (s->inbox)
		c->inbox_sid = 0;
	free(s);
	if (c->dgram)
		dgram_forget_sid(c, sid); /* a resent SUB would subscribe it again */
	if (c->state == CONN_READY) {
		struct frame f = {.type = IPCBUS__FRAME_TYPE__UNSUB, .has_id = 1,
				  .id = c->next_id++, .has_sid = 1, .sid = sid};
		int rc = c->dgram ? dgram_send(c, f.type, f.id, sid, 0)
				  : frame_append(&c->out, &f, NULL, 0);
		if (rc < 0)
			return rc;
		conn_write(c);
	}
	return 0;
}

void sub_restore(struct ipcbus *c)
{
	size_t pos = 0;
	struct sub *s;

	while ((s = idmap_next(&c->subs, &pos, NULL)))
		if (sub_send(c, s) < 0)
			break; /* out of memory: the connection is lost anyway */
}

void sub_on_err(struct ipcbus *c, uint64_t frame_id, int code)
{
	size_t pos = 0;
	struct sub *s;

	/* a refused SUB would be refused again after every reconnect: forget it */
	if (code != IPCBUS__ERR_CODE__E_INVALID_CHANNEL && code != IPCBUS__ERR_CODE__E_PERMISSION &&
	    code != IPCBUS__ERR_CODE__E_TOO_MANY_SUBS && code != IPCBUS__ERR_CODE__E_INVALID)
		return;
	while ((s = idmap_next(&c->subs, &pos, NULL)))
		if (s->frame_id == frame_id)
			break;
	if (!s)
		return;
	idmap_del(&c->subs, s->sid);
	if (s->inbox)
		c->inbox_sid = 0;
	free(s);
}

static void sub_queue(struct ipcbus *c, const ipcbus_msg *m)
{
	struct msgblk *b = msg_copy(m);

	if (b && c->qbytes + b->size <= c->opts.max_queued) {
		*c->qtail = b;
		c->qtail = &b->next;
		c->qbytes += b->size;
		c->delivered++;
		return;
	}
	free(b);
	c->qdropped++;
	if (!c->qfull_reported) {
		c->qfull_reported = 1;
		conn_event(c, IPCBUS_EV_ERROR, IPCBUS_EBUFFER,
			   "messages for ipcbus_next() dropped: the queue is full (max_queued)");
	}
}

/* Copy m onto the held list (bounded by max_queued with the ipcbus_next()
 * queue); 0, or -1 when it had to be dropped. */
static int sub_hold(struct ipcbus *c, const ipcbus_msg *m)
{
	struct msgblk *b = msg_copy(m);

	if (b && c->qbytes + c->dbytes + b->size <= c->opts.max_queued) {
		*c->dtail = b;
		c->dtail = &b->next;
		c->dbytes += b->size;
		return 0;
	}
	free(b);
	c->qdropped++;
	if (!c->qfull_reported) {
		c->qfull_reported = 1;
		conn_event(c, IPCBUS_EV_ERROR, IPCBUS_EBUFFER,
			   "messages dropped: a callback's blocking call held more than max_queued");
	}
	return -1;
}

/* Call s's callback with m. */
static void sub_call(struct ipcbus *c, struct sub *s, const ipcbus_msg *m)
{
	c->delivered++;
	c->cb_depth++;
	s->cb(s->arg, m);
	c->cb_depth--;
}

void sub_deliver_held(struct ipcbus *c)
{
	while (c->dhead && c->cb_depth == 0) {
		struct msgblk *b = c->dhead;
		c->dhead = b->next;
		if (!c->dhead)
			c->dtail = &c->dhead;
		c->dbytes -= b->size;
		struct sub *s = idmap_get(&c->subs, b->m.sid);
		if (s && s->cb)
			sub_call(c, s, &b->m);
		free(b);
	}
	if (!c->dhead && c->qbytes <= c->opts.max_queued / 2)
		c->qfull_reported = 0; /* a new episode of drops is reported again */
}

void sub_on_msg(struct ipcbus *c, const struct frame *f)
{
	ipcbus_header hs[SUB_STACK_HEADERS], *h = hs;
	ipcbus_msg m;

	struct sub *s = f->has_sid ? idmap_get(&c->subs, f->sid) : NULL;
	if (!s || !f->channel.set)
		return; /* unsubscribed while the message was on its way */
	if (f->nheaders > SUB_STACK_HEADERS) {
		h = malloc(f->nheaders * sizeof *h);
		if (!h)
			return;
	}
	msg_view(f, &m, h);
	if (s->inbox) {
		req_on_reply(c, &m);
	} else if (s->cb) {
		if (c->cb_depth > 0 || c->dhead) {
			/* inside a callback's blocking call, or behind held
			 * ones: keep the order */
			sub_hold(c, &m);
			sub_deliver_held(c);
		} else {
			/* s may be freed by the callback: not used after */
			sub_call(c, s, &m);
		}
	} else {
		sub_queue(c, &m);
	}
	if (h != hs)
		free(h);
}

static int sub_has_queued(struct ipcbus *c, void *arg)
{
	return c->qhead != NULL;
}

int ipcbus_next(ipcbus *c, ipcbus_msg **out, int timeout_ms)
{
	int rc;

	if (!c || !out)
		return -EINVAL;
	*out = NULL;
	if (!c->qhead) {
		if (timeout_ms == 0) {
			rc = conn_dispatch(c);
			if (!c->qhead)
				return rc < 0 ? rc : IPCBUS_EAGAIN;
		} else {
			rc = conn_run(c, timeout_ms, sub_has_queued, NULL);
			if (rc < 0)
				return rc;
		}
	}
	struct msgblk *b = c->qhead;
	c->qhead = b->next;
	if (!c->qhead)
		c->qtail = &c->qhead;
	c->qbytes -= b->size;
	if (c->qbytes <= c->opts.max_queued / 2)
		c->qfull_reported = 0;
	b->next = NULL;
	*out = &b->m;
	return 0;
}

void sub_fini(struct ipcbus *c)
{
	size_t pos = 0;
	struct sub *s;

	while ((s = idmap_next(&c->subs, &pos, NULL)))
		free(s);
	idmap_fini(&c->subs);
	while (c->qhead) {
		struct msgblk *b = c->qhead;
		c->qhead = b->next;
		free(b);
	}
	c->qtail = &c->qhead;
	c->qbytes = 0;
	while (c->dhead) {
		struct msgblk *b = c->dhead;
		c->dhead = b->next;
		free(b);
	}
	c->dtail = &c->dhead;
	c->dbytes = 0;
}
