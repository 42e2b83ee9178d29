/*
 * log.h: the broker's log, to stderr, syslog or a file.
 *
 * A log file is opened without following a symbolic link and checked once
 * open (log_open), so a root broker cannot be steered into appending to a
 * file a user points it at: see ipcbus.conf(5), "log".
 */
#ifndef IPCBUS_LOG_H
#define IPCBUS_LOG_H

#include <stddef.h>
#include <stdio.h>

enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 };

struct log {
	int level;      /* messages above this level are not written */
	int saved_level; /* the level before log_toggle_debug(), or -1 */
	int to_syslog;
	FILE *file;     /* stderr or an opened file (when !to_syslog) */
	char path[256]; /* the file's path, for reopening */
	int tee_stderr; /* errors and warnings also on stderr (before ready) */
	char why[320];  /* after log_open() failed: what was refused and why */
};

/* Log to stderr at INFO. */
void log_init(struct log *l);

/* "stderr", "syslog" or a path.  A path is opened for appending (created
 * 0600 when missing) with O_NOFOLLOW, and refused unless what was opened is
 * a regular file with one link, owned by us when we run as root.  0, or
 * -errno with the reason in l->why (the log is unchanged: it still goes
 * where it went). */
int log_open(struct log *l, const char *dest);

/* What log_open() would say of dest without opening or creating anything
 * (for ipcbusd -t): 0, or -errno with the reason in why.  A missing file
 * is good (it will be created). */
int log_check(const char *dest, char *why, size_t whylen);

void log_close(struct log *l);

/* SIGUSR2: switch debug detail on (or, when already on, down to info);
 * the next call returns to the level before.  Returns the new level. */
int log_toggle_debug(struct log *l);

void log_msg(struct log *l, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(l, ...) log_msg((l), LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(l, ...) log_msg((l), LOG_LVL_WARN, __VA_ARGS__)
#define log_info(l, ...) log_msg((l), LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(l, ...) \
	do { \
		if ((l)->level >= LOG_LVL_DEBUG) \
			log_msg((l), LOG_LVL_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
