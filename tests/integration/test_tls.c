/*
 * test_tls.c: tls:// through libipcbus against a real broker, the bad
 * input above all.  The conformance suite (tests/transport/, rows tls and
 * tls-mutual) checks that TLS carries everything a transport must; this
 * program checks that each way of getting TLS wrong fails ipcbus_connect
 * with IPCBUS_ETLS (or the code that fits) and a text that names the
 * cause, and that the broker serves everyone else meanwhile:
 *   - where the CA comes from: ca=, else IPCBUS_TLS_CA, else the system's
 *     store (which does not know the test CA); a wrong CA, a CA file that
 *     is not there;
 *   - the broker's certificate expired (openssl x509 -days -1: notAfter a
 *     day before notBefore), or for another name (a DNS name and an IP
 *     address, both checked);
 *   - mutual TLS (tls-ca): no client certificate, one from another CA, a
 *     key that is not the certificate's, half of the pair in the
 *     environment; the pair from the environment works;
 *   - a plain tcp:// client on the TLS port (the broker's plain ERR, also
 *     for a HELLO of 22 bytes, whose first byte is a TLS record's) and a
 *     TLS client on a plain port ("does not speak TLS");
 *   - a handshake that stalls after three bytes, and a TCP connection that
 *     says nothing: dropped at the HELLO deadline (ping-interval 500), a
 *     good client served meanwhile; a broker that never answers the
 *     handshake: ipcbus_connect gives up at connect_timeout_ms;
 *   - a wrong token over TLS (E_AUTH, fatal);
 *   - a certificate failure at a reconnect is retried (the broker's
 *     certificate may be replaced while it restarts), the first connect's
 *     is not;
 *   - SIGPIPE at its default disposition in a publisher whose broker dies
 *     mid-write: the program must not die of it;
 *   - the CLI over tls:// ($IPCBUS_CLI; skipped without it).
 * Skipped (77) without the openssl command.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include "harness.h"
#include "ipcbus.h"
#include "libpump.h"

#define T 5000

/* ---- helpers ---- */

/* The last IPCBUS_EV_* of a connection (and the connect's failure). */
struct events {
	int failed, disconnected, reconnected, closed;
	int err;
	char text[512];
};

static void on_event(void *arg, int event, int err, const char *text)
{
	struct events *e = arg;
	switch (event) {
	case IPCBUS_EV_CONNECT_FAILED: e->failed++; break;
	case IPCBUS_EV_DISCONNECTED: e->disconnected++; break;
	case IPCBUS_EV_RECONNECTED: e->reconnected++; break;
	case IPCBUS_EV_CLOSED: e->closed++; break;
	}
	e->err = err;
	snprintf(e->text, sizeof e->text, "%s", text ? text : "");
}

static void lib_close_cb(void *arg)
{
	ipcbus_close(arg);
}

static void env_clear(void *arg)
{
	(void)arg;
	unsetenv("IPCBUS_TLS_CA");
	unsetenv("IPCBUS_TLS_CERT");
	unsetenv("IPCBUS_TLS_KEY");
	unsetenv("IPCBUS_TOKEN");
}

/* Set an environment variable for this case only. */
static void env_set(const char *name, const char *value)
{
	setenv(name, value, 1);
	harness_defer(env_clear, NULL);
}

/* ipcbus_connect to url: the code; *out the connection (closed at cleanup)
 * or NULL; ev gets the events (the failure's text). */
static int lib_try(const char *url, struct events *ev, int connect_timeout_ms, ipcbus **out)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	ipcbus *c = NULL;

	memset(ev, 0, sizeof *ev);
	o.name = "test-tls";
	o.on_event = on_event;
	o.event_arg = ev;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 100;
	o.connect_timeout_ms = connect_timeout_ms;
	int rc = ipcbus_connect(&c, url, &o);
	if (rc == 0)
		harness_defer(lib_close_cb, c);
	if (out)
		*out = c;
	else if (c) {
		harness_undefer(c);
		ipcbus_close(c);
	}
	return rc;
}

/* Expect ipcbus_connect(url) to fail with code and a text holding each of
 * the NULL-ended needles. */
