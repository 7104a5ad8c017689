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
  },
  native = {
    ["thread backend: "] = "the thread backend's own tests", -- a prefix, see below
  },
}

local register = test
function test(name, fn)
  local reason = SKIP[backend][name]
  if backend == "native" and name:find("^thread backend: ") then reason = SKIP.native["thread backend: "] end
  if reason then
    io.stderr:write("[SKIP] ", name, ": ", reason, "\n")
    return
  end
  register(name, fn)
end
