#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# binaries.sh SOURCE_DIR: scripts/release.sh as a user runs it, into a
# temporary folder: both Linux targets, and Windows when its pieces are
# built. release.sh checks each binary itself (test/release/check.sh:
# dependencies, glibc versions, a call in a chroot without libck/libhwloc,
# under qemu for arm64, the DLL's imports and a call under Wine); this adds
# the folder's licences, the skip report, and LÖVE loading the folder.
set -euo pipefail
src=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset ASYNC_RELEASE_BUILD ASYNC_BACKEND
# Windows as scripts/test.sh decides: its first build (ck, hwloc and LuaJIT
# for mingw) takes minutes, so only once cached or when asked for.
targets="linux-x64 linux-arm64"
if [ "${ASYNC_TEST_WINDOWS:-}" = 1 ] || [ -f "$src/build/cross-windows/prefix/bin/lua51.dll" ]; then
  targets+=" windows-x64"
else
  echo "windows-x64: not built (no build/cross-windows cache; ASYNC_TEST_WINDOWS=1 builds it)"
fi
ASYNC_RELEASE_TARGETS=$targets ASYNC_DIST=$tmp/dist bash "$src/scripts/release.sh" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
cat "$tmp/log"
dir=$(ls -d "$tmp"/dist/async-*/)
cmp "$src/LICENSE" "$dir/LICENSE" || { echo "FAILED: no LICENSE in the release folder"; exit 1; }
for lib in ck hwloc; do
  grep -q "^==== $lib " "$dir/THIRD-PARTY-LICENSES" || { echo "FAILED: THIRD-PARTY-LICENSES lacks $lib"; exit 1; }
done
# hwloc's notice is its source's COPYING, every copyright holder of it.
for copying in "$src"/build/cross-linux/src/hwloc-[0-9]*/COPYING; do
  [ -f "$copying" ] || continue
  while IFS= read -r line; do
    grep -qF -- "$line" "$dir/THIRD-PARTY-LICENSES" || { echo "FAILED: THIRD-PARTY-LICENSES lacks hwloc's '$line'"; exit 1; }
  done < <(grep '^Copyright' "$copying")
done
grep -q "^release: skipped macos: " "$tmp/log" || { echo "FAILED: release.sh did not say why macOS was skipped"; exit 1; }
# The folder as a LÖVE folder game loads it (LÖVE's own LuaJIT and process).
if command -v love >/dev/null; then
  game=$tmp/game
  cp -r "$dir" "$game" && cp "$src"/test/love/shipping/game/*.lua "$game/"
  mkdir -p "$tmp/xdg"
  out=$(XDG_RUNTIME_DIR=$tmp/xdg XDG_DATA_HOME=$tmp/data timeout 60 love "$game" 2>&1) || true
  grep -q "^backend: native$" <<<"$out" || { echo "FAILED: LÖVE with the release folder: $out"; exit 1; }
  echo "LÖVE folder game on the release module: native"
fi
echo "release folder: ok"
