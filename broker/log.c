/*
 * log.c: one line per event, with a timestamp and a level, to stderr, a file
 * (appended, line-buffered) or syslog.
 *
 * The broker often runs as root and the log file may sit in a folder others
 * can write to, so the file is opened the way a root daemon must: the last
 * component is never followed when it is a symbolic link (O_NOFOLLOW), and
 * what was opened is checked with fstat before anything is written: a
 * regular file (not a FIFO that would block us, not a device), with a
 * single link (a hard link planted to another file is refused), and, when
 * we are root, owned by root (root may write anybody's file, so a file
 * another user owns is one they could have prepared).  The folders above it
 * are trusted: keep them writable by root alone.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

void log_init(struct log *l)
{
	memset(l, 0, sizeof *l);
	l->level = LOG_LVL_INFO;
	l->saved_level = -1;
	l->file = stderr;
}

/* What we accept as a log file, once it is open (or, for log_check, as
 * lstat sees it).  0, or -errno with the reason in why. */
static int log_file_ok(const char *path, const struct stat *st, char *why, size_t whylen)
{
	if (S_ISLNK(st->st_mode)) {
		snprintf(why, whylen, "log %s: is a symbolic link (not followed; give the real path)",
			 path);
		return -ELOOP;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "log %s: not a regular file", path);
		return -EINVAL;
	}
	if (st->st_nlink > 1) {
		snprintf(why, whylen, "log %s: has %lu hard links (refused: it may be another file's name)",
			 path, (unsigned long)st->st_nlink);
		return -EMLINK;
	}
	if (geteuid() == 0 && st->st_uid != 0) {
		snprintf(why, whylen, "log %s: owned by uid %u, not root (refused when running as root)",
			 path, (unsigned)st->st_uid);
		return -EPERM;
	}
	return 0;
}

int log_check(const char *dest, char *why, size_t whylen)
{
	struct stat st;

	if (strcmp(dest, "stderr") == 0 || strcmp(dest, "syslog") == 0)
		return 0;
	if (lstat(dest, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		int rc = -errno;
		snprintf(why, whylen, "log %s: %s", dest, strerror(errno));
		return rc;
	}
	return log_file_ok(dest, &st, why, whylen);
}

/* Open path for appending, safely (see the top of the file).  A FILE, or
 * NULL with l->why set and errno the reason. */
static FILE *log_open_file(struct log *l, const char *path)
{
	struct stat st;
	int rc;
	/* O_NONBLOCK: a FIFO planted there must not hang us in open() */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
				    O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			log_file_ok(path, &st, l->why, sizeof l->why);
		else if (rc == -ENXIO)
			snprintf(l->why, sizeof l->why, "log %s: not a regular file", path);
		else
			snprintf(l->why, sizeof l->why, "log %s: %s", path, strerror(-rc));
		errno = -rc;
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(l->why, sizeof l->why, "log %s: %s", path, strerror(-rc));
		goto fail;
	}
	if ((rc = log_file_ok(path, &st, l->why, sizeof l->why)) < 0)
		goto fail;
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	FILE *f = fdopen(fd, "a");
	if (!f) {
		rc = -errno;
		snprintf(l->why, sizeof l->why, "log %s: %s", path, strerror(-rc));
		goto fail;
	}
	return f;
fail:
	close(fd);
	errno = -rc;
	return NULL;
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
	if (strlen(dest) >= sizeof l->path) {
		snprintf(l->why, sizeof l->why, "log %.64s...: %s", dest, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	FILE *f = log_open_file(l, dest);
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

int log_toggle_debug(struct log *l)
{
	if (l->saved_level >= 0) {
		l->level = l->saved_level;
		l->saved_level = -1;
	} else {
		l->saved_level = l->level;
		l->level = l->level >= LOG_LVL_DEBUG ? LOG_LVL_INFO : LOG_LVL_DEBUG;
	}
	return l->level;
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
