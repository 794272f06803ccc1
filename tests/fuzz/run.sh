#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Builds the libFuzzer targets with clang (build-fuzz/: -DTLSQ_FUZZ=ON
# -DTLSQ_ASAN=ON) and runs each one: first it replays its committed corpus
# (tests/fuzz/corpus/<target>: every seed and every past crash must pass),
# then it fuzzes.
#
#   tests/fuzz/run.sh --short            replay + 20000 runs (at most 20 s) per target
#   tests/fuzz/run.sh --time 600         replay + 600 s per target
#   tests/fuzz/run.sh --time 600 frame   one target
#   options: --build DIR (default build-fuzz), --wolfssl-prefix DIR
#
# New inputs go to build-fuzz/fuzz-corpus/<target> (not the committed
# corpus); a crash leaves build-fuzz/crash-<target>-* and the script exits 1.
# Logs: build-fuzz/fuzz-<target>.log (tools/reliability-report reads them).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build="$src/build-fuzz"
wolf="$src/build/_deps/wolfssl"
mode=short
secs=20
runs=20000
targets=""
while [ $# -gt 0 ]; do
	case $1 in
	--short) mode=short ;;
	--time) mode=time; secs=$2; shift ;;
	--build) build=$2; shift ;;
	--wolfssl-prefix) [ -n "$2" ] && wolf=$2; shift ;;
	-h|--help) sed -n '3,17p' "$0"; exit 0 ;;
	*) targets="$targets $1" ;;
	esac
	shift
done
[ -n "$targets" ] || targets="frame handshake status"
cc=$(command -v clang || command -v clang-14 || true)
if [ -z "$cc" ]; then
	echo "fuzz: clang not found, skipping"
	exit 0
fi
set --
[ -f "$wolf/lib/libwolfssl.a" ] && set -- -DTLSQ_WOLFSSL_PREFIX="$wolf"
mkdir -p "$build"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DTLSQ_FUZZ=ON -DTLSQ_ASAN=ON -DTLSQ_BUILD_TOOLS=OFF "$@" >"$build.configure.log" 2>&1 ||
	{ cat "$build.configure.log"; exit 1; }
cmake --build "$build" --target $(for t in $targets; do printf 'fuzz_%s ' "$t"; done) >"$build/build.log" 2>&1 ||
	{ tail -50 "$build/build.log"; exit 1; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rc=0
for t in $targets; do
	bin="$build/tests/fuzz/fuzz_$t"
	seeds="$src/tests/fuzz/corpus/$t"
	work="$build/fuzz-corpus/$t"
	log="$build/fuzz-$t.log"
	mkdir -p "$work"
	case $t in
	frame) maxlen=4096 ;;
	handshake) maxlen=8192 ;;
	status) maxlen=4096 ;;
	esac
	nseeds=$(ls "$seeds" | wc -l)
	echo "=== fuzz_$t: replaying $nseeds corpus inputs ==="
	if ! "$bin" -runs=0 "$seeds"/* >"$log.replay" 2>&1; then
		tail -40 "$log.replay"
		echo "fuzz_$t: a corpus input fails"
		rc=1
		continue
	fi
	if [ "$mode" = short ]; then
		set -- -runs=$runs -max_total_time=$secs
	else
		set -- -max_total_time=$secs
	fi
	echo "=== fuzz_$t: fuzzing ($*) ==="
	if "$bin" "$@" -max_len=$maxlen -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$build/crash-$t-" "$work" "$seeds" >"$log" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
		secs_used=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
		echo "fuzz_$t: ok, ${execs:-?} executions in ${secs_used:-?} s, 0 crashes"
	else
		tail -60 "$log"
		echo "fuzz_$t: FAILED (crash or hang; artifact in $build/crash-$t-*)"
		rc=1
	fi
done
exit $rc
