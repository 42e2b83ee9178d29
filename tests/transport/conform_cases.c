/*
 * conform_cases.c: the basics every transport must get right, each checked
 * between a client on the transport under test and one on the broker's
 * default Unix socket (conform.h):
 *
 *   pubsub_both_ways   messages each way, in order and intact, and fan-out
 *                      to two clients of the transport
 *   max_payload        exactly max-payload delivered, one byte more
 *                      refused by the library (IPCBUS_ETOOBIG)
 *   max_payload_raw    the same from a raw client: ERR E_PAYLOAD_TOO_BIG
 *                      and the connection stays usable
 *   headers            repeated keys, binary values with NUL bytes, empty
 *                      values, their order, a reply channel
 *   request_reply      requests each way, many in flight; no responders
 *                      answered at once
 *   garbage            bytes that are no protocol from a raw peer: that
 *                      peer is closed, the broker and the others go on
 *   slow_disconnect    a subscriber that stops reading under a flood:
 *   slow_drop          bounded broker memory, the others' round trips
 *                      prompt, the stalled one disconnected (or its
 *                      messages dropped) per slow-consumer
 *   broker_restart     the library reconnects over the transport and
 *                      resubscribes; traffic both ways after the restart
 *   peer_vanishes      a subscriber process killed: its subscription goes
 *   raw_peer_vanishes  the same for a reset connection, and a frame cut in
 *                      half by the reset is not delivered
 *
 * Each case is kept to a second or so (small limits: 64k max-payload, 1M
 * max-pending).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conform.h"
#include "libpump.h"

#define T CONFORM_T
#define MAXP (64 << 10) /* the max-payload of the limit cases */

/* ---- payloads that show corruption ---- */

/* p[0..8) = seq, the rest a function of seq and the position. */
static void fill(uint8_t *p, size_t n, uint64_t seq)
{
	memcpy(p, &seq, n < 8 ? n : 8);
	for (size_t i = 8; i < n; i++)
		p[i] = (uint8_t)(seq * 31 + i * 7);
}

/* 1 when p[0..n) is what fill() made for its seq (*seq). */
static int intact(const void *data, size_t n, uint64_t *seq)
{
	const uint8_t *p = data;
	uint64_t s = 0;

	if (n < 8)
		return 0;
	memcpy(&s, p, 8);
	for (size_t i = 8; i < n; i++)
		if (p[i] != (uint8_t)(s * 31 + i * 7))
			return 0;
	*seq = s;
	return 1;
}

/* What a subscription callback received. */
struct box {
	uint64_t n;         /* messages */
	uint64_t seqs;      /* of them, intact fill() payloads */
	uint64_t next;      /* the sequence number expected next */
	uint64_t gaps;      /* a seq other than next (a loss or a repeat) */
	uint64_t backwards; /* a seq not above the one before */
	uint64_t last;
	uint64_t sid;       /* of the last message */
	size_t len;         /* of the last message */
	char channel[64];   /* of the last message */
	char text[64];      /* the last payload, when it is short text */
};

static void box_cb(void *arg, const ipcbus_msg *m)
{
	struct box *k = arg;
	uint64_t seq;

	k->n++;
	k->sid = m->sid;
	k->len = m->len;
	snprintf(k->channel, sizeof k->channel, "%.*s", (int)m->channel_len, m->channel);
	snprintf(k->text, sizeof k->text, "%.*s", m->len < 64 ? (int)m->len : 0,
		 (const char *)m->data);
	if (!intact(m->data, m->len, &seq))
		return;
	if (seq != k->next)
		k->gaps++;
	if (k->seqs && seq <= k->last)
		k->backwards++;
	k->seqs++;
	k->last = seq;
	k->next = seq + 1;
}

struct want {
	const struct box *k;
	uint64_t n;
};

static int boxes_full(void *arg)
{
	for (const struct want *w = arg; w->k; w++)
		if (w->k->n < w->n)
			return 0;
	return 1;
}

static int is_connected(void *arg)
{
	return ipcbus_connected(arg);
}

static int is_disconnected(void *arg)
{
	return !ipcbus_connected(arg);
}

/* ---- 1. publish/subscribe both ways ---- */

