/*
 * pub.c: publishing.
 *
 * Every outgoing PUB (plain publish, request, reply) goes through
 * pub_send(): validate locally what the broker would refuse anyway (channel
 * names, `$` channels, the limits WELCOME announced), then encode the frame
 * straight into the output buffer.  Nothing is allocated per message unless
 * it has more headers than fit on the stack; the socket is written only
 * once CONN_WRITE_CHUNK bytes are buffered (or at once with no_delay, or
 * for requests, whose latency matters more than batching).
 *
 * While not connected, publishes are kept in c->pend, bounded by
 * opts.reconnect_buffer, and sent after the subscriptions on reconnect.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "client.h"

#define PUB_STACK_HEADERS 16

int pub_send(struct ipcbus *c, const char *chan, size_t clen, const char *reply, size_t rlen,
	     const ipcbus_header *hdr, size_t nh, const void *data, size_t len, uint64_t id,
	     int now)
{
	struct frame_header hs[PUB_STACK_HEADERS], *h = hs;
	size_t hbytes = 0;
	int rc = 0;

	if (c->state == CONN_CLOSED)
		return IPCBUS_ECLOSED;
	if (!data && len)
		return -EINVAL;
	if (chan_valid_name(chan, clen) < 0)
		return IPCBUS_ECHANNEL;
	if (chan_is_system(chan, clen))
		return IPCBUS_EPERM;
	if (reply && chan_valid_name(reply, rlen) < 0)
		return IPCBUS_ECHANNEL;
	if (c->max_payload && len > c->max_payload)
		return IPCBUS_ETOOBIG;
	if (nh && !hdr)
		return -EINVAL;
	if (nh > PUB_STACK_HEADERS) {
		h = nh < SIZE_MAX / sizeof *h ? malloc(nh * sizeof *h) : NULL;
		if (!h)
			return -ENOMEM;
	}
	for (size_t i = 0; i < nh; i++) {
		const char *k = hdr[i].key, *v = hdr[i].value ? hdr[i].value : "";
		if (!k) {
			rc = -EINVAL;
			goto out;
		}
		h[i].key = (const uint8_t *)k;
		h[i].key_len = hdr[i].key_len ? hdr[i].key_len : strlen(k);
		h[i].value = (const uint8_t *)v;
		h[i].value_len = hdr[i].value_len ? hdr[i].value_len : strlen(v);
		if (h[i].key_len == 0) {
			rc = -EINVAL;
			goto out;
		}
		hbytes += frame_header_cost(h[i].key_len, h[i].value_len);
	}
	if (c->max_header_bytes && hbytes > c->max_header_bytes) {
		rc = IPCBUS_ETOOBIG;
		goto out;
	}

	if (c->dgram)
		dgram_check_silence(c);
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = id != 0, .id = id};
	f.channel = (struct frame_bytes){(const uint8_t *)chan, clen, 1};
	if (reply)
		f.reply_to = (struct frame_bytes){(const uint8_t *)reply, rlen, 1};
	/* always present: an empty payload is not a missing one */
	f.payload = (struct frame_bytes){data, len, 1};

	if (c->state != CONN_READY) {
		rc = frame_append(&c->pend, &f, h, nh);
		if (rc == -ENOBUFS)
			rc = IPCBUS_EBUFFER;
		goto out;
	}
	rc = frame_append(&c->out, &f, h, nh);
	if (rc < 0)
		goto out;
	if (now || c->opts.no_delay || buf_len(&c->out) >= c->write_mark)
		conn_write(c);
	conn_drain(c);
out:
	if (h != hs)
		free(h);
	return rc;
}

int ipcbus_publish(ipcbus *c, const char *channel, const void *data, size_t len)
{
	if (!c || !channel)
		return -EINVAL;
	return pub_send(c, channel, strlen(channel), NULL, 0, NULL, 0, data, len, 0, 0);
}

int ipcbus_publish_ex(ipcbus *c, const char *channel, const char *reply_to,
		      const ipcbus_header *headers, size_t nheaders, const void *data, size_t len)
{
	if (!c || !channel)
		return -EINVAL;
	return pub_send(c, channel, strlen(channel), reply_to, reply_to ? strlen(reply_to) : 0,
			headers, nheaders, data, len, 0, 0);
}
