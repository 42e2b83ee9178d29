/*
 * router_bench.c: how fast the router answers "who gets this message".
 *
 *   router_bench [-n MATCHES] [-s SUBS] [--json]
 *
 * Indexes SUBS subscriptions (default 2000): one in ten "svc.*.I", the
 * others "svc.nodeI.>", one in four of them in queue group "q"; then asks
 * router_match() for MATCHES channels "svc.nodeK.x" (default 1,000,000),
 * K going round the subscriptions, and prints matches per second.  Each
 * channel matches exactly the one "svc.nodeK.>" subscription when K is not
 * a multiple of ten, so the total of the results is known: a wrong total
 * exits 1 (a broken router is not timed).
 *
 * A benchmark, not a test: `make check` builds it but does not run it.
 * It was test_router's "speed" case, whose only assertion was that
 * something matched.
 */
#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "router.h"

static struct sub *bench_sub_new(uint64_t sid, const char *pat, const char *queue)
{
	struct sub *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->sid = sid;
	s->pattern = strdup(pat);
	s->pattern_len = strlen(pat);
	s->queue = queue ? strdup(queue) : NULL;
	if (!s->pattern || (queue && !s->queue)) {
		free(s->pattern);
		free(s->queue);
		free(s);
		return NULL;
	}
	return s;
}

static void bench_sub_free(struct sub *s)
{
	free(s->pattern);
	free(s->queue);
	free(s);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	long matches = 1000000, nsubs = 2000;
	int json = 0, c, rc = 1;
	char name[64];

	while ((c = getopt_long(argc, argv, "n:s:", lo, NULL)) != -1) {
		switch (c) {
		case 'n': matches = atol(optarg); break;
		case 's': nsubs = atol(optarg); break;
		case 'j': json = 1; break;
		default:
			fprintf(stderr, "usage: router_bench [-n MATCHES] [-s SUBS] [--json]\n");
			return 2;
		}
	}
	if (matches < 1 || nsubs < 1 || nsubs > 10000000) {
		fprintf(stderr, "usage: router_bench [-n MATCHES] [-s SUBS] [--json]\n");
		return 2;
	}

	struct router *r = router_new();
	struct sub **subs = calloc((size_t)nsubs, sizeof *subs);
	long added = 0;
	if (!r || !subs) {
		fprintf(stderr, "router_bench: out of memory\n");
		goto out;
	}
	for (; added < nsubs; added++) {
		long i = added;
		snprintf(name, sizeof name, i % 10 == 0 ? "svc.*.%ld" : "svc.node%ld.>", i);
		subs[i] = bench_sub_new((uint64_t)i, name, i % 4 == 0 ? "q" : NULL);
		if (!subs[i] || router_add(r, subs[i]) < 0) {
			if (subs[i])
				bench_sub_free(subs[i]);
			fprintf(stderr, "router_bench: out of memory\n");
			goto out;
		}
	}

	long total = 0, expect = 0;
	struct sub **res;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long m = 0; m < matches; m++) {
		long k = m % nsubs;
		int n = snprintf(name, sizeof name, "svc.node%ld.x", k);
		long got = router_match(r, name, (size_t)n, &res);
		if (got < 0) {
			fprintf(stderr, "router_bench: router_match: out of memory\n");
			goto out;
		}
		total += got;
		expect += k % 10 != 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (total != expect) {
		fprintf(stderr, "router_bench: %ld results where %ld were expected\n", total, expect);
		goto out;
	}
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	double rate = s > 0 ? (double)matches / s : 0;
	if (json)
		printf("{\"bench\": \"router_match\", \"subscriptions\": %ld, \"matches\": %ld, "
		       "\"results\": %ld, \"seconds\": %.6f, \"matches_per_s\": %.0f}\n",
		       nsubs, matches, total, s, rate);
	else
		printf("router_match: %.0f matches/s (%ld subscriptions, %ld matches, %ld results)\n",
		       rate, nsubs, matches, total);
	rc = 0;
out:
	for (long i = 0; i < added; i++) {
		router_remove(r, subs[i]);
		bench_sub_free(subs[i]);
	}
	free(subs);
	router_free(r);
	return rc;
}
