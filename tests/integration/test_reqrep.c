/*
 * test_reqrep.c: request/reply through libipcbus against a real broker.
 *
 * Echo through a responder on the same connection and in another process;
 * "no responders" answered at once instead of a timeout; the timeout
 * itself; 100 asynchronous requests in flight on one connection, each
 * matched to its own reply; a queue group of responders sharing the load;
 * and the failure modes: requests in flight fail at once with
 * IPCBUS_EDISCONNECTED when the broker dies (well before their timeout),
 * and a request made while disconnected fails at once.
 */
#include <config.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "libpump.h"
#include "ipcbus.h"

#define T 5000

static void lib_close_cb(void *arg)
{
	ipcbus_close(arg);
}

static ipcbus *lib_connect(const struct harness_broker *b, const char *name)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	ipcbus *c = NULL;

	o.name = name;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 200;
	int rc = ipcbus_connect(&c, b->url, &o);
	if (rc < 0) {
		fprintf(stderr, "  connect %s: %s\n", b->url, ipcbus_strerror(rc));
		CU_FAIL("ipcbus_connect");
		return NULL;
	}
	harness_defer(lib_close_cb, c);
	return c;
}

struct responder {
	ipcbus *c;
	int answered;
};

/* Answer with the request's own payload. */
static void echo_cb(void *arg, const ipcbus_msg *m)
{
	struct responder *r = arg;
	if (m->reply_to && ipcbus_respond(r->c, m, NULL, 0, m->data, m->len) == 0)
		r->answered++;
}

static void sink_cb(void *arg, const ipcbus_msg *m)
{
	(void)arg;
	(void)m;
}

/* An echo responder on pattern in a child process; returns once it is
 * subscribed.  The child ends when killed at cleanup or after 60 s. */
static pid_t spawn_responder(const struct harness_broker *b, const char *pattern)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = harness_fork(60);
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[0]);
		ipcbus *c = NULL;
		struct responder r = {0};
		if (ipcbus_connect(&c, b->url, NULL) < 0)
			_exit(1);
		r.c = c;
		if (ipcbus_subscribe(c, pattern, NULL, echo_cb, &r, NULL) < 0 ||
		    ipcbus_flush(c, T) < 0)
			_exit(1);
		if (write(p[1], "R", 1) != 1)
			_exit(1);
		close(p[1]);
		for (;;)
			if (ipcbus_wait(c, 1000) < 0 && !ipcbus_connected(c) && getppid() == 1)
				break;
		ipcbus_close(c);
		_exit(0);
	}
	close(p[1]);
	char ch = 0;
	struct pollfd pf = {.fd = p[0], .events = POLLIN};
	int ok = poll(&pf, 1, 10000) == 1 && read(p[0], &ch, 1) == 1 && ch == 'R';
	close(p[0]);
	return ok ? pid : -1;
}

static int reply_is(const ipcbus_msg *m, const char *s)
{
	size_t n = strlen(s);
	return m && m->len == n && memcmp(m->data, s, n) == 0;
}

/* ---- cases ---- */

static void test_echo_same_connection(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *c = lib_connect(b, "self");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	struct responder r = {.c = c};
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "echo", NULL, echo_cb, &r, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);
	const ipcbus_header h[] = {{.key = "x-trace", .value = "1"}};
	for (int i = 0; i < 5; i++) {
		char q[32];
		snprintf(q, sizeof q, "hello %d", i);
		ipcbus_msg *reply = NULL;
		int rc = ipcbus_request(c, "echo", h, 1, q, strlen(q), T, &reply);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT(reply_is(reply, q));
		CU_ASSERT(reply && reply->reply_to == NULL);
		ipcbus_msg_free(reply);
	}
	CU_ASSERT_EQUAL(r.answered, 5);
	/* an empty request and reply */
	ipcbus_msg *reply = NULL;
	CU_ASSERT_EQUAL(ipcbus_request(c, "echo", NULL, 0, NULL, 0, T, &reply), 0);
	CU_ASSERT(reply && reply->len == 0);
	ipcbus_msg_free(reply);
}

