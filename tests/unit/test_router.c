/*
 * test_router.c: the subscription trie against chan_match (the reference):
 * the shared match table, then many random patterns and channels; adding,
 * removing and pruning; overlapping patterns; queue groups (one member per
 * message, even rotation, across patterns); router_has_interest.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "chan_cases.h"
#include "router.h"
#include "unit.h"

/* A subscription owning its strings, like a connection's would. */
static struct sub *sub_new(void *owner, uint64_t sid, const char *pat, const char *queue)
{
	struct sub *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->owner = owner;
	s->sid = sid;
	s->pattern = strdup(pat);
	s->pattern_len = strlen(pat);
	s->queue = queue ? strdup(queue) : NULL;
	return s;
}

static void sub_free(struct sub *s)
{
	if (!s)
		return;
	free(s->pattern);
	free(s->queue);
	free(s);
}

static long match(struct router *r, const char *ch, struct sub ***out)
{
	return router_match(r, ch, strlen(ch), out);
}

static int contains(struct sub **v, long n, const struct sub *s)
{
	int k = 0;
	for (long i = 0; i < n; i++)
		k += v[i] == s;
	return k;
}

static void test_empty(void)
{
	struct router *r = router_new();
	struct sub **out;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(router_count(r), 0);
	CU_ASSERT_EQUAL(match(r, "a.b", &out), 0);
	CU_ASSERT_EQUAL(router_has_interest(r, "a.b", 3), 0);
	router_free(r);
	router_free(NULL);
}

/* Each table entry alone in a router, then all of them in one. */
static void test_match_table(void)
{
	const size_t n = UNIT_NELEM(chan_match_cases);
	struct sub *subs[UNIT_NELEM(chan_match_cases)];
	struct router *r = router_new();
	struct sub **out;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	for (size_t i = 0; i < n; i++) {
		const struct chan_match_case *c = &chan_match_cases[i];
		subs[i] = sub_new(NULL, i, c->pat, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(subs[i]);
		CU_ASSERT_EQUAL_FATAL(router_add(r, subs[i]), 0);
		long k = match(r, c->name, &out);
		int hi = router_has_interest(r, c->name, strlen(c->name));
		if (k != c->match || hi != c->match)
			fprintf(stderr, "router: \"%s\" vs \"%s\": %ld, interest %d, want %d\n",
				c->pat, c->name, k, hi, c->match);
		CU_ASSERT_EQUAL(k, c->match);
		CU_ASSERT_EQUAL(hi, c->match);
		if (k == 1)
			CU_ASSERT_PTR_EQUAL(out[0], subs[i]);
		router_remove(r, subs[i]);
		CU_ASSERT_EQUAL(router_count(r), 0);
	}
	/* all at once: each channel gets exactly the patterns chan_match says */
	for (size_t i = 0; i < n; i++)
		CU_ASSERT_EQUAL_FATAL(router_add(r, subs[i]), 0);
	CU_ASSERT_EQUAL(router_count(r), n);
	for (size_t j = 0; j < n; j++) {
		const char *name = chan_match_cases[j].name;
		long k = match(r, name, &out);
		CU_ASSERT_FATAL(k >= 0);
		long want = 0;
		for (size_t i = 0; i < n; i++) {
			const char *pat = chan_match_cases[i].pat;
			int m = chan_match(pat, strlen(pat), name, strlen(name));
			want += m;
			CU_ASSERT_EQUAL(contains(out, k, subs[i]), m);
		}
		CU_ASSERT_EQUAL(k, want);
	}
	for (size_t i = 0; i < n; i++) {
		router_remove(r, subs[i]);
		sub_free(subs[i]);
	}
	CU_ASSERT_EQUAL(router_count(r), 0);
	router_free(r);
}

/* Random tokens from a small alphabet, so that patterns and channels meet. */
static const char *const rand_tokens[] = {"a", "b", "c", "foo", "bar", "$SYS", "_INBOX", "x-y"};

static void rand_name(char *out, int wild)
{
	int n = 1 + rand() % 5;
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		const char *t;
		int k = rand() % 10;
		if (wild && k == 0)
			t = "*";
		else if (wild && k == 1 && i == n - 1)
			t = ">";
		else {
			t = rand_tokens[rand() % UNIT_NELEM(rand_tokens)];
			if (i > 0 && t[0] == '$')
				t = "d";
		}
		if (i)
			out[o++] = '.';
		memcpy(out + o, t, strlen(t));
		o += strlen(t);
	}
	out[o] = 0;
}

