/*
 * unit.h: the little every unit test program shares: a table of test cases
 * run as one CUnit suite, and the exit status automake expects (0 pass,
 * 1 fail, 99 hard error; never the failure count, which wraps at 256).
 */
#ifndef IPCBUS_TESTS_UNIT_H
#define IPCBUS_TESTS_UNIT_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

struct unit_case {
	const char *name;
	void (*fn)(void);
};

#define UNIT_NELEM(a) (sizeof(a) / sizeof((a)[0]))

static inline int unit_run(const char *suite, const struct unit_case *cases, size_t n)
{
	int rc = 99;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite(suite, NULL, NULL);
	if (!s)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!CU_add_test(s, cases[i].name, cases[i].fn))
			goto out;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		goto out;
	rc = CU_get_number_of_failures() > 0 || CU_get_number_of_tests_failed() > 0 ? 1 : 0;
out:
	CU_cleanup_registry();
	return rc;
}

#endif
