-- SPDX-License-Identifier: MIT (see LICENSE)
-- conf.lua: headless (no window, no audio), as the tests run LÖVE.
function love.conf(t)
  t.identity = "async-quit-test"
  t.window = false
  t.modules.window = false
  t.modules.graphics = false
  t.modules.audio = false
  t.modules.sound = false
end
