-- Game-like workload under a trace: every job that ran must appear once in
-- the file, named after its definition, on a worker's track. Writes the
-- trace to $REVIEW_TRACE and the expected counts to $REVIEW_TRACE.expect
-- (name lo hi per line); check_trace.py compares. Runs under runner.lua
-- (luajit, ASYNC_PATH=ffi|capi) and the LÖVE suite (ASYNC_BACKEND=thread).
test("review: a game's frame of jobs, each once in the trace", function()
  local async = require "async"
  async.load(2)
  local out = assert(os.getenv("REVIEW_TRACE"), "REVIEW_TRACE")
  local lo, hi = {}, {}
  local function ran(name, maybe) -- a job of `name` surely ran (or maybe)
    hi[name] = (hi[name] or 0) + 1
    if not maybe then lo[name] = (lo[name] or 0) + 1 end
  end
  async.define("astar", function(n) local x = 0 for i = 1, n do x = x + i % 7 end return x end)
  async.define("chunk", function(cx, cy)
    local t = {} for i = 1, 256 do t[i] = (cx * 31 + cy * 17 + i) % 5 end return t end)
  async.define("fails", function(x) if x % 3 == 0 then error("bad tile " .. x) end return x end)
  async.define("slowEcho", function(x)
    local t = os.clock() + 0.002 while os.clock() < t and not async.cancelled() do end return x end)
  async.define("square", function(x) return x * x end)
  async.define("sumRange", function(i0, i1) local s = 0 for i = i0, i1 do s = s + i end return s end)
  async.define("inner", function(x) return x + 1 end)
  async.define("outer", function(x) return async.await("inner", x) * 2 end)
  local weird = "pathfind \"quoted\" \\ back\tslash\n" .. ("long"):rep(100) .. " é ☃"
  async.define(weird, function(x) return x end)
  for i = 1, 300 do async.define("def" .. i, function(x) return x end) end
  assert(async.startTrace({ events = 100000 }))
  local nested = async.backend == "native"
  for frame = 1, 30 do
    -- a path per unit, whose callback asks for the chunk it leads to
    for u = 1, 8 do
      async.call(function(x)
        async.call(function() end, "chunk", u, x % 9)
      end, "astar", 2000 + u)
      ran("astar"); ran("chunk")
    end
    -- failing jobs, one error handler
    for i = 1, 3 do async.call({ success = function() end, error = function() end }, "fails", frame * 3 + i); ran("fails") end
    -- latest request wins
    local unit = {}
    for target = 1, 4 do
      async.call({ key = unit, success = function() end, cancelled = function() end }, "slowEcho", target)
      ran("slowEcho", target < 4)
    end
    -- a cancel
    local h = async.call(function() end, "slowEcho", 0)
    local c = h:cancel()
    if not c then ran("slowEcho") end
    -- many calls, one callback
    async.map(function() end, "square", { 1, 2, 3, 4 })
    for _ = 1, 4 do ran("square") end
    async.parallelFor(function() end, "sumRange", 1, 100, 25)
    for _ = 1, 4 do ran("sumRange") end
    -- a coroutine
    async.go(function() async.await("square", frame); async.await("outer", frame) end)
    ran("square"); ran("outer"); if nested then ran("inner") end
    async.call(function() end, weird, frame); ran(weird)
    async.call(function() end, "def" .. frame, frame); ran("def" .. frame)
    -- a callback that raises
    async.call(function() error("game bug") end, "square", 2); ran("square")
    if frame == 10 then async.define("astar", function(n) return n end) end -- redefined in flight
    if frame == 20 then async.undefine("def1") end
    for _ = 1, 3 do pcall(async.update) end
  end
  local t = os.clock() + 10
  while async.stats().inflight > 0 and os.clock() < t do pcall(async.update) end
  for _ = 1, 5 do pcall(async.update) end
  eq(async.stats().inflight, 0, "all delivered")
  local defs = async.stats().defs
  local f = assert(io.open(out .. ".expect", "w"))
  for name, n in pairs(hi) do
    f:write(("%s %d %d %d\n"):format((name:gsub(".", function(c) return ("%02x"):format(c:byte()) end)), lo[name] or 0, n, defs[name] and defs[name].calls or -1))
  end
  f:close()
  ok(async.stopTrace(out))
  async.shutdown()
end)
