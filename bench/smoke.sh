#!/bin/sh
# bench/smoke.sh: every benchmark in its short mode, for CI (ctest bench_smoke).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
"$here/iteration.sh" --smoke
"${ACQLUA:-$(dirname "$here")/build/bin/acqlua}" "$here/soak.lua" --smoke
"$here/scaling.sh" --smoke
