/*
 * conn_in.c: the input of the connection: reading from the transport into
 * `in`, splitting and handling the broker's frames (the frame switch: MSG,
 * PING, PONG, ERR, WELCOME), and the retired blocks of the input buffer.
 *
 * Input: up to CONN_READ_CHUNK bytes per read, every complete frame handled
 * in place: the ipcbus_msg of a callback points into `in`.  A callback may
 * itself dispatch (ipcbus_request() inside a handler), so a nested read must
 * not move bytes that an outer frame still points to: when a frame loop is
 * running on `in` (in_pinned), the nested read first moves the unhandled
 * bytes to a fresh buffer and retires the old block until the outermost
 * loop returns; the outer loop sees in_gen change and stops, the frames it
 * did not reach having been handled by the nested one, in order.
 *
 * A datagram transport (TR_DGRAM: udp) reads one datagram, one frame, per
 * call, into room for the largest, up to CONN_DGRAM_ROUNDS a dispatch.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "client.h"

#define CONN_READ_ROUNDS 4             /* reads per dispatch, then yield */
#define CONN_DGRAM_ROUNDS 64           /* the same for datagrams, one a read */

/* --- the input buffer --- */

/* Replace in.data by a fresh block, keeping the unhandled bytes when keep;
 * the old block stays allocated until no frame loop runs. */
int conn_in_retire(struct ipcbus *c, int keep)
{
	struct buf fresh;
	int rc;

	if (c->nretired == c->retired_cap) {
		size_t cap = c->retired_cap ? c->retired_cap * 2 : 4;
		void **r = realloc(c->retired, cap * sizeof *r);
		if (!r)
			return -ENOMEM;
		c->retired = r;
		c->retired_cap = cap;
	}
	buf_init(&fresh, c->in.max);
	if (keep && buf_len(&c->in)) {
		rc = buf_append(&fresh, buf_rptr(&c->in), buf_len(&c->in));
		if (rc < 0)
			return rc;
	}
	c->retired[c->nretired++] = c->in.data;
	c->in = fresh;
	c->in_gen++;
	c->in_pinned = 0;
	return 0;
}

/* --- frames from the broker --- */

static int conn_map_err(int code)
{
	switch (code) {
	case IPCBUS__ERR_CODE__E_PROTOCOL:
	case IPCBUS__ERR_CODE__E_NO_HELLO: return IPCBUS_EPROTO;
	case IPCBUS__ERR_CODE__E_FRAME_TOO_BIG: return IPCBUS_EFRAME;
	case IPCBUS__ERR_CODE__E_VERSION: return IPCBUS_EVERSION;
	case IPCBUS__ERR_CODE__E_AUTH:
	case IPCBUS__ERR_CODE__E_PERMISSION: return IPCBUS_EPERM;
	case IPCBUS__ERR_CODE__E_INVALID_CHANNEL: return IPCBUS_ECHANNEL;
	case IPCBUS__ERR_CODE__E_PAYLOAD_TOO_BIG:
	case IPCBUS__ERR_CODE__E_HEADERS_TOO_BIG: return IPCBUS_ETOOBIG;
	case IPCBUS__ERR_CODE__E_UNKNOWN_SID: return IPCBUS_ENOSUB;
	case IPCBUS__ERR_CODE__E_NO_RESPONDERS: return IPCBUS_ENORESPONDERS;
	default: return IPCBUS_ESERVER;
	}
}

