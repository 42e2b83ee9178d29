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
