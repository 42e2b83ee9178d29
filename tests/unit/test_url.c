/*
 * test_url.c: url_parse() of every scheme (DESIGN.md, Transports): tokens
 * and their percent-encoding, IPv6 hosts, unix listen options, SysV keys in
 * all their spellings, and the errors for what does not parse.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <unistd.h>

#include "ipcbus.h"
#include "unit.h"
#include "url.h"

static char tmpdir[64];
static char tmpfile_path[128];

static int url_ok(const char *s, struct url *u)
{
	char err[256] = "";
	int rc = url_parse(s, u, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "url_parse(\"%s\"): %s\n", s, err);
	return rc == 0;
}

static void test_unix(void)
{
	struct url u;

	CU_ASSERT_FATAL(url_ok("unix:///tmp/x.sock", &u));
	CU_ASSERT_EQUAL(u.kind, URL_UNIX);
	CU_ASSERT_STRING_EQUAL(u.path, "/tmp/x.sock");
	CU_ASSERT_FALSE(u.has_mode);
	CU_ASSERT_STRING_EQUAL(u.group, "");

	CU_ASSERT_FATAL(url_ok("unix:///run/ipcbus/b.sock?mode=0660&group=ipcbus", &u));
	CU_ASSERT_STRING_EQUAL(u.path, "/run/ipcbus/b.sock");
	CU_ASSERT_TRUE(u.has_mode);
	CU_ASSERT_EQUAL(u.mode, 0660);
	CU_ASSERT_STRING_EQUAL(u.group, "ipcbus");

	CU_ASSERT_FATAL(url_ok("unix:///s?group=g", &u));
	CU_ASSERT_FALSE(u.has_mode);
	CU_ASSERT_STRING_EQUAL(u.group, "g");
	CU_ASSERT_FATAL(url_ok("unix:///s?mode=600", &u));
	CU_ASSERT_EQUAL(u.mode, 0600);
	CU_ASSERT_STRING_EQUAL(url_scheme(u.kind), "unix");
}

static void test_tcp_udp(void)
{
	struct url u;

	CU_ASSERT_FATAL(url_ok("tcp://127.0.0.1:4222", &u));
	CU_ASSERT_EQUAL(u.kind, URL_TCP);
	CU_ASSERT_STRING_EQUAL(u.host, "127.0.0.1");
	CU_ASSERT_EQUAL(u.port, 4222);
	CU_ASSERT_FALSE(u.has_token);

	CU_ASSERT_FATAL(url_ok("tcp://localhost:1", &u));
	CU_ASSERT_STRING_EQUAL(u.host, "localhost");
	CU_ASSERT_EQUAL(u.port, 1);
	CU_ASSERT_FATAL(url_ok("tcp://h:65535", &u));
	CU_ASSERT_EQUAL(u.port, 65535);

	CU_ASSERT_FATAL(url_ok("tcp://s3cret@host:4222", &u));
	CU_ASSERT_TRUE(u.has_token);
	CU_ASSERT_STRING_EQUAL(u.token, "s3cret");
	CU_ASSERT_STRING_EQUAL(u.host, "host");
	CU_ASSERT_EQUAL(u.port, 4222);

	/* percent-decoding: '@', ':', '%', '/' and a space inside the token */
	CU_ASSERT_FATAL(url_ok("tcp://a%40b%3Ac%25d%2fe%20f@host:9", &u));
	CU_ASSERT_STRING_EQUAL(u.token, "a@b:c%d/e f");
	CU_ASSERT_STRING_EQUAL(u.host, "host");
	CU_ASSERT_FATAL(url_ok("tcp://@host:9", &u)); /* an empty token is still given */
	CU_ASSERT_TRUE(u.has_token);
	CU_ASSERT_STRING_EQUAL(u.token, "");

	CU_ASSERT_FATAL(url_ok("tcp://[::1]:4222", &u));
	CU_ASSERT_STRING_EQUAL(u.host, "::1");
	CU_ASSERT_EQUAL(u.port, 4222);
	CU_ASSERT_FATAL(url_ok("tcp://tok@[fe80::1:2]:80", &u));
	CU_ASSERT_STRING_EQUAL(u.host, "fe80::1:2");
	CU_ASSERT_STRING_EQUAL(u.token, "tok");
	CU_ASSERT_EQUAL(u.port, 80);

	CU_ASSERT_FATAL(url_ok("udp://0.0.0.0:5000", &u));
	CU_ASSERT_EQUAL(u.kind, URL_UDP);
	CU_ASSERT_EQUAL(u.port, 5000);
	CU_ASSERT_FATAL(url_ok("udp://t@[::1]:5000", &u));
	CU_ASSERT_STRING_EQUAL(u.host, "::1");
	CU_ASSERT_STRING_EQUAL(u.token, "t");
	CU_ASSERT_STRING_EQUAL(url_scheme(URL_TCP), "tcp");
	CU_ASSERT_STRING_EQUAL(url_scheme(URL_UDP), "udp");
}

