/*
 * test_conf.c: the configuration reader (broker/conf.c): each directive on
 * good and bad lines, comments, quoting, size suffixes, ranges, repeats of
 * single-valued directives, directives this version does not support, and
 * conf_load() on a file reporting FILE:LINE: reason.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "unit.h"

/* conf_line() on a copy of s (it writes into the line). */
static int line(struct conf *c, const char *s, char *why, size_t n)
{
	char buf[1024];
	snprintf(buf, sizeof buf, "%s", s);
	why[0] = 0;
	return conf_line(c, buf, why, n);
}

/* The line is refused, with a reason holding want (may be NULL). */
static int refused(const char *s, const char *want)
{
	struct conf c;
	char why[512];
	conf_init(&c);
	int rc = line(&c, s, why, sizeof why);
	conf_fini(&c);
	if (rc != -1 || !why[0] || (want && !strstr(why, want))) {
		fprintf(stderr, "\n  '%s': rc %d, reason '%s' (wanted '%s')\n", s, rc, why,
			want ? want : "any");
		return 0;
	}
	return 1;
}

static void test_defaults(void)
{
	struct conf c;
	conf_init(&c);
	CU_ASSERT_EQUAL(c.max_payload, 1 << 20);
	CU_ASSERT_EQUAL(c.max_header_bytes, 64 << 10);
	CU_ASSERT_EQUAL(c.max_pending, 64 << 20);
	CU_ASSERT_EQUAL(c.max_subscriptions, 10000);
	CU_ASSERT_EQUAL(c.max_connections, 10000);
	CU_ASSERT_EQUAL(c.max_memory, (uint64_t)1 << 30);
	CU_ASSERT_EQUAL(c.drain_timeout, 5000);
	CU_ASSERT_EQUAL(c.slow_consumer, SLOW_DROP);
	CU_ASSERT_EQUAL(c.nlisten, 0);
	CU_ASSERT_PTR_NULL(c.pidfile);
	CU_ASSERT_PTR_NULL(c.log);
	conf_fini(&c);
}

