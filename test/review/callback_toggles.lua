-- Callbacks that stop/start the trace, read stats() and timeline(), and
-- shut the pool down, while a trace records (hostile but game-like: a
-- "capture the next 100 jobs" debug key handled inside a callback).
local dir = assert(arg[1])
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local async = require "async"
async.load(2)
async.define("w", function(x) return x end)
local n, errs = 0, 0
assert(async.startTrace())
for frame = 1, 200 do
  for i = 1, 10 do
    async.call(function(x)
      n = n + 1
      if n % 7 == 0 then
        if async.isTracing() then assert(async.stopTrace()) else assert(async.startTrace({ events = 64 })) end
      end
      if n % 11 == 0 then local tl = async.timeline(0.5); assert(tl.workers) end
      if n % 13 == 0 then assert(async.stats().defs.w.calls >= 1) end
    end, "w", i)
  end
  local ok, e = pcall(async.update)
  if not ok then errs = errs + 1; if errs < 3 then print("update raised: " .. tostring(e)) end end
end
repeat async.update() until async.stats().inflight == 0
print("delivered", n, "errors", errs, "stats calls", async.stats().defs.w.calls, "tracing", async.isTracing())
-- shutdown from inside a callback while tracing
if not async.isTracing() then async.startTrace() end
async.call(function() print("shutdown in a callback:", pcall(async.shutdown)) end, "w", 1)
repeat local ok = pcall(async.update) until not async.isLoaded or not pcall(async.stats) or async.stats().inflight == 0
print("after: tracing", async.isTracing(), "stats", pcall(function() return async.stats().inflight end))
pcall(async.shutdown)
print("done")
