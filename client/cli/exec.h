/*
 * exec.h: the exec bridge of `ipcbus reply -- COMMAND`, a pool of child
 * processes that each answer one request.
 *
 * A request submitted to the pool runs COMMAND at once when fewer than
 * `jobs` children are running, else waits in a bounded queue, else is
 * refused as busy.  The child gets the request payload on its stdin and its
 * stdout becomes the reply payload; the pool marks the reply with the
 * `ipcbus-` headers of DESIGN.md (exit status, signal, error).  It knows
 * nothing of the broker: the caller gets each answer through a callback, so
 * the pool can be tested without one.
 *
 * The pool is driven like the client library: poll exec_pool_fd() for
 * reading, call exec_pool_run() when it is readable and after
 * exec_pool_timeout() milliseconds at the latest.  It is meant for a
 * single-threaded program: while a pool exists SIGCHLD is blocked (a
 * signalfd reaps the children) and SIGPIPE is ignored; exec_pool_free()
 * restores both.  Children start clean: default dispositions, an empty
 * signal mask, their own process group, only fds 0-2, and the soft
 * RLIMIT_NOFILE the process had when the pool was made.
 */
#ifndef IPCBUS_CLI_EXEC_H
#define IPCBUS_CLI_EXEC_H

#include <stddef.h>

#include "ipcbus.h"

/* Error values of the `ipcbus-error` header. */
#define EXEC_ERR_TIMEOUT "timeout"   /* ran past the timeout, killed */
#define EXEC_ERR_BUSY "busy"         /* -j children running and the queue full */
#define EXEC_ERR_SPAWN "spawn"       /* could not be started (not found, ...) */
#define EXEC_ERR_OVERFLOW "overflow" /* stdout over max_output, killed */

/*
 * The answer to one request: req is what was given to exec_pool_submit();
 * headers (nheaders may be 0) and the output are borrowed for the call
 * only.  Called exactly once per submitted request, from exec_pool_submit()
 * itself when the request is refused or cannot be spawned, else from
 * exec_pool_run().  The callback may submit again.
 */
typedef void (*exec_done_cb)(void *arg, void *req, const ipcbus_header *headers,
			     size_t nheaders, const void *out, size_t len);

struct exec_opts {
	char *const *argv;     /* COMMAND and its arguments, NULL-terminated; borrowed
				* for the pool's lifetime; argv[0] is looked up in PATH */
	int jobs;              /* children at once; 0: 4 */
	int queue;             /* requests waiting for a child; 0: 64; -1: none */
	int timeout_ms;        /* per child; 0: none */
	int grace_ms;          /* from SIGTERM to SIGKILL; 0: 500 */
	size_t max_output;     /* stdout bytes kept; more kills the child; 0: 1 MiB */
	exec_done_cb done;
	/* Called by exec_pool_free() for each request that was never answered
	 * (queued or running), so the caller can free it; may be NULL. */
	void (*release)(void *arg, void *req);
	void *arg;
};

struct exec_pool;

/* Make a pool.  Blocks SIGCHLD and ignores SIGPIPE until it is freed.
 * Returns 0 and *out, or -errno (-EINVAL for bad options). */
int exec_pool_new(struct exec_pool **out, const struct exec_opts *opts);

/* Kill every running child (SIGTERM to its process group, SIGKILL after
 * the grace time), reap it, call opts.release for every unanswered request,
 * restore the signal mask and SIGPIPE, free.  NULL does nothing. */
void exec_pool_free(struct exec_pool *p);

/* Change the output bound (e.g. once the broker announced max-payload);
 * children already running keep theirs. */
void exec_pool_set_max_output(struct exec_pool *p, size_t max);

/*
 * Run COMMAND for one request, or queue it, or answer busy at once.  data
 * (len bytes) is the payload for stdin, borrowed until done is called for
 * req; req is opaque to the pool and handed back to done.  Returns 0: done
 * will be called exactly once (it may already have been, for busy or
 * spawn).  A negative code (-ENOMEM, -EMFILE...) means done will not be
 * called and the caller still owns req.
 */
int exec_pool_submit(struct exec_pool *p, const void *data, size_t len, void *req);

/* Descriptor to poll for reading; the same for the pool's lifetime. */
int exec_pool_fd(const struct exec_pool *p);

/* Milliseconds until exec_pool_run() is due at the latest, -1: none. */
int exec_pool_timeout(const struct exec_pool *p);

/* Do what is due without blocking: feed stdins, read stdouts, reap
 * children, kill the late ones, answer the finished ones, start queued
 * requests.  Returns the number of requests answered, or -errno when the
 * pool's own descriptors failed. */
int exec_pool_run(struct exec_pool *p);

/* Requests running and waiting. */
int exec_pool_running(const struct exec_pool *p);
int exec_pool_queued(const struct exec_pool *p);

#endif
