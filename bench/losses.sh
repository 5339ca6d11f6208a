#!/bin/sh
# bench/losses.sh [ROUNDS] [ITERS] [THREADS] [B] -- time of the whole ACQ
# generator objective, eq. (15), forward + backward, on 2 x B samples
# (default 2 x 32 = 64) of 32x32x3 through ResNet-20: acq (bench/losses.lua)
# and the same computation in plain PyTorch (bench/losses.py, via
# bench/acq_torch.py), interleaved ROUNDS times in one run, on the same
# weights and inputs. Each round reports the median of ITERS iterations after
# 2 warm-up iterations; the summary gives the median, min and max over rounds
# and checks that both computed the same objective.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
rounds=${1:-5}
iters=${2:-10}
threads=${3:-1}
batch=${4:-32}
acqlua=${ACQLUA:-$root/build/bin/acqlua}
py=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$acqlua" "$here/losses.lua" --prepare "$dir/in.safetensors" "$batch"
i=0
while [ "$i" -lt "$rounds" ]; do
  "$acqlua" "$here/losses.lua" "$dir/in.safetensors" "$iters" 2 "$threads" >> "$dir/out"
  "$py" "$here/losses.py" "$dir/in.safetensors" "$iters" 2 "$threads" >> "$dir/out"
  i=$((i + 1))
done
BENCH_FILE="$dir/out" BENCH_DESC="$batch per group, $threads thread(s), $iters iterations per round" "$acqlua" -e '
local f = assert(io.open(os.getenv("BENCH_FILE")))
local v, L, g = { acq = {}, pytorch = {} }, {}, {}
for line in f:lines() do
  local k, l, ms, gs = line:match("(%S+) (%S+) (%S+) (%S+)")
  table.insert(v[k], tonumber(ms)); L[k] = tonumber(l); g[k] = tonumber(gs)
end
local function stats(t) table.sort(t); return t[(#t + 1) // 2], t[1], t[#t] end
local am, amin, amax = stats(v.acq)
local pm, pmin, pmax = stats(v.pytorch)
print(("G objective eq. (15), forward + backward, %s, ms (median of %d rounds [min, max]):")
  :format(os.getenv("BENCH_DESC"), #v.acq))
print(("  acq      %8.1f  [%.1f, %.1f]"):format(am, amin, amax))
print(("  PyTorch  %8.1f  [%.1f, %.1f]"):format(pm, pmin, pmax))
print(("  ratio acq / PyTorch: %.2f"):format(am / pm))
local dl = math.abs(L.acq - L.pytorch) / math.abs(L.pytorch)
local dg = math.abs(g.acq - g.pytorch) / math.abs(g.pytorch)
print(("  same objective: L %.6g vs %.6g (rel. diff %.1e), sum |dL/dx1| rel. diff %.1e"):format(L.acq, L.pytorch, dl, dg))
if dl > 1e-4 or dg > 1e-3 then print("  MISMATCH"); os.exit(1) end
'
