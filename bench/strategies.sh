#!/usr/bin/env bash
# bench/strategies.sh -- the README's strategy table: Fashion-MNIST ResNet-20,
# ACQ with each training strategy of section 4.2 (--strategy gdfq, ait,
# intraq) beside the GDFQ baseline, final accuracy, several seeds (the FP
# model of seed s is runs/fp's, trained once by the demo, for ACQ seed s).
#
#   bench/strategies.sh [ITERS=600] [SEEDS="0 1 2"] [BITS="w4a4"]
#
# Runs land in runs/strategies-i<ITERS>/<row>-<bits>-s<seed>/; the table
# (mean and each seed) is printed at the end from their result.json files
# and written to bench/strategies-i<ITERS>.md. Finished runs are skipped and
# a run with a checkpoint resumes; a run is claimed with a lock folder, so
# two copies can share the work (THREADS=1 each on 2 cores). ROWS="ait
# intraq" runs only those rows (gdfq_baseline, calibonly, gdfq, ait,
# intraq); ROWS=none runs nothing and prints the table of what is there.
# TAG=name EXTRA="--lr-q 1e-5" adds options to every run, in rows named
# <row>_<TAG> (so they never mix with the plain rows). The method recipes
# are rows too (qimera, dsg, lrq: recipes/<row>.lua at their defaults);
# bench/methods.sh runs them and writes the README's method table.
# TABLE="row row ..." and NAME=file choose the table's rows and its file
# (bench/<NAME>-i<ITERS>.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-600}; SEEDS=${2:-"0 1 2"}; BITS=${3:-"w4a4"}
ROOT=runs/strategies-i${ITERS}
ACQLUA=${ACQLUA:-build/bin/acqlua}
ALL_ROWS="gdfq_baseline calibonly gdfq ait intraq"
METHOD_ROWS="qimera dsg lrq"
NAME=${NAME:-strategies}

run() { # name seed bits recipe args...
  local name=$1 seed=$2 bits=$3 recipe=$4; shift 4
  if [ -n "${ROWS:-}" ] && [[ " $ROWS " != *" $name "* ]]; then return 0; fi
  if [ -z "${ROWS:-}" ] && [[ " $METHOD_ROWS " == *" $name "* ]]; then return 0; fi
  local dir="$ROOT/$name${TAG:+_$TAG}-${bits//[^a-z0-9]/_}-s$seed"
  if [ -f "$dir/result.json" ]; then return 0; fi
  mkdir "$dir.lock" 2>/dev/null || return 0
  if [ -f "$dir/checkpoint.safetensors" ]; then
    "$ACQLUA" "recipes/$recipe.lua" --resume "$dir" > "$dir.log" 2>&1 || true
  else
    rm -rf "$dir"
    "$ACQLUA" "recipes/$recipe.lua" --iters "$ITERS" --warmup $((ITERS / 6)) --eval-every "$ITERS" \
      --seed "$seed" --bits "$bits" --threads "${THREADS:-0}" "$@" ${EXTRA:-} --out "$dir" > "$dir.log" 2>&1 || true
  fi
  rmdir "$dir.lock"
}

mkdir -p "$ROOT"
for bits in $BITS; do
  for seed in $SEEDS; do
    run gdfq_baseline "$seed" "$bits" gdfq
    # the warm-up alone: G trains, Q is calibrated on its samples, never trained
    run calibonly "$seed" "$bits" fashion --iters $((ITERS / 6))
    for st in gdfq ait intraq; do run "$st" "$seed" "$bits" fashion --strategy "$st"; done
    for m in $METHOD_ROWS; do run "$m" "$seed" "$bits" "$m"; done
  done
done

"$ACQLUA" - "$ROOT" "$SEEDS" "$BITS" "${TABLE:-$ALL_ROWS}" "${TAG:-}" > "bench/$NAME-i${ITERS}${TAG:+-$TAG}.md" <<'LUA'
local acq = require "acq"
local root, seeds_s, bits_s, rows_s, tag = ...
local seeds, bitsl, rows = {}, {}, {}
for s in seeds_s:gmatch("%S+") do seeds[#seeds + 1] = s end
for b in bits_s:gmatch("%S+") do bitsl[#bitsl + 1] = b end
for r in rows_s:gmatch("%S+") do rows[#rows + 1] = r end
local LABEL = { gdfq_baseline = "GDFQ (recipes/gdfq.lua)", gdfq = "ACQ, --strategy gdfq",
  calibonly = "ACQ warm-up only (Q calibrated, not trained)",
  ait = "ACQ, --strategy ait", intraq = "ACQ, --strategy intraq",
  qimera = "Qimera (recipes/qimera.lua)", dsg = "DSG (recipes/dsg.lua)", lrq = "LRQ (recipes/lrq.lua)" }
local head = { "| run | bits |" }
for _, s in ipairs(seeds) do head[#head + 1] = (" seed %s |"):format(s) end
head[#head + 1] = " mean |"
print(("Final test top-1 %% (%s), Fashion-MNIST ResNet-20\n"):format(root))
print(table.concat(head))
print("|---|---|" .. ("---:|"):rep(#seeds + 1))
local fp = {}
for _, bits in ipairs(bitsl) do
  for _, r in ipairs(rows) do
    local cells, sum, n = {}, 0, 0
    for _, s in ipairs(seeds) do
      local f = io.open(("%s/%s%s-%s-s%s/result.json"):format(root, r, tag ~= "" and "_" .. tag or "",
        bits:gsub("[^a-z0-9]", "_"), s))
      if f then
        local res = acq.json.decode(f:read("a"))
        f:close()
        cells[#cells + 1] = (" %.2f |"):format(res.q_top1)
        sum, n = sum + res.q_top1, n + 1
        fp[s] = res.fp_top1
      else
        cells[#cells + 1] = " - |"
      end
    end
    if n > 0 then
      print(("| %s%s | %s |%s %s |"):format(LABEL[r], tag ~= "" and " (" .. tag .. ")" or "", bits, table.concat(cells),
        n == #seeds and ("%.2f"):format(sum / n) or "-"))
    end
  end
end
local cells, sum, n = {}, 0, 0
for _, s in ipairs(seeds) do
  cells[#cells + 1] = fp[s] and (" %.2f |"):format(fp[s]) or " - |"
  if fp[s] then sum, n = sum + fp[s], n + 1 end
end
print(("| FP32 | - |%s %s |"):format(table.concat(cells), n > 0 and ("%.2f"):format(sum / n) or "-"))
LUA
cat "bench/$NAME-i${ITERS}${TAG:+-$TAG}.md"
