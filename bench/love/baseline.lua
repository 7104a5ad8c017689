-- SPDX-License-Identifier: MIT (see LICENSE)
-- baseline.lua: Async 1.1's design, re-created for measurement (its code is
-- not available here; its behaviour is described in shared/notes): workers
-- are love.threads reading one request Channel; arguments and results travel
-- as tables through Channels; definitions are string.dump bytecode sent to
-- each worker; every call gets a fresh global table; callbacks run in
-- update(). Same API shape as ours, so the same workloads drive both.
local B = {}

local WORKER = [[
local reqName, resName, defName, path = ...
package.path = path -- as the caller's: jobs require the game's modules
require "love.thread"
local req = love.thread.getChannel(reqName)
local res = love.thread.getChannel(resName)
local defch = love.thread.getChannel(defName)
local defs = {}
local function syncDefs()
  local d = defch:pop()
  while d do
    defs[d.name] = loadstring(d.code)
    d = defch:pop()
  end
end
while true do
  local msg = req:demand()
  syncDefs()
  if msg.stop then break end
  local fn = defs[msg.name]
  setfenv(fn, setmetatable({}, { __index = _G }))
  local r = { pcall(fn, unpack(msg.args)) }
  res:push({ id = msg.id, ok = table.remove(r, 1), results = r })
end
]]

local threads, cbs, nextId = {}, {}, 0
local req, res
local inflight = 0

function B.load(n)
  req = love.thread.getChannel("baseline.req")
  res = love.thread.getChannel("baseline.res")
  for i = 1, n do
    local t = love.thread.newThread(WORKER)
    t:start("baseline.req", "baseline.res", "baseline.def" .. i, package.path)
    threads[i] = t
  end
end

function B.define(name, fn)
  local code = string.dump(fn)
  for i = 1, #threads do
    love.thread.getChannel("baseline.def" .. i):push({ name = name, code = code })
  end
end

function B.call(cb, name, ...)
  nextId = nextId + 1
  cbs[nextId] = cb
  inflight = inflight + 1
  req:push({ id = nextId, name = name, args = { ... } })
end

function B.update()
  local msg = res:pop()
  while msg do
    local cb = cbs[msg.id]
    cbs[msg.id] = nil
    inflight = inflight - 1
    if msg.ok and cb then cb(unpack(msg.results)) end
    msg = res:pop()
  end
end

function B.inflight() return inflight end

function B.shutdown()
  for _ = 1, #threads do req:push({ stop = true }) end
  for _, t in ipairs(threads) do t:wait() end
  threads = {}
end

return B
