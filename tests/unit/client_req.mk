# tests/unit/client_req.mk: libipcbus against a fake broker in the test
# itself (tests/unit/fakebroker.c): request/reply over a Unix socket in a
# mkdtemp folder, and the tcp:// transport, the token and the options over
# loopback TCP.  Only the public API and proto/'s framing (and net.c, for
# the fake broker's listener) are used, so the shared library will do; a
# handshake that ipcbus_connect() waits for runs in a thread.
FAKEBROKER = tests/unit/fakebroker.c tests/unit/fakebroker.h
FAKEBROKER_LDADD = client/libipcbus.la proto/libipcbusproto.la $(CUNIT_LIBS) $(PROTOBUF_C_LIBS)

check_PROGRAMS += tests/unit/test_client_req
TESTS += tests/unit/test_client_req
tests_unit_test_client_req_SOURCES = tests/unit/test_client_req.c $(FAKEBROKER)
tests_unit_test_client_req_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(TEST_INCLUDES) -pthread
tests_unit_test_client_req_LDFLAGS = $(AM_LDFLAGS) -pthread
tests_unit_test_client_req_LDADD = $(FAKEBROKER_LDADD)

check_PROGRAMS += tests/unit/test_client_tcp
TESTS += tests/unit/test_client_tcp
tests_unit_test_client_tcp_SOURCES = tests/unit/test_client_tcp.c $(FAKEBROKER)
tests_unit_test_client_tcp_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(TEST_INCLUDES) -pthread
tests_unit_test_client_tcp_LDFLAGS = $(AM_LDFLAGS) -pthread
tests_unit_test_client_tcp_LDADD = $(FAKEBROKER_LDADD)

# udp:// against a fake broker on a loopback UDP socket of the test
check_PROGRAMS += tests/unit/test_client_udp
TESTS += tests/unit/test_client_udp
tests_unit_test_client_udp_SOURCES = tests/unit/test_client_udp.c
tests_unit_test_client_udp_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(TEST_INCLUDES) -pthread
tests_unit_test_client_udp_LDFLAGS = $(AM_LDFLAGS) -pthread
tests_unit_test_client_udp_LDADD = $(FAKEBROKER_LDADD)
