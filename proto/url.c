/*
 * url.c: parsing of transport URLs and the default addresses, and URLs as
 * they may be shown (without the token).
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"
#include "url.h"

#define URL_SYSTEM_SOCKET "/run/ipcbus/ipcbus.sock"
#define URL_NELEM(a) (sizeof(a) / sizeof((a)[0]))

void url_redact(const char *s, char *out, size_t n)
{
	static const char *const remote[] = {"tcp://", "tls://", "udp://"};
	const char *at = NULL;
	size_t i, p = 0;

	if (!n)
		return;
	for (i = 0; i < URL_NELEM(remote); i++) {
		p = strlen(remote[i]);
		if (strncmp(s, remote[i], p) == 0)
			break;
	}
	if (i < URL_NELEM(remote)) {
		/* the token ends at the first '@', as url_hostport() reads it,
		 * if that comes before any '?' */
		at = strchr(s + p, '@');
		const char *q = strchr(s + p, '?');
		if (q && at && q < at)
			at = NULL;
	}
	if (at)
		snprintf(out, n, "%.*s***%s", (int)p, s, at);
	else
		snprintf(out, n, "%s", s);
}

static int url_fail(char *err, size_t errlen, const char *s, const char *why)
{
	char shown[1200];

	if (err && errlen) {
		/* the reason may go to a log: not the secret */
		url_redact(s, shown, sizeof shown);
		snprintf(err, errlen, "%s: %s", shown, why);
	}
	return PROTO_EURL;
}

static int url_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into out (NUL-terminated).  0 or -1. */
static int url_pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int h = url_hex(s[i + 1]), l = url_hex(s[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		}
		if (c == 0 || o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return 0;
}

int url_parse_key(const char *s, long *key, char *err, size_t errlen)
{
	char *end;

	if (s[0] == '/') {
		char path[PATH_MAX];
		long id = 1;
		const char *colon = strrchr(s, ':');
		size_t n = colon ? (size_t)(colon - s) : strlen(s);
		if (n >= sizeof path)
			return url_fail(err, errlen, s, "path too long");
		memcpy(path, s, n);
		path[n] = 0;
		if (colon) {
			errno = 0;
			id = strtol(colon + 1, &end, 10);
			if (errno || end == colon + 1 || *end || id < 1 || id > 255)
				return url_fail(err, errlen, s, "the ID after ':' must be 1 to 255");
		}
		key_t k = ftok(path, (int)id);
		if (k == (key_t)-1)
			return url_fail(err, errlen, s, "ftok failed (does the path exist?)");
		*key = (long)k;
		return 0;
	}
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v > 0x7fffffffUL || v == 0)
		return url_fail(err, errlen, s, "KEY must be 0x1234, a decimal number, /path or /path:ID (not 0)");
	*key = (long)v;
	return 0;
}

static int url_hostport(const char *s, const char *rest, struct url *u, char *err,
			size_t errlen)
{
	const char *at = strchr(rest, '@');
	if (at) {
		if (url_pct_decode(rest, (size_t)(at - rest), u->token, sizeof u->token) < 0)
			return url_fail(err, errlen, s, "bad token (percent-encoding or length)");
		u->has_token = 1;
		rest = at + 1;
	}
	const char *hend, *colon;
	if (rest[0] == '[') {
		hend = strchr(rest, ']');
		if (!hend || hend[1] != ':')
			return url_fail(err, errlen, s, "IPv6 address must be [addr]:port");
		rest++;
		colon = hend + 1;
	} else {
		colon = strrchr(rest, ':');
		if (!colon)
			return url_fail(err, errlen, s, "the port is required (host:port)");
		hend = colon;
	}
	size_t hn = (size_t)(hend - rest);
	if (hn == 0 || hn >= sizeof u->host)
		return url_fail(err, errlen, s, "bad host");
	memcpy(u->host, rest, hn);
	u->host[hn] = 0;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
		return url_fail(err, errlen, s, "the port must be 1 to 65535");
	u->port = (uint16_t)port;
	return 0;
}

