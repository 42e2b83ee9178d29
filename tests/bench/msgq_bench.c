/*
 * msgq_bench.c: SysV message queues without a broker, the ceilings
 * `ipcbus bench -u sysv://KEY` is compared with, and the measurement behind
 * the per-client send queues of sysv:// (docs/design.md, SysV queues).
 *
 *   msgq_bench stream [-n COUNT] [-s SIZE] [-c A,B] [--json]
 *       one process msgsnd()s COUNT messages of SIZE bytes to another, which
 *       msgrcv()s them: one message per call, as a legacy program does.
 *       Prints msgs/s (from the first send to the last receive).
 *   msgq_bench pingpong [-n COUNT] [-s SIZE] [-c A,B] [--json]
 *       two processes bounce one message through two queues COUNT times;
 *       prints round-trip p50/p99/p99.9 in microseconds.
 *   msgq_bench share [-t MS] [-w NS_PER_BYTE] [-f FLOODS] [-c A,B] [--json]
 *       a polite writer (one 64-byte message a millisecond) beside FLOODS
 *       flooding ones (8 KiB messages, as fast as msgsnd goes) towards a
 *       model of the broker (below): first over one shared queue, then each
 *       writer over a queue of its own.  Prints the polite writer's latency
 *       (from before its msgsnd to the end of the loop's work on it) and
 *       the flood's rate.
 *   -c A,B pins the parent (the reader) to CPU A and the child(ren) to B.
 *
 * stream and pingpong are msgq_raw.c's, shared with rawq_bench.  The
 * queues are private (IPC_PRIVATE) and removed at the end, also when a
 * child fails.  A benchmark, not a test: `make check` does not run it.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "msgq_raw.h"

#define MQ_MAX 8192

struct mq_msg {
	long mtype;
	char mtext[MQ_MAX];
};

static int cpu_parent = -1, cpu_child = -1;
static int queues[4], nqueues;

static int mq_new(void)
{
	int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (q < 0) {
		perror("msgget");
		exit(1);
	}
	queues[nqueues++] = q;
	return q;
}

static void mq_cleanup(void)
{
	for (int i = 0; i < nqueues; i++)
		msgctl(queues[i], IPC_RMID, NULL);
	nqueues = 0;
}

static pid_t mq_fork(void)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		mq_cleanup();
		exit(1);
	}
	if (pid == 0) {
		nqueues = 0; /* the parent removes them */
		msgq_raw_pin(cpu_child);
	}
	return pid;
}

static int mq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double mq_pct(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1));
	return (double)v[i] / 1000.0;
}

static int mq_stream(long count, size_t size, int json)
{
	uint64_t ns;
	/* the reader is the parent's CPU, as in share */
	if (msgq_raw_stream((uint64_t)count, size, cpu_child, cpu_parent, &ns) < 0)
		return 1;
	double rate = (double)count / ((double)ns / 1e9);
	if (json)
		printf("{\"test\":\"msgq_stream\",\"count\":%ld,\"size\":%zu,\"msgs_per_s\":%.0f,\"mb_per_s\":%.2f}\n",
		       count, size, rate, rate * (double)size / 1e6);
	else
		printf("msgq stream: %ld messages of %zu bytes, one a call: %.0f msgs/s, %.2f MB/s\n",
		       count, size, rate, rate * (double)size / 1e6);
	return 0;
}

static int mq_pingpong(long count, size_t size, int json)
{
	uint64_t *rtt = malloc((size_t)count * sizeof *rtt);
	if (!rtt)
		return 1;
	uint64_t n = msgq_raw_pingpong((uint64_t)count, size, cpu_parent, cpu_child, rtt);
	if (n < 1) {
		free(rtt);
		return 1;
	}
	count = (long)n;
	qsort(rtt, (size_t)count, sizeof *rtt, mq_cmp);
	double p50 = mq_pct(rtt, (size_t)count, 0.5), p99 = mq_pct(rtt, (size_t)count, 0.99),
	       p999 = mq_pct(rtt, (size_t)count, 0.999);
	if (json)
		printf("{\"test\":\"msgq_pingpong\",\"count\":%ld,\"size\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f}\n",
		       count, size, p50, p99, p999);
	else
		printf("msgq pingpong: %ld round trips of %zu bytes: p50 %.1f us, p99 %.1f us, p99.9 %.1f us\n",
		       count, size, p50, p99, p999);
	free(rtt);
	return 0;
}

