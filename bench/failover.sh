#!/usr/bin/env bash
# Measures failover on this machine, with real local instances behind a
# real HAProxy, under 500 GET requests a second and with
# `heartbeat every 500ms timeout 1500ms`:
#   - kill -9 of a serving instance in a pool of 2 with `standby 1`: the
#     time from the kill to the standby's first answer through HAProxy;
#   - kill -9 of the primary of a `primary` pool with `standby 1`: the time
#     from the kill to the new primary's first answer on the pool's address;
# RUNS times each (default 20), printing min/median/max and the requests
# served and failed; then the SIGSTOP split-brain check. A failover over
# the 2s aimed at is said; the tests fail if a request fails, a standby
# never serves, or two primaries are ever in rotation.
#
# Usage: bench/failover.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || { echo "bench/failover.sh: haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
echo "machine: $(nproc) cores, $(uname -r), $(go version | cut -d' ' -f3), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
FAILOVER_RUNS=${1:-20} go test -count=1 -timeout 30m -run '^(TestFailoverKill|TestFailoverPrimary|TestPrimarySplitBrain)$' -v ./builtins/daemon |
  sed -n -e 's/^ *failover_test.go:[0-9]*: //p' -e '/^--- /p' -e '/^\(ok\|FAIL\)/p' | uniq
