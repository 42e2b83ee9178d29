/*
 * test_bridge.c: brokers bridged together (issue 8; the spec goes to
 * docs/protocol.md, Bridges, and ipcbus.conf(5), `bridge`).
 *
 * Every broker listens on its Unix socket and on tcp://127.0.0.1:PORT;
 * bridges.[ch] starts them with their `bridge` lines and waits until the
 * topology carries messages.  Clients are raw protocol clients on the Unix
 * sockets (exact counts, round trips) and the CLI (req/reply, a subscriber
 * that reconnects by itself).  A raw client also plays a bridge peer, with
 * frames written by hand (the bridge fields of ipcbus.proto: Hello.bridge
 * 7, Frame.origin 12, seq 13, hops 14, groups 15, bridge 16, FrameType
 * BRIDGE 10), so this file builds with or without them in the schema.
 *
 *   config        -t: good bridge and bridge-allow lines, bad ones named by
 *                 FILE:LINE, a token in a URL of a file others can read
 *   two_brokers   A dials B (ipcbusd -b): both ways over one link; both
 *                 stop with exit 0
 *   patterns      `bridge URL a.>`: b.x crosses neither way
 *   both_dial     A and B dial each other: one link stays (the smaller
 *                 id's), messages cross once
 *   chain         A-B-C: A's reach C and C's reach A
 *   triangle      A-B-C-A: each message exactly once everywhere; one link
 *                 standby
 *   ring4, mesh4  the same on four brokers
 *   queue_groups  a group with members on A and B: A's messages go to A's
 *                 members only; C's (bridged to both) to one member
 *   req_reply     one hop, two hops, no responders across bridges, and
 *                 again when the only responder (two hops away) left
 *   heal          B killed and restarted: the link, the interest both ways
 *                 and the flow come back, nothing twice
 *   forged        a raw bridge peer: duplicates, the broker's own origin,
 *                 hops 33, a seq older than the window are dropped; a queue
 *                 group is served only when the copy names it; a bridge to
 *                 itself, a PUB on a link and undecodable bytes are fatal;
 *                 the broker serves its clients throughout
 *   bridge_allow  tokens: only the identities of bridge-allow may bridge
 *   tls           a bridge over tls:// with a client certificate
 *   unreachable   a flood while A's peers refuse, close at once, or never
 *                 answer: A's memory bounded, retries with backoff, idle CPU
 *   stalled_link  a link that never reads: bounded by max-pending, drops
 *                 counted, never disconnected
 *   peer_queue    a peer's SUB with a queue group a client could not
 *                 name (a NUL inside, a space) is refused
 *   stalled_unsub a link full to max-pending, then more UNSUBs than its
 *                 control slack: the link closes, the broker lives
 *   both_dial_redial  X's line stood down for the link its peer dialed:
 *                 when that link ends, X's line dials again
 *   absurd_dist   a neighbour 31 links or more from its root, or at
 *                 4294967295 (which wrapped), is not taken as parent
 *   peer_inbox    a peer's `_INBOX.>` does not read others' replies; its
 *                 own inbox pattern does
 *   pattern_nr    a request whose channel the line does not carry gets
 *                 no responders, though the peer's pattern overlaps the line
 *   redial_same_peer  a peer dials again while its first link is still
 *                 up here: the newer link stays, whichever id is smaller
 *   accepted_line the peer's link came first and stays: once X's dial
 *                 names the peer, X's line's patterns bound that link
 *   standby_reentry  a link set standby closes another link on the way
 *                 and becomes active again: its peer gets all interest
 *   group_patterns  a queue group member behind a link whose line does
 *                 not carry the channel is not picked: the other gets all
 *   peer_reply_to a peer's MSG with a reply_to a client's PUB could not
 *                 name ($SYS..., invalid) is refused and counted, as a $
 *                 channel is; an _INBOX reply_to crosses
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>

#include "bridges.h"
#include "harness.h"

#define T 5000
#define KMAX 512

/* ---- raw clients ---- */

static struct harness_raw *open_raw(const struct harness_broker *b, const char *name)
{
	struct harness_raw *r = harness_raw_open(b, name);
	CU_ASSERT_PTR_NOT_NULL(r);
	return r;
}

static int sub_ready(struct harness_raw *r, uint64_t sid, const char *pattern, const char *queue)
{
	if (harness_raw_sub(r, 0, sid, pattern, queue) < 0)
		return -1;
	return harness_raw_barrier(r, T, NULL, NULL) == 1 ? 0 : -1;
}

/* Publish "TAG-0" ... "TAG-(k-1)" on channel, in one write. */
static int pub_numbered(struct harness_raw *r, const char *channel, char tag, int k)
{
	struct buf out;
	int rc = 0;

	buf_init(&out, (size_t)k * 128 + 64);
	for (int i = 0; i < k && rc == 0; i++) {
		char payload[32];
		int n = snprintf(payload, sizeof payload, "%c-%d", tag, i);
		struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB};
		f.channel = (struct frame_bytes){(const uint8_t *)channel, strlen(channel), 1};
		f.payload = (struct frame_bytes){(const uint8_t *)payload, (size_t)n, 1};
		rc = frame_append(&out, &f, NULL, 0);
	}
	if (rc == 0)
		rc = harness_raw_send(r, buf_rptr(&out), buf_len(&out));
	buf_fini(&out);
	return rc;
}

/* ---- counting numbered messages ---- */

/* What subscribers got of the payloads "X-N" (X a broker's letter, N <
 * KMAX) and "X-fence"; "probe" is not counted. */
struct tally {
	unsigned short cnt[BRIDGES_MAX][KMAX];
	unsigned fence[BRIDGES_MAX];
	unsigned total; /* numbered messages */
	unsigned bad;   /* anything else */
	char last_bad[64];
};

static void tally_frame(struct tally *t, const struct frame *f)
{
	char s[64];

	if (f->type != IPCBUS__FRAME_TYPE__MSG)
		return;
	snprintf(s, sizeof s, "%.*s", (int)(f->payload.len < 63 ? f->payload.len : 63),
		 (const char *)f->payload.p);
	if (strcmp(s, "probe") == 0)
		return;
	int x = s[0] - 'A';
	if (x >= 0 && x < BRIDGES_MAX && s[1] == '-') {
		if (strcmp(s + 2, "fence") == 0) {
			t->fence[x]++;
			return;
		}
		char *end;
		long n = strtol(s + 2, &end, 10);
		if (*end == 0 && end != s + 2 && n >= 0 && n < KMAX) {
			t->cnt[x][n]++;
			t->total++;
			return;
		}
	}
	t->bad++;
	snprintf(t->last_bad, sizeof t->last_bad, "%s", s);
}

static void tally_cb(void *arg, struct harness_raw *r)
{
	tally_frame(arg, &r->f);
}

/* Read the n subscribers (sub i into t[i]) until done(t, n, arg), or for
 * timeout_ms.  0 when done. */
static int collect(struct harness_raw *const *subs, struct tally *t, int n,
		   int (*done)(const struct tally *, int, const void *), const void *arg,
		   int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	while (!done(t, n, arg)) {
		if (harness_now() >= deadline)
			return -1;
		for (int i = 0; i < n; i++)
			while (harness_raw_read(subs[i], i == 0 ? 10 : 0) == 1)
				tally_frame(&t[i], &subs[i]->f);
	}
	return 0;
}

/* every t[i] holds at least *(unsigned *)want numbered messages */
static int done_total(const struct tally *t, int n, const void *want)
{
	for (int i = 0; i < n; i++)
		if (t[i].total < *(const unsigned *)want)
			return 0;
	return 1;
}

/* every t[i] has the fence of each of the first *(int *)npub letters */
static int done_fences(const struct tally *t, int n, const void *npub)
{
	for (int i = 0; i < n; i++)
		for (int x = 0; x < *(const int *)npub; x++)
			if (t[i].fence[x] == 0)
				return 0;
	return 1;
}

/* Each of X-0 .. X-(k-1) for the letters in `from` exactly once, and nothing
 * else; `who` names the subscriber in the note. */
static void assert_once(const struct tally *t, const char *from, int k, const char *who)
{
	unsigned missing = 0, dups = 0, stray = 0;
	for (int x = 0; x < BRIDGES_MAX; x++) {
		int want = strchr(from, 'A' + x) != NULL;
		for (int m = 0; m < KMAX; m++) {
			unsigned c = t->cnt[x][m];
			if (want && m < k) {
				missing += c == 0;
				dups += c > 1 ? c - 1 : 0;
			} else {
				stray += c;
			}
		}
	}
	if (missing || dups || stray || t->bad)
		fprintf(stderr, "  %s: %u missing, %u duplicated, %u unexpected, %u not ours (%s)\n",
			who, missing, dups, stray, t->bad, t->last_bad);
	CU_ASSERT_EQUAL(missing, 0);
	CU_ASSERT_EQUAL(dups, 0);
	CU_ASSERT_EQUAL(stray, 0);
	CU_ASSERT_EQUAL(t->bad, 0);
}

/* Every broker of net publishes k numbered messages on PREFIX.<letter>;
 * a subscriber (PREFIX.>) on every broker must get every one of them
 * exactly once.  Then a fence from every broker: a loop would have
 * delivered a copy before it. */
static void exchange(struct bridges *net, const char *prefix, int k)
{
	int n = net->n;
	struct harness_raw *sub[BRIDGES_MAX], *pub[BRIDGES_MAX];
	struct tally *t = calloc((size_t)n, sizeof *t);
	char pattern[64], chan[BRIDGES_MAX][64], letters[BRIDGES_MAX + 1] = {0};

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	snprintf(pattern, sizeof pattern, "%s.>", prefix);
	for (int i = 0; i < n; i++) {
		sub[i] = open_raw(net->b[i], "exchange-sub");
		pub[i] = open_raw(net->b[i], "exchange-pub");
		if (!sub[i] || !pub[i] || sub_ready(sub[i], 1, pattern, NULL) < 0)
			goto out;
		snprintf(chan[i], sizeof chan[i], "%s.%c", prefix, 'A' + i);
		letters[i] = (char)('A' + i);
	}
	/* every subscription known everywhere */
	for (int i = 0; i < n; i++)
		if (bridges_probe(pub[i], chan[i], sub, n, 10000) < 0) {
			CU_FAIL("the subscriptions did not reach every broker");
			goto out;
		}
	for (int i = 0; i < n; i++)
		CU_ASSERT_EQUAL(pub_numbered(pub[i], chan[i], (char)('A' + i), k), 0);
	unsigned want = (unsigned)(n * k);
	int rc = collect(sub, t, n, done_total, &want, 20000);
	for (int i = 0; i < n; i++) {
		char f[16];
		snprintf(f, sizeof f, "%c-fence", 'A' + i);
		CU_ASSERT_EQUAL(harness_raw_pub(pub[i], 0, chan[i], NULL, f, strlen(f)), 0);
	}
	CU_ASSERT_EQUAL(collect(sub, t, n, done_fences, &n, 10000), 0);
	CU_ASSERT_EQUAL(rc, 0);
	for (int i = 0; i < n; i++) {
		char who[48];
		snprintf(who, sizeof who, "the subscriber on %c", 'A' + i);
		fprintf(stderr, "  (%s: %u of %u)\n", who, t[i].total, want);
		assert_once(&t[i], letters, k, who);
		for (int x = 0; x < n; x++)
			CU_ASSERT_EQUAL(t[i].fence[x], 1);
	}
out:
	free(t);
}

/* Links reported by the brokers' status lines: each joined pair (a line
 * either way) has exactly one link, listed by both ends; a pair without
 * a line has none.  *active and *standby: link ends in each state. */
