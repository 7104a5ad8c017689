#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# bench/lua/compare.sh: both paths in one run, interleaved (REPS rounds,
# default 5) so that machine noise falls on both alike. JIT=off runs both
# under LuaJIT's interpreter (luajit -joff; ASYNC_PATH=ffi forces the FFI
# path there), as on a platform without a JIT.
# Usage: bash bench/lua/compare.sh [build folder, default build/release]
set -euo pipefail
cd "$(dirname "$0")/../.."
b=${1:-build/release}
for _ in $(seq "${REPS:-5}"); do
  for p in capi ffi; do ASYNC_PATH=$p luajit ${JIT:+-j"$JIT"} bench/lua/paths.lua "$b/lua" "${FRAMES:-200}"; done
done