static void expect_fail(const char *url, int code, ...)
{
	struct events ev;
	int rc = lib_try(url, &ev, T, NULL);
	fprintf(stderr, "  (%s: %s)\n", ipcbus_strerror(rc), ev.text);
	CU_ASSERT_EQUAL(rc, code);
	CU_ASSERT_EQUAL(ev.failed, 1);
	CU_ASSERT_EQUAL(ev.err, code);
	va_list ap;
	va_start(ap, code);
	for (const char *n; (n = va_arg(ap, const char *));) {
		if (!strstr(ev.text, n)) {
			fprintf(stderr, "  the text lacks \"%s\"\n", n);
			CU_FAIL("the failure's text");
		}
	}
	va_end(ap);
}

/* A round trip over c: subscribe, publish to itself, receive. */
struct got {
	int n;
};

static void got_cb(void *arg, const ipcbus_msg *m)
{
	(void)m;
	((struct got *)arg)->n++;
}

static int got_one(void *arg)
{
	return ((struct got *)arg)->n > 0;
}

static int round_trip(ipcbus *c)
{
	struct got g = {0};
	uint64_t sid;
	if (ipcbus_subscribe(c, "tls.rt", NULL, got_cb, &g, &sid) < 0 ||
	    ipcbus_flush(c, T) < 0 || ipcbus_publish(c, "tls.rt", "hello", 5) < 0)
		return -1;
	int rc = lib_pump(&c, 1, got_one, &g, T);
	ipcbus_unsubscribe(c, sid);
	return rc;
}

/* Connect to url and round-trip: 0, or -1 with a CUnit failure. */
static int expect_ok(const char *url)
{
	struct events ev;
	ipcbus *c;
	int rc = lib_try(url, &ev, T, &c);
	if (rc < 0) {
		fprintf(stderr, "  connect %s: %s: %s\n", url, ipcbus_strerror(rc), ev.text);
		CU_FAIL("ipcbus_connect over tls://");
		return -1;
	}
	CU_ASSERT_EQUAL(round_trip(c), 0);
	harness_undefer(c);
	ipcbus_close(c);
	return 0;
}

/* A TLS broker: listen tls://127.0.0.1:PORT with the harness's server
 * certificate (or cert/key when given), plus lines; its CA and client
 * material in t; url is "tls://127.0.0.1:PORT" (add ?ca=...). */
struct tlsb {
	struct harness_broker *b;
	struct harness_tls t;
	int port;
	char url[128];
};

static int tls_up(struct tlsb *x, const char *lines, const char *cert, const char *key)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char text[2048];
		x->port = harness_free_port(AF_INET);
		snprintf(text, sizeof text,
			 "listen tls://127.0.0.1:%d\ntls-cert %s\ntls-key %s\n%s", x->port,
			 cert ? cert : "@DIR@/server.pem", key ? key : "@DIR@/server.key",
			 lines ? lines : "");
		x->b = harness_broker_new(text);
		if (!x->b || harness_tls_make(x->b->dir, &x->t) < 0) {
			CU_FAIL("broker folder or TLS files");
			return -1;
		}
		if (harness_broker_start(x->b, NULL) == 0) {
			snprintf(x->url, sizeof x->url, "tls://127.0.0.1:%d", x->port);
			return 0;
		}
		int taken = harness_broker_log_has(x->b, "in use");
		if (!taken) {
			char *log = harness_read_file(x->b->log, NULL);
			fprintf(stderr, "  the broker did not start:\n%s\n", log ? log : "");
			free(log);
		}
		harness_broker_free(x->b);
		x->b = NULL;
		if (!taken)
			break;
	}
	CU_FAIL("the TLS broker did not start");
	return -1;
}

#define TLS_UP(x, lines, cert, key)                                                                \
	struct tlsb x;                                                                              \
	if (tls_up(&x, lines, cert, key) < 0)                                                       \
	return

/* A leaf certificate for the CA of t in dir: name.pem and name.key, with
 * the extensions ext and -days days (negative: expired). */
