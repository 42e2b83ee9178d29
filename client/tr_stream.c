/*
 * tr_stream.c: reading, writing and closing a connected byte-stream socket,
 * the part every stream transport (unix, tcp) shares; a transport adds only
 * how it connects.  Non-blocking calls with MSG_NOSIGNAL: the library never
 * raises SIGPIPE in the program.
 */
#include <config.h>

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tr.h"

void tr_stream_ready(struct tr *t)
{
	t->want_read = EPOLLIN;
	t->want_write = EPOLLOUT;
}

ssize_t tr_stream_read(struct tr *t, void *p, size_t n)
{
	for (;;) {
		ssize_t k = recv(t->fd, p, n, MSG_DONTWAIT);
		if (k >= 0)
			return k;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

int tr_stream_write(struct tr *t, struct buf *out)
{
	while (buf_len(out) > 0) {
		ssize_t k = send(t->fd, buf_rptr(out), buf_len(out), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		buf_consume(out, (size_t)k);
	}
	return 0;
}

void tr_stream_close(struct tr *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
