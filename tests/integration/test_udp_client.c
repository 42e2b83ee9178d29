/*
 * test_udp_client.c: libipcbus and the CLI over udp:// against a real
 * broker that listens on a UDP port beside its Unix socket (the broker's
 * own UDP rules are tests/integration/test_udp.c's):
 *
 *   pubsub_both_ways  a udp client and a unix client publish to each other
 *   cli               `ipcbus sub -u udp://...` prints what `ipcbus pub -u
 *                     udp://...` sends (a message, a stdin line); pub to a
 *                     port where nothing listens fails at once
 *   no_session        the broker restarts while the client is silent: its
 *                     next datagram gets E_NO_SESSION, the request in flight
 *                     fails with IPCBUS_EDISCONNECTED, the client says HELLO
 *                     again and resubscribes (same sid)
 *   broker_stopped    a stopped broker is noticed through ECONNREFUSED,
 *                     then the client comes back when it starts again
 *   lease_keepalive   ping-interval 300: a dispatched client stays
 *                     subscribed through 2 s of idleness (its PINGs keep the
 *                     lease; ipcbus_timeout() says when), one left alone
 *                     loses its session and subscription, and knows it:
 *                     its next publish waits for the new session, which
 *                     it opens and subscribes again when dispatched
 *   sub_retransmit    $IPCBUS_TEST_UDP_DROP=3 loses the third datagram (the
 *                     SUB) and the sixth (the UNSUB): both are resent, and
 *                     ipcbus_flush() waits for their answers
 *   hello_retransmit  the HELLO with the cookie lost (=2): resent, connected;
 *                     every datagram lost (=1): IPCBUS_ETIMEOUT
 *   oversize          the UDP limits of WELCOME: a publish, headers or a
 *                     request over them refused by the library before
 *                     sending (IPCBUS_ETOOBIG); exactly max_payload goes
 *   token             `token` on the broker: the URL's, $IPCBUS_TOKEN, a
 *                     wrong one and none (IPCBUS_EPERM, closed for good)
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "ipcbus.h"
#include "libpump.h"

#define T 5000

/* ---- helpers ---- */

struct udp_broker {
	struct harness_broker *b;
	int port;
	char url[128]; /* udp://127.0.0.1:PORT */
};

/* A broker on its Unix socket and udp://127.0.0.1:PORT, with lines. */
static int udp_up(struct udp_broker *u, const char *lines)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char text[1024];
		u->port = harness_free_port(AF_INET);
		if (!u->port)
			break;
		snprintf(text, sizeof text, "listen udp://127.0.0.1:%d\n%s", u->port,
			 lines ? lines : "");
		snprintf(u->url, sizeof u->url, "udp://127.0.0.1:%d", u->port);
		u->b = harness_broker_new(text);
		if (!u->b)
			break;
		if (harness_broker_start(u->b, NULL) == 0)
			return 0;
		int taken = harness_broker_log_has(u->b, "in use");
		harness_broker_free(u->b);
		u->b = NULL;
		if (!taken)
			break;
	}
	CU_FAIL("no broker on a UDP port");
	return -1;
}

#define UP(u, lines)                  \
	struct udp_broker u;          \
	if (udp_up(&u, lines) < 0)    \
		return

struct events {
	int disconnected, reconnected, errors, closed, failed;
	int last_err;
	char text[256];      /* the last event's */
	char disc_text[256]; /* the last IPCBUS_EV_DISCONNECTED's */
};

static void on_event(void *arg, int event, int err, const char *text)
{
	struct events *e = arg;
	switch (event) {
	case IPCBUS_EV_DISCONNECTED:
		e->disconnected++;
		snprintf(e->disc_text, sizeof e->disc_text, "%s", text ? text : "");
		break;
	case IPCBUS_EV_RECONNECTED: e->reconnected++; break;
	case IPCBUS_EV_ERROR: e->errors++; break;
	case IPCBUS_EV_CLOSED: e->closed++; break;
	case IPCBUS_EV_CONNECT_FAILED: e->failed++; break;
	}
	e->last_err = err;
	snprintf(e->text, sizeof e->text, "%s", text ? text : "");
}

static void lib_close_cb(void *arg)
{
	ipcbus_close(arg);
}

