-- startTrace{events = 1e9} (72 GB a ring): true, then nothing recorded, no error, no "dropped".
-- Usage: cd <build>/lua && luajit <this file>
package.path = "./?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local async = require "async"
async.load(2)
async.define("w", function(x) return x end)
print("start 1e9:", async.startTrace{events = 1e9})
for i = 1, 100 do async.call(nil, "w", i) end
repeat async.update() until async.stats().inflight == 0
print("timeline events:", #async.timeline(10).workers[1] + #(async.timeline(10).workers[2] or {}))
print("RSS KiB", io.open("/proc/self/status"):read("*a"):match("VmRSS:%s*(%d+)"))
local p = os.tmpname()
print("stop:", async.stopTrace(p))
local f = io.open(p); local s = f:read("*a"); f:close(); os.remove(p)
local n = 0 for _ in s:gmatch('"ph":"X"') do n = n + 1 end
print("X events in file:", n, "bytes", #s)
print("start 1.5 (not integer):", pcall(async.startTrace, {events = 1.5}))
print("start 1 event:", async.startTrace{events = 1})
for i = 1, 100 do async.call(nil, "w", i) end
repeat async.update() until async.stats().inflight == 0
p = os.tmpname(); print("stop:", async.stopTrace(p)); f = io.open(p); s = f:read("*a"); f:close(); os.remove(p)
print(s:sub(1, 2000))
async.shutdown()
