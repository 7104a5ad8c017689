#!/usr/bin/env python3
# SPDX-License-Identifier: MIT (see LICENSE)
"""report.py: turns one benchmark run into bench/RESULTS.md and a PNG chart.

    report.py core.json lua.tsv RESULTS.md ratios.png [gallery.tsv [forkjoin.tsv]]

core.json is Google Benchmark's JSON (medians of the repetitions); lua.tsv
and gallery.tsv are the LÖVE benchmark's "name<TAB>value<TAB>unit" lines.
lua.tsv is what run.sh gathers: the per-call rounds of both paths (a name
repeats once per round; medians and ranges are reported), the rest of the
Lua benchmarks and the demo's frame times; gallery.tsv holds the workload
gallery's repetitions; forkjoin.tsv is bench/fj_main.c's output (Lace's
programs on ours, oneTBB and OpenMP). Every ratio and every met/missed is computed from
this run's figures: peers ran beside ours, nothing is quoted. The
explanations of misses stay in bench/ANALYSIS.md; the report points to them.
Standard library only; the chart is drawn by gnuplot."""
import datetime
import json
import os
import platform
import subprocess
import sys


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


def load_core(path):
    with open(path) as f:
        data = json.load(f)
    res = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name", "median") != "median":
            continue
        name = b["run_name"] if "run_name" in b else b["name"]
        name = name.replace("/real_time", "").replace("/iterations:1", "")
        res[name] = b
    return data.get("context", {}), res


def load_lua(path):
    """lua.tsv -> {name: [values]}: a name repeats once per round (run.sh
    alternates the paths over MICRO_ROUNDS rounds)."""
    res = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                res.setdefault(parts[0], []).append(float(parts[1]))
    return res


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


ANALYSIS = "bench/ANALYSIS.md"


def pointer(w, missed, section):
    """Where a miss is explained: one line naming ANALYSIS.md's section, only
    when this run missed something (the explanations live there, not here)."""
    if missed:
        w("Misses are explained (with profiles) in `%s`, \"%s\"." % (ANALYSIS, section))
        w("")


def load_gallery(path):
    """gallery.tsv -> {(workload, system, rep): {metric: value}}, workloads in order."""
    runs, order = {}, []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or not parts[0].startswith("gallery_"):
                continue
            metric, wl, system, rep = parts[0].split("/")
            if wl not in order:
                order.append(wl)
            runs.setdefault((wl, system, int(rep)), {})[metric[len("gallery_"):]] = float(parts[1])
    return runs, order


def spread(values, fmt):
    """Median (range) of a list, as text."""
    v = sorted(values)
    med = median(v)
    if len(v) == 1:
        return fmt % med, med
    return ("%s (%s–%s)" % (fmt % med, fmt % v[0], fmt % v[-1])), med


