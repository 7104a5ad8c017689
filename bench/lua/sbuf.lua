-- SPDX-License-Identifier: MIT (see LICENSE)
-- bench/lua/sbuf.lua: the game thread's cost for table data, each figure
-- beside LuaJIT's string.buffer doing the same work, interleaved in one
-- process (the floor). Usage:
--   luajit bench/lua/sbuf.lua <build>/lua [rounds] [--tsv]
-- Per round: issuing a call with a table argument (CPU inside async.call)
-- against string.buffer encoding that table into a reused buffer; a
-- result delivered (CPU inside async.update per call, the worker already
-- done) against string.buffer.decode of the same value. Medians of the
-- rounds; CPU is the main thread's (CLOCK_THREAD_CPUTIME_ID). --tsv prints
-- name, value, unit lines for bench/report.py instead of the table.
local dir = assert(arg[1], "usage: sbuf.lua <lua build folder> [rounds] [--tsv]")
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local rounds = tonumber(arg[2]) or 5
local tsv = arg[3] == "--tsv" or arg[2] == "--tsv"
local ffi = require "ffi"
ffi.cdef [[
struct sbuf_bench_ts { long s, ns; };
int clock_gettime(int, struct sbuf_bench_ts *);
int usleep(unsigned);
]]
local ts = ffi.new("struct sbuf_bench_ts")
local function cpu() -- µs
  ffi.C.clock_gettime(3, ts)
  return tonumber(ts.s) * 1e6 + tonumber(ts.ns) * 1e-3
end
local ok, buffer = pcall(require, "string.buffer")
if not ok then
  print("sbuf.lua: this LuaJIT has no string.buffer: no floor to measure against")
  return
end
local async = require "async"
async.load(2)

-- The argument shapes.
local flat = {}
for i = 1, 100 do flat[i] = i end
local list = {}
for i = 1, 10 do list[i] = { v = i } end
local record = { pos = { x = 1.5, y = 2.5 }, list = list }
local nested = { name = "orc", stats = { hp = 10, atk = { min = 1, max = 3 } }, pos = { x = 1, y = 2 }, tags = { "a", "b" } }
local args = { { "flat {1..100}", flat }, { "record {pos, list = 10 x {v}}", record }, { "nested records", nested } }

async.define("take", function() end)
-- Results, made on the worker: the same values as the floor decodes.
async.define("flat", function()
  local t = {}
  for i = 1, 100 do t[i] = i end
  return t
end)
local function chunk()
  local names = { "grass", "sand", "rock", "water" }
  local rows = {}
  for y = 1, 64 do
    local row = {}
    rows[y] = row
    for x = 1, 64 do row[x] = { h = ((x * 7 + y * 13) % 50) * 0.25, biome = names[(x + y) % 4 + 1], solid = (x * y) % 3 == 0 } end
  end
  return rows
end
async.define("chunk", chunk)
async.define("none", function() end)

local function median(t)
  local s = {}
  for i = 1, #t do s[i] = t[i] end
  table.sort(s)
  return s[math.floor(#s / 2) + 1]
end

local R = tonumber(os.getenv("SBUF_R")) or 10000 -- calls per measure
local enc = buffer.new()
local res = {}
local function add(name, v)
  res[name] = res[name] or {}
  table.insert(res[name], v)
end

-- CPU inside update() per delivered call, the results already there.
local function delivered(name, n)
  local got = 0
  for _ = 1, n do async.call(function() got = got + 1 end, name) end
  ffi.C.usleep(2000)
  local t = 0
  while got < n do
    local t0 = cpu()
    async.update()
    t = t + cpu() - t0
    if got < n then ffi.C.usleep(500) end
  end
  return t / n
end

local flatS = buffer.encode(flat)
local chunkV = chunk()
local chunkS = buffer.encode(chunkV)
for _ = 1, rounds do
  for _, a in ipairs(args) do
    local name, t = a[1], a[2]
    local t0 = cpu()
    for _ = 1, R do
      enc:reset()
      enc:encode(t)
    end
    add(name .. "|floor", (cpu() - t0) / R)
    local calls = 0
    for _ = 1, R / 500 do
      t0 = cpu()
      for _ = 1, 500 do async.call(nil, "take", t) end
      calls = calls + cpu() - t0
      local got = 0
      while got < 500 do got = got + async.update() end
    end
    add(name .. "|ours", calls / R)
  end
  local t0 = cpu()
  for _ = 1, R do async.call(nil, "take", 1) end
  add("call with a number|ours", (cpu() - t0) / R)
  local got = 0
  while got < R do got = got + async.update() end

  t0 = cpu()
  for _ = 1, R do buffer.decode(flatS) end
  add("result {1..100}|floor", (cpu() - t0) / R)
  add("result {1..100}|ours", delivered("flat", 500))
  add("result nothing|ours", delivered("none", 500))
  t0 = cpu()
  for _ = 1, 10 do buffer.decode(chunkS) end
  add("result 64x64 chunk|floor", (cpu() - t0) / 10)
  add("result 64x64 chunk|ours", delivered("chunk", 10))
end
async.shutdown()

local order = { "flat {1..100}", "record {pos, list = 10 x {v}}", "nested records", "call with a number",
  "result {1..100}", "result nothing", "result 64x64 chunk" }
local floorOf = {
  ["flat {1..100}"] = "string.buffer encode", ["record {pos, list = 10 x {v}}"] = "string.buffer encode",
  ["nested records"] = "string.buffer encode", ["result {1..100}"] = "string.buffer.decode",
  ["result 64x64 chunk"] = "string.buffer.decode",
}
local path = async.getPath and async.getPath() or "?"
if not tsv then print(("path: %s; medians of %d rounds, main-thread CPU"):format(path, rounds)) end
for _, name in ipairs(order) do
  local ours = median(res[name .. "|ours"])
  local fl = res[name .. "|floor"] and median(res[name .. "|floor"])
  local issue = name:match("^result") and "deliver" or "issue a call with"
  if tsv then
    local key = name:gsub("[^%w]+", "_"):gsub("_$", "")
    print(("sbuf_%s/%s\t%.3f\tus"):format(key, path, ours))
    if fl then print(("sbuf_%s/floor\t%.3f\tus"):format(key, fl)) end
  elseif fl then
    print(("%-20s %-32s %10.3f us   %s %10.3f us   ratio %.2f"):format(issue, name, ours, floorOf[name], fl, ours / fl))
  else
    print(("%-20s %-32s %10.3f us"):format(issue, name, ours))
  end
end
