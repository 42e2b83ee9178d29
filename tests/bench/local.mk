# tests/bench/: benchmarks, built by `make` but never run by `make check`.
# The broker itself is measured with `ipcbus bench`; socketpair_bench gives
# the ceilings it is compared with, router_bench the router's match rate.
noinst_PROGRAMS += tests/bench/socketpair_bench tests/bench/router_bench
tests_bench_socketpair_bench_SOURCES = tests/bench/socketpair_bench.c
tests_bench_socketpair_bench_LDADD = proto/libipcbusproto.la $(PROTOBUF_C_LIBS)
tests_bench_router_bench_SOURCES = tests/bench/router_bench.c
tests_bench_router_bench_CPPFLAGS = $(BROKER_CPPFLAGS)
tests_bench_router_bench_LDADD = broker/libipcbusd.la
EXTRA_DIST += tests/bench/README.md tests/bench/run.sh tests/bench/sysv.sh \
	tests/bench/peerbench/be_ipcbus.c tests/bench/peerbench/ipcbus.sh

noinst_PROGRAMS += tests/bench/flood_bench
tests_bench_flood_bench_SOURCES = tests/bench/flood_bench.c
tests_bench_flood_bench_LDADD = proto/libipcbusproto.la $(PROTOBUF_C_LIBS) -lpthread

noinst_PROGRAMS += tests/bench/hose_bench
tests_bench_hose_bench_SOURCES = tests/bench/hose_bench.c
tests_bench_hose_bench_LDADD = proto/libipcbusproto.la $(PROTOBUF_C_LIBS) -lpthread

noinst_PROGRAMS += tests/bench/msgq_bench
# msgq_raw.[ch]: the raw msgsnd/msgrcv stream and ping-pong both use
tests_bench_msgq_bench_SOURCES = tests/bench/msgq_bench.c tests/bench/msgq_raw.c \
	tests/bench/msgq_raw.h
tests_bench_msgq_bench_LDADD = -lpthread
# SysV message queues: raw msgsnd/msgrcv between two processes (stream,
# ping-pong) and the broker's raw bridges (sysv-in, sysv-out) in one run.
noinst_PROGRAMS += tests/bench/rawq_bench
tests_bench_rawq_bench_SOURCES = tests/bench/rawq_bench.c tests/bench/msgq_raw.c \
	tests/bench/msgq_raw.h
tests_bench_rawq_bench_CPPFLAGS = $(CLIENT_CPPFLAGS)
tests_bench_rawq_bench_LDADD = client/libipcbus.la
