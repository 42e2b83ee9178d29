/*
 * harness.h: what the integration tests share.
 *
 * - a test program: a table of CUnit cases run with a cleanup after each
 *   case, a watchdog, and the exit status automake expects (0 pass, 1 fail,
 *   77 skip, 99 hard error);
 * - a cleanup stack: everything a case creates (brokers, child processes,
 *   temporary folders, connections) is pushed there and undone after the
 *   case, also when an assertion stopped it half-way;
 * - brokers: ipcbusd ($IPCBUSD) in a fresh folder under /tmp with a
 *   generated configuration, started until its socket accepts, stopped with
 *   TERM (KILL after a bound), restarted on the same socket;
 * - a raw protocol client on proto/frame.h, for the broker tests the client
 *   library would not let one write (bad frames, raw bytes, exact ids);
 * - child processes (the CLI, $IPCBUS_CLI, or ipcbusd itself) with their
 *   stdin given, stdout and stderr captured, and a timeout.
 *
 * Every child is killed and reaped after each case and at exit, even when
 * the case failed; nothing is left in /tmp.  Functions that can fail return
 * 0 (or a pointer) on success and a negative value (or NULL) on failure, and
 * never abort the program.
 */
#ifndef IPCBUS_TESTS_HARNESS_H
#define IPCBUS_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <CUnit/CUnit.h>

#include "buf.h"
#include "frame.h"

/* ---- the test program ---- */

struct harness_case {
	const char *name;
	void (*fn)(void);
};

#define HARNESS_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Run the cases as one CUnit suite and return the exit status: 0 pass,
 * 1 fail, 77 skip (no $IPCBUSD, or need_cli and no $IPCBUS_CLI), 99 hard
 * error.  With an argument, only the cases whose name contains it run.
 * The whole program is killed by a watchdog after watchdog_s seconds (exit
 * 99, children killed, folders removed). */
int harness_main(const char *suite, const struct harness_case *cases, size_t n,
		 int need_cli, int watchdog_s, int argc, char **argv);

/* ---- the cleanup stack ---- */

/* Run fn(arg) at the end of the current case (in reverse order of
 * registration).  Returns 0 or -ENOMEM (fn is then run at once). */
int harness_defer(void (*fn)(void *), void *arg);

/* Forget the cleanup registered for arg (the object was freed by hand). */
void harness_undefer(void *arg);

/* Run every registered cleanup now. */
void harness_cleanup(void);

/* ---- time ---- */

/* Monotonic milliseconds. */
uint64_t harness_now(void);

void harness_sleep(int ms);

/* ---- folders ---- */

/* A new empty folder under /tmp (mode 0700), removed with everything in it
 * at cleanup.  The string is owned by the harness.  NULL on failure. */
const char *harness_tmpdir(void);

/* Write a whole file (created 0600, truncated).  0 or -errno. */
int harness_write_file(const char *path, const char *text);

/* Read a whole file, NUL-terminated; the caller frees it.  NULL when it
 * cannot be read. */
char *harness_read_file(const char *path, size_t *len);

/* ---- child processes ---- */

struct harness_proc {
	pid_t pid;
	int out_fd, err_fd;   /* read ends, -1 once at EOF */
	char *out, *err;      /* what was captured so far, NUL-terminated */
	size_t out_len, err_len;
	int exited;           /* reaped */
	int status;           /* exit code, or 128 + signal */
};

/* Start argv[0] (a path) with argv; stdin is in[0..in_len) (in NULL:
 * /dev/null); stdout and stderr are captured.  The process is killed and
 * reaped at cleanup unless harness_proc_free() ran first.  NULL on failure. */
struct harness_proc *harness_proc_start(char *const argv[], const char *in, size_t in_len);

/* Same for the CLI: $IPCBUS_CLI with the given arguments (NULL-ended). */
struct harness_proc *harness_cli_start(const char *in, size_t in_len, const char *arg, ...)
	__attribute__((sentinel));

/* Read what the process wrote, for up to timeout_ms; returns early when it
 * exited.  1 when it exited (p->status), 0 otherwise. */
int harness_proc_pump(struct harness_proc *p, int timeout_ms);

/* Wait up to timeout_ms until stdout holds needle: 0 when it does, -1 when
 * the time ran out or the process exited without it. */
int harness_proc_wait_out(struct harness_proc *p, const char *needle, int timeout_ms);

/* Wait up to timeout_ms for the exit, reading its output; returns the exit
 * status, or -1 when it still runs. */
int harness_proc_wait(struct harness_proc *p, int timeout_ms);

/* Send sig (when it still runs). */
void harness_proc_signal(struct harness_proc *p, int sig);

