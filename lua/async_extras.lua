-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_extras.lua: the helpers beyond Async 1.1, loaded by async.lua:
-- fan-out (map, parallelFor, parallelFor2D: many calls, one callback) and
-- coroutines (go/await). They use only the public API, plus `private`:
-- defer(fn) (run fn at the next update) and names (shorthand -> name).
local MSG = require(((...) or ""):match("^(.-)[^.]*$") .. "async_messages")
return function(async, private)
local defer, names = private.defer, private.names

-- Fan-out helpers: many calls, one callback when all are done.

-- A callback table is checked as async.call checks its own (call.c's
-- check_callbacks): success, error and cancelled callable or nil, and no
-- function under another name ({sucess = f} would never be called).
local function callable(v)
  if type(v) == "function" then return true end
  local mt = debug.getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end
local FIELDS = { success = true, error = true, cancelled = true, key = true }
local function checkTable(cb, fname)
  for _, f in ipairs({ "success", "error", "cancelled" }) do
    local v = cb[f]
    if v ~= nil and not callable(v) then
      error(MSG.CALLBACK_FIELD:format(fname, f, type(v)), 4)
    end
  end
  for k, v in next, cb do
    if type(k) == "string" and not FIELDS[k] and callable(v) then
      error(MSG.CALLBACK_UNKNOWN_FIELD:format(fname, k), 4)
    end
  end
end

local function split(callback, fname)
  if type(callback) == "function" then return callback, nil, nil end
  if type(callback) == "table" then
    checkTable(callback, fname)
    return callback.success, callback.error, callback.cancelled
  end
  if callback == nil then return nil, nil, nil end
  error(MSG.EXTRAS_CALLBACK:format(fname), 3)
end

local Group = {}
Group.__index = Group
function Group:cancel()
  if self.finished then return false end
  local any = false
  for _, h in ipairs(self.handles) do any = h:cancel() or any end
  self.finished = true
  if self.onCancel then defer(self.onCancel) end
  return any
end
function Group:status() return self.finished and "done" or "running" end

-- Issues `count` parts through issue(k, callbacks); results[k] is part k's
-- first result; the first failure cancels the rest and is reported once.
-- `part` names a part in errors ("element", "tile").
local function fanout(callback, fname, part, count, issue)
  local onSuccess, onError, onCancel = split(callback, fname)
  local g = setmetatable({ handles = {}, finished = false, onCancel = onCancel }, Group)
  local results, remaining = {}, count
  local function finish()
    -- Deferred for an empty group: a cancel() meanwhile already ended it.
    if g.finished then return end
    g.finished = true
    if onSuccess then onSuccess(results) end
  end
  local function fail(e, tb)
    if g.finished then return end
    g.finished = true
    for _, h in ipairs(g.handles) do h:cancel() end
    if onError then onError(e, tb) else async.onerror(e, tb) end
  end
  for k = 1, count do
    local ok, h = pcall(issue, k, {
      success = function(r)
        if g.finished then return end
        results[k] = r
        remaining = remaining - 1
        if remaining == 0 then finish() end
      end,
      error = fail,
    })
    if not ok then
      for _, q in ipairs(g.handles) do q:cancel() end
      g.finished = true
      error(MSG.PART_REFUSED:format(fname, part, k, tostring(h)), 0)
    end
    g.handles[k] = h
  end
  if count == 0 then defer(finish) end
  return g
end

--- Calls name(list[i], ...) for every element, in parallel; callback gets
--- the list of first results, in order. Returns a group with :cancel().
function async.map(callback, name, list, ...)
  if type(list) ~= "table" then error(MSG.MAP_LIST:format(type(list)), 2) end
  local args, nargs = { ... }, select("#", ...)
  return fanout(callback, "async.map", "element", #list, function(k, cb)
    return async.call(cb, name, list[k], unpack(args, 1, nargs))
  end)
end

-- Bounds past 2^52 (math.huge, 2^53) are refused: there i + 1 == i, and
-- the tiles would never end.
local LIMIT = 2 ^ 52
local function checkInt(v, what, fname)
  if type(v) ~= "number" or v ~= math.floor(v) or v >= LIMIT or v <= -LIMIT then
    error(MSG.NOT_WHOLE:format(fname, what, tostring(v)), 3)
  end
end

-- Most tiles one parallelFor may issue: each is a call, made in the
-- frame that asks (a grain of 1 over 1e6 indices would stall it seconds).
async.maxParts = 16384

