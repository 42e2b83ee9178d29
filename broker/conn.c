/*
 * conn.c: a client connection: its buffers and what bounds them
 * (max-pending per connection, max-memory for all, the biggest backlogs
 * paying first), errors, and the close in steps.  Its subscriptions by
 * sid are conn_sub.c's.
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
#include "outq.h"
#include "bridge.h"
#include "proto.h"
#include "route.h"
#include "transport.h"

/* Control frames (ERR, PONG, WELCOME) may go this far past max-pending, so
 * that a full connection can still be told why it is being closed. */
#define CONN_CONTROL_SLACK (64 << 10)
/* A drop episode ends when the output drained below this share of max. */
#define CONN_RECOVER_DIV 2
/* At most one slow-consumer episode per client is logged in this time; the
 * next line that is logged counts the ones in between. */
#define CONN_SLOW_LOG_MS 10000
/* Backlogs dropped at most per delivery to make room under max-memory. */
#define CONN_EVICT_MAX 4

size_t conn_frame_max(const struct conn *c)
{
	const struct conf *cfg = &c->b->cfg;
	size_t max = (size_t)(cfg->max_payload + cfg->max_header_bytes + 1024);
	if (c->link)
		max += CONN_LINK_SLACK; /* a forwarded message's origin and groups */
	if (c->listener && c->listener->frame_max && c->listener->frame_max < max)
		max = c->listener->frame_max;
	return max;
}

uint64_t conn_max_payload(const struct conn *c)
{
	uint64_t v = c->b->cfg.max_payload;
	if (c->listener && c->listener->max_payload && c->listener->max_payload < v)
		v = c->listener->max_payload;
	return v;
}

uint64_t conn_max_header_bytes(const struct conn *c)
{
	uint64_t v = c->b->cfg.max_header_bytes;
	if (c->listener && c->listener->max_header_bytes && c->listener->max_header_bytes < v)
		v = c->listener->max_header_bytes;
	return v;
}

void conn_describe(struct conn *c)
{
	const char *sp = c->name[0] ? " " : "";
	const char *who = c->outbound ? "peer" : "client"; /* dialed: a broker */
	unsigned long long id = (unsigned long long)c->id;

	if (c->has_cred)
		snprintf(c->desc, sizeof c->desc, "%s %llu (%s%spid %d uid %u)", who, id, c->name,
			 sp, (int)c->pid, (unsigned)c->uid);
	else if (c->addr[0] && c->pid)
		snprintf(c->desc, sizeof c->desc, "%s %llu (%s%s%s, pid %d said the client)", who,
			 id, c->name, sp, c->addr, (int)c->pid);
	else if (c->addr[0])
		snprintf(c->desc, sizeof c->desc, "%s %llu (%s%s%s)", who, id, c->name, sp,
			 c->addr);
	else if (c->pid)
		snprintf(c->desc, sizeof c->desc, "%s %llu (%s%spid %d, said the client)", who, id,
			 c->name, sp, (int)c->pid);
	else
		snprintf(c->desc, sizeof c->desc, "%s %llu (%s)", who, id,
			 c->name[0] ? c->name : "unknown peer");
}

void conn_dialed(struct conn *c)
{
	c->dialing = 0;
	log_debug(&c->b->log, "%s: connected", c->desc);
	if (c->dialed)
		c->dialed(c);
	if (c->state == CONN_CLOSING)
		return;
	/* what was queued while dialing waited (conn_flush): now it goes */
	if (c->out.len)
		broker_mark_dirty(c->b, c);
	conn_watch(c);
}

struct conn *conn_new(struct broker *b, int fd, const struct conn_ops *ops, struct listener *l)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->b = b;
	c->ops = ops;
	c->listener = l;
	c->fd = fd;
	c->id = ++b->next_conn_id;
	c->state = CONN_HELLO;
	c->last_rx = loop_now(b->loop);
	buf_init(&c->in, conn_frame_max(c) + FRAME_VARINT_MAX + (64 << 10));
	c->in.acct = &b->memory;
	outq_init(&c->out, &b->memory);
	conn_describe(c);
	return c;
}

