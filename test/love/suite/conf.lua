-- SPDX-License-Identifier: MIT (see LICENSE)
-- conf.lua: headless (no window, no graphics, no audio), as for test/love/integration.
function love.conf(t)
  t.identity = "async-love-suite"
  t.window = false
  t.modules.window = false
  t.modules.graphics = false
  t.modules.audio = false
  t.modules.sound = false
end
