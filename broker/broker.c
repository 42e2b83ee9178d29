/*
 * broker.c: the broker's lifecycle (init, run, drain, fini), accepting
 * connections, the keepalive timer and the before-sleep flush.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "bridge.h"
#include "broker.h"
#include "interest.h"
#include "conn.h"
#include "proto.h"
#include "rawq.h"
#include "router.h"
#include "transport.h"

/* Descriptors beyond max-connections: listeners, signalfd, epoll, logs. */
#define BROKER_SPARE_FDS 64

static void broker_keepalive(void *arg);
static uint64_t broker_tick_ms(const struct broker *b);

void broker_mark_dirty(struct broker *b, struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dirty_next = b->dirty;
	b->dirty = c;
}

struct conn *broker_pop_dirty(struct broker *b)
{
	struct conn *c = b->dirty;
	if (c) {
		b->dirty = c->dirty_next;
		c->dirty = 0;
		c->dirty_next = NULL;
	}
	return c;
}

void broker_mark_closing(struct broker *b, struct conn *c)
{
	c->close_next = b->closing;
	b->closing = c;
	b->nclosing++;
	if (c->outbound)
		b->noutbound--; /* counted once, as closing */
	/* the last output goes out in before-sleep (broker_reap) */
}

/* Log the refusals counted since the last such line. */
static void broker_refuse_log(struct broker *b)
{
	if (!b->refused)
		return;
	log_warn(&b->log, "refused %llu connection(s): the broker is full (max-connections %llu)",
		 (unsigned long long)b->refused, (unsigned long long)b->cfg.max_connections);
	b->refused = 0;
	b->refused_logged = loop_now(b->loop);
}

static void broker_refuse_timer(void *arg)
{
	broker_refuse_log(arg); /* not re-armed: the next refusal does that */
}

/* At exit: what was counted but not logged yet. */
static void broker_refuse_flush(struct broker *b)
{
	loop_timer_cancel(b->loop, &b->refuse_log);
	broker_refuse_log(b);
}

int broker_admit(struct broker *b, char *why, size_t n)
{
	/* closing ones are on their way out (at most CONN_LINGER_MS +
	 * CONN_DRAIN_MS): they hold a descriptor, not a place; nor do the
	 * connections the broker dialed itself */
	if (b->nconns - b->nclosing - b->noutbound < b->cfg.max_connections)
		return 1;
	snprintf(why, n, "the broker is full (max-connections %llu)",
		 (unsigned long long)b->cfg.max_connections);
	return 0;
}

/* A connection refused by its transport after broker_admit() said no.
 * Logged at most once a second: the first refusal after a quiet second at
 * once, the ones that follow counted and logged by a timer a second after
 * that line, so the end of a burst is logged too.  The timer is armed only
 * while a count waits. */
void broker_refused(struct broker *b, const char *why)
{
	b->refused++;
	b->stats.refused++;
	if (b->refuse_log.armed)
		return;
	uint64_t now = loop_now(b->loop);
	if (now - b->refused_logged >= 1000)
		broker_refuse_log(b);
	else
		loop_timer_set(b->loop, &b->refuse_log, b->refused_logged + 1000 - now,
			       broker_refuse_timer, b);
}

void broker_add_conn(struct broker *b, struct conn *c)
{
	c->next = b->conns;
	if (b->conns)
		b->conns->prev = c;
	b->conns = c;
	b->nconns++;
	if (c->outbound)
		b->noutbound++;
	else
		b->stats.conns_total++;
	if (!b->keepalive.armed)
		loop_timer_set(b->loop, &b->keepalive, broker_tick_ms(b), broker_keepalive, b);
}

static void broker_unlink_conn(struct broker *b, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		b->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	b->nconns--;
}

static void broker_linger_expired(void *arg)
{
	(void)arg; /* the before-sleep step that follows does the work */
}

/* Closed connections, in steps: write what is queued (the ERR that says
 * why) for at most CONN_LINGER_MS; then shut the write side down, so the
 * peer reads the ERR and EOF, and discard what it still sends for at most
 * CONN_DRAIN_MS (a socket closed with unread input is reset, and the reset
 * would destroy the ERR before the peer reads it); free it at the peer's
 * EOF or when the time is up. */
