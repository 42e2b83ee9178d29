/*
 * tr_unix.c: the Unix-domain stream transport: addressing only (folder,
 * socket file, permissions); everything else is tr_stream.c.
 *
 * A root broker must not be steered by a user's symbolic link into making
 * its socket, or changing modes, somewhere else.  So the socket's folder is
 * never a symbolic link (it is opened with O_NOFOLLOW and checked with
 * fstat; a folder the broker creates is chmod-ed through that descriptor),
 * the folders above it may be links only when root or the broker's own
 * user owns them (as /var/run -> /run is), the socket is born with its
 * final mode (umask around bind, no chmod by path afterwards) and its group
 * is set without following a link.  See ipcbusd(8), FILES.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "conn.h"
#include "transport.h"

#define UNIX_BACKLOG 512

/* A Unix listener: the socket file it made, so only that one is removed. */
struct unix_listener {
	struct listener l;
	dev_t dev;
	ino_t ino;
};

static int unix_fail(char *err, size_t errlen, int rc, const char *fmt, const char *path)
{
	snprintf(err, errlen, fmt, path, strerror(-rc));
	return rc;
}

/* The folders above the socket's folder dir: a symbolic link among them is
 * followed only when root or we own it (a link another user made could
 * lead anywhere).  A missing folder ends the walk: mkdir says what is
 * missing. */
static int unix_parents(const char *dir, char *err, size_t errlen)
{
	char p[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;
	uid_t me = geteuid();

	snprintf(p, sizeof p, "%s", dir);
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		if (s[-1] == '/')
			continue; /* "//" */
		*s = 0;
		int rc = lstat(p, &st);
		if (rc < 0 && errno == ENOENT)
			return 0;
		if (rc < 0)
			return unix_fail(err, errlen, -errno, "%s: %s", p);
		if (S_ISLNK(st.st_mode) && st.st_uid != 0 && st.st_uid != me) {
			snprintf(err, errlen,
				 "refusing %s: a symbolic link owned by uid %u (only links owned by root or uid %u are followed)",
				 p, (unsigned)st.st_uid, (unsigned)me);
			return -EPERM;
		}
		*s = '/';
	}
	return 0;
}

/* Create the socket's folder if missing, 0700 (0755 for the system
 * broker's).  It must not be a symbolic link, whoever owns it.  The default
 * folders (DESIGN.md) are checked too: ours, and no looser than we would
 * make them. */
static int unix_folder(const char *sock, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char def[300];
	struct stat st;
	int rc, created = 0;
	uid_t me = geteuid();

	snprintf(dir, sizeof dir, "%s", sock);
	char *slash = strrchr(dir, '/');
	while (slash && slash > dir && slash[-1] == '/')
		slash--; /* "/a//b.sock" */
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	int is_default = url_default_listen(def, sizeof def) == 0 &&
			 strcmp(def + strlen("unix://"), sock) == 0;
	mode_t mode = is_default && me == 0 ? 0755 : 0700;
	if ((rc = unix_parents(dir, err, errlen)) < 0)
		return rc;
	int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = open(dir, flags);
	if (fd < 0 && errno == ENOENT) {
		/* mkdir makes a folder or fails: it never follows a link */
		if (mkdir(dir, mode) == 0)
			created = 1;
		else if (errno != EEXIST)
			return unix_fail(err, errlen, -errno, "cannot create folder %s: %s", dir);
		fd = open(dir, flags);
	}
	if (fd < 0 && errno == EACCES && !created)
		fd = open(dir, flags | O_PATH); /* searchable, not readable: fstat is enough */
	if (fd < 0) {
		rc = -errno;
		if ((rc == -ELOOP || rc == -ENOTDIR) && lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
			snprintf(err, errlen,
				 "refusing socket folder %s: it is a symbolic link (give the real path)",
				 dir);
			return -ELOOP;
		}
		return unix_fail(err, errlen, rc, "%s: %s", dir);
	}
	if (fstat(fd, &st) < 0) {
		rc = unix_fail(err, errlen, -errno, "%s: %s", dir);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = unix_fail(err, errlen, -ENOTDIR, "%s: %s", dir);
		goto out;
	}
	if (created && st.st_uid != me) {
		/* replaced between mkdir and open */
		snprintf(err, errlen, "refusing folder %s: owned by uid %u right after we made it", dir,
			 (unsigned)st.st_uid);
		rc = -EPERM;
		goto out;
	}
	if (created) {
		/* mkdir applied the umask; chmod what we opened, not a path */
		if (fchmod(fd, mode) < 0)
			rc = unix_fail(err, errlen, -errno, "chmod %s: %s", dir);
		goto out;
	}
	if (is_default && (st.st_uid != me || (st.st_mode & 0777 & ~mode))) {
		snprintf(err, errlen,
			 "refusing folder %s: owned by uid %u with mode %03o (want uid %u, mode %03o or stricter)",
			 dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777), (unsigned)me,
			 (unsigned)mode);
		rc = -EPERM;
	}
