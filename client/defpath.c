/*
 * defpath.c: the ownership check of default socket paths (defpath.h).
 *
 * Everything is checked with lstat() on the very names connect() will use,
 * so a symbolic link planted at the folder or at the socket is refused
 * instead of followed.  What is left between the check and connect() is
 * harmless once the folder is the user's and only the user (or root) may
 * change the folder and its parent: nobody else can swap either.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "defpath.h"
#include "ipcbus.h"

static int defpath_refuse(char *why, size_t n, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int defpath_refuse(char *why, size_t n, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why && n) {
		va_start(ap, fmt);
		vsnprintf(why, n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int defpath_owner_ok(uid_t owner, uid_t uid, int system)
{
	return owner == uid || (system && owner == 0);
}

/* "uid 65534" or "root or uid 65534": who may own it. */
static const char *defpath_who(uid_t uid, int system, char *buf, size_t n)
{
	if (system && uid != 0)
		snprintf(buf, n, "root or uid %u", (unsigned)uid);
	else
		snprintf(buf, n, "uid %u", (unsigned)uid);
	return buf;
}

/* Cut path at its last '/' into dir ("/" for a name at the root). */
static int defpath_dirname(const char *path, char *dir, size_t n)
{
	const char *slash = strrchr(path, '/');
	size_t len;

	if (!slash)
		return -EINVAL;
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= n)
		return -ENAMETOOLONG;
	memcpy(dir, path, len);
	dir[len] = 0;
	return 0;
}

int defpath_check(const char *sock, uid_t uid, int system, char *why, size_t n)
{
	char dir[PATH_MAX], parent[PATH_MAX], who[64];
	struct stat st;
	int rc;

	if ((rc = defpath_dirname(sock, dir, sizeof dir)) < 0 ||
	    (rc = defpath_dirname(dir, parent, sizeof parent)) < 0)
		return defpath_refuse(why, n, rc, "%s: not an absolute path", sock);

	if (lstat(dir, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		return defpath_refuse(why, n, rc, "cannot check folder %s: %s", dir, strerror(-rc));
	}
	if (S_ISLNK(st.st_mode))
		return defpath_refuse(why, n, IPCBUS_EUNSAFE,
				      "folder %s is a symbolic link (owned by uid %u)", dir,
				      (unsigned)st.st_uid);
	if (!S_ISDIR(st.st_mode))
		return defpath_refuse(why, n, IPCBUS_EUNSAFE, "%s is not a folder", dir);
	if (!defpath_owner_ok(st.st_uid, uid, system))
		return defpath_refuse(why, n, IPCBUS_EUNSAFE, "folder %s belongs to uid %u, not to %s",
				      dir, (unsigned)st.st_uid, defpath_who(uid, system, who, sizeof who));
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return defpath_refuse(why, n, IPCBUS_EUNSAFE,
				      "folder %s is writable by %s (mode %03o)", dir,
				      st.st_mode & S_IWOTH ? "others" : "its group",
				      (unsigned)(st.st_mode & 07777));

	/* the parent may be a link (/tmp -> /private/tmp): what it leads to counts */
	if (stat(parent, &st) < 0) {
		rc = -errno;
		return defpath_refuse(why, n, rc, "cannot check folder %s: %s", parent,
				      strerror(-rc));
	}
	if (!defpath_owner_ok(st.st_uid, uid, 1))
		return defpath_refuse(why, n, IPCBUS_EUNSAFE,
				      "folder %s (holding %s) belongs to uid %u, not to %s", parent,
				      dir, (unsigned)st.st_uid, defpath_who(uid, 1, who, sizeof who));
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
		return defpath_refuse(why, n, IPCBUS_EUNSAFE,
				      "folder %s (holding %s) is writable by %s and not sticky (mode %03o)",
				      parent, dir, st.st_mode & S_IWOTH ? "others" : "its group",
				      (unsigned)(st.st_mode & 07777));

	if (lstat(sock, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		return defpath_refuse(why, n, rc, "cannot check socket %s: %s", sock, strerror(-rc));
	}
	if (S_ISLNK(st.st_mode))
		return defpath_refuse(why, n, IPCBUS_EUNSAFE,
				      "socket %s is a symbolic link (owned by uid %u)", sock,
				      (unsigned)st.st_uid);
	if (!S_ISSOCK(st.st_mode))
		return defpath_refuse(why, n, IPCBUS_EUNSAFE, "%s is not a socket", sock);
	if (!defpath_owner_ok(st.st_uid, uid, system))
		return defpath_refuse(why, n, IPCBUS_EUNSAFE, "socket %s belongs to uid %u, not to %s",
				      sock, (unsigned)st.st_uid, defpath_who(uid, system, who, sizeof who));
	return 0;
}
