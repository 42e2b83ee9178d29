/*
 * harness.c: brokers, child processes, temporary folders and a raw protocol
 * client for the integration tests (see harness.h).
 *
 * Everything a case creates goes on one cleanup stack that runs after the
 * case, so a failed assertion in the middle of a case (CUnit returns from
 * the test function) still kills its brokers and children and removes its
 * folders.  The program makes itself a child subreaper, so a broker started
 * with -d (which forks away from its parent) is still our child to reap.
 * A watchdog alarm ends a hung program with exit 99 after killing every
 * child it knows.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "harness.h"
#include "ipcbus.h"

#define HARNESS_READY_MS 10000 /* a broker must be up within this */
#define HARNESS_STOP_MS 10000  /* and gone within this after TERM */
#define HARNESS_SEND_MS 5000
#define HARNESS_MAX_DEFER 512
#define HARNESS_MAX_PIDS 128
#define HARNESS_MAX_DIRS 64

struct harness_deferred {
	void (*fn)(void *);
	void *arg;
};

static struct harness_deferred harness_stack[HARNESS_MAX_DEFER];
static size_t harness_ndefer;

/* What the watchdog must kill and remove, kept in plain arrays so that the
 * signal handler needs no allocation. */
static volatile pid_t harness_pids[HARNESS_MAX_PIDS];
static char harness_dirs[HARNESS_MAX_DIRS][64];

/* ---- the cleanup stack ---- */

int harness_defer(void (*fn)(void *), void *arg)
{
	if (harness_ndefer == HARNESS_MAX_DEFER) {
		fn(arg);
		return -ENOMEM;
	}
	harness_stack[harness_ndefer].fn = fn;
	harness_stack[harness_ndefer].arg = arg;
	harness_ndefer++;
	return 0;
}

void harness_undefer(void *arg)
{
	for (size_t i = harness_ndefer; i-- > 0;) {
		if (harness_stack[i].arg == arg) {
			memmove(&harness_stack[i], &harness_stack[i + 1],
				(harness_ndefer - i - 1) * sizeof harness_stack[0]);
			harness_ndefer--;
			return;
		}
	}
}

void harness_cleanup(void)
{
	while (harness_ndefer > 0) {
		struct harness_deferred d = harness_stack[--harness_ndefer];
		d.fn(d.arg);
	}
	/* children of a daemonized broker were reparented to us */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* ---- time ---- */

uint64_t harness_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void harness_sleep(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int harness_left(uint64_t deadline)
{
	uint64_t now = harness_now();
	return now >= deadline ? 0 : (int)(deadline - now);
}

/* ---- pids the watchdog knows ---- */

static void harness_track(pid_t pid)
{
	for (size_t i = 0; i < HARNESS_MAX_PIDS; i++) {
		if (harness_pids[i] == 0) {
			harness_pids[i] = pid;
			return;
		}
	}
}

static void harness_untrack(pid_t pid)
{
	for (size_t i = 0; i < HARNESS_MAX_PIDS; i++)
		if (harness_pids[i] == pid)
			harness_pids[i] = 0;
}

static int harness_tracked(pid_t pid)
{
	for (size_t i = 0; i < HARNESS_MAX_PIDS; i++)
		if (harness_pids[i] == pid)
			return 1;
	return 0;
}

/* KILL and reap a child of ours that was not reaped yet: a pid already
 * waited for may have been given to another process since. */
static void harness_reap(pid_t pid)
{
	if (pid <= 0 || !harness_tracked(pid))
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	harness_untrack(pid);
}

static int harness_decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

int harness_wait_pid(pid_t pid, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	int st;

	for (int pause = 1;; pause = pause < 20 ? pause * 2 : 20) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			harness_untrack(pid);
			return harness_decode_status(st);
		}
		if (r < 0 && errno != EINTR)
			return -1;
		if (!harness_left(deadline))
			return -1;
		harness_sleep(pause);
	}
}

static void harness_reap_cb(void *arg)
{
	harness_reap((pid_t)(intptr_t)arg);
}

void harness_adopt(pid_t pid)
{
	harness_track(pid);
	harness_defer(harness_reap_cb, (void *)(intptr_t)pid);
}

pid_t harness_fork(int watchdog_s)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		harness_ndefer = 0; /* the parent's cleanups are not ours */
		memset((void *)harness_pids, 0, sizeof harness_pids);
		memset(harness_dirs, 0, sizeof harness_dirs);
		signal(SIGALRM, SIG_DFL);
		alarm((unsigned)watchdog_s);
		return 0;
	}
	if (pid > 0)
		harness_adopt(pid);
	return pid;
}

/* ---- folders ---- */

static int harness_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void harness_rmdir_cb(void *arg)
{
	char *dir = arg;
	nftw(dir, harness_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	dir[0] = 0; /* the slot is free again */
}

const char *harness_tmpdir(void)
{
	for (size_t i = 0; i < HARNESS_MAX_DIRS; i++) {
		char *d = harness_dirs[i];
		if (d[0])
			continue;
		snprintf(d, sizeof harness_dirs[i], "/tmp/ipcbus-itest.XXXXXX");
		if (!mkdtemp(d)) {
			d[0] = 0;
			return NULL;
		}
		harness_defer(harness_rmdir_cb, d);
		return d;
	}
	return NULL;
}

int harness_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int rc = -errno;
			close(fd);
			return rc;
		}
		off += (size_t)n;
	}
	return close(fd) < 0 ? -errno : 0;
}

