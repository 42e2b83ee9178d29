/*
 * log.h: the broker's log, to stderr, syslog or a file.
 */
#ifndef IPCBUS_LOG_H
#define IPCBUS_LOG_H

#include <stdio.h>

enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 };

struct log {
	int level;      /* messages above this level are not written */
	int to_syslog;
	FILE *file;     /* stderr or an opened file (when !to_syslog) */
	char path[256]; /* the file's path, for reopening */
	int tee_stderr; /* errors and warnings also on stderr (before ready) */
};

/* Log to stderr at INFO. */
void log_init(struct log *l);

/* "stderr", "syslog" or a path.  0 or -errno (the log is unchanged). */
int log_open(struct log *l, const char *dest);

void log_close(struct log *l);

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
