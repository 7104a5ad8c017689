-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_thread_worker.lua: the code each worker of the thread backend runs,
-- as source text that async_thread.lua starts as a love.thread (after
-- async_thread_common.lua's). It serves the request Channel: runs calls and
-- the parts of other workers' awaitAll, and is the worker-side `async` API
-- (await, awaitAll, cancelled) that jobs see.
--
-- The worker: one love.thread. Arguments: the control and slot ByteData, the
-- lock, request and result Channels, the registry's Channel (snapshots and
-- record chunks: see async_thread.lua), its slot number and the game's
-- environment (package paths, LÖVE modules to require).
return [==[
local ctlData, slotData, lock, requests, results, registryCh, slot, env = ...
local ffi = require "ffi"
local ctl = ffi.cast("int32_t *", ctlData:getFFIPointer())
local sl = ffi.cast("double *", slotData:getFFIPointer()) + slot * C.SLOT
local unpack, select, type, tostring = unpack, select, type, tostring

-- The game's paths and LÖVE modules, as a native worker gets them.
local initError
do
  local ok, e = pcall(function()
    package.path, package.cpath = env.path, env.cpath
    require "love.timer"
    for _, m in ipairs(env.modules) do require(m) end
  end)
  if not ok then initError = tostring(e) end
end
local now = love.timer and love.timer.getTime or os.clock
local cur                  -- the running job: { snap, owner = its game call's record, name }

-- The perf map (async_perfmap.lua), named after the running definition.
if env.boot then
  local ok, e = pcall(function()
    local done, why = assert(loadstring(env.boot, "=async perf map"))(function() return cur and cur.name end, { MSG.PERF_MAP_JIT_OFF, MSG.PERF_MAP_OS })
    if not done then error(why, 0) end
  end)
  if not ok then io.stderr:write(MSG.PERF_MAP_WORKER:format(slot, tostring(e))) end
end

-- The worker-side API, global `async` in jobs.
local api = { shared = {}, state = {}, workerIndex = slot, isWorker = true }
rawset(_G, "async", api)

-- The globals as a job first sees them, put back after each job as a
-- native worker does (wstate.c): the thread's global table (setfenv(0, t)),
-- no metatable on it, every global it started with that a job removed
-- or replaced (rawset(_G, "math", nil)), the string metatable and its
-- __index, package.loaded. Globals a job added stay.
local G, gkeys, gvals, gn = _G, {}, {}, 0
for k, v in pairs(_G) do gn = gn + 1; gkeys[gn], gvals[gn] = k, v end
local rawget, rawset, rawequal, getfenv, setfenv = rawget, rawset, rawequal, getfenv, setfenv
local getmt, setmt = debug.getmetatable, debug.setmetatable
local strmt = getmt("")
local strindex = strmt and rawget(strmt, "__index")
local pkg = rawget(G, "package")
local loaded = type(pkg) == "table" and rawget(pkg, "loaded")
local function restoreGlobals()
  if not rawequal(getfenv(0), G) then setfenv(0, G) end
  if getmt(G) ~= nil then setmt(G, nil) end
  for i = 1, gn do
    local k, v = gkeys[i], gvals[i]
    if not rawequal(rawget(G, k), v) then rawset(G, k, v) end
  end
  if strmt then
    if not rawequal(getmt(""), strmt) then setmt("", strmt) end
    if not rawequal(rawget(strmt, "__index"), strindex) then rawset(strmt, "__index", strindex) end
    if rawget(strmt, "__metatable") ~= nil then rawset(strmt, "__metatable", nil) end
  end
  if loaded and not rawequal(rawget(pkg, "loaded"), loaded) then rawset(pkg, "loaded", loaded) end
end

local snapId, snap         -- the last snapshot read
local cache = {}           -- definition id -> compiled function
local applied              -- the snapshot whose shared values are decoded
local shareIds = {}        -- name -> id of the decoded shared value
local initId               -- the init function last run here
local chunks = {}          -- chunk index -> { data, ptr }

-- The error and its traceback, which shows the job's frames only, as a
-- native worker's does: the frames below the job (xpcall, runJob,
-- handleCall, this file's main chunk) and those of an await that raises
-- are the backend's, and put six lines of it into every failure a game
-- prints.
local function handler(e)
  local tb = debug.traceback("", 2):sub(2)
  local cut = tb:find("\n\t[C]: in function 'xpcall'\n\tasync_thread_worker.lua:", 1, true)
  if cut then tb = tb:sub(1, cut - 1) end
  local lines, keep = {}, {}
  for line in tb:gmatch("[^\n]+") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    local ours = line:find("^\tasync_thread_worker%.lua:")
    -- error() called by this file's code (raiseAwaited) is the backend's too
    local raisedHere = line == "\t[C]: in function 'error'" and lines[i + 1] and lines[i + 1]:find("^\tasync_thread_worker%.lua:")
    if not ours and not raisedHere then keep[#keep + 1] = line end
  end
  return { e, table.concat(keep, "\n") }
end

-- A hook a job sets must not outlive it, and must not fire in this file's
-- code after the job returns (LuaJIT's hooks are global to the state, and
-- the first line run after the job would raise the hook's error here). So a
-- job's debug.sethook installs a guard that passes on only the events of
-- code other than this file's, and the hook is cleared after each job.
local OWN = debug.getinfo(1, "S").source
local realSethook, realGethook, getinfo = debug.sethook, debug.gethook, debug.getinfo
local userHook, setFunc, setLine
-- Shutdown's deadline: every job runs under this count hook (compiled
-- traces run no hook, so it costs them nothing), which stops the job once
-- the game sets ctl[CTL_HARD], as the native backend's hook does.
local function stopHook()
  if ctl[C.CTL_HARD] ~= 0 then
    local info = getinfo(2, "S")
    if info ~= nil and info.source ~= OWN then error(C.STOP_MSG, 0) end
  end
end
local function armStop() realSethook(stopHook, "", 10000) end
local function guard(ev, line)
  local info = getinfo(2, "Sf")
  if info == nil or info.source == OWN then return end
  if ctl[C.CTL_HARD] ~= 0 then error(C.STOP_MSG, 0) end
  -- debug.sethook is a C function in a native worker: returning from it
  -- to the line that called it is no new line there either.
  if setFunc ~= nil then
    local same = info.func == setFunc and line == setLine
    setFunc = nil
    if same then return end
  end
  return userHook(ev, line)
end
function debug.sethook(...)
  local args, n = { ... }, select("#", ...)
  local i = type(args[1]) == "thread" and 2 or 1 -- one hook per state anyway
  if args[i] == nil then userHook = nil; return armStop() end
  userHook = args[i]
  local caller = getinfo(2, "fl")
  setFunc, setLine = caller and caller.func, caller and caller.currentline
  return realSethook(guard, unpack(args, i + 1, n))
end
function debug.gethook()
  local f, mask, count = realGethook()
  if f == guard then return userHook, mask, count end
  if f == stopHook then return nil end
  return f, mask, count
end
local function collect(ok, ...) return ok, select("#", ...), { ... } end

-- Snapshot `id`, from its Channel `ch` or, for a call, from the registry,
-- which lists it while the call is in flight.
local function getSnap(id, ch)
  if id ~= snapId then
    ch = ch or registryCh:peek().snaps[id]
    snap, snapId = ch:peek(), id
    snap.ch = ch -- for the parts of an awaitAll run by other workers
    -- Keep the compiled functions the new snapshot still holds (share and
    -- setWorkerInit keep them, as in async_native); drop the others.
    local keep = {}
    for _, d in pairs(snap.defs) do keep[d[1]] = cache[d[1]] end
    if snap.init then keep[snap.init[1]] = cache[snap.init[1]] end
    cache = keep
  end
  return snap
end

local function compile(d, name)
  local fn = cache[d[1]]
  if fn then return fn end
  local p = d[2]:peek()
  local f, err = loadstring(p.code, name)
  if not f then return nil, err end
  for i = 1, p.n do
    local v = p.up[i]
    if p.isAsync and p.isAsync[i] then v = api end
    debug.setupvalue(f, i, v)
  end
  cache[d[1]] = f
  return f
end

local function applySnapshot(sn)
  for name, sh in pairs(sn.shares) do
    if shareIds[name] ~= sh[1] then
      api.shared[name] = sh[2]:peek()
      shareIds[name] = sh[1]
    end
  end
  for name in pairs(shareIds) do
    if not sn.shares[name] then shareIds[name] = nil; api.shared[name] = nil end
  end
  if sn.init and sn.init[1] ~= initId then
    local f, err = compile(sn.init, "worker init")
    if not f then return err end
    local ok, e = xpcall(f, handler, api.state, slot)
    if not ok then
      local m = type(e) == "table" and e[1] or e
      return MSG.INIT_FAILED:format(type(m) == "string" and m or type(m))
    end
    initId = sn.init[1]
  end
  applied = sn.id
end

-- Runs definition d (named `name`) of snapshot sn for the game's call whose
-- record is `owner`, with args[first .. first + nargs - 1]. Returns OK, n,
-- results or FAILED, 2, { error value, traceback }, checked for the trip back
-- (`awaited`: to a job, where LÖVE objects may not go, as in async_native).
local function runJob(name, d, sn, owner, args, first, nargs, awaited)
  if initError then return C.FAILED, 2, { initError, "" } end
  if sn.id ~= applied then
    local err = applySnapshot(sn)
    if err then return C.FAILED, 2, { err, "" } end
  end
  local fn, err = compile(d, name)
  if not fn then return C.FAILED, 2, { err, "" } end
  -- A fresh global table per call whose reads fall through to the worker's
  -- globals; the previous one is put back for a call nested in this one.
  local oldenv = getfenv(fn)
  -- A metatable per call: a job that breaks its environment's metatable
  -- breaks only its own.
  setfenv(fn, setmetatable({}, { __index = _G }))
  local outer = cur
  cur = { snap = sn, owner = owner, name = name }
  local ok, n, r = collect(xpcall(fn, handler, unpack(args, first, first + nargs - 1)))
  cur = outer
  setfenv(fn, oldenv)
  if outer == nil then restoreGlobals() end
  -- A collector the job stopped would stay stopped for every later job.
  if not collectgarbage("isrunning") then collectgarbage("restart") end
  if ok then
    local bad = C.check(r, 1, n, "result", awaited and C.LOVE_NOT_AWAIT or nil)
    if bad then return C.FAILED, 2, { MSG.RESULT_NOT_SENT:format(name, bad), "" } end
    return C.OK, n, r
  end
  local e = r[1]
  if type(e) ~= "table" or getmetatable(e) ~= nil or e[2] == nil then e = { e, "" } end -- not from handler
  local bad = C.check(e, 1, 1, "error")
  if bad then
    return C.FAILED, 2, { MSG.ERROR_NOT_SENT:format(name, type(e[1]), bad), e[2] }
  end
  return C.FAILED, 2, e
end

-- An awaited job's failure, raised in the awaiting job, as worker_api.c's
-- raise_awaited: a string gets the traceback appended once, at the
-- innermost level; each outer level adds a one-line note, the first 10 of
-- them, then a count, so the message stays bounded however deep the chain.
local AWAITED_JOB, AWAITED_FROM = MSG.AWAITED_JOB, MSG.AWAITED_FROM
local AWAITED_MORE, AWAITED_NOTES = MSG.AWAITED_MORE, 10
local FROM_PATTERN = AWAITED_FROM:gsub("%p", "%%%0")
local function raiseAwaited(e, tb, what)
  if type(e) ~= "string" or type(tb) ~= "string" then error(e, 0) end
  if not e:find(AWAITED_JOB, 1, true) then error(e .. AWAITED_JOB .. tb, 0) end
  local more = e:find(AWAITED_MORE, 1, true)
  if more then
    local k = tonumber(e:match("^%d+", more + #AWAITED_MORE)) or 0
    error(e:sub(1, more - 1) .. MSG.AWAITED_MORE_LEVELS:format(k + 1), 0)
  end
  local _, notes = e:gsub(FROM_PATTERN, "")
  if notes < AWAITED_NOTES then error(e .. MSG.AWAITED_FROM_JOB:format(what), 0) end
  error(e .. MSG.AWAITED_MORE_LEVELS:format(1), 0)
end

-- Jobs that start jobs run in this worker, one after another: a Channel
-- gives no way to help with other work while waiting, and running them here
-- cannot deadlock, even with one worker.
function api.await(name, ...)
  if cur == nil then error(MSG.AWAIT_OUTSIDE_JOB, 0) end
  if type(name) ~= "string" then error(MSG.BAD_ARGUMENT:format(1, "await", "string", type(name)), 0) end
  local d = cur.snap.defs[name]
  if d == nil then error(MSG.AWAIT_UNDEFINED:format(name), 0) end
  local n, args = select("#", ...), { ... }
  local bad = C.check(args, 1, n, "argument", C.LOVE_NOT_AWAIT)
  if bad then error(MSG.AWAIT_NOT_SENT:format(name, bad), 0) end
  local st, rn, r = runJob(name, d, cur.snap, cur.owner, C.copy(args), 1, n, true)
  if st ~= C.OK then raiseAwaited(C.copy(r[1]), r[2], "'" .. name .. "'") end
  return unpack(C.copy(r), 1, rn)
end

-- awaitAll's parts wait on a Channel of their own, and one SUB token per
-- part but the first goes on the shared queue: an idle worker that takes a
-- token runs a part (if any is left), and the awaiting worker runs the parts
-- nobody took. It then waits only for parts that other workers are running,
-- so it never waits for work that nobody does, even with one worker.
local function runPart(item, sn, owner)
  local name = item[2]
  return runJob(name, sn.defs[name], sn, owner, item, 4, item[3], true)
end

function api.awaitAll(list)
  if cur == nil then error(MSG.AWAITALL_OUTSIDE_JOB, 0) end
  if type(list) ~= "table" then error(MSG.BAD_ARGUMENT:format(1, "awaitAll", "table", type(list)), 0) end
  local n = #list
  for k = 1, n do -- every entry is checked before any job starts
    local e = rawget(list, k)
    if type(e) ~= "table" or type(rawget(e, 1)) ~= "string" then
      error(MSG.AWAITALL_ENTRY:format(k), 0)
    end
    if cur.snap.defs[e[1]] == nil then error(MSG.AWAITALL_UNDEFINED:format(e[1]), 0) end
    local bad = C.check(e, 2, #e, "argument", C.LOVE_NOT_AWAIT)
    if bad then error(MSG.AWAITALL_NOT_SENT:format(k, bad), 0) end
  end
  local sn, owner = cur.snap, cur.owner
  local parts, replies = love.thread.newChannel(), love.thread.newChannel()
  for k = 1, n do
    local e = list[k]
    parts:push({ k, e[1], #e - 1, unpack(e, 2, #e) })
  end
  local token = { C.SUB, parts, replies, sn.id, sn.ch, owner.rec }
  for _ = 2, n do requests:push(token) end
  local got, res = 0, {}
  while true do
    local item = parts:pop()
    if item == nil then break end
    local st, rn, r = runPart(item, sn, owner)
    local first
    if rn > 0 then first = r[1] end
    res[item[1]] = { st, first, r[2] }
    got = got + 1
  end
  while got < n do
    local m = replies:demand()
    res[m[1]] = { m[2], m[3], m[4] }
    got = got + 1
  end
  local out = {}
  for k = 1, n do
    local r = res[k]
    if r[1] ~= C.OK then raiseAwaited(C.copy(r[2]), r[3], "async.awaitAll") end -- the first failure, in order
    out[k] = C.copy(r[2])
  end
  return out
end

-- Read under the lock that cancel writes it under. A plain read would be
-- wrong in a compiled loop: LuaJIT hoists an FFI load out of a loop that
-- does not store to it (volatile is ignored), so a job polling cancelled()
-- would never see it; performAtomic is a C call, which no trace crosses.
local function stopFlag(_, p) return p[1] ~= 0 end
function api.cancelled()
  return cur ~= nil and lock:performAtomic(stopFlag, cur.owner.p)
end

function api.newBuffer()
  error(MSG.BUFFER_NEEDS_NATIVE:format(C.NAME), 0)
end

-- Under the lock: the game's cancel and this start race on QUEUED.
local function start(_, p)
  if p[0] == C.QUEUED then p[0] = C.RUNNING; return true end
  return false
end

local function takeStop(_, c, s)
  if c[0] > 0 then c[0] = c[0] - 1; s[C.S_RUNNING] = 0; return true end
  return false
end

-- The game's call record `rec`: { p = its int32 state and stop flag, rec },
-- made once per record number (a record's memory never moves). Its chunk
-- was listed in the registry before any call used it.
local records = {}
local function record(rec)
  local r = records[rec]
  if r then return r end
  local ci = math.floor(rec / C.CHUNK)
  local chunk = chunks[ci]
  if chunk == nil then
    local data = registryCh:peek().chunks[ci + 1]
    chunk = { data, ffi.cast("int32_t *", data:getFFIPointer()) }
    chunks[ci] = chunk
  end
  r = { p = chunk[2] + 2 * (rec % C.CHUNK), rec = rec }
  records[rec] = r
  return r
end

-- A SUB token: run one part of another worker's awaitAll, if one is left.
local function handlePart(m)
  local item = m[2]:pop()
  if item == nil then return end
  armStop()
  local ok, st, rn, r = pcall(runPart, item, getSnap(m[4], m[5]), record(m[6]))
  if not ok then st, rn, r = C.FAILED, 2, { MSG.PREFIXED:format(item[2], MSG.PREFIXED:format(C.NAME, tostring(st))), "" } end
  if realGethook() then realSethook(); userHook = nil end
  local first -- awaitAll keeps a part's first result, or its error and traceback
  if rn > 0 then first = r[1] end
  local sent, why = pcall(m[3].push, m[3], { item[1], st, first, r[2] })
  if not sent then
    m[3]:push({ item[1], C.FAILED, MSG.RESULT_LOST:format(item[2], tostring(why)), "" })
  end
end

-- A call: { CALL, record, snapshot number, name, nargs, args... }.
local function runCall(m, owner)
  local name = m[4]
  local sn = getSnap(m[3])
  local d = sn.defs[name]
  if d == nil then return C.FAILED, 2, { MSG.JOB_UNDEFINED:format(name), "" } end
  return runJob(name, d, sn, owner, m, 6, m[5])
end

local function handleCall(m)
  local rec = m[2]
  local owner = record(rec)
  sl[C.S_TAKEN] = sl[C.S_TAKEN] + 1
  if not lock:performAtomic(start, owner.p) then
    results:push({ rec, C.CANCELLED, 0 })
    return
  end
  local name = m[4]
  armStop()
  local t0 = now()
  local ok, st, n, r = pcall(runCall, m, owner)
  local t1 = now()
  if not ok then st, n, r = C.FAILED, 2, { MSG.PREFIXED:format(name, MSG.PREFIXED:format(C.NAME, tostring(st))), "" } end
  -- A hook a job left behind would run in every later job of this worker.
  if realGethook() then realSethook(); userHook = nil end
  sl[C.S_JOBS] = sl[C.S_JOBS] + 1
  sl[C.S_MEMORY] = collectgarbage("count") * 1024
  -- After the results: the run's start, end and this worker's slot, for
  -- stats().defs and the trace (async_thread_calls.lua's deliver).
  local msg = { rec, st, n, unpack(r, 1, n) }
  msg[n + 4], msg[n + 5], msg[n + 6] = t0, t1, slot
  local sent, why = pcall(results.push, results, msg)
  if not sent then
    results:push({ rec, C.FAILED, 2, MSG.RESULTS_LOST:format(name, tostring(why)), "" })
  end
end

while true do
  if ctl[C.CTL_STOPS] > 0 and lock:performAtomic(takeStop, ctl, sl) then break end
  local t0 = now()
  local m = requests:demand()
  local t1 = now()
  sl[C.S_IDLE] = sl[C.S_IDLE] + (t1 - t0)
  local kind = m[1]
  if kind == C.QUIT then break end
  if kind == C.CALL or kind == C.SUB then
    if kind == C.CALL then handleCall(m) else handlePart(m) end
    sl[C.S_BUSY] = sl[C.S_BUSY] + (now() - t1)
  end
end
sl[C.S_RUNNING] = 0
sl[C.S_MEMORY] = 0
]==]
