/*
 * test_exec.c: the exec bridge of `ipcbus reply -- COMMAND`.
 *
 * Suite "pool" drives client/cli/exec.c alone, with a callback in place of
 * the broker: literal arguments and payloads (no shell), exit status,
 * signals, timeouts with the TERM-then-KILL grace, busy, spawn failure,
 * payloads larger than a pipe, output over the bound, a clean child (mask,
 * dispositions, descriptors, process group, RLIMIT_NOFILE) and no zombies.
 *
 * Suite "cli" runs $IPCBUS_CLI's argument checks; suite "e2e" starts
 * $IPCBUSD in a temporary folder and `ipcbus reply` against it, and asks
 * through libipcbus.  Each is left out (with a note) when its binary is
 * not there.  Exit 0 pass, 1 fail, 99 hard error.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <CUnit/Basic.h>

#include "ipcbus.h"
#include "exec.h"

/* ---- helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Processes whose parent is ppid (only those in state Z with zombies). */
static int count_children(pid_t ppid, int zombies)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], buf[512];
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = 0;
		char *p = strrchr(buf, ')');
		char state;
		int pp;
		if (!p || sscanf(p + 1, " %c %d", &state, &pp) != 2)
			continue;
		if (pp == ppid && (!zombies || state == 'Z'))
			n++;
	}
	closedir(d);
	return n;
}

/* Processes whose command line contains the argument arg, leaving out
 * ipcbus itself (the responder's own command line holds COMMAND too). */
static int count_with_arg(const char *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], buf[4096];
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		if (len == 0 || !memchr(buf, 0, len) || strstr(buf, "ipcbus"))
			continue;
		for (size_t i = 0; i < len; i += strlen(buf + i) + 1) {
			if (memchr(buf + i, 0, len - i) == NULL)
				break;
			if (strcmp(buf + i, arg) == 0) {
				n++;
				break;
			}
		}
	}
	closedir(d);
	return n;
}

static unsigned char *make_payload(size_t len)
{
	unsigned char *p = malloc(len);

	for (size_t i = 0; p && i < len; i++)
		p[i] = (unsigned char)(i * 131 + (i >> 12));
	return p;
}

/* ---- suite "pool": exec.c alone ---- */

struct result {
	int done, released;
	char error[32], exit_status[16], signal[16];
	int nheaders;
	unsigned char *out;
	size_t len;
	int64_t at;
};

static struct result res[80];
static int ndone;

static void copy_value(char *dst, size_t n, const ipcbus_header *h)
{
	size_t l = h->value_len < n - 1 ? h->value_len : n - 1;

	memcpy(dst, h->value, l);
	dst[l] = 0;
}

static void t_done(void *arg, void *req, const ipcbus_header *h, size_t nh,
		   const void *out, size_t len)
{
	struct result *r = req;

	r->done++;
	r->nheaders = (int)nh;
	r->at = now_ms();
	for (size_t i = 0; i < nh; i++) {
		if (h[i].key_len == 12 && !memcmp(h[i].key, "ipcbus-error", 12))
			copy_value(r->error, sizeof(r->error), &h[i]);
		else if (h[i].key_len == 18 && !memcmp(h[i].key, "ipcbus-exit-status", 18))
			copy_value(r->exit_status, sizeof(r->exit_status), &h[i]);
		else if (h[i].key_len == 13 && !memcmp(h[i].key, "ipcbus-signal", 13))
			copy_value(r->signal, sizeof(r->signal), &h[i]);
	}
	free(r->out);
	r->out = malloc(len + 1);
	if (r->out) {
		memcpy(r->out, out, len);
		r->out[len] = 0;
	}
	r->len = len;
	ndone++;
}

static void t_release(void *arg, void *req)
{
	struct result *r = req;

	r->released++;
}

static int pool_setup(void)
{
	for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++)
		free(res[i].out);
	memset(res, 0, sizeof(res));
	ndone = 0;
	return 0;
}

