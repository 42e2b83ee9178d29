/*
 * conform.c: the transport table and the program that runs every case of
 * the conformance suite against every row of it (see conform.h).
 *
 *   test_conform [-a] [-l] [-r ROW]... [CASE]
 *     -r ROW  only this row (repeatable); a row whose prerequisites are
 *             missing is then the program's exit 77
 *     -a      also the rows switched off (CONFORM_OFF), to try a transport
 *             before its row is switched on
 *     -l      list the rows and cases, run nothing
 *     CASE    only the cases whose name contains it
 *
 * Exit status: 1 when a case failed; else 77 when no row ran a case (all
 * skipped: missing prerequisites, switched off, or filtered away); else 0.
 * A row that is skipped, and a case a row cannot run, are printed with the
 * reason, and a summary gives each row's time.
 *
 * Adding a transport is adding a row below.  Its flags say what it can do
 * (CONFORM_STREAM, CONFORM_RAW, CONFORM_ACCEPT) and what it needs (CONFORM_IPV6,
 * CONFORM_TLS); cases that need what a row cannot do are not run on it.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "conform.h"

/* tcp:// (broker listen and library connect) is being written on another
 * branch: once it lands, change CONFORM_OFF to 0 on this ONE line and the
 * tcp4 and tcp6 rows run. */
#define CONFORM_TCP_PENDING 0
/* tls:// is on (its rows also need the raw client to speak TLS before
 * they get CONFORM_RAW).  udp:// is on: neither a stream nor spoken by the
 * raw client, it runs the cases of the library clients. */
#define CONFORM_TLS_PENDING 0
#define CONFORM_UDP_PENDING 0

#define CONFORM_TLS_CLIENT "?ca=@DIR@/ca.pem"
/* A UDP session lasts until its lease (the ping-interval) runs out: a
 * short one, so that peer_vanishes sees a killed client's subscription go
 * within its 2 s, and the library (which PINGs at a third of it) notices a
 * stopped broker within broker_restart's bounds. */
#define CONFORM_UDP_LINES "ping-interval 1000\n"
#define CONFORM_TLS_LINES "tls-cert @DIR@/server.pem\ntls-key @DIR@/server.key\n"

/* The transports.  The broker of every case listens on the harness's
 * default Unix socket and on `listen`; the unix row's listen is a second
 * Unix socket, so its clients meet the default one's through the router
 * like any other transport's. */
static const struct conform_row conform_rows[] = {
	{"unix", "unix://@DIR@/transport.sock", NULL, NULL,
	 CONFORM_STREAM | CONFORM_RAW | CONFORM_ACCEPT, NULL},
	{"tcp4", "tcp://127.0.0.1:@PORT@", NULL, NULL,
	 CONFORM_STREAM | CONFORM_RAW | CONFORM_ACCEPT | CONFORM_TCP_PENDING,
	 "tcp:// is not in this build yet"},
	{"tcp6", "tcp://[::1]:@PORT@", NULL, NULL,
	 CONFORM_STREAM | CONFORM_RAW | CONFORM_ACCEPT | CONFORM_IPV6 | CONFORM_TCP_PENDING,
	 "tcp:// is not in this build yet"},
	{"tls", "tls://127.0.0.1:@PORT@", "tls://127.0.0.1:@PORT@" CONFORM_TLS_CLIENT,
	 CONFORM_TLS_LINES, CONFORM_STREAM | CONFORM_TLS | CONFORM_TLS_PENDING,
	 "tls:// is not in this build yet"},
	{"tls-mutual", "tls://[::1]:@PORT@",
	 "tls://[::1]:@PORT@" CONFORM_TLS_CLIENT "&cert=@DIR@/client.pem&key=@DIR@/client.key",
	 CONFORM_TLS_LINES "tls-ca @DIR@/ca.pem\n",
	 CONFORM_STREAM | CONFORM_TLS | CONFORM_IPV6 | CONFORM_TLS_PENDING,
	 "tls:// is not in this build yet"},
	{"udp", "udp://127.0.0.1:@PORT@", NULL, CONFORM_UDP_LINES, CONFORM_UDP_PENDING,
	 "udp:// is not in this build yet"},
	/* the key: ftok() of the broker's own folder, so every broker has its
	 * own; a byte stream in messages, spoken by the raw client
	 * (harness_sysv.c); no connection before a valid HELLO */
	{"sysv", "sysv://@DIR@:115", NULL, NULL, CONFORM_STREAM | CONFORM_RAW, NULL},
};

#define CONFORM_NROWS HARNESS_NELEM(conform_rows)

