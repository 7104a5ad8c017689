-- SPDX-License-Identifier: MIT (see LICENSE)
-- gallery_pair.lua: the gallery's "two processes, no library" run.
-- The serial loop of one workload runs in this LÖVE process and, at the same
-- moment, in a second one, with no job system anywhere: what this machine's
-- two cores give two such loops is the ceiling the 2-worker figures are read
-- against (memory-heavy Lua jobs slow each other down even in separate
-- processes, so 2× is not on offer).
--
-- The second process is this one, forked: a fresh LÖVE process would have a
-- small Lua heap and traces of its own, and LuaJIT maps every block of
-- 128 KiB or more afresh in a heap without free room (ANALYSIS.md, "The worker
-- tax"): with a fresh `love` process as the second one, the pair's flood
-- runs took 12,500-20,200 minor faults (the mean of the two processes) where
-- the serial run took 0-31. A twin has the same heap and traces (0-1 faults),
-- so the two loops differ only in running at once. The child runs Lua only (the gallery
-- forks between systems, when no worker thread exists) and leaves by _exit.
local ffi = require "ffi"
local timed = require "gallery_timed"

pcall(ffi.cdef, [[
  int gallery_fork(void) __asm__("fork");
  void gallery_exit(int status) __asm__("_exit");
  int gallery_waitpid(int pid, int *status, int options) __asm__("waitpid");
]])

local P = {}

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function touch(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text or "")
  f:close()
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

-- The child's side: once through the loop to warm up (at the same time as
-- the parent's, so each twin's heap pages are its own copies before the
-- measured run), say ready, wait for go, run it again; the figures go to a
-- file the parent reads.
local function child(wl, sync, runSerial)
  runSerial(wl)
  touch(sync .. ".ready")
  -- 0.2 ms polls: the child starts within a fraction of a millisecond of
  -- the parent (0.1–0.3 ms measured).
  if not waitFor(120, 0.0002, sync .. ".go") then error("no go from the parent in 120 s") end
  local t0 = timed.mono()
  local _, jobcpu, main, sum, ksys, flt = runSerial(wl)
  local figures = { t0 = t0, t1 = timed.mono(), jobcpu = jobcpu, main = main, sum = sum, ksys = ksys, flt = flt }
  local lines = {}
  for k, v in pairs(figures) do lines[#lines + 1] = ("pair_%s\t%.17g\n"):format(k, v) end
  touch(sync .. ".part", table.concat(lines))
  os.rename(sync .. ".part", sync .. ".done")
end

--- The parent's side. Returns the pair's wall time (go to the later of the
--- two ends) and, per process (the mean of the two, so that they compare
--- with one serial run), the jobs' CPU, the main thread's CPU, the checksum
--- (equal in both), the jobs' kernel time and faults.
function P.run(wl, runSerial)
  local sync = os.tmpname()
  local files = { sync, sync .. ".ready", sync .. ".go", sync .. ".part", sync .. ".done" }
  io.stdout:flush()
  io.stderr:flush()
  local pid = ffi.C.gallery_fork()
  if pid < 0 then error("gallery: fork failed for the pair run") end
  if pid == 0 then
    local ok, err = pcall(child, wl, sync, runSerial)
    if not ok then touch(sync .. ".done", "error\t" .. tostring(err)) end
    ffi.C.gallery_exit(ok and 0 or 1)
  end
  local function finish()
    ffi.C.gallery_waitpid(pid, nil, 0)
    local f = io.open(sync .. ".done", "r")
    local text = f and f:read("*a") or ""
    if f then f:close() end
    for _, path in ipairs(files) do os.remove(path) end
    return text
  end
  runSerial(wl)
  if waitFor(300, 0.001, sync .. ".ready", sync .. ".done") ~= sync .. ".ready" then
    error("gallery: the pair's second process was not ready: " .. finish())
  end
  local go = timed.mono()
  touch(sync .. ".go")
  local _, jobcpu, main, sum, ksys, flt = runSerial(wl)
  local t1 = timed.mono()
  if not waitFor(300, 0.001, sync .. ".done") then error("gallery: the pair's second process did not finish") end
  local text = finish()
  local c = {}
  for k, v in text:gmatch("pair_(%w+)\t([^\n]+)") do c[k] = tonumber(v) end
  if not c.t1 then error("gallery: the pair's second process gave no figures: " .. text) end
  if c.sum ~= sum then error(("gallery: the pair's two processes got other results (%s vs %s)"):format(c.sum, sum)) end
  return math.max(t1, c.t1) - go, (jobcpu + c.jobcpu) / 2, (main + c.main) / 2, sum,
    (ksys + c.ksys) / 2, (flt + c.flt) / 2
end

return P