static void test_tls(void)
{
	struct url u;

	CU_ASSERT_FATAL(url_ok("tls://broker.example:4443", &u));
	CU_ASSERT_EQUAL(u.kind, URL_TLS);
	CU_ASSERT_STRING_EQUAL(u.host, "broker.example");
	CU_ASSERT_EQUAL(u.port, 4443);
	CU_ASSERT_FALSE(u.has_token);
	CU_ASSERT_STRING_EQUAL(u.ca, "");
	CU_ASSERT_STRING_EQUAL(u.cert, "");
	CU_ASSERT_STRING_EQUAL(u.key_file, "");
	CU_ASSERT_STRING_EQUAL(url_scheme(URL_TLS), "tls");

	CU_ASSERT_FATAL(url_ok("tls://s%40t@[::1]:4443?ca=/etc/ca.pem", &u));
	CU_ASSERT_TRUE(u.has_token);
	CU_ASSERT_STRING_EQUAL(u.token, "s@t");
	CU_ASSERT_STRING_EQUAL(u.host, "::1");
	CU_ASSERT_EQUAL(u.port, 4443);
	CU_ASSERT_STRING_EQUAL(u.ca, "/etc/ca.pem");
	CU_ASSERT_STRING_EQUAL(u.cert, "");

	/* any order; values percent-decoded ('&', '?', '%', ' ') */
	CU_ASSERT_FATAL(url_ok("tls://h:1?key=/k%26ey.pem&ca=ca%3F.pem&cert=/c%25 %20x.pem", &u));
	CU_ASSERT_STRING_EQUAL(u.host, "h");
	CU_ASSERT_EQUAL(u.port, 1);
	CU_ASSERT_STRING_EQUAL(u.key_file, "/k&ey.pem");
	CU_ASSERT_STRING_EQUAL(u.ca, "ca?.pem");
	CU_ASSERT_STRING_EQUAL(u.cert, "/c%  x.pem");
	CU_ASSERT_FATAL(url_ok("tls://h:1?cert=c&key=k", &u));
	CU_ASSERT_STRING_EQUAL(u.cert, "c");
	CU_ASSERT_STRING_EQUAL(u.key_file, "k");

	/* a value longer than the field is refused, not cut */
	char lng[1200];
	int k = snprintf(lng, sizeof lng, "tls://h:1?ca=");
	memset(lng + k, 'a', sizeof lng - (size_t)k - 1);
	lng[sizeof lng - 1] = 0;
	CU_ASSERT_EQUAL(url_parse(lng, &u, NULL, 0), IPCBUS_EURL);
	lng[k + sizeof u.ca] = 0; /* one more than there is room for */
	CU_ASSERT_EQUAL(url_parse(lng, &u, NULL, 0), IPCBUS_EURL);
	lng[k + sizeof u.ca - 1] = 0; /* with its NUL, exactly the room */
	CU_ASSERT(url_ok(lng, &u));
	CU_ASSERT_EQUAL(strlen(u.ca), sizeof u.ca - 1);

	/* the other schemes keep their fields empty */
	CU_ASSERT_FATAL(url_ok("tcp://h:1", &u));
	CU_ASSERT_STRING_EQUAL(u.ca, "");
}

