/*
 * frame.h: the wire format of ipcbus frames.
 *
 * A frame is one `ipcbus.Frame` protobuf message (proto/ipcbus.proto).  On
 * byte streams each frame is preceded by its length as a varint, exactly like
 * protobuf's writeDelimitedTo(); on datagram transports one datagram is one
 * frame.
 *
 * The hot frames (PUB, MSG) are read and written here directly in the
 * protobuf wire format, without allocation: frame_decode() fills a view whose
 * pointers point into the input bytes, and frame_encode() writes a frame from
 * such a view.  Both are checked against the protobuf-c generated code by the
 * unit tests and fuzzed.  The nested messages (Hello, Welcome, Error) stay
 * bytes here and are packed and unpacked by protobuf-c (frame_pack_* below).
 */
#ifndef IPCBUS_FRAME_H
#define IPCBUS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#include "buf.h"
#include "ipcbus.pb-c.h"

#define FRAME_VARINT_MAX 10

/* Field numbers of ipcbus.Frame (keep in step with ipcbus.proto). */
enum {
	FRAME_F_TYPE = 1,
	FRAME_F_ID = 2,
	FRAME_F_CHANNEL = 3,
	FRAME_F_REPLY_TO = 4,
	FRAME_F_PAYLOAD = 5,
	FRAME_F_HEADERS = 6,
	FRAME_F_SID = 7,
	FRAME_F_QUEUE = 8,
	FRAME_F_HELLO = 9,
	FRAME_F_WELCOME = 10,
	FRAME_F_ERROR = 11,
	/* bridge links only (docs/protocol.md, Bridges) */
	FRAME_F_ORIGIN = 12,
	FRAME_F_SEQ = 13,
	FRAME_F_HOPS = 14,
	FRAME_F_GROUPS = 15,
	FRAME_F_BRIDGE = 16,
	FRAME_F_LAST = 16,
};

/* A byte range inside a frame (or, when encoding, anywhere). */
struct frame_bytes {
	const uint8_t *p;
	size_t len;
	int set; /* the field was present (an empty value is still present) */
};

/* A decoded frame: a view into the bytes it was decoded from. */
struct frame {
	int type;         /* IPCBUS__FRAME_TYPE__*; 0 when missing */
	int has_id, has_sid;
	uint64_t id;
	uint64_t sid;
	struct frame_bytes channel, reply_to, payload, queue;
	struct frame_bytes hello, welcome, error; /* nested messages, packed */
	/* a forwarded message (bridge links): who published it, its number
	 * there, the links it crossed, the queue groups to serve */
	struct frame_bytes origin, bridge;
	int has_seq, has_hops;
	uint64_t seq, hops;
	uint32_t ngroups;        /* read with frame_group_next() */
	/* headers: counted here, read with frame_header_next() */
	uint32_t nheaders;
	/* well-formed Header fields without a key or a value: not counted in
	 * nheaders nor returned by frame_header_next(); a content error the
	 * receiver refuses (the broker: E_INVALID) */
	uint32_t nheaders_incomplete;
	size_t header_bytes; /* headers as encoded: what max-header-bytes limits */
	const uint8_t *body; /* the whole frame, for frame_header_next() */
	size_t body_len;
};

struct frame_header {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
};

/* Encode v as a varint at p (FRAME_VARINT_MAX bytes of room).  Returns the
 * number of bytes written. */
size_t frame_varint_put(uint8_t *p, uint64_t v);

/* Length of v as a varint. */
size_t frame_varint_len(uint64_t v);

/* Decode a varint from p[0..len).  Returns the bytes used, 0 when more bytes
 * are needed, -1 when it is malformed (over 10 bytes). */
int frame_varint_get(const uint8_t *p, size_t len, uint64_t *v);

/* Find the first length-delimited frame in p[0..len).
 *   > 0: a whole frame is there: *body and *body_len are set, the return
 *        value is how many bytes it takes with its prefix;
 *     0: more bytes are needed; *need is the total the frame will take once
 *        its length is known (else 0), already checked against max;
 *   PROTO_EFRAME: the announced length is over max (nothing is allocated);
 *   PROTO_EPROTO: the length prefix is malformed. */
long frame_split(const uint8_t *p, size_t len, size_t max,
		 const uint8_t **body, size_t *body_len, size_t *need);

/* Decode one frame body into *f (a view into body).  Checks the wire format
 * of every field (a known field with another wire type is malformed) and
 * that `type` is present; headers without a key or a value are counted in
 * f->nheaders_incomplete, not refused here.  Unknown fields are skipped as
 * protobuf says, except groups (wire types 3 and 4), which are malformed
 * here as in protobuf-c.  0 or PROTO_EPROTO. */
int frame_decode(const uint8_t *body, size_t len, struct frame *f);

