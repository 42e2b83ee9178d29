/*
 * bridges.c: several brokers bridged together (see bridges.h).
 *
 * Readiness is always a condition seen from outside: a link is up when its
 * dialer logged so, and a topology carries messages when a probe published
 * on one broker reached a subscriber on another; nothing waits for a fixed
 * time.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <CUnit/CUnit.h>

#include "bridges.h"

static int bridges_left(uint64_t deadline)
{
	uint64_t now = harness_now();
	return now >= deadline ? 0 : (int)(deadline - now);
}

int bridges_new(struct bridges *net, int n, const char *extra)
{
	memset(net, 0, sizeof *net);
	net->probe = "bprobe";
	if (n < 1 || n > BRIDGES_MAX)
		return -1;
	net->n = n;
	for (int i = 0; i < n; i++) {
		int port = 0;
		for (int tries = 0; tries < 20 && !port; tries++) {
			port = harness_free_port(AF_INET);
			for (int j = 0; j < i; j++)
				if (net->port[j] == port)
					port = 0;
		}
		if (!port) {
			fprintf(stderr, "bridges: no free TCP port\n");
			return -1;
		}
		net->port[i] = port;
		snprintf(net->tcp[i], sizeof net->tcp[i], "tcp://127.0.0.1:%d", port);
		char *lines = NULL;
		if (asprintf(&lines, "listen %s\n%s", net->tcp[i], extra ? extra : "") < 0)
			return -1;
		net->b[i] = harness_broker_new(lines);
		free(lines);
		if (!net->b[i]) {
			fprintf(stderr, "bridges: cannot make broker %c\n", 'A' + i);
			return -1;
		}
		bridges_dump_on_failure(net->b[i]);
	}
	return 0;
}

int bridges_conf(struct bridges *net, int i, const char *more)
{
	struct harness_broker *b = net->b[i];
	char *lines = NULL;

	if (asprintf(&lines, "%s%s", b->lines, more) < 0)
		return -1;
	free(b->lines);
	b->lines = lines;
	return 0;
}

int bridges_line(struct bridges *net, int from, int to, const char *patterns)
{
	char line[512];

	snprintf(line, sizeof line, "bridge %s%s%s\n", net->tcp[to], patterns ? " " : "",
		 patterns ? patterns : "");
	if (bridges_conf(net, from, line) < 0)
		return -1;
	net->line[from][to] = 1;
	return 0;
}

/* Read broker i's server id from a WELCOME. */
static int bridges_read_id(struct bridges *net, int i)
{
	struct harness_raw *r = harness_raw_open(net->b[i], "bridges-id");
	if (!r)
		return -1;
	const Ipcbus__Welcome *w = r->welcome;
	int ok = w->has_server_id && w->server_id.len > 0 && w->server_id.len < sizeof net->id[i];
	if (ok)
		snprintf(net->id[i], sizeof net->id[i], "%.*s", (int)w->server_id.len,
			 (const char *)w->server_id.data);
	harness_raw_close(r);
	if (!ok)
		fprintf(stderr, "bridges: broker %c's WELCOME has no usable server id\n", 'A' + i);
	return ok ? 0 : -1;
}

static int bridges_start_one(struct bridges *net, int i)
{
	net->id[i][0] = 0;
	if (harness_broker_start(net->b[i], net->argv[i][0] ? net->argv[i] : NULL) < 0) {
		/* its log is printed at the cleanup (bridges_dump_on_failure) */
		fprintf(stderr, "bridges: broker %c did not start (exit %d)\n", 'A' + i,
			net->b[i]->status);
		return -1;
	}
	return bridges_read_id(net, i);
}

int bridges_start(struct bridges *net)
{
	for (int i = 0; i < net->n; i++)
		if (bridges_start_one(net, i) < 0)
			return -1;
	return 0;
}

int bridges_restart(struct bridges *net, int i)
{
	harness_broker_stop(net->b[i]);
	return bridges_start_one(net, i);
}

int bridges_log_lines(const struct harness_broker *b, const char *a, const char *c)
{
	char *text = harness_read_file(b->log, NULL);
	int n = 0;
	char *save = NULL;

	for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save))
		if (strstr(line, a) && (!c || strstr(line, c)))
			n++;
	free(text);
	return n;
}

