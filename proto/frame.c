/*
 * frame.c: varint framing and the allocation-free codec of ipcbus.Frame.
 *
 * Protobuf wire format in brief: a message is a sequence of fields, each a
 * varint key (field number << 3 | wire type) followed by a varint (type 0),
 * 8 bytes (1), a varint length and that many bytes (2), or 4 bytes (5).
 * Fields come in any order, a repeated scalar field keeps the last value,
 * unknown fields are skipped.  frame_decode() follows those rules and the
 * unit tests compare it with protobuf-c's own unpacker.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "proto.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

size_t frame_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

size_t frame_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

int frame_varint_get(const uint8_t *p, size_t len, uint64_t *v)
{
	uint64_t r = 0;
	for (size_t i = 0; i < FRAME_VARINT_MAX; i++) {
		if (i >= len)
			return 0;
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			/* the tenth byte may only carry the top bit */
			if (i == FRAME_VARINT_MAX - 1 && p[i] > 1)
				return -1;
			*v = r;
			return (int)i + 1;
		}
	}
	return -1;
}

long frame_split(const uint8_t *p, size_t len, size_t max,
		 const uint8_t **body, size_t *body_len, size_t *need)
{
	uint64_t n;
	int k = frame_varint_get(p, len, &n);

	*need = 0;
	if (k < 0)
		return PROTO_EPROTO;
	if (k == 0)
		return 0;
	if (n > max)
		return PROTO_EFRAME;
	if (len - (size_t)k < n) {
		*need = (size_t)k + (size_t)n;
		return 0;
	}
	*body = p + k;
	*body_len = (size_t)n;
	return (long)(k + (size_t)n);
}

/* Read the key, and for wire type 2 the length, of the field at p[*i].
 * Returns 0, or -1 when malformed or running past len. */
static int frame_field(const uint8_t *p, size_t len, size_t *i, uint32_t *field, int *wt,
		       uint64_t *val, const uint8_t **bytes)
{
	uint64_t key;
	int k = frame_varint_get(p + *i, len - *i, &key);
	if (k <= 0)
		return -1;
	*i += (size_t)k;
	if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
		return -1;
	*field = (uint32_t)(key >> 3);
	*wt = (int)(key & 7);
	switch (*wt) {
	case WT_VARINT:
		k = frame_varint_get(p + *i, len - *i, val);
		if (k <= 0)
			return -1;
		*i += (size_t)k;
		return 0;
	case WT_I64:
		if (len - *i < 8)
			return -1;
		*i += 8;
		return 0;
	case WT_I32:
		if (len - *i < 4)
			return -1;
		*i += 4;
		return 0;
	case WT_LEN:
		k = frame_varint_get(p + *i, len - *i, val);
		if (k <= 0)
			return -1;
		*i += (size_t)k;
		if (*val > len - *i)
			return -1;
		*bytes = p + *i;
		*i += (size_t)*val;
		return 0;
	default:
		/* groups (3, 4) and the undefined types (6, 7).  Groups are
		 * refused rather than skipped, known field or not: the schema
		 * has none and never will (they are deprecated), and
		 * protobuf-c, which unpacks the nested messages here and in
		 * clients, refuses them too, so skipping them in Frame alone
		 * would accept in one place what is refused in the other
		 * (docs/protocol.md, Unknown fields) */
		return -1;
	}
}

/* Parse one Header message: 0 when it has both fields (required), 1 when
 * it is well-formed but lacks one (a content error: the receiver refuses
 * it with E_INVALID), -1 when it is malformed. */
static int frame_header_parse(const uint8_t *p, size_t len, struct frame_header *h)
{
	size_t i = 0;
	int has_key = 0, has_value = 0;

	while (i < len) {
		uint32_t field;
		int wt;
		uint64_t v = 0;
		const uint8_t *b = NULL;
		if (frame_field(p, len, &i, &field, &wt, &v, &b) < 0)
			return -1;
		if (field == 1 || field == 2) {
			if (wt != WT_LEN)
				return -1;
			if (field == 1) {
				h->key = b;
				h->key_len = (size_t)v;
				has_key = 1;
			} else {
				h->value = b;
				h->value_len = (size_t)v;
				has_value = 1;
			}
		}
	}
	return has_key && has_value ? 0 : 1;
}

static void frame_set_bytes(struct frame_bytes *fb, const uint8_t *b, uint64_t n)
{
	fb->p = b;
	fb->len = (size_t)n;
	fb->set = 1;
}

