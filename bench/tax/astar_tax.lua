-- SPDX-License-Identifier: MIT (see LICENSE)
-- astar_tax.lua: the worker tax of the gallery's A* under plain LuaJIT, the
-- experiment behind bench/ANALYSIS.md ("The worker tax").
--   luajit bench/tax/astar_tax.lua <lua build folder> [modes] [n]
-- modes: comma list of main (serial on this thread), w1, w2 (ours with 1 or
-- 2 workers); default main,w1. Each job measures itself with the calling
-- thread's clocks (CLOCK_THREAD_CPUTIME_ID, getrusage(RUSAGE_THREAD)), so
-- the figures are the job's own, not the machine's load. Prints per mode:
-- the jobs' thread-CPU seconds, their user/system split, minor page faults
-- per job, and the tax against main.
local dir, modes, n = arg[1], arg[2] or "main,w1", tonumber(arg[3] or 300)
package.path = dir .. "/?.lua;bench/love/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local J = require "gallery_jobs"
local ffi = require "ffi"
ffi.cdef [[ int usleep(unsigned); ]]
-- TAX_JITV=prefix: LuaJIT's jit.v trace log of each state to prefix-main.txt / -worker.txt.
local W, H = 256, 256
local grid = J.makeGrid(W, H, 0.2, 7) -- as the gallery
local cells = J.openCells(grid, W, H, 2 * n, 99)

-- The job measures itself (gallery_timed.lua): cpu, kernel seconds, faults.
local function job(grid, W, H, a, b)
  if os.getenv("TAX_JITV") and not package.loaded["jit.v"] then
    require("jit.v").start(os.getenv("TAX_JITV") .. (async and async.isWorker and "-worker" or "-main") .. ".txt")
  end
  return require("gallery_timed").run("astar", grid, W, H, a % W, (a - a % W) / W, b % W, (b - b % W) / W)
end

local base
local function report(name, acc)
  base = base or acc.cpu
  print(("%-5s jobs-cpu %.3f s (user %.3f, sys %.3f)  faults/job %.0f  tax %.3f  steps %d")
    :format(name, acc.cpu, acc.ut, acc.st, acc.flt / n, acc.cpu / base, acc.steps))
end
local function acc0() return { cpu = 0, ut = 0, st = 0, flt = 0, steps = 0, got = 0 } end
local function add(acc, cpu, st, flt, steps)
  acc.cpu, acc.flt, acc.ut, acc.st = acc.cpu + cpu, acc.flt + flt, acc.ut + cpu - st, acc.st + st
  acc.steps, acc.got = acc.steps + steps, acc.got + 1
end

for mode in modes:gmatch("[^,]+") do
  local acc = acc0()
  if mode == "main" then
    for i = 1, n do add(acc, job(grid, W, H, cells[2 * i - 1], cells[2 * i])) end
  else
    local async = require "async"
    async.load(tonumber(mode:sub(2)))
    async.define("job", job)
    for i = 1, n do async.call(function(...) add(acc, ...) end, "job", grid, W, H, cells[2 * i - 1], cells[2 * i]) end
    while acc.got < n do async.update(); ffi.C.usleep(1000) end
    async.shutdown()
    package.loaded.async = nil
  end
  report(mode, acc)
end
