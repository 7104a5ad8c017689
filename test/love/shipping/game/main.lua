-- SPDX-License-Identifier: MIT (see LICENSE)
-- main.lua: the smallest game that ships async: require it, run one job,
-- print which backend it got. With the argument "quit" it quits with calls
-- still in flight and without async.shutdown(), as a player closing the game
-- (the queued ones must not run).
io.stdout:setvbuf("line")
function love.errorhandler(msg)
  io.stderr:write("Error: " .. debug.traceback(tostring(msg), 2) .. "\n")
  os.exit(1)
end

function love.load(args)
  -- ASYNC_REQUIRE_PATH: a game that puts its library folder on LÖVE's
  -- require path and requires "async" by its bare name.
  if os.getenv("ASYNC_REQUIRE_PATH") then
    love.filesystem.setRequirePath(os.getenv("ASYNC_REQUIRE_PATH") .. ";" .. love.filesystem.getRequirePath())
  end
  -- ASYNC_MODULE: the library kept in a folder, as many games do (lib.async).
  local async = require(os.getenv("ASYNC_MODULE") or "async")
  print("backend: " .. async.backend)
  print("reason: " .. tostring(async.backendReason))
  print("path: " .. async.getPath())
  async.load(2)
  async.define("sq", function(x) return x * x end)
  if args[1] == "quit" then
    -- Each job that runs says so: queued calls must be cancelled, not run.
    async.define("slow", function(s)
      io.stdout:write("slow ran\n"); io.stdout:flush()
      local t = os.clock() + s
      while os.clock() < t do end
      return s
    end)
    for _ = 1, 50 do async.call(function() end, "slow", 0.01) end
    -- Quit once the workers have started on them (or after 10 s).
    local deadline = love.timer.getTime() + 10
    while async.stats().running == 0 and love.timer.getTime() < deadline do love.timer.sleep(0.001) end
    print("quitting with calls in flight: " .. async.stats().inflight)
    love.event.quit(0)
    return
  end
  local r
  async.call(function(v) r = v end, "sq", 12)
  local deadline = love.timer.getTime() + 20
  while r == nil and love.timer.getTime() < deadline do async.update(); love.timer.sleep(0.001) end
  print("sq(12) = " .. tostring(r))
  async.shutdown()
  love.event.quit(r == 144 and 0 or 1)
end
