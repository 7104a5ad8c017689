-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_thread_backend.lua: what is particular to the love.thread backend
-- (run by test/love/suite with ASYNC_BACKEND=thread): it says so, it refuses
-- what it cannot carry with an error naming it, and it survives shutdown
-- under load and LÖVE objects in both directions. The switch between
-- backends (async.load{backend = ...}) and the comparison of their messages
-- run on both.

test("thread backend: async.backend says which backend a game got", { needs = { "threadBackend" } }, function()
  local async = require "async"
  eq(async.backend, "thread")
  async.load(1)
  -- The FFI path (async_fast.lua) is the native module's; never this one's.
  eq(async.getPath(), "capi")
  async.define("id", function(...) return ... end)
  local r
  async.call(function(x) r = x end, "id", "ok")
  drain(async)
  eq(r, "ok")
  async.shutdown()
end)

test("thread backend: cycles, shared sub-tables, buffers and memoryLimit are refused by name", { needs = { "threadBackend" } }, function()
  local async = require "async"
  local e = raises("the thread backend (love.thread)", async.load, { workers = 1, memoryLimit = 1e6 })
  ok(e:find("memoryLimit", 1, true), e)
  ok(not async.isLoaded(), "nothing loaded")
  async.load(1)
  e = raises("the thread backend (love.thread)", async.newBuffer, 16)
  ok(e:find("zero-copy buffers", 1, true), e)
  async.define("id", function(...) return ... end)
  local cyc = {}
  cyc.self = cyc
  e = raises("argument 1 (at .self) is a table already sent in this call", async.call, nil, "id", cyc)
  ok(e:find("cannot send cycles or shared sub-tables", 1, true) and e:find("thread backend", 1, true), e)
  local shared = {}
  raises("argument 2 is a table already sent in this call", async.call, nil, "id", shared, shared)
  -- .a or .b, whichever pairs() reaches second
  e = raises("is a table already sent", async.call, nil, "id", { a = shared, b = shared })
  ok(e:find("argument 1 (at .", 1, true), e)
  e = raises("is a table already sent", async.share, "s", { a = shared, b = shared })
  ok(e:find("async.share('s'): the value (at .", 1, true), e)
  eq(async.stats().inflight, 0, "nothing queued")
  -- in a job: a cyclic result, a buffer
  async.define("cyclic", function() local t = {}; t.t = t; return t end)
  async.define("buf", function() return async.newBuffer(8) end)
  local errs = {}
  async.call({ error = function(m) errs.cyclic = m end }, "cyclic")
  async.call({ error = function(m) errs.buf = m end }, "buf")
  drain(async)
  ok(tostring(errs.cyclic):find("cyclic: result 1 (at .t) is a table already sent", 1, true), tostring(errs.cyclic))
  ok(tostring(errs.buf):find("zero-copy buffers need the native module", 1, true), tostring(errs.buf))
  async.shutdown()
end)

test("thread backend: LÖVE modules and objects in a worker, both ways", { needs = { "threadBackend" } }, function()
  local async = require "async"
  async.load(2)
  async.define("paint", function(im)
    im:mapPixel(function() return 1, 0, 0, 1 end)
    local made = love.image.newImageData(3, 2)
    made:setPixel(1, 1, 0, 1, 0, 1)
    return im, made, love.math.noise(0.5, 0.25)
  end)
  require "love.image"
  local img = love.image.newImageData(8, 8)
  local same, made, noise
  async.call({ success = function(a, b, c) same, made, noise = a, b, c end,
               error = function(m, tb) error(m .. "\n" .. tb) end }, "paint", img)
  drain(async)
  local r, g = img:getPixel(5, 5)
  eq(r, 1, "painted by the worker"); eq(g, 0)
  ok(same == img or same:getPointer() == img:getPointer(), "the same object comes back")
  eq(made:getWidth(), 3); eq(select(2, made:getPixel(1, 1)), 1)
  eq(noise, love.math.noise(0.5, 0.25))
  async.shutdown()
end)