static const struct conform_case *const conform_tables[] = {conform_cases, conform_proto_cases};

/* What each row did, for the summary. */
struct conform_result {
	int selected;
	const char *skipped; /* why (skip_why), or NULL when it ran */
	char skip_why[160];
	unsigned cases, inactive;
	unsigned failed;     /* cases with a failed assertion */
	uint64_t t0, t1;     /* ms: first case's start, last case's end */
	uint64_t started;    /* this case's start */
	unsigned fail0;      /* CU_get_number_of_failures() at this case's start */
};

static struct conform_result conform_results[CONFORM_NROWS];

/* MiB of AddressSanitizer quarantine the brokers have (0: no ASan) */
static int conform_quarantine_mb;

long conform_rss_slack_kib(void)
{
	/* and 4 MiB for its other caches (detect_stack_use_after_return's
	 * fake stacks: about 8 MiB of growth in all, measured) */
	return conform_quarantine_mb ? (long)(conform_quarantine_mb + 4) * 1024 : 0;
}

/* ---- the current row ---- */

static size_t conform_row_index(void)
{
	CU_pSuite s = CU_get_current_suite();
	for (size_t i = 0; s && i < CONFORM_NROWS; i++)
		if (strcmp(s->pName, conform_rows[i].name) == 0)
			return i;
	return 0; /* not reached: every suite is a row */
}

const struct conform_row *conform_row(void)
{
	return &conform_rows[conform_row_index()];
}

int conform_has(unsigned flags)
{
	return (conform_row()->flags & flags) == flags;
}

/* ---- brokers ---- */

/* The transport URL of each broker of the current case. */
struct conform_broker {
	const struct harness_broker *b;
	char url[400];
};

static struct conform_broker conform_brokers[16];

static void conform_forget(void *arg)
{
	struct conform_broker *e = arg;
	e->b = NULL;
	e->url[0] = 0;
}

/* Copy tmpl into out[0..n) with @PORT@ replaced by port and @DIR@ by dir
 * (left as it is when dir is NULL).  0, or -ENAMETOOLONG. */
static int conform_expand(char *out, size_t n, const char *tmpl, const char *dir, int port)
{
	size_t k = 0;
	char num[8];

	snprintf(num, sizeof num, "%d", port);
	for (const char *p = tmpl; *p;) {
		const char *put = NULL;
		size_t skip = 1, len = 1;
		if (strncmp(p, "@PORT@", 6) == 0) {
			put = num;
			skip = 6;
		} else if (dir && strncmp(p, "@DIR@", 5) == 0) {
			put = dir;
			skip = 5;
		}
		if (put)
			len = strlen(put);
		if (k + len >= n)
			return -ENAMETOOLONG;
		memcpy(out + k, put ? put : p, len);
		k += len;
		p += skip;
	}
	out[k] = 0;
	return 0;
}

static void conform_print_log(const struct harness_broker *b)
{
	char *log = harness_read_file(b->log, NULL);
	fprintf(stderr, "conform: the broker did not start; its log:\n%s\n", log ? log : "");
	free(log);
}

/* Make b's broker for the row, with a port (0: none), and start it.
 * 0; 1 when the port was taken meanwhile (try another); -1. */
static int conform_start(const struct conform_row *row, struct harness_broker *b, int port)
{
	struct conform_broker *e = NULL;

	if (row->flags & CONFORM_TLS) {
		struct harness_tls t;
		int rc = harness_tls_make(b->dir, &t);
		if (rc < 0) {
			fprintf(stderr, "conform: no TLS files: %s\n", strerror(-rc));
			CU_FAIL("harness_tls_make");
			return -1;
		}
	}
	for (size_t i = 0; i < HARNESS_NELEM(conform_brokers) && !e; i++)
		if (!conform_brokers[i].b)
			e = &conform_brokers[i];
	if (!e) {
		CU_FAIL("more than 16 brokers in one case");
		return -1;
	}
	if (conform_expand(e->url, sizeof e->url, row->client ? row->client : row->listen, b->dir,
			   port) < 0) {
		CU_FAIL("the row's URL is too long");
		return -1;
	}
	if (harness_broker_start(b, NULL) < 0) {
		if (port && harness_broker_log_has(b, "in use"))
			return 1;
		conform_print_log(b);
		CU_FAIL("the broker did not start");
		return -1;
	}
	e->b = b;
	harness_defer(conform_forget, e);
	return 0;
}

struct harness_broker *conform_up(const char *lines)
{
	return conform_up_nofile(lines, 0);
}