static void test_good_lines(void)
{
	struct conf c;
	char why[512];

	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "max-payload 2M", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_payload, 2u << 20);
	CU_ASSERT_EQUAL(line(&c, "max-header-bytes 64", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_header_bytes, 64);
	CU_ASSERT_EQUAL(line(&c, "max-pending 64k", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_pending, 64u << 10);
	CU_ASSERT_EQUAL(line(&c, "max-subscriptions 1", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_subscriptions, 1);
	CU_ASSERT_EQUAL(line(&c, "max-connections 1000000", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_connections, 1000000);
	CU_ASSERT_EQUAL(line(&c, "max-memory 1G", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_memory, 1u << 30);
	CU_ASSERT_EQUAL(line(&c, "drain-timeout 0", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.drain_timeout, 0);
	CU_ASSERT_EQUAL(line(&c, "ping-interval 0", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.ping_interval, 0);
	CU_ASSERT_EQUAL(line(&c, "slow-consumer disconnect", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.slow_consumer, SLOW_DISCONNECT);
	CU_ASSERT_EQUAL(line(&c, "pidfile /run/ipcbusd.pid", why, sizeof why), 0);
	CU_ASSERT_STRING_EQUAL(c.pidfile, "/run/ipcbusd.pid");
	CU_ASSERT_EQUAL(line(&c, "log /var/log/ipcbusd.log", why, sizeof why), 0);
	CU_ASSERT_STRING_EQUAL(c.log, "/var/log/ipcbusd.log");
	CU_ASSERT_EQUAL(line(&c, "listen unix:///tmp/a.sock", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "listen unix:///tmp/b.sock?mode=0660", why, sizeof why), 0);
	CU_ASSERT_EQUAL_FATAL(c.nlisten, 2); /* listen is repeatable */
	CU_ASSERT_STRING_EQUAL(c.listen[0], "unix:///tmp/a.sock");
	CU_ASSERT_STRING_EQUAL(c.listen[1], "unix:///tmp/b.sock?mode=0660");
	conf_fini(&c);

	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "slow-consumer drop", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.slow_consumer, SLOW_DROP);
	CU_ASSERT_EQUAL(line(&c, "log syslog", why, sizeof why), 0);
	CU_ASSERT_STRING_EQUAL(c.log, "syslog");
	CU_ASSERT_EQUAL(line(&c, "ping-interval 50", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.ping_interval, 50);
	/* white space: tabs, several blanks, a trailing \r */
	CU_ASSERT_EQUAL(line(&c, "\tmax-payload \t 3k  \r", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_payload, 3u << 10);
	conf_fini(&c);

	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "log stderr", why, sizeof why), 0);
	CU_ASSERT_STRING_EQUAL(c.log, "stderr");
	conf_fini(&c);
}

static void test_comments_and_blanks(void)
{
	struct conf c;
	char why[512];

	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "   \t ", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "# max-payload 1", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "   # indented comment", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_payload, 1 << 20);
	CU_ASSERT_EQUAL(line(&c, "max-payload 1k # a comment after white space", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_payload, 1024);
	CU_ASSERT_EQUAL(line(&c, "max-pending 1M\t# after a tab", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_pending, 1u << 20);
	conf_fini(&c);
	/* '#' inside a word is not a comment */
	CU_ASSERT(refused("max-payload 1k#x", NULL));
}

static void test_quoting(void)
{
	struct conf c;
	char why[512];

	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "pidfile \"/tmp/with space/x.pid\"", why, sizeof why), 0);
	CU_ASSERT_STRING_EQUAL(c.pidfile, "/tmp/with space/x.pid");
	CU_ASSERT_EQUAL(line(&c, "log \"/tmp/a#b \\\"q\\\" \\\\.log\"  # comment", why, sizeof why), 0);
	CU_ASSERT_STRING_EQUAL(c.log, "/tmp/a#b \"q\" \\.log");
	CU_ASSERT_EQUAL(line(&c, "\"max-payload\" \"2k\"", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.max_payload, 2048);
	conf_fini(&c);
	CU_ASSERT(refused("pidfile \"/tmp/unterminated", "quote"));
	CU_ASSERT(refused("pidfile \"/tmp/x\"y", "quote"));
	/* an empty quoted value is a value, and a bad one here */
	CU_ASSERT(refused("pidfile \"\"", NULL));
}

static void test_sizes(void)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{"0", 0}, {"1", 1}, {"1k", 1024}, {"1K", 1024}, {"3M", 3u << 20},
		{"2G", 2ull << 30}, {"18446744073709551615", UINT64_MAX}, {"16G", 16ull << 30},
	};
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1x", "1kb", "1m", "1g", "1.5M", "k", "1 k", "0x10",
		"18446744073709551616", "17179869184G", "99999999999999999999",
	};
	for (size_t i = 0; i < UNIT_NELEM(good); i++) {
		uint64_t v = 12345;
		CU_ASSERT_EQUAL(conf_parse_size(good[i].s, &v), 0);
		CU_ASSERT_EQUAL(v, good[i].v);
	}
	for (size_t i = 0; i < UNIT_NELEM(bad); i++) {
		uint64_t v = 12345;
		if (conf_parse_size(bad[i], &v) != -1) {
			fprintf(stderr, "\n  size '%s' accepted as %llu\n", bad[i], (unsigned long long)v);
			CU_FAIL("bad size accepted");
		}
		CU_ASSERT_EQUAL(v, 12345); /* untouched */
	}
	CU_ASSERT(refused("max-payload lots", "not a number"));
	CU_ASSERT(refused("max-memory 1T", "not a number"));
}

static void test_ranges(void)
{
	CU_ASSERT(refused("max-payload 0", "out of range"));
	CU_ASSERT(refused("max-payload 257M", "out of range"));
	CU_ASSERT(refused("max-header-bytes 63", "out of range"));
	CU_ASSERT(refused("max-pending 63k", "out of range"));
	CU_ASSERT(refused("max-subscriptions 0", "out of range"));
	CU_ASSERT(refused("max-connections 0", "out of range"));
	CU_ASSERT(refused("max-connections 1000001", "out of range"));
	CU_ASSERT(refused("max-memory 1023k", "out of range"));
	CU_ASSERT(refused("drain-timeout 3600001", "out of range"));
	CU_ASSERT(refused("ping-interval 49", "ping-interval"));
	CU_ASSERT(refused("ping-interval 1", "ping-interval"));
	/* the bounds themselves are fine */
	struct conf c;
	char why[512];
	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "max-payload 256M", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "max-pending 64k", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "max-memory 1M", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "drain-timeout 3600000", why, sizeof why), 0);
	conf_fini(&c);
}

static void test_arity_and_values(void)
{
	CU_ASSERT(refused("max-payload", "one value"));
	CU_ASSERT(refused("max-payload 1 2", "one value"));
	CU_ASSERT(refused("listen", "one URL"));
	CU_ASSERT(refused("listen unix:///a.sock unix:///b.sock", "one URL"));
	CU_ASSERT(refused("slow-consumer", "drop or disconnect"));
	CU_ASSERT(refused("slow-consumer block", "drop or disconnect"));
	CU_ASSERT(refused("pidfile relative.pid", "absolute"));
	CU_ASSERT(refused("pidfile", "absolute"));
	CU_ASSERT(refused("log somewhere", "stderr, syslog"));
	CU_ASSERT(refused("listen notaurl", NULL));
	CU_ASSERT(refused("listen unix://relative.sock", NULL));
	CU_ASSERT(refused("a b c d e f g h i j k l m", "too many"));
}

static void test_repeats(void)
{
	static const char *const once[] = {
		"max-payload 1k", "max-header-bytes 1k", "max-pending 1M", "max-subscriptions 5",
		"max-connections 5", "max-memory 1G", "drain-timeout 10", "ping-interval 100",
		"slow-consumer drop", "pidfile /tmp/x.pid", "log stderr",
	};
	for (size_t i = 0; i < UNIT_NELEM(once); i++) {
		struct conf c;
		char why[512];
		conf_init(&c);
		CU_ASSERT_EQUAL(line(&c, once[i], why, sizeof why), 0);
		if (line(&c, once[i], why, sizeof why) != -1 || !strstr(why, "twice")) {
			fprintf(stderr, "\n  '%s' twice: '%s'\n", once[i], why);
			CU_FAIL("a single-valued directive accepted twice");
		}
		conf_fini(&c);
	}
	/* the same listen URL twice is an error too; two URLs are fine */
	struct conf c;
	char why[512];
	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "listen unix:///tmp/a.sock", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "listen unix:///tmp/a.sock", why, sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "twice"));
	CU_ASSERT_EQUAL(c.nlisten, 1);
	/* a refused value does not count as given */
	CU_ASSERT_EQUAL(line(&c, "max-payload 0", why, sizeof why), -1);
	CU_ASSERT_EQUAL(line(&c, "max-payload 1k", why, sizeof why), 0);
	conf_fini(&c);
}

