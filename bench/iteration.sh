#!/bin/sh
# bench/iteration.sh [ROUNDS] [ITERS] [THREADS] [B] [CASES]
#   one Algorithm 1 iteration after warm-up, acq (bench/iteration.lua, which
#   runs alg:iteration: the runner's own code) beside the same iteration in
#   plain PyTorch (bench/iteration.py), interleaved ROUNDS times in one run.
#   Each round is a fresh process per side that runs 2 untimed iterations
#   and then ITERS timed ones, and reports their median. CASES (default
#   "acq:32x32x3 acq:28x28x1 gdfq:32x32x3 gdfq:28x28x1") are METHOD:SHAPE;
#   B samples per group (ACQ: 2 groups). Prints, per case, the median, min
#   and max over rounds of each side's ms per iteration, the ratio
#   acq / PyTorch, the median split into phases, peak resident memory, and
#   checks that both computed the same first L_G and the same L_Q of Q on a
#   fixed batch with the same bounds (the first L_Q on each side's own G
#   images is downstream of 4-bit roundings of images that differ by float32
#   roundoff: shown, not compared).
#   BENCH_JSON=FILE also writes every round's raw lines there.
# bench/iteration.sh --smoke: 1 round of 1 iteration per case, batch 4 (CI).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
if [ "${1:-}" = "--smoke" ]; then
  set -- 1 1 1 4
fi
rounds=${1:-5}
iters=${2:-5}
threads=${3:-1}
batch=${4:-32}
cases=${5:-"acq:32x32x3 acq:28x28x1 gdfq:32x32x3 gdfq:28x28x1"}
acqlua=${ACQLUA:-$root/build/bin/acqlua}
py=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for c in $cases; do
  "$acqlua" "$here/iteration.lua" --prepare "$dir/$c.st" "${c%%:*}" "${c#*:}" "$batch"
done
i=0
while [ "$i" -lt "$rounds" ]; do
  for c in $cases; do
    "$acqlua" "$here/iteration.lua" "$dir/$c.st" "$iters" 2 "$threads" >> "$dir/out"
    "$py" "$here/iteration.py" "$dir/$c.st" "$iters" 2 "$threads" >> "$dir/out"
  done
  i=$((i + 1))
done
[ -z "${BENCH_JSON:-}" ] || cp "$dir/out" "$BENCH_JSON"
"$acqlua" "$here/iteration_report.lua" "$dir/out" "$iters"
