-- skip.lua: loaded by runner.lua before the suites. Prints the backend in
-- use and leaves out the tests it cannot run, saying why. Everything else in
-- test/lua runs on both backends.
local backend = require("async").backend
package.loaded.async = nil
print("backend: " .. backend)

local NO_CYCLES = "cycles and shared sub-tables are refused on the thread backend (checked in test_thread_backend.lua)"
local NO_BUFFERS = "zero-copy buffers need the native module (the refusal is checked in test_thread_backend.lua)"
local NO_LIMIT = "memoryLimit needs the native module (the refusal is checked in test_thread_backend.lua)"
local SKIP = {
  thread = {
    ["shared and cyclic tables keep their shape"] = NO_CYCLES,
    ["buffers: zero-copy through the FFI, the game's until the callback"] = NO_BUFFERS,
    ["a job that runs out of memory fails with an error; its worker gets a fresh state"] = NO_LIMIT,
    ["out of memory: a string, a too-large argument, a job that catches it"] = NO_LIMIT,
    ["out of memory inside an awaited job, on one worker and on two"] = NO_LIMIT,
    ["a memoryLimit too small to start a worker fails every job with a clear error"] = NO_LIMIT,
    ["shutdown under load delivers every call once, 20 times over"] =
      NO_LIMIT .. " and buffers; test_thread_backend.lua runs the same load without them",
    ["shutdown while a job runs out of memory and others are queued"] = NO_LIMIT,
    -- test_lifecycle.lua
    ["a NaN key or a raising callback table leaks no record and lends no buffer"] =
      NO_BUFFERS .. "; the NaN key and the raising callback table are checked there too",
    ["a lent buffer cannot be lent again; a job cannot keep a buffer it returned"] = NO_BUFFERS,
    ["collectgarbage('stop') and a broken environment metatable do not outlive the job"] =
      NO_LIMIT .. "; the job's collector and environment are checked there without it",
    -- test_workers.lua
    ["async.load{pin = true} binds each worker to one CPU"] =
      "love.thread gives no way to bind a thread to a CPU: the thread backend accepts pin and ignores it (docs/lua-api.md, Backends)",
    ["a worker's Lua state keeps memory its jobs free: no page faults per job once warm"] =
      "the kept blocks are the native module's allocator wrapper; love.thread states use LÖVE's",
    ["kept blocks count in memory but never make a job run out of memory"] = NO_LIMIT,
    ["a job that fits under memoryLimit keeps fitting when run again"] = NO_LIMIT,
    ["big blocks of sizes that do not recur are not kept"] =
      "the kept blocks are the native module's allocator wrapper; love.thread states use LÖVE's",
    ["lifecycle: every terminal path gives the call's buffer back"] =
      NO_BUFFERS .. "; every terminal path's delivery is checked there without one",
    -- test_paths.lua
    ["tables cross with holes, shared and cyclic parts, odd keys, no metatables"] = NO_CYCLES,
    -- test_hostile.lua
    ["a queued call that is cancelled or superseded gives its buffer back at once"] = NO_BUFFERS,
    ["parallelFor names a shared buffer and too many tiles before issuing any"] = NO_BUFFERS,
  },
  native = {
    ["thread backend: "] = "the thread backend's own tests", -- a prefix, see below
  },
}

-- On both backends: tests that only mean something in plain LuaJIT. They
-- run in the lua_* suites outside LÖVE.
local NOT_IN_LOVE = {
  ["idiom: worker states run love.jitsetup where it exists"] =
    "puts a plain-Lua stand-in (fakelove/) on package.path; inside LÖVE the workers take the real love " ..
    "from package.preload, so the stand-in is never loaded; run by lua_lifecycle in plain LuaJIT",
  ["a record does not keep a huge call's buffers"] =
    "reads the native records' stats().recordBytes, which the thread backend does not have; " ..
    "run by lua_lifecycle and lua_lifecycle_capi in plain LuaJIT",
}

local register = test
function test(name, fn)
  local reason = SKIP[backend][name] or NOT_IN_LOVE[name]
  if backend == "native" and name:find("^thread backend: ") then reason = SKIP.native["thread backend: "] end
  if reason then
    io.stderr:write("[SKIP] ", name, ": ", reason, "\n")
    return
  end
  register(name, fn)
end
