#!/usr/bin/env bash
# `cloudspeak sync` against Debian's `rclone sync` (1.60) and `aws s3 sync`
# (awscli 2.9), side by side in one run, on the same S3 server (versitygw,
# posix backend, internal/s3test/s3server on 127.0.0.1) and the same local
# data. Each tool syncs into its own buckets (cs-…, rc-…, aws-…). All three
# run with their defaults (cloudspeak too: -q only trims its output to the
# summary); none is tuned. Workloads:
#
#   N small files (default 10000, 1-8 KiB of random bytes, 100 directories),
#   every file backdated to a whole-second mtime in the past (awscli compares
#   the local mtime with the server's whole-second LastModified):
#     first upload         each tool into an empty bucket, a fresh bucket per
#                          run, RUNS_FIRST runs (default 3)
#     no-change resync     RUNS runs (default 5)
#     one changed file     before each run one file gets new random bytes (a
#                          new size) and a later (still past) mtime; all three
#                          tools then sync that same change; RUNS runs
#   one 1 GiB file of random bytes, uploaded into a fresh bucket per run,
#   RUNS_BIG runs (default 1); BIG=0 skips it
#
# Runs are interleaved (one of each tool per round) and the tool order
# rotates from round to round; the table shows medians, in seconds, and the
# ratios cloudspeak/rclone and cloudspeak/aws (below 1: cloudspeak faster).
# At the end it checks the buckets (object counts, the last changed file's
# size) and that cloudspeak's no-change runs copied nothing.
#
# Usage: [RUNS=5] [RUNS_FIRST=3] [RUNS_BIG=1] [BIG=1] [N=10000] bench/s3.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/timing.sh
RUNS=${RUNS:-5} RUNS_FIRST=${RUNS_FIRST:-3} RUNS_BIG=${RUNS_BIG:-1} BIG=${BIG:-1} N=${N:-10000}
AWS=/usr/bin/aws RCLONE=/usr/bin/rclone
[ -x $AWS ] || { echo "bench/s3.sh: Debian's awscli is not installed (apt-get install awscli)" >&2; exit 1; }
[ -x $RCLONE ] || { echo "bench/s3.sh: Debian's rclone is not installed (apt-get install rclone)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench/s3.sh: python3 is needed to generate the data" >&2; exit 1; }
W=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

# The data (N files, the 1 GiB file) and the server's copies of it (RUNS_FIRST
# buckets of N files per tool, up to 2 GiB per tool while versitygw joins a
# multipart upload) all live under $W.
need=$((1024 * 1024)) # KiB
[ "$BIG" = 0 ] || need=$((8 * 1024 * 1024))
avail=$(df -Pk "$W" | awk 'NR == 2 { print $4 }')
if [ "$avail" -lt "$need" ]; then
  echo "bench/s3.sh: $W has $((avail / 1024)) MiB free, the run needs about $((need / 1024)) MiB (BIG=0 needs less)" >&2
  exit 1
fi

go build -o "$W/cloudspeak" ./cmd/cloudspeak
go build -o "$W/s3server" ./internal/s3test/s3server
vgw=$(sed -n 's/^const Version = "\(.*\)"/\1/p' internal/s3test/s3test.go)
echo "machine: $(nproc) cores, $(uname -r), $(go version | cut -d' ' -f3), $($RCLONE --version | head -1), $($AWS --version | cut -d' ' -f1), versitygw $vgw; $((avail / 1024 / 1024)) GiB free on $W"

"$W/s3server" -dir "$W/srv" >"$W/server.out" 2>"$W/server.err" &
pids+=($!)
for _ in $(seq 300); do [ -s "$W/server.out" ] && [ -s "$W/srv/env" ] && break; sleep 0.1; done
[ -s "$W/server.out" ] || { echo "bench/s3.sh: the S3 server did not start" >&2; cat "$W/server.err" >&2; exit 1; }
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
. "$W/srv/env"
export HOME=$W AWS_PAGER="" CLOUDSPEAK_STATE=$W/state
: >"$W/rclone.conf"
export RCLONE_CONFIG=$W/rclone.conf RCLONE_CONFIG_VGW_TYPE=s3 RCLONE_CONFIG_VGW_PROVIDER=Other \
  RCLONE_CONFIG_VGW_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_VGW_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
  RCLONE_CONFIG_VGW_ENDPOINT=$S3_ENDPOINT RCLONE_CONFIG_VGW_FORCE_PATH_STYLE=true RCLONE_CONFIG_VGW_REGION=us-east-1

