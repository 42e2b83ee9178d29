/*
 * test_defpath.c: the library refuses a default socket that is not the
 * user's own.
 *
 * Without XDG_RUNTIME_DIR (cron, su, services) a client's default socket is
 * /tmp/ipcbus-UID/ipcbus.sock, a name any local user can take first: a
 * broker served from there would read everything the real user publishes.
 * Two halves:
 *   - the check itself (client/defpath.c, compiled in) over folders and
 *     sockets made for the purpose, with the uid it checks for given by the
 *     test: a matrix of owners, modes, symbolic links and file types;
 *   - the attack itself, end to end: the tests run as root, so a child
 *     drops to an unprivileged uid (65534, or another whose /tmp/ipcbus-UID
 *     does not exist) with XDG_RUNTIME_DIR unset, while root plays the
 *     attacker: /tmp/ipcbus-UID made first (mode 0777, or root's own), a
 *     broker there with a 0666 socket and a subscriber to `secret.>`.  The
 *     child's ipcbus_connect(NULL) and `ipcbus pub secret.db password=...`
 *     must refuse, naming the path, and the attacker must get nothing; once
 *     the folder and the socket are the user's, both go through.  The same
 *     for $XDG_RUNTIME_DIR/ipcbus.
 * /tmp/ipcbus-UID is claimed with mkdir(), so it is removed only when this
 * program made it; when no candidate uid is free, or the program does not
 * run as root, it is skipped (77).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "defpath.h"
#include "harness.h"
#include "ipcbus.h"

#define T 5000
#define U 1234 /* the uid the matrix checks for */

static const uid_t test_uids[] = {65534, 65533, 65532, 65531, 65530, 60999, 60998, 60997};
static int test_skipped; /* a case found no way to set up safely */

/* ---- making files ---- */

/* A socket file at path (bound, then closed: nobody listens), owned by
 * owner.  0 or -errno. */
static int make_sock(const char *path, uid_t owner)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc = 0;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chown(path, owner, owner) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int make_dir(const char *path, uid_t owner, mode_t mode)
{
	if (mkdir(path, 0700) < 0 || chown(path, owner, owner) < 0 || chmod(path, mode) < 0)
		return -errno;
	return 0;
}

/* ---- the check, uid given ---- */

/* defpath_check() on dir/name: its code, and why it said so in why. */
static int check(const char *dir, const char *name, uid_t uid, int system, char *why, size_t n)
{
	char sock[256];

	snprintf(sock, sizeof sock, "%s/%s", dir, name);
	why[0] = 0;
	return defpath_check(sock, uid, system, why, n);
}

/* rc is want, and why holds needle (NULL: anything). */
static void expect_at(int line, int rc, int want, const char *why, const char *needle)
{
	if (rc != want) {
		fprintf(stderr, "\n  line %d: %d (%s), wanted %d", line, rc, why, want);
		CU_FAIL("defpath_check() said otherwise");
	}
	if (needle && !strstr(why, needle)) {
		fprintf(stderr, "\n  line %d: why \"%s\", wanted \"%s\"", line, why, needle);
		CU_FAIL("the reason does not say it");
	}
}

#define EXPECT(rc, want, why, needle) expect_at(__LINE__, rc, want, why, needle)

