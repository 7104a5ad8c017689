-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_perfmap.lua: async.load{perfMap = true} names the JIT-compiled code of
-- jobs for perf: the game's state and every worker's append their traces to
-- the process's /tmp/perf-<pid>.map, one whole "START SIZE lua:<name>#<trace>"
-- line each, START and SIZE in hex.
local LINE = "^(%x+) (%x+) (lua:[^\n]*#%d+)$"

-- Every line of the map, checked whole: lines written by several states at
-- once must not interleave.
local function mapLines(path)
  local f = io.open(path, "r")
  if not f then return {} end
  local lines = {}
  for l in f:lines() do
    local start, size, name = l:match(LINE)
    if not start then error("a malformed perf map line: " .. l, 2) end
    lines[#lines + 1] = { start = tonumber(start, 16), size = tonumber(size, 16), name = name }
  end
  f:close()
  return lines
end

local function named(lines, pattern)
  local found = {}
  for _, l in ipairs(lines) do
    if l.name:find(pattern) then found[#found + 1] = l end
  end
  return found
end

-- A hot loop JIT-compiles within its first few hundred iterations.
local function spin(n)
  local s = 0
  for i = 1, n do s = (s + i * 7) % 1000003 end
  return s
end

local function runJobs(async, name, calls)
  local got = 0
  for _ = 1, calls do async.call(function() got = got + 1 end, name, 200000) end
  drain(async, 60)
  eq(got, calls, "callbacks of " .. name)
end

test("perfMap = true: each worker's traces of a hot job are in the map, named after its definition",
  { needs = { "jit" } }, function()
  local async = require "async"
  local path = require("async_perfmap").path()
  async.load { workers = 2, perfMap = true }
  async.define("perfHotLoop", spin)
  runJobs(async, "perfHotLoop", 8)
  -- The game's state writes its own traces too.
  local s = 0
  for i = 1, 300000 do s = (s + i) % 7 end
  async.shutdown()
  local lines = mapLines(path)
  local jobs = named(lines, "^lua:perfHotLoop@test_perfmap%.lua:%d+#%d+$")
  ok(#jobs > 0, "a map line names perfHotLoop (" .. #lines .. " lines in " .. path .. ")")
  for _, l in ipairs(jobs) do
    ok(l.start > 0x10000 and l.size > 0 and l.size < 0x1000000, "a plausible address range: " .. l.name)
  end
  ok(#named(lines, "^lua:test_perfmap%.lua:%d+#%d+$") > 0, "a map line names the game state's loop")
end)

test("without perfMap, the workers write no map lines", { needs = { "jit" } }, function()
  if os.getenv("ASYNC_PERF_MAP") == "1" then print("  (ASYNC_PERF_MAP=1 turns it on)") return end
  local async = require "async"
  local path = require("async_perfmap").path()
  async.load { workers = 2 }
  async.define("perfPlainLoop", spin)
  runJobs(async, "perfPlainLoop", 4)
  async.shutdown()
  eq(#named(mapLines(path), "perfPlainLoop"), 0, "map lines naming perfPlainLoop")
  os.remove(path) -- perf reads it after the process, but a test leaves nothing behind
end)

test("async.load: perfMap must be a boolean", function()
  local async = require "async"
  raises("perfMap must be a boolean", async.load, { perfMap = "yes" })
  ok(not async.isLoaded(), "not loaded after the refusal")
end)

test("perfMap: a definition named with a newline or at length, or code loaded from a string, still gives whole lines",
  { needs = { "jit" } }, function()
  -- define() takes any name but "" and NUL: a newline in it, or in the
  -- source of code a game loads from a string (load's chunk name is the
  -- code itself), must not split a map line in two.
  local async = require "async"
  local path = require("async_perfmap").path()
  async.load { workers = 2, perfMap = true }
  async.define("path\nfinder", spin)
  local function fromString(k)
    return load("return function(n)\n local s = 0\n for i = 1, n do s = (s + i * " .. k
      .. ") % 1000003 end\n return s\nend")()
  end
  async.define("fromString", fromString(3))
  runJobs(async, "path\nfinder", 4)
  runJobs(async, "fromString", 4)
  -- A line longer than its file's buffer (4 KiB) goes out in pieces, which
  -- another worker's line can land between (seen 1 run in 4 with 2 workers).
  local long = "gen/chunk/" .. ("terrain"):rep(700)
  async.define(long, fromString(5))
  runJobs(async, long, 4)
  async.shutdown()
  local lines = mapLines(path)
  for _, l in ipairs(lines) do ok(#l.name < 2048, "a map line shorter than its buffer: " .. #l.name .. " bytes") end
  ok(#named(lines, "^lua:gen/chunk/terrain") > 0, "a map line names the long definition")
  ok(#named(lines, "^lua:path.finder@") > 0, "a map line names the definition")
  ok(#named(lines, "^lua:fromString@") > 0, "a map line names the string-loaded job")
end)
