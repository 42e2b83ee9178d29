/*
 * conn.c: the connection of libipcbus: connecting (the transport, HELLO and
 * the token), writing, losing the connection and reconnecting, the options,
 * and the public calls that open, close and describe a connection.  Reading
 * and the frame switch are conn_in.c's; the work of a dispatch, blocking
 * waits and timeouts conn_wait.c's.
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
 * A failed ipcbus_connect() hands its text to on_event
 * (IPCBUS_EV_CONNECT_FAILED), there being no connection to ask.
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
 * What a datagram transport (TR_DGRAM: udp) needs beyond framing (the
 * cookie, resending HELLO, SUB, UNSUB and the flush PING, the lease) is
 * dgram.c's, called at HELLO (here), at ERR, PONG and WELCOME (conn_in.c),
 * at each dispatch (dgram_tick) and in ipcbus_timeout() (conn_wait.c).
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
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
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

#define CONN_WRITE_CHUNK (64 * 1024)
#define CONN_OUT_HIGH (4 * 1024 * 1024) /* a publisher waits for the socket past this */
#define CONN_FRAME_DEFAULT (1024 * 1024 + 64 * 1024 + 1024)
#define CONN_TOKEN_MAX 1024             /* bytes of a token from a file */

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

void conn_set_text(struct ipcbus *c, const void *p, size_t n)
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
int conn_watch(struct ipcbus *c, int force)
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
const char *conn_tr_errtext(const struct ipcbus *c)
{
	return c->tr.ops->errtext ? c->tr.ops->errtext(&c->tr) : NULL;
}

/* Bytes the transport holds that its descriptor does not announce. */
int conn_tr_pending(const struct ipcbus *c)
{
	return c->tr_open && c->tr.ops->pending && c->tr.ops->pending(&c->tr) > 0;
}

static short conn_poll_events(uint32_t ev)
{
	return (short)((ev & EPOLLIN ? POLLIN : 0) | (ev & EPOLLOUT ? POLLOUT : 0));
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

void conn_schedule(struct ipcbus *c)
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
int conn_open(struct ipcbus *c)
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
void conn_check_open(struct ipcbus *c)
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
