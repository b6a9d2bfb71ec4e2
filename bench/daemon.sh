#!/usr/bin/env bash
# Measures the daemon on this machine:
#   - `cloudspeak pool list` wall time against a running daemon (target < 20 ms)
#   - the idle daemon's RSS and CPU with 10 pools (targets < 40 MB, < 1 %)
# Usage: bench/daemon.sh [SECONDS]   (how long to sample the idle daemon; default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/cloudspeak" ./cmd/cloudspeak
cs="$work/cloudspeak"

# Ten pools of two instances each: real processes that do nothing.
for i in $(seq 0 9); do
  printf 'pool p%d {\n  provider local { run "exec sleep 3600" }\n  instances 2..4\n  when load > 0.9 for 1m add instance\n  when load < 0.1 for 5m remove instance\n}\n' "$i"
done > "$work/ten.cloud"
"$cs" run --state "$work/state" --listen "" "$work/ten.cloud" 2>"$work/daemon.log" &
pid=$!
for _ in $(seq 1 100); do
  [ "$("$cs" --state "$work/state" pool list p9 2>/dev/null | grep -c INSTANCE)" = 2 ] && break
  sleep 0.1
done

echo "machine: $(nproc) cores, $(uname -r), $(go version | cut -d' ' -f3)"
echo
echo "== cloudspeak pool list against a running daemon (200 runs)"
start=$(date +%s%N)
for _ in $(seq 1 200); do "$cs" --state "$work/state" pool list >/dev/null; done
end=$(date +%s%N)
echo "mean wall time: $(( (end - start) / 200 / 1000 )) µs per run"

echo
echo "== the idle daemon with 10 pools (20 instances), sampled for ${secs}s"
hz=$(getconf CLK_TCK)
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
sleep "$secs"
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
echo "RSS: $((rss / 1024)) MB"
awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$secs" 'BEGIN { printf "CPU: %.2f %% of one core\n", (b - a) / hz / s * 100 }'
