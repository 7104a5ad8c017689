-- stats().defs against a workload whose figures are known: a queue of 100
-- jobs of ~2 ms on one worker (the k-th waits ~2k ms), exact counts of
-- failures and cancels. Prints the figures; checks only counts and broad
-- bounds (no timing asserted beyond "the wait grows with the queue").
test("review: figures of a deliberately long queue", function()
  local async = require "async"
  async.load(1)
  async.define("chunk", function(ms)
    local t = os.clock() + ms / 1000 while os.clock() < t do end return ms end)
  async.define("fails", function(x) if x % 4 == 0 then error("no") end return x end)
  local N = 100
  local t0 = async.now()
  for i = 1, N do async.call(nil, "chunk", 2) end
  local handles = {}
  for i = 1, 40 do handles[i] = async.call({ success = function() end, error = function() end }, "fails", i) end
  local cancelled = 0
  for i = 1, 40, 2 do if handles[i]:cancel() then cancelled = cancelled + 1 end end
  local t = os.clock() + 30
  while async.stats().inflight > 0 and os.clock() < t do async.update() end
  local wall = async.now() - t0
  local d, f = async.stats().defs.chunk, async.stats().defs.fails
  print(("chunk: calls %d runs %d runMean %.2f ms runP99 %.2f ms runTotal %.1f ms waitMean %.1f ms waitP99 %.1f ms; wall %.1f ms"):format(
    d.calls, d.runs, d.runMean * 1e3, d.runP99 * 1e3, d.runTotal * 1e3, d.waitMean * 1e3, d.waitP99 * 1e3, wall * 1e3))
  print(("fails: calls %d failures %d cancels %d (cancelled %d)"):format(f.calls, f.failures, f.cancels, cancelled))
  eq(d.calls, N, "chunk calls")
  eq(f.calls, 40, "fails calls")
  eq(f.cancels, cancelled, "cancels")
  eq(f.cancels, 20, "odd ones cancelled while queued behind the chunks")
  eq(f.failures, 10, "x % 4 == 0 among the even ones")
  ok(d.waitP99 > d.waitMean and d.waitMean > 20 * d.runMean, "the wait reflects the queue")
  async.shutdown()
end)
