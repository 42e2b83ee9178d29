/*
 * test_rawq.c: raw bridges to SysV message queues (issue 9; sysv-in and
 * sysv-out in ipcbus.conf(5), docs/legacy.md).
 *
 * The legacy side is plain msgsnd()/msgrcv() in this program (or in a
 * forked child, a process of its own); the other side is a raw protocol
 * client on the broker's Unix socket.  Every key is one nobody used, made
 * from this program's pid, and whatever queue is at it is removed after
 * the case (also when an assertion stopped it, and when the watchdog
 * fires), so `ipcs -q` shows nothing of ours afterwards.
 *
 *   in_basic      a legacy sender into sysv-in: text, binary bytes, an
 *                 empty message, one of msgmax bytes, from another process
 *                 too, byte-exact and in order; another type is left in
 *                 the queue; MTYPE 0 takes every type
 *   out_basic     a Unix publisher to sysv-out: the legacy receiver gets
 *                 the payloads byte-exact with the line's mtype; the line
 *                 is interest (a request gets no "no responders")
 *   oversize_in   over max-payload: dropped and counted, never truncated
 *   oversize_out  over msgmax: dropped and counted, never truncated
 *   full_out      nobody reads: the broker does not block (a client's
 *                 PINGs come back at once), drops are counted after wait=
 *   backlog_out   a reader that comes late (within wait=) gets everything
 *                 in order
 *   vanished      ipcrm of both queues while running: made again, the
 *                 bridges go on
 *   keep          the default: the queue outlives the broker, a cached
 *                 msqid works after a restart
 *   remove        removed at TERM and at INT; a queue another user made is
 *                 left
 *   bridged       sysv-out on broker A is interest on broker B: B's
 *                 publisher reaches the legacy receiver at A
 *   msgmni        no queue ids left: a clear error at start (in an IPC
 *                 namespace of its own, with msgmni 1)
 *   doc_c, doc_perl  docs/legacy.md's examples, extracted and run
 *   status        USR1: one line per raw bridge
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bridges.h"
#include "harness.h"

#define T 5000
#define MSGMAX_MAX (64 << 10)

/* ---- keys and queues ---- */

#define RQ_MAX_KEYS 64
static long rq_keys[RQ_MAX_KEYS];
static int rq_nkeys, rq_next;
static struct sigaction rq_old_alarm;

static void rq_rm(long key)
{
	int id = msgget((key_t)key, 0);
	if (id >= 0)
		msgctl(id, IPC_RMID, NULL);
}

static void rq_rm_cb(void *arg)
{
	long key = (long)(intptr_t)arg;
	rq_rm(key);
	for (int i = 0; i < rq_nkeys; i++)
		if (rq_keys[i] == key)
			rq_keys[i] = 0;
}

/* The harness's watchdog exits at once: our queues go first. */
static void rq_alarm(int sig)
{
	for (int i = 0; i < rq_nkeys; i++)
		if (rq_keys[i])
			rq_rm(rq_keys[i]);
	if (rq_old_alarm.sa_handler != SIG_DFL && rq_old_alarm.sa_handler != SIG_IGN)
		rq_old_alarm.sa_handler(sig);
	_exit(99);
}

/* A key no queue uses, removed with its queue at the end of the case. */
static long rq_key(void)
{
	if (!rq_nkeys && !rq_next) {
		struct sigaction sa = {.sa_handler = rq_alarm};
		sigaction(SIGALRM, &sa, &rq_old_alarm);
	}
	for (;;) {
		long key = 0x52000000L | (long)(getpid() & 0xffff) << 8 | (rq_next++ & 0xff);
		if (msgget((key_t)key, 0) >= 0 || errno != ENOENT)
			continue;
		int slot = -1;
		for (int i = 0; i < rq_nkeys; i++)
			if (!rq_keys[i])
				slot = i;
		if (slot < 0 && rq_nkeys < RQ_MAX_KEYS)
			slot = rq_nkeys++;
		if (slot >= 0)
			rq_keys[slot] = key;
		harness_defer(rq_rm_cb, (void *)(intptr_t)key);
		return key;
	}
}

struct rq_msg {
	long mtype;
	uint8_t mtext[MSGMAX_MAX];
};

static long rq_msgmax(void)
{
	long v = 8192;
	FILE *f = fopen("/proc/sys/kernel/msgmax", "r");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 8192;
		fclose(f);
	}
	return v > MSGMAX_MAX ? MSGMAX_MAX : v;
}

/* The msqid at key, or -1. */
static int rq_id(long key)
{
	return msgget((key_t)key, 0);
}

/* msgsnd without waiting: 0 or -errno. */
static int rq_send(int id, long mtype, const void *p, size_t n)
{
	static struct rq_msg m;
	m.mtype = mtype;
	memcpy(m.mtext, p, n);
	return msgsnd(id, &m, n, IPC_NOWAIT) == 0 ? 0 : -errno;
}

