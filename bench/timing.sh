# Shared by the bench/ scripts (source it): timing of commands run one
# after another, in milliseconds, and waiting for a daemon's pool.

# runs N CMD...: runs CMD N times (output discarded; a failure stops the
# script) and prints "min MS median MS max MS".
runs() {
  local n=$1; shift
  local times=() t0 t1
  for ((i = 0; i < n; i++)); do
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2; return 1; }
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END {
    med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "min %.1f ms  median %.1f ms  max %.1f ms\n", v[1] / 1000, med / 1000, v[NR] / 1000 }'
}

# median_ms N CMD...: the median of N runs of CMD, in ms (a number alone).
median_ms() {
  runs "$@" | awk '{ print $5 }'
}

# wait_pool CLOUDSPEAK POOL N LOG: waits up to 30s until `pool list POOL`
# shows N running instances; otherwise prints LOG (the daemon's) and fails.
wait_pool() {
  local cs=$1 pool=$2 n=$3 log=$4
  for _ in $(seq 300); do
    [ "$("$cs" pool list "$pool" 2>/dev/null | grep -c 'Z$')" = "$n" ] && return 0
    sleep 0.1
  done
  echo "pool $pool never had $n running instances" >&2
  cat "$log" >&2
  return 1
}
