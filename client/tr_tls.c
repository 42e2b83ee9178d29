/*
 * tr_tls.c: tls://host:port, TCP with TLS (proto/tls.c, OpenSSL).  The TCP
 * connect is tr_tcp.c's (proto/net.c's dial); then the handshake runs in
 * non-blocking steps inside connected(), so it counts against the
 * session's connect and HELLO timeouts and a broker that stalls in it
 * holds the program up no longer than a silent one.
 *
 * What is trusted, at every attempt (so that a reconnect picks up files
 * that were replaced meanwhile): the CA file of the URL's ca=, else
 * $IPCBUS_TLS_CA, else the system's store; the broker's certificate must
 * be signed by it, be valid now and name the URL's host (a DNS name, or
 * the IP address in its subjectAltName).  A client certificate and key for
 * mutual TLS come from cert= and key=, else $IPCBUS_TLS_CERT and
 * $IPCBUS_TLS_KEY (both or neither).  TLS 1.2 at least.
 *
 * Every failure says what to do about it: a certificate not accepted (and
 * why: expired, untrusted, for another name), a peer that does not speak
 * TLS (a tcp:// port), a broker that refused our certificate or wants one,
 * a file that cannot be read.  The code is IPCBUS_ETLS; the text is the
 * connect's err, or errtext() for a refusal that arrives with the first
 * read (TLS 1.3 ends the client's handshake before the broker has checked
 * its certificate).  Whether to try again is the session's business: the
 * first connect fails for good, a reconnect backs off and retries (a
 * broker's certificate may be replaced while it restarts).
 *
 * Writes go through proto/tls.c's BIO, which sends with MSG_NOSIGNAL:
 * never SIGPIPE.  SSL_read may need to write and SSL_write to read, so
 * want_read and want_write follow what OpenSSL asks for.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ipcbus.h"
#include "net.h"
#include "tls.h"
#include "tr.h"

/* priv: lives from the first connect() to fini() */
struct tr_tls {
	struct net_dial d;     /* the TCP connect under way */
	struct tls_ctx *ctx;   /* this attempt's: CA, our certificate */
	struct tls *s;         /* the session, once TCP is connected */
	int ready;             /* the handshake is done */
	const char *cert;      /* this attempt's client certificate, or NULL */
	char host[256];        /* what the certificate must name (no %scope) */
	char peer[NET_ADDRSTRLEN + 256]; /* "host:port" for messages */
	char trust[1100];      /* where the CAs came from, for messages */
	char err[512];         /* the text of the last read or write failure */
};

/* A URL option, else the environment's, else NULL. */
static const char *tr_tls_opt(const char *val, const char *env)
{
	if (val[0])
		return val;
	const char *e = getenv(env);
	return e && *e ? e : NULL;
}

/* Can file be read?  0, or IPCBUS_ETLS with the reason in err. */
static int tr_tls_readable(const char *what, const char *file, char *err, size_t errlen)
{
	if (access(file, R_OK) == 0)
		return 0;
	snprintf(err, errlen, "TLS: %s %s: %s", what, file, strerror(errno));
	return IPCBUS_ETLS;
}

/* This attempt's context, from the URL and the environment.  0 or
 * IPCBUS_ETLS (-ENOMEM) with err. */
static int tr_tls_context(struct tr_tls *p, const struct url *u, char *err, size_t errlen)
{
	const char *ca = tr_tls_opt(u->ca, "IPCBUS_TLS_CA");
	const char *cert, *key;
	char why[400];
	int rc;

	tls_ctx_free(p->ctx);
	p->ctx = NULL;
	if (u->cert[0]) { /* url.c: cert= and key= together */
		cert = u->cert;
		key = u->key_file;
	} else {
		cert = tr_tls_opt("", "IPCBUS_TLS_CERT");
		key = tr_tls_opt("", "IPCBUS_TLS_KEY");
		if (!cert != !key) {
			snprintf(err, errlen,
				 "TLS: IPCBUS_TLS_%s is set but IPCBUS_TLS_%s is not: a client "
				 "certificate needs its key",
				 cert ? "CERT" : "KEY", cert ? "KEY" : "CERT");
			return IPCBUS_ETLS;
		}
	}
	if (ca)
		snprintf(p->trust, sizeof p->trust, "the CA file %s", ca);
	else
		snprintf(p->trust, sizeof p->trust, "the system's CA store");
	if ((ca && (rc = tr_tls_readable("CA file", ca, err, errlen)) < 0) ||
	    (cert && (rc = tr_tls_readable("certificate file", cert, err, errlen)) < 0) ||
	    (key && (rc = tr_tls_readable("key file", key, err, errlen)) < 0))
		return rc;
	why[0] = 0;
	rc = tls_ctx_client(&p->ctx, ca, cert, key, why, sizeof why);
	if (rc < 0) {
		snprintf(err, errlen, "TLS: %s", why[0] ? why : strerror(-rc));
		return rc == -ENOMEM ? rc : IPCBUS_ETLS;
	}
	p->cert = cert;
	return 0;
}

