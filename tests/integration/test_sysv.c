/*
 * test_sysv.c: sysv://KEY, what the conformance suite's library cases do
 * not reach (docs/protocol.md, SysV; docs/design.md, SysV queues).
 *
 * A raw SysV client here speaks the protocol with msgsnd/msgrcv and no
 * library: it makes its own two queues and proof, so it can also make the
 * HELLOs and messages a well-behaved client never sends.
 *
 *   raw_session        HELLO through the broker's queue, WELCOME, SUB, PUB and
 *                      MSG through the private queues; several frames in one
 *                      message; a frame in many messages; a Unix client on the
 *                      other side
 *   forged_hello       HELLOs in another client's name (its queues, no proof or
 *                      a wrong one), with loose or foreign queues, with a queue
 *                      already in use: refused, counted, nothing taken from the
 *                      victim, which goes on working
 *   other_uid          a process of another uid can neither write to a
 *                      client's send queue nor read its reply queue (root only)
 *   bad_messages       a message of another type, an unfinished frame (the
 *                      HELLO deadline: ping-interval here), a prefix over the
 *                      frame limit: fatal ERRs, then the end of the stream
 *   dead_client        a library client killed: noticed within the tick, its
 *                      subscription gone, its queues removed while publishing
 *                      goes on (its reply queue does not fill)
 *   closed_then_killed a client the broker closed (told why and the end) keeps
 *                      its queues; killed before it removed them, the broker
 *                      removes them
 *   fork_child_close   a forked child closing its copy of a connection leaves
 *                      the parent's queues and thread alone
 *   big_messages       1 MiB payloads both ways, whole, between a sysv library
 *                      client and a Unix one (128 messages each)
 *   stale_queue        a killed broker's queue is recognised and reclaimed; a
 *                      queue that is no broker's, or a live broker's, is an
 *                      error; ?mode= gives the queue's mode; TERM removes it
 *   broker_dies        a killed broker is noticed by the library (its pid gone)
 *                      and the client comes back to the next broker
 *   other_user_broker  a broker running as nobody with ?mode=0622: clients of
 *                      root and of uid 1 give it their queues (still 0600)
 *   cli_sub            `ipcbus sub -u sysv://KEY` prints what a Unix client
 *                      publishes
 *   unfinished_frame   a "broker" that sends part of a frame and no more: the
 *                      library drops the connection after its ping-interval;
 *                      also when the part is less than the length prefix
 *   msgmni             (in an IPC namespace of its own) no queue id left: the
 *                      broker does not start and says why; a client's connect
 *                      fails with -ENOSPC and a text, leaving no queue, and
 *                      the broker serves the next client once there is room
 *   qbytes             (the same) ?qbytes= of the broker raises its clients'
 *                      queues where permitted, else they hold msgmnb and the
 *                      log says why; qbytes=0 leaves them
 *
 * Every key is chosen free for this run and whatever is at it is removed at
 * cleanup, after the broker stopped; queues a case makes are removed too.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "ipcbus.h"
#include "sysv.h"

#define T 5000

/* ---- keys and queues a case makes ---- */

static void key_cleanup(void *arg)
{
	key_t key = (key_t)(intptr_t)arg;
	int id = msgget(key, 0);
	if (id >= 0)
		msgctl(id, IPC_RMID, NULL);
}

/* A key with no queue at it, whose queue (if any) goes at cleanup (after
 * the brokers, which are stopped in the reverse order of their making). */
static key_t free_key(void)
{
	for (int i = 0; i < 1000; i++) {
		uint32_t r;
		if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
			r = (uint32_t)getpid() * 2654435761u + (uint32_t)i;
		key_t k = (key_t)(0x51000000u | (r & 0x00ffffffu));
		if (msgget(k, 0) < 0 && errno == ENOENT) {
			harness_defer(key_cleanup, (void *)(intptr_t)k);
			return k;
		}
	}
	CU_FAIL("no free SysV key");
	return 0;
}

static void queue_cleanup(void *arg)
{
	msgctl((int)(intptr_t)arg, IPC_RMID, NULL);
}

/* A private queue of mode `mode`, removed at cleanup. */
static int new_queue(int mode)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | mode);
	CU_ASSERT(id >= 0);
	if (id >= 0)
		harness_defer(queue_cleanup, (void *)(intptr_t)id);
	return id;
}

static int queue_exists(int id)
{
	struct msqid_ds ds;
	return msgctl(id, IPC_STAT, &ds) == 0;
}

/* A broker listening on sysv://KEY (and the default Unix socket). */
static struct harness_broker *sysv_broker(key_t key, const char *more)
{
	char lines[512];
	snprintf(lines, sizeof lines, "listen sysv://0x%x\n%s", (unsigned)key, more ? more : "");
	return harness_broker_up(lines);
}

/* The same with debug logging (each refusal is logged, not one a second). */
static struct harness_broker *sysv_broker_v(key_t key)
{
	static const char *const v[] = {"-v", NULL};
	char lines[128];
	snprintf(lines, sizeof lines, "listen sysv://0x%x\n", (unsigned)key);
	struct harness_broker *b = harness_broker_new(lines);
	if (b && harness_broker_start(b, v) < 0) {
		CU_FAIL("the broker did not start");
		return NULL;
	}
	return b;
}

static void sysv_url(char *out, size_t n, key_t key)
{
	snprintf(out, n, "sysv://0x%x", (unsigned)key);
}

/* ---- the raw SysV client ---- */

struct rq {
	int shq, tx, rx;
	long proof;
	struct buf in;
	struct frame f;        /* the frame last read (a view into body) */
	uint8_t *body;
	size_t body_cap;
	int err_code, err_fatal;
	char err_text[512];
	int eof;               /* SYSV_MT_EOF came, or the queue was removed */
	uint64_t next_id;
};

static void rq_free(void *arg)
{
	struct rq *r = arg;
	msgctl(r->tx, IPC_RMID, NULL);
	msgctl(r->rx, IPC_RMID, NULL);
	buf_fini(&r->in);
	free(r->body);
	free(r);
}

/* Queues and the proof in the send queue; no HELLO yet. */
static struct rq *rq_new(key_t key)
{
	struct rq *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->shq = msgget(key, 0);
	r->tx = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	r->rx = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	buf_init(&r->in, 64u << 20);
	r->next_id = 1;
	uint64_t p = 0;
	getrandom(&p, sizeof p, 0);
	r->proof = (long)((p & 0x7fffffffffffffffULL) | 1);
	harness_defer(rq_free, r);
	struct sysv_msg m = {.mtype = r->proof};
	if (r->shq < 0 || r->tx < 0 || r->rx < 0 || msgsnd(r->tx, &m, 0, IPC_NOWAIT) < 0)
		return NULL;
	return r;
}

