/*
 * tls.h: TLS over a non-blocking socket, through OpenSSL, for both ends:
 * the broker's tls:// listeners and the library's tls:// connections.
 *
 * Nothing here blocks or polls: every call does what the socket allows
 * now and says what it waits for (TLS_WANT_READ or TLS_WANT_WRITE), so a
 * handshake or a record proceeds inside the caller's own loop and a peer
 * that stalls holds nobody up.  TLS 1.2 at least.  A server context made
 * with a CA requires and verifies client certificates (mutual TLS); a
 * client context verifies the server's certificate and name.
 *
 * Errors are negative codes (-errno, or TLS_EFAIL for what OpenSSL
 * refused) with a text in the caller's buffer.
 */
#ifndef IPCBUS_TLS_H
#define IPCBUS_TLS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

enum { TLS_WANT_READ = 1, TLS_WANT_WRITE = 2 };
#define TLS_EFAIL (-1100)

struct tls_ctx;
struct tls;

/* A server context from PEM files: cert (chain) and key; with ca, clients
 * must present a certificate it signed.  0 or a negative code (err). */
int tls_ctx_server(struct tls_ctx **out, const char *cert, const char *key, const char *ca,
		   char *err, size_t n);

/* A client context: ca (NULL: the system's store) to verify the server;
 * cert and key (both or neither) for mutual TLS.  0 or a negative code. */
int tls_ctx_client(struct tls_ctx **out, const char *ca, const char *cert, const char *key,
		   char *err, size_t n);

void tls_ctx_free(struct tls_ctx *x);

/* A session on fd (borrowed: the caller closes it after tls_free).  For a
 * client, host is the name (or address) the certificate must match, also
 * sent as SNI when it is a name.  NULL when out of memory. */
struct tls *tls_new(struct tls_ctx *x, int fd, const char *host);

void tls_free(struct tls *t);

/* Advance the handshake: 1 done, 0 not yet (*want says for what), or a
 * negative code (err says why: a bad certificate, not TLS at all...). */
int tls_handshake(struct tls *t, int *want, char *err, size_t n);

/* Read up to n bytes: > 0, 0 at the peer's EOF (close_notify or a bare
 * close), -EAGAIN (*want), or a negative code. */
ssize_t tls_read(struct tls *t, void *p, size_t n, int *want);

/* Write from iov: the bytes taken (> 0, maybe fewer than given), -EAGAIN
 * (*want; nothing taken), or a negative code.  As with send(), what was not
 * taken may be changed or dropped before the next call -- except when one
 * byte alone was not taken: it is the last of a record OpenSSL has still to
 * send, held back so that the caller waits for *want and calls again, and
 * that call must begin with it.  (SSL_write's own retry rule, the same
 * bytes again after WANT_WRITE, is kept inside: a copy of them is written
 * first by the next call.) */
ssize_t tls_writev(struct tls *t, const struct iovec *iov, int cnt, int *want);

/* 1 when decrypted bytes wait inside (read them before polling again). */
int tls_pending(const struct tls *t);

/* The common name of the peer's verified certificate (visible ASCII):
 * 0, or -1 when there is none (out is then ""). */
int tls_peer_name(const struct tls *t, char *out, size_t n);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384", for logs. */
void tls_describe(const struct tls *t, char *out, size_t n);

/* Send close_notify (best effort, non-blocking). */
void tls_shutdown(struct tls *t);

/* What the last failure was, for logs ("TLS handshake: error:0A00010B:SSL
 * routines::wrong version number"). */
const char *tls_error(const struct tls *t);

/* The kind of the last failure, for a message that says what to do. */
enum tls_fail {
	TLS_FAIL_NONE = 0,
	TLS_FAIL_OTHER,   /* see tls_fail_reason */
	TLS_FAIL_VERIFY,  /* the peer's certificate was not accepted: expired,
			   * not signed by a trusted CA, for another name */
	TLS_FAIL_NOT_TLS, /* the peer's first bytes are no TLS record (a plain
			   * port) */
	TLS_FAIL_ALERT,   /* the peer refused with an alert ("certificate
			   * required", "unknown ca") */
	TLS_FAIL_CLOSED,  /* the peer closed (or reset) the connection */
};
int tls_fail_kind(const struct tls *t);

/* The short reason of the last failure ("certificate has expired", "wrong
 * version number", "tlsv13 alert certificate required"). */
const char *tls_fail_reason(const struct tls *t);

#endif
