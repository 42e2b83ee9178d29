/*
 * test_client_req.c: request/reply of libipcbus against a fake broker.
 *
 * The library holds one inbox subscription per connection, gives each
 * request reply_to `<inbox>.<id>` and the same PUB frame id, matches replies
 * by that last token, fails a request on the broker's E_NO_RESPONDERS for
 * its frame id, expires requests through a deadline heap, and fails every
 * request in flight when the connection drops or is closed.  None of that
 * needs a real broker, and a real one could not be told to misbehave, so
 * the broker here is a few functions (fakebroker.c) over a Unix socket in
 * a mkdtemp folder: the test reads the client's frames and writes MSG and ERR
 * frames by hand, step by step, and drives the client with ipcbus_dispatch()
 * in the same thread.  Only the handshake runs in a short-lived thread,
 * because ipcbus_connect() blocks until WELCOME.
 *
 * Frame order on one socket is what makes "ignored" checkable: junk sent
 * before a valid reply has been handled by the time the valid reply's
 * callback runs.
 *
 * The same fake broker checks the connection's side of the broker's ERR:
 * `fatal` alone decides that the library never reconnects (an older broker
 * sets `closing` too, a newer one does not); `closing` without `fatal`
 * reconnects; and an ERR the broker sent before it closed is what the
 * program sees even when the library's next write hits the closed socket
 * first (EPIPE), not "Broken pipe".
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fakebroker.h"
#include "frame.h"
#include "ipcbus.h"
#include "unit.h"

#define INBOX_RAND 22    /* random characters of an inbox */
#define INBOX_MAX 40     /* "_INBOX.<22>" and its NUL, with room */

static char test_dir[64]; /* the mkdtemp folder, for every fake broker */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the client side --- */

/* What a reply callback saw. */
struct rec {
	int calls;
	int status;
	int had_reply;
	int seq;        /* order among all callbacks */
	int64_t at;     /* when (now_ms) */
	int64_t sent, sent_end; /* just before and after ipcbus_request_async() */
	char data[STR_MAX];
};

static int rec_seq;  /* callbacks so far, in all tests */

static void rec_cb(void *arg, int status, const ipcbus_msg *reply)
{
	struct rec *r = arg;

	r->calls++;
	r->status = status;
	r->had_reply = reply != NULL;
	r->seq = ++rec_seq;
	r->at = now_ms();
	if (reply) {
		size_t n = reply->len < STR_MAX - 1 ? reply->len : STR_MAX - 1;
		memcpy(r->data, reply->data, n);
		r->data[n] = 0;
	}
}

/* Dispatch c, as a program's own loop would, until rec_seq reaches target
 * or timeout_ms pass.  0 when reached, -1 when not. */
static int pump(ipcbus *c, int target, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	while (rec_seq < target) {
		int64_t left = end - now_ms();
		if (left <= 0)
			return -1;
		int t = ipcbus_timeout(c);
		if (t < 0 || t > left)
			t = (int)left;
		struct pollfd p = {.fd = ipcbus_fd(c), .events = POLLIN};
		poll(&p, 1, t);
		ipcbus_dispatch(c);
	}
	return 0;
}

static int ev_disconnected, ev_error, ev_closed, ev_reconnected;
static int ev_last_err;           /* of the last DISCONNECTED or CLOSED */
static char ev_last_text[STR_MAX];

static void ev_cb(void *arg, int event, int err, const char *text)
{
	if (event == IPCBUS_EV_DISCONNECTED)
		ev_disconnected++;
	else if (event == IPCBUS_EV_ERROR)
		ev_error++;
	else if (event == IPCBUS_EV_CLOSED)
		ev_closed++;
	else if (event == IPCBUS_EV_RECONNECTED)
		ev_reconnected++;
	if (event == IPCBUS_EV_DISCONNECTED || event == IPCBUS_EV_CLOSED) {
		ev_last_err = err;
		snprintf(ev_last_text, sizeof ev_last_text, "%s", text ? text : "(null)");
	}
}

static void ev_reset(void)
{
	ev_disconnected = ev_error = ev_closed = ev_reconnected = 0;
	ev_last_err = 0;
	ev_last_text[0] = 0;
}

