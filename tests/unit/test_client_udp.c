/*
 * test_client_udp.c: libipcbus over udp:// against a fake broker, a UDP
 * socket of the test itself on 127.0.0.1 that reads the client's datagrams
 * and answers them by hand, for what a real broker cannot be made to do or
 * show (the real one: tests/integration/test_udp_client.c):
 *   - the handshake: every HELLO at least 64 bytes (Hello.padding), the
 *     URL's token in it; ERR E_COOKIE (a closing ERR) answered by a HELLO
 *     with that cookie from the same socket, not a reconnect; a WELCOME that
 *     comes twice taken once;
 *   - a frame the kernel refuses as too big for a datagram (a broker that
 *     announced more than fits): dropped, reported (IPCBUS_EV_ERROR,
 *     IPCBUS_ETOOBIG), the next frame goes;
 *   - at most 64 SUBs unanswered at once, the rest sent as answers come;
 *   - a SUB never answered: the connection dropped after the connect
 *     timeout, and a new one (a new socket) says HELLO;
 *   - a broker that falls silent: keepalive PINGs (without id) at a third
 *     of WELCOME's lease, then the connection dropped after the lease.
 * One thread: the fake answers the handshake from a helper thread while
 * ipcbus_connect() blocks, everything else between ipcbus_dispatch() calls.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "ipcbus.h"
#include "unit.h"

#define COOKIE "COOKIE01"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the fake broker --- */

struct fake {
	int fd;
	int port;
	char url[96];
	struct sockaddr_in peer; /* the client's address, last heard */
	uint8_t buf[70000];
	size_t len;
	struct frame f;          /* the last datagram, a view into buf */
	/* the handshake: what it answers */
	uint64_t max_payload;
	uint32_t lease_ms;
	int welcome_twice;
	/* what it saw */
	int hellos;
	size_t hello_len[4];
	int hello_padded[4], hello_cookie_ok[4];
	uint16_t hello_port[4];
	char token[64];
	/* after it: answer PINGs (1), SUBs and UNSUBs too (2), nothing (0) */
	int answer;
	int pings, pings_no_id, subs, other;
};

static struct fake fk;

static int fake_start(struct fake *f, const char *token)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;

	memset(f, 0, sizeof *f);
	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(f->fd, (struct sockaddr *)&a, &al) < 0)
		return -errno;
	f->port = ntohs(a.sin_port);
	snprintf(f->url, sizeof f->url, "udp://%s127.0.0.1:%d", token ? token : "", f->port);
	f->max_payload = 1000;
	f->lease_ms = 30000;
	f->answer = 2;
	return 0;
}

static void fake_stop(struct fake *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* One datagram within timeout_ms into f->buf, decoded into f->f: 1, 0
 * (none), -1 (does not decode). */
static int fake_recv(struct fake *f, int timeout_ms)
{
	struct pollfd p = {.fd = f->fd, .events = POLLIN};
	socklen_t pl = sizeof f->peer;

	if (poll(&p, 1, timeout_ms) != 1)
		return 0;
	ssize_t n = recvfrom(f->fd, f->buf, sizeof f->buf, 0, (struct sockaddr *)&f->peer, &pl);
	if (n < 0)
		return 0;
	f->len = (size_t)n;
	return frame_decode(f->buf, f->len, &f->f) == 0 ? 1 : -1;
}

/* Send the delimited frame in b, without its prefix, to the client; frees b. */
static void fake_send(struct fake *f, struct buf *b)
{
	uint64_t body = 0;
	int k = frame_varint_get(buf_rptr(b), buf_len(b), &body);
	if (k > 0)
		sendto(f->fd, buf_rptr(b) + k, (size_t)body, 0, (struct sockaddr *)&f->peer,
		       sizeof f->peer);
	buf_fini(b);
}

static void fake_pong(struct fake *f, uint64_t id)
{
	struct buf b;
	struct frame p = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = 1, .id = id};
	buf_init(&b, 64);
	frame_append(&b, &p, NULL, 0);
	fake_send(f, &b);
}