static void test_echo_other_process(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_FATAL(spawn_responder(b, "echo.remote") > 0);
	ipcbus *c = lib_connect(b, "asker");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (int i = 0; i < 20; i++) {
		char q[32];
		snprintf(q, sizeof q, "q%d", i);
		ipcbus_msg *reply = NULL;
		CU_ASSERT_EQUAL(ipcbus_request(c, "echo.remote", NULL, 0, q, strlen(q), T, &reply), 0);
		CU_ASSERT(reply_is(reply, q));
		ipcbus_msg_free(reply);
	}
}

static void test_no_responders(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *c = lib_connect(b, "asker");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (int i = 0; i < 3; i++) {
		ipcbus_msg *reply = NULL;
		uint64_t t0 = harness_now();
		int rc = ipcbus_request(c, "nobody.home", NULL, 0, "q", 1, 10000, &reply);
		uint64_t dt = harness_now() - t0;
		CU_ASSERT_EQUAL(rc, IPCBUS_ENORESPONDERS);
		CU_ASSERT_PTR_NULL(reply);
		fprintf(stderr, "  (no responders after %llu ms)\n", (unsigned long long)dt);
		CU_ASSERT(dt < 500); /* at once: not the 10 s timeout */
	}
	CU_ASSERT(ipcbus_connected(c));
}

static void test_timeout(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *sink = lib_connect(b, "sink");
	ipcbus *c = lib_connect(b, "asker");
	CU_ASSERT_FATAL(sink && c);
	CU_ASSERT_EQUAL(ipcbus_subscribe(sink, "sink", NULL, sink_cb, NULL, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(sink, T), 0);
	ipcbus_msg *reply = NULL;
	uint64_t t0 = harness_now();
	int rc = ipcbus_request(c, "sink", NULL, 0, "q", 1, 300, &reply);
	uint64_t dt = harness_now() - t0;
	CU_ASSERT_EQUAL(rc, IPCBUS_ETIMEOUT);
	CU_ASSERT_PTR_NULL(reply);
	fprintf(stderr, "  (timed out after %llu ms)\n", (unsigned long long)dt);
	CU_ASSERT(dt >= 290 && dt < 3000);
	/* the connection is fine afterwards */
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);
}

struct async {
	int done, ok, wrong, status[128];
	int expect; /* 0: an echo; else the error every request must get */
};

struct async_one {
	struct async *all;
	int i;
};

static void async_cb(void *arg, int status, const ipcbus_msg *reply)
{
	struct async_one *one = arg;
	char want[32];
	snprintf(want, sizeof want, "req-%d", one->i);
	one->all->status[one->i] = status;
	if (status == 0 && reply_is(reply, want))
		one->all->ok++;
	else if (status == 0)
		one->all->wrong++;
	one->all->done++;
}

struct async_wait {
	struct async *a;
	int n;
};

static int async_done(void *arg)
{
	struct async_wait *w = arg;
	return w->a->done >= w->n;
}