static int is_alnum(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* The inbox of an inbox SUB pattern `_INBOX.<22 of [A-Za-z0-9]>.>` into
 * inbox (without `.>`): 0, or -1 when the pattern has another shape. */
static int inbox_of(const char *pattern, char *inbox)
{
	size_t n = strlen(pattern);

	if (n != 7 + INBOX_RAND + 2 || n - 2 >= INBOX_MAX || strncmp(pattern, "_INBOX.", 7) != 0 ||
	    strcmp(pattern + n - 2, ".>") != 0)
		return -1;
	for (size_t i = 7; i < 7 + INBOX_RAND; i++)
		if (!is_alnum((unsigned char)pattern[i]))
			return -1;
	memcpy(inbox, pattern, n - 2);
	inbox[n - 2] = 0;
	return 0;
}

/* reply_to is `<inbox>.<id>` with the PUB's own frame id. */
static int reply_to_ok(const struct fb_frame *pub, const char *inbox)
{
	char want[STR_MAX];

	if (!pub->has_id || pub->id == 0 || !pub->has_reply_to)
		return 0;
	snprintf(want, sizeof want, "%s.%" PRIu64, inbox, pub->id);
	return strcmp(pub->reply_to, want) == 0;
}

/* A session: a fake broker, a connected client, and the inbox the first
 * request subscribed. */
struct sess {
	struct fb b;
	ipcbus *c;
	char inbox[INBOX_MAX];
	uint64_t inbox_sid;
	int ok;
};

static void sess_open(struct sess *s, const ipcbus_opts *opts)
{
	ipcbus_opts def = IPCBUS_OPTS_INIT;

	memset(s, 0, sizeof *s);
	def.no_reconnect = 1;
	def.on_event = ev_cb;
	ev_reset();
	int rc = fb_connect(&s->b, test_dir, &s->c, opts ? opts : &def);
	CU_ASSERT_EQUAL(rc, 0);
	s->ok = rc == 0;
}

static void sess_close(struct sess *s)
{
	if (!s->ok)
		return;
	ipcbus_close(s->c);
	fb_stop(&s->b);
	s->ok = 0;
}

/* Make n requests (timeouts from tmo, or all -1 when NULL) recorded in r,
 * and read them at the broker into pubs; the first request of a session
 * also reads and checks the inbox SUB.  0 or -1 (asserted). */
static int sess_requests(struct sess *s, int n, const int *tmo, struct rec *r,
			 struct fb_frame *pubs)
{
	struct fb_frame f;
	char data[32];

	for (int i = 0; i < n; i++) {
		snprintf(data, sizeof data, "req-%d", i);
		r[i].sent = now_ms();
		int rc = ipcbus_request_async(s->c, "svc.echo", NULL, 0, data, strlen(data),
					      tmo ? tmo[i] : -1, rec_cb, &r[i]);
		r[i].sent_end = now_ms();
		CU_ASSERT_EQUAL(rc, 0);
		if (rc < 0)
			return -1;
		if (!s->inbox_sid) {
			CU_ASSERT_EQUAL(fb_next(&s->b, &f, WAIT_MS), 1);
			CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__SUB);
			CU_ASSERT_EQUAL(inbox_of(f.channel, s->inbox), 0);
			CU_ASSERT(f.has_sid && f.sid != 0);
			if (f.type != IPCBUS__FRAME_TYPE__SUB || !f.has_sid || !s->inbox[0])
				return -1;
			s->inbox_sid = f.sid;
		}
		CU_ASSERT_EQUAL(fb_next(&s->b, &pubs[i], WAIT_MS), 1);
		CU_ASSERT_EQUAL(pubs[i].type, IPCBUS__FRAME_TYPE__PUB);
		CU_ASSERT_STRING_EQUAL(pubs[i].channel, "svc.echo");
		CU_ASSERT_STRING_EQUAL(pubs[i].payload, data);
		CU_ASSERT(reply_to_ok(&pubs[i], s->inbox));
		if (pubs[i].type != IPCBUS__FRAME_TYPE__PUB || !reply_to_ok(&pubs[i], s->inbox))
			return -1;
	}
	return 0;
}

/* ipcbus_timeout() is what is left of request r's timeout tmo (give or
 * take the milliseconds the calls took). */
static int timeout_is(ipcbus *c, const struct rec *r, int tmo)
{
	int64_t before = now_ms();
	int t = ipcbus_timeout(c);
	int64_t after = now_ms();
	int64_t lo = r->sent + tmo - after, hi = r->sent_end + tmo - before;

	return t >= (lo > 0 ? lo : 0) && t <= (hi > 0 ? hi : 0);
}

/* --- the cases --- */

