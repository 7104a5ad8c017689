-- A trace left on while the game makes a closure per call (the usual way:
-- async.call(function(path) unit.path = path end, "astar", ...)).
-- Memory should stay bounded (the docs: "the rings bound its memory").
-- Usage: luajit leak_callbacks.lua <build>/lua [trace]
local dir = assert(arg[1])
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local async = require "async"
async.load(2)
async.define("astar", function(x, y) return x + y end)
local trace = arg[2] == "trace"
if trace then assert(async.startTrace{events = 1024}) end
local units = {}
for i = 1, 64 do units[i] = { x = i, y = i } end
for frame = 1, 3000 do
  for i = 1, #units do
    local u = units[i]
    async.call(function(p) u.path = p end, "astar", u.x, u.y)
  end
  repeat async.update() until async.stats().inflight == 0
  if frame % 500 == 0 then
    collectgarbage(); collectgarbage()
    print(("frame %d  Lua heap %.1f MiB"):format(frame, collectgarbage("count") / 1024))
  end
end
if trace then async.stopTrace() end
async.shutdown()
