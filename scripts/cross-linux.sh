#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# cross-linux.sh x64|arm64: the static hwloc a self-contained Linux module
# links (scripts/release.sh), built from Debian's source package into
# build/cross-linux/<arch>/prefix (cached: delete the folder to rebuild).
#
# Debian's own libhwloc.a needs libudev at run time and dlopen()s plugins;
# this one is configured without udev, PCI, libxml2, I/O devices and plugins,
# so it needs only the C library, and every file is compiled with
# cmake/glibc-compat.h so that its glibc symbols stay at version 2.28 or older.
# For arm64 it also unpacks Debian's arm64 luajit, for the release check.
# Prints the prefix. ck needs no build: Debian's libck.a is position
# independent (x64: /usr/lib/x86_64-linux-gnu; arm64: the sysroot of
# scripts/cross-aarch64.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
arch=${1:?usage: cross-linux.sh x64|arm64}
case $arch in
  x64) host=x86_64-linux-gnu cc=gcc ;;
  arm64) host=aarch64-linux-gnu cc=aarch64-linux-gnu-gcc ;;
  *) echo "cross-linux: unknown architecture $arch (x64 or arm64)" >&2; exit 1 ;;
esac
cl=$root/build/cross-linux
prefix=$cl/$arch/prefix
# Built again when the compat header changes (its hash is kept beside it).
compat=$(sha1sum cmake/glibc-compat.h | cut -d' ' -f1)
if [ ! -f "$prefix/lib/libhwloc.a" ] || [ "$(cat "$prefix/.compat" 2>/dev/null)" != "$compat" ]; then
  rm -rf "$prefix"
  mkdir -p "$cl/src"
  src=$(ls -d "$cl"/src/hwloc-[0-9]*/ 2>/dev/null | head -1 || true)
  if [ -z "$src" ]; then
    (cd "$cl/src" && apt-get source -qq hwloc >/dev/null 2>&1) || {
      echo "cross-linux: apt-get source hwloc failed (is there a deb-src entry? bash scripts/setup.sh adds one)" >&2
      exit 1; }
    src=$(ls -d "$cl"/src/hwloc-[0-9]*/ | head -1)
  fi
  echo "cross-linux: building hwloc for linux-$arch from $(basename "$src") (a few minutes)" >&2
  obj=$cl/$arch/obj
  rm -rf "$obj" && mkdir -p "$obj"
  (cd "$obj" && "${src%/}/configure" --host=$host CC=$cc --prefix="$prefix" \
      CFLAGS="-O2 -fPIC -include $root/cmake/glibc-compat.h" \
      --disable-shared --enable-static --with-pic \
      --disable-libudev --disable-pci --disable-libxml2 --disable-io --disable-plugins \
      --disable-plugin-dlopen --disable-plugin-ltdl --disable-cairo --disable-opencl --disable-cuda \
      --disable-nvml --disable-rsmi --disable-levelzero --disable-gl --disable-doxygen \
      --disable-readme >"$cl/$arch/configure.log" 2>&1 &&
   make -j"$(nproc)" -C hwloc >"$cl/$arch/make.log" 2>&1 &&
   make -C hwloc install >>"$cl/$arch/make.log" 2>&1 &&
   make -C include install >>"$cl/$arch/make.log" 2>&1) || {
    echo "cross-linux: hwloc failed, see $cl/$arch/*.log" >&2; exit 1; }
  echo "$compat" >"$prefix/.compat"
fi
# arm64: Debian's luajit for arm64, unpacked, so that test/release/check.sh
# can run the module under qemu-aarch64 (apt cannot install it beside the
# amd64 one).
if [ "$arch" = arm64 ] && [ ! -x "$cl/arm64/luajit/usr/bin/luajit" ]; then
  lj=$cl/arm64/luajit
  rm -rf "$lj" && mkdir -p "$lj/debs"
  (cd "$lj/debs" && apt-get download luajit:arm64 libluajit-5.1-2:arm64 >/dev/null 2>&1) || true
  for d in "$lj"/debs/*.deb; do dpkg-deb -x "$d" "$lj"; done
  [ -x "$lj/usr/bin/luajit" ] || echo "cross-linux: no arm64 luajit (apt-get download luajit:arm64 failed); the release check will not run the arm64 module" >&2
fi
echo "$prefix"
