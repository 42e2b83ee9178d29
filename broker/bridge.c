/*
 * bridge.c: what crosses the links between brokers: the spanning tree,
 * interest and forwarded messages (see bridge.h and docs/design.md,
 * Bridges; how links come and go, dialing included, is bridge_line.c).
 *
 * Loop freedom.  The links form a graph of any shape; messages and interest
 * cross only the links of one spanning tree, chosen as 802.1D does: the
 * root is the smallest server id that can be reached, every broker takes
 * as its parent the link with the smallest (root, distance + 1, peer id)
 * that its neighbours told it (never a neighbour that has this broker as
 * its own parent), and a link is active when one end is the other's
 * parent.  Over a tree, "forward to every interested link but the one it
 * came from" reaches every subscriber once, and split-horizon interest
 * (announce to a link what anyone else wants) is exact.  While the tree
 * changes, the per-origin seen-windows (seen.c) drop what arrives twice.
 *
 * Interest over a link is the interest table's entries (interest.c), sent
 * as SUB (sid = the entry's id) and UNSUB.  When a link becomes active,
 * each end sends BRIDGE with `reset` and then all it has; when it stops
 * being active, each end forgets what the other told it.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_int.h"
#include "broker.h"
#include "chan.h"
#include "conn.h"
#include "interest.h"
#include "proto.h"
#include "route.h"
#include "router.h"
#include "seen.h"

/* A link announces the interest of its whole side of the network, not of
 * one client: it may hold max-subscriptions entries, and at least this
 * many (every requester's inbox is one). */
#define LINK_INTEREST_MIN 100000

const uint8_t *bridge_self(const struct broker *b, size_t *len)
{
	*len = strlen(b->server_id);
	return (const uint8_t *)b->server_id;
}

/* Compare two ids as byte strings (a shorter prefix first). */
int bridge_idcmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int r = memcmp(a, b, alen < blen ? alen : blen);
	return r ? r : (alen > blen) - (alen < blen);
}

