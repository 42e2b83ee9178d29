/*
 * conform_proto.c: the broker as a raw protocol client sees it, on every
 * transport -- the protocol half of what was
 * tests/integration/test_broker_proto.c (the daemon's half stays there).
 *
 * Every check the broker makes on what clients send (handle.c,
 * tr_stream.c), with the ERR code and id it must answer and whether the
 * connection stays; the limits (max-payload, max-header-bytes, the frame
 * limit, max-subscriptions, max-connections, max-pending for control
 * frames, running out of descriptors); keepalive and the HELLO deadline;
 * routing (wildcards, the first-token rule, overlapping subscriptions,
 * queue groups); draining at TERM; and the rules of docs/protocol.md one
 * case each (fields a frame type does not use, zero values, unknown
 * fields, the `$` and `_INBOX` rules, header keys, what happens before
 * HELLO, the keepalive bounds).  The client library would not let us send
 * most of these frames, so the harness's raw client speaks the protocol,
 * on the row's transport (conform_raw_connect, conform_raw_open).
 *
 * What a case needs of the transport is in the table at the end:
 * CONFORM_RAW for all (the raw client must speak the transport);
 * CONFORM_STREAM as well for the cases that write bytes rather than whole
 * frames (a length prefix alone, a frame a byte at a time, bodies made by
 * hand), that count on a second HELLO or a frame before HELLO being
 * refused (UDP has its own rules for both), that count on the broker's
 * PINGs, E_IDLE and the HELLO deadline (a UDP session has a lease instead,
 * and ends without a word), or that exercise a listener's accept path
 * (emfile, term_with_pending_accept) or the drain of a byte stream's
 * output; CONFORM_ACCEPT as well for the two that mean nothing where no
 * connection exists before a valid HELLO (sysv): emfile, hello_deadline.
 * The other cases with a part before HELLO check there what that row
 * promises instead (conform_unanswered: no answer, the refusal logged;
 * term_with_pending_accept: a HELLO waiting in the broker's queue).  The
 * bodies keep test_broker_proto.c's names for the suite's helpers (UP,
 * OPEN, quiet, struct seen, seen_frame, open_raw, T, E_*: defined below as
 * the suite's), so a case reads the same here as it did there.
 *
 * test_broker_proto.c's garbage case is not here: conform_cases.c's
 * garbage sends its three inputs (and three more) and checks the same
 * ERR codes.  The Unix socket's own checks of drain (no connect to the
 * socket file while stopping, the file removed) stay in
 * test_broker_proto.c as drain_socket.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conform.h"

/* short names for the suite's helpers (those the cases had in
 * test_broker_proto.c) */
#define T CONFORM_T
#define UP CONFORM_UP
#define OPEN CONFORM_OPEN
#define quiet conform_quiet
#define seen conform_seen
#define seen_frame conform_seen_frame
#define open_raw conform_raw_open

enum {
	E_PROTOCOL = IPCBUS__ERR_CODE__E_PROTOCOL,
	E_FRAME_TOO_BIG = IPCBUS__ERR_CODE__E_FRAME_TOO_BIG,
	E_VERSION = IPCBUS__ERR_CODE__E_VERSION,
	E_NO_HELLO = IPCBUS__ERR_CODE__E_NO_HELLO,
	E_MAX_CONNECTIONS = IPCBUS__ERR_CODE__E_MAX_CONNECTIONS,
	E_IDLE = IPCBUS__ERR_CODE__E_IDLE,
	E_SLOW_CONSUMER = IPCBUS__ERR_CODE__E_SLOW_CONSUMER,
	E_INVALID_CHANNEL = IPCBUS__ERR_CODE__E_INVALID_CHANNEL,
	E_PERMISSION = IPCBUS__ERR_CODE__E_PERMISSION,
	E_PAYLOAD_TOO_BIG = IPCBUS__ERR_CODE__E_PAYLOAD_TOO_BIG,
	E_HEADERS_TOO_BIG = IPCBUS__ERR_CODE__E_HEADERS_TOO_BIG,
	E_TOO_MANY_SUBS = IPCBUS__ERR_CODE__E_TOO_MANY_SUBS,
	E_UNKNOWN_SID = IPCBUS__ERR_CODE__E_UNKNOWN_SID,
	E_DUPLICATE_SID = IPCBUS__ERR_CODE__E_DUPLICATE_SID,
	E_NO_RESPONDERS = IPCBUS__ERR_CODE__E_NO_RESPONDERS,
	E_INVALID = IPCBUS__ERR_CODE__E_INVALID,
};

/* ---- the connection's start ---- */

static void test_hello_welcome(void)
{
	UP(b, "max-payload 2k\nmax-header-bytes 1k\nmax-subscriptions 7\nping-interval 1500\n");
	struct harness_raw *r = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL_FATAL(harness_raw_hello(r, 4242, 1, "hello-test"), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(r, T), 1);
	CU_ASSERT_EQUAL_FATAL(r->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(r->f.id, 4242); /* the WELCOME answers the HELLO's id */
	Ipcbus__Welcome *w = frame_unpack_welcome(&r->f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	CU_ASSERT_EQUAL(w->version, 1);
	CU_ASSERT(w->has_server_id && w->server_id.len > 0);
	CU_ASSERT(w->has_max_payload && w->max_payload == 2048);
	CU_ASSERT(w->has_max_header_bytes && w->max_header_bytes == 1024);
	CU_ASSERT(w->has_max_subscriptions && w->max_subscriptions == 7);
	CU_ASSERT(w->has_ping_interval_ms && w->ping_interval_ms == 1500);
	CU_ASSERT(w->has_client_id && w->client_id > 0);

	/* another connection: same broker, another client id */
	OPEN(r2, b, "second");
	CU_ASSERT_EQUAL(r2->welcome->server_id.len, w->server_id.len);
	CU_ASSERT(memcmp(r2->welcome->server_id.data, w->server_id.data, w->server_id.len) == 0);
	CU_ASSERT_NOT_EQUAL(r2->welcome->client_id, w->client_id);
	ipcbus__welcome__free_unpacked(w, NULL);
	CU_ASSERT(quiet(r));
}

/* A frame before HELLO: E_NO_HELLO, fatal; where there is no connection
 * before HELLO (sysv), no answer at all, and the broker serves the next. */
static void test_frame_before_hello(void)
{
	UP(b, "");
	int accept = conform_has(CONFORM_ACCEPT);
	struct harness_raw *r = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL_FATAL(harness_raw_pub(r, 9, "a.b", NULL, "x", 1), 0);
	if (accept) {
		CU_ASSERT(harness_raw_expect_err(r, E_NO_HELLO, 9, T));
		CU_ASSERT(r->err_fatal);
		CU_ASSERT(harness_raw_wait_closed(r, T));
	} else {
		CU_ASSERT(conform_unanswered(b, r));
	}

	/* a PING before HELLO is a frame before HELLO too */
	r = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL_FATAL(harness_raw_ping(r, 3), 0);
	if (accept) {
		CU_ASSERT(harness_raw_expect_err(r, E_NO_HELLO, 3, T));
		CU_ASSERT(harness_raw_wait_closed(r, T));
	} else {
		CU_ASSERT(conform_unanswered(b, r));
	}
	OPEN(next, b, "next");
	CU_ASSERT(quiet(next));
}

static void test_wrong_version(void)
{
	UP(b, "");
	struct harness_raw *r = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL_FATAL(harness_raw_hello(r, 1, 99, "future"), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_VERSION, 1, T));
	CU_ASSERT(r->err_fatal);
	/* names both versions */
	CU_ASSERT_PTR_NOT_NULL(strstr(r->err_text, "99"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r->err_text, "1"));
	CU_ASSERT(harness_raw_wait_closed(r, T));
}

static void test_second_hello(void)
{
	UP(b, "");
	OPEN(r, b, "twice");
	CU_ASSERT_EQUAL_FATAL(harness_raw_hello(r, 2, 1, "twice"), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_PROTOCOL, 2, T));
	CU_ASSERT(r->err_fatal);
	CU_ASSERT(harness_raw_wait_closed(r, T));
}

static void test_frame_too_big(void)
{
	UP(b, "");
	OPEN(other, b, "other");
	OPEN(r, b, "big");
	long rss0 = harness_broker_rss(b);
	CU_ASSERT(rss0 > 0);
	/* announce 512 MiB and send none of it: refused from the prefix */
	uint8_t prefix[FRAME_VARINT_MAX];
	size_t n = frame_varint_put(prefix, 512u << 20);
	CU_ASSERT_EQUAL(harness_raw_send(r, prefix, n), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_FRAME_TOO_BIG, UINT64_MAX, T));
	CU_ASSERT(r->err_fatal);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->err_text, "536870912"));
	CU_ASSERT(harness_raw_wait_closed(r, T));
	long rss1 = harness_broker_rss(b);
	CU_ASSERT(rss1 - rss0 < 16 * 1024); /* KiB: nothing near 512 MiB was allocated */

	/* the same with the frame limit itself plus one, as a 2-byte prefix
	 * on a tiny broker */
	struct harness_broker *b2 = conform_up("max-payload 64\nmax-header-bytes 64\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b2);
	OPEN(r2, b2, "limit");
	n = frame_varint_put(prefix, 64 + 64 + 1024 + 1);
	CU_ASSERT_EQUAL(harness_raw_send(r2, prefix, n), 0);
	CU_ASSERT(harness_raw_expect_err(r2, E_FRAME_TOO_BIG, UINT64_MAX, T));
	CU_ASSERT(harness_raw_wait_closed(r2, T));

	CU_ASSERT(quiet(other));
}

/* ---- recoverable refusals: ERR with the frame's id, the connection stays ---- */

