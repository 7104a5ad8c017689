-- SPDX-License-Identifier: MIT (see LICENSE)
-- main.lua: the thread backend (what a game gets where the native module
-- cannot load) against Async 1.1 itself, both on 2 love.thread workers, in one
-- LÖVE process, alternating row by row and round by round so that both see
-- the same machine. Async 1.1 is not part of this project: its async.lua is
-- read at run time from the folder named by ASYNC11; without it only ours runs.
--   ASYNC11=<folder with Async 1.1's async.lua> love bench/love/vs11 <folder with async.lua>
--       [--before <another folder with async.lua>] [--rounds N] [--only ROW] [--systems a,b]
--       [--quick] [--out FILE]
-- --before runs a second copy of our library (e.g. an older build's lua/
-- folder) as the system "thread-before". Prints (and writes to FILE) one
-- "vs11/ROW/SYSTEM<TAB>value<TAB>unit" line per row, system and round.
-- --only and --systems (async1.1, thread, thread-before) narrow it, to profile.
io.stdout:setvbuf("line")
function love.errorhandler(msg)
  io.stderr:write("Error: " .. debug.traceback(tostring(msg), 2) .. "\n")
  os.exit(1)
end

local now = love.timer.getTime
local out = {}
local function emit(name, value, unit)
  local line = ("%s\t%.6g\t%s"):format(name, value, unit)
  out[#out + 1] = line
  print(line)
end

-- Spins update() until `done()`; `sleep`: between updates, as a game waiting
-- for the next frame does (so the main thread leaves the workers a core).
local function drain(sys, done, sleep)
  local t0 = now()
  while not done() do
    sys.update()
    if sleep then love.timer.sleep(sleep) end
    if now() - t0 > 300 then error(sys.name .. ": calls did not finish in 300 s") end
  end
end

-- Jobs without upvalues: Async 1.1 sends string.dump bytecode, which drops them.
local function job(src) return assert(loadstring(src))() end
local JOBS = {
  add = job "return function(a, b) return a + b end",
  count = job "return function(t) return #t end",
  len = job "return function(s) return #s end",
}

local scale = 1

-- Round trip: calls issued 1,000 per update() (a frame's worth), then
-- update() until the last callback; wall time per call.
local function roundtrip(sys)
  local n, got = math.floor(20000 * scale), 0
  local cb = function() got = got + 1 end
  local t0 = now()
  for b = 1, n / 1000 do
    for i = 1, 1000 do sys.call(cb, "add", i, b) end
    sys.update()
  end
  drain(sys, function() return got == n end)
  return (now() - t0) / n * 1e6, "us"
end

-- Frames of 16 ms: 1,000 calls then one update() (delivering the previous
-- frame's results), the rest of the frame asleep. The game thread's wall
-- time inside the calls and the update, per frame.
local function frames(sys)
  local nf, got, spent = math.floor(30 * scale) + 2, 0, 0
  local cb = function() got = got + 1 end
  for f = 1, nf do
    local f0 = now()
    for i = 1, 1000 do sys.call(cb, "add", i, f) end
    sys.update()
    spent = spent + (now() - f0)
    love.timer.sleep(math.max(0, f0 + 0.016 - now()))
  end
  drain(sys, function() return got == nf * 1000 end, 0.001)
  return spent / nf * 1e6, "us"
end

-- n calls of `name` with `arg`, update() every 100; wall time per call.
local function sent(sys, name, arg, want, n)
  local got = 0
  local cb = function(r) assert(r == want); got = got + 1 end
  local t0 = now()
  for i = 1, n do
    sys.call(cb, name, arg)
    if i % 100 == 0 then sys.update() end
  end
  drain(sys, function() return got == n end)
  return (now() - t0) / n * 1e6, "us"
end

local flat = {}
for i = 1, 100 do flat[i] = i end
local records = {}
for i = 1, 20 do
  records[i] = { id = i, name = "unit" .. i, pos = { x = i, y = 2 * i }, tags = { "walker", "red" }, alive = true }
end
local big = string.rep("x", 65536)

-- A* on a 256x256 grid with 30 % walls (the demo's A*, bench/love/astar.lua),
-- the map sent with every request (Async 1.1 has no other way) or, on ours,
-- shared once; speed-up over the same requests run serially here.
local SIZE = 256
local astarMod, map, reqs, serialTotal
local function astarSetup()
  astarMod = require "astar"
  map = astarMod.makeMap(SIZE, 0.3, 11)
  local rng = love.math.newRandomGenerator(5)
  reqs = {}
  for i = 1, math.floor(1000 * scale) + 20 do
    reqs[i] = { rng:random(0, SIZE - 1), rng:random(0, SIZE - 1), rng:random(0, SIZE - 1), rng:random(0, SIZE - 1) }
  end
end

local function astarSerial()
  local t0, total = now(), 0
  for _, r in ipairs(reqs) do total = total + astarMod.find(map, SIZE, r[1], r[2], r[3], r[4]) end
  serialTotal = total
  return now() - t0
end

local function astarOn(sys, shared, serial)
  local got, total = 0, 0
  local cb = function(c) got = got + 1; total = total + c end
  local t0 = now()
  for i, r in ipairs(reqs) do
    if shared then sys.call(cb, "astarShared", r[1], r[2], r[3], r[4])
    else sys.call(cb, "astar", map, r[1], r[2], r[3], r[4]) end
    if i % 50 == 0 then sys.update() end
  end
  drain(sys, function() return got == #reqs end, 0.001)
  local wall = now() - t0
  assert(total == serialTotal, sys.name .. ": A* results differ from the serial run")
  return serial / wall, "x"
end

-- The rows, in order: name, function(sys, serial) -> value, unit.
local ROWS = {
  { "roundtrip_us_per_call", roundtrip },
  { "frame_us_per_1000_calls", frames },
  { "table100_us_per_call", function(sys) return sent(sys, "count", flat, 100, math.floor(2000 * scale) + 100) end },
  { "records_us_per_call", function(sys) return sent(sys, "count", records, 20, math.floor(2000 * scale) + 100) end },
  { "string64k_us_per_call", function(sys) return sent(sys, "len", big, 65536, math.floor(1000 * scale) + 100) end },
  { "astar_speedup_sent", function(sys, serial) return astarOn(sys, false, serial) end },
  { "astar_speedup_shared", function(sys, serial) return astarOn(sys, true, serial) end, oursOnly = true },
}

-- Our library (a folder holding async.lua) as a system; `module` is the
-- name it is required under (a second copy needs a name of its own).
local function ours(name, module)
  local async = require(module)
  async.load { workers = 2, backend = "thread" }
  assert(async.backend == "thread")
  return {
    name = name, ours = true, async = async,
    define = function(n, f) async.define(n, f) end,
    call = async.call, update = async.update, shutdown = async.shutdown,
  }
end

local function async11(dir)
  local A = assert(loadfile(dir .. "/async.lua"))()
  assert(A._VERSION == "1.1", "ASYNC11 does not hold Async 1.1's async.lua")
  A.load(2)
  return { name = "async1.1", define = A.define, call = A.call, update = A.update, shutdown = A.shutdown }
end

function love.load(args)
  local libdir, before, rounds, only, outfile, pick
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--before" then before = args[i + 1]; i = i + 1
    elseif a == "--rounds" then rounds = tonumber(args[i + 1]); i = i + 1
    elseif a == "--only" then only = args[i + 1]; i = i + 1
    elseif a == "--systems" then pick = "," .. args[i + 1] .. ","; i = i + 1
    elseif a == "--out" then outfile = args[i + 1]; i = i + 1
    elseif a == "--quick" then scale = 0.1
    else libdir = libdir or a end
    i = i + 1
  end
  assert(libdir, "usage: love bench/love/vs11 <folder with async.lua> [--before DIR] [--rounds N] [--only ROW] [--out FILE]")
  rounds = rounds or 5
  local here = love.filesystem.getSource()
  local demo = here .. "/../../../demo"
  -- The workers (ours copy these paths; Async 1.1's get them in the job) find
  -- astar.lua and the demo's pathing.lua here.
  local paths = here .. "/../?.lua;" .. demo .. "/?.lua;"
  package.path = libdir .. "/?.lua;" .. paths .. package.path
  local systems = {}
  local dir11 = os.getenv("ASYNC11")
  if dir11 and dir11 ~= "" then
    systems[#systems + 1] = async11(dir11)
  else
    print("vs11: ASYNC11 is not set to a folder holding Async 1.1's async.lua: the Async 1.1 rows are skipped")
  end
  systems[#systems + 1] = ours("thread", "async")
  if before then
    -- A second copy, required as <its folder name>.async from its parent, so
    -- that its own modules (required with that prefix) are its own.
    local parent, leaf = before:gsub("/+$", ""):match("^(.*)/([^/]+)$")
    assert(parent and not leaf:find("%."), "--before: a folder path whose last name has no dot")
    package.path = parent .. "/?.lua;" .. package.path
    systems[#systems + 1] = ours("thread-before", leaf .. ".async")
  end
  -- No upvalues (see JOBS): the paths are written into the job's source.
  local function astarJob(mapExpr, params)
    return job(([[
      return function(%s)
        local paths = %q
        if package.path:sub(1, #paths) ~= paths then package.path = paths .. package.path end
        return require("astar").find(%s, %d, sx, sy, tx, ty)
      end]]):format(params, paths, mapExpr, SIZE))
  end
  for _, sys in ipairs(systems) do
    for n, f in pairs(JOBS) do sys.define(n, f) end
    sys.define("astar", astarJob("m", "m, sx, sy, tx, ty"))
    if sys.ours then sys.define("astarShared", astarJob("async.shared.map", "sx, sy, tx, ty")) end
  end
  astarSetup()
  for _, sys in ipairs(systems) do if sys.ours then sys.async.share("map", map) end end

  -- One untimed round warms every system (JIT traces, records, worker
  -- states, each worker's A* grid).
  for k = #systems, 1, -1 do
    if pick and not pick:find("," .. systems[k].name .. ",", 1, true) then table.remove(systems, k).shutdown() end
  end
  for r = 0, rounds do
    local order = {}
    for k = 1, #systems do order[k] = systems[r % 2 == 0 and k or #systems + 1 - k] end
    for _, row in ipairs(ROWS) do
      if not only or only == row[1] or (only == "astar" and row[1]:match("^astar")) then
        local serial = row[1]:match("^astar") and astarSerial() or nil
        for _, sys in ipairs(order) do
          if sys.ours or not row.oursOnly then
            local v, unit = row[2](sys, serial)
            if r > 0 then emit(("vs11/%s/%s"):format(row[1], sys.name), v, unit) end
          end
        end
      end
    end
  end
  for _, sys in ipairs(systems) do sys.shutdown() end
  if outfile then
    local f = assert(io.open(outfile, "w"))
    f:write(table.concat(out, "\n"), "\n")
    f:close()
  end
  love.event.quit(0)
end