/* The next message of type mtype (0: any) within timeout_ms: its length
 * (*type set), or -errno (-ENOMSG: none came). */
static long rq_recv(int id, long mtype, struct rq_msg *m, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	for (;;) {
		ssize_t n = msgrcv(id, m, sizeof m->mtext, mtype, IPC_NOWAIT);
		if (n >= 0)
			return (long)n;
		if (errno != ENOMSG && errno != EINTR)
			return -errno;
		if (harness_now() >= deadline)
			return -ENOMSG;
		harness_sleep(2);
	}
}

/* Messages in the queue (IPC_STAT), or -1. */
static long rq_qnum(int id)
{
	struct msqid_ds ds;
	return msgctl(id, IPC_STAT, &ds) == 0 ? (long)ds.msg_qnum : -1;
}

/* ---- the broker's side ---- */

static struct harness_broker *rq_broker(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static struct harness_broker *rq_broker(const char *fmt, ...)
{
	char lines[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(lines, sizeof lines, fmt, ap);
	va_end(ap);
	struct harness_broker *b = harness_broker_up(lines);
	if (!b)
		fprintf(stderr, "\n  the broker did not start with:\n%s\n", lines);
	return b;
}

static struct harness_raw *rq_sub(struct harness_broker *b, const char *pattern)
{
	struct harness_raw *r = harness_raw_open(b, "rawq-test");
	if (!r)
		return NULL;
	if (harness_raw_sub(r, 0, 1, pattern, NULL) < 0 ||
	    harness_raw_barrier(r, T, NULL, NULL) != 1)
		return NULL;
	return r;
}

/* The next MSG on r: 1 with its payload in r->f, else 0. */
static int rq_next_msg(struct harness_raw *r, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	for (;;) {
		uint64_t now = harness_now();
		if (now >= deadline)
			return 0;
		if (harness_raw_read(r, (int)(deadline - now)) != 1)
			return 0;
		if (r->f.type == IPCBUS__FRAME_TYPE__MSG)
			return 1;
	}
}

static int rq_msg_is(const struct harness_raw *r, const void *p, size_t n)
{
	return r->f.type == IPCBUS__FRAME_TYPE__MSG && r->f.payload.len == n &&
	       (n == 0 || memcmp(r->f.payload.p, p, n) == 0);
}

/* What the broker's last USR1 status line says of the raw bridge in
 * direction dir ("sysv-in", "sysv-out") at key. */
struct rq_status {
	int msqid;
	unsigned long long msgs, bytes, oversize, full, gone, error;
	unsigned long long backlog; /* sysv-out: messages waiting */
	char line[1024];
};

static int rq_count(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static int rq_status(struct harness_broker *b, const char *dir, long key, struct rq_status *st)
{
	char needle[96];
	size_t len;
	snprintf(needle, sizeof needle, "status: %s key 0x%lx ", dir, key);
	char *text = harness_read_file(b->log, &len);
	int before = text ? rq_count(text, needle) : 0;
	free(text);
	if (!b->pid || kill(b->pid, SIGUSR1) < 0)
		return -1;
	uint64_t deadline = harness_now() + 2000;
	for (;;) {
		text = harness_read_file(b->log, &len);
		if (text && rq_count(text, needle) > before)
			break;
		free(text);
		if (harness_now() > deadline)
			return -1;
		harness_sleep(5);
	}
	char *last = NULL;
	for (char *p = text; (p = strstr(p, needle)); p++)
		last = p;
	char *eol = strchr(last, '\n');
	size_t n = eol ? (size_t)(eol - last) : strlen(last);
	if (n >= sizeof st->line)
		n = sizeof st->line - 1;
	memcpy(st->line, last, n);
	st->line[n] = 0;
	free(text);
	memset(st, 0, offsetof(struct rq_status, line));
	const char *m = strstr(st->line, "msqid ");
	const char *c = strstr(st->line, "): messages ");
	const char *d = strstr(st->line, "dropped oversize ");
	if (!m || !c || !d || sscanf(m, "msqid %d", &st->msqid) != 1 ||
	    sscanf(c, "): messages %llu, bytes %llu", &st->msgs, &st->bytes) != 2 ||
	    sscanf(d, "dropped oversize %llu full %llu gone %llu error %llu", &st->oversize,
		   &st->full, &st->gone, &st->error) != 4)
		return -1;
	const char *bl = strstr(st->line, "backlog ");
	if (bl && sscanf(bl, "backlog %llu", &st->backlog) != 1)
		return -1;
	return 0;
}

/* ---- cases ---- */

static void test_in_basic(void)
{
	long key = rq_key(), any = rq_key();
	struct harness_broker *b = rq_broker("sysv-in 0x%lx 3 legacy.in remove\n"
					     "sysv-in 0x%lx 0 legacy.any remove\n",
					     key, any);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = rq_id(key), aid = rq_id(any);
	CU_ASSERT_FATAL(id >= 0 && aid >= 0); /* the broker made them */
	struct harness_raw *s = rq_sub(b, "legacy.>");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);

	static uint8_t big[MSGMAX_MAX];
	size_t msgmax = (size_t)rq_msgmax();
	for (size_t i = 0; i < msgmax; i++)
		big[i] = (uint8_t)(i * 7 + 1);
	const uint8_t bin[] = {0, 1, 0xff, '\n', 0, 0x80, 'x', 0};
	/* another type stays in the queue for whoever reads it */
	CU_ASSERT_EQUAL(rq_send(id, 4, "not ours", 8), 0);
	CU_ASSERT_EQUAL(rq_send(id, 3, "hello", 5), 0);
	CU_ASSERT_EQUAL(rq_send(id, 3, bin, sizeof bin), 0);
	CU_ASSERT_EQUAL(rq_send(id, 3, "", 0), 0);
	CU_ASSERT_EQUAL(rq_send(id, 3, big, msgmax), 0);
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "hello", 5));
	CU_ASSERT_NSTRING_EQUAL(s->f.channel.p, "legacy.in", s->f.channel.len);
	CU_ASSERT_EQUAL(s->f.nheaders, 0);
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, bin, sizeof bin));
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "", 0));
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, big, msgmax));

	/* a legacy program of its own */
	pid_t pid = harness_fork(10);
	if (pid == 0) {
		int qid = msgget((key_t)key, 0);
		struct {
			long mtype;
			char text[32];
		} m = {3, "from a child"};
		_exit(qid >= 0 && msgsnd(qid, &m, 12, 0) == 0 ? 0 : 1);
	}
	CU_ASSERT_EQUAL(harness_wait_pid(pid, T), 0);
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "from a child", 12));

	/* MTYPE 0: any type, each published as it is */
	CU_ASSERT_EQUAL(rq_send(aid, 1, "one", 3), 0);
	CU_ASSERT_EQUAL(rq_send(aid, 99, "ninety-nine", 11), 0);
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "one", 3));
	CU_ASSERT_NSTRING_EQUAL(s->f.channel.p, "legacy.any", s->f.channel.len);
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "ninety-nine", 11));

	/* the type-4 message is still there, untouched */
	struct rq_msg *m = malloc(sizeof *m);
	CU_ASSERT_EQUAL(rq_recv(id, 4, m, 0), 8);
	CU_ASSERT_EQUAL(m->mtype, 4);
	free(m);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

