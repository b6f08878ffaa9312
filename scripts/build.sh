#!/bin/sh
# Configure and build atomsync into build/ (Release with debug info).
set -eu
cd "$(dirname "$0")/.."
mkdir -p build
echo "build.sh: building atomsync into build/ (log: build/build.log)" >&2
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} &&
	cmake --build build -j"$(nproc)"; } >build/build.log 2>&1; then
	tail -40 build/build.log >&2
	echo "build.sh: the build failed (full log: build/build.log)" >&2
	exit 1
fi
