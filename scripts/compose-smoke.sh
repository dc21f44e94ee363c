#!/usr/bin/env bash
# Smoke test of the image build, for a machine with a Docker engine and Compose v2:
#
#   scripts/compose-smoke.sh
#
# Builds and starts docker-compose.yml detached (log generator -> Fluent Bit with the plugin
# -> the mock intake), waits until the mock intake has accepted the generator's logs, checks
# how many arrived and how they look, and tears the stack down again, whatever happened.
# Exits 0 only when every check passed; otherwise prints what fell short and the stack's last
# log lines, and exits 1 (2 when a tool it needs is missing).
#
# The stack always ships to the mock intake, with a dummy API key: DD_ENDPOINT, DD_API_KEY and
# DD_SITE from the caller's environment are overridden, so nothing reaches Datadog.
#
# Environment:
#   SMOKE_TIMEOUT=120     seconds to wait for the logs (bounded; polled every 3 s)
#   SMOKE_MIN_LOGS=6      logs the intake must have accepted (the generator writes 2 a second)
#   SMOKE_PROJECT=fluent-bit-datadog-smoke   compose project name (keeps a stack of your own
#                         apart; the published ports 24224 and 2020 must be free)
#   SMOKE_KEEP=1          leave the stack running after the checks
#   AWS_FOR_FLUENT_BIT_TAG   the aws-for-fluent-bit tag to build on, as for docker compose
#
# Needs: docker (with `docker compose`), python3 (to read the intake's JSON).
set -euo pipefail
cd "$(dirname "$0")/.."

timeout_s="${SMOKE_TIMEOUT:-120}"
min_logs="${SMOKE_MIN_LOGS:-6}"
project="${SMOKE_PROJECT:-fluent-bit-datadog-smoke}"

# What docker-compose.yml and fluent-bit.conf promise about the generator's logs.
want_service="loggen"
want_source="firelens-local"
want_tags="env:local team:platform cluster_name:local-cluster task_family:loggen task_version:1 region:ap-northeast-1"

say() { printf 'compose-smoke: %s\n' "$*"; }
die() { printf 'compose-smoke: FAIL: %s\n' "$*" >&2; exit 1; }

for tool in docker python3; do
  command -v "$tool" >/dev/null || { say "needs $tool on PATH" >&2; exit 2; }
done
docker compose version >/dev/null 2>&1 || { say "needs Docker Compose v2 (docker compose)" >&2; exit 2; }
case "$timeout_s$min_logs" in
  *[!0-9]*) say "SMOKE_TIMEOUT and SMOKE_MIN_LOGS must be whole numbers" >&2; exit 2 ;;
esac

export DD_ENDPOINT="http://intake:8080"
export DD_API_KEY="0123456789abcdef0123456789abcdef"
export DD_SITE=""

compose() { docker compose -p "$project" -f docker-compose.yml "$@"; }