static int make_leaf(const char *dir, const struct harness_tls *t, const char *name,
		     const char *ext, const char *days, char *cert, char *key, size_t n)
{
	char csr[200], extfile[200], serial[200];
	snprintf(cert, n, "%s/%s.pem", dir, name);
	snprintf(key, n, "%s/%s.key", dir, name);
	snprintf(csr, sizeof csr, "%s/%s.csr", dir, name);
	snprintf(extfile, sizeof extfile, "%s/%s.ext", dir, name);
	snprintf(serial, sizeof serial, "%s/%s.srl", dir, name);
	if (harness_write_file(extfile, ext) < 0)
		return -1;
	const char *const req[] = {"req", "-new", "-newkey", "ec", "-pkeyopt",
				   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
				   "-out", csr, "-subj", "/CN=ipcbus-test-leaf", NULL};
	const char *const sign[] = {"x509", "-req", "-in", csr, "-CA", t->ca, "-CAkey", t->ca_key,
				    "-CAserial", serial, "-CAcreateserial", "-days", days,
				    "-extfile", extfile, "-out", cert, NULL};
	return harness_openssl_run(req) < 0 || harness_openssl_run(sign) < 0 ? -1 : 0;
}

#define SERVER_EXT "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"

/* ---- cases ---- */

/* ca=, IPCBUS_TLS_CA, the system's store; a wrong CA; a missing file. */
static void test_trust(void)
{
	TLS_UP(x, NULL, NULL, NULL);
	char url[1024];
	const char *other = harness_tmpdir();
	struct harness_tls o;
	CU_ASSERT_FATAL(other && harness_tls_make(other, &o) == 0);

	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);
	expect_ok(url);

	/* another CA: the broker's certificate is not signed by it */
	snprintf(url, sizeof url, "%s?ca=%s", x.url, o.ca);
	expect_fail(url, IPCBUS_ETLS, "the broker's certificate is not accepted",
		    "unable to get local issuer certificate", o.ca, NULL);

	/* no CA given: the system's store, which does not know ours */
	expect_fail(x.url, IPCBUS_ETLS, "not accepted", "the system's CA store", NULL);

	/* the environment's, unless the URL has one */
	env_set("IPCBUS_TLS_CA", x.t.ca);
	expect_ok(x.url);
	snprintf(url, sizeof url, "%s?ca=%s", x.url, o.ca);
	expect_fail(url, IPCBUS_ETLS, "not accepted", o.ca, NULL);
	env_set("IPCBUS_TLS_CA", o.ca);
	expect_fail(x.url, IPCBUS_ETLS, "not accepted", o.ca, NULL);
	env_clear(NULL);

	/* files that are not there: named, before anything is sent */
	snprintf(url, sizeof url, "%s?ca=%s/nonexistent.pem", x.url, other);
	expect_fail(url, IPCBUS_ETLS, "CA file", "nonexistent.pem", strerror(ENOENT), NULL);
	snprintf(url, sizeof url, "%s?ca=%s&cert=%s/nocert.pem&key=%s", x.url, x.t.ca, other,
		 x.t.client_key);
	expect_fail(url, IPCBUS_ETLS, "certificate file", "nocert.pem", NULL);
	/* not a certificate at all */
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca_key);
	expect_fail(url, IPCBUS_ETLS, "CA file", NULL);

	/* the broker is unharmed */
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);
	expect_ok(url);
}

/* An expired certificate; one for another name. */
static void test_broker_cert(void)
{
	const char *dir = harness_tmpdir();
	struct harness_tls t;
	char cert[200], key[200], url[1024];
	CU_ASSERT_FATAL(dir && harness_tls_make(dir, &t) == 0);

	/* notAfter a day before notBefore: expired from its start */
	CU_ASSERT_FATAL(make_leaf(dir, &t, "expired",
				  SERVER_EXT "subjectAltName=DNS:localhost,IP:127.0.0.1\n", "-1",
				  cert, key, sizeof cert) == 0);
	{
		TLS_UP(x, NULL, cert, key);
		snprintf(url, sizeof url, "%s?ca=%s", x.url, t.ca);
		expect_fail(url, IPCBUS_ETLS, "not accepted", "certificate has expired", NULL);
		harness_broker_free(x.b);
	}

	/* valid, for another name and address only */
	CU_ASSERT_FATAL(make_leaf(dir, &t, "other",
				  SERVER_EXT "subjectAltName=DNS:other.example,IP:192.0.2.1\n", "2",
				  cert, key, sizeof cert) == 0);
	TLS_UP(x, NULL, cert, key);
	snprintf(url, sizeof url, "%s?ca=%s", x.url, t.ca);
	expect_fail(url, IPCBUS_ETLS, "not accepted", "IP address mismatch",
		    "it is not for 127.0.0.1", NULL);
	snprintf(url, sizeof url, "tls://localhost:%d?ca=%s", x.port, t.ca);
	expect_fail(url, IPCBUS_ETLS, "not accepted", "ostname mismatch",
		    "it is not for localhost", NULL);

	/* and the name that is in the harness's certificate works */
	harness_broker_free(x.b);
	TLS_UP(y, NULL, NULL, NULL);
	snprintf(url, sizeof url, "tls://localhost:%d?ca=%s", y.port, y.t.ca);
	expect_ok(url);
}

