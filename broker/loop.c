/*
 * loop.c: epoll reactor with one-shot timers and eventfd wake-ups.
 *
 * Timers are kept in a list ordered by due time: the broker has a handful
 * (keepalive, accept back-off, drain deadline, linger), so a list is simpler
 * than a heap and as fast.  One timerfd, watched like any descriptor, is
 * armed for the earliest; epoll_wait itself never times out.  epoll is level-triggered: a callback that stops early
 * (its per-turn read budget is spent) is called again next turn.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

#define LOOP_MAX_EVENTS 256

struct loop {
	int epfd;
	int tfd;              /* timerfd for the earliest timer */
	uint64_t tfd_due;     /* what it is armed for; 0 when disarmed */
	struct loop_watch tfd_watch;
	int stop;
	uint64_t now;
	struct loop_timer *timers;
	loop_cb before_sleep;
	void *before_sleep_arg;
};

uint64_t loop_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void loop_tfd_ready(void *arg, uint32_t events)
{
	struct loop *l = arg;
	uint64_t n;
	(void)events;
	if (read(l->tfd, &n, sizeof n) < 0) {
		/* EAGAIN: re-armed since it fired; nothing to do */
	}
	l->tfd_due = 0; /* loop_run_timers() runs what is due and re-arms */
}

/* Arm the timerfd for the earliest timer, if that changed. */
static void loop_arm(struct loop *l)
{
	uint64_t due = l->timers ? l->timers->due_ms : 0;
	if (due == l->tfd_due)
		return;
	struct itimerspec its = {{0, 0}, {0, 0}};
	if (due) {
		/* absolute CLOCK_MONOTONIC time; never 0, which would disarm */
		its.it_value.tv_sec = (time_t)(due / 1000);
		its.it_value.tv_nsec = (long)(due % 1000) * 1000000L;
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	if (timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		l->tfd_due = due;
}

int loop_new(struct loop **out)
{
	struct loop *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int rc = -errno;
		free(l);
		return rc;
	}
	l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	int rc = l->tfd < 0 ? -errno : loop_add(l, &l->tfd_watch, l->tfd, EPOLLIN, loop_tfd_ready, l);
	if (rc < 0) {
		if (l->tfd >= 0)
			close(l->tfd);
		close(l->epfd);
		free(l);
		return rc;
	}
	l->now = loop_clock_ms();
	*out = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->tfd);
	close(l->epfd);
	free(l);
}

int loop_add(struct loop *l, struct loop_watch *w, int fd, uint32_t events, loop_fd_cb cb,
	     void *arg)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->arg = arg;
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int loop_mod(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (w->events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -errno;
	w->events = events;
	return 0;
}

void loop_del(struct loop *l, struct loop_watch *w)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->cb = NULL;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (!t->armed)
		return;
	for (struct loop_timer **p = &l->timers; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	t->armed = 0;
	t->next = NULL;
	loop_arm(l);
}

void loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t delay_ms, loop_cb cb,
		    void *arg)
{
	loop_timer_cancel(l, t);
	t->due_ms = loop_clock_ms() + delay_ms;
	t->cb = cb;
	t->arg = arg;
	t->armed = 1;
	struct loop_timer **p = &l->timers;
	while (*p && (*p)->due_ms <= t->due_ms)
		p = &(*p)->next;
	t->next = *p;
	*p = t;
	loop_arm(l);
}

void loop_before_sleep(struct loop *l, loop_cb cb, void *arg)
{
	l->before_sleep = cb;
	l->before_sleep_arg = arg;
}

static void loop_async_ready(void *arg, uint32_t events)
{
	struct loop_async *a = arg;
	uint64_t n;
	(void)events;
	/* one read clears the counter: many sends, one callback */
	if (read(a->watch.fd, &n, sizeof n) == (ssize_t)sizeof n)
		a->cb(a->arg);
}

int loop_async_init(struct loop *l, struct loop_async *a, loop_cb cb, void *arg)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	a->cb = cb;
	a->arg = arg;
	int rc = loop_add(l, &a->watch, fd, EPOLLIN, loop_async_ready, a);
	if (rc < 0)
		close(fd);
	return rc;
}

void loop_async_send(struct loop_async *a)
{
	uint64_t one = 1;
	/* EAGAIN means the counter is saturated: a wake-up is pending anyway */
	if (write(a->watch.fd, &one, sizeof one) < 0) {
	}
}

void loop_async_fini(struct loop *l, struct loop_async *a)
{
	loop_del(l, &a->watch);
	close(a->watch.fd);
	a->watch.fd = -1;
}

static void loop_run_timers(struct loop *l)
{
	/* a timer callback may arm timers; only run those due now */
	uint64_t now = l->now;
	while (l->timers && l->timers->due_ms <= now) {
		struct loop_timer *t = l->timers;
		l->timers = t->next;
		t->next = NULL;
		t->armed = 0;
		t->cb(t->arg);
	}
	loop_arm(l);
}

int loop_run(struct loop *l)
{
	struct epoll_event ev[LOOP_MAX_EVENTS];

	l->stop = 0;
	while (!l->stop) {
		int n = epoll_wait(l->epfd, ev, LOOP_MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		l->now = loop_clock_ms();
		for (int i = 0; i < n; i++) {
			struct loop_watch *w = ev[i].data.ptr;
			if (w->cb)
				w->cb(w->arg, ev[i].events);
		}
		loop_run_timers(l);
		if (l->before_sleep)
			l->before_sleep(l->before_sleep_arg);
	}
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stop = 1;
}

uint64_t loop_now(const struct loop *l)
{
	return l->now;
}