static void test_redact(void)
{
	char out[128], err[256];
	struct url u;

	url_redact("tcp://s3cret@h:1", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "tcp://***@h:1");
	url_redact("tls://a%40b@[::1]:1?ca=/x@y", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "tls://***@[::1]:1?ca=/x@y");
	url_redact("udp://@h:1", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "udp://***@h:1");
	/* no token: as it is; an '@' after '?' is not a token's */
	url_redact("tls://h:1?ca=/x@y", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "tls://h:1?ca=/x@y");
	url_redact("unix:///tmp/a@b.sock", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "unix:///tmp/a@b.sock");
	url_redact("tcp://s3cret@h:1", out, 8);
	CU_ASSERT_STRING_EQUAL(out, "tcp://*");
	url_redact("tcp://s3cret@h:1", out, 0); /* no room: nothing written */

	/* the parser's reasons do not show the token */
	CU_ASSERT_EQUAL(url_parse("tcp://s3cret@h:0", &u, err, sizeof err), IPCBUS_EURL);
	CU_ASSERT(strstr(err, "s3cret") == NULL);
	CU_ASSERT(strncmp(err, "tcp://***@h:0: ", 15) == 0);
	CU_ASSERT_EQUAL(url_parse("tls://s3cret@h:1?bad=1", &u, err, sizeof err), IPCBUS_EURL);
	CU_ASSERT(strstr(err, "s3cret") == NULL);
}

static void test_keys(void)
{
	struct url u;
	long key;
	char s[256];

	CU_ASSERT_FATAL(url_ok("sysv://0x1234", &u));
	CU_ASSERT_EQUAL(u.kind, URL_SYSV);
	CU_ASSERT_EQUAL(u.key, 0x1234);
	CU_ASSERT_STRING_EQUAL(u.keyspec, "0x1234");
	CU_ASSERT_FATAL(url_ok("sysv://4660", &u));
	CU_ASSERT_EQUAL(u.key, 4660);
	CU_ASSERT_FATAL(url_ok("shm://0X7fffffff", &u));
	CU_ASSERT_EQUAL(u.kind, URL_SHM);
	CU_ASSERT_EQUAL(u.key, 0x7fffffff);
	CU_ASSERT_STRING_EQUAL(url_scheme(URL_SYSV), "sysv");
	CU_ASSERT_STRING_EQUAL(url_scheme(URL_SHM), "shm");

	/* paths: ftok(path, 1), or the given ID */
	snprintf(s, sizeof s, "sysv://%s", tmpfile_path);
	CU_ASSERT_FATAL(url_ok(s, &u));
	CU_ASSERT_EQUAL(u.key, (long)ftok(tmpfile_path, 1));
	CU_ASSERT_STRING_EQUAL(u.keyspec, tmpfile_path);
	snprintf(s, sizeof s, "shm://%s:7", tmpfile_path);
	CU_ASSERT_FATAL(url_ok(s, &u));
	CU_ASSERT_EQUAL(u.key, (long)ftok(tmpfile_path, 7));
	CU_ASSERT_NOT_EQUAL(u.key, (long)ftok(tmpfile_path, 1));
	snprintf(s, sizeof s, "%s:255", tmpfile_path);
	CU_ASSERT_EQUAL(url_parse_key(s, &key, NULL, 0), 0);
	CU_ASSERT_EQUAL(key, (long)ftok(tmpfile_path, 255));
	CU_ASSERT_EQUAL(url_parse_key("0x10", &key, NULL, 0), 0);
	CU_ASSERT_EQUAL(key, 16);

	/* the broker's queue's mode */
	CU_ASSERT_FATAL(url_ok("sysv://0x1234?mode=0620", &u));
	CU_ASSERT_EQUAL(u.key, 0x1234);
	CU_ASSERT_STRING_EQUAL(u.keyspec, "0x1234");
	CU_ASSERT(u.has_mode && u.mode == 0620);
	CU_ASSERT_FATAL(url_ok("sysv://0x1234", &u));
	CU_ASSERT_FALSE(u.has_mode);
	snprintf(s, sizeof s, "sysv://%s:9?mode=600", tmpfile_path);
	CU_ASSERT_FATAL(url_ok(s, &u));
	CU_ASSERT_EQUAL(u.key, (long)ftok(tmpfile_path, 9));
	CU_ASSERT(u.has_mode && u.mode == 0600);

	/* what a connection's queues are asked to hold */
	CU_ASSERT_FATAL(url_ok("sysv://0x1234?qbytes=262144", &u));
	CU_ASSERT(u.has_qbytes && u.qbytes == 262144);
	CU_ASSERT_FALSE(u.has_mode);
	CU_ASSERT_FATAL(url_ok("sysv://0x1234?mode=0620&qbytes=64k", &u));
	CU_ASSERT(u.has_mode && u.mode == 0620 && u.has_qbytes && u.qbytes == 65536);
	CU_ASSERT_FATAL(url_ok("sysv://0x1234?qbytes=2M&mode=0600", &u));
	CU_ASSERT(u.has_qbytes && u.qbytes == 2u << 20 && u.mode == 0600);
	CU_ASSERT_FATAL(url_ok("sysv://0x1234?qbytes=0", &u));
	CU_ASSERT(u.has_qbytes && u.qbytes == 0);
	CU_ASSERT_FATAL(url_ok("sysv://0x1234?qbytes=2147483647", &u));
	CU_ASSERT_EQUAL(u.qbytes, 2147483647UL);
	CU_ASSERT_FATAL(url_ok("sysv://0x1234", &u));
	CU_ASSERT_FALSE(u.has_qbytes);
}

