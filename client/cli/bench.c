/*
 * bench.c: `ipcbus bench`: pub/sub throughput, or request latency, through
 * a running broker over any URL.
 *
 * Pub/sub mode forks P publisher and S subscriber processes, each with its
 * own connection, so the figures are those of real separate clients.  The
 * first 12 bytes of every payload carry the publisher's index and the
 * message's sequence number, so each subscriber checks that it got every
 * message of every publisher, in order.  The processes share counters
 * through a MAP_SHARED mapping: each subscriber publishes, per publisher,
 * the next sequence number it expects, and a publisher never runs more than
 * a window of bytes ahead of its slowest subscriber.  Without that a
 * publisher outruns the broker's slow-consumer bound (max-pending) and the
 * broker drops messages, which is correct behaviour but not what a
 * throughput figure should measure.
 *
 * Request mode forks one responder (ipcbus_respond echoing the payload) and
 * measures from the parent: first N requests one at a time (the latency
 * distribution), then N requests with K in flight (the throughput).
 *
 * Times come from CLOCK_MONOTONIC, which is the same clock in every process.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define BENCH_MAX_PROCS 256
#define BENCH_HDR 12                 /* u32 publisher index, u64 sequence */
#define BENCH_OVERHEAD 64            /* framing, channel and ids per message, roughly */
#define BENCH_WINDOW (16L << 20)     /* 1/4 of the default max-pending */
#define BENCH_IDLE_NS 3000000000LL   /* silence that ends a subscriber after the publishers */
#define BENCH_STALL_NS 15000000000LL /* a publisher blocked this long gives up */
#define BENCH_REQ_TIMEOUT_MS 10000

struct bench_opts {
	const char *url;
	char conn_url[1024];  /* what the children connect to */
	char shown_url[1024]; /* the same, without a token, for the output */
	char channel[128];
	long count, size, pubs, subs, inflight, window;
	int req, json, progress;
};

/* Shared between the processes (MAP_SHARED); each slot is written by one
 * process only, and on its own cache lines. */
struct bench_head {
	atomic_int go;
	atomic_int abort;
	atomic_int stop;
	atomic_int ready;
	atomic_int pubs_done;
};

struct bench_pub {
	alignas(64) atomic_uint_fast64_t sent;
	int64_t t_first, t_last; /* ns: first publish, last publish */
};

struct bench_sub {
	alignas(64) atomic_uint_fast64_t received;
	uint64_t lost, ooo, bad;
	int64_t t_last;          /* ns: the last message received */
};

struct bench_shm {
	struct bench_head *head;
	struct bench_pub *pub;
	struct bench_sub *sub;
	atomic_uint_fast64_t *next; /* [sub * stride + pub]: next sequence expected */
	size_t stride;
	void *base;
	size_t size;
};

/* State of one subscriber process. */
struct bench_rx {
	struct bench_shm *shm;
	struct bench_sub *me;
	atomic_uint_fast64_t *next;
	uint64_t *expect;
	long pubs, size;
	uint64_t received, total;
};

/* State of the requester in --req mode. */
struct bench_async {
	long done, errors;
	int first_err;
};

static void bench_usage(FILE *f)
{
	fprintf(f,
		"Usage: ipcbus bench [-u URL] [-n COUNT] [-s SIZE] [-p PUBLISHERS] [-S SUBSCRIBERS]\n"
		"                    [-w BYTES] [--json]\n"
		"       ipcbus bench --req [-u URL] [-n COUNT] [-s SIZE] [-k INFLIGHT] [--json]\n"
		"\n"
		"Measure a running broker.  Each publisher and subscriber is its own process\n"
		"with its own connection.\n"
		"\n"
		"Pub/sub (default): COUNT messages in all, shared among the publishers; every\n"
		"subscriber gets every message.  Reports delivered messages per second and MB/s\n"
		"(10^6 bytes) from the first publish to the last receive, and checks that each\n"
		"subscriber got every message of each publisher in order: it exits 1 when any\n"
		"was lost, duplicated or out of order.\n"
		"\n"
		"--req: COUNT requests one at a time (latency: min, mean, p50, p90, p99, p99.9,\n"
		"max and a histogram), then COUNT requests with INFLIGHT at once (requests per\n"
		"second), against one responder process that echoes the payload.\n"
		"\n"
		"  -u, --url URL          broker address (default: $IPCBUS_URL, else the\n"
		"                         default socket)\n"
		"  -n, --count COUNT      messages or requests (default 1000000; --req 100000)\n"
		"  -s, --size SIZE        payload bytes (default 64; pub/sub: at least %d)\n"
		"  -p, --publishers N     publisher processes (default 1)\n"
		"  -S, --subscribers N    subscriber processes (default 1)\n"
		"  -w, --window BYTES     how far a publisher may run ahead of its slowest\n"
		"                         subscriber, in all publishers together (default %ld,\n"
		"                         1/4 of the broker's default max-pending)\n"
		"  -k, --inflight K       --req: requests in flight in the throughput run\n"
		"                         (default 64)\n"
		"      --req              measure request/reply instead of pub/sub\n"
		"      --channel NAME     channel to use (default bench.PID)\n"
		"      --json             print one JSON object instead of the report\n"
		"  -h, --help             this help\n"
		"\n"
		"A progress line goes to stderr while it runs when stderr is a terminal.\n",
		BENCH_HDR, BENCH_WINDOW);
}

