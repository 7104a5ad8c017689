#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# corun.sh: the co-run tax under plain LuaJIT (bench/ANALYSIS.md, "The
# machine's 2-core ceiling"): each gallery workload's loop alone, then in two
# processes at once, ROUNDS times. Run it under the shared lock:
#   flock /tmp/bench.lock bash bench/tax/corun.sh
# Prints per line: round, workload, alone (job CPU s, wall s) | the pair's two.
set -euo pipefail
cd "$(dirname "$0")/../.."
go=$(mktemp -u)
for r in $(seq "${ROUNDS:-3}"); do
  for w in astar terrain flood report; do
    alone=$(luajit bench/tax/corun.lua "$w" | cut -f2,3)
    rm -f "$go"
    luajit bench/tax/corun.lua "$w" "$go" > "$go.1" & p1=$!
    luajit bench/tax/corun.lua "$w" "$go" > "$go.2" & p2=$!
    sleep 6 # both built their requests and warmed up (the slowest, A*, takes ~3 s)
    touch "$go"
    wait "$p1" "$p2"
    echo "r$r $w alone $alone | pair $(cut -f2,3 "$go.1") , $(cut -f2,3 "$go.2")"
  done
done
rm -f "$go" "$go.1" "$go.2"
