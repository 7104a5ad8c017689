#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# run.sh LUA_BUILD_DIR: ships test/love/shipping/game the ways a game ships
# and checks that `require "async"` finds the native module each time, or
# falls back to the love.thread backend with one line saying why:
#   1. a .love with the module inside under its platform name: extracted to
#      the save directory and loaded (twice: the second run reuses the copy;
#      1c: a copy cut short is written again);
#   2. a .love without it: the thread backend, and the line; with a broken
#      binary: the same, the line naming it; ASYNC_BACKEND=native: an error;
#   3. a fused executable (love + .love) with the module beside it;
#   4. a folder game with the module next to main.lua under its platform name;
#   4b. the same with the library in a subfolder (require "lib.async"): the
#      native module and the FFI path, as at the top level;
#   5. a game that quits with calls in flight exits, and its queued calls do
#      not run (thread backend; 5b: native);
#   6. a module beside main.lua or the fused executable that is cut short or
#      damaged, or that async_native.manifest does not vouch for: the thread
#      backend with the reason in async.backendReason, never a crash; with a
#      manifest that matches, the native backend;
#   7. the library in a folder on love.filesystem.setRequirePath, required
#      as "async": the native module beside it is found.
# Prints "shipping: all cases passed" at the end; exits non-zero on a failure.
set -euo pipefail
lua=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME=$tmp/data XDG_RUNTIME_DIR=$tmp/xdg
mkdir -p "$XDG_RUNTIME_DIR"
unset ASYNC_BACKEND
save=$XDG_DATA_HOME/love/async-shipping-test
plat=$(luajit -e "package.path='$lua/?.lua;'..package.path; io.write(require('async_loader').platformName())")
echo "platform name: $plat"

fail() { echo "FAILED: $*"; exit 1; }
# stage NAME [with-module]: a folder with the game and the Lua files
stage() {
  local d=$tmp/$1
  mkdir -p "$d"
  cp "$here"/game/*.lua "$lua"/*.lua "$d"/
  if [ "${2:-}" = with-module ]; then cp "$lua/async_native.so" "$d/$plat"; fi
  echo "$d"
}
pack() { (cd "$1" && python3 -m zipfile -c "$2" ./*); }
# play WHAT -- command...: runs it (60 s watchdog), keeps its output in $out
play() {
  local what=$1; shift 2
  out=$(timeout 60 "$@" 2>&1) || fail "$what: exit status $? — $out"
  echo "--- $what"; echo "$out"
}

# 1. a .love with the module inside
pack "$(stage love-with with-module)" "$tmp/with.love"
play "1. .love with the module" -- love "$tmp/with.love"
grep -q "^backend: native$" <<<"$out" || fail "1: not the native backend"
grep -q "^sq(12) = 144$" <<<"$out" || fail "1: the job did not run"
ls "$save"/async_native/*/"$plat" >/dev/null 2>&1 || fail "1: not extracted to the save directory"
cmp -s "$save"/async_native/*/"$plat" "$lua/async_native.so" || fail "1: the extracted copy differs"
echo "extracted to: $(ls "$save"/async_native/*/"$plat")"
play "1b. the same .love again (the copy is reused)" -- love "$tmp/with.love"
grep -q "^backend: native$" <<<"$out" || fail "1b: not the native backend"
[ "$(ls -d "$save"/async_native/* | wc -l)" = 1 ] || fail "1b: extracted twice"
# 1c. a copy cut short (a first start killed while copying, a full disk) is
# replaced, not loaded: loading it crashed the game at every start (SIGBUS).
for size in 100000 0; do
  truncate -s $size "$save"/async_native/*/"$plat"
  play "1c. the copy cut to $size bytes" -- love "$tmp/with.love"
  grep -q "^backend: native$" <<<"$out" || fail "1c: a copy cut to $size bytes was not replaced"
  cmp -s "$save"/async_native/*/"$plat" "$lua/async_native.so" || fail "1c: the copy was not rewritten"
done
rm -rf "$save"