/* Send a HELLO to the broker's queue naming tx, rx and proof. */
static int rq_hello_as(int shq, int tx, int rx, long proof, const char *name)
{
	Ipcbus__Hello h = IPCBUS__HELLO__INIT;
	Ipcbus__Sysv s = IPCBUS__SYSV__INIT;
	struct buf b;

	h.version = 1;
	h.has_pid = 1;
	h.pid = (uint32_t)getpid();
	h.has_name = 1;
	h.name.data = (uint8_t *)(uintptr_t)name;
	h.name.len = strlen(name);
	s.send_queue = tx;
	s.reply_queue = rx;
	s.proof = (uint64_t)proof;
	h.sysv = &s;
	buf_init(&b, 1 << 16);
	int rc = frame_append_hello(&b, 1, &h);
	if (rc == 0) {
		struct {
			long mtype;
			uint8_t text[4096];
		} m = {.mtype = SYSV_MT_HELLO};
		memcpy(m.text, buf_rptr(&b), buf_len(&b));
		rc = msgsnd(shq, &m, buf_len(&b), IPC_NOWAIT) < 0 ? -errno : 0;
	}
	buf_fini(&b);
	return rc;
}

/* One message of bytes into the send queue. */
static int rq_send(struct rq *r, long mtype, const void *p, size_t n)
{
	struct sysv_msg *m = malloc(sizeof *m + n + 1);
	if (!m)
		return -ENOMEM;
	m->mtype = mtype;
	memcpy(m->mtext, p, n);
	int rc = msgsnd(r->tx, m, n, IPC_NOWAIT) < 0 ? -errno : 0;
	free(m);
	return rc;
}

/* Frames, each with its prefix, into one message. */
static int rq_frames(struct rq *r, const struct frame *f, size_t nf)
{
	struct buf b;
	int rc = 0;
	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < nf && rc == 0; i++)
		rc = frame_append(&b, &f[i], NULL, 0);
	if (rc == 0)
		rc = rq_send(r, SYSV_MT_DATA, buf_rptr(&b), buf_len(&b));
	buf_fini(&b);
	return rc;
}

static struct frame_bytes fb(const char *s)
{
	return (struct frame_bytes){.p = (const uint8_t *)s, .len = strlen(s), .set = 1};
}

/* The next frame into r->f: 1, 0 on timeout, -1 at the end of the
 * stream, -2 for bytes that do not decode. */
static int rq_read(struct rq *r, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	struct {
		long mtype;
		uint8_t text[65536];
	} m;

	for (;;) {
		const uint8_t *body;
		size_t len, need;
		long k = frame_split(buf_rptr(&r->in), buf_len(&r->in), 64u << 20, &body, &len, &need);
		if (k < 0)
			return -2;
		if (k > 0) {
			if (len > r->body_cap) {
				free(r->body);
				r->body = malloc(len);
				r->body_cap = r->body ? len : 0;
				if (!r->body)
					return -2;
			}
			memcpy(r->body, body, len);
			buf_consume(&r->in, (size_t)k);
			if (frame_decode(r->body, len, &r->f) < 0)
				return -2;
			if (r->f.type == IPCBUS__FRAME_TYPE__ERR) {
				Ipcbus__Error *e = frame_unpack_error(&r->f);
				r->err_code = e ? (int)e->code : -1;
				r->err_fatal = e && e->has_fatal && e->fatal;
				snprintf(r->err_text, sizeof r->err_text, "%.*s",
					 e && e->has_text ? (int)e->text.len : 0,
					 e && e->has_text ? (const char *)e->text.data : "");
				if (e)
					ipcbus__error__free_unpacked(e, NULL);
			}
			return 1;
		}
		if (r->eof)
			return -1;
		ssize_t n = msgrcv(r->rx, &m, sizeof m.text, 0, IPC_NOWAIT);
		if (n >= 0) {
			if (m.mtype == SYSV_MT_EOF)
				r->eof = 1;
			else if (m.mtype == SYSV_MT_DATA && buf_append(&r->in, m.text, (size_t)n) < 0)
				return -2;
			continue;
		}
		if (errno == EIDRM || errno == EINVAL) {
			r->eof = 1;
			continue;
		}
		if (harness_now() >= deadline)
			return 0;
		harness_sleep(1);
	}
}

/* Read until a frame of type `type` (others dropped): 1 or 0/-1/-2. */
static int rq_expect(struct rq *r, int type, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	for (;;) {
		uint64_t now = harness_now();
		int rc = rq_read(r, now < deadline ? (int)(deadline - now) : 0);
		if (rc != 1)
			return rc;
		if (r->f.type == type)
			return 1;
		if (r->f.type == IPCBUS__FRAME_TYPE__PING) {
			struct frame pong = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = r->f.has_id,
					     .id = r->f.id};
			rq_frames(r, &pong, 1);
		}
	}
}

/* A round trip: PING, its PONG.  1 when it came. */
static int rq_ping(struct rq *r)
{
	struct frame p = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = ++r->next_id};
	if (rq_frames(r, &p, 1) < 0)
		return 0;
	for (;;) {
		if (rq_expect(r, IPCBUS__FRAME_TYPE__PONG, T) != 1)
			return 0;
		if (r->f.id == p.id)
			return 1;
	}
}

/* A raw client that is welcomed. */
static struct rq *rq_open(key_t key, const char *name)
{
	struct rq *r = rq_new(key);
	if (!r || rq_hello_as(r->shq, r->tx, r->rx, r->proof, name) < 0) {
		CU_FAIL("raw sysv client: no HELLO");
		return NULL;
	}
	if (rq_expect(r, IPCBUS__FRAME_TYPE__WELCOME, T) != 1) {
		CU_FAIL("raw sysv client: no WELCOME");
		return NULL;
	}
	return r;
}

/* ---- library helpers ---- */

static void lib_close(void *arg)
{
	ipcbus_close(arg);
}

static ipcbus *lib_open(const char *url, const char *name)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	ipcbus *c = NULL;
	o.name = name;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 200;
	int rc = ipcbus_connect(&c, url, &o);
	if (rc < 0) {
		fprintf(stderr, "connect %s: %s\n", url, ipcbus_strerror(rc));
		CU_FAIL("ipcbus_connect");
		return NULL;
	}
	harness_defer(lib_close, c);
	return c;
}

struct got {
	size_t n, bytes;
	int whole;
	char last[64];
};

static void got_cb(void *arg, const ipcbus_msg *m)
{
	struct got *g = arg;
	g->n++;
	g->bytes += m->len;
	snprintf(g->last, sizeof g->last, "%.*s", (int)(m->len < 60 ? m->len : 60),
		 (const char *)m->data);
	if (m->len == 1 << 20) {
		const uint8_t *p = m->data;
		int ok = 1;
		for (size_t i = 0; i < m->len && ok; i++)
			ok = p[i] == (uint8_t)(i * 7 + (i >> 13));
		g->whole += ok;
	}
}

/* Dispatch c until g has n messages (or T ms). */
static int pump_until(ipcbus *c, struct got *g, size_t n)
{
	uint64_t deadline = harness_now() + T;
	while (g->n < n && harness_now() < deadline)
		if (ipcbus_wait(c, 50) < 0)
			return -1;
	return g->n >= n ? 0 : -1;
}

/* ---- the cases ---- */

