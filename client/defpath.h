/*
 * defpath.h: may libipcbus trust a default socket path?
 *
 * Without a URL from the caller the library picks a path itself
 * ($XDG_RUNTIME_DIR/ipcbus/ipcbus.sock, /tmp/ipcbus-UID/ipcbus.sock, or the
 * system broker's /run/ipcbus/ipcbus.sock).  /tmp/ipcbus-UID in particular
 * is a name any local user can create first and serve a broker from, which
 * would then read everything the real user publishes.  Before connecting to
 * a default path conn.c asks defpath_check() whether the path is the user's
 * own.  A URL the caller gave is its own choice and is not checked.
 *
 * Kept apart from the rest of the library (no dependency but libc) so a
 * test can compile it in and call it with the uid it wants to simulate:
 * the tests run as root.
 */
#ifndef IPCBUS_DEFPATH_H
#define IPCBUS_DEFPATH_H

#include <stddef.h>
#include <sys/types.h>

/* Check the socket sock (an absolute path) for a client running as uid:
 *   - its folder is not a symbolic link (lstat), is a folder, belongs to
 *     uid (or to root when system), and is not writable by group or others;
 *   - the folder's parent belongs to uid or root and is not writable by
 *     group or others unless it is sticky (/tmp), so that nobody else can
 *     rename the folder away and put theirs in its place;
 *   - the socket is not a symbolic link (lstat), is a socket, and belongs
 *     to uid (or to root when system).
 * The socket's own mode is not checked: on a socket, write permission only
 * says who may connect (the system broker's is meant for everybody).
 * Returns 0 when the path is safe, or absent (connect() will say so);
 * IPCBUS_EUNSAFE, or -errno when the path cannot be examined, with a
 * sentence naming the path and the reason in why[0..n) (NUL-terminated;
 * written only on failure). */
int defpath_check(const char *sock, uid_t uid, int system, char *why, size_t n);

#endif
