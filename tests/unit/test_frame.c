/*
 * test_frame.c: varints, the stream splitter and the allocation-free codec,
 * held against protobuf-c's own packer and unpacker: what frame_encode()
 * writes must unpack with protobuf-c to the same fields, and what protobuf-c
 * (or any valid protobuf writer: other field orders, unknown fields, repeated
 * scalars) writes must decode with frame_decode() to the same fields.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "ipcbus.h"
#include "unit.h"

#define B(s) ((const uint8_t *)(s))

/* A protobuf writer for hand-made frames. */
struct w {
	uint8_t b[70000];
	size_t n;
};

static void w_varint(struct w *w, uint64_t v)
{
	w->n += frame_varint_put(w->b + w->n, v);
}

static void w_key(struct w *w, uint32_t field, int wt)
{
	w_varint(w, (uint64_t)field << 3 | (uint64_t)wt);
}

static void w_uint(struct w *w, uint32_t field, uint64_t v)
{
	w_key(w, field, 0);
	w_varint(w, v);
}

static void w_bytes(struct w *w, uint32_t field, const void *p, size_t n)
{
	w_key(w, field, 2);
	w_varint(w, n);
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

static void w_raw(struct w *w, const void *p, size_t n)
{
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

static struct frame_bytes fb(const void *p, size_t n)
{
	struct frame_bytes b = {p, n, 1};
	return b;
}

static int bytes_eq(const struct frame_bytes *a, const struct frame_bytes *b)
{
	return a->set == b->set && (!a->set || (a->len == b->len && (a->len == 0 ||
							memcmp(a->p, b->p, a->len) == 0)));
}

static int pb_bytes_eq(const struct frame_bytes *a, protobuf_c_boolean has,
		       const ProtobufCBinaryData *d)
{
	if (!a->set || !has)
		return !a->set && !has;
	return a->len == d->len && (a->len == 0 || memcmp(a->p, d->data, a->len) == 0);
}

/* The decoded view f says the same as protobuf-c's m. */
static void check_same(const struct frame *f, const Ipcbus__Frame *m)
{
	CU_ASSERT_EQUAL(f->type, (int)m->type);
	CU_ASSERT_EQUAL(f->has_id, !!m->has_id);
	if (f->has_id && m->has_id)
		CU_ASSERT_EQUAL(f->id, m->id);
	CU_ASSERT_EQUAL(f->has_sid, !!m->has_sid);
	if (f->has_sid && m->has_sid)
		CU_ASSERT_EQUAL(f->sid, m->sid);
	CU_ASSERT_TRUE(pb_bytes_eq(&f->channel, m->has_channel, &m->channel));
	CU_ASSERT_TRUE(pb_bytes_eq(&f->reply_to, m->has_reply_to, &m->reply_to));
	CU_ASSERT_TRUE(pb_bytes_eq(&f->payload, m->has_payload, &m->payload));
	CU_ASSERT_TRUE(pb_bytes_eq(&f->queue, m->has_queue, &m->queue));
	CU_ASSERT_EQUAL(f->nheaders, m->n_headers);
	size_t pos = 0, i = 0, hbytes = 0;
	struct frame_header h;
	while (frame_header_next(f, &pos, &h)) {
		CU_ASSERT_FATAL(i < m->n_headers);
		const Ipcbus__Header *mh = m->headers[i++];
		CU_ASSERT_EQUAL(h.key_len, mh->key.len);
		CU_ASSERT_EQUAL(h.value_len, mh->value.len);
		if (h.key_len == mh->key.len && h.key_len)
			CU_ASSERT_EQUAL(memcmp(h.key, mh->key.data, h.key_len), 0);
		if (h.value_len == mh->value.len && h.value_len)
			CU_ASSERT_EQUAL(memcmp(h.value, mh->value.data, h.value_len), 0);
		hbytes += frame_header_cost(h.key_len, h.value_len);
	}
	CU_ASSERT_EQUAL(i, m->n_headers);
	/* as encoded: the canonical size, more when a header carries unknown
	 * fields (exact figures are checked where the bytes are known) */
	CU_ASSERT(f->header_bytes >= hbytes);
	CU_ASSERT_EQUAL(f->hello.set, m->hello != NULL);
	CU_ASSERT_EQUAL(f->welcome.set, m->welcome != NULL);
	CU_ASSERT_EQUAL(f->error.set, m->error != NULL);
}

/* Decode body both ways and compare (frame_type_of() too); returns
 * frame_decode's result. */
static int decode_both(const uint8_t *body, size_t len, struct frame *f)
{
	int rc = frame_decode(body, len, f);
	Ipcbus__Frame *m = ipcbus__frame__unpack(NULL, len, body);
	CU_ASSERT_EQUAL(rc == 0, m != NULL);
	if (rc == 0)
		CU_ASSERT_EQUAL(frame_type_of(body, len), f->type);
	if (rc == 0 && m)
		check_same(f, m);
	if (m)
		ipcbus__frame__free_unpacked(m, NULL);
	return rc;
}

/* ---- varints ---- */

static void test_varint(void)
{
	static const uint64_t vals[] = {0, 1, 127, 128, 255, 300, 16383, 16384, 2097151,
					2097152, 0xffffffffu, 0x100000000ull, 1ull << 56,
					(1ull << 63) - 1, 1ull << 63, UINT64_MAX};
	uint8_t p[FRAME_VARINT_MAX + 4];

	for (size_t i = 0; i < UNIT_NELEM(vals); i++) {
		size_t n = frame_varint_put(p, vals[i]);
		CU_ASSERT_EQUAL(n, frame_varint_len(vals[i]));
		CU_ASSERT(n >= 1 && n <= FRAME_VARINT_MAX);
		uint64_t v = 0;
		CU_ASSERT_EQUAL(frame_varint_get(p, n, &v), (int)n);
		CU_ASSERT_EQUAL(v, vals[i]);
		/* with trailing bytes: stops at its end */
		p[n] = 0x7f;
		CU_ASSERT_EQUAL(frame_varint_get(p, n + 1, &v), (int)n);
		/* every truncation needs more bytes */
		for (size_t k = 0; k < n; k++)
			CU_ASSERT_EQUAL(frame_varint_get(p, k, &v), 0);
	}
	CU_ASSERT_EQUAL(frame_varint_len(UINT64_MAX), 10);
	CU_ASSERT_EQUAL(frame_varint_len(127), 1);
	CU_ASSERT_EQUAL(frame_varint_len(128), 2);

	uint64_t v;
	/* non-canonical but valid: a padded zero */
	CU_ASSERT_EQUAL(frame_varint_get(B("\x80\x00"), 2, &v), 2);
	CU_ASSERT_EQUAL(v, 0);
	/* eleven bytes, or ten with the last one continuing: malformed */
	CU_ASSERT_EQUAL(frame_varint_get(B("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), 11, &v), -1);
	CU_ASSERT_EQUAL(frame_varint_get(B("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80"), 10, &v), -1);
	/* ten bytes whose last carries more than the 64th bit: overflow */
	CU_ASSERT_EQUAL(frame_varint_get(B("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"), 10, &v), -1);
	CU_ASSERT_EQUAL(frame_varint_get(B("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), 10, &v), 10);
	CU_ASSERT_EQUAL(v, UINT64_MAX);
	/* nine continuing bytes: still undecided */
	CU_ASSERT_EQUAL(frame_varint_get(B("\xff\xff\xff\xff\xff\xff\xff\xff\xff"), 9, &v), 0);
}

/* ---- frame_split ---- */

enum { NFR = 60, MAXF = 1 << 20 };

/* A stream of PUB frames of varied sizes (1, 2 and 3 byte prefixes). */
static size_t make_stream(struct buf *b, size_t *sizes)
{
	static uint8_t payload[40000];
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 31 + 7);
	for (size_t i = 0; i < NFR; i++) {
		size_t n = i == 17 ? 30000 : i == 40 ? 0 : (i * 37) % 300;
		struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = 1, .id = i};
		f.channel = fb("a.b", 3);
		f.payload = fb(payload, n);
		size_t before = buf_len(b);
		CU_ASSERT_EQUAL_FATAL(frame_append(b, &f, NULL, 0), 0);
		sizes[i] = buf_len(b) - before;
	}
	return buf_len(b);
}

/* Feed the stream in chunks of `step` bytes (0: random); check every frame
 * comes out once, whole and in order. */
static void split_stream(const uint8_t *s, size_t len, const size_t *sizes, size_t step)
{
	struct buf in;
	size_t off = 0, seen = 0;

	buf_init(&in, MAXF + 16);
	srand(7);
	while (off < len) {
		size_t n = step ? step : 1 + (size_t)rand() % 5000;
		if (n > len - off)
			n = len - off;
		CU_ASSERT_EQUAL_FATAL(buf_append(&in, s + off, n), 0);
		off += n;
		for (;;) {
			const uint8_t *body = NULL;
			size_t blen = 0, need = 99;
			long rc = frame_split(buf_rptr(&in), buf_len(&in), MAXF, &body, &blen, &need);
			CU_ASSERT_FATAL(rc >= 0);
			if (rc == 0) {
				if (buf_len(&in) == 0)
					break;
				/* once the prefix is there, need is the whole frame */
				CU_ASSERT_FATAL(seen < NFR);
				if (need)
					CU_ASSERT_EQUAL(need, sizes[seen]);
				CU_ASSERT(need == 0 || need > buf_len(&in));
				break;
			}
			CU_ASSERT_FATAL(seen < NFR);
			CU_ASSERT_EQUAL(rc, (long)sizes[seen]);
			CU_ASSERT_EQUAL(body + blen, buf_rptr(&in) + rc);
			struct frame f;
			CU_ASSERT_EQUAL_FATAL(frame_decode(body, blen, &f), 0);
			CU_ASSERT_EQUAL(f.id, seen);
			buf_consume(&in, (size_t)rc);
			seen++;
		}
	}
	CU_ASSERT_EQUAL(seen, NFR);
	CU_ASSERT_EQUAL(buf_len(&in), 0);
	buf_fini(&in);
}

static void test_split(void)
{
	struct buf b;
	size_t sizes[NFR];

	buf_init(&b, 1 << 24);
	size_t len = make_stream(&b, sizes);
	split_stream(buf_rptr(&b), len, sizes, 1);   /* byte by byte */
	split_stream(buf_rptr(&b), len, sizes, len); /* all frames in one read */
	split_stream(buf_rptr(&b), len, sizes, 0);   /* random reads */
	split_stream(buf_rptr(&b), len, sizes, 127);
	buf_fini(&b);
}

static void test_split_limits(void)
{
	uint8_t p[16];
	const uint8_t *body = NULL;
	size_t blen = 0, need = 0;
	size_t k;

	/* over the maximum: refused from the prefix alone */
	k = frame_varint_put(p, MAXF + 1);
	CU_ASSERT_EQUAL(frame_split(p, k, MAXF, &body, &blen, &need), IPCBUS_EFRAME);
	k = frame_varint_put(p, UINT64_MAX);
	CU_ASSERT_EQUAL(frame_split(p, k, MAXF, &body, &blen, &need), IPCBUS_EFRAME);
	k = frame_varint_put(p, 101);
	CU_ASSERT_EQUAL(frame_split(p, k, 100, &body, &blen, &need), IPCBUS_EFRAME);
	/* exactly the maximum: waits for it, need known */
	k = frame_varint_put(p, MAXF);
	CU_ASSERT_EQUAL(frame_split(p, k, MAXF, &body, &blen, &need), 0);
	CU_ASSERT_EQUAL(need, k + MAXF);
	/* half a prefix: need unknown */
	need = 5;
	CU_ASSERT_EQUAL(frame_split(p, 1, MAXF, &body, &blen, &need), 0);
	CU_ASSERT_EQUAL(need, 0);
	CU_ASSERT_EQUAL(frame_split(p, 0, MAXF, &body, &blen, &need), 0);
	CU_ASSERT_EQUAL(need, 0);
	/* a malformed prefix */
	memset(p, 0xff, sizeof p);
	CU_ASSERT_EQUAL(frame_split(p, 10, MAXF, &body, &blen, &need), IPCBUS_EPROTO);
	CU_ASSERT_EQUAL(frame_split(p, 9, MAXF, &body, &blen, &need), 0);
	/* an empty frame splits (and then does not decode: no type) */
	p[0] = 0;
	CU_ASSERT_EQUAL(frame_split(p, 1, MAXF, &body, &blen, &need), 1);
	CU_ASSERT_EQUAL(blen, 0);
	struct frame f;
	CU_ASSERT_EQUAL(frame_decode(body, blen, &f), IPCBUS_EPROTO);
}

/* ---- frame_encode / frame_decode ---- */

/* Encode f with h, decode it back (both ways), check the fields, re-encode
 * and get the same bytes. */
static void roundtrip(const struct frame *f, const struct frame_header *h, size_t nh)
{
	size_t n = frame_size(f, h, nh);
	uint8_t *p = malloc(n + 1), *q = malloc(n + 1);
	CU_ASSERT_FATAL(p && q);
	p[n] = 0xa5;
	CU_ASSERT_EQUAL(frame_encode(f, h, nh, p), n);
	CU_ASSERT_EQUAL(p[n], 0xa5); /* frame_size was right */
	struct frame d;
	CU_ASSERT_EQUAL_FATAL(decode_both(p, n, &d), 0);
	CU_ASSERT_EQUAL(d.type, f->type);
	CU_ASSERT_EQUAL(d.has_id, f->has_id);
	CU_ASSERT_EQUAL(d.has_sid, f->has_sid);
	if (f->has_id)
		CU_ASSERT_EQUAL(d.id, f->id);
	if (f->has_sid)
		CU_ASSERT_EQUAL(d.sid, f->sid);
	CU_ASSERT_TRUE(bytes_eq(&d.channel, &f->channel));
	CU_ASSERT_TRUE(bytes_eq(&d.reply_to, &f->reply_to));
	CU_ASSERT_TRUE(bytes_eq(&d.payload, &f->payload));
	CU_ASSERT_TRUE(bytes_eq(&d.queue, &f->queue));
	CU_ASSERT_TRUE(bytes_eq(&d.hello, &f->hello));
	CU_ASSERT_TRUE(bytes_eq(&d.welcome, &f->welcome));
	CU_ASSERT_TRUE(bytes_eq(&d.error, &f->error));
	CU_ASSERT_EQUAL(d.nheaders, nh);
	size_t pos = 0, i = 0;
	struct frame_header dh;
	while (frame_header_next(&d, &pos, &dh)) {
		CU_ASSERT_FATAL(i < nh);
		CU_ASSERT_EQUAL(dh.key_len, h[i].key_len);
		CU_ASSERT_EQUAL(dh.value_len, h[i].value_len);
		CU_ASSERT(dh.key_len == 0 || memcmp(dh.key, h[i].key, dh.key_len) == 0);
		CU_ASSERT(dh.value_len == 0 || memcmp(dh.value, h[i].value, dh.value_len) == 0);
		i++;
	}
	CU_ASSERT_EQUAL(i, nh);
	/* re-encoding the view gives the same bytes */
	struct frame_header hv[8];
	pos = 0;
	for (i = 0; i < nh && i < 8; i++)
		CU_ASSERT(frame_header_next(&d, &pos, &hv[i]));
	CU_ASSERT_EQUAL(frame_size(&d, hv, nh), n);
	CU_ASSERT_EQUAL(frame_encode(&d, hv, nh, q), n);
	CU_ASSERT_EQUAL(memcmp(p, q, n), 0);
	free(p);
	free(q);
}

static void test_roundtrip_types(void)
{
	static const char payload[] = "hello\0world\0";
	struct frame_header h[3] = {
		{B("k1"), 2, B("v1"), 2},
		{B("nul\0key"), 7, B("v\0\0al"), 5}, /* NUL bytes inside */
		{B(""), 0, B(""), 0},               /* empty key and value */
	};

	for (int t = IPCBUS__FRAME_TYPE__HELLO; t <= IPCBUS__FRAME_TYPE__ERR; t++) {
		struct frame f = {.type = t};
		roundtrip(&f, NULL, 0); /* the type alone */
		f.has_id = 1;
		f.id = (uint64_t)t * 1000003u;
		roundtrip(&f, NULL, 0);
		f.channel = fb("a.b.c", 5);
		f.reply_to = fb("_INBOX.xyz", 10);
		f.payload = fb(payload, sizeof payload);
		f.has_sid = 1;
		f.sid = UINT64_MAX;
		f.queue = fb("q", 1);
		roundtrip(&f, h, 3);
		f.id = 0; /* zero is present too */
		f.sid = 0;
		roundtrip(&f, h, 1);
	}
	/* the nested slots as bytes */
	struct frame f = {.type = IPCBUS__FRAME_TYPE__HELLO, .has_id = 1, .id = 1};
	f.hello = fb("\x08\x01", 2);
	roundtrip(&f, NULL, 0);
	f = (struct frame){.type = IPCBUS__FRAME_TYPE__WELCOME};
	f.welcome = fb("\x08\x01", 2);
	roundtrip(&f, NULL, 0);
	f = (struct frame){.type = IPCBUS__FRAME_TYPE__ERR};
	f.error = fb("\x08\x15", 2);
	roundtrip(&f, NULL, 0);

	/* big values: multi-byte lengths */
	static uint8_t big[200000];
	memset(big, 0, sizeof big);
	f = (struct frame){.type = IPCBUS__FRAME_TYPE__PUB};
	f.channel = fb("x", 1);
	f.payload = fb(big, sizeof big);
	struct frame_header bh = {B("key"), 3, big, 70000};
	roundtrip(&f, &bh, 1);
}

static void test_empty_vs_absent(void)
{
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB}, d;
	uint8_t p[64];
	size_t n;

	f.channel = fb("a", 1);
	n = frame_encode(&f, NULL, 0, p);
	CU_ASSERT_EQUAL_FATAL(decode_both(p, n, &d), 0);
	CU_ASSERT_FALSE(d.payload.set);
	CU_ASSERT_FALSE(d.reply_to.set);

	f.payload = fb("", 0); /* an empty payload is still a payload */
	f.reply_to = fb(NULL, 0);
	n = frame_encode(&f, NULL, 0, p);
	CU_ASSERT_EQUAL_FATAL(decode_both(p, n, &d), 0);
	CU_ASSERT_TRUE(d.payload.set);
	CU_ASSERT_EQUAL(d.payload.len, 0);
	CU_ASSERT_TRUE(d.reply_to.set);
	roundtrip(&f, NULL, 0);

	Ipcbus__Frame *m = ipcbus__frame__unpack(NULL, n, p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_TRUE(m->has_payload);
	CU_ASSERT_EQUAL(m->payload.len, 0);
	ipcbus__frame__free_unpacked(m, NULL);
}

/* protobuf-c packs, frame_decode reads. */
static void test_pb_to_frame(void)
{
	Ipcbus__Frame m = IPCBUS__FRAME__INIT;
	Ipcbus__Header h1 = IPCBUS__HEADER__INIT, h2 = IPCBUS__HEADER__INIT;
	Ipcbus__Header *hs[2] = {&h1, &h2};
	Ipcbus__Hello hello = IPCBUS__HELLO__INIT;
	uint8_t p[1024];
	struct frame f;

	m.type = IPCBUS__FRAME_TYPE__MSG;
	m.has_id = 1;
	m.id = 300;
	m.has_sid = 1;
	m.sid = 1ull << 40;
	m.has_channel = 1;
	m.channel.data = (uint8_t *)"chan.x";
	m.channel.len = 6;
	m.has_reply_to = 1;
	m.reply_to.data = (uint8_t *)"_INBOX.r";
	m.reply_to.len = 8;
	m.has_payload = 1;
	m.payload.data = (uint8_t *)"p\0q";
	m.payload.len = 3;
	h1.key.data = (uint8_t *)"a";
	h1.key.len = 1;
	h1.value.data = (uint8_t *)"b\0";
	h1.value.len = 2;
	h2.key.data = (uint8_t *)"a"; /* a repeated key stays two headers */
	h2.key.len = 1;
	h2.value.data = NULL;
	h2.value.len = 0;
	m.n_headers = 2;
	m.headers = hs;
	size_t n = ipcbus__frame__pack(&m, p);
	CU_ASSERT_EQUAL_FATAL(decode_both(p, n, &f), 0);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__MSG);
	CU_ASSERT_EQUAL(f.id, 300);
	CU_ASSERT_EQUAL(f.sid, 1ull << 40);
	CU_ASSERT_EQUAL(f.nheaders, 2);
	CU_ASSERT_EQUAL(f.header_bytes, frame_header_cost(1, 2) + frame_header_cost(1, 0));
	CU_ASSERT_EQUAL(f.header_bytes, 16);

	/* hello nested: frame_decode keeps its bytes */
	Ipcbus__Frame m2 = IPCBUS__FRAME__INIT;
	m2.type = IPCBUS__FRAME_TYPE__HELLO;
	hello.version = 1;
	hello.has_pid = 1;
	hello.pid = 4242;
	m2.hello = &hello;
	n = ipcbus__frame__pack(&m2, p);
	CU_ASSERT_EQUAL_FATAL(decode_both(p, n, &f), 0);
	CU_ASSERT_TRUE(f.hello.set);
	Ipcbus__Hello *uh = frame_unpack_hello(&f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(uh);
	CU_ASSERT_EQUAL(uh->version, 1);
	CU_ASSERT_EQUAL(uh->pid, 4242);
	ipcbus__hello__free_unpacked(uh, NULL);

	/* every type with only its type */
	for (int t = 0; t <= IPCBUS__FRAME_TYPE__ERR; t++) {
		Ipcbus__Frame m3 = IPCBUS__FRAME__INIT;
		m3.type = (Ipcbus__FrameType)t;
		n = ipcbus__frame__pack(&m3, p);
		CU_ASSERT_EQUAL(decode_both(p, n, &f), 0);
		CU_ASSERT_EQUAL(f.type, t);
	}
}

/* Valid protobuf that protobuf-c would not write: fields out of order,
 * unknown fields of every wire type, a repeated scalar (the last wins). */
static void test_wire_variants(void)
{
	static struct w w;
	struct frame f;

	/* reversed field order */
	w.n = 0;
	w_bytes(&w, FRAME_F_PAYLOAD, "pl", 2);
	w_bytes(&w, FRAME_F_QUEUE, "q", 1);
	w_uint(&w, FRAME_F_SID, 5);
	w_bytes(&w, FRAME_F_HEADERS, "\x0a\x01k\x12\x01v", 6);
	w_bytes(&w, FRAME_F_CHANNEL, "c", 1);
	w_uint(&w, FRAME_F_ID, 9);
	w_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__SUB);
	CU_ASSERT_EQUAL_FATAL(decode_both(w.b, w.n, &f), 0);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__SUB);
	CU_ASSERT_EQUAL(f.id, 9);
	CU_ASSERT_EQUAL(f.sid, 5);
	CU_ASSERT_EQUAL(f.nheaders, 1);
	CU_ASSERT_EQUAL(f.queue.len, 1);

	/* a header with value before key, and an unknown field inside */
	w.n = 0;
	w_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PUB);
	w_bytes(&w, FRAME_F_HEADERS, "\x12\x02vv\x18\x07\x0a\x01k", 9);
	CU_ASSERT_EQUAL_FATAL(decode_both(w.b, w.n, &f), 0);
	struct frame_header h;
	size_t pos = 0;
	CU_ASSERT_FATAL(frame_header_next(&f, &pos, &h));
	CU_ASSERT_EQUAL(h.key_len, 1);
	CU_ASSERT_EQUAL(h.value_len, 2);
	CU_ASSERT_FALSE(frame_header_next(&f, &pos, &h));

	/* unknown fields of each wire type, before, between and after */
	w.n = 0;
	w_uint(&w, 20, 12345);
	w_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PUB);
	w_key(&w, 21, 1);
	w_raw(&w, "12345678", 8);
	w_bytes(&w, FRAME_F_CHANNEL, "a.b", 3);
	w_key(&w, 22, 5);
	w_raw(&w, "1234", 4);
	w_bytes(&w, 100000, "unknown bytes", 13);
	w_uint(&w, 536870911, 1); /* the largest field number */
	w_bytes(&w, FRAME_F_PAYLOAD, "x", 1);
	w_bytes(&w, 30, "\x08\x01", 2); /* a field a later version may add */
	CU_ASSERT_EQUAL_FATAL(decode_both(w.b, w.n, &f), 0);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__PUB);
	CU_ASSERT_EQUAL(f.channel.len, 3);
	CU_ASSERT_EQUAL(f.payload.len, 1);

	/* repeated scalars and bytes: the last one wins */
	w.n = 0;
	w_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PING);
	w_uint(&w, FRAME_F_ID, 1);
	w_bytes(&w, FRAME_F_CHANNEL, "first", 5);
	w_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PUB);
	w_uint(&w, FRAME_F_ID, 2);
	w_bytes(&w, FRAME_F_CHANNEL, "second", 6);
	CU_ASSERT_EQUAL_FATAL(decode_both(w.b, w.n, &f), 0);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__PUB);
	CU_ASSERT_EQUAL(f.id, 2);
	CU_ASSERT_EQUAL(f.channel.len, 6);

	/* a padded (non-canonical) varint and a type the schema lacks */
	w.n = 0;
	w_key(&w, FRAME_F_TYPE, 0);
	w_raw(&w, "\x83\x80\x00", 3);
	CU_ASSERT_EQUAL_FATAL(decode_both(w.b, w.n, &f), 0);
	CU_ASSERT_EQUAL(f.type, 3);
	w.n = 0;
	w_uint(&w, FRAME_F_TYPE, 50);
	CU_ASSERT_EQUAL(frame_decode(w.b, w.n, &f), 0);
	CU_ASSERT_EQUAL(f.type, 50);
	CU_ASSERT_STRING_EQUAL(frame_type_name(50), "UNKNOWN");
	CU_ASSERT_EQUAL(frame_type_of(w.b, w.n), 50);
	w.n = 0;
	w_uint(&w, FRAME_F_TYPE, 1ull << 40);
	CU_ASSERT_EQUAL(frame_decode(w.b, w.n, &f), 0);
	CU_ASSERT_EQUAL(f.type, -1);
	CU_ASSERT_EQUAL(frame_type_of(w.b, w.n), -1);
}