-- What every tile would receive must not lend one buffer to all of them:
-- a buffer belongs to one call at a time.
local function checkParts(fname, count, ...)
  if count > async.maxParts then
    error(MSG.TOO_MANY_PARTS:format(fname, count, async.maxParts), 3)
  end
  if count < 2 then return end
  for i = 1, select("#", ...) do
    if getmetatable((select(i, ...))) == "async.buffer" then
      error(MSG.PART_BUFFER:format(fname, i), 3)
    end
  end
end

--- Splits [first, last] into tiles of `grain` indices and calls
--- name(i0, i1, ...) for each; callback gets the tiles' first results in
--- order.
function async.parallelFor(callback, name, first, last, grain, ...)
  checkInt(first, "first", "async.parallelFor"); checkInt(last, "last", "async.parallelFor")
  checkInt(grain, "grain", "async.parallelFor")
  if grain < 1 then error(MSG.GRAIN, 2) end
  local args, nargs = { ... }, select("#", ...)
  local count = last >= first and math.ceil((last - first + 1) / grain) or 0
  checkParts("async.parallelFor", count, ...)
  return fanout(callback, "async.parallelFor", "tile", count, function(k, cb)
    local i0 = first + (k - 1) * grain
    return async.call(cb, name, i0, math.min(i0 + grain - 1, last), unpack(args, 1, nargs))
  end)
end

--- Splits the rectangle [x0, x1] x [y0, y1] into tiles of tileW x tileH and
--- calls name(tx0, ty0, tx1, ty1, ...) for each (inclusive bounds); callback
--- gets the tiles' first results, row by row.
function async.parallelFor2D(callback, name, x0, y0, x1, y1, tileW, tileH, ...)
  for _, v in ipairs({ x0, y0, x1, y1, tileW, tileH }) do checkInt(v, MSG.BOUNDS_2D, "async.parallelFor2D") end
  if tileW < 1 or tileH < 1 then error(MSG.TILE_SIZE, 2) end
  local args, nargs = { ... }, select("#", ...)
  local cols = x1 >= x0 and math.ceil((x1 - x0 + 1) / tileW) or 0
  local rows = y1 >= y0 and math.ceil((y1 - y0 + 1) / tileH) or 0
  checkParts("async.parallelFor2D", cols * rows, ...)
  return fanout(callback, "async.parallelFor2D", "tile", cols * rows, function(k, cb)
    local cx, cy = (k - 1) % cols, math.floor((k - 1) / cols)
    local tx0, ty0 = x0 + cx * tileW, y0 + cy * tileH
    return async.call(cb, name, tx0, ty0, math.min(tx0 + tileW - 1, x1), math.min(ty0 + tileH - 1, y1),
      unpack(args, 1, nargs))
  end)
end

-- Coroutines the library drives: async.go(fn, ...) runs fn as a coroutine in
-- which async.await(f, ...) waits for a job without blocking the frame.

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    -- A coroutine that fails raises out of async.update(), as a callback
    -- would: a string with the coroutine's traceback, any other value as it
    -- is (a plain callback's table error reaches the game as the table).
    if type(err) ~= "string" then error(err, 0) end
    error(debug.traceback(co, err), 0)
  end
end

--- Runs fn(...) as a coroutine driven by async.update(); inside it,
--- async.await may be used. Returns the coroutine.
function async.go(fn, ...)
  if type(fn) ~= "function" then error(MSG.GO_FUNCTION:format(type(fn)), 2) end
  local co = coroutine.create(fn)
  resume(co, ...)
  return co
end

--- Inside async.go: calls the defined function (its name or shorthand) and
--- returns its results when they arrive. A job that fails raises here: a
--- string error gets the worker's traceback appended; any other error value
--- is raised as it is.
function async.await(f, ...)
  local co, ismain = coroutine.running()
  if co == nil or ismain then error(MSG.AWAIT_OUTSIDE_GO, 2) end
  local name = type(f) == "string" and f or names[f]
  if name == nil then error(MSG.AWAIT_NO_NAME, 2) end
  if name:find("\0", 1, true) then
    error(MSG.AWAIT_GO_NAME_NUL:format(name), 2)
  end
  async.call({
    success = function(...) resume(co, true, ...) end,
    error = function(e, tb) resume(co, false, e, tb) end,
  }, name, ...)
  local function finish(ok, ...)
    if ok then return ... end
    local e, tb = ...
    if type(e) == "string" then error(e .. MSG.WORKER_TRACEBACK .. tostring(tb), 0) end
    error(e, 0)
  end
  return finish(coroutine.yield())
end

end
