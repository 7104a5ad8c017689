#!/usr/bin/env bash
# run.sh SOURCE_DIR: `luarocks make` from a copy of the source tree into a
# temporary rocks tree, then require the installed module from plain luajit.
set -euo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A copy without build folders, as a clone would be.
tar -C "$src" --exclude=./build --exclude='./build-*' --exclude=./build.luarocks --exclude=./.git -cf - . | tar -C "$tmp" -xf - --one-top-level=src
cd "$tmp/src"
luarocks make --tree "$tmp/tree" async-scm-1.rockspec >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
eval "$(luarocks --tree "$tmp/tree" path)"
luajit -e '
local async = require "async"
async.load(1)
async.define("sq", function(x) return x * x end)
local r
async.call(function(v) r = v end, "sq", 12)
while async.stats().inflight > 0 do async.update() end
async.shutdown()
print("luarocks-installed async: " .. tostring(r))'
test -f "$tmp/tree/lib/luarocks/rocks-5.1/async/scm-1/library/async.lua" && echo "meta file installed"
