#!/usr/bin/env bash
# binaries.sh SOURCE_DIR: scripts/release.sh as a user runs it (every target
# this machine has a compiler for), into a temporary folder. release.sh checks
# each binary itself (test/release/check.sh: dependencies, glibc versions,
# a call in a chroot without libck/libhwloc, under qemu for arm64, the DLL's
# imports); this adds the folder's licences and the skip report.
set -euo pipefail
src=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset ASYNC_RELEASE_BUILD ASYNC_RELEASE_TARGETS ASYNC_BACKEND
ASYNC_DIST=$tmp/dist bash "$src/scripts/release.sh" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
cat "$tmp/log"
dir=$(ls -d "$tmp"/dist/async-*/)
cmp "$src/LICENSE" "$dir/LICENSE" || { echo "FAILED: no LICENSE in the release folder"; exit 1; }
for lib in ck hwloc; do
  grep -q "^==== $lib " "$dir/THIRD-PARTY-LICENSES" || { echo "FAILED: THIRD-PARTY-LICENSES lacks $lib"; exit 1; }
done
grep -q "^release: skipped macos: " "$tmp/log" || { echo "FAILED: release.sh did not say why macOS was skipped"; exit 1; }
echo "release folder: ok"