/* The handshake of one connection: HELLO, E_COOKIE, HELLO with the cookie,
 * WELCOME (twice when asked).  0, or -1 when it did not go so. */
static int fake_handshake(struct fake *f)
{
	int64_t end = now_ms() + 3000;

	while (now_ms() < end) {
		if (fake_recv(f, 100) != 1 || f->f.type != IPCBUS__FRAME_TYPE__HELLO)
			continue;
		Ipcbus__Hello *h = frame_unpack_hello(&f->f);
		if (!h)
			return -1;
		int i = f->hellos < 4 ? f->hellos : 3;
		f->hellos++;
		f->hello_len[i] = f->len;
		f->hello_padded[i] = h->has_padding && h->padding.len > 0;
		f->hello_cookie_ok[i] = h->has_cookie && h->cookie.len == 8 &&
					memcmp(h->cookie.data, COOKIE, 8) == 0;
		f->hello_port[i] = ntohs(f->peer.sin_port);
		if (h->has_token && h->token.len < sizeof f->token) {
			memcpy(f->token, h->token.data, h->token.len);
			f->token[h->token.len] = 0;
		}
		int ok = f->hello_cookie_ok[i];
		ipcbus__hello__free_unpacked(h, NULL);
		struct buf b;
		buf_init(&b, 1024);
		if (!ok) {
			frame_append_cookie(&b, f->f.id, (const uint8_t *)COOKIE, 8);
			fake_send(f, &b);
			continue;
		}
		Ipcbus__Welcome w = IPCBUS__WELCOME__INIT;
		w.version = IPCBUS_PROTOCOL_VERSION;
		w.has_max_payload = w.has_max_header_bytes = w.has_lease_ms = 1;
		w.max_payload = f->max_payload;
		w.max_header_bytes = 1024;
		w.lease_ms = f->lease_ms;
		frame_append_welcome(&b, f->f.id, &w);
		if (f->welcome_twice)
			frame_append_welcome(&b, f->f.id, &w);
		/* two datagrams when twice: send each */
		while (buf_len(&b) > 0) {
			uint64_t body = 0;
			int k = frame_varint_get(buf_rptr(&b), buf_len(&b), &body);
			sendto(f->fd, buf_rptr(&b) + k, (size_t)body, 0, (struct sockaddr *)&f->peer,
			       sizeof f->peer);
			buf_consume(&b, (size_t)k + (size_t)body);
		}
		buf_fini(&b);
		return 0;
	}
	return -1;
}

static void *fake_thread(void *arg)
{
	return (void *)(intptr_t)fake_handshake(arg);
}

/* --- the client --- */

static int ev_disconnected, ev_errors, ev_last_err;
static char ev_text[256];

static void ev_cb(void *arg, int event, int err, const char *text)
{
	(void)arg;
	if (event == IPCBUS_EV_DISCONNECTED)
		ev_disconnected++;
	if (event == IPCBUS_EV_ERROR)
		ev_errors++;
	ev_last_err = err;
	snprintf(ev_text, sizeof ev_text, "%s", text ? text : "");
}

/* Connect to the fake while a thread answers the handshake. */
static ipcbus *fake_connect(struct fake *f, int connect_timeout_ms)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	pthread_t th;
	void *hs = NULL;
	ipcbus *c = NULL;

	o.on_event = ev_cb;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 100;
	o.connect_timeout_ms = connect_timeout_ms;
	ev_disconnected = ev_errors = ev_last_err = 0;
	ev_text[0] = 0;
	if (pthread_create(&th, NULL, fake_thread, f) != 0)
		return NULL;
	int rc = ipcbus_connect(&c, f->url, &o);
	pthread_join(th, &hs);
	if (rc < 0 || hs) {
		fprintf(stderr, "  connect: %s, handshake %d\n", ipcbus_strerror(rc), (int)(intptr_t)hs);
		ipcbus_close(c);
		return NULL;
	}
	return c;
}