/* A failed handshake, read or write (rc from proto/tls.c) as a text that
 * says what to do; returns the code for the session. */
static int tr_tls_failed(struct tr_tls *p, int rc, char *err, size_t errlen)
{
	const char *why = tls_fail_reason(p->s);

	switch (tls_fail_kind(p->s)) {
	case TLS_FAIL_VERIFY:
		snprintf(err, errlen, "%s: the broker's certificate is not accepted: %s%s%s (checked against %s)",
			 p->peer, why,
			 strstr(why, "mismatch") ? ": it is not for " : "",
			 strstr(why, "mismatch") ? p->host : "", p->trust);
		break;
	case TLS_FAIL_NOT_TLS:
		snprintf(err, errlen,
			 "the broker at %s does not speak TLS (%s): is it a tcp:// port?", p->peer,
			 why);
		break;
	case TLS_FAIL_ALERT:
		if (strstr(why, "certificate required"))
			snprintf(err, errlen,
				 "the broker at %s refused the TLS handshake (%s): it requires a "
				 "client certificate (cert= and key=, or IPCBUS_TLS_CERT and "
				 "IPCBUS_TLS_KEY)",
				 p->peer, why);
		else if (p->cert && strstr(why, "certificate"))
			snprintf(err, errlen,
				 "the broker at %s refused the TLS handshake (%s): it did not accept "
				 "the client certificate %s",
				 p->peer, why, p->cert);
		else if (p->cert && strstr(why, "unknown ca"))
			snprintf(err, errlen,
				 "the broker at %s refused the TLS handshake (%s): it does not trust "
				 "the CA of the client certificate %s",
				 p->peer, why, p->cert);
		else
			snprintf(err, errlen, "the broker at %s refused the TLS handshake (%s)",
				 p->peer, why);
		break;
	case TLS_FAIL_CLOSED:
		snprintf(err, errlen, "the broker at %s closed the connection%s", p->peer,
			 p->ready ? "" : " during the TLS handshake");
		return rc;
	default:
		snprintf(err, errlen, "%s: TLS %s failed: %s", p->peer,
			 p->ready ? "connection" : "handshake", why);
		break;
	}
	return rc == TLS_EFAIL ? IPCBUS_ETLS : rc;
}

/* One step of the handshake: 0 done, -EAGAIN (want_*), or a failure. */
static int tr_tls_step(struct tr *t, char *err, size_t errlen)
{
	struct tr_tls *p = t->priv;
	int want = 0;
	int rc = tls_handshake(p->s, &want, NULL, 0);

	if (rc == 1) {
		p->ready = 1;
		tr_stream_ready(t);
		return 0;
	}
	if (rc == 0) {
		t->want_read = want == TLS_WANT_WRITE ? 0 : EPOLLIN;
		t->want_write = want == TLS_WANT_WRITE ? EPOLLOUT : 0;
		return -EAGAIN;
	}
	return tr_tls_failed(p, rc, err, errlen);
}

/* TCP is connected (t->fd): begin the handshake. */
static int tr_tls_start(struct tr *t, char *err, size_t errlen)
{
	struct tr_tls *p = t->priv;

	p->s = tls_new(p->ctx, t->fd, p->host);
	if (!p->s)
		return -ENOMEM;
	return tr_tls_step(t, err, errlen);
}

