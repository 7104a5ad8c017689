-- test_hostile.lua: regressions for the second hostile pass over the Lua
-- layer (h/t*.lua of that review), one test per defect, numbered as in the
-- brief that listed them.

-- H1. An empty map/parallelFor cancelled before its deferred finish ends once.
test("H1: an empty map or parallelFor that is cancelled calls only cancelled", function()
  local async = require "async"
  async.load(1)
  async.define("f", function(x) return x end)
  local s, c = 0, 0
  local cb = { success = function() s = s + 1 end, cancelled = function() c = c + 1 end }
  async.map(cb, "f", {}):cancel()
  async.parallelFor(cb, "f", 5, 1, 1):cancel()
  async.update(); async.update()
  eq(s, 0, "success calls")
  eq(c, 2, "cancelled calls")
  async.shutdown()
end)

-- H2. A job that replaces its thread's globals or removes a standard global
-- does not break the later jobs of its worker.
test("H2: setfenv(0, {}) or removing a global in one job leaves the worker sane", function()
  local async = require "async"
  async.load(1)
  async.define("probe", function()
    return type(math) == "table" and type(string.format) == "function" and type(async) == "table"
  end)
  async.define("setfenv0", function() setfenv(0, {}) end)
  async.define("noasync", function() rawset(_G, "async", nil) end)
  async.define("strict", function() setmetatable(_G, { __index = function() error("strict") end }) end)
  async.define("addglobal", function() rawset(_G, "kept", 42) end)
  async.define("readglobal", function() return kept end)
  for _, name in ipairs({ "setfenv0", "noasync", "strict" }) do
    async.call(nil, name)
    local r, e
    async.call({ success = function(x) r = x end, error = function(m) e = m end }, "probe")
    drain(async)
    ok(r == true, name .. " broke the worker: " .. tostring(r) .. " " .. tostring(e))
  end
  -- Globals a job adds are not taken away.
  local v
  async.call(nil, "addglobal")
  async.call(function(x) v = x end, "readglobal")
  drain(async)
  eq(v, 42, "a global added by a job")
  async.shutdown()
end)
