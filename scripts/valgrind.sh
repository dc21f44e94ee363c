#!/usr/bin/env bash
# Runs the conformance host's fixture scenario under valgrind memcheck: every fixture, two
# instances, concurrent flushes, a retry and both exits. Fails on any invalid read or write
# or use of uninitialised memory (--error-exitcode=1). Leaks are not errors here: the
# plugin's image stays mapped by design (-z nodelete) and its statics live for the process.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
cargo build --quiet -p fluent-bit-datadog -p conformance-host -p mock-intake
key=valgrind-key-0123456789abcdef01
mock_out=$(mktemp)
target/debug/mock_intake --addr 127.0.0.1:0 --quiet --api-key "$key" >"$mock_out" 2>/dev/null &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null || true; rm -f "$mock_out"' EXIT
for _ in $(seq 50); do grep -q listening "$mock_out" && break; sleep 0.1; done
url=$(sed -n 's/^mock_intake listening on //p' "$mock_out" | head -1)
curl -s -XPOST "$url/mock/rules" -d '{"rules":[{"status":500,"times":1}]}' >/dev/null
scenario=$(cat <<JSON
{"instances":[
   {"options":{"apikey":"$key","endpoint":"$url","provider":"ecs","dd_tags":"env:ci"}},
   {"options":{"apikey":"$key","endpoint":"$url","compress":"none","include_tag_key":"on"}}],
 "flushes":[
   {"instance":0,"fixture":"fb-1.9.10-forward.msgpack","retries":2,"retry_pause_ms":10},
   {"instance":0,"fixture":"fb-4.2.8-forward-1.msgpack"},
   {"instance":1,"fixture":"fb-4.2.8-forward-2.msgpack"},
   {"instance":1,"fixture":"fb-4.2.8-otlp-groups.msgpack","repeat":4,"threads":2},
   {"instance":0,"generate":{"records":3000,"per_chunk":1000},"threads":2}],
 "exit":"ctx"}
JSON
)
echo "$scenario" | FLB_DATADOG_SO=target/debug/libfluent_bit_datadog.so \
  valgrind --error-exitcode=1 --leak-check=no --track-origins=yes --quiet \
  target/debug/conformance_host - > /tmp/valgrind-report.json
python3 - "$url" <<'PY'
import json, sys, urllib.request
r = json.load(open("/tmp/valgrind-report.json"))
codes = [c[-1] for f in r["flushes"] for c in f["codes"]]
got = json.load(urllib.request.urlopen(sys.argv[1] + "/mock/received"))
print("valgrind memcheck: no errors; init %s, final flush codes %s, objects received %d"
      % (r["init"], codes, len(got["objects"])))
assert r["init"] == [1, 1] and all(c == 1 for c in codes), "unexpected codes"
assert len(got["objects"]) == 2008 + 143 + 1865 + 4 + 3000, len(got["objects"])
PY
