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

/* Write from iov: the bytes taken (records may be partial), -EAGAIN
 * (*want), or a negative code.  After -EAGAIN, call again with the same
 * bytes first. */
ssize_t tls_writev(struct tls *t, const struct iovec *iov, int cnt, int *want);

/* 1 when decrypted bytes wait inside (read them before polling again). */
int tls_pending(const struct tls *t);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384", for logs. */
void tls_describe(const struct tls *t, char *out, size_t n);

/* Send close_notify (best effort, non-blocking). */
void tls_shutdown(struct tls *t);

/* What the last failure was, for logs. */
const char *tls_error(const struct tls *t);

#endif
