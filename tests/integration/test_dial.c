/*
 * test_dial.c: the broker dialing out (struct transport's dial, for
 * bridges), against peers the test itself runs inside the broker's own loop
 * (a listening socket and a TLS server on proto/tls.c), with a real struct
 * broker (broker_init, no listeners) and its log captured:
 *   - tcp:// to a listener of the test: conn_dialed() runs once, after dial()
 *     returned; a frame queued while dialing and one queued by the dialed
 *     hook reach the peer, in order and only after the hook ran; the
 *     socket has TCP_NODELAY and keepalive; c->addr is the peer's
 *     host:port; the dialed connection takes no max-connections place;
 *   - a port with nothing listening: conn_close() with "Connection
 *     refused", never conn_dialed(), the connection freed; a connect that
 *     fails inside dial() (EMFILE) is told from the loop all the same;
 *   - tls:// to a TLS server that wants a client certificate: with the
 *     right CA and cert=&key= both handshakes complete and a frame goes
 *     through; with another CA, or for an address the certificate does not
 *     name, "certificate verify failed"; a CA file that is not there fails
 *     dial() itself, with no connection;
 *   - a peer that accepts and never answers the TLS handshake, and a
 *     connect that is never answered (a listener whose queue is full drops
 *     the SYN): closed at the HELLO deadline (ping-interval 400 ms shortens
 *     it), naming the stage;
 *   - unix:// and udp:// cannot dial (NULL).
 * The certificates come from the openssl command (harness_tls_make), made
 * per case; the TLS cases that need them pass without it (a note on
 * stderr says so).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "conn.h"
#include "frame.h"
#include "harness.h"
#include "tls.h"
#include "transport.h"
#include "url.h"

#define T 5000

/* The test's peer: a listening socket and the one connection it accepts,
 * watched by the broker's loop. */
struct peer {
	int lfd, fd;
	struct loop_watch lw, w;
	int lwatched, watched;
	int silent;           /* accept, then never read nor answer */
	struct tls_ctx *ctx;  /* a TLS server, else plain */
	struct tls *t;
	int hs_done, hs_failed;
	char hs_err[256];
	uint8_t in[4096];
	size_t inlen;
	int dialed_at_first; /* conn_dialed() had run when the first byte came */
	int eof;
};

struct fix {
	struct broker b;
	char *logbuf;
	size_t loglen;
	FILE *logf;
	struct loop_timer tick;
	uint64_t deadline;
	int (*done)(void);
	struct conn *c;
	int dialed;          /* calls of the hook */
	int dialing_in_hook; /* c->dialing seen by the hook */
	int nodelay, keepalive;
	char addr_in_hook[80];
	struct peer p;
	int up;
};

static struct fix F;
static struct harness_tls tls_a, tls_b; /* the right CA and another one */
static int have_tls;

/* Certificates for this case in a folder of its own: tls_a, and with
 * other tls_b (another CA). */
static void certs(int other)
{
	const char *dir = harness_tmpdir();
	CU_ASSERT_FATAL(dir && harness_tls_make(dir, &tls_a) == 0);
	if (other) {
		dir = harness_tmpdir();
		CU_ASSERT_FATAL(dir && harness_tls_make(dir, &tls_b) == 0);
	}
}

/* ---- the broker and its loop ---- */

static void fix_down(void *arg)
{
	(void)arg;
	if (!F.up)
		return;
	if (F.p.watched)
		loop_del(F.b.loop, &F.p.w);
	if (F.p.lwatched)
		loop_del(F.b.loop, &F.p.lw);
	tls_free(F.p.t);
	tls_ctx_free(F.p.ctx);
	if (F.p.fd >= 0)
		close(F.p.fd);
	if (F.p.lfd >= 0)
		close(F.p.lfd);
	loop_timer_cancel(F.b.loop, &F.tick);
	broker_fini(&F.b);
	fclose(F.logf);
	fprintf(stderr, "---- broker log ----\n%s", F.logbuf ? F.logbuf : "");
	free(F.logbuf);
	F.up = 0;
}