static void test_out_basic(void)
{
	long key = rq_key();
	struct harness_broker *b = rq_broker("sysv-out legacy.> 0x%lx 9 remove\n", key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = rq_id(key);
	CU_ASSERT_FATAL(id >= 0);
	struct harness_raw *p = harness_raw_open(b, "pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);

	static uint8_t big[MSGMAX_MAX];
	size_t msgmax = (size_t)rq_msgmax();
	for (size_t i = 0; i < msgmax; i++)
		big[i] = (uint8_t)(i * 13 + 5);
	const uint8_t bin[] = {0xff, 0, 0, 1, '\r', '\n', 0xfe};
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "legacy.a", NULL, "abc", 3), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "legacy.b.c", NULL, bin, sizeof bin), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "legacy.a", NULL, "", 0), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "other", NULL, "not for it", 10), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "legacy.big", NULL, big, msgmax), 0);
	/* after the round trip the broker has routed them all: msgsnd is
	 * done while routing, so they are in the queue already */
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(p, T, NULL, NULL), 1);
	struct rq_msg *m = malloc(sizeof *m);
	CU_ASSERT_EQUAL(rq_recv(id, 0, m, 0), 3);
	CU_ASSERT_EQUAL(m->mtype, 9);
	CU_ASSERT_NSTRING_EQUAL(m->mtext, "abc", 3);
	CU_ASSERT_EQUAL(rq_recv(id, 0, m, 0), (long)sizeof bin);
	CU_ASSERT_EQUAL(m->mtype, 9);
	CU_ASSERT(memcmp(m->mtext, bin, sizeof bin) == 0);
	CU_ASSERT_EQUAL(rq_recv(id, 0, m, 0), 0);
	CU_ASSERT_EQUAL(m->mtype, 9);
	CU_ASSERT_EQUAL(rq_recv(id, 0, m, 0), (long)msgmax);
	CU_ASSERT(memcmp(m->mtext, big, msgmax) == 0);
	CU_ASSERT_EQUAL(rq_recv(id, 0, m, 0), -ENOMSG);

	/* the line is a subscription: a request finds a responder there
	 * (no E_NO_RESPONDERS), and its payload goes to the queue */
	CU_ASSERT_EQUAL(harness_raw_pub(p, 77, "legacy.req", "_INBOX.rawq.1", "q", 1), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(p, T, NULL, NULL), 1);
	CU_ASSERT_NOT_EQUAL(p->err_code, IPCBUS__ERR_CODE__E_NO_RESPONDERS);
	CU_ASSERT_EQUAL(rq_recv(id, 0, m, 0), 1);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 78, "nobody.here", "_INBOX.rawq.2", "q", 1), 0);
	CU_ASSERT(harness_raw_expect_err(p, IPCBUS__ERR_CODE__E_NO_RESPONDERS, 78, T));
	free(m);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