static void assert_links(struct bridges *net, int *active, int *standby)
{
	*active = *standby = 0;
	for (int i = 0; i < net->n; i++) {
		struct bridges_status st;
		CU_ASSERT_EQUAL_FATAL(bridges_status(net, i, &st), 0);
		for (int j = 0; j < net->n; j++) {
			if (j == i)
				continue;
			int joined = net->line[i][j] || net->line[j][i];
			if (st.links[j] != joined)
				fprintf(stderr, "  %c lists %d link(s) to %c, not %d\n", 'A' + i,
					st.links[j], 'A' + j, joined);
			CU_ASSERT_EQUAL(st.links[j], joined);
			*active += st.active[j];
			*standby += st.standby[j];
		}
	}
}

/* ---- the CLI ---- */

static void show(const struct harness_proc *p)
{
	fprintf(stderr, "  exit %d\n  stdout: %s\n  stderr: %s\n", p->status, p->out, p->err);
}

#define CHECK_EXIT(p, code)                         \
	do {                                        \
		CU_ASSERT_EQUAL((p)->status, code); \
		if ((p)->status != (code))          \
			show(p);                    \
	} while (0)

/* Publish "probe" on channel every 100 ms until the CLI subscriber printed
 * it.  0 or -1. */
static int probe_cli(struct harness_raw *pub, const char *channel, struct harness_proc *s,
		     int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	while (harness_now() < deadline) {
		if (harness_raw_pub(pub, 0, channel, NULL, "probe", 5) < 0)
			return -1;
		if (harness_proc_wait_out(s, "probe\n", 100) == 0)
			return 0;
	}
	return -1;
}

/* ---- a raw client playing a bridge peer ----
 *
 * The bridge frames are written by hand in the protobuf wire format, so
 * that the test does not depend on the generated code having the fields. */

struct pbw {
	uint8_t p[4096];
	size_t n;
};

static void pbw_varint(struct pbw *w, uint64_t v)
{
	CU_ASSERT_FATAL(w->n + FRAME_VARINT_MAX <= sizeof w->p);
	w->n += frame_varint_put(w->p + w->n, v);
}

static void pbw_uint(struct pbw *w, unsigned field, uint64_t v)
{
	pbw_varint(w, (uint64_t)field << 3);
	pbw_varint(w, v);
}

static void pbw_bytes(struct pbw *w, unsigned field, const void *p, size_t len)
{
	pbw_varint(w, (uint64_t)field << 3 | 2);
	pbw_varint(w, len);
	CU_ASSERT_FATAL(w->n + len <= sizeof w->p);
	memcpy(w->p + w->n, p, len);
	w->n += len;
}

static void pbw_str(struct pbw *w, unsigned field, const char *s)
{
	pbw_bytes(w, field, s, strlen(s));
}

/* Send body as one frame (its length first). */
static int pbw_send(struct harness_raw *r, const struct pbw *body)
{
	uint8_t pre[FRAME_VARINT_MAX];
	size_t k = frame_varint_put(pre, body->n);
	int rc = harness_raw_send(r, pre, k);
	return rc < 0 ? rc : harness_raw_send(r, body->p, body->n);
}

enum {
	F_ORIGIN = 12, F_SEQ = 13, F_HOPS = 14, F_GROUPS = 15, F_BRIDGE = 16,
	HELLO_F_TOKEN = 4, HELLO_F_BRIDGE = 7,
	T_BRIDGE = 10,
};

/* Connect to url and say HELLO as the broker `self` (Hello.bridge), with a
 * token when not NULL; read the answer into r->f (a WELCOME, or an ERR).
 * NULL when the connection or the answer failed. */
static struct harness_raw *peer_open(const char *url, const char *self, const char *token)
{
	struct harness_raw *r = harness_raw_connect_url(url);
	struct pbw hello = {0}, frame = {0};

	if (!r) {
		fprintf(stderr, "  cannot connect to %s: %s\n", url, strerror(errno));
		return NULL;
	}
	pbw_uint(&hello, 1, PROTO_VERSION);
	pbw_str(&hello, 2, "fake-bridge");
	pbw_uint(&hello, 3, (uint64_t)getpid());
	if (token)
		pbw_str(&hello, HELLO_F_TOKEN, token);
	if (self)
		pbw_str(&hello, HELLO_F_BRIDGE, self);
	pbw_uint(&frame, 1, IPCBUS__FRAME_TYPE__HELLO);
	pbw_uint(&frame, 2, 1);
	pbw_bytes(&frame, 9, hello.p, hello.n);
	if (pbw_send(r, &frame) < 0 || harness_raw_read(r, T) != 1) {
		fprintf(stderr, "  no answer to a bridge HELLO on %s\n", url);
		harness_raw_close(r);
		return NULL;
	}
	if (r->f.type == IPCBUS__FRAME_TYPE__WELCOME)
		r->welcome = frame_unpack_welcome(&r->f);
	return r;
}

/* The spanning tree as the peer sees it (Frame.bridge, a Bridge); reset:
 * the peer's whole interest follows. */
static int peer_bridge_reset(struct harness_raw *r, const char *root, unsigned dist, int parent,
			     int reset)
{
	struct pbw m = {0}, frame = {0};
	pbw_str(&m, 1, root);
	pbw_uint(&m, 2, dist);
	pbw_uint(&m, 3, parent != 0);
	pbw_uint(&m, 4, reset != 0);
	pbw_uint(&m, 5, 1u << 20);
	pbw_uint(&m, 6, 64u << 10);
	pbw_uint(&frame, 1, T_BRIDGE);
	pbw_bytes(&frame, F_BRIDGE, m.p, m.n);
	return pbw_send(r, &frame);
}

/* The same with reset (none of the peer's interest follows). */
static int peer_bridge(struct harness_raw *r, const char *root, unsigned dist, int parent)
{
	return peer_bridge_reset(r, root, dist, parent, 1);
}

/* A forwarded message (a MSG without sid) with a reply_to (NULL: none);
 * group: the queue group the receiver is to serve (NULL: none). */
static int peer_msg_reply(struct harness_raw *r, const char *channel, const char *reply_to,
			  const char *payload, const char *origin, uint64_t seq, unsigned hops,
			  const char *group)
{
	struct pbw frame = {0};
	pbw_uint(&frame, 1, IPCBUS__FRAME_TYPE__MSG);
	pbw_str(&frame, 3, channel);
	if (reply_to)
		pbw_str(&frame, 4, reply_to);
	pbw_str(&frame, 5, payload);
	pbw_str(&frame, F_ORIGIN, origin);
	pbw_uint(&frame, F_SEQ, seq);
	pbw_uint(&frame, F_HOPS, hops);
	if (group)
		pbw_str(&frame, F_GROUPS, group);
	return pbw_send(r, &frame);
}

static int peer_msg(struct harness_raw *r, const char *channel, const char *payload,
		    const char *origin, uint64_t seq, unsigned hops, const char *group)
{
	return peer_msg_reply(r, channel, NULL, payload, origin, seq, hops, group);
}

/* A SUB from the peer (interest of its side), queue of qlen bytes (NULL:
 * none). */
static int peer_sub(struct harness_raw *r, uint64_t sid, const char *pattern, const void *queue,
		    size_t qlen)
{
	struct pbw frame = {0};
	pbw_uint(&frame, 1, IPCBUS__FRAME_TYPE__SUB);
	pbw_uint(&frame, 7, sid);
	pbw_str(&frame, 3, pattern);
	if (queue)
		pbw_bytes(&frame, 8, queue, qlen);
	return pbw_send(r, &frame);
}

static int peer_unsub(struct harness_raw *r, uint64_t sid)
{
	struct pbw frame = {0};
	pbw_uint(&frame, 1, IPCBUS__FRAME_TYPE__UNSUB);
	pbw_uint(&frame, 7, sid);
	return pbw_send(r, &frame);
}

static void nr_cb(void *arg, struct harness_raw *r)
{
	if (r->f.type == IPCBUS__FRAME_TYPE__ERR && r->f.id == 77 &&
	    r->err_code == IPCBUS__ERR_CODE__E_NO_RESPONDERS)
		*(int *)arg = 1;
}

/* A request on channel from a local client: 1 when the broker answered
 * "no responders", 0 when it did not (the round trip after it came back
 * first), -1 on failure. */
static int no_responders(struct harness_raw *r, const char *channel)
{
	int nr = 0;
	if (harness_raw_pub(r, 77, channel, "_INBOX.review.nr", "q", 1) < 0 ||
	    harness_raw_barrier(r, T, nr_cb, &nr) != 1)
		return -1;
	return nr;
}

/* Read until the broker sends interest (SUB) in pattern: 1, else 0. */
static int peer_wait_sub(struct harness_raw *r, const char *pattern, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	size_t n = strlen(pattern);
	while (harness_now() < deadline) {
		if (harness_raw_read(r, (int)(deadline - harness_now())) != 1)
			return 0;
		if (r->f.type == IPCBUS__FRAME_TYPE__SUB && r->f.channel.len == n &&
		    memcmp(r->f.channel.p, pattern, n) == 0)
			return 1;
	}
	return 0;
}

/* Read until an ERR (its code) or the close (-1) or timeout (0), then to
 * the close. */
static int peer_err(struct harness_raw *r, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	for (;;) {
		int left = (int)(deadline > harness_now() ? deadline - harness_now() : 0);
		int rc = harness_raw_read(r, left);
		if (rc == 0)
			return 0;
		if (rc < 0)
			return -1;
		if (r->f.type == IPCBUS__FRAME_TYPE__ERR)
			return r->err_code;
	}
}

