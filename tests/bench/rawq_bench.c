/*
 * rawq_bench.c: SysV message queues, raw and through the broker's raw
 * bridges (sysv-in, sysv-out), measured in one run.
 *
 *   rawq_bench stream    [-n COUNT] [-s SIZE] [-c CPU,CPU]
 *       one process msgsnd()s COUNT messages, another msgrcv()s them: the
 *       ceiling a raw bridge is compared with
 *   rawq_bench pingpong  [-n COUNT] [-s SIZE] [-c CPU,CPU]
 *       round trips between two processes over two queues: p50, p99
 *   rawq_bench bridge -B IPCBUSD [-n COUNT] [-s SIZE] [-c CPU,CPU]
 *       starts ipcbusd (pinned to the first CPU) with raw bridges on fresh
 *       keys and measures, the clients on the second CPU:
 *         in       a legacy sender -> sysv-in -> a libipcbus subscriber
 *         out      a libipcbus publisher -> sysv-out -> a legacy receiver
 *         through  a legacy sender -> sysv-in -> sysv-out -> a legacy receiver
 *         trip     one message into sysv-in and out of sysv-out, one at a
 *                  time (a one-way trip through the broker): p50, p99
 *       then stops the broker (its queues are `remove`: gone after).
 *   rawq_bench all -B IPCBUSD ...   all of the above
 *   --json prints one object per line.
 * stream and pingpong are msgq_raw.c's (shared with msgq_bench): the
 * sender, and the side that times a round trip, on the first CPU.  Their
 * queues are IPC_PRIVATE and removed at the end (and on INT/TERM).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipcbus.h"
#include "msgq_raw.h"

#define MAXQ 8

static long q_keys[MAXQ];
static pid_t broker_pid;
static char tmpdir[64];
static int json;
static int cpu_a = -1, cpu_b = -1;

struct bigmsg {
	long mtype;
	char mtext[65536];
};

static void cleanup(void)
{
	msgq_raw_cleanup();
	if (broker_pid > 0) {
		kill(broker_pid, SIGTERM);
		waitpid(broker_pid, NULL, 0);
		broker_pid = 0;
	}
	for (int i = 0; i < MAXQ; i++)
		if (q_keys[i]) {
			int id = msgget((key_t)q_keys[i], 0);
			if (id >= 0)
				msgctl(id, IPC_RMID, NULL);
			q_keys[i] = 0;
		}
	if (tmpdir[0]) {
		char p[128];
		snprintf(p, sizeof p, "%s/c.conf", tmpdir);
		unlink(p);
		snprintf(p, sizeof p, "%s/s.sock", tmpdir);
		unlink(p);
		snprintf(p, sizeof p, "%s/log", tmpdir);
		unlink(p);
		rmdir(tmpdir);
		tmpdir[0] = 0;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void snd(int id, struct bigmsg *m, size_t n)
{
	while (msgsnd(id, m, n, 0) < 0)
		if (errno != EINTR) {
			perror("msgsnd");
			_exit(1);
		}
}

static ssize_t rcv(int id, struct bigmsg *m)
{
	ssize_t n;
	while ((n = msgrcv(id, m, sizeof m->mtext, 0, 0)) < 0)
		if (errno != EINTR) {
			perror("msgrcv");
			_exit(1);
		}
	return n;
}

/* Shared between the processes of one measurement. */
struct shared {
	volatile uint64_t t_end;
	volatile uint64_t got;
};

static struct shared *shared_new(void)
{
	struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(s, 0, sizeof *s);
	return s;
}