/* tls-ca: client certificates required and checked. */
static void test_mutual(void)
{
	TLS_UP(x, "tls-ca @DIR@/ca.pem\n", NULL, NULL);
	char url[1024];
	const char *other = harness_tmpdir();
	struct harness_tls o;
	CU_ASSERT_FATAL(other && harness_tls_make(other, &o) == 0);

	snprintf(url, sizeof url, "%s?ca=%s&cert=%s&key=%s", x.url, x.t.ca, x.t.client_cert,
		 x.t.client_key);
	expect_ok(url);

	/* none: TLS 1.3 says so at the first read, after the handshake */
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);
	expect_fail(url, IPCBUS_ETLS, "refused the TLS handshake", "requires a client certificate",
		    NULL);
	CU_ASSERT_EQUAL(harness_broker_wait_log(x.b, "refused", T), 0);

	/* one from a CA the broker does not trust */
	snprintf(url, sizeof url, "%s?ca=%s&cert=%s&key=%s", x.url, x.t.ca, o.client_cert,
		 o.client_key);
	expect_fail(url, IPCBUS_ETLS, "refused the TLS handshake", o.client_cert, NULL);

	/* a key that is not the certificate's: found before connecting */
	snprintf(url, sizeof url, "%s?ca=%s&cert=%s&key=%s", x.url, x.t.ca, x.t.client_cert,
		 o.client_key);
	expect_fail(url, IPCBUS_ETLS, "key", o.client_key, "mismatch", NULL);

	/* the pair from the environment; half of it is an error */
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);
	env_set("IPCBUS_TLS_CERT", x.t.client_cert);
	expect_fail(url, IPCBUS_ETLS, "IPCBUS_TLS_CERT is set but IPCBUS_TLS_KEY is not", NULL);
	env_set("IPCBUS_TLS_KEY", x.t.client_key);
	expect_ok(url);
	/* the URL's pair wins */
	snprintf(url, sizeof url, "%s?ca=%s&cert=%s&key=%s", x.url, x.t.ca, o.client_cert,
		 o.client_key);
	expect_fail(url, IPCBUS_ETLS, "refused the TLS handshake", NULL);
	env_clear(NULL);

	/* the broker is unharmed */
	snprintf(url, sizeof url, "%s?ca=%s&cert=%s&key=%s", x.url, x.t.ca, x.t.client_cert,
		 x.t.client_key);
	expect_ok(url);
}

/* tcp:// to a TLS port, tls:// to a plain one. */
static void test_wrong_port(void)
{
	int tport = harness_free_port(AF_INET);
	char lines[200], url[1024];
	snprintf(lines, sizeof lines, "listen tcp://127.0.0.1:%d\n", tport);
	TLS_UP(x, lines, NULL, NULL);

	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", x.port);
	expect_fail(url, IPCBUS_EPROTO, "this port speaks TLS", "tls://", NULL);
	/* whatever the HELLO's length: one of 22 bytes begins with 0x16,
	 * as a TLS record does (the broker looks at the second byte too) */
	int wrong = 0;
	for (int len = 1; len <= 24; len++) {
		char name[32];
		struct events ev = {0};
		ipcbus_opts o = IPCBUS_OPTS_INIT;
		ipcbus *c = NULL;
		snprintf(name, sizeof name, "%.*s", len, "nnnnnnnnnnnnnnnnnnnnnnnnnnnn");
		o.name = name;
		o.on_event = on_event;
		o.event_arg = &ev;
		int rc = ipcbus_connect(&c, url, &o);
		if (rc != IPCBUS_EPROTO || !strstr(ev.text, "this port speaks TLS")) {
			fprintf(stderr, "  (a HELLO with a name of %d bytes: %s: %s)\n", len,
				ipcbus_strerror(rc), ev.text);
			wrong++;
		}
		ipcbus_close(c);
	}
	CU_ASSERT_EQUAL(wrong, 0);

	snprintf(url, sizeof url, "tls://127.0.0.1:%d?ca=%s", tport, x.t.ca);
	expect_fail(url, IPCBUS_ETLS, "does not speak TLS", "127.0.0.1:", "tcp://", NULL);

	/* both still served */
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", tport);
	expect_ok(url);
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);
	expect_ok(url);
}

