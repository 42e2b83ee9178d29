/*
 * test_harness_net.c: the harness's network helpers, which the transport
 * conformance suite relies on before the broker speaks every transport:
 * the raw client on unix:// and tcp:// URLs (IPv4 and [::1], checked
 * against a listening socket of our own), refusals of what it does not
 * speak, a reset from harness_raw_abort, the raw client's SysV medium
 * (its queues, proof and HELLO message, against a queue standing in for a
 * broker's; removed when closed), free ports, and the throw-away
 * CA, server and client certificates of harness_tls_make (checked with the
 * openssl command: chain, purpose, names).
 */
#include <config.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define T 5000

/* A listening TCP socket on the loopback of family; *port gets its port. */
static int listen_loopback(int family, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;

	*port = harness_free_port(family);
	if (!*port)
		return -1;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons((uint16_t)*port);
		len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons((uint16_t)*port);
		len = sizeof *s4;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void close_fd_cb(void *arg)
{
	close((int)(intptr_t)arg);
}

/* Connect the raw client to url (served by listener lfd), send a frame
 * both ways, then reset: the accepted side reads the frame, writes one
 * back, and sees the reset. */
static void exchange(int lfd, const char *url)
{
	struct harness_raw *r = harness_raw_connect_url(url);
	if (!r)
		fprintf(stderr, "  %s: %s\n", url, strerror(errno));
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CU_ASSERT_FATAL(a >= 0);
	harness_defer(close_fd_cb, (void *)(intptr_t)a);

	/* a PING from the raw client arrives as its bytes */
	CU_ASSERT_EQUAL(harness_raw_ping(r, 7), 0);
	uint8_t got[64];
	struct pollfd pf = {.fd = a, .events = POLLIN};
	CU_ASSERT_EQUAL(poll(&pf, 1, T), 1);
	ssize_t n = recv(a, got, sizeof got, 0);
	struct buf want;
	buf_init(&want, 1024);
	struct frame ping = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = 7};
	CU_ASSERT_EQUAL(frame_append(&want, &ping, NULL, 0), 0);
	CU_ASSERT(n == (ssize_t)buf_len(&want) && memcmp(got, buf_rptr(&want), (size_t)n) == 0);
	/* and a PONG the other way is read as a frame */
	buf_consume(&want, buf_len(&want));
	struct frame pong = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = 1, .id = 7};
	CU_ASSERT_EQUAL(frame_append(&want, &pong, NULL, 0), 0);
	CU_ASSERT_EQUAL(send(a, buf_rptr(&want), buf_len(&want), MSG_NOSIGNAL),
			(ssize_t)buf_len(&want));
	buf_fini(&want);
	CU_ASSERT_EQUAL(harness_raw_read(r, T), 1);
	CU_ASSERT(r->f.type == IPCBUS__FRAME_TYPE__PONG && r->f.id == 7);

	harness_raw_abort(r);
	CU_ASSERT_EQUAL(poll(&pf, 1, T), 1);
	n = recv(a, got, sizeof got, 0);
	int err = errno;
	if (strncmp(url, "tcp://", 6) == 0) {
		CU_ASSERT(n < 0 && err == ECONNRESET); /* a reset, not an orderly close */
	} else {
		CU_ASSERT_EQUAL(n, 0);
	}
}

static void test_raw_tcp4(void)
{
	int port;
	int lfd = listen_loopback(AF_INET, &port);
	CU_ASSERT_FATAL(lfd >= 0);
	harness_defer(close_fd_cb, (void *)(intptr_t)lfd);
	char url[64];
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	exchange(lfd, url);
	/* a token in the URL parses (it is not sent yet) */
	snprintf(url, sizeof url, "tcp://s%%40cret@127.0.0.1:%d", port);
	exchange(lfd, url);
}

static void test_raw_tcp6(void)
{
	if (!harness_have_ipv6()) {
		fprintf(stderr, "  (no IPv6 loopback: nothing to check)\n");
		CU_PASS("no IPv6 loopback");
		return;
	}
	int port;
	int lfd = listen_loopback(AF_INET6, &port);
	CU_ASSERT_FATAL(lfd >= 0);
	harness_defer(close_fd_cb, (void *)(intptr_t)lfd);
	char url[64];
	snprintf(url, sizeof url, "tcp://[::1]:%d", port);
	exchange(lfd, url);
}

