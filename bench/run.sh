#!/usr/bin/env bash
# bench/run.sh: the one benchmark command. Builds in Release, runs the core
# benchmarks (Google Benchmark, peers in the same run) and the Lua benchmarks
# (LÖVE, peers in the same process) and the workload gallery (game jobs:
# serial, ours and the love.thread baseline at 1 and 2 workers, alternating),
# then writes bench/RESULTS.md and bench/ratios.png. REPS=n sets the
# repetitions (default 5, medians reported), GALLERY_REPS=n the gallery's
# (default 3); QUICK=1 runs the Lua workloads at a tenth of their size.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DASYNC_BUILD_TESTS=OFF >/dev/null
cmake --build build/bench -j"$(nproc)" >/dev/null
out=build/bench/results
mkdir -p "$out"
echo "bench: core (Google Benchmark, ${REPS:-5} repetitions)"
./build/bench/bench/async-bench --benchmark_repetitions="${REPS:-5}" --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/core.json" --benchmark_out_format=json
echo "bench: Lua (LÖVE $(love --version | head -1 | cut -d' ' -f2))"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
UV_THREADPOOL_SIZE=2 love bench/love "$PWD/build/bench/lua" --demo "$PWD/demo" ${QUICK:+--quick} --out "$out/lua.tsv"
echo "bench: the workload gallery (${GALLERY_REPS:-3} repetitions)"
love bench/love "$PWD/build/bench/lua" --gallery --reps "${GALLERY_REPS:-3}" ${QUICK:+--quick} --out "$out/gallery.tsv"
python3 bench/report.py "$out/core.json" "$out/lua.tsv" bench/RESULTS.md bench/ratios.png "$out/gallery.tsv"
echo "bench: wrote bench/RESULTS.md and bench/ratios.png"
