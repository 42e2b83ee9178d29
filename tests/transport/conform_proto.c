/*
 * conform_proto.c: the protocol half of tests/integration/test_broker_proto.c
 * -- what the broker answers to what a client sends, which does not depend
 * on the transport -- run on every transport.  Its table is empty until
 * the cases move here from test_broker_proto.c.
 *
 * Moving a case: paste the function (and its helpers, e.g. proc_cpu) here,
 * replace harness_raw_connect(b->sock) by conform_raw_connect(b) (and a
 * harness_raw_open(b, ...) retried in a loop by
 * harness_raw_open_url(conform_url(b), ...)), add a line to the table with
 * what the case needs of the transport, and delete it from
 * test_broker_proto.c.  The names test_broker_proto.c uses (UP, OPEN,
 * quiet, struct seen, seen_frame, open_raw, T, E_*) are defined below as
 * the suite's, so the body needs no other change.
 *
 * To move (name in test_broker_proto.c: needs):
 *   hello_welcome, wrong_version, payload_too_big, headers_too_big,
 *   invalid_channel, system_channels, sub_errors, max_subscriptions,
 *   max_connections, hello_deadline, no_responders, ping_pong, keepalive,
 *   largest_frame: CONFORM_RAW
 *   frame_before_hello, second_hello, frame_too_big, control_flood,
 *   byte_by_byte: CONFORM_RAW | CONFORM_STREAM (UDP has its own rules for
 *   a frame without a session and for a repeated HELLO, and no prefix)
 *   garbage: covered by conform_cases.c's garbage, which sends its three
 *   inputs and three more; drop it there rather than move it
 *   emfile, term_with_pending_accept: CONFORM_RAW | CONFORM_STREAM (the
 *   listener's accept path, which each stream transport has)
 *   drain: CONFORM_RAW | CONFORM_STREAM, without its two Unix-socket
 *   checks (no connect while stopping, socket file removed), which stay
 *   overlapping_patterns, wildcards, queue_groups: the router's; they may
 *   move (CONFORM_RAW) but test nothing of the transport
 * The daemon's cases stay: pidfile_and_term, hup_reopens_log,
 * socket_modes, stale_and_live_socket, check_config, daemonize.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conform.h"

/* test_broker_proto.c's names for the suite's helpers */
#define T CONFORM_T
#define UP CONFORM_UP
#define OPEN CONFORM_OPEN
#define quiet conform_quiet
#define seen conform_seen
#define seen_frame conform_seen_frame
#define open_raw conform_raw_open

enum {
	E_PROTOCOL = IPCBUS__ERR_CODE__E_PROTOCOL,
	E_FRAME_TOO_BIG = IPCBUS__ERR_CODE__E_FRAME_TOO_BIG,
	E_VERSION = IPCBUS__ERR_CODE__E_VERSION,
	E_NO_HELLO = IPCBUS__ERR_CODE__E_NO_HELLO,
	E_MAX_CONNECTIONS = IPCBUS__ERR_CODE__E_MAX_CONNECTIONS,
	E_IDLE = IPCBUS__ERR_CODE__E_IDLE,
	E_SLOW_CONSUMER = IPCBUS__ERR_CODE__E_SLOW_CONSUMER,
	E_INVALID_CHANNEL = IPCBUS__ERR_CODE__E_INVALID_CHANNEL,
	E_PERMISSION = IPCBUS__ERR_CODE__E_PERMISSION,
	E_PAYLOAD_TOO_BIG = IPCBUS__ERR_CODE__E_PAYLOAD_TOO_BIG,
	E_HEADERS_TOO_BIG = IPCBUS__ERR_CODE__E_HEADERS_TOO_BIG,
	E_TOO_MANY_SUBS = IPCBUS__ERR_CODE__E_TOO_MANY_SUBS,
	E_UNKNOWN_SID = IPCBUS__ERR_CODE__E_UNKNOWN_SID,
	E_DUPLICATE_SID = IPCBUS__ERR_CODE__E_DUPLICATE_SID,
	E_NO_RESPONDERS = IPCBUS__ERR_CODE__E_NO_RESPONDERS,
};

const struct conform_case conform_proto_cases[] = {
	/* {"hello_welcome", test_hello_welcome, CONFORM_RAW}, ... */
	{NULL, NULL, 0},
};
