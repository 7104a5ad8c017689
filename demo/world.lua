-- SPDX-License-Identifier: MIT (see LICENSE)
-- world.lua: procedural terrain, the work a chunk job does. Plain functions
-- of their arguments, required both by the game and inside jobs, so the two
-- modes of the demo run exactly the same code.
local World = {}

World.CHUNK = 32  -- tiles per chunk side
World.CHUNKS = 8  -- chunks per world side
World.SIZE = World.CHUNK * World.CHUNKS

local noise = love.math.noise

-- Fractal noise: a few octaves make chunk generation cost what real
-- procgen costs (about a millisecond per chunk).
local function fbm(x, y, seed)
  local sum, amp, freq, norm = 0, 1, 1, 0
  for _ = 1, 5 do
    sum = sum + amp * noise(x * freq + seed, y * freq - seed)
    norm = norm + amp
    amp, freq = amp * 0.5, freq * 2
  end
  return sum / norm
end

--- Generates chunk (cx, cy): two strings of CHUNK*CHUNK bytes, the walls
--- (1 = wall, 0 = open) and a shade (0..255) for drawing.
function World.genChunk(cx, cy, seed)
  local n = World.CHUNK
  local walls, shade = {}, {}
  for y = 0, n - 1 do
    for x = 0, n - 1 do
      local gx, gy = cx * n + x, cy * n + y
      local h = fbm(gx * 0.035, gy * 0.035, seed)
      local ridge = math.abs(fbm(gx * 0.09 + 40, gy * 0.09 - 40, seed) - 0.5)
      local wall = (h > 0.62 or ridge < 0.012) and 1 or 0
      local i = y * n + x + 1
      walls[i] = wall
      shade[i] = math.floor(math.min(255, math.max(0, h * 255)))
    end
  end
  return string.char(unpack(walls)), string.char(unpack(shade))
end

return World