static void test_check_matrix(void)
{
	const char *base = harness_tmpdir(); /* root's, 0700: a fine parent */
	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	char d[200], p[200], s[260], why[512];
	int rc;

	/* the user's folder (0700 or 0755) and socket: accepted */
	snprintf(d, sizeof d, "%s/good", base);
	CU_ASSERT_EQUAL_FATAL(make_dir(d, U, 0700), 0);
	snprintf(s, sizeof s, "%s/ipcbus.sock", d);
	CU_ASSERT_EQUAL_FATAL(make_sock(s, U), 0);
	rc = check(d, "ipcbus.sock", U, 0, why, sizeof why);
	EXPECT(rc, 0, why, NULL);
	CU_ASSERT_EQUAL(why[0], 0); /* written only on failure */
	CU_ASSERT_EQUAL(chmod(d, 0755), 0);
	EXPECT(check(d, "ipcbus.sock", U, 0, why, sizeof why), 0, why, NULL);
	/* nothing there: not refused, connect() will say so */
	EXPECT(check(d, "none.sock", U, 0, why, sizeof why), 0, why, NULL);
	EXPECT(check(base, "nofolder/ipcbus.sock", U, 0, why, sizeof why), 0, why, NULL);
	/* someone else's user */
	rc = check(d, "ipcbus.sock", U + 1, 0, why, sizeof why);
	EXPECT(rc, IPCBUS_EUNSAFE, why, "belongs to uid 1234");
	EXPECT(rc, IPCBUS_EUNSAFE, why, d);

	/* writable by others or the group, sticky or not */
	static const mode_t loose[] = {0777, 0770, 0730, 0702, 01777};
	for (size_t i = 0; i < HARNESS_NELEM(loose); i++) {
		CU_ASSERT_EQUAL(chmod(d, loose[i]), 0);
		rc = check(d, "ipcbus.sock", U, 0, why, sizeof why);
		EXPECT(rc, IPCBUS_EUNSAFE, why, "writable");
	}
	CU_ASSERT_EQUAL(chmod(d, 0700), 0);

	/* a folder of root's: the system broker's may be, the user's not */
	snprintf(p, sizeof p, "%s/rootdir", base);
	CU_ASSERT_EQUAL_FATAL(make_dir(p, 0, 0755), 0);
	snprintf(s, sizeof s, "%s/ipcbus.sock", p);
	CU_ASSERT_EQUAL_FATAL(make_sock(s, 0), 0);
	rc = check(p, "ipcbus.sock", U, 0, why, sizeof why);
	EXPECT(rc, IPCBUS_EUNSAFE, why, "belongs to uid 0");
	EXPECT(check(p, "ipcbus.sock", U, 1, why, sizeof why), 0, why, NULL);
	EXPECT(check(p, "ipcbus.sock", 0, 1, why, sizeof why), 0, why, NULL);
	/* the system broker's socket in a folder of another user */
	snprintf(p, sizeof p, "%s/otherdir", base);
	CU_ASSERT_EQUAL_FATAL(make_dir(p, U + 7, 0755), 0);
	snprintf(s, sizeof s, "%s/ipcbus.sock", p);
	CU_ASSERT_EQUAL_FATAL(make_sock(s, 0), 0);
	rc = check(p, "ipcbus.sock", U, 1, why, sizeof why);
	EXPECT(rc, IPCBUS_EUNSAFE, why, "belongs to uid 1241, not to root or uid 1234");
	CU_ASSERT_EQUAL(chmod(p, 0775), 0);
	EXPECT(check(p, "ipcbus.sock", U + 7, 1, why, sizeof why), IPCBUS_EUNSAFE, why,
	       "writable by its group");

	/* the folder is a symbolic link, even to a good folder */
	snprintf(p, sizeof p, "%s/link", base);
	CU_ASSERT_EQUAL_FATAL(symlink(d, p), 0);
	CU_ASSERT_EQUAL(lchown(p, U, U), 0);
	rc = check(p, "ipcbus.sock", U, 0, why, sizeof why);
	EXPECT(rc, IPCBUS_EUNSAFE, why, "symbolic link");

	/* not a folder */
	snprintf(p, sizeof p, "%s/file", base);
	CU_ASSERT_EQUAL_FATAL(harness_write_file(p, "x"), 0);
	CU_ASSERT_EQUAL(chown(p, U, U), 0);
	EXPECT(check(p, "ipcbus.sock", U, 0, why, sizeof why), IPCBUS_EUNSAFE, why,
	       "not a folder");

	/* in the user's folder: a socket of root's, a link to the good
	 * socket, a regular file */
	snprintf(s, sizeof s, "%s/root.sock", d);
	CU_ASSERT_EQUAL_FATAL(make_sock(s, 0), 0);
	rc = check(d, "root.sock", U, 0, why, sizeof why);
	EXPECT(rc, IPCBUS_EUNSAFE, why, "socket");
	EXPECT(rc, IPCBUS_EUNSAFE, why, "belongs to uid 0");
	EXPECT(check(d, "root.sock", U, 1, why, sizeof why), 0, why, NULL);
	snprintf(s, sizeof s, "%s/link.sock", d);
	CU_ASSERT_EQUAL_FATAL(symlink("ipcbus.sock", s), 0);
	CU_ASSERT_EQUAL(lchown(s, U, U), 0);
	EXPECT(check(d, "link.sock", U, 0, why, sizeof why), IPCBUS_EUNSAFE, why,
	       "symbolic link");
	snprintf(s, sizeof s, "%s/file.sock", d);
	CU_ASSERT_EQUAL_FATAL(harness_write_file(s, ""), 0);
	CU_ASSERT_EQUAL(chown(s, U, U), 0);
	EXPECT(check(d, "file.sock", U, 0, why, sizeof why), IPCBUS_EUNSAFE, why,
	       "not a socket");

	/* the parent: others could rename the folder away unless it is
	 * sticky (/tmp) or only root and the user may write to it */
	snprintf(p, sizeof p, "%s/parent", base);
	CU_ASSERT_EQUAL_FATAL(make_dir(p, 0, 0777), 0);
	snprintf(d, sizeof d, "%s/parent/ipcbus", base);
	CU_ASSERT_EQUAL_FATAL(make_dir(d, U, 0700), 0);
	snprintf(s, sizeof s, "%s/ipcbus.sock", d);
	CU_ASSERT_EQUAL_FATAL(make_sock(s, U), 0);
	rc = check(d, "ipcbus.sock", U, 0, why, sizeof why);
	EXPECT(rc, IPCBUS_EUNSAFE, why, "not sticky");
	EXPECT(rc, IPCBUS_EUNSAFE, why, p);
	CU_ASSERT_EQUAL(chmod(p, 01777), 0);
	EXPECT(check(d, "ipcbus.sock", U, 0, why, sizeof why), 0, why, NULL);
	CU_ASSERT_EQUAL(chmod(p, 0700), 0);
	CU_ASSERT_EQUAL(chown(p, U, U), 0); /* the user's own ($XDG_RUNTIME_DIR) */
	EXPECT(check(d, "ipcbus.sock", U, 0, why, sizeof why), 0, why, NULL);
	CU_ASSERT_EQUAL(chown(p, U + 1, U + 1), 0);
	EXPECT(check(d, "ipcbus.sock", U, 0, why, sizeof why), IPCBUS_EUNSAFE, why,
	       "belongs to uid 1235");

	/* a reason that does not fit is cut, still a string */
	char tiny[8];
	memset(tiny, 'x', sizeof tiny);
	CU_ASSERT_EQUAL(check(d, "ipcbus.sock", U, 0, tiny, sizeof tiny), IPCBUS_EUNSAFE);
	CU_ASSERT_EQUAL(tiny[sizeof tiny - 1], 0);
}

