/*
 * bridge_line.c: how bridge links come and go (see bridge_int.h; the
 * protocol is docs/protocol.md, Bridges).
 *
 * A `bridge` line dials its peer, and dials again after a failure or the
 * link's end with a jittered backoff (BRIDGE_BACKOFF_MIN_MS doubling to
 * BRIDGE_BACKOFF_MAX_MS).  A link is a connection whose HELLO named a
 * bridge (the peer dialed us: bridge_hello) or one we dialed (the peer's
 * WELCOME names it); once the peer's id is known it takes a slot in the
 * interest table's bits and joins the tree (bridge.c).  Two links to one
 * peer never stay: the duplicate-link rule in link_up() keeps the same one
 * on both ends.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge_int.h"
#include "broker.h"
#include "conn.h"
#include "hash.h"
#include "proto.h"
#include "transport.h"

static struct bridge_line *bridge_line_for(struct broker *b, const uint8_t *peer, size_t len)
{
	struct bridge *br = b->bridge;
	for (size_t i = 0; i < br->nlines; i++) {
		struct bridge_line *ln = &br->lines[i];
		if (ln->peer_len == len && memcmp(ln->peer, peer, len) == 0)
			return ln;
	}
	return NULL;
}

/* The link to peer that is up, if any. */
static struct link *bridge_link_to(struct broker *b, const uint8_t *peer, size_t len)
{
	struct bridge *br = b->bridge;
	for (int i = 0; i < INTEREST_LINKS; i++) {
		struct link *l = br->slots[i];
		if (l && l->state == LINK_UP && l->peer_len == len && memcmp(l->peer, peer, len) == 0)
			return l;
	}
	return NULL;
}

/* l knows its peer: take a slot, send our view of the tree. */
static void link_up(struct link *l)
{
	struct broker *b = l->b;
	struct bridge *br = b->bridge;
	size_t self_len;
	const uint8_t *self = bridge_self(b, &self_len);

	/* two links to one peer: when each side dialed one, the one dialed
	 * by the smaller id stays, on both sides alike; when one side
	 * dialed both, the newer stays (that side dials again only once it
	 * gave the first up: a keepalive that ran out there, a partition) */
	struct link *other = bridge_link_to(b, l->peer, l->peer_len);
	if (other) {
		int we_smaller = bridge_idcmp(self, self_len, l->peer, l->peer_len) < 0;
		struct link *loser = l->dialed == other->dialed ? other
				     : (l->dialed == we_smaller) ? other : l;
		if (l->dialed == other->dialed)
			log_info(&b->log, "bridge: two links to %s: closing the older (duplicate link)",
				 l->name);
		else
			log_info(&b->log,
				 "bridge: two links to %s: closing the one %s dialed (duplicate link)",
				 l->name, loser->dialed ? "this broker" : "the peer");
		loser->duplicate = 1;
		conn_close(loser->c, "duplicate link");
		if (loser == l) {
			/* the peer's link stays; it came before this dial named
			 * the peer, so it has the default patterns: from now
			 * on this line's bound it, after a reset exchange */
			if (l->dialed && l->line && !other->line) {
				other->line = l->line;
				if (other->active) {
					bridge_set_active(other, 0);
					bridge_tree(b);
				}
			}
			return;
		}
	}
	int slot = -1;
	for (int i = 0; i < INTEREST_LINKS && slot < 0; i++)
		if (!br->slots[i])
			slot = i;
	if (slot < 0) {
		conn_error(l->c, 0, IPCBUS__ERR_CODE__E_MAX_CONNECTIONS, 1,
			   "this broker has %d bridge links already", INTEREST_LINKS);
		return;
	}
	l->slot = slot;
	br->slots[slot] = l;
	l->state = LINK_UP;
	l->up_at = loop_now(b->loop);
	if (!l->line)
		l->line = bridge_line_for(b, l->peer, l->peer_len);
	if (l->line) {
		l->line->backoff = 0;
		l->line->fails = 0;
	}
	l->pmax_payload = l->pmax_header_bytes = 0; /* until the peer says */
	if (l->dialed)
		log_info(&b->log, "bridge %s: link to %s up", l->line->shown, l->name);
	else
		log_info(&b->log, "bridge from %s (%s) up", l->c->addr[0] ? l->c->addr : l->c->desc,
			 l->name);
	link_send_bridge(l, 0);
	bridge_tree(b);
}

static void bridge_line_retry(struct bridge_line *ln);