/* frame_type_of() where there is no type to read: 0. */
static void test_type_of_none(void)
{
	static struct w w;

	CU_ASSERT_EQUAL(frame_type_of(NULL, 0), 0);
	w.n = 0;
	w_uint(&w, FRAME_F_SID, 3);
	w_bytes(&w, FRAME_F_PAYLOAD, "x", 1);
	CU_ASSERT_EQUAL(frame_type_of(w.b, w.n), 0); /* absent */
	w.n = 0;
	w_bytes(&w, FRAME_F_TYPE, "\x06", 1);
	CU_ASSERT_EQUAL(frame_type_of(w.b, w.n), 0); /* not a varint */
	w.n = 0;
	w_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__MSG);
	w_key(&w, FRAME_F_PAYLOAD, 2);
	w_raw(&w, "\x05" "ab", 3); /* a length past the end */
	CU_ASSERT_EQUAL(frame_type_of(w.b, w.n), 0);
	CU_ASSERT_EQUAL(frame_type_of(w.b, 2), IPCBUS__FRAME_TYPE__MSG);
}

/* Bytes that are not a valid Frame: both decoders refuse them. */
static void test_malformed(void)
{
	static struct w w;
	struct frame f;
#define REFUSE(stmt)                                                                      \
	do {                                                                              \
		w.n = 0;                                                                  \
		stmt;                                                                     \
		CU_ASSERT_EQUAL(decode_both(w.b, w.n, &f), IPCBUS_EPROTO);               \
	} while (0)

	/* no type (required) */
	REFUSE(w_bytes(&w, FRAME_F_CHANNEL, "a", 1));
	REFUSE((void)0);
	/* wrong wire types for known fields */
	REFUSE(w_bytes(&w, FRAME_F_TYPE, "\x03", 1));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_bytes(&w, FRAME_F_ID, "\x01", 1)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_uint(&w, FRAME_F_CHANNEL, 1)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_uint(&w, FRAME_F_PAYLOAD, 1)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_uint(&w, FRAME_F_HEADERS, 1)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 7), w_bytes(&w, FRAME_F_SID, "", 0)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, FRAME_F_CHANNEL, 5), w_raw(&w, "abcd", 4)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, FRAME_F_ID, 1), w_raw(&w, "abcdefgh", 8)));
	/* a header whose key has the wrong wire type */
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_bytes(&w, FRAME_F_HEADERS, "\x08\x01\x12\x00", 4)));
	/* truncated: a length past the end, a varint cut short, a key cut short */
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, FRAME_F_PAYLOAD, 2), w_raw(&w, "\x05" "ab", 3)));
	REFUSE((w_key(&w, FRAME_F_TYPE, 0), w_raw(&w, "\x83", 1)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_raw(&w, "\x80", 1)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, 16, 1), w_raw(&w, "1234567", 7)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, 17, 5), w_raw(&w, "123", 3)));
	/* a length near 2^64 */
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, FRAME_F_PAYLOAD, 2),
		w_raw(&w, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10)));
	/* groups and the undefined wire types, known field or not: a
	 * well-formed group of an unknown field is refused too, as protobuf-c
	 * refuses it (docs/protocol.md, Unknown fields) */
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, 20, 3), w_key(&w, 20, 4)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, 20, 3), w_uint(&w, 1, 5), w_key(&w, 20, 4)));
	REFUSE((w_key(&w, 20, 3), w_key(&w, 20, 4), w_uint(&w, FRAME_F_TYPE, 3)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, FRAME_F_CHANNEL, 3), w_key(&w, FRAME_F_CHANNEL, 4)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3),
		w_bytes(&w, FRAME_F_HEADERS, "\x0a\x01k\x12\x01v\x1b\x1c", 8)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, 20, 6)));
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_key(&w, 20, 7)));
	/* field number 0 */
	REFUSE((w_uint(&w, FRAME_F_TYPE, 3), w_uint(&w, 0, 1)));
	/* a malformed varint */
	REFUSE((w_key(&w, FRAME_F_TYPE, 0), w_raw(&w, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11)));
