-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_thread_common.lua: the thread backend's code that both sides run:
-- its constants and the check of what may travel through a Channel. It is
-- source text, compiled by the game's side (async_thread.lua) and prepended
-- to each worker's (async_thread_worker.lua), since a love.thread gets its
-- code as source and cannot require a module from inside a .love.

return [==[
local MSG = ... -- async_messages.lua's table
-- What travels (each value a Channel carries costs a conversion on both
-- sides, so a message's fixed part is one number, its head):
--   a call      { head(record, 0, nargs), snapshot number, name, args... }
--   its result  { head(record, kind, count), values..., start, end, worker slot }
--               (FAILED: error, traceback; the times and slot only if it ran)
--   QUIT, NOOP  the number alone
--   awaitAll    { SUB, parts, replies, snapshot number, its Channel, record }
local HEAD = 2 ^ 31 -- record numbers stay below it; the rest of a head is kind + 4 * count
local C = {
  QUIT = -1, NOOP = -2, SUB = -3,            -- requests other than calls (SUB: awaitAll parts waiting)
  OK = 0, FAILED = 1, CANCELLED = 2,         -- result kinds
  HEAD = HEAD,
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

-- Exact in a double: a count is at most LuaJIT's 65,500 stack slots.
function C.head(rec, kind, n) return rec + HEAD * (kind + 4 * n) end
function C.split(h)
  local rec = h % HEAD
  local y = (h - rec) / HEAD
  local kind = y % 4
  return rec, kind, (y - kind) / 4
end

-- A message of plain values goes as one string encoded by string.buffer
-- (LuaJIT 2.1 since 2021; LÖVE 11.4's own builds have an older LuaJIT, and
-- send tables): a Channel converts a table value by value, through the Lua
-- API, both ways, which cost several times the encoding ({1..100}: 7x).
local okBuffer, buffer = pcall(require, "string.buffer")
local enc = okBuffer and type(buffer) == "table" and buffer.new() or nil
C.decode = enc and buffer.decode
local PACK_MAX = 8192 -- bytes: a bigger message goes as a table (its string would be that much garbage)

local sawObject -- whether the walk met a LÖVE object (which goes only in a table)

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
    if isLoveObject(v) then
      sawObject = true
      return noLove
    end
    return MSG.VALUE_USERDATA
  end
  return MSG.VALUE_TYPE:format(t)
end

local function plain(v)
  local tv = type(v)
  return tv == "number" or tv == "string" or tv == "boolean" or tv == "nil"
end
-- A long string goes better as it is: the Channel copies it once each way,
-- an encoded message three times more.
local function short(v) return type(v) ~= "string" or #v <= 1024 end

-- Checks t[first..last] as the values of one message; returns
-- "label i (at .path) what" for the first that cannot travel, or nil and
-- whether the message may go encoded (C.pack). `noLove` (C.LOVE_*): LÖVE
-- objects are refused, saying that.

function C.check(t, first, last, label, noLove)
  -- Numbers, strings, booleans and nils, the common case, need no walk.
  -- Up to four values without a loop: a loop here, run on every call, keeps
  -- the JIT from compiling the game's loop of calls into one trace. (The
  -- slots after `last` are nil or plain in every message checked.)
  if last - first < 4 and plain(t[first]) and plain(t[first + 1]) and plain(t[first + 2])
      and plain(t[first + 3]) then
    return nil, short(t[first]) and short(t[first + 1]) and short(t[first + 2]) and short(t[first + 3])
  end
  local i = first
  while i <= last do
    local tv = type(t[i])
    if tv == "table" or tv == "userdata" or tv == "function" or tv == "thread" or tv == "cdata" then break end
    i = i + 1
  end
  if i > last then return nil, false end
  local seen, path = {}, {}
  sawObject = false
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
  return nil, not sawObject
end

-- The message t as it goes on a Channel: encoded where C.check allowed it,
-- string.buffer is here and takes it (its nesting limit is below
-- C.MAXDEPTH) and it is small, else the table.
-- The buffer is one for all messages: a finalizer may call async.call at
-- the collector step that ends encode, and would reset the buffer under the
-- message being packed, so a message packed meanwhile goes as a table.
-- (tostring makes the string before its own step.)
local packing = false
function C.pack(t, packable)
  if packable and enc and not packing then
    packing = true
    enc:reset()
    local ok = pcall(enc.encode, enc, t)
    packing = false
    if ok and #enc <= PACK_MAX then return enc:tostring() end
    enc:free()
  end
  return t
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