static int64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void bench_nap(long ns)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ns };

	nanosleep(&ts, NULL);
}

/* "850 ns", "12.3 us", "1.23 ms", "2.05 s": three digits or so. */
static void bench_fmt_dur(char *out, size_t n, double ns)
{
	static const char *const unit[] = { "ns", "us", "ms", "s" };
	int u = 0;

	while (ns >= 1000.0 && u < 3) {
		ns /= 1000.0;
		u++;
	}
	if (u == 0 || ns >= 100.0)
		snprintf(out, n, "%.0f %s", ns, unit[u]);
	else if (ns >= 10.0)
		snprintf(out, n, "%.1f %s", ns, unit[u]);
	else
		snprintf(out, n, "%.2f %s", ns, unit[u]);
}

/* A JSON string of a text we chose or were given (URL, channel). */
static void bench_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void bench_progress_clear(const struct bench_opts *o)
{
	if (o->progress)
		fputs("\r\033[K", stderr);
}

/* ---- shared memory ---- */

static int bench_shm_map(struct bench_shm *m, long pubs, long subs)
{
	size_t off_pub, off_sub, off_next;
	char *base;

	m->stride = ((size_t)pubs + 7) / 8 * 8; /* a row of 8-byte counters per 64 bytes */
	off_pub = (sizeof(struct bench_head) + 63) / 64 * 64;
	off_sub = off_pub + (size_t)pubs * sizeof(struct bench_pub);
	off_next = off_sub + (size_t)subs * sizeof(struct bench_sub);
	m->size = off_next + (size_t)subs * m->stride * sizeof(atomic_uint_fast64_t);
	base = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	/* An anonymous mapping is zero-filled: every counter starts at 0. */
	m->base = base;
	m->head = (struct bench_head *)base;
	m->pub = (struct bench_pub *)(base + off_pub);
	m->sub = (struct bench_sub *)(base + off_sub);
	m->next = (atomic_uint_fast64_t *)(base + off_next);
	return 0;
}

static void bench_shm_unmap(struct bench_shm *m)
{
	if (m->base)
		munmap(m->base, m->size);
	m->base = NULL;
}

/* ---- processes ---- */

/* Messages publisher i sends. */
static uint64_t bench_pub_count(const struct bench_opts *o, long i)
{
	return (uint64_t)(o->count / o->pubs + (i < o->count % o->pubs));
}

/* Wait for the go (1) or an abort (0). */
static int bench_wait_go(struct bench_shm *m)
{
	while (!atomic_load(&m->head->go)) {
		if (atomic_load(&m->head->abort))
			return 0;
		bench_nap(100000);
	}
	return 1;
}

/* The next sequence number of publisher i that every subscriber waits for:
 * everything below it has been delivered (or lost) everywhere. */
static uint64_t bench_min_next(struct bench_shm *m, long subs, long i)
{
	uint64_t min = UINT64_MAX, v;
	long s;

	for (s = 0; s < subs; s++) {
		v = atomic_load_explicit(&m->next[(size_t)s * m->stride + (size_t)i],
					 memory_order_relaxed);
		if (v < min)
			min = v;
	}
	return min;
}