int frame_decode(const uint8_t *body, size_t len, struct frame *f)
{
	size_t i = 0;
	int has_type = 0;

	memset(f, 0, sizeof *f);
	f->body = body;
	f->body_len = len;
	while (i < len) {
		size_t start = i;
		uint32_t field;
		int wt;
		uint64_t v = 0;
		const uint8_t *b = NULL;
		if (frame_field(body, len, &i, &field, &wt, &v, &b) < 0)
			return PROTO_EPROTO;
		if (field > FRAME_F_LAST)
			continue; /* unknown: skipped */
		int want = (field == FRAME_F_TYPE || field == FRAME_F_ID || field == FRAME_F_SID ||
			    field == FRAME_F_SEQ || field == FRAME_F_HOPS)
				   ? WT_VARINT
				   : WT_LEN;
		if (wt != want)
			return PROTO_EPROTO;
		switch (field) {
		case FRAME_F_TYPE:
			/* an enum value the schema does not know is kept as
			 * invalid (-1); the receiver refuses it by name */
			f->type = v <= 1000 ? (int)v : -1;
			has_type = 1;
			break;
		case FRAME_F_ID:
			f->id = v;
			f->has_id = 1;
			break;
		case FRAME_F_SID:
			f->sid = v;
			f->has_sid = 1;
			break;
		case FRAME_F_CHANNEL: frame_set_bytes(&f->channel, b, v); break;
		case FRAME_F_REPLY_TO: frame_set_bytes(&f->reply_to, b, v); break;
		case FRAME_F_PAYLOAD: frame_set_bytes(&f->payload, b, v); break;
		case FRAME_F_QUEUE: frame_set_bytes(&f->queue, b, v); break;
		case FRAME_F_HELLO: frame_set_bytes(&f->hello, b, v); break;
		case FRAME_F_WELCOME: frame_set_bytes(&f->welcome, b, v); break;
		case FRAME_F_ERROR: frame_set_bytes(&f->error, b, v); break;
		case FRAME_F_ORIGIN: frame_set_bytes(&f->origin, b, v); break;
		case FRAME_F_BRIDGE: frame_set_bytes(&f->bridge, b, v); break;
		case FRAME_F_SEQ:
			f->seq = v;
			f->has_seq = 1;
			break;
		case FRAME_F_HOPS:
			f->hops = v;
			f->has_hops = 1;
			break;
		case FRAME_F_GROUPS: f->ngroups++; break;
		case FRAME_F_HEADERS: {
			struct frame_header h;
			int rc = frame_header_parse(b, (size_t)v, &h);
			if (rc < 0)
				return PROTO_EPROTO;
			if (rc == 0)
				f->nheaders++;
			else
				f->nheaders_incomplete++;
			/* the whole field as it is on the wire: tag, length
			 * and message, padded varints included (it is copied
			 * so into a MSG: frame_msg_size() relies on it) */
			f->header_bytes += i - start;
			break;
		}
		}
	}
	return has_type ? 0 : PROTO_EPROTO;
}

int frame_type_of(const uint8_t *body, size_t len)
{
	size_t i = 0;
	int type = 0;

	while (i < len) {
		uint32_t field;
		int wt;
		uint64_t v = 0;
		const uint8_t *b = NULL;
		if (frame_field(body, len, &i, &field, &wt, &v, &b) < 0)
			return 0;
		if (field == FRAME_F_TYPE) {
			/* frame_decode() refuses any other wire type */
			if (wt != WT_VARINT)
				return 0;
			type = v <= 1000 ? (int)v : -1; /* as frame_decode() */
		}
	}
	return type;
}

/* The next length-delimited field numbered `want` of a decoded frame from
 * *pos: 1 with its bytes, or 0 at the end.  The frame was validated by
 * frame_decode(): no error checks needed, but stay safe should a caller
 * pass something else. */
static int frame_next_len(const struct frame *f, size_t *pos, uint32_t want, const uint8_t **p,
			  size_t *len)
{
	while (*pos < f->body_len) {
		uint32_t field;
		int wt;
		uint64_t v = 0;
		const uint8_t *b = NULL;
		if (frame_field(f->body, f->body_len, pos, &field, &wt, &v, &b) < 0)
			return 0;
		if (field == want && wt == WT_LEN) {
			*p = b;
			*len = (size_t)v;
			return 1;
		}
	}
	return 0;
}

