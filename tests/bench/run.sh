#!/bin/bash
# tests/bench/run.sh: ipcbus beside NATS, Redis and Mosquitto, measured by one
# driver (the shared peerbench), plus the socketpair ceilings, in one run.
#
#   tests/bench/run.sh BUILD_DIR [PEERBENCH_DIR] [backends...]
#
# BUILD_DIR is a configured and built ipcbus tree (it needs client/.libs and
# broker/ipcbusd).  PEERBENCH_DIR defaults to ../shared/peerbench beside the
# source tree; it is copied to a temp folder, never written.  Knobs are
# peerbench's own (REPS, CASES, PIN, ...); RATIO_BASE is set to ipcbus.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR [PEERBENCH_DIR] [backends...]}" && pwd)
src=$(cd "$here/../.." && pwd)
pbsrc=${2:-$src/../shared/peerbench}
shift $(($# >= 2 ? 2 : 1))
[ -x "$build/broker/ipcbusd" ] || { echo "run.sh: $build/broker/ipcbusd is missing: build first" >&2; exit 1; }
[ -d "$pbsrc" ] || { echo "run.sh: no peerbench at $pbsrc" >&2; exit 1; }

work=$(mktemp -d /tmp/ipcbus-peerbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$pbsrc/." "$work/"
chmod -R u+w "$work"
cp "$here/peerbench/be_ipcbus.c" "$work/src/"
cp "$here/peerbench/ipcbus.sh" "$work/backends/"
cat >"$work/backends/ipcbus.mk" <<MK
CFLAGS_ipcbus := -I$src/client
LIBS_ipcbus := -L$build/client/.libs -lipcbus -Wl,-rpath,$build/client/.libs
MK

echo "== socketpair ceilings (parent CPU 0, child CPU 1)"
"$build/tests/bench/socketpair_bench" stream -n 10000000 -s 64 -b 64 -c 0,1
"$build/tests/bench/socketpair_bench" stream -n 2000000 -s 1024 -b 64 -c 0,1
"$build/tests/bench/socketpair_bench" pingpong -n 20000 -s 64 -c 0,1
"$build/tests/bench/socketpair_bench" relay -n 20000 -s 64 -c 0,1

echo "== peerbench"
cd "$work"
IPCBUS_BUILD=$build RATIO_BASE=ipcbus ./run.sh "$@"
# keep the results beside the build
mkdir -p "$build/bench-results"
cp -r results/. "$build/bench-results/"
