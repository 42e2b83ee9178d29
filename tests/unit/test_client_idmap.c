/*
 * test_client_idmap.c: the client library's id -> pointer table: lookups,
 * replacement, growth, and deletion (backward shift) checked against a
 * plain array over a long random sequence, so that runs of colliding keys
 * that wrap around the end of the table are exercised.
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>

#include "idmap.h"
#include "unit.h"

static void test_empty(void)
{
	struct idmap m;
	size_t pos = 0;

	idmap_init(&m);
	CU_ASSERT_PTR_NULL(idmap_get(&m, 1));
	CU_ASSERT_PTR_NULL(idmap_del(&m, 1));
	CU_ASSERT_PTR_NULL(idmap_next(&m, &pos, NULL));
	CU_ASSERT_EQUAL(idmap_count(&m), 0);
	idmap_fini(&m);
	idmap_fini(&m); /* twice is harmless */
}

static void test_put_get_del(void)
{
	struct idmap m;
	int a, b;

	idmap_init(&m);
	CU_ASSERT_EQUAL(idmap_put(&m, 7, &a), 0);
	CU_ASSERT_PTR_EQUAL(idmap_get(&m, 7), &a);
	CU_ASSERT_EQUAL(idmap_put(&m, 7, &b), 0); /* replaces */
	CU_ASSERT_PTR_EQUAL(idmap_get(&m, 7), &b);
	CU_ASSERT_EQUAL(idmap_count(&m), 1);
	CU_ASSERT_PTR_NULL(idmap_get(&m, 0));
	CU_ASSERT_PTR_EQUAL(idmap_del(&m, 7), &b);
	CU_ASSERT_PTR_NULL(idmap_get(&m, 7));
	CU_ASSERT_EQUAL(idmap_count(&m), 0);
	idmap_fini(&m);
}

/* Random puts and deletes over a small key space, compared with an array. */
static void test_random(void)
{
	enum { KEYS = 300, STEPS = 200000 };
	static char vals[KEYS];
	void *ref[KEYS] = {0};
	struct idmap m;
	unsigned seed = 12345;
	int ok = 1;

	idmap_init(&m);
	for (int i = 0; i < STEPS && ok; i++) {
		seed = seed * 1103515245 + 12345;
		unsigned k = (seed >> 8) % KEYS;
		/* sparse, large keys too: the hash must spread them */
		uint64_t key = (uint64_t)(k + 1) * (k % 3 ? 1 : UINT64_C(0x100000001));
		if ((seed >> 20) & 1) {
			ok &= idmap_put(&m, key, &vals[k]) == 0;
			ref[k] = &vals[k];
		} else {
			ok &= idmap_del(&m, key) == ref[k];
			ref[k] = NULL;
		}
		if (i % 1000 == 0) {
			size_t n = 0;
			for (unsigned j = 0; j < KEYS; j++) {
				uint64_t kj = (uint64_t)(j + 1) * (j % 3 ? 1 : UINT64_C(0x100000001));
				ok &= idmap_get(&m, kj) == ref[j];
				n += ref[j] != NULL;
			}
			ok &= idmap_count(&m) == n;
		}
	}
	CU_ASSERT(ok);

	/* iteration visits every entry once */
	size_t pos = 0, seen = 0;
	uint64_t key;
	void *v;
	while ((v = idmap_next(&m, &pos, &key))) {
		seen++;
		CU_ASSERT_PTR_EQUAL(idmap_get(&m, key), v);
	}
	CU_ASSERT_EQUAL(seen, idmap_count(&m));
	idmap_fini(&m);
}

/* Sequential ids, as sids and request ids are: many, then all removed. */
static void test_sequential(void)
{
	struct idmap m;
	int ok = 1;

	idmap_init(&m);
	for (uintptr_t i = 1; i <= 100000; i++)
		ok &= idmap_put(&m, i, (void *)i) == 0;
	for (uintptr_t i = 1; i <= 100000; i += 2)
		ok &= idmap_del(&m, i) == (void *)i;
	for (uintptr_t i = 1; i <= 100000; i++)
		ok &= idmap_get(&m, i) == (i % 2 ? NULL : (void *)i);
	CU_ASSERT(ok);
	CU_ASSERT_EQUAL(idmap_count(&m), 50000);
	idmap_fini(&m);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"empty", test_empty},
		{"put, get, delete", test_put_get_del},
		{"random against an array", test_random},
		{"sequential ids", test_sequential},
	};
	return unit_run("client idmap", cases, UNIT_NELEM(cases));
}
