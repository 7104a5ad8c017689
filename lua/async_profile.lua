-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_profile.lua: the façade's profiling: async.startTrace, stopTrace,
-- timeline and now, the game thread's spans (each call, update() and
-- callback, recorded only while a trace is on: the wrappers below replace
-- the backend's call and update then, and nothing else runs while it is
-- off), and what the thread backend keeps in Lua where the native module
-- keeps it in C: the per-definition figures of stats().defs, the trace's
-- rings and the Chrome trace JSON writer (the same format as the core's
-- async_pool_trace_write).
local MSG = require(((...) or ""):match("^(.-)[^.]*$") .. "async_messages")
local P = {}

local type, floor, format = type, math.floor, string.format

-- The native module's trace entry points (profile.c, struct async_trace_api).
local okffi, ffi = pcall(require, "ffi")
if okffi then
  pcall(ffi.cdef, [[
struct async_trace_api {
  double (*now)(void);
  void (*record)(void *, const char *, double, double);
};
]])
else
  ffi = nil
end

-- Events kept per thread when startTrace is not told (the core's default).
P.DEFAULT_EVENTS = 65536
-- Track numbers as the core gives them: workers 0.., the game after.
local GAME_TRACK = 4096
-- Runs a definition's time and wait figures are taken over (profile.c).
local WINDOW = 256
-- The most events a thread's ring of Lua tables is let keep (thread
-- backend): three arrays of 2^24 slots are 400 MB already, and a ring grows
-- as it fills, so a larger one would run the game out of memory later
-- instead of being refused at startTrace.
P.MAX_LUA_EVENTS = 2 ^ 24

-- ---- per-definition figures (thread backend) ----------------------------------

-- The figures of `name`, made at its first define (so stats().defs lists
-- every name defined, called or not, as the native module does).
function P.defStat(stats, name)
  local s = stats[name]
  if s == nil then
    s = { calls = 0, failures = 0, cancels = 0, runs = 0, runTotal = 0, bytesIn = 0, bytesOut = 0,
          run = {}, wait = {}, n = 0, at = 0, summed = 0,
          runMean = 0, runP99 = 0, waitMean = 0, waitP99 = 0 }
    stats[name] = s
  end
  return s
end

