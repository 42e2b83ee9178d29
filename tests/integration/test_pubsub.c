/*
 * test_pubsub.c: publish/subscribe through libipcbus against a real broker.
 *
 * Wildcards and the ipcbus_next() queue, queue groups, 10,000 messages in
 * order to one and to two subscribers, headers with binary values (NUL
 * bytes) and repeated keys, empty payloads, and what a connection does
 * around a broker restart: the subscriber reconnects and re-subscribes by
 * itself, publishes made while disconnected are kept up to the bound (then
 * IPCBUS_EBUFFER) and delivered after the reconnect, and ipcbus_flush()
 * returns the broker's refusal.  Run under AddressSanitizer it also checks
 * that nothing leaks: every connection is closed by the end of each case.
 */
#include <config.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "libpump.h"
#include "ipcbus.h"

#define T 5000

/* ---- helpers ---- */

static void lib_close_cb(void *arg)
{
	ipcbus_close(arg);
}

struct events {
	int disconnected, reconnected, errors, closed;
	int last_err;
	char text[256];
};

static void on_event(void *arg, int event, int err, const char *text)
{
	struct events *e = arg;
	switch (event) {
	case IPCBUS_EV_DISCONNECTED: e->disconnected++; break;
	case IPCBUS_EV_RECONNECTED: e->reconnected++; break;
	case IPCBUS_EV_ERROR: e->errors++; break;
	case IPCBUS_EV_CLOSED: e->closed++; break;
	}
	e->last_err = err;
	snprintf(e->text, sizeof e->text, "%s", text ? text : "");
}

/* Connect (closed at cleanup); ev may be NULL.  Short reconnect backoff so
 * the restart cases are quick. */
static ipcbus *lib_connect(const struct harness_broker *b, const char *name, struct events *ev,
			   size_t reconnect_buffer)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	ipcbus *c = NULL;

	o.name = name;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 200;
	o.reconnect_buffer = reconnect_buffer;
	if (ev) {
		o.on_event = on_event;
		o.event_arg = ev;
	}
	int rc = ipcbus_connect(&c, b->url, &o);
	if (rc < 0) {
		fprintf(stderr, "  connect %s: %s\n", b->url, ipcbus_strerror(rc));
		CU_FAIL("ipcbus_connect");
		return NULL;
	}
	harness_defer(lib_close_cb, c);
	return c;
}

struct counter {
	uint64_t n;        /* messages */
	uint64_t next;     /* expected sequence number */
	int out_of_order;
	uint64_t sid;      /* the subscription it arrived on */
	uint64_t want;     /* for counter_done */
};

static void counter_cb(void *arg, const ipcbus_msg *m)
{
	struct counter *k = arg;
	uint64_t seq = 0;
	if (m->len >= 8)
		memcpy(&seq, m->data, 8);
	if (seq != k->next)
		k->out_of_order++;
	k->next = seq + 1;
	k->sid = m->sid;
	k->n++;
}

static int counter_done(void *arg)
{
	struct counter *k = arg;
	return k->n >= k->want;
}

static int counters_done(void *arg)
{
	struct counter **k = arg;
	for (; *k; k++)
		if ((*k)->n < (*k)->want)
			return 0;
	return 1;
}

static int is_disconnected(void *arg)
{
	return !ipcbus_connected(arg);
}

static int is_connected(void *arg)
{
	return ipcbus_connected(arg);
}

static int publish_seq(ipcbus *p, const char *chan, uint64_t seq, size_t size)
{
	uint8_t buf[4096] = {0};
	memcpy(buf, &seq, 8);
	return ipcbus_publish(p, chan, buf, size < 8 ? 8 : size);
}

/* What a callback subscription saw. */
struct seen {
	size_t n;
	uint64_t sid[32];
	char channel[32][64];
};

static void seen_cb(void *arg, const ipcbus_msg *m)
{
	struct seen *s = arg;
	if (s->n < 32) {
		s->sid[s->n] = m->sid;
		snprintf(s->channel[s->n], 64, "%.*s", (int)m->channel_len, m->channel);
	}
	s->n++;
}

/* ---- cases ---- */