/* l is over: its interest and its place in the tree go. */
static void link_down(struct link *l, const char *why)
{
	struct broker *b = l->b;
	struct bridge *br = b->bridge;

	if (l->state == LINK_DOWN)
		return;
	int was_up = l->state == LINK_UP;
	l->state = LINK_DOWN;
	if (was_up) {
		bridge_set_active(l, 0);
		br->slots[l->slot] = NULL;
		if (br->parent == l)
			br->parent = NULL, br->root_len = 0; /* recomputed below */
		if (l->duplicate) /* the peer is still linked */
			log_debug(&b->log, "bridge: the duplicate link to %s is closed", l->name);
		else
			log_info(&b->log,
				 "bridge link to %s down (%s): %llu messages in, %llu out, %llu dropped",
				 l->name, why, (unsigned long long)l->msgs_in,
				 (unsigned long long)l->msgs_out, (unsigned long long)l->dropped);
		bridge_tree(b);
	}
	/* redial: our own line, and a line to that peer whose dial
	 * stood down for the peer's link (the line an accepted link was
	 * matched to by the peer's id, l->line, too; our own line is armed
	 * now, so it is not retried twice) */
	if (l->dialed && l->line) {
		l->line->link = NULL;
		bridge_line_retry(l->line);
	}
	if (was_up && l->peer_len) {
		for (size_t i = 0; i < br->nlines; i++) {
			struct bridge_line *ln = &br->lines[i];
			if (!ln->link && ln->peer_len == l->peer_len &&
			    memcmp(ln->peer, l->peer, l->peer_len) == 0 && !ln->timer.armed)
				bridge_line_retry(ln);
		}
	}
}

void bridge_routed(struct broker *b)
{
	struct bridge *br = b->bridge;
	while (br && br->closed) {
		struct link *l = br->closed;
		br->closed = l->closed_next;
		l->closed_queued = 0;
		link_down(l, l->closed_why);
	}
}

void bridge_conn_closed(struct conn *c, const char *why)
{
	struct link *l = c->link;
	if (c->b->routing && l->state == LINK_UP) {
		/* route_publish() is looping over subscriptions, maybe this
		 * link's: it goes down when the loop is over */
		if (!l->closed_queued) {
			snprintf(l->closed_why, sizeof l->closed_why, "%s", why);
			l->closed_queued = 1;
			l->closed_next = c->b->bridge->closed;
			c->b->bridge->closed = l;
		}
		return;
	}
	if (l->dialed && l->state == LINK_WELCOME && !l->duplicate) {
		struct bridge_line *ln = l->line;
		if (ln->fails++ == 0 || ln->fails - ln->fails_logged >= 100) {
			ln->fails_logged = ln->fails;
			log_warn(&c->b->log, "bridge %s: %s (retrying, %llu failure(s) in a row)",
				 ln->shown, why, (unsigned long long)ln->fails);
		}
	}
	link_down(l, why);
}

void bridge_conn_gone(struct conn *c)
{
	struct link *l = c->link;
	if (l->closed_queued) { /* not routing any more: never, but be sure */
		struct link **pp = &c->b->bridge->closed;
		while (*pp != l)
			pp = &(*pp)->closed_next;
		*pp = l->closed_next;
		l->closed_queued = 0;
	}
	link_down(l, "closed");
	conn_sub_clear(c);
	c->link = NULL;
	free(l);
}

/* ---- dialing ---- */

static void bridge_dialed(struct conn *c)
{
	struct link *l = c->link;
	struct broker *b = l->b;
	Ipcbus__Hello h = IPCBUS__HELLO__INIT;
	size_t self_len;

	h.version = PROTO_VERSION;
	h.has_name = 1;
	h.name.data = (uint8_t *)"ipcbusd-bridge";
	h.name.len = strlen("ipcbusd-bridge");
	h.has_pid = 1;
	h.pid = (uint32_t)getpid();
	if (l->line->url.has_token) {
		h.has_token = 1;
		h.token.data = (uint8_t *)l->line->url.token;
		h.token.len = strlen(l->line->url.token);
	}
	h.has_bridge = 1;
	h.bridge.data = (uint8_t *)bridge_self(b, &self_len);
	h.bridge.len = self_len;
	if (frame_append_hello(&b->ctl, 1, &h) < 0 || conn_push_ctl(c) < 0)
		conn_close(c, "out of memory");
}

