/*
 * conf.c: the configuration file reader (see ipcbus.conf(5)).
 *
 * One directive per line.  '#' at the start of a line or after white space
 * starts a comment; a value with spaces or '#' is double-quoted (\" and \\
 * inside).  An unknown directive, a bad value or a single-valued directive
 * given twice is an error, reported as FILE:LINE: reason.
 */
#include <config.h>

#include <errno.h>
#include <grp.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "conf.h"
#include "proto.h"
#include "url.h"

#define CONF_MAX_WORDS 12

void conf_init(struct conf *c)
{
	memset(c, 0, sizeof *c);
	c->max_payload = 1 << 20;
	c->max_header_bytes = 64 << 10;
	c->max_pending = 64 << 20;
	c->max_subscriptions = 10000;
	c->max_connections = 10000;
	c->max_memory = (uint64_t)1 << 30;
	c->drain_timeout = 5000;
	c->ping_interval = 30000;
	c->slow_consumer = SLOW_DROP;
}

void conf_fini(struct conf *c)
{
	for (size_t i = 0; i < c->nlisten; i++)
		free(c->listen[i]);
	free(c->pidfile);
	free(c->log);
	for (size_t i = 0; i < c->ntokens; i++) {
		free(c->tokens[i].name);
		if (c->tokens[i].secret)
			explicit_bzero(c->tokens[i].secret, c->tokens[i].len);
		free(c->tokens[i].secret);
	}
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ca);
	for (size_t i = 0; i < c->nbridges; i++) {
		struct conf_bridge *br = &c->bridges[i];
		if (br->url)
			explicit_bzero(br->url, strlen(br->url));
		free(br->url);
		for (size_t j = 0; j < br->npatterns; j++)
			free(br->patterns ? br->patterns[j] : NULL);
		free(br->patterns);
	}
	for (size_t i = 0; i < c->nbridge_allow; i++)
		free(c->bridge_allow[i]);
	for (size_t i = 0; i < c->nsysv; i++) {
		free(c->sysv[i].key_text);
		free(c->sysv[i].channel);
	}
	conf_init(c);
}

static int conf_fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int conf_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

int conf_parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t mul = 1;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end) {
		switch (*end) {
		case 'k': case 'K': mul = 1ULL << 10; break;
		case 'M': mul = 1ULL << 20; break;
		case 'G': mul = 1ULL << 30; break;
		default: return -1;
		}
		if (end[1])
			return -1;
	}
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* Split line into words in place.  Returns the count, or -1 with why. */
static int conf_split(char *line, char **w, char *why, size_t whylen)
{
	int n = 0;
	char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (!*p || *p == '#')
			return n;
		if (n == CONF_MAX_WORDS)
			return conf_fail(why, whylen, "too many values");
		if (*p == '"') {
			char *o = ++p;
			w[n++] = o;
			for (;;) {
				if (!*p)
					return conf_fail(why, whylen, "unterminated quote");
				if (*p == '"')
					break;
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				*o++ = *p++;
			}
			p++;
			if (*p && *p != ' ' && *p != '\t' && *p != '\r')
				return conf_fail(why, whylen, "text right after a closing quote");
			*o = 0;
			if (*p)
				p++;
		} else {
			w[n++] = p;
			while (*p && *p != ' ' && *p != '\t' && *p != '\r')
				p++;
			if (*p)
				*p++ = 0;
		}
	}
}

int conf_add_listen(struct conf *c, const char *u, char *why, size_t whylen)
{
	struct url url;
	char err[300];

	if (url_parse(u, &url, err, sizeof err) < 0)
		return conf_fail(why, whylen, "%s", err);
	if (url.kind == URL_SHM)
		return conf_fail(why, whylen, "%s:// listeners are not supported in this version (unix://, tcp://, tls://, udp:// and sysv:// only)",
				 url_scheme(url.kind));
	if (url.kind != URL_UNIX && url.has_token)
		return conf_fail(why, whylen, "%s: a listen URL holds no token (use a token line)", u);
	if (url.kind == URL_TLS && (url.ca[0] || url.cert[0] || url.key_file[0]))
		return conf_fail(why, whylen, "%s: the broker's certificate, key and CA are tls-cert, tls-key and tls-ca lines", u);
	if (url.group[0] && !getgrnam(url.group))
		return conf_fail(why, whylen, "%s: no group named %s (create it with groupadd)", u,
				 url.group);
	for (size_t i = 0; i < c->nlisten; i++)
		if (strcmp(c->listen[i], u) == 0)
			return conf_fail(why, whylen, "%s is listed twice", u);
	if (c->nlisten == CONF_MAX_LISTEN)
		return conf_fail(why, whylen, "more than %d listen URLs", CONF_MAX_LISTEN);
	c->listen[c->nlisten] = strdup(u);
	if (!c->listen[c->nlisten])
		return conf_fail(why, whylen, "out of memory");
	c->nlisten++;
	return 0;
}

