-- SPDX-License-Identifier: MIT (see LICENSE)
-- timeline.lua: the overlay's timeline of the last second, from
-- async.timeline(): a row per worker (and one for the game thread), a bar
-- per job coloured by its definition, and a legend. The layout is apart from
-- the drawing, so that headless runs and tests check what would be drawn.
local Timeline = {}
Timeline.__index = Timeline

local PALETTE = {
  { 0.95, 0.55, 0.2 }, { 0.3, 0.7, 1 }, { 0.9, 0.3, 0.6 }, { 0.5, 0.9, 0.4 },
  { 0.9, 0.9, 0.3 }, { 0.6, 0.5, 1 }, { 0.3, 0.9, 0.85 }, { 1, 0.45, 0.45 },
}

-- window: the seconds shown, ending at the timeline's `now`.
function Timeline.new(window)
  return setmetatable({ window = window or 1, colors = {}, ncolors = 0 }, Timeline)
end

-- A definition keeps its colour from frame to frame: the first name seen
-- gets the first colour.
function Timeline:color(name)
  local c = self.colors[name]
  if not c then
    self.ncolors = self.ncolors + 1
    c = PALETTE[(self.ncolors - 1) % #PALETTE + 1]
    self.colors[name] = c
  end
  return c
end

-- What tl (async.timeline's table) looks like in a w x h box: rows (label,
-- y, h), bars (row, x, w, name, color) and the legend, the definitions by
-- their time in the window, most first (name, color, count, seconds).
-- `workers`: the rows to show at least (workers that ran nothing show
-- empty).
function Timeline:layout(tl, w, h, workers)
  local tracks = {}
  local nw = math.max(#(tl.workers or {}), workers or 0)
  for i = 1, nw do tracks[i] = { label = "w" .. (i - 1), events = tl.workers and tl.workers[i] or {} } end
  if tl.game and #tl.game > 0 then tracks[#tracks + 1] = { label = "game", events = tl.game } end
  local rows, bars, byName = {}, {}, {}
  local rh = #tracks > 0 and h / #tracks or h
  local t1 = tl.now
  local t0 = t1 - self.window
  local scale = w / self.window
  for r, track in ipairs(tracks) do
    rows[r] = { label = track.label, y = (r - 1) * rh, h = rh, count = 0 }
    for _, e in ipairs(track.events) do
      local a, b = math.max(e.t0, t0), math.min(e.t1, t1)
      if b >= a then
        local x = (a - t0) * scale
        -- A job shorter than a pixel still shows.
        bars[#bars + 1] = { row = r, x = x, w = math.max(1, (b - a) * scale), name = e.name, color = self:color(e.name) }
        rows[r].count = rows[r].count + 1
        local l = byName[e.name]
        if not l then
          l = { name = e.name, color = self:color(e.name), count = 0, seconds = 0 }
          byName[e.name] = l
        end
        l.count, l.seconds = l.count + 1, l.seconds + (b - a)
      end
    end
  end
  local legend = {}
  for _, l in pairs(byName) do legend[#legend + 1] = l end
  table.sort(legend, function(p, q)
    if p.seconds ~= q.seconds then return p.seconds > q.seconds end
    return p.name < q.name
  end)
  return { rows = rows, bars = bars, legend = legend, w = w, h = h }
end

-- One line for headless runs: what the overlay would draw.
function Timeline.summary(lay)
  local perRow, names = {}, {}
  for _, r in ipairs(lay.rows) do perRow[#perRow + 1] = ("%s %d"):format(r.label, r.count) end
  for _, l in ipairs(lay.legend) do names[#names + 1] = ("%s %d (%.0f ms)"):format(l.name, l.count, l.seconds * 1e3) end
  return ("timeline: %d bars; events per row in the last second: %s; legend: %s"):format(#lay.bars,
    table.concat(perRow, ", "), #names > 0 and table.concat(names, ", ") or "none")
end

-- Draws the layout at (x, y), in the size it was laid out for (LÖVE only).
function Timeline.draw(lay, x, y)
  local g, w, h = love.graphics, lay.w, lay.h
  g.setColor(1, 1, 1, 0.15)
  g.rectangle("fill", x, y, w, h)
  for _, b in ipairs(lay.bars) do
    local r = lay.rows[b.row]
    g.setColor(b.color[1], b.color[2], b.color[3], 0.9)
    g.rectangle("fill", x + b.x, y + r.y + 1, b.w, math.max(1, r.h - 2))
  end
  g.setColor(1, 1, 1)
  for _, r in ipairs(lay.rows) do g.print(("%s %d"):format(r.label, r.count), x + w + 8, y + r.y + r.h / 2 - 7) end
  local ly = y + h + 6
  for i, l in ipairs(lay.legend) do
    if i > 6 then break end
    local lx = x + ((i - 1) % 2) * (w / 2 + 30) -- the second column reaches past the box, where the row labels are
    local row = math.floor((i - 1) / 2)
    g.setColor(l.color[1], l.color[2], l.color[3])
    g.rectangle("fill", lx, ly + row * 16 + 3, 10, 10)
    g.setColor(1, 1, 1)
    g.print(("%s: %d, %.0f ms"):format(l.name, l.count, l.seconds * 1e3), lx + 14, ly + row * 16)
  end
end

return Timeline
