-- SPDX-License-Identifier: MIT (see LICENSE)
-- chunk_codec.lua: the codec's cost on the gallery's terrain chunk (1,024
-- tile tables) and on the micro bench's small values; run from the repo
-- root after building build/release:
--   luajit bench/lua/chunk_codec.lua            wall µs per operation
--   luajit bench/lua/chunk_codec.lua encode 50  only that, for callgrind
-- (modes: encode, decode, small; the count is the repetitions).
package.path = "bench/love/?.lua;" .. package.path
package.cpath = (os.getenv("ASYNC_CPATH") or "build/release/lua/?.so;") .. package.cpath
local J = require "gallery_jobs"
local native = require "async_native"
local chunk = J.terrain(1234, 3, 4, 32)
local s = native.encode(chunk)
local small = { 17, 2.5, "unit-42", { x = 10, y = 20, tags = { "a", "b" }, alive = true } }
local list = {}
for i = 1, 100 do list[i] = i end

local mode, reps = arg[1], tonumber(arg[2] or 200)
local function smallRound()
  native.decode(native.encode(small[1], small[2], small[3], small[4]))
  native.decode(native.encode(list))
end
if mode == "encode" then
  for _ = 1, reps do native.encode(chunk) end
  return
elseif mode == "decode" then
  for _ = 1, reps do native.decode(s) end
  return
elseif mode == "small" then
  for _ = 1, reps do smallRound() end
  return
end

local function us(f, n)
  local t0 = os.clock()
  for _ = 1, n do f() end
  return (os.clock() - t0) / n * 1e6
end
print(("encoded bytes %d"):format(#s))
print(("encode us %.1f"):format(us(function() native.encode(chunk) end, reps)))
print(("decode us %.1f"):format(us(function() native.decode(s) end, reps)))
print(("generate us %.1f"):format(us(function() J.terrain(1234, 3, 4, 32) end, reps)))
print(("small round trip (both values) us %.2f"):format(us(smallRound, 20000)))