static void test_errors(void)
{
	static const char *const bad[] = {
		"", "http://x:1", "unix:", "tcp:/h:1", "TCP://h:1",
		/* unix */
		"unix://", "unix://rel.sock", "unix:///s?mode=0999", "unix:///s?mode=abc",
		"unix:///s?mode=01777", "unix:///s?user=x", "unix:///s?mode=", "unix:///s?",
		/* tcp, udp */
		"tcp://host", "tcp://host:", "tcp://host:0", "tcp://host:65536", "tcp://host:-1",
		"tcp://host:80x", "tcp://:80", "tcp://[::1]", "tcp://[::1]80", "tcp://[::1",
		"tcp://[]:80", "tcp://a%zzb@h:1", "tcp://a%4@h:1", "tcp://a%@h:1",
		"tcp://a%00b@h:1", "udp://host", "udp://h:99999",
		/* tls */
		"tls://", "tls://host", "tls://host:0", "tls://[::1]", "tls://h:1?",
		"tls://h:1?ca", "tls://h:1?ca=", "tls://h:1?ca=a&", "tls://h:1?crt=x",
		"tls://h:1?ca=a&ca=b", "tls://h:1?cert=c", "tls://h:1?key=k",
		"tls://h:1?ca=a%zz", "tls://h:1?ca=a%00b", "tls://a%zz@h:1", "tls://h:1x?ca=a",
		"tls://h?ca=a:1", "TLS://h:1",
		/* keys */
		"sysv://", "sysv://0", "sysv://-1", "sysv://abc", "sysv://0x", "sysv://12ab",
		"sysv://0x80000000", "sysv://99999999999999999999", "shm://",
		"sysv:///nonexistent/ipcbus/test/path", "shm:///nonexistent/ipcbus/x:3",
		"sysv://0x1234?", "sysv://0x1234?mode=", "sysv://0x1234?mode=0999",
		"sysv://0x1234?mode=01600", "sysv://0x1234?group=x", "sysv://?mode=0600",
		"sysv://0x1234?qbytes=", "sysv://0x1234?qbytes=-1", "sysv://0x1234?qbytes=1g",
		"sysv://0x1234?qbytes=2147483648", "sysv://0x1234?qbytes=2048m",
		"sysv://0x1234?qbytes=12kk", "sysv://0x1234?qbytes= 5", "sysv://0x1234?qbytes=0x10",
		"sysv://0x1234?qbytes=99999999999999999999999", "sysv://0x1234?mode=0600&mode=0600",
		"sysv://0x1234?qbytes=1&qbytes=2", "sysv://0x1234?mode=0600&",
	};
	struct url u;
	char err[256];

	for (size_t i = 0; i < UNIT_NELEM(bad); i++) {
		err[0] = 0;
		int rc = url_parse(bad[i], &u, err, sizeof err);
		if (rc != IPCBUS_EURL)
			fprintf(stderr, "url_parse(\"%s\") = %d, want IPCBUS_EURL\n", bad[i], rc);
		CU_ASSERT_EQUAL(rc, IPCBUS_EURL);
		CU_ASSERT(strlen(err) > 0); /* a reason is given */
	}
	CU_ASSERT_EQUAL(url_parse(NULL, &u, err, sizeof err), IPCBUS_EURL);
	/* no room for a reason is fine */
	CU_ASSERT_EQUAL(url_parse("bogus", &u, NULL, 0), IPCBUS_EURL);
	CU_ASSERT_EQUAL(url_parse("bogus", &u, err, 1), IPCBUS_EURL);
	CU_ASSERT_EQUAL(err[0], 0);

	/* the path IDs: 1 to 255 */
	char s[256];
	long key;
	const char *ids[] = {":0", ":256", ":", ":x", ":-1", ":1x"};
	for (size_t i = 0; i < UNIT_NELEM(ids); i++) {
		snprintf(s, sizeof s, "%s%s", tmpfile_path, ids[i]);
		CU_ASSERT_EQUAL(url_parse_key(s, &key, NULL, 0), IPCBUS_EURL);
	}
	/* too long */
	char lng[600];
	memset(lng, 'a', sizeof lng);
	memcpy(lng, "unix:///", 8);
	lng[sizeof lng - 1] = 0;
	CU_ASSERT_EQUAL(url_parse(lng, &u, NULL, 0), IPCBUS_EURL);
	memcpy(lng, "tcp://", 6);
	lng[400] = ':';
	lng[401] = '1';
	lng[402] = 0;
	CU_ASSERT_EQUAL(url_parse(lng, &u, NULL, 0), IPCBUS_EURL);
	memcpy(lng, "sysv://", 7);
	lng[400] = 0;
	CU_ASSERT_EQUAL(url_parse(lng, &u, NULL, 0), IPCBUS_EURL);
}

