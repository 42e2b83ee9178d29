/*
 * test_client_tcp.c: libipcbus over tcp:// against a fake broker on a
 * loopback TCP port (fakebroker.c; the real broker's TCP listener is not
 * needed for what is checked here):
 *   - connect over 127.0.0.1 and [::1] (skipped, with a note, without an
 *     IPv6 loopback), also when the connect stays in progress for a while;
 *     a refused connect names the address;
 *   - HELLO's token: from the URL (percent-decoded), opts.token,
 *     $IPCBUS_TOKEN, the first line of $IPCBUS_TOKEN_FILE, in that order;
 *     a token file others may read is refused before anything is sent, and
 *     so are a missing or empty one; no token at all over unix://;
 *   - SUB, MSG and PUB frames flow both ways;
 *   - after the broker closes, the client reconnects to the same port with
 *     the same pollable fd, HELLO again (re-reading a rotated token file)
 *     and its subscription restored;
 *   - the options struct's size field: 0, larger with a zero tail, larger
 *     with an unknown option set (-E2BIG), too small (-EINVAL);
 *   - schemes this library does not speak yet fail with a clear text;
 *   - the CLI ($IPCBUS_CLI) takes a tcp:// URL, and says clearly that
 *     udp:// is not there yet (tls:// is: tests/integration/test_tls.c).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fakebroker.h"
#include "net.h"
#include "unit.h"

static char test_dir[64]; /* mkdtemp: token files, unix sockets */
static int have_v6;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- events and messages the client saw --- */

static int ev_disconnected, ev_reconnected, ev_failed, ev_failed_err;
static char ev_failed_text[512];

static void ev_cb(void *arg, int event, int err, const char *text)
{
	if (event == IPCBUS_EV_DISCONNECTED)
		ev_disconnected++;
	else if (event == IPCBUS_EV_RECONNECTED)
		ev_reconnected++;
	else if (event == IPCBUS_EV_CONNECT_FAILED) {
		ev_failed++;
		ev_failed_err = err;
		snprintf(ev_failed_text, sizeof ev_failed_text, "%s", text ? text : "(null)");
	}
}

static void ev_reset(void)
{
	ev_disconnected = ev_reconnected = ev_failed = ev_failed_err = 0;
	ev_failed_text[0] = 0;
}

struct got {
	int n;
	char channel[STR_MAX];
	char data[STR_MAX];
};

static void msg_cb(void *arg, const ipcbus_msg *m)
{
	struct got *g = arg;
	size_t cn = m->channel_len < STR_MAX - 1 ? m->channel_len : STR_MAX - 1;
	size_t dn = m->len < STR_MAX - 1 ? m->len : STR_MAX - 1;

	g->n++;
	memcpy(g->channel, m->channel, cn);
	g->channel[cn] = 0;
	memcpy(g->data, m->data, dn);
	g->data[dn] = 0;
}

/* Dispatch c as a program's loop would until *n reaches want or ms pass. */
static int pump_until(ipcbus *c, const int *n, int want, int ms)
{
	int64_t end = now_ms() + ms;

	while (*n < want) {
		int64_t left = end - now_ms();
		if (left <= 0)
			return -1;
		int t = ipcbus_timeout(c);
		if (t < 0 || t > left)
			t = (int)left;
		struct pollfd p = {.fd = ipcbus_fd(c), .events = POLLIN};
		poll(&p, 1, t);
		ipcbus_dispatch(c);
	}
	return 0;
}

/* --- the environment and token files --- */

static void env_clear(void)
{
	unsetenv("IPCBUS_TOKEN");
	unsetenv("IPCBUS_TOKEN_FILE");
}

/* Write a token file in test_dir with the given contents and mode; the
 * path goes to out. */
