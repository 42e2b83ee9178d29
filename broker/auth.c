/*
 * auth.c: tokens (see auth.h).
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "broker.h"
#include "conn.h"
#include "transport.h"

int auth_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	volatile uint8_t d = (uint8_t)(alen != blen);
	if (blen == 0)
		return alen == 0;
	/* every byte of a is compared, each against some byte of b, with no
	 * branch on the contents */
	for (size_t i = 0; i < alen; i++)
		d |= a[i] ^ b[i % blen];
	return d == 0;
}

int auth_hello(struct conn *c, int has_token, const uint8_t *token, size_t len, char *why,
	       size_t n)
{
	struct broker *b = c->b;
	const struct conf *cfg = &b->cfg;
	int network = c->listener && c->listener->tr->network;

	if (!network) {
		if (c->has_cred)
			snprintf(c->identity, sizeof c->identity, "uid:%u", (unsigned)c->uid);
		return 0;
	}
	if (cfg->ntokens == 0) {
		if (c->cert_name[0])
			snprintf(c->identity, sizeof c->identity, "cert:%s", c->cert_name);
		else
			snprintf(c->identity, sizeof c->identity, "anonymous");
		return 0;
	}
	const struct conf_token *hit = NULL;
	for (size_t i = 0; i < cfg->ntokens; i++) {
		const struct conf_token *t = &cfg->tokens[i];
		/* all of them, always: no early exit */
		if (auth_equal(has_token ? token : (const uint8_t *)"", has_token ? len : 0,
			       (const uint8_t *)t->secret, t->len) && !hit)
			hit = t;
	}
	if (hit) {
		if (hit->name)
			snprintf(c->identity, sizeof c->identity, "token:%s", hit->name);
		else
			snprintf(c->identity, sizeof c->identity, "token");
		return 0;
	}
	snprintf(why, n, has_token ? "bad token" : "this broker requires a token");
	auth_refused(c, why);
	return -1;
}

/* The refusals counted since the last line, a second after it. */
static void auth_refused_later(void *arg)
{
	struct broker *b = arg;
	if (!b->auth_refused)
		return;
	log_warn(&b->log, "refused %llu more client(s) in the last second (bad tokens, failed TLS handshakes)",
		 (unsigned long long)b->auth_refused);
	b->auth_refused = 0;
	b->auth_logged = loop_now(b->loop);
}

void auth_refused(struct conn *c, const char *why)
{
	struct broker *b = c->b;
	uint64_t now = loop_now(b->loop);

	/* the first of a burst at once, with who and why; the others
	 * counted and logged a second later (the timer runs only while a
	 * count waits) */
	if (!b->auth_logged || now - b->auth_logged >= 1000) {
		log_warn(&b->log, "refused %s: %s", c->desc, why);
		b->auth_logged = now;
		return;
	}
	b->auth_refused++;
	if (!b->auth_timer.armed)
		loop_timer_set(b->loop, &b->auth_timer, b->auth_logged + 1000 - now, auth_refused_later, b);
}

void auth_fini(struct broker *b)
{
	loop_timer_cancel(b->loop, &b->auth_timer);
	auth_refused_later(b);
}