static void report_rate(const char *what, uint64_t n, size_t size, uint64_t ns)
{
	double s = (double)ns / 1e9;
	double rate = s > 0 ? (double)n / s : 0;
	if (json)
		printf("{\"bench\":\"%s\",\"count\":%llu,\"size\":%zu,\"seconds\":%.4f,\"msgs_per_s\":%.0f,\"mb_per_s\":%.2f}\n",
		       what, (unsigned long long)n, size, s, rate, rate * (double)size / 1e6);
	else
		printf("%-16s %9llu x %5zu B  %8.3f s  %10.0f msg/s  %8.2f MB/s\n", what,
		       (unsigned long long)n, size, s, rate, rate * (double)size / 1e6);
	fflush(stdout);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void report_lat(const char *what, uint64_t *lat, uint64_t n, size_t size)
{
	qsort(lat, n, sizeof *lat, cmp_u64);
	double p50 = (double)lat[n / 2] / 1000, p99 = (double)lat[n * 99 / 100] / 1000;
	if (json)
		printf("{\"bench\":\"%s\",\"count\":%llu,\"size\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
		       what, (unsigned long long)n, size, p50, p99);
	else
		printf("%-16s %9llu x %5zu B  p50 %8.1f us  p99 %8.1f us\n", what,
		       (unsigned long long)n, size, p50, p99);
	fflush(stdout);
}

/* ---- raw ---- */

static void bench_stream(uint64_t n, size_t size)
{
	uint64_t ns;
	if (msgq_raw_stream(n, size, cpu_a, cpu_b, &ns) < 0)
		exit(1);
	report_rate("raw stream", n, size, ns);
}

static void bench_pingpong(uint64_t n, size_t size)
{
	uint64_t *lat = malloc(n * sizeof *lat);
	if (!lat)
		exit(1);
	uint64_t k = msgq_raw_pingpong(n, size, cpu_a, cpu_b, lat);
	if (k < n)
		exit(1);
	report_lat("raw pingpong", lat, n, size);
	free(lat);
}

/* ---- through the broker ---- */

static long bkey(int i)
{
	return 0x6d000000L | (long)(getpid() & 0xffff) << 8 | i;
}

static ipcbus *bconnect(const char *url)
{
	ipcbus *c = NULL;
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	o.name = "rawq_bench";
	o.no_reconnect = 1;
	o.max_queued = (size_t)1 << 30;
	int rc = ipcbus_connect(&c, url, &o);
	if (rc < 0) {
		fprintf(stderr, "connect %s: %s\n", url, ipcbus_strerror(rc));
		return NULL;
	}
	return c;
}

static int start_broker(const char *ipcbusd, char *url, size_t urllen)
{
	char conf[128], log[128], text[1024];
	snprintf(tmpdir, sizeof tmpdir, "/tmp/rawq_bench.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		tmpdir[0] = 0;
		perror("mkdtemp");
		return -1;
	}
	for (int i = 0; i < 5; i++)
		q_keys[i] = bkey(i);
	snprintf(conf, sizeof conf, "%s/c.conf", tmpdir);
	snprintf(log, sizeof log, "%s/log", tmpdir);
	snprintf(text, sizeof text,
		 "listen unix://%s/s.sock\n"
		 "sysv-in 0x%lx 1 bench.in remove\n"
		 "sysv-out bench.out 0x%lx 1 remove wait=60000 backlog=1G\n"
		 "sysv-in 0x%lx 1 bench.thru remove\n"
		 "sysv-out bench.thru 0x%lx 1 remove wait=60000 backlog=1G\n",
		 tmpdir, q_keys[0], q_keys[1], q_keys[2], q_keys[3]);
	FILE *f = fopen(conf, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(conf);
		return -1;
	}
	snprintf(url, urllen, "unix://%s/s.sock", tmpdir);
	broker_pid = fork();
	if (broker_pid == 0) {
		msgq_raw_pin(cpu_a);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		execl(ipcbusd, "ipcbusd", "-c", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		ipcbus *c = NULL;
		ipcbus_opts o = IPCBUS_OPTS_INIT;
		o.no_reconnect = 1;
		o.connect_timeout_ms = 100;
		if (ipcbus_connect(&c, url, &o) == 0) {
			ipcbus_close(c);
			return 0;
		}
		usleep(10000);
	}
	fprintf(stderr, "the broker did not start (see %s)\n", log);
	return -1;
}

struct counter {
	uint64_t n;
	uint64_t t_end;
	uint64_t want;
};

static void count_cb(void *arg, const ipcbus_msg *m)
{
	struct counter *c = arg;
	(void)m;
	if (++c->n == c->want)
		c->t_end = msgq_raw_now_ns();
}

static void bench_in(const char *url, uint64_t n, size_t size)
{
	ipcbus *c = bconnect(url);
	if (!c)
		return;
	msgq_raw_pin(cpu_b);
	struct counter cnt = {0, 0, n};
	ipcbus_subscribe(c, "bench.in", NULL, count_cb, &cnt, NULL);
	ipcbus_flush(c, 5000);
	int q = msgget((key_t)q_keys[0], 0);
	uint64_t t0 = msgq_raw_now_ns();
	pid_t pid = fork();
	if (pid == 0) {
		static struct bigmsg m;
		m.mtype = 1;
		memset(m.mtext, 'i', size);
		for (uint64_t i = 0; i < n; i++)
			snd(q, &m, size);
		_exit(0);
	}
	while (cnt.n < n)
		if (ipcbus_wait(c, 10000) < 0)
			break;
	waitpid(pid, NULL, 0);
	if (cnt.n < n)
		fprintf(stderr, "bridge in: %llu of %llu arrived\n", (unsigned long long)cnt.n,
			(unsigned long long)n);
	report_rate("bridge in", cnt.n, size, cnt.t_end - t0);
	ipcbus_close(c);
}

static void bench_out(const char *url, uint64_t n, size_t size)
{
	ipcbus *c = bconnect(url);
	if (!c)
		return;
	msgq_raw_pin(cpu_b);
	int q = msgget((key_t)q_keys[1], 0);
	struct shared *sh = shared_new();
	pid_t pid = fork();
	if (pid == 0) {
		static struct bigmsg m;
		for (uint64_t i = 0; i < n; i++)
			rcv(q, &m);
		sh->t_end = msgq_raw_now_ns();
		_exit(0);
	}
	char *buf = malloc(size ? size : 1);
	memset(buf, 'o', size);
	uint64_t t0 = msgq_raw_now_ns();
	for (uint64_t i = 0; i < n; i++)
		if (ipcbus_publish(c, "bench.out", buf, size) < 0)
			break;
	ipcbus_flush(c, 60000);
	waitpid(pid, NULL, 0);
	report_rate("bridge out", n, size, sh->t_end - t0);
	free(buf);
	ipcbus_close(c);
}

static void bench_through(uint64_t n, size_t size)
{
	int qin = msgget((key_t)q_keys[2], 0), qout = msgget((key_t)q_keys[3], 0);
	msgq_raw_pin(cpu_b);
	struct shared *sh = shared_new();
	pid_t pid = fork();
	if (pid == 0) {
		static struct bigmsg m;
		for (uint64_t i = 0; i < n; i++)
			rcv(qout, &m);
		sh->t_end = msgq_raw_now_ns();
		_exit(0);
	}
	static struct bigmsg m;
	m.mtype = 1;
	memset(m.mtext, 't', size);
	uint64_t t0 = msgq_raw_now_ns();
	for (uint64_t i = 0; i < n; i++)
		snd(qin, &m, size);
	waitpid(pid, NULL, 0);
	report_rate("bridge through", n, size, sh->t_end - t0);
}

static void bench_trip(uint64_t n, size_t size)
{
	int qin = msgget((key_t)q_keys[2], 0), qout = msgget((key_t)q_keys[3], 0);
	static struct bigmsg m;
	uint64_t *lat = malloc(n * sizeof *lat);
	msgq_raw_pin(cpu_b);
	m.mtype = 1;
	memset(m.mtext, 'r', size);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t = msgq_raw_now_ns();
		snd(qin, &m, size);
		rcv(qout, &m);
		lat[i] = msgq_raw_now_ns() - t;
	}
	report_lat("bridge trip", lat, n, size);
	free(lat);
}

static void bench_bridge(const char *ipcbusd, uint64_t n, size_t size)
{
	char url[128];
	if (!ipcbusd) {
		fprintf(stderr, "bridge: -B IPCBUSD is needed\n");
		exit(2);
	}
	if (start_broker(ipcbusd, url, sizeof url) < 0) {
		cleanup();
		exit(1);
	}
	bench_in(url, n, size);
	bench_out(url, n, size);
	bench_through(n, size);
	bench_trip(n / 10 ? n / 10 : 1, size);
	cleanup();
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	uint64_t n = 200000;
	size_t size = 64;
	const char *ipcbusd = NULL;
	int ch;

	while ((ch = getopt_long(argc, argv, "n:s:c:B:", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': n = strtoull(optarg, NULL, 10); break;
		case 's': size = strtoul(optarg, NULL, 10); break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &cpu_a, &cpu_b) != 2) {
				fprintf(stderr, "-c CPU,CPU\n");
				return 2;
			}
			break;
		case 'B': ipcbusd = optarg; break;
		case 'j': json = 1; break;
		default:
			fprintf(stderr, "usage: rawq_bench stream|pingpong|bridge|all [-n COUNT] [-s SIZE] [-c CPU,CPU] [-B IPCBUSD] [--json]\n");
			return 2;
		}
	}
	if (optind != argc - 1 || !n || size > 65536) {
		fprintf(stderr, "usage: rawq_bench stream|pingpong|bridge|all [-n COUNT] [-s SIZE] [-c CPU,CPU] [-B IPCBUSD] [--json]\n");
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	atexit(cleanup);
	const char *what = argv[optind];
	int all = strcmp(what, "all") == 0;
	if (all || strcmp(what, "stream") == 0)
		bench_stream(n, size);
	if (all || strcmp(what, "pingpong") == 0)
		bench_pingpong(n / 10 ? n / 10 : 1, size);
	cleanup();
	if (all || strcmp(what, "bridge") == 0)
		bench_bridge(ipcbusd, n, size);
	return 0;
}
