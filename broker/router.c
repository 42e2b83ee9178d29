/*
 * router.c: the subscription index (see router.h).
 *
 * A trie of pattern tokens.  Each node has its literal children in a small
 * open-addressing hash table (linear probing, power-of-two size, at most half
 * full), plus at most one `*` child and one `>` child; the subscriptions of a
 * pattern hang off the node its last token leads to.  Subscriptions outside a
 * queue group are a linked list there; those in a group are kept per group in
 * an array (struct router_qnode), so that picking the k-th member is an index.
 *
 * router_match() splits the channel into tokens and hashes each token once,
 * then walks the trie: at every node it follows the literal edge of the
 * token, the `*` edge, and collects the `>` child's subscriptions.  A channel
 * reaches any node by at most one path (a `*` takes exactly one token and a
 * `>` ends the pattern), so a subscription is never found twice and no
 * de-duplication is needed.  Queue groups are router-wide objects shared by
 * every node that has members of the group, which is what lets one message
 * pick exactly one member of a group across all the patterns that matched
 * (NATS semantics); each group has a turn counter that rotates through the
 * candidates.
 *
 * Steady-state matching allocates nothing: the result, the per-call queue
 * bookkeeping and the token array are kept in the router and only grow.
 * Nodes are freed as soon as they hold nothing, so the trie never keeps the
 * shape of patterns that are gone.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "hash.h"
#include "router.h"

enum { ROUTER_LIT, ROUTER_STAR, ROUTER_GT };

/* The members of one queue group subscribed at one node: the local ones
 * first (m[0..nlocal)), then those learned from peer brokers (remote). */
struct router_qnode {
	struct router_group *g;
	struct sub **m; /* the turn rotates through it */
	size_t n, nlocal, cap;
};

/* A queue group, shared by every node that has members of it. */
struct router_group {
	struct router_group *next; /* hash chain */
	uint32_t hash;
	size_t refs;       /* qnodes pointing here */
	uint64_t turn;     /* rotates through the candidates */
	/* per router_match() call, valid when epoch is the router's */
	uint64_t epoch;
	size_t total;      /* local candidates in this call */
	size_t rtotal;     /* remote members in this call (before exclusion) */
	size_t first, last; /* chain of this group's entries in r->qhits */
	size_t len;
	char name[];
};

struct router_node {
	struct router_node *parent;
	struct router_node **lit; /* hash table of literal children, or NULL */
	uint32_t nlit, litcap;
	struct router_node *star, *gt;
	struct sub *subs; /* outside queue groups */
	struct router_qnode *q;
	size_t nq, qcap;
	uint32_t hash; /* of tok, for the parent's table */
	int kind;
	size_t toklen;
	char tok[];
};

/* One matched qnode in the current call; next chains a group's entries. */
struct router_qhit {
	struct router_qnode *qn;
	size_t next;
};

struct router_tok {
	const char *p;
	size_t len;
	uint32_t hash;
};

struct router {
	struct hash_key key;
	struct router_node *root;
	size_t count;
	/* queue groups by name: chained hash table */
	struct router_group **groups;
	size_t ngroups, gcap;
	/* per-call scratch, grown as needed and kept */
	struct sub **res;
	size_t nres, rescap;
	struct router_qhit *qhits;
	size_t nqhits, qhitcap;
	struct router_group **touched;
	size_t ntouched, touchcap;
	uint64_t epoch;
	int oom; /* set when scratch could not grow during a walk */
	const void *exclude; /* the owner router_match_from() skips */
	const char *chan;    /* the channel it matches, for sub_ops.takes */
	size_t chanlen;
};

#define ROUTER_NONE ((size_t)-1)
/* A channel of CHAN_MAX bytes has at most this many tokens. */
#define ROUTER_MAX_TOKENS (CHAN_MAX / 2 + 1)

/* Keyed (SipHash with the router's random key): clients choose the tokens,
 * and with a known hash they could pile them all into one bucket. */
static uint32_t router_hash(const struct router *r, const char *p, size_t n)
{
	return (uint32_t)hash_bytes(&r->key, p, n);
}

/* Grow *arr (of elements of size sz) to hold at least want; 0 or -ENOMEM. */
static int router_grow(void **arr, size_t *cap, size_t want, size_t sz)
{
	if (want <= *cap)
		return 0;
	size_t n = *cap ? *cap : 8;
	while (n < want)
		n *= 2;
	void *p = realloc(*arr, n * sz);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

/* ---- the literal children of a node ---- */

static struct router_node *router_lit_find(const struct router_node *n, const char *tok,
					   size_t len, uint32_t hash)
{
	if (!n->nlit)
		return NULL;
	uint32_t mask = n->litcap - 1;
	for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
		struct router_node *c = n->lit[i];
		if (!c)
			return NULL;
		if (c->hash == hash && c->toklen == len && memcmp(c->tok, tok, len) == 0)
			return c;
	}
}