/* A broker with no listeners; ping-interval iv (it bounds the dial). */
static void fix_up(uint64_t iv, uint64_t max_connections)
{
	struct conf cfg;
	sigset_t old;

	memset(&F, 0, sizeof F);
	F.p.lfd = F.p.fd = -1;
	log_init(&F.b.log);
	F.logf = open_memstream(&F.logbuf, &F.loglen);
	CU_ASSERT_PTR_NOT_NULL_FATAL(F.logf);
	F.b.log.file = F.logf;
	F.b.log.level = LOG_LVL_DEBUG;
	conf_init(&cfg);
	cfg.ping_interval = iv;
	cfg.max_connections = max_connections;
	CU_ASSERT_EQUAL_FATAL(sigprocmask(SIG_SETMASK, NULL, &old), 0);
	int rc = broker_init(&F.b, &cfg);
	/* broker_init blocked TERM, INT... for its signalfd: not the test's */
	sigprocmask(SIG_SETMASK, &old, NULL);
	F.up = 1;
	harness_defer(fix_down, &F);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
}

static int log_has(const char *needle)
{
	fflush(F.logf);
	return F.logbuf && strstr(F.logbuf, needle) != NULL;
}

/* The line "... closed: WHY" of the log, from WHY on, or "". */
static const char *log_why(void)
{
	fflush(F.logf);
	const char *p = F.logbuf ? strstr(F.logbuf, " closed: ") : NULL;
	static char why[512];
	why[0] = 0;
	if (p)
		snprintf(why, sizeof why, "%.*s", (int)strcspn(p + 9, "\n"), p + 9);
	return why;
}

static void fix_tick(void *arg)
{
	(void)arg;
	if (F.done()) {
		loop_stop(F.b.loop);
		return;
	}
	if (harness_now() >= F.deadline) {
		loop_stop(F.b.loop);
		return;
	}
	loop_timer_set(F.b.loop, &F.tick, 5, fix_tick, NULL);
}

/* Run the broker's loop until done() or ms: 1 when done. */
static int fix_run(int (*done)(void), int ms)
{
	F.done = done;
	F.deadline = harness_now() + (uint64_t)ms;
	loop_timer_set(F.b.loop, &F.tick, 0, fix_tick, NULL);
	loop_run(F.b.loop);
	loop_timer_cancel(F.b.loop, &F.tick);
	return done();
}

/* ---- the peer ---- */

static void peer_event(void *arg, uint32_t events)
{
	struct peer *p = &F.p;
	(void)arg;
	(void)events;

	if (p->t && !p->hs_done) {
		int want = 0;
		int rc = tls_handshake(p->t, &want, p->hs_err, sizeof p->hs_err);
		if (rc == 0) {
			loop_mod(F.b.loop, &p->w, want == TLS_WANT_WRITE ? EPOLLOUT : EPOLLIN);
			return;
		}
		if (rc < 0) {
			p->hs_failed = 1;
			loop_mod(F.b.loop, &p->w, 0);
			return;
		}
		p->hs_done = 1;
		loop_mod(F.b.loop, &p->w, EPOLLIN);
	}
	for (;;) {
		ssize_t n;
		int want = 0;
		if (p->inlen == sizeof p->in)
			return;
		if (p->t)
			n = tls_read(p->t, p->in + p->inlen, sizeof p->in - p->inlen, &want);
		else
			n = read(p->fd, p->in + p->inlen, sizeof p->in - p->inlen);
		if (n > 0) {
			if (p->inlen == 0)
				p->dialed_at_first = F.dialed;
			p->inlen += (size_t)n;
			continue;
		}
		if (n < 0 && (n == -EAGAIN || errno == EAGAIN))
			return;
		p->eof = 1;
		loop_mod(F.b.loop, &p->w, 0);
		return;
	}
}

static void peer_accept(void *arg, uint32_t events)
{
	struct peer *p = &F.p;
	(void)arg;
	(void)events;

	int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (p->fd >= 0) {
		close(fd);
		return;
	}
	p->fd = fd;
	if (p->silent)
		return; /* held open, never read: the client's hello waits */
	if (p->ctx)
		CU_ASSERT_PTR_NOT_NULL_FATAL(p->t = tls_new(p->ctx, fd, NULL));
	CU_ASSERT_EQUAL_FATAL(loop_add(F.b.loop, &p->w, fd, EPOLLIN, peer_event, NULL), 0);
	p->watched = 1;
}

/* Listen on host (an IPv4 loopback address), port 0 (any), with backlog;
 * watch: accept in the loop.  Returns the port. */