static struct exec_pool *pool_new(char **argv, int jobs, int queue, int timeout_ms,
				  size_t max_output)
{
	struct exec_opts o = {
		.argv = argv,
		.jobs = jobs,
		.queue = queue,
		.timeout_ms = timeout_ms,
		.max_output = max_output,
		.done = t_done,
		.release = t_release,
	};
	struct exec_pool *p = NULL;

	pool_setup();
	CU_ASSERT_EQUAL_FATAL(exec_pool_new(&p, &o), 0);
	return p;
}

/* Drive the pool until want answers arrived or ms ran out. */
static void pool_wait(struct exec_pool *p, int want, int ms)
{
	int64_t end = now_ms() + ms;

	while (ndone < want && now_ms() < end) {
		struct pollfd pfd = { .fd = exec_pool_fd(p), .events = POLLIN };
		int t = exec_pool_timeout(p);
		int left = (int)(end - now_ms());
		if (t < 0 || t > left)
			t = left < 0 ? 0 : left;
		poll(&pfd, 1, t);
		CU_ASSERT(exec_pool_run(p) >= 0);
	}
}

/* Free the pool, then no child of ours may be left. */
static void pool_done(struct exec_pool *p)
{
	exec_pool_free(p);
	CU_ASSERT_EQUAL(count_children(getpid(), 0), 0);
}

static int run_one(char **argv, const void *data, size_t len, int timeout_ms, size_t max)
{
	struct exec_pool *p = pool_new(argv, 0, 0, timeout_ms, max);

	CU_ASSERT_EQUAL(exec_pool_submit(p, data, len, &res[0]), 0);
	pool_wait(p, 1, 10000);
	CU_ASSERT_EQUAL(res[0].done, 1);
	/* answered means reaped */
	CU_ASSERT_EQUAL(count_children(getpid(), 1), 0);
	pool_done(p);
	return res[0].done;
}

static void test_literal_args(void)
{
	char *argv[] = { "/bin/echo", "$(id)", ";", "|", "`id`", "&&", "*", "$HOME", ">x", NULL };

	if (run_one(argv, "", 0, 5000, 0)) {
		CU_ASSERT_STRING_EQUAL((char *)res[0].out, "$(id) ; | `id` && * $HOME >x\n");
		CU_ASSERT_EQUAL(res[0].nheaders, 0);
	}
}

static void test_literal_payload(void)
{
	char *argv[] = { "cat", NULL };
	const char *pl = "; rm -rf x $(whoami) `id` | && \n*";

	if (run_one(argv, pl, strlen(pl), 5000, 0)) {
		CU_ASSERT_EQUAL(res[0].len, strlen(pl));
		CU_ASSERT_STRING_EQUAL((char *)res[0].out, pl);
		CU_ASSERT_EQUAL(res[0].nheaders, 0);
	}
}

static void test_exit_status(void)
{
	char *argv[] = { "/bin/sh", "-c", "echo out; exit 3", NULL };

	if (run_one(argv, "x", 1, 5000, 0)) {
		CU_ASSERT_STRING_EQUAL(res[0].exit_status, "3");
		CU_ASSERT_STRING_EQUAL(res[0].error, "");
		CU_ASSERT_STRING_EQUAL((char *)res[0].out, "out\n");
	}
}

static void test_signal(void)
{
	char *argv[] = { "/bin/sh", "-c", "printf partial; kill -KILL $$", NULL };

	if (run_one(argv, "", 0, 5000, 0)) {
		CU_ASSERT_STRING_EQUAL(res[0].signal, "9");
		CU_ASSERT_STRING_EQUAL(res[0].exit_status, "");
		CU_ASSERT_STRING_EQUAL(res[0].error, "");
		CU_ASSERT_STRING_EQUAL((char *)res[0].out, "partial");
	}
}

static void test_timeout(void)
{
	char *argv[] = { "/bin/sleep", "100", NULL };
	int64_t t0 = now_ms();

	if (run_one(argv, "", 0, 300, 0)) {
		CU_ASSERT_STRING_EQUAL(res[0].error, "timeout");
		CU_ASSERT_STRING_EQUAL(res[0].signal, "15");
		CU_ASSERT(res[0].at - t0 >= 290);
		CU_ASSERT(res[0].at - t0 < 3000);
	}
}