static void test_pubsub_both_ways(void)
{
	enum { N = 300 };
	static uint8_t buf[6000 + 8];
	CONFORM_UP(b, "");
	ipcbus *t = conform_lib(b, "on-transport", NULL);
	ipcbus *t2 = conform_lib(b, "on-transport-2", NULL);
	ipcbus *u = conform_lib_unix(b, "on-unix", NULL);
	CU_ASSERT_FATAL(t && t2 && u);
	struct box kt = {0}, kt2 = {0}, ku = {0};
	uint64_t st = 0, st2 = 0, su = 0;
	CU_ASSERT_EQUAL(ipcbus_subscribe(t, "cf.to-t.*", NULL, box_cb, &kt, &st), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(t2, "cf.to-t.>", NULL, box_cb, &kt2, &st2), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(u, "cf.to-u.>", NULL, box_cb, &ku, &su), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t2, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);

	/* A datagram transport has no flow control: what outruns a socket's
	 * buffer is lost, as documented.  So there every batch of 16 ends
	 * with round trips, in which each client also reads what came: the
	 * sockets' buffers never hold more than a batch, and nothing may be
	 * lost then. */
	uint64_t batch = conform_has(CONFORM_STREAM) ? N : 16;
	/* sizes from 8 bytes to 6 KB, so frames straddle every buffer edge */
	for (uint64_t i = 0; i < N; i++) {
		size_t size = 8 + (size_t)(i * 397) % 6000;
		fill(buf, size, i);
		CU_ASSERT_EQUAL(ipcbus_publish(u, "cf.to-t.x", buf, size), 0);
		CU_ASSERT_EQUAL(ipcbus_publish(t, "cf.to-u.y.z", buf, size), 0);
		if (batch < N && i % batch == batch - 1) {
			CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);
			CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
			CU_ASSERT_EQUAL(ipcbus_flush(t2, T), 0);
		}
	}
	CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	ipcbus *all[] = {t, t2, u};
	struct want w[] = {{&kt, N}, {&kt2, N}, {&ku, N}, {NULL, 0}};
	CU_ASSERT_EQUAL(lib_pump(all, 3, boxes_full, w, 10000), 0);
	lib_pump(all, 3, NULL, NULL, 50); /* anything extra shows now */
	const struct box *ks[] = {&kt, &kt2, &ku};
	const uint64_t sids[] = {st, st2, su};
	for (int i = 0; i < 3; i++) {
		fprintf(stderr, "  (subscriber %d: %llu messages, %llu intact, %llu gaps)\n", i,
			(unsigned long long)ks[i]->n, (unsigned long long)ks[i]->seqs,
			(unsigned long long)ks[i]->gaps);
		CU_ASSERT_EQUAL(ks[i]->n, N);
		CU_ASSERT_EQUAL(ks[i]->seqs, N);
		CU_ASSERT_EQUAL(ks[i]->gaps, 0);
		CU_ASSERT_EQUAL(ks[i]->sid, sids[i]);
	}
	CU_ASSERT_STRING_EQUAL(kt.channel, "cf.to-t.x");
	CU_ASSERT_STRING_EQUAL(ku.channel, "cf.to-u.y.z");
}

/* ---- 2. max-payload ---- */

