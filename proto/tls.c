/*
 * tls.c: TLS over a non-blocking socket through OpenSSL (see tls.h).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

struct tls_ctx {
	SSL_CTX *ctx;
	int server;
};

struct tls {
	SSL *ssl;
	char err[256];
};

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
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1)
		goto fail;
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
	free(t);
}

const char *tls_error(const struct tls *t)
{
	return t->err;
}

/* Map an SSL_* result: -EAGAIN with *want, 0 at EOF, or a failure. */
static int tls_result(struct tls *t, int r, int *want, const char *what)
{
	int e = SSL_get_error(t->ssl, r);
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
		if (errno == EAGAIN || errno == EINTR) {
			*want = TLS_WANT_READ;
			return -EAGAIN;
		}
		ERR_clear_error();
		if (errno == 0 || errno == ECONNRESET || errno == EPIPE) {
			snprintf(t->err, sizeof t->err, "%s: the peer closed the connection", what);
			return errno ? -errno : -ECONNRESET;
		}
		snprintf(t->err, sizeof t->err, "%s: %s", what, strerror(errno));
		return -errno;
	default: {
		long v = SSL_get_verify_result(t->ssl);
		if (v != X509_V_OK)
			snprintf(t->err, sizeof t->err, "%s: certificate: %s", what,
				 X509_verify_cert_error_string(v));
		else
			tls_fail(t->err, sizeof t->err, what, NULL);
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

ssize_t tls_writev(struct tls *t, const struct iovec *iov, int cnt, int *want)
{
	ssize_t total = 0;
	*want = 0;
	for (int i = 0; i < cnt; i++) {
		size_t put = 0;
		errno = 0;
		if (SSL_write_ex(t->ssl, iov[i].iov_base, iov[i].iov_len, &put) != 1) {
			int rc = tls_result(t, 0, want, "TLS write");
			if (total > 0 && rc == -EAGAIN)
				return total;
			return rc == 0 ? -EPIPE : rc;
		}
		total += (ssize_t)put;
		if (put < iov[i].iov_len)
			break;
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
	return SSL_pending(t->ssl) > 0;
}

void tls_describe(const struct tls *t, char *out, size_t n)
{
	snprintf(out, n, "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
}
