-- SPDX-License-Identifier: MIT (see LICENSE)
-- soak.lua: millions of calls while workers are added and stopped at random,
-- definitions and shared values are replaced, calls are cancelled, jobs fail
-- and run out of memory; checks that every call is answered exactly once with
-- the value its definition gives, and that memory stays flat after warm-up.
--   luajit soak.lua <lua build folder> [calls] [seed]
-- Prints its figures; exits 1 on any violation.
local dir = assert(arg[1], "usage: soak.lua <lua build folder> [calls] [seed]")
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. dir .. "/?.dll;" .. package.cpath -- .dll: Windows (under Wine)
local ffi = require "ffi"
local async = require "async"

local N = math.floor(tonumber(arg[2] or os.getenv("ASYNC_SOAK_CALLS") or 2e6))
local seed = tonumber(arg[3] or os.getenv("ASYNC_SOAK_SEED") or os.time())
math.randomseed(seed)
local MiB = 1024 * 1024
local LIMIT = 64 * MiB
local W = 8192 -- calls in flight at most

local function rss()
  local f = io.open("/proc/self/statm")
  local _, res = f:read("*n", "*n")
  f:close()
  return res * 4096
end

local failures = {}
local function violation(msg)
  if #failures < 20 then failures[#failures + 1] = msg end
  failures.n = (failures.n or 0) + 1
end

async.load { workers = 2, memoryLimit = LIMIT }

-- Definitions: version v answers (slot, id, 3 * id + v + shared bias).
local function make(v)
  return function(slot, id, kind)
    if kind == 1 then error({ slot = slot, id = id }) end
    return slot, id, 3 * id + v + (async.shared.bias or 0)
  end
end
local version, bias = 1, 0
async.define("f", make(version))
async.share("bias", bias)
async.define("hog", function()
  local t = {}
  for i = 1, 1e9 do t[i] = { i } end
end)

-- Slots: which call holds each (0: free) and what it must answer.
local slotId = ffi.new("int32_t[?]", W)
local slotWant = ffi.new("double[?]", W)
local slotKind = ffi.new("uint8_t[?]", W)
local free = ffi.new("int32_t[?]", W)
local nfree = W
for i = 0, W - 1 do free[i] = W - 1 - i end

local c = { issued = 0, ok = 0, errors = 0, cancelled = 0, oom = 0, redefinitions = 0,
  shares = 0, added = 0, stopped = 0, hogs = 0 }
local inflight = 0

local function release(slot)
  slotId[slot] = 0
  free[nfree] = slot
  nfree = nfree + 1
  inflight = inflight - 1
end

local callbacks = {
  success = function(slot, id, value)
    if slot == nil or slot < 0 or slot >= W or slotId[slot] ~= id then
      violation(("unexpected or repeated answer: slot %s id %s"):format(tostring(slot), tostring(id)))
      return
    end
    if slotKind[slot] ~= 0 then violation(("call %d should have failed"):format(id)) end
    if value ~= slotWant[slot] then
      violation(("call %d answered %s, expected %s"):format(id, tostring(value), tostring(slotWant[slot])))
    end
    c.ok = c.ok + 1
    release(slot)
  end,
  error = function(e)
    if type(e) ~= "table" or slotId[e.slot] ~= e.id or slotKind[e.slot] ~= 1 then
      violation("unexpected failure: " .. tostring(type(e) == "table" and e.id or e))
      return
    end
    c.errors = c.errors + 1
    release(e.slot)
  end,
}

local hogInFlight = false
local function hogDone(e)
  hogInFlight = false
  if type(e) == "string" and e:find("hog: out of memory", 1, true) then
    c.oom = c.oom + 1
  else
    violation("the hog did not fail with out of memory: " .. tostring(e))
  end
end
local hogCallbacks = { success = function() hogDone("succeeded") end, error = hogDone }

local function issueOne()
  local slot = free[nfree - 1]
  nfree = nfree - 1
  local id = c.issued + 1
  local kind = math.random() < 0.01 and 1 or 0
  slotId[slot], slotKind[slot], slotWant[slot] = id, kind, 3 * id + version + bias
  inflight = inflight + 1
  c.issued = id
  local h = async.call(callbacks, "f", slot, id, kind)
  if math.random() < 0.005 and h:cancel() then
    c.cancelled = c.cancelled + 1
    release(slot)
  end
end

-- One random change to the pool or the registry.
local function disturb()
  local r = math.random()
  local n = async.getWorkerCount()
  if r < 0.25 then
    if n < 4 then async.addWorker(); c.added = c.added + 1 end
  elseif r < 0.5 then
    if n > 1 then async.stopWorkers(1); c.stopped = c.stopped + 1 end
  elseif r < 0.75 then
    version = version + 1
    async.define("f", make(version))
    c.redefinitions = c.redefinitions + 1
  elseif r < 0.95 then
    bias = bias + 1
    async.share("bias", bias)
    c.shares = c.shares + 1
  elseif not hogInFlight then
    hogInFlight = true
    c.hogs = c.hogs + 1
    async.call(hogCallbacks, "hog")
  end
