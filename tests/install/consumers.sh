#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Installs the tlsq of build directory $1 into a fresh prefix, then builds
# and runs examples/workers.c against the installed library four ways:
# find_package(tlsq) with tlsq::tlsq and tlsq::tlsq_static, and
# `pkg-config tlsq` (shared) and `pkg-config --static tlsq`. Each program is
# run: it sends and receives over TLS with eight threads and exits 0 only if
# every byte came back intact. The shared builds must load the installed
# libtlsq.so (checked with ldd), not the one in the build tree.
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
step() { echo "--- $*"; }

step "install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
test -f "$prefix/include/tlsq.h"
test -f "$prefix/lib/pkgconfig/tlsq.pc"
test -f "$prefix/lib/cmake/tlsq/tlsq-config.cmake"

run() { # name program
	step "run $1"
	LD_LIBRARY_PATH="$prefix/lib" "$2" >"$tmp/$1.out" 2>&1 || { cat "$tmp/$1.out"; echo "FAIL: $1 exited $?"; exit 1; }
}

step "find_package(tlsq)"
cmake -S "$src/tests/install/cmake-consumer" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$prefix" \
	-DTLSQ_EXAMPLES="$src/examples" -DCMAKE_BUILD_TYPE=Release >"$tmp/cm.log" 2>&1 ||
	{ cat "$tmp/cm.log"; exit 1; }
cmake --build "$tmp/cm" >>"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; exit 1; }
run cmake_shared "$tmp/cm/consumer_shared"
run cmake_static "$tmp/cm/consumer_static"
LD_LIBRARY_PATH="$prefix/lib" ldd "$tmp/cm/consumer_shared" | grep -q "$prefix/lib/libtlsq.so" ||
	{ echo "FAIL: consumer_shared does not load the installed libtlsq.so"; exit 1; }
if ldd "$tmp/cm/consumer_static" | grep -q libtlsq; then
	echo "FAIL: consumer_static links libtlsq.so"; exit 1
fi

step "pkg-config tlsq"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc=${CC:-cc}
# shellcheck disable=SC2046
$cc -O2 -o "$tmp/pc_shared" "$src/examples/workers.c" $(pkg-config --cflags --libs tlsq) -lpthread
run pkgconfig_shared "$tmp/pc_shared"
# shellcheck disable=SC2046
$cc -O2 -o "$tmp/pc_static" "$src/examples/workers.c" $(pkg-config --cflags tlsq) \
	"$prefix/lib/libtlsq.a" $(pkg-config --static --libs-only-L --libs-only-other tlsq) \
	$(pkg-config --static --libs-only-l tlsq | sed 's/-ltlsq //')
run pkgconfig_static "$tmp/pc_static"
echo "PASS: find_package and pkg-config consumers build and run against the installed tlsq"
