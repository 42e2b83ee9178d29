/*
 * fuzz_url.c: a libFuzzer target for the URL parser (proto/url.c): the
 * input, as a NUL-terminated string, goes to url_parse() and to
 * url_parse_key().
 *
 * Besides "no crash, no sanitizer report" it checks:
 *  - the result is 0 or IPCBUS_EURL, and the same on a second parse;
 *  - an accepted URL starts with its scheme's "NAME://" and its fields keep
 *    their documented bounds: an absolute unix path, a mode within 0777, a
 *    host and a port 1-65535 for tcp/udp, a nonzero key and the KEY as
 *    written for sysv/shm (sysv: and ?mode= within 0777);
 *  - a refused one has a reason, and the reason is cut to the room given
 *    (exactly sized buffers, so AddressSanitizer sees any write past them),
 *    including no room at all.
 * Built only with ./configure --enable-fuzzer (CC=clang).
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The string is NUL-terminated within n bytes. */
static int fuzz_terminated(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

static void fuzz_accepted(const char *s, const struct url *u)
{
	const char *scheme = url_scheme(u->kind);
	size_t n = strlen(scheme);

	FUZZ_CHECK(u->kind >= URL_UNIX && u->kind <= URL_TLS);
	FUZZ_CHECK(strncmp(s, scheme, n) == 0 && strncmp(s + n, "://", 3) == 0);
	const char *rest = s + n + 3;
	switch (u->kind) {
	case URL_UNIX:
		FUZZ_CHECK(fuzz_terminated(u->path, sizeof u->path));
		FUZZ_CHECK(u->path[0] == '/');
		FUZZ_CHECK(strncmp(rest, u->path, strlen(u->path)) == 0);
		FUZZ_CHECK(rest[strlen(u->path)] == 0 || rest[strlen(u->path)] == '?');
		FUZZ_CHECK(!u->has_mode || u->mode <= 0777);
		FUZZ_CHECK(fuzz_terminated(u->group, sizeof u->group));
		break;
	case URL_TLS:
		FUZZ_CHECK(fuzz_terminated(u->ca, sizeof u->ca));
		FUZZ_CHECK(fuzz_terminated(u->cert, sizeof u->cert));
		FUZZ_CHECK(fuzz_terminated(u->key_file, sizeof u->key_file));
		/* a client certificate comes with its key */
		FUZZ_CHECK(!u->cert[0] == !u->key_file[0]);
		/* fall through: the rest is tcp's */
	case URL_TCP:
	case URL_UDP:
		FUZZ_CHECK(fuzz_terminated(u->host, sizeof u->host));
		FUZZ_CHECK(u->host[0] != 0);
		FUZZ_CHECK(u->port >= 1);
		FUZZ_CHECK(fuzz_terminated(u->token, sizeof u->token));
		FUZZ_CHECK(u->has_token || u->token[0] == 0);
		/* the host is written in the URL as it is (no decoding) */
		FUZZ_CHECK(strstr(rest, u->host) != NULL);
		break;
	case URL_SYSV:
	case URL_SHM: {
		FUZZ_CHECK(u->key != 0 && u->key != -1);
		/* sysv: the KEY, then ?mode= (octal, at most 0777) and
		 * qbytes= (at most URL_QBYTES_MAX), each once, in any order */
		const char *q = u->kind == URL_SYSV ? strchr(rest, '?') : NULL;
		size_t klen = q ? (size_t)(q - rest) : strlen(rest);
		FUZZ_CHECK(strlen(u->keyspec) == klen && strncmp(u->keyspec, rest, klen) == 0);
		FUZZ_CHECK(!q || u->has_mode || u->has_qbytes);
		FUZZ_CHECK(!u->has_mode || (u->mode <= 0777 && strstr(rest, "mode=")));
		FUZZ_CHECK(!u->has_qbytes || (u->qbytes <= URL_QBYTES_MAX && strstr(rest, "qbytes=")));
		FUZZ_CHECK(!q || strncmp(q, "?mode=", 6) == 0 || strncmp(q, "?qbytes=", 8) == 0);
		FUZZ_CHECK(q || (!u->has_mode && !u->has_qbytes));
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct url u, v;
	char err[512];

	FUZZ_CHECK(s);
	FUZZ_CHECK(url_parse(NULL, &u, err, sizeof err) == IPCBUS_EURL && err[0]);
	memcpy(s, data, size);
	s[size] = 0;

	err[0] = 0;
	int rc = url_parse(s, &u, err, sizeof err);
	FUZZ_CHECK(rc == 0 || rc == IPCBUS_EURL);
	if (rc == 0)
		fuzz_accepted(s, &u);
	else
		FUZZ_CHECK(err[0] != 0 && fuzz_terminated(err, sizeof err));

	/* the same answer again, and whatever room the reason gets */
	static const size_t rooms[] = {0, 1, 2, 9, 40};
	for (size_t i = 0; i < sizeof rooms / sizeof rooms[0]; i++) {
		size_t n = rooms[i];
		char *e = n ? malloc(n) : NULL;
		FUZZ_CHECK(!n || e);
		if (e)
			memset(e, 'x', n);
		FUZZ_CHECK(url_parse(s, &v, e, n) == rc);
		if (rc == 0)
			FUZZ_CHECK(memcmp(&u, &v, sizeof u) == 0);
		else if (e)
			FUZZ_CHECK(fuzz_terminated(e, n) && (n == 1 || e[0] != 0) &&
				   strncmp(e, err, n - 1) == 0);
		free(e);
	}

	/* the input as a bare SysV KEY */
	long key = 0;
	err[0] = 0;
	rc = url_parse_key(s, &key, err, sizeof err);
	FUZZ_CHECK(rc == 0 || rc == IPCBUS_EURL);
	if (rc == 0)
		FUZZ_CHECK(key != 0 && key != -1);
	else
		FUZZ_CHECK(err[0] != 0);
	free(s);
	return 0;
}