static void test_payload_too_big(void)
{
	UP(b, "max-payload 1k\nmax-header-bytes 1k\n");
	OPEN(sub, b, "sub");
	OPEN(r, b, "pub");
	CU_ASSERT_EQUAL_FATAL(harness_raw_sub(sub, 1, 1, "big", NULL), 0);
	CU_ASSERT(quiet(sub));
	static char payload[2000];
	memset(payload, 'p', sizeof payload);
	CU_ASSERT_EQUAL(harness_raw_pub(r, 42, "big", NULL, payload, 1025), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_PAYLOAD_TOO_BIG, 42, T));
	CU_ASSERT_FALSE(r->err_fatal);
	CU_ASSERT_FALSE(r->err_closing);
	CU_ASSERT_EQUAL(harness_raw_pub(r, 43, "big", NULL, payload, 2000), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_PAYLOAD_TOO_BIG, 43, T));
	/* still usable: exactly max-payload goes through */
	CU_ASSERT_EQUAL(harness_raw_pub(r, 44, "big", NULL, payload, 1024), 0);
	CU_ASSERT(quiet(r));
	struct seen s = {0};
	CU_ASSERT_EQUAL(harness_raw_barrier(sub, T, seen_frame, &s), 1);
	CU_ASSERT_EQUAL(s.msgs, 1);
	CU_ASSERT_EQUAL(s.errs, 0);
	CU_ASSERT_EQUAL(sub->f.type, IPCBUS__FRAME_TYPE__PONG);
}

static void test_headers_too_big(void)
{
	UP(b, "max-payload 1k\nmax-header-bytes 1k\n");
	OPEN(sub, b, "sub");
	OPEN(r, b, "pub");
	CU_ASSERT_EQUAL_FATAL(harness_raw_sub(sub, 1, 1, "hdr", NULL), 0);
	CU_ASSERT(quiet(sub));
	static char value[1100];
	memset(value, 'v', sizeof value);
	value[10] = 0; /* binary values are fine */
	struct frame_header h[2] = {
		{.key = (const uint8_t *)"k1", .key_len = 2, .value = (const uint8_t *)value,
		 .value_len = 600},
		{.key = (const uint8_t *)"k2", .key_len = 2, .value = (const uint8_t *)value,
		 .value_len = 500},
	};
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = 1, .id = 77};
	f.channel = (struct frame_bytes){.p = (const uint8_t *)"hdr", .len = 3, .set = 1};
	f.payload = (struct frame_bytes){.p = (const uint8_t *)"x", .len = 1, .set = 1};
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, h, 2), 0); /* 1104 bytes of headers */
	CU_ASSERT(harness_raw_expect_err(r, E_HEADERS_TOO_BIG, 77, T));
	CU_ASSERT_FALSE(r->err_fatal);
	/* exactly 1024 bytes of headers as encoded pass, intact */
	h[1].value_len = 1024 - frame_header_cost(2, 600);
	while (frame_header_cost(2, h[1].value_len) > 1024 - frame_header_cost(2, 600))
		h[1].value_len--;
	CU_ASSERT_EQUAL_FATAL(frame_header_cost(2, 600) + frame_header_cost(2, h[1].value_len), 1024);
	f.id = 78;
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, h, 2), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT_EQUAL_FATAL(sub->f.type, IPCBUS__FRAME_TYPE__MSG);
	CU_ASSERT_EQUAL(sub->f.nheaders, 2);
	size_t pos = 0;
	struct frame_header got;
	CU_ASSERT_EQUAL_FATAL(frame_header_next(&sub->f, &pos, &got), 1);
	CU_ASSERT(got.key_len == 2 && memcmp(got.key, "k1", 2) == 0);
	CU_ASSERT(got.value_len == 600 && memcmp(got.value, value, 600) == 0);
	CU_ASSERT_EQUAL_FATAL(frame_header_next(&sub->f, &pos, &got), 1);
	CU_ASSERT(got.key_len == 2 && memcmp(got.key, "k2", 2) == 0);
	CU_ASSERT_EQUAL(got.value_len, h[1].value_len);
	CU_ASSERT(got.value_len > 400);
	CU_ASSERT(quiet(sub));
}

static void test_invalid_channel(void)
{
	static const char *const bad_names[] = {
		"", "a..b", ".a", "a.", "a b", "a.*", "a.>", "*", ">", "a\tb", "caf\xc3\xa9", "a/b",
	};
	static const char *const bad_patterns[] = {
		"", "a.>.b", "a*", ">x", "a..b", ".", "a.b.", "a b", "*a", "$SYS.>x",
	};
	char long_name[300];

	UP(b, "");
	OPEN(r, b, "names");
	uint64_t id = 100;
	for (size_t i = 0; i < HARNESS_NELEM(bad_names); i++, id++) {
		CU_ASSERT_EQUAL(harness_raw_pub(r, id, bad_names[i], NULL, "x", 1), 0);
		if (!harness_raw_expect_err(r, E_INVALID_CHANNEL, id, T)) {
			fprintf(stderr, "  name '%s' was not refused\n", bad_names[i]);
			CU_FAIL("invalid channel name accepted");
		}
	}
	/* 255 bytes is the longest name; 256 is refused */
	memset(long_name, 'n', sizeof long_name);
	for (size_t i = 10; i < 255; i += 10)
		long_name[i] = '.';
	long_name[256] = 0;
	CU_ASSERT_EQUAL(harness_raw_pub(r, ++id, long_name, NULL, "x", 1), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_INVALID_CHANNEL, id, T));
	long_name[255] = 0;
	CU_ASSERT_EQUAL(harness_raw_pub(r, ++id, long_name, NULL, "x", 1), 0);
	CU_ASSERT(quiet(r));
	/* an invalid reply channel */
	CU_ASSERT_EQUAL(harness_raw_pub(r, ++id, "ok", "bad..inbox", "x", 1), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_INVALID_CHANNEL, id, T));

	for (size_t i = 0; i < HARNESS_NELEM(bad_patterns); i++, id++) {
		CU_ASSERT_EQUAL(harness_raw_sub(r, id, id, bad_patterns[i], NULL), 0);
		if (!harness_raw_expect_err(r, E_INVALID_CHANNEL, id, T)) {
			fprintf(stderr, "  pattern '%s' was not refused\n", bad_patterns[i]);
			CU_FAIL("invalid pattern accepted");
		}
	}
	/* all refusals were recoverable */
	CU_ASSERT_FALSE(r->err_fatal);
	CU_ASSERT(quiet(r));
}

static void test_system_channels(void)
{
	UP(b, "");
	OPEN(r, b, "sys");
	CU_ASSERT_EQUAL(harness_raw_pub(r, 5, "$SYS.x", NULL, "x", 1), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_PERMISSION, 5, T));
	CU_ASSERT_FALSE(r->err_fatal);
	CU_ASSERT_EQUAL(harness_raw_pub(r, 6, "$other.y", NULL, "x", 1), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_PERMISSION, 6, T));
	/* subscribing is allowed */
	CU_ASSERT_EQUAL(harness_raw_sub(r, 7, 1, "$SYS.>", NULL), 0);
	CU_ASSERT(quiet(r));
}

static void test_sub_errors(void)
{
	UP(b, "");
	OPEN(r, b, "sids");
	CU_ASSERT_EQUAL(harness_raw_sub(r, 1, 5, "a", NULL), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL(harness_raw_sub(r, 2, 5, "b", NULL), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_DUPLICATE_SID, 2, T));
	CU_ASSERT_EQUAL(harness_raw_unsub(r, 3, 99), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_UNKNOWN_SID, 3, T));
	CU_ASSERT_EQUAL(harness_raw_unsub(r, 4, 5), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL(harness_raw_unsub(r, 5, 5), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_UNKNOWN_SID, 5, T));
	/* the sid is free again, and the old pattern is gone */
	CU_ASSERT_EQUAL(harness_raw_sub(r, 6, 5, "b", NULL), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL(harness_raw_pub(r, 7, "a", NULL, "to-a", 4), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(r, 8, "b", NULL, "to-b", 4), 0);
	struct seen s = {0};
	CU_ASSERT_EQUAL(harness_raw_barrier(r, T, seen_frame, &s), 1);
	CU_ASSERT_EQUAL_FATAL(s.msgs, 1);
	CU_ASSERT_STRING_EQUAL(s.payload[0], "to-b");
	CU_ASSERT_EQUAL(s.sid[0], 5);
	CU_ASSERT_FALSE(r->err_fatal);
}

static void test_max_subscriptions(void)
{
	UP(b, "max-subscriptions 4\n");
	OPEN(r, b, "subs");
	for (uint64_t sid = 1; sid <= 4; sid++)
		CU_ASSERT_EQUAL(harness_raw_sub(r, sid, sid, "m.s", NULL), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL(harness_raw_sub(r, 50, 5, "m.s", NULL), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_TOO_MANY_SUBS, 50, T));
	CU_ASSERT_FALSE(r->err_fatal);
	CU_ASSERT_EQUAL(harness_raw_unsub(r, 51, 1), 0);
	CU_ASSERT_EQUAL(harness_raw_sub(r, 52, 5, "m.s", NULL), 0);
	CU_ASSERT(quiet(r));
	/* the bound is per connection */
	OPEN(r2, b, "subs2");
	for (uint64_t sid = 1; sid <= 4; sid++)
		CU_ASSERT_EQUAL(harness_raw_sub(r2, sid, sid, "m.s", NULL), 0);
	CU_ASSERT(quiet(r2));
}

static void test_max_connections(void)
{
	UP(b, "max-connections 3\n");
	struct harness_raw *c[3];
	for (int i = 0; i < 3; i++) {
		c[i] = open_raw(b, "full");
		CU_ASSERT_PTR_NOT_NULL_FATAL(c[i]);
	}
	struct harness_raw *extra = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(extra);
	harness_raw_hello(extra, 1, 1, "extra"); /* may fail: it is being closed */
	CU_ASSERT(harness_raw_expect_err(extra, E_MAX_CONNECTIONS, UINT64_MAX, T));
	CU_ASSERT(extra->err_closing);
	CU_ASSERT_FALSE(extra->err_fatal); /* the client may come back later */
	CU_ASSERT(harness_raw_wait_closed(extra, T));
	for (int i = 0; i < 3; i++)
		CU_ASSERT(quiet(c[i]));
	/* a place freed is a place taken */
	harness_raw_close(c[0]);
	struct harness_raw *again = NULL;
	uint64_t deadline = harness_now() + T;
	while (!again && harness_now() < deadline) {
		again = harness_raw_open_url(conform_url(b), "again");
		if (!again)
			harness_sleep(20);
	}
	CU_ASSERT_PTR_NOT_NULL(again);
	CU_ASSERT(harness_broker_log_has(b, "max-connections"));
}

