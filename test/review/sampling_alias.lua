-- stats().defs against a workload whose per-call cost follows the game's
-- call order: per frame, a fixed list of units asks for a path; the cost
-- depends on the unit (open field vs maze). Each job measures its own run
-- with CLOCK_MONOTONIC and returns it; the callback sums them.
-- Expected: runTotal close to the measured sum (it includes decode/encode,
-- so a little more), runMean close to the measured mean.
-- Usage: luajit sampling_alias.lua <build>/lua [period]
local dir = assert(arg[1])
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local period = tonumber(arg[2]) or 2
local shuffle = arg[3] == "shuffle"
local async = require "async"
async.load(2)
async.define("path", function(cost)
  local clk = package.loaded.review_clock
  if not clk then
    local ffi = require "ffi"
    pcall(ffi.cdef, "struct rts { long s, ns; }; int clock_gettime(int, struct rts *);")
    local ts = ffi.new("struct rts")
    clk = function() ffi.C.clock_gettime(1, ts); return tonumber(ts.s) + tonumber(ts.ns) * 1e-9 end
    package.loaded.review_clock = clk
  end
  local t0 = clk()
  local x = 0
  for i = 1, cost do x = x + i % 7 end
  return clk() - t0, x
end)
local measured, n = 0, 0
local last = {}
local function cb(dt) measured = measured + dt; n = n + 1; last[(n - 1) % 256 + 1] = dt end
-- unit 1 of each `period` is a maze (expensive), the rest open field
for frame = 1, 400 do
  for u = 1, 64 do
    async.call(cb, "path", ((shuffle and math.random(period) or u % period) == (os.getenv("BIGAT") and tonumber(os.getenv("BIGAT")) or 1) or period == 1) and (tonumber(os.getenv("BIG")) or 20000) or (tonumber(os.getenv("SMALL")) or 200))
  end
  repeat async.update() until async.stats().inflight == 0
end
local d = async.stats().defs.path
print(("period %d: calls %d (delivered %d), runs timed %d"):format(period, d.calls, n, d.runs))
print(("  measured in jobs: total %.2f ms, mean %.2f us"):format(measured * 1e3, measured / n * 1e6))
print(("  stats().defs:     runTotal %.2f ms, runMean %.2f us, runP99 %.2f us"):format(
  d.runTotal * 1e3, d.runMean * 1e6, d.runP99 * 1e6))
table.sort(last)
local lm = 0 for i = 1, #last do lm = lm + last[i] end
print(("  measured, last 256: mean %.2f us, p99 %.2f us, max %.2f us"):format(lm / #last * 1e6, last[math.ceil(0.99 * #last)] * 1e6, last[#last] * 1e6))
print(("  ratio runTotal/measured %.2f"):format(d.runTotal / measured))
async.shutdown()
