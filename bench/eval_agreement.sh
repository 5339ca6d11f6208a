#!/bin/sh
# bench/eval_agreement.sh [ITERS] -- Fashion-MNIST test accuracy of a ResNet-20
# read from a safetensors file, by acq and by plain PyTorch (Debian
# python3-torch), compared prediction by prediction.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
"${ACQLUA:-build/bin/acqlua}" bench/eval_agreement.lua "$work/resnet20.safetensors" "${1:-150}"
"${PYTHON:-/usr/bin/python3}" bench/eval_agreement.py "$work/resnet20.safetensors" "$work/resnet20.pred.safetensors"
