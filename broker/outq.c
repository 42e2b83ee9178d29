/*
 * outq.c: a connection's output queue of whole frames in chunks (outq.h).
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "outq.h"

struct outq_chunk {
	struct outq_chunk *next;
	size_t rpos, wpos, cap;
	size_t frames; /* frames that start in this chunk */
	uint8_t data[];
};

static void outq_held(struct outq *q, size_t add, size_t sub)
{
	q->held += add;
	q->held -= sub;
	if (q->acct) {
		*q->acct += add;
		*q->acct -= sub;
	}
}

static size_t outq_chunk_size(size_t cap)
{
	return sizeof(struct outq_chunk) + cap;
}

static void outq_chunk_free(struct outq *q, struct outq_chunk *c)
{
	if (c->cap == OUTQ_CHUNK && !q->spare) {
		c->next = NULL;
		c->rpos = c->wpos = c->frames = 0;
		q->spare = c;
		return;
	}
	outq_held(q, 0, outq_chunk_size(c->cap));
	free(c);
}

void outq_init(struct outq *q, size_t *acct)
{
	memset(q, 0, sizeof *q);
	q->acct = acct;
}

void outq_fini(struct outq *q)
{
	while (q->head) {
		struct outq_chunk *c = q->head;
		q->head = c->next;
		outq_held(q, 0, outq_chunk_size(c->cap));
		free(c);
	}
	outq_trim(q);
	q->tail = NULL;
	q->len = q->next = 0;
	assert(q->held == 0);
}

void outq_trim(struct outq *q)
{
	if (q->spare) {
		outq_held(q, 0, outq_chunk_size(q->spare->cap));
		free(q->spare);
		q->spare = NULL;
	}
}

uint8_t *outq_reserve(struct outq *q, size_t n)
{
	struct outq_chunk *t = q->tail;

	if (t && t->cap - t->wpos >= n)
		return t->data + t->wpos;
	/* an empty tail (a reservation never committed) is replaced, not
	 * left empty in the middle of the list */
	if (t && t->wpos == 0) {
		struct outq_chunk **pp = &q->head;
		while (*pp != t)
			pp = &(*pp)->next;
		*pp = NULL;
		q->tail = q->head;
		while (q->tail && q->tail->next)
			q->tail = q->tail->next;
		outq_chunk_free(q, t);
	}
	size_t cap = n <= OUTQ_BIG ? OUTQ_CHUNK : n;
	struct outq_chunk *c;
	if (cap == OUTQ_CHUNK && q->spare) {
		c = q->spare;
		q->spare = NULL;
	} else {
		if (cap > SIZE_MAX - sizeof *c)
			return NULL;
		c = malloc(outq_chunk_size(cap));
		if (!c)
			return NULL;
		c->cap = cap;
		outq_held(q, outq_chunk_size(cap), 0);
	}
	c->next = NULL;
	c->rpos = c->wpos = c->frames = 0;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	return c->data;
}

void outq_commit(struct outq *q, size_t n)
{
	struct outq_chunk *t = q->tail;
	assert(t && t->cap - t->wpos >= n);
	t->wpos += n;
	t->frames++;
	q->len += n;
}

size_t outq_growth(const struct outq *q, size_t n)
{
	const struct outq_chunk *t = q->tail;
	if (t && t->cap - t->wpos >= n)
		return 0;
	if (n <= OUTQ_BIG)
		return q->spare ? 0 : outq_chunk_size(OUTQ_CHUNK);
	return outq_chunk_size(n);
}

int outq_push(struct outq *q, const void *frame, size_t n)
{
	uint8_t *p = outq_reserve(q, n);
	if (!p)
		return -ENOMEM;
	memcpy(p, frame, n);
	outq_commit(q, n);
	return 0;
}

int outq_iov(const struct outq *q, struct iovec *iov, int max)
{
	int k = 0;
	for (const struct outq_chunk *c = q->head; c && k < max; c = c->next) {
		if (c->wpos == c->rpos)
			continue;
		iov[k].iov_base = (void *)(c->data + c->rpos);
		iov[k].iov_len = c->wpos - c->rpos;
		k++;
	}
	return k;
}

/* Total size of the frame (prefix included) that starts at p; its prefix
 * takes *prefix bytes. */
static size_t outq_frame_split(const uint8_t *p, size_t avail, size_t *prefix)
{
	uint64_t len = 0;
	int k = frame_varint_get(p, avail, &len);
	/* every frame in a chunk is whole and was written by us */
	assert(k > 0 && (uint64_t)k + len <= avail);
	*prefix = (size_t)k;
	return (size_t)k + (size_t)len;
}

static size_t outq_frame_len(const uint8_t *p, size_t avail)
{
	size_t k;
	return outq_frame_split(p, avail, &k);
}

const uint8_t *outq_frame(const struct outq *q, size_t *len)
{
	const struct outq_chunk *c = q->head;
	while (c && c->rpos == c->wpos)
		c = c->next;
	if (!c)
		return NULL;
	assert(c != q->head || q->next == c->rpos);
	*len = outq_frame_len(c->data + c->rpos, c->wpos - c->rpos);
	return c->data + c->rpos;
}

