#!/bin/sh
# Quick start, part 2: install what the tests need, build, and run every
# test (unit, integration and fault tests against real SQLite, PostgreSQL,
# Redis and a local HTTP API server).  CI runs exactly this (.ci/run).
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh test
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} ./scripts/build.sh
cd build
ctest --output-on-failure -j"${ATOMSYNC_TEST_JOBS:-2}" "$@"
