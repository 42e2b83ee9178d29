/*
 * test_udp.c: the broker's udp:// transport, spoken with raw datagrams.
 *
 * The client library does not speak UDP, so a small raw client here sends
 * one frame per datagram (proto/frame.h's encoding without its varint
 * prefix) and reads the broker's answers the same way; a Unix client of the
 * harness stands on the other side.  What is checked (docs: tr_udp.c's
 * header comment, issue 7):
 *   - the cookie: a HELLO without one is answered only when it is at least
 *     64 bytes, with a closing E_COOKIE holding 8 bytes; the HELLO that
 *     echoes it gets WELCOME with the datagram limits and lease_ms; forged
 *     cookies and cookies from another source port get a new E_COOKIE;
 *   - session rules: HELLO repeated is answered again on the same session;
 *     SUB and UNSUB are acknowledged by PONG(id), also when repeated;
 *   - pub/sub and request/reply both ways with a Unix client, NUL bytes in
 *     payloads and header values;
 *   - limits: a message that does not fit a datagram is dropped and
 *     counted for the UDP subscriber (the boundary exactly), a UDP
 *     publisher's payload or headers over the WELCOME's limits are refused;
 *   - strangers: E_NO_SESSION (closing, small) for a frame from an address
 *     without a session, nothing for garbage; garbage inside a session ends
 *     it with a fatal ERR and harms nobody else;
 *   - leases: silence ends a session and its subscriptions, PINGs keep it;
 *   - max-connections bounds sessions; a flood from many ports keeps the
 *     broker up, small and responsive; E_NO_SESSION is rate-limited;
 *   - tokens: a missing or wrong token is a fatal E_AUTH;
 *   - IPv6 ([::1]) as IPv4; a burst of 20 MB for a UDP subscriber;
 *   - the cookie's clock at its edges (a broker in a time namespace, where
 *     unshare(1) may make one);
 *   - no answer is answered: a stranger's ERR, WELCOME or MSG gets nothing,
 *     and a PING forged with the broker's own address (a raw socket, where
 *     allowed) does not make it talk to itself.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "ipcbus.h"

#define T 5000        /* ms: a generous bound for anything the broker does at once */
#define QUIET_MS 200  /* ms of silence that stand for "no answer" */

/* What WELCOME announces on a UDP session (broker/tr_udp.c). */
#define UDP_DGRAM_MAX 65507
#define UDP_MAX_HEADER 8192
#define UDP_MAX_PAYLOAD (UDP_DGRAM_MAX - UDP_MAX_HEADER - 1024) /* 56291 */
#define UDP_HELLO_MIN 64
#define UDP_NOSESSION_RATE 200

#define FT(x) IPCBUS__FRAME_TYPE__##x
#define EC(x) IPCBUS__ERR_CODE__##x

/* ---- the raw UDP client ---- */

struct udp {
	int fd;
	uint16_t port;   /* our source port */
	size_t len;      /* the datagram last read */
	struct frame f;  /* decoded from it; points into buf */
	int err_code, err_fatal, err_closing;
	uint8_t cookie[64];
	size_t cookie_len;
	Ipcbus__Welcome *welcome; /* the WELCOME last read */
	uint8_t buf[UDP_DGRAM_MAX + 64];
};

static void udp_free_cb(void *arg)
{
	struct udp *u = arg;
	if (u->fd >= 0)
		close(u->fd);
	if (u->welcome)
		ipcbus__welcome__free_unpacked(u->welcome, NULL);
	free(u);
}

static void udp_close(struct udp *u)
{
	harness_undefer(u);
	udp_free_cb(u);
}

/* A loopback address of family af (AF_INET or AF_INET6) and port. */
static socklen_t udp_loopback(int af, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (af == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(port);
		return sizeof *s6;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s4->sin_port = htons(port);
	return sizeof *s4;
}

static uint16_t udp_port_of(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
					       : ((const struct sockaddr_in *)ss)->sin_port);
}

/* A socket on the loopback address of family af with a port of its own,
 * connected to the broker's port (so it reads only the broker).  Closed
 * at cleanup. */
static struct udp *udp_open_af(int af, uint16_t port)
{
	struct udp *u = calloc(1, sizeof *u);
	struct sockaddr_storage ss;
	socklen_t slen = udp_loopback(af, 0, &ss);

	if (!u)
		return NULL;
	u->fd = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u->fd < 0 || bind(u->fd, (struct sockaddr *)&ss, slen) < 0 ||
	    getsockname(u->fd, (struct sockaddr *)&ss, &slen) < 0)
		goto fail;
	u->port = udp_port_of(&ss);
	slen = udp_loopback(af, port, &ss);
	if (connect(u->fd, (struct sockaddr *)&ss, slen) < 0)
		goto fail;
	harness_defer(udp_free_cb, u);
	return u;
fail:
	fprintf(stderr, "udp socket: %s\n", strerror(errno));
	udp_free_cb(u);
	return NULL;
}

static struct udp *udp_open(uint16_t port)
{
	return udp_open_af(AF_INET, port);
}

/* A port no one listens on now (there is a race; udp_broker retries). */
static uint16_t udp_free_port(int af)
{
	struct sockaddr_storage ss;
	socklen_t slen = udp_loopback(af, 0, &ss);
	int fd = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&ss, slen) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ss, &slen) == 0)
		port = udp_port_of(&ss);
	if (fd >= 0)
		close(fd);
	return port;
}

static int udp_send_raw(struct udp *u, const void *p, size_t n)
{
	ssize_t k = send(u->fd, p, n, 0);
	return k == (ssize_t)n ? 0 : -errno;
}

/* Send the frame in b (with its length prefix) as one datagram without
 * the prefix.  The datagram's size, or < 0. */
static long udp_send_buf(struct udp *u, const struct buf *b)
{
	uint64_t body = 0;
	int k = frame_varint_get(buf_rptr(b), buf_len(b), &body);
	if (k <= 0 || (size_t)k + body != buf_len(b))
		return -1;
	int rc = udp_send_raw(u, buf_rptr(b) + k, (size_t)body);
	return rc < 0 ? rc : (long)body;
}

static long udp_frame(struct udp *u, const struct frame *f, const struct frame_header *h,
		      size_t nh)
{
	struct buf b;
	buf_init(&b, SIZE_MAX / 2);
	long rc = frame_append(&b, f, h, nh);
	if (rc == 0)
		rc = udp_send_buf(u, &b);
	buf_fini(&b);
	return rc;
}

static struct frame_bytes fb(const void *p, size_t len)
{
	return (struct frame_bytes){.p = p, .len = len, .set = 1};
}

static struct frame_bytes fbs(const char *s)
{
	return fb(s, strlen(s));
}

/* A HELLO (version 1, name, pid) in b, with a cookie, pad bytes of
 * padding and a token where given. */
/* The version udp_hello_buf() announces (a case may change it for one
 * HELLO). */
static uint32_t udp_hello_version = IPCBUS_PROTOCOL_VERSION;

static int udp_hello_buf(struct buf *b, uint64_t id, const char *name, const uint8_t *cookie,
			 size_t cookie_len, size_t pad, const char *token)
{
	static const uint8_t zeros[256];
	Ipcbus__Hello h = IPCBUS__HELLO__INIT;

	h.version = udp_hello_version;
	h.has_pid = 1;
	h.pid = (uint32_t)getpid();
	if (name) {
		h.has_name = 1;
		h.name.data = (uint8_t *)(uintptr_t)name;
		h.name.len = strlen(name);
	}
	if (cookie) {
		h.has_cookie = 1;
		h.cookie.data = (uint8_t *)(uintptr_t)cookie;
		h.cookie.len = cookie_len;
	}
	if (pad) {
		h.has_padding = 1;
		h.padding.data = (uint8_t *)zeros;
		h.padding.len = pad < sizeof zeros ? pad : sizeof zeros;
	}
	if (token) {
		h.has_token = 1;
		h.token.data = (uint8_t *)(uintptr_t)token;
		h.token.len = strlen(token);
	}
	return frame_append_hello(b, id, &h);
}

/* Send that HELLO: the datagram's size, or < 0. */
static long udp_hello(struct udp *u, uint64_t id, const char *name, const uint8_t *cookie,
		      size_t cookie_len, size_t pad, const char *token)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	long rc = udp_hello_buf(&b, id, name, cookie, cookie_len, pad, token);
	if (rc == 0)
		rc = udp_send_buf(u, &b);
	buf_fini(&b);
	return rc;
}

/* The padding that makes the HELLO (without cookie) exactly size bytes on
 * the wire, or -1. */
static long udp_pad_for(uint64_t id, const char *name, size_t size)
{
	for (size_t pad = 1; pad < 200; pad++) {
		struct buf b;
		buf_init(&b, 1 << 20);
		uint64_t body = 0;
		int ok = udp_hello_buf(&b, id, name, NULL, 0, pad, NULL) == 0 &&
			 frame_varint_get(buf_rptr(&b), buf_len(&b), &body) > 0;
		buf_fini(&b);
		if (ok && body == size)
			return (long)pad;
	}
	return -1;
}