/* 1 when the dialer `from` logged its link to `to` up (to's current id). */
static int bridges_link_up(const struct bridges *net, int from, int to)
{
	char needle[96];
	snprintf(needle, sizeof needle, "link to %s up", net->id[to]);
	return net->line[from][to] && bridges_log_lines(net->b[from], needle, NULL) > 0;
}

int bridges_wait_links(struct bridges *net, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;

	for (;;) {
		int missing = -1;
		for (int i = 0; i < net->n && missing < 0; i++)
			for (int j = i + 1; j < net->n && missing < 0; j++)
				if ((net->line[i][j] || net->line[j][i]) &&
				    !bridges_link_up(net, i, j) && !bridges_link_up(net, j, i))
					missing = i * BRIDGES_MAX + j;
		if (missing < 0)
			return 0;
		if (!bridges_left(deadline)) {
			int i = missing / BRIDGES_MAX, j = missing % BRIDGES_MAX;
			fprintf(stderr, "bridges: no link up between %c (%s) and %c (%s) within %d ms\n",
				'A' + i, net->id[i], 'A' + j, net->id[j], timeout_ms);
			return -1;
		}
		harness_sleep(10);
	}
}

int bridges_probe(struct harness_raw *pub, const char *channel, struct harness_raw *const *subs,
		  int n, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	size_t clen = strlen(channel);
	int got[BRIDGES_MAX * 2] = {0}, left = n;

	if (n > (int)HARNESS_NELEM(got))
		return -1;
	while (left > 0) {
		if (!bridges_left(deadline)) {
			fprintf(stderr, "bridges: a probe on %s reached %d of %d subscribers in %d ms\n",
				channel, n - left, n, timeout_ms);
			return -1;
		}
		if (harness_raw_pub(pub, 0, channel, NULL, "probe", 5) < 0)
			return -1;
		uint64_t next = harness_now() + 50;
		for (int i = 0; i < n; i++) {
			while (!got[i]) {
				int rc = harness_raw_read(subs[i], bridges_left(next));
				if (rc < 0)
					return -1;
				if (rc == 0)
					break;
				const struct frame *f = &subs[i]->f;
				if (f->type == IPCBUS__FRAME_TYPE__MSG && f->channel.len == clen &&
				    memcmp(f->channel.p, channel, clen) == 0 && f->payload.len == 5 &&
				    memcmp(f->payload.p, "probe", 5) == 0) {
					got[i] = 1;
					left--;
				}
			}
		}
	}
	return 0;
}

int bridges_wait_flow(struct bridges *net, int from, int to, int timeout_ms)
{
	static unsigned serial;
	char chan[96];
	int rc = -1;

	snprintf(chan, sizeof chan, "%s.%c.%c.%u", net->probe, 'A' + from, 'A' + to, ++serial);
	struct harness_raw *sub = harness_raw_open(net->b[to], "bridges-probe-sub");
	struct harness_raw *pub = harness_raw_open(net->b[from], "bridges-probe-pub");
	if (!sub || !pub)
		goto out;
	if (harness_raw_sub(sub, 0, 1, chan, NULL) < 0 || harness_raw_barrier(sub, 5000, NULL, NULL) != 1)
		goto out;
	rc = bridges_probe(pub, chan, &sub, 1, timeout_ms);
	if (rc < 0)
		fprintf(stderr, "bridges: nothing flows from %c to %c\n", 'A' + from, 'A' + to);
out:
	harness_raw_close(sub);
	harness_raw_close(pub);
	return rc;
}

int bridges_wait_flow_all(struct bridges *net, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;

	for (int i = 0; i < net->n; i++)
		for (int j = 0; j < net->n; j++)
			if (i != j && bridges_wait_flow(net, i, j, bridges_left(deadline) + 1) < 0)
				return -1;
	return 0;
}

