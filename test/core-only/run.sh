#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# run.sh SOURCE_DIR WORK_DIR: what an engine does with the core: configure
# it alone (-DASYNC_CORE_ONLY=ON) as a shared library in a clean folder,
# build it, check that nothing but ck and hwloc was looked for and that it
# exports only the public API, then install it and build consumers against
# it (test/consumer/run.sh: find_package, pkg-config, C and C++).
set -euo pipefail
src=$1
work=$2/core-only-check
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
cmake -S "$src" -B "$work" -DASYNC_CORE_ONLY=ON -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE=Release >"$work.log" 2>&1 ||
  { cat "$work.log"; exit 1; }
cmake --build "$work" -j2 >>"$work.log" 2>&1 || { cat "$work.log"; exit 1; }
# The optional packages' cache entries appear only once looked for; no C++
# compiler either (the core is C).
if grep -E '^(Criterion|LuaJIT|LUAJIT|benchmark|OpenMP|TBB)[A-Za-z_]*:|^CMAKE_CXX_COMPILER:' "$work/CMakeCache.txt"; then
  echo "core-only: the lines above were looked for"
  exit 1
fi
echo "core-only: configured with ck and hwloc alone"
"$here/../exports/check.sh" "$work/libasync-core.so" "${CC:-cc}" "$src/core/include"
"$here/../consumer/run.sh" "$work"