static uint64_t udp_left(uint64_t deadline)
{
	uint64_t now = harness_now();
	return now < deadline ? deadline - now : 0;
}

/* Read the next datagram into u->f (an ERR's fields into u->err_*, a
 * WELCOME into u->welcome).  1: a frame; 0: nothing within timeout_ms;
 * -1: a socket error; -2: bytes that do not decode. */
static int udp_read(struct udp *u, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		ssize_t n = recv(u->fd, u->buf, sizeof u->buf, MSG_DONTWAIT);
		if (n >= 0) {
			u->len = (size_t)n;
			if (frame_decode(u->buf, u->len, &u->f) < 0)
				return -2;
			if (u->f.type == FT(ERR)) {
				Ipcbus__Error *e = frame_unpack_error(&u->f);
				u->err_code = e ? (int)e->code : -1;
				u->err_fatal = e && e->has_fatal && e->fatal;
				u->err_closing = e && e->has_closing && e->closing;
				u->cookie_len = 0;
				if (e && e->has_cookie && e->cookie.len <= sizeof u->cookie) {
					memcpy(u->cookie, e->cookie.data, e->cookie.len);
					u->cookie_len = e->cookie.len;
				}
				if (e)
					ipcbus__error__free_unpacked(e, NULL);
			} else if (u->f.type == FT(WELCOME)) {
				if (u->welcome)
					ipcbus__welcome__free_unpacked(u->welcome, NULL);
				u->welcome = frame_unpack_welcome(&u->f);
				if (!u->welcome)
					return -2;
			}
			return 1;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		struct pollfd pf = {.fd = u->fd, .events = POLLIN};
		uint64_t left = udp_left(deadline);
		if (!left)
			return 0;
		poll(&pf, 1, (int)left);
	}
}

/* 1 when nothing at all arrives within ms. */
static int udp_quiet(struct udp *u, int ms)
{
	int rc = udp_read(u, ms);
	if (rc != 0)
		fprintf(stderr, "  expected silence, got %s (%zu bytes)\n",
			rc == 1 ? frame_type_name(u->f.type) : "an error", u->len);
	return rc == 0;
}

/* The next datagram is an ERR with code and id: 1, else 0 (and a note). */
static int udp_expect_err(struct udp *u, int code, uint64_t id)
{
	int rc = udp_read(u, T);
	if (rc != 1 || u->f.type != FT(ERR) || u->err_code != code || u->f.id != id) {
		fprintf(stderr, "  expected ERR %d id %llu, got %s code %d id %llu\n", code,
			(unsigned long long)id, rc == 1 ? frame_type_name(u->f.type) : "nothing",
			u->err_code, (unsigned long long)u->f.id);
		return 0;
	}
	return 1;
}

/* The next datagram is a frame of type with id: 1, else 0 (and a note). */
static int udp_expect(struct udp *u, int type, uint64_t id)
{
	int rc = udp_read(u, T);
	if (rc != 1 || u->f.type != type || u->f.id != id) {
		fprintf(stderr, "  expected %s id %llu, got %s id %llu (ERR %d)\n",
			frame_type_name(type), (unsigned long long)id,
			rc == 1 ? frame_type_name(u->f.type) : "nothing", (unsigned long long)u->f.id,
			u->f.type == FT(ERR) ? u->err_code : 0);
		return 0;
	}
	return 1;
}

/* HELLO padded, E_COOKIE, HELLO with the cookie, WELCOME: 0, else -1 (the
 * last answer in u). */
static int udp_session(struct udp *u, const char *name, const char *token)
{
	if (udp_hello(u, 1, name, NULL, 0, UDP_HELLO_MIN, token) < 0 ||
	    !udp_expect_err(u, EC(E_COOKIE), 1))
		return -1;
	if (udp_hello(u, 2, name, u->cookie, u->cookie_len, 0, token) < 0 || udp_read(u, T) != 1 ||
	    u->f.type != FT(WELCOME) || u->f.id != 2)
		return -1;
	return 0;
}

static struct udp *udp_up(uint16_t port, const char *name)
{
	struct udp *u = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL_FATAL(udp_session(u, name, NULL), 0);
	return u;
}

static int udp_ping(struct udp *u, uint64_t id)
{
	struct frame f = {.type = FT(PING), .has_id = 1, .id = id};
	return udp_frame(u, &f, NULL, 0) < 0 ? -1 : 0;
}

/* A round trip: 1 when PING id got its PONG. */
static int udp_alive(struct udp *u, uint64_t id)
{
	return udp_ping(u, id) == 0 && udp_expect(u, FT(PONG), id);
}

static int udp_sub(struct udp *u, uint64_t id, uint64_t sid, const char *pattern)
{
	struct frame f = {.type = FT(SUB), .has_id = id != 0, .id = id, .has_sid = 1, .sid = sid};
	f.channel = fbs(pattern);
	return udp_frame(u, &f, NULL, 0) < 0 ? -1 : 0;
}

static int udp_unsub(struct udp *u, uint64_t id, uint64_t sid)
{
	struct frame f = {.type = FT(UNSUB), .has_id = id != 0, .id = id, .has_sid = 1, .sid = sid};
	return udp_frame(u, &f, NULL, 0) < 0 ? -1 : 0;
}

static int udp_pub(struct udp *u, uint64_t id, const char *channel, const char *reply_to,
		   const void *data, size_t len)
{
	struct frame f = {.type = FT(PUB), .has_id = id != 0, .id = id};
	f.channel = fbs(channel);
	if (reply_to)
		f.reply_to = fbs(reply_to);
	f.payload = fb(data ? data : "", len);
	return udp_frame(u, &f, NULL, 0) < 0 ? -1 : 0;
}

/* 1 when u->f is a MSG with sid and payload data[0..len). */
static int udp_is_msg(const struct udp *u, uint64_t sid, const void *data, size_t len)
{
	const struct frame *f = &u->f;
	return f->type == FT(MSG) && f->sid == sid && f->payload.len == len &&
	       (len == 0 || memcmp(f->payload.p, data, len) == 0);
}

/* ---- brokers ---- */

/* A broker with the harness's Unix socket and udp://127.0.0.1:PORT (or
 * udp://[::1]:PORT for AF_INET6), plus lines; extra arguments (NULL-ended)
 * may be NULL. */
static struct harness_broker *udp_broker_af(int af, const char *lines, const char *const *extra,
					    uint16_t *port)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		char text[1024];
		uint16_t p = udp_free_port(af);
		if (!p)
			continue;
		snprintf(text, sizeof text, "listen udp://%s:%u\n%s",
			 af == AF_INET6 ? "[::1]" : "127.0.0.1", (unsigned)p, lines ? lines : "");
		struct harness_broker *b = harness_broker_new(text);
		if (!b)
			break;
		if (harness_broker_start(b, extra) == 0) {
			*port = p;
			return b;
		}
		/* another program may have taken the port: try another */
		char *log = harness_read_file(b->log, NULL);
		int taken = log && strstr(log, strerror(EADDRINUSE));
		fprintf(stderr, "  broker on udp port %u did not start:\n%s\n", (unsigned)p,
			log ? log : "");
		free(log);
		harness_broker_free(b);
		if (!taken)
			break;
	}
	CU_FAIL("no broker with a udp:// listener");
	return NULL;
}

static struct harness_broker *udp_broker(const char *lines, const char *const *extra,
					 uint16_t *port)
{
	return udp_broker_af(AF_INET, lines, extra, port);
}

#define UDP_UP(b, port, lines, extra)                                                          \
	uint16_t port = 0;                                                                     \
	struct harness_broker *b = udp_broker(lines, extra, &port);                            \
	CU_ASSERT_PTR_NOT_NULL_FATAL(b)

static const char *const verbose[] = {"-v", NULL};

/* Lines of the log holding both a and b (b may be NULL). */
static int log_count(const struct harness_broker *br, const char *a, const char *b)
{
	char *s = harness_read_file(br->log, NULL);
	int n = 0;
	for (char *line = s; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		if (strstr(line, a) && (!b || strstr(line, b)))
			n++;
		line = end ? end + 1 : line + strlen(line);
	}
	free(s);
	return n;
}

/* What SIGUSR1's status line says. */
struct status {
	long conns, total, subs, pending, dropped;
};

static int broker_status(const struct harness_broker *b, struct status *st)
{
	int before = log_count(b, "status: ", NULL);
	if (kill(b->pid, SIGUSR1) < 0)
		return -1;
	uint64_t deadline = harness_now() + T;
	while (log_count(b, "status: ", NULL) <= before) {
		if (!udp_left(deadline))
			return -1;
		harness_sleep(5);
	}
	char *s = harness_read_file(b->log, NULL);
	char *line = NULL;
	for (char *p = s; p && (p = strstr(p, "status: ")); p++)
		line = p;
	const char *in = line ? strstr(line, "message(s) in, ") : NULL;
	const char *pend = line ? strstr(line, "subscription(s), ") : NULL;
	int ok = line && in && pend &&
		 sscanf(pend, "subscription(s), %ld byte(s) pending", &st->pending) == 1 &&
		 sscanf(line, "status: %ld connection(s) (%ld since start), %ld subscription(s)",
			&st->conns, &st->total, &st->subs) == 3 &&
		 sscanf(in, "message(s) in, %*d out, %ld dropped", &st->dropped) == 1;
	free(s);
	return ok ? 0 : -1;
}

