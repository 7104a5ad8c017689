-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_thread_calls.lua: the thread backend's calls, on the game's side:
-- async.call (records, "latest request wins" keys, callback tables checked
-- at the call), call handles, and delivery (update, the failure printer).
-- async_thread.lua loads it with what it shares: the common code's C,
-- checkOpen and fail, and async_profile.lua (stats().defs and the trace);
-- it returns the functions the context's methods use.
return function(C, checkOpen, fail, profile)
local MSG = C.MSG
local ffi = require "ffi"
local unpack, select, type = unpack, select, type

local Handle = {}
local HandleMT = { __index = Handle, __metatable = "async.handle" }
local STATE_NAMES = { [C.QUEUED] = "queued", [C.RUNNING] = "running", [C.STOPPED] = "cancelled" }

-- Under the request Channel's lock (performAtomic), which a worker's pop
-- takes too: a call whose message (`id`, from push) no worker has taken yet
-- will not run, and the worker that takes it answers it cancelled; one
-- taken is running (the worker marks it so once it counted it), and sees
-- async.cancelled(). So a call costs the workers no lock.
local function cancelAtomic(ch, p, id)
  local state = p[0]
  if state == C.STOPPED then return false end
  if state == C.QUEUED and (id == nil or not ch:hasRead(id)) then p[0] = C.STOPPED; return true end
  p[1] = 1
  return false
end

-- ---- calls ---------------------------------------------------------------------

local function replaceRegistry(ch, registry)
  ch:clear()
  ch:push(registry)
end

-- The registry (async_thread.lua's publish) replaced whole, under its
-- Channel's lock, so a worker's peek never finds it missing.
local function publishRegistry(ctx)
  ctx.registryCh:performAtomic(replaceRegistry, ctx.registry)
end

-- The free records are a stack linked through each record's nextFree (#
-- on a table, a search each time, cost more than the rest of a call's
-- bookkeeping). Taking and putting one stores only to fields that exist,
-- so neither allocates: a finalizer that runs in the middle (and calls
-- async.call, taking a record) cannot see the stack half changed.
local function recordGet(ctx)
  local rec = ctx.freeHead
  if rec then
    ctx.freeHead = rec.nextFree
    rec.nextFree = false
    return rec
  end
  local i = ctx.nrecs
  if i >= C.HEAD then fail(MSG.THREAD_MAX_CALLS, C.NAME, C.HEAD) end
  ctx.nrecs = i + 1
  local ci = math.floor(i / C.CHUNK)
  if ctx.chunks[ci] == nil then
    local data = love.data.newByteData(C.CHUNK * 8)
    ctx.chunks[ci] = { data, ffi.cast("int32_t *", data:getFFIPointer()) }
    ctx.registry.chunks[ci + 1] = data -- before any call that uses it
    publishRegistry(ctx)
  end
  local chunk = ctx.chunks[ci]
  local rec = { index = i, gen = 0, chunk = chunk[1], p = chunk[2] + 2 * (i % C.CHUNK), nextFree = false }
  ctx.recs[i] = rec
  return rec
end

local function recordPut(ctx, rec)
  rec.gen = rec.gen + 1 -- handles to the call just finished now read "done"
  rec.superseded, rec.id = nil, nil
  rec.nextFree = ctx.freeHead
  ctx.freeHead = rec
end

-- "Latest request wins": the call made before under `key` will not run,
-- or, already running, ends as cancelled (its success never follows the
-- newer call), as in async_native's take_key.
local function takeKey(ctx, rec, key)
  local old = ctx.keys[key]
  if old ~= nil and not ctx.requests:performAtomic(cancelAtomic, old.p, old.id) then old.superseded = true end
  ctx.keys[key] = rec
  rec.key = key
end

local function dropKey(ctx, rec)
  local key = rec.key
  if key == nil then return end
  if ctx.keys[key] == rec then ctx.keys[key] = nil end
  rec.key = nil