/* A raw TCP connection to 127.0.0.1:port; the descriptor or -1. */
static int raw_tcp(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void close_fd(void *arg)
{
	close((int)(intptr_t)arg);
}

/* Wait until the peer closed fd: its time in ms, or -1 after timeout_ms. */
static long wait_closed(int fd, uint64_t t0, int timeout_ms)
{
	char b[4096];
	for (;;) {
		int left = (int)(t0 + (uint64_t)timeout_ms - harness_now());
		if (left <= 0)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t k = recv(fd, b, sizeof b, MSG_DONTWAIT);
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
			return (long)(harness_now() - t0);
	}
}

/* A handshake that stops after three bytes, a connection that says
 * nothing: dropped at the HELLO deadline, others served meanwhile. */
static void test_stalled(void)
{
	TLS_UP(x, "ping-interval 500\n", NULL, NULL);
	char url[1024];
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);

	uint64_t t0 = harness_now();
	int half = raw_tcp(x.port), mute = raw_tcp(x.port);
	CU_ASSERT_FATAL(half >= 0 && mute >= 0);
	harness_defer(close_fd, (void *)(intptr_t)half);
	harness_defer(close_fd, (void *)(intptr_t)mute);
	static const unsigned char start[] = {0x16, 0x03, 0x01}; /* a record header, cut */
	CU_ASSERT_EQUAL(send(half, start, sizeof start, MSG_NOSIGNAL), 3);

	/* served while those two hang */
	uint64_t s0 = harness_now();
	expect_ok(url);
	uint64_t served = harness_now() - s0;
	fprintf(stderr, "  (a good client served in %llu ms meanwhile)\n", (unsigned long long)served);
	CU_ASSERT(served < 1000);

	long th = wait_closed(half, t0, 4000), tm = wait_closed(mute, t0, 4000);
	fprintf(stderr, "  (the stalled handshake dropped after %ld ms, the mute one after %ld ms)\n",
		th, tm);
	CU_ASSERT(th >= 400 && th < 3000);
	CU_ASSERT(tm >= 400 && tm < 3000);
	expect_ok(url);
}

/* A "broker" that accepts TCP and never answers: the handshake counts
 * against connect_timeout_ms. */
static void test_handshake_timeout(void)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	CU_ASSERT_FATAL(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
			listen(lfd, 8) == 0 && getsockname(lfd, (struct sockaddr *)&sa, &len) == 0);
	harness_defer(close_fd, (void *)(intptr_t)lfd);
	const char *dir = harness_tmpdir();
	struct harness_tls t;
	CU_ASSERT_FATAL(dir && harness_tls_make(dir, &t) == 0);

	char url[1024];
	snprintf(url, sizeof url, "tls://127.0.0.1:%d?ca=%s", ntohs(sa.sin_port), t.ca);
	struct events ev;
	uint64_t t0 = harness_now();
	int rc = lib_try(url, &ev, 300, NULL);
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (%s after %llu ms: %s)\n", ipcbus_strerror(rc), (unsigned long long)dt,
		ev.text);
	CU_ASSERT_EQUAL(rc, IPCBUS_ETIMEOUT);
	CU_ASSERT(dt >= 250 && dt < 2000);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev.text, "TLS handshake"));
}

/* A wrong token over TLS: E_AUTH, fatal; the right one works. */
static void test_token(void)
{
	TLS_UP(x, "token s3cret-s3cret-s3cret\n", NULL, NULL);
	char url[1024];

	snprintf(url, sizeof url, "tls://wrong@127.0.0.1:%d?ca=%s", x.port, x.t.ca);
	expect_fail(url, IPCBUS_EPERM, NULL);
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);
	expect_fail(url, IPCBUS_EPERM, NULL);
	CU_ASSERT_EQUAL(harness_broker_wait_log(x.b, "refused", T), 0);

	snprintf(url, sizeof url, "tls://s3cret-s3cret-s3cret@127.0.0.1:%d?ca=%s", x.port, x.t.ca);
	expect_ok(url);
	env_set("IPCBUS_TOKEN", "s3cret-s3cret-s3cret");
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);
	expect_ok(url);
}

