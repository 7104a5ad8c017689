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

local function unload()
  ctx = nil
  async.call = function() notLoaded() end
  async.update = function() notLoaded() end
end
unload()

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

--- Starts the library with `n` worker threads (default 1).
function async.load(n)
  if n ~= nil then checkCount(n, "async.load") end
  if ctx then error("async.load: already loaded (call async.shutdown() first)", 2) end
  local c, call, update = native.new(n or 1, async)
  ctx = c
  async.call = call     -- async.call(callback, name, ...): a C function, no Lua frame
  async.update = update -- async.update([budget]) -> callbacks delivered
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
function async.define(name, func)
  if type(name) ~= "string" then
    error("async.define: the name must be a string, got " .. type(name), 2)
  end
  return context():define(name, func)
end

--- Removes a definition. Calls already made still run with it.
function async.undefine(name)
  if type(name) ~= "string" then
    error("async.undefine: the name must be a string, got " .. type(name), 2)
  end
  context():undefine(name)
end

--- Counters: queued, running, ready, inflight, completed, failed, cancelled,
--- steals, workerCount, and workers[i] = {jobs, steals, busy, idle, running}.
--- Pass the table from last time to have it refilled without allocating.
function async.stats(into) return context():stats(into) end

-- Coroutines the library drives: async.go(fn, ...) runs fn as a coroutine in
-- which async.await(f, ...) waits for a job without blocking the frame.
local names = setmetatable({}, { __mode = "k" }) -- shorthand -> name

local define = async.define
function async.define(name, func)
  local f = define(name, func)
  names[f] = name
  return f
end

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
