#!/bin/sh
# Install what atomsync needs from Debian 12's packages.
#   deps.sh build   compilers and libraries (the example needs only these)
#   deps.sh test    also the servers and tools the test suite drives
#   deps.sh bench   also the tools `make bench` compares against (pgloader)
# Packages already installed are not fetched again.
set -eu

BUILD="build-essential cmake pkg-config python3 sqlite3 \
libsqlite3-dev libpq-dev libcurl4-openssl-dev libjansson-dev libfyaml-dev \
libhiredis-dev libxxhash-dev libcmocka-dev libmicrohttpd-dev zlib1g-dev \
libsimdjson-dev"
TEST="postgresql redis-server clang libclang-rt-14-dev sqlite-utils procps \
clang-format clang-tidy cppcheck chromium"

BENCH="pgloader"

want="$BUILD"
[ "${1:-build}" = test ] && want="$BUILD $TEST"
[ "${1:-build}" = bench ] && want="$BUILD $TEST $BENCH"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "deps.sh: need root (or sudo) to install:$missing" >&2
		exit 1
	}
	SUDO=sudo
fi
echo "deps.sh: installing:$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