int frame_header_next(const struct frame *f, size_t *pos, struct frame_header *h)
{
	const uint8_t *b;
	size_t len;

	while (frame_next_len(f, pos, FRAME_F_HEADERS, &b, &len)) {
		/* *h is written only for a header returned: callers may pass
		 * the slot past their last one */
		struct frame_header t;
		int rc = frame_header_parse(b, len, &t);
		if (rc < 0)
			return 0;
		if (rc == 0) {
			*h = t;
			return 1;
		}
		/* incomplete (nheaders_incomplete): not a header */
	}
	return 0;
}

int frame_group_next(const struct frame *f, size_t *pos, struct frame_bytes *g)
{
	const uint8_t *b;
	size_t len;

	if (!frame_next_len(f, pos, FRAME_F_GROUPS, &b, &len))
		return 0;
	*g = (struct frame_bytes){b, len, 1};
	return 1;
}

int frame_header_key_check(const uint8_t *key, size_t len)
{
	/* the ipcbus- keys the protocol defines (the CLI's exec bridge marks
	 * its replies with them); any client may send these */
	static const char *const listed[] = {"ipcbus-exit-status", "ipcbus-signal",
					     "ipcbus-error"};

	if (len == 0)
		return FRAME_KEY_BAD;
	for (size_t i = 0; i < len; i++)
		if (key[i] < 0x21 || key[i] > 0x7e || key[i] == ':' || key[i] == '=')
			return FRAME_KEY_BAD;
	if (len < 7 || memcmp(key, "ipcbus-", 7) != 0)
		return FRAME_KEY_OK;
	for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
		if (strlen(listed[i]) == len && memcmp(listed[i], key, len) == 0)
			return FRAME_KEY_OK;
	return FRAME_KEY_RESERVED;
}

static size_t frame_len_field_size(uint64_t n)
{
	return 1 + frame_varint_len(n) + n; /* a field number < 16: a one-byte tag */
}

static size_t frame_header_size(const struct frame_header *h)
{
	return frame_len_field_size(h->key_len) + frame_len_field_size(h->value_len);
}

size_t frame_header_cost(size_t key_len, size_t value_len)
{
	struct frame_header h = {.key_len = key_len, .value_len = value_len};
	return frame_len_field_size(frame_header_size(&h));
}

size_t frame_size(const struct frame *f, const struct frame_header *h, size_t nh)
{
	size_t n = 1 + frame_varint_len((uint64_t)f->type);

	if (f->has_id)
		n += 1 + frame_varint_len(f->id);
	if (f->has_sid)
		n += 1 + frame_varint_len(f->sid);
	const struct frame_bytes *fb[] = {&f->channel, &f->reply_to, &f->queue, &f->payload,
					  &f->hello, &f->welcome, &f->error};
	for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++)
		if (fb[i]->set)
			n += frame_len_field_size(fb[i]->len);
	for (size_t i = 0; i < nh; i++)
		n += frame_len_field_size(frame_header_size(&h[i]));
	if (f->bridge.set) /* field 16: a two-byte tag */
		n += 1 + frame_len_field_size(f->bridge.len);
	return n;
}

static uint8_t *frame_put_varint_field(uint8_t *d, uint32_t field, uint64_t v)
{
	d += frame_varint_put(d, (uint64_t)field << 3 | WT_VARINT);
	return d + frame_varint_put(d, v);
}

static uint8_t *frame_put_bytes(uint8_t *d, uint32_t field, const void *p, size_t n)
{
	d += frame_varint_put(d, (uint64_t)field << 3 | WT_LEN);
	d += frame_varint_put(d, n);
	if (n)
		memcpy(d, p, n);
	return d + n;
}

static uint8_t *frame_put_fb(uint8_t *d, uint32_t field, const struct frame_bytes *fb)
{
	return fb->set ? frame_put_bytes(d, field, fb->p, fb->len) : d;
}

