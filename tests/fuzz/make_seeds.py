#!/usr/bin/env python3
"""Write the seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/.

Seeds are named seed-*; inputs the fuzzer found and kept (merged with
`fuzz_<t> -merge=1`) have libFuzzer's hash names.  Rerunning this script
rewrites the seed-* files only.

Sources: the JSONTestSuite parsing files (MIT, /work/shared/corpora or
$JSON_TEST_SUITE; copied under corpus/json with its LICENSE) and the edge
cases below: deep nesting, huge numbers, -0, lone surrogates, invalid UTF-8,
NUL bytes, CRLF, no final newline; for configs, YAML features (anchors,
merge keys, flow style, tabs, multi-document) and atomsync's own values
(durations, sizes, ${VAR} expansion).
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
SUITE = os.environ.get("JSON_TEST_SUITE", "/work/shared/corpora/json-test-suite")
NDATASETS = 8  # fuzz_record.c: j_full j_auto j_incr j_scoped j_append j_text s_full s_keyed
DS = {"j_full": 0, "j_auto": 1, "j_incr": 2, "j_scoped": 3, "j_append": 4,
      "j_text": 5, "s_full": 6, "s_keyed": 7}


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear_seeds(target):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        for n in os.listdir(d):
            if n.startswith("seed-"):
                os.unlink(os.path.join(d, n))


def rec(ds, body, api=False):
    """A record-target input: selector byte, then the deliveries."""
    sel = DS[ds] + (NDATASETS if api else 0)
    return bytes([sel]) + (body.encode() if isinstance(body, str) else body)


JSON_EDGES = {
    "deep-array-3000": "[" * 3000 + "]" * 3000,
    "deep-object-3000": '{"a":' * 3000 + "1" + "}" * 3000,
    "deep-object-100": '{"a":' * 100 + "1" + "}" * 100,
    "huge-int": '{"id":123456789012345678901234567890}',
    "int64-edges": '{"a":9223372036854775807,"b":-9223372036854775808,'
                   '"c":9223372036854775808,"d":-9223372036854775809}',
    "huge-exp": '{"a":1e400,"b":-1e400,"c":1e-400,"d":1E+999999999}',
    "neg-zero": '{"a":-0,"b":-0.0,"c":0e0,"d":-0e-0}',
    "reals": '{"a":0.1,"b":1.7976931348623157e308,"c":5e-324,"d":2.5e-7}',
    "lone-high": '{"s":"\\ud800"}',
    "lone-low": '{"s":"\\udc00"}',
    "surrogate-pair": '{"s":"\\ud83d\\ude00"}',
    "high-then-ascii": '{"s":"\\ud800\\u0041"}',
    "escaped-nul": '{"s":"a\\u0000b"}',
    "dup-keys": '{"a":1,"a":2}',
    "long-string": '{"s":"' + "x" * 5000 + '"}',
    "unicode-keys": '{"\u00e9":"\u4e2d\u6587","\U0001f600":1}',
    "empty-object": "{}",
    "not-object": "[1,2,3]",
    "trailing": '{"a":1} x',
    "two-objects": '{"a":1}{"b":2}',
    "bom": "\ufeff{\"a\":1}",
}
JSON_EDGES_BYTES = {
    "invalid-utf8-ff": b'{"s":"\xff"}',
    "overlong-nul": b'{"s":"\xc0\x80"}',
    "encoded-surrogate": b'{"s":"\xed\xa0\x80"}',
    "truncated-utf8": b'{"s":"\xe2\x82"}',
    "raw-nul-in-string": b'{"s":"a\x00b"}',
    "raw-nul-after": b'{"a":1}\x00',
    "crlf": b'{"a":1}\r\n',
    "control-char": b'{"s":"a\x01b"}',
}


def json_seeds():
    clear_seeds("json")
    if os.path.isdir(SUITE):
        for n in sorted(os.listdir(SUITE)):
            if n.endswith(".json"):
                with open(os.path.join(SUITE, n), "rb") as f:
                    put("json", "jts-" + n, f.read())
        lic = os.path.join(SUITE, "LICENSE")
        if os.path.exists(lic):
            shutil.copyfile(lic, os.path.join(CORPUS, "LICENSE.json-test-suite"))
    else:
        print("make_seeds: no JSONTestSuite at %s (set JSON_TEST_SUITE)" % SUITE,
              file=sys.stderr)
    for k, v in JSON_EDGES.items():
        put("json", "edge-" + k, v)
    for k, v in JSON_EDGES_BYTES.items():
        put("json", "edge-" + k, v)


FULL_A = "\n".join([
    '{"id":1,"name":"one","score":1.5,"ok":true,"at":"2026-01-01T00:00:00Z","a":{"b":{"c":[1,2]},"n":5}}',
    '{"id":2,"name":"two","score":-0,"ok":false,"at":"2026-01-02T03:04:05.123+02:00","a":{"b":null,"n":6}}',
    '{"id":3,"name":"three","score":1e300,"ok":1,"at":"2026-01-03","a":{"n":7}}',
    '{"id":4,"name":null}',
]) + "\n"
FULL_B = "\n".join([
    '{"id":1,"name":"one","score":1.5,"ok":true,"at":"2026-01-01T00:00:00Z","a":{"b":{"c":[1,2]},"n":5}}',
    '{"id":2,"name":"TWO","score":0,"ok":"false","at":"2026-01-02T01:04:05.123Z","a":{"b":{},"n":6}}',
    '{"id":5,"name":"five","score":2,"ok":true}',
    '{"id":5,"name":"five again"}',
]) + "\n"


def record_seeds():
    clear_seeds("record")
    # The JSON edge cases as one-line records of the loosest dataset.
    for k, v in list(JSON_EDGES.items()) + list(JSON_EDGES_BYTES.items()):
        if len(v) < 4000:
            put("record", "auto-" + k, rec("j_auto", v if isinstance(v, bytes) else v))
    # JSONTestSuite objects as records (the corpora README: a file that is
    # an object is one JSON-lines record; anything else as it is).
    if os.path.isdir(SUITE):
        for n in sorted(os.listdir(SUITE)):
            if not n.endswith(".json") or n.startswith("n_structure_100000"):
                continue
            with open(os.path.join(SUITE, n), "rb") as f:
                data = f.read()
            if len(data) > 4000:
                continue
            body = b'{"k":1,"v":' + data + b"}" if not data.lstrip().startswith(b"{") else data
            put("record", "jts-" + n, rec("j_auto", body))
    put("record", "full-a-b", rec("j_full", FULL_A + "===\n" + FULL_B))
    put("record", "full-a-b-api", rec("j_full", FULL_A + "===\n" + FULL_B, api=True))
    put("record", "full-crlf-no-final-newline",
        rec("j_full", FULL_A.replace("\n", "\r\n") + "===\n" + FULL_B.rstrip("\n")))
    put("record", "full-bad-lines", rec("j_full", FULL_A + "===\n" +
        '{"id":"x"}\n{"id":1,"score":"high"}\n{"id":2}\n\n   \n{"id":3,"at":"yesterday"}\n'))
    put("record", "full-delete-all", rec("j_full", FULL_A + "===\n"))
    put("record", "full-ids", rec("j_full", '{"id":1.0}\n{"id":"2"}\n{"id":3e0}\n'
                                  '{"id":-0}\n{"id":9223372036854775807}\n{"id":1e19}\n'))
    put("record", "incr", rec("j_incr", '{"id":1,"u":5,"v":"a"}\n{"id":2,"u":9,"v":"b"}\n===\n'
                              '{"id":2,"u":10,"v":"c"}\n{"id":3,"u":1,"v":"d"}\n'))
    put("record", "scoped", rec("j_scoped", '{"id":1,"user":"a","v":1}\n{"id":2,"user":"b","v":2}\n'
                                '{"id":3,"user":"a","v":3}\n===\n{"id":3,"user":"a","v":4}\n'
                                '{"id":4,"user":null,"v":0.5}\n'))
    put("record", "append", rec("j_append", '{"tx":"0xa","i":0,"v":{"x":1}}\n{"tx":"0xa","i":1,"v":[1]}\n'
                                '===\n{"tx":"0xa","i":0,"v":{"x":1}}\n{"tx":"0xa","i":0,"v":{"x":2}}\n'
                                '{"tx":"0xb","i":0,"v":null}\n{"tx":"0xb","i":0,"v":null}\n'))
    put("record", "text-keys", rec("j_text", '{"a":"k","x":{"y":{"z":"1"}},"t":"2026-02-30T00:00:00Z"}\n'
                                   '{"a":"k","x":{"y":{"z":1}}}\n{"a":"","x":{"y":{"z":""}}}\n'
                                   '{"a":"\\u00e9","x":{"y":null}}\n'))
    put("record", "text-keys-api", rec("j_text", '{"a":"k","x":{"y":{"z":"1"}}}\n===\n'
                                       '{"a":"k","x":{"y":{"z":"2"}}}\n', api=True))
    singer = "\n".join([
        '{"type":"SCHEMA","stream":"s","schema":{},"key_properties":["id"]}',
        '{"type":"RECORD","stream":"s","record":{"id":1,"v":"a"}}',
        '{"type":"STATE","value":{"s":1}}',
        '{"type":"RECORD","stream":"other","record":{"id":9}}',
        '{"type":"RECORD","stream":"s","record":{"id":2,"v":[1,2]}}',
        '{"type":"ACTIVATE_VERSION","stream":"s","version":1}',
    ]) + "\n"
    put("record", "singer", rec("s_full", singer + "===\n" + singer.replace('"v":"a"', '"v":"b"')))
    put("record", "singer-keyed", rec("s_keyed", singer))
    put("record", "singer-bad", rec("s_full", '{"type":"RECORD"}\n{"type":1}\n[]\n'
                                    '{"type":"SCHEMA","stream":"s","key_properties":"id"}\n'
                                    '{"type":"RECORD","stream":"s","record":[]}\n'))
    put("record", "singer-no-schema", rec("s_full", '{"type":"RECORD","stream":"s","record":{"id":1}}\n'))
    put("record", "singer-two-schemas", rec("s_full",
        '{"type":"SCHEMA","stream":"s","key_properties":["id"]}\n'
        '{"type":"RECORD","stream":"s","record":{"id":1}}\n'
        '{"type":"SCHEMA","stream":"s","key_properties":["id","v"]}\n'
        '{"type":"RECORD","stream":"s","record":{"id":1,"v":2}}\n'))


CONFIG_FULL = """store: sqlite:/tmp/x.db
cache: redis://127.0.0.1:6379/0
datasets:
  addons:
    table: addons
    mode: full
    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer, path: downloadCount}
    snapshot_columns: [downloads]
    guard: {max_delete_fraction: 0.5, allow_empty: false, max_rejects: 0}
    lease_ttl: 60s
    batch_size: 1000
    max_record_size: 1MiB
    source:
      file: addons.jsonl
      format: jsonl
  mods:
    mode: incremental
    key: [id]
    cursor: updated
    source:
      http:
        url: http://127.0.0.1:8080/v1/mods
        params: {gameId: 1}
        headers: {x-api-key: "${ATOMSYNC_FUZZ_SECRET}"}
        records: data
        pagination:
          style: offset
          offset_param: index
          limit_param: pageSize
          limit: 50
          total_path: pagination.totalCount
        concurrency: 8
        rate_limit: 600/min
        timeout: 30s
        retry: {attempts: 5, initial: 500ms, max: 30s}
        circuit_breaker: {failures: 10}
        item_url: http://127.0.0.1:8080/v1/mods/{id}
  events:
    mode: append
    key: [tx_hash, log_index]
    source: {exec: "tap-foo --state {state}", format: singer, stream: events}
  scoped:
    mode: scoped
    key: [id]
    scope: [user_id]
    source: stdin
