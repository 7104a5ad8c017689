-- SPDX-License-Identifier: MIT (see LICENSE)
-- gallery_timed.lua: runs one gallery job and measures it with the calling
-- thread's own clocks, so that a job's cost on the main thread and in a
-- worker compare without the machine's load or the queueing in between:
-- CPU time (CLOCK_THREAD_CPUTIME_ID), and from getrusage(RUSAGE_THREAD) the
-- part of it spent in the kernel and the minor page faults. The FFI is used
-- here, for measuring only; the jobs in gallery_jobs.lua are plain Lua.
-- Returns cpu seconds, kernel seconds, minor faults, then the job's results.
local ffi = require "ffi"
local jobs = require "gallery_jobs"
local hostile = require "hostile_jobs"

-- Own names (asm labels): the host may have declared these functions with
-- other struct types already.
pcall(ffi.cdef, [[
  struct gallery_ts { long tv_sec; long tv_nsec; };
  struct gallery_ru { long utime_s, utime_us, stime_s, stime_us, maxrss, ixrss, idrss, isrss,
                      minflt, majflt, nswap, inblock, oublock, msgsnd, msgrcv, nsignals, nvcsw, nivcsw; };
  int gallery_clock_gettime(int clk, struct gallery_ts *ts) __asm__("clock_gettime");
  int gallery_getrusage(int who, struct gallery_ru *ru) __asm__("getrusage");
]])
local ts, ru = ffi.new("struct gallery_ts"), ffi.new("struct gallery_ru")
local CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID, RUSAGE_THREAD = 1, 3, 1

local function cpu()
  ffi.C.gallery_clock_gettime(CLOCK_THREAD_CPUTIME_ID, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
local function usage()
  ffi.C.gallery_getrusage(RUSAGE_THREAD, ru)
  return tonumber(ru.stime_s) + tonumber(ru.stime_us) * 1e-6, tonumber(ru.minflt)
end

-- The system-wide clock: love.timer.getTime counts from the process's start,
-- so two processes' times compare only on this one (gallery_pair.lua).
local function mono()
  ffi.C.gallery_clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local T = { cpu = cpu, mono = mono }

local c0, s0, f0
local function finish(...)
  local c = cpu()
  local s, f = usage()
  return c - c0, s - s0, f - f0, ...
end

function T.run(name, ...)
  local fn = jobs[name] or hostile[name]
  s0, f0 = usage()
  c0 = cpu()
  return finish(fn(...))
end

return T
