#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# cross-windows.sh: build the core and the Lua module for Windows x64 with
# mingw-w64 on Debian, and test them under Wine.
#
#   bash scripts/cross-windows.sh [ctest args...]  build, then run the core's
#                         suites and the Lua suites (soak included) under Wine
#   bash scripts/cross-windows.sh build            build only
#   bash scripts/cross-windows.sh module [DIR]     the release module only
#                         (Release, no tests) into DIR (build/release-windows-x64)
#
# The target's libraries are built from Debian's own source packages
# (apt-get source; scripts/setup.sh adds the deb-src entry): concurrencykit
# (libck.a, the ck_epoch it needs), hwloc (static, its Windows backend) and
# LuaJIT (lua51.dll, luajit.exe). Everything is cached under
# build/cross-windows/ (src/, prefix/, the wine prefix) and build/windows/
# (the CMake build); delete a folder to rebuild it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cw=$root/build/cross-windows
prefix=$cw/prefix
host=x86_64-w64-mingw32
jobs=$(nproc)
mkdir -p "$cw/src" "$prefix/lib" "$prefix/include" "$prefix/bin"

# Debian's source package $1, unpacked once into build/cross-windows/src.
fetch() {
  local dir
  dir=$(ls -d "$cw/src/$1"-[0-9]*/ 2>/dev/null | head -1 || true)
  if [ -z "$dir" ]; then
    (cd "$cw/src" && apt-get source -qq "$1" >/dev/null 2>&1) || {
      echo "cross-windows: apt-get source $1 failed (is there a deb-src entry? bash scripts/setup.sh adds one)" >&2
      exit 1; }
    dir=$(ls -d "$cw/src/$1"-[0-9]*/ | head -1)
  fi
  echo "${dir%/}"
}

# ---- concurrencykit: its configure detects the system with uname, so the
# library is built directly: ck_md.h with the x86-64 values its configure
# writes (TSO, 48-bit VMA, SSE), then every src/*.c into libck.a.
if [ ! -f "$prefix/lib/libck.a" ]; then
  ck=$(fetch ck)
  echo "cross-windows: building concurrencykit from $(basename "$ck")"
  sed -e 's/@RTM_ENABLE@/CK_MD_RTM_DISABLE/; s/@LSE_ENABLE@/CK_MD_LSE_DISABLE/' \
      -e 's/@POINTER_PACK_ENABLE@/CK_MD_POINTER_PACK_DISABLE/; s/@SSE_DISABLE@/CK_MD_SSE_ENABLE/' \
      -e 's/@PPC32_LWSYNC_ENABLE@/CK_MD_PPC32_LWSYNC_DISABLE/; s/@VMA_BITS@/CK_MD_VMA_BITS/g' \
      -e 's/@VMA_BITS_VALUE@/48ULL/; s/@MM@/CK_MD_TSO/; s/@DISABLE_DOUBLE@/CK_PR_ENABLE_DOUBLE/' \
      -e 's/@VERSION@/0.7.1/; s/@GIT_SHA@//' -e 's/@[A-Z_]*@/CK_MD_UNUSED/g' \
      "$ck/include/ck_md.h.in" > "$ck/include/ck_md.h"
  rm -rf "$cw/ck-obj" && mkdir -p "$cw/ck-obj"
  for c in "$ck"/src/*.c; do
    $host-gcc -O2 -D_WIN32_WINNT=0x0602 -I"$ck/include" -I"$ck/src" -c "$c" -o "$cw/ck-obj/$(basename "${c%.c}").o"
  done
  $host-ar rcs "$prefix/lib/libck.a" "$cw"/ck-obj/*.o
  cp "$ck"/include/*.h "$prefix/include/"
  cp -r "$ck"/include/gcc "$ck"/include/spinlock "$prefix/include/"
fi

# ---- hwloc: its own configure supports mingw (its Windows topology backend).
if [ ! -f "$prefix/lib/libhwloc.a" ]; then
  hw=$(fetch hwloc)
  echo "cross-windows: building hwloc from $(basename "$hw") (a few minutes)"
  (cd "$hw" && ./configure --host=$host --prefix="$prefix" --disable-shared --enable-static \
      --disable-cairo --disable-libxml2 --disable-io --disable-plugin-ltdl --disable-opencl \
      --disable-cuda --disable-nvml --disable-levelzero --disable-gl --disable-rsmi \
      --disable-libudev --disable-doxygen >"$cw/hwloc-configure.log" 2>&1 &&
   make -j"$jobs" -C hwloc >"$cw/hwloc-make.log" 2>&1 &&
   make -C hwloc install >>"$cw/hwloc-make.log" 2>&1 &&
   make -C include install >>"$cw/hwloc-make.log" 2>&1) || {
    echo "cross-windows: hwloc failed, see $cw/hwloc-*.log" >&2; exit 1; }
fi

# ---- LuaJIT: its Makefile cross-builds (HOST_CC builds the build tools).
if [ ! -f "$prefix/bin/lua51.dll" ]; then
  lj=$(fetch luajit)
  echo "cross-windows: building LuaJIT from $(basename "$lj")"
  make -C "$lj" -j"$jobs" HOST_CC=gcc CROSS=$host- TARGET_SYS=Windows BUILDMODE=dynamic \
    >"$cw/luajit-make.log" 2>&1 || { echo "cross-windows: LuaJIT failed, see $cw/luajit-make.log" >&2; exit 1; }
  cp "$lj/src/lua51.dll" "$lj/src/luajit.exe" "$prefix/bin/"
  mkdir -p "$prefix/include/luajit-2.1" "$prefix/bin/lua/jit"
  cp "$lj"/src/{lua.h,lualib.h,lauxlib.h,luaconf.h,lua.hpp,luajit.h} "$prefix/include/luajit-2.1/"
  cp "$lj"/src/jit/*.lua "$prefix/bin/lua/jit/"
fi

# ---- the release module alone (scripts/release.sh): no suites to build.
if [ "${1:-}" = module ]; then
  out=${2:-build/release-windows-x64}
  toolchain=()
  [ -f "$out/CMakeCache.txt" ] || toolchain=(-DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-x86_64-w64-mingw32.cmake)
  cmake -S . -B "$out" "${toolchain[@]}" -DCMAKE_BUILD_TYPE=Release -DASYNC_BUILD_TESTS=OFF \
    -DASYNC_BUILD_BENCH=OFF -DASYNC_WINDOWS_PREFIX="$prefix" >/dev/null
  cmake --build "$out" --target async_lua -j"$jobs" >/dev/null
  exit 0
fi

# ---- the core, its suites and the module.
toolchain=()
[ -f build/windows/CMakeCache.txt ] || toolchain=(-DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-x86_64-w64-mingw32.cmake)
cmake -S . -B build/windows "${toolchain[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DASYNC_BUILD_BENCH=OFF -DASYNC_WINDOWS_PREFIX="$prefix" >/dev/null
cmake --build build/windows -j"$jobs" >/dev/null
[ "${1:-}" = build ] && exit 0

(cd build/windows && ctest --output-on-failure "$@")
