-- SPDX-License-Identifier: MIT (see LICENSE)
-- A stand-in for love.filesystem (test_lifecycle.lua).
love.filesystem = {}
return love.filesystem