/* A server id: 1-64 visible ASCII bytes. */
int bridge_id_ok(const uint8_t *p, size_t n)
{
	if (n == 0 || n > SEEN_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return 0;
	return 1;
}

/* ---- which channels a link carries ---- */

/* 1 when channel may cross l: a reply inbox, or one of its line's
 * patterns matches it, or (no patterns) it is not a $ channel. */
static int link_carries(const struct link *l, const char *ch, size_t len)
{
	if (chan_is_inbox(ch, len))
		return 1; /* replies cross every link */
	if (!l->line || !l->line->npatterns)
		return !chan_is_system(ch, len);
	for (size_t i = 0; i < l->line->npatterns; i++) {
		const char *p = l->line->patterns[i];
		if (chan_match(p, strlen(p), ch, len))
			return 1;
	}
	return 0;
}

/* 1 when some channel matched by pattern may cross l. */
static int link_carries_pattern(const struct link *l, const char *pat, size_t len)
{
	if (chan_is_inbox(pat, len))
		return 1;
	if (!l->line || !l->line->npatterns)
		return !chan_is_system(pat, len);
	for (size_t i = 0; i < l->line->npatterns; i++) {
		const char *p = l->line->patterns[i];
		if (chan_overlap(p, strlen(p), pat, len))
			return 1;
	}
	return 0;
}

/* ---- frames to a link ---- */

void link_send_bridge(struct link *l, int reset)
{
	struct broker *b = l->b;
	struct bridge *br = b->bridge;
	Ipcbus__Bridge m = IPCBUS__BRIDGE__INIT;

	m.has_root = 1;
	m.root.data = br->root;
	m.root.len = br->root_len;
	m.has_dist = 1;
	m.dist = br->dist;
	m.has_parent = 1;
	m.parent = br->parent == l;
	m.has_reset = reset;
	m.reset = reset;
	m.has_max_payload = 1;
	m.max_payload = b->cfg.max_payload;
	m.has_max_header_bytes = 1;
	m.max_header_bytes = b->cfg.max_header_bytes;
	if (frame_append_bridge(&b->ctl, &m) < 0 || conn_push_ctl(l->c) < 0)
		conn_close(l->c, "out of memory");
}

/* Announce (on) or withdraw e on l.  0, or -1 when it was not sent (out
 * of memory, or l's peer does not read even its control frames: then l
 * was closed, and link_down ran inside). */
static int link_send_interest(struct link *l, const struct interest_entry *e, int on)
{
	struct frame f = {.type = on ? IPCBUS__FRAME_TYPE__SUB : IPCBUS__FRAME_TYPE__UNSUB,
			  .has_sid = 1, .sid = e->id};
	if (on) {
		f.channel = (struct frame_bytes){(const uint8_t *)e->pattern, e->plen, 1};
		if (e->queue)
			f.queue = (struct frame_bytes){(const uint8_t *)e->queue, e->qlen, 1};
	}
	return conn_send(l->c, &f) < 0 ? -1 : 0;
}

/* What l should know of e now, told if it changed. */
static void link_sync_entry(struct link *l, struct interest_entry *e)
{
	uint64_t bit = UINT64_C(1) << l->slot;
	int want = l->active && interest_wanted(e, l->slot) &&
		   link_carries_pattern(l, e->pattern, e->plen);
	int has = (e->announced & bit) != 0;
	if (want == has)
		return;
	if (link_send_interest(l, e, want) < 0)
		return; /* not told (and l may be down: its bits are clear) */
	if (want)
		e->announced |= bit;
	else
		e->announced &= ~bit;
}

/* link_sync_entry for each entry in turn: a link closed on the way frees
 * what nobody counts any more, never the entry in hand. */
static void link_sync_all(struct link *l)
{
	struct interest *t = l->b->interest;
	for (struct interest_entry *e = interest_first(t), *next; e; e = next) {
		e->pinned++;
		link_sync_entry(l, e);
		e->pinned--;
		next = e->next;
		interest_gc(t, e);
	}
}

void bridge_interest(struct broker *b, struct interest_entry *e)
{
	struct bridge *br = b->bridge;
	if (!br)
		return;
	/* a link that closes on the way forgets e: e stays for the caller */
	e->pinned++;
	for (int i = 0; i < INTEREST_LINKS; i++)
		if (br->slots[i] && br->slots[i]->active)
			link_sync_entry(br->slots[i], e);
	e->pinned--;
}

/* ---- a link's subscriptions (what the peer told) ---- */

/* The link's subscriptions deliver by forwarding: the copy for a link is
 * written once per message, after every match (link_after), with the
 * queue groups this side of the link is to serve. */
/* The router asks it (sub_ops.takes): the peer's pattern may overlap
 * this line's and still not carry this channel, and then nobody is
 * reached through l; a link that is not active or is closing reaches
 * nobody either.  A queue group picks among the links that take it. */
static int link_takes(const struct sub *s, const char *ch, size_t len)
{
	const struct link *l = s->owner;
	return l->active && l->c->state == CONN_OPEN && link_carries(l, ch, len);
}

static int link_deliver(struct sub *s, struct message *m)
{
	struct link *l = s->owner;
	if (!l->active || l->c->state != CONN_OPEN)
		return 0; /* the router asked link_takes: not reached */
	if (l->after.stamp != m->stamp)
		l->ngroups = 0;
	if (s->queue) {
		if (l->ngroups == LINK_GROUPS) {
			l->dropped++;
			return 1;
		}
		l->groups[l->ngroups++] =
			(struct frame_bytes){(const uint8_t *)s->queue, strlen(s->queue), 1};
	}
	route_after(m, &l->after);
	return 1;
}

static const struct sub_ops link_sub_ops = {link_deliver, link_takes};

static void link_after(struct route_after *a, struct message *m)
{
	struct link *l = (struct link *)((char *)a - offsetof(struct link, after));
	struct broker *b = l->b;
	struct bridge *br = b->bridge;
	uint8_t prefix[4 * FRAME_VARINT_MAX + 4 + SEEN_ID_MAX + FRAME_VARINT_MAX + 1 +
		       LINK_GROUPS * (256 + FRAME_VARINT_MAX + 1)];
	size_t len;

	size_t ngroups = l->ngroups;
	l->ngroups = 0;
	if (m->f->payload.len > l->pmax_payload || m->f->header_bytes > l->pmax_header_bytes) {
		l->dropped++; /* more than the peer takes */
		return;
	}
	uint64_t hops = m->forwarded ? m->hops + 1 : 0;
	if (hops >= BRIDGE_MAX_HOPS) {
		l->dropped++;
		return;
	}
	const uint8_t *body = route_body(b, m, &len);
	if (!body)
		return;
	struct frame_bytes origin = m->origin;
	if (!m->forwarded) {
		if (!m->seq)
			m->seq = ++br->seq;
		origin.p = bridge_self(b, &origin.len);
		origin.set = 1;
	}
	size_t k = frame_forward_prefix(prefix, &origin, m->seq, hops, l->groups, ngroups, len);
	uint64_t dropped = l->c->dropped;
	conn_deliver_frame(l->c, prefix, k, body, len);
	if (l->c->dropped != dropped) {
		l->dropped++;
	} else {
		l->msgs_out++;
		l->bytes_out += k + len;
	}
}

/* Forget everything the peer told over l (it stopped being active, or a
 * reset follows). */
static void link_forget_peer(struct link *l)
{
	conn_sub_clear(l->c);
}

/* Tell the peer all our interest again (without a reset: its own reset
 * asked for it). */
static void link_reannounce(struct link *l)
{
	struct broker *b = l->b;
	uint64_t bit = UINT64_C(1) << l->slot;
	for (struct interest_entry *e = interest_first(b->interest); e; e = e->next)
		e->announced &= ~bit;
	link_sync_all(l);
}

/* ---- the tree ---- */

void bridge_set_active(struct link *l, int active)
{
	struct broker *b = l->b;
	if (l->active == active)
		return;
	l->active = active;
	if (active) {
		link_send_bridge(l, 1);
		link_sync_all(l);
		log_debug(&b->log, "bridge link to %s: active", l->name);
	} else {
		/* what we told the peer is void (it forgets it too) before
		 * forgetting what it told: withdrawing that from the other
		 * links may close one of them, and the tree may make l active
		 * again in there, announcing everything afresh */
		uint64_t bit = UINT64_C(1) << l->slot;
		for (struct interest_entry *e = interest_first(b->interest); e; e = e->next)
			e->announced &= ~bit;
		link_forget_peer(l);
		for (struct interest_entry *e = interest_first(b->interest), *next; e; e = next) {
			next = e->next;
			interest_gc(b->interest, e);
		}
		log_debug(&b->log, "bridge link to %s: %s", l->name, l->active ? "active" : "standby");
	}
}

/* Choose root, distance and parent from what the neighbours told, tell
 * them when it changed, and set each link active or not. */
void bridge_tree(struct broker *b)
{
	struct bridge *br = b->bridge;
	const uint8_t *root;
	size_t root_len;
	uint32_t dist = 0;
	struct link *parent = NULL;

	root = bridge_self(b, &root_len);
	for (int i = 0; i < INTEREST_LINKS; i++) {
		struct link *l = br->slots[i];
		/* not a neighbour whose own path goes through us (poison
		 * reverse), nor one as far as the tree may reach */
		if (!l || l->state != LINK_UP || !l->told || l->pparent ||
		    l->pdist >= BRIDGE_MAX_HOPS - 1) /* pdist + 1 wraps at UINT32_MAX */
			continue;
		int r = bridge_idcmp(l->proot, l->proot_len, root, root_len);
		/* our own id as root is ours at distance 0: only a smaller
		 * root beats it; between equal roots the shorter distance,
		 * then the smaller peer id */
		int better = r < 0 ||
			     (r == 0 && parent &&
			      (l->pdist + 1 < dist ||
			       (l->pdist + 1 == dist &&
				bridge_idcmp(l->peer, l->peer_len, parent->peer, parent->peer_len) < 0)));
		if (!better)
			continue;
		root = l->proot;
		root_len = l->proot_len;
		dist = l->pdist + 1;
		parent = l;
	}
	int changed = root_len != br->root_len || memcmp(root, br->root, root_len) != 0 ||
		      dist != br->dist || parent != br->parent;
	struct link *old_parent = br->parent;
	if (changed) {
		memmove(br->root, root, root_len);
		br->root_len = root_len;
		br->dist = dist;
		br->parent = parent;
		for (int i = 0; i < INTEREST_LINKS; i++) {
			struct link *l = br->slots[i];
			if (l && l->state == LINK_UP)
				link_send_bridge(l, 0);
		}
		if (old_parent != parent)
			log_debug(&b->log, "bridge: root %.*s at %u link(s)%s%s", (int)root_len,
				  (const char *)root, dist, parent ? " through " : "",
				  parent ? parent->name : "");
	}
	for (int i = 0; i < INTEREST_LINKS; i++) {
		struct link *l = br->slots[i];
		if (l && l->state == LINK_UP)
			bridge_set_active(l, br->parent == l || (l->told && l->pparent));
	}
}

/* ---- links coming and going ---- */

struct link *link_new(struct broker *b, struct conn *c)
{
	struct link *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->b = b;
	l->c = c;
	l->slot = -1;
	l->after.fn = link_after;
	c->link = l;
	return l;
}


/* ---- frames from a link ---- */


static void link_bridge(struct link *l, const struct frame *f)
{
	Ipcbus__Bridge *m = frame_unpack_bridge(f);
	if (!m || !m->has_root || !bridge_id_ok(m->root.data, m->root.len)) {
		if (m)
			ipcbus__bridge__free_unpacked(m, NULL);
		conn_error(l->c, f->id, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
			   "BRIDGE without a valid bridge message");
		return;
	}
	memcpy(l->proot, m->root.data, m->root.len);
	l->proot_len = m->root.len;
	l->pdist = m->dist;
	l->pparent = m->parent;
	l->told = 1;
	if (m->has_max_payload)
		l->pmax_payload = m->max_payload;
	if (m->has_max_header_bytes)
		l->pmax_header_bytes = m->max_header_bytes;
	int reset = m->reset;
	ipcbus__bridge__free_unpacked(m, NULL);
	int was_active = l->active;
	bridge_tree(l->b);
	if (reset && was_active && l->active) {
		/* the peer has just made the link active on its side: it
		 * forgot what we told it, and its whole interest follows */
		link_forget_peer(l);
		link_reannounce(l);
	}
}

/* SUB from the peer: interest of its side of the tree. */
static void link_sub(struct link *l, const struct frame *f)
{
	struct conn *c = l->c;
	struct broker *b = l->b;

	if (!l->active)
		return; /* it will send it all again once we agree */
	if (!f->sid || !f->channel.set ||
	    chan_valid_pattern((const char *)f->channel.p, f->channel.len) < 0 ||
	    /* nobody's clients can have it: it reads every requester's replies */
	    chan_is_inbox_wildcard((const char *)f->channel.p, f->channel.len) ||
	    (f->queue.len && !chan_valid_queue((const char *)f->queue.p, f->queue.len))) {
		l->refused++;
		return;
	}
	if (!link_carries_pattern(l, (const char *)f->channel.p, f->channel.len))
		return; /* not ours to carry */
	if (conn_sub_find(c, f->sid))
		return; /* told twice (both ends reset at once) */
	size_t max = b->cfg.max_subscriptions > LINK_INTEREST_MIN ? (size_t)b->cfg.max_subscriptions
								 : LINK_INTEREST_MIN;
	if (c->nsubs >= max) {
		if (l->over_interest++ % 1000 == 0)
			log_warn(&b->log,
				 "bridge link to %s: interest over %zu entries refused (%llu so far)",
				 l->name, max, (unsigned long long)l->over_interest);
		l->refused++;
		return;
	}
	/* one entry per (pattern, queue) from a link */
	struct interest_entry *e =
		interest_get(b->interest, (const char *)f->channel.p, f->channel.len,
			     (const char *)f->queue.p, f->queue.len);
	if (!e) {
		log_error(&b->log, "bridge link to %s: out of memory for its interest", l->name);
		return;
	}
	if (e->from & UINT64_C(1) << l->slot) {
		l->refused++;
		return;
	}
	/* route_sub_add/remove free e when it ends up uncounted: it is ours
	 * to free here, once */
	e->pinned++;
	struct sub *s = calloc(1, sizeof *s);
	if (!s)
		goto nomem;
	s->ops = &link_sub_ops;
	s->owner = l;
	s->remote = l->slot + 1;
	s->sid = f->sid;
	s->pattern = malloc(f->channel.len + 1);
	s->pattern_len = f->channel.len;
	if (f->queue.len)
		s->queue = malloc(f->queue.len + 1);
	if (!s->pattern || (f->queue.len && !s->queue)) {
		conn_sub_free(s);
		goto nomem;
	}
	memcpy(s->pattern, f->channel.p, f->channel.len);
	s->pattern[f->channel.len] = 0;
	if (s->queue) {
		memcpy(s->queue, f->queue.p, f->queue.len);
		s->queue[f->queue.len] = 0;
	}
	if (route_sub_add(b, s) < 0) {
		conn_sub_free(s);
		goto nomem;
	}
	if (conn_sub_add(c, s) < 0) {
		route_sub_remove(b, s);
		conn_sub_free(s);
		goto nomem;
	}
	e->pinned--;
	return;
nomem:
	log_error(&b->log, "bridge link to %s: out of memory for its interest", l->name);
	e->pinned--;
	interest_gc(b->interest, e);
}

static void link_unsub(struct link *l, const struct frame *f)
{
	if (!l->active)
		return;
	struct sub *s = conn_sub_find(l->c, f->sid);
	if (!s)
		return;
	conn_sub_del(l->c, s);
	route_sub_remove(l->b, s);
	conn_sub_free(s);
}

/* A forwarded message: checked as untrusted input, then routed here and
 * on over the other links. */
static void link_msg(struct link *l, const struct frame *f)
{
	struct broker *b = l->b;
	struct bridge *br = b->bridge;
	size_t self_len;
	const uint8_t *self = bridge_self(b, &self_len);
	const char *ch = (const char *)f->channel.p;

	l->msgs_in++;
	l->bytes_in += f->body_len;
	if (!l->active) {
		l->dropped++; /* not on the tree (yet, or any more) */
		return;
	}
	/* what a client's PUB could not carry, nor a MSG a client could get */
	if (f->has_sid ||
	    route_check(f, b->cfg.max_payload, b->cfg.max_header_bytes, NULL) != ROUTE_OK ||
	    !link_carries(l, ch, f->channel.len)) {
		l->refused++;
		return;
	}
	if (!bridge_id_ok(f->origin.p, f->origin.len) || !f->seq ||
	    (f->origin.len == self_len && memcmp(f->origin.p, self, self_len) == 0) ||
	    f->hops >= BRIDGE_MAX_HOPS) {
		br->forged++;
		l->refused++;
		return;
	}
	int rc = seen_check(br->seen, f->origin.p, f->origin.len, f->seq);
	if (rc <= 0) {
		br->dups++;
		return;
	}
	struct frame plain;
	if (f->reply_to.set && !f->reply_to.len) {
		plain = *f;
		plain.reply_to.set = 0;
		f = &plain;
	}
	struct message m = {.f = f, .from = l, .origin = f->origin, .seq = f->seq,
			    .hops = f->hops, .forwarded = 1};
	b->stats.msgs_in++;
	route_publish(b, &m);
}

void bridge_frame(struct conn *c, const struct frame *f)
{
	struct link *l = c->link;

	if (l->state == LINK_WELCOME && l->dialed) {
		bridge_line_answer(l, f);
		return;
	}
	if (l->state != LINK_UP)
		return;
	switch (f->type) {
	case IPCBUS__FRAME_TYPE__MSG: link_msg(l, f); break;
	case IPCBUS__FRAME_TYPE__SUB: link_sub(l, f); break;
	case IPCBUS__FRAME_TYPE__UNSUB: link_unsub(l, f); break;
	case IPCBUS__FRAME_TYPE__BRIDGE: link_bridge(l, f); break;
	case IPCBUS__FRAME_TYPE__PING: {
		struct frame pong = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = f->has_id, .id = f->id};
		conn_send(c, &pong);
		break;
	}
	case IPCBUS__FRAME_TYPE__PONG: c->ping_sent = 0; break;
	case IPCBUS__FRAME_TYPE__ERR: {
		Ipcbus__Error *e = frame_unpack_error(f);
		log_warn(&c->b->log, "bridge link to %s: the peer says: %.*s", l->name,
			 e && e->has_text ? (int)e->text.len : 7,
			 e && e->has_text ? (const char *)e->text.data : "no text");
		int closing = !e || e->fatal || e->closing;
		if (e)
			ipcbus__error__free_unpacked(e, NULL);
		if (closing)
			conn_close(c, "the peer closed the link");
		break;
	}
	default:
		conn_error(c, f->id, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
			   "%s frames do not go over a bridge link", frame_type_name(f->type));
	}
}

