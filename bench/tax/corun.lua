-- SPDX-License-Identifier: MIT (see LICENSE)
-- corun.lua: one gallery workload's serial loop under plain LuaJIT, for the
-- co-run experiment of bench/ANALYSIS.md ("The machine's 2-core ceiling"):
--   luajit bench/tax/corun.lua <workload> [go-file]
-- Builds the gallery's requests, runs the loop once to warm up, waits for
-- go-file if given (two processes start together), runs it again and prints
-- "workload<TAB>job CPU seconds<TAB>wall seconds". bench/tax/corun.sh runs it
-- alone and two at once.
package.path = "bench/love/?.lua;" .. package.path
local timed = require "gallery_timed"
local name, go = arg[1], arg[2]
local wl
for _, w in ipairs(require("gallery_workloads")(1)) do
  if w.name == name then wl = w end
end
if not wl then error("corun.lua: no workload named " .. tostring(name)) end
local reqs = wl.reqs
local function loop()
  local c = 0
  for i = 1, #reqs do c = c + timed.run(name, unpack(reqs[i])) end
  return c
end
loop()
if go then
  while not io.open(go) do end -- spin: the start must not wait for a timer
end
local t0 = timed.mono()
local c = loop()
print(("%s\t%.3f\t%.3f"):format(name, c, timed.mono() - t0))
