#!/bin/sh
# SPDX-License-Identifier: MIT (see LICENSE)
# bench_offcost.sh ROUNDS: the tracing-off cost, this branch against the
# commit before tracing (88e8f76, built in /work/wt-review-trace-base),
# interleaved round by round; medians of 3 repetitions each.
f="${BENCH_FILTER:-BM_(fib_async|submit_async|fib_fork)/[0-9]+/real_time$}"
for r in $(seq 1 "${1:-4}"); do
  for b in base head; do
    case $b in base) bin=/work/wt-review-trace-base/build/rel/bench/async-bench ;; head) bin=/work/wt-review-trace/build/rel/bench/async-bench ;; esac
    "$bin" --benchmark_filter="$f" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true 2>/dev/null |
      awk -v b=$b -v r=$r '/_median/ { printf "round %s %-5s %-40s %10s %s\n", r, b, $1, $2, $3 }'
  done
done
