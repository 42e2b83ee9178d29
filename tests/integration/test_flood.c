/*
 * test_flood.c: what one client's backlog may cost, and what it may not.
 *
 * - A client that floods PINGs and never reads the PONGs is disconnected
 *   with E_SLOW_CONSUMER, and the ERR reaches it (no reset destroys it);
 *   meanwhile another client's round trips stay short: queueing a frame
 *   costs the same whatever is queued already.
 * - A subscriber that keeps up is not judged slow because one read batch
 *   of a publisher is more than its max-pending.
 * - `slow-consumer disconnect` drops the backlog, counts it, and sends the
 *   ERR at once.
 * - A client that is slow again and again is logged once in a while, not
 *   at every episode.
 * - max-memory bounds what the broker holds (its RSS), and the stalled
 *   subscribers pay for their backlogs, not a subscriber that keeps up.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "ipcbus.h"

static struct harness_raw *open_raw(const struct harness_broker *b, const char *name)
{
	struct harness_raw *r = harness_raw_open(b, name);
	CU_ASSERT_PTR_NOT_NULL(r);
	return r;
}

static int sub_ready(struct harness_raw *r, uint64_t sid, const char *pattern)
{
	if (harness_raw_sub(r, 0, sid, pattern, NULL) < 0)
		return -1;
	return harness_raw_barrier(r, 5000, NULL, NULL) == 1 ? 0 : -1;
}

/* n PUBs on channel of size bytes each (the first 8 the sequence number
 * from seq), sent with one write. */
static int pub_batch(struct harness_raw *r, const char *channel, uint64_t seq, int n, size_t size)
{
	struct buf out;
	uint8_t *payload = calloc(1, size < 8 ? 8 : size);
	int rc = payload ? 0 : -1;

	buf_init(&out, (size_t)n * (size + 64) + 64);
	for (int i = 0; i < n && rc == 0; i++) {
		uint64_t s = seq + (uint64_t)i;
		memcpy(payload, &s, 8);
		struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB};
		f.channel.p = (const uint8_t *)channel;
		f.channel.len = strlen(channel);
		f.channel.set = 1;
		f.payload.p = payload;
		f.payload.len = size;
		f.payload.set = 1;
		rc = frame_append(&out, &f, NULL, 0);
	}
	if (rc == 0)
		rc = harness_raw_send(r, buf_rptr(&out), buf_len(&out));
	buf_fini(&out);
	free(payload);
	return rc;
}

/* Read MSGs until nothing comes for ms; returns how many. */
static uint64_t drain_msgs(struct harness_raw *r, int ms)
{
	uint64_t n = 0;
	while (harness_raw_read(r, ms) == 1)
		if (r->f.type == IPCBUS__FRAME_TYPE__MSG)
			n++;
	return n;
}

/* Lines of the log holding both a and b. */
static int log_lines(const struct harness_broker *b, const char *a, const char *c)
{
	size_t len;
	char *text = harness_read_file(b->log, &len);
	int n = 0;
	for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n"))
		if (strstr(line, a) && strstr(line, c))
			n++;
	free(text);
	return n;
}

/* What the broker held stayed under bound: its own accounting always (the
 * peak of its USR1 status line), and VmRSS too (rss_bound_kib) where that
 * means something (not under AddressSanitizer, whose allocator keeps what
 * was freed). */
static void assert_held(struct harness_broker *b, long rss_delta_kib, size_t bound,
			long rss_bound_kib)
{
	size_t held = 0, peak = 0;
	CU_ASSERT_EQUAL_FATAL(harness_broker_held(b, &held, &peak), 0);
	fprintf(stderr, "  (broker's account: %zu KiB held at most, %zu KiB now)\n", peak >> 10,
		held >> 10);
	CU_ASSERT(peak < bound);
	if (!harness_sanitized())
		CU_ASSERT(rss_delta_kib < rss_bound_kib);
}

/* 4 MiB of PONGs asked for and never read.  Before queueing was O(1), each
 * PONG past max-pending copied the whole queue: seconds of CPU during which
 * nobody else was served. */
