#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# profile.sh: where the gallery's job time goes, main thread against workers
# (bench/ANALYSIS.md, "Profiles of the gallery's misses"). For each workload
# and system, one LÖVE process runs the serial jobs then the system's, under
# `perf record -e cpu-clock -g` (this machine has no hardware counters), with
# a LuaJIT built with symbols from Debian's own source package so that the
# interpreter, GC, allocator and table code are named; then perf_split.py
# puts each sample in a category per thread group (serial jobs on the main
# thread, the workers, the main thread while the workers run).
#   bash bench/tax/profile.sh <lua build folder> [workloads] [systems] [outdir]
# defaults: astar,terrain,flood,report  ours1,ours2  build/profile
set -euo pipefail
lib=${1:?usage: profile.sh <lua build folder> [workloads] [systems] [outdir]}
workloads=${2:-astar,terrain,flood,report}
systems=${3:-ours1,ours2}
out=${4:-build/profile}
mkdir -p "$out"
out=$(cd "$out" && pwd)
lj="$out/luajit"
if [ ! -f "$lj/lib/libluajit-5.1.so.2" ]; then
  # The installed library's own source (same version and patches), built
  # with -g: Debian ships it stripped and its debug archive is not reachable.
  rm -rf "$lj/src" && mkdir -p "$lj/src" "$lj/lib"
  (cd "$lj/src" && apt-get source -qq luajit >/dev/null 2>&1) || {
    echo "profile: apt-get source luajit failed (is there a deb-src entry? bash scripts/setup.sh adds one)" >&2
    exit 1
  }
  (cd "$lj"/src/luajit-*/ && nice make -j"$(nproc)" amalg PREFIX=/usr CCDEBUG=-g Q= E=@: >"$lj/make.log" 2>&1)
  cp "$lj"/src/luajit-*/src/libluajit.so "$lj/lib/libluajit-5.1.so.2"
fi
here=$(cd "$(dirname "$0")" && pwd)
for w in ${workloads//,/ }; do
  for s in ${systems//,/ }; do
    LD_LIBRARY_PATH="$lj/lib" perf record -q -e cpu-clock -F 1999 -g -o "$out/$w-$s.data" -- \
      love "$here/../love" "$lib" --gallery --reps 1 --only "$w" --systems "$s" --out "$out/$w-$s.tsv" >/dev/null 2>&1
    python3 "$here/perf_split.py" "$out/$w-$s.data"
  done
done
