/*
 * fuzz_conf.c: a libFuzzer target for the configuration reader
 * (broker/conf.c): the input is a whole configuration file, read by
 * conf_load() from a memfd, and also split into lines by the target and
 * given to conf_line() one by one.
 *
 * Besides "no crash, no sanitizer report" it checks:
 *  - conf_load() counts one error per "FILE:LINE: reason" line it prints,
 *    every LINE within the file;
 *  - conf_load() and the line-by-line reading agree (same error count, same
 *    resulting configuration): the file reader splits lines as documented,
 *    one directive per line, a NUL byte refusing its line;
 *  - a configuration read without errors holds only values in range: limits
 *    within their bounds, max-memory >= max-pending, distinct unix://
 *    listen URLs that parse, absolute pidfile and log paths, raw bridges
 *    (sysv-in, sysv-out) with valid keys, types, channels and options and
 *    no two lines sharing a queue's messages;
 *  - a reason is cut to the room given (conf_line() with an exactly sized
 *    small buffer, so AddressSanitizer sees a write past it).
 * Built only with ./configure --enable-fuzzer (CC=clang).
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chan.h"
#include "conf.h"
#include "ipcbus.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c)                                                                   \
	do {                                                                            \
		if (!(c)) {                                                             \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,     \
				__LINE__, #c);                                          \
			abort();                                                        \
		}                                                                       \
	} while (0)

/* Room for a reason in the line-by-line reading: small, to catch writes
 * past what the caller gave. */
#define FUZZ_WHY 24

static int fuzz_memfd = -1;
static char fuzz_path[64];

static int fuzz_streq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void fuzz_same_conf(const struct conf *a, const struct conf *b)
{
	FUZZ_CHECK(a->nlisten == b->nlisten);
	for (size_t i = 0; i < a->nlisten; i++)
		FUZZ_CHECK(strcmp(a->listen[i], b->listen[i]) == 0);
	FUZZ_CHECK(a->max_payload == b->max_payload);
	FUZZ_CHECK(a->max_header_bytes == b->max_header_bytes);
	FUZZ_CHECK(a->max_pending == b->max_pending);
	FUZZ_CHECK(a->max_subscriptions == b->max_subscriptions);
	FUZZ_CHECK(a->max_connections == b->max_connections);
	FUZZ_CHECK(a->max_memory == b->max_memory);
	FUZZ_CHECK(a->drain_timeout == b->drain_timeout);
	FUZZ_CHECK(a->ping_interval == b->ping_interval);
	FUZZ_CHECK(a->slow_consumer == b->slow_consumer);
	FUZZ_CHECK(fuzz_streq(a->pidfile, b->pidfile));
	FUZZ_CHECK(fuzz_streq(a->log, b->log));
	FUZZ_CHECK(a->ntokens == b->ntokens);
	for (size_t i = 0; i < a->ntokens && i < b->ntokens; i++) {
		FUZZ_CHECK(fuzz_streq(a->tokens[i].name, b->tokens[i].name));
		FUZZ_CHECK(strcmp(a->tokens[i].secret, b->tokens[i].secret) == 0);
	}
	FUZZ_CHECK(fuzz_streq(a->tls_cert, b->tls_cert));
	FUZZ_CHECK(fuzz_streq(a->tls_key, b->tls_key));
	FUZZ_CHECK(fuzz_streq(a->tls_ca, b->tls_ca));
	FUZZ_CHECK(a->nbridges == b->nbridges);
	for (size_t i = 0; i < a->nbridges && i < b->nbridges; i++) {
		FUZZ_CHECK(strcmp(a->bridges[i].url, b->bridges[i].url) == 0);
		FUZZ_CHECK(a->bridges[i].npatterns == b->bridges[i].npatterns);
		for (size_t j = 0; j < a->bridges[i].npatterns && j < b->bridges[i].npatterns; j++)
			FUZZ_CHECK(strcmp(a->bridges[i].patterns[j], b->bridges[i].patterns[j]) == 0);
	}
	FUZZ_CHECK(a->nsysv == b->nsysv);
	for (size_t i = 0; i < a->nsysv && i < b->nsysv; i++) {
		const struct conf_sysv *x = &a->sysv[i], *y = &b->sysv[i];
		FUZZ_CHECK(x->out == y->out && x->key == y->key && x->mtype == y->mtype &&
			   x->mode == y->mode && x->remove == y->remove && x->wait_ms == y->wait_ms &&
			   x->backlog == y->backlog && x->qbytes == y->qbytes);
		FUZZ_CHECK(strcmp(x->key_text, y->key_text) == 0 && strcmp(x->channel, y->channel) == 0);
	}
	FUZZ_CHECK(a->nbridge_allow == b->nbridge_allow);
	for (size_t i = 0; i < a->nbridge_allow && i < b->nbridge_allow; i++)
		FUZZ_CHECK(strcmp(a->bridge_allow[i], b->bridge_allow[i]) == 0);
	FUZZ_CHECK(a->has_secrets == b->has_secrets);
	FUZZ_CHECK(a->seen == b->seen);
}

