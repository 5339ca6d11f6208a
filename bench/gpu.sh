#!/usr/bin/env bash
# bench/gpu.sh -- acq on a GPU machine that has a CUDA PyTorch, cmake and a
# compiler but no Lua: unpacks Debian's Lua 5.4, LPeg, busted and the
# libraries acq links from .deb files (./acq debs puts them in build-debs/;
# carry that folder), builds acq against PyTorch's own libtorch, runs the
# test suite with ACQ_TEST_DEVICE=cuda (specs that take a device run on it),
# then times Algorithm 1 iterations (ResNet-20 at 32x32 and 28x28, ACQ and
# GDFQ) in acq and in bench/iteration.py on the same GPU, and writes
# gpu.md (the table) and gpu.log to $OUT (else bench/out/).
#
#   ./acq debs                       # on a Debian machine with apt (here)
#   bench/gpu.sh                     # on the GPU machine, in the repository
#   ACQ_GPU_DRYRUN=1 bench/gpu.sh    # the same steps on this CPU machine:
#                                    # Debian's libtorch, device cpu, a short test subset
#
# Budget: the build, the tests and the timing finish in under 8 minutes on
# 16 cores (ctest -j, 3 timing rounds); TESTS=regex picks specs (ctest -R).
#
# What Debian 13's CUDA build (./acq compat cuda, 2026-12-07) taught:
# - a CUDA libtorch's CMake package enables CMake's CUDA language, so nvcc
#   must be found (CUDACXX is set from PATH below); acq compiles no CUDA
#   source of its own (its CUDA paths are libtorch's), so no architecture
#   flags are needed;
# - libtorch >= 2.4 defaults TCPStore to libuv, which some builds lack: acq
#   asks for the classic backend, which every build has (atc_dist.cpp);
# - the process group is Gloo for CPU and CUDA tensors alike (NCCL is not
#   used: one GPU per process and Gloo's copies are what the specs check);
# - GCC 14 warns inside libtorch's custom_function.h (silenced for the shim).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/bench/out}
mkdir -p "$OUT"
LOG=$OUT/gpu.log
: > "$LOG"
DRY=${ACQ_GPU_DRYRUN:-0}
DEBS=${ACQ_DEBS:-$ROOT/build-debs}
JOBS=$(nproc)
say() { echo "[gpu.sh $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
t0=$(date +%s)

# 1. Lua and the libraries, unpacked (no root needed)
ls "$DEBS"/*.deb > /dev/null 2>&1 || { echo "gpu.sh: no .deb files in $DEBS (run ./acq debs where apt works)" >&2; exit 2; }
PREFIX=$(mktemp -d)/root
for d in "$DEBS"/*.deb; do dpkg -x "$d" "$PREFIX"; done
ARCH=x86_64-linux-gnu
# the -dev packages' library links are absolute (/usr/lib/...): point them into the prefix
for l in "$PREFIX"/usr/lib/$ARCH/*.so; do
  if [ -L "$l" ]; then
    tgt=$(readlink "$l")
    case "$tgt" in /*) [ -e "$PREFIX$tgt" ] && ln -sf "$PREFIX$tgt" "$l" ;; esac
  fi
done
export PKG_CONFIG_SYSROOT_DIR=$PREFIX
export PKG_CONFIG_LIBDIR=$PREFIX/usr/lib/$ARCH/pkgconfig:$PREFIX/usr/share/pkgconfig
export LD_LIBRARY_PATH=$PREFIX/usr/lib/$ARCH:${LD_LIBRARY_PATH:-}
export PATH=$PREFIX/usr/bin:$PATH
export LUA_PATH="$PREFIX/usr/share/lua/5.4/?.lua;$PREFIX/usr/share/lua/5.4/?/init.lua;$ROOT/?.lua;;"
export LUA_CPATH="$PREFIX/usr/lib/$ARCH/lua/5.4/?.so;;"
say "unpacked $(ls "$DEBS"/*.deb | wc -l) .deb files into $PREFIX"

# 2. the build: PyTorch's libtorch (CUDA), or Debian's in a dry run
BUILD=$ROOT/build-gpu
if [ "$DRY" = 1 ]; then
  TORCH_CMAKE=""
  DEVICE=cpu
  PY=${PYTHON:-/usr/bin/python3}
else
  PY=${PYTHON:-python3}
  TORCH_CMAKE=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  "$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))' | tee -a "$LOG"
  DEVICE=cuda
fi
if [ -z "${CUDACXX:-}" ] && command -v nvcc > /dev/null; then export CUDACXX=$(command -v nvcc); fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="${TORCH_CMAKE:+$TORCH_CMAKE;}$PREFIX/usr" \
  -DCMAKE_LIBRARY_PATH="$PREFIX/usr/lib/$ARCH" -DCMAKE_INCLUDE_PATH="$PREFIX/usr/include" \
  -DBUSTED="$PREFIX/usr/bin/busted" >> "$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
cmake --build "$BUILD" -j "$JOBS" >> "$LOG" 2>&1 || { grep -m 20 -E "error|Error" "$LOG"; exit 1; }
say "built in $(( $(date +%s) - t0 )) s: $("$BUILD/bin/acqlua" -e 'local acq = require "acq"; print(acq.torch_version(), "cuda devices:", acq.cuda_device_count())')"

# 3. the specs, on the device where they take one
TESTS=${TESTS:-$([ "$DRY" = 1 ] && echo "methods|device|gen_spec|nn_spec|dist" || echo ".")}
if ACQ_TEST_DEVICE=$DEVICE ctest --test-dir "$BUILD" -j "$JOBS" -R "$TESTS" --output-on-failure >> "$LOG" 2>&1; then
  TESTS_OK="passed"
else
  TESTS_OK="FAILED (see gpu.log)"
fi
say "tests ($TESTS) with ACQ_TEST_DEVICE=$DEVICE: $TESTS_OK: $(grep -E 'tests passed|tests failed' "$LOG" | tail -1)"

# 4. iterations, acq beside PyTorch on the same device
ROUNDS=${ROUNDS:-$([ "$DRY" = 1 ] && echo 1 || echo 3)}
ITERS=${ITERS:-$([ "$DRY" = 1 ] && echo 2 || echo 10)}
B=${B:-$([ "$DRY" = 1 ] && echo 8 || echo 64)}
TABLE=$(ACQ_BENCH_DEVICE=$DEVICE ACQLUA="$BUILD/bin/acqlua" PYTHON="$PY" \
  bench/iteration.sh "$ROUNDS" "$ITERS" 1 "$B" "acq:32x32x3 gdfq:32x32x3 acq:28x28x1" 2>> "$LOG")
{
  echo "# acq on $DEVICE: $(date -u +%Y-%m-%d)"
  echo
  [ "$DRY" = 1 ] && echo "Dry run (ACQ_GPU_DRYRUN=1): Debian's libtorch on the CPU; the figures are not GPU figures."
  echo "Machine: $( [ "$DEVICE" = cuda ] && "$PY" -c 'import torch; print(torch.cuda.get_device_name(0))' || uname -m ), $JOBS cores."
  echo "Tests: $TESTS_OK. Wall time of this script: $(( $(date +%s) - t0 )) s."
  echo
  echo "$TABLE"
} > "$OUT/gpu.md"
cat "$OUT/gpu.md"
say "done in $(( $(date +%s) - t0 )) s"
