/*
 * bench_pubsub.c: `ipcbus bench` in pub/sub mode (the default).
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
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define BENCH_OVERHEAD 64            /* framing, channel and ids per message, roughly */
#define BENCH_IDLE_NS 3000000000LL   /* silence that ends a subscriber after the publishers */
#define BENCH_STALL_NS 15000000000LL /* a publisher blocked this long gives up */

/* State of one subscriber process. */
struct bench_rx {
	struct bench_shm *shm;
	struct bench_sub *me;
	atomic_uint_fast64_t *next;
	uint64_t *expect;
	long pubs, size;
	uint64_t received, total;
};

/* ---- the publisher and subscriber processes ---- */

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

int bench_pubsub(const struct bench_opts *o)
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

