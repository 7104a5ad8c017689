#!/usr/bin/env bash
# binaries.sh SOURCE_DIR: scripts/release.sh as a user runs it, into a
# temporary folder: both Linux targets, and Windows when its pieces are
# built. release.sh checks each binary itself (test/release/check.sh:
# dependencies, glibc versions, a call in a chroot without libck/libhwloc,
# under qemu for arm64, the DLL's imports and a call under Wine); this adds
# the folder's licences and the skip report.
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
grep -q "^release: skipped macos: " "$tmp/log" || { echo "FAILED: release.sh did not say why macOS was skipped"; exit 1; }
echo "release folder: ok"