/* Connect to url (closed at cleanup): 0 and *out, or the code. */
static int lib_try(const char *url, const char *name, struct events *ev, int timeout_ms,
		   ipcbus **out)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	o.name = name;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 200;
	o.connect_timeout_ms = timeout_ms;
	if (ev) {
		o.on_event = on_event;
		o.event_arg = ev;
	}
	*out = NULL;
	int rc = ipcbus_connect(out, url, &o);
	if (rc == 0)
		harness_defer(lib_close_cb, *out);
	return rc;
}

static ipcbus *lib(const char *url, const char *name, struct events *ev)
{
	ipcbus *c;
	int rc = lib_try(url, name, ev, T, &c);
	if (rc < 0) {
		fprintf(stderr, "  connect %s to %s: %s\n", name, url, ipcbus_strerror(rc));
		CU_FAIL("ipcbus_connect");
	}
	return c;
}

struct box {
	int n;
	uint64_t sid;
	size_t len;
	char channel[64];
	char text[64];
};

static void box_cb(void *arg, const ipcbus_msg *m)
{
	struct box *k = arg;
	k->n++;
	k->sid = m->sid;
	k->len = m->len;
	snprintf(k->channel, sizeof k->channel, "%.*s", (int)m->channel_len, m->channel);
	snprintf(k->text, sizeof k->text, "%.*s", m->len < 64 ? (int)m->len : 0,
		 (const char *)m->data);
}

struct want {
	const struct box *k;
	int n;
};

static int box_has(void *arg)
{
	const struct want *w = arg;
	return w->k->n >= w->n;
}

static int is_connected(void *arg)
{
	return ipcbus_connected(arg);
}

static int is_disconnected(void *arg)
{
	return !ipcbus_connected(arg);
}

static int reconnected(void *arg)
{
	const struct events *e = arg;
	return e->reconnected > 0;
}

struct probe {
	uint64_t id;
	int refused;
};

static void probe_frame(void *arg, struct harness_raw *r)
{
	struct probe *p = arg;
	if (r->f.type == IPCBUS__FRAME_TYPE__ERR && r->f.id == p->id &&
	    r->err_code == IPCBUS__ERR_CODE__E_NO_RESPONDERS)
		p->refused = 1;
}

/* 1 when a request on channel from r finds nobody subscribed. */
static int nobody_on(struct harness_raw *r, const char *channel)
{
	struct probe p = {.id = ++r->next_id};
	if (harness_raw_pub(r, p.id, channel, "_INBOX.udptest.probe", "probe", 5) < 0 ||
	    harness_raw_barrier(r, T, probe_frame, &p) != 1)
		return 0;
	return p.refused;
}

/* ---- pub/sub both ways ---- */