static void test_random(void)
{
	enum { NSUB = 400, NCHAN = 3000 };
	struct sub *subs[NSUB];
	struct router *r = router_new();
	struct sub **out;
	char buf[128];
	long mismatches = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	srand(12345);
	for (int i = 0; i < NSUB; i++) {
		rand_name(buf, 1);
		CU_ASSERT_EQUAL_FATAL(chan_valid_pattern(buf, strlen(buf)), 0);
		subs[i] = sub_new(NULL, (uint64_t)i, buf, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(subs[i]);
		CU_ASSERT_EQUAL_FATAL(router_add(r, subs[i]), 0);
	}
	for (int round = 0; round < 3; round++) {
		for (int j = 0; j < NCHAN; j++) {
			rand_name(buf, 0);
			size_t len = strlen(buf);
			long k = router_match(r, buf, len, &out);
			long want = 0;
			for (int i = 0; i < NSUB; i++) {
				if (!subs[i])
					continue;
				int m = chan_match(subs[i]->pattern, subs[i]->pattern_len, buf, len);
				want += m;
				if (contains(out, k, subs[i]) != m)
					mismatches++;
			}
			if (k != want)
				mismatches++;
			if (router_has_interest(r, buf, len) != (want > 0))
				mismatches++;
		}
		/* again with every other subscription gone, then all */
		for (int i = round; i < NSUB; i += 2) {
			if (!subs[i])
				continue;
			router_remove(r, subs[i]);
			sub_free(subs[i]);
			subs[i] = NULL;
		}
	}
	if (mismatches)
		fprintf(stderr, "router vs chan_match: %ld mismatches\n", mismatches);
	CU_ASSERT_EQUAL(mismatches, 0);
	for (int i = 0; i < NSUB; i++) {
		if (subs[i]) {
			router_remove(r, subs[i]);
			sub_free(subs[i]);
		}
	}
	CU_ASSERT_EQUAL(router_count(r), 0);
	router_free(r);
}

/* Nodes go with their last subscription: a removed pattern no longer
 * matches, and under ASan nothing leaks whatever the removal order. */
static void test_add_remove_prune(void)
{
	static const char *const pats[] = {"a", "a.b", "a.b.c", "a.*.c", "a.>", ">", "*",
					   "a.b.c.d.e.f", "x.y", "$SYS.>", "_INBOX.*"};
	enum { N = UNIT_NELEM(pats) };
	struct sub *subs[N];
	struct router *r = router_new();
	struct sub **out;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	for (int order = 0; order < 3; order++) {
		for (size_t i = 0; i < N; i++) {
			subs[i] = sub_new(NULL, i, pats[i], NULL);
			CU_ASSERT_EQUAL_FATAL(router_add(r, subs[i]), 0);
		}
		CU_ASSERT_EQUAL(router_count(r), N);
		CU_ASSERT_EQUAL(match(r, "a.b.c", &out), 4); /* a.b.c a.*.c a.> > */
		for (size_t k = 0; k < N; k++) {
			size_t i = order == 0 ? k : order == 1 ? N - 1 - k : (k * 7) % N;
			router_remove(r, subs[i]);
			CU_ASSERT_PTR_NULL(subs[i]->node);
			long m = match(r, "a.b.c", &out);
			CU_ASSERT_EQUAL(contains(out, m, subs[i]), 0);
			sub_free(subs[i]);
		}
		CU_ASSERT_EQUAL(router_count(r), 0);
		CU_ASSERT_EQUAL(match(r, "a.b.c", &out), 0);
	}
	/* a deep pattern removed while a prefix stays: the prefix still works */
	struct sub *deep = sub_new(NULL, 1, "p.q.r.s", NULL), *pre = sub_new(NULL, 2, "p.q", NULL);
	CU_ASSERT_EQUAL(router_add(r, deep), 0);
	CU_ASSERT_EQUAL(router_add(r, pre), 0);
	router_remove(r, deep);
	CU_ASSERT_EQUAL(match(r, "p.q", &out), 1);
	CU_ASSERT_EQUAL(match(r, "p.q.r.s", &out), 0);
	CU_ASSERT_EQUAL(router_add(r, deep), 0); /* and it can come back */
	CU_ASSERT_EQUAL(match(r, "p.q.r.s", &out), 1);
	router_remove(r, pre);
	router_remove(r, deep);
	sub_free(pre);
	sub_free(deep);

	/* many siblings: the literal table grows and shrinks with deletions
	 * from the middle of probe chains */
	enum { M = 1000 };
	struct sub *many[M];
	char name[32];
	for (int i = 0; i < M; i++) {
		snprintf(name, sizeof name, "t.%d", i);
		many[i] = sub_new(NULL, (uint64_t)i, name, NULL);
		CU_ASSERT_EQUAL_FATAL(router_add(r, many[i]), 0);
	}
	for (int i = 0; i < M; i += 3) {
		router_remove(r, many[i]);
		sub_free(many[i]);
		many[i] = NULL;
	}
	int bad = 0;
	for (int i = 0; i < M; i++) {
		snprintf(name, sizeof name, "t.%d", i);
		long k = match(r, name, &out);
		if (k != (many[i] ? 1 : 0) || (k == 1 && out[0] != many[i]))
			bad++;
	}
	CU_ASSERT_EQUAL(bad, 0);
	for (int i = 0; i < M; i++) {
		if (many[i]) {
			router_remove(r, many[i]);
			sub_free(many[i]);
		}
	}
	CU_ASSERT_EQUAL(router_count(r), 0);
	router_free(r);
}

/* router_free() with subscriptions still in: frees the index only. */
static void test_free_nonempty(void)
{
	struct router *r = router_new();
	struct sub *a = sub_new(NULL, 1, "a.b", NULL), *b = sub_new(NULL, 2, "a.*", "q");

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(router_add(r, a), 0);
	CU_ASSERT_EQUAL(router_add(r, b), 0);
	router_free(r);
	sub_free(a);
	sub_free(b);
}

static void test_overlap(void)
{
	struct router *r = router_new();
	int owner;
	struct sub *a = sub_new(&owner, 1, "a.*", NULL), *b = sub_new(&owner, 2, "a.>", NULL);
	struct sub *c = sub_new(&owner, 3, "a.b", NULL), *d = sub_new(&owner, 4, "a.b", NULL);
	struct sub **out;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(router_add(r, a), 0);
	CU_ASSERT_EQUAL(router_add(r, b), 0);
	CU_ASSERT_EQUAL(match(r, "a.b", &out), 2); /* one owner, two deliveries */
	CU_ASSERT_EQUAL(contains(out, 2, a), 1);
	CU_ASSERT_EQUAL(contains(out, 2, b), 1);
	/* the same pattern twice: two subscriptions, two results */
	CU_ASSERT_EQUAL(router_add(r, c), 0);
	CU_ASSERT_EQUAL(router_add(r, d), 0);
	long k = match(r, "a.b", &out);
	CU_ASSERT_EQUAL(k, 4);
	CU_ASSERT_EQUAL(contains(out, k, c), 1);
	CU_ASSERT_EQUAL(contains(out, k, d), 1);
	CU_ASSERT_EQUAL(match(r, "a.b.c", &out), 1);
	router_remove(r, c);
	k = match(r, "a.b", &out);
	CU_ASSERT_EQUAL(k, 3);
	CU_ASSERT_EQUAL(contains(out, k, d), 1);
	CU_ASSERT_EQUAL(contains(out, k, c), 0);
	router_remove(r, a);
	router_remove(r, b);
	router_remove(r, d);
	CU_ASSERT_EQUAL(router_count(r), 0);
	sub_free(a);
	sub_free(b);
	sub_free(c);
	sub_free(d);
	router_free(r);
}

/* Queue members over N messages: each message to exactly one member, each
 * member within +-20% of N/k. */
static void check_even(struct router *r, const char *ch, struct sub **members, int k,
		       int extra, int n)
{
	int count[64] = {0};
	struct sub **out;
	int bad = 0;

	for (int m = 0; m < n; m++) {
		long got = match(r, ch, &out);
		if (got != 1 + extra) {
			bad++;
			continue;
		}
		int hits = 0;
		for (int i = 0; i < k; i++) {
			int c = contains(out, got, members[i]);
			count[i] += c;
			hits += c;
		}
		if (hits != 1)
			bad++;
	}
	CU_ASSERT_EQUAL(bad, 0);
	for (int i = 0; i < k; i++) {
		double share = (double)count[i] / ((double)n / k);
		if (share < 0.8 || share > 1.2)
			fprintf(stderr, "member %d got %d of %d\n", i, count[i], n);
		CU_ASSERT(share >= 0.8 && share <= 1.2);
	}
}

static void test_queue(void)
{
	struct router *r = router_new();
	int o1, o2;
	struct sub *w[5], *plain1, *plain2;
	struct sub **out;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	/* one group on one pattern */
	for (int i = 0; i < 5; i++) {
		w[i] = sub_new(i % 2 ? &o1 : &o2, (uint64_t)i, "work.*", "workers");
		CU_ASSERT_EQUAL_FATAL(router_add(r, w[i]), 0);
	}
	check_even(r, "work.a", w, 5, 0, 1000);
	/* with plain subscribers alongside: they get everything */
	plain1 = sub_new(&o1, 10, "work.a", NULL);
	plain2 = sub_new(&o2, 11, ">", NULL);
	CU_ASSERT_EQUAL(router_add(r, plain1), 0);
	CU_ASSERT_EQUAL(router_add(r, plain2), 0);
	check_even(r, "work.a", w, 5, 2, 1000);
	for (int m = 0; m < 10; m++) {
		long k = match(r, "work.a", &out);
		CU_ASSERT_EQUAL(k, 3);
		CU_ASSERT_EQUAL(contains(out, k, plain1), 1);
		CU_ASSERT_EQUAL(contains(out, k, plain2), 1);
	}
	/* a channel only the plain `>` sees */
	CU_ASSERT_EQUAL(match(r, "other", &out), 1);
	/* a member leaves: the others share its part */
	router_remove(r, w[2]);
	struct sub *rest[4] = {w[0], w[1], w[3], w[4]};
	check_even(r, "work.a", rest, 4, 2, 1000);
	CU_ASSERT_EQUAL(contains(out, match(r, "work.a", &out), w[2]), 0);
	router_add(r, w[2]);
	check_even(r, "work.a", w, 5, 2, 1000);
	for (int i = 0; i < 5; i++)
		router_remove(r, w[i]);
	CU_ASSERT_EQUAL(match(r, "work.a", &out), 2);
	router_remove(r, plain1);
	router_remove(r, plain2);
	CU_ASSERT_EQUAL(router_count(r), 0);
	for (int i = 0; i < 5; i++)
		sub_free(w[i]);
	sub_free(plain1);
	sub_free(plain2);
	router_free(r);
}

/* One group across different patterns: still one member per message; two
 * groups on one pattern: one member of each. */
static void test_queue_across_patterns(void)
{
	struct router *r = router_new();
	struct sub *g[6], *h[3];
	struct sub **out;
	static const char *const pats[] = {"a.b", "a.*", "a.>", "*.b", ">", "a.b"};

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	for (int i = 0; i < 6; i++) {
		g[i] = sub_new(NULL, (uint64_t)i, pats[i], "g");
		CU_ASSERT_EQUAL_FATAL(router_add(r, g[i]), 0);
	}
	check_even(r, "a.b", g, 6, 0, 1200);
	/* a channel only some patterns match: one of those */
	for (int m = 0; m < 100; m++) {
		long k = match(r, "a.c", &out);
		CU_ASSERT_EQUAL_FATAL(k, 1);
		CU_ASSERT(out[0] == g[1] || out[0] == g[2] || out[0] == g[4]);
	}
	CU_ASSERT_EQUAL(match(r, "z", &out), 1);
	CU_ASSERT_PTR_EQUAL(out[0], g[4]);
	/* a second group on the same patterns */
	for (int i = 0; i < 3; i++) {
		h[i] = sub_new(NULL, 100 + (uint64_t)i, pats[i], "h");
		CU_ASSERT_EQUAL_FATAL(router_add(r, h[i]), 0);
	}
	int hc[3] = {0};
	for (int m = 0; m < 300; m++) {
		long k = match(r, "a.b", &out);
		CU_ASSERT_EQUAL_FATAL(k, 2);
		int ng = 0, nh = 0;
		for (int i = 0; i < 6; i++)
			ng += contains(out, k, g[i]);
		for (int i = 0; i < 3; i++) {
			nh += contains(out, k, h[i]);
			hc[i] += contains(out, k, h[i]);
		}
		CU_ASSERT_EQUAL(ng, 1);
		CU_ASSERT_EQUAL(nh, 1);
	}
	for (int i = 0; i < 3; i++)
		CU_ASSERT(hc[i] >= 80 && hc[i] <= 120);
	/* the empty queue name is no group */
	struct sub *e = sub_new(NULL, 200, "a.b", "");
	CU_ASSERT_EQUAL(router_add(r, e), 0);
	for (int m = 0; m < 10; m++)
		CU_ASSERT_EQUAL(contains(out, match(r, "a.b", &out), e), 1);
	router_remove(r, e);
	sub_free(e);
	for (int i = 0; i < 6; i++) {
		router_remove(r, g[i]);
		sub_free(g[i]);
	}
	for (int i = 0; i < 3; i++) {
		router_remove(r, h[i]);
		sub_free(h[i]);
	}
	CU_ASSERT_EQUAL(router_count(r), 0);
	router_free(r);
}

static void test_interest(void)
{
	struct router *r = router_new();
	struct sub *q = sub_new(NULL, 1, "svc.*", "workers");
	struct sub *p = sub_new(NULL, 2, "$SYS.>", NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(router_has_interest(r, "svc.echo", 8), 0);
	CU_ASSERT_EQUAL(router_add(r, q), 0);
	CU_ASSERT_EQUAL(router_has_interest(r, "svc.echo", 8), 1); /* a queue counts */
	CU_ASSERT_EQUAL(router_has_interest(r, "svc", 3), 0);
	CU_ASSERT_EQUAL(router_has_interest(r, "svc.echo.x", 10), 0);
	/* a node on the path with no subscription of its own is no interest */
	CU_ASSERT_EQUAL(router_add(r, p), 0);
	CU_ASSERT_EQUAL(router_has_interest(r, "$SYS", 4), 0);
	CU_ASSERT_EQUAL(router_has_interest(r, "$SYS.x", 6), 1);
	router_remove(r, q);
	CU_ASSERT_EQUAL(router_has_interest(r, "svc.echo", 8), 0);
	router_remove(r, p);
	CU_ASSERT_EQUAL(router_has_interest(r, "$SYS.x", 6), 0);
	sub_free(q);
	sub_free(p);
	router_free(r);
}

/* The longest channel: 128 one-letter tokens against `*` chains. */
/* A queue group takes a local member while it has one, a remote one
 * (interest from a peer broker) otherwise; router_match_from() skips the
 * owner a message came from, plain or in a group. */
static void test_local_first(void)
{
	struct router *r = router_new();
	int conn, link1, link2;
	struct sub **out;
	struct sub *rem1 = sub_new(&link1, 1, "svc.*", "g"), *rem2 = sub_new(&link2, 2, "svc.x", "g");
	struct sub *loc = sub_new(&conn, 3, "svc.x", "g"), *plain = sub_new(&link1, 4, "svc.>", NULL);
	rem1->remote = 1;
	rem2->remote = 2;
	plain->remote = 1;
	CU_ASSERT_EQUAL(router_add(r, rem1), 0);
	CU_ASSERT_EQUAL(router_add(r, rem2), 0);
	/* remote members only: they take turns */
	int seen1 = 0, seen2 = 0;
	for (int i = 0; i < 10; i++) {
		CU_ASSERT_EQUAL_FATAL(match(r, "svc.x", &out), 1);
		seen1 += out[0] == rem1;
		seen2 += out[0] == rem2;
	}
	CU_ASSERT_EQUAL(seen1, 5);
	CU_ASSERT_EQUAL(seen2, 5);
	/* from link1: never back to it */
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL_FATAL(router_match_from(r, "svc.x", 5, &link1, &out), 1);
		CU_ASSERT_PTR_EQUAL(out[0], rem2);
	}
	CU_ASSERT_EQUAL(router_match_from(r, "svc.y", 5, &link1, &out), 0);
	/* a local member: always it */
	CU_ASSERT_EQUAL(router_add(r, loc), 0);
	for (int i = 0; i < 6; i++) {
		CU_ASSERT_EQUAL_FATAL(match(r, "svc.x", &out), 1);
		CU_ASSERT_PTR_EQUAL(out[0], loc);
	}
	/* plain subscriptions of the excluded owner are skipped too */
	CU_ASSERT_EQUAL(router_add(r, plain), 0);
	CU_ASSERT_EQUAL(match(r, "svc.x", &out), 2);
	CU_ASSERT_EQUAL_FATAL(router_match_from(r, "svc.x", 5, &link1, &out), 1);
	CU_ASSERT_PTR_EQUAL(out[0], loc);
	/* removing in any order keeps locals first */
	router_remove(r, rem1);
	CU_ASSERT_EQUAL_FATAL(match(r, "svc.x", &out), 2);
	router_remove(r, loc);
	CU_ASSERT_EQUAL_FATAL(router_match_from(r, "svc.x", 5, &link1, &out), 1);
	CU_ASSERT_PTR_EQUAL(out[0], rem2);
	router_remove(r, rem2);
	router_remove(r, plain);
	CU_ASSERT_EQUAL(router_count(r), 0);
	sub_free(rem1);
	sub_free(rem2);
	sub_free(loc);
	sub_free(plain);
	router_free(r);
}

/* A remote subscription whose op does not take the channel (a link whose
 * line does not carry it) is neither a match nor a queue group's member:
 * the group takes the member that does. */
static int takes_not_b(const struct sub *s, const char *ch, size_t len)
{
	(void)s;
	return !(len >= 2 && ch[0] == 'b' && ch[1] == '.');
}

static void test_takes(void)
{
	static const struct sub_ops picky = {NULL, takes_not_b};
	struct router *r = router_new();
	int link1, link2, conn;
	struct sub **out;
	struct sub *m1 = sub_new(&link1, 1, "*.x", "g"), *m2 = sub_new(&link2, 2, "b.x", "g");
	struct sub *p1 = sub_new(&link1, 3, "*.x", NULL), *loc = sub_new(&conn, 4, "*.x", NULL);
	m1->remote = p1->remote = 1;
	m2->remote = 2;
	m1->ops = p1->ops = &picky;
	loc->ops = &picky; /* asked of remote subscriptions only */
	CU_ASSERT_EQUAL(router_add(r, m1), 0);
	CU_ASSERT_EQUAL(router_add(r, m2), 0);
	CU_ASSERT_EQUAL(router_add(r, p1), 0);
	CU_ASSERT_EQUAL(router_add(r, loc), 0);
	for (int i = 0; i < 6; i++) {
		CU_ASSERT_EQUAL_FATAL(match(r, "b.x", &out), 2);
		CU_ASSERT(out[0] == loc || out[1] == loc);
		CU_ASSERT(out[0] == m2 || out[1] == m2);
	}
	int seen1 = 0, seen2 = 0;
	for (int i = 0; i < 6; i++) {
		CU_ASSERT_EQUAL_FATAL(match(r, "a.x", &out), 3); /* p1, loc, one member */
		for (int j = 0; j < 3; j++) {
			seen1 += out[j] == m1;
			seen2 += out[j] == m2;
		}
	}
	CU_ASSERT_EQUAL(seen1, 6); /* m2's pattern b.x does not match a.x */
	CU_ASSERT_EQUAL(seen2, 0);
	router_remove(r, m1);
	router_remove(r, m2);
	router_remove(r, p1);
	router_remove(r, loc);
	sub_free(m1);
	sub_free(m2);
	sub_free(p1);
	sub_free(loc);
	router_free(r);
}

static void test_long(void)
{
	struct router *r = router_new();
	char name[CHAN_MAX + 1], pat[CHAN_MAX + 1];
	struct sub **out;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	for (size_t i = 0; i < CHAN_MAX; i++)
		name[i] = pat[i] = i % 2 ? '.' : 'a';
	name[CHAN_MAX] = pat[CHAN_MAX] = 0;
	for (size_t i = 0; i < CHAN_MAX; i += 4)
		pat[i] = '*';
	CU_ASSERT_EQUAL_FATAL(chan_valid_pattern(pat, CHAN_MAX), 0);
	struct sub *s = sub_new(NULL, 1, pat, NULL);
	CU_ASSERT_EQUAL(router_add(r, s), 0);
	CU_ASSERT_EQUAL(router_match(r, name, CHAN_MAX, &out), 1);
	CU_ASSERT_EQUAL(router_match(r, name, CHAN_MAX - 2, &out), 0);
	router_remove(r, s);
	sub_free(s);
	router_free(r);
}

/* A rough figure for the log, not a pass/fail criterion. */
int main(void)
{
	static const struct unit_case cases[] = {
		{"empty router", test_empty},
		{"match table", test_match_table},
		{"random patterns vs chan_match", test_random},
		{"add, remove, prune", test_add_remove_prune},
		{"free with subscriptions in", test_free_nonempty},
		{"overlapping patterns", test_overlap},
		{"queue groups", test_queue},
		{"queue groups across patterns", test_queue_across_patterns},
		{"has_interest", test_interest},
		{"local members first, exclusion", test_local_first},
		{"remote subscriptions that do not take a channel", test_takes},
		{"longest channel", test_long},
	};
	return unit_run("router", cases, UNIT_NELEM(cases));
}
