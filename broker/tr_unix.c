/*
 * tr_unix.c: the Unix-domain stream transport: addressing only (folder,
 * socket file, permissions); everything else is tr_stream.c.
 */
#include <config.h>

#include <errno.h>
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

static int unix_fail(char *err, size_t errlen, int rc, const char *fmt, const char *path)
{
	snprintf(err, errlen, fmt, path, strerror(-rc));
	return rc;
}

/* Create the socket's folder if missing.  The default folders (DESIGN.md)
 * are checked too: ours, and no looser than we would make them. */
static int unix_folder(const char *sock, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char def[300];
	struct stat st;

	snprintf(dir, sizeof dir, "%s", sock);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	int is_default = url_default_listen(def, sizeof def) == 0 &&
			 strcmp(def + strlen("unix://"), sock) == 0;
	mode_t mode = is_default && geteuid() == 0 ? 0755 : 0700;
	if (stat(dir, &st) < 0) {
		if (errno != ENOENT)
			return unix_fail(err, errlen, -errno, "%s: %s", dir);
		if (mkdir(dir, mode) < 0 && errno != EEXIST)
			return unix_fail(err, errlen, -errno, "cannot create folder %s: %s", dir);
		if (chmod(dir, mode) < 0)
			return unix_fail(err, errlen, -errno, "chmod %s: %s", dir);
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return unix_fail(err, errlen, -ENOTDIR, "%s: %s", dir);
	if (is_default && (st.st_uid != geteuid() || (st.st_mode & 0777 & ~mode))) {
		snprintf(err, errlen,
			 "refusing folder %s: owned by uid %u with mode %03o (want uid %u, mode %03o or stricter)",
			 dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777), (unsigned)geteuid(),
			 (unsigned)mode);
		return -EPERM;
	}
	return 0;
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
	struct listener *l = calloc(1, sizeof *l);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int rc;

	if (!l)
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
	/* bind creates the file with the umask: make it owner-only at birth */
	mode_t old = umask(0177);
	rc = bind(l->fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0) {
		rc = unix_fail(err, errlen, -errno, "bind %s: %s", u->path);
		goto fail;
	}
	if (stat(u->path, &st) == 0) {
		l->dev = st.st_dev;
		l->ino = st.st_ino;
	}
	if (u->group[0]) {
		struct group *g = getgrnam(u->group);
		if (!g) {
			snprintf(err, errlen, "%s: no group named %s", u->path, u->group);
			rc = -ENOENT;
			goto fail_unlink;
		}
		if (chown(u->path, (uid_t)-1, g->gr_gid) < 0) {
			rc = unix_fail(err, errlen, -errno, "chown %s: %s", u->path);
			goto fail_unlink;
		}
	}
	if (u->has_mode && chmod(u->path, u->mode) < 0) {
		rc = unix_fail(err, errlen, -errno, "chmod %s: %s", u->path);
		goto fail_unlink;
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
	if (stat(l->url.path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->url.path);
}

/* Who is at the other end: SO_PEERCRED. */
static void unix_peer(struct conn *c)
{
	struct ucred cr;
	socklen_t len = sizeof cr;

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.pid > 0) {
		c->pid = cr.pid;
		c->uid = cr.uid;
		c->gid = cr.gid;
		c->has_cred = 1;
	}
}

const struct transport transport_unix = {
	.scheme = "unix",
	.listen = unix_listen,
	.unlisten = unix_unlisten,
	.peer = unix_peer,
};
