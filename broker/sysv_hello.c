/*
 * sysv_hello.c: a HELLO on the broker's SysV queue (docs/protocol.md, SysV):
 * checked against the queues it names and its proof, then a connection like
 * any other.  What the checks keep out is docs/design.md's trust model.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "conn.h"
#include "frame.h"
#include "proto.h"
#include "sysv.h"
#include "tr_sysv.h"
#include "transport.h"

/* ---- HELLOs ---- */

/* A HELLO refused: logged at most once a second with a count. */
static void sysv_hello_refuse(struct sysv_listener *sl, const char *why)
{
	struct broker *b = sl->l.b;
	uint64_t now = loop_now(b->loop);

	sl->refused++;
	log_debug(&b->log, "sysv://%s: a HELLO refused: %s", sl->l.url.keyspec, why);
	if (sl->refused_at && now - sl->refused_at < 1000) {
		sl->refused_quiet++;
		return;
	}
	if (sl->refused_quiet)
		log_warn(&b->log, "sysv://%s: a HELLO refused: %s (and %llu more since the last report)",
			 sl->l.url.keyspec, why, (unsigned long long)sl->refused_quiet);
	else
		log_warn(&b->log, "sysv://%s: a HELLO refused: %s", sl->l.url.keyspec, why);
	sl->refused_at = now;
	sl->refused_quiet = 0;
}

/* A client's queue as it must be: a queue that is not the broker's,
 * owner-only, owned by its creator or the broker.  0, or -1 and why. */
static int sysv_hello_check_queue(struct sysv_listener *sl, int id, struct msqid_ds *ds, char *why,
			    size_t n)
{
	if (id < 0 || id == sl->qid) {
		snprintf(why, n, "queue %d is not a client's", id);
		return -1;
	}
	if (msgctl(id, IPC_STAT, ds) < 0) {
		snprintf(why, n, "queue %d: %s", id, strerror(errno));
		return -1;
	}
	if (ds->msg_perm.mode & 0077) {
		snprintf(why, n,
			 "queue %d has mode %04o: others could read or write it (owner-only, 0600)", id,
			 (unsigned)(ds->msg_perm.mode & 0777));
		return -1;
	}
	if (ds->msg_perm.uid != ds->msg_perm.cuid && ds->msg_perm.uid != geteuid()) {
		snprintf(why, n, "queue %d is also owned by uid %u", id, (unsigned)ds->msg_perm.uid);
		return -1;
	}
	return 0;
}

static int sysv_hello_in_use(const struct sysv_listener *sl, int id)
{
	for (const struct sysv_conn *sc = sl->conns; sc; sc = sc->next)
		if (sc->tx == id || sc->rx == id)
			return 1;
	for (const struct sysv_conn *sc = sl->tails; sc; sc = sc->next)
		if (sc->tx == id || sc->rx == id)
			return 1;
	return 0;
}

/* Raise a client's queue to what the listener chose at start (see
 * sysv_qbytes_choose): what it holds then. */
static size_t sysv_hello_qbytes(struct sysv_listener *sl, int id, struct msqid_ds *ds)
{
	unsigned long got;
	int refused;

	if (sl->qbytes > ds->msg_qbytes &&
	    sysv_raise_qbytes(id, sl->qbytes, sl->lim.msgmnb, &got, &refused) == 0)
		ds->msg_qbytes = got;
	return ds->msg_qbytes;
}

/* Tell a client, in its verified reply queue, that it cannot come in. */
static void sysv_hello_turn_away(int rx, uint64_t id, int code, const char *why)
{
	struct buf out;
	buf_init(&out, 4096);
	if (frame_append_error(&out, id, code, 1, why) == 0 && buf_len(&out) <= 4096) {
		struct {
			long mtype;
			uint8_t text[4096];
		} m = {.mtype = SYSV_MT_DATA};
		memcpy(m.text, buf_rptr(&out), buf_len(&out));
		msgsnd(rx, &m, buf_len(&out), IPC_NOWAIT);
		m.mtype = SYSV_MT_EOF;
		msgsnd(rx, &m, 0, IPC_NOWAIT);
	}
	buf_fini(&out);
}