static void broker_reap(struct broker *b)
{
	uint64_t now = loop_now(b->loop);
	uint64_t wait = 0;

	for (struct conn **pp = &b->closing; *pp;) {
		struct conn *c = *pp;
		uint64_t left = 0;
		if (c->out.len && !c->eof && c->ops->flush(c) < 0)
			c->eof = 1;
		if (c->eof) {
			left = 0;
		} else if (c->out.len) {
			uint64_t age = now - c->closed_at;
			left = age < CONN_LINGER_MS ? CONN_LINGER_MS - age : 0;
		} else if (c->ops->shutdown && !b->stopping) {
			if (!c->shut) {
				c->ops->shutdown(c);
				c->shut = 1;
				c->shut_at = now;
			}
			uint64_t age = now - c->shut_at;
			left = age < CONN_DRAIN_MS ? CONN_DRAIN_MS - age : 0;
		}
		if (left) {
			conn_watch(c);
			if (!wait || left < wait)
				wait = left;
			pp = &c->close_next;
			continue;
		}
		*pp = c->close_next;
		b->nclosing--;
		broker_unlink_conn(b, c);
		conn_free(c);
	}
	if (wait && !b->linger.armed)
		loop_timer_set(b->loop, &b->linger, wait, broker_linger_expired, b);
}

/* Before sleeping: write every connection's output once, then deal with
 * the connections closed during this turn. */
static void broker_before_sleep(void *arg)
{
	struct broker *b = arg;

	b->turn++;
	struct conn *c;
	while ((c = broker_pop_dirty(b)))
		if (c->state != CONN_CLOSING)
			conn_flush(c);
	broker_reap(b);
	if (b->stopping && (b->pending == 0 || !b->conns))
		loop_stop(b->loop);
}

/* Every second (or half a ping-interval, if shorter): drop connections
 * that never said HELLO, ping idle ones, drop those that do not answer. */
static uint64_t broker_tick_ms(const struct broker *b)
{
	uint64_t iv = b->cfg.ping_interval;
	return iv && iv / 2 < 1000 ? (iv / 2 ? iv / 2 : 1) : 1000;
}

static void broker_keepalive(void *arg)
{
	struct broker *b = arg;
	uint64_t now = loop_clock_ms();
	uint64_t iv = b->cfg.ping_interval;
	uint64_t hello = iv && iv < CONN_HELLO_MS ? iv : CONN_HELLO_MS;

	for (struct conn *c = b->conns; c; c = c->next) {
		if (c->state == CONN_CLOSING)
			continue;
		conn_trim(c);
		if (c->dialing) {
			/* dialing out: the connect and the TLS handshake get
			 * the HELLO deadline, from the dial (a blackholed peer
			 * ends); no ERR, nobody was spoken to */
			char why[160];
			if (now - c->last_rx < hello)
				continue;
			if (c->dialing == CONN_DIAL_TLS)
				snprintf(why, sizeof why, "TLS handshake with %s: not done within %llu ms",
					 c->addr, (unsigned long long)hello);
			else
				snprintf(why, sizeof why, "connect %s: no answer within %llu ms", c->addr,
					 (unsigned long long)hello);
			conn_close(c, why);
			continue;
		}
		if (c->lease_ms) {
			/* a datagram session: its own traffic keeps it, and it
			 * ends in silence (the client learns at its next
			 * datagram: E_NO_SESSION) */
			if (now - c->last_rx >= c->lease_ms)
				conn_close(c, "lease expired");
			continue;
		}
		if (c->state == CONN_HELLO) {
			/* it holds a max-connections place: it must speak */
			if (now - c->last_rx >= hello)
				conn_error(c, 0, IPCBUS__ERR_CODE__E_NO_HELLO, 2,
					   "no HELLO within %llu ms of connecting",
					   (unsigned long long)hello);
			continue;
		}
		if (!iv)
			continue;
		if (c->ping_sent) {
			if (now - c->ping_sent >= iv && now - c->last_rx >= iv)
				conn_error(c, 0, IPCBUS__ERR_CODE__E_IDLE, 1,
					   "no answer to keepalive PING for %llu ms",
					   (unsigned long long)(now - c->ping_sent));
			else if (c->last_rx > c->ping_sent)
				c->ping_sent = 0; /* it talked: alive */
		} else if (now - c->last_rx >= iv) {
			struct frame ping = {.type = IPCBUS__FRAME_TYPE__PING, .has_id = 1,
					     .id = ++c->ping_id};
			if (conn_send(c, &ping) == 0)
				c->ping_sent = now;
		}
	}
	/* nobody connected: nothing to watch, no wake-ups (broker_accept
	 * starts the tick again) */
	if (b->conns)
		loop_timer_set(b->loop, &b->keepalive, broker_tick_ms(b), broker_keepalive, b);
}

