# tests/integration/exec.mk: the exec bridge of `ipcbus reply` (client/cli/exec.c
# alone, then end to end against $IPCBUSD and $IPCBUS_CLI when they are built).
check_PROGRAMS += tests/integration/test_exec
TESTS += tests/integration/test_exec
tests_integration_test_exec_SOURCES = tests/integration/test_exec.c \
	client/cli/exec.c client/cli/exec.h
tests_integration_test_exec_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/client/cli
tests_integration_test_exec_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(TEST_INCLUDES)
tests_integration_test_exec_LDADD = client/libipcbus.la $(CUNIT_LIBS)
