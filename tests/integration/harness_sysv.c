/*
 * harness_sysv.c: the raw client's SysV medium (harness.h, struct
 * harness_rawq), written from docs/protocol.md ("SysV") and not from the
 * library, so that the conformance suite checks the broker against the
 * text: two private queues of mode 0600 and a proof message of a random
 * type in the send queue; the first bytes sent go to the broker's queue
 * as one message of type 1 (the HELLO, which harness_raw_hello() makes
 * carry Hello.sysv); everything after goes to the send queue in messages
 * of at most msgmax bytes, and the reply queue brings the broker's byte
 * stream (type 1) and its end (type 2).  Nothing here can be polled: the
 * raw client calls in with IPC_NOWAIT and sleeps a millisecond between
 * tries, within its own deadlines.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/random.h>
#include <unistd.h>

#include "harness.h"
#include "sysv.h"

struct harness_rawq {
	int shq, tx, rx;
	uint64_t proof;
	int hello_sent;
	size_t msgmax;
	struct sysv_msg *o;    /* a message being sent: msgmax bytes of text */
	struct sysv_msg *m;    /* the message last read */
	size_t in_off, in_len; /* the part of m->mtext not returned yet */
	int eof;
};

void harness_rawq_close(struct harness_rawq *q)
{
	if (!q)
		return;
	if (q->tx >= 0)
		msgctl(q->tx, IPC_RMID, NULL);
	if (q->rx >= 0)
		msgctl(q->rx, IPC_RMID, NULL);
	free(q->o);
	free(q->m);
	free(q);
}

struct harness_rawq *harness_rawq_open(long key)
{
	struct harness_rawq *q = calloc(1, sizeof *q);
	struct sysv_limits lim;
	int e;

	if (!q)
		return NULL;
	q->tx = q->rx = -1;
	sysv_limits_read(&lim);
	q->msgmax = (size_t)lim.msgmax;
	q->m = malloc(sizeof *q->m + q->msgmax);
	/* a HELLO may be SYSV_HELLO_MAX bytes whatever msgmax is */
	q->o = malloc(sizeof *q->o + (q->msgmax > SYSV_HELLO_MAX ? q->msgmax : SYSV_HELLO_MAX));
	q->shq = msgget((key_t)key, 0);
	if (!q->m || !q->o || q->shq < 0)
		goto fail;
	q->tx = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	q->rx = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (q->tx < 0 || q->rx < 0)
		goto fail;
	while (q->proof == 0) {
		if (getrandom(&q->proof, sizeof q->proof, 0) != (ssize_t)sizeof q->proof)
			goto fail;
		q->proof &= (uint64_t)LONG_MAX;
	}
	q->o->mtype = (long)q->proof;
	if (msgsnd(q->tx, q->o, 0, IPC_NOWAIT) < 0)
		goto fail;
	return q;
fail:
	e = errno == ENOENT ? ECONNREFUSED : errno;
	harness_rawq_close(q);
	errno = e;
	return NULL;
}

void harness_rawq_hello(const struct harness_rawq *q, int *reply, int *send, uint64_t *proof)
{
	*reply = q->rx;
	*send = q->tx;
	*proof = q->proof;
}

/* One message of type mtype to queue id, waiting for room until deadline. */
static int harness_rawq_put(struct harness_rawq *q, int id, long mtype, const void *p, size_t n,
			    uint64_t deadline)
{
	q->o->mtype = mtype;
	memcpy(q->o->mtext, p, n);
	while (msgsnd(id, q->o, n, IPC_NOWAIT) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EIDRM || errno == EINVAL)
			return -EPIPE; /* our queue removed: the broker closed us */
		if (errno != EAGAIN)
			return -errno;
		if (harness_now() >= deadline)
			return -ETIMEDOUT;
		harness_sleep(1);
	}
	return 0;
}

int harness_rawq_send(struct harness_rawq *q, const void *p, size_t n, uint64_t deadline)
{
	const uint8_t *s = p;

	if (!q->hello_sent) {
		/* the HELLO: one message of its own on the broker's queue */
		q->hello_sent = 1;
		if (n > SYSV_HELLO_MAX)
			return -EMSGSIZE;
		return harness_rawq_put(q, q->shq, SYSV_MT_HELLO, s, n, deadline);
	}
	while (n > 0) {
		size_t k = n < q->msgmax ? n : q->msgmax;
		int rc = harness_rawq_put(q, q->tx, SYSV_MT_DATA, s, k, deadline);
		if (rc < 0)
			return rc;
		s += k;
		n -= k;
	}
	return 0;
}

ssize_t harness_rawq_recv(struct harness_rawq *q, void *p, size_t n)
{
	if (q->in_len == 0 && !q->eof) {
		ssize_t k;
		do
			k = msgrcv(q->rx, q->m, q->msgmax, 0, IPC_NOWAIT);
		while (k < 0 && errno == EINTR);
		if (k < 0) {
			if (errno == ENOMSG)
				return -EAGAIN;
			if (errno == EIDRM || errno == EINVAL)
				return -ECONNRESET;
			return -errno; /* E2BIG: a message over msgmax, never cut */
		}
		if (q->m->mtype == SYSV_MT_EOF)
			q->eof = 1;
		else if (q->m->mtype != SYSV_MT_DATA)
			return -EPROTO;
		q->in_off = 0;
		q->in_len = (size_t)k;
	}
	if (q->in_len == 0)
		return 0; /* the end */
	size_t k = q->in_len < n ? q->in_len : n;
	memcpy(p, q->m->mtext + q->in_off, k);
	q->in_off += k;
	q->in_len -= k;
	return (ssize_t)k;
}

int harness_rawq_proof_left(const struct harness_rawq *q)
{
	struct msqid_ds ds;
	return msgctl(q->tx, IPC_STAT, &ds) == 0 && ds.msg_qnum > 0;
}

int harness_rawq_shutdown(struct harness_rawq *q)
{
	int rc = msgctl(q->tx, IPC_RMID, NULL) < 0 ? -errno : 0;
	q->tx = -1; /* not removed again at close: the id may be another's by then */
	return rc;
}
