/*
 * be_ipcbus.c: peerbench backend for ipcbus (libipcbus), so that ipcbus is
 * measured by the same driver as NATS, Redis and Mosquitto.  Copy it with
 * ipcbus.sh into a writable copy of peerbench (see tests/bench/README.md).
 *
 * poll() must stop right after a callback that returns non-zero and keep
 * the rest queued: libipcbus hands over every message of a read in one
 * dispatch, so messages after such a callback are copied into a small
 * backlog that the next poll() delivers first.
 */
#include "pb.h"

#include <ipcbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKLOG_MAX 65536

typedef struct {
	ipcbus *c;
	pb_msg_cb cb;
	void *arg;
	int stop;      /* a callback returned non-zero during this poll */
	int delivered; /* during this poll */
	ipcbus_msg **backlog;
	size_t nback, headback;
	int request_mode;
	long backlog_dropped;
} ih;

static const char *ipb_client_version(void)
{
	static char v[64];
	snprintf(v, sizeof v, "libipcbus %s", ipcbus_version());
	return v;
}

static void *ipb_open(const pb_endpoint *ep, const char *name, int mode, char *err,
		      size_t errlen)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	o.name = name;
	o.no_delay = mode == PB_MODE_LATENCY;
	o.no_reconnect = 1;
	ih *h = calloc(1, sizeof *h);
	int rc = ipcbus_connect(&h->c, ep->url, &o);
	if (rc < 0) {
		snprintf(err, errlen, "%s", ipcbus_strerror(rc));
		free(h);
		return NULL;
	}
	return h;
}

static void to_pb(const ipcbus_msg *m, pb_msg *p, char *reply, size_t rlen)
{
	p->subject = m->channel;
	p->subject_len = m->channel_len;
	p->data = m->data;
	p->len = m->len;
	p->reply = NULL;
	if (m->reply_to && m->reply_to_len < rlen) {
		memcpy(reply, m->reply_to, m->reply_to_len);
		reply[m->reply_to_len] = 0;
		p->reply = reply;
	}
}

static void ipb_on_msg(void *arg, const ipcbus_msg *m)
{
	ih *h = arg;
	if (h->stop || !h->cb) {
		if (h->nback == BACKLOG_MAX) {
			h->backlog_dropped++;
			return;
		}
		if (!h->backlog)
			h->backlog = calloc(BACKLOG_MAX, sizeof *h->backlog);
		h->backlog[(h->headback + h->nback++) % BACKLOG_MAX] = ipcbus_msg_dup(m);
		return;
	}
	char reply[300];
	pb_msg p;
	to_pb(m, &p, reply, sizeof reply);
	h->delivered++;
	if (h->cb(h->arg, &p))
		h->stop = 1;
}

static int ipb_subscribe(void *p, const char *subject)
{
	ih *h = p;
	int rc = ipcbus_subscribe(h->c, subject, NULL, ipb_on_msg, h, NULL);
	if (rc == 0)
		rc = ipcbus_flush(h->c, 10000);
	return rc < 0 ? -1 : 0;
}

static int ipb_publish(void *p, const char *subject, const void *data, size_t len)
{
	ih *h = p;
	return ipcbus_publish(((ih *)h)->c, subject, data, len) < 0 ? -1 : 0;
}

static int ipb_flush(void *p, int timeout_ms)
{
	ih *h = p;
	return ipcbus_flush(h->c, timeout_ms) < 0 ? -1 : 0;
}

static int ipb_poll(void *p, int timeout_ms, pb_msg_cb cb, void *arg)
{
	ih *h = p;
	int n = 0;

	h->cb = cb;
	h->arg = arg;
	h->stop = 0;
	while (h->nback > 0) {
		ipcbus_msg *m = h->backlog[h->headback];
		h->headback = (h->headback + 1) % BACKLOG_MAX;
		h->nback--;
		char reply[300];
		pb_msg pm;
		to_pb(m, &pm, reply, sizeof reply);
		int stop = cb(arg, &pm);
		ipcbus_msg_free(m);
		n++;
		if (stop)
			return n;
	}
	if (n)
		return n;
	h->delivered = 0;
	int rc = ipcbus_wait(h->c, timeout_ms);
	h->cb = NULL;
	if (rc == IPCBUS_ETIMEOUT)
		return h->delivered;
	if (rc < 0)
		return h->delivered ? h->delivered : -1;
	return h->delivered;
}

static int ipb_request(void *p, const char *subject, const void *data, size_t len,
		       int timeout_ms, pb_msg_cb cb, void *arg)
{
	ih *h = p;
	ipcbus_msg *reply = NULL;
	int rc = ipcbus_request(h->c, subject, NULL, 0, data, len, timeout_ms, &reply);
	if (rc == IPCBUS_ETIMEOUT)
		return 0;
	if (rc < 0)
		return -1;
	char rbuf[300];
	pb_msg pm;
	to_pb(reply, &pm, rbuf, sizeof rbuf);
	cb(arg, &pm);
	ipcbus_msg_free(reply);
	return 1;
}

static void ipb_stats(void *p, char *buf, size_t len)
{
	ih *h = p;
	if (h->backlog_dropped)
		snprintf(buf, len, " ipcbus_backlog_dropped=%ld", h->backlog_dropped);
}

static void ipb_close(void *p)
{
	ih *h = p;
	if (!h)
		return;
	ipcbus_close(h->c);
	while (h->nback > 0) {
		ipcbus_msg_free(h->backlog[h->headback]);
		h->headback = (h->headback + 1) % BACKLOG_MAX;
		h->nback--;
	}
	free(h->backlog);
	free(h);
}

const pb_backend pb_backend_impl = {
	.name = "ipcbus",
	.client_version = ipb_client_version,
	.open = ipb_open,
	.subscribe = ipb_subscribe,
	.publish = ipb_publish,
	.flush = ipb_flush,
	.poll = ipb_poll,
	.request = ipb_request,
	.stats = ipb_stats,
	.close = ipb_close,
};
