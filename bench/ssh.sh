#!/usr/bin/env bash
# `cloudspeak instance cmd all "uptime"` against Debian's parallel-ssh
# (package pssh) on the same 20 real OpenSSH sshd on 127.0.0.1, with the
# same user key and known_hosts (host keys checked by both), 20 at once.
# The daemon runs a `provider ssh` pool of the 20 hosts; its SSH
# connections are made when the pool starts and reused, as in normal use,
# so the first run is as warm as the rest. Each command runs RUNS times
# (default 10), one after another; min/median/max are printed side by side.
#
# Both log in as BENCH_USER: by default (as root) a system user made for
# the benchmark, cloudspeak-bench, with no home and so no shell start-up
# files, as on a plain server. Every session runs the user's shell, and
# root's here sources a .bashrc (pyenv) that costs ~100ms of CPU per
# session; BENCH_USER=root measures that case, where the 2 cores spend
# most of the run starting 20 bashes for either tool.
#
# Usage: bench/ssh.sh [RUNS] [HOSTS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/timing.sh
RUNS=${1:-10} N=${2:-20}
command -v parallel-ssh >/dev/null || { echo "bench/ssh.sh: parallel-ssh is not installed (apt-get install pssh)" >&2; exit 1; }
[ -x /usr/sbin/sshd ] || { echo "bench/ssh.sh: sshd is not installed (apt-get install openssh-server)" >&2; exit 1; }
BENCH_USER=${BENCH_USER:-cloudspeak-bench}
if [ "$BENCH_USER" = cloudspeak-bench ] && ! id cloudspeak-bench >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "bench/ssh.sh: run as root (to make the user cloudspeak-bench), or set BENCH_USER" >&2; exit 1; }
  useradd --system --no-create-home --home-dir /nonexistent --shell /bin/bash cloudspeak-bench
  usermod -p '*' cloudspeak-bench # no password, but not locked: sshd refuses a locked account
fi
W=$(mktemp -d)
chmod 755 "$W" # the user's sshd session reads authorized_keys as that user
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
go build -o "$W/cloudspeak" ./cmd/cloudspeak
go build -o "$W/sshd-cluster" ./internal/sshdtest/sshd-cluster
echo "machine: $(nproc) cores, $(uname -r), $(go version | cut -d' ' -f3), $(/usr/sbin/sshd -V 2>&1 | cut -d, -f1), pssh $(dpkg-query -W -f '${Version}' pssh 2>/dev/null)"

mkdir "$W/c"
"$W/sshd-cluster" -n "$N" -dir "$W/c" >"$W/cluster.out" 2>&1 &
pids+=($!)
for _ in $(seq 200); do grep -q ready "$W/cluster.out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$W/cluster.out" || { cat "$W/cluster.out" >&2; exit 1; }
chmod 755 "$W/c"; chmod 644 "$W/c/authorized_keys"
cat >"$W/fleet.cloud" <<POLICY
pool fleet {
  provider ssh {
    hosts $(sed 's/.*/"&"/' "$W/c/hosts" | paste -sd, -)
    key "$W/c/user_ed25519"
    user "$BENCH_USER"
  }
  instances $N
}
POLICY
export CLOUDSPEAK_STATE=$W/state
"$W/cloudspeak" run --listen '' --known-hosts "$W/c/known_hosts" "$W/fleet.cloud" 2>"$W/daemon.log" &
pids+=($!)
wait_pool "$W/cloudspeak" fleet "$N" "$W/daemon.log"

PSSH=(parallel-ssh -h "$W/c/hosts" -l "$BENCH_USER" -p "$N" -t 30 -i
  -x "-i $W/c/user_ed25519 -o UserKnownHostsFile=$W/c/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes" uptime)
# Both must succeed on every host before they are timed.
[ "$("$W/cloudspeak" instance cmd all uptime | tail -1)" = "$N of $N instances: ok" ]
[ "$("${PSSH[@]}" | grep -c SUCCESS)" = "$N" ]

echo "uptime on $N hosts as $BENCH_USER, $RUNS runs each:"
printf '  %-32s %s\n' "cloudspeak instance cmd all" "$(runs "$RUNS" "$W/cloudspeak" instance cmd all uptime)"
printf '  %-32s %s\n' "parallel-ssh -p $N" "$(runs "$RUNS" "${PSSH[@]}")"
cs=$(median_ms "$RUNS" "$W/cloudspeak" instance cmd all uptime)
ps=$(median_ms "$RUNS" "${PSSH[@]}")
awk -v c="$cs" -v p="$ps" 'BEGIN { printf "  ratio of medians (second pass): cloudspeak %.1f ms / parallel-ssh %.1f ms = %.3f\n", c, p, c / p }'
