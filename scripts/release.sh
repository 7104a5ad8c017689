#!/usr/bin/env bash
# release.sh [BINARY...]: the release layout. Builds the native module
# (Release) for this machine and assembles
#   dist/async-<version>/   async.lua, async_extras.lua, async_loader.lua, async_fast.lua (the FFI path), async_thread*.lua (the
#                           love.thread fallback), every native binary under
#                           its platform name, library/async.lua (LuaLS
#                           annotations), SHIPPING.md
#   dist/async-<version>.zip
# Native binaries come from this build (e.g. async_native-linux-x64.so), from
# any build/*/lua/async_native-<os>-<arch>.{so,dll} (a cross build, say), the
# Windows module of scripts/cross-windows.sh (build/windows/lua), and from the
# arguments (paths named async_native-<os>-<arch>.so or .dll).
# ASYNC_RELEASE_BUILD=<build folder> uses a build made already instead;
# ASYNC_DIST=<folder> writes there instead of dist/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(sed -n 's/^project(async VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
dist=${ASYNC_DIST:-dist}
build=${ASYNC_RELEASE_BUILD:-}
if [ -z "$build" ]; then
  build=build/dist
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DASYNC_BUILD_TESTS=OFF -DASYNC_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build" --target async_lua -j2 >/dev/null
fi
lua=$build/lua
[ -f "$lua/async_native.so" ] || { echo "release.sh: no $lua/async_native.so (build it first)" >&2; exit 1; }
plat=$(luajit -e "package.path='$lua/?.lua;'..package.path; io.write(require('async_loader').platformName())")

out=$dist/async-$version
rm -rf "$out" "$out.zip"
mkdir -p "$out/library"
cp "$lua"/*.lua "$out"/
cp "$lua/async_native.so" "$out/$plat"
cp library/async.lua "$out/library/"
cp docs/SHIPPING.md "$out/"
add() { # a binary under its platform name
  local name
  name=$(basename "$1")
  if ! [[ $name =~ ^async_native-[a-z]+-[a-z0-9]+\.(so|dll)$ ]]; then
    echo "release.sh: $1: name it async_native-<os>-<arch>.so or .dll (e.g. async_native-windows-x64.dll)" >&2
    exit 1
  fi
  cp "$1" "$out/$name"
}
shopt -s nullglob
for f in build/*/lua/async_native-*.so build/*/lua/async_native-*.dll; do
  [ "$(basename "$f")" = "$plat" ] || add "$f" # this machine's: the build above
done
# The Windows module of scripts/cross-windows.sh, under its platform name
# (lua51.dll stays behind: LÖVE ships its own).
if [ -f build/windows/lua/async_native.dll ]; then
  cp build/windows/lua/async_native.dll "$out/async_native-windows-x64.dll"
fi
for f in "$@"; do add "$f"; done
(cd "$dist" && python3 -m zipfile -c "async-$version.zip" "async-$version")
echo "release: $out.zip"
(cd "$out" && find . -type f | sort | sed 's|^\./|  |')
