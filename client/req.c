/*
 * req.c: request/reply over one inbox per connection.
 *
 * The inbox is `_INBOX.` and 22 random characters of [A-Za-z0-9] (about
 * 131 bits from getrandom), subscribed to as `_INBOX.<rand>.>` on the first
 * request and restored with the other subscriptions on reconnect.  Request
 * number id is published with reply_to `_INBOX.<rand>.<id>` and frame id
 * id, so both a reply (by the last token of its channel) and the broker's
 * E_NO_RESPONDERS (by the ERR's id) find the request in one table lookup.
 * Requests with a deadline also sit in a binary min-heap, so expiring them
 * and ipcbus_timeout() cost O(log n) and O(1), not a scan.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* --- the deadline heap --- */

static void req_heap_set(struct ipcbus *c, size_t i, struct req *r)
{
	c->heap[i] = r;
	r->hidx = i;
}

static void req_heap_up(struct ipcbus *c, size_t i)
{
	struct req *r = c->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (c->heap[p]->deadline <= r->deadline)
			break;
		req_heap_set(c, i, c->heap[p]);
		i = p;
	}
	req_heap_set(c, i, r);
}

static void req_heap_down(struct ipcbus *c, size_t i)
{
	struct req *r = c->heap[i];
	for (;;) {
		size_t k = 2 * i + 1;
		if (k >= c->nheap)
			break;
		if (k + 1 < c->nheap && c->heap[k + 1]->deadline < c->heap[k]->deadline)
			k++;
		if (r->deadline <= c->heap[k]->deadline)
			break;
		req_heap_set(c, i, c->heap[k]);
		i = k;
	}
	req_heap_set(c, i, r);
}

static int req_heap_push(struct ipcbus *c, struct req *r)
{
	if (c->nheap == c->heap_cap) {
		size_t cap = c->heap_cap ? c->heap_cap * 2 : 16;
		struct req **h = realloc(c->heap, cap * sizeof *h);
		if (!h)
			return -ENOMEM;
		c->heap = h;
		c->heap_cap = cap;
	}
	c->heap[c->nheap++] = r;
	req_heap_up(c, c->nheap - 1);
	return 0;
}

static void req_heap_remove(struct ipcbus *c, struct req *r)
{
	size_t i = r->hidx;

	if (i == SIZE_MAX)
		return;
	r->hidx = SIZE_MAX;
	struct req *last = c->heap[--c->nheap];
	if (i == c->nheap)
		return;
	req_heap_set(c, i, last);
	req_heap_up(c, i);
	req_heap_down(c, last->hidx);
}

/* --- the table --- */

/* Forget request id; returns it (the caller calls and frees it) or NULL. */
static struct req *req_take(struct ipcbus *c, uint64_t id)
{
	struct req *r = idmap_del(&c->reqs, id);
	if (r)
		req_heap_remove(c, r);
	return r;
}

/* Call r's callback once and free r. */
static void req_finish(struct ipcbus *c, struct req *r, int status, const ipcbus_msg *reply)
{
	ipcbus_reply_cb cb = r->cb;
	void *arg = r->arg;

	free(r);
	c->delivered++;
	c->cb_depth++;
	cb(arg, status, reply);
	c->cb_depth--;
}

void req_on_reply(struct ipcbus *c, const ipcbus_msg *m)
{
	uint64_t id = 0;
	size_t i = m->channel_len;

	while (i > 0 && m->channel[i - 1] != '.')
		i--;
	if (i != c->inbox_len + 1 || i == m->channel_len ||
	    memcmp(m->channel, c->inbox, c->inbox_len) != 0)
		return; /* not `<our inbox>.<id>` */
	for (; i < m->channel_len; i++) {
		unsigned d = (unsigned char)m->channel[i] - '0';
		if (d > 9 || id > (UINT64_MAX - d) / 10)
			return;
		id = id * 10 + d;
	}
	struct req *r = req_take(c, id);
	if (r) /* else a late reply to a request that timed out */
		req_finish(c, r, 0, m);
}

void req_on_err(struct ipcbus *c, uint64_t id, int err)
{
	struct req *r = req_take(c, id);
	if (r)
		req_finish(c, r, err, NULL);
}

void req_expire(struct ipcbus *c)
{
	if (c->nheap == 0)
		return;
	int64_t now = conn_now();
	while (c->nheap && c->heap[0]->deadline <= now) {
		struct req *r = req_take(c, c->heap[0]->id);
		req_finish(c, r, IPCBUS_ETIMEOUT, NULL);
	}
}

int64_t req_next_deadline(const struct ipcbus *c)
{
	return c->nheap ? c->heap[0]->deadline : -1;
}

void req_fail_all(struct ipcbus *c, int err)
{
	/* take the whole table first: the callbacks cannot add to it (the
	 * connection is not ready) but must not see it half-iterated */
	struct idmap all = c->reqs;
	size_t pos = 0;
	struct req *r;

	idmap_init(&c->reqs);
	c->nheap = 0;
	while ((r = idmap_next(&all, &pos, NULL)))
		req_finish(c, r, err, NULL);
	idmap_fini(&all);
}

