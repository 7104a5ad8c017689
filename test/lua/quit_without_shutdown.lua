-- SPDX-License-Identifier: MIT (see LICENSE)
-- quit_without_shutdown.lua: a game that quits without async.shutdown().
-- It loads, queues calls that are still queued or running, and exits with
-- os.exit(0, true), which closes its Lua state as LÖVE does on quit: the
-- context's collector destroys the pool (running no callback from a
-- collector). Passes when it exits 0; in the ASan build LeakSanitizer
-- checks at exit and fails it on a leak. Its own ctest test, not a child
-- of a suite: forking from a TSan process is unreliable.
--   luajit quit_without_shutdown.lua <lua build folder>
local dir = assert(arg[1], "usage: quit_without_shutdown.lua <lua build folder>")
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. dir .. "/?.dll;" .. package.cpath -- .dll: Windows (under Wine)
local async = require "async"
async.load { workers = 2, memoryLimit = 16 * 1024 * 1024 }
async.define("slow", function(s) local t = os.clock() + s; while os.clock() < t do end; return s end)
async.share("v", { 1, 2, 3 })
local b = async.newBuffer(1024)
for i = 1, 300 do async.call(function() end, "slow", 0.0005) end
async.call(function() end, "slow", 0, b)
async.update()
local inflight = async.stats().inflight
print("quitting with calls in flight: " .. inflight)
if inflight == 0 then os.exit(1) end -- nothing left to test
os.exit(0, true)
