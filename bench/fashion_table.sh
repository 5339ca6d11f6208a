#!/usr/bin/env bash
# bench/fashion_table.sh -- the README's results table: Fashion-MNIST
# ResNet-20, FP32 vs GDFQ and ACQ (with Table 6's ablations), one seed and
# one iteration budget for every row.
#
#   bench/fashion_table.sh [ITERS=800] [SEED=0] [ACQ coefficient options...]
#
# Runs land in runs/table-s<SEED>-i<ITERS>/<row>/; the table is printed at
# the end from their result.json files. Finished rows are skipped and a
# row with a checkpoint resumes, so the script can be restarted; a row is
# claimed with a lock folder (<row>.lock), so two copies of the script can
# share the rows (THREADS=1 each on 2 cores). Remove stale locks by hand
# after a crash.
#
# Variants: TAG=name puts the runs under runs/table-s<SEED>-i<ITERS>-<TAG>/
# (so rows with other ACQ options never mix with the plain table), and
# ROWS="acq_w4a4 acq_w5a5" runs only the named rows.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-800}; SEED=${2:-0}; shift $(( $# > 2 ? 2 : $# ))
ACQ_OPTS=("$@")
ROOT=runs/table-s${SEED}-i${ITERS}${TAG:+-$TAG}
ACQLUA=${ACQLUA:-build/bin/acqlua}
COMMON=(--iters "$ITERS" --warmup $((ITERS / 8)) --seed "$SEED" --eval-every $((ITERS / 4)) --threads "${THREADS:-0}")

row() { # name recipe args...
  local name=$1 recipe=$2; shift 2
  if [ -n "${ROWS:-}" ] && [[ " $ROWS " != *" $name "* ]]; then return; fi
  if [ -f "$ROOT/$name/result.json" ]; then return; fi
  mkdir "$ROOT/$name.lock" 2>/dev/null || return 0
  if [ -d "$ROOT/$name" ] && [ -f "$ROOT/$name/checkpoint.safetensors" ]; then
    "$ACQLUA" "recipes/$recipe.lua" --resume "$ROOT/$name" > "$ROOT/$name.log" 2>&1
  else
    "$ACQLUA" "recipes/$recipe.lua" "${COMMON[@]}" "$@" --out "$ROOT/$name" > "$ROOT/$name.log" 2>&1
  fi
  rmdir "$ROOT/$name.lock"
}

mkdir -p "$ROOT"
row gdfq_w4a4 gdfq --bits w4a4
row acq_w4a4 fashion --bits w4a4 "${ACQ_OPTS[@]}"
row acq_w5a5 fashion --bits w5a5 "${ACQ_OPTS[@]}"
row acq_w4a4_no_cacm fashion --bits w4a4 --no-cacm "${ACQ_OPTS[@]}"
row acq_w4a4_no_ad fashion --bits w4a4 --no-ad "${ACQ_OPTS[@]}"
row acq_w4a4_no_penalty fashion --bits w4a4 --no-penalty "${ACQ_OPTS[@]}"

"$ACQLUA" - "$ROOT" <<'LUA'
local acq = require "acq"
local root = ...
print(("| run (%s) | FP32 %% | quantized top-1 %% | iterations | wall time |"):format(root))
print("|---|---:|---:|---:|---:|")
for _, n in ipairs { "gdfq_w4a4", "acq_w4a4", "acq_w5a5", "acq_w4a4_no_cacm", "acq_w4a4_no_ad", "acq_w4a4_no_penalty" } do
  local f = io.open(root .. "/" .. n .. "/result.json")
  if f then
    local r = acq.json.decode(f:read("a"))
    f:close()
    print(("| %s | %.2f | %.2f | %d | %s |"):format(n, r.fp_top1, r.q_top1, r.iters, acq.progress.hms(r.seconds)))
  end
end
LUA
