/*
 * main.c: the ipcbus command: global options, then dispatch on the
 * subcommand name.  Each subcommand parses its own options (cmd_*).
 */
#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct main_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *what;
};

static const struct main_cmd main_cmds[] = {
	{ "pub", cmd_pub, "publish a message, or each line of stdin" },
	{ "sub", cmd_sub, "print the messages of channels" },
	{ "req", cmd_req, "send a request, print the reply" },
	{ "reply", cmd_reply, "answer requests (echo, or run a command)" },
	{ "bench", cmd_bench, "measure pub/sub throughput or request latency" },
};

#define MAIN_NCMDS (sizeof(main_cmds) / sizeof(main_cmds[0]))

static void main_usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: ipcbus [-h|--help] [-V|--version] COMMAND [ARG]...\n"
		   "       ipcbus help COMMAND\n"
		   "\n"
		   "Commands:\n");
	for (i = 0; i < MAIN_NCMDS; i++)
		fprintf(f, "  %-6s %s\n", main_cmds[i].name, main_cmds[i].what);
	fprintf(f, "\n"
		   "Every command takes -u URL (default: $IPCBUS_URL, else the user's broker\n"
		   "socket when it exists, else the system broker's) and -h for its own help.\n"
		   "URLs: unix:///path/to/socket, tcp://[TOKEN@]host:port (tcp://[::1]:port\n"
		   "for IPv6), tls://[TOKEN@]host:port[?ca=FILE][&cert=FILE&key=FILE] (or\n"
		   "$IPCBUS_TLS_CA, $IPCBUS_TLS_CERT, $IPCBUS_TLS_KEY; no CA: the system's),\n"
		   "udp://[TOKEN@]host:port (one message a datagram: may lose messages).\n"
		   "Over tcp://, tls:// and udp:// the token is TOKEN, else $IPCBUS_TOKEN,\n"
		   "else the first line of the file $IPCBUS_TOKEN_FILE names (kept out of ps).\n"
		   "\n"
		   "Exit codes: 0 ok, 1 error, 2 usage, 3 timeout, 4 no responders,\n"
		   "5 disconnected, 6 the reply is an error reply.\n");
}

static const struct main_cmd *main_find(const char *name)
{
	size_t i;

	for (i = 0; i < MAIN_NCMDS; i++)
		if (strcmp(main_cmds[i].name, name) == 0)
			return &main_cmds[i];
	return NULL;
}

/* `ipcbus help COMMAND` is `ipcbus COMMAND --help`. */
static int main_help(int argc, char **argv)
{
	const struct main_cmd *cmd;
	char help[] = "--help";
	char *av[3];

	if (argc < 2) {
		main_usage(stdout);
		return CLI_OK;
	}
	cmd = main_find(argv[1]);
	if (!cmd || argc > 2) {
		if (!cmd)
			cli_err(NULL, "unknown command '%s'", argv[1]);
		main_usage(stderr);
		return CLI_USAGE;
	}
	av[0] = argv[1];
	av[1] = help;
	av[2] = NULL;
	return cmd->fn(2, av);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const struct main_cmd *cmd;
	int opt;
	static char self[] = "ipcbus";

	/* getopt names argv[0] in its messages: not the libtool wrapper's path. */
	argv[0] = self;
	/* '+': stop at the command name; its options are its own. */
	while ((opt = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			main_usage(stdout);
			return CLI_OK;
		case 'V':
			printf("ipcbus %s (libipcbus %s, protocol %d)\n", PACKAGE_VERSION,
			       ipcbus_version(), IPCBUS_PROTOCOL_VERSION);
			return CLI_OK;
		default:
			main_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		cli_err(NULL, "no command given");
		main_usage(stderr);
		return CLI_USAGE;
	}
	argc -= optind;
	argv += optind;
	/* 0 makes glibc's getopt start afresh for the subcommand. */
	optind = 0;
	if (strcmp(argv[0], "help") == 0)
		return main_help(argc, argv);
	cmd = main_find(argv[0]);
	if (!cmd) {
		cli_err(NULL, "unknown command '%s'", argv[0]);
		main_usage(stderr);
		return CLI_USAGE;
	}
	return cmd->fn(argc, argv);
}
