/*
 * conn.c: the connection of libipcbus.
 *
 * States (client.h): WAIT -> [OPENING ->] HELLO -> READY, and CLOSED for
 * good.  ipcbus_connect() opens the socket, sends HELLO and blocks until
 * WELCOME; a failure then is returned at once, never retried.  Once a
 * connection has been welcomed, losing it (EOF, a socket error, a closing
 * ERR) fails the requests in flight, reports IPCBUS_EV_DISCONNECTED and
 * schedules a new attempt after a jittered exponential backoff (each delay
 * drawn from 50-100% of the current step, min doubling to max), so that
 * clients of a restarted broker do not all come back at the same moment.
 * A fatal ERR, or opts.no_reconnect, closes the connection for good:
 * the ERR's `fatal` flag alone decides (an older broker sets `closing` on
 * a fatal ERR too, a newer one does not; `closing` without `fatal` means
 * the broker closes and reconnecting is allowed).
 *
 * The broker's reason comes first: when a write fails because the broker
 * closed (EPIPE, ECONNRESET), what it sent before closing -- an ERR saying
 * it is full, or that we were idle or too slow -- is read before the write
 * error is reported, so the program sees the broker's code and text rather
 * than "Broken pipe".  A failed ipcbus_connect() hands its text to
 * on_event (IPCBUS_EV_CONNECT_FAILED), there being no connection to ask.
 *
 * A default address (no URL from the caller) is checked before every
 * connect by defpath_check(): the socket and its folder must be the user's
 * (the system broker's: root's), else IPCBUS_EUNSAFE.
 *
 * Transports (tr.h): the session is written once; a transport connects
 * (possibly in several non-blocking steps: CONN_OPENING), reads into `in`,
 * writes from `out` and closes.  Its descriptor sits in the one epoll set
 * that ipcbus_fd() returns, watched for what the transport wants, so the
 * program polls the same fd whatever the transport and across reconnects.
 * The token goes in HELLO only over a TR_REMOTE transport (tcp, tls, udp):
 * from the URL, else opts.token, else $IPCBUS_TOKEN, else the first line
 * of the file $IPCBUS_TOKEN_FILE names (re-read at every attempt, so a
 * reconnect picks up a rotated token; refused when others may read it).
 *
 * A datagram transport (TR_DGRAM: udp) reads one datagram, one frame, per
 * call, into room for the largest, up to CONN_DGRAM_ROUNDS a dispatch; what
 * a datagram session needs beyond framing (the cookie, resending HELLO,
 * SUB, UNSUB and the flush PING, the lease) is dgram.c's, called from here
 * at HELLO, ERR, PONG, WELCOME, each dispatch (dgram_tick) and in
 * ipcbus_timeout().
 *
 * Options (ipcbus_opts) grow at the end; opts->size says how much of the
 * struct the program knows (conn_opts()).
 *
 * Output: frames are encoded into `out` and written by one transport write
 * per dispatch (or once CONN_WRITE_CHUNK bytes are buffered); want_write is
 * watched only while a write is left over.  At a disconnect the whole of
 * `out` is dropped, whole frames included: what was sent before the drop is
 * lost in the dead socket's buffers anyway (delivery is at most once), SUBs
 * are re-sent from the table, and a request in it fails with
 * IPCBUS_EDISCONNECTED.  Publishes made while disconnected go to `pend`
 * instead and are sent after HELLO and the SUBs.
 *
 * Input: up to CONN_READ_CHUNK bytes per read, every complete frame handled
 * in place: the ipcbus_msg of a callback points into `in`.  A callback may
 * itself dispatch (ipcbus_request() inside a handler), so a nested read must
 * not move bytes that an outer frame still points to: when a frame loop is
 * running on `in` (in_pinned), the nested read first moves the unhandled
 * bytes to a fresh buffer and retires the old block until the outermost
 * loop returns; the outer loop sees in_gen change and stops, the frames it
 * did not reach having been handled by the nested one, in order.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "defpath.h"

#define CONN_READ_CHUNK (256 * 1024)
#define CONN_READ_ROUNDS 4             /* reads per dispatch, then yield */
#define CONN_DGRAM_ROUNDS 64           /* the same for datagrams, one a read */
#define CONN_WRITE_CHUNK (64 * 1024)
#define CONN_OUT_HIGH (4 * 1024 * 1024) /* a publisher waits for the socket past this */
#define CONN_KEEP (1024 * 1024)         /* buffer memory kept when idle */
#define CONN_FRAME_DEFAULT (1024 * 1024 + 64 * 1024 + 1024)
#define CONN_TOKEN_MAX 1024             /* bytes of a token from a file */
#define CONN_FRAME_MS 10000             /* a frame begun, silent this long: see conn_tick */
/* a partial frame, or a nested read's unhandled bytes, plus one read */
#define CONN_IN_MAX(frame_max) ((frame_max) + 2 * CONN_READ_CHUNK + FRAME_VARINT_MAX)

/* --- small helpers --- */

int64_t conn_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void conn_random(void *p, size_t n)
{
	uint8_t *d = p;
	while (n > 0) {
		ssize_t k = getrandom(d, n, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			/* no getrandom: weak but unique enough for backoff and
			 * inbox names of one host */
			uint64_t x = (uint64_t)conn_now() ^ ((uint64_t)getpid() << 32) ^
				     (uint64_t)(uintptr_t)d;
			for (size_t i = 0; i < n; i++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				d[i] = (uint8_t)x;
			}
			return;
		}
		d += k;
		n -= (size_t)k;
	}
}

static uint64_t conn_rand(struct ipcbus *c)
{
	uint64_t x = c->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return c->rng = x;
}

void conn_event(struct ipcbus *c, int event, int err, const char *text)
{
	if (c->opts.on_event)
		c->opts.on_event(c->opts.event_arg, event, err, text ? text : "");
}