end

-- Whether v can be called: a function, or a value whose metatable has
-- __call (read raw, as call.c's is_callable).
local function isCallable(v)
  if type(v) == "function" then return true end
  local mt = debug.getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

-- What is wrong with a callback table, or nil, as call.c's check_callbacks:
-- success/error/cancelled must be callable (or nil), and a function under
-- any other name is a misspelt field ({sucess = f}). Data fields of the
-- game's own are let through.
local CALLBACKS = { "success", "error", "cancelled" }
local CALLBACK_FIELDS = { success = true, error = true, cancelled = true, key = true }
local function checkCallbacks(cb, name)
  local handlers = 0
  for _, f in ipairs(CALLBACKS) do
    local v = cb[f]
    if v ~= nil and not isCallable(v) then
      return MSG.CALLBACK_FIELD:format(MSG.CALL_WHAT:format(name), f, type(v))
    end
    if v ~= nil then handlers = handlers + 1 end
  end
  -- A callable table meant as the callback itself would be read as a table
  -- with no handler, and its results dropped without a word.
  if handlers == 0 and isCallable(cb) then
    return MSG.CALLBACK_CALLABLE_TABLE:format(name)
  end
  for k, v in next, cb do
    if type(k) == "string" and not CALLBACK_FIELDS[k] and isCallable(v) then
      return MSG.CALLBACK_UNKNOWN_FIELD:format(MSG.CALL_WHAT:format(name), k)
    end
  end
end

-- Misuse of a call raises at the line that made it, as the native module's
-- luaL_error does: async.call and the shorthands tail-call doCall, so its
-- caller is the game's function (level 1 here, 2 doCall, 3 that caller).
local function callFail(fmt, ...) error(fmt:format(...), 3) end

local function doCall(ctx, cb, name, ...)
  checkOpen(ctx)
  if type(name) ~= "string" and type(name) ~= "number" then
    callFail(MSG.BAD_ARGUMENT, 2, "call", "string", type(name))
  end
  name = tostring(name)
  local t = type(cb)
  if t ~= "function" and t ~= "table" and t ~= "nil" then
    callFail(MSG.CALLBACK_TYPE, name, t)
  end
  if ctx.defs[name] == nil then
    callFail(MSG.CALL_UNDEFINED, name)
  end
  -- Everything that may raise on the game's values (a callback table's
  -- __index, a NaN key) is read before the record exists.
  local key
  if t == "table" then
    local wrong = checkCallbacks(cb, name)
    if wrong then callFail("%s", wrong) end
    key = cb.key
    if key ~= key then callFail(MSG.CALLBACK_NAN_KEY, name) end
  end
  local n = select("#", ...)
  -- { head, snapshot number, name, args... } (async_thread_common.lua)
  -- Up to three arguments in slots of the constructor: appended as `...`,
  -- they cost a rehash of the new table on every call under the JIT.
  local msg
  if n <= 3 then
    local a, b, c = ...
    msg = { 0, 0, name, a, b, c }
  else
    msg = { 0, 0, name, ... }
  end
  local bad, packable = C.check(msg, 4, 3 + n, "argument")
  if bad then callFail(MSG.CALL_NOT_SENT, name, bad) end
  local rec = recordGet(ctx)
  msg[1] = C.head(rec.index, 0, n)
  if ctx.shutting then
    -- Made by a callback that shutdown() delivers: it does not run, it ends
    -- as cancelled and shutdown delivers that too.
    rec.p[0], rec.p[1] = C.STOPPED, 0
    ctx.qt = ctx.qt + 1
    ctx.pending[ctx.qt] = { C.head(rec.index, C.CANCELLED, 0) }
  else
    rec.p[0], rec.p[1] = C.QUEUED, 0 -- no worker holds this record now
    -- The call's snapshot stays listed while it is counted here, until the
    -- delivery. Counted before the push, and read again after counting: a
    -- finalizer that runs in an allocation here may define (publish, which
    -- drops the snapshots no call counts).
    -- (A loop entered only then: one that runs on every call keeps the
    -- JIT from compiling the game's loop of calls into one trace.)
    local calls, e = ctx.epochCalls, ctx.epoch
    calls[e] = (calls[e] or 0) + 1
    while ctx.epoch ~= e do
      local k = calls[e] - 1
      calls[e] = k > 0 and k or nil
      e = ctx.epoch
      calls[e] = (calls[e] or 0) + 1
    end
    msg[2] = e
    local okp, err = pcall(ctx.requests.push, ctx.requests, C.pack(msg, packable))
    rec.id = err -- the message's id, on success
    if not okp then
      local k = calls[e] - 1
      calls[e] = k > 0 and k or nil
      recordPut(ctx, rec)
      callFail(MSG.CALL_REFUSED, name, tostring(err))
    end
    ctx.pushed = ctx.pushed + 1
    rec.epoch = e
  end
  -- stats().defs: the queue wait, and the figures of the name as it is now
  -- (undefined and defined again meanwhile, it counts in neither).
  rec.name, rec.tcall, rec.stat = name, love.timer.getTime(), ctx.defStats[name]
  -- Only a call that was made supersedes the one before it.
  if key ~= nil then takeKey(ctx, rec, key) end
  rec.cb = cb
  ctx.inflight = ctx.inflight + 1
  return setmetatable({ ctx, rec, rec.gen }, HandleMT)
end

local function checkHandle(h, fname)
  if getmetatable(h) ~= "async.handle" or type(h) ~= "table" then
    fail(MSG.HANDLE_EXPECTED, fname, type(h))
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
  return rec ~= nil and h[1].requests:performAtomic(cancelAtomic, rec.p, rec.id)
end

-- Read in a C call (performAtomic): a plain FFI read in a loop that polls
-- status() would be hoisted out of the loop by the JIT, and the loop would
-- never see the call start.
local function stateOf(_, p) return p[0] end

function Handle.status(h)
  checkHandle(h, "status")
  local rec = handleRec(h)
  return rec == nil and "done" or STATE_NAMES[h[1].requests:performAtomic(stateOf, rec.p)]
end

-- ---- delivery ------------------------------------------------------------------

local function take(ctx)
  local results, q = ctx.results, ctx.pending
  while true do
    local m = results:pop()
    if m == nil then return end
    if type(m) == "string" then m = C.decode(m) end
    ctx.qt = ctx.qt + 1
    q[ctx.qt] = m
  end
end

-- The failure on stderr when async.onerror is not a function, as
-- deliver.c's default_onerror and async_fast.lua's dispatch print it: a
-- string or number as text, another value by its type. (Not one shared
-- function: async_fast.lua is required without async.lua's prefix and this
-- file with it, so no module is reachable from both.)
local function defaultOnerror(msg, tb)
  local tm = type(msg)
  msg = (tm == "string" or tm == "number") and tostring(msg) or tm
  tb = (type(tb) == "string" or type(tb) == "number") and tostring(tb) or ""
  io.stderr:write(MSG.JOB_FAILED:format(msg, tb))
  if io.stderr.flush then io.stderr:flush() end -- msvcrt buffers stderr when it is a file (a game may swap io.stderr for a writer)
end

-- `error` itself ({error = error}, captured at new() as async_native does)
-- gets one value, the message with the traceback appended: its second
-- argument is a level, which a traceback is not.
local function callErrorHandler(ctx, f, e, tb)
  if rawequal(f, ctx.errorFn) then
    if type(e) == "string" and type(tb) == "string" then e = e .. MSG.WORKER_TRACEBACK .. tb end
    -- Level 0: the message as it is. At level 1, error() would put this
    -- file's line in front of it, where the native module (a C caller) puts none.
    return f(e, 0)
  end
  return f(e, tb)
end

-- Delivers the oldest pending result. Everything about the record is settled
-- before any callback runs, so a callback that raises loses nothing else.
local function deliver(ctx)
  local q, h = ctx.pending, ctx.qh
  local m = q[h]
  q[h] = nil
  -- Emptied: back to the start, so that the queue's indexes stay in its
  -- array part instead of growing into its hash part forever.
  if h == ctx.qt then ctx.qh, ctx.qt = 1, 0 else ctx.qh = h + 1 end
  ctx.inflight = ctx.inflight - 1
  local index, st, n = C.split(m[1])
  local rec = ctx.recs[index]
  local cb, name, tcall, stat = rec.cb, rec.name, rec.tcall, rec.stat
  if rec.superseded then st = C.CANCELLED end
  rec.cb, rec.stat = nil, nil
  local e = rec.epoch
  if e ~= nil then
    rec.epoch = nil
    local k = ctx.epochCalls[e] - 1
    ctx.epochCalls[e] = k > 0 and k or nil
  end
  dropKey(ctx, rec)
  recordPut(ctx, rec)
  -- The worker's times after the results (none if it never ran) for
  -- stats().defs and the trace.
  local t0, t1 = m[n + 2], m[n + 3]
  profile.defRecord(stat, st == C.CANCELLED and "cancelled" or st == C.OK and "ok" or "failed", tcall,
    t0, t1)
  if t0 and ctx.trace then ctx.trace:record(m[n + 4], name, t0, t1) end
  if st == C.CANCELLED then
    -- Never ran, or a newer call with its key was made while it ran: a
    -- table callback's `cancelled` hears of it, never `success`.
    ctx.cancelledCount = ctx.cancelledCount + 1
    if type(cb) == "table" then
      local f = cb.cancelled
      if f ~= nil then f() end -- callable: checked at the call
    end
    return
  end
  if st == C.OK then
    ctx.delivered = ctx.delivered + 1
    if type(cb) == "table" then cb = cb.success end
    if cb ~= nil then cb(unpack(m, 2, 1 + n)) end
    return
  end
  ctx.failedCount = ctx.failedCount + 1
  if type(cb) == "table" then
    local f = cb.error
    if f ~= nil then return callErrorHandler(ctx, f, m[2], m[3]) end
  end
  -- Never silent: a failure with no error callback goes to async.onerror.
  local onerror = ctx.facade.onerror
  if type(onerror) == "function" then callErrorHandler(ctx, onerror, m[2], m[3]) else defaultOnerror(m[2], m[3]) end
end

local function update(ctx, budget)
  checkOpen(ctx)
  if budget ~= nil then
    if type(budget) ~= "number" then fail(MSG.BAD_ARGUMENT, 1, "update", "number", type(budget)) end
    if not (budget >= 0) then fail(MSG.UPDATE_BUDGET, tostring(budget)) end
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

-- Shutdown, and a state closing without it: the queued calls leave the
-- queue unrun and are answered cancelled; running jobs see
-- async.cancelled().
local function stopAll(ctx)
  local requests = ctx.requests
  while true do
    local m = requests:pop()
    if m == nil then break end
    if type(m) == "string" then m = C.decode(m) end
    if type(m) == "table" and m[1] >= 0 then -- a call
      local index = C.split(m[1])
      ctx.recs[index].p[0] = C.STOPPED -- taken here: no worker has it
      ctx.pushed = ctx.pushed - 1
      ctx.qt = ctx.qt + 1
      ctx.pending[ctx.qt] = { C.head(index, C.CANCELLED, 0) }
    end
  end
  for _, rec in pairs(ctx.recs) do requests:performAtomic(cancelAtomic, rec.p, rec.id) end
end

return { call = doCall, update = update, take = take, deliver = deliver, publishRegistry = publishRegistry,
         stopAll = stopAll }
end
