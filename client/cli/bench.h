/*
 * bench.h: what the files of `ipcbus bench` share: bench.c (the options,
 * the shared memory, the child processes, output helpers), bench_pubsub.c
 * (pub/sub mode) and bench_req.c (--req).
 */
#ifndef IPCBUS_BENCH_H
#define IPCBUS_BENCH_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cli.h"

#define BENCH_MAX_PROCS 256
#define BENCH_HDR 12                 /* u32 publisher index, u64 sequence */

struct bench_opts {
	const char *url;
	char conn_url[1024];  /* what the children connect to */
	char shown_url[1024]; /* the same, without a token, for the output */
	char channel[128];
	long count, size, pubs, subs, inflight, window;
	int req, json, progress;
};

/* Shared between the processes (MAP_SHARED); each slot is written by one
 * process only, and on its own cache lines. */
struct bench_head {
	atomic_int go;
	atomic_int abort;
	atomic_int stop;
	atomic_int ready;
	atomic_int pubs_done;
};

struct bench_pub {
	alignas(64) atomic_uint_fast64_t sent;
	int64_t t_first, t_last; /* ns: first publish, last publish */
};

struct bench_sub {
	alignas(64) atomic_uint_fast64_t received;
	uint64_t lost, ooo, bad;
	int64_t t_last;          /* ns: the last message received */
};

struct bench_shm {
	struct bench_head *head;
	struct bench_pub *pub;
	struct bench_sub *sub;
	atomic_uint_fast64_t *next; /* [sub * stride + pub]: next sequence expected */
	size_t stride;
	void *base;
	size_t size;
};

/* bench.c */
/* CLOCK_MONOTONIC in ns: the same clock in every process. */
int64_t bench_now(void);
/* Sleep ns nanoseconds (less than a second). */
void bench_nap(long ns);
/* A duration of ns nanoseconds, three digits or so, into out. */
void bench_fmt_dur(char *out, size_t n, double ns);
/* s as a JSON string, quotes included. */
void bench_json_str(FILE *f, const char *s);
/* Clear the progress line on stderr, when there is one. */
void bench_progress_clear(const struct bench_opts *o);
/* Map the counters of pubs publishers and subs subscribers, all 0.  0 or
 * -errno. */
int bench_shm_map(struct bench_shm *m, long pubs, long subs);
void bench_shm_unmap(struct bench_shm *m);
/* Fork a child that exits with fn(o, m, i).  The pid, or -1 (errno). */
pid_t bench_fork(int (*fn)(const struct bench_opts *, struct bench_shm *, long),
		 const struct bench_opts *o, struct bench_shm *m, long i);
/* Reap the children in pids[0..n) that exited (block: wait for each); one
 * that failed sets *failed and aborts the run.  How many still run. */
int bench_reap(pid_t *pids, int n, struct bench_shm *m, int *failed, int block);
/* Abort the run and reap every child; those still there after 5 s are
 * killed. */
void bench_stop_all(pid_t *pids, int n, struct bench_shm *m, int *failed);

/* bench_pubsub.c: the pub/sub run and its report.  A CLI_* exit code. */
int bench_pubsub(const struct bench_opts *o);

/* bench_req.c: the --req run and its report.  A CLI_* exit code. */
int bench_req(const struct bench_opts *o);

#endif
