---@meta async
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

---@class async.Handle
local Handle = {}
--- Cancels the call if it has not started. Its callback is then never called
--- (a table callback's `cancelled` is). Returns whether it was cancelled.
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
---@field workers async.WorkerStats[]

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
---@field maxDepth integer table nesting limit for values sent to and from workers
---@field ensure async.Ensure
local async = {}

--- Starts a pool of `n` workers (default 1) for this Lua state.
---@param n? integer
function async.load(n) end

--- Waits for every queued and running call, delivers their callbacks, frees everything.
function async.shutdown() end

---@return boolean
function async.isLoaded() end

--- Delivers finished calls' callbacks. With `budget` (seconds) it stops once
--- that much time is spent; the rest waits for the next call.
---@param budget? number
---@return integer delivered
function async.update(budget) end

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

--- Runs fn(...) as a coroutine driven by async.update(), in which async.await may be used.
---@param fn fun(...)
---@param ... any
---@return thread
function async.go(fn, ...) end

--- Inside async.go: calls a defined function and returns its results once they arrive;
--- raises the job's error (a string error gets the worker's traceback appended).
---@param f string|function a defined name or its shorthand
---@param ... async.Value
---@return ...
function async.await(f, ...) end

return async
