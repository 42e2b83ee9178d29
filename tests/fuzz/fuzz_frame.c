/*
 * fuzz_frame.c: a libFuzzer target for everything that reads bytes from a
 * peer: frame_split() over the input as a stream (1 MiB limit), then for
 * every frame body (and for the whole input as one datagram) frame_decode(),
 * frame_header_next() and the protobuf-c unpackers of the nested messages.
 *
 * Besides "no crash, no sanitizer report" it checks invariants:
 *  - whatever protobuf-c's generated unpacker accepts, frame_decode() accepts
 *    with the same fields (frame_decode may accept more: it leaves the
 *    nested messages packed);
 *  - a decoded view re-encodes to bytes that decode to the same fields, and
 *    encoding that again gives the same bytes;
 *  - the broker's MSG body built from a decoded frame, behind a sid prefix,
 *    splits and decodes to the same channel, payload and headers.
 * Built only with ./configure --enable-fuzzer (CC=clang).
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "ipcbus.h"

#define FUZZ_MAX_FRAME (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c)                                                                   \
	do {                                                                            \
		if (!(c)) {                                                             \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,     \
				__LINE__, #c);                                          \
			abort();                                                        \
		}                                                                       \
	} while (0)

static int fuzz_bytes_eq(const struct frame_bytes *a, const struct frame_bytes *b)
{
	return a->set == b->set &&
	       (!a->set || (a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0)));
}

static int fuzz_pb_eq(const struct frame_bytes *a, protobuf_c_boolean has,
		      const ProtobufCBinaryData *d)
{
	if (!a->set || !has)
		return !a->set && !has;
	return a->len == d->len && (a->len == 0 || memcmp(a->p, d->data, a->len) == 0);
}

/* The headers of f, in order (malloc'ed, NULL when there are none). */
static struct frame_header *fuzz_headers(const struct frame *f)
{
	struct frame_header *h;
	size_t pos = 0, n = 0, bytes = 0;

	if (!f->nheaders)
		return NULL;
	h = malloc(f->nheaders * sizeof *h);
	FUZZ_CHECK(h);
	while (frame_header_next(f, &pos, &h[n])) {
		FUZZ_CHECK(n < f->nheaders);
		bytes += frame_header_cost(h[n].key_len, h[n].value_len);
		n++;
	}
	FUZZ_CHECK(n == f->nheaders);
	/* as encoded: more than the canonical size when a header carries
	 * unknown fields or repeats its key or value */
	FUZZ_CHECK(bytes <= f->header_bytes);
	return h;
}

static void fuzz_same_headers(const struct frame *a, const struct frame *b)
{
	size_t pa = 0, pb = 0;
	struct frame_header ha, hb;

	/* b is derived from a (re-encoded: canonical headers, never larger) */
	FUZZ_CHECK(a->nheaders == b->nheaders && b->header_bytes <= a->header_bytes);
	while (frame_header_next(a, &pa, &ha)) {
		FUZZ_CHECK(frame_header_next(b, &pb, &hb));
		FUZZ_CHECK(ha.key_len == hb.key_len && ha.value_len == hb.value_len);
		FUZZ_CHECK(!ha.key_len || memcmp(ha.key, hb.key, ha.key_len) == 0);
		FUZZ_CHECK(!ha.value_len || memcmp(ha.value, hb.value, ha.value_len) == 0);
	}
	FUZZ_CHECK(!frame_header_next(b, &pb, &hb));
}

static void fuzz_same(const struct frame *a, const struct frame *b)
{
	FUZZ_CHECK(a->type == b->type);
	FUZZ_CHECK(a->has_id == b->has_id && (!a->has_id || a->id == b->id));
	FUZZ_CHECK(a->has_sid == b->has_sid && (!a->has_sid || a->sid == b->sid));
	FUZZ_CHECK(fuzz_bytes_eq(&a->channel, &b->channel));
	FUZZ_CHECK(fuzz_bytes_eq(&a->reply_to, &b->reply_to));
	FUZZ_CHECK(fuzz_bytes_eq(&a->payload, &b->payload));
	FUZZ_CHECK(fuzz_bytes_eq(&a->queue, &b->queue));
	FUZZ_CHECK(fuzz_bytes_eq(&a->hello, &b->hello));
	FUZZ_CHECK(fuzz_bytes_eq(&a->welcome, &b->welcome));
	FUZZ_CHECK(fuzz_bytes_eq(&a->error, &b->error));
	fuzz_same_headers(a, b);
}