/* tls://[TOKEN@]host:port[?ca=FILE&cert=FILE&key=FILE] */
static int url_tls(const char *s, const char *rest, struct url *u, char *err, size_t errlen)
{
	static const char *const names[] = {"ca", "cert", "key"};
	char *const dst[] = {u->ca, u->cert, u->key_file};
	const size_t dlen[] = {sizeof u->ca, sizeof u->cert, sizeof u->key_file};
	const char *q = strchr(rest, '?');
	char auth[sizeof u->token * 3 + sizeof u->host + 16];
	size_t n = q ? (size_t)(q - rest) : strlen(rest);
	int rc;

	if (n >= sizeof auth)
		return url_fail(err, errlen, s, "host part too long");
	memcpy(auth, rest, n);
	auth[n] = 0;
	rc = url_hostport(s, auth, u, err, errlen);
	if (rc < 0)
		return rc;
	while (q) {
		const char *opt = q + 1;
		const char *next = strchr(opt, '&');
		size_t on = next ? (size_t)(next - opt) : strlen(opt);
		const char *eq = memchr(opt, '=', on);
		size_t i, nl = eq ? (size_t)(eq - opt) : on;
		for (i = 0; i < URL_NELEM(names); i++)
			if (strlen(names[i]) == nl && strncmp(opt, names[i], nl) == 0)
				break;
		if (!eq || i == URL_NELEM(names))
			return url_fail(err, errlen, s, "unknown option (ca=, cert=, key=)");
		if (dst[i][0])
			return url_fail(err, errlen, s, "an option given twice");
		if (eq + 1 == opt + on ||
		    url_pct_decode(eq + 1, (size_t)(opt + on - eq - 1), dst[i], dlen[i]) < 0 ||
		    !dst[i][0])
			return url_fail(err, errlen, s,
					"bad option value (empty, too long or bad percent-encoding)");
		q = next;
	}
	if (!u->cert[0] != !u->key_file[0])
		return url_fail(err, errlen, s, "cert= and key= go together");
	return 0;
}

static int url_unix(const char *s, const char *rest, struct url *u, char *err, size_t errlen)
{
	const char *q = strchr(rest, '?');
	size_t n = q ? (size_t)(q - rest) : strlen(rest);

	if (n == 0 || rest[0] != '/')
		return url_fail(err, errlen, s, "unix:// needs an absolute path (unix:///path)");
	if (n >= sizeof u->path)
		return url_fail(err, errlen, s, "socket path too long");
	memcpy(u->path, rest, n);
	u->path[n] = 0;
	while (q && *q) {
		const char *opt = q + 1;
		const char *next = strchr(opt, '&');
		size_t on = next ? (size_t)(next - opt) : strlen(opt);
		char val[64];
		if (on > 5 && strncmp(opt, "mode=", 5) == 0 && on - 5 < sizeof val) {
			memcpy(val, opt + 5, on - 5);
			val[on - 5] = 0;
			char *end;
			unsigned long m = strtoul(val, &end, 8);
			if (*end || m > 0777)
				return url_fail(err, errlen, s, "mode must be octal, e.g. 0660");
			u->mode = (unsigned)m;
			u->has_mode = 1;
		} else if (on > 6 && strncmp(opt, "group=", 6) == 0 && on - 6 < sizeof u->group) {
			memcpy(u->group, opt + 6, on - 6);
			u->group[on - 6] = 0;
		} else {
			return url_fail(err, errlen, s, "unknown option (mode=, group=)");
		}
		q = next;
	}
	return 0;
}

/* sysv://KEY[?mode=0600][&qbytes=BYTES]: mode is the broker's queue's
 * (listen); qbytes what each connection's queues are asked to hold
 * (a decimal number of bytes, or with k or m; 0: leave them at msgmnb). */