/* Drive c and the fake for ms: the fake answers per f->answer and counts
 * what it gets.  Stops early (returning 1) when stop(f) says so. */
static int run(struct fake *f, ipcbus *c, int ms, int (*stop)(struct fake *))
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end) {
		ipcbus_dispatch(c);
		int t = ipcbus_timeout(c);
		if (t < 0 || t > 10)
			t = 10;
		struct pollfd p[2] = {{.fd = f->fd, .events = POLLIN},
				      {.fd = ipcbus_fd(c), .events = POLLIN}};
		if (poll(p, 2, t) <= 0 || !(p[0].revents & POLLIN))
			continue;
		if (fake_recv(f, 0) != 1)
			continue;
		switch (f->f.type) {
		case IPCBUS__FRAME_TYPE__PING:
			f->pings++;
			if (!f->f.has_id)
				f->pings_no_id++;
			if (f->answer >= 1 && f->f.has_id)
				fake_pong(f, f->f.id);
			break;
		case IPCBUS__FRAME_TYPE__SUB:
		case IPCBUS__FRAME_TYPE__UNSUB:
			f->subs++;
			if (f->answer >= 2)
				fake_pong(f, f->f.id);
			break;
		case IPCBUS__FRAME_TYPE__HELLO:
			f->hellos++;
			break;
		default:
			f->other++;
			break;
		}
		if (stop && stop(f))
			return 1;
	}
	return 0;
}

/* --- the cases --- */

static void test_handshake(void)
{
	CU_ASSERT_EQUAL_FATAL(fake_start(&fk, "tok-123@"), 0);
	fk.welcome_twice = 1;
	ipcbus *c = fake_connect(&fk, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(fk.hellos, 2);
	for (int i = 0; i < 2; i++) {
		CU_ASSERT(fk.hello_len[i] >= 64);
		CU_ASSERT(fk.hello_padded[i]);
	}
	CU_ASSERT_FALSE(fk.hello_cookie_ok[0]);
	CU_ASSERT_TRUE(fk.hello_cookie_ok[1]);
	/* the same socket: E_COOKIE was a step, not a reconnect */
	CU_ASSERT_EQUAL(fk.hello_port[0], fk.hello_port[1]);
	CU_ASSERT_STRING_EQUAL(fk.token, "tok-123");
	CU_ASSERT_EQUAL(ipcbus_max_payload(c), 1000);

	/* the second WELCOME changes nothing; a flush's PING, answered, is
	 * not sent again */
	fk.hellos = 0;
	run(&fk, c, 50, NULL);
	CU_ASSERT(ipcbus_connected(c));
	CU_ASSERT_EQUAL(ipcbus_flush(c, 0), IPCBUS_ETIMEOUT); /* its PING is out */
	run(&fk, c, 400, NULL);
	CU_ASSERT_EQUAL(fk.pings, 1);
	CU_ASSERT_EQUAL(fk.hellos, 0);
	CU_ASSERT_EQUAL(ev_disconnected, 0);
	CU_ASSERT_EQUAL(ev_errors, 0);
	ipcbus_close(c);
	fake_stop(&fk);
}

static void test_too_big(void)
{
	static char big[70000];
	CU_ASSERT_EQUAL_FATAL(fake_start(&fk, NULL), 0);
	fk.max_payload = 1 << 20; /* more than a datagram carries */
	ipcbus *c = fake_connect(&fk, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	memset(big, 'x', sizeof big);
	CU_ASSERT_EQUAL(ipcbus_publish(c, "tb.big", big, sizeof big), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(c, "tb.small", "small", 5), 0);
	run(&fk, c, 100, NULL);
	CU_ASSERT_EQUAL(fk.other, 1); /* the small PUB only */
	CU_ASSERT_EQUAL(ev_errors, 1);
	CU_ASSERT_EQUAL(ev_last_err, IPCBUS_ETOOBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev_text, "dropped"));
	CU_ASSERT(ipcbus_connected(c));
	CU_ASSERT_EQUAL(ev_disconnected, 0);
	ipcbus_close(c);
	fake_stop(&fk);
}

static void test_window(void)
{
	CU_ASSERT_EQUAL_FATAL(fake_start(&fk, NULL), 0);
	ipcbus *c = fake_connect(&fk, 5000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	fk.answer = 1; /* SUBs unanswered for now */
	for (int i = 0; i < 100; i++) {
		char pat[32];
		snprintf(pat, sizeof pat, "w.%d", i);
		CU_ASSERT_EQUAL(ipcbus_subscribe(c, pat, NULL, NULL, NULL, NULL), 0);
	}
	run(&fk, c, 100, NULL); /* before any resend */
	fprintf(stderr, "  (SUBs out before any answer: %d)", fk.subs);
	CU_ASSERT_EQUAL(fk.subs, 64);
	/* answered: the others go, and a flush waits for them all */
	fk.answer = 2;
	fk.subs = 0;
	run(&fk, c, 400, NULL); /* 64 resent, each answer lets one more out */
	fprintf(stderr, "  (then %d)", fk.subs);
	CU_ASSERT(fk.subs >= 100);
	CU_ASSERT_EQUAL(ev_disconnected, 0);
	ipcbus_close(c);
	fake_stop(&fk);
}

static int hello_again(struct fake *f)
{
	return f->hellos > 0;
}

static void test_sub_unanswered(void)
{
	CU_ASSERT_EQUAL_FATAL(fake_start(&fk, NULL), 0);
	ipcbus *c = fake_connect(&fk, 600);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	uint16_t port = fk.hello_port[1];
	fk.answer = 1;
	fk.hellos = 0;
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "un.x", NULL, NULL, NULL, NULL), 0);
	int64_t t0 = now_ms();
	CU_ASSERT_EQUAL(run(&fk, c, 2000, hello_again), 1);
	int64_t dt = now_ms() - t0;
	fprintf(stderr, "  (dropped after %lld ms, %d SUBs sent: %s)", (long long)dt, fk.subs,
		ev_text);
	CU_ASSERT(dt >= 600 && dt < 1500);
	CU_ASSERT(fk.subs >= 2); /* at 0 and 200 ms; at 600 the bound */
	CU_ASSERT_EQUAL(ev_disconnected, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev_text, "did not acknowledge a SUB"));
	CU_ASSERT_NOT_EQUAL(ntohs(fk.peer.sin_port), port); /* a new socket */
	ipcbus_close(c);
	fake_stop(&fk);
}