static void test_pubsub_both_ways(void)
{
	UP(u, "");
	ipcbus *t = lib(u.url, "on-udp", NULL);
	ipcbus *x = lib(u.b->url, "on-unix", NULL);
	CU_ASSERT_FATAL(t && x);
	struct box kt = {0}, kx = {0};
	uint64_t st = 0, sx = 0;
	CU_ASSERT_EQUAL(ipcbus_subscribe(t, "ps.to-udp.*", NULL, box_cb, &kt, &st), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(x, "ps.to-unix.>", NULL, box_cb, &kx, &sx), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(x, T), 0);

	const ipcbus_header h = {.key = "via", .value = "udp"};
	CU_ASSERT_EQUAL(ipcbus_publish(x, "ps.to-udp.a", "from unix", 9), 0);
	CU_ASSERT_EQUAL(ipcbus_publish_ex(t, "ps.to-unix.b.c", NULL, &h, 1, "from udp", 8), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(x, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	ipcbus *all[] = {t, x};
	struct want wt = {&kt, 1}, wx = {&kx, 1};
	CU_ASSERT_EQUAL(lib_pump(all, 2, box_has, &wt, T), 0);
	CU_ASSERT_EQUAL(lib_pump(all, 2, box_has, &wx, T), 0);
	CU_ASSERT_STRING_EQUAL(kt.text, "from unix");
	CU_ASSERT_STRING_EQUAL(kt.channel, "ps.to-udp.a");
	CU_ASSERT_EQUAL(kt.sid, st);
	CU_ASSERT_STRING_EQUAL(kx.text, "from udp");
	CU_ASSERT_STRING_EQUAL(kx.channel, "ps.to-unix.b.c");
	CU_ASSERT_EQUAL(kx.sid, sx);

	/* the headers came along, and ipcbus_next() works over UDP too */
	CU_ASSERT_EQUAL(ipcbus_subscribe(t, "ps.queued", NULL, NULL, NULL, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	CU_ASSERT_EQUAL(ipcbus_publish_ex(x, "ps.queued", NULL, &h, 1, "q", 1), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(x, T), 0);
	ipcbus_msg *m = NULL;
	CU_ASSERT_EQUAL(ipcbus_next(t, &m, T), 0);
	if (m) {
		size_t len = 0;
		const char *v = ipcbus_msg_header(m, "via", &len);
		CU_ASSERT(v && len == 3 && memcmp(v, "udp", 3) == 0);
		CU_ASSERT(m->len == 1 && memcmp(m->data, "q", 1) == 0);
		ipcbus_msg_free(m);
	}
}

/* ---- the CLI ---- */

static void test_cli(void)
{
	UP(u, "");
	struct harness_raw *raw = harness_raw_open(u.b, "prober");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	struct harness_proc *sub =
		harness_cli_start(NULL, 0, "sub", "-u", u.url, "-c", "3", "-v", "cli.>", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
	/* subscribed once a probe gets through (it prints "cli.p probe") */
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(raw, "cli.p", T), 0);

	struct harness_proc *p = harness_cli(T, NULL, 0, "pub", "-u", u.url, "cli.a", "one", NULL);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(p->status, 0);
	if (p->status != 0)
		fprintf(stderr, "  pub: %s\n", p->err);
	p = harness_cli(T, "two\n", 4, "pub", "-u", u.url, "cli.b", NULL);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(p->status, 0);
	CU_ASSERT_EQUAL(harness_proc_wait(sub, T), 0);
	CU_ASSERT_STRING_EQUAL(sub->out, "cli.p probe\ncli.a one\ncli.b two\n");
	if (strcmp(sub->out, "cli.p probe\ncli.a one\ncli.b two\n") != 0)
		fprintf(stderr, "  sub printed: [%s], stderr: %s\n", sub->out, sub->err);

	/* nobody on the port: a clear error at once, not a hang */
	int dead = harness_free_port(AF_INET);
	char url[64];
	snprintf(url, sizeof url, "udp://127.0.0.1:%d", dead);
	uint64_t t0 = harness_now();
	p = harness_cli(T, NULL, 0, "pub", "-u", url, "cli.a", "lost", NULL);
	uint64_t dt = harness_now() - t0;
	CU_ASSERT_FATAL(p != NULL);
	fprintf(stderr, "  (pub to a dead port: exit %d after %llu ms: %s)", p->status,
		(unsigned long long)dt, p->err);
	CU_ASSERT_EQUAL(p->status, 1);
	CU_ASSERT(dt < 2000);
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "refused"));
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, url));
}

/* ---- sessions the broker forgot ---- */

struct answer {
	int done, status;
};

static void answer_cb(void *arg, int status, const ipcbus_msg *reply)
{
	struct answer *a = arg;
	(void)reply;
	a->done++;
	a->status = status;
}

static int answered(void *arg)
{
	return ((struct answer *)arg)->done > 0;
}

