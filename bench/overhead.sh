#!/bin/sh
# bench/overhead.sh [ROUNDS] [N] -- calls per second of a tiny op (add of two
# 1-element tensors) from acq (Lua), PyTorch (Python) and plain C through the
# shim, interleaved ROUNDS times in one run; prints the median, min and max of
# each and the ratios. Needs build/bin/{acqlua,overhead_floor} and Debian's
# python3-torch.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
rounds=${1:-7}
n=${2:-200000}
acqlua=${ACQLUA:-$root/build/bin/acqlua}
py=${PYTHON:-/usr/bin/python3}
floor=${FLOOR:-$root/build/bin/overhead_floor}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
i=0
while [ "$i" -lt "$rounds" ]; do
  "$acqlua" "$here/overhead.lua" "$n" >> "$tmp"
  "$py" "$here/overhead.py" "$n" >> "$tmp"
  "$floor" "$n" >> "$tmp"
  i=$((i + 1))
done
BENCH_FILE="$tmp" "$acqlua" -e '
local f = assert(io.open(os.getenv("BENCH_FILE"))); local v = {acq = {}, pytorch = {}, floor = {}}
for line in f:lines() do local k, x = line:match("(%S+) (%S+)"); table.insert(v[k], tonumber(x)) end
local function stats(t) table.sort(t); return t[(#t + 1) // 2], t[1], t[#t] end
local am, amin, amax = stats(v.acq); local pm, pmin, pmax = stats(v.pytorch)
local fm, fmin, fmax = stats(v.floor)
print(("tiny add, calls/s over %d rounds (median [min, max]):"):format(#v.acq))
print(("  acq (Lua)        %10.0f  [%.0f, %.0f]"):format(am, amin, amax))
print(("  PyTorch (Python) %10.0f  [%.0f, %.0f]"):format(pm, pmin, pmax))
print(("  C through the shim %10.0f  [%.0f, %.0f]   (no Lua: the floor of any binding)"):format(fm, fmin, fmax))
print(("  ratio acq / PyTorch: %.2fx   floor / PyTorch: %.2fx"):format(am / pm, fm / pm))
'