static void test_inbox(void)
{
	struct sess s1, s2;
	struct rec r[3] = {{0}};
	struct fb_frame p[3], f;
	char inbox2[INBOX_MAX];
	int base = rec_seq;

	sess_open(&s1, NULL);
	if (!s1.ok)
		return;
	/* the first request subscribes the inbox; the second reuses it */
	if (sess_requests(&s1, 2, NULL, r, p) < 0)
		goto out;
	CU_ASSERT_NOT_EQUAL(p[0].id, p[1].id);
	CU_ASSERT_EQUAL(fb_next(&s1.b, &f, 50), 0); /* no second SUB, nothing else */

	/* answer both: the payloads reach their own callbacks */
	CU_ASSERT_EQUAL(fb_msg(&s1.b, s1.inbox_sid, p[1].reply_to, "two"), 0);
	CU_ASSERT_EQUAL(fb_msg(&s1.b, s1.inbox_sid, p[0].reply_to, "one"), 0);
	CU_ASSERT_EQUAL(pump(s1.c, base + 2, WAIT_MS), 0);
	CU_ASSERT(r[0].calls == 1 && r[0].status == 0 && r[0].had_reply);
	CU_ASSERT(r[1].calls == 1 && r[1].status == 0 && r[1].had_reply);
	CU_ASSERT_STRING_EQUAL(r[0].data, "one");
	CU_ASSERT_STRING_EQUAL(r[1].data, "two");
	CU_ASSERT(r[1].seq < r[0].seq); /* in the order the replies came */

	/* a second connection has an inbox of its own */
	sess_open(&s2, NULL);
	if (!s2.ok)
		goto out;
	if (sess_requests(&s2, 1, NULL, &r[2], &p[2]) == 0) {
		CU_ASSERT_STRING_NOT_EQUAL(s1.inbox, s2.inbox);
		strcpy(inbox2, s2.inbox);
		CU_ASSERT_EQUAL(strncmp(p[2].reply_to, inbox2, strlen(inbox2)), 0);
	}
	sess_close(&s2);
	CU_ASSERT(r[2].calls == 1 && r[2].status == IPCBUS_ECLOSED);
out:
	sess_close(&s1);
}

/* 2^64 + id in decimal, for the small ids of a test (id < 84). */
static void wrapped_id(char *dst, size_t n, uint64_t id)
{
	snprintf(dst, n, "184467440737095516%02u", (unsigned)(16 + id));
}

static void test_match(void)
{
	enum { N = 50 };
	struct sess s;
	struct rec r[N + 1];
	struct fb_frame p[N + 1];
	int order[N];
	char ch[STR_MAX];
	int base = rec_seq;
	unsigned seed = 4242;

	memset(r, 0, sizeof r);
	sess_open(&s, NULL);
	if (!s.ok)
		return;
	if (sess_requests(&s, N, NULL, r, p) < 0)
		goto out;
	for (int i = 1; i < N; i++)
		CU_ASSERT(p[i].id != p[0].id && p[i].id < 84);

	/* junk first: all of it must leave the 50 requests alone */
	uint64_t sid = s.inbox_sid;
	snprintf(ch, sizeof ch, "%s.999999", s.inbox); /* an unknown id */
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid, ch, "junk"), 0);
	snprintf(ch, sizeof ch, "%s.0", s.inbox); /* id 0: never a request */
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid, ch, "junk"), 0);
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid, s.inbox, "junk"), 0); /* no id token */
	snprintf(ch, sizeof ch, "%s.", s.inbox); /* an empty id token */
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid, ch, "junk"), 0);
	snprintf(ch, sizeof ch, "%s.%" PRIu64 "x", s.inbox, p[0].id); /* not a number */
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid, ch, "junk"), 0);
	snprintf(ch, sizeof ch, "%s.x%" PRIu64, s.inbox, p[1].id);
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid, ch, "junk"), 0);
	snprintf(ch, sizeof ch, "%s.-%" PRIu64, s.inbox, p[2].id);
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid, ch, "junk"), 0);
	snprintf(ch, sizeof ch, "%s.%" PRIu64 ".%" PRIu64, s.inbox, p[3].id, p[3].id);
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid, ch, "junk"), 0); /* a token too many */
	snprintf(ch, sizeof ch, "%s.", s.inbox); /* 2^64 + id must not wrap to id */
	wrapped_id(ch + strlen(ch), sizeof ch - strlen(ch), p[4].id);
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid, ch, "junk"), 0);
	/* a MSG for a subscription that does not exist */
	CU_ASSERT_EQUAL(fb_msg(&s.b, sid + 100, p[6].reply_to, "junk"), 0);

	/* the replies, shuffled */
	for (int i = 0; i < N; i++)
		order[i] = i;
	for (int i = N - 1; i > 0; i--) {
		seed = seed * 1103515245 + 12345;
		int j = (int)((seed >> 8) % (unsigned)(i + 1));
		int t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < N; i++) {
		char data[32];
		snprintf(data, sizeof data, "rep-%d", order[i]);
		CU_ASSERT_EQUAL(fb_msg(&s.b, sid, p[order[i]].reply_to, data), 0);
	}
	CU_ASSERT_EQUAL(pump(s.c, base + N, WAIT_MS), 0);
	int good = 0;
	for (int i = 0; i < N; i++) {
		char want[32];
		snprintf(want, sizeof want, "rep-%d", i);
		good += r[i].calls == 1 && r[i].status == 0 && r[i].had_reply &&
			strcmp(r[i].data, want) == 0;
	}
	CU_ASSERT_EQUAL(good, N);
	for (int i = 1; i < N; i++) /* called in the order of the replies */
		CU_ASSERT(r[order[i - 1]].seq < r[order[i]].seq);
	CU_ASSERT_EQUAL(rec_seq, base + N);

	/* second replies to the same ids are ignored: one more request is the
	 * marker that they have all been handled */
	for (int i = 0; i < N; i += 7)
		CU_ASSERT_EQUAL(fb_msg(&s.b, sid, p[i].reply_to, "again"), 0);
	if (sess_requests(&s, 1, NULL, &r[N], &p[N]) == 0) {
		CU_ASSERT_EQUAL(fb_msg(&s.b, sid, p[N].reply_to, "last"), 0);
		CU_ASSERT_EQUAL(pump(s.c, base + N + 1, WAIT_MS), 0);
		CU_ASSERT_STRING_EQUAL(r[N].data, "last");
	}
	CU_ASSERT_EQUAL(rec_seq, base + N + 1);
	for (int i = 0; i < N; i += 7)
		CU_ASSERT(r[i].calls == 1 && strcmp(r[i].data, "again") != 0);
	CU_ASSERT_EQUAL(ev_error, 0);
	CU_ASSERT(ipcbus_connected(s.c));
