/*
 * test_daemon.c: the daemon's files and signals, as an operator (or a
 * hostile local user) sees them.
 *
 * - files a root broker opens by name must not be redirected by a symbolic
 *   or hard link someone planted: the pidfile's temporary file, the pidfile
 *   itself, the log file (at start, with -t, and when HUP reopens it), and
 *   the socket's folder (a configured one, and a user broker's default
 *   $XDG_RUNTIME_DIR/ipcbus) and the folders above it.  Each case plants the
 *   link at a victim file in the broker's folder (mkdtemp: 0700 and not
 *   sticky, so fs.protected_symlinks, if on, does not do the broker's work)
 *   and checks the victim is untouched and the broker refuses clearly (or,
 *   where a link is replaced rather than followed, starts);
 * - a failed second broker leaves the first one's pidfile alone;
 * - USR1 (a status line) and USR2 (debug logging on/off) leave the broker
 *   serving; QUIT stops it like TERM; the socket and pidfile go either way;
 * - a burst of connections refused over max-connections is logged in full
 *   within about a second, with no further refusal to trigger it, and the
 *   broker then sleeps (no timer left armed).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "ipcbus.h"

#define T 5000 /* ms: a generous bound for anything the broker should do at once */
#define VICTIM "precious: must not change\n"

#define UP(b, lines) \
	struct harness_broker *b = harness_broker_up(lines); \
	CU_ASSERT_PTR_NOT_NULL_FATAL(b)

/* DIR/name, into the caller's buffer. */
static const char *path_in(char *out, size_t n, const char *dir, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
	return out;
}

/* Make DIR/victim with known contents; the path goes to out. */
static int victim_new(const char *dir, char *out, size_t n)
{
	path_in(out, n, dir, "victim");
	return harness_write_file(out, VICTIM);
}

/* 1 when the victim still holds exactly what victim_new() wrote. */
static int victim_intact(const char *path)
{
	size_t len = 0;
	char *s = harness_read_file(path, &len);
	int ok = s && len == strlen(VICTIM) && memcmp(s, VICTIM, len) == 0;
	if (!ok)
		fprintf(stderr, "  victim %s now holds: %s\n", path, s ? s : "(unreadable)");
	free(s);
	return ok;
}

/* The broker must have exited 1 at start and said why on stderr. */
static void expect_refused(struct harness_broker *b, const char *why)
{
	if (harness_broker_start(b, NULL) == 0) {
		CU_FAIL("the broker started");
		harness_broker_stop(b); /* before b->pid is reused */
		return;
	}
	CU_ASSERT_EQUAL(b->status, 1);
	if (!harness_broker_log_has(b, why)) {
		char *log = harness_read_file(b->log, NULL);
		fprintf(stderr, "  expected \"%s\" in the broker's stderr:\n%s\n", why, log ? log : "");
		free(log);
		CU_FAIL("the broker did not say why it refused");
	}
}

/* A round trip on a fresh connection: the broker still serves. */
static int serves(const struct harness_broker *b, const char *name)
{
	struct harness_raw *r = harness_raw_open(b, name);
	int ok = r && harness_raw_barrier(r, T, NULL, NULL) == 1;
	harness_raw_close(r);
	return ok;
}

/* Start a broker whose log goes to its own file (not stderr, where
 * harness_broker_start() looks for "ready"): up once its socket accepts.
 * 0, or -1 when it exited or did not come up. */
static int start_own_log(struct harness_broker *b)
{
	b->pid = harness_broker_exec(b, NULL);
	if (b->pid <= 0) {
		b->pid = 0;
		return -1;
	}
	uint64_t deadline = harness_now() + T;
	while (harness_can_connect(b->sock) < 0 && harness_now() < deadline) {
		int st = harness_wait_pid(b->pid, 10);
		if (st >= 0) {
			b->status = st;
			b->pid = 0;
			return -1;
		}
	}
	return harness_can_connect(b->sock) == 0 ? 0 : -1;
}

/* ---- the pidfile ---- */

