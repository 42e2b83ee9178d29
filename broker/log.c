/*
 * log.c: one line per event, with a timestamp and a level, to stderr, a file
 * (appended, line-buffered) or syslog.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

void log_init(struct log *l)
{
	memset(l, 0, sizeof *l);
	l->level = LOG_LVL_INFO;
	l->file = stderr;
}

int log_open(struct log *l, const char *dest)
{
	if (strcmp(dest, "stderr") == 0) {
		log_close(l);
		l->file = stderr;
		return 0;
	}
	if (strcmp(dest, "syslog") == 0) {
		log_close(l);
		openlog("ipcbusd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		l->to_syslog = 1;
		return 0;
	}
	if (strlen(dest) >= sizeof l->path)
		return -ENAMETOOLONG;
	FILE *f = fopen(dest, "ae");
	if (!f)
		return -errno;
	setvbuf(f, NULL, _IOLBF, 0);
	log_close(l);
	l->file = f;
	strcpy(l->path, dest);
	return 0;
}

void log_close(struct log *l)
{
	if (l->to_syslog)
		closelog();
	else if (l->file && l->file != stderr)
		fclose(l->file);
	l->to_syslog = 0;
	l->file = stderr;
	l->path[0] = 0;
}

void log_msg(struct log *l, int level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	va_list ap;

	if (level > l->level)
		return;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	if (l->tee_stderr && level <= LOG_LVL_WARN && (l->to_syslog || l->file != stderr)) {
		/* before ready, whoever started us must see why it failed,
		 * whatever the configured log (a missing syslog socket...) */
		va_start(ap, fmt);
		fprintf(stderr, "ipcbusd: ");
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
	va_start(ap, fmt);
	if (l->to_syslog) {
		vsyslog(prio[level], fmt, ap);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
		fprintf(l->file, "%s.%03ld ipcbusd %s: ", when, ts.tv_nsec / 1000000, names[level]);
		vfprintf(l->file, fmt, ap);
		fputc('\n', l->file);
		fflush(l->file);
	}
	va_end(ap);
}