static void test_ping_flood(void)
{
	struct harness_broker *b = harness_broker_up("max-pending 4M\n");
	if (!b)
		return;
	struct harness_raw *flood = open_raw(b, "flooder");
	struct harness_raw *probe = open_raw(b, "prober");
	if (!flood || !probe)
		return;

	/* 14-byte PINGs (ids from 2^63), 18,724 to a write of 256 KiB */
	struct buf batch;
	buf_init(&batch, 1 << 20);
	uint64_t id = 1ull << 63, worst = 0;
	int sent_all = 1;
	for (int round = 0; round < 24; round++) {
		buf_consume(&batch, buf_len(&batch));
		while (buf_len(&batch) + 16 < (256u << 10)) {
			struct frame ping = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = id++};
			frame_append(&batch, &ping, NULL, 0);
		}
		if (harness_raw_send(flood, buf_rptr(&batch), buf_len(&batch)) < 0) {
			sent_all = 0; /* disconnected: the rest is refused */
			break;
		}
		uint64_t t0 = harness_now();
		CU_ASSERT_EQUAL(harness_raw_barrier(probe, 20000, NULL, NULL), 1);
		if (harness_now() - t0 > worst)
			worst = harness_now() - t0;
	}
	buf_fini(&batch);
	fprintf(stderr, "  (prober's slowest round trip during the flood: %llu ms; %s)\n",
		(unsigned long long)worst, sent_all ? "all written" : "disconnected while writing");
	/* milliseconds when queueing is O(1); seconds when it is not */
	CU_ASSERT(worst < 1000);

	/* the flooder reads what the kernel held, then the reason, then EOF */
	CU_ASSERT_EQUAL(harness_raw_wait_closed(flood, 10000), 1);
	CU_ASSERT_EQUAL(flood->err_code, IPCBUS__ERR_CODE__E_SLOW_CONSUMER);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "does not read its answers", 2000), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(probe, 5000, NULL, NULL), 1);
}

/* One write of 16 x 8 KiB PUBs, twice max-pending: a subscriber whose
 * socket is empty takes them all, under either policy. */
static void burst(const char *policy)
{
	char lines[128];
	snprintf(lines, sizeof lines, "max-pending 64k\nslow-consumer %s\n", policy);
	struct harness_broker *b = harness_broker_up(lines);
	if (!b)
		return;
	struct harness_raw *sub = open_raw(b, "reader");
	struct harness_raw *pub = open_raw(b, "publisher");
	if (!sub || !pub)
		return;
	CU_ASSERT_EQUAL_FATAL(sub_ready(sub, 1, "burst"), 0);
	CU_ASSERT_EQUAL(pub_batch(pub, "burst", 0, 16, 8 << 10), 0);
	uint64_t got = drain_msgs(sub, 1000);
	fprintf(stderr, "  (%s: the subscriber got %llu of 16)\n", policy, (unsigned long long)got);
	CU_ASSERT_EQUAL(got, 16);
	CU_ASSERT_EQUAL(harness_raw_barrier(sub, 2000, NULL, NULL), 1);
	CU_ASSERT_FALSE(harness_broker_log_has(b, "slow consumer"));
}

static void test_burst_drop(void)
{
	burst("drop");
}

static void test_burst_disconnect(void)
{
	burst("disconnect");
}

/* `slow-consumer disconnect`: the backlog is dropped and counted, the ERR
 * says how much, and what arrives before it is at most what the kernel's
 * socket buffers held. */
