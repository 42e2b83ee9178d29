/*
 * tr_tls.c: TCP with TLS.  Listening is tr_tcp.c's, the stream is
 * tr_stream.c's; this file only puts a TLS session (proto/tls.c) between
 * the stream and the socket, as a struct stream_io.  The handshake runs
 * inside the loop, a step each time the socket is ready, so a client that
 * stalls in it holds nobody up and is dropped at the HELLO deadline like
 * any silent client.
 *
 * Dialing out (a bridge) is tr_stream.c's TCP dial with a client session
 * on top: a context of the dial's own from the URL's ca= (else the
 * system's store) and cert=/key=, made at each dial so that a reconnect
 * reads files replaced meanwhile, and freed once the handshake is done (the
 * session keeps its own reference) or with the connection.  The handshake
 * runs in the io's handshake(), a step per event, inside the HELLO
 * deadline; the peer's certificate must be signed by that CA, be valid and
 * name the URL's host (proto/tls.c).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "broker.h"
#include "conn.h"
#include "tls.h"
#include "transport.h"

/* The first two bytes of every TLS record that opens a handshake: its
 * content type and the major version, 3.  A frame may begin with 0x16 too
 * (a frame of 22 bytes: a HELLO with a short name), but never with 0x16
 * 0x03: its first field tag would be field 0. */
#define TLS_HANDSHAKE_RECORD 0x16
#define TLS_MAJOR 0x03

struct tls_listener {
	struct listener l;
	struct tls_ctx *ctx;
};

/* A dialed session's until its handshake is done. */
struct tls_dial {
	struct tls_ctx *ctx; /* the client context, this dial's own */
	char host[256];      /* what the certificate must name (no %scope) */
	char trust[1100];    /* where the CAs came from, for messages */
};

struct tls_sess {
	struct tls *t;
	int started; /* the first bytes were looked at */
	int done;    /* handshake finished */
	struct tls_dial *dial; /* dialed, handshake not done; else NULL */
};

static void tlsio_want(struct conn *c, int want)
{
	int out = want == TLS_WANT_WRITE;
	if (out != c->io_want_out) {
		c->io_want_out = out;
		conn_watch(c);
	}
}

/* A peer that speaks the plain protocol to a TLS port is told so in its
 * own language, then closed. */
static int tlsio_plain_peer(struct conn *c)
{
	uint8_t first[2];
	ssize_t k = recv(c->fd, first, 2, MSG_PEEK);
	/* one byte alone, 0x16: most likely TLS, and OpenSSL waits for the
	 * rest without the loop spinning on a byte left unread */
	if (k < 1 || (first[0] == TLS_HANDSHAKE_RECORD && (k == 1 || first[1] == TLS_MAJOR)))
		return 0;
	struct tls_sess *s = c->tp;
	tls_free(s->t);
	free(s);
	c->tp = NULL;
	c->io = NULL;
	c->io_want_out = 0;
	conn_error(c, 0, IPCBUS__ERR_CODE__E_PROTOCOL, 2,
		   "this port speaks TLS: connect with tls://, not tcp://");
	return 1;
}

static ssize_t tlsio_recv(struct conn *c, void *p, size_t n)
{
	struct tls_sess *s = c->tp;
	int want = 0;

	if (!s->done) {
		char err[256];
		/* only the very first record tells: later ones of the
		 * handshake are not handshake records in TLS 1.3 */
		if (!s->started) {
			uint8_t first;
			if (recv(c->fd, &first, 1, MSG_PEEK) != 1)
				return -EAGAIN;
			s->started = 1;
			if (tlsio_plain_peer(c))
				return -EPROTO;
		}
		int rc = tls_handshake(s->t, &want, err, sizeof err);
		if (rc < 0) {
			auth_refused(c, err);
			return -EPROTO;
		}
		if (rc == 0) {
			tlsio_want(c, want);
			return -EAGAIN;
		}
		s->done = 1;
		if (tls_peer_name(s->t, c->cert_name, sizeof c->cert_name) < 0)
			c->cert_name[0] = 0;
		tls_describe(s->t, err, sizeof err);
		log_debug(&c->b->log, "%s: TLS established (%s)", c->desc, err);
	}
	ssize_t k = tls_read(s->t, p, n, &want);
	tlsio_want(c, k == -EAGAIN ? want : 0);
	if (k == TLS_EFAIL) {
		log_info(&c->b->log, "%s: %s", c->desc, tls_error(s->t));
		return -EPROTO;
	}
	return k;
}

static ssize_t tlsio_sendv(struct conn *c, const struct iovec *iov, int n)
{
	struct tls_sess *s = c->tp;
	int want = 0;
	ssize_t k = tls_writev(s->t, iov, n, &want);
	if (k == -EAGAIN && want == TLS_WANT_READ)
		tlsio_want(c, want);
	if (k == TLS_EFAIL) {
		log_info(&c->b->log, "%s: %s", c->desc, tls_error(s->t));
		return -EPROTO;
	}
	return k;
}

static int tlsio_pending(struct conn *c)
{
	struct tls_sess *s = c->tp;
	return s->done && tls_pending(s->t);
}

static void tlsio_shutdown(struct conn *c)
{
	struct tls_sess *s = c->tp;
	tls_shutdown(s->t);
}

static void tls_dial_free(struct tls_sess *s)
{
	if (s->dial) {
		tls_ctx_free(s->dial->ctx);
		free(s->dial);
		s->dial = NULL;
	}
}

static void tlsio_fini(struct conn *c)
{
	struct tls_sess *s = c->tp;
	if (s) {
		tls_free(s->t);
		tls_dial_free(s);
		free(s);
	}
	c->tp = NULL;
}

