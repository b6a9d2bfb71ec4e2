#!/usr/bin/env bash
# Measures the HAProxy balancer on this machine, against a real HAProxy:
# a steady load of RATE requests per second through a pool's frontend, first
# alone, then while instances are added, drained and removed (EVENTS scale
# events) and HAProxy is reloaded hitlessly (RELOADS times). Prints requests
# served and failed, and p50/p99 latency, without and with the events, side
# by side from one run (the machine is shared: compare within a run).
#
# Usage: bench/haproxy.sh [RATE [EVENTS [RELOADS [BASELINE_SECONDS]]]]
#        defaults: 600 requests/s, 100 events, 20 reloads, 10 s
# It runs TestZeroFailedRequests (builtins/haproxy) with those settings;
# the test fails if any request fails.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || { echo "bench/haproxy.sh: haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
echo "machine: $(nproc) cores, $(uname -r), $(go version | cut -d' ' -f3), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
LOAD_RATE=${1:-600} LOAD_SCALE_EVENTS=${2:-100} LOAD_RELOADS=${3:-20} LOAD_BASELINE_S=${4:-10} \
  go test -count=1 -run '^TestZeroFailedRequests$' -v ./builtins/haproxy |
  sed -n 's/^ *haproxy_test.go:[0-9]*: //p'