static int token_file_n(const char *name, const char *contents, size_t len, mode_t mode,
			char *out, size_t n)
{
	snprintf(out, n, "%s/%s", test_dir, name);
	unlink(out);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = write(fd, contents, len) == (ssize_t)len ? 0 : -EIO;
	close(fd);
	if (rc == 0 && chmod(out, mode) < 0)
		rc = -errno;
	return rc;
}

static int token_file(const char *name, const char *contents, mode_t mode, char *out, size_t n)
{
	return token_file_n(name, contents, strlen(contents), mode, out, n);
}

static ipcbus_opts opts_default(void)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	o.no_reconnect = 1;
	o.on_event = ev_cb;
	return o;
}

/* 1 when a connection waits at b's listener within ms. */
static int knocks(struct fb *b, int ms)
{
	struct pollfd p = {.fd = b->lfd, .events = POLLIN};
	return poll(&p, 1, ms) == 1;
}

/* --- pub/sub over a connected client --- */

/* Subscribe, deliver a MSG, publish: the frames both ways. */
static void flow_case(struct fb *b, ipcbus *c, const char *tag)
{
	struct got g = {0};
	struct fb_frame f;
	uint64_t sid = 0;
	char data[64];

	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "a.>", NULL, msg_cb, &g, &sid), 0);
	CU_ASSERT_EQUAL(fb_next(b, &f, WAIT_MS), 1);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__SUB);
	CU_ASSERT_STRING_EQUAL(f.channel, "a.>");
	CU_ASSERT(f.has_sid && f.sid == sid);

	snprintf(data, sizeof data, "to the client over %s", tag);
	CU_ASSERT_EQUAL(fb_msg(b, sid, "a.b", data), 0);
	CU_ASSERT_EQUAL(pump_until(c, &g.n, 1, WAIT_MS), 0);
	CU_ASSERT_STRING_EQUAL(g.channel, "a.b");
	CU_ASSERT_STRING_EQUAL(g.data, data);

	snprintf(data, sizeof data, "to the broker over %s", tag);
	CU_ASSERT_EQUAL(ipcbus_publish(c, "x.y", data, strlen(data)), 0);
	CU_ASSERT(ipcbus_dispatch(c) >= 0); /* writes it */
	CU_ASSERT_EQUAL(fb_next(b, &f, WAIT_MS), 1);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__PUB);
	CU_ASSERT_STRING_EQUAL(f.channel, "x.y");
	CU_ASSERT_STRING_EQUAL(f.payload, data);
	CU_ASSERT_EQUAL(ipcbus_unsubscribe(c, sid), 0);
	CU_ASSERT(ipcbus_dispatch(c) >= 0);
	CU_ASSERT_EQUAL(fb_next(b, &f, WAIT_MS), 1);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__UNSUB);
}

/* --- the cases --- */

static void test_v4_url_token(void)
{
	ipcbus_opts o = opts_default();
	struct fb b;
	ipcbus *c;
	char url[400];

	env_clear();
	CU_ASSERT_EQUAL_FATAL(fb_start_tcp(&b, "127.0.0.1"), 0);
	/* the URL's token wins over the environment's; percent-decoded */
	setenv("IPCBUS_TOKEN", "from-env", 1);
	o.token = "from-opts";
	snprintf(url, sizeof url, "tcp://s%%40cr%%3At@127.0.0.1:%d", b.port);
	CU_ASSERT_EQUAL(fb_connect_url(&b, url, &c, &o), 0);
	if (c) {
		CU_ASSERT_EQUAL(b.hellos, 1);
		CU_ASSERT(b.hello_has_token);
		CU_ASSERT_STRING_EQUAL(b.hello_token, "s@cr:t");
		CU_ASSERT_STRING_EQUAL(ipcbus_url(c), url);
		flow_case(&b, c, "127.0.0.1");
		ipcbus_close(c);
	}
	env_clear();
	fb_stop(&b);
}

