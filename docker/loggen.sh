#!/bin/sh
# Log generator for the docker compose `app` service (busybox sh). Writes, every
# LOGGEN_INTERVAL seconds, a plain line and a JSON line on stdout, and every fifth round a
# line on stderr. LOGGEN_COUNT rounds (0, the default: forever).
interval="${LOGGEN_INTERVAL:-1}"
count="${LOGGEN_COUNT:-0}"
n=0
while [ "$count" -eq 0 ] || [ "$n" -lt "$count" ]; do
    n=$((n + 1))
    echo "loggen: plain line $n"
    printf '{"level":"info","msg":"loggen json line","seq":%d,"user":{"id":%d}}\n' "$n" "$((n % 7))"
    if [ $((n % 5)) -eq 0 ]; then
        echo "loggen: warning $n on stderr" >&2
    fi
    sleep "$interval"
done