static void router_lit_place(struct router_node **tab, uint32_t cap, struct router_node *c)
{
	uint32_t mask = cap - 1, i = c->hash & mask;
	while (tab[i])
		i = (i + 1) & mask;
	tab[i] = c;
}

static int router_lit_insert(struct router_node *n, struct router_node *c)
{
	/* at most half full, so probes stay short and a free slot exists */
	if ((n->nlit + 1) * 2 > n->litcap) {
		uint32_t cap = n->litcap ? n->litcap * 2 : 4;
		struct router_node **tab = calloc(cap, sizeof *tab);
		if (!tab)
			return -ENOMEM;
		for (uint32_t i = 0; i < n->litcap; i++)
			if (n->lit[i])
				router_lit_place(tab, cap, n->lit[i]);
		free(n->lit);
		n->lit = tab;
		n->litcap = cap;
	}
	router_lit_place(n->lit, n->litcap, c);
	n->nlit++;
	return 0;
}

/* Linear probing needs backward-shift deletion: a tombstone-free table keeps
 * lookups ending at the first empty slot. */
static void router_lit_delete(struct router_node *n, struct router_node *c)
{
	uint32_t mask = n->litcap - 1, i = c->hash & mask;

	while (n->lit[i] != c)
		i = (i + 1) & mask;
	for (uint32_t j = (i + 1) & mask; n->lit[j]; j = (j + 1) & mask) {
		uint32_t home = n->lit[j]->hash & mask;
		/* move j back to i unless its home lies cyclically in (i, j] */
		int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			n->lit[i] = n->lit[j];
			i = j;
		}
	}
	n->lit[i] = NULL;
	if (--n->nlit == 0) {
		free(n->lit);
		n->lit = NULL;
		n->litcap = 0;
	}
}

/* ---- nodes ---- */

static struct router_node *router_node_new(struct router_node *parent, const char *tok,
					   size_t len, uint32_t hash)
{
	struct router_node *n = calloc(1, sizeof *n + len + 1);
	if (!n)
		return NULL;
	n->parent = parent;
	n->hash = hash;
	n->toklen = len;
	memcpy(n->tok, tok, len);
	n->kind = len == 1 && tok[0] == '*' ? ROUTER_STAR : len == 1 && tok[0] == '>' ? ROUTER_GT
										    : ROUTER_LIT;
	return n;
}

static int router_node_empty(const struct router_node *n)
{
	return !n->subs && !n->nq && !n->nlit && !n->star && !n->gt;
}

/* Free n and its ancestors while they hold nothing (never the root). */
static void router_prune(struct router *r, struct router_node *n)
{
	while (n != r->root && router_node_empty(n)) {
		struct router_node *p = n->parent;
		if (n->kind == ROUTER_STAR)
			p->star = NULL;
		else if (n->kind == ROUTER_GT)
			p->gt = NULL;
		else
			router_lit_delete(p, n);
		free(n->q);
		free(n);
		n = p;
	}
}

/* The child of n for one pattern token, created when missing. */
static struct router_node *router_child(const struct router *r, struct router_node *n,
					const char *tok, size_t len)
{
	struct router_node **slot = NULL;
	uint32_t hash = 0;

	if (len == 1 && tok[0] == '*')
		slot = &n->star;
	else if (len == 1 && tok[0] == '>')
		slot = &n->gt;
	if (slot) {
		if (!*slot)
			*slot = router_node_new(n, tok, len, 0);
		return *slot;
	}
	hash = router_hash(r, tok, len);
	struct router_node *c = router_lit_find(n, tok, len, hash);
	if (c)
		return c;
	c = router_node_new(n, tok, len, hash);
	if (c && router_lit_insert(n, c) < 0) {
		free(c);
		c = NULL;
	}
	return c;
}

/* ---- queue groups ---- */

static struct router_group *router_group_get(struct router *r, const char *name, size_t len)
{
	uint32_t hash = router_hash(r, name, len);

