/*
 * conform.h: the transport conformance suite (tests/transport/).
 *
 * One program, test_conform, runs the same CUnit cases against every
 * transport: one CUnit suite per row of the transport table (conform.c),
 * every case of the case tables (conform_cases.c, conform_proto.c) in each.
 * A case asks for "the transport under test" through the functions below
 * and never names a scheme: conform_up() starts a broker that listens on
 * the harness's default Unix socket (b->sock, b->url) and on the row's
 * transport; conform_lib() and conform_raw_open() connect to the latter,
 * conform_lib_unix() and harness_raw_open() to the former.  So a case
 * checks that what goes in on one transport comes out right on the other.
 *
 * A row says what its transport can do (CONFORM_STREAM, CONFORM_RAW,
 * CONFORM_ACCEPT); a case says what it needs; a case a row cannot run is
 * registered inactive with a note, never passed silently.  A row whose prerequisites are
 * missing (no IPv6 loopback, no openssl command) or that is switched off
 * is a skipped suite with the reason printed.
 *
 * conform_cases.c holds the basics (the library and a raw client on the
 * transport against one on Unix); conform_proto.c what the broker answers
 * to what a raw client sends (the protocol half of what was
 * tests/integration/test_broker_proto.c, which keeps the daemon's cases).
 */
#ifndef IPCBUS_TESTS_CONFORM_H
#define IPCBUS_TESTS_CONFORM_H

#include <stddef.h>

#include "harness.h"
#include "ipcbus.h"

#define CONFORM_T 5000 /* ms: a bound for anything the broker does at once */

/* ---- what a transport can do (row flags) and what a case needs ---- */
enum {
	CONFORM_STREAM = 1 << 0, /* a byte stream of varint-delimited frames
				  * (unix, tcp, tls; not udp) */
	CONFORM_RAW = 1 << 1,    /* the harness's raw client speaks it
				  * (harness_raw_connect_url) */
	CONFORM_ACCEPT = 1 << 2, /* a connection exists before its HELLO, and
				  * holds a descriptor: the broker answers
				  * what comes first (E_NO_HELLO, framing
				  * errors), and the HELLO deadline and EMFILE
				  * apply (unix, tcp; not sysv, whose
				  * broker's queue answers only a valid
				  * HELLO) */
	/* row flags only */
	CONFORM_OFF = 1 << 8,    /* not run (printed as skipped); -a runs it */
	CONFORM_IPV6 = 1 << 9,   /* needs an IPv6 loopback */
	CONFORM_TLS = 1 << 10,   /* needs the openssl command: the broker's
				  * folder gets harness_tls_make()'s files */
};

/* One transport. In the templates, @DIR@ is the broker's folder and @PORT@
 * a free TCP port chosen for that broker. */
struct conform_row {
	const char *name;   /* the CUnit suite, and what -r selects */
	const char *listen; /* the listen URL */
	const char *client; /* the URL clients use; NULL: the listen URL */
	const char *lines;  /* more broker configuration; NULL: none */
	unsigned flags;     /* CONFORM_* */
	const char *why_off; /* with CONFORM_OFF: the reason printed */
};

/* One case; a table ends with a NULL name. */
struct conform_case {
	const char *name;
	void (*fn)(void);
	unsigned needs; /* CONFORM_STREAM, CONFORM_RAW, CONFORM_ACCEPT: what the row must have */
};

extern const struct conform_case conform_cases[];       /* conform_cases.c */
extern const struct conform_case conform_proto_cases[]; /* conform_proto.c */

/* ---- for the cases ---- */

/* The row being run (the current CUnit suite's). */
const struct conform_row *conform_row(void);

/* 1 when the row's flags have all of flags. */
int conform_has(unsigned flags);

/* KiB a memory bound must allow beyond what the broker itself holds: what
 * AddressSanitizer keeps in the processes we start (its quarantine, made
 * small by the program, and its caches); 0 without ASan. */
long conform_rss_slack_kib(void);

/* A broker with lines (as harness_broker_new; "@DIR@" is its folder),
 * listening on the default Unix socket and on the row's transport, started
 * until ready.  Stopped and removed at cleanup.  NULL, with a CUnit failure
 * and its log on stderr, when it did not start. */
struct harness_broker *conform_up(const char *lines);

/* The same with RLIMIT_NOFILE nofile for the broker (0: as it is). */
struct harness_broker *conform_up_nofile(const char *lines, long nofile);

#define CONFORM_UP(b, lines)                             \
	struct harness_broker *b = conform_up(lines); \
	if (!b)                                          \
	return

/* The URL of the row's transport on broker b (from conform_up); borrowed,
 * valid until cleanup. */
const char *conform_url(const struct harness_broker *b);

/* The raw client on the row's transport (harness_raw_connect_url and
 * harness_raw_open_url on conform_url(b)).  NULL (and, for open, a CUnit
 * failure) on failure. */
struct harness_raw *conform_raw_connect(const struct harness_broker *b);
struct harness_raw *conform_raw_open(const struct harness_broker *b, const char *name);

#define CONFORM_OPEN(r, b, name)                           \
	struct harness_raw *r = conform_raw_open(b, name); \
	if (!r)                                            \
	return

/* What a library connection reported through on_event. */
struct conform_events {
	int disconnected, reconnected, errors, closed;
	int last_err;
	char text[256];
};

/* A library connection to the row's transport (conform_lib) or to the
 * default Unix socket (conform_lib_unix) of broker b, with a short
 * reconnect backoff; ev may be NULL.  Closed at cleanup.  NULL and a CUnit
 * failure when it did not connect. */
ipcbus *conform_lib(const struct harness_broker *b, const char *name, struct conform_events *ev);
ipcbus *conform_lib_unix(const struct harness_broker *b, const char *name,
			 struct conform_events *ev);

/* What a raw barrier read on the way. */
struct conform_seen {
	size_t msgs, errs, other;
	uint64_t sid[64];
	char payload[64][64];
	char channel[64][64];
	int err_code[8];
	uint64_t err_id[8];
};

/* A harness_raw_barrier callback filling a struct conform_seen. */
void conform_seen_frame(void *arg, struct harness_raw *r);

/* A round trip that reads nothing but its PONG: 1, else 0. */
int conform_quiet(struct harness_raw *r);

/* On a row without CONFORM_ACCEPT: what r sent before a valid HELLO went
 * to the broker's HELLO queue, which answers nothing and logs the refusal
 * (docs/protocol.md, SysV).  1 when nothing came back within 300 ms, the
 * proof is still in r's send queue (no connection was made) and the
 * broker's log has a refused HELLO, else 0. */
int conform_unanswered(const struct harness_broker *b, struct harness_raw *r);

/* Publish requests on channel from r (reply_to _INBOX.conform.gone) until
 * the broker answers E_NO_RESPONDERS, i.e. until nobody is subscribed any
 * more: the milliseconds it took, or -1 when still answered after
 * timeout_ms. */
int conform_wait_no_interest(struct harness_raw *r, const char *channel, int timeout_ms);

#endif