/* ---- set-up and status ---- */

int bridge_init(struct broker *b)
{
	struct bridge *br = calloc(1, sizeof *br);
	if (!br || !(br->seen = seen_new())) {
		free(br);
		log_error(&b->log, "out of memory");
		return -ENOMEM;
	}
	b->bridge = br;
	size_t self_len;
	const uint8_t *self = bridge_self(b, &self_len);
	memcpy(br->root, self, self_len);
	br->root_len = self_len;
	return bridge_line_init(b);
}

void bridge_fini(struct broker *b)
{
	struct bridge *br = b->bridge;
	if (!br)
		return;
	bridge_line_fini(b);
	seen_free(br->seen);
	free(br);
	b->bridge = NULL;
}

void bridge_status(struct broker *b)
{
	struct bridge *br = b->bridge;
	if (!br)
		return;
	uint64_t now = loop_now(b->loop);
	for (int i = 0; i < INTEREST_LINKS; i++) {
		struct link *l = br->slots[i];
		if (!l)
			continue;
		size_t out = 0;
		for (const struct interest_entry *e = interest_first(b->interest); e; e = e->next)
			out += (e->announced >> l->slot) & 1;
		log_info(&b->log,
			 "status: link %s state %s (%s, up %llu s): interest in %zu out %zu, messages in %llu out %llu, bytes in %llu out %llu, dropped %llu, refused %llu",
			 l->name, l->active ? "active" : "standby",
			 l->dialed ? l->line->shown : l->c->addr,
			 (unsigned long long)((now - l->up_at) / 1000), l->c->nsubs, out,
			 (unsigned long long)l->msgs_in, (unsigned long long)l->msgs_out,
			 (unsigned long long)l->bytes_in, (unsigned long long)l->bytes_out,
			 (unsigned long long)l->dropped, (unsigned long long)l->refused);
	}
	bridge_line_status(b);
	if (br->dups || br->forged)
		log_info(&b->log, "status: bridges: %llu duplicate(s) dropped, %llu forged or looping",
			 (unsigned long long)br->dups, (unsigned long long)br->forged);
}