static void conn_on_err(struct ipcbus *c, const struct frame *f)
{
	Ipcbus__Error *e = frame_unpack_error(f);

	if (!e) {
		conn_drop(c, IPCBUS_EPROTO, "the broker sent an ERR that does not decode", 0);
		return;
	}
	int code = (int)e->code;
	/* The flags say it; the code ranges of the schema are the fallback
	 * for a broker that sends no flags.  `fatal` alone decides whether we
	 * may reconnect: an older broker sets closing on a fatal ERR as well,
	 * a newer one only fatal, and a closing ERR without fatal (full,
	 * idle, slow consumer) allows a reconnect whatever its code. */
	int fatal = e->has_fatal ? e->fatal : code >= 1 && code <= 5;
	int closing = e->has_closing ? e->closing : code >= 6 && code <= 8;
	int err = conn_map_err(code);
	if (c->dgram && dgram_on_err(c, code, e)) {
		/* E_COOKIE, E_NO_SESSION: steps of a datagram session */
		protobuf_c_message_free_unpacked(&e->base, NULL);
		return;
	}
	if (code == IPCBUS__ERR_CODE__E_NO_RESPONDERS) {
		/* the answer to a request, not an error of the connection */
		protobuf_c_message_free_unpacked(&e->base, NULL);
		if (f->has_id)
			req_on_err(c, f->id, IPCBUS_ENORESPONDERS);
		return;
	}
	if (e->has_text)
		conn_set_text(c, e->text.data, e->text.len);
	else
		snprintf(c->last_error, sizeof c->last_error, "%s", ipcbus_strerror(err));
	protobuf_c_message_free_unpacked(&e->base, NULL);

	if (fatal || closing) {
		conn_drop(c, err, c->last_error, fatal);
		return;
	}
	if (!c->first_err)
		c->first_err = err;
	if (f->has_id) {
		req_on_err(c, f->id, err);
		sub_on_err(c, f->id, code);
		if (c->dgram)
			dgram_on_answer(c, f->id);
	}
	conn_event(c, IPCBUS_EV_ERROR, err, c->last_error);
}

static void conn_on_welcome(struct ipcbus *c, const struct frame *f)
{
	Ipcbus__Welcome *w = frame_unpack_welcome(f);

	if (c->dgram && c->state == CONN_READY && w) {
		/* a HELLO resent was answered too */
		protobuf_c_message_free_unpacked(&w->base, NULL);
		return;
	}
	if (c->state != CONN_HELLO || !w) {
		if (w)
			protobuf_c_message_free_unpacked(&w->base, NULL);
		conn_drop(c, IPCBUS_EPROTO, "unexpected WELCOME from the broker", 0);
		return;
	}
	if (w->version != IPCBUS_PROTOCOL_VERSION) {
		snprintf(c->last_error, sizeof c->last_error,
			 "the broker speaks protocol version %u, this client %d", w->version,
			 IPCBUS_PROTOCOL_VERSION);
		protobuf_c_message_free_unpacked(&w->base, NULL);
		conn_drop(c, IPCBUS_EVERSION, c->last_error, 1);
		return;
	}
	c->max_payload = w->has_max_payload ? w->max_payload : 0;
	c->max_header_bytes = w->has_max_header_bytes ? w->max_header_bytes : 0;
	c->max_subscriptions = w->has_max_subscriptions ? w->max_subscriptions : 0;
	c->ping_interval_ms = w->has_ping_interval_ms ? w->ping_interval_ms : 0;
	uint32_t lease = w->has_lease_ms ? w->lease_ms : 0;
	protobuf_c_message_free_unpacked(&w->base, NULL);
	/* the broker's frame limit is payload + headers + 1 KiB; be lenient
	 * with the encoding overhead of many small headers */
	if (c->max_payload && c->max_header_bytes &&
	    c->max_payload < SIZE_MAX / 4 && c->max_header_bytes < SIZE_MAX / 16)
		c->frame_max = (size_t)c->max_payload + 4 * (size_t)c->max_header_bytes + 8192;
	else
		c->frame_max = 64 * 1024 * 1024;
	c->in.max = CONN_IN_MAX(c->frame_max);

	c->state = CONN_READY;
	if (c->dgram)
		dgram_welcome(c, lease);
	c->backoff_ms = c->opts.reconnect_min_ms;
	int again = c->ever_ready;
	c->ever_ready = 1;
	sub_restore(c);
	if (buf_len(&c->pend)) {
		if (buf_append(&c->out, buf_rptr(&c->pend), buf_len(&c->pend)) < 0)
			c->pending_err = -ENOMEM;
	}
	buf_fini(&c->pend);
	conn_write(c);
	if (again)
		conn_event(c, IPCBUS_EV_RECONNECTED, 0, NULL);
}