static void test_token_sources(void)
{
	ipcbus_opts o = opts_default();
	struct fb b;
	ipcbus *c;
	char path[200];

	env_clear();
	CU_ASSERT_EQUAL_FATAL(fb_start_tcp(&b, "127.0.0.1"), 0);

	/* none */
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, &o), 0);
	CU_ASSERT_FALSE(b.hello_has_token);
	ipcbus_close(c);

	/* opts.token over $IPCBUS_TOKEN */
	setenv("IPCBUS_TOKEN", "from-env", 1);
	o.token = "from-opts";
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, &o), 0);
	CU_ASSERT(b.hello_has_token);
	CU_ASSERT_STRING_EQUAL(b.hello_token, "from-opts");
	ipcbus_close(c);
	o.token = NULL;

	/* $IPCBUS_TOKEN over $IPCBUS_TOKEN_FILE */
	CU_ASSERT_EQUAL_FATAL(token_file("tok", "from-file\n", 0600, path, sizeof path), 0);
	setenv("IPCBUS_TOKEN_FILE", path, 1);
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, &o), 0);
	CU_ASSERT_STRING_EQUAL(b.hello_token, "from-env");
	ipcbus_close(c);

	/* the file's first line, without \r\n; group may read it */
	unsetenv("IPCBUS_TOKEN");
	CU_ASSERT_EQUAL_FATAL(token_file("tok", "from-file\r\nsecond line\n", 0640, path, sizeof path), 0);
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, &o), 0);
	CU_ASSERT(b.hello_has_token);
	CU_ASSERT_STRING_EQUAL(b.hello_token, "from-file");
	ipcbus_close(c);
	/* without any line end */
	CU_ASSERT_EQUAL_FATAL(token_file("tok", "no-newline", 0400, path, sizeof path), 0);
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, &o), 0);
	CU_ASSERT_STRING_EQUAL(b.hello_token, "no-newline");
	ipcbus_close(c);
	/* an empty $IPCBUS_TOKEN is none: the file's */
	setenv("IPCBUS_TOKEN", "", 1);
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, &o), 0);
	CU_ASSERT_STRING_EQUAL(b.hello_token, "no-newline");
	ipcbus_close(c);

	env_clear();
	fb_stop(&b);
}

/* A token file that will not do: refused before any connection is made. */
static void bad_file_case(struct fb *b, const char *path, int want_rc, const char *want_text)
{
	ipcbus_opts o = opts_default();
	ipcbus *c = (ipcbus *)b;

	ev_reset();
	setenv("IPCBUS_TOKEN_FILE", path, 1);
	int rc = ipcbus_connect(&c, b->url, &o);
	CU_ASSERT_EQUAL(rc, want_rc);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_EQUAL(ev_failed, 1);
	CU_ASSERT_EQUAL(ev_failed_err, rc);
	CU_ASSERT(strstr(ev_failed_text, path) != NULL);
	CU_ASSERT(strstr(ev_failed_text, want_text) != NULL);
	if (!strstr(ev_failed_text, want_text))
		fprintf(stderr, "\n  text: %s\n", ev_failed_text);
	CU_ASSERT_FALSE(knocks(b, 0));
	if (rc == 0)
		ipcbus_close(c);
}

static void test_token_file_refused(void)
{
	struct fb b;
	char path[200];

	env_clear();
	CU_ASSERT_EQUAL_FATAL(fb_start_tcp(&b, "127.0.0.1"), 0);
	CU_ASSERT_EQUAL_FATAL(token_file("open", "secret\n", 0644, path, sizeof path), 0);
	bad_file_case(&b, path, IPCBUS_EUNSAFE, "others may read");
	CU_ASSERT_EQUAL_FATAL(token_file("open", "secret\n", 0602, path, sizeof path), 0);
	bad_file_case(&b, path, IPCBUS_EUNSAFE, "mode 0602");
	CU_ASSERT_EQUAL_FATAL(token_file("empty", "\nsecret\n", 0600, path, sizeof path), 0);
	bad_file_case(&b, path, -EINVAL, "empty");
	CU_ASSERT_EQUAL_FATAL(token_file_n("nul", "se\0cret\n", 8, 0600, path, sizeof path), 0);
	bad_file_case(&b, path, -EINVAL, "NUL");
	snprintf(path, sizeof path, "%s/missing", test_dir);
	bad_file_case(&b, path, -ENOENT, strerror(ENOENT));
	bad_file_case(&b, test_dir, -EINVAL, "not a regular file");
	env_clear();
	fb_stop(&b);
}

