#!/usr/bin/env bash
# `cloudspeak pool list` against Debian's `aws ec2 describe-instances`, on
# the same EC2-compatible test server (internal/ec2test) holding the same
# instances: a daemon runs an ec2 pool of N instances (default 10) on it,
# then each command is run RUNS times (default 30), one after another, and
# min/median/max wall times are printed side by side with their ratio.
#
# Usage: bench/ec2.sh [RUNS] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/timing.sh
RUNS=${1:-30} N=${2:-10}
AWS=/usr/bin/aws
[ -x $AWS ] || { echo "bench/ec2.sh: Debian's awscli is not installed (apt-get install awscli)" >&2; exit 1; }
W=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
go build -o "$W/cloudspeak" ./cmd/cloudspeak
go build -o "$W/ec2test-server" ./internal/ec2test/ec2test-server
echo "machine: $(nproc) cores, $(uname -r), $(go version | cut -d' ' -f3), $($AWS --version | cut -d' ' -f1)"

"$W/ec2test-server" -listen 127.0.0.1:0 -boot 100ms >"$W/server.out" 2>"$W/server.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$W/server.out" ] && break; sleep 0.05; done
URL=$(head -1 "$W/server.out")
export HOME=$W AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=benchsecret AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_PAGER=""
cat >"$W/web.cloud" <<POLICY
pool web {
  provider ec2 {
    image "ami-12345678"
    type "t3.micro"
    endpoint "$URL"
  }
  instances $N
}
POLICY
export CLOUDSPEAK_STATE=$W/state
"$W/cloudspeak" run --listen '' "$W/web.cloud" 2>"$W/daemon.log" &
pids+=($!)
wait_pool "$W/cloudspeak" web "$N" "$W/daemon.log"
[ "$($AWS --endpoint-url "$URL" ec2 describe-instances --filters Name=tag:cloudspeak:pool,Values=web Name=instance-state-name,Values=running --query 'length(Reservations[].Instances[])')" = "$N" ] ||
  { echo "aws sees another number of instances" >&2; exit 1; }

echo "$N running instances, $RUNS runs each:"
printf '  %-58s %s\n' "cloudspeak pool list" "$(runs "$RUNS" "$W/cloudspeak" pool list web)"
printf '  %-58s %s\n' "aws ec2 describe-instances --filters tag:cloudspeak:pool" "$(runs "$RUNS" $AWS --endpoint-url "$URL" ec2 describe-instances --filters Name=tag:cloudspeak:pool,Values=web)"
cs=$(median_ms "$RUNS" "$W/cloudspeak" pool list web)
aws=$(median_ms "$RUNS" $AWS --endpoint-url "$URL" ec2 describe-instances --filters Name=tag:cloudspeak:pool,Values=web)
awk -v c="$cs" -v a="$aws" 'BEGIN { printf "  ratio of medians (second pass): cloudspeak %.1f ms / aws %.1f ms = 1/%.0f\n", c, a, a / c }'
