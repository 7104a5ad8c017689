-- SPDX-License-Identifier: MIT (see LICENSE)
-- bench/lua/instr.lua: a fixed workload for instruction counts (callgrind):
-- n calls of function(a, b) return a + b end, issued 1,000 per "frame",
-- delivered by update(). Run with n = 0 and n = N and subtract to get the
-- main thread's instructions per call + delivery on the path ASYNC_PATH
-- selects (see bench/ANALYSIS.md, "The FFI path"). A third argument "table"
-- sends {1..100} instead of two numbers (the job returns its first item);
-- "string" sends a 64 KiB string (the job returns its length).
--   valgrind --tool=callgrind --separate-threads=yes luajit bench/lua/instr.lua <build>/lua N
local dir, n, what = assert(arg[1]), tonumber(arg[2]) or 20000, arg[3]
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local ffi = require "ffi"
ffi.cdef "int usleep(unsigned);"
local async = require "async"
async.load(1)
async.define("add", function(a, b) return a + b end)
async.define("first", function(t) return t[1] end)
async.define("len", function(s) return #s end)
local s64 = ("0123456789abcdef"):rep(4096)
local big = {}
for i = 1, 100 do big[i] = i end
local sum = 0
local function cb(x) sum = sum + x end
local done = 0
while done < n do
  local k = math.min(1000, n - done)
  if what == "table" then
    for _ = 1, k do async.call(cb, "first", big) end
  elseif what == "string" then
    for _ = 1, k do async.call(cb, "len", s64) end
  else
    for i = 1, k do async.call(cb, "add", i, 1) end
  end
  local got = 0
  while got < k do
    ffi.C.usleep(2000) -- let the worker finish: no polling in the count
    got = got + async.update()
  end
  done = done + k
end
async.shutdown()
io.write(async.getPath(), " ", n, " calls, sum ", sum, "\n")