struct harness_broker *conform_up_nofile(const char *lines, long nofile)
{
	const struct conform_row *row = conform_row();
	int family = row->flags & CONFORM_IPV6 ? AF_INET6 : AF_INET;

	for (int attempt = 0; attempt < 3; attempt++) {
		int port = 0;
		if (strstr(row->listen, "@PORT@") && !(port = harness_free_port(family))) {
			CU_FAIL("no free TCP port on the loopback");
			return NULL;
		}
		char listen[400], extra[1024];
		if (conform_expand(listen, sizeof listen, row->listen, NULL, port) < 0 ||
		    conform_expand(extra, sizeof extra, row->lines ? row->lines : "", NULL, port) < 0) {
			CU_FAIL("the row's templates are too long");
			return NULL;
		}
		size_t n = strlen(listen) + strlen(extra) + strlen(lines ? lines : "") + 16;
		char *text = malloc(n);
		if (!text) {
			CU_FAIL("out of memory");
			return NULL;
		}
		snprintf(text, n, "listen %s\n%s%s", listen, extra, lines ? lines : "");
		struct harness_broker *b = harness_broker_new(text);
		free(text);
		if (!b) {
			CU_FAIL("cannot make a broker folder");
			return NULL;
		}
		b->nofile = nofile;
		int rc = conform_start(row, b, port);
		if (rc == 0)
			return b;
		harness_broker_free(b);
		if (rc < 0)
			return NULL;
		fprintf(stderr, "conform: port %d was taken; another\n", port);
	}
	CU_FAIL("no port the broker could listen on");
	return NULL;
}

const char *conform_url(const struct harness_broker *b)
{
	for (size_t i = 0; i < HARNESS_NELEM(conform_brokers); i++)
		if (conform_brokers[i].b == b)
			return conform_brokers[i].url;
	return b->url; /* not one of conform_up's: its Unix socket */
}

struct harness_raw *conform_raw_connect(const struct harness_broker *b)
{
	return harness_raw_connect_url(conform_url(b));
}

struct harness_raw *conform_raw_open(const struct harness_broker *b, const char *name)
{
	struct harness_raw *r = harness_raw_open_url(conform_url(b), name);
	if (!r)
		fprintf(stderr, "conform: raw client %s on %s: %s\n", name, conform_url(b),
			strerror(errno));
	CU_ASSERT_PTR_NOT_NULL(r);
	return r;
}

/* ---- library connections ---- */

static void conform_on_event(void *arg, int event, int err, const char *text)
{
	struct conform_events *e = arg;
	switch (event) {
	case IPCBUS_EV_DISCONNECTED: e->disconnected++; break;
	case IPCBUS_EV_RECONNECTED: e->reconnected++; break;
	case IPCBUS_EV_ERROR: e->errors++; break;
	case IPCBUS_EV_CLOSED: e->closed++; break;
	}
	e->last_err = err;
	snprintf(e->text, sizeof e->text, "%s", text ? text : "");
}

static void conform_lib_close(void *arg)
{
	ipcbus_close(arg);
}

static ipcbus *conform_lib_at(const char *url, const char *name, struct conform_events *ev)
{
	ipcbus_opts o = IPCBUS_OPTS_INIT;
	ipcbus *c = NULL;

	o.name = name;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 200;
	if (ev) {
		o.on_event = conform_on_event;
		o.event_arg = ev;
	}
	int rc = ipcbus_connect(&c, url, &o);
	if (rc < 0) {
		fprintf(stderr, "conform: connect %s to %s: %s\n", name, url, ipcbus_strerror(rc));
		CU_FAIL("ipcbus_connect");
		return NULL;
	}
	harness_defer(conform_lib_close, c);
	return c;
}

ipcbus *conform_lib(const struct harness_broker *b, const char *name, struct conform_events *ev)
{
	return conform_lib_at(conform_url(b), name, ev);
}

ipcbus *conform_lib_unix(const struct harness_broker *b, const char *name,
			 struct conform_events *ev)
{
	return conform_lib_at(b->url, name, ev);
}

/* ---- raw helpers ---- */

void conform_seen_frame(void *arg, struct harness_raw *r)
{
	struct conform_seen *s = arg;
	const struct frame *f = &r->f;

	if (f->type == IPCBUS__FRAME_TYPE__MSG) {
		if (s->msgs < 64) {
			s->sid[s->msgs] = f->sid;
			snprintf(s->payload[s->msgs], 64, "%.*s", (int)f->payload.len,
				 (const char *)f->payload.p);
			snprintf(s->channel[s->msgs], 64, "%.*s", (int)f->channel.len,
				 (const char *)f->channel.p);
		}
		s->msgs++;
	} else if (f->type == IPCBUS__FRAME_TYPE__ERR) {
		if (s->errs < 8) {
			s->err_code[s->errs] = r->err_code;
			s->err_id[s->errs] = f->id;
		}
		fprintf(stderr, "  (ERR %d for id %llu: %s)\n", r->err_code,
			(unsigned long long)f->id, r->err_text);
		s->errs++;
	} else {
		s->other++;
	}
}