char *harness_read_file(const char *path, size_t *lenp)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *s = NULL;
	size_t len = 0, cap = 0;

	if (fd < 0)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *t = realloc(s, cap ? cap * 2 : 8192);
			if (!t)
				goto fail;
			s = t;
			cap = cap ? cap * 2 : 8192;
		}
		ssize_t n = read(fd, s + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	s[len] = 0;
	if (lenp)
		*lenp = len;
	return s;
fail:
	close(fd);
	free(s);
	return NULL;
}

/* ---- child processes ---- */

static void harness_proc_free_cb(void *arg)
{
	struct harness_proc *p = arg;
	if (!p->exited)
		harness_reap(p->pid);
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	free(p->out);
	free(p->err);
	free(p);
}

void harness_proc_free(struct harness_proc *p)
{
	if (!p)
		return;
	harness_undefer(p);
	harness_proc_free_cb(p);
}

/* A descriptor holding in[0..len) from its start, for the child's stdin. */
static int harness_stdin_fd(const char *in, size_t len)
{
	if (!in)
		return open("/dev/null", O_RDONLY | O_CLOEXEC);
	int fd = memfd_create("harness-stdin", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, in + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

struct harness_proc *harness_proc_start(char *const argv[], const char *in, size_t in_len)
{
	struct harness_proc *p = calloc(1, sizeof *p);
	int out[2] = {-1, -1}, err[2] = {-1, -1}, infd = -1;

	if (!p)
		return NULL;
	p->out_fd = p->err_fd = -1;
	p->out = calloc(1, 1);
	p->err = calloc(1, 1);
	if (!p->out || !p->err)
		goto fail;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		goto fail;
	if ((infd = harness_stdin_fd(in, in_len)) < 0)
		goto fail;
	fflush(NULL);
	p->pid = fork();
	if (p->pid < 0)
		goto fail;
	if (p->pid == 0) {
		dup2(infd, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(argv[0], argv);
		dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	harness_track(p->pid);
	close(infd);
	close(out[1]);
	close(err[1]);
	p->out_fd = out[0];
	p->err_fd = err[0];
	fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
	harness_defer(harness_proc_free_cb, p);
	return p;
fail:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	if (infd >= 0)
		close(infd);
	free(p->out);
	free(p->err);
	free(p);
	return NULL;
}

static struct harness_proc *harness_cli_vstart(const char *in, size_t in_len, const char *arg,
					       va_list ap)
{
	char *argv[64];
	int n = 0;
	const char *cli = getenv("IPCBUS_CLI");

	if (!cli || !*cli)
		return NULL;
	argv[n++] = (char *)cli;
	for (const char *a = arg; a && n < 63; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	argv[n] = NULL;
	return harness_proc_start(argv, in, in_len);
}

struct harness_proc *harness_cli_start(const char *in, size_t in_len, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	struct harness_proc *p = harness_cli_vstart(in, in_len, arg, ap);
	va_end(ap);
	return p;
}

/* Append what fd has to *s; -1 at EOF (fd closed). */
static int harness_drain(int *fd, char **s, size_t *len)
{
	char chunk[65536];

	for (;;) {
		ssize_t n = read(*fd, chunk, sizeof chunk);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
		}
		if (n <= 0) {
			close(*fd);
			*fd = -1;
			return -1;
		}
		char *t = realloc(*s, *len + (size_t)n + 1);
		if (!t)
			return 0;
		memcpy(t + *len, chunk, (size_t)n);
		*len += (size_t)n;
		t[*len] = 0;
		*s = t;
	}
}

/* Check for the exit without waiting; 1 when it exited. */
static int harness_proc_check(struct harness_proc *p)
{
	int st;

	if (p->exited)
		return 1;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		p->exited = 1;
		p->status = harness_decode_status(st);
		harness_untrack(p->pid);
		return 1;
	}
	return 0;
}

int harness_proc_pump(struct harness_proc *p, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;

	for (;;) {
		harness_proc_check(p);
		if (p->exited && p->out_fd < 0 && p->err_fd < 0)
			return 1;
		struct pollfd pf[2];
		nfds_t n = 0;
		if (p->out_fd >= 0)
			pf[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
		if (p->err_fd >= 0)
			pf[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
		/* a daemonized grandchild may hold the pipes open after the
		 * exit: look at the exit every few ms, not only at EOF */
		int left = harness_left(deadline);
		int step = left < 20 ? left : 20;
		if (n > 0)
			poll(pf, n, step);
		else
			harness_sleep(step);
		if (p->out_fd >= 0)
			harness_drain(&p->out_fd, &p->out, &p->out_len);
		if (p->err_fd >= 0)
			harness_drain(&p->err_fd, &p->err, &p->err_len);
		if (!harness_left(deadline))
			return harness_proc_check(p);
	}
}

int harness_proc_wait_out(struct harness_proc *p, const char *needle, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;

	for (;;) {
		if (strstr(p->out, needle))
			return 0;
		if (p->exited && p->out_fd < 0)
			return -1;
		int left = harness_left(deadline);
		if (!left)
			return -1;
		harness_proc_pump(p, left < 50 ? left : 50);
	}
}

int harness_proc_wait(struct harness_proc *p, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;

	while (!harness_proc_check(p)) {
		int left = harness_left(deadline);
		if (!left)
			return -1;
		harness_proc_pump(p, left < 50 ? left : 50);
	}
	/* the rest of its output: until the pipes close, or for a moment
	 * when a daemonized grandchild holds them */
	uint64_t end = harness_now() + 200;
	while ((p->out_fd >= 0 || p->err_fd >= 0) && harness_left(end))
		harness_proc_pump(p, harness_left(end));
	return p->status;
}

void harness_proc_signal(struct harness_proc *p, int sig)
{
	if (!harness_proc_check(p))
		kill(p->pid, sig);
}

struct harness_proc *harness_cli(int timeout_ms, const char *in, size_t in_len, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	struct harness_proc *p = harness_cli_vstart(in, in_len, arg, ap);
	va_end(ap);
	if (!p)
		return NULL;
	if (harness_proc_wait(p, timeout_ms) < 0) {
		harness_reap(p->pid);
		p->exited = 1;
		p->status = -1;
		harness_proc_pump(p, 0);
	}
	return p;
}

/* ---- brokers ---- */

int harness_can_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc;

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* A broker built with sanitizers reports on its stderr, which is the log:
 * make such a report a failure of the case that ran the broker. */
static void harness_broker_check_log(struct harness_broker *b)
{
	static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
					    "runtime error:", "WARNING: ThreadSanitizer"};
	size_t len = 0;
	char *log = harness_read_file(b->log, &len);

	if (!log)
		return;
	const char *fresh = log + (b->log_checked < len ? b->log_checked : len);
	for (size_t i = 0; i < HARNESS_NELEM(marks); i++) {
		if (strstr(fresh, marks[i])) {
			fprintf(stderr, "harness: the broker reported an error:\n%s\n", fresh);
			CU_FAIL("sanitizer report in the broker's log");
			break;
		}
	}
	b->log_checked = len;
	free(log);
}

static void harness_broker_free_cb(void *arg)
{
	struct harness_broker *b = arg;
	if (b->pid > 0)
		harness_broker_stop(b);
	harness_broker_check_log(b);
	free(b->lines);
	free(b);
	/* the folder has its own cleanup, registered before this one */
}

struct harness_broker *harness_broker_new(const char *lines)
{
	struct harness_broker *b = calloc(1, sizeof *b);
	const char *dir = harness_tmpdir();

	if (!b || !dir) {
		free(b);
		return NULL;
	}
	snprintf(b->dir, sizeof b->dir, "%s", dir);
	snprintf(b->sock, sizeof b->sock, "%s/ipcbus.sock", dir);
	snprintf(b->url, sizeof b->url, "unix://%s", b->sock);
	snprintf(b->conf, sizeof b->conf, "%s/ipcbusd.conf", dir);
	snprintf(b->log, sizeof b->log, "%s/ipcbusd.log", dir);
	snprintf(b->pidfile, sizeof b->pidfile, "%s/ipcbusd.pid", dir);
	b->lines = strdup(lines ? lines : "");
	if (!b->lines) {
		free(b);
		return NULL;
	}
	harness_defer(harness_broker_free_cb, b);
	return b;
}

void harness_broker_set_url(struct harness_broker *b, const char *url)
{
	snprintf(b->url, sizeof b->url, "%s", url);
	if (strncmp(url, "unix://", 7) == 0) {
		snprintf(b->sock, sizeof b->sock, "%s", url + 7);
		char *q = strchr(b->sock, '?');
		if (q)
			*q = 0;
	}
}

/* The configuration text: the listen line and the lines with @DIR@
 * replaced.  The caller frees it. */
static char *harness_broker_conf_text(const struct harness_broker *b)
{
	size_t cap = strlen(b->lines) * 4 + strlen(b->url) + 64 + 1;
	char *s = malloc(cap);
	size_t k = 0;

	if (!s)
		return NULL;
	if (b->url[0])
		k += (size_t)snprintf(s, cap, "# written by the test harness\nlisten %s\n", b->url);
	for (const char *p = b->lines; *p;) {
		if (strncmp(p, "@DIR@", 5) == 0) {
			size_t dl = strlen(b->dir);
			if (k + dl + 1 >= cap)
				break;
			memcpy(s + k, b->dir, dl);
			k += dl;
			p += 5;
		} else {
			if (k + 2 >= cap)
				break;
			s[k++] = *p++;
		}
	}
	s[k] = 0;
	return s;
}

/* Spawn ipcbusd with args; stdout to /dev/null, stderr appended to the
 * log.  The pid, or -1. */
static pid_t harness_broker_spawn(struct harness_broker *b, char *const *argv)
{
	int logfd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (logfd < 0 || null < 0) {
		if (logfd >= 0)
			close(logfd);
		if (null >= 0)
			close(null);
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(logfd, 2);
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (b->nofile > 0) {
			struct rlimit rl = {(rlim_t)b->nofile, (rlim_t)b->nofile};
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				_exit(126);
		}
		execv(argv[0], argv);
		dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(logfd);
	close(null);
	if (pid > 0)
		harness_track(pid);
	return pid;
}

const char *harness_ipcbusd(void)
{
	static char path[PATH_MAX];
	const char *e = getenv("IPCBUSD");
	if (e && *e)
		return e;
	e = getenv("top_builddir");
	snprintf(path, sizeof path, "%s/broker/ipcbusd", e && *e ? e : "../..");
	return path;
}

pid_t harness_broker_exec(struct harness_broker *b, const char *const *extra)
{
	char *argv[32];
	int n = 0;
	char *text = harness_broker_conf_text(b);

	if (!text || harness_write_file(b->conf, text) < 0) {
		free(text);
		return -1;
	}
	free(text);
	argv[n++] = (char *)harness_ipcbusd();
	argv[n++] = (char *)"-c";
	argv[n++] = b->conf;
	for (size_t i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	return harness_broker_spawn(b, argv);
}

int harness_broker_start(struct harness_broker *b, const char *const *extra)
{
	/* the log may hold an earlier run's "ready": look after it */
	size_t seen = 0;
	free(harness_read_file(b->log, &seen));
	b->pid = harness_broker_exec(b, extra);
	if (b->pid < 0) {
		b->pid = 0;
		return -1;
	}
	uint64_t deadline = harness_now() + HARNESS_READY_MS;
	for (int pause = 1;; pause = pause < 20 ? pause * 2 : 20) {
		int st;
		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			harness_untrack(b->pid);
			b->status = harness_decode_status(st);
			b->pid = 0;
			harness_broker_check_log(b);
			return -1;
		}
		size_t len = 0;
		char *log = harness_read_file(b->log, &len);
		int ready = log && len > seen && strstr(log + seen, "ready");
		free(log);
		if (ready && harness_can_connect(b->sock) == 0)
			return 0;
		if (!harness_left(deadline))
			break;
		harness_sleep(pause);
	}
	fprintf(stderr, "harness: the broker did not come up within %d ms\n", HARNESS_READY_MS);
	harness_broker_kill(b);
	return -1;
}

struct harness_broker *harness_broker_up(const char *lines)
{
	struct harness_broker *b = harness_broker_new(lines);
	if (!b) {
		CU_FAIL("cannot make a broker folder");
		return NULL;
	}
	if (harness_broker_start(b, NULL) < 0) {
		char *log = harness_read_file(b->log, NULL);
		fprintf(stderr, "harness: broker did not start; its log:\n%s\n", log ? log : "");
		free(log);
		CU_FAIL("the broker did not start");
		return NULL;
	}
	return b;
}

int harness_broker_stop(struct harness_broker *b)
{
	if (b->pid <= 0)
		return b->status;
	kill(b->pid, SIGTERM);
	int st = harness_wait_pid(b->pid, HARNESS_STOP_MS);
	if (st < 0) {
		fprintf(stderr, "harness: broker %d ignored SIGTERM for %d ms; killed\n", (int)b->pid,
			HARNESS_STOP_MS);
		harness_reap(b->pid);
		st = 128 + SIGKILL;
	}
	b->pid = 0;
	b->status = st;
	harness_broker_check_log(b);
	return st;
}

void harness_broker_kill(struct harness_broker *b)
{
	if (b->pid <= 0)
		return;
	harness_reap(b->pid);
	b->pid = 0;
	b->status = 128 + SIGKILL;
	harness_broker_check_log(b);
}

int harness_broker_restart(struct harness_broker *b)
{
	harness_broker_stop(b);
	return harness_broker_start(b, NULL);
}

long harness_broker_rss(const struct harness_broker *b)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int)b->pid);
	char *s = harness_read_file(path, NULL);
	long kb = -1;
	const char *p = s ? strstr(s, "VmRSS:") : NULL;
	if (p)
		kb = strtol(p + 6, NULL, 10);
	free(s);
	return kb;
}

int harness_broker_log_has(const struct harness_broker *b, const char *needle)
{
	char *s = harness_read_file(b->log, NULL);
	int r = s && strstr(s, needle);
	free(s);
	return r;
}

int harness_broker_wait_log(const struct harness_broker *b, const char *needle, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	for (;;) {
		if (harness_broker_log_has(b, needle))
			return 0;
		if (!harness_left(deadline))
			return -1;
		harness_sleep(10);
	}
}

void harness_broker_free(struct harness_broker *b)
{
	if (!b)
		return;
	harness_undefer(b);
	harness_broker_free_cb(b);
}

/* ---- the raw protocol client ---- */

static void harness_raw_free_cb(void *arg)
{
	struct harness_raw *r = arg;
	if (r->fd >= 0)
		close(r->fd);
	harness_rawq_close(r->q);
	buf_fini(&r->in);
	free(r->body);
	if (r->welcome)
		ipcbus__welcome__free_unpacked(r->welcome, NULL);
	free(r);
}

void harness_raw_close(struct harness_raw *r)
{
	if (!r)
		return;
	harness_undefer(r);
	harness_raw_free_cb(r);
}

struct harness_raw *harness_raw_connect(const char *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct harness_raw *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	buf_init(&r->in, 256u << 20);
	r->auto_pong = 1;
	r->next_id = 1u << 30;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		harness_raw_free_cb(r);
		return NULL;
	}
	harness_defer(harness_raw_free_cb, r);
	return r;
}

struct harness_raw *harness_raw_open(const struct harness_broker *b, const char *name)
{
	struct harness_raw *r = harness_raw_connect(b->sock);
	if (!r)
		return NULL;
	if (harness_raw_hello(r, 1, IPCBUS_PROTOCOL_VERSION, name) < 0 ||
	    harness_raw_read(r, 5000) != 1 || r->f.type != IPCBUS__FRAME_TYPE__WELCOME ||
	    !(r->welcome = frame_unpack_welcome(&r->f))) {
		fprintf(stderr, "harness: no WELCOME for %s\n", name);
		harness_raw_close(r);
		return NULL;
	}
	return r;
}

int harness_raw_send(struct harness_raw *r, const void *p, size_t n)
{
	const uint8_t *s = p;
	uint64_t deadline = harness_now() + HARNESS_SEND_MS;

	if (r->q)
		return harness_rawq_send(r->q, p, n, deadline);
	while (n > 0) {
		ssize_t k = send(r->fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			struct pollfd pf = {.fd = r->fd, .events = POLLOUT};
			int left = harness_left(deadline);
			if (!left || poll(&pf, 1, left) == 0)
				return -ETIMEDOUT;
			continue;
		}
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

int harness_raw_frame(struct harness_raw *r, const struct frame *f,
		      const struct frame_header *h, size_t nh)
{
	struct buf b;
	buf_init(&b, SIZE_MAX / 2);
	int rc = frame_append(&b, f, h, nh);
	if (rc == 0)
		rc = harness_raw_send(r, buf_rptr(&b), buf_len(&b));
	buf_fini(&b);
	return rc;
}

static struct frame_bytes harness_fb(const void *p, size_t len)
{
	return (struct frame_bytes){.p = p, .len = len, .set = 1};
}

void harness_raw_hello_fill(const struct harness_raw *r, Ipcbus__Hello *h, Ipcbus__Sysv *sv)
{
	Ipcbus__Sysv init = IPCBUS__SYSV__INIT;
	int reply, send;

	if (!r->q)
		return;
	*sv = init;
	harness_rawq_hello(r->q, &reply, &send, &sv->proof);
	sv->reply_queue = reply;
	sv->send_queue = send;
	h->sysv = sv;
}

int harness_raw_hello(struct harness_raw *r, uint64_t id, uint32_t version, const char *name)
{
	Ipcbus__Hello h = IPCBUS__HELLO__INIT;
	struct buf b;

	Ipcbus__Sysv sv;
	h.version = version;
	h.has_pid = 1;
	h.pid = (uint32_t)getpid();
	harness_raw_hello_fill(r, &h, &sv);
	if (name) {
		h.has_name = 1;
		h.name.data = (uint8_t *)(uintptr_t)name;
		h.name.len = strlen(name);
	}
	buf_init(&b, 1 << 20);
	int rc = frame_append_hello(&b, id, &h);
	if (rc == 0)
		rc = harness_raw_send(r, buf_rptr(&b), buf_len(&b));
	buf_fini(&b);
	return rc;
}

int harness_raw_pub(struct harness_raw *r, uint64_t id, const char *channel, const char *reply_to,
		    const void *data, size_t len)
{
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PUB, .has_id = id != 0, .id = id};
	f.channel = harness_fb(channel, strlen(channel));
	if (reply_to)
		f.reply_to = harness_fb(reply_to, strlen(reply_to));
	f.payload = harness_fb(data ? data : "", len);
	return harness_raw_frame(r, &f, NULL, 0);
}

int harness_raw_sub(struct harness_raw *r, uint64_t id, uint64_t sid, const char *pattern,
		    const char *queue)
{
	struct frame f = {.type = IPCBUS__FRAME_TYPE__SUB, .has_id = id != 0, .id = id,
			  .has_sid = 1, .sid = sid};
	f.channel = harness_fb(pattern, strlen(pattern));
	if (queue)
		f.queue = harness_fb(queue, strlen(queue));
	return harness_raw_frame(r, &f, NULL, 0);
}

int harness_raw_unsub(struct harness_raw *r, uint64_t id, uint64_t sid)
{
	struct frame f = {.type = IPCBUS__FRAME_TYPE__UNSUB, .has_id = id != 0, .id = id,
			  .has_sid = 1, .sid = sid};
	return harness_raw_frame(r, &f, NULL, 0);
}

int harness_raw_ping(struct harness_raw *r, uint64_t id)
{
	struct frame f = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1, .id = id};
	return harness_raw_frame(r, &f, NULL, 0);
}

/* Take one whole frame out of r->in into r->f.  1, 0 (need more), -2. */
static int harness_raw_take(struct harness_raw *r)
{
	const uint8_t *body;
	size_t len, need;
	if (buf_len(&r->in) == 0)
		return 0; /* nothing read yet: no buffer to point into */
	long n = frame_split(buf_rptr(&r->in), buf_len(&r->in), 256u << 20, &body, &len, &need);

	if (n < 0)
		return -2;
	if (n == 0)
		return 0;
	if (len > r->body_cap) {
		uint8_t *t = realloc(r->body, len);
		if (!t)
			return -2;
		r->body = t;
		r->body_cap = len;
	}
	memcpy(r->body, body, len);
	buf_consume(&r->in, (size_t)n);
	if (frame_decode(r->body, len, &r->f) < 0)
		return -2;
	if (r->f.type == IPCBUS__FRAME_TYPE__ERR) {
		Ipcbus__Error *e = frame_unpack_error(&r->f);
		r->err_code = e ? (int)e->code : -1;
		r->err_fatal = e && e->has_fatal && e->fatal;
		r->err_closing = e && e->has_closing && e->closing;
		snprintf(r->err_text, sizeof r->err_text, "%.*s",
			 e && e->has_text ? (int)e->text.len : 0,
			 e && e->has_text ? (const char *)e->text.data : "");
		if (e)
			ipcbus__error__free_unpacked(e, NULL);
	}
	return 1;
}

int harness_raw_read(struct harness_raw *r, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);

	for (;;) {
		int rc = harness_raw_take(r);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			if (r->f.type != IPCBUS__FRAME_TYPE__PING)
				return 1;
			r->pings++;
			if (!r->auto_pong)
				return 1;
			struct frame pong = {.type = IPCBUS__FRAME_TYPE__PONG, .has_id = r->f.has_id,
					     .id = r->f.id};
			harness_raw_frame(r, &pong, NULL, 0);
			continue;
		}
		if (buf_room(&r->in) < 16384 && buf_reserve(&r->in, 65536) < 0)
			return -2;
		ssize_t n;
		if (r->q) {
			n = harness_rawq_recv(r->q, buf_wptr(&r->in), buf_room(&r->in));
			if (n < 0)
				errno = (int)-n, n = -1;
		} else {
			n = recv(r->fd, buf_wptr(&r->in), buf_room(&r->in), MSG_DONTWAIT);
		}
		if (n > 0) {
			buf_commit(&r->in, (size_t)n);
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return -1; /* EOF, or ECONNRESET when the broker closed with our bytes unread */
		int left = harness_left(deadline);
		if (!left)
			return 0;
		if (r->q) {
			harness_sleep(1); /* a queue cannot be polled */
			continue;
		}
		struct pollfd pf = {.fd = r->fd, .events = POLLIN};
		poll(&pf, 1, left);
	}
}