/* Over unix:// nothing is sent, whatever the program and the environment
 * say, and the token file is not even read. */
static void test_unix_no_token(void)
{
	ipcbus_opts o = opts_default();
	struct fb b;
	ipcbus *c;
	char path[200];

	env_clear();
	CU_ASSERT_EQUAL_FATAL(token_file("open", "secret\n", 0644, path, sizeof path), 0);
	setenv("IPCBUS_TOKEN_FILE", path, 1); /* would be refused if read */
	CU_ASSERT_EQUAL(fb_connect(&b, test_dir, &c, &o), 0);
	if (c) {
		CU_ASSERT_FALSE(b.hello_has_token);
		ipcbus_close(c);
		fb_stop(&b);
	}
	setenv("IPCBUS_TOKEN", "from-env", 1);
	o.token = "from-opts";
	CU_ASSERT_EQUAL(fb_connect(&b, test_dir, &c, &o), 0);
	if (c) {
		CU_ASSERT_EQUAL(b.hellos, 1);
		CU_ASSERT_FALSE(b.hello_has_token);
		ipcbus_close(c);
		fb_stop(&b);
	}
	env_clear();
}

/* The broker goes away; the client comes back on its own: same fd, HELLO
 * with the token file's new contents, the subscription restored. */
static void test_reconnect(void)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	struct got g = {0};
	struct fb b;
	struct fb_frame f;
	ipcbus *c;
	uint64_t sid = 0;
	char path[200];

	env_clear();
	ev_reset();
	o.on_event = ev_cb;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 40;
	CU_ASSERT_EQUAL_FATAL(token_file("rot", "first\n", 0600, path, sizeof path), 0);
	setenv("IPCBUS_TOKEN_FILE", path, 1);
	CU_ASSERT_EQUAL_FATAL(fb_start_tcp(&b, "127.0.0.1"), 0);
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, &o), 0);
	if (!c)
		goto out;
	CU_ASSERT_STRING_EQUAL(b.hello_token, "first");
	int fd = ipcbus_fd(c);
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "news.*", NULL, msg_cb, &g, &sid), 0);
	CU_ASSERT_EQUAL(fb_next(&b, &f, WAIT_MS), 1);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__SUB);

	/* the token is rotated while the broker is away */
	CU_ASSERT_EQUAL(token_file("rot", "second\n", 0600, path, sizeof path), 0);
	fb_drop(&b);
	int64_t end = now_ms() + WAIT_MS;
	while (!knocks(&b, 5) && now_ms() < end)
		ipcbus_dispatch(c);
	CU_ASSERT_EQUAL(ev_disconnected, 1);
	CU_ASSERT_FALSE(ipcbus_connected(c));
	CU_ASSERT_EQUAL(fb_handshake(&b, 0), 0);
	end = now_ms() + WAIT_MS;
	while (!ipcbus_connected(c) && now_ms() < end) {
		struct pollfd p = {.fd = ipcbus_fd(c), .events = POLLIN};
		poll(&p, 1, 5);
		ipcbus_dispatch(c);
	}
	CU_ASSERT(ipcbus_connected(c));
	CU_ASSERT_EQUAL(ev_reconnected, 1);
	CU_ASSERT_EQUAL(b.hellos, 2);
	CU_ASSERT_STRING_EQUAL(b.hello_token, "second");
	CU_ASSERT_EQUAL(ipcbus_fd(c), fd);
	CU_ASSERT_EQUAL(fb_next(&b, &f, WAIT_MS), 1);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__SUB);
	CU_ASSERT_STRING_EQUAL(f.channel, "news.*");
	CU_ASSERT(f.has_sid && f.sid == sid);
	CU_ASSERT_EQUAL(fb_msg(&b, sid, "news.today", "back"), 0);
	CU_ASSERT_EQUAL(pump_until(c, &g.n, 1, WAIT_MS), 0);
	CU_ASSERT_STRING_EQUAL(g.data, "back");
	ipcbus_close(c);