#undef REFUSE
}

/* A Header without its key or value is well-formed protobuf with bad
 * content: frame_decode() counts it apart (the broker answers E_INVALID,
 * recoverable) where protobuf-c refuses the whole frame (required field). */
static void test_incomplete_headers(void)
{
	static struct w w;
	struct frame f;
	struct frame_header h;
	size_t pos;
	static const struct {
		const char *bytes;
		size_t len;
	} bad[] = {
		{"\x0a\x01k", 3}, /* no value */
		{"\x12\x01v", 3}, /* no key */
		{"", 0},           /* neither */
		{"\x18\x07", 2},   /* only an unknown field */
	};

	for (size_t i = 0; i < UNIT_NELEM(bad); i++) {
		w.n = 0;
		w_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PUB);
		w_bytes(&w, FRAME_F_HEADERS, "\x0a\x01" "a" "\x12\x01" "b", 6);
		w_bytes(&w, FRAME_F_HEADERS, bad[i].bytes, bad[i].len);
		w_bytes(&w, FRAME_F_HEADERS, "\x0a\x01" "c" "\x12\x00", 5);
		CU_ASSERT_EQUAL_FATAL(frame_decode(w.b, w.n, &f), 0);
		CU_ASSERT_EQUAL(f.nheaders, 2);
		CU_ASSERT_EQUAL(f.nheaders_incomplete, 1);
		/* max-header-bytes counts it all the same, as encoded */
		CU_ASSERT_EQUAL(f.header_bytes, 8 + 2 + bad[i].len + 7);
		/* the iteration shows the complete ones only */
		pos = 0;
		CU_ASSERT_FATAL(frame_header_next(&f, &pos, &h));
		CU_ASSERT(h.key_len == 1 && h.key[0] == 'a');
		CU_ASSERT_FATAL(frame_header_next(&f, &pos, &h));
		CU_ASSERT(h.key_len == 1 && h.key[0] == 'c' && h.value_len == 0);
		CU_ASSERT_FALSE(frame_header_next(&f, &pos, &h));
		Ipcbus__Frame *m = ipcbus__frame__unpack(NULL, w.n, w.b);
		CU_ASSERT_PTR_NULL(m);
		if (m)
			ipcbus__frame__free_unpacked(m, NULL);
	}
	/* complete headers: none incomplete */
	w.n = 0;
	w_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PUB);
	w_bytes(&w, FRAME_F_HEADERS, "\x0a\x00\x12\x00", 4); /* an empty key is complete */
	CU_ASSERT_EQUAL_FATAL(decode_both(w.b, w.n, &f), 0);
	CU_ASSERT_EQUAL(f.nheaders, 1);
	CU_ASSERT_EQUAL(f.nheaders_incomplete, 0);
}