static void test_unsupported(void)
{
	static const char *const lines[] = {
		"shm-in 0x10 a", "shm-out a.> 0x10", "fifo-in /tmp/f a", "fifo-out a.> /tmp/f",
		"allow alice pub a.>",
	};
	for (size_t i = 0; i < UNIT_NELEM(lines); i++)
		CU_ASSERT(refused(lines[i], "not supported"));
	CU_ASSERT(refused("listen shm://0x1234", "not supported"));
	CU_ASSERT(refused("listen tcp://secret@127.0.0.1:4222", "no token"));
	CU_ASSERT(refused("no-such-directive 1", "unknown directive"));
	CU_ASSERT(refused("Max-Payload 1k", "unknown directive")); /* case matters */
}

/* sysv-in and sysv-out: the fixed words, the options and their defaults,
 * and the pairs of lines that would share a queue's messages. */
static void test_sysv(void)
{
	struct conf c;
	char why[512];

	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "sysv-in 0x1234 1 legacy.in", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "sysv-out legacy.> 0x1235 7 mode=0640 remove wait=50 backlog=64k qbytes=0",
			     why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "sysv-in /tmp:3 0 any.type", why, sizeof why), 0);
	CU_ASSERT_EQUAL_FATAL(c.nsysv, 3);
	const struct conf_sysv *in = &c.sysv[0], *out = &c.sysv[1];
	CU_ASSERT_FALSE(in->out);
	CU_ASSERT_EQUAL(in->key, 0x1234);
	CU_ASSERT_EQUAL(in->mtype, 1);
	CU_ASSERT_STRING_EQUAL(in->channel, "legacy.in");
	CU_ASSERT_STRING_EQUAL(in->key_text, "0x1234");
	CU_ASSERT_EQUAL(in->mode, 0600);       /* owner-only unless configured */
	CU_ASSERT_FALSE(in->remove);           /* kept by default */
	CU_ASSERT_EQUAL(in->qbytes, 1 << 20);
	CU_ASSERT(out->out);
	CU_ASSERT_EQUAL(out->key, 0x1235);
	CU_ASSERT_EQUAL(out->mtype, 7);
	CU_ASSERT_STRING_EQUAL(out->channel, "legacy.>");
	CU_ASSERT_EQUAL(out->mode, 0640);
	CU_ASSERT(out->remove);
	CU_ASSERT_EQUAL(out->wait_ms, 50);
	CU_ASSERT_EQUAL(out->backlog, 64 << 10);
	CU_ASSERT_EQUAL(out->qbytes, 0);
	CU_ASSERT_EQUAL(c.sysv[2].mtype, 0);
	/* the defaults of sysv-out */
	CU_ASSERT_EQUAL(line(&c, "sysv-out x 0x1236 1", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.sysv[3].wait_ms, 1000);
	CU_ASSERT_EQUAL(c.sysv[3].backlog, 1 << 20);
	/* two sysv-out lines on one queue and type are fine (two patterns) */
	CU_ASSERT_EQUAL(line(&c, "sysv-out y 0x1236 1", why, sizeof why), 0);
	/* the same queue written another way is the same queue */
	CU_ASSERT_EQUAL(line(&c, "sysv-in 4660 1 b", why, sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "another sysv-in"));
	/* a receiver of any type shares with nobody */
	CU_ASSERT_EQUAL(line(&c, "sysv-in 0x1234 0 b", why, sizeof why), -1);
	/* another type on the same queue is fine */
	CU_ASSERT_EQUAL(line(&c, "sysv-in 0x1234 2 b", why, sizeof why), 0);
	/* what sysv-out sends, a sysv-in on its queue would read back */
	CU_ASSERT_EQUAL(line(&c, "sysv-out z 0x1234 1", why, sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "read back"));
	CU_ASSERT_EQUAL(line(&c, "sysv-in 0x1236 1 back", why, sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "read back"));
	CU_ASSERT_EQUAL(line(&c, "sysv-out z 0x1234 3", why, sizeof why), 0);
	/* lines on one queue agree on how it is made and kept */
	CU_ASSERT_EQUAL(line(&c, "sysv-out z 0x1234 4 remove", why, sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "must agree"));
	CU_ASSERT_EQUAL(c.nsysv, 7);
	conf_fini(&c);

	static const struct {
		const char *line, *want;
	} bad[] = {
		{"sysv-in 0x1234 1", "KEY MTYPE CHANNEL"},
		{"sysv-out a.>", "PATTERN KEY MTYPE"},
		{"sysv-in 0 1 a", "KEY"},
		{"sysv-in zz 1 a", "KEY"},
		{"sysv-in /nonexistent/ipcbus/x 1 a", "ftok"},
		{"sysv-in 0x1234 -1 a", "MTYPE"},
		{"sysv-in 0x1234 1x a", "MTYPE"},
		{"sysv-out a 0x1234 0", "MTYPE"},
		{"sysv-in 0x1234 1 a.*", "invalid channel"},
		{"sysv-in 0x1234 1 $SYS.x", "reserved"},
		{"sysv-in 0x1234 1 _INBOX.x", "reserved"},
		{"sysv-out a..b 0x1234 1", "invalid pattern"},
		{"sysv-out _INBOX.> 0x1234 1", "replies"},
		{"sysv-in 0x1234 1 a mode=0400", "mode="},
		{"sysv-in 0x1234 1 a mode=01600", "mode="},
		{"sysv-in 0x1234 1 a mode=9", "mode="},
		{"sysv-in 0x1234 1 a keep remove", "once"},
		{"sysv-in 0x1234 1 a wait=10", "unknown option"},
		{"sysv-in 0x1234 1 a backlog=1k", "unknown option"},
		{"sysv-out a 0x1234 1 wait=1h", "wait="},
		{"sysv-out a 0x1234 1 wait=3600001", "wait="},
		{"sysv-out a 0x1234 1 backlog=2G", "backlog="},
		{"sysv-out a 0x1234 1 qbytes=2G", "qbytes="},
		{"sysv-out a 0x1234 1 mode=0600 mode=0600", "mode="},
		{"sysv-out a 0x1234 1 frobnicate", "unknown option"},
	};
	for (size_t i = 0; i < UNIT_NELEM(bad); i++)
		CU_ASSERT(refused(bad[i].line, bad[i].want));
}

