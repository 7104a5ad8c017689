-- SPDX-License-Identifier: MIT (see LICENSE)
-- async_fast.lua: the FFI path of async.call and async.update, for LuaJIT
-- with the JIT and the FFI on. Calls whose arguments are numbers, booleans,
-- nil, strings and tables of those (shared and cyclic ones too), with a
-- callback that is a function, nil or a table without a key (checked here
-- as call.c checks it), are encoded here into the codec's format (codec.c);
-- strings over 4 KiB (up to 4 a call) go by reference, read in place by
-- the worker. fastpath.c's C functions, which the JIT calls from its
-- traces, make and batch the calls; their callbacks wait in a Lua table
-- indexed by record; finished calls whose results are plain are decoded
-- here from the record's memory and handed to their callbacks Lua to Lua.
-- Anything else takes the C API path (call.c, deliver.c) for that one call
-- or delivery, which raises and behaves as it always does. Both paths
-- share the records, the queue and the order.
local ffi = require "ffi"
local MSG = require(((...) or ""):match("^(.-)[^.]*$") .. "async_messages")

ffi.cdef [[
struct async_fast_head {
  const uint8_t *p;
  size_t n;
  int32_t index;
  int32_t fast;
  int32_t status;
};
struct async_fast_xstr { const char *p; size_t n; };
struct async_fast_api {
  int32_t (*call)(void *, void *, double, const uint8_t *, size_t, uint32_t *, const struct async_fast_xstr *, int);
  int (*peek)(void *, struct async_fast_head *);
  void (*pop)(void *);
  int (*cancel)(void *, int32_t, uint32_t);
  int (*status)(void *, int32_t, uint32_t);
  double (*now)(void);
  double (*epoch)(void *);
  void *(*lookup)(void *, const char *);
  void (*flush)(void *);
};
struct async_fast_handle { double ctxid; int32_t index; uint32_t gen; };
]]

local type, select, tostring, rawget, next, floor = type, select, tostring, rawget, next, math.floor
local band = bit.band
local dblp = ffi.typeof("double *")
local ffi_string, ffi_copy, ffi_cast = ffi.string, ffi.copy, ffi.cast

