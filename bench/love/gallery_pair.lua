-- gallery_pair.lua: the gallery's "two processes, no library" run (issue 13).
-- The serial loop of one workload runs in this LÖVE process and, at the same
-- moment, in a second one started for it, with no job system anywhere: what
-- this machine's two cores give two such loops is the ceiling the 2-worker
-- figures are read against (memory-heavy Lua jobs slow each other down even
-- in separate processes, so 2× is not on offer).
local timed = require "gallery_timed"

local P = {}

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function touch(path)
  assert(io.open(path, "w")):close()
end

local function shellQuote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

-- Waits for one of the files, polling every `step` seconds; returns the one
-- that appeared, or nil after `limit` seconds.
local function waitFor(limit, step, ...)
  local t0 = timed.mono()
  repeat
    for i = 1, select("#", ...) do
      local path = select(i, ...)
      if exists(path) then return path end
    end
    love.timer.sleep(step)
  until timed.mono() - t0 > limit
end

-- The child's side (main.lua --gallery-child): run the loop once alone to
-- warm up (a fresh process has no traces and a heap still growing, while
-- the parent has just run the same loop as "serial"), say ready, wait for
-- go, run it again, print the figures for the parent. The solo run's are
-- kept too: the child's traces are its own, and may be slower or faster
-- than the parent's whatever the other process does.
function P.child(wl, sync, runSerial)
  local soloWall, soloJobcpu = runSerial(wl)
  touch(sync .. ".ready")
  -- 0.2 ms polls: the child starts within a fraction of a millisecond of
  -- the parent (0.1–0.3 ms measured).
  if not waitFor(120, 0.0002, sync .. ".go") then error("gallery child: no go from the parent in 120 s") end
  local t0 = timed.mono()
  local _, jobcpu, main, sum, ksys, flt = runSerial(wl)
  local figures = { t0 = t0, t1 = timed.mono(), jobcpu = jobcpu, main = main, sum = sum, ksys = ksys, flt = flt,
    soloWall = soloWall, soloJobcpu = soloJobcpu }
  for k, v in pairs(figures) do io.write(("pair_%s\t%.17g\n"):format(k, v)) end
  io.flush()
end

--- The parent's side. opts: libdir, scale. Returns the pair's wall time
--- (go to the later of the two ends) and, per process (the mean of the two,
--- so that they compare with one serial run), the jobs' CPU, kernel time and
--- faults and the main thread's CPU; then the checksum, equal in both; then
--- the child's wall and job CPU when it ran the loop alone.
function P.run(wl, opts, runSerial)
  local sync = os.tmpname()
  local files = { sync, sync .. ".ready", sync .. ".go", sync .. ".exit" }
  local cmd = ("%s %s %s --gallery-child %s --scale %.17g --sync %s; echo $? > %s"):format(
    shellQuote(arg[-2] or "love"), shellQuote(love.filesystem.getSource()), shellQuote(opts.libdir or "."),
    shellQuote(wl.name), opts.scale or 1, shellQuote(sync), shellQuote(sync .. ".exit"))
  local child = assert(io.popen(cmd, "r"))
  local function fail(why, text)
    text = text or child:read("*a")
    child:close()
    for _, f in ipairs(files) do os.remove(f) end
    error(("gallery: the pair's second process %s (%s); its output:\n%s"):format(why, cmd, text))
  end
  local got = waitFor(300, 0.001, sync .. ".ready", sync .. ".exit")
  if got ~= sync .. ".ready" then fail(got and "ended before it was ready" or "was not ready in 300 s") end
  local go = timed.mono()
  touch(sync .. ".go")
  local _, jobcpu, main, sum, ksys, flt = runSerial(wl)
  local t1 = timed.mono()
  local text = child:read("*a")
  local c = {}
  for k, v in text:gmatch("pair_(%w+)\t([^\n]+)") do c[k] = tonumber(v) end
  if not c.t1 then fail("gave no figures", text) end
  if c.sum ~= sum then fail(("got other results (%s vs %s)"):format(c.sum, sum), text) end
  child:close()
  for _, f in ipairs(files) do os.remove(f) end
  return math.max(t1, c.t1) - go, (jobcpu + c.jobcpu) / 2, (main + c.main) / 2, sum,
    (ksys + c.ksys) / 2, (flt + c.flt) / 2, c.soloWall, c.soloJobcpu
end

return P
