#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# run.sh SOURCE_DIR BUILD_DIR: scripts/release.sh from an existing build into
# a temporary folder; checks the zip's contents, then uses the unzipped
# folder as a game ships it (a LÖVE folder game) and from plain LuaJIT.
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME=$tmp/data XDG_RUNTIME_DIR=$tmp/xdg
mkdir -p "$XDG_RUNTIME_DIR"
unset ASYNC_BACKEND
ASYNC_RELEASE_BUILD=$build ASYNC_DIST=$tmp/dist bash "$src/scripts/release.sh"
zip=$(ls "$tmp"/dist/async-*.zip)
listing=$(python3 -m zipfile -l "$zip")
for f in async.lua async_extras.lua async_loader.lua async_thread.lua async_thread_calls.lua async_thread_worker.lua async_thread_common.lua async_fast.lua async_messages.lua async_profile.lua async_perfmap.lua SHIPPING.md library/async.lua async_native-linux-x64.so; do
  grep -q "/$f " <<<"$listing" || { echo "FAILED: $f missing from $zip"; exit 1; }
done
mkdir "$tmp/unzipped"
python3 -m zipfile -e "$zip" "$tmp/unzipped"
dir=$(ls -d "$tmp"/unzipped/async-*)
# A folder game made of the release folder and a main.lua.
cp "$src"/test/love/shipping/game/*.lua "$dir"/
out=$(timeout 60 love "$dir" 2>&1) || { echo "FAILED: the game: $out"; exit 1; }
echo "$out"
grep -q "^backend: native$" <<<"$out" || { echo "FAILED: not the native backend"; exit 1; }
# Plain LuaJIT with the folder on its paths: the platform-named binary loads.
echo "luajit from the release: $(cd "$dir" && luajit "$src/test/release/call.lua")"
echo "release layout: ok"
