/*
 * flood_bench.c: what one client that never reads costs everybody else.
 *
 *   flood_bench -s SOCKET [-n PINGS] [-p BROKER_PID] [--json]
 *
 * A flooder connects to the broker's Unix socket, says HELLO and writes
 * PINGS PING frames (default 5,000,000 of 14 bytes, ids from 2^63: 70 MB,
 * more than the default max-pending in answers) as fast as the socket
 * takes them, reading nothing, so the broker's answers pile up in its
 * output queue.  Meanwhile a prober on a second connection makes one PING
 * round trip every 10 ms and keeps the worst.  When the flood is written
 * (or the broker closed the flooder), the flooder reads what it was sent
 * and says how its connection ended: with the broker's ERR (and its code)
 * or with a reset.  With -p the broker's CPU time (user + system) over the
 * whole run is read from /proc.
 *
 * A benchmark, not a test: `make check` does not run it.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"

#define FLOOD_PROTOCOL_VERSION 1

static uint64_t flood_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int flood_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int flood_write(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Read one frame into in (blocking, at most timeout_ms); 1, 0 on timeout,
 * -errno or -EPIPE at EOF. */
static int flood_read(int fd, struct buf *in, struct frame *f, int timeout_ms)
{
	for (;;) {
		const uint8_t *body;
		size_t len, need;
		long n = frame_split(buf_rptr(in), buf_len(in), 1 << 24, &body, &len, &need);
		if (n > 0) {
			if (frame_decode(body, len, f) < 0)
				return -EPROTO;
			/* the view stays valid until the next call consumes */
			in->rpos += (size_t)n;
			return 1;
		}
		if (n < 0)
			return -EPROTO;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, timeout_ms) == 0)
			return 0;
		if (buf_reserve(in, 64 << 10) < 0)
			return -ENOMEM;
		ssize_t k = recv(fd, buf_wptr(in), buf_room(in), 0);
		if (k < 0)
			return errno == EINTR ? 0 : -errno;
		if (k == 0)
			return -EPIPE;
		buf_commit(in, (size_t)k);
	}
}

static int flood_hello(int fd, struct buf *in, const char *name)
{
	Ipcbus__Hello h = IPCBUS__HELLO__INIT;
	struct buf out;
	struct frame f;

	h.version = FLOOD_PROTOCOL_VERSION;
	h.has_name = 1;
	h.name.data = (uint8_t *)(uintptr_t)name;
	h.name.len = strlen(name);
	buf_init(&out, 4096);
	int rc = frame_append_hello(&out, 1, &h);
	if (rc == 0)
		rc = flood_write(fd, buf_rptr(&out), buf_len(&out));
	buf_fini(&out);
	if (rc == 0 && (flood_read(fd, in, &f, 5000) != 1 || f.type != IPCBUS__FRAME_TYPE__WELCOME))
		rc = -EPROTO;
	return rc;
}

struct flood_probe {
	const char *sock;
	volatile int stop;
	uint64_t worst_us, count, lost;
	int failed;
};

static void *flood_prober(void *arg)
{
	struct flood_probe *p = arg;
	struct buf in, out;
	struct frame f;
	int fd = flood_connect(p->sock);

	buf_init(&in, 1 << 25);
	buf_init(&out, 4096);
	if (fd < 0 || flood_hello(fd, &in, "flood-probe") < 0) {
		p->failed = 1;
		goto out;
	}
	for (uint64_t id = 2; !p->stop; id++) {
		struct frame ping = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = id};
		buf_consume(&out, buf_len(&out));
		uint64_t t0 = flood_now_us();
		if (frame_append(&out, &ping, NULL, 0) < 0 ||
		    flood_write(fd, buf_rptr(&out), buf_len(&out)) < 0) {
			p->failed = 1;
			break;
		}
		int rc;
		while ((rc = flood_read(fd, &in, &f, 200000)) == 1)
			if (f.type == IPCBUS__FRAME_TYPE__PONG && f.id == id)
				break;
		if (rc != 1) {
			p->lost++;
			break;
		}
		uint64_t rtt = flood_now_us() - t0;
		if (rtt > p->worst_us)
			p->worst_us = rtt;
		p->count++;
		usleep(10000);
	}
out:
	if (fd >= 0)
		close(fd);
	buf_fini(&in);
	buf_fini(&out);
	return NULL;
}