def gallery_section(path, w, chart):
    runs, order = load_gallery(path)
    reps = sorted({r for (_, _, r) in runs})
    systems = [("ours1", "async, 1 worker"), ("baseline1", "Async 1.1 design, 1 worker"),
               ("ours2", "async, 2 workers"), ("baseline2", "Async 1.1 design, 2 workers")]
    w("## Lua: the workload gallery")
    w("")
    w("Game jobs written as game code is (`bench/love/gallery_jobs.lua`: plain Lua tables, no FFI), each")
    w("run serially on LÖVE's main thread, then on ours and on the love.thread baseline with 1 and 2")
    w("workers: every request issued at once, then `update()` and a 1 ms sleep per frame until the last")
    w("callback. The runs of a workload follow each other, and the whole gallery repeats %d times," % len(reps))
    w("so the systems alternate in the same time window. Speed-ups are serial wall time / wall time,")
    w("median (range) over the repetitions. The **worker tax** is the jobs' own thread-CPU time")
    w("(`CLOCK_THREAD_CPUTIME_ID`, read inside each job) in the workers over the same jobs' on the main")
    w("thread: it does not see queueing or the machine's load, so it is the steadiest figure here.")
    w("")
    w("**Two processes, no library** is the machine's own 2-core ceiling for each workload, measured")
    w("right after its serial run (`bench/love/gallery_pair.lua`): the same serial loop runs in the LÖVE")
    w("process and in a forked twin of it (same heap, same traces) at once, both warmed up by one pass,")
    w("then started together by a barrier. Its speed-up is 2 × serial wall time / the pair's wall time")
    w("(until the later of the two ends): what two cores give two copies of the work with no job system.")
    w("Its **co-run tax** is the pair's job thread-CPU per job over the serial run's: how much two such")
    w("loops running at once slow each other's jobs down (caches, memory bandwidth), as two workers do.")
    w("Other load on the machine takes a core from the pair as it does from the 2-worker runs beside it.")
    w("Read the 2-worker speed-ups against this ceiling, not against 2×.")
    w("")
    w("| workload | serial | two processes, no library: speed-up / co-run tax | %s | worker tax: ours 1 / 2 workers | baseline 1 / 2 |"
      % " | ".join(l for _, l in systems))
    w("| --- | --- | --- | %s | --- | --- |" % " | ".join("---" for _ in systems))
    verdicts = []
    for wl in order:
        serial = [runs[(wl, "serial", r)] for r in reps if (wl, "serial", r) in runs]
        row = ["%s" % wl, spread([x["wall_s"] for x in serial], "%.2f s")[0]]
        pair = [runs[(wl, "pair", r)] for r in reps if "speedup" in runs.get((wl, "pair", r), {})]
        ceiling = spread([x["speedup"] for x in pair], "%.2f×") if pair else None
        row.append("%s / %s" % (ceiling[0], spread([x["corun_tax"] for x in pair], "%.2f")[0]) if pair else "—")
        med = {}
        tax = {}
        for key, _ in systems:
            sp = [runs[(wl, "serial", r)]["wall_s"] / runs[(wl, key, r)]["wall_s"] for r in reps if (wl, key, r) in runs]
            tx = [runs[(wl, key, r)]["jobcpu_s"] / runs[(wl, "serial", r)]["jobcpu_s"] for r in reps if (wl, key, r) in runs]
            if not sp:
                row.append("—")
                continue
            text, med[key] = spread(sp, "%.2f×")
            tax[key] = spread(tx, "%.2f")
            row.append(text)
        row.append("%s / %s" % (tax.get("ours1", ("—",))[0], tax.get("ours2", ("—",))[0]))
        row.append("%s / %s" % (tax.get("baseline1", ("—",))[0], tax.get("baseline2", ("—",))[0]))
        w("| " + " | ".join(row) + " |")
        if all(k in med for k, _ in systems):
            verdicts.append((wl, tax["ours1"][1], med["ours1"], med["ours2"], med["baseline2"], ceiling and ceiling[1]))
            chart.append(("gallery %s: 2 workers / serial" % wl, med["ours2"]))
    w("")
    w("Targets (medians): worker tax ≤ 1.03, 1 worker ≥ 0.97× serial, 2 workers ≥ 1.85× serial and ahead")
    w("of the baseline with 2 workers. Beside the 2-worker verdict, the ceiling: the median speed-up of two")
    w("processes with no library (above); the verdict itself is the target's.")
    w("")
    w("| workload | tax ≤ 1.03 | 1 worker ≥ 0.97× | 2 workers ≥ 1.85× | ahead of the baseline at 2 |")
    w("| --- | --- | --- | --- | --- |")
    missed = missed2 = False
    for wl, t, o1, o2, b2, ceiling in verdicts:
        ok = (t <= 1.03, o1 >= 0.97, o2 >= 1.85, o2 > b2)
        missed = missed or not all(ok)
        missed2 = missed2 or not ok[2]
        two = "%.2f×; ceiling %.2f×" % (o2, ceiling) if ceiling is not None else "%.2f×" % o2
        w("| %s | %s (%.2f) | %s (%.2f×) | %s (%s) | %s (%.2f× vs %.2f×) |" % (
            wl, verdict(ok[0]), t, verdict(ok[1]), o1, verdict(ok[2]), two, verdict(ok[3]), o2, b2))
    w("")
    pointer(w, missed, "Profiles of the gallery (what each remaining miss is)")
    if missed2 and any(v[5] is not None for v in verdicts):
        w("What this machine's two cores allow the 2-worker runs is in `%s`, \"The machine's 2-core ceiling\"." % ANALYSIS)
        w("")
    faults = []
    for wl in order:
        cells = []
        for key in ("serial", "ours1", "baseline1"):
            v = [runs[(wl, key, r)]["jobfaults"] / runs[(wl, key, r)]["jobcpu_s"] for r in reps if (wl, key, r) in runs]
            cells.append(spread(v, "%.0f")[0] if v else "—")
        faults.append("| %s | %s |" % (wl, " | ".join(cells)))
    w("Minor page faults of the jobs' threads per second of job CPU (getrusage(RUSAGE_THREAD) inside each")
    w("job), the symptom behind the worker tax (`%s`, \"The worker tax\"):" % ANALYSIS)
    w("")
    w("| workload | serial, main thread | async, 1 worker | Async 1.1 design, 1 worker |")
    w("| --- | --- | --- | --- |")
    for line in faults:
        w(line)
    w("")


