/*
 * buf.c: the bounded byte buffer (see buf.h).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->rpos = b->wpos = b->cap = 0;
	b->max = max;
	b->acct = NULL;
}

/* The allocation changes from cap to `to` bytes. */
static void buf_account(struct buf *b, size_t to)
{
	if (b->acct) {
		*b->acct -= b->cap;
		*b->acct += to;
	}
	b->cap = to;
}

void buf_fini(struct buf *b)
{
	free(b->data);
	buf_account(b, 0);
	b->data = NULL;
	b->rpos = b->wpos = 0;
}

int buf_reserve(struct buf *b, size_t n)
{
	size_t len = buf_len(b);

	if (n > b->max || len > b->max - n)
		return -ENOBUFS;
	if (b->cap - b->wpos >= n)
		return 0;
	/* compact first when that is cheap: the bytes moved are at most the
	 * bytes consumed since the last move, so moving is O(1) amortized per
	 * byte read; else grow */
	if (b->rpos >= len && b->cap - len >= n) {
		memmove(b->data, b->data + b->rpos, len);
		b->rpos = 0;
		b->wpos = len;
		return 0;
	}
	size_t want = b->cap ? b->cap : 4096;
	while (want - len < n)
		want = want > SIZE_MAX / 2 ? SIZE_MAX : want * 2;
	/* never allocate much more than the bound allows; len + n <= max, so
	 * a buffer of max bytes always holds it (growing to exactly len + n
	 * would copy the whole buffer again at every reservation) */
	if (want > b->max && b->max >= 4096)
		want = b->max;
	else if (want > b->max)
		want = 4096;
	if (b->rpos > 0 && b->cap - len >= n && want <= b->cap) {
		/* at the bound: moving is the only way */
		memmove(b->data, b->data + b->rpos, len);
		b->rpos = 0;
		b->wpos = len;
		return 0;
	}
	uint8_t *p = malloc(want);
	if (!p)
		return -ENOMEM;
	if (len)
		memcpy(p, b->data + b->rpos, len);
	free(b->data);
	b->data = p;
	buf_account(b, want);
	b->rpos = 0;
	b->wpos = len;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	int rc = buf_reserve(b, n);
	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->wpos, p, n);
	b->wpos += n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	b->rpos += n;
	if (b->rpos == b->wpos)
		b->rpos = b->wpos = 0;
}

void buf_shrink(struct buf *b, size_t keep)
{
	if (buf_len(b) == 0 && b->cap > keep) {
		free(b->data);
		b->data = NULL;
		buf_account(b, 0);
		b->rpos = b->wpos = 0;
	}
}