/* A child (and grandchild) that ignore SIGTERM get SIGKILL after the grace;
 * the grandchild holds stdout, so only the group kill ends the request. */
static void test_timeout_kill(void)
{
	char *argv[] = { "/bin/sh", "-c", "trap '' TERM; sleep 100; echo never", NULL };
	int64_t t0 = now_ms();

	if (run_one(argv, "", 0, 200, 0)) {
		CU_ASSERT_STRING_EQUAL(res[0].error, "timeout");
		CU_ASSERT_STRING_EQUAL(res[0].signal, "9");
		CU_ASSERT(res[0].at - t0 >= 650);
		CU_ASSERT(res[0].at - t0 < 3000);
		CU_ASSERT_EQUAL(res[0].len, 0);
	}
}

static void test_spawn_failure(void)
{
	char *argv[] = { "/nonexistent/ipcbus-test-command", NULL };
	struct exec_pool *p = pool_new(argv, 1, 0, 1000, 0);

	CU_ASSERT_EQUAL(exec_pool_submit(p, "x", 1, &res[0]), 0);
	/* answered at once, from submit */
	CU_ASSERT_EQUAL(res[0].done, 1);
	CU_ASSERT_STRING_EQUAL(res[0].error, "spawn");
	CU_ASSERT_STRING_EQUAL(res[0].exit_status, "");
	CU_ASSERT_EQUAL(res[0].len, 0);
	CU_ASSERT_EQUAL(exec_pool_running(p), 0);
	pool_done(p);
}

/* The child exits without reading a payload far larger than the pipe:
 * EPIPE, no SIGPIPE, a normal answer. */
static void test_unread_stdin(void)
{
	size_t len = 1024 * 1024;
	unsigned char *pl = make_payload(len);
	char *argv[] = { "/bin/true", NULL };

	CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
	if (run_one(argv, pl, len, 5000, 0)) {
		CU_ASSERT_EQUAL(res[0].nheaders, 0);
		CU_ASSERT_EQUAL(res[0].len, 0);
	}
	free(pl);
}

/* cat writes while its stdin is still being fed: both pipes must move. */
static void test_big_roundtrip(void)
{
	size_t len = 1024 * 1024;
	unsigned char *pl = make_payload(len);
	char *argv[] = { "/bin/cat", NULL };

	CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
	if (run_one(argv, pl, len, 10000, len)) {
		CU_ASSERT_EQUAL(res[0].nheaders, 0);
		CU_ASSERT_EQUAL(res[0].len, len);
		CU_ASSERT(res[0].out && memcmp(res[0].out, pl, len) == 0);
	}
	free(pl);
}

static void test_overflow(void)
{
	char *argv[] = { "yes", NULL };

	if (run_one(argv, "", 0, 5000, 1000)) {
		CU_ASSERT_STRING_EQUAL(res[0].error, "overflow");
		CU_ASSERT_EQUAL(res[0].len, 1000);
	}
	/* exactly the bound is fine */
	unsigned char *pl = make_payload(1000);
	char *cat[] = { "cat", NULL };
	if (run_one(cat, pl, 1000, 5000, 1000)) {
		CU_ASSERT_EQUAL(res[0].nheaders, 0);
		CU_ASSERT_EQUAL(res[0].len, 1000);
	}
	if (run_one(cat, pl, 1000, 5000, 999))
		CU_ASSERT_STRING_EQUAL(res[0].error, "overflow");
	free(pl);
}