	if (r->gcap) {
		for (struct router_group *g = r->groups[hash & (r->gcap - 1)]; g; g = g->next)
			if (g->hash == hash && g->len == len && memcmp(g->name, name, len) == 0)
				return g;
	}
	if (r->ngroups + 1 > r->gcap) {
		size_t cap = r->gcap ? r->gcap * 2 : 16;
		struct router_group **tab = calloc(cap, sizeof *tab);
		if (!tab)
			return NULL;
		for (size_t i = 0; i < r->gcap; i++) {
			struct router_group *g = r->groups[i], *next;
			for (; g; g = next) {
				next = g->next;
				g->next = tab[g->hash & (cap - 1)];
				tab[g->hash & (cap - 1)] = g;
			}
		}
		free(r->groups);
		r->groups = tab;
		r->gcap = cap;
	}
	struct router_group *g = calloc(1, sizeof *g + len + 1);
	if (!g)
		return NULL;
	g->hash = hash;
	g->len = len;
	memcpy(g->name, name, len);
	g->next = r->groups[hash & (r->gcap - 1)];
	r->groups[hash & (r->gcap - 1)] = g;
	r->ngroups++;
	return g;
}

static void router_group_put(struct router *r, struct router_group *g)
{
	if (--g->refs)
		return;
	struct router_group **pp = &r->groups[g->hash & (r->gcap - 1)];
	while (*pp != g)
		pp = &(*pp)->next;
	*pp = g->next;
	r->ngroups--;
	free(g);
}

static int router_queue_add(struct router *r, struct router_node *n, struct sub *s)
{
	size_t len = strlen(s->queue);
	struct router_qnode *qn = NULL;

	for (size_t i = 0; i < n->nq; i++)
		if (n->q[i].g->len == len && memcmp(n->q[i].g->name, s->queue, len) == 0)
			qn = &n->q[i];
	if (!qn) {
		if (router_grow((void **)&n->q, &n->qcap, n->nq + 1, sizeof *n->q) < 0)
			return -ENOMEM;
		struct router_group *g = router_group_get(r, s->queue, len);
		if (!g)
			return -ENOMEM;
		g->refs++;
		qn = &n->q[n->nq++];
		memset(qn, 0, sizeof *qn);
		qn->g = g;
	}
	if (router_grow((void **)&qn->m, &qn->cap, qn->n + 1, sizeof *qn->m) < 0) {
		if (qn->n == 0) {
			router_group_put(r, qn->g);
			n->nq--;
		}
		return -ENOMEM;
	}
	s->qidx = qn->n;
	qn->m[qn->n++] = s;
	if (!s->remote) {
		/* keep the locals first: swap with the first remote */
		size_t j = qn->nlocal++;
		struct sub *t = qn->m[j];
		qn->m[j] = s;
		qn->m[s->qidx] = t;
		t->qidx = s->qidx;
		s->qidx = j;
	}
	return 0;
}

/* Move m[from] to m[to] (to < from, or equal). */
static void router_qmove(struct router_qnode *qn, size_t from, size_t to)
{
	if (from == to)
		return;
	qn->m[to] = qn->m[from];
	qn->m[to]->qidx = to;
}

static void router_queue_remove(struct router *r, struct router_node *n, struct sub *s)
{
	for (size_t i = 0; i < n->nq; i++) {
		struct router_qnode *qn = &n->q[i];
		size_t j = s->qidx;
		if (j >= qn->n || qn->m[j] != s)
			continue;
		/* O(1) whatever the group's size: the last member of its
		 * part takes the place (the rotation goes by count, not by
		 * position), and a local's place at the end of the locals is
		 * filled with the last remote */
		if (j < qn->nlocal) {
			router_qmove(qn, --qn->nlocal, j);
			router_qmove(qn, --qn->n, qn->nlocal);
		} else {
			router_qmove(qn, --qn->n, j);
		}
		if (qn->n == 0) {
			router_group_put(r, qn->g);
			free(qn->m);
			n->q[i] = n->q[--n->nq];
		}
		return;
	}
	assert(!"router_remove: subscription not in its node");
}

/* ---- the public interface ---- */

struct router *router_new(void)
{
	struct router *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	hash_key_random(&r->key);
	r->root = router_node_new(NULL, "", 0, 0);
	if (!r->root) {
		free(r);
		return NULL;
	}
	return r;
}

/* Free a subtree (the subscriptions belong to their connections). */
static void router_node_free(struct router *r, struct router_node *n)
{
	for (uint32_t i = 0; i < n->litcap; i++)
		if (n->lit[i])
			router_node_free(r, n->lit[i]);
	if (n->star)
		router_node_free(r, n->star);
	if (n->gt)
		router_node_free(r, n->gt);
	for (size_t i = 0; i < n->nq; i++) {
		router_group_put(r, n->q[i].g);
		free(n->q[i].m);
	}
	free(n->q);
	free(n->lit);
	free(n);
}