out:
	env_clear();
	fb_stop(&b);
}

static void test_v6(void)
{
	ipcbus_opts o = opts_default();
	struct fb b;
	ipcbus *c;
	char url[400];

	if (!have_v6) {
		fprintf(stderr, "(skipped: no IPv6 loopback) ");
		return;
	}
	env_clear();
	CU_ASSERT_EQUAL_FATAL(fb_start_tcp(&b, "::1"), 0);
	snprintf(url, sizeof url, "tcp://v6tok@[::1]:%d", b.port);
	CU_ASSERT_EQUAL(fb_connect_url(&b, url, &c, &o), 0);
	if (c) {
		CU_ASSERT_STRING_EQUAL(b.hello_token, "v6tok");
		flow_case(&b, c, "::1");
		ipcbus_close(c);
	}
	fb_stop(&b);
}

static void test_refused(void)
{
	ipcbus_opts o = opts_default();
	ipcbus *c;
	char url[100], want[100];
	int fd;

	ev_reset();
	CU_ASSERT_EQUAL_FATAL(net_listen_host("127.0.0.1", 0, SOCK_STREAM, 1, &fd, NULL, 0), 0);
	int port = net_local_port(fd);
	close(fd);
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	CU_ASSERT_EQUAL(ipcbus_connect(&c, url, &o), -ECONNREFUSED);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_EQUAL(ev_failed, 1);
	snprintf(want, sizeof want, "127.0.0.1:%d: %s", port, strerror(ECONNREFUSED));
	CU_ASSERT_STRING_EQUAL(ev_failed_text, want);
}

/* A connect that stays in progress (the listener's queue is full) is
 * waited for inside ipcbus_connect(), the socket watched for writability,
 * until the broker makes room. */
struct room_arg {
	struct fb *b;
	int fillers; /* connections queued before the client's */
	int rc;
};

static void *room_main(void *arg)
{
	struct room_arg *a = arg;
	int fd;

	usleep(300 * 1000);
	for (int i = 0; i < a->fillers; i++) {
		if (net_accept(a->b->lfd, &fd, NULL, 0) == 0)
			close(fd);
	}
	a->rc = fb_handshake(a->b, 4000);
	return NULL;
}

static void test_in_progress(void)
{
	ipcbus_opts o = opts_default();
	struct addrinfo *ai;
	struct fb b;
	ipcbus *c = NULL;
	int fill[2] = {-1, -1}, probe = -1;

	env_clear();
	CU_ASSERT_EQUAL_FATAL(fb_start_tcp(&b, "127.0.0.1"), 0);
	/* backlog 1: two queued connections fill it (Linux: backlog + 1) */
	CU_ASSERT_EQUAL_FATAL(listen(b.lfd, 1), 0);
	CU_ASSERT_EQUAL_FATAL(net_resolve("127.0.0.1", (uint16_t)b.port, SOCK_STREAM, 0, &ai, NULL, 0), 0);
	for (int i = 0; i < 2; i++) {
		int rc = net_connect(ai, &fill[i]);
		struct pollfd p = {.fd = fill[i], .events = POLLOUT};
		if (rc == -EAGAIN)
			poll(&p, 1, 1000);
	}
	/* does a third stay in progress here? */
	int rc = net_connect(ai, &probe);
	if (rc == -EAGAIN) {
		struct pollfd p = {.fd = probe, .events = POLLOUT};
		poll(&p, 1, 100);
		rc = net_connect_finish(probe);
	}
	if (probe >= 0)
		close(probe);
	freeaddrinfo(ai);
	if (rc != -EAGAIN) {
		fprintf(stderr, "(skipped: connects to a full queue complete at once here) ");
		goto out;
	}

	struct room_arg a = {.b = &b, .fillers = 2};
	pthread_t t;
	o.connect_timeout_ms = 5000;
	int64_t t0 = now_ms();
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, room_main, &a), 0);
	rc = ipcbus_connect(&c, b.url, &o);
	int64_t took = now_ms() - t0;
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(a.rc, 0);
	CU_ASSERT(took >= 250); /* it did wait for the room */
	if (c) {
		CU_ASSERT(ipcbus_connected(c));
		flow_case(&b, c, "a slow connect");
		ipcbus_close(c);
	}
