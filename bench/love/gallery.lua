-- SPDX-License-Identifier: MIT (see LICENSE)
-- gallery.lua: the workload gallery: game jobs written the way
-- game code is written (gallery_jobs.lua), each run serially on the main
-- thread, on ours with 1 and 2 workers and on the love.thread baseline
-- (baseline.lua, Async 1.1's design) with 1 and 2 workers, in one process,
-- alternating, `reps` times. Each system gets every request of a workload at
-- once, then the main thread calls update() and sleeps 1 ms until the last
-- callback, as a game's frame loop would. Every job measures its own
-- thread-CPU time (gallery_timed.lua), which gives the worker tax: the
-- jobs' CPU time in workers over the same jobs' CPU time on the main thread.
-- Beside them, "pair" runs the serial loop in two processes at once
-- (gallery_pair.lua): the machine's own 2-core ceiling for that workload.
local timed = require "gallery_timed"
local pair = require "gallery_pair"

local G = {}

local now = love.timer.getTime

-- Requests run untimed before each timed batch, per worker (serial: once):
-- a game's pool lives through the game, so its workers' JIT traces and
-- heaps are warm when a batch arrives, as the main thread's are by then.
-- Without this the first system to run a workload paid its compile (the
-- serial A* of rep 1 took 2.3-2.4 s against 1.6-1.7 s in rep 2), and every
-- fresh pool paid its own on top of the batch.
local WARM = 25

-- Each system: load(k), define(name, fn), call(cb, name, ...), update(),
-- shutdown().
local function runSystem(sys, k, wl)
  sys.load(k)
  -- No upvalues: the baseline sends definitions as string.dump bytecode.
  sys.define("gallery_" .. wl.name, assert(loadstring(
    ("return function(...) return require('gallery_timed').run(%q, ...) end"):format(wl.name)))())
  local n, got, jobcpu, ksys, flt, sum = #wl.reqs, 0, 0, 0, 0, 0
  local cb = function(c, s, f, ...)
    got, jobcpu, ksys, flt = got + 1, jobcpu + c, ksys + s, flt + f
    sum = sum + wl.sum(...)
  end
  local name = "gallery_" .. wl.name
  local warm, warmed = math.min(WARM * k, n), 0
  for i = 1, warm do sys.call(function() warmed = warmed + 1 end, name, unpack(wl.reqs[i])) end
  while warmed < warm do
    sys.update()
    love.timer.sleep(0.001)
  end
  local t0, c0 = now(), timed.cpu()
  for i = 1, n do sys.call(cb, name, unpack(wl.reqs[i])) end
  while got < n do
    sys.update()
    love.timer.sleep(0.001)
    if now() - t0 > 600 then error(("gallery: %s did not finish %s in 600 s"):format(sys.name, wl.name)) end
  end
  local wall, main = now() - t0, timed.cpu() - c0
  sys.shutdown()
  return wall, jobcpu, main, sum, ksys, flt
end


local function runSerial(wl)
  for i = 1, math.min(WARM, #wl.reqs) do timed.run(wl.name, unpack(wl.reqs[i])) end
  local jobcpu, ksys, flt, sum = 0, 0, 0, 0
  local t0, c0 = now(), timed.cpu()
  for i = 1, #wl.reqs do
    local r = { timed.run(wl.name, unpack(wl.reqs[i])) }
    jobcpu, ksys, flt = jobcpu + r[1], ksys + r[2], flt + r[3]
    sum = sum + wl.sum(unpack(r, 4))
  end
  return now() - t0, jobcpu, timed.cpu() - c0, sum, ksys, flt
end

--- Runs the gallery; emit(name, value, unit) receives every figure:
--- gallery_wall_s/<workload>/<system>/<rep>, gallery_jobcpu_s/...,
--- gallery_maincpu_s/... (the main thread's CPU over the run), and the
--- jobs' kernel time and minor faults: gallery_jobsys_s/..., gallery_jobfaults/....
--- For the system "pair" the wall time is the pair's (go to the later end),
--- the others are per process (the mean of the two), and two more figures
--- follow: gallery_speedup/... (2 × serial wall / pair wall) and
--- gallery_corun_tax/... (job CPU per job in the pair / in the serial run).
--- opts: reps, scale, pin, only (a workload), systems (names, e.g.
--- "pair,ours2"; serial always runs), workloads (the module that builds
--- the requests: gallery_workloads unless given, e.g. hostile_workloads).
function G.run(async, baseline, emit, opts)
  local reps, scale = opts.reps or 3, opts.scale or 1
  local ours = { name = "ours", load = function(k) async.load { workers = k, pin = opts.pin } end,
    define = function(n, f) async.define(n, f) end, call = function(...) return async.call(...) end,
    update = function() async.update() end, shutdown = function() async.shutdown() end }
  local base = { name = "baseline", load = baseline.load, define = baseline.define, call = baseline.call,
    update = baseline.update, shutdown = baseline.shutdown }
  local list = {}
  for _, wl in ipairs(require(opts.workloads or "gallery_workloads")(scale)) do
    if not opts.only or opts.only == wl.name then list[#list + 1] = wl end
  end
  for rep = 1, reps do
    for _, wl in ipairs(list) do
      local function record(sys, wall, jobcpu, main, sum, ksys, flt, ref)
        if ref and sum ~= ref then
          error(("gallery: %s/%s results differ from the serial run's (%s vs %s)"):format(wl.name, sys, sum, ref))
        end
        local key = ("%s/%s/%d"):format(wl.name, sys, rep)
        emit("gallery_wall_s/" .. key, wall, "s")
        emit("gallery_jobcpu_s/" .. key, jobcpu, "s")
        emit("gallery_maincpu_s/" .. key, main, "s")
        emit("gallery_jobsys_s/" .. key, ksys, "s")
        emit("gallery_jobfaults/" .. key, flt, "faults")
      end
      -- Alternate: serial, the pair, then ours and the baseline at 1 and 2
      -- workers, so all six see the same moment of this shared machine.
      local wall, jobcpu, main, ref, ksys, flt = runSerial(wl)
      record("serial", wall, jobcpu, main, ref, ksys, flt)
      if not opts.systems or opts.systems:find("pair", 1, true) then
        local w, c, m, s, ks, f = pair.run(wl, runSerial)
        record("pair", w, c, m, s, ks, f, ref)
        local key = ("%s/pair/%d"):format(wl.name, rep)
        emit("gallery_speedup/" .. key, 2 * wall / w, "x")
        emit("gallery_corun_tax/" .. key, c / jobcpu, "x")
      end
      for _, k in ipairs({ 1, 2 }) do
        for _, sys in ipairs({ ours, base }) do
          if not opts.systems or opts.systems:find(sys.name .. k, 1, true) then
            local w, c, m, s, ks, f = runSystem(sys, k, wl)
            record(sys.name .. k, w, c, m, s, ks, f, ref)
          end
        end
      end
    end
  end
end

return G