static int bench_publisher(const struct bench_opts *o, struct bench_shm *m, long i)
{
	struct bench_pub *me = &m->pub[i];
	uint64_t n = bench_pub_count(o, i), seq, limit = 0, win, low;
	uint32_t idx = (uint32_t)i;
	unsigned char *buf;
	ipcbus *c;
	int r, ret = CLI_ERROR;

	/* This publisher's share of the window, in messages. */
	win = (uint64_t)o->window / (uint64_t)o->pubs / (uint64_t)(o->size + BENCH_OVERHEAD);
	if (win < 1)
		win = 1;
	buf = malloc((size_t)o->size);
	c = cli_connect("bench", o->url, "ipcbus bench publisher");
	if (!buf || !c)
		goto out;
	memset(buf, 'x', (size_t)o->size);
	memcpy(buf, &idx, sizeof(idx));
	atomic_fetch_add(&m->head->ready, 1);
	if (!bench_wait_go(m))
		goto out;
	me->t_first = bench_now();
	for (seq = 0; seq < n; seq++) {
		if (seq >= limit) {
			int64_t since = bench_now();
			for (;;) {
				low = bench_min_next(m, o->subs, i);
				limit = low + win;
				if (seq < limit)
					break;
				/* Write what the library buffered: the subscribers
				 * wait for those very messages. */
				r = ipcbus_dispatch(c);
				if (r < 0) {
					cli_err("bench", "publisher %ld: %s", i, ipcbus_strerror(r));
					goto out;
				}
				if (atomic_load(&m->head->abort))
					goto out;
				if (bench_now() - since > BENCH_STALL_NS) {
					cli_err("bench", "publisher %ld: no subscriber progress for %lld s",
						i, BENCH_STALL_NS / 1000000000LL);
					goto out;
				}
				bench_nap(50000);
			}
		}
		memcpy(buf + 4, &seq, sizeof(seq));
		r = ipcbus_publish(c, o->channel, buf, (size_t)o->size);
		if (r < 0) {
			cli_err("bench", "publisher %ld: publish: %s", i, ipcbus_strerror(r));
			goto out;
		}
		if ((seq & 255) == 255) {
			atomic_store_explicit(&me->sent, seq + 1, memory_order_relaxed);
			r = ipcbus_dispatch(c);
			if (r < 0) {
				cli_err("bench", "publisher %ld: %s", i, ipcbus_strerror(r));
				goto out;
			}
		}
	}
	me->t_last = bench_now();
	atomic_store(&me->sent, n);
	r = ipcbus_flush(c, 60000);
	if (r < 0) {
		cli_err("bench", "publisher %ld: flush: %s %s", i, ipcbus_strerror(r),
			ipcbus_last_error(c));
		goto out;
	}
	ret = CLI_OK;
out:
	atomic_fetch_add(&m->head->pubs_done, 1);
	ipcbus_close(c);
	free(buf);
	return ret;
}

static void bench_on_msg(void *arg, const ipcbus_msg *msg)
{
	struct bench_rx *rx = arg;
	uint32_t idx;
	uint64_t seq;

	rx->received++;
	if (msg->len != (size_t)rx->size || msg->len < BENCH_HDR) {
		rx->me->bad++;
		goto out;
	}
	memcpy(&idx, msg->data, sizeof(idx));
	memcpy(&seq, (const char *)msg->data + 4, sizeof(seq));
	if (idx >= (uint32_t)rx->pubs) {
		rx->me->bad++;
		goto out;
	}
	if (seq == rx->expect[idx]) {
		rx->expect[idx]++;
	} else if (seq > rx->expect[idx]) {
		rx->me->lost += seq - rx->expect[idx];
		rx->expect[idx] = seq + 1;
	} else {
		rx->me->ooo++;
		goto out;
	}
	atomic_store_explicit(&rx->next[idx], rx->expect[idx], memory_order_relaxed);
out:
	if (rx->received == rx->total)
		rx->me->t_last = bench_now();
}

static int bench_subscriber(const struct bench_opts *o, struct bench_shm *m, long s)
{
	struct bench_rx rx = { 0 };
	int64_t last, now;
	uint64_t before;
	ipcbus *c;
	long i;
	int r, ret = CLI_ERROR;

	rx.shm = m;
	rx.me = &m->sub[s];
	rx.next = &m->next[(size_t)s * m->stride];
	rx.pubs = o->pubs;
	rx.size = o->size;
	rx.total = (uint64_t)o->count;
	rx.expect = calloc((size_t)o->pubs, sizeof(*rx.expect));
	c = cli_connect("bench", o->url, "ipcbus bench subscriber");
	if (!rx.expect || !c)
		goto out;
	r = ipcbus_subscribe(c, o->channel, NULL, bench_on_msg, &rx, NULL);
	if (r == 0)
		r = ipcbus_flush(c, 10000);
	if (r < 0) {
		cli_err("bench", "subscriber %ld: subscribe: %s %s", s, ipcbus_strerror(r),
			ipcbus_last_error(c));
		goto out;
	}
	atomic_fetch_add(&m->head->ready, 1);
	if (!bench_wait_go(m))
		goto out;
	last = bench_now();
	while (rx.received < rx.total) {
		before = rx.received;
		r = ipcbus_wait(c, 100);
		if (r < 0 && r != IPCBUS_ETIMEOUT) {
			cli_err("bench", "subscriber %ld: %s", s, ipcbus_strerror(r));
			goto out;
		}
		atomic_store_explicit(&rx.me->received, rx.received, memory_order_relaxed);
		if (atomic_load(&m->head->abort))
			goto out;
		now = bench_now();
		if (rx.received != before)
			last = now;
		/* Messages lost at the end never arrive: after the publishers
		 * finished, a long silence ends the wait. */
		else if (atomic_load(&m->head->pubs_done) == o->pubs && now - last > BENCH_IDLE_NS)
			break;
	}
	atomic_store(&rx.me->received, rx.received);
	if (rx.received < rx.total)
		rx.me->t_last = last;
	for (i = 0; i < o->pubs; i++) {
		uint64_t want = bench_pub_count(o, i);
		if (rx.expect[i] < want)
			rx.me->lost += want - rx.expect[i];
	}
	ret = CLI_OK;
out:
	ipcbus_close(c);
	free(rx.expect);
	return ret;
}