void conn_ready(struct conn *c, int readable, int writable)
{
	if (c->state == CONN_CLOSING) {
		/* input is read and discarded; the rest of the output goes
		 * out in before-sleep (broker_reap) */
		if (readable)
			c->ops->read_ready(c);
		return;
	}
	if (writable)
		conn_flush(c);
	if (readable && c->state != CONN_CLOSING)
		c->ops->read_ready(c);
}

/* ---- the events watched ---- */

/* What c waits for: input unless paused or stopping (a closing connection
 * still reads, to discard), output while some is left. */
void conn_watch(struct conn *c)
{
	struct broker *b = c->b;
	int in = !b->stopping && !c->in_paused && !c->eof;
	int out = c->state == CONN_CLOSING ? c->out.len > 0 : c->want_write;
	c->ops->watch(c, in, out);
}

static void conn_unpause(struct conn *c)
{
	if (!c->in_paused)
		return;
	for (struct conn **pp = &c->b->paused; *pp; pp = &(*pp)->paused_next) {
		if (*pp == c) {
			*pp = c->paused_next;
			break;
		}
	}
	c->in_paused = 0;
	c->paused_next = NULL;
}

/* Every few milliseconds while some connection waits for memory: let them
 * read again (each pauses again if there is still none). */
static void conn_resume(void *arg)
{
	struct broker *b = arg;
	while (b->paused) {
		struct conn *c = b->paused;
		conn_unpause(c);
		conn_watch(c);
	}
}

static void conn_pause(struct conn *c)
{
	struct broker *b = c->b;
	if (c->in_paused)
		return;
	c->in_paused = 1;
	c->paused_next = b->paused;
	b->paused = c;
	conn_watch(c);
	if (!b->resume.armed)
		loop_timer_set(b->loop, &b->resume, 10, conn_resume, b);
}

/* ---- who pays past max-memory ----
 *
 * broker.stalled lists the connections whose socket was found full with
 * output left, the longest stalled first.  Past max-memory they pay: the
 * messages of their unsent backlog are dropped (the other frames stay, see
 * conn_keep_control), or they are disconnected, the longest stalled
 * first, before a connection that keeps up loses anything.  A stalled
 * connection whose backlog was dropped leaves the list but stays stalled
 * (stall_since) until its socket drains; when it queues again it goes back
 * to the front, so it cannot look younger than a reader that keeps up. */

static void conn_stall_unlink(struct conn *c)
{
	struct broker *b = c->b;

	if (!c->stall_linked)
		return;
	if (c->stall_prev)
		c->stall_prev->stall_next = c->stall_next;
	else
		b->stalled = c->stall_next;
	if (c->stall_next)
		c->stall_next->stall_prev = c->stall_prev;
	else
		b->stalled_tail = c->stall_prev;
	c->stall_next = c->stall_prev = NULL;
	c->stall_linked = 0;
}

static void conn_stall_link(struct conn *c, int front)
{
	struct broker *b = c->b;

	if (c->stall_linked)
		return;
	c->stall_linked = 1;
	if (front) {
		c->stall_prev = NULL;
		c->stall_next = b->stalled;
		if (b->stalled)
			b->stalled->stall_prev = c;
		else
			b->stalled_tail = c;
		b->stalled = c;
	} else {
		c->stall_next = NULL;
		c->stall_prev = b->stalled_tail;
		if (b->stalled_tail)
			b->stalled_tail->stall_next = c;
		else
			b->stalled = c;
		b->stalled_tail = c;
	}
}

void conn_free(struct conn *c)
{
	if (c->link)
		bridge_conn_gone(c);
	conn_sub_clear(c);
	free(c->subs);
	conn_unpause(c);
	conn_stall_unlink(c);
	c->b->pending -= c->out.len;
	buf_fini(&c->in);
	outq_fini(&c->out);
	c->ops->close(c);
	free(c);
}

