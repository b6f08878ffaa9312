#!/bin/sh
# Quick start, part 1: install, build, and run the bundled example.
# A local API server (tests/fixtures/apiserver.py) serves a 12,500-addon
# catalog; atomsync syncs it into examples/addons/addons.db, an upstream
# outage fails a run mid-way (nothing is published), the next run resumes
# where it stopped, and `status` shows the result.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
./scripts/deps.sh build
./scripts/build.sh
A="$ROOT/build/atomsync"
EX="$ROOT/examples/addons"
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
api() { # api METHOD PATH [JSON]
	python3 - "$1" "http://127.0.0.1:$PORT$2" "${3:-}" <<'PY'
import sys, urllib.request
m, url, body = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url, data=body.encode() if body else None, method=m,
                             headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=10).read()
PY
}

ADDONS_API_KEY="example-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
python3 tests/fixtures/apiserver.py --port 0 --port-file "$WORK/port" \
	--records 12500 --require-header "x-api-key=$ADDONS_API_KEY" >/dev/null &
SERVER=$!
while [ ! -s "$WORK/port" ]; do sleep 0.1; done
PORT=$(cat "$WORK/port")
export ADDONS_API="http://127.0.0.1:$PORT" ADDONS_API_KEY
rm -f "$EX"/addons.db "$EX"/addons.db-wal "$EX"/addons.db-shm
cd "$EX"

say "1. First sync: 12,500 addons from the API into SQLite"
"$A" run

say "2. The upstream changes, then fails from page 120 on (HTTP 503)"
api POST /_catalog '{"mutate": {"update": [1, 2, 3, 500, 9000], "add": 10}}'
api POST /_faults '{"faults": [{"kind": "status", "status": 503, "match": {"page": 120}}]}'
"$A" run && echo "unexpected success" && exit 1 || echo "(exit $?: the run failed; nothing was published)"
"$A" runs addons --limit 2

say "3. The upstream recovers: the next run resumes from its last checkpoint"
api DELETE /_faults
"$A" run

say "4. Status"
"$A" status