/* A varint read as protobuf-c reads it: up to 10 bytes, bits past the 64th
 * ignored (*odd set when there were any).  Bytes used, or 0. */
static int fuzz_varint_lenient(const uint8_t *p, size_t len, uint64_t *v, int *odd)
{
	uint64_t r = 0;
	for (size_t i = 0; i < FRAME_VARINT_MAX && i < len; i++) {
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			if (i == FRAME_VARINT_MAX - 1 && p[i] > 1)
				*odd = 1;
			*v = r;
			return (int)i + 1;
		}
	}
	return 0;
}

/* 1 when the message (or a Header inside it) has a field number outside
 * 1..2^29-1 or a 10-byte varint with bits past the 64th.  Protobuf forbids
 * them and frame_decode() refuses them, but protobuf-c 1.4 accepts a field 0
 * whose key is written in more bytes than needed (0x80 0x00), truncates keys
 * over 32 bits and drops overflowing bits: known leniencies of protobuf-c,
 * not counted against frame_decode(). */
static int fuzz_pbc_lenient(const uint8_t *p, size_t len, int depth)
{
	size_t i = 0;
	int odd = 0;

	while (i < len) {
		uint64_t key, v;
		int k = fuzz_varint_lenient(p + i, len - i, &key, &odd);
		if (k <= 0)
			return odd;
		i += (size_t)k;
		if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
			return 1;
		switch (key & 7) {
		case 0:
			k = fuzz_varint_lenient(p + i, len - i, &v, &odd);
			if (k <= 0)
				return odd;
			i += (size_t)k;
			break;
		case 1:
			i += 8;
			break;
		case 5:
			i += 4;
			break;
		case 2:
			k = fuzz_varint_lenient(p + i, len - i, &v, &odd);
			if (k <= 0 || v > len - i - (size_t)k)
				return odd;
			i += (size_t)k;
			if (depth == 0 && (key >> 3) == FRAME_F_HEADERS &&
			    fuzz_pbc_lenient(p + i, (size_t)v, 1))
				return 1;
			i += (size_t)v;
			break;
		default:
			return odd;
		}
		if (odd)
			return 1;
	}
	return odd;
}

/* protobuf-c's verdict on the same bytes. */
static void fuzz_protobuf_c(const uint8_t *body, size_t len, int rc, const struct frame *f)
{
	Ipcbus__Frame *m = ipcbus__frame__unpack(NULL, len, body);
	if (!m)
		return;
	if (rc != 0 && fuzz_pbc_lenient(body, len, 0)) {
		ipcbus__frame__free_unpacked(m, NULL);
		return;
	}
	FUZZ_CHECK(rc == 0);
	/* an enum value the schema lacks: frame_decode keeps it, or -1 when huge */
	FUZZ_CHECK(f->type == (int)m->type || f->type == -1);
	FUZZ_CHECK(f->has_id == !!m->has_id && (!m->has_id || f->id == m->id));
	FUZZ_CHECK(f->has_sid == !!m->has_sid && (!m->has_sid || f->sid == m->sid));
	FUZZ_CHECK(fuzz_pb_eq(&f->channel, m->has_channel, &m->channel));
	FUZZ_CHECK(fuzz_pb_eq(&f->reply_to, m->has_reply_to, &m->reply_to));
	FUZZ_CHECK(fuzz_pb_eq(&f->payload, m->has_payload, &m->payload));
	FUZZ_CHECK(fuzz_pb_eq(&f->queue, m->has_queue, &m->queue));
	FUZZ_CHECK(f->nheaders == m->n_headers);
	size_t pos = 0, i = 0;
	struct frame_header h;
	while (frame_header_next(f, &pos, &h)) {
		FUZZ_CHECK(i < m->n_headers);
		const Ipcbus__Header *mh = m->headers[i++];
		FUZZ_CHECK(h.key_len == mh->key.len && h.value_len == mh->value.len);
		FUZZ_CHECK(!h.key_len || memcmp(h.key, mh->key.data, h.key_len) == 0);
		FUZZ_CHECK(!h.value_len || memcmp(h.value, mh->value.data, h.value_len) == 0);
	}
	FUZZ_CHECK(i == m->n_headers);
	FUZZ_CHECK(f->hello.set == (m->hello != NULL));
	FUZZ_CHECK(f->welcome.set == (m->welcome != NULL));
	FUZZ_CHECK(f->error.set == (m->error != NULL));
	ipcbus__frame__free_unpacked(m, NULL);
}