static void test_wildcards(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *c = lib_connect(b, "sub", NULL, 0);
	ipcbus *p = lib_connect(b, "pub", NULL, 0);
	CU_ASSERT_FATAL(c && p);
	uint64_t s1 = 0, s2 = 0, s3 = 0;
	struct seen deep = {0}, all = {0};
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "w.*", NULL, NULL, NULL, &s1), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "w.>", NULL, seen_cb, &deep, &s2), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, ">", NULL, seen_cb, &all, &s3), 0);
	CU_ASSERT(s1 && s2 && s3 && s1 != s2 && s2 != s3);
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "w..x", NULL, NULL, NULL, NULL), IPCBUS_ECHANNEL);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);

	CU_ASSERT_EQUAL(ipcbus_publish(p, "w.a", "1", 1), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(p, "w.a.b", "2", 1), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(p, "_INBOX.zz", "3", 1), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(p, "x", "4", 1), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(p, T), 0);

	ipcbus_msg *m = NULL;
	CU_ASSERT_EQUAL_FATAL(ipcbus_next(c, &m, T), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT(m->channel_len == 3 && memcmp(m->channel, "w.a", 3) == 0);
	CU_ASSERT(m->len == 1 && memcmp(m->data, "1", 1) == 0);
	CU_ASSERT_EQUAL(m->sid, s1);
	CU_ASSERT_PTR_NULL(m->reply_to);
	ipcbus_msg_free(m);
	m = NULL;
	CU_ASSERT(ipcbus_next(c, &m, 300) < 0); /* nothing else matches w.* */
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT_EQUAL(ipcbus_next(c, &m, 0), IPCBUS_EAGAIN);
	lib_pump(&c, 1, NULL, NULL, 200);

	CU_ASSERT_EQUAL(deep.n, 2);
	CU_ASSERT_STRING_EQUAL(deep.channel[0], "w.a");
	CU_ASSERT_STRING_EQUAL(deep.channel[1], "w.a.b");
	CU_ASSERT_EQUAL(deep.sid[0], s2);
	CU_ASSERT_EQUAL(all.n, 3); /* w.a, w.a.b, x: not _INBOX.zz */
	for (size_t i = 0; i < all.n && i < 32; i++) {
		CU_ASSERT_NOT_EQUAL(strncmp(all.channel[i], "_INBOX", 6), 0);
		CU_ASSERT_EQUAL(all.sid[i], s3);
	}
	/* unsubscribed: no more */
	CU_ASSERT_EQUAL(ipcbus_unsubscribe(c, s3), 0);
	CU_ASSERT_EQUAL(ipcbus_unsubscribe(c, s3), IPCBUS_ENOSUB);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(p, "x", "5", 1), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(p, T), 0);
	lib_pump(&c, 1, NULL, NULL, 200);
	CU_ASSERT_EQUAL(all.n, 3);
}