# 2. a .love without it: the fallback, with one line saying why
pack "$(stage love-without)" "$tmp/without.love"
play "2. .love without the module" -- love "$tmp/without.love"
grep -q "^backend: thread$" <<<"$out" || fail "2: not the thread backend"
grep -q "^sq(12) = 144$" <<<"$out" || fail "2: the job did not run"
[ "$(grep -c "^async: using the thread backend (love.thread): the native module for .* could not be loaded" <<<"$out")" = 1 ] \
  || fail "2: the fallback did not say why, in one line"

# 2b. a binary that does not load: the line says which and why
d=$(stage love-broken)
echo "not a library" >"$d/$plat"
pack "$d" "$tmp/broken.love"
play "2b. .love with a broken binary" -- love "$tmp/broken.love"
grep -q "^backend: thread$" <<<"$out" || fail "2b: not the thread backend"
grep -q "^async: using the thread backend (love.thread): .*$plat: " <<<"$out" || fail "2b: the line does not name the binary"
rm -rf "$save"

# 2c. asking for the native backend where it is missing is an error, not a fallback
if out=$(ASYNC_BACKEND=native timeout 60 love "$tmp/without.love" 2>&1); then fail "2c: ran without the native module: $out"; fi
grep -q "async: the native module could not be loaded" <<<"$out" || fail "2c: no clear error: $out"
echo "--- 2c. ASYNC_BACKEND=native without the module: $(grep -o "async: the native module could not be loaded.*" <<<"$out" | head -1)"

