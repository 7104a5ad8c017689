-- SPDX-License-Identifier: MIT (see LICENSE)
-- main.lua: the Lua benchmarks, run headless in LÖVE 11.4 against ours, the
-- Async-1.1-design baseline (baseline.lua) and luv's uv.new_work pool, in
-- one process so the ratios are measured, not remembered.
--   love bench/love <folder with async.lua and async_native.so> [--part micro|rest] [--only-latency]
--                   [--quick] [--out FILE]
--   love bench/love <folder> --gallery [--reps N] [--only WORKLOAD] [--systems ours1,baseline2,...]
--                                     [--workloads hostile_workloads]
--                                     [--pin] [--quick] [--out FILE]
-- Prints (and writes to FILE) one "name<TAB>value<TAB>unit" line per figure.
-- --only-latency runs only the idle one-call latency (latency() below).
-- --gallery runs the workload gallery (gallery.lua) instead. --part micro
-- runs only the per-call figures (round trip, latencies, issue costs, the
-- codec), --part rest the others. Ours is named by its path: "ours" on the
-- FFI path, "ours-capi" under ASYNC_PATH=capi; that run measures ours alone
-- (the peers are measured in the FFI run beside it: run.sh).
-- Headless: an error must end the process with its traceback (LÖVE's
-- error screen would wait forever for a window that does not exist).
io.stdout:setvbuf("line")
function love.errorhandler(msg)
  io.stderr:write("Error: " .. debug.traceback(tostring(msg), 2) .. "\n")
  os.exit(1)
end

local libdir, quick, outfile, demodir, gallery, reps, pin, only, onlySystems, part, onlyLatency, wlmod
local out = {}

