-- SPDX-License-Identifier: MIT (see LICENSE)
-- main.lua: the LÖVE integration test. Run as: love <this folder> <lua build folder>
-- Prints [PASS]/[FAIL] per check and "N passed, N failed"; the exit code is
-- the number of failures.
-- Headless: an error must end the process with its traceback (LÖVE's
-- error screen would wait forever for a window that does not exist).
io.stdout:setvbuf("line")
function love.errorhandler(msg)
  io.stderr:write("Error: " .. debug.traceback(tostring(msg), 2) .. "\n")
  os.exit(1)
end

local passed, failed = 0, 0
local function check(name, cond, detail)
  if cond then
    passed = passed + 1
    print("[PASS] " .. name)
  else
    failed = failed + 1
    print("[FAIL] " .. name .. (detail and (": " .. tostring(detail)) or ""))
  end
end

local function drain(async)
  local deadline = love.timer.getTime() + 20
  while async.stats().inflight > 0 and love.timer.getTime() < deadline do
    async.update()
    love.timer.sleep(0.001)
  end
  async.update()
end

local THREAD_CODE = [[
local dir, chname, x = ...
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
require "love.timer"
local async = require "async"
async.load(1)
async.define("mul", function(a, b) return a * b end)
local r
for i = 1, 200 do async.call(function(v) r = (r or 0) + v end, "mul", x, 1) end
while async.stats().inflight > 0 do async.update(); love.timer.sleep(0.001) end
local count = async.getWorkerCount()
async.shutdown()
love.thread.getChannel(chname):push({ r = r, count = count })
]]

