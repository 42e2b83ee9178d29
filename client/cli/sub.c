/*
 * sub.c: `ipcbus sub [-u URL] [-q GROUP] [-c COUNT] [-v] [--json] PATTERN...`.
 *
 * Prints each message on its own line and flushes it at once, so whatever
 * was printed before a Ctrl-C or a `-c` exit is complete.  Each line is
 * built in memory first and written with one fwrite + fflush, so a reader
 * never sees half a message.  stdout carries data only; notes about the
 * connection go to stderr.
 *
 * The program drives the connection in its own poll loop (ipcbus_fd,
 * ipcbus_timeout, ipcbus_dispatch) beside a signalfd, so SIGINT and SIGTERM
 * end it cleanly between two messages whatever the library is doing.  The
 * library reconnects by itself after a broker restart and restores the
 * subscriptions.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"

struct sub_out {
	char *p;
	size_t len, cap;
	int oom;
};

struct sub_state {
	int verbose, json;
	long count;    /* stop after this many; 0: never */
	long received;
	int werr;      /* errno of a failed write to stdout */
	struct sub_out out;
};

static void sub_usage(FILE *f)
{
	fprintf(f,
		"Usage: ipcbus sub [-u URL] [-q GROUP] [-c COUNT] [-v] [--json] PATTERN...\n"
		"\n"
		"Print each message on the channels matching PATTERN (`*` one token, `>`\n"
		"the rest) on its own line, as soon as it arrives.\n"
		"\n"
		"  -u, --url URL      broker address (default: $IPCBUS_URL, else the default\n"
		"                     socket)\n"
		"  -q, --queue GROUP  join queue group GROUP: each message goes to one member\n"
		"  -c, --count COUNT  exit 0 after COUNT messages\n"
		"  -v, --verbose      print \"CHANNEL PAYLOAD\"\n"
		"      --json         print one JSON object a line:\n"
		"                       {\"channel\": \"...\", \"payload\": \"...\",\n"
		"                        \"headers\": {\"KEY\": \"VALUE\", \"REPEATED\": [\"V1\", \"V2\"]},\n"
		"                        \"reply_to\": \"...\"}\n"
		"                     a payload that is not UTF-8 comes as \"payload_base64\"\n"
		"                     instead of \"payload\"; a header value that is not UTF-8\n"
		"                     comes as an object {\"base64\": \"...\"} in place of the\n"
		"                     string; a header key that is not UTF-8 has each invalid\n"
		"                     byte written as \\u00XX; reply_to is left out when absent\n"
		"  -h, --help         this help\n"
		"\n"
		"Once connected it survives broker restarts (notes on stderr).  SIGINT and\n"
		"SIGTERM exit 0.  Without a broker to connect to at start it exits 1 at once.\n");
}

static int sub_grow(struct sub_out *o, size_t more)
{
	size_t cap;
	char *p;

	if (o->oom)
		return -1;
	if (o->len + more <= o->cap)
		return 0;
	cap = o->cap ? o->cap : 4096;
	while (cap < o->len + more)
		cap *= 2;
	p = realloc(o->p, cap);
	if (!p) {
		o->oom = 1;
		return -1;
	}
	o->p = p;
	o->cap = cap;
	return 0;
}

