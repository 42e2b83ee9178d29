/*
 * auth.h: who a client is.  A client of a network transport (tcp, tls,
 * udp) presents a token in HELLO when the configuration has `token` lines;
 * a Unix client is governed by the socket's permissions and known by its
 * SO_PEERCRED credentials.
 */
#ifndef IPCBUS_AUTH_H
#define IPCBUS_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct conn;

/* Check the token c presented in HELLO (has_token, token[0..len)) for the
 * transport c came in on, and set c->identity.  0 when c may go on; -1
 * when it may not, with the reason for the client in why (the broker then
 * sends the fatal E_AUTH).  Refusals are logged, at most once a second. */
int auth_hello(struct conn *c, int has_token, const uint8_t *token, size_t len, char *why,
	       size_t n);

/* Log that c was refused (a bad token, a failed TLS handshake): the first
 * of a burst at once, the others counted into a line a second later. */
void auth_refused(struct conn *c, const char *why);

/* At the broker's end: log what is still counted. */
struct broker;
void auth_fini(struct broker *b);

/* 1 when a and b are equal, in a time that depends only on alen (the
 * length the client chose), never on how much of a secret matched. */
int auth_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