static void test_silent_broker(void)
{
	CU_ASSERT_EQUAL_FATAL(fake_start(&fk, NULL), 0);
	fk.lease_ms = 300;
	ipcbus *c = fake_connect(&fk, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	int t = ipcbus_timeout(c);
	CU_ASSERT(t >= 0 && t <= 100);
	fk.answer = 0;
	run(&fk, c, 250, NULL);
	fprintf(stderr, "  (keepalive PINGs in 250 ms: %d)", fk.pings_no_id);
	CU_ASSERT(fk.pings_no_id >= 2);
	CU_ASSERT_EQUAL(fk.pings, fk.pings_no_id);
	CU_ASSERT_EQUAL(ev_disconnected, 0);
	run(&fk, c, 150, NULL);
	CU_ASSERT_EQUAL(ev_disconnected, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev_text, "nothing from the broker"));
	ipcbus_close(c);
	fake_stop(&fk);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"handshake: padding, token, cookie on the same socket", test_handshake},
		{"a frame too big for a datagram: dropped, reported", test_too_big},
		{"at most 64 SUBs unanswered", test_window},
		{"a SUB never answered: reconnect", test_sub_unanswered},
		{"a silent broker: keepalive, then a reconnect", test_silent_broker},
	};

	alarm(60);
	unsetenv("IPCBUS_TEST_UDP_DROP");
	unsetenv("IPCBUS_TOKEN");
	unsetenv("IPCBUS_TOKEN_FILE");
	return unit_run("client_udp", cases, UNIT_NELEM(cases));
}
