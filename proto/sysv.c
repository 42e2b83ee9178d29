/*
 * sysv.c: the system's SysV limits, the broker's mark and the checks of
 * queues and processes that both sysv:// transports need (see sysv.h).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <unistd.h>

#include "sysv.h"

/* A small file read whole, NUL-terminated; its length or -errno. */
static ssize_t sysv_read_file(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t k = 0;

	if (fd < 0)
		return -errno;
	while (k + 1 < n) {
		ssize_t r = read(fd, buf + k, n - 1 - k);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		k += (size_t)r;
	}
	close(fd);
	buf[k] = 0;
	return (ssize_t)k;
}

static long sysv_read_long(const char *path, long dflt)
{
	char b[64];
	char *end;

	if (sysv_read_file(path, b, sizeof b) <= 0)
		return dflt;
	errno = 0;
	long v = strtol(b, &end, 10);
	if (errno || end == b || v <= 0)
		return dflt;
	return v;
}

void sysv_limits_read(struct sysv_limits *l)
{
	l->msgmax = sysv_read_long("/proc/sys/kernel/msgmax", -1);
	l->msgmnb = sysv_read_long("/proc/sys/kernel/msgmnb", -1);
	l->msgmni = sysv_read_long("/proc/sys/kernel/msgmni", -1);
	l->guessed = l->msgmax < 0 || l->msgmnb < 0 || l->msgmni < 0;
	if (l->msgmax < 0)
		l->msgmax = 8192;
	if (l->msgmnb < 0)
		l->msgmnb = 16384;
	if (l->msgmni < 0)
		l->msgmni = 32000;
}

int sysv_proc_msq(int msqid, struct sysv_msq *out)
{
	FILE *f = fopen("/proc/sysvipc/msg", "re");
	char line[512];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		long long key;
		int id;
		unsigned perms;
		unsigned long cbytes, qnum;
		int lspid, lrpid;
		unsigned u, g, cu, cg;
		if (sscanf(line, "%lld %d %o %lu %lu %d %d %u %u %u %u", &key, &id, &perms, &cbytes,
			   &qnum, &lspid, &lrpid, &u, &g, &cu, &cg) != 11 ||
		    id != msqid)
			continue;
		out->uid = (uid_t)u;
		out->cuid = (uid_t)cu;
		out->lspid = (pid_t)lspid;
		out->lrpid = (pid_t)lrpid;
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

/* State (field 3) and start time (field 22) of pid from /proc/PID/stat:
 * 0, or -1 when it cannot be read. */
static int sysv_pid_stat(pid_t pid, char *state, unsigned long long *start)
{
	char path[64], b[1024];

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (sysv_read_file(path, b, sizeof b) <= 0)
		return -1;
	/* the name (field 2) may hold spaces and ')': count from the last ')' */
	char *p = strrchr(b, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -1;
	*state = p[2];
	p++;
	/* fields 3 .. 21, then 22: starttime */
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -1;
	}
	*start = strtoull(p + 1, NULL, 10);
	return 0;
}

unsigned long long sysv_pid_start(pid_t pid)
{
	char state;
	unsigned long long start;
	return sysv_pid_stat(pid, &state, &start) == 0 ? start : 0;
}

int sysv_pid_alive(pid_t pid, unsigned long long start)
{
	char state;
	unsigned long long now;

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	/* unreadable (another uid's /proc hidden): the pid's word */
	if (sysv_pid_stat(pid, &state, &now) < 0)
		return 1;
	if (state == 'Z' || state == 'X')
		return 0; /* dead, not reaped yet */
	return !start || now == start; /* else a reused pid */
}

int sysv_mark_format(char *out, size_t n, pid_t pid, unsigned long long start)
{
	int k = snprintf(out, n, "ipcbusd %d %llu", (int)pid, start);
	return k < 0 || (size_t)k >= n ? -1 : k;
}

int sysv_mark_parse(const uint8_t *p, size_t n, pid_t *pid, unsigned long long *start)
{
	char b[64];
	int id;
	unsigned long long st;
	char tail;

	if (n >= sizeof b || n < 8 || memcmp(p, "ipcbusd ", 8) != 0)
		return -1;
	memcpy(b, p, n);
	b[n] = 0;
	if (sscanf(b, "ipcbusd %d %llu%c", &id, &st, &tail) != 2 || id <= 0)
		return -1;
	*pid = (pid_t)id;
	*start = st;
	return 0;
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