out:
	for (int i = 0; i < 2; i++)
		if (fill[i] >= 0)
			close(fill[i]);
	fb_stop(&b);
}

/* The size field of ipcbus_opts. */
static void test_opts_size(void)
{
	struct {
		ipcbus_opts o;
		uint64_t newer[4]; /* options of a newer header */
	} big;
	ipcbus_opts o;
	struct fb b;
	ipcbus *c;

	env_clear();
	CU_ASSERT_EQUAL_FATAL(fb_start_tcp(&b, "127.0.0.1"), 0);

	/* zeroed (size 0): the first layout, every default */
	memset(&o, 0, sizeof o);
	o.token = "zeroed";
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, &o), 0);
	CU_ASSERT_STRING_EQUAL(b.hello_token, "zeroed");
	ipcbus_close(c);
	/* NULL: every default */
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, NULL), 0);
	CU_ASSERT_FALSE(b.hello_has_token);
	ipcbus_close(c);

	/* a newer program's struct, its new options left zero: fine */
	memset(&big, 0, sizeof big);
	big.o.size = sizeof big;
	big.o.token = "bigger";
	big.o.on_event = ev_cb;
	CU_ASSERT_EQUAL(fb_connect_url(&b, b.url, &c, &big.o), 0);
	CU_ASSERT_STRING_EQUAL(b.hello_token, "bigger");
	ipcbus_close(c);

	/* ... one of them set: refused, and said why */
	ev_reset();
	big.newer[2] = 1;
	c = (ipcbus *)&b;
	CU_ASSERT_EQUAL(ipcbus_connect(&c, b.url, &big.o), -E2BIG);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_EQUAL(ev_failed, 1);
	CU_ASSERT_EQUAL(ev_failed_err, -E2BIG);
	CU_ASSERT(strstr(ev_failed_text, "options") != NULL);
	CU_ASSERT_FALSE(knocks(&b, 0));

	/* smaller than any layout: -EINVAL, and on_event is not trusted */
	ev_reset();
	o = (ipcbus_opts)IPCBUS_OPTS_INIT;
	o.on_event = ev_cb;
	o.size = sizeof(size_t);
	CU_ASSERT_EQUAL(ipcbus_connect(&c, b.url, &o), -EINVAL);
	CU_ASSERT_EQUAL(ev_failed, 0);
	CU_ASSERT_FALSE(knocks(&b, 0));
	fb_stop(&b);
}

static void test_unsupported(void)
{
	static const char *const urls[] = {"shm://0x1234"};
	char *secret = "tls://s3cret@127.0.0.1"; /* no port: refused */
	ipcbus_opts o = opts_default();
	ipcbus *c;
	char want[100];

	for (size_t i = 0; i < UNIT_NELEM(urls); i++) {
		ev_reset();
		CU_ASSERT_EQUAL(ipcbus_connect(&c, urls[i], &o), IPCBUS_EURL);
		CU_ASSERT_EQUAL(ev_failed, 1);
		snprintf(want, sizeof want, "%s: %.*s is not supported by this client yet", urls[i],
			 (int)(strstr(urls[i], "://") - urls[i] + 3), urls[i]);
		CU_ASSERT(strncmp(ev_failed_text, want, strlen(want)) == 0);
		CU_ASSERT(strstr(ev_failed_text, "tcp://") != NULL); /* what it speaks */
	}
	/* the text may be logged: not the token */
	ev_reset();
	CU_ASSERT_EQUAL(ipcbus_connect(&c, secret, &o), IPCBUS_EURL);
	CU_ASSERT(strstr(ev_failed_text, "s3cret") == NULL);
	CU_ASSERT(strstr(ev_failed_text, "tls://***@127.0.0.1") != NULL);
}