static int is_connected(void *arg)
{
	return ipcbus_connected(arg);
}

static int is_down(void *arg)
{
	return !ipcbus_connected(arg);
}

/* Once connected, a reconnect whose certificate check fails is retried:
 * the broker may get its new certificate while it restarts. */
static void test_reconnect_cert(void)
{
	const char *dir = harness_tmpdir();
	char cert[200], key[200], url[1024];
	TLS_UP(x, NULL, NULL, NULL);
	CU_ASSERT_FATAL(dir && make_leaf(dir, &x.t, "expired",
					 SERVER_EXT "subjectAltName=IP:127.0.0.1\n", "-1", cert, key,
					 sizeof cert) == 0);
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);
	struct events ev;
	ipcbus *c;
	CU_ASSERT_EQUAL_FATAL(lib_try(url, &ev, T, &c), 0);

	/* the broker comes back with an expired certificate */
	char server_pem[200], server_key[200];
	snprintf(server_pem, sizeof server_pem, "%s/server.pem", x.b->dir);
	snprintf(server_key, sizeof server_key, "%s/server.key", x.b->dir);
	harness_broker_stop(x.b);
	CU_ASSERT_EQUAL(lib_pump(&c, 1, is_down, c, T), 0);
	char *good = harness_read_file(server_pem, NULL), *goodk = harness_read_file(server_key, NULL);
	char *bad = harness_read_file(cert, NULL), *badk = harness_read_file(key, NULL);
	CU_ASSERT_FATAL(good && goodk && bad && badk);
	CU_ASSERT_EQUAL(harness_write_file(server_pem, bad), 0);
	CU_ASSERT_EQUAL(harness_write_file(server_key, badk), 0);
	CU_ASSERT_EQUAL_FATAL(harness_broker_restart(x.b), 0);
	lib_pump(&c, 1, NULL, NULL, 600); /* several attempts, each refused */
	CU_ASSERT_FALSE(ipcbus_connected(c));
	CU_ASSERT_PTR_NOT_NULL(strstr(ipcbus_last_error(c), "certificate has expired"));
	CU_ASSERT_EQUAL(ev.closed, 0);
	fprintf(stderr, "  (while refused: %s)\n", ipcbus_last_error(c));

	/* and with a good one again it is back */
	harness_broker_stop(x.b);
	CU_ASSERT_EQUAL(harness_write_file(server_pem, good), 0);
	CU_ASSERT_EQUAL(harness_write_file(server_key, goodk), 0);
	CU_ASSERT_EQUAL_FATAL(harness_broker_restart(x.b), 0);
	CU_ASSERT_EQUAL(lib_pump(&c, 1, is_connected, c, T), 0);
	CU_ASSERT(ev.reconnected >= 1);
	CU_ASSERT_EQUAL(round_trip(c), 0);
	free(good);
	free(goodk);
	free(bad);
	free(badk);
}

/* SIGPIPE at its default disposition in a publisher whose broker went
 * away: the first write after the broker's FIN is answered with a reset,
 * the next one fails with EPIPE -- and raises SIGPIPE unless sent with
 * MSG_NOSIGNAL (OpenSSL's own socket BIO writes with write(2)).  The
 * publisher must learn it from ipcbus_dispatch and live. */
