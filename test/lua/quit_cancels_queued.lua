-- SPDX-License-Identifier: MIT (see LICENSE)
-- quit_cancels_queued.lua: a game that quits without async.shutdown()
-- (its Lua state closes) must not run the calls still queued: they are
-- cancelled, the running ones waited for. The parent runs itself as a
-- child that queues 200 slow calls on one worker and exits; each job that
-- runs appends a line to a file, which the parent counts. Passes when it
-- exits 0.
--   luajit quit_cancels_queued.lua <lua build folder>
local dir = assert(arg[1], "usage: quit_cancels_queued.lua <lua build folder>")
local CALLS = 200

if arg[2] == "child" then
  package.path = dir .. "/?.lua;" .. package.path
  package.cpath = dir .. "/?.so;" .. dir .. "/?.dll;" .. package.cpath -- .dll: Windows
  local async = require "async"
  async.load(1)
  async.define("slow", function(path)
    local f = io.open(path, "a")
    f:write("ran\n")
    f:close()
    local t = os.clock() + 0.01
    while os.clock() < t do end
  end)
  for _ = 1, CALLS do async.call(nil, "slow", arg[3]) end
  os.exit(0, true) -- closes the state, as LÖVE does on quit
end

local path = os.tmpname()
local self = debug.getinfo(1, "S").source:sub(2)
local exe = arg[-1] or "luajit"
-- ASYNC_CHILD_ENV: the sanitizer preload, for the child only.
local env = os.getenv("ASYNC_CHILD_ENV") or ""
local cmd = ("%s %q %q %q child %q"):format(env, exe, self, dir, path)
local okk, how, code = os.execute(cmd)
local rc = type(okk) == "number" and okk or (okk and 0 or code)
local f = io.open(path)
local n = 0
for _ in f:lines() do n = n + 1 end
f:close()
os.remove(path)
print(("child exited %s; %d of %d queued calls ran"):format(tostring(rc), n, CALLS))
-- The one running (and perhaps one more that had started) may finish.
if rc ~= 0 or n >= CALLS / 2 then os.exit(1) end
