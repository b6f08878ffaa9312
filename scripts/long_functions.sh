#!/bin/sh
# List C functions longer than N lines (default 80) in src/**/*.c, longest
# first, as "LINES FILE:LINE NAME". A function's length counts from the line
# of its opening brace to the line of its closing brace, both included; a
# function is a brace at column 0 after a line that names it (the house
# clang-format style), ended by the next brace at column 0.
# Usage: scripts/long_functions.sh [N] [DIR]
set -eu
cd "$(dirname "$0")/.."
max=${1:-80}
dir=${2:-src}
find "$dir" -name '*.c' | sort | xargs awk -v max="$max" '
FNR == 1 { name = ""; prev = ""; start = 0 }
/^\{/ {
	start = FNR
	name = prev
	sub(/\(.*/, "", name)
	n = split(name, w, /[ \t*]+/)
	name = w[n]
	next
}
/^\}/ && start {
	len = FNR - start + 1
	if (len > max)
		printf "%d %s:%d %s\n", len, FILENAME, start, name
	start = 0
	next
}
# Remember the last line that names a function: the start of a signature
# (a line with "(") that is not indented; continuation lines keep it.
/^[A-Za-z_].*\(/ { prev = $0 }
' | sort -k1,1nr