int conform_unanswered(const struct harness_broker *b, struct harness_raw *r)
{
	int rc = harness_raw_read(r, 300);
	if (rc != 0)
		fprintf(stderr, "conform: an answer (%d, type %d) to bytes before HELLO\n", rc,
			rc == 1 ? (int)r->f.type : -1);
	/* the broker did not take the proof: no connection was made (the
	 * log line is rate-limited: it shows the first refusal of a second) */
	int taken = r->q && !harness_rawq_proof_left(r->q);
	if (taken)
		fprintf(stderr, "conform: the broker took the proof of bytes that were no HELLO\n");
	return rc == 0 && !taken && harness_broker_wait_log(b, "a HELLO refused", CONFORM_T) == 0;
}

int conform_quiet(struct harness_raw *r)
{
	struct conform_seen s = {0};
	return harness_raw_barrier(r, CONFORM_T, conform_seen_frame, &s) == 1 && s.msgs == 0 &&
	       s.errs == 0 && s.other == 0;
}

struct conform_probe {
	uint64_t id;
	int refused;
};

static void conform_probe_frame(void *arg, struct harness_raw *r)
{
	struct conform_probe *p = arg;
	if (r->f.type == IPCBUS__FRAME_TYPE__ERR && r->f.id == p->id &&
	    r->err_code == IPCBUS__ERR_CODE__E_NO_RESPONDERS)
		p->refused = 1;
}

int conform_wait_no_interest(struct harness_raw *r, const char *channel, int timeout_ms)
{
	uint64_t t0 = harness_now();

	for (;;) {
		struct conform_probe p = {.id = ++r->next_id};
		if (harness_raw_pub(r, p.id, channel, "_INBOX.conform.gone", "gone?", 5) < 0 ||
		    harness_raw_barrier(r, CONFORM_T, conform_probe_frame, &p) != 1)
			return -1;
		uint64_t dt = harness_now() - t0;
		if (p.refused)
			return (int)dt;
		if (dt >= (uint64_t)timeout_ms)
			return -1;
		harness_sleep(10);
	}
}

/* ---- the program ---- */

/* Why the row cannot run here, or NULL. */
static const char *conform_missing(const struct conform_row *row, int all)
{
	static char why[160];
	char path[256];

	if ((row->flags & CONFORM_OFF) && !all) {
		snprintf(why, sizeof why, "switched off: %s (conform.c; -a runs it)",
			 row->why_off ? row->why_off : "CONFORM_OFF");
		return why;
	}
	if ((row->flags & CONFORM_IPV6) && !harness_have_ipv6())
		return "no IPv6 loopback ([::1] cannot be bound)";
	if ((row->flags & CONFORM_TLS) && harness_which("openssl", path, sizeof path) < 0)
		return "no openssl command (the certificates are made with it)";
	return NULL;
}

static void conform_before_case(void)
{
	struct conform_result *res = &conform_results[conform_row_index()];
	res->started = harness_now();
	if (!res->t0)
		res->t0 = res->started;
	res->fail0 = CU_get_number_of_failures();
}

static void conform_after_case(void)
{
	struct conform_result *res = &conform_results[conform_row_index()];
	harness_cleanup();
	res->t1 = harness_now();
	if (CU_get_number_of_failures() != res->fail0)
		res->failed++;
	fprintf(stderr, "  (%llu ms)\n", (unsigned long long)(res->t1 - res->started));
}

static void conform_list(void)
{
	printf("rows:\n");
	for (size_t i = 0; i < CONFORM_NROWS; i++) {
		const struct conform_row *row = &conform_rows[i];
		printf("  %-11s %s%s%s%s%s%s\n", row->name, row->listen,
		       row->flags & CONFORM_STREAM ? " stream" : "",
		       row->flags & CONFORM_RAW ? " raw" : "",
		       row->flags & CONFORM_ACCEPT ? " accept" : "",
		       row->flags & CONFORM_TLS ? " tls" : "",
		       row->flags & CONFORM_OFF ? " (off)" : "");
	}
	printf("cases:\n");
	for (size_t t = 0; t < HARNESS_NELEM(conform_tables); t++)
		for (const struct conform_case *c = conform_tables[t]; c->name; c++)
			printf("  %-24s%s%s%s\n", c->name, c->needs & CONFORM_STREAM ? " stream" : "",
			       c->needs & CONFORM_RAW ? " raw" : "",
			       c->needs & CONFORM_ACCEPT ? " accept" : "");
}