out:
	close(fd);
	return rc;
}

/* A socket file is there: remove it if nobody answers (a stale one). */
static int unix_stale(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : unix_fail(err, errlen, -errno, "%s: %s", path);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "%s: another broker is listening there", path);
		return -EADDRINUSE;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return unix_fail(err, errlen, -errno, "cannot remove stale socket %s: %s", path);
	return 0;
}

static int unix_listen(struct broker *b, const struct url *u, struct listener **out, char *err,
		       size_t errlen)
{
	struct unix_listener *ul = calloc(1, sizeof *ul);
	struct listener *l = &ul->l;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int rc;

	if (!ul)
		return -ENOMEM;
	l->fd = -1;
	l->b = b;
	l->tr = &transport_unix;
	l->url = *u;
	if ((rc = unix_folder(u->path, err, errlen)) < 0)
		goto fail;
	if ((rc = unix_stale(u->path, err, errlen)) < 0)
		goto fail;
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		rc = unix_fail(err, errlen, -errno, "socket for %s: %s", u->path);
		goto fail;
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", u->path);
	/* bind creates the file with the umask: give it its mode at birth
	 * (owner-only unless ?mode= says), so no chmod by path follows */
	mode_t want = u->has_mode ? (mode_t)u->mode : 0600;
	mode_t old = umask(~want & 0777);
	rc = bind(l->fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0) {
		rc = unix_fail(err, errlen, -errno, "bind %s: %s", u->path);
		goto fail;
	}
	if (lstat(u->path, &st) == 0) {
		ul->dev = st.st_dev;
		ul->ino = st.st_ino;
	}
	if (u->group[0]) {
		struct group *g = getgrnam(u->group);
		if (!g) {
			snprintf(err, errlen, "%s: no group named %s", u->path, u->group);
			rc = -ENOENT;
			goto fail_unlink;
		}
		if (fchownat(AT_FDCWD, u->path, (uid_t)-1, g->gr_gid, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = unix_fail(err, errlen, -errno, "chown %s: %s", u->path);
			goto fail_unlink;
		}
	}
	if (listen(l->fd, UNIX_BACKLOG) < 0) {
		rc = unix_fail(err, errlen, -errno, "listen %s: %s", u->path);
		goto fail_unlink;
	}
	if ((rc = loop_add(b->loop, &l->watch, l->fd, EPOLLIN, stream_accept, l)) < 0) {
		unix_fail(err, errlen, rc, "watch %s: %s", u->path);
		goto fail_unlink;
	}
	*out = l;
	return 0;
fail_unlink:
	unlink(u->path);
fail:
	if (l->fd >= 0)
		close(l->fd);
	free(l);
	return rc;
}

static void unix_unlisten(struct listener *l)
{
	struct stat st;

	loop_timer_cancel(l->b->loop, &l->retry);
	loop_del(l->b->loop, &l->watch);
	close(l->fd);
	/* remove the file only if it is still the one we made */
	const struct unix_listener *ul = (const struct unix_listener *)l;
	if (lstat(l->url.path, &st) == 0 && st.st_dev == ul->dev && st.st_ino == ul->ino)
		unlink(l->url.path);
}

/* Who is at the other end: SO_PEERCRED. */
static int unix_adopt(struct conn *c)
{
	struct ucred cr;
	socklen_t len = sizeof cr;

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.pid > 0) {
		c->pid = cr.pid;
		c->uid = cr.uid;
		c->gid = cr.gid;
		c->has_cred = 1;
	}
	return 0;
}

const struct transport transport_unix = {
	.scheme = "unix",
	.listen = unix_listen,
	.unlisten = unix_unlisten,
	.adopt = unix_adopt,
};