out:
	sess_close(&s);
}

/* A reply that names a pending request's id under another inbox: the broker
 * would never deliver it to this inbox's sid, but if it arrives, it is not a
 * reply to this connection's request. */
static void test_match_foreign_inbox(void)
{
	struct sess s;
	struct rec r[2] = {{0}};
	struct fb_frame p[2];
	char ch[STR_MAX], other[INBOX_MAX];
	int base = rec_seq;

	sess_open(&s, NULL);
	if (!s.ok)
		return;
	if (sess_requests(&s, 2, NULL, r, p) < 0)
		goto out;
	/* same length, last character changed: another connection's inbox */
	strcpy(other, s.inbox);
	other[strlen(other) - 1] = other[strlen(other) - 1] == 'A' ? 'B' : 'A';
	snprintf(ch, sizeof ch, "%s.%" PRIu64, other, p[0].id);
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, ch, "foreign"), 0);
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[1].reply_to, "mine"), 0);
	CU_ASSERT_EQUAL(pump(s.c, base + 1, WAIT_MS), 0);
	CU_ASSERT_EQUAL(r[0].calls, 0);
	CU_ASSERT_STRING_EQUAL(r[1].data, "mine");
out:
	sess_close(&s);
}

static void test_no_responders(void)
{
	struct sess s;
	struct rec r[3] = {{0}};
	struct fb_frame p[3];
	int tmo[3] = {5000, 5000, 5000};
	int base = rec_seq;

	sess_open(&s, NULL);
	if (!s.ok)
		return;
	if (sess_requests(&s, 3, tmo, r, p) < 0)
		goto out;
	int64_t t0 = now_ms();
	CU_ASSERT_EQUAL(fb_err(&s.b, p[1].id, IPCBUS__ERR_CODE__E_NO_RESPONDERS), 0);
	CU_ASSERT_EQUAL(pump(s.c, base + 1, WAIT_MS), 0);
	CU_ASSERT(now_ms() - t0 < 1000); /* at once, not at the 5 s timeout */
	CU_ASSERT(r[1].calls == 1 && r[1].status == IPCBUS_ENORESPONDERS && !r[1].had_reply);
	CU_ASSERT(r[0].calls == 0 && r[2].calls == 0);

	/* for an id that is no request (any more): ignored */
	CU_ASSERT_EQUAL(fb_err(&s.b, p[1].id, IPCBUS__ERR_CODE__E_NO_RESPONDERS), 0);
	CU_ASSERT_EQUAL(fb_err(&s.b, 999999, IPCBUS__ERR_CODE__E_NO_RESPONDERS), 0);
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[1].reply_to, "late"), 0);
	/* the others still get their replies */
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[2].reply_to, "r2"), 0);
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[0].reply_to, "r0"), 0);
	CU_ASSERT_EQUAL(pump(s.c, base + 3, WAIT_MS), 0);
	CU_ASSERT(r[0].calls == 1 && r[0].status == 0 && strcmp(r[0].data, "r0") == 0);
	CU_ASSERT(r[2].calls == 1 && r[2].status == 0 && strcmp(r[2].data, "r2") == 0);
	CU_ASSERT_EQUAL(r[1].calls, 1);
	CU_ASSERT_EQUAL(rec_seq, base + 3);
	/* an answer to a request, not an error of the connection */
	CU_ASSERT_EQUAL(ev_error, 0);
	CU_ASSERT(ipcbus_connected(s.c));
out:
	sess_close(&s);
}

