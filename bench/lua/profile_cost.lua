-- SPDX-License-Identifier: MIT (see LICENSE)
-- bench/lua/profile_cost.lua: what the per-definition figures of
-- stats().defs (always on) cost a plain call, in plain LuaJIT: run it
-- against a build with them and one without, interleaved, and compare.
-- Usage: luajit bench/lua/profile_cost.lua <build>/lua [frames] [trace]
-- Prints the wall-clock round trip (1,000 calls of a + b, then update()
-- until all are back) and the main thread's CPU per call (call + update,
-- CLOCK_THREAD_CPUTIME_ID), minimum and median over the frames. With
-- "trace" as third argument a trace records meanwhile (async.startTrace).
local dir = assert(arg[1], "usage: profile_cost.lua <lua build folder> [frames] [trace]")
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local frames, trace = tonumber(arg[2]) or 200, arg[3] == "trace"
local ffi = require "ffi"
ffi.cdef [[
struct pc_ts { long s, ns; };
int clock_gettime(int, struct pc_ts *);
]]
local ts = ffi.new("struct pc_ts")
local function clock(id)
  ffi.C.clock_gettime(id, ts)
  return tonumber(ts.s) * 1e6 + tonumber(ts.ns) * 1e-3 -- µs
end

local async = require "async"
async.load(2)
async.define("add", function(a, b) return a + b end)
if trace then assert(async.startTrace()) end
local N, sum = 1000, 0
local function cb(x) sum = sum + x end
local rt, cpu = {}, {}
for f = 1, frames + 10 do
  local w0, c0 = clock(1), clock(3)
  for i = 1, N do async.call(cb, "add", i, 1) end
  local got = 0
  while got < N do got = got + async.update() end
  if f > 10 then -- the first frames compile traces and warm the workers
    rt[f - 10], cpu[f - 10] = (clock(1) - w0) / N, (clock(3) - c0) / N
  end
end
if trace then async.stopTrace() end
async.shutdown()
table.sort(rt)
table.sort(cpu)
local m = math.floor(frames / 2) + 1
print(("%s%s\tround trip min %.3f median %.3f us/call\tmain-thread CPU min %.3f median %.3f us/call"):format(
  async.getPath(), trace and "+trace" or "", rt[1], rt[m], cpu[1], cpu[m]))
