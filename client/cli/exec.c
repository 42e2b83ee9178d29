/*
 * exec.c: the exec bridge's pool of children (see exec.h).
 *
 * Every descriptor the pool watches sits in one epoll set, so the caller
 * polls a single fd: a signalfd for SIGCHLD and, per running child, the
 * write end of its stdin pipe and the read end of its stdout pipe (both
 * non-blocking, so a payload larger than the pipe buffer cannot deadlock
 * against a child that writes before it has read everything).  A child is
 * answered once it is reaped and its stdout is closed; grandchildren that
 * keep stdout open are ended with the child's process group on timeout.
 *
 * exec_pool_run() never frees a job while epoll events that may point at it
 * are being handled: events only move bytes and close descriptors, and a
 * later pass over the running list reaps, applies deadlines and answers.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "exec.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

enum { EXEC_PIPE_IN = 1, EXEC_PIPE_OUT = 2 };

/* Kill phases: running, SIGTERM sent, SIGKILL sent. */
enum { EXEC_RUN, EXEC_TERM, EXEC_KILL };

struct exec_job;

/* What an epoll event points at: one pipe of one job. */
struct exec_watch {
	struct exec_job *job;
	int which;
};

struct exec_job {
	struct exec_job *next;
	void *req;
	const uint8_t *in;
	size_t in_len, in_off;
	pid_t pid;
	int in_fd, out_fd;
	int reaped, status;
	const char *error;
	int phase;
	int64_t deadline;      /* monotonic ms, -1 for none */
	size_t max_out;
	uint8_t *out;
	size_t out_len, out_cap;
	struct exec_watch w_in, w_out;
	char values[3][24];    /* header values */
};

struct exec_pool {
	struct exec_opts o;
	int epfd, sigfd;
	struct exec_job *running;
	int nrunning;
	struct exec_job *qhead, *qtail;
	int nqueued;
	struct rlimit nofile;  /* restored in every child */
	int had_nofile;
	int chld_was_blocked;
	struct sigaction old_pipe;
};

static int64_t exec_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void exec_close(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Move fd above 2 so that dup2 onto 0 and 1 in the child cannot clobber a
 * pipe end that happens to be 0 or 1 (when the responder runs with stdin
 * or stdout closed). */
static int exec_fd_high(int fd)
{
	if (fd > 2)
		return fd;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	int e = errno;
	close(fd);
	errno = e;
	return nfd;
}

static int exec_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	fds[0] = exec_fd_high(fds[0]);
	fds[1] = exec_fd_high(fds[1]);
	if (fds[0] < 0 || fds[1] < 0) {
		int e = errno;
		exec_close(&fds[0]);
		exec_close(&fds[1]);
		return -e;
	}
	return 0;
}

static int exec_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Signal the job's process group, or the child alone when the group is
 * gone (the child may have left it). */
static void exec_signal(struct exec_job *j, int sig)
{
	if (kill(-j->pid, sig) < 0 && !j->reaped)
		kill(j->pid, sig);
}

/* Start killing: SIGTERM now, SIGKILL after the grace time.  The first
 * reason is the one reported. */
static void exec_kill(struct exec_pool *p, struct exec_job *j, const char *why)
{
	if (!j->error)
		j->error = why;
	if (j->phase != EXEC_RUN)
		return;
	exec_signal(j, SIGTERM);
	j->phase = EXEC_TERM;
	j->deadline = exec_now_ms() + p->o.grace_ms;
}

/*
 * In the child between fork and exec: only async-signal-safe calls.  Any
 * failure travels to the parent as an errno on errfd, which closes by
 * itself when exec succeeds.
 */