static void test_timeouts(void)
{
	struct sess s;
	struct rec r[4] = {{0}};
	struct fb_frame p[4];
	int tmo[4] = {30, 10, 20, -1};
	int base = rec_seq;

	sess_open(&s, NULL);
	if (!s.ok)
		return;
	CU_ASSERT_EQUAL(ipcbus_timeout(s.c), -1); /* nothing scheduled yet */
	int64_t t0 = now_ms();
	if (sess_requests(&s, 4, tmo, r, p) < 0)
		goto out;
	CU_ASSERT(timeout_is(s.c, &r[1], 10)); /* the 10 ms one, not the first made */

	CU_ASSERT_EQUAL(pump(s.c, base + 1, WAIT_MS), 0);
	CU_ASSERT(r[1].calls == 1 && r[1].status == IPCBUS_ETIMEOUT && !r[1].had_reply);
	CU_ASSERT(r[1].at - t0 >= 10);
	if (r[0].calls == 0 && r[2].calls == 0)
		CU_ASSERT(timeout_is(s.c, &r[2], 20)); /* then the 20 ms one */
	CU_ASSERT_EQUAL(pump(s.c, base + 3, WAIT_MS), 0);
	CU_ASSERT(r[2].calls == 1 && r[2].status == IPCBUS_ETIMEOUT);
	CU_ASSERT(r[0].calls == 1 && r[0].status == IPCBUS_ETIMEOUT);
	CU_ASSERT(r[2].at - t0 >= 20 && r[0].at - t0 >= 30);
	CU_ASSERT(r[1].seq < r[2].seq && r[2].seq < r[0].seq); /* deadline order */
	CU_ASSERT_EQUAL(r[3].calls, 0);
	CU_ASSERT_EQUAL(ipcbus_timeout(s.c), -1); /* the one left has no deadline */

	/* late replies are ignored; the one without a timeout still works */
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[1].reply_to, "late"), 0);
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[0].reply_to, "late"), 0);
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[3].reply_to, "r3"), 0);
	CU_ASSERT_EQUAL(pump(s.c, base + 4, WAIT_MS), 0);
	CU_ASSERT(r[3].calls == 1 && r[3].status == 0 && strcmp(r[3].data, "r3") == 0);
	CU_ASSERT(r[0].calls == 1 && r[1].calls == 1 && r[2].calls == 1);
	CU_ASSERT_EQUAL(rec_seq, base + 4);
out:
	sess_close(&s);
}

/* The broker goes away with four requests in flight; with reconnect on
 * (and far away) or off, they all fail at once, and so does a new one. */
static void disconnect_case(int no_reconnect)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	struct sess s;
	struct rec r[6] = {{0}};
	struct fb_frame p[4];
	int tmo[4] = {5000, -1, 3000, 4000};
	ipcbus_msg dummy = {0}, *reply = &dummy; /* must be cleared */
	int base = rec_seq;

	o.no_reconnect = no_reconnect;
	o.reconnect_min_ms = o.reconnect_max_ms = 60000;
	o.on_event = ev_cb;
	sess_open(&s, &o);
	if (!s.ok)
		return;
	if (sess_requests(&s, 4, tmo, r, p) < 0)
		goto out;
	int64_t t0 = now_ms();
	fb_drop(&s.b);
	CU_ASSERT_EQUAL(pump(s.c, base + 4, WAIT_MS), 0);
	CU_ASSERT(now_ms() - t0 < 1000); /* at once, not at the timeouts */
	for (int i = 0; i < 4; i++)
		CU_ASSERT(r[i].calls == 1 && r[i].status == IPCBUS_EDISCONNECTED &&
			  !r[i].had_reply);
	CU_ASSERT_EQUAL(ev_disconnected, 1);
	CU_ASSERT_EQUAL(ev_closed, no_reconnect);
	CU_ASSERT(!ipcbus_connected(s.c));
	/* nothing left to expire: no request deadline is scheduled */
	if (no_reconnect) {
		CU_ASSERT_EQUAL(ipcbus_timeout(s.c), 0); /* closed: come back at once */
	} else {
		CU_ASSERT(ipcbus_timeout(s.c) > 10000); /* only the reconnect */
	}

	/* while down: ipcbus.h says the async form returns the error and
	 * never calls cb; the blocking one returns it too */
	CU_ASSERT_EQUAL(ipcbus_request_async(s.c, "svc.echo", NULL, 0, "x", 1, 5000, rec_cb, &r[4]),
			IPCBUS_EDISCONNECTED);
	t0 = now_ms();
	CU_ASSERT_EQUAL(ipcbus_request(s.c, "svc.echo", NULL, 0, "x", 1, 5000, &reply),
			IPCBUS_EDISCONNECTED);
	CU_ASSERT(now_ms() - t0 < 1000);
	CU_ASSERT_PTR_NULL(reply);
	ipcbus_dispatch(s.c);
	CU_ASSERT_EQUAL(r[4].calls, 0);
	CU_ASSERT_EQUAL(rec_seq, base + 4);
out:
	sess_close(&s);
	CU_ASSERT_EQUAL(r[4].calls, 0); /* not even from ipcbus_close */
}

static void test_disconnect_reconnecting(void)
{
	disconnect_case(0);
}

