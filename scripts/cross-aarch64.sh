#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# cross-aarch64.sh: build the core and its Criterion suites for aarch64 and
# run them under qemu-user. x86-64 is TSO and hides missing fences; aarch64
# is weakly ordered, and ck's aarch64 RMWs are relaxed, so this is where the
# core's memory-ordering arguments meet a machine that can break them
# (qemu runs the guest's loads and stores on the host, so it exposes the
# compiler's reorderings and ck's aarch64 code paths, not every hardware one).
#
#   bash scripts/cross-aarch64.sh [ctest args...]
#   bash scripts/cross-aarch64.sh sysroot    only unpack the sysroot below
#                                            (scripts/release.sh links its libck.a)
#
# Needs (scripts/setup.sh installs them): gcc-aarch64-linux-gnu, qemu-user,
# the arm64 architecture in dpkg, libhwloc-dev:arm64. The arm64 packages apt
# cannot install beside the amd64 ones are unpacked into
# build/aarch64-sysroot (see cmake/toolchain-aarch64-linux-gnu.cmake).
set -euo pipefail
cd "$(dirname "$0")/.."

sysroot=build/aarch64-sysroot
debs=(libck0:arm64 libck-dev:arm64)
if [ ! -f "$sysroot/.unpacked" ]; then
  rm -rf "$sysroot" && mkdir -p "$sysroot/debs"
  # apt-get download fetches into the current folder, as the calling user.
  (cd "$sysroot/debs" && apt-get download "${debs[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
  [ "$(ls "$sysroot"/debs/*.deb | wc -l)" -eq ${#debs[@]} ] || { echo "cross-aarch64: could not download ${debs[*]}" >&2; exit 1; }
  for d in "$sysroot"/debs/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
  touch "$sysroot/.unpacked"
fi
[ "${1:-}" = sysroot ] && exit 0

# The toolchain file is read on the first configure only (CMake warns otherwise).
toolchain=()
[ -f build/aarch64/CMakeCache.txt ] || toolchain=(-DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake)
cmake -S . -B build/aarch64 "${toolchain[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNC_BUILD_LUA=OFF -DASYNC_BUILD_BENCH=OFF >/dev/null
cmake --build build/aarch64 -j"$(nproc)" >/dev/null
# Every test binary is an aarch64 ELF; say so, so a silent host build cannot pass for this run.
file -L build/aarch64/test/test_pool | grep -q "ARM aarch64" || { echo "cross-aarch64: test_pool is not an aarch64 binary" >&2; exit 1; }
(cd build/aarch64 && ctest --output-on-failure -L core "$@")
