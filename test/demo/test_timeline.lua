-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_timeline.lua: the demo's timeline overlay lays out what
-- async.timeline() returns, checked on a made-up
-- timeline in plain LuaJIT: rows, clipping to the window, colours per
-- definition, the legend. Usage: luajit test_timeline.lua <demo folder>
package.path = assert(arg[1], "usage: test_timeline.lua <demo folder>") .. "/?.lua;" .. package.path
local Timeline = require "timeline"

local failed, passed = 0, 0
local function check(name, fn)
  local ok, err = pcall(fn)
  if ok then passed = passed + 1 else failed = failed + 1; print("[FAIL] " .. name .. ": " .. tostring(err)) end
end
local function near(a, b, what)
  if math.abs(a - b) > 1e-9 then error(("%s: expected %s, got %s"):format(what, b, a), 2) end
end

local TL = {
  now = 10,
  workers = {
    { { name = "findPath", t0 = 9.5, t1 = 9.6 }, { name = "genChunk", t0 = 8.5, t1 = 9.1 },
      { name = "genChunk", t0 = 8.0, t1 = 8.9 } },
    { { name = "findPath", t0 = 9.9, t1 = 9.95 }, { name = "findPath", t0 = 9.2, t1 = 9.2000001 } },
  },
  game = { { name = "update", t0 = 9.0, t1 = 9.01 } },
}

check("a row per worker, then the game's; bars where their times fall in the window", function()
  local lay = Timeline.new(1):layout(TL, 100, 30)
  assert(#lay.rows == 3, "3 rows, got " .. #lay.rows)
  assert(lay.rows[1].label == "w0" and lay.rows[2].label == "w1" and lay.rows[3].label == "game", "row labels")
  near(lay.rows[2].y, 10, "second row's y")
  assert(#lay.bars == 5, "5 bars (one event is before the window), got " .. #lay.bars)
  local b = lay.bars[1]
  assert(b.row == 1 and b.name == "findPath", "first bar")
  near(b.x, 50, "findPath's x")
  near(b.w, 10, "findPath's width")
  b = lay.bars[2]
  near(b.x, 0, "genChunk clipped at the window's start")
  near(b.w, 10, "genChunk's width within the window")
  assert(lay.rows[1].count == 2 and lay.rows[2].count == 2 and lay.rows[3].count == 1, "events per row")
end)

check("a job shorter than a pixel is still a pixel wide", function()
  local lay = Timeline.new(1):layout(TL, 100, 30)
  near(lay.bars[4].w, 1, "tiny job's width")
end)

check("the legend lists definitions by their time in the window, colours stay per name", function()
  local tl = Timeline.new(1)
  local lay = tl:layout(TL, 100, 30)
  assert(#lay.legend == 3, "3 names")
  assert(lay.legend[1].name == "findPath" and lay.legend[1].count == 3, "findPath first, 3 events")
  assert(lay.legend[2].name == "genChunk" and lay.legend[3].name == "update", "then genChunk, update")
  near(lay.legend[2].seconds, 0.1, "genChunk's seconds in the window")
  local again = tl:layout({ now = 11, workers = { { { name = "genChunk", t0 = 10.5, t1 = 10.6 } } } }, 100, 30)
  assert(again.bars[1].color == lay.legend[2].color, "genChunk keeps its colour")
  assert(lay.legend[1].color ~= lay.legend[2].color, "two names, two colours")
end)

check("workers that ran nothing show as empty rows; the summary counts bars", function()
  local lay = Timeline.new(1):layout({ now = 5, workers = {}, game = {} }, 100, 30, 2)
  assert(#lay.rows == 2 and #lay.bars == 0, "2 empty rows")
  local s = Timeline.summary(lay)
  assert(s:find("^timeline: 0 bars; events per row in the last second: w0 0, w1 0; legend: none$"), s)
  s = Timeline.summary(Timeline.new(1):layout(TL, 100, 30))
  assert(s:find("^timeline: 5 bars; events per row in the last second: w0 2, w1 2, game 1; legend: findPath 3"), s)
end)

print(("timeline layout: %d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
