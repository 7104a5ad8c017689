#!/usr/bin/env python3
# SPDX-License-Identifier: MIT (see LICENSE)
# check_trace_json.py PROGRAM FILE: runs PROGRAM (trace_json.c) to write
# FILE, then reads FILE as a trace viewer would: valid JSON, a traceEvents
# list, each of the 1,000 labelled jobs exactly once as a complete event on
# a worker's track (a tid named async-w<i>), the 6 outside spans on two
# tracks named game and game1 (one name made valid UTF-8), and times in
# microseconds.
import json, re, subprocess, sys

prog, path = sys.argv[1], sys.argv[2]
subprocess.run([prog, path], check=True)
with open(path, encoding="utf-8") as f:
    doc = json.load(f)
events = doc["traceEvents"]
names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "thread_name"}
workers = {tid for tid, n in names.items() if re.fullmatch(r"async-w\d+", n)}
outside = {tid for tid, n in names.items() if re.fullmatch(r"game\d*", n)}
failures = []
def check(ok, what):
    if not ok:
        failures.append(what)

check(len(workers) == 2, "two worker tracks named async-w0, async-w1: %r" % names)
check(sorted(names[t] for t in outside) == ["game", "game1"], "two outside tracks: %r" % names)
seen = {}
spans = []
for e in events:
    if e.get("ph") == "X":
        check(isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float)) and e["dur"] >= 0,
              "ts/dur numbers: %r" % e)
    if e.get("ph") == "X" and e.get("cat") == "job":
        m = re.fullmatch(r"job-(\d+)", e["name"])
        check(m is not None, "a job named job-<i>: %r" % e)
        check(e["tid"] in workers, "a job on a worker track: %r" % e)
        if m:
            seen[int(m.group(1))] = seen.get(int(m.group(1)), 0) + 1
    if e.get("ph") == "X" and e.get("cat") == "span":
        spans.append(e)
check(sorted(seen) == list(range(1000)), "every job seen: %d distinct" % len(seen))
check(all(n == 1 for n in seen.values()), "each job once: %r" % {k: v for k, v in seen.items() if v != 1})
frames = [s for s in spans if s["name"] == 'frame "quoted"']
check(len(frames) == 5 and all(s["tid"] in outside for s in frames), "5 outside spans named as recorded: %r" % spans)
check(all(abs(s["dur"] - 1.5) < 1e-9 for s in frames), "span durations in microseconds (1.5): %r" % [s["dur"] for s in frames])
# The Latin-1 byte becomes U+FFFD; the UTF-8 characters stay.
check([s["name"] for s in spans if s not in frames] == ["caf\ufffd \u00e9t\u00e9"], "a non-UTF-8 name made valid: %r" % spans)
per_track = {}
for s in spans:
    per_track[s["tid"]] = per_track.get(s["tid"], 0) + 1
check(sorted(per_track.values()) == [2, 4], "4 spans on one outside track, 2 on the other: %r" % per_track)
for f in failures:
    print("FAIL:", f)
print("trace json: %d events, %d jobs, %d spans: %s" % (len(events), sum(seen.values()), len(spans),
      "ok" if not failures else "%d failed" % len(failures)))
sys.exit(1 if failures else 0)
