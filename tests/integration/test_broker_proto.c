/*
 * test_broker_proto.c: the daemon around the broker: the socket's folder
 * and modes, the pidfile, TERM and INT, HUP and the log file, stale and
 * live sockets, what a drain means for the socket file, -t and -d.
 *
 * What the broker answers to what a client sends does not depend on the
 * transport: those cases are tests/transport/conform_proto.c's, run on
 * every transport of the conformance suite.  What is left here is about
 * the process and its Unix socket's file, so it runs once, on the
 * harness's default Unix socket (a raw client checks the broker serves).
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "ipcbus.h"

#define T 5000 /* ms: a generous bound for anything the broker should do at once */

static void count_frame(void *arg, struct harness_raw *r)
{
	(void)r;
	++*(int *)arg;
}

/* A round trip that must read nothing but the PONG. */
static int quiet(struct harness_raw *r)
{
	int n = 0;
	return harness_raw_barrier(r, T, count_frame, &n) == 1 && n == 0;
}

static struct harness_raw *open_raw(const struct harness_broker *b, const char *name)
{
	struct harness_raw *r = harness_raw_open(b, name);
	CU_ASSERT_PTR_NOT_NULL(r);
	return r;
}

#define UP(b, lines)                                   \
	struct harness_broker *b = harness_broker_up(lines); \
	if (!b)                                        \
	return

#define OPEN(r, b, name)                        \
	struct harness_raw *r = open_raw(b, name); \
	if (!r)                                 \
	return

/* ---- the daemon ---- */

/* TERM with output queued that nobody reads (conform_proto.c's drain
 * checks the draining itself, on every transport): while the broker
 * drains, its socket file is gone and nothing connects; the file stays
 * gone once drain-timeout ends it. */
static void test_drain_socket(void)
{
	UP(b, "drain-timeout 300\n");
	/* a client that publishes to itself and never reads: once the 4 MiB
	 * are sent, the broker has read nearly all of them, and what it
	 * queued for the client is far more than the socket holds */
	OPEN(loop, b, "own-subscriber");
	CU_ASSERT_EQUAL(harness_raw_sub(loop, 1, 1, "ds", NULL), 0);
	static uint8_t payload[16 << 10];
	for (int i = 0; i < 256; i++)
		CU_ASSERT_EQUAL_FATAL(harness_raw_pub(loop, 0, "ds", NULL, payload, sizeof payload), 0);
	uint64_t t0 = harness_now();
	CU_ASSERT_EQUAL(kill(b->pid, SIGTERM), 0);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "stopping", T), 0);
	struct stat st;
	CU_ASSERT(lstat(b->sock, &st) < 0 && errno == ENOENT);
	CU_ASSERT(harness_can_connect(b->sock) < 0);
	CU_ASSERT_EQUAL(kill(b->pid, 0), 0); /* still draining meanwhile */
	int status = harness_wait_pid(b->pid, 10000);
	uint64_t dt = harness_now() - t0;
	CU_ASSERT_EQUAL(status, 0);
	CU_ASSERT(dt >= 250);
	b->pid = status < 0 ? b->pid : 0;
	CU_ASSERT(harness_broker_log_has(b, "drain-timeout"));
	CU_ASSERT_EQUAL(access(b->sock, F_OK), -1);
}

