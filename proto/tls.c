/*
 * tls.c: TLS over a non-blocking socket through OpenSSL (see tls.h).
 *
 * The socket is reached through a BIO of our own (tls_bio_*), not
 * OpenSSL's socket BIO: that one writes with write(2), which raises
 * SIGPIPE when the peer has gone, and a library must never change or
 * depend on the program's signal handling.  Ours sends with MSG_NOSIGNAL
 * and is otherwise what the socket BIO is (retry flags from errno, an EOF
 * flag for SSL_OP_IGNORE_UNEXPECTED_EOF).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

struct tls_ctx {
	SSL_CTX *ctx;
	int server;
};

/* Plain bytes per SSL_write: one record's worth at most
 * (SSL3_RT_MAX_PLAIN_LENGTH), which also keeps OpenSSL from writing several
 * records in one go (its multiblock writes of 64 KiB and more). */
#define TLS_CHUNK 16384

struct tls {
	SSL *ssl;
	char err[256];
	/* A write that OpenSSL could not finish (WANT_WRITE) must be retried
	 * with the same bytes: they are copied here and written first by the
	 * next tls_writev, so that the caller's output may change meanwhile.
	 * owed: how many of them (0 or 1) the caller was told are not taken
	 * and presents again (tls.h). */
	uint8_t *stage;
	size_t stage_len, owed;
	int fail;         /* enum tls_fail of the last failure */
	char reason[160]; /* its short reason */
};

/* ---- the socket BIO: send(MSG_NOSIGNAL) ---- */

/* BIO data: the descriptor (borrowed) and whether it reached its end */
struct tls_bio {
	int fd;
	int eof; /* a read returned 0 */
};

static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

static int tls_bio_retry(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static int tls_bio_write(BIO *b, const char *p, int n)
{
	struct tls_bio *d = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	errno = 0;
	ssize_t k = send(d->fd, p, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (k < 0 && tls_bio_retry(errno))
		BIO_set_retry_write(b);
	return (int)k;
}

static int tls_bio_read(BIO *b, char *p, int n)
{
	struct tls_bio *d = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (!p)
		return 0;
	errno = 0;
	ssize_t k = recv(d->fd, p, (size_t)n, MSG_DONTWAIT);
	if (k < 0 && tls_bio_retry(errno))
		BIO_set_retry_read(b);
	else if (k == 0)
		d->eof = 1;
	return (int)k;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_bio *d = BIO_get_data(b);
	(void)num;
	switch (cmd) {
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = d->fd;
		return d->fd;
	case BIO_CTRL_EOF:
		return d->eof;
	case BIO_CTRL_FLUSH:
	case BIO_CTRL_DUP:
		return 1;
	default:
		return 0;
	}
}

static int tls_bio_create(BIO *b)
{
	struct tls_bio *d = calloc(1, sizeof *d);
	if (!d)
		return 0;
	d->fd = -1;
	BIO_set_data(b, d);
	BIO_set_init(b, 1);
	return 1;
}

static int tls_bio_destroy(BIO *b)
{
	free(BIO_get_data(b)); /* the descriptor is the caller's */
	BIO_set_data(b, NULL);
	return 1;
}

static void tls_bio_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
					     BIO_TYPE_DESCRIPTOR,
				     "ipcbus socket");
	if (!m)
		return;
	if (BIO_meth_set_write(m, tls_bio_write) != 1 || BIO_meth_set_read(m, tls_bio_read) != 1 ||
	    BIO_meth_set_ctrl(m, tls_bio_ctrl) != 1 || BIO_meth_set_create(m, tls_bio_create) != 1 ||
	    BIO_meth_set_destroy(m, tls_bio_destroy) != 1) {
		BIO_meth_free(m);
		return;
	}
	tls_bio_method = m; /* kept to the end of the process */
}

/* A BIO on fd (borrowed), or NULL. */
static BIO *tls_bio_new(int fd)
{
	pthread_once(&tls_bio_once, tls_bio_init);
	if (!tls_bio_method)
		return NULL;
	BIO *b = BIO_new(tls_bio_method);
	if (b)
		((struct tls_bio *)BIO_get_data(b))->fd = fd;
	return b;
}

/* OpenSSL's reason for the last failure, with what we were doing. */
static int tls_fail(char *err, size_t n, const char *what, const char *arg)
{
	unsigned long e = ERR_get_error();
	char reason[200] = "unknown error";
	if (e)
		ERR_error_string_n(e, reason, sizeof reason);
	ERR_clear_error();
	if (err && n)
		snprintf(err, n, "%s%s%s: %s", what, arg ? " " : "", arg ? arg : "", reason);
	return TLS_EFAIL;
}