static int tr_tls_connect(struct tr *t, const struct url *u, char *err, size_t errlen)
{
	struct tr_tls *p = t->priv;
	int rc;

	if (!p) {
		p = calloc(1, sizeof *p);
		if (!p)
			return -ENOMEM;
		p->d.fd = -1;
		t->priv = p;
	}
	p->ready = 0;
	p->err[0] = 0;
	/* an IPv6 scope is the socket's business, not the certificate's */
	snprintf(p->host, sizeof p->host, "%.*s", (int)strcspn(u->host, "%"), u->host);
	snprintf(p->peer, sizeof p->peer, strchr(u->host, ':') ? "[%s]:%u" : "%s:%u", u->host,
		 (unsigned)u->port);
	rc = tr_tls_context(p, u, err, errlen);
	if (rc < 0)
		return rc;
	rc = net_dial_start(&p->d, u->host, u->port, SOCK_STREAM, err, errlen);
	if (rc == 0) {
		t->fd = net_dial_take(&p->d);
		return tr_tls_start(t, err, errlen);
	}
	if (rc == -EAGAIN) {
		t->fd = p->d.fd;
		t->want_read = 0;
		t->want_write = EPOLLOUT; /* a connect completes as writable */
	}
	return rc;
}

static int tr_tls_connected(struct tr *t, char *err, size_t errlen)
{
	struct tr_tls *p = t->priv;

	if (!p)
		return -ENOTCONN;
	if (p->d.fd >= 0) { /* still connecting TCP */
		int rc = net_dial_step(&p->d, err, errlen);
		t->fd = p->d.fd;
		if (rc < 0)
			return rc;
		t->fd = net_dial_take(&p->d);
		return tr_tls_start(t, err, errlen);
	}
	if (!p->s)
		return -ENOTCONN;
	return p->ready ? 0 : tr_tls_step(t, err, errlen);
}

static ssize_t tr_tls_read(struct tr *t, void *buf, size_t n)
{
	struct tr_tls *p = t->priv;
	int want = 0;
	ssize_t k = tls_read(p->s, buf, n, &want);

	if (k >= 0) {
		t->want_read = EPOLLIN;
		return k;
	}
	if (k == -EAGAIN) {
		/* a read may have to write first (a key update's answer) */
		t->want_read = want == TLS_WANT_WRITE ? EPOLLOUT : EPOLLIN;
		return -EAGAIN;
	}
	return tr_tls_failed(p, (int)k, p->err, sizeof p->err);
}

static int tr_tls_write(struct tr *t, struct buf *out)
{
	struct tr_tls *p = t->priv;

	while (buf_len(out) > 0) {
		/* the bytes at the front stay the same after -EAGAIN: what
		 * SSL_write needs from its retry (tr.h) */
		struct iovec v = {.iov_base = buf_rptr(out), .iov_len = buf_len(out)};
		int want = 0;
		ssize_t k = tls_writev(p->s, &v, 1, &want);
		if (k > 0) {
			buf_consume(out, (size_t)k);
			continue;
		}
		if (k == -EAGAIN) {
			t->want_write = want == TLS_WANT_READ ? EPOLLIN : EPOLLOUT;
			return -EAGAIN;
		}
		return tr_tls_failed(p, (int)k, p->err, sizeof p->err);
	}
	t->want_write = EPOLLOUT;
	return 0;
}

static size_t tr_tls_pending(const struct tr *t)
{
	const struct tr_tls *p = t->priv;
	return p && p->ready && tls_pending(p->s) ? 1 : 0;
}

static const char *tr_tls_errtext(const struct tr *t)
{
	const struct tr_tls *p = t->priv;
	return p && p->err[0] ? p->err : NULL;
}

static void tr_tls_close(struct tr *t)
{
	struct tr_tls *p = t->priv;

	if (p) {
		if (p->s) {
			if (p->ready)
				tls_shutdown(p->s); /* close_notify, without waiting */
			tls_free(p->s);
			p->s = NULL;
		}
		p->ready = 0;
		tls_ctx_free(p->ctx);
		p->ctx = NULL;
		if (p->d.fd == t->fd)
			p->d.fd = -1; /* the same socket: closed once, below */
		net_dial_fini(&p->d);
	}
	tr_stream_close(t);
}

static void tr_tls_fini(struct tr *t)
{
	free(t->priv);
	t->priv = NULL;
}

const struct tr_ops tr_tls_ops = {
	.kind = URL_TLS,
	.flags = TR_REMOTE,
	.connect = tr_tls_connect,
	.connected = tr_tls_connected,
	.read = tr_tls_read,
	.write = tr_tls_write,
	.pending = tr_tls_pending,
	.errtext = tr_tls_errtext,
	.close = tr_tls_close,
	.fini = tr_tls_fini,
};
