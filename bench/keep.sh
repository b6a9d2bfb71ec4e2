#!/usr/bin/env bash
# Measures target tracking (keep) on this machine, on the virtual clock:
#   1. demand oscillating around the target: scale-ins per down window and
#      flip-flops (an instance removed and added back within the window);
#   2. a flash crowd at 5x the target: how many checks the pool takes to
#      reach the size that brings the metric under target;
#   3. the engine's cost per check at 100, 1,000 and 10,000 instances
#      (go test -bench BenchmarkCheck), target < 10 ms at 10,000.
# Usage: bench/keep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/cloudspeak" ./cmd/cloudspeak
cs="$work/cloudspeak"
start=2026-01-05T00:00:00Z

echo "== 1. oscillating demand (examples/traces/oscillating-demand.csv, examples/shop-keep.cloud's web)"
"$cs" simulate --trace examples/traces/oscillating-demand.csv --start "$start" examples/shop-keep.cloud |
  awk '$2 == "web" && ($3 == "add" || $3 == "remove") {
         split(substr($1, 2), hms, ":"); t = hms[1]*3600 + hms[2]*60 + hms[3]
         n[$3]++
         if ($3 == "remove") { if (lastrm != "" && t - lastrm < 300) close2++; lastrm = t; if (t < 3600) fast++ }
         if ($3 == "add" && lastact == "remove" && t - lastt < 300) flip++
         lastact = $3; lastt = t
       }
       END { printf "adds %d, removes %d (in the hour of 90 s flips: %d), removes closer than the 5m window: %d, flip-flops within it: %d\n",
             n["add"], n["remove"], fast, close2, flip }'

echo "== 2. a flash crowd at 5x the target (keep requests at 100/s per instance, check every 15s, boot 30s)"
printf 'pool web {\n  provider local { run "./web" }\n  balancer haproxy { listen "127.0.0.1:8080" }\n  instances 2..40\n  check every 15s\n  keep requests at 100/s per instance\n}\n' > "$work/flash.cloud"
# 2 instances at their target (200/s), then five times the target: 1000/s.
printf 't,sum(web.requests)\n0,200\n600,1000\n1800,1000\n' > "$work/flash.csv"
"$cs" simulate --trace "$work/flash.csv" --start "$start" --boot 30s "$work/flash.cloud" |
  awk '$2 == "web" && $3 == "add" { gsub(/  +/, " "); print "  " $0; adds++ }
       END { printf "the crowd arrives at +00:10:00; adds to reach the size: %d\n", adds }'

echo "== 3. one check of a fleet"
go test ./runtime -run '^$' -bench BenchmarkCheck -benchmem | grep -E '^Benchmark|^cpu'