int harness_raw_expect_err(struct harness_raw *r, int code, uint64_t id, int timeout_ms)
{
	int rc = harness_raw_read(r, timeout_ms);
	if (rc != 1) {
		fprintf(stderr, "harness: expected ERR %d, got %s\n", code,
			rc == 0 ? "nothing" : rc == -1 ? "a close" : "bad bytes");
		return 0;
	}
	if (r->f.type != IPCBUS__FRAME_TYPE__ERR) {
		fprintf(stderr, "harness: expected ERR %d, got %s\n", code, frame_type_name(r->f.type));
		return 0;
	}
	if (r->err_code != code || (id != UINT64_MAX && r->f.id != id)) {
		fprintf(stderr, "harness: expected ERR %d for id %llu, got ERR %d for id %llu: %s\n",
			code, (unsigned long long)id, r->err_code, (unsigned long long)r->f.id,
			r->err_text);
		return 0;
	}
	return 1;
}

int harness_raw_wait_closed(struct harness_raw *r, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	for (;;) {
		int rc = harness_raw_read(r, harness_left(deadline));
		if (rc == -1)
			return 1;
		if (rc == -2) {
			/* not a frame stream any more: skip to the close */
			buf_consume(&r->in, buf_len(&r->in));
			continue;
		}
		if (rc == 0)
			return 0;
	}
}

