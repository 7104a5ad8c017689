-- SPDX-License-Identifier: MIT (see LICENSE)
-- wire_format.lua: the wire format has one definition. Parses the C headers
-- (codec_format.h's tag and flag lists, codec.h's depth limit, internal.h's
-- by-reference string limit and payload bit) and checks every Lua copy
-- against them: the table the native module exports (which async_fast.lua
-- reads), and the thread backend's constants, which run where the module
-- cannot load and so are written out (its depth limit, how it cuts a refused
-- value's path, the await chain's notes, shutdown's grace periods).
--   luajit wire_format.lua <source root> <folder with async_native.so>
local root, dir = assert(arg[1], "usage: wire_format.lua <source root> <lua build folder>"), arg[2]
package.cpath = (dir and dir .. "/?.so;" .. dir .. "/?.dll;" or "") .. package.cpath

local failures = 0
local function check(cond, what)
  if not cond then failures = failures + 1; print("[FAIL] " .. what) end
end

local function slurp(path)
  local f = assert(io.open(root .. "/" .. path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local formatH, codecH, internalH = slurp("lua/codec_format.h"), slurp("lua/codec.h"), slurp("lua/internal.h")
local tags, ntags = {}, 0
for name in assert(formatH:match("#define ASYNC_CODEC_TAGS%(X%)([^\n]*)"), "no tag list"):gmatch("X%((%w+)%)") do
  tags[name] = ntags
  ntags = ntags + 1
end
local flags = {}
for name, bit in assert(formatH:match("#define ASYNC_CODEC_FLAGS%(X%)([^\n]*)"), "no flag list"):gmatch("X%((%w+),%s*(%d+)%)") do
  flags[name] = tonumber(bit)
end
local maxDepth = tonumber(codecH:match("#define ASYNC_CODEC_MAX_DEPTH (%d+)"))
local xstrMax = tonumber(internalH:match("#define XSTR_MAX (%d+)"))
local objShift = tonumber(internalH:match("#define OBJ_STR %(%(uint64_t%)1 << (%d+)%)"))
check(ntags >= 9 and tags.OBJ and next(flags) and maxDepth and xstrMax and objShift, "the headers parse")

-- The native module's table, built in C from the same lists.
local okm, native = pcall(require, "async_native")
if okm then
  local f = native.format
  for name, v in pairs(tags) do check(f.tags[name] == v, "native format.tags." .. name .. " == " .. v) end
  for name, v in pairs(f.tags) do check(tags[name] == v, "native format.tags." .. name .. " is in codec_format.h") end
  for name, v in pairs(flags) do check(f.flags[name] == v, "native format.flags." .. name .. " == " .. v) end
  check(f.maxDepth == maxDepth, "native format.maxDepth == ASYNC_CODEC_MAX_DEPTH")
  check(native.max_depth == maxDepth, "native max_depth == ASYNC_CODEC_MAX_DEPTH")
  print("native module: checked")
else
  print("native module: not loaded here (" .. tostring(native):match("[^\n]*") .. ")")
end

-- The FFI path declares none of them itself.
local fast = slurp("lua/async_fast.lua")
check(not fast:find("T_%u+%s*,[^\n]*=%s*%d"), "async_fast.lua declares no tag value")
check(not fast:find("0x2000000000000000"), "async_fast.lua declares no payload bit")
check(fast:find("c:fastApi%(%)"), "async_fast.lua reads the module's format")

-- The thread backend's copies: the depth limit, how a refused value's
-- path is cut (codec.c's fail), the await chain's notes (worker_api.c) and
-- shutdown's grace periods (internal.h).
local common = dofile(root .. "/lua/async_thread_common.lua")
local C = assert(loadstring(common))(dofile(root .. "/lua/async_messages.lua"))
local function same(lua, c, what)
  check(lua ~= nil and lua == c, ("%s: thread backend %s, C %s"):format(what, tostring(lua), tostring(c)))
end
local codecC, workerApiC = slurp("lua/codec.c"), slurp("lua/worker_api.c")
same(C.MAXDEPTH, maxDepth, "MAXDEPTH == ASYNC_CODEC_MAX_DEPTH")
same(tonumber(common:match("k:sub%(1, (%d+)%)")), tonumber(codecC:match('"%.%%%.(%d+)s"')), "a string key's cut")
same(tonumber(common:match("%):sub%(1, (%d+)%)")), tonumber(codecC:match("where%[(%d+)%]")) - 1, "a path's cut")
same(C.QUIT_GRACE, tonumber(internalH:match("#define QUIT_GRACE_S ([%d.]+)")), "QUIT_GRACE == QUIT_GRACE_S")
same(C.HOOK_GRACE, tonumber(internalH:match("#define HOOK_GRACE_S ([%d.]+)")), "HOOK_GRACE == HOOK_GRACE_S")
same(tonumber(slurp("lua/async_thread_worker.lua"):match("AWAITED_NOTES = [^\n]-, (%d+)\n")),
  tonumber(workerApiC:match("#define AWAITED_NOTES (%d+)")), "AWAITED_NOTES")

print(failures == 0 and "wire format: one definition" or ("wire format: %d mismatches"):format(failures))
os.exit(failures == 0 and 0 or 1)
