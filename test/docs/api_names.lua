-- SPDX-License-Identifier: MIT (see LICENSE)
-- api_names.lua: the LuaLS annotation file (library/async.lua) declares
-- exactly the names the library exposes, game side and job side, so that an
-- editor's completion neither misses a function nor offers one that is not
-- there. Usage: luajit api_names.lua <built lua dir> <library/async.lua>
local luadir, metafile = assert(arg[1], "lua dir"), assert(arg[2], "library file")
package.path = luadir .. "/?.lua;" .. package.path
package.cpath = luadir .. "/?.so;" .. luadir .. "/?.dll;" .. package.cpath -- .dll: Windows (under Wine)

-- Names per class: `---@field name` under a `---@class`, and the functions
-- and assignments on the local table that follows the class line.
local function declared(path)
  local classes, varClass, current = {}, {}, nil
  local function add(class, name)
    classes[class] = classes[class] or {}
    classes[class][name] = true
  end
  local pendingClass
  for line in io.lines(path) do
    local class = line:match("^%-%-%-@class%s+([%w_.]+)")
    if class then
      current, pendingClass = class, class
      classes[class] = classes[class] or {}
    end
    local field = line:match("^%-%-%-@field%s+([%w_]+)")
    if field and current then add(current, field) end
    local var = line:match("^local%s+([%w_]+)%s*=%s*{%s*}")
    if var and pendingClass then varClass[var], pendingClass = pendingClass, nil end
    local v, name = line:match("^function%s+([%w_]+)[.:]([%w_]+)%s*%(")
    if not v then v, name = line:match("^([%w_]+)%.([%w_]+)%s*=") end
    if v and varClass[v] then add(varClass[v], name) end
  end
  return classes
end

local function keys(t, skipMeta)
  local s = {}
  for k in pairs(t) do
    if not (skipMeta and tostring(k):match("^__")) then s[tostring(k)] = true end
  end
  return s
end

local failures = 0
local function compare(class, decl, real)
  decl = decl or {}
  local missing, extra = {}, {}
  for k in pairs(real) do if not decl[k] then missing[#missing + 1] = k end end
  for k in pairs(decl) do if not real[k] then extra[#extra + 1] = k end end
  table.sort(missing) table.sort(extra)
  if #missing + #extra == 0 then
    local n = 0 for _ in pairs(real) do n = n + 1 end
    print(("ok   %-18s %d names"):format(class, n))
  else
    failures = failures + 1
    print(("FAIL %-18s not declared: {%s}; declared but absent: {%s}"):format(
      class, table.concat(missing, ", "), table.concat(extra, ", ")))
  end
end

-- The file must also be what LuaLS can read: valid Lua (a stray `return`
-- mid-file is a syntax error the name scan above would not notice) whose
-- `---@` lines each start with an annotation tag.
local chunk, syntaxErr = loadfile(metafile)
if not chunk then failures = failures + 1 print("FAIL library file is not valid Lua: " .. syntaxErr) end
local lineNo = 0
for line in io.lines(metafile) do
  lineNo = lineNo + 1
  if line:match("^%-%-%-@") and not line:match("^%-%-%-@%a+") then
    failures = failures + 1
    print(("FAIL %s:%d: an annotation without a tag: %s"):format(metafile, lineNo, line))
  end
end

local decl = declared(metafile)
local async = require "async"
async.load(1)

local asyncKeys = keys(async)
-- backendReason is nil on the native backend: declared, but not in the table.
if async.backend == "native" and async.backendReason == nil then asyncKeys.backendReason = true end
compare("async", decl["async"], asyncKeys)
compare("async.Ensure", decl["async.Ensure"], keys(async.ensure))
local buf = async.newBuffer(8)
compare("async.Buffer", decl["async.Buffer"], keys(debug.getmetatable(buf).__index))
local stats = async.stats()
local statKeys = keys(stats)
-- defs is filled when read, through the table's metatable: not in pairs.
if type(stats.defs) == "table" then statKeys.defs = true end
compare("async.Stats", decl["async.Stats"], statKeys)
compare("async.WorkerStats", decl["async.WorkerStats"], keys(stats.workers[1]))

-- The job side: a job returns the names of its `async` and of a buffer it
-- made (a job's buffers are the same type as the game's).
async.define("api_names_job", function()
  local a, b = {}, {}
  for k in pairs(async) do a[#a + 1] = k end
  for k in pairs(debug.getmetatable(async.newBuffer(8)).__index) do b[#b + 1] = k end
  return a, b
end)
local jobNames, jobBuf
local h = async.call({ success = function(a, b) jobNames, jobBuf = a, b end,
  error = function(e, tb) error(tostring(e) .. "\n" .. tostring(tb)) end }, "api_names_job")
local function set(list) local s = {} for _, k in ipairs(list) do s[k] = true end return s end

-- A handle is a cdata on the FFI path and a userdata on the C API path:
-- its declared methods must be there and callable either way.
local handleDecl = decl["async.Handle"] or {}
local hasAll = true
for name in pairs(handleDecl) do
  local ok, f = pcall(function() return h[name] end)
  if not ok or type(f) ~= "function" then hasAll = false print("FAIL async.Handle has no method " .. name) end
end
if hasAll then print("ok   async.Handle       declared methods present") else failures = failures + 1 end

while not jobNames do async.update() end
compare("async.Job", decl["async.Job"], set(jobNames))
compare("async.Buffer (job)", decl["async.Buffer"], set(jobBuf))

local group = async.map(nil, "api_names_job", { 1 })
compare("async.Group", decl["async.Group"], keys(getmetatable(group), true))
async.shutdown()

-- Ends by returning (an error on a mismatch), not os.exit: the Lua state
-- is then closed, so LeakSanitizer sees the buffers above freed.
if failures > 0 then error("api names: " .. failures .. " mismatch(es)", 0) end
print("api names: all match")