int harness_raw_barrier(struct harness_raw *r, int timeout_ms,
			void (*fn)(void *arg, struct harness_raw *r), void *arg)
{
	uint64_t id = ++r->next_id;
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;

	if (harness_raw_ping(r, id) < 0)
		return -1;
	for (;;) {
		int rc = harness_raw_read(r, harness_left(deadline));
		if (rc == 0)
			return 0;
		if (rc < 0)
			return -1;
		if (r->f.type == IPCBUS__FRAME_TYPE__PONG && r->f.has_id && r->f.id == id)
			return 1;
		if (fn)
			fn(arg, r);
	}
}

int harness_raw_is_msg(const struct harness_raw *r, uint64_t sid, const char *s)
{
	const struct frame *f = &r->f;
	size_t n = strlen(s);
	return f->type == IPCBUS__FRAME_TYPE__MSG && f->has_sid && f->sid == sid &&
	       f->payload.len == n && (n == 0 || memcmp(f->payload.p, s, n) == 0);
}

struct harness_probe {
	uint64_t id;
	int refused;
};

static void harness_probe_frame(void *arg, struct harness_raw *r)
{
	struct harness_probe *p = arg;
	if (r->f.type == IPCBUS__FRAME_TYPE__ERR && r->f.id == p->id &&
	    r->err_code == IPCBUS__ERR_CODE__E_NO_RESPONDERS)
		p->refused = 1;
}

