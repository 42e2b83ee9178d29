/*
 * test_outq.c: the output queue of whole frames in chunks: order across
 * chunks, partial writes, dropping what has not started (the frame being
 * written stays whole), dropping only the messages (what an eviction
 * does: the control frames stay, in order), frames one at a time for
 * datagrams, big frames in chunks of their own, and the memory count that
 * max-memory relies on.
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

/* A frame as the broker writes them, n bytes in all: a MSG as a
 * subscriber gets it (the sid in front of the type), or another type;
 * id is the frame's id, and a payload of tag bytes makes up the size. */
static size_t mktyped(uint8_t *p, size_t n, int type, uint64_t id, uint8_t tag)
{
	uint8_t head[4 + 2 + FRAME_VARINT_MAX], *d = head;
	if (type == IPCBUS__FRAME_TYPE__MSG) {
		*d++ = FRAME_F_SID << 3;
		*d++ = 1;
	}
	*d++ = FRAME_F_TYPE << 3;
	*d++ = (uint8_t)type;
	*d++ = FRAME_F_ID << 3;
	d += frame_varint_put(d, id);
	size_t fixed = (size_t)(d - head) + 1, body = 0, pl = n;
	while (pl > 0) {
		body = fixed + frame_varint_len(pl) + pl;
		if (frame_varint_len(body) + body <= n)
			break;
		pl--;
	}
	CU_ASSERT_EQUAL_FATAL(frame_varint_len(body) + body, n);
	size_t k = frame_varint_put(p, body);
	memcpy(p + k, head, fixed - 1);
	k += fixed - 1;
	p[k++] = FRAME_F_PAYLOAD << 3 | 2;
	k += frame_varint_put(p + k, pl);
	memset(p + k, tag, pl);
	return n;
}

/* What an eviction keeps (broker/conn.c): all but the messages. */
static int keep_ctl(const uint8_t *body, size_t len, void *arg)
{
	(void)arg;
	return frame_type_of(body, len) != IPCBUS__FRAME_TYPE__MSG;
}

/* Check that p[0..n) is exactly the whole frames of types[] and ids[]. */
static void expect_frames(const uint8_t *p, size_t n, const int *types, const uint64_t *ids,
			  size_t count)
{
	size_t i = 0;
	while (n > 0) {
		const uint8_t *body;
		size_t len, need;
		long k = frame_split(p, n, SIZE_MAX, &body, &len, &need);
		CU_ASSERT_FATAL(k > 0);
		struct frame f;
		CU_ASSERT_EQUAL_FATAL(frame_decode(body, len, &f), 0);
		CU_ASSERT_FATAL(i < count);
		CU_ASSERT_EQUAL(f.type, types[i]);
		CU_ASSERT_EQUAL(f.id, ids[i]);
		p += k;
		n -= (size_t)k;
		i++;
	}
	CU_ASSERT_EQUAL(i, count);
}

/* Eviction drops the messages only: the control frames among them stay,
 * in order, across several chunks, behind the frame being written; the
 * count of frames dropped, the bytes queued and the memory held are
 * exact, and the queue goes on as before. */