/* CPU seconds (user + system) the process has used, or -1. */
static double proc_cpu(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	char *text = harness_read_file(path, NULL);
	char *p = text ? strrchr(text, ')') : NULL;
	unsigned long ut = 0, st = 0;
	double r = -1;
	/* after ')': state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			&st) == 2)
		r = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	free(text);
	return r;
}

/* Out of descriptors (EMFILE): the broker pauses accepting, says so, does
 * not spin, serves the connections it has, and accepts again once
 * descriptors are free. */
static void test_emfile(void)
{
	enum { NOFILE = 40, CLIENTS = 60 };
	struct harness_broker *b = conform_up_nofile("max-connections 1000\n", NOFILE);
	if (!b)
		return;
	OPEN(sub, b, "sub");
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 1, "em", NULL), 0);
	CU_ASSERT(quiet(sub));
	struct harness_raw *c[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		c[i] = conform_raw_connect(b); /* the backlog takes them all */
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "not accepting", T), 0);
	double cpu0 = proc_cpu(b->pid);
	harness_sleep(1000);
	double cpu1 = proc_cpu(b->pid);
	CU_ASSERT(cpu0 >= 0 && cpu1 >= 0);
	fprintf(stderr, "  (broker CPU while out of descriptors: %.2f s in 1 s)\n", cpu1 - cpu0);
	CU_ASSERT(cpu1 - cpu0 < 0.3); /* paused, not spinning */
	/* those it has are served */
	CU_ASSERT(quiet(sub));
	/* free descriptors: the waiting connections are accepted in turn */
	for (int i = 0; i < CLIENTS; i++)
		if (c[i])
			harness_raw_close(c[i]);
	struct harness_raw *late = NULL;
	uint64_t deadline = harness_now() + T;
	while (!late && harness_now() < deadline) {
		late = harness_raw_open_url(conform_url(b), "late");
		if (!late)
			harness_sleep(50);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(late);
	CU_ASSERT_EQUAL(harness_raw_pub(late, 0, "em", NULL, "x", 1), 0);
	CU_ASSERT_EQUAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(harness_raw_is_msg(sub, 1, "x"));
	CU_ASSERT(kill(b->pid, 0) == 0);
}

/* A client that sends PINGs (or bad frames) and never reads the answers
 * is disconnected once they pass its bound; the broker's memory stays
 * bounded and other clients are served. */
static void test_control_flood(void)
{
	UP(b, "max-pending 64k\nmax-memory 1M\n");
	OPEN(other, b, "other");
	OPEN(r, b, "flood");
	r->auto_pong = 0;
	long rss0 = harness_broker_rss(b);
	struct buf many;
	buf_init(&many, 64 << 20);
	for (uint64_t i = 1; i <= 200000; i++) {
		struct frame ping = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = i};
		CU_ASSERT_EQUAL_FATAL(frame_append(&many, &ping, NULL, 0), 0);
	}
	/* the broker may close it before all is sent */
	harness_raw_send(r, buf_rptr(&many), buf_len(&many));
	buf_fini(&many);
	CU_ASSERT(harness_raw_wait_closed(r, T));
	CU_ASSERT_EQUAL(r->err_code, E_SLOW_CONSUMER);
	CU_ASSERT(harness_broker_log_has(b, "does not read its answers"));
	long rss1 = harness_broker_rss(b);
	fprintf(stderr, "  (broker RSS %ld -> %ld KiB)\n", rss0, rss1);
	CU_ASSERT(rss1 - rss0 < 16 * 1024);
	CU_ASSERT(quiet(other));
}

/* TERM while a connection waits to be accepted: the listener goes in the
 * same turn as its pending event (no use after free), the broker exits 0. */
static void test_term_with_pending_accept(void)
{
	UP(b, "");
	CU_ASSERT_EQUAL(kill(b->pid, SIGSTOP), 0);
	CU_ASSERT_EQUAL(kill(b->pid, SIGTERM), 0);
	struct harness_raw *late = conform_raw_connect(b); /* in the backlog */
	CU_ASSERT_PTR_NOT_NULL_FATAL(late);
	/* where the HELLO makes the connection (sysv), what waits is a HELLO
	 * sent to the stopped broker (in its queue, or already given to its
	 * receiver thread's msgrcv, as Linux does when a reader waits) */
	int accept = conform_has(CONFORM_ACCEPT);
	if (!accept)
		CU_ASSERT_EQUAL(harness_raw_hello(late, 1, IPCBUS_PROTOCOL_VERSION, "late"), 0);
	CU_ASSERT_EQUAL(kill(b->pid, SIGCONT), 0);
	CU_ASSERT_EQUAL(harness_wait_pid(b->pid, 10000), 0);
	b->pid = 0;
	CU_ASSERT(harness_broker_log_has(b, "stopped"));
	if (!accept) {
		/* not taken (no answer), or taken and then ended (WELCOME, the
		 * end): never a connection left open by a broker that is gone */
		int rc = harness_raw_read(late, 300);
		fprintf(stderr, "  (the waiting HELLO: %s)\n",
			rc == 0 ? "no answer" : rc == 1 ? "answered" : "ended");
		if (rc == 1) {
			CU_ASSERT_EQUAL(late->f.type, IPCBUS__FRAME_TYPE__WELCOME);
			CU_ASSERT(harness_raw_wait_closed(late, T));
		}
	}
}

/* A connection that never says HELLO does not keep its place. */
static void test_hello_deadline(void)
{
	UP(b, "ping-interval 300\n");
	struct harness_raw *mute = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(mute);
	uint64_t t0 = harness_now();
	CU_ASSERT(harness_raw_wait_closed(mute, T));
	CU_ASSERT_EQUAL(mute->err_code, E_NO_HELLO);
	CU_ASSERT(mute->err_fatal);
	CU_ASSERT(harness_now() - t0 < 3000);
	CU_ASSERT_EQUAL(mute->pings, 0); /* no PING before WELCOME */
}

static void test_no_responders(void)
{
	UP(b, "");
	OPEN(r, b, "req");
	uint64_t t0 = harness_now();
	CU_ASSERT_EQUAL(harness_raw_pub(r, 77, "nobody.home", "_INBOX.me.1", "q", 1), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_NO_RESPONDERS, 77, T));
	uint64_t dt = harness_now() - t0;
	CU_ASSERT(dt < 1000);
	fprintf(stderr, "  (no responders after %llu ms)\n", (unsigned long long)dt);
	CU_ASSERT_FALSE(r->err_fatal);
	/* a plain publish nobody hears is no error */
	CU_ASSERT_EQUAL(harness_raw_pub(r, 78, "nobody.home", NULL, "q", 1), 0);
	CU_ASSERT(quiet(r));
	/* once somebody listens the request goes through */
	OPEN(resp, b, "responder");
	CU_ASSERT_EQUAL(harness_raw_sub(resp, 1, 9, "nobody.*", NULL), 0);
	CU_ASSERT(quiet(resp));
	CU_ASSERT_EQUAL(harness_raw_pub(r, 79, "nobody.home", "_INBOX.me.2", "q", 1), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(resp, T), 1);
	CU_ASSERT(harness_raw_is_msg(resp, 9, "q"));
	CU_ASSERT(resp->f.reply_to.set && resp->f.reply_to.len == 11 &&
		  memcmp(resp->f.reply_to.p, "_INBOX.me.2", 11) == 0);
}

static void test_ping_pong(void)
{
	UP(b, "");
	OPEN(r, b, "ping");
	static const uint64_t ids[] = {1, 123456789012345ULL, UINT64_MAX};
	for (size_t i = 0; i < HARNESS_NELEM(ids); i++) {
		CU_ASSERT_EQUAL(harness_raw_ping(r, ids[i]), 0);
		CU_ASSERT_EQUAL_FATAL(harness_raw_read(r, T), 1);
		CU_ASSERT_EQUAL(r->f.type, IPCBUS__FRAME_TYPE__PONG);
		CU_ASSERT(r->f.has_id && r->f.id == ids[i]);
	}
}

static void test_keepalive(void)
{
	UP(b, "ping-interval 200\n");
	/* with ping-interval 0 nobody is pinged: idle, on a broker of its
	 * own, is watched while the others are (for the 1.2 s below) */
	struct harness_broker *b0 = conform_up("ping-interval 0\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b0);
	OPEN(idle, b0, "idle");
	idle->auto_pong = 0;
	OPEN(live, b, "answers");
	OPEN(silent, b, "silent");
	silent->auto_pong = 0;
	uint64_t t0 = harness_now(), closed_at = 0;
	/* the live one answers PINGs (harness_raw_read does); the silent one
	 * is only watched, never answered */
	while (harness_now() - t0 < 4000 && (!closed_at || harness_now() - t0 < 1200)) {
		int rc = harness_raw_read(live, 20);
		CU_ASSERT(rc == 0 || rc == 1);
		if (rc < 0)
			break;
		while (!closed_at && (rc = harness_raw_read(silent, 0)) != 0)
			if (rc < 0)
				closed_at = harness_now();
	}
	CU_ASSERT(closed_at > 0);
	CU_ASSERT(silent->pings > 0);
	CU_ASSERT_EQUAL(silent->err_code, E_IDLE);
	CU_ASSERT(silent->err_closing);
	if (closed_at)
		fprintf(stderr, "  (silent client dropped after %llu ms)\n",
			(unsigned long long)(closed_at - t0));
	CU_ASSERT(closed_at && closed_at - t0 < 2500);
	CU_ASSERT(live->pings > 0);
	CU_ASSERT(quiet(live));

	/* ping-interval 0: idle was not pinged in all that time */
	CU_ASSERT(harness_now() - t0 >= 600);
	CU_ASSERT_EQUAL(harness_raw_read(idle, 0), 0);
	CU_ASSERT_EQUAL(idle->pings, 0);
}

/* ---- routing ---- */

static void test_overlapping_patterns(void)
{
	UP(b, "");
	OPEN(sub, b, "sub");
	OPEN(pub, b, "pub");
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 11, "ov.*", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 2, 12, "ov.>", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 3, 13, "ov.a", NULL), 0);
	CU_ASSERT(quiet(sub));
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 1, "ov.a", NULL, "one", 3), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 2, "ov.a.b", NULL, "two", 3), 0);
	CU_ASSERT(quiet(pub));
	struct seen s = {0};
	CU_ASSERT_EQUAL(harness_raw_barrier(sub, T, seen_frame, &s), 1);
	CU_ASSERT_EQUAL_FATAL(s.msgs, 4);
	int mask = 0;
	for (size_t i = 0; i < 3; i++) {
		CU_ASSERT_STRING_EQUAL(s.payload[i], "one");
		CU_ASSERT_STRING_EQUAL(s.channel[i], "ov.a");
		if (s.sid[i] >= 11 && s.sid[i] <= 13)
			mask |= 1 << (s.sid[i] - 11);
	}
	CU_ASSERT_EQUAL(mask, 7); /* once to each subscription */
	CU_ASSERT_STRING_EQUAL(s.payload[3], "two");
	CU_ASSERT_EQUAL(s.sid[3], 12);
}

