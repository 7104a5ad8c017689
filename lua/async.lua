-- async.lua: the façade a game requires. Async 1.1's API (load, shutdown,
-- update, ensure, define, call, ...) on the native module, which runs the
-- jobs on the C core's work-stealing workers. Works in LÖVE 11 and in plain
-- LuaJIT.
local native = require "async_native"

local async = {
  _VERSION = "async 0.1",
  -- Nesting limit for tables sent to or from a worker.
  maxDepth = native.max_depth,
}

local ctx -- the native context while loaded: one pool per Lua state

local function notLoaded()
  error("async: call async.load() first", 3)
end

local deferred = {} -- callbacks due in the next update() (empty maps)
local nativeUpdate

local function unload()
  ctx = nil
  async.call = function() notLoaded() end
  nativeUpdate = function() notLoaded() end
end
unload()

--- Delivers finished calls' callbacks (see the README). With `budget`
--- (seconds) it stops once that much time is spent.
function async.update(budget)
  if deferred[1] then
    local now = deferred
    deferred = {}
    for i = 1, #now do now[i]() end
  end
  return nativeUpdate(budget)
end

local function context()
  if not ctx then notLoaded() end
  return ctx
end

local function checkCount(n, fname)
  if type(n) ~= "number" or n < 0 or n ~= math.floor(n) then
    error(("%s: expected a whole number >= 0, got %s"):format(fname, tostring(n)), 3)
  end
  return n
end

-- Called with (message, traceback) when a job fails and its callback has no
-- error handler (a plain function, or none). Replace it to route failures
-- elsewhere; the default writes them to stderr.
function async.onerror(message, traceback)
  io.stderr:write(("async: a job failed: %s\n%s\n"):format(tostring(message), tostring(traceback)))
end

--- Starts the library with `n` worker threads (default 1), or with a table
--- { workers = n, memoryLimit = bytes, pin = false }: memoryLimit caps each
--- worker's Lua state; a job that reaches it fails with an "out of memory"
--- error and its worker gets a fresh state. pin = true binds worker k to
--- CPU k; by default workers float, so that the game's main thread and
--- other pools are not stacked onto the cores the workers hold.
function async.load(n)
  local limit, pin
  if type(n) == "table" then
    local opts = n
    for k in pairs(opts) do
      if k ~= "workers" and k ~= "memoryLimit" and k ~= "pin" then
        error(("async.load: unknown option '%s' (expected workers, memoryLimit, pin)"):format(tostring(k)), 2)
      end
    end
    n, limit, pin = opts.workers, opts.memoryLimit, opts.pin
    if limit ~= nil and (type(limit) ~= "number" or limit < 1 or limit ~= math.floor(limit)) then
      error(("async.load: memoryLimit must be a whole number of bytes > 0, got %s"):format(tostring(limit)), 2)
    end
    if pin ~= nil and type(pin) ~= "boolean" then
      error(("async.load: pin must be a boolean, got %s"):format(type(pin)), 2)
    end
  end
  if n ~= nil then checkCount(n, "async.load") end
  if ctx then error("async.load: already loaded (call async.shutdown() first)", 2) end
  local c, call, update = native.new(n or 1, async, limit, pin == true)
  ctx = c
  async.call = call     -- async.call(callback, name, ...): a C function, no Lua frame
  nativeUpdate = update
end

--- Waits for every queued and running call, delivers their callbacks, and
--- frees everything. async.load() may be called again afterwards.
function async.shutdown()
  if not ctx then return end
  local c = ctx
  c:shutdown() -- a callback that raises interrupts it; call again to go on
  unload()
end

function async.isLoaded() return ctx ~= nil end

--- Number of worker threads running (and not asked to stop).
function async.getWorkerCount() return context():count() end

function async.addWorker()
  local ok, err = context():add(1)
  if not ok then error("async.addWorker: " .. err, 2) end
end

--- Stops `n` workers (at most the number running). Each finishes its current
--- job; no queued call is lost.
function async.stopWorkers(n)
  checkCount(n, "async.stopWorkers")
  context():stop(n)
end

async.ensure = {}

function async.ensure.atLeast(n)
  checkCount(n, "async.ensure.atLeast")
  local c = context()
  local have = c:count()
  if have < n then
    local ok, err = c:add(n - have)
    if not ok then error("async.ensure.atLeast: " .. err, 2) end
  end
  return async.ensure