/* KILL and reap when it still runs, then free. */
void harness_proc_free(struct harness_proc *p);

/* Run the CLI to its end (killed after timeout_ms): returns the process
 * (exited, or status -1 when it had to be killed) for its output and
 * status; free it with harness_proc_free (or leave it to cleanup). */
struct harness_proc *harness_cli(int timeout_ms, const char *in, size_t in_len,
				 const char *arg, ...) __attribute__((sentinel));

/* fork() with the child registered to be killed at cleanup.  The child
 * gets a watchdog (SIGALRM after watchdog_s) in case the test dies
 * without killing it, and must end with _exit(). */
pid_t harness_fork(int watchdog_s);

/* Make pid (a child of ours, e.g. a daemon reparented to us) killed and
 * reaped at cleanup, unless harness_wait_pid() reaped it first. */
void harness_adopt(pid_t pid);

/* Wait up to timeout_ms for a child from harness_fork(); its exit status
 * (128 + signal), or -1 when it still runs. */
int harness_wait_pid(pid_t pid, int timeout_ms);

/* ---- brokers ---- */

struct harness_broker {
	char dir[64];       /* its folder, removed at cleanup */
	char sock[160];     /* socket path (default DIR/ipcbus.sock) */
	char url[200];      /* unix://SOCK (with query, if any) */
	char conf[96];      /* DIR/ipcbusd.conf */
	char log[96];       /* DIR/ipcbusd.log: the broker's stderr */
	char pidfile[96];   /* DIR/ipcbusd.pid (used when the config names it) */
	char *lines;        /* extra configuration lines */
	pid_t pid;          /* running broker, or 0 */
	int status;         /* exit status of the last run */
	size_t log_checked; /* log bytes already searched for sanitizer reports */
	long nofile;        /* > 0: RLIMIT_NOFILE (soft and hard) of the broker */
};

/* A broker (not started) in a new folder: the configuration is
 * "listen unix://SOCK" followed by lines, where "@DIR@" stands for the
 * folder.  NULL on failure.  Stopped and removed at cleanup. */
struct harness_broker *harness_broker_new(const char *lines);

/* Change the listen URL before start (the socket path is taken from it);
 * an empty url writes no listen line at all. */
void harness_broker_set_url(struct harness_broker *b, const char *url);

/* Write the configuration file and start `ipcbusd -c CONF` plus extra
 * arguments (NULL-ended; may be NULL).  0 once the broker logged "ready"
 * and its socket accepts (bounded), else -1 with the broker killed. */
int harness_broker_start(struct harness_broker *b, const char *const *extra);

/* Write the configuration and spawn ipcbusd -c CONF plus extra, without
 * waiting for anything: the pid (tracked), or -1. */
pid_t harness_broker_exec(struct harness_broker *b, const char *const *extra);

/* The broker binary: $IPCBUSD, else $top_builddir/broker/ipcbusd. */
const char *harness_ipcbusd(void);

/* new + start; NULL (and a CUnit failure) when it did not come up. */
struct harness_broker *harness_broker_up(const char *lines);

/* TERM, wait (bounded), KILL after; returns the exit status. */
int harness_broker_stop(struct harness_broker *b);

/* KILL and reap: leaves its socket file behind, as a crash would. */
void harness_broker_kill(struct harness_broker *b);

/* Start again on the same socket; 0 or -1. */
int harness_broker_restart(struct harness_broker *b);

/* VmRSS of the running broker in KiB, or -1. */
long harness_broker_rss(const struct harness_broker *b);

/* 1 when the broker's log holds needle. */
int harness_broker_log_has(const struct harness_broker *b, const char *needle);

/* Wait up to timeout_ms for the log to hold needle: 0 or -1. */
int harness_broker_wait_log(const struct harness_broker *b, const char *needle, int timeout_ms);

/* Stop, remove the folder, free.  NULL does nothing. */
void harness_broker_free(struct harness_broker *b);

/* 0 when a Unix stream socket at path accepts a connection. */
int harness_can_connect(const char *path);

/* ---- the raw protocol client ---- */

struct harness_rawq;

struct harness_raw {
	int fd;                 /* the socket; -1 on sysv:// */
	struct harness_rawq *q; /* sysv://: the queues (harness_sysv.c), else NULL */
	struct buf in;
	struct frame f;         /* the frame last read; points into body */
	uint8_t *body;
	size_t body_cap;
	/* the ERR last read */
	int err_code, err_fatal, err_closing;
	char err_text[512];
	Ipcbus__Welcome *welcome; /* after harness_raw_open */
	int auto_pong;          /* answer the broker's PINGs while reading (1) */
	uint64_t pings;         /* PINGs received from the broker */
	uint64_t next_id;       /* for barriers */
};

