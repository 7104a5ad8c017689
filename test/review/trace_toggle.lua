-- startTrace/stopTrace every frame (a game capturing "just this frame"),
-- with calls in flight; then a stopTrace to a path that cannot be written,
-- then shutdown+load while tracing. Usage: luajit trace_toggle.lua <build>/lua
local dir = assert(arg[1])
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local async = require "async"
async.load(2)
async.define("work", function(n) local x = 0 for i = 1, n do x = x + i % 7 end return x end)
local got, frames = 0, 300
local tstart, tstop, tw = 0, 0, 0
for f = 1, frames do
  local t0 = os.clock()
  assert(async.startTrace())
  tstart = tstart + os.clock() - t0
  for i = 1, 20 do async.call(function() got = got + 1 end, "work", 500) end
  async.update()
  t0 = os.clock()
  local path = (f % 50 == 0) and os.tmpname() or nil
  assert(async.stopTrace(path))
  tstop = tstop + os.clock() - t0
  if path then
    local fh = io.open(path); local s = fh:read("*a"); fh:close(); os.remove(path)
    assert(s:find('"traceEvents"'), "a file")
  end
end
repeat async.update() until async.stats().inflight == 0
print(("start+stop every frame: startTrace %.1f us, stopTrace %.1f us per frame; delivered %d/%d; RSS KiB %s"):format(
  tstart / frames * 1e6, tstop / frames * 1e6, got, frames * 20,
  io.open("/proc/self/status"):read("*a"):match("VmRSS:%s*(%d+)")))
-- a bad path: nil, message; the trace is stopped; can it be written again?
assert(async.startTrace())
async.call(nil, "work", 10)
repeat async.update() until async.stats().inflight == 0
local okk, err = async.stopTrace("/nonexistent/dir/trace.json")
print("stopTrace(bad path):", okk, err, "isTracing:", async.isTracing())
-- shutdown and load while tracing, calls in flight
assert(async.startTrace())
for i = 1, 50 do async.call(function() end, "work", 5000) end
async.shutdown()
async.load(2)
print("after shutdown+load: isTracing", async.isTracing(), "timeline:", pcall(async.timeline, 1))
print("stopTrace raises:", pcall(async.stopTrace))
async.define("work", function(n) return n end)
assert(async.startTrace())
async.call(nil, "work", 1)
repeat async.update() until async.stats().inflight == 0
local p = os.tmpname()
print("new trace:", async.stopTrace(p)); os.remove(p)
async.shutdown()
print("after shutdown: timeline", pcall(async.timeline, 1))
print("after shutdown: stats().defs", pcall(function() return async.stats().defs end))
