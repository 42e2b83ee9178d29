/*
 * rawq.c: raw bridges to SysV message queues (see rawq.h, docs/design.md
 * "Raw bridges"): what both directions share, the lines' set-up, stop and
 * status, the drop log.  sysv-in is rawq_in.c, sysv-out rawq_out.c.
 *
 * A queue that vanishes (ipcrm, or IPC_RMID by a program) is made again at
 * the same key, by the receiver at once (retrying every second when that
 * fails) and by a sender at its next message (at most once a second).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <unistd.h>

#include "broker.h"
#include "rawq.h"
#include "rawq_int.h"
#include "sysv.h"

static const char *const rawq_drop_name[RAWQ_NDROP] = {"oversize", "full", "gone", "error"};

/* ---- the log ---- */

static const char *rawq_dir(const struct rawq *r)
{
	return r->cfg->out ? "sysv-out" : "sysv-in";
}

static void rawq_log_drops(struct rawq *r)
{
	struct broker *b = r->b;
	char text[512];
	size_t k = 0;
	uint64_t total = 0;

	for (int i = 0; i < RAWQ_NDROP; i++) {
		uint64_t n = r->unlogged[i];
		if (!n)
			continue;
		total += n;
		const char *why = "";
		switch (i) {
		case RAWQ_OVERSIZE:
			why = r->cfg->out ? "larger than the queue takes" : "over max-payload";
			break;
		case RAWQ_FULL: why = "the queue stayed full"; break;
		case RAWQ_GONE: why = "the queue is gone"; break;
		default: why = "errors"; break;
		}
		int w = snprintf(text + k, sizeof text - k, "%s%llu %s (%s)", k ? ", " : "",
				 (unsigned long long)n, rawq_drop_name[i], why);
		if (w > 0 && (size_t)w < sizeof text - k)
			k += (size_t)w;
		r->unlogged[i] = 0;
	}
	if (!total)
		return;
	log_warn(&b->log, "%s: dropped %llu message(s): %s", r->name, (unsigned long long)total,
		 text);
	r->logged_at = loop_now(b->loop);
	r->logged_once = 1;
}

static void rawq_log_timer(void *arg)
{
	rawq_log_drops(arg);
}

/* Count n drops for a reason; logged at once after a quiet RAWQ_LOG_MS,
 * else by a timer at the end of it (so the end of a burst is logged). */
void rawq_drop(struct rawq *r, int reason, uint64_t n)
{
	struct broker *b = r->b;
	if (!n)
		return;
	r->drops[reason] += n;
	r->unlogged[reason] += n;
	if (r->logt.armed)
		return;
	uint64_t now = loop_now(b->loop);
	if (!r->logged_once || now - r->logged_at >= RAWQ_LOG_MS)
		rawq_log_drops(r);
	else
		loop_timer_set(b->loop, &r->logt, r->logged_at + RAWQ_LOG_MS - now, rawq_log_timer, r);
}

/* ---- queues ---- */

int rawq_open(long key, unsigned mode, int need, int *created)
{
	for (int tries = 0; tries < 3; tries++) {
		int id = msgget((key_t)key, IPC_CREAT | IPC_EXCL | (int)mode);
		if (id >= 0) {
			*created = 1;
			return id;
		}
		if (errno != EEXIST)
			return -errno;
		id = msgget((key_t)key, need);
		if (id >= 0) {
			*created = 0;
			return id;
		}
		if (errno != ENOENT)
			return -errno;
		/* removed between the two calls: again */
	}
	return -EAGAIN;
}

const char *rawq_open_why(const struct rawq *r, int rc, char *out, size_t n)
{
	const struct rawq_set *set = r->b->rawq;
	if (rc == -ENOSPC)
		snprintf(out, n, "no queue ids left: the system holds msgmni (%ld) queues (see ipcs -q)",
			 set->lim.msgmni);
	else if (rc == -EACCES)
		snprintf(out, n, "the queue at this key exists and does not let the broker %s it",
			 r->cfg->out ? "write to" : "read from");
	else
		snprintf(out, n, "%s", strerror(-rc));
	return out;
}

