-- SPDX-License-Identifier: MIT (see LICENSE)
-- async.lua: the façade a game requires. Async 1.1's API (load, shutdown,
-- update, ensure, define, call, ...) on the native module, which runs the
-- jobs on the C core's work-stealing workers. Works in LÖVE 11 and in plain
-- LuaJIT.
-- ---- backend selection (lua/async_loader.lua) --------------------------------
-- The native module where it loads, else (inside LÖVE) the love.thread
-- backend; async.backend says which. async.load{backend = ...} may switch.
local prefix = (...) and (...):match("^(.-)[^.]*$") or ""
local MSG = require(prefix .. "async_messages")
local loader = require(prefix .. "async_loader")
local native, backend, backendReason = loader.select(prefix)
-- ---- end of backend selection --------------------------------------------------

local async = {
  _VERSION = "async 0.1",
  backend = backend, -- "native" or "thread"
  -- Why the thread backend runs instead of the native module (a sentence
  -- a game may log or show); nil on the native backend.
  backendReason = backendReason,
  -- Nesting limit for tables sent to or from a worker.
  maxDepth = native.max_depth,
}

local ctx -- the native context while loaded: one pool per Lua state

-- Which path calls and deliveries take (docs/lua-api.md, "Call paths"):
-- the FFI path (async_fast.lua) where LuaJIT's JIT and FFI are on, else
-- the C API path; ASYNC_PATH=capi or ffi chooses (ffi even with the JIT
-- off, where the interpreter runs the FFI path 3-8x slower than the C API
-- path: bench/ANALYSIS.md). Only for this native backend: another backend
-- keeps its own call and update.
local fastpath
do
  local want = os.getenv("ASYNC_PATH")
  if want ~= "capi" then
    -- With the same prefix as this file: a game that keeps the library in
    -- a folder (require "lib.async") must get the FFI path too.
    local ok, m = pcall(require, prefix .. "async_fast")
    if ok and (want == "ffi" or m.available()) then
      fastpath = m
    elseif want == "ffi" then
      error(MSG.FFI_UNAVAILABLE:format(tostring(m)))
    end
  end
end

-- Misuse is raised at the game's line: the first caller that is not one of
-- the library's own files (async.lua and the async_*.lua beside it).
local LIBDIR = debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$")
local function isLibrary(source)
  local dir, name = source:match("^@(.-)([^/\\]*)$")
  return dir ~= nil and dir == LIBDIR and name:match("^async[%w_]*%.lua$") ~= nil
end

