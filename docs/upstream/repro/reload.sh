#!/bin/bash
# usage: reload-repro.sh FLUENT_BIT CONF PLUGIN.so RELOADS [interval_s]
FB=$1; CONF=$2; SO=$3; N=${4:-20}; IV=${5:-3}
LOG=$(mktemp /tmp/repro.XXXX.log)
"$FB" -Y -e "$SO" -c "$CONF" > "$LOG" 2>&1 &
PID=$!
sleep 3
i=0
while [ $i -lt $N ]; do
  if ! kill -0 $PID 2>/dev/null; then break; fi
  kill -HUP $PID; i=$((i+1))
  sleep $IV
  th=$(awk '/^Threads/{print $2}' /proc/$PID/status 2>/dev/null); rss=$(awk '/^VmRSS/{print $2}' /proc/$PID/status 2>/dev/null)
  echo "reload $i threads=$th rss_kb=$rss"
done
sleep 2
if kill -0 $PID 2>/dev/null; then echo "ALIVE after $i reloads"; kill -TERM $PID; wait $PID; echo "exit=$?"; else wait $PID; echo "DIED exit=$? after $i reloads"; fi
echo "worker started lines: $(grep -c 'worker #0 started' $LOG)  SIGSEGV: $(grep -c SIGSEGV $LOG)"
grep -A8 SIGSEGV $LOG | head -12
echo "log: $LOG"