static void bench_respond(void *arg, const ipcbus_msg *msg)
{
	ipcbus *c = arg;

	(void)ipcbus_respond(c, msg, NULL, 0, msg->data, msg->len);
}

static int bench_responder(const struct bench_opts *o, struct bench_shm *m)
{
	ipcbus *c;
	int r, ret = CLI_ERROR;

	c = cli_connect("bench", o->url, "ipcbus bench responder");
	if (!c)
		goto out;
	r = ipcbus_subscribe(c, o->channel, NULL, bench_respond, c, NULL);
	if (r == 0)
		r = ipcbus_flush(c, 10000);
	if (r < 0) {
		cli_err("bench", "responder: subscribe: %s %s", ipcbus_strerror(r),
			ipcbus_last_error(c));
		goto out;
	}
	atomic_fetch_add(&m->head->ready, 1);
	while (!atomic_load(&m->head->stop) && !atomic_load(&m->head->abort)) {
		r = ipcbus_wait(c, 100);
		if (r < 0 && r != IPCBUS_ETIMEOUT) {
			cli_err("bench", "responder: %s", ipcbus_strerror(r));
			goto out;
		}
	}
	ret = CLI_OK;
out:
	ipcbus_close(c);
	return ret;
}

/* Fork a child running fn; it never returns into the caller's code. */
static pid_t bench_fork(int (*fn)(const struct bench_opts *, struct bench_shm *, long),
			const struct bench_opts *o, struct bench_shm *m, long i)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0)
		_exit(fn(o, m, i));
	return pid;
}

static int bench_responder_main(const struct bench_opts *o, struct bench_shm *m, long i)
{
	(void)i;
	return bench_responder(o, m);
}

/* Reap what exited; a child that failed aborts the run.  Returns how many
 * are still running. */
static int bench_reap(pid_t *pids, int n, struct bench_shm *m, int *failed, int block)
{
	int i, st, alive = 0;
	pid_t r;

	for (i = 0; i < n; i++) {
		if (pids[i] <= 0)
			continue;
		r = waitpid(pids[i], &st, block ? 0 : WNOHANG);
		if (r == 0) {
			alive++;
			continue;
		}
		if (r < 0 && errno == EINTR) {
			alive++;
			continue;
		}
		pids[i] = 0;
		if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			*failed = 1;
			atomic_store(&m->head->abort, 1);
		}
	}
	return alive;
}

/* Stop every child: after an abort they leave by themselves; those that
 * do not within 5 s are killed. */
static void bench_stop_all(pid_t *pids, int n, struct bench_shm *m, int *failed)
{
	int64_t t0 = bench_now();
	int i;

	atomic_store(&m->head->abort, 1);
	while (bench_reap(pids, n, m, failed, 0) > 0) {
		if (bench_now() - t0 > 5000000000LL) {
			for (i = 0; i < n; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGKILL);
			bench_reap(pids, n, m, failed, 1);
			break;
		}
		bench_nap(10000000);
	}
}

/* ---- pub/sub mode ---- */

