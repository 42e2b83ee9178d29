/*
 * msgq_raw.c: raw SysV message queue stream and ping-pong between two
 * processes (see msgq_raw.h), shared by msgq_bench and rawq_bench.
 */
#include <config.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "msgq_raw.h"

struct msgq_raw_msg {
	long mtype;
	char mtext[MSGQ_RAW_MAX];
};

/* The queues of the measurement under way (for msgq_raw_cleanup). */
static volatile int msgq_raw_ids[2] = {-1, -1};

uint64_t msgq_raw_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void msgq_raw_pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

void msgq_raw_cleanup(void)
{
	for (int i = 0; i < 2; i++)
		if (msgq_raw_ids[i] >= 0) {
			msgctl(msgq_raw_ids[i], IPC_RMID, NULL);
			msgq_raw_ids[i] = -1;
		}
}

/* The n-th private queue of this measurement, or -1. */
static int msgq_raw_queue(int n)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (id < 0)
		perror("msgget");
	msgq_raw_ids[n] = id;
	return id;
}

static int msgq_raw_snd(int id, struct msgq_raw_msg *m, size_t n)
{
	while (msgsnd(id, m, n, 0) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

static ssize_t msgq_raw_rcv(int id, struct msgq_raw_msg *m)
{
	ssize_t n;
	while ((n = msgrcv(id, m, sizeof m->mtext, 0, 0)) < 0)
		if (errno != EINTR)
			return -1;
	return n;
}

/* A child on cpu, or -1 after perror. */
static pid_t msgq_raw_fork(int cpu)
{
	fflush(NULL); /* nothing buffered twice */
	pid_t pid = fork();
	if (pid < 0)
		perror("fork");
	if (pid == 0)
		msgq_raw_pin(cpu);
	return pid;
}

/* Reap pid (killed first when the measurement failed). */
static void msgq_raw_reap(pid_t pid, int failed)
{
	if (failed)
		kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int msgq_raw_stream(uint64_t count, size_t size, int cpu_send, int cpu_recv, uint64_t *ns)
{
	static struct msgq_raw_msg m = {.mtype = 1};
	int rc = -1;
	volatile uint64_t *t0 = mmap(NULL, sizeof *t0, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t0 == MAP_FAILED) {
		perror("mmap");
		return -1;
	}
	int q = msgq_raw_queue(0);
	if (q < 0)
		goto out;
	memset(m.mtext, 'x', size);
	pid_t pid = msgq_raw_fork(cpu_send);
	if (pid < 0)
		goto out;
	if (pid == 0) {
		*t0 = msgq_raw_now_ns();
		for (uint64_t i = 0; i < count; i++)
			if (msgq_raw_snd(q, &m, size) < 0)
				_exit(1);
		_exit(0);
	}
	msgq_raw_pin(cpu_recv);
	uint64_t i;
	for (i = 0; i < count; i++)
		if (msgq_raw_rcv(q, &m) < 0) {
			perror("msgrcv");
			break;
		}
	uint64_t end = msgq_raw_now_ns();
	msgq_raw_reap(pid, i < count);
	if (i == count) {
		*ns = end - *t0;
		rc = 0;
	}
out:
	msgq_raw_cleanup();
	munmap((void *)t0, sizeof *t0);
	return rc;
}

uint64_t msgq_raw_pingpong(uint64_t count, size_t size, int cpu_ping, int cpu_pong,
			   uint64_t *rtt)
{
	static struct msgq_raw_msg m = {.mtype = 1};
	uint64_t i = 0;
	int a = msgq_raw_queue(0), b = a < 0 ? -1 : msgq_raw_queue(1);
	if (b < 0)
		goto out;
	memset(m.mtext, 'p', size);
	pid_t pid = msgq_raw_fork(cpu_pong);
	if (pid < 0)
		goto out;
	if (pid == 0) {
		for (uint64_t k = 0; k < count; k++) {
			ssize_t n = msgq_raw_rcv(a, &m);
			if (n < 0 || msgq_raw_snd(b, &m, (size_t)n) < 0)
				_exit(1);
		}
		_exit(0);
	}
	msgq_raw_pin(cpu_ping);
	for (; i < count; i++) {
		uint64_t t = msgq_raw_now_ns();
		if (msgq_raw_snd(a, &m, size) < 0 || msgq_raw_rcv(b, &m) < 0) {
			perror("pingpong");
			break;
		}
		rtt[i] = msgq_raw_now_ns() - t;
	}
	msgq_raw_reap(pid, i < count);
out:
	msgq_raw_cleanup();
	return i;
}
