---@meta async
-- SPDX-License-Identifier: MIT (see LICENSE)
-- Lua language server annotations for async (completion and type checks in
-- editors). Add the folder library/ to "Lua.workspace.library"; it is never loaded.

---@alias async.Value nil|boolean|number|string|table|userdata
--- A function called with the job's results, a table of handlers, or nil.
---@alias async.Callback fun(...: async.Value)|async.CallbackTable|nil

---@class async.CallbackTable
---@field success? fun(...: async.Value) called with the job's results
---@field error? fun(err: any, traceback: string) called when the job failed
---@field cancelled? fun() called (in update) when the call was cancelled before it started
---@field key? any a newer call with the same key cancels this one while it is still queued
--- (and, once it runs, asks it to stop: see async.cancelled in jobs)

---@class async.Handle
local Handle = {}
--- Cancels the call if it has not started. Its callback is then never called
--- (a table callback's `cancelled` is). Returns whether it was cancelled.
--- A running call is not cancelled (false): it is asked to stop, which the
--- job sees as async.cancelled() == true; its results are still delivered.
---@return boolean
function Handle:cancel() end
---@return "queued"|"running"|"cancelled"|"done"
function Handle:status() end

---@class async.WorkerStats
---@field index integer
---@field running boolean
---@field jobs number jobs this worker ran
---@field steals number jobs it took from other workers
---@field busy number seconds spent running jobs
---@field idle number seconds spent looking for work or asleep
---@field memory number bytes held by this worker's Lua state

---@class async.Stats
---@field queued number calls not started
---@field running number calls running now
---@field ready number calls finished, callback not yet delivered
---@field inflight number calls made and not yet delivered
---@field completed number callbacks delivered for successful calls
---@field failed number failed calls delivered
---@field cancelled number cancelled calls delivered
---@field steals number
---@field workerCount integer
---@field memory number bytes held by all workers' Lua states
---@field statesReplaced number worker states replaced after running out of memory
---@field records number call records allocated: those in flight and idle ones kept (native backend)
---@field recordBytes number bytes idle call records keep for their next call (native backend)
---@field channels number LÖVE channel names used to carry LÖVE objects (reused, never freed by LÖVE)
---@field workers async.WorkerStats[]
---@field defs table<string, async.DefStats> per definition name, every name defined since load

---@class async.DefStats
---@field calls number calls delivered (completed, failed or cancelled)
---@field failures number
---@field cancels number calls cancelled before they ran, or superseded by their key
---@field runs number runs timed (short jobs: one call in several; the first always)
---@field window number timed runs the means and p99s below are taken over (the last 256)
---@field runTotal number seconds the workers spent running it (timed runs times the calls each stands for)
---@field runMean number seconds per run, over the window
---@field runP99 number seconds: 99 % of the window's runs took at most this
---@field waitMean number seconds from the call to its start on a worker, over the window
---@field waitP99 number
---@field bytesIn number encoded arguments, all calls (0 on the thread backend)
---@field bytesOut number encoded results or errors, all calls (0 on the thread backend)

---@class async.TraceOptions
---@field events? integer events each thread's ring keeps (default 65536); the oldest are overwritten

---@class async.TimelineEvent
---@field name string the definition's name (workers), or "call name", "callback name", "update" (game)
---@field t0 number seconds on async.now()'s clock
---@field t1 number

---@class async.Timeline
---@field now number async.now() when it was taken
---@field workers async.TimelineEvent[][] per worker, 1-based, oldest first
---@field game async.TimelineEvent[] the game thread's calls, update() and callbacks

---@class async.LoadOptions
---@field workers? integer number of worker threads (default 1)
---@field memoryLimit? integer bytes each worker's Lua state may hold; a job that
--- needs more fails with an "out of memory" error and its worker gets a fresh state
--- (native backend only)
---@field backend? "native"|"thread" the backend for this pool and the following ones
---@field pin? boolean bind worker k to CPU k (default false: workers float, leaving the game's thread and other pools room)
---@field perfMap? boolean write /tmp/perf-<pid>.map so that perf names the JIT-compiled code of jobs (default: ASYNC_PERF_MAP=1)

---@class async.Group
local Group = {}
--- Cancels the parts not started (running parts are asked to stop); the
--- callback's `cancelled` is called once. Returns whether any part was cancelled.
---@return boolean
function Group:cancel() end
---@return "running"|"done"
function Group:status() end

---@class async.Buffer
local Buffer = {}
--- A pointer to the bytes through the FFI, e.g. buffer:ptr("float").
---@param ctype? string
---@return ffi.cdata*
function Buffer:ptr(ctype) end
---@return integer
function Buffer:size() end
--- The address of the first byte, for ffi.cast (raises while a job holds the buffer).
---@return lightuserdata
function Buffer:address() end
--- True while a job holds it (the game's ptr and address raise meanwhile).
---@return boolean
function Buffer:isLent() end

---@class async.Ensure
local Ensure = {}
---@param n integer
---@return async.Ensure
function Ensure.exactly(n) end
---@param n integer
---@return async.Ensure
function Ensure.atLeast(n) end
---@param n integer
---@return async.Ensure
function Ensure.atMost(n) end

---@class async
---@field _VERSION string "async" and its version, e.g. "async 0.1"
---@field maxDepth integer table nesting limit for values sent to and from workers
---@field maxParts integer the most calls one map/parallelFor may issue (default 16384; assignable)
---@field backend "native"|"thread" the native module, or the love.thread fallback
---@field backendReason string|nil why the thread backend runs instead of the native module; nil on native
---@field ensure async.Ensure
local async = {}

--- Which implementation of call and update is in use: "ffi" (the default
--- under LuaJIT's JIT) or "capi".
---@return "ffi"|"capi"
function async.getPath() end

--- Starts a pool of `n` workers (default 1) for this Lua state, or with options.
--- Called again while loaded, it keeps the pool and sets its worker count
--- (docs/lifecycle.md).
---@param n? integer|async.LoadOptions
function async.load(n) end

---@class async.ShutdownOptions
---@field timeout? number seconds: jobs still running then are stopped (interpreted Lua) or abandoned

--- Queued calls end cancelled, running jobs see async.cancelled(); waits for
--- them, delivers every callback, frees everything (docs/lifecycle.md).
---@param opts? async.ShutdownOptions
function async.shutdown(opts) end

---@return boolean
function async.isLoaded() end

--- Delivers finished calls' callbacks. A number (a frame's dt) is ignored;
--- with `{budget = seconds}` it stops once that much time is spent and the
--- rest waits for the next call.
---@param opts? number|{budget?: number}
---@return integer delivered
function async.update(opts) end

--- Publishes `func` to the workers. Upvalues are copied now.
---@param name string
---@param func function
---@return fun(callback: async.Callback, ...: async.Value): async.Handle shorthand
function async.define(name, func) end

--- Queues a call of the function defined as `name`.
---@param callback async.Callback
---@param name string
---@param ... async.Value
---@return async.Handle
function async.call(callback, name, ...) end

---@param name string
function async.undefine(name) end

---@return integer
function async.getWorkerCount() end
function async.addWorker() end
---@param n integer
function async.stopWorkers(n) end

--- Called with (error, traceback) for a failed job whose callback has no error handler.
---@type fun(err: any, traceback: string)
async.onerror = nil

--- Counters; pass the table from the last call to have it refilled.
---@param into? async.Stats
---@return async.Stats
function async.stats(into) end

--- Starts recording a timeline: every job on its worker's track, the game
--- thread's calls, update() and callbacks on its own (docs/profiling-lua.md).
---@param opts? async.TraceOptions
---@return true|nil ok
---@return string? err
function async.startTrace(opts) end

--- Stops recording; with a path, writes Chrome trace event JSON there
--- (Perfetto, chrome://tracing).
---@param path? string
---@return true|nil ok
---@return string? err
function async.stopTrace(path) end

---@return boolean
function async.isTracing() end

--- The last `seconds` (default 1) of the trace, per worker and for the game.
---@param seconds? number
---@return async.Timeline
function async.timeline(seconds) end

--- Seconds on the clock of the trace and the timeline: love.timer.getTime's in LÖVE.
---@return number
function async.now() end

--- Runs fn(...) as a coroutine driven by async.update(), in which async.await may be used.
---@param fn fun(...)
---@param ... any
---@return thread
function async.go(fn, ...) end

--- Publishes a read-only value to every job as async.shared[name], decoded
--- once per worker per version. nil removes it.
---@param name string
---@param value async.Value
function async.share(name, value) end

--- fn(state, workerIndex) runs on every worker, present and future, before
--- its next job; `state` is async.state in jobs. nil removes it.
---@param fn fun(state: table, workerIndex: integer)|nil
function async.setWorkerInit(fn) end

--- A zero-filled buffer that jobs see without a copy.
---@param size integer bytes
---@return async.Buffer
function async.newBuffer(size) end

--- Calls name(list[i], ...) for every element in parallel; the callback gets the
--- list of first results in order.
---@param callback async.Callback
---@param name string
---@param list any[]
---@return async.Group
function async.map(callback, name, list, ...) end

--- Calls name(i0, i1, ...) for tiles of `grain` indices of [first, last].
---@return async.Group
function async.parallelFor(callback, name, first, last, grain, ...) end

--- Calls name(tx0, ty0, tx1, ty1, ...) for tiles of the rectangle.
---@return async.Group
function async.parallelFor2D(callback, name, x0, y0, x1, y1, tileW, tileH, ...) end

--- Inside async.go: calls a defined function and returns its results once they arrive;
--- raises the job's error (a string error gets the worker's traceback appended).
---@param f string|function a defined name or its shorthand
---@param ... async.Value
---@return ...
function async.await(f, ...) end

--- What a job sees as `async`: the worker-side API. In a job, the `async`
--- of `local async = require "async"` (or the global `async`) is this table,
--- not the game's. Annotate it in job code with `---@type async.Job`.
---@class async.Job
---@field shared table<string, async.Value> values published with async.share (read-only by contract)
---@field state table a per-worker table that survives between calls (caches)
---@field workerIndex integer this worker's index
---@field isWorker true present only on this side: `async.isWorker` tells job code from game code
local Job = {}

--- Runs another defined function as a job and returns its results; the
--- worker runs other jobs while it waits. Raises the awaited job's error.
---@param name string
---@param ... async.Value
---@return ...
function Job.await(name, ...) end

--- Starts several defined functions as jobs and waits for all of them.
---@param calls table[] each {name, args...}
---@return any[] firsts the first result of each, in order
function Job.awaitAll(calls) end

--- True once the game cancelled the running call (handle:cancel(), a newer
--- call with its key, a group's cancel). Long jobs poll it to stop early.
---@return boolean
function Job.cancelled() end

--- A zero-filled buffer the job can fill and return to the game.
---@param size integer bytes
---@return async.Buffer
function Job.newBuffer(size) end

return async