static void test_busy(void)
{
	char *argv[] = { "/bin/sleep", "0.3", NULL };
	struct exec_pool *p = pool_new(argv, 1, 2, 5000, 0);

	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(exec_pool_submit(p, "", 0, &res[i]), 0);
	CU_ASSERT_EQUAL(exec_pool_running(p), 1);
	CU_ASSERT_EQUAL(exec_pool_queued(p), 2);
	/* the 4th and 5th: busy at once */
	CU_ASSERT_EQUAL(res[3].done, 1);
	CU_ASSERT_STRING_EQUAL(res[3].error, "busy");
	CU_ASSERT_STRING_EQUAL(res[4].error, "busy");
	CU_ASSERT_EQUAL(res[0].done, 0);
	pool_wait(p, 5, 5000);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(res[i].done, 1);
		CU_ASSERT_EQUAL(res[i].nheaders, 0);
	}
	/* one at a time */
	CU_ASSERT(res[2].at - res[0].at >= 500);
	pool_done(p);
}

static void test_many(void)
{
	char *argv[] = { "/bin/cat", NULL };
	char pl[40][16];
	struct exec_pool *p = pool_new(argv, 3, 0, 5000, 0);

	for (int i = 0; i < 40; i++) {
		snprintf(pl[i], sizeof(pl[i]), "req %d", i);
		CU_ASSERT_EQUAL(exec_pool_submit(p, pl[i], strlen(pl[i]), &res[i]), 0);
	}
	pool_wait(p, 40, 10000);
	CU_ASSERT_EQUAL(ndone, 40);
	for (int i = 0; i < 40; i++)
		CU_ASSERT(res[i].out && strcmp((char *)res[i].out, pl[i]) == 0);
	CU_ASSERT_EQUAL(count_children(getpid(), 1), 0);
	pool_done(p);
}

/* Mask, ignored signals, descriptors, process group, RLIMIT_NOFILE. */
static void test_clean_child(void)
{
	char *mask[] = { "/bin/grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status", NULL };
	char *fds[] = { "/bin/ls", "-1", "/proc/self/fd", NULL };
	char *pgrp[] = { "/bin/sh", "-c",
			 "read pid comm state ppid pgrp rest < /proc/self/stat; "
			 "test $pid = $pgrp && echo own", NULL };
	char *lim[] = { "/bin/sh", "-c", "ulimit -n", NULL };

	if (run_one(mask, "", 0, 5000, 0))
		CU_ASSERT_STRING_EQUAL((char *)res[0].out,
				       "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");

	int fd = open("/dev/null", O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(dup2(fd, 50), 50);
	if (run_one(fds, "", 0, 5000, 0)) {
		/* 0-2, and 3 is ls's own directory */
		CU_ASSERT_STRING_EQUAL((char *)res[0].out, "0\n1\n2\n3\n");
	}
	close(50);
	close(fd);

	if (run_one(pgrp, "", 0, 5000, 0))
		CU_ASSERT_STRING_EQUAL((char *)res[0].out, "own\n");

	/* the pool keeps the limit it found; lower it behind its back */
	struct rlimit orig, low;
	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &orig), 0);
	struct exec_pool *p = pool_new(lim, 0, 0, 5000, 0);
	low = orig;
	low.rlim_cur = 200;
	CU_ASSERT_EQUAL(setrlimit(RLIMIT_NOFILE, &low), 0);
	CU_ASSERT_EQUAL(exec_pool_submit(p, "", 0, &res[0]), 0);
	pool_wait(p, 1, 5000);
	CU_ASSERT_EQUAL(setrlimit(RLIMIT_NOFILE, &orig), 0);
	char want[32];
	if (orig.rlim_cur == RLIM_INFINITY)
		snprintf(want, sizeof(want), "unlimited\n");
	else
		snprintf(want, sizeof(want), "%llu\n", (unsigned long long)orig.rlim_cur);
	CU_ASSERT(res[0].out && strcmp((char *)res[0].out, want) == 0);
	pool_done(p);
}

/* Freeing a pool with running and queued requests kills, reaps and
 * releases them all, and restores the signal state. */