function love.load(args)
  local dir = args[1] or error("usage: love <test folder> <lua build folder>")
  package.path = dir .. "/?.lua;" .. package.path
  package.cpath = dir .. "/?.so;" .. package.cpath
  local async = require "async"
  async.load(2)

  -- LÖVE's modules in a worker, as in a love.thread.
  async.define("lovemods", function()
    local n = love.math.noise(0.5, 0.25)
    local img = love.image.newImageData(4, 4)
    local socket = require "socket"
    return type(love.math), n, img:getWidth(), type(socket.gettime), love.filesystem.getIdentity()
  end)
  local lm, noise, w, sock, ident
  async.call({ success = function(...) lm, noise, w, sock, ident = ... end,
               error = function(m, tb) lm = m .. "\n" .. tb end }, "lovemods")
  drain(async)
  check("love.math in a worker", lm == "table", lm)
  check("love.math.noise agrees with the main thread", noise == love.math.noise(0.5, 0.25), noise)
  check("love.image in a worker", w == 4, w)
  check("luasocket in a worker", sock == "function", sock)
  check("love.filesystem sees the game's identity", ident == "async-love-test", ident)

  -- The game's own module through require.
  async.define("gamereq", function(x) return require("gamemod").describe(x) end)
  local gm
  async.call({ success = function(s) gm = s end, error = function(m) gm = m end }, "gamereq", 7)
  drain(async)
  check("a game module required in a worker", gm == "gamemod saw 7", gm)

  -- ImageData by reference, both ways.
  local img = love.image.newImageData(8, 8)
  async.define("paint", function(im)
    im:mapPixel(function() return 1, 0, 0, 1 end)
    local made = love.image.newImageData(3, 2)
    made:setPixel(1, 1, 0, 1, 0, 1)
    return im, made
  end)
  local same, made
  async.call({ success = function(a, b) same, made = a, b end, error = function(m) made = m end }, "paint", img)
  drain(async)
  local r, g, b = img:getPixel(5, 5)
  check("an ImageData painted by a worker is painted for the game", r == 1 and g == 0 and b == 0, r)
  check("the same object comes back", same == img or (same and same:getPointer() == img:getPointer()), same)
  check("a worker creates an ImageData and returns it", type(made) == "userdata" and made:typeOf("ImageData") and made:getWidth() == 3, made)
  if type(made) == "userdata" then
    local _, g2 = made:getPixel(1, 1)
    check("its pixels arrive", g2 == 1, g2)
  end

  -- Two LÖVE threads, each with its own pool, beside ours.
  local threads = {}
  for i = 1, 2 do
    local t = love.thread.newThread(THREAD_CODE)
    t:start(dir, "async-test-" .. i, i * 10)
    threads[i] = t
  end
  async.define("id", function(x) return x end)
  local mine = 0
  for i = 1, 100 do async.call(function(v) mine = mine + v end, "id", 1) end
  drain(async)
  for i, t in ipairs(threads) do
    t:wait()
    local res = love.thread.getChannel("async-test-" .. i):pop()
    check("thread " .. i .. " ran its own pool", res and res.r == 200 * i * 10 and res.count == 1,
          res and (res.r .. "/" .. res.count) or t:getError())
  end
  check("our pool was not disturbed", mine == 100 and async.getWorkerCount() == 2, mine)

  -- Shutdown and reload.
  async.shutdown()
  async.load(1)
  async.define("again", function() return love.math.random() < 2 end)
  local again
  async.call(function(v) again = v end, "again")
  drain(async)
  check("shutdown then load again", again == true, again)
  async.shutdown()

  -- A memory limit in LÖVE: the job that reaches it fails, and the fresh
  -- state the worker gets has LÖVE's modules again.
  async.load { workers = 1, memoryLimit = 48 * 1024 * 1024 }
  async.define("hog", function() local t = {}; for i = 1, 1e9 do t[i] = { i } end end)
  async.define("noise", function() return love.math.noise(0.5, 0.25) end)
  local oom, after
  async.call({ error = function(e) oom = e end }, "hog")
  async.call({ success = function(v) after = v end, error = function(e) after = e end }, "noise")
  drain(async)
  check("a job that reaches memoryLimit fails with out of memory", tostring(oom):find("hog: out of memory", 1, true), oom)
  check("the fresh state has LÖVE's modules", after == love.math.noise(0.5, 0.25), after)
  check("the state was replaced once", async.stats().statesReplaced == 1, async.stats().statesReplaced)
  async.shutdown()

  -- An ImageData on a call that ends without its
  -- arguments being read (cancelled, superseded by its key, the rest of a
  -- failed map, a worker init that fails) never reaches a later call.
  async.load(1)
  async.define("width", function(im) if im:getWidth() == 1 then error("one wide") end return im:getWidth() end)
  async.define("block", function(s) local t = os.clock() + s; while os.clock() < t do end end)
  -- n calls carrying images of widths base + 1 .. base + n: "got" and "want".
  local function widths(n, base)
    local got, want = {}, {}
    for i = 1, n do
      want[i] = base + i
      async.call({ success = function(x) got[i] = x end, error = function(e) got[i] = tostring(e) end },
        "width", love.image.newImageData(base + i, 1))
    end
    drain(async)
    return table.concat(got, ","), table.concat(want, ",")
  end
  async.call(nil, "block", 0.2)
  local h = async.call(nil, "width", love.image.newImageData(11, 1))
  h:cancel()
  drain(async)
  local got, want = widths(5, 20)
  check("after a call cancelled by handle, the next calls get their own images", got == want, got)
  async.call(nil, "block", 0.2)
  for i = 1, 4 do async.call({ key = "k" }, "width", love.image.newImageData(30 + i, 1)) end
  drain(async)
  got, want = widths(5, 40)
  check("after calls superseded by a key, the next calls get their own images", got == want, got)
  local list = { love.image.newImageData(1, 1) }
  for i = 2, 20 do list[i] = love.image.newImageData(50 + i, 1) end
  async.call(nil, "block", 0.2)
  local mapErr
  async.map({ error = function(e) mapErr = e end }, "width", list)
  drain(async)
  check("a map whose first part fails reports it", tostring(mapErr):find("one wide", 1, true), mapErr)
  got, want = widths(20, 100)
  check("after a failed map, a 20-tile map's worth of calls get their own images", got == want, got)
  async.setWorkerInit(function() error("init fails") end)
  local initErr
  async.call({ error = function(e) initErr = e end }, "width", love.image.newImageData(61, 1))
  drain(async)
  check("a failing worker init fails the call", tostring(initErr):find("init fails", 1, true), initErr)
  async.setWorkerInit(nil)
  got, want = widths(5, 70)
  check("after a worker init failure, the next calls get their own images", got == want, got)
  -- The superseded running call (defect 2) with an image: it ends as cancelled.
  async.define("slowwidth", function(im) local t = os.clock() + 0.2; while os.clock() < t do end; return im:getWidth() end)
  local log = {}
  async.call({ key = "r", success = function(x) log[#log + 1] = "old " .. x end,
               cancelled = function() log[#log + 1] = "cancelled" end }, "slowwidth", love.image.newImageData(81, 1))
  local t0 = love.timer.getTime()
  while async.stats().running < 1 and love.timer.getTime() - t0 < 10 do async.update() end
  async.call({ key = "r", success = function(x) log[#log + 1] = "new " .. x end }, "slowwidth", love.image.newImageData(82, 1))
  drain(async)
  check("a superseded running call ends as cancelled, the newer delivers", table.concat(log, ",") == "cancelled,new 82",
        table.concat(log, ","))
  -- Nothing is left on any record's channel ("async.ch.<n>") once every
  -- call has ended: the objects of calls that ended unread were freed.
  local left = 0
  for n = 0, async.stats().channels - 1 do left = left + love.thread.getChannel("async.ch." .. n):getCount() end
  check("no LÖVE object is left on a record's channel", left == 0, left)
  async.shutdown()

  -- Hostile pass, item 5: LÖVE never frees a named channel, so the names
  -- are reused across pools: load/shutdown cycles with ImageData crossing
  -- use no new names once the first cycles made them.
  local names = {}
  for cycle = 1, 40 do
    async.load(2)
    async.define("w", function(img) return img:getWidth() end)
    for i = 1, 16 do async.call(nil, "w", love.image.newImageData(i, 1)) end
    drain(async)
    names[cycle] = async.stats().channels
    async.shutdown()
  end
  -- Hostile pass, item 7: a LÖVE object where none may go is named as one.
  async.load(1)
  async.define("w", function(img) return img:getWidth() end)
  async.define("awaitimg", function(img) return async.await("w", img) end)
  local okShare, shareErr = pcall(async.share, "img", love.image.newImageData(1, 1))
  check("sharing an ImageData says LÖVE objects go only as call arguments",
        not okShare and tostring(shareErr):find("LÖVE objects and buffers go only as call arguments", 1, true), shareErr)
  local awErr
  async.call({ error = function(e) awErr = e end }, "awaitimg", love.image.newImageData(2, 1))
  drain(async)
  check("awaiting with an ImageData says it is a LÖVE object",
        tostring(awErr):find("a LÖVE object goes only as an async.call argument or result", 1, true), awErr)
  async.shutdown()
  check("channel names are reused across load/shutdown cycles",
        type(names[40]) == "number" and names[40] == names[3], ("%s after 3 cycles, %s after 40"):format(names[3], names[40]))

  print(("%d passed, %d failed"):format(passed, failed))
  love.event.quit(failed)
end
