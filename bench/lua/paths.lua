-- SPDX-License-Identifier: MIT (see LICENSE)
-- bench/lua/paths.lua: the game's cost per call on the path this process
-- takes (ASYNC_PATH=capi or ffi), in plain LuaJIT. Usage:
--   luajit bench/lua/paths.lua <build>/lua [frames]
-- Prints one tab-separated line per measure: the main thread's CPU time
-- (CLOCK_THREAD_CPUTIME_ID, so the workers and other processes do not
-- count) inside call and inside update, per 1,000 calls, median over frames;
-- the wall-clock round trip; the cost to issue a {1..100} argument; and
-- the main thread's CPU per call (call + update) with a 64 KiB string.
-- bench/lua/compare.sh runs it for both paths, interleaved.
local dir = assert(arg[1], "usage: paths.lua <lua build folder> [frames]")
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local frames = tonumber(arg[2]) or 200
local ffi = require "ffi"
ffi.cdef [[
struct bench_ts { long s, ns; };
int clock_gettime(int, struct bench_ts *);
int usleep(unsigned);
]]
local ts = ffi.new("struct bench_ts")
local function clock(id)
  ffi.C.clock_gettime(id, ts)
  return tonumber(ts.s) * 1e6 + tonumber(ts.ns) * 1e-3 -- µs
end
local function cpu() return clock(3) end  -- CLOCK_THREAD_CPUTIME_ID
local function wall() return clock(1) end -- CLOCK_MONOTONIC

local async = require "async"
async.load(2)
local add = async.define("add", function(a, b) return a + b end)
async.define("first", function(t) return t[1] end)
async.define("len", function(s) return #s end)

local N = 1000
local sum = 0
local function cb(x) sum = sum + x end

local function median(t)
  table.sort(t)
  return t[math.floor(#t / 2) + 1]
end

-- CPU inside call and inside update per 1,000 calls: the workers finish
-- while the main thread sleeps (not counted), as between a game's frames.
local callT, updT, rtT, bigT, strT = {}, {}, {}, {}, {}
local s64 = ("0123456789abcdef"):rep(4096) -- 64 KiB
local big = {}
for i = 1, 100 do big[i] = i end
for f = 1, frames do
  local t0 = cpu()
  for i = 1, N do async.call(cb, "add", i, 1) end
  local t1 = cpu()
  local upd, got = 0, 0
  while got < N do
    ffi.C.usleep(500)
    local u0 = cpu()
    got = got + async.update()
    upd = upd + cpu() - u0
  end
  callT[f], updT[f] = t1 - t0, upd
  -- Round trip: make 1,000 calls and update until all are back (wall clock).
  local w0 = wall()
  for i = 1, N do add(cb, i, 1) end
  got = 0
  while got < N do got = got + async.update() end
  rtT[f] = (wall() - w0) / N
  -- A {1..100} argument: CPU to issue one.
  local b0 = cpu()
  for _ = 1, 100 do async.call(nil, "first", big) end
  bigT[f] = (cpu() - b0) / 100
  got = 0
  while got < 100 do got = got + async.update() end
  -- A 64 KiB string argument: main-thread CPU per call, call + update.
  local s0 = cpu()
  for _ = 1, 100 do async.call(cb, "len", s64) end
  local s1 = cpu()
  got = 0
  local supd = 0
  while got < 100 do
    ffi.C.usleep(200)
    local u0 = cpu()
    got = got + async.update()
    supd = supd + cpu() - u0
  end
  strT[f] = (s1 - s0 + supd) / 100
end
async.shutdown()
local c, u = median(callT), median(updT)
print(("%s\tcall %.1f\tupdate %.1f\tcall+update %.1f us/1000\tround trip %.3f us/call\t{1..100} %.2f us\t64 KiB string %.2f us"):format(
  async.getPath and async.getPath() or "?", c, u, c + u, median(rtT), median(bigT), median(strT)))