static void test_free_busy_pool(void)
{
	char arg[32];
	snprintf(arg, sizeof(arg), "97.%d", (int)getpid());
	char *argv[] = { "/bin/sh", "-c", "trap '' TERM; exec sleep \"$0\"", arg, NULL };
	struct exec_pool *p = pool_new(argv, 2, 0, 0, 0);
	sigset_t cur;

	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(exec_pool_submit(p, "", 0, &res[i]), 0);
	CU_ASSERT_EQUAL(exec_pool_running(p), 2);
	CU_ASSERT_EQUAL(exec_pool_queued(p), 2);
	sleep_ms(100);
	CU_ASSERT_EQUAL(count_with_arg(arg), 2);
	pool_done(p);
	CU_ASSERT_EQUAL(count_with_arg(arg), 0);
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(res[i].released, 1);
		CU_ASSERT_EQUAL(res[i].done, 0);
	}
	sigprocmask(SIG_BLOCK, NULL, &cur);
	CU_ASSERT(!sigismember(&cur, SIGCHLD));
	struct sigaction sa;
	sigaction(SIGPIPE, NULL, &sa);
	CU_ASSERT(sa.sa_handler == SIG_DFL);
}

static void test_bad_opts(void)
{
	char *argv[] = { "cat", NULL };
	char *empty[] = { NULL };
	struct exec_opts o = { .argv = argv };
	struct exec_pool *p = NULL;

	CU_ASSERT_EQUAL(exec_pool_new(&p, &o), -EINVAL);      /* no callback */
	o.done = t_done;
	o.jobs = -1;
	CU_ASSERT_EQUAL(exec_pool_new(&p, &o), -EINVAL);
	o.jobs = 0;
	o.argv = empty;
	CU_ASSERT_EQUAL(exec_pool_new(&p, &o), -EINVAL);
}

/* ---- helpers for the suites with binaries ---- */

static const char *cli, *broker;
static char tmpdir[64], url[128];
static pid_t broker_pid = -1;
static ipcbus *conn;

static int executable(const char *path)
{
	return path && *path && access(path, X_OK) == 0;
}

