# tests/transport/: the transport conformance suite.  test_conform runs
# the same cases against every row of its transport table (conform.c);
# test_harness_net checks the harness's network helpers it relies on (the
# raw client on URLs, free ports, throw-away TLS certificates).
TRANSPORT_TESTS = \
	tests/transport/test_conform \
	tests/transport/test_harness_net
check_PROGRAMS += $(TRANSPORT_TESTS)
TESTS += $(TRANSPORT_TESTS)
noinst_HEADERS += tests/transport/conform.h
EXTRA_DIST += tests/transport/README.md

TRANSPORT_CPPFLAGS = $(AM_CPPFLAGS) $(TEST_INCLUDES) -I$(top_srcdir)/tests/integration

tests_transport_test_conform_SOURCES = tests/transport/conform.c \
	tests/transport/conform_cases.c tests/transport/conform_proto.c \
	tests/integration/libpump.c tests/integration/libpump.h
tests_transport_test_conform_CPPFLAGS = $(TRANSPORT_CPPFLAGS)
tests_transport_test_conform_CFLAGS = $(INTEG_CFLAGS)
tests_transport_test_conform_LDADD = $(INTEG_LIB_LDADD)

tests_transport_test_harness_net_SOURCES = tests/transport/test_harness_net.c
tests_transport_test_harness_net_CPPFLAGS = $(TRANSPORT_CPPFLAGS)
tests_transport_test_harness_net_CFLAGS = $(INTEG_CFLAGS)
tests_transport_test_harness_net_LDADD = $(INTEG_LDADD)
