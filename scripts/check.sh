#!/bin/sh
# Quick start, part 2: install what the tests need, check the format
# (clang-format), build, run the static analysers (cppcheck, clang-tidy:
# scripts/analyze.sh), and run every
# test (unit, integration and fault tests against real SQLite, PostgreSQL,
# Redis and a local HTTP API server; the reliability sweeps and the fuzz
# corpus).  Then build again with clang under AddressSanitizer,
# UndefinedBehaviorSanitizer and LeakSanitizer (build-asan/) and run every
# test there too, plus a short libFuzzer run per target.  CI runs exactly
# this (.ci/run).
#
#   check.sh [CTEST ARGS]   arguments go to the first ctest; with
#                           arguments (a focused run) the sanitizer pass
#                           is skipped.  ATOMSYNC_SANITIZE=0 skips it too.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh test
./scripts/format.sh --check
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} ./scripts/build.sh
[ $# -gt 0 ] || ./scripts/analyze.sh
(cd build && ctest --output-on-failure -j"${ATOMSYNC_TEST_JOBS:-2}" "$@")
[ $# -eq 0 ] && [ "${ATOMSYNC_SANITIZE:-1}" != 0 ] || exit 0

# The sanitizer pass: every test but one, with a 20-second libFuzzer run per
# target on top.  fault.test_kill9 kills 15 runs per store here instead of 50
# and 20 (ATOMSYNC_KILLS): the same code paths, in a third of the time.
# fault.test_http_shapes is left out here: it drives the same HTTP code as
# integration.test_http and fault.test_http_faults (which do run here) through
# 19 list shapes, and would add a sixth of the pass's time.
echo "check.sh: sanitizer build in build-asan/ (log: build-asan/build.log)" >&2
mkdir -p build-asan
if ! { CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug \
	-DATOMSYNC_SANITIZE=ON -DATOMSYNC_FUZZ=ON &&
	cmake --build build-asan -j"$(nproc)"; } >build-asan/build.log 2>&1; then
	tail -40 build-asan/build.log >&2
	echo "check.sh: the sanitizer build failed (full log: build-asan/build.log)" >&2
	exit 1
fi
# halt_on_error: a UBSan report fails the test, as ASan's and LSan's do.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp
export ATOMSYNC_KILLS="${ATOMSYNC_KILLS:-15}"
cd build-asan
ctest --output-on-failure -j"${ATOMSYNC_TEST_JOBS:-2}" -E '^fault\.test_http_shapes$'