static void test_oversize_in(void)
{
	long key = rq_key();
	struct harness_broker *b =
		rq_broker("max-payload 100\nsysv-in 0x%lx 1 legacy.in remove\n", key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = rq_id(key);
	struct harness_raw *s = rq_sub(b, "legacy.in");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	uint8_t buf[200];
	memset(buf, 'a', sizeof buf);
	CU_ASSERT_EQUAL(rq_send(id, 1, buf, 101), 0);
	CU_ASSERT_EQUAL(rq_send(id, 1, buf, 200), 0);
	CU_ASSERT_EQUAL(rq_send(id, 1, buf, 100), 0);
	CU_ASSERT_EQUAL(rq_send(id, 1, "after", 5), 0);
	/* the 100 bytes whole, then "after": nothing cut to 100 */
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, buf, 100));
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "after", 5));
	CU_ASSERT_EQUAL(harness_raw_barrier(s, 200, NULL, NULL), 1);
	struct rq_status st;
	CU_ASSERT_EQUAL_FATAL(rq_status(b, "sysv-in", key, &st), 0);
	CU_ASSERT_EQUAL(st.oversize, 2);
	CU_ASSERT_EQUAL(st.msgs, 2);
	CU_ASSERT_EQUAL(st.bytes, 105);
	CU_ASSERT_EQUAL(rq_qnum(id), 0); /* taken, not left to clog the queue */
	CU_ASSERT(harness_broker_log_has(b, " oversize (over max-payload)"));
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

static void test_oversize_out(void)
{
	long key = rq_key();
	struct harness_broker *b = rq_broker("sysv-out big.> 0x%lx 2 remove\n", key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = rq_id(key);
	struct harness_raw *p = harness_raw_open(b, "pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	size_t msgmax = (size_t)rq_msgmax();
	uint8_t *buf = calloc(1, msgmax + 100);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "big.one", NULL, buf, msgmax + 1), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "big.two", NULL, buf, msgmax + 100), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "big.three", NULL, "small", 5), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(p, T, NULL, NULL), 1);
	struct rq_msg *m = malloc(sizeof *m);
	CU_ASSERT_EQUAL(rq_recv(id, 0, m, 0), 5); /* the first there is the small one */
	CU_ASSERT_EQUAL(rq_recv(id, 0, m, 0), -ENOMSG);
	struct rq_status st;
	CU_ASSERT_EQUAL_FATAL(rq_status(b, "sysv-out", key, &st), 0);
	CU_ASSERT_EQUAL(st.oversize, 2);
	CU_ASSERT_EQUAL(st.msgs, 1);
	CU_ASSERT(harness_broker_log_has(b, " oversize (larger than the queue takes)"));
	free(m);
	free(buf);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

/* Publish n messages of size bytes on channel, the first 4 bytes the
 * number, in one burst, then a round trip. */
static int rq_burst(struct harness_raw *p, const char *channel, int n, size_t size)
{
	uint8_t buf[2048];
	memset(buf, 'z', sizeof buf);
	for (int i = 0; i < n; i++) {
		memcpy(buf, &i, 4);
		if (harness_raw_pub(p, 0, channel, NULL, buf, size) < 0)
			return -1;
	}
	return harness_raw_barrier(p, T, NULL, NULL) == 1 ? 0 : -1;
}