static void test_pidfile_and_term(void)
{
	UP(b, "pidfile @DIR@/ipcbusd.pid\n");
	char *s = harness_read_file(b->pidfile, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s); /* written before "ready" */
	CU_ASSERT_EQUAL(atoi(s), (int)b->pid);
	free(s);
	OPEN(r, b, "client");
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(access(b->pidfile, F_OK), -1);
	struct stat st;
	CU_ASSERT(lstat(b->sock, &st) < 0 && errno == ENOENT); /* TERM removes the socket */
	CU_ASSERT(harness_raw_wait_closed(r, T));
	CU_ASSERT(harness_broker_log_has(b, "ready"));

	/* -p overrides the file's pidfile */
	char other[128];
	snprintf(other, sizeof other, "%s/other.pid", b->dir);
	const char *const extra[] = {"-p", other, NULL};
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, extra), 0);
	CU_ASSERT_EQUAL(access(other, F_OK), 0);
	CU_ASSERT_EQUAL(access(b->pidfile, F_OK), -1);
	/* INT stops it too */
	kill(b->pid, SIGINT);
	CU_ASSERT_EQUAL(harness_wait_pid(b->pid, 10000), 0);
	b->pid = 0;
	CU_ASSERT_EQUAL(access(other, F_OK), -1);
	CU_ASSERT_EQUAL(access(b->sock, F_OK), -1);
}

/* HUP reopens the log file: logrotate moves it, HUP, a new one appears. */
static void test_hup_reopens_log(void)
{
	struct harness_broker *b = harness_broker_new("log @DIR@/own.log\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char path[160], moved[170];
	snprintf(path, sizeof path, "%s/own.log", b->dir);
	snprintf(moved, sizeof moved, "%s/own.log.1", b->dir);
	b->pid = harness_broker_exec(b, NULL); /* logs to its file, not stderr */
	CU_ASSERT_FATAL(b->pid > 0);
	uint64_t deadline = harness_now() + T;
	while (harness_can_connect(b->sock) < 0 && harness_now() < deadline)
		harness_sleep(10);
	CU_ASSERT_EQUAL_FATAL(harness_can_connect(b->sock), 0);
	CU_ASSERT_EQUAL_FATAL(rename(path, moved), 0);
	CU_ASSERT_EQUAL(kill(b->pid, SIGHUP), 0);
	char *text = NULL;
	deadline = harness_now() + T;
	while (harness_now() < deadline) {
		free(text);
		text = harness_read_file(path, NULL);
		if (text && strstr(text, "log reopened"))
			break;
		harness_sleep(20);
	}
	CU_ASSERT(text && strstr(text, "log reopened"));
	free(text);
	text = harness_read_file(moved, NULL);
	CU_ASSERT(text && strstr(text, "ready") && !strstr(text, "log reopened"));
	free(text);
	/* still serving */
	OPEN(r, b, "after-hup");
	CU_ASSERT(quiet(r));
}

static void test_socket_modes(void)
{
	struct harness_broker *b = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char url[200];
	snprintf(url, sizeof url, "unix://%s/run/bus.sock", b->dir);
	harness_broker_set_url(b, url);
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	struct stat st;
	char dir[128];
	snprintf(dir, sizeof dir, "%s/run", b->dir);
	CU_ASSERT_EQUAL_FATAL(stat(dir, &st), 0);
	CU_ASSERT(S_ISDIR(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0700); /* the folder it created */
	CU_ASSERT_EQUAL_FATAL(lstat(b->sock, &st), 0);
	CU_ASSERT(S_ISSOCK(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	OPEN(r, b, "mode");
	CU_ASSERT(quiet(r));
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT(lstat(b->sock, &st) < 0 && errno == ENOENT);

	/* ?mode=0660 */
	struct harness_broker *b2 = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b2);
	snprintf(url, sizeof url, "unix://%s/g.sock?mode=0660", b2->dir);
	harness_broker_set_url(b2, url);
	CU_ASSERT_STRING_EQUAL(b2->sock + strlen(b2->dir), "/g.sock");
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b2, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(lstat(b2->sock, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0660);
	CU_ASSERT_EQUAL(harness_broker_stop(b2), 0);
	CU_ASSERT_EQUAL(access(b2->sock, F_OK), -1);

	/* two listeners on one broker (-l adds to the file's) */
	struct harness_broker *b3 = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b3);
	char second[200];
	snprintf(second, sizeof second, "unix://%s/second.sock", b3->dir);
	const char *const extra[] = {"-l", second, NULL};
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b3, extra), 0);
	CU_ASSERT_EQUAL(harness_can_connect(second + 7), 0);
	CU_ASSERT_EQUAL(harness_broker_stop(b3), 0);
	CU_ASSERT_EQUAL(access(second + 7, F_OK), -1);
	CU_ASSERT_EQUAL(access(b3->sock, F_OK), -1);
}

static void test_stale_and_live_socket(void)
{
	UP(b, "");
	harness_broker_kill(b);
	struct stat st;
	CU_ASSERT_EQUAL_FATAL(lstat(b->sock, &st), 0); /* a crash leaves the file */
	CU_ASSERT(harness_can_connect(b->sock) < 0);
	/* a new broker replaces the stale file */
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	OPEN(r, b, "after-stale");
	CU_ASSERT(quiet(r));

	/* but not a live broker's socket */
	struct harness_broker *b2 = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b2);
	harness_broker_set_url(b2, b->url);
	CU_ASSERT_EQUAL(harness_broker_start(b2, NULL), -1);
	CU_ASSERT(b2->status != 0 && b2->status < 128);
	CU_ASSERT(harness_broker_log_has(b2, b->sock));
	/* the first broker was not harmed: its socket is still there and works */
	CU_ASSERT_EQUAL(harness_can_connect(b->sock), 0);
	CU_ASSERT(quiet(r));
	OPEN(r2, b, "still-there");
	CU_ASSERT(quiet(r2));

	/* a regular file in the way is not removed */
	struct harness_broker *b3 = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b3);
	CU_ASSERT_EQUAL(harness_write_file(b3->sock, "precious\n"), 0);
	CU_ASSERT_EQUAL(harness_broker_start(b3, NULL), -1);
	char *s = harness_read_file(b3->sock, NULL);
	CU_ASSERT(s && strcmp(s, "precious\n") == 0);
	free(s);
}

