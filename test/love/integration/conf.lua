-- SPDX-License-Identifier: MIT (see LICENSE)
-- conf.lua: headless (no window, no graphics, no audio) so the test runs anywhere.
function love.conf(t)
  t.identity = "async-love-test"
  t.window = false
  t.modules.window = false
  t.modules.graphics = false
  t.modules.audio = false
  t.modules.sound = false
end
