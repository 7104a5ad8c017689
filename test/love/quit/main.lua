-- SPDX-License-Identifier: MIT (see LICENSE)
-- main.lua: a game whose jobs never end, quitting. Arguments:
--   love DIR LUA_DIR JOB HOW
-- JOB: check (the job returns once async.cancelled() is true), spin (it
-- never checks: a loop the JIT compiles), interp (it never checks and runs
-- interpreted Lua, as code the JIT cannot compile does); HOW: shutdown
-- (async.shutdown() in love.quit), timeout (async.shutdown{timeout = 0.5}
-- in love.quit), none (no shutdown: the state just closes), term (no
-- shutdown; the game runs until SIGTERM). Prints what the callbacks heard;
-- run.sh checks the exit status and the time.
io.stdout:setvbuf("line")
function love.errorhandler(msg)
  io.stderr:write("Error: " .. debug.traceback(tostring(msg), 2) .. "\n")
  os.exit(3)
end

local async
local heard = { ok = 0, failed = 0, cancelled = 0, queuedRan = 0, queuedCancelled = 0 }
local lastError

function love.load(args)
  package.path = args[1] .. "/?.lua;" .. package.path
  package.cpath = args[1] .. "/?.so;" .. package.cpath
  async = require "async"
  local job, how = args[2], args[3]
  print("backend: " .. async.backend)
  async.load(2)
  async.define("endless", function(kind)
    if kind == "interp" then jit.off() end -- this worker state's JIT: the hook can then stop it
    local n = 0
    while true do
      n = n + 1
      if kind == "check" and async.cancelled() then return n end
    end
  end)
  local running = {
    success = function() heard.ok = heard.ok + 1 end,
    error = function(e) heard.failed = heard.failed + 1; lastError = e end,
    cancelled = function() heard.cancelled = heard.cancelled + 1 end,
  }
  local queued = {
    success = function() heard.queuedRan = heard.queuedRan + 1 end,
    error = function() heard.queuedRan = heard.queuedRan + 1 end,
    cancelled = function() heard.queuedCancelled = heard.queuedCancelled + 1 end,
  }
  for _ = 1, 2 do async.call(running, "endless", job) end
  local deadline = love.timer.getTime() + 20
  while async.stats().running < 2 and love.timer.getTime() < deadline do love.timer.sleep(0.001) end
  for _ = 1, 20 do async.call(queued, "endless", job) end
  print("running: " .. async.stats().running)
  if how == "shutdown" or how == "timeout" then
    function love.quit()
      local t0 = love.timer.getTime()
      if how == "timeout" then async.shutdown { timeout = 0.5 } else async.shutdown() end
      print(("shutdown returned after %.2f s"):format(love.timer.getTime() - t0))
      print(("running jobs: %d ok, %d failed, %d cancelled"):format(heard.ok, heard.failed, heard.cancelled))
      print(("queued calls: %d ran, %d cancelled"):format(heard.queuedRan, heard.queuedCancelled))
      if lastError then print("error heard: " .. tostring(lastError)) end
      print("loaded after shutdown: " .. tostring(async.isLoaded()))
    end
  end
  if how ~= "term" then
    love.event.quit(0)
  else
    print("waiting for SIGTERM")
  end
end

function love.update()
  if async and async.isLoaded() then async.update() end
end