void req_fini(struct ipcbus *c)
{
	req_fail_all(c, IPCBUS_ECLOSED);
	free(c->heap);
	c->heap = NULL;
	c->heap_cap = 0;
}

/* --- requests --- */

static int req_inbox(struct ipcbus *c)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	char pat[sizeof c->inbox + 2];

	if (c->inbox_sid)
		return 0;
	if (!c->inbox_len) {
		uint8_t r[64];
		size_t k = 0, i = sizeof r;
		memcpy(c->inbox, "_INBOX.", 7);
		while (k < 22) {
			if (i == sizeof r) {
				conn_random(r, sizeof r);
				i = 0;
			}
			/* 248 = 4 * 62: reject the rest, so every digit is uniform */
			if (r[i] < 248)
				c->inbox[7 + k++] = digits[r[i] % 62];
			i++;
		}
		c->inbox_len = 7 + 22;
		c->inbox[c->inbox_len] = 0;
	}
	snprintf(pat, sizeof pat, "%s.>", c->inbox);
	return sub_add(c, pat, c->inbox_len + 2, NULL, NULL, NULL, 1, &c->inbox_sid);
}

/* Send a request; *id receives its id (to cancel it). */
static int req_start(struct ipcbus *c, const char *channel, const ipcbus_header *headers,
		     size_t nheaders, const void *data, size_t len, int timeout_ms,
		     ipcbus_reply_cb cb, void *arg, uint64_t *id)
{
	char reply[sizeof c->inbox + 24];
	int rc;

	if (!c || !channel || !cb)
		return -EINVAL;
	if (c->state == CONN_CLOSED)
		return c->closed_err;
	if (c->dgram)
		dgram_check_silence(c); /* forgotten by the broker: disconnected */
	if (c->state != CONN_READY)
		return IPCBUS_EDISCONNECTED;
	rc = req_inbox(c);
	if (rc < 0)
		return rc;
	struct req *r = malloc(sizeof *r);
	if (!r)
		return -ENOMEM;
	r->id = c->next_id++;
	r->deadline = timeout_ms < 0 ? -1 : conn_now() + timeout_ms;
	r->hidx = SIZE_MAX;
	r->cb = cb;
	r->arg = arg;
	rc = idmap_put(&c->reqs, r->id, r);
	if (rc < 0) {
		free(r);
		return rc;
	}
	if (r->deadline >= 0 && (rc = req_heap_push(c, r)) < 0)
		goto fail;
	int n = snprintf(reply, sizeof reply, "%s.%" PRIu64, c->inbox, r->id);
	/* written at once: request latency matters more than batching */
	rc = pub_send(c, channel, strlen(channel), reply, (size_t)n, headers, nheaders, data, len,
		      r->id, 1);
	if (rc < 0)
		goto fail;
	*id = r->id;
	return 0;
fail:
	free(req_take(c, r->id));
	return rc;
}

int ipcbus_request_async(ipcbus *c, const char *channel, const ipcbus_header *headers,
			 size_t nheaders, const void *data, size_t len, int timeout_ms,
			 ipcbus_reply_cb cb, void *arg)
{
	uint64_t id;
	return req_start(c, channel, headers, nheaders, data, len, timeout_ms, cb, arg, &id);
}

struct req_wait {
	int done;
	int status;
	ipcbus_msg *reply;
};

static void req_wait_cb(void *arg, int status, const ipcbus_msg *reply)
{
	struct req_wait *w = arg;

	w->done = 1;
	w->status = status;
	if (status == 0) {
		w->reply = ipcbus_msg_dup(reply);
		if (!w->reply)
			w->status = -ENOMEM;
	}
}

static int req_wait_done(struct ipcbus *c, void *arg)
{
	return ((struct req_wait *)arg)->done;
}

int ipcbus_request(ipcbus *c, const char *channel, const ipcbus_header *headers,
		   size_t nheaders, const void *data, size_t len, int timeout_ms,
		   ipcbus_msg **reply)
{
	struct req_wait w = {0};
	uint64_t id;
	int rc;

	if (!reply)
		return -EINVAL;
	*reply = NULL;
	rc = req_start(c, channel, headers, nheaders, data, len, timeout_ms, req_wait_cb, &w, &id);
	if (rc < 0)
		return rc;
	/* the request's own deadline ends the wait; other subscriptions'
	 * messages are dispatched meanwhile, not lost */
	rc = conn_run(c, -1, req_wait_done, &w);
	if (!w.done) {
		/* interrupted (-EINTR): w is going away, so must the request */
		free(req_take(c, id));
		return rc < 0 ? rc : IPCBUS_ETIMEOUT;
	}
	if (w.status < 0)
		return w.status;
	*reply = w.reply;
	return 0;
}

int ipcbus_respond(ipcbus *c, const ipcbus_msg *req, const ipcbus_header *headers,
		   size_t nheaders, const void *data, size_t len)
{
	if (!c || !req)
		return -EINVAL;
	if (!req->reply_to || !req->reply_to_len)
		return -EINVAL;
	/* inside a callback the reply goes out with the dispatch's one write;
	 * outside (answered later) at once */
	return pub_send(c, req->reply_to, req->reply_to_len, NULL, 0, headers, nheaders, data,
			len, 0, c->in_depth == 0);
}
