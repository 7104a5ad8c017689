-- SPDX-License-Identifier: MIT (see LICENSE)
-- sim.lua: the demo's game state without graphics: the world in chunks,
-- units that keep asking for paths, and the two ways of doing the work (on
-- the workers through async, or on the main thread). main.lua draws it and
-- drives it; the headless mode drives it without a window.
local World = require "world"
local Pathing = require "pathing"

local Sim = {}
Sim.__index = Sim

Sim.MAX_NODES = 20000 -- A* expansions per request: bounds a hopeless search
local MAX_NODES = Sim.MAX_NODES

-- Job definitions: the same module functions the main-thread mode calls.
-- `async` inside a job is the worker-side API (shared values, state).
function Sim.define(async)
  async.define("genChunk", function(cx, cy, seed)
    return require("world").genChunk(cx, cy, seed)
  end)
  async.define("findPath", function(sx, sy, tx, ty)
    local world = async.shared.world
    local st = async.state
    if not st.grid or st.grid.version ~= world.version then
      st.grid = require("pathing").grid(world) -- once per world version per worker
    end
    return require("pathing").find(st.grid, sx, sy, tx, ty, 20000)
  end)
end

function Sim.new(opts)
  local self = setmetatable({}, Sim)
  self.async = opts.async
  self.seed = opts.seed or 7
  self.mode = opts.mode or "workers"
  self.rng = love.math.newRandomGenerator(opts.seed or 7)
  self.chunks = {}      -- [cy * CHUNKS + cx] = { walls, shade }
  self.requested = {}   -- chunks asked for and not back
  self.nchunks = 0
  self.version = 0
  self.walls = nil      -- the assembled world (string), once a chunk exists
  self.dirty = false
  self.units = {}
  self.stats = { paths = 0, noPath = 0, chunks = 0, requests = 0, cancelled = 0 }
  self.camera = { x = World.SIZE / 2, y = World.SIZE / 2 }
  self:setUnits(opts.units or 300)
  return self
end

function Sim:setUnits(n)
  for i = #self.units + 1, n do
    self.units[i] = { id = i, x = 0, y = 0, path = nil, step = 1, pending = nil, placed = false }
  end
  for i = #self.units, n + 1, -1 do
    local u = self.units[i]
    if u.pending then u.pending:cancel() end
    self.units[i] = nil
  end
end

-- World ------------------------------------------------------------------

function Sim:chunkDone(cx, cy, walls, shade)
  local k = cy * World.CHUNKS + cx
  self.requested[k] = nil
  if self.chunks[k] then return end
  self.chunks[k] = { walls = walls, shade = shade, cx = cx, cy = cy }
  self.nchunks = self.nchunks + 1
  self.stats.chunks = self.stats.chunks + 1
  self.dirty = true
  if self.onChunk then self.onChunk(cx, cy, walls, shade) end
end