test("thread backend: shutdown under load delivers every call once", { needs = { "threadBackend" } }, function()
  local seed = 4321
  local function rng(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
  for cycle = 1, 8 do
    local async = require "async"
    async.load(rng(3))
    async.define("id", function(...) return ... end)
    async.define("slow", function(s) local t = os.clock() + s; while os.clock() < t do end; return s end)
    async.define("fail", function(id) error({ id = id }) end)
    async.define("fan", function(id) return async.awaitAll({ { "id", id }, { "id", id + 1 } }) end)
    async.share("config", { scale = 2 })
    async.setWorkerInit(function(state) state.ready = true end)
    local issued, answered, seen = 0, 0, {}
    for i = 1, 400 do
      local function once() ok(not seen[i], "call " .. i .. " answered twice"); seen[i] = true; answered = answered + 1 end
      local cb = { success = once, error = once, cancelled = once }
      local kind, h = rng(6), nil
      if kind == 1 then h = async.call(cb, "slow", 0.0005)
      elseif kind == 2 then h = async.call(cb, "fail", i)
      elseif kind == 3 then h = async.call(cb, "fan", i)
      elseif kind == 4 then cb.key = "unit" .. (i % 5); h = async.call(cb, "id", i)
      else h = async.call(cb, "id", { id = i, list = { 1, 2, 3 } }) end
      issued = issued + 1
      if rng(30) == 1 then h:cancel() end
    end
    for _ = 1, rng(3) do async.update() end
    async.shutdown()
    eq(answered, issued, "cycle " .. cycle .. ": every call answered")
    package.loaded.async = nil
  end
end)

test("async.load{backend = ...} switches between the backends", function()
  local async = require "async"
  raises("unknown backend 'gpu'", async.load, { backend = "gpu" })
  for _, b in ipairs({ "thread", "native", "thread" }) do
    async.load { workers = 1, backend = b }
    eq(async.backend, b)
    async.define("sq", function(x) return x * x end)
    local r
    async.call(function(v) r = v end, "sq", 9)
    drain(async)
    eq(r, 81, b)
    async.shutdown()
  end
end)

test("awaitAll's parts run on idle workers in parallel", function()
  -- Each part waits (up to 10 s, so a failure cannot hang) until both
  -- parts have started: only parts running at the same time both see it.
  local async = require "async"
  async.load(2)
  local ffi = require "ffi"
  local flags = ffi.new("int32_t[2]")
  local addr = tonumber(ffi.cast("intptr_t", flags))
  async.define("part", function(i, a)
    local f = require("ffi").cast("volatile int32_t *", a)
    f[i] = 1
    local deadline = os.time() + 10
    while f[1 - i] == 0 and os.time() < deadline do end
    return f[1 - i] == 1 and async.workerIndex or -1
  end)
  async.define("both", function(a) return async.awaitAll({ { "part", 0, a }, { "part", 1, a } }) end)
  local r
  async.call({ success = function(t) r = t end, error = function(e) r = { e } end }, "both", addr)
  drain(async, 30)
  ok(r[1] ~= -1 and r[2] ~= -1, "both parts ran at the same time: " .. tostring(r[1]) .. ", " .. tostring(r[2]))
  ok(r[1] ~= r[2], "on two workers")
  async.shutdown()
end)

-- test_lifecycle.lua's checks that need buffers or memoryLimit (skipped on
-- this backend), without them.
test("thread backend: a NaN key or a raising callback table leaves no record in flight", { needs = { "threadBackend" } }, function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  raises("the callback's key is NaN", async.call, { key = 0 / 0 }, "id", 1)
  local cb = setmetatable({}, { __index = function(_, k) if k == "key" then error("index raised") end end })
  raises("index raised", async.call, cb, "id", 1)
  eq(async.stats().inflight, 0, "no record left in flight")
  local r
  async.call(function(x) r = x end, "id", 7)
  drain(async)
  eq(r, 7)
  async.shutdown()
end)

test("thread backend: collectgarbage('stop') and a broken environment metatable do not outlive the job", { needs = { "threadBackend" } }, function()
  local async = require "async"
  async.load(1)
  async.define("stopgc", function() collectgarbage("stop") return true end)
  async.define("gcruns", function() return collectgarbage("isrunning") end)
  async.define("breakenv", function()
    local mt = getmetatable(getfenv(1))
    mt.__index = nil
    mt.__newindex = function() error("no globals") end
    return true
  end)
  async.define("usemath", function() x = 1; return math.floor(2.5) + x end)
  local res = {}
  local function cb(name) return { success = function(v) res[name] = v end,
                                   error = function(e) res[name] = "error: " .. tostring(e) end } end
  for _, name in ipairs({ "stopgc", "gcruns", "breakenv", "usemath" }) do
    async.call(cb(name), name)
    drain(async)
  end
  eq(res.stopgc, true)
  eq(res.gcruns, true, "the next job ran with a collector")
  eq(res.usemath, 3, "the next job sees its globals")
  async.shutdown()
end)

test("thread backend: every terminal path ends the call and leaves nothing in flight", { needs = { "threadBackend" } }, function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  async.define("boom", function() error("boom") end)
  async.define("spin", function()
    local deadline = os.time() + 20
    while not async.cancelled() and os.time() < deadline do end
  end)
  local ended = {}
  local function settled(what)
    drain(async)
    eq(async.stats().inflight, 0, what .. ": nothing in flight")
  end
  local function cb(what)
    return { success = function() ended[what] = "success" end, error = function() ended[what] = "error" end,
             cancelled = function() ended[what] = "cancelled" end }
  end
  async.call(cb("delivered"), "id", 1); settled("delivered")
  async.call(cb("failed"), "boom"); settled("failed")
  local spinner = async.call(nil, "spin")
  waitFor(async, function() return async.stats().running == 1 end, "the spinner")
  local h = async.call(cb("by handle"), "id", 1)
  eq(h:cancel(), true)
  spinner:cancel(); settled("cancelled by handle")
  spinner = async.call(nil, "spin")
  waitFor(async, function() return async.stats().running == 1 end, "the spinner")
  local kq = cb("superseded"); kq.key = "q"
  local old = async.call(kq, "id", 1)
  async.call({ key = "q" }, "id", 1)
  eq(old:status(), "cancelled", "superseded while queued")
  spinner:cancel(); settled("superseded while queued")
  raises("is a function", async.call, nil, "id", print); settled("refused at encode")
  async.setWorkerInit(function() error("init fails") end)
  async.call(cb("init failed"), "id", 1); settled("worker init failed")
  async.setWorkerInit(nil)
  async.call(function()
    async.call(cb("during shutdown"), "id", 1) -- made while shutdown delivers: cancelled
  end, "id", 1)
  settle(async) -- its callback runs in shutdown only if the call ran (shutdown cancels queued ones)
  async.shutdown()
  eq(ended.delivered, "success"); eq(ended.failed, "error"); eq(ended["by handle"], "cancelled")
  eq(ended.superseded, "cancelled"); eq(ended["init failed"], "error"); eq(ended["during shutdown"], "cancelled")
end)

