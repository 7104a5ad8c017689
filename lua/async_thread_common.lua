-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_thread_common.lua: the thread backend's code that both sides run:
-- its constants and the check of what may travel through a Channel. It is
-- source text, compiled by the game's side (async_thread.lua) and prepended
-- to each worker's (async_thread_worker.lua), since a love.thread gets its
-- code as source and cannot require a module from inside a .love.

return [==[
local MSG = ... -- async_messages.lua's table
local C = {
  CALL = 1, NOOP = 2, QUIT = 3, SUB = 4,     -- request kinds (SUB: awaitAll parts waiting)
  OK = 0, FAILED = 1, CANCELLED = 2,         -- result kinds
  QUEUED = 0, RUNNING = 1, STOPPED = 2,      -- record states (STOPPED: cancelled before it ran)
  MAXDEPTH = 128,
  CHUNK = 1024,        -- records per shared-memory chunk: int32 state, int32 stop
  MAXSLOTS = 1024,     -- worker slots in shared memory (the pool's maximum is below)
  SLOT = 8,            -- doubles per worker slot: see the indexes below
  S_JOBS = 0, S_TAKEN = 1, S_BUSY = 2, S_IDLE = 3, S_MEMORY = 4, S_RUNNING = 5,
  NAME = MSG.THREAD_BACKEND,
  -- ctl (int32 x 2): [0] stops asked of the workers, [1] shutdown's deadline
  -- passed (the workers' stop hook then stops interpreted Lua).
  CTL_STOPS = 0, CTL_HARD = 1,
  QUIT_GRACE = 0.5, -- seconds a closing state gives running jobs before the hook
  HOOK_GRACE = 0.1, -- seconds after the hook before the jobs left are abandoned
  STOP_MSG = MSG.STOPPED,
  -- Where LÖVE objects may not go (the native codec's words): share, a
  -- definition's upvalues, and a worker's await (arguments and results).
  LOVE_CALL_ONLY = MSG.LOVE_CALL_ONLY,
  LOVE_NOT_AWAIT = MSG.VALUE_LOVE_OBJECT:format(MSG.LOVE_NOT_AWAIT),
}

local function isLoveObject(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "typeOf") ~= nil
end

local function where(path, depth)
  local parts = {}
  for i = 1, depth do
    local k = path[i]
    if type(k) == "string" then parts[i] = "." .. k:sub(1, 30)
    elseif type(k) == "number" then parts[i] = ("[%.14g]"):format(k)
    else parts[i] = MSG.VALUE_KEY_STEP:format(type(k)) end
  end
  -- Cut as codec.c's fail does (a char[160]), so both backends name a deep
  -- path alike.
  return table.concat(parts):sub(1, 159)
end

-- Returns what is wrong with v (the codec's words), or nil. `noLove`: why
-- a LÖVE object is refused here, or nil where one may go.
local function walk(v, depth, seen, path, noLove)
  local t = type(v)
  if t == "nil" or t == "boolean" or t == "number" or t == "string" then return nil end
  if t == "table" then
    if depth >= C.MAXDEPTH then return MSG.VALUE_TOO_DEEP:format(C.MAXDEPTH) end
    if seen[v] then
      return MSG.VALUE_SHARED:format(C.NAME)
    end
    seen[v] = true
    for k, x in next, v do
      path[depth + 1] = k
      local w = walk(k, depth + 1, seen, path, noLove) or walk(x, depth + 1, seen, path, noLove)
      if w then return w end
    end
    path[depth + 1] = nil
    return nil
  end
  if t == "userdata" then
    if isLoveObject(v) then return noLove end
    return MSG.VALUE_USERDATA
  end
  return MSG.VALUE_TYPE:format(t)
end

-- Checks t[first..last] as the values of one message; returns
-- "label i (at .path) what" for the first that cannot travel, or nil.
-- `noLove` (C.LOVE_*): LÖVE objects are refused, saying that.
function C.check(t, first, last, label, noLove)
  -- Numbers, strings, booleans and nils, the common case, need no walk.
  local i = first
  while i <= last do
    local tv = type(t[i])
    if tv == "table" or tv == "userdata" or tv == "function" or tv == "thread" or tv == "cdata" then break end
    i = i + 1
  end
  if i > last then return nil end
  local seen, path = {}, {}
  for i = first, last do
    local w = walk(t[i], 0, seen, path, noLove)
    if w then
      local depth = #path
      -- path holds the steps down to the failure; deeper ones were cleared
      -- on the way back only for finished tables, so trim to the live part.
      -- type(), not == nil: a cdata key's __eq would run (and may raise).
      while depth > 0 and type(path[depth]) == "nil" do depth = depth - 1 end
      if depth > 0 then return MSG.VALUE_AT:format(label, i - first + 1, where(path, depth), w) end
      return MSG.VALUE:format(label, i - first + 1, w)
    end
  end
  return nil
end

-- A copy of checked values, as a trip through a Channel would make (used
-- where a job awaits a job in the same worker). Metatables are dropped.
local function copy(v)
  if type(v) ~= "table" then return v end
  local r = {}
  for k, x in next, v do r[copy(k)] = copy(x) end
  return r
end
C.copy = copy
C.MSG = MSG

return C
]==]
