-- async.stats() without a table (the idiom of the docs' examples:
-- repeat async.update() until async.stats().inflight == 0) with N defs.
local dir = assert(arg[1])
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local async = require "async"
async.load(2)
local ndefs = tonumber(arg[2]) or 500
for i = 1, ndefs do async.define("def" .. i, function(x) return x end) end
collectgarbage("stop")
local k0, t0 = collectgarbage("count"), os.clock()
for f = 1, 200 do local _ = async.stats().inflight end
print(("%d defs: stats().inflight %.1f us/call, %.1f KiB garbage/call"):format(ndefs, (os.clock() - t0) / 200 * 1e6, (collectgarbage("count") - k0) / 200))
async.shutdown()