struct conf_num {
	const char *name;
	size_t off;
	uint64_t min, max;
	const char *unit;
};

#define CONF_OFF(f) offsetof(struct conf, f)
static const struct conf_num conf_nums[] = {
	{"max-payload", CONF_OFF(max_payload), 1, 256ULL << 20, "bytes"},
	{"max-header-bytes", CONF_OFF(max_header_bytes), 64, 16ULL << 20, "bytes"},
	{"max-pending", CONF_OFF(max_pending), 64ULL << 10, 64ULL << 30, "bytes"},
	{"max-subscriptions", CONF_OFF(max_subscriptions), 1, 10000000, ""},
	{"max-connections", CONF_OFF(max_connections), 1, 1000000, ""},
	{"max-memory", CONF_OFF(max_memory), 1ULL << 20, 1ULL << 40, "bytes"},
	{"drain-timeout", CONF_OFF(drain_timeout), 0, 3600000, "ms"},
	{"ping-interval", CONF_OFF(ping_interval), 0, 86400000, "ms"},
};

static const char *const conf_unsupported[] = {
	"shm-in", "shm-out",
	"fifo-in", "fifo-out", "allow",
};

/* A token name: 1-64 of [A-Za-z0-9_-]. */
static int conf_token_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* token [NAME] SECRET */
static int conf_token(struct conf *c, char **w, int n, char *why, size_t whylen)
{
	if (n != 2 && n != 3)
		return conf_fail(why, whylen, "token takes [NAME] SECRET");
	const char *name = n == 3 ? w[1] : NULL;
	const char *secret = w[n - 1];
	if (name && !conf_token_name_ok(name))
		return conf_fail(why, whylen, "token name '%s': 1-64 of A-Z a-z 0-9 _ -", name);
	if (strlen(secret) < CONF_TOKEN_MIN)
		return conf_fail(why, whylen, "token: the secret must be at least %d characters",
				 CONF_TOKEN_MIN);
	for (size_t i = 0; i < c->ntokens; i++) {
		const struct conf_token *t = &c->tokens[i];
		if (!name && !t->name)
			return conf_fail(why, whylen, "token without a name given twice");
		if (name && t->name && strcmp(name, t->name) == 0)
			return conf_fail(why, whylen, "token %s given twice", name);
		if (strcmp(secret, t->secret) == 0)
			return conf_fail(why, whylen, "token: two tokens with the same secret");
	}
	if (c->ntokens == CONF_MAX_TOKENS)
		return conf_fail(why, whylen, "at most %d tokens", CONF_MAX_TOKENS);
	struct conf_token *t = &c->tokens[c->ntokens];
	t->name = name ? strdup(name) : NULL;
	t->secret = strdup(secret);
	t->len = strlen(secret);
	if ((name && !t->name) || !t->secret) {
		free(t->name);
		free(t->secret);
		t->name = t->secret = NULL;
		return conf_fail(why, whylen, "out of memory");
	}
	c->ntokens++;
	c->has_secrets = 1;
	return 0;
}