static void test_queue_groups(void)
{
	enum { N = 300, M = 3 };
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *m[M];
	struct counter k[M];
	memset(k, 0, sizeof k);
	for (int i = 0; i < M; i++) {
		m[i] = lib_connect(b, "member", NULL, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(m[i]);
		CU_ASSERT_EQUAL(ipcbus_subscribe(m[i], "lq.work", "grp", counter_cb, &k[i], NULL), 0);
		CU_ASSERT_EQUAL(ipcbus_flush(m[i], T), 0);
	}
	ipcbus *p = lib_connect(b, "pub", NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	for (uint64_t i = 0; i < N; i++)
		CU_ASSERT_EQUAL(publish_seq(p, "lq.work", i, 8), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(p, T), 0);
	struct counter total = {0};
	uint64_t deadline = harness_now() + 10000;
	while (harness_now() < deadline) {
		lib_pump(m, M, NULL, NULL, 50);
		total.n = k[0].n + k[1].n + k[2].n;
		if (total.n >= N)
			break;
	}
	lib_pump(m, M, NULL, NULL, 200); /* anything extra would show now */
	total.n = k[0].n + k[1].n + k[2].n;
	CU_ASSERT_EQUAL(total.n, N);
	for (int i = 0; i < M; i++) {
		fprintf(stderr, "  (member %d: %llu)\n", i, (unsigned long long)k[i].n);
		CU_ASSERT(k[i].n > 0);
	}
}

static void test_ordered_10000(void)
{
	enum { N = 10000 };
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *s[2];
	struct counter k1 = {.want = N}, k2 = {.want = N};
	struct counter *ks[] = {&k1, &k2, NULL};
	s[0] = lib_connect(b, "sub1", NULL, 0);
	s[1] = lib_connect(b, "sub2", NULL, 0);
	ipcbus *p = lib_connect(b, "pub", NULL, 0);
	CU_ASSERT_FATAL(s[0] && s[1] && p);
	CU_ASSERT_EQUAL(ipcbus_subscribe(s[0], "ord", NULL, counter_cb, &k1, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(s[0], T), 0);

	/* one subscriber */
	for (uint64_t i = 0; i < N; i++)
		if (publish_seq(p, "ord", i, 16) != 0) {
			CU_FAIL("publish");
			break;
		}
	CU_ASSERT_EQUAL(ipcbus_flush(p, 10000), 0);
	CU_ASSERT_EQUAL(lib_pump(s, 1, counter_done, &k1, 15000), 0);
	CU_ASSERT_EQUAL(k1.n, N);
	CU_ASSERT_EQUAL(k1.out_of_order, 0);

	/* two subscribers, the same stream each */
	k1 = (struct counter){.want = N};
	CU_ASSERT_EQUAL(ipcbus_subscribe(s[1], "ord", NULL, counter_cb, &k2, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(s[1], T), 0);
	for (uint64_t i = 0; i < N; i++)
		if (publish_seq(p, "ord", i, 16) != 0) {
			CU_FAIL("publish");
			break;
		}
	CU_ASSERT_EQUAL(ipcbus_flush(p, 10000), 0);
	CU_ASSERT_EQUAL(lib_pump(s, 2, counters_done, ks, 15000), 0);
	CU_ASSERT_EQUAL(k1.n, N);
	CU_ASSERT_EQUAL(k2.n, N);
	CU_ASSERT_EQUAL(k1.out_of_order, 0);
	CU_ASSERT_EQUAL(k2.out_of_order, 0);
}

static void test_headers_and_empty(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *c = lib_connect(b, "sub", NULL, 0);
	ipcbus *p = lib_connect(b, "pub", NULL, 0);
	CU_ASSERT_FATAL(c && p);
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "hd.>", NULL, NULL, NULL, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);

	static const char bin[] = {'a', 0, 'b', (char)0xff};
	const ipcbus_header h[] = {
		{.key = "bin", .value = bin, .value_len = 4},
		{.key = "k", .value = "v1"},
		{.key = "k", .value = "v2"},
		{.key = "empty", .value = ""},
		{.key = "Key", .value = "case"},
	};
	static const char payload[] = {0, 1, 0, 2};
	CU_ASSERT_EQUAL(ipcbus_publish_ex(p, "hd.x", "reply.here", h, 5, payload, 4), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(p, "hd.empty", NULL, 0), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(p, "hd.empty", "", 0), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(p, T), 0);

	ipcbus_msg *m = NULL;
	CU_ASSERT_EQUAL_FATAL(ipcbus_next(c, &m, T), 0);
	CU_ASSERT(m->len == 4 && memcmp(m->data, payload, 4) == 0);
	CU_ASSERT(m->reply_to && m->reply_to_len == 10 && memcmp(m->reply_to, "reply.here", 10) == 0);
	CU_ASSERT_EQUAL_FATAL(m->nheaders, 5);
	for (size_t i = 0; i < 5; i++) {
		size_t vl = h[i].value_len ? h[i].value_len : strlen(h[i].value);
		CU_ASSERT(m->headers[i].key_len == strlen(h[i].key) &&
			  memcmp(m->headers[i].key, h[i].key, strlen(h[i].key)) == 0);
		CU_ASSERT(m->headers[i].value_len == vl &&
			  (vl == 0 || memcmp(m->headers[i].value, h[i].value, vl) == 0));
	}
	size_t len = 99;
	const char *v = ipcbus_msg_header(m, "k", &len);
	CU_ASSERT(v && len == 2 && memcmp(v, "v1", 2) == 0); /* the first of a repeated key */
	v = ipcbus_msg_header(m, "bin", &len);
	CU_ASSERT(v && len == 4 && memcmp(v, bin, 4) == 0);
	v = ipcbus_msg_header(m, "empty", &len);
	CU_ASSERT(v && len == 0);
	CU_ASSERT_PTR_NULL(ipcbus_msg_header(m, "KEY", &len)); /* keys are case-sensitive */
	ipcbus_msg *copy = ipcbus_msg_dup(m);
	ipcbus_msg_free(m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
	v = ipcbus_msg_header(copy, "bin", &len);
	CU_ASSERT(v && len == 4 && memcmp(v, bin, 4) == 0);
	ipcbus_msg_free(copy);

	for (int i = 0; i < 2; i++) {
		m = NULL;
		CU_ASSERT_EQUAL_FATAL(ipcbus_next(c, &m, T), 0);
		CU_ASSERT_EQUAL(m->len, 0);
		CU_ASSERT_EQUAL(m->nheaders, 0);
		CU_ASSERT(m->channel_len == 8 && memcmp(m->channel, "hd.empty", 8) == 0);
		ipcbus_msg_free(m);
	}
}

static void test_restart(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct events ev = {0};
	struct counter k = {0};
	ipcbus *s = lib_connect(b, "survivor", &ev, 0);
	ipcbus *p = lib_connect(b, "pub", NULL, 0);
	CU_ASSERT_FATAL(s && p);
	uint64_t sid = 0;
	CU_ASSERT_EQUAL(ipcbus_subscribe(s, "rs.>", NULL, counter_cb, &k, &sid), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(s, T), 0);
	CU_ASSERT_EQUAL(publish_seq(p, "rs.a", 0, 8), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(p, T), 0);
	k.want = 1;
	CU_ASSERT_EQUAL(lib_pump(&s, 1, counter_done, &k, T), 0);

	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(lib_pump(&s, 1, is_disconnected, s, T), 0);
	CU_ASSERT(ev.disconnected > 0);
	CU_ASSERT_EQUAL(ev.closed, 0);
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	CU_ASSERT_EQUAL(lib_pump(&s, 1, is_connected, s, 10000), 0);
	CU_ASSERT_EQUAL(lib_pump(&p, 1, is_connected, p, 10000), 0);
	uint64_t deadline = harness_now() + 10000;
	while (ev.reconnected == 0 && harness_now() < deadline)
		lib_pump(&s, 1, NULL, NULL, 50);
	CU_ASSERT(ev.reconnected > 0);
	/* the subscription is back: messages published now arrive, on the
	 * same sid (retry: the SUB may still be on its way) */
	deadline = harness_now() + 10000;
	uint64_t seq = 1;
	while (k.n < 2 && harness_now() < deadline) {
		k.next = seq;
		CU_ASSERT_EQUAL(publish_seq(p, "rs.b", seq++, 8), 0);
		ipcbus_flush(p, T);
		lib_pump(&s, 1, NULL, NULL, 100);
	}
	CU_ASSERT(k.n >= 2);
	CU_ASSERT_EQUAL(k.sid, sid);
}

static void test_disconnected_buffer(void)
{
	enum { BOUND = 64 << 10, SIZE = 1024 };
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct events sev = {0}, pev = {0};
	struct counter k = {0};
	ipcbus *s = lib_connect(b, "sub", &sev, 0);
	ipcbus *p = lib_connect(b, "pub", &pev, BOUND);
	CU_ASSERT_FATAL(s && p);
	CU_ASSERT_EQUAL(ipcbus_subscribe(s, "buf", NULL, counter_cb, &k, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(s, T), 0);

	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(lib_pump(&p, 1, is_disconnected, p, T), 0);
	CU_ASSERT_EQUAL(lib_pump(&s, 1, is_disconnected, s, T), 0);

	/* kept while disconnected up to the bound, then IPCBUS_EBUFFER */
	uint64_t n_ok = 0;
	int rc = 0;
	static uint8_t big[2048];
	uint64_t marker = UINT64_MAX;
	memcpy(big, &marker, 8);
	for (int i = 0; i < 1000; i++) {
		if (i == 5) /* over the next broker's max-payload: see below */
			CU_ASSERT_EQUAL(ipcbus_publish(p, "buf", big, sizeof big), 0);
		rc = publish_seq(p, "buf", n_ok, SIZE);
		if (rc < 0)
			break;
		n_ok++;
	}
	fprintf(stderr, "  (%llu publishes kept while disconnected, then %s)\n",
		(unsigned long long)n_ok, ipcbus_strerror(rc));
	CU_ASSERT_EQUAL(rc, IPCBUS_EBUFFER);
	CU_ASSERT(n_ok >= BOUND / SIZE / 2 && n_ok <= BOUND / SIZE);
	CU_ASSERT_EQUAL(publish_seq(p, "buf", n_ok, SIZE), IPCBUS_EBUFFER);

	/* the new broker has a smaller max-payload than the one the
	 * publisher knew: the big message is refused there */
	free(b->lines);
	b->lines = strdup("max-payload 1536\n");
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	/* the subscriber first, so nothing is published before it is back */
	CU_ASSERT_EQUAL(lib_pump(&s, 1, is_connected, s, 10000), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(s, T), 0);
	CU_ASSERT_EQUAL(lib_pump(&p, 1, is_connected, p, 10000), 0);
	rc = ipcbus_flush(p, T);
	CU_ASSERT(rc < 0 && rc != IPCBUS_ETIMEOUT && rc != IPCBUS_EDISCONNECTED);
	fprintf(stderr, "  (flush: %s: %s)\n", ipcbus_strerror(rc), ipcbus_last_error(p));
	CU_ASSERT_PTR_NOT_NULL(strstr(ipcbus_last_error(p), "max-payload"));
	CU_ASSERT(pev.errors > 0);
	CU_ASSERT_EQUAL(ipcbus_flush(p, T), 0); /* reported once */

	k.want = n_ok;
	CU_ASSERT_EQUAL(lib_pump(&s, 1, counter_done, &k, 10000), 0);
	lib_pump(&s, 1, NULL, NULL, 100);
	CU_ASSERT_EQUAL(k.n, n_ok);
	CU_ASSERT_EQUAL(k.out_of_order, 0);
	CU_ASSERT_EQUAL(k.next, n_ok);
	/* and publishing works normally again */
	CU_ASSERT_EQUAL(publish_seq(p, "buf", n_ok, SIZE), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(p, T), 0);
}

static void test_subscribe_refused(void)
{
	struct harness_broker *b = harness_broker_up("max-subscriptions 2\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct events ev = {0};
	ipcbus *c = lib_connect(b, "greedy", &ev, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "a", NULL, NULL, NULL, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "b", NULL, NULL, NULL, NULL), 0);
	int rc = ipcbus_subscribe(c, "c", NULL, NULL, NULL, NULL);
	if (rc == 0) {
		/* the broker's refusal comes through flush */
		rc = ipcbus_flush(c, T);
		CU_ASSERT(rc < 0 && rc != IPCBUS_ETIMEOUT);
		CU_ASSERT_PTR_NOT_NULL(strstr(ipcbus_last_error(c), "max-subscriptions"));
		CU_ASSERT(ev.errors > 0);
	} else {
		CU_ASSERT(rc < 0); /* refused locally from WELCOME's limit: fine too */
	}
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);
	CU_ASSERT(ipcbus_connected(c)); /* recoverable */
}

static void test_no_broker(void)
{
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char url[128];
	snprintf(url, sizeof url, "unix://%s/nobody.sock", dir);
	ipcbus *c = NULL;
	uint64_t t0 = harness_now();
	int rc = ipcbus_connect(&c, url, NULL);
	uint64_t dt = harness_now() - t0;
	CU_ASSERT(rc < 0);
	CU_ASSERT_PTR_NULL(c);
	fprintf(stderr, "  (%s after %llu ms)\n", ipcbus_strerror(rc), (unsigned long long)dt);
	CU_ASSERT(dt < 2000);
	CU_ASSERT_EQUAL(ipcbus_connect(&c, "bogus://x", NULL), IPCBUS_EURL);
}

static const struct harness_case cases[] = {
	{"wildcards", test_wildcards},
	{"queue_groups", test_queue_groups},
	{"ordered_10000", test_ordered_10000},
	{"headers_and_empty", test_headers_and_empty},
	{"restart", test_restart},
	{"disconnected_buffer", test_disconnected_buffer},
	{"subscribe_refused", test_subscribe_refused},
	{"no_broker", test_no_broker},
};

int main(int argc, char **argv)
{
	return harness_main("pubsub", cases, HARNESS_NELEM(cases), 0, 120, argc, argv);
}
