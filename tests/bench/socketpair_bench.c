/*
 * socketpair_bench.c: the ceilings the broker is measured against.
 *
 *   socketpair_bench stream [-n COUNT] [-s SIZE] [-b BATCH] [-d] [-c A,B] [--json]
 *       one process writes COUNT length-delimited ipcbus MSG frames of SIZE
 *       payload bytes to another over a Unix stream socketpair, BATCH
 *       frames per write (encoded once: the bytes are the same every
 *       batch); the reader splits the stream into frames, and with -d also
 *       decodes each.  Prints msgs/s: the most one hop can move.
 *   socketpair_bench pingpong [-n COUNT] [-s SIZE] [-c A,B] [--json]
 *       two processes bounce one frame back and forth COUNT times; prints
 *       round-trip p50/p99/p99.9 in microseconds.
 *   socketpair_bench relay [-n COUNT] [-s SIZE] [-c A,B] [--json]
 *       the floor of any broker's round trip: a requester and a responder
 *       (on CPU B) talk through a relay process (on CPU A) that does nothing
 *       but epoll_wait, read and write; four hops between the CPUs where
 *       ping-pong has two.
 *   -c A,B pins the parent to CPU A and the child to CPU B (relay: the
 *   relay to A, the requester and the responder to B).
 *
 * A benchmark, not a test: `make check` does not run it.
 */
#include <config.h>

#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"

static uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int bench_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Encode one MSG frame with its length prefix; returns its size. */
static size_t bench_frame(uint8_t *dst, size_t size, uint64_t seq)
{
	static uint8_t payload[1 << 20];
	struct frame f = {.type = IPCBUS__FRAME_TYPE__MSG, .has_sid = 1, .sid = 1};
	memcpy(payload, &seq, sizeof seq < size ? sizeof seq : size);
	f.channel.p = (const uint8_t *)"bench.data";
	f.channel.len = 10;
	f.channel.set = 1;
	f.payload.p = payload;
	f.payload.len = size;
	f.payload.set = 1;
	size_t n = frame_size(&f, NULL, 0);
	size_t k = frame_varint_put(dst, n);
	return k + frame_encode(&f, NULL, 0, dst + k);
}

/* Read (and with decode, decode) frames until count arrived; 0 or -1. */
static int bench_reader(int fd, long count, int echo, int decode)
{
	static uint8_t buf[1 << 20];
	size_t have = 0;
	long got = 0;

	while (got < count) {
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		size_t off = 0;
		for (;;) {
			const uint8_t *body;
			size_t len, need;
			long k = frame_split(buf + off, have - off, sizeof buf, &body, &len, &need);
			if (k < 0)
				return -1;
			if (k == 0)
				break;
			struct frame f;
			if (decode && (frame_decode(body, len, &f) < 0 ||
				       f.type != IPCBUS__FRAME_TYPE__MSG))
				return -1;
			if (echo && bench_write_all(fd, buf + off, (size_t)k) < 0)
				return -1;
			off += (size_t)k;
			got++;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	return 0;
}

static int cpu_parent = -1, cpu_child = -1;

static void bench_pin(int cpu)
{
	cpu_set_t set;
	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) < 0)
		perror("sched_setaffinity");
}

static pid_t bench_fork(int sv[2], long count, int echo, int decode)
{
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		bench_pin(cpu_child);
		_exit(bench_reader(sv[1], count, echo, decode) < 0 ? 1 : 0);
	}
	close(sv[1]);
	bench_pin(cpu_parent);
	return pid;
}

static int bench_stream(long count, size_t size, int batch, int decode, int json)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	pid_t pid = bench_fork(sv, count, 0, decode);
	size_t one = size + 32, n = 0;
	uint8_t *out = malloc(one * (size_t)batch);
	for (int j = 0; j < batch; j++)
		n += bench_frame(out + n, size, (uint64_t)j);
	size_t per = n / (size_t)batch;
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < count; i += batch) {
		long k = count - i < batch ? count - i : batch;
		if (bench_write_all(sv[0], out, per * (size_t)k) < 0)
			return 1;
	}
	int st;
	waitpid(pid, &st, 0);
	uint64_t t1 = bench_now_ns();
	free(out);
	close(sv[0]);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "reader failed\n");
		return 1;
	}
	double secs = (double)(t1 - t0) / 1e9;
	double rate = (double)count / secs;
	if (json)
		printf("{\"test\":\"stream\",\"count\":%ld,\"size\":%zu,\"batch\":%d,\"decode\":%d,\"secs\":%.4f,\"msgs_per_s\":%.0f,\"mb_per_s\":%.1f}\n",
		       count, size, batch, decode, secs, rate, rate * (double)size / 1e6);
	else
		printf("socketpair stream%s: %ld msgs of %zu B, %d per write: %.0f msgs/s, %.1f MB/s\n",
		       decode ? " (decoded)" : "", count, size, batch, rate, rate * (double)size / 1e6);
	return 0;
}

