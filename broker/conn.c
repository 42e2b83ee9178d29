/*
 * conn.c: a client connection: buffers, the output bound, subscriptions by
 * sid, errors and the two-step close.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "conn.h"
#include "hash.h"
#include "ipcbus.h"
#include "transport.h"

/* Control frames (ERR, PONG, WELCOME) may go this far past max-pending, so
 * that a full connection can still be told why it is being closed. */
#define CONN_CONTROL_SLACK (64 << 10)
/* A drop episode ends when the output drained below this share of max. */
#define CONN_RECOVER_DIV 2

size_t conn_frame_max(const struct conn *c)
{
	const struct conf *cfg = &c->b->cfg;
	return (size_t)(cfg->max_payload + cfg->max_header_bytes + 1024);
}

void conn_describe(struct conn *c)
{
	if (c->has_cred)
		snprintf(c->desc, sizeof c->desc, "client %llu (%s%spid %d uid %u)",
			 (unsigned long long)c->id, c->name, c->name[0] ? " " : "", (int)c->pid,
			 (unsigned)c->uid);
	else if (c->pid)
		snprintf(c->desc, sizeof c->desc, "client %llu (%s%spid %d, said the client)",
			 (unsigned long long)c->id, c->name, c->name[0] ? " " : "", (int)c->pid);
	else
		snprintf(c->desc, sizeof c->desc, "client %llu (%s)", (unsigned long long)c->id,
			 c->name[0] ? c->name : "unknown peer");
}

/* Who is at the other end of a Unix socket (SO_PEERCRED). */
static void conn_peercred(struct conn *c)
{
	struct ucred cr;
	socklen_t len = sizeof cr;

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.pid > 0) {
		c->pid = cr.pid;
		c->uid = cr.uid;
		c->gid = cr.gid;
		c->has_cred = 1;
	}
}

struct conn *conn_new(struct broker *b, int fd, const struct conn_ops *ops, struct listener *l)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return NULL;
	}
	c->b = b;
	c->ops = ops;
	c->listener = l;
	c->fd = fd;
	c->id = ++b->next_conn_id;
	c->state = CONN_HELLO;
	c->last_rx = loop_now(b->loop);
	buf_init(&c->in, conn_frame_max(c) + FRAME_VARINT_MAX + (64 << 10));
	buf_init(&c->out, b->cfg.max_pending + CONN_CONTROL_SLACK);
	conn_peercred(c);
	conn_describe(c);
	return c;
}

void conn_free(struct conn *c)
{
	for (size_t i = 0; i < c->subs_cap; i++) {
		struct sub *s = c->subs[i];
		if (s && s != (struct sub *)c) {
			router_remove(c->b->router, s);
			free(s->pattern);
			free(s->queue);
			free(s);
		}
	}
	free(c->subs);
	c->b->pending -= buf_len(&c->out);
	buf_fini(&c->in);
	buf_fini(&c->out);
	c->ops->close(c);
	free(c);
}

void conn_close(struct conn *c, const char *why)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	c->closed_at = loop_now(c->b->loop);
	if (c->dropped)
		log_info(&c->b->log, "%s closed: %s (%llu messages dropped as a slow consumer)",
			 c->desc, why, (unsigned long long)c->dropped);
	else
		log_debug(&c->b->log, "%s closed: %s", c->desc, why);
	broker_mark_closing(c->b, c);
}

static void conn_account(struct conn *c, size_t before)
{
	size_t after = buf_len(&c->out);
	c->b->pending += after - before;
	if (after && !c->dirty)
		broker_mark_dirty(c->b, c);
}

/* Room for a control frame of about n bytes?  Control frames answer the
 * client's own frames (PONG, a recoverable ERR), so a client that keeps
 * asking without reading the answers would pile them up: they may use half
 * the slack past max-pending, and past max-memory only a small share. */
static int conn_control_room(const struct conn *c, size_t n)
{
	const struct conf *cfg = &c->b->cfg;
	size_t have = buf_len(&c->out);

	if (have + n > cfg->max_pending + CONN_CONTROL_SLACK / 2)
		return 0;
	if (c->b->pending + n > cfg->max_memory && have + n > CONN_CONTROL_SLACK / 2)
		return 0;
	return 1;
}

/* The client does not read what it asked for: tell it (in the rest of the
 * slack, after dropping what it has not started reading) and close. */
