# tests/unit/client_req.mk: request/reply of libipcbus against a fake
# broker in the test itself (a Unix socket in a mkdtemp folder).  Only the
# public API and proto/'s framing are used, so the shared library will do;
# the handshake runs in a thread while ipcbus_connect() blocks.
check_PROGRAMS += tests/unit/test_client_req
TESTS += tests/unit/test_client_req
tests_unit_test_client_req_SOURCES = tests/unit/test_client_req.c
tests_unit_test_client_req_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) -pthread
tests_unit_test_client_req_LDFLAGS = $(AM_LDFLAGS) -pthread
tests_unit_test_client_req_LDADD = client/libipcbus.la proto/libipcbusproto.la $(CUNIT_LIBS) $(PROTOBUF_C_LIBS)
