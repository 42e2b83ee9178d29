/*
 * bench.c: `ipcbus bench`: pub/sub throughput, or request latency, through
 * a running broker over any URL.  This file holds the options, the shared
 * memory, the plumbing of the child processes (fork, reap, stop) and the
 * output helpers; bench_pubsub.c runs pub/sub mode, bench_req.c --req.
 *
 * Times come from CLOCK_MONOTONIC, which is the same clock in every process.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BENCH_WINDOW (16L << 20)     /* 1/4 of the default max-pending */

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

int64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void bench_nap(long ns)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ns };

	nanosleep(&ts, NULL);
}

/* "850 ns", "12.3 us", "1.23 ms", "2.05 s": three digits or so. */
void bench_fmt_dur(char *out, size_t n, double ns)
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
void bench_json_str(FILE *f, const char *s)
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

void bench_progress_clear(const struct bench_opts *o)
{
	if (o->progress)
		fputs("\r\033[K", stderr);
}

/* ---- shared memory ---- */

int bench_shm_map(struct bench_shm *m, long pubs, long subs)
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

void bench_shm_unmap(struct bench_shm *m)
{
	if (m->base)
		munmap(m->base, m->size);
	m->base = NULL;
}

/* ---- processes ---- */

/* Fork a child running fn; it never returns into the caller's code. */
pid_t bench_fork(int (*fn)(const struct bench_opts *, struct bench_shm *, long),
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

/* Reap what exited; a child that failed aborts the run.  Returns how many
 * are still running. */
int bench_reap(pid_t *pids, int n, struct bench_shm *m, int *failed, int block)
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
void bench_stop_all(pid_t *pids, int n, struct bench_shm *m, int *failed)
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