/* Headers "as encoded" means the bytes on the wire: a Header field whose
 * key or length varint is padded (valid protobuf) counts, and is copied
 * into the MSG, with its padding, so frame_msg_size() is what
 * frame_msg_encode() writes. */
static void test_padded_headers(void)
{
	static struct w w;
	static uint8_t body[256];
	struct frame f;

	w.n = 0;
	w_uint(&w, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__PUB);
	w_bytes(&w, FRAME_F_CHANNEL, "a", 1);
	w_raw(&w, "\xb2\x80\x00\x86\x80\x00\x0a\x01k\x12\x01v", 12); /* key and length padded */
	w_raw(&w, "\x32\x86\x80\x80\x00\x0a\x01k\x12\x01v", 11);        /* length padded */
	w_bytes(&w, FRAME_F_HEADERS, "\x0a\x01k\x12\x01v", 6);                 /* canonical */
	w_bytes(&w, FRAME_F_PAYLOAD, "x", 1);
	CU_ASSERT_EQUAL_FATAL(decode_both(w.b, w.n, &f), 0);
	CU_ASSERT_EQUAL(f.nheaders, 3);
	CU_ASSERT_EQUAL(f.header_bytes, 12 + 11 + 8);
	size_t n = frame_msg_size(&f);
	CU_ASSERT_FATAL(n <= sizeof body);
	CU_ASSERT_EQUAL(frame_msg_encode(&f, body), n);
	struct frame m;
	CU_ASSERT_EQUAL_FATAL(decode_both(body, n, &m), 0);
	CU_ASSERT_EQUAL(m.nheaders, 3);
	CU_ASSERT_EQUAL(m.header_bytes, f.header_bytes);
}

