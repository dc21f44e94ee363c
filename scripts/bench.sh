#!/usr/bin/env bash
# End-to-end benchmark: N FireLens-shaped records through the conformance host (release
# build) into the mock intake, with Workers 1 and 2 (one or two host threads flushing at once),
# for each codec at its useful levels, on two generated workloads: repetitive (one request
# shape with a counter, about 700 bytes of JSON each) and varied (application and access-log
# lines whose ids, addresses and latencies do not repeat, about 750 bytes each). Prints, from
# the operating system's accounting (getrusage), the CPU seconds and peak RSS of the host
# process, minus a dry run that makes the same chunks without flushing them, so the figures
# are the plugin's own; and from the mock intake, the bytes on the wire per record and
# relative to gzip level 6 of the same JSON, and the JSON's MB per second of plugin CPU.
#   scripts/bench.sh [records]      (default 200000)
# Each figure is the median of REPEAT runs (default 3), each with its own dry run; the RSS
# column also gives the range, which moves by a MiB or more from run to run (how many
# batches happen to be in flight at once, and which malloc arena serves them).
#   REPEAT=1 scripts/bench.sh 50000   a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-200000}
repeat=${REPEAT:-3}
bin=${CARGO_TARGET_DIR:-target}/release
cargo build --release --quiet -p fluent-bit-datadog -p conformance-host -p mock-intake
mock_out=$(mktemp)
"$bin"/mock_intake --addr 127.0.0.1:0 --quiet >"$mock_out" 2>/dev/null &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null || true; rm -f "$mock_out"' EXIT
for _ in $(seq 50); do grep -q listening "$mock_out" && break; sleep 0.1; done
url=$(sed -n 's/^mock_intake listening on //p' "$mock_out" | head -1)

run() { # threads dry codec level varied
  curl -s -XPOST "$url/mock/reset" >/dev/null
  echo "{\"instances\":[{\"options\":{\"apikey\":\"bench-key-0123456789abcdef\",\"endpoint\":\"$url\",
         \"provider\":\"ecs\",\"dd_service\":\"bench\",\"compress\":\"$3\",\"compression_level\":\"$4\"}}],
         \"flushes\":[{\"instance\":0,\"generate\":{\"records\":$records,\"per_chunk\":2000,\"varied\":$5},
                      \"threads\":$1,\"dry_run\":$2}],\"exit\":\"ctx\"}" |
    FLB_DATADOG_SO="$bin"/libfluent_bit_datadog.so FLUENT_BIT_DATADOG_LOG_LEVEL=error \
    "$bin"/conformance_host -
}

printf '%s records, chunks of 2000, into the mock intake on loopback; median of %s runs\n' "$records" "$repeat"
for varied in false true; do
  if [ "$varied" = true ]; then name="varied (~750 B JSON/record)"; else name="repetitive (~700 B JSON/record)"; fi
  printf '\n%s\n\n' "$name"
  printf '| codec | level | Workers | plugin CPU s | plugin µs/record | JSON MB/s of plugin CPU | wall s | peak RSS MiB | RSS over dry run MiB (range) | wire B/record | bytes vs gzip 6 |\n'
  printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
  gzip6=""
  # gzip 6 first: the reference for the last column.
  for codec_level in gzip:6 gzip:3 gzip:1 zstd:1 zstd:2 zstd:3 zstd:6; do
    codec=${codec_level%:*} level=${codec_level#*:}
    for threads in 1 2; do
      pairs=()
      for _ in $(seq "$repeat"); do
        dry=$(run "$threads" true "$codec" "$level" "$varied")
        real=$(run "$threads" false "$codec" "$level" "$varied")
        pairs+=("$dry" "$real")
      done
      read -r wire json_bytes < <(curl -s "$url/mock/received" | python3 -c 'import json,sys; l=json.load(sys.stdin)["log"]; print(sum(e["bytes_wire"] for e in l), sum(e["bytes_json"] for e in l))')
      [ -z "$gzip6" ] && gzip6=$wire
      python3 - "$records" "$threads" "$codec" "$level" "$wire" "$gzip6" "$json_bytes" "${pairs[@]}" <<'PY'
import json, statistics, sys
records, threads, codec, level = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
wire, gzip6, json_bytes = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
runs = [(json.loads(d), json.loads(r)) for d, r in zip(sys.argv[8::2], sys.argv[9::2])]
cpu = lambda r: r["rusage"]["user_s"] + r["rusage"]["sys_s"]
rss = lambda r: r["rusage"]["max_rss_kb"] / 1024
for _, real in runs:
    codes = [c[-1] for c in real["flushes"][0]["codes"]]
    assert all(c == 1 for c in codes), codes
med = statistics.median
plugin = med(cpu(real) - cpu(dry) for dry, real in runs)
wall = med(real["flushes"][0]["seconds"] for _, real in runs)
peak = med(rss(real) for _, real in runs)
over = sorted(rss(real) - rss(dry) for dry, real in runs)
spread = f" ({over[0]:.1f}-{over[-1]:.1f})" if len(over) > 1 else ""
print(f"| {codec} | {level} | {threads} | {plugin:.2f} | {plugin * 1e6 / records:.2f} | "
      f"{json_bytes / plugin / 1e6:.0f} | "
      f"{wall:.2f} | {peak:.1f} | {med(over):.1f}{spread} | "
      f"{wire / records:.1f} | {wire / gzip6:.2f} |")
PY
    done
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
    FLB_DATADOG_SO="$bin"/libfluent_bit_datadog.so FLUENT_BIT_DATADOG_LOG_LEVEL=error \
    "$bin"/conformance_host -)
  python3 -c '
import json, sys
r = json.loads(sys.argv[2]); f = r["flushes"][0]
assert all(c[-1] == 1 for c in f["codes"])
print("| %s | %.3f | %.2f |" % (sys.argv[1], f["seconds"] / f["chunks"], r["rusage"]["user_s"] + r["rusage"]["sys_s"]))
' "$conc" "$out"
done
