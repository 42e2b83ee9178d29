# tests/fuzz/: libFuzzer targets, built only with ./configure --enable-fuzzer
# (CC=clang).  The code under test is compiled into each target itself so
# that it carries the fuzzer's coverage instrumentation.  .ci/run runs each
# target for a minute; tests/fuzz/README.md says what each one feeds and
# checks, and how to run them.
#   fuzz_frame   the frame codec (proto/frame.c)
#   fuzz_url     the URL parser (proto/url.c)
#   fuzz_conf    the configuration reader (broker/conf.c)
#   fuzz_broker  a broker with fake connections: broker/conn.c, handle.c,
#                router.c, broker.c
EXTRA_DIST += tests/fuzz/README.md tests/fuzz/gen_corpus.py \
	tests/fuzz/fuzz_frame.c tests/fuzz/fuzz_url.c tests/fuzz/fuzz_conf.c \
	tests/fuzz/fuzz_broker.c tests/fuzz/broker.dict \
	tests/fuzz/corpus tests/fuzz/corpus-url tests/fuzz/corpus-conf \
	tests/fuzz/corpus-broker

if ENABLE_FUZZER
FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g \
	$(TEST_INCLUDES)
FUZZ_PROTO = proto/frame.c proto/frame.h proto/buf.c proto/buf.h
noinst_PROGRAMS += tests/fuzz/fuzz_frame tests/fuzz/fuzz_url tests/fuzz/fuzz_conf \
	tests/fuzz/fuzz_broker

tests_fuzz_fuzz_frame_SOURCES = tests/fuzz/fuzz_frame.c $(FUZZ_PROTO)
nodist_tests_fuzz_fuzz_frame_SOURCES = proto/ipcbus.pb-c.c proto/ipcbus.pb-c.h
tests_fuzz_fuzz_frame_CFLAGS = $(AM_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_frame_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_frame_LDADD = $(PROTOBUF_C_LIBS)

tests_fuzz_fuzz_url_SOURCES = tests/fuzz/fuzz_url.c proto/url.c proto/url.h
tests_fuzz_fuzz_url_CFLAGS = $(AM_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_url_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)

tests_fuzz_fuzz_conf_SOURCES = tests/fuzz/fuzz_conf.c broker/conf.c broker/conf.h proto/chan.c \
	proto/url.c proto/url.h
tests_fuzz_fuzz_conf_CFLAGS = $(AM_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_conf_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)

tests_fuzz_fuzz_broker_SOURCES = tests/fuzz/fuzz_broker.c $(BROKER_SRC) $(PROTO_SRC)
nodist_tests_fuzz_fuzz_broker_SOURCES = proto/ipcbus.pb-c.c proto/ipcbus.pb-c.h
tests_fuzz_fuzz_broker_CFLAGS = $(AM_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_broker_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_broker_CPPFLAGS = $(AM_CPPFLAGS) $(OPENSSL_CFLAGS)
tests_fuzz_fuzz_broker_LDADD = $(PROTOBUF_C_LIBS) $(OPENSSL_LIBS)
endif