/* ---- the attack, end to end ---- */

struct claim {
	uid_t uid;
	char dir[64]; /* /tmp/ipcbus-UID, made by us */
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void claim_release(void *arg)
{
	struct claim *c = arg;
	if (c->dir[0] && nftw(c->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS) < 0)
		fprintf(stderr, "\n  cannot remove %s: %s\n", c->dir, strerror(errno));
	c->dir[0] = 0;
}

/* Claim /tmp/ipcbus-UID for a uid whose folder does not exist yet: made by
 * mkdir() here, so that it is ours to remove (and a concurrent run takes
 * another uid).  0, or -1 when every candidate is taken. */
static int claim(struct claim *c)
{
	static struct claim held;

	for (size_t i = 0; i < HARNESS_NELEM(test_uids); i++) {
		snprintf(held.dir, sizeof held.dir, "/tmp/ipcbus-%u", (unsigned)test_uids[i]);
		if (mkdir(held.dir, 0700) == 0) {
			held.uid = test_uids[i];
			harness_defer(claim_release, &held);
			*c = held;
			return 0;
		}
	}
	held.dir[0] = 0;
	return -1;
}

/* What a child running as the user saw. */
struct seen {
	int rc;        /* of ipcbus_connect(), or of the publish and flush */
	int connected; /* ipcbus_connect() succeeded */
	int events;    /* IPCBUS_EV_CONNECT_FAILED calls */
	char url[256];
	char text[512]; /* its text */
};

static void child_ev(void *arg, int event, int err, const char *text)
{
	struct seen *s = arg;
	(void)err;
	if (event != IPCBUS_EV_CONNECT_FAILED)
		return;
	s->events++;
	snprintf(s->text, sizeof s->text, "%s", text);
}

/* In a child: become uid (no groups), set XDG_RUNTIME_DIR to xdg (NULL:
 * unset), no IPCBUS_URL.  0 or -1. */
static int child_become(uid_t uid, const char *xdg)
{
	if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
		return -1;
	if (getuid() != uid || geteuid() != uid)
		return -1;
	unsetenv("IPCBUS_URL");
	if (xdg)
		setenv("XDG_RUNTIME_DIR", xdg, 1);
	else
		unsetenv("XDG_RUNTIME_DIR");
	return 0;
}

/* Connect as uid with url NULL and, when that works, publish the secret
 * and flush.  0 and *s, or -1 when the child could not run. */
static int lib_as(uid_t uid, const char *xdg, struct seen *s)
{
	int pfd[2];

	memset(s, 0, sizeof *s);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = harness_fork(10);
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		struct seen r = {0};
		ipcbus_opts o = IPCBUS_OPTS_INIT;
		ipcbus *c = NULL;
		close(pfd[0]);
		if (child_become(uid, xdg) < 0)
			_exit(99);
		o.on_event = child_ev;
		o.event_arg = &r;
		o.connect_timeout_ms = 2000;
		o.no_reconnect = 1;
		r.rc = ipcbus_connect(&c, NULL, &o);
		if (r.rc == 0) {
			r.connected = 1;
			snprintf(r.url, sizeof r.url, "%s", ipcbus_url(c));
			r.rc = ipcbus_publish(c, "secret.db", "password=hunter2", 16);
			if (r.rc == 0)
				r.rc = ipcbus_flush(c, 2000);
			ipcbus_close(c);
		}
		_exit(write(pfd[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 98);
	}
	close(pfd[1]);
	struct pollfd p = {.fd = pfd[0], .events = POLLIN};
	ssize_t n = -1;
	if (poll(&p, 1, T) == 1)
		n = read(pfd[0], s, sizeof *s);
	close(pfd[0]);
	int st = harness_wait_pid(pid, T);
	return n == (ssize_t)sizeof *s && st == 0 ? 0 : -1;
}

/* Run the CLI as uid with args (NULL-ended, at most 8): its exit status
 * (127: it could not be run) and its output (stdout and stderr) in *out,
 * which the caller frees. */
static int cli_as(uid_t uid, const char *xdg, char **out, const char *const *args)
{
	const char *dir = harness_tmpdir(); /* root's: the user cannot touch it */
	char path[128];
	char *argv[10];
	size_t k = 0;

	*out = NULL;
	if (!dir)
		return -1;
	snprintf(path, sizeof path, "%s/out", dir);
	argv[k++] = (char *)getenv("IPCBUS_CLI");
	for (size_t i = 0; args[i] && k < 9; i++)
		argv[k++] = (char *)args[i];
	argv[k] = NULL;
	pid_t pid = harness_fork(10);
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_RDONLY);
		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(99);
		if (child_become(uid, xdg) < 0)
			_exit(99);
		execv(argv[0], argv);
		_exit(127);
	}
	int st = harness_wait_pid(pid, T);
	*out = harness_read_file(path, NULL);
	if (!*out)
		*out = strdup("");
	return st;
}