/* What a header key may be: visible ASCII but ':' and '='; ipcbus- keys
 * only as the protocol lists them. */
static void test_header_keys(void)
{
	static const struct {
		const char *key;
		size_t len;
		int want;
	} cases[] = {
		{"content-type", 12, FRAME_KEY_OK},
		{"X-Trace_Id.2", 12, FRAME_KEY_OK},
		{"!#$%&'*+-.^_`|~\"{}[]()<>@,;/?", 29, FRAME_KEY_OK},
		{"k", 1, FRAME_KEY_OK},
		{"", 0, FRAME_KEY_BAD},
		{"a b", 3, FRAME_KEY_BAD},
		{"a\0b", 3, FRAME_KEY_BAD},
		{"a\tb", 3, FRAME_KEY_BAD},
		{"a:b", 3, FRAME_KEY_BAD},
		{"a=b", 3, FRAME_KEY_BAD},
		{"caf\xc3\xa9", 5, FRAME_KEY_BAD},
		{"a\x7f", 2, FRAME_KEY_BAD},
		{"a\n", 2, FRAME_KEY_BAD},
		{"ipcbus-exit-status", 18, FRAME_KEY_OK},
		{"ipcbus-signal", 13, FRAME_KEY_OK},
		{"ipcbus-error", 12, FRAME_KEY_OK},
		{"ipcbus-", 7, FRAME_KEY_RESERVED},
		{"ipcbus-from", 11, FRAME_KEY_RESERVED},
		{"ipcbus-errors", 13, FRAME_KEY_RESERVED},
		{"ipcbus-erro", 11, FRAME_KEY_RESERVED},
		{"ipcbus-error ", 13, FRAME_KEY_BAD},
		{"ipcbus", 6, FRAME_KEY_OK},
		{"ipcbusx", 7, FRAME_KEY_OK},
		{"IPCBUS-from", 11, FRAME_KEY_OK}, /* keys are case-sensitive */
		{"x-ipcbus-from", 13, FRAME_KEY_OK},
	};
	for (size_t i = 0; i < UNIT_NELEM(cases); i++) {
		int rc = frame_header_key_check(B(cases[i].key), cases[i].len);
		if (rc != cases[i].want)
			fprintf(stderr, "key '%.*s': %d, want %d\n", (int)cases[i].len, cases[i].key,
				rc, cases[i].want);
		CU_ASSERT_EQUAL(rc, cases[i].want);
	}
}