int harness_raw_wait_interest(struct harness_raw *r, const char *channel, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;

	for (;;) {
		struct harness_probe p = {.id = ++r->next_id};
		if (harness_raw_pub(r, p.id, channel, "_INBOX.harness.probe", "probe", 5) < 0)
			return -1;
		if (harness_raw_barrier(r, harness_left(deadline) + 1, harness_probe_frame, &p) != 1)
			return -1;
		if (!p.refused)
			return 0;
		if (!harness_left(deadline))
			return -1;
		harness_sleep(20);
	}
}

/* ---- the test program ---- */

static void harness_watchdog(int sig)
{
	(void)sig;
	static const char msg[] = "harness: watchdog: the test program ran too long\n";
	if (write(2, msg, sizeof msg - 1) < 0) {
	}
	for (size_t i = 0; i < HARNESS_MAX_PIDS; i++)
		if (harness_pids[i] > 0)
			kill(harness_pids[i], SIGKILL);
	for (size_t i = 0; i < HARNESS_MAX_DIRS; i++)
		if (harness_dirs[i][0])
			nftw(harness_dirs[i], harness_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	_exit(99);
}

static void harness_after_case(void)
{
	harness_cleanup();
}

static void harness_atexit(void)
{
	harness_cleanup();
}

int harness_main(const char *suite, const struct harness_case *cases, size_t n,
		 int need_cli, int watchdog_s, int argc, char **argv)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	int rc = 99;

	if (access(harness_ipcbusd(), X_OK) < 0) {
		fprintf(stderr, "%s: no broker at %s: skipped\n", suite, harness_ipcbusd());
		return 77;
	}
	if (need_cli) {
		const char *cli = getenv("IPCBUS_CLI");
		if (!cli || !*cli || access(cli, X_OK) < 0) {
			fprintf(stderr, "%s: no CLI ($IPCBUS_CLI): skipped\n", suite);
			return 77;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, harness_watchdog);
	alarm((unsigned)watchdog_s);
	/* a broker started with -d forks away: still ours to reap */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	atexit(harness_atexit);
	/* the tests choose their URLs; the environment must not */
	unsetenv("IPCBUS_URL");
	unsetenv("IPCBUS_TOKEN");

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite_with_setup_and_teardown(suite, NULL, NULL, NULL,
							  harness_after_case);
	if (!s)
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((!filter || strstr(cases[i].name, filter)) &&
		    !CU_add_test(s, cases[i].name, cases[i].fn))
			goto out;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		goto out;
	rc = CU_get_number_of_failures() > 0 || CU_get_number_of_tests_failed() > 0 ? 1 : 0;
out:
	CU_cleanup_registry();
	harness_cleanup();
	return rc;
}

/* ---- transports (tests/transport/ and whoever needs a URL) ----
 *
 * Kept at the end of the file, includes too, so that it merges with the
 * rest of the harness as it changes. */

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "url.h"

int harness_init(const char *name, int need_cli, int watchdog_s)
{
	/* the same set-up as harness_main's */
	if (access(harness_ipcbusd(), X_OK) < 0) {
		fprintf(stderr, "%s: no broker at %s: skipped\n", name, harness_ipcbusd());
		return 77;
	}
	if (need_cli) {
		const char *cli = getenv("IPCBUS_CLI");
		if (!cli || !*cli || access(cli, X_OK) < 0) {
			fprintf(stderr, "%s: no CLI ($IPCBUS_CLI): skipped\n", name);
			return 77;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, harness_watchdog);
	alarm((unsigned)watchdog_s);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	atexit(harness_atexit);
	unsetenv("IPCBUS_URL");
	unsetenv("IPCBUS_TOKEN");
	return 0;
}

/* A raw client around a connected descriptor (taken, also on failure). */
struct harness_raw *harness_raw_adopt(int fd)
{
	struct harness_raw *r = calloc(1, sizeof *r);

	if (!r) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	r->fd = fd;
	buf_init(&r->in, 256u << 20);
	r->auto_pong = 1;
	r->next_id = 1u << 30;
	harness_defer(harness_raw_free_cb, r);
	return r;
}

/* Connect a TCP stream to host:port, trying each address; the descriptor
 * or -errno. */
static int harness_tcp_connect(const char *host, uint16_t port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char serv[8];
	int rc = -ECONNREFUSED;

	snprintf(serv, sizeof serv, "%u", (unsigned)port);
	int g = getaddrinfo(host, serv, &hints, &res);
	if (g != 0)
		return g == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			rc = fd;
			break;
		}
		rc = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	return rc;
}

struct harness_raw *harness_raw_connect_url(const char *url)
{
	struct url u;
	char why[256];
	int fd;

	/* only what the raw client speaks; url_parse may know more */
	if (strncmp(url, "unix://", 7) != 0 && strncmp(url, "tcp://", 6) != 0 &&
	    strncmp(url, "sysv://", 7) != 0) {
		errno = strstr(url, "://") ? EPROTONOSUPPORT : EINVAL;
		return NULL;
	}
	if (url_parse(url, &u, why, sizeof why) < 0) {
		fprintf(stderr, "harness: %s\n", why);
		errno = EINVAL;
		return NULL;
	}
	if (u.kind == URL_UNIX) {
		return harness_raw_connect(u.path);
	}
	if (u.kind == URL_SYSV) {
		struct harness_rawq *q = harness_rawq_open(u.key);
		struct harness_raw *r = q ? harness_raw_adopt(-1) : NULL;
		if (r)
			r->q = q;
		else
			harness_rawq_close(q);
		return r;
	}
	fd = harness_tcp_connect(u.host, u.port);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	return harness_raw_adopt(fd);
}

struct harness_raw *harness_raw_open_url(const char *url, const char *name)
{
	struct harness_raw *r = harness_raw_connect_url(url);
	if (!r)
		return NULL;
	if (harness_raw_hello(r, 1, IPCBUS_PROTOCOL_VERSION, name) < 0 ||
	    harness_raw_read(r, 5000) != 1 || r->f.type != IPCBUS__FRAME_TYPE__WELCOME ||
	    !(r->welcome = frame_unpack_welcome(&r->f))) {
		fprintf(stderr, "harness: no WELCOME for %s on %s\n", name, url);
		harness_raw_close(r);
		errno = EPROTO;
		return NULL;
	}
	return r;
}

void harness_raw_abort(struct harness_raw *r)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (!r)
		return;
	/* sysv://: a client that vanished leaves its queues; the broker finds
	 * it gone by its pid, which is ours and lives: removing them is the
	 * nearest thing, what a client's exit handler or the broker does */
	if (r->fd >= 0 && getsockname(r->fd, (struct sockaddr *)&ss, &len) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
		struct linger l = {.l_onoff = 1, .l_linger = 0};
		setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	}
	harness_raw_close(r);
}

