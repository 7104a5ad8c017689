-- SPDX-License-Identifier: MIT (see LICENSE)
-- main.lua: the async demo. A procedurally generated world, built in chunks
-- on the workers while the camera moves, and hundreds of units that keep
-- asking for A* paths across it. Tab switches the same work to the main
-- thread, so you can feel the frame rate fall.
--
--   love demo <folder with async.lua and async_native.so> [options]
--   --headless            no window: run both modes, print a summary, exit
--   --frames N            frames per mode in headless mode (default 600)
--   --units N             units (default 300)
--   --load N              extra retargets per frame (default 6)
--   --workers N           worker threads (default 2)
--   --pin                 bind worker k to CPU k (async.load{pin = true})
--   --screenshot FILE     run --frames frames windowed, save a PNG, exit
--   --mode main|workers   where the work starts (default workers; Tab switches)
--   --timeline            the per-worker timeline of the last second (T
--                         toggles it); headless: print what it would draw
local Sim = require "sim"
local World = require "world"
local Pathing = require "pathing"
local Timeline = require "timeline"

local async
local opts = { frames = 600, units = 300, load = 6, workers = 2 }

local function parseArgs(args)
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--headless" then opts.headless = true
    elseif a == "--frames" then opts.frames = tonumber(args[i + 1]); i = i + 1
    elseif a == "--units" then opts.units = tonumber(args[i + 1]); i = i + 1
    elseif a == "--load" then opts.load = tonumber(args[i + 1]); i = i + 1
    elseif a == "--workers" then opts.workers = tonumber(args[i + 1]); i = i + 1
    elseif a == "--pin" then opts.pin = true
    elseif a == "--screenshot" then opts.screenshot = args[i + 1]; i = i + 1
    elseif a == "--mode" then opts.mode = args[i + 1]; i = i + 1
    elseif a == "--timeline" then opts.timeline = true
    elseif not opts.libdir then opts.libdir = a end
    i = i + 1
  end
  opts.headless = opts.headless or os.getenv("ASYNC_DEMO_HEADLESS") == "1"
end

local function loadAsync()
  if opts.libdir then
    package.path = opts.libdir .. "/?.lua;" .. package.path
    package.cpath = opts.libdir .. "/?.so;" .. package.cpath
  end
  async = require "async"
  async.load { workers = opts.workers, pin = opts.pin }
  Sim.define(async)
end