static void bench_pubsub_report(const struct bench_opts *o, struct bench_shm *m, int failed)
{
	uint64_t delivered = 0, lost = 0, ooo = 0, bad = 0, published = 0;
	int64_t t0 = INT64_MAX, tpub = 0, tend = 0;
	double secs, pubsecs, rate, mbs;
	long i;

	for (i = 0; i < o->pubs; i++) {
		published += atomic_load(&m->pub[i].sent);
		if (m->pub[i].t_first && m->pub[i].t_first < t0)
			t0 = m->pub[i].t_first;
		if (m->pub[i].t_last > tpub)
			tpub = m->pub[i].t_last;
	}
	for (i = 0; i < o->subs; i++) {
		delivered += atomic_load(&m->sub[i].received);
		lost += m->sub[i].lost;
		ooo += m->sub[i].ooo;
		bad += m->sub[i].bad;
		if (m->sub[i].t_last > tend)
			tend = m->sub[i].t_last;
	}
	secs = t0 != INT64_MAX && tend > t0 ? (double)(tend - t0) / 1e9 : 0.0;
	pubsecs = t0 != INT64_MAX && tpub > t0 ? (double)(tpub - t0) / 1e9 : 0.0;
	rate = secs > 0 ? (double)delivered / secs : 0.0;
	mbs = secs > 0 ? (double)delivered * (double)o->size / secs / 1e6 : 0.0;
	if (o->json) {
		printf("{\"mode\":\"pubsub\",\"url\":");
		bench_json_str(stdout, o->shown_url);
		printf(",\"channel\":");
		bench_json_str(stdout, o->channel);
		printf(",\"count\":%ld,\"size\":%ld,\"publishers\":%ld,\"subscribers\":%ld,"
		       "\"published\":%llu,\"delivered\":%llu,\"expected\":%llu,"
		       "\"lost\":%llu,\"out_of_order\":%llu,\"bad\":%llu,"
		       "\"seconds\":%.6f,\"publish_seconds\":%.6f,"
		       "\"msgs_per_sec\":%.0f,\"mb_per_sec\":%.2f,\"ok\":%s}\n",
		       o->count, o->size, o->pubs, o->subs, (unsigned long long)published,
		       (unsigned long long)delivered,
		       (unsigned long long)((uint64_t)o->count * (uint64_t)o->subs),
		       (unsigned long long)lost, (unsigned long long)ooo, (unsigned long long)bad,
		       secs, pubsecs, rate, mbs,
		       !failed && !lost && !ooo && !bad && published == (uint64_t)o->count ?
			       "true" : "false");
		return;
	}
	printf("ipcbus bench: %s, channel %s\n", o->shown_url, o->channel);
	printf("  %ld publisher%s -> %ld subscriber%s, %ld messages of %ld bytes\n", o->pubs,
	       o->pubs == 1 ? "" : "s", o->subs, o->subs == 1 ? "" : "s", o->count, o->size);
	printf("  published %llu in %.3f s (%.0f msgs/s)\n", (unsigned long long)published,
	       pubsecs, pubsecs > 0 ? (double)published / pubsecs : 0.0);
	printf("  delivered %llu of %llu in %.3f s: %.0f msgs/s, %.2f MB/s\n",
	       (unsigned long long)delivered,
	       (unsigned long long)((uint64_t)o->count * (uint64_t)o->subs), secs, rate, mbs);
	printf("  lost %llu, out of order %llu, malformed %llu\n", (unsigned long long)lost,
	       (unsigned long long)ooo, (unsigned long long)bad);
}

static int bench_pubsub(const struct bench_opts *o)
{
	struct bench_shm m = { 0 };
	pid_t pids[2 * BENCH_MAX_PROCS] = { 0 };
	int n = 0, failed = 0, r, ret = CLI_ERROR;
	int64_t tprog = 0, now;
	uint64_t lost = 0, ooo = 0, bad = 0, published = 0;
	long i;

	r = bench_shm_map(&m, o->pubs, o->subs);
	if (r < 0) {
		cli_err("bench", "mmap: %s", strerror(-r));
		return CLI_ERROR;
	}
	for (i = 0; i < o->subs; i++)
		if ((pids[n++] = bench_fork(bench_subscriber, o, &m, i)) < 0)
			goto forkfail;
	for (i = 0; i < o->pubs; i++)
		if ((pids[n++] = bench_fork(bench_publisher, o, &m, i)) < 0)
			goto forkfail;
	while (bench_reap(pids, n, &m, &failed, 0) > 0) {
		if (failed) {
			bench_stop_all(pids, n, &m, &failed);
			break;
		}
		if (!atomic_load(&m.head->go) && atomic_load(&m.head->ready) == n)
			atomic_store(&m.head->go, 1);
		now = bench_now();
		if (o->progress && atomic_load(&m.head->go) && now - tprog > 200000000LL) {
			uint64_t sent = 0, rcv = UINT64_MAX;
			for (i = 0; i < o->pubs; i++)
				sent += atomic_load_explicit(&m.pub[i].sent, memory_order_relaxed);
			for (i = 0; i < o->subs; i++) {
				uint64_t v = atomic_load_explicit(&m.sub[i].received,
								  memory_order_relaxed);
				if (v < rcv)
					rcv = v;
			}
			fprintf(stderr, "\r\033[Kbench: published %llu/%ld, slowest subscriber %llu",
				(unsigned long long)sent, o->count, (unsigned long long)rcv);
			tprog = now;
		}
		bench_nap(20000000);
	}
	bench_progress_clear(o);
	if (failed) {
		cli_err("bench", "a benchmark process failed");
		goto out;
	}
	bench_pubsub_report(o, &m, failed);
	for (i = 0; i < o->pubs; i++)
		published += atomic_load(&m.pub[i].sent);
	for (i = 0; i < o->subs; i++) {
		lost += m.sub[i].lost;
		ooo += m.sub[i].ooo;
		bad += m.sub[i].bad;
	}
	if (lost || ooo || bad)
		cli_err("bench", "FAILED: %llu lost, %llu out of order, %llu malformed",
			(unsigned long long)lost, (unsigned long long)ooo, (unsigned long long)bad);
	else if (published == (uint64_t)o->count)
		ret = CLI_OK;
	goto out;
forkfail:
	cli_err("bench", "fork: %m");
	n--;
	bench_stop_all(pids, n, &m, &failed);
	bench_progress_clear(o);
out:
	bench_shm_unmap(&m);
	return ret;
}

