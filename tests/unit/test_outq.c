/*
 * test_outq.c: the output queue of whole frames in chunks: order across
 * chunks, partial writes, dropping what has not started (the frame being
 * written stays whole), frames one at a time for datagrams, big frames in
 * chunks of their own, and the memory count that max-memory relies on.
 */
#include <config.h>

#include <string.h>

#include "frame.h"
#include "outq.h"
#include "unit.h"

/* A frame of n bytes in all (prefix included) whose body bytes are tag. */
static size_t mkframe(uint8_t *p, size_t n, uint8_t tag)
{
	size_t body = n - frame_varint_len(n - 2);
	size_t k = frame_varint_put(p, body);
	CU_ASSERT_EQUAL_FATAL(k + body, n);
	memset(p + k, tag, body);
	return n;
}

/* Everything queued, concatenated. */
static size_t flatten(const struct outq *q, uint8_t *out)
{
	struct iovec iov[64];
	int k = outq_iov(q, iov, 64);
	size_t n = 0;
	for (int i = 0; i < k; i++) {
		memcpy(out + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	return n;
}

static uint8_t big[4 << 20], flat[8 << 20];

static void test_order_and_accounting(void)
{
	struct outq q;
	size_t acct = 0;
	uint8_t f[300];

	outq_init(&q, &acct);
	CU_ASSERT_EQUAL(q.held, 0);
	/* 1000 frames of 300 bytes: several chunks */
	for (int i = 0; i < 1000; i++) {
		mkframe(f, sizeof f, (uint8_t)i);
		CU_ASSERT_EQUAL_FATAL(outq_push(&q, f, sizeof f), 0);
	}
	CU_ASSERT_EQUAL(q.len, 300000);
	CU_ASSERT_EQUAL(acct, q.held);
	CU_ASSERT(q.held >= q.len && q.held < q.len + OUTQ_CHUNK + 4096);
	CU_ASSERT_EQUAL(flatten(&q, flat), 300000);
	int ok = 1;
	for (int i = 0; i < 1000; i++)
		if (flat[i * 300 + 299] != (uint8_t)i)
			ok = 0;
	CU_ASSERT(ok);
	/* written in odd pieces, it drains to nothing held */
	size_t left = q.len;
	while (left) {
		size_t n = left < 7777 ? left : 7777;
		outq_consume(&q, n);
		left -= n;
		CU_ASSERT_EQUAL(q.len, left);
	}
	CU_ASSERT_EQUAL(q.held, 0);
	CU_ASSERT_EQUAL(acct, 0);
	outq_fini(&q);
}

static void test_drop_keeps_partial_frame(void)
{
	struct outq q;
	size_t acct = 0;
	uint8_t f[1000];

	outq_init(&q, &acct);
	for (int i = 0; i < 200; i++) {
		mkframe(f, sizeof f, (uint8_t)i);
		outq_push(&q, f, sizeof f);
	}
	CU_ASSERT_FALSE(outq_partial(&q));
	CU_ASSERT_EQUAL(outq_unsent(&q), 200000);
	outq_consume(&q, 2500); /* frames 0, 1 out, frame 2 half */
	CU_ASSERT(outq_partial(&q));
	CU_ASSERT_EQUAL(outq_unsent(&q), 197000);
	CU_ASSERT_EQUAL(outq_drop_unsent(&q), 197);
	CU_ASSERT_EQUAL(q.len, 500);
	CU_ASSERT_EQUAL(outq_unsent(&q), 0);
	/* the rest of frame 2 is all that is held */
	CU_ASSERT(q.held < 1000);
	CU_ASSERT_EQUAL(acct, q.held);
	CU_ASSERT_EQUAL(flatten(&q, flat), 500);
	CU_ASSERT_EQUAL(flat[499], 2);
	/* and the stream goes on in step */
	mkframe(f, sizeof f, 0xee);
	outq_push(&q, f, sizeof f);
	outq_consume(&q, 500);
	CU_ASSERT_FALSE(outq_partial(&q));
	size_t len;
	const uint8_t *p = outq_frame(&q, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(len, 1000);
	CU_ASSERT_EQUAL(p[999], 0xee);
	/* at a frame boundary everything goes */
	CU_ASSERT_EQUAL(outq_drop_unsent(&q), 1);
	CU_ASSERT_EQUAL(q.len, 0);
	CU_ASSERT_EQUAL(q.held, 0);
	CU_ASSERT_EQUAL(outq_drop_unsent(&q), 0);
	outq_fini(&q);
	CU_ASSERT_EQUAL(acct, 0);
}

static void test_datagram_frames(void)
{
	struct outq q;
	uint8_t f[5000];

	outq_init(&q, NULL);
	CU_ASSERT_PTR_NULL(outq_frame(&q, &(size_t){0}));
	for (int i = 0; i < 100; i++) {
		mkframe(f, 100 + (size_t)i * 37, (uint8_t)i);
		outq_push(&q, f, 100 + (size_t)i * 37);
	}
	int ok = 1;
	for (int i = 0; i < 100; i++) {
		size_t len = 0;
		const uint8_t *p = outq_frame(&q, &len);
		if (!p || len != 100 + (size_t)i * 37 || p[len - 1] != (uint8_t)i)
			ok = 0;
		if (p)
			outq_consume(&q, len);
	}
	CU_ASSERT(ok);
	CU_ASSERT_EQUAL(q.len, 0);
	outq_fini(&q);
}

static void test_big_frames(void)
{
	struct outq q;
	size_t acct = 0;
	uint8_t f[100];

	outq_init(&q, &acct);
	mkframe(f, sizeof f, 1);
	outq_push(&q, f, sizeof f);
	mkframe(big, sizeof big, 2);
	CU_ASSERT_EQUAL(outq_growth(&q, sizeof big) > sizeof big, 1);
	CU_ASSERT_EQUAL(outq_push(&q, big, sizeof big), 0);
	outq_push(&q, f, sizeof f);
	/* a chunk of its own: at most one standard chunk beside it */
	CU_ASSERT(q.held <= sizeof big + 2 * (OUTQ_CHUNK + 64));
	CU_ASSERT_EQUAL(outq_growth(&q, 100), 0);
	size_t n = flatten(&q, flat);
	CU_ASSERT_EQUAL(n, sizeof big + 200);
	CU_ASSERT_EQUAL(flat[99], 1);
	CU_ASSERT_EQUAL(flat[100 + sizeof big - 1], 2);
	CU_ASSERT_EQUAL(flat[n - 1], 1);
	outq_consume(&q, 100 + 10); /* into the big one */
	CU_ASSERT_EQUAL(outq_drop_unsent(&q), 1);
	CU_ASSERT_EQUAL(q.len, sizeof big - 10);
	outq_fini(&q);
	CU_ASSERT_EQUAL(acct, 0);
}

/* Queueing a small frame costs the same however much is queued: the
 * memory held grows with what is queued, chunk by chunk, never by copying
 * what is there (a contiguous buffer at its bound copied it all again for
 * every frame).  Checked by the pointers: frames already queued never
 * move. */
static void test_no_copying(void)
{
	struct outq q;
	uint8_t f[14];
	struct iovec first;

	outq_init(&q, NULL);
	mkframe(f, sizeof f, 7);
	outq_push(&q, f, sizeof f);
	CU_ASSERT_EQUAL(outq_iov(&q, &first, 1), 1);
	for (int i = 0; i < 2000000; i++)
		outq_push(&q, f, sizeof f);
	struct iovec now;
	CU_ASSERT_EQUAL(outq_iov(&q, &now, 1), 1);
	CU_ASSERT_PTR_EQUAL(now.iov_base, first.iov_base);
	CU_ASSERT_EQUAL(q.len, 14u * 2000001);
	outq_fini(&q);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"order and accounting", test_order_and_accounting},
		{"drop keeps the partial frame", test_drop_keeps_partial_frame},
		{"datagram frames", test_datagram_frames},
		{"big frames", test_big_frames},
		{"no copying", test_no_copying},
	};
	return unit_run("outq", cases, UNIT_NELEM(cases));
}
