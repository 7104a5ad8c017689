-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_loader.lua: the loader's check of a module file before loading it
-- (async_loader.damage): a whole module passes; one cut short, a file that is
-- not a library, a PE file whose sections or symbols run past its end, and a
-- module that async_native.manifest beside it does not vouch for are refused
-- with a reason naming the file. Inside LÖVE the manifest's SHA-1 is checked
-- too (love.data.hash); plain LuaJIT checks the size only.

local loader = require "async_loader"

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- A folder of its own (the manifest's name is fixed), or nil where the
-- shell cannot make one.
local function tempDir()
  local base = os.tmpname()
  os.remove(base)
  os.execute(('mkdir "%s"'):format(base))
  local probe = io.open(base .. "/probe", "wb")
  if not probe then return nil end
  probe:close()
  os.remove(base .. "/probe")
  return base
end

local function cleanup(dir, names)
  for _, n in ipairs(names) do os.remove(dir .. "/" .. n) end
  os.remove(dir)
end

-- The built module: found beside async.lua, under its platform's extension.
local function builtModule()
  local lua = package.searchpath("async", package.path)
  local dir = lua:match("^(.-)[^/\\]*$")
  for _, ext in ipairs({ ".so", ".dll" }) do
    local f = io.open(dir .. "async_native" .. ext, "rb")
    if f then f:close(); return dir .. "async_native" .. ext end
  end
end

-- A minimal PE file: one section of 4096 bytes at 512, a symbol table of
-- 10 entries at 4608 and a string table of 100 bytes after it.
local function fakePE()
  local function u16(v) return string.char(v % 256, math.floor(v / 256) % 256) end
  local function u32(v) return u16(v % 65536) .. u16(math.floor(v / 65536)) end
  local h = "MZ" .. ("\0"):rep(0x3C - 2) .. u32(64)
  h = h .. "PE\0\0" .. u16(0x8664) .. u16(1) .. u32(0) .. u32(4608) .. u32(10) .. u16(0) .. u16(0)
  h = h .. ("\0"):rep(16) .. u32(4096) .. u32(512) .. ("\0"):rep(16) -- the section header (40 bytes)
  h = h .. ("\0"):rep(512 - #h) .. ("\0"):rep(4096) .. ("\0"):rep(180) .. u32(100) .. ("\0"):rep(96)
  return h
end

test("the loader refuses a module file cut short or not a library, naming it", function()
  local dir = tempDir()
  if dir == nil then return end -- no shell to make a folder (a cross run)
  local mod = builtModule()
  ok(mod, "the built module is beside async.lua")
  eq(loader.damage(mod), nil, "the built module is whole")
  local bytes = slurp(mod)
  local names = { "half.so", "head.so", "text.so", "pe.dll", "pecut.dll", "pesym.dll", "arch.so" }
  spit(dir .. "/half.so", bytes:sub(1, math.floor(#bytes / 2)))
  spit(dir .. "/head.so", bytes:sub(1, 4000))
  spit(dir .. "/text.so", "not a library\n")
  local pe = fakePE()
  spit(dir .. "/pe.dll", pe)
  spit(dir .. "/pecut.dll", pe:sub(1, 2000))
  spit(dir .. "/pesym.dll", pe:sub(1, #pe - 50))
  local function refused(name, what)
    local why = loader.damage(dir .. "/" .. name)
    ok(why and why:find(dir .. "/" .. name .. ": ", 1, true), name .. ": the reason names the file: " .. tostring(why))
    ok(why:find(what, 1, true), name .. ": expected '" .. what .. "', got: " .. why)
  end
  if bytes:sub(1, 4) == "\127ELF" then
    refused("half.so", "cut short or damaged")
    refused("head.so", "cut short or damaged")
    -- the same module marked for another architecture (e_machine): named so
    local other = jit.arch == "arm64" and "\62\0" or "\183\0"
    spit(dir .. "/arch.so", bytes:sub(1, 18) .. other .. bytes:sub(21))
    refused("arch.so", "built for " .. (jit.arch == "arm64" and "x64" or "arm64") .. ", not for this machine's " .. jit.arch)
  end
  refused("text.so", "not a shared library")
  eq(loader.damage(dir .. "/pe.dll"), nil, "a whole PE file")
  refused("pecut.dll", "a section ends at byte 4608")
  refused("pesym.dll", "its string table ends at byte")
  cleanup(dir, names)
end)

test("the loader checks a module against async_native.manifest beside it", function()
  local dir = tempDir()
  if dir == nil then return end
  local bytes = slurp(builtModule())
  local names = { "m.so", "async_native.manifest" }
  spit(dir .. "/m.so", bytes)
  local function manifest(text) spit(dir .. "/async_native.manifest", text) end
  manifest(("m.so %d 0000000000000000000000000000000000000000\n"):format(#bytes + 1))
  ok(tostring(loader.damage(dir .. "/m.so")):find("bytes where async_native.manifest says " .. (#bytes + 1), 1, true),
    "a size the manifest does not give")
  manifest(("  m.so  %d  0000000000000000000000000000000000000000  \r\n"):format(#bytes + 1))
  ok(tostring(loader.damage(dir .. "/m.so")):find("bytes where async_native.manifest says", 1, true),
    "a line with spaces around its fields and a CRLF is read")
  manifest("other.so 1 00\n")
  ok(tostring(loader.damage(dir .. "/m.so")):find("does not list it", 1, true), "a manifest that does not list it")
  manifest(("other.so 1 00\nm.so %d 0000000000000000000000000000000000000000\n"):format(#bytes))
  if type(love) == "table" and love.data then
    ok(tostring(loader.damage(dir .. "/m.so")):find("SHA-1 differs", 1, true), "a hash the manifest does not give")
    local sha = love.data.encode("string", "hex", love.data.hash("sha1", bytes))
    manifest(("m.so %d %s\n"):format(#bytes, sha))
    eq(loader.damage(dir .. "/m.so"), nil, "the manifest's size and hash")
  else
    eq(loader.damage(dir .. "/m.so"), nil, "outside LÖVE the size alone is checked")
  end
  cleanup(dir, names)
end)