static void test_wildcards(void)
{
	static const char *const patterns[] = {
		">", "*", "a.*", "a.>", "*.b", "*.*", "_INBOX.x.>", "*.x", "_INBOX.x.*", "a.*.c", "$SYS.>",
		"*.>",
	};
	static const struct {
		const char *channel;
		unsigned sids; /* bit i: patterns[i] matches */
	} cases[] = {
		{"a", 1 << 0 | 1 << 1},
		{"a.b", 1 << 0 | 1 << 2 | 1 << 3 | 1 << 4 | 1 << 5 | 1 << 11},
		{"a.b.c", 1 << 0 | 1 << 3 | 1 << 9 | 1 << 11},
		{"b.c", 1 << 0 | 1 << 5 | 1 << 11},
		{"Ab_-9.x", 1 << 0 | 1 << 5 | 1 << 7 | 1 << 11},
		/* a wildcard first token does not match _INBOX; a pattern on
		 * _INBOX names its inbox (test_inbox_patterns) */
		{"_INBOX.x", 0},
		{"_INBOX.x.y", 1 << 6 | 1 << 8},
		{"_INBOX.x.y.z", 1 << 6},
		{"_INBOX.w.y", 0},
		{"_INBOXES.x", 1 << 0 | 1 << 5 | 1 << 7 | 1 << 11},
		{"b", 1 << 0 | 1 << 1},
	};
	UP(b, "");
	OPEN(sub, b, "sub");
	OPEN(pub, b, "pub");
	for (size_t i = 0; i < HARNESS_NELEM(patterns); i++)
		CU_ASSERT_EQUAL(harness_raw_sub(sub, i + 1, i + 1, patterns[i], NULL), 0);
	CU_ASSERT(quiet(sub));
	for (size_t i = 0; i < HARNESS_NELEM(cases); i++) {
		CU_ASSERT_EQUAL(harness_raw_pub(pub, i + 1, cases[i].channel, NULL, cases[i].channel,
						strlen(cases[i].channel)), 0);
		CU_ASSERT(quiet(pub));
		struct seen s = {0};
		CU_ASSERT_EQUAL(harness_raw_barrier(sub, T, seen_frame, &s), 1);
		unsigned got = 0;
		for (size_t k = 0; k < s.msgs && k < 64; k++) {
			CU_ASSERT_STRING_EQUAL(s.payload[k], cases[i].channel);
			CU_ASSERT_STRING_EQUAL(s.channel[k], cases[i].channel);
			unsigned bit = 1u << (s.sid[k] - 1);
			if (got & bit)
				CU_FAIL("a subscription got a message twice");
			got |= bit;
		}
		if (got != cases[i].sids) {
			fprintf(stderr, "  %s: delivered to %#x, expected %#x\n", cases[i].channel, got,
				cases[i].sids);
			CU_FAIL("wrong subscriptions matched");
		}
	}
}

/* What a barrier read for test_queue_groups. */
struct qg_tally {
	int *times;   /* how often each payload value 0..n-1 came, or NULL */
	int n;
	uint64_t sid; /* the sid every MSG must have; 0: any */
	int msgs;     /* MSGs (with that sid) */
	int other;    /* any other frame */
};

static void qg_frame(void *arg, struct harness_raw *r)
{
	struct qg_tally *t = arg;
	char exact[16];

	if (r->f.type != IPCBUS__FRAME_TYPE__MSG || (t->sid && r->f.sid != t->sid)) {
		t->other++;
		return;
	}
	snprintf(exact, sizeof exact, "%.*s", (int)r->f.payload.len, (const char *)r->f.payload.p);
	int v = atoi(exact);
	if (t->times && v >= 0 && v < t->n)
		t->times[v]++;
	t->msgs++;
}

static void test_queue_groups(void)
{
	enum { N = 300, M = 3 };
	UP(b, "");
	struct harness_raw *member[M];
	for (int i = 0; i < M; i++) {
		member[i] = open_raw(b, "worker");
		CU_ASSERT_PTR_NOT_NULL_FATAL(member[i]);
		CU_ASSERT_EQUAL(harness_raw_sub(member[i], 1, 1, "qg.work", "workers"), 0);
		CU_ASSERT(quiet(member[i]));
	}
	/* two patterns of the group on one member: still one delivery */
	CU_ASSERT_EQUAL(harness_raw_sub(member[0], 2, 2, "qg.*", "workers"), 0);
	CU_ASSERT(quiet(member[0]));
	OPEN(plain, b, "plain");
	CU_ASSERT_EQUAL(harness_raw_sub(plain, 1, 7, "qg.work", NULL), 0);
	CU_ASSERT(quiet(plain));
	OPEN(pub, b, "pub");
	char p[16];
	for (int i = 0; i < N; i++) {
		int n = snprintf(p, sizeof p, "%d", i);
		CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "qg.work", NULL, p, (size_t)n), 0);
	}
	/* once pub's round trip is back, every MSG is queued for its
	 * subscriber, so a round trip of each subscriber reads them all */
	CU_ASSERT(quiet(pub));

	static int times[N];
	memset(times, 0, sizeof times);
	int per[M] = {0};
	for (int m = 0; m < M; m++) {
		struct qg_tally t = {.times = times, .n = N};
		CU_ASSERT_EQUAL(harness_raw_barrier(member[m], T, qg_frame, &t), 1);
		CU_ASSERT_EQUAL(t.other, 0);
		per[m] = t.msgs;
	}
	for (int i = 0; i < N; i++)
		if (times[i] != 1) {
			fprintf(stderr, "  message %d delivered %d times to the group\n", i, times[i]);
			CU_FAIL("a queue-group message not delivered exactly once");
			break;
		}
	for (int m = 0; m < M; m++) {
		fprintf(stderr, "  (member %d: %d messages)\n", m, per[m]);
		CU_ASSERT(per[m] > 0);
	}
	/* outside the group, everything */
	struct qg_tally all = {.sid = 7};
	CU_ASSERT_EQUAL(harness_raw_barrier(plain, T, qg_frame, &all), 1);
	CU_ASSERT_EQUAL(all.msgs, N);
	CU_ASSERT_EQUAL(all.other, 0);
}

/* ---- framing ---- */

static void test_byte_by_byte(void)
{
	UP(b, "");
	OPEN(sub, b, "sub");
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 1, "bb", NULL), 0);
	CU_ASSERT(quiet(sub));
	struct harness_raw *r = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	/* HELLO, PUB and PING in one buffer, written a byte at a time (where
	 * the HELLO is a message of its own, sysv, the HELLO goes whole) */
	struct buf out;
	buf_init(&out, 1 << 20);
	Ipcbus__Hello h = IPCBUS__HELLO__INIT;
	Ipcbus__Sysv sv;
	h.version = 1;
	harness_raw_hello_fill(r, &h, &sv);
	CU_ASSERT_EQUAL(frame_append_hello(&out, 1, &h), 0);
	size_t whole = conform_has(CONFORM_ACCEPT) ? 0 : buf_len(&out);
	if (whole)
		CU_ASSERT_EQUAL_FATAL(harness_raw_send(r, buf_rptr(&out), whole), 0);
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = 1, .id = 2};
	f.channel = (struct frame_bytes){(const uint8_t *)"bb", 2, 1};
	static uint8_t payload[300]; /* a two-byte length prefix */
	memset(payload, 'b', sizeof payload);
	f.payload = (struct frame_bytes){payload, sizeof payload, 1};
	CU_ASSERT_EQUAL(frame_append(&out, &f, NULL, 0), 0);
	struct frame ping = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = 3};
	CU_ASSERT_EQUAL(frame_append(&out, &ping, NULL, 0), 0);
	for (size_t i = whole; i < buf_len(&out); i++) {
		CU_ASSERT_EQUAL_FATAL(harness_raw_send(r, buf_rptr(&out) + i, 1), 0);
		if (i % 16 == 0)
			harness_sleep(1);
	}
	buf_fini(&out);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(r, T), 1);
	CU_ASSERT_EQUAL(r->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(r, T), 1);
	CU_ASSERT(r->f.type == IPCBUS__FRAME_TYPE__PONG && r->f.id == 3);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(sub->f.type == IPCBUS__FRAME_TYPE__MSG && sub->f.payload.len == sizeof payload);

	/* and many frames in one write */
	struct buf many;
	buf_init(&many, 64 << 20);
	for (int i = 0; i < 5000; i++)
		CU_ASSERT_EQUAL(frame_append(&many, &f, NULL, 0), 0);
	CU_ASSERT_EQUAL(harness_raw_send(r, buf_rptr(&many), buf_len(&many)), 0);
	buf_fini(&many);
	CU_ASSERT(quiet(r)); /* all routed: sub's round trip reads them all */
	struct seen s = {0};
	CU_ASSERT_EQUAL(harness_raw_barrier(sub, T, seen_frame, &s), 1);
	CU_ASSERT_EQUAL(s.msgs, 5000);
	CU_ASSERT_EQUAL(s.errs + s.other, 0);
}

/* The largest frame the limits allow goes through; a frame whose payload
 * and headers are within the announced limits is never fatal. */