static void test_sigpipe(void)
{
	TLS_UP(x, NULL, NULL, NULL);
	char url[1024];
	int up[2], go[2];
	snprintf(url, sizeof url, "%s?ca=%s", x.url, x.t.ca);
	CU_ASSERT_FATAL(pipe(up) == 0 && pipe(go) == 0);

	pid_t pid = harness_fork(20);
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		static char payload[64 * 1024]; /* one write per publish */
		ipcbus_opts o = IPCBUS_OPTS_INIT;
		ipcbus *c;
		char ch;
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		o.no_reconnect = 1;
		close(up[0]);
		close(go[1]);
		if (ipcbus_connect(&c, url, &o) < 0 || write(up[1], "c", 1) != 1 ||
		    read(go[0], &ch, 1) != 1)
			_exit(3);
		/* the broker is gone: publish without reading, then ask */
		for (int i = 0; i < 20; i++) {
			ipcbus_publish(c, "tls.gone", payload, sizeof payload);
			harness_sleep(5); /* the reset comes back */
		}
		int rc = ipcbus_dispatch(c);
		ipcbus_close(c);
		_exit(rc < 0 ? 0 : 2); /* told, and not killed */
	}
	close(up[1]);
	close(go[0]);
	char ch;
	CU_ASSERT_EQUAL(read(up[0], &ch, 1), 1);
	CU_ASSERT_EQUAL(harness_broker_stop(x.b), 0); /* close_notify, FIN */
	CU_ASSERT_EQUAL(write(go[1], "g", 1), 1);
	close(up[0]);
	close(go[1]);
	int st = harness_wait_pid(pid, 15000);
	fprintf(stderr, "  (the publisher's exit status: %d%s)\n", st,
		st == 128 + SIGPIPE ? ", killed by SIGPIPE" : "");
	CU_ASSERT_EQUAL(st, 0);
}

/* The CLI takes tls:// URLs; a certificate failure is a clear error. */
static void test_cli(void)
{
	const char *cli = getenv("IPCBUS_CLI");
	if (!cli || !*cli) {
		fprintf(stderr, "  (no $IPCBUS_CLI: not run)\n");
		return;
	}
	TLS_UP(x, "token s3cret-s3cret-s3cret\n", NULL, NULL);
	char url[1024], bad[1024];
	snprintf(url, sizeof url, "tls://s3cret-s3cret-s3cret@127.0.0.1:%d?ca=%s", x.port, x.t.ca);
	snprintf(bad, sizeof bad, "tls://s3cret-s3cret-s3cret@127.0.0.1:%d", x.port);

	/* -c 2: the probe of harness_raw_wait_interest, then ours */
	struct harness_proc *sub = harness_cli_start(NULL, 0, "sub", "-u", url, "-c", "2", "cli.tls",
						     NULL);
	CU_ASSERT_FATAL(sub != NULL);
	struct harness_raw *unix_peer = harness_raw_open(x.b, "probe");
	CU_ASSERT_FATAL(unix_peer != NULL);
	CU_ASSERT_EQUAL(harness_raw_wait_interest(unix_peer, "cli.tls", T), 0);
	struct harness_proc *pub = harness_cli(T, NULL, 0, "pub", "-u", url, "cli.tls", "over tls",
					       NULL);
	CU_ASSERT_EQUAL(pub->status, 0);
	CU_ASSERT_EQUAL(harness_proc_wait(sub, T), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(sub->out, "over tls"));

	/* no CA: the system's store does not know it; the token not shown */
	struct harness_proc *f = harness_cli(T, NULL, 0, "pub", "-u", bad, "cli.tls", "x", NULL);
	fprintf(stderr, "  (ipcbus pub: %s)\n", f->err);
	CU_ASSERT_EQUAL(f->status, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(f->err, "not accepted"));
	CU_ASSERT_PTR_NULL(strstr(f->err, "s3cret-s3cret-s3cret"));
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"trust: ca=, IPCBUS_TLS_CA, the system's store, wrong CA, missing files", test_trust},
		{"the broker's certificate: expired, for another name", test_broker_cert},
		{"mutual TLS: none, another CA's, wrong key, the environment's", test_mutual},
		{"tcp:// to a TLS port, tls:// to a plain one", test_wrong_port},
		{"a stalled handshake and a mute connection: dropped, others served", test_stalled},
		{"a broker that never answers the handshake: connect_timeout_ms", test_handshake_timeout},
		{"a wrong token over TLS", test_token},
		{"a certificate refused at a reconnect: retried", test_reconnect_cert},
		{"SIGPIPE at its default: a publisher whose broker dies lives", test_sigpipe},
		{"the CLI over tls://", test_cli},
	};
	char openssl[512];
	if (harness_which("openssl", openssl, sizeof openssl) < 0) {
		fprintf(stderr, "test_tls: no openssl command: skipped\n");
		return 77;
	}
	env_clear(NULL);
	return harness_main("tls", cases, HARNESS_NELEM(cases), 0, 120, argc, argv);
}