static void conn_set_text(struct ipcbus *c, const void *p, size_t n)
{
	if (n >= sizeof c->last_error)
		n = sizeof c->last_error - 1;
	memmove(c->last_error, p, n);
	c->last_error[n] = 0;
}

/* --- the transport --- */

/* What the transport's descriptor is to be watched for. */
static uint32_t conn_mask(const struct ipcbus *c)
{
	if (c->state == CONN_OPENING)
		return c->tr.want_read | c->tr.want_write;
	return c->tr.want_read | (c->wr_blocked ? c->tr.want_write : 0);
}

/* Keep the epoll set in step with the transport.  force: while connecting
 * the transport may have replaced its descriptor by one with the same
 * number (the old one's registration went with its close), so MOD, and
 * ADD when epoll does not know it. */
static int conn_watch(struct ipcbus *c, int force)
{
	int fd = c->tr.fd;
	uint32_t ev = conn_mask(c);

	if (fd < 0)
		return 0;
	if (!force && fd == c->ep_fd && ev == c->ep_events)
		return 0;
	struct epoll_event e = {.events = ev, .data.fd = fd};
	if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &e) < 0 &&
	    (errno != ENOENT || epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &e) < 0))
		return -errno;
	c->ep_fd = fd;
	c->ep_events = ev;
	return 0;
}

/* The transport's text for its last read or write failure, or NULL. */
static const char *conn_tr_errtext(const struct ipcbus *c)
{
	return c->tr.ops->errtext ? c->tr.ops->errtext(&c->tr) : NULL;
}

/* Bytes the transport holds that its descriptor does not announce. */
static int conn_tr_pending(const struct ipcbus *c)
{
	return c->tr_open && c->tr.ops->pending && c->tr.ops->pending(&c->tr) > 0;
}

static short conn_poll_events(uint32_t ev)
{
	return (short)((ev & EPOLLIN ? POLLIN : 0) | (ev & EPOLLOUT ? POLLOUT : 0));
}

/* Replace in.data by a fresh block, keeping the unhandled bytes when keep;
 * the old block stays allocated until no frame loop runs. */
static int conn_in_retire(struct ipcbus *c, int keep)
{
	struct buf fresh;
	int rc;

	if (c->nretired == c->retired_cap) {
		size_t cap = c->retired_cap ? c->retired_cap * 2 : 4;
		void **r = realloc(c->retired, cap * sizeof *r);
		if (!r)
			return -ENOMEM;
		c->retired = r;
		c->retired_cap = cap;
	}
	buf_init(&fresh, c->in.max);
	if (keep && buf_len(&c->in)) {
		rc = buf_append(&fresh, buf_rptr(&c->in), buf_len(&c->in));
		if (rc < 0)
			return rc;
	}
	c->retired[c->nretired++] = c->in.data;
	c->in = fresh;
	c->in_gen++;
	c->in_pinned = 0;
	return 0;
}

static void conn_close_tr(struct ipcbus *c)
{
	if (!c->tr_open)
		return;
	if (c->tr.fd >= 0)
		epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->tr.fd, NULL);
	c->tr.ops->close(&c->tr);
	c->tr.fd = -1;
	c->tr_open = 0;
	c->ep_fd = -1;
	c->ep_events = 0;
	c->wr_blocked = 0;
}

static void conn_schedule(struct ipcbus *c)
{
	int b = c->backoff_ms;
	int d = b / 2 + (int)(conn_rand(c) % (uint64_t)(b - b / 2 + 1));

	c->reconnect_at = conn_now() + d;
	c->backoff_ms = b >= c->opts.reconnect_max_ms / 2 ? c->opts.reconnect_max_ms : b * 2;
	c->state = CONN_WAIT;
}

/* The socket is gone (or the handshake failed).  err and text say why; a
 * fatal drop never reconnects. */
void conn_drop(struct ipcbus *c, int err, const char *text, int fatal)
{
	int was_ready = c->state == CONN_READY;

	if (c->state == CONN_CLOSED)
		return;
	conn_close_tr(c);
	if (c->in_pinned)
		conn_in_retire(c, 0);
	else
		c->in.rpos = c->in.wpos = 0;
	c->in_need = 0;
	c->out.rpos = c->out.wpos = 0; /* dropped, whole frames too: see the top */
	buf_shrink(&c->out, CONN_KEEP);
	c->write_mark = CONN_WRITE_CHUNK;
	c->pending_err = 0;
	c->epoch++;
	dgram_reset(c);
	if (!text)
		text = ipcbus_strerror(err);
	if (text != c->last_error)
		conn_set_text(c, text, strlen(text));

	if (fatal || c->opts.no_reconnect || !c->ever_ready) {
		c->state = CONN_CLOSED;
		c->closed_err = !c->ever_ready ? err : fatal ? IPCBUS_ECLOSED : IPCBUS_EDISCONNECTED;
		buf_fini(&c->pend);
	} else if (was_ready || c->state != CONN_WAIT) {
		conn_schedule(c);
	}
	req_fail_all(c, IPCBUS_EDISCONNECTED);
	if (was_ready)
		conn_event(c, IPCBUS_EV_DISCONNECTED, err, c->last_error);
	if (c->state == CONN_CLOSED && c->ever_ready)
		conn_event(c, IPCBUS_EV_CLOSED, c->closed_err, c->last_error);
}

void conn_hello(struct ipcbus *c)
{
	Ipcbus__Hello h = IPCBUS__HELLO__INIT;

	h.version = IPCBUS_PROTOCOL_VERSION;
	h.has_pid = 1;
	h.pid = (uint32_t)getpid();
	if (c->name) {
		h.has_name = 1;
		h.name.data = (uint8_t *)c->name;
		h.name.len = strlen(c->name);
	}
	if (c->token && (c->tr.ops->flags & TR_REMOTE)) {
		h.has_token = 1;
		h.token.data = (uint8_t *)c->token;
		h.token.len = strlen(c->token);
	}
	if (c->dgram)
		dgram_hello(c, &h);
	if (c->tr.ops->hello)
		c->tr.ops->hello(&c->tr, &h);
	c->state = CONN_HELLO;
	int rc = frame_append_hello(&c->out, c->next_id++, &h);
	if (rc < 0)
		c->pending_err = rc;
	conn_write(c);
}