local u64p = ffi.typeof("uint64_t *")
local XSTR_MIN = 4097 -- longer strings go by reference (up to the module's xstrMax a call)

local M = {}

-- The pools handles may reach, by context id; weak, so that a handle never
-- keeps a pool (nor points into a freed one): once shut down, the C side's
-- record lookup finds it closed.
local pools = setmetatable({}, { __mode = "v" }) -- id -> context userdata
local pointers = setmetatable({}, { __mode = "k" }) -- context userdata -> pointer
local liveApi

local function poolOf(h)
  local c = pools[h.ctxid]
  return c and pointers[c]
end

local statusNames = { [0] = "queued", "running", "cancelled" }

-- A call handle: (record, generation), as the C API path's userdata; made
-- per call, and sunk by the JIT where the caller drops it.
local Handle
local function checkHandle(h, fname)
  if not ffi.istype(Handle, h) then
    error(MSG.HANDLE_EXPECTED:format(fname, type(h)), 3)
  end
end
Handle = ffi.metatype("struct async_fast_handle", {
  __index = {
    cancel = function(h)
      checkHandle(h, "cancel")
      local p = poolOf(h)
      return p ~= nil and liveApi.cancel(p, h.index, h.gen) ~= 0
    end,
    status = function(h)
      checkHandle(h, "status")
      local p = poolOf(h)
      return p and statusNames[liveApi.status(p, h.index, h.gen)] or "done"
    end,
  },
})

-- Whether this path can be used here: LuaJIT with its JIT on.
function M.available()
  return jit ~= nil and jit.status() == true
end

--- Wraps the C API path's call and update of the context `c` (made by
--- native.new for `facade`) into the FFI path's. Returns call, update.
function M.wrap(c, ccall, cupdate, facade)
  local lctx, lapi, id, lbusy, format = c:fastApi()
  -- The codec's tags and this path's limits, as the module defines them
  -- (codec_format.h, internal.h); never assigned after, so the JIT treats
  -- them as the constants they are.
  local tags = format.tags
  local T_NIL, T_FALSE, T_TRUE, T_INT, T_NUM = tags.NIL, tags.FALSE, tags.TRUE, tags.INT, tags.NUM
  local T_STR, T_TABLE, T_REF, T_OBJ = tags.STR, tags.TABLE, tags.REF, tags.OBJ
  local F_REFS = format.flags.REFS
  local XSTR_MAX = format.xstrMax
  local OBJ_STR = ffi.cast("uint64_t", format.objStr) -- | the string's index in the call
  local ctxp = ffi_cast("void *", lctx)
  -- The context's busy flags (internal.h): [0] is this file's, set while
  -- a call is encoded or a result decoded, so that a finalizer that runs
  -- then neither delivers nor shuts the pool down (saved and restored: a
  -- call may run inside another's finalizer); [1] counts the C API path's
  -- windows.
  local busyp = ffi_cast("int32_t *", lbusy)
  local api = ffi_cast("struct async_fast_api *", lapi)
  liveApi = api
  pools[id] = c
  pointers[c] = ctxp
  local builtinError = error -- as native.new captures it

  -- Callbacks by record index + 1.
  local cbs = {}
  -- Strings a call passes by reference, by record index + 1 (one string,
  -- or a table of them), held until its delivery: the worker reads their
  -- bytes in place. The context's environment, so that they outlive the
  -- call's records even when the context is collected (its __gc waits
  -- for the workers).
  local held = {}
  if debug and debug.setfenv then debug.setfenv(c, held) end
  local xs = ffi.new("struct async_fast_xstr[?]", XSTR_MAX)
  local nxs, xs1, xsMore = 0, nil, nil

  -- The scratch buffer arguments are encoded into.
  local cap = 256
  local buf = ffi.new("uint8_t[?]", cap)
  local genbox = ffi.new("uint32_t[1]")
  local head = ffi.new("struct async_fast_head")

  local function grow(need)
    local ncap = cap
    while ncap < need do ncap = ncap * 2 end
    local nbuf = ffi.new("uint8_t[?]", ncap)
    ffi_copy(nbuf, buf, cap)
    buf, cap = nbuf, ncap
  end

  -- Tables met while encoding one call: table -> its number (codec.c numbers
  -- them from 0 as they open), so shared and cyclic tables travel as REF.
  local seen, nseen = {}, 0

  -- A varint padded to exactly 5 bytes at `at`, as codec.c's put_varint5.
  -- Unrolled, as putVarint: a loop here would be a trace of its own, cut
  -- off from the caller's ("NYI: return to lower frame" in -jv).
  local function varint5(at, v)
    local b0 = v % 128; v = (v - b0) / 128
    local b1 = v % 128; v = (v - b1) / 128
    local b2 = v % 128; v = (v - b2) / 128
    local b3 = v % 128; v = (v - b3) / 128
    buf[at], buf[at + 1], buf[at + 2], buf[at + 3] = b0 + 128, b1 + 128, b2 + 128, b3 + 128
    buf[at + 4] = v
  end

  -- A varint (v < 2^35, as every count and length here).
  local function putVarint(pos, v)
    if v < 128 then buf[pos] = v; return pos + 1 end
    local low = v % 128
    buf[pos] = low + 128
    v = (v - low) / 128
    if v < 128 then buf[pos + 1] = v; return pos + 2 end
    low = v % 128
    buf[pos + 1] = low + 128
    v = (v - low) / 128
    if v < 128 then buf[pos + 2] = v; return pos + 3 end
    low = v % 128
    buf[pos + 2] = low + 128
    v = (v - low) / 128
    if v < 128 then buf[pos + 3] = v; return pos + 4 end
    low = v % 128
    buf[pos + 3] = low + 128
    buf[pos + 4] = (v - low) / 128
    return pos + 5
  end

  -- Encodes one value at pos; the next position, or nil when the value is
  -- not one this encoder takes (the C API path takes the call and names
  -- what it refuses).
  local put
  local function putTable(v, pos, depth)
    -- Deep nesting is left to codec.c, which knows the limit and its message.
    if depth >= 32 then return nil end
    if pos + 11 > cap then grow(pos + 11) end
    local ref = seen[v]
    if ref ~= nil then
      buf[0] = F_REFS
      buf[pos] = T_REF
      return putVarint(pos + 1, ref)
    end
    seen[v] = nseen
    nseen = nseen + 1
    -- Both counts first (codec.c's format), written once the items are.
    buf[pos] = T_TABLE
    local at = pos + 1
    pos = pos + 11
    -- The array part: the prefix 1..n without holes, read raw.
    local narr, maxn = 0, #v
    while narr < maxn do
      local x = rawget(v, narr + 1)
      if type(x) == "nil" then break end
      pos = put(x, pos, depth + 1)
      if pos == nil then return nil end
      narr = narr + 1
    end
    local nhash = 0
    local k, x = next(v)
    while type(k) ~= "nil" do
      if not (type(k) == "number" and k >= 1 and k <= narr and k == floor(k)) then
        pos = put(k, pos, depth + 1)
        if pos == nil then return nil end
        pos = put(x, pos, depth + 1)
        if pos == nil then return nil end
        nhash = nhash + 1
      end
      k, x = next(v, k)
    end
    varint5(at, narr)
    varint5(at + 5, nhash)
    return pos
  end

  put = function(v, pos, depth)
    local t = type(v)
    if t == "number" then
      if pos + 9 > cap then grow(pos + 9) end
      -- Always the 8-byte double: callgrind counted 837 instructions per
      -- plain call this way against 1,011 with codec.c's zigzag varints
      -- for integers, and the worker decodes both alike (bench/ANALYSIS.md).
      buf[pos] = T_NUM
      ffi_cast(dblp, buf + pos + 1)[0] = v
      return pos + 9
    elseif t == "string" then
      local len = #v
      if len >= XSTR_MIN then
        if nxs == XSTR_MAX then return nil end
        if pos + 9 > cap then grow(pos + 9) end
        xs[nxs].p, xs[nxs].n = v, len
        if nxs == 0 then xs1 = v else xsMore = xsMore or { xs1 }; xsMore[nxs + 1] = v end
        buf[pos] = T_OBJ
        ffi_cast(u64p, buf + pos + 1)[0] = OBJ_STR + nxs
        nxs = nxs + 1
        return pos + 9
      end
      if pos + 6 + len > cap then grow(pos + 6 + len) end
      buf[pos] = T_STR
      pos = putVarint(pos + 1, len)
      ffi_copy(buf + pos, v, len)
      return pos + len
    elseif t == "boolean" then
      if pos + 1 > cap then grow(pos + 1) end
      buf[pos] = v and T_TRUE or T_FALSE
      return pos + 1
    elseif t == "nil" then -- not v == nil: a NULL cdata equals nil, and a cdata's __eq would run
      if pos + 1 > cap then grow(pos + 1) end
      buf[pos] = T_NIL
      return pos + 1
    elseif t == "table" then
      return putTable(v, pos, depth)
    end
    return nil
  end

  -- A scratch buffer grown by a big call goes back to its first size once a
  -- call uses under a quarter of it: one call's 10 MiB is not held for
  -- good, and a stream of big arguments keeps its buffer (growing it again
  -- by doubling left 259 KiB of garbage a 75 KiB call, test_paths).
  local function settle(used)
    if nseen > 0 then seen, nseen = {}, 0 end
    nxs, xs1, xsMore = 0, nil, nil
    if cap > 65536 and used < cap / 4 then cap = 256; buf = ffi.new("uint8_t[?]", cap) end
  end

  -- Definitions by name, valid while the registry's epoch is unchanged (the
  -- snapshot of that epoch holds them): no name lookup per call.
  -- Whether a value can be called, as call.c's is_callable: a function,
  -- or a value whose metatable (raw, past __metatable) has __call.
  local getmt = debug and debug.getmetatable or getmetatable
  local function callable(v)
    if type(v) == "function" then return true end
    local mt = getmt(v)
    return type(mt) == "table" and rawget(mt, "__call") ~= nil
  end
  local cbFields = { success = true, error = true, cancelled = true, key = true }

  -- A callback table call.c's check_callbacks accepts, without a key.
  -- Fields are tested with type(), never compared with nil: a cdata's __eq
  -- would run (and may raise) in the middle of a call.
  local function okTable(t)
    local s, e, c = t.success, t.error, t.cancelled
    local ts, te, tc = type(s), type(e), type(c)
    if ts ~= "nil" and not callable(s) or te ~= "nil" and not callable(e) or tc ~= "nil" and not callable(c) then
      return false
    end
    -- A callable table without handlers: call.c names the mistake.
    if ts == "nil" and te == "nil" and tc == "nil" and callable(t) then return false end
    local k, v = next(t)
    while type(k) ~= "nil" do
      if type(k) == "string" and not cbFields[k] and callable(v) then return false end
      k, v = next(t, k)
    end
    return type(t.key) == "nil"
  end

  local defs, defsEpoch = {}, -1
  -- Set while a call is encoded into the shared scratch state (buf, seen,
  -- xs) until its record is made and its callback stored: an allocation
  -- there may run a finalizer (ffi.gc, __gc) that itself calls async.call,
  -- and that inner call takes the C API path, which encodes into a record
  -- of its own; here it would overwrite the outer call's arguments. An
  -- update() from such a finalizer delivers nothing (the next one does): it
  -- could finish this call before its callback is stored. An encode that
  -- raised midway (out of memory, a finalizer that raised) leaves it set
  -- with no call running: the next call or update finds that (stale) and
  -- clears it.
  local encoding = false
  -- Set while update() holds a peeked call, from the peek to its pop: an
  -- update() from a finalizer there delivers nothing.
  local decoding = false
  local call, deliverHead, update, fastBusy
  -- The thread (nil: the main one) whose update() ran last: the game's
  -- loop, where the windows are opened; and the one whose update() opened
  -- the decoding window. coroutine.running() costs too much per call, so
  -- the encoding window's is taken to be the loop's.
  local running, costatus = coroutine.running, coroutine.status
  local home, decodingIn = running(), nil

  -- Whether fn is running in this coroutine below inWindow's caller (call
  -- or update asks about itself, so it is skipped: a finalizer runs on the
  -- stack of the code whose allocation started it).
  local getinfo = debug and debug.getinfo
  local function onStack(fn)
    if not getinfo then return true end
    for level = 4, 200 do
      local info = getinfo(level, "f")
      if info == nil then return false end
      if info.func == fn then return true end
    end
    return true
  end

  -- Whether the window that `owner` opened in fn is still open. Only asked
  -- when its flag is set, which is rare. Asked from another thread (a
  -- coroutine that a finalizer resumed), it is open while the owner waits
  -- in the chain of resumes that led here; an owner that ended or yielded
  -- left the window by an error. Asked from the owner, fn must be on its
  -- stack.
  -- An owner that ended or yielded may only be a coroutine update() last
  -- ran in (a scene's, made afresh each frame), not the thread that opened
  -- the window: then fn on this thread's stack still says it is open.
  local function inWindow(fn, owner)
    local co = running()
    if co ~= owner then
      if owner == nil or costatus(owner) == "normal" then return true end
      return onStack(fn)
    end
    local open = onStack(fn)
    return open
  end

  -- Whether a window is open now (clearing a flag an error left set),
  -- asked by the C side (busy_now): level 4 of onStack is the C function.
  function fastBusy()
    if encoding and not inWindow(call, home) then encoding = false end
    if decoding and not inWindow(update, decodingIn) then decoding = false end
    if not (encoding or decoding) then busyp[0] = 0 end
    return encoding or decoding
  end

  function call(cb, name, ...)
    -- A callback table this path takes only when call.c's check passes it
    -- (okTable); a key ("latest wins" lives in the registry) or a mistake
    -- takes the C API path, which raises with the one message.
    if encoding and not inWindow(call, home) then encoding = false; busyp[0] = 0 end
    local tcb = type(cb)
    if encoding or tcb ~= "nil" and tcb ~= "function" and not (tcb == "table" and okTable(cb)) then
      return ccall(cb, name, ...) -- a tail call: errors point at the caller
    end
    if type(name) ~= "string" then return ccall(cb, name, ...) end
    local n = select("#", ...)
    if n >= 128 then return ccall(cb, name, ...) end
    encoding = true
    local wasBusy = busyp[0]
    busyp[0] = 1
    if nseen > 0 then seen, nseen = {}, 0 end -- an encode that raised midway
    nxs, xs1, xsMore = 0, nil, nil
    buf[0] = 0 -- flags
    buf[1] = n
    local pos = 2
    for i = 1, n do
      pos = put((select(i, ...)), pos, 0)
      if pos == nil then settle(0); encoding = false; busyp[0] = wasBusy; return ccall(cb, name, ...) end
    end
    local epoch = api.epoch(ctxp)
    if epoch ~= defsEpoch then defs, defsEpoch = {}, epoch end
    local d = defs[name]
    if d == nil then
      d = api.lookup(ctxp, name)
      if d == nil then settle(0); encoding = false; busyp[0] = wasBusy; return ccall(cb, name, ...) end -- raises: not defined
      defs[name] = d
    end
    -- A finalizer that ran since the epoch was read (in an allocation, or
    -- as an FFI call returned) may have redefined the name, freeing d:
    -- api.call checks the epoch itself and refuses then (-1).
    local index = api.call(ctxp, d, defsEpoch, buf, pos, genbox, xs, nxs)
    if index < 0 then settle(0); encoding = false; busyp[0] = wasBusy; return ccall(cb, name, ...) end
    if nxs > 0 then held[index + 1] = xsMore or xs1 end
    cbs[index + 1] = cb
    settle(pos)
    encoding = false
    busyp[0] = wasBusy
    return Handle(id, index, genbox[0])
  end

  -- A failure's handler, as deliver.c's call_error_handler: the game's
  -- `error` gets one value, the message with the traceback appended, at
  -- level 0: at level 1 error() would put this file's line in front of
  -- it, where deliver.c (a C caller) puts none.
  local function errorHandler(f, n, a, b, ...)
    if f == builtinError and n >= 2 then
      if type(a) == "string" and type(b) == "string" then
        return f(a .. MSG.WORKER_TRACEBACK .. b, 0)
      end
      return f(a, 0)
    end
    return f(a, b, ...)
  end

  -- Dispatches as deliver.c does: status 0 success, 1 failure, 2
  -- cancelled (which only a table's `cancelled` hears of).
  local function dispatch(cb, status, n, ...)
    local tab = type(cb) == "table"
    if status == 0 then
      if tab then cb = cb.success end
      if cb ~= nil then cb(...) end
      return
    elseif status == 2 then
      if tab then
        local f = cb.cancelled
        if f ~= nil then f() end
      end
      return
    end
    if tab then
      local f = cb.error
      if f ~= nil then return errorHandler(f, n, ...) end
    end
    local f = facade.onerror
    if type(f) == "function" then return errorHandler(f, n, ...) end
    local a, b = ...
    local ta = type(a)
    local msg = (ta == "string" or ta == "number") and tostring(a) or ta
    local tb = (type(b) == "string" or type(b) == "number") and tostring(b) or ""
    io.stderr:write(MSG.JOB_FAILED:format(msg, tb))
    if io.stderr.flush then io.stderr:flush() end -- msvcrt buffers stderr when it is a file (a game may swap io.stderr for a writer)
  end

  -- The records the C side delivers (shutdown, results left to it), and
  -- this file's answer to the C side's busy_now (fastBusy, above).
  c:setFastHook(function(index, status, ...)
    local cb = cbs[index + 1]
    cbs[index + 1] = nil
    if held[index + 1] ~= nil then held[index + 1] = nil end -- a store of nil to a missing key is not free
    return dispatch(cb, status, select("#", ...), ...)
  end, fastBusy)

  -- A varint at pos of at most `max` bytes (exact in a double): value, next
  -- position; nil past lim or when longer.
  local function varint(p, pos, lim, max)
    local u, mul = 0, 1
    for _ = 1, max do
      if pos >= lim then return nil end
      local byte = p[pos]
      pos = pos + 1
      u = u + band(byte, 127) * mul
      if byte < 128 then return u, pos end
      mul = mul * 128
    end
    return nil
  end

  -- One plain value at pos: true, value, next position; false when it is
  -- not plain (a table, an object) or not one this decoder takes.
  local function get(p, pos, lim)
    if pos >= lim then return false end
    local t = p[pos]
    pos = pos + 1
    if t == T_NIL then return true, nil, pos
    elseif t == T_FALSE then return true, false, pos
    elseif t == T_TRUE then return true, true, pos
    elseif t == T_INT then
      local u, npos = varint(p, pos, lim, 7)
      if u == nil then return false end
      if u % 2 == 0 then return true, u / 2, npos end
      return true, -(u + 1) / 2, npos
    elseif t == T_NUM then
      if pos + 8 > lim then return false end
      return true, ffi_cast(dblp, p + pos)[0], pos + 8
    elseif t == T_STR then
      local len, npos = varint(p, pos, lim, 5)
      if len == nil or npos + len > lim then return false end
      return true, ffi_string(p + npos, len), npos + len
    end
    return false
  end

  -- Ends the window that update() opens before its peek (decoding, and the
  -- context's busy flag, back to `was`): from the peek to the pop, any FFI
  -- call's return may run a finalizer, which must not deliver the peeked
  -- call itself (the pop would then take another) nor shut the pool down.
  local function idle(was)
    decoding = false
    busyp[0] = was
  end

  -- Delivers the peeked call if its values are plain (at most three);
  -- false leaves it to the C side. Entered inside update's window; ends it
  -- before the callback runs, either way.
  function deliverHead(was)
    local status, index = head.status, head.index
    local k, v1, v2, v3 = 0, nil, nil, nil
    if status ~= 2 then
      local p, lim = head.p, tonumber(head.n)
      if lim < 2 or p[0] ~= 0 then idle(was); return false end
      k = p[1]
      if k > 3 then idle(was); return false end
      local pos, ok = 2, true
      if k >= 1 then ok, v1, pos = get(p, pos, lim) end
      if ok and k >= 2 then ok, v2, pos = get(p, pos, lim) end
      if ok and k >= 3 then ok, v3, pos = get(p, pos, lim) end
      if not ok or pos ~= lim then idle(was); return false end
    end
    api.pop(ctxp) -- counted and released before the callback, as in deliver.c
    local cb = cbs[index + 1]
    cbs[index + 1] = nil
    if held[index + 1] ~= nil then held[index + 1] = nil end
    idle(was)
    if k == 0 then dispatch(cb, status, 0)
    elseif k == 1 then dispatch(cb, status, 1, v1)
    elseif k == 2 then dispatch(cb, status, 2, v1, v2)
    else dispatch(cb, status, 3, v1, v2, v3) end
    return true
  end

  function update(budget)
    if budget ~= nil and (type(budget) ~= "number" or not (budget >= 0)) then
      return cupdate(budget) -- raises as the C side does
    end
    -- From a finalizer, mid-call or mid-decode (on either path): the next
    -- update delivers.
    if encoding and not inWindow(call, home) then encoding = false end
    if decoding and not inWindow(update, decodingIn) then decoding = false end
    if encoding or decoding or busyp[1] ~= 0 then return 0 end
    busyp[0] = 0 -- no window of this file is open
    home = running()
    decodingIn = home
    api.flush(ctxp) -- the calls made this frame and still held back
    local t0 = budget and api.now()
    local n = 0
    while true do
      local was = busyp[0]
      decoding = true
      busyp[0] = 1
      if api.peek(ctxp, head) ~= 0 then idle(was); break end
      if head.fast == 0 or not deliverHead(was) then
        idle(was)
        if not c:deliverOne() then break end
      end
      n = n + 1
      if budget and api.now() - t0 >= budget then break end
    end
    return n
  end

  return call, update
end

return M