/* 1 when the subscriber r got a MSG within ms. */
static int got_msg(struct harness_raw *r, int ms)
{
	uint64_t end = harness_now() + (uint64_t)ms;
	while (harness_now() < end) {
		int k = harness_raw_read(r, (int)(end - harness_now()));
		if (k != 1)
			return 0;
		if (r->f.type == IPCBUS__FRAME_TYPE__MSG)
			return 1;
	}
	return 0;
}

/* The child refuses: ipcbus_connect() with IPCBUS_EUNSAFE and a text that
 * names where and says why, and the CLI exits 1 saying the same. */
static void expect_refused(uid_t uid, const char *xdg, const char *where, const char *reason,
			   struct harness_raw *attacker)
{
	struct seen s;
	char *out = NULL;

	CU_ASSERT_EQUAL_FATAL(lib_as(uid, xdg, &s), 0);
	CU_ASSERT_EQUAL(s.rc, IPCBUS_EUNSAFE);
	CU_ASSERT_EQUAL(s.connected, 0);
	CU_ASSERT_EQUAL(s.events, 1);
	if (!strstr(s.text, where) || !strstr(s.text, reason)) {
		fprintf(stderr, "\n  library: %s (%s)\n  wanted: %s, %s\n", ipcbus_strerror(s.rc),
			s.text, where, reason);
		CU_FAIL("the library's reason does not name the path and the reason");
	}
	const char *const args[] = {"pub", "secret.db", "password=hunter2", NULL};
	int st = cli_as(uid, xdg, &out, args);
	if (st == 127) {
		fprintf(stderr, "\n  (the CLI cannot be run as uid %u: not checked)\n", (unsigned)uid);
	} else {
		CU_ASSERT_EQUAL(st, 1);
		if (!out || !strstr(out, where) || !strstr(out, reason) || !strstr(out, "refusing")) {
			fprintf(stderr, "\n  CLI exit %d: %s\n  wanted: %s, %s\n", st, out ? out : "",
				where, reason);
			CU_FAIL("the CLI does not name the path and the reason");
		}
	}
	free(out);
	if (attacker)
		CU_ASSERT_EQUAL(got_msg(attacker, 300), 0);
}

