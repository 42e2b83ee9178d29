/*
 * bench_req.c: `ipcbus bench --req`.
 *
 * Request mode forks one responder (ipcbus_respond echoing the payload) and
 * measures from the parent: first N requests one at a time (the latency
 * distribution), then N requests with K in flight (the throughput).
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define BENCH_REQ_TIMEOUT_MS 10000

/* State of the requester in --req mode. */
struct bench_async {
	long done, errors;
	int first_err;
};

/* ---- the responder process ---- */

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

static int bench_responder_main(const struct bench_opts *o, struct bench_shm *m, long i)
{
	(void)i;
	return bench_responder(o, m);
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

int bench_req(const struct bench_opts *o)
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

