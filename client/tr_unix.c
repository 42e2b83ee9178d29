/*
 * tr_unix.c: unix:///path, the default transport.  A local connect
 * completes at once or fails (-EAGAIN from connect(2) means the broker's
 * backlog is full, a failure here, not "in progress"), so connected() has
 * nothing to do; the rest is tr_stream.c's.  No token: the socket's
 * permissions decide who may connect.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tr.h"

static int tr_unix_connect(struct tr *t, const struct url *u, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s;

	if (strlen(u->path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, u->path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(s);
		if (e == EAGAIN) {
			/* not "in progress": the broker's backlog is full */
			if (err && errlen)
				snprintf(err, errlen, "%s: the broker's listen queue is full", u->path);
			return -ECONNREFUSED;
		}
		return -e;
	}
	t->fd = s;
	tr_stream_ready(t);
	return 0;
}

static int tr_unix_connected(struct tr *t, char *err, size_t errlen)
{
	return 0;
}

const struct tr_ops tr_unix_ops = {
	.kind = URL_UNIX,
	.flags = 0,
	.connect = tr_unix_connect,
	.connected = tr_unix_connected,
	.read = tr_stream_read,
	.write = tr_stream_write,
	.close = tr_stream_close,
};