/* conf_load on text written to a temporary file; the errors it printed in
 * *out (the caller frees). */
static int load_mode(const char *text, mode_t mode, struct conf *c, char *path, size_t pathlen,
		     char **out)
{
	snprintf(path, pathlen, "/tmp/ipcbus-test-conf.XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -9999;
	if (fchmod(fd, mode) < 0) {
		close(fd);
		unlink(path);
		return -9999;
	}
	size_t n = strlen(text);
	if (write(fd, text, n) != (ssize_t)n) {
		close(fd);
		unlink(path);
		return -9999;
	}
	close(fd);
	size_t len;
	FILE *err = open_memstream(out, &len);
	int rc = conf_load(c, path, err);
	fclose(err);
	unlink(path);
	return rc;
}

static int load(const char *text, struct conf *c, char *path, size_t pathlen, char **out)
{
	return load_mode(text, 0600, c, path, pathlen, out);
}

/* bridge URL [PATTERN]... and bridge-allow IDENTITY... */
static void test_bridges(void)
{
	struct conf c;
	char why[512];

	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "bridge tcp://10.0.0.2:4222", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "bridge tls://peer.example:4433?ca=/x.pem a.> b.*.c", why, sizeof why), 0);
	CU_ASSERT_EQUAL_FATAL(c.nbridges, 2);
	CU_ASSERT_EQUAL(c.bridges[0].npatterns, 0);
	CU_ASSERT_EQUAL_FATAL(c.bridges[1].npatterns, 2);
	CU_ASSERT_STRING_EQUAL(c.bridges[1].patterns[1], "b.*.c");
	CU_ASSERT_FALSE(c.has_secrets);
	CU_ASSERT_EQUAL(line(&c, "bridge tcp://secret-token-0123456789@10.0.0.3:1", why, sizeof why), 0);
	CU_ASSERT(c.has_secrets); /* the file must not be readable by others */
	CU_ASSERT_EQUAL(line(&c, "bridge tcp://10.0.0.2:4222", why, sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "listed twice"));
	CU_ASSERT_EQUAL(line(&c, "bridge-allow token:peer token", why, sizeof why), 0);
	CU_ASSERT_EQUAL_FATAL(c.nbridge_allow, 2);
	CU_ASSERT_STRING_EQUAL(c.bridge_allow[0], "token:peer");
	conf_fini(&c);

	CU_ASSERT(refused("bridge", "bridge takes URL"));
	CU_ASSERT(refused("bridge unix:///tmp/x.sock", "tcp:// or tls://"));
	CU_ASSERT(refused("bridge udp://127.0.0.1:5", "tcp:// or tls://"));
	CU_ASSERT(refused("bridge tcp://127.0.0.1", "port"));
	CU_ASSERT(refused("bridge tcp://127.0.0.1:5 a..b", "invalid pattern 'a..b'"));
	CU_ASSERT(refused("bridge tcp://127.0.0.1:5 a.>.b", "invalid pattern"));
	CU_ASSERT(refused("bridge-allow", "one or more identities"));
	CU_ASSERT(refused("bridge-allow alice", "not an identity"));
	CU_ASSERT(refused("bridge-allow token:", "not an identity"));
}

