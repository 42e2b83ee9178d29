/*
 * fakebroker.c: the fake broker of the library's unit tests (fakebroker.h).
 * Its sockets are blocking (poll first, then one call), so a step either
 * happens within WAIT_MS or the test fails; the accepted connection is
 * whatever the listener gives: unix or loopback TCP.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fakebroker.h"
#include "net.h"

static int fb_nsock; /* socket names made in the folders so far */

static int64_t fb_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fb_start(struct fb *b, const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(b, 0, sizeof *b);
	b->fd = -1;
	buf_init(&b->in, 1 << 20);
	snprintf(b->path, sizeof b->path, "%s/b%d.sock", dir, fb_nsock++);
	snprintf(b->url, sizeof b->url, "unix://%s", b->path);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", b->path);
	b->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->lfd < 0)
		return -errno;
	if (bind(b->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(b->lfd, 4) < 0) {
		int e = errno;
		close(b->lfd);
		b->lfd = -1;
		unlink(b->path);
		return -e;
	}
	return 0;
}

int fb_start_tcp(struct fb *b, const char *host)
{
	char err[256];
	int rc;

	memset(b, 0, sizeof *b);
	b->fd = -1;
	buf_init(&b->in, 1 << 20);
	snprintf(b->host, sizeof b->host, "%s", host);
	rc = net_listen_host(host, 0, SOCK_STREAM, 8, &b->lfd, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "fake broker: %s\n", err);
		b->lfd = -1;
		return rc;
	}
	b->port = net_local_port(b->lfd);
	snprintf(b->url, sizeof b->url, strchr(host, ':') ? "tcp://[%s]:%d" : "tcp://%s:%d", host,
		 b->port);
	return 0;
}

void fb_drop(struct fb *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

void fb_stop(struct fb *b)
{
	fb_drop(b);
	if (b->lfd >= 0) {
		close(b->lfd);
		if (b->path[0])
			unlink(b->path);
	}
	b->lfd = -1;
	buf_fini(&b->in);
}

/* Next whole frame from the client as a view into b->in (valid until the
 * next read): 1, 0 when none came within timeout_ms, -EPIPE at EOF, or
 * another negative code. */
int fb_raw(struct fb *b, struct frame *f, int timeout_ms)
{
	int64_t end = fb_now_ms() + timeout_ms;

	for (;;) {
		const uint8_t *body;
		size_t blen, need;
		long k = frame_split(buf_rptr(&b->in), buf_len(&b->in), 1 << 20, &body, &blen,
				     &need);
		if (k < 0)
			return -EPROTO;
		if (k > 0) {
			buf_consume(&b->in, (size_t)k);
			return frame_decode(body, blen, f) < 0 ? -EPROTO : 1;
		}
		int64_t left = end - fb_now_ms();
		struct pollfd p = {.fd = b->fd, .events = POLLIN};
		int n = poll(&p, 1, left > 0 ? (int)left : 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0)
			return 0;
		if (n < 0)
			continue;
		if (buf_reserve(&b->in, 4096) < 0)
			return -ENOBUFS;
		ssize_t r = recv(b->fd, buf_wptr(&b->in), 4096, 0);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0)
			return -EPIPE;
		if (r > 0)
			buf_commit(&b->in, (size_t)r);
	}
}

static void fb_copy(char *dst, const struct frame_bytes *fb)
{
	size_t n = fb->len < STR_MAX - 1 ? fb->len : STR_MAX - 1;
	if (n)
		memcpy(dst, fb->p, n);
	dst[n] = 0;
}

/* fb_raw(), copied into *out. */
int fb_next(struct fb *b, struct fb_frame *out, int timeout_ms)
{
	struct frame f;
	int rc = fb_raw(b, &f, timeout_ms);

	memset(out, 0, sizeof *out);
	if (rc <= 0)
		return rc;
	out->type = f.type;
	out->has_id = f.has_id;
	out->id = f.id;
	out->has_sid = f.has_sid;
	out->sid = f.sid;
	out->has_reply_to = f.reply_to.set;
	fb_copy(out->channel, &f.channel);
	fb_copy(out->reply_to, &f.reply_to);
	fb_copy(out->payload, &f.payload);
	return 1;
}