/* The token from the file $IPCBUS_TOKEN_FILE named: its first line,
 * without the line end.  Refused when others may read or write it (the
 * secret would be theirs), when it is not a regular file, empty, longer
 * than CONN_TOKEN_MAX or holds a NUL.  0 and c->token, or a negative code
 * with the reason in last_error. */
static int conn_token_read(struct ipcbus *c)
{
	char b[CONN_TOKEN_MAX + 2];
	struct stat st;
	size_t n = 0;
	int fd, rc;

	fd = open(c->token_file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(c->last_error, sizeof c->last_error, "IPCBUS_TOKEN_FILE %s: %s",
			 c->token_file, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(c->last_error, sizeof c->last_error, "IPCBUS_TOKEN_FILE %s: %s",
			 c->token_file, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(c->last_error, sizeof c->last_error,
			 "IPCBUS_TOKEN_FILE %s: not a regular file", c->token_file);
		goto out;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		rc = IPCBUS_EUNSAFE;
		snprintf(c->last_error, sizeof c->last_error,
			 "IPCBUS_TOKEN_FILE %s: others may read or change it (mode %04o); "
			 "chmod o-rw it",
			 c->token_file, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (n < sizeof b) {
		ssize_t k = read(fd, b + n, sizeof b - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			snprintf(c->last_error, sizeof c->last_error, "IPCBUS_TOKEN_FILE %s: %s",
				 c->token_file, strerror(-rc));
			goto out;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (memchr(b, '\n', n))
			break;
	}
	char *nl = memchr(b, '\n', n);
	size_t len = nl ? (size_t)(nl - b) : n;
	if (len > 0 && b[len - 1] == '\r')
		len--;
	rc = -EINVAL;
	if (len > CONN_TOKEN_MAX)
		snprintf(c->last_error, sizeof c->last_error,
			 "IPCBUS_TOKEN_FILE %s: the token is longer than %d bytes", c->token_file,
			 CONN_TOKEN_MAX);
	else if (len == 0)
		snprintf(c->last_error, sizeof c->last_error,
			 "IPCBUS_TOKEN_FILE %s: the first line is empty", c->token_file);
	else if (memchr(b, 0, len))
		snprintf(c->last_error, sizeof c->last_error,
			 "IPCBUS_TOKEN_FILE %s: the token holds a NUL byte", c->token_file);
	else
		rc = 0;
	if (rc == 0) {
		char *t = malloc(len + 1);
		if (!t) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(t, b, len);
		t[len] = 0;
		free(c->token);
		c->token = t;
	}
out:
	explicit_bzero(b, sizeof b);
	close(fd);
	return rc;
}

/* Start a connection and, once the transport is ready, the handshake.  0
 * or a negative code (then there is no connection and the state is
 * unchanged); last_error says why when the transport or a check did. */
static int conn_open(struct ipcbus *c)
{
	char err[sizeof c->last_error];
	int rc;

	/* at every attempt: what was safe at the first may not be at the next */
	if (c->defpath && c->u.kind == URL_UNIX) {
		rc = defpath_check(c->u.path, geteuid(), c->defpath == 2, err, sizeof err);
		if (rc < 0) {
			conn_set_text(c, err, strlen(err));
			return rc;
		}
	}
	if (c->token_file && (c->tr.ops->flags & TR_REMOTE) && (rc = conn_token_read(c)) < 0)
		return rc;
	err[0] = 0;
	rc = c->tr.ops->connect(&c->tr, &c->u, err, sizeof err);
	if (rc < 0 && rc != -EAGAIN) {
		c->tr.fd = -1;
		if (err[0])
			conn_set_text(c, err, strlen(err));
		return rc;
	}
	c->tr_open = 1;
	c->wr_blocked = 0;
	c->state = rc == -EAGAIN ? CONN_OPENING : CONN_HELLO;
	int wrc = conn_watch(c, 1);
	if (wrc < 0) {
		conn_close_tr(c);
		c->state = CONN_WAIT;
		return wrc;
	}
	c->in.rpos = c->in.wpos = 0;
	c->in_need = 0;
	c->in.max = CONN_IN_MAX(CONN_FRAME_DEFAULT);
	c->frame_max = CONN_FRAME_DEFAULT;
	c->out.rpos = c->out.wpos = 0;
	c->hello_deadline = conn_now() + c->opts.connect_timeout_ms;
	c->tick_at = c->tr.ops->tick ? conn_now() + c->tr.ops->tick_ms : 0;
	if (c->dgram)
		dgram_open(c);
	if (rc == 0)
		conn_hello(c);
	return 0;
}

/* CONN_OPENING: one more step of the transport's connect. */
static void conn_check_open(struct ipcbus *c)
{
	char err[sizeof c->last_error];

	err[0] = 0;
	int rc = c->tr.ops->connected(&c->tr, err, sizeof err);
	if (rc == -EAGAIN) {
		rc = conn_watch(c, 1); /* the descriptor may be a new one */
		if (rc < 0)
			conn_drop(c, rc, NULL, 0);
		return;
	}
	if (rc < 0) {
		conn_drop(c, rc, err[0] ? err : NULL, 0);
		return;
	}
	c->state = CONN_HELLO;
	rc = conn_watch(c, 1);
	if (rc < 0) {
		conn_drop(c, rc, NULL, 0);
		return;
	}
	conn_hello(c);
}

void conn_write(struct ipcbus *c)
{
	if (!c->tr_open || c->tr.fd < 0 || c->pending_err || c->state == CONN_OPENING)
		return;
	size_t before = buf_len(&c->out);
	int rc = before ? c->tr.ops->write(&c->tr, &c->out) : 0;
	if (c->dgram && buf_len(&c->out) < before)
		c->last_tx = conn_now(); /* the lease is renewed by what we send */
	if (rc == -EAGAIN) {
		/* don't try again at every publish: after another chunk, or
		 * when the transport's descriptor is ready */
		c->write_mark = buf_len(&c->out) + CONN_WRITE_CHUNK;
		c->wr_blocked = 1;
		if ((rc = conn_watch(c, 0)) < 0)
			c->pending_err = rc;
		return;
	}
	if (rc < 0) {
		c->pending_err = rc;
		return;
	}
	c->write_mark = CONN_WRITE_CHUNK;
	c->wr_blocked = 0;
	if ((rc = conn_watch(c, 0)) < 0)
		c->pending_err = rc;
	buf_shrink(&c->out, CONN_KEEP);
}

void conn_drain(struct ipcbus *c)
{
	while (buf_len(&c->out) > CONN_OUT_HIGH && c->tr.fd >= 0 && !c->pending_err &&
	       c->state != CONN_OPENING) {
		struct pollfd p = {.fd = c->tr.fd, .events = conn_poll_events(c->tr.want_write)};
		/* a signal ends the wait too: the frame stays buffered, and the
		 * program gets control back (Ctrl-C in a stuck publisher) */
		if (poll(&p, 1, -1) < 0)
			return;
		conn_write(c);
		if (buf_len(&c->out) > CONN_OUT_HIGH / 2)
			continue;
		break;
	}
}

/* --- frames from the broker --- */

static int conn_map_err(int code)
{
	switch (code) {
	case IPCBUS__ERR_CODE__E_PROTOCOL:
	case IPCBUS__ERR_CODE__E_NO_HELLO: return IPCBUS_EPROTO;
	case IPCBUS__ERR_CODE__E_FRAME_TOO_BIG: return IPCBUS_EFRAME;
	case IPCBUS__ERR_CODE__E_VERSION: return IPCBUS_EVERSION;
	case IPCBUS__ERR_CODE__E_AUTH:
	case IPCBUS__ERR_CODE__E_PERMISSION: return IPCBUS_EPERM;
	case IPCBUS__ERR_CODE__E_INVALID_CHANNEL: return IPCBUS_ECHANNEL;
	case IPCBUS__ERR_CODE__E_PAYLOAD_TOO_BIG:
	case IPCBUS__ERR_CODE__E_HEADERS_TOO_BIG: return IPCBUS_ETOOBIG;
	case IPCBUS__ERR_CODE__E_UNKNOWN_SID: return IPCBUS_ENOSUB;
	case IPCBUS__ERR_CODE__E_NO_RESPONDERS: return IPCBUS_ENORESPONDERS;
	default: return IPCBUS_ESERVER;
	}
}

static void conn_on_err(struct ipcbus *c, const struct frame *f)
{
	Ipcbus__Error *e = frame_unpack_error(f);

	if (!e) {
		conn_drop(c, IPCBUS_EPROTO, "the broker sent an ERR that does not decode", 0);
		return;
	}
	int code = (int)e->code;
	/* The flags say it; the code ranges of the schema are the fallback
	 * for a broker that sends no flags.  `fatal` alone decides whether we
	 * may reconnect: an older broker sets closing on a fatal ERR as well,
	 * a newer one only fatal, and a closing ERR without fatal (full,
	 * idle, slow consumer) allows a reconnect whatever its code. */
	int fatal = e->has_fatal ? e->fatal : code >= 1 && code <= 5;
	int closing = e->has_closing ? e->closing : code >= 6 && code <= 8;
	int err = conn_map_err(code);
	if (c->dgram && dgram_on_err(c, code, e)) {
		/* E_COOKIE, E_NO_SESSION: steps of a datagram session */
		protobuf_c_message_free_unpacked(&e->base, NULL);
		return;
	}
	if (code == IPCBUS__ERR_CODE__E_NO_RESPONDERS) {
		/* the answer to a request, not an error of the connection */
		protobuf_c_message_free_unpacked(&e->base, NULL);
		if (f->has_id)
			req_on_err(c, f->id, IPCBUS_ENORESPONDERS);
		return;
	}
	if (e->has_text)
		conn_set_text(c, e->text.data, e->text.len);
	else
		snprintf(c->last_error, sizeof c->last_error, "%s", ipcbus_strerror(err));
	protobuf_c_message_free_unpacked(&e->base, NULL);

	if (fatal || closing) {
		conn_drop(c, err, c->last_error, fatal);
		return;
	}
	if (!c->first_err)
		c->first_err = err;
	if (f->has_id) {
		req_on_err(c, f->id, err);
		sub_on_err(c, f->id, code);
		if (c->dgram)
			dgram_on_answer(c, f->id);
	}
	conn_event(c, IPCBUS_EV_ERROR, err, c->last_error);
}

static void conn_on_welcome(struct ipcbus *c, const struct frame *f)
{
	Ipcbus__Welcome *w = frame_unpack_welcome(f);

	if (c->dgram && c->state == CONN_READY && w) {
		/* a HELLO resent was answered too */
		protobuf_c_message_free_unpacked(&w->base, NULL);
		return;
	}
	if (c->state != CONN_HELLO || !w) {
		if (w)
			protobuf_c_message_free_unpacked(&w->base, NULL);
		conn_drop(c, IPCBUS_EPROTO, "unexpected WELCOME from the broker", 0);
		return;
	}
	if (w->version != IPCBUS_PROTOCOL_VERSION) {
		snprintf(c->last_error, sizeof c->last_error,
			 "the broker speaks protocol version %u, this client %d", w->version,
			 IPCBUS_PROTOCOL_VERSION);
		protobuf_c_message_free_unpacked(&w->base, NULL);
		conn_drop(c, IPCBUS_EVERSION, c->last_error, 1);
		return;
	}
	c->max_payload = w->has_max_payload ? w->max_payload : 0;
	c->max_header_bytes = w->has_max_header_bytes ? w->max_header_bytes : 0;
	c->max_subscriptions = w->has_max_subscriptions ? w->max_subscriptions : 0;
	c->ping_interval_ms = w->has_ping_interval_ms ? w->ping_interval_ms : 0;
	uint32_t lease = w->has_lease_ms ? w->lease_ms : 0;
	protobuf_c_message_free_unpacked(&w->base, NULL);
	/* the broker's frame limit is payload + headers + 1 KiB; be lenient
	 * with the encoding overhead of many small headers */
	if (c->max_payload && c->max_header_bytes &&
	    c->max_payload < SIZE_MAX / 4 && c->max_header_bytes < SIZE_MAX / 16)
		c->frame_max = (size_t)c->max_payload + 4 * (size_t)c->max_header_bytes + 8192;
	else
		c->frame_max = 64 * 1024 * 1024;
	c->in.max = CONN_IN_MAX(c->frame_max);

	c->state = CONN_READY;
	if (c->dgram)
		dgram_welcome(c, lease);
	c->backoff_ms = c->opts.reconnect_min_ms;
	int again = c->ever_ready;
	c->ever_ready = 1;
	sub_restore(c);
	if (buf_len(&c->pend)) {
		if (buf_append(&c->out, buf_rptr(&c->pend), buf_len(&c->pend)) < 0)
			c->pending_err = -ENOMEM;
	}
	buf_fini(&c->pend);
	conn_write(c);
	if (again)
		conn_event(c, IPCBUS_EV_RECONNECTED, 0, NULL);
}

static void conn_handle(struct ipcbus *c, const struct frame *f)
{
	switch (f->type) {
	case IPCBUS__FRAME_TYPE__MSG:
		if (c->state == CONN_READY)
			sub_on_msg(c, f);
		break;
	case IPCBUS__FRAME_TYPE__PING: {
		/* answered with the dispatch's write, before it returns */
		struct frame p = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = f->has_id, .id = f->id};
		if (frame_append(&c->out, &p, NULL, 0) < 0)
			c->pending_err = -ENOMEM;
		break;
	}
	case IPCBUS__FRAME_TYPE__PONG:
		/* over datagrams a PONG also acknowledges a SUB or UNSUB:
		 * that one is no barrier (its id may be above a flush's) */
		if (f->has_id && c->dgram && dgram_on_pong(c, f->id))
			break;
		if (f->has_id && f->id > c->pong_last)
			c->pong_last = f->id;
		break;
	case IPCBUS__FRAME_TYPE__ERR:
		conn_on_err(c, f);
		break;
	case IPCBUS__FRAME_TYPE__WELCOME:
		conn_on_welcome(c, f);
		break;
	default:
		break; /* a frame of a newer broker: ignored */
	}
}

/* Handle every complete frame in `in`. */
static void conn_process(struct ipcbus *c)
{
	uint64_t gen = c->in_gen;
	int was = c->in_pinned;

	c->in_pinned = 1;
	c->in_depth++;
	while (c->in_gen == gen && buf_len(&c->in) > 0) {
		const uint8_t *body;
		size_t blen, need;
		struct frame f;
		long k = frame_split(buf_rptr(&c->in), buf_len(&c->in), c->frame_max, &body, &blen,
				     &need);
		if (k == 0) {
			/* need is 0 while the length prefix is not whole: the
			 * frame has begun all the same (conn_tick bounds it),
			 * and takes one byte more at least */
			c->in_need = need ? need : buf_len(&c->in) + 1;
			break;
		}
		if (k < 0) {
			conn_drop(c, (int)k,
				  k == IPCBUS_EFRAME ? "the broker sent a frame over the limit"
						     : "the broker sent a malformed frame length",
				  0);
			break;
		}
		c->in_need = 0;
		/* consumed first: the bytes stay where they are until the
		 * next read, which a nested dispatch does elsewhere */
		buf_consume(&c->in, (size_t)k);
		if (frame_decode(body, blen, &f) < 0) {
			conn_drop(c, IPCBUS_EPROTO, "the broker sent a frame that does not decode", 0);
			break;
		}
		conn_handle(c, &f);
	}
	c->in_depth--;
	if (c->in_gen == gen)
		c->in_pinned = was;
	if (c->in_depth == 0) {
		for (size_t i = 0; i < c->nretired; i++)
			free(c->retired[i]);
		c->nretired = 0;
		buf_shrink(&c->in, CONN_KEEP);
	}
}

static void conn_read(struct ipcbus *c)
{
	/* a datagram transport reads one datagram per call, so more calls */
	int rounds = c->dgram ? CONN_DGRAM_ROUNDS : CONN_READ_ROUNDS, heard = 0;

	c->in_more = 0;
	for (int round = 0; round < rounds && c->tr.fd >= 0; round++) {
		if (c->in_pinned && conn_in_retire(c, 1) < 0)
			break; /* out of memory: try again later */
		size_t len = buf_len(&c->in), want = CONN_READ_CHUNK;
		if (c->dgram)
			want = TR_DGRAM_ROOM; /* room for the largest datagram */
		else if (c->in_need > len && c->in_need - len > want)
			want = c->in_need - len;
		if (want > c->in.max - len)
			want = c->in.max - len; /* > 0: frame_split bounds what stays */
		int rc = buf_reserve(&c->in, want);
		if (rc < 0) {
			conn_drop(c, rc, "no memory for the input buffer", 0);
			return;
		}
		ssize_t n = c->tr.ops->read(&c->tr, buf_wptr(&c->in), want);
		if (n < 0) {
			if (n != -EAGAIN)
				conn_drop(c, (int)n, conn_tr_errtext(c), 0);
			else if ((rc = conn_watch(c, 0)) < 0) /* a TLS read may wait to write */
				conn_drop(c, rc, NULL, 0);
			else
				break;
			return;
		}
		if (n == 0) {
			conn_drop(c, IPCBUS_EDISCONNECTED, "the broker closed the connection", 0);
			return;
		}
		heard = 1;
		buf_commit(&c->in, (size_t)n);
		conn_process(c);
		if (c->dgram) {
			if (round + 1 == rounds)
				c->in_more = 1; /* the rest at the next dispatch */
			continue;
		}
		if ((size_t)n < want && !conn_tr_pending(c))
			break;
		c->in_more = 1;
	}
	if (heard)
		c->last_rx = conn_now();
}

/* --- driving --- */

/* The transport's periodic check (tr_ops.tick) while a connection is up. */
static void conn_tick(struct ipcbus *c)
{
	char err[sizeof c->last_error];

	c->tick_at = 0;
	if (c->state != CONN_HELLO && c->state != CONN_READY)
		return;
	/* A medium that needs a tick reports no stall of its own (a SysV
	 * queue has no end and no timeout): a frame the broker began and
	 * left unfinished would hold its bytes and the connection for ever.
	 * Nothing more of it for as long as the broker gives a client to
	 * finish one (its HELLO deadline: 10 s, or the ping-interval when
	 * shorter) ends the connection. */
	int64_t limit = CONN_FRAME_MS;
	if (c->ping_interval_ms && c->ping_interval_ms < limit)
		limit = c->ping_interval_ms;
	if (c->in_need && buf_len(&c->in) && conn_now() - c->last_rx > limit) {
		snprintf(err, sizeof err, "the broker left a frame unfinished (%zu of %zu bytes) for %lld ms",
			 buf_len(&c->in), c->in_need, (long long)limit);
		conn_drop(c, IPCBUS_EPROTO, err, 0);
		return;
	}
	err[0] = 0;
	int rc = c->tr.ops->tick(&c->tr, err, sizeof err);
	if (rc < 0) {
		conn_drop(c, rc, err[0] ? err : NULL, 0);
		return;
	}
	c->tick_at = conn_now() + c->tr.ops->tick_ms;
}

/* A write failed (pending_err): drop the connection.  When the broker
 * closed it (EPIPE, ECONNRESET), it usually said why first -- a full broker
 * refuses a new connection with ERR E_MAX_CONNECTIONS before it even reads
 * the HELLO, a slow or idle client gets its ERR before the close -- so read
 * what is left in the socket first: an ERR there drops the connection with
 * the broker's code and text.  The peer is gone, so this ends (EOF). */
static void conn_write_failed(struct ipcbus *c)
{
	int err = c->pending_err;

	if ((err == -EPIPE || err == -ECONNRESET) &&
	    (c->state == CONN_HELLO || c->state == CONN_READY)) {
		do
			conn_read(c);
		while (c->pending_err && c->tr.fd >= 0 && c->in_more);
	}
	if (c->pending_err) /* conn_drop() clears it */
		conn_drop(c, c->pending_err, conn_tr_errtext(c), 0);
}

/* The work of a dispatch; may_read 0 skips the read when nothing says the
 * socket has data (saves a recv() that would say EAGAIN). */
static int conn_work(struct ipcbus *c, int may_read)
{
	uint64_t before = c->delivered;

	if (c->state == CONN_CLOSED)
		return c->closed_err;
	if (c->pending_err)
		conn_write_failed(c);
	if (c->state == CONN_WAIT && conn_now() >= c->reconnect_at) {
		if (conn_open(c) < 0)
			conn_schedule(c);
	}
	if (c->state == CONN_OPENING)
		conn_check_open(c);
	if ((c->state == CONN_OPENING || c->state == CONN_HELLO) &&
	    conn_now() >= c->hello_deadline)
		conn_drop(c, IPCBUS_ETIMEOUT,
			  c->state == CONN_OPENING
				  ? "the connection to the broker was not set up in time "
				    "(TCP connect or TLS handshake)"
				  : "no WELCOME from the broker in time",
			  0);
	if (may_read && (c->state == CONN_HELLO || c->state == CONN_READY))
		conn_read(c);
	if (c->tick_at && conn_now() >= c->tick_at)
		conn_tick(c);
	if (c->dgram)
		dgram_tick(c);
	req_expire(c);
	sub_deliver_held(c);
	if (buf_len(&c->out))
		conn_write(c);
	if (c->pending_err)
		conn_write_failed(c);
	if (c->dgram)
		dgram_report(c);
	if (c->state == CONN_CLOSED && c->delivered == before)
		return c->closed_err;
	uint64_t n = c->delivered - before;
	return n > INT_MAX ? INT_MAX : (int)n;
}

int conn_dispatch(struct ipcbus *c)
{
	return conn_work(c, 1);
}

int conn_run(struct ipcbus *c, int timeout_ms, int (*done)(struct ipcbus *, void *), void *arg)
{
	int64_t deadline = timeout_ms < 0 ? -1 : conn_now() + timeout_ms;
	/* read first only when the last read left more behind; otherwise the
	 * (level-triggered) epoll_wait below says when there is something */
	int may_read = c->in_more || conn_tr_pending(c);

	for (;;) {
		int n = conn_work(c, may_read);
		if (n < 0)
			return n;
		if (done(c, arg))
			return 0;
		int t = ipcbus_timeout(c);
		if (deadline >= 0) {
			int64_t left = deadline - conn_now();
			if (left <= 0)
				return IPCBUS_ETIMEOUT;
			if (t < 0 || t > left)
				t = (int)left;
		}
		struct epoll_event ev;
		int k = epoll_wait(c->epfd, &ev, 1, t);
		if (k < 0 && errno == EINTR)
			return -EINTR;
		may_read = k != 0 || conn_tr_pending(c);
	}
}

/* --- the public calls of the connection --- */

static int conn_ready_or_closed(struct ipcbus *c, void *arg)
{
	return c->state == CONN_READY || c->state == CONN_CLOSED;
}

static char *conn_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void conn_free(struct ipcbus *c)
{
	conn_close_tr(c);
	dgram_reset(c);
	if (c->tr.ops && c->tr.ops->fini)
		c->tr.ops->fini(&c->tr);
	if (c->epfd >= 0)
		close(c->epfd);
	buf_fini(&c->in);
	buf_fini(&c->out);
	buf_fini(&c->pend);
	for (size_t i = 0; i < c->nretired; i++)
		free(c->retired[i]);
	free(c->retired);
	sub_fini(c);
	idmap_fini(&c->reqs);
	free(c->heap);
	free(c->name);
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	free(c->token);
	free(c->token_file);
	free(c);
}

/* The options as the program gave them, into c->opts.  A program built
 * against an older header passes a smaller struct (its size), one built
 * against a newer header a larger one: the fields this library does not
 * know must then be zero (their defaults), else -E2BIG, rather than
 * ignoring an option the program asked for (c->opts holds the known fields
 * even then, for on_event).  size 0 (ipcbus_opts o = {0}, memset) is the
 * first sized layout, CONN_OPTS_V1, which every later header begins with.
 * 0, -E2BIG, or -EINVAL (a size smaller than any layout). */
#define CONN_OPTS_V1 (offsetof(ipcbus_opts, event_arg) + sizeof(void *))
_Static_assert(CONN_OPTS_V1 <= sizeof(ipcbus_opts), "the first layout is a prefix");

static int conn_opts(struct ipcbus *c, const ipcbus_opts *o)
{
	size_t n = o ? o->size : sizeof *o;

	memset(&c->opts, 0, sizeof c->opts);
	if (n == 0)
		n = CONN_OPTS_V1;
	if (n < CONN_OPTS_V1)
		return -EINVAL;
	if (o)
		memcpy(&c->opts, o, n < sizeof c->opts ? n : sizeof c->opts);
	c->opts.size = sizeof c->opts;
	for (size_t i = sizeof c->opts; i < n; i++)
		if (((const unsigned char *)o)[i])
			return -E2BIG;
	return 0;
}

int ipcbus_connect(ipcbus **out, const char *url, const ipcbus_opts *opts)
{
	char err[sizeof ((struct ipcbus *)0)->last_error];
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	struct ipcbus *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->tr.fd = c->epfd = c->ep_fd = -1;
	rc = conn_opts(c, opts);
	if (rc == -EINVAL) {
		free(c); /* not even on_event can be trusted */
		return rc;
	}
	if (rc < 0) {
		snprintf(c->last_error, sizeof c->last_error,
			 "the program sets options this library (%s) does not know (%zu bytes "
			 "of options, it knows %zu)",
			 ipcbus_version(), opts->size, sizeof *opts);
		c->opts.on_event = opts->on_event;
		c->opts.event_arg = opts->event_arg;
	}
	if (c->opts.connect_timeout_ms <= 0)
		c->opts.connect_timeout_ms = 5000;
	if (c->opts.reconnect_buffer == 0)
		c->opts.reconnect_buffer = 8 * 1024 * 1024;
	if (c->opts.reconnect_min_ms <= 0)
		c->opts.reconnect_min_ms = 50;
	if (c->opts.reconnect_max_ms <= 0)
		c->opts.reconnect_max_ms = 2000;
	if (c->opts.reconnect_max_ms < c->opts.reconnect_min_ms)
		c->opts.reconnect_max_ms = c->opts.reconnect_min_ms;
	if (c->opts.max_queued == 0)
		c->opts.max_queued = 64 * 1024 * 1024;
	c->backoff_ms = c->opts.reconnect_min_ms;
	c->write_mark = CONN_WRITE_CHUNK;
	c->next_id = 1;
	c->qtail = &c->qhead;
	c->dtail = &c->dhead;
	buf_init(&c->in, CONN_IN_MAX(CONN_FRAME_DEFAULT));
	buf_init(&c->out, SIZE_MAX / 4);
	buf_init(&c->pend, c->opts.reconnect_buffer);
	idmap_init(&c->subs);
	idmap_init(&c->reqs);
	idmap_init(&c->acks);
	c->ack_wait_tail = &c->ack_wait;
	conn_random(&c->rng, sizeof c->rng);
	c->rng |= 1; /* xorshift must not start at 0 */
	if (rc < 0)
		goto fail;

	const char *env = getenv("IPCBUS_URL");
	if (url) {
		rc = snprintf(c->url, sizeof c->url, "%s", url) >= (int)sizeof c->url ? IPCBUS_EURL : 0;
	} else {
		/* the same test as url_default_client(): an empty $IPCBUS_URL
		 * is none */
		c->defpath = env && *env ? 0 : 1;
		rc = url_default_client(c->url, sizeof c->url);
	}
	err[0] = 0;
	if (rc < 0 || url_parse(c->url, &c->u, err, sizeof err) < 0) {
		rc = IPCBUS_EURL;
		if (err[0])
			conn_set_text(c, err, strlen(err));
		goto fail;
	}
	if (c->defpath) {
		/* the user's own path, or the system broker's (root's) */
		char mine[sizeof c->url];
		if (geteuid() == 0 || url_default_listen(mine, sizeof mine) < 0 ||
		    strcmp(mine + strlen("unix://"), c->u.path) != 0)
			c->defpath = 2;
	}
	c->tr.ops = tr_find(c->u.kind);
	c->dgram = c->tr.ops && (c->tr.ops->flags & TR_DGRAM);
	if (!c->tr.ops) {
		char shown[sizeof c->url];
		url_redact(c->url, shown, sizeof shown);
		snprintf(c->last_error, sizeof c->last_error,
			 "%.300s: %s:// is not supported by this client yet (it speaks %s)", shown,
			 url_scheme(c->u.kind), tr_schemes());
		rc = IPCBUS_EURL;
		goto fail;
	}
	/* the token: the URL's, the program's, the environment's, or the
	 * file's (read at each attempt, conn_open); none over a local
	 * transport, where the socket's permissions decide */
	const char *token = NULL, *token_file = NULL;
	if (c->tr.ops->flags & TR_REMOTE) {
		const char *et = getenv("IPCBUS_TOKEN"), *ef = getenv("IPCBUS_TOKEN_FILE");
		token = c->u.has_token ? c->u.token
			: c->opts.token ? c->opts.token
			: et && *et     ? et
					: NULL;
		if (!token && ef && *ef)
			token_file = ef;
	}
	c->name = conn_strdup(c->opts.name ? c->opts.name : program_invocation_short_name);
	c->token = conn_strdup(token);
	c->token_file = conn_strdup(token_file);
	if ((!c->name && (c->opts.name || program_invocation_short_name)) ||
	    (!c->token && token) || (!c->token_file && token_file)) {
		rc = -ENOMEM;
		goto fail;
	}
	c->opts.name = c->name;
	c->opts.token = NULL; /* the program's string is borrowed: c->token */
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0) {
		rc = -errno;
		goto fail;
	}
	c->state = CONN_WAIT;
	rc = conn_open(c);
	if (rc < 0)
		goto fail;
	rc = conn_run(c, c->opts.connect_timeout_ms, conn_ready_or_closed, NULL);
	if (rc == 0 && c->state != CONN_READY)
		rc = c->closed_err;
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	/* the broker's text, or ours: the program has no connection to ask */
	conn_event(c, IPCBUS_EV_CONNECT_FAILED, rc, c->last_error[0] ? c->last_error
								    : ipcbus_strerror(rc));
	conn_free(c);
	return rc;
}

void ipcbus_close(ipcbus *c)
{
	if (!c)
		return;
	if (c->state == CONN_READY)
		conn_write(c); /* best effort, without waiting */
	c->state = CONN_CLOSED;
	c->closed_err = IPCBUS_ECLOSED;
	req_fail_all(c, IPCBUS_ECLOSED);
	conn_free(c);
}

const char *ipcbus_url(const ipcbus *c)
{
	return c ? c->url : "";
}

const char *ipcbus_last_error(const ipcbus *c)
{
	return c ? c->last_error : "";
}

int ipcbus_connected(const ipcbus *c)
{
	return c && c->state == CONN_READY;
}

uint64_t ipcbus_max_payload(const ipcbus *c)
{
	return c ? c->max_payload : 0;
}

int ipcbus_fd(const ipcbus *c)
{
	return c ? c->epfd : -EINVAL;
}

int ipcbus_timeout(const ipcbus *c)
{
	int64_t t = -1;

	if (!c)
		return -1;
	/* closed, or something to do now: come back at once */
	if (c->state == CONN_CLOSED || c->pending_err)
		return 0;
	if (c->state == CONN_READY && buf_len(&c->out) && !c->wr_blocked)
		return 0;
	if ((c->state == CONN_HELLO || c->state == CONN_READY) && conn_tr_pending(c))
		return 0;
	if (c->state == CONN_WAIT)
		t = c->reconnect_at;
	else if (c->state == CONN_OPENING || c->state == CONN_HELLO)
		t = c->hello_deadline;
	if (c->tick_at && (c->state == CONN_HELLO || c->state == CONN_READY) &&
	    (t < 0 || c->tick_at < t))
		t = c->tick_at;
	if (c->dgram) {
		/* resends, keepalive, the broker's silence */
		int64_t g = dgram_deadline(c);
		if (g >= 0 && (t < 0 || g < t))
			t = g;
	}
	int64_t d = req_next_deadline(c);
	if (d >= 0 && (t < 0 || d < t))
		t = d;
	if (t < 0)
		return -1;
	t -= conn_now();
	return t <= 0 ? 0 : t > INT_MAX ? INT_MAX : (int)t;
}

int ipcbus_dispatch(ipcbus *c)
{
	return c ? conn_dispatch(c) : -EINVAL;
}

static int conn_got_some(struct ipcbus *c, void *arg)
{
	return c->delivered != *(uint64_t *)arg;
}

int ipcbus_wait(ipcbus *c, int timeout_ms)
{
	if (!c)
		return -EINVAL;
	uint64_t before = c->delivered;
	int rc = conn_run(c, timeout_ms, conn_got_some, &before);
	if (rc < 0)
		return rc;
	uint64_t n = c->delivered - before;
	return n > INT_MAX ? INT_MAX : (int)n;
}

struct conn_flush {
	uint64_t id, epoch;
};

static int conn_flush_done(struct ipcbus *c, void *arg)
{
	struct conn_flush *w = arg;
	/* over datagrams, also the answers to the SUBs and UNSUBs before it:
	 * the PONG alone says nothing of frames that may have been lost */
	return c->epoch != w->epoch ||
	       (c->pong_last >= w->id && !(c->dgram && dgram_pending_before(c, w->id)));
}

int ipcbus_flush(ipcbus *c, int timeout_ms)
{
	if (!c)
		return -EINVAL;
	if (c->state == CONN_CLOSED)
		return c->closed_err;
	if (c->state != CONN_READY)
		return IPCBUS_EDISCONNECTED;
	struct conn_flush w = {.id = c->next_id++, .epoch = c->epoch};
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = w.id};
	/* over datagrams the PING is resent until its PONG comes */
	int rc = c->dgram ? dgram_send(c, IPCBUS__FRAME_TYPE__PING, w.id, 0, 1)
			  : frame_append(&c->out, &f, NULL, 0);
	if (rc < 0)
		return rc;
	conn_write(c);
	rc = conn_run(c, timeout_ms, conn_flush_done, &w);
	if (rc < 0)
		return rc;
	if (c->epoch != w.epoch)
		return IPCBUS_EDISCONNECTED;
	rc = c->first_err;
	c->first_err = 0;
	return rc;
}