/* token [NAME] SECRET: one unnamed, any number named; secrets long and
 * distinct; a file holding them must not be readable by others. */
static void test_tokens(void)
{
	struct conf c;
	char why[512], path[64];
	char *out = NULL;

	conf_init(&c);
	CU_ASSERT_EQUAL(line(&c, "token 0123456789abcdef", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "token alice alice-secret-0123456789", why, sizeof why), 0);
	CU_ASSERT_EQUAL(line(&c, "token bob \"bob's secret with spaces\"", why, sizeof why), 0);
	CU_ASSERT_EQUAL(c.ntokens, 3);
	CU_ASSERT_PTR_NULL(c.tokens[0].name);
	CU_ASSERT_STRING_EQUAL(c.tokens[1].name, "alice");
	CU_ASSERT_STRING_EQUAL(c.tokens[2].secret, "bob's secret with spaces");
	CU_ASSERT_EQUAL(line(&c, "token 0123456789abcdefXX", why, sizeof why), -1);
	CU_ASSERT(strstr(why, "twice") != NULL);
	CU_ASSERT_EQUAL(line(&c, "token alice another-secret-0123456", why, sizeof why), -1);
	CU_ASSERT_EQUAL(line(&c, "token carol alice-secret-0123456789", why, sizeof why), -1);
	CU_ASSERT(strstr(why, "same secret") != NULL);
	conf_fini(&c);
	CU_ASSERT(refused("token short", "at least 16"));
	CU_ASSERT(refused("token bad.name 0123456789abcdef", "token name"));
	CU_ASSERT(refused("token a b c", "[NAME] SECRET"));
	CU_ASSERT(refused("tls-cert /nonexistent/cert.pem", "No such file"));

	conf_init(&c);
	CU_ASSERT_EQUAL(load_mode("token 0123456789abcdef\n", 0640, &c, path, sizeof path, &out), 0);
	free(out);
	conf_fini(&c);
	conf_init(&c);
	out = NULL;
	CU_ASSERT_EQUAL(load_mode("token 0123456789abcdef\n", 0644, &c, path, sizeof path, &out), 1);
	CU_ASSERT(out && strstr(out, "readable by others"));
	free(out);
	conf_fini(&c);
	/* no secrets: any mode */
	conf_init(&c);
	out = NULL;
	CU_ASSERT_EQUAL(load_mode("max-payload 2M\n", 0644, &c, path, sizeof path, &out), 0);
	free(out);
	conf_fini(&c);
}