/* ---- share ----
 *
 * A model of the broker: a reader thread per queue blocks in msgrcv and
 * hands what it read to the loop through a bounded buffer (32 KiB, as
 * tr_sysv.c's reader holds; past it the reader waits, so the queue fills
 * and its writers wait); the loop takes each buffer in turn and spends
 * `work` ns per byte on it (parsing and routing frames: about what the
 * broker spends on 64-byte messages).  With one shared queue the flood and
 * the polite writer share one reader and one buffer; with a queue each,
 * the flood fills only its own. */

struct mq_stamp {
	int who; /* 0 polite, 1 flood */
	uint64_t t;
};

struct mq_buf {
	int q;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t data[4 * MQ_MAX];
	size_t len;
	int end;
	/* the polite writer's messages in data: where each ends, its stamp */
	size_t mark_end[64];
	uint64_t mark_t[64];
	size_t nmarks;
};

static void *mq_reader_thread(void *arg)
{
	struct mq_buf *b = arg;
	static __thread struct mq_msg m;
	for (;;) {
		ssize_t n = msgrcv(b->q, &m, MQ_MAX, 0, 0);
		if (n < 0 && errno == EINTR)
			continue;
		pthread_mutex_lock(&b->mu);
		if (n < 0) {
			b->end = 1; /* removed: the end */
			pthread_cond_broadcast(&b->cv);
			pthread_mutex_unlock(&b->mu);
			break;
		}
		while (b->len + (size_t)n > sizeof b->data && !b->end)
			pthread_cond_wait(&b->cv, &b->mu);
		if (b->end) {
			pthread_mutex_unlock(&b->mu);
			break;
		}
		struct mq_stamp st;
		memcpy(&st, m.mtext, sizeof st);
		memcpy(b->data + b->len, m.mtext, (size_t)n);
		b->len += (size_t)n;
		if (st.who == 0 && b->nmarks < 64) {
			b->mark_end[b->nmarks] = b->len;
			b->mark_t[b->nmarks++] = st.t;
		}
		pthread_cond_broadcast(&b->cv);
		pthread_mutex_unlock(&b->mu);
	}
	return NULL;
}

static void mq_spin(uint64_t ns)
{
	uint64_t until = msgq_raw_now_ns() + ns;
	while (msgq_raw_now_ns() < until)
		;
}

/* The writers, until `until`: the polite one every ms, the flood flat out. */
static pid_t mq_writer(int q, int who, uint64_t until)
{
	pid_t pid = mq_fork();
	if (pid)
		return pid;
	static struct mq_msg m = {.mtype = 1};
	struct mq_stamp st = {.who = who};
	size_t size = who ? MQ_MAX : 64;
	while (msgq_raw_now_ns() < until) {
		st.t = msgq_raw_now_ns();
		memcpy(m.mtext, &st, sizeof st);
		/* blocking, as the library's helper thread waits for room */
		if (msgsnd(q, &m, size, 0) < 0 && errno != EINTR)
			_exit(1);
		if (!who) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
	}
	_exit(0);
}

#define MQ_FLOODS_MAX 8