static void test_raw_session(void)
{
	key_t key = free_key();
	struct harness_broker *b = sysv_broker(key, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct rq *r = rq_open(key, "raw-sysv");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	struct harness_raw *u = harness_raw_open(b, "raw-unix");
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);

	/* SUB, and a PING in the same message: both answered */
	struct frame two[2] = {
		{.type = IPCBUS__FRAME_TYPE__SUB, .has_id = 1, .id = 10, .has_sid = 1, .sid = 7,
		 .channel = fb("sv.a")},
		{.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = 11},
	};
	CU_ASSERT_EQUAL(rq_frames(r, two, 2), 0);
	CU_ASSERT_EQUAL(rq_expect(r, IPCBUS__FRAME_TYPE__PONG, T), 1);
	CU_ASSERT_EQUAL(r->f.id, 11);
	CU_ASSERT_EQUAL(harness_raw_pub(u, 0, "sv.a", NULL, "from unix", 9), 0);
	CU_ASSERT_EQUAL(rq_expect(r, IPCBUS__FRAME_TYPE__MSG, T), 1);
	CU_ASSERT_EQUAL(r->f.sid, 7);
	CU_ASSERT(r->f.payload.len == 9 && memcmp(r->f.payload.p, "from unix", 9) == 0);

	/* a PUB cut into 1-byte messages, then 50 PUBs in one message */
	CU_ASSERT_EQUAL(harness_raw_sub(u, 1, 3, "sv.b", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(u, T, NULL, NULL), 1);
	struct frame pub = {.type = IPCBUS__FRAME_TYPE__PUB, .channel = fb("sv.b"),
			    .payload = fb("in pieces")};
	struct buf b1;
	buf_init(&b1, 4096);
	CU_ASSERT_EQUAL(frame_append(&b1, &pub, NULL, 0), 0);
	for (size_t i = 0; i < buf_len(&b1); i++)
		CU_ASSERT_EQUAL(rq_send(r, SYSV_MT_DATA, buf_rptr(&b1) + i, 1), 0);
	buf_fini(&b1);
	CU_ASSERT_EQUAL(harness_raw_read(u, T), 1);
	CU_ASSERT(harness_raw_is_msg(u, 3, "in pieces"));
	struct frame many[50];
	for (int i = 0; i < 50; i++)
		many[i] = (struct frame){.type = IPCBUS__FRAME_TYPE__PUB, .channel = fb("sv.b"),
					 .payload = fb("batched")};
	CU_ASSERT_EQUAL(rq_frames(r, many, 50), 0);
	int n = 0;
	while (n < 50 && harness_raw_read(u, T) == 1)
		n += harness_raw_is_msg(u, 3, "batched");
	CU_ASSERT_EQUAL(n, 50);
	CU_ASSERT_EQUAL(rq_ping(r), 1);
	/* its identity is its queues' creator */
	CU_ASSERT_EQUAL(harness_broker_log_has(b, "error"), 0);
}

static void test_forged_hello(void)
{
	key_t key = free_key();
	struct harness_broker *b = sysv_broker_v(key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct rq *victim = rq_open(key, "victim");
	CU_ASSERT_PTR_NOT_NULL_FATAL(victim);
	int shq = victim->shq;

	/* 1. a forger that saw a client's new queues and races its HELLO:
	 * without the proof (a guess) nothing opens and nothing is taken, so
	 * the client's own HELLO still works */
	struct rq *late = rq_new(key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(late);
	CU_ASSERT_EQUAL(rq_hello_as(shq, late->tx, late->rx, 12345, "forger"), 0);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "no proof", T), 0);
	CU_ASSERT_EQUAL(rq_hello_as(shq, late->tx, late->rx, late->proof, "late"), 0);
	CU_ASSERT_EQUAL(rq_expect(late, IPCBUS__FRAME_TYPE__WELCOME, T), 1);
	/* a live connection's queues, with its (spent) proof or any: refused */
	CU_ASSERT_EQUAL(rq_hello_as(shq, victim->tx, victim->rx, victim->proof, "forger"), 0);
	if (harness_broker_wait_log(b, "another connection's", T) < 0) {
		char *log = harness_read_file(b->log, NULL);
		fprintf(stderr, "%s\n", log ? log : "");
		free(log);
		CU_FAIL("a HELLO naming a live connection's queues");
	}
	CU_ASSERT_EQUAL(rq_ping(late), 1);
	/* the victim goes on as if nothing happened */
	struct frame sub = {.type = IPCBUS__FRAME_TYPE__SUB, .has_id = 1, .id = 2, .has_sid = 1,
			    .sid = 1, .channel = fb("sv.victim")};
	CU_ASSERT_EQUAL(rq_frames(victim, &sub, 1), 0);
	CU_ASSERT_EQUAL(rq_ping(victim), 1);
	struct harness_raw *u = harness_raw_open(b, "publisher");
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(harness_raw_pub(u, 0, "sv.victim", NULL, "still mine", 10), 0);
	CU_ASSERT_EQUAL(rq_expect(victim, IPCBUS__FRAME_TYPE__MSG, T), 1);
	CU_ASSERT(victim->f.payload.len == 10);

	/* 2. queues others may use: refused, even with the proof */
	struct rq *loose = rq_new(key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(loose);
	int open_rx = new_queue(0622);
	CU_ASSERT_EQUAL(rq_hello_as(shq, loose->tx, open_rx, loose->proof, "loose"), 0);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "others could read or write it", T), 0);
	CU_ASSERT_FALSE(harness_broker_log_has(b, "loose"));
	/* the proof was not taken: the queue is refused before */
	struct sysv_msg got;
	CU_ASSERT(msgrcv(loose->tx, &got, 0, loose->proof, IPC_NOWAIT) == 0);

	/* 3. one queue that does not exist, the broker's own queue */
	struct rq *odd = rq_new(key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(odd);
	CU_ASSERT_EQUAL(rq_hello_as(shq, odd->tx, 0x7ffffff0, odd->proof, "odd"), 0);
	CU_ASSERT_EQUAL(rq_hello_as(shq, odd->tx, shq, odd->proof, "odd"), 0);
	CU_ASSERT_EQUAL(rq_hello_as(shq, odd->tx, odd->tx, odd->proof, "odd"), 0);
	/* 4. bytes that are no HELLO at all */
	struct {
		long mtype;
		char text[8];
	} junk = {SYSV_MT_HELLO, "garbage"};
	CU_ASSERT_EQUAL(msgsnd(shq, &junk, 7, IPC_NOWAIT), 0);
	CU_ASSERT_EQUAL(rq_ping(victim), 1);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT(harness_broker_log_has(b, "HELLOs refused"));
	/* the victim's queues are its own: the broker left them */
	CU_ASSERT(queue_exists(victim->tx) && queue_exists(victim->rx));
}

/* In a child of another uid: 0 when neither queue can be used. */
static int try_as_nobody(int tx, int rx)
{
	pid_t pid = harness_fork(10);
	if (pid == 0) {
		struct {
			long mtype;
			char text[16];
		} m = {SYSV_MT_DATA, "forged"};
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		int bad = 0;
		bad |= msgsnd(tx, &m, 6, IPC_NOWAIT) == 0 || errno != EACCES;
		bad |= msgrcv(rx, &m, sizeof m.text, 0, IPC_NOWAIT) >= 0 || errno != EACCES;
		struct msqid_ds ds;
		bad |= msgctl(rx, IPC_STAT, &ds) == 0;
		_exit(bad ? 1 : 0);
	}
	return harness_wait_pid(pid, T);
}

static void test_other_uid(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "  (not root: no other uid to try; skipped)\n");
		return;
	}
	key_t key = free_key();
	char url[64];
	sysv_url(url, sizeof url, key);
	struct harness_broker *b = sysv_broker(key, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct rq *r = rq_open(key, "raw");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(try_as_nobody(r->tx, r->rx), 0);
	CU_ASSERT_EQUAL(rq_ping(r), 1);
	/* and nobody may write to the broker's queue (mode 0600): no HELLO */
	pid_t pid = harness_fork(10);
	if (pid == 0) {
		struct {
			long mtype;
			char text[8];
		} m = {SYSV_MT_HELLO, "x"};
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		_exit(msgsnd(r->shq, &m, 1, IPC_NOWAIT) < 0 && errno == EACCES ? 0 : 1);
	}
	CU_ASSERT_EQUAL(harness_wait_pid(pid, T), 0);
}

