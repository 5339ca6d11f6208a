#!/bin/sh
# bench/scaling.sh [ROUNDS] [ITERS] [BATCHES] [THREADS] [CASE]
#   ACQ iteration time (bench/iteration.lua beside bench/iteration.py) at
#   each batch per group in BATCHES (default "8 16 32 64 128") and each
#   thread count in THREADS (default "1 2"), interleaved ROUNDS (3) times,
#   ITERS (3) timed iterations each after 2 untimed ones, for CASE
#   (acq:32x32x3). Prints a table and writes bench/scaling.png.
# bench/scaling.sh --smoke: batch 2, 1 and 2 threads, 1 round of 1 (CI).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
png=${SCALING_PNG:-$here/scaling.png}
if [ "${1:-}" = "--smoke" ]; then
  set -- 1 1 "2" "1 2"
  png=""
fi
rounds=${1:-3}
iters=${2:-3}
batches=${3:-"8 16 32 64 128"}
threads=${4:-"1 2"}
case=${5:-acq:32x32x3}
acqlua=${ACQLUA:-$root/build/bin/acqlua}
py=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for b in $batches; do
  "$acqlua" "$here/iteration.lua" --prepare "$dir/$b.st" "${case%%:*}" "${case#*:}" "$b"
done
i=0
while [ "$i" -lt "$rounds" ]; do
  for t in $threads; do
    for b in $batches; do
      "$acqlua" "$here/iteration.lua" "$dir/$b.st" "$iters" 2 "$t" >> "$dir/out"
      "$py" "$here/iteration.py" "$dir/$b.st" "$iters" 2 "$t" >> "$dir/out"
    done
  done
  i=$((i + 1))
done
"$acqlua" - "$dir/out" "$png" <<'LUA'
local acq = require "acq"
local path, png = ...
local v, batches, threads, seen = {}, {}, {}, {}
for line in io.lines(path) do
  local r = acq.json.decode(line)
  local k = r.side .. " " .. r.threads .. " " .. r.batch
  v[k] = v[k] or {}
  table.insert(v[k], r.ms)
  if not seen["b" .. r.batch] then seen["b" .. r.batch] = true; batches[#batches + 1] = r.batch end
  if not seen["t" .. r.threads] then seen["t" .. r.threads] = true; threads[#threads + 1] = r.threads end
end
table.sort(batches)
table.sort(threads)
local function med(k) local t = v[k]; table.sort(t); return t[(#t + 1) // 2] end
print(("ACQ iteration, ms (median of %d rounds) by samples per group (2 groups):\n"):format(#v[next(v)]))
print("| threads | per group | acq ms | PyTorch ms | acq / PyTorch | acq ms per sample |")
print("|---:|---:|---:|---:|---:|---:|")
local series = {}
for _, t in ipairs(threads) do
  local sa, sp = { name = ("acq, %d thread%s"):format(t, t > 1 and "s" or ""), pts = {} },
    { name = ("PyTorch, %d thread%s"):format(t, t > 1 and "s" or ""), pts = {} }
  for _, b in ipairs(batches) do
    local a, p = med("acq " .. t .. " " .. b), med("pytorch " .. t .. " " .. b)
    print(("| %d | %d | %.1f | %.1f | %.2f | %.2f |"):format(t, b, a, p, a / p, a / (2 * b)))
    sa.pts[#sa.pts + 1] = { b, a }
    sp.pts[#sp.pts + 1] = { b, p }
  end
  series[#series + 1] = sa
  series[#series + 1] = sp
end
if png ~= "" then
  -- one panel, ms per iteration against the batch, a line per side and thread count
  local c = acq.plot.canvas(720, 420)
  local colours = { { 31, 90, 180 }, { 200, 40, 40 }, { 120, 170, 240 }, { 240, 150, 150 } }
  local left, top, right, bottom = 70, 40, 520, 380
  local xmax, ymax = batches[#batches], 0
  for _, s in ipairs(series) do for _, p in ipairs(s.pts) do ymax = math.max(ymax, p[2]) end end
  c:text(10, 8, "ACQ iteration, ms, by samples per group", { 0, 0, 0 }, 2)
  c:rect(left, top, right, bottom, { 170, 170, 170 })
  c:text(8, top, acq.plot.format(ymax), { 0, 0, 0 })
  c:text(8, bottom - 7, "0", { 0, 0, 0 })
  for _, b in ipairs(batches) do
    local x = left + (right - left) * b / xmax
    c:text(x - 6, bottom + 6, tostring(b), { 0, 0, 0 })
  end
  for i, s in ipairs(series) do
    local col = colours[(i - 1) % #colours + 1]
    local prev
    for _, p in ipairs(s.pts) do
      local x, y = left + (right - left) * p[1] / xmax, bottom - (bottom - top) * p[2] / ymax
      if prev then c:line(prev[1], prev[2], x, y, col) end
      c:dot(x, y, col)
      prev = { x, y }
    end
    c:line(535, top + 10 + 20 * i, 555, top + 10 + 20 * i, col)
    c:text(560, top + 7 + 20 * i, s.name, col)
  end
  acq.image.save(png, c:tensor())
  print("\nplot: " .. png)
end
LUA