static void test_largest_frame(void)
{
	UP(b, "max-payload 64k\nmax-header-bytes 4k\n");
	OPEN(sub, b, "sub");
	OPEN(r, b, "pub");
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 1, "lf", NULL), 0);
	CU_ASSERT(quiet(sub));
	static uint8_t payload[64 << 10], value[4096];
	memset(payload, 'p', sizeof payload);
	memset(value, 'v', sizeof value);
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = 1, .id = 1};
	f.channel = (struct frame_bytes){(const uint8_t *)"lf", 2, 1};
	f.reply_to = (struct frame_bytes){(const uint8_t *)"_INBOX.x", 8, 1};
	f.payload = (struct frame_bytes){payload, sizeof payload, 1};
	/* one header of exactly max-header-bytes, as encoded */
	size_t vlen = 4096 - frame_header_cost(1, 0);
	while (frame_header_cost(1, vlen) > 4096)
		vlen--;
	CU_ASSERT_EQUAL_FATAL(frame_header_cost(1, vlen), 4096);
	struct frame_header one = {(const uint8_t *)"k", 1, value, vlen};
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, &one, 1), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(sub->f.type == IPCBUS__FRAME_TYPE__MSG && sub->f.payload.len == sizeof payload &&
		  sub->f.header_bytes == 4096);

	/* 2048 headers of one-byte keys and values: 4096 bytes of keys and
	 * values, but 16 KiB as encoded, which is what max-header-bytes counts
	 * (so the frame limit holds): refused, recoverably */
	static struct frame_header tiny[2048];
	for (size_t i = 0; i < 2048; i++)
		tiny[i] = (struct frame_header){(const uint8_t *)"k", 1, (const uint8_t *)"v", 1};
	f.id = 2;
	f.payload.len = 1024;
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, tiny, 2048), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_HEADERS_TOO_BIG, 2, T));
	CU_ASSERT_FALSE(r->err_fatal);
	CU_ASSERT(quiet(r));
}

/* TERM: stop accepting, give queued output drain-timeout to go, exit.
 * (What it means for the Unix socket's file: test_broker_proto.c's
 * drain_socket.) */
static void test_drain(void)
{
	UP(b, "drain-timeout 700\n");
	OPEN(stuck, b, "stuck");
	OPEN(late, b, "late-reader");
	OPEN(pub, b, "pub");
	CU_ASSERT_EQUAL(harness_raw_sub(stuck, 1, 1, "dr", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_sub(late, 1, 1, "dr", NULL), 0);
	CU_ASSERT(quiet(stuck));
	CU_ASSERT(quiet(late));
	static uint8_t payload[16 << 10];
	enum { N = 256 }; /* 4 MiB each: far more than the sockets hold */
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "dr", NULL, payload, sizeof payload), 0);
	CU_ASSERT(quiet(pub));
	uint64_t t0 = harness_now();
	kill(b->pid, SIGTERM);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "stopping", T), 0);
	/* no new connections once stopping: refused, or (if it made the
	 * backlog in the moment before the listener closed) closed with the
	 * listener, not when the broker exits */
	struct harness_raw *away = conform_raw_connect(b);
	CU_ASSERT(!away || (harness_raw_wait_closed(away, 300) && kill(b->pid, 0) == 0));
	/* the late reader still gets everything, then the close */
	int n = 0, rc;
	while ((rc = harness_raw_read(late, T)) == 1)
		n += late->f.type == IPCBUS__FRAME_TYPE__MSG;
	CU_ASSERT_EQUAL(rc, -1);
	CU_ASSERT_EQUAL(n, N);
	/* the stuck one cannot hold the broker past drain-timeout */
	int st = harness_wait_pid(b->pid, 10000);
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (exit %d after %llu ms)\n", st, (unsigned long long)dt);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT(dt >= 600 && dt < 5000);
	b->pid = st < 0 ? b->pid : 0;
	CU_ASSERT(harness_broker_log_has(b, "drain-timeout"));
}

/* ---- the rules of docs/protocol.md, one case each ---- */

/* Hand-made frame bodies: what frame_encode() would never write. */
struct wire {
	uint8_t b[4096];
	size_t n;
};

static void wire_key(struct wire *w, uint32_t field, int wt)
{
	w->n += frame_varint_put(w->b + w->n, (uint64_t)field << 3 | (uint64_t)wt);
}

static void wire_uint(struct wire *w, uint32_t field, uint64_t v)
{
	wire_key(w, field, 0);
	w->n += frame_varint_put(w->b + w->n, v);
}

static void wire_bytes(struct wire *w, uint32_t field, const void *p, size_t len)
{
	wire_key(w, field, 2);
	w->n += frame_varint_put(w->b + w->n, len);
	memcpy(w->b + w->n, p, len);
	w->n += len;
}

static void wire_raw(struct wire *w, const void *p, size_t len)
{
	memcpy(w->b + w->n, p, len);
	w->n += len;
}

/* Send the body with its length prefix, in one send (on sysv:// the
 * first send is the HELLO message: a frame whole). */
static int wire_send(struct harness_raw *r, const struct wire *w)
{
	uint8_t *p = malloc(FRAME_VARINT_MAX + w->n);
	if (!p)
		return -1;
	size_t k = frame_varint_put(p, w->n);
	memcpy(p + k, w->b, w->n);
	int rc = harness_raw_send(r, p, k + w->n);
	free(p);
	return rc;
}

/* A PUB of payload "x" on channel with id, to be extended by the caller. */
static void wire_pub(struct wire *w, uint64_t id, const char *channel)
{
	w->n = 0;
	wire_uint(w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PUB);
	wire_uint(w, FRAME_F_ID, id);
	wire_bytes(w, FRAME_F_CHANNEL, channel, strlen(channel));
	wire_bytes(w, FRAME_F_PAYLOAD, "x", 1);
}

/* Expect an ERR with code and id; the connection stays (recoverable). */
static int refused(struct harness_raw *r, int code, uint64_t id)
{
	return harness_raw_expect_err(r, code, id, T) && !r->err_fatal && !r->err_closing &&
	       quiet(r);
}

/* A fatal ERR sets `fatal` only: `closing` means "reconnecting is allowed". */
static void test_fatal_is_not_closing(void)
{
	UP(b, "max-payload 64\nmax-header-bytes 64\n");
	/* E_PROTOCOL: bytes that do not decode */
	OPEN(r1, b, "undecodable");
	static const uint8_t undecodable[] = {2, 0xff, 0xff};
	CU_ASSERT_EQUAL(harness_raw_send(r1, undecodable, sizeof undecodable), 0);
	CU_ASSERT(harness_raw_expect_err(r1, E_PROTOCOL, 0, T));
	CU_ASSERT(r1->err_fatal);
	CU_ASSERT_FALSE(r1->err_closing);
	CU_ASSERT(harness_raw_wait_closed(r1, T));
	/* E_PROTOCOL: a type a client may not send */
	OPEN(r2, b, "sends-msg");
	struct frame msg = {.type = IPCBUS__FRAME_TYPE__MSG, .has_id = 1, .id = 8};
	CU_ASSERT_EQUAL(harness_raw_frame(r2, &msg, NULL, 0), 0);
	CU_ASSERT(harness_raw_expect_err(r2, E_PROTOCOL, 8, T));
	CU_ASSERT(r2->err_fatal);
	CU_ASSERT_FALSE(r2->err_closing);
	/* E_FRAME_TOO_BIG */
	OPEN(r3, b, "too-big");
	uint8_t prefix[FRAME_VARINT_MAX];
	CU_ASSERT_EQUAL(harness_raw_send(r3, prefix, frame_varint_put(prefix, 100000)), 0);
	CU_ASSERT(harness_raw_expect_err(r3, E_FRAME_TOO_BIG, 0, T));
	CU_ASSERT(r3->err_fatal);
	CU_ASSERT_FALSE(r3->err_closing);
	/* E_VERSION */
	struct harness_raw *r4 = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r4);
	CU_ASSERT_EQUAL(harness_raw_hello(r4, 3, 2, "v2"), 0);
	CU_ASSERT(harness_raw_expect_err(r4, E_VERSION, 3, T));
	CU_ASSERT(r4->err_fatal);
	CU_ASSERT_FALSE(r4->err_closing);
	/* E_NO_HELLO (where a connection exists before HELLO) */
	if (!conform_has(CONFORM_ACCEPT))
		return;
	struct harness_raw *r5 = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r5);
	CU_ASSERT_EQUAL(harness_raw_ping(r5, 4), 0);
	CU_ASSERT(harness_raw_expect_err(r5, E_NO_HELLO, 4, T));
	CU_ASSERT(r5->err_fatal);
	CU_ASSERT_FALSE(r5->err_closing);
	/* and a closing ERR is not fatal (max-connections is checked in
	 * test_max_connections, E_IDLE in test_keepalive) */
}

