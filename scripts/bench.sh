#!/usr/bin/env bash
# End-to-end benchmark: N FireLens-shaped records (generated, about 700 bytes of JSON each)
# through the conformance host (release build) into the mock intake, with Workers 1 and 2
# (one or two host threads flushing at once). Prints, from the operating system's
# accounting (getrusage), the CPU seconds and peak RSS of the host process, minus a dry run
# that makes the same chunks without flushing them, so the figures are the plugin's own.
#   scripts/bench.sh [records]      (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-200000}
cargo build --release --quiet -p fluent-bit-datadog -p conformance-host -p mock-intake
mock_out=$(mktemp)
target/release/mock_intake --addr 127.0.0.1:0 --quiet >"$mock_out" 2>/dev/null &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null || true; rm -f "$mock_out"' EXIT
for _ in $(seq 50); do grep -q listening "$mock_out" && break; sleep 0.1; done
url=$(sed -n 's/^mock_intake listening on //p' "$mock_out" | head -1)

run() { # threads dry level
  curl -s -XPOST "$url/mock/reset" >/dev/null
  echo "{\"instances\":[{\"options\":{\"apikey\":\"bench-key-0123456789abcdef\",\"endpoint\":\"$url\",
         \"provider\":\"ecs\",\"dd_service\":\"bench\",\"compression_level\":\"$3\"}}],
         \"flushes\":[{\"instance\":0,\"generate\":{\"records\":$records,\"per_chunk\":2000},
                      \"threads\":$1,\"dry_run\":$2}],\"exit\":\"ctx\"}" |
    FLB_DATADOG_SO=target/release/libfluent_bit_datadog.so FLUENT_BIT_DATADOG_LOG_LEVEL=error \
    target/release/conformance_host -
}

printf '%s records of ~700 B JSON, gzip, chunks of 2000, into the mock intake on loopback\n\n' "$records"
printf '| Workers | level | plugin CPU s | plugin µs/record | wall s | peak RSS MiB | RSS over dry run MiB |\n'
printf '|---|---|---|---|---|---|---|\n'
for level in 3 6; do
  for threads in 1 2; do
    dry=$(run "$threads" true "$level")
    real=$(run "$threads" false "$level")
    python3 - "$records" "$threads" "$level" "$dry" "$real" <<'PY'
import json, sys
records, threads, level = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dry, real = json.loads(sys.argv[4]), json.loads(sys.argv[5])
cpu = lambda r: r["rusage"]["user_s"] + r["rusage"]["sys_s"]
codes = [c[-1] for c in real["flushes"][0]["codes"]]
assert all(c == 1 for c in codes), codes
plugin = cpu(real) - cpu(dry)
rss, rss_dry = real["rusage"]["max_rss_kb"] / 1024, dry["rusage"]["max_rss_kb"] / 1024
print(f"| {threads} | {level} | {plugin:.2f} | {plugin * 1e6 / records:.2f} | "
      f"{real['flushes'][0]['seconds']:.2f} | {rss:.1f} | {rss - rss_dry:.1f} |")
PY
  done
done

# Parallel requests within one flush: chunks of 7000 records (7 requests) against an intake
# that takes 50 ms to answer, as a distant region would.
printf '\nmax_concurrency: 10 chunks of 7 requests each, intake answering in 50 ms\n\n'
printf '| max_concurrency | wall s per chunk | plugin CPU s |\n|---|---|---|\n'
for conc in 1 2 4 8; do
  curl -s -XPOST "$url/mock/reset" >/dev/null
  curl -s -XPOST "$url/mock/rules" -d '{"rules":[{"delay_ms":50}]}' >/dev/null
  out=$(echo "{\"instances\":[{\"options\":{\"apikey\":\"bench-key-0123456789abcdef\",\"endpoint\":\"$url\",
         \"max_concurrency\":\"$conc\"}}],
         \"flushes\":[{\"instance\":0,\"generate\":{\"records\":70000,\"per_chunk\":7000}}],\"exit\":\"ctx\"}" |
    FLB_DATADOG_SO=target/release/libfluent_bit_datadog.so FLUENT_BIT_DATADOG_LOG_LEVEL=error \
    target/release/conformance_host -)
  python3 -c '
import json, sys
r = json.loads(sys.argv[2]); f = r["flushes"][0]
assert all(c[-1] == 1 for c in f["codes"])
print("| %s | %.3f | %.2f |" % (sys.argv[1], f["seconds"] / f["chunks"], r["rusage"]["user_s"] + r["rusage"]["sys_s"]))
' "$conc" "$out"
done