int bridges_up(struct bridges *net, int n, const char *links, const char *extra)
{
	if (bridges_new(net, n, extra) < 0)
		return -1;
	for (const char *p = links; *p;) {
		if (*p == ' ') {
			p++;
			continue;
		}
		int from = p[0] - 'A', to = p[1] ? p[1] - 'A' : -1;
		if (from < 0 || from >= n || to < 0 || to >= n || from == to) {
			fprintf(stderr, "bridges: bad link list \"%s\"\n", links);
			return -1;
		}
		if (bridges_line(net, from, to, NULL) < 0)
			return -1;
		p += 2;
	}
	if (bridges_start(net) < 0 || bridges_wait_links(net, 10000) < 0 ||
	    bridges_wait_flow_all(net, 10000) < 0)
		return -1;
	return 0;
}

/* The log text written after offset `from` (the caller frees it). */
static char *bridges_log_since(const struct harness_broker *b, size_t from)
{
	size_t len = 0;
	char *text = harness_read_file(b->log, &len);
	if (text && from > 0 && from <= len)
		memmove(text, text + from, len - from + 1);
	return text;
}

static int bridges_count(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void bridges_status_parse(const struct bridges *net, int i, const char *text,
				 struct bridges_status *st);

int bridges_status(struct bridges *net, int i, struct bridges_status *st)
{
	struct harness_broker *b = net->b[i];
	size_t before = 0;

	memset(st, 0, sizeof *st);
	free(harness_read_file(b->log, &before));
	if (b->pid <= 0 || kill(b->pid, SIGUSR1) < 0)
		return -1;
	/* the status line, then a round trip: the USR1 handler, lines it
	 * writes after the status line included, ran before the PONG */
	uint64_t deadline = harness_now() + 2000;
	for (;;) {
		char *text = bridges_log_since(b, before);
		int seen = text && strstr(text, "status: ");
		free(text);
		if (seen)
			break;
		if (!bridges_left(deadline)) {
			fprintf(stderr, "bridges: no status line from %c\n", 'A' + i);
			return -1;
		}
		harness_sleep(5);
	}
	struct harness_raw *r = harness_raw_open(b, "bridges-status");
	int ok = r && harness_raw_barrier(r, 5000, NULL, NULL) == 1;
	harness_raw_close(r);
	if (!ok)
		return -1;

	char *text = bridges_log_since(b, before);
	if (!text)
		return -1;
	bridges_status_parse(net, i, text, st);
	free(text);
	return 0;
}

/* Count what text (a status report) says of i's links into st. */
static void bridges_status_parse(const struct bridges *net, int i, const char *text,
				 struct bridges_status *st)
{
	st->active_all = bridges_count(text, " state active");
	st->standby_all = bridges_count(text, " state standby");
	for (int j = 0; j < net->n; j++) {
		char needle[96];
		if (j == i || !net->id[j][0])
			continue;
		snprintf(needle, sizeof needle, "link %s state ", net->id[j]);
		for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) {
			const char *state = p + strlen(needle);
			const char *eol = strchr(state, '\n');
			const char *next = strstr(state, "link ");
			const char *end = next && (!eol || next < eol) ? next : eol;
			const char *d = strstr(state, "dropped ");
			const char *rf = strstr(state, "refused ");
			st->links[j]++;
			if (strncmp(state, "active", 6) == 0)
				st->active[j]++;
			else if (strncmp(state, "standby", 7) == 0)
				st->standby[j]++;
			if (d && (!end || d < end))
				st->dropped[j] += strtoull(d + 8, NULL, 10);
			if (rf && (!end || rf < end))
				st->refused[j] += strtoull(rf + 8, NULL, 10);
		}
	}
}

/* The failure count when the brokers of the case were made. */
static unsigned bridges_failures;

static void bridges_dump_cb(void *arg)
{
	struct harness_broker *b = arg;
	if (CU_get_number_of_failures() == bridges_failures)
		return;
	size_t len = 0;
	char *text = harness_read_file(b->log, &len);
	size_t from = len > 6000 ? len - 6000 : 0;
	fprintf(stderr, "---- log of the broker in %s%s ----\n%s\n---- end ----\n", b->dir,
		from ? " (its end)" : "", text ? text + from : "(none)");
	free(text);
}

void bridges_dump_on_failure(struct harness_broker *b)
{
	bridges_failures = CU_get_number_of_failures();
	harness_defer(bridges_dump_cb, b);
}
