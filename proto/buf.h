/*
 * buf.h: a bounded byte buffer with read and write positions.
 *
 * Used for every connection's input and output in the broker and the client
 * library.  The buffer grows on demand but never past its maximum, so a
 * peer can never make it allocate more than the configured bound; bytes are
 * consumed from the front and the space is reclaimed by compaction.
 */
#ifndef IPCBUS_BUF_H
#define IPCBUS_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t rpos; /* first unread byte */
	size_t wpos; /* first free byte */
	size_t cap;  /* allocated size */
	size_t max;  /* never hold more than this many unread bytes */
	size_t *acct; /* NULL, or a counter that follows cap (set by the owner) */
};

/* Empty buffer holding at most max unread bytes.  Allocates nothing; acct
 * is NULL (an owner that counts memory sets it after buf_init). */
void buf_init(struct buf *b, size_t max);

/* Free the memory; the buffer is empty and usable again (same max and
 * acct). */
void buf_fini(struct buf *b);

/* Make room for n more bytes at buf_wptr().  0, -ENOBUFS when the unread
 * bytes plus n would exceed max (nothing changes), -ENOMEM.  Growth is
 * geometric up to max, so reserving a little at a time costs O(1)
 * amortized however full the buffer is. */
int buf_reserve(struct buf *b, size_t n);

/* Append n bytes (reserve + copy).  0, -ENOBUFS, -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);

/* Drop n bytes from the front (n <= buf_len). */
void buf_consume(struct buf *b, size_t n);

/* Release memory beyond `keep` bytes of capacity when the buffer is empty
 * (after a burst, so an idle connection does not hold megabytes). */
void buf_shrink(struct buf *b, size_t keep);

static inline size_t buf_len(const struct buf *b) { return b->wpos - b->rpos; }
static inline uint8_t *buf_rptr(const struct buf *b) { return b->data + b->rpos; }
static inline uint8_t *buf_wptr(const struct buf *b) { return b->data + b->wpos; }
static inline size_t buf_room(const struct buf *b) { return b->cap - b->wpos; }
/* After writing n bytes at buf_wptr() (within buf_room). */
static inline void buf_commit(struct buf *b, size_t n) { b->wpos += n; }

#endif