static void test_bad_messages(void)
{
	key_t key = free_key();
	struct harness_broker *b = sysv_broker(key, "ping-interval 400\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);

	/* a message type frames do not use */
	struct rq *r = rq_open(key, "typo");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(rq_send(r, 9, "x", 1), 0);
	CU_ASSERT_EQUAL(rq_expect(r, IPCBUS__FRAME_TYPE__ERR, T), 1);
	CU_ASSERT_EQUAL(r->err_code, IPCBUS__ERR_CODE__E_PROTOCOL);
	CU_ASSERT(r->err_fatal);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->err_text, "type 9"));
	CU_ASSERT_EQUAL(rq_read(r, T), -1); /* then the end */

	/* a frame begun and never finished: bounded in time */
	struct rq *u = rq_open(key, "unfinished");
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	uint8_t part[12] = {0xe8, 0x07}; /* 1000 bytes announced, 10 come */
	uint64_t t0 = harness_now();
	CU_ASSERT_EQUAL(rq_send(u, SYSV_MT_DATA, part, sizeof part), 0);
	/* its PINGs not answered: a PONG would be the rest of the frame */
	int rc;
	while ((rc = rq_read(u, 4000)) == 1 && u->f.type == IPCBUS__FRAME_TYPE__PING)
		;
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_EQUAL(u->f.type, IPCBUS__FRAME_TYPE__ERR);
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (an unfinished frame refused after %llu ms: %s)\n",
		(unsigned long long)dt, u->err_text);
	CU_ASSERT(dt >= 350 && dt < 800); /* 400 ms, checked every 200 */
	CU_ASSERT_PTR_NOT_NULL(strstr(u->err_text, "not finished"));
	CU_ASSERT(u->err_fatal);

	/* a prefix over the frame limit: refused before anything is held */
	struct rq *h = rq_open(key, "huge");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	uint8_t huge[] = {0x80, 0x80, 0x80, 0x80, 0x02}; /* 512 MiB */
	CU_ASSERT_EQUAL(rq_send(h, SYSV_MT_DATA, huge, sizeof huge), 0);
	CU_ASSERT_EQUAL(rq_expect(h, IPCBUS__FRAME_TYPE__ERR, T), 1);
	CU_ASSERT_EQUAL(h->err_code, IPCBUS__ERR_CODE__E_FRAME_TOO_BIG);

	/* the broker and the others go on */
	struct harness_raw *x = harness_raw_open(b, "bystander");
	CU_ASSERT_PTR_NOT_NULL_FATAL(x);
	CU_ASSERT_EQUAL(harness_raw_barrier(x, T, NULL, NULL), 1);
}

/* The ids of the private queues (key 0) on the system, from
 * /proc/sysvipc/msg (msg_lrpid would name a reading thread, not the
 * process: the ids new since a moment are the queues made meanwhile). */
static int private_queues(int *ids, int max)
{
	FILE *f = fopen("/proc/sysvipc/msg", "re");
	char line[512];
	int n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f) && n < max) {
		long long key;
		int id;
		if (sscanf(line, "%lld %d", &key, &id) == 2 && key == 0)
			ids[n++] = id;
	}
	fclose(f);
	return n;
}

/* The ids in now[] that are not in before[]. */
static int new_ids(const int *before, int nb, const int *now, int nn, int *out, int max)
{
	int k = 0;
	for (int i = 0; i < nn && k < max; i++) {
		int seen = 0;
		for (int j = 0; j < nb; j++)
			seen |= before[j] == now[i];
		if (!seen)
			out[k++] = now[i];
	}
	return k;
}

static void test_dead_client(void)
{
	key_t key = free_key();
	char url[64];
	sysv_url(url, sizeof url, key);
	struct harness_broker *b = sysv_broker(key, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	static int before[4096], now[4096];
	int nb = private_queues(before, 4096);
	int ready[2];
	CU_ASSERT_EQUAL_FATAL(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = harness_fork(20);
	if (pid == 0) {
		ipcbus *c = NULL;
		ipcbus_opts o = IPCBUS_OPTS_INIT;
		if (ipcbus_connect(&c, url, &o) < 0 ||
		    ipcbus_subscribe(c, "sv.doomed", NULL, NULL, NULL, NULL) < 0 ||
		    ipcbus_flush(c, T) < 0)
			_exit(1);
		if (write(ready[1], "k", 1) != 1)
			_exit(1);
		pause(); /* never dispatches again */
		_exit(0);
	}
	close(ready[1]);
	char k;
	CU_ASSERT_EQUAL_FATAL(read(ready[0], &k, 1), 1);
	close(ready[0]);
	int ids[8];
	int nq = new_ids(before, nb, now, private_queues(now, 4096), ids, 8);
	CU_ASSERT_EQUAL(nq, 2); /* its send and reply queues */
	struct harness_raw *u = harness_raw_open(b, "publisher");
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(harness_raw_wait_interest(u, "sv.doomed", T), 0);
	kill(pid, SIGKILL);
	CU_ASSERT(harness_wait_pid(pid, T) >= 0);
	uint64_t t0 = harness_now();
	/* publishing goes on meanwhile: its queue must not stay full */
	static char payload[4096];
	int gone = 0;
	while (!gone && harness_now() - t0 < 4000) {
		for (int i = 0; i < 16; i++)
			harness_raw_pub(u, 0, "sv.doomed", NULL, payload, sizeof payload);
		CU_ASSERT_EQUAL(harness_raw_barrier(u, T, NULL, NULL), 1);
		gone = 1;
		for (int i = 0; i < nq; i++)
			gone &= !queue_exists(ids[i]);
		if (!gone)
			harness_sleep(20);
	}
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (its queues were removed %llu ms after the kill)\n",
		(unsigned long long)dt);
	CU_ASSERT(gone);
	CU_ASSERT(dt < 3000);
	CU_ASSERT(harness_broker_log_has(b, "is gone"));
	/* and its subscription: no responders */
	CU_ASSERT_EQUAL(harness_raw_pub(u, 99, "sv.doomed", "_INBOX.t.x", "q", 1), 0);
	CU_ASSERT_EQUAL(harness_raw_expect_err(u, IPCBUS__ERR_CODE__E_NO_RESPONDERS, 99, T), 1);
}

static void fill_big(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 13));
}

/* A client the broker closed, killed before it removed its queues: the
 * broker still watches it (a tail), and removes them. */
