#!/usr/bin/env bash
# Soak run: 1,000,000 FireLens-shaped records through the conformance host (release build,
# 2 concurrent flush threads as with `Workers 2`) into the mock intake, with retries
# injected (every 7th request answers 503). Prints resident memory after every 25 chunks
# of 2000 records and fails if memory keeps growing after warm-up: the peak of the second
# half of the run must stay within 10% (and 8 MiB) of the peak of the first half.
#   scripts/soak.sh [records]      (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
cargo build --release --quiet -p fluent-bit-datadog -p conformance-host -p mock-intake
mock_out=$(mktemp)
target/release/mock_intake --addr 127.0.0.1:0 --quiet --api-key soak-key-0123456789abcdef >"$mock_out" 2>/dev/null &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null || true; rm -f "$mock_out"' EXIT
for _ in $(seq 50); do grep -q listening "$mock_out" && break; sleep 0.1; done
url=$(sed -n 's/^mock_intake listening on //p' "$mock_out" | head -1)
# The mock keeps every object it accepts; reset it now and then so its memory stays small.
( while kill -0 $mock_pid 2>/dev/null; do sleep 2; curl -s -XPOST "$url/mock/reset" >/dev/null 2>&1 || true;
  curl -s -XPOST "$url/mock/rules" -d '{"rules":[{"status":503,"every":7}]}' >/dev/null 2>&1 || true; done ) &
curl -s -XPOST "$url/mock/rules" -d '{"rules":[{"status":503,"every":7}]}' >/dev/null
scenario=$(cat <<JSON
{"instances":[{"options":{"apikey":"soak-key-0123456789abcdef","endpoint":"$url","provider":"ecs","dd_service":"soak"}}],
 "flushes":[{"instance":0,"generate":{"records":$records,"per_chunk":2000,"v2":true},"threads":2,
             "retries":10,"retry_pause_ms":1,"rss_every":25}],
 "exit":"ctx"}
JSON
)
report=$(echo "$scenario" | FLB_DATADOG_SO=target/release/libfluent_bit_datadog.so \
  FLUENT_BIT_DATADOG_LOG_LEVEL=error target/release/conformance_host -)
echo "$report" | python3 -c '
import json, sys
r = json.load(sys.stdin)
f = r["flushes"][0]
codes = f["codes"]
final = [c[-1] for c in codes]
retried = sum(1 for c in codes if len(c) > 1)
ru = r["rusage"]
print("records %s, chunks %d, wall %.1f s, cpu %.1f s, chunks retried %d, final OK %d, peak RSS %d KiB"
      % (sys.argv[1], f["chunks"], f["seconds"], ru["user_s"] + ru["sys_s"], retried, final.count(1), ru["max_rss_kb"]))
samples = f["rss_kb"]
print("chunks  RSS KiB")
for done, kb in samples:
    print(f"{done:6d}  {kb}")
half = len(samples) // 2
first = max(kb for _, kb in samples[:half])
second = max(kb for _, kb in samples[half:])
print(f"peak RSS first half {first} KiB, second half {second} KiB")
ok = final.count(1) == len(final) and second <= max(first * 1.10, first + 8192)
print("memory flat after warm-up: " + ("yes" if ok else "NO"))
sys.exit(0 if ok else 1)
' "$records"