static void test_disconnect_no_reconnect(void)
{
	disconnect_case(1);
}

/* After a reconnect the same inbox is subscribed again, with the same sid
 * and no second pattern, and requests go on using it. */
static void test_reconnect_inbox(void)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	struct sess s;
	struct rec r[2] = {{0}};
	struct fb_frame p[2], f;
	char inbox[INBOX_MAX];
	int base = rec_seq;

	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 40;
	o.on_event = ev_cb;
	sess_open(&s, &o);
	if (!s.ok)
		return;
	if (sess_requests(&s, 1, NULL, r, p) < 0)
		goto out;
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[0].reply_to, "r0"), 0);
	CU_ASSERT_EQUAL(pump(s.c, base + 1, WAIT_MS), 0);

	/* drop it, and take the client's next attempt while dispatching it */
	fb_drop(&s.b);
	int64_t end = now_ms() + WAIT_MS;
	while (now_ms() < end) {
		struct pollfd pl = {.fd = s.b.lfd, .events = POLLIN};
		ipcbus_dispatch(s.c);
		if (poll(&pl, 1, 5) == 1)
			break;
	}
	CU_ASSERT_EQUAL(ev_disconnected, 1);
	CU_ASSERT_EQUAL(fb_handshake(&s.b, 0), 0);
	end = now_ms() + WAIT_MS;
	while (!ipcbus_connected(s.c) && now_ms() < end) {
		struct pollfd pl = {.fd = ipcbus_fd(s.c), .events = POLLIN};
		poll(&pl, 1, 5);
		ipcbus_dispatch(s.c);
	}
	CU_ASSERT(ipcbus_connected(s.c));
	CU_ASSERT_EQUAL(fb_next(&s.b, &f, WAIT_MS), 1);
	CU_ASSERT_EQUAL(f.type, IPCBUS__FRAME_TYPE__SUB);
	CU_ASSERT(f.has_sid && f.sid == s.inbox_sid);
	CU_ASSERT(inbox_of(f.channel, inbox) == 0 && strcmp(inbox, s.inbox) == 0);

	if (sess_requests(&s, 1, NULL, &r[1], &p[1]) == 0) { /* checks the old inbox */
		CU_ASSERT_EQUAL(fb_next(&s.b, &f, 50), 0);   /* and no further SUB */
		CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[1].reply_to, "r1"), 0);
		CU_ASSERT_EQUAL(pump(s.c, base + 2, WAIT_MS), 0);
		CU_ASSERT(r[1].calls == 1 && r[1].status == 0 && strcmp(r[1].data, "r1") == 0);
	}
out:
	sess_close(&s);
}

static void test_close_pending(void)
{
	struct sess s;
	struct rec r[5] = {{0}};
	struct fb_frame p[5], f;
	int tmo[5] = {5000, -1, 100, -1, 5000};
	int base = rec_seq;

	sess_open(&s, NULL);
	if (!s.ok)
		return;
	if (sess_requests(&s, 5, tmo, r, p) < 0) {
		sess_close(&s);
		return;
	}
	/* one answered first: it must not be called again */
	CU_ASSERT_EQUAL(fb_msg(&s.b, s.inbox_sid, p[3].reply_to, "r3"), 0);
	CU_ASSERT_EQUAL(pump(s.c, base + 1, WAIT_MS), 0);
	CU_ASSERT(r[3].calls == 1 && r[3].status == 0);

	ipcbus_close(s.c);
	s.c = NULL;
	for (int i = 0; i < 5; i++) {
		if (i == 3)
			continue;
		CU_ASSERT(r[i].calls == 1 && r[i].status == IPCBUS_ECLOSED && !r[i].had_reply);
	}
	CU_ASSERT_EQUAL(r[3].calls, 1);
	CU_ASSERT_EQUAL(rec_seq, base + 5);
	/* and the broker sees the connection end */
	CU_ASSERT_EQUAL(fb_next(&s.b, &f, WAIT_MS), -EPIPE);
	fb_stop(&s.b);
}


/* 1 when the client makes a new connection attempt at b within ms while
 * it is dispatched (left pending in the backlog, unaccepted). */
static int attempts_within(struct fb *b, ipcbus *c, int ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end) {
		struct pollfd pl = {.fd = b->lfd, .events = POLLIN};
		ipcbus_dispatch(c);
		if (poll(&pl, 1, 5) == 1)
			return 1;
	}
	return 0;
}

/* The broker's ERR closes the connection, with its flags as given; the
 * client reconnects exactly when fatal is not set. */
