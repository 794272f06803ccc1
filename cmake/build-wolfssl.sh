#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Builds wolfSSL for tlsq from Debian's own source package (bookworm-security,
# with Debian's security patches applied by dpkg-source), static, with AES-NI,
# intel asm and SP asm. Called by CMake at configure time; see
# shared notes wolfssl-5.5.4.md §10 for why each flag is here.
#
#   build-wolfssl.sh WORKDIR PREFIX VERSION
#
# The deb-src entry is derived from the machine's own apt sources (the mirror
# that serves bookworm-security) and kept in a private apt state under WORKDIR,
# so the system's apt configuration is never touched. A stamp file makes a
# second configure reuse the build. The stamp names the flag set (FLAGS_REV):
# bump it whenever the configure line changes, so that every existing build
# tree rebuilds instead of silently keeping the old flags.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
work=$1
prefix=$2
version=$3
# r2: --enable-ip-alt-name (IP SANs are parsed, so servers can be verified by
# IP address).
# r3: -DWOLFSSL_TLS13_MIDDLEBOX_COMPAT (RFC 8446 D.4: the dummy
# ChangeCipherSpec; wolfSSL has no configure option for it) and tlsq's patches
# in cmake/wolfssl-patches/ (the server side of that mode, which 5.5.4 lacks).
FLAGS_REV=r3
stamp="$prefix/.tlsq-wolfssl-$version-$FLAGS_REV"

if [ -f "$stamp" ]; then
	echo "tlsq: wolfSSL $version already built in $prefix"
	exit 0
fi

mkdir -p "$work"
cd "$work"

# --- 1. fetch the Debian source package --------------------------------------
if [ ! -f "wolfssl_$version.dsc" ]; then
	uri=${TLSQ_DEBIAN_SECURITY_URI:-}
	if [ -z "$uri" ]; then
		# deb822 sources first, then one-line sources.
		uri=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && /bookworm-security/ { print u; exit }' \
			/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	fi
	if [ -z "$uri" ]; then
		uri=$(grep -hE '^deb(-src)? .* bookworm-security' /etc/apt/sources.list \
			/etc/apt/sources.list.d/*.list 2>/dev/null | awk '{ print $2; exit }' || true)
	fi
	if [ -z "$uri" ]; then
		echo "tlsq: no bookworm-security entry in the apt sources; set TLSQ_DEBIAN_SECURITY_URI" >&2
		exit 1
	fi
	mkdir -p apt/lists/partial apt/cache/archives/partial
	echo "deb-src $uri bookworm-security main" > apt/sources.list
	set -- -o "Dir::Etc::SourceList=$work/apt/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o "Dir::State::Lists=$work/apt/lists" \
		-o "Dir::Cache=$work/apt/cache" \
		-o APT::Sandbox::User=root -q
	apt-get "$@" update >apt-update.log 2>&1 || { cat apt-update.log >&2; exit 1; }
	apt-get "$@" --download-only source "wolfssl=$version" >apt-source.log 2>&1 ||
		{ cat apt-source.log >&2; exit 1; }
fi

# --- 2. unpack with Debian's patches applied ---------------------------------
src="$work/src"
if [ ! -f "$src/configure.ac" ]; then
	rm -rf "$src"
	dpkg-source --no-check -x "wolfssl_$version.dsc" "$src" >dpkg-source.log 2>&1 ||
		{ cat dpkg-source.log >&2; exit 1; }
fi

# --- 2b. tlsq's own patches (cmake/wolfssl-patches/*.patch) -----------------
# Each is applied once; a marker in the source tree remembers it, so a source
# tree unpacked by an earlier flag set gets the patches too.
patches=$here/wolfssl-patches
for p in "$patches"/*.patch; do
	[ -f "$p" ] || continue
	mark="$src/.tlsq-patched-$(basename "$p" .patch)"
	[ -f "$mark" ] && continue
	(cd "$src" && patch -p1 -N <"$p") >patch.log 2>&1 ||
		{ cat patch.log >&2; exit 1; }
	touch "$mark"
done

# --- 3. configure and build, static -------------------------------------------
cd "$src"
if [ ! -f configure ]; then
	./autogen.sh >autogen.log 2>&1 || { cat autogen.log >&2; exit 1; }
fi
./configure --prefix="$prefix" \
	--enable-static --disable-shared --with-pic \
	--enable-tls13 --disable-oldtls \
	--enable-aesni --enable-intelasm --enable-sp --enable-sp-asm \
	--enable-curve25519 \
	--enable-session-ticket --enable-alpn --enable-sni --enable-keying-material \
	--enable-ip-alt-name \
	--enable-opensslextra --enable-certgen --enable-keygen \
	--disable-examples --disable-crypttests \
	CFLAGS="-O2" CPPFLAGS="-DWOLFSSL_ALT_NAMES -DWOLFSSL_ALWAYS_KEEP_SNI -DWOLFSSL_TLS13_MIDDLEBOX_COMPAT" \
	>configure.log 2>&1 || { tail -40 configure.log >&2; exit 1; }
jobs=$(nproc 2>/dev/null || echo 2)
# Objects from an earlier flag set would be reused by make (it does not track
# flags): start clean.
make clean >/dev/null 2>&1 || true
make -j"$jobs" >make.log 2>&1 || { tail -40 make.log >&2; exit 1; }
make install >install.log 2>&1 || { tail -40 install.log >&2; exit 1; }
touch "$stamp"
echo "tlsq: wolfSSL $version built into $prefix"