def ms(b):
    """Median real time of a benchmark in milliseconds."""
    t = b["real_time"]
    unit = b.get("time_unit", "ns")
    return t * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def verdict(ok):
    return "met" if ok else "**missed**"


def V(lua, name):
    """The median of a Lua figure over the rounds, or None if not measured."""
    return median(lua[name]) if name in lua else None


def L(lua, name, fmt="%.2f"):
    """A Lua figure as text: the median, with the range when there were rounds."""
    if name not in lua:
        return "—"
    v = lua[name]
    return spread(v, fmt)[0]


def check(value, ok):
    """met / missed for a figure that may be absent."""
    return "—" if value is None else verdict(ok(value))


# Lace's inputs (its benchmarks/bench.py and programs' usage) beside ours.
FJ_PROGRAMS = (("fib", "fib(32)", "fib(46)"), ("nqueens", "12 queens", "14 queens"),
               ("cilksort", "2,000,000 longs", "its argument (no bench.py input)"),
               ("uts", "T3's binomial shape (2,000 root children, m = 8) with q = 0.124 and a 16-round hash for SHA-1: 146,553 nodes",
                "T2L and T3L, about 10^8 nodes"),
               ("knapsack", "36 items (strongly correlated)", "an input file"),
               ("matmul", "512 × 512 floats", "2048 × 2048"), ("pi", "40,000,000 points", "its argument"))