void router_free(struct router *r)
{
	if (!r)
		return;
	router_node_free(r, r->root);
	free(r->groups);
	free(r->res);
	free(r->qhits);
	free(r->touched);
	free(r);
}

int router_add(struct router *r, struct sub *s)
{
	struct router_node *n = r->root;
	const char *p = s->pattern, *end = s->pattern + s->pattern_len;

	for (;;) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		const char *tend = dot ? dot : end;
		struct router_node *c = router_child(r, n, p, (size_t)(tend - p));
		if (!c) {
			router_prune(r, n);
			return -ENOMEM;
		}
		n = c;
		if (!dot)
			break;
		p = dot + 1;
	}
	s->node = n;
	if (s->queue && s->queue[0]) {
		if (router_queue_add(r, n, s) < 0) {
			router_prune(r, n);
			return -ENOMEM;
		}
		s->next = s->prev = NULL;
	} else {
		s->prev = NULL;
		s->next = n->subs;
		if (n->subs)
			n->subs->prev = s;
		n->subs = s;
	}
	r->count++;
	return 0;
}

void router_remove(struct router *r, struct sub *s)
{
	struct router_node *n = s->node;

	assert(n && r->count > 0);
	if (s->queue && s->queue[0]) {
		router_queue_remove(r, n, s);
	} else {
		if (s->prev)
			s->prev->next = s->next;
		else
			n->subs = s->next;
		if (s->next)
			s->next->prev = s->prev;
	}
	s->node = NULL;
	s->next = s->prev = NULL;
	r->count--;
	router_prune(r, n);
}

size_t router_count(const struct router *r)
{
	return r->count;
}

/* Split a channel into tokens and hash each once.  Returns the count, or 0
 * when it is not something router_match() can be asked about. */
static size_t router_tokens(const struct router *r, const char *channel, size_t len,
			    struct router_tok *t)
{
	size_t n = 0, i = 0;

	if (len == 0 || len > CHAN_MAX)
		return 0;
	while (n < ROUTER_MAX_TOKENS) {
		size_t start = i;
		while (i < len && channel[i] != '.')
			i++;
		t[n].p = channel + start;
		t[n].len = i - start;
		t[n].hash = router_hash(r, t[n].p, t[n].len);
		n++;
		if (i >= len)
			return n;
		i++;
	}
	return 0;
}

/* s is a candidate for the message being matched: not of the excluded
 * owner, and (a remote one) taking the channel. */
static int router_candidate(const struct router *r, const struct sub *s)
{
	if (s->owner == r->exclude && s->owner)
		return 0;
	return !s->remote || !s->ops || !s->ops->takes || s->ops->takes(s, r->chan, r->chanlen);
}

/* Add the subscriptions of a node the channel ends at. */
static void router_collect(struct router *r, struct router_node *n)
{
	for (struct sub *s = n->subs; s; s = s->next) {
		if (!router_candidate(r, s))
			continue;
		if (r->nres == r->rescap &&
		    router_grow((void **)&r->res, &r->rescap, r->nres + 1, sizeof *r->res) < 0) {
			r->oom = 1;
			return;
		}
		r->res[r->nres++] = s;
	}
	for (size_t i = 0; i < n->nq; i++) {
		struct router_qnode *qn = &n->q[i];
		struct router_group *g = qn->g;
		if (r->nqhits == r->qhitcap &&
		    router_grow((void **)&r->qhits, &r->qhitcap, r->nqhits + 1, sizeof *r->qhits) < 0) {
			r->oom = 1;
			return;
		}
		size_t h = r->nqhits++;
		r->qhits[h].qn = qn;
		r->qhits[h].next = ROUTER_NONE;
		if (g->epoch != r->epoch) {
			if (r->ntouched == r->touchcap &&
			    router_grow((void **)&r->touched, &r->touchcap, r->ntouched + 1,
					sizeof *r->touched) < 0) {
				r->oom = 1;
				return;
			}
			r->touched[r->ntouched++] = g;
			g->epoch = r->epoch;
			g->total = 0;
			g->rtotal = 0;
			g->first = h;
		} else {
			r->qhits[g->last].next = h;
		}
		g->last = h;
		g->total += qn->nlocal;
		g->rtotal += qn->n - qn->nlocal;
	}
}