static void broker_drain_timeout(void *arg)
{
	struct broker *b = arg;
	log_warn(&b->log, "drain-timeout reached with %llu bytes unsent; stopping",
		 (unsigned long long)b->pending);
	loop_stop(b->loop);
}

/* Stop listening: the sockets close and their files go.  The structs stay
 * until broker_fini(): this runs inside an event callback, and later events
 * of the same turn may still name a listener's watch. */
static void broker_close_listeners(struct broker *b)
{
	for (struct listener *l = b->listeners; l; l = l->next) {
		if (l->fd >= 0) {
			l->tr->unlisten(l);
			l->fd = -1;
		}
	}
}

static void broker_free_listeners(struct broker *b)
{
	broker_close_listeners(b);
	while (b->listeners) {
		struct listener *l = b->listeners;
		b->listeners = l->next;
		if (l->tr->fini)
			l->tr->fini(l);
		free(l);
	}
}

static void broker_stop(struct broker *b, int sig)
{
	if (b->stopping)
		return;
	b->stopping = 1;
	log_info(&b->log, "%s: stopping (draining for at most %llu ms)", strsignal(sig),
		 (unsigned long long)b->cfg.drain_timeout);
	broker_close_listeners(b);
	rawq_stop(b);
	/* read no more; what is queued goes out until the drain deadline */
	for (struct conn *c = b->conns; c; c = c->next)
		conn_watch(c);
	loop_timer_set(b->loop, &b->drain, b->cfg.drain_timeout, broker_drain_timeout, b);
}

/* HUP: reopen the log file (after logrotate moved it), with log_open()'s
 * checks: a symbolic link or a planted hard link at the log's name is
 * refused, and the log then stays in the file it was in.  Reloading the
 * configuration is not in this version. */
static void broker_hup(struct broker *b)
{
	if (b->cfg.log && b->log.path[0]) {
		if (log_open(&b->log, b->cfg.log) < 0) {
			log_error(&b->log, "SIGHUP: cannot reopen the %s; still logging here",
				  b->log.why);
			return;
		}
		log_info(&b->log, "SIGHUP: log reopened; configuration reload is not supported in this version");
		return;
	}
	log_info(&b->log, "SIGHUP: configuration reload is not supported in this version");
}

/* USR1: one line on the state of the broker, for an operator. */
static void broker_status(struct broker *b)
{
	const struct broker_stats *s = &b->stats;
	log_info(&b->log,
		 "status: %zu connection(s) (%llu since start), %zu subscription(s), "
		 "%llu byte(s) pending, %zu byte(s) held (peak %zu, max-memory %llu), "
		 "%llu message(s) in, %llu out, %llu dropped in %llu "
		 "slow-consumer episode(s), %llu no-responders, %llu error(s) sent, "
		 "%llu connection(s) refused",
		 b->nconns, (unsigned long long)s->conns_total, router_count(b->router),
		 (unsigned long long)b->pending, b->memory, b->memory_peak,
		 (unsigned long long)b->cfg.max_memory, (unsigned long long)s->msgs_in,
		 (unsigned long long)s->msgs_out, (unsigned long long)s->dropped,
		 (unsigned long long)s->slow_consumers, (unsigned long long)s->no_responders,
		 (unsigned long long)s->errors, (unsigned long long)s->refused);
	bridge_status(b);
	rawq_status(b);
}