static void err_flags_case(int code, int fatal, int closing, int want_reconnect)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	struct sess s;
	const char *text = "the fake broker closes this connection";

	o.reconnect_min_ms = 10;
	o.reconnect_max_ms = 20;
	o.on_event = ev_cb;
	sess_open(&s, &o);
	if (!s.ok)
		return;
	CU_ASSERT_EQUAL(fb_err_flags(&s.b, 0, code, fatal, closing, text), 0);
	fb_drop(&s.b); /* the broker closes after it, as a real one does */
	/* backoff is 5-10 ms then 10-20: 300 ms is many attempts */
	int attempted = attempts_within(&s.b, s.c, 300);
	CU_ASSERT_EQUAL(attempted, want_reconnect);
	CU_ASSERT_EQUAL(ev_disconnected, 1);
	CU_ASSERT_EQUAL(ev_closed, !want_reconnect);
	/* what the broker said reaches the program, in the events and after */
	CU_ASSERT_STRING_EQUAL(ev_last_text, text);
	CU_ASSERT_STRING_EQUAL(ipcbus_last_error(s.c), text);
	if (want_reconnect) {
		CU_ASSERT(ipcbus_dispatch(s.c) >= 0);
		CU_ASSERT_EQUAL(fb_handshake(&s.b, 0), 0);
		int64_t end = now_ms() + WAIT_MS;
		while (!ipcbus_connected(s.c) && now_ms() < end) {
			struct pollfd pl = {.fd = ipcbus_fd(s.c), .events = POLLIN};
			poll(&pl, 1, 5);
			ipcbus_dispatch(s.c);
		}
		CU_ASSERT(ipcbus_connected(s.c));
		CU_ASSERT_EQUAL(ev_reconnected, 1);
	} else {
		CU_ASSERT_EQUAL(ipcbus_dispatch(s.c), IPCBUS_ECLOSED);
		CU_ASSERT_EQUAL(ev_last_err, IPCBUS_ECLOSED);
		CU_ASSERT_EQUAL(ipcbus_flush(s.c, 100), IPCBUS_ECLOSED);
		CU_ASSERT_EQUAL(ipcbus_publish(s.c, "x", "y", 1), IPCBUS_ECLOSED);
	}
	sess_close(&s);
}

/* an older broker: a fatal ERR has closing set as well */
static void test_err_fatal_and_closing(void)
{
	err_flags_case(IPCBUS__ERR_CODE__E_PROTOCOL, 1, 1, 0);
}

/* a newer broker: fatal alone */
static void test_err_fatal_only(void)
{
	err_flags_case(IPCBUS__ERR_CODE__E_PROTOCOL, 1, 0, 0);
}

/* the flags, not the code, decide: a code of the closing range marked fatal */
static void test_err_fatal_flag_wins(void)
{
	err_flags_case(IPCBUS__ERR_CODE__E_IDLE, 1, 0, 0);
}

static void test_err_closing_reconnects(void)
{
	err_flags_case(IPCBUS__ERR_CODE__E_IDLE, 0, 1, 1);
	err_flags_case(IPCBUS__ERR_CODE__E_SLOW_CONSUMER, 0, 1, 1);
}

/* a code of the fatal range marked closing only: reconnect */
static void test_err_closing_flag_wins(void)
{
	err_flags_case(IPCBUS__ERR_CODE__E_PROTOCOL, 0, 1, 1);
}

/* without flags (a broker older than them), the code's range decides */
static void test_err_no_flags(void)
{
	err_flags_case(IPCBUS__ERR_CODE__E_VERSION, -1, -1, 0);
	err_flags_case(IPCBUS__ERR_CODE__E_MAX_CONNECTIONS, -1, -1, 1);
}

/* The broker says why and closes; the client's next write fails with
 * EPIPE before it has read anything.  What the program sees is the
 * broker's reason, not "Broken pipe". */
static void test_err_before_epipe(void)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	struct sess s;
	const char *text = "slow consumer: 123 bytes pending (max-pending reached); disconnected";

	o.no_delay = 1; /* the publish below writes at once: that write fails */
	o.reconnect_min_ms = o.reconnect_max_ms = 60000;
	o.on_event = ev_cb;
	sess_open(&s, &o);
	if (!s.ok)
		return;
	CU_ASSERT_EQUAL(fb_err_flags(&s.b, 0, IPCBUS__ERR_CODE__E_SLOW_CONSUMER, 0, 1, text), 0);
	fb_drop(&s.b);
	/* nothing dispatched yet: the ERR waits unread in the client's socket */
	CU_ASSERT_EQUAL(ipcbus_publish(s.c, "a.b", "x", 1), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(s.c, WAIT_MS), IPCBUS_EDISCONNECTED);
	CU_ASSERT_EQUAL(ev_disconnected, 1);
	CU_ASSERT_EQUAL(ev_last_err, IPCBUS_ESERVER);
	CU_ASSERT_STRING_EQUAL(ev_last_text, text);
	CU_ASSERT_STRING_EQUAL(ipcbus_last_error(s.c), text);
	if (strcmp(ipcbus_last_error(s.c), text) != 0)
		fprintf(stderr, "\n  last error: %s\n", ipcbus_last_error(s.c));
	sess_close(&s);
}

