import json, sys, collections
path = sys.argv[1]
t = json.load(open(path))
names = {}; ev = collections.Counter(); bad = []; dropped = {}
for e in t["traceEvents"]:
    if e.get("ph") == "M" and e["name"] == "thread_name": names[e["tid"]] = e["args"]["name"]
for e in t["traceEvents"]:
    if e.get("ph") == "X" and names.get(e["tid"], "").startswith("async-w"):
        ev[e["name"]] += 1
    if e.get("name") == "dropped": dropped[e["tid"]] = e["args"]
print("tracks", sorted(set(names.values())), "dropped", dropped)
fails = 0
for line in open(path + ".expect"):
    parts = line.split()
    name, lo, hi, calls = bytes.fromhex(parts[0]).decode("utf-8"), int(parts[1]), int(parts[2]), int(parts[3])
    n = ev.pop(name, 0)
    status = "ok" if lo <= n <= hi else "MISMATCH"
    if status != "ok": fails += 1
    print(f"{status:8} {name[:40]!r:44} events {n:4} expected {lo}..{hi} stats.calls {calls}")
for name, n in ev.items():
    print(f"UNEXPECTED {name[:40]!r} {n}"); fails += 1
print("FAIL" if fails else "PASS")