static void broker_signal(void *arg, uint32_t events)
{
	struct broker *b = arg;
	struct signalfd_siginfo si;
	(void)events;

	while (read(b->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
		case SIGQUIT:
			broker_stop(b, (int)si.ssi_signo);
			break;
		case SIGHUP:
			broker_hup(b);
			break;
		case SIGUSR1:
			broker_status(b);
			break;
		case SIGUSR2: {
			/* log_msg would drop the line itself when going down */
			int level = log_toggle_debug(&b->log);
			log_msg(&b->log, LOG_LVL_INFO, "SIGUSR2: debug logging %s",
				level >= LOG_LVL_DEBUG ? "on" : "off");
			break;
		}
		}
	}
}

/* Every signal an operator sends by habit arrives through the signalfd:
 * TERM, INT and QUIT stop with a drain, HUP reopens the log, USR1 logs a
 * status line, USR2 toggles debug logging (ipcbusd(8)); none kills the
 * broker without removing its socket and pidfile.  PIPE is ignored. */
static int broker_signals(struct broker *b)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	b->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (b->sigfd < 0)
		return -errno;
	return loop_add(b->loop, &b->sigwatch, b->sigfd, EPOLLIN, broker_signal, b);
}

/* Raise RLIMIT_NOFILE to what max-connections needs, not blindly to the hard
 * limit; warn when the hard limit is lower. */
static void broker_nofile(struct broker *b)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	b->nofile_soft = (unsigned long)rl.rlim_cur;
	rlim_t want = (rlim_t)(b->cfg.max_connections + BROKER_SPARE_FDS);
	if (rl.rlim_cur >= want)
		return;
	rlim_t got = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	rl.rlim_cur = got;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || got < want)
		log_warn(&b->log, "open files limited to %llu: fewer than max-connections (%llu) can connect",
			 (unsigned long long)got, (unsigned long long)b->cfg.max_connections);
}

/* Write the pidfile.  The pid goes into a new file made beside it by
 * mkostemp (O_CREAT|O_EXCL: nothing that is already there, a symbolic link
 * least of all, is opened), which is then renamed over the pidfile's name:
 * rename replaces a symbolic link found there, it never follows it.  Its
 * device and inode are kept so that broker_fini() removes the pidfile only
 * while it is still the one we wrote (a second broker that fails to start
 * must not remove the first one's).  The folder is trusted. */
static int broker_pidfile(struct broker *b)
{
	char tmp[4200], text[32];
	struct stat st;
	int fd, rc;

	if (!b->cfg.pidfile)
		return 0;
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.XXXXXX", b->cfg.pidfile) >= sizeof tmp) {
		log_error(&b->log, "pidfile %s: %s", b->cfg.pidfile, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		rc = -errno;
		log_error(&b->log, "pidfile %s: cannot create %s: %s", b->cfg.pidfile, tmp,
			  strerror(-rc));
		return rc;
	}
	int len = snprintf(text, sizeof text, "%d\n", (int)getpid());
	errno = 0; /* a short write sets none */
	if (fchmod(fd, 0644) < 0 || write(fd, text, (size_t)len) != (ssize_t)len ||
	    fstat(fd, &st) < 0) {
		rc = errno ? -errno : -EIO;
		close(fd);
		goto fail;
	}
	if (close(fd) < 0 || rename(tmp, b->cfg.pidfile) < 0) {
		rc = -errno;
		goto fail;
	}
	b->pid_dev = st.st_dev;
	b->pid_ino = st.st_ino;
	b->pid_written = 1;
	return 0;
fail:
	log_error(&b->log, "pidfile %s: %s", b->cfg.pidfile, strerror(-rc));
	unlink(tmp);
	return rc;
}

/* Remove the pidfile if it is still the one broker_pidfile() wrote. */
static void broker_pidfile_remove(struct broker *b)
{
	struct stat st;

	if (b->pid_written && lstat(b->cfg.pidfile, &st) == 0 && st.st_dev == b->pid_dev &&
	    st.st_ino == b->pid_ino)
		unlink(b->cfg.pidfile);
	b->pid_written = 0;
}