/* Write and free o. */
int fb_send(struct fb *b, struct buf *o)
{
	int rc = 0;

	while (buf_len(o) > 0) {
		ssize_t n = send(b->fd, buf_rptr(o), buf_len(o), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		buf_consume(o, (size_t)n);
	}
	buf_fini(o);
	return rc;
}

/* A MSG to subscription sid, as the broker delivers it: a shared body and
 * a per-subscription prefix. */
int fb_msg(struct fb *b, uint64_t sid, const char *channel, const char *payload)
{
	struct frame pub = {.type = IPCBUS__FRAME_TYPE__PUB};
	uint8_t pre[2 * FRAME_VARINT_MAX + 1];
	struct buf o;
	int rc;

	pub.channel = (struct frame_bytes){(const uint8_t *)channel, strlen(channel), 1};
	pub.payload = (struct frame_bytes){(const uint8_t *)payload, strlen(payload), 1};
	size_t blen = frame_msg_size(&pub);
	size_t plen = frame_sid_prefix(pre, sid, blen);
	buf_init(&o, 1 << 20);
	rc = buf_append(&o, pre, plen);
	if (rc == 0)
		rc = buf_reserve(&o, blen);
	if (rc < 0) {
		buf_fini(&o);
		return rc;
	}
	buf_commit(&o, frame_msg_encode(&pub, buf_wptr(&o)));
	return fb_send(b, &o);
}

/* An ERR with the flags given as they are (-1: the field is left out),
 * as brokers old and new, or a broken one, may send them. */
int fb_err_flags(struct fb *b, uint64_t id, int code, int fatal, int closing,
			const char *text)
{
	Ipcbus__Error e = IPCBUS__ERROR__INIT;
	uint8_t packed[512];
	struct buf o;

	e.code = (Ipcbus__ErrCode)code;
	e.has_fatal = fatal >= 0;
	e.fatal = fatal > 0;
	e.has_closing = closing >= 0;
	e.closing = closing > 0;
	e.has_text = 1;
	e.text.data = (uint8_t *)(uintptr_t)text;
	e.text.len = strlen(text);
	size_t n = protobuf_c_message_get_packed_size(&e.base);
	if (n > sizeof packed)
		return -ENOBUFS;
	protobuf_c_message_pack(&e.base, packed);
	struct frame f = {.type = IPCBUS__FRAME_TYPE__ERR, .has_id = id != 0, .id = id};
	f.error = (struct frame_bytes){packed, n, 1};
	buf_init(&o, 1 << 20);
	int rc = frame_append(&o, &f, NULL, 0);
	if (rc < 0) {
		buf_fini(&o);
		return rc;
	}
	return fb_send(b, &o);
}

int fb_err(struct fb *b, uint64_t id, int code)
{
	struct buf o;

	buf_init(&o, 1 << 20);
	int rc = frame_append_error(&o, id, code, 0, "fake broker says no");
	if (rc < 0) {
		buf_fini(&o);
		return rc;
	}
	return fb_send(b, &o);
}

int fb_handshake(struct fb *b, int timeout_ms)
{
	struct pollfd p = {.fd = b->lfd, .events = POLLIN};
	struct frame f;
	struct buf o;

	if (poll(&p, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	fb_drop(b);
	b->in.rpos = b->in.wpos = 0;
	b->fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (b->fd < 0)
		return -errno;
	int rc = fb_raw(b, &f, WAIT_MS);
	if (rc <= 0 || f.type != IPCBUS__FRAME_TYPE__HELLO)
		return rc < 0 ? rc : -EPROTO;
	Ipcbus__Hello *h = frame_unpack_hello(&f);
	if (!h || h->version != IPCBUS_PROTOCOL_VERSION) {
		if (h)
			protobuf_c_message_free_unpacked(&h->base, NULL);
		return -EPROTO;
	}
	b->hellos++;
	b->hello_has_token = h->has_token;
	fb_copy(b->hello_token, &(struct frame_bytes){h->token.data, h->token.len, h->has_token});
	fb_copy(b->hello_name, &(struct frame_bytes){h->name.data, h->name.len, h->has_name});
	protobuf_c_message_free_unpacked(&h->base, NULL);

	Ipcbus__Welcome w = IPCBUS__WELCOME__INIT;
	w.version = IPCBUS_PROTOCOL_VERSION;
	w.has_max_payload = 1;
	w.max_payload = 1 << 20;
	w.has_max_header_bytes = 1;
	w.max_header_bytes = 64 << 10;
	buf_init(&o, 1 << 20);
	rc = frame_append_welcome(&o, f.id, &w);
	if (rc < 0) {
		buf_fini(&o);
		return rc;
	}
	return fb_send(b, &o);
}

/* The first handshake runs in a thread: ipcbus_connect() blocks until it
 * is done. */
static void *fb_accept_main(void *arg)
{
	struct fb *b = arg;

	b->hs_err = fb_handshake(b, WAIT_MS);
	return NULL;
}

int fb_connect_url(struct fb *b, const char *url, ipcbus **c, const ipcbus_opts *opts)
{
	pthread_t t;
	int rc;

	*c = NULL;
	b->hs_err = 0;
	rc = -pthread_create(&t, NULL, fb_accept_main, b);
	if (rc < 0)
		return rc;
	rc = ipcbus_connect(c, url, opts);
	pthread_join(t, NULL);
	if (rc == 0 && b->hs_err < 0) {
		ipcbus_close(*c);
		*c = NULL;
		rc = b->hs_err;
	}
	return rc;
}

int fb_connect(struct fb *b, const char *dir, ipcbus **c, const ipcbus_opts *opts)
{
	int rc = fb_start(b, dir);

	*c = NULL;
	if (rc < 0)
		return rc;
	rc = fb_connect_url(b, b->url, c, opts);
	if (rc < 0)
		fb_stop(b);
	return rc;
}
