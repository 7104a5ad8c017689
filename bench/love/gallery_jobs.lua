-- SPDX-License-Identifier: MIT (see LICENSE)
-- gallery_jobs.lua: the workload gallery's job functions, written the way game
-- code is written (plain Lua tables, no FFI in the jobs themselves), so that
-- the measured time is what a game's jobs would pay. Pure Lua, no LÖVE: the
-- same functions run on the main thread, in our workers and in love.threads,
-- and under plain LuaJIT for profiling (bench/tax/).
local J = {}

-- A 4-connected A* over a W x H grid given as a string, one byte per cell
-- ("1" wall, anything else open). Open list: a binary heap in two Lua
-- tables; g, parent and closed: Lua tables keyed by cell index. Returns the
-- number of steps on the path (0 when there is none) and the nodes expanded.
function J.astar(grid, W, H, sx, sy, gx, gy)
  local byte, abs = string.byte, math.abs
  local start, goal = sy * W + sx, gy * W + gx
  local heapCell, heapF, n = {}, {}, 0
  local g, parent, closed = {}, {}, {}
  local function push(cell, f)
    n = n + 1
    local i = n
    while i > 1 do
      local p = (i - i % 2) / 2
      if heapF[p] <= f then break end
      heapCell[i], heapF[i] = heapCell[p], heapF[p]
      i = p
    end
    heapCell[i], heapF[i] = cell, f
  end
  local function pop()
    local top = heapCell[1]
    local lastC, lastF = heapCell[n], heapF[n]
    heapCell[n], heapF[n] = nil, nil
    n = n - 1
    if n > 0 then
      local i = 1
      while true do
        local c = i * 2
        if c > n then break end
        if c < n and heapF[c + 1] < heapF[c] then c = c + 1 end
        if heapF[c] >= lastF then break end
        heapCell[i], heapF[i] = heapCell[c], heapF[c]
        i = c
      end
      heapCell[i], heapF[i] = lastC, lastF
    end
    return top
  end
  local function h(cell)
    local x, y = cell % W, (cell - cell % W) / W
    return abs(x - gx) + abs(y - gy)
  end
  g[start] = 0
  push(start, h(start))
  local expanded = 0
  while n > 0 do
    local cur = pop()
    if cur == goal then
      local steps, c = 0, goal
      while c ~= start do c = parent[c]; steps = steps + 1 end
      return steps, expanded
    end
    if not closed[cur] then
      closed[cur] = true
      expanded = expanded + 1
      local x, y = cur % W, (cur - cur % W) / W
      local gc = g[cur] + 1
      for d = 1, 4 do
        local nx, ny = x, y
        if d == 1 then nx = x + 1 elseif d == 2 then nx = x - 1 elseif d == 3 then ny = y + 1 else ny = y - 1 end
        if nx >= 0 and nx < W and ny >= 0 and ny < H then
          local nc = ny * W + nx
          if byte(grid, nc + 1) ~= 49 and not closed[nc] then
            local old = g[nc]
            if old == nil or gc < old then
              g[nc] = gc
              parent[nc] = cur
              push(nc, gc + h(nc))
            end
          end
        end
      end
    end
  end
  return 0, expanded
end

-- Terrain chunk generation: value noise with a few octaves into a 2-D Lua
-- table of tiles ({height, kind} per tile), as a game builds a chunk before
-- turning it into sprites. Returns the chunk table and a checksum.
function J.terrain(seed, cx, cy, size)
  local floor = math.floor
  local function hash(x, y)
    local h = (x * 374761393 + y * 668265263 + seed * 144665) % 2147483647
    h = (h * h) % 2147483647
    return (h % 100000) / 100000
  end
  local function smooth(t) return t * t * (3 - 2 * t) end
  local function noise(x, y)
    local x0, y0 = floor(x), floor(y)
    local fx, fy = smooth(x - x0), smooth(y - y0)
    local a, b = hash(x0, y0), hash(x0 + 1, y0)
    local c, d = hash(x0, y0 + 1), hash(x0 + 1, y0 + 1)
    local top = a + (b - a) * fx
    local bot = c + (d - c) * fx
    return top + (bot - top) * fy
  end
  local kinds = { "water", "sand", "grass", "forest", "rock", "snow" }
  local chunk = { x = cx, y = cy, size = size, rows = {} }
  local sum = 0
  for y = 1, size do
    local row = {}
    for x = 1, size do
      local wx, wy = (cx * size + x) / 24, (cy * size + y) / 24
      local v, amp, freq, norm = 0, 1, 1, 0
      for _ = 1, 5 do
        v = v + noise(wx * freq, wy * freq) * amp
        norm = norm + amp
        amp, freq = amp * 0.5, freq * 2
      end
      v = v / norm
      local k = floor(v * 5.999) + 1
      row[x] = { height = v, kind = kinds[k], walkable = k > 1 and k < 5 }
      sum = sum + k
    end
    chunk.rows[y] = row
  end
  chunk.checksum = sum
  return chunk
