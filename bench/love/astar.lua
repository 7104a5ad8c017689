-- SPDX-License-Identifier: MIT (see LICENSE)
-- astar.lua: the path-finding workload: the demo's A* (demo/pathing.lua) on
-- a random map. Required by the main thread and inside the workers; a grid
-- is built once per map per Lua state (keyed by the map string, which Lua
-- interns), so sending the map per call costs the transfer, not a rebuild.
local Pathing = require "pathing"

local A = {}
local grids = setmetatable({}, { __mode = "k" })

function A.makeMap(size, wallShare, seed)
  local rng = love.math.newRandomGenerator(seed)
  local rows, row = {}, {}
  for y = 1, size do
    for x = 1, size do row[x] = rng:random() < wallShare and 1 or 0 end
    rows[y] = string.char(unpack(row, 1, size))
  end
  return table.concat(rows)
end

--- Number of tiles on the shortest path, or 0 when there is none. (A count,
--- not a float cost, so totals summed in any order compare exactly.)
function A.find(map, size, sx, sy, tx, ty)
  local g = grids[map]
  if not g then
    g = Pathing.grid({ w = size, h = size, walls = map, version = 0 })
    grids[map] = g
  end
  local path = Pathing.find(g, sx, sy, tx, ty)
  return path and #path / 2 or 0
end

return A
