-- SPDX-License-Identifier: MIT (see LICENSE)
-- main.lua: per-call cost of the thread backend beside the Async-1.1-design
-- baseline (../baseline.lua), alternated in one LÖVE process so both see the
-- same machine load: 5,000 small calls (wall, main-thread CPU in all and for
-- issuing the calls; update() polls in a loop, so CPU is near wall) and the
-- idle latency of one call (median of 200).
--   ASYNC_BACKEND=thread love bench/love/callcost <folder with async.lua> [rounds]
io.stdout:setvbuf("line")
function love.errorhandler(msg)
  io.stderr:write("Error: " .. debug.traceback(tostring(msg), 2) .. "\n")
  os.exit(1)
end

local ffi = require "ffi"
ffi.cdef [[
  struct callcost_ts { long tv_sec; long tv_nsec; };
  int clock_gettime(int clk, struct callcost_ts *ts);
]]
local ts = ffi.new("struct callcost_ts")
local function cpu() -- the main thread's own CPU time
  ffi.C.clock_gettime(3, ts) -- CLOCK_THREAD_CPUTIME_ID
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
local now = love.timer.getTime

local CALLS, LAT = 5000, 200

local function burst(sys)
  local left = CALLS
  local function cb() left = left - 1 end
  local w0, c0 = now(), cpu()
  for i = 1, CALLS do sys.call(cb, "small", i) end
  local issued = cpu()
  while left > 0 do sys.update() end
  return (now() - w0) * 1e3, (cpu() - c0) * 1e3, (issued - c0) * 1e3
end

local function latency(sys)
  local t, done = {}, false
  local function cb() done = true end
  for k = 1, LAT do
    done = false
    love.timer.sleep(0.001) -- the workers go back to waiting
    local t0 = now()
    sys.call(cb, "small", k)
    while not done do sys.update() end
    t[k] = (now() - t0) * 1e6
  end
  table.sort(t)
  return t[LAT / 2]
end

function love.load(args)
  local libdir = assert(args[1], "usage: love bench/love/callcost <folder with async.lua> [rounds]")
  local rounds = tonumber(args[2]) or 5
  local here = love.filesystem.getSource()
  package.path = libdir .. "/?.lua;" .. here .. "/../?.lua;" .. package.path
  package.cpath = libdir .. "/?.so;" .. package.cpath
  local async = require "async"
  local baseline = require "baseline"
  async.load(2)
  baseline.load(2)
  local small = function(x) return x + 1 end
  async.define("small", small)
  baseline.define("small", small)
  local systems = {
    { name = "baseline", call = baseline.call, update = baseline.update },
    { name = "ours-" .. tostring(async.backend), call = async.call, update = async.update },
  }
  for _, s in ipairs(systems) do burst(s); latency(s) end -- warm up
  for r = 1, rounds do
    for _, s in ipairs(systems) do
      local wall, c, issue = burst(s)
      local lat = latency(s)
      print(("round %d\t%-12s\t5000 calls: wall %7.1f ms  cpu %6.1f ms (issuing %5.1f)\tidle latency median %6.0f us"):format(
        r, s.name, wall, c, issue, lat))
    end
  end
  async.shutdown()
  baseline.shutdown()
  love.event.quit(0)
end
