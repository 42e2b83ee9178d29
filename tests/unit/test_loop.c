/*
 * test_loop.c: the event loop: fd watches, timers in order, cancel,
 * wake-ups from another thread (coalesced; a lost one fails within
 * ASYNC_GUARD_MS instead of hanging), before-sleep, stop.
 */
#include <config.h>

#include <CUnit/Basic.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"

struct rec {
	struct loop *l;
	int order[8];
	int n;
	int sleeps;
};

static void rec_timer(void *arg)
{
	struct rec **pr = arg;
	struct rec *r = pr[0];
	r->order[r->n++] = (int)(intptr_t)pr[1];
	if (r->n == 3)
		loop_stop(r->l);
}

static void test_timers_in_order(void)
{
	struct loop *l;
	struct rec r = {0};
	struct loop_timer t[4] = {{0}};
	void *arg[4][2];

	CU_ASSERT_FATAL(loop_new(&l) == 0);
	r.l = l;
	int delays[4] = {30, 10, 20, 15};
	/* before the timers are set: they are due 30 ms after their setting,
	 * which a loaded machine may make later than a t0 read after it */
	uint64_t t0 = loop_clock_ms();
	for (int i = 0; i < 4; i++) {
		arg[i][0] = &r;
		arg[i][1] = (void *)(intptr_t)i;
		loop_timer_set(l, &t[i], (uint64_t)delays[i], rec_timer, arg[i]);
	}
	loop_timer_cancel(l, &t[3]); /* the 15 ms one never fires */
	CU_ASSERT(loop_run(l) == 0);
	CU_ASSERT(loop_clock_ms() - t0 >= 30);
	CU_ASSERT_EQUAL(r.n, 3);
	CU_ASSERT_EQUAL(r.order[0], 1);
	CU_ASSERT_EQUAL(r.order[1], 2);
	CU_ASSERT_EQUAL(r.order[2], 0);
	CU_ASSERT_FALSE(t[3].armed);
	loop_free(l);
}

struct fdrec {
	struct loop *l;
	struct loop_watch w;
	int reads;
	int sleeps;
};

static void fd_ready(void *arg, uint32_t events)
{
	struct fdrec *f = arg;
	char c;
	CU_ASSERT(events & EPOLLIN);
	if (read(f->w.fd, &c, 1) == 1)
		f->reads++;
	if (f->reads == 2)
		loop_stop(f->l);
}

static void fd_before_sleep(void *arg)
{
	struct fdrec *f = arg;
	f->sleeps++;
}

static void test_fd_watch(void)
{
	struct fdrec f = {0};
	int p[2];

	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_FATAL(loop_new(&f.l) == 0);
	CU_ASSERT(loop_add(f.l, &f.w, p[0], EPOLLIN, fd_ready, &f) == 0);
	loop_before_sleep(f.l, fd_before_sleep, &f);
	CU_ASSERT(write(p[1], "ab", 2) == 2);
	CU_ASSERT(loop_run(f.l) == 0);
	CU_ASSERT_EQUAL(f.reads, 2);
	CU_ASSERT(f.sleeps >= 2); /* level-triggered: one byte per turn */
	/* paused: a byte waits, the loop only sees the timer */
	CU_ASSERT(loop_mod(f.l, &f.w, 0) == 0);
	CU_ASSERT(write(p[1], "c", 1) == 1);
	struct loop_timer t = {0};
	loop_timer_set(f.l, &t, 20, (loop_cb)loop_stop, f.l);
	CU_ASSERT(loop_run(f.l) == 0);
	CU_ASSERT_EQUAL(f.reads, 2);
	loop_del(f.l, &f.w);
	loop_free(f.l);
	close(p[0]);
	close(p[1]);
}

/* Wake-ups.  Every run is bounded: a guard timer stops the loop after
 * ASYNC_GUARD_MS, so a lost wake-up fails the test instead of hanging it.
 * After a callback the loop keeps running for ASYNC_SETTLE_MS, so that a
 * wake-up that fires more than once is counted. */
#define ASYNC_GUARD_MS 2000
#define ASYNC_SETTLE_MS 50