static void test_closed_then_killed(void)
{
	key_t key = free_key();
	struct harness_broker *b = sysv_broker(key, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int fds[2];
	CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = harness_fork(20);
	if (pid == 0) {
		struct rq *r = rq_open(key, "closed");
		int ids[2] = {-1, -1};
		if (r && rq_send(r, 9, "x", 1) == 0 && rq_expect(r, IPCBUS__FRAME_TYPE__ERR, T) == 1 &&
		    rq_read(r, T) == -1) {
			ids[0] = r->tx;
			ids[1] = r->rx;
		}
		if (write(fds[1], ids, sizeof ids) != (ssize_t)sizeof ids)
			_exit(1);
		pause(); /* its queues are left as they are */
		_exit(0);
	}
	close(fds[1]);
	int ids[2];
	CU_ASSERT_EQUAL_FATAL(read(fds[0], ids, sizeof ids), (ssize_t)sizeof ids);
	close(fds[0]);
	CU_ASSERT_FATAL(ids[0] >= 0 && ids[1] >= 0);
	/* closed, told (ERR, the end), alive: its queues are its own */
	CU_ASSERT(queue_exists(ids[0]) && queue_exists(ids[1]));
	kill(pid, SIGKILL);
	CU_ASSERT(harness_wait_pid(pid, T) >= 0);
	uint64_t t0 = harness_now();
	while ((queue_exists(ids[0]) || queue_exists(ids[1])) && harness_now() - t0 < 3000)
		harness_sleep(20);
	fprintf(stderr, "  (its queues were removed %llu ms after the kill)\n",
		(unsigned long long)(harness_now() - t0));
	CU_ASSERT_FALSE(queue_exists(ids[0]));
	CU_ASSERT_FALSE(queue_exists(ids[1]));
}

/* A forked child that closes its copy of the connection: the parent's
 * connection (its queues, its thread) goes on. */
static void test_fork_child_close(void)
{
	key_t key = free_key();
	char url[64];
	sysv_url(url, sizeof url, key);
	struct harness_broker *b = sysv_broker(key, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *c = lib_open(url, "parent");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	pid_t pid = harness_fork(10);
	if (pid == 0) {
		ipcbus_close(c);
		_exit(0);
	}
	CU_ASSERT_EQUAL(harness_wait_pid(pid, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);
	CU_ASSERT(ipcbus_connected(c));
}

static void test_big_messages(void)
{
	key_t key = free_key();
	char url[64];
	sysv_url(url, sizeof url, key);
	struct harness_broker *b = sysv_broker(key, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *s = lib_open(url, "big-sysv");
	ipcbus *u = lib_open(b->url, "big-unix");
	CU_ASSERT_FATAL(s && u);
	CU_ASSERT_EQUAL(ipcbus_max_payload(s), 1 << 20);
	struct got gs = {0}, gu = {0};
	CU_ASSERT_EQUAL(ipcbus_subscribe(s, "sv.big", NULL, got_cb, &gs, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_subscribe(u, "sv.big", NULL, got_cb, &gu, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(s, T), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);
	uint8_t *big = malloc(1 << 20);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	fill_big(big, 1 << 20);
	/* sysv -> both, then unix -> both, three each */
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ipcbus_publish(s, "sv.big", big, 1 << 20), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(s, T), 0);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ipcbus_publish(u, "sv.big", big, 1 << 20), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(u, T), 0);
	CU_ASSERT_EQUAL(pump_until(s, &gs, 6), 0);
	CU_ASSERT_EQUAL(pump_until(u, &gu, 6), 0);
	fprintf(stderr, "  (sysv got %zu of 6 whole, unix %zu of 6)\n", (size_t)gs.whole,
		(size_t)gu.whole);
	CU_ASSERT_EQUAL(gs.whole, 6);
	CU_ASSERT_EQUAL(gu.whole, 6);
	free(big);
	/* one byte over is refused before it is sent */
	uint8_t *over = calloc(1, (1 << 20) + 1);
	CU_ASSERT_EQUAL(ipcbus_publish(s, "sv.big", over, (1 << 20) + 1), IPCBUS_ETOOBIG);
	free(over);
}

static void test_stale_queue(void)
{
	key_t key = free_key();
	char lines[128];
	snprintf(lines, sizeof lines, "listen sysv://0x%x?mode=0620\n", (unsigned)key);
	struct harness_broker *b = harness_broker_up(lines);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	int id = msgget(key, 0);
	struct msqid_ds ds;
	CU_ASSERT_FATAL(id >= 0 && msgctl(id, IPC_STAT, &ds) == 0);
	CU_ASSERT_EQUAL(ds.msg_perm.mode & 0777, 0620);

	/* a second broker on the key: in use */
	struct harness_broker *b2 = harness_broker_new(lines);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b2);
	CU_ASSERT(harness_broker_start(b2, NULL) < 0);
	CU_ASSERT(harness_broker_log_has(b2, "in use by ipcbusd pid"));

	/* killed: its queue stays, the next broker takes the key back */
	harness_broker_kill(b);
	CU_ASSERT(msgget(key, 0) == id);
	CU_ASSERT_EQUAL_FATAL(harness_broker_restart(b), 0);
	CU_ASSERT(harness_broker_log_has(b, "removed the queue of a broker that is gone"));
	int id2 = msgget(key, 0);
	CU_ASSERT(id2 >= 0 && id2 != id);
	char url[64];
	sysv_url(url, sizeof url, key);
	ipcbus *c = lib_open(url, "after-restart");
	CU_ASSERT_PTR_NOT_NULL(c);
	if (c)
		CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);

	/* TERM: the queue goes */
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT(msgget(key, 0) < 0 && errno == ENOENT);

	/* a queue that is no broker's (a legacy program's): not touched */
	int foreign = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
	CU_ASSERT_FATAL(foreign >= 0);
	struct {
		long mtype;
		char text[8];
	} m = {5, "legacy"};
	CU_ASSERT_EQUAL(msgsnd(foreign, &m, 6, IPC_NOWAIT), 0);
	CU_ASSERT(harness_broker_start(b, NULL) < 0);
	CU_ASSERT(harness_broker_log_has(b, "is not a broker's"));
	CU_ASSERT(msgctl(foreign, IPC_STAT, &ds) == 0 && ds.msg_qnum == 1);
}

static void test_broker_dies(void)
{
	key_t key = free_key();
	char url[64];
	sysv_url(url, sizeof url, key);
	struct harness_broker *b = sysv_broker(key, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	ipcbus *c = lib_open(url, "survivor");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	struct got g = {0};
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "sv.again", NULL, got_cb, &g, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);
	harness_broker_kill(b);
	uint64_t t0 = harness_now();
	while (ipcbus_connected(c) && harness_now() - t0 < 4000)
		ipcbus_wait(c, 50);
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (the broker's death noticed after %llu ms)\n", (unsigned long long)dt);
	CU_ASSERT_FALSE(ipcbus_connected(c));
	CU_ASSERT(dt < 3000);
	CU_ASSERT_EQUAL_FATAL(harness_broker_restart(b), 0);
	t0 = harness_now();
	while (!ipcbus_connected(c) && harness_now() - t0 < T)
		ipcbus_wait(c, 50);
	CU_ASSERT(ipcbus_connected(c));
	struct harness_raw *u = harness_raw_open(b, "publisher");
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(harness_raw_wait_interest(u, "sv.again", T), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(u, 0, "sv.again", NULL, "back", 4), 0);
	CU_ASSERT_EQUAL(pump_until(c, &g, 2), 0); /* the probe, then "back" */
	CU_ASSERT_STRING_EQUAL(g.last, "back");
}

/* A broker of another user (nobody) that is not root, with ?mode=0622:
 * clients of two other users (root, uid 1) give their queues to it. */
static void test_other_user_broker(void)
{
	char setpriv[256];
	if (geteuid() != 0 || harness_which("setpriv", setpriv, sizeof setpriv) < 0) {
		fprintf(stderr, "  (not root, or no setpriv: skipped)\n");
		return;
	}
	key_t key = free_key();
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_EQUAL_FATAL(chmod(dir, 0777), 0);
	char sock[128], listen[64], url[64];
	snprintf(sock, sizeof sock, "unix://%s/s.sock", dir);
	snprintf(listen, sizeof listen, "sysv://0x%x?mode=0622", (unsigned)key);
	sysv_url(url, sizeof url, key);
	char *argv[] = {setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
			(char *)harness_ipcbusd(), "-l", sock, "-l", listen, NULL};
	struct harness_proc *p = harness_proc_start(argv, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	/* ready once its queue is there and it read its own message */
	struct msqid_ds ds;
	int id = -1;
	uint64_t t0 = harness_now();
	while (harness_now() - t0 < T) {
		id = msgget(key, 0);
		if (id >= 0 && msgctl(id, IPC_STAT, &ds) == 0 && ds.msg_lrpid > 0)
			break;
		harness_sleep(10);
	}
	CU_ASSERT_FATAL(id >= 0 && ds.msg_perm.uid == 65534 && (ds.msg_perm.mode & 0777) == 0622);

	static int before[4096], now[4096];
	int nb = private_queues(before, 4096);
	ipcbus *c = lib_open(url, "root-client");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	struct got g = {0};
	CU_ASSERT_EQUAL(ipcbus_subscribe(c, "sv.users", NULL, got_cb, &g, NULL), 0);
	CU_ASSERT_EQUAL(ipcbus_flush(c, T), 0);
	int ids[8];
	int nq = new_ids(before, nb, now, private_queues(now, 4096), ids, 8);
	CU_ASSERT_EQUAL(nq, 2);
	for (int i = 0; i < nq; i++) {
		/* given to the broker's user, still owner-only */
		CU_ASSERT(msgctl(ids[i], IPC_STAT, &ds) == 0 && ds.msg_perm.uid == 65534 &&
			  ds.msg_perm.cuid == 0 && (ds.msg_perm.mode & 0777) == 0600);
	}
	pid_t pid = harness_fork(10);
	if (pid == 0) {
		ipcbus *q = NULL;
		ipcbus_opts o = IPCBUS_OPTS_INIT;
		if (setgid(1) < 0 || setuid(1) < 0)
			_exit(3);
		if (ipcbus_connect(&q, url, &o) < 0 ||
		    ipcbus_publish(q, "sv.users", "from uid 1", 10) < 0 || ipcbus_flush(q, T) < 0)
			_exit(1);
		ipcbus_close(q);
		_exit(0);
	}
	CU_ASSERT_EQUAL(harness_wait_pid(pid, T), 0);
	CU_ASSERT_EQUAL(pump_until(c, &g, 1), 0);
	CU_ASSERT_STRING_EQUAL(g.last, "from uid 1");
	harness_proc_signal(p, SIGTERM);
	CU_ASSERT_EQUAL(harness_proc_wait(p, T), 0);
	CU_ASSERT(msgget(key, 0) < 0 && errno == ENOENT);
}

/* A broker (played by a child here) that welcomes the library with a
 * ping-interval of 1 s, sends `part` bytes of a frame of 3000 and more
 * and nothing more: the library does not wait for the rest for ever (the
 * bound a broker gives its clients, the HELLO deadline: here the
 * ping-interval).  part 1 is half its length prefix. */
static void fake_broker(int shq, size_t part)
{
	struct {
		long mtype;
		uint8_t text[SYSV_HELLO_MAX];
	} m;
	struct buf b;
	const uint8_t *body;
	size_t len, need;
	struct frame f;

	ssize_t n = msgrcv(shq, &m, sizeof m.text, SYSV_MT_HELLO, 0);
	if (n <= 0 || frame_split(m.text, (size_t)n, sizeof m.text, &body, &len, &need) <= 0 ||
	    frame_decode(body, len, &f) < 0)
		_exit(2);
	Ipcbus__Hello *h = frame_unpack_hello(&f);
	if (!h || !h->sysv)
		_exit(3);
	int tx = (int)h->sysv->send_queue, rx = (int)h->sysv->reply_queue;
	if (msgrcv(tx, &m, 0, (long)h->sysv->proof, IPC_NOWAIT) < 0) /* we read tx: its lrpid */
		_exit(4);
	Ipcbus__Welcome w = IPCBUS__WELCOME__INIT;
	w.version = IPCBUS_PROTOCOL_VERSION;
	w.has_max_payload = 1;
	w.max_payload = 1 << 20;
	w.has_max_header_bytes = 1;
	w.max_header_bytes = 65536;
	w.has_ping_interval_ms = 1;
	w.ping_interval_ms = 1000;
	buf_init(&b, 1 << 16);
	static uint8_t big[3000];
	struct frame msg = {.type = IPCBUS__FRAME_TYPE__MSG, .has_sid = 1, .sid = 1,
			    .channel = fb("sv.cut"),
			    .payload = {.p = big, .len = sizeof big, .set = 1}};
	if (frame_append_welcome(&b, 1, &w) < 0)
		_exit(5);
	size_t cut = buf_len(&b) + part; /* the WELCOME and part of the MSG */
	if (frame_append(&b, &msg, NULL, 0) < 0)
		_exit(5);
	m.mtype = SYSV_MT_DATA;
	memcpy(m.text, buf_rptr(&b), cut);
	if (msgsnd(rx, &m, cut, 0) < 0)
		_exit(6);
	for (;;)
		pause();
}

static void unfinished_frame(size_t part)
{
	key_t key = free_key();
	char url[64];
	sysv_url(url, sizeof url, key);
	int shq = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
	CU_ASSERT_FATAL(shq >= 0);
	pid_t pid = harness_fork(30);
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0)
		fake_broker(shq, part);
	ipcbus *c = lib_open(url, "patient");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	uint64_t t0 = harness_now();
	while (ipcbus_connected(c) && harness_now() - t0 < 6000)
		ipcbus_wait(c, 50);
	uint64_t dt = harness_now() - t0;
	fprintf(stderr, "  (dropped after %llu ms: %s)\n", (unsigned long long)dt,
		ipcbus_last_error(c));
	CU_ASSERT_FALSE(ipcbus_connected(c));
	CU_ASSERT(dt >= 900 && dt < 4000);
	CU_ASSERT_PTR_NOT_NULL(strstr(ipcbus_last_error(c), "unfinished"));
	CU_ASSERT_EQUAL(harness_wait_pid(pid, 0), -1); /* the "broker" still ran */
}

static void test_unfinished_frame(void)
{
	unfinished_frame(100);
	unfinished_frame(1); /* not even its length yet */
}

/* ---- in an IPC namespace of our own: the queues there are ours ---- */

/* Write v to /proc/sys/kernel/NAME (of this process's IPC namespace). */
static int ns_sysctl(const char *name, long v)
{
	char path[64], text[32];
	snprintf(path, sizeof path, "/proc/sys/kernel/%s", name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int n = snprintf(text, sizeof text, "%ld\n", v);
	int ok = fd >= 0 && write(fd, text, (size_t)n) == n;
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* The queues of this namespace: their ids in ids (max), the count. */
static int ns_queues(int *ids, int max)
{
	FILE *f = fopen("/proc/sysvipc/msg", "re");
	char line[512];
	int n = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		long long key;
		int id;
		if (sscanf(line, "%lld %d", &key, &id) == 2) {
			if (n < max)
				ids[n] = id;
			n++;
		}
	}
	fclose(f);
	return n;
}

/* Start ipcbusd with conf in dir (its log in dir/log, made anew) and
 * wait until it is ready (every listener up, not just the socket): its
 * pid, or -1 when it exited (its status in *st) or was not ready in 10 s. */
static pid_t ns_broker(const char *dir, const char *conf, int *st)
{
	char path[256], log[256];
	snprintf(path, sizeof path, "%s/c.conf", dir);
	snprintf(log, sizeof log, "%s/log", dir);
	if (harness_write_file(path, conf) < 0)
		return -1;
	unlink(log); /* before the fork: what we wait for is this broker's */
	pid_t pid = fork();
	if (pid == 0) {
		int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (lfd >= 0)
			dup2(lfd, 2);
		execl(harness_ipcbusd(), "ipcbusd", "-c", path, (char *)NULL);
		_exit(99);
	}
	for (int i = 0; pid > 0 && i < 1000; i++) {
		if (waitpid(pid, st, WNOHANG) == pid)
			return -1;
		size_t len;
		char *text = harness_read_file(log, &len);
		int ready = text && strstr(text, "ready (ipcbusd") != NULL;
		free(text);
		if (ready)
			return pid;
		harness_sleep(10);
	}
	if (pid > 0)
		kill(pid, SIGKILL), waitpid(pid, st, 0);
	return -1;
}

static void ns_broker_stop(pid_t pid)
{
	int st;
	if (pid > 0 && kill(pid, SIGTERM) == 0)
		waitpid(pid, &st, 0);
}

/* Run fn in a child in an IPC namespace of its own; what it reports in
 * dir/report (one "name value" a line) is returned (free it), or NULL
 * when there is no namespace to be had here (noted, not failed). */
static char *ns_run(const char *dir, void (*fn)(const char *dir, FILE *report))
{
	char path[256];
	snprintf(path, sizeof path, "%s/report", dir);
	pid_t pid = harness_fork(30);
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWIPC) < 0 || ns_sysctl("msgmni", 32) < 0)
			_exit(77);
		FILE *f = fopen(path, "we");
		if (!f)
			_exit(99);
		setvbuf(f, NULL, _IOLBF, 0);
		fn(dir, f);
		fclose(f);
		_exit(0);
	}
	int st = harness_wait_pid(pid, 25000);
	if (st == 77) {
		fprintf(stderr, "  (no IPC namespace with sysctls of our own here: skipped)\n");
		return NULL;
	}
	CU_ASSERT_EQUAL(st, 0);
	size_t len;
	char *out = harness_read_file(path, &len);
	CU_ASSERT_PTR_NOT_NULL(out);
	if (out)
		fprintf(stderr, "\n%s", out);
	return out;
}

/* The number after "name " in a report (a line of its own), or LONG_MIN. */
static long report_num(const char *rep, const char *name)
{
	char key[64];
	snprintf(key, sizeof key, "\n%s ", name);
	const char *p = rep ? strstr(rep, key) : NULL;
	return p ? strtol(p + strlen(key), NULL, 10) : LONG_MIN;
}

struct fail_text {
	int code;
	char text[256];
};

static void fail_text_cb(void *arg, int event, int err, const char *text)
{
	struct fail_text *t = arg;
	if (event == IPCBUS_EV_CONNECT_FAILED) {
		t->code = err;
		snprintf(t->text, sizeof t->text, "%s", text ? text : "");
	}
}

/* Out of queue ids: at the broker's start, and for a client. */
static void msgmni_child(const char *dir, FILE *rep)
{
	char conf[512], logp[256];
	int st = 0, ids[8];
	snprintf(conf, sizeof conf, "listen unix://%s/s.sock\nlisten sysv://0x5a5a\n", dir);
	snprintf(logp, sizeof logp, "%s/log", dir);
	fputs("\n", rep);

	/* the broker: no id left for its own queue */
	int other = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	ns_sysctl("msgmni", 1);
	pid_t b = ns_broker(dir, conf, &st);
	fprintf(rep, "start_refused %d\n", b < 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	size_t len;
	char *log = harness_read_file(logp, &len);
	fprintf(rep, "start_said %d\n", log && strstr(log, "no SysV queue id left (kernel.msgmni is 1)") != NULL);
	free(log);
	ns_broker_stop(b);
	msgctl(other, IPC_RMID, NULL);

	/* a client: the broker's queue and one more id */
	ns_sysctl("msgmni", 2);
	b = ns_broker(dir, conf, &st);
	fprintf(rep, "broker_up %d\n", b > 0);
	struct fail_text ft = {0};
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	o.name = "no-ids";
	o.connect_timeout_ms = 2000;
	o.on_event = fail_text_cb;
	o.event_arg = &ft;
	ipcbus *c = NULL;
	int rc = ipcbus_connect(&c, "sysv://0x5a5a", &o);
	fprintf(rep, "connect_enospc %d\n", rc == -ENOSPC);
	fprintf(rep, "connect_said %d\n", strstr(ft.text, "no SysV message queue id left") != NULL);
	fprintf(rep, "text %s\n", ft.text);
	fprintf(rep, "queues_after %d\n", ns_queues(ids, 8)); /* the broker's only */
	/* room again: the broker was not harmed */
	ns_sysctl("msgmni", 3);
	rc = ipcbus_connect(&c, "sysv://0x5a5a", &o);
	fprintf(rep, "connect_again %d\n", rc);
	if (rc == 0) {
		fprintf(rep, "publish %d\n", ipcbus_publish(c, "ns.x", "x", 1));
		fprintf(rep, "flush %d\n", ipcbus_flush(c, 2000));
		ipcbus_close(c);
	}
	ns_broker_stop(b);
	fprintf(rep, "queues_end %d\n", ns_queues(ids, 8));
}

static void test_msgmni(void)
{
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char *rep = ns_run(dir, msgmni_child);
	if (!rep)
		return;
	CU_ASSERT_EQUAL(report_num(rep, "start_refused"), 1);
	CU_ASSERT_EQUAL(report_num(rep, "start_said"), 1);
	CU_ASSERT_EQUAL(report_num(rep, "broker_up"), 1);
	CU_ASSERT_EQUAL(report_num(rep, "connect_enospc"), 1);
	CU_ASSERT_EQUAL(report_num(rep, "connect_said"), 1);
	CU_ASSERT_EQUAL(report_num(rep, "queues_after"), 1);
	CU_ASSERT_EQUAL(report_num(rep, "connect_again"), 0);
	CU_ASSERT_EQUAL(report_num(rep, "publish"), 0);
	CU_ASSERT_EQUAL(report_num(rep, "flush"), 0);
	CU_ASSERT_EQUAL(report_num(rep, "queues_end"), 0);
	free(rep);
}

/* msg_qbytes of a new private queue after asking for want: what a process
 * like ours gets (want without CAP_SYS_RESOURCE above msgmnb: msgmnb). */
static unsigned long qbytes_allowed(unsigned long want)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	struct msqid_ds ds;
	unsigned long got = 0;
	if (id < 0 || msgctl(id, IPC_STAT, &ds) < 0)
		return 0;
	ds.msg_qbytes = want;
	msgctl(id, IPC_SET, &ds);
	if (msgctl(id, IPC_STAT, &ds) == 0)
		got = ds.msg_qbytes;
	msgctl(id, IPC_RMID, NULL);
	return got;
}

/* What a client's two queues hold: both the same, else -1. */
static long client_qbytes(int broker_q)
{
	int ids[8];
	int n = ns_queues(ids, 8);
	long q = 0;
	for (int i = 0; i < n && i < 8; i++) {
		struct msqid_ds ds;
		if (ids[i] == broker_q || msgctl(ids[i], IPC_STAT, &ds) < 0)
			continue;
		if (q && (long)ds.msg_qbytes != q)
			return -1;
		q = (long)ds.msg_qbytes;
	}
	return q;
}

/* ?qbytes= on the broker's listen URL and on a client's: what the
 * connection's queues hold, and what the broker's log says it chose. */
static void qbytes_child(const char *dir, FILE *rep)
{
	char conf[512], logp[256];
	int st = 0;
	snprintf(logp, sizeof logp, "%s/log", dir);
	ns_sysctl("msgmnb", 12288); /* not the default: "holds msgmnb" is this */
	fputs("\n", rep);
	fprintf(rep, "allowed %lu\n", qbytes_allowed(1 << 20));

	/* the broker asks 1 MiB for its clients' queues */
	snprintf(conf, sizeof conf, "listen unix://%s/s.sock\nlisten sysv://0x5a5b?qbytes=1m\n", dir);
	pid_t b = ns_broker(dir, conf, &st);
	fprintf(rep, "broker_up %d\n", b > 0);
	size_t len;
	char *log = harness_read_file(logp, &len);
	if (b < 0)
		fprintf(rep, "log %s\n", log ? log : "(none)");
	fprintf(rep, "said_refused %d\n",
		log && strstr(log, "clients' queues hold msgmnb (12288 bytes): raising them to 1048576 takes CAP_SYS_RESOURCE") != NULL);
	fprintf(rep, "said_raised %d\n", log && strstr(log, "clients' queues raised to 1048576 bytes") != NULL);
	free(log);
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	o.connect_timeout_ms = 2000;
	ipcbus *c = NULL;
	int bq = msgget(0x5a5b, 0);
	/* the client asks nothing: only the broker raises them */
	int rc = ipcbus_connect(&c, "sysv://0x5a5b?qbytes=0", &o);
	fprintf(rep, "connect %d\n", rc);
	fprintf(rep, "client_queues %ld\n", rc == 0 ? client_qbytes(bq) : -2);
	ipcbus_close(c);
	ns_broker_stop(b);

	/* qbytes=0: left as they are, and said so */
	snprintf(conf, sizeof conf, "listen unix://%s/s.sock\nlisten sysv://0x5a5b?qbytes=0\n", dir);
	b = ns_broker(dir, conf, &st);
	log = harness_read_file(logp, &len);
	fprintf(rep, "said_left %d\n",
		log && strstr(log, "clients' queues left at msgmnb (12288 bytes: qbytes=0)") != NULL);
	free(log);
	rc = ipcbus_connect(&c, "sysv://0x5a5b?qbytes=0", &o);
	fprintf(rep, "left_queues %ld\n", rc == 0 ? client_qbytes(msgget(0x5a5b, 0)) : -2);
	ipcbus_close(c);
	ns_broker_stop(b);
}

static void test_qbytes(void)
{
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char *rep = ns_run(dir, qbytes_child);
	if (!rep)
		return;
	long allowed = report_num(rep, "allowed");
	CU_ASSERT(allowed == 12288 || allowed == 1 << 20);
	CU_ASSERT_EQUAL(report_num(rep, "connect"), 0);
	if (allowed == 12288) { /* no CAP_SYS_RESOURCE, as in most containers */
		CU_ASSERT_EQUAL(report_num(rep, "said_refused"), 1);
		CU_ASSERT_EQUAL(report_num(rep, "client_queues"), 12288);
	} else {
		CU_ASSERT_EQUAL(report_num(rep, "said_raised"), 1);
		CU_ASSERT_EQUAL(report_num(rep, "client_queues"), 1 << 20);
	}
	CU_ASSERT_EQUAL(report_num(rep, "said_left"), 1);
	CU_ASSERT_EQUAL(report_num(rep, "left_queues"), 12288);
	free(rep);
}

static void test_cli_sub(void)
{
	key_t key = free_key();
	char url[64];
	sysv_url(url, sizeof url, key);
	struct harness_broker *b = sysv_broker(key, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_proc *p = harness_cli_start(NULL, 0, "sub", "-u", url, "-c", "2", "sv.cli",
						   NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	struct harness_raw *u = harness_raw_open(b, "publisher");
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(harness_raw_wait_interest(u, "sv.cli", T), 0);
	CU_ASSERT_EQUAL(harness_raw_pub(u, 0, "sv.cli", NULL, "hello sysv", 10), 0);
	CU_ASSERT_EQUAL(harness_proc_wait(p, T), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(p->out, "probe\nhello sysv\n"));
	/* `ipcbus pub` over sysv, read by the Unix side */
	CU_ASSERT_EQUAL(harness_raw_sub(u, 1, 5, "sv.back", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(u, T, NULL, NULL), 1);
	struct harness_proc *q = harness_cli(T, NULL, 0, "pub", "-u", url, "sv.back", "over sysv",
					     NULL);
	CU_ASSERT_EQUAL(q->status, 0);
	CU_ASSERT_EQUAL(harness_raw_read(u, T), 1);
	CU_ASSERT(harness_raw_is_msg(u, 5, "over sysv"));
	/* nothing there: a clear error */
	char none[64];
	sysv_url(none, sizeof none, free_key());
	struct harness_proc *e = harness_cli(T, NULL, 0, "sub", "-u", none, "x", NULL);
	CU_ASSERT_EQUAL(e->status, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(e->err, "no broker's queue there"));
}

static const struct harness_case cases[] = {
	{"raw_session", test_raw_session},
	{"forged_hello", test_forged_hello},
	{"other_uid", test_other_uid},
	{"bad_messages", test_bad_messages},
	{"dead_client", test_dead_client},
	{"closed_then_killed", test_closed_then_killed},
	{"fork_child_close", test_fork_child_close},
	{"big_messages", test_big_messages},
	{"stale_queue", test_stale_queue},
	{"broker_dies", test_broker_dies},
	{"other_user_broker", test_other_user_broker},
	{"cli_sub", test_cli_sub},
	{"unfinished_frame", test_unfinished_frame},
	{"msgmni", test_msgmni},
	{"qbytes", test_qbytes},
};

int main(int argc, char **argv)
{
	return harness_main("sysv", cases, HARNESS_NELEM(cases), 1, 120, argc, argv);
}