void conn_close(struct conn *c, const char *why)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	c->closed_at = loop_now(c->b->loop);
	conn_unpause(c);
	if (c->link)
		bridge_conn_closed(c, why);
	if (c->dialing) {
		/* nobody to tell yet: freed in this turn's before-sleep; a
		 * failed dial is news to the operator (why names the cause) */
		c->eof = 1;
		if (c->link) /* bridge.c logs its failures, rate-limited */
			log_debug(&c->b->log, "%s closed: %s", c->desc, why);
		else
			log_info(&c->b->log, "%s closed: %s", c->desc, why);
	} else if (c->dropped)
		log_info(&c->b->log, "%s closed: %s (%llu messages dropped as a slow consumer)",
			 c->desc, why, (unsigned long long)c->dropped);
	else
		log_debug(&c->b->log, "%s closed: %s", c->desc, why);
	broker_mark_closing(c->b, c);
	conn_watch(c);
}

/* Output changed from `before` bytes: keep the totals and the ranking, and
 * get it written in before-sleep. */
static void conn_account(struct conn *c, size_t before)
{
	size_t after = c->out.len;
	c->b->pending += after;
	c->b->pending -= before;
	if (c->b->memory > c->b->memory_peak)
		c->b->memory_peak = c->b->memory;
	/* a stalled connection whose backlog was dropped comes back to the
	 * front once it holds a whole chunk again: something to free */
	if (after > before && c->stall_since && c->out.head != c->out.tail)
		conn_stall_link(c, 1);
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
	size_t have = c->out.len;

	if (have + n > cfg->max_pending + CONN_CONTROL_SLACK / 2)
		return 0;
	if (c->b->memory + n > cfg->max_memory && have + n > CONN_CONTROL_SLACK / 2)
		return 0;
	return 1;
}

/* Queue the frame encoded in the broker's control scratch, and empty it. */
int conn_push_ctl(struct conn *c)
{
	struct buf *ctl = &c->b->ctl;
	size_t before = c->out.len;
	int rc = outq_push(&c->out, buf_rptr(ctl), buf_len(ctl));
	buf_consume(ctl, buf_len(ctl));
	if (rc == 0)
		conn_account(c, before);
	return rc;
}

/* Queue an ERR; no checks. */
static void conn_push_error(struct conn *c, uint64_t id, int code, int fatal, const char *text)
{
	if (frame_append_error(&c->b->ctl, id, code, fatal, text) == 0 && conn_push_ctl(c) == 0)
		c->b->stats.errors++;
}

/* Drop what c has not started to read, but what keep keeps (NULL: all);
 * returns the frames dropped. */
static size_t conn_drop_queued(struct conn *c, outq_keep_fn *keep)
{
	size_t before = c->out.len;
	size_t n = outq_drop_unsent_if(&c->out, keep, NULL);
	conn_account(c, before);
	return n;
}

/* What an eviction keeps of a backlog: every frame but the messages.  The
 * others are few and small, and each matters: a WELCOME, PONG or ERR
 * answers the peer, which may wait for it for ever, and a bridge link's
 * SUB, UNSUB and BRIDGE are the peer broker's only view of interest and
 * of the spanning tree here, wrong for good once one is lost. */
static int conn_keep_control(const uint8_t *body, size_t len, void *arg)
{
	(void)arg;
	return frame_type_of(body, len) != IPCBUS__FRAME_TYPE__MSG;
}

/* The client does not read what it asked for: tell it (in the rest of the
 * slack, after dropping what it has not started reading) and close.  All
 * of it goes, control frames too: they are what it does not read, and
 * once closed only the ERR that says why matters. */