-- On both backends (docs/lua-api.md, "Data for jobs"), LÖVE objects go only
-- as async.call arguments and results: share, a definition's upvalues and a
-- worker's await/awaitAll refuse them.
test("LÖVE objects are refused by share, define's upvalues and a job's await", function()
  local async = require "async"
  require "love.image"
  async.load(2)
  local img = love.image.newImageData(2, 2)
  raises("async.share('img'): the value is a userdata: LÖVE objects and buffers go only as call arguments",
         async.share, "img", img)
  raises("(at .pic) is a userdata: LÖVE objects", async.share, "m", { pic = img })
  raises("upvalue 'img' is a userdata: LÖVE objects and buffers go only as call arguments",
         async.define, "uv", function() return img:getWidth() end)
  async.define("mk", function() return love.image.newImageData(1, 1) end)
  async.define("id", function(x) return x end)
  async.define("awaitArg", function(im) return async.await("id", im) end)
  async.define("awaitRes", function() return async.await("mk") end)
  async.define("allArg", function(im) return async.awaitAll({ { "id", 1 }, { "id", im } }) end)
  async.define("allRes", function() return async.awaitAll({ { "mk" }, { "mk" } }) end)
  local errs = {}
  for _, name in ipairs({ "awaitArg", "awaitRes", "allArg", "allRes" }) do
    async.call({ success = function() errs[name] = "succeeded" end, error = function(m) errs[name] = m end }, name, img)
  end
  drain(async)
  -- Both backends in the same words (async_messages.lua's).
  local said = "1 is a LÖVE object: a LÖVE object goes only as an async.call argument or result, not to await"
  for _, name in ipairs({ "awaitArg", "awaitRes", "allArg", "allRes" }) do
    ok(tostring(errs[name]):find(said, 1, true), name .. ": " .. tostring(errs[name]))
  end
  -- As call arguments and results they still go.
  local back
  async.call(function(x) back = x end, "id", img)
  drain(async)
  ok(back ~= nil and back:getWidth() == 2, "an ImageData as an argument and a result")
  async.shutdown()
end)

-- On both backends: the traceback a failed job hands to `error` ends at the
-- job. The thread backend's went on with six frames of its own worker code.
test("a failed job's traceback ends at the job, on its worker", function()
  local async = require "async"
  async.load(1)
  async.define("boom", function() error("tb-boom") end)
  async.define("outer", function() return async.await("boom") end)
  local tbs = {}
  async.call({ error = function(_, tb) tbs.boom = tb end }, "boom")
  async.call({ error = function(_, tb) tbs.outer = tb end }, "outer")
  drain(async)
  ok(tostring(tbs.boom):find("test_thread_backend.lua", 1, true), "the job's line: " .. tostring(tbs.boom))
  for name, tb in pairs(tbs) do
    ok(not tb:find("async_thread_worker", 1, true), name .. ": no frame of the backend's: " .. tb)
  end
  eq(tbs.boom ~= nil and tbs.outer ~= nil, true, "both failed")
  async.shutdown()
end)

test("define's misuse and a too-deep path read the same on both backends", function()
  local async = require "async"
  local deep = {}
  local cur = deep
  for _ = 1, 200 do cur.abcdefghij = {}; cur = cur.abcdefghij end
  local got = {}
  for _, b in ipairs({ "native", "thread" }) do
    async.load { workers = 1, backend = b }
    async.define("id", function(...) return ... end)
    local m = {}
    m[1] = select(2, pcall(async.define, "x", print))
    m[2] = select(2, pcall(async.undefine, "nope"))
    m[3] = select(2, pcall(async.define, "", function() end))
    m[4] = select(2, pcall(async.call, nil, "id", deep))
    async.shutdown()
    got[b] = m
  end
  for i = 1, 4 do eq(got.thread[i], got.native[i], "message " .. i) end
  -- Called through pcall, a C function: no position, and never the library's.
  ok(got.thread[1]:find("^async%.define%('x'%)"), got.thread[1])
end)
