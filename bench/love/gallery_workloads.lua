-- SPDX-License-Identifier: MIT (see LICENSE)
-- gallery_workloads.lua: the workload gallery's workloads, apart
-- from gallery.lua so that plain LuaJIT scripts (bench/tax/corun.lua) build
-- the very same requests. Plain Lua: no LÖVE needed.
local J = require "gallery_jobs"

-- The workloads: name, the requests (argument lists), and a checksum of a
-- job's results that must match the serial run's.
return function(scale)
  local W, H = 256, 256
  local grid = J.makeGrid(W, H, 0.2, 7) -- 64 KiB: sent with every request
  assert(#grid == 65536)
  local list = {}
  local function add(name, reqs, sum) list[#list + 1] = { name = name, reqs = reqs, sum = sum } end

  -- A*: 2,000 path requests between open cells anywhere on the map, so most
  -- searches expand thousands of nodes.
  local n = math.max(20, math.floor(2000 * scale))
  local cells, reqs = J.openCells(grid, W, H, 2 * n, 99), {}
  for i = 1, n do
    local a, b = cells[2 * i - 1], cells[2 * i]
    reqs[i] = { grid, W, H, a % W, (a - a % W) / W, b % W, (b - b % W) / W }
  end
  add("astar", reqs, function(steps, expanded) return steps * 1e6 + expanded end)

  -- Terrain: 32 x 32 tile chunks of 5-octave value noise; the chunk (1,024
  -- tile tables) comes back to the game.
  n = math.max(16, math.floor(1500 * scale))
  reqs = {}
  for i = 1, n do reqs[i] = { 1234, i % 20, (i - i % 20) / 20, 32 } end
  add("terrain", reqs, function(chunk) return chunk.checksum + #chunk.rows end)

  -- Flood fill: BFS reachability from an open cell up to 80 steps away.
  n = math.max(20, math.floor(1000 * scale))
  cells, reqs = J.openCells(grid, W, H, n, 4242), {}
  for i = 1, n do reqs[i] = { grid, W, H, cells[i] % W, (cells[i] - cells[i] % W) / W, 80 } end
  add("flood", reqs, function(reached, far) return reached * 1000 + far end)

  -- Results as strings and tables: format 400 entity records, return the
  -- text's length and a summary table.
  n = math.max(20, math.floor(3000 * scale))
  reqs = {}
  for i = 1, n do reqs[i] = { i, 400 } end
  add("report", reqs, function(len, summary) return len + #summary + summary[1].hp end)
  return list
end