static void conn_overflow(struct conn *c)
{
	size_t pending = buf_len(&c->out);
	conn_drop_queued(c);
	size_t before = buf_len(&c->out);
	if (frame_append_error(&c->out, 0, IPCBUS__ERR_CODE__E_SLOW_CONSUMER, 1,
			       "not reading the broker's answers; disconnected") == 0)
		conn_account(c, before);
	c->b->stats.slow_consumers++;
	log_warn(&c->b->log, "%s does not read its answers (%zu bytes pending); disconnected",
		 c->desc, pending);
	conn_close(c, "not reading its answers");
}

int conn_send(struct conn *c, const struct frame *f)
{
	if (!conn_control_room(c, frame_size(f, NULL, 0) + FRAME_VARINT_MAX)) {
		conn_overflow(c);
		return -ENOBUFS;
	}
	size_t before = buf_len(&c->out);
	int rc = frame_append(&c->out, f, NULL, 0);
	if (rc == 0)
		conn_account(c, before);
	return rc;
}

void conn_error(struct conn *c, uint64_t id, int code, int fatal, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	if (c->state == CONN_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (!fatal && !conn_control_room(c, strlen(text) + 32)) {
		conn_overflow(c);
		return;
	}
	size_t before = buf_len(&c->out);
	if (frame_append_error(&c->out, id, code, fatal, text) == 0)
		conn_account(c, before);
	c->b->stats.errors++;
	if (fatal) {
		log_info(&c->b->log, "%s: %s", c->desc, text);
		conn_close(c, text);
	} else {
		log_debug(&c->b->log, "%s: refused: %s", c->desc, text);
	}
}

void conn_deliver(struct conn *c, uint64_t sid, const uint8_t *body, size_t len)
{
	struct broker *b = c->b;
	uint8_t prefix[2 * FRAME_VARINT_MAX + 1];
	size_t before = buf_len(&c->out);

	if (c->state != CONN_OPEN)
		return;
	size_t k = frame_sid_prefix(prefix, sid, len);
	/* past max-memory, only the connections holding more than a fair
	 * share lose messages: an up-to-date client is not punished for the
	 * backlog of others (the overshoot is at most the fair shares) */
	size_t fair = (size_t)(b->cfg.max_memory / (b->nconns ? b->nconns : 1));
	int over_own = before + k + len > b->cfg.max_pending;
	int over_all = b->pending + k + len > b->cfg.max_memory && before + k + len > fair;
	if (over_own || over_all) {
		int global = !over_own;
		if (b->cfg.slow_consumer == SLOW_DISCONNECT) {
			conn_drop_queued(c);
			conn_error(c, 0, IPCBUS__ERR_CODE__E_SLOW_CONSUMER, 1,
				   "slow consumer: %zu bytes pending (%s); disconnected", before,
				   global ? "max-memory reached" : "max-pending reached");
			b->stats.slow_consumers++;
			b->stats.dropped++;
			return;
		}
		if (!c->slow) {
			c->slow = 1;
			c->episode_drop = 0;
			b->stats.slow_consumers++;
			log_warn(&b->log, "slow consumer: %s has %zu bytes pending (%s); dropping its messages",
				 c->desc, before, global ? "max-memory reached" : "max-pending reached");
		}
		c->dropped++;
		c->episode_drop++;
		b->stats.dropped++;
		return;
	}
	if (buf_reserve(&c->out, k + len) < 0) {
		c->dropped++;
		b->stats.dropped++;
		return;
	}
	uint8_t *d = buf_wptr(&c->out);
	memcpy(d, prefix, k);
	memcpy(d + k, body, len);
	buf_commit(&c->out, k + len);
	c->msgs_out++;
	b->stats.msgs_out++;
	b->stats.bytes_out += k + len;
	conn_account(c, before);
}

void conn_sent(struct conn *c, size_t n)
{
	/* keep track of where the next whole frame starts: every byte in out
	 * belongs to a whole frame, so the walk never leaves the buffer */
	size_t next = c->out_next;
	const uint8_t *p = buf_rptr(&c->out);
	while (next < n) {
		uint64_t len = 0;
		int k = frame_varint_get(p + next, buf_len(&c->out) - next, &len);
		assert(k > 0);
		next += (size_t)k + (size_t)len;
	}
	c->out_next = next - n;
	buf_consume(&c->out, n);
	c->b->pending -= n;
	if (c->slow && buf_len(&c->out) <= c->b->cfg.max_pending / CONN_RECOVER_DIV) {
		c->slow = 0;
		log_warn(&c->b->log, "slow consumer: %s caught up; %llu messages were dropped",
			 c->desc, (unsigned long long)c->episode_drop);
	}
}

void conn_drop_queued(struct conn *c)
{
	size_t keep = c->out_next;
	size_t drop = buf_len(&c->out) - keep;
	c->out.wpos = c->out.rpos + keep;
	c->b->pending -= drop;
	if (keep == 0)
		buf_consume(&c->out, 0);
}

void conn_flush(struct conn *c)
{
	int rc = c->ops->flush(c);
	if (rc < 0) {
		if (c->state != CONN_CLOSING)
			conn_close(c, rc == -EPIPE || rc == -ECONNRESET ? "peer went away" : strerror(-rc));
		return;
	}
	if (rc == 0)
		buf_shrink(&c->out, 1 << 20);
	int want = rc == 1;
	if (want != c->want_write && c->state != CONN_CLOSING) {
		uint32_t ev = (c->b->stopping ? 0 : EPOLLIN) | (want ? EPOLLOUT : 0);
		if (loop_mod(c->b->loop, &c->watch, ev) == 0)
			c->want_write = want;
	}
}

void conn_frame(struct conn *c, const uint8_t *body, size_t len)
{
	struct frame f;

	if (c->state == CONN_CLOSING)
		return;
	c->last_rx = loop_now(c->b->loop);
	c->b->stats.bytes_in += len;
	if (frame_decode(body, len, &f) < 0) {
		conn_error(c, 0, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
			   "malformed frame (%zu bytes): not a valid ipcbus.Frame", len);
		return;
	}
	handle_frame(c, &f);
}

/* sid map: open addressing, linear probing, tombstones = (struct sub *)c */

/* Keyed: clients choose their sids, and with a known hash they could make
 * every probe walk one long cluster. */
static size_t conn_sid_hash(const struct conn *c, uint64_t sid)
{
	return (size_t)hash_u64(&c->b->hash_key, sid);
}

struct sub *conn_sub_find(struct conn *c, uint64_t sid)
{
	if (!c->subs_cap)
		return NULL;
	size_t mask = c->subs_cap - 1;
	for (size_t i = conn_sid_hash(c, sid) & mask;; i = (i + 1) & mask) {
		struct sub *s = c->subs[i];
		if (!s)
			return NULL;
		if (s != (struct sub *)c && s->sid == sid)
			return s;
	}
}

/* Rehash into a table at most half full of live entries (drops tombstones). */
static int conn_sub_rehash(struct conn *c)
{
	size_t cap = 8;
	while (cap < (c->nsubs + 1) * 4)
		cap *= 2;
	struct sub **t = calloc(cap, sizeof *t);
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < c->subs_cap; i++) {
		struct sub *s = c->subs[i];
		if (!s || s == (struct sub *)c)
			continue;
		size_t j = conn_sid_hash(c, s->sid) & (cap - 1);
		while (t[j])
			j = (j + 1) & (cap - 1);
		t[j] = s;
	}
	free(c->subs);
	c->subs = t;
	c->subs_cap = cap;
	c->subs_used = c->nsubs;
	return 0;
}

int conn_sub_add(struct conn *c, struct sub *s)
{
	/* live entries and tombstones together stay under half the table, so
	 * every probe sequence meets an empty slot */
	if ((c->subs_used + 1) * 2 > c->subs_cap) {
		int rc = conn_sub_rehash(c);
		if (rc < 0)
			return rc;
	}
	size_t mask = c->subs_cap - 1;
	size_t i = conn_sid_hash(c, s->sid) & mask;
	while (c->subs[i] && c->subs[i] != (struct sub *)c)
		i = (i + 1) & mask;
	if (!c->subs[i])
		c->subs_used++;
	c->subs[i] = s;
	c->nsubs++;
	return 0;
}

void conn_sub_del(struct conn *c, struct sub *s)
{
	size_t mask = c->subs_cap - 1;
	for (size_t i = conn_sid_hash(c, s->sid) & mask; c->subs[i]; i = (i + 1) & mask) {
		if (c->subs[i] == s) {
			c->subs[i] = (struct sub *)c; /* tombstone */
			c->nsubs--;
			return;
		}
	}
}