# The data: N files in 100 directories, then (unless BIG=0) the 1 GiB file.
SRC=$W/small BIGSRC=$W/big
python3 - "$SRC" "$N" <<'PY'
import os, random, sys
src, n = sys.argv[1], int(sys.argv[2])
per = max(1, -(-n // 100))  # files per directory, 100 directories
rnd = random.Random(1)
for i in range(n):
    d = os.path.join(src, "d%02d" % (i // per))
    if i % per == 0:
        os.makedirs(d)
    p = os.path.join(d, "f%05d.bin" % i)
    with open(p, "wb") as f:
        f.write(os.urandom(rnd.randint(1024, 8192)))
    os.utime(p, (1700000000 + i, 1700000000 + i))
PY
(cd "$SRC" && find . -type f | sed 's|^\./||' | sort) >"$W/files"
if [ "$BIG" != 0 ]; then
  mkdir "$BIGSRC"
  head -c $((1024 * 1024 * 1024)) /dev/urandom >"$BIGSRC/big.bin"
  touch -d @1700000000 "$BIGSRC/big.bin"
fi

# sync_TOOL SRC BUCKET: one sync of SRC to s3://BUCKET/data. cloudspeak's
# summary is kept in $W/cs.out (runs discards the output).
sync_cs() { "$W/cloudspeak" sync -q "$1" "s3://$2/data" >"$W/cs.out"; }
sync_rc() { env -u AWS_CA_BUNDLE $RCLONE sync "$1" "vgw:$2/data"; }
sync_aws() { $AWS --endpoint-url "$S3_ENDPOINT" s3 sync "$1" "s3://$2/data" --only-show-errors; }
mb() { $AWS --endpoint-url "$S3_ENDPOINT" s3 mb "s3://$1" >/dev/null; }
rb() { $AWS --endpoint-url "$S3_ENDPOINT" s3 rb --force "s3://$1" >/dev/null; }

tools=(cs rc aws)
declare -A S # S[workload,tool]: the samples in ms, space-separated
# order R: the three tools, rotated by R (round R starts with tools[R % 3]).
order() { echo "${tools[$(($1 % 3))]} ${tools[$((($1 + 1) % 3))]} ${tools[$((($1 + 2) % 3))]}"; }
# sample WORKLOAD TOOL SRC BUCKET: times one sync and records it.
sample() {
  local t
  t=$(median_ms 1 "sync_$2" "$3" "$4")
  S[$1,$2]+="$t "
  if [ "$2" = cs ]; then cat "$W/cs.out" >>"$W/cs-$1.log"; fi
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { echo "${S[$1,$2]}" | median; }

for ((r = 1; r <= RUNS_FIRST; r++)); do
  echo "first upload, run $r/$RUNS_FIRST" >&2
  for t in $(order "$r"); do mb "$t-small-$r"; sample first "$t" "$SRC" "$t-small-$r"; done
done
for ((r = 1; r <= RUNS; r++)); do
  echo "no-change resync, run $r/$RUNS" >&2
  for t in $(order "$r"); do sample nochange "$t" "$SRC" "$t-small-$RUNS_FIRST"; done
done
for ((r = 1; r <= RUNS; r++)); do
  echo "one changed file, run $r/$RUNS" >&2
  changed=$(sed -n "$(((r * 97) % N + 1))p" "$W/files")
  f=$SRC/$changed old=$(stat -c %s "$SRC/$changed")
  size=$((1024 + RANDOM % 7169))
  while [ "$size" = "$old" ]; do size=$((1024 + RANDOM % 7169)); done
  head -c "$size" /dev/urandom >"$f"
  touch -d "@$((1750000000 + r))" "$f" # later than every earlier mtime, still in the past
  for t in $(order "$r"); do sample change "$t" "$SRC" "$t-small-$RUNS_FIRST"; done
done
if [ "$BIG" != 0 ]; then
  for ((r = 1; r <= RUNS_BIG; r++)); do
    echo "1 GiB upload, run $r/$RUNS_BIG" >&2
    for t in $(order "$r"); do mb "$t-big-$r"; sample big "$t" "$BIGSRC" "$t-big-$r"; done
    for t in "${tools[@]}"; do rb "$t-big-$r"; done
  done
fi

row() { # row LABEL WORKLOAD
  awk -v l="$1" -v c="$(med "$2" cs)" -v r="$(med "$2" rc)" -v a="$(med "$2" aws)" \
    'BEGIN { printf "%-36s %9.2fs %9.2fs %9.2fs %9.2f %9.2f\n", l, c / 1000, r / 1000, a / 1000, c / r, c / a }'
}
echo
printf '%-36s %10s %10s %10s %9s %9s\n' workload cloudspeak rclone aws cs/rclone cs/aws
row "$N files, first upload (x$RUNS_FIRST)" first
row "$N files, no-change resync (x$RUNS)" nochange
row "$N files, one changed file (x$RUNS)" change
if [ "$BIG" != 0 ]; then row "1 GiB file, upload (x$RUNS_BIG)" big; else printf '%-36s %s\n' "1 GiB file, upload" "skipped (BIG=0)"; fi
echo "(medians; all tools with their default options; cloudspeak -q)"
echo "samples, in run order (s):"
for w in first nochange change big; do
  [ -n "${S[$w,cs]:-}" ] || continue
  for t in "${tools[@]}"; do printf '  %-9s %-4s %s\n' "$w" "$t" "$(echo "${S[$w,$t]}" | awk '{ for (k = 1; k <= NF; k++) printf "%.2f ", $k / 1000 }')"; done
done

echo
awk -v nc="$(med nochange cs)" -v na="$(med nochange aws)" -v fc="$(med first cs)" -v fr="$(med first rc)" 'BEGIN {
  print "targets: no-change resync <= 0.3x aws; first upload <= 0.8x rclone"
  printf "  no-change resync: cloudspeak/aws = %.2f: %s\n", nc / na, (nc / na <= 0.3) ? "met" : "NOT met"
  printf "  first upload: cloudspeak/rclone = %.2f: %s\n", fc / fr, (fc / fr <= 0.8) ? "met" : "NOT met" }'

echo
ok=1
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "  ok: $1 = $2"; else echo "  FAILED: $1 = $2, want $3"; ok=0; fi
}
echo "checks:"
size=$(stat -c %s "$SRC/$changed")
for t in "${tools[@]}"; do
  b=$t-small-$RUNS_FIRST
  check "objects in s3://$b/data" "$($AWS --endpoint-url "$S3_ENDPOINT" s3 ls --recursive --summarize "s3://$b/data/" | tail -2 | awk '/Total Objects/ { print $3 }')" "$N"
  check "size of s3://$b/data/$changed (changed last)" "$($AWS --endpoint-url "$S3_ENDPOINT" s3api head-object --bucket "$b" --key "data/$changed" --query ContentLength)" "$size"
done
check "cloudspeak first uploads reporting \"$N copied\"" "$(grep -c ": $N copied " "$W/cs-first.log" || true)" "$RUNS_FIRST"
check "cloudspeak no-change resyncs reporting \"0 copied\"" "$(grep -c ': 0 copied ' "$W/cs-nochange.log" || true)" "$RUNS"
check "cloudspeak one-changed-file syncs reporting \"1 copied\"" "$(grep -c ': 1 copied ' "$W/cs-change.log" || true)" "$RUNS"
echo "  cloudspeak's last no-change summary: $(tail -1 "$W/cs-nochange.log")"
[ "$ok" = 1 ] || exit 1
