-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_loader.lua: picks the backend behind async.lua. The native module
-- (async_native) where it can be loaded: through require, under its platform
-- name (async_native-<os>-<arch>.so/.dll) on package.cpath, next to main.lua,
-- next to a fused executable, or copied out of the .love into the save
-- directory; otherwise, inside LÖVE, the love.thread backend (async_thread.lua),
-- with one line on stderr saying why (async.backendReason keeps it).
-- ASYNC_BACKEND=native|thread (or async.load{backend = ...}) asks for one.
local M = {}
local MSG = require(((...) or ""):match("^(.-)[^.]*$") .. "async_messages")

local OS_NAMES = { Windows = "windows", Linux = "linux", OSX = "macos", BSD = "bsd", POSIX = "posix" }

--- The file name of the native module built for this OS and architecture,
--- e.g. async_native-linux-x64.so, async_native-windows-x64.dll.
function M.platformName()
  local os = jit and OS_NAMES[jit.os] or "unknown"
  local arch = jit and jit.arch or "unknown"
  return ("async_native-%s-%s%s"):format(os, arch, os == "windows" and ".dll" or ".so")
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- ---- checking a module file before loading it ------------------------------------
-- A file cut short (a copy interrupted, a full disk) crashes the process
-- inside dlopen (SIGBUS when the loader maps past its end), so a file is
-- checked first: against async_native.manifest beside it (scripts/release.sh
-- writes "<name> <size> <sha1 hex>" lines) where there is one, else by its
-- own header: every part an ELF or PE header names must lie inside the file.

local function le(s, at, n) -- unsigned little-endian integer of n bytes at 0-based offset `at`
  local v = 0
  for i = n, 1, -1 do v = v * 256 + (s:byte(at + i) or 0) end
  return v
end

-- ELF e_machine for each jit.arch: a module for another architecture is
-- named as such, where dlopen says only "No such file or directory".
local ELF_MACHINE = { x64 = 62, x86 = 3, arm64 = 183, arm = 40 }
local function elfArch(h)
  local m = le(h, 0x12, 2)
  for arch, v in pairs(ELF_MACHINE) do if v == m then return arch end end
  return MSG.MODULE_ELF_MACHINE:format(m)
end

-- Why an ELF file is not whole, or nil.
local function elfDamage(f, size, h)
  local wide = h:byte(5) == 2 -- ELFCLASS64
  if h:byte(6) ~= 1 then return nil end -- big-endian: not one of ours, left to dlopen
  local phoff, shoff, phentsize, phnum, shentsize, shnum
  if wide then
    phoff, shoff = le(h, 0x20, 8), le(h, 0x28, 8)
    phentsize, phnum, shentsize, shnum = le(h, 0x36, 2), le(h, 0x38, 2), le(h, 0x3A, 2), le(h, 0x3C, 2)
  else
    phoff, shoff = le(h, 0x1C, 4), le(h, 0x20, 4)
    phentsize, phnum, shentsize, shnum = le(h, 0x2A, 2), le(h, 0x2C, 2), le(h, 0x2E, 2), le(h, 0x30, 2)
  end
  if phoff + phentsize * phnum > size then return MSG.MODULE_PROGRAM_HEADERS:format(phoff + phentsize * phnum) end
  if shoff + shentsize * shnum > size then return MSG.MODULE_SECTION_HEADERS:format(shoff + shentsize * shnum) end
  f:seek("set", phoff)
  local ph = f:read(phentsize * phnum) or ""
  for i = 0, phnum - 1 do
    local at = i * phentsize
    if le(ph, at, 4) == 1 then -- PT_LOAD: mapped from the file
      local off, filesz
      if wide then off, filesz = le(ph, at + 8, 8), le(ph, at + 32, 8) else off, filesz = le(ph, at + 4, 4), le(ph, at + 16, 4) end
      if off + filesz > size then return MSG.MODULE_SEGMENT:format(off + filesz) end
    end
  end
  return nil
end

