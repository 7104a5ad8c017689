-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_positions.lua: every misuse error names the game's line (file:line
-- of the caller), not the library's. Table-driven: each case is a function
-- written on one line that misuses the API; its error must begin with this
-- file's name and that line. Runs on both backends (the love suite runs it
-- on the thread backend); a case the backend cannot reach says why.

local SRC = debug.getinfo(1, "S").short_src

-- Runs case.fn and checks the position and the message.
local function check(case)
  local line = debug.getinfo(case.fn, "S").linedefined
  local okk, err = pcall(case.fn)
  if okk then error(case.name .. ": no error raised", 0) end
  err = tostring(err)
  local want = SRC .. ":" .. line .. ": "
  if err:sub(1, #want) ~= want then
    error(("%s: the error does not name the caller's line %s: %s"):format(case.name, want, err), 0)
  end
  if not err:find(case.msg, 1, true) then
    error(("%s: expected a message containing '%s', got: %s"):format(case.name, case.msg, err), 0)
  end
end

local function runAll(cases)
  local failures = {}
  for _, case in ipairs(cases) do
    local okk, err = pcall(check, case)
    if not okk then failures[#failures + 1] = err end
  end
  if #failures > 0 then error(#failures .. " of " .. #cases .. " cases:\n  " .. table.concat(failures, "\n  "), 0) end
end

local NOT_LOADED = "call async.load() first"

-- The calls that need a loaded pool, as a game makes them.
local function unloadedCases(async, when)
  return {
    { name = "define " .. when, msg = NOT_LOADED, fn = function() async.define("f", function() end) end },
    { name = "undefine " .. when, msg = NOT_LOADED, fn = function() async.undefine("f") end },
    { name = "getWorkerCount " .. when, msg = NOT_LOADED, fn = function() async.getWorkerCount() end },
    { name = "stats " .. when, msg = NOT_LOADED, fn = function() async.stats() end },
    { name = "ensure.atLeast " .. when, msg = NOT_LOADED, fn = function() async.ensure.atLeast(1) end },
    { name = "ensure.atMost " .. when, msg = NOT_LOADED, fn = function() async.ensure.atMost(1) end },
    { name = "ensure.exactly " .. when, msg = NOT_LOADED, fn = function() async.ensure.exactly(1) end },
    { name = "addWorker " .. when, msg = NOT_LOADED, fn = function() async.addWorker() end },
    { name = "stopWorkers " .. when, msg = NOT_LOADED, fn = function() async.stopWorkers(1) end },
    { name = "share " .. when, msg = NOT_LOADED, fn = function() async.share("k", 1) end },
    { name = "setWorkerInit " .. when, msg = NOT_LOADED, fn = function() async.setWorkerInit(function() end) end },
    { name = "call " .. when, msg = NOT_LOADED, fn = function() async.call(nil, "f") end },
    { name = "update " .. when, msg = NOT_LOADED, fn = function() async.update() end },
  }
end

test("misuse before load names the caller's line", function()
  local async = require "async"
  runAll(unloadedCases(async, "before load"))
end)

test("misuse after shutdown names the caller's line", function()
  local async = require "async"
  async.load(1)
  local f = async.define("f", function() end)
  async.shutdown()
  local cases = unloadedCases(async, "after shutdown")
  cases[#cases + 1] = { name = "a define's shorthand after shutdown", msg = NOT_LOADED, fn = function() f(nil) end }
  runAll(cases)
end)

test("misuse of a loaded pool names the caller's line", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  local up = coroutine.create(function() end)
  runAll {
    { name = "define with a non-function", msg = "expected a function", fn = function() async.define("x", 5) end },
    { name = "define with a C function", msg = "C function", fn = function() async.define("x", print) end },
    { name = "define with an upvalue that cannot be sent", msg = "upvalue 'up'", fn = function() async.define("x", function() return up end) end },
    { name = "define with a name that is not a string", msg = "must be a string", fn = function() async.define(1, function() end) end },
    { name = "undefine with a name that is not a string", msg = "must be a string", fn = function() async.undefine(1) end },
    { name = "call of a name not defined", msg = "no function named 'nope'", fn = function() async.call(nil, "nope") end },
    { name = "call with a bad callback", msg = "callback", fn = function() async.call(5, "id") end },
    { name = "call with an argument that cannot be sent", msg = "argument 1", fn = function() async.call(nil, "id", print) end },
    { name = "load while loaded with other options", msg = "async.load", fn = function() async.load { workers = 1, pin = true } end },
    { name = "ensure with a bad count", msg = "expected a number", fn = function() async.ensure.atLeast("x") end },
    { name = "stopWorkers with a bad count", msg = "expected a number", fn = function() async.stopWorkers(-1) end },
    { name = "share of a function", msg = "async.share", fn = function() async.share("k", print) end },
    { name = "setWorkerInit with a non-function", msg = "async.setWorkerInit", fn = function() async.setWorkerInit(5) end },
    { name = "update with a bad budget", msg = "budget", fn = function() async.update { budget = -1 } end },
    { name = "shutdown with a bad timeout", msg = "timeout", fn = function() async.shutdown { timeout = "x" } end },
    { name = "await outside go", msg = "inside async.go", fn = function() async.await("id", 1) end },
  }
  async.shutdown()
end)

test("a lent buffer's error names the caller's line", function()
  local async = require "async"
  if async.backend ~= "native" then return end -- the thread backend has no buffers (test_thread_backend.lua)
  async.load(1)
  async.define("hold", function(b, s) local t = os.clock() + s; while os.clock() < t do end end)
  local b = async.newBuffer(16)
  async.call(nil, "hold", b, 0.2)
  runAll {
    { name = "ptr of a lent buffer", msg = "in use by a job", fn = function() b:ptr("uint8_t") end },
    { name = "address of a lent buffer", msg = "in use by a job", fn = function() b:address() end },
    { name = "a buffer over the size limit", msg = "got 1099511627776", fn = function() async.newBuffer(2 ^ 40) end },
  }
  async.shutdown()
end)