static void __attribute__((noreturn))
exec_child(struct exec_pool *p, int infd, int outfd, int errfd)
{
	struct sigaction dfl;
	sigset_t none;
	int e;

	setpgid(0, 0);
	/* an ignored signal (SIGPIPE) and the mask (SIGCHLD, blocked for the
	 * signalfd) would survive exec */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sigaction(sig, &dfl, NULL) < 0 && errno == EINVAL) {
			/* glibc refuses the real-time signals it keeps for
			 * itself (32, 33), yet an ignored one survives exec:
			 * ask the kernel directly (all zero is SIG_DFL) */
			unsigned long ksa[8] = { 0 };
			syscall(SYS_rt_sigaction, sig, ksa, NULL, (size_t)(NSIG - 1) / 8);
		}
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* infd and outfd are above 2, so dup2 makes new descriptors without
	 * close-on-exec */
	if (dup2(infd, 0) < 0 || dup2(outfd, 1) < 0)
		goto fail;
	/* everything else closes at exec, errfd included */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		struct rlimit rl;
		int max = 65536;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    rl.rlim_cur < (rlim_t)max)
			max = (int)rl.rlim_cur;
		for (int fd = 3; fd < max; fd++)
			if (fd != errfd)
				close(fd);
	}
	if (p->had_nofile)
		setrlimit(RLIMIT_NOFILE, &p->nofile);
	execvp(p->o.argv[0], p->o.argv);
fail:
	e = errno;
	while (write(errfd, &e, sizeof(e)) < 0 && errno == EINTR)
		;
	_exit(127);
}

static int exec_watch_add(struct exec_pool *p, int fd, uint32_t events, struct exec_watch *w)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

/* Close a watched pipe end (closing removes it from the epoll set). */
static void exec_watch_close(struct exec_pool *p, int *fd)
{
	if (*fd >= 0)
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, *fd, NULL);
	exec_close(fd);
}

/* Fork and exec COMMAND for j.  0 when it runs; -errno when it could not
 * be started, the child (if any) already reaped. */