/* Run the CLI with argv (argv[0] its path) and extra environment
 * (NAME=VALUE or NULL); its stderr goes to a pipe read by cli_wait(). */
struct cli_run {
	pid_t pid;
	int err_fd;
};

static int cli_start(struct cli_run *r, char *const argv[], const char *env)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	r->pid = fork();
	if (r->pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (r->pid == 0) {
		dup2(p[1], STDERR_FILENO);
		if (env)
			putenv((char *)env);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	r->err_fd = p[0];
	return 0;
}

/* Its exit status (-1: killed or not done in WAIT_MS), stderr into err. */
static int cli_wait(struct cli_run *r, char *err, size_t n)
{
	size_t got = 0;
	int st = 0;
	int64_t end = now_ms() + WAIT_MS;

	for (;;) {
		struct pollfd p = {.fd = r->err_fd, .events = POLLIN};
		int64_t left = end - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) != 1)
			break;
		ssize_t k = read(r->err_fd, err + got, n - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	err[got] = 0;
	close(r->err_fd);
	/* stderr closed: exiting, though maybe not a zombie yet */
	pid_t w;
	while ((w = waitpid(r->pid, &st, WNOHANG)) == 0 && now_ms() < end)
		usleep(2000);
	if (w != r->pid) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, &st, 0);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ipcbus pub over tcp://: HELLO with the token, the PUB, and the round
 * trip pub ends with (PING, answered here with a PONG). */
static void cli_pub_case(struct fb *b, char *const argv[], const char *env, const char *token)
{
	struct cli_run r;
	struct fb_frame f;
	char err[1024];

	CU_ASSERT_EQUAL_FATAL(cli_start(&r, argv, env), 0);
	CU_ASSERT_EQUAL(fb_handshake(b, WAIT_MS), 0);
	CU_ASSERT_STRING_EQUAL(b->hello_token, token);
	CU_ASSERT_EQUAL(fb_next(b, &f, WAIT_MS), 1);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__PUB);
	CU_ASSERT_STRING_EQUAL(f.channel, "cli.chan");
	CU_ASSERT_STRING_EQUAL(f.payload, "over tcp");
	CU_ASSERT_EQUAL(fb_next(b, &f, WAIT_MS), 1);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__PING);
	struct frame pong = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = f.has_id, .id = f.id};
	struct buf o;
	buf_init(&o, 1 << 16);
	CU_ASSERT_EQUAL(frame_append(&o, &pong, NULL, 0), 0);
	CU_ASSERT_EQUAL(fb_send(b, &o), 0);
	int st = cli_wait(&r, err, sizeof err);
	CU_ASSERT_EQUAL(st, 0);
	if (st != 0)
		fprintf(stderr, "\n  ipcbus pub: %s\n", err);
	fb_drop(b);
}

