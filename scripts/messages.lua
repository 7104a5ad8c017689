-- SPDX-License-Identifier: MIT (see LICENSE)
-- messages.lua: writes lua/async_messages.lua from lua/messages.def, the one
-- table of user-facing messages (the C module includes the .def itself).
--   luajit scripts/messages.lua [root]          write it
--   luajit scripts/messages.lua --check [root]  exit 1 if the committed file
--     differs from what the .def gives, a key is used by no file of lua/, a
--     file of lua/ uses a key the .def lacks, or a file of lua/ raises,
--     returns or prints a text of its own (ctest lua_messages)
local check = arg[1] == "--check"
local root = (check and arg[2] or not check and arg[1]) or "."

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- The .def: ASYNC_MSG(KEY, "C string literal") a line; /* Heading */ lines
-- become comments.
local entries, keys = {}, {}
for line in slurp(root .. "/lua/messages.def"):gmatch("[^\n]+") do
  local key, lit = line:match('^ASYNC_MSG%(([%u%d_]+), (".*")%)$')
  if key then
    -- C's escapes that the .def uses (\n, \", \\) read the same in Lua.
    local text = assert(loadstring("return " .. lit), "not one string literal: " .. line)()
    assert(not keys[key], "key twice: " .. key)
    keys[key] = text
    entries[#entries + 1] = { key = key, text = text }
  elseif line:match("^/%* [%u]") and not line:match("SPDX") and not line:find("messages.def:", 1, true) then
    entries[#entries + 1] = { heading = line:match("^/%* (.-) %*/$") }
  else
    assert(line:match("^/?%*") or line:match("^%s*%*"), "unreadable line: " .. line)
  end
end

local function quote(s)
  return '"' .. s:gsub('[\\"%c]', function(c)
    if c == "\n" then return "\\n" elseif c == "\\" or c == '"' then return "\\" .. c end
    return ("\\%03d"):format(c:byte())
  end) .. '"'
end

local out = {
  "-- SPDX-License-Identifier: MIT (see LICENSE)",
  "-- async_messages.lua: every message a game can see, from either backend, by",
  "-- key (MSG.KEY). Written by scripts/messages.lua from lua/messages.def, which",
  "-- the C module includes: edit the .def, then run the script.",
  "return {",
}
for _, e in ipairs(entries) do
  if e.heading then out[#out + 1] = "  -- " .. e.heading
  else out[#out + 1] = ("  %s = %s,"):format(e.key, quote(e.text)) end
end
out[#out + 1] = "}"
local text = table.concat(out, "\n") .. "\n"
local target = root .. "/lua/async_messages.lua"

if not check then
  local f = assert(io.open(target, "wb"))
  f:write(text)
  f:close()
  print("wrote " .. target)
  return
end

local bad = 0
local function fail(what) bad = bad + 1; print("[FAIL] " .. what) end
local ok, committed = pcall(slurp, target)
if not ok or committed ~= text then fail("lua/async_messages.lua differs from lua/messages.def: run luajit scripts/messages.lua") end

-- Where a message is raised, returned or printed with its text (words, not
-- a bare "%s" or a name) written in place: the ways lua/ does so.
local W = '%s*"[^"\n]*%a %a'
local INLINE = {
  c = { "luaL_error%(L," .. W, "lua_pushfstring%(L," .. W, "lua_pushstring%(L," .. W, "fprintf%(stderr," .. W,
    "snprintf%([^;]-," .. W, "fail%(e," .. W, "dfail%(&?d," .. W, "fail_res%([^;]-," .. W, "strdup%(" .. W },
  lua = { "error%(%(?" .. W, "misuse%(%(?" .. W, "fail%(%(?" .. W, "failAt%(%d," .. W, "callFail%(" .. W,
    "io%.stderr:write%(%(?" .. W, "return nil, %(?" .. W, "tried%[#tried %+ 1%] =" .. W, "notice%(" .. W },
}
local function inline(name, src, pats)
  for _, pat in ipairs(pats) do
    local at = 1
    while true do
      local s, e = src:find(pat, at)
      if not s then break end
      local bol = src:sub(1, s):match(".*\n()") or 1
      local line = src:sub(bol, (src:find("\n", e, true) or #src + 1) - 1)
      if not line:match("^%s*%-%-") and not line:match("^%s*/?%*") then
        local _, l = src:sub(1, s):gsub("\n", "")
        local text = src:match('^[^"]*"[^"\n]*"?', s):gsub("%s+", " ")
        fail(("lua/%s:%d writes a message in place (put it in lua/messages.def): %s"):format(name, l + 1, text))
      end
      at = e + 1
    end
  end
end

-- Uses: MSG(KEY) in the C files, MSG.KEY in the Lua files.
local used = {}
local p = io.popen('ls "' .. root .. '/lua"')
for name in p:lines() do
  local c = name:match("%.[ch]$") and name ~= "messages.h" and name ~= "messages.c"
  local lua = name:match("%.lua$") and name ~= "async_messages.lua"
  if c or lua then
    local src = slurp(root .. "/lua/" .. name)
    inline(name, src, c and INLINE.c or INLINE.lua)
    for key in src:gmatch(c and "MSG%(([%u%d_]+)%)" or "MSG%.([%u%d_]+)") do
      used[key] = true
      if keys[key] == nil then fail(("lua/%s uses %s, which lua/messages.def lacks"):format(name, key)) end
    end
  end
end
p:close()
for _, e in ipairs(entries) do
  if e.key and not used[e.key] then fail(e.key .. " is used by no file of lua/") end
end
local n = 0
for _ in pairs(keys) do n = n + 1 end
print(bad == 0 and ("messages: %d keys, one table, all used"):format(n) or ("messages: %d problems"):format(bad))
os.exit(bad == 0 and 0 or 1)