static void test_raw_unix(void)
{
	struct harness_broker *b = harness_broker_up("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct harness_raw *r = harness_raw_open_url(b->url, "by-url");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT(r->welcome && r->welcome->version == 1);
	CU_ASSERT_EQUAL(harness_raw_barrier(r, T, NULL, NULL), 1);
	/* the socket-path functions work as before */
	struct harness_raw *old = harness_raw_open(b, "by-path");
	CU_ASSERT_PTR_NOT_NULL_FATAL(old);
	CU_ASSERT_EQUAL(harness_raw_barrier(old, T, NULL, NULL), 1);
	harness_raw_abort(r);
	CU_ASSERT_EQUAL(harness_raw_barrier(old, T, NULL, NULL), 1);
}

/* Private queues on the system (key 0), from /proc/sysvipc/msg. */
static int private_queue_count(void)
{
	FILE *f = fopen("/proc/sysvipc/msg", "re");
	char line[512];
	int n = 0;
	while (f && fgets(line, sizeof line, f)) {
		long long key;
		int id;
		n += sscanf(line, "%lld %d", &key, &id) == 2 && key == 0;
	}
	if (f)
		fclose(f);
	return n;
}

static void test_raw_refusals(void)
{
	static const struct {
		const char *url;
		int err;
	} cases[] = {
		{"tls://127.0.0.1:1", EPROTONOSUPPORT},
		{"udp://127.0.0.1:1", EPROTONOSUPPORT},
		{"shm://0x1234", EPROTONOSUPPORT},
		{"nothing", EINVAL},
		{"tcp://127.0.0.1", EINVAL},
		{"tcp://[::1:80", EINVAL},
		{"unix://relative.sock", EINVAL},
	};
	for (size_t i = 0; i < HARNESS_NELEM(cases); i++) {
		errno = 0;
		struct harness_raw *r = harness_raw_connect_url(cases[i].url);
		if (r || errno != cases[i].err) {
			fprintf(stderr, "  %s: %s, errno %d (%s)\n", cases[i].url,
				r ? "connected" : "refused", errno, strerror(errno));
			CU_FAIL("the raw client did not refuse as documented");
		}
	}
	/* nobody listening: connect's own error */
	int port = harness_free_port(AF_INET);
	CU_ASSERT_FATAL(port > 0);
	char url[64];
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	errno = 0;
	CU_ASSERT_PTR_NULL(harness_raw_connect_url(url));
	CU_ASSERT_EQUAL(errno, ECONNREFUSED);

	/* sysv:// with no queue at the key: refused the same way, and the
	 * queues it began are gone */
	long key = 0;
	for (long k = 0x5e000000 + (getpid() & 0xffff) * 16; !key && k < 0x5f000000; k += 7)
		if (msgget((key_t)k, 0) < 0 && errno == ENOENT)
			key = k;
	CU_ASSERT_FATAL(key != 0);
	int before = private_queue_count();
	snprintf(url, sizeof url, "sysv://0x%lx", key);
	errno = 0;
	CU_ASSERT_PTR_NULL(harness_raw_connect_url(url));
	CU_ASSERT_EQUAL(errno, ECONNREFUSED);
	CU_ASSERT(private_queue_count() <= before);
}

/* The raw client on sysv:// makes its two queues and its proof, and
 * removes the queues when closed. */
static void test_raw_sysv_queues(void)
{
	long key = 0;
	for (long k = 0x5d000000 + (getpid() & 0xffff) * 16; !key && k < 0x5e000000; k += 7)
		if (msgget((key_t)k, 0) < 0 && errno == ENOENT)
			key = k;
	CU_ASSERT_FATAL(key != 0);
	int shq = msgget((key_t)key, IPC_CREAT | IPC_EXCL | 0600); /* a broker's stand-in */
	CU_ASSERT_FATAL(shq >= 0);
	char url[64];
	snprintf(url, sizeof url, "sysv://0x%lx", key);
	struct harness_raw *r = harness_raw_connect_url(url);
	CU_ASSERT_PTR_NOT_NULL(r);
	if (r) {
		Ipcbus__Hello h = IPCBUS__HELLO__INIT;
		Ipcbus__Sysv sv;
		harness_raw_hello_fill(r, &h, &sv);
		CU_ASSERT_PTR_NOT_NULL_FATAL(h.sysv);
		struct msqid_ds ds;
		int tx = (int)sv.send_queue, rx = (int)sv.reply_queue;
		CU_ASSERT(tx != rx && tx != shq && rx != shq);
		CU_ASSERT(msgctl(tx, IPC_STAT, &ds) == 0 && (ds.msg_perm.mode & 0777) == 0600);
		CU_ASSERT_EQUAL(ds.msg_qnum, 1); /* the proof */
		struct {
			long mtype;
			char t[8];
		} m;
		CU_ASSERT_EQUAL(msgrcv(tx, &m, sizeof m.t, (long)sv.proof, IPC_NOWAIT), 0);
		CU_ASSERT(msgctl(rx, IPC_STAT, &ds) == 0 && (ds.msg_perm.mode & 0777) == 0600);
		/* the first send is the HELLO, on the broker's queue */
		CU_ASSERT_EQUAL(harness_raw_send(r, "hello", 5), 0);
		CU_ASSERT_EQUAL(msgrcv(shq, &m, sizeof m.t, 0, IPC_NOWAIT), 5);
		CU_ASSERT_EQUAL(m.mtype, 1);
		/* the rest goes to the send queue; the end of the reply stream
		 * reads as EOF */
		CU_ASSERT_EQUAL(harness_raw_send(r, "more", 4), 0);
		CU_ASSERT_EQUAL(msgrcv(tx, &m, sizeof m.t, 0, IPC_NOWAIT), 4);
		m.mtype = 2;
		CU_ASSERT_EQUAL(msgsnd(rx, &m, 0, IPC_NOWAIT), 0);
		CU_ASSERT_EQUAL(harness_raw_read(r, 1000), -1);
		harness_raw_close(r);
		CU_ASSERT(msgctl(tx, IPC_STAT, &ds) < 0 && errno == EINVAL);
		CU_ASSERT(msgctl(rx, IPC_STAT, &ds) < 0 && errno == EINVAL);
	}
	msgctl(shq, IPC_RMID, NULL);
}

static void test_free_port(void)
{
	int families[2] = {AF_INET, AF_INET6};
	for (int i = 0; i < 2; i++) {
		if (families[i] == AF_INET6 && !harness_have_ipv6())
			continue;
		int port;
		int fd = listen_loopback(families[i], &port); /* bound to what it gave */
		CU_ASSERT(port > 0 && port < 65536);
		CU_ASSERT(fd >= 0);
		if (fd >= 0)
			close(fd);
	}
}

/* Run openssl with args; its stdout, or NULL (with its output on stderr
 * unless expect_fail) when it did not exit 0. */
static char *openssl_run(const char *const *args, int expect_fail)
{
	char path[256];
	char *argv[16];
	int n = 0;

	if (harness_which("openssl", path, sizeof path) < 0)
		return NULL;
	argv[n++] = path;
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	struct harness_proc *p = harness_proc_start(argv, NULL, 0);
	if (!p)
		return NULL;
	char *out = NULL;
	if (harness_proc_wait(p, T) == 0)
		out = strdup(p->out);
	else if (!expect_fail)
		fprintf(stderr, "  openssl %s: %s%s\n", argv[1], p->out, p->err);
	harness_proc_free(p);
	return out;
}

static void test_tls_make(void)
{
	char path[256];
	if (harness_which("openssl", path, sizeof path) < 0) {
		fprintf(stderr, "  (no openssl command: harness_tls_make must say so)\n");
		struct harness_tls t;
		CU_ASSERT_EQUAL(harness_tls_make("/nonexistent", &t), -ENOENT);
		return;
	}
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	struct harness_tls t;
	uint64_t t0 = harness_now();
	CU_ASSERT_EQUAL_FATAL(harness_tls_make(dir, &t), 0);
	fprintf(stderr, "  (made in %llu ms)\n", (unsigned long long)(harness_now() - t0));
	const char *keys[] = {t.ca_key, t.key, t.client_key};
	for (int i = 0; i < 3; i++) {
		struct stat st;
		CU_ASSERT(stat(keys[i], &st) == 0 && (st.st_mode & 0777) == 0600);
	}
	const char *const vs[] = {"verify", "-purpose", "sslserver", "-CAfile", t.ca, t.cert, NULL};
	char *out = openssl_run(vs, 0);
	CU_ASSERT(out && strstr(out, ": OK"));
	free(out);
	const char *const vc[] = {"verify", "-purpose", "sslclient", "-CAfile", t.ca, t.client_cert,
				  NULL};
	out = openssl_run(vc, 0);
	CU_ASSERT(out && strstr(out, ": OK"));
	free(out);
	/* the client certificate is no server's */
	const char *const vx[] = {"verify", "-purpose", "sslserver", "-CAfile", t.ca,
				  t.client_cert, NULL};
	out = openssl_run(vx, 1);
	CU_ASSERT_PTR_NULL(out);
	free(out);
	const char *const names[] = {"x509", "-in", t.cert, "-noout", "-checkhost", "localhost",
				     "-checkip", "127.0.0.1", NULL};
	out = openssl_run(names, 0);
	CU_ASSERT(out && strstr(out, "Hostname localhost does match") &&
		  strstr(out, "IP 127.0.0.1 does match"));
	free(out);
	const char *const v6[] = {"x509", "-in", t.cert, "-noout", "-checkip", "::1", NULL};
	out = openssl_run(v6, 0);
	CU_ASSERT(out && strstr(out, "does match") && !strstr(out, "NOT"));
	free(out);
	/* the key matches the certificate */
	const char *const pk[] = {"pkey", "-in", t.key, "-pubout", NULL};
	const char *const pc[] = {"x509", "-in", t.cert, "-noout", "-pubkey", NULL};
	char *k1 = openssl_run(pk, 0), *k2 = openssl_run(pc, 0);
	CU_ASSERT(k1 && k2 && strcmp(k1, k2) == 0);
	free(k1);
	free(k2);
}

static const struct harness_case cases[] = {
	{"raw_tcp4", test_raw_tcp4},
	{"raw_tcp6", test_raw_tcp6},
	{"raw_unix", test_raw_unix},
	{"raw_refusals", test_raw_refusals},
	{"raw_sysv_queues", test_raw_sysv_queues},
	{"free_port", test_free_port},
	{"tls_make", test_tls_make},
};

int main(int argc, char **argv)
{
	return harness_main("harness_net", cases, HARNESS_NELEM(cases), 0, 60, argc, argv);
}