static void conn_overflow(struct conn *c)
{
	size_t pending = c->out.len;
	size_t dropped = conn_drop_queued(c, NULL);
	conn_push_error(c, 0, IPCBUS__ERR_CODE__E_SLOW_CONSUMER, 1,
			"not reading the broker's answers; disconnected");
	c->b->stats.slow_consumers++;
	log_warn(&c->b->log,
		 "%s does not read its answers (%zu bytes pending, %zu frames dropped); disconnected",
		 c->desc, pending, dropped);
	conn_close(c, "not reading its answers");
}

int conn_send(struct conn *c, const struct frame *f)
{
	size_t n = frame_size(f, NULL, 0);
	size_t total = frame_varint_len(n) + n;

	if (!conn_control_room(c, total)) {
		conn_overflow(c);
		return -ENOBUFS;
	}
	size_t before = c->out.len;
	uint8_t *p = outq_reserve(&c->out, total);
	if (!p)
		return -ENOMEM;
	size_t k = frame_varint_put(p, n);
	frame_encode(f, NULL, 0, p + k);
	outq_commit(&c->out, total);
	conn_account(c, before);
	return 0;
}

int conn_send_welcome(struct conn *c, uint64_t id, const Ipcbus__Welcome *w)
{
	int rc = frame_append_welcome(&c->b->ctl, id, w);
	if (rc < 0) {
		buf_consume(&c->b->ctl, buf_len(&c->b->ctl));
		return rc;
	}
	return conn_push_ctl(c);
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
	conn_push_error(c, id, code, fatal, text);
	if (fatal) {
		/* a bad token was logged by auth.c, at most once a second */
		if (code != IPCBUS__ERR_CODE__E_AUTH)
			log_info(&c->b->log, "%s: %s", c->desc, text);
		conn_close(c, text);
	} else {
		log_debug(&c->b->log, "%s: refused: %s", c->desc, text);
	}
}

/* ---- slow consumers ---- */

/* A drop episode begins: logged at most once per CONN_SLOW_LOG_MS per
 * client, the next logged line counting what was not. */
static void conn_episode_begin(struct conn *c, const char *why)
{
	struct broker *b = c->b;
	uint64_t now = loop_now(b->loop);

	c->slow = 1;
	c->episode_drop = 0;
	b->stats.slow_consumers++;
	if (c->slow_log_at && now - c->slow_log_at < CONN_SLOW_LOG_MS) {
		c->slow_logged = 0;
		c->quiet_episodes++;
		return;
	}
	if (c->quiet_episodes)
		log_warn(&b->log,
			 "slow consumer: %s has %zu bytes pending (%s); dropping its messages (%llu more episodes and %llu messages dropped since the last report)",
			 c->desc, c->out.len, why, (unsigned long long)c->quiet_episodes,
			 (unsigned long long)c->quiet_dropped);
	else
		log_warn(&b->log, "slow consumer: %s has %zu bytes pending (%s); dropping its messages",
			 c->desc, c->out.len, why);
	c->slow_log_at = now;
	c->slow_logged = 1;
	c->quiet_episodes = c->quiet_dropped = 0;
}

static void conn_episode_end(struct conn *c)
{
	c->slow = 0;
	if (c->slow_logged)
		log_warn(&c->b->log, "slow consumer: %s caught up; %llu messages were dropped", c->desc,
			 (unsigned long long)c->episode_drop);
	else
		c->quiet_dropped += c->episode_drop;
}

/* `slow-consumer disconnect`: a consumer that does not keep up will not
 * read a backlog either: what is queued for it is dropped and counted, and
 * the ERR goes out at once.  Control frames go too (an eviction keeps
 * them): the connection closes behind the ERR, which is all it still
 * needs to hear, and a bridge link is never disconnected this way. */