static void test_load(void)
{
	struct conf c;
	char path[64], want[128];
	char *out = NULL;

	conf_init(&c);
	int rc = load("# good\n\nlisten unix:///tmp/x.sock\nmax-payload 2M # two\n"
		      "pidfile \"/tmp/a b.pid\"\n",
		      &c, path, sizeof path, &out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(out, "");
	CU_ASSERT_EQUAL(c.max_payload, 2u << 20);
	CU_ASSERT_STRING_EQUAL(c.pidfile, "/tmp/a b.pid");
	CU_ASSERT_EQUAL(c.nlisten, 1);
	free(out);
	conf_fini(&c);

	/* errors on lines 2, 4 and 6, each as FILE:LINE: reason; the last
	 * line has no newline */
	conf_init(&c);
	out = NULL;
	rc = load("max-payload 1k\nmax-payload 2k\nlog stderr\nbridge x\n# fine\nnonsense",
		  &c, path, sizeof path, &out);
	CU_ASSERT_EQUAL(rc, 3);
	snprintf(want, sizeof want, "%s:2: max-payload given twice\n", path);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	snprintf(want, sizeof want, "%s:4: bridge x: ", path);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	snprintf(want, sizeof want, "%s:6: unknown directive 'nonsense'", path);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	snprintf(want, sizeof want, "%s:1:", path);
	CU_ASSERT_PTR_NULL(strstr(out, want));
	CU_ASSERT_EQUAL(c.max_payload, 1024); /* the first value stays */
	free(out);
	conf_fini(&c);

	/* a NUL byte in a line */
	conf_init(&c);
	snprintf(path, sizeof path, "/tmp/ipcbus-test-conf.XXXXXX");
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "max-payload 1k\nlog std\0err\n", 27), 27);
	close(fd);
	size_t len;
	out = NULL;
	FILE *err = open_memstream(&out, &len);
	rc = conf_load(&c, path, err);
	fclose(err);
	unlink(path);
	snprintf(want, sizeof want, "%s:2: ", path);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "NUL"));
	free(out);
	conf_fini(&c);

	/* max-memory below max-pending */
	conf_init(&c);
	out = NULL;
	rc = load("max-pending 64M\nmax-memory 32M\n# end\n", &c, path, sizeof path, &out);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "max-memory"));
	{
		/* FILE:LINE: the line of the last of the two */
		char where[300];
		snprintf(where, sizeof where, "%s:2: max-memory", path);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, where));
	}
	free(out);
	conf_fini(&c);

	/* a file that is not there */
	conf_init(&c);
	out = NULL;
	size_t olen;
	err = open_memstream(&out, &olen);
	rc = conf_load(&c, "/nonexistent/ipcbus.conf", err);
	fclose(err);
	CU_ASSERT_EQUAL(rc, -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "/nonexistent/ipcbus.conf"));
	free(out);
	conf_fini(&c);
}

