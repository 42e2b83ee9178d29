/*
 * req.c: `ipcbus req [-u URL] [-t MS] [-H KEY=VALUE]... CHANNEL MESSAGE`.
 *
 * Sends one request and prints the reply's payload.  The exit code tells a
 * script what happened without parsing stderr: 3 timeout, 4 no responders,
 * 5 disconnected, 6 an error reply of the exec bridge (`ipcbus reply --
 * COMMAND`), whose payload is printed all the same.
 */
#include <config.h>

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The headers by which the exec bridge marks an error reply. */
static const char *const req_error_headers[] = {
	"ipcbus-error",
	"ipcbus-exit-status",
	"ipcbus-signal",
};

static void req_usage(FILE *f)
{
	fprintf(f, "Usage: ipcbus req [-u URL] [-t MS] [-H KEY=VALUE]... CHANNEL MESSAGE\n"
		   "\n"
		   "Send MESSAGE as a request on CHANNEL and print the reply's payload.\n"
		   "\n"
		   "  -u, --url URL          broker address (default: $IPCBUS_URL, else the\n"
		   "                         default socket)\n"
		   "  -t, --timeout MS       wait at most MS milliseconds (default 5000)\n"
		   "  -H, --header KEY=VALUE add a header (split at the first '='; repeatable)\n"
		   "  -h, --help             this help\n"
		   "\n"
		   "Exit codes: 0 a reply, 1 error, 2 usage, 3 timeout, 4 no responders,\n"
		   "5 disconnected, 6 an error reply (header ipcbus-error, ipcbus-exit-status\n"
		   "or ipcbus-signal, shown on stderr; the payload is printed all the same).\n");
}

/* Print the reply; returns the exit code. */
static int req_print(const ipcbus_msg *m)
{
	int ret = CLI_OK;
	size_t i, len;
	const char *v;

	/* a payload that already ends its line (a command's output) gets no
	 * second newline */
	int nl = m->len == 0 || ((const char *)m->data)[m->len - 1] != '\n';
	if (fwrite(m->data, 1, m->len, stdout) != m->len || (nl && fputc('\n', stdout) == EOF) ||
	    fflush(stdout) != 0) {
		cli_err("req", "writing stdout: %m");
		return CLI_ERROR;
	}
	for (i = 0; i < sizeof(req_error_headers) / sizeof(req_error_headers[0]); i++) {
		v = ipcbus_msg_header(m, req_error_headers[i], &len);
		if (!v)
			continue;
		cli_err("req", "error reply: %s: %.*s", req_error_headers[i],
			len > INT_MAX ? INT_MAX : (int)len, v);
		ret = CLI_ERROR_REPLY;
	}
	return ret;
}

int cmd_req(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 't' },
		{ "header", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *channel, *msg, *text;
	ipcbus_header *h;
	ipcbus_msg *reply = NULL;
	ipcbus *c = NULL;
	long timeout = 5000;
	size_t nh = 0;
	int opt, r, ret = CLI_ERROR;

	h = calloc((size_t)argc + 1, sizeof(*h));
	if (!h) {
		cli_err("req", "out of memory");
		return CLI_ERROR;
	}
	while ((opt = getopt_long(argc, argv, "u:t:H:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 't':
			if (cli_parse_long(optarg, 1, INT_MAX, &timeout) < 0) {
				cli_err("req", "-t wants milliseconds (1 to %d), not '%s'", INT_MAX,
					optarg);
				goto usage;
			}
			break;
		case 'H':
			int hr = cli_parse_header(optarg, &h[nh]);
			if (hr < 0) {
				cli_header_err("req", hr, optarg);
				goto usage;
			}
			nh++;
			break;
		case 'h':
			req_usage(stdout);
			ret = CLI_OK;
			goto out;
		default:
			goto usage;
		}
	}
	if (argc - optind != 2) {
		cli_err("req", argc - optind < 2 ? "CHANNEL and MESSAGE wanted" : "too many arguments");
		goto usage;
	}
	channel = argv[optind];
	msg = argv[optind + 1];
	c = cli_connect("req", url, "ipcbus req");
	if (!c)
		goto out;
	r = ipcbus_request(c, channel, h, nh, msg, strlen(msg), (int)timeout, &reply);
	switch (r) {
	case 0:
		ret = req_print(reply);
		break;
	case IPCBUS_ETIMEOUT:
		cli_err("req", "timeout after %ld ms", timeout);
		break;
	case IPCBUS_ENORESPONDERS:
		cli_err("req", "no responders on '%s'", channel);
		break;
	case IPCBUS_EDISCONNECTED:
		/* the broker may have said why (idle, slow consumer) */
		text = ipcbus_last_error(c);
		cli_err("req", "disconnected from the broker%s%s%s", text && *text ? " (" : "",
			text ? text : "", text && *text ? ")" : "");
		break;
	case IPCBUS_ECHANNEL:
		cli_err("req", "invalid channel name '%s'", channel);
		break;
	default:
		text = ipcbus_last_error(c);
		cli_err("req", "request failed: %s%s%s%s", ipcbus_strerror(r),
			text && *text ? " (" : "", text ? text : "", text && *text ? ")" : "");
		break;
	}
	if (r < 0)
		ret = cli_exit_code(r);
	goto out;
usage:
	req_usage(stderr);
	ret = CLI_USAGE;
out:
	if (reply)
		ipcbus_msg_free(reply);
	ipcbus_close(c);
	free(h);
	return ret;
}