/* A failed client handshake as a text for conn_close(). */
static void tls_dial_failed(struct conn *c, struct tls_sess *s, char *err, size_t n)
{
	const char *why = tls_fail_reason(s->t);

	switch (tls_fail_kind(s->t)) {
	case TLS_FAIL_VERIFY: {
		int name = strstr(why, "mismatch") != NULL;
		snprintf(err, n, "TLS: certificate verify failed: %s%s%s (%s, checked against %s)",
			 why, name ? ": it is not for " : "", name ? s->dial->host : "", c->addr,
			 s->dial->trust);
		break;
	}
	case TLS_FAIL_ALERT:
		snprintf(err, n, "TLS: %s refused the handshake (%s)%s", c->addr, why,
			 strstr(why, "certificate required")
				 ? ": it wants a client certificate (cert= and key=)"
				 : "");
		break;
	default: /* not TLS ("wrong version number"), closed, ... */
		snprintf(err, n, "TLS handshake with %s: %s", c->addr, why);
		break;
	}
}

/* A dialed connection's socket is connected: the client's handshake. */
static int tlsio_handshake(struct conn *c, char *err, size_t n)
{
	struct tls_sess *s = c->tp;
	int want = 0;

	if (!s->t && !(s->t = tls_new(s->dial->ctx, c->fd, s->dial->host))) {
		snprintf(err, n, "TLS: out of memory");
		return -ENOMEM;
	}
	int rc = tls_handshake(s->t, &want, NULL, 0);
	if (rc == 0) {
		tlsio_want(c, want);
		return 0;
	}
	if (rc < 0) {
		tls_dial_failed(c, s, err, n);
		return rc;
	}
	s->started = s->done = 1;
	tls_dial_free(s);
	char how[256];
	tls_describe(s->t, how, sizeof how);
	log_debug(&c->b->log, "%s: TLS established (%s)", c->desc, how);
	return 1;
}

static const struct stream_io tls_stream_io = {
	.recv = tlsio_recv,
	.sendv = tlsio_sendv,
	.pending = tlsio_pending,
	.shutdown = tlsio_shutdown,
	.fini = tlsio_fini,
	.handshake = tlsio_handshake,
};

static int tls_listen(struct broker *b, const struct url *u, struct listener **out, char *err,
		      size_t errlen)
{
	const struct conf *cfg = &b->cfg;

	if (!cfg->tls_cert || !cfg->tls_key) {
		snprintf(err, errlen, "tls:// needs tls-cert and tls-key in the configuration");
		return -EINVAL;
	}
	struct tls_listener *tl = calloc(1, sizeof *tl);
	if (!tl)
		return -ENOMEM;
	tl->l.tr = &transport_tls;
	int rc = tls_ctx_server(&tl->ctx, cfg->tls_cert, cfg->tls_key, cfg->tls_ca, err, errlen);
	if (rc == 0 && (rc = tcp_listen_on(b, u, &tl->l, err, errlen)) < 0)
		tls_ctx_free(tl->ctx);
	if (rc < 0) {
		free(tl);
		return rc;
	}
	*out = &tl->l;
	return 0;
}

static void tls_unlisten(struct listener *l)
{
	struct tls_listener *tl = (struct tls_listener *)l;
	tcp_unlisten(l);
	/* sessions still open hold their own reference to the context */
	tls_ctx_free(tl->ctx);
	tl->ctx = NULL;
}

static int tls_adopt(struct conn *c)
{
	struct tls_listener *tl = (struct tls_listener *)c->listener;
	int rc = tcp_adopt(c);
	if (rc < 0)
		return rc;
	struct tls_sess *s = calloc(1, sizeof *s);
	if (!s || !(s->t = tls_new(tl->ctx, c->fd, NULL))) {
		free(s);
		return -ENOMEM;
	}
	c->tp = s;
	c->io = &tls_stream_io;
	return 0;
}

static int tls_dial(struct broker *b, const struct url *u, struct conn **out, char *err,
		    size_t errlen)
{
	const char *ca = u->ca[0] ? u->ca : NULL;
	const char *cert = u->cert[0] ? u->cert : NULL; /* url.c: with key= */
	char why[400];
	struct conn *c;
	int rc;

	struct tls_sess *s = calloc(1, sizeof *s);
	struct tls_dial *d = s ? calloc(1, sizeof *d) : NULL;
	if (!d) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->dial = d;
	why[0] = 0;
	rc = tls_ctx_client(&d->ctx, ca, cert, cert ? u->key_file : NULL, why, sizeof why);
	if (rc < 0) {
		/* a file that is not there or not PEM: fix the URL */
		snprintf(err, errlen, "TLS: %s", why[0] ? why : strerror(-rc));
		rc = rc == -ENOMEM ? rc : -EINVAL;
		goto fail;
	}
	/* an IPv6 scope is the socket's business, not the certificate's */
	snprintf(d->host, sizeof d->host, "%.*s", (int)strcspn(u->host, "%"), u->host);
	if (ca)
		snprintf(d->trust, sizeof d->trust, "the CA file %s", ca);
	else
		snprintf(d->trust, sizeof d->trust, "the system's CA store");
	if ((rc = stream_dial(b, u, &c, err, errlen)) < 0)
		goto fail;
	/* before the loop runs again: the handshake starts once TCP is up */
	c->tp = s;
	c->io = &tls_stream_io;
	*out = c;
	return 0;
fail:
	tls_dial_free(s);
	free(s);
	return rc;
}

const struct transport transport_tls = {
	.scheme = "tls",
	.network = 1,
	.listen = tls_listen,
	.unlisten = tls_unlisten,
	.adopt = tls_adopt,
	.dial = tls_dial,
};