/* Nobody reads everyone's replies: a pattern on _INBOX names its inbox. */
static void test_inbox_patterns(void)
{
	static const char *const refused_patterns[] = {"_INBOX.>", "_INBOX.*", "_INBOX.*.>",
						       "_INBOX.*.x", "_INBOX.*.*"};
	UP(b, "");
	OPEN(spy, b, "spy");
	uint64_t id = 10;
	for (size_t i = 0; i < HARNESS_NELEM(refused_patterns); i++, id++) {
		CU_ASSERT_EQUAL(harness_raw_sub(spy, id, id, refused_patterns[i], NULL), 0);
		if (!refused(spy, E_PERMISSION, id)) {
			fprintf(stderr, "  pattern '%s' was not refused\n", refused_patterns[i]);
			CU_FAIL("a pattern that reads every inbox was accepted");
		}
	}
	/* the sids of refused SUBs are free: nothing was subscribed */
	CU_ASSERT_EQUAL(harness_raw_unsub(spy, 30, 10), 0);
	CU_ASSERT(refused(spy, E_UNKNOWN_SID, 30));
	/* what the spy may subscribe to sees no inbox */
	CU_ASSERT_EQUAL(harness_raw_sub(spy, 31, 31, ">", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_sub(spy, 32, 32, "*.*.>", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_sub(spy, 33, 33, "_INBOX.spy.>", NULL), 0);
	CU_ASSERT(quiet(spy));

	/* a requester's own inbox subscription, as the library makes it */
	OPEN(req, b, "requester");
	OPEN(resp, b, "responder");
	CU_ASSERT_EQUAL(harness_raw_sub(req, 1, 1, "_INBOX.Rq7Zk2.>", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_sub(resp, 1, 1, "svc.echo", NULL), 0);
	CU_ASSERT(quiet(req));
	CU_ASSERT(quiet(resp));
	CU_ASSERT_EQUAL(harness_raw_pub(req, 5, "svc.echo", "_INBOX.Rq7Zk2.5", "q", 1), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(resp, T), 1);
	CU_ASSERT(harness_raw_is_msg(resp, 1, "q"));
	CU_ASSERT_EQUAL(harness_raw_pub(resp, 0, "_INBOX.Rq7Zk2.5", NULL, "answer", 6), 0);
	CU_ASSERT(quiet(resp));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(req, T), 1);
	CU_ASSERT(harness_raw_is_msg(req, 1, "answer"));
	/* the spy saw the request (on svc.echo, through '>') but no reply */
	struct seen s = {0};
	CU_ASSERT_EQUAL(harness_raw_barrier(spy, T, seen_frame, &s), 1);
	CU_ASSERT_EQUAL(s.errs, 0);
	CU_ASSERT_EQUAL_FATAL(s.msgs, 1);
	CU_ASSERT_STRING_EQUAL(s.channel[0], "svc.echo");
	CU_ASSERT_EQUAL(s.sid[0], 31);
}

/* A frame carrying a field its type does not use is refused with E_INVALID
 * and has no effect, for every frame type; a field holding its zero value
 * counts as absent. */
static void test_unused_fields(void)
{
	UP(b, "");
	OPEN(r, b, "fields");
	OPEN(pub, b, "pub");
	struct frame f;

	/* SUB with a payload: nothing subscribed */
	f = (struct frame){.type = IPCBUS__FRAME_TYPE__SUB, .has_id = 1, .id = 1, .has_sid = 1,
			   .sid = 1};
	f.channel = (struct frame_bytes){(const uint8_t *)"uf", 2, 1};
	f.payload = (struct frame_bytes){(const uint8_t *)"p", 1, 1};
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, NULL, 0), 0);
	CU_ASSERT(refused(r, E_INVALID, 1));
	CU_ASSERT_PTR_NOT_NULL(strstr(r->err_text, "payload"));
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "uf", NULL, "lost", 4), 0);
	CU_ASSERT(quiet(pub));
	CU_ASSERT(quiet(r));
	/* SUB with a header */
	struct frame_header h = {(const uint8_t *)"k", 1, (const uint8_t *)"v", 1};
	f.payload = (struct frame_bytes){0};
	f.id = 2;
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, &h, 1), 0);
	CU_ASSERT(refused(r, E_INVALID, 2));
	/* the same SUB without them is fine */
	f.id = 3;
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, NULL, 0), 0);
	CU_ASSERT(quiet(r));
	/* UNSUB with a channel: not unsubscribed */
	f = (struct frame){.type = IPCBUS__FRAME_TYPE__UNSUB, .has_id = 1, .id = 4, .has_sid = 1,
			   .sid = 1};
	f.channel = (struct frame_bytes){(const uint8_t *)"uf", 2, 1};
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, NULL, 0), 0);
	CU_ASSERT(refused(r, E_INVALID, 4));
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "uf", NULL, "kept", 4), 0);
	CU_ASSERT(quiet(pub));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(r, T), 1);
	CU_ASSERT(harness_raw_is_msg(r, 1, "kept"));
	/* PUB with a sid or a queue (as before) */
	f = (struct frame){.type = IPCBUS__FRAME_TYPE__PUB, .has_id = 1, .id = 5, .has_sid = 1,
			   .sid = 9};
	f.channel = (struct frame_bytes){(const uint8_t *)"uf", 2, 1};
	f.payload = (struct frame_bytes){(const uint8_t *)"no", 2, 1};
	CU_ASSERT_EQUAL(harness_raw_frame(pub, &f, NULL, 0), 0);
	CU_ASSERT(refused(pub, E_INVALID, 5));
	f.has_sid = 0;
	f.queue = (struct frame_bytes){(const uint8_t *)"g", 1, 1};
	f.id = 6;
	CU_ASSERT_EQUAL(harness_raw_frame(pub, &f, NULL, 0), 0);
	CU_ASSERT(refused(pub, E_INVALID, 6));
	/* PING with a channel: ERR instead of PONG */
	f = (struct frame){.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = 7};
	f.channel = (struct frame_bytes){(const uint8_t *)"x", 1, 1};
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, NULL, 0), 0);
	CU_ASSERT(refused(r, E_INVALID, 7));
	/* PONG with a sid */
	f = (struct frame){.type = IPCBUS__FRAME_TYPE__PONG, .has_id = 1, .id = 8, .has_sid = 1,
			   .sid = 3};
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, NULL, 0), 0);
	CU_ASSERT(refused(r, E_INVALID, 8));
	/* zero values are absent: a PING with sid 0, an empty channel and an
	 * empty payload is a plain PING */
	f = (struct frame){.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = 9, .has_sid = 1,
			   .sid = 0};
	f.channel = (struct frame_bytes){(const uint8_t *)"", 0, 1};
	f.payload = (struct frame_bytes){(const uint8_t *)"", 0, 1};
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(r, T), 1);
	CU_ASSERT(r->f.type == IPCBUS__FRAME_TYPE__PONG && r->f.id == 9);

	/* HELLO with a channel: refused, fatally (before WELCOME nothing is
	 * recoverable: a second try would restart the HELLO deadline) */
	struct harness_raw *late = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(late);
	struct buf hb;
	buf_init(&hb, 4096);
	Ipcbus__Hello hello = IPCBUS__HELLO__INIT;
	Ipcbus__Sysv sv;
	hello.version = 1;
	harness_raw_hello_fill(late, &hello, &sv);
	CU_ASSERT_EQUAL_FATAL(frame_append_hello(&hb, 11, &hello), 0);
	const uint8_t *body;
	size_t blen, need;
	CU_ASSERT_FATAL(frame_split(buf_rptr(&hb), buf_len(&hb), 4096, &body, &blen, &need) > 0);
	struct wire w = {.n = 0};
	wire_raw(&w, body, blen);
	wire_bytes(&w, FRAME_F_CHANNEL, "c", 1);
	CU_ASSERT_EQUAL(wire_send(late, &w), 0);
	CU_ASSERT(harness_raw_expect_err(late, E_PROTOCOL, 11, T));
	CU_ASSERT(late->err_fatal);
	CU_ASSERT_PTR_NOT_NULL(strstr(late->err_text, "channel"));
	CU_ASSERT(harness_raw_wait_closed(late, T));
	/* the same HELLO without it is welcomed */
	struct harness_raw *good = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(good);
	buf_consume(&hb, buf_len(&hb));
	harness_raw_hello_fill(good, &hello, &sv);
	CU_ASSERT_EQUAL_FATAL(frame_append_hello(&hb, 11, &hello), 0);
	CU_ASSERT_EQUAL(harness_raw_send(good, buf_rptr(&hb), buf_len(&hb)), 0);
	buf_fini(&hb);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(good, T), 1);
	CU_ASSERT_EQUAL(good->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(good->f.id, 11);
	CU_ASSERT(quiet(good));
}

/* Absent == zero value: sid 0 is no sid, an empty reply_to is no reply_to,
 * an empty queue is no queue group, a missing channel is an empty one. */
static void test_zero_values(void)
{
	UP(b, "");
	OPEN(r, b, "zero");
	OPEN(pub, b, "pub");
	struct wire w;

	/* SUB: sid absent, sid 0 */
	w.n = 0;
	wire_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__SUB);
	wire_uint(&w, FRAME_F_ID, 1);
	wire_bytes(&w, FRAME_F_CHANNEL, "zv", 2);
	CU_ASSERT_EQUAL(wire_send(r, &w), 0);
	CU_ASSERT(refused(r, E_INVALID, 1));
	CU_ASSERT_EQUAL(harness_raw_sub(r, 2, 0, "zv", NULL), 0);
	CU_ASSERT(refused(r, E_INVALID, 2));
	/* UNSUB: sid absent, sid 0: the same error as SUB */
	w.n = 0;
	wire_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__UNSUB);
	wire_uint(&w, FRAME_F_ID, 3);
	CU_ASSERT_EQUAL(wire_send(r, &w), 0);
	CU_ASSERT(refused(r, E_INVALID, 3));
	CU_ASSERT_EQUAL(harness_raw_unsub(r, 4, 0), 0);
	CU_ASSERT(refused(r, E_INVALID, 4));
	/* a sid that is not live is E_UNKNOWN_SID */
	CU_ASSERT_EQUAL(harness_raw_unsub(r, 5, 77), 0);
	CU_ASSERT(refused(r, E_UNKNOWN_SID, 5));
	/* PUB and SUB without a channel */
	w.n = 0;
	wire_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PUB);
	wire_uint(&w, FRAME_F_ID, 6);
	wire_bytes(&w, FRAME_F_PAYLOAD, "x", 1);
	CU_ASSERT_EQUAL(wire_send(r, &w), 0);
	CU_ASSERT(refused(r, E_INVALID_CHANNEL, 6));
	w.n = 0;
	wire_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__SUB);
	wire_uint(&w, FRAME_F_ID, 7);
	wire_uint(&w, FRAME_F_SID, 7);
	CU_ASSERT_EQUAL(wire_send(r, &w), 0);
	CU_ASSERT(refused(r, E_INVALID_CHANNEL, 7));

	/* an empty queue: no group, both subscriptions get every message */
	CU_ASSERT_EQUAL(harness_raw_sub(r, 8, 8, "zv.q", ""), 0);
	CU_ASSERT_EQUAL(harness_raw_sub(r, 9, 9, "zv.q", ""), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "zv.q", NULL, "both", 4), 0);
	CU_ASSERT(quiet(pub));
	struct seen s = {0};
	CU_ASSERT_EQUAL(harness_raw_barrier(r, T, seen_frame, &s), 1);
	CU_ASSERT_EQUAL(s.msgs, 2);

	/* an empty reply_to: a plain PUB; nobody listening is no error, and
	 * the MSG carries no reply_to */
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 10, "zv.nobody", "", "x", 1), 0);
	CU_ASSERT(quiet(pub));
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 11, "zv.q", "", "plain", 5), 0);
	CU_ASSERT(quiet(pub));
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL_FATAL(harness_raw_read(r, T), 1);
		CU_ASSERT(harness_raw_is_msg(r, r->f.sid, "plain"));
		CU_ASSERT_FALSE(r->f.reply_to.set);
	}
	CU_ASSERT(quiet(r));
	/* an explicit id 0 is no id: the broker's ERR says id 0 */
	CU_ASSERT_EQUAL(harness_raw_sub(r, 0, 0, "zv", NULL), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_INVALID, 0, T));
	CU_ASSERT(r->f.has_id && r->f.id == 0);
}

/* The `$` rules: `$` alone and `$$x` are no names, `$SYS` is the broker's,
 * and a reply channel must be one a responder can publish on. */