size_t frame_encode(const struct frame *f, const struct frame_header *h, size_t nh,
		    uint8_t *dst)
{
	uint8_t *d = dst;

	d = frame_put_varint_field(d, FRAME_F_TYPE, (uint64_t)f->type);
	if (f->has_id)
		d = frame_put_varint_field(d, FRAME_F_ID, f->id);
	if (f->has_sid)
		d = frame_put_varint_field(d, FRAME_F_SID, f->sid);
	d = frame_put_fb(d, FRAME_F_CHANNEL, &f->channel);
	d = frame_put_fb(d, FRAME_F_REPLY_TO, &f->reply_to);
	d = frame_put_fb(d, FRAME_F_QUEUE, &f->queue);
	for (size_t i = 0; i < nh; i++) {
		*d++ = (uint8_t)(FRAME_F_HEADERS << 3 | WT_LEN);
		d += frame_varint_put(d, frame_header_size(&h[i]));
		d = frame_put_bytes(d, 1, h[i].key, h[i].key_len);
		d = frame_put_bytes(d, 2, h[i].value, h[i].value_len);
	}
	d = frame_put_fb(d, FRAME_F_PAYLOAD, &f->payload);
	d = frame_put_fb(d, FRAME_F_HELLO, &f->hello);
	d = frame_put_fb(d, FRAME_F_WELCOME, &f->welcome);
	d = frame_put_fb(d, FRAME_F_ERROR, &f->error);
	d = frame_put_fb(d, FRAME_F_BRIDGE, &f->bridge);
	return (size_t)(d - dst);
}

int frame_append(struct buf *b, const struct frame *f, const struct frame_header *h,
		 size_t nh)
{
	size_t n = frame_size(f, h, nh);
	int rc = buf_reserve(b, n + FRAME_VARINT_MAX);
	if (rc < 0)
		return rc;
	uint8_t *d = buf_wptr(b);
	size_t k = frame_varint_put(d, n);
	frame_encode(f, h, nh, d + k);
	buf_commit(b, k + n);
	return 0;
}

/* The next header field of f as encoded (key, length and message), from
 * *pos: 1 and *field, *len, or 0 at the end. */
static int frame_header_raw(const struct frame *f, size_t *pos, const uint8_t **field,
			    size_t *len)
{
	while (*pos < f->body_len) {
		size_t start = *pos;
		uint32_t num;
		int wt;
		uint64_t v = 0;
		const uint8_t *b = NULL;
		if (frame_field(f->body, f->body_len, pos, &num, &wt, &v, &b) < 0)
			return 0;
		if (num == FRAME_F_HEADERS) {
			*field = f->body + start;
			*len = *pos - start;
			return 1;
		}
	}
	return 0;
}

size_t frame_msg_size(const struct frame *pub)
{
	struct frame m = {.type = IPCBUS__FRAME_TYPE__MSG, .channel = pub->channel,
			  .reply_to = pub->reply_to, .payload = pub->payload};
	/* header_bytes is exactly the header fields as encoded */
	return frame_size(&m, NULL, 0) + pub->header_bytes;
}

size_t frame_msg_encode(const struct frame *pub, uint8_t *dst)
{
	uint8_t *d = dst;

	d = frame_put_varint_field(d, FRAME_F_TYPE, IPCBUS__FRAME_TYPE__MSG);
	d = frame_put_fb(d, FRAME_F_CHANNEL, &pub->channel);
	d = frame_put_fb(d, FRAME_F_REPLY_TO, &pub->reply_to);
	if (pub->header_bytes) { /* every Header field, incomplete ones too */
		size_t pos = 0, len;
		const uint8_t *field;
		while (frame_header_raw(pub, &pos, &field, &len)) {
			memcpy(d, field, len);
			d += len;
		}
	}
	d = frame_put_fb(d, FRAME_F_PAYLOAD, &pub->payload);
	return (size_t)(d - dst);
}

size_t frame_sid_prefix(uint8_t *out, uint64_t sid, size_t body_len)
{
	size_t total = body_len + 1 + frame_varint_len(sid);
	size_t k = frame_varint_put(out, total);
	out[k++] = (uint8_t)(FRAME_F_SID << 3 | WT_VARINT);
	return k + frame_varint_put(out + k, sid);
}

size_t frame_forward_prefix(uint8_t *out, const struct frame_bytes *origin, uint64_t seq,
			    uint64_t hops, const struct frame_bytes *groups, size_t ngroups,
			    size_t body_len)
{
	size_t fields = frame_len_field_size(origin->len) + 1 + frame_varint_len(seq) + 1 +
			frame_varint_len(hops);
	for (size_t i = 0; i < ngroups; i++)
		fields += frame_len_field_size(groups[i].len);
	size_t k = frame_varint_put(out, fields + body_len);
	uint8_t *d = out + k;
	d = frame_put_bytes(d, FRAME_F_ORIGIN, origin->p, origin->len);
	d = frame_put_varint_field(d, FRAME_F_SEQ, seq);
	d = frame_put_varint_field(d, FRAME_F_HOPS, hops);
	for (size_t i = 0; i < ngroups; i++)
		d = frame_put_bytes(d, FRAME_F_GROUPS, groups[i].p, groups[i].len);
	return (size_t)(d - out);
}