static void conn_disconnect_slow(struct conn *c, const char *why, size_t extra)
{
	struct broker *b = c->b;
	size_t pending = c->out.len;
	size_t dropped = conn_drop_queued(c, NULL) + extra;
	char text[160];

	c->dropped += dropped;
	b->stats.dropped += dropped;
	b->stats.slow_consumers++;
	snprintf(text, sizeof text,
		 "slow consumer: %zu bytes pending (%s); disconnected, %zu messages dropped", pending,
		 why, dropped);
	log_warn(&b->log, "%s: %s", c->desc, text);
	conn_push_error(c, 0, IPCBUS__ERR_CODE__E_SLOW_CONSUMER, 1, text);
	conn_close(c, "slow consumer");
}

/* c cannot take one more message (why): drop it, or disconnect c. */
static void conn_slow(struct conn *c, const char *why)
{
	struct broker *b = c->b;

	if (b->cfg.slow_consumer == SLOW_DISCONNECT && !c->link) {
		conn_disconnect_slow(c, why, 1);
		return;
	}
	if (!c->slow)
		conn_episode_begin(c, why);
	c->dropped++;
	c->episode_drop++;
	b->stats.dropped++;
}

/* Max-memory is reached and v has been stalled longest: it pays for its
 * backlog, not the connections that keep up.  Returns 1 when memory was
 * freed. */
static int conn_evict(struct conn *v)
{
	struct broker *b = v->b;
	size_t held = b->memory;

	b->stats.evictions++;
	if (b->cfg.slow_consumer == SLOW_DISCONNECT && !v->link) {
		conn_disconnect_slow(v, "max-memory reached", 0);
		return b->memory < held;
	}
	if (!v->slow)
		conn_episode_begin(v, "max-memory reached");
	/* the messages, which are what holds the memory; v stays open, so
	 * the rest must reach it */
	size_t dropped = conn_drop_queued(v, conn_keep_control);
	v->dropped += dropped;
	v->episode_drop += dropped;
	b->stats.dropped += dropped;
	return b->memory < held;
}

/* Free memory for `need` more bytes on behalf of c by dropping the
 * backlogs of connections stalled longer than c.  1 when there is room
 * now. */
static int conn_make_room(struct conn *c, size_t need)
{
	struct broker *b = c->b;
	size_t max = (size_t)b->cfg.max_memory;
	int evicted = 0, c_dirty = 0;

	while (b->memory + need > max && evicted < CONN_EVICT_MAX) {
		struct conn *v = b->stalled;
		if (!v) {
			/* none known stalled yet: write what the others
			 * queued this turn; those whose socket is full are
			 * stalled then (each is taken off the flush list, so
			 * this is O(1) per connection made dirty) */
			struct conn *d = broker_pop_dirty(b);
			if (!d)
				break;
			if (d == c)
				c_dirty = 1; /* c's turn comes in before-sleep */
			else if (d->state != CONN_CLOSING)
				conn_flush(d);
			continue;
		}
		if (v == c)
			break; /* c is the longest stalled: c pays */
		if (outq_unsent(&v->out) == 0) {
			/* nothing left to drop there (dropped before, or
			 * only a frame being written): off the list until it
			 * queues again */
			conn_stall_unlink(v);
			continue;
		}
		conn_evict(v);
		conn_stall_unlink(v);
		evicted++;
	}
	if (c_dirty)
		broker_mark_dirty(b, c);
	return b->memory + need <= max;
}

/* Over a bound: before judging c slow, write what it has (a reader that
 * keeps up empties its queue between two read batches of a publisher).
 * Not again in a turn where its socket was found full, so a stalled
 * consumer costs one failed write per turn, not one per message.  -1 when
 * that closed c. */
static int conn_flush_early(struct conn *c)
{
	if (c->flush_turn == c->b->turn)
		return 0;
	conn_flush(c);
	if (c->want_write)
		c->flush_turn = c->b->turn;
	return c->state == CONN_CLOSING ? -1 : 0;
}

void conn_deliver(struct conn *c, uint64_t sid, const uint8_t *body, size_t len)
{
	uint8_t prefix[2 * FRAME_VARINT_MAX + 1];

	if (c->state != CONN_OPEN)
		return;
	size_t k = frame_sid_prefix(prefix, sid, len);
	conn_deliver_frame(c, prefix, k, body, len);
}