/* The type of the frame body[0..len) without decoding it: for a frame
 * frame_decode() accepts, the f->type it would give (the last `type`
 * field, as protobuf says; the broker's MSGs have theirs after the sid or
 * the forwarding fields); 0 when there is none or the fields do not
 * parse.  Cheap: fields are skipped by their lengths, the payload is not
 * read (eviction sorts a whole backlog with it, broker/conn.c). */
int frame_type_of(const uint8_t *body, size_t len);

/* Iterate over the headers of a decoded frame (the complete ones): *pos
 * starts at 0.  Returns 1 and *h, or 0 at the end (*h untouched). */
int frame_header_next(const struct frame *f, size_t *pos, struct frame_header *h);

/* Iterate over the `groups` of a decoded frame: *pos starts at 0.  1 and
 * *g, or 0 at the end. */
int frame_group_next(const struct frame *f, size_t *pos, struct frame_bytes *g);

/* What a header key may be (docs/protocol.md, Header): one or more bytes of
 * visible ASCII (0x21-0x7e) other than ':' and '=', so that every key can
 * be shown as "KEY: VALUE" and given as -H KEY=VALUE.  Keys beginning with
 * "ipcbus-" are reserved: only those the protocol lists (ipcbus-exit-status,
 * ipcbus-signal, ipcbus-error) may be sent by clients. */
enum { FRAME_KEY_OK = 0, FRAME_KEY_BAD = 1, FRAME_KEY_RESERVED = 2 };
int frame_header_key_check(const uint8_t *key, size_t len);

/* Bytes one header takes in a frame (its field, tag and lengths included):
 * what max-header-bytes counts, so that max-payload + max-header-bytes +
 * 1 KiB bounds every frame a client may send. */
size_t frame_header_cost(size_t key_len, size_t value_len);

/* Encoded size of f with the given headers (f->nheaders is ignored). */
size_t frame_size(const struct frame *f, const struct frame_header *h, size_t nh);

/* Write f at dst (frame_size() bytes); returns the bytes written. */
size_t frame_encode(const struct frame *f, const struct frame_header *h, size_t nh,
		    uint8_t *dst);

/* Append f to b with its length prefix.  0, -ENOBUFS, -ENOMEM. */
int frame_append(struct buf *b, const struct frame *f, const struct frame_header *h,
		 size_t nh);

/* The per-subscription part of a MSG: the length prefix of the whole frame
 * and the sid field, to be written in front of a shared body of body_len
 * bytes (frame_encode() of the MSG without sid).  out needs 2 *
 * FRAME_VARINT_MAX + 1 bytes.  Returns the bytes written. */
size_t frame_sid_prefix(uint8_t *out, uint64_t sid, size_t body_len);

/* The per-link part of a forwarded message (bridge links): the length
 * prefix of the whole frame, origin, seq, hops and the queue groups, to be
 * written in front of the shared MSG body of body_len bytes.  out needs
 * 4 * FRAME_VARINT_MAX + 4 bytes plus origin and every group with
 * FRAME_VARINT_MAX + 1 each.  Returns the bytes written. */
size_t frame_forward_prefix(uint8_t *out, const struct frame_bytes *origin, uint64_t seq,
			    uint64_t hops, const struct frame_bytes *groups, size_t ngroups,
			    size_t body_len);

/* The shared body of the MSG that delivers a decoded PUB: type MSG, the
 * PUB's channel, reply_to, headers (copied as encoded) and payload, without
 * sid.  frame_msg_size() bytes; frame_msg_encode() returns the bytes written.
 * Each subscriber's copy is frame_sid_prefix() followed by this body. */
size_t frame_msg_size(const struct frame *pub);
size_t frame_msg_encode(const struct frame *pub, uint8_t *dst);

/* Nested messages, through protobuf-c.  The _append functions pack the
 * message and append a whole frame of the given type to b. */
int frame_append_hello(struct buf *b, uint64_t id, const Ipcbus__Hello *h);
int frame_append_welcome(struct buf *b, uint64_t id, const Ipcbus__Welcome *w);
/* fatal: 0 recoverable (both flags false), 1 closing (closing true: may
 * reconnect), 2 fatal (fatal true, closing false: never reconnect) */
int frame_append_error(struct buf *b, uint64_t id, int code, int fatal, const char *text);
/* UDP: the ERR E_COOKIE (closing, no text) that gives a client its cookie. */
int frame_append_cookie(struct buf *b, uint64_t id, const uint8_t *cookie, size_t len);

/* Unpack nested messages of a decoded frame with protobuf-c (NULL when
 * absent or malformed).  Free with the matching protobuf-c free_unpacked. */
Ipcbus__Hello *frame_unpack_hello(const struct frame *f);
Ipcbus__Welcome *frame_unpack_welcome(const struct frame *f);
Ipcbus__Error *frame_unpack_error(const struct frame *f);
Ipcbus__Bridge *frame_unpack_bridge(const struct frame *f);
int frame_append_bridge(struct buf *b, const Ipcbus__Bridge *m);

/* Name of a frame type ("PUB"), for logs and error texts. */
const char *frame_type_name(int type);

#endif
