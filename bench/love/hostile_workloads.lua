-- SPDX-License-Identifier: MIT (see LICENSE)
-- hostile_workloads.lua: the requests for hostile_jobs.lua, in the shape of
-- gallery_workloads.lua (run with `--gallery --workloads hostile_workloads`).
local J = require "hostile_jobs"

return function(scale)
  local list = {}
  local function add(name, reqs, sum) list[#list + 1] = { name = name, reqs = reqs, sum = sum } end
  local r = J.rng(31337)

  -- A navmesh of 3,000 jittered nodes on a 60 x 50 lattice, each linked to
  -- its 8 neighbours with Euclidean costs: sent with every request.
  local GW, GH, graph = 60, 50, {}
  for y = 0, GH - 1 do
    for x = 0, GW - 1 do graph[y * GW + x + 1] = { x = x * 10 + r(0, 6), y = y * 10 + r(0, 6), edges = {} } end
  end
  for y = 0, GH - 1 do
    for x = 0, GW - 1 do
      local a = graph[y * GW + x + 1]
      for dy = -1, 1 do
        for dx = -1, 1 do
          local nx, ny = x + dx, y + dy
          if (dx ~= 0 or dy ~= 0) and nx >= 0 and ny >= 0 and nx < GW and ny < GH and r(1, 10) > 1 then
            local id = ny * GW + nx + 1
            local b = graph[id]
            a.edges[#a.edges + 1] = { to = id, cost = math.sqrt((a.x - b.x) ^ 2 + (a.y - b.y) ^ 2) }
          end
        end
      end
    end
  end
  local n, reqs = math.max(20, math.floor(150 * scale)), {}
  for i = 1, n do reqs[i] = { graph, r(1, #graph), r(1, #graph) } end
  add("dijkstra", reqs, function(path, expanded, d) return #path * 1e6 + expanded + math.floor(d) end)

  -- Influence: a 96 x 96 map of numbers, 8 sources, 12 steps; the map goes
  -- back to the game.
  local grid = {}
  for y = 1, 96 do
    local row = {}
    for x = 1, 96 do row[x] = 0 end
    grid[y] = row
  end
  n, reqs = math.max(20, math.floor(150 * scale)), {}
  for i = 1, n do
    local src = {}
    for s = 1, 8 do src[s] = { x = r(1, 96), y = r(1, 96), strength = r(10, 100) * (i % 2 == 0 and 1 or -1) } end
    reqs[i] = { grid, src, 12, 0.3, 0.5 }
  end
  add("influence", reqs, function(map)
    local s = 0
    for y = 1, #map, 7 do s = s + math.floor(map[y][y] * 1000) end
    return s
  end)

  -- Dungeons: 160 x 100 tiles, 300 room attempts.
  n, reqs = math.max(20, math.floor(500 * scale)), {}
  for i = 1, n do reqs[i] = { 1000 + i, 160, 100, 300 } end
  add("dungeon", reqs, function(rooms, corridors, lines) return #rooms * 1e4 + #corridors * 10 + #lines[50] end)

  -- Dialogue: 600 lines per request.
  n, reqs = math.max(20, math.floor(300 * scale)), {}
  for i = 1, n do reqs[i] = { i, 600 } end
  add("dialogue", reqs, function(out) return #out + #out[#out].text + #out[1].choices[3] end)
  return list
end