static void test_squatted_tmp(void)
{
	struct claim c;
	struct seen s;
	char *out = NULL;

	if (claim(&c) < 0) {
		fprintf(stderr, "\n  every /tmp/ipcbus-UID candidate exists already: skipped\n");
		test_skipped = 1;
		return;
	}
	/* the attacker: the folder first, world-writable, and a broker in it
	 * that anybody may connect to, with a subscriber to the secrets */
	CU_ASSERT_EQUAL_FATAL(chmod(c.dir, 0777), 0);
	struct harness_broker *b = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char url[128];
	snprintf(url, sizeof url, "unix://%s/ipcbus.sock?mode=0666", c.dir);
	harness_broker_set_url(b, url);
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	struct harness_raw *attacker = harness_raw_open(b, "attacker");
	CU_ASSERT_PTR_NOT_NULL_FATAL(attacker);
	CU_ASSERT_EQUAL(harness_raw_sub(attacker, 1, 1, "secret.>", NULL), 0);
	CU_ASSERT_EQUAL(harness_raw_barrier(attacker, T, NULL, NULL), 1);

	expect_refused(c.uid, NULL, c.dir, "belongs to uid 0", attacker);
	/* root's, not writable: still not the user's */
	CU_ASSERT_EQUAL(chmod(c.dir, 0755), 0);
	expect_refused(c.uid, NULL, c.dir, "belongs to uid 0", attacker);
	/* the user's, but open to all: anyone may have put the socket there */
	CU_ASSERT_EQUAL(chown(c.dir, c.uid, c.uid), 0);
	CU_ASSERT_EQUAL(chmod(c.dir, 0777), 0);
	expect_refused(c.uid, NULL, c.dir, "writable by others", attacker);
	/* the user's folder, with root's socket in it */
	CU_ASSERT_EQUAL(chmod(c.dir, 0700), 0);
	expect_refused(c.uid, NULL, "ipcbus.sock", "belongs to uid 0", attacker);

	/* the user's folder and socket: the user's own broker, accepted */
	CU_ASSERT_EQUAL_FATAL(chown(b->sock, c.uid, c.uid), 0);
	CU_ASSERT_EQUAL_FATAL(lib_as(c.uid, NULL, &s), 0);
	CU_ASSERT_EQUAL(s.rc, 0);
	CU_ASSERT_EQUAL(s.connected, 1);
	CU_ASSERT_EQUAL(s.events, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(s.url, c.dir));
	if (s.rc != 0)
		fprintf(stderr, "\n  library: %s (%s)\n", ipcbus_strerror(s.rc), s.text);
	CU_ASSERT(got_msg(attacker, T) && harness_raw_is_msg(attacker, 1, "password=hunter2"));
	const char *const args[] = {"pub", "secret.db", "from the CLI", NULL};
	int st = cli_as(c.uid, NULL, &out, args);
	if (st != 127) {
		CU_ASSERT_EQUAL(st, 0);
		if (st != 0)
			fprintf(stderr, "\n  CLI exit %d: %s\n", st, out ? out : "");
		CU_ASSERT(got_msg(attacker, T));
	}
	free(out);
}