static void test_no_session(void)
{
	UP(u, ""); /* the default lease, 30 s: no PING during the case */
	struct events ev = {0};
	struct box k = {0};
	uint64_t sid = 0;
	ipcbus *c = lib(u.url, "survivor", &ev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "ns.>", NULL, box_cb, &k, &sid), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);
	int t = ipcbus_timeout(c);
	CU_ASSERT(t > 5000 && t <= 10000); /* the keepalive, at a third of 30 s */

	/* a restart the client does not see: it sends nothing meanwhile */
	CU_ASSERT_EQUAL(harness_broker_stop(u.b), 0);
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(u.b, NULL), 0);
	lib_pump(&c, 1, NULL, NULL, 100);
	CU_ASSERT(ipcbus_connected(c));
	CU_ASSERT_EQUAL(ev.disconnected, 0);

	/* its next datagram, a request, gets E_NO_SESSION: the request fails
	 * as on any disconnect, and the client comes back by itself */
	struct answer a = {0};
	CU_ASSERT_EQUAL(ipcbus_request_async(c, "ns.svc", NULL, 0, "q", 1, T, answer_cb, &a), 0);
	CU_ASSERT_EQUAL(lib_pump(&c, 1, answered, &a, T), 0);
	CU_ASSERT_EQUAL(a.status, IPCBUS_EDISCONNECTED);
	CU_ASSERT_EQUAL(ev.disconnected, 1);
	fprintf(stderr, "  (disconnected: %s)", ev.disc_text);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev.disc_text, "no session"));
	CU_ASSERT_EQUAL(lib_pump(&c, 1, reconnected, &ev, T), 0);
	CU_ASSERT_EQUAL(ev.closed, 0);

	/* resubscribed with the same sid */
	struct harness_raw *raw = harness_raw_open(u.b, "after");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	CU_ASSERT_EQUAL(harness_raw_wait_interest(raw, "ns.x", T), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(raw, 0, "ns.x", NULL, "after", 5), 0);
	uint64_t deadline = harness_now() + T;
	while (strcmp(k.text, "after") != 0 && harness_now() < deadline)
		lib_pump(&c, 1, NULL, NULL, 20);
	CU_ASSERT_STRING_EQUAL(k.text, "after");
	CU_ASSERT_EQUAL(k.sid, sid);
}

static void test_broker_stopped(void)
{
	UP(u, "ping-interval 300\n"); /* the client PINGs every 100 ms */
	struct events ev = {0};
	struct box k = {0};
	ipcbus *c = lib(u.url, "watcher", &ev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "bs.x", NULL, box_cb, &k, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);

	CU_ASSERT_EQUAL(harness_broker_stop(u.b), 0);
	uint64_t t0 = harness_now();
	CU_ASSERT_EQUAL(lib_pump(&c, 1, is_disconnected, c, T), 0);
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (noticed after %llu ms: %s)", (unsigned long long)dt, ev.disc_text);
	CU_ASSERT(dt < 1000);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev.disc_text, "refused"));
	/* and it keeps trying */
	lib_pump(&c, 1, NULL, NULL, 300);
	CU_ASSERT_EQUAL(ev.closed, 0);
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(u.b, NULL), 0);
	CU_ASSERT_EQUAL(lib_pump(&c, 1, is_connected, c, T), 0);
	struct harness_raw *raw = harness_raw_open(u.b, "after");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	CU_ASSERT_EQUAL(harness_raw_wait_interest(raw, "bs.x", T), 0);
	CU_ASSERT_EQUAL(ev.reconnected, 1);
}

/* ---- the lease ---- */

