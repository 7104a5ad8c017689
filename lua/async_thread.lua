-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_thread.lua: the thread backend, used where the native module cannot
-- load (or with ASYNC_BACKEND=thread). It offers async.lua the same interface
-- as async_native (new -> context, call, update; the context's methods; call
-- handles), built on love.thread workers, Channels and a little FFI-visible
-- shared memory, so that async.lua stays the one façade for both backends.
--
-- What travels: requests go to the workers on one Channel, results come back
-- on another, and update() delivers them. Definitions, shared values and the
-- worker-init function are published as immutable snapshots (a Channel each,
-- read with peek), and every call carries the number of the snapshot current
-- when it was made, as the native module does. A call's message holds only
-- plain values (a LÖVE object's push costs more than the rest of a small
-- call): the snapshots that calls in flight name, and the shared-memory
-- chunks of the call records, are listed in one registry table that the
-- workers peek on a Channel of its own when they meet one they lack. The record states, the "stop
-- asked" flags and the per-worker counters live in love.data ByteData seen
-- through the FFI; cancel() decides under the request Channel's lock whether a
-- worker has taken the call's message (async_thread_calls.lua).
--
-- What it cannot do, refused with an error naming this backend: zero-copy
-- buffers, memoryLimit, and tables with cycles or shared sub-tables (a
-- Channel copies each occurrence).
--
-- This file is the pool (definitions, workers, stats, shutdown);
-- async_thread_calls.lua its calls and their delivery; async_thread_worker.lua
-- the code each worker runs; async_thread_common.lua the code both sides run.