static void test_drop_if_keeps_control(void)
{
	enum { N = 2000 };
	static int types[N];
	static uint64_t ids[N];
	struct outq q;
	size_t acct = 0, kept = 0, kept_bytes = 0, msgs = 0;
	uint8_t f[3000];

	outq_init(&q, &acct);
	for (int i = 0; i < N; i++) {
		int type = IPCBUS__FRAME_TYPE__MSG;
		size_t n = 300;
		if (i % 77 == 3) {
			type = IPCBUS__FRAME_TYPE__ERR;
			n = 3000; /* the kept frames fill more than a chunk */
		} else if (i % 50 == 7) {
			type = IPCBUS__FRAME_TYPE__PONG;
			n = 20;
		}
		mktyped(f, n, type, (uint64_t)i, (uint8_t)i);
		CU_ASSERT_EQUAL_FATAL(outq_push(&q, f, n), 0);
		if (i < 2)
			continue; /* sent, and being written */
		if (type == IPCBUS__FRAME_TYPE__MSG) {
			msgs++;
			continue;
		}
		types[kept] = type;
		ids[kept++] = (uint64_t)i;
		kept_bytes += n;
	}
	CU_ASSERT(q.len > 8 * OUTQ_CHUNK);
	outq_consume(&q, 450); /* frame 0 out, frame 1 half */
	CU_ASSERT(outq_partial(&q));
	CU_ASSERT_EQUAL(outq_drop_unsent_if(&q, keep_ctl, NULL), msgs);
	CU_ASSERT_EQUAL(q.len, 150 + kept_bytes);
	CU_ASSERT_EQUAL(outq_unsent(&q), kept_bytes);
	CU_ASSERT(outq_partial(&q));
	/* what is kept is packed: at most a kept frame's worth lost per
	 * chunk (three of them), the ends cut to size */
	CU_ASSERT_EQUAL(acct, q.held);
	CU_ASSERT(q.held >= q.len && q.held < q.len + 3 * 3000 + 512);
	/* the rest of frame 1, then the control frames as they were */
	CU_ASSERT_EQUAL_FATAL(flatten(&q, flat), q.len);
	CU_ASSERT_EQUAL(flat[149], 1);
	expect_frames(flat + 150, kept_bytes, types, ids, kept);

	/* the queue goes on: a new frame at the end, and the frame counts of
	 * every chunk are right (outq_drop_unsent counts by them) */
	mktyped(f, 300, IPCBUS__FRAME_TYPE__MSG, 77777, 0xee);
	outq_push(&q, f, 300);
	types[kept] = IPCBUS__FRAME_TYPE__MSG;
	ids[kept] = 77777;
	CU_ASSERT_EQUAL_FATAL(flatten(&q, flat), q.len);
	expect_frames(flat + 150, kept_bytes + 300, types, ids, kept + 1);
	CU_ASSERT_EQUAL(outq_drop_unsent_if(&q, keep_ctl, NULL), 1);
	CU_ASSERT_EQUAL(q.len, 150 + kept_bytes);
	CU_ASSERT_EQUAL(outq_drop_unsent(&q), kept);
	CU_ASSERT_EQUAL(q.len, 150);
	outq_consume(&q, 150);
	CU_ASSERT_EQUAL(q.len, 0);
	CU_ASSERT_EQUAL(q.held, 0);
	CU_ASSERT_EQUAL(acct, 0);
	outq_fini(&q);
}

/* At a frame boundary: chunks left with nothing kept go, what is kept is
 * read one frame at a time (as a datagram transport does), and a queue of
 * messages only is emptied to nothing held. */