/* Append a frame of `type` whose only content is one packed nested message. */
static int frame_append_nested(struct buf *b, int type, uint64_t id, uint32_t field,
			       const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t stackbuf[512];
	uint8_t *p = n <= sizeof stackbuf ? stackbuf : malloc(n);
	if (!p)
		return -ENOMEM;
	protobuf_c_message_pack(m, p);

	struct frame f = {.type = type, .has_id = 1, .id = id};
	struct frame_bytes *fb = field == FRAME_F_HELLO     ? &f.hello
				 : field == FRAME_F_WELCOME ? &f.welcome
				 : field == FRAME_F_BRIDGE  ? &f.bridge
							    : &f.error;
	fb->p = p;
	fb->len = n;
	fb->set = 1;
	int rc = frame_append(b, &f, NULL, 0);
	if (p != stackbuf)
		free(p);
	return rc;
}

int frame_append_bridge(struct buf *b, const Ipcbus__Bridge *m)
{
	return frame_append_nested(b, IPCBUS__FRAME_TYPE__BRIDGE, 0, FRAME_F_BRIDGE, &m->base);
}

int frame_append_hello(struct buf *b, uint64_t id, const Ipcbus__Hello *h)
{
	return frame_append_nested(b, IPCBUS__FRAME_TYPE__HELLO, id, FRAME_F_HELLO, &h->base);
}

int frame_append_welcome(struct buf *b, uint64_t id, const Ipcbus__Welcome *w)
{
	return frame_append_nested(b, IPCBUS__FRAME_TYPE__WELCOME, id, FRAME_F_WELCOME, &w->base);
}

int frame_append_error(struct buf *b, uint64_t id, int code, int fatal, const char *text)
{
	Ipcbus__Error e = IPCBUS__ERROR__INIT;
	e.code = (Ipcbus__ErrCode)code;
	/* at most one flag is true: `closing` means "reconnecting is
	 * allowed", so a fatal ERR must not carry it (a client that reads
	 * `closing` first would reconnect) */
	e.has_fatal = 1;
	e.fatal = fatal >= 2;
	e.has_closing = 1;
	e.closing = fatal == 1;
	if (text) {
		e.has_text = 1;
		e.text.data = (uint8_t *)(uintptr_t)text;
		e.text.len = strlen(text);
	}
	return frame_append_nested(b, IPCBUS__FRAME_TYPE__ERR, id, FRAME_F_ERROR, &e.base);
}

int frame_append_cookie(struct buf *b, uint64_t id, const uint8_t *cookie, size_t len)
{
	Ipcbus__Error e = IPCBUS__ERROR__INIT;
	e.code = IPCBUS__ERR_CODE__E_COOKIE;
	e.has_closing = 1;
	e.closing = 1;
	e.has_cookie = 1;
	e.cookie.data = (uint8_t *)(uintptr_t)cookie;
	e.cookie.len = len;
	return frame_append_nested(b, IPCBUS__FRAME_TYPE__ERR, id, FRAME_F_ERROR, &e.base);
}

Ipcbus__Hello *frame_unpack_hello(const struct frame *f)
{
	return f->hello.set ? ipcbus__hello__unpack(NULL, f->hello.len, f->hello.p) : NULL;
}

Ipcbus__Welcome *frame_unpack_welcome(const struct frame *f)
{
	return f->welcome.set ? ipcbus__welcome__unpack(NULL, f->welcome.len, f->welcome.p) : NULL;
}

Ipcbus__Error *frame_unpack_error(const struct frame *f)
{
	return f->error.set ? ipcbus__error__unpack(NULL, f->error.len, f->error.p) : NULL;
}

Ipcbus__Bridge *frame_unpack_bridge(const struct frame *f)
{
	return f->bridge.set ? ipcbus__bridge__unpack(NULL, f->bridge.len, f->bridge.p) : NULL;
}

const char *frame_type_name(int type)
{
	static const char *const names[] = {"NONE", "HELLO", "WELCOME", "PUB", "SUB",
					    "UNSUB", "MSG", "PING", "PONG", "ERR", "BRIDGE"};
	if (type >= 0 && (size_t)type < sizeof names / sizeof names[0])
		return names[type];
	return "UNKNOWN";
}
