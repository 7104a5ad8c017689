#!/usr/bin/env python3
# SPDX-License-Identifier: MIT (see LICENSE)
# check_trace.py FILE [expect.json]: reads a trace file as a strict viewer
# would (json, UTF-8), then per track: X events must nest (no partial
# overlap; times compared as exact integers of ns from the decimal text),
# and with expectations, each labelled job/chunk exactly once.
import json, sys, re, collections
from decimal import Decimal
path = sys.argv[1]
raw = open(path, "rb").read()
doc = json.loads(raw.decode("utf-8"), parse_float=Decimal)
evs = doc["traceEvents"]
names = {e["tid"]: e["args"]["name"] for e in evs if e.get("ph") == "M" and e.get("name") == "thread_name"}
tracks = collections.defaultdict(list)
for e in evs:
    if e.get("ph") == "X":
        b = int(Decimal(e["ts"]) * 1000); d = int(Decimal(e["dur"]) * 1000)
        tracks[e["tid"]].append((b, b + d, e["name"], e.get("cat")))
bad = 0
for tid, xs in sorted(tracks.items()):
    xs.sort(key=lambda x: (x[0], -x[1]))
    stack = []
    for b, e, n, c in xs:
        while stack and stack[-1][1] <= b:
            stack.pop()
        if stack and e > stack[-1][1]:
            bad += 1
            if bad <= 8:
                p = stack[-1]
                print("PARTIAL OVERLAP on tid %s (%s): %s[%d,%d] cat=%s vs %s[%d,%d] cat=%s (by %d ns)" % (
                    tid, names.get(tid), p[2], p[0], p[1], p[3], n, b, e, c, e - p[1]))
        stack.append((b, e, n, c))
unnamed = [t for t in tracks if t not in names]
print("tracks:", {t: (names.get(t), len(x)) for t, x in sorted(tracks.items())})
print("partial overlaps:", bad, "; tracks without a name:", unnamed)
cnt = collections.Counter(x[2] for xs in tracks.values() for x in xs)
if len(sys.argv) > 2:
    exp = json.loads(open(sys.argv[2]).read())
    lab = [n for n in cnt if re.fullmatch(r"(task|sub|spawn)-.*", n)]
    pf = [n for n in cnt if n.startswith("pf-")]
    dup = {n: c for n, c in cnt.items() if c != 1 and re.fullmatch(r"(task|sub|spawn|pf)-.*", n)}
    print("labelled jobs: %d distinct (expected %d); pf chunks %d (expected %d); duplicates %d; unlabelled 'job' events %d" % (
        len(lab), exp["labelled"], len(pf), exp["pf"], len(dup), cnt.get("job", 0)))
    steals = sum(1 for e in evs if e.get("ph") == "i" and e.get("name") == "steal")
    print("steal instants %d, worker steal counters %d" % (steals, exp["steals"]))
    worker_job_events = sum(1 for t, xs in tracks.items() if t < 4096 for x in xs if x[3] == "job")
    print("job events on worker tracks %d; worker job counters %d" % (worker_job_events, exp["worker_jobs"]))