static void sub_put(struct sub_out *o, const void *s, size_t n)
{
	if (sub_grow(o, n) < 0)
		return;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void sub_puts(struct sub_out *o, const char *s)
{
	sub_put(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t sub_utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static int sub_utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0, k;

	while (i < n) {
		k = sub_utf8_seq(s + i, n - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

/* A JSON string.  Invalid UTF-8 bytes (only possible for header keys, the
 * callers check the rest) become \u00XX. */
static void sub_json_str(struct sub_out *o, const void *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = p;
	size_t i = 0, k;
	char esc[6];

	sub_put(o, "\"", 1);
	while (i < n) {
		unsigned char ch = s[i];
		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			sub_put(o, esc, 2);
			i++;
		} else if (ch < 0x20 || (ch >= 0x80 && (k = sub_utf8_seq(s + i, n - i)) == 0)) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			sub_put(o, esc, 6);
			i++;
		} else if (ch < 0x80) {
			sub_put(o, s + i, 1);
			i++;
		} else {
			sub_put(o, s + i, k);
			i += k;
		}
	}
	sub_put(o, "\"", 1);
}

static void sub_base64(struct sub_out *o, const void *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = p;
	size_t i;
	char q[4];

	sub_put(o, "\"", 1);
	for (i = 0; i + 2 < n; i += 3) {
		q[0] = tab[s[i] >> 2];
		q[1] = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		q[2] = tab[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
		q[3] = tab[s[i + 2] & 63];
		sub_put(o, q, 4);
	}
	if (n - i == 1) {
		q[0] = tab[s[i] >> 2];
		q[1] = tab[(s[i] & 3) << 4];
		q[2] = q[3] = '=';
		sub_put(o, q, 4);
	} else if (n - i == 2) {
		q[0] = tab[s[i] >> 2];
		q[1] = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		q[2] = tab[(s[i + 1] & 15) << 2];
		q[3] = '=';
		sub_put(o, q, 4);
	}
	sub_put(o, "\"", 1);
}

static void sub_json_value(struct sub_out *o, const ipcbus_header *h)
{
	if (sub_utf8_valid(h->value, h->value_len)) {
		sub_json_str(o, h->value, h->value_len);
	} else {
		sub_puts(o, "{\"base64\":");
		sub_base64(o, h->value, h->value_len);
		sub_puts(o, "}");
	}
}

static int sub_same_key(const ipcbus_header *a, const ipcbus_header *b)
{
	return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* Headers as an object; a key given more than once maps to an array of its
 * values in order.  Quadratic, but messages carry a handful of headers. */
static void sub_json_headers(struct sub_out *o, const ipcbus_msg *m)
{
	size_t i, j, k, n;
	int first = 1;

	sub_puts(o, "{");
	for (i = 0; i < m->nheaders; i++) {
		for (j = 0; j < i; j++)
			if (sub_same_key(&m->headers[j], &m->headers[i]))
				break;
		if (j < i)
			continue; /* printed with its first occurrence */
		n = 0;
		for (k = i; k < m->nheaders; k++)
			n += sub_same_key(&m->headers[k], &m->headers[i]);
		if (!first)
			sub_puts(o, ",");
		first = 0;
		sub_json_str(o, m->headers[i].key, m->headers[i].key_len);
		sub_puts(o, ":");
		if (n == 1) {
			sub_json_value(o, &m->headers[i]);
			continue;
		}
		sub_puts(o, "[");
		for (k = i; k < m->nheaders; k++) {
			if (!sub_same_key(&m->headers[k], &m->headers[i]))
				continue;
			if (k != i)
				sub_puts(o, ",");
			sub_json_value(o, &m->headers[k]);
		}
		sub_puts(o, "]");
	}
	sub_puts(o, "}");
}

static void sub_format(struct sub_state *st, const ipcbus_msg *m)
{
	struct sub_out *o = &st->out;

	if (st->json) {
		sub_puts(o, "{\"channel\":");
		sub_json_str(o, m->channel, m->channel_len);
		if (sub_utf8_valid(m->data, m->len)) {
			sub_puts(o, ",\"payload\":");
			sub_json_str(o, m->data, m->len);
		} else {
			sub_puts(o, ",\"payload_base64\":");
			sub_base64(o, m->data, m->len);
		}
		sub_puts(o, ",\"headers\":");
		sub_json_headers(o, m);
		if (m->reply_to) {
			sub_puts(o, ",\"reply_to\":");
			sub_json_str(o, m->reply_to, m->reply_to_len);
		}
		sub_puts(o, "}\n");
		return;
	}
	if (st->verbose) {
		sub_put(o, m->channel, m->channel_len);
		sub_put(o, " ", 1);
	}
	sub_put(o, m->data, m->len);
	sub_put(o, "\n", 1);
}

static void sub_on_msg(void *arg, const ipcbus_msg *m)
{
	struct sub_state *st = arg;

	/* One dispatch may deliver more than -c wants, or more after a write
	 * failed: those are dropped. */
	if (st->werr || (st->count && st->received >= st->count))
		return;
	st->out.len = 0;
	sub_format(st, m);
	if (st->out.oom) {
		st->werr = ENOMEM;
		return;
	}
	if (fwrite(st->out.p, 1, st->out.len, stdout) != st->out.len || fflush(stdout) != 0) {
		st->werr = errno ? errno : EIO;
		return;
	}
	st->received++;
}

/* Run until -c is satisfied, a signal, or the connection is closed for
 * good.  Returns the exit code. */
static int sub_loop(ipcbus *c, struct sub_state *st, int sfd)
{
	struct pollfd p[2];
	int r;

	p[0].fd = ipcbus_fd(c);
	p[0].events = POLLIN;
	p[1].fd = sfd;
	p[1].events = POLLIN;
	for (;;) {
		if (st->werr) {
			cli_err("sub", "writing stdout: %s", strerror(st->werr));
			return CLI_ERROR;
		}
		if (st->count && st->received >= st->count)
			return CLI_OK;
		r = poll(p, 2, ipcbus_timeout(c));
		if (r < 0 && errno != EINTR) {
			cli_err("sub", "poll: %m");
			return CLI_ERROR;
		}
		if (r > 0 && (p[1].revents & POLLIN))
			return CLI_OK;
		r = ipcbus_dispatch(c);
		if (r < 0) {
			const char *text = ipcbus_last_error(c);
			cli_err("sub", "connection closed: %s%s%s%s", ipcbus_strerror(r),
				text && *text ? " (" : "", text ? text : "", text && *text ? ")" : "");
			return cli_exit_code(r);
		}
	}
}

int cmd_sub(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "queue", required_argument, NULL, 'q' },
		{ "count", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sub_state st = { 0 };
	const char *url = NULL, *group = NULL;
	ipcbus *c = NULL;
	sigset_t sigs;
	int opt, r, i, sfd = -1, ret = CLI_ERROR;

	while ((opt = getopt_long(argc, argv, "u:q:c:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'q':
			group = optarg;
			break;
		case 'c':
			if (cli_parse_long(optarg, 1, LONG_MAX, &st.count) < 0) {
				cli_err("sub", "-c wants a count of at least 1, not '%s'", optarg);
				goto usage;
			}
			break;
		case 'v':
			st.verbose = 1;
			break;
		case 'J':
			st.json = 1;
			break;
		case 'h':
			sub_usage(stdout);
			return CLI_OK;
		default:
			goto usage;
		}
	}
	if (optind >= argc) {
		cli_err("sub", "no pattern given");
		goto usage;
	}

	/* Blocked before connecting, so a signal at any point is seen. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		cli_err("sub", "signalfd: %m");
		goto out;
	}
	if (group && !cli_valid_group(group)) {
		cli_err("sub", "invalid queue group '%s' (1 to 255 of A-Z a-z 0-9 _ - .)", group);
		ret = CLI_USAGE;
		goto out;
	}
	c = cli_connect("sub", url, "ipcbus sub");
	if (!c)
		goto out;
	for (i = optind; i < argc; i++) {
		r = ipcbus_subscribe(c, argv[i], group, sub_on_msg, &st, NULL);
		if (r == IPCBUS_ECHANNEL) {
			cli_err("sub", "invalid pattern '%s'", argv[i]);
			goto out;
		} else if (r < 0) {
			cli_err("sub", "subscribing to '%s': %s", argv[i], ipcbus_strerror(r));
			ret = cli_exit_code(r);
			goto out;
		}
	}
	/* A round trip, so a refused subscription fails now, not silently. */
	r = ipcbus_flush(c, 10000);
	if (r < 0) {
		const char *text = ipcbus_last_error(c);
		cli_err("sub", "subscribing: %s%s%s%s", ipcbus_strerror(r), text && *text ? " (" : "",
			text ? text : "", text && *text ? ")" : "");
		ret = cli_exit_code(r);
		goto out;
	}
	ret = sub_loop(c, &st, sfd);
	goto out;
usage:
	sub_usage(stderr);
	return CLI_USAGE;
out:
	ipcbus_close(c);
	if (sfd >= 0)
		close(sfd);
	/* The signals stay blocked: unblocking one that came late would turn
	 * a clean exit 0 into death by signal. */
	free(st.out.p);
	return ret;
}