/* A refusal during the handshake (a full broker) makes ipcbus_connect()
 * fail with the broker's code, and the program learns the broker's text
 * from IPCBUS_EV_CONNECT_FAILED: there is no connection to ask. */
struct refuse_arg {
	struct fb *b;
	const char *text;
	int rc;
};

static void *refuse_main(void *arg)
{
	struct refuse_arg *a = arg;
	struct pollfd p = {.fd = a->b->lfd, .events = POLLIN};

	a->rc = -ETIMEDOUT;
	if (poll(&p, 1, WAIT_MS) != 1)
		return NULL;
	a->b->fd = accept4(a->b->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (a->b->fd < 0) {
		a->rc = -errno;
		return NULL;
	}
	/* as broker_refuse(): without reading the HELLO, then close */
	a->rc = fb_err_flags(a->b, 0, IPCBUS__ERR_CODE__E_MAX_CONNECTIONS, 0, 1, a->text);
	fb_drop(a->b);
	return NULL;
}

static int cf_calls, cf_err;
static char cf_text[STR_MAX];

static void cf_cb(void *arg, int event, int err, const char *text)
{
	if (event != IPCBUS_EV_CONNECT_FAILED)
		return;
	cf_calls++;
	cf_err = err;
	snprintf(cf_text, sizeof cf_text, "%s", text ? text : "(null)");
}

static void test_connect_refused_text(void)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	struct refuse_arg a = {.text = "the broker is full (max-connections 1)"};
	struct fb b;
	ipcbus *c = (ipcbus *)&b; /* must be cleared */
	pthread_t t;

	cf_calls = 0;
	cf_text[0] = 0;
	o.on_event = cf_cb;
	CU_ASSERT_EQUAL_FATAL(fb_start(&b, test_dir), 0);
	a.b = &b;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, refuse_main, &a), 0);
	int rc = ipcbus_connect(&c, b.url, &o);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(a.rc, 0);
	CU_ASSERT_EQUAL(rc, IPCBUS_ESERVER);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_EQUAL(cf_calls, 1);
	CU_ASSERT_EQUAL(cf_err, rc);
	CU_ASSERT_STRING_EQUAL(cf_text, a.text);
	if (rc == 0)
		ipcbus_close(c);

	/* nothing listening: one event too, with the system's reason */
	fb_stop(&b);
	cf_calls = 0;
	rc = ipcbus_connect(&c, b.url, &o);
	CU_ASSERT(rc == -ENOENT || rc == -ECONNREFUSED);
	CU_ASSERT_EQUAL(cf_calls, 1);
	CU_ASSERT_EQUAL(cf_err, rc);
	CU_ASSERT_STRING_EQUAL(cf_text, strerror(-rc));
	/* and for a URL that does not parse, the parser's reason */
	cf_calls = 0;
	rc = ipcbus_connect(&c, "unix://relative", &o);
	CU_ASSERT_EQUAL(rc, IPCBUS_EURL);
	CU_ASSERT_EQUAL(cf_calls, 1);
	CU_ASSERT(cf_text[0] != 0);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"inbox: one SUB per connection, reply_to <inbox>.<id>", test_inbox},
		{"matching: 50 shuffled replies, junk and duplicates ignored", test_match},
		{"matching: a reply under another inbox is not ours", test_match_foreign_inbox},
		{"E_NO_RESPONDERS fails exactly its request", test_no_responders},
		{"timeouts expire in deadline order", test_timeouts},
		{"disconnect fails requests at once (reconnecting)", test_disconnect_reconnecting},
		{"disconnect fails requests at once (no_reconnect)", test_disconnect_no_reconnect},
		{"reconnect restores the same inbox", test_reconnect_inbox},
		{"close calls pending callbacks with ECLOSED", test_close_pending},
		{"ERR fatal+closing (older broker): never reconnects", test_err_fatal_and_closing},
		{"ERR fatal alone (newer broker): never reconnects", test_err_fatal_only},
		{"ERR fatal on a closing-range code: never reconnects", test_err_fatal_flag_wins},
		{"ERR closing without fatal: reconnects", test_err_closing_reconnects},
		{"ERR closing on a fatal-range code: reconnects", test_err_closing_flag_wins},
		{"ERR without flags: the code's range decides", test_err_no_flags},
		{"an ERR before the close wins over EPIPE", test_err_before_epipe},
		{"a refused connect reports the broker's text", test_connect_refused_text},
	};

	/* a safety net: the default action ends a test that hangs */
	alarm(60);
	snprintf(test_dir, sizeof test_dir, "/tmp/ipcbus-requnit.XXXXXX");
	if (!mkdtemp(test_dir))
		return 99;
	int rc = unit_run("client_req", cases, UNIT_NELEM(cases));
	if (rmdir(test_dir) < 0)
		rc = 99; /* something was left behind */
	return rc;
}