static void test_dollar_rules(void)
{
	UP(b, "");
	OPEN(r, b, "dollar");
	OPEN(resp, b, "responder");
	CU_ASSERT_EQUAL(harness_raw_pub(r, 1, "$", NULL, "x", 1), 0);
	CU_ASSERT(refused(r, E_INVALID_CHANNEL, 1));
	CU_ASSERT_EQUAL(harness_raw_pub(r, 2, "$$x", NULL, "x", 1), 0);
	CU_ASSERT(refused(r, E_INVALID_CHANNEL, 2));
	CU_ASSERT_EQUAL(harness_raw_sub(r, 3, 3, "$", NULL), 0);
	CU_ASSERT(refused(r, E_INVALID_CHANNEL, 3));
	CU_ASSERT_EQUAL(harness_raw_sub(r, 4, 4, "$$x.>", NULL), 0);
	CU_ASSERT(refused(r, E_INVALID_CHANNEL, 4));
	CU_ASSERT_EQUAL(harness_raw_pub(r, 5, "$SYS", NULL, "x", 1), 0);
	CU_ASSERT(refused(r, E_PERMISSION, 5));
	CU_ASSERT_EQUAL(harness_raw_sub(r, 6, 6, "$SYS", NULL), 0);
	CU_ASSERT(quiet(r));
	/* a reply_to on a `$` channel: nobody could answer there */
	CU_ASSERT_EQUAL(harness_raw_sub(resp, 1, 1, "svc.d", NULL), 0);
	CU_ASSERT(quiet(resp));
	CU_ASSERT_EQUAL(harness_raw_pub(r, 7, "svc.d", "$SYS.x", "q", 1), 0);
	CU_ASSERT(refused(r, E_PERMISSION, 7));
	CU_ASSERT_EQUAL(harness_raw_pub(r, 8, "svc.d", "$", "q", 1), 0);
	CU_ASSERT(refused(r, E_INVALID_CHANNEL, 8));
	CU_ASSERT(quiet(resp)); /* neither was delivered */
	/* a reply_to need not be an inbox */
	CU_ASSERT_EQUAL(harness_raw_pub(r, 9, "svc.d", "answers.here", "q", 1), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(resp, T), 1);
	CU_ASSERT(resp->f.reply_to.len == 12 && memcmp(resp->f.reply_to.p, "answers.here", 12) == 0);
}

/* Header keys: what is valid, what is reserved, and which ERR a bad header
 * gets (recoverable: the frame is well-formed). */
static void test_header_rules(void)
{
	UP(b, "");
	OPEN(sub, b, "sub");
	OPEN(r, b, "pub");
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 1, "hr", NULL), 0);
	CU_ASSERT(quiet(sub));
	struct wire w;
	uint64_t id = 1;

	/* a Header without its value, without its key, empty */
	static const struct {
		const char *bytes;
		size_t len;
	} incomplete[] = {{"\x0a\x01k", 3}, {"\x12\x01v", 3}, {"", 0}};
	for (size_t i = 0; i < HARNESS_NELEM(incomplete); i++, id++) {
		wire_pub(&w, id, "hr");
		wire_bytes(&w, FRAME_F_HEADERS, incomplete[i].bytes, incomplete[i].len);
		CU_ASSERT_EQUAL(wire_send(r, &w), 0);
		CU_ASSERT(refused(r, E_INVALID, id));
	}
	/* bad keys */
	static const struct {
		const char *key;
		size_t len;
	} bad[] = {{"", 0}, {"a b", 3}, {"a\0b", 3}, {"a:b", 3}, {"a=b", 3}, {"\xc3\xa9", 2},
		   {"a\n", 2}};
	for (size_t i = 0; i < HARNESS_NELEM(bad); i++, id++) {
		struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = 1, .id = id};
		f.channel = (struct frame_bytes){(const uint8_t *)"hr", 2, 1};
		f.payload = (struct frame_bytes){(const uint8_t *)"x", 1, 1};
		struct frame_header h[2] = {{(const uint8_t *)"ok", 2, (const uint8_t *)"v", 1},
					    {(const uint8_t *)bad[i].key, bad[i].len,
					     (const uint8_t *)"v", 1}};
		CU_ASSERT_EQUAL(harness_raw_frame(r, &f, h, 2), 0);
		if (!refused(r, E_INVALID, id)) {
			fprintf(stderr, "  key %zu was not refused\n", i);
			CU_FAIL("a bad header key was accepted");
		}
	}
	/* reserved keys: only those the protocol lists */
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = 1, .id = ++id};
	f.channel = (struct frame_bytes){(const uint8_t *)"hr", 2, 1};
	f.payload = (struct frame_bytes){(const uint8_t *)"x", 1, 1};
	struct frame_header rh = {(const uint8_t *)"ipcbus-from", 11, (const uint8_t *)"me", 2};
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, &rh, 1), 0);
	CU_ASSERT(refused(r, E_PERMISSION, id));
	CU_ASSERT(quiet(sub)); /* nothing refused was delivered */

	/* good keys, the exec bridge's among them, arrive as sent */
	struct frame_header good[] = {
		{(const uint8_t *)"ipcbus-exit-status", 18, (const uint8_t *)"3", 1},
		{(const uint8_t *)"ipcbus-signal", 13, (const uint8_t *)"9", 1},
		{(const uint8_t *)"ipcbus-error", 12, (const uint8_t *)"timeout", 7},
		{(const uint8_t *)"IPCBUS-from", 11, (const uint8_t *)"", 0},
		{(const uint8_t *)"x-trace.id_2", 12, (const uint8_t *)"a\0b", 3},
	};
	f.id = ++id;
	CU_ASSERT_EQUAL(harness_raw_frame(r, &f, good, HARNESS_NELEM(good)), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT_EQUAL_FATAL(sub->f.type, IPCBUS__FRAME_TYPE__MSG);
	CU_ASSERT_EQUAL(sub->f.nheaders, HARNESS_NELEM(good));
	size_t pos = 0, i = 0;
	struct frame_header got;
	while (frame_header_next(&sub->f, &pos, &got) && i < HARNESS_NELEM(good)) {
		CU_ASSERT(got.key_len == good[i].key_len &&
			  memcmp(got.key, good[i].key, got.key_len) == 0);
		CU_ASSERT(got.value_len == good[i].value_len &&
			  (!got.value_len || memcmp(got.value, good[i].value, got.value_len) == 0));
		i++;
	}
	CU_ASSERT_EQUAL(i, HARNESS_NELEM(good));
	CU_ASSERT(quiet(sub));
}

/* Unknown fields are skipped (and not forwarded in MSG); groups are a
 * protocol error. */
static void test_unknown_fields(void)
{
	UP(b, "");
	OPEN(sub, b, "sub");
	OPEN(r, b, "pub");
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 1, "uk", NULL), 0);
	CU_ASSERT(quiet(sub));
	struct wire w;
	wire_pub(&w, 1, "uk");
	wire_uint(&w, 20, 5);                   /* varint */
	wire_key(&w, 21, 1);                    /* 64-bit */
	wire_raw(&w, "12345678", 8);
	wire_bytes(&w, 22, "future", 6);        /* length-delimited */
	wire_key(&w, 23, 5);                    /* 32-bit */
	wire_raw(&w, "1234", 4);
	CU_ASSERT_EQUAL(wire_send(r, &w), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(harness_raw_is_msg(sub, 1, "x"));
	/* the MSG holds type, sid, channel and payload, nothing else */
	struct frame m = {.type = IPCBUS__FRAME_TYPE__MSG, .has_sid = 1, .sid = 1};
	m.channel = (struct frame_bytes){(const uint8_t *)"uk", 2, 1};
	m.payload = (struct frame_bytes){(const uint8_t *)"x", 1, 1};
	CU_ASSERT_EQUAL(sub->f.body_len, frame_size(&m, NULL, 0));

	/* an unknown field as a group: fatal */
	wire_pub(&w, 2, "uk");
	wire_key(&w, 20, 3);
	wire_uint(&w, 1, 1);
	wire_key(&w, 20, 4);
	CU_ASSERT_EQUAL(wire_send(r, &w), 0);
	CU_ASSERT(harness_raw_expect_err(r, E_PROTOCOL, 0, T));
	CU_ASSERT(r->err_fatal);
	CU_ASSERT(harness_raw_wait_closed(r, T));
	CU_ASSERT(quiet(sub));
}

/* A Header field written with padded varints (valid protobuf) is
 * forwarded as it came, and the MSG around it is whole: the broker sizes
 * the MSG from the headers' bytes on the wire. */
static void test_padded_header(void)
{
	UP(b, "");
	OPEN(sub, b, "sub");
	OPEN(r, b, "pub");
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 1, "ph", NULL), 0);
	CU_ASSERT(quiet(sub));
	struct wire w = {.n = 0};
	wire_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PUB);
	wire_bytes(&w, FRAME_F_CHANNEL, "ph", 2);
	/* field 6 with its key and its length in 3 bytes each */
	wire_raw(&w, "\xb2\x80\x00\x86\x80\x00\x0a\x01k\x12\x01v", 12);
	wire_bytes(&w, FRAME_F_PAYLOAD, "payload-at-the-end", 18);
	CU_ASSERT_EQUAL(wire_send(r, &w), 0);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(harness_raw_is_msg(sub, 1, "payload-at-the-end"));
	CU_ASSERT_EQUAL(sub->f.nheaders, 1);
	CU_ASSERT_EQUAL(sub->f.header_bytes, 12);
	CU_ASSERT(quiet(sub));

	/* 2000 of them, each 26 bytes on the wire for 8 canonical ones: the
	 * old count made the broker write some 36 KiB past what it had sized
	 * (heap corruption: it crashed) */
	enum { N = 2000, H = 26 };
	static const uint8_t one[H] = {0xb2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
				       0x86, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
				       0x0a, 0x01, 'k', 0x12, 0x01, 'v'};
	size_t cap = N * H + 64, n = 0;
	uint8_t *big = malloc(cap + FRAME_VARINT_MAX);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	uint8_t *body = big + FRAME_VARINT_MAX;
	static const uint8_t head[] = {0x08, 0x03, 0x1a, 0x02, 'p', 'h'};
	memcpy(body, head, sizeof head);
	n = sizeof head;
	for (int i = 0; i < N; i++, n += H)
		memcpy(body + n, one, H);
	body[n++] = 0x2a;
	body[n++] = 0x01;
	body[n++] = 'x';
	uint8_t prefix[FRAME_VARINT_MAX];
	size_t k = frame_varint_put(prefix, n);
	memcpy(body - k, prefix, k);
	CU_ASSERT_EQUAL(harness_raw_send(r, body - k, n + k), 0);
	free(big);
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(harness_raw_is_msg(sub, 1, "x"));
	CU_ASSERT_EQUAL(sub->f.nheaders, N);
	CU_ASSERT_EQUAL(sub->f.header_bytes, N * H);
	CU_ASSERT(quiet(sub));
	CU_ASSERT(kill(b->pid, 0) == 0);
}