/* The old code wrote PIDFILE.tmp with fopen and followed a link there. */
static void test_pidfile_tmp_symlink(void)
{
	struct harness_broker *b = harness_broker_new("pidfile @DIR@/ipcbusd.pid\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char victim[128], tmp[128], other[128];
	CU_ASSERT_EQUAL_FATAL(victim_new(b->dir, victim, sizeof victim), 0);
	path_in(tmp, sizeof tmp, b->dir, "ipcbusd.pid.tmp");
	CU_ASSERT_EQUAL_FATAL(symlink(victim, tmp), 0);
	/* and the pidfile's own name is a link to another victim: rename
	 * replaces the link, it does not write through it */
	path_in(other, sizeof other, b->dir, "victim2");
	CU_ASSERT_EQUAL_FATAL(harness_write_file(other, VICTIM), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(other, b->pidfile), 0);

	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	CU_ASSERT(victim_intact(victim));
	CU_ASSERT(victim_intact(other));
	struct stat st;
	CU_ASSERT_EQUAL_FATAL(lstat(b->pidfile, &st), 0);
	CU_ASSERT(S_ISREG(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0644);
	char *s = harness_read_file(b->pidfile, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(atoi(s), (int)b->pid);
	free(s);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(access(b->pidfile, F_OK), -1);
	CU_ASSERT(victim_intact(victim));
	/* nothing of ours left beside it: only the planted link */
	CU_ASSERT_EQUAL(lstat(tmp, &st), 0);
	CU_ASSERT(S_ISLNK(st.st_mode));
}

/* A second broker that cannot start (the socket is taken) must not remove
 * the running broker's pidfile: the old code unlinked it at exit. */
static void test_pidfile_only_ours(void)
{
	UP(b, "pidfile @DIR@/ipcbusd.pid\n");
	struct harness_broker *b2 = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b2);
	harness_broker_set_url(b2, b->url);
	const char *const extra[] = {"-p", b->pidfile, NULL};
	CU_ASSERT_EQUAL(harness_broker_start(b2, extra), -1);
	CU_ASSERT_EQUAL(b2->status, 1);
	CU_ASSERT(harness_broker_log_has(b2, "another broker"));
	char *s = harness_read_file(b->pidfile, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(atoi(s), (int)b->pid);
	free(s);
	CU_ASSERT(serves(b, "first"));
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(access(b->pidfile, F_OK), -1);
}

/* ---- the log file ---- */

static void test_log_symlink(void)
{
	struct harness_broker *b = harness_broker_new("log @DIR@/own.log\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char victim[128], logp[128];
	CU_ASSERT_EQUAL_FATAL(victim_new(b->dir, victim, sizeof victim), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(victim, path_in(logp, sizeof logp, b->dir, "own.log")), 0);
	expect_refused(b, "is a symbolic link");
	CU_ASSERT(victim_intact(victim));

	/* -t says so too */
	const char *const check[] = {"-t", NULL};
	pid_t pid = harness_broker_exec(b, check);
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_EQUAL(harness_wait_pid(pid, T), 1);
	CU_ASSERT(victim_intact(victim));

	/* a dangling link is not followed to create its target either */
	char nowhere[128];
	path_in(nowhere, sizeof nowhere, b->dir, "created-through-link");
	CU_ASSERT_EQUAL_FATAL(unlink(logp), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(nowhere, logp), 0);
	expect_refused(b, "is a symbolic link");
	CU_ASSERT_EQUAL(access(nowhere, F_OK), -1);
}

static void test_log_hard_link(void)
{
	struct harness_broker *b = harness_broker_new("log @DIR@/own.log\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char victim[128], logp[128];
	CU_ASSERT_EQUAL_FATAL(victim_new(b->dir, victim, sizeof victim), 0);
	CU_ASSERT_EQUAL_FATAL(link(victim, path_in(logp, sizeof logp, b->dir, "own.log")), 0);
	expect_refused(b, "hard links");
	CU_ASSERT(victim_intact(victim));
}

/* A FIFO at the log's name: the old fopen() blocked until a reader came. */
static void test_log_fifo(void)
{
	struct harness_broker *b = harness_broker_new("log @DIR@/own.log\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char logp[128];
	CU_ASSERT_EQUAL_FATAL(mkfifo(path_in(logp, sizeof logp, b->dir, "own.log"), 0600), 0);
	uint64_t t0 = harness_now();
	expect_refused(b, "not a regular file");
	CU_ASSERT(harness_now() - t0 < T);
}

/* As root, a log file another user owns is refused (they could have made
 * it a hard link, or may rewrite it under us). */
static void test_log_other_owner(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "  (not root: the owner rule does not apply; case skipped)\n");
		return;
	}
	struct harness_broker *b = harness_broker_new("log @DIR@/own.log\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char logp[128];
	path_in(logp, sizeof logp, b->dir, "own.log");
	CU_ASSERT_EQUAL_FATAL(harness_write_file(logp, VICTIM), 0);
	CU_ASSERT_EQUAL_FATAL(chown(logp, 65534, 65534), 0);
	expect_refused(b, "owned by uid 65534");
	CU_ASSERT(victim_intact(logp));
	/* owned by us: appended to */
	CU_ASSERT_EQUAL_FATAL(chown(logp, 0, 0), 0);
	CU_ASSERT_EQUAL_FATAL(start_own_log(b), 0);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	char *s = harness_read_file(logp, NULL);
	CU_ASSERT(s && strncmp(s, VICTIM, strlen(VICTIM)) == 0 && strstr(s, "ready"));
	free(s);
}

/* logrotate moved the log, and someone put a link at its name before the
 * HUP: the reopen refuses it and the log stays in the moved file. */
static void test_hup_symlink(void)
{
	struct harness_broker *b = harness_broker_new("log @DIR@/own.log\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char victim[128], logp[128], moved[128];
	CU_ASSERT_EQUAL_FATAL(victim_new(b->dir, victim, sizeof victim), 0);
	path_in(logp, sizeof logp, b->dir, "own.log");
	path_in(moved, sizeof moved, b->dir, "own.log.1");
	CU_ASSERT_EQUAL_FATAL(start_own_log(b), 0);
	CU_ASSERT_EQUAL_FATAL(rename(logp, moved), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(victim, logp), 0);
	CU_ASSERT_EQUAL(kill(b->pid, SIGHUP), 0);
	uint64_t deadline = harness_now() + T;
	char *text = NULL;
	while (harness_now() < deadline) {
		free(text);
		text = harness_read_file(moved, NULL);
		if (text && strstr(text, "cannot reopen"))
			break;
		harness_sleep(20);
	}
	CU_ASSERT(text && strstr(text, "cannot reopen") && strstr(text, "symbolic link"));
	free(text);
	CU_ASSERT(victim_intact(victim));
	CU_ASSERT(serves(b, "after-hup"));

	/* with the link gone, the next HUP opens a fresh file */
	CU_ASSERT_EQUAL_FATAL(unlink(logp), 0);
	CU_ASSERT_EQUAL(kill(b->pid, SIGHUP), 0);
	deadline = harness_now() + T;
	while (access(logp, F_OK) < 0 && harness_now() < deadline)
		harness_sleep(20);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	text = harness_read_file(logp, NULL);
	CU_ASSERT(text && strstr(text, "log reopened"));
	free(text);
	CU_ASSERT(victim_intact(victim));
}

/* ---- the socket's folder ---- */

static void test_socket_folder_symlink(void)
{
	struct harness_broker *b = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char real[128], lnk[128], url[200], inside[160];
	CU_ASSERT_EQUAL_FATAL(mkdir(path_in(real, sizeof real, b->dir, "real"), 0755), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(real, path_in(lnk, sizeof lnk, b->dir, "link")), 0);
	snprintf(url, sizeof url, "unix://%s/ipcbus.sock", lnk);
	harness_broker_set_url(b, url);
	expect_refused(b, "is a symbolic link");
	snprintf(inside, sizeof inside, "%s/ipcbus.sock", real);
	CU_ASSERT_EQUAL(access(inside, F_OK), -1);
	struct stat st;
	CU_ASSERT_EQUAL(stat(real, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0755); /* not chmod-ed through the link */

	/* the real path is fine */
	snprintf(url, sizeof url, "unix://%s", inside);
	harness_broker_set_url(b, url);
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	CU_ASSERT(serves(b, "real-path"));
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

/* A link higher up is followed only when root or we own it (/var/run ->
 * /run); one another user made is refused.  Needs root for lchown. */
static void test_socket_parent_symlink(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "  (not root: cannot make another user's link; case skipped)\n");
		return;
	}
	struct harness_broker *b = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char real[128], sub[160], theirs[128], mine[128], url[200], inside[200];
	CU_ASSERT_EQUAL_FATAL(mkdir(path_in(real, sizeof real, b->dir, "real"), 0755), 0);
	snprintf(sub, sizeof sub, "%s/sub", real);
	CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0700), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(real, path_in(theirs, sizeof theirs, b->dir, "theirs")), 0);
	CU_ASSERT_EQUAL_FATAL(lchown(theirs, 65534, 65534), 0);
	snprintf(url, sizeof url, "unix://%s/sub/ipcbus.sock", theirs);
	harness_broker_set_url(b, url);
	expect_refused(b, "owned by uid 65534");
	snprintf(inside, sizeof inside, "%s/ipcbus.sock", sub);
	CU_ASSERT_EQUAL(access(inside, F_OK), -1);

	CU_ASSERT_EQUAL_FATAL(symlink(real, path_in(mine, sizeof mine, b->dir, "mine")), 0);
	snprintf(url, sizeof url, "unix://%s/sub/ipcbus.sock", mine);
	harness_broker_set_url(b, url);
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	CU_ASSERT_EQUAL(access(inside, F_OK), 0);
	CU_ASSERT(serves(b, "through-own-link"));
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(access(inside, F_OK), -1);
}

/* Run ipcbusd (no arguments: the default socket) as uid/gid 65534 with
 * XDG_RUNTIME_DIR=xdg, stderr to errpath.  The pid (tracked), or -1. */
static pid_t run_as_nobody(const char *xdg, const char *errpath)
{
	pid_t pid = harness_fork(30);
	if (pid != 0)
		return pid;
	int fd = open(errpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (fd < 0 || dup2(fd, 2) < 0 || setgroups(0, NULL) < 0 || setgid(65534) < 0 ||
	    setuid(65534) < 0 || setenv("XDG_RUNTIME_DIR", xdg, 1) < 0)
		_exit(126);
	char *argv[] = {(char *)harness_ipcbusd(), NULL};
	execv(argv[0], argv);
	_exit(127);
}

/* The default folder $XDG_RUNTIME_DIR/ipcbus of a user's broker is a link
 * (to a folder of that user's, so the owner and mode checks alone pass):
 * refused.  Needs root, to become another user. */
static void test_default_folder_symlink(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "  (not root: cannot run the broker as another user; case skipped)\n");
		return;
	}
	const char *dir = harness_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_EQUAL_FATAL(chmod(dir, 0711), 0);
	char xdg[128], elsewhere[128], lnk[160], errp[128], sock[192];
	path_in(xdg, sizeof xdg, dir, "xdg");
	path_in(elsewhere, sizeof elsewhere, dir, "elsewhere");
	path_in(errp, sizeof errp, dir, "stderr");
	snprintf(lnk, sizeof lnk, "%s/ipcbus", xdg);
	snprintf(sock, sizeof sock, "%s/ipcbus.sock", lnk);
	CU_ASSERT_EQUAL_FATAL(mkdir(xdg, 0700), 0);
	CU_ASSERT_EQUAL_FATAL(mkdir(elsewhere, 0700), 0);
	CU_ASSERT_EQUAL_FATAL(chown(xdg, 65534, 65534), 0);
	CU_ASSERT_EQUAL_FATAL(chown(elsewhere, 65534, 65534), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(elsewhere, lnk), 0);
	CU_ASSERT_EQUAL_FATAL(lchown(lnk, 65534, 65534), 0);

	pid_t pid = run_as_nobody(xdg, errp);
	CU_ASSERT_FATAL(pid > 0);
	int st = harness_wait_pid(pid, 2000); /* refused at once */
	if (st < 0) {
		kill(pid, SIGTERM); /* it started: stop it before the next one */
		harness_wait_pid(pid, T);
	}
	if (st == 126 || st == 127) {
		fprintf(stderr, "  (cannot run the broker as uid 65534: %d; case skipped)\n", st);
		return;
	}
	CU_ASSERT_EQUAL(st, 1);
	char *text = harness_read_file(errp, NULL);
	CU_ASSERT(text && strstr(text, "is a symbolic link"));
	free(text);
	char inside[192];
	snprintf(inside, sizeof inside, "%s/ipcbus.sock", elsewhere);
	CU_ASSERT_EQUAL(access(inside, F_OK), -1);

	/* without the link: the folder is made 0700 and the socket works */
	CU_ASSERT_EQUAL_FATAL(unlink(lnk), 0);
	pid = run_as_nobody(xdg, errp);
	CU_ASSERT_FATAL(pid > 0);
	uint64_t deadline = harness_now() + T;
	while (harness_can_connect(sock) < 0 && harness_now() < deadline)
		harness_sleep(10);
	CU_ASSERT_EQUAL(harness_can_connect(sock), 0);
	struct stat sb;
	CU_ASSERT_EQUAL(lstat(lnk, &sb), 0);
	CU_ASSERT(S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700 && sb.st_uid == 65534);
	kill(pid, SIGTERM);
	CU_ASSERT_EQUAL(harness_wait_pid(pid, T), 0);
	CU_ASSERT_EQUAL(access(sock, F_OK), -1);
}

/* ---- signals ---- */

/* How many times needle is in the broker's stderr. */
static int log_count(const struct harness_broker *b, const char *needle)
{
	char *s = harness_read_file(b->log, NULL);
	int n = 0;
	for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(s);
	return n;
}

/* Publish on an invalid channel (a recoverable ERR, logged at debug) and
 * wait for its answer. */
static int bad_pub(struct harness_raw *r)
{
	static uint64_t id = 100;
	if (harness_raw_pub(r, ++id, "bad..channel", NULL, "x", 1) < 0)
		return 0;
	return harness_raw_expect_err(r, IPCBUS__ERR_CODE__E_INVALID_CHANNEL, id, T);
}

static void test_usr1_usr2(void)
{
	UP(b, "pidfile @DIR@/ipcbusd.pid\n");
	struct harness_raw *r = harness_raw_open(b, "watcher");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(harness_raw_sub(r, 1, 7, "a.b", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(r, T, NULL, NULL), 1);

	CU_ASSERT_EQUAL(kill(b->pid, SIGUSR1), 0);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "status: 1 connection(s)", T), 0);
	CU_ASSERT(harness_broker_log_has(b, "1 subscription(s)"));
	CU_ASSERT(harness_broker_log_has(b, "0 byte(s) pending"));
	CU_ASSERT(serves(b, "after-usr1"));
	CU_ASSERT_EQUAL(harness_raw_barrier(r, T, NULL, NULL), 1);

	/* USR2: debug on (a refused frame is logged), again: off */
	CU_ASSERT(bad_pub(r));
	CU_ASSERT_EQUAL(log_count(b, "refused: "), 0);
	CU_ASSERT_EQUAL(kill(b->pid, SIGUSR2), 0);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "debug logging on", T), 0);
	CU_ASSERT(bad_pub(r));
	CU_ASSERT_EQUAL(log_count(b, "refused: "), 1);
	CU_ASSERT_EQUAL(kill(b->pid, SIGUSR2), 0);
	CU_ASSERT_EQUAL(harness_broker_wait_log(b, "debug logging off", T), 0);
	CU_ASSERT(bad_pub(r));
	CU_ASSERT_EQUAL(log_count(b, "refused: "), 1);
	CU_ASSERT(serves(b, "after-usr2"));

	/* and TERM still stops it cleanly */
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
	CU_ASSERT_EQUAL(access(b->sock, F_OK), -1);
	CU_ASSERT_EQUAL(access(b->pidfile, F_OK), -1);
	CU_ASSERT(harness_raw_wait_closed(r, T));
}

