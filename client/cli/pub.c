/*
 * pub.c: `ipcbus pub [-u URL] [-H KEY=VALUE]... CHANNEL [MESSAGE]`.
 *
 * With MESSAGE, publish it once; without, publish each line of stdin (its
 * \n or \r\n removed).  Either way it ends with ipcbus_flush(), a round
 * trip, so a publish the broker refused makes the command fail with the
 * broker's reason instead of vanishing.
 */
#include <config.h>

#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Time for the final round trip; generous because a pipe of many lines may
 * leave a lot buffered. */
#define PUB_FLUSH_MS 30000
/* Lines published between two writes when stdin has more ready. */
#define PUB_BATCH 256

static void pub_usage(FILE *f)
{
	fprintf(f, "Usage: ipcbus pub [-u URL] [-H KEY=VALUE]... CHANNEL [MESSAGE]\n"
		   "\n"
		   "Publish MESSAGE on CHANNEL; without MESSAGE, publish each line of stdin\n"
		   "(without its \\n or \\r\\n; an empty line is an empty message).\n"
		   "\n"
		   "  -u, --url URL          broker address (default: $IPCBUS_URL, else the\n"
		   "                         default socket)\n"
		   "  -H, --header KEY=VALUE add a header (split at the first '='; repeatable)\n"
		   "  -h, --help             this help\n"
		   "\n"
		   "Exits 0 when the broker accepted every message, 1 on an error (a line\n"
		   "over the broker's max-payload stops at that line), 2 on bad usage.\n");
}

/* Report a failed publish or flush; returns the exit code.  The broker's
 * own text, when it sent one, says more than the code. */
static int pub_fail(ipcbus *c, int r, const char *where, const char *channel)
{
	const char *text = ipcbus_last_error(c);

	if (r == IPCBUS_ECHANNEL && !(text && *text))
		cli_err("pub", "%sinvalid channel name '%s'", where, channel);
	else if (text && *text)
		cli_err("pub", "%scannot publish on '%s': %s (%s)", where, channel,
			ipcbus_strerror(r), text);
	else
		cli_err("pub", "%scannot publish on '%s': %s", where, channel, ipcbus_strerror(r));
	return cli_exit_code(r);
}

/* 1 when stdin has nothing ready now: time to write what is buffered, so
 * a slow producer (a terminal, `tail -f`) sees each line go out at once. */
static int pub_stdin_idle(void)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

static int pub_lines(ipcbus *c, const char *channel, const ipcbus_header *h, size_t nh)
{
	uint64_t max = ipcbus_max_payload(c);
	unsigned long lineno = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r, ret = CLI_OK;

	while ((n = getline(&line, &cap, stdin)) != -1) {
		size_t len = (size_t)n;
		lineno++;
		if (len > 0 && line[len - 1] == '\n') {
			len--;
			if (len > 0 && line[len - 1] == '\r')
				len--;
		}
		if (max && len > max) {
			cli_err("pub", "line %lu is %zu bytes, over the broker's max-payload of %llu",
				lineno, len, (unsigned long long)max);
			ret = CLI_ERROR;
			break;
		}
		r = ipcbus_publish_ex(c, channel, NULL, h, nh, line, len);
		if (r < 0) {
			char what[64];
			snprintf(what, sizeof(what), "line %lu: ", lineno);
			ret = pub_fail(c, r, what, channel);
			break;
		}
		if (lineno % PUB_BATCH == 0 || pub_stdin_idle()) {
			r = ipcbus_dispatch(c);
			if (r < 0) {
				ret = pub_fail(c, r, "", channel);
				break;
			}
		}
	}
	if (ret == CLI_OK && ferror(stdin)) {
		cli_err("pub", "reading stdin: %m");
		ret = CLI_ERROR;
	}
	free(line);
	/* Lines before a bad one were published: still make sure of them. */
	r = ipcbus_flush(c, PUB_FLUSH_MS);
	if (r < 0 && ret == CLI_OK)
		ret = pub_fail(c, r, "", channel);
	return ret;
}

int cmd_pub(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "header", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	ipcbus_header *h = NULL;
	const char *url = NULL, *channel;
	size_t nh = 0;
	ipcbus *c = NULL;
	int opt, r, ret = CLI_USAGE;

	h = calloc((size_t)argc + 1, sizeof(*h));
	if (!h) {
		cli_err("pub", "out of memory");
		return CLI_ERROR;
	}
	while ((opt = getopt_long(argc, argv, "u:H:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'H': {
			int hr = cli_parse_header(optarg, &h[nh]);
			if (hr < 0) {
				cli_header_err("pub", hr, optarg);
				goto usage;
			}
			nh++;
			break;
		}
		case 'h':
			pub_usage(stdout);
			ret = CLI_OK;
			goto out;
		default:
			goto usage;
		}
	}
	if (argc - optind < 1 || argc - optind > 2) {
		cli_err("pub", argc - optind < 1 ? "no channel given" : "too many arguments");
		goto usage;
	}
	channel = argv[optind];
	c = cli_connect("pub", url, "ipcbus pub");
	if (!c) {
		ret = CLI_ERROR;
		goto out;
	}
	if (argc - optind == 2) {
		const char *msg = argv[optind + 1];
		r = ipcbus_publish_ex(c, channel, NULL, h, nh, msg, strlen(msg));
		if (r == 0)
			r = ipcbus_flush(c, PUB_FLUSH_MS);
		ret = r < 0 ? pub_fail(c, r, "", channel) : CLI_OK;
	} else {
		ret = pub_lines(c, channel, h, nh);
	}
	goto out;
usage:
	pub_usage(stderr);
	ret = CLI_USAGE;
out:
	ipcbus_close(c);
	free(h);
	return ret;
}