static void conn_handle(struct ipcbus *c, const struct frame *f)
{
	switch (f->type) {
	case IPCBUS__FRAME_TYPE__MSG:
		if (c->state == CONN_READY)
			sub_on_msg(c, f);
		break;
	case IPCBUS__FRAME_TYPE__PING: {
		/* answered with the dispatch's write, before it returns */
		struct frame p = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = f->has_id, .id = f->id};
		if (frame_append(&c->out, &p, NULL, 0) < 0)
			c->pending_err = -ENOMEM;
		break;
	}
	case IPCBUS__FRAME_TYPE__PONG:
		/* over datagrams a PONG also acknowledges a SUB or UNSUB:
		 * that one is no barrier (its id may be above a flush's) */
		if (f->has_id && c->dgram && dgram_on_pong(c, f->id))
			break;
		if (f->has_id && f->id > c->pong_last)
			c->pong_last = f->id;
		break;
	case IPCBUS__FRAME_TYPE__ERR:
		conn_on_err(c, f);
		break;
	case IPCBUS__FRAME_TYPE__WELCOME:
		conn_on_welcome(c, f);
		break;
	default:
		break; /* a frame of a newer broker: ignored */
	}
}

/* Handle every complete frame in `in`. */
static void conn_process(struct ipcbus *c)
{
	uint64_t gen = c->in_gen;
	int was = c->in_pinned;

	c->in_pinned = 1;
	c->in_depth++;
	while (c->in_gen == gen && buf_len(&c->in) > 0) {
		const uint8_t *body;
		size_t blen, need;
		struct frame f;
		long k = frame_split(buf_rptr(&c->in), buf_len(&c->in), c->frame_max, &body, &blen,
				     &need);
		if (k == 0) {
			/* need is 0 while the length prefix is not whole: the
			 * frame has begun all the same (conn_tick bounds it),
			 * and takes one byte more at least */
			c->in_need = need ? need : buf_len(&c->in) + 1;
			break;
		}
		if (k < 0) {
			conn_drop(c, (int)k,
				  k == IPCBUS_EFRAME ? "the broker sent a frame over the limit"
						     : "the broker sent a malformed frame length",
				  0);
			break;
		}
		c->in_need = 0;
		/* consumed first: the bytes stay where they are until the
		 * next read, which a nested dispatch does elsewhere */
		buf_consume(&c->in, (size_t)k);
		if (frame_decode(body, blen, &f) < 0) {
			conn_drop(c, IPCBUS_EPROTO, "the broker sent a frame that does not decode", 0);
			break;
		}
		conn_handle(c, &f);
	}
	c->in_depth--;
	if (c->in_gen == gen)
		c->in_pinned = was;
	if (c->in_depth == 0) {
		for (size_t i = 0; i < c->nretired; i++)
			free(c->retired[i]);
		c->nretired = 0;
		buf_shrink(&c->in, CONN_KEEP);
	}
}

void conn_read(struct ipcbus *c)
{
	/* a datagram transport reads one datagram per call, so more calls */
	int rounds = c->dgram ? CONN_DGRAM_ROUNDS : CONN_READ_ROUNDS, heard = 0;

	c->in_more = 0;
	for (int round = 0; round < rounds && c->tr.fd >= 0; round++) {
		if (c->in_pinned && conn_in_retire(c, 1) < 0)
			break; /* out of memory: try again later */
		size_t len = buf_len(&c->in), want = CONN_READ_CHUNK;
		if (c->dgram)
			want = TR_DGRAM_ROOM; /* room for the largest datagram */
		else if (c->in_need > len && c->in_need - len > want)
			want = c->in_need - len;
		if (want > c->in.max - len)
			want = c->in.max - len; /* > 0: frame_split bounds what stays */
		int rc = buf_reserve(&c->in, want);
		if (rc < 0) {
			conn_drop(c, rc, "no memory for the input buffer", 0);
			return;
		}
		ssize_t n = c->tr.ops->read(&c->tr, buf_wptr(&c->in), want);
		if (n < 0) {
			if (n != -EAGAIN)
				conn_drop(c, (int)n, conn_tr_errtext(c), 0);
			else if ((rc = conn_watch(c, 0)) < 0) /* a TLS read may wait to write */
				conn_drop(c, rc, NULL, 0);
			else
				break;
			return;
		}
		if (n == 0) {
			conn_drop(c, IPCBUS_EDISCONNECTED, "the broker closed the connection", 0);
			return;
		}
		heard = 1;
		buf_commit(&c->in, (size_t)n);
		conn_process(c);
		if (c->dgram) {
			if (round + 1 == rounds)
				c->in_more = 1; /* the rest at the next dispatch */
			continue;
		}
		if ((size_t)n < want && !conn_tr_pending(c))
			break;
		c->in_more = 1;
	}
	if (heard)
		c->last_rx = conn_now();
}
