/*
 * handle.c: one function per frame type, dispatched from one switch.
 *
 * Recoverable errors (a bad channel, a payload over the limit...) answer
 * with ERR carrying the frame's id and keep the connection; protocol
 * violations answer with a fatal ERR and close it.  Either way nothing else
 * is affected.
 *
 * Two rules hold for every frame type (docs/protocol.md, Fields): an absent
 * field and a field holding its zero value (0, empty bytes) mean the same,
 * so encoders that omit zero values (proto3) get the same answers; and a
 * frame carrying a field its type does not use is refused with E_INVALID,
 * before anything else is looked at.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bridge.h"
#include "broker.h"
#include "chan.h"
#include "conn.h"
#include "proto.h"
#include "route.h"
#include "router.h"
#include "transport.h"

/* Printable prefix of user bytes for error texts (channel names). */
static const char *handle_show(const struct frame_bytes *fb, char *out, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < fb->len && k + 5 < n; i++) {
		unsigned char ch = fb->p[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
			out[k++] = (char)ch;
		} else {
			static const char hex[] = "0123456789abcdef";
			out[k++] = '\\';
			out[k++] = 'x';
			out[k++] = hex[ch >> 4];
			out[k++] = hex[ch & 15];
		}
	}
	if (fb->len > 0 && k + 5 >= n && k >= 3)
		memcpy(out + k - 3, "...", 3);
	out[k] = 0;
	return out;
}

#define HANDLE_F(x) (1u << FRAME_F_##x)

/* The fields a frame type a client sends may carry (type and id always);
 * 0 for the types a client may not send. */
static unsigned handle_allowed(int type)
{
	unsigned always = HANDLE_F(TYPE) | HANDLE_F(ID);

	switch (type) {
	case IPCBUS__FRAME_TYPE__HELLO: return always | HANDLE_F(HELLO);
	case IPCBUS__FRAME_TYPE__PUB:
		return always | HANDLE_F(CHANNEL) | HANDLE_F(REPLY_TO) | HANDLE_F(PAYLOAD) |
		       HANDLE_F(HEADERS);
	case IPCBUS__FRAME_TYPE__SUB: return always | HANDLE_F(CHANNEL) | HANDLE_F(SID) | HANDLE_F(QUEUE);
	case IPCBUS__FRAME_TYPE__UNSUB: return always | HANDLE_F(SID);
	case IPCBUS__FRAME_TYPE__PING:
	case IPCBUS__FRAME_TYPE__PONG: return always;
	default: return 0;
	}
}

/* The fields f carries with a value other than their zero value. */
static unsigned handle_present(const struct frame *f)
{
	unsigned m = HANDLE_F(TYPE);

	if (f->id)
		m |= HANDLE_F(ID);
	if (f->sid)
		m |= HANDLE_F(SID);
	if (f->channel.len)
		m |= HANDLE_F(CHANNEL);
	if (f->reply_to.len)
		m |= HANDLE_F(REPLY_TO);
	if (f->payload.len)
		m |= HANDLE_F(PAYLOAD);
	if (f->queue.len)
		m |= HANDLE_F(QUEUE);
	if (f->nheaders || f->nheaders_incomplete)
		m |= HANDLE_F(HEADERS);
	if (f->hello.len)
		m |= HANDLE_F(HELLO);
	if (f->welcome.len)
		m |= HANDLE_F(WELCOME);
	if (f->error.len)
		m |= HANDLE_F(ERROR);
	if (f->origin.len)
		m |= HANDLE_F(ORIGIN);
	if (f->seq)
		m |= HANDLE_F(SEQ);
	if (f->hops)
		m |= HANDLE_F(HOPS);
	if (f->ngroups)
		m |= HANDLE_F(GROUPS);
	if (f->bridge.len)
		m |= HANDLE_F(BRIDGE);
	return m;
}

static const char *handle_field_name(unsigned bits)
{
	static const char *const names[] = {"?", "type", "id", "channel", "reply_to", "payload",
					    "headers", "sid", "queue", "hello", "welcome", "error",
					    "origin", "seq", "hops", "groups", "bridge"};
	for (unsigned i = 1; i < sizeof names / sizeof names[0]; i++)
		if (bits & (1u << i))
			return names[i];
	return names[0];
}

/* A datagram session: HELLO may come again (a WELCOME can be lost) and
 * SUB and UNSUB are acknowledged (a lost SUB would go unnoticed). */
static int handle_datagram(const struct conn *c)
{
	return c->listener && c->listener->tr->datagram;
}