static int mq_share(int ms, double work, int floods, int json)
{
	for (int own = 0; own < 2; own++) {
		uint64_t t0 = msgq_raw_now_ns(), until = t0 + (uint64_t)ms * 1000000ull;
		static struct mq_buf bufs[1 + MQ_FLOODS_MAX];
		int nb = own ? 1 + floods : 1;
		for (int i = 0; i < nb; i++) {
			memset(&bufs[i], 0, sizeof bufs[i]);
			pthread_mutex_init(&bufs[i].mu, NULL);
			pthread_cond_init(&bufs[i].cv, NULL);
			bufs[i].q = mq_new();
		}
		pid_t pp = mq_writer(bufs[0].q, 0, until), pf[MQ_FLOODS_MAX];
		for (int i = 0; i < floods; i++)
			pf[i] = mq_writer(bufs[own ? 1 + i : 0].q, 1, until);
		msgq_raw_pin(cpu_parent);
		pthread_t th[1 + MQ_FLOODS_MAX];
		for (int i = 0; i < nb; i++)
			pthread_create(&th[i], NULL, mq_reader_thread, &bufs[i]);
		size_t cap = 100000, nlat = 0;
		uint64_t *lat = malloc(cap * sizeof *lat), flood = 0;
		if (!lat)
			return 1;
		/* the loop: each buffer in turn, all it holds, the work done */
		while (msgq_raw_now_ns() < until) {
			int idle = 1;
			for (int i = 0; i < nb; i++) {
				struct mq_buf *b = &bufs[i];
				pthread_mutex_lock(&b->mu);
				size_t n = b->len, nm = b->nmarks;
				size_t ends[64];
				uint64_t ts[64];
				memcpy(ends, b->mark_end, nm * sizeof *ends);
				memcpy(ts, b->mark_t, nm * sizeof *ts);
				b->len = 0;
				b->nmarks = 0;
				pthread_cond_broadcast(&b->cv);
				pthread_mutex_unlock(&b->mu);
				if (!n)
					continue;
				idle = 0;
				/* the polite messages are done once the bytes before
				 * them and their own are */
				size_t done = 0;
				for (size_t k = 0; k < nm; k++) {
					mq_spin((uint64_t)(work * (double)(ends[k] - done)));
					done = ends[k];
					if (nlat < cap)
						lat[nlat++] = msgq_raw_now_ns() - ts[k];
				}
				mq_spin((uint64_t)(work * (double)(n - done)));
				flood += n - done - nm * 64;
			}
			if (idle) {
				struct timespec ts = {0, 10000};
				nanosleep(&ts, NULL);
			}
		}
		double secs = (double)(msgq_raw_now_ns() - t0) / 1e9;
		mq_cleanup(); /* the writers end (EIDRM), and the readers */
		for (int i = 0; i < nb; i++) {
			pthread_mutex_lock(&bufs[i].mu);
			bufs[i].end = 1;
			pthread_cond_broadcast(&bufs[i].cv);
			pthread_mutex_unlock(&bufs[i].mu);
		}
		waitpid(pp, NULL, 0);
		for (int i = 0; i < floods; i++)
			waitpid(pf[i], NULL, 0);
		for (int i = 0; i < nb; i++)
			pthread_join(th[i], NULL);
		qsort(lat, nlat, sizeof *lat, mq_cmp);
		double p50 = nlat ? mq_pct(lat, nlat, 0.5) : 0, p99 = nlat ? mq_pct(lat, nlat, 0.99) : 0,
		       mx = nlat ? (double)lat[nlat - 1] / 1000.0 : 0;
		const char *how = own ? "a queue per writer" : "one shared queue";
		double mbs = (double)flood / secs / 1e6;
		if (json)
			printf("{\"test\":\"msgq_share\",\"queues\":\"%s\",\"floods\":%d,\"work_ns_per_byte\":%.2f,\"polite_msgs\":%zu,\"polite_p50_us\":%.1f,\"polite_p99_us\":%.1f,\"polite_max_us\":%.1f,\"flood_mb_per_s\":%.1f}\n",
			       how, floods, work, nlat, p50, p99, mx, mbs);
		else
			printf("msgq share, %s, %d flood(s), %.2f ns/byte of work: polite writer %zu messages in %.1f s (of %d sent a ms), latency p50 %.1f us, p99 %.1f us, max %.1f us; flood %.1f MB/s\n",
			       how, floods, work, nlat, secs, ms, p50, p99, mx, mbs);
		free(lat);
	}
	return 0;
}

static void mq_usage(FILE *f)
{
	fprintf(f, "usage: msgq_bench stream|pingpong [-n COUNT] [-s SIZE] [-c A,B] [--json]\n"
		   "       msgq_bench share [-t MS] [-w NS_PER_BYTE] [-f FLOODS] [-c A,B] [--json]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	long count = 0;
	size_t size = 64;
	int json = 0, ms = 2000, opt;
	double work = 5.0;
	int floods = 1;

	if (argc < 2) {
		mq_usage(stderr);
		return 2;
	}
	const char *mode = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "n:s:c:t:w:f:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': count = atol(optarg); break;
		case 's': size = (size_t)atol(optarg); break;
		case 't': ms = atoi(optarg); break;
		case 'w': work = atof(optarg); break;
		case 'f': floods = atoi(optarg); break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &cpu_parent, &cpu_child) != 2) {
				mq_usage(stderr);
				return 2;
			}
			break;
		case 'j': json = 1; break;
		case 'h': mq_usage(stdout); return 0;
		default: mq_usage(stderr); return 2;
		}
	}
	if (size > MQ_MAX || ms <= 0 || floods < 1 || floods > MQ_FLOODS_MAX) {
		fprintf(stderr, "msgq_bench: -s at most %d, -t above 0, -f 1 to %d\n", MQ_MAX,
			MQ_FLOODS_MAX);
		return 2;
	}
	int rc;
	if (strcmp(mode, "stream") == 0)
		rc = mq_stream(count ? count : 1000000, size, json);
	else if (strcmp(mode, "pingpong") == 0)
		rc = mq_pingpong(count ? count : 20000, size, json);
	else if (strcmp(mode, "share") == 0)
		rc = mq_share(ms, work, floods, json);
	else {
		mq_usage(stderr);
		return 2;
	}
	mq_cleanup();
	return rc;
}