answer_file=""
teardown() {
  local rc=$?
  [ -n "$answer_file" ] && rm -f "$answer_file"
  if [ "$rc" -ne 0 ]; then
    say "last log lines of the stack:" >&2
    compose logs --no-color --tail 40 log-router intake 1>&2 || true
  fi
  if [ "${SMOKE_KEEP:-}" = 1 ]; then
    say "SMOKE_KEEP=1: leaving project $project running (docker compose -p $project down -v)"
  else
    say "tearing down"
    compose down -v --remove-orphans >/dev/null 2>&1 || say "docker compose down failed" >&2
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

say "building and starting the stack (project $project)"
compose up --build -d || die "docker compose up --build -d failed"

# The intake's port is not published; ask its control API from inside its container, as its
# health check does (debian-slim has bash and coreutils but no curl). Bounded by timeout(1).
received() {
  compose exec -T intake timeout 10 bash -c \
    'exec 3<>/dev/tcp/127.0.0.1/8080 && printf "GET /mock/received HTTP/1.0\r\nConnection: close\r\n\r\n" >&3 && cat <&3'
}

# Reads the HTTP answer of GET /mock/received from the file $2. `count` prints how many logs
# the intake accepted (0 when the answer is not there yet); `check` checks each of them.
inspect() {
  python3 - "$@" <<'PY'
import json, re, sys

mode, path = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    body = f.read().partition(b"\r\n\r\n")[2]
try:
    received = json.loads(body)
    objects = received["objects"]
except (ValueError, KeyError, TypeError):
    received, objects = {}, None
if mode == "count":
    print(len(objects) if isinstance(objects, list) else 0)
    sys.exit(0)

service, source, tags = sys.argv[3], sys.argv[4], sys.argv[5].split()
problems = []
if not isinstance(objects, list):
    problems.append("the mock intake's /mock/received answer has no list of objects")
    objects = []
refused = {s: n for s, n in (received.get("statuses") or {}).items() if not s.startswith("2")}
if refused:
    problems.append(f"the intake refused requests (HTTP status: count): {refused}")
plain = json_lines = 0
for i, o in enumerate(objects):
    where = f"log {i}"
    if not isinstance(o, dict):
        problems.append(f"{where} is not a JSON object: {o!r}")
        continue
    if o.get("service") != service:
        problems.append(f"{where}: service is {o.get('service')!r}, not {service!r}")
    if o.get("ddsource") != source:
        problems.append(f"{where}: ddsource is {o.get('ddsource')!r}, not {source!r}")
    have = set(str(o.get("ddtags", "")).split(","))
    missing = [t for t in tags if t not in have]
    if missing:
        problems.append(f"{where}: ddtags {o.get('ddtags')!r} lacks {missing}")
    if not any(t.startswith("container_name:") for t in have):
        problems.append(f"{where}: ddtags has no container_name tag (from the fluentd log driver)")
    if not isinstance(o.get("timestamp"), int):
        problems.append(f"{where}: no integer timestamp")
    left = [k for k in ("log", "ecs_cluster", "ecs_task_arn", "ecs_task_definition") if k in o]
    if left:
        problems.append(f"{where}: still has attributes the plugin moves elsewhere: {left}")
    message = o.get("message")
    if not isinstance(message, str):
        problems.append(f"{where}: no message")
    elif re.fullmatch(r"loggen: (plain line \d+|warning \d+ on stderr)", message):
        plain += 1
    elif message.startswith("{") and '"msg":"loggen json line"' in message:
        json_lines += 1
    else:
        problems.append(f"{where}: message {message[:120]!r} is not a line of docker/loggen.sh")
if objects and (plain == 0 or json_lines == 0):
    problems.append(f"expected both kinds of generator line, got {plain} plain and {json_lines} JSON")
for p in problems[:20]:
    print("compose-smoke: FAIL: " + p, file=sys.stderr)
if len(problems) > 20:
    print(f"compose-smoke: FAIL: ... and {len(problems) - 20} more", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"compose-smoke: {len(objects)} log(s) checked: service, ddsource, ddtags, timestamp and "
      f"message as expected ({plain} plain lines, {json_lines} JSON lines)")
PY
}

answer_file=$(mktemp)

say "waiting up to ${timeout_s}s for at least $min_logs logs at the mock intake"
deadline=$((SECONDS + timeout_s))
while :; do
  received >"$answer_file" 2>/dev/null || : >"$answer_file"
  got=$(inspect count "$answer_file")
  [ "$got" -ge "$min_logs" ] && break
  [ "$SECONDS" -ge "$deadline" ] && die "the mock intake accepted $got log(s) in ${timeout_s}s, fewer than $min_logs"
  sleep 3
done
say "the mock intake accepted $got log(s)"

inspect check "$answer_file" "$want_service" "$want_source" "$want_tags" \
  || die "the logs at the mock intake are not what docker/loggen.sh sent through the plugin"

say "OK"