static void test_quit(void)
{
	UP(b, "pidfile @DIR@/ipcbusd.pid\n");
	CU_ASSERT_EQUAL(access(b->pidfile, F_OK), 0);
	CU_ASSERT_EQUAL(kill(b->pid, SIGQUIT), 0);
	CU_ASSERT_EQUAL(harness_wait_pid(b->pid, T), 0);
	b->pid = 0;
	CU_ASSERT(harness_broker_log_has(b, "stopping"));
	CU_ASSERT_EQUAL(access(b->sock, F_OK), -1);
	CU_ASSERT_EQUAL(access(b->pidfile, F_OK), -1);
}

/* ---- refusals over max-connections ---- */

/* The sum of K over the "refused K connection(s)" lines of the log. */
static unsigned long refused_logged(const struct harness_broker *b)
{
	char *s = harness_read_file(b->log, NULL);
	unsigned long sum = 0;
	for (const char *p = s; p && (p = strstr(p, "refused ")); p += 8) {
		char *end;
		unsigned long k = strtoul(p + 8, &end, 10);
		if (end != p + 8 && strncmp(end, " connection(s)", 14) == 0)
			sum += k;
	}
	free(s);
	return sum;
}

/* Voluntary context switches of the broker's main thread, or -1. */
static long ctxt_switches(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	char *s = harness_read_file(path, NULL);
	const char *p = s ? strstr(s, "\nvoluntary_ctxt_switches:") : NULL;
	long n = p ? strtol(p + 25, NULL, 10) : -1;
	free(s);
	return n;
}