/* Connect, HELLO as `self` and expect a fatal ERR code, then the close. */
static void expect_refused(const char *url, const char *self, const char *token, int code,
			   const char *what)
{
	struct harness_raw *r = peer_open(url, self, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	int welcome = r->f.type == IPCBUS__FRAME_TYPE__WELCOME;
	int got = r->f.type == IPCBUS__FRAME_TYPE__ERR ? r->err_code : peer_err(r, T);
	if (got != code)
		fprintf(stderr, "  %s: %s, then %s %d (\"%s\") where ERR %d was due\n", what,
			welcome ? "WELCOME" : "no WELCOME", got > 0 ? "ERR" : "nothing:", got,
			r->err_text, code);
	CU_ASSERT_EQUAL(got, code);
	CU_ASSERT(r->err_fatal);
	CU_ASSERT_EQUAL(harness_raw_wait_closed(r, T), 1);
	harness_raw_close(r);
}

/* A server id like id but all '0' except its last character, c: smaller
 * than any random id of the same length. */
static void low_id(char *out, size_t size, const char *id, char c)
{
	size_t n = strlen(id);
	if (n + 1 > size)
		n = size - 1;
	memset(out, '0', n);
	out[n] = 0;
	if (n)
		out[n - 1] = c;
}

/* ---- cases ---- */

static int run_ipcbusd_t(const char *conf, struct harness_proc **out)
{
	char *argv[] = {(char *)harness_ipcbusd(), (char *)"-t", (char *)"-c", (char *)conf, NULL};
	struct harness_proc *p = harness_proc_start(argv, NULL, 0);
	*out = p;
	return p ? harness_proc_wait(p, T) : -1;
}

/* ipcbusd -t on a file holding text (mode): its exit status; when it is
 * not 0, stderr must name line `line` of the file. */
static int conf_check(const char *dir, const char *text, mode_t mode, int line)
{
	char path[160], where[200];
	struct harness_proc *p;

	snprintf(path, sizeof path, "%s/t.conf", dir);
	unlink(path);
	CU_ASSERT_EQUAL_FATAL(harness_write_file(path, text), 0);
	CU_ASSERT_EQUAL_FATAL(chmod(path, mode), 0);
	int st = run_ipcbusd_t(path, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	if (st != 0 && !line) {
		fprintf(stderr, "  refused:\n%s  %s", text, p->err);
	} else if (st != 0) {
		snprintf(where, sizeof where, "%s:%d:", path, line);
		if (!strstr(p->err, where))
			fprintf(stderr, "  for\n%s  stderr does not name %s: %s\n", text, where, p->err);
		CU_ASSERT_PTR_NOT_NULL(strstr(p->err, where));
	} else if (line) {
		fprintf(stderr, "  accepted:\n%s", text);
	}
	harness_proc_free(p);
	return st;
}

static void test_config(void)
{
	const char *dir = harness_tmpdir();
	char text[1024];
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);

	/* good: patterns, repeated lines, bridge-allow identities */
	snprintf(text, sizeof text,
		 "listen unix://%s/s.sock\n"
		 "bridge tcp://127.0.0.1:1\n"
		 "bridge tcp://localhost:2 a.> b.*.c\n"
		 "token br s3cret-br-0123456789\n"
		 "token br2 s3cret-br2-0123456789\n"
		 "bridge-allow token:br\n"
		 "bridge-allow token:br2\n",
		 dir);
	CU_ASSERT_EQUAL(conf_check(dir, text, 0600, 0), 0);
	/* a token in a bridge URL: not in a file others can read */
	snprintf(text, sizeof text, "listen unix://%s/s.sock\nbridge tcp://s3cret-0123456789@127.0.0.1:1\n",
		 dir);
	CU_ASSERT_EQUAL(conf_check(dir, text, 0600, 0), 0);
	CU_ASSERT_NOT_EQUAL(conf_check(dir, text, 0644, 2), 0);

	static const char *const bad[] = {
		"bridge\n",                          /* no URL */
		"bridge tcp://127.0.0.1:1 a..b\n",   /* a bad pattern */
		"bridge tcp://127.0.0.1:1 a.>.b\n",  /* > not last */
		"bridge tcp://127.0.0.1\n",          /* no port */
		"bridge udp://127.0.0.1:1\n",        /* not a bridge transport */
		"bridge unix:///tmp/x.sock\n",
		"bridge-allow\n",                    /* nobody */
	};
	for (size_t i = 0; i < HARNESS_NELEM(bad); i++) {
		snprintf(text, sizeof text, "listen unix://%s/s.sock\n%s", dir, bad[i]);
		CU_ASSERT_NOT_EQUAL(conf_check(dir, text, 0600, 2), 0);
	}

	/* -b on the command line, checked like a line */
	char conf[160];
	snprintf(conf, sizeof conf, "%s/t.conf", dir);
	snprintf(text, sizeof text, "listen unix://%s/s.sock\n", dir);
	CU_ASSERT_EQUAL_FATAL(harness_write_file(conf, text), 0);
	const char *good_b[] = {harness_ipcbusd(), "-t", "-c", conf, "-b", "tcp://127.0.0.1:1",
				NULL};
	struct harness_proc *p = harness_proc_start((char *const *)good_b, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	harness_proc_wait(p, T);
	CHECK_EXIT(p, 0);
	harness_proc_free(p);
	const char *bad_b[] = {harness_ipcbusd(), "-t", "-c", conf, "-b", "udp://127.0.0.1:1", NULL};
	p = harness_proc_start((char *const *)bad_b, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_NOT_EQUAL(harness_proc_wait(p, T), 0);
	harness_proc_free(p);
}

/* Case 1: one line, on A's command line (-b); both ways. */
static void test_two_brokers(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 2, NULL), 0);
	net.argv[0][0] = "-b";
	net.argv[0][1] = net.tcp[1];
	net.line[0][1] = 1;
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_flow_all(&net, 10000), 0);
	/* B logs the link it accepted, with A's id */
	char needle[96];
	snprintf(needle, sizeof needle, "(%s) up", net.id[0]);
	CU_ASSERT_EQUAL(bridges_log_lines(net.b[1], "bridge from ", needle), 1);
	CU_ASSERT_EQUAL(bridges_log_lines(net.b[1], "link to ", NULL), 0);
	exchange(&net, "two", 200);
	int active, standby;
	assert_links(&net, &active, &standby);
	CU_ASSERT_EQUAL(active, 2);
	CU_ASSERT_EQUAL(standby, 0);
	/* both stop cleanly: A frees its bridge line (B has none) */
	CU_ASSERT_EQUAL(harness_broker_stop(net.b[0]), 0);
	CU_ASSERT_EQUAL(harness_broker_stop(net.b[1]), 0);
}

/* Read r until a MSG with payload `until`; 1 when it came and no MSG with
 * payload `never` came before it. */
static int until_not(struct harness_raw *r, const char *until, const char *never, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	int leaked = 0;
	while (harness_now() < deadline) {
		if (harness_raw_read(r, (int)(deadline - harness_now())) != 1)
			break;
		const struct frame *f = &r->f;
		if (f->type != IPCBUS__FRAME_TYPE__MSG)
			continue;
		if (f->payload.len == strlen(never) && memcmp(f->payload.p, never, f->payload.len) == 0)
			leaked = 1;
		if (f->payload.len == strlen(until) && memcmp(f->payload.p, until, f->payload.len) == 0) {
			if (leaked)
				fprintf(stderr, "  \"%s\" crossed the bridge\n", never);
			return !leaked;
		}
	}
	fprintf(stderr, "  \"%s\" never came\n", until);
	return 0;
}

/* Case 1: A's line says a.>: what crosses is what both sides allow, so b.x
 * crosses neither way; seen by a.x published after it by the same client
 * to the same subscription, which would have come after it. */