int conf_add_bridge(struct conf *c, const char *u, char *const *patterns, size_t n, char *why,
		    size_t whylen)
{
	struct url url;
	char err[256], shown[512];

	url_redact(u, shown, sizeof shown);
	if (url_parse(u, &url, err, sizeof err) < 0)
		return conf_fail(why, whylen, "bridge %s: %s", shown, err);
	if (url.kind != URL_TCP && url.kind != URL_TLS)
		return conf_fail(why, whylen, "bridge %s: a bridge goes to tcp:// or tls://", shown);
	if (n > CONF_MAX_BRIDGE_PATTERNS)
		return conf_fail(why, whylen, "bridge %s: at most %d patterns", shown,
				 CONF_MAX_BRIDGE_PATTERNS);
	for (size_t i = 0; i < n; i++)
		if (chan_valid_pattern(patterns[i], strlen(patterns[i])) < 0)
			return conf_fail(why, whylen, "bridge %s: invalid pattern '%s'", shown,
					 patterns[i]);
	for (size_t i = 0; i < c->nbridges; i++)
		if (strcmp(c->bridges[i].url, u) == 0)
			return conf_fail(why, whylen, "bridge %s is listed twice", shown);
	if (c->nbridges == CONF_MAX_BRIDGES)
		return conf_fail(why, whylen, "more than %d bridge lines", CONF_MAX_BRIDGES);
	struct conf_bridge *br = &c->bridges[c->nbridges];
	br->url = strdup(u);
	br->patterns = n ? calloc(n, sizeof *br->patterns) : NULL;
	int bad = !br->url || (n && !br->patterns);
	for (size_t i = 0; i < n && !bad; i++)
		bad = !(br->patterns[i] = strdup(patterns[i]));
	br->npatterns = n;
	c->nbridges++;
	if (bad)
		return conf_fail(why, whylen, "out of memory");
	if (url.has_token)
		c->has_secrets = 1;
	return 0;
}

/* bridge-allow IDENTITY... */
static int conf_bridge_allow(struct conf *c, char **w, int n, char *why, size_t whylen)
{
	if (n < 2)
		return conf_fail(why, whylen, "bridge-allow takes one or more identities (token:NAME, token, cert:CN)");
	for (int i = 1; i < n; i++) {
		const char *id = w[i];
		int cert = strncmp(id, "cert:", 5) == 0 && id[5] && strlen(id) < 5 + 64;
		for (const char *p = id + 5; cert && *p; p++)
			cert = (unsigned char)*p >= 0x21 && (unsigned char)*p <= 0x7e;
		if (strcmp(id, "token") != 0 && !cert &&
		    !(strncmp(id, "token:", 6) == 0 && conf_token_name_ok(id + 6)))
			return conf_fail(why, whylen, "bridge-allow: '%s' is not an identity (token:NAME, token or cert:CN)", id);
		if (c->nbridge_allow == CONF_MAX_BRIDGE_ALLOW)
			return conf_fail(why, whylen, "bridge-allow: at most %d identities",
					 CONF_MAX_BRIDGE_ALLOW);
		if (!(c->bridge_allow[c->nbridge_allow] = strdup(id)))
			return conf_fail(why, whylen, "out of memory");
		c->nbridge_allow++;
	}
	return 0;
}

/* The options after a raw bridge's fixed words: mode=OCTAL, keep or
 * remove, qbytes=SIZE; and for sysv-out wait=MS and backlog=SIZE. */
static int conf_sysv_options(struct conf_sysv *s, const char *name, char **w, int n, char *why,
			     size_t whylen)
{
	int kept = 0, mode = 0, wait = 0, backlog = 0, qbytes = 0;

	for (int i = 0; i < n; i++) {
		const char *o = w[i];
		const char *v = strchr(o, '=');
		char *end;
		if (strcmp(o, "keep") == 0 || strcmp(o, "remove") == 0) {
			if (kept++)
				return conf_fail(why, whylen, "%s: keep or remove, once", name);
			s->remove = o[0] == 'r';
		} else if (strncmp(o, "mode=", 5) == 0) {
			errno = 0;
			unsigned long m = strtoul(v + 1, &end, 8);
			if (mode++ || errno || end == v + 1 || *end || v[1] == '-' || m > 0777 ||
			    (m & 0600) != 0600)
				return conf_fail(why, whylen, "%s: mode=OCTAL, at most 0777, with the owner's read and write (0600)", name);
			s->mode = (unsigned)m;
		} else if (strncmp(o, "qbytes=", 7) == 0) {
			if (qbytes++ || conf_parse_size(v + 1, &s->qbytes) < 0 ||
			    s->qbytes > 0x7fffffffULL)
				return conf_fail(why, whylen, "%s: qbytes=SIZE (0 to 2G-1; 0 leaves the queue's)", name);
		} else if (s->out && strncmp(o, "wait=", 5) == 0) {
			if (wait++ || conf_parse_size(v + 1, &s->wait_ms) < 0 || s->wait_ms > 3600000)
				return conf_fail(why, whylen, "%s: wait=MS (0 to 3600000)", name);
		} else if (s->out && strncmp(o, "backlog=", 8) == 0) {
			if (backlog++ || conf_parse_size(v + 1, &s->backlog) < 0 ||
			    s->backlog > (1ULL << 30))
				return conf_fail(why, whylen, "%s: backlog=SIZE (0 to 1G)", name);
		} else {
			return conf_fail(why, whylen, "%s: unknown option '%s' (%s)", name, o,
					 s->out ? "mode=, keep, remove, qbytes=, wait=, backlog="
						: "mode=, keep, remove, qbytes=");
		}
	}
	return 0;
}

