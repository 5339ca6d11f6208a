#!/usr/bin/env bash
# bench/methods.sh -- the README's method table: Fashion-MNIST ResNet-20,
# w4a4, final test top-1 of Qimera, DSG and LRQ (recipes/qimera.lua,
# dsg.lua, lrq.lua at their defaults) beside GDFQ, ACQ with its best
# strategy on this setting (--strategy gdfq, bench/strategies-i600.md) and
# FP32, 3 seeds, 600 iterations (100 of warm-up), in one table.
#
#   bench/methods.sh [ITERS=600] [SEEDS="0 1 2"]
#
# The runs are bench/strategies.sh's (runs/strategies-i<ITERS>/, shared
# with the strategy table, finished runs skipped, two copies may share the
# work with THREADS=1 each); the table goes to bench/methods-i<ITERS>.md,
# and the sample grid of each method's seed-0 run to bench/methods/.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-600}; SEEDS=${2:-"0 1 2"}
ROWS=${ROWS:-"gdfq_baseline gdfq qimera dsg lrq"} TABLE="gdfq_baseline gdfq qimera dsg lrq" NAME=methods \
  bench/strategies.sh "$ITERS" "$SEEDS" w4a4
mkdir -p bench/methods
for m in gdfq_baseline gdfq qimera dsg lrq; do
  last=$(ls "runs/strategies-i$ITERS/$m-w4a4-s${SEEDS%% *}/samples/"iter_*.png 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$last" ]; then cp "$last" "bench/methods/$m.png"; fi
done
ls -l bench/methods
