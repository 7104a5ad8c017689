#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# release.sh [BINARY...]: every native binary this machine can build, and the
# release folder a game copies from:
#   dist/async-<version>/   the .lua files, one native binary per platform
#                           (async_native-<os>-<arch>.so/.dll),
#                           async_native.manifest (name, size, SHA-1 of each),
#                           LICENSE, THIRD-PARTY-LICENSES (ck, hwloc, and
#                           mingw-w64's runtime when the DLL is built),
#                           library/async.lua (LuaLS annotations), SHIPPING.md
#   dist/async-<version>.zip
# Builds linux-x64, linux-arm64 and windows-x64, each self-contained (no
# run-time dependency beyond the C library, glibc 2.28 or newer, or the
# system DLLs and lua51.dll), then checks every binary with
# test/release/check.sh. The cross pieces (static hwloc, Windows ck/hwloc/
# LuaJIT) are built once from Debian's source packages and cached under
# build/; the first run took 7 minutes on two busy cores, later ones 5-9
# seconds. Prints what it skipped and why. docs/SHIPPING.md says more.
#
# ASYNC_RELEASE_TARGETS="linux-x64 ..." builds only those;
# ASYNC_RELEASE_BUILD=<build folder> takes this machine's module from a build
# made already (not self-contained: for the layout test) and builds no
# target unless ASYNC_RELEASE_TARGETS names some;
# ASYNC_DIST=<folder> writes there instead of dist/.
# BINARY arguments add binaries built elsewhere (named
# async_native-<os>-<arch>.so or .dll; a macOS one, say).
set -euo pipefail
shopt -s inherit_errexit # a failed step inside $(...) stops the release too
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(sed -n 's/^project(async VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
dist=${ASYNC_DIST:-dist}
given=${ASYNC_RELEASE_BUILD:-}
if [ -n "$given" ]; then
  targets=${ASYNC_RELEASE_TARGETS:-}
else
  targets=${ASYNC_RELEASE_TARGETS:-linux-x64 linux-arm64 windows-x64}
fi
wants() { [[ " $targets " == *" $1 "* ]]; }
skipped=()
skip() { skipped+=("$1: $2"); }
log=$root/build/release-logs
mkdir -p "$log"

# A Linux module that needs only the C library: ck and hwloc linked
# statically (hwloc without udev, PCI or plugins: scripts/cross-linux.sh),
# glibc symbols pinned to 2.28 or older (cmake/glibc-compat.h), libgcc
# linked statically (lua/CMakeLists.txt, ASYNC_LUA_SELF_CONTAINED).
build_linux() { # arch (x64|arm64) -> path of the module
  local arch=$1 dir=build/release-linux-$1 hw ck toolchain=() lj=()
  hw=$(bash scripts/cross-linux.sh "$arch")
  if [ "$arch" = arm64 ]; then
    bash scripts/cross-aarch64.sh sysroot >&2
    ck=$root/build/aarch64-sysroot/usr/lib/aarch64-linux-gnu/libck.a
    [ -f "$dir/CMakeCache.txt" ] || toolchain=(-DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake)
    # LuaJIT's headers are the same on every architecture; the library (not
    # linked, only found) is the arm64 one scripts/cross-linux.sh unpacked.
    lj=(-DLuaJIT_INCLUDE_DIR=/usr/include/luajit-2.1
        -DLuaJIT_LIBRARY="$root/build/cross-linux/arm64/luajit/usr/lib/aarch64-linux-gnu/libluajit-5.1.so.2")
  else
    ck=/usr/lib/x86_64-linux-gnu/libck.a
  fi
  cmake -S . -B "$dir" "${toolchain[@]}" "${lj[@]}" -DCMAKE_BUILD_TYPE=Release -DASYNC_BUILD_TESTS=OFF \
    -DASYNC_BUILD_BENCH=OFF -DASYNC_LUA_SELF_CONTAINED=ON \
    -DCMAKE_C_FLAGS="-include $root/cmake/glibc-compat.h" \
    -DCK_LIBRARY="$ck" -DHWLOC_LIBRARY="$hw/lib/libhwloc.a" -DHWLOC_INCLUDE_DIR="$hw/include" \
    >"$log/linux-$arch.log" 2>&1 &&
  cmake --build "$dir" --target async_lua -j2 >>"$log/linux-$arch.log" 2>&1 || {
    echo "release: linux-$arch failed, see $log/linux-$arch.log" >&2; return 1; }
  echo "$dir/lua/async_native.so"
}

declare -A bins=() # platform file name -> built file
for arch in x64 arm64; do
  if ! wants linux-$arch; then skip linux-$arch "not asked for (ASYNC_RELEASE_TARGETS)"; continue; fi
  if [ $arch = arm64 ] && ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    skip linux-arm64 "no aarch64-linux-gnu-gcc (bash scripts/setup.sh installs it)"; continue
  fi
  echo "release: building linux-$arch" >&2
  bins[async_native-linux-$arch.so]=$(build_linux $arch)
done
if wants windows-x64; then
  if command -v x86_64-w64-mingw32-gcc >/dev/null; then
    echo "release: building windows-x64" >&2
    bash scripts/cross-windows.sh module build/release-windows-x64 >"$log/windows-x64.log" 2>&1 || {
      echo "release: windows-x64 failed, see $log/windows-x64.log" >&2; exit 1; }
    bins[async_native-windows-x64.dll]=build/release-windows-x64/lua/async_native.dll
  else
    skip windows-x64 "no x86_64-w64-mingw32-gcc (bash scripts/setup.sh installs it)"
  fi
else
  skip windows-x64 "not asked for (ASYNC_RELEASE_TARGETS)"
fi
skip macos "CMake only, not built here: Debian's registry has no macOS SDK or Apple linker (build it on a Mac with CMake, see docs/SHIPPING.md, and pass the .so to this script)"

# The Lua files come from a build folder (lua/CMakeLists.txt copies them).
if [ -n "$given" ]; then
  lua=$given/lua
  [ -f "$lua/async_native.so" ] || { echo "release.sh: no $lua/async_native.so (build it first)" >&2; exit 1; }
  plat=$(luajit -e "package.path='$lua/?.lua;'..package.path; io.write(require('async_loader').platformName())")
  [ -n "${bins[$plat]:-}" ] || bins[$plat]=$lua/async_native.so
elif [ -n "${bins[async_native-linux-x64.so]:-}" ]; then
  lua=build/release-linux-x64/lua
else
  lua=build/release-lua/lua # configuring copies them
  cmake -S . -B build/release-lua -DASYNC_BUILD_TESTS=OFF -DASYNC_BUILD_BENCH=OFF >"$log/lua.log" 2>&1
fi

out=$dist/async-$version
rm -rf "$out" "$out.zip"
mkdir -p "$out/library"
cp "$lua"/*.lua "$out"/
cp library/async.lua "$out/library/"
cp docs/SHIPPING.md LICENSE "$out/"
# Without debug sections (the mingw runtime's made the DLL 1.9 MB, 0.56 MB
# without); symbols stay, for players' crash reports.
declare -A strip=([async_native-linux-x64.so]=strip [async_native-linux-arm64.so]=aarch64-linux-gnu-strip
                  [async_native-windows-x64.dll]=x86_64-w64-mingw32-strip)
for name in "${!bins[@]}"; do
  cp "${bins[$name]}" "$out/$name"
  [ -z "$given" ] && "${strip[$name]}" --strip-debug "$out/$name"
done
for f in "$@"; do
  name=$(basename "$f")
  if ! [[ $name =~ ^async_native-[a-z]+-[a-z0-9]+\.(so|dll)$ ]]; then
    echo "release.sh: $f: name it async_native-<os>-<arch>.so or .dll (e.g. async_native-macos-arm64.so)" >&2
    exit 1
  fi
  cp "$f" "$out/$name"
done

# The licences of what the binaries link statically.
{
  echo "The native modules (async_native-*) contain code from the libraries below,"
  echo "linked statically. Their licences follow."
  printf '\n==== ck (from the Debian package libck-dev) ====\n\n'
  cat /usr/share/doc/libck-dev/copyright
  # hwloc's own COPYING from the source the modules were built from: Debian's
  # summary names 4 of its 16 copyright holders, and the BSD licence asks a
  # binary to carry the notice itself.
  hwcopying=$(ls build/cross-linux/src/hwloc-[0-9]*/COPYING build/cross-windows/src/hwloc-[0-9]*/COPYING 2>/dev/null | head -1 || true)
  if [ -n "$hwcopying" ]; then
    printf '\n==== hwloc (%s, COPYING) ====\n\n' "$(basename "$(dirname "$hwcopying")")"
    cat "$hwcopying"
  else
    printf '\n==== hwloc (from the Debian package libhwloc-dev) ====\n\n'
    cat /usr/share/doc/libhwloc-dev/copyright
  fi
  if [ -f "$out/async_native-windows-x64.dll" ]; then
    printf '\n==== mingw-w64 runtime (winpthreads, in the Windows module) ====\n\n'
    cat /usr/share/doc/mingw-w64-common/copyright
  fi
} >"$out/THIRD-PARTY-LICENSES"

# name size sha1, one line per binary: the loader checks a binary against it
# before loading it.
(cd "$out" && for f in async_native-*; do
  [ -f "$f" ] && printf '%s %s %s\n' "$f" "$(stat -c %s "$f")" "$(sha1sum "$f" | cut -d' ' -f1)"
done) >"$out/async_native.manifest"

if [ -n "$given" ]; then
  echo "release: binaries not checked: ASYNC_RELEASE_BUILD's module is a development build (it needs libhwloc, and glibc as new as this machine's)" >&2
else
  bash test/release/check.sh "$out"
fi
(cd "$dist" && python3 -m zipfile -c "async-$version.zip" "async-$version")
echo "release: $out.zip"
(cd "$out" && find . -type f | sort | sed 's|^\./|  |')
for s in "${skipped[@]}"; do echo "release: skipped $s"; done
