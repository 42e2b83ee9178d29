#!/bin/bash
# tests/bench/sysv.sh: sysv:// through the broker beside its ceilings, in one
# run: a raw msgsnd/msgrcv stream and ping-pong between two processes
# (msgq_bench), then `ipcbus bench` 64-byte pub/sub and request/reply over
# sysv://KEY, and over the broker's Unix socket for comparison.
#
#   tests/bench/sysv.sh BUILD_DIR [REPS]
#
# BUILD_DIR is a built tree (broker/ipcbusd, client/ipcbus,
# tests/bench/msgq_bench).  The broker runs in a temp folder on a free key;
# it is stopped and everything removed at the end.
set -euo pipefail
build=$(cd "${1:?usage: sysv.sh BUILD_DIR [REPS]}" && pwd)
reps=${2:-3}
for f in broker/ipcbusd client/ipcbus tests/bench/msgq_bench; do
	[ -x "$build/$f" ] || { echo "sysv.sh: $build/$f is missing: build first" >&2; exit 1; }
done
work=$(mktemp -d /tmp/ipcbus-sysvbench.XXXXXX)
key=""
for _ in $(seq 1 100); do
	k=$(printf '0x5b%06x' $((RANDOM * 256 + RANDOM % 256)))
	ipcs -q 2>/dev/null | grep -q "^$k " || { key=$k; break; }
done
[ -n "$key" ] || { echo "sysv.sh: no free key" >&2; exit 1; }
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
"$build/broker/ipcbusd" -l "unix://$work/s.sock" -l "sysv://$key" 2>"$work/broker.log" &
pid=$!
for _ in $(seq 1 100); do
	grep -q ready "$work/broker.log" && break
	sleep 0.05
done
grep -q ready "$work/broker.log" || { cat "$work/broker.log" >&2; exit 1; }
cli=$build/client/ipcbus
for r in $(seq 1 "$reps"); do
	echo "== run $r"
	"$build/tests/bench/msgq_bench" stream -n 2000000 -s 64
	"$build/tests/bench/msgq_bench" pingpong -n 20000 -s 64
	echo "-- sysv://$key"
	"$cli" bench -u "sysv://$key" -n 2000000 -s 64 | grep -E "delivered|lost"
	"$cli" bench -u "sysv://$key" --req -n 20000 -s 64 | grep -E "p50|in flight"
	echo "-- unix://$work/s.sock"
	"$cli" bench -u "unix://$work/s.sock" -n 2000000 -s 64 | grep -E "delivered|lost"
	"$cli" bench -u "unix://$work/s.sock" --req -n 20000 -s 64 | grep -E "p50|in flight"
done
