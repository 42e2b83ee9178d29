/*
 * loop.h: the broker's event loop, one per broker, never a global.
 *
 * Each turn: wait in epoll_wait for at most the time to the nearest timer,
 * run the callbacks of ready descriptors, run due timers, then the
 * before-sleep hook (where the broker writes each connection's output once).
 * Threads that block in calls that cannot be polled (msgrcv, semop) wake the
 * loop through a struct loop_async (an eventfd).  Signals arrive through a
 * signalfd watched like any descriptor.
 */
#ifndef IPCBUS_LOOP_H
#define IPCBUS_LOOP_H

#include <stdint.h>

struct loop;

typedef void (*loop_fd_cb)(void *arg, uint32_t events);
typedef void (*loop_cb)(void *arg);

/* A watched descriptor; embedded in its owner. */
struct loop_watch {
	int fd;
	uint32_t events; /* EPOLLIN, EPOLLOUT */
	loop_fd_cb cb;
	void *arg;
};

/* A one-shot timer; embedded in its owner.  Zero-initialised = not armed. */
struct loop_timer {
	uint64_t due_ms;
	loop_cb cb;
	void *arg;
	struct loop_timer *next; /* the loop's list, ordered by due_ms */
	int armed;
};

/* A wake-up from another thread: cb runs in the loop's thread. */
struct loop_async {
	struct loop_watch watch;
	loop_cb cb;
	void *arg;
};

/* New loop.  0 or -errno. */
int loop_new(struct loop **out);

/* Free the loop; watches must have been removed.  NULL does nothing. */
void loop_free(struct loop *l);

/* Watch fd for events; w is borrowed until loop_del.  0 or -errno. */
int loop_add(struct loop *l, struct loop_watch *w, int fd, uint32_t events, loop_fd_cb cb,
	     void *arg);

/* Change the events watched (0 pauses the watch).  0 or -errno. */
int loop_mod(struct loop *l, struct loop_watch *w, uint32_t events);

/* Stop watching (does not close the fd).  The memory of w must stay valid
 * until the turn's before-sleep hook: events of this turn may still name it
 * (their callback is skipped).  Owners therefore free in before-sleep. */
void loop_del(struct loop *l, struct loop_watch *w);

/* Arm t to run cb(arg) once after delay_ms (re-arming moves it). */
void loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t delay_ms, loop_cb cb,
		    void *arg);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/* Run cb(arg) at the end of every turn, before waiting again. */
void loop_before_sleep(struct loop *l, loop_cb cb, void *arg);

/* An eventfd-backed wake-up.  loop_async_send() may be called from any
 * thread; cb runs once in the loop for one or more sends.  0 or -errno. */
int loop_async_init(struct loop *l, struct loop_async *a, loop_cb cb, void *arg);
void loop_async_send(struct loop_async *a);
void loop_async_fini(struct loop *l, struct loop_async *a);

/* Run until loop_stop().  0, or -errno if epoll_wait failed. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* CLOCK_MONOTONIC in milliseconds, read once per turn. */
uint64_t loop_now(const struct loop *l);
uint64_t loop_clock_ms(void);

#endif