"""


def config_seeds():
    clear_seeds("config")
    ex = os.path.join(HERE, "..", "..", "examples", "addons", "atomsync.yml")
    if os.path.exists(ex):
        with open(ex, "rb") as f:
            put("config", "example-addons", f.read())
    put("config", "full", CONFIG_FULL)
    put("config", "full-bad-size", CONFIG_FULL.replace("1MiB", "1MB"))
    put("config", "minimal", "store: sqlite:x.db\ndatasets:\n  d:\n    key: [id]\n    source: {file: a.jsonl}\n")
    put("config", "anchors", "store: sqlite:x.db\nbase: &b {key: [id], source: {file: a}}\n"
        "datasets:\n  d: *b\n  e:\n    <<: *b\n    table: e\n")
    put("config", "flow", '{store: "sqlite:x.db", datasets: {d: {key: [id], source: {file: a}}}}')
    put("config", "tabs", "store: sqlite:x.db\ndatasets:\n\td:\n\t\tkey: [id]\n")
    put("config", "multidoc", "store: sqlite:x.db\n---\nstore: sqlite:y.db\n")
    put("config", "env", "store: sqlite:${ATOMSYNC_FUZZ_EMPTY}x${UNSET_VAR_X}.db\ndatasets:\n"
        "  d:\n    key: [id]\n    source:\n      http:\n        url: http://h/${ATOMSYNC_FUZZ_SECRET}\n"
        "        headers: {a: \"$${X}\", b: \"${\", c: \"${ATOMSYNC_FUZZ_SECRET\"}\n")
    put("config", "durations", "store: sqlite:x.db\ndatasets:\n  d:\n    key: [id]\n"
        "    lease_ttl: 99999999999999999999d\n    source:\n      http:\n        url: http://h/\n"
        "        timeout: 0ms\n        rate_limit: 0/s\n        retry: {attempts: -1, initial: 1h, max: 1ms}\n")
    put("config", "sizes", "store: sqlite:x.db\ndatasets:\n  d:\n    key: [id]\n"
        "    max_record_size: 99999999999GB\n    batch_size: 0\n    source: {file: a}\n")
    put("config", "dup-keys", "store: sqlite:x.db\nstore: sqlite:y.db\ndatasets:\n  d: {key: [id]}\n  d: {key: [id]}\n")
    put("config", "bad-types", "store: 1\ndatasets: [1, 2]\n")
    put("config", "columns", "store: sqlite:x.db\ndatasets:\n  d:\n    key: [id, id]\n    columns:\n"
        "      id: {type: integer}\n      x: {type: float}\n      y: {path: ''}\n      z: {type: json, path: a..b}\n"
        "    source: {file: a}\n")
    put("config", "deep", "a:\n" + "".join("  " * i + "- \n" for i in range(1, 200)))
    put("config", "unicode", "store: sqlite:\u00e9.db\ndatasets:\n  \u4e2d:\n    key: [\U0001f600]\n    source: {file: a}\n")
    put("config", "nul", b"store: sqlite:x.db\x00\ndatasets: {}\n")
    put("config", "empty", "")


if __name__ == "__main__":
    json_seeds()
    record_seeds()
    config_seeds()
    for t in ("json", "record", "config"):
        print("%s: %d files" % (t, len(os.listdir(os.path.join(CORPUS, t)))))
