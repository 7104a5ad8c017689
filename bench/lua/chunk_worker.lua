-- SPDX-License-Identifier: MIT (see LICENSE)
-- chunk_worker.lua: the terrain workload (bench/love/gallery_jobs.lua)
-- through one worker, in bursts of `burst` calls (the first burst's
-- records are fresh: their result buffers start empty). The main thread
-- sleeps between polls, so the process's CPU time is the worker's and
-- the decodes'. For callgrind's per-thread counts or perf stat:
--   valgrind --tool=callgrind --separate-threads=yes \
--     luajit bench/lua/chunk_worker.lua <build>/lua N [burst]
--   perf stat -e page-faults,task-clock luajit bench/lua/chunk_worker.lua <build>/lua N [burst]
local dir, n, burst = assert(arg[1]), tonumber(arg[2]) or 256, tonumber(arg[3]) or 64
package.path = dir .. "/?.lua;bench/love/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local ffi = require "ffi"
ffi.cdef "int usleep(unsigned);"
local J = require "gallery_jobs"
local async = require "async"
async.load(1)
async.define("terrain", J.terrain)
local got = 0
local function cb(c) got = got + c.checksum end
local done = 0
while done < n do
  local k = math.min(burst, n - done)
  for i = 1, k do async.call(cb, "terrain", 1234, done + i, 4, 32) end
  while async.stats().inflight > 0 do
    async.update()
    ffi.C.usleep(200)
  end
  done = done + k
end
async.shutdown()
print("chunks", n, "checksum", got)