static void test_full_out(void)
{
	long key = rq_key();
	struct harness_broker *b =
		rq_broker("sysv-out fill.> 0x%lx 1 remove wait=300 backlog=32k\n", key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = rq_id(key);
	unsigned long qbytes = 0;
	struct msqid_ds ds;
	CU_ASSERT_FATAL(msgctl(id, IPC_STAT, &ds) == 0);
	qbytes = (unsigned long)ds.msg_qbytes;
	struct harness_raw *p = harness_raw_open(b, "pub");
	struct harness_raw *ping = harness_raw_open(b, "ping");
	struct harness_raw *s = rq_sub(b, "fill.>");
	CU_ASSERT_FATAL(p && ping && s);

	/* far more than the queue and the backlog hold, nobody reading */
	const int n = 400;
	const size_t size = 1000;
	uint64_t t0 = harness_now();
	CU_ASSERT_EQUAL_FATAL(rq_burst(p, "fill.x", n, size), 0);
	uint64_t burst_ms = harness_now() - t0;
	/* the broker goes on serving: PINGs come back at once, and a Unix
	 * subscriber gets every message */
	uint64_t worst = 0;
	for (int i = 0; i < 20; i++) {
		uint64_t t = harness_now();
		CU_ASSERT_EQUAL(harness_raw_barrier(ping, 1000, NULL, NULL), 1);
		if (harness_now() - t > worst)
			worst = harness_now() - t;
		harness_sleep(20);
	}
	fprintf(stderr, "  (burst of %d: %llu ms; slowest PING while the queue is full: %llu ms)\n",
		n, (unsigned long long)burst_ms, (unsigned long long)worst);
	int got = 0;
	while (got < n && rq_next_msg(s, T))
		got++;
	CU_ASSERT_EQUAL(got, n);
	/* after wait= everything that did not fit is dropped and counted */
	struct rq_status st;
	uint64_t deadline = harness_now() + T;
	do {
		CU_ASSERT_EQUAL_FATAL(rq_status(b, "sysv-out", key, &st), 0);
	} while (st.backlog && harness_now() < deadline && (harness_sleep(50), 1));
	long inq = rq_qnum(id);
	fprintf(stderr, "  (queue %ld message(s) of %lu bytes, sent %llu, dropped full %llu)\n", inq,
		qbytes, st.msgs, st.full);
	CU_ASSERT_EQUAL(st.backlog, 0);
	CU_ASSERT(inq > 0 && (unsigned long)inq * size <= qbytes);
	CU_ASSERT_EQUAL(st.msgs, (unsigned long long)inq);
	CU_ASSERT_EQUAL(st.full + st.msgs, (unsigned long long)n);
	CU_ASSERT(harness_broker_wait_log(b, "full (the queue stayed full)", T) == 0);
	/* what is in the queue is the first ones, in order */
	struct rq_msg *m = malloc(sizeof *m);
	for (int i = 0; i < inq; i++) {
		int v = -1;
		CU_ASSERT_EQUAL(rq_recv(id, 0, m, 0), (long)size);
		memcpy(&v, m->mtext, 4);
		CU_ASSERT_EQUAL(v, i);
	}
	/* room again: the bridge carries on */
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "fill.y", NULL, "again", 5), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(p, T, NULL, NULL), 1);
	CU_ASSERT_EQUAL(rq_recv(id, 0, m, T), 5);
	free(m);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

static void test_backlog_out(void)
{
	long key = rq_key();
	struct harness_broker *b =
		rq_broker("sysv-out late.> 0x%lx 1 remove wait=20000 backlog=1M\n", key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = rq_id(key);
	struct harness_raw *p = harness_raw_open(b, "pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	const int n = 300;
	CU_ASSERT_EQUAL_FATAL(rq_burst(p, "late.x", n, 500), 0);
	struct rq_status st;
	CU_ASSERT_EQUAL_FATAL(rq_status(b, "sysv-out", key, &st), 0);
	CU_ASSERT(st.backlog > 0); /* 150 kB against a queue of msgmnb */
	struct rq_msg *m = malloc(sizeof *m);
	int in_order = 1, got = 0;
	for (int i = 0; i < n; i++) {
		int v = -1;
		if (rq_recv(id, 0, m, T) != 500)
			break;
		memcpy(&v, m->mtext, 4);
		in_order &= v == i;
		got++;
	}
	CU_ASSERT_EQUAL(got, n);
	CU_ASSERT(in_order);
	CU_ASSERT_EQUAL_FATAL(rq_status(b, "sysv-out", key, &st), 0);
	CU_ASSERT_EQUAL(st.full, 0);
	CU_ASSERT_EQUAL(st.msgs, (unsigned long long)n);
	CU_ASSERT_EQUAL(st.backlog, 0);
	free(m);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

static void test_vanished(void)
{
	long kin = rq_key(), kout = rq_key();
	struct harness_broker *b = rq_broker("sysv-in 0x%lx 1 gone.in remove\n"
					     "sysv-out gone.out 0x%lx 1 remove\n",
					     kin, kout);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_raw *s = rq_sub(b, "gone.in");
	struct harness_raw *p = harness_raw_open(b, "pub");
	CU_ASSERT_FATAL(s && p);
	int in0 = rq_id(kin), out0 = rq_id(kout);
	CU_ASSERT_FATAL(in0 >= 0 && out0 >= 0);

	/* the receiver's queue goes while it waits in msgrcv */
	CU_ASSERT_EQUAL(msgctl(in0, IPC_RMID, NULL), 0);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "gone.in: the queue vanished", T), 0);
	int in1 = rq_id(kin);
	CU_ASSERT(in1 >= 0 && in1 != in0);
	CU_ASSERT_EQUAL(rq_send(in1, 1, "still here", 10), 0);
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "still here", 10));

	/* the sender's: made again at its next message */
	CU_ASSERT_EQUAL(msgctl(out0, IPC_RMID, NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "gone.out", NULL, "made again", 10), 0);
	CU_ASSERT_EQUAL_FATAL(harness_raw_barrier(p, T, NULL, NULL), 1);
	int out1 = rq_id(kout);
	CU_ASSERT_FATAL(out1 >= 0);
	struct rq_msg *m = malloc(sizeof *m);
	CU_ASSERT_EQUAL(rq_recv(out1, 0, m, 0), 10);
	CU_ASSERT(harness_broker_log_has(b, "gone.out -> "));
	CU_ASSERT(harness_broker_log_has(b, "the queue vanished"));
	struct rq_status st;
	CU_ASSERT_EQUAL(rq_status(b, "sysv-out", kout, &st), 0);
	CU_ASSERT_EQUAL(st.msqid, out1);
	CU_ASSERT_EQUAL(st.gone, 0);
	CU_ASSERT_EQUAL(rq_status(b, "sysv-in", kin, &st), 0);
	CU_ASSERT_EQUAL(st.msqid, in1);
	free(m);
	/* no busy loop, no crash: it stops as usual and removes both */
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(rq_id(kin), -1);
	CU_ASSERT_EQUAL(rq_id(kout), -1);
}