static void test_max_payload(void)
{
	static uint8_t big[MAXP + 1];
	CONFORM_UP(b, "max-payload 64k\n");
	ipcbus *t = conform_lib(b, "on-transport", NULL);
	ipcbus *u = conform_lib_unix(b, "on-unix", NULL);
	CU_ASSERT_FATAL(t && u);
	uint64_t tlimit = ipcbus_max_payload(t), ulimit = ipcbus_max_payload(u);
	CU_ASSERT_EQUAL(ulimit, MAXP);
	if (conform_has(CONFORM_STREAM)) {
		CU_ASSERT_EQUAL(tlimit, MAXP);
	} else { /* a datagram transport announces what fits a datagram */
		CU_ASSERT(tlimit > 0 && tlimit <= MAXP);
	}
	CU_ASSERT_FATAL(tlimit > 8 && tlimit <= MAXP);
	struct box kt = {0}, ku = {0};
	CU_ASSERT_EQUAL(ipcbus_subscribe(t, "cf.big.t", NULL, box_cb, &kt, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(u, "cf.big.u", NULL, box_cb, &ku, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);

	fill(big, sizeof big, 7);
	CU_ASSERT_EQUAL(ipcbus_publish(t, "cf.big.u", big, tlimit), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(t, "cf.big.u", big, tlimit + 1), IPCBUS_ETOOBIG);
	fill(big, sizeof big, 8);
	CU_ASSERT_EQUAL(ipcbus_publish(u, "cf.big.t", big, tlimit), 0);
	CU_ASSERT_EQUAL(ipcbus_publish(u, "cf.big.t", big, ulimit + 1), IPCBUS_ETOOBIG);
	/* nothing the broker had to refuse: the oversize ones were not sent */
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);
	ipcbus *all[] = {t, u};
	struct want w[] = {{&kt, 1}, {&ku, 1}, {NULL, 0}};
	CU_ASSERT_EQUAL(lib_pump(all, 2, boxes_full, w, T), 0);
	lib_pump(all, 2, NULL, NULL, 50);
	CU_ASSERT_EQUAL(ku.n, 1);
	CU_ASSERT_EQUAL(ku.len, tlimit);
	CU_ASSERT(ku.seqs == 1 && ku.last == 7);
	CU_ASSERT_EQUAL(kt.n, 1);
	CU_ASSERT_EQUAL(kt.len, tlimit);
	CU_ASSERT(kt.seqs == 1 && kt.last == 8);
	CU_ASSERT(ipcbus_connected(t) && ipcbus_connected(u));
}

static void test_max_payload_raw(void)
{
	static uint8_t big[MAXP + 1];
	CONFORM_UP(b, "max-payload 64k\n");
	struct harness_raw *sub = harness_raw_open(b, "unix-sub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
	CONFORM_OPEN(r, b, "raw-on-transport");
	CU_ASSERT(r->welcome->has_max_payload && r->welcome->max_payload == MAXP);
	CU_ASSERT_EQUAL(harness_raw_sub(sub, 1, 1, "cf.big", NULL), 0);
	CU_ASSERT(conform_quiet(sub));
	fill(big, sizeof big, 3);

	/* one byte over: refused with the frame's id, recoverably */
	CU_ASSERT_EQUAL(harness_raw_pub(r, 41, "cf.big", NULL, big, MAXP + 1), 0);
	CU_ASSERT(harness_raw_expect_err(r, IPCBUS__ERR_CODE__E_PAYLOAD_TOO_BIG, 41, T));
	CU_ASSERT_FALSE(r->err_fatal);
	CU_ASSERT_FALSE(r->err_closing);
	/* exactly max-payload: through, intact */
	CU_ASSERT_EQUAL(harness_raw_pub(r, 42, "cf.big", NULL, big, MAXP), 0);
	CU_ASSERT(conform_quiet(r));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(sub, T), 1);
	CU_ASSERT_EQUAL(sub->f.type, IPCBUS__FRAME_TYPE__MSG);
	uint64_t seq = 0;
	CU_ASSERT(sub->f.payload.len == MAXP && intact(sub->f.payload.p, MAXP, &seq) && seq == 3);
	CU_ASSERT(conform_quiet(sub)); /* and the refused one was not delivered */

	/* the other way: a subscriber on the transport gets the largest */
	CONFORM_OPEN(rs, b, "raw-sub-on-transport");
	CU_ASSERT_EQUAL(harness_raw_sub(rs, 1, 2, "cf.big.back", NULL), 0);
	CU_ASSERT(conform_quiet(rs));
	CU_ASSERT_EQUAL(harness_raw_pub(sub, 43, "cf.big.back", NULL, big, MAXP + 1), 0);
	CU_ASSERT(harness_raw_expect_err(sub, IPCBUS__ERR_CODE__E_PAYLOAD_TOO_BIG, 43, T));
	CU_ASSERT_EQUAL(harness_raw_pub(sub, 44, "cf.big.back", NULL, big, MAXP), 0);
	CU_ASSERT(conform_quiet(sub));
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(rs, T), 1);
	CU_ASSERT(rs->f.type == IPCBUS__FRAME_TYPE__MSG && rs->f.sid == 2 &&
		  rs->f.payload.len == MAXP && intact(rs->f.payload.p, MAXP, &seq) && seq == 3);
	CU_ASSERT(conform_quiet(rs));
	CU_ASSERT(conform_quiet(r)); /* still usable */
}

/* ---- 3. headers ---- */

static char long_value[3000];

static const char bin_value[] = {'a', 0, 'b', (char)0xff, 0};

static const ipcbus_header hdrs[] = {
	{.key = "bin", .value = bin_value, .value_len = sizeof bin_value},
	{.key = "k", .value = "v1"},
	{.key = "k", .value = "v2"},
	{.key = "Key", .value = "case"},
	{.key = "empty", .value = ""},
	{.key = "k", .value = "v3"},
	{.key = "nuls", .value = "\0\0\0", .value_len = 3},
	{.key = "long", .value = long_value, .value_len = sizeof long_value},
};

static const char hdr_payload[] = {0, 'p', 0, (char)0x80, 'q'};