-- Why a PE file (a Windows DLL) is not whole, or nil.
local function peDamage(f, size, h)
  local pe = le(h, 0x3C, 4)
  if pe + 24 > size then return MSG.MODULE_PE_HEADER:format(pe) end
  f:seek("set", pe)
  local coff = f:read(24) or ""
  if coff:sub(1, 4) ~= "PE\0\0" then return MSG.MODULE_PE_SIGNATURE end
  local nsec, optsize = le(coff, 6, 2), le(coff, 20, 2)
  local sec = pe + 24 + optsize
  if sec + 40 * nsec > size then return MSG.MODULE_SECTION_TABLE:format(sec + 40 * nsec) end
  f:seek("set", sec)
  local t = f:read(40 * nsec) or ""
  for i = 0, nsec - 1 do
    local raw, at = le(t, i * 40 + 16, 4), le(t, i * 40 + 20, 4)
    if raw > 0 and at + raw > size then return MSG.MODULE_SECTION:format(at + raw) end
  end
  -- The COFF symbol table and its string table (mingw's DLLs keep them),
  -- usually the file's last bytes.
  local symtab, nsym = le(coff, 12, 4), le(coff, 16, 4)
  if symtab > 0 then
    local strtab = symtab + 18 * nsym
    if strtab + 4 > size then return MSG.MODULE_SYMBOL_TABLE:format(strtab + 4) end
    f:seek("set", strtab)
    local strsize = le(f:read(4) or "", 0, 4)
    if strtab + strsize > size then return MSG.MODULE_STRING_TABLE:format(strtab + strsize) end
  end
  return nil
end

-- A manifest's line for `name`: size, sha1; false when the manifest
-- (`text`) does not list it; nil when there is no manifest.
local function listed(text, name)
  if text == nil then return nil end
  for line in text:gmatch("[^\r\n]+") do
    local n, size, sha = line:match("^%s*(%S+)%s+(%d+)%s+(%x+)%s*$")
    if n == name then return tonumber(size), sha:lower() end
  end
  return false
end

local function manifestEntry(dir, name)
  local m = io.open(dir .. "async_native.manifest", "rb")
  if not m then return nil end
  local text = m:read("*a") or ""
  m:close()
  return listed(text, name)
end

local function sha1hex(data)
  return love.data.encode("string", "hex", love.data.hash("sha1", data))
end

local UNLISTED = MSG.MODULE_UNLISTED

-- Why a module of `size` bytes does not match the manifest's line for it
-- (want, sha: see listed), or nil. bytes() gives its content, read only
-- for the hash, which needs LÖVE (love.data.hash): plain LuaJIT checks the
-- size alone.
local function againstManifest(want, sha, size, bytes)
  if want == false then return UNLISTED end
  if want == nil then return nil end
  if size ~= want then return MSG.MODULE_SIZE:format(size, want) end
  if type(love) == "table" and type(love.data) == "table" and love.data.hash and sha1hex(bytes()) ~= sha then
    return MSG.MODULE_SHA1
  end
  return nil
end

-- Why `data`, the module `name` read from the game's archive at folder
-- `dir`, must not be copied out and loaded, or nil: the manifest beside it
-- in the archive must vouch for it, where there is one.
local function archivedDamage(dir, name, data)
  local fs = love.filesystem
  local text = fs.getInfo(dir .. "async_native.manifest") and fs.read(dir .. "async_native.manifest")
  local want, sha = listed(text or nil, name)
  return againstManifest(want, sha, data:getSize(), function() return data end)
end

local NOT_A_LIBRARY = MSG.MODULE_NOT_ELF_PE_MACHO
-- Mach-O (64- and 32-bit, little-endian) and universal: not checked further.
local MACHO = { ["\207\250\237\254"] = true, ["\206\250\237\254"] = true, ["\202\254\186\190"] = true }

--- Why the module file at `path` must not be loaded (a sentence naming
--- it), or nil when it may be.
function M.damage(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  local dir, name = path:match("^(.-)([^/\\]*)$")
  local want, sha = manifestEntry(dir, name)
  local why = againstManifest(want, sha, size, function()
    f:seek("set", 0)
    return f:read("*a") or ""
  end)
  if why == nil then
    f:seek("set", 0)
    local h = f:read(64) or ""
    local bad
    local own = jit and ELF_MACHINE[jit.arch]
    if h:sub(1, 4) == "\127ELF" and #h >= 52 and h:byte(6) == 1 and own and le(h, 0x12, 2) ~= own then
      why = MSG.MODULE_OTHER_ARCH:format(elfArch(h), jit.arch)
    elseif h:sub(1, 4) == "\127ELF" and #h >= 52 then
      bad = elfDamage(f, size, h)
    elseif h:sub(1, 2) == "MZ" and #h >= 64 then
      bad = peDamage(f, size, h)
    elseif not MACHO[h:sub(1, 4)] then
      bad = NOT_A_LIBRARY
    end
    if bad == NOT_A_LIBRARY then
      why = MSG.MODULE_NOT_LIBRARY:format(bad)
    elseif bad then
      why = MSG.MODULE_CUT_SHORT:format(bad, size)
    end
  end
  f:close()
  return why and MSG.PREFIXED:format(path, why) or nil
end

-- Loads the C module at `path` (any file name: the entry point is always
-- luaopen_async_native). Returns the module, or nil and why.
local function loadFile(path, tried)
  if jit and jit.os == "Windows" then path = path:gsub("/", "\\") end -- LoadLibrary wants backslashes
  if not exists(path) then return nil end
  -- One attempt per file: the same folder can come up twice (the game's
  -- folder seen as its source and as LÖVE's real directory of a file).
  tried.paths = tried.paths or {}
  if tried.paths[path] then return nil end
  tried.paths[path] = true
  local bad = M.damage(path)
  if bad then
    tried[#tried + 1] = bad
    return nil
  end
  local open, err = package.loadlib(path, "luaopen_async_native")
  if not open then
    err = tostring(err):gsub("%s+$", "")
    tried[#tried + 1] = err:find(path, 1, true) and err or MSG.PREFIXED:format(path, err) -- dlerror names it
    return nil
  end
  local ok, mod = pcall(open, "async_native")
  if not ok then
    tried[#tried + 1] = MSG.PREFIXED:format(path, tostring(mod))
    return nil
  end
  return mod
end

local function sha1(data) return love.data.encode("string", "hex", love.data.hash("sha1", data)) end

-- Copies the binary `data` (from `rel` in the game) to the save directory,
-- under a folder named by its content, so an updated game never loads a
-- stale copy; returns the copy's full path, or nil. A copy already there is
-- used only when it is whole: one cut short (a first start killed while
-- copying, a full disk, two starts at once) would crash the game when
-- loaded, at every start. The copy is written under a name of its own and
-- renamed into place, so a game loading the copy never sees it half
-- written; where the rename fails (Windows, a copy in use), that name is
-- loaded instead.
local function extract(data, name, rel, tried)
  local fs = love.filesystem
  local hash = sha1(data)
  local dir = "async_native/" .. hash:sub(1, 16)
  local dest = dir .. "/" .. name
  local base = fs.getSaveDirectory() .. "/"
  local info = fs.getInfo(dest)
  if info and info.size == data:getSize() then
    local have = fs.read("data", dest)
    if have and sha1(have) == hash then return base .. dest end
  end
  if info then os.remove(base .. dest) end -- a damaged copy: rename would not replace it on Windows
  fs.createDirectory(dir)
  -- A name no other start uses at once: a table's address, and the clocks.
  local clock = love.timer and love.timer.getTime() or os.time()
  local tmp = ("%s/%s.%s-%.0f-%.0f.tmp"):format(dir, name, tostring({}):match("%x+$") or "0", clock * 1e6 % 1e9, os.clock() * 1e6)
  local ok, err = fs.write(tmp, data)
  if not ok then
    tried[#tried + 1] = MSG.MODULE_NOT_COPIED:format(rel, tostring(err))
    return nil
  end
  if os.rename(base .. tmp, base .. dest) then return base .. dest end
  return base .. tmp
end

-- Candidates for a LÖVE game: next to main.lua (a folder game), next to the
-- executable or the .love, and inside the game (a .love or fused archive),
-- copied to the save directory first since nothing loads from inside a zip.
local function fromLove(names, dirs, tried)
  local fs = love.filesystem
  local places = {}
  if not fs.isFused() then places[#places + 1] = fs.getSource() end
  places[#places + 1] = fs.getSourceBaseDirectory()
  for _, base in ipairs(places) do
    for _, dir in ipairs(dirs) do
      for _, name in ipairs(names) do
        local mod = loadFile(base .. "/" .. dir .. name, tried)
        if mod then return mod end
      end
    end
  end
  for _, dir in ipairs(dirs) do
    local rel = dir .. names[1]
    local info = fs.getInfo and fs.getInfo(rel)
    if info and info.type == "file" then
      local real = fs.getRealDirectory(rel)
      local onDisk = real ~= nil and exists(real .. "/" .. rel)
      local mod = onDisk and loadFile(real .. "/" .. rel, tried)
      if mod then return mod end
      -- In an archive: extract to the save directory under a folder named
      -- by the content, so an updated game never loads a stale copy. (A
      -- file on disk that was refused: a copy of it would be no better.)
      local data = not onDisk and fs.read("data", rel)
      if data and love.data then
        local bad = archivedDamage(dir, names[1], data)
        local dest = not bad and extract(data, names[1], rel, tried)
        if bad then tried[#tried + 1] = MSG.MODULE_IN_ARCHIVE:format(rel, bad) end
        mod = dest and loadFile(dest, tried)
        if mod then return mod end
      end
    end
  end
  return nil
end

-- The game's folders a module may sit in: its top, the folder that async.lua
-- was required from (require "lib.async"), and each folder of
-- love.filesystem.getRequirePath() (a game that sets "lib/?.lua;..." and
-- requires "async").
local function loveDirs(prefix)
  local dirs, seen = {}, {}
  local function add(d)
    if d and not seen[d] then seen[d] = true; dirs[#dirs + 1] = d end
  end
  add("")
  if prefix ~= "" then add((prefix:gsub("%.", "/"))) end
  local fs = love.filesystem
  local ok, rp = pcall(function() return fs.getRequirePath and fs.getRequirePath() end)
  if ok and type(rp) == "string" then
    for template in rp:gmatch("[^;]+") do
      -- "lib/?.lua" and "lib/?/init.lua" give "lib/"; "?.lua" gives "".
      local d = template:match("^(.-)%?")
      if d and not d:find("?", 1, true) and not d:match("^[/\\]") and not d:find("..", 1, true) then add(d) end
    end
  end
  return dirs
end

-- The native module, or nil and a one-line reason.
-- Why a file that `require "async_native"` would load must not be, or nil:
-- the first one on package.cpath, and in LÖVE the game's C require path.
local function requireDamage()
  local paths = {}
  if package.searchpath then paths[1] = package.searchpath("async_native", package.cpath) end
  if type(love) == "table" and type(love.filesystem) == "table" and love.filesystem.getCRequirePath then
    local fs = love.filesystem
    local ext = M.platformName():match("%.%w+$")
    for template in fs.getCRequirePath():gmatch("[^;]+") do
      local rel = template:gsub("%?%?", "async_native" .. ext)
      local real = fs.getInfo(rel) and fs.getRealDirectory(rel)
      if real then paths[#paths + 1] = real .. "/" .. rel end -- not on disk inside a .love: skipped by damage()
    end
  end
  for _, path in ipairs(paths) do
    local bad = M.damage(path)
    if bad then return bad end
  end
  return nil
end

local function loadNative(prefix)
  local tried = {}
  local bad = requireDamage()
  if bad then
    tried[1] = bad
  else
    local ok, mod = pcall(require, "async_native")
    if ok then return mod end
    if not tostring(mod):find("module 'async_native' not found", 1, true) then
      tried[1] = "async_native: " .. tostring(mod):gsub("\n.*", "")
    end
  end
  local platform = M.platformName()
  local stem = platform:gsub("%.%w+$", "")
  -- Under its platform name on package.cpath.
  for template in package.cpath:gmatch("[^;]+") do
    if template:find("?", 1, true) then
      local m = loadFile((template:gsub("%?", stem)), tried)
      if m then return m end
    end
  end
  if type(love) == "table" and type(love.filesystem) == "table" then
    local dirs = loveDirs(prefix)
    local m = fromLove({ platform, "async_native" .. platform:match("%.%w+$") }, dirs, tried)
    if m then return m end
  end
  if #tried == 0 then
    return nil, MSG.MODULE_NOT_FOUND:format(platform)
  end
  return nil, table.concat(tried, "; ")
end

local function threadBackend(prefix)
  return require(prefix .. "async_thread")
end

-- The fallback's notice: on stderr, which is unbuffered, reaches a
-- terminal, a log a launcher keeps, and the console a Windows game opens
-- with t.console = true (LÖVE points both streams at it), where stdout
-- may sit in a buffer until exit.
local function notice(line)
  io.stderr:write(line, "\n")
  if io.stderr.flush then io.stderr:flush() end
end

--- Returns the backend module, its name ("native" or "thread") and, for
--- the thread backend, why the native module is not used (async.backendReason),
--- for `want` ("native", "thread", or nil: ASYNC_BACKEND, else automatic;
--- `how` names where `want` came from). `prefix` is async.lua's module
--- prefix ("" or "lib.").
function M.select(prefix, want, how)
  if want == nil then want, how = os.getenv("ASYNC_BACKEND"), "ASYNC_BACKEND=thread" end
  if want == "" then want = nil end
  if want ~= nil and want ~= "native" and want ~= "thread" then
    error(MSG.UNKNOWN_BACKEND:format(tostring(want)), 0)
  end
  if want == "thread" then
    local t = threadBackend(prefix)
    if not t.available() then error(MSG.THREAD_BACKEND_NEEDS_LOVE, 0) end
    return t, "thread", MSG.THREAD_ASKED:format(how or "async.load{backend = \"thread\"}")
  end
  local mod, why = loadNative(prefix)
  if mod then
    package.loaded.async_native = mod
    return mod, "native"
  end
  if want == "native" then error(MSG.NATIVE_NOT_LOADED:format(why), 0) end
  local t = threadBackend(prefix)
  if not t.available() then error(MSG.NATIVE_NOT_LOADED:format(why), 0) end
  local reason = MSG.NATIVE_REASON:format(M.platformName():match("^async_native%-(.-)%.%w+$"), why)
  notice(MSG.USING_THREAD_BACKEND:format(reason))
  return t, "thread", reason
end

return M
