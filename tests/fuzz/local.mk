# tests/fuzz/: libFuzzer targets, built only with ./configure --enable-fuzzer
# (CC=clang).  The code under test is compiled into the target itself so that
# it carries the fuzzer's coverage instrumentation.  .ci/run runs it.
EXTRA_DIST += tests/fuzz/fuzz_frame.c tests/fuzz/corpus

if ENABLE_FUZZER
FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
noinst_PROGRAMS += tests/fuzz/fuzz_frame
tests_fuzz_fuzz_frame_SOURCES = tests/fuzz/fuzz_frame.c \
	proto/frame.c proto/frame.h proto/buf.c proto/buf.h
nodist_tests_fuzz_fuzz_frame_SOURCES = proto/ipcbus.pb-c.c proto/ipcbus.pb-c.h
tests_fuzz_fuzz_frame_CFLAGS = $(AM_CFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_frame_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_FLAGS)
tests_fuzz_fuzz_frame_LDADD = $(PROTOBUF_C_LIBS)
endif