/* m carries hdrs, in order, intact, and hdr_payload with reply_to. */
static void check_headers(const ipcbus_msg *m)
{
	CU_ASSERT(m->len == sizeof hdr_payload && memcmp(m->data, hdr_payload, m->len) == 0);
	CU_ASSERT(m->reply_to && m->reply_to_len == 13 && memcmp(m->reply_to, "cf.reply.here", 13) == 0);
	CU_ASSERT_EQUAL_FATAL(m->nheaders, HARNESS_NELEM(hdrs));
	for (size_t i = 0; i < HARNESS_NELEM(hdrs); i++) {
		size_t kl = strlen(hdrs[i].key);
		size_t vl = hdrs[i].value_len ? hdrs[i].value_len : strlen(hdrs[i].value);
		if (m->headers[i].key_len != kl || memcmp(m->headers[i].key, hdrs[i].key, kl) != 0 ||
		    m->headers[i].value_len != vl ||
		    (vl && memcmp(m->headers[i].value, hdrs[i].value, vl) != 0)) {
			fprintf(stderr, "  header %zu (%s) not intact\n", i, hdrs[i].key);
			CU_FAIL("a header changed on its way");
		}
	}
	size_t len = 0;
	const char *v = ipcbus_msg_header(m, "k", &len);
	CU_ASSERT(v && len == 2 && memcmp(v, "v1", 2) == 0);
	CU_ASSERT_PTR_NULL(ipcbus_msg_header(m, "KEY", &len));
}

