-- SPDX-License-Identifier: MIT (see LICENSE)
-- runner.lua: a small test runner for the Lua suites. Usage:
--   luajit runner.lua <folder with async.lua and async_native.so> suite.lua...
-- Each suite file returns nothing and registers tests with test(name, fn),
-- or test(name, { needs = { capability, ... } }, fn) for a test that needs
-- what not every backend or host has (lacks, below, says which).
-- Prints [PASS]/[FAIL] per test ([SKIP] with the reason for one whose
-- needs are not met) and a closing "N passed, N failed" line; exits
-- non-zero on any failure.
local dir = assert(arg[1], "usage: runner.lua <lua build folder> suite.lua...")
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. dir .. "/?.dll;" .. package.cpath -- .dll: Windows (under Wine)

local tests = {}
function test(name, opts, fn)
  if fn == nil then opts, fn = nil, opts end
  tests[#tests + 1] = { name = name, fn = fn, needs = opts and opts.needs or {} }
end

-- Why this run cannot give a test the capability `need`, or nil when it
-- can. Plain LuaJIT runs the native backend, with everything but the
-- thread backend; test/love/suite/skip.lua replaces this inside LÖVE.
function lacks(need)
  if need == "threadBackend" then return "needs the love.thread backend: run by love_suite_thread" end
  if need == "jit" and not (jit and jit.status()) then return "needs LuaJIT's JIT, which is off here" end
  return nil
end

-- Helpers shared by the suites.
function eq(a, b, what)
  if a ~= b and not (a ~= a and b ~= b) then
    error(("%s: expected %s, got %s"):format(what or "value", tostring(b), tostring(a)), 2)
  end
end
function ok(v, what) if not v then error((what or "assertion") .. " failed", 2) end end
function raises(pattern, fn, ...)
  local okk, err = pcall(fn, ...)
  if okk then error("expected an error matching '" .. pattern .. "', but it succeeded", 2) end
  if not tostring(err):find(pattern, 1, true) then
    error(("expected an error containing '%s', got: %s"):format(pattern, tostring(err)), 2)
  end
  return err
end
-- Runs async.update() until nothing is in flight (or fails after `secs`).
-- Waits (without delivering) until no call is queued or running: what a
-- test needs before shutdown() when it wants the callbacks of calls that
-- ran, since shutdown() cancels the queued ones.
function settle(async, secs)
  local deadline = os.time() + (secs or 20)
  while true do
    local s = async.stats()
    if s.queued == 0 and s.running == 0 then return end
    if os.time() > deadline then error("settle: calls still queued or running after " .. (secs or 20) .. " s", 2) end
  end
end

function drain(async, secs)
  local t0 = os.clock()
  local deadline = os.time() + (secs or 20)
  while async.stats().inflight > 0 do
    async.update()
    if os.time() > deadline then error("drain: calls still in flight after " .. (secs or 20) .. " s", 2) end
  end
  async.update()
end
-- Runs async.update() until pred() holds (or fails after 30 s).
function waitFor(async, pred, what)
  local deadline = os.time() + 30
  while not pred() do
    async.update()
    if os.time() > deadline then error("timed out waiting for " .. what, 2) end
  end
end
function sleep(s) local t = os.clock() + s; while os.clock() < t do end end

for i = 2, #arg do dofile(arg[i]) end

local passed, failed = 0, 0
for _, t in ipairs(tests) do
  local reason
  for _, need in ipairs(t.needs) do reason = reason or lacks(need) end
  if reason then
    io.stderr:write("[SKIP] ", t.name, ": ", reason, "\n")
    goto continue
  end
  io.stderr:write("[RUN ] ", t.name, "\n")
  local okk, err = xpcall(t.fn, debug.traceback)
  local a = package.loaded.async
  package.loaded.async = nil -- each test gets a fresh façade
  if okk then
    passed = passed + 1
    io.stderr:write("[PASS] ", t.name, "\n")
  else
    failed = failed + 1
    io.stderr:write("[FAIL] ", t.name, ": ", tostring(err), "\n")
    if a and a.isLoaded and a.isLoaded() then pcall(a.shutdown) end
  end
  collectgarbage()
  ::continue::
end
print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
