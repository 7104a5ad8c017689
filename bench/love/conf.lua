-- SPDX-License-Identifier: MIT (see LICENSE)
-- conf.lua: the benchmark game runs headless.
function love.conf(t)
  t.identity = "async-bench"
  t.window = false
  t.modules.window, t.modules.graphics = false, false
  t.modules.audio, t.modules.sound = false, false
end