-- The code shared with the workers, and theirs, as source (see those files).
local prefix = (...) and (...):match("^(.-)[^.]*$") or ""
-- The workers get the messages (async_messages.lua) written into their source.
local MSG = require(prefix .. "async_messages")
local COMMON = require(prefix .. "async_thread_common")
local C = assert(loadstring(COMMON, "=async_thread_common.lua"))(MSG)
local MSG_SOURCE = {}
for k, v in pairs(MSG) do MSG_SOURCE[#MSG_SOURCE + 1] = ("%s = %q"):format(k, v) end
local WORKER_SOURCE = "local MSG = {" .. table.concat(MSG_SOURCE, ",") .. "}\nlocal C = (function(...)\n" .. COMMON
  .. "\nend)(MSG)\n" .. require(prefix .. "async_thread_worker")
local ffi = require "ffi"

local M = { backend = "thread", max_depth = C.MAXDEPTH }

local function fail(fmt, ...) error(fmt:format(...), 0) end
-- define's and undefine's misuse carries the position of async.lua's line
-- that called them, as the native module's luaL_error puts it: `level`
-- counts from the function that raises (1) to that caller.
local function failAt(level, fmt, ...) error(fmt:format(...), level + 1) end

local function hasLoveThread()
  return type(love) == "table" and pcall(require, "love.thread") and pcall(require, "love.data")
    and pcall(require, "love.timer")
end

--- Whether this backend can run here (inside LÖVE, with love.thread).
function M.available() return hasLoveThread() end

M.newBuffer = function()
  fail(MSG.BUFFER_NEEDS_NATIVE, C.NAME)
end

local Ctx = {}
Ctx.__index = Ctx

local function checkOpen(ctx)
  if ctx.closed then fail(MSG.POOL_SHUT_DOWN) end
  return ctx
end

-- async.call, handles and delivery (async_thread_calls.lua).
local profile = require(prefix .. "async_profile")
local calls = require(prefix .. "async_thread_calls")(C, checkOpen, fail, profile)

-- As async_native: a fraction is floored; the pool's maximum then cuts.
local function checkCount(n, fname)
  if type(n) ~= "number" or not (n >= 0) then
    fail(MSG.WORKER_COUNT, fname, tostring(n))
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
  -- Listed while a call names it (async_thread_calls.lua counts them).
  local snaps = ctx.registry.snaps
  for id in pairs(snaps) do
    if ctx.epochCalls[id] == nil then snaps[id] = nil end
  end
  snaps[ctx.epoch] = ch
  calls.publishRegistry(ctx)
end

local function nextId(ctx)
  ctx.lastId = ctx.lastId + 1
  return ctx.lastId
end

-- A definition from a Lua function: its bytecode and a snapshot of its
-- upvalues, published on a Channel of its own. `what` names it in errors.
local function makeDef(ctx, fn, name, what)
  if type(fn) ~= "function" then failAt(3, MSG.DEF_NOT_FUNCTION, what, type(fn)) end
  if debug.getinfo(fn, "S").what == "C" then failAt(3, MSG.DEF_C_FUNCTION, what) end
  local okd, code = pcall(string.dump, fn)
  if not okd then failAt(3, MSG.DEF_NOT_DUMPED, what) end
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
  local bad = C.check(up, 1, n, "upvalue", C.LOVE_CALL_ONLY)
  if bad then
    local k, rest = bad:match("^upvalue (%d+)(.*)$")
    failAt(3, MSG.DEF_UPVALUE, what, debug.getupvalue(fn, tonumber(k)), rest)
  end
  local ch = love.thread.newChannel()
  ch:push({ code = code, n = n, up = up, isAsync = isAsync })
  return { id = nextId(ctx), ch = ch }
end

function Ctx:define(name, fn)
  checkOpen(self)
  if type(name) ~= "string" then fail(MSG.BAD_ARGUMENT, 2, "define", "string", type(name)) end
  if name == "" then failAt(2, MSG.NAME_EMPTY, "async.define") end
  self.defs[name] = makeDef(self, fn, name, MSG.DEFINE_WHAT:format(name))
  profile.defStat(self.defStats, name)
  publish(self)
end

function Ctx:undefine(name)
  checkOpen(self)
  if type(name) ~= "string" then fail(MSG.BAD_ARGUMENT, 2, "undefine", "string", type(name)) end
  if self.defs[name] == nil then failAt(2, MSG.UNDEFINE_MISSING, name) end
  self.defs[name] = nil
  self.defStats[name] = nil -- figures cover the names defined now
  publish(self)
end

function Ctx:share(name, value)
  checkOpen(self)
  if type(name) ~= "string" then fail(MSG.BAD_ARGUMENT, 2, "share", "string", type(name)) end
  if name == "" then fail(MSG.NAME_EMPTY, "async.share") end
  if value == nil then
    self.shares[name] = nil
  else
    local bad = C.check({ value }, 1, 1, "value", C.LOVE_CALL_ONLY)
    if bad then
      fail(MSG.SHARE_REFUSED, name, bad:gsub("^value 1", ""), nil)
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

-- Threads still running a job when the pool is left (a job that outlived
-- shutdown's deadline, or a state closing meanwhile): a love.thread Thread
-- freed while its thread runs crashes LÖVE, so each is handed to a named
-- Channel, which holds it until the process exits and ends the thread.
local function keepRunning(threads)
  local keep = love.thread.getChannel("async.abandoned")
  for _, t in pairs(threads) do
    if t:isRunning() then keep:push(t) else t:wait() end
  end
end

local function anyRunning(threads)
  for _, t in pairs(threads) do if t:isRunning() then return true end end
  return false
end

-- Each worker leaves at the first QUIT once its running job is done (or at
-- a stop it was asked for). Counted before any is pushed: a worker that
-- takes the first QUIT at once would no longer count as running.
local function pushQuits(ctx)
  local live = 0
  for _, t in pairs(ctx.threads) do
    if t:isRunning() then live = live + 1 end
  end
  for _ = 1, live do ctx.requests:push(C.QUIT) end
end

-- A game that quits without shutdown() (its state closes): as in
-- async_native, queued calls are cancelled rather than run, running ones
-- see async.cancelled() and get C.QUIT_GRACE seconds, then the stop hook,
-- and C.HOOK_GRACE later are left to the process's exit; no callback runs
-- from a collector. LuaJIT finalizes the newest objects first when a state
-- closes: so the proxy is made anew after every thread started, and the
-- newest one alone acts, before any Thread or Channel of this pool is
-- finalized.
local function armCloser(ctx)
  local proxy = newproxy(true)
  getmetatable(proxy).__gc = function()
    if ctx.closed or ctx.gcproxy ~= proxy then return end -- a replaced one
    ctx.closed = true
    -- pcall: should a Channel or Thread have been finalized already, the
    -- rest is still done.
    pcall(calls.stopAll, ctx)
    pcall(pushQuits, ctx)
    local okt, timer = pcall(require, "love.timer")
    if okt then
      local deadline = timer.getTime() + C.QUIT_GRACE
      while anyRunning(ctx.threads) do
        if timer.getTime() >= deadline then
          if ctx.ctl[C.CTL_HARD] ~= 0 then break end
          ctx.ctl[C.CTL_HARD] = 1
          deadline = timer.getTime() + C.HOOK_GRACE
        end
        timer.sleep(0.001)
      end
    end
    pcall(keepRunning, ctx.threads)
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
    local okt, t = false, nil
    if s ~= nil then
      okt, t = pcall(love.thread.newThread, love.filesystem.newFileData(WORKER_SOURCE, "async_thread_worker.lua"))
    end
    if not okt then
      -- As the core: the workers started are a success (ensure.atLeast above
      -- the maximum then warns); none at all is the error.
      local added = took + i - 1
      self.nworkers = self.nworkers + added
      if added > 0 then return added end
      if s == nil then return nil, MSG.THREAD_MAX_WORKERS:format(C.NAME, self.max) end
      return nil, MSG.THREAD_NOT_STARTED:format(tostring(t))
    end
    slotPtr(self, s)[C.S_RUNNING] = 1
    self.threads[s] = t
    t:start(self.ctlData, self.slotData, self.lock, self.requests, self.results, self.registryCh, s, self.env)
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
    for _ = 1, k do self.requests:push(C.NOOP) end -- wakes an idle worker to see it
    self.nworkers = self.nworkers - k
  end
  return k
end

function Ctx:count()
  checkOpen(self)
  return self.nworkers
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
  calls.take(self)
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
  -- Every field async_native fills, so a game's HUD reads numbers on both:
  -- no call records keep buffers here, and no named channel carries objects.
  t.recordBytes, t.records, t.channels = 0, 0, 0
  return t -- t.defs: async_profile.lua, through statsDefs when it is read
end

-- Fills defs with the figures of the names defined now (on a pool shut
-- down too: the figures it had).
function Ctx:statsDefs(defs) profile.defsFill(defs, self.defStats) end

-- ---- the trace: kept in Lua (async_profile.lua), fed as calls are delivered

function M.now() return love.timer.getTime() end

function Ctx:traceStart(events)
  checkOpen(self)
  if events > profile.MAX_LUA_EVENTS then return nil, MSG.OUT_OF_MEMORY:format("async.startTrace") end
  self.trace = profile.newTrace(events > 0 and events or profile.DEFAULT_EVENTS, M.now())
  return true
end

function Ctx:traceStop()
  checkOpen(self)
  if self.trace then self.trace.on = false end
  return true
end

function Ctx:traceOn() return self.trace ~= nil and self.trace.on end

function Ctx:traceRecord(name, t0, t1)
  if self.trace then self.trace:recordGame(name, t0, t1) end
end

function Ctx:traceWrite(path)
  checkOpen(self)
  return (self.trace or profile.newTrace(1, 0)):write(path, self.nslots)
end

function Ctx:traceCollect(since, offset)
  checkOpen(self)
  return (self.trace or profile.newTrace(1, 0)):collect(since, offset, self.nslots)
end

local function release(ctx)
  ctx.closed = true
  ctx.requests:clear()
  ctx.results:clear()
  ctx.keys, ctx.defs, ctx.shares, ctx.init, ctx.snapCh = {}, {}, {}, nil, nil
end

-- Once no worker runs any more: joins them (true). At the deadline, the
-- jobs still running get the stop hook; C.HOOK_GRACE later the pool is
-- left to them (nil: abandoned). false: wait on.
local function joinOrAbandon(ctx)
  if not anyRunning(ctx.threads) then
    for _, t in pairs(ctx.threads) do
      t:wait()
      local e = t:getError()
      if e then io.stderr:write(MSG.WORKER_FAILED:format(C.NAME, tostring(e))) end
    end
    ctx.joined = true
    return true
  end
  if ctx.deadline and love.timer.getTime() >= ctx.deadline then
    if ctx.ctl[C.CTL_HARD] == 0 then
      ctx.ctl[C.CTL_HARD] = 1
      ctx.deadline = love.timer.getTime() + C.HOOK_GRACE
      return false
    end
    keepRunning(ctx.threads)
    release(ctx)
    return nil
  end
  return false
end

-- Queued calls do not run (answered cancelled), running jobs see
-- async.cancelled(); waits for those, delivers every callback, frees
-- everything. With a timeout (seconds): see joinOrAbandon. A callback that
-- raises interrupts it; calling again goes on. flush (the façade's deferred
-- callbacks) is called between deliveries and returns whether it delivered
-- anything. Calls that callbacks make meanwhile do not run: they end as
-- cancelled and are delivered too. A callback that shuts the pool down
-- itself (and loads a new one) ends it.
function Ctx:shutdown(flush, timeout)
  if self.closed then return end
  if type(flush) ~= "function" then flush = nil end
  if not self.shutting then
    self.shutting = true
    calls.stopAll(self)
    pushQuits(self)
    self.deadline = timeout and love.timer.getTime() + timeout
  end
  while true do
    calls.take(self)
    if self.qh <= self.qt then
      calls.deliver(self)
    elseif not (flush and flush()) and not self.closed and self.qh > self.qt then
      if self.joined then break end
      local r = joinOrAbandon(self)
      if r == nil then return end
      if r == false then love.timer.sleep(0.001) end
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

--- new(workers, facade[, memoryLimit[, pin[, boot]]]) -> context, call, update;
--- boot: bytecode each worker runs at its start (async_perfmap.lua's install)
function M.new(n, facade, limit, _, boot)
  n = checkCount(n == nil and 1 or n, "async.load")
  if type(facade) ~= "table" then fail(MSG.BAD_ARGUMENT, 2, "new", "table", type(facade)) end
  if limit ~= nil then
    fail(MSG.THREAD_MEMORY_LIMIT, C.NAME)
  end
  if not hasLoveThread() then fail(MSG.THREAD_NEEDS_LOVE, C.NAME) end
  local ctlData = love.data.newByteData(8)
  local slotData = love.data.newByteData(C.MAXSLOTS * C.SLOT * 8)
  local ctx = setmetatable({
    facade = facade, closed = false, joined = false,
    defs = {}, shares = {}, init = nil, epoch = 0, lastId = 0,
    recs = {}, freeHead = false, nrecs = 0, chunks = {}, keys = {},
    pending = {}, qh = 1, qt = 0, epochCalls = {},
    registry = { snaps = {}, chunks = {} }, registryCh = love.thread.newChannel(),
    inflight = 0, pushed = 0, delivered = 0, failedCount = 0, cancelledCount = 0, defStats = {},
    nworkers = 0, threads = {}, nslots = 0, max = maxWorkers(), shutting = false,
    errorFn = _G.error, -- {error = error}: see callErrorHandler (async_thread_calls.lua)
    ctlData = ctlData, ctl = ffi.cast("int32_t *", ctlData:getFFIPointer()),
    slotData = slotData, sl = ffi.cast("double *", slotData:getFFIPointer()),
    lock = love.thread.newChannel(), requests = love.thread.newChannel(), results = love.thread.newChannel(),
    env = { path = package.path, cpath = package.cpath, modules = workerModules(), boot = boot },
  }, Ctx)
  publish(ctx) -- the empty registry
  ctx.call = function(cb, name, ...) return calls.call(ctx, cb, name, ...) end
  local want = n
  if n > ctx.max then n = ctx.max end
  local ok, err = ctx:add(n)
  if ok and want > n then
    io.stderr:write(MSG.TOO_MANY_WORKERS:format(want, n))
  end
  if not ok then
    release(ctx)
    fail(MSG.LOAD_FAILED, err)
  end
  return ctx, ctx.call, function(budget) return calls.update(ctx, budget) end
end

return M