static int exec_job_start(struct exec_pool *p, struct exec_job *j)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int rc, e = 0;
	ssize_t n;

	if ((rc = exec_pipe(in)) < 0 || (rc = exec_pipe(out)) < 0 ||
	    (rc = exec_pipe(err)) < 0)
		goto fail;
	if ((rc = exec_nonblock(in[1])) < 0 || (rc = exec_nonblock(out[0])) < 0)
		goto fail;
	j->pid = fork();
	if (j->pid < 0) {
		rc = -errno;
		goto fail;
	}
	if (j->pid == 0)
		exec_child(p, in[0], out[1], err[1]);
	/* both sides set the group, so a kill right after fork reaches it */
	setpgid(j->pid, j->pid);
	exec_close(&in[0]);
	exec_close(&out[1]);
	exec_close(&err[1]);
	do
		n = read(err[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	exec_close(&err[0]);
	if (n == sizeof(e)) {
		rc = -e;
		goto reap;
	}

	j->in_fd = in[1];
	j->out_fd = out[0];
	in[1] = out[0] = -1;
	if (j->in_len == 0)
		exec_close(&j->in_fd);
	else if ((rc = exec_watch_add(p, j->in_fd, EPOLLOUT, &j->w_in)) < 0)
		goto kill;
	if ((rc = exec_watch_add(p, j->out_fd, EPOLLIN, &j->w_out)) < 0)
		goto kill;
	j->deadline = p->o.timeout_ms > 0 ? exec_now_ms() + p->o.timeout_ms : -1;
	return 0;

kill:
	kill(-j->pid, SIGKILL);
	exec_watch_close(p, &j->in_fd);
	exec_watch_close(p, &j->out_fd);
reap:
	while (waitpid(j->pid, &j->status, 0) < 0 && errno == EINTR)
		;
	j->reaped = 1;
fail:
	exec_close(&in[0]);
	exec_close(&in[1]);
	exec_close(&out[0]);
	exec_close(&out[1]);
	exec_close(&err[0]);
	exec_close(&err[1]);
	return rc;
}

static void exec_job_free(struct exec_job *j)
{
	if (!j)
		return;
	exec_close(&j->in_fd);
	exec_close(&j->out_fd);
	free(j->out);
	free(j);
}

/* Answer j through the callback and free it. */
static void exec_job_answer(struct exec_pool *p, struct exec_job *j)
{
	ipcbus_header h[3];
	size_t nh = 0;

	memset(h, 0, sizeof(h));
	if (j->reaped && WIFEXITED(j->status) && WEXITSTATUS(j->status) != 0) {
		h[nh].key = "ipcbus-exit-status";
		snprintf(j->values[nh], sizeof(j->values[nh]), "%d", WEXITSTATUS(j->status));
		h[nh].value = j->values[nh];
		nh++;
	}
	if (j->reaped && WIFSIGNALED(j->status)) {
		h[nh].key = "ipcbus-signal";
		snprintf(j->values[nh], sizeof(j->values[nh]), "%d", WTERMSIG(j->status));
		h[nh].value = j->values[nh];
		nh++;
	}
	if (j->error) {
		h[nh].key = "ipcbus-error";
		h[nh].value = j->error;
		nh++;
	}
	for (size_t i = 0; i < nh; i++) {
		h[i].key_len = strlen(h[i].key);
		h[i].value_len = strlen(h[i].value);
	}
	p->o.done(p->o.arg, j->req, nh ? h : NULL, nh, j->out ? j->out : (const uint8_t *)"",
		  j->out_len);
	exec_job_free(j);
}

static void exec_on_stdin(struct exec_pool *p, struct exec_job *j)
{
	while (j->in_fd >= 0 && j->in_off < j->in_len) {
		size_t want = j->in_len - j->in_off;
		ssize_t n = write(j->in_fd, j->in + j->in_off, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EPIPE: the child exits or closed stdin without reading
			 * it all, which is its business */
			break;
		}
		j->in_off += (size_t)n;
	}
	exec_watch_close(p, &j->in_fd);
}

static int exec_out_grow(struct exec_job *j)
{
	/* room for one byte over the bound, to see that there is more */
	size_t limit = j->max_out + 1;
	size_t cap = j->out_cap ? j->out_cap * 2 : 16384;

	if (cap > limit || cap < j->out_cap)
		cap = limit;
	uint8_t *b = realloc(j->out, cap);
	if (!b)
		return -ENOMEM;
	j->out = b;
	j->out_cap = cap;
	return 0;
}

static void exec_on_stdout(struct exec_pool *p, struct exec_job *j)
{
	while (j->out_fd >= 0) {
		if (j->out_len == j->out_cap && exec_out_grow(j) < 0) {
			exec_watch_close(p, &j->out_fd);
			exec_kill(p, j, EXEC_ERR_OVERFLOW);
			return;
		}
		ssize_t n = read(j->out_fd, j->out + j->out_len, j->out_cap - j->out_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			n = 0;
		}
		if (n == 0) {
			exec_watch_close(p, &j->out_fd);
			return;
		}
		j->out_len += (size_t)n;
		if (j->out_len > j->max_out) {
			/* never truncate silently: keep the bound's worth, say so */
			j->out_len = j->max_out;
			exec_watch_close(p, &j->out_fd);
			exec_kill(p, j, EXEC_ERR_OVERFLOW);
			return;
		}
	}
}

static void exec_drain_signals(struct exec_pool *p)
{
	struct signalfd_siginfo si[8];

	while (read(p->sigfd, si, sizeof(si)) > 0)
		;
}

/* Reap, apply the deadline.  1 when j is finished. */
static int exec_job_check(struct exec_pool *p, struct exec_job *j, int64_t now)
{
	if (!j->reaped) {
		pid_t r = waitpid(j->pid, &j->status, WNOHANG);
		if (r == j->pid || (r < 0 && errno == ECHILD))
			j->reaped = 1;
	}
	if (j->deadline >= 0 && now >= j->deadline) {
		switch (j->phase) {
		case EXEC_RUN:
			exec_kill(p, j, EXEC_ERR_TIMEOUT);
			break;
		case EXEC_TERM:
			exec_signal(j, SIGKILL);
			j->phase = EXEC_KILL;
			j->deadline = now + p->o.grace_ms;
			break;
		default:
			/* something outside the group holds stdout: stop
			 * waiting for it */
			exec_watch_close(p, &j->out_fd);
			j->deadline = -1;
			break;
		}
	}
	return j->reaped && j->out_fd < 0;
}

/* Start a job or hand it back finished (spawn failure) on *done. */
static void exec_launch(struct exec_pool *p, struct exec_job *j, struct exec_job ***done)
{
	int rc = exec_job_start(p, j);

	if (rc < 0) {
		fprintf(stderr, "ipcbus reply: cannot run %s: %s\n", p->o.argv[0], strerror(-rc));
		j->error = EXEC_ERR_SPAWN;
		/* the child's exit (127) is ours, not the command's */
		j->reaped = 0;
		j->next = NULL;
		**done = j;
		*done = &j->next;
		return;
	}
	j->next = p->running;
	p->running = j;
	p->nrunning++;
}

static void exec_answer_all(struct exec_pool *p, struct exec_job *list)
{
	while (list) {
		struct exec_job *next = list->next;
		exec_job_answer(p, list);
		list = next;
	}
}

int exec_pool_submit(struct exec_pool *p, const void *data, size_t len, void *req)
{
	struct exec_job *j = calloc(1, sizeof(*j));
	struct exec_job *done = NULL, **tail = &done;

	if (!j)
		return -ENOMEM;
	j->req = req;
	j->in = data;
	j->in_len = len;
	j->in_fd = j->out_fd = -1;
	j->deadline = -1;
	j->max_out = p->o.max_output;
	j->w_in.job = j->w_out.job = j;
	j->w_in.which = EXEC_PIPE_IN;
	j->w_out.which = EXEC_PIPE_OUT;

	if (p->nrunning < p->o.jobs) {
		exec_launch(p, j, &tail);
	} else if (p->nqueued < p->o.queue) {
		if (p->qtail)
			p->qtail->next = j;
		else
			p->qhead = j;
		p->qtail = j;
		p->nqueued++;
	} else {
		j->error = EXEC_ERR_BUSY;
		done = j;
	}
	exec_answer_all(p, done);
	return 0;
}

int exec_pool_run(struct exec_pool *p)
{
	struct epoll_event ev[32];
	struct exec_job *done = NULL, **tail = &done;
	int n, count = 0;

	n = epoll_wait(p->epfd, ev, 32, 0);
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct exec_watch *w = ev[i].data.ptr;
		if (!w)
			exec_drain_signals(p);
		else if (w->which == EXEC_PIPE_IN)
			exec_on_stdin(p, w->job);
		else
			exec_on_stdout(p, w->job);
	}

	int64_t now = exec_now_ms();
	for (struct exec_job **jp = &p->running; *jp;) {
		struct exec_job *j = *jp;
		if (exec_job_check(p, j, now)) {
			*jp = j->next;
			p->nrunning--;
			j->next = NULL;
			*tail = j;
			tail = &j->next;
		} else {
			jp = &j->next;
		}
	}
	/* the queue moves on before anyone is answered, so answers that
	 * submit again find it in order */
	while (p->qhead && p->nrunning < p->o.jobs) {
		struct exec_job *j = p->qhead;
		p->qhead = j->next;
		if (!p->qhead)
			p->qtail = NULL;
		p->nqueued--;
		exec_launch(p, j, &tail);
	}
	for (struct exec_job *j = done; j; j = j->next)
		count++;
	exec_answer_all(p, done);
	return count;
}

