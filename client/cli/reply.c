/*
 * reply.c: `ipcbus reply`, a responder.
 *
 * Without COMMAND it echoes each request's payload.  With COMMAND every
 * request goes to the exec bridge (exec.c), which runs COMMAND with the
 * payload on stdin and hands back its stdout as the reply.  One poll loop
 * watches the connection, the bridge and a signalfd for INT/TERM, which
 * stop the responder: running children are killed and reaped, exit 0.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>

#include "cli.h"
#include "exec.h"

struct reply {
	ipcbus *c;
	struct exec_pool *pool;
	int answered;   /* replies buffered since the last dispatch */
};

static void reply_usage(FILE *f, int full)
{
	fprintf(f, "usage: ipcbus reply [-u URL] [-q GROUP] [-j N] [--exec-timeout MS] PATTERN\n"
		   "                    [-- COMMAND [ARG]...]\n");
	if (!full)
		return;
	fprintf(f,
		"  without COMMAND: answer each request with its own payload\n"
		"  with COMMAND: run it per request (no shell), payload on its stdin,\n"
		"  its stdout is the reply\n"
		"  -u URL             the broker (default: $IPCBUS_URL, else the usual socket)\n"
		"  -q GROUP           share the requests with the group's other members\n"
		"  -j N               children at once (default 4; 64 more wait, then busy)\n"
		"  --exec-timeout MS  kill a child after MS milliseconds (default 10000,\n"
		"                     0: never)\n");
}

/* The pool's answer: respond and free the request copy. */
static void reply_done(void *arg, void *req, const ipcbus_header *h, size_t nh,
		       const void *out, size_t len)
{
	struct reply *r = arg;
	ipcbus_msg *m = req;
	int rc = ipcbus_respond(r->c, m, h, nh, out, len);

	if (rc < 0)
		cli_err("reply", "cannot answer on %.*s: %s", (int)m->reply_to_len,
			m->reply_to, ipcbus_strerror(rc));
	r->answered++;
	ipcbus_msg_free(m);
}

static void reply_release(void *arg, void *req)
{
	ipcbus_msg_free(req);
}

static void reply_on_msg(void *arg, const ipcbus_msg *msg)
{
	struct reply *r = arg;
	int rc;

	/* not a request: nobody to answer */
	if (!msg->reply_to)
		return;
	if (!r->pool) {
		rc = ipcbus_respond(r->c, msg, NULL, 0, msg->data, msg->len);
		if (rc < 0)
			cli_err("reply", "cannot answer: %s", ipcbus_strerror(rc));
		r->answered++;
		return;
	}
	/* the message is borrowed for this call; the child needs it longer */
	ipcbus_msg *copy = ipcbus_msg_dup(msg);
	if (!copy) {
		cli_err("reply", "out of memory, request dropped");
		return;
	}
	rc = exec_pool_submit(r->pool, copy->data, copy->len, copy);
	if (rc < 0) {
		cli_err("reply", "request dropped: %s", strerror(-rc));
		ipcbus_msg_free(copy);
	}
}

/* The smaller of two timeouts where -1 means none. */
static int reply_min_timeout(int a, int b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

static int reply_loop(struct reply *r, int sigfd)
{
	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = ipcbus_fd(r->c), .events = POLLIN },
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = r->pool ? exec_pool_fd(r->pool) : -1, .events = POLLIN },
		};
		int t = ipcbus_timeout(r->c);

		if (r->pool)
			t = reply_min_timeout(t, exec_pool_timeout(r->pool));
		if (poll(pfd, 3, t) < 0 && errno != EINTR) {
			cli_err("reply", "poll: %s", strerror(errno));
			return CLI_ERROR;
		}
		if (pfd[1].revents)
			return CLI_OK;
		if (r->pool) {
			int rc = exec_pool_run(r->pool);
			if (rc < 0) {
				cli_err("reply", "exec: %s", strerror(-rc));
				return CLI_ERROR;
			}
		}
		/* answers given now (by the pool, or from inside dispatch)
		 * are buffered: one more dispatch writes them */
		for (int i = 0; i < 3; i++) {
			r->answered = 0;
			int rc = ipcbus_dispatch(r->c);
			if (rc < 0) {
				cli_err("reply", "%s", ipcbus_strerror(rc));
				return cli_exit_code(rc);
			}
			if (!r->answered)
				break;
		}
	}
}

