#!/usr/bin/env bash
# tests/compat.sh -- `./acq compat [cpu|cuda] [ctest arguments...]`: builds acq
# against Debian 13 (trixie) and runs its test suite there, in a Debian 13
# root made with debootstrap beside the build folders (build-compat/).
#
#   cpu   libtorch-dev 2.6 (CPU): build, then the whole suite (or the ctest
#         arguments given, e.g. -R 'quant|loss')
#   cuda  libtorch-cuda-dev 2.6 with nvidia-cuda-toolkit (contrib, non-free;
#         about 3.4 GB to download): build with CUDA, then the CPU suite on
#         this GPU-less machine (--device cuda must refuse, auto run on the CPU)
#
# ACQ_COMPAT_PREPARE=1 makes (or completes) the root and stops before the build.
# The mirror is read from this machine's own apt sources: no archive host is
# written here. The root is kept (build-compat/trixie-<kind>) and reused; a
# root whose package install did not finish is completed, not trusted.
# Needs root (debootstrap, chroot, mounts), as ./acq setup does for apt-get.
# Debian 13's libtorch-cuda-2.6 depends on nvidia-cudnn, an installer whose
# script downloads cuDNN from NVIDIA at install time: where that host cannot
# be reached (this workplace), the cuda kind stops at the package install.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-cpu}
[ $# -gt 0 ] && shift
case "$kind" in
  cpu|cuda) ;;
  *) echo "acq compat: unknown kind '$kind' (cpu, cuda)" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "acq compat: needs root (debootstrap, chroot): run it with sudo" >&2; exit 2; }

# The first Debian archive (not the security one) named by this machine's apt
# sources, deb822 (.sources) or one-line (.list) format.
mirror() {
  local f u
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    u=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$u" ] && { echo "$u"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    u=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } break } }' "$f")
    [ -n "$u" ] && { echo "$u"; return; }
  done
  echo "acq compat: no Debian archive in /etc/apt/sources* to build a Debian 13 root from" >&2
  exit 2
}

# What the suite needs inside the root: ./acq test's packages (python3-torch
# is trixie's, on its own libtorch 2.6: bench_smoke's PyTorch side; the
# dataset serves data_spec and device_spec).
PKGS=(build-essential cmake pkg-config libopenblas0-pthread liblua5.4-dev lua5.4
      lua-lpeg lua-busted luarocks libjansson-dev zlib1g-dev libjpeg-dev libpng-dev
      procps dataset-fashion-mnist)
if [ "$kind" = cuda ]; then
  # the CUDA libtorch conflicts with the CPU one (python3-torch's and gloo's too)
  PKGS+=(libtorch-cuda-dev python3-torch-cuda libgloo-cuda-dev nvidia-cuda-toolkit nvidia-cuda-dev libcuda1)
else
  PKGS+=(libtorch-dev python3-torch libgloo-dev)
fi

root=$PWD/build-compat/trixie-$kind
command -v debootstrap >/dev/null || {
  echo "acq compat: installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
t0=$(date +%s)
if [ ! -x "$root/usr/bin/apt-get" ] || [ ! -e "$root/.acq-base" ]; then
  rm -rf "$root"
  mkdir -p "$root"
  echo "acq compat: debootstrap trixie into $root"
  debootstrap --variant=minbase --components=main,contrib,non-free,non-free-firmware \
    trixie "$root" "$(mirror)" > "$root.debootstrap.log" 2>&1 ||
    { tail -5 "$root.debootstrap.log" >&2; echo "acq compat: debootstrap failed (log: $root.debootstrap.log)" >&2; exit 1; }
  touch "$root/.acq-base"
fi

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc sys dev dev/pts dev/shm; do
  mkdir -p "$root/$m"
  mountpoint -q "$root/$m" && continue
  case $m in
    proc) mount -t proc proc "$root/proc" ;;
    sys) mount -t sysfs sys "$root/sys" ;;
    dev/shm) mount -t tmpfs shm "$root/dev/shm" ;;
    *) mount --bind "/$m" "$root/$m" ;;
  esac
  mounted+=("$root/$m")
done
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

