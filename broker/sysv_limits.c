/*
 * sysv_limits.c: SysV message queue limits (see sysv_limits.h).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/msg.h>

#include "sysv_limits.h"

/* One number from /proc/sys/kernel/NAME: 0, or -1 (left as it was). */
static int sysv_limits_one(const char *name, long *out)
{
	char path[64];
	long v;

	snprintf(path, sizeof path, "/proc/sys/kernel/%s", name);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int ok = fscanf(f, "%ld", &v) == 1 && v > 0;
	fclose(f);
	if (!ok)
		return -1;
	*out = v;
	return 0;
}

void sysv_limits_read(struct sysv_limits *l)
{
	l->msgmax = 8192;
	l->msgmnb = 16384;
	l->msgmni = 32000;
	l->guessed = 0;
	if (sysv_limits_one("msgmax", &l->msgmax) < 0)
		l->guessed = 1;
	if (sysv_limits_one("msgmnb", &l->msgmnb) < 0)
		l->guessed = 1;
	if (sysv_limits_one("msgmni", &l->msgmni) < 0)
		l->guessed = 1;
}

int sysv_qbytes(int msqid, unsigned long *qbytes)
{
	struct msqid_ds ds;
	if (msgctl(msqid, IPC_STAT, &ds) < 0)
		return -errno;
	*qbytes = (unsigned long)ds.msg_qbytes;
	return 0;
}

int sysv_raise_qbytes(int msqid, unsigned long want, long msgmnb, unsigned long *got,
		      int *refused)
{
	struct msqid_ds ds;

	*refused = 0;
	if (msgctl(msqid, IPC_STAT, &ds) < 0)
		return -errno;
	*got = (unsigned long)ds.msg_qbytes;
	if (ds.msg_qbytes >= want)
		return 0;
	ds.msg_qbytes = want;
	if (msgctl(msqid, IPC_SET, &ds) == 0) {
		*got = want;
		return 0;
	}
	if (errno != EPERM)
		return -errno;
	*refused = 1;
	/* without CAP_SYS_RESOURCE: as far as msgmnb, which anyone may */
	if (msgmnb > 0 && *got < (unsigned long)msgmnb) {
		ds.msg_qbytes = (unsigned long)msgmnb;
		if (msgctl(msqid, IPC_SET, &ds) == 0)
			*got = (unsigned long)msgmnb;
	}
	return 0;
}