static int send_async(ipcbus *c, const char *chan, struct async *a, struct async_one *one, int n,
		      int timeout_ms)
{
	for (int i = 0; i < n; i++) {
		char q[32];
		one[i] = (struct async_one){.all = a, .i = i};
		snprintf(q, sizeof q, "req-%d", i);
		int rc = ipcbus_request_async(c, chan, NULL, 0, q, strlen(q), timeout_ms, async_cb,
					      &one[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void test_concurrent_100(void)
{
	enum { N = 100 };
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_FATAL(spawn_responder(b, "echo.many") > 0);
	ipcbus *c = lib_connect(b, "asker");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	static struct async a;
	static struct async_one one[N];
	memset(&a, 0, sizeof a);
	CU_ASSERT_EQUAL_FATAL(send_async(c, "echo.many", &a, one, N, 10000), 0);
	struct async_wait w = {&a, N};
	CU_ASSERT_EQUAL(lib_pump(&c, 1, async_done, &w, 15000), 0);
	CU_ASSERT_EQUAL(a.done, N);
	CU_ASSERT_EQUAL(a.ok, N);
	CU_ASSERT_EQUAL(a.wrong, 0);
	lib_pump(&c, 1, NULL, NULL, 100);
	CU_ASSERT_EQUAL(a.done, N); /* each callback exactly once */
}

static void test_queue_group_responders(void)
{
	enum { N = 60 };
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *cs[3];
	struct responder r[2];
	cs[0] = lib_connect(b, "asker");
	cs[1] = lib_connect(b, "worker1");
	cs[2] = lib_connect(b, "worker2");
	CU_ASSERT_FATAL(cs[0] && cs[1] && cs[2]);
	for (int i = 0; i < 2; i++) {
		r[i] = (struct responder){.c = cs[i + 1]};
		CU_ASSERT_EQUAL(ipcbus_subscribe(cs[i + 1], "work.q", "workers", echo_cb, &r[i], NULL), 0);
		CU_ASSERT_EQUAL(ipcbus_flush(cs[i + 1], T), 0);
	}
	static struct async a;
	static struct async_one one[N];
	memset(&a, 0, sizeof a);
	CU_ASSERT_EQUAL_FATAL(send_async(cs[0], "work.q", &a, one, N, 10000), 0);
	struct async_wait w = {&a, N};
	CU_ASSERT_EQUAL(lib_pump(cs, 3, async_done, &w, 15000), 0);
	CU_ASSERT_EQUAL(a.ok, N);
	fprintf(stderr, "  (worker1 %d, worker2 %d)\n", r[0].answered, r[1].answered);
	CU_ASSERT_EQUAL(r[0].answered + r[1].answered, N); /* each request answered once */
	CU_ASSERT(r[0].answered > 0 && r[1].answered > 0);
}

static void test_broker_dies(void)
{
	enum { N = 5 };
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *sink = lib_connect(b, "sink");
	ipcbus *c = lib_connect(b, "asker");
	CU_ASSERT_FATAL(sink && c);
	CU_ASSERT_EQUAL(ipcbus_subscribe(sink, "sink.>", NULL, sink_cb, NULL, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(sink, T), 0);

	/* asynchronous requests in flight */
	static struct async a;
	static struct async_one one[N];
	memset(&a, 0, sizeof a);
	CU_ASSERT_EQUAL_FATAL(send_async(c, "sink.a", &a, one, N, 20000), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0); /* they reached the broker */
	CU_ASSERT_EQUAL(a.done, 0);
	harness_broker_kill(b);
	uint64_t t0 = harness_now();
	struct async_wait w = {&a, N};
	CU_ASSERT_EQUAL(lib_pump(&c, 1, async_done, &w, 10000), 0);
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (in-flight requests failed after %llu ms)\n", (unsigned long long)dt);
	CU_ASSERT(dt < 3000);
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL(a.status[i], IPCBUS_EDISCONNECTED);

	/* a request made while disconnected fails at once */
	CU_ASSERT_FALSE(ipcbus_connected(c));
	ipcbus_msg *reply = NULL;
	t0 = harness_now();
	int rc = ipcbus_request(c, "sink.b", NULL, 0, "q", 1, 10000, &reply);
	dt = harness_now() - t0;
	CU_ASSERT_EQUAL(rc, IPCBUS_EDISCONNECTED);
	CU_ASSERT_PTR_NULL(reply);
	CU_ASSERT(dt < 500);
	memset(&a, 0, sizeof a);
	rc = send_async(c, "sink.b", &a, one, 1, 10000);
	if (rc == 0) {
		w.n = 1;
		CU_ASSERT_EQUAL(lib_pump(&c, 1, async_done, &w, 500), 0);
		CU_ASSERT_EQUAL(a.status[0], IPCBUS_EDISCONNECTED);
	} else {
		CU_ASSERT_EQUAL(rc, IPCBUS_EDISCONNECTED);
	}
}

static void test_blocking_request_broker_dies(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *sink = lib_connect(b, "sink");
	ipcbus *c = lib_connect(b, "asker");
	CU_ASSERT_FATAL(sink && c);
	CU_ASSERT_EQUAL(ipcbus_subscribe(sink, "sink", NULL, sink_cb, NULL, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(sink, T), 0);
	/* a helper kills the broker while we are blocked in the request */
	pid_t broker = b->pid;
	pid_t killer = harness_fork(30);
	CU_ASSERT_FATAL(killer >= 0);
	if (killer == 0) {
		harness_sleep(300);
		kill(broker, SIGKILL);
		_exit(0);
	}
	ipcbus_msg *reply = NULL;
	uint64_t t0 = harness_now();
	int rc = ipcbus_request(c, "sink", NULL, 0, "q", 1, 20000, &reply);
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (blocking request: %s after %llu ms)\n", ipcbus_strerror(rc),
		(unsigned long long)dt);
	CU_ASSERT_EQUAL(rc, IPCBUS_EDISCONNECTED);
	CU_ASSERT_PTR_NULL(reply);
	CU_ASSERT(dt < 5000);
	harness_wait_pid(killer, T);
	harness_broker_kill(b); /* reap it */
}

/* A callback that makes a blocking request while messages keep coming:
 * the messages that arrive meanwhile wait until it returns (callbacks never
 * nest), and all arrive, in order. */
struct nester {
	ipcbus *c;
	int depth, max_depth;
	int got, next, out_of_order, requests, failed;
};

static void nest_cb(void *arg, const ipcbus_msg *m)
{
	struct nester *n = arg;
	char want[32];
	int len = snprintf(want, sizeof want, "m%d", n->next);
	if (m->len != (size_t)len || memcmp(m->data, want, m->len) != 0)
		n->out_of_order++;
	n->next++;
	n->got++;
	if (++n->depth > n->max_depth)
		n->max_depth = n->depth;
	if (n->got % 5 == 0) {
		ipcbus_msg *reply = NULL;
		if (ipcbus_request(n->c, "nest.svc", NULL, 0, "q", 1, T, &reply) == 0)
			n->requests++;
		else
			n->failed++;
		ipcbus_msg_free(reply);
	}
	n->depth--;
}

static void test_request_inside_callback(void)
{
	enum { N = 3000 };
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_FATAL(spawn_responder(b, "nest.svc") > 0);
	ipcbus *c = lib_connect(b, "nester");
	ipcbus *p = lib_connect(b, "flood");
	CU_ASSERT_FATAL(c && p);
	struct nester n = {.c = c};
	CU_ASSERT_EQUAL_FATAL(ipcbus_subscribe(c, "nest.data", NULL, nest_cb, &n, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ipcbus_flush(c, T), 0);
	/* everything is published before the subscriber reads: each of its
	 * requests finds many messages in front of its reply */
	for (int i = 0; i < N; i++) {
		char pl[32];
		int len = snprintf(pl, sizeof pl, "m%d", i);
		CU_ASSERT_EQUAL_FATAL(ipcbus_publish(p, "nest.data", pl, (size_t)len), 0);
	}
	CU_ASSERT_EQUAL(ipcbus_flush(p, T), 0);
	uint64_t deadline = harness_now() + 20000;
	while (n.got < N && harness_now() < deadline)
		ipcbus_wait(c, 500);
	fprintf(stderr, "  (%d messages, %d nested requests, deepest callback nesting %d)\n", n.got,
		n.requests, n.max_depth);
	CU_ASSERT_EQUAL(n.got, N);
	CU_ASSERT_EQUAL(n.out_of_order, 0);
	CU_ASSERT_EQUAL(n.max_depth, 1);
	CU_ASSERT_EQUAL(n.requests, N / 5);
	CU_ASSERT_EQUAL(n.failed, 0);
}

static const struct harness_case cases[] = {
	{"request_inside_callback", test_request_inside_callback},
	{"echo_same_connection", test_echo_same_connection},
	{"echo_other_process", test_echo_other_process},
	{"no_responders", test_no_responders},
	{"timeout", test_timeout},
	{"concurrent_100", test_concurrent_100},
	{"queue_group_responders", test_queue_group_responders},
	{"broker_dies", test_broker_dies},
	{"blocking_request_broker_dies", test_blocking_request_broker_dies},
};

int main(int argc, char **argv)
{
	return harness_main("reqrep", cases, HARNESS_NELEM(cases), 0, 120, argc, argv);
}
