#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# run.sh SOURCE_DIR: the rockspec passes `luarocks lint`; `luarocks make` from
# a copy of the source tree, run by a user who is not root, installs into a
# fresh rocks tree and nowhere else (a user cannot write /usr/local, so a rule
# installing outside the tree fails the make); the tree holds the module and
# the Lua files, no C headers, static library, CMake package or .pc file; the
# installed module runs a call from plain luajit.
set -euo pipefail
src=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
luarocks lint "$src/async-scm-1.rockspec"
echo "luarocks lint: ok"

# As root: a user of our own for the install.
as=()
if [ "$(id -u)" -eq 0 ]; then
  user=asyncrock
  id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  as=(runuser -u "$user" --)
fi
# A copy without build folders, as a clone would be.
tar -C "$src" --exclude=./build --exclude='./build-*' --exclude=./build.luarocks --exclude=./dist \
  --exclude=./.git -cf - . | tar -C "$tmp" -xf - --one-top-level=src
# LuaRocks configured for LuaJIT (Debian's runs for lua5.1), as
# docs/SHIPPING.md tells a user to.
mkdir -p "$tmp/home/.luarocks"
cat >"$tmp/home/.luarocks/config-5.1.lua" <<'EOF'
lua_interpreter = "luajit"
variables = { LUA_DIR = "/usr", LUA_BINDIR = "/usr/bin", LUA_INCDIR = "/usr/include/luajit-2.1" }
EOF
[ ${#as[@]} -eq 0 ] || chown -R "$user" "$tmp"
run() { (cd "$tmp/src" && "${as[@]}" env HOME="$tmp/home" "$@"); }
run luarocks make --tree "$tmp/tree" async-scm-1.rockspec >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
echo "luarocks make as $(run id -un): ok"

extra=$(cd "$tmp/tree" && find . -type f \( -name '*.h' -o -name '*.a' -o -name '*.pc' -o -name '*.cmake' \) | sort)
[ -z "$extra" ] || { echo "FAILED: the rock installed the C core's files: $extra"; exit 1; }
for f in lib/lua/5.1/async_native.so share/lua/5.1/async.lua share/lua/5.1/async_loader.lua \
         lib/luarocks/rocks-5.1/async/scm-1/library/async.lua; do
  [ -f "$tmp/tree/$f" ] || { echo "FAILED: the rock did not install $f"; exit 1; }
done
echo "installed: the module, the Lua files and library/async.lua, no C headers, .a, .pc or CMake files"

# luarocks path as the user would run it; then plain luajit.
paths=$(run luarocks --tree "$tmp/tree" path)
run bash -c "$paths"'
cd / && luajit -e "
local async = require \"async\"
async.load(1)
async.define(\"sq\", function(x) return x * x end)
local r
async.call(function(v) r = v end, \"sq\", 12)
while async.stats().inflight > 0 do async.update() end
async.shutdown()
print(\"luarocks-installed async: \" .. async.backend .. \" \" .. tostring(r))"'