-- Frame-time statistics over a sliding window.
local Frames = {}
Frames.__index = Frames
function Frames.new(n) return setmetatable({ n = n, i = 0, v = {} }, Frames) end
function Frames:add(t) self.i = self.i % self.n + 1; self.v[self.i] = t end
function Frames:percentile(p)
  local s = {}
  for k = 1, #self.v do s[k] = self.v[k] end
  if #s == 0 then return 0 end
  table.sort(s)
  return s[math.max(1, math.ceil(p * #s))]
end

-- Headless ------------------------------------------------------------------

local function checksum(s)
  local h = 2166136261
  for i = 1, #s, 1 do h = bit.bxor(h, s:byte(i)); h = bit.tobit(h * 16777619) end
  return bit.tohex(h)
end

local function waitAll(pred)
  local t0 = love.timer.getTime()
  while not pred() do
    async.update()
    love.timer.sleep(0.0005)
    if love.timer.getTime() - t0 > 120 then error("demo: workers did not finish in 120 s") end
  end
end

-- The same world and the same path requests, computed on the main thread
-- and on the workers: every byte and every path must match.
local function compareModes(requests)
  local main, work = Sim.new({ mode = "main", units = 0 }), Sim.new({ mode = "workers", units = 0, async = async })
  while not main:worldComplete() do main:requestChunks(64) end
  main:publish(true)
  work:requestChunks(64)
  waitAll(function() return work:worldComplete() end)
  work:publish(true)
  local rng = love.math.newRandomGenerator(99)
  local reqs = {}
  for i = 1, requests do
    local function pick()
      for _ = 1, 1000 do
        local x, y = rng:random(0, World.SIZE - 1), rng:random(0, World.SIZE - 1)
        if main:open(x, y) then return x, y end
      end
    end
    local sx, sy = pick()
    local tx, ty = pick()
    reqs[i] = { sx, sy, tx, ty }
  end
  local a, b = {}, {}
  for i, r in ipairs(reqs) do
    local p = Pathing.find(main.grid, r[1], r[2], r[3], r[4], Sim.MAX_NODES)
    a[i] = p and table.concat(p, ",") or "none"
  end
  local got = 0
  for i, r in ipairs(reqs) do
    async.call(function(p) b[i] = p and table.concat(p, ",") or "none"; got = got + 1 end,
      "findPath", r[1], r[2], r[3], r[4])
  end
  waitAll(function() return got == #reqs end)
  local same, found = true, 0
  for i = 1, #reqs do
    if a[i] ~= b[i] then same = false end
    if a[i] ~= "none" then found = found + 1 end
  end
  return {
    worldMain = checksum(main.walls), worldWorkers = checksum(work.walls),
    pathsMain = checksum(table.concat(a, ";")), pathsWorkers = checksum(table.concat(b, ";")),
    same = same and main.walls == work.walls, requests = #reqs, found = found,
  }
end

-- F frames of the live simulation in one mode, paced at 60 Hz as a game
-- would be; frame time is the main thread's work per frame (simulation
-- update plus delivering callbacks), the part that must fit in 16.7 ms.
-- The timeline overlay's data: a trace left on (its rings bound the memory).
local function startTimeline()
  if not async.timeline then return nil, "this async has no timeline()" end
  if async.isTracing() then return true end
  -- A backend without tracing raises: the overlay says why instead.
  local ok, started, why = pcall(async.startTrace)
  if not ok then return nil, tostring(started) end
  return started, why
end

-- The overlay hidden, nothing reads the trace: stop it (while it records,
-- each job and call records an event).
local function stopTimeline()
  if async.isTracing and async.isTracing() then async.stopTrace() end
end

local function runMode(mode)
  local sim = Sim.new({ mode = mode, units = opts.units, async = async, seed = 7 })
  local frames = Frames.new(opts.frames)
  local over = 0
  local timeline, lay, why
  if mode == "workers" and opts.timeline then
    local ok
    ok, why = startTimeline()
    timeline = ok and Timeline.new(1)
  end
  for f = 1, opts.frames do
    local t0 = love.timer.getTime()
    sim:update(1 / 60, opts.load)
    if mode == "workers" then async.update { budget = 0.004 } end
    -- What the overlay would draw, as often as a game would look.
    if timeline and (f % 30 == 0 or f == opts.frames) then
      lay = timeline:layout(async.timeline(1), 360, 100, async.getWorkerCount())
    end
    local work = love.timer.getTime() - t0
    frames:add(work)
    if work > 1 / 60 then over = over + 1 end
    if work < 1 / 60 then love.timer.sleep(1 / 60 - work) end
  end
  if mode == "workers" then waitAll(function() return async.stats().inflight == 0 end) end
  -- Hidden as the T key hides it: the trace must stop with it.
  local hidden
  if timeline then
    stopTimeline()
    hidden = "overlay hidden, trace recording: " .. (async.isTracing() and "yes" or "no")
  end
  return {
    mode = mode, frames = opts.frames, p50 = frames:percentile(0.5) * 1e3, p99 = frames:percentile(0.99) * 1e3,
    paths = sim.stats.paths, chunks = sim.stats.chunks, requests = sim.stats.requests,
    cancelled = sim.stats.cancelled, over = over,
    timeline = lay and Timeline.summary(lay) or why and ("timeline: unavailable: " .. why),
    hidden = hidden,
  }
end

local function headless()
  local cmp = compareModes(200)
  local rows = { runMode("workers"), runMode("main") }
  print(("async demo (headless): %d workers%s, %d units, load %d, %d frames per mode")
    :format(async.getWorkerCount(), opts.pin and " (pinned)" or "", opts.units, opts.load, opts.frames))
  print(("%-8s %7s %8s %8s %10s %8s %8s %9s %7s"):format("mode", "frames", "p50 ms", "p99 ms", ">16.7 ms", "requests", "paths", "cancelled", "chunks"))
  for _, r in ipairs(rows) do
    print(("%-8s %7d %8.2f %8.2f %10d %8d %8d %9d %7d"):format(r.mode, r.frames, r.p50, r.p99, r.over, r.requests, r.paths, r.cancelled, r.chunks))
  end
  if rows[1].timeline then print(rows[1].timeline) end
  if rows[1].hidden then print(rows[1].hidden) end
  print(("world checksum: main %s, workers %s"):format(cmp.worldMain, cmp.worldWorkers))
  print(("paths checksum: main %s, workers %s (%d requests, %d found)"):format(cmp.pathsMain, cmp.pathsWorkers, cmp.requests, cmp.found))
  local okWork = rows[1].paths > 0 and rows[2].paths > 0 and rows[1].chunks == World.CHUNKS ^ 2
    and rows[2].chunks > 0 and cmp.found > 0
  print("results match: " .. (cmp.same and "yes" or "NO"))
  print("work done: " .. (okWork and "yes" or "NO"))
  async.shutdown()
  love.event.quit((cmp.same and okWork) and 0 or 1)
end

-- Windowed -------------------------------------------------------------------

local sim, frames, images, statsTable
local scale, ox, oy = 3, 16, 16
local busyHistory, lastBusy, sampleTimer = {}, {}, 0
local jobsPerSec, lastCompleted, rateTimer = 0, 0, 0
local t, frameCount = 0, 0
local timeline, timelineLayout, timelineWhy, timelineTimer = nil, nil, nil, 0

local function toggleTimeline()
  if timeline then timeline = nil; stopTimeline(); return end
  local ok, why = startTimeline()
  timeline, timelineWhy, timelineTimer = ok and Timeline.new(1), why, 1
end

local function chunkImage(cx, cy, walls, shade)
  local n = World.CHUNK
  local img = love.image.newImageData(n, n)
  for i = 0, n * n - 1 do
    local x, y = i % n, math.floor(i / n)
    local h = shade:byte(i + 1) / 255
    if walls:byte(i + 1) == 1 then img:setPixel(x, y, 0.25 + h * 0.2, 0.22 + h * 0.15, 0.2, 1)
    else img:setPixel(x, y, 0.1 + h * 0.25, 0.35 + h * 0.4, 0.15 + h * 0.2, 1) end
  end
  local im = love.graphics.newImage(img)
  im:setFilter("nearest", "nearest")
  images[cy * World.CHUNKS + cx] = im
end

local function newWorld(seed)
  local mode = sim and sim.mode or (opts.mode == "main" and "main" or "workers")
  sim = Sim.new({ mode = mode, units = opts.units, async = async, seed = seed })
  images = {}
  sim.onChunk = chunkImage
end

function love.load(args)
  parseArgs(args)
  if opts.headless then
    -- Without a window LÖVE's error screen would wait forever: print, exit.
    io.stdout:setvbuf("line")
    function love.errorhandler(msg)
      io.stderr:write("Error: " .. debug.traceback(tostring(msg), 2) .. "\n")
      os.exit(1)
    end
  end
  loadAsync()
  if opts.headless then return headless() end
  frames = Frames.new(240)
  newWorld(7)
  if opts.timeline then toggleTimeline() end
  love.graphics.setFont(love.graphics.newFont(13))
end

function love.update(dt)
  t = t + dt
  frameCount = frameCount + 1
  local t0 = love.timer.getTime()
  -- The camera wanders; chunks nearest it are generated first.
  sim.camera.x = World.SIZE / 2 + math.cos(t * 0.3) * World.SIZE * 0.35
  sim.camera.y = World.SIZE / 2 + math.sin(t * 0.23) * World.SIZE * 0.35
  sim:update(math.min(dt, 0.05), opts.load)
  async.update { budget = 0.004 }
  frames:add(love.timer.getTime() - t0 + 0) -- main-thread work this frame
  statsTable = async.stats(statsTable)
  rateTimer = rateTimer + dt
  if rateTimer >= 0.5 then
    jobsPerSec = (statsTable.completed - lastCompleted) / rateTimer
    lastCompleted, rateTimer = statsTable.completed, 0
  end
  sampleTimer = sampleTimer + dt
  if sampleTimer >= 0.25 then
    for i, w in ipairs(statsTable.workers) do
      local h = busyHistory[i] or {}
      busyHistory[i] = h
      local prev = lastBusy[i] or w.busy
      h[#h + 1] = math.min(1, math.max(0, (w.busy - prev) / sampleTimer))
      if #h > 60 then table.remove(h, 1) end
      lastBusy[i] = w.busy
    end
    sampleTimer = 0
  end
  -- The timeline's layout ten times a second: enough to read, and
  -- async.timeline builds a table per event.
  timelineTimer = timelineTimer + dt
  if timeline and timelineTimer >= 0.1 then
    timelineLayout, timelineTimer = timeline:layout(async.timeline(1), 360, 100, async.getWorkerCount()), 0
  end
  if opts.screenshot and frameCount == opts.frames then
    love.graphics.captureScreenshot(function(img)
      local f = assert(io.open(opts.screenshot, "wb"))
      f:write(img:encode("png"):getString())
      f:close()
      love.event.quit(0)
    end)
  end
end

local colors = { { 0.95, 0.55, 0.2 }, { 0.3, 0.7, 1 }, { 0.9, 0.3, 0.6 }, { 0.5, 0.9, 0.4 }, { 0.9, 0.9, 0.3 }, { 0.6, 0.5, 1 } }

function love.draw()
  love.graphics.clear(0.05, 0.05, 0.07)
  for k, im in pairs(images) do
    local cx, cy = k % World.CHUNKS, math.floor(k / World.CHUNKS)
    love.graphics.draw(im, ox + cx * World.CHUNK * scale, oy + cy * World.CHUNK * scale, 0, scale, scale)
  end
  -- requested chunks, and the camera that drives generation
  love.graphics.setColor(1, 1, 1, 0.25)
  for k in pairs(sim.requested) do
    local cx, cy = k % World.CHUNKS, math.floor(k / World.CHUNKS)
    love.graphics.rectangle("line", ox + cx * World.CHUNK * scale, oy + cy * World.CHUNK * scale, World.CHUNK * scale, World.CHUNK * scale)
  end
  love.graphics.setColor(1, 1, 1, 0.8)
  love.graphics.circle("line", ox + sim.camera.x * scale, oy + sim.camera.y * scale, 40)
  -- a few paths, then every unit
  love.graphics.setColor(1, 0.9, 0.3, 0.35)
  for i = 1, math.min(12, #sim.units) do
    local u = sim.units[i]
    if u.path and #u.path >= 4 then
      local pts = {}
      for j = u.step * 2 - 1, #u.path do pts[#pts + 1] = ox + (u.path[j] + 0.5) * scale end
      for j = 2, #pts, 2 do pts[j] = pts[j] - ox + oy end
      if #pts >= 4 then love.graphics.line(pts) end
    end
  end
  for _, u in ipairs(sim.units) do
    if u.placed then
      if u.pending then love.graphics.setColor(1, 0.4, 0.3) else love.graphics.setColor(1, 1, 0.6) end
      love.graphics.rectangle("fill", ox + u.x * scale, oy + u.y * scale, scale, scale)
    end
  end
  -- overlay
  local x0 = ox + World.SIZE * scale + 24
  local s = statsTable or async.stats()
  local lines = {
    ("work runs on: %s   [Tab] to switch"):format(sim.mode == "workers" and ("the workers (" .. async.getWorkerCount() .. ")") or "THE MAIN THREAD"),
    ("frame: %.2f ms now, %.2f ms p99 (last %d frames)"):format((frames.v[frames.i] or 0) * 1e3, frames:percentile(0.99) * 1e3, #frames.v),
    ("FPS: %d"):format(love.timer.getFPS()),
    ("jobs/s: %.0f   queued: %d   running: %d   ready: %d"):format(jobsPerSec, s.queued, s.running, s.ready),
    ("units: %d   retargets/frame: %d"):format(#sim.units, opts.load),
    ("paths found: %d   none: %d   cancelled (latest wins): %d"):format(sim.stats.paths, sim.stats.noPath, sim.stats.cancelled),
    ("chunks: %d / %d"):format(sim.nchunks, World.CHUNKS ^ 2),
    "",
    "[+]/[-] workers   [Up]/[Down] units   [Left]/[Right] load   [T] timeline",
    "[R] new world   [Esc] quit",
  }
  love.graphics.setColor(1, 1, 1)
  for i, l in ipairs(lines) do love.graphics.print(l, x0, oy + (i - 1) * 20) end
  -- per-worker busy time, last 15 s
  local gy, gw, gh = oy + 230, 360, 120
  love.graphics.setColor(1, 1, 1, 0.15)
  love.graphics.rectangle("fill", x0, gy, gw, gh)
  love.graphics.setColor(1, 1, 1)
  love.graphics.print("worker busy (share of each 0.25 s)", x0, gy - 18)
  for i, h in ipairs(busyHistory) do
    local c = colors[(i - 1) % #colors + 1]
    love.graphics.setColor(c[1], c[2], c[3], (s.workers[i] and s.workers[i].running) and 1 or 0.3)
    if #h >= 2 then
      local pts = {}
      for j, v in ipairs(h) do pts[#pts + 1] = x0 + (j - 1) * gw / 59; pts[#pts + 1] = gy + gh - v * gh end
      love.graphics.line(pts)
    end
    love.graphics.print(("w%d %3.0f%%"):format(i - 1, (h[#h] or 0) * 100), x0 + gw + 8, gy + (i - 1) * 16)
  end
  -- frame time graph
  local fy = gy + gh + 40
  love.graphics.setColor(1, 1, 1, 0.15)
  love.graphics.rectangle("fill", x0, fy, gw, gh)
  love.graphics.setColor(1, 1, 1)
  love.graphics.print("main-thread frame time (0-33 ms)", x0, fy - 18)
  love.graphics.setColor(0.4, 1, 0.5)
  local n = #frames.v
  for j = 1, n do
    local v = frames.v[(frames.i - n + j - 1) % frames.n + 1] or 0
    local hgt = math.min(1, v / 0.033) * gh
    love.graphics.rectangle("fill", x0 + (j - 1) * gw / frames.n, fy + gh - hgt, math.max(1, gw / frames.n), hgt)
  end
  -- jobs per worker, last second
  local ty = fy + gh + 40
  love.graphics.setColor(1, 1, 1)
  if timeline and timelineLayout then
    love.graphics.print("jobs on each worker, last second (colour: definition)", x0, ty - 18)
    Timeline.draw(timelineLayout, x0, ty)
  elseif timelineWhy then
    love.graphics.print("timeline: " .. timelineWhy, x0, ty - 18)
  end
end

function love.keypressed(key)
  if key == "escape" then love.event.quit()
  elseif key == "tab" or key == "w" then
    sim:setMode(sim.mode == "workers" and "main" or "workers")
  elseif key == "=" or key == "+" or key == "kp+" then async.ensure.exactly(async.getWorkerCount() + 1)
  elseif key == "-" or key == "kp-" then async.ensure.atLeast(1).exactly(math.max(1, async.getWorkerCount() - 1))
  elseif key == "up" then opts.units = opts.units + 50; sim:setUnits(opts.units)
  elseif key == "down" then opts.units = math.max(50, opts.units - 50); sim:setUnits(opts.units)
  elseif key == "right" then opts.load = opts.load + 2
  elseif key == "left" then opts.load = math.max(0, opts.load - 2)
  elseif key == "r" then newWorld(love.math.random(1, 100000))
  elseif key == "t" then toggleTimeline()
  end
end

function love.quit()
  if async and async.isLoaded() then async.shutdown() end
end