static void test_keep(void)
{
	long key = rq_key(), kout = rq_key();
	struct harness_broker *b = rq_broker("sysv-in 0x%lx 1 kept.in\n"
					     "sysv-out kept.out 0x%lx 1\n",
					     key, kout);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = rq_id(key), oid = rq_id(kout);
	CU_ASSERT_FATAL(id >= 0 && oid >= 0);
	CU_ASSERT(harness_broker_log_has(b, "(created, mode 0600, kept at stop)"));
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	/* the queues outlive it; a program's cached msqid still works */
	CU_ASSERT_EQUAL(rq_id(key), id);
	CU_ASSERT_EQUAL(rq_id(kout), oid);
	CU_ASSERT_EQUAL(rq_send(id, 1, "while down", 10), 0);
	CU_ASSERT_EQUAL(rq_qnum(id), 1);
	CU_ASSERT_EQUAL_FATAL(harness_broker_restart(b), 0);
	CU_ASSERT(harness_broker_log_has(b, "(found, mode 0600, kept at stop)"));
	/* what waited is taken at start (nobody subscribed yet: at most once) */
	uint64_t deadline = harness_now() + T;
	while (rq_qnum(id) != 0 && harness_now() < deadline)
		harness_sleep(5);
	CU_ASSERT_EQUAL(rq_qnum(id), 0);
	struct harness_raw *s = rq_sub(b, "kept.in");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(rq_send(id, 1, "same msqid", 10), 0);
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "same msqid", 10));
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(rq_id(key), id);
}

static void test_remove(void)
{
	long kin = rq_key(), kout = rq_key(), kother = rq_key();
	/* a queue another user made, before the broker */
	pid_t pid = harness_fork(10);
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(77);
		_exit(msgget((key_t)kother, IPC_CREAT | 0666) >= 0 ? 0 : 1);
	}
	int other_made = harness_wait_pid(pid, T) == 0;
	struct harness_broker *b = rq_broker("sysv-in 0x%lx 1 rm.in remove\n"
					     "sysv-out rm.out 0x%lx 1 remove\n"
					     "sysv-out rm.other 0x%lx 1 remove\n",
					     kin, kout, kother);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = rq_id(kin);
	CU_ASSERT_FATAL(id >= 0 && rq_id(kout) >= 0);
	/* TERM */
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(rq_id(kin), -1);
	CU_ASSERT_EQUAL(rq_id(kout), -1);
	if (other_made) {
		CU_ASSERT(rq_id(kother) >= 0); /* not the broker's to remove */
		CU_ASSERT(harness_broker_log_has(b, "remove: not ours, left at stop"));
	} else {
		fprintf(stderr, "  (no other user to make a queue: that part skipped)\n");
	}
	/* a cached msqid is gone after a restart: the program must msgget */
	CU_ASSERT_EQUAL_FATAL(harness_broker_restart(b), 0);
	CU_ASSERT(rq_send(id, 1, "x", 1) == -EINVAL || rq_send(id, 1, "x", 1) == -EIDRM);
	CU_ASSERT(rq_id(kin) >= 0);
	/* INT does the same */
	kill(b->pid, SIGINT);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT(harness_broker_log_has(b, "Interrupt: stopping"));
	CU_ASSERT_EQUAL(rq_id(kin), -1);
	CU_ASSERT_EQUAL(rq_id(kout), -1);
}