/* $XDG_RUNTIME_DIR/ipcbus: the same rules. */
static void test_squatted_xdg(void)
{
	struct claim c;
	struct seen s;

	/* a uid of our own, and a folder to hold its runtime folder */
	if (claim(&c) < 0) {
		fprintf(stderr, "\n  every /tmp/ipcbus-UID candidate exists already: skipped\n");
		test_skipped = 1;
		return;
	}
	/* the runtime folder is the user's; in it, a folder of root's */
	char xdg[96], dir[128], sock[160];
	snprintf(xdg, sizeof xdg, "%s/run", c.dir);
	CU_ASSERT_EQUAL_FATAL(make_dir(xdg, c.uid, 0700), 0);
	snprintf(dir, sizeof dir, "%s/ipcbus", xdg);
	CU_ASSERT_EQUAL_FATAL(make_dir(dir, 0, 0755), 0);
	snprintf(sock, sizeof sock, "%s/ipcbus.sock", dir);
	CU_ASSERT_EQUAL_FATAL(make_sock(sock, 0), 0);
	CU_ASSERT_EQUAL(chown(c.dir, c.uid, c.uid), 0);

	expect_refused(c.uid, xdg, dir, "belongs to uid 0", NULL);
	CU_ASSERT_EQUAL(chown(dir, c.uid, c.uid), 0);
	CU_ASSERT_EQUAL(chmod(dir, 0707), 0);
	expect_refused(c.uid, xdg, dir, "writable by others", NULL);
	CU_ASSERT_EQUAL(chmod(dir, 0700), 0);
	expect_refused(c.uid, xdg, sock, "belongs to uid 0", NULL);

	/* all the user's: the check passes, and connect() finds nobody
	 * listening on the socket file */
	CU_ASSERT_EQUAL(chown(sock, c.uid, c.uid), 0);
	CU_ASSERT_EQUAL_FATAL(lib_as(c.uid, xdg, &s), 0);
	CU_ASSERT_EQUAL(s.rc, -ECONNREFUSED);
	CU_ASSERT_EQUAL(s.events, 1);
}

/* An explicit URL is the caller's choice: not checked. */
static void test_explicit_url_unchecked(void)
{
	struct claim c;

	if (claim(&c) < 0) {
		fprintf(stderr, "\n  every /tmp/ipcbus-UID candidate exists already: skipped\n");
		test_skipped = 1;
		return;
	}
	CU_ASSERT_EQUAL_FATAL(chmod(c.dir, 0777), 0);
	struct harness_broker *b = harness_broker_new("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char url[128];
	snprintf(url, sizeof url, "unix://%s/ipcbus.sock?mode=0666", c.dir);
	harness_broker_set_url(b, url);
	CU_ASSERT_EQUAL_FATAL(harness_broker_start(b, NULL), 0);
	snprintf(url, sizeof url, "unix://%s/ipcbus.sock", c.dir);
	char *out = NULL;
	const char *const args[] = {"pub", "-u", url, "chosen.x", "m", NULL};
	int st = cli_as(c.uid, NULL, &out, args);
	if (st != 127) {
		CU_ASSERT_EQUAL(st, 0);
		if (st != 0)
			fprintf(stderr, "\n  CLI exit %d: %s\n", st, out ? out : "");
	}
	free(out);
	/* IPCBUS_URL likewise, with url NULL */
	pid_t pid = harness_fork(10);
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		ipcbus *cn = NULL;
		if (child_become(c.uid, NULL) < 0)
			_exit(99);
		setenv("IPCBUS_URL", url, 1);
		int rc = ipcbus_connect(&cn, NULL, NULL);
		ipcbus_close(cn);
		_exit(rc == 0 ? 0 : 1);
	}
	CU_ASSERT_EQUAL(harness_wait_pid(pid, T), 0);
}

static const struct harness_case cases[] = {
	{"check_matrix", test_check_matrix},
	{"squatted_tmp", test_squatted_tmp},
	{"squatted_xdg", test_squatted_xdg},
	{"explicit_url_unchecked", test_explicit_url_unchecked},
};

int main(int argc, char **argv)
{
	if (geteuid() != 0) {
		fprintf(stderr, "defpath: needs root (chown, setuid): skipped\n");
		return 77;
	}
	int rc = harness_main("defpath", cases, HARNESS_NELEM(cases), 1, 60, argc, argv);
	if (rc == 0 && test_skipped)
		rc = 77;
	return rc;
}
