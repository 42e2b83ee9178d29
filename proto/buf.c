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
}

void buf_fini(struct buf *b)
{
	free(b->data);
	buf_init(b, b->max);
}

int buf_reserve(struct buf *b, size_t n)
{
	size_t len = buf_len(b);

	if (n > b->max || len > b->max - n)
		return -ENOBUFS;
	if (b->cap - b->wpos >= n)
		return 0;
	/* compact first: enough room once the consumed bytes are gone? */
	if (b->rpos > 0 && b->cap - len >= n) {
		memmove(b->data, b->data + b->rpos, len);
		b->rpos = 0;
		b->wpos = len;
		return 0;
	}
	size_t want = b->cap ? b->cap : 4096;
	while (want - len < n)
		want = want > SIZE_MAX / 2 ? SIZE_MAX : want * 2;
	/* never allocate much more than the bound allows */
	if (want > b->max + 4096 && len + n <= b->max + 4096)
		want = len + n < 4096 ? 4096 : len + n;
	uint8_t *p = malloc(want);
	if (!p)
		return -ENOMEM;
	if (len)
		memcpy(p, b->data + b->rpos, len);
	free(b->data);
	b->data = p;
	b->cap = want;
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
		b->cap = b->rpos = b->wpos = 0;
	}
}