/* What ipcbus.conf(5) promises of a configuration read without errors. */
static void fuzz_good_conf(const struct conf *c)
{
	FUZZ_CHECK(c->max_payload >= 1 && c->max_payload <= 256ULL << 20);
	FUZZ_CHECK(c->max_header_bytes >= 64 && c->max_header_bytes <= 16ULL << 20);
	FUZZ_CHECK(c->max_pending >= 64ULL << 10 && c->max_pending <= 64ULL << 30);
	FUZZ_CHECK(c->max_subscriptions >= 1 && c->max_subscriptions <= 10000000);
	FUZZ_CHECK(c->max_connections >= 1 && c->max_connections <= 1000000);
	FUZZ_CHECK(c->max_memory >= 1ULL << 20 && c->max_memory <= 1ULL << 40);
	FUZZ_CHECK(c->max_memory >= c->max_pending);
	FUZZ_CHECK(c->drain_timeout <= 3600000);
	FUZZ_CHECK(c->ping_interval == 0 ||
		   (c->ping_interval >= 50 && c->ping_interval <= 86400000));
	FUZZ_CHECK(c->slow_consumer == SLOW_DROP || c->slow_consumer == SLOW_DISCONNECT);
	FUZZ_CHECK(c->nlisten <= CONF_MAX_LISTEN);
	for (size_t i = 0; i < c->nlisten; i++) {
		struct url u;
		FUZZ_CHECK(url_parse(c->listen[i], &u, NULL, 0) == 0 && u.kind != URL_SHM &&
			   !(u.kind != URL_UNIX && u.has_token));
		FUZZ_CHECK(u.kind != URL_TLS || (c->tls_cert && c->tls_key));
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(c->listen[i], c->listen[j]) != 0);
	}
	FUZZ_CHECK(c->ntokens <= CONF_MAX_TOKENS);
	for (size_t i = 0; i < c->ntokens; i++)
		FUZZ_CHECK(strlen(c->tokens[i].secret) >= CONF_TOKEN_MIN);
	FUZZ_CHECK(c->nbridges <= CONF_MAX_BRIDGES);
	for (size_t i = 0; i < c->nbridges; i++) {
		struct url u;
		const struct conf_bridge *br = &c->bridges[i];
		FUZZ_CHECK(url_parse(br->url, &u, NULL, 0) == 0 &&
			   (u.kind == URL_TCP || u.kind == URL_TLS));
		FUZZ_CHECK(!u.has_token || c->has_secrets);
		for (size_t j = 0; j < br->npatterns; j++)
			FUZZ_CHECK(chan_valid_pattern(br->patterns[j], strlen(br->patterns[j])) == 0);
	}
	/* raw bridges: valid keys, types, channels and options, and no two
	 * lines that would share a queue's messages */
	FUZZ_CHECK(c->nsysv <= CONF_MAX_SYSV);
	for (size_t i = 0; i < c->nsysv; i++) {
		const struct conf_sysv *s = &c->sysv[i];
		size_t n = strlen(s->channel);
		FUZZ_CHECK(s->key > 0 && s->mtype >= (s->out ? 1 : 0));
		FUZZ_CHECK(s->out ? chan_valid_pattern(s->channel, n) == 0 &&
					    !chan_is_inbox_wildcard(s->channel, n)
				  : chan_valid_name(s->channel, n) == 0 &&
					    !chan_is_system(s->channel, n) && !chan_is_inbox(s->channel, n));
		FUZZ_CHECK(s->mode <= 0777 && (s->mode & 0600) == 0600);
		FUZZ_CHECK(s->wait_ms <= 3600000 && s->backlog <= 1ULL << 30 &&
			   s->qbytes <= 0x7fffffffULL);
		for (size_t j = 0; j < i; j++) {
			const struct conf_sysv *o = &c->sysv[j];
			if (o->key != s->key)
				continue;
			FUZZ_CHECK(o->mode == s->mode && o->remove == s->remove &&
				   o->qbytes == s->qbytes);
			FUZZ_CHECK((o->out && s->out) ||
				   (o->mtype && s->mtype && o->mtype != s->mtype));
		}
	}
	FUZZ_CHECK(!c->pidfile || c->pidfile[0] == '/');
	FUZZ_CHECK(!c->log || c->log[0] == '/' || strcmp(c->log, "stderr") == 0 ||
		   strcmp(c->log, "syslog") == 0);
}

