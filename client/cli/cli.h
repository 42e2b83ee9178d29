/*
 * cli.h: what the subcommands of the ipcbus command share.
 *
 * Each subcommand is one file with one entry point (bench's modes have a
 * file each, bench.h); main.c dispatches on argv[1].  Exit codes are
 * DESIGN.md's.
 */
#ifndef IPCBUS_CLI_H
#define IPCBUS_CLI_H

#include "ipcbus.h"

enum {
	CLI_OK = 0,
	CLI_ERROR = 1,
	CLI_USAGE = 2,
	CLI_TIMEOUT = 3,
	CLI_NO_RESPONDERS = 4,
	CLI_DISCONNECTED = 5,
	CLI_ERROR_REPLY = 6,
};

/* Entry points: argv[0] is the subcommand's name. */
int cmd_pub(int argc, char **argv);
int cmd_sub(int argc, char **argv);
int cmd_req(int argc, char **argv);
int cmd_reply(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Map a library error code to the CLI's exit code. */
int cli_exit_code(int err);

/* Print "ipcbus SUB: message" on stderr (printf format). */
void cli_err(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse "KEY=VALUE" (split at the first '=') into h, pointing into s.
 * 0, -1 when there is no '=' or the key is empty, -2 when the key begins
 * with the reserved "ipcbus-". */
int cli_parse_header(const char *s, ipcbus_header *h);

/* Print the error for cli_parse_header's code rc about arg. */
void cli_header_err(const char *sub, int rc, const char *arg);

/* 1 when g is a valid queue group name (1-255 of A-Z a-z 0-9 _ - .). */
int cli_valid_group(const char *g);

/* Parse a non-negative integer option value; 0 or -1. */
int cli_parse_long(const char *s, long min, long max, long *out);

/* url for a message or an output line: the token of tcp://TOKEN@host:port
 * (tls, udp too) is shown as three stars (as the library's url_redact(),
 * which the CLI cannot call: it uses ipcbus.h only).  Cut to n. */
void cli_redact_url(const char *url, char *out, size_t n);

/* Connect for a subcommand: url may be NULL (default address).  Prints a
 * clear error and returns NULL when no broker is reachable. */
ipcbus *cli_connect(const char *sub, const char *url, const char *name);

#endif
