#!/usr/bin/env python3
"""report.py: turns one benchmark run into bench/RESULTS.md and a PNG chart.

    report.py core.json lua.tsv RESULTS.md ratios.png [gallery.tsv]

core.json is Google Benchmark's JSON (medians of the repetitions); lua.tsv
and gallery.tsv are the LÖVE benchmark's "name<TAB>value<TAB>unit" lines
(gallery.tsv: the workload gallery, several repetitions). Every ratio is
computed from this run's figures: peers ran beside ours, nothing is quoted.
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
    res = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                res[parts[0]] = float(parts[1])
    return res


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
    med = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    if len(v) == 1:
        return fmt % med, med
    return ("%s (%s–%s)" % (fmt % med, fmt % v[0], fmt % v[-1])), med


def gallery_section(path, w, chart):
    runs, order = load_gallery(path)
    reps = sorted({r for (_, _, r) in runs})
    systems = [("ours1", "async, 1 worker"), ("baseline1", "Async 1.1 design, 1 worker"),
               ("ours2", "async, 2 workers"), ("baseline2", "Async 1.1 design, 2 workers")]
    w("## Lua: the workload gallery (issue 13)")
    w("")
    w("Game jobs written as game code is (`bench/love/gallery_jobs.lua`: plain Lua tables, no FFI), each")
    w("run serially on LÖVE's main thread, then on ours and on the love.thread baseline with 1 and 2")
    w("workers: every request issued at once, then `update()` and a 1 ms sleep per frame until the last")
    w("callback. The five runs of a workload follow each other, and the whole gallery repeats %d times," % len(reps))
    w("so the systems alternate in the same time window. Speed-ups are serial wall time / wall time,")
    w("median (range) over the repetitions. The **worker tax** is the jobs' own thread-CPU time")
    w("(`CLOCK_THREAD_CPUTIME_ID`, read inside each job) in the workers over the same jobs' on the main")
    w("thread: it does not see queueing or the machine's load, so it is the steadiest figure here.")
    w("")
    w("| workload | serial | %s | worker tax: ours 1 / 2 workers | baseline 1 / 2 |" % " | ".join(l for _, l in systems))
    w("| --- | --- | %s | --- | --- |" % " | ".join("---" for _ in systems))
    verdicts = []
    for wl in order:
        serial = [runs[(wl, "serial", r)] for r in reps if (wl, "serial", r) in runs]
        row = ["%s" % wl, spread([x["wall_s"] for x in serial], "%.2f s")[0]]
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
            verdicts.append((wl, tax["ours1"][1], med["ours1"], med["ours2"], med["baseline2"]))
            chart.append(("gallery %s: 2 workers / serial" % wl, med["ours2"]))
    w("")
    w("Targets (medians): worker tax ≤ 1.03, 1 worker ≥ 0.97× serial, 2 workers ≥ 1.85× serial and ahead")
    w("of the baseline with 2 workers.")
    w("")
    w("| workload | tax ≤ 1.03 | 1 worker ≥ 0.97× | 2 workers ≥ 1.85× | ahead of the baseline at 2 |")
    w("| --- | --- | --- | --- | --- |")
    for wl, t, o1, o2, b2 in verdicts:
        w("| %s | %s (%.2f) | %s (%.2f×) | %s (%.2f×) | %s (%.2f× vs %.2f×) |" % (
            wl, verdict(t <= 1.03), t, verdict(o1 >= 0.97), o1, verdict(o2 >= 1.85), o2, verdict(o2 > b2), o2, b2))
    w("")
    faults = []
    for wl in order:
        cells = []
        for key in ("serial", "ours1", "baseline1"):
            v = [runs[(wl, key, r)]["jobfaults"] / runs[(wl, key, r)]["jobcpu_s"] for r in reps if (wl, key, r) in runs]
            cells.append(spread(v, "%.0f")[0] if v else "—")
        faults.append("| %s | %s |" % (wl, " | ".join(cells)))
    w("Minor page faults of the jobs' threads per second of job CPU (getrusage(RUSAGE_THREAD) inside each")
    w("job), the symptom behind the worker tax (see \"The worker tax\" below):")
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


def main():
    core_json, lua_tsv, out_md, out_png = sys.argv[1:5]
    gallery_tsv = sys.argv[5] if len(sys.argv) > 5 else None
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
    w("peers measured in the same run: medians of the repetitions for the core, single runs of the Lua")
    w("workloads (each averages thousands of calls). Ratios are computed, not quoted. This is a noisy")
    w("2-core virtual machine: run-to-run differences of 5-10 % are common, so read ratios, not digits.")
    w("")
    w("| | |")
    w("| --- | --- |")
    w("| date | %s |" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
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
    w("## fib(30), one task per call")
    w("")
    w("%d tasks. Overhead per task = (time at 1 worker − serial time) / tasks; speedup = time at 1 worker / time at 2." % tasks)
    w("")
    w("| | time, 1 worker | time, 2 workers | overhead per task | 2-worker speedup |")
    w("| --- | --- | --- | --- | --- |")
    w("| serial | %.2f ms | | | |" % serial)
    rows = {}
    for key, label in (("fork", "async inline spawn/sync (async/fork.h, split deque)"),
                       ("async", "async records (async_job_spawn/sync wrappers)"), ("cl", "plain Chase–Lev, frames on the stack (peers_cl.c)"),
                       ("omp", "OpenMP tasks"), ("tbb", "oneTBB task_group")):
        t1, t2 = ms(c["BM_fib_%s/1" % key]), ms(c["BM_fib_%s/2" % key])
        ov = (t1 - serial) * 1e6 / tasks
        rows[key] = (ov, t1 / t2)
        w("| %s | %.1f ms | %.1f ms | %.1f ns | %.2f× |" % (label, t1, t2, ov, t1 / t2))
    dq = ms(c["BM_fib_deque"])
    w("| plain Chase–Lev deque on ck_pr, 1 thread | %.1f ms | | %.1f ns | |" % (dq, (dq - serial) * 1e6 / tasks))
    ours_ov, ours_sp = rows["fork"]
    w("")
    w("Target (issue 14, inline API): at most 2 ns per task — %s (%.1f ns); 2-worker speedup at least 1.9× — %s (%.2f×)."
      % (verdict(ours_ov <= 2), ours_ov, verdict(ours_sp >= 1.9), ours_sp))
    chart.append(("fib task cost: OpenMP / ours", rows["omp"][0] / ours_ov))
    chart.append(("fib task cost: oneTBB / ours", rows["tbb"][0] / ours_ov))
    w("")

    # ---- submit ----
    w("## 1,000,000 empty jobs from one non-worker thread to 2 workers")
    w("")
    w("| | jobs/s |")
    w("| --- | --- |")
    sub = {}
    for key, label in (("BM_submit_async/0", "async, one submit per job"), ("BM_submit_async/1", "async, submit_array (1,024 per batch)"),
                       ("BM_submit_omp", "OpenMP tasks (one thread creates them)"), ("BM_submit_tbb", "oneTBB task_arena::enqueue from outside"),
                       ("BM_submit_ckring", "plain ck_ring SPMC, consumers spinning")):
        rate = c[key]["items_per_second"]
        sub[key] = rate
        w("| %s | %.2f M |" % (label, rate / 1e6))
    best = max(sub["BM_submit_async/0"], sub["BM_submit_async/1"])
    w("")
    w("Target: at least 20 M jobs/s — %s (%.1f M/s)." % (verdict(best >= 20e6), best / 1e6))
    chart.append(("submit rate: ours / OpenMP", sub["BM_submit_async/0"] / sub["BM_submit_omp"]))
    chart.append(("submit rate: ours / oneTBB", sub["BM_submit_async/0"] / sub["BM_submit_tbb"]))
    chart.append(("submit rate: ours / ck_ring", sub["BM_submit_async/0"] / sub["BM_submit_ckring"]))
    w("")

    # ---- pfor ----
    w("## Parallel-for over 10,000,000 floats (24 multiply-adds each)")
    w("")
    ps = ms(c["BM_pfor_serial"])
    w("| | 1 worker | 2 workers | speedup over serial (%.1f ms) |" % ps)
    w("| --- | --- | --- | --- |")
    sp = {}
    for key, label in (("fork", "async inline spawn/sync (async/fork.h, split deque)"),
                       ("async", "async records (async_job_spawn/sync wrappers)"), ("omp", "OpenMP parallel for"), ("tbb", "oneTBB parallel_for")):
        t1, t2 = ms(c["BM_pfor_%s/1" % key]), ms(c["BM_pfor_%s/2" % key])
        sp[key] = ps / t2
        w("| %s | %.1f ms | %.1f ms | %.2f× |" % (label, t1, t2, ps / t2))
    w("")
    w("Target: at least 1.9× — %s (%.2f×)." % (verdict(sp["async"] >= 1.9), sp["async"]))
    chart.append(("parallel-for speedup: ours", sp["async"]))
    chart.append(("parallel-for speedup: OpenMP", sp["omp"]))
    chart.append(("parallel-for speedup: oneTBB", sp["tbb"]))
    w("")

    # ---- idle ----
    idle = c["BM_idle"]
    w("## Idle")
    w("")
    w("| idle pool of 2 workers, CPU per second | wake-up latency, median | p99 |")
    w("| --- | --- | --- |")
    w("| %.3f %% of a core | %.1f µs | %.1f µs |" % (idle["idle_cpu_pct"], idle["wake_median_us"], idle["wake_p99_us"]))
    w("")
    w("Wake-up latency is from a submit to a pool whose workers are asleep (2 ms after the last job) to the job")
    w("running: a futex wake and a context switch.")
    w("")

    # ---- Lua ----
    def L(name):
        return lua.get(name)

    w("## Lua: round trip, main-thread cost, latency (LÖVE 11.4, 2 workers)")
    w("")
    w("| | async (ours) | Async 1.1 design | luv `uv.new_work` | target |")
    w("| --- | --- | --- | --- | --- |")
    rt = [L("roundtrip_us_per_call/ours"), L("roundtrip_us_per_call/async1.1-design"), L("roundtrip_us_per_call/luv")]
    mt = [L("mainthread_us_per_1000_calls/ours"), L("mainthread_us_per_1000_calls/async1.1-design"), L("mainthread_us_per_1000_calls/luv")]
    lt = [L("latency_us/ours"), L("latency_us/async1.1-design"), L("latency_us/luv")]
    fmt = lambda v: "%.2f" % v if v is not None else "—"
    w("| round trip of `a + b`, 100,000 calls, 1,000 per update, µs/call | %s | %s | %s | ≤ 0.35 — %s |"
      % (fmt(rt[0]), fmt(rt[1]), fmt(rt[2]), verdict(rt[0] <= 0.35)))
    w("| main thread's CPU inside call + update, µs per 1,000 calls | %s | %s | %s | ≤ 300 — %s |"
      % (fmt(mt[0]), fmt(mt[1]), fmt(mt[2]), verdict(mt[0] <= 300)))
    w("| one call at a time, idle pool, call to callback, µs (median) | %s | %s | %s | ≤ 10 — %s |"
      % (fmt(lt[0]), fmt(lt[1]), fmt(lt[2]), verdict(lt[0] <= 10)))
    s64 = [L("string64k_us_per_call/ours"), L("string64k_us_per_call/async1.1-design")]
    w("| a 64 KiB string argument, µs/call | %s | %s | — | ≤ 5 — %s |" % (fmt(s64[0]), fmt(s64[1]), verdict(s64[0] <= 5)))
    w("")
    chart.append(("round trip: Async1.1 design / ours", rt[1] / rt[0]))
    if rt[2]:
        chart.append(("round trip: luv / ours", rt[2] / rt[0]))
    chart.append(("main-thread cost: Async1.1 design / ours", mt[1] / mt[0]))
    chart.append(("latency: Async1.1 design / ours", lt[1] / lt[0]))

    w("## Lua: A* on a 256×256 grid with 30 % walls, 2,000 path requests")
    w("")
    w("| | wall time | speedup over serial | main thread's CPU |")
    w("| --- | --- | --- | --- |")
    w("| serial, on the main thread | %.2f s | 1.00× | %.2f s |" % (L("astar_s/serial"), L("astar_mainthread_cpu_s/serial")))
    for key, label in (("async1.1-design", "Async 1.1 design, map sent with every request"),
                       ("ours-sent", "async, map sent with every request"),
                       ("ours-shared", "async, map shared once (`async.share`)")):
        w("| %s | %.2f s | %.2f× | %.3f s |" % (label, L("astar_s/" + key), L("astar_speedup/" + key), L("astar_mainthread_cpu_s/" + key)))
        chart.append(("A* speedup: " + key, L("astar_speedup/" + key)))
    best_astar = L("astar_speedup/ours-shared")
    w("")
    w("Target: at least 1.9× with less main-thread CPU than the Async 1.1 design — %s (%.2f×). Every run's"
      % (verdict(best_astar >= 1.9 and L("astar_mainthread_cpu_s/ours-shared") < L("astar_mainthread_cpu_s/async1.1-design")), best_astar))
    w("path costs are checked equal to the serial run's. The shared-vs-sent rows are the issue 8 benchmark.")
    w("")

    if gallery_tsv:
        gallery_section(gallery_tsv, w, chart)

    w("## Lua: the codec alone")
    w("")
    co, sb = L("codec_ns_per_roundtrip/ours"), L("codec_ns_per_roundtrip/string.buffer")
    w("Encode + decode of `17, 2.5, \"unit-42\", {x = 10, y = 20, tags = {\"a\", \"b\"}, alive = true}`:")
    w("")
    w("| async codec | LuaJIT `string.buffer` | target |")
    w("| --- | --- | --- |")
    w("| %.0f ns | %.0f ns | at least as fast — %s |" % (co, sb, verdict(co <= sb)))
    chart.append(("codec: string.buffer / ours", sb / co))
    w("")

    w("## Lua: issue 8's features against plain calls (2 workers)")
    w("")
    w("| feature | with it | the same through plain calls |")
    w("| --- | --- | --- |")
    w("| 1 MiB of floats to a job that sums them, one call at a time | buffer: %.0f µs | string argument: %.0f µs |"
      % (L("feature_us/1MiB-as-buffer"), L("feature_us/1MiB-as-string-one-at-a-time")))
    w("| 2,000 items squared, one callback at the end | `async.map`: %.2f ms | 2,000 calls counted by hand: %.2f ms |"
      % (L("feature_ms/map"), L("feature_ms/plain-calls")))
    w("| 500 results that each need two sub-results | `awaitAll` inside one job: %.1f ms | main thread issues two calls, then a third: %.1f ms |"
      % (L("feature_ms/awaitAll-in-a-job"), L("feature_ms/main-thread-orchestrated")))
    w("| a 100,000-entry lookup table a job needs | built once per worker (`setWorkerInit`, `async.state`): %.0f µs/call | built in every call: %.0f µs/call |"
      % (L("feature_us/useState"), L("feature_us/buildEach")))
    w("| the A* map (above) | shared once: %.2f s | sent with every request: %.2f s |" % (L("astar_s/ours-shared"), L("astar_s/ours-sent")))
    w("")
    w("Buffers save the two copies of the megabyte (the sum in Lua dominates both). `async.map` and `awaitAll`")
    w("buy a simpler program more than speed: `map` was slower than the hand-written calls in one run and")
    w("faster in another; a job in `awaitAll` runs the parts itself or waits while its worker could run")
    w("another call, and was slower than main-thread orchestration in every run on 2 workers. Worker state")
    w("is where the time is (built once instead of per call).")
    w("")
    w("## Chart")
    w("")
    w("![ratios](ratios.png)")
    w("")
    w("Bars above 1 favour ours. Speedup bars are absolute (over serial).")
    w("")

    extra = os.path.join(os.path.dirname(out_md), "ANALYSIS.md")
    if os.path.exists(extra):
        w(open(extra).read())

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
