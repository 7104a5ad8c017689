-- SPDX-License-Identifier: MIT (see LICENSE)
-- A stand-in for love.thread (test_lifecycle.lua).
love.thread = {}
return love.thread
