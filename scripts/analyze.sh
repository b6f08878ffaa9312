#!/bin/sh
# Static analysis of src/: cppcheck (warning, portability) and clang-tidy
# (bugprone, clang-analyzer; the checks in .clang-tidy).  Any finding fails.
# False positives are suppressed by name: scripts/analyze/cppcheck.supp and
# the Checks list of .clang-tidy, each with its reason.  Needs build/ (for
# compile_commands.json); scripts/check.sh runs this after the build.
set -eu
cd "$(dirname "$0")/.."
[ -f build/compile_commands.json ] || {
	echo "analyze.sh: build/compile_commands.json missing: run scripts/build.sh" >&2
	exit 1
}
status=0
echo "analyze.sh: cppcheck" >&2
cppcheck --project=build/compile_commands.json -i tests -i build \
	--library=scripts/analyze/jansson.cfg \
	--suppressions-list=scripts/analyze/cppcheck.supp \
	--enable=warning,portability --error-exitcode=1 --quiet \
	-j"$(nproc)" || status=1
echo "analyze.sh: clang-tidy" >&2
# clang-tidy reads the gcc build's flags; it need not know gcc-only ones.
ls src/*/*.c | xargs -P"$(nproc)" -n8 clang-tidy -p build --quiet \
	--extra-arg=-Wno-unknown-warning-option 2>/dev/null || status=1
[ $status = 0 ] && echo "analyze.sh: no findings" >&2
exit $status