static int bench_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* count round trips of one frame over fd (the far end echoes it); prints
 * the percentiles as test (JSON) or label (text).  0 or 1. */
static int bench_round_trips(int fd, long count, size_t size, const char *test, const char *label,
			     int json)
{
	uint8_t *out = malloc(size + 32);
	uint64_t *lat = malloc(sizeof *lat * (size_t)count);
	int rc = 1;

	if (!out || !lat)
		goto out;
	for (long i = 0; i < count; i++) {
		size_t n = bench_frame(out, size, (uint64_t)i);
		uint64_t t0 = bench_now_ns();
		if (bench_write_all(fd, out, n) < 0 || bench_reader(fd, 1, 0, 1) < 0)
			goto out;
		lat[i] = bench_now_ns() - t0;
	}
	qsort(lat, (size_t)count, sizeof *lat, bench_cmp);
	double p50 = (double)lat[count / 2] / 1e3, p99 = (double)lat[count * 99 / 100] / 1e3,
	       p999 = (double)lat[count * 999 / 1000] / 1e3;
	if (json)
		printf("{\"test\":\"%s\",\"count\":%ld,\"size\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f}\n",
		       test, count, size, p50, p99, p999);
	else
		printf("%s: %ld round trips of %zu B: p50 %.1f us, p99 %.1f us, p99.9 %.1f us\n",
		       label, count, size, p50, p99, p999);
	rc = 0;
out:
	free(out);
	free(lat);
	return rc;
}

static int bench_pingpong(long count, size_t size, int json)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	pid_t pid = bench_fork(sv, count, 1, 1);
	int rc = bench_round_trips(sv[0], count, size, "pingpong", "socketpair ping-pong", json);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return rc;
}

/* The relay: moves whole frames between its two sockets until EOF. */
static void bench_relay_loop(int a, int b)
{
	static uint8_t buf[1 << 16];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event e = {.events = EPOLLIN};
	e.data.fd = a;
	epoll_ctl(ep, EPOLL_CTL_ADD, a, &e);
	e.data.fd = b;
	epoll_ctl(ep, EPOLL_CTL_ADD, b, &e);
	for (;;) {
		struct epoll_event ev[2];
		int k = epoll_wait(ep, ev, 2, -1);
		for (int i = 0; i < k; i++) {
			int from = ev[i].data.fd;
			ssize_t n = read(from, buf, sizeof buf);
			if (n <= 0 || bench_write_all(from == a ? b : a, buf, (size_t)n) < 0)
				_exit(0);
		}
	}
}

static int bench_relay(long count, size_t size, int json)
{
	int ra[2], rb[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ra) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, rb) < 0)
		return 1;
	pid_t relay = fork();
	if (relay == 0) {
		close(ra[0]);
		close(rb[0]);
		bench_pin(cpu_parent);
		bench_relay_loop(ra[1], rb[1]);
	}
	close(ra[1]);
	close(rb[1]);
	pid_t resp = fork();
	if (resp == 0) {
		close(ra[0]);
		bench_pin(cpu_child);
		_exit(bench_reader(rb[0], count, 1, 1) < 0 ? 1 : 0);
	}
	close(rb[0]);
	bench_pin(cpu_child);
	int rc = bench_round_trips(ra[0], count, size, "relay",
				   "relay round trip (the floor of a broker)", json);
	close(ra[0]);
	waitpid(resp, NULL, 0);
	waitpid(relay, NULL, 0);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	long count = 0, size = 64, batch = 64;
	int json = 0, decode = 0, c;

	if (argc < 2 || (strcmp(argv[1], "stream") && strcmp(argv[1], "pingpong") &&
			  strcmp(argv[1], "relay"))) {
		fprintf(stderr, "usage: socketpair_bench stream|pingpong|relay [-n COUNT] [-s SIZE] [-b BATCH] [-d] [-c A,B] [--json]\n");
		return 2;
	}
	const char *mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "n:s:b:dc:", lo, NULL)) != -1) {
		switch (c) {
		case 'd': decode = 1; break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &cpu_parent, &cpu_child) != 2)
				return 2;
			break;
		case 'n': count = atol(optarg); break;
		case 's': size = atol(optarg); break;
		case 'b': batch = atol(optarg); break;
		case 'j': json = 1; break;
		default: return 2;
		}
	}
	if (size < 8 || size > (1 << 20) - 64 || batch < 1 || batch > 4096 || count < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(mode, "stream") == 0)
		return bench_stream(count ? count : 10000000, (size_t)size, (int)batch, decode, json);
	if (strcmp(mode, "relay") == 0)
		return bench_relay(count ? count : 20000, (size_t)size, json);
	return bench_pingpong(count ? count : 20000, (size_t)size, json);
}
