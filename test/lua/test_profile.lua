-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_profile.lua: the profiling a game reads (docs/profiling-lua.md):
-- stats().defs against a known workload, the trace file async.stopTrace
-- writes (parsed here: each job once, named after its definition, on a
-- worker's track; the game's calls, update() and callbacks on its own),
-- async.timeline's shape, the bounded rings, and that tracing changes
-- nothing a game sees.

local function fresh(n)
  local async = require "async"
  async.load(n or 2)
  return async
end

-- A JSON reader, enough for the trace file: objects, arrays, strings (with
-- escapes), numbers, true/false/null. Raises on anything malformed.
local function parseJson(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local function fail(what) error(("JSON: %s at byte %d: %q"):format(what, pos, s:sub(pos, pos + 20)), 0) end
  local value
  local ESC = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t' }
  local function str()
    pos = pos + 1
    local out = {}
    while true do
      local c = s:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; return table.concat(out) end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        if e == "u" then
          local hex = s:sub(pos + 2, pos + 5)
          if not hex:match("^%x%x%x%x$") then fail("bad \\u escape") end
          out[#out + 1] = string.char(tonumber(hex, 16) % 256)
          pos = pos + 6
        elseif ESC[e] then
          out[#out + 1] = ESC[e]
          pos = pos + 2
        else
          fail("bad escape")
        end
      elseif c:byte() < 32 then
        fail("control byte in a string")
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      pos = pos + 1
      local t = {}
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      pos = pos + 1
      local t = {}
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return nil
    end
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if num == nil or num == "" then fail("unexpected input") end
    pos = pos + #num
    return tonumber(num)
  end
  local v = value()
  ws()
  if pos <= #s then fail("trailing input") end
  return v
end

local function readTrace(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  os.remove(path)
  -- UTF-8 whatever the names: no byte that never occurs in UTF-8.
  ok(not s:find("[\192\193\245-\255]"), "the file is UTF-8")
  local t = parseJson(s)
  ok(type(t) == "table" and type(t.traceEvents) == "table", "the file is {traceEvents = [...]}")
  -- Tracks by tid: their thread names, their complete events, their drops.
  local names, events, dropped = {}, {}, {}
  for _, e in ipairs(t.traceEvents) do
    if e.ph == "M" and e.name == "thread_name" then
      names[e.tid] = e.args.name
    elseif e.ph == "X" then
      ok(type(e.ts) == "number" and type(e.dur) == "number" and e.dur >= 0, "an X event has ts and dur >= 0")
      events[#events + 1] = e
    elseif e.name == "dropped" then
      dropped[e.tid] = e.args.events
    end
  end
  return { names = names, events = events, dropped = dropped }
end

-- How many X events named `name` lie on tracks whose thread name matches `track`.
local function count(tr, name, track)
  local n = 0
  for _, e in ipairs(tr.events) do
    if e.name == name and tostring(tr.names[e.tid]):match(track) then n = n + 1 end
  end
  return n
end

local function tmpPath()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".json"
end

test("stats().defs counts each definition's calls, failures and cancels exactly", function()
  local async = fresh(1)
  async.define("add", function(a, b) return a + b end)
  async.define("boom", function() error("boom") end)
  async.define("never", function() end)
  -- Holds the one worker until the game cancels it.
  async.define("hold", function()
    local deadline = os.clock() + 20
    while not async.cancelled() and os.clock() < deadline do end
    return 0
  end)
  local hold = async.call(nil, "hold")
  waitFor(async, function() return hold:status() == "running" end, "the holding job to start")
  local queued = {}
  for i = 1, 5 do queued[i] = async.call(nil, "add", i, 1) end
  for i = 1, 5 do ok(queued[i]:cancel(), "a queued call is cancelled") end
  local sum = 0
  for i = 1, 8 do async.call(function(r) sum = sum + r end, "add", i, 0) end
  local errors = 0
  for _ = 1, 7 do async.call({ error = function() errors = errors + 1 end }, "boom") end
  hold:cancel()
  drain(async)
  eq(sum, 36, "the calls that ran")
  eq(errors, 7, "the failures delivered")
  local defs = async.stats().defs
  ok(type(defs) == "table", "stats().defs is a table")
  eq(defs.add.calls, 13, "add: calls (ran or cancelled)")
  eq(defs.add.cancels, 5, "add: cancels")
  eq(defs.add.failures, 0, "add: failures")
  eq(defs.boom.calls, 7, "boom: calls")
  eq(defs.boom.failures, 7, "boom: failures")
  eq(defs.boom.cancels, 0, "boom: cancels")
  eq(defs.hold.calls, 1, "hold: calls")
  eq(defs.hold.cancels, 0, "hold: a running call asked to stop is not cancelled")
  eq(defs.never.calls, 0, "a definition never called is listed")
  eq(defs.never.runs, 0, "... with no runs")
  eq(defs.never.runMean, 0, "... and no times")
  for name, d in pairs(defs) do
    for _, f in ipairs({ "calls", "failures", "cancels", "runs", "window", "runTotal", "runMean", "runP99",
                         "waitMean", "waitP99", "bytesIn", "bytesOut" }) do
      eq(type(d[f]), "number", name .. "." .. f)
    end
  end
  -- The first call of a definition is always timed; cancelled ones never run.
  for _, name in ipairs({ "add", "boom", "hold" }) do
    local d = defs[name]
    ok(d.runs >= 1 and d.runs <= d.calls - d.cancels, name .. ": timed runs within the calls that ran")
    eq(d.window, math.min(d.runs, 256), name .. ": the window holds the last runs")
    ok(d.runMean > 0 and d.runP99 > 0, name .. ": run times are positive")
    ok(d.waitMean >= 0 and d.waitP99 >= 0, name .. ": waits are not negative")
    -- Each timed run counts once or more in the total (once per call it stands for).
    ok(d.runTotal >= d.runMean * d.window * 0.999, name .. ": runTotal covers the window's runs")
    ok(d.runP99 <= d.runTotal * 1.001, name .. ": p99 is one of the runs")
  end
  async.shutdown()
end)

test("stats().defs keeps a name's figures across redefinition, and refills the caller's table", function()
  local async = fresh()
  async.define("f", function() return 1 end)
  for _ = 1, 3 do async.call(nil, "f") end
  drain(async)
  async.define("f", function() return 2 end)
  for _ = 1, 2 do async.call(nil, "f") end
  drain(async)
  local t = async.stats()
  local d = t.defs.f
  eq(d.calls, 5, "calls of both versions")
  async.call(nil, "f")
  drain(async)
  local t2 = async.stats(t)
  ok(t2 == t and t2.defs.f == d, "the same tables, refilled")
  eq(d.calls, 6, "refilled")
  async.shutdown()
end)

test("stats().defs counts the encoded bytes in and out", { needs = { "encodedSizes" } }, function()
  local async = fresh()
  async.define("echo", function(s) return s, s end)
  local s = ("x"):rep(1000)
  for _ = 1, 4 do async.call(nil, "echo", s) end
  drain(async)
  local d = async.stats().defs.echo
  ok(d.bytesIn >= 4 * 1000, "bytesIn holds the arguments: " .. d.bytesIn)
  ok(d.bytesOut >= 4 * 2000, "bytesOut holds the results: " .. d.bytesOut)
  async.shutdown()
end)

-- A known workload on 2 workers with a trace on: 20 alpha, 10 beta.
local function workload(async)
  async.define("alpha", function(n) local x = 0 for i = 1, n do x = x + i end return x end)
  async.define("beta", function() return "b" end)
  local got = 0
  for i = 1, 20 do async.call(function() got = got + 1 end, "alpha", 1000 + i) end
  for _ = 1, 10 do async.call({ success = function() got = got + 1 end }, "beta") end
  drain(async)
  eq(got, 30, "every callback ran")
end

test("stopTrace writes each job once, named after its definition, on a worker's track", function()
  local async = fresh(2)
  async.define("before", function() return 0 end)
  async.call(nil, "before")
  drain(async)
  ok(async.startTrace(), "startTrace")
  ok(async.isTracing(), "isTracing")
  workload(async)
  local path = tmpPath()
  ok(async.stopTrace(path), "stopTrace wrote the file")
  ok(not async.isTracing(), "stopped")
  local tr = readTrace(path)
  eq(count(tr, "alpha", "^async%-w%d+$"), 20, "alpha jobs on worker tracks")
  eq(count(tr, "beta", "^async%-w%d+$"), 10, "beta jobs on worker tracks")
  eq(count(tr, "before", "."), 0, "a job from before the trace")
  eq(count(tr, "call alpha", "^game$"), 20, "the game's calls of alpha")
  eq(count(tr, "call beta", "^game$"), 10, "the game's calls of beta")
  eq(count(tr, "callback alpha", "^game$"), 20, "alpha's callbacks")
  eq(count(tr, "callback beta", "^game$"), 10, "beta's callbacks")
  ok(count(tr, "update", "^game$") >= 1, "update() on the game's track")
  -- Spans nest: a callback lies within an update.
  local inside = 0
  for _, cb in ipairs(tr.events) do
    if cb.name == "callback alpha" then
      for _, u in ipairs(tr.events) do
        if u.name == "update" and u.tid == cb.tid and u.ts <= cb.ts and cb.ts + cb.dur <= u.ts + u.dur + 0.002 then
          inside = inside + 1
          break
        end
      end
    end
  end
  eq(inside, 20, "each callback lies within an update")
  -- Calls made after stopTrace are not recorded, and change nothing.
  async.call(nil, "alpha", 1)
  drain(async)
  eq(async.stats().defs.alpha.calls, 21, "figures go on without a trace")
  async.shutdown()
end)

test("a definition named in another encoding still gives a UTF-8 file", function()
  local async = fresh(1)
  local name = "caf\233 \"q\" \\ \1"
  async.define(name, function() return 1 end)
  ok(async.startTrace(), "startTrace")
  async.call(function() end, name)
  drain(async)
  local path = tmpPath()
  ok(async.stopTrace(path), "stopTrace")
  local f = assert(io.open(path, "rb"))
  local raw = f:read("*a")
  f:close()
  ok(raw:find("caf\\ufffd \\\"q\\\" \\\\ \\u0001", 1, true), "the name escaped, its bad byte as U+FFFD")
  local tr = readTrace(path)
  local jobs = 0
  for _, e in ipairs(tr.events) do
    if tostring(tr.names[e.tid]):match("^async%-w") and e.name:find("^caf") then jobs = jobs + 1 end
  end
  eq(jobs, 1, "the job, once")
  async.shutdown()
end)

test("timeline returns the recent jobs per worker and the game's spans", function()
  local async = fresh(2)
  ok(async.startTrace(), "startTrace")
  local t0 = async.now()
  workload(async)
  local tl = async.timeline(60)
  ok(type(tl.now) == "number" and tl.now >= t0, "now is on async.now()'s clock")
  ok(type(tl.workers) == "table" and type(tl.game) == "table", "workers and game lists")
  local alpha = 0
  for i, list in ipairs(tl.workers) do
    for _, e in ipairs(list) do
      ok(type(e.name) == "string", "worker " .. i .. ": a name")
      ok(e.t0 <= e.t1 and e.t1 <= tl.now + 1e-3, "worker " .. i .. ": t0 <= t1 <= now")
      if e.name == "alpha" then
        alpha = alpha + 1
        ok(e.t0 >= t0 - 1e-3, "a job of the workload started after startTrace")
      end
    end
  end
  eq(alpha, 20, "every alpha job, once")
  local updates = 0
  for _, e in ipairs(tl.game) do if e.name == "update" then updates = updates + 1 end end
  ok(updates >= 1, "update() spans")
  local none = async.timeline(0)
  ok(type(none.workers) == "table", "a zero window is a valid timeline")
  async.stopTrace()
  async.shutdown()
end)

test("a trace's rings keep the newest events and count the ones dropped", function()
  local async = fresh(2)
  async.define("tick", function(i) return i end)
  ok(async.startTrace({ events = 16 }), "startTrace with small rings")
  for i = 1, 100 do async.call(nil, "tick", i) end
  drain(async)
  local path = tmpPath()
  ok(async.stopTrace(path), "stopTrace")
  local tr = readTrace(path)
  local perTrack, anyDropped = {}, false
  for _, e in ipairs(tr.events) do perTrack[e.tid] = (perTrack[e.tid] or 0) + 1 end
  for tid, n in pairs(perTrack) do ok(n <= 16, ("track %s holds %d events, more than its ring"):format(tid, n)) end
  for _, d in pairs(tr.dropped) do if d > 0 then anyDropped = true end end
  ok(anyDropped, "a full ring says how many it dropped")
  ok(count(tr, "tick", "^async%-w%d+$") >= 1, "the newest jobs are kept")
  ok(count(tr, "tick", "^async%-w%d+$") < 100, "not all 100")
  async.shutdown()
end)

test("tracing changes nothing a callback or an error sees", function()
  local async = fresh(2)
  async.define("echo", function(...) return ... end)
  async.define("boom", function() error("kaboom") end)
  ok(async.startTrace(), "startTrace")
  local a, b, e, tb, c = nil, nil, nil, nil, 0
  async.call(function(x, y) a = x .. y end, "echo", "A", "B")
  async.call({ success = function(x) b = x end, error = function() end }, "echo", "S")
  async.call({ error = function(m, t) e, tb = m, t end }, "boom")
  -- "Latest request wins" still cancels the earlier call under a key.
  local first = async.call({ key = "k", cancelled = function() c = c + 1 end, success = function() end }, "echo", 1)
  async.call({ key = "k", success = function() end }, "echo", 2)
  drain(async)
  eq(a, "AB"); eq(b, "S")
  ok(tostring(e):find("kaboom", 1, true) and tostring(tb):find("traceback", 1, true), "error value and traceback")
  ok(first:status() == "done", "the superseded call is done")
  ok(c <= 1, "a superseded call hears cancelled at most once")
  -- error = error still raises the message with the worker's traceback.
  async.call({ error = error }, "boom")
  local okk, msg = pcall(drain, async)
  ok(not okk and tostring(msg):find("kaboom", 1, true) and tostring(msg):find("[worker]", 1, true),
    "{error = error} raises out of update: " .. tostring(msg))
  drain(async)
  -- Misuse is still raised with its own message, at the game's line.
  local line, okc, err = debug.getinfo(1, "l").currentline, pcall(function() async.call(nil, "nope") end)
  ok(not okc and tostring(err):find("test_profile.lua:" .. line .. ": async.call: no function named 'nope'", 1, true),
    "misuse at the caller's line: " .. tostring(err))
  raises("unknown field 'sucess'", async.call, { sucess = function() end }, "echo")
  -- A callback that raises propagates out of update, and the next update goes on.
  async.call(function() error("from the callback") end, "echo", 1)
  local r
  async.call(function(x) r = x end, "echo", 2)
  raises("from the callback", drain, async)
  drain(async)
  eq(r, 2, "the next update delivers the rest")
  ok(async.stopTrace(), "stopTrace without a path")
  async.shutdown()
end)

test("misuse of the trace functions raises", function()
  local async = require "async"
  raises("call async.load() first", async.startTrace)
  raises("call async.load() first", async.timeline)
  async.load(1)
  raises("no trace is recording", async.stopTrace)
  raises("unknown option 'bogus'", async.startTrace, { bogus = 1 })
  raises("events must be a whole number", async.startTrace, { events = -1 })
  raises("expected nothing or {events = n}", async.startTrace, 5)
  raises("seconds must be a number", async.timeline, "x")
  ok(async.startTrace(), "startTrace")
  raises("the path must be a string", async.stopTrace, 5)
  local okk, err = async.stopTrace("/nonexistent-dir/x/trace.json")
  ok(okk == nil and type(err) == "string" and err:find("cannot write", 1, true), "an unwritable path: nil, message")
  raises("no trace is recording", async.stopTrace)
  -- shutdown ends the trace with its pool.
  ok(async.startTrace(), "startTrace again")
  async.shutdown()
  async.load(1)
  ok(not async.isTracing(), "a new pool starts untraced")
  async.shutdown()
end)

test("tracing can start and stop while calls run", function()
  local async = fresh(2)
  async.define("work", function(n) local x = 0 for i = 1, n do x = x + i end return x end)
  local done = 0
  for round = 1, 20 do
    for _ = 1, 10 do async.call(function() done = done + 1 end, "work", 2000) end
    if round % 2 == 1 then ok(async.startTrace({ events = 64 }), "start") else ok(async.stopTrace(), "stop") end
    async.update()
  end
  drain(async)
  eq(done, 200, "every call delivered")
  local tl = async.timeline(60)
  ok(type(tl.workers) == "table", "a timeline after stopping")
  async.shutdown()
end)

test("a trace left on keeps no callback the game made per call", function()
  -- The usual game code makes a closure per call; a trace left on (for an
  -- overlay) must not keep every one of them: its memory is the rings'.
  local async = fresh(2)
  async.define("astar", function(x) return x end)
  ok(async.startTrace({ events = 256 }), "start")
  local seen = setmetatable({}, { __mode = "k" })
  local got = 0
  for frame = 1, 20 do
    for u = 1, 50 do
      local cb = function(p) got = got + p end
      seen[cb] = true
      async.call(cb, "astar", 1)
      async.call({ success = function() end }, "astar", 1)
    end
    drain(async)
  end
  eq(got, 1000, "every call delivered")
  collectgarbage()
  collectgarbage()
  local left = 0
  for _ in pairs(seen) do left = left + 1 end
  eq(left, 0, "callbacks still held by the trace")
  ok(async.stopTrace(), "stop")
  async.shutdown()
end)

test("a call cancelled before it ran is no anonymous job in the trace", function()
  -- A unit that changed its target (latest request wins) or a cancel:
  -- the worker still takes the queued record and hands it back unrun.
  -- That is no run of the definition, and no nameless "job" either.
  local async = fresh(1)
  async.define("block", function() local t = os.clock() + 0.05 while os.clock() < t do end return 0 end)
  async.define("repath", function(x) return x end)
  ok(async.startTrace(), "start")
  async.call(nil, "block")
  local unit = {}
  for target = 1, 5 do
    async.call({ key = unit, success = function() end, cancelled = function() end }, "repath", target)
  end
  local h = async.call(nil, "repath", 0)
  ok(h:cancel(), "cancelled while queued behind block")
  drain(async)
  eq(async.stats().defs.repath.cancels, 5, "four superseded, one cancelled")
  local path = tmpPath()
  ok(async.stopTrace(path), "stop")
  local tr = readTrace(path)
  eq(count(tr, "repath", "^async%-w%d+$"), 1, "the one run of repath")
  eq(count(tr, "job", "^async%-w%d+$") + count(tr, "", "^async%-w%d+$"), 0, "nameless jobs")
  -- The thread backend's workers never see a call cancelled while queued.
  eq(count(tr, "cancelled repath", "^async%-w%d+$"), async.backend == "native" and 5 or 0,
    "the cancelled ones, by name")
  async.shutdown()
end)

-- `cost` loop turns, timed by the job itself on a monotonic clock through
-- the FFI (os.clock is the process's CPU time, all workers together):
-- returns that time.
local function clockedJobs(async, name)
  async.define(name, function(cost)
    local clk = package.loaded.test_profile_clock
    if not clk then
      local ffi = require "ffi"
      if ffi.os == "Windows" then
        pcall(ffi.cdef, "int QueryPerformanceCounter(int64_t *); int QueryPerformanceFrequency(int64_t *);")
        local c, f = ffi.new("int64_t[1]"), ffi.new("int64_t[1]")
        ffi.C.QueryPerformanceFrequency(f)
        local hz = tonumber(f[0])
        clk = function() ffi.C.QueryPerformanceCounter(c); return tonumber(c[0]) / hz end
      else
        pcall(ffi.cdef, "struct test_ts { long s, ns; }; int clock_gettime(int, struct test_ts *);")
        local ts = ffi.new("struct test_ts")
        local id = ffi.os == "OSX" and 6 or 1 -- CLOCK_MONOTONIC
        clk = function() ffi.C.clock_gettime(id, ts); return tonumber(ts.s) + tonumber(ts.ns) * 1e-9 end
      end
      package.loaded.test_profile_clock = clk
    end
    local t0 = clk()
    local x = 0
    for i = 1, cost do x = x + i % 7 end
    return clk() - t0, x
  end)
end

test("stats().defs times a regular call order without locking onto its phase", { needs = { "jit" } }, function()
  -- A game asks for paths in a fixed order each frame: a costly call,
  -- then a cheap one. Timing one call in N at a fixed interval sees the
  -- same phase every time (N even: always the costly ones, or never).
  -- runTotal against the time the jobs measure themselves, for a
  -- definition called in that order and one called with the same
  -- arguments shuffled (which no interval locks onto) in the same frames:
  -- the same work, so the same ratio within 1.4x (each ratio is above 1:
  -- runTotal holds decoding and encoding around the job too). The median
  -- of 11 rounds: a timed run that a preemption hit stands for N calls,
  -- which throws a round off on a loaded machine.
  local async = fresh(2)
  clockedJobs(async, "fixed")
  clockedJobs(async, "shuffled")
  local costs = { 3000, 0 }
  local measured = { fixed = 0, shuffled = 0 }
  local function on(name) return function(dt) measured[name] = measured[name] + dt end end
  local cbFixed, cbShuffled = on("fixed"), on("shuffled")
  local rounds, st, order = {}, async.stats(), {}
  for round = 1, 11 do
    local f0, s0 = st.defs.fixed.runTotal, st.defs.shuffled.runTotal
    measured.fixed, measured.shuffled = 0, 0
    for _ = 1, 100 do
      -- the same 48 costs in a fixed order and shuffled
      for u = 1, 48 do order[u] = costs[(u - 1) % #costs + 1] end
      for u = 48, 2, -1 do local k = math.random(u); order[u], order[k] = order[k], order[u] end
      for u = 1, 48 do
        async.call(cbFixed, "fixed", costs[(u - 1) % #costs + 1])
        async.call(cbShuffled, "shuffled", order[u])
      end
      drain(async)
    end
    st = async.stats(st)
    local fixed = (st.defs.fixed.runTotal - f0) / measured.fixed
    local shuffled = (st.defs.shuffled.runTotal - s0) / measured.shuffled
    rounds[round] = { r = fixed / shuffled, text = ("%.2f/%.2f"):format(fixed, shuffled) }
  end
  table.sort(rounds, function(a, b) return a.r < b.r end)
  local texts = {}
  for i, x in ipairs(rounds) do texts[i] = x.text end
  local r = rounds[6].r
  ok(r > 1 / 1.4 and r < 1.4, "runTotal over the measured time, in a fixed order / shuffled, by round (sorted): "
    .. table.concat(texts, " "))
  async.shutdown()
end)

test("stats().defs holds the names defined now: undefine drops a name's figures", function()
  local async = fresh(2)
  async.define("keep", function(x) return x end)
  -- One-off names, each defined, called and undefined (a job per request).
  local got = 0
  for i = 1, 300 do
    local name = "once" .. i
    async.define(name, function(x) return x end)
    async.call(function() got = got + 1 end, name, i)
    async.undefine(name)
  end
  drain(async)
  eq(got, 300, "every one-off call delivered")
  local t = async.stats()
  local n = 0
  for name in pairs(t.defs) do n = n + 1; eq(name, "keep", "a name listed") end
  eq(n, 1, "names listed")
  -- Many names at once, each found again by name.
  for i = 1, 2000 do async.define("many" .. i, function(x) return x end) end
  for i = 1, 2000, 7 do async.call(nil, "many" .. i, i) end
  drain(async)
  async.stats(t)
  for i = 1, 2000 do eq(t.defs["many" .. i].calls, i % 7 == 1 and 1 or 0, "many" .. i .. ": calls") end
  -- Undefined and defined again: from zero. The table passed back loses it.
  async.call(nil, "keep", 1)
  drain(async)
  eq(async.stats(t).defs.keep.calls, 1, "keep: calls")
  async.undefine("keep")
  ok(async.stats(t).defs.keep == nil, "an undefined name leaves the table passed back")
  async.define("keep", function(x) return x end)
  eq(async.stats(t).defs.keep.calls, 0, "defined again: its figures start from zero")
  -- A call in flight when its name is undefined counts nowhere visible.
  async.define("late", function(x) return x end)
  local done = false
  async.call(function() done = true end, "late", 1)
  async.undefine("late")
  async.define("late", function(x) return x end)
  drain(async)
  ok(done, "the call of the old definition was delivered")
  eq(async.stats().defs.late.calls, 0, "the new definition's calls")
  async.shutdown()
end)

test("stats() fills defs only when the game reads it", function()
  local async = fresh(1)
  for i = 1, 300 do async.define("d" .. i, function(x) return x end) end
  async.call(nil, "d1", 1)
  drain(async)
  -- The idiom of a game's loop: stats().inflight, never .defs.
  async.stats()
  collectgarbage()
  collectgarbage("stop")
  local k0 = collectgarbage("count")
  for _ = 1, 20 do local _ = async.stats().inflight end
  local perCall = (collectgarbage("count") - k0) / 20
  collectgarbage("restart")
  ok(perCall < 16, ("stats() without reading defs: %.1f KiB a call, for 300 definitions"):format(perCall))
  -- Read, it is there; passed back, the same tables refilled.
  local t = async.stats()
  local defs = t.defs
  eq(defs.d1.calls, 1, "d1: calls")
  ok(t.defs == defs, "the same defs on a second read")
  async.call(nil, "d1", 2)
  drain(async)
  ok(async.stats(t) == t, "stats(t) returns t")
  ok(t.defs == defs and t.defs.d1.calls == 2, "stats(t): the same tables, refilled when read")
  local n = 0
  for _ in pairs(t.defs) do n = n + 1 end
  eq(n, 300, "every definition listed")
  -- A table with a metatable of the game's own gets defs filled at once.
  local own = setmetatable({}, { __index = function() return "game's" end })
  eq(async.stats(own).defs.d1.calls, 2, "a game's own stats table")
  async.shutdown()
  eq(t.defs.d1.calls, 2, "a table read after shutdown keeps the figures it had")
end)

test("a trace too big to hold is refused at startTrace", function()
  local async = fresh(2)
  async.define("w", function(x) return x end)
  local okk, err = async.startTrace({ events = 1e9 })
  ok(okk == nil and err == "async.startTrace: out of memory", "startTrace{events = 1e9}: nil, message: "
    .. tostring(okk) .. ", " .. tostring(err))
  ok(not async.isTracing(), "nothing records")
  ok(async.startTrace({ events = 1024 }), "a size that fits")
  for i = 1, 20 do async.call(nil, "w", i) end
  drain(async)
  local path = tmpPath()
  ok(async.stopTrace(path), "stopTrace")
  eq(count(readTrace(path), "w", "^async%-w%d+$"), 20, "the jobs recorded")
  async.shutdown()
end)

test("a trace that could not be written says why and can be written again", function()
  local async = fresh(2)
  async.define("w", function(x) return x end)
  ok(async.startTrace(), "startTrace")
  for i = 1, 10 do async.call(nil, "w", i) end
  drain(async)
  local bad = "/nonexistent-dir/x/trace.json"
  local okk, err = async.stopTrace(bad)
  ok(okk == nil and type(err) == "string", "an unwritable path: nil, message")
  ok(err:find("cannot write '" .. bad .. "': ", 1, true), "the message names the path: " .. err)
  ok(not err:find("could not be written", 1, true) and #err > #("async.stopTrace: cannot write '" .. bad .. "': "),
    "the message gives the OS's reason: " .. err)
  ok(not async.isTracing(), "the trace is stopped")
  local path = tmpPath()
  ok(async.stopTrace(path), "stopTrace(path), stopped: writes the recording kept")
  eq(count(readTrace(path), "w", "^async%-w%d+$"), 10, "the jobs recorded")
  raises("no trace is recording", async.stopTrace)
  async.shutdown()
  async.load(1)
  raises("no trace is recording", async.stopTrace, tmpPath())
  async.shutdown()
end)
