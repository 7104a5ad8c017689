-- SPDX-License-Identifier: MIT (see LICENSE)
-- hostile_jobs.lua: game jobs the library was not tuned for (the worker
-- tax and speed-ups checked on other game code):
-- a navmesh Dijkstra over a graph of node tables, an influence-map step over
-- a 2-D table grid that goes back to the game, a dungeon generator returning
-- rooms and corridors, and dialogue formatting. Plain Lua, no LÖVE, no FFI.
local J = {}

-- A small deterministic generator, the same on every thread.
local function rng(seed)
  local s = seed % 2147483647
  if s <= 0 then s = s + 2147483646 end
  return function(a, b)
    s = s * 16807 % 2147483647
    return a + s % (b - a + 1)
  end
end
J.rng = rng

-- Dijkstra over a navmesh graph: graph[i] = { x =, y =, edges = { {to =, cost =}, ... } }.
-- The open list is a binary heap of { node =, d = } entry tables, as one is
-- usually written; the path comes back as a list of { x =, y = } points.
function J.dijkstra(graph, from, to)
  local dist, prev, heap, n = { [from] = 0 }, {}, { { node = from, d = 0 } }, 1
  local done, expanded = {}, 0
  while n > 0 do
    local top = heap[1]
    heap[1] = heap[n]
    heap[n] = nil
    n = n - 1
    local i = 1
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= n and heap[l].d < heap[m].d then m = l end
      if r <= n and heap[r].d < heap[m].d then m = r end
      if m == i then break end
      heap[i], heap[m] = heap[m], heap[i]
      i = m
    end
    local u = top.node
    if not done[u] then
      done[u] = true
      expanded = expanded + 1
      if u == to then break end
      for _, e in ipairs(graph[u].edges) do
        local nd = top.d + e.cost
        local old = dist[e.to]
        if old == nil or nd < old then
          dist[e.to], prev[e.to] = nd, u
          n = n + 1
          heap[n] = { node = e.to, d = nd }
          local c = n
          while c > 1 do
            local p = (c - c % 2) / 2
            if heap[p].d <= heap[c].d then break end
            heap[p], heap[c] = heap[c], heap[p]
            c = p
          end
        end
      end
    end
  end
  local path, u = {}, to
  while u do
    table.insert(path, 1, { x = graph[u].x, y = graph[u].y })
    u = prev[u]
  end
  return path, expanded, dist[to] or -1
end

-- One influence-map update over grid[y][x] (numbers): every cell takes the
-- strongest neighbour's value decayed, mixed with its own, `steps` times,
-- with sources stamped first. Returns the new 2-D table to the game.
function J.influence(grid, sources, steps, decay, momentum)
  local H, W = #grid, #grid[1]
  local cur = {}
  for y = 1, H do
    local row, src = {}, grid[y]
    for x = 1, W do row[x] = src[x] end
    cur[y] = row
  end
  for _, s in ipairs(sources) do cur[s.y][s.x] = s.strength end
  local exp = math.exp
  for _ = 1, steps do
    local nxt = {}
    for y = 1, H do
      local row, up, mid, down = {}, cur[y - 1], cur[y], cur[y + 1]
      for x = 1, W do
        local best = 0
        local v
        if up then v = up[x] * exp(-decay); if v > best then best = v end end
        if down then v = down[x] * exp(-decay); if v > best then best = v end end
        if x > 1 then v = mid[x - 1] * exp(-decay); if v > best then best = v end end
        if x < W then v = mid[x + 1] * exp(-decay); if v > best then best = v end end
        row[x] = mid[x] + (best - mid[x]) * momentum
      end
      nxt[y] = row
    end
    cur = nxt
  end
  return cur
end

-- A rooms-and-corridors dungeon: random rooms that do not overlap, joined in
-- order by L-shaped corridors, carved into a tiles[y][x] table of strings.
-- Returns rooms, corridors and the tile rows as strings.
function J.dungeon(seed, W, H, tries)
  local r = rng(seed)
  local tiles = {}
  for y = 1, H do
    local row = {}
    for x = 1, W do row[x] = "#" end
    tiles[y] = row
  end
  local rooms, corridors = {}, {}
  for _ = 1, tries do
    local w, h = r(4, 12), r(4, 9)
    local room = { x = r(2, W - w - 1), y = r(2, H - h - 1), w = w, h = h }
    local ok = true
    for _, o in ipairs(rooms) do
      if room.x <= o.x + o.w and o.x <= room.x + room.w and room.y <= o.y + o.h and o.y <= room.y + room.h then
        ok = false
        break
      end
    end
    if ok then
      for y = room.y, room.y + h - 1 do
        for x = room.x, room.x + w - 1 do tiles[y][x] = "." end
      end
      room.center = { x = math.floor(room.x + w / 2), y = math.floor(room.y + h / 2) }
      local prev = rooms[#rooms]
      rooms[#rooms + 1] = room
      if prev then
        local a, b, cells = prev.center, room.center, {}
        local x, y = a.x, a.y
        while x ~= b.x do x = x + (b.x > x and 1 or -1); tiles[y][x] = "."; cells[#cells + 1] = { x = x, y = y } end
        while y ~= b.y do y = y + (b.y > y and 1 or -1); tiles[y][x] = "."; cells[#cells + 1] = { x = x, y = y } end
        corridors[#corridors + 1] = { from = #rooms - 1, to = #rooms, cells = cells }
      end
    end
  end
  local lines = {}
  for y = 1, H do lines[y] = table.concat(tiles[y]) end
  return rooms, corridors, lines
end

-- Dialogue: fills `count` lines from templates with {name}-style fields via
-- gsub, wraps them at 40 columns and builds a choice menu; returns the lines.
local templates = {
  "{speaker}: Have you seen {target} near {place}? They owe me {gold} gold.",
  "{speaker}: The {item} you brought is worth {gold} coins, {target}.",
  "{speaker}: I heard {target} went to {place} with a {item}. Day {day}.",
  "{speaker}: Beware of {place} after dark, {target}. Take the {item}.",
}
local names = { "Aria", "Borin", "Cael", "Dara", "Eskil", "Fenna", "Gorm", "Hilde" }
local places = { "the old mill", "Ravenford", "the sunken crypt", "the market", "Greywater" }
local items = { "rusty key", "silver amulet", "healing draught", "map fragment" }

function J.dialogue(seed, count)
  local r = rng(seed)
  local out = {}
  for i = 1, count do
    local fields = {
      speaker = names[r(1, #names)], target = names[r(1, #names)], place = places[r(1, #places)],
      item = items[r(1, #items)], gold = tostring(r(1, 500)), day = string.format("%03d", i),
    }
    local text = templates[r(1, #templates)]:gsub("{(%w+)}", fields)
    local wrapped, line = {}, ""
    for word in text:gmatch("%S+") do
      if #line + #word + 1 > 40 then
        wrapped[#wrapped + 1] = line
        line = word
      else
        line = line == "" and word or line .. " " .. word
      end
    end
    wrapped[#wrapped + 1] = line
    local choices = {}
    for c = 1, 3 do
      choices[c] = string.format("%d) %s about %s", c, ({ "Ask", "Lie", "Leave" })[c], fields.place:upper())
    end
    out[i] = { text = table.concat(wrapped, "\n"), choices = choices, speaker = fields.speaker }
  end
  return out
end

return J
