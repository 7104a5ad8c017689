-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_perfmap.lua: names LuaJIT's compiled traces for perf. perf reads
-- /tmp/perf-<pid>.map ("START SIZE symbol", hex) to symbolise code it finds
-- in no binary; LuaJIT writes none unless built with LUAJIT_USE_PERFTOOLS
-- (Debian's and LÖVE's are not), so each Lua state writes its own traces
-- there: the game's state and every worker's (async.load{perfMap = true}).
local M = {}

-- Runs in each state once. No upvalues: the workers load it from its
-- bytecode (M.code). jobName() gives the definition a worker is running
-- (nil in the game's state, or between jobs); why holds the texts of the
-- refusals (messages.def's PERF_MAP_JIT_OFF and PERF_MAP_OS). Returns true,
-- or nil and why.
local function install(jobName, why)
  local reg = debug.getregistry()
  if reg["async.perfmap"] then return true end
  if type(jit) ~= "table" or not jit.attach or not jit.status() then return nil, why[1] end
  local jutil = require "jit.util"
  local ffi = require "ffi"
  if ffi.os ~= "Linux" then return nil, why[2] end
  -- Another module may have declared getpid already: redeclaring raises.
  pcall(ffi.cdef, "int getpid(void);")
  local path = ("/tmp/perf-%d.map"):format(ffi.C.getpid())
  -- "a" opens with O_APPEND, and a line-buffered file writes each line
  -- shorter than its buffer in one write(2): lines of the states writing
  -- at once do not interleave (a symbol is cut at 1,000 bytes below).
  local f, err = io.open(path, "a")
  if not f then return nil, err end
  f:setvbuf("line", 4096)
  local starts = {}
  local function onTrace(what, tr, func, pc)
    if what == "start" then
      local info = jutil.funcinfo(func, pc)
      -- A file's or a given chunk name's last part; code loaded from a
      -- string has that string as its chunk name: "string" instead.
      local src = tostring(info.source or "?")
      src = src:find("^[@=]") and src:sub(2):match("[^/\\]*$") or "string"
      local def = jobName and jobName()
      -- One line per trace: control bytes (a newline in a definition's
      -- name) would split it, and perf would misread both halves.
      -- At most 1,000 bytes, so that a line fits its file's buffer and
      -- goes out in one write(2): a longer one (a long definition name)
      -- went out in pieces, and another state's line could land between.
      local sym = ("%s%s:%d"):format(def and def .. "@" or "", src, info.currentline or 0):gsub("%c", "?")
      starts[tr] = #sym > 1000 and sym:sub(1, 1000) or sym
    elseif what == "stop" then
      local mc, addr = jutil.tracemc(tr)
      if mc and addr and #mc > 0 then
        f:write(("%x %x lua:%s#%d\n"):format(addr, #mc, starts[tr] or "?", tr))
      end
      starts[tr] = nil
    elseif what == "abort" then
      starts[tr] = nil
    end
  end
  jit.attach(onTrace, "trace")
  reg["async.perfmap"] = { file = f, path = path, onTrace = onTrace } -- keeps both alive with the state
  return true
end

M.install = install

--- The map file of this process (written or not).
function M.path()
  local ffi = require "ffi"
  pcall(ffi.cdef, "int getpid(void);")
  return ("/tmp/perf-%d.map"):format(ffi.C.getpid())
end

--- install's bytecode, which the worker states run at their creation.
function M.code() return string.dump(install) end

return M