/* Depth-first walk from n with tokens t[i..nt) left to match. */
static void router_walk(struct router *r, struct router_node *n, const struct router_tok *t,
			size_t i, size_t nt, int wild_ok)
{
	for (;;) {
		if (i == nt) {
			router_collect(r, n);
			return;
		}
		if (wild_ok) {
			if (n->gt)
				router_collect(r, n->gt); /* one or more tokens are left */
			if (n->star)
				router_walk(r, n->star, t, i + 1, nt, 1);
		}
		n = router_lit_find(n, t[i].p, t[i].len, t[i].hash);
		if (!n)
			return;
		i++;
		wild_ok = 1; /* only the first token is special */
	}
}

/* First token `$...` or `_INBOX`: a wildcard there does not match it. */
static int router_wild_first(const char *channel, size_t len)
{
	return !chan_is_system(channel, len) && !chan_is_inbox(channel, len);
}

/* The remote member of g to take: the k-th (by the turn) of the
 * candidates (router_candidate), or NULL when there is none. */
static struct sub *router_pick_remote(struct router *r, struct router_group *g)
{
	size_t cand = 0;
	for (size_t h = g->first; h != ROUTER_NONE; h = r->qhits[h].next) {
		const struct router_qnode *qn = r->qhits[h].qn;
		for (size_t j = qn->nlocal; j < qn->n; j++)
			cand += router_candidate(r, qn->m[j]);
	}
	if (!cand)
		return NULL;
	size_t k = (size_t)(g->turn++ % cand);
	for (size_t h = g->first; h != ROUTER_NONE; h = r->qhits[h].next) {
		const struct router_qnode *qn = r->qhits[h].qn;
		for (size_t j = qn->nlocal; j < qn->n; j++)
			if (router_candidate(r, qn->m[j]) && k-- == 0)
				return qn->m[j];
	}
	return NULL;
}

long router_match_from(struct router *r, const char *channel, size_t len, const void *exclude,
		       struct sub ***out)
{
	struct router_tok t[ROUTER_MAX_TOKENS];
	size_t nt = router_tokens(r, channel, len, t);

	*out = r->res;
	r->nres = 0;
	if (nt == 0 || r->count == 0)
		return 0;
	r->nqhits = 0;
	r->ntouched = 0;
	r->oom = 0;
	r->epoch++;
	r->exclude = exclude;
	r->chan = channel;
	r->chanlen = len;
	router_walk(r, r->root, t, 0, nt, router_wild_first(channel, len));
	/* one member per group, taking turns over all candidates of the
	 * group: a local one when the group has any here */
	for (size_t i = 0; i < r->ntouched && !r->oom; i++) {
		struct router_group *g = r->touched[i];
		struct sub *pick;
		if (g->total) {
			size_t k = (size_t)(g->turn++ % g->total);
			size_t h = g->first;
			while (k >= r->qhits[h].qn->nlocal) {
				k -= r->qhits[h].qn->nlocal;
				h = r->qhits[h].next;
			}
			pick = r->qhits[h].qn->m[k];
		} else if (!g->rtotal || !(pick = router_pick_remote(r, g))) {
			continue;
		}
		if (r->nres == r->rescap &&
		    router_grow((void **)&r->res, &r->rescap, r->nres + 1, sizeof *r->res) < 0) {
			r->oom = 1;
			break;
		}
		r->res[r->nres++] = pick;
	}
	r->exclude = NULL;
	if (r->oom) {
		r->nres = 0;
		*out = r->res;
		return -ENOMEM;
	}
	*out = r->res;
	return (long)r->nres;
}

long router_match(struct router *r, const char *channel, size_t len, struct sub ***out)
{
	return router_match_from(r, channel, len, NULL, out);
}

/* Like router_walk, but stops at the first node holding anything. */
static int router_any(const struct router_node *n, const struct router_tok *t, size_t i,
		      size_t nt, int wild_ok)
{
	for (;;) {
		if (i == nt)
			return n->subs || n->nq;
		if (wild_ok) {
			if (n->gt && (n->gt->subs || n->gt->nq))
				return 1;
			if (n->star && router_any(n->star, t, i + 1, nt, 1))
				return 1;
		}
		n = router_lit_find(n, t[i].p, t[i].len, t[i].hash);
		if (!n)
			return 0;
		i++;
		wild_ok = 1;
	}
}

int router_has_interest(struct router *r, const char *channel, size_t len)
{
	struct router_tok t[ROUTER_MAX_TOKENS];
	size_t nt;

	if (r->count == 0)
		return 0;
	nt = router_tokens(r, channel, len, t);
	if (nt == 0)
		return 0;
	return router_any(r->root, t, 0, nt, router_wild_first(channel, len));
}
