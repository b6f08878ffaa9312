#!/bin/sh
# Apply .clang-format to every C file of the project, or with --check only
# report the files whose formatting differs (exit 1), as scripts/check.sh
# does before it builds.
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h')
if [ "${1:-}" = --check ]; then
	bad=""
	for f in $files; do
		clang-format "$f" | cmp -s "$f" - || bad="$bad $f"
	done
	[ -z "$bad" ] && exit 0
	echo "format.sh: not formatted (run make format):$bad" >&2
	exit 1
fi
clang-format -i $files