/* Count the error lines conf_load() printed, checking their form. */
static int fuzz_error_lines(const char *text, size_t len, unsigned nlines)
{
	size_t plen = strlen(fuzz_path);
	int n = 0;
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		FUZZ_CHECK(nl != NULL);
		FUZZ_CHECK((size_t)(nl - p) > plen + 1 && memcmp(p, fuzz_path, plen) == 0 &&
			   p[plen] == ':');
		char *q;
		unsigned long line = strtoul(p + plen + 1, &q, 10);
		FUZZ_CHECK(q > p + plen + 1 && q + 2 <= nl && q[0] == ':' && q[1] == ' ');
		FUZZ_CHECK(line >= 1 && line <= nlines);
		n++;
		p = nl + 1;
	}
	return n;
}

/* The file read line by line with conf_line(); the error count, with the
 * cross-check conf_load() makes at the end. */
static int fuzz_by_lines(struct conf *c, const uint8_t *data, size_t size, unsigned *nlines)
{
	char *why = malloc(FUZZ_WHY);
	size_t off = 0;
	int errors = 0;

	FUZZ_CHECK(why);
	*nlines = 0;
	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t n = nl ? (size_t)(nl - (data + off)) : size - off;
		(*nlines)++;
		if (memchr(data + off, 0, n)) {
			errors++;
		} else {
			char *line = malloc(n + 1);
			FUZZ_CHECK(line);
			memcpy(line, data + off, n);
			line[n] = 0;
			why[0] = 0;
			int rc = conf_line(c, line, why, FUZZ_WHY);
			FUZZ_CHECK(rc == 0 || rc == -1);
			if (rc < 0) {
				FUZZ_CHECK(why[0] != 0 && memchr(why, 0, FUZZ_WHY));
				errors++;
			}
			free(line);
		}
		off += n + (nl != NULL);
	}
	/* the checks conf_load makes on the whole file: the memfd is mode
	 * 0777, readable by others */
	if (c->has_secrets)
		errors++;
	int tls = 0;
	for (size_t i = 0; i < c->nlisten; i++)
		tls |= strncmp(c->listen[i], "tls://", 6) == 0;
	if (tls && (!c->tls_cert || !c->tls_key))
		errors++;
	if (c->max_memory < c->max_pending)
		errors++;
	free(why);
	return errors;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf a, b;
	char *text = NULL;
	size_t tlen = 0;
	unsigned nlines;

	if (fuzz_memfd < 0) {
		fuzz_memfd = memfd_create("fuzz_conf", MFD_CLOEXEC);
		FUZZ_CHECK(fuzz_memfd >= 0);
		snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d", fuzz_memfd);
	}
	FUZZ_CHECK(ftruncate(fuzz_memfd, 0) == 0);
	FUZZ_CHECK(size == 0 || pwrite(fuzz_memfd, data, size, 0) == (ssize_t)size);

	FILE *err = open_memstream(&text, &tlen);
	FUZZ_CHECK(err);
	conf_init(&a);
	int rc = conf_load(&a, fuzz_path, err);
	FUZZ_CHECK(fclose(err) == 0);

	conf_init(&b);
	int errors = fuzz_by_lines(&b, data, size, &nlines);
	FUZZ_CHECK(rc >= 0);
	FUZZ_CHECK(fuzz_error_lines(text, tlen, nlines) == rc);
	FUZZ_CHECK(rc == errors);
	fuzz_same_conf(&a, &b);
	if (rc == 0)
		fuzz_good_conf(&a);
	free(text);
	conf_fini(&a);
	conf_fini(&b);
	/* conf_fini leaves the defaults, ready for another file */
	FUZZ_CHECK(a.nlisten == 0 && !a.pidfile && !a.log && a.seen == 0);
	return 0;
}
