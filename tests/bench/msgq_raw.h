/*
 * msgq_raw.h: raw SysV message queues between two processes, no broker:
 * the ceilings msgq_bench and rawq_bench compare sysv:// and the raw
 * bridges with.  One message a msgsnd()/msgrcv() call, blocking, as a
 * legacy program does.
 *
 * The queues are private (IPC_PRIVATE), made for one measurement and
 * removed at its end; msgq_raw_cleanup() removes those a measurement still
 * holds, for a program's INT/TERM handler.  The child process is forked
 * here and reaped before a call returns.  A benchmark helper: it prints
 * nothing but perror() lines on a failure.
 */
#ifndef IPCBUS_MSGQ_RAW_H
#define IPCBUS_MSGQ_RAW_H

#include <stddef.h>
#include <stdint.h>

/* The largest message a measurement sends. */
#define MSGQ_RAW_MAX 65536

/* Monotonic nanoseconds. */
uint64_t msgq_raw_now_ns(void);

/* Pin the calling process to cpu (-1: leave it). */
void msgq_raw_pin(int cpu);

/* A stream: a child msgsnd()s count messages of size bytes (on CPU
 * cpu_send), this process msgrcv()s them (on cpu_recv).  0 with *ns the
 * time from the first send to the last receive, or -1. */
int msgq_raw_stream(uint64_t count, size_t size, int cpu_send, int cpu_recv, uint64_t *ns);

/* A ping-pong: this process (on cpu_ping) sends one message of size bytes
 * through one queue, a child (on cpu_pong) sends it back through another,
 * count times; rtt[i] is round trip i in nanoseconds.  The number of round
 * trips made (count, fewer on a failure). */
uint64_t msgq_raw_pingpong(uint64_t count, size_t size, int cpu_ping, int cpu_pong,
			   uint64_t *rtt);

/* Remove the queues a measurement holds (async-signal-safe). */
void msgq_raw_cleanup(void);

#endif
