/*
 * test_cli.c: the ipcbus command ($IPCBUS_CLI) against a real broker.
 *
 * The other end of each exchange is the harness's raw client, so what the
 * CLI sends and prints is checked byte for byte: `pub` with a message and
 * with stdin lines (an empty line is an empty message, \r\n stripped, a
 * line over max-payload stops with an error naming it), refused publishes,
 * `sub` with -c, -v and --json (UTF-8 and base64 payloads, the headers
 * object with an array for a repeated key, reply_to), `req` and its exit
 * codes, `reply` in echo mode, a `sub` that outlives a broker restart,
 * --help, bad usage (exit 2), no broker at all, and a full broker (its
 * reason shown, not the broken pipe it leaves behind).
 */
#include <config.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ipcbus.h"

#define T 5000

static struct harness_raw *open_raw(const struct harness_broker *b, const char *name)
{
	struct harness_raw *r = harness_raw_open(b, name);
	CU_ASSERT_PTR_NOT_NULL(r);
	return r;
}

/* Print what a finished CLI run did, when a check on it failed. */
static void show(const struct harness_proc *p)
{
	fprintf(stderr, "\n  exit %d\n  stdout: %s\n  stderr: %s\n", p->status, p->out, p->err);
}

#define CHECK_EXIT(p, code)                    \
	do {                                   \
		CU_ASSERT_EQUAL((p)->status, code); \
		if ((p)->status != (code))     \
			show(p);               \
	} while (0)

/* Read MSGs from r until none comes for 500 ms; the payloads joined with
 * '|' into out. */
static size_t collect(struct harness_raw *r, char *out, size_t n)
{
	size_t k = 0, count = 0;
	out[0] = 0;
	while (harness_raw_read(r, 500) == 1) {
		if (r->f.type != IPCBUS__FRAME_TYPE__MSG)
			continue;
		k += (size_t)snprintf(out + k, k < n ? n - k : 0, "%s%.*s", count ? "|" : "",
				      (int)r->f.payload.len, (const char *)r->f.payload.p);
		count++;
	}
	return count;
}

/* s without white space outside JSON strings, for comparisons that do not
 * depend on formatting. */
static void json_squeeze(const char *s, char *out, size_t n)
{
	int in = 0, esc = 0;
	size_t k = 0;
	for (; *s && k + 1 < n; s++) {
		if (in) {
			if (esc)
				esc = 0;
			else if (*s == '\\')
				esc = 1;
			else if (*s == '"')
				in = 0;
		} else if (*s == '"') {
			in = 1;
		} else if (*s == ' ' || *s == '\t') {
			continue;
		}
		out[k++] = *s;
	}
	out[k] = 0;
}

/* ---- pub ---- */