/* Re-encode a decoded view; decode it again; encode once more. */
static void fuzz_reencode(const struct frame *f)
{
	struct frame_header *h = fuzz_headers(f);
	size_t n = frame_size(f, h, f->nheaders);
	uint8_t *p = malloc(n ? n : 1), *q = malloc(n ? n : 1);
	struct frame d;

	FUZZ_CHECK(p && q);
	FUZZ_CHECK(frame_encode(f, h, f->nheaders, p) == n);
	FUZZ_CHECK(frame_decode(p, n, &d) == 0);
	/* a huge unknown type (-1) is encoded as -1, i.e. as a 10-byte varint,
	 * which decodes back to -1 as well */
	fuzz_same(f, &d);
	struct frame_header *h2 = fuzz_headers(&d);
	FUZZ_CHECK(frame_size(&d, h2, d.nheaders) == n);
	FUZZ_CHECK(frame_encode(&d, h2, d.nheaders, q) == n);
	FUZZ_CHECK(memcmp(p, q, n) == 0);
	free(h2);
	free(h);
	free(p);
	free(q);
}

/* What the broker sends for a PUB: sid prefix + shared MSG body. */
static void fuzz_msg(const struct frame *pub)
{
	size_t bn = frame_msg_size(pub);
	uint8_t *p = malloc(bn + 2 * FRAME_VARINT_MAX + 1);
	uint8_t *body;
	const uint8_t *fb;
	size_t flen, need;
	struct frame d;
	uint64_t sid = pub->has_id ? pub->id : 12345;

	FUZZ_CHECK(p);
	size_t k = frame_sid_prefix(p, sid, bn);
	body = p + k;
	FUZZ_CHECK(frame_msg_encode(pub, body) == bn);
	long rc = frame_split(p, k + bn, SIZE_MAX, &fb, &flen, &need);
	FUZZ_CHECK(rc == (long)(k + bn));
	FUZZ_CHECK(frame_decode(fb, flen, &d) == 0);
	FUZZ_CHECK(d.type == IPCBUS__FRAME_TYPE__MSG && d.has_sid && d.sid == sid && !d.has_id);
	FUZZ_CHECK(fuzz_bytes_eq(&d.channel, &pub->channel));
	FUZZ_CHECK(fuzz_bytes_eq(&d.reply_to, &pub->reply_to));
	FUZZ_CHECK(fuzz_bytes_eq(&d.payload, &pub->payload));
	FUZZ_CHECK(!d.queue.set && !d.hello.set);
	fuzz_same_headers(pub, &d);
	free(p);
}

static void fuzz_body(const uint8_t *body, size_t len)
{
	struct frame f;
	int rc = frame_decode(body, len, &f);

	fuzz_protobuf_c(body, len, rc, &f);
	if (rc != 0) {
		FUZZ_CHECK(rc == IPCBUS_EPROTO);
		return;
	}
	fuzz_reencode(&f);
	fuzz_msg(&f);
	Ipcbus__Hello *h = frame_unpack_hello(&f);
	if (h)
		ipcbus__hello__free_unpacked(h, NULL);
	Ipcbus__Welcome *w = frame_unpack_welcome(&f);
	if (w)
		ipcbus__welcome__free_unpacked(w, NULL);
	Ipcbus__Error *e = frame_unpack_error(&f);
	if (e)
		ipcbus__error__free_unpacked(e, NULL);
	FUZZ_CHECK(frame_type_name(f.type) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	/* as a byte stream */
	while (off < size) {
		const uint8_t *body = NULL;
		size_t blen = 0, need = 0;
		long rc = frame_split(data + off, size - off, FUZZ_MAX_FRAME, &body, &blen, &need);
		if (rc == 0) {
			FUZZ_CHECK(need == 0 || (need > size - off && need <= FUZZ_MAX_FRAME + FRAME_VARINT_MAX));
			break;
		}
		if (rc < 0) {
			FUZZ_CHECK(rc == IPCBUS_EFRAME || rc == IPCBUS_EPROTO);
			break;
		}
		FUZZ_CHECK((size_t)rc <= size - off && body + blen == data + off + rc);
		FUZZ_CHECK(blen <= FUZZ_MAX_FRAME);
		fuzz_body(body, blen);
		off += (size_t)rc;
	}
	/* as one datagram */
	fuzz_body(data, size);
	return 0;
}