void sysv_hello(struct sysv_listener *sl, const uint8_t *p, size_t n)
{
	struct broker *b = sl->l.b;
	const uint8_t *body;
	size_t blen, need;
	struct frame f;
	char why[200];
	struct msqid_ds dtx, drx;
	Ipcbus__Hello *h = NULL;
	struct sysv_conn *sc = NULL;

	long k = frame_split(p, n, SYSV_HELLO_MAX, &body, &blen, &need);
	if (k <= 0 || (size_t)k != n) {
		sysv_hello_refuse(sl, "not one whole frame");
		return;
	}
	if (frame_decode(body, blen, &f) < 0 || f.type != IPCBUS__FRAME_TYPE__HELLO) {
		sysv_hello_refuse(sl, "not a HELLO frame");
		return;
	}
	h = frame_unpack_hello(&f);
	if (!h || !h->sysv) {
		sysv_hello_refuse(sl, "a HELLO without its queues (Hello.sysv)");
		goto out;
	}
	int tx = h->sysv->send_queue, rx = h->sysv->reply_queue;
	uint64_t proof = h->sysv->proof;
	if (tx == rx || proof == 0 || proof > (uint64_t)LONG_MAX) {
		sysv_hello_refuse(sl, "bad Hello.sysv (the two queues the same, or a proof out of range)");
		goto out;
	}
	if (sysv_hello_check_queue(sl, tx, &dtx, why, sizeof why) < 0 ||
	    sysv_hello_check_queue(sl, rx, &drx, why, sizeof why) < 0) {
		sysv_hello_refuse(sl, why);
		goto out;
	}
	if (dtx.msg_perm.cuid != drx.msg_perm.cuid) {
		snprintf(why, sizeof why, "queues %d and %d were created by different users (%u, %u)",
			 tx, rx, (unsigned)dtx.msg_perm.cuid, (unsigned)drx.msg_perm.cuid);
		sysv_hello_refuse(sl, why);
		goto out;
	}
	if (sysv_hello_in_use(sl, tx) || sysv_hello_in_use(sl, rx)) {
		snprintf(why, sizeof why, "queue %d or %d is another connection's", tx, rx);
		sysv_hello_refuse(sl, why);
		goto out;
	}
	/* the proof: whoever sent this HELLO may write to tx */
	struct {
		long mtype;
		uint8_t text[16];
	} pm;
	if (msgrcv(tx, &pm, sizeof pm.text, (long)proof, IPC_NOWAIT) < 0) {
		snprintf(why, sizeof why, "no proof in queue %d (%s): a HELLO in another's name?", tx,
			 errno == ENOMSG ? "no such message" : strerror(errno));
		sysv_hello_refuse(sl, why);
		goto out;
	}
	pid_t pid = dtx.msg_lspid;
	unsigned long long start = sysv_pid_start(pid);
	if (!sysv_pid_alive(pid, 0)) {
		/* its queues have nobody left to remove them */
		msgctl(tx, IPC_RMID, NULL);
		msgctl(rx, IPC_RMID, NULL);
		snprintf(why, sizeof why, "the client (pid %d) is gone already", (int)pid);
		sysv_hello_refuse(sl, why);
		goto out;
	}
	if (!broker_admit(b, why, sizeof why)) {
		sysv_hello_turn_away(rx, f.has_id ? f.id : 0, IPCBUS__ERR_CODE__E_MAX_CONNECTIONS, why);
		broker_refused(b, why);
		goto out;
	}

	sc = calloc(1, sizeof *sc);
	size_t in_cap = 4 * (size_t)sl->lim.msgmax;
	if (in_cap < SYSV_IN_MIN)
		in_cap = SYSV_IN_MIN;
	size_t chunk = (size_t)sl->lim.msgmax;
	size_t qb = sysv_hello_qbytes(sl, rx, &drx);
	sysv_hello_qbytes(sl, tx, &dtx);
	if (qb && qb < chunk)
		chunk = qb;
	if (!sc || !(sc->in = malloc(in_cap)) || !(sc->obuf = malloc(sizeof *sc->obuf + chunk))) {
		if (sc) {
			free(sc->in);
			free(sc);
		}
		sc = NULL;
		log_error(&b->log, "sysv://%s: out of memory for a connection", sl->l.url.keyspec);
		goto out;
	}
	sc->sl = sl;
	sc->tx = tx;
	sc->rx = rx;
	sc->uid = dtx.msg_perm.cuid;
	sc->pid = pid;
	sc->start = start;
	sc->chunk = chunk;
	sc->in_cap = in_cap;
	sc->wq_tail = &sc->wq;
	pthread_mutex_init(&sc->mu, NULL);
	pthread_cond_init(&sc->cv, NULL);
	b->memory += in_cap;

	struct conn *c = conn_new(b, -1, &sysv_conn_ops, &sl->l);
	int rc = c ? sysv_thread_start(&sc->rd, sysv_thread_reader, sc) : -ENOMEM;
	if (rc < 0) {
		log_error(&b->log, "sysv://%s: cannot take a connection: %s", sl->l.url.keyspec,
			  c ? "no thread for it" : "out of memory");
		if (c)
			conn_free(c); /* its tp is not set yet */
		sysv_hello_turn_away(rx, f.has_id ? f.id : 0, IPCBUS__ERR_CODE__E_MAX_CONNECTIONS,
			       "the broker cannot take more SysV connections now");
		sc->eof_sent = 1; /* the client removes its queues */
		sysv_conn_free(sc);
		goto out;
	}
	sc->rd_started = 1;
	sc->c = c;
	c->tp = sc;
	c->has_cred = 1;
	c->pid = pid;
	c->uid = dtx.msg_perm.cuid;
	c->gid = dtx.msg_perm.cgid;
	sysv_link(&sl->conns, sc);
	conn_describe(c);
	broker_add_conn(b, c);
	sysv_arm_tick(sl);
	if (h->has_pid && (pid_t)h->pid != pid)
		log_debug(&b->log, "%s: its HELLO says pid %u (another pid namespace?)", c->desc,
			  h->pid);
	conn_frame(c, body, blen);
out:
	if (h)
		ipcbus__hello__free_unpacked(h, NULL);
}