static void test_headers(void)
{
	for (size_t i = 0; i < sizeof long_value; i++)
		long_value[i] = i % 7 == 0 ? 0 : (char)('a' + i % 26);
	CONFORM_UP(b, "");
	ipcbus *t = conform_lib(b, "on-transport", NULL);
	ipcbus *u = conform_lib_unix(b, "on-unix", NULL);
	CU_ASSERT_FATAL(t && u);
	CU_ASSERT_EQUAL(ipcbus_subscribe(t, "cf.hd.t", NULL, NULL, NULL, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(u, "cf.hd.u", NULL, NULL, NULL, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);

	ipcbus *from[] = {u, t}, *to[] = {t, u};
	const char *chan[] = {"cf.hd.t", "cf.hd.u"};
	for (int d = 0; d < 2; d++) {
		CU_ASSERT_EQUAL(ipcbus_publish_ex(from[d], chan[d], "cf.reply.here", hdrs,
						  HARNESS_NELEM(hdrs), hdr_payload,
						  sizeof hdr_payload), 0);
		CU_ASSERT_EQUAL(ipcbus_flush(from[d], T), 0);
		ipcbus_msg *m = NULL;
		CU_ASSERT_EQUAL(ipcbus_next(to[d], &m, T), 0);
		if (!m) {
			CU_FAIL("no message with headers");
			continue;
		}
		check_headers(m);
		ipcbus_msg_free(m);
	}
}

/* ---- 4. request/reply ---- */

struct responder {
	ipcbus *c;
	const char *tag;
	int n;
};

/* Answer "TAG:PAYLOAD" with a header naming the responder. */
static void responder_cb(void *arg, const ipcbus_msg *m)
{
	struct responder *r = arg;
	char out[96];
	int n = snprintf(out, sizeof out, "%s:%.*s", r->tag, (int)(m->len < 64 ? m->len : 64),
			 (const char *)m->data);
	ipcbus_header h = {.key = "responder", .value = r->tag};
	if (ipcbus_respond(r->c, m, &h, 1, out, (size_t)n) == 0)
		r->n++;
}

struct answer {
	int done, status;
	char want[64];
	int right; /* the reply is want, with the header */
};

static void answer_cb(void *arg, int status, const ipcbus_msg *reply)
{
	struct answer *a = arg;
	a->done++;
	a->status = status;
	if (status == 0 && reply) {
		size_t n = strlen(a->want), hl = 0;
		const char *h = ipcbus_msg_header(reply, "responder", &hl);
		a->right = reply->len == n && memcmp(reply->data, a->want, n) == 0 && h && hl == 1 &&
			   h[0] == a->want[0];
	}
}

static int answers_done(void *arg)
{
	const struct answer *a = arg;
	for (; a->want[0]; a++)
		if (!a->done)
			return 0;
	return 1;
}

static void test_request_reply(void)
{
	enum { N = 20 };
	CONFORM_UP(b, "");
	ipcbus *t = conform_lib(b, "on-transport", NULL);
	ipcbus *u = conform_lib_unix(b, "on-unix", NULL);
	CU_ASSERT_FATAL(t && u);
	struct responder rt = {.c = t, .tag = "t"}, ru = {.c = u, .tag = "u"};
	CU_ASSERT_EQUAL(ipcbus_subscribe(t, "cf.svc.t", NULL, responder_cb, &rt, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(u, "cf.svc.u", NULL, responder_cb, &ru, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);

	/* N in flight each way at once */
	static struct answer a[2 * N + 1];
	memset(a, 0, sizeof a);
	for (int i = 0; i < 2 * N; i++) {
		int to_t = i % 2 == 0;
		char q[32];
		int n = snprintf(q, sizeof q, "q%d", i);
		snprintf(a[i].want, sizeof a[i].want, "%s:%s", to_t ? "t" : "u", q);
		CU_ASSERT_EQUAL(ipcbus_request_async(to_t ? u : t, to_t ? "cf.svc.t" : "cf.svc.u", NULL,
						     0, q, (size_t)n, T, answer_cb, &a[i]), 0);
	}
	ipcbus *all[] = {t, u};
	CU_ASSERT_EQUAL(lib_pump(all, 2, answers_done, a, 2 * T), 0);
	int right = 0;
	for (int i = 0; i < 2 * N; i++) {
		CU_ASSERT_EQUAL(a[i].done, 1);
		if (a[i].status != 0)
			fprintf(stderr, "  request %d: %s\n", i, ipcbus_strerror(a[i].status));
		right += a[i].status == 0 && a[i].right;
	}
	CU_ASSERT_EQUAL(right, 2 * N);
	CU_ASSERT_EQUAL(rt.n, N);
	CU_ASSERT_EQUAL(ru.n, N);

	/* nobody subscribed: "no responders" at once, not the timeout */
	ipcbus *ask[] = {t, u};
	for (int i = 0; i < 2; i++) {
		ipcbus_msg *m = NULL;
		uint64_t t0 = harness_now();
		CU_ASSERT_EQUAL(ipcbus_request(ask[i], "cf.nobody.home", NULL, 0, "x", 1, T, &m),
				IPCBUS_ENORESPONDERS);
		uint64_t dt = harness_now() - t0;
		fprintf(stderr, "  (no responders after %llu ms)\n", (unsigned long long)dt);
		CU_ASSERT(dt < 1000);
		CU_ASSERT_PTR_NULL(m);
	}
	CU_ASSERT(ipcbus_connected(t) && ipcbus_connected(u));
}

/* ---- 5. garbage ---- */

static void test_garbage(void)
{
	static const uint8_t undecodable[] = {5, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t tls_hello[] = {0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1,
					    0x03, 0x03, 0x5b, 0x90, 0x9d, 0x9b, 0x72, 0x0b, 0xbc,
					    0x0c, 0xbc, 0x2b, 0x92, 0xa8, 0x48, 0x97, 0xcf, 0xbd};
	static uint8_t ff[16], prefix[FRAME_VARINT_MAX], noise[4096];
	static char http[400];
	memset(ff, 0xff, sizeof ff);
	size_t nprefix = frame_varint_put(prefix, 512u << 20);
	uint32_t x = 2463534242u; /* xorshift32: the same noise every run */
	for (size_t i = 0; i < sizeof noise; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		noise[i] = (uint8_t)x;
	}
	int nhttp = snprintf(http, sizeof http,
			     "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: %0300d\r\n\r\n", 7);
	const struct {
		const char *what;
		int hello;       /* send it after HELLO/WELCOME */
		const void *p;
		size_t n;
		int code;        /* the fatal ERR's code on a stream; 0: any */
	} bad[] = {
		{"a body that does not decode, after HELLO", 1, undecodable, sizeof undecodable,
		 IPCBUS__ERR_CODE__E_PROTOCOL},
		{"a length prefix that is no varint", 0, ff, sizeof ff, IPCBUS__ERR_CODE__E_PROTOCOL},
		{"a 512 MiB length prefix", 1, prefix, nprefix, IPCBUS__ERR_CODE__E_FRAME_TOO_BIG},
		{"an HTTP request", 0, http, (size_t)nhttp, 0},
		{"a TLS ClientHello", 0, tls_hello, sizeof tls_hello, 0},
		{"4 KiB of noise, after HELLO", 1, noise, sizeof noise, 0},
	};

	CONFORM_UP(b, "");
	ipcbus *t = conform_lib(b, "bystander-on-transport", NULL);
	ipcbus *u = conform_lib_unix(b, "bystander-on-unix", NULL);
	struct harness_raw *watch = harness_raw_open(b, "bystander-raw");
	CU_ASSERT_FATAL(t && u && watch);
	struct box kt = {0};
	CU_ASSERT_EQUAL(ipcbus_subscribe(t, "cf.g", NULL, box_cb, &kt, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);

	for (size_t i = 0; i < HARNESS_NELEM(bad); i++) {
		struct harness_raw *r = bad[i].hello ? conform_raw_open(b, "garbage")
						     : conform_raw_connect(b);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r);
		/* the broker may close before it has read it all */
		harness_raw_send(r, bad[i].p, bad[i].n);
		if (!bad[i].hello && !conform_has(CONFORM_ACCEPT)) {
			/* it went to the broker's HELLO queue */
			int unanswered = conform_unanswered(b, r);
			fprintf(stderr, "  (%s, as a HELLO: %s)\n", bad[i].what,
				unanswered ? "no answer, refused in the log" : "ANSWERED");
			CU_ASSERT(unanswered);
			harness_raw_close(r);
			continue;
		}
		int closed = harness_raw_wait_closed(r, T);
		fprintf(stderr, "  (%s: %s, ERR %d%s: %s)\n", bad[i].what,
			closed ? "closed" : "NOT closed", r->err_code, r->err_fatal ? " fatal" : "",
			r->err_text);
		CU_ASSERT(closed);
		if (conform_has(CONFORM_STREAM)) {
			CU_ASSERT(r->err_code > 0 && r->err_fatal); /* the reason came first */
			CU_ASSERT(!bad[i].code || r->err_code == bad[i].code);
		}
		harness_raw_close(r);
	}

	/* the broker lives and nobody else noticed */
	CU_ASSERT_EQUAL(kill(b->pid, 0), 0);
	CU_ASSERT_EQUAL(harness_wait_pid(b->pid, 0), -1);
	CU_ASSERT(conform_quiet(watch));
	CU_ASSERT_EQUAL(ipcbus_publish(u, "cf.g", "still here", 10), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);
	struct want w[] = {{&kt, 1}, {NULL, 0}};
	CU_ASSERT_EQUAL(lib_pump(&t, 1, boxes_full, w, T), 0);
	CU_ASSERT_STRING_EQUAL(kt.text, "still here");
	CU_ASSERT(ipcbus_connected(t) && ipcbus_connected(u));
	struct harness_raw *late = conform_raw_open(b, "newcomer");
	CU_ASSERT(late && conform_quiet(late));
}

/* ---- 6. a subscriber that stops reading ---- */

#define FLOOD_MSG (16 << 10)
#define FLOOD_COUNT 3072           /* 48 MiB against a max-pending of 1 MiB */
#define FLOOD_RSS_KIB (16 << 10)   /* growth allowed: a fraction of the flood */

static int box_settled(void *arg)
{
	struct box *k = arg;
	static uint64_t seen, since;
	if (k->n != seen || !since) {
		seen = k->n;
		since = harness_now();
		return 0;
	}
	if (harness_now() - since < 300)
		return 0;
	since = 0;
	return 1;
}

static void slow_subscriber(int disconnect)
{
	static uint8_t payload[FLOOD_MSG];
	CONFORM_UP(b, disconnect ? "max-pending 1M\nslow-consumer disconnect\n"
				 : "max-pending 1M\nslow-consumer drop\n");
	struct conform_events ev = {0};
	struct box ks = {0};
	ipcbus *stalled = conform_lib(b, "stalled", &ev);
	ipcbus *peer = conform_lib(b, "peer-on-transport", NULL);
	struct harness_raw *pub = harness_raw_open(b, "publisher");
	struct harness_raw *prober = harness_raw_open(b, "prober");
	CU_ASSERT_FATAL(stalled && peer && pub && prober);
	CU_ASSERT_EQUAL(ipcbus_subscribe(stalled, "cf.fire", NULL, box_cb, &ks, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(stalled, T), 0);

	/* the flood; the stalled connection is not dispatched meanwhile */
	long rss0 = harness_broker_rss(b), peak = rss0;
	uint64_t rtt_max = 0, t0 = harness_now();
	int probes_failed = 0;
	for (uint64_t i = 0; i < FLOOD_COUNT; i++) {
		fill(payload, sizeof payload, i);
		if (harness_raw_pub(pub, 0, "cf.fire", NULL, payload, sizeof payload) < 0) {
			CU_FAIL("the publisher could not send");
			break;
		}
		if (i % 256 == 255) {
			long rss = harness_broker_rss(b);
			peak = rss > peak ? rss : peak;
			uint64_t p0 = harness_now();
			probes_failed += harness_raw_barrier(prober, 3000, NULL, NULL) != 1;
			probes_failed += ipcbus_flush(peer, 3000) != 0;
			uint64_t dt = harness_now() - p0;
			rtt_max = dt > rtt_max ? dt : rtt_max;
		}
	}
	CU_ASSERT_EQUAL(harness_raw_barrier(pub, 10000, NULL, NULL), 1);
	long rss = harness_broker_rss(b);
	peak = rss > peak ? rss : peak;
	fprintf(stderr, "  (48 MiB in %llu ms; broker RSS %ld -> peak %ld KiB; slowest round trip %llu ms)\n",
		(unsigned long long)(harness_now() - t0), rss0, peak, (unsigned long long)rtt_max);
	CU_ASSERT(rss0 > 0 && peak - rss0 < FLOOD_RSS_KIB + conform_rss_slack_kib());
	CU_ASSERT_EQUAL(probes_failed, 0);
	CU_ASSERT(rtt_max < 2000);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "slow consumer", 2000), 0);
	CU_ASSERT(harness_broker_log_has(b, "stalled"));
	CU_ASSERT(ipcbus_connected(peer));

	/* now it reads: what the broker kept, in order, then per policy */
	if (disconnect) {
		CU_ASSERT_EQUAL(lib_pump(&stalled, 1, is_disconnected, stalled, T), 0);
		CU_ASSERT(ev.disconnected > 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(ev.text, "slow"));
		fprintf(stderr, "  (stalled: %llu messages, then \"%s\")\n",
			(unsigned long long)ks.n, ev.text);
		CU_ASSERT_EQUAL(ev.closed, 0); /* not fatal: it may come back */
		CU_ASSERT_EQUAL(lib_pump(&stalled, 1, is_connected, stalled, T), 0);
	} else {
		lib_pump(&stalled, 1, box_settled, &ks, T);
		fprintf(stderr, "  (stalled: %llu of %d messages kept, none lost in the middle of one)\n",
			(unsigned long long)ks.n, FLOOD_COUNT);
		CU_ASSERT_EQUAL(ev.disconnected, 0);
		CU_ASSERT(ks.n > 0);
		CU_ASSERT_EQUAL(ks.seqs, ks.n); /* every one intact */
	}
	CU_ASSERT(ks.n < FLOOD_COUNT);
	CU_ASSERT_EQUAL(ks.backwards, 0);
	/* and it is served normally again */
	CU_ASSERT_EQUAL(harness_raw_wait_interest(pub, "cf.fire", T), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "cf.fire", NULL, "after", 5), 0);
	uint64_t deadline = harness_now() + T;
	while (strcmp(ks.text, "after") != 0 && harness_now() < deadline)
		lib_pump(&stalled, 1, NULL, NULL, 20);
	CU_ASSERT_STRING_EQUAL(ks.text, "after");
}

static void test_slow_disconnect(void)
{
	slow_subscriber(1);
}

static void test_slow_drop(void)
{
	slow_subscriber(0);
}

/* ---- 7. a broker restart ---- */

static void test_broker_restart(void)
{
	CONFORM_UP(b, "");
	struct conform_events ev = {0};
	struct box k = {0};
	ipcbus *t = conform_lib(b, "survivor", &ev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	uint64_t sid = 0;
	CU_ASSERT_EQUAL(ipcbus_subscribe(t, "cf.rs.>", NULL, box_cb, &k, &sid), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	struct harness_raw *p = harness_raw_open(b, "before");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "cf.rs.a", NULL, "before", 6), 0);
	struct want w[] = {{&k, 1}, {NULL, 0}};
	CU_ASSERT_EQUAL(lib_pump(&t, 1, boxes_full, w, T), 0);

	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(lib_pump(&t, 1, is_disconnected, t, T), 0);
	CU_ASSERT(ev.disconnected > 0);
	uint64_t t0 = harness_now();
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	CU_ASSERT_EQUAL(lib_pump(&t, 1, is_connected, t, T), 0);
	uint64_t deadline = harness_now() + T;
	while (ev.reconnected == 0 && harness_now() < deadline)
		lib_pump(&t, 1, NULL, NULL, 20);
	fprintf(stderr, "  (reconnected %llu ms after the start)\n",
		(unsigned long long)(harness_now() - t0));
	CU_ASSERT_EQUAL(ev.reconnected, 1);
	CU_ASSERT_EQUAL(ev.closed, 0);

	/* resubscribed: a message published now on Unix reaches it, same sid */
	p = harness_raw_open(b, "after");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(harness_raw_wait_interest(p, "cf.rs.b", T), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "cf.rs.b", NULL, "after", 5), 0);
	deadline = harness_now() + T;
	while (strcmp(k.text, "after") != 0 && harness_now() < deadline)
		lib_pump(&t, 1, NULL, NULL, 20);
	CU_ASSERT_STRING_EQUAL(k.text, "after");
	CU_ASSERT_STRING_EQUAL(k.channel, "cf.rs.b");
	CU_ASSERT_EQUAL(k.sid, sid);
	/* and it publishes over the new connection */
	CU_ASSERT_EQUAL(harness_raw_sub(p, 1, 9, "cf.back", NULL), 0);
	CU_ASSERT(conform_quiet(p));
	CU_ASSERT_EQUAL(ipcbus_publish(t, "cf.back", "hello again", 11), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(t, T), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(p, T), 1);
	CU_ASSERT(harness_raw_is_msg(p, 9, "hello again"));
}

/* ---- 8. a peer that vanishes ---- */

static void test_peer_vanishes(void)
{
	CONFORM_UP(b, "");
	const char *url = conform_url(b);
	int ready[2];
	CU_ASSERT_EQUAL_FATAL(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = harness_fork(20);
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		/* a subscriber on the transport, killed below */
		ipcbus *c = NULL;
		ipcbus_opts o = IPCBUS_OPTS_INIT;
		o.name = "doomed";
		close(ready[0]);
		if (ipcbus_connect(&c, url, &o) < 0 ||
		    ipcbus_subscribe(c, "cf.gone.lib", NULL, NULL, NULL, NULL) < 0 ||
		    ipcbus_flush(c, T) < 0 || write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	struct pollfd pf = {.fd = ready[0], .events = POLLIN};
	char c = 0;
	int up = poll(&pf, 1, T) == 1 && read(ready[0], &c, 1) == 1 && c == 'r';
	close(ready[0]);
	CU_ASSERT_FATAL(up);
	struct harness_raw *asker = harness_raw_open(b, "asker");
	CU_ASSERT_PTR_NOT_NULL_FATAL(asker);
	CU_ASSERT_EQUAL(harness_raw_wait_interest(asker, "cf.gone.lib", T), 0);

	CU_ASSERT_EQUAL(kill(pid, SIGKILL), 0);
	CU_ASSERT_EQUAL(harness_wait_pid(pid, T), 128 + SIGKILL);
	int dt = conform_wait_no_interest(asker, "cf.gone.lib", 2000);
	fprintf(stderr, "  (its subscription went %d ms after the kill)\n", dt);
	CU_ASSERT(dt >= 0);
	ipcbus *u = conform_lib_unix(b, "asker-lib", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	ipcbus_msg *m = NULL;
	CU_ASSERT_EQUAL(ipcbus_request(u, "cf.gone.lib", NULL, 0, "x", 1, T, &m),
			IPCBUS_ENORESPONDERS);
	CU_ASSERT_EQUAL(kill(b->pid, 0), 0);
}

static void test_raw_peer_vanishes(void)
{
	static uint8_t payload[1000];
	CONFORM_UP(b, "");
	struct harness_raw *asker = harness_raw_open(b, "asker");
	struct harness_raw *watch = harness_raw_open(b, "watcher");
	CU_ASSERT_FATAL(asker && watch);
	CONFORM_OPEN(r, b, "doomed-raw");
	CU_ASSERT_EQUAL(harness_raw_sub(r, 1, 1, "cf.gone.raw", NULL), 0);
	CU_ASSERT(conform_quiet(r));
	CU_ASSERT_EQUAL(harness_raw_wait_interest(asker, "cf.gone.raw", T), 0);
	CU_ASSERT_EQUAL(harness_raw_sub(watch, 1, 1, "cf.half", NULL), 0);
	CU_ASSERT(conform_quiet(watch));

	/* half a PUB, then a reset: nothing of it is delivered */
	CONFORM_OPEN(half, b, "half");
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = 1, .id = 5};
	f.channel = (struct frame_bytes){(const uint8_t *)"cf.half", 7, 1};
	f.payload = (struct frame_bytes){payload, sizeof payload, 1};
	struct buf out;
	buf_init(&out, 1 << 20);
	CU_ASSERT_EQUAL_FATAL(frame_append(&out, &f, NULL, 0), 0);
	CU_ASSERT_EQUAL(harness_raw_send(half, buf_rptr(&out), buf_len(&out) / 2), 0);
	buf_fini(&out);
	harness_sleep(30); /* for the broker to read the half */
	harness_raw_abort(half);

	harness_raw_abort(r);
	int dt = conform_wait_no_interest(asker, "cf.gone.raw", 2000);
	fprintf(stderr, "  (its subscription went %d ms after the reset)\n", dt);
	CU_ASSERT(dt >= 0);
	CU_ASSERT(conform_quiet(watch));
	CU_ASSERT_EQUAL(kill(b->pid, 0), 0);
}

const struct conform_case conform_cases[] = {
	{"pubsub_both_ways", test_pubsub_both_ways, 0},
	{"max_payload", test_max_payload, 0},
	{"max_payload_raw", test_max_payload_raw, CONFORM_RAW},
	{"headers", test_headers, 0},
	{"request_reply", test_request_reply, 0},
	{"garbage", test_garbage, CONFORM_RAW},
	{"slow_disconnect", test_slow_disconnect, CONFORM_STREAM},
	{"slow_drop", test_slow_drop, CONFORM_STREAM},
	{"broker_restart", test_broker_restart, 0},
	{"peer_vanishes", test_peer_vanishes, 0},
	{"raw_peer_vanishes", test_raw_peer_vanishes, CONFORM_RAW},
	{NULL, NULL, 0},
};