-- A delivered call whose name had the figures `s` when it was made:
-- outcome "ok", "failed" or "cancelled"; t0 and t1 its run (nil when it
-- never started); tcall when it was made. Figures of a name undefined
-- since are no longer listed (as the native module's).
function P.defRecord(s, outcome, tcall, t0, t1)
  if s == nil then return end
  s.calls = s.calls + 1
  if outcome == "cancelled" then s.cancels = s.cancels + 1
  elseif outcome == "failed" then s.failures = s.failures + 1 end
  if t0 == nil or t1 == nil then return end
  local run = t1 - t0
  local wait = tcall and t0 > tcall and t0 - tcall or 0
  s.runTotal = s.runTotal + run
  local i = s.at + 1
  s.run[i], s.wait[i] = run, wait
  s.at = i % WINDOW
  if s.n < WINDOW then s.n = s.n + 1 end
  s.runs = s.runs + 1
end

local scratch = {}
local function meanP99(v, n)
  if n == 0 then return 0, 0 end
  local sum = 0
  for i = 1, n do scratch[i] = v[i]; sum = sum + v[i] end
  for i = n + 1, #scratch do scratch[i] = nil end
  table.sort(scratch)
  local k = math.ceil(0.99 * n)
  return sum / n, scratch[k > 0 and k or 1]
end

-- Fills defs as profile.c's l_stats_defs does (the same fields): an entry
-- per name defined now, the tables already there reused, the names
-- undefined since removed.
function P.defsFill(defs, stats)
  for name in pairs(defs) do
    if stats[name] == nil then defs[name] = nil end
  end
  for name, s in pairs(stats) do
    if s.summed ~= s.runs then
      s.runMean, s.runP99 = meanP99(s.run, s.n)
      s.waitMean, s.waitP99 = meanP99(s.wait, s.n)
      s.summed = s.runs
    end
    local d = defs[name]
    if type(d) ~= "table" then d = {}; defs[name] = d end
    d.calls, d.failures, d.cancels, d.runs = s.calls, s.failures, s.cancels, s.runs
    d.runTotal, d.runMean, d.runP99 = s.runTotal, s.runMean, s.runP99
    d.waitMean, d.waitP99, d.window = s.waitMean, s.waitP99, s.n
    -- Nothing is encoded on this backend (a Channel copies the values).
    d.bytesIn, d.bytesOut = 0, 0
  end
end

-- ---- a trace kept in Lua (thread backend) ------------------------------------

-- A ring of `cap` events (name, t0, t1 in three arrays): full, it overwrites
-- the oldest and counts it as dropped.
local function newRing(cap)
  return { cap = cap, n = 0, at = 0, dropped = 0, name = {}, t0 = {}, t1 = {} }
end

local function push(r, name, t0, t1)
  local i = r.at + 1
  r.name[i], r.t0[i], r.t1[i] = name, t0, t1
  r.at = i % r.cap
  if r.n < r.cap then r.n = r.n + 1 else r.dropped = r.dropped + 1 end
end

-- Calls fn(name, t0, t1) for each event, oldest first.
local function each(r, fn)
  local first = r.n < r.cap and 0 or r.at
  for k = 0, r.n - 1 do
    local i = (first + k) % r.cap + 1
    fn(r.name[i], r.t0[i], r.t1[i])
  end
end

local Trace = {}
Trace.__index = Trace

-- A trace recording from `since` on (jobs that started before are left
-- out when their results arrive).
function P.newTrace(events, since)
  return setmetatable({ on = true, events = events, since = since, tracks = {} }, Trace)
end

-- Records a span on `track` (a worker slot, or GAME_TRACK).
function Trace:record(track, name, t0, t1)
  if not self.on or t0 < self.since then return end
  local r = self.tracks[track]
  if r == nil then r = newRing(self.events); self.tracks[track] = r end
  push(r, name, t0, t1)
end

function Trace:recordGame(name, t0, t1) return self:record(GAME_TRACK, name, t0, t1) end

-- The timeline shape (docs/lua-api.md, Profiling): events that ended at or
-- after `since`, times plus offset.
function Trace:collect(since, offset, nworkers)
  local out = { workers = {}, game = {} }
  for i = 1, nworkers do out.workers[i] = {} end
  for track, r in pairs(self.tracks) do
    local list
    if track == GAME_TRACK then list = out.game
    else
      list = out.workers[track + 1]
      if list == nil then list = {}; out.workers[track + 1] = list end
    end
    each(r, function(name, t0, t1)
      if t1 >= since then list[#list + 1] = { name = name, t0 = t0 + offset, t1 = t1 + offset } end
    end)
  end
  -- Worker lists up to the highest: no holes for ipairs.
  local n = 0
  for k in pairs(out.workers) do if k > n then n = k end end
  for i = 1, n do out.workers[i] = out.workers[i] or {} end
  return out
end

-- ---- the Chrome trace JSON writer ---------------------------------------------

local ESC = { ['"'] = '\\"', ['\\'] = '\\\\' }
local byte = string.byte

-- The length of the UTF-8 sequence at s[i], or 0 when it is not one (as
-- the core's trace.c: overlong, surrogate and past-U+10FFFF forms are not).
local function utf8Len(s, i)
  local c, c1 = byte(s, i), byte(s, i + 1) or 0
  local n = c >= 0xF0 and c <= 0xF4 and 4 or c >= 0xE0 and c < 0xF0 and 3 or c >= 0xC2 and c < 0xE0 and 2 or 0
  for k = 1, n - 1 do
    local b = byte(s, i + k)
    if b == nil or b < 0x80 or b >= 0xC0 then return 0 end
  end
  if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 >= 0xA0) or (c == 0xF0 and c1 < 0x90)
      or (c == 0xF4 and c1 >= 0x90) then
    return 0
  end
  return n
end

-- A JSON string as the core writes it: quotes, backslashes and control
-- bytes escaped, bytes that are not UTF-8 as U+FFFD (a strict reader
-- accepts the file whatever the names' encoding).
local function jsonString(s)
  s = s:gsub('[%c"\\]', function(c) return ESC[c] or format("\\u%04x", c:byte()) end)
  if s:find("[\128-\255]") then
    local out, i = {}, 1
    while i <= #s do
      local c = byte(s, i)
      if c < 0x80 then
        out[#out + 1] = string.char(c)
        i = i + 1
      else
        local n = utf8Len(s, i)
        if n == 0 then out[#out + 1] = "\\ufffd"; i = i + 1 else out[#out + 1] = s:sub(i, i + n - 1); i = i + n end
      end
    end
    s = table.concat(out)
  end
  return '"' .. s .. '"'
end

-- The OS's reason in an io library message ("<path>: No such file or
-- directory", or the reason alone).
function P.osReason(err, path)
  err = tostring(err)
  if err:sub(1, #path + 2) == path .. ": " then return err:sub(#path + 3) end
  return err
end

-- Microseconds with three decimals, as the core writes them.
local function us(s) return format("%.3f", s * 1e6) end

-- Writes the trace as the core's async_pool_trace_write does: metadata
-- naming each track ("async-w0", ..., "game"), a "dropped" instant on a
-- track whose ring overwrote events (args.events: how many), jobs and
-- spans as "X" events.
function Trace:write(path, nslots)
  local f, err = io.open(path, "wb")
  -- io.open's message is "<path>: <the OS's reason>": the reason alone.
  if not f then return nil, MSG.TRACE_WRITE:format(path, P.osReason(err, path)) end
  local out, n, failed = {}, 0, nil
  local function put(s) n = n + 1; out[n] = s end
  put('{"displayTimeUnit":"ns","traceEvents":[\n')
  put('{"name":"process_name","ph":"M","pid":1,"args":{"name":"async"}}')
  local function thread(tid, name)
    put(format(',\n{"name":"thread_name","ph":"M","pid":1,"tid":%d,"args":{"name":%s}}', tid, jsonString(name)))
    put(format(',\n{"name":"thread_sort_index","ph":"M","pid":1,"tid":%d,"args":{"sort_index":%d}}', tid, tid))
  end
  for s = 0, nslots - 1 do thread(s, "async-w" .. s) end
  if self.tracks[GAME_TRACK] then thread(GAME_TRACK, "game") end
  local tracks = {}
  for track in pairs(self.tracks) do tracks[#tracks + 1] = track end
  table.sort(tracks)
  for _, track in ipairs(tracks) do
    local r = self.tracks[track]
    local cat = track == GAME_TRACK and "span" or "job"
    local first = true
    each(r, function(name, t0, t1)
      if first and r.dropped > 0 then
        put(format(',\n{"name":"dropped","cat":"trace","ph":"i","s":"t","pid":1,"tid":%d,"ts":%s,"args":{"events":%d}}',
          track, us(t0), r.dropped))
      end
      first = false
      put(format(',\n{"name":%s,"cat":"%s","pid":1,"tid":%d,"ts":%s,"ph":"X","dur":%s}', jsonString(name), cat,
        track, us(t0), us(t1 - t0)))
      if n >= 4096 then
        local okp, perr = f:write(table.concat(out, "", 1, n))
        if not okp then failed = failed or perr end
        n = 0
      end
    end)
  end
  put("\n]}\n")
  local okw, werr = f:write(table.concat(out, "", 1, n))
  local okc, cerr = f:close()
  if failed or not okw or not okc then
    return nil, MSG.TRACE_WRITE:format(path, P.osReason(failed or werr or cerr, path))
  end
  return true
end

-- ---- the façade ---------------------------------------------------------------

-- Installs async.startTrace, stopTrace, timeline, isTracing and now.
-- `private`: context() (the backend's context, or raises "not loaded"),
-- reroute() (makes async.lua take call and update from route() again),
-- misuse(msg), relay(pcall(...)), clock() (the backend module's now).
-- Returns route(ctx, call, update), the call and update async.lua uses,
-- and unloaded(), which ends the trace with its pool.
function P.install(async, private)
  local tracing = false -- whether this pool's game spans are recorded
  local recorded = false -- whether this pool keeps a recording (stopTrace(path) writes it again)
  local gameNow -- async.now: love.timer.getTime's clock inside LÖVE

  function async.now()
    if gameNow == nil then
      local okt, timer = pcall(require, "love.timer")
      gameNow = (okt and type(timer) == "table" and timer.getTime) or private.clock
    end
    return gameNow()
  end

  -- The labels of the game's spans, made once per name.
  local callLabel = setmetatable({}, { __index = function(t, k) local v = "call " .. k; t[k] = v; return v end })
  local cbLabel = setmetatable({}, { __index = function(t, k) local v = "callback " .. k; t[k] = v; return v end })

  -- A callback that records its own span; a callback this cannot wrap
  -- without changing what the call checks or does is left as it is (and
  -- not timed): a table with other fields, handlers that are not plain
  -- functions, `error = error` (recognised by identity).
  local builtinError = error
  local HANDLERS = { success = true, error = true, cancelled = true, key = true }

  -- The clock and the recorder of the game's spans for context c: through
  -- the FFI on the native backend (the JIT compiles the timed call then; a
  -- call of a C function through the Lua API would end its trace), else
  -- through c's methods.
  local function spans(c)
    if ffi and c.traceApi and jit and jit.status() then
      local cp, ap = c:traceApi()
      local ctxp, api = ffi.cast("void *", cp), ffi.cast("struct async_trace_api *", ap)
      -- c in the closure: the context stays alive while a span may be recorded into it.
      return api.now, function(label, t0, t1) if c then api.record(ctxp, label, t0, t1) end end
    end
    return private.clock, function(label, t0, t1) c:traceRecord(label, t0, t1) end
  end

  -- The backend's call and update, or, while a trace records, the same
  -- timed on the game's track.
  local function route(c, call, update)
    if not tracing then return call, update end
    local now, record = spans(c)
    local relay = private.relay
    -- Timed callbacks, made once per callback function and name (a closure
    -- made per call would end the JIT's trace of the caller's loop).
    -- Weak keys to the callbacks and weak values to the wrappers: a
    -- wrapper holds its callback, and LuaJIT's weak tables are not
    -- ephemerons, so a strong wrapper kept every callback (a closure made
    -- per call: all of them) while the trace recorded. A wrapper lives as
    -- long as a call in flight holds it; one collected is made again.
    local cache = setmetatable({}, { __mode = "k" })
    local byNameMeta = { __mode = "v" }
    local function makeTimed(f, label)
      return function(...)
        local t0 = now()
        f(...)
        record(label, t0, now())
      end
    end
    -- No closure made in here: its upvalues' closing is not compiled either.
    local function timed(f, name)
      local byName = cache[f]
      if byName == nil then byName = setmetatable({}, byNameMeta); cache[f] = byName end
      local w = byName[name]
      if w == nil then
        w = makeTimed(f, cbLabel[name])
        byName[name] = w
      end
      return w
    end
    local function wrapCallback(cb, name)
      local t = type(cb)
      if t == "function" then return timed(cb, name) end
      if t ~= "table" or getmetatable(cb) ~= nil then return cb end
      for k, v in next, cb do
        if not HANDLERS[k] or (k ~= "key" and type(v) ~= "function") then return cb end
      end
      local e = cb.error
      return { key = cb.key, success = cb.success and timed(cb.success, name),
               cancelled = cb.cancelled and timed(cb.cancelled, name),
               error = e and (rawequal(e, builtinError) and e or timed(e, name)) }
    end
    local function tcall(cb, name, ...)
      local t0 = now()
      -- pcall and relay: a misuse error is raised again at the game's line.
      local h = relay(pcall(call, wrapCallback(cb, name), name, ...))
      record(callLabel[name], t0, now())
      return h
    end
    local function tupdate(budget)
      local t0 = now()
      local n = update(budget)
      record("update", t0, now())
      return n
    end
    return tcall, tupdate
  end

  --- async.startTrace([{events = n}]): records a timeline from now on.
  function async.startTrace(opts)
    local events = 0
    if opts ~= nil then
      local misuse = private.misuse
      if type(opts) ~= "table" then
        misuse(MSG.TRACE_OPTIONS:format(type(opts)))
      end
      for k in pairs(opts) do
        if k ~= "events" then
          misuse(MSG.TRACE_UNKNOWN_OPTION:format(tostring(k)))
        end
      end
      events = opts.events or 0
      if type(events) ~= "number" or events < 0 or events ~= floor(events) then
        private.misuse(MSG.TRACE_EVENTS:format(tostring(opts.events)))
      end
    end
    local c = private.context()
    local okk, err = c:traceStart(events)
    if not okk then return nil, err end
    tracing, recorded = true, true
    private.reroute()
    return true
  end

  --- async.stopTrace([path]): stops recording; with a path, writes the
  --- trace there as Chrome trace event JSON. true, or nil and a message.
  --- Stopped, stopTrace(path) writes the last recording again (after a
  --- write that failed, say).
  function async.stopTrace(path)
    if path ~= nil and type(path) ~= "string" then
      private.misuse(MSG.TRACE_PATH:format(type(path)))
    end
    local c = private.context()
    if not tracing then
      if path ~= nil and recorded then return c:traceWrite(path) end
      private.misuse(MSG.TRACE_NOT_RECORDING)
    end
    tracing = false
    private.reroute()
    c:traceStop()
    if path == nil then return true end
    return c:traceWrite(path)
  end

  --- async.timeline([seconds = 1]): the last `seconds` of the trace as
  --- { now = t, workers = { [1] = { {name = s, t0 = t, t1 = t}, ... }, ... },
  --- game = { ... } }, times on async.now()'s clock.
  function async.timeline(seconds)
    if seconds ~= nil and (type(seconds) ~= "number" or not (seconds >= 0)) then
      private.misuse(MSG.TIMELINE_SECONDS:format(tostring(seconds)))
    end
    local c = private.context()
    local t = async.now()
    local offset = t - private.clock()
    local out = c:traceCollect(t - offset - (seconds or 1), offset)
    out.now = t
    return out
  end

  function async.isTracing() return tracing end

  -- stats().defs, filled when the game reads it: a game that reads
  -- stats().inflight every frame pays nothing per definition. The stats
  -- table's metatable finds its state here (weak keys: the table is the
  -- game's); stats(t) marks it stale, the first read of t.defs refills it.
  local defsState = setmetatable({}, { __mode = "k" })
  local DefsMeta = {
    __index = function(t, k)
      if k ~= "defs" then return nil end
      local st = defsState[t]
      if st == nil then return nil end
      if st.stale then
        st.defs = st.defs or {}
        st.ctx:statsDefs(st.defs)
        st.stale = false
      end
      return st.defs
    end,
  }
  local function stats(t)
    local c = private.context()
    local st = defsState[t]
    if st == nil then
      local mt = getmetatable(t)
      local d = rawget(t, "defs")
      if mt ~= nil then -- the game's own metatable: filled now
        if type(d) ~= "table" then d = {}; rawset(t, "defs", d) end
        c:statsDefs(d)
        return t
      end
      st = { defs = type(d) == "table" and d or nil }
      rawset(t, "defs", nil)
      defsState[t] = st
      setmetatable(t, DefsMeta)
    end
    st.stale, st.ctx = true, c
    return t
  end

  return { route = route, stats = stats, unloaded = function() tracing, recorded = false, false end }
end

return P
