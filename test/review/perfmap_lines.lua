-- perfMap with 2 workers compiling traces at once, definitions with long
-- and odd names. Every line of /tmp/perf-<pid>.map must be
-- "START SIZE symbol" (hex, hex, no newline inside the symbol).
-- Usage: luajit perfmap_lines.lua <build>/lua
local dir = assert(arg[1])
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local async = require "async"
local ffi = require "ffi"
pcall(ffi.cdef, "int getpid(void);")
local path = ("/tmp/perf-%d.map"):format(ffi.C.getpid())
os.remove(path)
async.load { workers = 2, perfMap = true }
local names = {}
for i = 1, 40 do
  local name
  if i % 4 == 0 then name = "gen/chunk/" .. ("terrain"):rep(700) .. i -- ~4.9 KB
  elseif i % 4 == 1 then name = "path\nfinder " .. i
  elseif i % 4 == 2 then name = "noise " .. i
  else name = "é☃ " .. i end
  names[#names + 1] = name
  -- each its own function (own prototype): own traces
  async.define(name, load(([[return function(n) local x = 0 for i = 1, n do x = x + (i * %d) %% 7 end return x end]]):format(i))())
end
for round = 1, 20 do
  for _, name in ipairs(names) do async.call(nil, name, 3000) end
  repeat async.update() until async.stats().inflight == 0
end
async.shutdown()
local f = assert(io.open(path, "rb"))
local s = f:read("*a")
f:close()
local good, bad, badEx = 0, 0, {}
for line in s:gmatch("([^\n]*)\n") do
  if line:match("^%x+ %x+ lua:.*#%d+$") then good = good + 1
  else bad = bad + 1; if #badEx < 3 then badEx[#badEx + 1] = line:sub(1, 80) end end
end
print(("perf map %s: %d bytes, %d well-formed lines, %d malformed"):format(path, #s, good, bad))
for _, l in ipairs(badEx) do print("  malformed: " .. ("%q"):format(l)) end
local long = 0
for line in s:gmatch("[^\n]*") do if #line > 4000 then long = long + 1 end end
print("lines over 4000 bytes: " .. long)
os.remove(path)