static void test_add_listen(void)
{
	struct conf c;
	char why[512], url[64];

	conf_init(&c);
	for (int i = 0; i < CONF_MAX_LISTEN; i++) {
		snprintf(url, sizeof url, "unix:///tmp/l%d.sock", i);
		CU_ASSERT_EQUAL(conf_add_listen(&c, url, why, sizeof why), 0);
	}
	CU_ASSERT_EQUAL(conf_add_listen(&c, "unix:///tmp/one-more.sock", why, sizeof why), -1);
	CU_ASSERT_EQUAL(c.nlisten, CONF_MAX_LISTEN);
	conf_fini(&c);
	CU_ASSERT_EQUAL(c.nlisten, 0); /* fini leaves defaults behind */
	CU_ASSERT_EQUAL(c.max_payload, 1 << 20);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"defaults", test_defaults},
		{"good_lines", test_good_lines},
		{"comments_and_blanks", test_comments_and_blanks},
		{"quoting", test_quoting},
		{"sizes", test_sizes},
		{"ranges", test_ranges},
		{"arity_and_values", test_arity_and_values},
		{"repeats", test_repeats},
		{"unsupported", test_unsupported},
		{"sysv", test_sysv},
		{"load", test_load},
		{"tokens", test_tokens},
		{"bridges", test_bridges},
		{"add_listen", test_add_listen},
	};
	return unit_run("conf", cases, UNIT_NELEM(cases));
}