static void test_defaults(void)
{
	char out[256], small[8];
	char *saved = getenv("IPCBUS_URL") ? strdup(getenv("IPCBUS_URL")) : NULL;

	CU_ASSERT_EQUAL(url_default_listen(out, sizeof out), 0);
	CU_ASSERT_EQUAL(strncmp(out, "unix:///", 8), 0);
	if (geteuid() == 0)
		CU_ASSERT_STRING_EQUAL(out, "unix:///run/ipcbus/ipcbus.sock");
	CU_ASSERT_EQUAL(url_default_listen(small, sizeof small), -ENAMETOOLONG);

	setenv("IPCBUS_URL", "tcp://h:1", 1);
	CU_ASSERT_EQUAL(url_default_client(out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "tcp://h:1");
	CU_ASSERT_EQUAL(url_default_client(small, 4), -ENAMETOOLONG);
	unsetenv("IPCBUS_URL");
	CU_ASSERT_EQUAL(url_default_client(out, sizeof out), 0);
	CU_ASSERT_EQUAL(strncmp(out, "unix:///", 8), 0);
	/* whatever default comes out parses */
	struct url u;
	CU_ASSERT(url_ok(out, &u));
	if (saved) {
		setenv("IPCBUS_URL", saved, 1);
		free(saved);
	}
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"unix", test_unix},
		{"tcp and udp", test_tcp_udp},
		{"tls and its options", test_tls},
		{"tokens are not shown", test_redact},
		{"sysv and shm keys", test_keys},
		{"errors", test_errors},
		{"default addresses", test_defaults},
	};
	int rc;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/ipcbus-test-url.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 99;
	snprintf(tmpfile_path, sizeof tmpfile_path, "%s/key", tmpdir);
	FILE *f = fopen(tmpfile_path, "w");
	if (!f) {
		rmdir(tmpdir);
		return 99;
	}
	fclose(f);
	rc = unit_run("url", cases, UNIT_NELEM(cases));
	unlink(tmpfile_path);
	rmdir(tmpdir);
	return rc;
}
