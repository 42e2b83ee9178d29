/*
 * bridges.h: several brokers bridged together, for the bridge tests.
 *
 * Broker i listens on its own Unix socket (harness_broker_new's) and on
 * tcp://127.0.0.1:port[i]; a "link" is a `bridge tcp://127.0.0.1:PORT`
 * line in one broker's configuration naming another's listener.  Brokers
 * are called A, B, C... (0, 1, 2...) in link lists and messages.
 * Everything is stopped and removed by the harness's cleanup after the
 * case.  Functions return 0 (or a count) on success and -1 on failure,
 * with a note on stderr; none of them asserts.
 */
#ifndef IPCBUS_TESTS_BRIDGES_H
#define IPCBUS_TESTS_BRIDGES_H

#include "harness.h"

#define BRIDGES_MAX 6

struct bridges {
	int n;
	struct harness_broker *b[BRIDGES_MAX];
	int port[BRIDGES_MAX];         /* its TCP listener on 127.0.0.1 */
	char tcp[BRIDGES_MAX][40];     /* tcp://127.0.0.1:PORT */
	char id[BRIDGES_MAX][64];      /* server id (WELCOME), since its last start */
	int line[BRIDGES_MAX][BRIDGES_MAX]; /* i has a bridge line to j */
	const char *argv[BRIDGES_MAX][4]; /* extra arguments of broker i (NULL-ended) */
	const char *probe;             /* channel prefix of the probes ("bprobe") */
};

/* n brokers (not started), each with its folder, Unix socket, a
 * `listen tcp://127.0.0.1:PORT` line (ports distinct and free a moment
 * ago) and the extra configuration lines (NULL: none; @DIR@ as for
 * harness_broker_new). */
int bridges_new(struct bridges *net, int n, const char *extra);

/* Append configuration lines (each ending in \n) to broker i's. */
int bridges_conf(struct bridges *net, int i, const char *lines);

/* Add `bridge tcp://127.0.0.1:PORT(to) PATTERNS` to from's configuration
 * (patterns NULL: no patterns, the default).  Before bridges_start. */
int bridges_line(struct bridges *net, int from, int to, const char *patterns);

/* Start every broker (in order) and read its server id. */
int bridges_start(struct bridges *net);

/* Start broker i again (same configuration and ports) after a stop or a
 * kill, and read its new server id. */
int bridges_restart(struct bridges *net, int i);

/* The whole topology, ready to carry messages: bridges_new, a line for
 * each pair in links ("AB BC CA": A dials B, B dials C, C dials A; no
 * patterns), bridges_start, bridges_wait_links and bridges_wait_flow_all. */
int bridges_up(struct bridges *net, int n, const char *links, const char *extra);

/* Wait until every pair of brokers joined by a line (either way) has a
 * link up: the dialer logged "link to PEERID up" with the peer's current
 * id.  The whole wait is bounded by timeout_ms. */
int bridges_wait_links(struct bridges *net, int timeout_ms);

/* Wait until a message published on broker from reaches a subscriber on
 * broker to: subscribe on `to` to PROBE.<from>.<to>.<n>, then publish
 * "probe" there on `from` every 50 ms until one arrives. */
int bridges_wait_flow(struct bridges *net, int from, int to, int timeout_ms);

/* bridges_wait_flow for every ordered pair, within timeout_ms in all. */
int bridges_wait_flow_all(struct bridges *net, int timeout_ms);

/* Publish "probe" on channel with pub every 50 ms until every one of the
 * n subscribers got a MSG with that payload on that channel; whatever
 * else they read meanwhile is dropped. */
int bridges_probe(struct harness_raw *pub, const char *channel, struct harness_raw *const *subs,
		  int n, int timeout_ms);

/* Lines of b's log that hold a and also c (c may be NULL). */
int bridges_log_lines(const struct harness_broker *b, const char *a, const char *c);

/* What broker i's status line (USR1) says of its links: for each broker
 * j, how many links to j's current id it lists ("link PEERID state "),
 * how many of them are active and how many standby, and the sums of their
 * "dropped D" and "refused R".  0, or -1 when no status line came within 2 s. */
struct bridges_status {
	int links[BRIDGES_MAX];
	int active[BRIDGES_MAX], standby[BRIDGES_MAX];
	unsigned long long dropped[BRIDGES_MAX], refused[BRIDGES_MAX];
	int active_all, standby_all; /* to anyone, ids we do not know too */
};
int bridges_status(struct bridges *net, int i, struct bridges_status *st);

/* When the case fails from now on, print the logs of net's brokers at
 * its cleanup (bridges_new registers it; other brokers may call it). */
void bridges_dump_on_failure(struct harness_broker *b);

#endif
