/*
 * sysv_limits.h: the system's SysV message queue limits and a queue's
 * msg_qbytes, as the raw bridges (rawq.c) need them.
 *
 * msgmax (the largest message), msgmnb (the default msg_qbytes of a new
 * queue, and the most a process without CAP_SYS_RESOURCE may set) and
 * msgmni (how many queues the system holds) are read from
 * /proc/sys/kernel (proto/sysv.c).  Nothing here knows the broker.
 */
#ifndef IPCBUS_SYSV_LIMITS_H
#define IPCBUS_SYSV_LIMITS_H

#include <stddef.h>

/* The limits themselves: struct sysv_limits and sysv_limits_read() in
 * proto/sysv.h, shared with the sysv:// transport. */
#include "sysv.h"

/* msg_qbytes of queue msqid: 0 and *qbytes, or -errno (IPC_STAT). */
int sysv_qbytes(int msqid, unsigned long *qbytes);

/* Raise msg_qbytes of msqid to want when it holds less (never lowered).
 * Above msgmnb this needs CAP_SYS_RESOURCE: when the kernel says EPERM,
 * the queue is raised to msgmnb instead if it holds less than that.
 * *got is what the queue holds afterwards; *refused is set when want was
 * refused (EPERM).  0, or -errno when IPC_STAT failed (or IPC_SET failed
 * for another reason than EPERM). */
int sysv_raise_qbytes(int msqid, unsigned long want, long msgmnb, unsigned long *got,
		      int *refused);

#endif
