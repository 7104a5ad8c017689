-- SPDX-License-Identifier: MIT (see LICENSE)
-- pathing.lua: A* on the tile grid, the work a path job does. Required by the
-- game and inside jobs; the grid is built once per world version per Lua
-- state (a worker keeps it in async.state).
local ffi = require "ffi"

local Pathing = {}

--- Builds an FFI grid from the world's wall string (1 byte per tile).
--- cellsOnly: no search scratch (enough for open-tile checks).
function Pathing.grid(world, cellsOnly)
  local n = world.w * world.h
  local cells = ffi.new("uint8_t[?]", n)
  ffi.copy(cells, world.walls, n)
  if cellsOnly then return { w = world.w, h = world.h, cells = cells, version = world.version } end
  return {
    w = world.w, h = world.h, cells = cells, version = world.version,
    -- Scratch reused by every search on this grid (one per Lua state):
    -- a node's g and came are valid only where stamp equals the search id,
    -- so nothing is cleared between searches.
    g = ffi.new("float[?]", n), came = ffi.new("int32_t[?]", n),
    stamp = ffi.new("uint32_t[?]", n), closed = ffi.new("uint32_t[?]", n),
    heapF = ffi.new("float[?]", 8 * n + 1), heapN = ffi.new("int32_t[?]", 8 * n + 1),
    search = 0,
  }
end

local DX = { 1, -1, 0, 0, 1, 1, -1, -1 }
local DY = { 0, 0, 1, -1, 1, -1, 1, -1 }
local SQRT2 = math.sqrt(2)

--- A* from (sx, sy) to (tx, ty), 8-connected, no corner cutting. Returns
--- the path as a flat list {x1, y1, x2, y2, ...} and its cost, or nil when
--- there is none within maxNodes expansions.
function Pathing.find(grid, sx, sy, tx, ty, maxNodes)
  local w, h, cells = grid.w, grid.h, grid.cells
  if cells[sy * w + sx] ~= 0 or cells[ty * w + tx] ~= 0 then return nil end
  local n = w * h
  local g, came, stamp, closed = grid.g, grid.came, grid.stamp, grid.closed
  local heapF, heapN = grid.heapF, grid.heapN -- binary heap of (f, node)
  grid.search = grid.search + 1
  local id = grid.search
  local size = 0
  local function push(f, node)
    size = size + 1
    local i = size
    while i > 1 do
      local p = math.floor(i / 2)
      if heapF[p] <= f then break end
      heapF[i], heapN[i] = heapF[p], heapN[p]
      i = p
    end
    heapF[i], heapN[i] = f, node
  end
  local function pop()
    local top = heapN[1]
    local lf, ln = heapF[size], heapN[size]
    size = size - 1
    local i = 1
    while true do
      local c = i * 2
      if c > size then break end
      if c < size and heapF[c + 1] < heapF[c] then c = c + 1 end
      if heapF[c] >= lf then break end
      heapF[i], heapN[i] = heapF[c], heapN[c]
      i = c
    end
    heapF[i], heapN[i] = lf, ln
    return top
  end
  local function heur(x, y)
    local dx, dy = math.abs(x - tx), math.abs(y - ty)
    return (dx + dy) + (SQRT2 - 2) * math.min(dx, dy)
  end
  local start, goal = sy * w + sx, ty * w + tx
  g[start], came[start], stamp[start] = 0, -1, id
  push(heur(sx, sy), start)
  local expanded = 0
  while size > 0 do
    local cur = pop()
    if cur == goal then break end
    if closed[cur] ~= id then
      closed[cur] = id
      expanded = expanded + 1
      if expanded > (maxNodes or n) then return nil end
      local cx, cy = cur % w, math.floor(cur / w)
      for d = 1, 8 do
        local nx, ny = cx + DX[d], cy + DY[d]
        if nx >= 0 and ny >= 0 and nx < w and ny < h then
          local nb = ny * w + nx
          local diag = d > 4
          if cells[nb] == 0 and closed[nb] ~= id and
             (not diag or (cells[cy * w + nx] == 0 and cells[ny * w + cx] == 0)) then
            local ng = g[cur] + (diag and SQRT2 or 1)
            if stamp[nb] ~= id or ng < g[nb] then
              g[nb], came[nb], stamp[nb] = ng, cur, id
              push(ng + heur(nx, ny), nb)
            end
          end
        end
      end
    end
  end
  if stamp[goal] ~= id then return nil end
  local rev, node = {}, goal
  while node ~= -1 do
    rev[#rev + 1] = node
    node = came[node]
  end
  local path = {}
  for i = #rev, 1, -1 do
    path[#path + 1] = rev[i] % w
    path[#path + 1] = math.floor(rev[i] / w)
  end
  return path, g[goal]
end

return Pathing