/* The acknowledgement of a SUB or UNSUB over a datagram transport: PONG
 * with the frame's id. */
static void handle_ack(struct conn *c, const struct frame *f)
{
	if (!handle_datagram(c) || !f->has_id)
		return;
	struct frame pong = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = 1, .id = f->id};
	conn_send(c, &pong);
}

/* WELCOME, with this connection's limits. */
static int handle_welcome(struct conn *c, uint64_t id)
{
	struct broker *b = c->b;
	Ipcbus__Welcome w = IPCBUS__WELCOME__INIT;
	w.version = PROTO_VERSION;
	w.has_server_id = 1;
	w.server_id.data = (uint8_t *)b->server_id;
	w.server_id.len = strlen(b->server_id);
	w.has_max_payload = 1;
	w.max_payload = conn_max_payload(c);
	w.has_max_header_bytes = 1;
	w.max_header_bytes = conn_max_header_bytes(c);
	w.has_max_subscriptions = 1;
	w.max_subscriptions = (uint32_t)b->cfg.max_subscriptions;
	w.has_ping_interval_ms = 1;
	w.ping_interval_ms = (uint32_t)b->cfg.ping_interval;
	w.has_client_id = 1;
	w.client_id = c->id;
	if (c->link) {
		w.has_bridge = 1;
		w.bridge = 1;
	}
	if (c->lease_ms) {
		w.has_lease_ms = 1;
		w.lease_ms = (uint32_t)c->lease_ms;
	}
	return conn_send_welcome(c, id, &w);
}

static void handle_hello(struct conn *c, const struct frame *f)
{
	struct broker *b = c->b;
	Ipcbus__Hello *h = frame_unpack_hello(f);
	if (!h) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
			   "HELLO without a valid hello message");
		return;
	}
	if (h->version != PROTO_VERSION) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_VERSION, 2,
			   "protocol version %u is not supported: this broker speaks version %d",
			   h->version, PROTO_VERSION);
		ipcbus__hello__free_unpacked(h, NULL);
		return;
	}
	char why[128];
	if (auth_hello(c, h->has_token, h->token.data, h->token.len, why, sizeof why) < 0) {
		ipcbus__hello__free_unpacked(h, NULL);
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_AUTH, 2, "%s", why);
		return;
	}
	if (h->sysv && !(c->listener && c->listener->url.kind == URL_SYSV)) {
		ipcbus__hello__free_unpacked(h, NULL);
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
			   "HELLO names SysV queues (Hello.sysv) on a %s connection",
			   c->listener ? c->listener->tr->scheme : "dialed");
		return;
	}
	if (h->has_name) {
		size_t n = 0;
		for (size_t i = 0; i < h->name.len && n + 1 < sizeof c->name; i++) {
			unsigned char ch = h->name.data[i];
			c->name[n++] = ch >= 0x21 && ch < 0x7f ? (char)ch : '_';
		}
		c->name[n] = 0;
	}
	if (h->has_pid && !c->has_cred)
		c->pid = (pid_t)h->pid;
	if (h->has_bridge) {
		int code;
		if (handle_datagram(c) ||
		    bridge_hello(c, h->bridge.data, h->bridge.len, &code, why, sizeof why) < 0) {
			if (handle_datagram(c)) {
				code = IPCBUS__ERR_CODE__E_INVALID;
				snprintf(why, sizeof why, "a bridge does not go over a datagram transport");
			}
			ipcbus__hello__free_unpacked(h, NULL);
			conn_error(c, f->id, code, 2, "%s", why);
			return;
		}
	}
	ipcbus__hello__free_unpacked(h, NULL);
	conn_describe(c);

	if (handle_welcome(c, f->id) < 0) {
		conn_close(c, "out of memory");
		return;
	}
	c->state = CONN_OPEN;
	log_debug(&b->log, "%s connected", c->desc);
	if (c->link)
		bridge_welcomed(c);
}

