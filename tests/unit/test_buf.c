/*
 * test_buf.c: the bounded byte buffer: growth, compaction, the maximum
 * (refused with nothing changed), consumption and shrinking.
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "buf.h"
#include "unit.h"

static void test_empty(void)
{
	struct buf b;

	buf_init(&b, 100);
	CU_ASSERT_PTR_NULL(b.data); /* allocates nothing */
	CU_ASSERT_EQUAL(buf_len(&b), 0);
	CU_ASSERT_EQUAL(buf_append(&b, "", 0), 0);
	CU_ASSERT_EQUAL(buf_len(&b), 0);
	buf_fini(&b);
	buf_fini(&b); /* twice is harmless */
	CU_ASSERT_EQUAL(b.max, 100);
}

static void test_growth(void)
{
	struct buf b;
	uint8_t chunk[1000];

	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < 100; i++) {
		memset(chunk, (int)i, sizeof chunk);
		CU_ASSERT_EQUAL_FATAL(buf_append(&b, chunk, sizeof chunk), 0);
	}
	CU_ASSERT_EQUAL(buf_len(&b), 100000);
	CU_ASSERT(b.cap >= 100000);
	int ok = 1;
	for (size_t i = 0; i < 100000; i++)
		if (buf_rptr(&b)[i] != (uint8_t)(i / 1000))
			ok = 0;
	CU_ASSERT_TRUE(ok);
	buf_fini(&b);
	CU_ASSERT_PTR_NULL(b.data);
	CU_ASSERT_EQUAL(buf_len(&b), 0);
}

static void test_reserve_commit(void)
{
	struct buf b;

	buf_init(&b, 1000);
	CU_ASSERT_EQUAL_FATAL(buf_reserve(&b, 10), 0);
	CU_ASSERT(buf_room(&b) >= 10);
	memcpy(buf_wptr(&b), "0123456789", 10);
	buf_commit(&b, 10);
	CU_ASSERT_EQUAL(buf_len(&b), 10);
	CU_ASSERT_EQUAL(memcmp(buf_rptr(&b), "0123456789", 10), 0);
	buf_fini(&b);
}

static void test_max(void)
{
	struct buf b;
	uint8_t big[200];

	memset(big, 'x', sizeof big);
	buf_init(&b, 100);
	CU_ASSERT_EQUAL(buf_append(&b, big, 101), -ENOBUFS);
	CU_ASSERT_PTR_NULL(b.data); /* refused before allocating */
	CU_ASSERT_EQUAL(buf_append(&b, big, 60), 0);
	uint8_t *data = b.data;
	size_t cap = b.cap, r = b.rpos, w = b.wpos;
	CU_ASSERT_EQUAL(buf_append(&b, big, 41), -ENOBUFS);
	CU_ASSERT_EQUAL(buf_reserve(&b, 41), -ENOBUFS);
	CU_ASSERT_EQUAL(buf_reserve(&b, SIZE_MAX), -ENOBUFS); /* no overflow */
	/* nothing changed */
	CU_ASSERT_PTR_EQUAL(b.data, data);
	CU_ASSERT_EQUAL(b.cap, cap);
	CU_ASSERT_EQUAL(b.rpos, r);
	CU_ASSERT_EQUAL(b.wpos, w);
	/* exactly up to the bound is fine */
	CU_ASSERT_EQUAL(buf_append(&b, big, 40), 0);
	CU_ASSERT_EQUAL(buf_len(&b), 100);
	CU_ASSERT_EQUAL(buf_append(&b, big, 1), -ENOBUFS);
	/* the bound is on unread bytes: consuming makes room again */
	buf_consume(&b, 50);
	CU_ASSERT_EQUAL(buf_append(&b, big, 50), 0);
	CU_ASSERT_EQUAL(buf_len(&b), 100);
	buf_fini(&b);

	/* a large bound does not make a small buffer allocate it */
	buf_init(&b, (size_t)1 << 40);
	CU_ASSERT_EQUAL(buf_append(&b, big, 10), 0);
	CU_ASSERT(b.cap <= 65536);
	buf_fini(&b);
}