# 2d. outside LÖVE there is no fallback: a clear error
out=$(cd "$tmp/love-without" && ASYNC_BACKEND=thread luajit -e 'package.path = "./?.lua;" .. package.path
  print(pcall(require, "async"))' 2>&1)
grep -q "the thread backend needs LÖVE" <<<"$out" || fail "2d: $out"
echo "--- 2d. ASYNC_BACKEND=thread in plain luajit: $out"

# 3. a fused executable with the module beside it
mkdir -p "$tmp/fused"
cat "$(readlink -f "$(command -v love)")" "$tmp/without.love" >"$tmp/fused/mygame"
chmod +x "$tmp/fused/mygame"
cp "$lua/async_native.so" "$tmp/fused/$plat"
play "3. fused executable, module beside it" -- "$tmp/fused/mygame"
grep -q "^backend: native$" <<<"$out" || fail "3: not the native backend"
grep -q "^sq(12) = 144$" <<<"$out" || fail "3: the job did not run"

# 4. a folder game, the module next to main.lua under its platform name
play "4. folder game" -- love "$(stage folder with-module)"
grep -q "^backend: native$" <<<"$out" || fail "4: not the native backend"
grep -q "^path: ffi$" <<<"$out" || fail "4: not the FFI path"

# stage_lib NAME: a folder game with the library and the module in lib/
stage_lib() {
  local d=$tmp/$1
  mkdir -p "$d/lib"
  cp "$here"/game/*.lua "$d"/
  cp "$lua"/*.lua "$d/lib/"
  cp "$lua/async_native.so" "$d/lib/$plat"
  echo "$d"
}

# 4b. the library in a subfolder, required as lib.async
play "4b. folder game, library in lib/" -- env ASYNC_MODULE=lib.async love "$(stage_lib sub)"
grep -q "^backend: native$" <<<"$out" || fail "4b: not the native backend"
grep -q "^sq(12) = 144$" <<<"$out" || fail "4b: the job did not run"
grep -q "^path: ffi$" <<<"$out" || fail "4b: the library in lib/ did not get the FFI path"

# 5. quitting with calls in flight on the thread backend
play "5. quit without shutdown (thread backend)" -- env ASYNC_BACKEND=thread love "$tmp/without.love" quit
grep -q "^quitting with calls in flight: [1-9]" <<<"$out" || fail "5: nothing was in flight"
# Two running (one per worker) may finish, perhaps one more each that had started; not the 50.
ran=$(grep -c "^slow ran$" <<<"$out" || true)
echo "5: $ran of 50 calls ran"
[ "$ran" -le 6 ] || fail "5: $ran of 50 queued calls ran after quitting: queued calls must be cancelled"
play "5b. quit without shutdown (native backend)" -- love "$(stage quit-native with-module)" quit
grep -q "^backend: native$" <<<"$out" || fail "5b: not the native backend"
ran=$(grep -c "^slow ran$" <<<"$out" || true)
echo "5b: $ran of 50 calls ran"
[ "$ran" -le 6 ] || fail "5b: $ran of 50 queued calls ran after quitting: queued calls must be cancelled"

# 6. modules that must not be loaded, beside main.lua and beside the fused
# executable, and one that must
size=$(stat -c %s "$lua/async_native.so")
manifest() { printf '%s %s %s\n' "$plat" "$2" "$3" >"$1/async_native.manifest"; }
# fallback CASE DIR-OR-EXE REASON-PATTERN: the thread backend, saying why
fallback() {
  play "$1" -- love "$2"
  grep -q "^backend: thread$" <<<"$out" || fail "$1: not the thread backend"
  grep -q "^sq(12) = 144$" <<<"$out" || fail "$1: the job did not run"
  grep -q "^reason: .*$plat: .*$3" <<<"$out" || fail "$1: async.backendReason does not say '$3'"
  grep -q "^async: using the thread backend (love.thread): .*$3" <<<"$out" || fail "$1: no notice on stderr"
}
d=$(stage cut with-module); truncate -s $((size / 2)) "$d/$plat"
fallback "6a. beside main.lua, cut to half, no manifest" "$d" "cut short or damaged"
d=$(stage cut-header with-module); truncate -s 4000 "$d/$plat"
fallback "6b. beside main.lua, cut to 4000 bytes, no manifest" "$d" "cut short or damaged"
d=$(stage bad-hash with-module)
manifest "$d" "$size" "$(sha1sum "$lua/async_native.so" | cut -d' ' -f1)"
printf 'X' | dd of="$d/$plat" bs=1 seek=$((size / 3)) conv=notrunc 2>/dev/null # same size, one byte changed
fallback "6c. beside main.lua, one byte changed, the manifest's hash" "$d" "SHA-1 differs"
d=$(stage bad-size with-module); manifest "$d" $((size + 1)) 0000000000000000000000000000000000000000
fallback "6d. beside main.lua, the manifest's size differs" "$d" "bytes where async_native.manifest says"
d=$(stage unlisted with-module); printf 'async_native-other-x64.so 1 00\n' >"$d/async_native.manifest"
fallback "6e. beside main.lua, not listed in the manifest" "$d" "does not list it"
d=$(stage good-manifest with-module)
manifest "$d" "$size" "$(sha1sum "$lua/async_native.so" | cut -d' ' -f1)"
play "6f. beside main.lua, the manifest matches" -- love "$d"
grep -q "^backend: native$" <<<"$out" || fail "6f: a module the manifest vouches for was not loaded"
grep -q "^reason: nil$" <<<"$out" || fail "6f: backendReason is not nil on the native backend"
truncate -s $((size / 2)) "$tmp/fused/$plat"
play "6g. fused executable, the module beside it cut to half" -- "$tmp/fused/mygame"
grep -q "^backend: thread$" <<<"$out" || fail "6g: not the thread backend"
grep -q "^reason: .*$plat: cut short or damaged" <<<"$out" || fail "6g: async.backendReason does not say why"

# 7. the library in lib/ on LÖVE's require path, required as "async"
play "7. library in lib/ on love.filesystem.setRequirePath" -- \
  env ASYNC_REQUIRE_PATH="lib/?.lua;lib/?/init.lua" love "$(stage_lib reqpath)"
grep -q "^backend: native$" <<<"$out" || fail "7: the module in the require path's folder was not found"
grep -q "^sq(12) = 144$" <<<"$out" || fail "7: the job did not run"

echo "shipping: all cases passed"