def forkjoin_section(path, w, chart):
    fj = load_lua(path)
    if not fj:
        return
    w("## Lace's fork-join programs")
    w("")
    w("`bench/fj_main.c` (`async-forkjoin`): each program written from its published description on our typed")
    w("tasks (`ASYNC_TASK_n`), oneTBB `task_group` and OpenMP tasks, one task where the program forks (no")
    w("cutoffs beyond the programs' own), runs interleaved, every result checked against the serial")
    w("program's. Inputs are cut from Lace's to fit this 2-core VM's run. Medians (range) of the repetitions, ms.")
    w("")
    w("| program | input (Lace's) | serial | ours, 1 | ours, 2 | ours 2-worker speedup | oneTBB, 1 | oneTBB, 2 | OpenMP, 1 | OpenMP, 2 |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    med = {}
    for prog, ours_in, lace_in in FJ_PROGRAMS:
        key = lambda sy, n: "fj/%s/%s/%d" % (prog, sy, n)
        if key("async", 1) not in fj:
            continue
        cell = {}
        for sy in ("serial", "async", "tbb", "omp"):
            for n in (1, 2):
                if key(sy, n) in fj:
                    cell[sy, n], med[prog, sy, n] = spread(fj[key(sy, n)], "%.1f")
        sp = med[prog, "async", 1] / med[prog, "async", 2]
        w("| %s | %s (%s) | %s | %s | %s | %.2f× | %s | %s | %s | %s |" % (
            prog, ours_in, lace_in, cell.get(("serial", 1), "—"), cell["async", 1], cell["async", 2], sp,
            cell["tbb", 1], cell["tbb", 2], cell["omp", 1], cell["omp", 2]))
    w("")
    if ("fib", "async", 1) in med:
        sp = med["fib", "async", 1] / med["fib", "async", 2]
        w("| target | this run | |")
        w("| --- | --- | --- |")
        w("| fib(32), 2 workers ≥ 1.8× of 1 (ours) | %.2f× | %s |" % (sp, verdict(sp >= 1.8)))
        w("| fib(32) at 1 worker within 1.2× of Lace | measured beside Lace v1.4.2 (not packaged by Debian) in `%s`, \"Typed fork-join: Lace's programs\" | |" % ANALYSIS)
        w("")
        pointer(w, sp < 1.8, "Typed fork-join: Lace's programs")
        chart.append(("fj fib(32) time at 1 worker: oneTBB / ours", med["fib", "tbb", 1] / med["fib", "async", 1]))
        chart.append(("fj fib(32) time at 1 worker: OpenMP / ours", med["fib", "omp", 1] / med["fib", "async", 1]))


VS11_ROWS = (
    ("round trip, 1,000 small calls per `update()`, µs a call", "roundtrip_us_per_call", "%.2f", False),
    ("game thread's wall time in 1,000 calls + `update()` per 16 ms frame, µs", "frame_us_per_1000_calls", "%.0f", False),
    ("a `{1..100}` argument, µs a call (wall, 100 calls per update)", "table100_us_per_call", "%.1f", False),
    ("20 nested records as the argument, µs a call", "records_us_per_call", "%.1f", False),
    ("a 64 KiB string, one way, µs a call", "string64k_us_per_call", "%.1f", False),
    ("A*, 1,000 paths on 256×256, speed-up over serial, map sent with each call", "astar_speedup_sent", "%.2f×", True),
)


def vs11_section(lua, w):
    """The thread backend against Async 1.1 itself (bench/love/vs11), same process."""
    if not any(k.startswith("vs11/") for k in lua):
        return
    w("## The thread backend against Async 1.1 (2 love.thread workers each)")
    w("")
    w("What a game gets where the native module cannot load (`ASYNC_BACKEND=thread`), against Async 1.1's")
    w("own `async.lua` in the same LÖVE process (`bench/love/vs11`): the two alternate row by row and round by")
    w("round; medians (range) over %d rounds." % max(len(v) for k, v in lua.items() if k.startswith("vs11/")))
    w("")
    if not any(k.endswith("/async1.1") for k in lua if k.startswith("vs11/")):
        w("Async 1.1 was not measured in this run: set `ASYNC11` to a folder holding its `async.lua`")
        w("(`bartbes/love-misc-libs`, `async/async.lua`; never committed here). The thread backend alone:")
        w("")
    w("| same workload | thread backend | Async 1.1 | thread backend at least as fast |")
    w("| --- | --- | --- | --- |")
    missed = False
    for label, key, fmt, higher in VS11_ROWS:
        ours, peer = "vs11/%s/thread" % key, "vs11/%s/async1.1" % key
        a, b = V(lua, ours), V(lua, peer)
        ok = None if a is None or b is None else (a >= b if higher else a <= b)
        missed = missed or ok is False
        w("| %s | %s | %s | %s |" % (label, L(lua, ours, fmt), L(lua, peer, fmt),
                                     "—" if ok is None else verdict(ok)))
    shared = "vs11/astar_speedup_shared/thread"
    if shared in lua:
        w("| A*, the map shared once (`async.share`): thread backend only | %s | | |" % L(lua, shared, "%.2f×"))
    w("")
    pointer(w, missed, "The thread backend's transport")


def lua_section(lua, w, chart):
    cols = (("ours", "async, FFI path"), ("ours-capi", "async, C API path (`ASYNC_PATH=capi`)"),
            ("async1.1-design", "Async 1.1 design"), ("luv", "luv `uv.new_work`"))
    rounds = len(lua.get("roundtrip_us_per_call/ours", []))
    w("## Lua: the cost of a call (LÖVE 11.4, 2 workers)")
    w("")
    w("Both paths of ours in the same run: `run.sh` alternates one LÖVE process per path (the path is chosen")
    w("when `async.lua` is required) over %d round(s); the peers run in the FFI path's processes. Figures are" % rounds)
    w("medians over the rounds (range when there were several). `a + b` is the job unless stated.")
    w("")
    base = lambda key: V(lua, key + "/async1.1-design")
    rows = (
        ("round trip, 100,000 calls, 1,000 per update(), µs/call", "roundtrip_us_per_call", "≤ 0.35", lambda v: v <= 0.35),
        ("main thread's CPU inside call + update, µs per 1,000 calls", "mainthread_us_per_1000_calls", "≤ 300", lambda v: v <= 300),
        ("steady load, 1,000 calls per 16 ms frame, update() every 0.5 ms: call to callback p50, µs",
         "steady_p50_us", "below the baseline", lambda v: base("steady_p50_us") is not None and v < base("steady_p50_us")),
        ("the same, p99, µs", "steady_p99_us", "below the baseline", lambda v: base("steady_p99_us") is not None and v < base("steady_p99_us")),
        ("one call on an idle pool (workers asleep), call to callback, median, µs",
         "latency_us", "below the baseline", lambda v: base("latency_us") is not None and v < base("latency_us")),
        ("the same, p99, µs", "latency_p99_us", "below the baseline", lambda v: base("latency_p99_us") is not None and v < base("latency_p99_us")),
        ("issue a flat `{1..100}` argument: main thread's CPU inside call(), µs", "table100_issue_us", "≤ 1.5", lambda v: v <= 1.5),
        ("a 64 KiB string argument, µs/call (wall, 100 calls per update)", "string64k_us_per_call", "≤ 5", lambda v: v <= 5),
    )
    w("| | %s | target | FFI path | C API path |" % " | ".join(label for _, label in cols))
    w("| --- | %s | --- | --- | --- |" % " | ".join("---" for _ in cols))
    missed = False
    for label, key, target, ok in rows:
        cells = [L(lua, "%s/%s" % (key, col)) for col, _ in cols]
        ffi, capi = V(lua, key + "/ours"), V(lua, key + "/ours-capi")
        missed = missed or (ffi is not None and not ok(ffi))
        w("| %s | %s | %s | %s | %s |" % (label, " | ".join(cells), target, check(ffi, ok), check(capi, ok)))
    w("")
    w("Targets: round trip, main-thread CPU, `{1..100}` and 64 KiB as in the table; the latencies are held")
    w("to the love.thread baseline, so \"below the baseline\" is the bar there. Under the")
    w("steady load a system that cannot keep up with 1,000 calls a frame builds a backlog, seen in its p99.")
    w("")
    pointer(w, missed, "The FFI path")
    for key, label in (("roundtrip_us_per_call", "round trip"), ("mainthread_us_per_1000_calls", "main-thread cost"),
                       ("steady_p99_us", "steady-load p99 latency"), ("latency_us", "idle latency")):
        o, b = V(lua, key + "/ours"), V(lua, key + "/async1.1-design")
        if o and b:
            chart.append(("%s: Async1.1 design / ours" % label, b / o))
        lv = V(lua, key + "/luv")
        if o and lv and key == "roundtrip_us_per_call":
            chart.append(("round trip: luv / ours", lv / o))

    if "astar_s/serial" in lua:
        w("## Lua: A* on a 256×256 grid with 30 % walls, 2,000 path requests (FFI path)")
        w("")
        w("| | wall time | speedup over serial | main thread's CPU |")
        w("| --- | --- | --- | --- |")
        w("| serial, on the main thread | %s s | 1.00× | %s s |" % (L(lua, "astar_s/serial"), L(lua, "astar_mainthread_cpu_s/serial")))
        for key, label in (("async1.1-design", "Async 1.1 design, map sent with every request"),
                           ("ours-sent", "async, map sent with every request"),
                           ("ours-shared", "async, map shared once (`async.share`)")):
            w("| %s | %s s | %s× | %s s |" % (label, L(lua, "astar_s/" + key), L(lua, "astar_speedup/" + key),
                                            L(lua, "astar_mainthread_cpu_s/" + key, "%.3f")))
            chart.append(("A* speedup: " + key, V(lua, "astar_speedup/" + key)))
        best = V(lua, "astar_speedup/ours-shared")
        ok = best >= 1.9 and V(lua, "astar_mainthread_cpu_s/ours-shared") < V(lua, "astar_mainthread_cpu_s/async1.1-design")
        w("")
        w("Target: at least 1.9× with less main-thread CPU than the Async 1.1 design — %s (%.2f×). Every run's" % (verdict(ok), best))
        w("path costs are checked equal to the serial run's.")
        w("")
        pointer(w, not ok, "Where the time goes, and why targets are missed")

    w("## Lua: the codec alone")
    w("")
    w("Encode + decode in the main thread, the C codec (`async_native.encode`/`decode`) against LuaJIT's")
    w("`string.buffer`. Mixed: `17, 2.5, \"unit-42\", {x = 10, y = 20, tags = {\"a\", \"b\"}, alive = true}`; array: `{1..100}`.")
    w("")
    w("| values | async codec | LuaJIT `string.buffer` | target: at least as fast |")
    w("| --- | --- | --- | --- |")
    missed = False
    for case in ("mixed", "array"):
        co, sb = V(lua, "codec_ns_per_roundtrip/%s/ours" % case), V(lua, "codec_ns_per_roundtrip/%s/string.buffer" % case)
        if co is None:
            continue
        missed = missed or co > sb
        w("| %s | %s ns | %s ns | %s |" % (case, L(lua, "codec_ns_per_roundtrip/%s/ours" % case, "%.0f"),
                                           L(lua, "codec_ns_per_roundtrip/%s/string.buffer" % case, "%.0f"), verdict(co <= sb)))
        chart.append(("codec (%s): string.buffer / ours" % case, sb / co))
    w("")
    pointer(w, missed, "Where the time goes, and why targets are missed")

    if "demo_p50_ms/unpinned" in lua:
        w("## The demo's main thread, workers floating or pinned")
        w("")
        w("`love demo <lib> --headless --frames N` (\"workers\" mode: the simulation's paths and chunks on 2 workers,")
        w("frames paced at 60 Hz), the default `async.load{pin = false}` and `--pin` (`pin = true`) alternating,")
        w("%d round(s) each. The main thread's time per frame (simulation update + delivering callbacks):" % len(lua["demo_p50_ms/unpinned"]))
        w("")
        w("| | p50 ms | p99 ms | frames over 16.7 ms |")
        w("| --- | --- | --- | --- |")
        for key, label in (("unpinned", "not pinned (default)"), ("pinned", "pinned (`pin = true`)")):
            w("| %s | %s | %s | %s |" % (label, L(lua, "demo_p50_ms/" + key), L(lua, "demo_p99_ms/" + key),
                                         L(lua, "demo_over_frames/" + key, "%.0f")))
        u, p = V(lua, "demo_p99_ms/unpinned"), V(lua, "demo_p99_ms/pinned")
        w("")
        w("Target: the default no worse for the main thread than pinning (p99 unpinned ≤ pinned) — %s (%.2f vs %.2f ms)."
          % (verdict(u <= p), u, p))
        w("")
        pointer(w, u > p, "Pinning")


def main():
    core_json, lua_tsv, out_md, out_png = sys.argv[1:5]
    gallery_tsv = sys.argv[5] if len(sys.argv) > 5 else None
    forkjoin_tsv = sys.argv[6] if len(sys.argv) > 6 else None
    ctx, c = load_core(core_json)
    lua = load_lua(lua_tsv)
    chart = []  # (label, ratio): > 1 means ours is better

    tasks = c["BM_fib_serial"]["tasks"]
    serial = ms(c["BM_fib_serial"])
    lines = []
    w = lines.append

    w("# Benchmark results")
    w("")
    w("Written by `bench/run.sh` (`bench/report.py`); every figure below comes from one run, with the")
    w("peers measured in the same run: medians of the repetitions for the core, medians of the rounds for")
    w("the Lua per-call figures and the demo, single runs of the other Lua workloads (each averages many")
    w("calls). Targets and met/missed are computed from these figures, not quoted. This is a noisy")
    w("2-core virtual machine: run-to-run differences of 5-10 % are common, so read ratios, not digits.")
    w("")
    w("| | |")
    w("| --- | --- |")
    # The run's date: when its last result file was written, so that a
    # report made again from the same files (a wording change) keeps it.
    ran = max(os.path.getmtime(f) for f in (core_json, lua_tsv, gallery_tsv, forkjoin_tsv) if f and os.path.exists(f))
    w("| date | %s |" % datetime.datetime.fromtimestamp(ran, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    w("| machine | %s, %s CPUs, %s |" % (sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor(),
                                          os.cpu_count(), platform.platform()))
    w("| compiler | %s |" % sh("cc --version | head -1"))
    w("| LuaJIT / LÖVE | %s / %s |" % (sh("luajit -v | cut -d' ' -f1-2"), sh("love --version | head -1")))
    pk = lambda p: sh("dpkg-query -W -f='${Version}' %s" % p)
    w("| peers | oneTBB %s (libtbb-dev), GCC libgomp (OpenMP), ck %s (ck_ring), luv %s (lua-luv) |"
      % (pk("libtbb-dev"), pk("libck-dev"), pk("lua-luv")))
    w("| Google Benchmark | %s; hwloc %s |" % (pk("libbenchmark-dev"), pk("libhwloc-dev")))
    w("")
    w("Peers the targets mention but Debian 12 does not package, so they cannot be measured here:")
    w("enkiTS and Lace. The Async 1.1 column is `bench/love/baseline.lua`, a re-creation of Async 1.1's")
    w("design (love.thread workers, tables through one request Channel, fresh environment per call),")
    w("since the original is not available offline.")
    w("")

    # ---- fib ----
    w("## fib(30), one spawn/sync pair per call")
    w("")
    w("%d spawn/sync pairs. Cost per pair = (time at 1 worker − serial time) / pairs; speedup = time at 1 worker /" % tasks)
    w("time at 2. The plain Chase–Lev deque with frames on the stack (`bench/peers_cl.c`) is the baseline the")
    w("split deque is measured against.")
    w("")
    w("| | time, 1 worker | time, 2 workers | cost per pair, 1 worker | 2-worker speedup |")
    w("| --- | --- | --- | --- | --- |")
    w("| serial | %.2f ms | | | |" % serial)
    rows = {}
    for key, label in (("fork", "async inline API (`async_spawn`/`async_sync`, split deque): BM_fib_fork"),
                       ("async", "async record wrappers (`async_job_spawn`/`sync`): BM_fib_async"),
                       ("cl", "plain Chase–Lev, frames on the stack: BM_fib_cl"),
                       ("omp", "OpenMP tasks: BM_fib_omp"), ("tbb", "oneTBB task_group: BM_fib_tbb")):
        if "BM_fib_%s/1" % key not in c:
            continue
        t1, t2 = ms(c["BM_fib_%s/1" % key]), ms(c["BM_fib_%s/2" % key])
        ov = (t1 - serial) * 1e6 / tasks
        rows[key] = (ov, t1 / t2)
        w("| %s | %.1f ms | %.1f ms | %.2f ns | %.2f× |" % (label, t1, t2, ov, t1 / t2))
    if "BM_fib_deque" in c:
        dq = ms(c["BM_fib_deque"])
        w("| the Chase–Lev deque (`core/src/deque.c`) alone, one thread, no pool, no thieves: BM_fib_deque | %.1f ms | | %.2f ns | |" % (dq, (dq - serial) * 1e6 / tasks))
    ours_ov, ours_sp = rows["fork"]
    w("")
    w("| target | this run | |")
    w("| --- | --- | --- |")
    w("| ≤ 2 ns per pair at 1 worker, inline API | %.2f ns (%.2f× the plain Chase–Lev's %.2f ns) | %s |"
      % (ours_ov, ours_ov / rows["cl"][0], rows["cl"][0], verdict(ours_ov <= 2)))
    w("| 2-worker speedup ≥ 1.9×, inline API | %.2f× | %s |" % (ours_sp, verdict(ours_sp >= 1.9)))
    w("")
    pointer(w, not (ours_ov <= 2 and ours_sp >= 1.9), "Split deque: fib(30) on the inline spawn/sync")
    chart.append(("fib pair cost: plain Chase-Lev / ours", rows["cl"][0] / ours_ov))
    chart.append(("fib pair cost: OpenMP / ours", rows["omp"][0] / ours_ov))
    chart.append(("fib pair cost: oneTBB / ours", rows["tbb"][0] / ours_ov))

    if forkjoin_tsv:
        forkjoin_section(forkjoin_tsv, w, chart)

    # ---- submit ----
    w("## 1,000,000 empty jobs from one non-worker thread to 2 workers")
    w("")
    w("| | jobs/s | target ≥ 30 M/s |")
    w("| --- | --- | --- |")
    sub = {}
    for key, label in (("BM_submit_async/0", "async, one `async_pool_submit` per job"),
                       ("BM_submit_async/1", "async, `async_pool_submit_array` (1,024 per batch)"),
                       ("BM_submit_omp", "OpenMP tasks (one thread creates them)"), ("BM_submit_tbb", "oneTBB task_arena::enqueue from outside"),
                       ("BM_submit_ckring", "plain ck_ring SPMC, consumers spinning")):
        rate = c[key]["items_per_second"]
        sub[key] = rate
        target = verdict(rate >= 30e6) if key.startswith("BM_submit_async") else ""
        w("| %s | %.2f M | %s |" % (label, rate / 1e6, target))
    w("")
    pointer(w, min(sub["BM_submit_async/0"], sub["BM_submit_async/1"]) < 30e6, "Where the time goes, and why targets are missed")
    chart.append(("submit rate: ours / OpenMP", sub["BM_submit_async/0"] / sub["BM_submit_omp"]))
    chart.append(("submit rate: ours / oneTBB", sub["BM_submit_async/0"] / sub["BM_submit_tbb"]))
    chart.append(("submit rate: ours / ck_ring", sub["BM_submit_async/0"] / sub["BM_submit_ckring"]))

    # ---- pfor ----
    w("## Parallel-for over 10,000,000 floats (24 multiply-adds each)")
    w("")
    ps = ms(c["BM_pfor_serial"])
    w("| | 1 worker | 2 workers | speedup over serial (%.1f ms) | target ≥ 1.9× |" % ps)
    w("| --- | --- | --- | --- | --- |")
    sp = {}
    for key, label in (("fork", "async inline spawn/sync (split deque)"),
                       ("async", "async record wrappers"), ("omp", "OpenMP parallel for"), ("tbb", "oneTBB parallel_for")):
        if "BM_pfor_%s/1" % key not in c:
            continue
        t1, t2 = ms(c["BM_pfor_%s/1" % key]), ms(c["BM_pfor_%s/2" % key])
        sp[key] = ps / t2
        target = verdict(sp[key] >= 1.9) if key in ("fork", "async") else ""
        w("| %s | %.1f ms | %.1f ms | %.2f× | %s |" % (label, t1, t2, ps / t2, target))
    w("")
    pointer(w, sp["async"] < 1.9, "Where the time goes, and why targets are missed")
    chart.append(("parallel-for speedup: ours", sp["async"]))
    chart.append(("parallel-for speedup: OpenMP", sp["omp"]))
    chart.append(("parallel-for speedup: oneTBB", sp["tbb"]))

    # ---- idle ----
    idle = c["BM_idle"]
    w("## Idle pool")
    w("")
    w("| idle pool of 2 workers, CPU per second | target ~0 (read as ≤ 0.1 % of a core) | wake-up latency, median | p99 |")
    w("| --- | --- | --- | --- |")
    w("| %.3f %% of a core | %s | %.1f µs | %.1f µs |" % (idle["idle_cpu_pct"], verdict(idle["idle_cpu_pct"] <= 0.1),
                                                    idle["wake_median_us"], idle["wake_p99_us"]))
    w("")
    w("Wake-up latency is from a submit to a pool whose workers are asleep (2 ms after the last job) to the job")
    w("running: a futex wake and a context switch.")
    w("")

    lua_section(lua, w, chart)
    vs11_section(lua, w)

    if gallery_tsv:
        gallery_section(gallery_tsv, w, chart)

    w("## Lua: the data features against plain calls (2 workers, FFI path)")
    w("")
    w("| feature | with it | the same through plain calls |")
    w("| --- | --- | --- |")
    w("| 1 MiB of floats to a job that sums them, one call at a time | buffer: %s µs | string argument: %s µs |"
      % (L(lua, "feature_us/1MiB-as-buffer", "%.0f"), L(lua, "feature_us/1MiB-as-string-one-at-a-time", "%.0f")))
    w("| 2,000 items squared, one callback at the end | `async.map`: %s ms | 2,000 calls counted by hand: %s ms |"
      % (L(lua, "feature_ms/map"), L(lua, "feature_ms/plain-calls")))
    w("| 500 results that each need two sub-results | `awaitAll` inside one job: %s ms | main thread issues two calls, then a third: %s ms |"
      % (L(lua, "feature_ms/awaitAll-in-a-job", "%.1f"), L(lua, "feature_ms/main-thread-orchestrated", "%.1f")))
    w("| a 100,000-entry lookup table a job needs | built once per worker (`setWorkerInit`, `async.state`): %s µs/call | built in every call: %s µs/call |"
      % (L(lua, "feature_us/useState", "%.0f"), L(lua, "feature_us/buildEach", "%.0f")))
    w("| the A* map (above) | shared once: %s s | sent with every request: %s s |" % (L(lua, "astar_s/ours-shared"), L(lua, "astar_s/ours-sent")))
    w("")
    w("These compare ways of writing the same program; they have no targets. `async.map` and `awaitAll` buy a")
    w("simpler program more than speed; worker state and shared data save work a call would otherwise repeat.")
    w("")
    w("## Chart")
    w("")
    w("![ratios](ratios.png)")
    w("")
    w("Bars above 1 favour ours. Speedup bars are absolute (over serial).")
    w("")

    w("The profiles and explanations behind the misses are in `%s`; it is not copied here, so that" % ANALYSIS)
    w("this file holds only what the run measured.")
    w("")

    with open(out_md, "w") as f:
        f.write("\n".join(lines) + "\n")

    dat = out_png + ".dat"
    with open(dat, "w") as f:
        for label, ratio in chart:
            f.write('"%s" %.4f\n' % (label, ratio))
    gp = """set terminal pngcairo size 1300,660 font ",10" noenhanced
set output '%s'
set title 'async vs peers, this run (bars > 1 favour async; speedups are over serial)'
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -35 left
set grid ytics
set yrange [0:*]
set bmargin 12
set rmargin 14
unset key
plot '%s' using 2:xtic(1) linecolor rgb '#3a7bd5', 1 with lines dashtype 2 linecolor rgb '#aa3333'
""" % (out_png, dat)
    r = subprocess.run(["gnuplot"], input=gp, text=True, capture_output=True)
    if r.returncode != 0:
        print("report: gnuplot failed: " + r.stderr, file=sys.stderr)
        sys.exit(1)
    os.remove(dat)


if __name__ == "__main__":
    main()