static void test_check_config(void)
{
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char good[128], bad[128], sock[128];
	snprintf(good, sizeof good, "%s/good.conf", dir);
	snprintf(bad, sizeof bad, "%s/bad.conf", dir);
	snprintf(sock, sizeof sock, "%s/never.sock", dir);
	char text[512];
	snprintf(text, sizeof text,
		 "# a good file\nlisten unix://%s\nmax-payload 2M   # comment\n"
		 "pidfile \"%s/with space.pid\"\nslow-consumer disconnect\n",
		 sock, dir);
	CU_ASSERT_EQUAL_FATAL(harness_write_file(good, text), 0);
	CU_ASSERT_EQUAL_FATAL(harness_write_file(bad,
						 "# line 1\n"
						 "max-payload 12x\n"
						 "nosuch thing\n"
						 "slow-consumer drop\n"
						 "slow-consumer drop\n"
						 "max-pending 1k\n"
						 "listen unix:///tmp/x.sock?group=no-such-group-here\n"
						 "log /no/such/folder/ipcbusd.log\n"),
			      0);
	char *argv[] = {(char *)harness_ipcbusd(), (char *)"-t", (char *)"-c", good, NULL};
	struct harness_proc *p = harness_proc_start(argv, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(harness_proc_wait(p, T), 0);
	CU_ASSERT_EQUAL(access(sock, F_OK), -1); /* -t listens on nothing */

	argv[3] = bad;
	p = harness_proc_start(argv, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(harness_proc_wait(p, T), 1);
	char want[200];
	static const int lines[] = {2, 3, 5, 6, 7, 8};
	for (size_t i = 0; i < HARNESS_NELEM(lines); i++) {
		snprintf(want, sizeof want, "%s:%d: ", bad, lines[i]);
		if (!strstr(p->err, want)) {
			fprintf(stderr, "  no '%s' in:\n%s\n", want, p->err);
			CU_FAIL("an error not reported as FILE:LINE: reason");
		}
	}
	snprintf(want, sizeof want, "%s:4: ", bad);
	CU_ASSERT_PTR_NULL(strstr(p->err, want)); /* the first slow-consumer was fine */
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "nosuch"));
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "no group named no-such-group-here"));
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "folder does not exist"));

	/* a failure before ready is on stderr whatever the configured log */
	char slog[128], where[160];
	snprintf(slog, sizeof slog, "%s/syslog.conf", dir);
	CU_ASSERT_EQUAL_FATAL(harness_write_file(slog, "log syslog\n"), 0);
	snprintf(where, sizeof where, "unix://%s/not-a-folder/s.sock", good); /* under a file */
	char *argv2[] = {(char *)harness_ipcbusd(), (char *)"-c", slog, (char *)"-l", where, NULL};
	p = harness_proc_start(argv2, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(harness_proc_wait(p, T), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "cannot listen on"));

	/* a missing file */
	snprintf(want, sizeof want, "%s/missing.conf", dir);
	argv[3] = want;
	p = harness_proc_start(argv, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(harness_proc_wait(p, T), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(p->err, "missing.conf"));

	/* bad usage */
	char *usage[] = {(char *)harness_ipcbusd(), (char *)"--no-such-option", NULL};
	p = harness_proc_start(usage, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(harness_proc_wait(p, T), 2);
	char *help[] = {(char *)harness_ipcbusd(), (char *)"-h", NULL};
	p = harness_proc_start(help, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(harness_proc_wait(p, T), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(p->out, "usage"));
}

static void test_daemonize(void)
{
	struct harness_broker *b = harness_broker_new("pidfile @DIR@/ipcbusd.pid\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	const char *const extra[] = {"-d", NULL};
	pid_t parent = harness_broker_exec(b, extra);
	CU_ASSERT_FATAL(parent > 0);
	CU_ASSERT_EQUAL_FATAL(harness_wait_pid(parent, 10000), 0);
	/* listening the moment the parent returned */
	CU_ASSERT_EQUAL(harness_can_connect(b->sock), 0);
	char *s = harness_read_file(b->pidfile, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	pid_t daemon = (pid_t)atoi(s);
	free(s);
	CU_ASSERT_FATAL(daemon > 0 && daemon != parent);
	harness_adopt(daemon); /* reparented to us: we are a subreaper */
	b->pid = daemon;
	/* without a log directive it logs to syslog: it keeps no stderr of
	 * the caller (a pipe would never see EOF) */
	char fd2[64], target[256] = "";
	snprintf(fd2, sizeof fd2, "/proc/%d/fd/2", (int)daemon);
	ssize_t tn = readlink(fd2, target, sizeof target - 1);
	if (tn > 0)
		target[tn] = 0;
	CU_ASSERT_STRING_EQUAL(target, "/dev/null");
	OPEN(r, b, "to-daemon");
	CU_ASSERT(quiet(r));

	/* a second daemon on the same socket fails, and says so by its exit */
	struct harness_broker *b2 = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b2);
	harness_broker_set_url(b2, b->url);
	pid_t p2 = harness_broker_exec(b2, extra);
	CU_ASSERT_FATAL(p2 > 0);
	int st = harness_wait_pid(p2, 10000);
	CU_ASSERT(st > 0 && st < 128);
	CU_ASSERT(quiet(r));

	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(access(b->sock, F_OK), -1);
	CU_ASSERT_EQUAL(access(b->pidfile, F_OK), -1);
}

static const struct harness_case cases[] = {
	{"drain_socket", test_drain_socket},
	{"pidfile_and_term", test_pidfile_and_term},
	{"hup_reopens_log", test_hup_reopens_log},
	{"socket_modes", test_socket_modes},
	{"stale_and_live_socket", test_stale_and_live_socket},
	{"check_config", test_check_config},
	{"daemonize", test_daemonize},
};

int main(int argc, char **argv)
{
	return harness_main("broker_proto", cases, HARNESS_NELEM(cases), 0, 120, argc, argv);
}
