# tests/unit/: one CUnit program per module, run by `make check`; no
# sockets (but test_net's, on loopback).  Broker modules come from the broker's convenience library; the
# router and the client's idmap are compiled in from their sources (the
# router so that its test does not depend on the rest of the broker, idmap
# because libipcbus exports only ipcbus_* symbols).
UNIT_TESTS = \
	tests/unit/test_frame \
	tests/unit/test_buf \
	tests/unit/test_chan \
	tests/unit/test_router \
	tests/unit/test_url \
	tests/unit/test_net \
	tests/unit/test_loop \
	tests/unit/test_conf \
	tests/unit/test_client_idmap
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
noinst_HEADERS += tests/unit/unit.h tests/unit/chan_cases.h

UNIT_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(TEST_INCLUDES)
UNIT_LDADD = proto/libipcbusproto.la $(CUNIT_LIBS) $(PROTOBUF_C_LIBS)

tests_unit_test_frame_SOURCES = tests/unit/test_frame.c
tests_unit_test_frame_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_frame_LDADD = $(UNIT_LDADD)

tests_unit_test_buf_SOURCES = tests/unit/test_buf.c
tests_unit_test_buf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(UNIT_LDADD)

tests_unit_test_chan_SOURCES = tests/unit/test_chan.c
tests_unit_test_chan_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_chan_LDADD = $(UNIT_LDADD)

tests_unit_test_router_SOURCES = tests/unit/test_router.c broker/router.c
tests_unit_test_router_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_router_LDADD = $(UNIT_LDADD)

tests_unit_test_url_SOURCES = tests/unit/test_url.c
tests_unit_test_url_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_url_LDADD = $(UNIT_LDADD)

tests_unit_test_net_SOURCES = tests/unit/test_net.c
tests_unit_test_net_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_net_LDADD = $(UNIT_LDADD)

tests_unit_test_loop_SOURCES = tests/unit/test_loop.c
tests_unit_test_loop_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_loop_LDADD = broker/libipcbusd.la $(UNIT_LDADD)

tests_unit_test_conf_SOURCES = tests/unit/test_conf.c
tests_unit_test_conf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_conf_LDADD = broker/libipcbusd.la $(UNIT_LDADD)

tests_unit_test_client_idmap_SOURCES = tests/unit/test_client_idmap.c client/idmap.c
tests_unit_test_client_idmap_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_client_idmap_LDADD = $(UNIT_LDADD)

UNIT_TESTS += tests/unit/test_outq
tests_unit_test_outq_SOURCES = tests/unit/test_outq.c
tests_unit_test_outq_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_outq_LDADD = broker/libipcbusd.la $(UNIT_LDADD)
