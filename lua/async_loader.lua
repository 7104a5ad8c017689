-- async_loader.lua: picks the backend behind async.lua. The native module
-- (async_native) where it can be loaded: through require, under its platform
-- name (async_native-<os>-<arch>.so/.dll) on package.cpath, next to main.lua,
-- next to a fused executable, or copied out of the .love into the save
-- directory; otherwise, inside LÖVE, the love.thread backend (async_thread.lua),
-- with one printed line saying why. ASYNC_BACKEND=native|thread (or
-- async.load{backend = ...}) asks for one.
local M = {}

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

-- Loads the C module at `path` (any file name: the entry point is always
-- luaopen_async_native). Returns the module, or nil and why.
local function loadFile(path, tried)
  if jit and jit.os == "Windows" then path = path:gsub("/", "\\") end -- LoadLibrary wants backslashes
  if not exists(path) then return nil end
  local open, err = package.loadlib(path, "luaopen_async_native")
  if not open then
    err = tostring(err):gsub("%s+$", "")
    tried[#tried + 1] = err:find(path, 1, true) and err or path .. ": " .. err -- dlerror names it
    return nil
  end
  local ok, mod = pcall(open, "async_native")
  if not ok then
    tried[#tried + 1] = path .. ": " .. tostring(mod)
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
    tried[#tried + 1] = "could not copy " .. rel .. " to the save directory: " .. tostring(err)
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
      local mod = real and loadFile(real .. "/" .. rel, tried)
      if mod then return mod end
      -- In an archive: extract to the save directory under a folder named
      -- by the content, so an updated game never loads a stale copy.
      local data = fs.read("data", rel)
      if data and love.data then
        local dest = extract(data, names[1], rel, tried)
        mod = dest and loadFile(dest, tried)
        if mod then return mod end
      end
    end
  end
  return nil
end

-- The native module, or nil and a one-line reason.
local function loadNative(prefix)
  local ok, mod = pcall(require, "async_native")
  if ok then return mod end
  local tried = {}
  if not tostring(mod):find("module 'async_native' not found", 1, true) then
    tried[1] = "async_native: " .. tostring(mod):gsub("\n.*", "")
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
    local dirs = { "" }
    if prefix ~= "" then dirs[2] = prefix:gsub("%.", "/") end
    local m = fromLove({ platform, "async_native" .. platform:match("%.%w+$") }, dirs, tried)
    if m then return m end
  end
  if #tried == 0 then
    return nil, ("neither async_native nor %s was found"):format(platform)
  end
  return nil, table.concat(tried, "; ")
end

local function threadBackend(prefix)
  return require(prefix .. "async_thread")
end

--- Returns the backend module and its name ("native" or "thread") for
--- `want` ("native", "thread", or nil: ASYNC_BACKEND, else automatic).
--- `prefix` is async.lua's module prefix ("" or "lib.").
function M.select(prefix, want)
  want = want or os.getenv("ASYNC_BACKEND")
  if want == "" then want = nil end
  if want ~= nil and want ~= "native" and want ~= "thread" then
    error(("async: unknown backend '%s' (expected \"native\" or \"thread\")"):format(tostring(want)), 0)
  end
  if want == "thread" then
    local t = threadBackend(prefix)
    if not t.available() then error("async: the thread backend needs LÖVE (love.thread)", 0) end
    return t, "thread"
  end
  local mod, why = loadNative(prefix)
  if mod then
    package.loaded.async_native = mod
    return mod, "native"
  end
  if want == "native" then error("async: the native module could not be loaded: " .. why, 0) end
  local t = threadBackend(prefix)
  if not t.available() then error("async: the native module could not be loaded: " .. why, 0) end
  print(("async: using the thread backend (love.thread): the native module for %s could not be loaded (%s)")
    :format(M.platformName():match("^async_native%-(.-)%.%w+$"), why))
  return t, "thread"
end

return M
