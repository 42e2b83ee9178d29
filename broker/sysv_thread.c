/*
 * sysv_thread.c: the threads of the broker's sysv:// transport (see
 * tr_sysv.c) and their hand-off to the loop: a connection's reader, blocked
 * in msgrcv on the client's send queue, and its writer, blocked in msgsnd
 * on a full reply queue; the listener's receiver of HELLOs.  Each reports
 * to the loop through the listener's ready list and one wake-up; each is
 * stopped by its flag and SYSV_SIG, which interrupts msgrcv and msgsnd
 * (they are never restarted after a handler).
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

/* ---- threads ---- */

static void sysv_thread_sig(int sig)
{
	(void)sig; /* only to interrupt msgrcv/msgsnd (never restarted) */
}

static int sysv_thread_sig_ready;

void sysv_thread_install(void)
{
	if (sysv_thread_sig_ready)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sysv_thread_sig;
	sigemptyset(&sa.sa_mask);
	sigaction(SYSV_SIG, &sa, NULL);
	sysv_thread_sig_ready = 1;
}

/* Start fn with every signal blocked but SYSV_SIG.  0 or -errno. */
int sysv_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	pthread_attr_t a;

	sigfillset(&all);
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, SYSV_STACK);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(t, &a, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	return -rc;
}

static void sysv_thread_signals(void)
{
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, SYSV_SIG);
	pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

/* Stop a thread that saw its stop flag set: interrupt whatever it waits in
 * until it has ended (a signal that came just before it entered msgrcv is
 * lost, so it is sent again). */
void sysv_thread_join(pthread_t t)
{
	for (;;) {
		pthread_kill(t, SYSV_SIG);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 2 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(t, NULL, &ts) == 0)
			return;
	}
}

/* A thread has news for the loop about sc (SYSV_EV_*). */
void sysv_thread_notify(struct sysv_conn *sc, int ev)
{
	struct sysv_listener *sl = sc->sl;
	int wake = 0;

	pthread_mutex_lock(&sl->rmu);
	sc->ev |= ev;
	if (!sc->ready) {
		sc->ready = 1;
		sc->ready_next = sl->ready;
		wake = !sl->ready && !sl->hello_ev;
		sl->ready = sc;
	}
	pthread_mutex_unlock(&sl->rmu);
	if (wake)
		loop_async_send(&sl->async);
}

/* Off the ready list (before sc is freed; its threads have ended). */
void sysv_thread_unready(struct sysv_conn *sc)
{
	struct sysv_listener *sl = sc->sl;

	pthread_mutex_lock(&sl->rmu);
	if (sc->ready) {
		for (struct sysv_conn **pp = &sl->ready; *pp; pp = &(*pp)->ready_next) {
			if (*pp == sc) {
				*pp = sc->ready_next;
				break;
			}
		}
		sc->ready = 0;
	}
	pthread_mutex_unlock(&sl->rmu);
}

/* The reader: the client's send queue into sc->in. */
void *sysv_thread_reader(void *arg)
{
	struct sysv_conn *sc = arg;
	size_t cap = (size_t)sc->sl->lim.msgmax;
	struct sysv_msg *m = malloc(sizeof *m + cap);

	sysv_thread_signals();
	if (!m) {
		pthread_mutex_lock(&sc->mu);
		sc->rd_err = ENOMEM;
		pthread_mutex_unlock(&sc->mu);
		sysv_thread_notify(sc, SYSV_EV_IN);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&sc->mu);
		while (!sc->rd_stop && sc->in_len + cap > sc->in_cap) {
			sc->rd_waiting = 1;
			pthread_cond_wait(&sc->cv, &sc->mu);
		}
		sc->rd_waiting = 0;
		int stop = sc->rd_stop;
		pthread_mutex_unlock(&sc->mu);
		if (stop)
			break;
		ssize_t n = msgrcv(sc->tx, m, cap, 0, 0);
		if (n < 0 && errno == EINTR)
			continue;
		int err = n < 0 ? errno : m->mtype != SYSV_MT_DATA ? EPROTO : 0;
		pthread_mutex_lock(&sc->mu);
		if (err == EIDRM || err == EINVAL) {
			sc->rd_eof = 1;
		} else if (err) {
			/* E2BIG: a message over msgmax as it was when the
			 * connection began; it stays in the queue, whole */
			sc->rd_err = err;
			sc->rd_mtype = n >= 0 ? m->mtype : 0;
		} else {
			memcpy(sc->in + sc->in_len, m->mtext, (size_t)n);
			sc->in_len += (size_t)n;
		}
		pthread_mutex_unlock(&sc->mu);
		sysv_thread_notify(sc, SYSV_EV_IN);
		if (err)
			break;
	}
	free(m);
	return NULL;
}