static int url_sysv(const char *s, const char *rest, struct url *u, char *err, size_t errlen)
{
	const char *q = strchr(rest, '?');
	size_t n = q ? (size_t)(q - rest) : strlen(rest);

	if (n >= sizeof u->keyspec)
		return url_fail(err, errlen, s, "KEY too long");
	memcpy(u->keyspec, rest, n);
	u->keyspec[n] = 0;
	while (q && *q) {
		const char *opt = q + 1;
		const char *next = strchr(opt, '&');
		size_t on = next ? (size_t)(next - opt) : strlen(opt);
		char val[32];
		char *end;
		if (on > 5 && strncmp(opt, "mode=", 5) == 0 && on - 5 < sizeof val && !u->has_mode) {
			memcpy(val, opt + 5, on - 5);
			val[on - 5] = 0;
			unsigned long m = strtoul(val, &end, 8);
			if (*end || m > 0777)
				return url_fail(err, errlen, s, "mode must be octal, e.g. 0620");
			u->mode = (unsigned)m;
			u->has_mode = 1;
		} else if (on > 7 && strncmp(opt, "qbytes=", 7) == 0 && on - 7 < sizeof val &&
			   !u->has_qbytes) {
			memcpy(val, opt + 7, on - 7);
			val[on - 7] = 0;
			errno = 0;
			unsigned long long v = val[0] >= '0' && val[0] <= '9' ? strtoull(val, &end, 10) : 0;
			unsigned long long mul = 1;
			if (val[0] < '0' || val[0] > '9' || errno)
				end = val; /* no number */
			else if (*end == 'k' || *end == 'K')
				mul = 1024, end++;
			else if (*end == 'm' || *end == 'M')
				mul = 1024 * 1024, end++;
			if (*end || end == val || v > URL_QBYTES_MAX / mul)
				return url_fail(err, errlen, s,
						"qbytes must be a number of bytes (k, m) up to 2G-1, e.g. 262144");
			u->qbytes = (unsigned long)(v * mul);
			u->has_qbytes = 1;
		} else {
			return url_fail(err, errlen, s, "unknown or repeated option (mode=, qbytes=)");
		}
		q = next;
	}
	return url_parse_key(u->keyspec, &u->key, err, errlen);
}

int url_parse(const char *s, struct url *u, char *err, size_t errlen)
{
	static const struct {
		const char *prefix;
		enum url_kind kind;
	} schemes[] = {{"unix://", URL_UNIX}, {"tcp://", URL_TCP}, {"tls://", URL_TLS},
		       {"udp://", URL_UDP}, {"sysv://", URL_SYSV}, {"shm://", URL_SHM}};

	memset(u, 0, sizeof *u);
	if (!s)
		return url_fail(err, errlen, "(null)", "no URL");
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		size_t n = strlen(schemes[i].prefix);
		if (strncmp(s, schemes[i].prefix, n))
			continue;
		const char *rest = s + n;
		u->kind = schemes[i].kind;
		switch (u->kind) {
		case URL_UNIX:
			return url_unix(s, rest, u, err, errlen);
		case URL_TCP:
		case URL_UDP:
			return url_hostport(s, rest, u, err, errlen);
		case URL_TLS:
			return url_tls(s, rest, u, err, errlen);
		case URL_SYSV:
			return url_sysv(s, rest, u, err, errlen);
		case URL_SHM:
			if (strlen(rest) >= sizeof u->keyspec)
				return url_fail(err, errlen, s, "KEY too long");
			strcpy(u->keyspec, rest);
			return url_parse_key(rest, &u->key, err, errlen);
		}
	}
	return url_fail(err, errlen, s, "unknown scheme (unix://, tcp://, tls://, udp://, sysv://, shm://)");
}

int url_default_listen(char *out, size_t n)
{
	int k;
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		k = snprintf(out, n, "unix://%s", URL_SYSTEM_SOCKET);
	else if (xdg && xdg[0] == '/')
		k = snprintf(out, n, "unix://%s/ipcbus/ipcbus.sock", xdg);
	else
		k = snprintf(out, n, "unix:///tmp/ipcbus-%u/ipcbus.sock", (unsigned)geteuid());
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

int url_default_client(char *out, size_t n)
{
	const char *env = getenv("IPCBUS_URL");
	int k;

	if (env && *env) {
		k = snprintf(out, n, "%s", env);
		return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
	}
	if (geteuid() != 0) {
		int rc = url_default_listen(out, n);
		struct stat st;
		if (rc < 0)
			return rc;
		if (stat(out + strlen("unix://"), &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
	}
	k = snprintf(out, n, "unix://%s", URL_SYSTEM_SOCKET);
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

const char *url_scheme(enum url_kind kind)
{
	switch (kind) {
	case URL_UNIX: return "unix";
	case URL_TCP: return "tcp";
	case URL_TLS: return "tls";
	case URL_UDP: return "udp";
	case URL_SYSV: return "sysv";
	case URL_SHM: return "shm";
	}
	return "?";
}