/* ---- request mode ---- */

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static uint64_t bench_pct(const uint64_t *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p / 100.0 * (double)n);

	return v[k == 0 ? 0 : (k > n ? n - 1 : k - 1)];
}

/* Log-spaced buckets, 4 a decade (1, 1.78, 3.16, 5.62 x 10^k ns), with a
 * bar scaled to the fullest bucket: the shape and tail at a glance. */
static void bench_histogram(const uint64_t *v, size_t n)
{
	enum { PER_DECADE = 4, WIDTH = 40 };
	long lo = (long)floor(log10((double)(v[0] ? v[0] : 1)) * PER_DECADE);
	long hi = (long)floor(log10((double)(v[n - 1] ? v[n - 1] : 1)) * PER_DECADE);
	size_t nb = (size_t)(hi - lo + 1), i, j = 0, max = 0, *cnt;
	char a[32], b[32], bar[WIDTH + 1];

	cnt = calloc(nb, sizeof(*cnt));
	if (!cnt)
		return;
	for (i = 0; i < n; i++) {
		long k = (long)floor(log10((double)(v[i] ? v[i] : 1)) * PER_DECADE) - lo;
		if (k < 0)
			k = 0;
		if (k >= (long)nb)
			k = (long)nb - 1;
		cnt[k]++;
	}
	for (i = 0; i < nb; i++)
		if (cnt[i] > max)
			max = cnt[i];
	printf("  latency histogram:\n");
	for (i = 0; i < nb; i++) {
		size_t w = max ? (cnt[i] * WIDTH + max - 1) / max : 0;
		bench_fmt_dur(a, sizeof(a), pow(10.0, (double)(lo + (long)i) / PER_DECADE));
		bench_fmt_dur(b, sizeof(b), pow(10.0, (double)(lo + (long)i + 1) / PER_DECADE));
		for (j = 0; j < WIDTH; j++)
			bar[j] = j < w ? '#' : ' ';
		bar[WIDTH] = '\0';
		printf("  %9s - %-9s |%s| %6.2f%% %zu\n", a, b, bar,
		       100.0 * (double)cnt[i] / (double)n, cnt[i]);
	}
	free(cnt);
}

static void bench_on_reply(void *arg, int status, const ipcbus_msg *reply)
{
	struct bench_async *as = arg;

	as->done++;
	if (status < 0 && as->errors++ == 0)
		as->first_err = status;
}

/* COUNT requests one at a time into lat[]; 0 or the first error. */
static int bench_latency(const struct bench_opts *o, ipcbus *c, const void *buf, uint64_t *lat,
			 long n)
{
	ipcbus_msg *reply;
	int64_t t, tprog = 0;
	long i;
	int r;

	for (i = 0; i < n; i++) {
		t = bench_now();
		r = ipcbus_request(c, o->channel, NULL, 0, buf, (size_t)o->size,
				   BENCH_REQ_TIMEOUT_MS, &reply);
		if (lat)
			lat[i] = (uint64_t)(bench_now() - t);
		if (r < 0)
			return r;
		if (reply->len != (size_t)o->size) {
			ipcbus_msg_free(reply);
			return IPCBUS_EPROTO;
		}
		ipcbus_msg_free(reply);
		if (lat && o->progress && (i & 1023) == 0 && t - tprog > 200000000LL) {
			fprintf(stderr, "\r\033[Kbench: latency run %ld/%ld", i, n);
			tprog = t;
		}
	}
	return 0;
}

/* COUNT requests with K in flight; 0 or the first error, *secs the time. */
static int bench_throughput(const struct bench_opts *o, ipcbus *c, const void *buf, double *secs)
{
	struct bench_async as = { 0 };
	int64_t t0 = bench_now(), tprog = 0, now;
	long issued = 0;
	int r;

	while (as.done < o->count) {
		while (issued < o->count && issued - as.done < o->inflight) {
			r = ipcbus_request_async(c, o->channel, NULL, 0, buf, (size_t)o->size,
						 BENCH_REQ_TIMEOUT_MS, bench_on_reply, &as);
			if (r < 0)
				return r;
			issued++;
		}
		r = ipcbus_wait(c, 1000);
		if (r < 0 && r != IPCBUS_ETIMEOUT)
			return r;
		if (as.errors)
			return as.first_err;
		now = bench_now();
		if (o->progress && now - tprog > 200000000LL) {
			fprintf(stderr, "\r\033[Kbench: throughput run %ld/%ld", as.done, o->count);
			tprog = now;
		}
	}
	*secs = (double)(bench_now() - t0) / 1e9;
	return 0;
}