/* The writer: what flush() could not send at once, in order, waiting for
 * room; it ends with its work when sc is a tail. */
static void *sysv_thread_writer(void *arg)
{
	struct sysv_conn *sc = arg;

	sysv_thread_signals();
	pthread_mutex_lock(&sc->mu);
	for (;;) {
		while (!sc->wr_stop && !sc->wq && sc->c)
			pthread_cond_wait(&sc->cv, &sc->mu);
		if (sc->wr_stop || !sc->wq)
			break;
		struct sysv_out *o = sc->wq;
		pthread_mutex_unlock(&sc->mu);
		int rc = msgsnd(sc->rx, &o->m, o->len, 0);
		int err = rc < 0 ? errno : 0;
		pthread_mutex_lock(&sc->mu);
		if (err == EINTR)
			continue;
		if (err) {
			sc->wr_err = err;
			while (sc->wq) {
				o = sc->wq;
				sc->wq = o->next;
				free(o);
			}
		} else {
			sc->wq = o->next;
			free(o);
		}
		if (!sc->wq)
			sc->wq_tail = &sc->wq;
		int tell = !sc->wq || err;
		pthread_mutex_unlock(&sc->mu);
		if (tell)
			sysv_thread_notify(sc, SYSV_EV_OUT);
		pthread_mutex_lock(&sc->mu);
		if (err)
			break;
	}
	pthread_mutex_unlock(&sc->mu);
	return NULL;
}

/* Hand one message to the writer (started when first needed).  0, or
 * -errno (out of memory, no thread). */
int sysv_thread_hand(struct sysv_conn *sc, long mtype, const void *p, size_t n)
{
	struct sysv_out *o = malloc(sizeof *o + n);
	if (!o)
		return -ENOMEM;
	o->next = NULL;
	o->len = n;
	o->m.mtype = mtype;
	if (n)
		memcpy(o->m.mtext, p, n);
	if (!sc->wr_started) {
		int rc = sysv_thread_start(&sc->wr, sysv_thread_writer, sc);
		if (rc < 0) {
			free(o);
			return rc;
		}
		sc->wr_started = 1;
	}
	pthread_mutex_lock(&sc->mu);
	*sc->wq_tail = o;
	sc->wq_tail = &o->next;
	pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
	return 0;
}

/* Stop the reader (rd) and the writer (wr), as asked. */
void sysv_thread_stop(struct sysv_conn *sc, int rd, int wr)
{
	pthread_mutex_lock(&sc->mu);
	sc->rd_stop |= rd;
	sc->wr_stop |= wr;
	pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
	if (rd && sc->rd_started) {
		sysv_thread_join(sc->rd);
		sc->rd_started = 0;
	}
	if (wr && sc->wr_started) {
		sysv_thread_join(sc->wr);
		sc->wr_started = 0;
	}
}

void *sysv_thread_receiver(void *arg)
{
	struct sysv_listener *sl = arg;
	size_t cap = SYSV_HELLO_MAX + 1;
	struct sysv_msg *m = malloc(sizeof *m + cap);

	sysv_thread_signals();
	for (;;) {
		pthread_mutex_lock(&sl->mu);
		while (!sl->th_stop && sl->nhellos >= SYSV_HELLO_PENDING)
			pthread_cond_wait(&sl->cv, &sl->mu);
		int stop = sl->th_stop;
		pthread_mutex_unlock(&sl->mu);
		if (stop || !m)
			break;
		/* a message over the limit is taken (cut) and refused, not
		 * left at the head of the queue for ever */
		ssize_t n = msgrcv(sl->qid, m, cap, SYSV_MT_HELLO, MSG_NOERROR);
		if (n < 0 && errno == EINTR)
			continue;
		struct sysv_hello_msg *hm = n >= 0 ? malloc(sizeof *hm + (size_t)n) : NULL;
		pthread_mutex_lock(&sl->mu);
		if (n < 0) {
			sl->th_gone = errno == EIDRM || errno == EINVAL;
			sl->th_err = errno;
		} else if (hm) {
			hm->next = NULL;
			hm->len = (size_t)n;
			memcpy(hm->bytes, m->mtext, (size_t)n);
			*sl->hellos_tail = hm;
			sl->hellos_tail = &hm->next;
			sl->nhellos++;
		}
		pthread_mutex_unlock(&sl->mu);
		pthread_mutex_lock(&sl->rmu);
		int wake = !sl->ready && !sl->hello_ev;
		sl->hello_ev = 1;
		pthread_mutex_unlock(&sl->rmu);
		if (wake)
			loop_async_send(&sl->async);
		if (n < 0)
			break;
	}
	free(m);
	return NULL;
}
