-- A game that defines a one-off job under a fresh name and undefines it
-- once done (the name carries an id). Does stats().defs grow for good,
-- and define() get slower with every name ever used?
-- Usage: luajit define_churn.lua <build>/lua
local dir = assert(arg[1])
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local async = require "async"
async.load(2)
local function one(x) return x end
local got = 0
local function cb() got = got + 1 end
for batch = 1, 4 do
  local tb = os.clock()
  for i = 1, 5000 do
    local name = ("task_%d_%d"):format(batch, i)
    async.define(name, one)
    async.call(cb, name, i)
    async.undefine(name)
  end
  local td = os.clock() - tb
  repeat async.update() until got == batch * 5000
  local n = 0
  for _ in pairs(async.stats().defs) do n = n + 1 end
  print(("after %d one-off names: define+call+undefine %.1f us each; stats().defs has %d entries; RSS %s KiB"):format(
    batch * 5000, td / 5000 * 1e6, n, io.open("/proc/self/status"):read("*a"):match("VmRSS:%s*(%d+)")))
end
async.shutdown()
