/*
 * msg.c: received messages outside the read buffer, and names.
 *
 * A message handed to a callback is a view into the connection's read
 * buffer (msg_view); msg_copy puts one into a single heap block, with every
 * string NUL-terminated for convenience, so one free() releases it.  The
 * same block type carries the ipcbus_next() queue (struct msgblk).
 */
#include <config.h>

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "proto.h"

/* proto/ and the broker use their own names for these (they never include
 * ipcbus.h): the values must be the same. */
_Static_assert(PROTO_VERSION == IPCBUS_PROTOCOL_VERSION, "protocol version");
_Static_assert((int)PROTO_EPROTO == (int)IPCBUS_EPROTO, "IPCBUS_EPROTO");
_Static_assert((int)PROTO_EURL == (int)IPCBUS_EURL, "IPCBUS_EURL");
_Static_assert((int)PROTO_ECHANNEL == (int)IPCBUS_ECHANNEL, "IPCBUS_ECHANNEL");
_Static_assert((int)PROTO_EFRAME == (int)IPCBUS_EFRAME, "IPCBUS_EFRAME");

void msg_view(const struct frame *f, ipcbus_msg *m, ipcbus_header *h)
{
	m->channel = (const char *)f->channel.p;
	m->channel_len = f->channel.len;
	if (f->reply_to.set && f->reply_to.len) {
		m->reply_to = (const char *)f->reply_to.p;
		m->reply_to_len = f->reply_to.len;
	} else {
		m->reply_to = NULL;
		m->reply_to_len = 0;
	}
	m->data = f->payload.p;
	m->len = f->payload.len;
	m->sid = f->sid;
	m->headers = h;
	m->nheaders = 0;
	if (f->nheaders) {
		size_t pos = 0;
		struct frame_header fh;
		while (m->nheaders < f->nheaders && frame_header_next(f, &pos, &fh)) {
			h[m->nheaders].key = (const char *)fh.key;
			h[m->nheaders].key_len = fh.key_len;
			h[m->nheaders].value = (const char *)fh.value;
			h[m->nheaders].value_len = fh.value_len;
			m->nheaders++;
		}
	}
}

/* Copy n bytes to *d, NUL-terminate, advance. */
static const char *msg_put(char **d, const void *p, size_t n)
{
	char *s = *d;
	if (n)
		memcpy(s, p, n);
	s[n] = 0;
	*d = s + n + 1;
	return s;
}

struct msgblk *msg_copy(const ipcbus_msg *m)
{
	size_t size = sizeof(struct msgblk), text = 0;

	if (m->nheaders > (SIZE_MAX - size) / sizeof(ipcbus_header) / 2)
		return NULL;
	size += m->nheaders * sizeof(ipcbus_header);
	text = m->channel_len + 1 + m->len + 1 + (m->reply_to ? m->reply_to_len + 1 : 0);
	for (size_t i = 0; i < m->nheaders; i++)
		text += m->headers[i].key_len + m->headers[i].value_len + 2;

	struct msgblk *b = malloc(size + text);
	if (!b)
		return NULL;
	ipcbus_header *h = (ipcbus_header *)(b + 1);
	char *d = (char *)b + size;
	b->next = NULL;
	b->size = size + text;
	b->m.channel = msg_put(&d, m->channel, m->channel_len);
	b->m.channel_len = m->channel_len;
	b->m.reply_to = m->reply_to ? msg_put(&d, m->reply_to, m->reply_to_len) : NULL;
	b->m.reply_to_len = m->reply_to ? m->reply_to_len : 0;
	b->m.data = msg_put(&d, m->data, m->len);
	b->m.len = m->len;
	for (size_t i = 0; i < m->nheaders; i++) {
		h[i].key = msg_put(&d, m->headers[i].key, m->headers[i].key_len);
		h[i].key_len = m->headers[i].key_len;
		h[i].value = msg_put(&d, m->headers[i].value, m->headers[i].value_len);
		h[i].value_len = m->headers[i].value_len;
	}
	b->m.headers = m->nheaders ? h : NULL;
	b->m.nheaders = m->nheaders;
	b->m.sid = m->sid;
	return b;
}

ipcbus_msg *ipcbus_msg_dup(const ipcbus_msg *m)
{
	struct msgblk *b = m ? msg_copy(m) : NULL;
	return b ? &b->m : NULL;
}

void ipcbus_msg_free(ipcbus_msg *m)
{
	if (m)
		free((char *)m - offsetof(struct msgblk, m));
}

const char *ipcbus_msg_header(const ipcbus_msg *m, const char *key, size_t *len)
{
	size_t klen = key ? strlen(key) : 0;

	for (size_t i = 0; m && key && i < m->nheaders; i++) {
		const ipcbus_header *h = &m->headers[i];
		if (h->key_len == klen && memcmp(h->key, key, klen) == 0) {
			if (len)
				*len = h->value_len;
			return h->value;
		}
	}
	return NULL;
}

const char *ipcbus_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case IPCBUS_ETIMEOUT: return "timed out";
	case IPCBUS_ENORESPONDERS: return "no responders";
	case IPCBUS_EDISCONNECTED: return "disconnected from the broker";
	case IPCBUS_EPROTO: return "protocol error: bytes that do not decode";
	case IPCBUS_ESERVER: return "refused by the broker";
	case IPCBUS_ECLOSED: return "connection closed";
	case IPCBUS_EBUFFER: return "disconnected and the outgoing buffer is full";
	case IPCBUS_ETOOBIG: return "payload or headers over the broker's limit";
	case IPCBUS_EURL: return "invalid URL, or a scheme this client does not support yet";
	case IPCBUS_EVERSION: return "the broker speaks another protocol version";
	case IPCBUS_ECHANNEL: return "invalid channel name or pattern";
	case IPCBUS_EFRAME: return "frame over the frame limit";
	case IPCBUS_ENOSUB: return "no such subscription";
	case IPCBUS_EPERM: return "permission denied";
	case IPCBUS_EAGAIN: return "nothing there yet";
	case IPCBUS_EUNSAFE:
		return "the default socket or its folder belongs to another user or is writable by "
		       "others, or the token file may be read by others";
	case IPCBUS_ETLS:
		return "TLS failed: a certificate not accepted, a peer that does not speak TLS, or "
		       "a CA, certificate or key file that cannot be used";
	}
	if (err < 0 && err > -1000)
		return strerror(-err);
	return "unknown error";
}

const char *ipcbus_version(void)
{
	return PACKAGE_VERSION;
}