/* The ERR for what route_check() found wrong with c's PUB f. */
static void handle_pub_refused(struct conn *c, const struct frame *f, enum route_check rc,
			       const struct frame_bytes *key)
{
	char show[80];

	switch (rc) {
	case ROUTE_OK:
		break;
	case ROUTE_BAD_CHANNEL:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_INVALID_CHANNEL, 0,
			   "invalid channel name '%s'", handle_show(&f->channel, show, sizeof show));
		break;
	case ROUTE_SYSTEM_CHANNEL:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_PERMISSION, 0,
			   "'%s' is reserved for the broker: clients may subscribe, not publish",
			   handle_show(&f->channel, show, sizeof show));
		break;
	case ROUTE_BAD_REPLY:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_INVALID_CHANNEL, 0,
			   "invalid reply channel '%s'", handle_show(&f->reply_to, show, sizeof show));
		break;
	case ROUTE_SYSTEM_REPLY:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_PERMISSION, 0,
			   "reply channel '%s' is reserved for the broker: no responder could publish there",
			   handle_show(&f->reply_to, show, sizeof show));
		break;
	case ROUTE_PAYLOAD_TOO_BIG:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_PAYLOAD_TOO_BIG, 0,
			   "payload of %zu bytes is over max-payload (%llu)", f->payload.len,
			   (unsigned long long)conn_max_payload(c));
		break;
	case ROUTE_HEADERS_TOO_BIG:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_HEADERS_TOO_BIG, 0,
			   "headers of %zu bytes are over max-header-bytes (%llu)", f->header_bytes,
			   (unsigned long long)conn_max_header_bytes(c));
		break;
	case ROUTE_HEADER_INCOMPLETE:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_INVALID, 0,
			   "a header without a key or a value (both are required)");
		break;
	case ROUTE_HEADER_KEY_RESERVED:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_PERMISSION, 0,
			   "header key '%s' is reserved: the only ipcbus- keys a client may send are "
			   "ipcbus-exit-status, ipcbus-signal and ipcbus-error",
			   handle_show(key, show, sizeof show));
		break;
	case ROUTE_HEADER_KEY_BAD:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_INVALID, 0,
			   "invalid header key '%s': 1 or more visible ASCII characters, not ':' or '='",
			   handle_show(key, show, sizeof show));
		break;
	}
}

static void handle_pub(struct conn *c, const struct frame *f)
{
	struct broker *b = c->b;
	char show[80];
	struct frame_bytes key = {0};

	enum route_check rc = route_check(f, conn_max_payload(c), conn_max_header_bytes(c), &key);
	if (rc != ROUTE_OK) {
		handle_pub_refused(c, f, rc, &key);
		return;
	}
	/* an empty reply_to is no reply_to (absent == zero value) */
	int request = f->reply_to.len > 0;
	struct frame plain;
	if (f->reply_to.set && !request) {
		/* the MSG must not carry the empty reply_to either */
		plain = *f;
		plain.reply_to.set = 0;
		f = &plain;
	}
	c->msgs_in++;
	b->stats.msgs_in++;
	struct message m = {.f = f};
	long n = route_publish(b, &m);
	/* nobody took it: no subscription here, and none reached over a
	 * link (interest learned from peers is in the router; a link whose
	 * patterns do not carry the channel does not take it) */
	if (n == 0 && request) {
		b->stats.no_responders++;
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_NO_RESPONDERS, 0, "no responders on '%s'",
			   handle_show(&f->channel, show, sizeof show));
	}
}

static char *handle_strdup(const struct frame_bytes *fb)
{
	char *s = malloc(fb->len + 1);
	if (s) {
		memcpy(s, fb->p, fb->len);
		s[fb->len] = 0;
	}
	return s;
}

static void handle_sub(struct conn *c, const struct frame *f)
{
	struct broker *b = c->b;
	char show[80];

	if (!f->sid) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_INVALID, 0,
			   "SUB without a sid (0 is not a subscription id)");
		return;
	}
	if (!f->channel.set ||
	    chan_valid_pattern((const char *)f->channel.p, f->channel.len) < 0) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_INVALID_CHANNEL, 0,
			   "invalid pattern '%s'", handle_show(&f->channel, show, sizeof show));
		return;
	}
	if (chan_is_inbox_wildcard((const char *)f->channel.p, f->channel.len)) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_PERMISSION, 0,
			   "pattern '%s' would read other clients' replies: a pattern on _INBOX "
			   "names its inbox (_INBOX.<id>...)",
			   handle_show(&f->channel, show, sizeof show));
		return;
	}
	/* an empty queue is no queue group (absent == zero value) */
	int group = f->queue.len > 0;
	if (group && !chan_valid_queue((const char *)f->queue.p, f->queue.len)) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_INVALID, 0,
			   "invalid queue group '%s' (1-255 of A-Z a-z 0-9 _ - .)",
			   handle_show(&f->queue, show, sizeof show));
		return;
	}
	struct sub *old = conn_sub_find(c, f->sid);
	if (old && handle_datagram(c) && old->pattern_len == f->channel.len &&
	    memcmp(old->pattern, f->channel.p, f->channel.len) == 0 &&
	    (group ? old->queue && strlen(old->queue) == f->queue.len &&
			     memcmp(old->queue, f->queue.p, f->queue.len) == 0
		   : !old->queue)) {
		handle_ack(c, f); /* the same SUB again: its ack was lost */
		return;
	}
	if (old) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_DUPLICATE_SID, 0,
			   "subscription id %llu is in use", (unsigned long long)f->sid);
		return;
	}
	if (c->nsubs >= b->cfg.max_subscriptions) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_TOO_MANY_SUBS, 0,
			   "over max-subscriptions (%llu)", (unsigned long long)b->cfg.max_subscriptions);
		return;
	}
	struct sub *s = calloc(1, sizeof *s);
	if (!s)
		goto nomem;
	s->ops = &conn_sub_ops;
	s->owner = c;
	s->sid = f->sid;
	s->pattern = handle_strdup(&f->channel);
	s->pattern_len = f->channel.len;
	s->queue = group ? handle_strdup(&f->queue) : NULL;
	if (!s->pattern || (group && !s->queue))
		goto fail;
	if (route_sub_add(b, s) < 0)
		goto fail;
	if (conn_sub_add(c, s) < 0) {
		route_sub_remove(b, s);
		goto fail;
	}
	handle_ack(c, f);
	return;