local function emit(name, value, unit)
  local line = ("%s\t%.6g\t%s"):format(name, value, unit)
  out[#out + 1] = line
  print(line)
end

local now = love.timer.getTime
-- The main thread's own CPU time: what the game pays, not what it waits.
local ffi = require "ffi"
ffi.cdef [[
  struct async_bench_ts { long tv_sec; long tv_nsec; };
  int clock_gettime(int clk, struct async_bench_ts *ts);
]]
local tsbuf = ffi.new("struct async_bench_ts")
local function cpu()
  ffi.C.clock_gettime(3, tsbuf) -- CLOCK_THREAD_CPUTIME_ID
  return tonumber(tsbuf.tv_sec) + tonumber(tsbuf.tv_nsec) * 1e-9
end
local function median(t)
  table.sort(t)
  return t[math.max(1, math.floor(#t / 2 + 0.5))]
end

-- Each system behind one small interface: define, call, update, inflight.
local systems = {}

local function oursSystem(async)
  return {
    name = "ours",
    define = function(n, f) async.define(n, f) end,
    call = async.call,
    update = function() async.update() end,
    inflight = function() return async.stats().inflight end,
  }
end

local function drain(sys)
  local t0 = now()
  while sys.inflight() > 0 do
    sys.update()
    if now() - t0 > 300 then error(sys.name .. ": calls did not finish") end
  end
end

-- Round trip of add(a, b): N calls issued 1,000 per update(), as a game
-- would per frame. Wall time per call, and the main thread's time inside
-- call + update per 1,000 calls.
local function roundtrip(sys, N)
  sys.define("add", function(a, b) return a + b end)
  local got, sum = 0, 0
  local cb = function(r) got = got + 1; sum = sum + r end
  -- Warm up (JIT, records, worker states) before measuring.
  for i = 1, 2000 do sys.call(cb, "add", i, 1) end
  while got < 2000 do sys.update() end
  got = 0
  local t0, c0 = now(), cpu()
  for b = 1, N / 1000 do
    for i = 1, 1000 do sys.call(cb, "add", i, b) end
    sys.update()
  end
  while got < N do sys.update() end
  local total = now() - t0
  assert(got == N)
  emit("roundtrip_us_per_call/" .. sys.name, total / N * 1e6, "us")
  -- Main-thread cost alone: the same calls, waiting by sleeping so that
  -- only call + update count.
  got = 0
  c0 = cpu()
  for b = 1, N / 1000 do
    for i = 1, 1000 do sys.call(cb, "add", i, b) end
    sys.update()
    love.timer.sleep(0.0002)
  end
  while got < N do sys.update(); love.timer.sleep(0.0002) end
  emit("mainthread_us_per_1000_calls/" .. sys.name, (cpu() - c0) / (N / 1000) * 1e6, "us")
end

local function percentile(t, p)
  table.sort(t)
  return t[math.max(1, math.ceil(p * #t))]
end

-- One call at a time on an idle pool: call to callback, median and p99.
-- The 3 ms pause lets the workers go to sleep, so each sample includes
-- waking one.
local function latency(sys, samples)
  sys.define("id", function(x) return x end)
  local lat = {}
  for i = 1, samples do
    love.timer.sleep(0.003)
    local done = false
    local t0 = now()
    sys.call(function() done = true end, "id", i)
    while not done do sys.update() end
    lat[#lat + 1] = now() - t0
  end
  emit("latency_us/" .. sys.name, percentile(lat, 0.5) * 1e6, "us")
  emit("latency_p99_us/" .. sys.name, percentile(lat, 0.99) * 1e6, "us")
end

-- Call to callback under a steady load: frames of 16 ms,
-- each issuing 1,000 calls, then update() every 0.5 ms until the frame
-- ends (a game updating once a frame would quantise every latency to the
-- frame). A system that cannot keep up shows a growing backlog in its p99.
local FRAME = 0.016
local function steadyLatency(sys, frames)
  sys.define("echo", function(i) return i end)
  local t0, lat, n = {}, {}, 0
  local cb = function(i) lat[#lat + 1] = now() - t0[i] end
  local function pollUntil(t)
    repeat
      sys.update()
      love.timer.sleep(0.0005)
    until now() >= t
  end
  for _ = 1, frames do
    local f0 = now()
    for _ = 1, 1000 do
      n = n + 1
      t0[n] = now()
      sys.call(cb, "echo", n)
    end
    pollUntil(f0 + FRAME)
  end
  local w0 = now()
  while #lat < n do
    pollUntil(now())
    if now() - w0 > 120 then error(sys.name .. ": steady-load calls did not finish") end
  end
  emit("steady_p50_us/" .. sys.name, percentile(lat, 0.5) * 1e6, "us")
  emit("steady_p99_us/" .. sys.name, percentile(lat, 0.99) * 1e6, "us")
end

-- Issuing a flat {1..100} argument: the main thread's CPU time
-- inside call() alone (as bench/lua/paths.lua measures it; preemption on a
-- busy machine does not count), 100 calls at a time, the deliveries outside.
local function issueTable(sys, N)
  sys.define("count", function(t) return #t end)
  local arg = {}
  for i = 1, 100 do arg[i] = i end
  local got = 0
  local cb = function(c) assert(c == 100); got = got + 1 end
  local inside = 0
  for round = 0, N / 100 do -- round 0 warms up (JIT, records)
    local c0 = cpu()
    for _ = 1, 100 do sys.call(cb, "count", arg) end
    if round > 0 then inside = inside + (cpu() - c0) end
    while got < (round + 1) * 100 do sys.update() end
  end
  emit("table100_issue_us/" .. sys.name, inside / N * 1e6, "us")
end

-- A 64 KiB string argument, echoed back as its length.
local function bigstring(sys, N)
  sys.define("len", function(s) return #s end)
  local s = string.rep("x", 65536)
  local got = 0
  local t0 = now()
  for i = 1, N do
    sys.call(function(n) assert(n == 65536); got = got + 1 end, "len", s)
    if i % 100 == 0 then sys.update() end
  end
  while got < N do sys.update() end
  emit("string64k_us_per_call/" .. sys.name, (now() - t0) / N * 1e6, "us")
end

-- A* on a 256x256 grid with 30 % walls: the map sent with every request
-- (as Async 1.1 must), or shared once (ours, async.share).
local SIZE = 256
local function astarRequests(n)
  local rng = love.math.newRandomGenerator(5)
  local r = {}
  for i = 1, n do r[i] = { rng:random(0, SIZE - 1), rng:random(0, SIZE - 1), rng:random(0, SIZE - 1), rng:random(0, SIZE - 1) } end
  return r
end

local function astar(sys, map, reqs, shared, async)
  if shared then
    async.share("map", map)
    sys.define("astarShared", function(sx, sy, tx, ty)
      return require("astar").find(async.shared.map, 256, sx, sy, tx, ty)
    end)
  else
    sys.define("astar", function(m, sx, sy, tx, ty) return require("astar").find(m, 256, sx, sy, tx, ty) end)
  end
  local got, total = 0, 0
  local cb = function(c) got = got + 1; total = total + c end
  local t0, c0 = now(), cpu()
  for i, r in ipairs(reqs) do
    if shared then sys.call(cb, "astarShared", r[1], r[2], r[3], r[4])
    else sys.call(cb, "astar", map, r[1], r[2], r[3], r[4]) end
    if i % 50 == 0 then sys.update() end
  end
  -- Wait as a game would between frames (sleeping, not spinning), so the
  -- main thread does not take a core from the workers.
  while got < #reqs do
    sys.update()
    love.timer.sleep(0.001)
    if now() - t0 > 300 then error(sys.name .. ": A* requests did not finish in 300 s") end
  end
  return now() - t0, cpu() - c0, total
end

-- The codec alone against LuaJIT's string.buffer: encode + decode of
-- typical arguments ("mixed") and of a flat {1..100} ("array").
local function codec(native, N)
  local buffer = require "string.buffer"
  local arr = {}
  for i = 1, 100 do arr[i] = i end
  local cases = {
    mixed = { 17, 2.5, "unit-42", { x = 10, y = 20, tags = { "a", "b" }, alive = true } },
    array = { arr },
  }
  local enc, dec = native.encode, native.decode
  for _, case in ipairs({ "mixed", "array" }) do
    local args = cases[case]
    local n = case == "array" and math.floor(N / 10) or N
    local t0 = now()
    for _ = 1, n do
      local s = enc(unpack(args))
      local a, b, c, d = dec(s)
    end
    local ours = (now() - t0) / n
    t0 = now()
    for _ = 1, n do
      local s = buffer.encode(args)
      local t = buffer.decode(s)
    end
    local sb = (now() - t0) / n
    emit("codec_ns_per_roundtrip/" .. case .. "/ours", ours * 1e9, "ns")
    emit("codec_ns_per_roundtrip/" .. case .. "/string.buffer", sb * 1e9, "ns")
  end
end

-- Each feature against doing the same through plain calls.
local function features(async, scale)
  local ffi = require "ffi"
  local function waitFor(pred)
    local t0 = now()
    while not pred() do
      async.update()
      love.timer.sleep(0.0002)
      if now() - t0 > 120 then error("features: calls did not finish") end
    end
  end
  -- 1. A 1 MiB float array: sent as a string (copied both ways) vs an async buffer (zero-copy).
  local N = math.floor(200 * scale) + 20
  local floats = 262144
  local str = ffi.string(ffi.new("float[?]", floats, 1), 4 * floats)
  async.define("sumString", function(s)
    local p = require("ffi").cast("const float*", s)
    local t = 0
    for i = 0, #s / 4 - 1 do t = t + p[i] end
    return t
  end)
  async.define("sumBuffer", function(b)
    local p = b:ptr("float")
    local t = 0
    for i = 0, b:size() / 4 - 1 do t = t + p[i] end
    return t
  end)
  local buf = async.newBuffer(4 * floats)
  local bp = buf:ptr("float")
  for i = 0, floats - 1 do bp[i] = 1 end
  local got = 0
  local t0 = now()
  for _ = 1, N do async.call(function(v) assert(v == floats); got = got + 1 end, "sumString", str) end
  waitFor(function() return got == N end)
  emit("feature_us/1MiB-as-string", (now() - t0) / N * 1e6, "us")
  got = 0
  t0 = now()
  -- one buffer per call in flight would be the usual pattern; here one
  -- buffer is lent to each call in turn
  for _ = 1, N do
    async.call(function(v) assert(v == floats); got = got + 1 end, "sumBuffer", buf)
    waitFor(function() return not buf:isLent() end)
  end
  emit("feature_us/1MiB-as-buffer", (now() - t0) / N * 1e6, "us")
  got = 0
  t0 = now()
  for _ = 1, N do
    async.call(function(v) assert(v == floats); got = got + 1 end, "sumString", str)
    waitFor(function() return got > 0 end)
    got = 0
  end
  emit("feature_us/1MiB-as-string-one-at-a-time", (now() - t0) / N * 1e6, "us")
  -- 2. async.map over 2,000 items vs 2,000 calls counted by hand.
  async.define("sq", function(x) return x * x end)
  local list = {}
  for i = 1, math.floor(2000 * scale) + 200 do list[i] = i end
  local done = false
  t0 = now()
  async.map(function() done = true end, "sq", list)
  waitFor(function() return done end)
  emit("feature_ms/map", (now() - t0) * 1e3, "ms")
  local left = #list
  local res = {}
  t0 = now()
  for i, v in ipairs(list) do async.call(function(r) res[i] = r; left = left - 1 end, "sq", v) end
  waitFor(function() return left == 0 end)
  emit("feature_ms/plain-calls", (now() - t0) * 1e3, "ms")
  -- 3. A result needing two sub-results: awaitAll inside one job vs the
  -- main thread issuing two calls and then a third.
  async.define("part", function(x) local t = 0; for i = 1, 20000 do t = t + (x + i) % 7 end; return t end)
  async.define("combine", function(a, b) return a + b end)
  async.define("whole", function(x)
    local r = async.awaitAll({ { "part", x }, { "part", x + 1 } })
    return r[1] + r[2]
  end)
  local R = math.floor(500 * scale) + 50
  local fin = 0
  t0 = now()
  for i = 1, R do async.call(function() fin = fin + 1 end, "whole", i) end
  waitFor(function() return fin == R end)
  emit("feature_ms/awaitAll-in-a-job", (now() - t0) * 1e3, "ms")
  fin = 0
  t0 = now()
  for i = 1, R do
    local a, b
    local function both() if a and b then async.call(function() fin = fin + 1 end, "combine", a, b) end end
    async.call(function(v) a = v; both() end, "part", i)
    async.call(function(v) b = v; both() end, "part", i + 1)
  end
  waitFor(function() return fin == R end)
  emit("feature_ms/main-thread-orchestrated", (now() - t0) * 1e3, "ms")
  -- 4. Per-worker state: a lookup table built once per worker (setWorkerInit
  -- / async.state) vs built in every call.
  async.setWorkerInit(function(state) local t = {}; for i = 1, 100000 do t[i] = i * 2 end; state.table = t end)
  async.define("useState", function(i) return async.state.table[i] end)
  async.define("buildEach", function(i) local t = {}; for k = 1, 100000 do t[k] = k * 2 end; return t[i] end)
  local C = math.floor(300 * scale) + 30
  for _, name in ipairs({ "useState", "buildEach" }) do
    fin = 0
    t0 = now()
    for i = 1, C do async.call(function(v) assert(v == 2 * i); fin = fin + 1 end, name, i) end
    waitFor(function() return fin == C end)
    emit("feature_us/" .. name, (now() - t0) / C * 1e6, "us")
  end
  async.setWorkerInit(nil)
end

local function finish()
  if outfile then
    local f = assert(io.open(outfile, "w"))
    f:write(table.concat(out, "\n"), "\n")
    f:close()
  end
  love.event.quit(0)
end

function love.load(args)
  for i = 1, #args do
    if args[i] == "--quick" then quick = true
    elseif args[i] == "--out" then outfile = args[i + 1]
    elseif args[i] == "--demo" then demodir = args[i + 1]
    elseif args[i] == "--gallery" then gallery = true
    elseif args[i] == "--pin" then pin = true
    elseif args[i] == "--part" then part = args[i + 1]
    elseif args[i] == "--only-latency" then onlyLatency = true
    elseif args[i] == "--reps" then reps = tonumber(args[i + 1])
    elseif args[i] == "--only" then only = args[i + 1]
    elseif args[i] == "--systems" then onlySystems = args[i + 1]
    elseif args[i] == "--workloads" then wlmod = args[i + 1]
    elseif not ({ ["--out"] = 1, ["--demo"] = 1, ["--reps"] = 1, ["--only"] = 1, ["--systems"] = 1, ["--part"] = 1, ["--workloads"] = 1 })[args[i - 1]] then
      libdir = libdir or args[i]
    end
  end
  -- The A* workload is the demo's own (demo/pathing.lua); workers inherit
  -- this path.
  package.path = libdir .. "/?.lua;" .. (demodir or "demo") .. "/?.lua;" .. package.path
  package.cpath = libdir .. "/?.so;" .. package.cpath
  local async = require "async"
  local native = require "async_native"
  local baseline = require "baseline"
  local scale = quick and 0.1 or 1

  if gallery then
    require("gallery").run(async, baseline, emit, { reps = reps, scale = scale, pin = pin, only = only, systems = onlySystems, workloads = wlmod })
    return finish()
  end

  async.load(2)
  baseline.load(2)
  local ours = oursSystem(async)
  if async.getPath() == "capi" then ours.name = "ours-capi" end
  local onlyOurs = ours.name == "ours-capi"
  local base = {
    name = "async1.1-design", define = baseline.define, call = baseline.call,
    update = baseline.update, inflight = baseline.inflight,
  }

  -- luv's work pool (lua-luv), where installed: new_work per definition.
  local luvSys
  package.cpath = package.cpath .. ";/usr/lib/x86_64-linux-gnu/lua/5.1/?.so"
  local okLuv, uv = pcall(require, "luv")
  if okLuv then
    local works, inflight = {}, 0
    luvSys = {
      name = "luv",
      -- luv calls back in completion order, not call order: callbacks
      -- here only count, so a FIFO of them is equivalent.
      define = function(n, f)
        local cbs = { first = 1, last = 0 }
        works[n] = { cbs = cbs, work = uv.new_work(f, function(...)
          inflight = inflight - 1
          local cb = cbs[cbs.first]
          cbs[cbs.first] = nil
          cbs.first = cbs.first + 1
          cb(...)
        end) }
      end,
      call = function(cb, n, ...)
        inflight = inflight + 1
        local w = works[n]
        w.cbs.last = w.cbs.last + 1
        w.cbs[w.cbs.last] = cb
        w.work:queue(...)
      end,
      update = function() uv.run("nowait") end,
      inflight = function() return inflight end,
    }
  end

  local micro, rest = part ~= "rest", part ~= "micro"
  local peers = onlyOurs and { ours } or { ours, base, luvSys }
  if onlyLatency then
    for _, sys in ipairs(peers) do latency(sys, math.floor(300 * scale) + 30) end
  elseif micro then
    local N = math.floor(100000 * scale)
    for _, sys in ipairs(peers) do roundtrip(sys, N) end
    for _, sys in ipairs(peers) do steadyLatency(sys, math.floor(60 * scale) + 6) end
    for _, sys in ipairs(peers) do latency(sys, math.floor(300 * scale) + 30) end
    -- luv's queue_work carries no tables: {1..100} goes to ours and the baseline
    for _, sys in ipairs(peers) do if sys ~= luvSys then issueTable(sys, math.floor(20000 * scale) + 200) end end
    for _, sys in ipairs(peers) do if sys ~= luvSys then bigstring(sys, math.floor(2000 * scale) + 50) end end
    if not onlyOurs then codec(native, math.floor(200000 * scale)) end
  end
  if not rest or onlyOurs or onlyLatency then
    async.shutdown()
    baseline.shutdown()
    return finish()
  end

  local astarMod = require "astar"
  local map = astarMod.makeMap(SIZE, 0.3, 11)
  local reqs = astarRequests(math.floor(2000 * scale))
  local t0, c0 = now(), cpu()
  local serialTotal = 0
  for _, r in ipairs(reqs) do serialTotal = serialTotal + astarMod.find(map, SIZE, r[1], r[2], r[3], r[4]) end
  local serial = now() - t0
  emit("astar_s/serial", serial, "s")
  emit("astar_mainthread_cpu_s/serial", cpu() - c0, "s")
  local function runAstar(sys, label, shared)
    local wall, inside, total = astar(sys, map, reqs, shared, async)
    assert(total == serialTotal, label .. ": results differ from the serial run")
    emit("astar_s/" .. label, wall, "s")
    emit("astar_speedup/" .. label, serial / wall, "x")
    emit("astar_mainthread_cpu_s/" .. label, inside, "s")
  end
  runAstar(base, "async1.1-design", false)
  runAstar(ours, "ours-sent", false)
  runAstar(ours, "ours-shared", true)

  features(async, scale)

  async.shutdown()
  baseline.shutdown()
  finish()
end