static int tls_ctx_new(struct tls_ctx **out, int server, char *err, size_t n)
{
	struct tls_ctx *x = calloc(1, sizeof *x);
	if (!x)
		return -ENOMEM;
	x->server = server;
	x->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!x->ctx) {
		free(x);
		return tls_fail(err, n, "TLS context", NULL);
	}
	SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION);
	/* read what the socket has, several records at once: without it a
	 * record costs two recv()s and a trip through epoll; unread records
	 * then wait inside OpenSSL, which tls_pending() reports */
	SSL_CTX_set_read_ahead(x->ctx, 1);
	SSL_CTX_set_default_read_buffer_len(x->ctx, 64 << 10);
	/* partial writes from chunks that stay where they are */
	SSL_CTX_set_mode(x->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(x->ctx, SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* a peer that closes without close_notify has ended its stream: the
	 * frames say whether anything was cut short */
	SSL_CTX_set_options(x->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	*out = x;
	return 0;
}

/* Certificate chain and key, checked to belong together. */
static int tls_ctx_identity(struct tls_ctx *x, const char *cert, const char *key, char *err,
			    size_t n)
{
	if (SSL_CTX_use_certificate_chain_file(x->ctx, cert) != 1)
		return tls_fail(err, n, "certificate", cert);
	if (SSL_CTX_use_PrivateKey_file(x->ctx, key, SSL_FILETYPE_PEM) != 1)
		return tls_fail(err, n, "key", key);
	if (SSL_CTX_check_private_key(x->ctx) != 1)
		return tls_fail(err, n, "key does not match the certificate", cert);
	return 0;
}

int tls_ctx_server(struct tls_ctx **out, const char *cert, const char *key, const char *ca,
		   char *err, size_t n)
{
	struct tls_ctx *x;
	int rc = tls_ctx_new(&x, 1, err, n);
	if (rc < 0)
		return rc;
	if ((rc = tls_ctx_identity(x, cert, key, err, n)) < 0)
		goto fail;
	if (ca) {
		if (SSL_CTX_load_verify_locations(x->ctx, ca, NULL) != 1) {
			rc = tls_fail(err, n, "CA file", ca);
			goto fail;
		}
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
		if (names)
			SSL_CTX_set_client_CA_list(x->ctx, names);
		SSL_CTX_set_verify(x->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	*out = x;
	return 0;
fail:
	tls_ctx_free(x);
	return rc;
}

int tls_ctx_client(struct tls_ctx **out, const char *ca, const char *cert, const char *key,
		   char *err, size_t n)
{
	struct tls_ctx *x;
	int rc = tls_ctx_new(&x, 0, err, n);
	if (rc < 0)
		return rc;
	if (ca ? SSL_CTX_load_verify_locations(x->ctx, ca, NULL) != 1
	       : SSL_CTX_set_default_verify_paths(x->ctx) != 1) {
		rc = tls_fail(err, n, "CA file", ca ? ca : "(system default)");
		goto fail;
	}
	if ((cert == NULL) != (key == NULL)) {
		snprintf(err, n, "a client certificate needs its key, and a key its certificate");
		rc = -EINVAL;
		goto fail;
	}
	if (cert && (rc = tls_ctx_identity(x, cert, key, err, n)) < 0)
		goto fail;
	SSL_CTX_set_verify(x->ctx, SSL_VERIFY_PEER, NULL);
	*out = x;
	return 0;
fail:
	tls_ctx_free(x);
	return rc;
}

void tls_ctx_free(struct tls_ctx *x)
{
	if (!x)
		return;
	SSL_CTX_free(x->ctx);
	free(x);
}

struct tls *tls_new(struct tls_ctx *x, int fd, const char *host)
{
	struct tls *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ssl = SSL_new(x->ctx);
	if (!t->ssl)
		goto fail;
	BIO *b = tls_bio_new(fd);
	if (!b)
		goto fail;
	SSL_set_bio(t->ssl, b, b); /* one reference, taken by the session */
	if (x->server) {
		SSL_set_accept_state(t->ssl);
		return t;
	}
	SSL_set_connect_state(t->ssl);
	if (host && host[0]) {
		unsigned char addr[16];
		int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
		X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
		if (is_ip) {
			if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1)
				goto fail;
		} else {
			X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(t->ssl, host) != 1 ||
			    SSL_set_tlsext_host_name(t->ssl, host) != 1)
				goto fail;
		}
	}
	return t;
fail:
	ERR_clear_error();
	tls_free(t);
	return NULL;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t->stage);
	free(t);
}

const char *tls_error(const struct tls *t)
{
	return t->err;
}

int tls_fail_kind(const struct tls *t)
{
	return t->fail;
}

const char *tls_fail_reason(const struct tls *t)
{
	return t->reason;
}

/* Why the handshake or a record failed, from OpenSSL's first error: the
 * kind (enum tls_fail) and the short reason, into t. */
static void tls_classify(struct tls *t, unsigned long e)
{
	int lib = ERR_GET_LIB(e), r = ERR_GET_REASON(e);
	const char *why = e ? ERR_reason_error_string(e) : NULL;

	snprintf(t->reason, sizeof t->reason, "%s", why ? why : "unknown error");
	t->fail = TLS_FAIL_OTHER;
	if (lib != ERR_LIB_SSL)
		return;
	if (r >= SSL_AD_REASON_OFFSET) {
		t->fail = TLS_FAIL_ALERT; /* "tlsv13 alert certificate required" */
		return;
	}
	switch (r) {
	/* what a first record that is no TLS record looks like */
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_RECORD_LENGTH_MISMATCH:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_UNKNOWN_PROTOCOL:
	case SSL_R_WRONG_SSL_VERSION:
	case SSL_R_BAD_PACKET_LENGTH:
	case SSL_R_BAD_RECORD_TYPE:
	case SSL_R_UNEXPECTED_RECORD:
		t->fail = TLS_FAIL_NOT_TLS;
		break;
	default:
		break;
	}
}

/* Map an SSL_* result: -EAGAIN with *want, 0 at EOF, or a failure. */
static int tls_result(struct tls *t, int r, int *want, const char *what)
{
	int e = SSL_get_error(t->ssl, r);
	int sys = errno;
	switch (e) {
	case SSL_ERROR_WANT_READ:
		*want = TLS_WANT_READ;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		*want = TLS_WANT_WRITE;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (sys == EAGAIN || sys == EINTR) {
			*want = TLS_WANT_READ;
			return -EAGAIN;
		}
		ERR_clear_error();
		if (sys == 0 || sys == ECONNRESET || sys == EPIPE) {
			t->fail = TLS_FAIL_CLOSED;
			snprintf(t->reason, sizeof t->reason, "the peer closed the connection");
			snprintf(t->err, sizeof t->err, "%s: the peer closed the connection", what);
			errno = sys;
			return sys ? -sys : -ECONNRESET;
		}
		t->fail = TLS_FAIL_OTHER;
		snprintf(t->reason, sizeof t->reason, "%s", strerror(sys));
		snprintf(t->err, sizeof t->err, "%s: %s", what, strerror(sys));
		errno = sys;
		return -sys;
	default: {
		long v = SSL_get_verify_result(t->ssl);
		if (v != X509_V_OK) {
			t->fail = TLS_FAIL_VERIFY;
			snprintf(t->reason, sizeof t->reason, "%s", X509_verify_cert_error_string(v));
			snprintf(t->err, sizeof t->err, "%s: certificate: %s", what, t->reason);
		} else {
			tls_classify(t, ERR_peek_error());
			tls_fail(t->err, sizeof t->err, what, NULL);
		}
		ERR_clear_error();
		return TLS_EFAIL;
	}
	}
}

int tls_handshake(struct tls *t, int *want, char *err, size_t n)
{
	*want = 0;
	errno = 0;
	int r = SSL_do_handshake(t->ssl);
	if (r == 1)
		return 1;
	int rc = tls_result(t, r, want, "TLS handshake");
	if (rc == -EAGAIN)
		return 0;
	if (rc == 0) {
		t->fail = TLS_FAIL_CLOSED;
		snprintf(t->reason, sizeof t->reason, "the peer closed the connection");
		snprintf(t->err, sizeof t->err, "TLS handshake: the peer closed the connection");
		rc = -ECONNRESET;
	}
	if (err && n)
		snprintf(err, n, "%s", t->err);
	return rc;
}

ssize_t tls_read(struct tls *t, void *p, size_t n, int *want)
{
	size_t got = 0;
	*want = 0;
	errno = 0;
	if (SSL_read_ex(t->ssl, p, n, &got) == 1)
		return (ssize_t)got;
	int rc = tls_result(t, 0, want, "TLS read");
	/* a bare close without close_notify is an EOF as well: the frames
	 * say whether anything was cut short */
	if (rc == -ECONNRESET && errno == 0)
		return 0;
	return rc;
}

/* Give OpenSSL the staged bytes again until it has written them all: 0,
 * -EAGAIN (*want), or a failure. */
static int tls_flush_stage(struct tls *t, int *want)
{
	while (t->stage_len > 0) {
		size_t put = 0;
		errno = 0;
		if (SSL_write_ex(t->ssl, t->stage, t->stage_len, &put) != 1) {
			int rc = tls_result(t, 0, want, "TLS write");
			return rc == 0 ? -EPIPE : rc;
		}
		memmove(t->stage, t->stage + put, t->stage_len - put);
		t->stage_len -= put;
	}
	free(t->stage);
	t->stage = NULL;
	return 0;
}

ssize_t tls_writev(struct tls *t, const struct iovec *iov, int cnt, int *want)
{
	size_t owed = t->owed, left = 0;
	ssize_t total = 0;
	int rc;

	*want = 0;
	for (int i = 0; i < cnt; i++)
		left += iov[i].iov_len;
	if (left < owed) {
		snprintf(t->err, sizeof t->err, "TLS write: the bytes of the last write are gone");
		return -EINVAL; /* a caller that broke the contract (tls.h) */
	}
	if ((rc = tls_flush_stage(t, want)) < 0)
		return rc;
	/* the owed bytes were in the stage: written now */
	t->owed = 0;
	total = (ssize_t)owed;
	left -= owed;
	for (int i = 0; i < cnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t n = iov[i].iov_len;
		if (owed >= n) {
			owed -= n;
			continue;
		}
		p += owed;
		n -= owed;
		owed = 0;
		while (n > 0) {
			/* one record at a time: what OpenSSL holds after a
			 * WANT_WRITE is then at most this chunk */
			size_t k = n < TLS_CHUNK ? n : TLS_CHUNK, put = 0;
			errno = 0;
			if (SSL_write_ex(t->ssl, p, k, &put) == 1) {
				total += (ssize_t)put;
				p += put;
				n -= put;
				left -= put;
				continue;
			}
			rc = tls_result(t, 0, want, "TLS write");
			if (rc != -EAGAIN)
				return rc == 0 ? -EPIPE : rc;
			/* OpenSSL holds a record made of these k bytes and must be
			 * given them again: keep a copy and count them taken, as a
			 * socket's buffer would, so the caller may drop or change
			 * what follows.  When they end its output, one byte is
			 * left owed, so that it comes back when writable. */
			t->stage = malloc(TLS_CHUNK);
			if (!t->stage) {
				snprintf(t->err, sizeof t->err, "TLS write: out of memory");
				return -ENOMEM;
			}
			memcpy(t->stage, p, k);
			t->stage_len = k;
			if (left == k)
				t->owed = 1;
			total += (ssize_t)(k - t->owed);
			return total > 0 ? total : -EAGAIN;
		}
	}
	return total;
}

void tls_shutdown(struct tls *t)
{
	if (SSL_is_init_finished(t->ssl))
		SSL_shutdown(t->ssl);
	ERR_clear_error();
}

int tls_pending(const struct tls *t)
{
	/* records read ahead but not decrypted count too (SSL_pending()
	 * sees only the decrypted bytes of the current record) */
	return SSL_has_pending(t->ssl);
}

int tls_peer_name(const struct tls *t, char *out, size_t n)
{
	X509 *x = SSL_get1_peer_certificate(t->ssl);
	int ok = 0;
	out[0] = 0;
	if (x && SSL_get_verify_result(t->ssl) == X509_V_OK) {
		char cn[256];
		int k = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
						  sizeof cn);
		if (k > 0 && (size_t)k < n) {
			ok = 1;
			for (int i = 0; i < k; i++) /* visible ASCII, for logs and rules */
				if ((unsigned char)cn[i] < 0x21 || (unsigned char)cn[i] > 0x7e)
					ok = 0;
			if (ok)
				memcpy(out, cn, (size_t)k + 1);
		}
	}
	X509_free(x);
	return ok ? 0 : -1;
}

void tls_describe(const struct tls *t, char *out, size_t n)
{
	snprintf(out, n, "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
}