static void bench_req_report(const struct bench_opts *o, uint64_t *lat, double tsecs)
{
	size_t n = (size_t)o->count;
	double mean = 0.0, rps = tsecs > 0 ? (double)o->count / tsecs : 0.0;
	char s[7][32];
	size_t i;

	qsort(lat, n, sizeof(*lat), bench_cmp_u64);
	for (i = 0; i < n; i++)
		mean += (double)lat[i];
	mean /= (double)n;
	if (o->json) {
		printf("{\"mode\":\"req\",\"url\":");
		bench_json_str(stdout, o->shown_url);
		printf(",\"channel\":");
		bench_json_str(stdout, o->channel);
		printf(",\"count\":%ld,\"size\":%ld,\"latency_ns\":{\"min\":%llu,\"mean\":%.0f,"
		       "\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
		       "\"inflight\":%ld,\"throughput_seconds\":%.6f,\"requests_per_sec\":%.0f}\n",
		       o->count, o->size, (unsigned long long)lat[0], mean,
		       (unsigned long long)bench_pct(lat, n, 50),
		       (unsigned long long)bench_pct(lat, n, 90),
		       (unsigned long long)bench_pct(lat, n, 99),
		       (unsigned long long)bench_pct(lat, n, 99.9),
		       (unsigned long long)lat[n - 1], o->inflight, tsecs, rps);
		return;
	}
	bench_fmt_dur(s[0], sizeof(s[0]), (double)lat[0]);
	bench_fmt_dur(s[1], sizeof(s[1]), mean);
	bench_fmt_dur(s[2], sizeof(s[2]), (double)bench_pct(lat, n, 50));
	bench_fmt_dur(s[3], sizeof(s[3]), (double)bench_pct(lat, n, 90));
	bench_fmt_dur(s[4], sizeof(s[4]), (double)bench_pct(lat, n, 99));
	bench_fmt_dur(s[5], sizeof(s[5]), (double)bench_pct(lat, n, 99.9));
	bench_fmt_dur(s[6], sizeof(s[6]), (double)lat[n - 1]);
	printf("ipcbus bench --req: %s, channel %s\n", o->shown_url, o->channel);
	printf("  %ld requests of %ld bytes, one at a time (round trip):\n", o->count, o->size);
	printf("    min %s  mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", s[0], s[1], s[2],
	       s[3], s[4], s[5], s[6]);
	bench_histogram(lat, n);
	printf("  %ld requests with %ld in flight: %.3f s, %.0f requests/s\n", o->count, o->inflight,
	       tsecs, rps);
}

static int bench_req(const struct bench_opts *o)
{
	struct bench_shm m = { 0 };
	pid_t pid[1] = { 0 };
	uint64_t *lat = NULL;
	unsigned char *buf = NULL;
	ipcbus *c = NULL;
	int64_t t0;
	double tsecs = 0.0;
	int failed = 0, r, ret = CLI_ERROR;

	lat = malloc((size_t)o->count * sizeof(*lat));
	buf = malloc((size_t)o->size + 1);
	if (!lat || !buf) {
		cli_err("bench", "out of memory for %ld requests", o->count);
		goto out;
	}
	memset(buf, 'x', (size_t)o->size + 1);
	r = bench_shm_map(&m, 1, 1);
	if (r < 0) {
		cli_err("bench", "mmap: %s", strerror(-r));
		goto out;
	}
	pid[0] = bench_fork(bench_responder_main, o, &m, 0);
	if (pid[0] < 0) {
		cli_err("bench", "fork: %m");
		pid[0] = 0;
		goto out;
	}
	c = cli_connect("bench", o->url, "ipcbus bench requester");
	if (!c)
		goto out;
	t0 = bench_now();
	while (atomic_load(&m.head->ready) < 1) {
		if (bench_reap(pid, 1, &m, &failed, 0) == 0 || bench_now() - t0 > 10000000000LL) {
			cli_err("bench", "the responder did not start");
			goto out;
		}
		bench_nap(1000000);
	}
	/* Warm up both processes and the broker before measuring. */
	r = bench_latency(o, c, buf, NULL, o->count < 1000 ? o->count : 1000);
	if (r == 0)
		r = bench_latency(o, c, buf, lat, o->count);
	if (r == 0)
		r = bench_throughput(o, c, buf, &tsecs);
	bench_progress_clear(o);
	if (r < 0) {
		cli_err("bench", "request failed: %s %s", ipcbus_strerror(r), ipcbus_last_error(c));
		ret = cli_exit_code(r);
		goto out;
	}
	atomic_store(&m.head->stop, 1);
	bench_reap(pid, 1, &m, &failed, 1);
	if (failed) {
		cli_err("bench", "the responder failed");
		goto out;
	}
	bench_req_report(o, lat, tsecs);
	ret = CLI_OK;
out:
	ipcbus_close(c);
	if (m.base) {
		atomic_store(&m.head->stop, 1);
		bench_stop_all(pid, 1, &m, &failed);
	}
	bench_shm_unmap(&m);
	free(lat);
	free(buf);
	return ret;
}