-- Asks for the missing chunks nearest the camera (at most `budget` at once).
function Sim:requestChunks(budget)
  local want = {}
  for cy = 0, World.CHUNKS - 1 do
    for cx = 0, World.CHUNKS - 1 do
      local k = cy * World.CHUNKS + cx
      if not self.chunks[k] and not self.requested[k] then
        local dx = (cx + 0.5) * World.CHUNK - self.camera.x
        local dy = (cy + 0.5) * World.CHUNK - self.camera.y
        want[#want + 1] = { cx = cx, cy = cy, d = dx * dx + dy * dy }
      end
    end
  end
  table.sort(want, function(a, b) return a.d < b.d end)
  for i = 1, math.min(budget, #want) do
    local c = want[i]
    local k = c.cy * World.CHUNKS + c.cx
    self.requested[k] = true
    if self.mode == "workers" then
      self.async.call(function(walls, shade) self:chunkDone(c.cx, c.cy, walls, shade) end,
        "genChunk", c.cx, c.cy, self.seed)
    else
      self:chunkDone(c.cx, c.cy, World.genChunk(c.cx, c.cy, self.seed))
    end
  end
end

-- Assembles the chunks into one wall string (ungenerated ground is wall)
-- and publishes it to the jobs.
function Sim:publish(force)
  if not self.dirty then return end
  -- Re-publishing the whole world costs a few milliseconds: at most a few
  -- times a second while chunks stream in.
  local now = love.timer.getTime()
  if not force and self.grid and now - (self.published or 0) < 0.25 then return end
  self.published = now
  self.dirty = false
  local n, rows = World.CHUNK, {}
  local solid = string.rep("\1", n)
  for y = 0, World.SIZE - 1 do
    local cy, iy = math.floor(y / n), y % n
    for cx = 0, World.CHUNKS - 1 do
      local c = self.chunks[cy * World.CHUNKS + cx]
      rows[#rows + 1] = c and c.walls:sub(iy * n + 1, iy * n + n) or solid
    end
  end
  self.walls = table.concat(rows)
  self.version = self.version + 1
  local world = { w = World.SIZE, h = World.SIZE, walls = self.walls, version = self.version }
  if self.mode == "workers" then
    self.async.share("world", world)
    self.grid = Pathing.grid(world, true) -- placement checks only
  else
    self.grid = Pathing.grid(world) -- main mode searches on it
  end
end

-- Switching modes: the other side needs the current world.
function Sim:setMode(mode)
  if mode == self.mode then return end
  self.mode = mode
  self.dirty = true
  self:publish(true)
end

function Sim:open(x, y)
  return self.grid and self.grid.cells[y * World.SIZE + x] == 0
end

function Sim:randomOpen()
  for _ = 1, 200 do
    local x, y = self.rng:random(0, World.SIZE - 1), self.rng:random(0, World.SIZE - 1)
    if self:open(x, y) then return x, y end
  end
end

-- Units ------------------------------------------------------------------

function Sim:pathDone(u, path)
  u.pending = nil
  if path then
    self.stats.paths = self.stats.paths + 1
    u.path, u.step = path, 1
  else
    self.stats.noPath = self.stats.noPath + 1
    u.path = nil
  end
end

-- A new target for u; a request still queued for it is cancelled (latest wins).
function Sim:retarget(u)
  local tx, ty = self:randomOpen()
  if not tx then return end
  local sx, sy = math.floor(u.x + 0.5), math.floor(u.y + 0.5)
  self.stats.requests = self.stats.requests + 1
  if self.mode == "workers" then
    u.pending = self.async.call({ key = u, success = function(p) self:pathDone(u, p) end,
      cancelled = function() self.stats.cancelled = self.stats.cancelled + 1 end },
      "findPath", sx, sy, tx, ty)
  else
    self:pathDone(u, Pathing.find(self.grid, sx, sy, tx, ty, MAX_NODES))
  end
end

-- One frame: chunks, world, units. `retargets` is the load: how many
-- units change their minds this frame on top of those that arrived.
function Sim:update(dt, retargets)
  self:requestChunks(self.mode == "workers" and 8 or 1)
  self:publish()
  if not self.grid then return end
  for _, u in ipairs(self.units) do
    if not u.placed then
      local x, y = self:randomOpen()
      if x then u.x, u.y, u.placed = x, y, true end
    end
  end
  local speed = 12 * dt
  for _, u in ipairs(self.units) do
    if u.placed then
      local p = u.path
      if p then
        local tx, ty = p[u.step * 2 - 1], p[u.step * 2]
        local dx, dy = tx - u.x, ty - u.y
        local d = math.sqrt(dx * dx + dy * dy)
        if d <= speed then
          u.x, u.y = tx, ty
          u.step = u.step + 1
          if u.step * 2 > #p then u.path = nil end
        else
          u.x, u.y = u.x + dx / d * speed, u.y + dy / d * speed
        end
      elseif not u.pending then
        self:retarget(u)
      end
    end
  end
  for _ = 1, retargets do
    local u = self.units[self.rng:random(1, #self.units)]
    if u and u.placed then self:retarget(u) end
  end
end

function Sim:worldComplete() return self.nchunks == World.CHUNKS * World.CHUNKS end

return Sim