static void test_patterns(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 2, NULL), 0);
	net.probe = "a.probe";
	CU_ASSERT_EQUAL_FATAL(bridges_line(&net, 0, 1, "a.>"), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_flow_all(&net, 10000), 0);

	struct harness_raw *sa = open_raw(net.b[0], "sub-a"), *sb = open_raw(net.b[1], "sub-b");
	struct harness_raw *pa = open_raw(net.b[0], "pub-a"), *pb = open_raw(net.b[1], "pub-b");
	CU_ASSERT_FATAL(sa && sb && pa && pb);
	CU_ASSERT_EQUAL_FATAL(sub_ready(sa, 1, ">", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(sub_ready(sb, 1, ">", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(sub_ready(sb, 2, "b.>", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_probe(pa, "a.x", &sb, 1, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_probe(pb, "a.y", &sa, 1, 10000), 0);

	/* A to B */
	CU_ASSERT_EQUAL(harness_raw_pub(pa, 0, "b.x", NULL, "leak-A", 6), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pa, 0, "a.x", NULL, "ok-A", 4), 0);
	CU_ASSERT(until_not(sb, "ok-A", "leak-A", T));
	/* B to A (B has no line for A: the default, everything; A's line
	 * bounds what A accepts) */
	CU_ASSERT_EQUAL(harness_raw_pub(pb, 0, "b.y", NULL, "leak-B", 6), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pb, 0, "a.y", NULL, "ok-B", 4), 0);
	CU_ASSERT(until_not(sa, "ok-B", "leak-B", T));
}

/* Case 2: A and B dial each other.  One link stays, the one the broker
 * with the smaller id dialed; the other was closed as "duplicate link". */
static void test_both_dial(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 2, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_line(&net, 0, 1, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_line(&net, 1, 0, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	uint64_t deadline = harness_now() + 10000;
	while (!bridges_log_lines(net.b[0], "duplicate link", NULL) &&
	       !bridges_log_lines(net.b[1], "duplicate link", NULL) && harness_now() < deadline)
		harness_sleep(10);
	CU_ASSERT_FATAL(bridges_log_lines(net.b[0], "duplicate link", NULL) +
			bridges_log_lines(net.b[1], "duplicate link", NULL) > 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_flow_all(&net, 10000), 0);
	exchange(&net, "dup", 300);

	int small = strcmp(net.id[0], net.id[1]) < 0 ? 0 : 1, big = 1 - small;
	char up[96], down[96];
	snprintf(up, sizeof up, "link to %s up", net.id[big]);
	snprintf(down, sizeof down, "link to %s down", net.id[big]);
	fprintf(stderr, "  (%c has the smaller id)\n", 'A' + small);
	CU_ASSERT_EQUAL(bridges_log_lines(net.b[small], up, NULL), 1);
	CU_ASSERT_EQUAL(bridges_log_lines(net.b[small], down, NULL), 0);
	int active, standby;
	assert_links(&net, &active, &standby);
	CU_ASSERT_EQUAL(active, 2);
	CU_ASSERT_EQUAL(standby, 0);
}

/* Case 3: A-B-C; A and C have no link, B carries. */
static void test_chain(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_up(&net, 3, "AB CB", NULL), 0);
	exchange(&net, "chain", 200);
	int active, standby;
	assert_links(&net, &active, &standby);
	CU_ASSERT_EQUAL(active, 4);
	CU_ASSERT_EQUAL(standby, 0);
}

/* A topology with cycles: every message exactly once at every broker, and
 * the links in use are a spanning tree: n - 1 active links (both ends say
 * so), the others standby. */
static void cyclic(int n, const char *links, int nlinks)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_up(&net, n, links, NULL), 0);
	exchange(&net, "cyc", 300);
	int active, standby;
	assert_links(&net, &active, &standby);
	fprintf(stderr, "  (link ends: %d active, %d standby)\n", active, standby);
	CU_ASSERT_EQUAL(active, 2 * (n - 1));
	CU_ASSERT_EQUAL(standby, 2 * (nlinks - (n - 1)));
}

/* Case 4 */
static void test_triangle(void)
{
	cyclic(3, "AB BC CA", 3);
}

/* Case 5 */
static void test_ring4(void)
{
	cyclic(4, "AB BC CD DA", 4);
}

static void test_mesh4(void)
{
	cyclic(4, "AB AC AD BC BD CD", 6);
}

/* done when each t[i] holds *(unsigned *)want numbered messages from the
 * plain subscribers (t[0], t[1]) */
static int done_plain(const struct tally *t, int n, const void *want)
{
	(void)n;
	return t[0].total >= *(const unsigned *)want && t[1].total >= *(const unsigned *)want;
}

/* Case 6: queue group g, members a1 a2 on A and b1 on B; plain
 * subscribers pa (A) and pb (B) see every message, so that once both have
 * all, every copy reached A and B and the members' share was queued.  A,
 * B and C are a triangle (C bridged to both). */
static void test_queue_groups(void)
{
	enum { N = 300 };
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_up(&net, 3, "AB CA CB", NULL), 0);
	struct harness_raw *a1 = open_raw(net.b[0], "a1"), *a2 = open_raw(net.b[0], "a2");
	struct harness_raw *b1 = open_raw(net.b[1], "b1");
	struct harness_raw *pa = open_raw(net.b[0], "plain-a"), *pb = open_raw(net.b[1], "plain-b");
	struct harness_raw *puba = open_raw(net.b[0], "pub-a"), *pubc = open_raw(net.b[2], "pub-c");
	CU_ASSERT_FATAL(a1 && a2 && b1 && pa && pb && puba && pubc);
	CU_ASSERT_EQUAL_FATAL(sub_ready(a1, 1, "q.work", "g"), 0);
	CU_ASSERT_EQUAL_FATAL(sub_ready(a2, 1, "q.work", "g"), 0);
	CU_ASSERT_EQUAL_FATAL(sub_ready(b1, 1, "q.work", "g"), 0);
	CU_ASSERT_EQUAL_FATAL(sub_ready(pa, 1, "q.work", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(sub_ready(pb, 1, "q.work", NULL), 0);
	struct harness_raw *plain[] = {pa, pb};
	/* the plain subscriptions, made after the members', known on C */
	CU_ASSERT_EQUAL_FATAL(bridges_probe(pubc, "q.work", plain, 2, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_probe(puba, "q.work", plain, 2, 10000), 0);

	struct tally *t = calloc(5, sizeof *t); /* pa, pb, a1, a2, b1 */
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	unsigned want = N;

	/* published on A, which has members: A's members only */
	CU_ASSERT_EQUAL(pub_numbered(puba, "q.work", 'A', N), 0);
	CU_ASSERT_EQUAL(collect(plain, t, 2, done_plain, &want, 10000), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(a1, T, tally_cb, &t[2]), 1);
	CU_ASSERT_EQUAL(harness_raw_barrier(a2, T, tally_cb, &t[3]), 1);
	CU_ASSERT_EQUAL(harness_raw_barrier(b1, T, tally_cb, &t[4]), 1);
	fprintf(stderr, "  (published on A: a1 %u, a2 %u, b1 %u)\n", t[2].total, t[3].total,
		t[4].total);
	assert_once(&t[0], "A", N, "plain subscriber on A");
	assert_once(&t[1], "A", N, "plain subscriber on B");
	struct tally *members = calloc(1, sizeof *members);
	CU_ASSERT_PTR_NOT_NULL_FATAL(members);
	for (int x = 0; x < BRIDGES_MAX; x++)
		for (int m = 0; m < KMAX; m++)
			members->cnt[x][m] = t[2].cnt[x][m] + t[3].cnt[x][m];
	members->bad = t[2].bad + t[3].bad;
	assert_once(members, "A", N, "the members on A");
	CU_ASSERT_EQUAL(t[4].total, 0);

	/* published on C, which has none: one member in all */
	memset(t, 0, 5 * sizeof *t);
	CU_ASSERT_EQUAL(pub_numbered(pubc, "q.work", 'C', N), 0);
	CU_ASSERT_EQUAL(collect(plain, t, 2, done_plain, &want, 10000), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(a1, T, tally_cb, &t[2]), 1);
	CU_ASSERT_EQUAL(harness_raw_barrier(a2, T, tally_cb, &t[3]), 1);
	CU_ASSERT_EQUAL(harness_raw_barrier(b1, T, tally_cb, &t[4]), 1);
	fprintf(stderr, "  (published on C: a1 %u, a2 %u, b1 %u)\n", t[2].total, t[3].total,
		t[4].total);
	assert_once(&t[0], "C", N, "plain subscriber on A");
	assert_once(&t[1], "C", N, "plain subscriber on B");
	memset(members, 0, sizeof *members);
	for (int x = 0; x < BRIDGES_MAX; x++)
		for (int m = 0; m < KMAX; m++)
			members->cnt[x][m] = t[2].cnt[x][m] + t[3].cnt[x][m] + t[4].cnt[x][m];
	members->bad = t[2].bad + t[3].bad + t[4].bad;
	assert_once(members, "C", N, "the members on A and B");
	free(members);
	free(t);
}

/* Case 7: requests across bridges, A-B-C. */
/* A link's interest is the whole network's, not one client's: it is not
 * held to max-subscriptions (with 2, the third pattern behind B was lost
 * and A answered "no responders"). */
static void test_link_interest_bound(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 2, "max-subscriptions 2\n"), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_line(&net, 0, 1, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);
	struct harness_raw *subs[3];
	char pat[32];
	for (int i = 0; i < 3; i++) {
		subs[i] = open_raw(net.b[1], "cap-sub");
		CU_ASSERT_PTR_NOT_NULL_FATAL(subs[i]);
		for (int j = 0; j < 2; j++) {
			snprintf(pat, sizeof pat, "cap.%d", 2 * i + j);
			CU_ASSERT_EQUAL_FATAL(sub_ready(subs[i], (uint64_t)j + 1, pat, NULL), 0);
		}
	}
	struct harness_raw *raw = open_raw(net.b[0], "cap-a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	for (int k = 0; k < 6; k++) {
		snprintf(pat, sizeof pat, "cap.%d", k);
		CU_ASSERT_EQUAL(harness_raw_wait_interest(raw, pat, 10000), 0);
	}
	for (int i = 0; i < 3; i++)
		harness_raw_close(subs[i]);
	harness_raw_close(raw);
}

static void test_req_reply(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_up(&net, 3, "AB BC", NULL), 0);
	const char *ua = net.b[0]->url;
	struct harness_proc *r1 = harness_cli_start(NULL, 0, "reply", "-u", net.b[1]->url, "rr.one",
						    NULL);
	struct harness_proc *r2 = harness_cli_start(NULL, 0, "reply", "-u", net.b[2]->url, "rr.two",
						    NULL);
	CU_ASSERT_FATAL(r1 && r2);
	struct harness_raw *raw = open_raw(net.b[0], "raw-a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(raw, "rr.one", 10000), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(raw, "rr.two", 10000), 0);

	struct harness_proc *p = harness_cli(T, NULL, 0, "req", "-u", ua, "rr.one", "one hop", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
	CU_ASSERT_STRING_EQUAL(p->out, "one hop\n");
	p = harness_cli(T, NULL, 0, "req", "-u", ua, "rr.two", "two hops", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
	CU_ASSERT_STRING_EQUAL(p->out, "two hops\n");
	/* and from C to B */
	p = harness_cli(T, NULL, 0, "req", "-u", net.b[2]->url, "rr.one", "back", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
	CU_ASSERT_STRING_EQUAL(p->out, "back\n");

	/* nobody anywhere: no responders at once, not at -t */
	uint64_t t0 = harness_now();
	p = harness_cli(10000, NULL, 0, "req", "-u", ua, "-t", "8000", "rr.nobody", "q", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 4);
	fprintf(stderr, "  (no responders in %llu ms)\n", (unsigned long long)(harness_now() - t0));
	CU_ASSERT(harness_now() - t0 < 3000);

	/* the responder on C leaves: A learns it, requests fail at once */
	harness_proc_signal(r2, SIGTERM);
	CU_ASSERT(harness_proc_wait(r2, T) >= 0);
	uint64_t until = harness_now() + 10000;
	int refused = 0;
	while (!refused && harness_now() < until) {
		struct harness_proc *q = harness_cli(10000, NULL, 0, "req", "-u", ua, "-t", "300",
						     "rr.two", "q", NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(q);
		refused = q->status == 4;
		CU_ASSERT(q->status == 4 || q->status == 3); /* 3 while the interest is on its way */
		harness_proc_free(q);
	}
	CU_ASSERT(refused);
	t0 = harness_now();
	p = harness_cli(10000, NULL, 0, "req", "-u", ua, "-t", "8000", "rr.two", "q", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 4);
	CU_ASSERT(harness_now() - t0 < 3000);
	/* B's responder is still answered */
	p = harness_cli(T, NULL, 0, "req", "-u", ua, "rr.one", "still", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CHECK_EXIT(p, 0);
}

/* The lines of out that are "TAG-N", counted into t (other lines: bad,
 * except "probe"). */
static void tally_lines(struct tally *t, const char *out)
{
	char *copy = strdup(out), *save = NULL;
	CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		struct frame f = {.type = IPCBUS__FRAME_TYPE__MSG};
		f.payload = (struct frame_bytes){(const uint8_t *)l, strlen(l), 1};
		tally_frame(t, &f);
	}
	free(copy);
}

/* Case 8: A dials B; B is killed and restarted on the same port. */
static void test_heal(void)
{
	enum { N = 200 };
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_up(&net, 2, "AB", NULL), 0);
	struct harness_raw *sa = open_raw(net.b[0], "sub-a"), *pa = open_raw(net.b[0], "pub-a");
	struct harness_raw *pb = open_raw(net.b[1], "pub-b");
	CU_ASSERT_FATAL(sa && pa && pb);
	CU_ASSERT_EQUAL_FATAL(sub_ready(sa, 1, "heal.>", NULL), 0);
	struct harness_proc *sb = harness_cli_start(NULL, 0, "sub", "-u", net.b[1]->url, "heal.a",
						    NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
	CU_ASSERT_EQUAL_FATAL(bridges_probe(pb, "heal.b", &sa, 1, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(probe_cli(pa, "heal.a", sb, 10000), 0);
	char old_id[64];
	snprintf(old_id, sizeof old_id, "%s", net.id[1]);

	harness_broker_kill(net.b[1]);
	harness_raw_close(pb);
	char down[96];
	snprintf(down, sizeof down, "link to %s down", old_id);
	CU_ASSERT_EQUAL(harness_broker_wait_log(net.b[0], down, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_restart(&net, 1), 0);
	CU_ASSERT_STRING_NOT_EQUAL(net.id[1], old_id);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);

	/* A's subscription, made before the kill, is B's to know again */
	pb = open_raw(net.b[1], "pub-b2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pb);
	CU_ASSERT_EQUAL_FATAL(bridges_probe(pb, "heal.b", &sa, 1, 10000), 0);
	/* the CLI subscriber on B came back by itself; A learns it */
	CU_ASSERT_EQUAL_FATAL(probe_cli(pa, "heal.a", sb, 15000), 0);
	size_t printed = sb->out_len;

	CU_ASSERT_EQUAL(pub_numbered(pb, "heal.b", 'B', N), 0);
	CU_ASSERT_EQUAL(pub_numbered(pa, "heal.a", 'A', N), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pa, 0, "heal.a", NULL, "A-fence", 7), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pb, 0, "heal.b", NULL, "B-fence", 7), 0);
	struct tally *t = calloc(2, sizeof *t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	int two = 2;
	CU_ASSERT_EQUAL(collect(&sa, t, 1, done_fences, &two, 10000), 0);
	assert_once(&t[0], "AB", N, "the subscriber on A"); /* A's own heal.a too */
	CU_ASSERT_EQUAL(harness_proc_wait_out(sb, "A-fence\n", 10000), 0);
	tally_lines(&t[1], sb->out + printed);
	assert_once(&t[1], "A", N, "the CLI subscriber on B");
	CU_ASSERT_EQUAL(t[1].fence[0], 1);
	free(t);
	int active, standby;
	assert_links(&net, &active, &standby);
	CU_ASSERT_EQUAL(active, 2);
}

/* The payloads of the MSGs a barrier read on the way. */
struct payloads {
	int n;
	char p[16][32];
};

static void payloads_cb(void *arg, struct harness_raw *r)
{
	struct payloads *l = arg;
	if (r->f.type != IPCBUS__FRAME_TYPE__MSG || l->n == 16)
		return;
	snprintf(l->p[l->n++], sizeof l->p[0], "%.*s", (int)r->f.payload.len,
		 (const char *)r->f.payload.p);
}

/* 1 when l holds exactly the payloads of `due` (separated by spaces). */
static int payloads_are(const struct payloads *l, const char *due, const char *who)
{
	char all[512] = "";
	for (int i = 0; i < l->n; i++)
		snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? " " : "", l->p[i]);
	if (strcmp(all, due) == 0)
		return 1;
	fprintf(stderr, "  %s got \"%s\"\n  where \"%s\" was due\n", who, all, due);
	return 0;
}

static int msg_is(const struct frame *f, const char *payload)
{
	size_t n = strlen(payload);
	return f->type == IPCBUS__FRAME_TYPE__MSG && f->payload.len == n &&
	       memcmp(f->payload.p, payload, n) == 0;
}

/* Case 9: a raw client playing a bridge peer P on X's TCP listener. */
static void test_forged(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	const char *x = net.id[0], *url = net.tcp[0];
	char p[64], q[64], r[64];
	low_id(p, sizeof p, x, '1'); /* smaller than X's: X takes P as its root */
	low_id(q, sizeof q, x, '2');
	low_id(r, sizeof r, x, '3');
	struct harness_raw *sub = open_raw(net.b[0], "local-sub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
	CU_ASSERT_EQUAL_FATAL(sub_ready(sub, 1, "forge.>", NULL), 0);
	struct harness_raw *gm = open_raw(net.b[0], "local-member");
	CU_ASSERT_PTR_NOT_NULL_FATAL(gm);
	CU_ASSERT_EQUAL_FATAL(sub_ready(gm, 1, "forge.q", "g"), 0);

	/* a bridge to itself */
	expect_refused(url, x, NULL, IPCBUS__ERR_CODE__E_INVALID, "HELLO with X's own id");

	struct harness_raw *peer = peer_open(url, p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	if (peer->f.type != IPCBUS__FRAME_TYPE__WELCOME)
		fprintf(stderr, "  a bridge HELLO got %s: %s\n", frame_type_name(peer->f.type),
			peer->err_text);
	CU_ASSERT_EQUAL_FATAL(peer->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer->welcome);
	CU_ASSERT(peer->welcome->has_server_id && peer->welcome->server_id.len == strlen(x) &&
		  memcmp(peer->welcome->server_id.data, x, strlen(x)) == 0);
	/* P is the root; X's parent is P, so the link is active and X's
	 * interest comes over it */
	CU_ASSERT_EQUAL(peer_bridge(peer, p, 0, 0), 0);
	CU_ASSERT_FATAL(peer_wait_sub(peer, "forge.>", 10000));
	char needle[96];
	snprintf(needle, sizeof needle, "(%s) up", p);
	CU_ASSERT_EQUAL(harness_broker_wait_log(net.b[0], needle, T), 0);

	CU_ASSERT_EQUAL(peer_msg(peer, "forge.a", "legit-1", p, 1, 1, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.a", "dup-of-1", p, 1, 1, NULL), 0);   /* seen */
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.a", "own-origin", x, 7, 1, NULL), 0); /* X's own */
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.a", "hops-33", q, 1, 33, NULL), 0);   /* too far */
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.a", "legit-2", p, 2, 1, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.a", "legit-5000", p, 5000, 1, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.a", "old-3", p, 3, 1, NULL), 0); /* under the window */
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.a", "dup-of-5000", p, 5000, 2, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.a", "r-legit-1", r, 1, 1, NULL), 0); /* another origin */
	/* queue groups: X serves g only when the copy names it */
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.q", "no-group", p, 5001, 1, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.q", "group-g", p, 5002, 1, "g"), 0);
	CU_ASSERT_EQUAL(peer_msg(peer, "forge.q", "group-h", p, 5003, 1, "h"), 0);
	/* X read all of it once it answers the peer's PING; then the local
	 * subscriber's round trip comes after what X queued for it */
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(peer, T, NULL, NULL), 1);
	struct payloads got = {0}, member = {0};
	CU_ASSERT_EQUAL(harness_raw_barrier(sub, T, payloads_cb, &got), 1);
	CU_ASSERT_EQUAL(harness_raw_barrier(gm, T, payloads_cb, &member), 1);
	CU_ASSERT(payloads_are(&got, "legit-1 legit-2 legit-5000 r-legit-1 no-group group-g group-h",
			       "the plain subscriber"));
	CU_ASSERT(payloads_are(&member, "group-g", "the member of g"));

	/* undecodable bytes on the link: fatal for the link only */
	static const uint8_t garbage[] = {4, 0xff, 0xff, 0xff, 0xff};
	CU_ASSERT_EQUAL(harness_raw_send(peer, garbage, sizeof garbage), 0);
	CU_ASSERT_EQUAL(peer_err(peer, T), IPCBUS__ERR_CODE__E_PROTOCOL);
	CU_ASSERT_EQUAL(harness_raw_wait_closed(peer, T), 1);
	harness_raw_close(peer);
	/* a frame a client would send (PUB) on a link: fatal too, and not
	 * delivered */
	peer = peer_open(url, q, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL_FATAL(peer->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(harness_raw_pub(peer, 5, "forge.a", NULL, "pub-on-link", 11), 0);
	CU_ASSERT_EQUAL(peer_err(peer, T), IPCBUS__ERR_CODE__E_PROTOCOL);
	CU_ASSERT(peer->err_fatal);
	CU_ASSERT_EQUAL(harness_raw_wait_closed(peer, T), 1);
	harness_raw_close(peer);

	/* X lives and serves its clients */
	CU_ASSERT_EQUAL(kill(net.b[0]->pid, 0), 0);
	struct harness_raw *pub = open_raw(net.b[0], "local-pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "forge.after", NULL, "after", 5), 0);
	CU_ASSERT_EQUAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(harness_raw_is_msg(sub, 1, "after"));
}

/* Case 11: with tokens, only bridge-allow's identities may bridge. */
static void test_bridge_allow(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 2, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_conf(&net, 0, "token br s3cret-br-0123456789\n"
						     "token other s3cret-other-0123456789\n"
						     "bridge-allow token:br\n"), 0);
	char line[160];
	snprintf(line, sizeof line, "bridge tcp://s3cret-br-0123456789@127.0.0.1:%d\n", net.port[0]);
	CU_ASSERT_EQUAL_FATAL(bridges_conf(&net, 1, line), 0);
	net.line[1][0] = 1;
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_flow_all(&net, 10000), 0);

	const char *url = net.tcp[0];
	char p[64];
	low_id(p, sizeof p, net.id[0], '3');
	/* a client's token that bridge-allow does not name */
	expect_refused(url, p, "s3cret-other-0123456789", IPCBUS__ERR_CODE__E_PERMISSION,
		       "a bridge HELLO with token:other");
	/* no token at all: refused as well (E_AUTH as any TCP client without
	 * its token, or E_PERMISSION: either is fatal) */
	struct harness_raw *none = peer_open(url, p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(none);
	int code = none->f.type == IPCBUS__FRAME_TYPE__ERR ? none->err_code : peer_err(none, T);
	CU_ASSERT(code == IPCBUS__ERR_CODE__E_AUTH || code == IPCBUS__ERR_CODE__E_PERMISSION);
	CU_ASSERT(none->err_fatal);
	CU_ASSERT_EQUAL(harness_raw_wait_closed(none, T), 1);
	harness_raw_close(none);
	/* the same token is a good client's */
	struct harness_raw *c = peer_open(url, NULL, "s3cret-other-0123456789");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(harness_raw_barrier(c, T, NULL, NULL), 1);
	/* and token:br may bridge */
	struct harness_raw *ok = peer_open(url, p, "s3cret-br-0123456789");
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	harness_raw_close(ok);
	/* the refusals hurt nothing */
	CU_ASSERT_EQUAL(bridges_wait_flow_all(&net, 10000), 0);
}

/* A bridge over TLS: B dials A's tls:// listener with a client
 * certificate, which A's bridge-allow names. */
static void test_tls(void)
{
	const char *dir = harness_tmpdir();
	struct harness_tls tls;
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	int rc = harness_tls_make(dir, &tls);
	if (rc == -ENOENT) {
		fprintf(stderr, "  no openssl command: not run\n");
		return;
	}
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	int port = harness_free_port(AF_INET);
	CU_ASSERT_FATAL(port > 0);
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 2, NULL), 0);
	char lines[1024];
	snprintf(lines, sizeof lines,
		 "listen tls://127.0.0.1:%d\ntls-cert %s\ntls-key %s\ntls-ca %s\n"
		 "bridge-allow cert:ipcbus-test-client\n",
		 port, tls.cert, tls.key, tls.ca);
	CU_ASSERT_EQUAL_FATAL(bridges_conf(&net, 0, lines), 0);
	snprintf(lines, sizeof lines, "bridge tls://127.0.0.1:%d?ca=%s&cert=%s&key=%s\n", port,
		 tls.ca, tls.client_cert, tls.client_key);
	CU_ASSERT_EQUAL_FATAL(bridges_conf(&net, 1, lines), 0);
	net.line[1][0] = 1;
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_flow_all(&net, 10000), 0);
	exchange(&net, "tls", 200);
}

/* ---- an unreachable peer ---- */

static void close_fd_cb(void *arg)
{
	close((int)(intptr_t)arg);
}

/* A TCP listener on 127.0.0.1 (non-blocking), closed at cleanup; its port
 * in *port.  -1 on failure. */
static int listener(int backlog, int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	harness_defer(close_fd_cb, (void *)(intptr_t)fd);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Accept what waits on fd and close it at once (a peer that hangs up). */
static void slam(int fd, int *accepted)
{
	int c;
	while ((c = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		close(c);
		(*accepted)++;
	}
}

/* utime + stime of pid in ms. */
static long cpu_ms(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	char *s = harness_read_file(path, NULL);
	long ms = -1;
	const char *p = s ? strrchr(s, ')') : NULL;
	unsigned long ut, st;
	/* after "(comm)": state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
		ms = (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
	free(s);
	return ms;
}

/* Case 10: A bridges to a port where nothing listens, to one that hangs
 * up at once (the test counts A's attempts there) and to one that never
 * answers, while a publisher floods A with 200,000 messages of 1 KiB that
 * A's subscriber takes.  Nothing is queued for the links that are not up:
 * A's memory stays bounded, A keeps serving, it retries with backoff
 * (attempts, and its CPU time when idle). */
static void test_unreachable(void)
{
	enum { ROUNDS = 200, BATCH = 1000, SIZE = 1024 };
	int slam_port, mute_port, dead_port = harness_free_port(AF_INET);
	int sfd = listener(16, &slam_port), mfd = listener(1, &mute_port);
	CU_ASSERT_FATAL(sfd >= 0 && mfd >= 0 && dead_port > 0);
	harness_asan_quarantine(16);
	char lines[512];
	snprintf(lines, sizeof lines,
		 "max-pending 4M\n"
		 "bridge tcp://127.0.0.1:%d\n"
		 "bridge tcp://127.0.0.1:%d\n"
		 "bridge tcp://127.0.0.1:%d\n",
		 dead_port, slam_port, mute_port);
	uint64_t t0 = harness_now();
	struct harness_broker *a = harness_broker_up(lines);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	bridges_dump_on_failure(a);
	struct harness_raw *sub = open_raw(a, "sub"), *pub = open_raw(a, "flood");
	CU_ASSERT_FATAL(sub && pub);
	CU_ASSERT_EQUAL_FATAL(sub_ready(sub, 1, "flood.x", NULL), 0);

	/* one write of BATCH messages per round */
	struct buf batch;
	uint8_t payload[SIZE];
	memset(payload, 'f', sizeof payload);
	buf_init(&batch, (size_t)BATCH * (SIZE + 64));
	for (int i = 0; i < BATCH; i++) {
		struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB};
		f.channel = (struct frame_bytes){(const uint8_t *)"flood.x", 7, 1};
		f.payload = (struct frame_bytes){payload, SIZE, 1};
		CU_ASSERT_EQUAL_FATAL(frame_append(&batch, &f, NULL, 0), 0);
	}
	int accepted = 0;
	long rss0 = harness_broker_rss(a), peak = rss0;
	uint64_t got = 0;
	for (int r = 0; r < ROUNDS; r++) {
		if (harness_raw_send(pub, buf_rptr(&batch), buf_len(&batch)) < 0)
			break;
		uint64_t want = (uint64_t)(r + 1) * BATCH, until = harness_now() + 10000;
		while (got < want && harness_now() < until)
			if (harness_raw_read(sub, 100) == 1 && sub->f.type == IPCBUS__FRAME_TYPE__MSG)
				got++;
		slam(sfd, &accepted);
		if (r % 20 == 0) {
			long rss = harness_broker_rss(a);
			if (rss > peak)
				peak = rss;
		}
	}
	buf_fini(&batch);
	fprintf(stderr, "  (%llu of %d messages in %llu ms; RSS %ld -> %ld KiB)\n",
		(unsigned long long)got, ROUNDS * BATCH, (unsigned long long)(harness_now() - t0),
		rss0, peak);
	CU_ASSERT_EQUAL(got, (uint64_t)ROUNDS * BATCH);
	size_t held = 0, hpeak = 0;
	CU_ASSERT_EQUAL(harness_broker_held(a, &held, &hpeak), 0);
	fprintf(stderr, "  (A's account: %zu KiB held at most)\n", hpeak >> 10);
	CU_ASSERT(hpeak < (12u << 20));
	if (!harness_sanitized())
		CU_ASSERT(peak - rss0 < 48 * 1024);
	/* A keeps serving */
	CU_ASSERT_EQUAL(harness_raw_barrier(pub, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "flood.x", NULL, "still", 5), 0);
	CU_ASSERT_EQUAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(harness_raw_is_msg(sub, 1, "still"));

	/* idle: 3 s at least, and until 9 s after the start, counting the
	 * attempts on the port that hangs up */
	uint64_t idle0 = harness_now(), end = t0 + 9000;
	if (end < idle0 + 3000)
		end = idle0 + 3000;
	long cpu0 = cpu_ms(a->pid);
	while (harness_now() < end) {
		slam(sfd, &accepted);
		harness_sleep(10);
	}
	slam(sfd, &accepted);
	long cpu = cpu_ms(a->pid) - cpu0;
	uint64_t span = harness_now() - t0;
	fprintf(stderr, "  (%d attempts on the port that hangs up in %llu ms; %ld ms of CPU in %llu ms idle)\n",
		accepted, (unsigned long long)span, cpu, (unsigned long long)(harness_now() - idle0));
	/* 100 ms doubling to 5 s, +-25 %: 7 or 8 attempts in 9 s (9 in 12 s) */
	CU_ASSERT(accepted >= 4);
	CU_ASSERT(accepted <= (int)(span / 1000) + 6);
	CU_ASSERT(cpu >= 0 && cpu < 300);
	/* the log is not flooded either */
	char port[16];
	snprintf(port, sizeof port, ":%d", dead_port);
	int dead_lines = bridges_log_lines(a, port, NULL);
	fprintf(stderr, "  (%d log lines name the port where nothing listens)\n", dead_lines);
	CU_ASSERT(dead_lines <= 40);
	CU_ASSERT_EQUAL(kill(a->pid, 0), 0);
}

/* Case 10, the other way to be unreachable: a link that is up and never
 * reads.  `slow-consumer disconnect` is configured: clients are cut, a
 * link is not; its backlog is bounded by max-pending and the drops are
 * counted in the link's status. */
static void test_stalled_link(void)
{
	enum { ROUNDS = 64, BATCH = 1000, SIZE = 1024 };
	struct bridges net;
	harness_asan_quarantine(16);
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, "max-pending 4M\nslow-consumer disconnect\n"), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	const char *x = net.id[0];
	char p[64];
	low_id(p, sizeof p, x, '1');
	snprintf(net.id[1], sizeof net.id[1], "%s", p); /* for bridges_status */
	net.n = 2;
	struct harness_raw *peer = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL_FATAL(peer->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(peer_bridge(peer, p, 0, 0), 0);
	/* the peer's interest: everything */
	struct pbw sub = {0};
	pbw_uint(&sub, 1, IPCBUS__FRAME_TYPE__SUB);
	pbw_uint(&sub, 7, 1);
	pbw_str(&sub, 3, "stall.>");
	CU_ASSERT_EQUAL(pbw_send(peer, &sub), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(peer, T, NULL, NULL), 1);
	struct harness_raw *local = open_raw(net.b[0], "local-sub"), *pub = open_raw(net.b[0], "pub");
	CU_ASSERT_FATAL(local && pub);
	/* the peer's interest counts: with no local subscriber yet, a
	 * request finds a responder */
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(pub, "stall.remote", T), 0);
	CU_ASSERT_EQUAL_FATAL(sub_ready(local, 1, "stall.>", NULL), 0);

	struct buf batch;
	uint8_t payload[SIZE];
	memset(payload, 's', sizeof payload);
	buf_init(&batch, (size_t)BATCH * (SIZE + 64));
	for (int i = 0; i < BATCH; i++) {
		struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB};
		f.channel = (struct frame_bytes){(const uint8_t *)"stall.x", 7, 1};
		f.payload = (struct frame_bytes){payload, SIZE, 1};
		CU_ASSERT_EQUAL_FATAL(frame_append(&batch, &f, NULL, 0), 0);
	}
	uint64_t got = 0;
	long rss0 = harness_broker_rss(net.b[0]), peak = rss0;
	for (int r = 0; r < ROUNDS; r++) {
		if (harness_raw_send(pub, buf_rptr(&batch), buf_len(&batch)) < 0)
			break;
		uint64_t want = (uint64_t)(r + 1) * BATCH, until = harness_now() + 10000;
		while (got < want && harness_now() < until)
			if (harness_raw_read(local, 100) == 1 && local->f.type == IPCBUS__FRAME_TYPE__MSG)
				got++;
		long rss = harness_broker_rss(net.b[0]);
		if (rss > peak)
			peak = rss;
	}
	buf_fini(&batch);
	CU_ASSERT_EQUAL(got, (uint64_t)ROUNDS * BATCH);
	size_t held = 0, hpeak = 0;
	CU_ASSERT_EQUAL(harness_broker_held(net.b[0], &held, &hpeak), 0);
	fprintf(stderr, "  (the local subscriber got %llu; X held %zu KiB at most, RSS %ld -> %ld KiB)\n",
		(unsigned long long)got, hpeak >> 10, rss0, peak);
	CU_ASSERT(hpeak < (12u << 20));
	if (!harness_sanitized())
		CU_ASSERT(peak - rss0 < 48 * 1024);
	struct bridges_status st;
	CU_ASSERT_EQUAL(bridges_status(&net, 0, &st), 0);
	fprintf(stderr, "  (the link: %d listed, dropped %llu)\n", st.links[1], st.dropped[1]);
	CU_ASSERT_EQUAL(st.links[1], 1);
	CU_ASSERT(st.dropped[1] > 0);

	/* the peer reads now: what was kept, no ERR, and the link answers */
	uint64_t msgs = 0;
	int errs = 0;
	int rc;
	uint64_t until = harness_now() + 20000;
	while ((rc = harness_raw_read(peer, 1000)) == 1 && harness_now() < until) {
		if (peer->f.type == IPCBUS__FRAME_TYPE__MSG)
			msgs++;
		else if (peer->f.type == IPCBUS__FRAME_TYPE__ERR)
			errs++;
	}
	fprintf(stderr, "  (the stalled peer then read %llu messages, %d ERR)\n",
		(unsigned long long)msgs, errs);
	CU_ASSERT_EQUAL(rc, 0); /* not closed */
	CU_ASSERT_EQUAL(errs, 0);
	CU_ASSERT(msgs > 0 && msgs < (uint64_t)ROUNDS * BATCH);
	CU_ASSERT_EQUAL(harness_raw_barrier(peer, T, NULL, NULL), 1);
	/* and carries again */
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "stall.y", NULL, "again", 5), 0);
	int again = 0;
	while (!again && harness_raw_read(peer, T) == 1)
		again = msg_is(&peer->f, "again");
	CU_ASSERT(again);
}

/* A peer's SUB names a queue group as a client's must (1-255 of A-Z a-z
 * 0-9 _ - .): one with a NUL inside was counted under the name before the
 * NUL, an interest entry of its own left behind, and a second such SUB
 * then freed an entry still in use. */
static void test_peer_queue(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	char p[64];
	low_id(p, sizeof p, net.id[0], '1');
	struct harness_raw *cl = open_raw(net.b[0], "local");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
	struct harness_raw *peer = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL_FATAL(peer->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(peer_bridge(peer, p, 0, 0), 0); /* the link is active */
	CU_ASSERT_EQUAL(peer_sub(peer, 1, "qn.ok", "g", 1), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(peer, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL(no_responders(cl, "qn.ok"), 0); /* the peer's interest counts */

	CU_ASSERT_EQUAL(peer_sub(peer, 2, "qn.x", "g\0a", 3), 0);
	CU_ASSERT_EQUAL(peer_sub(peer, 3, "qn.x", "g\0b", 3), 0);
	CU_ASSERT_EQUAL(peer_sub(peer, 4, "qn.y", "g h", 3), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(peer, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL(no_responders(cl, "qn.x"), 1);
	CU_ASSERT_EQUAL(no_responders(cl, "qn.y"), 1);
	CU_ASSERT_EQUAL(peer_unsub(peer, 2), 0);
	CU_ASSERT_EQUAL(peer_unsub(peer, 3), 0);
	CU_ASSERT_EQUAL(peer_unsub(peer, 1), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(peer, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL(no_responders(cl, "qn.ok"), 1);
	CU_ASSERT_EQUAL(kill(net.b[0]->pid, 0), 0);
}

/* Subscribe (unsub 0) or unsubscribe sids 1..k, pattern PREFIX.N, in one
 * write. */
static int sub_many(struct harness_raw *r, const char *prefix, int k, int unsub)
{
	struct buf out;
	int rc = 0;

	buf_init(&out, (size_t)k * 64 + 64);
	for (int i = 1; i <= k && rc == 0; i++) {
		char pat[64];
		int n = snprintf(pat, sizeof pat, "%s.%d", prefix, i);
		struct frame f = {.type = unsub ? IPCBUS__FRAME_TYPE__UNSUB : IPCBUS__FRAME_TYPE__SUB,
				  .has_sid = 1, .sid = (uint64_t)i};
		if (!unsub)
			f.channel = (struct frame_bytes){(const uint8_t *)pat, (size_t)n, 1};
		rc = frame_append(&out, &f, NULL, 0);
	}
	if (rc == 0)
		rc = harness_raw_send(r, buf_rptr(&out), buf_len(&out));
	buf_fini(&out);
	return rc;
}

/* A link whose peer does not read, full to max-pending, then more interest
 * withdrawn than its control slack holds: the UNSUB that does not fit
 * closes the link, and that close (link_down inside link_sync_entry) freed
 * the interest entry being withdrawn while route_sub_remove still held it. */
static void test_stalled_unsub(void)
{
	enum { K = 8000, BATCH = 500, SIZE = 1024 };
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, "max-pending 256k\nmax-subscriptions 20000\n"), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	char p[64];
	low_id(p, sizeof p, net.id[0], '1');
	snprintf(net.id[1], sizeof net.id[1], "%s", p); /* for bridges_status */
	net.n = 2;
	struct harness_raw *peer = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL_FATAL(peer->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(peer_bridge(peer, p, 0, 0), 0);
	CU_ASSERT_EQUAL(peer_sub(peer, 1, "st.>", NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(peer, T, NULL, NULL), 1);
	/* from now on the peer reads nothing */
	struct harness_raw *loc = open_raw(net.b[0], "local"), *pub = open_raw(net.b[0], "pub");
	CU_ASSERT_FATAL(loc && pub);
	CU_ASSERT_EQUAL_FATAL(sub_many(loc, "su", K, 0), 0); /* announced to the peer */
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(loc, T, NULL, NULL), 1);

	struct buf batch;
	uint8_t payload[SIZE];
	memset(payload, 's', sizeof payload);
	buf_init(&batch, (size_t)BATCH * (SIZE + 64));
	for (int i = 0; i < BATCH; i++) {
		struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB};
		f.channel = (struct frame_bytes){(const uint8_t *)"st.x", 4, 1};
		f.payload = (struct frame_bytes){payload, SIZE, 1};
		CU_ASSERT_EQUAL_FATAL(frame_append(&batch, &f, NULL, 0), 0);
	}
	struct bridges_status st = {0};
	for (int r = 0; r < 64 && st.dropped[1] == 0; r++) {
		CU_ASSERT_EQUAL_FATAL(harness_raw_send(pub, buf_rptr(&batch), buf_len(&batch)), 0);
		CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(pub, T, NULL, NULL), 1);
		CU_ASSERT_EQUAL_FATAL(bridges_status(&net, 0, &st), 0);
	}
	buf_fini(&batch);
	CU_ASSERT_FATAL(st.dropped[1] > 0); /* the link holds max-pending */

	/* K UNSUBs for the peer: more than the control slack */
	CU_ASSERT_EQUAL(sub_many(loc, "su", K, 1), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(loc, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL(kill(net.b[0]->pid, 0), 0);
	/* the link was closed (it does not read): its interest went with it */
	CU_ASSERT_EQUAL(no_responders(pub, "st.x"), 1);
	CU_ASSERT_EQUAL(sub_ready(loc, 1, "su.again", NULL), 0);
}

/* Wait for a connection on the listener lfd (non-blocking) and take it as
 * a raw client.  NULL when none came within timeout_ms. */
static struct harness_raw *accept_raw(int lfd, int timeout_ms)
{
	uint64_t until = harness_now() + (uint64_t)timeout_ms;
	do {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return harness_raw_adopt(fd);
		harness_sleep(5);
	} while (harness_now() < until);
	return NULL;
}

/* Answer a bridge HELLO (read into r->f) with a WELCOME as broker id. */
static int peer_welcome(struct harness_raw *r, const char *id)
{
	struct pbw w = {0}, frame = {0};
	pbw_uint(&w, 1, PROTO_VERSION);
	pbw_str(&w, 2, id);
	pbw_uint(&w, 9, 1); /* bridge: true */
	pbw_uint(&frame, 1, IPCBUS__FRAME_TYPE__WELCOME);
	pbw_uint(&frame, 2, r->f.id);
	pbw_bytes(&frame, 10, w.p, w.n);
	return pbw_send(r, &frame);
}

/* X has a bridge line to P and P dials X too; the link P dialed stays (P
 * has the smaller id) and X's line stands down.  When that link ends, X's
 * line dials again: the line a link was matched to by the peer's id is
 * the one that stood down, and it was the one line not retried. */
static void test_both_dial_redial(void)
{
	struct bridges net;
	int lport;
	int lfd = listener(8, &lport);
	CU_ASSERT_FATAL(lfd >= 0);
	char line[96];
	snprintf(line, sizeof line, "bridge tcp://127.0.0.1:%d\n", lport);
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, line), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	char p[64];
	low_id(p, sizeof p, net.id[0], '1');

	/* X dials P: P welcomes it as a bridge */
	struct harness_raw *in = accept_raw(lfd, T);
	CU_ASSERT_PTR_NOT_NULL_FATAL(in);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(in, T), 1);
	CU_ASSERT_EQUAL_FATAL(in->f.type, IPCBUS__FRAME_TYPE__HELLO);
	CU_ASSERT_EQUAL_FATAL(peer_welcome(in, p), 0);
	char needle[160];
	snprintf(needle, sizeof needle, "link to %s up", p);
	CU_ASSERT_EQUAL_FATAL(harness_broker_wait_log(net.b[0], needle, T), 0);
	/* P dials X: X keeps the link P dialed and closes its own */
	struct harness_raw *out = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_EQUAL_FATAL(out->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL_FATAL(harness_broker_wait_log(net.b[0], "closing the one this broker dialed", T), 0);
	CU_ASSERT_EQUAL(harness_raw_wait_closed(in, T), 1);
	harness_raw_close(in);
	/* the line's retry after its duplicate closed (100 ms +-25 %) finds
	 * P's link up and stands down; nothing marks it, so give it time */
	harness_sleep(400);

	/* P's link ends: X's line dials P again */
	harness_raw_close(out);
	struct harness_raw *again = accept_raw(lfd, T);
	if (!again)
		fprintf(stderr, "  X did not dial P again after P's link ended\n");
	CU_ASSERT_PTR_NOT_NULL(again);
	harness_raw_close(again);
}

struct saw_sub {
	const char *pattern;
	int n;
};

static void saw_sub_cb(void *arg, struct harness_raw *r)
{
	struct saw_sub *w = arg;
	size_t n = strlen(w->pattern);
	if (r->f.type == IPCBUS__FRAME_TYPE__SUB && r->f.channel.len == n &&
	    memcmp(r->f.channel.p, w->pattern, n) == 0)
		w->n++;
}

/* A neighbour's distance past the tree's bound is ignored, also one that
 * wraps a uint32 when one link is added (4294967295 + 1 == 0 passed the
 * bound: X took the peer as its parent at distance 0). */
static void test_absurd_dist(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	char p[64];
	low_id(p, sizeof p, net.id[0], '1');
	struct harness_raw *cl = open_raw(net.b[0], "local");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
	CU_ASSERT_EQUAL_FATAL(sub_ready(cl, 1, "dist.>", NULL), 0);
	struct harness_raw *peer = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL_FATAL(peer->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	static const unsigned far[] = {31, 32, 4294967295u};
	for (size_t i = 0; i < sizeof far / sizeof far[0]; i++) {
		struct saw_sub w = {"dist.>", 0};
		CU_ASSERT_EQUAL(peer_bridge(peer, p, far[i], 0), 0);
		/* X answers BRIDGE at once: its SUBs come before the PONG */
		CU_ASSERT_EQUAL(harness_raw_barrier(peer, T, saw_sub_cb, &w), 1);
		if (w.n)
			fprintf(stderr, "  X took a neighbour at distance %u as its parent\n", far[i]);
		CU_ASSERT_EQUAL(w.n, 0);
	}
	/* in reach: X's parent, so its interest comes */
	struct saw_sub w = {"dist.>", 0};
	CU_ASSERT_EQUAL(peer_bridge(peer, p, 30, 0), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(peer, T, saw_sub_cb, &w), 1);
	CU_ASSERT_EQUAL(w.n, 1);
}

struct saw_msg {
	const char *channel;
	int n;
};

static void saw_msg_cb(void *arg, struct harness_raw *r)
{
	struct saw_msg *w = arg;
	size_t n = strlen(w->channel);
	if (r->f.type == IPCBUS__FRAME_TYPE__MSG && r->f.channel.len == n &&
	    memcmp(r->f.channel.p, w->channel, n) == 0)
		w->n++;
}

/* A peer's interest in inboxes it does not name (`_INBOX.>`, `_INBOX.*`)
 * is refused as a client's is: it would read every requester's replies.
 * An inbox pattern that names its inbox still crosses. */
static void test_peer_inbox(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	char p[64];
	low_id(p, sizeof p, net.id[0], '1');
	struct harness_raw *peer = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL_FATAL(peer->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(peer_bridge(peer, p, 0, 0), 0);
	CU_ASSERT_EQUAL(peer_sub(peer, 1, "_INBOX.>", NULL, 0), 0);
	CU_ASSERT_EQUAL(peer_sub(peer, 2, "_INBOX.*.r", NULL, 0), 0);
	CU_ASSERT_EQUAL(peer_sub(peer, 3, "_INBOX.peerbox.>", NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(peer, T, NULL, NULL), 1);
	struct harness_raw *cl = open_raw(net.b[0], "replier");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
	/* a reply to a local requester, and one to the peer's */
	CU_ASSERT_EQUAL(harness_raw_pub(cl, 0, "_INBOX.local.r", NULL, "secret", 6), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(cl, 0, "_INBOX.peerbox.r", NULL, "yours", 5), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(cl, T, NULL, NULL), 1);
	struct saw_msg other = {"_INBOX.local.r", 0}, own = {"_INBOX.peerbox.r", 0};
	uint64_t until = harness_now() + T;
	while (!own.n && harness_now() < until && harness_raw_read(peer, T) == 1) {
		saw_msg_cb(&other, peer);
		saw_msg_cb(&own, peer);
	}
	if (other.n)
		fprintf(stderr, "  the peer read another requester's reply\n");
	CU_ASSERT_EQUAL(other.n, 0);
	CU_ASSERT_EQUAL(own.n, 1);
}

/* A's line carries a.> only; B's subscriber on *.x is interest A takes
 * (it overlaps a.>), but a request on b.x reaches nobody through the link:
 * no responders at once, not a timeout.  a.x still goes through. */
static void test_pattern_nr(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 2, NULL), 0);
	net.probe = "a.probe";
	CU_ASSERT_EQUAL_FATAL(bridges_line(&net, 0, 1, "a.>"), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_flow_all(&net, 10000), 0);
	struct harness_raw *sb = open_raw(net.b[1], "sub-b"), *pa = open_raw(net.b[0], "pub-a");
	CU_ASSERT_FATAL(sb && pa);
	CU_ASSERT_EQUAL_FATAL(sub_ready(sb, 1, "*.x", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(pa, "a.x", 10000), 0);
	CU_ASSERT_EQUAL(no_responders(pa, "a.x"), 0);
	CU_ASSERT_EQUAL(no_responders(pa, "b.x"), 1);
}

/* P dials X again while X still holds P's first link (P gave it up: a
 * keepalive that ran out on P's side first, a partition): the newer link
 * stays on both ends.  X, with the smaller id, kept the first and closed
 * every new one until its own keepalive ended the first. */
static void test_redial_same_peer(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	char p[64];
	snprintf(p, sizeof p, "%s", net.id[0]);
	memset(p, 'z', strlen(p)); /* larger than X's id */
	struct harness_raw *old = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(old);
	CU_ASSERT_EQUAL_FATAL(old->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(old, T, NULL, NULL), 1);
	/* P's first link is dead to P: it dials again */
	struct harness_raw *again = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(again);
	CU_ASSERT_EQUAL_FATAL(again->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(harness_raw_wait_closed(old, T), 1);
	int alive = harness_raw_barrier(again, T, NULL, NULL);
	if (alive != 1)
		fprintf(stderr, "  X closed P's new link and kept the one P gave up\n");
	CU_ASSERT_EQUAL(alive, 1);
	CU_ASSERT_EQUAL(peer_bridge(again, p, 0, 0), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(again, T, NULL, NULL), 1);
}

/* X has `bridge URL a.>` to P.  P's own link reaches X before X's dial
 * tells X who is at that URL, and it stays (P has the smaller id): X
 * applied the default (everything) to it, for as long as it lasted, and
 * not the patterns of its line for P. */
static void test_accepted_line(void)
{
	struct bridges net;
	int lport;
	int lfd = listener(8, &lport);
	CU_ASSERT_FATAL(lfd >= 0);
	char line[96];
	snprintf(line, sizeof line, "bridge tcp://127.0.0.1:%d a.>\n", lport);
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, line), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	char p[64];
	low_id(p, sizeof p, net.id[0], '1');
	struct harness_raw *pub = open_raw(net.b[0], "pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);

	/* X's dial waits in the listener's queue; P dials X first */
	struct harness_raw *out = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_EQUAL_FATAL(out->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(peer_bridge(out, p, 0, 0), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(out, T, NULL, NULL), 1);
	/* now X learns that its line leads to P, and keeps P's link */
	struct harness_raw *in = accept_raw(lfd, T);
	CU_ASSERT_PTR_NOT_NULL_FATAL(in);
	CU_ASSERT_EQUAL_FATAL(harness_raw_read(in, T), 1);
	CU_ASSERT_EQUAL_FATAL(in->f.type, IPCBUS__FRAME_TYPE__HELLO);
	CU_ASSERT_EQUAL_FATAL(peer_welcome(in, p), 0);
	CU_ASSERT_EQUAL_FATAL(harness_broker_wait_log(net.b[0], "closing the one this broker dialed", T), 0);
	CU_ASSERT_EQUAL(harness_raw_wait_closed(in, T), 1);
	harness_raw_close(in);

	/* P wants everything; X's line carries a.> */
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(out, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL(peer_sub(out, 1, "b.>", NULL, 0), 0);
	CU_ASSERT_EQUAL(peer_sub(out, 2, "a.>", NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(out, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "b.x", NULL, "leak", 4), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(pub, 0, "a.x", NULL, "ok", 2), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(pub, T, NULL, NULL), 1);
	struct saw_msg leak = {"b.x", 0}, ok = {"a.x", 0};
	uint64_t until = harness_now() + T;
	while (!ok.n && harness_now() < until && harness_raw_read(out, T) == 1) {
		saw_msg_cb(&leak, out);
		saw_msg_cb(&ok, out);
	}
	if (leak.n)
		fprintf(stderr, "  b.x crossed a link whose line carries a.> only\n");
	CU_ASSERT_EQUAL(leak.n, 0);
	CU_ASSERT_EQUAL(ok.n, 1);
}

/* Send SUBs sid 1..k, pattern PREFIX.N, from a bridge peer in one write. */
static int peer_sub_many(struct harness_raw *r, const char *prefix, int k)
{
	struct buf out;
	int rc = 0;

	buf_init(&out, (size_t)k * 64 + 64);
	for (int i = 1; i <= k && rc == 0; i++) {
		char pat[64];
		int n = snprintf(pat, sizeof pat, "%s.%d", prefix, i);
		struct frame f = {.type = IPCBUS__FRAME_TYPE__SUB, .has_sid = 1, .sid = (uint64_t)i};
		f.channel = (struct frame_bytes){(const uint8_t *)pat, (size_t)n, 1};
		rc = frame_append(&out, &f, NULL, 0);
	}
	if (rc == 0)
		rc = harness_raw_send(r, buf_rptr(&out), buf_len(&out));
	buf_fini(&out);
	return rc;
}

/* X's parent P1 does not read and is full to max-pending; its child P2
 * stops being its child, so X forgets P2's interest, and withdrawing it
 * from P1 overflows P1's control slack: P1's link closes inside, and X
 * takes P2 as its parent, all before the standby of P2 was done.  That
 * activation sent BRIDGE reset but skipped the SUBs of what was still
 * marked announced to P2, and the standby then cleared the marks.  (A
 * broker as P2 answers with its own reset, which made X announce all
 * again; the fake P2 does not, so what X owes after its reset shows.) */
static void test_standby_reentry(void)
{
	enum { K = 8000, BATCH = 500, SIZE = 1024 };
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, "max-pending 256k\n"), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	char p1[64], p2[64];
	low_id(p1, sizeof p1, net.id[0], '1');
	low_id(p2, sizeof p2, net.id[0], '2');
	snprintf(net.id[1], sizeof net.id[1], "%s", p1); /* for bridges_status */
	net.n = 2;
	struct harness_raw *loc = open_raw(net.b[0], "local"), *pub = open_raw(net.b[0], "pub");
	CU_ASSERT_FATAL(loc && pub);
	CU_ASSERT_EQUAL_FATAL(sub_ready(loc, 1, "loc.x", NULL), 0);
	/* P1: the root, X's parent; it wants st.> */
	struct harness_raw *a = peer_open(net.tcp[0], p1, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL_FATAL(a->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(peer_bridge(a, p1, 0, 0), 0);
	CU_ASSERT_EQUAL(peer_sub(a, 1, "st.>", NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(a, T, NULL, NULL), 1);
	/* P2: X's child, with K patterns (announced to P1) */
	struct harness_raw *c = peer_open(net.tcp[0], p2, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL_FATAL(c->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(peer_bridge(c, p1, 1, 1), 0);
	CU_ASSERT_EQUAL(peer_sub_many(c, "p2", K), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(c, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(a, T, NULL, NULL), 1);
	/* from now on P1 reads nothing: fill its link to max-pending */
	struct buf batch;
	uint8_t payload[SIZE];
	memset(payload, 's', sizeof payload);
	buf_init(&batch, (size_t)BATCH * (SIZE + 64));
	for (int i = 0; i < BATCH; i++) {
		struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB};
		f.channel = (struct frame_bytes){(const uint8_t *)"st.x", 4, 1};
		f.payload = (struct frame_bytes){payload, SIZE, 1};
		CU_ASSERT_EQUAL_FATAL(frame_append(&batch, &f, NULL, 0), 0);
	}
	struct bridges_status st = {0};
	for (int r = 0; r < 64 && st.dropped[1] == 0; r++) {
		CU_ASSERT_EQUAL_FATAL(harness_raw_send(pub, buf_rptr(&batch), buf_len(&batch)), 0);
		CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(pub, T, NULL, NULL), 1);
		CU_ASSERT_EQUAL_FATAL(bridges_status(&net, 0, &st), 0);
	}
	buf_fini(&batch);
	CU_ASSERT_FATAL(st.dropped[1] > 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(c, T, NULL, NULL), 1); /* P2 read all so far */

	/* P2 is no longer X's child (a plain BRIDGE: no reset, nothing new
	 * of P2's interest follows) */
	CU_ASSERT_EQUAL(peer_bridge_reset(c, p1, 1, 0, 0), 0);
	CU_ASSERT_EQUAL_FATAL(harness_broker_wait_log(net.b[0], "not reading its answers", T), 0);
	struct saw_sub w = {"loc.x", 0};
	CU_ASSERT_EQUAL(harness_raw_barrier(c, T, saw_sub_cb, &w), 1);
	if (!w.n)
		fprintf(stderr, "  X, now P2's child, never told P2 of its interest\n");
	CU_ASSERT_EQUAL(w.n, 1);
}

/* B-A-C.  A's line to B carries a.> only; g has a member on B (*.x: a
 * pattern that overlaps a.>) and one on C (b.x).  A's messages on b.x can
 * only reach C's member, and every one must: A took B's link as the
 * group's member in turn and the link dropped it. */
static void test_group_patterns(void)
{
	enum { N = 40 };
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 3, NULL), 0);
	net.probe = "a.probe";
	CU_ASSERT_EQUAL_FATAL(bridges_line(&net, 0, 1, "a.>"), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_line(&net, 0, 2, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_flow_all(&net, 10000), 0);
	struct harness_raw *pa = open_raw(net.b[0], "pub-a"), *mb = open_raw(net.b[1], "member-b"),
			   *mc = open_raw(net.b[2], "member-c");
	CU_ASSERT_FATAL(pa && mb && mc);
	CU_ASSERT_EQUAL_FATAL(sub_ready(mb, 1, "*.x", "g"), 0);
	CU_ASSERT_EQUAL_FATAL(sub_ready(mc, 1, "b.x", "g"), 0);
	/* A knows both members: a.x reaches B's, b.x C's */
	CU_ASSERT_EQUAL_FATAL(bridges_probe(pa, "a.x", &mb, 1, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_probe(pa, "b.x", &mc, 1, 10000), 0);
	CU_ASSERT_EQUAL_FATAL(pub_numbered(pa, "b.x", 'A', N), 0);
	int got = 0;
	uint64_t until = harness_now() + T;
	while (got < N && harness_now() < until && harness_raw_read(mc, 500) == 1)
		if (mc->f.type == IPCBUS__FRAME_TYPE__MSG && mc->f.payload.len > 2 &&
		    memcmp(mc->f.payload.p, "A-", 2) == 0)
			got++;
	fprintf(stderr, "  (C's member got %d of %d)\n", got, N);
	CU_ASSERT_EQUAL(got, N);
}

/* A peer broker is untrusted input: a forwarded MSG whose reply_to a
 * client's PUB could not name is refused, counted in the link's status,
 * like a MSG on a $ channel; an _INBOX reply_to crosses, as a client's. */
static void test_peer_reply_to(void)
{
	struct bridges net;
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 1, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	const char *x = net.id[0];
	char p[64];
	low_id(p, sizeof p, x, '1'); /* X takes P as its root: the link is active */
	snprintf(net.id[1], sizeof net.id[1], "%s", p); /* for bridges_status */
	net.n = 2;
	struct harness_raw *sub = open_raw(net.b[0], "local-sub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
	CU_ASSERT_EQUAL_FATAL(sub_ready(sub, 1, "rt.>", NULL), 0);
	struct harness_raw *peer = peer_open(net.tcp[0], p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL_FATAL(peer->f.type, IPCBUS__FRAME_TYPE__WELCOME);
	CU_ASSERT_EQUAL(peer_bridge(peer, p, 0, 0), 0);
	CU_ASSERT_FATAL(peer_wait_sub(peer, "rt.>", 10000));

	CU_ASSERT_EQUAL(peer_msg_reply(peer, "rt.a", "$SYS.x", "sys-reply", p, 1, 1, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg_reply(peer, "rt.a", "$SYS", "sys-alone", p, 2, 1, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg_reply(peer, "rt.a", "a..b", "bad-reply", p, 3, 1, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg_reply(peer, "$SYS.x", NULL, "sys-chan", p, 4, 1, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg_reply(peer, "rt.a", "_INBOX.peer.r", "inbox", p, 5, 1, NULL), 0);
	CU_ASSERT_EQUAL(peer_msg_reply(peer, "rt.a", NULL, "plain", p, 6, 1, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(peer, T, NULL, NULL), 1);
	struct payloads got = {0};
	CU_ASSERT_EQUAL(harness_raw_barrier(sub, T, payloads_cb, &got), 1);
	CU_ASSERT(payloads_are(&got, "inbox plain", "the subscriber"));
	struct bridges_status st;
	CU_ASSERT_EQUAL(bridges_status(&net, 0, &st), 0);
	CU_ASSERT_EQUAL(st.links[1], 1);
	if (st.refused[1] != 4)
		fprintf(stderr, "  the link's status says refused %llu\n", st.refused[1]);
	CU_ASSERT_EQUAL(st.refused[1], 4);
	/* the link stays up: refused frames are dropped, not fatal */
	CU_ASSERT_EQUAL(peer_msg_reply(peer, "rt.b", NULL, "after", p, 7, 1, NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_read(sub, T), 1);
	CU_ASSERT(harness_raw_is_msg(sub, 1, "after"));
}

static const struct harness_case cases[] = {
	{"config", test_config},
	{"two_brokers", test_two_brokers},
	{"patterns", test_patterns},
	{"both_dial", test_both_dial},
	{"chain", test_chain},
	{"triangle", test_triangle},
	{"ring4", test_ring4},
	{"mesh4", test_mesh4},
	{"queue_groups", test_queue_groups},
	{"req_reply", test_req_reply},
	{"link_interest_bound", test_link_interest_bound},
	{"heal", test_heal},
	{"forged", test_forged},
	{"bridge_allow", test_bridge_allow},
	{"tls", test_tls},
	{"unreachable", test_unreachable},
	{"stalled_link", test_stalled_link},
	{"peer_queue", test_peer_queue},
	{"stalled_unsub", test_stalled_unsub},
	{"both_dial_redial", test_both_dial_redial},
	{"absurd_dist", test_absurd_dist},
	{"peer_inbox", test_peer_inbox},
	{"pattern_nr", test_pattern_nr},
	{"redial_same_peer", test_redial_same_peer},
	{"accepted_line", test_accepted_line},
	{"standby_reentry", test_standby_reentry},
	{"group_patterns", test_group_patterns},
	{"peer_reply_to", test_peer_reply_to},
};

int main(int argc, char **argv)
{
	return harness_main("bridge", cases, HARNESS_NELEM(cases), 1, 600, argc, argv);
}