static void test_bridged(void)
{
	struct bridges net;
	long key = rq_key();
	char line[128];
	snprintf(line, sizeof line, "sysv-out far.> 0x%lx 5 remove\n", key);
	CU_ASSERT_EQUAL_FATAL(bridges_new(&net, 2, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_conf(&net, 0, line), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_line(&net, 1, 0, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_start(&net), 0);
	CU_ASSERT_EQUAL_FATAL(bridges_wait_links(&net, 10000), 0);
	int id = rq_id(key);
	CU_ASSERT_FATAL(id >= 0);
	/* B learns A's sysv-out as interest: a request there has a responder */
	struct harness_raw *p = harness_raw_open(net.b[1], "pub-b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL_FATAL(harness_raw_wait_interest(p, "far.away", 10000), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "far.away", NULL, "over the bridge", 15), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(p, T, NULL, NULL), 1);
	struct rq_msg *m = malloc(sizeof *m);
	long n;
	int found = 0;
	/* the probes that found the interest come first */
	while (!found && (n = rq_recv(id, 0, m, T)) >= 0) {
		CU_ASSERT_EQUAL(m->mtype, 5);
		found = n == 15 && memcmp(m->mtext, "over the bridge", 15) == 0;
		if (!found)
			CU_ASSERT(n == 5 && memcmp(m->mtext, "probe", 5) == 0);
	}
	CU_ASSERT(found);
	free(m);
}

/* Run ipcbusd in an IPC namespace of its own where msgmni is 1 and one
 * queue exists already: the broker must say so and exit 1. */
static void test_msgmni(void)
{
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char conf[256], log[256], text[512];
	snprintf(conf, sizeof conf, "%s/c.conf", dir);
	snprintf(log, sizeof log, "%s/log", dir);
	snprintf(text, sizeof text, "listen unix://%s/s.sock\nsysv-in 0x1234 1 no.ids\n", dir);
	CU_ASSERT_EQUAL_FATAL(harness_write_file(conf, text), 0);
	pid_t pid = harness_fork(20);
	if (pid == 0) {
		if (unshare(CLONE_NEWIPC) < 0)
			_exit(77);
		int fd = open("/proc/sys/kernel/msgmni", O_WRONLY);
		if (fd < 0 || write(fd, "1\n", 2) != 2)
			_exit(77);
		close(fd);
		if (msgget(IPC_PRIVATE, 0600) < 0)
			_exit(77);
		int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (lfd < 0)
			_exit(99);
		dup2(lfd, 2);
		execl(harness_ipcbusd(), "ipcbusd", "-c", conf, (char *)NULL);
		_exit(99);
	}
	int st = harness_wait_pid(pid, 10000);
	if (st == 77) {
		fprintf(stderr, "  (no IPC namespace with a msgmni of our own here: skipped)\n");
		return;
	}
	size_t len;
	char *out = harness_read_file(log, &len);
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no queue ids left: the system holds msgmni (1) queues"));
	if (st != 1 || !strstr(out, "no queue ids left"))
		fprintf(stderr, "\n%s\n", out);
	free(out);
}

/* The fenced blocks of docs/legacy.md in a language, in order. */
static int rq_doc_block(const char *lang, int nth, const char *path)
{
	const char *src = getenv("top_srcdir");
	char doc[512], fence[32];
	size_t len;
	snprintf(doc, sizeof doc, "%s/docs/legacy.md", src ? src : "..");
	char *text = harness_read_file(doc, &len);
	if (!text)
		return -1;
	snprintf(fence, sizeof fence, "\n```%s\n", lang);
	char *p = text;
	for (int i = 0; i <= nth; i++) {
		p = strstr(p, fence);
		if (!p) {
			free(text);
			return -1;
		}
		p += strlen(fence);
	}
	char *end = strstr(p, "\n```\n");
	if (!end) {
		free(text);
		return -1;
	}
	end[1] = 0;
	int rc = harness_write_file(path, p);
	free(text);
	return rc;
}

static void test_doc_perl(void)
{
	char perl[256];
	if (harness_which("perl", perl, sizeof perl) < 0) {
		fprintf(stderr, "  (no perl: skipped)\n");
		return;
	}
	char *check[] = {perl, "-MIPC::Msg", "-e", "1", NULL};
	struct harness_proc *c = harness_proc_start(check, NULL, 0);
	if (!c || harness_proc_wait(c, T) != 0) {
		fprintf(stderr, "  (perl without IPC::Msg: skipped)\n");
		return;
	}
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char send[256], recv[256], kin[32], kout[32];
	snprintf(send, sizeof send, "%s/send.pl", dir);
	snprintf(recv, sizeof recv, "%s/recv.pl", dir);
	CU_ASSERT_EQUAL_FATAL(rq_doc_block("perl", 0, send), 0);
	CU_ASSERT_EQUAL_FATAL(rq_doc_block("perl", 1, recv), 0);
	long in = rq_key(), out = rq_key();
	snprintf(kin, sizeof kin, "0x%lx", in);
	snprintf(kout, sizeof kout, "%ld", out); /* decimal works too */
	struct harness_broker *b = rq_broker("sysv-in %s 1 legacy.orders remove\n"
					     "sysv-out legacy.replies.> %s 2 remove\n",
					     kin, kout);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_raw *s = rq_sub(b, "legacy.orders");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	char *sa[] = {perl, send, kin, "1", "order 17", NULL};
	struct harness_proc *ps = harness_proc_start(sa, NULL, 0);
	CU_ASSERT_FATAL(ps != NULL);
	CU_ASSERT_EQUAL(harness_proc_wait(ps, T), 0);
	if (ps->err_len)
		fprintf(stderr, "%s", ps->err);
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "order 17", 8));

	char *ra[] = {perl, recv, kout, "2", NULL};
	struct harness_proc *pr = harness_proc_start(ra, NULL, 0);
	CU_ASSERT_FATAL(pr != NULL);
	struct harness_raw *p = harness_raw_open(b, "pub");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "legacy.replies.17", NULL, "done", 4), 0);
	CU_ASSERT_EQUAL(harness_proc_wait(pr, T), 0);
	CU_ASSERT_STRING_EQUAL(pr->out, "done\n");
	if (pr->err_len)
		fprintf(stderr, "%s", pr->err);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