static struct harness_raw *unix_open(const struct harness_broker *b, const char *name)
{
	struct harness_raw *r = harness_raw_open(b, name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	return r;
}

/* The Unix client subscribes and knows it is done (a barrier). */
static int unix_sub(struct harness_raw *r, uint64_t sid, const char *pattern)
{
	if (harness_raw_sub(r, 0, sid, pattern, NULL) < 0)
		return -1;
	return harness_raw_barrier(r, T, NULL, NULL) == 1 ? 0 : -1;
}

/* The next frame the Unix client reads (within T) is a MSG with sid and
 * payload data[0..len). */
static int unix_got(struct harness_raw *r, uint64_t sid, const void *data, size_t len)
{
	int rc = harness_raw_read(r, T);
	const struct frame *f = &r->f;
	int ok = rc == 1 && f->type == FT(MSG) && f->sid == sid && f->payload.len == len &&
		 (len == 0 || memcmp(f->payload.p, data, len) == 0);
	if (!ok)
		fprintf(stderr, "  unix client: expected MSG sid %llu of %zu bytes, got %s sid %llu of %zu\n",
			(unsigned long long)sid, len, rc == 1 ? frame_type_name(f->type) : "nothing",
			(unsigned long long)f->sid, f->payload.len);
	return ok;
}

/* A request from the Unix client on channel: 1 when it was refused with
 * E_NO_RESPONDERS (nobody subscribed), 0 when it went through. */
static int unix_no_responders(struct harness_raw *r, const char *channel)
{
	uint64_t id = ++r->next_id;
	int refused = 0;
	if (harness_raw_pub(r, id, channel, "_INBOX.test.none", "q", 1) < 0)
		return -1;
	uint64_t ping = ++r->next_id;
	if (harness_raw_ping(r, ping) < 0)
		return -1;
	for (;;) {
		if (harness_raw_read(r, T) != 1)
			return -1;
		if (r->f.type == FT(ERR) && r->f.id == id && r->err_code == EC(E_NO_RESPONDERS))
			refused = 1;
		if (r->f.type == FT(PONG) && r->f.id == ping)
			return refused;
	}
}

/* ---- 1. the cookie ---- */

static void test_cookie(void)
{
	UDP_UP(b, port, NULL, NULL);
	struct udp *u = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);

	/* under 64 bytes without a cookie: no answer at all, up to 63 */
	long n = udp_hello(u, 1, "cookie", NULL, 0, 0, NULL);
	CU_ASSERT(n > 0 && n < UDP_HELLO_MIN);
	CU_ASSERT(udp_quiet(u, QUIET_MS));
	long pad63 = udp_pad_for(2, "cookie", UDP_HELLO_MIN - 1);
	long pad64 = udp_pad_for(3, "cookie", UDP_HELLO_MIN);
	CU_ASSERT_FATAL(pad63 > 0 && pad64 > 0);
	CU_ASSERT_EQUAL(udp_hello(u, 2, "cookie", NULL, 0, (size_t)pad63, NULL), UDP_HELLO_MIN - 1);
	CU_ASSERT(udp_quiet(u, QUIET_MS));

	/* 64 bytes: E_COOKIE, closing, 8 bytes of cookie, no bigger than the HELLO */
	CU_ASSERT_EQUAL(udp_hello(u, 3, "cookie", NULL, 0, (size_t)pad64, NULL), UDP_HELLO_MIN);
	CU_ASSERT_FATAL(udp_expect_err(u, EC(E_COOKIE), 3));
	CU_ASSERT(u->err_closing);
	CU_ASSERT(!u->err_fatal);
	CU_ASSERT_EQUAL(u->cookie_len, 8);
	CU_ASSERT(u->len <= UDP_HELLO_MIN);
	uint8_t cookie[8];
	memcpy(cookie, u->cookie, sizeof cookie);

	/* echoed: WELCOME with the datagram limits and the lease */
	CU_ASSERT(udp_hello(u, 4, "cookie", cookie, sizeof cookie, 0, NULL) > 0);
	CU_ASSERT_FATAL(udp_expect(u, FT(WELCOME), 4));
	const Ipcbus__Welcome *w = u->welcome;
	CU_ASSERT(w->has_lease_ms && w->lease_ms == 30000);
	CU_ASSERT(w->has_max_payload && w->max_payload == UDP_MAX_PAYLOAD);
	CU_ASSERT(w->has_max_header_bytes && w->max_header_bytes == UDP_MAX_HEADER);
	CU_ASSERT_EQUAL(w->max_payload, 56291);
	CU_ASSERT(w->has_client_id && w->client_id > 0);
	uint64_t uid = w->client_id;
	CU_ASSERT(udp_alive(u, 5));