/* Bind a TCP socket to the loopback of family at port (0: any); the
 * descriptor or -errno. */
static int harness_bind_loopback(int family, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(&ss, 0, sizeof ss);
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(port);
		len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(port);
		len = sizeof *s4;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int harness_free_port(int family)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int port = 0;
	int fd = harness_bind_loopback(family, 0);

	if (fd < 0)
		return 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	close(fd);
	return port;
}

int harness_have_ipv6(void)
{
	int fd = harness_bind_loopback(AF_INET6, 0);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

int harness_which(const char *cmd, char *out, size_t n)
{
	const char *path = getenv("PATH");

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *end = strchr(path, ':');
		size_t dl = end ? (size_t)(end - path) : strlen(path);
		if (dl > 0 && (size_t)snprintf(out, n, "%.*s/%s", (int)dl, path, cmd) < n &&
		    access(out, X_OK) == 0)
			return 0;
		path += dl + (end != NULL);
	}
	return -ENOENT;
}

/* Run openssl with args (NULL-ended) to its end: 0, or -EIO with its
 * stderr copied to ours. */
static int harness_openssl(const char *openssl, const char *const *args)
{
	char *argv[40];
	int n = 0;

	argv[n++] = (char *)openssl;
	for (size_t i = 0; args[i] && n < 39; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	struct harness_proc *p = harness_proc_start(argv, NULL, 0);
	if (!p)
		return -EIO;
	int st = harness_proc_wait(p, 10000);
	if (st != 0)
		fprintf(stderr, "harness: openssl %s exited %d:\n%s\n", args[0], st, p->err);
	harness_proc_free(p);
	return st == 0 ? 0 : -EIO;
}

int harness_openssl_run(const char *const *args)
{
	char openssl[PATH_MAX];

	if (harness_which("openssl", openssl, sizeof openssl) < 0)
		return -ENOENT;
	return harness_openssl(openssl, args);
}

/* A key and a certificate for cn, signed by the CA in t: 0 or -EIO. */
static int harness_tls_leaf(const char *openssl, const char *dir, const struct harness_tls *t,
			    const char *name, const char *cn, const char *ext, const char *cert,
			    const char *key)
{
	char csr[160], extfile[160], serial[160], subj[96];

	snprintf(csr, sizeof csr, "%s/%s.csr", dir, name);
	snprintf(serial, sizeof serial, "%s/ca.srl", dir);
	snprintf(extfile, sizeof extfile, "%s/%s.ext", dir, name);
	snprintf(subj, sizeof subj, "/CN=%s", cn);
	if (harness_write_file(extfile, ext) < 0)
		return -EIO;
	const char *const req[] = {"req", "-new", "-newkey", "ec", "-pkeyopt",
				   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
				   "-out", csr, "-subj", subj, NULL};
	const char *const sign[] = {"x509", "-req", "-in", csr, "-CA", t->ca, "-CAkey", t->ca_key,
				    "-CAserial", serial, "-CAcreateserial", "-days", "2", "-extfile", extfile,
				    "-out", cert, NULL};
	if (harness_openssl(openssl, req) < 0 || harness_openssl(openssl, sign) < 0)
		return -EIO;
	return chmod(key, 0600) < 0 ? -EIO : 0;
}

int harness_tls_make(const char *dir, struct harness_tls *t)
{
	char openssl[PATH_MAX];

	if (harness_which("openssl", openssl, sizeof openssl) < 0)
		return -ENOENT;
	memset(t, 0, sizeof *t);
	snprintf(t->ca, sizeof t->ca, "%s/ca.pem", dir);
	snprintf(t->ca_key, sizeof t->ca_key, "%s/ca.key", dir);
	snprintf(t->cert, sizeof t->cert, "%s/server.pem", dir);
	snprintf(t->key, sizeof t->key, "%s/server.key", dir);
	snprintf(t->client_cert, sizeof t->client_cert, "%s/client.pem", dir);
	snprintf(t->client_key, sizeof t->client_key, "%s/client.key", dir);
	const char *const ca[] = {"req", "-x509", "-newkey", "ec", "-pkeyopt",
				  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", t->ca_key,
				  "-out", t->ca, "-days", "2", "-subj", "/CN=ipcbus-test-ca",
				  "-addext", "basicConstraints=critical,CA:TRUE",
				  "-addext", "keyUsage=critical,keyCertSign,cRLSign", NULL};
	if (harness_openssl(openssl, ca) < 0 || chmod(t->ca_key, 0600) < 0)
		return -EIO;
	if (harness_tls_leaf(openssl, dir, t, "server", "localhost",
			     "basicConstraints=CA:FALSE\n"
			     "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
			     "extendedKeyUsage=serverAuth\n",
			     t->cert, t->key) < 0)
		return -EIO;
	if (harness_tls_leaf(openssl, dir, t, "client", "ipcbus-test-client",
			     "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
			     t->client_cert, t->client_key) < 0)
		return -EIO;
	return 0;
}

#if defined(__SANITIZE_ADDRESS__)
#define HARNESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HARNESS_ASAN 1
#endif
#endif

int harness_asan_quarantine(int mb)
{
#ifdef HARNESS_ASAN
	const char *old = getenv("ASAN_OPTIONS");
	char opts[1024];
	/* the last setting of an option wins */
	snprintf(opts, sizeof opts, "%s%squarantine_size_mb=%d", old ? old : "",
		 old && *old ? ":" : "", mb);
	setenv("ASAN_OPTIONS", opts, 1);
	return mb;
#else
	(void)mb;
	return 0;
#endif
}

int harness_sanitized(void)
{
#ifdef HARNESS_ASAN
	return 1;
#else
	return 0;
#endif
}

/* Lines of the broker's log that hold needle. */
static int harness_log_count(const struct harness_broker *b, const char *needle)
{
	size_t len;
	char *text = harness_read_file(b->log, &len);
	int n = 0;
	for (char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(text);
	return n;
}

int harness_broker_held(struct harness_broker *b, size_t *held, size_t *peak)
{
	int before = harness_log_count(b, "status: ");
	if (!b->pid || kill(b->pid, SIGUSR1) < 0)
		return -1;
	uint64_t deadline = harness_now() + 2000;
	while (harness_log_count(b, "status: ") <= before) {
		if (harness_now() > deadline)
			return -1;
		harness_sleep(5);
	}
	size_t len;
	char *text = harness_read_file(b->log, &len);
	char *last = NULL;
	/* the broker's own line ("status: N connection(s)..."), not a
	 * bridge link's ("status: link ...") */
	for (char *p = text; p && (p = strstr(p, "status: ")); p++)
		if (p[8] >= '0' && p[8] <= '9')
			last = p;
	unsigned long long h = 0, pk = 0;
	char *at = last ? strstr(last, "pending, ") : NULL;
	int ok = at && sscanf(at, "pending, %llu byte(s) held (peak %llu", &h, &pk) == 2;
	free(text);
	if (!ok)
		return -1;
	*held = (size_t)h;
	*peak = (size_t)pk;
	return 0;
}

int harness_raw_shutdown(struct harness_raw *r)
{
	if (r->q)
		return harness_rawq_shutdown(r->q);
	return shutdown(r->fd, SHUT_WR) < 0 ? -errno : 0;
}