/* Connect to a Unix socket; nothing sent.  Closed at cleanup.  NULL on
 * failure. */
struct harness_raw *harness_raw_connect(const char *sock);

/* Connect, HELLO (version 1, name), and read the WELCOME (5 s); NULL on
 * failure. */
struct harness_raw *harness_raw_open(const struct harness_broker *b, const char *name);

void harness_raw_close(struct harness_raw *r);

/* Send bytes as they are (blocking, bounded by 5 s).  0 or -errno. */
int harness_raw_send(struct harness_raw *r, const void *p, size_t n);

/* Send a frame with its length prefix.  0 or -errno. */
int harness_raw_frame(struct harness_raw *r, const struct frame *f,
		      const struct frame_header *h, size_t nh);

int harness_raw_hello(struct harness_raw *r, uint64_t id, uint32_t version, const char *name);
/* What r's medium adds to a HELLO made by hand (sysv://: Hello.sysv, in
 * sv, which must live until h is encoded); nothing on a socket. */
void harness_raw_hello_fill(const struct harness_raw *r, Ipcbus__Hello *h, Ipcbus__Sysv *sv);
/* reply_to may be NULL. */
int harness_raw_pub(struct harness_raw *r, uint64_t id, const char *channel, const char *reply_to,
		    const void *data, size_t len);
/* queue may be NULL. */
int harness_raw_sub(struct harness_raw *r, uint64_t id, uint64_t sid, const char *pattern,
		    const char *queue);
int harness_raw_unsub(struct harness_raw *r, uint64_t id, uint64_t sid);
int harness_raw_ping(struct harness_raw *r, uint64_t id);

/* Read the next frame into r->f (the broker's PINGs are answered and
 * skipped when auto_pong).  1: a frame; 0: none within timeout_ms;
 * -1: the broker closed the connection (EOF or reset); -2: bytes that do
 * not decode. */
int harness_raw_read(struct harness_raw *r, int timeout_ms);

/* Read the next frame and check it is an ERR with code (and id, unless id
 * is UINT64_MAX).  1 when it is; else 0, with a CUnit-friendly note on
 * stderr. */
int harness_raw_expect_err(struct harness_raw *r, int code, uint64_t id, int timeout_ms);

/* Read frames until the connection closes: 1 when it did within
 * timeout_ms, else 0.  Frames read on the way are dropped, except that an
 * ERR among them is kept in r->err_*. */
int harness_raw_wait_closed(struct harness_raw *r, int timeout_ms);

/* A round trip: send PING with a fresh id and read until its PONG, calling
 * fn (may be NULL) for every other frame read on the way.  1 when the PONG
 * came, 0 on timeout, -1 when closed. */
int harness_raw_barrier(struct harness_raw *r, int timeout_ms,
			void (*fn)(void *arg, struct harness_raw *r), void *arg);

/* 1 when r->f is a MSG with sid and payload s (NUL-terminated). */
int harness_raw_is_msg(const struct harness_raw *r, uint64_t sid, const char *s);

/* Publish a request (reply_to _INBOX.harness.probe) on channel until the
 * broker stops answering "no responders", i.e. until somebody subscribed;
 * each probe that got through was delivered once with payload "probe".
 * 0 when a probe got through within timeout_ms, else -1. */
int harness_raw_wait_interest(struct harness_raw *r, const char *channel, int timeout_ms);

/* ---- transports (tests/transport/ and whoever needs a URL) ---- */

/* What harness_main() does before it builds its suite, for a program that
 * builds its own CUnit registry (several suites): checks $IPCBUSD (and
 * $IPCBUS_CLI when need_cli), ignores SIGPIPE, arms the watchdog
 * (watchdog_s), makes the program a subreaper, runs the cleanups at exit
 * and unsets IPCBUS_URL and IPCBUS_TOKEN.  0, or 77 with a note on stderr.
 * Run harness_cleanup() after each case (as a CUnit teardown). */
int harness_init(const char *name, int need_cli, int watchdog_s);

/* Connect the raw client to a URL: unix:///path[?...] or
 * tcp://[TOKEN@]host:port (a name, an IPv4 address or [IPv6]; every
 * address the name resolves to is tried; TCP_NODELAY).  Nothing is sent
 * (a token in the URL is not used yet), or sysv://KEY (harness_rawq_open:
 * its queues and proof; the first bytes sent are the HELLO, which
 * harness_raw_hello gives Hello.sysv).  Closed at cleanup.  NULL with
 * errno: EPROTONOSUPPORT for a scheme the raw client does not speak (tls,
 * udp, shm), EINVAL for a URL that does not parse, else connect's. */
struct harness_raw *harness_raw_connect_url(const char *url);

