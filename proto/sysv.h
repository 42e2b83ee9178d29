/*
 * sysv.h: what the broker's and the library's sysv:// transports share
 * (docs/protocol.md, SysV; docs/design.md, SysV queues): the message types
 * on each queue, the system's limits, the broker's mark on its own queue,
 * and a few checks of queues and processes.
 *
 * A connection uses three queues.  The broker's, at KEY, carries only
 * HELLOs (type SYSV_MT_HELLO) and the broker's mark (SYSV_MT_MARK, never
 * read by the broker's receiver: it says whose queue it is after a crash);
 * only the broker reads it, so its msg_lrpid is the broker's pid from the
 * start (it reads one SYSV_MT_SELF message of its own at once), and a
 * client knows a crashed broker's queue when it sees one.
 * Each client creates two private queues, owner-only: its send queue
 * (client to broker, SYSV_MT_DATA) and its reply queue (broker to client:
 * SYSV_MT_DATA, then SYSV_MT_EOF when the broker closes; SYSV_MT_WAKE is
 * the client's own wake-up of its helper thread).  SYSV_MT_DATA messages
 * carry a byte stream of varint-delimited frames, as a socket does: whole
 * frames, several at once, or a piece of one larger than a message.
 */
#ifndef IPCBUS_SYSV_H
#define IPCBUS_SYSV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* On the broker's queue. */
#define SYSV_MT_HELLO 1L
#define SYSV_MT_MARK 2L
#define SYSV_MT_SELF 3L /* the broker's own, once: its pid in msg_lrpid */
/* On a client's queues. */
#define SYSV_MT_DATA 1L
#define SYSV_MT_EOF 2L
#define SYSV_MT_WAKE 3L

/* The most a HELLO may be (it names no more than a client name). */
#define SYSV_HELLO_MAX 4096

/* The system's limits, from /proc/sys/kernel (a value that cannot be read
 * is Linux's default: 8192, 16384, 32000). */
struct sysv_limits {
	long msgmax; /* the largest message (mtext bytes) */
	long msgmnb; /* a new queue's msg_qbytes */
	long msgmni; /* queue ids on the system */
	int guessed; /* a file could not be read: Linux's default stands in */
};

void sysv_limits_read(struct sysv_limits *l);

/* A message as msgsnd/msgrcv take it: mtype, then mtext. */
struct sysv_msg {
	long mtype;
	uint8_t mtext[];
};

/* What /proc/sysvipc/msg, which anyone may read, says of queue msqid: for
 * a queue we may write to but not IPC_STAT. */
struct sysv_msq {
	uid_t uid, cuid;
	pid_t lspid, lrpid; /* the last to send, to receive */
};

/* 0, -ENOENT, or -errno. */
int sysv_proc_msq(int msqid, struct sysv_msq *out);

/* The start time of process pid (/proc/PID/stat, field 22, clock ticks
 * since boot), or 0 when it cannot be read. */
unsigned long long sysv_pid_start(pid_t pid);

/* 1 when pid runs (kill(pid, 0) succeeds or says EPERM, and it is not a
 * zombie) and, when start is not 0, has that start time (not a reused
 * pid); else 0. */
int sysv_pid_alive(pid_t pid, unsigned long long start);

/* The broker's mark: "ipcbusd PID START".  Returns its length (no NUL
 * written beyond it counts), or -1 when it did not fit. */
int sysv_mark_format(char *out, size_t n, pid_t pid, unsigned long long start);

/* Parse a mark: 0 and pid, start; -1 when p is no mark. */
int sysv_mark_parse(const uint8_t *p, size_t n, pid_t *pid, unsigned long long *start);

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