int cmd_reply(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "exec-timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *group = NULL, *pattern;
	char **command = NULL;
	long jobs = 4, timeout = 10000;
	struct reply r = { 0 };
	uint64_t sid = 0;
	sigset_t stop, old;
	int opt, err, sigfd = -1, rc = CLI_ERROR;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+u:q:j:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'q':
			group = optarg;
			break;
		case 'j':
			if (cli_parse_long(optarg, 1, 1024, &jobs) < 0) {
				cli_err("reply", "-j wants a number from 1 to 1024, not '%s'", optarg);
				return CLI_USAGE;
			}
			break;
		case 'T':
			if (cli_parse_long(optarg, 0, 86400000, &timeout) < 0) {
				cli_err("reply", "--exec-timeout wants milliseconds, not '%s'", optarg);
				return CLI_USAGE;
			}
			break;
		case 'h':
			reply_usage(stdout, 1);
			return CLI_OK;
		default:
			reply_usage(stderr, 0);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		reply_usage(stderr, 0);
		return CLI_USAGE;
	}
	pattern = argv[optind++];
	if (optind < argc) {
		/* COMMAND only after "--", so a misplaced option is not run */
		if (strcmp(argv[optind], "--") != 0 || optind + 1 >= argc) {
			reply_usage(stderr, 0);
			return CLI_USAGE;
		}
		command = argv + optind + 1;
	}

	if (group && !cli_valid_group(group)) {
		cli_err("reply", "invalid queue group '%s' (1 to 255 of A-Z a-z 0-9 _ - .)", group);
		return CLI_USAGE;
	}
	if (command) {
		/* made before connecting: it records RLIMIT_NOFILE as it was
		 * at start, for the children */
		struct exec_opts eo = {
			.argv = command,
			.jobs = (int)jobs,
			.timeout_ms = (int)timeout,
			.done = reply_done,
			.release = reply_release,
			.arg = &r,
		};
		err = exec_pool_new(&r.pool, &eo);
		if (err < 0) {
			cli_err("reply", "cannot start the exec bridge: %s", strerror(-err));
			return CLI_ERROR;
		}
	}
	r.c = cli_connect("reply", url, "ipcbus reply");
	if (!r.c)
		goto out;
	if (r.pool && ipcbus_max_payload(r.c) > 0)
		exec_pool_set_max_output(r.pool, (size_t)ipcbus_max_payload(r.c));

	err = ipcbus_subscribe(r.c, pattern, group, reply_on_msg, &r, &sid);
	if (err == 0)
		err = ipcbus_flush(r.c, 5000);
	if (err < 0) {
		const char *why = ipcbus_last_error(r.c);
		cli_err("reply", "cannot subscribe to %s: %s", pattern,
			why && *why ? why : ipcbus_strerror(err));
		rc = cli_exit_code(err);
		goto out;
	}

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0) {
		cli_err("reply", "signalfd: %s", strerror(errno));
		goto out;
	}
	sigprocmask(SIG_BLOCK, &stop, &old);
	rc = reply_loop(&r, sigfd);
	/* let the group's other members take new requests at once */
	if (rc == CLI_OK) {
		ipcbus_unsubscribe(r.c, sid);
		ipcbus_dispatch(r.c);
	}

out:
	/* kills and reaps the children before the connection goes */
	exec_pool_free(r.pool);
	ipcbus_close(r.c);
	if (sigfd >= 0) {
		/* take the INT/TERM that stopped us, or unblocking delivers it */
		struct signalfd_siginfo si;
		while (read(sigfd, &si, sizeof(si)) > 0)
			;
		close(sigfd);
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	return rc;
}