static void test_drop_if_boundary(void)
{
	struct outq q;
	size_t acct = 0;
	uint8_t f[1000];

	outq_init(&q, &acct);
	mktyped(f, 40, IPCBUS__FRAME_TYPE__WELCOME, 1, 0);
	outq_push(&q, f, 40);
	for (int i = 0; i < 300; i++) {
		mktyped(f, 1000, IPCBUS__FRAME_TYPE__MSG, 100 + (uint64_t)i, (uint8_t)i);
		outq_push(&q, f, 1000);
	}
	mktyped(f, 20, IPCBUS__FRAME_TYPE__PONG, 2, 0);
	outq_push(&q, f, 20);
	mktyped(f, 1000, IPCBUS__FRAME_TYPE__MSG, 3, 0);
	outq_push(&q, f, 1000);
	mktyped(f, 60, IPCBUS__FRAME_TYPE__ERR, 4, 0);
	outq_push(&q, f, 60);
	outq_consume(&q, 40 + 1000); /* WELCOME and one MSG out */
	CU_ASSERT_FALSE(outq_partial(&q));
	CU_ASSERT_EQUAL(outq_drop_unsent_if(&q, keep_ctl, NULL), 300);
	CU_ASSERT_EQUAL(q.len, 80);
	CU_ASSERT_EQUAL(acct, q.held);
	CU_ASSERT(q.held < 80 + 256);
	size_t len;
	const uint8_t *p = outq_frame(&q, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	expect_frames(p, len, (int[]){IPCBUS__FRAME_TYPE__PONG}, (uint64_t[]){2}, 1);
	outq_consume(&q, len);
	p = outq_frame(&q, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	expect_frames(p, len, (int[]){IPCBUS__FRAME_TYPE__ERR}, (uint64_t[]){4}, 1);
	outq_consume(&q, len);
	CU_ASSERT_PTR_NULL(outq_frame(&q, &len));
	CU_ASSERT_EQUAL(q.held, 0);

	/* messages only: nothing is left */
	for (int i = 0; i < 200; i++) {
		mktyped(f, 1000, IPCBUS__FRAME_TYPE__MSG, (uint64_t)i, 0);
		outq_push(&q, f, 1000);
	}
	CU_ASSERT_EQUAL(outq_drop_unsent_if(&q, keep_ctl, NULL), 200);
	CU_ASSERT_EQUAL(q.len, 0);
	CU_ASSERT_EQUAL(q.held, 0);
	CU_ASSERT_EQUAL(acct, 0);
	outq_fini(&q);
}

/* A kept frame bigger than OUTQ_BIG keeps its chunk of its own; a small
 * one after it cannot go in there and gets a chunk cut to its size. */
static void test_drop_if_big(void)
{
	struct outq q;
	size_t acct = 0;
	uint8_t f[300];

	outq_init(&q, &acct);
	mktyped(f, 100, IPCBUS__FRAME_TYPE__MSG, 1, 0);
	outq_push(&q, f, 100);
	mktyped(big, 100000, IPCBUS__FRAME_TYPE__ERR, 2, 0x55);
	outq_push(&q, big, 100000);
	for (int i = 0; i < 300; i++) {
		mktyped(f, 300, IPCBUS__FRAME_TYPE__MSG, 10 + (uint64_t)i, 0);
		outq_push(&q, f, 300);
	}
	mktyped(f, 20, IPCBUS__FRAME_TYPE__PONG, 3, 0);
	outq_push(&q, f, 20);
	mktyped(f, 300, IPCBUS__FRAME_TYPE__MSG, 4, 0);
	outq_push(&q, f, 300);
	CU_ASSERT_EQUAL(outq_drop_unsent_if(&q, keep_ctl, NULL), 302);
	CU_ASSERT_EQUAL(q.len, 100020);
	CU_ASSERT_EQUAL(acct, q.held);
	CU_ASSERT(q.held < 100020 + 256);
	CU_ASSERT_EQUAL_FATAL(flatten(&q, flat), 100020);
	expect_frames(flat, 100020, (int[]){IPCBUS__FRAME_TYPE__ERR, IPCBUS__FRAME_TYPE__PONG},
		      (uint64_t[]){2, 3}, 2);
	/* being written, the big one stays, the PONG too */
	outq_consume(&q, 10);
	mktyped(f, 300, IPCBUS__FRAME_TYPE__MSG, 5, 0);
	outq_push(&q, f, 300);
	CU_ASSERT_EQUAL(outq_drop_unsent_if(&q, keep_ctl, NULL), 1);
	CU_ASSERT_EQUAL(q.len, 100010);
	CU_ASSERT_EQUAL(outq_drop_unsent(&q), 1);
	CU_ASSERT_EQUAL(q.len, 99990);
	outq_fini(&q);
	CU_ASSERT_EQUAL(acct, 0);
}

/* A big message not started yet, first in the queue, goes with its
 * chunk: what is kept behind it does not move into that chunk, which
 * would keep it all held for a few bytes. */
static void test_drop_if_big_head(void)
{
	struct outq q;
	size_t acct = 0;
	uint8_t f[300];

	outq_init(&q, &acct);
	mktyped(big, 100000, IPCBUS__FRAME_TYPE__MSG, 1, 0x55);
	outq_push(&q, big, 100000);
	mktyped(f, 20, IPCBUS__FRAME_TYPE__PONG, 2, 0);
	outq_push(&q, f, 20);
	mktyped(f, 300, IPCBUS__FRAME_TYPE__MSG, 3, 0);
	outq_push(&q, f, 300);
	CU_ASSERT_EQUAL(outq_drop_unsent_if(&q, keep_ctl, NULL), 2);
	CU_ASSERT_EQUAL(q.len, 20);
	CU_ASSERT_EQUAL(acct, q.held);
	CU_ASSERT(q.held < 20 + 256);
	CU_ASSERT_EQUAL_FATAL(flatten(&q, flat), 20);
	expect_frames(flat, 20, (int[]){IPCBUS__FRAME_TYPE__PONG}, (uint64_t[]){2}, 1);
	CU_ASSERT_EQUAL(outq_drop_unsent(&q), 1);
	CU_ASSERT_EQUAL(q.held, 0);
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
		{"eviction keeps the control frames", test_drop_if_keeps_control},
		{"eviction at a frame boundary", test_drop_if_boundary},
		{"eviction beside a big frame", test_drop_if_big},
		{"eviction of a big frame first", test_drop_if_big_head},
		{"datagram frames", test_datagram_frames},
		{"big frames", test_big_frames},
		{"no copying", test_no_copying},
	};
	return unit_run("outq", cases, UNIT_NELEM(cases));
}