end

function async.ensure.atMost(n)
  checkCount(n, "async.ensure.atMost")
  local c = context()
  local have = c:count()
  if have > n then c:stop(have - n) end
  return async.ensure
end

function async.ensure.exactly(n)
  checkCount(n, "async.ensure.exactly")
  async.ensure.atLeast(n)
  return async.ensure.atMost(n)
end

--- Makes `func` callable on the workers under `name`. Its upvalues are copied
--- now; one that cannot be sent is an error naming it. Returns the shorthand
--- f(callback, ...) for async.call(callback, name, ...).
local names = setmetatable({}, { __mode = "k" }) -- shorthand -> name, for async.await

function async.define(name, func)
  if type(name) ~= "string" then
    error("async.define: the name must be a string, got " .. type(name), 2)
  end
  local f = context():define(name, func)
  names[f] = name
  return f
end

--- Removes a definition. Calls already made still run with it.
function async.undefine(name)
  if type(name) ~= "string" then
    error("async.undefine: the name must be a string, got " .. type(name), 2)
  end
  context():undefine(name)
end

--- Counters: queued, running, ready, inflight, completed, failed, cancelled,
--- steals, workerCount, memory (bytes in the workers' Lua states),
--- statesReplaced, and workers[i] = {jobs, steals, busy, idle, running,
--- memory}.
--- Pass the table from last time to have it refilled without allocating.
function async.stats(into) return context():stats(into) end

--- Publishes a read-only value to every job as async.shared[name] (in the
--- worker), decoded once per worker per version instead of sent per call.
--- Sharing again replaces it for calls made afterwards; earlier calls keep
--- the version they were made against. nil removes it.
function async.share(name, value)
  if type(name) ~= "string" then error("async.share: the name must be a string, got " .. type(name), 2) end
  context():share(name, value)
end

--- fn(state, workerIndex) runs on every worker, present and future, before
--- its next job (once per worker per version); `state` is async.state, a
--- per-worker table that survives between calls. nil removes it.
function async.setWorkerInit(fn)
  context():setWorkerInit(fn)
end

--- A zero-filled buffer of `size` bytes that jobs see through the FFI without
--- a copy (buffer:ptr("float")). Passed to a job, it is the job's until the
--- callback: the game's accessors raise meanwhile.
async.newBuffer = native.newBuffer

-- Fan-out helpers: many calls, one callback when all are done.
local function split(callback, fname)
  if type(callback) == "function" then return callback, nil, nil end
  if type(callback) == "table" then return callback.success, callback.error, callback.cancelled end
  if callback == nil then return nil, nil, nil end
  error(fname .. ": the callback must be a function, a table {success, error} or nil", 3)
end

local Group = {}
Group.__index = Group
function Group:cancel()
  if self.finished then return false end
  local any = false
  for _, h in ipairs(self.handles) do any = h:cancel() or any end
  self.finished = true
  if self.onCancel then deferred[#deferred + 1] = self.onCancel end
  return any
end
function Group:status() return self.finished and "done" or "running" end

-- Issues `count` parts through issue(k, callbacks); results[k] is part k's
-- first result; the first failure cancels the rest and is reported once.
local function fanout(callback, fname, count, issue)
  local onSuccess, onError, onCancel = split(callback, fname)
  local g = setmetatable({ handles = {}, finished = false, onCancel = onCancel }, Group)
  local results, remaining = {}, count
  local function finish()
    g.finished = true
    if onSuccess then onSuccess(results) end
  end
  local function fail(e, tb)
    if g.finished then return end
    g.finished = true
    for _, h in ipairs(g.handles) do h:cancel() end
    if onError then onError(e, tb) else async.onerror(e, tb) end
  end
  for k = 1, count do
    local ok, h = pcall(issue, k, {
      success = function(r)
        if g.finished then return end
        results[k] = r
        remaining = remaining - 1
        if remaining == 0 then finish() end
      end,
      error = fail,
    })
    if not ok then
      for _, q in ipairs(g.handles) do q:cancel() end
      g.finished = true
      error(h, 0)
    end
    g.handles[k] = h
  end
  if count == 0 then deferred[#deferred + 1] = finish end
  return g
end

--- Calls name(list[i], ...) for every element, in parallel; callback gets
--- the list of first results, in order. Returns a group with :cancel().
function async.map(callback, name, list, ...)
  if type(list) ~= "table" then error("async.map: expected a list, got " .. type(list), 2) end
  local args, nargs = { ... }, select("#", ...)
  return fanout(callback, "async.map", #list, function(k, cb)
    return async.call(cb, name, list[k], unpack(args, 1, nargs))
  end)
end

local function checkInt(v, what, fname)
  if type(v) ~= "number" or v ~= math.floor(v) then
    error(("%s: %s must be a whole number, got %s"):format(fname, what, tostring(v)), 3)
  end
end

--- Splits [first, last] into tiles of `grain` indices and calls
--- name(i0, i1, ...) for each; callback gets the tiles' first results in
--- order.
function async.parallelFor(callback, name, first, last, grain, ...)
  checkInt(first, "first", "async.parallelFor"); checkInt(last, "last", "async.parallelFor")
  checkInt(grain, "grain", "async.parallelFor")
  if grain < 1 then error("async.parallelFor: grain must be >= 1", 2) end
  local args, nargs = { ... }, select("#", ...)
  local count = last >= first and math.ceil((last - first + 1) / grain) or 0
  return fanout(callback, "async.parallelFor", count, function(k, cb)
    local i0 = first + (k - 1) * grain
    return async.call(cb, name, i0, math.min(i0 + grain - 1, last), unpack(args, 1, nargs))
  end)
end

--- Splits the rectangle [x0, x1] x [y0, y1] into tiles of tileW x tileH and
--- calls name(tx0, ty0, tx1, ty1, ...) for each (inclusive bounds); callback
--- gets the tiles' first results, row by row.
function async.parallelFor2D(callback, name, x0, y0, x1, y1, tileW, tileH, ...)
  for _, v in ipairs({ x0, y0, x1, y1, tileW, tileH }) do checkInt(v, "every bound and tile size", "async.parallelFor2D") end
  if tileW < 1 or tileH < 1 then error("async.parallelFor2D: tile sizes must be >= 1", 2) end
  local args, nargs = { ... }, select("#", ...)
  local cols = x1 >= x0 and math.ceil((x1 - x0 + 1) / tileW) or 0
  local rows = y1 >= y0 and math.ceil((y1 - y0 + 1) / tileH) or 0
  return fanout(callback, "async.parallelFor2D", cols * rows, function(k, cb)
    local cx, cy = (k - 1) % cols, math.floor((k - 1) / cols)
    local tx0, ty0 = x0 + cx * tileW, y0 + cy * tileH
    return async.call(cb, name, tx0, ty0, math.min(tx0 + tileW - 1, x1), math.min(ty0 + tileH - 1, y1),
      unpack(args, 1, nargs))
  end)
end

-- Coroutines the library drives: async.go(fn, ...) runs fn as a coroutine in
-- which async.await(f, ...) waits for a job without blocking the frame.

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    -- A coroutine that fails raises out of async.update(), as a callback would.
    error(debug.traceback(co, tostring(err)), 0)
  end
end

--- Runs fn(...) as a coroutine driven by async.update(); inside it,
--- async.await may be used. Returns the coroutine.
function async.go(fn, ...)
  if type(fn) ~= "function" then error("async.go: expected a function, got " .. type(fn), 2) end
  local co = coroutine.create(fn)
  resume(co, ...)
  return co
end

--- Inside async.go: calls the defined function (its name or shorthand) and
--- returns its results when they arrive. A job that fails raises here: a
--- string error gets the worker's traceback appended; any other error value
--- is raised as it is.
function async.await(f, ...)
  local co, ismain = coroutine.running()
  if co == nil or ismain then error("async.await: call it inside async.go(fn)", 2) end
  local name = type(f) == "string" and f or names[f]
  if name == nil then error("async.await: expected a defined name or a shorthand from async.define", 2) end
  async.call({
    success = function(...) resume(co, true, ...) end,
    error = function(e, tb) resume(co, false, e, tb) end,
  }, name, ...)
  local function finish(ok, ...)
    if ok then return ... end
    local e, tb = ...
    if type(e) == "string" then error(e .. "\n[worker] " .. tostring(tb), 0) end
    error(e, 0)
  end
  return finish(coroutine.yield())
end

return async
