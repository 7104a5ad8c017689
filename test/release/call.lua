-- SPDX-License-Identifier: MIT (see LICENSE)
-- call.lua: one call through a release folder's own loader, run by a luajit
-- started in that folder; prints the backend and the result ("native 144").
package.path = "./?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local async = require "async"
async.load(2)
async.define("sq", function(x) return x * x end)
local r
async.call(function(v) r = v end, "sq", 12)
while r == nil do async.update() end
async.shutdown()
io.write(async.backend, " ", r, "\n")