struct asyncrec {
	struct loop *l;
	struct loop_async a;
	struct loop_timer settle, guard;
	int calls;
	int guard_fired;
	int sends;     /* for async_sender */
	int delay_us;  /* for async_sender: wait before sending */
};

static void async_stop(void *arg)
{
	struct asyncrec *r = arg;
	loop_stop(r->l);
}

static void async_guard(void *arg)
{
	struct asyncrec *r = arg;
	r->guard_fired = 1;
	loop_stop(r->l);
}

static void async_cb(void *arg)
{
	struct asyncrec *r = arg;
	r->calls++;
	loop_timer_set(r->l, &r->settle, ASYNC_SETTLE_MS, async_stop, r);
}

static void *async_sender(void *arg)
{
	struct asyncrec *r = arg;
	if (r->delay_us)
		usleep((useconds_t)r->delay_us);
	for (int i = 0; i < r->sends; i++)
		loop_async_send(&r->a);
	return NULL;
}

/* Run the loop until the settle timer (or the guard, after guard_ms) stops
 * it; the time it took in ms. */
static uint64_t async_run(struct asyncrec *r, uint64_t guard_ms)
{
	uint64_t t0 = loop_clock_ms();
	r->guard_fired = 0;
	loop_timer_set(r->l, &r->guard, guard_ms, async_guard, r);
	CU_ASSERT(loop_run(r->l) == 0);
	loop_timer_cancel(r->l, &r->guard);
	loop_timer_cancel(r->l, &r->settle);
	return loop_clock_ms() - t0;
}

/* Sends from another thread, all of them made before the loop runs: they
 * coalesce into exactly one callback; and the next batch into one more. */
static void test_async_coalesce(void)
{
	struct asyncrec r = {0};
	pthread_t th;

	CU_ASSERT_FATAL(loop_new(&r.l) == 0);
	CU_ASSERT_FATAL(loop_async_init(r.l, &r.a, async_cb, &r) == 0);
	r.sends = 100;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, async_sender, &r) == 0);
	pthread_join(th, NULL);
	async_run(&r, ASYNC_GUARD_MS);
	CU_ASSERT_FALSE(r.guard_fired);
	CU_ASSERT_EQUAL(r.calls, 1);

	r.sends = 1000;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, async_sender, &r) == 0);
	pthread_join(th, NULL);
	async_run(&r, ASYNC_GUARD_MS);
	CU_ASSERT_FALSE(r.guard_fired);
	CU_ASSERT_EQUAL(r.calls, 2);

	/* nothing sent: the loop sleeps until the guard, no callback */
	async_run(&r, 100);
	CU_ASSERT_TRUE(r.guard_fired);
	CU_ASSERT_EQUAL(r.calls, 2);
	loop_async_fini(r.l, &r.a);
	loop_free(r.l);
}

/* One send from another thread while the loop sleeps in epoll_wait wakes
 * it: one callback, long before the guard. */
static void test_async_wakes_sleeping_loop(void)
{
	struct asyncrec r = {0};
	pthread_t th;

	CU_ASSERT_FATAL(loop_new(&r.l) == 0);
	CU_ASSERT_FATAL(loop_async_init(r.l, &r.a, async_cb, &r) == 0);
	r.sends = 1;
	r.delay_us = 20000;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, async_sender, &r) == 0);
	uint64_t ms = async_run(&r, ASYNC_GUARD_MS);
	pthread_join(th, NULL);
	CU_ASSERT_FALSE(r.guard_fired);
	CU_ASSERT_EQUAL(r.calls, 1);
	CU_ASSERT(ms < ASYNC_GUARD_MS);
	loop_async_fini(r.l, &r.a);
	loop_free(r.l);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite("loop", NULL, NULL);
	CU_add_test(s, "timers fire in order; cancel", test_timers_in_order);
	CU_add_test(s, "fd watch, pause, before-sleep", test_fd_watch);
	CU_add_test(s, "wake-ups sent before the loop runs coalesce", test_async_coalesce);
	CU_add_test(s, "a wake-up from another thread wakes the loop", test_async_wakes_sleeping_loop);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	int failed = CU_get_number_of_failures() != 0 || CU_get_number_of_tests_failed() != 0;
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
