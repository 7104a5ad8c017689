-- SPDX-License-Identifier: MIT (see LICENSE)
-- conf.lua: headless, with a fixed identity so the test knows the save directory.
function love.conf(t)
  t.identity = "async-shipping-test"
  t.window = false
  t.modules.window = false
  t.modules.graphics = false
  t.modules.audio = false
  t.modules.sound = false
end