/* ---- set-up ---- */

static int rawq_setup(struct rawq *r)
{
	struct broker *b = r->b;
	const struct conf_sysv *c = r->cfg;
	const struct rawq_set *set = b->rawq;
	char why[200], qb[160] = "";
	int rc;

	int id = rawq_open(c->key, c->mode, c->out ? 0200 : 0400, &r->created);
	if (id < 0) {
		log_error(&b->log, "%s: cannot open the queue at key 0x%lx: %s", r->name, c->key,
			  rawq_open_why(r, id, why, sizeof why));
		return id;
	}
	r->msqid = id;
	struct msqid_ds ds;
	if (msgctl(id, IPC_STAT, &ds) < 0) {
		rc = -errno;
		log_error(&b->log, "%s: msqid %d: IPC_STAT: %s", r->name, id, strerror(-rc));
		return rc;
	}
	r->qbytes = (unsigned long)ds.msg_qbytes;
	/* a queue the broker made, or its user's (left by a broker that was
	 * killed): removed at stop under `remove`; another user's never */
	r->owned = r->created || ds.msg_perm.cuid == geteuid();
	if (c->qbytes && r->qbytes < c->qbytes) {
		unsigned long got;
		int refused;
		rc = sysv_raise_qbytes(id, (unsigned long)c->qbytes, set->lim.msgmnb, &got, &refused);
		if (rc < 0)
			snprintf(qb, sizeof qb, " (raising it to %llu failed: %s)",
				 (unsigned long long)c->qbytes, strerror(-rc));
		else if (refused)
			snprintf(qb, sizeof qb, " (qbytes=%llu refused: above msgmnb %ld that takes CAP_SYS_RESOURCE)",
				 (unsigned long long)c->qbytes, set->lim.msgmnb);
		else
			snprintf(qb, sizeof qb, " (raised)");
		if (rc == 0)
			r->qbytes = got;
	}
	log_info(&b->log, "%s: msqid %d (%s, mode %04o, %s), msg_qbytes %lu%s", r->name, id,
		 r->created ? "created" : "found", (unsigned)(ds.msg_perm.mode & 0777),
		 c->remove ? (r->owned ? "removed at stop" : "remove: not ours, left at stop")
			   : "kept at stop",
		 r->qbytes, qb);
	rc = c->out ? rawq_out_start(r) : rawq_in_start(r);
	if (rc < 0)
		log_error(&b->log, "%s: %s", r->name, strerror(-rc));
	return rc;
}

static void rawq_wake(int sig)
{
	(void)sig;
}