void outq_consume(struct outq *q, size_t n)
{
	assert(n <= q->len);
	q->len -= n;
	while (n > 0) {
		struct outq_chunk *h = q->head;
		size_t k = h->wpos - h->rpos;
		if (k > n)
			k = n;
		h->rpos += k;
		n -= k;
		/* keep `next` at the first frame start at or after rpos: each
		 * frame is walked over once, so this is O(1) per frame */
		while (q->next < h->rpos)
			q->next += outq_frame_len(h->data + q->next, h->wpos - q->next);
		if (h->rpos == h->wpos) {
			q->head = h->next;
			if (!q->head)
				q->tail = NULL;
			q->next = 0;
			outq_chunk_free(q, h);
		}
	}
	/* all written: an empty queue holds nothing */
	if (!q->head)
		outq_trim(q);
}

int outq_partial(const struct outq *q)
{
	return q->head && q->next > q->head->rpos;
}

size_t outq_unsent(const struct outq *q)
{
	return q->head ? q->len - (q->next - q->head->rpos) : 0;
}

/* Frames starting in c at or after off. */
static size_t outq_count(const struct outq_chunk *c, size_t off)
{
	size_t n = 0;
	while (off < c->wpos) {
		off += outq_frame_len(c->data + off, c->wpos - off);
		n++;
	}
	return n;
}

/* Move the chunk at *pp to one of the size of what it holds: a standard
 * chunk left part-empty gives its room back.  When that memory is not
 * there it stays as it is. */
static void outq_shrink(struct outq *q, struct outq_chunk **pp)
{
	struct outq_chunk *c = *pp;
	size_t left = c->wpos - c->rpos;

	if (c->cap != OUTQ_CHUNK || left == 0 || left == c->cap)
		return;
	struct outq_chunk *s = malloc(outq_chunk_size(left));
	if (!s)
		return;
	memcpy(s->data, c->data + c->rpos, left);
	s->next = c->next;
	s->rpos = 0;
	s->wpos = s->cap = left;
	if (c == q->head) {
		/* the frame being written counts as one that starts here */
		s->frames = outq_count(c, q->next) + (size_t)outq_partial(q);
		q->next -= c->rpos;
	} else {
		s->frames = c->frames;
	}
	outq_held(q, outq_chunk_size(left), 0);
	*pp = s;
	if (q->tail == c)
		q->tail = s;
	outq_chunk_free(q, c);
}

size_t outq_drop_unsent_if(struct outq *q, outq_keep_fn *keep, void *arg)
{
	struct outq_chunk *h = q->head;
	size_t dropped = 0;

	if (!h)
		return 0;
	/* One pass from the first frame not started (q->next in the head).
	 * A kept frame is moved to the end of what is kept so far, wpos in
	 * w, which is never past the frame being looked at: memmove() never
	 * overwrites a frame not looked at yet.  When it does not fit there
	 * (or w is not a standard chunk), w moves on to the chunk it is in,
	 * at its start (only the head has rpos > 0).  A chunk that w has not reached when its frames are
	 * done holds nothing kept: it goes, so that while w is behind, the
	 * chunk being looked at is w->next. */
	struct outq_chunk *w = h;
	size_t wpos = q->next;
	for (struct outq_chunk *r = h, *next; r; r = next) {
		next = r->next;
		size_t off = r == h ? q->next : r->rpos, end = r->wpos;
		if (!keep && r != h) {
			dropped += r->frames;
			q->len -= end - off;
			off = end;
		}
		while (off < end) {
			size_t k, n = outq_frame_split(r->data + off, end - off, &k);
			r->frames--;
			if (keep && keep(r->data + off + k, n - k, arg)) {
				/* a chunk of another size than standard (a big
				 * frame's) takes nothing from elsewhere: when
				 * its frame went, it must go too, not stay held
				 * for a few bytes moved in */
				if (w->cap - wpos < n || (w != r && w->cap != OUTQ_CHUNK)) {
					w->wpos = wpos;
					w = r;
					wpos = r->rpos;
				}
				memmove(w->data + wpos, r->data + off, n);
				wpos += n;
				w->frames++;
			} else {
				dropped++;
				q->len -= n;
			}
			off += n;
		}
		if (r != w) {
			w->next = next;
			outq_chunk_free(q, r);
		}
	}
	w->wpos = wpos;
	q->tail = w;
	if (h->rpos == h->wpos) {
		/* nothing being written nor kept in the head: the kept
		 * frames, if any, start at the start of the next chunk */
		q->head = h->next;
		if (!q->head)
			q->tail = NULL;
		q->next = 0;
		outq_chunk_free(q, h);
	}
	/* the chunks between the two ends are full but for less than the
	 * frame that did not fit; the ends may hold little */
	if (q->head) {
		outq_shrink(q, &q->head);
		struct outq_chunk **pp = &q->head;
		while ((*pp)->next)
			pp = &(*pp)->next;
		if (*pp != q->head)
			outq_shrink(q, pp);
	}
	outq_trim(q);
	return dropped;
}

size_t outq_drop_unsent(struct outq *q)
{
	return outq_drop_unsent_if(q, NULL, NULL);
}