/* Start argv with stdout on /dev/null (stdin too); returns the pid. */
static pid_t spawn(char **argv)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(fd, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Wait up to ms for pid; its wait status, or -1 (then it was killed). */
static int wait_for(pid_t pid, int ms)
{
	int64_t end = now_ms() + ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0)
			return -1;
		if (now_ms() >= end)
			break;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static int stop(pid_t pid)
{
	kill(pid, SIGTERM);
	return wait_for(pid, 5000);
}

/* Run the CLI with args; its exit code, or -1. */
static int run_cli(char **args)
{
	char *argv[16] = { (char *)cli };
	int i;

	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	int st = wait_for(spawn(argv), 5000);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- suite "cli": argument checks ---- */

static void test_cli_usage(void)
{
	char *a1[] = { "reply", "-j", "abc", "x", NULL };
	char *a2[] = { "reply", "-j", "0", "x", NULL };
	char *a3[] = { "reply", "--exec-timeout", "-5", "x", NULL };
	char *a4[] = { "reply", "--exec-timeout", "10s", "x", NULL };
	char *a5[] = { "reply", "x", "cat", NULL };
	char *a6[] = { "reply", "x", "--", NULL };
	char *a7[] = { "reply", NULL };

	CU_ASSERT_EQUAL(run_cli(a1), 2);
	CU_ASSERT_EQUAL(run_cli(a2), 2);
	CU_ASSERT_EQUAL(run_cli(a3), 2);
	CU_ASSERT_EQUAL(run_cli(a4), 2);
	CU_ASSERT_EQUAL(run_cli(a5), 2);
	CU_ASSERT_EQUAL(run_cli(a6), 2);
	CU_ASSERT_EQUAL(run_cli(a7), 2);
}

/* ---- suite "e2e": broker, `ipcbus reply` and the library ---- */

static int e2e_init(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ipcbus-exec-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s.sock", tmpdir);
	snprintf(url, sizeof(url), "unix://%s", sa.sun_path);
	char *argv[] = { (char *)broker, "-l", url, NULL };
	broker_pid = spawn(argv);
	if (broker_pid < 0)
		return -1;
	for (int64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(20)) {
		if (waitpid(broker_pid, NULL, WNOHANG) != 0) {
			broker_pid = -1;
			return -1;
		}
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return ipcbus_connect(&conn, url, NULL) == 0 ? 0 : -1;
	}
	return -1;
}

static int e2e_clean(void)
{
	char path[128];

	ipcbus_close(conn);
	conn = NULL;
	if (broker_pid > 0)
		stop(broker_pid);
	broker_pid = -1;
	snprintf(path, sizeof(path), "%s/s.sock", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ipcbusd.pid", tmpdir);
	unlink(path);
	return rmdir(tmpdir) == 0 ? 0 : -1;
}

/* `ipcbus reply -u URL args...`; the pid. */
static pid_t start_reply(char **args)
{
	char *argv[24] = { (char *)cli, "reply", "-u", url };
	int i;

	for (i = 0; args[i] && i < 19; i++)
		argv[i + 4] = args[i];
	argv[i + 4] = NULL;
	return spawn(argv);
}

/* A request once the responder has subscribed (no responders: again). */
static int request(const char *chan, const void *data, size_t len, int timeout_ms,
		   ipcbus_msg **reply)
{
	int rc;

	*reply = NULL;
	for (int64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(30)) {
		rc = ipcbus_request(conn, chan, NULL, 0, data, len, timeout_ms, reply);
		if (rc != IPCBUS_ENORESPONDERS)
			return rc;
	}
	return rc;
}

static int has_header(const ipcbus_msg *m, const char *key, const char *value)
{
	size_t len;
	const char *v = ipcbus_msg_header(m, key, &len);

	if (!value)
		return v == NULL;
	return v && len == strlen(value) && memcmp(v, value, len) == 0;
}

static int payload_is(const ipcbus_msg *m, const char *s)
{
	return m->len == strlen(s) && memcmp(m->data, s, m->len) == 0;
}

/* Stop a responder: INT/TERM end it with 0, nothing left behind. */
static void stop_reply(pid_t pid)
{
	CU_ASSERT_EQUAL(count_children(pid, 1), 0);
	int st = stop(pid);
	CU_ASSERT(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_e2e_echo(void)
{
	char *args[] = { "e.echo", NULL };
	pid_t pid = start_reply(args);
	ipcbus_msg *m;

	CU_ASSERT_EQUAL_FATAL(request("e.echo", "hello", 5, 3000, &m), 0);
	CU_ASSERT(payload_is(m, "hello"));
	CU_ASSERT_EQUAL(m->nheaders, 0);
	ipcbus_msg_free(m);
	stop_reply(pid);
}

static void test_e2e_literal(void)
{
	char *args[] = { "e.echo", "--", "/bin/echo", "$(id)", ";", "|", "`id`", NULL };
	char *args2[] = { "e.cat", "--", "cat", NULL };
	const char *pl = "; rm -rf x $(whoami)";
	pid_t pid = start_reply(args), pid2 = start_reply(args2);
	ipcbus_msg *m;

	if (request("e.echo", "", 0, 3000, &m) == 0) {
		CU_ASSERT(payload_is(m, "$(id) ; | `id`\n"));
		CU_ASSERT_EQUAL(m->nheaders, 0);
		ipcbus_msg_free(m);
	} else {
		CU_FAIL("no reply from echo");
	}
	if (request("e.cat", pl, strlen(pl), 3000, &m) == 0) {
		CU_ASSERT(payload_is(m, pl));
		ipcbus_msg_free(m);
	} else {
		CU_FAIL("no reply from cat");
	}
	stop_reply(pid);
	stop_reply(pid2);
}

static void test_e2e_status(void)
{
	char *args[] = { "-j", "2", "e.st.*", "--", "/bin/sh", "-c",
			 "read x; case $x in exit) echo bye; exit 3;; kill) kill -USR1 $$;; "
			 "hang) exec sleep 100;; *) echo ok;; esac", NULL };
	char *args2[] = { "e.spawn", "--", "/nonexistent/ipcbus-cmd", NULL };
	pid_t pid = start_reply(args), pid2 = start_reply(args2);
	ipcbus_msg *m;
	int64_t t0;

	if (request("e.st.a", "ok\n", 3, 3000, &m) == 0) {
		CU_ASSERT(payload_is(m, "ok\n"));
		CU_ASSERT_EQUAL(m->nheaders, 0);
		ipcbus_msg_free(m);
	} else {
		CU_FAIL("no reply");
	}
	if (request("e.st.a", "exit\n", 5, 3000, &m) == 0) {
		CU_ASSERT(payload_is(m, "bye\n"));
		CU_ASSERT(has_header(m, "ipcbus-exit-status", "3"));
		CU_ASSERT(has_header(m, "ipcbus-error", NULL));
		ipcbus_msg_free(m);
	} else {
		CU_FAIL("no reply");
	}
	if (request("e.st.a", "kill\n", 5, 3000, &m) == 0) {
		CU_ASSERT(has_header(m, "ipcbus-signal", "10"));
		ipcbus_msg_free(m);
	} else {
		CU_FAIL("no reply");
	}
	if (request("e.spawn", "x", 1, 3000, &m) == 0) {
		CU_ASSERT(has_header(m, "ipcbus-error", "spawn"));
		ipcbus_msg_free(m);
	} else {
		CU_FAIL("no reply");
	}
	stop_reply(pid2);
	/* every child so far was reaped */
	CU_ASSERT_EQUAL(count_children(pid, 0), 0);
	stop_reply(pid);

	char *args3[] = { "--exec-timeout", "300", "e.hang", "--", "/bin/sleep", "100", NULL };
	pid = start_reply(args3);
	t0 = now_ms();
	if (request("e.hang", "", 0, 5000, &m) == 0) {
		CU_ASSERT(has_header(m, "ipcbus-error", "timeout"));
		CU_ASSERT(now_ms() - t0 < 4000);
		ipcbus_msg_free(m);
	} else {
		CU_FAIL("no reply");
	}
	stop_reply(pid);
}

static void test_e2e_big(void)
{
	char *args[] = { "e.cat", "--", "/bin/cat", NULL };
	char *args2[] = { "e.true", "--", "/bin/true", NULL };
	pid_t pid = start_reply(args), pid2 = start_reply(args2);
	size_t len = ipcbus_max_payload(conn);
	ipcbus_msg *m;

	if (len == 0 || len > 1024 * 1024)
		len = 1024 * 1024;
	unsigned char *pl = make_payload(len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
	if (request("e.cat", pl, len, 10000, &m) == 0) {
		CU_ASSERT_EQUAL(m->len, len);
		CU_ASSERT(m->len == len && memcmp(m->data, pl, len) == 0);
		CU_ASSERT_EQUAL(m->nheaders, 0);
		ipcbus_msg_free(m);
	} else {
		CU_FAIL("no reply from cat");
	}
	if (request("e.true", pl, len, 10000, &m) == 0) {
		CU_ASSERT_EQUAL(m->len, 0);
		CU_ASSERT_EQUAL(m->nheaders, 0);
		ipcbus_msg_free(m);
	} else {
		CU_FAIL("no reply from true");
	}
	free(pl);
	stop_reply(pid);
	stop_reply(pid2);
}

struct busy_count {
	int answers, busy, other;
};

static void busy_cb(void *arg, int status, const ipcbus_msg *reply)
{
	struct busy_count *b = arg;

	b->answers++;
	if (status == 0 && has_header(reply, "ipcbus-error", "busy"))
		b->busy++;
	else if (status == 0)
		b->other++;
}

/* -j 1 with a child that sleeps: 1 running, 64 queued, the rest busy at
 * once; INT then kills and reaps the running one. */
static void test_e2e_busy(void)
{
	char arg[32];
	snprintf(arg, sizeof(arg), "98.%d", (int)getpid());
	char *args[] = { "-j", "1", "e.busy", "--", "/bin/sleep", arg, NULL };
	pid_t pid = start_reply(args);
	struct busy_count b = { 0 };
	ipcbus *c2 = NULL;
	ipcbus_msg *m;

	/* the first one occupies the only child */
	CU_ASSERT_EQUAL(request("e.busy", "", 0, 200, &m), IPCBUS_ETIMEOUT);
	CU_ASSERT_EQUAL_FATAL(ipcbus_connect(&c2, url, NULL), 0);
	for (int i = 0; i < 70; i++)
		CU_ASSERT_EQUAL(ipcbus_request_async(c2, "e.busy", NULL, 0, "", 0, 20000,
						     busy_cb, &b), 0);
	for (int64_t end = now_ms() + 3000; b.busy < 6 && now_ms() < end;)
		ipcbus_wait(c2, 100);
	CU_ASSERT_EQUAL(b.busy, 6);
	CU_ASSERT_EQUAL(b.other, 0);
	CU_ASSERT_EQUAL(count_with_arg(arg), 1);
	kill(pid, SIGINT);
	int st = wait_for(pid, 5000);
	CU_ASSERT(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CU_ASSERT_EQUAL(count_with_arg(arg), 0);
	ipcbus_close(c2);
	CU_ASSERT_EQUAL(b.answers, 70);
}

int main(void)
{
	CU_pSuite s;
	int rc;

	/* a hung test must not hang `make check` */
	alarm(300);
	cli = getenv("IPCBUS_CLI");
	broker = getenv("IPCBUSD");
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	s = CU_add_suite("pool", NULL, NULL);
	if (!s ||
	    !CU_add_test(s, "bad options", test_bad_opts) ||
	    !CU_add_test(s, "arguments stay literal", test_literal_args) ||
	    !CU_add_test(s, "payload stays literal", test_literal_payload) ||
	    !CU_add_test(s, "exit status", test_exit_status) ||
	    !CU_add_test(s, "signal", test_signal) ||
	    !CU_add_test(s, "timeout", test_timeout) ||
	    !CU_add_test(s, "timeout, TERM ignored", test_timeout_kill) ||
	    !CU_add_test(s, "spawn failure", test_spawn_failure) ||
	    !CU_add_test(s, "stdin never read", test_unread_stdin) ||
	    !CU_add_test(s, "1 MiB through cat", test_big_roundtrip) ||
	    !CU_add_test(s, "output bound", test_overflow) ||
	    !CU_add_test(s, "busy", test_busy) ||
	    !CU_add_test(s, "many requests", test_many) ||
	    !CU_add_test(s, "clean child", test_clean_child) ||
	    !CU_add_test(s, "free with children", test_free_busy_pool))
		goto hard;

	if (executable(cli)) {
		s = CU_add_suite("cli", NULL, NULL);
		if (!s || !CU_add_test(s, "usage errors", test_cli_usage))
			goto hard;
	} else {
		fprintf(stderr, "test_exec: IPCBUS_CLI not set or not built: cli suite skipped\n");
	}
	if (executable(cli) && executable(broker)) {
		s = CU_add_suite("e2e", e2e_init, e2e_clean);
		if (!s ||
		    !CU_add_test(s, "echo without command", test_e2e_echo) ||
		    !CU_add_test(s, "literal args and payload", test_e2e_literal) ||
		    !CU_add_test(s, "status, signal, spawn, timeout", test_e2e_status) ||
		    !CU_add_test(s, "payloads bigger than a pipe", test_e2e_big) ||
		    !CU_add_test(s, "busy", test_e2e_busy))
			goto hard;
	} else {
		fprintf(stderr, "test_exec: IPCBUSD or IPCBUS_CLI not built: e2e suite skipped\n");
	}

	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		goto hard;
	rc = CU_get_number_of_failures() || CU_get_number_of_suites_failed() ? 1 : 0;
	pool_setup();
	CU_cleanup_registry();
	return rc;
hard:
	CU_cleanup_registry();
	return 99;
}