int exec_pool_timeout(const struct exec_pool *p)
{
	int64_t first = -1, now;

	for (const struct exec_job *j = p->running; j; j = j->next)
		if (j->deadline >= 0 && (first < 0 || j->deadline < first))
			first = j->deadline;
	if (first < 0)
		return -1;
	now = exec_now_ms();
	if (first <= now)
		return 0;
	return first - now > 86400000 ? 86400000 : (int)(first - now);
}

int exec_pool_fd(const struct exec_pool *p)
{
	return p->epfd;
}

int exec_pool_running(const struct exec_pool *p)
{
	return p->nrunning;
}

int exec_pool_queued(const struct exec_pool *p)
{
	return p->nqueued;
}

void exec_pool_set_max_output(struct exec_pool *p, size_t max)
{
	if (max > 0)
		p->o.max_output = max;
}

int exec_pool_new(struct exec_pool **out, const struct exec_opts *opts)
{
	struct exec_pool *p;
	struct sigaction ign;
	sigset_t chld, old;
	int rc;

	if (!opts->argv || !opts->argv[0] || !opts->done || opts->jobs < 0 ||
	    opts->queue < -1 || opts->timeout_ms < 0 || opts->grace_ms < 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->o = *opts;
	if (!p->o.jobs)
		p->o.jobs = 4;
	if (!p->o.queue)
		p->o.queue = 64;
	else if (p->o.queue < 0)
		p->o.queue = 0;
	if (!p->o.grace_ms)
		p->o.grace_ms = 500;
	if (!p->o.max_output)
		p->o.max_output = 1024 * 1024;
	p->sigfd = -1;
	p->had_nofile = getrlimit(RLIMIT_NOFILE, &p->nofile) == 0;

	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0) {
		rc = -errno;
		goto fail;
	}
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	p->sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (p->sigfd < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = exec_watch_add(p, p->sigfd, EPOLLIN, NULL)) < 0)
		goto fail;
	sigprocmask(SIG_BLOCK, &chld, &old);
	p->chld_was_blocked = sigismember(&old, SIGCHLD);
	/* writes to a child's stdin that it closed must give EPIPE, not kill */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &p->old_pipe);
	*out = p;
	return 0;