/* The per-subscriber MSG: frame_sid_prefix() in front of a shared body. */
static void test_sid_prefix(void)
{
	static const uint64_t sids[] = {0, 1, 127, 128, 300, 1ull << 35, UINT64_MAX};
	static uint8_t payload[20000];
	static uint8_t out[40000];
	struct frame_header h = {B("trace"), 5, B("id\0x"), 4};

	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)i;
	/* payload sizes around the varint steps of the total length */
	static const size_t plens[] = {0, 1, 100, 110, 113, 114, 115, 116, 120, 127, 128,
				       16360, 16370, 16375, 16380, 16384, 20000};
	for (size_t a = 0; a < UNIT_NELEM(plens); a++) {
		struct frame pub = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = 1, .id = 77};
		pub.channel = fb("svc.x", 5);
		pub.reply_to = a % 2 ? fb("_INBOX.r", 8) : (struct frame_bytes){0};
		pub.payload = fb(payload, plens[a]);
		/* the PUB as a client sends it, decoded as the broker would */
		size_t pn = frame_encode(&pub, &h, a % 3 ? 1 : 0, out);
		static uint8_t pubbytes[40000];
		memcpy(pubbytes, out, pn);
		struct frame dp;
		CU_ASSERT_EQUAL_FATAL(frame_decode(pubbytes, pn, &dp), 0);
		size_t bn = frame_msg_size(&dp);
		static uint8_t body[40000];
		CU_ASSERT_EQUAL_FATAL(frame_msg_encode(&dp, body), bn);
		/* the same body frame_encode writes for a MSG without sid */
		struct frame msg = {.type = IPCBUS__FRAME_TYPE__MSG, .channel = pub.channel,
				    .reply_to = pub.reply_to, .payload = pub.payload};
		CU_ASSERT_EQUAL(frame_size(&msg, &h, a % 3 ? 1 : 0), bn);
		for (size_t s = 0; s < UNIT_NELEM(sids); s++) {
			size_t k = frame_sid_prefix(out, sids[s], bn);
			CU_ASSERT(k <= 2 * FRAME_VARINT_MAX + 1);
			memcpy(out + k, body, bn);
			const uint8_t *fbody;
			size_t flen, need;
			long rc = frame_split(out, k + bn, MAXF, &fbody, &flen, &need);
			CU_ASSERT_EQUAL_FATAL(rc, (long)(k + bn));
			struct frame f;
			CU_ASSERT_EQUAL_FATAL(decode_both(fbody, flen, &f), 0);
			CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__MSG);
			CU_ASSERT_TRUE(f.has_sid);
			CU_ASSERT_EQUAL(f.sid, sids[s]);
			CU_ASSERT_FALSE(f.has_id);
			CU_ASSERT_TRUE(bytes_eq(&f.channel, &pub.channel));
			CU_ASSERT_TRUE(bytes_eq(&f.reply_to, &pub.reply_to));
			CU_ASSERT_TRUE(bytes_eq(&f.payload, &pub.payload));
			CU_ASSERT_EQUAL(f.nheaders, a % 3 ? 1 : 0);
			CU_ASSERT_EQUAL(f.header_bytes, dp.header_bytes);
		}
	}
}