/* An MTYPE: a decimal number from min to LONG_MAX. */
static int conf_mtype(const char *s, long min, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min)
		return -1;
	*out = v;
	return 0;
}

/* sysv-in KEY MTYPE CHANNEL [OPTION]...
 * sysv-out PATTERN KEY MTYPE [OPTION]... */
static int conf_sysv(struct conf *c, char **w, int n, char *why, size_t whylen)
{
	int out = strcmp(w[0], "sysv-out") == 0;
	struct conf_sysv s = {.out = out, .mode = 0600, .wait_ms = 1000, .backlog = 1 << 20,
			      .qbytes = 1 << 20};
	char err[300];

	if (n < 4)
		return conf_fail(why, whylen, out ? "sysv-out takes PATTERN KEY MTYPE [OPTION]..."
						  : "sysv-in takes KEY MTYPE CHANNEL [OPTION]...");
	const char *key = out ? w[2] : w[1];
	const char *mtype = out ? w[3] : w[2];
	const char *chan = out ? w[1] : w[3];
	if (url_parse_key(key, &s.key, err, sizeof err) < 0)
		return conf_fail(why, whylen, "%s: %s", w[0], err);
	if (conf_mtype(mtype, out ? 1 : 0, &s.mtype) < 0)
		return conf_fail(why, whylen, out ? "sysv-out: MTYPE '%s' must be a number from 1 (msgsnd's mtype)"
						  : "sysv-in: MTYPE '%s' must be 0 (any type) or a number from 1",
				 mtype);
	size_t clen = strlen(chan);
	if (out) {
		if (chan_valid_pattern(chan, clen) < 0)
			return conf_fail(why, whylen, "sysv-out: invalid pattern '%s'", chan);
		if (chan_is_inbox_wildcard(chan, clen))
			return conf_fail(why, whylen, "sysv-out: pattern '%s' would take every client's replies", chan);
	} else {
		if (chan_valid_name(chan, clen) < 0)
			return conf_fail(why, whylen, "sysv-in: invalid channel name '%s' (a name, not a pattern)", chan);
		if (chan_is_system(chan, clen) || chan_is_inbox(chan, clen))
			return conf_fail(why, whylen, "sysv-in: '%s' is reserved (the broker's $ channels and reply inboxes)", chan);
	}
	if (conf_sysv_options(&s, w[0], w + 4, n - 4, why, whylen) < 0)
		return -1;
	for (size_t i = 0; i < c->nsysv; i++) {
		const struct conf_sysv *o = &c->sysv[i];
		if (o->key != s.key)
			continue;
		if (o->mode != s.mode || o->remove != s.remove || o->qbytes != s.qbytes)
			return conf_fail(why, whylen, "%s %s: the lines on one queue (key %s) must agree on mode=, keep or remove and qbytes=",
					 w[0], key, o->key_text);
		/* a receiver shares its queue with nobody who takes the same
		 * type: another receiver would steal half of its messages, and
		 * a sysv-out's messages would be read back and published again */
		if ((o->out && s.out) ||
		    (o->mtype && s.mtype && o->mtype != s.mtype))
			continue;
		if (!o->out && !s.out)
			return conf_fail(why, whylen, "sysv-in %s mtype %ld: another sysv-in on the same queue (key %s) takes that type",
					 key, s.mtype, o->key_text);
		const struct conf_sysv *sender = o->out ? o : &s;
		return conf_fail(why, whylen, "sysv-in and sysv-out on one queue (key %s) with mtype %ld: the broker would read back what it sends",
				 key, sender->mtype);
	}
	if (c->nsysv == CONF_MAX_SYSV)
		return conf_fail(why, whylen, "more than %d sysv-in and sysv-out lines", CONF_MAX_SYSV);
	s.key_text = strdup(key);
	s.channel = strdup(chan);
	if (!s.key_text || !s.channel) {
		free(s.key_text);
		free(s.channel);
		return conf_fail(why, whylen, "out of memory");
	}
	c->sysv[c->nsysv++] = s;
	return 0;
}