fail:
	exec_close(&p->sigfd);
	exec_close(&p->epfd);
	free(p);
	return rc;
}

/* Wait up to ms for every running child to be reaped. */
static void exec_reap_for(struct exec_pool *p, int ms)
{
	int64_t end = exec_now_ms() + ms;

	for (;;) {
		int left = 0;
		for (struct exec_job *j = p->running; j; j = j->next) {
			if (!j->reaped && waitpid(j->pid, &j->status, WNOHANG) != 0)
				j->reaped = 1;
			left += !j->reaped;
		}
		int64_t now = exec_now_ms();
		if (!left || now >= end)
			return;
		struct timespec ts = { 0, 10 * 1000000 };
		nanosleep(&ts, NULL);
	}
}

void exec_pool_free(struct exec_pool *p)
{
	struct exec_job *j;

	if (!p)
		return;
	for (j = p->running; j; j = j->next)
		if (!j->reaped)
			exec_signal(j, SIGTERM);
	exec_reap_for(p, p->o.grace_ms);
	for (j = p->running; j; j = j->next) {
		if (!j->reaped) {
			exec_signal(j, SIGKILL);
			while (waitpid(j->pid, &j->status, 0) < 0 && errno == EINTR)
				;
			j->reaped = 1;
		}
	}
	while ((j = p->running)) {
		p->running = j->next;
		if (p->o.release)
			p->o.release(p->o.arg, j->req);
		exec_job_free(j);
	}
	while ((j = p->qhead)) {
		p->qhead = j->next;
		if (p->o.release)
			p->o.release(p->o.arg, j->req);
		exec_job_free(j);
	}
	exec_close(&p->sigfd);
	exec_close(&p->epfd);
	if (!p->chld_was_blocked) {
		sigset_t chld;
		sigemptyset(&chld);
		sigaddset(&chld, SIGCHLD);
		sigprocmask(SIG_UNBLOCK, &chld, NULL);
	}
	sigaction(SIGPIPE, &p->old_pipe, NULL);
	free(p);
}