/* harness_raw_connect_url, HELLO (version 1, name) and the WELCOME (5 s);
 * NULL on failure (errno as above, or EPROTO). */
struct harness_raw *harness_raw_open_url(const char *url, const char *name);

/* The raw client's SysV medium (harness_sysv.c), for sysv://KEY: a
 * connection's queues and proof made (errno ECONNREFUSED: no queue at
 * key); the first harness_rawq_send() goes to the broker's queue as the
 * HELLO (at most 4 KiB, one message), the rest to the send queue.  recv
 * returns bytes of the reply stream, 0 at its end, -EAGAIN when nothing
 * is there, -ECONNRESET when our queue was removed.  close removes both
 * queues (as a client that ends, or one that vanished). */
struct harness_rawq *harness_rawq_open(long key);
void harness_rawq_hello(const struct harness_rawq *q, int *reply, int *send, uint64_t *proof);
int harness_rawq_send(struct harness_rawq *q, const void *p, size_t n, uint64_t deadline);
ssize_t harness_rawq_recv(struct harness_rawq *q, void *p, size_t n);
void harness_rawq_close(struct harness_rawq *q);
/* Remove the send queue only (what a client that stopped writing leaves
 * the broker to see).  0 or -errno. */
int harness_rawq_shutdown(struct harness_rawq *q);
/* 1 while the send queue holds a message: before anything but the HELLO
 * was sent, the proof, which the broker takes when it accepts the HELLO. */
int harness_rawq_proof_left(const struct harness_rawq *q);

/* Half-close: no more bytes from us (shutdown(SHUT_WR) on a socket; on
 * sysv:// the send queue is removed, which is what the broker sees of a
 * client that stopped writing).  0 or -errno. */
int harness_raw_shutdown(struct harness_raw *r);

/* A raw client around a connected descriptor (taken, also on failure):
 * nothing sent, closed at cleanup.  NULL when out of memory. */
struct harness_raw *harness_raw_adopt(int fd);

/* Close as a peer that vanished: on TCP with a reset (SO_LINGER 0), else a
 * plain close; then free, like harness_raw_close.  NULL does nothing. */
void harness_raw_abort(struct harness_raw *r);

/* A TCP port of the loopback (AF_INET: 127.0.0.1, AF_INET6: ::1) that was
 * free a moment ago (bound to port 0 and released); 0 when none. */
int harness_free_port(int family);

/* 1 when a TCP socket can be bound to [::1] (an IPv6 loopback), else 0. */
int harness_have_ipv6(void);

/* The path of cmd in $PATH (the first executable one) into out[0..n):
 * 0, or -ENOENT. */
int harness_which(const char *cmd, char *out, size_t n);

/* Throw-away TLS material made with the openssl command in dir: a CA, a
 * server certificate it signed (CN localhost; subjectAltName DNS:localhost,
 * IP:127.0.0.1, IP:::1; serverAuth) and a client certificate
 * (CN ipcbus-test-client; clientAuth), P-256 keys, valid for two days,
 * keys mode 0600.  The paths are written into *t. */
struct harness_tls {
	char ca[160], ca_key[160];         /* DIR/ca.pem, DIR/ca.key */
	char cert[160], key[160];          /* DIR/server.pem, DIR/server.key */
	char client_cert[160], client_key[160]; /* DIR/client.pem, DIR/client.key */
};

/* 0; -ENOENT when there is no openssl command; -EIO when openssl failed
 * (its stderr is copied to ours). */
int harness_tls_make(const char *dir, struct harness_tls *t);

/* Run the openssl command with args (NULL-ended, at most 38), for
 * certificates a test needs beyond harness_tls_make's: 0, -ENOENT when
 * there is no openssl command, -EIO when it failed (stderr copied). */
int harness_openssl_run(const char *const *args);

/* Under AddressSanitizer freed memory stays resident in its quarantine
 * (256 MiB by default), which hides any bound on a process's memory (VmRSS
 * grows by whatever was freed): give the processes started from now on
 * (brokers, children) a quarantine of mb MiB, appended to $ASAN_OPTIONS.
 * Returns mb in a build with AddressSanitizer, else 0 (nothing changed).
 * Call it once, before starting them. */
int harness_asan_quarantine(int mb);

/* 1 when this build has AddressSanitizer: VmRSS then says nothing about
 * the broker's own bounds (the sanitizer's allocator keeps what was
 * freed), so memory tests check the broker's accounting instead. */
int harness_sanitized(void);

/* The broker's own account of what it holds for clients, from its USR1
 * status line: bytes held now and the peak since start.  0, or -1 when no
 * status line came within 2 s. */
int harness_broker_held(struct harness_broker *b, size_t *held, size_t *peak);

#endif
