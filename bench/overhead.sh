#!/bin/sh
# bench/overhead.sh [ROUNDS] [N] -- calls per second of a tiny op (add of two
# 1-element tensors) from acq (Lua) and PyTorch (Python), interleaved ROUNDS
# times in one run; prints the median, min and max of each and the ratio.
# Needs build/bin/acqlua and Debian's python3-torch.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
rounds=${1:-7}
n=${2:-200000}
acqlua=${ACQLUA:-$root/build/bin/acqlua}
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
i=0
while [ "$i" -lt "$rounds" ]; do
  "$acqlua" "$here/overhead.lua" "$n" >> "$tmp"
  "$py" "$here/overhead.py" "$n" >> "$tmp"
  i=$((i + 1))
done
BENCH_FILE="$tmp" "$acqlua" -e '
local f = assert(io.open(os.getenv("BENCH_FILE"))); local v = {acq = {}, pytorch = {}}
for line in f:lines() do local k, x = line:match("(%S+) (%S+)"); table.insert(v[k], tonumber(x)) end
local function stats(t) table.sort(t); return t[(#t + 1) // 2], t[1], t[#t] end
local am, amin, amax = stats(v.acq); local pm, pmin, pmax = stats(v.pytorch)
print(("tiny add, calls/s over %d rounds (median [min, max]):"):format(#v.acq))
print(("  acq (Lua)        %10.0f  [%.0f, %.0f]"):format(am, amin, amax))
print(("  PyTorch (Python) %10.0f  [%.0f, %.0f]"):format(pm, pmin, pmax))
print(("  ratio acq / PyTorch: %.2fx"):format(am / pm))
'
