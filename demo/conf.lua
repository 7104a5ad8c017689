-- SPDX-License-Identifier: MIT (see LICENSE)
-- conf.lua: a window for people; none in headless mode (CI, no display).
local headless = os.getenv("ASYNC_DEMO_HEADLESS") == "1"
for _, a in ipairs(arg or {}) do if a == "--headless" then headless = true end end

function love.conf(t)
  t.identity = "async-demo"
  t.window.title = "async demo: pathfinding and terrain on the workers"
  t.window.width, t.window.height = 1280, 800
  t.window.vsync = 0 -- frame times show the work, not the display's rate
  t.modules.audio, t.modules.sound = false, false
  if headless then
    t.window = false
    t.modules.window, t.modules.graphics = false, false
  end
end