end

local function sample()
  collectgarbage()
  collectgarbage()
  local s = async.stats()
  return { rss = rss(), lua = collectgarbage("count") * 1024, workers = s.memory, perWorker = s.memory / math.max(1, s.workerCount) }
end

io.stdout:setvbuf("line")
print(("soak: %d calls, seed %d, memoryLimit %d MiB per worker"):format(N, seed, LIMIT / MiB))
local t0 = os.time()
local samples, nextSample = {}, math.floor(N / 5)
while c.issued < N do
  local burst = math.min(N - c.issued, nfree, math.random(1, 500))
  for _ = 1, burst do issueOne() end
  if math.random() < 0.2 then disturb() end
  async.update()
  -- Sampled between hogs: a hog in flight holds up to the limit by design.
  if c.issued >= nextSample then
    while hogInFlight do async.update() end
    samples[#samples + 1] = sample()
    nextSample = nextSample + math.floor(N / 5)
  end
  if os.time() - t0 > 1200 then violation("gave up after 1200 s"); break end
end
local deadline = os.time() + 120
while (inflight > 0 or hogInFlight) and os.time() < deadline do async.update() end
local final = sample()
local s = async.stats()
async.shutdown()

if inflight ~= 0 then violation(inflight .. " calls never answered") end
if hogInFlight then violation("the hog never answered") end
if c.ok + c.errors + c.cancelled ~= c.issued then
  violation(("answered %d + failed %d + cancelled %d ~= issued %d"):format(c.ok, c.errors, c.cancelled, c.issued))
end
if s.statesReplaced ~= c.oom then
  violation(("statesReplaced %d ~= out-of-memory jobs %d"):format(s.statesReplaced, c.oom))
end

print(("issued %d: answered %d, failed on purpose %d, cancelled %d, lost 0 unless listed below")
  :format(c.issued, c.ok, c.errors, c.cancelled))
print(("faults: %d job errors, %d out-of-memory jobs (%d states replaced), %d cancels"):format(
  c.errors, c.oom, s.statesReplaced, c.cancelled))
print(("churn: %d workers added, %d stopped, %d redefinitions, %d shared-value changes"):format(
  c.added, c.stopped, c.redefinitions, c.shares))
print(("time: %d s"):format(os.time() - t0))
print("memory after each fifth of the calls (no hog running; after a full collection in the game):")
print("  RSS MiB   game Lua MiB   workers' Lua MiB (per worker)")
for _, m in ipairs(samples) do
  print(("  %7.1f   %12.2f   %9.2f (%.2f)"):format(m.rss / MiB, m.lua / MiB, m.workers / MiB, m.perWorker / MiB))
end
print(("  %7.1f   %12.2f   %9.2f  after draining"):format(final.rss / MiB, final.lua / MiB, final.workers / MiB))

-- Flat after warm-up: the first fifth is the warm-up; compare the state
-- after draining with the first sample after it. A leak of even 8 bytes a
-- call is 12 MiB over 1.6 M calls; the bounds sit above the allocator's and
-- the collector's noise (about 1 MiB of RSS in runs here) and below that.
-- Under ASan or TSan, RSS means nothing (ASan's quarantine keeps freed
-- blocks, TSan keeps shadow memory): there LeakSanitizer checks at exit.
local sanitized = (os.getenv("LD_PRELOAD") or ""):find("san", 1, true) ~= nil
if samples[1] then
  local warm = samples[1]
  local drss = final.rss - warm.rss
  local dlua = final.lua - warm.lua
  print(("growth after warm-up: RSS %+.1f MiB, game Lua %+.2f MiB, workers' Lua %+.2f MiB"):format(
    drss / MiB, dlua / MiB, (final.workers - warm.workers) / MiB))
  if sanitized then
    print("RSS bound not checked under a sanitizer")
  elseif drss > 8 * MiB then
    violation(("RSS grew by %.1f MiB after warm-up"):format(drss / MiB))
  end
  if dlua > 1 * MiB then violation(("the game's Lua memory grew by %.2f MiB after warm-up"):format(dlua / MiB)) end
  -- A worker-side leak would fill a state to its limit and show up as a
  -- replacement no hog caused (the statesReplaced check above).
  if final.workers > 8 * MiB then violation(("the workers' Lua states hold %.1f MiB after draining"):format(final.workers / MiB)) end
else
  violation("no memory sample was taken")
end

if failures.n then
  print(("FAILED: %d violations"):format(failures.n))
  for _, f in ipairs(failures) do print("  " .. f) end
  os.exit(1)
end
print("soak passed: every call answered exactly once with the right value")
