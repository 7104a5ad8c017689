-- shutdown() and load() while a trace records and calls of every kind are
-- in flight (function callbacks, key tables, map, parallelFor, go/await,
-- callbacks that call again); then the same again on the new pool. Run
-- under ASan: the timed wrappers hold the old context's pointer.
-- Usage: luajit shutdown_tracing.lua <build>/lua
local dir = assert(arg[1])
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local async = require "async"
local call = async.call -- taken early, as games do
local delivered = 0
for round = 1, 6 do
  async.load(2)
  async.define("work", function(n) local x = 0 for i = 1, n do x = x + i % 7 end return x end)
  assert(async.startTrace({ events = 512 }))
  for i = 1, 30 do
    call(function() delivered = delivered + 1; pcall(call, function() end, "work", 10) end, "work", 20000)
    call({ key = i % 3, success = function() delivered = delivered + 1 end,
           cancelled = function() delivered = delivered + 1 end }, "work", 20000)
  end
  async.map({ success = function() delivered = delivered + 1 end, cancelled = function() end }, "work", { 1, 2, 3, 4 })
  async.parallelFor(function() delivered = delivered + 1 end, "work", 1, 100, 10)
  async.go(function() async.await("work", 5000); delivered = delivered + 1 end)
  async.update()
  if round % 2 == 0 then pcall(async.stopTrace) end
  async.shutdown()
  -- deferred callbacks after shutdown, then a fresh pool
  print(("round %d: delivered %d, isTracing %s"):format(round, delivered, tostring(async.isTracing())))
end
async.load(1)
async.define("work", function(n) return n end)
assert(async.startTrace())
call(function() delivered = delivered + 1 end, "work", 1)
repeat async.update() until async.stats().inflight == 0
local p = os.tmpname()
assert(async.stopTrace(p)); os.remove(p)
async.shutdown()
print("done", delivered)
