#!/usr/bin/env bash
# bench/launch.sh -- N local processes of one acq run, for users without
# torchrun: each gets torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
# MASTER_ADDR, MASTER_PORT), so acq.dist joins them into one Gloo group.
#
#   bench/launch.sh -n 2 recipes/acq_cifar.lua --out runs/c2 --batch 16 --threads 1 ...
#
# Rank 0 prints to the terminal and writes the run folder; rank k's output
# goes to $TMPDIR/acq-launch-<port>/rank<k>.log (its errors too, and the
# first failing rank's last lines are printed). When one rank fails the
# others are stopped, and the exit status is the first failure's.
# MASTER_PORT picks the port (default: a random one in 20000-39999);
# ACQLUA the binary (default: build/bin/acqlua).
set -uo pipefail
N=2
if [ "${1:-}" = "-n" ]; then N=$2; shift 2; fi
if ! [[ "$N" =~ ^[1-9][0-9]*$ ]] || [ $# -lt 1 ]; then
  echo "usage: bench/launch.sh -n N RECIPE [options]" >&2; exit 2
fi
ACQLUA=${ACQLUA:-$(cd "$(dirname "$0")/.." && pwd)/build/bin/acqlua}
PORT=${MASTER_PORT:-$((20000 + RANDOM % 20000))}
LOGS=${TMPDIR:-/tmp}/acq-launch-$PORT
mkdir -p "$LOGS"
declare -A rank_of
pids=()
for ((r = 0; r < N; r++)); do
  if [ "$r" -eq 0 ]; then
    RANK=0 WORLD_SIZE=$N LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT "$ACQLUA" "$@" &
  else
    RANK=$r WORLD_SIZE=$N LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT "$ACQLUA" "$@" \
      > "$LOGS/rank$r.log" 2>&1 &
  fi
  pids+=($!)
  rank_of[$!]=$r
done
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM
status=0
while [ "${#rank_of[@]}" -gt 0 ]; do
  wait -n -p done_pid "${!rank_of[@]}"
  rc=$?
  r=${rank_of[$done_pid]:-?}
  unset "rank_of[$done_pid]"
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$rc
    echo "launch: rank $r exited with status $rc; stopping the others" >&2
    [ "$r" != 0 ] && [ -f "$LOGS/rank$r.log" ] && tail -n 5 "$LOGS/rank$r.log" >&2
    kill "${!rank_of[@]}" 2>/dev/null
  fi
done
exit "$status"
