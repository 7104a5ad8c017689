#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# bench/run.sh: the one benchmark command. Builds in Release, runs the core
# benchmarks (Google Benchmark, peers in the same run), Lace's fork-join
# programs (ours, oneTBB, OpenMP interleaved), the Lua benchmarks
# (LÖVE, peers in the same process), the demo's frame time unpinned and
# pinned, and the workload gallery (game jobs: serial, two processes with no
# library (the machine's 2-core ceiling), ours and the love.thread baseline at
# 1 and 2 workers, alternating), then writes bench/RESULTS.md and
# bench/ratios.png.
#   REPS=n          core repetitions (default 5, medians reported)
#   FJ_REPS=n       repetitions of Lace's fork-join programs (default 5)
#   MICRO_ROUNDS=n  rounds of the per-call Lua figures, FFI path then C API
#                   path in each (default 2, medians reported)
#   DEMO_ROUNDS=n   rounds of the demo, unpinned then pinned (default 2)
#   GALLERY_REPS=n  repetitions of the gallery (default 3)
#   VS11_ROUNDS=n   rounds of the thread backend against Async 1.1 (default 7)
#   ASYNC11=dir     a folder holding Async 1.1's async.lua, measured beside it
#   QUICK=1         the Lua workloads at a tenth of their size, a short demo
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DASYNC_BUILD_TESTS=OFF >/dev/null
cmake --build build/bench -j"$(nproc)" >/dev/null
out=build/bench/results
lib="$PWD/build/bench/lua"
mkdir -p "$out"
rm -f "$out"/micro-*.tsv "$out"/demo.tsv
stamp() { echo "bench: ($((SECONDS - start)) s) $*"; }

stamp "core (Google Benchmark, ${REPS:-5} repetitions)"
./build/bench/bench/async-bench --benchmark_repetitions="${REPS:-5}" --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/core.json" --benchmark_out_format=json

stamp "Lace's fork-join programs on ours, oneTBB and OpenMP (${FJ_REPS:-5} repetitions)"
./build/bench/bench/async-forkjoin "${FJ_REPS:-5}" > "$out/forkjoin.tsv"

export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
export UV_THREADPOOL_SIZE=2
# The per-call figures on both paths, alternating, so that the previous path
# (ASYNC_PATH=capi: the C API) sees the same machine as the FFI path and the
# peers (measured in the FFI runs). async.lua picks its path at require time,
# hence one process per path.
for r in $(seq "${MICRO_ROUNDS:-2}"); do
  for path in ffi capi; do
    stamp "Lua per-call figures, $path path, round $r (LÖVE $(love --version | head -1 | cut -d' ' -f2))"
    ASYNC_PATH=$path love bench/love "$lib" --demo "$PWD/demo" --part micro ${QUICK:+--quick} --out "$out/micro-$path-$r.tsv"
  done
done
stamp "Lua: A* and the data features (FFI path)"
love bench/love "$lib" --demo "$PWD/demo" --part rest ${QUICK:+--quick} --out "$out/rest.tsv"

# The demo's main-thread frame time ("workers" mode), workers floating (the
# default) and pinned (async.load{pin = true}), alternating.
frames=300; [ -n "${QUICK:-}" ] && frames=60
for r in $(seq "${DEMO_ROUNDS:-2}"); do
  for pin in unpinned pinned; do
    stamp "demo, $pin, round $r ($frames frames)"
    love demo "$lib" --headless --frames "$frames" $([ $pin = pinned ] && echo --pin) > "$out/demo-run.txt" 2>&1 \
      || { cat "$out/demo-run.txt"; echo "bench: the demo failed" >&2; exit 1; }
    awk -v k="$pin" '$1 == "workers" { printf "demo_p50_ms/%s\t%s\tms\ndemo_p99_ms/%s\t%s\tms\ndemo_over_frames/%s\t%s\tframes\n", k, $3, k, $4, k, $5 }' \
      "$out/demo-run.txt" >> "$out/demo.tsv"
  done
done
# The thread backend (what a game gets without the native module) against
# Async 1.1 itself in one process. Async 1.1 is not part of this project:
# ASYNC11 names a folder holding its async.lua (bartbes/love-misc-libs,
# async/async.lua); without it only ours runs, and the report says so.
stamp "the thread backend against Async 1.1 (${VS11_ROUNDS:-7} rounds${ASYNC11:+, Async 1.1 from $ASYNC11})"
love bench/love/vs11 "$lib" --rounds "${VS11_ROUNDS:-7}" ${QUICK:+--quick} --out "$out/vs11.tsv"
cat "$out"/micro-*.tsv "$out/rest.tsv" "$out/demo.tsv" "$out/vs11.tsv" > "$out/lua.tsv"

stamp "the workload gallery (${GALLERY_REPS:-3} repetitions)"
love bench/love "$lib" --gallery --reps "${GALLERY_REPS:-3}" ${QUICK:+--quick} --out "$out/gallery.tsv"
python3 bench/report.py "$out/core.json" "$out/lua.tsv" bench/RESULTS.md bench/ratios.png "$out/gallery.tsv" "$out/forkjoin.tsv"
stamp "wrote bench/RESULTS.md and bench/ratios.png"
