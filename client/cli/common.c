/*
 * common.c: what every subcommand of the ipcbus command shares: exit codes,
 * error messages, option parsing and connecting.
 *
 * The command uses only the public API of ipcbus.h, like any other program,
 * so the CLI doubles as a check that the library is usable from outside.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int cli_exit_code(int err)
{
	switch (err) {
	case 0:
		return CLI_OK;
	case IPCBUS_ETIMEOUT:
		return CLI_TIMEOUT;
	case IPCBUS_ENORESPONDERS:
		return CLI_NO_RESPONDERS;
	case IPCBUS_EDISCONNECTED:
		return CLI_DISCONNECTED;
	default:
		return CLI_ERROR;
	}
}

void cli_err(const char *sub, const char *fmt, ...)
{
	va_list ap;
	char line[4096];
	int n, m;

	/* One write, so lines of concurrent processes (bench) do not interleave. */
	n = snprintf(line, sizeof(line), "ipcbus%s%s: ", sub ? " " : "", sub ? sub : "");
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	fflush(stdout);
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

int cli_parse_header(const char *s, ipcbus_header *h)
{
	const char *eq = strchr(s, '=');

	if (!eq || eq == s)
		return -1;
	if (strncmp(s, "ipcbus-", 7) == 0)
		return -2; /* the broker's and the exec bridge's own */
	h->key = s;
	h->key_len = (size_t)(eq - s);
	h->value = eq + 1;
	h->value_len = strlen(eq + 1);
	return 0;
}

int cli_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	/* strtol() takes leading blanks and a sign; an option value is digits. */
	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The address ipcbus_connect() uses for url NULL, for error messages only:
 * the library owns the real rule (DESIGN.md, Default address; proto/url.c),
 * and its own texts name the path whenever it matters. */
static void common_default_url(char *out, size_t n)
{
	const char *env = getenv("IPCBUS_URL");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char path[4096];
	struct stat st;

	if (env && *env) {
		snprintf(out, n, "%s", env);
		return;
	}
	if (xdg && xdg[0] == '/')
		snprintf(path, sizeof(path), "%s/ipcbus/ipcbus.sock", xdg);
	else
		snprintf(path, sizeof(path), "/tmp/ipcbus-%u/ipcbus.sock", (unsigned)geteuid());
	if (geteuid() == 0 || stat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
		snprintf(path, sizeof(path), "/run/ipcbus/ipcbus.sock");
	snprintf(out, n, "unix://%s", path);
}

void cli_redact_url(const char *url, char *out, size_t n)
{
	static const char *const remote[] = {"tcp://", "tls://", "udp://"};
	const char *at = NULL, *q;
	size_t i, p = 0;

	if (n == 0)
		return;
	for (i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		p = strlen(remote[i]);
		if (strncmp(url, remote[i], p) == 0) {
			/* the token ends at the first '@' before any '?' */
			at = strchr(url + p, '@');
			q = strchr(url + p, '?');
			if (q && at && q < at)
				at = NULL;
			break;
		}
	}
	if (at)
		snprintf(out, n, "%.*s***%s", (int)p, url, at);
	else
		snprintf(out, n, "%s", url);
}

/* Why the last ipcbus_connect() failed, from IPCBUS_EV_CONNECT_FAILED: the
 * broker's own text ("the broker is full (max-connections 10)") or the
 * library's (the unsafe default socket, named).  One connect at a time per
 * process (bench forks), so one buffer will do. */
static char common_connect_why[512];

/* Notes on stderr while the library reconnects: stdout stays data only. */
static void common_on_event(void *arg, int event, int err, const char *text)
{
	const char *sub = arg;
	const char *why = text && *text ? text : ipcbus_strerror(err);

	switch (event) {
	case IPCBUS_EV_DISCONNECTED:
		cli_err(sub, "connection lost (%s)", why);
		break;
	case IPCBUS_EV_RECONNECTED:
		cli_err(sub, "reconnected");
		break;
	case IPCBUS_EV_CONNECT_FAILED:
		snprintf(common_connect_why, sizeof(common_connect_why), "%s", why);
		break;
	default:
		/* Refusals and the final close are reported by the command
		 * from the return codes, with their context. */
		break;
	}
}

ipcbus *cli_connect(const char *sub, const char *url, const char *name)
{
	ipcbus_opts opts = IPCBUS_OPTS_INIT;
	ipcbus *c = NULL;
	char shown[4200];
	const char *why;
	int r;

	opts.name = name ? name : sub;
	opts.on_event = common_on_event;
	opts.event_arg = (void *)sub;
	common_connect_why[0] = '\0';
	r = ipcbus_connect(&c, url, &opts);
	if (r == 0)
		return c;
	if (url)
		cli_redact_url(url, shown, sizeof(shown));
	else
		common_default_url(shown, sizeof(shown));
	/* the broker's reason (a full broker) rather than the code's name */
	why = common_connect_why[0] ? common_connect_why : ipcbus_strerror(r);
	switch (r) {
	case IPCBUS_EURL:
		/* the library's reason names the URL (without its token): one
		 * that does not parse, or a scheme it does not speak yet */
		if (common_connect_why[0])
			cli_err(sub, "%s", common_connect_why);
		else
			cli_err(sub, "invalid URL '%s'", shown);
		break;
	case -ENOENT:
	case -ECONNREFUSED:
	case IPCBUS_ETIMEOUT:
	case -ETIMEDOUT:
	case IPCBUS_EDISCONNECTED:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
		cli_err(sub, "cannot connect to %s: %s (is ipcbusd running?)", shown, why);
		break;
	case IPCBUS_EUNSAFE:
		if (strncmp(shown, "unix://", 7) != 0) {
			/* not a socket: a token file that others may read */
			cli_err(sub, "cannot connect to %s: %s", shown, why);
			break;
		}
		/* another user may serve a broker there to read what we send */
		cli_err(sub,
			"refusing the default socket %s: %s; "
			"give -u URL (or IPCBUS_URL) to choose a broker",
			shown, why);
		break;
	default:
		cli_err(sub, "cannot connect to %s: %s", shown, why);
		break;
	}
	return NULL;
}

int cli_valid_group(const char *g)
{
	size_t n = strlen(g);
	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)g[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '-' || ch == '.'))
			return 0;
	}
	return 1;
}

void cli_header_err(const char *sub, int rc, const char *arg)
{
	if (rc == -2)
		cli_err(sub, "-H %s: keys beginning with ipcbus- are reserved for the broker and the CLI",
			arg);
	else
		cli_err(sub, "-H wants KEY=VALUE, not '%s'", arg);
}