int broker_init(struct broker *b, struct conf *cfg)
{
	int rc;
	uint8_t rnd[8];

	struct log lg = b->log; /* main() may have opened it already */
	memset(b, 0, sizeof *b);
	b->log = lg;
	b->cfg = *cfg;
	memset(cfg, 0, sizeof *cfg); /* taken */
	b->sigfd = -1;
	b->ready_fd = -1;
	buf_init(&b->scratch, (size_t)(b->cfg.max_payload + b->cfg.max_header_bytes + 1024));
	buf_init(&b->ctl, 64 << 10);
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		memset(rnd, 0, sizeof rnd);
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(b->server_id + 2 * i, 3, "%02x", rnd[i]);
	hash_key_random(&b->hash_key);
	broker_nofile(b);
	if ((rc = loop_new(&b->loop)) < 0) {
		log_error(&b->log, "epoll: %s", strerror(-rc));
		return rc;
	}
	loop_before_sleep(b->loop, broker_before_sleep, b);
	if (!(b->router = router_new()) || !(b->interest = interest_new())) {
		log_error(&b->log, "out of memory");
		return -ENOMEM;
	}
	if ((rc = broker_signals(b)) < 0) {
		log_error(&b->log, "signals: %s", strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < b->cfg.nlisten; i++) {
		struct url u;
		char err[512];
		const struct transport *tr;
		struct listener *l;
		if (url_parse(b->cfg.listen[i], &u, err, sizeof err) < 0) {
			log_error(&b->log, "%s", err);
			return PROTO_EURL;
		}
		if (!(tr = transport_find(u.kind))) {
			log_error(&b->log, "%s: %s:// is not supported in this version",
				  b->cfg.listen[i], url_scheme(u.kind));
			return PROTO_EURL;
		}
		if ((rc = tr->listen(b, &u, &l, err, sizeof err)) < 0) {
			log_error(&b->log, "cannot listen on %s: %s", b->cfg.listen[i], err);
			return rc;
		}
		l->next = b->listeners;
		b->listeners = l;
		log_info(&b->log, "listening on %s", b->cfg.listen[i]);
	}
	if ((rc = bridge_init(b)) < 0)
		return rc;
	if ((rc = rawq_init(b)) < 0)
		return rc;
	if ((rc = broker_pidfile(b)) < 0)
		return rc;
	log_info(&b->log, "ready (ipcbusd %s, protocol %d, pid %d)", PACKAGE_VERSION,
		 PROTO_VERSION, (int)getpid());
	return 0;
}

int broker_run(struct broker *b)
{
	b->log.tee_stderr = 0; /* ready: the configured log alone from now on */
	if (b->ready_fd >= 0) {
		char ok = 1;
		if (write(b->ready_fd, &ok, 1) < 0) {
		}
		close(b->ready_fd);
		b->ready_fd = -1;
	}
	if (b->detach_log) {
		/* a daemon does not keep its caller's terminal or pipe */
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		log_open(&b->log, "syslog");
		if (null >= 0) {
			dup2(null, STDERR_FILENO);
			close(null);
		}
	}
	int rc = loop_run(b->loop);
	if (rc < 0)
		log_error(&b->log, "event loop: %s", strerror(-rc));
	return rc;
}

void broker_fini(struct broker *b)
{
	if (b->loop) {
		broker_close_listeners(b);
		/* flush what can go without waiting, then free */
		for (struct conn *c = b->conns; c; c = c->next)
			if (c->state != CONN_CLOSING)
				conn_close(c, "broker stopping");
		broker_before_sleep(b);
		/* whatever still lingers goes now */
		while (b->closing) {
			struct conn *c = b->closing;
			b->closing = c->close_next;
			b->nclosing--;
			broker_unlink_conn(b, c);
			conn_free(c);
		}
		/* connections name their listeners until they are gone */
		broker_free_listeners(b);
		rawq_fini(b);
		bridge_fini(b);
		loop_timer_cancel(b->loop, &b->linger);
		loop_timer_cancel(b->loop, &b->resume);
		loop_timer_cancel(b->loop, &b->keepalive);
		loop_timer_cancel(b->loop, &b->drain);
		broker_refuse_flush(b);
		auth_fini(b);
		if (b->sigfd >= 0) {
			loop_del(b->loop, &b->sigwatch);
			close(b->sigfd);
		}
	}
	broker_pidfile_remove(b);
	router_free(b->router);
	interest_free(b->interest);
	b->interest = NULL;
	loop_free(b->loop);
	buf_fini(&b->scratch);
	buf_fini(&b->ctl);
	log_info(&b->log, "stopped");
	conf_fini(&b->cfg);
	b->loop = NULL;
	b->router = NULL;
}
