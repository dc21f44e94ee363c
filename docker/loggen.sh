#!/bin/sh
# Log generator for the docker compose `app` service (busybox sh). Writes, every
# LOGGEN_INTERVAL seconds, a plain line and a JSON line on stdout, and every fifth round a
# line on stderr. LOGGEN_COUNT rounds (0, the default: forever).
# In the first round and every LOGGEN_LONG_EVERY rounds (default 30; 0: never) it also writes one
# JSON line of about 40 KB: Docker's log driver splits it into 16 KB parts, which the multiline
# filter of fluent-bit.conf joins again, so the mock intake prints it as one log whose `message`
# is the whole JSON line.
interval="${LOGGEN_INTERVAL:-1}"
count="${LOGGEN_COUNT:-0}"
long_every="${LOGGEN_LONG_EVERY:-30}"
# 40 000 bytes of padding, made once.
pad="$(head -c 40000 /dev/zero | tr '\0' x)"
n=0
while [ "$count" -eq 0 ] || [ "$n" -lt "$count" ]; do
    n=$((n + 1))
    echo "loggen: plain line $n"
    printf '{"level":"info","msg":"loggen json line","seq":%d,"user":{"id":%d}}\n' "$n" "$((n % 7))"
    if [ "$long_every" -gt 0 ] && [ $(((n - 1) % long_every)) -eq 0 ]; then
        printf '{"level":"info","msg":"loggen long json line","seq":%d,"pad":"%s"}\n' "$n" "$pad"
    fi
    if [ $((n % 5)) -eq 0 ]; then
        echo "loggen: warning $n on stderr" >&2
    fi
    sleep "$interval"
done