int rawq_init(struct broker *b)
{
	const struct conf *cfg = &b->cfg;
	if (!cfg->nsysv)
		return 0;
	struct rawq_set *set = calloc(1, sizeof *set);
	if (!set || !(set->q = calloc(cfg->nsysv, sizeof *set->q))) {
		free(set);
		log_error(&b->log, "out of memory");
		return -ENOMEM;
	}
	b->rawq = set;
	/* the receivers' wake-up: a handler that does nothing (so the
	 * signal interrupts msgrcv), blocked here in the loop's thread */
	struct sigaction sa = {.sa_handler = rawq_wake};
	sigfillset(&sa.sa_mask);
	sigset_t wake;
	sigemptyset(&wake);
	sigaddset(&wake, RAWQ_WAKE);
	if (sigaction(RAWQ_WAKE, &sa, NULL) < 0 || pthread_sigmask(SIG_BLOCK, &wake, NULL) != 0) {
		log_error(&b->log, "raw bridges: signal %d: %s", RAWQ_WAKE, strerror(errno));
		return -errno;
	}
	sysv_limits_read(&set->lim);
	log_info(&b->log, "SysV limits%s: msgmax %ld, msgmnb %ld, msgmni %ld",
		 set->lim.guessed ? " (some unreadable in /proc/sys/kernel: Linux defaults)" : "",
		 set->lim.msgmax, set->lim.msgmnb, set->lim.msgmni);
	for (size_t i = 0; i < cfg->nsysv; i++) {
		const struct conf_sysv *c = &cfg->sysv[i];
		struct rawq *r = &set->q[set->n++];
		r->b = b;
		r->cfg = c;
		r->msqid = -1;
		if (c->out)
			snprintf(r->name, sizeof r->name, "sysv-out %s -> %s mtype %ld", c->channel,
				 c->key_text, c->mtype);
		else
			snprintf(r->name, sizeof r->name, "sysv-in %s mtype %ld -> %s", c->key_text,
				 c->mtype, c->channel);
		int rc = rawq_setup(r);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void rawq_stop(struct broker *b)
{
	struct rawq_set *set = b->rawq;
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		if (!set->q[i].cfg->out)
			rawq_in_stop(&set->q[i]);
}

void rawq_fini(struct broker *b)
{
	struct rawq_set *set = b->rawq;
	if (!set)
		return;
	rawq_stop(b);
	for (size_t i = 0; i < set->n; i++) {
		struct rawq *r = &set->q[i];
		rawq_out_stop(r);
		loop_timer_cancel(b->loop, &r->logt);
		rawq_log_drops(r);
	}
	/* the queues go once nobody uses them */
	for (size_t i = 0; i < set->n; i++) {
		struct rawq *r = &set->q[i];
		if (r->cfg->remove && (r->owned || r->created) && r->msqid >= 0) {
			if (msgctl(r->msqid, IPC_RMID, NULL) == 0)
				log_info(&b->log, "%s: msqid %d removed", r->name, r->msqid);
			else if (errno != EINVAL && errno != EIDRM)
				log_warn(&b->log, "%s: cannot remove msqid %d: %s", r->name, r->msqid,
					 strerror(errno));
		}
		if (r->async_on)
			loop_async_fini(b->loop, &r->async);
		if (r->started) {
			pthread_cond_destroy(&r->cv);
			pthread_mutex_destroy(&r->mu);
		}
		buf_fini(&r->fill);
		buf_fini(&r->take);
		buf_fini(&r->backlog);
		free(r->rx);
		free(r->sbuf);
	}
	free(set->q);
	free(set);
	b->rawq = NULL;
}

void rawq_status(struct broker *b)
{
	struct rawq_set *set = b->rawq;
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		struct rawq *r = &set->q[i];
		const struct conf_sysv *c = r->cfg;
		struct msqid_ds ds;
		char queue[160], backlog[96] = "";
		if (r->msqid >= 0 && msgctl(r->msqid, IPC_STAT, &ds) == 0)
			snprintf(queue, sizeof queue, "queue %lu message(s), %lu byte(s) of %lu",
				 (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes,
				 (unsigned long)ds.msg_qbytes);
		else
			snprintf(queue, sizeof queue, "queue gone");
		if (c->out)
			snprintf(backlog, sizeof backlog, ", backlog %zu message(s) %zu byte(s)",
				 r->nbacklog, buf_len(&r->backlog));
		log_info(&b->log,
			 "status: %s key 0x%lx msqid %d mtype %ld %s %s (%s): messages %llu, bytes %llu, dropped oversize %llu full %llu gone %llu error %llu%s; %s",
			 rawq_dir(r), c->key, r->msqid, c->mtype, c->out ? "pattern" : "channel",
			 c->channel, c->key_text, (unsigned long long)r->msgs,
			 (unsigned long long)r->bytes, (unsigned long long)r->drops[RAWQ_OVERSIZE],
			 (unsigned long long)r->drops[RAWQ_FULL], (unsigned long long)r->drops[RAWQ_GONE],
			 (unsigned long long)r->drops[RAWQ_ERROR], backlog, queue);
	}
}
