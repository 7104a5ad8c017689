-- SPDX-License-Identifier: MIT (see LICENSE)
-- thread_pack.lua: the thread backend's C.pack (async_thread_common.lua)
-- encodes every message of the game's side with one string.buffer. A
-- finalizer that calls async.call runs at the collector step that ends an
-- encode; the message it packs must not replace the one being packed.
--   luajit thread_pack.lua <folder with async_thread_common.lua>
local dir = assert(arg[1], "usage: thread_pack.lua <lua folder>")
package.path = dir .. "/?.lua;" .. package.path
local okb, buffer = pcall(require, "string.buffer")
if not okb then print("thread pack: whole (no string.buffer here: every message goes as a table)") return end
local C = assert(loadstring(require "async_thread_common"))(require "async_messages")
local big = {}
for i = 1, 3000 do big[i] = i end -- encoded, over the size that goes as a table
local wrong, inner = 0, 0
collectgarbage("collect")
collectgarbage("setpause", 1)
collectgarbage("setstepmul", 10000)
for round = 1, 300 do
  for _ = 1, 20 do
    local p = newproxy(true)
    getmetatable(p).__gc = function() inner = inner + 1; C.pack({ 1, 2, "small" }, true) end
  end
  local out = C.pack({ 0, round, big }, true)
  if type(out) == "string" then out = buffer.decode(out) end
  if out[2] ~= round or type(out[3]) ~= "table" or #out[3] ~= 3000 then wrong = wrong + 1 end
end
collectgarbage("setpause", 200)
print(("finalizers that packed: %d; messages replaced by theirs: %d of 300"):format(inner, wrong))
if inner == 0 then print("[FAIL] no finalizer ran") os.exit(1) end
if wrong > 0 then print("[FAIL] a message was replaced") os.exit(1) end
print("thread pack: whole")