static void bridge_dial(struct bridge_line *ln)
{
	struct broker *b = ln->b;
	const struct transport *t = transport_find(ln->url.kind);
	struct conn *c;
	char err[256];

	if (b->stopping || ln->link)
		return;
	/* the peer's link is up (it dialed us): no second one */
	if (ln->peer_len && bridge_link_to(b, ln->peer, ln->peer_len))
		return;
	int rc = t && t->dial ? t->dial(b, &ln->url, &c, err, sizeof err) : -EPROTONOSUPPORT;
	if (rc < 0) {
		if (!t || !t->dial)
			snprintf(err, sizeof err, "this transport cannot dial");
		if (ln->fails++ == 0 || ln->fails - ln->fails_logged >= 100) {
			ln->fails_logged = ln->fails;
			log_warn(&b->log, "bridge %s: %s (retrying, %llu failure(s) in a row)",
				 ln->shown, err, (unsigned long long)ln->fails);
		}
		bridge_line_retry(ln);
		return;
	}
	struct link *l = link_new(b, c);
	if (!l) {
		conn_close(c, "out of memory");
		return;
	}
	l->dialed = 1;
	l->line = ln;
	l->state = LINK_WELCOME;
	ln->link = l;
	c->dialed = bridge_dialed;
	snprintf(l->name, sizeof l->name, "%.64s", ln->shown);
}

static void bridge_line_fire(void *arg)
{
	bridge_dial(arg);
}

/* Dial ln again after its backoff: 100 ms doubling to 5 s, +-25 %. */
static void bridge_line_retry(struct bridge_line *ln)
{
	struct broker *b = ln->b;
	if (b->stopping)
		return;
	unsigned base = ln->backoff ? ln->backoff : BRIDGE_BACKOFF_MIN_MS;
	ln->backoff = base * 2 > BRIDGE_BACKOFF_MAX_MS ? BRIDGE_BACKOFF_MAX_MS : base * 2;
	uint64_t jitter = hash_u64(&b->hash_key, loop_now(b->loop) ^ (uintptr_t)ln) % (base / 2 + 1);
	uint64_t ms = base - base / 4 + jitter;
	loop_timer_set(b->loop, &ln->timer, ms, bridge_line_fire, ln);
}

/* ---- the accepting side ---- */

int bridge_hello(struct conn *c, const uint8_t *peer, size_t len, int *code, char *why, size_t n)
{
	struct broker *b = c->b;
	size_t self_len;
	const uint8_t *self = bridge_self(b, &self_len);
	const struct conf *cfg = &b->cfg;

	if (!bridge_id_ok(peer, len)) {
		*code = IPCBUS__ERR_CODE__E_INVALID;
		snprintf(why, n, "a bridge id is 1-%d visible ASCII characters", SEEN_ID_MAX);
		return -1;
	}
	if (len == self_len && memcmp(peer, self, len) == 0) {
		*code = IPCBUS__ERR_CODE__E_INVALID;
		snprintf(why, n, "a bridge from this broker to itself");
		return -1;
	}
	int authenticated = c->listener && c->listener->tr->network &&
			    (cfg->ntokens > 0 || (c->listener->tr == &transport_tls && cfg->tls_ca));
	if (authenticated) {
		int ok = 0;
		for (size_t i = 0; i < cfg->nbridge_allow && !ok; i++)
			ok = strcmp(cfg->bridge_allow[i], c->identity) == 0;
		if (!ok) {
			*code = IPCBUS__ERR_CODE__E_PERMISSION;
			snprintf(why, n, "%s may not bridge to this broker (bridge-allow)", c->identity);
			return -1;
		}
	}
	struct link *l = link_new(b, c);
	if (!l) {
		*code = IPCBUS__ERR_CODE__E_MAX_CONNECTIONS;
		snprintf(why, n, "broker out of memory");
		return -1;
	}
	memcpy(l->peer, peer, len);
	l->peer_len = len;
	memcpy(l->name, peer, len);
	l->name[len] = 0;
	l->state = LINK_WELCOME;
	return 0;
}

void bridge_welcomed(struct conn *c)
{
	link_up(c->link);
}

/* ---- the dialing side's handshake ---- */