/* HELLO, WELCOME and ERR through protobuf-c's nested messages. */
/* Bridge links: BRIDGE (field 16, a two-byte tag) and a forwarded MSG
 * (the per-link prefix with origin, seq, hops and groups in front of the
 * shared body), as protobuf-c reads them. */
static void test_bridge_frames(void)
{
	struct buf b;
	const uint8_t *body;
	size_t blen, need;
	struct frame f;

	buf_init(&b, 1 << 20);
	Ipcbus__Bridge m = IPCBUS__BRIDGE__INIT;
	m.has_root = 1;
	m.root.data = (uint8_t *)"00ab";
	m.root.len = 4;
	m.has_dist = 1;
	m.dist = 3;
	m.has_parent = m.parent = 1;
	m.has_max_payload = 1;
	m.max_payload = 1 << 20;
	CU_ASSERT_EQUAL_FATAL(frame_append_bridge(&b, &m), 0);
	CU_ASSERT_FATAL(frame_split(buf_rptr(&b), buf_len(&b), MAXF, &body, &blen, &need) > 0);
	CU_ASSERT_EQUAL_FATAL(decode_both(body, blen, &f), 0);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__BRIDGE);
	Ipcbus__Bridge *u = frame_unpack_bridge(&f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT(u->root.len == 4 && memcmp(u->root.data, "00ab", 4) == 0);
	CU_ASSERT_EQUAL(u->dist, 3);
	CU_ASSERT(u->parent);
	CU_ASSERT_FALSE(u->reset);
	CU_ASSERT_EQUAL(u->max_payload, 1 << 20);
	ipcbus__bridge__free_unpacked(u, NULL);
	buf_consume(&b, buf_len(&b));

	/* a forwarded MSG: prefix + shared body */
	struct frame pub = {.type = IPCBUS__FRAME_TYPE__PUB,
			    .channel = {(const uint8_t *)"a.b", 3, 1},
			    .payload = {(const uint8_t *)"hi", 2, 1}};
	uint8_t shared[64], pre[4 * FRAME_VARINT_MAX + 4 + 64 + 2 * (256 + FRAME_VARINT_MAX + 1)];
	size_t n = frame_msg_encode(&pub, shared);
	CU_ASSERT_EQUAL(n, frame_msg_size(&pub));
	struct frame_bytes origin = {(const uint8_t *)"feed", 4, 1};
	struct frame_bytes groups[2] = {{(const uint8_t *)"g1", 2, 1}, {(const uint8_t *)"w", 1, 1}};
	size_t k = frame_forward_prefix(pre, &origin, 300, 2, groups, 2, n);
	uint8_t whole[512];
	memcpy(whole, pre, k);
	memcpy(whole + k, shared, n);
	CU_ASSERT_FATAL(frame_split(whole, k + n, MAXF, &body, &blen, &need) == (long)(k + n));
	CU_ASSERT_EQUAL_FATAL(decode_both(body, blen, &f), 0);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__MSG);
	CU_ASSERT(f.origin.len == 4 && memcmp(f.origin.p, "feed", 4) == 0);
	CU_ASSERT(f.has_seq && f.seq == 300);
	CU_ASSERT(f.has_hops && f.hops == 2);
	CU_ASSERT_EQUAL(f.ngroups, 2);
	CU_ASSERT_FALSE(f.has_sid);
	size_t pos = 0;
	struct frame_bytes g;
	CU_ASSERT_FATAL(frame_group_next(&f, &pos, &g));
	CU_ASSERT(g.len == 2 && memcmp(g.p, "g1", 2) == 0);
	CU_ASSERT_FATAL(frame_group_next(&f, &pos, &g));
	CU_ASSERT(g.len == 1 && g.p[0] == 'w');
	CU_ASSERT_FALSE(frame_group_next(&f, &pos, &g));
	Ipcbus__Frame *pm = ipcbus__frame__unpack(NULL, blen, body);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pm);
	CU_ASSERT_EQUAL(pm->seq, 300);
	CU_ASSERT_EQUAL(pm->hops, 2);
	CU_ASSERT_EQUAL(pm->n_groups, 2);
	CU_ASSERT(pm->payload.len == 2 && memcmp(pm->payload.data, "hi", 2) == 0);
	ipcbus__frame__free_unpacked(pm, NULL);
	buf_fini(&b);
}

