#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# test.sh: every test. Installs what is missing, then builds and runs
#   1. the full suite (RelWithDebInfo),
#   2. the full suite under ASan+UBSan,
#   3. the concurrency suites under TSan,
#   4. the codec fuzzer (libFuzzer + ASan + UBSan) for a bounded time
#      (FUZZ_SECONDS, default 120),
#   5. the core's suites with the portable sleep/wake (ASYNC_OS_WAIT=condvar,
#      the macOS fallback),
#   6. the core's suites on aarch64 under qemu-user (scripts/cross-aarch64.sh),
#   7. the Windows x64 build (mingw-w64) under Wine: the core's suites and the
#      Lua suites, the soak left out (scripts/cross-windows.sh). Only when its
#      cache exists (build/cross-windows/prefix) or ASYNC_TEST_WINDOWS=1: the
#      first run builds ck, hwloc and LuaJIT for Windows, which alone would
#      take this command past its time on a fresh 2-core machine. Run
#      `bash scripts/cross-windows.sh` once (or in its own CI job) to enable it.
# Each build lives in its own folder under build/ and is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test

jobs=$(nproc)
run() { # name, ctest args, cmake args...
  local name=$1 label=$2; shift 2
  echo "==== $name"
  # Tests on explicitly: scripts/demo.sh configures build/release without them.
  cmake -S . -B "build/$name" -DASYNC_BUILD_BENCH=OFF -DASYNC_BUILD_TESTS=ON "$@" >/dev/null
  cmake --build "build/$name" -j"$jobs" >/dev/null
  (cd "build/$name" && ctest --output-on-failure $label)
}

run release "" -DCMAKE_BUILD_TYPE=RelWithDebInfo
# detect_leaks: every test also checks that it leaked nothing.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  run asan "" -DCMAKE_BUILD_TYPE=Debug -DASYNC_SANITIZE=address
TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1 \
  run tsan "-L concurrency" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNC_SANITIZE=thread
echo "==== fuzz (codec, ${FUZZ_SECONDS:-120} s)"
bash test/fuzz/run.sh "${FUZZ_SECONDS:-120}"
run condvar "-L core" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNC_BUILD_LUA=OFF -DASYNC_OS_WAIT=condvar
echo "==== aarch64 (core, qemu-user)"
bash scripts/cross-aarch64.sh
if [ "${ASYNC_TEST_WINDOWS:-}" = 1 ] || [ -f build/cross-windows/prefix/bin/lua51.dll ]; then
  echo "==== windows (core and Lua, mingw-w64, Wine)"
  bash scripts/cross-windows.sh -E soak
else
  echo "==== windows: skipped (no build/cross-windows cache; ASYNC_TEST_WINDOWS=1 or bash scripts/cross-windows.sh builds it)"
fi
echo "==== all test builds passed"