end

-- Flood fill / BFS over a grid string from one cell: distances in a Lua
-- table keyed by cell index, a queue as a Lua array. Returns the number of
-- cells reached and the largest distance (a region/reachability query, as
-- for fog of war or territory).
function J.flood(grid, W, H, sx, sy, maxDist)
  local byte = string.byte
  local start = sy * W + sx
  local dist = { [start] = 0 }
  local queue, head, tail = { start }, 1, 1
  local far = 0
  while head <= tail do
    local cur = queue[head]
    head = head + 1
    local d = dist[cur]
    if d < maxDist then
      local x, y = cur % W, (cur - cur % W) / W
      local nbrs = { x < W - 1 and cur + 1 or nil, x > 0 and cur - 1 or nil,
                     y < H - 1 and cur + W or nil, y > 0 and cur - W or nil }
      for i = 1, 4 do
        local nc = nbrs[i]
        if nc and dist[nc] == nil and byte(grid, nc + 1) ~= 49 then
          dist[nc] = d + 1
          if d + 1 > far then far = d + 1 end
          tail = tail + 1
          queue[tail] = nc
        end
      end
    end
  end
  return tail, far
end

-- Building results: a save-game/report style job that formats a list of
-- entity records into strings and returns both a table of records and the
-- concatenated text, as a game serialises a level or builds a UI list.
function J.report(seed, count)
  local fmt, concat = string.format, table.concat
  local names = { "orc", "elf", "dwarf", "troll", "goblin", "human", "wolf", "bat" }
  local items = { "sword", "bow", "axe", "staff", "shield", "potion" }
  local lines, records = {}, {}
  local s = seed
  for i = 1, count do
    s = (s * 1103515245 + 12345) % 2147483648
    local rec = {
      id = i,
      name = names[s % #names + 1] .. "-" .. i,
      hp = s % 100,
      pos = { x = s % 512, y = (s - s % 512) / 512 % 512 },
      inventory = { items[s % #items + 1], items[(s + 3) % #items + 1] },
    }
    records[i] = rec
    lines[i] = fmt("%6d %-14s hp=%3d at (%3d,%3d) carrying %s and %s", rec.id, rec.name, rec.hp,
                   rec.pos.x, rec.pos.y, rec.inventory[1], rec.inventory[2])
  end
  local text = concat(lines, "\n")
  -- Hand back a summary table (not all records: a game returns what it needs).
  local summary = {}
  for i = 1, count, 50 do summary[#summary + 1] = records[i] end
  return #text, summary
end

-- A grid of walls for astar/flood: W x H bytes, '1' for a wall with
-- probability wallShare, from a small LCG (no LÖVE needed).
function J.makeGrid(W, H, wallShare, seed)
  local s, rows = seed, {}
  for y = 1, H do
    local row = {}
    for x = 1, W do
      s = (s * 1103515245 + 12345) % 2147483648
      row[x] = (s / 2147483648) < wallShare and "1" or "0"
    end
    rows[y] = table.concat(row)
  end
  return table.concat(rows)
end

-- n random open cells of grid (pairs for A*: start and goal), from an LCG.
function J.openCells(grid, W, H, n, seed)
  local s, out = seed, {}
  while #out < n do
    s = (s * 1103515245 + 12345) % 2147483648
    local c = s % (W * H)
    if grid:byte(c + 1) ~= 49 then out[#out + 1] = c end
  end
  return out
end

return J
