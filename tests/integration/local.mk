# tests/integration/: CUnit programs that run the real broker (and the
# library and CLI) in temporary folders.  harness.[ch] starts and stops
# brokers, runs child processes and speaks the raw protocol.
INTEG_BROKER_TESTS = \
	tests/integration/test_broker_proto \
	tests/integration/test_slow \
	tests/integration/test_daemon
INTEG_CLIENT_TESTS = \
	tests/integration/test_pubsub \
	tests/integration/test_reqrep \
	tests/integration/test_cli \
	tests/integration/test_defpath \
	tests/integration/test_tls
check_PROGRAMS += $(INTEG_BROKER_TESTS) $(INTEG_CLIENT_TESTS)
TESTS += $(INTEG_BROKER_TESTS) $(INTEG_CLIENT_TESTS)
noinst_HEADERS += tests/integration/harness.h

# The harness is built once and linked into every program.
check_LTLIBRARIES += tests/integration/libharness.la
tests_integration_libharness_la_SOURCES = tests/integration/harness.c \
	tests/integration/harness_sysv.c
tests_integration_libharness_la_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(TEST_INCLUDES)

INTEG_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(TEST_INCLUDES)
INTEG_LDADD = tests/integration/libharness.la proto/libipcbusproto.la \
	$(CUNIT_LIBS) $(PROTOBUF_C_LIBS)
INTEG_LIB_LDADD = client/libipcbus.la $(INTEG_LDADD)

tests_integration_test_broker_proto_SOURCES = tests/integration/test_broker_proto.c
tests_integration_test_broker_proto_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_broker_proto_LDADD = $(INTEG_LDADD)

tests_integration_test_slow_SOURCES = tests/integration/test_slow.c
tests_integration_test_slow_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_slow_LDADD = $(INTEG_LDADD)

tests_integration_test_daemon_SOURCES = tests/integration/test_daemon.c
tests_integration_test_daemon_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_daemon_LDADD = $(INTEG_LDADD)

tests_integration_test_pubsub_SOURCES = tests/integration/test_pubsub.c \
	tests/integration/libpump.c tests/integration/libpump.h
tests_integration_test_pubsub_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_pubsub_LDADD = $(INTEG_LIB_LDADD)

tests_integration_test_reqrep_SOURCES = tests/integration/test_reqrep.c \
	tests/integration/libpump.c tests/integration/libpump.h
tests_integration_test_reqrep_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_reqrep_LDADD = $(INTEG_LIB_LDADD)

tests_integration_test_cli_SOURCES = tests/integration/test_cli.c
tests_integration_test_cli_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_cli_LDADD = $(INTEG_LDADD)

INTEG_BROKER_TESTS += tests/integration/test_flood
tests_integration_test_flood_SOURCES = tests/integration/test_flood.c
tests_integration_test_flood_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_flood_LDADD = $(INTEG_LDADD)

# The default-socket check: client/defpath.c is compiled in (libipcbus
# exports only ipcbus_*) so the check can be asked about any uid.
tests_integration_test_defpath_SOURCES = tests/integration/test_defpath.c client/defpath.c
tests_integration_test_defpath_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_defpath_LDADD = $(INTEG_LIB_LDADD)

# udp://: raw datagrams against the broker, beside a Unix client.
INTEG_BROKER_TESTS += tests/integration/test_udp
tests_integration_test_udp_SOURCES = tests/integration/test_udp.c
tests_integration_test_udp_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_udp_LDADD = $(INTEG_LDADD)

# libipcbus and the CLI over udp:// (the broker's side: test_udp)
INTEG_CLIENT_TESTS += tests/integration/test_udp_client
tests_integration_test_udp_client_SOURCES = tests/integration/test_udp_client.c \
	tests/integration/libpump.c tests/integration/libpump.h
tests_integration_test_udp_client_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_udp_client_LDADD = $(INTEG_LIB_LDADD)

tests_integration_test_tls_SOURCES = tests/integration/test_tls.c \
	tests/integration/libpump.c tests/integration/libpump.h
tests_integration_test_tls_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_tls_LDADD = $(INTEG_LIB_LDADD)

# The broker dialing out (bridges): a struct broker of its own, linked from
# the broker's modules, against peers the test runs in the broker's loop.
INTEG_BROKER_TESTS += tests/integration/test_dial
tests_integration_test_dial_SOURCES = tests/integration/test_dial.c
tests_integration_test_dial_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_dial_LDADD = broker/libipcbusd.la $(INTEG_LDADD)
# bridges between brokers: bridges.[ch] starts several brokers bridged
# together and waits until they carry messages.
INTEG_CLIENT_TESTS += tests/integration/test_bridge
tests_integration_test_bridge_SOURCES = tests/integration/test_bridge.c \
	tests/integration/bridges.c tests/integration/bridges.h
tests_integration_test_bridge_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_bridge_LDADD = $(INTEG_LDADD)

# sysv://: a raw SysV client of its own, the library and the CLI.
INTEG_CLIENT_TESTS += tests/integration/test_sysv
tests_integration_test_sysv_SOURCES = tests/integration/test_sysv.c
tests_integration_test_sysv_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_sysv_LDADD = $(INTEG_LIB_LDADD)
# raw bridges to SysV queues (sysv-in, sysv-out): plain msgsnd/msgrcv on
# one side, raw protocol clients on the other; bridges.c for the bridged
# case.
INTEG_BROKER_TESTS += tests/integration/test_rawq
tests_integration_test_rawq_SOURCES = tests/integration/test_rawq.c \
	tests/integration/bridges.c tests/integration/bridges.h
tests_integration_test_rawq_CFLAGS = $(INTEG_CFLAGS)
tests_integration_test_rawq_LDADD = $(INTEG_LDADD)