# nvidia-cudnn is an installer: its post-install script downloads cuDNN from
# NVIDIA. Where that fails (no route to NVIDIA's host), the check goes on
# with a stand-in built here: a libcudnn.so.9 exporting, under cuDNN's
# symbol version, every cudnn* function libtorch links (it loads with
# BIND_NOW), each returning CUDNN_STATUS_NOT_INITIALIZED. On a machine
# without a GPU no cuDNN call is ever reached; a GPU run needs the real one.
# The stand-in library: every cudnn* function that libtorch's libraries
# (libtorch_cuda, libc10_cuda, libtorch_python) import from cuDNN.
standin_lib() {
  local lib=/usr/lib/x86_64-linux-gnu l
  for l in "$root$lib"/libtorch_cuda.so "$root$lib"/libc10_cuda.so "$root$lib"/libtorch_python.so; do
    [ -e "$l" ] && in_root nm -D --undefined-only "${l#"$root"}"
  done | awk '{print $2}' | sed -n 's/^\(cudnn[A-Za-z0-9_]*\)@libcudnn\.so\.9$/\1/p' | sort -u > "$root/tmp/cudnn.syms"
  [ -s "$root/tmp/cudnn.syms" ] || return 1
  {
    echo "/* acq compat: a stand-in for cuDNN on a machine without a GPU. */"
    while read -r f; do
      case $f in
        cudnnGetErrorString) echo "const char *$f(int s) { (void)s; return \"cuDNN stand-in of acq compat (cuDNN not installed)\"; }" ;;
        cudnnGetVersion|cudnnGetCudartVersion|cudnnGetMaxDeviceVersion) echo "unsigned long $f(void) { return 0; }" ;;
        *) echo "int $f(void) { return 1; /* CUDNN_STATUS_NOT_INITIALIZED */ }" ;;
      esac
    done < "$root/tmp/cudnn.syms"
  } > "$root/tmp/cudnn_standin.c"
  echo "libcudnn.so.9 { global: cudnn*; local: *; };" > "$root/tmp/cudnn.map"
  in_root gcc -shared -fPIC -O1 -o $lib/libcudnn.so.9 -Wl,-soname,libcudnn.so.9 \
    -Wl,--version-script=/tmp/cudnn.map /tmp/cudnn_standin.c || return 1
  echo "$(wc -l < "$root/tmp/cudnn.syms") functions" > "$root/.acq-cudnn-standin"
}

cudnn_standin() {
  grep -q "nvidia-cudnn" "$root/var/log/acq-install.log" 2>/dev/null || return 1
  in_root dpkg -l nvidia-cudnn 2>/dev/null | grep -q "^i[FU] *nvidia-cudnn" || return 1
  echo "acq compat: nvidia-cudnn could not download cuDNN; building a stand-in libcudnn.so.9 (no GPU here)"
  standin_lib || return 1
  printf '#!/bin/sh\nexit 0\n' > "$root/var/lib/dpkg/info/nvidia-cudnn.postinst"
  in_root dpkg --configure -a >> "$root/var/log/acq-install.log" 2>&1 || return 1
}

if [ ! -e "$root/.acq-packages" ] || [ "$(cat "$root/.acq-packages")" != "${PKGS[*]}" ]; then
  echo "acq compat: installing ${#PKGS[@]} packages from trixie"
  in_root bash -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${PKGS[*]} > /var/log/acq-install.log 2>&1" ||
    { [ "$kind" = cuda ] && cudnn_standin; } ||
    { tail -20 "$root/var/log/acq-install.log" >&2; echo "acq compat: package install failed" >&2; exit 1; }
  echo "${PKGS[*]}" > "$root/.acq-packages"
fi
if [ -e "$root/.acq-cudnn-standin" ]; then
  standin_lib || { echo "acq compat: cannot build the cuDNN stand-in" >&2; exit 1; }
  echo "acq compat: cuDNN is a stand-in ($(cat "$root/.acq-cudnn-standin")): no GPU run from this root"
fi
t1=$(date +%s)
if [ -n "${ACQ_COMPAT_PREPARE:-}" ]; then
  echo "acq compat: root ready in $((t1 - t0)) s (ACQ_COMPAT_PREPARE: no build)"; exit 0
fi

# The working tree as git sees it (tracked and untracked, not ignored files).
src=$root/src/acq
rm -rf "$src"
mkdir -p "$src"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -C "$src" -xf -
torch=$(chroot "$root" dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' libtorch2.6 libtorch-cuda-2.6 2>/dev/null |
        awk '$1 == "ii" { print $2, $3 }')
echo "acq compat: building against libtorch $torch ($kind)"
# The specs start acqlua themselves; ctest's own arguments come last.
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  bash -c 'cd /src/acq && set -o pipefail &&
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.cmake.log 2>&1 ||
      { tail -30 build.cmake.log; exit 1; }
    grep -E "acq\.|CUDA|Torch" build.cmake.log | sed "s/^/  cmake: /"
    cmake --build build -j "$(nproc)" > build.log 2>&1 || { grep -E -A3 "error|warning" build.log | head -60; exit 1; }
    if grep -q "warning:" build.log; then
      grep -A3 "warning:" build.log | head -60; echo "acq compat: the build warned (above)"; exit 1
    fi
    echo "acq compat: compiled $(grep -c "Building" build.log) files, no warning"'
t2=$(date +%s)
echo "acq compat: root ready in $((t1 - t0)) s, build in $((t2 - t1)) s"
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  bash -c 'cd /src/acq && ctest --test-dir build --output-on-failure "$@"' ctest "$@"
rc=$?
echo "acq compat: $kind suite exit $rc after $(( $(date +%s) - t2 )) s (libtorch $torch)"
exit $rc