static double flood_cpu_s(long pid)
{
	char path[64], line[1024];
	unsigned long ut = 0, st = 0;
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = 0;
	char *p = strrchr(line, ')');
	/* after the name: state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
	const char *sock = NULL;
	long pings = 5000000, pid = 0;
	int json = 0, opt;
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {0}};

	while ((opt = getopt_long(argc, argv, "s:n:p:", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': sock = optarg; break;
		case 'n': pings = atol(optarg); break;
		case 'p': pid = atol(optarg); break;
		case 'j': json = 1; break;
		default:
			fprintf(stderr, "usage: flood_bench -s SOCKET [-n PINGS] [-p BROKER_PID] [--json]\n");
			return 2;
		}
	}
	if (!sock || pings <= 0) {
		fprintf(stderr, "usage: flood_bench -s SOCKET [-n PINGS] [-p BROKER_PID] [--json]\n");
		return 2;
	}

	struct buf in, batch;
	buf_init(&in, 1 << 26);
	buf_init(&batch, 1 << 20);
	int fd = flood_connect(sock);
	if (fd < 0 || flood_hello(fd, &in, "flood") < 0) {
		fprintf(stderr, "flood_bench: cannot connect to %s\n", sock);
		return 1;
	}
	struct flood_probe probe = {.sock = sock};
	pthread_t th;
	if (pthread_create(&th, NULL, flood_prober, &probe) != 0)
		return 1;
	usleep(50000);

	double cpu0 = pid ? flood_cpu_s(pid) : 0;
	uint64_t t0 = flood_now_us();
	long sent = 0;
	int werr = 0;
	/* PINGs in batches of 4,096 frames per write */
	while (sent < pings && !werr) {
		buf_consume(&batch, buf_len(&batch));
		long k;
		for (k = 0; k < 4096 && sent + k < pings; k++) {
			struct frame ping = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1,
					     .id = (1ull << 63) + (uint64_t)(sent + k)};
			frame_append(&batch, &ping, NULL, 0);
		}
		werr = flood_write(fd, buf_rptr(&batch), buf_len(&batch));
		if (!werr)
			sent += k;
	}
	uint64_t t_sent = flood_now_us();

	/* now read what came back, and how it ended */
	uint64_t pongs = 0;
	int err_code = -1, rc;
	struct frame f;
	while ((rc = flood_read(fd, &in, &f, 3000)) == 1) {
		if (f.type == IPCBUS__FRAME_TYPE__PONG)
			pongs++;
		else if (f.type == IPCBUS__FRAME_TYPE__ERR) {
			Ipcbus__Error *e = frame_unpack_error(&f);
			err_code = e ? (int)e->code : 0;
			if (e)
				ipcbus__error__free_unpacked(e, NULL);
		}
		buf_consume(&in, 0);
	}
	const char *end = rc == -EPIPE ? "eof" : rc == 0 ? "still open" : strerror(-rc);
	/* let the broker finish what it does with the flood */
	usleep(500000);
	probe.stop = 1;
	pthread_join(th, NULL);
	double cpu = pid ? flood_cpu_s(pid) - cpu0 : -1;
	uint64_t t_end = flood_now_us();
	close(fd);

	if (json)
		printf("{\"pings\":%ld,\"send_s\":%.3f,\"total_s\":%.3f,\"broker_cpu_s\":%.2f,"
		       "\"probe_worst_ms\":%.2f,\"probes\":%llu,\"probe_lost\":%llu,\"pongs\":%llu,"
		       "\"err_code\":%d,\"end\":\"%s\"}\n",
		       sent, (double)(t_sent - t0) / 1e6, (double)(t_end - t0) / 1e6, cpu,
		       (double)probe.worst_us / 1e3, (unsigned long long)probe.count,
		       (unsigned long long)probe.lost, (unsigned long long)pongs, err_code, end);
	else
		printf("flood: %ld PINGs written in %.3f s (%s); read back %llu PONGs, ERR code %d, then %s\n"
		       "broker CPU over the run (%.3f s): %.2f s\n"
		       "prober: %llu round trips, worst %.2f ms%s\n",
		       sent, (double)(t_sent - t0) / 1e6, werr ? strerror(-werr) : "all written",
		       (unsigned long long)pongs, err_code, end, (double)(t_end - t0) / 1e6, cpu,
		       (unsigned long long)probe.count, (double)probe.worst_us / 1e3,
		       probe.lost ? " (the last one got no answer within 200 s)" : "");
	buf_fini(&in);
	buf_fini(&batch);
	return probe.failed ? 1 : 0;
}
