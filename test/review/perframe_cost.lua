-- What a game pays to read the figures every frame: stats() with 500
-- definitions (time, garbage per call when last frame's table is passed
-- back), and timeline(1) every frame while 2 workers are busy with a
-- trace left on. Usage: luajit perframe_cost.lua <build>/lua
local dir = assert(arg[1])
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local async = require "async"
async.load(2)
local ndefs = tonumber(arg[2]) or 500
for i = 1, ndefs do async.define("def" .. i, function(x) return x end) end
-- every definition called, so each has runs in its window
for i = 1, ndefs do async.call(nil, "def" .. i, i) end
repeat async.update() until async.stats().inflight == 0
local function clock() return os.clock() end
local st = async.stats()
collectgarbage("stop")
local frames = 200
local k0, t0 = collectgarbage("count"), os.clock()
for f = 1, frames do st = async.stats(st) end
local dt, dk = os.clock() - t0, collectgarbage("count") - k0
print(("stats(t) with %d defs, nothing new delivered: %.1f us/frame, %.2f KiB garbage/frame"):format(ndefs, dt / frames * 1e6, dk / frames))
-- now with one call of every definition delivered each frame (window recomputed)
local tt, kk = 0, 0
for f = 1, 50 do
  for i = 1, ndefs do async.call(nil, "def" .. i, i) end
  repeat async.update() until async.stats().inflight == 0
  local k1, t1 = collectgarbage("count"), os.clock()
  st = async.stats(st)
  tt, kk = tt + os.clock() - t1, kk + collectgarbage("count") - k1
end
print(("stats(t) with %d defs, each with a new run: %.1f us/frame, %.2f KiB garbage/frame"):format(ndefs, tt / 50 * 1e6, kk / 50))
collectgarbage("restart")
-- timeline every frame while 2 workers are busy
async.define("busy", function(n) local x = 0 for i = 1, n do x = x + i % 7 end return x end)
assert(async.startTrace())
local frameT, tlT, nev, tlK = 0, 0, 0, 0
local frames2 = 0
local tend = os.time() + 6
while os.time() < tend do
  for i = 1, 40 do async.call(nil, "busy", 3000) end
  async.update()
  frames2 = frames2 + 1
  collectgarbage("stop")
  local k1, t1 = collectgarbage("count"), os.clock()
  local tl = async.timeline(1)
  tlT = tlT + os.clock() - t1
  tlK = tlK + collectgarbage("count") - k1
  collectgarbage("restart")
  local n = 0
  for _, jobs in ipairs(tl.workers) do n = n + #jobs end
  nev = nev + n + #tl.game
end
print(("timeline(1) each frame, 2 busy workers: %d frames, %.0f events/frame, %.1f us/frame, %.0f KiB garbage/frame"):format(
  frames2, nev / frames2, tlT / frames2 * 1e6, tlK / frames2))
async.stopTrace()
async.shutdown()