static int peer_listen(const char *host, int backlog, int watch)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;

	CU_ASSERT_EQUAL_FATAL(inet_pton(AF_INET, host, &sa.sin_addr), 1);
	F.p.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(F.p.lfd >= 0);
	CU_ASSERT_EQUAL_FATAL(bind(F.p.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	CU_ASSERT_EQUAL_FATAL(listen(F.p.lfd, backlog), 0);
	CU_ASSERT_EQUAL_FATAL(getsockname(F.p.lfd, (struct sockaddr *)&sa, &len), 0);
	if (watch) {
		CU_ASSERT_EQUAL_FATAL(loop_add(F.b.loop, &F.p.lw, F.p.lfd, EPOLLIN, peer_accept, NULL), 0);
		F.p.lwatched = 1;
	}
	return ntohs(sa.sin_port);
}

/* The frames the peer received: 1 when the first ones are PINGs with ids. */
static int peer_got_pings(const uint64_t *ids, size_t n)
{
	const uint8_t *p = F.p.in;
	size_t left = F.p.inlen;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *body;
		size_t blen, need;
		struct frame f;
		long k = frame_split(p, left, 1 << 20, &body, &blen, &need);
		if (k <= 0)
			return 0;
		if (frame_decode(body, blen, &f) < 0 || f.type != IPCBUS__FRAME_TYPE__PING ||
		    !f.has_id || f.id != ids[i])
			return 0;
		p += k;
		left -= (size_t)k;
	}
	return 1;
}

/* ---- the dialer's side ---- */

static int queue_ping(struct conn *c, uint64_t id)
{
	struct frame ping = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = id};
	return conn_send(c, &ping);
}

/* The hook a bridge would set: what it saw, then a PING 42. */
static void on_dialed(struct conn *c)
{
	int on = 0;
	socklen_t len = sizeof on;

	F.dialed++;
	F.dialing_in_hook = c->dialing;
	snprintf(F.addr_in_hook, sizeof F.addr_in_hook, "%s", c->addr);
	if (getsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0)
		F.nodelay = on;
	len = sizeof on;
	if (getsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len) == 0)
		F.keepalive = on;
	CU_ASSERT_EQUAL(queue_ping(c, 42), 0);
}

/* Dial s (a URL); the hook set after dial() returned, as a bridge does. */
static int dial(const char *s, char *err, size_t errlen)
{
	struct url u;
	const struct transport *tr;

	CU_ASSERT_EQUAL_FATAL(url_parse(s, &u, err, errlen), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tr = transport_find(u.kind));
	CU_ASSERT_PTR_NOT_NULL_FATAL(tr->dial);
	err[0] = 0;
	F.c = NULL;
	int rc = tr->dial(&F.b, &u, &F.c, err, errlen);
	if (rc < 0)
		return rc;
	CU_ASSERT_PTR_NOT_NULL_FATAL(F.c);
	/* nothing happened inside dial(): no hook could have been set */
	CU_ASSERT_EQUAL(F.c->dialing, CONN_DIAL_CONNECT);
	CU_ASSERT_EQUAL(F.c->state, CONN_HELLO);
	CU_ASSERT_PTR_NULL(F.c->listener);
	CU_ASSERT_PTR_NULL(F.c->link);
	CU_ASSERT(F.c->outbound);
	CU_ASSERT_EQUAL(F.b.nconns, 1);
	F.c->dialed = on_dialed;
	return 0;
}

static int gone(void)
{
	return F.b.nconns == 0;
}

static int closed_told(void)
{
	return gone() && log_has("closed: ");
}

static const uint64_t pings_1_42[] = {1, 42};

static int got_two_pings(void)
{
	return peer_got_pings(pings_1_42, 2);
}

/* ---- cases ---- */

static void test_tcp(void)
{
	char url[128], err[512], want[64];

	fix_up(30000, 1);
	int port = peer_listen("127.0.0.1", 16, 1);
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	CU_ASSERT_EQUAL_FATAL(dial(url, err, sizeof err), 0);
	/* queued while dialing: waits for conn_dialed() */
	CU_ASSERT_EQUAL(queue_ping(F.c, 1), 0);
	/* a dialed connection is no client: max-connections 1 still admits */
	char why[160];
	CU_ASSERT_EQUAL(broker_admit(&F.b, why, sizeof why), 1);
	CU_ASSERT_FATAL(fix_run(got_two_pings, T));
	CU_ASSERT_EQUAL(F.dialed, 1);
	CU_ASSERT_EQUAL(F.dialing_in_hook, 0);
	CU_ASSERT_EQUAL(F.p.dialed_at_first, 1);
	CU_ASSERT_EQUAL(F.nodelay, 1);
	CU_ASSERT_EQUAL(F.keepalive, 1);
	snprintf(want, sizeof want, "127.0.0.1:%d", port);
	CU_ASSERT_STRING_EQUAL(F.addr_in_hook, want);
	CU_ASSERT_EQUAL(F.c->state, CONN_HELLO);
	CU_ASSERT_EQUAL(F.b.nconns, 1);
	CU_ASSERT_EQUAL(broker_admit(&F.b, why, sizeof why), 1);
	/* the peer goes away: closed, and freed */
	loop_del(F.b.loop, &F.p.w);
	F.p.watched = 0;
	close(F.p.fd);
	F.p.fd = -1;
	CU_ASSERT(fix_run(gone, T));
	CU_ASSERT(log_has("closed by the peer"));
	CU_ASSERT_EQUAL(F.dialed, 1);
}

