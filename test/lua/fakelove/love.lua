-- SPDX-License-Identifier: MIT (see LICENSE)
-- A stand-in for LÖVE's love module (test_lifecycle.lua): it has love.jitsetup.
love = love or {}
love.jitsetup = function() JITSETUP_RAN = true end
return love