static void test_nested(void)
{
	struct buf b;
	const uint8_t *body;
	size_t blen, need;
	struct frame f;
	long rc;

	buf_init(&b, 1 << 20);
	Ipcbus__Hello h = IPCBUS__HELLO__INIT;
	h.version = 1;
	h.has_name = 1;
	h.name.data = (uint8_t *)"cli\0ent";
	h.name.len = 7;
	h.has_pid = 1;
	h.pid = 31337;
	h.has_token = 1;
	h.token.data = (uint8_t *)"s3cret";
	h.token.len = 6;
	CU_ASSERT_EQUAL_FATAL(frame_append_hello(&b, 5, &h), 0);
	rc = frame_split(buf_rptr(&b), buf_len(&b), MAXF, &body, &blen, &need);
	CU_ASSERT_FATAL(rc > 0);
	CU_ASSERT_EQUAL_FATAL(decode_both(body, blen, &f), 0);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__HELLO);
	CU_ASSERT_EQUAL(f.id, 5);
	Ipcbus__Hello *uh = frame_unpack_hello(&f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(uh);
	CU_ASSERT_EQUAL(uh->version, 1);
	CU_ASSERT_EQUAL(uh->name.len, 7);
	CU_ASSERT_EQUAL(memcmp(uh->name.data, "cli\0ent", 7), 0);
	CU_ASSERT_EQUAL(uh->pid, 31337);
	CU_ASSERT_EQUAL(uh->token.len, 6);
	ipcbus__hello__free_unpacked(uh, NULL);
	CU_ASSERT_PTR_NULL(frame_unpack_welcome(&f));
	CU_ASSERT_PTR_NULL(frame_unpack_error(&f));
	buf_consume(&b, (size_t)rc);

	/* a big hello: packed through the heap */
	static uint8_t bigname[5000];
	memset(bigname, 'n', sizeof bigname);
	h.name.data = bigname;
	h.name.len = sizeof bigname;
	CU_ASSERT_EQUAL_FATAL(frame_append_hello(&b, 6, &h), 0);
	rc = frame_split(buf_rptr(&b), buf_len(&b), MAXF, &body, &blen, &need);
	CU_ASSERT_FATAL(rc > 0);
	CU_ASSERT_EQUAL_FATAL(frame_decode(body, blen, &f), 0);
	uh = frame_unpack_hello(&f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(uh);
	CU_ASSERT_EQUAL(uh->name.len, sizeof bigname);
	ipcbus__hello__free_unpacked(uh, NULL);
	buf_consume(&b, (size_t)rc);

	Ipcbus__Welcome wl = IPCBUS__WELCOME__INIT;
	wl.version = 1;
	wl.has_server_id = 1;
	wl.server_id.data = (uint8_t *)"srv";
	wl.server_id.len = 3;
	wl.has_max_payload = 1;
	wl.max_payload = 1 << 20;
	wl.has_max_header_bytes = 1;
	wl.max_header_bytes = 65536;
	wl.has_max_subscriptions = 1;
	wl.max_subscriptions = 10000;
	wl.has_ping_interval_ms = 1;
	wl.ping_interval_ms = 30000;
	wl.has_client_id = 1;
	wl.client_id = UINT64_MAX;
	CU_ASSERT_EQUAL_FATAL(frame_append_welcome(&b, 5, &wl), 0);
	rc = frame_split(buf_rptr(&b), buf_len(&b), MAXF, &body, &blen, &need);
	CU_ASSERT_FATAL(rc > 0);
	CU_ASSERT_EQUAL_FATAL(decode_both(body, blen, &f), 0);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__WELCOME);
	Ipcbus__Welcome *uw = frame_unpack_welcome(&f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(uw);
	CU_ASSERT_EQUAL(uw->version, 1);
	CU_ASSERT_EQUAL(uw->max_payload, 1 << 20);
	CU_ASSERT_EQUAL(uw->max_header_bytes, 65536);
	CU_ASSERT_EQUAL(uw->max_subscriptions, 10000);
	CU_ASSERT_EQUAL(uw->ping_interval_ms, 30000);
	CU_ASSERT_EQUAL(uw->client_id, UINT64_MAX);
	CU_ASSERT_EQUAL(uw->server_id.len, 3);
	ipcbus__welcome__free_unpacked(uw, NULL);
	CU_ASSERT_PTR_NULL(frame_unpack_hello(&f));
	buf_consume(&b, (size_t)rc);

	/* errors: recoverable, closing, fatal; with and without text */
	static const struct {
		int code, fatal;
		const char *text;
	} errs[] = {
		{IPCBUS__ERR_CODE__E_INVALID_CHANNEL, 0, "bad channel"},
		{IPCBUS__ERR_CODE__E_SLOW_CONSUMER, 1, "slow"},
		{IPCBUS__ERR_CODE__E_AUTH, 2, NULL},
	};
	for (size_t i = 0; i < UNIT_NELEM(errs); i++) {
		CU_ASSERT_EQUAL_FATAL(frame_append_error(&b, 40 + i, errs[i].code, errs[i].fatal,
							 errs[i].text), 0);
		rc = frame_split(buf_rptr(&b), buf_len(&b), MAXF, &body, &blen, &need);
		CU_ASSERT_FATAL(rc > 0);
		CU_ASSERT_EQUAL_FATAL(decode_both(body, blen, &f), 0);
		CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__ERR);
		CU_ASSERT_EQUAL(f.id, 40 + i);
		Ipcbus__Error *ue = frame_unpack_error(&f);
		CU_ASSERT_PTR_NOT_NULL_FATAL(ue);
		CU_ASSERT_EQUAL(ue->code, errs[i].code);
		CU_ASSERT_EQUAL(!!ue->fatal, errs[i].fatal == 2);
		/* both flags are written, and at most one is true: a fatal
		 * ERR is not `closing` (that would allow a reconnect) */
		CU_ASSERT(ue->has_fatal && ue->has_closing);
		CU_ASSERT_EQUAL(!!ue->closing, errs[i].fatal == 1);
		CU_ASSERT_EQUAL(!!ue->has_text, errs[i].text != NULL);
		if (errs[i].text && ue->has_text) {
			CU_ASSERT_EQUAL(ue->text.len, strlen(errs[i].text));
			CU_ASSERT_EQUAL(memcmp(ue->text.data, errs[i].text, ue->text.len), 0);
		}
		ipcbus__error__free_unpacked(ue, NULL);
		buf_consume(&b, (size_t)rc);
	}
	CU_ASSERT_EQUAL(buf_len(&b), 0);

	/* a nested message that does not unpack */
	struct frame bad = {.type = IPCBUS__FRAME_TYPE__HELLO};
	bad.hello = fb("\xff", 1);
	CU_ASSERT_PTR_NULL(frame_unpack_hello(&bad));
	bad.hello = fb("", 0); /* version missing */
	CU_ASSERT_PTR_NULL(frame_unpack_hello(&bad));
	bad.welcome = fb("\x0a", 1);
	CU_ASSERT_PTR_NULL(frame_unpack_welcome(&bad));
	bad.error = fb("\x12\x01x", 3); /* code missing */
	CU_ASSERT_PTR_NULL(frame_unpack_error(&bad));

	/* a full buffer refuses the frame and stays as it was */
	struct buf small;
	buf_init(&small, 8);
	CU_ASSERT_EQUAL(frame_append_error(&small, 1, 1, 2, "too long for eight bytes"), -ENOBUFS);
	CU_ASSERT_EQUAL(buf_len(&small), 0);
	buf_fini(&small);
	buf_fini(&b);
}

static void test_type_names(void)
{
	CU_ASSERT_STRING_EQUAL(frame_type_name(IPCBUS__FRAME_TYPE__PUB), "PUB");
	CU_ASSERT_STRING_EQUAL(frame_type_name(IPCBUS__FRAME_TYPE__ERR), "ERR");
	CU_ASSERT_STRING_EQUAL(frame_type_name(IPCBUS__FRAME_TYPE__HELLO), "HELLO");
	CU_ASSERT_STRING_EQUAL(frame_type_name(-1), "UNKNOWN");
	CU_ASSERT_STRING_EQUAL(frame_type_name(10), "BRIDGE");
	CU_ASSERT_STRING_EQUAL(frame_type_name(11), "UNKNOWN");
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"varints", test_varint},
		{"split: partial, merged and random reads", test_split},
		{"split: limits and malformed prefixes", test_split_limits},
		{"round trip of every type", test_roundtrip_types},
		{"bridge frames", test_bridge_frames},
		{"empty vs absent", test_empty_vs_absent},
		{"protobuf-c packs, frame_decode reads", test_pb_to_frame},
		{"field order, unknown fields, last wins", test_wire_variants},
		{"frame_type_of without a type", test_type_of_none},
		{"malformed frames", test_malformed},
		{"headers without key or value", test_incomplete_headers},
		{"header keys", test_header_keys},
		{"padded header fields", test_padded_headers},
		{"sid prefix and shared MSG body", test_sid_prefix},
		{"nested hello, welcome, error", test_nested},
		{"type names", test_type_names},
	};
	return unit_run("frame", cases, UNIT_NELEM(cases));
}
