/*
 * hose_bench.c: what stalled subscribers cost one that keeps up.
 *
 *   hose_bench -s SOCKET [-n COUNT] [-z SIZE] [-k STALLED] [--json]
 *
 * STALLED subscribers (default 20) subscribe to "hose" and never read.  One
 * healthy subscriber reads as fast as it can, in a thread of its own.  A
 * publisher then sends COUNT messages (default 200,000) of SIZE bytes
 * (default 1,024) as fast as the socket takes them: a fire hose, no flow
 * control.  Printed: the share of the messages the healthy subscriber got.
 * Run it against a broker with a small max-memory (say 8M, max-pending 1M)
 * with -k 0 and with -k 20: a broker where stalled subscribers pay for their
 * own backlog gives the healthy one the same share both times.
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

static int hose_connect(const char *path)
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

static int hose_write(int fd, const struct buf *b)
{
	const uint8_t *p = buf_rptr(b);
	size_t n = buf_len(b);
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
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

/* HELLO, and SUB "hose" (sid 1) when sub, then a PING round trip so that
 * the subscription is in place. */
static int hose_open(const char *path, int sub)
{
	int fd = hose_connect(path);
	if (fd < 0)
		return -1;
	struct buf out;
	buf_init(&out, 4096);
	Ipcbus__Hello h = IPCBUS__HELLO__INIT;
	h.version = 1;
	frame_append_hello(&out, 1, &h);
	if (sub) {
		struct frame f = {.type = IPCBUS__FRAME_TYPE__SUB, .has_sid = 1, .sid = 1};
		f.channel.p = (const uint8_t *)"hose";
		f.channel.len = 4;
		f.channel.set = 1;
		frame_append(&out, &f, NULL, 0);
	}
	struct frame ping = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = 7};
	frame_append(&out, &ping, NULL, 0);
	int rc = hose_write(fd, &out);
	buf_fini(&out);
	/* read until the PONG */
	struct buf in;
	buf_init(&in, 1 << 20);
	for (int done = 0; rc == 0 && !done;) {
		if (buf_reserve(&in, 4096) < 0)
			break;
		ssize_t k = recv(fd, buf_wptr(&in), buf_room(&in), 0);
		if (k <= 0) {
			rc = -1;
			break;
		}
		buf_commit(&in, (size_t)k);
		const uint8_t *body;
		size_t len, need;
		long n;
		while ((n = frame_split(buf_rptr(&in), buf_len(&in), 1 << 20, &body, &len, &need)) > 0) {
			struct frame f;
			if (frame_decode(body, len, &f) == 0 && f.type == IPCBUS__FRAME_TYPE__PONG)
				done = 1;
			buf_consume(&in, (size_t)n);
		}
	}
	buf_fini(&in);
	if (rc < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

struct hose_reader {
	int fd;
	volatile int stop;
	uint64_t got;
};

static void *hose_read(void *arg)
{
	struct hose_reader *r = arg;
	struct buf in;
	buf_init(&in, 4 << 20);
	while (!r->stop) {
		struct pollfd pf = {.fd = r->fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		if (buf_reserve(&in, 256 << 10) < 0)
			break;
		ssize_t k = recv(r->fd, buf_wptr(&in), buf_room(&in), 0);
		if (k <= 0)
			break;
		buf_commit(&in, (size_t)k);
		const uint8_t *body;
		size_t len, need;
		long n;
		while ((n = frame_split(buf_rptr(&in), buf_len(&in), 1 << 24, &body, &len, &need)) > 0) {
			struct frame f;
			if (frame_decode(body, len, &f) == 0 && f.type == IPCBUS__FRAME_TYPE__MSG)
				r->got++;
			buf_consume(&in, (size_t)n);
		}
	}
	buf_fini(&in);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *sock = NULL;
	long count = 200000, size = 1024, stalled = 20;
	int json = 0, opt;
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {0}};

	while ((opt = getopt_long(argc, argv, "s:n:z:k:", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': sock = optarg; break;
		case 'n': count = atol(optarg); break;
		case 'z': size = atol(optarg); break;
		case 'k': stalled = atol(optarg); break;
		case 'j': json = 1; break;
		default: goto usage;
		}
	}
	if (!sock || count <= 0 || size < 8 || stalled < 0 || stalled > 1000)
		goto usage;

	int *st = calloc((size_t)stalled + 1, sizeof *st);
	for (long i = 0; i < stalled; i++)
		if ((st[i] = hose_open(sock, 1)) < 0) {
			fprintf(stderr, "hose_bench: cannot connect a stalled subscriber\n");
			return 1;
		}
	struct hose_reader r = {.fd = hose_open(sock, 1)};
	int pub = hose_open(sock, 0);
	if (r.fd < 0 || pub < 0) {
		fprintf(stderr, "hose_bench: cannot connect to %s\n", sock);
		return 1;
	}
	pthread_t th;
	pthread_create(&th, NULL, hose_read, &r);

	uint8_t *payload = calloc(1, (size_t)size);
	struct buf batch;
	buf_init(&batch, 8 << 20);
	for (long sent = 0; sent < count;) {
		buf_consume(&batch, buf_len(&batch));
		for (int k = 0; k < 64 && sent < count; k++, sent++) {
			memcpy(payload, &sent, sizeof sent);
			struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB};
			f.channel.p = (const uint8_t *)"hose";
			f.channel.len = 4;
			f.channel.set = 1;
			f.payload.p = payload;
			f.payload.len = (size_t)size;
			f.payload.set = 1;
			frame_append(&batch, &f, NULL, 0);
		}
		if (hose_write(pub, &batch) < 0) {
			fprintf(stderr, "hose_bench: the publisher was disconnected\n");
			break;
		}
	}
	/* let the healthy one read what is left */
	uint64_t last = (uint64_t)-1;
	while (last != r.got) {
		last = r.got;
		usleep(300000);
	}
	r.stop = 1;
	pthread_join(th, NULL);
	double share = 100.0 * (double)r.got / (double)count;
	if (json)
		printf("{\"stalled\":%ld,\"count\":%ld,\"size\":%ld,\"healthy_got\":%llu,\"share\":%.1f}\n",
		       stalled, count, size, (unsigned long long)r.got, share);
	else
		printf("%ld stalled: the healthy subscriber got %llu of %ld messages (%.1f %%)\n", stalled,
		       (unsigned long long)r.got, count, share);
	for (long i = 0; i < stalled; i++)
		close(st[i]);
	close(r.fd);
	close(pub);
	free(st);
	free(payload);
	buf_fini(&batch);
	return 0;
usage:
	fprintf(stderr, "usage: hose_bench -s SOCKET [-n COUNT] [-z SIZE] [-k STALLED] [--json]\n");
	return 2;
}