/* WELCOME to our HELLO: the peer's id. */
static void link_welcome(struct link *l, const struct frame *f)
{
	struct conn *c = l->c;
	Ipcbus__Welcome *w = frame_unpack_welcome(f);
	size_t self_len;
	const uint8_t *self = bridge_self(l->b, &self_len);

	if (!w || !w->has_server_id || !bridge_id_ok(w->server_id.data, w->server_id.len)) {
		if (w)
			ipcbus__welcome__free_unpacked(w, NULL);
		conn_close(c, "the peer's WELCOME has no valid server id");
		return;
	}
	if (!w->bridge) {
		ipcbus__welcome__free_unpacked(w, NULL);
		conn_close(c, "the peer took us for a client: it does not speak bridges (an older ipcbusd?)");
		return;
	}
	if (w->server_id.len == self_len && memcmp(w->server_id.data, self, self_len) == 0) {
		ipcbus__welcome__free_unpacked(w, NULL);
		log_warn(&l->b->log, "bridge %s: that is this broker itself", l->line->shown);
		conn_close(c, "a bridge to itself");
		return;
	}
	memcpy(l->peer, w->server_id.data, w->server_id.len);
	l->peer_len = w->server_id.len;
	memcpy(l->name, l->peer, l->peer_len);
	l->name[l->peer_len] = 0;
	memcpy(l->line->peer, l->peer, l->peer_len);
	l->line->peer_len = l->peer_len;
	ipcbus__welcome__free_unpacked(w, NULL);
	c->state = CONN_OPEN;
	snprintf(c->name, sizeof c->name, "bridge:%.56s", l->name);
	conn_describe(c);
	link_up(l);
}

/* Before its WELCOME, the peer we dialed may only answer our HELLO. */
void bridge_line_answer(struct link *l, const struct frame *f)
{
	struct conn *c = l->c;

	if (f->type == IPCBUS__FRAME_TYPE__WELCOME) {
		link_welcome(l, f);
		return;
	}
	if (f->type == IPCBUS__FRAME_TYPE__ERR) {
		Ipcbus__Error *e = frame_unpack_error(f);
		struct bridge_line *ln = l->line;
		if (ln->fails++ == 0 || ln->fails - ln->fails_logged >= 100) {
			ln->fails_logged = ln->fails;
			log_warn(&c->b->log, "bridge %s: refused: %.*s", ln->shown,
				 e && e->has_text ? (int)e->text.len : 7,
				 e && e->has_text ? (const char *)e->text.data : "no text");
		}
		if (e)
			ipcbus__error__free_unpacked(e, NULL);
		conn_close(c, "refused by the peer");
		return;
	}
	conn_close(c, "the peer did not answer HELLO with WELCOME");
}

/* ---- set-up and status ---- */

int bridge_line_init(struct broker *b)
{
	const struct conf *cfg = &b->cfg;
	struct bridge *br = b->bridge;

	if (cfg->nbridges) {
		br->lines = calloc(cfg->nbridges, sizeof *br->lines);
		if (!br->lines) {
			log_error(&b->log, "out of memory");
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < cfg->nbridges; i++) {
		const struct conf_bridge *cb = &cfg->bridges[i];
		struct bridge_line *ln = &br->lines[br->nlines];
		char err[256];
		ln->b = b;
		url_redact(cb->url, ln->shown, sizeof ln->shown);
		if (url_parse(cb->url, &ln->url, err, sizeof err) < 0) {
			log_error(&b->log, "bridge %s: %s", ln->shown, err);
			return -EINVAL;
		}
		br->nlines++;
		if (cb->npatterns) {
			ln->patterns = calloc(cb->npatterns, sizeof *ln->patterns);
			if (!ln->patterns)
				return -ENOMEM;
			for (size_t j = 0; j < cb->npatterns; j++)
				if (!(ln->patterns[ln->npatterns++] = strdup(cb->patterns[j])))
					return -ENOMEM;
		}
		loop_timer_set(b->loop, &ln->timer, 0, bridge_line_fire, ln);
	}
	return 0;
}

void bridge_line_fini(struct broker *b)
{
	struct bridge *br = b->bridge;

	for (size_t i = 0; i < br->nlines; i++) {
		struct bridge_line *ln = &br->lines[i];
		loop_timer_cancel(b->loop, &ln->timer);
		for (size_t j = 0; j < ln->npatterns; j++)
			free(ln->patterns[j]);
		free(ln->patterns);
		explicit_bzero(&ln->url, sizeof ln->url);
	}
	free(br->lines);
}

void bridge_line_status(struct broker *b)
{
	struct bridge *br = b->bridge;

	for (size_t i = 0; i < br->nlines; i++) {
		struct bridge_line *ln = &br->lines[i];
		if (!ln->link && !(ln->peer_len && bridge_link_to(b, ln->peer, ln->peer_len)))
			log_info(&b->log, "status: bridge %s: down, %llu failed attempt(s) in a row",
				 ln->shown, (unsigned long long)ln->fails);
	}
}