static void test_refused(void)
{
	char url[128], err[512];

	fix_up(30000, 10);
	int port = harness_free_port(AF_INET);
	CU_ASSERT_FATAL(port > 0);
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	CU_ASSERT_EQUAL_FATAL(dial(url, err, sizeof err), 0);
	CU_ASSERT_FATAL(fix_run(closed_told, T));
	char want[128];
	snprintf(want, sizeof want, "connect 127.0.0.1:%d: Connection refused", port);
	CU_ASSERT_STRING_EQUAL(log_why(), want);
	CU_ASSERT_EQUAL(F.dialed, 0);
}

/* A connect that fails inside dial() (no descriptor to be had): told from
 * the loop all the same, after the caller could set its hooks. */
static void test_fails_at_once(void)
{
	char url[128], err[512];
	struct rlimit old, low;

	fix_up(30000, 10);
	int port = peer_listen("127.0.0.1", 16, 1);
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	/* the lowest free descriptor is the limit: socket() gets EMFILE */
	int k = dup(0);
	CU_ASSERT_FATAL(k >= 0);
	close(k);
	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)k;
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
	int rc = dial(url, err, sizeof err);
	setrlimit(RLIMIT_NOFILE, &old);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(F.c->state, CONN_HELLO); /* not closed inside dial() */
	CU_ASSERT_FATAL(fix_run(closed_told, T));
	char want[128];
	snprintf(want, sizeof want, "connect 127.0.0.1:%d: %s", port, strerror(EMFILE));
	CU_ASSERT_STRING_EQUAL(log_why(), want);
	CU_ASSERT_EQUAL(F.dialed, 0);
	CU_ASSERT(F.p.fd < 0); /* nothing connected */
}

static int tls_both_done(void)
{
	static const uint64_t ids[] = {42};
	return F.p.hs_done && F.dialed && peer_got_pings(ids, 1);
}

/* A TLS peer on host with the certificates of tls_a, asking for a client
 * certificate from the same CA. */