static void test_refused_burst(void)
{
	enum { N = 6 };
	UP(b, "max-connections 1\n");
	/* the harness's own probe of the socket may still hold the one place */
	struct harness_raw *held = NULL;
	uint64_t deadline = harness_now() + T;
	while (!held && harness_now() < deadline) {
		held = harness_raw_open(b, "held");
		if (!held)
			harness_sleep(20);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(held);
	/* and its refusals, if any, are logged by now or soon: start counting
	 * from what the log says after they are */
	harness_sleep(1100);
	unsigned long base = refused_logged(b);
	struct harness_raw *c[N];
	for (int i = 0; i < N; i++) {
		c[i] = harness_raw_connect(b->sock);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c[i]);
	}
	for (int i = 0; i < N; i++) {
		CU_ASSERT(harness_raw_expect_err(c[i], IPCBUS__ERR_CODE__E_MAX_CONNECTIONS,
						 UINT64_MAX, T));
		CU_ASSERT(harness_raw_wait_closed(c[i], T));
	}
	uint64_t t0 = harness_now();
	while (refused_logged(b) < base + N && harness_now() - t0 < 2500)
		harness_sleep(20);
	CU_ASSERT_EQUAL(refused_logged(b), base + N);
	fprintf(stderr, "  %lu of %d refusals logged %llu ms after the burst\n",
		refused_logged(b) - base, N, (unsigned long long)(harness_now() - t0));
	CU_ASSERT(harness_now() - t0 < 2500);
	CU_ASSERT(harness_raw_barrier(held, T, NULL, NULL) == 1);

	/* then nothing more to say: with nobody connected, the broker sleeps */
	harness_raw_close(held);
	harness_sleep(2000); /* the keepalive tick's last round */
	long before = ctxt_switches(b->pid);
	harness_sleep(1200);
	long after = ctxt_switches(b->pid);
	CU_ASSERT(before >= 0);
	CU_ASSERT_EQUAL(after, before);
	CU_ASSERT_EQUAL(refused_logged(b), base + N);
	CU_ASSERT_EQUAL(harness_broker_stop(b), 0);
}

static const struct harness_case cases[] = {
	{"pidfile_tmp_symlink", test_pidfile_tmp_symlink},
	{"pidfile_only_ours", test_pidfile_only_ours},
	{"log_symlink", test_log_symlink},
	{"log_hard_link", test_log_hard_link},
	{"log_fifo", test_log_fifo},
	{"log_other_owner", test_log_other_owner},
	{"hup_symlink", test_hup_symlink},
	{"socket_folder_symlink", test_socket_folder_symlink},
	{"socket_parent_symlink", test_socket_parent_symlink},
	{"default_folder_symlink", test_default_folder_symlink},
	{"usr1_usr2", test_usr1_usr2},
	{"quit", test_quit},
	{"refused_burst", test_refused_burst},
};

int main(int argc, char **argv)
{
	return harness_main("daemon", cases, HARNESS_NELEM(cases), 0, 90, argc, argv);
}