static void test_doc_c(void)
{
	char cc[256];
	if (harness_which("cc", cc, sizeof cc) < 0) {
		fprintf(stderr, "  (no cc: skipped)\n");
		return;
	}
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char src[256], bin[256], kin[32], kout[32];
	snprintf(src, sizeof src, "%s/legacy.c", dir);
	snprintf(bin, sizeof bin, "%s/legacy", dir);
	CU_ASSERT_EQUAL_FATAL(rq_doc_block("c", 0, src), 0);
	char *ca[] = {cc, "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-o", bin, src,
		      NULL};
	struct harness_proc *pc = harness_proc_start(ca, NULL, 0);
	CU_ASSERT_FATAL(pc != NULL);
	CU_ASSERT_EQUAL_FATAL(harness_proc_wait(pc, 60000), 0);
	long in = rq_key(), out = rq_key();
	snprintf(kin, sizeof kin, "0x%lx", in);
	snprintf(kout, sizeof kout, "0x%lx", out);
	struct harness_broker *b = rq_broker("sysv-in %s 1 legacy.orders remove\n"
					     "sysv-out legacy.replies.> %s 2 remove\n",
					     kin, kout);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_raw *s = rq_sub(b, "legacy.orders");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	char *sa[] = {bin, "send", kin, "1", "order 18", NULL};
	struct harness_proc *ps = harness_proc_start(sa, NULL, 0);
	CU_ASSERT_FATAL(ps != NULL);
	CU_ASSERT_EQUAL(harness_proc_wait(ps, T), 0);
	CU_ASSERT_FATAL(rq_next_msg(s, T));
	CU_ASSERT(rq_msg_is(s, "order 18", 8));
	char *ra[] = {bin, "recv", kout, "2", NULL};
	struct harness_proc *pr = harness_proc_start(ra, NULL, 0);
	struct harness_raw *p = harness_raw_open(b, "pub");
	CU_ASSERT_FATAL(pr && p);
	CU_ASSERT_EQUAL(harness_raw_pub(p, 0, "legacy.replies.18", NULL, "done", 4), 0);
	CU_ASSERT_EQUAL(harness_proc_wait(pr, T), 0);
	CU_ASSERT_STRING_EQUAL(pr->out, "2 done\n");
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

static void test_status(void)
{
	long kin = rq_key(), kout = rq_key();
	struct harness_broker *b = rq_broker("sysv-in 0x%lx 4 st.in remove\n"
					     "sysv-out st.> 0x%lx 6 remove\n",
					     kin, kout);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = rq_id(kin), oid = rq_id(kout);
	struct harness_raw *s = rq_sub(b, "st.in");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(rq_send(id, 4, "12345", 5), 0);
	CU_ASSERT_FATAL(rq_next_msg(s, T)); /* also went to sysv-out (st.>) */
	CU_ASSERT_EQUAL(harness_raw_barrier(s, T, NULL, NULL), 1);
	struct rq_status st;
	CU_ASSERT_EQUAL_FATAL(rq_status(b, "sysv-in", kin, &st), 0);
	CU_ASSERT_EQUAL(st.msqid, id);
	CU_ASSERT_EQUAL(st.msgs, 1);
	CU_ASSERT_EQUAL(st.bytes, 5);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.line, "mtype 4 channel st.in"));
	CU_ASSERT_EQUAL_FATAL(rq_status(b, "sysv-out", kout, &st), 0);
	CU_ASSERT_EQUAL(st.msqid, oid);
	CU_ASSERT_EQUAL(st.msgs, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.line, "mtype 6 pattern st.>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(st.line, "queue 1 message(s), 5 byte(s) of "));
	CU_ASSERT(harness_broker_log_has(b, "SysV limits: msgmax "));
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

int main(int argc, char **argv)
{
	static const struct harness_case cases[] = {
		{"in_basic", test_in_basic},
		{"out_basic", test_out_basic},
		{"oversize_in", test_oversize_in},
		{"oversize_out", test_oversize_out},
		{"full_out", test_full_out},
		{"backlog_out", test_backlog_out},
		{"vanished", test_vanished},
		{"keep", test_keep},
		{"remove", test_remove},
		{"bridged", test_bridged},
		{"msgmni", test_msgmni},
		{"doc_c", test_doc_c},
		{"doc_perl", test_doc_perl},
		{"status", test_status},
	};
	return harness_main("rawq", cases, HARNESS_NELEM(cases), 0, 240, argc, argv);
}