fail:
	free(s->pattern);
	free(s->queue);
	free(s);
nomem:
	log_error(&b->log, "%s: out of memory for a subscription", c->desc);
	conn_error(c, f->id, IPCBUS__ERR_CODE__E_TOO_MANY_SUBS, 0, "broker out of memory");
}

static void handle_unsub(struct conn *c, const struct frame *f)
{
	if (!f->sid) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_INVALID, 0,
			   "UNSUB without a sid (0 is not a subscription id)");
		return;
	}
	struct sub *s = conn_sub_find(c, f->sid);
	if (!s && handle_datagram(c)) {
		handle_ack(c, f); /* gone already: a repeated UNSUB */
		return;
	}
	if (!s) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_UNKNOWN_SID, 0,
			   "no subscription with id %llu", (unsigned long long)f->sid);
		return;
	}
	conn_sub_del(c, s);
	route_sub_remove(c->b, s);
	conn_sub_free(s);
	handle_ack(c, f);
}

static void handle_ping(struct conn *c, const struct frame *f)
{
	struct frame pong = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = f->has_id, .id = f->id};
	conn_send(c, &pong);
}

static void handle_pong(struct conn *c, const struct frame *f)
{
	(void)f;
	c->ping_sent = 0;
}

void handle_frame(struct conn *c, const struct frame *f)
{
	if (c->state == CONN_HELLO && f->type != IPCBUS__FRAME_TYPE__HELLO) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_NO_HELLO, 2,
			   "%s frame before HELLO: a connection starts with HELLO",
			   frame_type_name(f->type));
		return;
	}
	if (f->type == IPCBUS__FRAME_TYPE__HELLO && c->state != CONN_HELLO) {
		if (handle_datagram(c))
			handle_welcome(c, f->id); /* its WELCOME was lost */
		else
			conn_error(c, f->id, IPCBUS__ERR_CODE__E_PROTOCOL, 2, "HELLO sent twice");
		return;
	}
	unsigned allowed = handle_allowed(f->type);
	if (!allowed) {
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
			   "a client may not send %s frames (type %d)", frame_type_name(f->type),
			   f->type);
		return;
	}
	unsigned extra = handle_present(f) & ~allowed;
	if (extra) {
		/* before WELCOME every refusal is fatal: a connection that is
		 * not welcomed holds a max-connections place, and a second
		 * try would restart its HELLO deadline */
		int hello = f->type == IPCBUS__FRAME_TYPE__HELLO;
		conn_error(c, f->id, hello ? IPCBUS__ERR_CODE__E_PROTOCOL : IPCBUS__ERR_CODE__E_INVALID,
			   hello ? 2 : 0, "%s carries `%s`, a field %s frames do not use",
			   frame_type_name(f->type), handle_field_name(extra), frame_type_name(f->type));
		return;
	}
	switch (f->type) {
	case IPCBUS__FRAME_TYPE__HELLO: handle_hello(c, f); break;
	case IPCBUS__FRAME_TYPE__PUB: handle_pub(c, f); break;
	case IPCBUS__FRAME_TYPE__SUB: handle_sub(c, f); break;
	case IPCBUS__FRAME_TYPE__UNSUB: handle_unsub(c, f); break;
	case IPCBUS__FRAME_TYPE__PING: handle_ping(c, f); break;
	case IPCBUS__FRAME_TYPE__PONG: handle_pong(c, f); break;
	}
}
