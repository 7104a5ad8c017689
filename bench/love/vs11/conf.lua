-- SPDX-License-Identifier: MIT (see LICENSE)
-- conf.lua: the thread backend against Async 1.1 runs headless.
function love.conf(t)
  t.identity = "async-vs11"
  t.window = false
  t.modules.window, t.modules.graphics = false, false
  t.modules.audio, t.modules.sound = false, false
end