static void test_consume_compact(void)
{
	struct buf b;
	uint8_t chunk[1024];

	for (size_t i = 0; i < sizeof chunk; i++)
		chunk[i] = (uint8_t)i;
	buf_init(&b, 1 << 20);
	CU_ASSERT_EQUAL_FATAL(buf_append(&b, chunk, 1024), 0);
	size_t cap = b.cap;
	/* fill to capacity, consume most of it, then append again: the
	 * unread tail is moved to the front instead of growing */
	while (buf_room(&b) >= 1024)
		CU_ASSERT_EQUAL_FATAL(buf_append(&b, chunk, 1024), 0);
	size_t fill = buf_room(&b);
	CU_ASSERT_EQUAL_FATAL(buf_append(&b, chunk, fill), 0);
	CU_ASSERT_EQUAL(b.cap, cap);
	size_t len = buf_len(&b);
	buf_consume(&b, len - 100);
	CU_ASSERT_EQUAL(buf_len(&b), 100);
	uint8_t expect[100];
	memcpy(expect, buf_rptr(&b), 100);
	CU_ASSERT_EQUAL(buf_append(&b, chunk, 1024), 0);
	CU_ASSERT_EQUAL(b.cap, cap);   /* compacted, not grown */
	CU_ASSERT_EQUAL(b.rpos, 0);
	CU_ASSERT_EQUAL(buf_len(&b), 1124);
	CU_ASSERT_EQUAL(memcmp(buf_rptr(&b), expect, 100), 0);
	CU_ASSERT_EQUAL(memcmp(buf_rptr(&b) + 100, chunk, 1024), 0);

	/* consuming everything resets the positions */
	buf_consume(&b, buf_len(&b));
	CU_ASSERT_EQUAL(b.rpos, 0);
	CU_ASSERT_EQUAL(b.wpos, 0);
	CU_ASSERT_EQUAL(buf_len(&b), 0);

	/* partial consumption keeps the order */
	CU_ASSERT_EQUAL(buf_append(&b, "abcdef", 6), 0);
	buf_consume(&b, 2);
	CU_ASSERT_EQUAL(buf_len(&b), 4);
	CU_ASSERT_EQUAL(memcmp(buf_rptr(&b), "cdef", 4), 0);
	buf_consume(&b, 0);
	CU_ASSERT_EQUAL(buf_len(&b), 4);
	buf_fini(&b);
}

static void test_grow_with_unread(void)
{
	struct buf b;
	uint8_t chunk[3000];

	for (size_t i = 0; i < sizeof chunk; i++)
		chunk[i] = (uint8_t)(i * 7);
	buf_init(&b, 1 << 20);
	CU_ASSERT_EQUAL_FATAL(buf_append(&b, chunk, 3000), 0);
	buf_consume(&b, 1000);
	/* needs a bigger block: the 2000 unread bytes move along */
	CU_ASSERT_EQUAL_FATAL(buf_append(&b, chunk, 3000), 0);
	CU_ASSERT_EQUAL(buf_len(&b), 5000);
	CU_ASSERT_EQUAL(memcmp(buf_rptr(&b), chunk + 1000, 2000), 0);
	CU_ASSERT_EQUAL(memcmp(buf_rptr(&b) + 2000, chunk, 3000), 0);
	buf_fini(&b);
}

static void test_shrink(void)
{
	struct buf b;
	uint8_t big[100000];

	memset(big, 1, sizeof big);
	buf_init(&b, 1 << 20);
	CU_ASSERT_EQUAL_FATAL(buf_append(&b, big, sizeof big), 0);
	/* not empty: keeps its memory */
	buf_shrink(&b, 4096);
	CU_ASSERT_PTR_NOT_NULL(b.data);
	CU_ASSERT_EQUAL(buf_len(&b), sizeof big);
	buf_consume(&b, sizeof big);
	/* empty and bigger than keep: released */
	buf_shrink(&b, 4096);
	CU_ASSERT_PTR_NULL(b.data);
	CU_ASSERT_EQUAL(b.cap, 0);
	CU_ASSERT_EQUAL(b.max, 1 << 20);
	/* usable again */
	CU_ASSERT_EQUAL(buf_append(&b, "x", 1), 0);
	CU_ASSERT_EQUAL(buf_len(&b), 1);
	buf_consume(&b, 1);
	/* small enough: kept */
	size_t cap = b.cap;
	buf_shrink(&b, cap);
	CU_ASSERT_PTR_NOT_NULL(b.data);
	CU_ASSERT_EQUAL(b.cap, cap);
	buf_fini(&b);
}

/* Near its maximum the buffer grows to the maximum at once: growing to
 * exactly what is asked copied the whole buffer again at every append
 * (a PING flood made that seconds of CPU). */
static void test_growth_at_bound(void)
{
	struct buf b;
	static uint8_t chunk[70000];
	size_t acct = 0;

	buf_init(&b, 100000);
	b.acct = &acct;
	CU_ASSERT_EQUAL_FATAL(buf_append(&b, chunk, sizeof chunk), 0);
	CU_ASSERT_EQUAL(acct, b.cap);
	size_t cap = b.cap;
	uint8_t *data = b.data;
	int moved = 0;
	for (int i = 0; i < 1000; i++) {
		CU_ASSERT_EQUAL_FATAL(buf_append(&b, "x", 1), 0);
		if (b.data != data || b.cap != cap)
			moved++;
		data = b.data;
		cap = b.cap;
	}
	CU_ASSERT(moved <= 1);
	CU_ASSERT_EQUAL(b.cap, 100000);
	buf_fini(&b);
	CU_ASSERT_EQUAL(acct, 0);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"empty", test_empty},
		{"growth", test_growth},
		{"reserve and commit", test_reserve_commit},
		{"the maximum", test_max},
		{"consume and compaction", test_consume_compact},
		{"growth with unread bytes", test_grow_with_unread},
		{"shrink", test_shrink},
		{"growth at the bound", test_growth_at_bound},
	};
	return unit_run("buf", cases, UNIT_NELEM(cases));
}