static void test_disconnect_drops_backlog(void)
{
	struct harness_broker *b = harness_broker_up("max-pending 64k\nslow-consumer disconnect\n");
	if (!b)
		return;
	struct harness_raw *sub = open_raw(b, "stalled");
	struct harness_raw *pub = open_raw(b, "publisher");
	if (!sub || !pub)
		return;
	CU_ASSERT_EQUAL_FATAL(sub_ready(sub, 1, "backlog"), 0);
	for (int i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(pub_batch(pub, "backlog", (uint64_t)i * 25, 25, 8 << 10), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(pub, 5000, NULL, NULL), 1);

	uint64_t before_err = 0;
	int rc;
	while ((rc = harness_raw_read(sub, 3000)) == 1 && sub->f.type == IPCBUS__FRAME_TYPE__MSG)
		before_err++;
	CU_ASSERT_EQUAL_FATAL(rc, 1);
	CU_ASSERT_EQUAL(sub->f.type, IPCBUS__FRAME_TYPE__ERR);
	CU_ASSERT_EQUAL(sub->err_code, IPCBUS__ERR_CODE__E_SLOW_CONSUMER);
	unsigned long dropped = 0;
	const char *p = strstr(sub->err_text, "disconnected, ");
	CU_ASSERT_PTR_NOT_NULL(p);
	if (p)
		dropped = strtoul(p + strlen("disconnected, "), NULL, 10);
	fprintf(stderr, "  (%llu messages before the ERR: \"%s\")\n", (unsigned long long)before_err,
		sub->err_text);
	/* the queue held about 64 KiB: 7 messages of 8 KiB, plus the one
	 * that did not fit */
	CU_ASSERT(dropped >= 8);
	CU_ASSERT(before_err + dropped <= 200);
	CU_ASSERT_EQUAL(harness_raw_wait_closed(sub, 3000), 1);
	CU_ASSERT(log_lines(b, "stalled", "messages dropped") >= 1);
	CU_ASSERT_EQUAL(harness_raw_barrier(pub, 5000, NULL, NULL), 1);
}

/* Ten drop episodes in a row from one client: one is logged (with its
 * end), the others are counted into the next report. */
static void test_slow_log_rate(void)
{
	struct harness_broker *b = harness_broker_up("max-pending 64k\nslow-consumer drop\n");
	if (!b)
		return;
	struct harness_raw *sub = open_raw(b, "oscillating");
	struct harness_raw *pub = open_raw(b, "publisher");
	if (!sub || !pub)
		return;
	CU_ASSERT_EQUAL_FATAL(sub_ready(sub, 1, "waves"), 0);
	uint64_t got = 0;
	for (int i = 0; i < 10; i++) {
		/* 1 MiB while it does not read, then it reads everything */
		CU_ASSERT_EQUAL(pub_batch(pub, "waves", 0, 128, 8 << 10), 0);
		CU_ASSERT_EQUAL(harness_raw_barrier(pub, 5000, NULL, NULL), 1);
		got += drain_msgs(sub, 200);
		CU_ASSERT_EQUAL(harness_raw_barrier(sub, 5000, NULL, NULL), 1);
	}
	int begun = log_lines(b, "oscillating", "dropping its messages");
	int ended = log_lines(b, "oscillating", "caught up");
	fprintf(stderr, "  (got %llu of 1280; %d episode lines, %d caught-up lines)\n",
		(unsigned long long)got, begun, ended);
	CU_ASSERT(got < 1280); /* there were episodes */
	CU_ASSERT_EQUAL(begun, 1);
	CU_ASSERT(ended <= 1);
}

/* max-memory 8M with ten stalled subscribers allowed 4 MiB each and 64 MiB
 * published: the broker's RSS grows by about max-memory, not by what the
 * subscribers are allowed together. */
static void test_max_memory_rss(void)
{
	struct harness_broker *b = harness_broker_up("max-pending 4M\nmax-memory 8M\n");
	if (!b)
		return;
	struct harness_raw *stalled[10];
	for (int i = 0; i < 10; i++) {
		stalled[i] = open_raw(b, "stalled");
		if (!stalled[i])
			return;
		CU_ASSERT_EQUAL_FATAL(sub_ready(stalled[i], 1, "hose"), 0);
	}
	struct harness_raw *pub = open_raw(b, "publisher");
	if (!pub)
		return;
	long rss0 = harness_broker_rss(b), peak = rss0;
	for (int i = 0; i < 64; i++) {
		CU_ASSERT_EQUAL(pub_batch(pub, "hose", (uint64_t)i * 64, 64, 16 << 10), 0);
		CU_ASSERT_EQUAL(harness_raw_barrier(pub, 10000, NULL, NULL), 1);
		long rss = harness_broker_rss(b);
		if (rss > peak)
			peak = rss;
	}
	fprintf(stderr, "  (broker RSS %ld KiB -> peak %ld KiB)\n", rss0, peak);
	/* 8 MiB held (the first 64 KiB of each input outside it), plus
	 * allocator slack in the RSS */
	assert_held(b, peak - rss0, (8u << 20) + 12 * (64u << 10), 12 << 10);
	CU_ASSERT(harness_broker_log_has(b, "max-memory reached"));
}

/* Twenty publishers each send 900 KB of a 1 MB PUB and stop: input
 * buffers count in max-memory too, so the broker holds about 8 MiB of them
 * (the others wait, unread, in their sockets) and still serves others. */
static void test_max_memory_input(void)
{
	struct harness_broker *b = harness_broker_up("max-pending 4M\nmax-memory 8M\n");
	if (!b)
		return;
	struct harness_raw *probe = open_raw(b, "prober");
	if (!probe)
		return;
	size_t size = 1000000;
	uint8_t *payload = calloc(1, size);
	struct buf frame;
	buf_init(&frame, size + 1024);
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB};
	f.channel.p = (const uint8_t *)"big";
	f.channel.len = 3;
	f.channel.set = 1;
	f.payload.p = payload;
	f.payload.len = size;
	f.payload.set = 1;
	CU_ASSERT_FATAL(payload && frame_append(&frame, &f, NULL, 0) == 0);
	long rss0 = harness_broker_rss(b);
	for (int i = 0; i < 20; i++) {
		struct harness_raw *p = open_raw(b, "halfway");
		if (!p)
			break;
		/* as much as the broker and the socket take within 100 ms: a
		 * connection waiting for memory is not read */
		size_t off = 0;
		uint64_t until = harness_now() + 100;
		while (off < 900000 && harness_now() < until) {
			ssize_t k = send(p->fd, buf_rptr(&frame) + off, 900000 - off,
					 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (k > 0)
				off += (size_t)k;
			else
				harness_sleep(5);
		}
		CU_ASSERT_EQUAL(harness_raw_barrier(probe, 5000, NULL, NULL), 1);
	}
	harness_sleep(200);
	long peak = harness_broker_rss(b);
	fprintf(stderr, "  (broker RSS %ld KiB -> %ld KiB with 20 frames of 1 MB half-read)\n",
		rss0, peak);
	assert_held(b, peak - rss0, (8u << 20) + 22 * (64u << 10), 12 << 10);
	CU_ASSERT_EQUAL(harness_raw_barrier(probe, 5000, NULL, NULL), 1);
	buf_fini(&frame);
	free(payload);
}

/* Twenty stalled subscribers fill max-memory; a subscriber that reads
 * everything after each burst of 600 KiB (under its max-pending of 1M)
 * still gets every message: the stalled ones pay. */
static void healthy(int nstalled, uint64_t *got_out)
{
	struct harness_broker *b = harness_broker_up("max-pending 1M\nmax-memory 8M\n");
	if (!b)
		return;
	for (int i = 0; i < nstalled; i++) {
		struct harness_raw *s = open_raw(b, "stalled");
		if (!s || sub_ready(s, 1, "hose") < 0)
			return;
	}
	struct harness_raw *ok = open_raw(b, "healthy");
	struct harness_raw *pub = open_raw(b, "publisher");
	if (!ok || !pub || sub_ready(ok, 1, "hose") < 0)
		return;
	uint64_t got = 0;
	for (int i = 0; i < 20; i++) {
		CU_ASSERT_EQUAL(pub_batch(pub, "hose", (uint64_t)i * 75, 75, 8 << 10), 0);
		CU_ASSERT_EQUAL(harness_raw_barrier(pub, 5000, NULL, NULL), 1);
		got += drain_msgs(ok, 300);
	}
	*got_out = got;
}

static void test_stalled_pay(void)
{
	uint64_t alone = 0, with = 0;
	healthy(0, &alone);
	harness_cleanup();
	healthy(20, &with);
	fprintf(stderr, "  (the healthy subscriber got %llu of 1500 alone, %llu beside 20 stalled)\n",
		(unsigned long long)alone, (unsigned long long)with);
	CU_ASSERT_EQUAL(alone, 1500);
	CU_ASSERT_EQUAL(with, 1500);
}

static const struct harness_case cases[] = {
	{"ping_flood", test_ping_flood},
	{"burst_drop", test_burst_drop},
	{"burst_disconnect", test_burst_disconnect},
	{"disconnect_drops_backlog", test_disconnect_drops_backlog},
	{"slow_log_rate", test_slow_log_rate},
	{"max_memory_rss", test_max_memory_rss},
	{"max_memory_input", test_max_memory_input},
	{"stalled_pay", test_stalled_pay},
};

int main(int argc, char **argv)
{
	return harness_main("flood", cases, HARNESS_NELEM(cases), 0, 180, argc, argv);
}