static void test_pub_message(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_raw *sub = open_raw(b, "sub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 1, "cli.p", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(sub, T, NULL, NULL), 1);

	struct harness_proc *p = harness_cli(T, NULL, 0, "pub", "-u", b->url, "-H", "k=v=w", "-H",
					     "empty=", "cli.p", "hello world", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(harness_raw_is_msg(sub, 1, "hello world"));
	CU_ASSERT_EQUAL_FATAL(sub->f.nheaders, 2);
	size_t pos = 0;
	struct frame_header h;
	CU_ASSERT_EQUAL(frame_header_next(&sub->f, &pos, &h), 1);
	CU_ASSERT(h.key_len == 1 && memcmp(h.key, "k", 1) == 0); /* split at the first '=' */
	CU_ASSERT(h.value_len == 3 && memcmp(h.value, "v=w", 3) == 0);
	CU_ASSERT_EQUAL(frame_header_next(&sub->f, &pos, &h), 1);
	CU_ASSERT(h.key_len == 5 && h.value_len == 0);
	/* an empty message argument is an empty message */
	p = harness_cli(T, NULL, 0, "pub", "-u", b->url, "cli.p", "", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(harness_raw_is_msg(sub, 1, ""));
}

static void test_pub_stdin(void)
{
	struct harness_broker *b = harness_broker_up("max-payload 1k\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_raw *sub = open_raw(b, "sub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 1, "cli.lines", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(sub, T, NULL, NULL), 1);

	static const char in[] = "a\n\nb\r\nc c\n\r\nlast without newline";
	struct harness_proc *p = harness_cli(T, in, sizeof in - 1, "pub", "-u", b->url,
					     "cli.lines", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
	char got[512];
	CU_ASSERT_EQUAL(collect(sub, got, sizeof got), 6);
	CU_ASSERT_STRING_EQUAL(got, "a||b|c c||last without newline");

	/* a line over max-payload stops with an error naming the line */
	static char big[4096];
	int n = snprintf(big, sizeof big, "ok\n%01500d\nnever\n", 0);
	p = harness_cli(T, big, (size_t)n, "pub", "-u", b->url, "cli.lines", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT(p->status != 0 && p->status != -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "line 2"));
	collect(sub, got, sizeof got);
	CU_ASSERT_PTR_NULL(strstr(got, "never"));
}

static void test_pub_refused(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_proc *p = harness_cli(T, NULL, 0, "pub", "-u", b->url, "$SYS.x", "m", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "$SYS.x"));
	p = harness_cli(T, NULL, 0, "pub", "-u", b->url, "a..b", "m", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT(p->status != 0 && p->status != -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "a..b"));
}

/* ---- sub ---- */

static void test_sub_count(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_proc *s = harness_cli_start(NULL, 0, "sub", "-u", b->url, "-c", "3", "cli.s",
						   NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct harness_raw *pub = open_raw(b, "pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(pub, "cli.s", T), 0); /* 1: "probe" */
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cli.s", NULL, "x", 1), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cli.s", NULL, "", 0), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cli.s", NULL, "not printed", 11), 0);
	CU_ASSERT_EQUAL(harness_proc_wait(s, T), 0);
	CU_ASSERT_STRING_EQUAL(s->out, "probe\nx\n\n");
}

static void test_sub_verbose(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_proc *s = harness_cli_start(NULL, 0, "sub", "-u", b->url, "-v", "-c", "3",
						   "cli.v.*", "other", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct harness_raw *pub = open_raw(b, "pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(pub, "other", T), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cli.v.x.y", NULL, "no", 2), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cli.v.b", NULL, "two words", 9), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "other", NULL, "3", 1), 0);
	CU_ASSERT_EQUAL(harness_proc_wait(s, T), 0);
	CU_ASSERT_STRING_EQUAL(s->out, "other probe\ncli.v.b two words\nother 3\n");
}

static void test_sub_json(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_proc *s = harness_cli_start(NULL, 0, "sub", "-u", b->url, "--json", "-c", "5",
						   "cli.j", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct harness_raw *pub = open_raw(b, "pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	/* 1: the probe, a request (reply_to) */
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(pub, "cli.j", T), 0);
	/* 2: UTF-8 */
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cli.j", NULL, "h\xc3\xa9llo", 6), 0);
	/* 3: not UTF-8 */
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cli.j", NULL, "\xff\x00", 2), 0);
	/* 4: headers, one key twice */
	struct frame_header h[] = {
		{(const uint8_t *)"a", 1, (const uint8_t *)"1", 1},
		{(const uint8_t *)"b", 1, (const uint8_t *)"x", 1},
		{(const uint8_t *)"a", 1, (const uint8_t *)"2", 1},
	};
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB};
	f.channel = (struct frame_bytes){(const uint8_t *)"cli.j", 5, 1};
	f.payload = (struct frame_bytes){(const uint8_t *)"hdrs", 4, 1};
	CU_ASSERT_EQUAL(harness_raw_frame(pub, &f, h, 3), 0);
	/* 5: characters JSON must escape */
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cli.j", NULL, "say \"hi\"\\\n", 10), 0);
	CU_ASSERT_EQUAL(harness_proc_wait(s, T), 0);

	char line[5][512];
	const char *p = s->out;
	int n = 0;
	while (*p && n < 5) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		char raw[512];
		snprintf(raw, sizeof raw, "%.*s", (int)(nl - p), p);
		json_squeeze(raw, line[n++], sizeof line[0]);
		p = nl + 1;
	}
	CU_ASSERT_EQUAL_FATAL(n, 5);
	CU_ASSERT_STRING_EQUAL(p, "");
	for (int i = 0; i < n; i++) {
		CU_ASSERT(line[i][0] == '{' && line[i][strlen(line[i]) - 1] == '}');
		CU_ASSERT_PTR_NOT_NULL(strstr(line[i], "\"channel\":\"cli.j\""));
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(line[0], "\"payload\":\"probe\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(line[0], "\"reply_to\":\"_INBOX.harness.probe\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(line[1], "\"payload\":\"h\xc3\xa9llo\""));
	CU_ASSERT_PTR_NULL(strstr(line[1], "reply_to")); /* omitted when absent */
	CU_ASSERT_PTR_NOT_NULL(strstr(line[2], "\"payload_base64\":\"/wA=\""));
	CU_ASSERT_PTR_NULL(strstr(line[2], "\"payload\":"));
	CU_ASSERT_PTR_NOT_NULL(strstr(line[3], "\"a\":[\"1\",\"2\"]"));
	CU_ASSERT_PTR_NOT_NULL(strstr(line[3], "\"b\":\"x\""));
	CU_ASSERT(strstr(line[4], "\"payload\":\"say \\\"hi\\\"\\\\\\n\"") ||
		  strstr(line[4], "\"payload\":\"say \\\"hi\\\"\\\\\\u000a\"") ||
		  strstr(line[4], "\"payload\":\"say \\\"hi\\\"\\\\\\u000A\""));
	for (int i = 0; i < n; i++)
		if (!strstr(line[i], "\"headers\":{"))
			CU_FAIL("no headers object");
}

static void test_sub_survives_restart(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_proc *s = harness_cli_start(NULL, 0, "sub", "-u", b->url, "cli.rs", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct harness_raw *pub = open_raw(b, "pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(pub, "cli.rs", T), 0);
	CU_ASSERT_EQUAL(harness_proc_wait_out(s, "probe\n", T), 0);
	harness_raw_close(pub);

	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	harness_proc_pump(s, 300);
	CU_ASSERT_FALSE(s->exited);
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	pub = open_raw(b, "pub2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	CU_ASSERT_EQUAL(harness_raw_wait_interest(pub, "cli.rs", 15000), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cli.rs", NULL, "after", 5), 0);
	CU_ASSERT_EQUAL(harness_proc_wait_out(s, "after\n", T), 0);
	CU_ASSERT_FALSE(s->exited);
	CU_ASSERT_STRING_EQUAL(s->out, "probe\nprobe\nafter\n");
	/* Ctrl-C ends it, having printed everything */
	harness_proc_signal(s, SIGINT);
	CU_ASSERT(harness_proc_wait(s, T) >= 0);
	CU_ASSERT_STRING_EQUAL(s->out, "probe\nprobe\nafter\n");
}

/* ---- req and reply ---- */

static void test_req_reply(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_proc *r = harness_cli_start(NULL, 0, "reply", "-u", b->url, "cli.echo", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	struct harness_raw *raw = open_raw(b, "raw");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(raw, "cli.echo", T), 0);

	/* 0: the echo */
	struct harness_proc *p = harness_cli(T, NULL, 0, "req", "-u", b->url, "cli.echo",
					     "hi there", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
	CU_ASSERT_STRING_EQUAL(p->out, "hi there\n");
	/* 4: no responders, at once */
	uint64_t t0 = harness_now();
	p = harness_cli(T, NULL, 0, "req", "-u", b->url, "nobody.here", "q", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 4);
	CU_ASSERT(harness_now() - t0 < 3000);
	/* 3: a timeout, after about -t */
	CU_ASSERT_EQUAL(harness_raw_sub(raw, 1, 1, "cli.slow", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(raw, T, NULL, NULL), 1);
	t0 = harness_now();
	p = harness_cli(T, NULL, 0, "req", "-u", b->url, "-t", "200", "cli.slow", "q", NULL);
	uint64_t dt = harness_now() - t0;
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 3);
	CU_ASSERT(dt >= 190 && dt < 3000);
	CU_ASSERT_STRING_EQUAL(p->out, "");
	/* the request reached the silent subscriber, with a reply inbox */
	CU_ASSERT_EQUAL(harness_raw_read(raw, T), 1);
	CU_ASSERT(raw->f.type == IPCBUS__FRAME_TYPE__MSG && raw->f.reply_to.set &&
		  raw->f.reply_to.len >= 7 + 16 && memcmp(raw->f.reply_to.p, "_INBOX.", 7) == 0);
	/* the responder is still there */
	CU_ASSERT_FALSE(harness_proc_pump(r, 0));
	p = harness_cli(T, NULL, 0, "req", "-u", b->url, "-H", "x=y", "cli.echo", "again", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
	CU_ASSERT_STRING_EQUAL(p->out, "again\n");
}

static void test_reply_queue_group(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_proc *r1 = harness_cli_start(NULL, 0, "reply", "-u", b->url, "-q", "g",
						    "cli.qg", NULL);
	struct harness_proc *r2 = harness_cli_start(NULL, 0, "reply", "-u", b->url, "-q", "g",
						    "cli.qg", NULL);
	CU_ASSERT_FATAL(r1 && r2);
	struct harness_raw *raw = open_raw(b, "raw");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	/* each of the group gets one request at a time: once both are
	 * subscribed, each of 10 requests is answered exactly once */
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(raw, "cli.qg", T), 0);
	harness_sleep(200);
	for (int i = 0; i < 10; i++) {
		struct harness_proc *p = harness_cli(T, NULL, 0, "req", "-u", b->url, "cli.qg", "x",
						     NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		CHECK_EXIT(p, 0);
		CU_ASSERT_STRING_EQUAL(p->out, "x\n");
		harness_proc_free(p);
	}
}

/* ---- usage ---- */

static void test_help(void)
{
	static const char *const cmds[] = {"pub", "sub", "req", "reply", "bench"};
	struct harness_proc *p = harness_cli(T, NULL, 0, "--help", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
	CU_ASSERT(p->out_len > 0);
	for (size_t i = 0; i < HARNESS_NELEM(cmds); i++) {
		p = harness_cli(T, NULL, 0, cmds[i], "--help", NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		CHECK_EXIT(p, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(p->out, cmds[i]));
		p = harness_cli(T, NULL, 0, cmds[i], "-h", NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		CHECK_EXIT(p, 0);
	}
}

static void test_bad_usage(void)
{
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char url[128];
	snprintf(url, sizeof url, "unix://%s/nobody.sock", dir);
	const char *const usages[][6] = {
		{"nosuchcommand", NULL},
		{"pub", "-u", url, NULL},
		{"pub", "-u", url, "-Q", "x", NULL},
		{"pub", "-u", url, "-H", "novalue", NULL},
		{"pub", "-u", url, "a", "b", "c"},
		{"sub", "-u", url, NULL},
		{"sub", "-u", url, "-c", "abc", NULL},
		{"req", "-u", url, "x", NULL},
		{"req", "-u", url, "-t", "soon", NULL},
		{"reply", "-u", url, NULL},
		{"bench", "-u", url, "-n", "many", NULL},
		/* refused before connecting: else they would fail with 1 */
		{"pub", "-H", "ipcbus-error=x", "ch.x", "m", NULL}, /* reserved key */
		{"req", "-H", "ipcbus-exit-status=1", "ch.x", "m", NULL},
		{"sub", "-q", "bad group!", "ch.x", NULL},
		{"sub", "-q", "", "ch.x", NULL},
		{"reply", "-q", "a/b", "ch.x", NULL},
	};
	struct harness_proc *p = harness_cli(T, NULL, 0, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 2);
	for (size_t i = 0; i < HARNESS_NELEM(usages); i++) {
		const char *const *a = usages[i];
		p = harness_cli(T, NULL, 0, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		if (p->status != 2) {
			fprintf(stderr, "\n  ipcbus %s %s %s %s:", a[0], a[1] ? a[1] : "",
				a[1] && a[2] ? a[2] : "", a[1] && a[2] && a[3] ? a[3] : "");
			show(p);
			CU_FAIL("bad usage not exit 2");
		}
		CU_ASSERT(p->err_len > 0);
		harness_proc_free(p);
	}
}

static void test_no_broker(void)
{
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char url[128];
	snprintf(url, sizeof url, "unix://%s/nobody.sock", dir);
	const char *const runs[][4] = {
		{"pub", "x", "m", NULL},
		{"req", "x", "m", NULL},
		{"sub", "x", NULL, NULL},
	};
	for (size_t i = 0; i < HARNESS_NELEM(runs); i++) {
		uint64_t t0 = harness_now();
		struct harness_proc *p = harness_cli(T, NULL, 0, runs[i][0], "-u", url, runs[i][1],
						     runs[i][2], NULL);
		uint64_t dt = harness_now() - t0;
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		if (p->status <= 0 || p->status == 2 || dt > 2000) {
			fprintf(stderr, "\n  %s after %llu ms:", runs[i][0], (unsigned long long)dt);
			show(p);
			CU_FAIL("no broker: not a prompt, clear error");
		}
		CU_ASSERT(p->err_len > 0);
		/* the error names the place it tried */
		CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "nobody.sock"));
	}
}

/* A broker at max-connections answers a new connection with ERR
 * E_MAX_CONNECTIONS and closes it, usually before reading its HELLO: the
 * CLI's write may then fail with EPIPE, and before reading what the broker
 * said it used to report just that.  Each command runs several times, as
 * the race between the HELLO and the close goes either way. */
static void test_full_broker(void)
{
	struct harness_broker *b = harness_broker_up("max-connections 1\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	/* the harness's own probe of the socket may still hold the place for
	 * a moment */
	struct harness_raw *hold = NULL;
	for (int i = 0; i < 50 && !hold; i++) {
		hold = harness_raw_open(b, "holds the one place");
		if (!hold)
			harness_sleep(20);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(hold);
	const char *const runs[][3] = {
		{"pub", "full.x", "m"},
		{"req", "full.x", "m"},
		{"sub", "full.x", NULL},
	};
	for (int round = 0; round < 4; round++) {
		for (size_t i = 0; i < HARNESS_NELEM(runs); i++) {
			struct harness_proc *p = harness_cli(T, NULL, 0, runs[i][0], "-u", b->url,
							     runs[i][1], runs[i][2], NULL);
			CU_ASSERT_PTR_NOT_NULL_FATAL(p);
			int good = p->status == 1 &&
				   strstr(p->err, "the broker is full (max-connections 1)") &&
				   !strstr(p->err, "Broken pipe") && !strstr(p->err, "reset by peer");
			if (!good) {
				fprintf(stderr, "\n  %s, round %d:", runs[i][0], round);
				show(p);
				CU_FAIL("full broker: not the broker's reason");
			}
			harness_proc_free(p);
		}
	}
	/* the held connection is unharmed */
	CU_ASSERT_EQUAL(harness_raw_barrier(hold, T, NULL, NULL), 1);
}

static const struct harness_case cases[] = {
	{"pub_message", test_pub_message},
	{"pub_stdin", test_pub_stdin},
	{"pub_refused", test_pub_refused},
	{"sub_count", test_sub_count},
	{"sub_verbose", test_sub_verbose},
	{"sub_json", test_sub_json},
	{"sub_survives_restart", test_sub_survives_restart},
	{"req_reply", test_req_reply},
	{"reply_queue_group", test_reply_queue_group},
	{"help", test_help},
	{"bad_usage", test_bad_usage},
	{"no_broker", test_no_broker},
	{"full_broker", test_full_broker},
};

int main(int argc, char **argv)
{
	return harness_main("cli", cases, HARNESS_NELEM(cases), 1, 120, argc, argv);
}