/* Register the row's suite and its cases; 1 when it will run a case. */
static int conform_add_row(size_t i, int all, const char *filter)
{
	const struct conform_row *row = &conform_rows[i];
	struct conform_result *res = &conform_results[i];
	CU_pSuite s = CU_add_suite_with_setup_and_teardown(row->name, NULL, NULL, conform_before_case,
							  conform_after_case);
	if (!s)
		return -1;
	const char *why = conform_missing(row, all);
	if (why) {
		snprintf(res->skip_why, sizeof res->skip_why, "%s", why);
		res->skipped = res->skip_why;
	}
	for (size_t t = 0; t < HARNESS_NELEM(conform_tables); t++) {
		for (const struct conform_case *c = conform_tables[t]; c->name; c++) {
			if (filter && !strstr(c->name, filter))
				continue;
			CU_pTest test = CU_add_test(s, c->name, c->fn);
			if (!test)
				return -1;
			res->cases++;
			unsigned lacks = c->needs & ~row->flags;
			if (lacks && !res->skipped) {
				CU_set_test_active(test, CU_FALSE);
				res->inactive++;
				fprintf(stderr, "conform: %s/%s: not run: the transport %s\n", row->name,
					c->name,
					lacks & CONFORM_STREAM   ? "is no byte stream"
					: lacks & CONFORM_RAW    ? "is not spoken by the raw client"
								 : "has no connection before HELLO");
			}
		}
	}
	if (res->skipped) {
		CU_set_suite_active(s, CU_FALSE);
		fprintf(stderr, "conform: row %s skipped: %s\n", row->name, res->skipped);
		return 0;
	}
	return res->cases > res->inactive;
}

int main(int argc, char **argv)
{
	const char *filter = NULL;
	int all = 0, some = 0, runs = 0, rc = 99, opt;

	while ((opt = getopt(argc, argv, "alr:h")) != -1) {
		switch (opt) {
		case 'a': all = 1; break;
		case 'l': conform_list(); return 0;
		case 'r': {
			size_t i = 0;
			while (i < CONFORM_NROWS && strcmp(conform_rows[i].name, optarg) != 0)
				i++;
			if (i == CONFORM_NROWS) {
				fprintf(stderr, "conform: no row %s (-l lists them)\n", optarg);
				return 99;
			}
			conform_results[i].selected = 1;
			some = 1;
			break;
		}
		default:
			fprintf(stderr, "usage: test_conform [-a] [-l] [-r ROW]... [CASE]\n");
			return opt == 'h' ? 0 : 99;
		}
	}
	if (optind < argc)
		filter = argv[optind];
	size_t active = 0;
	for (size_t i = 0; i < CONFORM_NROWS; i++) {
		if (!some)
			conform_results[i].selected = 1;
		active += conform_results[i].selected && !conform_missing(&conform_rows[i], all);
	}
	int init = harness_init("conform", 0, 120 * (int)(active ? active : 1));
	if (init != 0)
		return init;
	conform_quarantine_mb = harness_asan_quarantine(4);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_set_fail_on_inactive(CU_FALSE);
	for (size_t i = 0; i < CONFORM_NROWS; i++) {
		if (!conform_results[i].selected)
			continue;
		int r = conform_add_row(i, all, filter);
		if (r < 0)
			goto out;
		runs += r;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		goto out;
	fprintf(stderr, "\nconform: summary\n");
	for (size_t i = 0; i < CONFORM_NROWS; i++) {
		const struct conform_result *res = &conform_results[i];
		if (!res->selected)
			continue;
		if (res->skipped)
			fprintf(stderr, "  %-11s skipped: %s\n", conform_rows[i].name, res->skipped);
		else
			fprintf(stderr, "  %-11s %u cases (%u not for this transport), %u failed, %.1f s\n",
				conform_rows[i].name, res->cases, res->inactive, res->failed,
				(double)(res->t1 - res->t0) / 1000.0);
	}
	if (CU_get_number_of_failures() > 0 || CU_get_number_of_tests_failed() > 0)
		rc = 1;
	else
		rc = runs > 0 ? 0 : 77;
out:
	CU_cleanup_registry();
	harness_cleanup();
	return rc;
}
