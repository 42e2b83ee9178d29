/*
 * outq.h: a connection's output queue: whole frames in a list of chunks.
 *
 * The output of a connection that does not read can reach max-pending (64
 * MiB by default).  A contiguous buffer there costs a copy of the whole
 * backlog whenever it grows or compacts, so the cost of queueing one small
 * frame would grow with what is queued.  Here appending a frame and
 * consuming written bytes are O(1) amortized whatever the backlog: frames
 * go at the end of the last chunk (a new chunk when it is full), written
 * chunks are freed from the front, and one spare chunk is kept while
 * output flows (an empty queue holds no memory at all).
 *
 * A frame never straddles two chunks: a frame larger than a chunk gets a
 * chunk of its own.  So the frames can be taken one at a time (a datagram
 * transport sends one frame per datagram) or as a list of iovecs (a stream
 * transport writes several chunks with one writev).  Every frame carries
 * its varint length prefix, as on a stream.
 *
 * `held` counts the bytes allocated, chunks and spare together, and is
 * added to *acct (when set) as it changes: what max-memory bounds is what
 * the broker holds, not what it means to send.
 */
#ifndef IPCBUS_OUTQ_H
#define IPCBUS_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Frames up to OUTQ_BIG bytes share chunks of OUTQ_CHUNK bytes; a bigger
 * frame has a chunk of its own (so at most a quarter of a chunk is lost
 * at its end). */
#define OUTQ_CHUNK (64 << 10)
#define OUTQ_BIG (OUTQ_CHUNK / 4)

struct outq_chunk;

struct outq {
	struct outq_chunk *head, *tail;
	struct outq_chunk *spare; /* one empty standard chunk, kept */
	size_t len;               /* bytes queued, not yet consumed */
	size_t held;              /* bytes allocated */
	size_t *acct;             /* NULL, or a counter that follows held */
	size_t next;              /* in head: offset of the next frame start */
};

/* Empty queue; allocates nothing.  acct may be NULL. */
void outq_init(struct outq *q, size_t *acct);

/* Free every chunk (what was queued is gone). */
void outq_fini(struct outq *q);

/* Room for one whole frame of n bytes (its prefix included), contiguous.
 * Returns where to write it, or NULL when out of memory.  The frame is
 * queued by outq_commit(q, n); a reservation not committed is forgotten by
 * the next one.  Bounds are the caller's: the queue holds what it is
 * given. */
uint8_t *outq_reserve(struct outq *q, size_t n);

/* Queue the n bytes written at the last outq_reserve() as one frame. */
void outq_commit(struct outq *q, size_t n);

/* Bytes outq_reserve(q, n) would allocate (0 when the frame fits in the
 * last chunk). */
size_t outq_growth(const struct outq *q, size_t n);

/* Reserve, copy and commit one frame.  0 or -ENOMEM. */
int outq_push(struct outq *q, const void *frame, size_t n);

/* Up to max iovecs describing the queued bytes from the front.  Returns
 * the number filled (0 when empty). */
int outq_iov(const struct outq *q, struct iovec *iov, int max);

/* The first frame not started yet, for datagram transports: its bytes with
 * the prefix (*len), or NULL when the queue is empty.  Only valid when no
 * frame is partly consumed (datagram transports consume whole frames). */
const uint8_t *outq_frame(const struct outq *q, size_t *len);

/* n bytes were written from the front (n <= len). */
void outq_consume(struct outq *q, size_t n);

/* 1 when the front frame is partly written (some of its bytes went out). */
int outq_partial(const struct outq *q);

/* Bytes queued that have not started to go out (what outq_drop_unsent()
 * drops). */
size_t outq_unsent(const struct outq *q);

/* Drop every frame that has not started to go out; a frame partly written
 * stays whole, so the stream stays in step.  The spare chunk goes too.
 * Returns the frames dropped. */
size_t outq_drop_unsent(struct outq *q);

/* 1 to keep the frame whose body (without its length prefix) is
 * body[0..len), 0 to drop it. */
typedef int outq_keep_fn(const uint8_t *body, size_t len, void *arg);

/* outq_drop_unsent(), except that the frames keep(body, len, arg) keeps
 * stay, in their order: they are moved together into as few chunks as
 * hold them (never into a big frame's chunk), and a standard chunk left part-empty at either end of the
 * queue is replaced by one of the size of what it holds, so what was
 * dropped is given back.  Every frame not started is looked at (keep NULL
 * keeps none and looks only at the first chunk).  Returns the frames
 * dropped. */
size_t outq_drop_unsent_if(struct outq *q, outq_keep_fn *keep, void *arg);

/* Free the spare chunk (an idle connection holds nothing). */
void outq_trim(struct outq *q);

#endif