	/* another source port: forged cookies, a cookie of the wrong length,
	 * the first port's cookie: each a new E_COOKIE, never a WELCOME */
	struct udp *v = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	uint8_t forged[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	CU_ASSERT(udp_hello(v, 10, "forger", forged, sizeof forged, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT(udp_expect_err(v, EC(E_COOKIE), 10));
	CU_ASSERT_EQUAL(v->cookie_len, 8);
	CU_ASSERT(memcmp(v->cookie, forged, 8) != 0);
	uint8_t vcookie[8];
	memcpy(vcookie, v->cookie, sizeof vcookie);

	CU_ASSERT(udp_hello(v, 11, "forger", cookie, sizeof cookie, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT(udp_expect_err(v, EC(E_COOKIE), 11));
	CU_ASSERT(memcmp(v->cookie, cookie, 8) != 0); /* its own, not the other port's */
	CU_ASSERT(udp_hello(v, 12, "forger", cookie, sizeof cookie, 0, NULL) > 0);
	CU_ASSERT(udp_quiet(v, QUIET_MS)); /* small and wrong: not worth an answer */

	uint8_t flipped[8];
	memcpy(flipped, vcookie, 8);
	flipped[7] ^= 1;
	CU_ASSERT(udp_hello(v, 13, "forger", flipped, 8, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT(udp_expect_err(v, EC(E_COOKIE), 13));
	CU_ASSERT(udp_hello(v, 14, "forger", vcookie, 7, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT(udp_expect_err(v, EC(E_COOKIE), 14));
	uint8_t longer[9];
	memcpy(longer, vcookie, 8);
	longer[8] = 0;
	CU_ASSERT(udp_hello(v, 15, "forger", longer, 9, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT(udp_expect_err(v, EC(E_COOKIE), 15));
	/* none of that opened a session: a PING is a stranger's */
	CU_ASSERT(udp_ping(v, 16) == 0 && udp_expect_err(v, EC(E_NO_SESSION), 16));

	/* its own cookie does open one, another session than the first */
	CU_ASSERT(udp_hello(v, 17, "forger", vcookie, 8, 0, NULL) > 0);
	CU_ASSERT_FATAL(udp_expect(v, FT(WELCOME), 17));
	CU_ASSERT(v->welcome->client_id != uid);
	CU_ASSERT(udp_alive(v, 18));
	CU_ASSERT(udp_alive(u, 19));
	CU_ASSERT(udp_quiet(u, 0));
}

/* ---- 2. HELLO again ---- */

static void test_hello_again(void)
{
	UDP_UP(b, port, NULL, verbose);
	struct udp *u = udp_up(port, "again");
	uint64_t cid = u->welcome->client_id;
	uint8_t cookie[8];
	memcpy(cookie, u->cookie, 8);
	CU_ASSERT(udp_sub(u, 3, 1, "again.x") == 0 && udp_expect(u, FT(PONG), 3));

	/* the same HELLO, a small one without cookie, a padded one without:
	 * each WELCOME again, for the same client (a WELCOME can be lost) */
	CU_ASSERT(udp_hello(u, 4, "again", cookie, 8, 0, NULL) > 0);
	CU_ASSERT(udp_expect(u, FT(WELCOME), 4) && u->welcome->client_id == cid);
	CU_ASSERT(udp_hello(u, 5, "again", NULL, 0, 0, NULL) > 0);
	CU_ASSERT(udp_expect(u, FT(WELCOME), 5) && u->welcome->client_id == cid);
	CU_ASSERT(udp_hello(u, 6, "again", NULL, 0, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT(udp_expect(u, FT(WELCOME), 6) && u->welcome->client_id == cid);
	CU_ASSERT(udp_quiet(u, 50));

	struct status st;
	CU_ASSERT_FATAL(broker_status(b, &st) == 0);
	CU_ASSERT_EQUAL(st.conns, 1);
	CU_ASSERT_EQUAL(st.subs, 1);
	CU_ASSERT_EQUAL(log_count(b, "(again ", " connected"), 1);

	/* the subscription outlived the HELLOs */
	struct harness_raw *r = unix_open(b, "unix");
	CU_ASSERT(harness_raw_pub(r, 0, "again.x", NULL, "still", 5) == 0);
	CU_ASSERT(udp_read(u, T) == 1 && udp_is_msg(u, 1, "still", 5));
	CU_ASSERT(udp_quiet(u, 50));

	/* and a second address is a second session */
	struct udp *v = udp_up(port, "other");
	CU_ASSERT(v->welcome->client_id != cid);
	CU_ASSERT_FATAL(broker_status(b, &st) == 0);
	CU_ASSERT_EQUAL(st.conns, 3);
	CU_ASSERT_EQUAL(log_count(b, "(again ", " connected"), 1);
	CU_ASSERT_EQUAL(log_count(b, "(other ", " connected"), 1);
}

/* ---- 3. SUB and UNSUB acknowledged ---- */

static void test_sub_ack(void)
{
	UDP_UP(b, port, NULL, NULL);
	struct udp *u = udp_up(port, "subs");
	struct harness_raw *r = unix_open(b, "unix");

	CU_ASSERT(udp_sub(u, 10, 1, "ack.a") == 0 && udp_expect(u, FT(PONG), 10));
	/* repeated (its PONG was lost): acked again, not E_DUPLICATE_SID */
	CU_ASSERT(udp_sub(u, 11, 1, "ack.a") == 0 && udp_expect(u, FT(PONG), 11));
	CU_ASSERT(udp_sub(u, 12, 1, "ack.a") == 0 && udp_expect(u, FT(PONG), 12));
	/* the same sid for another pattern is still a duplicate */
	CU_ASSERT(udp_sub(u, 13, 1, "ack.b") == 0 && udp_expect_err(u, EC(E_DUPLICATE_SID), 13));
	/* refusals are ERRs, not PONGs */
	CU_ASSERT(udp_sub(u, 14, 2, "ack..bad") == 0 && udp_expect_err(u, EC(E_INVALID_CHANNEL), 14));
	CU_ASSERT(udp_sub(u, 15, 0, "ack.a") == 0 && udp_expect_err(u, EC(E_INVALID), 15));

	/* one subscription, one delivery, whatever the repeats */
	struct status st;
	CU_ASSERT_FATAL(broker_status(b, &st) == 0);
	CU_ASSERT_EQUAL(st.subs, 1);
	CU_ASSERT(harness_raw_pub(r, 0, "ack.a", NULL, "once", 4) == 0);
	CU_ASSERT(udp_read(u, T) == 1 && udp_is_msg(u, 1, "once", 4));
	CU_ASSERT(udp_quiet(u, 50));

	/* UNSUB acked; repeated, acked again; of a sid never used, acked */
	CU_ASSERT(udp_unsub(u, 20, 1) == 0 && udp_expect(u, FT(PONG), 20));
	CU_ASSERT(udp_unsub(u, 21, 1) == 0 && udp_expect(u, FT(PONG), 21));
	CU_ASSERT(udp_unsub(u, 22, 99) == 0 && udp_expect(u, FT(PONG), 22));
	CU_ASSERT(udp_unsub(u, 23, 0) == 0 && udp_expect_err(u, EC(E_INVALID), 23));
	CU_ASSERT_EQUAL(unix_no_responders(r, "ack.a"), 1);
	CU_ASSERT(udp_quiet(u, 50));

	/* a SUB without id has nothing to echo: it works, unacknowledged */
	CU_ASSERT(udp_sub(u, 0, 3, "ack.c") == 0);
	CU_ASSERT(udp_alive(u, 30));
	CU_ASSERT_EQUAL(unix_no_responders(r, "ack.c"), 0);
	CU_ASSERT(udp_read(u, T) == 1 && udp_is_msg(u, 3, "q", 1));

	/* TERM with a session open: a clean stop */
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

/* ---- 4. pub/sub both ways with a Unix client ---- */

static int hdr_is(const struct frame_header *h, const char *key, const void *val, size_t vlen)
{
	return h->key_len == strlen(key) && memcmp(h->key, key, h->key_len) == 0 &&
	       h->value_len == vlen && (vlen == 0 || memcmp(h->value, val, vlen) == 0);
}

/* f carries exactly the headers hs[0..n), in order. */
static int headers_are(const struct frame *f, const struct frame_header *hs, size_t n)
{
	struct frame_header h;
	size_t pos = 0, i = 0;
	while (frame_header_next(f, &pos, &h)) {
		if (i >= n || h.key_len != hs[i].key_len || h.value_len != hs[i].value_len ||
		    memcmp(h.key, hs[i].key, h.key_len) != 0 ||
		    (h.value_len && memcmp(h.value, hs[i].value, h.value_len) != 0))
			return 0;
		i++;
	}
	return i == n;
}

static void test_pubsub_unix(void)
{
	UDP_UP(b, port, NULL, NULL);
	struct udp *u = udp_up(port, "peer");
	struct harness_raw *r = unix_open(b, "unix");
	static const uint8_t bin[] = {'a', 0, 'b', 0, 0, 'c', 0xff, 0};
	static const struct frame_header hs[] = {
		{(const uint8_t *)"k1", 2, (const uint8_t *)"v\0one", 5},
		{(const uint8_t *)"empty", 5, (const uint8_t *)"", 0},
		{(const uint8_t *)"k1", 2, (const uint8_t *)"second", 6},
	};

	/* UDP -> Unix, with headers and NUL bytes */
	CU_ASSERT_FATAL(unix_sub(r, 7, "up.>") == 0);
	struct frame f = {.type = FT(PUB), .has_id = 1, .id = 40};
	f.channel = fbs("up.in");
	f.payload = fb(bin, sizeof bin);
	CU_ASSERT(udp_frame(u, &f, hs, HARNESS_NELEM(hs)) > 0);
	CU_ASSERT(unix_got(r, 7, bin, sizeof bin));
	CU_ASSERT(r->f.channel.len == 5 && memcmp(r->f.channel.p, "up.in", 5) == 0);
	CU_ASSERT(headers_are(&r->f, hs, HARNESS_NELEM(hs)));
	CU_ASSERT(!r->f.reply_to.set);
	/* an empty payload */
	CU_ASSERT(udp_pub(u, 0, "up.empty", NULL, NULL, 0) == 0);
	CU_ASSERT(unix_got(r, 7, "", 0));
	CU_ASSERT(udp_quiet(u, 50)); /* PUB has no acknowledgement */

	/* Unix -> UDP, the same */
	CU_ASSERT(udp_sub(u, 2, 3, "down.*") == 0 && udp_expect(u, FT(PONG), 2));
	struct frame g = {.type = FT(PUB)};
	g.channel = fbs("down.x");
	g.payload = fb(bin, sizeof bin);
	CU_ASSERT(harness_raw_frame(r, &g, hs, HARNESS_NELEM(hs)) == 0);
	CU_ASSERT_FATAL(udp_read(u, T) == 1);
	CU_ASSERT(udp_is_msg(u, 3, bin, sizeof bin));
	CU_ASSERT(u->f.channel.len == 6 && memcmp(u->f.channel.p, "down.x", 6) == 0);
	CU_ASSERT(headers_are(&u->f, hs, HARNESS_NELEM(hs)));
	struct frame_header h;
	size_t pos = 0;
	CU_ASSERT(frame_header_next(&u->f, &pos, &h) && hdr_is(&h, "k1", "v\0one", 5));

	/* a request from Unix answered over UDP */
	CU_ASSERT_FATAL(unix_sub(r, 9, "_INBOX.unix.1") == 0);
	CU_ASSERT(harness_raw_pub(r, 0, "down.req", "_INBOX.unix.1", "ask", 3) == 0);
	CU_ASSERT_FATAL(udp_read(u, T) == 1);
	CU_ASSERT(udp_is_msg(u, 3, "ask", 3));
	CU_ASSERT(u->f.reply_to.len == 13 && memcmp(u->f.reply_to.p, "_INBOX.unix.1", 13) == 0);
	CU_ASSERT(udp_pub(u, 0, "_INBOX.unix.1", NULL, "answer", 6) == 0);
	CU_ASSERT(unix_got(r, 9, "answer", 6));

	/* a request from UDP answered by Unix */
	CU_ASSERT(udp_sub(u, 3, 4, "_INBOX.udp.1") == 0 && udp_expect(u, FT(PONG), 3));
	CU_ASSERT(udp_pub(u, 0, "up.req", "_INBOX.udp.1", "q?", 2) == 0);
	CU_ASSERT(unix_got(r, 7, "q?", 2));
	CU_ASSERT(r->f.reply_to.len == 12 && memcmp(r->f.reply_to.p, "_INBOX.udp.1", 12) == 0);
	CU_ASSERT(harness_raw_pub(r, 0, "_INBOX.udp.1", NULL, "a!", 2) == 0);
	CU_ASSERT(udp_read(u, T) == 1 && udp_is_msg(u, 4, "a!", 2));

	/* no responders, and a bad channel: ERRs with the id, the session stays */
	CU_ASSERT(udp_pub(u, 50, "nobody.here", "_INBOX.udp.1", "q", 1) == 0);
	CU_ASSERT(udp_expect_err(u, EC(E_NO_RESPONDERS), 50));
	CU_ASSERT(!u->err_fatal && !u->err_closing);
	CU_ASSERT(udp_pub(u, 51, "bad..channel", NULL, "x", 1) == 0);
	CU_ASSERT(udp_expect_err(u, EC(E_INVALID_CHANNEL), 51));
	CU_ASSERT(udp_pub(u, 52, "$SYS.x", NULL, "x", 1) == 0);
	CU_ASSERT(udp_expect_err(u, EC(E_PERMISSION), 52));
	CU_ASSERT(udp_alive(u, 53));
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
}

/* ---- 5. what does not fit ---- */

/* The size of the MSG datagram that delivers payload_len bytes on channel
 * to sid 1. */
static size_t msg_size(const char *channel, size_t payload_len)
{
	struct frame m = {.type = FT(MSG), .has_sid = 1, .sid = 1};
	m.channel = fbs(channel);
	m.payload = (struct frame_bytes){.p = NULL, .len = payload_len, .set = 1};
	return frame_size(&m, NULL, 0);
}

static void test_oversize(void)
{
	UDP_UP(b, port, NULL, NULL);
	struct udp *u = udp_up(port, "small");
	struct harness_raw *r = unix_open(b, "unix");
	size_t big = 100 << 10;
	uint8_t *p = malloc(big);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	for (size_t i = 0; i < big; i++)
		p[i] = (uint8_t)(i * 7 + 1);
	CU_ASSERT(udp_sub(u, 1, 1, "big") == 0 && udp_expect(u, FT(PONG), 1));

	/* 100 KB: dropped, not cut; the next small one arrives */
	CU_ASSERT(harness_raw_pub(r, 0, "big", NULL, p, big) == 0);
	CU_ASSERT(harness_raw_pub(r, 0, "big", NULL, "small", 5) == 0);
	CU_ASSERT(udp_read(u, T) == 1 && udp_is_msg(u, 1, "small", 5));

	/* the boundary: a MSG of exactly 65507 bytes goes, one byte more not */
	size_t fit = 0;
	for (size_t n = UDP_DGRAM_MAX - 32; n <= UDP_DGRAM_MAX; n++)
		if (msg_size("big", n) == UDP_DGRAM_MAX)
			fit = n;
	CU_ASSERT_FATAL(fit > 0);
	CU_ASSERT(harness_raw_pub(r, 0, "big", NULL, p, fit) == 0);
	CU_ASSERT(udp_read(u, T) == 1 && udp_is_msg(u, 1, p, fit));
	CU_ASSERT_EQUAL(u->len, UDP_DGRAM_MAX);
	CU_ASSERT(harness_raw_pub(r, 0, "big", NULL, p, fit + 1) == 0);
	CU_ASSERT(harness_raw_pub(r, 0, "big", NULL, "after", 5) == 0);
	CU_ASSERT(udp_read(u, T) == 1 && udp_is_msg(u, 1, "after", 5));
	CU_ASSERT(udp_quiet(u, 50));

	/* counted for the subscriber (the status line's "dropped") */
	struct status st;
	CU_ASSERT_FATAL(broker_status(b, &st) == 0);
	CU_ASSERT_EQUAL(st.dropped, 2);
	CU_ASSERT_EQUAL(st.conns, 2);

	/* a UDP publisher: max-payload exactly goes, one byte more is refused */
	CU_ASSERT_FATAL(unix_sub(r, 5, "up") == 0);
	CU_ASSERT(udp_pub(u, 60, "up", NULL, p, UDP_MAX_PAYLOAD + 1) == 0);
	CU_ASSERT(udp_expect_err(u, EC(E_PAYLOAD_TOO_BIG), 60));
	CU_ASSERT(!u->err_fatal && !u->err_closing);
	CU_ASSERT(udp_pub(u, 61, "up", NULL, p, UDP_MAX_PAYLOAD) == 0);
	CU_ASSERT(unix_got(r, 5, p, UDP_MAX_PAYLOAD));
	CU_ASSERT(udp_alive(u, 62));

	/* headers: max-header-bytes exactly goes, one byte more is refused */
	size_t vlen = 0;
	for (size_t n = UDP_MAX_HEADER - 16; n < UDP_MAX_HEADER; n++)
		if (frame_header_cost(1, n) == UDP_MAX_HEADER)
			vlen = n;
	CU_ASSERT_FATAL(vlen > 0);
	struct frame_header h = {(const uint8_t *)"k", 1, p, vlen};
	struct frame f = {.type = FT(PUB), .has_id = 1, .id = 63};
	f.channel = fbs("up");
	f.payload = fbs("h");
	CU_ASSERT(udp_frame(u, &f, &h, 1) > 0);
	CU_ASSERT(unix_got(r, 5, "h", 1));
	h.value_len = vlen + 1;
	CU_ASSERT_EQUAL(frame_header_cost(1, vlen + 1), UDP_MAX_HEADER + 1);
	f.id = 64;
	CU_ASSERT(udp_frame(u, &f, &h, 1) > 0);
	CU_ASSERT(udp_expect_err(u, EC(E_HEADERS_TOO_BIG), 64));
	CU_ASSERT(udp_alive(u, 65));
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
	free(p);
}

/* ---- 6. strangers and garbage ---- */

static void test_strangers(void)
{
	UDP_UP(b, port, NULL, NULL);
	struct harness_raw *r = unix_open(b, "unix");
	struct udp *s = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);

	/* a frame from an address without a session: E_NO_SESSION, closing,
	 * small (a few dozen bytes at most) */
	CU_ASSERT(udp_ping(s, 77) == 0 && udp_expect_err(s, EC(E_NO_SESSION), 77));
	CU_ASSERT(s->err_closing && !s->err_fatal);
	CU_ASSERT(s->len <= 32);
	fprintf(stderr, "  (E_NO_SESSION for a PING: %zu bytes)\n", s->len);
	CU_ASSERT(udp_sub(s, 78, 1, "x") == 0 && udp_expect_err(s, EC(E_NO_SESSION), 78));
	CU_ASSERT(s->len <= 32);
	CU_ASSERT(udp_pub(s, 79, "x", NULL, "y", 1) == 0 && udp_expect_err(s, EC(E_NO_SESSION), 79));
	CU_ASSERT(s->len <= 32);

	/* garbage from a stranger: nothing; nor for an empty datagram, nor a
	 * truncated HELLO */
	uint8_t junk[48];
	memset(junk, 0xff, sizeof junk);
	CU_ASSERT(udp_send_raw(s, junk, sizeof junk) == 0);
	CU_ASSERT(udp_send_raw(s, "", 0) == 0);
	struct buf hb;
	buf_init(&hb, 1 << 20);
	CU_ASSERT_FATAL(udp_hello_buf(&hb, 1, "trunc", NULL, 0, 120, NULL) == 0);
	uint64_t hlen = 0;
	int hk = frame_varint_get(buf_rptr(&hb), buf_len(&hb), &hlen);
	CU_ASSERT_FATAL(hk > 0 && hlen > UDP_HELLO_MIN);
	CU_ASSERT(udp_send_raw(s, buf_rptr(&hb) + hk, (size_t)hlen / 2) == 0);
	buf_fini(&hb);
	CU_ASSERT(udp_quiet(s, QUIET_MS));

	/* garbage inside a session: a fatal ERR, and the session is gone */
	struct udp *u = udp_up(port, "garbler");
	CU_ASSERT(udp_sub(u, 2, 1, "g.x") == 0 && udp_expect(u, FT(PONG), 2));
	CU_ASSERT(udp_send_raw(u, junk, sizeof junk) == 0);
	CU_ASSERT(udp_expect_err(u, EC(E_PROTOCOL), 0));
	CU_ASSERT(u->err_fatal);
	CU_ASSERT(udp_quiet(u, 50));
	CU_ASSERT(udp_ping(u, 3) == 0 && udp_expect_err(u, EC(E_NO_SESSION), 3));
	CU_ASSERT_EQUAL(unix_no_responders(r, "g.x"), 1);

	/* a truncated PUB inside a session, and a frame type a client may
	 * not send: fatal too */
	struct udp *t = udp_up(port, "truncator");
	struct frame f = {.type = FT(PUB), .has_id = 1, .id = 4};
	f.channel = fbs("t.x");
	f.payload = fbs("some payload here");
	struct buf pb;
	buf_init(&pb, 1 << 20);
	CU_ASSERT_FATAL(frame_append(&pb, &f, NULL, 0) == 0);
	CU_ASSERT(udp_send_raw(t, buf_rptr(&pb) + 1, buf_len(&pb) - 5) == 0);
	buf_fini(&pb);
	CU_ASSERT(udp_expect_err(t, EC(E_PROTOCOL), 0));
	CU_ASSERT(t->err_fatal);
	struct udp *m = udp_up(port, "msgsender");
	struct frame mf = {.type = FT(MSG), .has_id = 1, .id = 5, .has_sid = 1, .sid = 1};
	mf.channel = fbs("t.x");
	CU_ASSERT(udp_frame(m, &mf, NULL, 0) > 0);
	CU_ASSERT(udp_expect_err(m, EC(E_PROTOCOL), 5));
	CU_ASSERT(m->err_fatal);
	CU_ASSERT(udp_ping(m, 6) == 0 && udp_expect_err(m, EC(E_NO_SESSION), 6));

	/* a version the broker does not speak, with a good cookie: a fatal
	 * E_VERSION, no session */
	struct udp *vs = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vs);
	CU_ASSERT(udp_hello(vs, 8, "future", NULL, 0, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT_FATAL(udp_expect_err(vs, EC(E_COOKIE), 8));
	udp_hello_version = IPCBUS_PROTOCOL_VERSION + 1;
	long sent = udp_hello(vs, 9, "future", vs->cookie, vs->cookie_len, 0, NULL);
	udp_hello_version = IPCBUS_PROTOCOL_VERSION;
	CU_ASSERT(sent > 0);
	CU_ASSERT(udp_expect_err(vs, EC(E_VERSION), 9));
	CU_ASSERT(vs->err_fatal);
	CU_ASSERT(udp_ping(vs, 10) == 0 && udp_expect_err(vs, EC(E_NO_SESSION), 10));

	/* everyone else unharmed */
	CU_ASSERT_EQUAL(kill(b->pid, 0), 0);
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
	struct udp *ok = udp_up(port, "after");
	CU_ASSERT(udp_alive(ok, 7));
	struct status st;
	CU_ASSERT_FATAL(broker_status(b, &st) == 0);
	CU_ASSERT_EQUAL(st.conns, 2);
}

/* ---- 7. leases ---- */

static void test_lease(void)
{
	UDP_UP(b, port, "ping-interval 300\n", verbose);
	struct harness_raw *r = unix_open(b, "unix");
	struct udp *quiet = udp_up(port, "silent");
	CU_ASSERT_EQUAL(quiet->welcome->lease_ms, 300);
	struct udp *alive = udp_up(port, "pinger");
	CU_ASSERT(udp_sub(alive, 2, 1, "lease.b") == 0 && udp_expect(alive, FT(PONG), 2));
	CU_ASSERT(udp_sub(quiet, 2, 1, "lease.a") == 0);
	uint64_t t0 = harness_now(); /* its last datagram */
	CU_ASSERT(udp_expect(quiet, FT(PONG), 2));

	/* for 1.2 s: the pinger pings every 100 ms, the Unix client answers
	 * the broker's pings, the silent session says nothing */
	uint64_t expired = 0, end = t0 + 1200, next_ping = t0;
	uint64_t id = 100;
	int pongs = 0, pings = 0;
	while (harness_now() < end) {
		if (harness_now() >= next_ping) {
			CU_ASSERT(udp_ping(alive, ++id) == 0);
			pings++;
			if (udp_expect(alive, FT(PONG), id))
				pongs++;
			next_ping += 100;
		}
		harness_raw_read(r, 10); /* answers PINGs */
		if (!expired && log_count(b, "(silent ", "lease expired"))
			expired = harness_now();
	}
	fprintf(stderr, "  (the silent session ended %lld ms after its last datagram; %d/%d pongs)\n",
		expired ? (long long)(expired - t0) : -1LL, pongs, pings);
	CU_ASSERT(expired > 0);
	CU_ASSERT(expired - t0 >= 280);
	CU_ASSERT(expired - t0 <= 750);
	CU_ASSERT_EQUAL(pongs, pings);
	CU_ASSERT_EQUAL(log_count(b, "(pinger ", "lease expired"), 0);

	/* the silent one's subscription went with it; its next datagram is a
	 * stranger's */
	CU_ASSERT_EQUAL(unix_no_responders(r, "lease.a"), 1);
	CU_ASSERT(udp_quiet(quiet, 0));
	CU_ASSERT(udp_ping(quiet, 9) == 0 && udp_expect_err(quiet, EC(E_NO_SESSION), 9));
	CU_ASSERT(quiet->err_closing);
	/* the pinger's is there */
	CU_ASSERT(harness_raw_pub(r, 0, "lease.b", NULL, "kept", 4) == 0);
	CU_ASSERT(udp_read(alive, T) == 1 && udp_is_msg(alive, 1, "kept", 4));

	/* the silent one can come back with a new HELLO */
	CU_ASSERT(udp_session(quiet, "silent", NULL) == 0);
	CU_ASSERT(udp_alive(quiet, 10));
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
}

/* ---- 8. max-connections ---- */

static void test_max_connections(void)
{
	UDP_UP(b, port, "max-connections 3\n", NULL);
	struct harness_raw *r = unix_open(b, "unix");
	struct udp *u1 = udp_up(port, "one");
	struct udp *u2 = udp_up(port, "two");
	struct udp *u3 = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u3);

	/* the cookie still comes (it costs no place), the session does not */
	CU_ASSERT(udp_hello(u3, 1, "three", NULL, 0, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT_FATAL(udp_expect_err(u3, EC(E_COOKIE), 1));
	uint8_t cookie[8];
	memcpy(cookie, u3->cookie, 8);
	CU_ASSERT(udp_hello(u3, 2, "three", cookie, 8, 0, NULL) > 0);
	CU_ASSERT(udp_expect_err(u3, EC(E_MAX_CONNECTIONS), 2));
	CU_ASSERT(u3->err_closing && !u3->err_fatal);
	CU_ASSERT(udp_ping(u3, 3) == 0 && udp_expect_err(u3, EC(E_NO_SESSION), 3));
	/* a Unix client is refused as well */
	struct harness_raw *r2 = harness_raw_connect(b->sock);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r2);
	CU_ASSERT(harness_raw_expect_err(r2, EC(E_MAX_CONNECTIONS), UINT64_MAX, T));

	struct status st;
	CU_ASSERT_FATAL(broker_status(b, &st) == 0);
	CU_ASSERT_EQUAL(st.conns, 3);

	/* the others are served; once one session ends, the place is free */
	CU_ASSERT(udp_alive(u1, 4));
	CU_ASSERT(udp_alive(u2, 4));
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
	uint8_t junk[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	CU_ASSERT(udp_send_raw(u1, junk, sizeof junk) == 0);
	CU_ASSERT(udp_expect_err(u1, EC(E_PROTOCOL), 0));
	CU_ASSERT(udp_ping(u1, 5) == 0 && udp_expect_err(u1, EC(E_NO_SESSION), 5));
	CU_ASSERT(udp_hello(u3, 6, "three", cookie, 8, 0, NULL) > 0);
	CU_ASSERT(udp_expect(u3, FT(WELCOME), 6));
	CU_ASSERT(udp_alive(u3, 7));
}

/* ---- 9. a flood from many ports ---- */

#define FLOOD_SOCKS 200
#define FLOOD_ROUNDS 5

static void test_flood(void)
{
	UDP_UP(b, port, NULL, NULL);
	struct harness_raw *r = unix_open(b, "unix");
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
	long rss0 = harness_broker_rss(b);
	CU_ASSERT_FATAL(rss0 > 0);

	struct udp **s = calloc(FLOOD_SOCKS, sizeof *s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	uint8_t junk[100];
	memset(junk, 0xfe, sizeof junk);
	uint64_t worst = 0, t0 = harness_now();
	long cookies = 0, nosess = 0, other = 0;
	for (int round = 0; round < FLOOD_ROUNDS; round++) {
		/* new ports each round: padded HELLO, PING, garbage from each */
		for (int i = 0; i < FLOOD_SOCKS; i++) {
			if (s[i])
				udp_close(s[i]);
			s[i] = udp_open(port);
			CU_ASSERT_PTR_NOT_NULL_FATAL(s[i]);
			udp_hello(s[i], 1, "flood", NULL, 0, UDP_HELLO_MIN, NULL);
			udp_ping(s[i], 2);
			udp_send_raw(s[i], junk, sizeof junk);
		}
		uint64_t rt = harness_now();
		CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
		rt = harness_now() - rt;
		if (rt > worst)
			worst = rt;
		harness_sleep(round == FLOOD_ROUNDS - 1 ? 100 : 10);
		for (int i = 0; i < FLOOD_SOCKS; i++) {
			while (udp_read(s[i], 0) == 1) {
				if (s[i]->f.type == FT(ERR) && s[i]->err_code == EC(E_COOKIE))
					cookies++;
				else if (s[i]->f.type == FT(ERR) && s[i]->err_code == EC(E_NO_SESSION))
					nosess++;
				else
					other++;
			}
		}
	}
	uint64_t secs = (harness_now() - t0) / 1000 + 1;
	fprintf(stderr,
		"  (%d datagrams from %d ports: %ld cookies, %ld E_NO_SESSION in %llu s window(s), "
		"worst unix round trip %llu ms)\n",
		3 * FLOOD_SOCKS * FLOOD_ROUNDS, FLOOD_SOCKS * FLOOD_ROUNDS, cookies, nosess,
		(unsigned long long)secs, (unsigned long long)worst);
	CU_ASSERT(cookies > 0 && cookies <= FLOOD_SOCKS * FLOOD_ROUNDS);
	CU_ASSERT(nosess > 0 && nosess <= (long)(UDP_NOSESSION_RATE * (secs + 1)));
	CU_ASSERT_EQUAL(other, 0);
	CU_ASSERT(worst < 500);
	struct status st;
	CU_ASSERT_FATAL(broker_status(b, &st) == 0);
	CU_ASSERT_EQUAL(st.conns, 1); /* strangers open nothing */

	/* the last round's ports hold their cookies: open 200 sessions, in
	 * batches the socket buffers hold */
	int welcomed = 0;
	for (int i = 0; i < FLOOD_SOCKS; i += 50) {
		for (int j = i; j < i + 50; j++) {
			udp_hello(s[j], 1, "flood", NULL, 0, UDP_HELLO_MIN, NULL);
			if (udp_expect_err(s[j], EC(E_COOKIE), 1))
				udp_hello(s[j], 2, "flood", s[j]->cookie, s[j]->cookie_len, 0, NULL);
		}
		for (int j = i; j < i + 50; j++)
			if (udp_read(s[j], T) == 1 && s[j]->f.type == FT(WELCOME))
				welcomed++;
	}
	CU_ASSERT_EQUAL(welcomed, FLOOD_SOCKS);
	CU_ASSERT_FATAL(broker_status(b, &st) == 0);
	CU_ASSERT_EQUAL(st.conns, 1 + FLOOD_SOCKS);
	uint64_t rt = harness_now();
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
	rt = harness_now() - rt;
	long rss1 = harness_broker_rss(b);
	fprintf(stderr, "  (broker RSS %ld KiB before, %ld KiB with %d sessions; round trip %llu ms)\n",
		rss0, rss1, FLOOD_SOCKS, (unsigned long long)rt);
	CU_ASSERT(rss1 > 0 && rss1 - rss0 < 32 * 1024);
	CU_ASSERT(rt < 500);
	for (int i = 0; i < FLOOD_SOCKS; i++)
		udp_close(s[i]);
	free(s);
}

/* ---- 10. tokens ---- */

#define ALICE "s3cret-s3cret-s3cret"
#define ALICE_NEAR "s3cret-s3cret-s3creT"
#define ALICE_PREFIX "s3cret-s3cret-s3cre"
#define BOB "hunter2-hunter2-hunter2"
#define BOB_PREFIX "hunter2-hunter2-hunter"

static void test_token(void)
{
	UDP_UP(b, port, "token alice " ALICE "\ntoken bob " BOB "\n", NULL);
	struct stat sb;
	CU_ASSERT_EQUAL(stat(b->conf, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 077, 0);

	/* no token: the cookie first, then a fatal E_AUTH, and no session */
	struct udp *u = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT(udp_session(u, "anon", NULL) < 0);
	CU_ASSERT(u->f.type == FT(ERR) && u->err_code == EC(E_AUTH) && u->f.id == 2);
	CU_ASSERT(u->err_fatal && !u->err_closing);
	CU_ASSERT(udp_ping(u, 3) == 0 && udp_expect_err(u, EC(E_NO_SESSION), 3));

	/* wrong tokens: a near miss, a prefix, one longer, empty */
	static const char *const wrong[] = {ALICE_NEAR, ALICE_PREFIX, ALICE "!", BOB_PREFIX, ""};
	for (size_t i = 0; i < HARNESS_NELEM(wrong); i++) {
		struct udp *w = udp_open(port);
		CU_ASSERT_PTR_NOT_NULL_FATAL(w);
		CU_ASSERT(udp_session(w, "wrong", wrong[i]) < 0);
		CU_ASSERT(w->f.type == FT(ERR) && w->err_code == EC(E_AUTH) && w->err_fatal);
		CU_ASSERT(udp_ping(w, 4) == 0 && udp_expect_err(w, EC(E_NO_SESSION), 4));
		udp_close(w);
	}
	/* the log names who was refused (rate-limited: the first of a burst) */
	char who[64];
	snprintf(who, sizeof who, "(127.0.0.1:%u)", (unsigned)u->port);
	CU_ASSERT_EQUAL(log_count(b, "refused client", who), 1);
	CU_ASSERT(harness_broker_log_has(b, "this broker requires a token"));
	/* and the rest of the burst a second later, without a further refusal */
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "refused 5 more client(s)", 2500), 0);

	/* the right ones: WELCOME, and it works */
	struct udp *a = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(udp_session(a, "alice", ALICE), 0);
	struct udp *c = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(udp_session(c, "bob", BOB), 0);
	CU_ASSERT(udp_sub(a, 5, 1, "tok.x") == 0 && udp_expect(a, FT(PONG), 5));
	CU_ASSERT(udp_pub(c, 0, "tok.x", NULL, "ok", 2) == 0);
	CU_ASSERT(udp_read(a, T) == 1 && udp_is_msg(a, 1, "ok", 2));
	/* the first one too, once it gives it */
	CU_ASSERT_EQUAL(udp_session(u, "anon", ALICE), 0);
	/* Unix clients go by the socket's permissions */
	struct harness_raw *r = unix_open(b, "unix");
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
}

/* ---- 11. IPv6 ---- */

static void test_ipv6(void)
{
	int probe = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_storage ss;
	socklen_t slen = udp_loopback(AF_INET6, 0, &ss);
	int have = probe >= 0 && bind(probe, (struct sockaddr *)&ss, slen) == 0;
	if (probe >= 0)
		close(probe);
	if (!have) {
		fprintf(stderr, "  (no [::1] here: skipped)\n");
		return;
	}
	uint16_t port = 0;
	struct harness_broker *b = udp_broker_af(AF_INET6, NULL, NULL, &port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_raw *r = unix_open(b, "unix");

	/* a stranger, then the cookie dance, as over IPv4 */
	struct udp *u = udp_open_af(AF_INET6, port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT(udp_ping(u, 1) == 0 && udp_expect_err(u, EC(E_NO_SESSION), 1));
	CU_ASSERT(udp_hello(u, 2, "six", NULL, 0, 0, NULL) > 0);
	CU_ASSERT(udp_quiet(u, QUIET_MS));
	CU_ASSERT_EQUAL_FATAL(udp_session(u, "six", NULL), 0);
	CU_ASSERT_EQUAL(u->welcome->max_payload, UDP_MAX_PAYLOAD);
	struct udp *v = udp_open_af(AF_INET6, port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	CU_ASSERT(udp_hello(v, 3, "six", u->cookie, u->cookie_len, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT(udp_expect_err(v, EC(E_COOKIE), 3));

	/* both ways with the Unix client */
	CU_ASSERT(udp_sub(u, 4, 1, "six.>") == 0 && udp_expect(u, FT(PONG), 4));
	CU_ASSERT(harness_raw_pub(r, 0, "six.a", NULL, "to6", 3) == 0);
	CU_ASSERT(udp_read(u, T) == 1 && udp_is_msg(u, 1, "to6", 3));
	CU_ASSERT_FATAL(unix_sub(r, 2, "four") == 0);
	CU_ASSERT(udp_pub(u, 0, "four", NULL, "from6", 5) == 0);
	CU_ASSERT(unix_got(r, 2, "from6", 5));
	CU_ASSERT(udp_alive(u, 5));
	CU_ASSERT(udp_quiet(v, 0));
}

/* ---- 12. a burst for a UDP subscriber ---- */

#define BURST_N 400
#define BURST_SIZE 50000

/* A Unix publisher sends 20 MB at once to a UDP subscriber that does not
 * read meanwhile: the broker's socket may fill (it then waits for room
 * for the session), the subscriber's buffer overflows (the kernel drops).
 * What arrives is whole and in order, the broker's backlog empties, and a
 * later message arrives. */
static void test_burst(void)
{
	UDP_UP(b, port, NULL, NULL);
	struct harness_raw *r = unix_open(b, "unix");
	struct udp *u = udp_up(port, "burst");
	int rcv = 1 << 20;
	setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	CU_ASSERT(udp_sub(u, 1, 1, "burst") == 0 && udp_expect(u, FT(PONG), 1));

	uint8_t *p = malloc(BURST_SIZE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	for (size_t i = 0; i < BURST_SIZE; i++)
		p[i] = (uint8_t)(i * 13 + 5);
	struct buf out;
	buf_init(&out, SIZE_MAX / 2);
	for (uint32_t i = 0; i < BURST_N; i++) {
		memcpy(p, &i, 4);
		struct frame f = {.type = FT(PUB)};
		f.channel = fbs("burst");
		f.payload = fb(p, BURST_SIZE);
		CU_ASSERT_FATAL(frame_append(&out, &f, NULL, 0) == 0);
	}
	CU_ASSERT(harness_raw_send(r, buf_rptr(&out), buf_len(&out)) == 0);
	buf_fini(&out);
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);

	/* what arrived: whole, in order, each once */
	long got = 0, bad = 0;
	int64_t last = -1;
	while (udp_read(u, QUIET_MS) == 1) {
		uint32_t seq;
		if (u->f.type != FT(MSG) || u->f.payload.len != BURST_SIZE) {
			bad++;
			continue;
		}
		memcpy(&seq, u->f.payload.p, 4);
		memcpy(p, &seq, 4);
		if ((int64_t)seq <= last || memcmp(u->f.payload.p, p, BURST_SIZE) != 0)
			bad++;
		last = seq;
		got++;
	}
	struct status st;
	CU_ASSERT_FATAL(broker_status(b, &st) == 0);
	fprintf(stderr, "  (%ld of %d messages of %d bytes arrived; %ld dropped by the broker)\n",
		got, BURST_N, BURST_SIZE, st.dropped);
	CU_ASSERT(got > 0);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(st.pending, 0);
	CU_ASSERT(harness_raw_pub(r, 0, "burst", NULL, "end", 3) == 0);
	CU_ASSERT(udp_read(u, T) == 1 && udp_is_msg(u, 1, "end", 3));
	CU_ASSERT(udp_alive(u, 2));
	CU_ASSERT(harness_raw_barrier(r, T, NULL, NULL) == 1);
	free(p);
}

/* ---- 13. the cookie's clock ---- */

/* A broker whose CLOCK_MONOTONIC reads between at_ms - 1000 and at_ms
 * when it starts (a time namespace through unshare(1), with a user
 * namespace when we are not root; its offset is whole seconds), so the
 * cookie's 30 s windows can be met at their edges.  NULL (and a note)
 * where time namespaces are not to be had. */
static struct harness_broker *udp_broker_at(uint64_t at_ms, uint16_t *port)
{
	static const char *const unshares[] = {"/usr/bin/unshare", "/bin/unshare"};
	const char *unshare = NULL;
	for (size_t i = 0; i < HARNESS_NELEM(unshares) && !unshare; i++)
		if (access(unshares[i], X_OK) == 0)
			unshare = unshares[i];
	const char *ns = geteuid() == 0 ? "-T" : "-U -r -T";
	uint64_t now = harness_now();
	if (!unshare || now < at_ms + 10000) {
		fprintf(stderr, "  (no unshare(1), or the clock is too young: skipped)\n");
		return NULL;
	}
	uint64_t off_s = (now - at_ms) / 1000 + 1;
	char cmd[256];
	snprintf(cmd, sizeof cmd, "%s %s --monotonic=-%llu true 2>/dev/null", unshare, ns,
		 (unsigned long long)off_s);
	if (system(cmd) != 0) {
		fprintf(stderr, "  (no time namespaces here: skipped)\n");
		return NULL;
	}
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char wrapper[128], script[512];
	snprintf(wrapper, sizeof wrapper, "%s/ipcbusd-at", dir);
	/* harness_ipcbusd() returns getenv's string: copy it before setenv */
	char *real = strdup(harness_ipcbusd());
	CU_ASSERT_PTR_NOT_NULL_FATAL(real);
	snprintf(script, sizeof script, "#!/bin/sh\nexec %s %s --monotonic=-%llu %s \"$@\"\n",
		 unshare, ns, (unsigned long long)off_s, real);
	CU_ASSERT_FATAL(harness_write_file(wrapper, script) == 0 && chmod(wrapper, 0700) == 0);
	const char *old = getenv("IPCBUSD");
	char *saved = old ? strdup(old) : NULL;
	setenv("IPCBUSD", wrapper, 1);
	struct harness_broker *b = udp_broker(NULL, NULL, port);
	if (saved)
		setenv("IPCBUSD", saved, 1);
	else
		unsetenv("IPCBUSD");
	free(saved);
	free(real);
	return b;
}

static void test_cookie_clock(void)
{
	/* at 3 s since the broker's boot, in its first window (0): a cookie
	 * must open a session (a broker started at boot serves at once) */
	uint16_t port = 0;
	struct harness_broker *b = udp_broker_at(3000, &port);
	if (!b)
		return;
	struct udp *u = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(udp_session(u, "early", NULL), 0);
	CU_ASSERT(udp_alive(u, 3));
	harness_broker_free(b);

	/* a cookie from just before a window's end still opens a session in
	 * the next window (the same address gets another cookie there) */
	b = udp_broker_at(29000, &port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct udp *v = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	CU_ASSERT(udp_hello(v, 1, "edge", NULL, 0, UDP_HELLO_MIN, NULL) > 0);
	CU_ASSERT_FATAL(udp_expect_err(v, EC(E_COOKIE), 1));
	uint8_t first[8];
	CU_ASSERT_EQUAL_FATAL(v->cookie_len, 8);
	memcpy(first, v->cookie, 8);
	int changed = 0;
	for (uint64_t id = 2, end = harness_now() + 3000; !changed && harness_now() < end; id++) {
		harness_sleep(50);
		CU_ASSERT(udp_hello(v, id, "edge", NULL, 0, UDP_HELLO_MIN, NULL) > 0);
		CU_ASSERT_FATAL(udp_expect_err(v, EC(E_COOKIE), id));
		changed = memcmp(v->cookie, first, 8) != 0;
	}
	CU_ASSERT_FATAL(changed);
	CU_ASSERT(udp_hello(v, 100, "edge", first, 8, 0, NULL) > 0);
	CU_ASSERT(udp_expect(v, FT(WELCOME), 100));
}

/* ---- 14. answers are not answered ---- */

/* A datagram to ourselves' port with the broker's own address as its
 * source (a raw socket: needs CAP_NET_RAW): the broker then hears itself.
 * 0, or -1 when raw sockets are not allowed. */
static int udp_spoof_self(uint16_t port, const uint8_t *body, size_t len)
{
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return -1;
	uint8_t pkt[256];
	uint16_t ulen = (uint16_t)(8 + len);
	uint16_t be_port = htons(port), be_len = htons(ulen), zero = 0;
	memcpy(pkt, &be_port, 2);     /* source: the broker's port */
	memcpy(pkt + 2, &be_port, 2); /* destination: the same */
	memcpy(pkt + 4, &be_len, 2);
	memcpy(pkt + 6, &zero, 2); /* no checksum (IPv4 allows it) */
	memcpy(pkt + 8, body, len);
	struct sockaddr_storage ss;
	socklen_t slen = udp_loopback(AF_INET, 0, &ss);
	ssize_t n = sendto(fd, pkt, ulen, 0, (struct sockaddr *)&ss, slen);
	close(fd);
	return n == ulen ? 0 : -1;
}

static void test_no_echo(void)
{
	UDP_UP(b, port, NULL, NULL);
	struct udp *s = udp_open(port);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);

	/* what only a broker sends (ERR, WELCOME, MSG), from a stranger: no
	 * answer, or two brokers would answer each other's E_NO_SESSION */
	struct buf eb;
	buf_init(&eb, 1 << 16);
	CU_ASSERT_FATAL(frame_append_error(&eb, 5, EC(E_NO_SESSION), 1, NULL) == 0);
	CU_ASSERT(udp_send_buf(s, &eb) > 0);
	buf_fini(&eb);
	Ipcbus__Welcome w = IPCBUS__WELCOME__INIT;
	w.version = IPCBUS_PROTOCOL_VERSION;
	buf_init(&eb, 1 << 16);
	CU_ASSERT_FATAL(frame_append_welcome(&eb, 6, &w) == 0);
	CU_ASSERT(udp_send_buf(s, &eb) > 0);
	buf_fini(&eb);
	struct frame m = {.type = FT(MSG), .has_id = 1, .id = 7, .has_sid = 1, .sid = 1};
	m.channel = fbs("x");
	CU_ASSERT(udp_frame(s, &m, NULL, 0) > 0);
	CU_ASSERT(udp_quiet(s, QUIET_MS));
	/* what a client sends still gets its E_NO_SESSION */
	CU_ASSERT(udp_ping(s, 8) == 0 && udp_expect_err(s, EC(E_NO_SESSION), 8));
	struct frame pong = {.type = FT(PONG), .has_id = 1, .id = 9};
	CU_ASSERT(udp_frame(s, &pong, NULL, 0) > 0 && udp_expect_err(s, EC(E_NO_SESSION), 9));

	/* the broker's own address as the source of a PING: it answers
	 * itself once, not 200 times a second, and strangers still get their
	 * E_NO_SESSION afterwards */
	static const uint8_t ping[] = {0x08, 0x07, 0x10, 0x0a}; /* PING id 10 */
	if (udp_spoof_self(port, ping, sizeof ping) < 0) {
		fprintf(stderr, "  (no raw sockets here: the self-loop is not tried)\n");
		return;
	}
	harness_sleep(20);
	for (uint64_t id = 11; id < 16; id++) {
		CU_ASSERT(udp_ping(s, id) == 0 && udp_expect_err(s, EC(E_NO_SESSION), id));
		harness_sleep(2);
	}
	CU_ASSERT(harness_raw_barrier(unix_open(b, "unix"), T, NULL, NULL) == 1);
}

static const struct harness_case cases[] = {
	{"cookie", test_cookie},
	{"hello_again", test_hello_again},
	{"sub_ack", test_sub_ack},
	{"pubsub_unix", test_pubsub_unix},
	{"oversize", test_oversize},
	{"strangers", test_strangers},
	{"lease", test_lease},
	{"max_connections", test_max_connections},
	{"flood", test_flood},
	{"token", test_token},
	{"ipv6", test_ipv6},
	{"burst", test_burst},
	{"cookie_clock", test_cookie_clock},
	{"no_echo", test_no_echo},
};

int main(int argc, char **argv)
{
	return harness_main("udp", cases, HARNESS_NELEM(cases), 0, 60, argc, argv);
}
