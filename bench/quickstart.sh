#!/usr/bin/env bash
# Measures the README's quickstart under the README's load: the daemon on
# examples/local.cloud as written (cpu > 60% for 10s add instance), and
# `cloudspeak demo-load --for D '127.0.0.1:8000/work?ms=200'` through its
# balancer. Prints, every second, the pool's size and the cpu its rules see,
# then the peak cpu of one instance, when node1 was added and when it first
# answered, and the load's counts by instance. On a machine busy with other
# work the demo server gets less of it: run it on an idle one.
# Usage: bench/quickstart.sh [SECONDS]   (how long the load runs; default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -INT $pid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/cloudspeak" ./cmd/cloudspeak
cs="$work/cloudspeak"
export CLOUDSPEAK_STATE="$work/state"

# The balancer on a free port, so that a quickstart may run beside this.
port=${PORT:-$((18000 + $$ % 1000))}
"$cs" run --listen '' --balancer-listen "demo=127.0.0.1:$port" examples/local.cloud 2>"$work/daemon.log" &
pid=$!
for _ in $(seq 1 100); do
  "$cs" pool list 2>/dev/null | grep -q 'node0' && curl -sf "127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.2
done

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"
"$cs" demo-load --for "${secs}s" "127.0.0.1:$port/work?ms=200" >"$work/load.out" &
load=$!
start=$(date +%s)
peak=0
while kill -0 $load 2>/dev/null; do
  sleep 1
  line=$("$cs" explain demo 2>/dev/null | sed -n '1p;3p' | tr -s ' ' | tr '\n' ' ')
  cpu=$(echo "$line" | sed -n 's/.*cpu=\([0-9.]*\)%.*/\1/p')
  echo "$(( $(date +%s) - start ))s  $line"
  if [ -n "$cpu" ] && awk -v a="$cpu" -v b="$peak" 'BEGIN { exit !(a > b) }'; then peak=$cpu; fi
done
echo
echo "peak cpu the rules saw: ${peak}%"
grep 'action=add' "$work/daemon.log" | cut -c1-220 || true
echo
cat "$work/load.out"
