-- SPDX-License-Identifier: MIT (see LICENSE)
-- gamemod.lua: a module of the game's own, required inside a worker.
local M = {}
function M.describe(x) return "gamemod saw " .. tostring(x) end
return M
