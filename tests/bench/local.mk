# tests/bench/: benchmarks (not run by make check).  The broker itself is
# measured with `ipcbus bench`; these are the ceilings it is compared with.
noinst_PROGRAMS += tests/bench/socketpair_bench
tests_bench_socketpair_bench_SOURCES = tests/bench/socketpair_bench.c
tests_bench_socketpair_bench_LDADD = proto/libipcbusproto.la $(PROTOBUF_C_LIBS)
EXTRA_DIST += tests/bench/README.md tests/bench/run.sh \
	tests/bench/peerbench/be_ipcbus.c tests/bench/peerbench/ipcbus.sh

noinst_PROGRAMS += tests/bench/flood_bench
tests_bench_flood_bench_SOURCES = tests/bench/flood_bench.c
tests_bench_flood_bench_LDADD = proto/libipcbusproto.la $(PROTOBUF_C_LIBS) -lpthread