/* What happens before HELLO: max-connections, framing errors, padding. */
static void test_before_hello(void)
{
	UP(b, "max-connections 2\nmax-payload 64\nmax-header-bytes 64\n");
	/* a non-minimal length prefix (5 as two bytes) is accepted */
	struct harness_raw *pad = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pad);
	struct buf hb;
	buf_init(&hb, 4096);
	Ipcbus__Hello hello = IPCBUS__HELLO__INIT;
	Ipcbus__Sysv sv;
	hello.version = 1;
	harness_raw_hello_fill(pad, &hello, &sv);
	CU_ASSERT_EQUAL_FATAL(frame_append_hello(&hb, 0, &hello), 0);
	const uint8_t *body;
	size_t blen, need;
	CU_ASSERT_FATAL(frame_split(buf_rptr(&hb), buf_len(&hb), 4096, &body, &blen, &need) > 0);
	CU_ASSERT_FATAL(blen < 128);
	uint8_t padded[130] = {(uint8_t)(blen | 0x80), 0};
	memcpy(padded + 2, body, blen);
	CU_ASSERT_EQUAL(harness_raw_send(pad, padded, blen + 2), 0); /* one HELLO message */
	buf_fini(&hb);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(pad, T), 1);
	CU_ASSERT_EQUAL(pad->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT(pad->f.has_id && pad->f.id == 0); /* the broker writes id 0 */

	/* an over-limit prefix before HELLO: E_FRAME_TOO_BIG, not E_NO_HELLO
	 * (no answer where there is no connection before HELLO) */
	int accept = conform_has(CONFORM_ACCEPT);
	struct harness_raw *big = conform_raw_connect(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	uint8_t p[FRAME_VARINT_MAX];
	CU_ASSERT_EQUAL(harness_raw_send(big, p, frame_varint_put(p, 64 + 64 + 1024 + 1)), 0);
	if (accept) {
		CU_ASSERT(harness_raw_expect_err(big, E_FRAME_TOO_BIG, 0, T));
		CU_ASSERT(big->err_fatal);
		CU_ASSERT(harness_raw_wait_closed(big, T));
	} else {
		CU_ASSERT(conform_unanswered(b, big));
	}

	/* EOF in the middle of a frame: closed without an ERR (after HELLO
	 * where the HELLO makes the connection) */
	struct harness_raw *cut = accept ? conform_raw_connect(b) : open_raw(b, "cut");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cut);
	static const uint8_t half[] = {20, 0x08, 0x01};
	CU_ASSERT_EQUAL(harness_raw_send(cut, half, sizeof half), 0);
	CU_ASSERT_EQUAL(harness_raw_shutdown(cut), 0);
	CU_ASSERT(harness_raw_wait_closed(cut, T));
	CU_ASSERT_EQUAL(cut->err_code, 0);
	harness_raw_close(cut);
	harness_raw_close(big);

	/* max-connections: the ERR comes at once, HELLO or not */
	struct harness_raw *second = open_raw(b, "second");
	CU_ASSERT_PTR_NOT_NULL_FATAL(second);
	struct harness_raw *full = NULL;
	for (int i = 0; i < 50 && !full; i++) {
		/* the closed ones may still hold their places for a moment */
		full = conform_raw_connect(b);
		if (full && !accept) /* the HELLO makes the connection */
			harness_raw_hello(full, 0, IPCBUS_PROTOCOL_VERSION, "full");
		if (full && harness_raw_read(full, T) == 1 && full->err_code == E_MAX_CONNECTIONS)
			break;
		if (full)
			harness_raw_close(full);
		full = NULL;
		harness_sleep(20);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	CU_ASSERT(full->f.type == IPCBUS__FRAME_TYPE__ERR && full->f.has_id && full->f.id == 0);
	CU_ASSERT(full->err_closing);
	CU_ASSERT_FALSE(full->err_fatal);
	CU_ASSERT(harness_raw_wait_closed(full, T));
	CU_ASSERT(quiet(pad));
}

/* The keepalive bounds protocol.md promises, for ping-interval 200 (a
 * tick of 100 ms): nothing happens before its time; the upper bounds get
 * slack for a loaded machine. */
static void test_keepalive_bounds(void)
{
	UP(b, "ping-interval 200\n");
	/* E_NO_HELLO: 200-300 ms after connecting (where a connection exists
	 * before HELLO) */
	uint64_t t0 = harness_now();
	if (conform_has(CONFORM_ACCEPT)) {
		struct harness_raw *mute = conform_raw_connect(b);
		CU_ASSERT_PTR_NOT_NULL_FATAL(mute);
		CU_ASSERT(harness_raw_wait_closed(mute, T));
		uint64_t dt = harness_now() - t0;
		fprintf(stderr, "  (E_NO_HELLO after %llu ms)\n", (unsigned long long)dt);
		CU_ASSERT_EQUAL(mute->err_code, E_NO_HELLO);
		CU_ASSERT(dt >= 200 && dt < 300 + 400);
	}

	/* PING 200-300 ms after the last frame; E_IDLE 200-300 ms after the
	 * PING when nothing arrives */
	OPEN(silent, b, "silent");
	uint64_t t1 = harness_now();
	silent->auto_pong = 0;
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(silent, T), 1);
	uint64_t tp = harness_now();
	CU_ASSERT_EQUAL(silent->f.type, IPCBUS__FRAME_TYPE__PING);
	CU_ASSERT(silent->f.has_id && silent->f.id > 0);
	CU_ASSERT(harness_raw_wait_closed(silent, T));
	uint64_t te = harness_now();
	fprintf(stderr, "  (PING after %llu ms, E_IDLE %llu ms after it)\n",
		(unsigned long long)(tp - t1), (unsigned long long)(te - tp));
	CU_ASSERT_EQUAL(silent->err_code, E_IDLE);
	CU_ASSERT(silent->err_closing && !silent->err_fatal);
	/* t1 and tp are taken when the test reads, a little after the
	 * broker's own times: 50 ms of slack below too */
	CU_ASSERT(tp - t1 >= 200 - 50 && tp - t1 < 300 + 400);
	CU_ASSERT(te - tp >= 200 - 50 && te - tp < 300 + 400);

	/* any frame keeps a connection alive: a client that is pinged, never
	 * answers, but sends its own PINGs every 100 ms stays open */
	OPEN(chatty, b, "chatty");
	chatty->auto_pong = 0;
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(chatty, T), 1);
	CU_ASSERT_EQUAL(chatty->f.type, IPCBUS__FRAME_TYPE__PING);
	uint64_t t2 = harness_now(), id = 100;
	int closed = 0;
	while (harness_now() - t2 < 1200 && !closed) {
		CU_ASSERT_EQUAL(harness_raw_ping(chatty, ++id), 0);
		uint64_t until = harness_now() + 100, now;
		while ((now = harness_now()) < until) {
			int rc = harness_raw_read(chatty, (int)(until - now));
			if (rc < 0)
				closed = 1;
			if (rc <= 0)
				break;
		}
	}
	CU_ASSERT_FALSE(closed);
	CU_ASSERT(chatty->pings > 0); /* it was pinged, and never answered */
	CU_ASSERT(quiet(chatty));
}


#define RAW CONFORM_RAW
#define STREAM (CONFORM_RAW | CONFORM_STREAM)

const struct conform_case conform_proto_cases[] = {
	/* the connection's start */
	{"hello_welcome", test_hello_welcome, RAW},
	{"frame_before_hello", test_frame_before_hello, STREAM},
	{"wrong_version", test_wrong_version, RAW},
	{"second_hello", test_second_hello, STREAM},
	{"frame_too_big", test_frame_too_big, STREAM},
	/* recoverable refusals */
	{"payload_too_big", test_payload_too_big, RAW},
	{"headers_too_big", test_headers_too_big, RAW},
	{"invalid_channel", test_invalid_channel, RAW},
	{"system_channels", test_system_channels, RAW},
	{"sub_errors", test_sub_errors, RAW},
	/* limits */
	{"max_subscriptions", test_max_subscriptions, RAW},
	{"max_connections", test_max_connections, RAW},
	{"emfile", test_emfile, STREAM | CONFORM_ACCEPT},
	{"control_flood", test_control_flood, STREAM},
	{"term_with_pending_accept", test_term_with_pending_accept, STREAM},
	/* keepalive, no responders */
	{"hello_deadline", test_hello_deadline, STREAM | CONFORM_ACCEPT},
	{"no_responders", test_no_responders, RAW},
	{"ping_pong", test_ping_pong, RAW},
	{"keepalive", test_keepalive, STREAM},
	/* routing */
	{"overlapping_patterns", test_overlapping_patterns, RAW},
	{"wildcards", test_wildcards, RAW},
	{"queue_groups", test_queue_groups, RAW},
	/* framing, TERM */
	{"byte_by_byte", test_byte_by_byte, STREAM},
	{"largest_frame", test_largest_frame, RAW},
	{"drain", test_drain, STREAM},
	/* the rules of docs/protocol.md */
	{"fatal_is_not_closing", test_fatal_is_not_closing, STREAM},
	{"inbox_patterns", test_inbox_patterns, RAW},
	{"unused_fields", test_unused_fields, STREAM},
	{"zero_values", test_zero_values, STREAM},
	{"dollar_rules", test_dollar_rules, RAW},
	{"header_rules", test_header_rules, STREAM},
	{"unknown_fields", test_unknown_fields, STREAM},
	{"padded_header", test_padded_header, STREAM},
	{"before_hello", test_before_hello, STREAM},
	{"keepalive_bounds", test_keepalive_bounds, STREAM},
	{NULL, NULL, 0},
};