local function misuse(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if info == nil then level = 0; break end -- no caller outside: no position
    if not isLibrary(info.source) then break end
    level = level + 1
  end
  error(msg, level)
end

-- A backend's error raised at its caller in the library (a C function's
-- luaL_error, the thread backend's failAt) is raised again at the game's line.
local function relay(ok, ...)
  if ok then return ... end
  local msg = ...
  if type(msg) == "string" then
    local where, rest = msg:match("^([^\n]-):%d+: ()")
    if where and where:match("async[%w_]*%.lua$") then msg = msg:sub(rest) end
  end
  misuse(msg)
end

local NOT_LOADED = MSG.NOT_LOADED
local function notLoaded() misuse(NOT_LOADED) end

local nativeCall, nativeUpdate
-- The backend's own call and update, which a trace wraps (async_profile.lua).
local backendCall, backendUpdate
local profile -- set at the end of this file: route(ctx, call, update), unloaded()
local onFastPath = false -- whether the loaded pool took the FFI path
local loadedWith -- the loaded pool's options that a second load() must match

local function unload()
  ctx = nil
  loadedWith = nil
  nativeCall = notLoaded
  nativeUpdate = notLoaded
  if profile then profile.unloaded() end
end
unload()

-- Callbacks due in the next update() (empty maps, a group's `cancelled`):
-- a queue, so that one that raises leaves the rest for the next update,
-- and shutdown() delivers them too.
local deferred, dfirst, dlast = {}, 1, 0

local function defer(fn)
  dlast = dlast + 1
  deferred[dlast] = fn
end

-- Runs the deferred callbacks queued so far; returns whether it ran any.
local function runDeferred()
  local last, ran = dlast, false
  while dfirst <= last do
    local fn = deferred[dfirst]
    deferred[dfirst] = nil
    dfirst = dfirst + 1
    ran = true
    fn()
  end
  return ran
end

--- async.call(callback, name, ...): one stable function reading the current
--- pool, so `local call = async.call` taken before load() keeps working
--- across shutdown() and load().
function async.call(callback, name, ...)
  if type(name) ~= "string" then
    misuse(MSG.CALL_NAME:format(type(name)))
  end
  -- No definition has such a name (define refuses it), and the native side
  -- would read it as a C string: "a\0evil" would run "a".
  if name:find("\0", 1, true) then
    misuse(MSG.CALL_NAME_NUL:format(name))
  end
  return nativeCall(callback, name, ...) -- a tail call: errors point at the caller
end

--- Delivers finished calls' callbacks (see docs/lua-api.md). async.update(dt)
--- is fine (a number is ignored); async.update{budget = seconds} stops once
--- that much time is spent.
function async.update(opts)
  local budget
  if type(opts) == "table" then
    budget = opts.budget
    if budget ~= nil and (type(budget) ~= "number" or not (budget >= 0)) then
      misuse(MSG.UPDATE_BUDGET:format(tostring(budget)))
    end
  elseif opts ~= nil and type(opts) ~= "number" then
    misuse(MSG.UPDATE_OPTIONS:format(type(opts)))
  end
  if not ctx then notLoaded() end
  runDeferred()
  return nativeUpdate(budget)
end

local function context()
  if not ctx then notLoaded() end
  return ctx
end

-- ctx:method(...) with its misuse raised at the game's line.
local function pool(method, ...)
  local c = context()
  return relay(pcall(c[method], c, ...))
end

-- Worker counts: fractions (cores * 0.75) are floored.
local function checkCount(n, fname)
  if type(n) ~= "number" or not (n >= 0) then
    misuse(MSG.COUNT:format(fname, tostring(n)))
  end
  return math.floor(n)
end

-- Called with (message, traceback) when a job fails and its callback has no
-- error handler (a plain function, or none). Replace it to route failures
-- elsewhere; the default writes them to stderr.
function async.onerror(message, traceback)
  io.stderr:write(MSG.JOB_FAILED:format(tostring(message), tostring(traceback)))
  if io.stderr.flush then io.stderr:flush() end -- msvcrt buffers stderr when it is a file (a game may swap io.stderr for a writer)
end

--- Starts the library with `n` worker threads (default 1), or with a table
--- { workers = n, memoryLimit = bytes, pin = false }: memoryLimit caps each
--- worker's Lua state; a job that reaches it fails with an "out of memory"
--- error and its worker gets a fresh state. pin = true binds worker k to
--- CPU k; by default workers float, so that the game's main thread and
--- other pools are not stacked onto the cores the workers hold. perfMap =
--- true (or ASYNC_PERF_MAP=1) writes /tmp/perf-<pid>.map so that perf names
--- the JIT-compiled code of jobs (docs/profiling-perf.md).
function async.load(n)
  local limit, pin, perfMap, opts
  if type(n) == "table" then
    opts = n
    for k in pairs(opts) do
      if k ~= "workers" and k ~= "memoryLimit" and k ~= "backend" and k ~= "pin" and k ~= "perfMap" then
        misuse(MSG.LOAD_UNKNOWN_OPTION:format(tostring(k)))
      end
    end
    n, limit, pin, perfMap = opts.workers, opts.memoryLimit, opts.pin, opts.perfMap
    -- backend selection: "native" or "thread" for this pool and the next ones
    if opts.backend ~= nil and opts.backend ~= async.backend and not ctx then
      native, async.backend, async.backendReason = loader.select(prefix, opts.backend)
      async.newBuffer = native.newBuffer
    end
    if limit ~= nil and (type(limit) ~= "number" or limit < 1 or limit ~= math.floor(limit)) then
      misuse(MSG.LOAD_MEMORY_LIMIT:format(tostring(limit)))
    end
    if pin ~= nil and type(pin) ~= "boolean" then
      misuse(MSG.LOAD_PIN:format(type(pin)))
    end
    if perfMap ~= nil and type(perfMap) ~= "boolean" then
      misuse(MSG.LOAD_PERF_MAP:format(type(perfMap)))
    end
  end
  if perfMap == nil then perfMap = os.getenv("ASYNC_PERF_MAP") == "1" end
  -- A fraction of one (cores * 0.25 on a small machine) still gets a worker.
  if n ~= nil then n = math.max(checkCount(n, "async.load"), n > 0 and 1 or 0) end
  if ctx then
    -- Loaded already (Async 1.1 accepted this: a game whose love.load runs
    -- again to restart a level): the pool stays, with its definitions,
    -- shared values and calls in flight, and gets the worker count asked.
    -- An option a running pool cannot change is an error.
    local want = opts or {}
    if (want.backend ~= nil and want.backend ~= async.backend) or limit ~= loadedWith.limit
        or (pin == true) ~= loadedWith.pin then
      misuse(MSG.LOAD_OTHER_OPTIONS
        :format(("backend %s, memoryLimit %s, pin %s"):format(async.backend, tostring(loadedWith.limit),
          tostring(loadedWith.pin))))
    end
    async.ensure.exactly(n or 1)
    return
  end
  -- The game's state names its traces too; the workers' states run the
  -- same code when made.
  local boot
  if perfMap then
    local pm = require(prefix .. "async_perfmap")
    local ok, why = pm.install(nil, { MSG.PERF_MAP_JIT_OFF, MSG.PERF_MAP_OS })
    if ok then
      boot = pm.code()
    else
      io.stderr:write(MSG.PERF_MAP_GAME:format(tostring(why)))
    end
  end
  local c, call, update = relay(pcall(native.new, n or 1, async, limit, pin == true, boot))
  -- The thread backend has no fastApi and keeps its own call and update.
  onFastPath = fastpath ~= nil and async.backend == "native" and c.fastApi ~= nil
  if onFastPath then call, update = fastpath.wrap(c, call, update, async) end
  ctx = c
  loadedWith = { limit = limit, pin = pin == true }
  backendCall, backendUpdate = call, update
  nativeCall, nativeUpdate = profile.route(c, call, update)
end

--- Stops the pool: queued calls do not run (their callbacks hear
--- cancelled), running jobs see async.cancelled() true; waits for those,
--- delivers every callback (and the deferred ones), and frees everything.
--- async.shutdown{timeout = seconds}: jobs still running then are stopped
--- by a debug hook where they run interpreted Lua, and those left are
--- abandoned to the process's exit (docs/lifecycle.md). Calls that
--- callbacks make meanwhile do not run: they end as cancelled.
--- async.load() may be called again afterwards, also from a callback that
--- shutdown() delivers.
function async.shutdown(opts)
  local timeout
  if type(opts) == "table" then
    for k in pairs(opts) do
      if k ~= "timeout" then
        misuse(MSG.SHUTDOWN_UNKNOWN_OPTION:format(tostring(k)))
      end
    end
    timeout = opts.timeout
    if timeout ~= nil and (type(timeout) ~= "number" or not (timeout >= 0)) then
      misuse(MSG.SHUTDOWN_TIMEOUT:format(tostring(timeout)))
    end
  elseif opts ~= nil then
    misuse(MSG.SHUTDOWN_OPTIONS:format(type(opts)))
  end
  if not ctx then return end
  local c = ctx
  runDeferred()
  c:shutdown(runDeferred, timeout) -- a callback that raises interrupts it; call again to go on
  if ctx == c then unload() end -- a callback may have loaded a new pool
end

function async.isLoaded() return ctx ~= nil end

--- "ffi" or "capi": the path async.call and async.update take (before
--- load(), the one the native backend would take; "capi" on the thread
--- backend, which never takes the FFI path).
function async.getPath()
  if ctx then return onFastPath and "ffi" or "capi" end
  return (fastpath and async.backend == "native") and "ffi" or "capi"
end

--- Number of worker threads running (and not asked to stop).
function async.getWorkerCount() return pool("count") end

function async.addWorker()
  local ok, err = pool("add", 1)
  if not ok then misuse(MSG.PREFIXED:format("async.addWorker", err)) end
end

--- Stops `n` workers (at most the number running). Each finishes its current
--- job; no queued call is lost.
function async.stopWorkers(n)
  pool("stop", checkCount(n, "async.stopWorkers"))
end

async.ensure = {}

function async.ensure.atLeast(n)
  n = checkCount(n, "async.ensure.atLeast")
  local have = pool("count")
  if have < n then
    local ok, err = pool("add", n - have)
    if not ok then misuse(MSG.PREFIXED:format("async.ensure.atLeast", err)) end
    if pool("count") < n then -- as load() does: more than the pool's maximum is a warning
      io.stderr:write(MSG.ENSURE_TOO_MANY:format(
        n, pool("count")))
    end
  end
  return async.ensure
end

function async.ensure.atMost(n)
  n = checkCount(n, "async.ensure.atMost")
  local have = pool("count")
  if have > n then pool("stop", have - n) end
  return async.ensure
end

function async.ensure.exactly(n)
  n = checkCount(n, "async.ensure.exactly")
  async.ensure.atLeast(n)
  return async.ensure.atMost(n)
end

--- Makes `func` callable on the workers under `name`. Its upvalues are copied
--- now; one that cannot be sent is an error naming it. Returns the shorthand
--- f(callback, ...) for async.call(callback, name, ...).
local names = setmetatable({}, { __mode = "k" }) -- shorthand -> name, for async.await

function async.define(name, func)
  if type(name) ~= "string" then
    misuse(MSG.NAME_NOT_STRING:format("async.define", type(name)))
  end
  -- The native side keeps names as C strings: "a\0b" would replace "a".
  if name:find("\0", 1, true) then
    misuse(MSG.NAME_NUL:format("async.define", name))
  end
  if type(func) ~= "function" then misuse(MSG.DEF_NOT_FUNCTION:format(MSG.DEFINE_WHAT:format(name), type(func))) end
  pool("define", name, func)
  -- The shorthand goes through async.call, so it survives shutdown/load.
  local function f(callback, ...)
    return nativeCall(callback, name, ...) -- a tail call: errors point at the caller
  end
  names[f] = name
  return f
end

--- Removes a definition. Calls already made still run with it.
function async.undefine(name)
  if type(name) ~= "string" then
    misuse(MSG.NAME_NOT_STRING:format("async.undefine", type(name)))
  end
  -- As call's: the native side would cut "a\0x" to "a" and remove that.
  if name:find("\0", 1, true) then
    misuse(MSG.NAME_NUL:format("async.undefine", name))
  end
  pool("undefine", name)
end

--- Counters: queued, running, ready, inflight, completed, failed, cancelled,
--- steals, workerCount, memory (bytes in the workers' Lua states), records, recordBytes,
--- statesReplaced, channels (LÖVE channel names used), and workers[i] = {jobs, steals, busy, idle, running,
--- memory}.
--- Pass the table from last time to have it refilled without allocating.
--- defs (per-definition figures) is filled when read (async_profile.lua).
function async.stats(into) return profile.stats(pool("stats", into)) end

--- Publishes a read-only value to every job as async.shared[name] (in the
--- worker), decoded once per worker per version instead of sent per call.
--- Sharing again replaces it for calls made afterwards; earlier calls keep
--- the version they were made against. nil removes it.
function async.share(name, value)
  if type(name) ~= "string" then misuse(MSG.NAME_NOT_STRING:format("async.share", type(name))) end
  -- As define's: the native side would cut "a\0b" to "a" and replace it.
  if name:find("\0", 1, true) then misuse(MSG.NAME_NUL:format("async.share", name)) end
  return pool("share", name, value)
end

--- fn(state, workerIndex) runs on every worker, present and future, before
--- its next job (once per worker per version); `state` is async.state, a
--- per-worker table that survives between calls. nil removes it.
function async.setWorkerInit(fn)
  pool("setWorkerInit", fn)
end

--- A zero-filled buffer of `size` bytes that jobs see through the FFI without
--- a copy (buffer:ptr("float")). Passed to a job, it is the job's until the
--- callback: the game's accessors raise meanwhile.
async.newBuffer = native.newBuffer

-- The extras (map, parallelFor, go/await) live in their own file; they
-- reach the façade's internals only through `private`.
require(prefix .. "async_extras")(async, { defer = defer, names = names })
profile = require(prefix .. "async_profile").install(async, {
  context = context, misuse = misuse, relay = relay,
  clock = function() return native.now() end,
  reroute = function() nativeCall, nativeUpdate = profile.route(ctx, backendCall, backendUpdate) end,
})

return async
