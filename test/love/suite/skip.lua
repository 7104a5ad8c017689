-- SPDX-License-Identifier: MIT (see LICENSE)
-- skip.lua: loaded by runner.lua before the suites. Prints the backend in
-- use and says which capabilities a test may need (test(name, { needs =
-- {...} }, fn)) this backend lacks inside LÖVE, and why: runner.lua skips
-- those tests with the reason. Everything else in test/lua runs on both.
local backend = require("async").backend
package.loaded.async = nil
print("backend: " .. backend)

local LACKS = {
  thread = {
    cycles = "cycles and shared sub-tables are refused on the thread backend (checked in test_thread_backend.lua)",
    buffers = "zero-copy buffers need the native module (the refusal is checked in test_thread_backend.lua)",
    memoryLimit = "memoryLimit needs the native module (the refusal is checked in test_thread_backend.lua)",
    pin = "love.thread gives no way to bind a thread to a CPU: the thread backend accepts pin and ignores it " ..
      "(docs/lua-api.md, Backends)",
    nativeAllocator = "the kept blocks are the native module's allocator wrapper; love.thread states use LÖVE's",
    encodedSizes = "nothing is encoded on the thread backend (a Channel copies the values): stats().defs " ..
      "reports 0 bytes",
    callRecords = "call records are the native module's (the thread backend reports records and recordBytes as 0)",
    finalizerDefine = "not yet on the thread backend: definitions changed by a finalizer while calls are made " ..
      "leave calls undelivered (the test hangs at shutdown)",
    finalizerRaiseInUpdate = "not yet on the thread backend: a result whose decoding a finalizer's error " ..
      "interrupts is lost and stays counted in flight (the test's drain times out)",
  },
  native = {
    threadBackend = "the thread backend's own tests",
  },
}

-- On both backends: tests that only mean something in plain LuaJIT (a
-- plain-Lua stand-in for love on package.path, which LÖVE's own preload
-- shadows; figures LÖVE's heap makes meaningless). The lua_* suites run
-- them outside LÖVE.
local IN_LOVE = {
  plainLuajit = "needs plain LuaJIT: run by the lua_* suites outside LÖVE",
}

function lacks(need)
  if need == "jit" and not (jit and jit.status()) then return "needs LuaJIT's JIT, which LÖVE turns off here" end
  return LACKS[backend][need] or IN_LOVE[need]
end