/* ---- options ---- */

static int bench_num(const char *opt, const char *s, long min, long max, long *out)
{
	if (cli_parse_long(s, min, max, out) == 0)
		return 0;
	cli_err("bench", "%s wants a number from %ld to %ld, not '%s'", opt, min, max, s);
	return -1;
}

int cmd_bench(int argc, char **argv)
{
	enum { OPT_REQ = 256, OPT_JSON, OPT_CHANNEL };
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "count", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "publishers", required_argument, NULL, 'p' },
		{ "subscribers", required_argument, NULL, 'S' },
		{ "window", required_argument, NULL, 'w' },
		{ "inflight", required_argument, NULL, 'k' },
		{ "req", no_argument, NULL, OPT_REQ },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "channel", required_argument, NULL, OPT_CHANNEL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_opts o = { 0 };
	int opt, count_set = 0, procs_set = 0;
	uint64_t maxp;
	ipcbus *c;

	o.size = 64;
	o.pubs = 1;
	o.subs = 1;
	o.inflight = 64;
	o.window = BENCH_WINDOW;
	snprintf(o.channel, sizeof(o.channel), "bench.%ld", (long)getpid());
	while ((opt = getopt_long(argc, argv, "u:n:s:p:S:w:k:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			o.url = optarg;
			break;
		case 'n':
			if (bench_num("-n", optarg, 1, 1000000000000L, &o.count) < 0)
				goto usage;
			count_set = 1;
			break;
		case 's':
			if (bench_num("-s", optarg, 0, 1L << 30, &o.size) < 0)
				goto usage;
			break;
		case 'p':
			if (bench_num("-p", optarg, 1, BENCH_MAX_PROCS, &o.pubs) < 0)
				goto usage;
			procs_set = 1;
			break;
		case 'S':
			if (bench_num("-S", optarg, 1, BENCH_MAX_PROCS, &o.subs) < 0)
				goto usage;
			procs_set = 1;
			break;
		case 'w':
			if (bench_num("-w", optarg, 1, 1L << 40, &o.window) < 0)
				goto usage;
			break;
		case 'k':
			if (bench_num("-k", optarg, 1, 1000000, &o.inflight) < 0)
				goto usage;
			break;
		case OPT_REQ:
			o.req = 1;
			break;
		case OPT_JSON:
			o.json = 1;
			break;
		case OPT_CHANNEL:
			if (strlen(optarg) >= sizeof(o.channel)) {
				cli_err("bench", "--channel: name too long");
				goto usage;
			}
			snprintf(o.channel, sizeof(o.channel), "%s", optarg);
			break;
		case 'h':
			bench_usage(stdout);
			return CLI_OK;
		default:
			goto usage;
		}
	}
	if (optind < argc) {
		cli_err("bench", "unexpected argument '%s'", argv[optind]);
		goto usage;
	}
	if (!count_set)
		o.count = o.req ? 100000 : 1000000;
	if (o.req && procs_set) {
		cli_err("bench", "-p and -S do not apply to --req");
		goto usage;
	}
	if (!o.req && o.size < BENCH_HDR) {
		cli_err("bench", "-s must be at least %d: the payload carries a publisher index "
				 "and a sequence number", BENCH_HDR);
		goto usage;
	}
	if (!o.req && o.count < o.pubs) {
		cli_err("bench", "-n %ld is fewer messages than publishers", o.count);
		goto usage;
	}

	/* Fail at once, with the usual message, when no broker is there. */
	c = cli_connect("bench", o.url, "ipcbus bench");
	if (!c)
		return CLI_ERROR;
	snprintf(o.conn_url, sizeof(o.conn_url), "%s", ipcbus_url(c));
	cli_redact_url(o.conn_url, o.shown_url, sizeof(o.shown_url));
	maxp = ipcbus_max_payload(c);
	ipcbus_close(c);
	if (maxp && (uint64_t)o.size > maxp) {
		cli_err("bench", "-s %ld is over the broker's max-payload of %llu", o.size,
			(unsigned long long)maxp);
		return CLI_ERROR;
	}
	/* Children connect to what the parent reached, so all use one broker. */
	if (!o.url)
		o.url = o.conn_url;
	o.progress = isatty(STDERR_FILENO);
	return o.req ? bench_req(&o) : bench_pubsub(&o);
usage:
	bench_usage(stderr);
	return CLI_USAGE;
}
