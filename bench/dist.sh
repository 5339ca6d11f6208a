#!/usr/bin/env bash
# bench/dist.sh -- scaling across processes on one machine: ACQ's
# Fashion-MNIST recipe at the same global batch as 1 process x 2 threads and
# as 2 processes x 1 thread (acq.dist, Gloo on loopback, bench/launch.sh;
# BN statistics per rank, and synchronised with --sync-stats),
# time per iteration (median of rank 0's sec_per_iter after the warm-up
# and the first Q steps), written to bench/dist.md.
#
#   bench/dist.sh [ITERS=40] [BATCH=32]     BATCH: samples per group, in all
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-40}; BATCH=${2:-32}
ACQLUA=${ACQLUA:-build/bin/acqlua}
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
W=runs/fp/resnet20_fashion_e2_s0.safetensors
if [ ! -f "$W" ]; then
  W=$ROOT/random.safetensors
  "$ACQLUA" -e "local acq = require 'acq'; acq.manual_seed(1)
    acq.models.save_weights(acq.models.resnet20 { classes = 10, in_channels = 1 }, '$W')"
fi
common="recipes/fashion.lua --weights $W --iters $ITERS --warmup 5 --log-every 1 --eval-every 0 --sample-every 100000 --ckpt-every 100000"
"$ACQLUA" $common --batch "$BATCH" --threads 2 --out "$ROOT/one" > "$ROOT/one.log" 2>&1
bench/launch.sh -n 2 $common --batch $((BATCH / 2)) --threads 1 --out "$ROOT/two" > "$ROOT/two.log" 2>&1
bench/launch.sh -n 2 $common --batch $((BATCH / 2)) --threads 1 --sync-stats --out "$ROOT/sync" > "$ROOT/sync.log" 2>&1
"$ACQLUA" - "$ROOT" "$BATCH" "$ITERS" > bench/dist.md <<'LUA'
local acq = require "acq"
local root, B, iters = ...
local function median(dir)
  local v = {}
  for line in io.lines(dir .. "/metrics.jsonl") do
    local r = acq.json.decode(line)
    if r.iter > 10 and r.sec_per_iter then v[#v + 1] = r.sec_per_iter end
  end
  table.sort(v)
  return v[(#v + 1) // 2], #v
end
local t1, n1 = median(root .. "/one")
local t2, n2 = median(root .. "/two")
local t3 = median(root .. "/sync")
print(("Fashion-MNIST ACQ (recipes/fashion.lua), global batch %s per group (two groups), %s iterations, "
  .. "median of %d/%d iterations after the 10th, %s, %s\n"):format(B, iters, n1, n2, os.date("!%Y-%m-%d"),
  acq.torch_version and ("libtorch " .. acq.torch_version()) or ""))
print("| layout | batch per process | s / iteration | speed-up |")
print("|---|---:|---:|---:|")
print(("| 1 process x 2 threads | %s | %.3f | 1.00 |"):format(B, t1))
print(("| 2 processes x 1 thread (Gloo), BN statistics per rank | %d | %.3f | %.2f |"):format(tonumber(B) // 2, t2, t1 / t2))
print(("| 2 processes x 1 thread (Gloo), --sync-stats | %d | %.3f | %.2f |"):format(tonumber(B) // 2, t3, t1 / t3))
LUA
cat bench/dist.md
