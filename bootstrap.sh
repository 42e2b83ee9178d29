#!/bin/sh
# bootstrap.sh: install what the build needs (Debian packages), then
# autoreconf, configure and build.  Arguments are passed to ./configure.
# Idempotent: quiet when everything is already installed.
set -eu

PKGS="autoconf automake libtool pkg-config make gcc clang libclang-rt-14-dev \
protobuf-c-compiler libprotobuf-c-dev libcunit1-dev libssl-dev openssl"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "bootstrap: installing Debian packages:$missing"
	if [ "$(id -u)" -ne 0 ]; then
		SUDO=sudo
	else
		SUDO=
	fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

cd "$(dirname "$0")"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
./configure --quiet "$@"
make -s -j"$(nproc)"