void conn_deliver_frame(struct conn *c, const uint8_t *prefix, size_t k, const uint8_t *body,
			size_t len)
{
	struct broker *b = c->b;
	const struct conf *cfg = &b->cfg;

	if (c->state != CONN_OPEN)
		return;
	size_t n = k + len;
	if (n > conn_frame_max(c) + FRAME_VARINT_MAX) {
		/* more than the medium carries (a UDP subscriber, a message
		 * from a stream publisher): lost for this one, and counted */
		c->dropped++;
		b->stats.dropped++;
		return;
	}
	if (c->out.len + n > cfg->max_pending && conn_flush_early(c) < 0)
		return;
	if (c->out.len + n > cfg->max_pending) {
		conn_slow(c, "max-pending reached");
		return;
	}
	size_t grow = outq_growth(&c->out, n);
	if (b->memory + grow > cfg->max_memory && !conn_make_room(c, grow)) {
		/* c holds one of the biggest backlogs: it pays, unless it can
		 * write some of it now */
		if (conn_flush_early(c) < 0)
			return;
		if (b->memory + grow > cfg->max_memory && !conn_make_room(c, grow)) {
			conn_slow(c, "max-memory reached");
			return;
		}
	}
	size_t before = c->out.len;
	uint8_t *d = outq_reserve(&c->out, n);
	if (!d) {
		c->dropped++;
		b->stats.dropped++;
		return;
	}
	memcpy(d, prefix, k);
	memcpy(d + k, body, len);
	outq_commit(&c->out, n);
	c->msgs_out++;
	b->stats.msgs_out++;
	b->stats.bytes_out += n;
	conn_account(c, before);
}

void conn_sent(struct conn *c, size_t n)
{
	outq_consume(&c->out, n);
	c->b->pending -= n;
	if (c->out.len == 0 && c->stall_since) {
		c->stall_since = 0;
		conn_stall_unlink(c);
	}
	if (c->slow && c->out.len <= c->b->cfg.max_pending / CONN_RECOVER_DIV)
		conn_episode_end(c);
}

int conn_in_reserve(struct conn *c, size_t n)
{
	struct buf *in = &c->in;
	struct broker *b = c->b;

	if (buf_room(in) >= n)
		return 0;
	size_t want = buf_len(in) + n;
	if (want > CONN_IN_FREE + 4096 && want > in->cap) {
		size_t grow = want - in->cap;
		if (b->memory + grow > b->cfg.max_memory && !conn_make_room(c, grow)) {
			conn_pause(c);
			return -ENOBUFS;
		}
	}
	int rc = buf_reserve(in, n);
	if (b->memory > b->memory_peak)
		b->memory_peak = b->memory;
	return rc;
}

void conn_flush(struct conn *c)
{
	if (c->dialing)
		return; /* nothing but the connect and handshake: conn_dialed() */
	int rc = c->ops->flush(c);
	if (rc < 0) {
		if (c->state != CONN_CLOSING)
			conn_close(c, rc == -EPIPE || rc == -ECONNRESET ? "peer went away" : strerror(-rc));
		c->eof = 1;
		return;
	}
	int want = rc == 1;
	if (want && !c->stall_since) {
		c->stall_since = loop_now(c->b->loop);
		conn_stall_link(c, 0);
	}
	if (want != c->want_write && c->state != CONN_CLOSING) {
		c->want_write = want;
		conn_watch(c);
	}
}

/* Once a second (the keepalive tick): an idle connection gives back its
 * buffers. */
void conn_trim(struct conn *c)
{
	if (c->out.len == 0)
		outq_trim(&c->out);
	if (buf_len(&c->in) == 0)
		buf_shrink(&c->in, 0);
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
	if (c->link)
		bridge_frame(c, &f);
	else
		handle_frame(c, &f);
}