static int tls_peer(const char *host)
{
	char err[512];
	int rc = tls_ctx_server(&F.p.ctx, tls_a.cert, tls_a.key, tls_a.ca, err, sizeof err);
	if (rc < 0)
		fprintf(stderr, "tls_ctx_server: %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return peer_listen(host, 16, 1);
}

static void test_tls(void)
{
	char url[1024], err[512];

	if (!have_tls)
		return;
	certs(0);
	fix_up(30000, 10);
	int port = tls_peer("127.0.0.1");
	snprintf(url, sizeof url, "tls://127.0.0.1:%d?ca=%s&cert=%s&key=%s", port, tls_a.ca,
		 tls_a.client_cert, tls_a.client_key);
	CU_ASSERT_EQUAL_FATAL(dial(url, err, sizeof err), 0);
	CU_ASSERT_FATAL(fix_run(tls_both_done, T));
	CU_ASSERT_EQUAL(F.dialed, 1);
	CU_ASSERT_EQUAL(F.dialing_in_hook, 0);
	CU_ASSERT_EQUAL(F.p.dialed_at_first, 1);
	CU_ASSERT_FALSE(F.p.hs_failed);
	CU_ASSERT(log_has("TLS established"));
}

static void test_tls_wrong_ca(void)
{
	char url[1024], err[512];

	if (!have_tls)
		return;
	certs(1);
	fix_up(30000, 10);
	int port = tls_peer("127.0.0.1");
	snprintf(url, sizeof url, "tls://127.0.0.1:%d?ca=%s", port, tls_b.ca);
	CU_ASSERT_EQUAL_FATAL(dial(url, err, sizeof err), 0);
	CU_ASSERT_FATAL(fix_run(closed_told, T));
	const char *why = log_why();
	/* the peer sends its CA along: "self-signed certificate in
	 * certificate chain" (without it: "unable to get local issuer") */
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "TLS: certificate verify failed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "certificate"));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, tls_b.ca));
	CU_ASSERT_EQUAL(F.dialed, 0);
}

/* 127.0.0.2 is loopback too, but not in the certificate's names. */
static void test_tls_wrong_host(void)
{
	char url[1024], err[512];

	if (!have_tls)
		return;
	certs(0);
	fix_up(30000, 10);
	int port = tls_peer("127.0.0.2");
	snprintf(url, sizeof url, "tls://127.0.0.2:%d?ca=%s", port, tls_a.ca);
	CU_ASSERT_EQUAL_FATAL(dial(url, err, sizeof err), 0);
	CU_ASSERT_FATAL(fix_run(closed_told, T));
	const char *why = log_why();
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "TLS: certificate verify failed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "mismatch"));
	CU_ASSERT_EQUAL(F.dialed, 0);
}

/* Bad files: dial() fails at once, and no connection is left. */
static void test_tls_bad_file(void)
{
	char url[1024], err[512];
	const char *dir = harness_tmpdir();

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	fix_up(30000, 10);
	snprintf(url, sizeof url, "tls://127.0.0.1:1?ca=%s/nothere.pem", dir);
	CU_ASSERT(dial(url, err, sizeof err) < 0);
	fprintf(stderr, "dial: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "TLS: CA file"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "nothere.pem"));
	CU_ASSERT_PTR_NULL(F.c);
	CU_ASSERT_EQUAL(F.b.nconns, 0);
}

static void test_tls_silent(void)
{
	char url[1024], err[512];

	if (!have_tls)
		return;
	certs(0);
	fix_up(400, 10);
	F.p.silent = 1;
	int port = peer_listen("127.0.0.1", 16, 1);
	snprintf(url, sizeof url, "tls://127.0.0.1:%d?ca=%s", port, tls_a.ca);
	uint64_t t0 = harness_now();
	CU_ASSERT_EQUAL_FATAL(dial(url, err, sizeof err), 0);
	CU_ASSERT_FATAL(fix_run(closed_told, T));
	uint64_t took = harness_now() - t0;
	CU_ASSERT(took >= 350 && took < 3000);
	char want[128];
	snprintf(want, sizeof want, "TLS handshake with 127.0.0.1:%d: not done within 400 ms", port);
	CU_ASSERT_STRING_EQUAL(log_why(), want);
	CU_ASSERT_EQUAL(F.dialed, 0);
	CU_ASSERT(F.p.fd >= 0); /* it did connect */
}

/* A listener whose accept queue is full drops the SYN: the connect is
 * never answered, as with a host that is not there. */
static void test_connect_blackholed(void)
{
	char url[128], err[512];

	fix_up(400, 10);
	int port = peer_listen("127.0.0.1", 0, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(filler >= 0);
	CU_ASSERT_EQUAL_FATAL(connect(filler, (struct sockaddr *)&sa, sizeof sa), 0);
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	uint64_t t0 = harness_now();
	int rc = dial(url, err, sizeof err);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc == 0) {
		CU_ASSERT(fix_run(closed_told, T));
		uint64_t took = harness_now() - t0;
		CU_ASSERT(took >= 350 && took < 3000);
		char want[128];
		snprintf(want, sizeof want, "connect 127.0.0.1:%d: no answer within 400 ms", port);
		CU_ASSERT_STRING_EQUAL(log_why(), want);
		CU_ASSERT_EQUAL(F.dialed, 0);
	}
	close(filler);
}

static void test_no_dial(void)
{
	CU_ASSERT_PTR_NULL(transport_unix.dial);
	CU_ASSERT_PTR_NULL(transport_udp.dial);
	CU_ASSERT_PTR_NOT_NULL(transport_tcp.dial);
	CU_ASSERT_PTR_NOT_NULL(transport_tls.dial);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"tcp: dialed, frames after the hook, no max-connections place", test_tcp},
		{"tcp: refused", test_refused},
		{"tcp: a failure inside dial() is told from the loop", test_fails_at_once},
		{"tcp: a connect never answered ends at the HELLO deadline", test_connect_blackholed},
		{"tls: handshake with ca= and a client certificate", test_tls},
		{"tls: another CA: verify failed", test_tls_wrong_ca},
		{"tls: an address the certificate does not name", test_tls_wrong_host},
		{"tls: a CA file that is not there fails dial()", test_tls_bad_file},
		{"tls: a peer that never answers ends at the HELLO deadline", test_tls_silent},
		{"unix and udp cannot dial", test_no_dial},
	};
	char openssl[512];

	have_tls = harness_which("openssl", openssl, sizeof openssl) == 0;
	if (!have_tls)
		fprintf(stderr, "test_dial: no openssl command: the TLS cases are skipped\n");
	return harness_main("dial", cases, HARNESS_NELEM(cases), 0, 120, argc, argv);
}
