-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_shutdown.lua: shutdown under load. Calls of every kind, queued
-- (cancelled) or running (finished), deliver exactly once; under the ASan build,
-- LeakSanitizer checks at exit that nothing was leaked.

local MiB = 1024 * 1024

-- Issues `n` calls of mixed kinds; returns the tally the callbacks fill.
local function load_up(async, n, rng)
  local tally = { issued = 0, ok = 0, failed = 0, cancelled = 0, seen = {} }
  local function once(id)
    if tally.seen[id] then error("call " .. id .. " answered twice") end
    tally.seen[id] = true
  end
  local buffers = {}
  for i = 1, n do
    local kind = rng(8)
    local id = i
    local cb = {
      success = function() once(id); tally.ok = tally.ok + 1 end,
      error = function() once(id); tally.failed = tally.failed + 1 end,
      cancelled = function() once(id); tally.cancelled = tally.cancelled + 1 end,
    }
    local h
    if kind == 1 then
      h = async.call(cb, "slow", 0.0005)
    elseif kind == 2 then
      h = async.call(cb, "fail", id)
    elseif kind == 3 then
      local b = async.newBuffer(256)
      buffers[#buffers + 1] = b
      h = async.call(cb, "fill", b, id)
    elseif kind == 4 then
      h = async.call(cb, "fan", id)
    elseif kind == 5 then
      h = async.call(cb, "id", { id = id, list = { 1, 2, 3 } }, "s" .. id)
    elseif kind == 6 then
      cb.key = "unit" .. (id % 7) -- latest wins: earlier queued ones are cancelled
      h = async.call(cb, "latest", id)
    else
      h = async.call(cb, "id", id)
    end
    tally.issued = tally.issued + 1
    if rng(50) == 1 then h:cancel() end
  end
  return tally, buffers
end

local function define_all(async)
  async.define("id", function(...) return ... end)
  async.define("slow", function(s) local t = os.clock() + s; while os.clock() < t do end; return s end)
  async.define("fail", function(id) error({ id = id }) end)
  async.define("fill", function(b, id)
    local p = b:ptr("uint8_t")
    for i = 0, b:size() - 1 do p[i] = id % 256 end
    return id
  end)
  async.define("fan", function(id)
    return async.awaitAll({ { "id", id }, { "id", id + 1 } })
  end)
  async.define("latest", function(id) return id end)
  async.share("config", { scale = 2, names = { "a", "b" } })
  async.setWorkerInit(function(state) state.ready = true end)
end

test("shutdown under load delivers every call once, 20 times over", { needs = { "memoryLimit", "buffers" } }, function()
  local seed = 12345
  local function rng(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
  for cycle = 1, 20 do
    local async = require "async"
    async.load { workers = rng(3), memoryLimit = 32 * MiB }
    define_all(async)
    local tally, buffers = load_up(async, 2000, rng)
    -- some delivered, most still queued or running when shutdown comes
    for _ = 1, rng(3) do async.update() end
    async.shutdown()
    eq(tally.ok + tally.failed + tally.cancelled, tally.issued, "cycle " .. cycle .. ": every call answered")
    for _, b in ipairs(buffers) do eq(b:lent(), false, "buffers are the game's again") end
    ok(not async.isLoaded(), "unloaded")
  end
end)

test("shutdown while a job runs out of memory and others are queued", { needs = { "memoryLimit" } }, function()
  local async = require "async"
  async.load { workers = 2, memoryLimit = 16 * MiB }
  define_all(async)
  async.define("hog", function() local t = {}; for i = 1, 1e9 do t[i] = { i } end end)
  local err
  local h = async.call({ error = function(e) err = e end }, "hog")
  while h:status() == "queued" do end -- shutdown cancels a queued call
  local tally = load_up(async, 500, function(n) return (n > 2) and 7 or 1 end)
  async.shutdown()
  ok(tostring(err):find("out of memory", 1, true), tostring(err))
  eq(tally.ok + tally.failed + tally.cancelled, tally.issued, "every queued call answered")
end)

test("shutdown{timeout} stops a job running interpreted Lua, leaves a compiled loop and answers the queued calls", function()
  local async = require "async"
  async.load(2)
  -- Never checks async.cancelled(): interpreted (its JIT off), the
  -- deadline's hook stops it.
  async.define("interpreted", function() jit.off(); while true do end end)
  -- Never checks either, in a loop the JIT compiles: no hook runs there, so
  -- shutdown leaves it running; it ends by itself after a second or two.
  async.define("compiled", function() local x = 0; for i = 1, 2e9 do x = x + i % 3 end; return x end)
  local got = { cancelled = 0 }
  async.call({ success = function() got.interpreted = "returned" end, error = function(e) got.interpreted = e end },
    "interpreted")
  async.call({ success = function() got.compiled = "returned" end, error = function(e) got.compiled = e end }, "compiled")
  while async.stats().running < 2 do end
  for _ = 1, 5 do async.call({ cancelled = function() got.cancelled = got.cancelled + 1 end }, "interpreted") end
  async.shutdown { timeout = 0.2 }
  ok(tostring(got.interpreted):find("stopped: async.shutdown's deadline passed", 1, true), tostring(got.interpreted))
  eq(got.compiled, nil, "the compiled loop was left running: its callback never runs")
  eq(got.cancelled, 5, "the queued calls were answered cancelled")
  ok(not async.isLoaded(), "unloaded")
  -- A new pool works beside the one left behind.
  async.load(1)
  async.define("id", function(x) return x end)
  local r
  async.call(function(x) r = x end, "id", 7)
  drain(async)
  eq(r, 7)
  async.shutdown()
  eq(got.compiled, nil, "still never delivered")
end)