static void test_lease_keepalive(void)
{
	UP(u, "ping-interval 300\n");
	struct events eva = {0}, evb = {0};
	struct box ka = {0}, kb = {0};
	ipcbus *a = lib(u.url, "kept", &eva);
	ipcbus *b = lib(u.url, "left-alone", &evb);
	CU_ASSERT_FATAL(a && b);
	CU_ASSERT_EQUAL(ipcbus_subscribe(a, "ka.a", NULL, box_cb, &ka, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(b, "ka.b", NULL, box_cb, &kb, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(a, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(b, T), 0);
	/* the next PING is due within a third of the lease */
	int t = ipcbus_timeout(a);
	CU_ASSERT(t >= 0 && t <= 100);

	/* 2 s of idleness; only a is dispatched (as ipcbus_timeout says) */
	uint64_t t0 = harness_now();
	while (harness_now() - t0 < 2000)
		lib_pump(&a, 1, NULL, NULL, 50);
	CU_ASSERT_EQUAL(eva.disconnected, 0);
	CU_ASSERT(ipcbus_connected(a));

	struct harness_raw *raw = harness_raw_open(u.b, "prober");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	/* a kept its subscription, b's lease ran out with it */
	CU_ASSERT_FALSE(nobody_on(raw, "ka.a"));
	CU_ASSERT_TRUE(nobody_on(raw, "ka.b"));
	CU_ASSERT_EQUAL(harness_raw_pub(raw, 0, "ka.a", NULL, "still", 5), 0);
	struct want w = {&ka, 2}; /* the probe, then this */
	CU_ASSERT_EQUAL(lib_pump(&a, 1, box_has, &w, T), 0);
	CU_ASSERT_STRING_EQUAL(ka.text, "still");

	/* b publishes before it dispatches again: it knows that the broker
	 * forgot it, so the message waits for the new session, and it comes
	 * back subscribed */
	CU_ASSERT_EQUAL(harness_raw_sub(raw, 1, 7, "ka.from-b", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(raw, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL(ipcbus_publish(b, "ka.from-b", "kept for later", 14), 0);
	CU_ASSERT_FALSE(ipcbus_connected(b));
	fprintf(stderr, "  (the idle one: %s)", evb.disc_text);
	CU_ASSERT_EQUAL(lib_pump(&b, 1, reconnected, &evb, T), 0);
	CU_ASSERT_EQUAL(evb.disconnected, 1);
	CU_ASSERT_EQUAL(ipcbus_flush(b, T), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(raw, T), 1);
	CU_ASSERT(harness_raw_is_msg(raw, 7, "kept for later"));
	CU_ASSERT_EQUAL(harness_raw_wait_interest(raw, "ka.b", T), 0);
}

/* ---- lost datagrams (the library's test hook) ---- */

static void test_sub_retransmit(void)
{
	UP(u, "");
	struct events ev = {0};
	struct box k = {0};
	struct harness_raw *raw = harness_raw_open(u.b, "prober");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	/* datagrams 1, 2: HELLO, HELLO with the cookie; 3 the SUB, lost */
	setenv("IPCBUS_TEST_UDP_DROP", "3", 1);
	ipcbus *c = lib(u.url, "lossy", &ev);
	unsetenv("IPCBUS_TEST_UDP_DROP");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	uint64_t sid = 0;
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "rt.x", NULL, box_cb, &k, &sid), 0);
	uint64_t t0 = harness_now();
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0); /* 4: its PING; 5: the SUB again */
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (flush after the SUB was lost: %llu ms)", (unsigned long long)dt);
	CU_ASSERT(dt >= 150); /* the resend waited for its timer */
	CU_ASSERT_FALSE(nobody_on(raw, "rt.x"));
	struct want w = {&k, 1};
	CU_ASSERT_EQUAL(lib_pump(&c, 1, box_has, &w, T), 0);
	CU_ASSERT_EQUAL(k.sid, sid);

	/* 6: the UNSUB, lost; 7: the flush's PING; 8: the UNSUB again */
	CU_ASSERT_EQUAL(ipcbus_unsubscribe(c, sid), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);
	CU_ASSERT_TRUE(nobody_on(raw, "rt.x"));
	CU_ASSERT_EQUAL(ev.disconnected, 0);
	CU_ASSERT_EQUAL(ev.errors, 0);
}

static void test_hello_retransmit(void)
{
	UP(u, "");
	ipcbus *c;
	/* 2: the HELLO that carries the cookie, lost */
	setenv("IPCBUS_TEST_UDP_DROP", "2", 1);
	uint64_t t0 = harness_now();
	int rc = lib_try(u.url, "hello-lost", NULL, T, &c);
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (connected in %llu ms)", (unsigned long long)dt);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(dt >= 150);
	/* everything lost: the connect timeout, not a hang */
	struct events ev = {0};
	setenv("IPCBUS_TEST_UDP_DROP", "1", 1);
	t0 = harness_now();
	rc = lib_try(u.url, "all-lost", &ev, 600, &c);
	dt = harness_now() - t0;
	unsetenv("IPCBUS_TEST_UDP_DROP");
	CU_ASSERT_EQUAL(rc, IPCBUS_ETIMEOUT);
	CU_ASSERT(dt >= 550 && dt < 2000);
	CU_ASSERT_EQUAL(ev.failed, 1);
}

/* ---- the limits of a datagram ---- */

static void test_oversize(void)
{
	static char big[65536];
	UP(u, "");
	ipcbus *t = lib(u.url, "udp-pub", NULL);
	ipcbus *x = lib(u.b->url, "unix-sub", NULL);
	CU_ASSERT_FATAL(t && x);
	uint64_t maxp = ipcbus_max_payload(t);
	fprintf(stderr, "  (max_payload over udp: %llu)", (unsigned long long)maxp);
	CU_ASSERT_FATAL(maxp > 1024 && maxp + 8192 <= 65507);
	CU_ASSERT(ipcbus_max_payload(x) > maxp); /* the stream's is the broker's 1 MiB */
	struct box k = {0};
	CU_ASSERT_EQUAL(ipcbus_subscribe(x, "os.big", NULL, box_cb, &k, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(x, T), 0);
	memset(big, 'b', sizeof big);

	CU_ASSERT_EQUAL(ipcbus_publish(t, "os.big", big, maxp + 1), IPCBUS_ETOOBIG);
	const ipcbus_header h = {.key = "fat", .value = big, .value_len = 8192};
	CU_ASSERT_EQUAL(ipcbus_publish_ex(t, "os.big", NULL, &h, 1, "x", 1), IPCBUS_ETOOBIG);
	ipcbus_msg *m = NULL;
	CU_ASSERT_EQUAL(ipcbus_request(t, "os.big", NULL, 0, big, maxp + 1, T, &m), IPCBUS_ETOOBIG);
	CU_ASSERT_PTR_NULL(m);
	/* exactly the limit goes through, and nothing else was sent */
	CU_ASSERT_EQUAL(ipcbus_publish(t, "os.big", big, maxp), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	struct want w = {&k, 1};
	CU_ASSERT_EQUAL(lib_pump(&x, 1, box_has, &w, T), 0);
	lib_pump(&x, 1, NULL, NULL, 100);
	CU_ASSERT_EQUAL(k.n, 1);
	CU_ASSERT_EQUAL(k.len, maxp);
	CU_ASSERT(ipcbus_connected(t));
}

/* ---- token ---- */

static void test_token(void)
{
	UP(u, "token s3cret-s3cret-s3cret\n");
	char url[160];
	ipcbus *c;
	struct box k = {0};

	snprintf(url, sizeof url, "udp://s3cret-s3cret-s3cret@127.0.0.1:%d", u.port);
	ipcbus *t = lib(url, "with-token", NULL);
	ipcbus *x = lib(u.b->url, "unix", NULL); /* Unix clients need none */
	CU_ASSERT_FATAL(t && x);
	CU_ASSERT_EQUAL(ipcbus_subscribe(t, "tk.x", NULL, box_cb, &k, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(x, "tk.x", "secret ok", 9), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(x, T), 0);
	struct want w = {&k, 1};
	CU_ASSERT_EQUAL(lib_pump(&t, 1, box_has, &w, T), 0);
	CU_ASSERT_STRING_EQUAL(k.text, "secret ok");

	/* from the environment */
	setenv("IPCBUS_TOKEN", "s3cret-s3cret-s3cret", 1);
	CU_ASSERT_EQUAL(lib_try(u.url, "env-token", NULL, T, &c), 0);
	unsetenv("IPCBUS_TOKEN");

	/* wrong, and none: refused by the broker (fatal E_AUTH) */
	struct events ev = {0};
	snprintf(url, sizeof url, "udp://wrong-wrong-wrong-wrong@127.0.0.1:%d", u.port);
	CU_ASSERT_EQUAL(lib_try(url, "wrong-token", &ev, T, &c), IPCBUS_EPERM);
	CU_ASSERT_EQUAL(ev.failed, 1);
	fprintf(stderr, "  (wrong token: %s)", ev.text);
	CU_ASSERT_PTR_NULL(strstr(ev.text, "wrong")); /* not echoed */
	CU_ASSERT_EQUAL(lib_try(u.url, "no-token", NULL, T, &c), IPCBUS_EPERM);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"pubsub_both_ways", test_pubsub_both_ways},
		{"cli", test_cli},
		{"no_session", test_no_session},
		{"broker_stopped", test_broker_stopped},
		{"lease_keepalive", test_lease_keepalive},
		{"sub_retransmit", test_sub_retransmit},
		{"hello_retransmit", test_hello_retransmit},
		{"oversize", test_oversize},
		{"token", test_token},
	};
	unsetenv("IPCBUS_TEST_UDP_DROP");
	return harness_main("udp_client", cases, HARNESS_NELEM(cases), 1, 120, argc, argv);
}