static void test_cli(void)
{
	const char *cli = getenv("IPCBUS_CLI");
	struct cli_run r;
	struct fb b;
	char url[400], path[200], envs[300], err[1024];

	if (!cli) {
		fprintf(stderr, "(skipped: no $IPCBUS_CLI) ");
		return;
	}
	env_clear();
	CU_ASSERT_EQUAL_FATAL(fb_start_tcp(&b, "127.0.0.1"), 0);
	snprintf(url, sizeof url, "tcp://cli-tok@127.0.0.1:%d", b.port);
	char *pub1[] = {(char *)cli, "pub", "-u", url, "cli.chan", "over tcp", NULL};
	cli_pub_case(&b, pub1, NULL, "cli-tok");

	/* the secret in a file, not on the command line */
	CU_ASSERT_EQUAL_FATAL(token_file("tok", "cli-file-tok\n", 0600, path, sizeof path), 0);
	snprintf(envs, sizeof envs, "IPCBUS_TOKEN_FILE=%s", path);
	char *pub2[] = {(char *)cli, "pub", "-u", b.url, "cli.chan", "over tcp", NULL};
	cli_pub_case(&b, pub2, envs, "cli-file-tok");
	fb_stop(&b);

	/* not there yet: a clear error, exit 1, the token not shown */
	char *sub[] = {(char *)cli, "sub", "-u", "shm://0x1234", "a.b", NULL};
	CU_ASSERT_EQUAL_FATAL(cli_start(&r, sub, NULL), 0);
	CU_ASSERT_EQUAL(cli_wait(&r, err, sizeof err), 1);
	CU_ASSERT(strstr(err, "shm:// is not supported by this client yet") != NULL);
	/* a bad URL with a token: refused, the token not shown */
	char *sub2[] = {(char *)cli, "sub", "-u", "tls://s3cret@127.0.0.1", "a.b", NULL};
	CU_ASSERT_EQUAL_FATAL(cli_start(&r, sub2, NULL), 0);
	CU_ASSERT(cli_wait(&r, err, sizeof err) != 0);
	CU_ASSERT(strstr(err, "s3cret") == NULL);
	/* nothing listening: the address named */
	char *pub3[] = {(char *)cli, "pub", "-u", url, "cli.chan", "x", NULL};
	CU_ASSERT_EQUAL_FATAL(cli_start(&r, pub3, NULL), 0);
	CU_ASSERT_EQUAL(cli_wait(&r, err, sizeof err), 1);
	CU_ASSERT(strstr(err, strerror(ECONNREFUSED)) != NULL);
	CU_ASSERT(strstr(err, "cli-tok") == NULL);
}

static int probe_v6(void)
{
	int fd;
	if (net_listen_host("::1", 0, SOCK_STREAM, 1, &fd, NULL, 0) < 0)
		return 0;
	close(fd);
	return 1;
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"127.0.0.1: the URL's token; SUB, MSG, PUB", test_v4_url_token},
		{"token: opts, IPCBUS_TOKEN, IPCBUS_TOKEN_FILE", test_token_sources},
		{"token file: unsafe, empty, missing: refused", test_token_file_refused},
		{"unix://: never a token", test_unix_no_token},
		{"reconnect: same fd, rotated token, SUB again", test_reconnect},
		{"[::1]", test_v6},
		{"refused: the address named", test_refused},
		{"a connect in progress is waited for", test_in_progress},
		{"ipcbus_opts.size", test_opts_size},
		{"schemes not spoken yet", test_unsupported},
		{"the CLI over tcp://", test_cli},
	};

	alarm(60);
	have_v6 = probe_v6();
	if (!have_v6)
		fprintf(stderr, "test_client_tcp: no IPv6 loopback here: the [::1] case is skipped\n");
	snprintf(test_dir, sizeof test_dir, "/tmp/ipcbus-tcpunit.XXXXXX");
	if (!mkdtemp(test_dir))
		return 99;
	int rc = unit_run("client_tcp", cases, UNIT_NELEM(cases));
	static const char *const files[] = {"tok", "open", "empty", "nul", "rot"};
	char p[200];
	for (size_t i = 0; i < UNIT_NELEM(files); i++) {
		snprintf(p, sizeof p, "%s/%s", test_dir, files[i]);
		unlink(p);
	}
	if (rmdir(test_dir) < 0)
		rc = 99; /* something was left behind */
	return rc;
}