/* Mark a single-valued directive seen (bit i); -1 when it was already. */
static int conf_once(struct conf *c, unsigned bit, const char *name, char *why, size_t whylen)
{
	if (c->seen & (1u << bit))
		return conf_fail(why, whylen, "%s given twice", name);
	c->seen |= 1u << bit;
	return 0;
}

static int conf_string(char **dst, const char *v, char *why, size_t whylen)
{
	char *s = strdup(v);
	if (!s)
		return conf_fail(why, whylen, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

/* 1 when the folder of path (absolute) exists. */
static int conf_dir_exists(const char *path)
{
	char dir[4096];
	struct stat st;
	const char *slash = strrchr(path, '/');
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= sizeof dir)
		return 0;
	memcpy(dir, path, n);
	dir[n] = 0;
	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

int conf_line(struct conf *c, char *line, char *why, size_t whylen)
{
	char *w[CONF_MAX_WORDS];
	int n = conf_split(line, w, why, whylen);
	const size_t nnums = sizeof conf_nums / sizeof conf_nums[0];

	if (n <= 0)
		return n;
	for (size_t i = 0; i < sizeof conf_unsupported / sizeof conf_unsupported[0]; i++)
		if (strcmp(w[0], conf_unsupported[i]) == 0)
			return conf_fail(why, whylen, "%s is not supported in this version", w[0]);
	if (strcmp(w[0], "listen") == 0) {
		if (n != 2)
			return conf_fail(why, whylen, "listen takes one URL");
		return conf_add_listen(c, w[1], why, whylen);
	}
	for (size_t i = 0; i < nnums; i++) {
		const struct conf_num *d = &conf_nums[i];
		uint64_t v;
		if (strcmp(w[0], d->name))
			continue;
		if (n != 2)
			return conf_fail(why, whylen, "%s takes one value", d->name);
		if (conf_parse_size(w[1], &v) < 0)
			return conf_fail(why, whylen, "%s: '%s' is not a number (k, M, G suffixes allowed)",
					 d->name, w[1]);
		if (v < d->min || v > d->max)
			return conf_fail(why, whylen, "%s: %s is out of range (%llu to %llu%s%s)", d->name,
					 w[1], (unsigned long long)d->min, (unsigned long long)d->max,
					 *d->unit ? " " : "", d->unit);
		if (strcmp(d->name, "ping-interval") == 0 && v > 0 && v < 50)
			return conf_fail(why, whylen, "ping-interval: 0 (off) or at least 50 ms");
		if (conf_once(c, (unsigned)i, d->name, why, whylen) < 0)
			return -1;
		*(uint64_t *)(void *)((char *)c + d->off) = v;
		return 0;
	}
	if (strcmp(w[0], "slow-consumer") == 0) {
		if (n != 2 || (strcmp(w[1], "drop") && strcmp(w[1], "disconnect")))
			return conf_fail(why, whylen, "slow-consumer takes drop or disconnect");
		if (conf_once(c, nnums, w[0], why, whylen) < 0)
			return -1;
		c->slow_consumer = strcmp(w[1], "drop") == 0 ? SLOW_DROP : SLOW_DISCONNECT;
		return 0;
	}
	if (strcmp(w[0], "pidfile") == 0) {
		if (n != 2 || w[1][0] != '/')
			return conf_fail(why, whylen, "pidfile takes an absolute path");
		if (conf_once(c, nnums + 1, w[0], why, whylen) < 0)
			return -1;
		return conf_string(&c->pidfile, w[1], why, whylen);
	}
	if (strcmp(w[0], "token") == 0)
		return conf_token(c, w, n, why, whylen);
	if (strcmp(w[0], "bridge") == 0) {
		if (n < 2)
			return conf_fail(why, whylen, "bridge takes URL [PATTERN]...");
		return conf_add_bridge(c, w[1], w + 2, (size_t)n - 2, why, whylen);
	}
	if (strcmp(w[0], "bridge-allow") == 0)
		return conf_bridge_allow(c, w, n, why, whylen);
	if (strcmp(w[0], "sysv-in") == 0 || strcmp(w[0], "sysv-out") == 0)
		return conf_sysv(c, w, n, why, whylen);
	static const char *const files[] = {"tls-cert", "tls-key", "tls-ca"};
	for (unsigned i = 0; i < 3; i++) {
		char **dst[] = {&c->tls_cert, &c->tls_key, &c->tls_ca};
		if (strcmp(w[0], files[i]))
			continue;
		if (n != 2)
			return conf_fail(why, whylen, "%s takes one file", w[0]);
		if (access(w[1], R_OK) < 0)
			return conf_fail(why, whylen, "%s %s: %s", w[0], w[1], strerror(errno));
		if (conf_once(c, (unsigned)nnums + 3 + i, w[0], why, whylen) < 0)
			return -1;
		if (i == 1)
			c->has_secrets = 1;
		return conf_string(dst[i], w[1], why, whylen);
	}
	if (strcmp(w[0], "log") == 0) {
		if (n != 2 || (strcmp(w[1], "stderr") && strcmp(w[1], "syslog") && w[1][0] != '/'))
			return conf_fail(why, whylen, "log takes stderr, syslog or an absolute path");
		if (w[1][0] == '/' && !conf_dir_exists(w[1]))
			return conf_fail(why, whylen, "log %s: its folder does not exist", w[1]);
		if (conf_once(c, nnums + 2, w[0], why, whylen) < 0)
			return -1;
		return conf_string(&c->log, w[1], why, whylen);
	}
	return conf_fail(why, whylen, "unknown directive '%s'", w[0]);
}

int conf_load(struct conf *c, const char *path, FILE *err)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int errors = 0;
	unsigned lineno = 0, last_limit = 0, secret_line = 0, tls_line = 0;

	if (!f) {
		int rc = -errno;
		fprintf(err, "%s: %s\n", path, strerror(-rc));
		return rc;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char why[512];
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = 0;
		if (memchr(line, 0, (size_t)n)) {
			fprintf(err, "%s:%u: a NUL byte in the line\n", path, lineno);
			errors++;
			continue;
		}
		uint32_t seen = c->seen;
		size_t nlisten = c->nlisten;
		if (conf_line(c, line, why, sizeof why) < 0) {
			fprintf(err, "%s:%u: %s\n", path, lineno, why);
			errors++;
		}
		/* for the checks at the end, which need the whole file */
		if (c->has_secrets && !secret_line)
			secret_line = lineno;
		if (c->nlisten > nlisten && !tls_line && strncmp(c->listen[nlisten], "tls://", 6) == 0)
			tls_line = lineno;
		/* bits 2 and 5: max-pending and max-memory (conf_nums order) */
		if ((c->seen ^ seen) & (1u << 2 | 1u << 5))
			last_limit = lineno; /* for the cross-check below */
	}
	free(line);
	struct stat st;
	if (c->has_secrets && fstat(fileno(f), &st) == 0 && (st.st_mode & S_IROTH)) {
		fprintf(err, "%s:%u: a token, tls-key or bridge line with a token, but the file is readable by others (mode %04o): chmod o-r %s\n",
			path, secret_line, (unsigned)(st.st_mode & 07777), path);
		errors++;
	}
	fclose(f);
	if (tls_line && (!c->tls_cert || !c->tls_key)) {
		fprintf(err, "%s:%u: a tls:// listener needs tls-cert and tls-key lines\n", path, tls_line);
		errors++;
	}
	if (c->max_memory < c->max_pending) {
		fprintf(err, "%s:%u: max-memory (%llu) is less than max-pending (%llu)\n", path,
			last_limit, (unsigned long long)c->max_memory, (unsigned long long)c->max_pending);
		errors++;
	}
	return errors;
}
