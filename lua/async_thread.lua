-- async_thread.lua: the thread backend, used where the native module cannot
-- load (or with ASYNC_BACKEND=thread). It offers async.lua the same interface
-- as async_native (new -> context, call, update; the context's methods; call
-- handles), built on love.thread workers, Channels and a little FFI-visible
-- shared memory, so that async.lua stays the one façade for both backends.
--
-- What travels: requests go to the workers on one Channel, results come back
-- on another, and update() delivers them. Definitions, shared values and the
-- worker-init function are published as immutable snapshots (a Channel each,
-- read with peek), and every call carries the snapshot current when it was
-- made, as the native module does. The record states that cancel() and a
-- worker's start race on, the "stop asked" flags and the per-worker counters
-- live in love.data ByteData seen through the FFI; the races are decided
-- under a Channel's lock (performAtomic).
--
-- What it cannot do, refused with an error naming this backend: zero-copy
-- buffers, memoryLimit, and tables with cycles or shared sub-tables (a
-- Channel copies each occurrence).

-- Code shared by the game's state and the workers (which get it as source).
local COMMON = [==[
local C = {
  CALL = 1, NOOP = 2, QUIT = 3, SUB = 4,     -- request kinds (SUB: awaitAll parts waiting)
  OK = 0, FAILED = 1, CANCELLED = 2,         -- result kinds
  QUEUED = 0, RUNNING = 1, STOPPED = 2,      -- record states (STOPPED: cancelled before it ran)
  MAXDEPTH = 128,
  CHUNK = 1024,        -- records per shared-memory chunk: int32 state, int32 stop
  MAXSLOTS = 1024,     -- worker slots in shared memory (the pool's maximum is below)
  SLOT = 8,            -- doubles per worker slot: see the indexes below
  S_JOBS = 0, S_TAKEN = 1, S_BUSY = 2, S_IDLE = 3, S_MEMORY = 4, S_RUNNING = 5,
  NAME = "the thread backend (love.thread)",
}

local function isLoveObject(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "typeOf") ~= nil
end

local function where(path, depth)
  local parts = {}
  for i = 1, depth do
    local k = path[i]
    if type(k) == "string" then parts[i] = "." .. k:sub(1, 30)
    elseif type(k) == "number" then parts[i] = ("[%.14g]"):format(k)
    else parts[i] = "[" .. type(k) .. " key]" end
  end
  return table.concat(parts)
end

-- Returns what is wrong with v (the codec's words), or nil.
local function walk(v, depth, seen, path)
  local t = type(v)
  if t == "nil" or t == "boolean" or t == "number" or t == "string" then return nil end
  if t == "table" then
    if depth >= C.MAXDEPTH then return ("is a table nested deeper than %d levels"):format(C.MAXDEPTH) end
    if seen[v] then
      return "is a table already sent in this call: " .. C.NAME .. " cannot send cycles or shared sub-tables"
    end
    seen[v] = true
    for k, x in next, v do
      path[depth + 1] = k
      local w = walk(k, depth + 1, seen, path) or walk(x, depth + 1, seen, path)
      if w then return w end
    end
    path[depth + 1] = nil
    return nil
  end
  if t == "userdata" then
    if isLoveObject(v) then return nil end
    return "is a userdata that is neither a LÖVE object nor an async buffer"
  end
  return "is a " .. t
end

-- Checks t[first..last] as the values of one message; returns
-- "label i (at .path) what" for the first that cannot travel, or nil.
function C.check(t, first, last, label)
  local seen, path = {}, {}
  for i = first, last do
    local w = walk(t[i], 0, seen, path)
    if w then
      local depth = #path
      -- path holds the steps down to the failure; deeper ones were cleared
      -- on the way back only for finished tables, so trim to the live part.
      while depth > 0 and path[depth] == nil do depth = depth - 1 end
      if depth > 0 then return ("%s %d (at %s) %s"):format(label, i - first + 1, where(path, depth), w) end
      return ("%s %d %s"):format(label, i - first + 1, w)
    end
  end
  return nil
end

-- A copy of checked values, as a trip through a Channel would make (used
-- where a job awaits a job in the same worker). Metatables are dropped.
local function copy(v)
  if type(v) ~= "table" then return v end
  local r = {}
  for k, x in next, v do r[copy(k)] = copy(x) end
  return r
end
C.copy = copy

return C
]==]

-- The worker: one love.thread. Arguments: the control and slot ByteData, the
-- lock, request and result Channels, its slot number and the game's
-- environment (package paths, LÖVE modules to require).
local WORKER = [==[
local ctlData, slotData, lock, requests, results, slot, env = ...
local ffi = require "ffi"
local ctl = ffi.cast("int32_t *", ctlData:getFFIPointer())
local sl = ffi.cast("double *", slotData:getFFIPointer()) + slot * C.SLOT
local unpack, select, type, tostring = unpack, select, type, tostring

-- The game's paths and LÖVE modules, as a native worker gets them.
local initError
do
  local ok, e = pcall(function()
    package.path, package.cpath = env.path, env.cpath
    require "love.timer"
    for _, m in ipairs(env.modules) do require(m) end
  end)
  if not ok then initError = tostring(e) end
end
local now = love.timer and love.timer.getTime or os.clock

-- The worker-side API, global `async` in jobs.
local api = { shared = {}, state = {}, workerIndex = slot, isWorker = true }
rawset(_G, "async", api)

local snapId, snap         -- the last snapshot read
local cache = {}           -- definition id -> compiled function
local applied              -- the snapshot whose shared values are decoded
local shareIds = {}        -- name -> id of the decoded shared value
local initId               -- the init function last run here
local cur                  -- the running job: { snap, owner = its game call's record }
local chunks = {}          -- chunk index -> { data, ptr }

local function handler(e) return { e, debug.traceback("", 2):sub(2) } end

-- A hook a job sets must not outlive it, and must not fire in this file's
-- code after the job returns (LuaJIT's hooks are global to the state, and
-- the first line run after the job would raise the hook's error here). So a
-- job's debug.sethook installs a guard that passes on only the events of
-- code other than this file's, and the hook is cleared after each job.
local OWN = debug.getinfo(1, "S").source
local realSethook, realGethook, getinfo = debug.sethook, debug.gethook, debug.getinfo
local userHook, setFunc, setLine
local function guard(ev, line)
  local info = getinfo(2, "Sf")
  if info == nil or info.source == OWN then return end
  -- debug.sethook is a C function in a native worker: returning from it
  -- to the line that called it is no new line there either.
  if setFunc ~= nil then
    local same = info.func == setFunc and line == setLine
    setFunc = nil
    if same then return end
  end
  return userHook(ev, line)
end
function debug.sethook(...)
  local args, n = { ... }, select("#", ...)
  local i = type(args[1]) == "thread" and 2 or 1 -- one hook per state anyway
  if args[i] == nil then userHook = nil; return realSethook() end
  userHook = args[i]
  local caller = getinfo(2, "fl")
  setFunc, setLine = caller and caller.func, caller and caller.currentline
  return realSethook(guard, unpack(args, i + 1, n))
end
function debug.gethook()
  local f, mask, count = realGethook()
  if f == guard then return userHook, mask, count end
  return f, mask, count
end
local function collect(ok, ...) return ok, select("#", ...), { ... } end

local function getSnap(id, ch)
  if id ~= snapId then
    snap, snapId = ch:peek(), id
    snap.ch = ch -- for the parts of an awaitAll run by other workers
    -- Keep the compiled functions the new snapshot still holds (share and
    -- setWorkerInit keep them, as in async_native); drop the others.
    local keep = {}
    for _, d in pairs(snap.defs) do keep[d[1]] = cache[d[1]] end
    if snap.init then keep[snap.init[1]] = cache[snap.init[1]] end
    cache = keep
  end
  return snap
end

local function compile(d, name)
  local fn = cache[d[1]]
  if fn then return fn end
  local p = d[2]:peek()
  local f, err = loadstring(p.code, name)
  if not f then return nil, err end
  for i = 1, p.n do
    local v = p.up[i]
    if p.isAsync and p.isAsync[i] then v = api end
    debug.setupvalue(f, i, v)
  end
  cache[d[1]] = f
  return f
end

local function applySnapshot(sn)
  for name, sh in pairs(sn.shares) do
    if shareIds[name] ~= sh[1] then
      api.shared[name] = sh[2]:peek()
      shareIds[name] = sh[1]
    end
  end
  for name in pairs(shareIds) do
    if not sn.shares[name] then shareIds[name] = nil; api.shared[name] = nil end
  end
  if sn.init and sn.init[1] ~= initId then
    local f, err = compile(sn.init, "worker init")
    if not f then return err end
    local ok, e = xpcall(f, handler, api.state, slot)
    if not ok then
      local m = type(e) == "table" and e[1] or e
      return "the worker init function failed: " .. (type(m) == "string" and m or type(m))
    end
    initId = sn.init[1]
  end
  applied = sn.id
end

-- Runs definition d (named `name`) of snapshot sn for the game's call whose
-- record is `owner`, with args[first .. first + nargs - 1]. Returns OK, n,
-- results or FAILED, 2, { error value, traceback }, checked for the trip back.
local function runJob(name, d, sn, owner, args, first, nargs)
  if initError then return C.FAILED, 2, { initError, "" } end
  if sn.id ~= applied then
    local err = applySnapshot(sn)
    if err then return C.FAILED, 2, { err, "" } end
  end
  local fn, err = compile(d, name)
  if not fn then return C.FAILED, 2, { err, "" } end
  -- A fresh global table per call whose reads fall through to the worker's
  -- globals; the previous one is put back for a call nested in this one.
  local oldenv = getfenv(fn)
  -- A metatable per call: a job that breaks its environment's metatable
  -- breaks only its own.
  setfenv(fn, setmetatable({}, { __index = _G }))
  local outer = cur
  cur = { snap = sn, owner = owner }
  local ok, n, r = collect(xpcall(fn, handler, unpack(args, first, first + nargs - 1)))
  cur = outer
  setfenv(fn, oldenv)
  -- A collector the job stopped would stay stopped for every later job.
  if not collectgarbage("isrunning") then collectgarbage("restart") end
  if ok then
    local bad = C.check(r, 1, n, "result")
    if bad then return C.FAILED, 2, { ("%s: %s, which cannot be sent back"):format(name, bad), "" } end
    return C.OK, n, r
  end
  local e = r[1]
  if type(e) ~= "table" or getmetatable(e) ~= nil or e[2] == nil then e = { e, "" } end -- not from handler
  if C.check(e, 1, 1, "error") then
    return C.FAILED, 2, { ("%s: error object is a %s value"):format(name, type(e[1])), e[2] }
  end
  return C.FAILED, 2, e
end

local function raiseAwaited(e, tb)
  if type(e) == "string" and type(tb) == "string" then error(e .. "\n[awaited job] " .. tb, 0) end
  error(e, 0)
end

-- Jobs that start jobs run in this worker, one after another: a Channel
-- gives no way to help with other work while waiting, and running them here
-- cannot deadlock, even with one worker.
function api.await(name, ...)
  if cur == nil then error("async.await: only a running job can await another job", 0) end
  if type(name) ~= "string" then error("bad argument #1 to 'await' (string expected, got " .. type(name) .. ")", 0) end
  local d = cur.snap.defs[name]
  if d == nil then error(("async.await: no function named '%s' is defined"):format(name), 0) end
  local n, args = select("#", ...), { ... }
  local bad = C.check(args, 1, n, "argument")
  if bad then error(("async.await('%s'): %s, which cannot be sent to a worker"):format(name, bad), 0) end
  local st, rn, r = runJob(name, d, cur.snap, cur.owner, C.copy(args), 1, n)
  if st ~= C.OK then raiseAwaited(C.copy(r[1]), r[2]) end
  return unpack(C.copy(r), 1, rn)
end

-- awaitAll's parts wait on a Channel of their own, and one SUB token per
-- part but the first goes on the shared queue: an idle worker that takes a
-- token runs a part (if any is left), and the awaiting worker runs the parts
-- nobody took. It then waits only for parts that other workers are running,
-- so it never waits for work that nobody does, even with one worker.
local function runPart(item, sn, owner)
  local name = item[2]
  return runJob(name, sn.defs[name], sn, owner, item, 4, item[3])
end

function api.awaitAll(list)
  if cur == nil then error("async.awaitAll: only a running job can await other jobs", 0) end
  if type(list) ~= "table" then error("bad argument #1 to 'awaitAll' (table expected, got " .. type(list) .. ")", 0) end
  local n = #list
  for k = 1, n do -- every entry is checked before any job starts
    local e = rawget(list, k)
    if type(e) ~= "table" or type(rawget(e, 1)) ~= "string" then
      error(("async.awaitAll: entry %d must be a table {name, args...}"):format(k), 0)
    end
    if cur.snap.defs[e[1]] == nil then error(("async.awaitAll: no function named '%s' is defined"):format(e[1]), 0) end
    local bad = C.check(e, 2, #e, "argument")
    if bad then error(("async.awaitAll: entry %d: %s, which cannot be sent to a worker"):format(k, bad), 0) end
  end
  local sn, owner = cur.snap, cur.owner
  local parts, replies = love.thread.newChannel(), love.thread.newChannel()
  for k = 1, n do
    local e = list[k]
    parts:push({ k, e[1], #e - 1, unpack(e, 2, #e) })
  end
  local token = { C.SUB, parts, replies, sn.id, sn.ch, owner.rec, owner.chunk }
  for _ = 2, n do requests:push(token) end
  local got, res = 0, {}
  while true do
    local item = parts:pop()
    if item == nil then break end
    local st, rn, r = runPart(item, sn, owner)
    local first
    if rn > 0 then first = r[1] end
    res[item[1]] = { st, first, r[2] }
    got = got + 1
  end
  while got < n do
    local m = replies:demand()
    res[m[1]] = { m[2], m[3], m[4] }
    got = got + 1
  end
  local out = {}
  for k = 1, n do
    local r = res[k]
    if r[1] ~= C.OK then raiseAwaited(C.copy(r[2]), r[3]) end -- the first failure, in order
    out[k] = C.copy(r[2])
  end
  return out
end

function api.cancelled()
  return cur ~= nil and cur.owner.p[1] ~= 0
end

function api.newBuffer()
  error("async.newBuffer: zero-copy buffers need the native module; " .. C.NAME ..
        " cannot share them (love.data.newByteData and :getFFIPointer() can)", 0)
end

-- Under the lock: the game's cancel and this start race on QUEUED.
local function start(_, p)
  if p[0] == C.QUEUED then p[0] = C.RUNNING; return true end
  return false
end

local function takeStop(_, c, s)
  if c[0] > 0 then c[0] = c[0] - 1; s[C.S_RUNNING] = 0; return true end
  return false
end

-- The game's call record `rec` (in chunk `data`): { p = its int32 state and
-- stop flag, rec, chunk }.
local function record(rec, data)
  local ci = math.floor(rec / C.CHUNK)
  local chunk = chunks[ci]
  if chunk == nil then
    chunk = { data, ffi.cast("int32_t *", data:getFFIPointer()) }
    chunks[ci] = chunk
  end
  return { p = chunk[2] + 2 * (rec % C.CHUNK), rec = rec, chunk = data }
end

-- A SUB token: run one part of another worker's awaitAll, if one is left.
local function handlePart(m)
  local item = m[2]:pop()
  if item == nil then return end
  local ok, st, rn, r = pcall(runPart, item, getSnap(m[4], m[5]), record(m[6], m[7]))
  if not ok then st, rn, r = C.FAILED, 2, { ("%s: %s: %s"):format(item[2], C.NAME, tostring(st)), "" } end
  if realGethook() then realSethook(); userHook = nil end
  local first -- awaitAll keeps a part's first result, or its error and traceback
  if rn > 0 then first = r[1] end
  local sent, why = pcall(m[3].push, m[3], { item[1], st, first, r[2] })
  if not sent then
    m[3]:push({ item[1], C.FAILED, ("%s: the result could not be sent back (%s)"):format(item[2], tostring(why)), "" })
  end
end

local function handleCall(m)
  local rec = m[2]
  local owner = record(rec, m[3])
  local p = owner.p
  sl[C.S_TAKEN] = sl[C.S_TAKEN] + 1
  if not lock:performAtomic(start, p) then
    results:push({ rec, C.CANCELLED, 0 })
    return
  end
  local name, st, n, r = m[6], nil, nil, nil
  local ok, err = pcall(function()
    local sn = getSnap(m[4], m[5])
    local d = sn.defs[name]
    if d == nil then st, n, r = C.FAILED, 2, { ("no function named '%s' is defined"):format(name), "" }; return end
    st, n, r = runJob(name, d, sn, owner, m, 8, m[7])
  end)
  if not ok then st, n, r = C.FAILED, 2, { ("%s: %s: %s"):format(name, C.NAME, tostring(err)), "" } end
  -- A hook a job left behind would run in every later job of this worker.
  if realGethook() then realSethook(); userHook = nil end
  sl[C.S_JOBS] = sl[C.S_JOBS] + 1
  sl[C.S_MEMORY] = collectgarbage("count") * 1024
  local sent, why = pcall(results.push, results, { rec, st, n, unpack(r, 1, n) })
  if not sent then
    results:push({ rec, C.FAILED, 2, ("%s: the results could not be sent back (%s)"):format(name, tostring(why)), "" })
  end
end

while true do
  if ctl[0] > 0 and lock:performAtomic(takeStop, ctl, sl) then break end
  local t0 = now()
  local m = requests:demand()
  local t1 = now()
  sl[C.S_IDLE] = sl[C.S_IDLE] + (t1 - t0)
  local kind = m[1]
  if kind == C.QUIT then break end
  if kind == C.CALL or kind == C.SUB then
    if kind == C.CALL then handleCall(m) else handlePart(m) end
    sl[C.S_BUSY] = sl[C.S_BUSY] + (now() - t1)
  end
end
sl[C.S_RUNNING] = 0
sl[C.S_MEMORY] = 0
]==]

local C = assert(loadstring(COMMON, "=async_thread.lua (common)"))()
local WORKER_SOURCE = "local C = (function()\n" .. COMMON .. "\nend)()\n" .. WORKER
local ffi = require "ffi"

local M = { backend = "thread", max_depth = C.MAXDEPTH }

local function fail(fmt, ...) error(fmt:format(...), 0) end

local function hasLoveThread()
  return type(love) == "table" and pcall(require, "love.thread") and pcall(require, "love.data")
    and pcall(require, "love.timer")
end

--- Whether this backend can run here (inside LÖVE, with love.thread).
function M.available() return hasLoveThread() end

M.newBuffer = function()
  fail("async.newBuffer: zero-copy buffers need the native module; %s cannot share them " ..
       "(love.data.newByteData and :getFFIPointer() can)", C.NAME)
end

local Ctx = {}
Ctx.__index = Ctx

local Handle = {}
local HandleMT = { __index = Handle, __metatable = "async.handle" }
local STATE_NAMES = { [C.QUEUED] = "queued", [C.RUNNING] = "running", [C.STOPPED] = "cancelled" }

local function checkOpen(ctx)
  if ctx.closed then fail("async: the pool is shut down (call async.load() again)") end
  return ctx
end

-- As async_native: a fraction is floored; the pool's maximum then cuts.
local function checkCount(n, fname)
  if type(n) ~= "number" or not (n >= 0) then
    fail("%s: expected a number of workers >= 0, got %s", fname, tostring(n))
  end
  return math.floor(n)
end

-- The most workers a pool runs: the core's rule (4 per processor, at least
-- 64), within the shared-memory slots.
local function maxWorkers()
  local cores = 1
  local okc, sys = pcall(require, "love.system")
  if okc and type(sys) == "table" and sys.getProcessorCount then cores = sys.getProcessorCount() end
  return math.min(C.MAXSLOTS, math.max(64, 4 * cores))
end

-- Under the lock (pairs with the worker's `start`).
local function cancelAtomic(_, p)
  if p[0] == C.QUEUED then p[0] = C.STOPPED; return true end
  if p[0] == C.RUNNING then p[1] = 1 end -- async.cancelled() in the job
  return false
end

local function addStops(_, c, k) c[0] = c[0] + k end

local function takeBack(_, c, n)
  local k = math.min(c[0], n)
  c[0] = c[0] - k
  return k
end

-- ---- definitions and snapshots ----------------------------------------------

local function publish(ctx)
  local defs, shares = {}, {}
  for name, d in pairs(ctx.defs) do defs[name] = { d.id, d.ch } end
  for name, s in pairs(ctx.shares) do shares[name] = { s.id, s.ch } end
  ctx.epoch = ctx.epoch + 1
  local sn = { id = ctx.epoch, defs = defs, shares = shares, init = ctx.init and { ctx.init.id, ctx.init.ch } or nil }
  local ch = love.thread.newChannel()
  ch:push(sn)
  ctx.snapCh = ch
end

local function nextId(ctx)
  ctx.lastId = ctx.lastId + 1
  return ctx.lastId
end

-- A definition from a Lua function: its bytecode and a snapshot of its
-- upvalues, published on a Channel of its own. `what` names it in errors.
local function makeDef(ctx, fn, name, what)
  if type(fn) ~= "function" then fail("%s: expected a function, got a %s", what, type(fn)) end
  if debug.getinfo(fn, "S").what == "C" then fail("%s: a C function has no bytecode to send to a worker", what) end
  local okd, code = pcall(string.dump, fn)
  if not okd then fail("%s: could not dump the function", what) end
  local up, isAsync, n = {}, nil, 0
  while true do
    local uname, v = debug.getupvalue(fn, n + 1)
    if uname == nil then break end
    n = n + 1
    -- `async` captured from `local async = require "async"` is bound to the
    -- worker-side API in the worker, not sent.
    if rawequal(v, ctx.facade) then
      isAsync = isAsync or {}
      isAsync[n] = true
    else
      up[n] = v
    end
  end
  local bad = C.check(up, 1, n, "upvalue")
  if bad then
    local k, rest = bad:match("^upvalue (%d+)(.*)$")
    fail("%s: upvalue '%s'%s, which cannot be sent to a worker", what, debug.getupvalue(fn, tonumber(k)), rest)
  end
  local ch = love.thread.newChannel()
  ch:push({ code = code, n = n, up = up, isAsync = isAsync })
  return { id = nextId(ctx), ch = ch }
end

function Ctx:define(name, fn)
  checkOpen(self)
  if type(name) ~= "string" then fail("bad argument #2 to 'define' (string expected, got %s)", type(name)) end
  if name == "" then fail("async.define: the name must not be empty") end
  self.defs[name] = makeDef(self, fn, name, ("async.define('%s')"):format(name))
  publish(self)
end

function Ctx:undefine(name)
  checkOpen(self)
  if type(name) ~= "string" then fail("bad argument #2 to 'undefine' (string expected, got %s)", type(name)) end
  if self.defs[name] == nil then fail("async.undefine: no function named '%s' is defined", name) end
  self.defs[name] = nil
  publish(self)
end

function Ctx:share(name, value)
  checkOpen(self)
  if type(name) ~= "string" then fail("bad argument #2 to 'share' (string expected, got %s)", type(name)) end
  if name == "" then fail("async.share: the name must not be empty") end
  if value == nil then
    self.shares[name] = nil
  else
    local bad = C.check({ value }, 1, 1, "value")
    if bad then
      fail("async.share('%s'): the value%s, which cannot be shared with workers", name, bad:gsub("^value 1", ""), nil)
    end
    local ch = love.thread.newChannel()
    ch:push(value)
    self.shares[name] = { id = nextId(self), ch = ch }
  end
  publish(self)
end

function Ctx:setWorkerInit(fn)
  checkOpen(self)
  self.init = fn ~= nil and makeDef(self, fn, "worker init", "async.setWorkerInit") or nil
  publish(self)
end

-- A game that quits without shutdown() (its state closes): as in
-- async_native, queued calls are cancelled rather than run, running ones are
-- waited for, and no callback runs from a collector. LuaJIT finalizes the
-- newest objects first when a state closes, and a love.thread Thread freed
-- while its thread runs crashes LÖVE: so the proxy is made anew after every
-- thread started, and the newest one alone acts, before any Thread or
-- Channel of this pool is finalized.
local function armCloser(ctx)
  local proxy = newproxy(true)
  getmetatable(proxy).__gc = function()
    if ctx.closed or ctx.gcproxy ~= proxy then return end -- a replaced one
    ctx.closed = true
    -- Queued calls leave the queue unrun; each worker then leaves at a QUIT
    -- once its running job is done. pcall: should a Channel or Thread have
    -- been finalized already, the rest is still done.
    pcall(ctx.requests.clear, ctx.requests)
    for _ = 1, ctx.nslots do pcall(ctx.requests.push, ctx.requests, { C.QUIT }) end
    for _, t in pairs(ctx.threads) do pcall(t.wait, t) end
  end
  ctx.gcproxy = proxy
end

-- ---- workers -------------------------------------------------------------------

local function slotPtr(ctx, s) return ctx.sl + s * C.SLOT end

local function freeSlot(ctx)
  for s = 0, ctx.nslots - 1 do
    local t = ctx.threads[s]
    if slotPtr(ctx, s)[C.S_RUNNING] == 0 and (t == nil or not t:isRunning()) then return s end
  end
  if ctx.nslots < C.MAXSLOTS then
    ctx.nslots = ctx.nslots + 1
    return ctx.nslots - 1
  end
  return nil
end

function Ctx:add(n)
  checkOpen(self)
  checkCount(n, "async.addWorker")
  -- A stop no worker has acted on yet is taken back instead of a new thread.
  local took = self.lock:performAtomic(takeBack, self.ctl, n)
  for i = 1, n - took do
    local s = self.nworkers + took + i - 1 < self.max and freeSlot(self) or nil
    if s == nil then
      self.nworkers = self.nworkers + took + i - 1
      return nil, ("%s runs at most %d workers"):format(C.NAME, self.max)
    end
    local okt, t = pcall(love.thread.newThread, love.filesystem.newFileData(WORKER_SOURCE, "async_thread_worker.lua"))
    if not okt then
      self.nworkers = self.nworkers + took + i - 1
      return nil, "could not start a love.thread: " .. tostring(t)
    end
    slotPtr(self, s)[C.S_RUNNING] = 1
    self.threads[s] = t
    t:start(self.ctlData, self.slotData, self.lock, self.requests, self.results, s, self.env)
    armCloser(self) -- newer than this thread: see armCloser
  end
  self.nworkers = self.nworkers + n
  return n
end

function Ctx:stop(n)
  checkOpen(self)
  checkCount(n, "async.stopWorkers")
  local k = math.min(n, self.nworkers)
  if k > 0 then
    self.lock:performAtomic(addStops, self.ctl, k)
    for _ = 1, k do self.requests:push({ C.NOOP }) end -- wakes an idle worker to see it
    self.nworkers = self.nworkers - k
  end
  return k
end

function Ctx:count()
  checkOpen(self)
  return self.nworkers
end

-- ---- calls ---------------------------------------------------------------------

local function recordGet(ctx)
  local free = ctx.free
  local rec = free[#free]
  if rec then
    free[#free] = nil
    return rec
  end
  local i = ctx.nrecs
  ctx.nrecs = i + 1
  local ci = math.floor(i / C.CHUNK)
  if ctx.chunks[ci] == nil then
    local data = love.data.newByteData(C.CHUNK * 8)
    ctx.chunks[ci] = { data, ffi.cast("int32_t *", data:getFFIPointer()) }
  end
  local chunk = ctx.chunks[ci]
  rec = { index = i, gen = 0, chunk = chunk[1], p = chunk[2] + 2 * (i % C.CHUNK) }
  ctx.recs[i] = rec
  return rec
end

local function recordPut(ctx, rec)
  rec.gen = rec.gen + 1 -- handles to the call just finished now read "done"
  rec.superseded = nil
  local free = ctx.free
  free[#free + 1] = rec
end

-- "Latest request wins": the call made before under `key` will not run,
-- or, already running, ends as cancelled (its success never follows the
-- newer call), as in async_native's take_key.
local function takeKey(ctx, rec, key)
  local old = ctx.keys[key]
  if old ~= nil and not ctx.lock:performAtomic(cancelAtomic, old.p) then old.superseded = true end
  ctx.keys[key] = rec
  rec.key = key
end

local function dropKey(ctx, rec)
  local key = rec.key
  if key == nil then return end
  if ctx.keys[key] == rec then ctx.keys[key] = nil end
  rec.key = nil
end

local function doCall(ctx, cb, name, ...)
  checkOpen(ctx)
  if type(name) ~= "string" and type(name) ~= "number" then
    fail("bad argument #2 to 'call' (string expected, got %s)", type(name))
  end
  name = tostring(name)
  local t = type(cb)
  if t ~= "function" and t ~= "table" and t ~= "nil" then
    fail("async.call('%s'): the callback must be a function, a table {success = f, error = f} or nil, not a %s", name, t)
  end
  if ctx.defs[name] == nil then
    fail("async.call: no function named '%s' is defined (async.define it first)", name)
  end
  -- Everything that may raise on the game's values (a callback table's
  -- __index, a NaN key) is read before the record exists.
  local key
  if t == "table" then
    key = cb.key
    if key ~= key then fail("async.call('%s'): the callback's key is NaN, which cannot be a key", name) end
  end
  local n = select("#", ...)
  local msg = { C.CALL, 0, false, ctx.epoch, ctx.snapCh, name, n, ... }
  local bad = C.check(msg, 8, 7 + n, "argument")
  if bad then fail("async.call('%s'): %s, which cannot be sent to a worker", name, bad) end
  local rec = recordGet(ctx)
  msg[2], msg[3] = rec.index, rec.chunk
  if ctx.shutting then
    -- Made by a callback that shutdown() delivers: it does not run, it ends
    -- as cancelled and shutdown delivers that too.
    rec.p[0], rec.p[1] = C.STOPPED, 0
    ctx.qt = ctx.qt + 1
    ctx.pending[ctx.qt] = { rec.index, C.CANCELLED, 0 }
  else
    rec.p[0], rec.p[1] = C.QUEUED, 0 -- no worker holds this record now
    local okp, err = pcall(ctx.requests.push, ctx.requests, msg)
    if not okp then
      recordPut(ctx, rec)
      fail("async.call('%s'): %s", name, tostring(err))
    end
    ctx.pushed = ctx.pushed + 1
  end
  -- Only a call that was made supersedes the one before it.
  if key ~= nil then takeKey(ctx, rec, key) end
  rec.cb = cb
  ctx.inflight = ctx.inflight + 1
  return setmetatable({ ctx, rec, rec.gen }, HandleMT)
end

local function checkHandle(h, fname)
  if getmetatable(h) ~= "async.handle" or type(h) ~= "table" then
    fail("bad argument #1 to '%s' (async call handle expected, got %s)", fname, type(h))
  end
end

-- The record a handle points at, or nil once its pool is shut down or the
-- record moved on to another call.
local function handleRec(h)
  local ctx, rec = h[1], h[2]
  if ctx.closed or rec.gen ~= h[3] then return nil end
  return rec
end

function Handle.cancel(h)
  checkHandle(h, "cancel")
  local rec = handleRec(h)
  return rec ~= nil and h[1].lock:performAtomic(cancelAtomic, rec.p)
end

function Handle.status(h)
  checkHandle(h, "status")
  local rec = handleRec(h)
  return rec == nil and "done" or STATE_NAMES[rec.p[0]]
end

-- ---- delivery ------------------------------------------------------------------

local function take(ctx)
  local results, q = ctx.results, ctx.pending
  while true do
    local m = results:pop()
    if m == nil then return end
    ctx.qt = ctx.qt + 1
    q[ctx.qt] = m
  end
end

local function defaultOnerror(msg, tb)
  io.stderr:write(("async: a job failed: %s\n%s\n"):format(type(msg) == "string" and msg or type(msg), tostring(tb or "")))
  if io.stderr.flush then io.stderr:flush() end -- msvcrt buffers stderr when it is a file (a game may swap io.stderr for a writer)
end

-- `error` itself ({error = error}, captured at new() as async_native does)
-- gets one value, the message with the traceback appended: its second
-- argument is a level, which a traceback is not.
local function callErrorHandler(ctx, f, e, tb)
  if rawequal(f, ctx.errorFn) then
    if type(e) == "string" and type(tb) == "string" then e = e .. "\n[worker] " .. tb end
    return f(e)
  end
  return f(e, tb)
end

-- Delivers the oldest pending result. Everything about the record is settled
-- before any callback runs, so a callback that raises loses nothing else.
local function deliver(ctx)
  local q, h = ctx.pending, ctx.qh
  local m = q[h]
  q[h] = nil
  ctx.qh = h + 1
  ctx.inflight = ctx.inflight - 1
  local rec = ctx.recs[m[1]]
  local cb = rec.cb
  local st = rec.superseded and C.CANCELLED or m[2]
  rec.cb = nil
  dropKey(ctx, rec)
  recordPut(ctx, rec)
  if st == C.CANCELLED then
    -- Never ran, or a newer call with its key was made while it ran: a
    -- table callback's `cancelled` hears of it, never `success`.
    ctx.cancelledCount = ctx.cancelledCount + 1
    if type(cb) == "table" then
      local f = cb.cancelled
      if type(f) == "function" then f() end
    end
    return
  end
  if st == C.OK then
    ctx.delivered = ctx.delivered + 1
    if type(cb) == "table" then cb = cb.success end
    if type(cb) == "function" then cb(unpack(m, 4, 3 + m[3])) end
    return
  end
  ctx.failedCount = ctx.failedCount + 1
  if type(cb) == "table" then
    local f = cb.error
    if type(f) == "function" then return callErrorHandler(ctx, f, m[4], m[5]) end
  end
  -- Never silent: a failure with no error callback goes to async.onerror.
  local onerror = ctx.facade.onerror
  if type(onerror) == "function" then callErrorHandler(ctx, onerror, m[4], m[5]) else defaultOnerror(m[4], m[5]) end
end

local function update(ctx, budget)
  checkOpen(ctx)
  if budget ~= nil then
    if type(budget) ~= "number" then fail("bad argument #1 to 'update' (number expected, got %s)", type(budget)) end
    if not (budget >= 0) then fail("async.update: the budget must be a number of seconds >= 0, not %f", budget) end
  end
  take(ctx)
  local t0 = budget and love.timer.getTime()
  local n = 0
  -- A callback may call update() or shutdown(): the queue is read afresh.
  while not ctx.closed and ctx.qh <= ctx.qt do
    deliver(ctx)
    n = n + 1
    if budget and love.timer.getTime() - t0 >= budget then break end
  end
  return n
end

-- ---- stats and shutdown ---------------------------------------------------------

local function setWorker(ws, i, s)
  local w = ws[i + 1]
  if type(w) ~= "table" then w = {}; ws[i + 1] = w end
  w.index = i
  w.running = s[C.S_RUNNING] ~= 0
  w.jobs, w.steals = s[C.S_JOBS], 0
  w.busy, w.idle, w.memory = s[C.S_BUSY], s[C.S_IDLE], s[C.S_MEMORY]
  return w
end

function Ctx:stats(t)
  checkOpen(self)
  t = type(t) == "table" and t or {}
  take(self)
  local ws = t.workers
  if type(ws) ~= "table" then ws = {}; t.workers = ws end
  local taken, memory = 0, 0
  for i = 0, self.nslots - 1 do
    local w = setWorker(ws, i, slotPtr(self, i))
    taken = taken + slotPtr(self, i)[C.S_TAKEN]
    memory = memory + w.memory
  end
  for i = self.nslots + 1, #ws do ws[i] = nil end
  local ready = self.qt - self.qh + 1
  local queued = math.max(0, self.pushed - taken)
  t.queued, t.ready, t.inflight = queued, ready, self.inflight
  t.running = math.max(0, self.inflight - queued - ready)
  t.completed, t.failed, t.cancelled = self.delivered, self.failedCount, self.cancelledCount
  t.workerCount, t.steals, t.memory, t.statesReplaced = self.nworkers, 0, memory, 0
  return t
end

local function release(ctx)
  ctx.closed = true
  ctx.requests:clear()
  ctx.results:clear()
  ctx.keys, ctx.defs, ctx.shares, ctx.init, ctx.snapCh = {}, {}, {}, nil, nil
end

-- Waits for every queued and running call, delivers every callback, frees
-- everything. A callback that raises interrupts it; calling again goes on.
-- flush (the façade's deferred callbacks) is called between deliveries and
-- returns whether it delivered anything. Calls that callbacks make meanwhile
-- do not run: they end as cancelled and are delivered too. A callback that
-- shuts the pool down itself (and loads a new one) ends it.
function Ctx:shutdown(flush)
  if self.closed then return end
  if type(flush) ~= "function" then flush = nil end
  if not self.joined then
    -- Jobs need a worker: keep one if calls remain.
    if self.inflight > 0 and self.nworkers == 0 then self:add(1) end
    local live = 0
    for _, t in pairs(self.threads) do if t:isRunning() then live = live + 1 end end
    -- After everything queued: each worker leaves at the first QUIT (or at a
    -- stop it was asked for), so every call before them runs.
    for _ = 1, live do self.requests:push({ C.QUIT }) end
    for _, t in pairs(self.threads) do
      t:wait()
      local e = t:getError()
      if e then io.stderr:write("async: a worker of ", C.NAME, " failed: ", tostring(e), "\n") end
    end
    self.joined = true
    self.shutting = true
  end
  while true do
    take(self)
    if self.qh <= self.qt then
      deliver(self)
    elseif flush then
      local more = flush()
      if not more and not self.closed and self.qh > self.qt then break end
    else
      break
    end
    if self.closed then return end -- a callback shut it down
  end
  release(self)
end

-- A loaded love.* module a worker may use (LÖVE forbids graphics and window
-- off the main thread).
local function workerModules()
  local list = {}
  for name in pairs(package.loaded) do
    if type(name) == "string" and name:match("^love%.") and name ~= "love.graphics" and name ~= "love.window" then
      list[#list + 1] = name
    end
  end
  table.sort(list)
  return list
end

--- new(workers, facade[, memoryLimit]) -> context, call, update
function M.new(n, facade, limit)
  n = checkCount(n == nil and 1 or n, "async.load")
  if type(facade) ~= "table" then fail("bad argument #2 to 'new' (table expected, got %s)", type(facade)) end
  if limit ~= nil then
    fail("async.load: memoryLimit is not available on %s: it needs the native module, " ..
         "which counts each worker's Lua allocations", C.NAME)
  end
  if not hasLoveThread() then fail("async.load: %s needs LÖVE's love.thread, love.data and love.timer", C.NAME) end
  local ctlData = love.data.newByteData(8)
  local slotData = love.data.newByteData(C.MAXSLOTS * C.SLOT * 8)
  local ctx = setmetatable({
    facade = facade, closed = false, joined = false,
    defs = {}, shares = {}, init = nil, epoch = 0, lastId = 0,
    recs = {}, free = {}, nrecs = 0, chunks = {}, keys = {},
    pending = {}, qh = 1, qt = 0,
    inflight = 0, pushed = 0, delivered = 0, failedCount = 0, cancelledCount = 0,
    nworkers = 0, threads = {}, nslots = 0, max = maxWorkers(), shutting = false,
    errorFn = _G.error, -- {error = error}: see callErrorHandler
    ctlData = ctlData, ctl = ffi.cast("int32_t *", ctlData:getFFIPointer()),
    slotData = slotData, sl = ffi.cast("double *", slotData:getFFIPointer()),
    lock = love.thread.newChannel(), requests = love.thread.newChannel(), results = love.thread.newChannel(),
    env = { path = package.path, cpath = package.cpath, modules = workerModules() },
  }, Ctx)
  publish(ctx) -- the empty registry
  ctx.call = function(cb, name, ...) return doCall(ctx, cb, name, ...) end
  local want = n
  if n > ctx.max then n = ctx.max end
  local ok, err = ctx:add(n)
  if ok and want > n then
    io.stderr:write(("async.load: %.0f workers asked, more than the pool's maximum: started %d\n"):format(want, n))
  end
  if not ok then
    release(ctx)
    fail("async.load: %s", err)
  end
  return ctx, ctx.call, function(budget) return update(ctx, budget) end
end

return M
